//! The summaries the web UI reads, from the same storage pulls read: a repository's tags,
//! newest push first, each with what its manifest and config say (digest, media type,
//! compressed size, created time, platforms). One listing per 1,000 tags orders them (a tag's
//! push time is when its current link was written); each tag shown then costs one tag read,
//! and its manifest and config come through the fact cache, like a pull's, a few tags at a time
//! ([`SUMMARIES_IN_FLIGHT`]: memory stays bounded whatever the page size and manifest sizes).

use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use super::facts::{self, FactCache};
use super::paths::PathSpec;
use super::{blobs, manifests, Bucket};
use crate::oci::digest::Digest;
use crate::oci::error::{Code, Result};
use crate::oci::name::{Reference, RepoName, Tag};
use crate::oci::summary::{self, Platform, Shape};

/// Tags ordered by push time, at most (the lexically first ones past it are left out).
pub const MAX_ORDERED_TAGS: usize = 10_000;
/// Largest config read for its created time.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// An index with more children than this shows no total size (each child is one more read).
pub const MAX_SIZED_CHILDREN: usize = 32;
/// Tags summarized at once. Each holds its manifest (up to 4 MiB), a config (up to
/// [`MAX_CONFIG_BYTES`]) and, for an index, one child at a time: a page of 100 tags of 4 MiB
/// manifests read all at once held 800 MB, past the platform's 128 MB per isolate; four at once
/// hold at most ~40 MB, whatever the page.
pub const SUMMARIES_IN_FLIGHT: usize = 4;

/// One tag as the UI lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagSummary {
    pub tag: String,
    pub digest: String,
    pub media_type: Option<String>,
    pub artifact_type: Option<String>,
    /// Compressed size of the layers (of every platform, for an index), when known.
    pub size: Option<u64>,
    /// When the config says the image was built (the first platform's, for an index).
    pub created: Option<String>,
    /// When the tag was last pushed (ms since the epoch).
    pub pushed: u64,
    /// An index's platforms (empty for an image).
    pub platforms: Vec<Platform>,
}

/// A page of tags, newest push first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagsPage {
    pub tags: Vec<TagSummary>,
    /// How many tags were ordered (the page is a window onto them).
    pub total: usize,
    /// More than [`MAX_ORDERED_TAGS`] tags exist; only those were ordered.
    pub cut: bool,
}

/// Every tag of `name` with when it was pushed, newest first (ties in name order).
pub async fn tags_by_push<B: Bucket + ?Sized>(bucket: &B, name: &RepoName) -> Result<(Vec<(String, u64)>, bool)> {
    let prefix = PathSpec::Tags { name }.key();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    let cut = loop {
        let page = bucket.list(&prefix, after.as_deref(), super::MAX_PAGE).await?;
        out.extend(page.keys.iter().zip(&page.uploaded).map(|(k, t)| (k[prefix.len()..].to_string(), *t)));
        after = page.keys.last().cloned();
        if !page.truncated {
            break false;
        }
        if out.len() >= MAX_ORDERED_TAGS {
            break true;
        }
    };
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok((out, cut))
}

/// The `n` tags of `name` after the first `offset`, newest push first, summarized.
pub async fn tags_page<B, F>(bucket: &B, facts: &F, name: &RepoName, offset: usize, n: usize) -> Result<TagsPage>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
{
    let (ordered, cut) = tags_by_push(bucket, name).await?;
    let window = ordered.iter().skip(offset).take(n);
    let summaries: Vec<_> = stream::iter(window.map(|(tag, pushed)| summarize_tag(bucket, facts, name, tag, *pushed)))
        .buffered(SUMMARIES_IN_FLIGHT)
        .collect()
        .await;
    let mut tags = Vec::new();
    for s in summaries {
        tags.extend(s?);
    }
    Ok(TagsPage { tags, total: ordered.len(), cut })
}

/// One tag's summary; `None` if it was deleted since it was listed.
async fn summarize_tag<B, F>(bucket: &B, facts: &F, name: &RepoName, tag: &str, pushed: u64) -> Result<Option<TagSummary>>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
{
    let Ok(tag) = Tag::parse(tag) else { return Ok(None) };
    let fetched = match manifests::get(bucket, facts, name, &Reference::Tag(tag.clone())).await {
        Ok(f) => f,
        Err(e) if e.code == Code::ManifestUnknown => return Ok(None),
        Err(e) => return Err(e),
    };
    let (declared, artifact_type, shape) = summary::shape(&fetched.bytes).unwrap_or((None, None, Shape::Index { platforms: vec![] }));
    let mut out = TagSummary {
        tag: tag.to_string(),
        digest: fetched.digest.to_string(),
        media_type: declared.or(Some(fetched.media_type)),
        artifact_type,
        size: None,
        created: None,
        pushed,
        platforms: Vec::new(),
    };
    match shape {
        Shape::Image { config, layers_size, .. } => {
            out.size = Some(layers_size);
            out.created = created_of(bucket, facts, name, config.as_ref()).await?;
        }
        Shape::Index { platforms } => {
            if platforms.len() <= MAX_SIZED_CHILDREN {
                let (size, created) = index_totals(bucket, facts, name, &platforms).await?;
                out.size = size;
                out.created = created;
            }
            out.platforms = platforms;
        }
    }
    Ok(Some(out))
}

/// The compressed size of an index's platform images (attestations and other entries without
/// a platform are left out), and the first one's created time. `None` when a child is missing
/// (a sparse index, or a mirror that fetched only some platforms).
async fn index_totals<B, F>(bucket: &B, facts: &F, name: &RepoName, platforms: &[Platform]) -> Result<(Option<u64>, Option<String>)>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
{
    let mut size = Some(0u64);
    let mut created = None;
    for p in platforms.iter().filter(|p| p.platform != "unknown") {
        let Ok(digest) = Digest::parse(&p.digest) else { return Ok((None, created)) };
        let child = match manifests::get(bucket, facts, name, &Reference::Digest(digest)).await {
            Ok(f) => f,
            Err(e) if e.code == Code::ManifestUnknown => return Ok((None, created)),
            Err(e) => return Err(e),
        };
        if let Some((_, _, Shape::Image { config, layers_size, .. })) = summary::shape(&child.bytes) {
            size = size.map(|s| s + layers_size);
            if created.is_none() {
                created = created_of(bucket, facts, name, config.as_ref()).await?;
            }
        }
    }
    Ok((size, created))
}

/// The created time in the config `digest` of `name`, if it is stored and small enough.
async fn created_of<B, F>(bucket: &B, facts: &F, name: &RepoName, digest: Option<&Digest>) -> Result<Option<String>>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
{
    let Some(digest) = digest else { return Ok(None) };
    let Some(desc) = blobs::linked_for_pull(bucket, facts, name, digest).await? else { return Ok(None) };
    if desc.size > MAX_CONFIG_BYTES || desc.doomed {
        return Ok(None);
    }
    let bytes = facts::read(bucket, facts, &PathSpec::Object { key: &desc.object }).await?;
    Ok(bytes.as_deref().and_then(summary::created))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::Algorithm;
    use crate::oci::manifest::{OCI_INDEX, OCI_MANIFEST};
    use crate::storage::memory::{MemoryBucket, MemoryFacts};
    use crate::storage::PutIf;
    use futures_executor::block_on;

    /// Stores `content` as a blob of `name` (bytes at a key of their own, as a chunked push).
    async fn blob(b: &MemoryBucket, name: &RepoName, content: &[u8]) -> Digest {
        let d = Digest::of(Algorithm::Sha256, content);
        let key = format!("objects/{}/data", d.hex());
        b.put(&key, content.to_vec(), None, PutIf::Always).await.unwrap();
        blobs::commit(b, name, &d, content.len() as u64, key, 1).await.unwrap();
        d
    }

    fn image(config: &Digest, config_size: usize, layers: &[(Digest, u64)]) -> Vec<u8> {
        let layers: Vec<String> = layers
            .iter()
            .map(|(d, s)| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{s}}}"#))
            .collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[{}]}}"#,
            layers.join(",")
        )
        .into_bytes()
    }

    async fn put(b: &MemoryBucket, f: &MemoryFacts, name: &RepoName, reference: &str, bytes: Vec<u8>) -> Digest {
        manifests::put(b, f, name, &Reference::parse(reference).unwrap(), bytes, None, 1, "id").await.unwrap().digest
    }

    #[test]
    fn tags_come_newest_push_first_with_sizes_created_times_and_platforms() {
        block_on(async {
            let (b, f) = (MemoryBucket::new(), MemoryFacts::new(0));
            let n = RepoName::parse("team/app").unwrap();
            let cfg_amd = br#"{"created":"2026-01-02T03:04:05Z","architecture":"amd64","os":"linux"}"#;
            let cfg_arm = br#"{"created":"2026-01-03T00:00:00Z","architecture":"arm64","os":"linux"}"#;
            let (ca, cr) = (blob(&b, &n, cfg_amd).await, blob(&b, &n, cfg_arm).await);
            let (l1, l2) = (blob(&b, &n, &[1u8; 100]).await, blob(&b, &n, &[2u8; 30]).await);
            b.set_now(1_000);
            let amd = put(&b, &f, &n, "amd", image(&ca, cfg_amd.len(), &[(l1.clone(), 100), (l2.clone(), 30)])).await;
            b.set_now(3_000);
            let arm = put(&b, &f, &n, "arm", image(&cr, cfg_arm.len(), &[(l2.clone(), 30)])).await;
            let index = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
                {{"mediaType":"{OCI_MANIFEST}","digest":"{amd}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
                {{"mediaType":"{OCI_MANIFEST}","digest":"{arm}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
            );
            b.set_now(2_000);
            let multi = put(&b, &f, &n, "multi", index.into_bytes()).await;

            let (ordered, cut) = tags_by_push(&b, &n).await.unwrap();
            assert_eq!(ordered, [("arm".to_string(), 3_000), ("multi".to_string(), 2_000), ("amd".to_string(), 1_000)]);
            assert!(!cut);

            let page = tags_page(&b, &f, &n, 0, 10).await.unwrap();
            assert_eq!(page.total, 3);
            let [arm_s, multi_s, amd_s] = &page.tags[..] else { panic!("three tags") };
            assert_eq!((arm_s.tag.as_str(), arm_s.size, arm_s.created.as_deref()), ("arm", Some(30), Some("2026-01-03T00:00:00Z")));
            assert_eq!((amd_s.size, amd_s.created.as_deref(), amd_s.pushed), (Some(130), Some("2026-01-02T03:04:05Z"), 1_000));
            assert_eq!(amd_s.digest, amd.to_string());
            assert_eq!(multi_s.digest, multi.to_string());
            assert_eq!(multi_s.media_type.as_deref(), Some(OCI_INDEX));
            assert_eq!(multi_s.size, Some(160), "every platform's layers");
            assert_eq!(multi_s.created.as_deref(), Some("2026-01-02T03:04:05Z"), "the first platform's");
            let platforms: Vec<&str> = multi_s.platforms.iter().map(|p| p.platform.as_str()).collect();
            assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
            assert!(amd_s.platforms.is_empty());

            // A window onto the order; past the end is empty.
            let second = tags_page(&b, &f, &n, 1, 1).await.unwrap();
            assert_eq!(second.tags.iter().map(|t| t.tag.as_str()).collect::<Vec<_>>(), ["multi"]);
            assert!(tags_page(&b, &f, &n, 3, 10).await.unwrap().tags.is_empty());
        });
    }

    #[test]
    fn past_a_listing_page_and_at_the_ordering_bound() {
        block_on(async {
            let b = MemoryBucket::new();
            let n = RepoName::parse("many").unwrap();
            let d = Digest::of(Algorithm::Sha256, b"m");
            let put_tags = |range: std::ops::Range<usize>| {
                let b = &b;
                let n = &n;
                let d = &d;
                async move {
                    for i in range {
                        let tag = Tag::parse(&format!("t{i:05}")).unwrap();
                        b.put(&PathSpec::TagCurrent { name: n, tag: &tag }.key(), d.to_string().into_bytes(), None, PutIf::Always).await.unwrap();
                    }
                }
            };
            put_tags(0..crate::storage::MAX_PAGE + 1).await;
            let (ordered, cut) = tags_by_push(&b, &n).await.unwrap();
            assert_eq!((ordered.len(), cut), (crate::storage::MAX_PAGE + 1, false), "past one listing page");
            put_tags(crate::storage::MAX_PAGE + 1..MAX_ORDERED_TAGS + 1).await;
            let (ordered, cut) = tags_by_push(&b, &n).await.unwrap();
            assert_eq!((ordered.len(), cut), (MAX_ORDERED_TAGS, true), "at most this many, and said so");
        });
    }

    #[test]
    fn a_tag_whose_manifest_went_is_left_out_and_a_corrupt_one_is_an_error() {
        block_on(async {
            let (b, f) = (MemoryBucket::new(), MemoryFacts::new(0));
            let n = RepoName::parse("gone").unwrap();
            let c = blob(&b, &n, b"{}").await;
            put(&b, &f, &n, "here", image(&c, 2, &[])).await;
            // Listed, but its manifest was deleted meanwhile.
            let tag = Tag::parse("dangling").unwrap();
            let absent = Digest::of(Algorithm::Sha256, b"deleted");
            b.put(&PathSpec::TagCurrent { name: &n, tag: &tag }.key(), absent.to_string().into_bytes(), None, PutIf::Always).await.unwrap();
            let page = tags_page(&b, &f, &n, 0, 10).await.unwrap();
            assert_eq!(page.tags.iter().map(|t| t.tag.as_str()).collect::<Vec<_>>(), ["here"]);
            assert_eq!(page.total, 2);
            // A link that is no digest at all is a fault, not a missing tag.
            b.put(&PathSpec::TagCurrent { name: &n, tag: &tag }.key(), b"garbage".to_vec(), None, PutIf::Always).await.unwrap();
            assert!(tags_page(&b, &f, &n, 0, 10).await.is_err());
        });
    }

    #[test]
    fn a_child_whose_bytes_are_lost_is_a_fault_not_a_missing_child() {
        block_on(async {
            let (b, f) = (MemoryBucket::new(), MemoryFacts::new(0));
            let n = RepoName::parse("lost").unwrap();
            let c = blob(&b, &n, b"{}").await;
            let bytes = image(&c, 2, &[]);
            let by_digest = Digest::of(Algorithm::Sha256, &bytes).to_string();
            let child = put(&b, &f, &n, &by_digest, bytes).await;
            let index = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{child}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
            );
            put(&b, &f, &n, "multi", index.into_bytes()).await;
            assert_eq!(tags_page(&b, &f, &n, 0, 10).await.unwrap().tags[0].size, Some(0));
            // The child's revision is there, its bytes are not: storage is broken, say so.
            let rev = manifests::revision(&b, &n, &child).await.unwrap().unwrap();
            b.delete(&[rev.object_key(&child)]).await.unwrap();
            let uncached = MemoryFacts::new(0);
            assert!(tags_page(&b, &uncached, &n, 0, 10).await.is_err());
        });
    }

    #[test]
    fn missing_children_and_configs_are_unknown() {
        block_on(async {
            let (b, f) = (MemoryBucket::new(), MemoryFacts::new(0));
            let n = RepoName::parse("sparse").unwrap();
            let absent = Digest::of(Algorithm::Sha256, b"never pushed");
            let index = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{absent}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
            );
            put(&b, &f, &n, "sparse", index.into_bytes()).await;
            let page = tags_page(&b, &f, &n, 0, 10).await.unwrap();
            assert_eq!((page.tags[0].size, page.tags[0].created.as_deref()), (None, None));
            assert_eq!(page.tags[0].platforms.len(), 1);
            // A config too big to read for its created time.
            let big_config = format!(r#"{{"created":"2026-01-01T00:00:00Z","pad":"{}"}}"#, "x".repeat(MAX_CONFIG_BYTES as usize));
            let c = blob(&b, &n, big_config.as_bytes()).await;
            let l = blob(&b, &n, b"layer").await;
            put(&b, &f, &n, "big", image(&c, big_config.len(), &[(l, 5)])).await;
            let big = tags_page(&b, &f, &n, 0, 10).await.unwrap().tags.into_iter().find(|t| t.tag == "big").unwrap();
            assert_eq!((big.size, big.created), (Some(5), None));
            // Exactly at the bound it is still read.
            let head = r#"{"created":"2026-02-02T00:00:00Z","pad":""#;
            let at_bound = format!("{head}{}\"}}", "y".repeat(MAX_CONFIG_BYTES as usize - head.len() - 2));
            assert_eq!(at_bound.len() as u64, MAX_CONFIG_BYTES);
            let c = blob(&b, &n, at_bound.as_bytes()).await;
            let l = blob(&b, &n, b"layer 2").await;
            put(&b, &f, &n, "bound", image(&c, at_bound.len(), &[(l, 7)])).await;
            let bound = tags_page(&b, &f, &n, 0, 10).await.unwrap().tags.into_iter().find(|t| t.tag == "bound").unwrap();
            assert_eq!(bound.created.as_deref(), Some("2026-02-02T00:00:00Z"));
        });
    }
}
