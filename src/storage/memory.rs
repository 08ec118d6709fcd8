//! An in-memory [`Bucket`] for native tests, with etags and conditional puts like R2's.

use async_trait::async_trait;
use std::cell::RefCell;
use std::collections::BTreeMap;

use super::{Bucket, Listing, ObjectInfo, PutIf};
use crate::oci::error::Result;

#[derive(Default)]
pub struct MemoryBucket {
    objects: RefCell<BTreeMap<String, (Vec<u8>, String)>>,
    next_etag: RefCell<u64>,
}

impl MemoryBucket {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn keys(&self) -> Vec<String> {
        self.objects.borrow().keys().cloned().collect()
    }
}

#[async_trait(?Send)]
impl Bucket for MemoryBucket {
    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>> {
        Ok(self.objects.borrow().get(key).cloned())
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        Ok(self
            .objects
            .borrow()
            .get(key)
            .map(|(b, e)| ObjectInfo { key: key.to_string(), size: b.len() as u64, etag: e.clone() }))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, _ct: Option<&str>, cond: PutIf) -> Result<Option<String>> {
        let mut objects = self.objects.borrow_mut();
        if let PutIf::EtagMatches(want) = &cond {
            if objects.get(key).map(|(_, e)| e) != Some(want) {
                return Ok(None);
            }
        }
        let mut n = self.next_etag.borrow_mut();
        *n += 1;
        let etag = format!("e{n}");
        objects.insert(key.to_string(), (bytes, etag.clone()));
        Ok(Some(etag))
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        let mut objects = self.objects.borrow_mut();
        for k in keys {
            objects.remove(k);
        }
        Ok(())
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Listing> {
        let objects = self.objects.borrow();
        let mut keys: Vec<String> = objects
            .keys()
            .filter(|k| k.starts_with(prefix) && start_after.is_none_or(|s| k.as_str() > s))
            .take(limit + 1)
            .cloned()
            .collect();
        let truncated = keys.len() > limit;
        keys.truncate(limit);
        Ok(Listing { keys, truncated })
    }
}
