//! The App (configuration and bindings, built from the worker's `Env`) and the per-request
//! Context handed to handlers.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasm_bindgen::prelude::*;
use worker::{Env, Request};

use crate::auth::access::{AuthConfig, Caller};
use crate::auth::htpasswd::Htpasswd;
use crate::auth::rules::Rules;
use crate::auth::token::TokenSigner;
use crate::oci::error::{Code, RegistryError, Result};
use crate::routes::TOKEN_PATH;
use crate::storage::edge::Edge;
use crate::storage::lifecycle::LifecycleConfig;
use crate::storage::meter::Meter;
use crate::storage::stats::Ledger;
use crate::storage::stats_object;
use crate::storage::r2::R2;
use crate::auth::upload_url::UploadUrlKey;
use crate::mirror::config::Upstreams;
use crate::policy::immutable::ImmutableTags;
use crate::policy::retention::Retention;
use std::collections::BTreeMap;
use crate::storage::uploads::DEFAULT_LEASE_MS;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = crypto, js_name = randomUUID)]
    fn random_uuid() -> String;
}

/// A random UUID (the runtime's `crypto.randomUUID`).
pub fn new_id() -> String {
    random_uuid()
}

static WARNED: AtomicBool = AtomicBool::new(false);
static WARNED_OPEN: AtomicBool = AtomicBool::new(false);
static WARNED_ORIGIN: AtomicBool = AtomicBool::new(false);
static WARNED_GRACE: AtomicBool = AtomicBool::new(false);

/// Lifecycle defaults: uploads abandoned after a day; garbage kept for an hour after its last
/// use; bucket operations per run below the platform's 1000 subrequests.
pub const DEFAULT_UPLOAD_MAX_AGE_S: u64 = 24 * 3600;
pub const DEFAULT_GC_GRACE_S: u64 = 3600;
pub const DEFAULT_LIFECYCLE_BUDGET: u64 = 800;

/// Default lifetime of a bearer token, in seconds.
pub const DEFAULT_TOKEN_TTL: u64 = 300;

/// Used when no `UPLOAD_SECRET` is configured, only while the registry is open (local runs);
/// logged loudly. With access control on, a missing secret fails every request.
const DEV_SECRET: &str = "edge-registry-development-secret";

/// Default request-body ceiling: the edge platform's 100 MB on Free/Pro plans.
pub const DEFAULT_MAX_BODY: u64 = 100_000_000;

/// Default lifetime of cached facts, in seconds: how long another data centre may still serve
/// a deleted blob link or manifest revision.
pub const DEFAULT_CACHE_TTL: u32 = 3600;

/// Default largest blob kept in the edge cache (the platform caches objects up to 512 MB).
pub const DEFAULT_BLOB_CACHE_MAX: u64 = 500_000_000;

pub struct Config {
    pub auth: AuthConfig,
    pub lifecycle: LifecycleConfig,
    pub upload_url_key: UploadUrlKey,
    pub max_body: u64,
    /// Forces a part size for chunked uploads instead of the first chunk's length.
    pub part_size: Option<u64>,
    /// How long a chunk holds its upload without renewing (`UPLOAD_LEASE_SECONDS`).
    pub upload_lease_ms: u64,
    /// The mirrored upstreams (`UPSTREAMS`), their credentials by secret name, and how long an
    /// upstream may take to answer (`UPSTREAM_TIMEOUT_SECONDS`).
    pub upstreams: Upstreams,
    pub upstream_credentials: BTreeMap<String, String>,
    pub upstream_timeout_ms: u64,
    /// Tags that never move once they exist (`IMMUTABLE_TAGS`).
    pub immutable_tags: ImmutableTags,
    /// What lifecycle runs delete (`RETENTION`).
    pub retention: Retention,
    /// Huge blob GETs answered with a presigned R2 URL (`OFFLOAD_MIN_BYTES` and R2's S3
    /// credentials), if configured.
    pub offload: Option<Offload>,
}

/// Where events go (`api::events`): the queue binding, and whether every pull is sent
/// (`NOTIFY_PULLS`).
pub struct Events {
    pub queue: worker::Queue,
    pub notify_pulls: bool,
}

impl Events {
    /// The events configuration: on when the `EVENTS` queue is bound.
    pub fn from_env(env: &Env) -> Option<Events> {
        let queue = env.queue("EVENTS").ok()?;
        Some(Events { queue, notify_pulls: Settings(env).flag("NOTIFY_PULLS") })
    }
}

/// The offload of huge blob downloads to presigned R2 URLs.
pub struct Offload {
    pub signer: crate::storage::presign::S3Signer,
    /// Blobs of at least this many bytes are offloaded.
    pub min_bytes: u64,
    /// How long a presigned URL works (seconds).
    pub ttl_s: u32,
}

/// Default lifetime of a presigned blob URL, in seconds.
pub const DEFAULT_OFFLOAD_TTL_S: u32 = 300;

/// Reads the offload settings: off unless `OFFLOAD_MIN_BYTES` is set; then the endpoint
/// (`R2_S3_ENDPOINT`), bucket (`R2_BUCKET_NAME`) and credentials (secrets `R2_ACCESS_KEY_ID`,
/// `R2_SECRET_ACCESS_KEY`) must all be there, or every request fails (closed, not open).
fn offload(settings: &Settings<'_>) -> Result<Option<Offload>> {
    let Some(min_bytes) = settings.var("OFFLOAD_MIN_BYTES") else { return Ok(None) };
    let min_bytes = min_bytes.parse().map_err(|_| RegistryError::misconfigured(format!("OFFLOAD_MIN_BYTES {min_bytes:?} is not a number")))?;
    let need = |value: Option<String>, name: &str| value.ok_or_else(|| RegistryError::misconfigured(format!("OFFLOAD_MIN_BYTES is set but {name} is not")));
    let signer = crate::storage::presign::S3Signer {
        access_key_id: need(settings.secret("R2_ACCESS_KEY_ID"), "R2_ACCESS_KEY_ID")?,
        secret_access_key: need(settings.secret("R2_SECRET_ACCESS_KEY"), "R2_SECRET_ACCESS_KEY")?,
        endpoint: need(settings.var("R2_S3_ENDPOINT"), "R2_S3_ENDPOINT")?,
        bucket: need(settings.var("R2_BUCKET_NAME"), "R2_BUCKET_NAME")?,
        region: "auto".into(),
    };
    let ttl_s = settings.seconds("OFFLOAD_TTL_SECONDS", DEFAULT_OFFLOAD_TTL_S).clamp(1, 7 * 24 * 3600);
    Ok(Some(Offload { signer, min_bytes, ttl_s }))
}

/// Default wait for an upstream's answer before serving what is stored (or failing).
pub const DEFAULT_UPSTREAM_TIMEOUT_S: u64 = 10;

pub struct App {
    pub r2: R2,
    pub edge: Edge,
    pub meter: Rc<Meter>,
    /// The request's changes to the storage totals, noted by `r2` (on when `STATS` is bound).
    pub ledger: Rc<Ledger>,
    /// The storage totals' store (`STATS`), if bound.
    pub stats: Option<Rc<stats_object::StatsStore>>,
    pub config: Config,
    /// The registry's public origin (`https://host`), as requests reach it.
    pub origin: String,
    /// Where events go (`EVENTS` queue bound), if anywhere.
    pub events: Option<Events>,
    /// The authenticated user of the request, for its log line (set by `api::handle`).
    pub caller_name: std::cell::RefCell<Option<String>>,
}

impl App {
    /// The registry's host, as requests reach it.
    pub fn host(&self) -> &str {
        host_of(&self.origin)
    }
}

/// Reads configuration: vars (an empty one counts as unset) and secrets (falling back to a var
/// of the same name, for local runs).
struct Settings<'a>(&'a Env);

impl Settings<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.0.var(name).ok().map(|v| v.to_string()).filter(|v| !v.is_empty())
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.0.secret(name).ok().map(|s| s.to_string()).filter(|s| !s.is_empty()).or_else(|| self.var(name))
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.var(name).and_then(|v| v.parse().ok())
    }

    fn seconds(&self, name: &str, default: u32) -> u32 {
        self.number(name).map(|n| n.min(u32::MAX as u64) as u32).unwrap_or(default)
    }

    /// A switch that is on when set to `true` or `1`.
    fn flag(&self, name: &str) -> bool {
        self.var(name).is_some_and(|v| v == "true" || v == "1")
    }
}

/// The host (and port) of an origin (`https://host[:port]`).
fn host_of(origin: &str) -> &str {
    origin.split("://").nth(1).unwrap_or(origin)
}

impl App {
    /// The bindings and configuration for one request to `origin`.
    pub fn from_env(env: &Env, origin: &str) -> Result<Self> {
        let bucket = env.bucket("BLOBS").map_err(|e| RegistryError::internal(format!("R2 binding BLOBS: {e}")))?;
        let settings = Settings(env);
        let auth = auth_config(&settings, origin)?;
        let secret = match settings.secret("UPLOAD_SECRET") {
            Some(secret) => secret,
            // Anyone who reads the source knows the development key: it may sign only the
            // upload URLs of an open registry, where anyone may push anyway.
            None if auth.users.is_none() => {
                if !WARNED.swap(true, Ordering::Relaxed) {
                    worker::console_warn!("UPLOAD_SECRET is not set: upload URLs are signed with a development key (allowed only while the registry is open)");
                }
                DEV_SECRET.to_string()
            }
            None => return Err(RegistryError::misconfigured("access control is on (AUTH_HTPASSWD) but the secret UPLOAD_SECRET is not set")),
        };
        let (upstreams, upstream_credentials) = upstreams(&settings)?;
        // Like a bad AUTH_RULES, rules that do not parse fail every request (closed, not open).
        let immutable_tags = match settings.var("IMMUTABLE_TAGS") {
            Some(json) => ImmutableTags::parse(&json).map_err(RegistryError::misconfigured)?,
            None => ImmutableTags::default(),
        };
        let offload = offload(&settings)?;
        let retention = match settings.var("RETENTION") {
            Some(json) => Retention::parse(&json).map_err(RegistryError::misconfigured)?,
            None => Retention::default(),
        };
        let meter = Rc::new(Meter::new());
        let stats = stats_object::bound(env).map(Rc::new);
        let ledger = Rc::new(Ledger::new(stats.is_some()));
        let edge = Edge::new(
            origin,
            env.kv("META").ok(),
            meter.clone(),
            settings.seconds("CACHE_TTL_SECONDS", DEFAULT_CACHE_TTL),
            settings.seconds("TAG_CACHE_SECONDS", 0),
            settings.number("BLOB_CACHE_MAX_BYTES").unwrap_or(DEFAULT_BLOB_CACHE_MAX),
        );
        Ok(App {
            origin: origin.to_string(),
            caller_name: Default::default(),
            events: Events::from_env(env),
            r2: R2::new(bucket, meter.clone(), ledger.clone()),
            edge,
            meter,
            ledger,
            stats,
            config: Config {
                auth,
                lifecycle: LifecycleConfig {
                    upload_max_age_ms: settings.number("UPLOAD_MAX_AGE_SECONDS").unwrap_or(DEFAULT_UPLOAD_MAX_AGE_S) * 1000,
                    grace_ms: grace_ms(&settings),
                    budget: settings.number("LIFECYCLE_BUDGET").unwrap_or(DEFAULT_LIFECYCLE_BUDGET).max(8),
                    dry_run: false,
                },
                upload_url_key: UploadUrlKey::new(secret.as_bytes()),
                max_body: settings.number("MAX_BODY_BYTES").unwrap_or(DEFAULT_MAX_BODY),
                part_size: settings.number("UPLOAD_PART_SIZE"),
                upload_lease_ms: settings.number("UPLOAD_LEASE_SECONDS").map(|s| s.max(3) * 1000).unwrap_or(DEFAULT_LEASE_MS),
                upstreams,
                upstream_credentials,
                upstream_timeout_ms: settings.number("UPSTREAM_TIMEOUT_SECONDS").unwrap_or(DEFAULT_UPSTREAM_TIMEOUT_S).max(1) * 1000,
                immutable_tags,
                retention,
                offload,
            },
        })
    }
}

/// The registry's public origin: `REGISTRY_ORIGIN` when set, else the origin the request
/// names (its Host), with a warning once: the token realm, the tokens' audience (unless
/// `AUTH_SERVICE` names it), event URLs and cache keys are built from it, and a Host is the
/// caller's to choose.
pub fn public_origin(env: &Env, request_origin: &str) -> String {
    let settings = Settings(env);
    if let Some(origin) = settings.var("REGISTRY_ORIGIN") {
        return origin.trim_end_matches('/').to_string();
    }
    if !WARNED_ORIGIN.swap(true, Ordering::Relaxed) {
        worker::console_warn!("REGISTRY_ORIGIN is not set: the token realm and audience follow each request's Host; set it (and AUTH_SERVICE) before exposing the registry");
    }
    request_origin.to_string()
}

/// `GC_GRACE_SECONDS` in ms, raised to the shortest grace the collector's argument allows
/// (`gc::MIN_GRACE_MS`), and said so once when it is.
fn grace_ms(settings: &Settings<'_>) -> u64 {
    let asked = settings.number("GC_GRACE_SECONDS").unwrap_or(DEFAULT_GC_GRACE_S).saturating_mul(1000);
    let min = crate::storage::gc::MIN_GRACE_MS;
    if asked < min && !WARNED_GRACE.swap(true, Ordering::Relaxed) {
        worker::console_warn!("GC_GRACE_SECONDS={} is below the minimum of {} s: the collector uses {} s", asked / 1000, min / 1000, min / 1000);
    }
    asked.max(min)
}

/// Whether the web UI is served (`UI`, on unless `false` or `0`).
pub fn ui_enabled(env: &Env) -> bool {
    !matches!(Settings(env).var("UI").as_deref(), Some("false" | "0"))
}

/// Reads `UPSTREAMS` and the secrets its entries name. Like the access configuration, one
/// that does not parse, or names a secret that is not set, fails every request.
fn upstreams(settings: &Settings<'_>) -> Result<(Upstreams, BTreeMap<String, String>)> {
    let Some(json) = settings.var("UPSTREAMS") else { return Ok(Default::default()) };
    let upstreams = Upstreams::parse(&json).map_err(RegistryError::misconfigured)?;
    let mut credentials = BTreeMap::new();
    for name in upstreams.entries().iter().filter_map(|u| u.credentials.as_ref()) {
        let value = settings
            .secret(name)
            .ok_or_else(|| RegistryError::misconfigured(format!("UPSTREAMS: the secret {name} is not set")))?;
        if !value.contains(':') {
            return Err(RegistryError::misconfigured(format!("UPSTREAMS: the secret {name} is not user:password")));
        }
        credentials.insert(name.clone(), value);
    }
    Ok((upstreams, credentials))
}

/// Reads the access-control configuration: `AUTH_HTPASSWD` (secret: htpasswd lines with bcrypt
/// hashes; absent = open registry), `AUTH_RULES` (JSON rules), `TOKEN_SECRET` (secret signing
/// bearer tokens; required with `AUTH_HTPASSWD`), `AUTH_SERVICE`, `TOKEN_TTL_SECONDS`,
/// `READ_ONLY`. A configuration that does not parse, or lacks its secret, fails every request
/// (closed, not open).
fn auth_config(settings: &Settings<'_>, origin: &str) -> Result<AuthConfig> {
    let users = match settings.secret("AUTH_HTPASSWD") {
        Some(text) => Some(Htpasswd::parse(&text).map_err(|e| {
            // The reason may name a user: in the log only.
            worker::console_error!("AUTH_HTPASSWD: {e}");
            RegistryError::misconfigured("AUTH_HTPASSWD does not parse (the reason is in the log)")
        })?),
        None => {
            if !WARNED_OPEN.swap(true, Ordering::Relaxed) {
                worker::console_warn!("AUTH_HTPASSWD is not set: the registry is OPEN, anyone may pull, push and delete");
            }
            None
        }
    };
    let rules = match settings.var("AUTH_RULES") {
        Some(json) => Rules::parse(&json).map_err(RegistryError::misconfigured)?,
        None => Rules::authenticated_only(),
    };
    // Without a secret of its own, a token could be minted by anyone who knows what it was
    // derived from; an open registry verifies no tokens, so any key does there.
    let token_secret = match (settings.secret("TOKEN_SECRET"), &users) {
        (Some(secret), _) => secret,
        (None, None) => format!("{DEV_SECRET}/token"),
        (None, Some(_)) => return Err(RegistryError::misconfigured("access control is on (AUTH_HTPASSWD) but the secret TOKEN_SECRET is not set")),
    };
    let host = host_of(origin).to_string();
    Ok(AuthConfig {
        users,
        rules,
        signer: TokenSigner::new(token_secret.as_bytes()),
        service: settings.var("AUTH_SERVICE").unwrap_or(host),
        realm: format!("{origin}{TOKEN_PATH}"),
        token_ttl: settings.number("TOKEN_TTL_SECONDS").unwrap_or(DEFAULT_TOKEN_TTL),
        read_only: settings.flag("READ_ONLY"),
        admins: settings
            .var("ADMIN_USERS")
            .map(|v| v.split(',').map(|u| u.trim().to_string()).filter(|u| !u.is_empty()).collect())
            .unwrap_or_default(),
    })
}

/// What a handler knows of the request besides the route.
pub struct Context<'a> {
    pub app: &'a App,
    pub req: Request,
    pub query: Vec<(String, String)>,
    pub caller: Caller,
}

impl Context<'_> {
    /// The first value of the query parameter `key`.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query_all(key).next()
    }

    /// Every value of a query parameter that may repeat (`?tag=a&tag=b`, `?scope=...&scope=...`).
    pub fn query_all<'q: 'k, 'k>(&'q self, key: &'k str) -> impl Iterator<Item = &'q str> + 'k {
        self.query.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
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
        new_id()
    }
}
