//! `GET /admin/stats[?n=&last=]`: the storage totals (`storage::stats`), kept incrementally and
//! read in one request to their store: what the registry stores (each blob once), and per
//! repository, in name order, the blobs it links and their bytes, its manifests and their bytes,
//! and its tags. Pages as the catalog does (`n`, `last`, a `Link` to the next page).

use worker::{Response, ResponseBody};

use super::{pagination, reply};
use crate::app::Context;
use crate::oci::error::{Code, RegistryError, Result};

pub async fn get(cx: &Context<'_>) -> Result<Response> {
    let Some(store) = &cx.app.stats else {
        return Err(RegistryError::new(Code::Unsupported, "storage totals need the STATS Durable Object binding"));
    };
    let (n, last) = pagination(cx)?;
    // One more than the page holds tells whether another page follows.
    let mut page = store.page(last.as_deref().unwrap_or(""), n + 1).await?;
    let more = page.repositories.len() > n;
    page.repositories.truncate(n);
    let link = match page.repositories.last() {
        Some(r) if more => vec![("Link", crate::routes::next_link("/admin/stats", n, &r.name, ""))],
        _ => vec![],
    };
    // Serialized from the struct, so each repository's name comes first.
    let mut headers = vec![("Content-Type", "application/json".to_string())];
    headers.extend(link);
    reply(200, &headers, ResponseBody::Body(serde_json::to_vec(&page).map_err(RegistryError::internal)?))
}
