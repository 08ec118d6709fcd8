//! `/v2/<name>/manifests/<reference>`: GET, HEAD, PUT, DELETE. Immutable tags
//! (`IMMUTABLE_TAGS`) are neither moved by a PUT nor deleted. A push, a pull (GET) and a delete
//! each send an event when events are on (`api::events`).

use worker::{Response, ResponseBody};

use super::events::{self, Happened};
use super::reply;
use crate::app::Context;
use crate::events::envelope::Action;
use crate::oci::digest::Digest;
use crate::oci::error::{Code, RegistryError, Result};
use crate::oci::manifest::MAX_MANIFEST_BYTES;
use crate::oci::name::{Reference, RepoName, Tag};
use crate::routes::manifest_url;
use crate::storage::{manifests, tags};

pub async fn get(cx: &Context<'_>, name: &RepoName, reference: &Reference, with_body: bool) -> Result<Response> {
    let (r2, edge) = (&cx.app.r2, &cx.app.edge);
    let (digest, media_type, size, body) = if with_body {
        let m = manifests::get(r2, edge, name, reference).await?;
        let size = m.bytes.len() as u64;
        let tag = reference.as_tag().map(Tag::as_str);
        events::emit(cx, Happened { action: Action::Pull, name, digest: &m.digest, media_type: &m.media_type, size, tag });
        (m.digest, m.media_type, size, ResponseBody::Body(m.bytes))
    } else {
        let (digest, rev) = manifests::stat(r2, edge, name, reference).await?;
        (digest, rev.media_type, rev.size, ResponseBody::Empty)
    };
    answer(cx, reference, &digest, media_type, size, body)
}

/// The answer to a GET or HEAD of a manifest (`body` empty for a HEAD), or 304.
pub fn answer(cx: &Context<'_>, reference: &Reference, digest: &Digest, media_type: String, size: u64, body: ResponseBody) -> Result<Response> {
    let etag = format!("\"{digest}\"");
    let mut headers = vec![
        ("Content-Type", media_type),
        ("Docker-Content-Digest", digest.to_string()),
        ("ETag", etag.clone()),
        ("Content-Length", size.to_string()),
    ];
    if matches!(reference, Reference::Digest(_)) {
        // Addressed by content: never changes. By tag: revalidate every time.
        headers.push(("Cache-Control", "public, max-age=31536000, immutable".to_string()));
    } else {
        headers.push(("Cache-Control", "no-cache".to_string()));
    }
    if super::blobs::none_match(cx.header("if-none-match"), &etag) {
        headers.retain(|(k, _)| *k != "Content-Length");
        return reply(304, &headers, ResponseBody::Empty);
    }
    reply(200, &headers, body)
}

pub async fn put(cx: Context<'_>, name: &RepoName, reference: &Reference) -> Result<Response> {
    let too_large = || RegistryError::new(Code::TooLarge, format!("manifest exceeds {MAX_MANIFEST_BYTES} bytes"));
    if cx.content_length()?.is_some_and(|l| l > MAX_MANIFEST_BYTES as u64) {
        return Err(too_large());
    }
    // `?tag=a&tag=b`: more tags for the same manifest; any invalid one refuses the whole PUT.
    let tags = crate::oci::name::tags_param(cx.query_all("tag"))?;
    let content_type = cx.header("content-type");
    // Read against the ceiling as it streams: a chunked body has no Content-Length to refuse.
    let bytes = crate::storage::r2::body_up_to(cx.req.inner(), MAX_MANIFEST_BYTES as u64)
        .await?
        .ok_or_else(too_large)?;
    let size = bytes.len() as u64;
    let (r2, now, id) = (&cx.app.r2, cx.now_ms(), cx.new_id());
    let immutable = |tag: &Tag| cx.app.config.immutable_tags.rule_for(name, tag);
    let stored = manifests::put_tagged(r2, &cx.app.edge, name, reference, &tags, bytes, content_type.as_deref(), now, &id, &immutable).await?;
    // One push event per tag the manifest got (one without a tag when pushed by digest alone).
    let mut pushed_tags: Vec<Option<&str>> = reference.as_tag().into_iter().chain(&tags).map(|t| Some(t.as_str())).collect();
    if pushed_tags.is_empty() {
        pushed_tags.push(None);
    }
    for tag in pushed_tags {
        events::emit(&cx, Happened { action: Action::Push, name, digest: &stored.digest, media_type: &stored.media_type, size, tag });
    }
    let mut headers = vec![
        ("Location", manifest_url(name, &stored.digest.to_string())),
        ("Docker-Content-Digest", stored.digest.to_string()),
    ];
    if let Some(subject) = stored.subject {
        headers.push(("OCI-Subject", subject.to_string()));
    }
    let resp = reply(201, &headers, ResponseBody::Empty)?;
    // One OCI-Tag header per tag applied from the parameters.
    for tag in &tags {
        resp.headers().append("OCI-Tag", tag.as_str()).map_err(RegistryError::internal)?;
    }
    Ok(resp)
}

pub async fn delete(cx: &Context<'_>, name: &RepoName, reference: &Reference) -> Result<Response> {
    // An immutable tag is never deleted: neither by tag nor with the revision it points at.
    let policy = &cx.app.config.immutable_tags;
    let guarded = match reference {
        _ if policy.is_empty() => Vec::new(),
        Reference::Tag(tag) => vec![tag.clone()],
        Reference::Digest(digest) => tags::pointing_at(&cx.app.r2, name, digest).await?,
    };
    for tag in &guarded {
        if let Some(rule) = policy.rule_for(name, tag) {
            if tags::resolve_tag(&cx.app.r2, name, tag).await?.is_some() {
                return Err(tags::immutable_refusal(name, tag, &rule, "be deleted"));
            }
        }
    }
    // The digest a deleted tag pointed at, for the event (read only when events are on).
    let deleted = match reference {
        Reference::Digest(d) => Some(d.clone()),
        Reference::Tag(tag) if cx.app.events.is_some() => tags::resolve_tag(&cx.app.r2, name, tag).await?,
        Reference::Tag(_) => None,
    };
    manifests::delete(&cx.app.r2, &cx.app.edge, name, reference).await?;
    if let Some(digest) = &deleted {
        let tag = reference.as_tag().map(Tag::as_str);
        events::emit(cx, Happened { action: Action::Delete, name, digest, media_type: "", size: 0, tag });
    }
    reply(202, &[], ResponseBody::Empty)
}
