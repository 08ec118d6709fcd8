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


/// How many listings one catalog page may cost a caller who sees only some repositories.
pub const VISIBLE_SCAN_LISTINGS: usize = 5;

/// The page of at most `n` repository names after `last` that `sees` lets the caller see.
///
/// Names the caller may not pull never shape the answer: not in the body, not in the `Link`
/// (whose `last` is the page's last visible name, so following it reveals nothing), not in the
/// page's size (it is filled from further listings), and a `Link` is due only when a further
/// visible name was found. The listings are bounded: after [`VISIBLE_SCAN_LISTINGS`] of them
/// (5,000 names) the page ends with what was found, with a `Link` only if it found any (a
/// caller that sees nothing in that stretch is told it reached the end).
pub async fn list_visible<B: Bucket + ?Sized>(bucket: &B, last: Option<&str>, n: usize, sees: impl Fn(&str) -> bool) -> Result<Page> {
    let mut items = Vec::new();
    if n == 0 {
        return Ok(Page { items, more: false });
    }
    let mut after = last.map(str::to_string);
    for _ in 0..VISIBLE_SCAN_LISTINGS {
        let page = list(bucket, after.as_deref(), super::MAX_PAGE).await?;
        for name in &page.items {
            if sees(name) {
                if items.len() == n {
                    return Ok(Page { items, more: true });
                }
                items.push(name.clone());
            }
        }
        if !page.more {
            return Ok(Page { items, more: false });
        }
        after = page.items.last().cloned();
    }
    let more = !items.is_empty();
    Ok(Page { items, more })
}

/// One page of repository names after `after` (the collector's enumeration of the catalog).
pub async fn repositories<B: Bucket + ?Sized>(bucket: &B, after: Option<&str>, n: usize) -> Result<Page> {
    list(bucket, after, n).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryBucket;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures_executor::block_on(f)
    }

    async fn catalog_of(names: &[String]) -> MemoryBucket {
        let bucket = MemoryBucket::default();
        for name in names {
            record(&bucket, &RepoName::parse(name).unwrap()).await.unwrap();
        }
        bucket
    }

    #[test]
    fn a_filtered_page_reveals_no_hidden_name() {
        block_on(async {
            let names: Vec<String> = ["a/1", "a/2", "b/1", "b/2", "b/3", "c/1"].map(String::from).to_vec();
            let bucket = catalog_of(&names).await;
            let sees_b = |n: &str| n.starts_with("b/");
            let page = list_visible(&bucket, None, 2, sees_b).await.unwrap();
            assert_eq!(page, Page { items: vec!["b/1".into(), "b/2".into()], more: true });
            // The next page starts after a visible name; the hidden ones after it do not make a Link.
            let page = list_visible(&bucket, Some("b/2"), 2, sees_b).await.unwrap();
            assert_eq!(page, Page { items: vec!["b/3".into()], more: false });
            // Exactly n visible and only hidden names after them: no Link.
            let page = list_visible(&bucket, None, 3, sees_b).await.unwrap();
            assert_eq!(page, Page { items: vec!["b/1".into(), "b/2".into(), "b/3".into()], more: false });
            assert_eq!(list_visible(&bucket, None, 5, |_| false).await.unwrap(), Page { items: vec![], more: false });
            assert_eq!(list_visible(&bucket, None, 0, |_| true).await.unwrap(), Page { items: vec![], more: false });
            assert_eq!(list_visible(&bucket, None, 6, |_| true).await.unwrap(), Page { items: names.clone(), more: false });
            assert_eq!(list_visible(&bucket, None, 5, |_| true).await.unwrap().more, true);
        });
    }

    #[test]
    fn a_filtered_page_is_filled_from_further_listings_within_a_bound() {
        block_on(async {
            // 2,500 hidden names, then visible ones: found across three listings.
            let mut names: Vec<String> = (0..2500).map(|i| format!("h/{i:05}")).collect();
            names.extend(["v/1", "v/2"].map(String::from));
            let bucket = catalog_of(&names).await;
            let sees_v = |n: &str| n.starts_with("v/");
            let page = list_visible(&bucket, None, 1, sees_v).await.unwrap();
            assert_eq!(page, Page { items: vec!["v/1".into()], more: true });
            // Past the bound (5 listings of 1,000), a caller that found nothing is at the end.
            let mut far: Vec<String> = (0..5000).map(|i| format!("h/{i:05}")).collect();
            far.push("v/1".into());
            let bucket = catalog_of(&far).await;
            assert_eq!(list_visible(&bucket, None, 1, sees_v).await.unwrap(), Page { items: vec![], more: false });
            // Found something, then ran out of listings: a Link after the last visible name.
            let mut some: Vec<String> = vec!["a/0".into()];
            some.extend((0..5000).map(|i| format!("h/{i:05}")));
            some.push("v/1".into());
            let bucket = catalog_of(&some).await;
            let page = list_visible(&bucket, None, 2, |n| n.starts_with("a/") || n.starts_with("v/")).await.unwrap();
            assert_eq!(page, Page { items: vec!["a/0".into()], more: true });
        });
    }
}
