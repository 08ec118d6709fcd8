//! Immutable tags (`IMMUTABLE_TAGS`): tags that, once they exist, never move and are never
//! deleted. Release tags overwritten by mistake are the failure this prevents; pushing the same
//! digest again stays accepted, so a CI job that retries does not fail.
//!
//! ```json
//! [{"repos": ["prod/*"], "tags": ["v*", "latest-release"]}]
//! ```
//!
//! Patterns are globs where `*` matches any run of characters (as in `AUTH_RULES`). The storage
//! enforces a rule with a conditional write (the first push of a tag wins; `storage::tags`), and
//! a move or delete is refused with 403 DENIED naming the rule.

use serde::Deserialize;

use crate::auth::rules::matches;
use crate::oci::name::{RepoName, Tag};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    repos: Vec<String>,
    tags: Vec<String>,
}

/// Every configured rule; none when `IMMUTABLE_TAGS` is unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImmutableTags {
    rules: Vec<Rule>,
}

impl ImmutableTags {
    pub fn parse(json: &str) -> Result<ImmutableTags, String> {
        let rules: Vec<Rule> = serde_json::from_str(json).map_err(|e| format!("IMMUTABLE_TAGS: {e}"))?;
        if let Some(i) = rules.iter().position(|r| r.repos.is_empty() || r.tags.is_empty()) {
            return Err(format!("IMMUTABLE_TAGS: rule {} names no repository or no tag", i + 1));
        }
        Ok(ImmutableTags { rules })
    }

    /// No rule: every tag may move.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule that makes `tag` of `name` immutable, described for a message; `None`: it may
    /// move.
    pub fn rule_for(&self, name: &RepoName, tag: &Tag) -> Option<String> {
        let (i, rule) = self.rules.iter().enumerate().find(|(_, r)| {
            r.repos.iter().any(|p| matches(p, name.as_str())) && r.tags.iter().any(|p| matches(p, tag.as_str()))
        })?;
        Some(format!("IMMUTABLE_TAGS rule {} (repos {:?}, tags {:?})", i + 1, rule.repos, rule.tags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    fn tag(s: &str) -> Tag {
        Tag::parse(s).unwrap()
    }

    #[test]
    fn rules_match_repository_and_tag() {
        let p = ImmutableTags::parse(r#"[{"repos": ["prod/*"], "tags": ["v*"]}, {"repos": ["base"], "tags": ["stable", "lts-*"]}]"#).unwrap();
        let rule = p.rule_for(&name("prod/api"), &tag("v1.2.3")).unwrap();
        assert_eq!(rule, r#"IMMUTABLE_TAGS rule 1 (repos ["prod/*"], tags ["v*"])"#);
        assert!(p.rule_for(&name("prod/api"), &tag("latest")).is_none());
        assert!(p.rule_for(&name("dev/api"), &tag("v1")).is_none());
        assert!(p.rule_for(&name("base"), &tag("lts-2024")).unwrap().starts_with("IMMUTABLE_TAGS rule 2"));
        assert!(p.rule_for(&name("base"), &tag("stable")).is_some());
        assert!(p.rule_for(&name("base/x"), &tag("stable")).is_none());
        assert!(ImmutableTags::default().rule_for(&name("prod/api"), &tag("v1")).is_none());
        assert!(ImmutableTags::default().is_empty() && !p.is_empty());
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in ["{}", "not json", r#"[{"repos": ["a"]}]"#, r#"[{"repos": [], "tags": ["v"]}]"#, r#"[{"repos": ["a"], "tags": []}]"#, r#"[{"repos": ["a"], "tags": ["v"], "x": 1}]"#] {
            assert!(ImmutableTags::parse(bad).unwrap_err().starts_with("IMMUTABLE_TAGS:"), "{bad}");
        }
    }
}
