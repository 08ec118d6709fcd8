//! Referrers: one small object per manifest with a subject
//! (`_referrers/<subject>/<digest>`), holding the descriptor the referrers API lists, so a page
//! of referrers is one list plus one read per entry.

use futures_util::future::join_all;
use serde_json::{json, Value};

use super::listing::{list_page, Page};
use super::paths::PathSpec;
use super::{Bucket, PutIf};
use crate::oci::digest::Digest;
use crate::oci::error::{RegistryError, Result};
use crate::oci::manifest::ParsedManifest;
use crate::oci::name::RepoName;

/// The descriptor the referrers API lists for a manifest with a subject.
fn referrer_descriptor(parsed: &ParsedManifest, digest: &Digest, size: u64) -> Value {
    let mut d = json!({"mediaType": parsed.media_type, "digest": digest.to_string(), "size": size});
    if let Some(t) = &parsed.artifact_type {
        d["artifactType"] = Value::String(t.clone());
    }
    if let Some(a) = &parsed.annotations {
        d["annotations"] = Value::Object(a.clone());
    }
    d
}

/// Records the manifest `digest` (`size` bytes) as a referrer of its subject.
pub async fn record<B: Bucket + ?Sized>(bucket: &B, name: &RepoName, subject: &Digest, parsed: &ParsedManifest, digest: &Digest, size: u64) -> Result<()> {
    let entry = referrer_descriptor(parsed, digest, size);
    let key = PathSpec::ReferrerEntry { name, subject, digest }.key();
    bucket.put(&key, entry.to_string().into_bytes(), None, PutIf::Always).await?;
    Ok(())
}

/// One page of the referrers of `subject` in `name` (after the cursor `last`, at most `n`
/// entries), filtered by artifact type, as descriptors; `Page::items` holds the cursors.
pub async fn list<B: Bucket + ?Sized>(
    bucket: &B,
    name: &RepoName,
    subject: &Digest,
    artifact_type: Option<&str>,
    last: Option<&str>,
    n: usize,
) -> Result<(Vec<Value>, Page)> {
    let prefix = PathSpec::Referrers { name, subject }.key();
    let page = list_page(bucket, &prefix, last, n).await?;
    let bodies = join_all(page.items.iter().map(|item| bucket.get_owned(format!("{prefix}{item}")))).await;
    let mut out = Vec::new();
    for body in bodies {
        let Some((bytes, _)) = body? else { continue };
        let d: Value = serde_json::from_slice(&bytes).map_err(RegistryError::internal)?;
        if artifact_type.is_none_or(|t| d.get("artifactType").and_then(Value::as_str) == Some(t)) {
            out.push(d);
        }
    }
    Ok((out, page))
}

