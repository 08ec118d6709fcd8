//! Who is calling and whether they may: reads `Authorization` (Basic or Bearer), applies the
//! rules of `crate::auth` to the request's need, and answers 401 with the Bearer challenge or
//! 403 DENIED. Credentials never reach a log.

use std::cell::RefCell;
use std::collections::HashMap;

use base64::Engine;
use sha2::{Digest as _, Sha256};

use crate::app::{AuthConfig, Context};
use crate::auth::rules::Identity;
use crate::auth::scope::{challenge, Scope};
use crate::auth::token::Claims;
use crate::auth::{Action, Actions, Need};
use crate::oci::error::{Code, RegistryError, Result};
use crate::oci::name::RepoName;

/// Verified Basic credentials are remembered this long per isolate: bcrypt is deliberately
/// slow, and simple clients send Basic on every request.
const VERIFIED_FOR_MS: u64 = 5 * 60 * 1000;
const VERIFIED_MAX: usize = 1024;

thread_local! {
    static VERIFIED: RefCell<HashMap<[u8; 32], u64>> = RefCell::new(HashMap::new());
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Authentication is off: everything is allowed.
    Open,
    Anonymous,
    /// Basic credentials checked against the htpasswd secret.
    User(String),
    /// A token we signed.
    Token(Claims),
}

impl Caller {
    /// The identity the access rules apply to.
    pub fn identity(&self) -> Identity {
        match self {
            Caller::Open | Caller::Anonymous => Identity::Anonymous,
            Caller::User(u) => Identity::User(u.clone()),
            Caller::Token(c) if c.sub.is_empty() => Identity::Anonymous,
            Caller::Token(c) => Identity::User(c.sub.clone()),
        }
    }

    /// What the caller may do on `name`: a token grants what it says, nothing more.
    pub fn actions_on(&self, auth: &AuthConfig, name: &RepoName) -> Actions {
        match self {
            Caller::Open => Actions::ALL,
            Caller::Token(c) => c.actions_on(name),
            _ => auth.rules.allowed(&self.identity(), name.as_str()),
        }
    }

    /// Whether the repository belongs in the caller's catalog (pull allowed by the rules).
    pub fn sees(&self, auth: &AuthConfig, name: &str) -> bool {
        matches!(self, Caller::Open) || auth.rules.allowed(&self.identity(), name).contains(Action::Pull)
    }
}

fn sha256(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

/// Checks `user:password` against the htpasswd secret (remembering success for a while).
pub fn check_password(auth: &AuthConfig, user: &str, password: &str, now_ms: u64) -> bool {
    let Some(users) = &auth.users else { return true };
    let Some(stored) = users.hash_of(user) else {
        // Still spend the bcrypt time, so unknown users cannot be told from wrong passwords.
        return users.verify(user, password);
    };
    let key = sha256(&[user, password, stored]);
    if VERIFIED.with(|v| v.borrow().get(&key).is_some_and(|until| *until > now_ms)) {
        return true;
    }
    if !users.verify(user, password) {
        return false;
    }
    VERIFIED.with(|v| {
        let mut v = v.borrow_mut();
        if v.len() >= VERIFIED_MAX {
            v.retain(|_, until| *until > now_ms);
            if v.len() >= VERIFIED_MAX {
                v.clear();
            }
        }
        v.insert(key, now_ms + VERIFIED_FOR_MS);
    });
    true
}

/// The scheme (e.g. `Basic`, `Bearer`) and the credentials of an `Authorization` header.
pub fn split_authorization(header: &str) -> (&str, &str) {
    let header = header.trim();
    header.split_once(' ').map(|(scheme, value)| (scheme, value.trim())).unwrap_or((header, ""))
}

/// `user:password` of Basic credentials (the header value after the scheme).
pub fn basic_credentials(value: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD.decode(value.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn unauthorized(cx: &Context<'_>, detail: &str, scope: Option<&Scope>) -> RegistryError {
    let auth = &cx.app.config.auth;
    RegistryError::unauthorized(detail, challenge(&auth.realm, &auth.service, scope))
}

/// Identifies the caller from the `Authorization` header.
pub fn authenticate(cx: &Context<'_>) -> Result<Caller> {
    let auth = &cx.app.config.auth;
    if auth.users.is_none() {
        return Ok(Caller::Open);
    }
    let Some(header) = cx.header("authorization") else { return Ok(Caller::Anonymous) };
    let (scheme, value) = split_authorization(&header);
    if scheme.eq_ignore_ascii_case("basic") {
        let (user, password) = basic_credentials(value).ok_or_else(|| unauthorized(cx, "malformed Basic credentials", None))?;
        if !check_password(auth, &user, &password, cx.now_ms()) {
            return Err(unauthorized(cx, "invalid username or password", None));
        }
        return Ok(Caller::User(user));
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return match auth.signer.verify(value, &auth.service, cx.now_ms() / 1000) {
            Ok(claims) => Ok(Caller::Token(claims)),
            Err(e) => Err(unauthorized(cx, &format!("invalid token: {e:?}"), None)),
        };
    }
    Err(unauthorized(cx, "unsupported authorization scheme", None))
}

/// Allows the request, or answers 405 (read-only), 401 (may authenticate for more) or 403.
pub fn authorize(cx: &Context<'_>, caller: &Caller, need: &Need) -> Result<()> {
    let auth = &cx.app.config.auth;
    if auth.read_only && need.writes() {
        return Err(RegistryError::new(Code::Unsupported, "the registry is in read-only mode"));
    }
    match need {
        Need::Nothing | Need::Catalog => Ok(()),
        Need::Admin => match (caller, caller.identity()) {
            (Caller::Open, _) => Ok(()),
            (_, Identity::User(u)) if auth.admins.contains(&u) => Ok(()),
            (_, Identity::User(_)) => Err(RegistryError::new(Code::Denied, "administrators only")),
            (_, Identity::Anonymous) => Err(unauthorized(cx, "administrators only", None)),
        },
        Need::Login => match caller {
            Caller::Anonymous => Err(unauthorized(cx, "authentication required", None)),
            _ => Ok(()),
        },
        Need::Repo { name, action } => {
            if caller.actions_on(auth, name).contains(*action) {
                return Ok(());
            }
            // Clients ask for pull with push, as distribution's challenges do.
            let wanted = match action {
                Action::Push => Actions::of(&[Action::Pull, Action::Push]),
                a => Actions::of(&[*a]),
            };
            let scope = Scope { name: name.clone(), actions: wanted };
            let may_get_more = match caller {
                Caller::Anonymous => true,
                // A token narrower than what its user may do: ask for a wider one.
                Caller::Token(c) if !c.sub.is_empty() => auth.rules.allowed(&caller.identity(), name.as_str()).contains(*action),
                Caller::Token(_) => true,
                _ => false,
            };
            if may_get_more {
                Err(unauthorized(cx, &format!("{} on {name} needs authentication", action.as_str()), Some(&scope)))
            } else {
                Err(RegistryError::new(Code::Denied, format!("{} on {name} is not allowed", action.as_str())))
            }
        }
    }
}
