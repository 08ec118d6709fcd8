//! Listing a prefix of the bucket one page at a time, in lexical order: what the tags list, the
//! catalog and the referrers API serve (each page costs one list, whatever the total).

use super::Bucket;
use crate::oci::error::Result;

/// One page of an enumeration the collector consumes: the items and an opaque cursor for the
/// next page (`None`: that was the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enumerated<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// One page of a lexically ordered list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<String>,
    /// The page was cut short: a `Link` to the next page is due.
    pub more: bool,
}

/// Lists the entries under `prefix` after `last`, at most `n`: the tail of each key is an item.
pub async fn list_page<B: Bucket + ?Sized>(bucket: &B, prefix: &str, last: Option<&str>, n: usize) -> Result<Page> {
    if n == 0 {
        return Ok(Page { items: Vec::new(), more: false });
    }
    let start_after = last.map(|l| format!("{prefix}{l}"));
    let listing = bucket.list(prefix, start_after.as_deref(), n.min(super::MAX_PAGE)).await?;
    let items = listing.keys.iter().map(|k| k[prefix.len()..].to_string()).collect();
    Ok(Page { items, more: listing.truncated })
}

