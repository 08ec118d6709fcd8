//! One lifecycle run, as the cron trigger or an admin request starts it: purge abandoned
//! uploads, then advance the garbage collection (`gc`) from where the last run left it, within
//! a budget of bucket operations (the platform limits subrequests per invocation).

use serde::Serialize;

use super::chunking::PartSink;
use super::facts::FactCache;
use super::gc::{self, GcState, Phase, Stats};
use super::paths::PathSpec;
use super::uploads::{Purged, TokenKey, Uploads};
use super::{Bucket, PutIf};
use crate::oci::digest::Digest;
use crate::oci::error::Result;

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
    pub uploads: Purged,
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
            "lifecycle{}: uploads scanned={} purged={} bytes={}; gc {} repositories={} manifests={} blobs scanned={} kept={} deleted={} bytes_freed={}{}; {duration_ms} ms",
            if self.dry_run { " (dry run)" } else { "" },
            self.uploads.scanned,
            self.uploads.purged,
            self.uploads.bytes,
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

/// One run at `now`.
pub async fn run<B, F, K>(bucket: &B, facts: &F, sink: &K, token_key: &TokenKey, now: u64, cfg: &LifecycleConfig) -> Result<Summary>
where
    B: Bucket + ?Sized,
    F: FactCache + ?Sized,
    K: PartSink,
{
    let mut summary = Summary { dry_run: cfg.dry_run, ..Default::default() };
    let uploads = Uploads { bucket, key: token_key };
    summary.uploads = uploads.purge_abandoned(sink, now, cfg.upload_max_age_ms, cfg.budget / 4, cfg.dry_run).await?;
    let budget = cfg.budget - cfg.budget / 4;

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
    let (mut state, etag) = match bucket.get(&key).await? {
        Some((bytes, etag)) => (serde_json::from_slice(&bytes).unwrap_or_else(|_| GcState::new(now)), Some(etag)),
        None => (GcState::new(now), None),
    };
    if state.lease_until > now {
        summary.gc_skipped = Some("another run holds the collection".into());
        summary.gc = state.stats;
        summary.gc_phase = state.phase;
        return Ok(summary);
    }
    state.lease_until = now + GC_LEASE_MS;
    let cond = etag.map(PutIf::EtagMatches).unwrap_or(PutIf::Always);
    let Some(held) = bucket.put(&key, serde_json::to_vec(&state).expect("serializable"), None, cond).await? else {
        summary.gc_skipped = Some("another run took the collection".into());
        return Ok(summary);
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
