//! The web UI's side of the worker: its static files, passed through from the assets binding
//! (`[assets]` in wrangler.toml, `build/ui`) with the cache policy of `routes`, and the two
//! JSON endpoints of the registry's own it reads besides `/v2/`:
//! - `GET /v2/_ui/info`: whether access control is on (and where tokens come from), whether
//!   the registry is read-only, and the mirrored prefixes;
//! - `GET /v2/<name>/_ui/tags?n=&offset=`: the repository's tags newest push first, summarized
//!   (`storage::summaries`), and what the caller may do there (the delete button).

use serde_json::json;
use worker::{Env, Headers, Request, Response};

use super::{json_reply, query_number};
use crate::app::Context;
use crate::auth::Action;
use crate::oci::error::{Code, RegistryError, Result};
use crate::oci::name::RepoName;
use crate::routes::asset_cache_control;
use crate::storage::{catalog, summaries};

/// Tags per page when the UI does not say, and at most.
const DEFAULT_TAGS: usize = 20;
const MAX_TAGS: usize = 100;

pub fn info(cx: &Context<'_>) -> Result<Response> {
    let auth = &cx.app.config.auth;
    let mirrors: Vec<_> = cx
        .app
        .config
        .upstreams
        .entries()
        .iter()
        .map(|u| json!({"prefix": u.prefix, "upstream": u.url}))
        .collect();
    json_reply(
        200,
        &[("Cache-Control", "no-store".into())],
        &json!({
            "auth": auth.users.is_some(),
            "realm": auth.realm,
            "service": auth.service,
            "readOnly": auth.read_only,
            "mirrors": mirrors,
        }),
    )
}

pub async fn tags(cx: &Context<'_>, name: &RepoName, mirrored: bool) -> Result<Response> {
    let n = query_number(cx, "n", DEFAULT_TAGS)?.min(MAX_TAGS);
    let offset = query_number(cx, "offset", 0)?;
    let page = summaries::tags_page(&cx.app.r2, &cx.app.edge, name, offset, n).await?;
    // No tags, and no such repository (never pushed): 404, as its tags list answers, not an
    // empty page. (A mirrored repository exists upstream whatever is stored here.)
    if page.total == 0 && !mirrored && !catalog::repository_exists(&cx.app.r2, name).await? {
        return Err(RegistryError::new(Code::NameUnknown, format!("repository {name} not known")));
    }
    let auth = &cx.app.config.auth;
    let actions = cx.caller.actions_on(auth, name);
    let writable = !auth.read_only && !mirrored;
    json_reply(
        200,
        &[("Cache-Control", "no-store".into())],
        &json!({
            "name": name.as_str(),
            "offset": offset,
            "total": page.total,
            "cut": page.cut,
            "tags": page.tags,
            "mirrored": mirrored,
            "actions": {
                "pull": actions.contains(Action::Pull),
                "push": writable && actions.contains(Action::Push),
                "delete": writable && actions.contains(Action::Delete),
            },
        }),
    )
}

/// A page or asset of the UI from the assets binding, with its cache policy; `None` when there
/// is no such file or the UI is not deployed (the caller answers the registry's JSON 404).
pub async fn asset(env: &Env, req: Request, path: &str) -> Option<Response> {
    let assets = env.assets("ASSETS").ok()?;
    let resp = match assets.fetch_request(req).await {
        Ok(r) => r,
        Err(e) => {
            worker::console_error!("assets {path}: {e}");
            return None;
        }
    };
    if resp.status_code() == 404 {
        return None;
    }
    if resp.status_code() >= 500 {
        // The binding failed (its files changed under a running emulator, say): the registry's
        // JSON error, and the cause in the log, not an empty 500.
        let status = resp.status_code();
        worker::console_error!("assets {path}: the assets binding answered {status} (were the UI's files replaced or removed under the running worker?)");
        return super::error_reply(&crate::oci::error::RegistryError::internal(format!("assets binding answered {status}"))).ok();
    }
    // The binding's headers are immutable: copy them, then set the policy.
    let headers = Headers::new();
    for (k, v) in resp.headers().entries() {
        let _ = headers.set(&k, &v);
    }
    if resp.status_code() == 200 {
        let _ = headers.set("Cache-Control", asset_cache_control(path));
        let _ = headers.set("X-Content-Type-Options", "nosniff");
        if !path.starts_with(crate::routes::UI_ASSETS_PREFIX) {
            let _ = headers.set("Content-Security-Policy", PAGE_POLICY);
            let _ = headers.set("X-Frame-Options", "DENY");
            let _ = headers.set("Referrer-Policy", "same-origin");
        }
    }
    Some(resp.with_headers(headers))
}

/// The pages load scripts and styles from this origin only, and talk only to it.
const PAGE_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
