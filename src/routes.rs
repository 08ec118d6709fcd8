//! URL → typed route, and the registry URLs handlers send back (Location, Link).
//! Besides `/v2/...`, the token endpoint `/token`, `/admin/lifecycle` and `/admin/stats` are routes; every other
//! path belongs to the web UI's static assets ([`is_api_path`], [`asset_cache_control`]).
//!
//! Repository names may contain '/', so paths are parsed from the end: the suffixes
//! `/blobs/uploads/[<id>]`, `/blobs/<digest>`, `/manifests/<ref>`, `/tags/list` and
//! `/referrers/<digest>` are recognised and everything before them is the name.

use crate::oci::digest::Digest;
use crate::oci::error::{Code, RegistryError, Result};
use crate::oci::name::{Reference, RepoName};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/token`: the Docker token endpoint (outside `/v2`).
    Token,
    /// `/admin/lifecycle`: run the lifecycle work now (admins only).
    Lifecycle,
    /// `/admin/stats`: storage totals per repository (admins only).
    Stats,
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags { name: RepoName },
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: RepoName, reference: Reference },
    /// `/v2/<name>/manifests/<reference>` where the reference is neither a tag nor a digest:
    /// no manifest can be found there (404 on reads), and none may be put there (`invalid`).
    InvalidManifestRef { name: RepoName, invalid: RegistryError },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: RepoName, digest: Digest },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart { name: RepoName },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { name: RepoName, id: String },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: RepoName, digest: Digest },
    /// `/v2/_ui/info`: what the web UI needs to know of the registry (the registry's own).
    UiInfo,
    /// `/v2/<name>/_ui/tags`: a repository's tags newest push first, summarized (the registry's
    /// own; `_ui` cannot be a name component).
    UiTags { name: RepoName },
}

impl Route {
    /// The repository the route addresses, if any.
    pub fn name(&self) -> Option<&RepoName> {
        match self {
            Route::Token | Route::Lifecycle | Route::Stats | Route::Base | Route::Catalog | Route::UiInfo => None,
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::InvalidManifestRef { name, .. }
            | Route::Blob { name, .. }
            | Route::UploadStart { name }
            | Route::Upload { name, .. }
            | Route::Referrers { name, .. }
            | Route::UiTags { name } => Some(name),
        }
    }
}

impl Route {
    /// What the route addresses, for the request log and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Token => "token",
            Route::Lifecycle => "lifecycle",
            Route::Stats => "stats",
            Route::Base => "base",
            Route::Catalog => "catalog",
            Route::Tags { .. } => "tags",
            Route::Manifest { .. } | Route::InvalidManifestRef { .. } => "manifest",
            Route::Blob { .. } => "blob",
            Route::UploadStart { .. } | Route::Upload { .. } => "upload",
            Route::Referrers { .. } => "referrers",
            Route::UiInfo | Route::UiTags { .. } => "ui-summary",
        }
    }
}

/// A path that is no registry route at all: 404 with the spec body.
fn not_found(path: &str) -> RegistryError {
    RegistryError::new(Code::NameUnknown, format!("no route for {path}"))
}

impl Route {
    /// Parses a request path (no query string).
    pub fn parse(path: &str) -> Result<Route> {
        if path == TOKEN_PATH {
            return Ok(Route::Token);
        }
        if path == "/admin/lifecycle" {
            return Ok(Route::Lifecycle);
        }
        if path == "/admin/stats" {
            return Ok(Route::Stats);
        }
        let rest = match path.strip_prefix("/v2") {
            Some("") | Some("/") => return Ok(Route::Base),
            Some(r) => r.strip_prefix('/').ok_or_else(|| not_found(path))?,
            None => return Err(not_found(path)),
        };
        if rest == "_catalog" {
            return Ok(Route::Catalog);
        }
        if rest == "_ui/info" {
            return Ok(Route::UiInfo);
        }
        if let Some(name) = rest.strip_suffix("/_ui/tags") {
            return Ok(Route::UiTags { name: RepoName::parse(name)? });
        }
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return Ok(Route::Tags { name: RepoName::parse(name)? });
        }
        if let Some(name) = rest.strip_suffix("/blobs/uploads").or_else(|| rest.strip_suffix("/blobs/uploads/")) {
            return Ok(Route::UploadStart { name: RepoName::parse(name)? });
        }
        if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
            if valid_upload_id(id) {
                return Ok(Route::Upload { name: RepoName::parse(name)?, id: id.to_string() });
            }
            return Err(RegistryError::new(Code::BlobUploadUnknown, format!("invalid upload id {id:?}")));
        }
        let (head, last) = rest.rsplit_once('/').ok_or_else(|| not_found(path))?;
        let (name, kind) = head.rsplit_once('/').ok_or_else(|| not_found(path))?;
        match kind {
            "blobs" => {
                let name = RepoName::parse(name)?;
                Ok(Route::Blob { name, digest: Digest::parse(last)? })
            }
            "manifests" => {
                let name = RepoName::parse(name)?;
                Ok(match Reference::parse(last) {
                    Ok(reference) => Route::Manifest { name, reference },
                    Err(invalid) => Route::InvalidManifestRef { name, invalid },
                })
            }
            "referrers" => {
                let name = RepoName::parse(name)?;
                Ok(Route::Referrers { name, digest: Digest::parse(last)? })
            }
            _ => Err(not_found(path)),
        }
    }
}

/// Whether `path` is the registry's API (routes above), not a page or asset of the web UI.
pub fn is_api_path(path: &str) -> bool {
    path == TOKEN_PATH || path == "/v2" || path.starts_with("/v2/") || path.starts_with("/admin/")
}

/// Where the web UI's build puts its content-hashed files: they never change under a name.
pub const UI_ASSETS_PREFIX: &str = "/assets/";

/// `Cache-Control` of a web UI file: content-hashed assets are immutable (cached for a year
/// at the edge and in the browser); pages are revalidated each time, so a deploy shows at once.
pub fn asset_cache_control(path: &str) -> &'static str {
    if path.starts_with(UI_ASSETS_PREFIX) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

/// Path of the token endpoint (the `realm` of the Bearer challenge).
pub const TOKEN_PATH: &str = "/token";

/// Upload ids are the registry's own UUIDs; anything else cannot name an upload.
pub fn valid_upload_id(id: &str) -> bool {
    id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// `Location` of an upload session; `token` is the signed state (see `storage::uploads`).
pub fn upload_url(name: &RepoName, id: &str, token: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}?_state={token}")
}

pub fn blob_url(name: &RepoName, digest: &Digest) -> String {
    format!("/v2/{name}/blobs/{digest}")
}

pub fn manifest_url(name: &RepoName, reference: &str) -> String {
    format!("/v2/{name}/manifests/{reference}")
}

/// `Link` header of a paginated list: the next page starts after `last`.
pub fn next_link(path: &str, n: usize, last: &str, extra_query: &str) -> String {
    format!("<{path}?n={n}&last={}{extra_query}>; rel=\"next\"", percent_encode(last))
}

/// Percent-encodes a query value (`application/x-www-form-urlencoded`, as clients decode it).
pub fn percent_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Parses a query string into decoded `(key, value)` pairs ('+' is a space, as in forms).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn name(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    #[test]
    fn the_repository_a_route_addresses() {
        for (path, want) in [
            ("/v2/a/b/blobs/uploads/", Some("a/b")),
            (&format!("/v2/a/blobs/{D}") as &str, Some("a")),
            ("/v2/x/y/z/manifests/v1", Some("x/y/z")),
            ("/v2/n/tags/list", Some("n")),
            (&format!("/v2/r/referrers/{D}"), Some("r")),
            ("/v2/", None),
            ("/v2/_catalog", None),
            ("/token", None),
            ("/v2/_ui/info", None),
            ("/v2/a/b/_ui/tags", Some("a/b")),
        ] {
            assert_eq!(Route::parse(path).unwrap().name().map(RepoName::as_str), want, "{path}");
        }
    }

    #[test]
    fn route_kinds_for_logs_and_metrics() {
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        for (path, kind) in [
            ("/token", "token"),
            ("/admin/lifecycle", "lifecycle"),
            ("/admin/stats", "stats"),
            ("/v2/", "base"),
            ("/v2/_catalog", "catalog"),
            ("/v2/a/tags/list", "tags"),
            ("/v2/a/manifests/v1", "manifest"),
            ("/v2/a/manifests/-bad", "manifest"),
            (&format!("/v2/a/blobs/{D}") as &str, "blob"),
            ("/v2/a/blobs/uploads/", "upload"),
            (&format!("/v2/a/blobs/uploads/{id}"), "upload"),
            (&format!("/v2/a/referrers/{D}"), "referrers"),
            ("/v2/_ui/info", "ui-summary"),
            ("/v2/a/_ui/tags", "ui-summary"),
        ] {
            assert_eq!(Route::parse(path).unwrap().kind(), kind, "{path}");
        }
    }

    #[test]
    fn the_web_ui_owns_every_path_outside_the_api() {
        for api in ["/v2", "/v2/", "/v2/_catalog", "/token", "/admin/lifecycle"] {
            assert!(is_api_path(api), "{api}");
        }
        for ui in ["/", "/index.html", "/assets/app.0123abcd.js", "/v2x", "/tokens", "/admin"] {
            assert!(!is_api_path(ui), "{ui}");
        }
        assert_eq!(asset_cache_control("/assets/app.0123abcd.js"), "public, max-age=31536000, immutable");
        assert_eq!(asset_cache_control("/"), "no-cache");
        assert_eq!(asset_cache_control("/index.html"), "no-cache");
        // `_ui` is no name component: the summary routes cannot shadow a repository.
        assert!(Route::parse("/v2/_ui/tags").is_err());
        assert!(matches!(Route::parse("/v2/_ui/x/_ui/tags"), Err(_)));
        assert_eq!(Route::parse("/v2/_ui/info").unwrap(), Route::UiInfo);
    }

    #[test]
    fn urls_built_back() {
        let d = Digest::parse(D).unwrap();
        assert_eq!(upload_url(&name("a/b"), "id-1", "tok"), "/v2/a/b/blobs/uploads/id-1?_state=tok");
        assert_eq!(blob_url(&name("a/b"), &d), format!("/v2/a/b/blobs/{D}"));
        assert_eq!(manifest_url(&name("a"), "v1"), "/v2/a/manifests/v1");
        assert!(valid_upload_id("0b5f7f43-7c8e-4f43-9a57-3f1b0e2a4c11"));
        assert!(!valid_upload_id("0b5f7f43-7c8e-4f43-9a57-3f1b0e2a4c1"));
        assert!(!valid_upload_id("gggggggg-gggg-gggg-gggg-gggggggggggg"));
    }

    #[test]
    fn parses_every_route() {
        assert_eq!(Route::parse("/v2/").unwrap(), Route::Base);
        assert_eq!(Route::parse("/token").unwrap(), Route::Token);
        assert_eq!(Route::parse("/admin/lifecycle").unwrap(), Route::Lifecycle);
        assert_eq!(Route::parse("/admin/stats").unwrap(), Route::Stats);
        assert_eq!(Route::parse("/v2").unwrap(), Route::Base);
        assert_eq!(Route::parse("/v2/_catalog").unwrap(), Route::Catalog);
        assert_eq!(Route::parse("/v2/a/b/tags/list").unwrap(), Route::Tags { name: name("a/b") });
        assert_eq!(
            Route::parse("/v2/a/blobs/uploads/").unwrap(),
            Route::UploadStart { name: name("a") }
        );
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(
            Route::parse(&format!("/v2/x/y/blobs/uploads/{id}")).unwrap(),
            Route::Upload { name: name("x/y"), id: id.into() }
        );
        assert_eq!(
            Route::parse(&format!("/v2/x/blobs/{D}")).unwrap(),
            Route::Blob { name: name("x"), digest: Digest::parse(D).unwrap() }
        );
        assert!(matches!(Route::parse("/v2/x/manifests/latest").unwrap(), Route::Manifest { .. }));
        for bad in [".INVALID_MANIFEST_NAME", "sha256:zz", "a%20b"] {
            match Route::parse(&format!("/v2/x/manifests/{bad}")).unwrap() {
                Route::InvalidManifestRef { name: n, invalid } => {
                    assert_eq!(n, name("x"));
                    assert!(matches!(invalid.code, Code::TagInvalid | Code::DigestInvalid), "{bad}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(Route::parse(&format!("/v2/x/referrers/{D}")).unwrap(), Route::Referrers { .. }));
    }

    #[test]
    fn names_that_look_like_routes() {
        // A repository may itself be called "blobs" or "manifests" at any depth.
        assert_eq!(
            Route::parse(&format!("/v2/blobs/manifests/blobs/{D}")).unwrap(),
            Route::Blob { name: name("blobs/manifests"), digest: Digest::parse(D).unwrap() }
        );
        assert_eq!(Route::parse("/v2/tags/tags/list").unwrap(), Route::Tags { name: name("tags") });
    }

    #[test]
    fn errors() {
        assert_eq!(Route::parse("/v2/UPPER/tags/list").unwrap_err().code, Code::NameInvalid);
        assert_eq!(Route::parse("/v2/a/blobs/sha256:xyz").unwrap_err().code, Code::DigestInvalid);
        assert_eq!(Route::parse("/v2/a/blobs/uploads/../../x").unwrap_err().code, Code::BlobUploadUnknown);
        assert_eq!(Route::parse("/v3/").unwrap_err().code, Code::NameUnknown);
        assert_eq!(Route::parse("/v2/a/unknown/x").unwrap_err().code, Code::NameUnknown);
        assert_eq!(Route::parse("/v2x").unwrap_err().code, Code::NameUnknown);
    }

    #[test]
    fn query_round_trip() {
        let pairs = query_pairs("n=2&last=a%2Fb&from=x+y&mount=");
        assert_eq!(pairs[1], ("last".into(), "a/b".into()));
        assert_eq!(pairs[2], ("from".into(), "x y".into()));
        assert_eq!(pairs[3], ("mount".into(), "".into()));
        let round_trip = query_pairs(&format!("k={}", percent_encode("a/b:c d+%")));
        assert_eq!(round_trip, vec![("k".to_string(), "a/b:c d+%".to_string())]);
        assert_eq!(query_pairs("x=100%&y=%41"), vec![("x".into(), "100%".into()), ("y".into(), "A".into())]);
        assert_eq!(
            next_link("/v2/a/tags/list", 2, "v1", ""),
            "</v2/a/tags/list?n=2&last=v1>; rel=\"next\""
        );
    }
}
