//! Manifests: byte-exact storage in the blob store and revision links (`tags`, `referrers` and
//! `catalog` keep the entries a PUT adds beside them).
//!
//! A PUT stores the bytes under their digest (`BlobData`, with the media type as the object's
//! content type), then links the revision, then the tag, the referrers entry and the catalog
//! entry, in that order: a reader that sees a tag always finds the revision behind it.
//! Pulls ([`stat`], [`get`]) read through the fact cache; writes and deletes read the bucket
//! and forget what they change.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::facts::{self, FactCache};
use super::listing::Enumerated;
use super::{blobs, catalog, referrers, tags};
use super::paths::PathSpec;
use super::{Bucket, PutIf};
use crate::oci::digest::{Algorithm, Digest};
use crate::oci::error::{Code, RegistryError, Result};
use crate::oci::manifest::{self, ParsedManifest};
use crate::oci::name::{Reference, RepoName, Tag};

/// The manifest revision link's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub media_type: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Bucket key of the bytes (absent in old links: the canonical `data` key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

impl Revision {
    /// Where the manifest's bytes are.
    pub fn object_key(&self, digest: &Digest) -> String {
        self.object.clone().unwrap_or_else(|| PathSpec::BlobData { digest }.key())
    }
}

/// What a successful PUT reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub digest: Digest,
    pub media_type: String,
    pub subject: Option<Digest>,
}

/// A manifest as served.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

fn unknown(reference: &impl std::fmt::Display) -> RegistryError {
    RegistryError::new(Code::ManifestUnknown, format!("manifest unknown: {reference}"))
}

/// Stores a manifest pushed to `name` under `reference` at `now`; `id` names a fresh object
/// if the bytes cannot go to their canonical key.
#[allow(clippy::too_many_arguments)]
pub async fn put<B: Bucket + ?Sized, F: FactCache + ?Sized>(
    bucket: &B,
    facts: &F,
    name: &RepoName,
    reference: &Reference,
    bytes: Vec<u8>,
    content_type: Option<&str>,
    now: u64,
    id: &str,
) -> Result<Stored> {
    put_tagged(bucket, facts, name, reference, &[], bytes, content_type, now, id, &|_| None).await
}

/// [`put`], also pointing `extra_tags` at the manifest (the `?tag=` parameters of a PUT by
/// digest), and never moving a tag `immutable` names (403 DENIED, checked before anything is
/// written and enforced by a conditional write: `tags::point_once`).
#[allow(clippy::too_many_arguments)]
pub async fn put_tagged<B: Bucket + ?Sized, F: FactCache + ?Sized>(
    bucket: &B,
    facts: &F,
    name: &RepoName,
    reference: &Reference,
    extra_tags: &[Tag],
    bytes: Vec<u8>,
    content_type: Option<&str>,
    now: u64,
    id: &str,
    immutable: tags::Immutable<'_>,
) -> Result<Stored> {
    store(bucket, facts, name, reference, extra_tags, bytes, content_type, now, id, References::Required, immutable).await
}

/// Whether the blobs a manifest names must already be in the repository when it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum References {
    /// A push: every blob must have been pushed first (MANIFEST_BLOB_UNKNOWN otherwise).
    Required,
    /// A mirror fill: the manifest comes first, its blobs when a client pulls them.
    Deferred,
}

/// Stores a manifest fetched from the upstream `name` mirrors, verified against `digest`, and
/// points `tag` at it. The blobs it names are fetched when pulled, so they need not be here.
#[allow(clippy::too_many_arguments)]
pub async fn put_mirrored<B: Bucket + ?Sized, F: FactCache + ?Sized>(
    bucket: &B,
    facts: &F,
    name: &RepoName,
    digest: &Digest,
    tag: Option<&Tag>,
    bytes: Vec<u8>,
    content_type: Option<&str>,
    now: u64,
    id: &str,
) -> Result<Stored> {
    let reference = Reference::Digest(digest.clone());
    let tags: Vec<Tag> = tag.into_iter().cloned().collect();
    store(bucket, facts, name, &reference, &tags, bytes, content_type, now, id, References::Deferred, &|_| None).await
}

#[allow(clippy::too_many_arguments)]
async fn store<B: Bucket + ?Sized, F: FactCache + ?Sized>(
    bucket: &B,
    facts: &F,
    name: &RepoName,
    reference: &Reference,
    extra_tags: &[Tag],
    bytes: Vec<u8>,
    content_type: Option<&str>,
    now: u64,
    id: &str,
    references: References,
    immutable: tags::Immutable<'_>,
) -> Result<Stored> {
    if bytes.len() > manifest::MAX_MANIFEST_BYTES {
        return Err(RegistryError::new(Code::TooLarge, format!("manifest exceeds {} bytes", manifest::MAX_MANIFEST_BYTES)));
    }
    let parsed = manifest::parse_pushed(&bytes, content_type)?;
    let digest = match reference {
        Reference::Digest(want) => {
            let got = Digest::of(want.algorithm(), &bytes);
            if &got != want {
                return Err(RegistryError::new(Code::DigestInvalid, format!("manifest digest is {got}, not {want}")));
            }
            got
        }
        Reference::Tag(_) => Digest::of(Algorithm::Sha256, &bytes),
    };
    let by_reference = match reference {
        Reference::Tag(tag) => Some(tag),
        Reference::Digest(_) => None,
    };
    let all_tags: BTreeSet<&Tag> = by_reference.into_iter().chain(extra_tags).collect();
    // An immutable tag that points elsewhere refuses the whole PUT before anything is written.
    let guarded: Vec<(&Tag, String)> = all_tags.iter().filter_map(|t| immutable(t).map(|rule| (*t, rule))).collect();
    for (tag, rule) in &guarded {
        if let Some(current) = tags::resolve_tag(bucket, name, tag).await?.filter(|c| c != &digest) {
            return Err(tags::immutable_refusal(name, tag, rule, &format!("move to {digest} (it points at {current})")));
        }
    }
    if references == References::Required {
        check_references(bucket, name, &parsed, now).await?;
    }

    let size = bytes.len() as u64;
    // The same bytes stored before are claimed, not written again.
    let (object, stored_before) = match blobs::claim(bucket, &digest, now).await? {
        Some(desc) => (desc.object, true),
        None => {
            let key = blobs::fresh_data_key(bucket, &digest, id).await?;
            bucket.put(&key, bytes, Some(&parsed.media_type), PutIf::Always).await?;
            (blobs::record(bucket, &digest, size, key, now).await?.0.object, false)
        }
    };
    let revision = Revision {
        media_type: parsed.media_type.clone(),
        size,
        subject: parsed.subject.as_ref().map(|s| s.to_string()),
        object: Some(object),
    };
    let revision_json = serde_json::to_vec(&revision).expect("serializable");
    // A manifest stored before may be a re-push (CI pushing the same image again): what is in
    // place already is read, not written again (a read is a tenth of a write's price). A new
    // manifest's links cannot be there: they are written without looking.
    let revision_key = PathSpec::ManifestRevision { name, digest: &digest }.key();
    if !(stored_before && bucket.get(&revision_key).await?.is_some_and(|(b, _)| b == revision_json)) {
        bucket.put(&revision_key, revision_json, None, PutIf::Always).await?;
    }
    for tag in all_tags {
        match guarded.iter().find(|(t, _)| *t == tag) {
            Some((_, rule)) => tags::point_once(bucket, facts, name, tag, &digest, rule).await?,
            None if stored_before => tags::repoint(bucket, facts, name, tag, &digest).await?,
            None => tags::point(bucket, facts, name, tag, &digest).await?,
        }
    }
    if let Some(subject) = &parsed.subject {
        referrers::record(bucket, name, subject, &parsed, &digest, size).await?;
    }
    catalog::record(bucket, name).await?;
    Ok(Stored { digest, media_type: parsed.media_type, subject: parsed.subject })
}

/// Storage checks of one manifest PUT in flight at once: a manifest names at most
/// `manifest::MAX_DESCRIPTORS` digests, each checked once, so one request's fan-out stays small.
const CHECKS_IN_FLIGHT: usize = 8;

/// Every blob the manifest names (config, layers, artifact blobs; not its non-distributable
/// layers) must be linked in the repository; the first missing one is reported. Each is claimed
/// (so a concurrent garbage collection keeps it), and a link left pointing at collected bytes is
/// renewed to the blob's current copy. An index's children need not be there (a sparse index);
/// those that are, are claimed too. Each digest is checked once, a few at a time.
async fn check_references<B: Bucket + ?Sized>(bucket: &B, name: &RepoName, parsed: &ParsedManifest, now: u64) -> Result<()> {
    use futures_util::stream::{self, TryStreamExt};
    let missing = |digest: &Digest| RegistryError::new(Code::ManifestBlobUnknown, digest.to_string());
    let blobs: BTreeSet<&Digest> = parsed.blobs.iter().collect();
    let children: BTreeSet<&Digest> = parsed.manifests.iter().filter(|d| !blobs.contains(d)).collect();
    let checks = blobs.into_iter().map(|d| (d, true)).chain(children.into_iter().map(|d| (d, false)));
    stream::iter(checks.map(Ok))
        .try_for_each_concurrent(CHECKS_IN_FLIGHT, |(digest, is_blob)| async move {
            if is_blob {
                let link = blobs::linked(bucket, name, digest).await?.ok_or_else(|| missing(digest))?;
                let desc = blobs::claim(bucket, digest, now).await?.ok_or_else(|| missing(digest))?;
                if link.object != desc.object {
                    blobs::link(bucket, name, digest, &desc).await?;
                }
            } else if bucket.head(&PathSpec::ManifestRevision { name, digest }.key()).await?.is_some() {
                blobs::claim(bucket, digest, now).await?;
            }
            Ok(())
        })
        .await
}

fn parse_revision(bytes: &[u8]) -> Result<Revision> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::internal(format!("corrupt revision link: {e}")))
}

/// The revision link of `digest` in `name`.
pub async fn revision<B: Bucket + ?Sized>(bucket: &B, name: &RepoName, digest: &Digest) -> Result<Option<Revision>> {
    match bucket.get(&PathSpec::ManifestRevision { name, digest }.key()).await? {
        Some((bytes, _)) => Ok(Some(parse_revision(&bytes)?)),
        None => Ok(None),
    }
}

/// One page of the revisions of `name` after the cursor `after`: each digest with the cursor
/// that resumes after it.
pub async fn revisions<B: Bucket + ?Sized>(bucket: &B, name: &RepoName, after: Option<&str>, n: usize) -> Result<Enumerated<(Digest, String)>> {
    let prefix = PathSpec::Revisions { name }.key();
    let listing = bucket.list(&prefix, after, n).await?;
    let items = listing
        .keys
        .iter()
        .filter_map(|k| PathSpec::digest_of_revision_key(&prefix, k).map(|d| (d, k.clone())))
        .collect();
    let next = if listing.truncated { listing.keys.last().cloned() } else { None };
    Ok(Enumerated { items, next })
}

/// Resolves `reference` to a digest and revision for a pull, or MANIFEST_UNKNOWN.
pub async fn stat<B: Bucket + ?Sized, F: FactCache + ?Sized>(
    bucket: &B,
    facts: &F,
    name: &RepoName,
    reference: &Reference,
) -> Result<(Digest, Revision)> {
    let digest = match reference {
        Reference::Digest(d) => d.clone(),
        Reference::Tag(tag) => match facts::read(bucket, facts, &PathSpec::TagCurrent { name, tag }).await? {
            Some(bytes) => tags::parse_tag_link(name, tag, &bytes)?,
            None => return Err(unknown(reference)),
        },
    };
    let rev = match facts::read(bucket, facts, &PathSpec::ManifestRevision { name, digest: &digest }).await? {
        Some(bytes) => parse_revision(&bytes)?,
        None => return Err(unknown(reference)),
    };
    Ok((digest, rev))
}

/// The manifest bytes and media type, for a pull.
pub async fn get<B: Bucket + ?Sized, F: FactCache + ?Sized>(
    bucket: &B,
    facts: &F,
    name: &RepoName,
    reference: &Reference,
) -> Result<Fetched> {
    let (digest, rev) = stat(bucket, facts, name, reference).await?;
    let key = rev.object_key(&digest);
    let bytes = facts::read(bucket, facts, &PathSpec::Object { key: &key })
        .await?
        .ok_or_else(|| RegistryError::internal(format!("manifest bytes missing for {digest}")))?;
    Ok(Fetched { digest, media_type: rev.media_type, bytes })
}

/// DELETE by digest removes the revision, every tag still pointing at it and its referrers
/// entry; DELETE by tag removes only the tag. Cached copies are forgotten.
pub async fn delete<B: Bucket + ?Sized, F: FactCache + ?Sized>(bucket: &B, facts: &F, name: &RepoName, reference: &Reference) -> Result<()> {
    match reference {
        Reference::Tag(tag) => {
            let digest = tags::resolve_tag(bucket, name, tag).await?.ok_or_else(|| unknown(reference))?;
            tags::remove(bucket, facts, name, tag, &digest).await
        }
        Reference::Digest(digest) => {
            let rev = revision(bucket, name, digest).await?.ok_or_else(|| unknown(reference))?;
            tags::remove_all_pointing_at(bucket, facts, name, digest).await?;
            let mut doomed = vec![PathSpec::ManifestRevision { name, digest }.key()];
            if let Some(subject) = rev.subject.as_deref().and_then(|s| Digest::parse(s).ok()) {
                doomed.push(PathSpec::ReferrerEntry { name, subject: &subject, digest }.key());
            }
            bucket.delete(&doomed).await?;
            facts::forget(facts, &[PathSpec::ManifestRevision { name, digest }]).await;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::manifest::{OCI_INDEX, OCI_MANIFEST};
    use crate::storage::listing::Page;
    use crate::storage::memory::{MemoryBucket, MemoryFacts};
    use futures_executor::block_on;

    fn repo(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    async fn push_blob(b: &MemoryBucket, name: &RepoName, content: &[u8]) -> Digest {
        let d = Digest::of(Algorithm::Sha256, content);
        blobs::commit(b, name, &d, content.len() as u64, "x".into(), 1).await.unwrap();
        d
    }

    fn image(config: &Digest, layer: &Digest, extra: &str) -> Vec<u8> {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":1}}]{extra}}}"#
        )
        .into_bytes()
    }

    fn tag(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn a_re_push_rewrites_nothing_in_place_and_a_moved_tag_is_written_again() {
        block_on(async {
            let (b, f) = (MemoryBucket::new(), MemoryFacts::new(0));
            let n = repo("ci/app");
            let c = push_blob(&b, &n, b"c").await;
            let l = push_blob(&b, &n, b"l").await;
            let (one, two) = (image(&c, &l, ""), image(&c, &l, r#","annotations":{"b":"2"}"#));
            let d1 = put(&b, &f, &n, &tag("latest"), one.clone(), None, 1, "id1").await.unwrap().digest;
            let etags = || async {
                let mut out = Vec::new();
                for k in b.keys().into_iter().filter(|k| k.starts_with("repositories/ci/app/_manifests/")) {
                    out.push((k.clone(), b.get(&k).await.unwrap().unwrap().1));
                }
                out
            };
            let before = etags().await;
            // The same manifest to the same tag again: every link is as it was (same etags).
            put(&b, &f, &n, &tag("latest"), one.clone(), None, 2, "id2").await.unwrap();
            assert_eq!(etags().await, before);
            // The tag moved away and back: written again, and its newest index entry is the
            // manifest's it points at (as retention reads a tag).
            let d2 = put(&b, &f, &n, &tag("latest"), two, None, 3, "id3").await.unwrap().digest;
            assert_eq!(tags::resolve_tag(&b, &n, &Tag::parse("latest").unwrap()).await.unwrap(), Some(d2));
            put(&b, &f, &n, &tag("latest"), one.clone(), None, 4, "id4").await.unwrap();
            let latest = Tag::parse("latest").unwrap();
            assert_eq!(tags::resolve_tag(&b, &n, &latest).await.unwrap(), Some(d1.clone()));
            let entry = PathSpec::TagIndexEntry { name: &n, digest: &d1, tag: &latest }.key();
            let (_, first_etag) = before.iter().find(|(k, _)| *k == entry).unwrap();
            assert_ne!(&b.get(&entry).await.unwrap().unwrap().1, first_etag, "the entry was written again");
            // The stored manifest pushed to a new tag: that tag is written.
            put(&b, &f, &n, &tag("v1"), one, None, 5, "id5").await.unwrap();
            assert_eq!(tags::resolve_tag(&b, &n, &Tag::parse("v1").unwrap()).await.unwrap(), Some(d1));
        });
    }

    #[test]
    fn immutable_tags_never_move_but_take_the_same_digest_again() {
        block_on(async {
            let (b, f) = (MemoryBucket::interleaving(), MemoryFacts::new(0));
            let n = repo("prod/app");
            let c = push_blob(&b, &n, b"c").await;
            let l = push_blob(&b, &n, b"l").await;
            let guard = |t: &Tag| (t.as_str() == "v1").then(|| "rule 1".to_string());
            let m1 = image(&c, &l, "");
            let m2 = image(&c, &l, r#","annotations":{"n":"2"}"#);
            let d1 = put_tagged(&b, &f, &n, &tag("v1"), &[], m1.clone(), None, 1, "a", &guard).await.unwrap().digest;
            // A retried push of the same digest is accepted.
            assert_eq!(put_tagged(&b, &f, &n, &tag("v1"), &[], m1.clone(), None, 2, "b", &guard).await.unwrap().digest, d1);
            // Moving it is refused before anything is written, by tag or by `?tag=`.
            let d2 = Digest::of(Algorithm::Sha256, &m2);
            for (reference, extra) in [(tag("v1"), vec![]), (Reference::Digest(d2.clone()), vec![Tag::parse("v1").unwrap()])] {
                let e = put_tagged(&b, &f, &n, &reference, &extra, m2.clone(), None, 3, "c", &guard).await.unwrap_err();
                assert_eq!(e.code, Code::Denied);
                assert!(e.detail.contains("rule 1") && e.detail.contains(&d1.to_string()), "{}", e.detail);
                assert!(revision(&b, &n, &d2).await.unwrap().is_none());
            }
            assert_eq!(tags::resolve_tag(&b, &n, &Tag::parse("v1").unwrap()).await.unwrap(), Some(d1.clone()));
            // Other tags move freely.
            put_tagged(&b, &f, &n, &tag("latest"), &[], m1.clone(), None, 4, "d", &guard).await.unwrap();
            put_tagged(&b, &f, &n, &tag("latest"), &[], m2.clone(), None, 5, "e", &guard).await.unwrap();

            // First pushes of different digests to a new immutable tag, at the same time: exactly
            // one wins, the others are refused, and the tag points at the winner.
            let guard_v2 = |t: &Tag| (t.as_str() == "v2").then(|| "rule 2".to_string());
            let bodies: Vec<Vec<u8>> = (0..4).map(|i| image(&c, &l, &format!(r#","annotations":{{"race":"{i}"}}"#))).collect();
            let v2 = tag("v2");
            let results = futures_util::future::join_all(
                bodies.iter().enumerate().map(|(i, m)| put_tagged(&b, &f, &n, &v2, &[], m.clone(), None, 6, ["r0", "r1", "r2", "r3"][i], &guard_v2)),
            )
            .await;
            let winners: Vec<&Stored> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(winners.len(), 1, "{results:?}");
            assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|e| e.code == Code::Denied));
            assert_eq!(tags::resolve_tag(&b, &n, &Tag::parse("v2").unwrap()).await.unwrap(), Some(winners[0].digest.clone()));
        });
    }

    #[test]
    fn put_get_tag_delete() {
        block_on(async {
            let b = MemoryBucket::new();
            let f = MemoryFacts::new(0);
            let n = repo("app");
            let c = push_blob(&b, &n, b"c").await;
            let l = push_blob(&b, &n, b"l").await;
            let bytes = image(&c, &l, "");
            let stored = put(&b, &f, &n, &tag("v1"), bytes.clone(), Some(OCI_MANIFEST), 1, "id").await.unwrap();
            assert_eq!(stored.digest, Digest::of(Algorithm::Sha256, &bytes));
            put(&b, &f, &n, &tag("v2"), bytes.clone(), None, 1, "id").await.unwrap();
            let got = get(&b, &f, &n, &tag("v1")).await.unwrap();
            assert_eq!(got.bytes, bytes);
            assert_eq!(got.media_type, OCI_MANIFEST);
            let by_digest = get(&b, &f, &n, &Reference::Digest(stored.digest.clone())).await.unwrap();
            assert_eq!(by_digest.bytes, bytes);
            assert_eq!(tags::list(&b, &n, None, 10).await.unwrap().items, vec!["v1", "v2"]);
            // Delete by tag removes only the tag.
            delete(&b, &f, &n, &tag("v1")).await.unwrap();
            assert_eq!(get(&b, &f, &n, &tag("v1")).await.unwrap_err().code, Code::ManifestUnknown);
            assert!(get(&b, &f, &n, &tag("v2")).await.is_ok());
            // Delete by digest removes the revision and the tags still pointing at it.
            delete(&b, &f, &n, &Reference::Digest(stored.digest.clone())).await.unwrap();
            assert_eq!(get(&b, &f, &n, &tag("v2")).await.unwrap_err().code, Code::ManifestUnknown);
            assert!(tags::list(&b, &n, None, 10).await.unwrap().items.is_empty());
            assert_eq!(delete(&b, &f, &n, &Reference::Digest(stored.digest)).await.unwrap_err().code, Code::ManifestUnknown);
        });
    }

    #[test]
    fn storage_totals_follow_pushes_mounts_and_deletes() {
        use crate::storage::memory::MemoryTally;
        use crate::storage::stats::{apply_all, TallyRows, Totals};
        block_on(async {
            let (b, f) = (MemoryBucket::counting(), MemoryFacts::new(0));
            let rows = MemoryTally::default();
            let settle = |at| apply_all(&rows, &b.ledger().take(), at).unwrap();
            let n = repo("app");
            let c = push_blob(&b, &n, b"config").await;
            let l = push_blob(&b, &n, b"layer!!").await;
            let bytes = image(&c, &l, "");
            let m = bytes.len() as u64;
            let stored = put(&b, &f, &n, &tag("v1"), bytes.clone(), Some(OCI_MANIFEST), 1, "id").await.unwrap();
            // The same manifest pushed again, under a second tag: one manifest, two tags.
            put(&b, &f, &n, &tag("v1"), bytes.clone(), Some(OCI_MANIFEST), 2, "id2").await.unwrap();
            put(&b, &f, &n, &tag("v2"), bytes.clone(), Some(OCI_MANIFEST), 2, "id3").await.unwrap();
            settle(10);
            assert_eq!(rows.totals("app").unwrap(), Totals { blobs: 2, blob_bytes: 13, manifests: 1, manifest_bytes: m, tags: 2 });
            // The registry stores each blob once: the config, the layer and the manifest's bytes.
            assert_eq!(rows.totals("").unwrap(), Totals { blobs: 3, blob_bytes: 13 + m, ..Totals::default() });

            // A mount links the layer into a second repository; the bytes are not stored twice.
            let other = repo("other");
            assert!(blobs::mount(&b, &other, &n, &l, 3).await.unwrap().is_some());
            settle(10);
            assert_eq!(rows.totals("other").unwrap(), Totals { blobs: 1, blob_bytes: 7, ..Totals::default() });
            assert_eq!(rows.totals("").unwrap().blobs, 3);
            assert_eq!(rows.page("", 10).unwrap().len(), 2);

            delete(&b, &f, &n, &tag("v1")).await.unwrap();
            settle(10);
            assert_eq!(rows.totals("app").unwrap().tags, 1);
            delete(&b, &f, &n, &Reference::Digest(stored.digest)).await.unwrap();
            assert!(blobs::unlink(&b, &f, &other, &l).await.unwrap());
            settle(10);
            assert_eq!(rows.totals("app").unwrap(), Totals { blobs: 2, blob_bytes: 13, ..Totals::default() });
            assert!(rows.totals("other").unwrap().is_empty());
        });
    }

    #[test]
    fn pulls_by_digest_are_served_from_the_fact_cache_until_deleted() {
        block_on(async {
            let b = MemoryBucket::new();
            let f = MemoryFacts::new(0);
            let n = repo("app");
            let c = push_blob(&b, &n, b"c").await;
            let l = push_blob(&b, &n, b"l").await;
            let stored = put(&b, &f, &n, &tag("v1"), image(&c, &l, ""), None, 1, "id").await.unwrap();
            let by_digest = Reference::Digest(stored.digest.clone());
            get(&b, &f, &n, &by_digest).await.unwrap();
            let reads = b.reads();
            assert_eq!(get(&b, &f, &n, &by_digest).await.unwrap().digest, stored.digest);
            assert_eq!(b.reads(), reads, "a warm pull by digest reads nothing from the bucket");
            // By tag, the tag is read fresh every time (no staleness by default).
            get(&b, &f, &n, &tag("v1")).await.unwrap();
            assert_eq!(b.reads(), reads + 1);
            delete(&b, &f, &n, &by_digest).await.unwrap();
            assert_eq!(get(&b, &f, &n, &by_digest).await.unwrap_err().code, Code::ManifestUnknown);
            assert_eq!(stat(&b, &f, &n, &by_digest).await.unwrap_err().code, Code::ManifestUnknown);
        });
    }

    #[test]
    fn a_retagged_manifest_is_seen_at_once_even_with_a_tag_ttl() {
        block_on(async {
            let b = MemoryBucket::new();
            let f = MemoryFacts::new(60);
            let n = repo("app");
            let c = push_blob(&b, &n, b"c").await;
            let l1 = push_blob(&b, &n, b"l1").await;
            let l2 = push_blob(&b, &n, b"l2").await;
            put(&b, &f, &n, &tag("latest"), image(&c, &l1, ""), None, 1, "id").await.unwrap();
            get(&b, &f, &n, &tag("latest")).await.unwrap();
            let new = put(&b, &f, &n, &tag("latest"), image(&c, &l2, ""), None, 1, "id").await.unwrap();
            assert_eq!(get(&b, &f, &n, &tag("latest")).await.unwrap().digest, new.digest);
            delete(&b, &f, &n, &tag("latest")).await.unwrap();
            assert_eq!(get(&b, &f, &n, &tag("latest")).await.unwrap_err().code, Code::ManifestUnknown);
        });
    }

    #[test]
    fn moved_tag_survives_deleting_old_revision() {
        block_on(async {
            let b = MemoryBucket::new();
            let f = MemoryFacts::new(0);
            let n = repo("app");
            let c = push_blob(&b, &n, b"c").await;
            let l1 = push_blob(&b, &n, b"l1").await;
            let l2 = push_blob(&b, &n, b"l2").await;
            let old = put(&b, &f, &n, &tag("latest"), image(&c, &l1, ""), None, 1, "id").await.unwrap();
            let new = put(&b, &f, &n, &tag("latest"), image(&c, &l2, ""), None, 1, "id").await.unwrap();
            delete(&b, &f, &n, &Reference::Digest(old.digest)).await.unwrap();
            assert_eq!(get(&b, &f, &n, &tag("latest")).await.unwrap().digest, new.digest);
        });
    }

    #[test]
    fn missing_references_are_refused() {
        block_on(async {
            let b = MemoryBucket::new();
            let f = MemoryFacts::new(0);
            let n = repo("app");
            let c = push_blob(&b, &n, b"c").await;
            let missing = Digest::of(Algorithm::Sha256, b"nope");
            let err = put(&b, &f, &n, &tag("v1"), image(&c, &missing, ""), None, 1, "id").await.unwrap_err();
            assert_eq!(err.code, Code::ManifestBlobUnknown);
            assert_eq!(err.detail, missing.to_string());
            // A blob linked in another repository does not count.
            let other = repo("other");
            let l = push_blob(&b, &other, b"l").await;
            assert_eq!(put(&b, &f, &n, &tag("v1"), image(&c, &l, ""), None, 1, "id").await.unwrap_err().code, Code::ManifestBlobUnknown);
            assert!(!catalog::repository_exists(&b, &n).await.unwrap());
        });
    }

    #[test]
    fn tag_parameters_point_every_tag_at_the_manifest() {
        block_on(async {
            let b = MemoryBucket::new();
            let f = MemoryFacts::new(0);
            let n = repo("app");
            let c = push_blob(&b, &n, b"c").await;
            let l = push_blob(&b, &n, b"l").await;
            let m = image(&c, &l, "");
            for alg in [Algorithm::Sha256, Algorithm::Sha512] {
                let d = Digest::of(alg, &m);
                let tags = [Tag::parse(&format!("a-{}", alg.as_str())).unwrap(), Tag::parse(&format!("b-{}", alg.as_str())).unwrap()];
                let stored = put_tagged(&b, &f, &n, &Reference::Digest(d.clone()), &tags, m.clone(), None, 1, "m", &|_| None).await.unwrap();
                assert_eq!(stored.digest, d);
                for t in &tags {
                    assert_eq!(tags::resolve_tag(&b, &n, t).await.unwrap(), Some(d.clone()));
                    assert_eq!(get(&b, &f, &n, &Reference::Tag(t.clone())).await.unwrap().digest, d);
                }
            }
            let listed = tags::list(&b, &n, None, 10).await.unwrap().items;
            assert_eq!(listed, vec!["a-sha256", "a-sha512", "b-sha256", "b-sha512"]);
        });
    }

    #[test]
    fn a_sparse_index_is_accepted_and_its_children_may_come_later() {
        block_on(async {
            let b = MemoryBucket::new();
            let f = MemoryFacts::new(0);
            let n = repo("app");
            let c = push_blob(&b, &n, b"c").await;
            let l = push_blob(&b, &n, b"l").await;
            let child = image(&c, &l, "");
            let child_digest = Digest::of(Algorithm::Sha256, &child);
            let absent = Digest::of(Algorithm::Sha256, b"another platform");
            let index = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{child_digest}","size":{}}},{{"mediaType":"{OCI_MANIFEST}","digest":"{absent}","size":1}}]}}"#,
                child.len()
            )
            .into_bytes();
            let stored = put(&b, &f, &n, &tag("multi"), index.clone(), None, 1, "i").await.unwrap();
            let by_tag = get(&b, &f, &n, &tag("multi")).await.unwrap();
            assert_eq!(by_tag.bytes, index, "byte-exact");
            assert_eq!(get(&b, &f, &n, &Reference::Digest(stored.digest)).await.unwrap().bytes, index);
            // The child pushed afterwards is served as usual.
            put(&b, &f, &n, &Reference::Digest(child_digest.clone()), child.clone(), None, 2, "c").await.unwrap();
            assert_eq!(get(&b, &f, &n, &Reference::Digest(child_digest)).await.unwrap().bytes, child);
            // An image manifest's own config and layers are still required.
            let err = put(&b, &f, &n, &tag("v1"), image(&c, &absent, ""), None, 3, "x").await.unwrap_err();
            assert_eq!(err.code, Code::ManifestBlobUnknown);
        });
    }

    #[test]
    fn digest_reference_must_match_and_size_is_bounded() {
        block_on(async {
            let b = MemoryBucket::new();
            let f = MemoryFacts::new(0);
            let n = repo("app");
            let c = push_blob(&b, &n, b"c").await;
            let l = push_blob(&b, &n, b"l").await;
            let wrong = Reference::Digest(Digest::of(Algorithm::Sha256, b"other"));
            assert_eq!(put(&b, &f, &n, &wrong, image(&c, &l, ""), None, 1, "id").await.unwrap_err().code, Code::DigestInvalid);
            let bytes = image(&c, &l, "");
            let sha512 = Reference::Digest(Digest::of(Algorithm::Sha512, &bytes));
            assert!(put(&b, &f, &n, &sha512, bytes, None, 1, "id").await.is_ok());
            let big = vec![b' '; manifest::MAX_MANIFEST_BYTES + 1];
            assert_eq!(put(&b, &f, &n, &tag("big"), big, None, 1, "id").await.unwrap_err().code, Code::TooLarge);
        });
    }

    #[test]
    fn referrers_and_filters() {
        block_on(async {
            let b = MemoryBucket::new();
            let f = MemoryFacts::new(0);
            let n = repo("app");
            let c = push_blob(&b, &n, b"c").await;
            let l = push_blob(&b, &n, b"l").await;
            let subject = Digest::of(Algorithm::Sha256, b"not pushed");
            let sig = format!(r#","artifactType":"application/x.sig","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":1}},"annotations":{{"a":"b"}}"#);
            let sbom = format!(r#","artifactType":"application/x.sbom","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":1}}"#);
            let s1 = put(&b, &f, &n, &Reference::Digest(Digest::of(Algorithm::Sha256, &image(&c, &l, &sig))), image(&c, &l, &sig), None, 1, "id").await.unwrap();
            assert_eq!(s1.subject.as_ref(), Some(&subject));
            let s2 = put(&b, &f, &n, &tag("sbom"), image(&c, &l, &sbom), None, 1, "id").await.unwrap();
            let (all, page) = referrers::list(&b, &n, &subject, None, None, 10).await.unwrap();
            assert_eq!(all.len(), 2);
            assert!(!page.more);
            let (first, page) = referrers::list(&b, &n, &subject, None, None, 1).await.unwrap();
            assert_eq!(first.len(), 1);
            assert!(page.more);
            let (second, _) = referrers::list(&b, &n, &subject, None, page.items.last().map(String::as_str), 1).await.unwrap();
            assert_eq!(second.len(), 1);
            assert_ne!(first[0]["digest"], second[0]["digest"]);
            let (sigs, _) = referrers::list(&b, &n, &subject, Some("application/x.sig"), None, 10).await.unwrap();
            assert_eq!(sigs.len(), 1);
            assert_eq!(sigs[0]["digest"], s1.digest.to_string());
            assert_eq!(sigs[0]["annotations"]["a"], "b");
            delete(&b, &f, &n, &Reference::Digest(s2.digest)).await.unwrap();
            assert_eq!(referrers::list(&b, &n, &subject, None, None, 10).await.unwrap().0.len(), 1);
        });
    }

    #[test]
    fn pagination_is_lexical() {
        block_on(async {
            let b = MemoryBucket::new();
            let f = MemoryFacts::new(0);
            let n = repo("app");
            let c = push_blob(&b, &n, b"c").await;
            let l = push_blob(&b, &n, b"l").await;
            for t in ["b", "a", "c10", "c9", "C"] {
                put(&b, &f, &n, &tag(t), image(&c, &l, ""), None, 1, "id").await.unwrap();
            }
            let p1 = tags::list(&b, &n, None, 2).await.unwrap();
            assert_eq!(p1, Page { items: vec!["C".into(), "a".into()], more: true });
            let p2 = tags::list(&b, &n, Some("a"), 2).await.unwrap();
            assert_eq!(p2, Page { items: vec!["b".into(), "c10".into()], more: true });
            let p3 = tags::list(&b, &n, Some("c10"), 2).await.unwrap();
            assert_eq!(p3, Page { items: vec!["c9".into()], more: false });
            assert_eq!(tags::list(&b, &n, None, 0).await.unwrap(), Page { items: vec![], more: false });
            assert_eq!(tags::list(&b, &repo("nope"), None, 5).await.unwrap_err().code, Code::NameUnknown);
            put(&b, &f, &repo("app/sub"), &tag("x"), image(&c, &l, ""), None, 1, "id").await.unwrap_err();
            blobs::link(&b, &repo("app/sub"), &c, &blobs::BlobDescriptor { size: 1, object: "x".into(), touched: 1, doomed: false, marked: 0 }).await.unwrap();
            blobs::link(&b, &repo("app/sub"), &l, &blobs::BlobDescriptor { size: 1, object: "x".into(), touched: 1, doomed: false, marked: 0 }).await.unwrap();
            put(&b, &f, &repo("app/sub"), &tag("x"), image(&c, &l, ""), None, 1, "id").await.unwrap();
            assert_eq!(catalog::list(&b, None, 10).await.unwrap().items, vec!["app", "app/sub"]);
            assert_eq!(catalog::list(&b, Some("app"), 10).await.unwrap().items, vec!["app/sub"]);
        });
    }
}
