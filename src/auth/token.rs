//! The Docker token flow's bearer tokens: HS256 JWTs signed with a key from a secret, carrying
//! the granted scopes in an `access` claim (as distribution's token server does). Verification
//! checks the header's algorithm (HS256 only), the signature (constant-time), `iss`, `aud`,
//! `nbf` and `exp`; nothing is read from storage. A JWT is three base64url parts joined by
//! dots, the last an HMAC-SHA256 of the first two: written here with the hmac and sha2 the
//! registry uses anyway, rather than a JWT crate bringing its own.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::scope::Scope;
use super::Actions;
use crate::oci::name::RepoName;

/// The issuer written into and required of every token.
pub const ISSUER: &str = "edge-registry";

/// Tolerated clock skew on `nbf`/`exp`, in seconds.
const LEEWAY: u64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user name; empty for an anonymous token.
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub access: Vec<Grant>,
    /// Set on a refresh token only: the fingerprint of its user's password hash when it was
    /// issued. A refresh token buys access tokens at `/token` (never access itself), and only
    /// while the user keeps that password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
}

impl Claims {
    /// Whether the token grants registry administration ([`super::scope::ADMIN_SCOPE`]).
    pub fn is_admin(&self) -> bool {
        self.access.iter().any(|g| g.kind == "registry" && g.name == "admin" && g.actions.iter().any(|a| a == "*"))
    }

    /// What the token grants on `name`.
    pub fn actions_on(&self, name: &RepoName) -> Actions {
        self.access
            .iter()
            .filter(|g| g.kind == "repository" && g.name == name.as_str())
            .fold(Actions::NONE, |acc, g| acc.union(Actions::parse_list(&g.actions.join(","))))
    }
}

pub struct TokenSigner {
    key: Hmac<Sha256>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    WrongIssuer,
    WrongAudience,
    NotYetValid,
    Expired,
}

impl TokenSigner {
    pub fn new(secret: &[u8]) -> Self {
        TokenSigner { key: <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length") }
    }

    /// `header.payload.signature` for these claims.
    fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("serializable"));
        let mut mac = self.key.clone();
        mac.update(format!("{header}.{payload}").as_bytes());
        format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// The claims of a token whose header says HS256 and whose signature is ours.
    fn open(&self, token: &str) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        #[derive(Deserialize)]
        struct Header {
            alg: String,
        }
        let header_json = URL_SAFE_NO_PAD.decode(header).map_err(|_| TokenError::Malformed)?;
        let h: Header = serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
        if h.alg != "HS256" {
            return Err(TokenError::Malformed);
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.key.clone();
        mac.update(format!("{header}.{payload}").as_bytes());
        mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)
    }

    /// A token for `user` (`None`: anonymous) granting `scopes` (and administration, if
    /// `admin`) to `audience` (the service), valid for `ttl` seconds from `now`.
    pub fn mint(&self, user: Option<&str>, audience: &str, scopes: &[Scope], admin: bool, now: u64, ttl: u64) -> String {
        let claims = Claims {
            iss: ISSUER.to_string(),
            sub: user.unwrap_or("").to_string(),
            aud: audience.to_string(),
            exp: now + ttl,
            nbf: now,
            iat: now,
            access: scopes
                .iter()
                .filter(|s| !s.actions.is_empty())
                .map(|s| Grant {
                    kind: "repository".to_string(),
                    name: s.name.to_string(),
                    actions: s.actions.to_list().into_iter().map(str::to_string).collect(),
                })
                .chain(admin.then(|| Grant { kind: "registry".to_string(), name: "admin".to_string(), actions: vec!["*".to_string()] }))
                .collect(),
            refresh: None,
        };
        self.sign(&claims)
    }

    /// A refresh token for `user` (what the web UI keeps instead of the password), bound to
    /// `fingerprint` (of the user's password hash), valid for `ttl` seconds from `now`.
    pub fn mint_refresh(&self, user: &str, audience: &str, fingerprint: String, now: u64, ttl: u64) -> String {
        let claims = Claims {
            iss: ISSUER.to_string(),
            sub: user.to_string(),
            aud: audience.to_string(),
            exp: now + ttl,
            nbf: now,
            iat: now,
            access: Vec::new(),
            refresh: Some(fingerprint),
        };
        self.sign(&claims)
    }

    /// The claims of a valid token for `audience` at `now`.
    pub fn verify(&self, token: &str, audience: &str, now: u64) -> Result<Claims, TokenError> {
        let claims = self.open(token)?;
        if claims.iss != ISSUER {
            return Err(TokenError::WrongIssuer);
        }
        if claims.aud != audience {
            return Err(TokenError::WrongAudience);
        }
        if now + LEEWAY < claims.nbf {
            return Err(TokenError::NotYetValid);
        }
        if now >= claims.exp + LEEWAY {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Action;
    use base64::Engine;

    fn scope(s: &str) -> Scope {
        Scope::parse(s).unwrap()
    }

    #[test]
    fn mint_and_verify() {
        let signer = TokenSigner::new(b"k1");
        let t = signer.mint(Some("alice"), "reg", &[scope("repository:a/b:pull,push")], false, 1000, 300);
        let c = signer.verify(&t, "reg", 1100).unwrap();
        assert_eq!(c.sub, "alice");
        let name = RepoName::parse("a/b").unwrap();
        assert!(c.actions_on(&name).contains(Action::Push));
        assert!(c.actions_on(&RepoName::parse("a/c").unwrap()).is_empty());
        assert!(!c.is_admin());
        let admin = signer.verify(&signer.mint(Some("alice"), "reg", &[], true, 1000, 300), "reg", 1100).unwrap();
        assert!(admin.is_admin() && admin.actions_on(&name).is_empty());
        assert_eq!(admin.access, vec![Grant { kind: "registry".into(), name: "admin".into(), actions: vec!["*".into()] }]);
    }

    #[test]
    fn rejects_expired_early_wrong_key_wrong_audience() {
        let signer = TokenSigner::new(b"k1");
        let t = signer.mint(None, "reg", &[scope("repository:a:pull")], false, 1000, 300);
        assert_eq!(signer.verify(&t, "reg", 1300 + LEEWAY), Err(TokenError::Expired));
        assert_eq!(signer.verify(&t, "reg", 1000 - LEEWAY - 1), Err(TokenError::NotYetValid));
        assert!(signer.verify(&t, "reg", 1000 - LEEWAY).is_ok(), "valid from its nbf, less the leeway");
        assert!(signer.verify(&t, "reg", 1300 + LEEWAY - 1).is_ok(), "until its exp, plus the leeway");
        assert_eq!(TokenSigner::new(b"k2").verify(&t, "reg", 1100), Err(TokenError::BadSignature));
        assert_eq!(signer.verify(&t, "other", 1100), Err(TokenError::WrongAudience));
        assert_eq!(signer.verify("garbage", "reg", 1100), Err(TokenError::Malformed));
    }

    #[test]
    fn a_widened_scope_breaks_the_signature() {
        let signer = TokenSigner::new(b"k1");
        let t = signer.mint(Some("bob"), "reg", &[scope("repository:a:pull")], false, 1000, 300);
        let parts: Vec<&str> = t.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        claims["access"][0]["actions"] = serde_json::json!(["pull", "push", "delete"]);
        let forged = format!("{}.{}.{}", parts[0], b64.encode(claims.to_string()), parts[2]);
        assert_eq!(signer.verify(&forged, "reg", 1100), Err(TokenError::BadSignature));
        // And a token claiming another issuer, even if signed with our key, is refused.
        let mut c = signer.verify(&t, "reg", 1100).unwrap();
        c.iss = "someone-else".into();
        let other = signer.sign(&c);
        assert_eq!(signer.verify(&other, "reg", 1100), Err(TokenError::WrongIssuer));
        // Another algorithm in the header ("none" above all) is refused whatever follows.
        let none = format!("{}.{}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
        assert_eq!(signer.verify(&none, "reg", 1100), Err(TokenError::Malformed));
        let relabelled = format!("{}.{}.{}", b64.encode(br#"{"alg":"HS512","typ":"JWT"}"#), parts[1], parts[2]);
        assert_eq!(signer.verify(&relabelled, "reg", 1100), Err(TokenError::Malformed));
        assert_eq!(signer.verify(&format!("{t}.extra"), "reg", 1100), Err(TokenError::Malformed));
    }
}
