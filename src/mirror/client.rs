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
//!
//! An upstream is not trusted ([`may_visit`]): it may send us anywhere, so a redirect or a token
//! realm on another origin is followed only over https and never to an address of the
//! platform's own network (loopback, private, link-local, unspecified: a literal IP or
//! `localhost`; names are resolved by the platform, which does not reach private networks),
//! unless the upstream's entry lists that origin in `redirect_origins`. The upstream's
//! credentials go only to its own origin or to such a realm.

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
    /// Other origins the upstream may send us to over http or on a private address (the
    /// entry's `redirect_origins`).
    trusted: &'a [String],
}

/// Whether a request may go to `to`, named by the upstream at `home` (a redirect's Location, a
/// challenge's realm): its own origin, an origin in `trusted`, or https to a host that is not an
/// address of our own network. `Err` says why not.
pub fn may_visit(to: &url::Url, home: &str, trusted: &[String]) -> Result<(), String> {
    let origin = origin_of(to);
    if origin == home || trusted.iter().any(|t| t.trim_end_matches('/') == origin) {
        return Ok(());
    }
    if to.scheme() != "https" {
        return Err(format!("{origin} is not https (nor the upstream's origin, nor in its redirect_origins)"));
    }
    let own_network = match to.host() {
        Some(url::Host::Ipv4(ip)) => is_own_v4(ip),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.is_unspecified() || (ip.segments()[0] & 0xfe00) == 0xfc00 || (ip.segments()[0] & 0xffc0) == 0xfe80 || ip.to_ipv4_mapped().is_some_and(is_own_v4),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        None => true,
    };
    if own_network {
        return Err(format!("{origin} is an address of the registry's own network"));
    }
    Ok(())
}

/// Loopback, private (10/8, 172.16/12, 192.168/16, 100.64/10), link-local (169.254/16, the
/// cloud metadata address among them), unspecified (0/8) or broadcast.
fn is_own_v4(ip: std::net::Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_broadcast() || a == 0 || (a == 100 && (64..128).contains(&b))
}

fn origin_of(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

impl<'a, F: Fetch> Client<'a, F> {
    pub fn new(fetch: &'a F, tokens: &'a TokenCache, origin: &'a str, credentials: Option<&'a str>, now_ms: u64) -> Self {
        let identity = TokenCache::identity(origin, credentials);
        Client { fetch, tokens, origin, identity, credentials, now_ms, sent: Cell::new(0), trusted: &[] }
    }

    /// The same client, also following the upstream to the `trusted` origins (see [`may_visit`]).
    pub fn trusting(self, trusted: &'a [String]) -> Self {
        Client { trusted, ..self }
    }

    /// The upstream's origin, as [`may_visit`] compares it.
    fn home(&self) -> Result<String, String> {
        url::Url::parse(self.origin).map(|u| origin_of(&u)).map_err(|e| format!("upstream {}: {e}", self.origin))
    }

    /// Whether `url` (named by the upstream: a pagination link) is on the upstream's own origin.
    pub fn is_home(&self, url: &url::Url) -> bool {
        self.home().is_ok_and(|home| origin_of(url) == home)
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
        let home = self.home()?;
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
                    may_visit(&at, &home, self.trusted).map_err(|why| format!("redirect to {location:?} refused: {why}"))?;
                    continue;
                }
            }
            return Ok(resp);
        }
    }

    /// A Bearer token for `scope` from `realm`, and until when to use it.
    async fn token(&self, realm: &str, service: Option<&str>, asked: Option<&str>, scope: &str) -> Result<(String, u64), String> {
        let url = token_url(realm, service, asked, scope).ok_or_else(|| format!("upstream token realm {realm:?} is not an http(s) URL"))?;
        // The realm is the upstream's word too: the credentials go only where it may send us.
        let parsed = url::Url::parse(&url).map_err(|e| format!("upstream token realm {realm:?}: {e}"))?;
        may_visit(&parsed, &self.home()?, self.trusted).map_err(|why| format!("upstream token realm {realm:?} refused: {why}"))?;
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
        let challenge = r#"Bearer realm="https://auth:9000/token",service="up""#;
        if req.url.starts_with("https://auth:9000/token") {
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
    fn redirects_and_realms_go_only_to_https_outside_our_network_or_to_trusted_origins() {
        let at = |u: &str| url::Url::parse(u).unwrap();
        let home = "http://up:5000";
        let trusted = ["http://127.0.0.1:9000/".to_string()];
        for ok in ["http://up:5000/v2/x", "https://cdn.example/blob", "https://8.8.8.8/x", "https://[2606:4700::1]/x", "http://127.0.0.1:9000/cdn"] {
            assert_eq!(may_visit(&at(ok), home, &trusted), Ok(()), "{ok}");
        }
        for refused in [
            "http://cdn.example/blob",
            "http://up:5001/v2/x",
            "https://127.0.0.1/x",
            "https://127.9.9.9/x",
            "https://10.1.2.3/x",
            "https://172.16.0.1/x",
            "https://192.168.1.1/x",
            "https://100.64.0.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://0.0.0.0/x",
            "https://255.255.255.255/x",
            "https://[::1]/x",
            "https://[::]/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            "https://[::ffff:10.0.0.1]/x",
            "https://localhost/x",
            "https://LOCALHOST./x",
            "https://a.localhost/x",
            "http://127.0.0.1:9001/cdn",
        ] {
            assert!(may_visit(&at(refused), home, &trusted).is_err(), "{refused}");
        }
        assert!(may_visit(&at("https://172.32.0.1/x"), home, &[]).is_ok() && may_visit(&at("https://100.128.0.1/x"), home, &[]).is_ok());

        // A redirect to plain http elsewhere, or into our network, is not followed.
        for location in ["http://cdn.example/blob", "https://169.254.169.254/", "https://127.0.0.1:5000/"] {
            let up = FakeUpstream::new(move |req: &UpstreamRequest| match req.url.as_str() {
                MANIFEST => answer(307, &[("Location", location)], b""),
                url => panic!("followed to {url}"),
            });
            let tokens = TokenCache::default();
            let c = Client::new(&up, &tokens, ORIGIN, None, 0);
            let e = block_on(c.send("GET", MANIFEST, None, SCOPE)).unwrap_err();
            assert!(e.contains("refused"), "{e}");
            assert_eq!(c.sent.get(), 1);
            // Unless the entry trusts that origin.
            let origin = origin_of(&at(location));
            let trusted = [origin];
            let up = FakeUpstream::new(move |req: &UpstreamRequest| match req.url.as_str() {
                MANIFEST => answer(307, &[("Location", location)], b""),
                _ => answer(200, &[], b"ok"),
            });
            let c = Client::new(&up, &tokens, ORIGIN, None, 0).trusting(&trusted);
            assert_eq!(block_on(c.send("GET", MANIFEST, None, SCOPE)).unwrap().status, 200);
        }
    }

    #[test]
    fn credentials_never_go_to_a_realm_over_http_elsewhere() {
        for realm in ["http://evil.example/token", "https://10.0.0.1/token"] {
            let challenge = format!(r#"Bearer realm="{realm}",service="up""#);
            let up = FakeUpstream::new(move |req: &UpstreamRequest| {
                assert!(req.url.starts_with(ORIGIN), "sent to {}", req.url);
                answer(401, &[("WWW-Authenticate", challenge.as_str())], b"")
            });
            let tokens = TokenCache::default();
            let c = Client::new(&up, &tokens, ORIGIN, Some("alice:pw"), 0);
            let e = block_on(c.send("GET", MANIFEST, None, SCOPE)).unwrap_err();
            assert!(e.contains("realm") && e.contains("refused"), "{e}");
            assert_eq!(up.urls(), [format!("GET {MANIFEST}")]);
        }
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
