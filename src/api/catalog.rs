//! `GET /v2/_catalog?n=&last=`: one prefix listing of catalog entries per page.

use serde_json::json;
use worker::Response;

use super::{json_reply, pagination};
use crate::app::Context;
use crate::oci::error::Result;
use crate::routes::next_link;
use crate::storage::manifests;

pub async fn get(cx: &Context<'_>) -> Result<Response> {
    let (n, last) = pagination(cx)?;
    let page = manifests::catalog(&cx.app.r2, last.as_deref(), n).await?;
    let mut headers = Vec::new();
    if page.more {
        if let Some(l) = page.items.last() {
            headers.push(("Link", next_link("/v2/_catalog", n, l, "")));
        }
    }
    json_reply(200, &headers, &json!({"repositories": page.items}))
}
