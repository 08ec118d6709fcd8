//! The content-addressed blob store shared by all repositories, and repository blob links.
//!
//! A blob exists when its descriptor exists and is not doomed; the descriptor says how big it
//! is and which bucket object holds its bytes (its canonical `data` key, or the object an upload
//! wrote in place, since the bucket cannot rename). A repository may serve a blob only through
//! its own link, which carries a copy of the descriptor so a pull needs one small read before
//! the bytes.
//!
//! Online garbage collection (`gc`) and pushes meet at the descriptor. Whoever makes a new
//! reference to an existing blob (a link on commit or mount, a manifest naming it) first
//! [`claim`]s it: the descriptor's `touched` time is renewed unless it is recent, by a
//! conditional put on the etag just read. The collector dooms a blob by the same kind of
//! conditional put, and only when `touched` is older than its grace period; after that a claim
//! fails and the writer stores its own copy under a fresh key. A doomed descriptor stays as a
//! tombstone, so the key of the doomed bytes is never written again.

use serde::{Deserialize, Serialize};

use super::facts::{self, FactCache};
use super::listing::Enumerated;
use super::paths::PathSpec;
use super::{Bucket, PutIf};
use crate::oci::digest::Digest;
use crate::oci::error::{RegistryError, Result};
use crate::oci::name::RepoName;

/// A claim renews `touched` only when it is older than this (ms). The collector's grace period
/// must be at least twice as long (see `gc`).
pub const TOUCH_FRESH_MS: u64 = 10 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobDescriptor {
    pub size: u64,
    /// Bucket key of the bytes.
    pub object: String,
    /// When the blob was last stored or claimed (ms since the epoch; 0 for old descriptors).
    #[serde(default)]
    pub touched: u64,
    /// Set by the collector: the bytes are being or have been deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub doomed: bool,
    /// The start of the last collection that found the blob in use (ms; see `gc`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub marked: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl BlobDescriptor {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serializable")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| RegistryError::internal(format!("corrupt blob descriptor: {e}")))
    }
}

/// The descriptor of `digest` and its etag, tombstones included.
pub async fn descriptor<B: Bucket + ?Sized>(bucket: &B, digest: &Digest) -> Result<Option<(BlobDescriptor, String)>> {
    match bucket.get(&PathSpec::BlobDescriptor { digest }.key()).await? {
        Some((bytes, etag)) => Ok(Some((BlobDescriptor::from_json(&bytes)?, etag))),
        None => Ok(None),
    }
}

/// Claims the existing blob `digest` for a new reference at `now`: its descriptor, renewed so
/// that no collection can take it (see the module docs). `None` if there is no such blob or it
/// was collected.
pub async fn claim<B: Bucket + ?Sized>(bucket: &B, digest: &Digest, now: u64) -> Result<Option<BlobDescriptor>> {
    Ok(claim_or_record(bucket, digest, None, now).await?.map(|(desc, _)| desc))
}

/// The one place descriptors are written for a new reference. Claims the blob if it exists;
/// otherwise, when `fresh` names bytes just written (`size`, bucket key), records them as the
/// blob, with a conditional put: of racing writers exactly one creates the descriptor (or
/// replaces a tombstone), the others find it on their next look and claim it. Returns the
/// descriptor and whether it was created here; `None` when there is no blob and nothing to record.
async fn claim_or_record<B: Bucket + ?Sized>(
    bucket: &B,
    digest: &Digest,
    fresh: Option<(u64, &str)>,
    now: u64,
) -> Result<Option<(BlobDescriptor, bool)>> {
    update(bucket, digest, |current| match (current, fresh) {
        (Some((desc, _)), _) if !desc.doomed && desc.touched + TOUCH_FRESH_MS > now => Change::Keep(Some((desc, false))),
        (Some((mut desc, etag)), _) if !desc.doomed => {
            desc.touched = now;
            Change::Write(desc.clone(), PutIf::EtagMatches(etag), Some((desc, false)))
        }
        (_, None) => Change::Keep(None),
        (current, Some((size, object))) => {
            let desc = BlobDescriptor { size, object: object.to_string(), touched: now, doomed: false, marked: 0 };
            let cond = match current {
                Some((_tombstone, etag)) => PutIf::EtagMatches(etag),
                None => PutIf::Absent,
            };
            Change::Write(desc.clone(), cond, Some((desc, true)))
        }
    })
    .await
}

/// What [`update`] does with the descriptor it read.
enum Change<T> {
    /// Nothing to write; the answer.
    Keep(T),
    /// Write this descriptor on this condition; the answer once it is written.
    Write(BlobDescriptor, PutIf, T),
}

/// Reads the descriptor of `digest` (with its etag; `None` if there is none) and applies what
/// `change` decides, with a conditional put on what was read. When another writer got there
/// first (a claim, a stamp, a doom, a racing create), reads again and decides again.
async fn update<B: Bucket + ?Sized, T>(
    bucket: &B,
    digest: &Digest,
    mut change: impl FnMut(Option<(BlobDescriptor, String)>) -> Change<T>,
) -> Result<T> {
    let key = PathSpec::BlobDescriptor { digest }.key();
    for _ in 0..5 {
        match change(descriptor(bucket, digest).await?) {
            Change::Keep(answer) => return Ok(answer),
            Change::Write(desc, cond, answer) => {
                if bucket.put(&key, desc.to_json(), None, cond).await?.is_some() {
                    return Ok(answer);
                }
            }
        }
    }
    Err(RegistryError::internal(format!("descriptor of {digest} kept changing")))
}

/// Where bytes go whose digest is checked only after they are written (a mirror fill in
/// parts): a key of their own, `objects/<id>/data`, so a copy that turns out wrong is deleted
/// without touching anyone else's (a racing fill of the same digest may hold the canonical key).
pub fn unverified_data_key(id: &str) -> String {
    PathSpec::UploadObject { id }.key()
}

/// Where new bytes of `digest` go: its canonical `data` key, unless a descriptor (a tombstone
/// left by the collector) exists, whose bytes may still be being deleted; then `objects/<id>/data`.
pub async fn fresh_data_key<B: Bucket + ?Sized>(bucket: &B, digest: &Digest, id: &str) -> Result<String> {
    Ok(match bucket.head(&PathSpec::BlobDescriptor { digest }.key()).await? {
        None => PathSpec::BlobData { digest }.key(),
        Some(_) => PathSpec::UploadObject { id }.key(),
    })
}

/// Stamps the blob `digest` as in use by the collection that started at `epoch` (see `gc`),
/// unless it already is; a missing or doomed blob is left alone. A conditional put on the etag
/// read, so a concurrent claim is never overwritten (nor it the stamp: the loser reads again).
pub async fn stamp<B: Bucket + ?Sized>(bucket: &B, digest: &Digest, epoch: u64) -> Result<()> {
    update(bucket, digest, |current| match current {
        Some((mut desc, etag)) if !desc.doomed && desc.marked < epoch => {
            desc.marked = epoch;
            Change::Write(desc, PutIf::EtagMatches(etag), ())
        }
        _ => Change::Keep(()),
    })
    .await
}

/// One page of the stored blobs, in key order, after the cursor `after`.
pub async fn descriptors<B: Bucket + ?Sized>(bucket: &B, after: Option<&str>, n: usize) -> Result<Enumerated<Digest>> {
    let listing = bucket.list(&PathSpec::Blobs.key(), after, n).await?;
    let items = listing.keys.iter().filter_map(|k| PathSpec::digest_of_descriptor_key(k)).collect();
    let next = if listing.truncated { listing.keys.last().cloned() } else { None };
    Ok(Enumerated { items, next })
}

/// The blob as `name` sees it: `None` unless the repository links it.
pub async fn linked<B: Bucket + ?Sized>(bucket: &B, name: &RepoName, digest: &Digest) -> Result<Option<BlobDescriptor>> {
    match bucket.get(&PathSpec::LayerLink { name, digest }.key()).await? {
        Some((bytes, _)) => Ok(Some(BlobDescriptor::from_json(&bytes)?)),
        None => Ok(None),
    }
}

/// [`linked`] for serving a pull: read through the fact cache.
pub async fn linked_for_pull<B, F>(bucket: &B, facts: &F, name: &RepoName, digest: &Digest) -> Result<Option<BlobDescriptor>>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
{
    match facts::read(bucket, facts, &PathSpec::LayerLink { name, digest }).await? {
        Some(bytes) => Ok(Some(BlobDescriptor::from_json(&bytes)?)),
        None => Ok(None),
    }
}

/// The blob `digest` as `name` links it, for a HEAD: what tells a pusher it need not upload
/// the blob. A link is not enough (the collector frees blobs without knowing which repositories
/// link them): the blob is claimed too, so it is there and stays for the push that asked (the
/// collector's argument, `gc`, case 1 and 2: no collection takes it for at least the grace
/// period less [`TOUCH_FRESH_MS`]). A link whose blob was collected is removed on sight, with
/// its cached copies, and the answer is `None` (404: the client uploads the blob again); one
/// whose blob was stored again since (a fresh copy) follows the blob.
pub async fn present<B, F>(bucket: &B, facts: &F, name: &RepoName, digest: &Digest, now: u64) -> Result<Option<BlobDescriptor>>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
{
    let Some(linked) = linked_for_pull(bucket, facts, name, digest).await? else { return Ok(None) };
    match claim(bucket, digest, now).await? {
        Some(desc) if desc.object == linked.object => Ok(Some(desc)),
        Some(desc) => {
            link(bucket, name, digest, &desc).await?;
            facts::forget(facts, &[PathSpec::LayerLink { name, digest }]).await;
            Ok(Some(desc))
        }
        None => {
            unlink(bucket, facts, name, digest).await?;
            Ok(None)
        }
    }
}

/// Links `digest` into `name`.
pub async fn link<B: Bucket + ?Sized>(bucket: &B, name: &RepoName, digest: &Digest, desc: &BlobDescriptor) -> Result<()> {
    bucket.put(&PathSpec::LayerLink { name, digest }.key(), desc.to_json(), None, PutIf::Always).await?;
    Ok(())
}

/// Removes `name`'s link to `digest` (and its cached copies); false when there was none. The
/// shared bytes stay for other repositories (garbage collection reclaims unreferenced blobs).
pub async fn unlink<B, F>(bucket: &B, facts: &F, name: &RepoName, digest: &Digest) -> Result<bool>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
{
    let spec = PathSpec::LayerLink { name, digest };
    let key = spec.key();
    if bucket.head(&key).await?.is_none() {
        return Ok(false);
    }
    bucket.delete(&[key]).await?;
    facts::forget(facts, &[spec]).await;
    Ok(true)
}

/// Records a blob whose bytes were just written to `object`. If the digest already exists
/// (another upload won the race, or the content was pushed before), the existing blob is
/// claimed instead and `object` is deleted, unless it is the existing blob's own key: one stored
/// copy of every blob. Returns the descriptor and whether this call created it.
pub async fn record<B: Bucket + ?Sized>(bucket: &B, digest: &Digest, size: u64, object: String, now: u64) -> Result<(BlobDescriptor, bool)> {
    let (desc, created) = claim_or_record(bucket, digest, Some((size, &object)), now)
        .await?
        .expect("recording always yields a descriptor");
    if !created && desc.object != object {
        bucket.delete(&[object]).await?;
    }
    Ok((desc, created))
}

/// [`record`], then link the blob into `name`.
pub async fn commit<B: Bucket + ?Sized>(
    bucket: &B,
    name: &RepoName,
    digest: &Digest,
    size: u64,
    object: String,
    now: u64,
) -> Result<(BlobDescriptor, bool)> {
    let (desc, created) = record(bucket, digest, size, object, now).await?;
    link(bucket, name, digest, &desc).await?;
    Ok((desc, created))
}

/// Cross-repository mount: links into `name` the blob `from` links. `None` when `from` does
/// not link it or it was collected (the caller falls back to a regular upload).
pub async fn mount<B: Bucket + ?Sized>(
    bucket: &B,
    name: &RepoName,
    from: &RepoName,
    digest: &Digest,
    now: u64,
) -> Result<Option<BlobDescriptor>> {
    if linked(bucket, from, digest).await?.is_none() {
        return Ok(None);
    }
    match claim(bucket, digest, now).await? {
        Some(desc) => {
            link(bucket, name, digest, &desc).await?;
            Ok(Some(desc))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::Algorithm;
    use crate::storage::memory::{MemoryBucket, MemoryFacts};
    use futures_executor::block_on;

    #[test]
    fn a_head_claims_the_blob_and_drops_a_link_whose_blob_was_collected() {
        block_on(async {
            let b = MemoryBucket::new();
            let f = MemoryFacts::new(0);
            let a = RepoName::parse("a").unwrap();
            let d = Digest::of(Algorithm::Sha256, b"hello");
            assert!(present(&b, &f, &a, &d, 1).await.unwrap().is_none());
            commit(&b, &a, &d, 5, "objects/u1/data".into(), 1).await.unwrap();
            // Claimed: a HEAD long after the push renews the blob for the push that asked.
            let later = 1 + 2 * TOUCH_FRESH_MS;
            assert_eq!(present(&b, &f, &a, &d, later).await.unwrap().unwrap().touched, later);
            assert_eq!(descriptor(&b, &d).await.unwrap().unwrap().0.touched, later);
            // Collected (a tombstone, the bytes gone): the link goes with it, cached copy and all.
            let (mut tomb, _) = descriptor(&b, &d).await.unwrap().unwrap();
            tomb.doomed = true;
            b.put(&PathSpec::BlobDescriptor { digest: &d }.key(), tomb.to_json(), None, PutIf::Always).await.unwrap();
            b.delete(&["objects/u1/data".to_string()]).await.unwrap();
            assert!(present(&b, &f, &a, &d, later + 1).await.unwrap().is_none());
            assert!(linked(&b, &a, &d).await.unwrap().is_none(), "no dangling link left");
            assert!(linked_for_pull(&b, &f, &a, &d).await.unwrap().is_none(), "nor a cached one");
            // Pushed again (a fresh copy replaces the tombstone) into another repository: a
            // repository still linking the old copy follows the blob to the new one.
            commit(&b, &a, &d, 5, "objects/old/data".into(), later + 2).await.unwrap();
            let (mut tomb, _) = descriptor(&b, &d).await.unwrap().unwrap();
            tomb.doomed = true;
            b.put(&PathSpec::BlobDescriptor { digest: &d }.key(), tomb.to_json(), None, PutIf::Always).await.unwrap();
            let c = RepoName::parse("c").unwrap();
            commit(&b, &c, &d, 5, "objects/new/data".into(), later + 3).await.unwrap();
            assert_eq!(present(&b, &f, &a, &d, later + 4).await.unwrap().unwrap().object, "objects/new/data");
            assert_eq!(linked(&b, &a, &d).await.unwrap().unwrap().object, "objects/new/data");
        });
    }

    #[test]
    fn commit_link_mount_unlink() {
        block_on(async {
            let b = MemoryBucket::new();
            let f = MemoryFacts::new(0);
            let a = RepoName::parse("a").unwrap();
            let c = RepoName::parse("c").unwrap();
            let d = Digest::of(Algorithm::Sha256, b"hello");
            assert!(linked(&b, &a, &d).await.unwrap().is_none());
            let (desc, created) = commit(&b, &a, &d, 5, "objects/u1/data".into(), 1).await.unwrap();
            assert!(created);
            assert_eq!(linked(&b, &a, &d).await.unwrap(), Some(desc.clone()));
            // A second commit of the same content keeps the first copy.
            let (again, created) = commit(&b, &c, &d, 5, "objects/u2/data".into(), 2).await.unwrap();
            assert!(!created);
            assert_eq!(again.object, "objects/u1/data");
            // Mount from a repository that does not link it fails; from one that does, works.
            let e = RepoName::parse("e").unwrap();
            assert!(mount(&b, &e, &RepoName::parse("zzz").unwrap(), &d, 3).await.unwrap().is_none());
            assert!(mount(&b, &e, &a, &d, 3).await.unwrap().is_some());
            assert!(linked(&b, &e, &d).await.unwrap().is_some());
            // A pull reads the link once; unlinking forgets the cached copy.
            assert!(linked_for_pull(&b, &f, &a, &d).await.unwrap().is_some());
            assert!(!f.is_empty());
            assert!(unlink(&b, &f, &a, &d).await.unwrap());
            assert!(!unlink(&b, &f, &a, &d).await.unwrap());
            assert!(linked(&b, &a, &d).await.unwrap().is_none());
            assert!(linked_for_pull(&b, &f, &a, &d).await.unwrap().is_none());
            assert!(descriptor(&b, &d).await.unwrap().is_some());
        });
    }

    #[test]
    fn racing_commits_of_one_blob_leave_one_copy() {
        block_on(async {
            let b = MemoryBucket::interleaving();
            let d = Digest::of(Algorithm::Sha256, b"same content");
            let names: Vec<RepoName> = (0..8).map(|i| RepoName::parse(&format!("r{}", i % 3)).unwrap()).collect();
            // Eight uploads wrote their own copy of the same bytes and commit at once.
            for i in 0..8 {
                b.put(&format!("objects/u{i}/data"), b"same content".to_vec(), None, PutIf::Always).await.unwrap();
            }
            let commits = names.iter().enumerate().map(|(i, name)| commit(&b, name, &d, 12, format!("objects/u{i}/data"), 1));
            let results: Vec<_> = futures_util::future::join_all(commits).await.into_iter().map(|r| r.unwrap()).collect();
            assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1, "exactly one creates the blob");
            let winner = &results.iter().find(|(_, c)| *c).unwrap().0.object;
            assert!(results.iter().all(|(desc, _)| &desc.object == winner), "every link points at the one copy");
            let data: Vec<String> = b.keys().into_iter().filter(|k| k.starts_with("objects/")).collect();
            assert_eq!(&data, &[winner.clone()], "the losers' copies are deleted");
            for name in &names {
                assert_eq!(linked(&b, name, &d).await.unwrap().unwrap().object, *winner);
            }
        });
    }

    #[test]
    fn claims_renew_old_descriptors_and_refuse_doomed_ones() {
        block_on(async {
            let b = MemoryBucket::new();
            let a = RepoName::parse("a").unwrap();
            let d = Digest::of(Algorithm::Sha256, b"x");
            let key = PathSpec::BlobDescriptor { digest: &d }.key();
            assert_eq!(fresh_data_key(&b, &d, "u").await.unwrap(), PathSpec::BlobData { digest: &d }.key());
            commit(&b, &a, &d, 1, "k".into(), 1000).await.unwrap();
            // Fresh: no write.
            let (_, etag) = descriptor(&b, &d).await.unwrap().unwrap();
            assert_eq!(claim(&b, &d, 1000 + TOUCH_FRESH_MS - 1).await.unwrap().unwrap().touched, 1000);
            assert_eq!(descriptor(&b, &d).await.unwrap().unwrap().1, etag);
            // Old: renewed.
            let later = 1000 + 3 * TOUCH_FRESH_MS;
            assert_eq!(claim(&b, &d, later).await.unwrap().unwrap().touched, later);
            // Doomed: refused, and new bytes of that digest go to a fresh key.
            let (mut desc, _) = descriptor(&b, &d).await.unwrap().unwrap();
            desc.doomed = true;
            b.put(&key, desc.to_json(), None, PutIf::Always).await.unwrap();
            assert!(claim(&b, &d, later + 1).await.unwrap().is_none());
            assert_eq!(fresh_data_key(&b, &d, "u9").await.unwrap(), "objects/u9/data");
            let (desc, created) = commit(&b, &a, &d, 1, "objects/u9/data".into(), later + 2).await.unwrap();
            assert!(created);
            assert_eq!(desc.object, "objects/u9/data");
            assert_eq!(linked(&b, &a, &d).await.unwrap().unwrap().object, "objects/u9/data");
        });
    }
}
