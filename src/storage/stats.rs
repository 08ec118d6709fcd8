//! Storage totals, kept incrementally: per repository, the blobs it links and their bytes, its
//! manifests and their bytes, and its tags; for the whole registry, the blobs it stores and their
//! bytes, each blob once however many repositories link it (what the bucket holds).
//!
//! Nothing is counted by a scan. The bucket adapter notes, in the request's [`Ledger`], every
//! write and delete of a key that counts (`PathSpec::tallied_of_key`: layer links, revision
//! links, tag links, blob descriptors) as a [`Change`]: present with its size, or absent. After
//! the response the request's changes go in one batch to the totals' store (a Durable Object
//! with SQLite in the worker, `stats_object`), which applies them with [`apply_all`].
//!
//! Why a change says "present" or "absent" rather than "+1": the bucket's puts do not tell
//! whether the key existed (a re-push writes the same link again), and a batch may be retried or
//! arrive late. So the store keeps one [`Entry`] per counted key, and a change moves the totals
//! only by the difference between the entry it replaces and the new one; a change older than the
//! entry's (`at`, ms) is stale and ignored. Applying the same batch twice, or two batches in
//! either order, gives the same totals. An absent entry (a tombstone) is kept for
//! [`TOMBSTONE_MS`] so that a late "present" cannot resurrect a deleted item; changes reach the
//! store within seconds of the write.
//!
//! Entries are keyed by the bucket key itself, so the store's entries and a bucket listing sort
//! alike: a recount (`recount`) walks the bucket's listing page by page and [`reconcile`]s each
//! page with the entries of the same key range. That repairs what a lost batch left wrong and
//! counts what was stored before the totals were kept.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::paths::{PathSpec, Tallied};
use crate::oci::error::Result;

/// How long a deleted item's tombstone is kept (ms).
pub const TOMBSTONE_MS: u64 = 24 * 3600 * 1000;

/// One counted key written or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The bucket key (what it counts towards: `PathSpec::tallied_of_key`).
    pub key: String,
    /// Its size in bytes when it is present (0 for a tag); `None` when it was deleted.
    pub size: Option<u64>,
    /// When (ms since the epoch).
    pub at: u64,
}

/// The size a counted key's value records: blob links and descriptors hold the blob's
/// descriptor, revision links the manifest's size; a doomed descriptor is a tombstone, not a
/// stored blob.
#[derive(Deserialize)]
struct SizeOf {
    #[serde(default)]
    size: u64,
    #[serde(default)]
    doomed: bool,
}

impl Change {
    /// The change a put of `bytes` at `key` makes, if the key counts.
    pub fn of_put(key: &str, bytes: &[u8], at: u64) -> Option<Change> {
        let (what, _, _) = PathSpec::tallied_of_key(key)?;
        let size = match what {
            Tallied::Tag => Some(0),
            _ => match serde_json::from_slice::<SizeOf>(bytes) {
                Ok(s) if what == Tallied::Stored && s.doomed => None,
                Ok(s) => Some(s.size),
                Err(_) => Some(0),
            },
        };
        Some(Change { key: key.to_string(), size, at })
    }

    /// The change a delete of `key` makes, if the key counts.
    pub fn of_delete(key: &str, at: u64) -> Option<Change> {
        PathSpec::tallied_of_key(key)?;
        Some(Change { key: key.to_string(), size: None, at })
    }
}

/// The changes one request (or lifecycle run) made, noted by the bucket adapter as they happen
/// and taken once, after the response. A ledger that is off (no totals store bound) notes
/// nothing.
#[derive(Debug, Default)]
pub struct Ledger {
    on: bool,
    changes: RefCell<Vec<Change>>,
}

impl Ledger {
    pub fn new(on: bool) -> Self {
        Ledger { on, changes: RefCell::default() }
    }

    /// Notes a put of `bytes` at `key`, done at `at`.
    pub fn put(&self, key: &str, bytes: &[u8], at: u64) {
        let change = self.of_put(key, bytes);
        self.note(change, at);
    }

    /// The change a put of `bytes` at `key` would make, if the ledger is on and the key
    /// counts: to [`Ledger::note`] once the put has happened (an adapter hands the bytes over).
    pub fn of_put(&self, key: &str, bytes: &[u8]) -> Option<Change> {
        self.on.then(|| Change::of_put(key, bytes, 0)).flatten()
    }

    /// Notes `change`, done at `at`.
    pub fn note(&self, change: Option<Change>, at: u64) {
        if let Some(change) = change {
            self.changes.borrow_mut().push(Change { at, ..change });
        }
    }

    /// Notes a delete of `keys`, done at `at`.
    pub fn delete(&self, keys: &[String], at: u64) {
        if self.on {
            self.changes.borrow_mut().extend(keys.iter().filter_map(|k| Change::of_delete(k, at)));
        }
    }

    /// The changes noted so far, in order; the ledger is empty after.
    pub fn take(&self) -> Vec<Change> {
        self.changes.take()
    }
}

/// What the store knows of one counted key: its size, whether it is present, and the time of
/// the change that said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub size: u64,
    pub present: bool,
    pub at: u64,
}

/// The totals of a repository (or, for the registry's row, only `blobs` and `blob_bytes`: the
/// stored blobs, each once).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub blobs: u64,
    pub blob_bytes: u64,
    pub manifests: u64,
    pub manifest_bytes: u64,
    pub tags: u64,
}

impl Totals {
    pub fn is_empty(&self) -> bool {
        *self == Totals::default()
    }

    /// Moves the totals from `old` (the entry's size, if it was present) to `new`.
    fn shift(&mut self, what: Tallied, old: Option<u64>, new: Option<u64>) {
        let (count, bytes) = match what {
            Tallied::Blob | Tallied::Stored => (&mut self.blobs, Some(&mut self.blob_bytes)),
            Tallied::Manifest => (&mut self.manifests, Some(&mut self.manifest_bytes)),
            Tallied::Tag => (&mut self.tags, None),
        };
        *count = (*count + u64::from(new.is_some())).saturating_sub(u64::from(old.is_some()));
        if let Some(bytes) = bytes {
            *bytes = (*bytes + new.unwrap_or(0)).saturating_sub(old.unwrap_or(0));
        }
    }
}

/// The new entry for `change` over `current`, or `None` when the change is older than what the
/// entry records (it arrived late; the newer change stands).
pub fn apply(current: Option<Entry>, change: &Change) -> Option<Entry> {
    if current.is_some_and(|e| change.at < e.at) {
        return None;
    }
    Some(Entry { size: change.size.unwrap_or(0), present: change.size.is_some(), at: change.at })
}

/// The rows a totals store keeps: one entry per counted key, one totals row per repository
/// (`""`: the registry's stored blobs).
pub trait TallyRows {
    fn entry(&self, key: &str) -> Result<Option<Entry>>;
    fn set_entry(&self, key: &str, entry: Entry) -> Result<()>;
    /// The present entries with keys in `(after, upto]` (`upto` None: to the end of
    /// `prefix`), among the keys under `prefix`, in key order.
    fn present_in(&self, prefix: &str, after: Option<&str>, upto: Option<&str>) -> Result<Vec<(String, Entry)>>;
    fn totals(&self, repo: &str) -> Result<Totals>;
    /// Saves a repository's totals; empty totals remove its row.
    fn set_totals(&self, repo: &str, totals: &Totals) -> Result<()>;
    /// Forgets absent entries older than `before`.
    fn prune(&self, before: u64) -> Result<()>;
    /// Up to `n` repositories with their totals, in name order, after `after` (the registry's
    /// own row, `""`, is never among them).
    fn page(&self, after: &str, n: usize) -> Result<Vec<(String, Totals)>>;
}

/// Applies `changes`, in order, to `rows` at `now`; returns how many moved a total (the others
/// were stale, said what the store knew, or name no counted key). The store runs it as one
/// transaction.
pub fn apply_all<R: TallyRows + ?Sized>(rows: &R, changes: &[Change], now: u64) -> Result<usize> {
    let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
    let mut moved = 0;
    for change in changes {
        let Some((what, repo, _)) = PathSpec::tallied_of_key(&change.key) else { continue };
        let current = rows.entry(&change.key)?;
        let Some(next) = apply(current, change) else { continue };
        let old = current.filter(|e| e.present).map(|e| e.size);
        let new = next.present.then_some(next.size);
        moved += usize::from(old != new);
        if !totals.contains_key(&repo) {
            let t = rows.totals(&repo)?;
            totals.insert(repo.clone(), t);
        }
        totals.get_mut(&repo).expect("just inserted").shift(what, old, new);
        rows.set_entry(&change.key, next)?;
    }
    for (repo, t) in &totals {
        rows.set_totals(repo, t)?;
    }
    rows.prune(now.saturating_sub(TOMBSTONE_MS))?;
    Ok(moved)
}

/// One page of a recount: the counted keys a bucket listing of `prefix` found in `(after,
/// upto]` (`upto` None: the listing reached the end of the prefix), each with when its object
/// was written, listed after `before`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecountPage {
    pub prefix: String,
    pub after: Option<String>,
    pub upto: Option<String>,
    pub listed: Vec<(String, u64)>,
    /// Entries changed at or after this time may be newer than the listing and are left alone.
    pub before: u64,
}

/// What the store made of a [`RecountPage`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciled {
    /// Listed keys the store has no entry for as new as the object: the recount reads their
    /// values and applies them as changes.
    pub unknown: Vec<String>,
    /// Totals corrected here: by present entries the listing did not find, and by tags it did.
    pub corrected: usize,
}

/// Reconciles `page` with the entries of its key range at `now`: an entry present in the store
/// but not in the listing is absent (its delete was lost), a listed tag the store does not
/// know is present; the other listed keys the store does not know are returned, for their sizes.
pub fn reconcile<R: TallyRows + ?Sized>(rows: &R, page: &RecountPage, now: u64) -> Result<Reconciled> {
    let listed: BTreeSet<&str> = page.listed.iter().map(|(k, _)| k.as_str()).collect();
    let mut changes = Vec::new();
    for (key, entry) in rows.present_in(&page.prefix, page.after.as_deref(), page.upto.as_deref())? {
        if !listed.contains(key.as_str()) && entry.at < page.before {
            changes.push(Change { key, size: None, at: page.before });
        }
    }
    let mut unknown = Vec::new();
    for (key, written) in &page.listed {
        if rows.entry(key)?.is_some_and(|e| e.at >= *written) {
            continue;
        }
        match PathSpec::tallied_of_key(key) {
            Some((Tallied::Tag, _, _)) => changes.push(Change { key: key.clone(), size: Some(0), at: *written }),
            Some(_) => unknown.push(key.clone()),
            None => {}
        }
    }
    let corrected = apply_all(rows, &changes, now)?;
    Ok(Reconciled { unknown, corrected })
}

/// The totals' store as the registry talks to it: in the worker, requests to the Durable
/// Object; in native tests, rows in memory.
#[async_trait(?Send)]
pub trait TallyStore {
    /// Applies `changes`; returns how many moved a total.
    async fn apply(&self, changes: &[Change]) -> Result<usize>;
    async fn reconcile(&self, page: &RecountPage) -> Result<Reconciled>;
}

/// One repository's totals, as `/admin/stats` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryTotals {
    pub name: String,
    #[serde(flatten)]
    pub totals: Totals,
}

/// What the registry stores, each blob once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub blobs: u64,
    pub bytes: u64,
}

/// A page of `/admin/stats`: the registry's stored blobs and up to `n` repositories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsPage {
    pub stored: Stored,
    pub repositories: Vec<RepositoryTotals>,
}

/// The page after `after` of at most `n` repositories.
pub fn page<R: TallyRows + ?Sized>(rows: &R, after: &str, n: usize) -> Result<StatsPage> {
    let registry = rows.totals("")?;
    let repositories = rows.page(after, n)?.into_iter().map(|(name, totals)| RepositoryTotals { name, totals }).collect();
    Ok(StatsPage { stored: Stored { blobs: registry.blobs, bytes: registry.blob_bytes }, repositories })
}

/// The first key after every key under `prefix` (which ends in '/'), for range bounds.
pub fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.to_string();
    if let Some(last) = end.pop() {
        end.push(char::from_u32(last as u32 + 1).unwrap_or(char::MAX));
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::{Algorithm, Digest};
    use crate::oci::name::{RepoName, Tag};
    use crate::storage::memory::MemoryTally;

    fn d(s: &str) -> Digest {
        Digest::of(Algorithm::Sha256, s.as_bytes())
    }

    fn layer(repo: &str, digest: &str) -> String {
        PathSpec::LayerLink { name: &RepoName::parse(repo).unwrap(), digest: &d(digest) }.key()
    }

    fn revision(repo: &str, digest: &str) -> String {
        PathSpec::ManifestRevision { name: &RepoName::parse(repo).unwrap(), digest: &d(digest) }.key()
    }

    fn tag(repo: &str, t: &str) -> String {
        PathSpec::TagCurrent { name: &RepoName::parse(repo).unwrap(), tag: &Tag::parse(t).unwrap() }.key()
    }

    fn stored(digest: &str) -> String {
        PathSpec::BlobDescriptor { digest: &d(digest) }.key()
    }

    fn change(key: &str, size: Option<u64>, at: u64) -> Change {
        Change { key: key.into(), size, at }
    }

    #[test]
    fn changes_of_puts_and_deletes() {
        let n = RepoName::parse("a/b").unwrap();
        let link = layer("a/b", "x");
        let desc = br#"{"size":42,"object":"blobs/x/data","touched":1}"#;
        assert_eq!(Change::of_put(&link, desc, 7), Some(change(&link, Some(42), 7)));
        let descriptor = stored("x");
        assert_eq!(Change::of_put(&descriptor, desc, 7), Some(change(&descriptor, Some(42), 7)));
        // A doomed descriptor is the tombstone of a collected blob: no longer stored.
        let doomed = br#"{"size":42,"object":"blobs/x/data","doomed":true}"#;
        assert_eq!(Change::of_put(&descriptor, doomed, 8), Some(change(&descriptor, None, 8)));
        let revision_json = br#"{"media_type":"application/vnd.oci.image.manifest.v1+json","size":512}"#;
        assert_eq!(Change::of_put(&revision("a/b", "x"), revision_json, 9).unwrap().size, Some(512));
        let t = tag("a/b", "v1");
        assert_eq!(Change::of_put(&t, d("x").to_string().as_bytes(), 9), Some(change(&t, Some(0), 9)));
        assert_eq!(Change::of_delete(&t, 10), Some(change(&t, None, 10)));
        assert_eq!(Change::of_put(&PathSpec::UploadState { id: "u" }.key(), b"{}", 1), None);
        assert_eq!(Change::of_delete(&PathSpec::BlobData { digest: &d("x") }.key(), 1), None);
        assert_eq!(Change::of_delete(&PathSpec::CatalogEntry { name: &n }.key(), 1), None);

        let off = Ledger::new(false);
        off.put(&t, b"", 1);
        assert!(off.take().is_empty());
        let on = Ledger::new(true);
        on.put(&t, b"", 1);
        on.put(&PathSpec::GcState.key(), b"{}", 2);
        on.delete(&[t.clone(), PathSpec::BlobData { digest: &d("x") }.key(), link.clone()], 3);
        assert_eq!(on.take(), [change(&t, Some(0), 1), change(&t, None, 3), change(&link, None, 3)]);
        assert!(on.take().is_empty());
    }

    #[test]
    fn totals_move_by_differences_only() {
        let rows = MemoryTally::default();
        let b = |item: &str, size: Option<u64>, at| change(&layer("r", item), size, at);
        // The same link written twice (a re-push) counts once.
        assert_eq!(apply_all(&rows, &[b("d1", Some(10), 1), b("d1", Some(10), 2), b("d2", Some(5), 3)], 3).unwrap(), 2);
        assert_eq!(rows.totals("r").unwrap(), Totals { blobs: 2, blob_bytes: 15, ..Totals::default() });
        // Deleting what is not there, or deleting twice, takes nothing away.
        apply_all(&rows, &[b("d3", None, 4), b("d2", None, 5), b("d2", None, 6)], 6).unwrap();
        assert_eq!(rows.totals("r").unwrap(), Totals { blobs: 1, blob_bytes: 10, ..Totals::default() });
        // A tag moved to another digest is still one tag; manifests carry their bytes.
        let t = |size: Option<u64>, at| change(&tag("r", "latest"), size, at);
        let m = |item: &str, size: Option<u64>, at| change(&revision("r", item), size, at);
        apply_all(&rows, &[m("m1", Some(300), 7), t(Some(0), 7), m("m2", Some(200), 8), t(Some(0), 8)], 8).unwrap();
        assert_eq!(rows.totals("r").unwrap(), Totals { blobs: 1, blob_bytes: 10, manifests: 2, manifest_bytes: 500, tags: 1 });
        // A repository whose last item goes has no row.
        apply_all(&rows, &[b("d1", None, 9), m("m1", None, 9), m("m2", None, 9), t(None, 9)], 9).unwrap();
        assert!(rows.totals("r").unwrap().is_empty());
        assert!(rows.page("", 10).unwrap().is_empty());
        // A key that counts towards nothing changes nothing.
        assert_eq!(apply_all(&rows, &[change("gc/state", Some(1), 10)], 10).unwrap(), 0);
    }

    #[test]
    fn late_and_repeated_batches_change_nothing() {
        let key = layer("r", "d");
        let first = [change(&key, Some(10), 5)];
        let second = [change(&key, None, 6)];
        let in_order = MemoryTally::default();
        apply_all(&in_order, &first, 6).unwrap();
        apply_all(&in_order, &second, 6).unwrap();
        apply_all(&in_order, &second, 6).unwrap();
        let reversed = MemoryTally::default();
        apply_all(&reversed, &second, 6).unwrap();
        assert_eq!(apply_all(&reversed, &first, 6).unwrap(), 0, "the stale present is ignored");
        apply_all(&reversed, &first, 6).unwrap();
        assert!(in_order.totals("r").unwrap().is_empty());
        assert_eq!(in_order.totals("r").unwrap(), reversed.totals("r").unwrap());
        // A later push of the same digest counts again.
        apply_all(&reversed, &[change(&key, Some(10), 7)], 7).unwrap();
        assert_eq!(reversed.totals("r").unwrap().blobs, 1);
    }

    #[test]
    fn tombstones_are_pruned_after_their_horizon() {
        let rows = MemoryTally::default();
        let (t, u) = (tag("r", "t"), tag("r", "u"));
        apply_all(&rows, &[change(&t, Some(0), 1), change(&t, None, 2), change(&u, Some(0), 2)], 2).unwrap();
        assert_eq!(rows.entry(&t).unwrap(), Some(Entry { size: 0, present: false, at: 2 }));
        apply_all(&rows, &[], 2 + TOMBSTONE_MS).unwrap();
        assert!(rows.entry(&t).unwrap().is_some(), "kept for the whole horizon");
        apply_all(&rows, &[], 3 + TOMBSTONE_MS).unwrap();
        assert_eq!(rows.entry(&t).unwrap(), None);
        assert!(rows.entry(&u).unwrap().is_some(), "present entries stay");
    }

    #[test]
    fn pages_of_repositories_in_name_order() {
        let rows = MemoryTally::default();
        let tags: Vec<Change> = ["b", "a/x", "c", "a"].iter().map(|r| change(&tag(r, "t"), Some(0), 1)).collect();
        apply_all(&rows, &tags, 1).unwrap();
        apply_all(&rows, &[change(&stored("d"), Some(1), 1)], 1).unwrap();
        let names = |p: Vec<(String, Totals)>| p.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(rows.page("", 2).unwrap()), ["a", "a/x"]);
        assert_eq!(names(rows.page("a/x", 2).unwrap()), ["b", "c"]);
        assert!(rows.page("c", 2).unwrap().is_empty());
        let first = page(&rows, "", 1).unwrap();
        assert_eq!(first.stored, Stored { blobs: 1, bytes: 1 });
        assert_eq!(
            serde_json::to_value(&first.repositories).unwrap(),
            serde_json::json!([{"name": "a", "blobs": 0, "blob_bytes": 0, "manifests": 0, "manifest_bytes": 0, "tags": 1}])
        );
    }

    #[test]
    fn stored_blobs_are_the_registrys_own_row() {
        let rows = MemoryTally::default();
        apply_all(&rows, &[change(&layer("a", "d"), Some(100), 1), change(&layer("b", "d"), Some(100), 1), change(&stored("d"), Some(100), 1)], 1).unwrap();
        assert_eq!(rows.totals("a").unwrap().blob_bytes, 100);
        assert_eq!(rows.totals("b").unwrap().blob_bytes, 100);
        assert_eq!(rows.totals("").unwrap(), Totals { blobs: 1, blob_bytes: 100, ..Totals::default() });
        apply_all(&rows, &[change(&stored("d"), None, 2)], 2).unwrap();
        assert!(rows.totals("").unwrap().is_empty());
    }

    #[test]
    fn reconcile_repairs_lost_changes_within_the_page_range() {
        let rows = MemoryTally::default();
        let k3 = tag("r", "t");
        let mut keys = [layer("r", "1"), layer("r", "2")];
        keys.sort();
        let (first, second) = (keys[0].clone(), keys[1].clone());
        // The store believes both links exist; the bucket lost `second` (its delete never
        // reached the store), and holds tag t and `first`, which the store never heard of.
        apply_all(&rows, &[change(&first, Some(5), 1), change(&second, Some(7), 1), change(&layer("s", "9"), Some(1), 1)], 1).unwrap();
        let listed = vec![(first.clone(), 3), (k3.clone(), 4)];
        let page = RecountPage { prefix: "repositories/".into(), after: None, upto: Some(k3.clone()), listed, before: 10 };
        let out = reconcile(&rows, &page, 10).unwrap();
        // `first` was written (at 3) after the store's entry (at 1): its size is read again.
        assert_eq!(out.unknown, [first.clone()]);
        assert_eq!(out.corrected, 2, "second's delete and tag t");
        assert_eq!(rows.entry(&second).unwrap().map(|e| e.present), Some(false));
        assert_eq!(rows.totals("r").unwrap(), Totals { blobs: 1, blob_bytes: 5, tags: 1, ..Totals::default() });
        // Past `upto`, nothing was judged: repository s keeps its link.
        assert_eq!(rows.totals("s").unwrap().blobs, 1);
        // The read value is applied as a change; the same page again changes nothing more.
        apply_all(&rows, &[change(&first, Some(5), 3)], 10).unwrap();
        assert_eq!(reconcile(&rows, &page, 10).unwrap(), Reconciled::default());
        // An entry changed after the listing began is left to the change that made it.
        let late = RecountPage { prefix: "repositories/".into(), before: 0, ..Default::default() };
        assert_eq!(reconcile(&rows, &late, 10).unwrap().corrected, 0);
        assert_eq!(rows.totals("s").unwrap().blobs, 1);
        // To the end of the prefix: s's link is gone from the bucket.
        let rest = RecountPage { prefix: "repositories/".into(), after: Some(k3.clone()), before: 10, ..Default::default() };
        assert_eq!(reconcile(&rows, &rest, 10).unwrap().corrected, 1);
        assert!(rows.totals("s").unwrap().is_empty());
    }

    #[test]
    fn prefix_ends_bound_their_keys() {
        for prefix in ["repositories/", "blobs/"] {
            let end = prefix_end(prefix);
            assert!(format!("{prefix}zzzz/~~~") < end && prefix < end.as_str());
            assert!(!end.starts_with(prefix));
        }
    }
}
