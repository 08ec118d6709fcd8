//! `GET /v2/<name>/tags/list?n=&last=`.

use serde_json::json;
use worker::Response;

use super::{json_reply, next_page_link, pagination};
use crate::app::Context;
use crate::oci::error::Result;
use crate::oci::name::RepoName;
use crate::storage::tags;

pub async fn get(cx: &Context<'_>, name: &RepoName) -> Result<Response> {
    let (n, last) = pagination(cx)?;
    let page = tags::list(&cx.app.r2, name, last.as_deref(), n).await?;
    let headers: Vec<_> = next_page_link(&page, &format!("/v2/{name}/tags/list"), n, "").into_iter().collect();
    json_reply(200, &headers, &json!({"name": name.as_str(), "tags": page.items}))
}
