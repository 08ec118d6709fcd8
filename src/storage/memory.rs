//! In-memory stand-ins for native tests: a [`Bucket`] with etags and conditional puts like
//! R2's, counting its reads, and a [`FactCache`]. An interleaving bucket yields before every
//! operation, so futures joined together take turns between operations as concurrent requests
//! would on the platform (races become testable with `join_all`).

use async_trait::async_trait;
use std::cell::RefCell;
use std::collections::BTreeMap;

use super::facts::{FactCache, Lifetime};
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

    /// A bucket whose every operation first lets other joined futures run.
    pub fn interleaving() -> Self {
        MemoryBucket { interleave: true, ..Self::default() }
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
        objects.insert(key.to_string(), Stored { bytes, etag: etag.clone(), written });
        Ok(Some(etag))
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        self.turn().await;
        let mut objects = self.objects.borrow_mut();
        for k in keys {
            objects.remove(k);
        }
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
