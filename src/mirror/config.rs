//! `UPSTREAMS`: which local repository names mirror which upstream registry, and how a local
//! name maps onto the upstream's.
//!
//! ```json
//! [{"prefix": "dockerhub/", "url": "https://registry-1.docker.io", "library": true,
//!   "credentials": "DOCKERHUB_CREDENTIALS", "tag_ttl_seconds": 300, "evict_after_days": 30},
//!  {"prefix": "ghcr/", "url": "https://ghcr.io"},
//!  {"prefix": "", "url": "https://registry-1.docker.io", "library": true}]
//! ```
//!
//! The longest matching prefix wins; the empty prefix matches every name no other entry takes
//! (a `registry-mirrors` endpoint for dockerd, which sends `library/alpine` unprefixed). With
//! `library`, a one-component upstream name is an official image: `alpine` → `library/alpine`.
//! `credentials` names the secret holding the upstream's `user:password`. `redirect_origins`
//! lists origins the upstream may send us to over plain http or on a private address.

use serde::Deserialize;

use crate::oci::name::RepoName;

/// How long a tag fetched from an upstream is served without asking again, by default.
pub const DEFAULT_TAG_TTL_S: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub prefix: String,
    /// The upstream's origin (`https://host[:port]`), without a path.
    pub url: String,
    #[serde(default)]
    pub library: bool,
    /// Name of the secret holding `user:password`; none: anonymous.
    #[serde(default)]
    pub credentials: Option<String>,
    #[serde(default = "default_tag_ttl")]
    pub tag_ttl_seconds: u64,
    /// Mirrored content not pulled for this many days may be evicted (none: kept).
    #[serde(default)]
    pub evict_after_days: Option<u64>,
    /// Other origins (`http(s)://host[:port]`) the upstream may redirect to, or name as its
    /// token realm, even over plain http or on a private address (an internal CDN); any other
    /// origin must be https outside the registry's own network (`mirror::client::may_visit`).
    #[serde(default)]
    pub redirect_origins: Vec<String>,
}

fn default_tag_ttl() -> u64 {
    DEFAULT_TAG_TTL_S
}

/// Every configured upstream; empty when `UPSTREAMS` is unset (no name is mirrored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upstreams {
    entries: Vec<Upstream>,
}

/// A local repository name resolved to its upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirrored<'a> {
    pub upstream: &'a Upstream,
    /// The repository's name on the upstream.
    pub remote: String,
}

impl Upstreams {
    /// Parses `UPSTREAMS`. Refuses what would make names ambiguous or requests go astray: a
    /// prefix used twice, a prefix that is not a name prefix (`x/`), a URL that is not a bare
    /// http(s) origin.
    pub fn parse(json: &str) -> Result<Upstreams, String> {
        let entries: Vec<Upstream> = serde_json::from_str(json).map_err(|e| format!("UPSTREAMS: {e}"))?;
        let mut seen = std::collections::BTreeSet::new();
        for u in &entries {
            if !seen.insert(u.prefix.as_str()) {
                return Err(format!("UPSTREAMS: prefix {:?} appears twice", u.prefix));
            }
            if !u.prefix.is_empty() {
                let Some(stem) = u.prefix.strip_suffix('/') else {
                    return Err(format!("UPSTREAMS: prefix {:?} must end with '/'", u.prefix));
                };
                RepoName::parse(stem).map_err(|_| format!("UPSTREAMS: prefix {:?} is not a repository name prefix", u.prefix))?;
            }
            let url = url::Url::parse(&u.url).map_err(|e| format!("UPSTREAMS: url {:?}: {e}", u.url))?;
            let bare = matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some()
                && url.path() == "/"
                && url.query().is_none()
                && url.username().is_empty();
            if !bare {
                return Err(format!("UPSTREAMS: url {:?} must be an http(s) origin without path or credentials", u.url));
            }
            for o in &u.redirect_origins {
                let origin = url::Url::parse(o).ok().filter(|x| matches!(x.scheme(), "http" | "https") && x.host_str().is_some() && x.path() == "/" && x.query().is_none() && x.username().is_empty());
                if origin.is_none() {
                    return Err(format!("UPSTREAMS: redirect_origins entry {o:?} must be an http(s) origin without path or credentials"));
                }
            }
        }
        Ok(Upstreams { entries: entries.into_iter().map(|u| Upstream { url: u.url.trim_end_matches('/').to_string(), ..u }).collect() })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Upstream] {
        &self.entries
    }

    /// The upstream mirrored under `name`, if any, and the name there.
    pub fn resolve(&self, name: &RepoName) -> Option<Mirrored<'_>> {
        let name = name.as_str();
        let upstream = self
            .entries
            .iter()
            .filter(|u| name.starts_with(&u.prefix) && name.len() > u.prefix.len())
            .max_by_key(|u| u.prefix.len())?;
        let rest = &name[upstream.prefix.len()..];
        let remote = if upstream.library && !rest.contains('/') { format!("library/{rest}") } else { rest.to_string() };
        Some(Mirrored { upstream, remote })
    }
}

impl Mirrored<'_> {
    /// The upstream URL of `/v2/<remote>/<what>` (`what`: `manifests/<ref>`, `blobs/<digest>`).
    pub fn url(&self, what: &str) -> String {
        format!("{}/v2/{}/{}", self.upstream.url, self.remote, what)
    }

    /// The token scope a pull from the upstream repository needs.
    pub fn pull_scope(&self) -> String {
        format!("repository:{}:pull", self.remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    const CONFIG: &str = r#"[
        {"prefix": "dockerhub/", "url": "https://registry-1.docker.io/", "library": true, "credentials": "HUB", "tag_ttl_seconds": 60},
        {"prefix": "dockerhub/bitnami/", "url": "https://bitnami.example"},
        {"prefix": "ghcr/", "url": "https://ghcr.io", "evict_after_days": 30}
    ]"#;

    #[test]
    fn longest_prefix_and_library_names() {
        let u = Upstreams::parse(CONFIG).unwrap();
        let m = u.resolve(&name("dockerhub/alpine")).unwrap();
        assert_eq!(m.remote, "library/alpine");
        assert_eq!(m.upstream.url, "https://registry-1.docker.io");
        assert_eq!(m.upstream.credentials.as_deref(), Some("HUB"));
        assert_eq!(m.upstream.tag_ttl_seconds, 60);
        assert_eq!(m.url("manifests/latest"), "https://registry-1.docker.io/v2/library/alpine/manifests/latest");
        assert_eq!(m.pull_scope(), "repository:library/alpine:pull");
        assert_eq!(u.resolve(&name("dockerhub/grafana/grafana")).unwrap().remote, "grafana/grafana");
        let b = u.resolve(&name("dockerhub/bitnami/redis")).unwrap();
        assert_eq!((b.upstream.url.as_str(), b.remote.as_str()), ("https://bitnami.example", "redis"));
        let g = u.resolve(&name("ghcr/owner/app")).unwrap();
        assert_eq!((g.remote.as_str(), g.upstream.tag_ttl_seconds, g.upstream.evict_after_days), ("owner/app", DEFAULT_TAG_TTL_S, Some(30)));
        // Not library: a one-component name stays as it is.
        assert_eq!(u.resolve(&name("ghcr/app")).unwrap().remote, "app");
        assert_eq!(u.resolve(&name("mine/app")), None);
        // The prefix alone is not a mirrored name; a longer first component is not the prefix.
        assert_eq!(u.resolve(&name("dockerhub")), None);
        assert_eq!(u.resolve(&name("dockerhubx/alpine")), None);
    }

    #[test]
    fn empty_prefix_takes_the_rest() {
        let u = Upstreams::parse(r#"[{"prefix": "", "url": "http://127.0.0.1:5001", "library": true}, {"prefix": "q/", "url": "https://quay.io"}]"#).unwrap();
        assert_eq!(u.resolve(&name("alpine")).unwrap().remote, "library/alpine");
        assert_eq!(u.resolve(&name("library/alpine")).unwrap().remote, "library/alpine");
        assert_eq!(u.resolve(&name("q/x/y")).unwrap().upstream.url, "https://quay.io");
        assert!(Upstreams::default().resolve(&name("alpine")).is_none());
        assert!(Upstreams::default().is_empty());
    }

    #[test]
    fn bad_configuration_is_refused() {
        let ok = Upstreams::parse(r#"[{"prefix": "a/", "url": "https://x", "redirect_origins": ["http://127.0.0.1:9000", "https://cdn.example/"]}]"#).unwrap();
        assert_eq!(ok.entries()[0].redirect_origins.len(), 2);
        for bad in [
            "{}",
            "[{\"prefix\": \"a/\"}]",
            r#"[{"prefix": "a/", "url": "https://x"}, {"prefix": "a/", "url": "https://y"}]"#,
            r#"[{"prefix": "a", "url": "https://x"}]"#,
            r#"[{"prefix": "A/", "url": "https://x"}]"#,
            r#"[{"prefix": "a/", "url": "ftp://x"}]"#,
            r#"[{"prefix": "a/", "url": "https://x/v2"}]"#,
            r#"[{"prefix": "a/", "url": "https://u:p@x"}]"#,
            r#"[{"prefix": "a/", "url": "not a url"}]"#,
            r#"[{"prefix": "a/", "url": "https://x", "ttl": 5}]"#,
            r#"[{"prefix": "a/", "url": "https://x", "redirect_origins": ["cdn.example"]}]"#,
            r#"[{"prefix": "a/", "url": "https://x", "redirect_origins": ["https://cdn.example/path"]}]"#,
        ] {
            let e = Upstreams::parse(bad).unwrap_err();
            assert!(e.starts_with("UPSTREAMS:"), "{bad}: {e}");
        }
    }
}
