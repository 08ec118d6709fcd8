//! `/v2/<name>/blobs/<digest>`: GET, HEAD, DELETE. The repository's link is checked on every
//! request (through the fact cache), and a HEAD claims the blob too (`blobs::present`); a link
//! whose blob was collected is removed on sight; the bytes come from the edge cache when this data centre
//! has them, else from R2, whose stream is handed to the response (after a full GET, the edge
//! cache is filled from a second read). Blob bytes never pass through wasm. With the offload
//! configured, a GET of a blob past `OFFLOAD_MIN_BYTES` answers 307 to a presigned R2 URL
//! instead (`storage::presign`).

use worker::{Response, ResponseBody};

use super::reply;
use crate::app::Context;
use crate::http::{blob_range, RangeRequest};
use crate::oci::digest::Digest;
use crate::oci::error::{Code, RegistryError, Result};
use crate::oci::name::RepoName;
use crate::storage::blobs::{self, BlobDescriptor};

pub fn unknown(digest: &Digest) -> RegistryError {
    RegistryError::new(Code::BlobUnknown, digest.to_string())
}

/// Whether an `If-None-Match` header matches the entity tag `etag`.
pub fn none_match(header: Option<String>, etag: &str) -> bool {
    header.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

pub async fn get(cx: &Context<'_>, name: &RepoName, digest: &Digest, with_body: bool) -> Result<Response> {
    let (r2, edge) = (&cx.app.r2, &cx.app.edge);
    // A HEAD tells a pusher it may skip the upload: the blob must be there, and stay
    // (`blobs::present`). A GET finds out from the bytes themselves (`serve`).
    let desc = match with_body {
        true => blobs::linked_for_pull(r2, edge, name, digest).await?,
        false => blobs::present(r2, edge, name, digest, cx.now_ms()).await?,
    };
    serve(cx, name, digest, &desc.ok_or_else(|| unknown(digest))?, with_body).await
}

/// The answer to a GET or HEAD of the blob `desc` linked in `name`.
pub async fn serve(cx: &Context<'_>, name: &RepoName, digest: &Digest, desc: &BlobDescriptor, with_body: bool) -> Result<Response> {
    let app = cx.app;
    let etag = format!("\"{digest}\"");
    let mut headers = vec![
        ("Docker-Content-Digest", digest.to_string()),
        ("ETag", etag.clone()),
        ("Accept-Ranges", "bytes".to_string()),
        ("Cache-Control", "public, max-age=31536000, immutable".to_string()),
        ("Content-Type", "application/octet-stream".to_string()),
    ];
    if none_match(cx.header("if-none-match"), &etag) {
        return reply(304, &headers, ResponseBody::Empty);
    }
    if let Some(offload) = app.config.offload.as_ref().filter(|o| with_body && desc.size >= o.min_bytes) {
        // Huge: straight from R2 to the client, by a short-lived URL for this object only
        // (the link and the caller's access were checked before we got here).
        let url = offload.signer.presign_get(&desc.object, cx.now_ms(), offload.ttl_s);
        let headers = [("Location", url), ("Docker-Content-Digest", digest.to_string()), ("Cache-Control", "no-store".to_string())];
        return reply(307, &headers, ResponseBody::Empty);
    }
    let (status, range) = match blob_range(cx.header("range").as_deref(), desc.size) {
        RangeRequest::Whole => (200, None),
        RangeRequest::Part { start, end } => {
            headers.push(("Content-Range", format!("bytes {start}-{end}/{}", desc.size)));
            (206, Some((start, end)))
        }
        RangeRequest::Unsatisfiable => {
            let e = RegistryError::new(Code::RangeInvalid, format!("range not satisfiable for {} bytes", desc.size));
            let mut resp = super::error_reply(&e)?;
            resp.headers_mut().set("Content-Range", &format!("bytes */{}", desc.size)).map_err(RegistryError::internal)?;
            return Ok(resp);
        }
    };
    let length = range.map(|(s, e)| e - s + 1).unwrap_or(desc.size);
    headers.push(("Content-Length", length.to_string()));
    if !with_body || length == 0 {
        return reply(status, &headers, ResponseBody::Empty);
    }

    let cacheable = app.edge.caches_blob(desc.size);
    if cacheable {
        let wanted = range.map(|(s, e)| format!("bytes={s}-{e}"));
        if let Some(hit) = app.edge.blob(digest, wanted).await {
            if hit.status == status {
                return reply(status, &headers, hit.body.map(ResponseBody::Stream).unwrap_or(ResponseBody::Empty));
            }
            worker::console_warn!("edge cache answered {} for a {status} of {digest}; reading the bucket", hit.status);
        }
    }
    let Some(stream) = app.r2.open(&desc.object, range).await? else {
        // The link outlived the bytes (the blob was collected): it goes, with its cached copies,
        // so the repository stops claiming the blob (HEAD, mounts, the UI and the totals agree).
        blobs::unlink(&app.r2, &app.edge, name, digest).await?;
        return Err(unknown(digest));
    };
    if cacheable && range.is_none() {
        if let Some((client, served)) = app.edge.watch_end(&stream, desc.size) {
            // Into the edge cache once the client has it all, from a second read (see
            // `cache_blob_after`).
            app.meter.add(crate::storage::meter::Op::R2ClassB, 1);
            let (r2, object) = (app.r2.clone(), desc.object.clone());
            let reread = async move {
                wasm_bindgen_futures::JsFuture::from(served).await.ok()?;
                r2.open(&object, None).await.ok().flatten()
            };
            app.edge.cache_blob_after(digest, desc.size, reread).await;
            return reply(status, &headers, ResponseBody::Stream(client));
        }
    }
    reply(status, &headers, ResponseBody::Stream(stream))
}

pub async fn delete(cx: &Context<'_>, name: &RepoName, digest: &Digest) -> Result<Response> {
    if !blobs::unlink(&cx.app.r2, &cx.app.edge, name, digest).await? {
        return Err(unknown(digest));
    }
    reply(202, &[], ResponseBody::Empty)
}
