//! Re-chunking a stream of client chunks into equal-sized multipart parts, hashing every byte
//! once on the way.
//!
//! R2 multipart uploads need every part but the last to have one size (at least 5 MiB, at most
//! 10,000 parts); clients send chunks of any size. The part size `P` is fixed when an upload's
//! first chunk arrives: that chunk's length if known (so a client sending equal chunks, or one
//! monolithic body, has every byte written exactly once), else [`DEFAULT_PART_SIZE`], clamped
//! to R2's bounds. The blob ceiling is therefore 10,000 × P.
//!
//! Within one request body:
//! - when the bytes already persisted as pending pieces plus what the body still holds are
//!   known to fill the current part, the part is streamed: pending pieces first (read back from
//!   the bucket, never re-hashed), then the body's bytes as they arrive;
//! - the tail that cannot fill a part is written as a new pending piece, a bucket object of its
//!   own, and becomes the head of the next part (so tail bytes are written at most twice);
//! - a body of unknown length is held in memory until a part fills (≤ P bytes), so memory stays
//!   bounded by the part size plus one piece in flight.
//!
//! A pending piece's key carries the tag of the request that writes it, except the piece at
//! offset 0, which is written only if absent: requests racing on one upload never write the
//! same key, and [`Written`] lists what one request wrote, for it to undo when it loses.
//!
//! The engine is written against [`BodySource`] and [`PartSink`] so the same code runs on the
//! worker (R2 + request streams) and natively in tests (memory, counted bytes).

use async_trait::async_trait;

use super::upload_state::{Pending, UploadState};
use crate::oci::digest::{Algorithm, BlobHasher, Digest};
use crate::oci::error::{Code, RegistryError, Result};

pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024 - 1;
pub const DEFAULT_PART_SIZE: u64 = 16 * 1024 * 1024;
pub const MAX_PARTS: u16 = 10_000;

/// A piece of request body as the platform hands it over.
pub trait Piece: Sized {
    fn len(&self) -> u64;
    /// Splits off the first `n` bytes (`0 < n < len`).
    fn split(self, n: u64) -> (Self, Self);
    fn hash_into(&self, hasher: &mut BlobHasher);
}

/// A request body read piece by piece.
#[async_trait(?Send)]
pub trait BodySource {
    type Piece: Piece;
    async fn next(&mut self) -> Result<Option<Self::Piece>>;
    /// Bytes not yet read, if the body's length is known.
    fn remaining(&self) -> Option<u64>;
}

/// Where bytes are written: a part of the upload's multipart object, or a whole object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    Part { key: &'a str, upload_id: &'a str, number: u16 },
    /// A whole object; with `only_new`, written only if there is none at `key` (else the write
    /// fails with [`first_piece_taken`]).
    Object { key: &'a str, only_new: bool },
}

/// A write `only_new` found its key taken: another request wrote the upload's first bytes.
pub fn first_piece_taken() -> RegistryError {
    RegistryError::new(Code::TooManyRequests, "another request wrote this upload's first bytes").with_retry_after(1)
}

/// What one request wrote to its upload, so that it can undo it when its state is not saved:
/// the pending pieces (its own keys) and the multipart upload it created, if it did.
#[derive(Debug, Default)]
pub struct Written {
    pub pieces: Vec<String>,
    pub multipart: Option<String>,
}

impl Written {
    /// Undoes the writes (a multipart upload created is aborted, parts and all). Best effort:
    /// what is left is the purge's, or R2's after a week.
    pub async fn undo<K: PartSink>(self, state: &UploadState, sink: &K, bucket: &(impl super::Bucket + ?Sized)) {
        if let Some(upload_id) = &self.multipart {
            let _ = sink.abort(&state.object_key(), upload_id).await;
        }
        let _ = bucket.delete(&self.pieces).await;
    }
}

/// A write of exactly the announced number of bytes.
#[async_trait(?Send)]
pub trait Writer {
    type Piece: Piece;
    async fn write(&mut self, piece: Self::Piece) -> Result<()>;
    /// Ends the write; returns the etag of the part or object.
    async fn finish(self) -> Result<String>;
}

/// The streaming side of the bucket.
#[async_trait(?Send)]
pub trait PartSink {
    type Piece: Piece;
    type Writer: Writer<Piece = Self::Piece>;
    async fn create_multipart(&self, key: &str) -> Result<String>;
    /// Starts writing `len` bytes to `target`, beginning with the bytes of the objects
    /// `prefix` (pending pieces), which count towards `len`.
    async fn start(&self, target: Target<'_>, len: u64, prefix: &[String]) -> Result<Self::Writer>;
    async fn complete(&self, key: &str, upload_id: &str, parts: &[(u16, String)]) -> Result<()>;
    async fn abort(&self, key: &str, upload_id: &str) -> Result<()>;
    /// The digest of the stored object `key` under `algorithm`, read back once, streamed in
    /// bounded memory; `None` if there is no such object.
    async fn digest_of(&self, key: &str, algorithm: Algorithm) -> Result<Option<Digest>>;
}

/// The part size for an upload whose first chunk has `first_len` bytes (if known).
pub fn choose_part_size(first_len: Option<u64>, configured: Option<u64>) -> u64 {
    configured.or(first_len).unwrap_or(DEFAULT_PART_SIZE).clamp(MIN_PART_SIZE, MAX_PART_SIZE)
}

/// Reads pieces, hashing and counting each exactly once.
struct Reader<'a, S: BodySource> {
    source: &'a mut S,
    hasher: &'a mut BlobHasher,
    read: u64,
    max: u64,
}

impl<S: BodySource> Reader<'_, S> {
    async fn next(&mut self) -> Result<Option<S::Piece>> {
        let Some(piece) = self.source.next().await? else { return Ok(None) };
        self.read += piece.len();
        if self.read > self.max {
            return Err(RegistryError::new(Code::TooLarge, format!("request body exceeds {} bytes", self.max)));
        }
        piece.hash_into(self.hasher);
        Ok(Some(piece))
    }
}

/// Bytes read but not yet written, in order.
struct Carry<P: Piece> {
    pieces: std::collections::VecDeque<P>,
    len: u64,
}

/// The limits of one body: its maximum length and the configured part size, if any.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body: u64,
    pub part_size: Option<u64>,
}

/// Appends one request body to the upload: updates `state` (offset, parts, pending pieces,
/// part size) and `hasher`, the new pieces keyed with `tag` and recorded in `written`.
/// Returns the pending pieces absorbed into parts, to delete once the new state is saved. On
/// error nothing in `state` is to be saved.
pub async fn append<S, K>(
    state: &mut UploadState,
    hasher: &mut BlobHasher,
    source: &mut S,
    sink: &K,
    limits: Limits,
    tag: &str,
    written: &mut Written,
) -> Result<Vec<String>>
where
    S: BodySource,
    K: PartSink<Piece = S::Piece>,
{
    let part_size = *state.part_size.get_or_insert_with(|| choose_part_size(source.remaining(), limits.part_size));
    let max_body = limits.max_body;
    let mut reader = Reader { source, hasher, read: 0, max: max_body };
    let mut carry: Carry<S::Piece> = Carry { pieces: Default::default(), len: 0 };
    let mut absorbed = Vec::new();
    if let Some(len) = reader.source.remaining() {
        if len > max_body {
            return Err(RegistryError::new(Code::TooLarge, format!("request body of {len} bytes exceeds {max_body}")));
        }
    }
    loop {
        let need = part_size - state.pending_len();
        let remaining = reader.source.remaining();
        if carry.len >= need || remaining.is_some_and(|r| carry.len + r >= need) {
            absorbed.extend(write_part(state, &mut reader, &mut carry, sink, part_size, need, written).await?);
            continue;
        }
        if let Some(r) = remaining {
            // Known length, and it cannot fill the part: the rest is a pending piece.
            let len = carry.len + r;
            write_pending(state, &mut reader, &mut carry, sink, len, tag, written).await?;
            break;
        }
        match reader.next().await? {
            Some(piece) => {
                carry.len += piece.len();
                carry.pieces.push_back(piece);
            }
            None => {
                let len = carry.len;
                write_pending(state, &mut reader, &mut carry, sink, len, tag, written).await?;
                break;
            }
        }
    }
    Ok(absorbed)
}

/// Writes up to `n` bytes from the carry, then from the body, into `writer`; whatever of the
/// last piece does not fit goes back to the carry.
async fn fill<S, W>(reader: &mut Reader<'_, S>, carry: &mut Carry<S::Piece>, writer: &mut W, mut n: u64) -> Result<()>
where
    S: BodySource,
    W: Writer<Piece = S::Piece>,
{
    while n > 0 {
        let piece = match carry.pieces.pop_front() {
            Some(p) => {
                carry.len -= p.len();
                p
            }
            None => reader
                .next()
                .await?
                .ok_or_else(|| RegistryError::new(Code::SizeInvalid, "request body ended before its Content-Length"))?,
        };
        if piece.len() > n {
            let (head, tail) = piece.split(n);
            carry.len += tail.len();
            carry.pieces.push_front(tail);
            writer.write(head).await?;
            n = 0;
        } else {
            n -= piece.len();
            if piece.len() > 0 {
                writer.write(piece).await?;
            }
        }
    }
    Ok(())
}

async fn write_part<S, K>(
    state: &mut UploadState,
    reader: &mut Reader<'_, S>,
    carry: &mut Carry<S::Piece>,
    sink: &K,
    part_size: u64,
    need: u64,
    written: &mut Written,
) -> Result<Vec<String>>
where
    S: BodySource,
    K: PartSink<Piece = S::Piece>,
{
    let number = state.parts.len() as u16 + 1;
    if number >= MAX_PARTS {
        return Err(RegistryError::new(
            Code::SizeInvalid,
            format!("blob exceeds the upload's ceiling of {MAX_PARTS} parts of {part_size} bytes"),
        ));
    }
    let object = state.object_key();
    if state.multipart_id.is_none() {
        let created = sink.create_multipart(&object).await?;
        written.multipart = Some(created.clone());
        state.multipart_id = Some(created);
    }
    let upload_id = state.multipart_id.clone().expect("just set");
    let prefix = state.pending_keys();
    let mut writer = sink.start(Target::Part { key: &object, upload_id: &upload_id, number }, part_size, &prefix).await?;
    fill(reader, carry, &mut writer, need).await?;
    let etag = writer.finish().await?;
    state.parts.push((number, etag));
    state.pending.clear();
    state.offset += need;
    Ok(prefix)
}

async fn write_pending<S, K>(
    state: &mut UploadState,
    reader: &mut Reader<'_, S>,
    carry: &mut Carry<S::Piece>,
    sink: &K,
    len: u64,
    tag: &str,
    written: &mut Written,
) -> Result<()>
where
    S: BodySource,
    K: PartSink<Piece = S::Piece>,
{
    if len == 0 {
        return Ok(());
    }
    let piece = Pending::new(state.offset, len, tag);
    let key = state.pending_key(&piece);
    let mut writer = sink.start(Target::Object { key: &key, only_new: piece.tag.is_none() }, len, &[]).await?;
    fill(reader, carry, &mut writer, len).await?;
    writer.finish().await?;
    written.pieces.push(key);
    // Anything still arriving after the announced length is a lie about the body's size.
    if reader.next().await?.is_some_and(|p| p.len() > 0) {
        return Err(RegistryError::new(Code::SizeInvalid, "request body longer than its Content-Length"));
    }
    state.pending.push(piece);
    state.offset += len;
    Ok(())
}

/// Puts the uploaded bytes together as one object: completes the multipart upload (the
/// pending tail becomes its last part) or, below one part, keeps a single pending piece as is
/// or joins several into one object. Returns the object's key and the keys now obsolete.
pub async fn finish<K: PartSink>(state: &UploadState, sink: &K) -> Result<(String, Vec<String>)> {
    let object = state.object_key();
    let pending = state.pending_keys();
    if let Some(upload_id) = &state.multipart_id {
        let mut parts = state.parts.clone();
        if !pending.is_empty() {
            let number = parts.len() as u16 + 1;
            let writer = sink.start(Target::Part { key: &object, upload_id, number }, state.pending_len(), &pending).await?;
            parts.push((number, writer.finish().await?));
        }
        sink.complete(&object, upload_id, &parts).await?;
        return Ok((object, pending));
    }
    match pending.as_slice() {
        [single] => Ok((single.clone(), Vec::new())),
        _ => {
            let writer = sink.start(Target::Object { key: &object, only_new: false }, state.pending_len(), &pending).await?;
            writer.finish().await?;
            Ok((object, pending))
        }
    }
}
#[cfg(test)]
#[path = "chunking_tests.rs"]
mod tests;
