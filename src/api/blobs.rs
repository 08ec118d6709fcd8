//! `/v2/<name>/blobs/<digest>`: GET, HEAD, DELETE. The bytes are R2's own stream handed to
//! the response; they never pass through wasm.

use worker::{Range, Response, ResponseBody};

use super::reply;
use crate::app::Context;
use crate::http::{blob_range, RangeRequest};
use crate::oci::digest::Digest;
use crate::oci::error::{Code, RegistryError, Result};
use crate::oci::name::RepoName;
use crate::storage::blobs;

fn unknown(digest: &Digest) -> RegistryError {
    RegistryError::new(Code::BlobUnknown, digest.to_string())
}

pub async fn get(cx: &Context<'_>, name: &RepoName, digest: &Digest, with_body: bool) -> Result<Response> {
    let desc = blobs::linked(&cx.app.r2, name, digest).await?.ok_or_else(|| unknown(digest))?;
    let etag = format!("\"{digest}\"");
    let mut headers = vec![
        ("Docker-Content-Digest", digest.to_string()),
        ("ETag", etag.clone()),
        ("Accept-Ranges", "bytes".to_string()),
        ("Cache-Control", "public, max-age=31536000, immutable".to_string()),
        ("Content-Type", "application/octet-stream".to_string()),
    ];
    if cx.header("if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")) {
        return reply(304, &headers, ResponseBody::Empty);
    }
    let range = blob_range(cx.header("range").as_deref(), desc.size);
    let (status, r2_range) = match range {
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
    let length = r2_range.map(|(s, e)| e - s + 1).unwrap_or(desc.size);
    headers.push(("Content-Length", length.to_string()));
    if !with_body {
        return reply(status, &headers, ResponseBody::Empty);
    }
    let mut get = cx.app.r2.bucket.get(&desc.object);
    if let Some((offset, end)) = r2_range {
        get = get.range(Range::OffsetWithLength { offset, length: end - offset + 1 });
    }
    let obj = get
        .execute()
        .await
        .map_err(|e| RegistryError::internal(format!("get blob {digest}: {e}")))?
        .ok_or_else(|| RegistryError::internal(format!("blob {digest} bytes missing at {}", desc.object)))?;
    let body = match obj.body() {
        Some(b) => b.response_body().map_err(RegistryError::internal)?,
        None => ResponseBody::Empty,
    };
    reply(status, &headers, body)
}

pub async fn delete(cx: &Context<'_>, name: &RepoName, digest: &Digest) -> Result<Response> {
    if !blobs::unlink(&cx.app.r2, name, digest).await? {
        return Err(unknown(digest));
    }
    reply(202, &[], ResponseBody::Empty)
}
