//! The worker's caches (wasm only): the data centre's edge cache (Cache API) and the KV
//! namespace `META`, as the [`FactCache`] pulls read through, and the edge cache of whole blobs
//! keyed by digest. Every operation is counted on the request's [`Meter`].
//!
//! Facts are looked up in the edge cache first (free, local), then in KV (global, eventually
//! consistent); an answer from KV is copied into the edge cache, one from the bucket into both.
//! Entries expire after `ttl` seconds (`CACHE_TTL_SECONDS`), which bounds how long a deleted
//! fact can still be served by another data centre (this one forgets it at once).
//!
//! Blob bytes are cached whole, as the response to `GET <origin>/_cache/blobs/<digest>`. A cold
//! full GET serves the bucket's stream untouched and fills the cache after it, from a second
//! read ([`Edge::cache_blob_after`]: measured faster on the emulator than teeing one stream to
//! both, or than serving the cached copy once stored); the cache serves later GETs and any
//! single range of them. Nothing here passes blob bytes through wasm.

use std::cell::RefCell;
use std::rc::Rc;

use async_trait::async_trait;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use super::facts::{FactCache, Lifetime};
use super::meter::{Meter, Op};
use crate::oci::digest::Digest;

/// How long cached blob bytes live: they never change, the cache evicts what is not used.
const BLOB_MAX_AGE: u32 = 30 * 24 * 3600;

#[wasm_bindgen(inline_js = r#"
export async function openCache(name) {
  return await caches.open(name);
}

export async function cacheGetBytes(cache, key) {
  const r = await cache.match(key);
  return r ? new Uint8Array(await r.arrayBuffer()) : null;
}

export function cachePutBytes(cache, key, bytes, maxAge) {
  return cache.put(key, new Response(bytes, { headers: { "cache-control": `max-age=${maxAge}` } }));
}

export function cacheDelete(cache, key) {
  return cache.delete(key);
}

// The cached blob response for `range` ("bytes=a-b", or null for all of it), or null.
export async function cacheMatchBlob(cache, key, range) {
  return (await cache.match(new Request(key, range ? { headers: { range } } : {}))) ?? null;
}

// The stream to serve for `body` (`size` bytes), unchanged (a FixedLengthStream is the
// runtime's own identity stream), and a promise settled once all of it has gone to the client.
export function watchEnd(body, size) {
  const { readable, writable } = new FixedLengthStream(size);
  const done = body.pipeTo(writable);
  done.catch(() => {});
  return { client: readable, done };
}

// Stores `body` in the cache with `headers`; settles when the cache has it.
export function cachePutStream(cache, key, body, headers) {
  return cache.put(key, new Response(body, { headers }));
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = openCache, catch)]
    async fn open_cache(name: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = cacheGetBytes, catch)]
    async fn cache_get_bytes(cache: &JsValue, key: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = cachePutBytes, catch)]
    fn cache_put_bytes(cache: &JsValue, key: &str, bytes: &[u8], max_age: u32) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(js_name = cacheDelete, catch)]
    fn cache_delete(cache: &JsValue, key: &str) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(js_name = cacheMatchBlob, catch)]
    async fn cache_match_blob(cache: &JsValue, key: &str, range: Option<String>) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = watchEnd, catch)]
    fn watch_end(body: &web_sys::ReadableStream, size: f64) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = cachePutStream, catch)]
    fn cache_put_stream(cache: &JsValue, key: &str, body: &web_sys::ReadableStream, headers: &web_sys::Headers) -> Result<js_sys::Promise, JsValue>;
}

fn warn(what: &str, e: JsValue) {
    let msg = e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_else(|| format!("{e:?}"));
    worker::console_warn!("{what}: {msg}");
}

async fn settle(what: &str, p: Result<js_sys::Promise, JsValue>) {
    if let Err(e) = match p {
        Ok(p) => JsFuture::from(p).await.map(|_| ()),
        Err(e) => Err(e),
    } {
        warn(what, e);
    }
}

/// A named edge cache, opened on first use: most requests never touch one.
struct NamedCache {
    name: &'static str,
    handle: RefCell<Option<JsValue>>,
}

impl NamedCache {
    fn new(name: &'static str) -> Self {
        NamedCache { name, handle: RefCell::default() }
    }

    /// The cache, or `None` where the platform offers none.
    async fn get(&self) -> Option<JsValue> {
        let opened = self.handle.borrow().clone();
        let cache = match opened {
            Some(c) => c,
            None => {
                let c = open_cache(self.name).await.unwrap_or_else(|e| {
                    warn("open edge cache", e);
                    JsValue::NULL
                });
                *self.handle.borrow_mut() = Some(c.clone());
                c
            }
        };
        (!cache.is_null()).then_some(cache)
    }
}

pub struct Edge {
    facts: NamedCache,
    blobs: NamedCache,
    kv: Option<worker::KvStore>,
    meter: Rc<Meter>,
    /// `<origin>/_cache/`: cache keys live under the worker's own origin.
    prefix: String,
    ttl: u32,
    tag_ttl: u32,
    /// Largest blob kept in the edge cache; 0 turns blob caching off.
    blob_max: u64,
    /// Cache fills (and other work) still running: finished after the response ([`Edge::take_pending`]).
    pending: RefCell<Vec<js_sys::Promise>>,
    /// Bytes the KV writes in `pending` hold until they finish ([`DEFERRED_KV_BYTES`]).
    deferred_bytes: std::cell::Cell<usize>,
}

/// The most bytes of KV writes one request leaves running after its response. A deferred write
/// holds its value until it finishes, so a page that reads many big manifests (the UI's tags)
/// once held all of them at once; past this, a write is finished before the request goes on.
pub const DEFERRED_KV_BYTES: usize = 16 << 20;

/// What the edge cache holds for a blob request.
pub struct CachedBlob {
    pub status: u16,
    pub body: Option<web_sys::ReadableStream>,
}

impl Edge {
    pub fn new(origin: &str, kv: Option<worker::KvStore>, meter: Rc<Meter>, ttl: u32, tag_ttl: u32, blob_max: u64) -> Self {
        Edge {
            facts: NamedCache::new("registry-facts"),
            blobs: NamedCache::new("registry-blobs"),
            kv,
            meter,
            prefix: format!("{origin}/_cache/"),
            ttl: ttl.max(60),
            tag_ttl,
            blob_max,
            pending: RefCell::default(),
            deferred_bytes: Default::default(),
        }
    }

    /// The cache writes started by this request, for the platform to finish after the
    /// response (`waitUntil`): a pull does not wait for them.
    pub fn take_pending(&self) -> Vec<js_sys::Promise> {
        self.pending.take()
    }

    /// Work of this request that finishes after the response (a mirror fill's commit).
    pub fn after_response(&self, work: js_sys::Promise) {
        self.pending.borrow_mut().push(work);
    }

    fn in_background(&self, what: &'static str, p: std::result::Result<js_sys::Promise, JsValue>) {
        match p {
            Ok(p) => self.pending.borrow_mut().push(future_to_promise(async move {
                if let Err(e) = JsFuture::from(p).await {
                    warn(what, e);
                }
                Ok(JsValue::UNDEFINED)
            })),
            Err(e) => warn(what, e),
        }
    }

    /// Whether a blob of `size` bytes may be kept in the edge cache.
    pub fn caches_blob(&self, size: u64) -> bool {
        size <= self.blob_max
    }

    fn blob_key(&self, digest: &Digest) -> String {
        format!("{}blobs/{digest}", self.prefix)
    }

    /// The cached bytes of `digest` (`range` as `bytes=a-b`), if this data centre has them.
    pub async fn blob(&self, digest: &Digest, range: Option<String>) -> Option<CachedBlob> {
        let cache = self.blobs.get().await?;
        match cache_match_blob(&cache, &self.blob_key(digest), range).await {
            Ok(r) if !r.is_null() => {
                self.meter.add(Op::CacheHit, 1);
                let r: web_sys::Response = r.unchecked_into();
                Some(CachedBlob { status: r.status(), body: r.body() })
            }
            Ok(_) => {
                self.meter.add(Op::CacheMiss, 1);
                None
            }
            Err(e) => {
                warn("edge cache match", e);
                None
            }
        }
    }

    /// Stores blob `digest` (`size` bytes) in the edge cache after the response, from a read of
    /// its own (`body`, opened then): the response streams the bucket's bytes untouched, and
    /// the next GET here, any `Range` of it included, reads nothing from the bucket. Measured
    /// on the emulator against the alternatives (`npm run bench`, 100 MB, cold pull / plain JS
    /// pull): serving the cached copy after storing it 0.40× (single-put object), the runtime's
    /// tee to client and cache 0.25×; this, the client's stream untouched, at the cost of a
    /// second bucket read (one class-B operation) per cold pull.
    pub async fn cache_blob_after<F>(&self, digest: &Digest, size: u64, body: F)
    where
        F: std::future::Future<Output = Option<web_sys::ReadableStream>> + 'static,
    {
        let Some(cache) = self.blobs.get().await else { return };
        let Ok(headers) = web_sys::Headers::new() else { return };
        let _ = headers.set("content-length", &size.to_string());
        let _ = headers.set("content-type", "application/octet-stream");
        let _ = headers.set("etag", &format!("\"{digest}\""));
        let _ = headers.set("cache-control", &format!("max-age={BLOB_MAX_AGE}"));
        self.meter.add(Op::CacheWrite, 1);
        let key = self.blob_key(digest);
        self.pending.borrow_mut().push(future_to_promise(async move {
            let Some(body) = body.await else { return Ok(JsValue::UNDEFINED) };
            match cache_put_stream(&cache, &key, &body, &headers) {
                Ok(p) => {
                    if let Err(e) = JsFuture::from(p).await {
                        warn("edge cache put", e);
                    }
                }
                Err(e) => warn("edge cache put", e),
            }
            Ok(JsValue::UNDEFINED)
        }));
    }

    /// `body` (`size` bytes) as served, and a promise settled once the client has had all of it
    /// (`None` if the runtime could not watch it: serve `body` as it is).
    pub fn watch_end(&self, body: &web_sys::ReadableStream, size: u64) -> Option<(web_sys::ReadableStream, js_sys::Promise)> {
        let out = watch_end(body, size as f64).ok()?;
        let get = |k: &str| js_sys::Reflect::get(&out, &JsValue::from_str(k)).ok();
        Some((get("client")?.unchecked_into(), get("done")?.unchecked_into()))
    }

    /// Drops blob `digest` from this data centre's cache.
    pub async fn forget_blob(&self, digest: &Digest) {
        if let Some(cache) = self.blobs.get().await {
            settle("edge cache delete", cache_delete(&cache, &self.blob_key(digest))).await;
        }
    }

    async fn edge_put(&self, key: &str, value: &[u8], max_age: u32) {
        if let Some(cache) = self.facts.get().await {
            self.meter.add(Op::CacheWrite, 1);
            self.in_background("edge cache put", cache_put_bytes(&cache, &format!("{}{key}", self.prefix), value, max_age));
        }
    }
}

#[async_trait(?Send)]
impl FactCache for Edge {
    async fn get(&self, key: &str, lifetime: Lifetime) -> Option<Vec<u8>> {
        if let Some(cache) = self.facts.get().await {
            match cache_get_bytes(&cache, &format!("{}{key}", self.prefix)).await {
                Ok(v) if !v.is_null() => {
                    self.meter.add(Op::CacheHit, 1);
                    return Some(v.unchecked_into::<js_sys::Uint8Array>().to_vec());
                }
                Ok(_) => self.meter.add(Op::CacheMiss, 1),
                Err(e) => warn("edge cache match", e),
            }
        }
        // Mutable facts live only in the edge cache: KV could not honour a short bound.
        let (Lifetime::Immutable, Some(kv)) = (lifetime, &self.kv) else { return None };
        self.meter.add(Op::KvRead, 1);
        match kv.get(key).bytes().await {
            Ok(Some(v)) => {
                self.edge_put(key, &v, self.ttl).await;
                Some(v)
            }
            Ok(None) => None,
            Err(e) => {
                worker::console_warn!("kv get: {e}");
                None
            }
        }
    }

    async fn put(&self, key: &str, value: &[u8], lifetime: Lifetime) {
        match lifetime {
            Lifetime::Seconds(s) => self.edge_put(key, value, s).await,
            Lifetime::Immutable => {
                self.edge_put(key, value, self.ttl).await;
                if let Some(kv) = &self.kv {
                    self.meter.add(Op::KvWrite, 1);
                    let put = kv.put_bytes(key, value).map(|p| p.expiration_ttl(self.ttl as u64));
                    // Concurrent first pulls race to fill the same key; KV allows one write per
                    // second per key, and any of them is as good as the other.
                    let write = async move {
                        if let Err(e) = async { put?.execute().await }.await {
                            worker::console_warn!("kv put: {e}");
                        }
                    };
                    let deferred = self.deferred_bytes.get() + value.len();
                    if deferred > DEFERRED_KV_BYTES {
                        write.await;
                    } else {
                        self.deferred_bytes.set(deferred);
                        self.pending.borrow_mut().push(future_to_promise(async move {
                            write.await;
                            Ok(JsValue::UNDEFINED)
                        }));
                    }
                }
            }
        }
    }

    async fn forget(&self, keys: &[String]) {
        let cache = self.facts.get().await;
        for key in keys {
            if let Some(cache) = &cache {
                settle("edge cache delete", cache_delete(cache, &format!("{}{key}", self.prefix))).await;
            }
            if let Some(kv) = &self.kv {
                self.meter.add(Op::KvWrite, 1);
                if let Err(e) = kv.delete(key).await {
                    worker::console_warn!("kv delete: {e}");
                }
            }
        }
    }

    fn mutable_ttl(&self) -> u32 {
        self.tag_ttl
    }
}
