//! Storage with the registry's semantics, over a small bucket trait.
//!
//! `paths` computes every key; the stores (`blobs`, `manifests`, `uploads` with `upload_state`,
//! `chunking` and `purge`) say what the keys mean; `Bucket` is the narrow interface they need from the object store, implemented
//! over R2 for the worker (`r2`, wasm only) and in memory for native tests (`memory`). Pulls
//! read through `facts`, a cache of immutable facts (the edge cache and KV in the worker,
//! `edge`); `meter` counts what each request costs; `stats` keeps the storage totals from the
//! changes the adapter notes (in a Durable Object in the worker, `stats_object`).

pub mod blobs;
pub mod catalog;
pub mod cursor;
pub mod chunking;
pub mod eviction;
pub mod facts;
pub mod gc;
pub mod lifecycle;
pub mod listing;
pub mod manifests;
pub mod meter;
pub mod mirror_tags;
pub mod paths;
pub mod presign;
pub mod purge;
pub mod recount;
pub mod referrers;
pub mod retention;
pub mod stats;
pub mod summaries;
pub mod tags;
pub mod upload_state;
pub mod uploads;

#[cfg(not(target_arch = "wasm32"))]
pub mod memory;
#[cfg(target_arch = "wasm32")]
pub mod edge;
#[cfg(target_arch = "wasm32")]
pub mod r2;
#[cfg(target_arch = "wasm32")]
pub mod stats_object;

use async_trait::async_trait;

use crate::oci::error::Result;

/// A stored object's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub etag: String,
}

/// When a put may happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutIf {
    Always,
    /// Only if the object's current etag is this one (optimistic concurrency).
    EtagMatches(String),
    /// Only if there is no object at the key: the first writer wins, every later one gets
    /// `None` and must read what the winner wrote.
    Absent,
}

/// One page of a prefix listing, in lexical key order.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub keys: Vec<String>,
    /// When each key's object was written (ms since the epoch), in the order of `keys`.
    pub uploaded: Vec<u64>,
    pub truncated: bool,
}

/// The small-object operations of the bucket (R2 in production). Streaming bodies live in the
/// adapters and the upload engine, not here.
#[async_trait(?Send)]
pub trait Bucket {
    /// The object's bytes and etag.
    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>>;
    /// [`Bucket::get`] for a key the future owns (handy for concurrent reads).
    async fn get_owned(&self, key: String) -> Result<Option<(Vec<u8>, String)>> {
        self.get(&key).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>>;
    /// Stores `bytes`; returns the new etag, or `None` when the condition failed.
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: Option<&str>, cond: PutIf) -> Result<Option<String>>;
    async fn delete(&self, keys: &[String]) -> Result<()>;
    /// Keys under `prefix` strictly after `start_after`, at most `limit` of them.
    async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Listing>;
}

/// A tag or manifest a lifecycle run removed, for the `delete` event and the log line that
/// announce it as a client's delete is announced (`tag` set: the tag; else the manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub repository: String,
    pub digest: String,
    pub tag: Option<String>,
}

/// Largest page a list endpoint serves (R2 lists at most 1000 keys per call).
pub const MAX_PAGE: usize = 1000;
