//! Who is calling and what they may do, decided without the runtime: the access-control
//! configuration, the caller a request's `Authorization` header makes, whether a request's need
//! is allowed (or 401 with the scope to ask for, or 403), and what a token request is granted.
//! The wasm side only reads the header and the clock.

use std::cell::RefCell;
use std::collections::HashMap;

use base64::Engine;
use sha2::{Digest as _, Sha256};

use super::htpasswd::Htpasswd;
use super::rules::{Identity, Rules};
use super::scope::{asks_admin, challenge, Scope, ADMIN_SCOPE};
use super::token::{Claims, TokenSigner};
use super::{Action, Actions, Need};
use crate::oci::error::{Code, RegistryError, Result};
use crate::oci::name::RepoName;

/// Access control as configured.
pub struct AuthConfig {
    /// `None`: open registry, no authentication (the local default, logged loudly).
    pub users: Option<Htpasswd>,
    pub rules: Rules,
    pub signer: TokenSigner,
    /// The `service` of challenges and the audience of tokens.
    pub service: String,
    /// The token endpoint's URL.
    pub realm: String,
    pub token_ttl: u64,
    /// Refuse every write with 405 UNSUPPORTED.
    pub read_only: bool,
    /// Users who may run `/admin/lifecycle` (`ADMIN_USERS`, comma-separated).
    pub admins: Vec<String>,
}

impl AuthConfig {
    /// 401 with the Bearer challenge (naming `scope`, if any).
    fn unauthorized(&self, detail: &str, scope: Option<&Scope>) -> RegistryError {
        self.unauthorized_for(detail, scope.map(Scope::to_string).as_deref())
    }

    /// 401 with the Bearer challenge naming a scope string (a repository's or [`ADMIN_SCOPE`]).
    fn unauthorized_for(&self, detail: &str, scope: Option<&str>) -> RegistryError {
        RegistryError::unauthorized(detail, challenge(&self.realm, &self.service, scope))
    }

    fn is_admin(&self, user: &str) -> bool {
        self.admins.iter().any(|a| a == user)
    }
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

/// Verified Basic credentials are remembered this long per isolate: bcrypt is deliberately
/// slow, and simple clients send Basic on every request.
const VERIFIED_FOR_MS: u64 = 5 * 60 * 1000;
const VERIFIED_MAX: usize = 1024;

thread_local! {
    static VERIFIED: RefCell<HashMap<[u8; 32], u64>> = RefCell::new(HashMap::new());
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
    if remembered(&key, now_ms) {
        return true;
    }
    if !users.verify(user, password) {
        return false;
    }
    remember(key, now_ms);
    true
}

/// Whether credentials (by `key`) were verified less than `VERIFIED_FOR_MS` before `now_ms`.
fn remembered(key: &[u8; 32], now_ms: u64) -> bool {
    VERIFIED.with(|v| v.borrow().get(key).is_some_and(|until| *until > now_ms))
}

/// Remembers verified credentials; at most `VERIFIED_MAX` (expired ones go first, then all).
fn remember(key: [u8; 32], now_ms: u64) {
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

/// Identifies the caller from the `Authorization` header at `now_ms`.
/// The caller `authorization` makes, or 401 whose challenge names the scope `need` asks for
/// (so a client whose token expired mid-push knows what to ask for again; an invalid token is
/// also flagged `error="invalid_token"`, as RFC 6750 has it).
pub fn authenticate(auth: &AuthConfig, authorization: Option<&str>, now_ms: u64, need: &Need) -> Result<Caller> {
    if auth.users.is_none() {
        return Ok(Caller::Open);
    }
    let Some(header) = authorization else { return Ok(Caller::Anonymous) };
    let scope = scope_of(need);
    let refuse = |detail: &str| auth.unauthorized(detail, scope.as_ref());
    let (scheme, value) = split_authorization(header);
    if scheme.eq_ignore_ascii_case("basic") {
        let (user, password) = basic_credentials(value).ok_or_else(|| refuse("malformed Basic credentials"))?;
        if !check_password(auth, &user, &password, now_ms) {
            return Err(refuse("invalid username or password"));
        }
        return Ok(Caller::User(user));
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return match auth.signer.verify(value, &auth.service, now_ms / 1000) {
            // A refresh token buys tokens at the token endpoint (which reads its callers itself,
            // `token_user`) and is nobody anywhere else.
            Ok(claims) if claims.refresh.is_some() => match need {
                Need::Nothing => Ok(Caller::Anonymous),
                _ => Err(refuse("a refresh token is good only at the token endpoint")),
            },
            Ok(claims) => Ok(Caller::Token(claims)),
            Err(e) => {
                let mut refused = refuse(&format!("invalid token: {e:?}"));
                refused.challenge = refused.challenge.map(|c| format!("{c},error=\"invalid_token\""));
                Err(refused)
            }
        };
    }
    Err(refuse("unsupported authorization scheme"))
}

/// The scope a token must grant to meet `need`; none for needs outside repositories. Clients
/// are told to ask for pull with push, as distribution's challenges do.
pub fn scope_of(need: &Need) -> Option<Scope> {
    let Need::Repo { name, action } = need else { return None };
    let actions = match action {
        Action::Push => Actions::of(&[Action::Pull, Action::Push]),
        a => Actions::of(&[*a]),
    };
    Some(Scope { name: name.clone(), actions })
}

/// Allows the request, or answers 405 (read-only), 401 (the caller may authenticate for more;
/// the challenge names the scope to ask for) or 403 DENIED.
pub fn authorize(auth: &AuthConfig, caller: &Caller, need: &Need) -> Result<()> {
    if auth.read_only && need.writes() {
        return Err(RegistryError::new(Code::Unsupported, "the registry is in read-only mode"));
    }
    match need {
        Need::Nothing | Need::Catalog => Ok(()),
        // Administration takes an administrator's password (Basic) or a token granted the admin
        // scope, asked for explicitly: a token obtained to pull never administers the registry.
        Need::Admin => match caller {
            Caller::Open => Ok(()),
            Caller::User(u) if auth.is_admin(u) => Ok(()),
            Caller::Token(c) if auth.is_admin(&c.sub) && c.is_admin() => Ok(()),
            Caller::User(_) => Err(RegistryError::new(Code::Denied, "administrators only")),
            Caller::Token(c) if !c.sub.is_empty() && !auth.is_admin(&c.sub) => Err(RegistryError::new(Code::Denied, "administrators only")),
            _ => Err(auth.unauthorized_for(&format!("administrators only, with a token for {ADMIN_SCOPE}"), Some(ADMIN_SCOPE))),
        },
        // The login probe: a user, not an anonymous token.
        Need::Login => match caller {
            Caller::Anonymous => Err(auth.unauthorized("authentication required", None)),
            Caller::Token(c) if c.sub.is_empty() => Err(auth.unauthorized("authentication required", None)),
            _ => Ok(()),
        },
        Need::Repo { name, action } => {
            if caller.actions_on(auth, name).contains(*action) {
                return Ok(());
            }
            let scope = scope_of(need).expect("a repository need has a scope");
            let may_get_more = match caller {
                Caller::Anonymous => true,
                // A token narrower than what its user may do: ask for a wider one.
                Caller::Token(c) if !c.sub.is_empty() => auth.rules.allowed(&caller.identity(), name.as_str()).contains(*action),
                Caller::Token(_) => true,
                _ => false,
            };
            if may_get_more {
                Err(auth.unauthorized(&format!("{} on {name} needs authentication", action.as_str()), Some(&scope)))
            } else {
                Err(RegistryError::new(Code::Denied, format!("{} on {name} is not allowed", action.as_str())))
            }
        }
    }
}

/// Who asks the token endpoint for a token: anonymous without credentials, the user with valid
/// Basic credentials or a valid refresh token of theirs; anything else is 401 with a Basic
/// challenge.
pub fn token_user(auth: &AuthConfig, authorization: Option<&str>, now_ms: u64) -> Result<Option<String>> {
    let Some(header) = authorization else { return Ok(None) };
    let refused = || RegistryError::unauthorized("invalid username or password", format!("Basic realm=\"{}\"", auth.service));
    let (scheme, value) = split_authorization(header);
    if scheme.eq_ignore_ascii_case("bearer") {
        return refreshed_user(auth, value, now_ms).map(Some).ok_or_else(refused);
    }
    let creds = if scheme.eq_ignore_ascii_case("basic") { basic_credentials(value) } else { None };
    match creds {
        Some((u, p)) if check_password(auth, &u, &p, now_ms) => Ok(Some(u)),
        _ => Err(refused()),
    }
}

/// How long a refresh token (the web UI's session) stays good, in seconds.
pub const REFRESH_TTL_S: u64 = 8 * 3600;

/// A short fingerprint of a stored password hash: a refresh token carries it, so a changed
/// password (or a removed user) ends every session signed in with the old one.
fn fingerprint(hash: &str) -> String {
    sha256(&["refresh", hash])[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// A refresh token for `user`, whose password was just checked (`None` on an open registry).
pub fn refresh_token(auth: &AuthConfig, user: &str, now_ms: u64) -> Option<String> {
    let hash = auth.users.as_ref()?.hash_of(user)?;
    Some(auth.signer.mint_refresh(user, &auth.service, fingerprint(hash), now_ms / 1000, REFRESH_TTL_S))
}

/// The user of a refresh token that is ours, unexpired, and bound to the user's current password.
fn refreshed_user(auth: &AuthConfig, token: &str, now_ms: u64) -> Option<String> {
    let claims = auth.signer.verify(token, &auth.service, now_ms / 1000).ok()?;
    let hash = auth.users.as_ref()?.hash_of(&claims.sub)?;
    (claims.refresh? == fingerprint(hash)).then_some(claims.sub)
}

/// Whether a token for `user` is granted administration: it asked for [`ADMIN_SCOPE`] among
/// the `requested` scope strings, and it is one of `ADMIN_USERS` (never an anonymous caller,
/// not even of an open registry, which needs no token to administer).
pub fn grant_admin(auth: &AuthConfig, user: Option<&str>, requested: &[&str]) -> bool {
    user.is_some_and(|u| auth.is_admin(u)) && requested.iter().flat_map(|v| v.split(' ')).any(asks_admin)
}

/// The scopes a token grants `user` for the `requested` scope strings (each may hold several,
/// space-separated): each narrowed to what the rules allow; unparsable ones are left out.
pub fn grant(auth: &AuthConfig, user: Option<&str>, requested: &[&str]) -> Vec<Scope> {
    let identity = user.map(|u| Identity::User(u.to_string())).unwrap_or(Identity::Anonymous);
    let open = auth.users.is_none();
    requested
        .iter()
        .flat_map(|v| v.split(' ').filter_map(Scope::parse))
        .map(|s| {
            let allowed = if open { s.actions } else { auth.rules.allowed(&identity, s.name.as_str()) };
            Scope { actions: s.actions.intersect(allowed), ..s }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // htpasswd -B (bcrypt, cost 5): alice/alice-pw, bob/bob-pw.
    const HTPASSWD: &str = "alice:$2b$05$fflHjkMT2rFQa0PZCpjOauBgnlo1MzlqZcySdYQoDjPJSNg4WJcfO\nbob:$2b$05$Xcjef/yN/P6hyz5p6dWGy.YLcBR3QhddGgUemzt8BWyQj3JKPlmpK";
    const RULES: &str = r#"[{"user": "alice", "repos": ["alice/*"], "actions": ["pull", "push", "delete"]},
        {"user": "bob", "repos": ["alice/*"], "actions": ["pull"]},
        {"user": "anonymous", "repos": ["public/*"], "actions": ["pull"]}]"#;
    const NOW: u64 = 1_700_000_000_000;

    fn config(open: bool) -> AuthConfig {
        AuthConfig {
            users: (!open).then(|| Htpasswd::parse(HTPASSWD).unwrap()),
            rules: Rules::parse(RULES).unwrap(),
            signer: TokenSigner::new(b"k"),
            service: "reg".into(),
            realm: "https://reg/token".into(),
            token_ttl: 300,
            read_only: false,
            admins: vec!["alice".into()],
        }
    }

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
    }

    fn repo(action: Action, name: &str) -> Need {
        Need::Repo { name: RepoName::parse(name).unwrap(), action }
    }

    fn token(auth: &AuthConfig, user: Option<&str>, scope: &str) -> Caller {
        let scopes = grant(auth, user, &[scope]);
        let jwt = auth.signer.mint(user, &auth.service, &scopes, grant_admin(auth, user, &[scope]), NOW / 1000, 300);
        authenticate(auth, Some(&format!("Bearer {jwt}")), NOW, &Need::Nothing).unwrap()
    }

    #[test]
    fn verified_passwords_are_remembered_for_five_minutes_in_a_bounded_set() {
        let auth = config(false);
        let hash = auth.users.as_ref().unwrap().hash_of("alice").unwrap().to_string();
        assert!(check_password(&auth, "alice", "alice-pw", NOW));
        let key = sha256(&["alice", "alice-pw", &hash]);
        assert!(remembered(&key, NOW + 5 * 60 * 1000 - 1));
        assert!(!remembered(&key, NOW + 5 * 60 * 1000));
        assert!(!check_password(&auth, "alice", "wrong", NOW));
        assert!(!remembered(&sha256(&["alice", "wrong", &hash]), NOW));
        let len = || VERIFIED.with(|v| v.borrow().len());
        // Full of entries that expire at NOW: they go, alice's stays.
        for i in len()..VERIFIED_MAX {
            remember(sha256(&[&i.to_string()]), NOW - VERIFIED_FOR_MS);
        }
        assert_eq!(len(), VERIFIED_MAX);
        remember(sha256(&["new"]), NOW);
        assert_eq!(len(), 2);
        assert!(remembered(&key, NOW) && remembered(&sha256(&["new"]), NOW));
        // Full of live entries: all go.
        for i in len()..VERIFIED_MAX {
            remember(sha256(&["live", &i.to_string()]), NOW);
        }
        assert_eq!(len(), VERIFIED_MAX);
        remember(sha256(&["last"]), NOW);
        assert_eq!(len(), 1);
        assert!(!remembered(&key, NOW));
    }

    #[test]
    fn identities_and_catalog_visibility() {
        let auth = config(false);
        let anonymous_token = token(&auth, None, "repository:public/x:pull");
        assert_eq!(anonymous_token.identity(), Identity::Anonymous);
        assert_eq!(token(&auth, Some("bob"), "repository:alice/app:pull").identity(), Identity::User("bob".into()));
        let bob = Caller::User("bob".into());
        assert!(bob.sees(&auth, "alice/app"));
        assert!(!bob.sees(&auth, "public/x"));
        assert!(Caller::Anonymous.sees(&auth, "public/x"));
        assert!(!Caller::Anonymous.sees(&auth, "alice/app"));
        assert!(anonymous_token.sees(&auth, "public/x"));
        assert!(Caller::Open.sees(&auth, "anything/at/all"));
    }

    #[test]
    fn authentication() {
        let auth = config(false);
        let who = |h: Option<&str>| authenticate(&auth, h, NOW, &Need::Nothing).map(|c| c.identity()).map_err(|e| e.code);
        assert_eq!(who(None), Ok(Identity::Anonymous));
        assert_eq!(who(Some(&basic("alice", "alice-pw"))), Ok(Identity::User("alice".into())));
        assert_eq!(who(Some(&basic("alice", "wrong"))), Err(Code::Unauthorized));
        assert_eq!(who(Some(&basic("nobody", "x"))), Err(Code::Unauthorized));
        assert_eq!(who(Some("Basic !!!")), Err(Code::Unauthorized));
        assert_eq!(who(Some("Bearer not.a.token")), Err(Code::Unauthorized));
        assert_eq!(who(Some("Digest x")), Err(Code::Unauthorized));
        assert!(matches!(authenticate(&config(true), Some("Digest x"), NOW, &Need::Nothing), Ok(Caller::Open)));
        // A refused token names what the request needs, and says the token is invalid.
        let expired = auth.signer.mint(Some("alice"), &auth.service, &[], false, NOW / 1000 - 3600, 300);
        let e = authenticate(&auth, Some(&format!("Bearer {expired}")), NOW, &repo(Action::Push, "alice/app")).unwrap_err();
        assert_eq!(
            e.challenge.as_deref(),
            Some(r#"Bearer realm="https://reg/token",service="reg",scope="repository:alice/app:pull,push",error="invalid_token""#)
        );
        let e = authenticate(&auth, Some(&basic("alice", "wrong")), NOW, &repo(Action::Pull, "alice/app")).unwrap_err();
        assert_eq!(e.challenge.as_deref(), Some(r#"Bearer realm="https://reg/token",service="reg",scope="repository:alice/app:pull""#));
        let e = authenticate(&auth, Some("Digest x"), NOW, &Need::Login).unwrap_err();
        assert_eq!(e.challenge.as_deref(), Some(r#"Bearer realm="https://reg/token",service="reg""#));
    }

    /// Every need against every kind of caller: allowed, 401 (with the scope to ask for) or 403.
    #[test]
    fn authorization_table() {
        let auth = config(false);
        let alice = Caller::User("alice".into());
        let bob = Caller::User("bob".into());
        let anon = Caller::Anonymous;
        let bob_token = token(&auth, Some("bob"), "repository:alice/app:pull");
        let alice_pull_token = token(&auth, Some("alice"), "repository:alice/app:pull");
        let anon_token = token(&auth, None, "repository:public/x:pull");
        let alice_admin_token = token(&auth, Some("alice"), ADMIN_SCOPE);
        let bob_admin_token = token(&auth, Some("bob"), ADMIN_SCOPE);
        let scope_of = |e: &RegistryError| e.challenge.as_deref().and_then(|c| c.split("scope=").nth(1)).map(|s| s.trim_matches('"').to_string());
        use Action::*;
        #[rustfmt::skip]
        let table: Vec<(&Caller, Need, std::result::Result<(), (Code, Option<&str>)>)> = vec![
            (&alice, repo(Push, "alice/app"), Ok(())),
            (&alice, repo(Delete, "alice/app"), Ok(())),
            (&alice, repo(Pull, "bob/app"), Err((Code::Denied, None))),
            (&bob, repo(Pull, "alice/app"), Ok(())),
            (&bob, repo(Push, "alice/app"), Err((Code::Denied, None))),
            (&anon, repo(Pull, "public/x"), Ok(())),
            (&anon, repo(Pull, "alice/app"), Err((Code::Unauthorized, Some("repository:alice/app:pull")))),
            (&anon, repo(Push, "public/x"), Err((Code::Unauthorized, Some("repository:public/x:pull,push")))),
            (&bob_token, repo(Pull, "alice/app"), Ok(())),
            (&bob_token, repo(Push, "alice/app"), Err((Code::Denied, None))),
            // A token narrower than its user's rights: ask for a wider one.
            (&alice_pull_token, repo(Push, "alice/app"), Err((Code::Unauthorized, Some("repository:alice/app:pull,push")))),
            (&alice_pull_token, repo(Pull, "bob/app"), Err((Code::Denied, None))),
            (&anon_token, repo(Pull, "public/x"), Ok(())),
            (&anon_token, repo(Pull, "alice/app"), Err((Code::Unauthorized, Some("repository:alice/app:pull")))),
            (&alice, Need::Admin, Ok(())),
            (&bob, Need::Admin, Err((Code::Denied, None))),
            (&anon, Need::Admin, Err((Code::Unauthorized, Some(ADMIN_SCOPE)))),
            // An administrator's token for a pull does not administer: ask for the admin scope.
            (&alice_pull_token, Need::Admin, Err((Code::Unauthorized, Some(ADMIN_SCOPE)))),
            (&alice_admin_token, Need::Admin, Ok(())),
            (&bob_admin_token, Need::Admin, Err((Code::Denied, None))),
            (&bob_token, Need::Admin, Err((Code::Denied, None))),
            (&anon_token, Need::Admin, Err((Code::Unauthorized, Some(ADMIN_SCOPE)))),
            (&anon, Need::Login, Err((Code::Unauthorized, None))),
            (&anon_token, Need::Login, Err((Code::Unauthorized, None))),
            (&bob_token, Need::Login, Ok(())),
            (&bob, Need::Login, Ok(())),
            (&anon, Need::Catalog, Ok(())),
            (&anon, Need::Nothing, Ok(())),
        ];
        for (caller, need, want) in table {
            let got = authorize(&auth, caller, &need).map_err(|e| (e.code, scope_of(&e)));
            let want = want.map_err(|(c, s)| (c, s.map(str::to_string)));
            assert_eq!(got, want, "{caller:?} {need:?}");
        }
        // Open registry: everything; read-only: no writes, whoever asks.
        assert!(authorize(&config(true), &Caller::Open, &repo(Delete, "x")).is_ok());
        let ro = AuthConfig { read_only: true, ..config(true) };
        assert_eq!(authorize(&ro, &Caller::Open, &repo(Push, "x")).unwrap_err().code, Code::Unsupported);
        assert!(authorize(&ro, &Caller::Open, &repo(Pull, "x")).is_ok());
    }

    #[test]
    fn token_grants_are_narrowed_to_the_rules() {
        let auth = config(false);
        let granted = |user: Option<&str>, scopes: &[&str]| -> Vec<String> { grant(&auth, user, scopes).iter().map(Scope::to_string).collect() };
        assert_eq!(granted(Some("alice"), &["repository:alice/app:pull,push"]), vec!["repository:alice/app:pull,push"]);
        assert_eq!(granted(Some("bob"), &["repository:alice/app:pull,push"]), vec!["repository:alice/app:pull"]);
        // `*`: every right the caller holds.
        assert_eq!(granted(Some("alice"), &["repository:alice/app:*"]), vec!["repository:alice/app:pull,push,delete"]);
        assert_eq!(granted(Some("bob"), &["repository:alice/app:*"]), vec!["repository:alice/app:pull"]);
        assert_eq!(granted(None, &["repository:alice/app:pull"]), vec!["repository:alice/app:"]);
        // Several scopes in one parameter, several parameters, and ones we do not grant.
        assert_eq!(
            granted(None, &["repository:public/x:pull repository:public/y:push", "registry:catalog:*", "repository:BAD:pull"]),
            vec!["repository:public/x:pull", "repository:public/y:"]
        );
        // Administration: only for ADMIN_USERS, only when asked for.
        assert!(grant_admin(&auth, Some("alice"), &["repository:x:pull registry:admin:*"]));
        assert!(!grant_admin(&auth, Some("alice"), &["repository:x:pull"]));
        assert!(!grant_admin(&auth, Some("bob"), &[ADMIN_SCOPE]));
        assert!(!grant_admin(&auth, None, &[ADMIN_SCOPE]));
        // An open registry grants what is asked.
        assert_eq!(grant(&config(true), None, &["repository:a:push"]).iter().map(Scope::to_string).collect::<Vec<_>>(), vec!["repository:a:push"]);
    }

    #[test]
    fn refresh_tokens_buy_tokens_at_the_endpoint_only_while_the_password_holds() {
        let auth = config(false);
        let refresh = refresh_token(&auth, "bob", NOW).unwrap();
        let bearer = format!("Bearer {refresh}");
        assert_eq!(token_user(&auth, Some(&bearer), NOW).unwrap(), Some("bob".into()));
        assert_eq!(token_user(&auth, Some(&bearer), NOW + REFRESH_TTL_S * 1000 + 60_000).unwrap_err().code, Code::Unauthorized);
        // Not a token for requests: never a login, never access.
        let e = authenticate(&auth, Some(&bearer), NOW, &Need::Login).unwrap_err();
        assert!(e.detail.contains("token endpoint"), "{}", e.detail);
        assert!(authenticate(&auth, Some(&bearer), NOW, &repo(Action::Pull, "alice/app")).is_err());
        assert!(matches!(authenticate(&auth, Some(&bearer), NOW, &Need::Nothing), Ok(Caller::Anonymous)));
        // An access token is not a refresh token.
        let access = auth.signer.mint(Some("bob"), &auth.service, &[], false, NOW / 1000, 300);
        assert!(token_user(&auth, Some(&format!("Bearer {access}")), NOW).is_err());
        // A new password (another hash) ends it; so does a removed user.
        let changed = AuthConfig { users: Some(Htpasswd::parse("bob:$2b$05$fflHjkMT2rFQa0PZCpjOauBgnlo1MzlqZcySdYQoDjPJSNg4WJcfO").unwrap()), ..config(false) };
        assert!(token_user(&changed, Some(&bearer), NOW).is_err());
        let gone = AuthConfig { users: Some(Htpasswd::parse(HTPASSWD.lines().next().unwrap()).unwrap()), ..config(false) };
        assert!(token_user(&gone, Some(&bearer), NOW).is_err());
        // Another key's refresh token is refused; an open registry makes none.
        let other = AuthConfig { signer: TokenSigner::new(b"other"), ..config(false) };
        assert!(token_user(&other, Some(&bearer), NOW).is_err());
        assert!(refresh_token(&config(true), "bob", NOW).is_none() && refresh_token(&auth, "nobody", NOW).is_none());
        assert_eq!(fingerprint("a").len(), 24);
        assert_ne!(fingerprint("a"), fingerprint("b"));
    }

    #[test]
    fn token_endpoint_callers() {
        let auth = config(false);
        assert_eq!(token_user(&auth, None, NOW).unwrap(), None);
        assert_eq!(token_user(&auth, Some(&basic("bob", "bob-pw")), NOW).unwrap(), Some("bob".into()));
        let e = token_user(&auth, Some(&basic("bob", "nope")), NOW).unwrap_err();
        assert_eq!((e.code, e.challenge.as_deref()), (Code::Unauthorized, Some("Basic realm=\"reg\"")));
        assert_eq!(token_user(&auth, Some("Bearer x"), NOW).unwrap_err().code, Code::Unauthorized);
    }
}
