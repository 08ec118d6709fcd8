//! Token scopes (`repository:<name>:<actions>`) and the `WWW-Authenticate` challenge.

use super::Actions;
use crate::oci::name::RepoName;

/// A requested or granted scope on one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub name: RepoName,
    pub actions: Actions,
}

impl Scope {
    /// Parses `repository:<name>:<actions>`; other resource types (e.g. `registry:catalog:*`)
    /// and malformed scopes are `None` (ignored, as distribution does).
    pub fn parse(s: &str) -> Option<Scope> {
        let rest = s.strip_prefix("repository:")?;
        let (name, actions) = rest.rsplit_once(':')?;
        Some(Scope { name: RepoName::parse(name).ok()?, actions: Actions::parse_list(actions) })
    }

    pub fn to_string(&self) -> String {
        format!("repository:{}:{}", self.name, self.actions.to_list().join(","))
    }
}

/// The scope of registry administration (`/admin/...`): granted only to `ADMIN_USERS`, only
/// when asked for, so a token obtained for a pull never administers the registry.
pub const ADMIN_SCOPE: &str = "registry:admin:*";

/// Whether a requested scope string asks for administration (`registry:admin:<any actions>`).
pub fn asks_admin(s: &str) -> bool {
    s.strip_prefix("registry:admin:").is_some()
}

/// `Bearer realm="<realm>",service="<service>"[,scope="<scope>"]`.
pub fn challenge(realm: &str, service: &str, scope: Option<&str>) -> String {
    let mut c = format!("Bearer realm=\"{realm}\",service=\"{service}\"");
    if let Some(s) = scope {
        c.push_str(&format!(",scope=\"{s}\""));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Action;

    #[test]
    fn parse_and_print() {
        let s = Scope::parse("repository:team/app:pull,push").unwrap();
        assert_eq!(s.name.as_str(), "team/app");
        assert!(s.actions.contains(Action::Push));
        assert_eq!(s.to_string(), "repository:team/app:pull,push");
        assert!(Scope::parse("registry:catalog:*").is_none());
        assert!(Scope::parse("repository:UPPER:pull").is_none());
        assert!(Scope::parse("repository:noactions").is_none());
        assert_eq!(
            challenge("http://r/token", "reg", Some(&s.to_string())),
            r#"Bearer realm="http://r/token",service="reg",scope="repository:team/app:pull,push""#
        );
        assert_eq!(challenge("http://r/token", "reg", None), r#"Bearer realm="http://r/token",service="reg""#);
        assert!(asks_admin(ADMIN_SCOPE) && asks_admin("registry:admin:pull"));
        assert!(!asks_admin("registry:catalog:*") && !asks_admin("repository:registry/admin:pull") && !asks_admin("registry:admin"));
    }
}
