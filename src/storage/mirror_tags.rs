//! Mirrored tags' freshness: for each tag fetched from an upstream, the digest the upstream
//! last named and when (`_mirror/tags/<tag>`); and the upstream's list of tags, as last fetched
//! (`_mirror/taglist`). The tags themselves are ordinary tags (`tags`); these records only
//! decide when to ask the upstream again (`mirror::freshness`).

use serde::{Deserialize, Serialize};

use super::paths::PathSpec;
use super::{Bucket, PutIf};
use crate::oci::digest::Digest;
use crate::oci::error::Result;
use crate::oci::name::{RepoName, Tag};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    pub digest: String,
    /// When the upstream confirmed the digest (ms since the epoch).
    pub checked: u64,
}

/// The record of `tag`, if the tag was ever fetched (a corrupt record counts as none: the
/// upstream is asked again).
pub async fn get<B: Bucket + ?Sized>(bucket: &B, name: &RepoName, tag: &Tag) -> Result<Option<(Digest, u64)>> {
    let Some((bytes, _)) = bucket.get(&PathSpec::MirrorTag { name, tag }.key()).await? else { return Ok(None) };
    let record: Option<Checked> = serde_json::from_slice(&bytes).ok();
    Ok(record.and_then(|r| Digest::parse(&r.digest).ok().map(|d| (d, r.checked))))
}

/// Records that the upstream named `digest` for `tag` at `now`.
pub async fn set<B: Bucket + ?Sized>(bucket: &B, name: &RepoName, tag: &Tag, digest: &Digest, now: u64) -> Result<()> {
    let record = Checked { digest: digest.to_string(), checked: now };
    bucket.put(&PathSpec::MirrorTag { name, tag }.key(), serde_json::to_vec(&record).expect("serializable"), None, PutIf::Always).await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TagList {
    tags: Vec<String>,
    checked: u64,
}

/// The upstream's tags of `name` as last fetched, and when (a corrupt record counts as none).
pub async fn get_list<B: Bucket + ?Sized>(bucket: &B, name: &RepoName) -> Result<Option<(Vec<String>, u64)>> {
    let Some((bytes, _)) = bucket.get(&PathSpec::MirrorTagList { name }.key()).await? else { return Ok(None) };
    Ok(serde_json::from_slice::<TagList>(&bytes).ok().map(|l| (l.tags, l.checked)))
}

/// Records the upstream's tags of `name` (lexically ordered) at `now`.
pub async fn set_list<B: Bucket + ?Sized>(bucket: &B, name: &RepoName, tags: &[String], now: u64) -> Result<()> {
    let list = TagList { tags: tags.to_vec(), checked: now };
    bucket.put(&PathSpec::MirrorTagList { name }.key(), serde_json::to_vec(&list).expect("serializable"), None, PutIf::Always).await?;
    Ok(())
}
