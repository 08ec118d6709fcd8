//! The read-through cache in front of the bucket for what pulls read: small facts that never
//! change once written (a repository's blob link, a manifest revision link, manifest bytes by
//! digest) and, when configured, tag links for a bounded time.
//!
//! The bucket stays the only authority. The cache holds positive answers only: a key missing
//! now may be written a second later, so a miss always goes to the bucket. Facts do stop being
//! true when they are deleted (a blob unlinked, a manifest deleted, garbage collected), so every
//! delete calls [`FactCache::forget`] after deleting from the bucket. Where the cache is
//! distributed (KV, other data centres' edge caches) a forgotten fact can still be served
//! elsewhere until its entry expires: that bound is the cache's TTL, documented with its
//! configuration. Write paths (uploads, mounts, manifest PUT checks, the sweep) never read
//! through this cache; they read the bucket. The collector's mark phase does read revisions and
//! manifest bytes through it: a stale entry can only make it keep a blob longer, never lose one.

use async_trait::async_trait;

use super::paths::{Caching, PathSpec};
use super::Bucket;
use crate::oci::error::Result;

/// How long a cached value may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Until forgotten (bounded by the cache's own TTL).
    Immutable,
    /// At most this many seconds, then read again (mutable state, e.g. a tag).
    Seconds(u32),
}

/// A cache of small values by bucket key. Failures are the implementation's to log: a cache
/// that cannot answer behaves as a miss.
#[async_trait(?Send)]
pub trait FactCache {
    async fn get(&self, key: &str, lifetime: Lifetime) -> Option<Vec<u8>>;
    async fn put(&self, key: &str, value: &[u8], lifetime: Lifetime);
    async fn forget(&self, keys: &[String]);
    /// How long a mutable fact (a tag) may be cached; 0 (the default) means never.
    fn mutable_ttl(&self) -> u32;
}

fn lifetime<F: FactCache + ?Sized>(facts: &F, spec: &PathSpec<'_>) -> Option<Lifetime> {
    match spec.caching() {
        Caching::Immutable => Some(Lifetime::Immutable),
        Caching::Mutable if facts.mutable_ttl() > 0 => Some(Lifetime::Seconds(facts.mutable_ttl())),
        Caching::Mutable | Caching::Never => None,
    }
}

/// The value at `spec`: from the cache when it may be cached there, else from the bucket
/// (filling the cache with a positive answer).
pub async fn read<B, F>(bucket: &B, facts: &F, spec: &PathSpec<'_>) -> Result<Option<Vec<u8>>>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
{
    let key = spec.key();
    let Some(lifetime) = lifetime(facts, spec) else {
        return Ok(bucket.get(&key).await?.map(|(bytes, _)| bytes));
    };
    if let Some(v) = facts.get(&key, lifetime).await {
        return Ok(Some(v));
    }
    let value = bucket.get(&key).await?.map(|(bytes, _)| bytes);
    if let Some(v) = &value {
        facts.put(&key, v, lifetime).await;
    }
    Ok(value)
}

/// Forgets the cached values of `specs` (after they were deleted or changed in the bucket).
pub async fn forget<F: FactCache + ?Sized>(facts: &F, specs: &[PathSpec<'_>]) {
    let keys: Vec<String> = specs.iter().filter(|s| s.caching() != Caching::Never).map(PathSpec::key).collect();
    if !keys.is_empty() {
        facts.forget(&keys).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::{Algorithm, Digest};
    use crate::oci::name::{RepoName, Tag};
    use crate::storage::memory::{MemoryBucket, MemoryFacts};
    use crate::storage::PutIf;
    use futures_executor::block_on;

    #[test]
    fn immutable_facts_are_read_once_and_forgotten_on_delete() {
        block_on(async {
            let b = MemoryBucket::new();
            let f = MemoryFacts::new(0);
            let n = RepoName::parse("r").unwrap();
            let d = Digest::of(Algorithm::Sha256, b"x");
            let spec = PathSpec::LayerLink { name: &n, digest: &d };
            // A miss is not cached: the link pushed afterwards is seen at once.
            assert_eq!(read(&b, &f, &spec).await.unwrap(), None);
            b.put(&spec.key(), b"desc".to_vec(), None, PutIf::Always).await.unwrap();
            assert_eq!(read(&b, &f, &spec).await.unwrap().as_deref(), Some(&b"desc"[..]));
            let reads = b.reads();
            assert_eq!(read(&b, &f, &spec).await.unwrap().as_deref(), Some(&b"desc"[..]));
            assert_eq!(b.reads(), reads, "second read served by the cache");
            b.delete(&[spec.key()]).await.unwrap();
            forget(&f, &[spec.clone()]).await;
            assert_eq!(read(&b, &f, &spec).await.unwrap(), None);
        });
    }

    #[test]
    fn tags_are_cached_only_with_a_ttl() {
        block_on(async {
            let b = MemoryBucket::new();
            let n = RepoName::parse("r").unwrap();
            let t = Tag::parse("latest").unwrap();
            let spec = PathSpec::TagCurrent { name: &n, tag: &t };
            b.put(&spec.key(), b"sha256:1".to_vec(), None, PutIf::Always).await.unwrap();
            let fresh = MemoryFacts::new(0);
            read(&b, &fresh, &spec).await.unwrap();
            b.put(&spec.key(), b"sha256:2".to_vec(), None, PutIf::Always).await.unwrap();
            assert_eq!(read(&b, &fresh, &spec).await.unwrap().as_deref(), Some(&b"sha256:2"[..]));
            assert!(fresh.is_empty());
            let bounded = MemoryFacts::new(30);
            read(&b, &bounded, &spec).await.unwrap();
            assert_eq!(bounded.lifetime_of(&spec.key()), Some(Lifetime::Seconds(30)));
        });
    }

    #[test]
    fn upload_state_is_never_cached() {
        block_on(async {
            let b = MemoryBucket::new();
            let f = MemoryFacts::new(60);
            let spec = PathSpec::UploadState { id: "u" };
            b.put(&spec.key(), b"{}".to_vec(), None, PutIf::Always).await.unwrap();
            read(&b, &f, &spec).await.unwrap();
            assert!(f.is_empty());
        });
    }
}
