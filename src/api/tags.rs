//! `GET /v2/<name>/tags/list?n=&last=`.

use serde_json::json;
use worker::Response;

use super::{json_reply, pagination};
use crate::app::Context;
use crate::oci::error::Result;
use crate::oci::name::RepoName;
use crate::routes::next_link;
use crate::storage::manifests;

pub async fn get(cx: &Context<'_>, name: &RepoName) -> Result<Response> {
    let (n, last) = pagination(cx)?;
    let page = manifests::tags(&cx.app.r2, name, last.as_deref(), n).await?;
    let mut headers = Vec::new();
    if page.more {
        if let Some(l) = page.items.last() {
            headers.push(("Link", next_link(&format!("/v2/{name}/tags/list"), n, l, "")));
        }
    }
    json_reply(200, &headers, &json!({"name": name.as_str(), "tags": page.items}))
}
