//! Upload sessions: start, append a chunk, commit, cancel (the state they keep is
//! `upload_state`, the re-chunking of bodies `chunking`, the purge of abandoned ones `purge`).
//!
//! Starting an upload writes nothing: the upload URL's signed token describes a fresh upload
//! (its id, start time and algorithm; `auth::upload_url`) until its first write creates the
//! state, `uploads/<id>/state`, by a conditional put that only the first writer wins. A fresh
//! upload whose whole blob arrives in one PUT never has a state: its bytes become the upload's
//! single piece (the pending piece at offset 0, written once, R2 verifying the digest), which
//! also marks the upload as used. So every upload costs one class-A operation less, and `POST`
//! then `PUT` with the body costs three: the bytes, the descriptor and the link.
//!
//! A fresh token is refused once anything of its upload is in the bucket (a state, the piece at
//! offset 0 or the completed object; two class-B heads) and once it is older than the purge's
//! maximum age (checked by the caller), so it never starts an upload twice. Where none of those
//! is left (a cancel, a commit that failed its digest, one that found the blob stored already
//! and kept no bytes of its own), a closed state is written instead, so the token is refused
//! then too, until the purge removes the closed state with the upload's maximum age.
//!
//! State lives in the bucket, never in KV: the next PATCH must see the last one's offset. Every
//! change is a conditional put on the etag read before it, and a chunk first takes a short lease
//! the same way, so of two racing PATCHes exactly one writes parts; the other gets 429
//! TOOMANYREQUESTS with `Retry-After` and changes nothing. The lease is short
//! ([`DEFAULT_LEASE_MS`]) and renewed while the body streams, so a long chunk keeps it while a
//! worker that dies mid-chunk frees the upload within one lease: the state still describes the
//! last chunk that completed, and the client resumes from the offset `GET` reports.
//!
//! A chunk names the offset its upload URL vouches for (checked by the caller); a genuine but
//! stale one (an offset the upload has moved past) gets 416 with the real `Range`.

use super::blobs;
use super::chunking::{self, BodySource, PartSink};
use super::paths::PathSpec;
use super::upload_state::UploadState;
use super::{Bucket, PutIf};
use crate::oci::digest::{Algorithm, Digest};
use crate::oci::error::{Code, RegistryError, Result};
use crate::oci::name::RepoName;

/// How long a chunk holds an upload without renewing before another request may take it over.
/// A request renews it while it streams the body, once a third of it has passed.
pub const DEFAULT_LEASE_MS: u64 = 30_000;

fn range_invalid(state: &UploadState, detail: impl Into<String>) -> RegistryError {
    RegistryError::new(Code::RangeInvalid, detail).with_range(state.offset)
}

fn unknown(id: &str) -> RegistryError {
    RegistryError::new(Code::BlobUploadUnknown, format!("upload {id} unknown"))
}

/// What the upload URL a request came with vouches for (its token, checked by the caller).
#[derive(Debug, Clone, Copy)]
pub enum Vouched<'a> {
    /// The upload is at this offset, its state in the bucket.
    Offset(u64),
    /// Nothing was written to the upload yet; this is the state [`Uploads::start`] described.
    Fresh(&'a UploadState),
    /// Nothing (a state in the bucket is trusted as it is).
    Unchecked,
}

/// The session store.
pub struct Uploads<'a, B: Bucket + ?Sized> {
    pub bucket: &'a B,
    /// Lease length (ms).
    pub lease_ms: u64,
    /// The current time (ms), for renewing the lease while a body streams.
    pub clock: &'a dyn Fn() -> u64,
}

/// A live lease held by another request: 429, retry when it runs out.
fn busy(lease_until: u64, now: u64) -> RegistryError {
    let seconds = lease_until.saturating_sub(now).div_ceil(1000).max(1);
    RegistryError::new(Code::TooManyRequests, "another request is writing to this upload; retry after the Retry-After seconds")
        .with_retry_after(seconds)
}

/// The request body, renewing the upload's lease as it is read: the persisted state (as it was
/// when the lease was taken, with a later `lease_until`) is put again on its etag.
struct Renewing<'a, S: BodySource, B: Bucket + ?Sized> {
    inner: &'a mut S,
    bucket: &'a B,
    persisted: UploadState,
    etag: String,
    lease_ms: u64,
    clock: &'a dyn Fn() -> u64,
}

#[async_trait::async_trait(?Send)]
impl<S: BodySource, B: Bucket + ?Sized> BodySource for Renewing<'_, S, B> {
    type Piece = S::Piece;

    async fn next(&mut self) -> Result<Option<S::Piece>> {
        let now = (self.clock)();
        if now + self.lease_ms * 2 / 3 >= self.persisted.lease_until {
            self.persisted.lease_until = now + self.lease_ms;
            let key = PathSpec::UploadState { id: &self.persisted.id }.key();
            self.etag = self
                .bucket
                .put(&key, self.persisted.to_json(), None, PutIf::EtagMatches(self.etag.clone()))
                .await?
                .ok_or_else(|| RegistryError::new(Code::BlobUploadInvalid, "upload was taken over by another request"))?;
        }
        self.inner.next().await
    }

    fn remaining(&self) -> Option<u64> {
        self.inner.remaining()
    }
}

/// A loaded state and the etag it was read with.
#[derive(Debug)]
pub struct Loaded {
    pub state: UploadState,
    pub etag: String,
}

impl<B: Bucket + ?Sized> Uploads<'_, B> {
    /// A new upload: nothing is written (see the module docs); the state describes it for the
    /// upload URL's token.
    pub fn start(&self, name: &RepoName, id: String, now: u64, algorithm: Algorithm) -> UploadState {
        UploadState::new(id, name, now, algorithm)
    }

    /// The stored state of upload `id` of `name`, if there is one; a closed upload is unknown.
    pub async fn find(&self, name: &RepoName, id: &str) -> Result<Option<Loaded>> {
        let Some((bytes, etag)) = self.bucket.get(&PathSpec::UploadState { id }.key()).await? else { return Ok(None) };
        let state: UploadState = serde_json::from_slice(&bytes).map_err(|e| RegistryError::internal(format!("corrupt upload state: {e}")))?;
        if state.name != name.as_str() || state.closed {
            return Err(unknown(id));
        }
        Ok(Some(Loaded { state, etag }))
    }

    pub async fn load(&self, name: &RepoName, id: &str) -> Result<Loaded> {
        self.find(name, id).await?.ok_or_else(|| unknown(id))
    }

    /// A fresh upload's token is good only while nothing of the upload is stored: no piece, no
    /// completed object (a state is looked for by the caller).
    pub async fn ensure_unused(&self, id: &str) -> Result<()> {
        for key in [PathSpec::UploadPending { id, offset: 0 }.key(), PathSpec::UploadObject { id }.key()] {
            if self.bucket.head(&key).await?.is_some() {
                return Err(unknown(id));
            }
        }
        Ok(())
    }

    /// The upload as a status request sees it: its stored state, or the fresh upload the URL
    /// describes if nothing of it is stored.
    pub async fn peek(&self, name: &RepoName, id: &str, vouched: Vouched<'_>) -> Result<UploadState> {
        match (self.find(name, id).await?, vouched) {
            (Some(Loaded { state, .. }), _) => Ok(state),
            (None, Vouched::Fresh(fresh)) => {
                self.ensure_unused(id).await?;
                Ok(fresh.clone())
            }
            (None, _) => Err(unknown(id)),
        }
    }

    /// Closes the upload for good: a closed state takes its place, so its URLs are refused
    /// until the purge removes it with the upload's maximum age.
    pub async fn close(&self, state: &UploadState) -> Result<()> {
        // Nothing of it stays that a purge would have to find: no pieces, parts or lease.
        let closed = UploadState { closed: true, offset: 0, multipart_id: None, parts: Vec::new(), pending: Vec::new(), lease_until: 0, ..state.clone() };
        self.bucket.put(&PathSpec::UploadState { id: &state.id }.key(), closed.to_json(), None, PutIf::Always).await?;
        Ok(())
    }

    /// Loads the state for a write through a URL vouching for offset `vouched`, checks it and
    /// the client's `Content-Range` start against the offset, and takes the lease.
    pub async fn acquire(&self, name: &RepoName, id: &str, vouched: Vouched<'_>, range_start: Option<u64>, now: u64) -> Result<Loaded> {
        let Some(Loaded { mut state, etag }) = self.find(name, id).await? else {
            return match vouched {
                Vouched::Fresh(fresh) => self.begin(fresh, range_start, now).await,
                _ => Err(unknown(id)),
            };
        };
        let expected = match vouched {
            Vouched::Offset(v) => Some(v),
            Vouched::Fresh(_) => Some(0),
            Vouched::Unchecked => None,
        };
        if let Some(v) = expected {
            if v != state.offset {
                return Err(range_invalid(&state, format!("stale upload location (offset {v})")));
            }
        }
        if let Some(start) = range_start {
            if start != state.offset {
                return Err(range_invalid(&state, format!("Content-Range starts at {start}")));
            }
        }
        if state.lease_until > now {
            return Err(busy(state.lease_until, now));
        }
        state.lease_until = now + self.lease_ms;
        let key = PathSpec::UploadState { id }.key();
        let etag = self
            .bucket
            .put(&key, state.to_json(), None, PutIf::EtagMatches(etag))
            .await?
            .ok_or_else(|| busy(now + self.lease_ms, now))?;
        Ok(Loaded { state, etag })
    }

    /// The first write of a fresh upload: its state is created, leased, by a conditional put
    /// that only the first writer wins (a racing one gets 429, as it would for a lease).
    async fn begin(&self, fresh: &UploadState, range_start: Option<u64>, now: u64) -> Result<Loaded> {
        if let Some(start) = range_start.filter(|s| *s != 0) {
            return Err(range_invalid(fresh, format!("Content-Range starts at {start}")));
        }
        self.ensure_unused(&fresh.id).await?;
        let mut state = fresh.clone();
        state.lease_until = now + self.lease_ms;
        let key = PathSpec::UploadState { id: &state.id }.key();
        let etag = self.bucket.put(&key, state.to_json(), None, PutIf::Absent).await?.ok_or_else(|| busy(now + self.lease_ms, now))?;
        Ok(Loaded { state, etag })
    }

    /// Saves `state` (lease released) if nobody took the upload over meanwhile.
    pub async fn release(&self, mut state: UploadState, etag: String) -> Result<String> {
        state.lease_until = 0;
        let key = PathSpec::UploadState { id: &state.id }.key();
        self.bucket
            .put(&key, state.to_json(), None, PutIf::EtagMatches(etag))
            .await?
            .ok_or_else(|| RegistryError::new(Code::BlobUploadInvalid, "upload was taken over by another request"))
    }

    /// Appends one request body. Returns the new state.
    pub async fn append<S, K>(&self, held: Loaded, source: &mut S, sink: &K, max_body: u64, part_size: Option<u64>) -> Result<Loaded>
    where
        S: BodySource,
        K: PartSink<Piece = S::Piece>,
    {
        let Loaded { state: original, etag } = held;
        let mut state = original.clone();
        let mut hasher = state.hasher()?;
        let mut body = Renewing { inner: source, bucket: self.bucket, persisted: original.clone(), etag, lease_ms: self.lease_ms, clock: self.clock };
        let appended = chunking::append(&mut state, &mut hasher, &mut body, sink, max_body, part_size).await;
        let etag = body.etag;
        match appended {
            Ok(absorbed) => {
                state.save_hasher(&hasher);
                let etag = self.release(state.clone(), etag).await?;
                self.bucket.delete(&absorbed).await?;
                state.lease_until = 0;
                Ok(Loaded { state, etag })
            }
            Err(e) => {
                // Nothing of this chunk counts; give the upload back as it was.
                let _ = self.release(original, etag).await;
                Err(e)
            }
        }
    }

    /// Finishes the upload as `digest`. On a mismatch the upload is discarded whole.
    ///
    /// The bytes were hashed once, as they arrived, with the upload's algorithm (sha256 unless
    /// the client named another with `?digest-algorithm=`). A digest of another algorithm is
    /// verified by reading the stored bytes back once, streamed: the price of a commit the
    /// client did not announce, paid only then.
    pub async fn commit<K: PartSink>(&self, name: &RepoName, held: Loaded, digest: &Digest, sink: &K, now: u64) -> Result<blobs::BlobDescriptor> {
        let Loaded { state, .. } = held;
        let mismatch = |computed: &dyn std::fmt::Display| {
            RegistryError::new(Code::DigestInvalid, format!("uploaded content has digest {computed}, not {digest}"))
        };
        if digest.algorithm() == state.algorithm {
            let computed = state.hasher()?.finish();
            if &computed != digest {
                self.discard(&state, sink).await?;
                self.close(&state).await?;
                return Err(mismatch(&computed));
            }
        }
        let (object, obsolete) = chunking::finish(&state, sink).await?;
        if digest.algorithm() != state.algorithm {
            let computed = sink.digest_of(&object, digest.algorithm()).await?;
            if computed.as_ref() != Some(digest) {
                self.discard(&state, sink).await?;
                self.close(&state).await?;
                return Err(mismatch(&computed.map(|d| d.to_string()).unwrap_or_else(|| "unknown (object missing)".into())));
            }
        }
        // Losing to an upload of the same content deletes this one's object (one copy).
        let (desc, _created) = blobs::commit(self.bucket, name, digest, state.offset, object.clone(), now).await?;
        let mut doomed = obsolete;
        let kept = desc.object == object;
        if kept {
            // Its bytes stay where they were written, and keep its first URL refused.
            doomed.push(PathSpec::UploadState { id: &state.id }.key());
        }
        self.bucket.delete(&doomed).await?;
        if !kept {
            // Its own copy is gone: a closed state keeps its first URL refused.
            self.close(&state).await?;
        }
        Ok(desc)
    }

    /// Cancels the upload: aborts its multipart upload and deletes all it wrote.
    pub async fn discard<K: PartSink>(&self, state: &UploadState, sink: &K) -> Result<()> {
        if let Some(upload_id) = &state.multipart_id {
            // Already completed or aborted is fine: the goal is that nothing is left.
            let _ = sink.abort(&state.object_key(), upload_id).await;
        }
        let mut doomed = state.written_keys();
        doomed.push(PathSpec::UploadState { id: &state.id }.key());
        self.bucket.delete(&doomed).await
    }
}
