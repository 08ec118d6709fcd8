//! Access control: who the caller is (anonymous, an htpasswd user, or the bearer of a token we
//! signed) and what each request needs (pull, push or delete on a repository).
//!
//! - `access`: the configuration, the caller, and the decisions (authenticate, authorize: allow,
//!   401 with the scope to ask for, or 403; what a token request is granted).
//! - `rules`: configured access rules, repository name patterns → actions, per user.
//! - `htpasswd`: the users and their bcrypt password hashes (from a secret).
//! - `token`: the Docker token flow's JWTs (HS256): minting with the granted scopes, verifying
//!   signature, `exp`, `nbf`, `iss` and `aud` on every request without a storage read.
//! - `scope`: `repository:<name>:<actions>` scopes and the `WWW-Authenticate` challenge.
//! - `upload_url`: the HMAC that makes upload URLs unforgeable.
//!
//! Everything here is pure; the wasm side (`api`) only reads headers, the clock and settings.

pub mod access;
pub mod htpasswd;
pub mod rules;
pub mod scope;
pub mod token;
pub mod upload_url;

use crate::oci::name::RepoName;
use crate::routes::Route;

/// One right on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        match s.trim() {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actions(u8);

impl Actions {
    pub const NONE: Actions = Actions(0);
    pub const ALL: Actions = Actions(0b111);

    pub fn of(actions: &[Action]) -> Actions {
        Actions(actions.iter().fold(0, |bits, a| bits | a.bit()))
    }

    pub fn contains(self, a: Action) -> bool {
        self.0 & a.bit() != 0
    }

    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    pub fn intersect(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// `pull,push,delete` order, comma-separated.
    pub fn to_list(self) -> Vec<&'static str> {
        [Action::Pull, Action::Push, Action::Delete].into_iter().filter(|a| self.contains(*a)).map(Action::as_str).collect()
    }

    /// Parses `pull,push`. `*` means every action (the Docker token spec's wildcard: a token
    /// request for `repository:x:*` is granted whatever the caller holds); other unknown actions
    /// are ignored.
    pub fn parse_list(s: &str) -> Actions {
        if s.split(',').any(|a| a.trim() == "*") {
            return Actions::ALL;
        }
        Actions::of(&s.split(',').filter_map(Action::parse).collect::<Vec<_>>())
    }
}

/// What a request needs before it may be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// The token endpoint, which authenticates its callers itself.
    Nothing,
    /// `/v2/`: any authenticated caller (the login probe), or anyone when open.
    Login,
    /// The catalog: served to anyone, filtered to what the caller may pull.
    Catalog,
    /// Registry administration: a user listed in `ADMIN_USERS` (anyone when open).
    Admin,
    /// An action on a repository. A push (every upload endpoint and manifest PUT) is asked for
    /// as `pull,push`, as clients do.
    Repo { name: RepoName, action: Action },
}

impl Need {
    /// Whether the request writes (refused in read-only mode).
    pub fn writes(&self) -> bool {
        matches!(self, Need::Repo { action: Action::Push | Action::Delete, .. })
    }
}

/// The need of `method` on `route`.
pub fn need(route: &Route, method: &str) -> Need {
    let repo = |name: &RepoName, action| Need::Repo { name: name.clone(), action };
    match route {
        Route::Token | Route::UiInfo => Need::Nothing,
        Route::Lifecycle | Route::Stats => Need::Admin,
        Route::Base => Need::Login,
        Route::Catalog => Need::Catalog,
        Route::Tags { name } | Route::Referrers { name, .. } | Route::UiTags { name } => repo(name, Action::Pull),
        Route::Manifest { name, .. } | Route::InvalidManifestRef { name, .. } | Route::Blob { name, .. } => match method {
            "PUT" => repo(name, Action::Push),
            "DELETE" => repo(name, Action::Delete),
            _ => repo(name, Action::Pull),
        },
        Route::UploadStart { name } | Route::Upload { name, .. } => repo(name, Action::Push),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions() {
        let a = Actions::parse_list("push,pull,bogus");
        assert!(a.contains(Action::Pull) && a.contains(Action::Push) && !a.contains(Action::Delete));
        assert_eq!(a.to_list(), vec!["pull", "push"]);
        assert_eq!(Actions::parse_list("*"), Actions::ALL);
        assert!(Actions::of(&[Action::Pull, Action::Pull]).contains(Action::Pull), "a repeated action stays");
        assert_eq!(Actions::parse_list("pull,*"), Actions::ALL);
        assert_eq!(Actions::parse_list("*").intersect(Actions::of(&[Action::Pull])).to_list(), vec!["pull"]);
        assert_eq!(Actions::ALL.intersect(Actions::of(&[Action::Delete])).to_list(), vec!["delete"]);
        assert!(Actions::NONE.is_empty());
    }

    #[test]
    fn needs_by_route_and_method() {
        let r = |p: &str| Route::parse(p).unwrap();
        let n = RepoName::parse("a/b").unwrap();
        let d = "sha256:".to_string() + &"0".repeat(64);
        assert_eq!(need(&r("/v2/"), "GET"), Need::Login);
        assert_eq!(need(&r("/token"), "GET"), Need::Nothing);
        assert_eq!(need(&r("/admin/lifecycle"), "POST"), Need::Admin);
        assert_eq!(need(&r("/admin/stats"), "GET"), Need::Admin);
        assert_eq!(need(&r("/v2/_catalog"), "GET"), Need::Catalog);
        assert_eq!(need(&r("/v2/_ui/info"), "GET"), Need::Nothing);
        assert_eq!(need(&r("/v2/a/b/_ui/tags"), "GET"), Need::Repo { name: n.clone(), action: Action::Pull });
        assert_eq!(need(&r("/v2/a/b/tags/list"), "GET"), Need::Repo { name: n.clone(), action: Action::Pull });
        assert_eq!(need(&r("/v2/a/b/manifests/v1"), "HEAD"), Need::Repo { name: n.clone(), action: Action::Pull });
        assert_eq!(need(&r("/v2/a/b/manifests/v1"), "PUT"), Need::Repo { name: n.clone(), action: Action::Push });
        assert_eq!(need(&r("/v2/a/b/manifests/v1"), "DELETE"), Need::Repo { name: n.clone(), action: Action::Delete });
        assert_eq!(need(&r(&format!("/v2/a/b/blobs/{d}")), "DELETE"), Need::Repo { name: n.clone(), action: Action::Delete });
        assert_eq!(need(&r("/v2/a/b/blobs/uploads/"), "POST"), Need::Repo { name: n.clone(), action: Action::Push });
        assert!(need(&r("/v2/a/b/blobs/uploads/"), "POST").writes());
        assert!(!need(&r("/v2/a/b/manifests/v1"), "GET").writes());
    }
}
