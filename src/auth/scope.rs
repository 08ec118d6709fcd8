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

/// `Bearer realm="<realm>",service="<service>"[,scope="<scope>"]`.
pub fn challenge(realm: &str, service: &str, scope: Option<&Scope>) -> String {
    let mut c = format!("Bearer realm=\"{realm}\",service=\"{service}\"");
    if let Some(s) = scope {
        c.push_str(&format!(",scope=\"{}\"", s.to_string()));
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
            challenge("http://r/token", "reg", Some(&s)),
            r#"Bearer realm="http://r/token",service="reg",scope="repository:team/app:pull,push""#
        );
        assert_eq!(challenge("http://r/token", "reg", None), r#"Bearer realm="http://r/token",service="reg""#);
    }
}
