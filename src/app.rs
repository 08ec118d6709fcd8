//! The App (configuration and bindings, built from the worker's `Env`) and the per-request
//! Context handed to handlers.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasm_bindgen::prelude::*;
use worker::{Env, Request};

use crate::oci::error::{Code, RegistryError, Result};
use crate::storage::edge::Edge;
use crate::storage::meter::Meter;
use crate::storage::r2::R2;
use crate::storage::uploads::TokenKey;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = crypto, js_name = randomUUID)]
    fn random_uuid() -> String;
}

static WARNED: AtomicBool = AtomicBool::new(false);

/// Used when no `UPLOAD_SECRET` is configured (local runs); logged loudly.
const DEV_SECRET: &str = "edge-registry-development-secret";

/// Default request-body ceiling: the edge platform's 100 MB on Free/Pro plans.
pub const DEFAULT_MAX_BODY: u64 = 100_000_000;

/// Default lifetime of cached facts, in seconds: how long another data centre may still serve
/// a deleted blob link or manifest revision.
pub const DEFAULT_CACHE_TTL: u32 = 3600;

/// Default largest blob kept in the edge cache (the platform caches objects up to 512 MB).
pub const DEFAULT_BLOB_CACHE_MAX: u64 = 500_000_000;

pub struct Config {
    pub token_key: TokenKey,
    pub max_body: u64,
    /// Forces a part size for chunked uploads instead of the first chunk's length.
    pub part_size: Option<u64>,
}

pub struct App {
    pub r2: R2,
    pub edge: Edge,
    pub meter: Rc<Meter>,
    pub config: Config,
}

impl App {
    /// The bindings and configuration for one request to `origin`.
    pub async fn from_env(env: &Env, origin: &str) -> Result<Self> {
        let bucket = env.bucket("BLOBS").map_err(|e| RegistryError::internal(format!("R2 binding BLOBS: {e}")))?;
        let var = |name: &str| env.var(name).ok().map(|v| v.to_string()).filter(|v| !v.is_empty());
        let secret = env.secret("UPLOAD_SECRET").ok().map(|s| s.to_string()).or_else(|| var("UPLOAD_SECRET"));
        let secret = secret.unwrap_or_else(|| {
            if !WARNED.swap(true, Ordering::Relaxed) {
                worker::console_warn!("UPLOAD_SECRET is not set: upload URLs are signed with a development key");
            }
            DEV_SECRET.to_string()
        });
        let number = |name: &str| var(name).and_then(|v| v.parse::<u64>().ok());
        let meter = Rc::new(Meter::new());
        let seconds = |name: &str, default: u32| number(name).map(|n| n.min(u32::MAX as u64) as u32).unwrap_or(default);
        let edge = Edge::open(
            origin,
            env.kv("META").ok(),
            meter.clone(),
            seconds("CACHE_TTL_SECONDS", DEFAULT_CACHE_TTL),
            seconds("TAG_CACHE_SECONDS", 0),
            number("BLOB_CACHE_MAX_BYTES").unwrap_or(DEFAULT_BLOB_CACHE_MAX),
        )
        .await;
        Ok(App {
            r2: R2::new(bucket, meter.clone()),
            edge,
            meter,
            config: Config {
                token_key: TokenKey::new(secret.as_bytes()),
                max_body: number("MAX_BODY_BYTES").unwrap_or(DEFAULT_MAX_BODY),
                part_size: number("UPLOAD_PART_SIZE"),
            },
        })
    }
}

/// What a handler knows of the request besides the route.
pub struct Context<'a> {
    pub app: &'a App,
    pub req: Request,
    pub query: Vec<(String, String)>,
}

impl Context<'_> {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.req.headers().get(name).ok().flatten()
    }

    /// `Content-Length`, if the client sent a valid one.
    pub fn content_length(&self) -> Result<Option<u64>> {
        match self.header("content-length") {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| RegistryError::new(Code::SizeInvalid, format!("invalid Content-Length {v:?}"))),
        }
    }

    pub fn now_ms(&self) -> u64 {
        js_sys::Date::now() as u64
    }

    pub fn new_id(&self) -> String {
        random_uuid()
    }
}
