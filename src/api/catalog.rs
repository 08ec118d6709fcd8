//! `GET /v2/_catalog?n=&last=`: the repositories the caller may pull, a page at a time
//! (`catalog::list_visible`: one listing when the caller sees everything, a bounded few else).

use serde_json::json;
use worker::Response;

use super::{json_reply, next_page_link, pagination};
use crate::app::Context;
use crate::oci::error::Result;
use crate::storage::catalog;

pub async fn get(cx: &Context<'_>) -> Result<Response> {
    let (n, last) = pagination(cx)?;
    // Only what the caller may pull, in the body, the page's size and the Link alike.
    let (auth, caller) = (&cx.app.config.auth, &cx.caller);
    let page = catalog::list_visible(&cx.app.r2, last.as_deref(), n, |name| caller.sees(auth, name)).await?;
    let headers: Vec<_> = next_page_link(&page, "/v2/_catalog", n, "").into_iter().collect();
    json_reply(200, &headers, &json!({"repositories": page.items}))
}
