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

/// The page of `sorted` (lexically ordered, no duplicates) after `last`, at most `n` items: the
/// same pages as [`list_page`] for a list held in memory (a mirrored repository's upstream tags).
pub fn page_of(sorted: &[String], last: Option<&str>, n: usize) -> Page {
    if n == 0 {
        return Page { items: Vec::new(), more: false };
    }
    let start = last.map(|l| sorted.partition_point(|t| t.as_str() <= l)).unwrap_or(0);
    let rest = &sorted[start..];
    let take = n.min(super::MAX_PAGE).min(rest.len());
    Page { items: rest[..take].to_vec(), more: take < rest.len() }
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


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_of_a_list_in_memory() {
        let tags: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(page_of(&tags, None, 2), Page { items: vec!["a".into(), "b".into()], more: true });
        assert_eq!(page_of(&tags, Some("b"), 2), Page { items: vec!["c".into(), "d".into()], more: false });
        assert_eq!(page_of(&tags, Some("bb"), 5), Page { items: vec!["c".into(), "d".into()], more: false });
        assert_eq!(page_of(&tags, Some("d"), 5), Page { items: vec![], more: false });
        assert_eq!(page_of(&tags, None, 0), Page { items: vec![], more: false });
        assert_eq!(page_of(&tags, None, 4), Page { items: tags.clone(), more: false });
        assert_eq!(page_of(&[], None, 4), Page { items: vec![], more: false });
    }
}
