//! Tags: the current link of each tag (`_manifests/tags/<tag>`, holding the digest) and the tag
//! index under each revision (so deleting a revision finds the tags still pointing at it).

use super::catalog;
use super::facts::{self, FactCache};
use super::listing::{list_page, Page};
use super::paths::PathSpec;
use super::{Bucket, PutIf};
use crate::oci::digest::Digest;
use crate::oci::error::{Code, RegistryError, Result};
use crate::oci::name::{RepoName, Tag};

pub(super) fn parse_tag_link(name: &RepoName, tag: &Tag, bytes: &[u8]) -> Result<Digest> {
    let s = String::from_utf8_lossy(bytes);
    Digest::parse(&s).map_err(|_| RegistryError::internal(format!("corrupt tag link {name}:{tag}")))
}

/// The digest a tag points at.
pub async fn resolve_tag<B: Bucket + ?Sized>(bucket: &B, name: &RepoName, tag: &Tag) -> Result<Option<Digest>> {
    match bucket.get(&PathSpec::TagCurrent { name, tag }.key()).await? {
        Some((bytes, _)) => Ok(Some(parse_tag_link(name, tag, &bytes)?)),
        None => Ok(None),
    }
}

/// Points `tag` at `digest` (its current link, then its entry in the revision's tag index).
pub async fn point<B: Bucket + ?Sized, F: FactCache + ?Sized>(bucket: &B, facts: &F, name: &RepoName, tag: &Tag, digest: &Digest) -> Result<()> {
    bucket.put(&PathSpec::TagCurrent { name, tag }.key(), digest.to_string().into_bytes(), None, PutIf::Always).await?;
    bucket.put(&PathSpec::TagIndexEntry { name, digest, tag }.key(), Vec::new(), None, PutIf::Always).await?;
    facts::forget(facts, &[PathSpec::TagCurrent { name, tag }]).await;
    Ok(())
}

/// Points `tag` at `digest` unless it points there already with its index entry (a re-push):
/// two reads then, instead of two writes. The tag's newest index entry stays the one of `digest`
/// (written when the tag last moved here), as `retention` reads it; a pointing left without its
/// entry (a request that died between the two writes) is written again.
pub async fn repoint<B: Bucket + ?Sized, F: FactCache + ?Sized>(bucket: &B, facts: &F, name: &RepoName, tag: &Tag, digest: &Digest) -> Result<()> {
    if in_place(bucket, name, tag, digest).await? {
        return Ok(());
    }
    point(bucket, facts, name, tag, digest).await
}

/// Whether `tag` points at `digest` already, with its index entry (two reads).
async fn in_place<B: Bucket + ?Sized>(bucket: &B, name: &RepoName, tag: &Tag, digest: &Digest) -> Result<bool> {
    Ok(resolve_tag(bucket, name, tag).await?.as_ref() == Some(digest) && bucket.head(&PathSpec::TagIndexEntry { name, digest, tag }.key()).await?.is_some())
}

/// Which tags of a repository are immutable: the rule that makes `tag` so, described for a
/// message (`policy::immutable`, applied by the caller), or `None`.
pub type Immutable<'a> = &'a dyn Fn(&Tag) -> Option<String>;

/// The refusal of a change to the immutable `tag`.
pub fn immutable_refusal(name: &RepoName, tag: &Tag, rule: &str, what: &str) -> RegistryError {
    RegistryError::new(Code::Denied, format!("tag {tag} of {name} is immutable by {rule}: it cannot {what}"))
}

/// Points the immutable `tag` (by `rule`) at `digest`: only if the tag does not exist yet, by a
/// conditional write (of racing first pushes exactly one wins), or already points there (a
/// retried push, which writes nothing when the tag's index entry is there too). Otherwise 403
/// DENIED.
pub async fn point_once<B: Bucket + ?Sized, F: FactCache + ?Sized>(bucket: &B, facts: &F, name: &RepoName, tag: &Tag, digest: &Digest, rule: &str) -> Result<()> {
    // An immutable tag that points here stays here: a re-push finds it in place.
    if in_place(bucket, name, tag, digest).await? {
        return Ok(());
    }
    let key = PathSpec::TagCurrent { name, tag }.key();
    if bucket.put(&key, digest.to_string().into_bytes(), None, PutIf::Absent).await?.is_none() {
        let current = resolve_tag(bucket, name, tag).await?;
        if current.as_ref() != Some(digest) {
            let now = current.map(|d| format!(" (it points at {d})")).unwrap_or_default();
            return Err(immutable_refusal(name, tag, rule, &format!("move to {digest}{now}")));
        }
    }
    bucket.put(&PathSpec::TagIndexEntry { name, digest, tag }.key(), Vec::new(), None, PutIf::Always).await?;
    facts::forget(facts, &[PathSpec::TagCurrent { name, tag }]).await;
    Ok(())
}

/// The tags in the tag index of revision `digest`, each with whether it still points there
/// (a tag moved to another revision since does not).
async fn index_of<B: Bucket + ?Sized>(bucket: &B, name: &RepoName, digest: &Digest) -> Result<Vec<(Tag, bool)>> {
    let index_prefix = PathSpec::TagIndex { name, digest }.key();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = bucket.list(&index_prefix, after.as_deref(), super::MAX_PAGE).await?;
        for key in &page.keys {
            let tag = PathSpec::tag_of_index_key(&index_prefix, key).ok_or_else(|| RegistryError::internal(format!("corrupt tag index key {key}")))?;
            let points_here = resolve_tag(bucket, name, &tag).await?.as_ref() == Some(digest);
            out.push((tag, points_here));
        }
        after = page.keys.last().cloned();
        if !page.truncated {
            return Ok(out);
        }
    }
}

/// The tags of `name` that point at `digest` now.
pub async fn pointing_at<B: Bucket + ?Sized>(bucket: &B, name: &RepoName, digest: &Digest) -> Result<Vec<Tag>> {
    Ok(index_of(bucket, name, digest).await?.into_iter().filter(|(_, here)| *here).map(|(tag, _)| tag).collect())
}

/// Removes `tag`, which points at `digest`.
pub async fn remove<B: Bucket + ?Sized, F: FactCache + ?Sized>(bucket: &B, facts: &F, name: &RepoName, tag: &Tag, digest: &Digest) -> Result<()> {
    bucket
        .delete(&[PathSpec::TagCurrent { name, tag }.key(), PathSpec::TagIndexEntry { name, digest, tag }.key()])
        .await?;
    facts::forget(facts, &[PathSpec::TagCurrent { name, tag }]).await;
    Ok(())
}

/// Removes the tag index of the revision `digest`, and every tag in it that still points at
/// `digest` (a tag moved to another revision since stays).
pub async fn remove_all_pointing_at<B: Bucket + ?Sized, F: FactCache + ?Sized>(bucket: &B, facts: &F, name: &RepoName, digest: &Digest) -> Result<()> {
    let index = index_of(bucket, name, digest).await?;
    let removed: Vec<&Tag> = index.iter().filter(|(_, here)| *here).map(|(tag, _)| tag).collect();
    let mut doomed: Vec<String> = removed.iter().map(|tag| PathSpec::TagCurrent { name, tag }.key()).collect();
    doomed.extend(index.iter().map(|(tag, _)| PathSpec::TagIndexEntry { name, digest, tag }.key()));
    bucket.delete(&doomed).await?;
    let forgotten: Vec<PathSpec> = removed.into_iter().map(|tag| PathSpec::TagCurrent { name, tag }).collect();
    facts::forget(facts, &forgotten).await;
    Ok(())
}

/// Tags of `name` in lexical order; NAME_UNKNOWN when the repository does not exist.
pub async fn list<B: Bucket + ?Sized>(bucket: &B, name: &RepoName, last: Option<&str>, n: usize) -> Result<Page> {
    if !catalog::repository_exists(bucket, name).await? {
        return Err(RegistryError::new(Code::NameUnknown, format!("repository {name} not known")));
    }
    list_page(bucket, &PathSpec::Tags { name }.key(), last, n).await
}

