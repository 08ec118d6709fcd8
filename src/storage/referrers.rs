//! Referrers: one small object per manifest with a subject
//! (`_referrers/<subject>/<digest>`), holding the descriptor the referrers API lists, so a page
//! of referrers is one list plus one read per entry.

use futures_util::stream::{self, StreamExt};
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

/// Entries read at once for a page.
pub const ENTRIES_IN_FLIGHT: usize = 8;

/// A page ends once its entries hold this many bytes: an entry carries its manifest's
/// annotations (a manifest may be 4 MiB), so a page of 250 could otherwise hold a gigabyte. The
/// rest follows through the page's `Link`.
pub const MAX_PAGE_BYTES: usize = 4 << 20;

/// One page of the referrers of `subject` in `name` (after the cursor `last`, at most `n`
/// entries, and ending early past [`MAX_PAGE_BYTES`]), filtered by artifact type, as
/// descriptors; `Page::items` holds the cursors of the entries read.
pub async fn list<B: Bucket + ?Sized>(
    bucket: &B,
    name: &RepoName,
    subject: &Digest,
    artifact_type: Option<&str>,
    last: Option<&str>,
    n: usize,
) -> Result<(Vec<Value>, Page)> {
    let prefix = PathSpec::Referrers { name, subject }.key();
    let mut page = list_page(bucket, &prefix, last, n).await?;
    let mut bodies = stream::iter(page.items.iter().map(|item| bucket.get_owned(format!("{prefix}{item}")))).buffered(ENTRIES_IN_FLIGHT);
    let (mut out, mut read, mut held) = (Vec::new(), 0, 0);
    while let Some(body) = bodies.next().await {
        read += 1;
        let Some((bytes, _)) = body? else { continue };
        held += bytes.len();
        let d: Value = serde_json::from_slice(&bytes).map_err(RegistryError::internal)?;
        if artifact_type.is_none_or(|t| d.get("artifactType").and_then(Value::as_str) == Some(t)) {
            out.push(d);
        }
        if held >= MAX_PAGE_BYTES {
            break;
        }
    }
    drop(bodies);
    if read < page.items.len() {
        page.items.truncate(read);
        page.more = true;
    }
    Ok((out, page))
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::Algorithm;
    use crate::storage::memory::MemoryBucket;

    #[test]
    fn a_page_ends_once_its_entries_hold_four_mebibytes() {
        futures_executor::block_on(async {
            let b = MemoryBucket::default();
            let name = RepoName::parse("a/b").unwrap();
            let subject = Digest::of(Algorithm::Sha256, b"subject");
            let big = "x".repeat(1_500_000);
            for i in 0..4u8 {
                let digest = Digest::of(Algorithm::Sha256, &[i]);
                let entry = json!({"mediaType": "m", "digest": digest.to_string(), "size": 1, "annotations": {"big": big}});
                let key = PathSpec::ReferrerEntry { name: &name, subject: &subject, digest: &digest }.key();
                b.put(&key, entry.to_string().into_bytes(), None, PutIf::Always).await.unwrap();
            }
            let (first, page) = list(&b, &name, &subject, None, None, 10).await.unwrap();
            assert_eq!((first.len(), page.items.len(), page.more), (3, 3, true), "three entries pass 4 MiB");
            let (rest, page) = list(&b, &name, &subject, None, page.items.last().map(String::as_str), 10).await.unwrap();
            assert_eq!((rest.len(), page.more), (1, false));
            let mut digests: Vec<Value> = first.iter().chain(&rest).map(|d| d["digest"].clone()).collect();
            digests.dedup();
            assert_eq!(digests.len(), 4, "every entry once");
        });
    }
}
