//! Online mark-and-sweep garbage collection, in bounded steps that resume from a cursor.
//!
//! **Mark.** Every manifest revision of every repository in the catalog is a root: the
//! descriptor of its digest and of every digest its manifest names (config, layers, index
//! children, subject, non-distributable layers that happen to be stored) is *stamped* with the
//! collection's start `T0` (`marked = T0`, a conditional put on the etag just read, skipped when
//! already stamped by this collection). **Sweep.** Every descriptor under `blobs/` that is not
//! stamped with `T0` or later, not already doomed, and was last touched before `T0 - grace` is
//! doomed by a conditional put on the etag just read; then its bytes are deleted and its cached
//! copies forgotten. The descriptor stays as a tombstone. Layer links are not roots: a blob
//! pushed but named by no manifest is collected once it is older than the grace period, as in
//! distribution. The collector does not know which repositories link a blob (no reverse index:
//! it would cost a write per link on every push), so a link left pointing at a collected blob
//! is removed by the first request that meets it: a HEAD (`blobs::present`, which reads the
//! descriptor), a GET (the bytes are gone), a manifest PUT's reference check (the claim fails:
//! MANIFEST_BLOB_UNKNOWN, and the client's next HEAD says 404).
//!
//! **Why the marks live on the descriptors.** A mark set carried between runs grows with the
//! registry (every referenced digest, read and rewritten by every run, inside 128 MB and the
//! CPU limit). A stamp costs one write per referenced blob per collection, and the sweep reads
//! every descriptor anyway; so the state between runs, `gc/state`, holds only `T0`, the cursors
//! and the references of the one manifest being marked (at most `manifest::MAX_DESCRIPTORS` + 1
//! for pushed ones): its size is independent of the registry's. A stamp from an earlier
//! collection (below `T0`) does not count. The stores enumerate what is collected
//! (`catalog::repositories`, `manifests::revisions`, `blobs::descriptors`); no key is spelled here.
//!
//! **Why a concurrent push never loses data.** Every new reference to a blob goes through
//! `blobs::claim` before it is written (commit and mount before the link, manifest PUT before
//! the revision), and new bytes get a descriptor touched at write time. Take a reference made
//! at time `t` to blob `b`, whose claim saw `b` not doomed:
//! 1. If the claim left `touched` alone, `touched > t - TOUCH_FRESH_MS`. A collection can doom
//!    `b` only if `touched < T0 - grace`, so only if `T0 > t + grace - TOUCH_FRESH_MS >= t +
//!    TOUCH_FRESH_MS` (grace is at least twice `TOUCH_FRESH_MS`). That collection started
//!    marking more than ten minutes after the claim, when the request that claimed had long
//!    finished: its manifest revision is a root, so `b` is stamped before the sweep begins (a
//!    link alone is not a root, but then the link's push is simply older than the grace period
//!    by then).
//! 2. If the claim renewed `touched` to `t` by a conditional put: a collection that read the
//!    descriptor before that put holds a stale etag and its doom put fails; one that reads it
//!    after sees `touched = t`, which is not older than `T0 - grace` for any `T0 <= t + grace`,
//!    and any later `T0` is case 1 again.
//! 3. If the claim saw `b` doomed, the writer does not reference those bytes: it stores its own
//!    copy under a fresh key (`blobs::fresh_data_key`) and replaces the tombstone, and the
//!    collector deletes only the key named by the descriptor it doomed.
//!
//! **Why a push told "it exists" cannot lose the blob.** Clients HEAD a blob before uploading it
//! and skip the upload on a 200, then PUT the manifest naming it. A HEAD answers 200 only after
//! claiming the blob (`blobs::present`): it is the reference of case 1 or 2 above, made at the
//! HEAD's time `t`, so no collection dooms the blob before `t + grace - TOUCH_FRESH_MS` (at
//! least ten minutes), and the manifest PUT that follows claims it again (its reference check).
//! A push that waits longer than that between its HEAD and its manifest gets
//! MANIFEST_BLOB_UNKNOWN, never a manifest naming bytes that are gone, and its next HEAD is 404.
//! A HEAD that meets a tombstone answers 404 and removes the link, so the client uploads again.
//!
//! Stamps and claims are both conditional puts on the descriptor's etag, so neither overwrites
//! the other: a claim keeps the stamp it read, a stamp that lost to a claim reads again. So bytes
//! are deleted only when no reference made before the doom can reach them and none can be made
//! after it. A run takes a lease on `gc/state`, so two runs never interleave. A dry run reports
//! what would be collected and writes nothing: it keeps its marks in memory, bounded by its
//! budget.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::blobs::{self, TOUCH_FRESH_MS};
use super::catalog;
use super::facts::{self, FactCache};
use super::manifests::{self, Revision};
use super::paths::PathSpec;
use super::{Bucket, PutIf};
use crate::oci::digest::Digest;
use crate::oci::error::{RegistryError, Result};
use crate::oci::manifest;
use crate::oci::name::RepoName;

/// The shortest grace period the argument above allows.
pub const MIN_GRACE_MS: u64 = 2 * TOUCH_FRESH_MS;

/// The layout of [`GcState`]; a state of another version (an older collection, whose marks
/// were kept differently) is dropped and the collection starts over.
pub const STATE_VERSION: u32 = 2;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    #[default]
    Mark,
    Sweep,
}

/// Counts of one collection (over all its runs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub repositories: u64,
    pub manifests: u64,
    pub blobs_scanned: u64,
    pub blobs_kept: u64,
    pub blobs_deleted: u64,
    pub bytes_freed: u64,
}

/// A collection in progress: cursors, not marks (those are on the descriptors).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcState {
    #[serde(default)]
    pub version: u32,
    /// T0: when marking started (ms).
    pub started_at: u64,
    pub phase: Phase,
    /// The last repository fully marked.
    pub repo_cursor: Option<String>,
    /// The repository being marked, and where its revisions resume.
    pub repo: Option<String>,
    pub revision_cursor: Option<String>,
    /// Digests of the manifest being marked that are not stamped yet.
    #[serde(default)]
    pub unmarked: Vec<String>,
    /// Where the sweep resumes.
    pub sweep_cursor: Option<String>,
    pub stats: Stats,
    /// A run holds the collection until then (ms).
    #[serde(default)]
    pub lease_until: u64,
    /// A dry run's marks (it stamps nothing); never saved.
    #[serde(skip)]
    pub dry_marks: BTreeSet<String>,
}

impl GcState {
    pub fn new(now: u64) -> Self {
        GcState { version: STATE_VERSION, started_at: now, ..Default::default() }
    }

    /// A saved state, if it is of this layout.
    pub fn load(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<GcState>(bytes).ok().filter(|s| s.version == STATE_VERSION)
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// The collection is complete (else: resume from the saved state).
    pub finished: bool,
    /// Digests whose bytes were deleted (for the caller's edge cache).
    pub deleted: Vec<Digest>,
}

/// Bucket operations left for this run.
struct Budget(u64);

impl Budget {
    fn spend(&mut self, n: u64) {
        self.0 = self.0.saturating_sub(n);
    }

    fn left(&self) -> bool {
        self.0 > 0
    }

    fn page(&self) -> usize {
        self.0.clamp(1, super::MAX_PAGE as u64) as usize
    }
}

/// Advances `state` by at most `budget` bucket operations (a little more when one manifest's
/// reading overruns it). A step that completes the marking goes on with the sweep, so a
/// collection that fits in one budget finishes in one run (a run that fails midway resumes
/// from the state saved before it: stamping again is idempotent).
pub async fn step<B, F>(bucket: &B, facts: &F, state: &mut GcState, grace_ms: u64, budget: u64, dry_run: bool) -> Result<Step>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
{
    let mut budget = Budget(budget);
    let mut out = Step::default();
    while budget.left() {
        match state.phase {
            Phase::Mark => mark_some(bucket, facts, state, &mut budget, dry_run).await?,
            Phase::Sweep => {
                if sweep_some(bucket, facts, state, grace_ms.max(MIN_GRACE_MS), &mut budget, dry_run, &mut out).await? {
                    out.finished = true;
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// Stamps what is left of the current manifest, or reads the next page of revisions (or moves
/// to the next repository, or to the sweep).
async fn mark_some<B, F>(bucket: &B, facts: &F, state: &mut GcState, budget: &mut Budget, dry_run: bool) -> Result<()>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
{
    if !state.unmarked.is_empty() {
        while budget.left() {
            let Some(d) = state.unmarked.pop() else { break };
            let digest = Digest::parse(&d).map_err(RegistryError::internal)?;
            if dry_run {
                state.dry_marks.insert(d);
            } else {
                blobs::stamp(bucket, &digest, state.started_at).await?;
                budget.spend(2);
            }
        }
        return Ok(());
    }
    let Some(repo) = state.repo.clone() else {
        let page = catalog::repositories(bucket, state.repo_cursor.as_deref(), 1).await?;
        budget.spend(1);
        match page.items.first() {
            Some(name) => {
                state.repo = Some(name.to_string());
                state.revision_cursor = None;
                state.stats.repositories += 1;
            }
            None => state.phase = Phase::Sweep,
        }
        return Ok(());
    };
    let name = RepoName::parse(&repo).map_err(RegistryError::internal)?;
    // One manifest at a time: its references are stamped before the cursor moves past it.
    let page = manifests::revisions(bucket, &name, state.revision_cursor.as_deref(), budget.page().min(100)).await?;
    budget.spend(1);
    let next = match page.items.into_iter().next() {
        Some((digest, cursor)) => {
            state.unmarked = references(bucket, facts, &name, &digest).await?;
            budget.spend(2);
            state.stats.manifests += 1;
            Some(cursor)
        }
        None => page.next,
    };
    match next {
        Some(cursor) => state.revision_cursor = Some(cursor),
        None => {
            state.repo_cursor = Some(repo);
            state.repo = None;
        }
    }
    Ok(())
}

/// A manifest's digest and every digest it names, de-duplicated.
async fn references<B, F>(bucket: &B, facts: &F, name: &RepoName, digest: &Digest) -> Result<Vec<String>>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
{
    let mut out = BTreeSet::from([digest.to_string()]);
    let Some(rev) = facts::read(bucket, facts, &PathSpec::ManifestRevision { name, digest }).await? else { return Ok(out.into_iter().collect()) };
    let rev: Revision = serde_json::from_slice(&rev).map_err(RegistryError::internal)?;
    let key = rev.object_key(digest);
    if let Some(bytes) = facts::read(bucket, facts, &PathSpec::Object { key: &key }).await? {
        // Stored manifests were valid when pushed; one that no longer parses keeps only itself.
        if let Ok(parsed) = manifest::parse(&bytes, Some(&rev.media_type)) {
            out.extend(parsed.references().map(Digest::to_string));
        }
    }
    Ok(out.into_iter().collect())
}

/// Sweeps one page of descriptors; true when the sweep is complete.
#[allow(clippy::too_many_arguments)]
async fn sweep_some<B, F>(bucket: &B, facts: &F, state: &mut GcState, grace_ms: u64, budget: &mut Budget, dry_run: bool, out: &mut Step) -> Result<bool>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
{
    let page = blobs::descriptors(bucket, state.sweep_cursor.as_deref(), budget.page().min(200)).await?;
    budget.spend(1);
    let cutoff = state.started_at.saturating_sub(grace_ms);
    for digest in page.items {
        budget.spend(1);
        let Some((mut desc, etag)) = blobs::descriptor(bucket, &digest).await? else { continue };
        if desc.doomed {
            // A tombstone of an earlier collection.
            continue;
        }
        state.stats.blobs_scanned += 1;
        let marked = desc.marked >= state.started_at || state.dry_marks.contains(&digest.to_string());
        if marked || desc.touched >= cutoff {
            state.stats.blobs_kept += 1;
            continue;
        }
        if !dry_run {
            desc.doomed = true;
            budget.spend(3);
            let key = PathSpec::BlobDescriptor { digest: &digest }.key();
            if bucket.put(&key, desc.to_json(), None, PutIf::EtagMatches(etag)).await?.is_none() {
                // Claimed meanwhile: it lives.
                state.stats.blobs_kept += 1;
                continue;
            }
            if !desc.object.is_empty() {
                bucket.delete(std::slice::from_ref(&desc.object)).await?;
                facts::forget(facts, &[PathSpec::Object { key: &desc.object }]).await;
            }
            out.deleted.push(digest);
        }
        state.stats.blobs_deleted += 1;
        state.stats.bytes_freed += desc.size;
    }
    let finished = page.next.is_none();
    state.sweep_cursor = page.next;
    Ok(finished)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::Algorithm;
    use crate::oci::manifest::OCI_MANIFEST;
    use crate::oci::name::Reference;
    use crate::storage::manifests;
    use crate::storage::memory::{MemoryBucket, MemoryFacts};
    use futures_executor::block_on;

    const HOUR: u64 = 3600 * 1000;

    fn repo(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    /// Pushes a blob as an upload would (bytes at their canonical key, then commit).
    async fn push_blob(b: &MemoryBucket, name: &RepoName, content: &[u8], now: u64) -> Digest {
        let d = Digest::of(Algorithm::Sha256, content);
        let key = blobs::fresh_data_key(b, &d, &format!("u{now}")).await.unwrap();
        b.put(&key, content.to_vec(), None, PutIf::Always).await.unwrap();
        blobs::commit(b, name, &d, content.len() as u64, key, now).await.unwrap();
        d
    }

    fn image(config: &Digest, layers: &[&Digest]) -> Vec<u8> {
        let layers: Vec<String> = layers
            .iter()
            .map(|l| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{l}","size":1}}"#))
            .collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[{}]}}"#,
            layers.join(",")
        )
        .into_bytes()
    }

    async fn collect(b: &MemoryBucket, f: &MemoryFacts, now: u64, budget: u64, dry_run: bool) -> (GcState, Vec<Digest>) {
        let mut state = GcState::new(now);
        let mut deleted = Vec::new();
        for _ in 0..10_000 {
            let s = step(b, f, &mut state, HOUR, budget, dry_run).await.unwrap();
            deleted.extend(s.deleted);
            if s.finished {
                return (state, deleted);
            }
        }
        panic!("collection did not finish");
    }

    async fn alive(b: &MemoryBucket, d: &Digest) -> bool {
        match blobs::descriptor(b, d).await.unwrap() {
            Some((desc, _)) if !desc.doomed => b.get(&desc.object).await.unwrap().is_some(),
            _ => false,
        }
    }

    #[test]
    fn deleted_image_is_collected_shared_layers_and_young_blobs_kept() {
        block_on(async {
            let (b, f) = (MemoryBucket::new(), MemoryFacts::new(0));
            let n = repo("app");
            let t = 1_000 * HOUR;
            let c = push_blob(&b, &n, b"config", t).await;
            let shared = push_blob(&b, &n, b"shared", t).await;
            let only_a = push_blob(&b, &n, b"a", t).await;
            let only_b = push_blob(&b, &n, b"b", t).await;
            manifests::put(&b, &f, &n, &Reference::parse("a").unwrap(), image(&c, &[&shared, &only_a]), None, t, "m1").await.unwrap();
            let mb = manifests::put(&b, &f, &n, &Reference::parse("b").unwrap(), image(&c, &[&shared, &only_b]), None, t, "m2").await.unwrap();
            manifests::delete(&b, &f, &n, &Reference::Digest(mb.digest.clone())).await.unwrap();
            // A blob pushed just now, named by no manifest yet: inside the grace period.
            let young = push_blob(&b, &n, b"young", t + 2 * HOUR).await;

            // Dry run: reports, changes nothing.
            let before = b.keys();
            let (dry, deleted) = collect(&b, &f, t + 2 * HOUR, 7, true).await;
            assert_eq!(b.keys(), before);
            assert!(deleted.is_empty());
            assert_eq!(dry.stats.blobs_deleted, 2, "image b's own layer and its manifest");

            let (done, deleted) = collect(&b, &f, t + 2 * HOUR, 7, false).await;
            assert_eq!(done.stats, dry.stats);
            assert_eq!(deleted.len(), 2);
            assert!(deleted.contains(&only_b) && deleted.contains(&mb.digest));
            for kept in [&c, &shared, &only_a, &young] {
                assert!(alive(&b, kept).await, "{kept} must survive");
            }
            assert!(!alive(&b, &only_b).await);
            // Image a still pulls.
            let m = manifests::get(&b, &f, &n, &Reference::parse("a").unwrap()).await.unwrap();
            assert_eq!(m.bytes, image(&c, &[&shared, &only_a]));
        });
    }

    #[test]
    fn a_push_racing_the_sweep_never_loses_data() {
        block_on(async {
            let (b, f) = (MemoryBucket::new(), MemoryFacts::new(0));
            let n = repo("app");
            let t = 1_000 * HOUR;
            let c = push_blob(&b, &n, b"config", t).await;
            let old = push_blob(&b, &n, b"old layer", t).await;
            // The collection starts marking at T0: nothing names `old`.
            let t0 = t + 2 * HOUR;
            let mut state = GcState::new(t0);
            while state.phase == Phase::Mark {
                step(&b, &f, &mut state, HOUR, 1, false).await.unwrap();
            }
            // Now, before the sweep reaches it, a manifest naming `old` is pushed: its claim
            // renews the descriptor, so the sweep must keep it.
            let m = manifests::put(&b, &f, &n, &Reference::parse("v1").unwrap(), image(&c, &[&old]), None, t0 + 1000, "m").await.unwrap();
            let mut deleted = Vec::new();
            loop {
                let s = step(&b, &f, &mut state, HOUR, 5, false).await.unwrap();
                deleted.extend(s.deleted);
                if s.finished {
                    break;
                }
            }
            assert!(deleted.is_empty(), "collected {deleted:?}");
            assert!(alive(&b, &old).await && alive(&b, &c).await && alive(&b, &m.digest).await);

            // The other order: the collector dooms first; the pusher then finds a tombstone,
            // stores its own copy and links that.
            let gone = push_blob(&b, &n, b"to be collected", t).await;
            let (_, deleted) = collect(&b, &f, t0 + 2000, 50, false).await;
            assert!(deleted.contains(&gone));
            let again = push_blob(&b, &repo("other"), b"to be collected", t0 + 3000).await;
            assert_eq!(again, gone);
            let link = blobs::linked(&b, &repo("other"), &gone).await.unwrap().unwrap();
            assert!(link.object.starts_with("objects/"), "fresh key, not the doomed one: {}", link.object);
            assert!(alive(&b, &gone).await);
            // `app` still links the collected bytes; a manifest naming the blob there renews
            // that link to the blob's new copy.
            let put = manifests::put(&b, &f, &n, &Reference::parse("v2").unwrap(), image(&c, &[&gone]), None, t0 + 4000, "m9").await;
            assert!(put.is_ok());
            assert_eq!(blobs::linked(&b, &n, &gone).await.unwrap().unwrap().object, link.object);
        });
    }

    #[test]
    fn work_resumes_from_the_cursor() {
        block_on(async {
            let (b, f) = (MemoryBucket::new(), MemoryFacts::new(0));
            let t = 1_000 * HOUR;
            for i in 0..30 {
                push_blob(&b, &repo(&format!("r{i}")), format!("blob {i}").as_bytes(), t).await;
            }
            let mut state = GcState::new(t + 2 * HOUR);
            let mut steps = 0;
            loop {
                steps += 1;
                let before = state.clone();
                let s = step(&b, &f, &mut state, HOUR, 4, false).await.unwrap();
                assert!(s.deleted.len() <= 4);
                // Persisted and reloaded between runs, as the worker does.
                state = serde_json::from_slice(&serde_json::to_vec(&state).unwrap()).unwrap();
                assert!(state != before || s.finished);
                if s.finished {
                    break;
                }
            }
            assert!(steps > 5, "a small budget takes many runs ({steps})");
            assert_eq!(state.stats.blobs_deleted, 30);
        });
    }

    /// 200,000 blobs: 100,000 named by 2,000 manifests, 100,000 named by nothing. The state
    /// carried between runs stays the size of one manifest's references, not of the registry.
    #[test]
    fn state_between_runs_is_independent_of_the_registry_size() {
        block_on(async {
            let (b, f) = (MemoryBucket::new(), MemoryFacts::new(0));
            let t = 1_000 * HOUR;
            let n = repo("big");
            let blob = |i: usize| Digest::of(Algorithm::Sha256, format!("blob {i}").as_bytes());
            // Descriptors and links written directly (as 200,000 pushes would leave them).
            for i in 0..200_000 {
                let d = blob(i);
                let desc = blobs::BlobDescriptor { size: 10, object: format!("objects/{i}/data"), touched: t, doomed: false, marked: 0 };
                b.put(&PathSpec::BlobDescriptor { digest: &d }.key(), desc.to_json(), None, PutIf::Always).await.unwrap();
                if i < 100_000 {
                    b.put(&PathSpec::LayerLink { name: &n, digest: &d }.key(), desc.to_json(), None, PutIf::Always).await.unwrap();
                }
            }
            for m in 0..2_000 {
                let layers: Vec<Digest> = (0..50).map(|j| blob(m * 50 + j)).collect();
                let refs: Vec<&Digest> = layers.iter().skip(1).collect();
                let reference = Reference::parse(&format!("m{m}")).unwrap();
                manifests::put(&b, &f, &n, &reference, image(&layers[0], &refs), None, t, &format!("id{m}")).await.unwrap();
            }
            let mut state = GcState::new(t + 2 * HOUR);
            let (mut peak, mut runs, mut deleted) = (0, 0, 0);
            loop {
                runs += 1;
                let s = step(&b, &f, &mut state, HOUR, 800, false).await.unwrap();
                deleted += s.deleted.len();
                let saved = serde_json::to_vec(&state).unwrap();
                peak = peak.max(saved.len());
                state = GcState::load(&saved).unwrap();
                if s.finished {
                    break;
                }
            }
            eprintln!("200,000 blobs: {runs} runs, peak state {peak} bytes");
            assert_eq!(deleted, 100_000, "every unnamed blob is collected");
            assert_eq!(state.stats.blobs_kept, 102_000, "named blobs and the manifests themselves");
            assert!(peak < 8 * 1024, "peak state {peak} bytes");
            for i in [0, 49, 99_999] {
                assert!(!blobs::descriptor(&b, &blob(i)).await.unwrap().unwrap().0.doomed, "blob {i} is named");
            }
            for i in [100_000, 199_999] {
                assert!(blobs::descriptor(&b, &blob(i)).await.unwrap().unwrap().0.doomed, "blob {i} is named by nothing");
            }
        });
    }
}
