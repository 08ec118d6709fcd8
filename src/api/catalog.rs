//! `GET /v2/_catalog?n=&last=`: one prefix listing of catalog entries per page, showing the
//! repositories the caller may pull.

use serde_json::json;
use worker::Response;

use super::{json_reply, next_page_link, pagination};
use crate::app::Context;
use crate::oci::error::Result;
use crate::storage::catalog;

pub async fn get(cx: &Context<'_>) -> Result<Response> {
    let (n, last) = pagination(cx)?;
    let page = catalog::list(&cx.app.r2, last.as_deref(), n).await?;
    let headers: Vec<_> = next_page_link(&page, "/v2/_catalog", n, "").into_iter().collect();
    // Only what the caller may pull; the Link still follows the unfiltered listing.
    let visible: Vec<&String> = page.items.iter().filter(|name| cx.caller.sees(&cx.app.config.auth, name)).collect();
    json_reply(200, &headers, &json!({"repositories": visible}))
}
