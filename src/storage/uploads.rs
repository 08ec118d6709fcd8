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
//! change is a conditional put: on the etag read before it, or, for the upload's first write,
//! on there being no state at all. How a body write excludes a racing one depends on what it
//! writes:
//! - **A first write, or a body that ends in one pending piece** (its length known, too short
//!   to fill a part) takes no lease. Its pieces have keys of their own (the request's tag; the
//!   piece at offset 0 is written only if absent), a multipart upload it creates is its own,
//!   and it saves the state conditionally at the end. Of two racing writes exactly one saves;
//!   the other undoes what it wrote (`chunking::Written`) and gets 429 TOOMANYREQUESTS with
//!   `Retry-After`. This saves the lease's class-A operation on the writes clients make most:
//!   skopeo's, podman's and docker's single PATCH, and chunks smaller than a part.
//!   A first write checks once more after its save that the upload was not used meanwhile by
//!   a request that finished (and deleted its state, so the save found none): whoever stores
//!   an upload's data writes it before deleting its state, so the data is seen then.
//! - **A body that writes parts** (or of unknown length into a started upload) first takes a
//!   short lease the same way, because R2's part writes cannot be conditional: of two racing
//!   PATCHes exactly one writes parts; the other gets 429 and changes nothing. The lease is
//!   short ([`DEFAULT_LEASE_MS`]) and renewed while the body streams, so a long chunk keeps it
//!   while a worker that dies mid-chunk frees the upload within one lease: the state still
//!   describes the last chunk that completed, and the client resumes from the offset `GET`
//!   reports.
//! - **A commit, a cancel and the purge** take the lease too: they read or delete pieces that a
//!   write could otherwise absorb or delete under them. A commit's lease is the one its own
//!   body write saved, when the PUT has a body.
//!
//! A chunk names the offset its upload URL vouches for (checked by the caller); a genuine but
//! stale one (an offset the upload has moved past) gets 416 with the real `Range`.

use super::blobs;
use super::chunking::{self, BodySource, Limits, PartSink, Written};
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

/// What a body write leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// The upload free for the next request.
    Release,
    /// The upload leased, for the commit that follows in the same request.
    Hold,
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
        for key in [PathSpec::UploadPending { id, offset: 0, tag: None }.key(), PathSpec::UploadObject { id }.key()] {
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

    /// Closes the upload for good (its state leased by this request): a closed state takes its
    /// place, so its URLs are refused until the purge removes it with the upload's maximum age.
    pub async fn close(&self, state: &UploadState) -> Result<()> {
        self.bucket.put(&PathSpec::UploadState { id: &state.id }.key(), Self::closed(state), None, PutIf::Always).await?;
        Ok(())
    }

    /// Closes a fresh upload, unless a state of it appeared meanwhile (then another request
    /// owns the upload, and false is returned).
    pub async fn close_fresh(&self, fresh: &UploadState) -> Result<bool> {
        Ok(self.bucket.put(&PathSpec::UploadState { id: &fresh.id }.key(), Self::closed(fresh), None, PutIf::Absent).await?.is_some())
    }

    /// A closed state: nothing of it stays that a purge would have to find (no pieces, parts or
    /// lease).
    fn closed(state: &UploadState) -> Vec<u8> {
        UploadState { closed: true, offset: 0, multipart_id: None, parts: Vec::new(), pending: Vec::new(), lease_until: 0, ..state.clone() }.to_json()
    }

    /// Checks a stored state against what the request's URL vouches for, its `Content-Range`
    /// start and any live lease.
    fn check(state: &UploadState, vouched: Vouched<'_>, range_start: Option<u64>, now: u64) -> Result<()> {
        let expected = match vouched {
            Vouched::Offset(v) => Some(v),
            Vouched::Fresh(_) => Some(0),
            Vouched::Unchecked => None,
        };
        if let Some(v) = expected {
            if v != state.offset {
                return Err(range_invalid(state, format!("stale upload location (offset {v})")));
            }
        }
        if let Some(start) = range_start {
            if start != state.offset {
                return Err(range_invalid(state, format!("Content-Range starts at {start}")));
            }
        }
        if state.lease_until > now {
            return Err(busy(state.lease_until, now));
        }
        Ok(())
    }

    /// Takes the lease on a loaded state by a conditional put on its etag.
    async fn lease(&self, Loaded { mut state, etag }: Loaded, now: u64) -> Result<Loaded> {
        state.lease_until = now + self.lease_ms;
        let key = PathSpec::UploadState { id: &state.id }.key();
        let etag = self
            .bucket
            .put(&key, state.to_json(), None, PutIf::EtagMatches(etag))
            .await?
            .ok_or_else(|| busy(now + self.lease_ms, now))?;
        Ok(Loaded { state, etag })
    }

    /// Loads the state for a request that writes no body (a commit) through a URL vouching for
    /// `vouched`, checks it, and takes the lease; a fresh upload's state is created, leased.
    pub async fn acquire(&self, name: &RepoName, id: &str, vouched: Vouched<'_>, range_start: Option<u64>, now: u64) -> Result<Loaded> {
        let Some(held) = self.find(name, id).await? else {
            return match vouched {
                Vouched::Fresh(fresh) => self.begin(fresh, range_start, now).await,
                _ => Err(unknown(id)),
            };
        };
        Self::check(&held.state, vouched, range_start, now)?;
        self.lease(held, now).await
    }

    /// A fresh upload's state, created leased by a conditional put that only the first writer
    /// wins (a racing one gets 429, as it would for a lease).
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

    /// Appends one request body to upload `id` of `name`, through a URL vouching for `vouched`
    /// and a `Content-Range` starting at `range_start`; new pieces are keyed with `tag`, unique
    /// to the request. With [`After::Hold`] the upload stays leased for a commit that follows.
    /// Returns the new state. Which writes take the lease: see the module docs.
    #[allow(clippy::too_many_arguments)]
    pub async fn write<S, K>(&self, name: &RepoName, id: &str, vouched: Vouched<'_>, range_start: Option<u64>, source: &mut S, sink: &K, limits: Limits, tag: &str, after: After) -> Result<Loaded>
    where
        S: BodySource,
        K: PartSink<Piece = S::Piece>,
    {
        let now = (self.clock)();
        let Some(held) = self.find(name, id).await? else {
            return match vouched {
                Vouched::Fresh(fresh) => self.first_write(fresh, range_start, source, sink, limits, tag, after).await,
                _ => Err(unknown(id)),
            };
        };
        Self::check(&held.state, vouched, range_start, now)?;
        let part_size = held.state.part_size.unwrap_or_else(|| chunking::choose_part_size(source.remaining(), limits.part_size));
        if source.remaining().is_some_and(|len| held.state.pending_len() + len < part_size) {
            return self.write_piece(held, source, sink, limits, tag, after).await;
        }
        let held = self.lease(held, now).await?;
        self.append(held, source, sink, limits, tag, after).await
    }

    /// The lease a saved state is to carry: none, or one for the commit that follows.
    fn lease_after(&self, after: After) -> u64 {
        match after {
            After::Release => 0,
            After::Hold => (self.clock)() + self.lease_ms,
        }
    }

    /// The first write of a fresh upload, unleased: the state is created at the end by a
    /// conditional put that only the first writer wins.
    #[allow(clippy::too_many_arguments)]
    async fn first_write<S, K>(&self, fresh: &UploadState, range_start: Option<u64>, source: &mut S, sink: &K, limits: Limits, tag: &str, after: After) -> Result<Loaded>
    where
        S: BodySource,
        K: PartSink<Piece = S::Piece>,
    {
        if let Some(start) = range_start.filter(|s| *s != 0) {
            return Err(range_invalid(fresh, format!("Content-Range starts at {start}")));
        }
        self.ensure_unused(&fresh.id).await?;
        let (held, written) = self.write_unleased(fresh.clone(), PutIf::Absent, source, sink, limits, tag, after).await?;
        // Used meanwhile by a request that has finished (see the module docs)?
        let id = &held.state.id;
        let first_piece_ours = held.state.pending.first().is_some_and(|p| p.offset == 0);
        let mut used = self.bucket.head(&PathSpec::UploadObject { id }.key()).await?.is_some();
        if !used && !first_piece_ours {
            used = self.bucket.head(&PathSpec::UploadPending { id, offset: 0, tag: None }.key()).await?.is_some();
        }
        if used {
            self.bucket.delete(&[PathSpec::UploadState { id }.key()]).await?;
            written.undo(&held.state, sink, self.bucket).await;
            return Err(unknown(id));
        }
        Ok(held)
    }

    /// A body that ends in one pending piece of a started upload, unleased: the state is saved
    /// on the etag it was read with.
    #[allow(clippy::too_many_arguments)]
    async fn write_piece<S, K>(&self, held: Loaded, source: &mut S, sink: &K, limits: Limits, tag: &str, after: After) -> Result<Loaded>
    where
        S: BodySource,
        K: PartSink<Piece = S::Piece>,
    {
        let (held, _) = self.write_unleased(held.state, PutIf::EtagMatches(held.etag), source, sink, limits, tag, after).await?;
        Ok(held)
    }

    /// Appends a body to `state` without a lease, then saves the state on `condition`; a write
    /// that cannot save (another request saved first) undoes what it wrote and gets 429.
    /// Returns the saved state and what this request wrote.
    #[allow(clippy::too_many_arguments)]
    async fn write_unleased<S, K>(&self, mut state: UploadState, condition: PutIf, source: &mut S, sink: &K, limits: Limits, tag: &str, after: After) -> Result<(Loaded, Written)>
    where
        S: BodySource,
        K: PartSink<Piece = S::Piece>,
    {
        let mut hasher = state.hasher()?;
        let mut written = Written::default();
        match chunking::append(&mut state, &mut hasher, source, sink, limits, tag, &mut written).await {
            // Nothing is absorbed: a fresh upload has no pending pieces, and a piece-only body
            // fills no part.
            Ok(absorbed) => debug_assert!(absorbed.is_empty(), "an unleased write absorbs nothing"),
            Err(e) => {
                written.undo(&state, sink, self.bucket).await;
                return Err(e);
            }
        }
        state.save_hasher(&hasher);
        state.lease_until = self.lease_after(after);
        let key = PathSpec::UploadState { id: &state.id }.key();
        match self.bucket.put(&key, state.to_json(), None, condition).await? {
            Some(etag) => Ok((Loaded { state, etag }, written)),
            None => {
                written.undo(&state, sink, self.bucket).await;
                let now = (self.clock)();
                Err(busy(now + 1000, now))
            }
        }
    }

    /// Appends one request body to a leased upload. Returns the new state.
    async fn append<S, K>(&self, held: Loaded, source: &mut S, sink: &K, limits: Limits, tag: &str, after: After) -> Result<Loaded>
    where
        S: BodySource,
        K: PartSink<Piece = S::Piece>,
    {
        let Loaded { state: original, etag } = held;
        let mut state = original.clone();
        let mut hasher = state.hasher()?;
        let mut written = Written::default();
        let mut body = Renewing { inner: source, bucket: self.bucket, persisted: original.clone(), etag, lease_ms: self.lease_ms, clock: self.clock };
        let appended = chunking::append(&mut state, &mut hasher, &mut body, sink, limits, tag, &mut written).await;
        let etag = body.etag;
        match appended {
            Ok(absorbed) => {
                state.save_hasher(&hasher);
                state.lease_until = self.lease_after(after);
                let key = PathSpec::UploadState { id: &state.id }.key();
                let etag = self
                    .bucket
                    .put(&key, state.to_json(), None, PutIf::EtagMatches(etag))
                    .await?
                    .ok_or_else(|| RegistryError::new(Code::BlobUploadInvalid, "upload was taken over by another request"))?;
                self.bucket.delete(&absorbed).await?;
                Ok(Loaded { state, etag })
            }
            Err(e) => {
                // Nothing of this chunk counts; give the upload back as it was.
                written.undo(&state, sink, self.bucket).await;
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

    /// Discards the upload: aborts its multipart upload and deletes all it wrote, state and all.
    pub async fn discard<K: PartSink>(&self, state: &UploadState, sink: &K) -> Result<()> {
        self.discard_data(state, sink).await?;
        self.bucket.delete(&[PathSpec::UploadState { id: &state.id }.key()]).await
    }

    /// Aborts the upload's multipart upload and deletes its pieces and object (not its state).
    async fn discard_data<K: PartSink>(&self, state: &UploadState, sink: &K) -> Result<()> {
        if let Some(upload_id) = &state.multipart_id {
            // Already completed or aborted is fine: the goal is that nothing is left.
            let _ = sink.abort(&state.object_key(), upload_id).await;
        }
        self.bucket.delete(&state.written_keys()).await
    }

    /// Cancels upload `id` of `name` (through a URL vouching for `vouched`): under the lease,
    /// all it wrote is deleted and a closed state takes its place, so its URLs are refused until
    /// the purge removes it. A fresh upload gets its closed state only if it still has no state.
    pub async fn cancel<K: PartSink>(&self, name: &RepoName, id: &str, vouched: Vouched<'_>, sink: &K, now: u64) -> Result<()> {
        match self.find(name, id).await? {
            Some(held) => {
                Self::check(&held.state, Vouched::Unchecked, None, now)?;
                let held = self.lease(held, now).await?;
                self.discard_data(&held.state, sink).await?;
                self.close(&held.state).await
            }
            None => match vouched {
                Vouched::Fresh(fresh) => {
                    self.ensure_unused(id).await?;
                    if self.close_fresh(fresh).await? {
                        Ok(())
                    } else {
                        Err(busy(now + 1000, now))
                    }
                }
                _ => Err(unknown(id)),
            },
        }
    }
}
