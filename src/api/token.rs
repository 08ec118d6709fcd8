//! `GET /token?service=&scope=...`: the Docker token endpoint. Basic credentials (or none, for
//! an anonymous token) are checked against the htpasswd secret; the token grants each requested
//! scope narrowed to what the rules allow the caller.

use serde_json::json;
use worker::Response;

use super::auth::{basic_credentials, check_password, split_authorization};
use super::json_reply;
use crate::app::Context;
use crate::auth::rules::Identity;
use crate::auth::scope::Scope;
use crate::oci::error::{Code, RegistryError, Result};

pub async fn get(cx: &Context<'_>) -> Result<Response> {
    let auth = &cx.app.config.auth;
    let now_ms = cx.now_ms();
    let user = match cx.header("authorization") {
        None => None,
        Some(h) => {
            let (scheme, value) = split_authorization(&h);
            let creds = if scheme.eq_ignore_ascii_case("basic") { basic_credentials(value) } else { None };
            match creds {
                Some((u, p)) if check_password(auth, &u, &p, now_ms) => Some(u),
                _ => {
                    let challenge = format!("Basic realm=\"{}\"", auth.service);
                    return Err(RegistryError::unauthorized("invalid username or password", challenge));
                }
            }
        }
    };
    let identity = user.clone().map(Identity::User).unwrap_or(Identity::Anonymous);
    let open = auth.users.is_none();
    let scopes: Vec<Scope> = cx
        .query
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').filter_map(Scope::parse).collect::<Vec<_>>())
        .map(|s| {
            let allowed = if open { s.actions } else { auth.rules.allowed(&identity, s.name.as_str()) };
            Scope { actions: s.actions.intersect(allowed), ..s }
        })
        .collect();
    if cx.query("service").is_some_and(|s| s != auth.service) {
        return Err(RegistryError::new(Code::Unsupported, format!("this registry's service is {:?}", auth.service)));
    }
    let now = now_ms / 1000;
    let token = auth.signer.mint(user.as_deref(), &auth.service, &scopes, now, auth.token_ttl);
    let issued_at = String::from(js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(now_ms as f64)).to_iso_string());
    json_reply(
        200,
        &[("Cache-Control", "no-store".to_string())],
        &json!({"token": token, "access_token": token, "expires_in": auth.token_ttl, "issued_at": issued_at}),
    )
}
