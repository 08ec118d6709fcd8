//! The upstream client: one request to an upstream registry, answering its authentication
//! challenge and following its redirects, over a small [`Fetch`] trait (wasm: the runtime's
//! `fetch`, `mirror::web`; native tests: a double).
//!
//! - A 401 with a Bearer challenge gets a token from the challenge's realm (with the upstream's
//!   credentials as Basic, if configured; anonymous otherwise), cached per upstream and scope
//!   until shortly before it expires, and the request is sent again once. A Basic challenge is
//!   answered with the credentials, when there are any.
//! - Redirects (Docker Hub answers blob GETs with 307 to a CDN) are followed by hand, and the
//!   `Authorization` header never goes to another origin than the upstream's.

use std::cell::Cell;

use async_trait::async_trait;
use base64::Engine;

use super::challenge::{parse_token_response, token_url, Challenge, TokenCache};

/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// Largest token response read.
const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// One request to an upstream, sent as is (no redirect followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// An upstream's answer; `body` is the platform's body type.
#[derive(Debug)]
pub struct UpstreamResponse<B> {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: B,
}

impl<B> UpstreamResponse<B> {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends requests. `Err` is a request that got no answer (refused, reset, timed out), with why.
#[async_trait(?Send)]
pub trait Fetch {
    type Body;
    async fn send(&self, req: &UpstreamRequest) -> Result<UpstreamResponse<Self::Body>, String>;
    /// The body's bytes, refused past `limit`.
    async fn read(&self, body: Self::Body, limit: usize) -> Result<Vec<u8>, String>;
}

/// A client of one upstream for one request of ours.
pub struct Client<'a, F: Fetch> {
    pub fetch: &'a F,
    pub tokens: &'a TokenCache,
    /// The upstream's origin.
    pub origin: &'a str,
    /// Who the cached tokens are for: the origin and these credentials.
    identity: String,
    /// `user:password`, if configured.
    pub credentials: Option<&'a str>,
    pub now_ms: u64,
    /// Requests sent upstream (token requests included), for the ops header.
    pub sent: Cell<u32>,
}

fn origin_of(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

impl<'a, F: Fetch> Client<'a, F> {
    pub fn new(fetch: &'a F, tokens: &'a TokenCache, origin: &'a str, credentials: Option<&'a str>, now_ms: u64) -> Self {
        let identity = TokenCache::identity(origin, credentials);
        Client { fetch, tokens, origin, identity, credentials, now_ms, sent: Cell::new(0) }
    }

    async fn send_once(&self, req: &UpstreamRequest) -> Result<UpstreamResponse<F::Body>, String> {
        self.sent.set(self.sent.get() + 1);
        self.fetch.send(req).await
    }

    fn basic(&self) -> Option<String> {
        self.credentials.map(|c| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(c)))
    }

    /// Sends `method url` with `accept`, authorized for `scope` on the upstream.
    pub async fn send(&self, method: &'static str, url: &str, accept: Option<&str>, scope: &str) -> Result<UpstreamResponse<F::Body>, String> {
        let home = url::Url::parse(self.origin).map(|u| origin_of(&u)).map_err(|e| format!("upstream {}: {e}", self.origin))?;
        let mut auth = self.tokens.get(&self.identity, scope, self.now_ms);
        let mut challenged = false;
        let mut at = url::Url::parse(url).map_err(|e| format!("upstream URL {url}: {e}"))?;
        let mut redirects = 0;
        loop {
            let at_home = origin_of(&at) == home;
            let mut headers = Vec::new();
            if let Some(a) = accept {
                headers.push(("Accept".to_string(), a.to_string()));
            }
            if let Some(a) = auth.as_ref().filter(|_| at_home) {
                headers.push(("Authorization".to_string(), a.clone()));
            }
            let resp = self.send_once(&UpstreamRequest { method, url: at.to_string(), headers }).await?;
            if resp.status == 401 && at_home && !challenged {
                challenged = true;
                self.tokens.forget(&self.identity, scope);
                let answer = match resp.header("www-authenticate").and_then(Challenge::parse) {
                    Some(Challenge::Bearer { realm, service, scope: asked }) => {
                        Some(self.token(&realm, service.as_deref(), asked.as_deref(), scope).await?)
                    }
                    Some(Challenge::Basic) => self.basic().map(|b| (b, self.now_ms + 3600 * 1000)),
                    None => None,
                };
                if let Some((value, until)) = answer {
                    self.tokens.put(&self.identity, scope, value.clone(), until);
                    auth = Some(value);
                    continue;
                }
                return Ok(resp);
            }
            if matches!(resp.status, 301 | 302 | 303 | 307 | 308) {
                if let Some(location) = resp.header("location") {
                    if redirects == MAX_REDIRECTS {
                        return Err(format!("more than {MAX_REDIRECTS} redirects from {url}"));
                    }
                    redirects += 1;
                    at = at.join(location).map_err(|e| format!("redirect to {location:?}: {e}"))?;
                    if !matches!(at.scheme(), "http" | "https") {
                        return Err(format!("redirect to {location:?}"));
                    }
                    continue;
                }
            }
            return Ok(resp);
        }
    }

    /// A Bearer token for `scope` from `realm`, and until when to use it.
    async fn token(&self, realm: &str, service: Option<&str>, asked: Option<&str>, scope: &str) -> Result<(String, u64), String> {
        let url = token_url(realm, service, asked, scope).ok_or_else(|| format!("upstream token realm {realm:?} is not an http(s) URL"))?;
        let headers = self.basic().map(|b| vec![("Authorization".to_string(), b)]).unwrap_or_default();
        let resp = self.send_once(&UpstreamRequest { method: "GET", url, headers }).await?;
        if resp.status != 200 {
            return Err(format!("upstream token endpoint answered {}", resp.status));
        }
        let body = self.fetch.read(resp.body, MAX_TOKEN_BYTES).await?;
        let (token, until) = parse_token_response(&body, self.now_ms).ok_or("upstream token endpoint sent no token")?;
        Ok((format!("Bearer {token}"), until))
    }
}

#[cfg(test)]
pub(crate) mod double {
    //! An upstream double: answers by a function of the request, and records every request.
    use super::*;
    use std::cell::RefCell;

    pub type Answer = Result<(u16, Vec<(String, String)>, Vec<u8>), String>;

    pub struct FakeUpstream<H: Fn(&UpstreamRequest) -> Answer> {
        pub handler: H,
        pub seen: RefCell<Vec<UpstreamRequest>>,
    }

    impl<H: Fn(&UpstreamRequest) -> Answer> FakeUpstream<H> {
        pub fn new(handler: H) -> Self {
            FakeUpstream { handler, seen: RefCell::default() }
        }

        pub fn urls(&self) -> Vec<String> {
            self.seen.borrow().iter().map(|r| format!("{} {}", r.method, r.url)).collect()
        }
    }

    pub fn auth_of(req: &UpstreamRequest) -> Option<&str> {
        req.headers.iter().find(|(k, _)| k == "Authorization").map(|(_, v)| v.as_str())
    }

    pub fn answer(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        Ok((status, headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), body.to_vec()))
    }

    #[async_trait(?Send)]
    impl<H: Fn(&UpstreamRequest) -> Answer> Fetch for FakeUpstream<H> {
        type Body = Vec<u8>;

        async fn send(&self, req: &UpstreamRequest) -> Result<UpstreamResponse<Vec<u8>>, String> {
            self.seen.borrow_mut().push(req.clone());
            let (status, headers, body) = (self.handler)(req)?;
            Ok(UpstreamResponse { status, headers, body })
        }

        async fn read(&self, body: Vec<u8>, limit: usize) -> Result<Vec<u8>, String> {
            if body.len() > limit {
                return Err(format!("body over {limit} bytes"));
            }
            Ok(body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::double::*;
    use super::*;
    use futures_executor::block_on;

    const ORIGIN: &str = "http://up:5000";
    const SCOPE: &str = "repository:library/alpine:pull";
    const MANIFEST: &str = "http://up:5000/v2/library/alpine/manifests/latest";

    /// An upstream with the Docker token flow: `/token` gives "t1" (to alice with her password,
    /// else anonymous "anon"), and the registry wants a token.
    fn token_flow(req: &UpstreamRequest) -> Answer {
        let challenge = r#"Bearer realm="http://auth:9000/token",service="up""#;
        if req.url.starts_with("http://auth:9000/token") {
            assert!(req.url.contains("service=up") && req.url.contains("scope=repository%3Alibrary%2Falpine%3Apull"), "{}", req.url);
            return match auth_of(req) {
                Some("Basic YWxpY2U6cHc=") => answer(200, &[], br#"{"token":"t1","expires_in":300}"#),
                None => answer(200, &[], br#"{"access_token":"anon"}"#),
                Some(_) => answer(401, &[], b""),
            };
        }
        match auth_of(req) {
            Some("Bearer t1") | Some("Bearer anon") => answer(200, &[("Docker-Content-Digest", "sha256:x")], b"{}"),
            _ => answer(401, &[("WWW-Authenticate", challenge)], b""),
        }
    }

    #[test]
    fn bearer_token_flow_with_credentials_and_reuse() {
        let up = FakeUpstream::new(token_flow);
        let tokens = TokenCache::default();
        let client = Client::new(&up, &tokens, ORIGIN, Some("alice:pw"), 1000);
        let r = block_on(client.send("GET", MANIFEST, Some("application/json"), SCOPE)).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("docker-content-digest"), Some("sha256:x"));
        assert_eq!(client.sent.get(), 3);
        let seen = up.seen.borrow().clone();
        assert_eq!(auth_of(&seen[0]), None);
        assert_eq!(auth_of(&seen[1]), Some("Basic YWxpY2U6cHc="));
        assert_eq!(auth_of(&seen[2]), Some("Bearer t1"));
        assert!(seen[2].headers.contains(&("Accept".into(), "application/json".into())));
        // The token is reused by the next request (another client of the same isolate)...
        let again = Client::new(&up, &tokens, ORIGIN, Some("alice:pw"), 2000);
        assert_eq!(block_on(again.send("HEAD", MANIFEST, None, SCOPE)).unwrap().status, 200);
        assert_eq!(again.sent.get(), 1);
        // ...until shortly before it expires (300 s, used for 270 s).
        let later = Client::new(&up, &tokens, ORIGIN, Some("alice:pw"), 1000 + 270_000);
        assert_eq!(block_on(later.send("HEAD", MANIFEST, None, SCOPE)).unwrap().status, 200);
        assert_eq!(later.sent.get(), 3);
    }

    #[test]
    fn anonymous_token_and_refused_credentials() {
        let up = FakeUpstream::new(token_flow);
        let tokens = TokenCache::default();
        let anon = Client::new(&up, &tokens, ORIGIN, None, 0);
        assert_eq!(block_on(anon.send("GET", MANIFEST, None, SCOPE)).unwrap().status, 200);
        assert_eq!(auth_of(&up.seen.borrow()[2]), Some("Bearer anon"));
        let tokens = TokenCache::default();
        let wrong = Client::new(&up, &tokens, ORIGIN, Some("alice:nope"), 0);
        let e = block_on(wrong.send("GET", MANIFEST, None, SCOPE)).unwrap_err();
        assert_eq!(e, "upstream token endpoint answered 401");
        // A token got with credentials is not used by a client without them (same origin, same scope).
        let tokens = TokenCache::default();
        let alice = Client::new(&up, &tokens, ORIGIN, Some("alice:pw"), 0);
        assert_eq!(block_on(alice.send("GET", MANIFEST, None, SCOPE)).unwrap().status, 200);
        let seen = up.seen.borrow().len();
        let anon = Client::new(&up, &tokens, ORIGIN, None, 0);
        assert_eq!(block_on(anon.send("GET", MANIFEST, None, SCOPE)).unwrap().status, 200);
        assert_eq!(auth_of(&up.seen.borrow()[seen]), None);
        assert_eq!(auth_of(&up.seen.borrow()[seen + 2]), Some("Bearer anon"));
    }

    #[test]
    fn a_second_401_is_the_answer() {
        // The token does not help (no rights): one challenge answered, then the 401 is returned.
        let up = FakeUpstream::new(|req: &UpstreamRequest| {
            if req.url.starts_with("http://up:5000/token") {
                return answer(200, &[], br#"{"token":"useless"}"#);
            }
            answer(401, &[("WWW-Authenticate", r#"Bearer realm="http://up:5000/token""#)], b"")
        });
        let tokens = TokenCache::default();
        let c = Client::new(&up, &tokens, ORIGIN, None, 0);
        assert_eq!(block_on(c.send("GET", MANIFEST, None, SCOPE)).unwrap().status, 401);
        assert_eq!(up.urls().len(), 3);
        // No challenge, or one we cannot answer: the 401 as it came.
        for challenge in [None, Some("Basic realm=\"x\""), Some("Negotiate")] {
            let up = FakeUpstream::new(move |_: &UpstreamRequest| match challenge {
                Some(c) => answer(401, &[("WWW-Authenticate", c)], b""),
                None => answer(401, &[], b""),
            });
            let c = Client::new(&up, &tokens, ORIGIN, None, 0);
            assert_eq!(block_on(c.send("GET", MANIFEST, None, SCOPE)).unwrap().status, 401);
            assert_eq!(c.sent.get(), 1);
        }
    }

    #[test]
    fn basic_challenge_with_credentials() {
        let up = FakeUpstream::new(|req: &UpstreamRequest| match auth_of(req) {
            Some("Basic Ym9iOnNlY3JldA==") => answer(200, &[], b""),
            _ => answer(401, &[("WWW-Authenticate", "Basic realm=\"r\"")], b""),
        });
        let tokens = TokenCache::default();
        let c = Client::new(&up, &tokens, ORIGIN, Some("bob:secret"), 0);
        assert_eq!(block_on(c.send("GET", MANIFEST, None, SCOPE)).unwrap().status, 200);
        assert_eq!(c.sent.get(), 2);
        let c = Client::new(&up, &tokens, ORIGIN, Some("bob:secret"), 10);
        assert_eq!(block_on(c.send("GET", MANIFEST, None, SCOPE)).unwrap().status, 200);
        assert_eq!(c.sent.get(), 1, "Basic credentials remembered for the scope");
    }

    #[test]
    fn redirects_never_carry_the_upstream_authorization_elsewhere() {
        let up = FakeUpstream::new(|req: &UpstreamRequest| {
            if req.url.starts_with("http://up:5000/token") {
                return answer(200, &[], br#"{"token":"t"}"#);
            }
            match (req.url.as_str(), auth_of(req)) {
                ("http://up:5000/v2/library/alpine/blobs/sha256:aa", Some("Bearer t")) => answer(307, &[("Location", "https://cdn.example/blob?sig=1")], b""),
                ("http://up:5000/v2/library/alpine/blobs/sha256:aa", _) => answer(401, &[("WWW-Authenticate", r#"Bearer realm="http://up:5000/token""#)], b""),
                ("https://cdn.example/blob?sig=1", None) => answer(302, &[("Location", "/final")], b""),
                ("https://cdn.example/final", None) => answer(200, &[("Content-Length", "3")], b"abc"),
                (url, auth) => panic!("unexpected {url} {auth:?}"),
            }
        });
        let tokens = TokenCache::default();
        let c = Client::new(&up, &tokens, ORIGIN, None, 0);
        let r = block_on(c.send("GET", "http://up:5000/v2/library/alpine/blobs/sha256:aa", None, SCOPE)).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
        assert_eq!(
            up.urls(),
            [
                "GET http://up:5000/v2/library/alpine/blobs/sha256:aa",
                "GET http://up:5000/token?scope=repository%3Alibrary%2Falpine%3Apull",
                "GET http://up:5000/v2/library/alpine/blobs/sha256:aa",
                "GET https://cdn.example/blob?sig=1",
                "GET https://cdn.example/final",
            ]
        );
    }

    #[test]
    fn redirect_loops_and_odd_locations_end() {
        let up = FakeUpstream::new(|req: &UpstreamRequest| answer(302, &[("Location", &req.url)], b""));
        let tokens = TokenCache::default();
        let c = Client::new(&up, &tokens, ORIGIN, None, 0);
        assert!(block_on(c.send("GET", MANIFEST, None, SCOPE)).unwrap_err().contains("redirects"));
        assert_eq!(c.sent.get(), 6);
        let up = FakeUpstream::new(|_: &UpstreamRequest| answer(302, &[("Location", "file:///etc/passwd")], b""));
        let c = Client::new(&up, &tokens, ORIGIN, None, 0);
        assert!(block_on(c.send("GET", MANIFEST, None, SCOPE)).is_err());
        // A redirect without Location is an answer like any other.
        let up = FakeUpstream::new(|_: &UpstreamRequest| answer(302, &[], b""));
        let c = Client::new(&up, &tokens, ORIGIN, None, 0);
        assert_eq!(block_on(c.send("GET", MANIFEST, None, SCOPE)).unwrap().status, 302);
        // No answer at all.
        let up = FakeUpstream::new(|_: &UpstreamRequest| Err("connection refused".to_string()));
        let c = Client::new(&up, &tokens, ORIGIN, None, 0);
        assert_eq!(block_on(c.send("GET", MANIFEST, None, SCOPE)).unwrap_err(), "connection refused");
    }
}
