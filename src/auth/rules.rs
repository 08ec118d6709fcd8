//! Access rules: for a user (or anyone authenticated, or anonymous callers), repository name
//! patterns and the actions allowed on them. Configured as JSON in `AUTH_RULES`:
//!
//! ```json
//! [{"user": "alice", "repos": ["alice/*", "shared"], "actions": ["pull", "push", "delete"]},
//!  {"user": "*", "repos": ["*"], "actions": ["pull"]},
//!  {"user": "anonymous", "repos": ["public/*"], "actions": ["pull"]}]
//! ```
//!
//! `user` is a user name, `*` (any authenticated user) or `anonymous`. In a pattern `*` matches
//! any run of characters, `/` included. A caller's rights on a repository are the union of every
//! rule that matches. Without rules, every authenticated user may do everything and anonymous
//! callers nothing.

use serde::Deserialize;

use super::{Action, Actions};

#[derive(Debug, Clone, Deserialize)]
struct Rule {
    user: String,
    repos: Vec<String>,
    actions: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Option<Vec<(String, Vec<String>, Actions)>>,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    User(String),
}

impl Rules {
    /// The default: authenticated users may do everything, anonymous callers nothing.
    pub fn authenticated_only() -> Rules {
        Rules { rules: None }
    }

    pub fn parse(json: &str) -> Result<Rules, String> {
        let rules: Vec<Rule> = serde_json::from_str(json).map_err(|e| format!("AUTH_RULES: {e}"))?;
        let mut out = Vec::new();
        for r in rules {
            let mut actions = Vec::new();
            for a in &r.actions {
                actions.push(Action::parse(a).ok_or_else(|| format!("AUTH_RULES: unknown action {a:?}"))?);
            }
            out.push((r.user, r.repos, Actions::of(&actions)));
        }
        Ok(Rules { rules: Some(out) })
    }

    /// What `who` may do on repository `repo`.
    pub fn allowed(&self, who: &Identity, repo: &str) -> Actions {
        let Some(rules) = &self.rules else {
            return match who {
                Identity::Anonymous => Actions::NONE,
                Identity::User(_) => Actions::ALL,
            };
        };
        rules
            .iter()
            .filter(|(user, _, _)| match who {
                Identity::Anonymous => user == "anonymous",
                Identity::User(name) => user == "*" || user == name,
            })
            .filter(|(_, repos, _)| repos.iter().any(|p| matches(p, repo)))
            .fold(Actions::NONE, |acc, (_, _, a)| acc.union(*a))
    }
}

/// Glob match where `*` matches any run of characters.
pub fn matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(matches("*", "a/b/c"));
        assert!(matches("team/*", "team/app/x"));
        assert!(!matches("team/*", "teamx/app"));
        assert!(matches("*/app", "a/b/app"));
        assert!(matches("a*b*c", "a-x-b-y-c"));
        assert!(!matches("a*b*c", "a-x-c"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
        assert!(!matches("ab*ba", "aba"));
        // The fixed ends may meet but not overlap.
        assert!(matches("ab*ab", "abab"));
        assert!(!matches("aba*a", "aba"));
        // Each middle part is found after the one before it.
        assert!(!matches("*ab*ab*", "ab"));
        assert!(matches("*ab*ab*", "abab"));
    }

    #[test]
    fn rules_union_per_user_any_user_and_anonymous() {
        let rules = Rules::parse(
            r#"[{"user":"alice","repos":["alice/*"],"actions":["pull","push","delete"]},
                {"user":"*","repos":["*"],"actions":["pull"]},
                {"user":"bob","repos":["shared"],"actions":["push"]},
                {"user":"anonymous","repos":["public/*"],"actions":["pull"]}]"#,
        )
        .unwrap();
        let alice = Identity::User("alice".into());
        let bob = Identity::User("bob".into());
        assert_eq!(rules.allowed(&alice, "alice/app"), Actions::ALL);
        assert_eq!(rules.allowed(&alice, "bob/app").to_list(), vec!["pull"]);
        assert_eq!(rules.allowed(&bob, "shared").to_list(), vec!["pull", "push"]);
        assert_eq!(rules.allowed(&bob, "alice/app").to_list(), vec!["pull"]);
        assert_eq!(rules.allowed(&Identity::Anonymous, "public/x").to_list(), vec!["pull"]);
        assert!(rules.allowed(&Identity::Anonymous, "alice/app").is_empty());
    }

    #[test]
    fn defaults_and_bad_config() {
        let d = Rules::authenticated_only();
        assert_eq!(d.allowed(&Identity::User("x".into()), "any"), Actions::ALL);
        assert!(d.allowed(&Identity::Anonymous, "any").is_empty());
        assert!(Rules::parse(r#"[{"user":"a","repos":["*"],"actions":["fly"]}]"#).is_err());
        assert!(Rules::parse("not json").is_err());
    }
}
