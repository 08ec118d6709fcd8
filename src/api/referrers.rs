//! `GET /v2/<name>/referrers/<digest>[?artifactType=]`: always an OCI image index, never 404.

use serde_json::json;
use worker::Response;

use super::{json_reply, next_page_link, pagination};
use crate::app::Context;
use crate::oci::digest::Digest;
use crate::oci::error::Result;
use crate::oci::manifest::OCI_INDEX;
use crate::oci::name::RepoName;
use crate::routes::percent_encode;
use crate::storage::referrers;

/// Most referrers listed on one page.
const MAX_REFERRERS_PAGE: usize = 250;

pub async fn get(cx: &Context<'_>, name: &RepoName, subject: &Digest) -> Result<Response> {
    let filter = cx.query("artifactType").filter(|t| !t.is_empty());
    // Each entry on a page is one storage read: pages stay well inside the platform's 1000
    // subrequests per request (a client follows the Link for the rest).
    let (n, last) = pagination(cx)?;
    let n = n.min(MAX_REFERRERS_PAGE);
    let (descriptors, page) = referrers::list(&cx.app.r2, name, subject, filter, last.as_deref(), n).await?;
    let mut headers = vec![("Content-Type", OCI_INDEX.to_string())];
    if filter.is_some() {
        headers.push(("OCI-Filters-Applied", "artifactType".to_string()));
    }
    let extra = filter.map(|t| format!("&artifactType={}", percent_encode(t))).unwrap_or_default();
    headers.extend(next_page_link(&page, &format!("/v2/{name}/referrers/{subject}"), n, &extra));
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors});
    let mut resp = json_reply(200, &[], &index)?;
    for (k, v) in headers {
        resp.headers_mut().set(k, &v).map_err(crate::oci::error::RegistryError::internal)?;
    }
    Ok(resp)
}
