//! The retention step of a lifecycle run (`RETENTION`, judged by `policy::retention`).
//!
//! For each repository a rule names, the step takes a snapshot and applies the verdict:
//! - The snapshot is the tags with their push times (the listing of the current links), and the
//!   revisions with theirs. A tag's digest is read off the newest tag index entry under the
//!   revisions (the same listing: no read per tag). Each revision link is read through the fact
//!   cache for its media type and subject, and an index's bytes for its children.
//! - Every deletion is checked again first, so a push during the run is never undone:
//!   - a tag goes only if it still points where it did;
//!   - a manifest goes only if no tag points at it now;
//!   - an immutable tag (`IMMUTABLE_TAGS`) never goes.
//!
//!   An index pushed during the run that names a manifest judged untagged is not seen: it may
//!   lose that child. Rules with `untagged_after_days` of a day or more make that unlikely, as
//!   the child must have been untagged that long.
//! - The garbage collection then frees the blobs nothing names any more.
//!
//! Resumable: the cursor (`gc/retention`) moves past a repository only once its deletions are
//! done. A run that stops mid-repository leaves the rest of the verdict in the cursor; the next
//! run carries it on (re-checking each deletion as always) if it is less than an hour old, else
//! judges the repository again. A dry run starts from the first repository, deletes nothing,
//! writes no cursor, and reports what would go.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::facts::{self, FactCache};
use super::paths::PathSpec;
use super::{catalog, cursor, manifests, tags, Bucket};
use crate::oci::digest::Digest;
use crate::oci::error::Result;
use crate::oci::manifest::{self, DOCKER_LIST, OCI_INDEX};
use crate::oci::name::{Reference, RepoName, Tag};
use crate::policy::retention::{judge, Rule, SeenManifest, SeenTag};

/// The rule for a repository (None: retention does not apply to it).
pub type RuleFor<'a> = &'a dyn Fn(&RepoName) -> Option<&'a Rule>;

/// The immutable-tag rule naming a tag of a repository, if any (such a tag never goes).
pub type ImmutableFor<'a> = &'a dyn Fn(&RepoName, &Tag) -> Option<String>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    /// The catalog entry before the repository to judge next (None: from the start).
    after_repo: Option<String>,
    /// What is left to delete of the next repository's verdict, when a run stopped midway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<Pending>,
}

/// The rest of a verdict, kept for the next run (so it need not take the snapshot again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    repo: String,
    /// When the verdict was reached (ms); one older than [`VERDICT_TTL_MS`] is reached again.
    judged: u64,
    doomed: VecDeque<Doomed>,
}

/// How long a saved verdict may be carried on (its deletions are re-checked one by one anyway).
pub const VERDICT_TTL_MS: u64 = 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Doomed {
    Tag { tag: String, digest: String },
    Manifest { digest: String },
}

/// What one step did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Retained {
    pub repositories: u64,
    pub tags_scanned: u64,
    pub manifests_scanned: u64,
    pub tags_deleted: u64,
    pub manifests_deleted: u64,
    /// Bucket and cache operations the step made.
    pub operations: u64,
    /// The step went through every repository (the next one starts over).
    pub finished: bool,
    /// `repository:tag` and `repository@digest` of each deletion.
    pub deleted: Vec<String>,
    /// What the verdict named but the step left, and why (pushed again, immutable).
    pub kept: Vec<String>,
    /// What the step removed (none in a dry run), to be announced.
    #[serde(skip)]
    pub removed: Vec<super::Removal>,
}

/// One step at `now` within about `budget` operations. The first repository of a run is always
/// judged, and may spend `budget` on deletions after its snapshot, so every run makes progress;
/// the rest of the verdict of a repository left midway is carried on by the next run (for up
/// to [`VERDICT_TTL_MS`], each deletion re-checked; after that it is judged again).
pub async fn step<B, F>(bucket: &B, facts: &F, now: u64, budget: u64, dry_run: bool, rule_for: RuleFor<'_>, immutable: ImmutableFor<'_>) -> Result<Retained>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
{
    let mut cursor: Cursor = cursor::load(bucket, &PathSpec::RetentionCursor, dry_run).await?;
    let mut out = Retained { operations: u64::from(!dry_run), ..Default::default() };
    'repos: loop {
        let page = catalog::repositories(bucket, cursor.after_repo.as_deref(), 100).await?;
        out.operations += 1;
        for repo in &page.items {
            let Ok(name) = RepoName::parse(repo) else { continue };
            if let Some(rule) = rule_for(&name) {
                if out.repositories > 0 && out.operations >= budget {
                    break 'repos;
                }
                out.repositories += 1;
                let mut doomed = match cursor.pending.take() {
                    Some(p) if p.repo == *repo && now.saturating_sub(p.judged) < VERDICT_TTL_MS => p.doomed,
                    _ => {
                        let (seen_tags, seen_manifests) = snapshot(bucket, facts, &name, &mut out.operations).await?;
                        out.tags_scanned += seen_tags.len() as u64;
                        out.manifests_scanned += seen_manifests.len() as u64;
                        let verdict = judge(rule, &seen_tags, &seen_manifests, now);
                        let tags = verdict.tags.into_iter().map(|(tag, d)| Doomed::Tag { tag, digest: d.to_string() });
                        tags.chain(verdict.manifests.into_iter().map(|d| Doomed::Manifest { digest: d.to_string() })).collect()
                    }
                };
                // The first repository of a run may spend the budget on deletions after its
                // snapshot, so every run makes progress; the others stop at the budget. What
                // is left waits in the cursor for the next run.
                let stop_at = if out.repositories == 1 { out.operations + budget } else { budget };
                while let Some(next) = doomed.front().cloned() {
                    if out.operations >= stop_at && !dry_run {
                        cursor.pending = Some(Pending { repo: repo.clone(), judged: now, doomed });
                        break 'repos;
                    }
                    doomed.pop_front();
                    apply(bucket, facts, &name, next, dry_run, immutable, &mut out).await?;
                }
            }
            cursor.after_repo = Some(repo.clone());
        }
        if !page.more {
            out.finished = true;
            break;
        }
    }
    cursor::save(bucket, &PathSpec::RetentionCursor, &cursor, out.finished, dry_run).await?;
    Ok(out)
}

/// Deletes one doomed tag or manifest of `name` (in a dry run, only reports it), unless it
/// changed since it was judged or is immutable; records what it did in `out`.
async fn apply<B, F>(bucket: &B, facts: &F, name: &RepoName, doomed: Doomed, dry_run: bool, immutable: ImmutableFor<'_>, out: &mut Retained) -> Result<()>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
{
    match doomed {
        Doomed::Tag { tag, digest } => {
            let (Ok(tag), Ok(digest)) = (Tag::parse(&tag), Digest::parse(&digest)) else { return Ok(()) };
            if let Some(rule) = immutable(name, &tag) {
                out.kept.push(format!("{name}:{tag} (immutable by {rule})"));
                return Ok(());
            }
            if !dry_run {
                out.operations += 3;
                if tags::resolve_tag(bucket, name, &tag).await?.as_ref() != Some(&digest) {
                    out.kept.push(format!("{name}:{tag} (pushed again during the run)"));
                    return Ok(());
                }
                tags::remove(bucket, facts, name, &tag, &digest).await?;
                out.removed.push(super::Removal { repository: name.to_string(), digest: digest.to_string(), tag: Some(tag.to_string()) });
            }
            out.tags_deleted += 1;
            out.deleted.push(format!("{name}:{tag}"));
        }
        Doomed::Manifest { digest } => {
            let Ok(digest) = Digest::parse(&digest) else { return Ok(()) };
            if !dry_run {
                out.operations += 2;
                if let Some(tag) = tags::pointing_at(bucket, name, &digest).await?.first() {
                    out.kept.push(format!("{name}@{digest} (tagged {tag} during the run)"));
                    return Ok(());
                }
                manifests::delete(bucket, facts, name, &Reference::Digest(digest.clone())).await?;
                out.operations += 4;
                out.removed.push(super::Removal { repository: name.to_string(), digest: digest.to_string(), tag: None });
            }
            out.manifests_deleted += 1;
            out.deleted.push(format!("{name}@{digest}"));
        }
    }
    Ok(())
}

/// The tags and manifests of `name` with their push times, children and subjects; `ops`
/// counts the reads.
async fn snapshot<B, F>(bucket: &B, facts: &F, name: &RepoName, ops: &mut u64) -> Result<(Vec<SeenTag>, Vec<SeenManifest>)>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
{
    // Tags and when they were last pushed.
    let mut pushed: BTreeMap<String, u64> = BTreeMap::new();
    let tags_prefix = PathSpec::Tags { name }.key();
    list_all(bucket, &tags_prefix, ops, |key, at| {
        pushed.insert(key[tags_prefix.len()..].to_string(), at);
    })
    .await?;
    // Revisions, and the newest tag index entry of each tag (where it points).
    let mut revisions: Vec<(Digest, u64)> = Vec::new();
    let mut pointed: BTreeMap<String, (u64, Digest)> = BTreeMap::new();
    let prefix = PathSpec::Revisions { name }.key();
    list_all(bucket, &prefix, ops, |key, at| {
        if let Some(d) = PathSpec::digest_of_revision_key(&prefix, key) {
            revisions.push((d, at));
        } else if let Some((d, tag)) = PathSpec::tag_entry_of_revisions_key(&prefix, key) {
            let newest = pointed.entry(tag.to_string()).or_insert((at, d.clone()));
            if at > newest.0 {
                *newest = (at, d);
            }
        }
    })
    .await?;
    let mut seen_tags = Vec::new();
    for (tag, at) in pushed {
        let digest = match pointed.remove(&tag) {
            Some((_, d)) => d,
            // No index entry (written by an older version): read the link itself.
            None => {
                *ops += 1;
                let Ok(t) = Tag::parse(&tag) else { continue };
                match tags::resolve_tag(bucket, name, &t).await? {
                    Some(d) => d,
                    None => continue,
                }
            }
        };
        seen_tags.push(SeenTag { tag, digest, pushed: at });
    }
    let mut seen_manifests = Vec::new();
    for (digest, at) in revisions {
        *ops += 1;
        let Some(bytes) = facts::read(bucket, facts, &PathSpec::ManifestRevision { name, digest: &digest }).await? else { continue };
        let Ok(rev) = serde_json::from_slice::<manifests::Revision>(&bytes) else { continue };
        let subject = rev.subject.as_deref().and_then(|s| Digest::parse(s).ok());
        let mut children = Vec::new();
        if rev.media_type == OCI_INDEX || rev.media_type == DOCKER_LIST {
            *ops += 1;
            let fetched = manifests::get(bucket, facts, name, &Reference::Digest(digest.clone())).await?;
            // Stored manifests were valid when pushed; one that no longer parses keeps no child.
            children = manifest::parse(&fetched.bytes, Some(&rev.media_type)).map(|p| p.manifests).unwrap_or_default();
        }
        seen_manifests.push(SeenManifest { digest, pushed: at, children, subject });
    }
    Ok((seen_tags, seen_manifests))
}

/// Calls `each(key, uploaded)` for every key under `prefix`.
async fn list_all<B: Bucket + ?Sized>(bucket: &B, prefix: &str, ops: &mut u64, mut each: impl FnMut(&str, u64)) -> Result<()> {
    let mut after: Option<String> = None;
    loop {
        *ops += 1;
        let page = bucket.list(prefix, after.as_deref(), super::MAX_PAGE).await?;
        for (key, at) in page.keys.iter().zip(&page.uploaded) {
            each(key, *at);
        }
        after = page.keys.last().cloned();
        if !page.truncated {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::Algorithm;
    use crate::oci::manifest::OCI_MANIFEST;
    use crate::policy::retention::Retention;
    use crate::storage::blobs;
    use crate::storage::memory::{MemoryBucket, MemoryFacts};
    use crate::storage::{Listing, ObjectInfo, PutIf, Removal};
    use async_trait::async_trait;
    use futures_executor::block_on;
    use std::cell::RefCell;

    const DAY: u64 = 24 * 3600 * 1000;
    const NOW: u64 = 100 * DAY;

    struct Repo {
        b: MemoryBucket,
        f: MemoryFacts,
        name: RepoName,
        config: Digest,
    }

    impl Repo {
        async fn new(name: &str) -> Repo {
            let (b, f) = (MemoryBucket::new(), MemoryFacts::new(0));
            let name = RepoName::parse(name).unwrap();
            let config = Digest::of(Algorithm::Sha256, b"{}");
            blobs::commit(&b, &name, &config, 2, "x".into(), 1).await.unwrap();
            Repo { b, f, name, config }
        }

        /// Pushes a distinct image `days_ago` under `reference` (a tag, or "" for by digest).
        async fn push(&self, reference: &str, n: u32, days_ago: u64, extra: &str) -> Digest {
            let bytes = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[],"annotations":{{"n":"{n}"}}{extra}}}"#,
                self.config
            );
            self.put(reference, bytes.into_bytes(), days_ago).await
        }

        async fn put(&self, reference: &str, bytes: Vec<u8>, days_ago: u64) -> Digest {
            self.b.set_now(NOW - days_ago * DAY);
            let digest = Digest::of(Algorithm::Sha256, &bytes);
            let r = if reference.is_empty() { Reference::Digest(digest.clone()) } else { Reference::parse(reference).unwrap() };
            manifests::put(&self.b, &self.f, &self.name, &r, bytes, None, NOW - days_ago * DAY, "id").await.unwrap().digest
        }

        async fn tags(&self) -> Vec<String> {
            tags::list(&self.b, &self.name, None, 100).await.map(|p| p.items).unwrap_or_default()
        }

        async fn has(&self, digest: &Digest) -> bool {
            manifests::revision(&self.b, &self.name, digest).await.unwrap().is_some()
        }
    }

    fn rules(json: &str) -> Retention {
        Retention::parse(json).unwrap()
    }

    async fn run(repo: &Repo, retention: &Retention, dry_run: bool) -> Retained {
        let rule_for = |n: &RepoName| retention.rule_for(n);
        step(&repo.b, &repo.f, NOW, 800, dry_run, &rule_for, &|_, _| None).await.unwrap()
    }

    #[test]
    fn old_builds_go_the_newest_and_named_stay_and_a_dry_run_only_reports() {
        block_on(async {
            let repo = Repo::new("ci/app").await;
            let mut builds = Vec::new();
            for i in 0..5u32 {
                builds.push(repo.push(&format!("build-{i}"), i, 50 - u64::from(i), "").await);
            }
            let release = repo.push("v1.0", 10, 60, "").await;
            let untagged_old = repo.push("", 11, 30, "").await;
            let untagged_young = repo.push("", 12, 1, "").await;
            let retention = rules(r#"[{"repos": ["ci/*"], "keep_last": 2, "keep_tags": ["v*"], "untagged_after_days": 7}]"#);

            let dry = run(&repo, &retention, true).await;
            assert_eq!(dry.tags_deleted, 3);
            assert_eq!(dry.manifests_deleted, 4, "three builds untagged by the run, one untagged before");
            assert_eq!(repo.tags().await.len(), 6, "a dry run deletes nothing");
            assert!(repo.b.keys().iter().all(|k| !k.starts_with("gc/retention")), "nor writes a cursor");

            let done = run(&repo, &retention, false).await;
            assert_eq!((done.tags_deleted, done.manifests_deleted), (dry.tags_deleted, dry.manifests_deleted));
            assert_eq!(done.deleted, dry.deleted, "the dry run said exactly what would go");
            assert!(done.finished);
            assert_eq!(repo.tags().await, ["build-3", "build-4", "v1.0"]);
            for (i, d) in builds.iter().enumerate() {
                assert_eq!(repo.has(d).await, i >= 3, "build-{i}");
            }
            assert!(repo.has(&release).await);
            assert!(!repo.has(&untagged_old).await);
            assert!(repo.has(&untagged_young).await);
            assert!(done.deleted.contains(&format!("ci/app@{untagged_old}")) && done.deleted.contains(&"ci/app:build-0".to_string()));
            // Nothing left to do.
            let again = run(&repo, &retention, false).await;
            assert_eq!((again.tags_deleted, again.manifests_deleted), (0, 0));
            // A repository no rule names is never touched.
            assert_eq!(run(&repo, &rules(r#"[{"repos": ["other/*"], "keep_last": 0}]"#), false).await.repositories, 0);
        });
    }

    #[test]
    fn an_index_keeps_its_children_and_referrers_go_with_their_subject() {
        block_on(async {
            let repo = Repo::new("multi").await;
            let amd = repo.push("", 1, 40, "").await;
            let arm = repo.push("", 2, 40, "").await;
            let index = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{amd}","size":1}},{{"mediaType":"{OCI_MANIFEST}","digest":"{arm}","size":1}}]}}"#
            );
            let index = repo.put("release", index.into_bytes(), 40).await;
            let subject = |d: &Digest| format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":1}}"#);
            let signature = repo.push("", 3, 1, &subject(&index)).await;
            let old = repo.push("old", 4, 40, "").await;
            let sbom_of_old = repo.push("", 5, 1, &subject(&old)).await;
            let retention = rules(r#"[{"repos": ["*"], "older_than_days": 30, "keep_tags": ["release"], "untagged_after_days": 7}]"#);
            let done = run(&repo, &retention, false).await;
            assert_eq!(repo.tags().await, ["release"]);
            for (d, kept) in [(&amd, true), (&arm, true), (&index, true), (&signature, true), (&old, false), (&sbom_of_old, false)] {
                assert_eq!(repo.has(d).await, kept, "{d}");
            }
            assert_eq!(done.manifests_deleted, 2);
            // The referrers API no longer lists the young SBOM of the deleted manifest.
            let (listed, _) = crate::storage::referrers::list(&repo.b, &repo.name, &old, None, None, 100).await.unwrap();
            assert!(listed.is_empty());
            let (listed, _) = crate::storage::referrers::list(&repo.b, &repo.name, &index, None, None, 100).await.unwrap();
            assert_eq!(listed.len(), 1, "the index keeps its signature");
        });
    }

    /// A bucket that pushes during the run: the tag pushes in `pushes` happen once, just before
    /// the first read or list of a key starting with `trigger` (here: a deletion's re-check).
    struct PushDuring<'a> {
        inner: &'a MemoryBucket,
        trigger: String,
        name: RepoName,
        pushes: RefCell<Vec<(Tag, Digest)>>,
    }

    impl PushDuring<'_> {
        async fn maybe_push(&self, key: &str) {
            if !key.starts_with(&self.trigger) {
                return;
            }
            let pushes: Vec<(Tag, Digest)> = self.pushes.borrow_mut().drain(..).collect();
            for (tag, digest) in pushes {
                tags::point(self.inner, &MemoryFacts::new(0), &self.name, &tag, &digest).await.unwrap();
            }
        }
    }

    #[async_trait(?Send)]
    impl Bucket for PushDuring<'_> {
        async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>> {
            self.maybe_push(key).await;
            self.inner.get(key).await
        }
        async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
            self.inner.head(key).await
        }
        async fn put(&self, key: &str, bytes: Vec<u8>, ct: Option<&str>, cond: PutIf) -> Result<Option<String>> {
            self.inner.put(key, bytes, ct, cond).await
        }
        async fn delete(&self, keys: &[String]) -> Result<()> {
            self.inner.delete(keys).await
        }
        async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Listing> {
            self.maybe_push(prefix).await;
            self.inner.list(prefix, start_after, limit).await
        }
    }

    #[test]
    fn a_push_during_the_run_is_never_undone() {
        block_on(async {
            let repo = Repo::new("race").await;
            let old = repo.push("", 1, 30, "").await;
            let moved = repo.push("moving", 2, 30, "").await;
            let newer = repo.push("", 3, 0, "").await;
            let retention = rules(r#"[{"repos": ["*"], "older_than_days": 7, "untagged_after_days": 7}]"#);
            // Between the snapshot and the re-checks: `fresh` is pushed pointing at the old
            // untagged manifest, and `moving` is pushed again to a new manifest.
            let hook = PushDuring {
                inner: &repo.b,
                trigger: PathSpec::TagCurrent { name: &repo.name, tag: &Tag::parse("moving").unwrap() }.key(),
                name: repo.name.clone(),
                pushes: RefCell::new(vec![(Tag::parse("fresh").unwrap(), old.clone()), (Tag::parse("moving").unwrap(), newer.clone())]),
            };
            let rule_for = |n: &RepoName| retention.rule_for(n);
            let done = step(&hook, &repo.f, NOW, 800, false, &rule_for, &|_, _| None).await.unwrap();
            assert_eq!(repo.tags().await, ["fresh", "moving"]);
            assert!(repo.has(&old).await, "tagged during the run: kept");
            assert!(repo.has(&newer).await);
            assert!(!repo.has(&moved).await, "untagged by the move, and old: it goes");
            assert!(done.kept.iter().any(|k| k.contains("moving (pushed again during the run)")), "{:?}", done.kept);
            assert!(done.kept.iter().any(|k| k.contains(&format!("{old} (tagged fresh during the run)"))), "{:?}", done.kept);
        });
    }

    #[test]
    fn a_repository_bigger_than_the_budget_is_finished_over_several_runs() {
        block_on(async {
            let repo = Repo::new("big").await;
            for i in 0..30u32 {
                repo.push(&format!("t{i:02}"), i, 50 - u64::from(i), "").await;
            }
            let retention = rules(r#"[{"repos": ["*"], "keep_last": 5, "untagged_after_days": 7}]"#);
            let rule_for = |n: &RepoName| retention.rule_for(n);
            let mut runs = 0;
            let mut deleted = 0;
            let mut manifests_deleted = 0;
            loop {
                runs += 1;
                if runs == 2 {
                    // A dry run between two runs judges afresh: it reads no cursor.
                    let dry = step(&repo.b, &repo.f, NOW, 20, true, &rule_for, &|_, _| None).await.unwrap();
                    assert_eq!(dry.manifests_scanned, 30 - manifests_deleted, "a snapshot of what is left");
                    assert!(dry.finished);
                }
                let done = step(&repo.b, &repo.f, NOW, 20, false, &rule_for, &|_, _| None).await.unwrap();
                assert!(done.tags_deleted + done.manifests_deleted > 0 || done.finished, "run {runs} made progress");
                // Snapshot (catalog, cursor, 2 lists, 30 revision reads) + the budget + one deletion's overshoot.
                assert!(done.operations <= 34 + 20 + 6, "bounded: {}", done.operations);
                deleted += done.tags_deleted + done.manifests_deleted;
                manifests_deleted += done.manifests_deleted;
                assert_eq!(done.manifests_scanned > 0, runs == 1, "run {runs}: the verdict is carried on, not reached again");
                if done.finished {
                    break;
                }
            }
            assert!(runs > 2, "{runs} runs");
            assert_eq!(deleted, 50, "25 tags and their manifests");
            assert_eq!(repo.tags().await, ["t25", "t26", "t27", "t28", "t29"]);
        });
    }

    #[test]
    fn what_a_run_did_is_counted_exactly() {
        block_on(async {
            let repo = Repo::new("counted").await;
            let old = repo.push("old", 1, 20, "").await;
            repo.push("new", 2, 10, "").await;
            let retention = rules(r#"[{"repos": ["*"], "keep_last": 1, "untagged_after_days": 7}]"#);
            let done = run(&repo, &retention, false).await;
            // Cursor read, catalog page, tags and revisions listings, two revision reads; then
            // the tag (resolve, 2 deletes) and the manifest (tag index re-check, delete).
            assert_eq!(
                done,
                Retained {
                    repositories: 1,
                    tags_scanned: 2,
                    manifests_scanned: 2,
                    tags_deleted: 1,
                    manifests_deleted: 1,
                    operations: 1 + 1 + 2 + 2 + 3 + 6,
                    finished: true,
                    deleted: vec!["counted:old".into(), format!("counted@{old}")],
                    kept: vec![],
                    removed: vec![
                        Removal { repository: "counted".into(), digest: old.to_string(), tag: Some("old".into()) },
                        Removal { repository: "counted".into(), digest: old.to_string(), tag: None },
                    ],
                }
            );
        });
    }

    #[test]
    fn a_moved_tag_points_where_its_newest_index_entry_says() {
        block_on(async {
            let repo = Repo::new("moved").await;
            // Each tag first points at one manifest, then moves to another: the revision it
            // left keeps a stale index entry, older than the current one.
            let mut left = Vec::new();
            let mut now_at = Vec::new();
            for i in 0..6u32 {
                let tag = format!("t{i}");
                left.push(repo.push(&tag, 10 + i, 30, "").await);
                now_at.push(repo.push(&tag, 20 + i, 20, "").await);
            }
            // Both listing orders occur: for some tags the stale entry is listed first.
            assert!(left.iter().zip(&now_at).any(|(a, b)| a.hex() < b.hex()));
            assert!(left.iter().zip(&now_at).any(|(a, b)| a.hex() > b.hex()));
            let retention = rules(r#"[{"repos": ["*"], "keep_last": 10, "untagged_after_days": 7}]"#);
            let done = run(&repo, &retention, false).await;
            assert!(done.kept.is_empty(), "{:?}", done.kept);
            for (a, b) in left.iter().zip(&now_at) {
                assert!(!repo.has(a).await, "the revision a tag left goes");
                assert!(repo.has(b).await, "the one it points at stays");
            }
        });
    }

    #[test]
    fn a_tag_without_an_index_entry_is_read_and_an_index_costs_one_more_read() {
        block_on(async {
            let repo = Repo::new("legacy").await;
            let amd = repo.push("", 1, 20, "").await;
            let index = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{amd}","size":1}}]}}"#
            );
            let index = repo.put("multi", index.into_bytes(), 20).await;
            // A tag written before tag index entries existed: its current link alone.
            let old_tag = Tag::parse("legacy").unwrap();
            repo.b.put(&PathSpec::TagCurrent { name: &repo.name, tag: &old_tag }.key(), amd.to_string().into_bytes(), None, PutIf::Always).await.unwrap();
            let retention = rules(r#"[{"repos": ["*"], "keep_last": 5, "untagged_after_days": 7}]"#);
            let done = run(&repo, &retention, false).await;
            // Cursor, catalog, two listings, the legacy tag's link, two revisions, the index's bytes.
            assert_eq!(done.operations, 1 + 1 + 2 + 1 + 2 + 1);
            assert_eq!((done.tags_scanned, done.manifests_scanned), (2, 2));
            assert!(done.deleted.is_empty(), "{:?}", done.deleted);
            assert!(repo.has(&amd).await && repo.has(&index).await);
        });
    }

    #[test]
    fn a_verdict_older_than_an_hour_is_reached_again() {
        assert_eq!(VERDICT_TTL_MS, 3_600_000, "an hour");
        block_on(async {
            let repo = Repo::new("stale").await;
            for i in 0..10u32 {
                repo.push(&format!("t{i}"), i, 50 - u64::from(i), "").await;
            }
            let retention = rules(r#"[{"repos": ["*"], "keep_last": 1}]"#);
            let rule_for = |n: &RepoName| retention.rule_for(n);
            let first = step(&repo.b, &repo.f, NOW, 6, false, &rule_for, &|_, _| None).await.unwrap();
            assert!(!first.finished && first.tags_deleted > 0);
            // Meanwhile a tag is pushed: only a new verdict keeps it (it is the newest).
            repo.push("newest", 99, 0, "").await;
            let later = step(&repo.b, &repo.f, NOW + VERDICT_TTL_MS, 1000, false, &rule_for, &|_, _| None).await.unwrap();
            assert!(later.manifests_scanned > 0, "judged again");
            assert!(later.finished);
            assert_eq!(repo.tags().await, ["newest"]);
        });
    }

    #[test]
    fn immutable_tags_never_go_and_runs_resume_within_their_budget() {
        block_on(async {
            let (b, f) = (MemoryBucket::new(), MemoryFacts::new(0));
            let config = Digest::of(Algorithm::Sha256, b"{}");
            let retention = rules(r#"[{"repos": ["*"], "keep_last": 0}]"#);
            for r in ["a", "b", "c", "d"] {
                let name = RepoName::parse(r).unwrap();
                blobs::commit(&b, &name, &config, 2, "x".into(), 1).await.unwrap();
                let bytes = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[]}}"#);
                for t in ["v1", "dev"] {
                    manifests::put(&b, &f, &name, &Reference::parse(t).unwrap(), bytes.clone().into_bytes(), None, 1, "id").await.unwrap();
                }
            }
            let rule_for = |n: &RepoName| retention.rule_for(n);
            let immutable = |_: &RepoName, t: &Tag| (t.as_str() == "v1").then(|| "rule 1".to_string());
            // A tiny budget: one repository per run (judged again by the next run when left
            // midway), and every run makes progress.
            let mut runs = 0;
            loop {
                runs += 1;
                let done = step(&b, &f, NOW, 1, false, &rule_for, &immutable).await.unwrap();
                assert_eq!(done.repositories, 1);
                assert!(done.kept.iter().all(|k| k.ends_with(":v1 (immutable by rule 1)")));
                if done.finished {
                    break;
                }
            }
            assert!((4..=8).contains(&runs), "{runs} runs");
            for r in ["a", "b", "c", "d"] {
                let left = tags::list(&b, &RepoName::parse(r).unwrap(), None, 10).await.unwrap().items;
                assert_eq!(left, ["v1"], "{r}");
            }
            assert!(b.keys().iter().all(|k| !k.starts_with("gc/retention")), "a finished pass leaves no cursor");
        });
    }
}
