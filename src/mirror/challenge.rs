//! Upstream authentication, the pure part: the `WWW-Authenticate` challenge an upstream answers
//! 401 with, the token request it asks for, the token response, and the per-isolate cache of
//! tokens by upstream, credentials and scope (reused until shortly before they expire).

use std::cell::RefCell;
use std::collections::HashMap;

use serde::Deserialize;

/// What an upstream's 401 asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// The Docker token flow: get a token from `realm` for `service` and `scope`.
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
    /// Credentials on every request.
    Basic,
}

impl Challenge {
    /// Parses a `WWW-Authenticate` value (`Bearer realm="...",service="...",scope="..."` or
    /// `Basic realm="..."`); `None` for any other scheme or a Bearer challenge without a realm.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, params) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = auth_params(params);
        let get = |k: &str| params.iter().find(|(name, _)| name.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
        Some(Challenge::Bearer { realm: get("realm").filter(|r| !r.is_empty())?, service: get("service"), scope: get("scope") })
    }
}

/// `k="v", k2=v2` pairs of a challenge (quoted values may hold commas and escaped quotes).
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else { break };
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.push((key, value));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// The token request URL for a Bearer challenge: the realm with `service` and `scope` added
/// (the scope the challenge names, else `scope`: what the request needs).
pub fn token_url(realm: &str, service: Option<&str>, challenge_scope: Option<&str>, scope: &str) -> Option<String> {
    let mut url = url::Url::parse(realm).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    {
        let mut q = url.query_pairs_mut();
        if let Some(s) = service {
            q.append_pair("service", s);
        }
        q.append_pair("scope", challenge_scope.unwrap_or(scope));
    }
    Some(url.into())
}

#[derive(Deserialize)]
struct TokenBody {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The token spec's default lifetime when a response gives none.
const DEFAULT_EXPIRES_IN_S: u64 = 60;

/// A token and when (ms) to stop using it: a tenth of its lifetime before it expires.
pub fn parse_token_response(body: &[u8], now_ms: u64) -> Option<(String, u64)> {
    let t: TokenBody = serde_json::from_slice(body).ok()?;
    let token = t.token.or(t.access_token).filter(|t| !t.is_empty())?;
    let life_ms = t.expires_in.unwrap_or(DEFAULT_EXPIRES_IN_S).max(1) * 1000;
    Some((token, now_ms + life_ms - life_ms / 10))
}

/// Tokens by upstream and scope, reused by every request of the isolate until they expire.
/// `upstream` names the origin and the credentials used (two entries mirroring one registry
/// with and without credentials never share a token): see [`TokenCache::identity`].
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: RefCell<HashMap<String, (String, u64)>>,
}

impl TokenCache {
    /// The cache's name for `origin` reached with `credentials`: the origin and a fingerprint
    /// of the credentials (never the credentials themselves).
    pub fn identity(origin: &str, credentials: Option<&str>) -> String {
        use sha2::Digest as _;
        match credentials {
            Some(c) => format!("{origin}#{}", &hex::encode(sha2::Sha256::digest(c.as_bytes()))[..16]),
            None => format!("{origin}#anonymous"),
        }
    }

    fn key(upstream: &str, scope: &str) -> String {
        format!("{upstream} {scope}")
    }

    /// The `Authorization` value cached for `scope` at `upstream`, while it is valid.
    pub fn get(&self, upstream: &str, scope: &str, now_ms: u64) -> Option<String> {
        let mut tokens = self.tokens.borrow_mut();
        let key = Self::key(upstream, scope);
        match tokens.get(&key) {
            Some((value, until)) if now_ms < *until => Some(value.clone()),
            Some(_) => {
                tokens.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, upstream: &str, scope: &str, authorization: String, until_ms: u64) {
        let mut tokens = self.tokens.borrow_mut();
        // Bounded: expired entries go first, then everything if still too many.
        if tokens.len() >= 1000 {
            tokens.retain(|_, (_, until)| *until > until_ms.saturating_sub(24 * 3600 * 1000));
            if tokens.len() >= 1000 {
                tokens.clear();
            }
        }
        tokens.insert(Self::key(upstream, scope), (authorization, until_ms));
    }

    /// Drops a cached value the upstream refused.
    pub fn forget(&self, upstream: &str, scope: &str) {
        self.tokens.borrow_mut().remove(&Self::key(upstream, scope));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges() {
        let c = Challenge::parse(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#);
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull".into()),
            })
        );
        // Case, spacing, unquoted values, commas and escapes inside quotes.
        let c = Challenge::parse(r#"bearer  Realm = "http://h/t?a=1,b" , service=reg ,scope="repository:a/b:pull,push" , error="x\"y""#).unwrap();
        assert_eq!(
            c,
            Challenge::Bearer { realm: "http://h/t?a=1,b".into(), service: Some("reg".into()), scope: Some("repository:a/b:pull,push".into()) }
        );
        assert_eq!(
            Challenge::parse(r#"Bearer realm="https://ghcr.io/token""#),
            Some(Challenge::Bearer { realm: "https://ghcr.io/token".into(), service: None, scope: None })
        );
        assert_eq!(Challenge::parse(r#"Basic realm="registry""#), Some(Challenge::Basic));
        assert_eq!(Challenge::parse("Basic"), Some(Challenge::Basic));
        assert_eq!(Challenge::parse(r#"Bearer service="x""#), None);
        assert_eq!(Challenge::parse(r#"Bearer realm="""#), None);
        assert_eq!(Challenge::parse(r#"Negotiate abc"#), None);
        assert_eq!(Challenge::parse(""), None);
    }

    #[test]
    fn token_urls() {
        assert_eq!(
            token_url("https://auth.docker.io/token", Some("registry.docker.io"), None, "repository:library/alpine:pull").unwrap(),
            "https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Falpine%3Apull"
        );
        // The challenge's scope wins; a realm's own query is kept.
        assert_eq!(token_url("http://h:5/t?x=1", None, Some("repository:a:pull"), "other").unwrap(), "http://h:5/t?x=1&scope=repository%3Aa%3Apull");
        assert_eq!(token_url("file:///etc/passwd", None, None, "s"), None);
        assert_eq!(token_url("not a url", None, None, "s"), None);
    }

    #[test]
    fn token_responses() {
        assert_eq!(parse_token_response(br#"{"token":"abc","expires_in":300}"#, 1000), Some(("abc".into(), 1000 + 270_000)));
        assert_eq!(parse_token_response(br#"{"access_token":"xyz"}"#, 0), Some(("xyz".into(), 54_000)));
        assert_eq!(parse_token_response(br#"{"token":"","access_token":"xyz","expires_in":10}"#, 0), None);
        assert_eq!(parse_token_response(br#"{"token":"t","expires_in":0}"#, 0), Some(("t".into(), 900)));
        assert_eq!(parse_token_response(b"{}", 0), None);
        assert_eq!(parse_token_response(b"<html>", 0), None);
    }

    #[test]
    fn cache_until_expiry() {
        let c = TokenCache::default();
        c.put("https://u", "repository:a:pull", "Bearer t".into(), 1000);
        assert_eq!(c.get("https://u", "repository:a:pull", 999).as_deref(), Some("Bearer t"));
        assert_eq!(c.get("https://u", "repository:b:pull", 0), None);
        assert_eq!(c.get("https://v", "repository:a:pull", 0), None);
        assert_eq!(c.get("https://u", "repository:a:pull", 1000), None);
        // Expired entries are dropped when found.
        c.put("https://u", "s", "Bearer x".into(), 10);
        assert_eq!(c.get("https://u", "s", 20), None);
        assert_eq!(c.get("https://u", "s", 5), None);
        c.put("https://u", "s", "Bearer y".into(), 100);
        c.forget("https://u", "s");
        assert_eq!(c.get("https://u", "s", 0), None);
        for i in 0..1500 {
            c.put("https://u", &i.to_string(), "v".into(), 10_000_000_000);
        }
        assert!(c.tokens.borrow().len() <= 1000);
        let (a, b) = (TokenCache::identity("https://u", Some("alice:pw")), TokenCache::identity("https://u", None));
        assert_ne!(a, b);
        assert_ne!(a, TokenCache::identity("https://u", Some("alice:other")));
        assert!(!a.contains("alice") && a.starts_with("https://u#"));
        assert_eq!(c.get("https://u", "1499", 0).as_deref(), Some("v"));
    }
}
