//! The recount of the storage totals (`stats`), a lifecycle step: once a day it walks every
//! counted key in the bucket (`repositories/`, then `blobs/`) in listing pages and has the
//! totals' store reconcile each page with its entries of the same key range. What a lost batch
//! of changes left wrong is repaired, and what was stored before the totals were kept is
//! counted: a key the store does not know (or knows only from before the object was written)
//! is read for its size, one read each; every other key costs nothing beyond its share of a
//! listing. In a registry whose changes all arrived, a pass is one listing and one request to
//! the store per 1,000 keys.
//!
//! The pass resumes from a cursor (`gc/recount`) within its share of the run's budget; the
//! cursor also remembers when the last pass finished. A dry run skips the step (it would write
//! to the store).

use serde::{Deserialize, Serialize};

use super::paths::PathSpec;
use super::stats::{Change, RecountPage, TallyStore};
use super::{cursor, Bucket, MAX_PAGE};
use crate::oci::error::Result;

/// How long after one pass finished the next begins (ms).
pub const RECOUNT_EVERY_MS: u64 = 24 * 3600 * 1000;
/// Entries changed less than this long before a page was listed are left alone: their change
/// may have been made after the listing (clocks of different machines differ a little).
pub const MARGIN_MS: u64 = 60_000;
/// The prefixes a pass walks, in order.
const PREFIXES: [&str; 2] = ["repositories/", "blobs/"];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    /// When the last pass finished (ms; 0: none yet).
    finished_at: u64,
    /// The pass under way: the prefix it is in ([`PREFIXES`]) and the last key done there.
    prefix: usize,
    after: Option<String>,
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Recounted {
    /// Counted keys the pages listed.
    pub keys_scanned: u64,
    /// Totals corrected (by a count or size that was wrong or missing), and values read.
    pub corrected: u64,
    pub read: u64,
    /// The pass finished in this step (the next begins a day later).
    pub finished: bool,
    /// No pass was due.
    pub idle: bool,
}

/// One step at `now`, within about `budget` operations (bucket operations and requests to the
/// store alike).
pub async fn step<B, T>(bucket: &B, store: &T, now: u64, budget: u64) -> Result<Recounted>
where
    B: Bucket + ?Sized,
    T: TallyStore + ?Sized,
{
    let spec = PathSpec::RecountCursor;
    let mut cursor: Cursor = cursor::load(bucket, &spec, false).await?;
    let mut out = Recounted::default();
    if cursor.finished_at > 0 && now < cursor.finished_at + RECOUNT_EVERY_MS {
        out.idle = true;
        return Ok(out);
    }
    let mut ops = 1;
    // A page costs a listing, the store's reconcile, its reads and one apply.
    while ops + 4 <= budget {
        let Some(prefix) = PREFIXES.get(cursor.prefix) else { break };
        let listing = bucket.list(prefix, cursor.after.as_deref(), MAX_PAGE).await?;
        let listed: Vec<(String, u64)> = listing
            .keys
            .iter()
            .zip(&listing.uploaded)
            .filter(|(k, _)| PathSpec::tallied_of_key(k).is_some())
            .map(|(k, t)| (k.clone(), *t))
            .collect();
        let upto = listing.keys.last().filter(|_| listing.truncated).cloned();
        let page = RecountPage { prefix: prefix.to_string(), after: cursor.after.clone(), upto, listed, before: now.saturating_sub(MARGIN_MS) };
        let reconciled = store.reconcile(&page).await?;
        ops += 2;
        out.keys_scanned += page.listed.len() as u64;
        out.corrected += reconciled.corrected as u64;
        // Reads within the budget. A page whose unknown keys are not all read is done up to
        // the key before the first unread one, and the next step lists from there.
        let mut changes = Vec::new();
        let mut cut = None;
        let written = |key: &str| page.listed.iter().find(|(k, _)| k == key).map_or(now, |(_, t)| *t);
        for key in &reconciled.unknown {
            if ops + 2 > budget {
                cut = listing.keys.iter().position(|k| k == key);
                break;
            }
            ops += 1;
            out.read += 1;
            // Gone since the listing: its delete reaches the store on its own.
            if let Some((bytes, _)) = bucket.get(key).await? {
                changes.extend(Change::of_put(key, &bytes, written(key)));
            }
        }
        if !changes.is_empty() {
            out.corrected += store.apply(&changes).await? as u64;
            ops += 1;
        }
        match cut {
            Some(i) => {
                if i > 0 {
                    cursor.after = Some(listing.keys[i - 1].clone());
                }
                break;
            }
            None if listing.truncated => cursor.after = listing.keys.last().cloned(),
            None => {
                cursor.prefix += 1;
                cursor.after = None;
            }
        }
    }
    if cursor.prefix >= PREFIXES.len() {
        cursor = Cursor { finished_at: now, prefix: 0, after: None };
        out.finished = true;
    }
    cursor::save(bucket, &spec, &cursor, false, false).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::{Algorithm, Digest};
    use crate::oci::name::{Reference, RepoName};
    use crate::storage::memory::{MemoryBucket, MemoryFacts, MemoryTally};
    use crate::storage::stats::{apply_all, StatsPage, TallyRows};
    use crate::storage::{blobs, manifests, stats};
    use futures_executor::block_on;

    const HOUR: u64 = 3600 * 1000;

    /// Pushes `images` one-layer images (each with its config, layer and a tag) to `name`.
    async fn push(b: &MemoryBucket, f: &MemoryFacts, name: &str, images: usize) {
        let n = RepoName::parse(name).unwrap();
        for i in 0..images {
            let mut digests = Vec::new();
            for content in [format!("config {name} {i}"), format!("layer {name} {i}")] {
                let d = Digest::of(Algorithm::Sha256, content.as_bytes());
                blobs::commit(b, &n, &d, content.len() as u64, format!("objects/{name}/{i}/{}", d.hex()), 1).await.unwrap();
                digests.push((d, content.len()));
            }
            let m = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
                digests[0].0, digests[0].1, digests[1].0, digests[1].1
            );
            manifests::put(b, f, &n, &Reference::parse(&format!("t{i}")).unwrap(), m.into_bytes(), None, 1, &format!("{name}-{i}")).await.unwrap();
        }
    }

    fn totals(rows: &MemoryTally) -> StatsPage {
        stats::page(rows, "", 1000).unwrap()
    }

    /// Runs steps of `budget` at `now` until a pass finishes; returns how many it took.
    async fn pass(b: &MemoryBucket, rows: &MemoryTally, now: u64, budget: u64) -> usize {
        for runs in 1..=1000 {
            let out = step(b, rows, now, budget).await.unwrap();
            assert!(!out.idle);
            if out.finished {
                return runs;
            }
        }
        panic!("the pass never finished");
    }

    #[test]
    fn a_pass_counts_what_was_stored_before_and_repairs_lost_changes() {
        block_on(async {
            let (b, f) = (MemoryBucket::counting(), MemoryFacts::new(0));
            b.set_now(HOUR);
            push(&b, &f, "old/app", 3).await;
            // What was stored before the totals were kept: its changes never reach the store.
            b.ledger().take();
            let rows = MemoryTally::default();
            b.set_now(2 * HOUR);
            push(&b, &f, "new/app", 2).await;
            manifests::delete(&b, &f, &RepoName::parse("old/app").unwrap(), &Reference::parse("t0").unwrap()).await.unwrap();
            let mut changes = b.ledger().take();
            // The store got these; a batch with the tag delete and one layer link was lost.
            let lost: Vec<Change> = changes.iter().filter(|c| c.key.ends_with("/_manifests/tags/t0") || c.key.contains("new/app/_layers")).cloned().collect();
            changes.retain(|c| !lost.contains(c));
            assert!(!lost.is_empty());
            apply_all(&rows, &changes, 2 * HOUR).unwrap();

            // The truth: every change, applied to a store that missed none.
            let truth = MemoryTally::default();
            let (b2, f2) = (MemoryBucket::counting(), MemoryFacts::new(0));
            b2.set_now(HOUR);
            push(&b2, &f2, "old/app", 3).await;
            b2.set_now(2 * HOUR);
            push(&b2, &f2, "new/app", 2).await;
            manifests::delete(&b2, &f2, &RepoName::parse("old/app").unwrap(), &Reference::parse("t0").unwrap()).await.unwrap();
            apply_all(&truth, &b2.ledger().take(), 2 * HOUR).unwrap();
            assert_ne!(totals(&rows), totals(&truth));

            // A small budget takes several steps, resuming from the cursor.
            let runs = pass(&b, &rows, 3 * HOUR, 8).await;
            assert!(runs > 3, "{runs} steps");
            assert_eq!(totals(&rows), totals(&truth));
            assert_eq!(totals(&rows).repositories.iter().map(|r| r.totals.tags).sum::<u64>(), 4);

            // No pass is due for a day; the next one, in a registry whose changes all arrived,
            // corrects and reads nothing.
            let idle = step(&b, &rows, 4 * HOUR, 100).await.unwrap();
            assert!(idle.idle && !idle.finished);
            let next = step(&b, &rows, 3 * HOUR + RECOUNT_EVERY_MS, 1000).await.unwrap();
            assert!(next.finished);
            assert_eq!((next.corrected, next.read), (0, 0));
            assert_eq!(next.keys_scanned, b.keys().iter().filter(|k| PathSpec::tallied_of_key(k).is_some()).count() as u64);
            assert_eq!(totals(&rows), totals(&truth));
        });
    }

    #[test]
    fn changes_that_arrive_after_the_pass_count_once() {
        block_on(async {
            let (b, f) = (MemoryBucket::counting(), MemoryFacts::new(0));
            let rows = MemoryTally::default();
            b.set_now(HOUR);
            push(&b, &f, "a", 1).await;
            // A push whose changes are still on their way when the pass lists its objects.
            b.set_now(2 * HOUR);
            push(&b, &f, "b", 1).await;
            let late = b.ledger().take();
            let now = 2 * HOUR + MARGIN_MS / 2;
            pass(&b, &rows, now, 1000).await;
            // Keys written before the pass were counted from the listing.
            assert_eq!(rows.totals("b").unwrap().manifests, 1);
            // The changes arrive after the pass: nothing counts twice.
            apply_all(&rows, &late, now).unwrap();
            assert_eq!(rows.totals("b").unwrap().manifests, 1);
            assert_eq!(rows.totals("a").unwrap().blobs, 2);
        });
    }
}
