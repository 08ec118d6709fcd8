//! Retention (`RETENTION`): which tags and manifests of a repository a lifecycle run deletes, so
//! old builds do not pile up. The first rule whose `repos` pattern matches a repository applies:
//!
//! ```json
//! [{"repos": ["ci/*"], "keep_last": 20, "keep_tags": ["latest", "v*"],
//!   "older_than_days": 90, "untagged_after_days": 7}]
//! ```
//!
//! - Tags: a tag a `keep_tags` pattern matches always stays. With `keep_last` and/or
//!   `older_than_days`, any other tag goes when it is none of the `keep_last` most recently
//!   pushed of those other tags, and was pushed at least `older_than_days` ago. With neither,
//!   no tag goes. (Immutable tags never go: the
//!   storage step asks `IMMUTABLE_TAGS` before deleting.)
//! - Manifests, with `untagged_after_days`: a manifest stays when a remaining tag points at it,
//!   it was pushed less than that many days ago, or it is a child of a manifest that stays.
//!   A referrer (a manifest with a `subject`) stays exactly when its subject stays: referrers of
//!   a deleted manifest go with it, whatever their age, and a signature keeps nothing alive.
//!   A referrer whose subject is not stored is judged like any untagged manifest.
//!
//! Pure: the storage step (`storage::retention`) takes the snapshot and applies the verdict,
//! checking again before each deletion that nothing changed under it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::auth::rules::matches;
use crate::oci::digest::Digest;
use crate::oci::name::RepoName;

const DAY_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub repos: Vec<String>,
    #[serde(default)]
    pub keep_last: Option<usize>,
    #[serde(default)]
    pub keep_tags: Vec<String>,
    #[serde(default)]
    pub older_than_days: Option<u64>,
    #[serde(default)]
    pub untagged_after_days: Option<u64>,
}

/// Every configured rule, in order; none when `RETENTION` is unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    rules: Vec<Rule>,
}

impl Retention {
    pub fn parse(json: &str) -> Result<Retention, String> {
        let rules: Vec<Rule> = serde_json::from_str(json).map_err(|e| format!("RETENTION: {e}"))?;
        for (i, r) in rules.iter().enumerate() {
            if r.repos.is_empty() {
                return Err(format!("RETENTION: rule {} names no repository", i + 1));
            }
            if r.keep_last.is_none() && r.older_than_days.is_none() && r.untagged_after_days.is_none() {
                return Err(format!("RETENTION: rule {} deletes nothing (no keep_last, older_than_days or untagged_after_days)", i + 1));
            }
        }
        Ok(Retention { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule for `name` (the first whose pattern matches), if any.
    pub fn rule_for(&self, name: &RepoName) -> Option<&Rule> {
        self.rules.iter().find(|r| r.repos.iter().any(|p| matches(p, name.as_str())))
    }
}

/// A tag as the run saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenTag {
    pub tag: String,
    pub digest: Digest,
    /// When it was last pushed (ms since the epoch).
    pub pushed: u64,
}

/// A stored manifest as the run saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenManifest {
    pub digest: Digest,
    /// When it was last pushed (ms since the epoch).
    pub pushed: u64,
    /// The manifests an index names.
    pub children: Vec<Digest>,
    pub subject: Option<Digest>,
}

/// What goes: tags (by name, with the digest they pointed at) and manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub tags: Vec<(String, Digest)>,
    pub manifests: Vec<Digest>,
}

/// What `rule` deletes at `now` from a repository holding `tags` and `manifests`.
pub fn judge(rule: &Rule, tags: &[SeenTag], manifests: &[SeenManifest], now: u64) -> Verdict {
    let mut ordered: Vec<&SeenTag> = tags.iter().collect();
    ordered.sort_by(|a, b| b.pushed.cmp(&a.pushed).then_with(|| a.tag.cmp(&b.tag)));
    let prunes_tags = rule.keep_last.is_some() || rule.older_than_days.is_some();
    let named = |t: &SeenTag| rule.keep_tags.iter().any(|p| matches(p, &t.tag));
    // `i`: the tag's place among the tags no `keep_tags` pattern names, newest first.
    let goes = |i: usize, t: &SeenTag| {
        prunes_tags
            && rule.keep_last.is_none_or(|n| i >= n)
            && rule.older_than_days.is_none_or(|d| now.saturating_sub(t.pushed) >= d * DAY_MS)
    };
    let mut verdict = Verdict::default();
    let mut roots: BTreeSet<&Digest> = BTreeSet::new();
    let mut unnamed = 0;
    for t in ordered {
        let i = if named(t) {
            roots.insert(&t.digest);
            continue;
        } else {
            unnamed += 1;
            unnamed - 1
        };
        if goes(i, t) {
            verdict.tags.push((t.tag.clone(), t.digest.clone()));
        } else {
            roots.insert(&t.digest);
        }
    }
    let Some(days) = rule.untagged_after_days else { return verdict };
    let stored: BTreeSet<&Digest> = manifests.iter().map(|m| &m.digest).collect();
    let is_referrer = |m: &SeenManifest| m.subject.as_ref().is_some_and(|s| stored.contains(s));
    for m in manifests {
        if !is_referrer(m) && now.saturating_sub(m.pushed) < days * DAY_MS {
            roots.insert(&m.digest);
        }
    }
    // What stays: the roots, the children of what stays, the referrers of what stays.
    let by_digest: BTreeMap<&Digest, &SeenManifest> = manifests.iter().map(|m| (&m.digest, m)).collect();
    let mut referrers: BTreeMap<&Digest, Vec<&Digest>> = BTreeMap::new();
    for m in manifests.iter().filter(|m| is_referrer(m)) {
        referrers.entry(m.subject.as_ref().expect("a referrer")).or_default().push(&m.digest);
    }
    let mut stays: BTreeSet<&Digest> = BTreeSet::new();
    let mut todo: Vec<&Digest> = roots.into_iter().collect();
    while let Some(d) = todo.pop() {
        if !stays.insert(d) {
            continue;
        }
        if let Some(m) = by_digest.get(d) {
            todo.extend(m.children.iter());
        }
        todo.extend(referrers.get(d).into_iter().flatten());
    }
    verdict.manifests = manifests.iter().filter(|m| !stays.contains(&m.digest)).map(|m| m.digest.clone()).collect();
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::Algorithm;

    const NOW: u64 = 1_000 * DAY_MS;

    fn d(s: &str) -> Digest {
        Digest::of(Algorithm::Sha256, s.as_bytes())
    }

    fn tag(t: &str, m: &str, days_ago: u64) -> SeenTag {
        SeenTag { tag: t.into(), digest: d(m), pushed: NOW - days_ago * DAY_MS }
    }

    fn manifest(m: &str, days_ago: u64) -> SeenManifest {
        SeenManifest { digest: d(m), pushed: NOW - days_ago * DAY_MS, children: vec![], subject: None }
    }

    fn rule(json: &str) -> Rule {
        Retention::parse(&format!("[{json}]")).unwrap().rules.remove(0)
    }

    fn gone_tags(v: &Verdict) -> Vec<&str> {
        let mut t: Vec<&str> = v.tags.iter().map(|(t, _)| t.as_str()).collect();
        t.sort();
        t
    }

    fn gone_manifests(v: &Verdict) -> BTreeSet<Digest> {
        v.manifests.iter().cloned().collect()
    }

    #[test]
    fn parsing_refuses_rules_that_match_nothing_or_delete_nothing() {
        assert!(Retention::parse(r#"[{"repos": [], "keep_last": 1}]"#).unwrap_err().contains("rule 1 names no repository"));
        assert!(Retention::parse(r#"[{"repos": ["a"], "keep_tags": ["v*"]}]"#).unwrap_err().contains("deletes nothing"));
        assert!(Retention::parse(r#"[{"repos": ["a"], "keep_lats": 3}]"#).unwrap_err().contains("unknown field"));
        assert!(Retention::parse("{").is_err());
        let r = Retention::parse(r#"[{"repos": ["ci/*"], "keep_last": 2}, {"repos": ["*"], "untagged_after_days": 7}]"#).unwrap();
        assert_eq!(r.rule_for(&RepoName::parse("ci/app").unwrap()).unwrap().keep_last, Some(2), "first match wins");
        assert_eq!(r.rule_for(&RepoName::parse("other").unwrap()).unwrap().untagged_after_days, Some(7));
        assert!(Retention::parse(r#"[{"repos": ["ci/*"], "keep_last": 2}]"#).unwrap().rule_for(&RepoName::parse("prod/x").unwrap()).is_none());
        assert!(Retention::default().is_empty());
        assert!(!r.is_empty());
    }

    #[test]
    fn keep_last_keeps_the_newest_pushes_and_keep_tags_the_named_ones() {
        let tags = [tag("b1", "m1", 5), tag("b2", "m2", 4), tag("b3", "m3", 3), tag("latest", "m1", 1), tag("v1.0", "m1", 0)];
        let v = judge(&rule(r#"{"repos": ["*"], "keep_last": 2, "keep_tags": ["latest", "v*"]}"#), &tags, &[], NOW);
        assert_eq!(gone_tags(&v), ["b1"], "named tags, however new, take no place among the last 2");
        assert_eq!(v.tags[0].1, d("m1"), "with the digest it pointed at");
        assert!(v.manifests.is_empty(), "no untagged rule: manifests stay");
        // Same push time: the name decides, so runs agree.
        let tied = [tag("a", "m", 1), tag("b", "m", 1)];
        assert_eq!(gone_tags(&judge(&rule(r#"{"repos": ["*"], "keep_last": 1}"#), &tied, &[], NOW)), ["b"]);
    }

    #[test]
    fn older_than_days_alone_and_with_keep_last() {
        let tags = [tag("new", "m1", 1), tag("mid", "m2", 30), tag("old", "m3", 90), tag("older", "m4", 200)];
        assert_eq!(gone_tags(&judge(&rule(r#"{"repos": ["*"], "older_than_days": 90}"#), &tags, &[], NOW)), ["old", "older"]);
        // Both: only what is beyond the newest N *and* old enough.
        assert_eq!(gone_tags(&judge(&rule(r#"{"repos": ["*"], "older_than_days": 20, "keep_last": 3}"#), &tags, &[], NOW)), ["older"]);
        // Untagged only: no tag goes.
        assert!(judge(&rule(r#"{"repos": ["*"], "untagged_after_days": 1}"#), &tags, &[], NOW).tags.is_empty());
    }

    #[test]
    fn untagged_manifests_go_after_their_days_with_the_tags_just_deleted() {
        let tags = [tag("keep", "tagged", 49), tag("drop", "was-tagged", 50)];
        let manifests = [manifest("tagged", 50), manifest("was-tagged", 50), manifest("old-untagged", 10), manifest("young-untagged", 2)];
        let v = judge(&rule(r#"{"repos": ["*"], "keep_last": 1, "untagged_after_days": 7}"#), &tags, &manifests, NOW);
        assert_eq!(gone_tags(&v), ["drop"]);
        assert_eq!(gone_manifests(&v), [d("was-tagged"), d("old-untagged")].into_iter().collect());
        // Exactly at the boundary it goes; a millisecond younger it stays.
        let edge = [SeenManifest { pushed: NOW - 7 * DAY_MS + 1, ..manifest("edge", 0) }, manifest("at", 7)];
        let v = judge(&rule(r#"{"repos": ["*"], "untagged_after_days": 7}"#), &[], &edge, NOW);
        assert_eq!(gone_manifests(&v), [d("at")].into_iter().collect());
    }

    #[test]
    fn an_index_keeps_its_children_and_referrers_follow_their_subject() {
        let index = SeenManifest { children: vec![d("amd64"), d("arm64")], ..manifest("index", 30) };
        let sig = |name: &str, subject: &str| SeenManifest { subject: Some(d(subject)), ..manifest(name, 0) };
        let manifests = [
            index.clone(),
            manifest("amd64", 30),
            manifest("arm64", 30),
            sig("index-signature", "index"),
            sig("signature-of-signature", "index-signature"),
            manifest("lonely", 30),
            sig("lonely-sbom", "lonely"),
            // A referrer pushed before its subject: judged by its own age.
            SeenManifest { subject: Some(d("never-pushed")), ..manifest("early-referrer", 30) },
        ];
        let tags = [tag("release", "index", 30)];
        let v = judge(&rule(r#"{"repos": ["*"], "untagged_after_days": 7}"#), &tags, &manifests, NOW);
        // The young SBOM of a deleted manifest goes with it, whatever its age.
        assert_eq!(gone_manifests(&v), [d("lonely"), d("lonely-sbom"), d("early-referrer")].into_iter().collect());
        // Untag the index: the whole family goes.
        let v = judge(&rule(r#"{"repos": ["*"], "keep_last": 0, "untagged_after_days": 7}"#), &tags, &manifests, NOW);
        assert_eq!(v.manifests.len(), manifests.len());
        // A young index keeps old children.
        let young = [SeenManifest { pushed: NOW, ..index }, manifest("amd64", 30), manifest("arm64", 30)];
        assert!(judge(&rule(r#"{"repos": ["*"], "untagged_after_days": 7}"#), &[], &young, NOW).manifests.is_empty());
    }
}
