//! `/v2/<name>/manifests/<reference>`: GET, HEAD, PUT, DELETE.

use worker::{Response, ResponseBody};

use super::reply;
use crate::app::Context;
use crate::oci::error::{Code, RegistryError, Result};
use crate::oci::manifest::MAX_MANIFEST_BYTES;
use crate::oci::name::{Reference, RepoName};
use crate::routes::manifest_url;
use crate::storage::manifests;

pub async fn get(cx: &Context<'_>, name: &RepoName, reference: &Reference, with_body: bool) -> Result<Response> {
    let r2 = &cx.app.r2;
    if !with_body {
        let (digest, rev) = manifests::stat(r2, name, reference).await?;
        let headers = [
            ("Content-Type", rev.media_type),
            ("Content-Length", rev.size.to_string()),
            ("Docker-Content-Digest", digest.to_string()),
            ("ETag", format!("\"{digest}\"")),
        ];
        return reply(200, &headers, ResponseBody::Empty);
    }
    let m = manifests::get(r2, name, reference).await?;
    let headers = [
        ("Content-Type", m.media_type),
        ("Docker-Content-Digest", m.digest.to_string()),
        ("ETag", format!("\"{}\"", m.digest)),
    ];
    reply(200, &headers, ResponseBody::Body(m.bytes))
}

pub async fn put(mut cx: Context<'_>, name: &RepoName, reference: &Reference) -> Result<Response> {
    if cx.content_length()?.is_some_and(|l| l > MAX_MANIFEST_BYTES as u64) {
        return Err(RegistryError::new(Code::TooLarge, format!("manifest exceeds {MAX_MANIFEST_BYTES} bytes")));
    }
    let content_type = cx.header("content-type");
    let bytes = cx.req.bytes().await.map_err(|e| RegistryError::new(Code::ManifestInvalid, format!("unreadable body: {e}")))?;
    let stored = manifests::put(&cx.app.r2, name, reference, bytes, content_type.as_deref()).await?;
    let mut headers = vec![
        ("Location", manifest_url(name, &stored.digest.to_string())),
        ("Docker-Content-Digest", stored.digest.to_string()),
    ];
    if let Some(subject) = stored.subject {
        headers.push(("OCI-Subject", subject.to_string()));
    }
    reply(201, &headers, ResponseBody::Empty)
}

pub async fn delete(cx: &Context<'_>, name: &RepoName, reference: &Reference) -> Result<Response> {
    manifests::delete(&cx.app.r2, name, reference).await?;
    reply(202, &[], ResponseBody::Empty)
}
