//! Pulls of mirrored repositories (`mirror`): manifests and blobs made available by
//! `mirror::pull`, then answered like any stored ones. A blob missing here streams from the
//! upstream to the client and into the bucket in the same pass (R2 verifying its digest; past
//! one write's 5 GiB or of unknown length, in parts hashed on the way); it is recorded and linked
//! after the response, once the bucket has all of it, and never when its digest does not match. Every answer says how it was served (`Registry-Upstream`).

use worker::{Response, ResponseBody};

use super::reply;
use super::events::{self, Happened};
use crate::app::Context;
use crate::events::envelope::Action;
use crate::mirror::client::Client;
use crate::mirror::config::Mirrored;
use crate::mirror::freshness::{self, Served};
use crate::mirror::pull::{BlobSource, Pull};
use crate::mirror::web::{self, WebFetch};
use crate::oci::digest::Digest;
use crate::oci::error::{Code, RegistryError, Result};
use crate::oci::name::{Reference, RepoName};
use crate::storage::manifests::Fetched;
use crate::storage::{blobs, eviction};
use crate::storage::listing::page_of;
use crate::storage::meter::Op;
use crate::storage::r2::R2;
use crate::storage::Bucket;

/// The largest blob filled in one write (R2's single-put limit, 5 GiB); bigger ones, and those
/// of unknown length, are filled in parts.
const MAX_SINGLE_WRITE: u64 = 5 * 1024 * 1024 * 1024;

fn client<'a>(cx: &'a Context<'a>, fetch: &'a WebFetch, mirrored: &'a Mirrored<'a>) -> Client<'a, WebFetch> {
    let credentials = mirrored.upstream.credentials.as_ref().and_then(|n| cx.app.config.upstream_credentials.get(n));
    Client::new(fetch, web::tokens(), &mirrored.upstream.url, credentials.map(String::as_str), cx.now_ms()).trusting(&mirrored.upstream.redirect_origins)
}

/// What a mirrored request answered, how it was served, and why stale (if it was).
type Answered = Result<(Response, Served, Option<RegistryError>)>;

/// Counts the upstream requests `client` sent, whatever the outcome, and marks the response
/// with how it was served (and why stale).
fn mark(cx: &Context<'_>, client: &Client<'_, WebFetch>, answered: Answered) -> Result<Response> {
    cx.app.meter.add(Op::Upstream, client.sent.get());
    let (mut resp, served, stale) = answered?;
    let headers = resp.headers_mut();
    headers.set(freshness::HEADER, served.as_str()).map_err(RegistryError::internal)?;
    if let Some(why) = &stale {
        headers.set("Warning", &freshness::stale_warning(why)).map_err(RegistryError::internal)?;
    }
    Ok(resp)
}

pub async fn manifest(cx: &Context<'_>, name: &RepoName, reference: &Reference, with_body: bool, mirrored: &Mirrored<'_>) -> Result<Response> {
    let fetch = WebFetch { timeout_ms: cx.app.config.upstream_timeout_ms };
    let client = client(cx, &fetch, mirrored);
    let id = cx.new_id();
    let pull = Pull { bucket: &cx.app.r2, facts: &cx.app.edge, client: &client, mirrored, name, now: cx.now_ms(), id: &id };
    let answered = async {
        let mut outcome = pull.manifest(reference).await?;
        let resp = match outcome.fetched.take() {
            Some(m) => {
                announce_fill(cx, name, reference, &m, with_body);
                fetched(cx, reference, m, with_body)?
            }
            None => match super::manifests::get(cx, name, reference, with_body).await {
                // A record or cached fact said it was stored, but it was evicted: ask again.
                Err(e) if e.code == Code::ManifestUnknown && outcome.served != Served::Stale => {
                    outcome = pull.manifest_again(reference).await?;
                    let m = outcome.fetched.take().expect("fetched again");
                    announce_fill(cx, name, reference, &m, with_body);
                    fetched(cx, reference, m, with_body)?
                }
                resp => resp?,
            },
        };
        if mirrored.upstream.evict_after_days.is_some() {
            if let Some(digest) = resp.headers().get("docker-content-digest").ok().flatten().and_then(|d| Digest::parse(&d).ok()) {
                record_pull_later(cx, name, digest);
            }
        }
        Ok((resp, outcome.served, outcome.stale))
    }
    .await;
    mark(cx, &client, answered)
}

/// The events of a manifest just fetched from the upstream: the fill, and the pull (a GET).
fn announce_fill(cx: &Context<'_>, name: &RepoName, reference: &Reference, m: &Fetched, with_body: bool) {
    let (tag, size) = (reference.as_tag().map(crate::oci::name::Tag::as_str), m.bytes.len() as u64);
    let actions: &[Action] = if with_body { &[Action::Mirror, Action::Pull] } else { &[Action::Mirror] };
    for action in actions {
        events::emit(cx, Happened { action: *action, name, digest: &m.digest, media_type: &m.media_type, size, tag });
    }
}

/// The answer with a manifest just fetched from the upstream.
fn fetched(cx: &Context<'_>, reference: &Reference, m: Fetched, with_body: bool) -> Result<Response> {
    let size = m.bytes.len() as u64;
    let body = if with_body { ResponseBody::Body(m.bytes) } else { ResponseBody::Empty };
    super::manifests::answer(cx, reference, &m.digest, m.media_type, size, body)
}

thread_local! {
    /// `name@digest` pulls this isolate recorded, by day: a day's first pull records it (after
    /// the response), later ones write nothing.
    static RECORDED: std::cell::RefCell<(u64, std::collections::HashSet<String>)> = Default::default();
}

/// Records the pull of `digest` for eviction (`storage::eviction`), once a day per isolate.
fn record_pull_later(cx: &Context<'_>, name: &RepoName, digest: Digest) {
    let now = cx.now_ms();
    let first_today = RECORDED.with(|r| {
        let mut r = r.borrow_mut();
        let day = now / eviction::DAY_MS;
        if r.0 != day {
            *r = (day, Default::default());
        }
        r.1.insert(format!("{name}@{digest}"))
    });
    if !first_today {
        return;
    }
    let (r2, name) = (cx.app.r2.clone(), name.clone());
    cx.app.edge.after_response(wasm_bindgen_futures::future_to_promise(async move {
        if let Err(e) = eviction::record_pull(&r2, &name, &digest, now).await {
            worker::console_warn!("{name}@{digest}: pull not recorded: {e}");
        }
        Ok(wasm_bindgen::JsValue::UNDEFINED)
    }));
}

pub async fn tags(cx: &Context<'_>, name: &RepoName, mirrored: &Mirrored<'_>) -> Result<Response> {
    let fetch = WebFetch { timeout_ms: cx.app.config.upstream_timeout_ms };
    let client = client(cx, &fetch, mirrored);
    let pull = Pull { bucket: &cx.app.r2, facts: &cx.app.edge, client: &client, mirrored, name, now: cx.now_ms(), id: "" };
    let answered = async {
        let outcome = pull.tags().await?;
        let resp = match outcome.tags {
            Some(all) => {
                let (n, last) = super::pagination(cx)?;
                let page = page_of(&all, last.as_deref(), n);
                let headers: Vec<_> = super::next_page_link(&page, &format!("/v2/{name}/tags/list"), n, "").into_iter().collect();
                super::json_reply(200, &headers, &serde_json::json!({"name": name.as_str(), "tags": page.items}))?
            }
            // Never listed upstream, and it cannot answer now: what is stored, if anything.
            None => match super::tags::get(cx, name).await {
                Err(e) if e.code == Code::NameUnknown => return Err(outcome.stale.unwrap_or(e)),
                other => other?,
            },
        };
        Ok((resp, outcome.served, outcome.stale))
    }
    .await;
    mark(cx, &client, answered)
}

pub async fn blob(cx: &Context<'_>, name: &RepoName, digest: &Digest, with_body: bool, mirrored: &Mirrored<'_>) -> Result<Response> {
    let fetch = WebFetch { timeout_ms: cx.app.config.upstream_timeout_ms };
    let client = client(cx, &fetch, mirrored);
    let pull = Pull { bucket: &cx.app.r2, facts: &cx.app.edge, client: &client, mirrored, name, now: cx.now_ms(), id: "" };
    let answered = async {
        let (served, source) = pull.blob(digest, with_body).await?;
        let (served, resp) = match source {
            BlobSource::Stored(desc) => match super::blobs::serve(cx, name, digest, &desc, with_body).await {
                // Linked, but the bytes were collected (after an eviction): ask again.
                Err(e) if e.code == Code::BlobUnknown => match pull.blob_again(digest).await? {
                    (served, BlobSource::Upstream { length, body }) => (served, from_upstream(cx, name, digest, length, body, with_body).await?),
                    (_, BlobSource::Stored(_)) => return Err(e),
                },
                resp => (served, resp?),
            },
            BlobSource::Upstream { length, body } => (served, from_upstream(cx, name, digest, length, body, with_body).await?),
        };
        Ok((resp, served, None))
    }
    .await;
    mark(cx, &client, answered)
}

/// Answers with the upstream's blob, filling the bucket from the same stream.
async fn from_upstream(cx: &Context<'_>, name: &RepoName, digest: &Digest, length: Option<u64>, body: wasm_bindgen::JsValue, with_body: bool) -> Result<Response> {
    let mut headers = vec![
        ("Docker-Content-Digest", digest.to_string()),
        ("ETag", format!("\"{digest}\"")),
        ("Content-Type", "application/octet-stream".to_string()),
    ];
    if let Some(len) = length {
        headers.push(("Content-Length", len.to_string()));
    }
    let stream = web::stream_of(&body);
    let (Some(stream), true) = (stream, with_body) else {
        web::discard(&body);
        return reply(200, &headers, ResponseBody::Empty);
    };
    let r2 = &cx.app.r2;
    // One write verified by R2 when it can be (a mismatch writes nothing, so the canonical key
    // is safe); else parts, hashed on the way and checked after, under a key of their own.
    let (key, fill) = match length {
        Some(len) if len <= MAX_SINGLE_WRITE => {
            let key = blobs::fresh_data_key(r2, digest, &cx.new_id()).await?;
            let fill = r2.fill_verified(&key, &stream, len, digest)?;
            (key, fill)
        }
        _ => {
            let key = blobs::unverified_data_key(&cx.new_id());
            let fill = r2.fill_multipart(&key, &stream, length, multipart_part_size(length), digest)?;
            (key, fill)
        }
    };
    let work = commit_when_stored(r2.clone(), name.clone(), digest.clone(), key, length, fill.stored, cx.now_ms());
    cx.app.edge.after_response(wasm_bindgen_futures::future_to_promise(async move {
        work.await;
        Ok(wasm_bindgen::JsValue::UNDEFINED)
    }));
    reply(200, &headers, ResponseBody::Stream(fill.client))
}

/// The part size of a multipart fill of `length` bytes (unknown: as big as the part buffer
/// allows): at least 10 MiB, and few enough parts for R2's 10,000.
fn multipart_part_size(length: Option<u64>) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let fitting = length.map(|l| l.div_ceil(9_000).div_ceil(MIB) * MIB).unwrap_or(0);
    fitting.max(10 * MIB)
}

/// Records and links the blob once the bucket has all of it; nothing when R2 refused it or
/// what was stored has another digest (then it is deleted).
async fn commit_when_stored(r2: R2, name: RepoName, digest: Digest, key: String, length: Option<u64>, stored: js_sys::Promise, now: u64) {
    match R2::filled(stored, &digest).await {
        Ok(true) => {
            let size = match length {
                Some(len) => len,
                None => match r2.head(&key).await {
                    Ok(Some(info)) => info.size,
                    other => return worker::console_error!("{name}@{digest}: mirror fill stored but unreadable: {other:?}"),
                },
            };
            if let Err(e) = blobs::commit(&r2, &name, &digest, size, key, now).await {
                worker::console_error!("{name}@{digest}: mirror fill stored but not recorded: {e}");
            }
        }
        Ok(false) => {
            let _ = r2.delete(&[key]).await;
            worker::console_warn!("{name}@{digest}: the upstream sent other bytes than its digest; nothing stored");
        }
        Err(why) => worker::console_warn!("{name}@{digest}: mirror fill not stored: {why}"),
    }
}
