//! The catalog: one empty object per repository (`catalog/<name>`), written with its first
//! manifest, listed by prefix one page at a time.

use super::listing::{list_page, Page};
use super::paths::PathSpec;
use super::{Bucket, PutIf};
use crate::oci::error::Result;
use crate::oci::name::RepoName;

/// Records that `name` exists (once).
pub async fn record<B: Bucket + ?Sized>(bucket: &B, name: &RepoName) -> Result<()> {
    let key = PathSpec::CatalogEntry { name }.key();
    if bucket.head(&key).await?.is_none() {
        bucket.put(&key, Vec::new(), None, PutIf::Always).await?;
    }
    Ok(())
}

/// Whether the repository exists (has had a manifest pushed).
pub async fn repository_exists<B: Bucket + ?Sized>(bucket: &B, name: &RepoName) -> Result<bool> {
    Ok(bucket.head(&PathSpec::CatalogEntry { name }.key()).await?.is_some())
}

/// Repository names in lexical order.
pub async fn list<B: Bucket + ?Sized>(bucket: &B, last: Option<&str>, n: usize) -> Result<Page> {
    list_page(bucket, &PathSpec::Catalog.key(), last, n).await
}


/// One page of repository names after `after` (the collector's enumeration of the catalog).
pub async fn repositories<B: Bucket + ?Sized>(bucket: &B, after: Option<&str>, n: usize) -> Result<Page> {
    list(bucket, after, n).await
}
