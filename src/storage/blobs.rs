//! The content-addressed blob store shared by all repositories, and repository blob links.
//!
//! A blob exists when its descriptor exists; the descriptor says how big it is and which bucket
//! object holds its bytes (its canonical `data` key, or the object an upload wrote in place,
//! since the bucket cannot rename). A repository may serve a blob only through its own link,
//! which carries a copy of the descriptor so a pull needs one small read before the bytes.

use serde::{Deserialize, Serialize};

use super::facts::{self, FactCache};
use super::paths::PathSpec;
use super::{Bucket, PutIf};
use crate::oci::digest::Digest;
use crate::oci::error::{RegistryError, Result};
use crate::oci::name::RepoName;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobDescriptor {
    pub size: u64,
    /// Bucket key of the bytes.
    pub object: String,
}

impl BlobDescriptor {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serializable")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| RegistryError::internal(format!("corrupt blob descriptor: {e}")))
    }
}

/// The global descriptor of `digest`, if the blob exists.
pub async fn descriptor<B: Bucket + ?Sized>(bucket: &B, digest: &Digest) -> Result<Option<BlobDescriptor>> {
    match bucket.get(&PathSpec::BlobDescriptor { digest }.key()).await? {
        Some((bytes, _)) => Ok(Some(BlobDescriptor::from_json(&bytes)?)),
        None => Ok(None),
    }
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

/// Records a blob whose bytes are at `object` and links it into `name`. If the digest already
/// exists (another upload won, or the content was pushed before), the existing descriptor is
/// kept and returned, and the caller drops its own copy of the bytes: one stored copy.
pub async fn commit<B: Bucket + ?Sized>(
    bucket: &B,
    name: &RepoName,
    digest: &Digest,
    size: u64,
    object: String,
) -> Result<(BlobDescriptor, bool)> {
    let (desc, created) = match descriptor(bucket, digest).await? {
        Some(existing) => (existing, false),
        None => {
            let desc = BlobDescriptor { size, object };
            bucket.put(&PathSpec::BlobDescriptor { digest }.key(), desc.to_json(), None, PutIf::Always).await?;
            (desc, true)
        }
    };
    link(bucket, name, digest, &desc).await?;
    Ok((desc, created))
}

/// Cross-repository mount: links into `name` the blob `from` links. `None` when `from` does
/// not link it (the caller falls back to a regular upload).
pub async fn mount<B: Bucket + ?Sized>(
    bucket: &B,
    name: &RepoName,
    from: &RepoName,
    digest: &Digest,
) -> Result<Option<BlobDescriptor>> {
    match linked(bucket, from, digest).await? {
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
    fn commit_link_mount_unlink() {
        block_on(async {
            let b = MemoryBucket::new();
            let f = MemoryFacts::new(0);
            let a = RepoName::parse("a").unwrap();
            let c = RepoName::parse("c").unwrap();
            let d = Digest::of(Algorithm::Sha256, b"hello");
            assert!(linked(&b, &a, &d).await.unwrap().is_none());
            let (desc, created) = commit(&b, &a, &d, 5, "objects/u1/data".into()).await.unwrap();
            assert!(created);
            assert_eq!(linked(&b, &a, &d).await.unwrap(), Some(desc.clone()));
            // A second commit of the same content keeps the first copy.
            let (again, created) = commit(&b, &c, &d, 5, "objects/u2/data".into()).await.unwrap();
            assert!(!created);
            assert_eq!(again.object, "objects/u1/data");
            // Mount from a repository that does not link it fails; from one that does, works.
            let e = RepoName::parse("e").unwrap();
            assert!(mount(&b, &e, &RepoName::parse("zzz").unwrap(), &d).await.unwrap().is_none());
            assert!(mount(&b, &e, &a, &d).await.unwrap().is_some());
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
}
