//! One lifecycle run, as the cron trigger or an admin request starts it: purge abandoned
//! uploads, evict mirrored manifests nobody pulls (`eviction`, when an upstream asks for it),
//! delete what the retention rules say goes (`retention`, when `RETENTION` is set), recount
//! the storage totals (`recount`, when they are kept; once a day), then
//! advance the garbage collection (`gc`) from where the last run left it, within a budget of
//! bucket operations (the platform limits subrequests per invocation).

use serde::Serialize;

use super::chunking::PartSink;
use super::eviction::{self, Evicted};
use super::facts::FactCache;
use super::gc::{self, GcState, Phase, Stats};
use super::paths::PathSpec;
use super::purge::{self, Purged};
use super::recount::{self, Recounted};
use super::stats::TallyStore;
use super::retention::{self, ImmutableFor, Retained, RuleFor};
use super::uploads::{Uploads, DEFAULT_LEASE_MS};
use super::{Bucket, PutIf};
use crate::oci::digest::Digest;
use crate::oci::error::Result;
use crate::oci::name::RepoName;

/// How long a repository keeps a mirrored manifest nobody pulls (ms; None: not evicted).
pub type EvictAfter<'a> = &'a dyn Fn(&RepoName) -> Option<u64>;

/// The policies a run applies besides purging uploads and collecting garbage; a step whose
/// policy is absent is skipped (and costs nothing).
pub struct Policies<'a> {
    /// Mirror eviction: how long each repository keeps what nobody pulls.
    pub evict_after: Option<EvictAfter<'a>>,
    /// Retention: the rule of each repository.
    pub retention: Option<RuleFor<'a>>,
    /// Immutable tags (never deleted by retention): the rule naming a tag, if any.
    pub immutable: ImmutableFor<'a>,
}

/// How long a run holds the collection before another may take it over (ms).
pub const GC_LEASE_MS: u64 = 10 * 60 * 1000;

#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// Uploads started longer ago than this are abandoned (ms).
    pub upload_max_age_ms: u64,
    /// Blobs touched more recently than this before a collection started are kept (ms).
    pub grace_ms: u64,
    /// Bucket operations per run.
    pub budget: u64,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub dry_run: bool,
    /// When the run started and ended (ms since the epoch; the end is set by the caller).
    pub started_ms: u64,
    pub finished_ms: u64,
    pub uploads: Purged,
    /// Mirrored manifests evicted (absent when no upstream evicts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eviction: Option<Evicted>,
    /// Tags and manifests deleted by the retention rules (absent without rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retained>,
    /// The storage totals' recount (absent when no totals are kept, and in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recount: Option<Recounted>,
    pub gc: Stats,
    pub gc_phase: Phase,
    /// The collection completed in this run (else it resumes in the next).
    pub gc_finished: bool,
    /// Why the collection did not advance, if it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc_skipped: Option<String>,
    /// Digests whose bytes were deleted (for the caller's edge cache).
    #[serde(skip)]
    pub deleted: Vec<Digest>,
}

impl Summary {
    /// The run's one log line.
    pub fn line(&self, duration_ms: u64) -> String {
        let g = &self.gc;
        format!(
            "lifecycle{}: uploads scanned={} purged={} bytes={};{}{}{} gc {} repositories={} manifests={} blobs scanned={} kept={} deleted={} bytes_freed={}{}; {duration_ms} ms",
            if self.dry_run { " (dry run)" } else { "" },
            self.uploads.scanned,
            self.uploads.purged,
            self.uploads.bytes,
            self.eviction
                .as_ref()
                .map(|e| format!(" mirror eviction scanned={} evicted={};", e.manifests_scanned, e.manifests_evicted))
                .unwrap_or_default(),
            self.retention
                .as_ref()
                .map(|r| format!(
                    " retention repositories={} manifests scanned={} tags deleted={} manifests deleted={};",
                    r.repositories, r.manifests_scanned, r.tags_deleted, r.manifests_deleted
                ))
                .unwrap_or_default(),
            self.recount
                .as_ref()
                .filter(|r| !r.idle)
                .map(|r| format!(" stats recount scanned={} read={} corrected={}{};", r.keys_scanned, r.read, r.corrected, if r.finished { " finished" } else { "" }))
                .unwrap_or_default(),
            if self.gc_finished { "finished" } else { "in progress" },
            g.repositories,
            g.manifests,
            g.blobs_scanned,
            g.blobs_kept,
            g.blobs_deleted,
            g.bytes_freed,
            self.gc_skipped.as_deref().map(|s| format!(" (skipped: {s})")).unwrap_or_default(),
        )
    }
}

/// What a run found when it tried to take the collection.
enum Lease {
    /// Taken: the state to advance and the etag of the lease just written.
    Held { state: GcState, etag: String },
    /// Another run's lease is still live.
    Busy(GcState),
    /// Another run wrote the state between our read and our write.
    Lost,
}

/// Takes the collection's lease at `now` by a conditional write of its state: on the etag read,
/// or, when there is no state yet (a first run, or the last collection finished), only if no
/// other run created it meanwhile. So two runs never both hold it.
async fn take_collection<B: Bucket + ?Sized>(bucket: &B, now: u64) -> Result<Lease> {
    let key = PathSpec::GcState.key();
    let (mut state, etag) = match bucket.get(&key).await? {
        // A state of another layout (or unreadable) starts the collection over.
        Some((bytes, etag)) => (GcState::load(&bytes).unwrap_or_else(|| GcState::new(now)), Some(etag)),
        None => (GcState::new(now), None),
    };
    if state.lease_until > now {
        return Ok(Lease::Busy(state));
    }
    state.lease_until = now + GC_LEASE_MS;
    let cond = etag.map(PutIf::EtagMatches).unwrap_or(PutIf::Absent);
    Ok(match bucket.put(&key, serde_json::to_vec(&state).expect("serializable"), None, cond).await? {
        Some(etag) => Lease::Held { state, etag },
        None => Lease::Lost,
    })
}

/// One run at `now`, applying `policies` and recounting the storage `totals` (when kept). Each
/// step takes a quarter of the budget (the recount an eighth); the collection takes what is
/// left, at least a quarter.
pub async fn run<B, F, K>(
    bucket: &B,
    facts: &F,
    sink: &K,
    now: u64,
    cfg: &LifecycleConfig,
    policies: &Policies<'_>,
    totals: Option<&dyn TallyStore>,
) -> Result<Summary>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
    K: PartSink,
{
    let mut summary = Summary { dry_run: cfg.dry_run, started_ms: now, ..Default::default() };
    let clock = move || now;
    let uploads = Uploads { bucket, lease_ms: DEFAULT_LEASE_MS, clock: &clock };
    summary.uploads = purge::purge_abandoned(&uploads, sink, now, cfg.upload_max_age_ms, cfg.budget / 4, cfg.dry_run).await?;
    let mut budget = cfg.budget - cfg.budget / 4;
    if let Some(policy) = policies.evict_after {
        summary.eviction = Some(eviction::step(bucket, facts, now, cfg.budget / 4, cfg.dry_run, policy).await?);
        budget -= cfg.budget / 4;
    }
    if let Some(rule_for) = policies.retention {
        let step = retention::step(bucket, facts, now, cfg.budget / 4, cfg.dry_run, rule_for, policies.immutable).await?;
        budget = budget.saturating_sub(step.operations.max(cfg.budget / 4)).max(cfg.budget / 4);
        summary.retention = Some(step);
    }
    if let Some(store) = totals.filter(|_| !cfg.dry_run) {
        // An eighth: a pass that finds nothing to repair costs two operations per 1,000 keys.
        let step = recount::step(bucket, store, now, cfg.budget / 8).await?;
        if !step.idle {
            budget = budget.saturating_sub(cfg.budget / 8).max(cfg.budget / 4);
        }
        summary.recount = Some(step);
    }

    if cfg.dry_run {
        // From scratch, in memory: a dry run writes nothing, not even progress.
        let mut state = GcState::new(now);
        let step = gc::step(bucket, facts, &mut state, cfg.grace_ms, budget, true).await?;
        summary.gc = state.stats;
        summary.gc_phase = state.phase;
        summary.gc_finished = step.finished;
        return Ok(summary);
    }

    let key = PathSpec::GcState.key();
    let (mut state, held) = match take_collection(bucket, now).await? {
        Lease::Held { state, etag } => (state, etag),
        Lease::Busy(state) => {
            summary.gc_skipped = Some("another run holds the collection".into());
            summary.gc = state.stats;
            summary.gc_phase = state.phase;
            return Ok(summary);
        }
        Lease::Lost => {
            summary.gc_skipped = Some("another run took the collection".into());
            return Ok(summary);
        }
    };
    let step = gc::step(bucket, facts, &mut state, cfg.grace_ms, budget, false).await?;
    summary.gc = state.stats.clone();
    summary.gc_phase = state.phase;
    summary.gc_finished = step.finished;
    summary.deleted = step.deleted;
    if step.finished {
        bucket.delete(&[key]).await?;
    } else {
        state.lease_until = 0;
        bucket.put(&key, serde_json::to_vec(&state).expect("serializable"), None, PutIf::EtagMatches(held)).await?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryBucket;
    use futures_executor::block_on;
    use futures_util::future::join_all;

    #[test]
    fn racing_runs_never_both_hold_the_collection() {
        block_on(async {
            let b = MemoryBucket::interleaving();
            // No state yet (first run), then after a finished collection (state deleted again),
            // then with a stale lease left by a dead run.
            for round in 0..3u64 {
                let now = round * 2 * GC_LEASE_MS + 1;
                let runs = join_all((0..4).map(|_| take_collection(&b, now))).await;
                let held = runs.iter().filter(|r| matches!(r, Ok(Lease::Held { .. }))).count();
                assert_eq!(held, 1, "round {round}: exactly one run takes the collection");
                assert!(runs.iter().all(|r| matches!(r, Ok(Lease::Held { .. } | Lease::Lost | Lease::Busy(_)))));
                if round == 0 {
                    b.delete(&[PathSpec::GcState.key()]).await.unwrap();
                }
            }
        });
    }
}
