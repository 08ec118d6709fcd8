//! `GET /token?service=&scope=...[&offline_token=true]`: the Docker token endpoint. Basic
//! credentials (or none, for an anonymous token, or a refresh token as Bearer) are checked
//! against the htpasswd secret; the token grants each requested scope narrowed to what the
//! rules allow the caller.

use serde_json::json;
use worker::Response;

use super::json_reply;
use crate::app::Context;
use crate::auth::access;
use crate::oci::error::{Code, RegistryError, Result};

pub async fn get(cx: &Context<'_>) -> Result<Response> {
    let auth = &cx.app.config.auth;
    let now_ms = cx.now_ms();
    let user = access::token_user(auth, cx.header("authorization").as_deref(), now_ms).map_err(|mut refused| {
        // A script's fetch (the web UI's sign-in) gets no Basic challenge: a browser would
        // answer it with its own password dialog instead of letting the page say what failed.
        if cx.header("sec-fetch-mode").is_some_and(|m| m != "navigate") {
            refused.challenge = None;
        }
        refused
    })?;
    let requested: Vec<&str> = cx.query_all("scope").collect();
    let scopes = access::grant(auth, user.as_deref(), &requested);
    let admin = access::grant_admin(auth, user.as_deref(), &requested);
    if cx.query("service").is_some_and(|s| s != auth.service) {
        return Err(RegistryError::new(Code::Unsupported, format!("this registry's service is {:?}", auth.service)));
    }
    let now = now_ms / 1000;
    let token = auth.signer.mint(user.as_deref(), &auth.service, &scopes, admin, now, auth.token_ttl);
    let issued_at = String::from(js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(now_ms as f64)).to_iso_string());
    let mut body = json!({"token": token, "access_token": token, "expires_in": auth.token_ttl, "issued_at": issued_at});
    // `offline_token=true` (the token spec's parameter) with a password: a refresh token too,
    // which later buys tokens as `Authorization: Bearer <refresh_token>` (the web UI keeps it
    // instead of the password). A refresh token does not buy another one: sessions end.
    let with_password = cx.header("authorization").is_some_and(|h| access::split_authorization(&h).0.eq_ignore_ascii_case("basic"));
    if cx.query("offline_token") == Some("true") && with_password {
        if let Some(refresh) = user.as_deref().and_then(|u| access::refresh_token(auth, u, now_ms)) {
            body["refresh_token"] = json!(refresh);
        }
    }
    json_reply(200, &[("Cache-Control", "no-store".to_string())], &body)
}
