//! Purging abandoned uploads: every upload started more than a maximum age ago that no request
//! holds is taken with the lease a commit takes (so a purge never races a commit or a part
//! write, and a write without a lease that read the state before fails to save and undoes
//! itself), its multipart upload aborted, and all it wrote deleted with its state.

use serde::{Deserialize, Serialize};

use super::chunking::PartSink;
use super::paths::PathSpec;
use super::upload_state::UploadState;
use super::uploads::Uploads;
use super::{Bucket, PutIf};
use crate::oci::error::Result;

/// What a purge of abandoned uploads found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purged {
    pub scanned: u64,
    pub purged: u64,
    /// Bytes the purged uploads had received.
    pub bytes: u64,
}

/// Removes every upload started more than `max_age_ms` before `now` that no request is writing.
/// Stops after about `budget` bucket operations; a dry run only counts.
pub async fn purge_abandoned<B: Bucket + ?Sized, K: PartSink>(uploads: &Uploads<'_, B>, sink: &K, now: u64, max_age_ms: u64, budget: u64, dry_run: bool) -> Result<Purged> {
    let prefix = PathSpec::Uploads.key();
    let mut out = Purged::default();
    let mut spent = 0;
    let mut after: Option<String> = None;
    while spent < budget {
        let page = uploads.bucket.list(&prefix, after.as_deref(), super::MAX_PAGE).await?;
        spent += 1;
        for key in &page.keys {
            if spent >= budget {
                break;
            }
            spent += 1;
            let Some((bytes, etag)) = uploads.bucket.get(key).await? else { continue };
            let Ok(mut state) = serde_json::from_slice::<UploadState>(&bytes) else { continue };
            out.scanned += 1;
            if state.started_at + max_age_ms > now || state.lease_until > now {
                continue;
            }
            if !dry_run {
                state.lease_until = now + uploads.lease_ms;
                spent += 3;
                if uploads.bucket.put(key, state.to_json(), None, PutIf::EtagMatches(etag)).await?.is_none() {
                    // A request took it meanwhile: not abandoned after all.
                    continue;
                }
                uploads.discard(&state, sink).await?;
            }
            out.purged += 1;
            out.bytes += state.offset;
        }
        after = page.keys.last().cloned();
        if !page.truncated {
            break;
        }
    }
    Ok(out)
}
