//! In-memory stand-ins for native tests: a [`Bucket`] with etags and conditional puts like
//! R2's, counting its reads, and a [`FactCache`]. An interleaving bucket yields before every
//! operation, so futures joined together take turns between operations as concurrent requests
//! would on the platform (races become testable with `join_all`).

use async_trait::async_trait;
use std::cell::RefCell;
use std::collections::BTreeMap;

use super::facts::{FactCache, Lifetime};
use super::stats::{self, prefix_end, Change, Entry, Ledger, RecountPage, Reconciled, TallyRows, TallyStore, Totals};
use super::{Bucket, Listing, ObjectInfo, PutIf};
use crate::oci::error::Result;

/// One object: its bytes, its etag, and when it was written (the time set by
/// [`MemoryBucket::set_now`], else the put's sequence number: a logical clock).
struct Stored {
    bytes: Vec<u8>,
    etag: String,
    written: u64,
}

#[derive(Default)]
pub struct MemoryBucket {
    objects: RefCell<BTreeMap<String, Stored>>,
    now: RefCell<Option<u64>>,
    next_etag: RefCell<u64>,
    reads: RefCell<u64>,
    interleave: bool,
    /// The counted changes of every put and delete, as the worker's adapter notes them.
    ledger: Ledger,
}

/// Returns `Pending` once (waking itself), letting other joined futures run.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

impl MemoryBucket {
    pub fn new() -> Self {
        Self::default()
    }

    /// A bucket that notes the storage-totals changes of its puts and deletes in its
    /// [`MemoryBucket::ledger`], as the worker's adapter does.
    pub fn counting() -> Self {
        MemoryBucket { ledger: Ledger::new(true), ..Self::default() }
    }

    /// A bucket whose every operation first lets other joined futures run.
    pub fn interleaving() -> Self {
        MemoryBucket { interleave: true, ..Self::default() }
    }

    /// The storage-totals changes noted so far (`stats`; only by a [`MemoryBucket::counting`]).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    async fn turn(&self) {
        if self.interleave {
            YieldOnce(false).await;
        }
    }

    /// Puts from now on are written at `ms` (what a listing reports as their upload time).
    pub fn set_now(&self, ms: u64) {
        *self.now.borrow_mut() = Some(ms);
    }

    pub fn keys(&self) -> Vec<String> {
        self.objects.borrow().keys().cloned().collect()
    }

    /// Gets and heads so far.
    pub fn reads(&self) -> u64 {
        *self.reads.borrow()
    }
}

#[async_trait(?Send)]
impl Bucket for MemoryBucket {
    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>> {
        self.turn().await;
        *self.reads.borrow_mut() += 1;
        Ok(self.objects.borrow().get(key).map(|o| (o.bytes.clone(), o.etag.clone())))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.turn().await;
        *self.reads.borrow_mut() += 1;
        Ok(self
            .objects
            .borrow()
            .get(key)
            .map(|o| ObjectInfo { key: key.to_string(), size: o.bytes.len() as u64, etag: o.etag.clone() }))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, _ct: Option<&str>, cond: PutIf) -> Result<Option<String>> {
        self.turn().await;
        let mut objects = self.objects.borrow_mut();
        let current = objects.get(key).map(|o| &o.etag);
        let allowed = match &cond {
            PutIf::Always => true,
            PutIf::EtagMatches(want) => current == Some(want),
            PutIf::Absent => current.is_none(),
        };
        if !allowed {
            return Ok(None);
        }
        let mut n = self.next_etag.borrow_mut();
        *n += 1;
        let etag = format!("e{n}");
        let written = self.now.borrow().unwrap_or(*n);
        self.ledger.put(key, &bytes, written);
        objects.insert(key.to_string(), Stored { bytes, etag: etag.clone(), written });
        Ok(Some(etag))
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        self.turn().await;
        let mut objects = self.objects.borrow_mut();
        for k in keys {
            objects.remove(k);
        }
        let at = self.now.borrow().unwrap_or(*self.next_etag.borrow());
        self.ledger.delete(keys, at);
        Ok(())
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Listing> {
        self.turn().await;
        use std::ops::Bound;
        let objects = self.objects.borrow();
        // From the prefix (or just past `start_after`) on, in key order, while keys share the prefix.
        let from = match start_after {
            Some(s) if s >= prefix => Bound::Excluded(s.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        let mut found: Vec<(String, u64)> = objects
            .range((from, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit + 1)
            .map(|(k, o)| (k.clone(), o.written))
            .collect();
        let truncated = found.len() > limit;
        found.truncate(limit);
        let (keys, uploaded) = found.into_iter().unzip();
        Ok(Listing { keys, uploaded, truncated })
    }
}

/// A [`FactCache`] in memory, remembering each entry's lifetime.
pub struct MemoryFacts {
    entries: RefCell<BTreeMap<String, (Vec<u8>, Lifetime)>>,
    mutable_ttl: u32,
}

impl MemoryFacts {
    pub fn new(mutable_ttl: u32) -> Self {
        MemoryFacts { entries: RefCell::default(), mutable_ttl }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.borrow().is_empty()
    }

    pub fn lifetime_of(&self, key: &str) -> Option<Lifetime> {
        self.entries.borrow().get(key).map(|(_, l)| *l)
    }
}

#[async_trait(?Send)]
impl FactCache for MemoryFacts {
    async fn get(&self, key: &str, _lifetime: Lifetime) -> Option<Vec<u8>> {
        self.entries.borrow().get(key).map(|(v, _)| v.clone())
    }

    async fn put(&self, key: &str, value: &[u8], lifetime: Lifetime) {
        self.entries.borrow_mut().insert(key.to_string(), (value.to_vec(), lifetime));
    }

    async fn forget(&self, keys: &[String]) {
        let mut entries = self.entries.borrow_mut();
        for k in keys {
            entries.remove(k);
        }
    }

    fn mutable_ttl(&self) -> u32 {
        self.mutable_ttl
    }
}

/// The rows of a storage-totals store ([`TallyRows`]) in memory: what the worker keeps in a
/// Durable Object's SQLite database; also the store itself ([`TallyStore`]) for native tests.
#[derive(Default)]
pub struct MemoryTally {
    entries: RefCell<BTreeMap<String, Entry>>,
    totals: RefCell<BTreeMap<String, Totals>>,
}

impl TallyRows for MemoryTally {
    fn entry(&self, key: &str) -> Result<Option<Entry>> {
        Ok(self.entries.borrow().get(key).copied())
    }

    fn set_entry(&self, key: &str, entry: Entry) -> Result<()> {
        self.entries.borrow_mut().insert(key.to_string(), entry);
        Ok(())
    }

    fn present_in(&self, prefix: &str, after: Option<&str>, upto: Option<&str>) -> Result<Vec<(String, Entry)>> {
        use std::ops::Bound;
        let end = prefix_end(prefix);
        let from = after.map_or(Bound::Included(prefix), Bound::Excluded);
        let to = upto.map_or(Bound::Excluded(end.as_str()), Bound::Included);
        let entries = self.entries.borrow();
        Ok(entries.range::<str, _>((from, to)).filter(|(k, e)| e.present && k.starts_with(prefix)).map(|(k, e)| (k.clone(), *e)).collect())
    }

    fn totals(&self, repo: &str) -> Result<Totals> {
        Ok(self.totals.borrow().get(repo).cloned().unwrap_or_default())
    }

    fn set_totals(&self, repo: &str, totals: &Totals) -> Result<()> {
        let mut rows = self.totals.borrow_mut();
        if totals.is_empty() {
            rows.remove(repo);
        } else {
            rows.insert(repo.to_string(), totals.clone());
        }
        Ok(())
    }

    fn prune(&self, before: u64) -> Result<()> {
        self.entries.borrow_mut().retain(|_, e| e.present || e.at >= before);
        Ok(())
    }

    fn page(&self, after: &str, n: usize) -> Result<Vec<(String, Totals)>> {
        use std::ops::Bound;
        let rows = self.totals.borrow();
        Ok(rows.range::<str, _>((Bound::Excluded(after), Bound::Unbounded)).take(n).map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

#[async_trait(?Send)]
impl TallyStore for MemoryTally {
    async fn apply(&self, changes: &[Change]) -> Result<usize> {
        let now = changes.iter().map(|c| c.at).max().unwrap_or(0);
        stats::apply_all(self, changes, now)
    }

    async fn reconcile(&self, page: &RecountPage) -> Result<Reconciled> {
        stats::reconcile(self, page, page.before)
    }
}
