//! HTTP handlers, one module per resource: request in, store calls, response out. No storage
//! key is spelled here; `routes` parsed the URL and `storage` owns the layout.

pub mod admin;
mod base;
mod blobs;
mod catalog;
pub mod drain;
pub mod events;
mod manifests;
mod mirror;
mod referrers;
mod stats;
mod tags;
mod token;
pub mod ui;
mod uploads;

use worker::{Headers, Method, Request, Response, ResponseBody};

use crate::app::{App, Context};
use crate::auth::access;
use crate::oci::error::{Code, RegistryError, Result};
use crate::routes::Route;

pub const API_VERSION: (&str, &str) = ("Docker-Distribution-API-Version", "registry/2.0");

/// Authenticates the caller, checks what the route needs, and dispatches to its handler.
pub async fn handle(route: Route, app: &App, req: Request, query: Vec<(String, String)>) -> Result<Response> {
    let method = req.method();
    let auth = &app.config.auth;
    let authorization = req.headers().get("authorization").ok().flatten();
    let need = crate::auth::need(&route, method.as_ref());
    let caller = access::authenticate(auth, authorization.as_deref(), js_sys::Date::now() as u64, &need)?;
    if let crate::auth::rules::Identity::User(user) = caller.identity() {
        *app.caller_name.borrow_mut() = Some(user);
    }
    access::authorize(auth, &caller, &need)?;
    let cx = Context { app, req, query, caller };
    if let Some(mirrored) = route.name().and_then(|name| app.config.upstreams.resolve(name)) {
        return match (route, method) {
            (Route::Manifest { name, reference }, Method::Get) => mirror::manifest(&cx, &name, &reference, true, &mirrored).await,
            (Route::Manifest { name, reference }, Method::Head) => mirror::manifest(&cx, &name, &reference, false, &mirrored).await,
            (Route::Blob { name, digest }, Method::Get) => mirror::blob(&cx, &name, &digest, true, &mirrored).await,
            (Route::Blob { name, digest }, Method::Head) => mirror::blob(&cx, &name, &digest, false, &mirrored).await,
            (Route::Tags { name }, Method::Get) => mirror::tags(&cx, &name, &mirrored).await,
            (Route::Referrers { name, digest }, Method::Get) => referrers::get(&cx, &name, &digest).await,
            (Route::UiTags { name }, Method::Get) => ui::tags(&cx, &name, true).await,
            (Route::InvalidManifestRef { invalid, .. }, Method::Get | Method::Head) => Err(no_such_manifest(&invalid)),
            (route, _) => Err(crate::mirror::refuse_write(route.name().expect("a named route"), &mirrored.upstream.url)),
        };
    }
    match (route, method) {
        (Route::Token, Method::Get) => token::get(&cx).await,
        (Route::Lifecycle, Method::Post) => admin::post(&cx).await,
        (Route::Stats, Method::Get) => stats::get(&cx).await,
        (Route::Base, Method::Get | Method::Head) => base::get(),
        (Route::Catalog, Method::Get) => catalog::get(&cx).await,
        (Route::UiInfo, Method::Get) => ui::info(&cx),
        (Route::UiTags { name }, Method::Get) => ui::tags(&cx, &name, false).await,
        (Route::Tags { name }, Method::Get) => tags::get(&cx, &name).await,
        (Route::Manifest { name, reference }, Method::Get) => manifests::get(&cx, &name, &reference, true).await,
        (Route::Manifest { name, reference }, Method::Head) => manifests::get(&cx, &name, &reference, false).await,
        (Route::Manifest { name, reference }, Method::Put) => manifests::put(cx, &name, &reference).await,
        (Route::Manifest { name, reference }, Method::Delete) => manifests::delete(&cx, &name, &reference).await,
        (Route::InvalidManifestRef { invalid, .. }, Method::Put) => Err(invalid),
        (Route::InvalidManifestRef { invalid, .. }, Method::Get | Method::Head | Method::Delete) => Err(no_such_manifest(&invalid)),
        (Route::Blob { name, digest }, Method::Get) => blobs::get(&cx, &name, &digest, true).await,
        (Route::Blob { name, digest }, Method::Head) => blobs::get(&cx, &name, &digest, false).await,
        (Route::Blob { name, digest }, Method::Delete) => blobs::delete(&cx, &name, &digest).await,
        (Route::UploadStart { name }, Method::Post) => uploads::post(cx, &name).await,
        (Route::Upload { name, id }, Method::Get) => uploads::status(&cx, &name, &id).await,
        (Route::Upload { name, id }, Method::Patch) => uploads::patch(cx, &name, &id).await,
        (Route::Upload { name, id }, Method::Put) => uploads::put(cx, &name, &id).await,
        (Route::Upload { name, id }, Method::Delete) => uploads::delete(&cx, &name, &id).await,
        (Route::Referrers { name, digest }, Method::Get) => referrers::get(&cx, &name, &digest).await,
        (_, m) => Err(RegistryError::new(Code::Unsupported, format!("method {m:?} not allowed here"))),
    }
}

/// A reference that is neither a tag nor a digest names no manifest: MANIFEST_UNKNOWN on reads.
fn no_such_manifest(invalid: &RegistryError) -> RegistryError {
    RegistryError::new(Code::ManifestUnknown, format!("manifest unknown: {}", invalid.detail))
}

/// Builds a response with the API version header and the given headers.
pub fn reply(status: u16, headers: &[(&str, String)], body: ResponseBody) -> Result<Response> {
    let h = Headers::new();
    let set = |k: &str, v: &str| h.set(k, v).map_err(|e| RegistryError::internal(format!("header {k}: {e}")));
    set(API_VERSION.0, API_VERSION.1)?;
    for (k, v) in headers {
        set(k, v)?;
    }
    let resp = Response::from_body(body).map_err(|e| RegistryError::internal(e))?;
    Ok(resp.with_status(status).with_headers(h))
}

pub fn json_reply(status: u16, headers: &[(&str, String)], value: &serde_json::Value) -> Result<Response> {
    let mut hs = vec![("Content-Type", "application/json".to_string())];
    hs.extend(headers.iter().cloned());
    reply(status, &hs, ResponseBody::Body(value.to_string().into_bytes()))
}

/// The spec's error response.
pub fn error_reply(e: &RegistryError) -> Result<Response> {
    let mut headers = vec![("Content-Type", "application/json".to_string())];
    if let Some(offset) = e.upload_offset {
        headers.push(("Range", crate::http::upload_range(offset)));
    }
    if let Some(challenge) = &e.challenge {
        headers.push(("WWW-Authenticate", challenge.clone()));
    }
    if let Some(seconds) = e.retry_after {
        headers.push(("Retry-After", seconds.to_string()));
    }
    reply(e.status(), &headers, ResponseBody::Body(e.body().into_bytes()))
}

/// The `Link` header to the page after `page`, if there is one.
pub fn next_page_link(page: &crate::storage::listing::Page, path: &str, n: usize, extra_query: &str) -> Option<(&'static str, String)> {
    let last = page.items.last().filter(|_| page.more)?;
    Some(("Link", crate::routes::next_link(path, n, last, extra_query)))
}

/// `n` and `last` of a paginated list; `n` absent means one full page.
pub fn pagination(cx: &Context<'_>) -> Result<(usize, Option<String>)> {
    let n = query_number(cx, "n", crate::storage::MAX_PAGE)?.min(crate::storage::MAX_PAGE);
    Ok((n, cx.query("last").filter(|l| !l.is_empty()).map(str::to_string)))
}

/// The number in query parameter `key` (`default` when absent or empty), or
/// PAGINATION_NUMBER_INVALID.
pub fn query_number(cx: &Context<'_>, key: &str, default: usize) -> Result<usize> {
    match cx.query(key) {
        None | Some("") => Ok(default),
        Some(v) => v.parse().map_err(|_| RegistryError::new(Code::PaginationNumberInvalid, format!("invalid {key}={v:?}"))),
    }
}
