//! Eviction of mirrored content nobody pulls: each pull of a mirrored manifest records the day
//! (`_mirror/pulled/<digest>`, written at most once a day per manifest: a read, and a write only
//! when the day changed), and a lifecycle step deletes the revisions of mirrored repositories
//! not pulled for their upstream's `evict_after_days`, with the tags still pointing at them. The
//! garbage collection then frees the blobs no other manifest names.
//!
//! Safe against a concurrent pull: mirrored content can always be fetched again. A pull that
//! finds a revision, tag or blob gone (evicted, or collected after) asks the upstream again
//! (`mirror::pull`), so the worst a race costs is one more upstream fetch. A revision with no
//! record yet (stored before records were kept) starts its clock at the first run that sees it.
//!
//! The step resumes from a cursor (`gc/eviction`) within its share of the run's budget.

use serde::{Deserialize, Serialize};

use super::facts::FactCache;
use super::paths::PathSpec;
use super::{catalog, cursor, manifests, Bucket, PutIf};
use crate::oci::digest::Digest;
use crate::oci::error::Result;
use crate::oci::name::{Reference, RepoName};

pub const DAY_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Pulled {
    day: u64,
}

/// The day `digest` of `name` was last pulled, if recorded.
pub async fn last_pulled<B: Bucket + ?Sized>(bucket: &B, name: &RepoName, digest: &Digest) -> Result<Option<u64>> {
    let Some((bytes, _)) = bucket.get(&PathSpec::MirrorPulled { name, digest }.key()).await? else { return Ok(None) };
    Ok(serde_json::from_slice::<Pulled>(&bytes).ok().map(|p| p.day))
}

/// Records a pull of `digest` of `name` at `now`, unless one was recorded the same day. True
/// when written.
pub async fn record_pull<B: Bucket + ?Sized>(bucket: &B, name: &RepoName, digest: &Digest, now: u64) -> Result<bool> {
    let day = now / DAY_MS;
    if last_pulled(bucket, name, digest).await?.is_some_and(|d| d >= day) {
        return Ok(false);
    }
    let record = serde_json::to_vec(&Pulled { day }).expect("serializable");
    bucket.put(&PathSpec::MirrorPulled { name, digest }.key(), record, None, PutIf::Always).await?;
    Ok(true)
}

/// Where the step stopped: the repository it was in and the last revision it judged there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    /// The catalog entry before the current repository (None: from the start).
    after_repo: Option<String>,
    /// In the current repository, the revision cursor to resume after.
    after_revision: Option<String>,
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Evicted {
    pub repositories: u64,
    pub manifests_scanned: u64,
    pub manifests_evicted: u64,
    /// The step went through every mirrored repository (the next one starts over).
    pub finished: bool,
    /// `repository@digest` of each revision evicted (or that would be, in a dry run).
    pub evicted: Vec<String>,
    /// What the step removed (none in a dry run), to be announced.
    #[serde(skip)]
    pub removed: Vec<super::Removal>,
}

/// One step at `now`, within about `budget` bucket operations: `max_age_ms(name)` is how long
/// repository `name` keeps a manifest nobody pulls (None: not mirrored or never evicted).
pub async fn step<B, F>(bucket: &B, facts: &F, now: u64, budget: u64, dry_run: bool, max_age_ms: &dyn Fn(&RepoName) -> Option<u64>) -> Result<Evicted>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
{
    let mut cursor: Cursor = cursor::load(bucket, &PathSpec::EvictionCursor, dry_run).await?;
    let mut out = Evicted::default();
    let mut ops = u64::from(!dry_run);
    let today = now / DAY_MS;
    'repos: loop {
        let page = catalog::repositories(bucket, cursor.after_repo.as_deref(), 100).await?;
        ops += 1;
        for repo in &page.items {
            let Ok(name) = RepoName::parse(repo) else { continue };
            if let Some(max_age) = max_age_ms(&name) {
                out.repositories += 1;
                loop {
                    if ops >= budget {
                        break 'repos;
                    }
                    let revs = manifests::revisions(bucket, &name, cursor.after_revision.as_deref(), 50).await?;
                    ops += 1;
                    for (digest, at) in revs.items {
                        if ops >= budget {
                            break 'repos;
                        }
                        out.manifests_scanned += 1;
                        ops += 1;
                        match last_pulled(bucket, &name, &digest).await? {
                            // Never recorded: its clock starts now.
                            None if !dry_run => {
                                record_pull(bucket, &name, &digest, now).await?;
                                ops += 1;
                            }
                            None => {}
                            Some(day) if (today - day.min(today)) * DAY_MS >= max_age => {
                                out.manifests_evicted += 1;
                                out.evicted.push(format!("{name}@{digest}"));
                                if !dry_run {
                                    manifests::delete(bucket, facts, &name, &Reference::Digest(digest.clone())).await?;
                                    bucket.delete(&[PathSpec::MirrorPulled { name: &name, digest: &digest }.key()]).await?;
                                    ops += 4;
                                    out.removed.push(super::Removal { repository: name.to_string(), digest: digest.to_string(), tag: None });
                                }
                            }
                            Some(_) => {}
                        }
                        cursor.after_revision = Some(at);
                    }
                    if revs.next.is_none() {
                        break;
                    }
                }
            }
            cursor.after_repo = Some(repo.clone());
            cursor.after_revision = None;
        }
        if !page.more {
            out.finished = true;
            break;
        }
    }
    cursor::save(bucket, &PathSpec::EvictionCursor, &cursor, out.finished, dry_run).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::Algorithm;
    use crate::oci::name::Tag;
    use crate::storage::memory::{MemoryBucket, MemoryFacts};
    use crate::storage::tags;
    use futures_executor::block_on;

    fn manifest(n: u32) -> Vec<u8> {
        format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{{"n":"{n}"}}}}"#).into_bytes()
    }

    /// Stores manifest `n` in `name` as a mirror fill would, tagged `t<n>`.
    fn fill(b: &MemoryBucket, f: &MemoryFacts, name: &RepoName, n: u32) -> Digest {
        let bytes = manifest(n);
        let digest = Digest::of(Algorithm::Sha256, &bytes);
        let tag = Tag::parse(&format!("t{n}")).unwrap();
        block_on(manifests::put_mirrored(b, f, name, &digest, Some(&tag), bytes, Some("application/vnd.oci.image.index.v1+json"), 0, "id")).unwrap();
        digest
    }

    #[test]
    fn pulls_are_recorded_once_a_day() {
        let b = MemoryBucket::new();
        let name = RepoName::parse("hub/a").unwrap();
        let d = Digest::of(Algorithm::Sha256, b"m");
        assert!(block_on(record_pull(&b, &name, &d, 5 * DAY_MS + 1)).unwrap());
        assert!(!block_on(record_pull(&b, &name, &d, 6 * DAY_MS - 1)).unwrap());
        assert!(!block_on(record_pull(&b, &name, &d, 4 * DAY_MS)).unwrap(), "an older clock never moves it back");
        assert_eq!(block_on(last_pulled(&b, &name, &d)).unwrap(), Some(5));
        assert!(block_on(record_pull(&b, &name, &d, 6 * DAY_MS)).unwrap());
        assert_eq!(block_on(last_pulled(&b, &name, &d)).unwrap(), Some(6));
    }

    #[test]
    fn manifests_not_pulled_for_their_age_go_with_their_tags_only_in_mirrored_repositories() {
        let (b, f) = (MemoryBucket::new(), MemoryFacts::new(0));
        let hub = RepoName::parse("hub/app").unwrap();
        let mine = RepoName::parse("mine/app").unwrap();
        let old = fill(&b, &f, &hub, 1);
        let recent = fill(&b, &f, &hub, 2);
        let unrecorded = fill(&b, &f, &hub, 3);
        let own = fill(&b, &f, &mine, 4);
        block_on(record_pull(&b, &hub, &old, 10 * DAY_MS)).unwrap();
        block_on(record_pull(&b, &hub, &recent, 39 * DAY_MS)).unwrap();
        block_on(record_pull(&b, &mine, &own, 0)).unwrap();
        let policy = |n: &RepoName| n.as_str().starts_with("hub/").then_some(30 * DAY_MS);
        let now = 40 * DAY_MS + 5;

        let dry = block_on(step(&b, &f, now, 1000, true, &policy)).unwrap();
        assert_eq!(dry.evicted, vec![format!("hub/app@{old}")]);
        assert!(block_on(manifests::revision(&b, &hub, &old)).unwrap().is_some(), "a dry run deletes nothing");
        assert!(dry.removed.is_empty(), "and announces nothing");
        assert_eq!(block_on(last_pulled(&b, &hub, &unrecorded)).unwrap(), None, "and records nothing");

        let run = block_on(step(&b, &f, now, 1000, false, &policy)).unwrap();
        assert_eq!((run.repositories, run.manifests_scanned, run.manifests_evicted, run.finished), (1, 3, 1, true));
        assert_eq!(run.removed, vec![crate::storage::Removal { repository: "hub/app".into(), digest: old.to_string(), tag: None }]);
        assert!(block_on(manifests::revision(&b, &hub, &old)).unwrap().is_none());
        assert_eq!(block_on(tags::resolve_tag(&b, &hub, &Tag::parse("t1").unwrap())).unwrap(), None);
        assert_eq!(block_on(last_pulled(&b, &hub, &old)).unwrap(), None);
        for (name, d) in [(&hub, &recent), (&hub, &unrecorded), (&mine, &own)] {
            assert!(block_on(manifests::revision(&b, name, d)).unwrap().is_some(), "{name}@{d} kept");
        }
        // The unrecorded one's clock started at this run.
        assert_eq!(block_on(last_pulled(&b, &hub, &unrecorded)).unwrap(), Some(40));
        assert!(!b.keys().contains(&PathSpec::EvictionCursor.key()));
    }

    #[test]
    fn a_small_budget_resumes_where_it_stopped() {
        let (b, f) = (MemoryBucket::new(), MemoryFacts::new(0));
        let names: Vec<RepoName> = (0..3).map(|i| RepoName::parse(&format!("hub/r{i}")).unwrap()).collect();
        let mut all = Vec::new();
        for (i, name) in names.iter().enumerate() {
            for n in 0..4 {
                let d = fill(&b, &f, name, (i * 10 + n) as u32);
                block_on(record_pull(&b, name, &d, 0)).unwrap();
                all.push((name.clone(), d));
            }
        }
        let policy = |_: &RepoName| Some(DAY_MS);
        let mut runs = 0;
        let mut evicted = 0;
        loop {
            runs += 1;
            let r = block_on(step(&b, &f, 2 * DAY_MS, 6, false, &policy)).unwrap();
            evicted += r.manifests_evicted;
            if r.finished {
                break;
            }
            assert!(runs < 50, "never finished");
        }
        assert!(runs > 2, "the budget split the work ({runs} runs)");
        assert_eq!(evicted, 12);
        for (name, d) in &all {
            assert!(block_on(manifests::revision(&b, name, d)).unwrap().is_none());
        }
    }
}
