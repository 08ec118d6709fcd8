//! Where a resumable lifecycle step (mirror eviction, retention) stopped: a small JSON record
//! at its own key, read when a run starts and written when it stops midway; a step that went
//! through everything deletes it, so the next run starts over. A dry run neither reads nor
//! writes it: it starts from the beginning and leaves nothing behind.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::paths::PathSpec;
use super::{Bucket, PutIf};
use crate::oci::error::Result;

/// The cursor at `spec` (one that does not parse starts over), or the start for a dry run.
pub async fn load<B, C>(bucket: &B, spec: &PathSpec<'_>, dry_run: bool) -> Result<C>
where
    B: Bucket + ?Sized,
    C: DeserializeOwned + Default,
{
    if dry_run {
        return Ok(C::default());
    }
    Ok(match bucket.get(&spec.key()).await? {
        Some((bytes, _)) => serde_json::from_slice(&bytes).unwrap_or_default(),
        None => C::default(),
    })
}

/// Keeps `cursor` for the next run, or deletes it when the step `finished`; nothing in a dry run.
pub async fn save<B, C>(bucket: &B, spec: &PathSpec<'_>, cursor: &C, finished: bool, dry_run: bool) -> Result<()>
where
    B: Bucket + ?Sized,
    C: Serialize,
{
    if dry_run {
        return Ok(());
    }
    if finished {
        bucket.delete(&[spec.key()]).await
    } else {
        bucket.put(&spec.key(), serde_json::to_vec(cursor).expect("serializable"), None, PutIf::Always).await.map(|_| ())
    }
}
