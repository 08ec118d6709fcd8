//! Native tests of re-chunking and hash state against an in-memory bucket.

use super::*;
use crate::oci::digest::{Algorithm, Digest};
use crate::oci::name::RepoName;
use crate::storage::memory::MemoryBucket;
use crate::storage::upload_state::UploadState;
use crate::storage::uploads::{After, Loaded, Uploads, Vouched, DEFAULT_LEASE_MS};
use crate::storage::{Bucket, PutIf};
use futures_executor::block_on;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};

const MIB: u64 = 1024 * 1024;

impl Piece for Vec<u8> {
    fn len(&self) -> u64 {
        self.len() as u64
    }
    fn split(mut self, n: u64) -> (Self, Self) {
        let tail = self.split_off(n as usize);
        (self, tail)
    }
    fn hash_into(&self, hasher: &mut BlobHasher) {
        hasher.update(self)
    }
}

/// A body handed over in the given pieces.
struct Body<P> {
    pieces: VecDeque<P>,
    remaining: u64,
    known: bool,
}

impl<P: Piece> Body<P> {
    fn new(pieces: Vec<P>, known: bool) -> Self {
        let remaining = pieces.iter().map(|p| p.len()).sum();
        Body { pieces: pieces.into(), remaining, known }
    }
}

#[async_trait(?Send)]
impl<P: Piece> BodySource for Body<P> {
    type Piece = P;
    async fn next(&mut self) -> Result<Option<P>> {
        let p = self.pieces.pop_front();
        if let Some(p) = &p {
            self.remaining -= p.len();
        }
        Ok(p)
    }
    fn remaining(&self) -> Option<u64> {
        self.known.then_some(self.remaining)
    }
}

/// Multipart uploads and objects kept in a [`MemoryBucket`]; records every part size.
struct MemorySink<'a> {
    bucket: &'a MemoryBucket,
    uploads: RefCell<HashMap<String, BTreeMap<u16, Vec<u8>>>>,
    next: RefCell<u32>,
    /// Objects read back to verify a digest of another algorithm.
    read_backs: RefCell<u32>,
}

impl<'a> MemorySink<'a> {
    fn new(bucket: &'a MemoryBucket) -> Self {
        MemorySink { bucket, uploads: Default::default(), next: RefCell::new(0), read_backs: RefCell::new(0) }
    }
}

struct MemoryWriter<'a> {
    sink: &'a MemorySink<'a>,
    target: (String, Option<(String, u16)>),
    only_new: bool,
    len: u64,
    bytes: Vec<u8>,
}

#[async_trait(?Send)]
impl Writer for MemoryWriter<'_> {
    type Piece = Vec<u8>;
    async fn write(&mut self, piece: Vec<u8>) -> Result<()> {
        self.bytes.extend_from_slice(&piece);
        assert!(self.bytes.len() as u64 <= self.len, "wrote more than announced");
        Ok(())
    }
    async fn finish(self) -> Result<String> {
        assert_eq!(self.bytes.len() as u64, self.len, "wrote less than announced");
        match self.target.1 {
            Some((upload, number)) => {
                self.sink.uploads.borrow_mut().get_mut(&upload).expect("live upload").insert(number, self.bytes);
                Ok(format!("part{number}"))
            }
            None => {
                let condition = if self.only_new { PutIf::Absent } else { PutIf::Always };
                self.sink.bucket.put(&self.target.0, self.bytes, None, condition).await?.ok_or_else(first_piece_taken)
            }
        }
    }
}

#[async_trait(?Send)]
impl<'a> PartSink for &'a MemorySink<'a> {
    type Piece = Vec<u8>;
    type Writer = MemoryWriter<'a>;
    async fn create_multipart(&self, _key: &str) -> Result<String> {
        *self.next.borrow_mut() += 1;
        let id = format!("mp{}", self.next.borrow());
        self.uploads.borrow_mut().insert(id.clone(), BTreeMap::new());
        Ok(id)
    }
    async fn start(&self, target: Target<'_>, len: u64, prefix: &[String]) -> Result<MemoryWriter<'a>> {
        let mut bytes = Vec::new();
        for key in prefix {
            bytes.extend(self.bucket.get(key).await?.expect("pending piece exists").0);
        }
        let (target, only_new) = match target {
            Target::Part { key, upload_id, number } => ((key.to_string(), Some((upload_id.to_string(), number))), false),
            Target::Object { key, only_new } => ((key.to_string(), None), only_new),
        };
        Ok(MemoryWriter { sink: self, target, only_new, len, bytes })
    }
    async fn complete(&self, key: &str, upload_id: &str, parts: &[(u16, String)]) -> Result<()> {
        let stored = self.uploads.borrow_mut().remove(upload_id).expect("live upload");
        assert_eq!(parts.len(), stored.len());
        let sizes: Vec<usize> = stored.values().map(|p| p.len()).collect();
        for s in &sizes[..sizes.len() - 1] {
            assert_eq!(*s, sizes[0], "all parts but the last have one size: {sizes:?}");
            assert!(*s as u64 >= MIN_PART_SIZE);
        }
        let joined: Vec<u8> = stored.into_values().flatten().collect();
        self.bucket.put(key, joined, None, PutIf::Always).await?;
        Ok(())
    }
    async fn abort(&self, _key: &str, upload_id: &str) -> Result<()> {
        self.uploads.borrow_mut().remove(upload_id);
        Ok(())
    }
    async fn digest_of(&self, key: &str, algorithm: Algorithm) -> Result<Option<Digest>> {
        *self.read_backs.borrow_mut() += 1;
        Ok(self.bucket.get(key).await?.map(|(bytes, _)| Digest::of(algorithm, &bytes)))
    }
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random()).collect()
}

const ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

fn repo() -> RepoName {
    RepoName::parse("r").unwrap()
}

/// Appends `body` to upload `id` as a request would (tagged `tag`, at most `max_body` bytes).
async fn write<S: BodySource<Piece = Vec<u8>>>(uploads: &Uploads<'_, MemoryBucket>, sink: &MemorySink<'_>, id: &str, vouched: Vouched<'_>, range_start: Option<u64>, body: &mut S, max_body: u64, tag: &str, after: After) -> Result<Loaded> {
    uploads.write(&repo(), id, vouched, range_start, body, &sink, Limits { max_body, part_size: None }, tag, after).await
}

/// Pushes `blob` in chunks of the given sizes through the whole upload lifecycle, each chunk
/// handed over in 4 KiB pieces as the emulator does; returns the stored bytes.
fn push(blob: &[u8], chunks: &[usize], alg: Algorithm, known: bool) -> (Vec<u8>, MemoryBucket) {
    let (bucket, sink_reads, result) = push_and_commit(blob, chunks, alg, &Digest::of(alg, blob), known);
    assert_eq!(sink_reads, 0, "a digest of the upload's own algorithm is never read back");
    let out = block_on(bucket.get(&result.unwrap().object)).unwrap().unwrap().0;
    (out, bucket)
}

/// Uploads `blob` hashed with `alg`, then commits it as `digest`. Returns the bucket, how many
/// objects were read back to verify, and the commit's outcome.
fn push_and_commit(blob: &[u8], chunks: &[usize], alg: Algorithm, digest: &Digest, known: bool) -> (MemoryBucket, u32, Result<crate::storage::blobs::BlobDescriptor>) {
    let bucket = MemoryBucket::new();
    let (reads, result) = block_on(async {
        let uploads = Uploads { bucket: &bucket, lease_ms: DEFAULT_LEASE_MS, clock: &|| 0 };
        let sink = MemorySink::new(&bucket);
        let fresh = uploads.start(&repo(), ID.into(), 1, alg);
        let mut vouched = Vouched::Fresh(&fresh);
        let mut at = 0;
        for (i, &c) in chunks.iter().enumerate() {
            let pieces: Vec<Vec<u8>> = blob[at..at + c].chunks(4096).map(|p| p.to_vec()).collect();
            let mut body = Body::new(pieces, known);
            let next = write(&uploads, &sink, ID, vouched, Some(at as u64), &mut body, 200 * MIB, &format!("t{i}"), After::Release).await.unwrap();
            at += c;
            assert_eq!(next.state.offset, at as u64);
            vouched = Vouched::Offset(next.state.offset);
        }
        assert_eq!(at, blob.len());
        let held = uploads.acquire(&repo(), ID, vouched, None, 10).await.unwrap();
        let result = uploads.commit(&repo(), held, digest, &&sink, 1).await;
        if let Ok(desc) = &result {
            assert_eq!(desc.size, blob.len() as u64);
        }
        let reads = *sink.read_backs.borrow();
        (reads, result)
    });
    (bucket, reads, result)
}

#[test]
fn a_digest_of_another_algorithm_is_verified_by_one_read_back() {
    let p = MIN_PART_SIZE as usize;
    let cases: Vec<(Vec<u8>, Vec<usize>)> = vec![
        (Vec::new(), vec![]),
        (Vec::new(), vec![0]),
        (b"{}".to_vec(), vec![2]),
        (data(1000, 5), vec![1000]),
        (data(2 * p + 3, 6), vec![p, p, 3]),
        (data(p + 10, 7), vec![p - 1, 11]),
    ];
    for (upload, commit) in [(Algorithm::Sha256, Algorithm::Sha512), (Algorithm::Sha512, Algorithm::Sha256)] {
        for (blob, chunks) in &cases {
            let digest = Digest::of(commit, blob);
            let (bucket, reads, result) = push_and_commit(blob, chunks, upload, &digest, true);
            let desc = result.unwrap_or_else(|e| panic!("{} bytes in {chunks:?}: {e:?}", blob.len()));
            assert_eq!(reads, 1, "read back once");
            assert_eq!(&block_on(bucket.get(&desc.object)).unwrap().unwrap().0, blob);
            no_upload_leftovers(&bucket, &desc.object);
            // A wrong digest of the other algorithm: DIGEST_INVALID, nothing left behind.
            let wrong = Digest::of(commit, b"something else");
            let (bucket, _, result) = push_and_commit(blob, chunks, upload, &wrong, true);
            assert_eq!(result.unwrap_err().code, Code::DigestInvalid);
            // (But the closed state that refuses the upload's URLs from now on.)
            let closed = crate::storage::paths::PathSpec::UploadState { id: ID }.key();
            assert_eq!(bucket.keys(), vec![closed], "no bytes, parts or blobs left");
        }
    }
}

fn no_upload_leftovers(bucket: &MemoryBucket, keep: &str) {
    for k in bucket.keys() {
        assert!(!k.starts_with("uploads/"), "state left: {k}");
        assert!(!k.starts_with("objects/") || k == keep, "object left: {k}");
    }
}

#[test]
fn random_chunk_sizes_both_algorithms() {
    let mut rng = StdRng::seed_from_u64(7);
    for alg in [Algorithm::Sha256, Algorithm::Sha512] {
        for known in [true, false] {
            let blob = data(23 * MIB as usize + 12345, 1);
            let mut chunks = Vec::new();
            let mut left = blob.len();
            while left > 0 {
                let c = rng.random_range(1..=(9 * MIB as usize)).min(left);
                chunks.push(c);
                left -= c;
            }
            let (out, _) = push(&blob, &chunks, alg, known);
            assert!(out == blob, "{alg:?} known={known} chunks={chunks:?}");
        }
    }
}

#[test]
fn sizes_straddling_part_boundaries() {
    let p = MIN_PART_SIZE as usize;
    for chunks in [vec![p, p, 1], vec![p - 1, 2, p - 1], vec![p + 1, p + 1, p + 1], vec![p, p], vec![2 * p + 3], vec![p - 1, 1, p]] {
        let blob = data(chunks.iter().sum(), 2);
        for known in [true, false] {
            let (out, bucket) = push(&blob, &chunks, Algorithm::Sha256, known);
            assert!(out == blob, "chunks {chunks:?}");
            let d = Digest::of(Algorithm::Sha256, &blob);
            let (desc, _) = block_on(crate::storage::blobs::descriptor(&bucket, &d)).unwrap().unwrap();
            no_upload_leftovers(&bucket, &desc.object);
        }
    }
}

#[test]
fn empty_blob_and_one_byte_chunks() {
    let (out, _) = push(b"", &[], Algorithm::Sha256, true);
    assert!(out.is_empty());
    let (out, _) = push(b"", &[0], Algorithm::Sha512, false);
    assert!(out.is_empty());
    let blob = data(300, 3);
    let (out, bucket) = push(&blob, &vec![1; 300], Algorithm::Sha256, true);
    assert_eq!(out, blob);
    let (desc, _) = block_on(crate::storage::blobs::descriptor(&bucket, &Digest::of(Algorithm::Sha256, &blob))).unwrap().unwrap();
    no_upload_leftovers(&bucket, &desc.object);
}

#[test]
fn small_monolithic_chunk_is_its_own_object() {
    let blob = data(1000, 4);
    let (_, bucket) = push(&blob, &[1000], Algorithm::Sha256, true);
    let objects: Vec<String> = bucket.keys().into_iter().filter(|k| k.starts_with("objects/")).collect();
    // The pending piece itself is the blob's object: one write, no join into `data`.
    assert_eq!(objects, [format!("objects/{ID}/00000000000000000000")]);
}

/// A body whose announced length (`remaining`) is `announced` bytes, whatever it delivers.
struct Announced {
    pieces: VecDeque<Vec<u8>>,
    announced: u64,
}

#[async_trait(?Send)]
impl BodySource for Announced {
    type Piece = Vec<u8>;
    async fn next(&mut self) -> Result<Option<Vec<u8>>> {
        let p = self.pieces.pop_front();
        if let Some(p) = &p {
            self.announced = self.announced.saturating_sub(p.len() as u64);
        }
        Ok(p)
    }
    fn remaining(&self) -> Option<u64> {
        Some(self.announced)
    }
}

#[test]
fn a_body_longer_than_its_content_length_is_refused_an_empty_trailing_piece_is_not() {
    block_on(async {
        let bucket = MemoryBucket::new();
        let sink = MemorySink::new(&bucket);
        let uploads = Uploads { bucket: &bucket, lease_ms: DEFAULT_LEASE_MS, clock: &|| 0 };
        let fresh = uploads.start(&repo(), ID.into(), 0, Algorithm::Sha256);
        let mut body = Announced { pieces: vec![vec![1u8; 100], vec![1u8; 5]].into(), announced: 100 };
        let e = write(&uploads, &sink, ID, Vouched::Fresh(&fresh), None, &mut body, MIB, "t1", After::Release).await.err().unwrap();
        assert_eq!(e.code, Code::SizeInvalid);
        assert!(bucket.keys().is_empty(), "the piece it wrote is undone: {:?}", bucket.keys());
        let mut body = Announced { pieces: vec![vec![1u8; 100], vec![]].into(), announced: 100 };
        assert_eq!(write(&uploads, &sink, ID, Vouched::Fresh(&fresh), None, &mut body, MIB, "t2", After::Release).await.unwrap().state.offset, 100);
    });
}

/// A piece that only counts bytes, for simulating very large uploads.
struct Counted(u64);

impl Piece for Counted {
    fn len(&self) -> u64 {
        self.0
    }
    fn split(self, n: u64) -> (Self, Self) {
        (Counted(n), Counted(self.0 - n))
    }
    fn hash_into(&self, _hasher: &mut BlobHasher) {}
}

/// Records part and object sizes and the largest write, storing nothing.
#[derive(Default)]
struct CountingSink {
    parts: RefCell<BTreeMap<u16, u64>>,
    objects: RefCell<HashMap<String, u64>>,
}

struct CountingWriter<'a> {
    sink: &'a CountingSink,
    part: Option<u16>,
    key: String,
    len: u64,
    written: u64,
}

#[async_trait(?Send)]
impl Writer for CountingWriter<'_> {
    type Piece = Counted;
    async fn write(&mut self, piece: Counted) -> Result<()> {
        self.written += piece.0;
        assert!(self.written <= self.len);
        Ok(())
    }
    async fn finish(self) -> Result<String> {
        assert_eq!(self.written, self.len);
        match self.part {
            Some(n) => {
                self.sink.parts.borrow_mut().insert(n, self.len);
            }
            None => {
                self.sink.objects.borrow_mut().insert(self.key, self.len);
            }
        }
        Ok("etag".into())
    }
}

#[async_trait(?Send)]
impl<'a> PartSink for &'a CountingSink {
    type Piece = Counted;
    type Writer = CountingWriter<'a>;
    async fn create_multipart(&self, _key: &str) -> Result<String> {
        Ok("mp".into())
    }
    async fn start(&self, target: Target<'_>, len: u64, prefix: &[String]) -> Result<CountingWriter<'a>> {
        let written: u64 = prefix.iter().map(|k| self.objects.borrow()[k]).sum();
        let (part, key) = match target {
            Target::Part { number, .. } => (Some(number), String::new()),
            Target::Object { key, .. } => (None, key.to_string()),
        };
        Ok(CountingWriter { sink: self, part, key, len, written })
    }
    async fn complete(&self, _key: &str, _id: &str, _parts: &[(u16, String)]) -> Result<()> {
        Ok(())
    }
    async fn abort(&self, _key: &str, _id: &str) -> Result<()> {
        Ok(())
    }
    async fn digest_of(&self, _key: &str, _algorithm: Algorithm) -> Result<Option<Digest>> {
        unreachable!("the counting sink never commits")
    }
}

#[test]
fn simulated_12_gib_upload_makes_equal_parts() {
    const GIB: u64 = 1024 * MIB;
    for known in [true, false] {
        let mut rng = StdRng::seed_from_u64(12);
        let sink = CountingSink::default();
        let mut state = UploadState::new(ID.into(), &repo(), 0, Algorithm::Sha256);
        let mut hasher = state.hasher().unwrap();
        let total = 12 * GIB;
        let mut at = 0;
        let mut first = true;
        while at < total {
            // The first chunk fixes the part size; the rest vary from 1 byte to 100 MB.
            let c = if first { 64 * MIB } else { rng.random_range(1..=100_000_000u64).min(total - at) };
            first = false;
            let pieces: Vec<Counted> = (0..c / (1 << 20)).map(|_| Counted(1 << 20)).chain([Counted(c % (1 << 20))]).collect();
            let mut body = Body::new(pieces, known);
            let limits = Limits { max_body: 100_000_000, part_size: None };
            let absorbed = append(&mut state, &mut hasher, &mut body, &&sink, limits, "t", &mut Written::default()).await_now();
            for k in absorbed {
                sink.objects.borrow_mut().remove(&k);
            }
            at += c;
            assert_eq!(state.offset, at);
        }
        let expected_part = if known { 64 * MIB } else { DEFAULT_PART_SIZE };
        block_on(finish(&state, &&sink)).unwrap();
        let parts = sink.parts.borrow();
        let sizes: Vec<u64> = parts.values().copied().collect();
        assert_eq!(sizes.iter().sum::<u64>(), total);
        assert!(sizes[..sizes.len() - 1].iter().all(|&s| s == expected_part), "known={known}");
        assert_eq!(parts.keys().copied().collect::<Vec<_>>(), (1..=sizes.len() as u16).collect::<Vec<_>>());
    }
}

trait AwaitNow {
    type Output;
    fn await_now(self) -> Self::Output;
}

impl<F: std::future::Future<Output = Result<Vec<String>>>> AwaitNow for F {
    type Output = Vec<String>;
    fn await_now(self) -> Vec<String> {
        block_on(self).unwrap()
    }
}

#[test]
fn digest_mismatch_discards_everything() {
    let bucket = MemoryBucket::new();
    block_on(async {
        let uploads = Uploads { bucket: &bucket, lease_ms: DEFAULT_LEASE_MS, clock: &|| 0 };
        let sink = MemorySink::new(&bucket);
        let fresh = uploads.start(&repo(), ID.into(), 0, Algorithm::Sha256);
        let blob = data(7 * MIB as usize, 5);
        let mut body = Body::new(vec![blob.clone()], true);
        let held = write(&uploads, &sink, ID, Vouched::Fresh(&fresh), None, &mut body, 100 * MIB, "t", After::Hold).await.unwrap();
        assert_eq!(held.state.parts.len(), 1);
        let wrong = Digest::of(Algorithm::Sha256, b"other");
        let err = uploads.commit(&repo(), held, &wrong, &&sink, 1).await.unwrap_err();
        assert_eq!(err.code, crate::oci::error::Code::DigestInvalid);
        // Nothing but the closed state that refuses the upload's URLs from now on.
        let state_key = crate::storage::paths::PathSpec::UploadState { id: ID }.key();
        assert_eq!(bucket.keys(), vec![state_key.clone()]);
        let closed: UploadState = serde_json::from_slice(&bucket.get(&state_key).await.unwrap().unwrap().0).unwrap();
        assert!(closed.closed && closed.pending.is_empty() && closed.multipart_id.is_none());
        assert_eq!(uploads.load(&repo(), ID).await.unwrap_err().code, crate::oci::error::Code::BlobUploadUnknown);
        assert!(sink.uploads.borrow().is_empty(), "multipart aborted");
    });
}

#[test]
fn stale_tokens_ranges_races_and_ceilings() {
    use crate::oci::error::Code;
    let bucket = MemoryBucket::new();
    let clock = std::cell::Cell::new(0u64);
    let now = || clock.get();
    block_on(async {
        let uploads = Uploads { bucket: &bucket, lease_ms: DEFAULT_LEASE_MS, clock: &now };
        let sink = MemorySink::new(&bucket);
        let fresh = uploads.start(&repo(), ID.into(), 0, Algorithm::Sha256);
        // (Forged upload URLs are refused before the store: auth::upload_url.)
        let mut body = Body::new(vec![vec![1u8; 22]], true);
        let held = write(&uploads, &sink, ID, Vouched::Fresh(&fresh), Some(0), &mut body, 100, "t1", After::Release).await.unwrap();
        assert_eq!((held.state.offset, held.state.lease_until), (22, 0));
        // While a commit holds the lease, a write gets 429: retry when the lease runs out.
        uploads.acquire(&repo(), ID, Vouched::Offset(22), None, 0).await.unwrap();
        clock.set(1);
        for known in [true, false] {
            let mut body = Body::new(vec![vec![2u8; 5]], known);
            let e = write(&uploads, &sink, ID, Vouched::Offset(22), Some(22), &mut body, 100, "t2", After::Release).await.err().unwrap();
            assert_eq!((e.code, e.retry_after), (Code::TooManyRequests, Some(DEFAULT_LEASE_MS / 1000)));
        }
        // The commit died: its lease runs out.
        clock.set(DEFAULT_LEASE_MS + 1);
        // Retrying at the stale location, or out of order, is 416 with the real offset.
        let mut body = Body::new(vec![vec![2u8; 5]], true);
        let e = write(&uploads, &sink, ID, Vouched::Offset(0), Some(0), &mut body, 100, "t3", After::Release).await.err().unwrap();
        assert_eq!((e.code, e.upload_offset), (Code::RangeInvalid, Some(22)));
        let e = write(&uploads, &sink, ID, Vouched::Offset(22), Some(30), &mut body, 100, "t3", After::Release).await.err().unwrap();
        assert_eq!((e.code, e.upload_offset), (Code::RangeInvalid, Some(22)));
        // Over the ceiling (leased or not): 413, and the upload is as it was.
        for known in [true, false] {
            let mut body = Body::new(vec![vec![0u8; 101]], known);
            let e = write(&uploads, &sink, ID, Vouched::Offset(22), Some(22), &mut body, 100, "t4", After::Release).await.err().unwrap();
            assert_eq!(e.code, Code::TooLarge);
            let Loaded { state, .. } = uploads.load(&repo(), ID).await.unwrap();
            assert_eq!(state.offset, 22);
            assert!(state.lease_until <= clock.get(), "free (the dead commit's lease has run out)");
        }
        // A lease left by a dead request expires.
        let t = clock.get();
        uploads.acquire(&repo(), ID, Vouched::Offset(22), None, t).await.unwrap();
        let e = uploads.acquire(&repo(), ID, Vouched::Offset(22), None, t + 1).await.err().unwrap();
        assert_eq!(e.code, Code::TooManyRequests);
        assert!(uploads.acquire(&repo(), ID, Vouched::Offset(22), None, t + DEFAULT_LEASE_MS).await.is_ok());
        let pieces: Vec<String> = bucket.keys().into_iter().filter(|k| k.starts_with("objects/")).collect();
        assert_eq!(pieces, [format!("objects/{ID}/00000000000000000000")], "what the refused writes wrote is undone");
    });
}

#[test]
fn a_fresh_upload_is_stored_from_its_first_write_on_and_refused_once_used_or_closed() {
    use crate::oci::error::Code;
    const OTHER: &str = "1f8fad5b-d9cb-469f-a165-70867728950e";
    let bucket = MemoryBucket::new();
    block_on(async {
        let uploads = Uploads { bucket: &bucket, lease_ms: DEFAULT_LEASE_MS, clock: &|| 0 };
        let sink = MemorySink::new(&bucket);
        let fresh = uploads.start(&repo(), ID.into(), 5, Algorithm::Sha256);
        assert!(bucket.keys().is_empty(), "starting writes nothing");
        // A status sees the fresh upload; without its token the upload is unknown.
        assert_eq!(uploads.peek(&repo(), ID, Vouched::Fresh(&fresh)).await.unwrap(), fresh);
        assert_eq!(uploads.peek(&repo(), ID, Vouched::Unchecked).await.unwrap_err().code, Code::BlobUploadUnknown);
        assert_eq!(uploads.acquire(&repo(), ID, Vouched::Offset(0), None, 0).await.unwrap_err().code, Code::BlobUploadUnknown);
        // A first write that does not start at 0 is 416, and stores nothing.
        let mut body = Body::new(vec![vec![1u8; 10]], true);
        let e = write(&uploads, &sink, ID, Vouched::Fresh(&fresh), Some(3), &mut body, 100, "t1", After::Release).await.unwrap_err();
        assert_eq!((e.code, e.upload_offset), (Code::RangeInvalid, Some(0)));
        let e = uploads.acquire(&repo(), ID, Vouched::Fresh(&fresh), Some(3), 0).await.unwrap_err();
        assert_eq!((e.code, e.upload_offset), (Code::RangeInvalid, Some(0)));
        assert!(bucket.keys().is_empty());
        let mut body = Body::new(vec![vec![1u8; 10]], true);
        let held = write(&uploads, &sink, ID, Vouched::Fresh(&fresh), Some(0), &mut body, 100, "t1", After::Hold).await.unwrap();
        assert_eq!(held.state.started_at, 5, "the start time the token carried");
        // The fresh token is stale now: 416 with the real offset.
        let mut body = Body::new(vec![vec![1u8; 10]], true);
        let e = write(&uploads, &sink, ID, Vouched::Fresh(&fresh), None, &mut body, 100, "t2", After::Release).await.unwrap_err();
        assert_eq!((e.code, e.upload_offset), (Code::RangeInvalid, Some(10)));
        // Committed: the state is gone, and the stored piece keeps the fresh token refused.
        uploads.commit(&repo(), held, &Digest::of(Algorithm::Sha256, &[1u8; 10]), &&sink, 3).await.unwrap();
        assert_eq!(uploads.peek(&repo(), ID, Vouched::Fresh(&fresh)).await.unwrap_err().code, Code::BlobUploadUnknown);
        assert_eq!(uploads.acquire(&repo(), ID, Vouched::Fresh(&fresh), None, 4).await.unwrap_err().code, Code::BlobUploadUnknown);
        let mut body = Body::new(vec![vec![1u8; 10]], true);
        let e = write(&uploads, &sink, ID, Vouched::Fresh(&fresh), None, &mut body, 100, "t3", After::Release).await.unwrap_err();
        assert_eq!(e.code, Code::BlobUploadUnknown);
        // Another fresh upload, cancelled before anything was written: refused from then on.
        let other = uploads.start(&repo(), OTHER.into(), 5, Algorithm::Sha256);
        uploads.cancel(&repo(), OTHER, Vouched::Fresh(&other), &&sink, 5).await.unwrap();
        assert_eq!(uploads.peek(&repo(), OTHER, Vouched::Fresh(&other)).await.unwrap_err().code, Code::BlobUploadUnknown);
        assert_eq!(uploads.acquire(&repo(), OTHER, Vouched::Fresh(&other), None, 5).await.unwrap_err().code, Code::BlobUploadUnknown);
        let mut body = Body::new(vec![vec![1u8; 10]], true);
        let e = write(&uploads, &sink, OTHER, Vouched::Fresh(&other), None, &mut body, 100, "t4", After::Release).await.unwrap_err();
        assert_eq!(e.code, Code::BlobUploadUnknown);
    });
}

/// A body that, before its first piece, lets a racing request run to its end.
struct Racing<'a, B: BodySource> {
    inner: B,
    race: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>>,
}

#[async_trait(?Send)]
impl<B: BodySource> BodySource for Racing<'_, B> {
    type Piece = B::Piece;
    async fn next(&mut self) -> Result<Option<B::Piece>> {
        if let Some(race) = self.race.take() {
            race.await;
        }
        self.inner.next().await
    }
    fn remaining(&self) -> Option<u64> {
        self.inner.remaining()
    }
}

/// The keys under `objects/` and `uploads/`.
fn upload_keys(bucket: &MemoryBucket) -> Vec<String> {
    bucket.keys().into_iter().filter(|k| k.starts_with("objects/") || k.starts_with("uploads/")).collect()
}

#[test]
fn racing_unleased_writes_one_saves_the_other_undoes_all_it_wrote() {
    use crate::oci::error::Code;
    let p = MIN_PART_SIZE as usize;
    let state_key = crate::storage::paths::PathSpec::UploadState { id: ID }.key();
    // (the loser's body, the winner's body): the winner runs while the loser streams.
    let cases: Vec<(Vec<u8>, Vec<u8>, &str)> = vec![
        (data(1000, 1), data(900, 2), "two first pieces at offset 0"),
        (data(p + 7, 3), data(900, 4), "a first write with a part and a tail against one piece"),
        (data(900, 5), data(2 * p, 6), "one piece against a first write of parts only"),
    ];
    for (loser_bytes, winner_bytes, what) in cases {
        let bucket = MemoryBucket::new();
        block_on(async {
            let uploads = Uploads { bucket: &bucket, lease_ms: DEFAULT_LEASE_MS, clock: &|| 0 };
            let sink = MemorySink::new(&bucket);
            let fresh = uploads.start(&repo(), ID.into(), 0, Algorithm::Sha256);
            let winner = async {
                let mut body = Body::new(vec![winner_bytes.clone()], true);
                write(&uploads, &sink, ID, Vouched::Fresh(&fresh), None, &mut body, 100 * MIB as u64, "win", After::Release).await.unwrap();
            };
            let mut body = Racing { inner: Body::new(loser_bytes.chunks(4096).map(|c| c.to_vec()).collect(), true), race: Some(Box::pin(winner)) };
            let e = write(&uploads, &sink, ID, Vouched::Fresh(&fresh), None, &mut body, 100 * MIB as u64, "lose", After::Release).await.unwrap_err();
            assert_eq!(e.code, Code::TooManyRequests, "{what}");
            assert!(sink.uploads.borrow().len() <= 1, "{what}: the loser's multipart upload is aborted");
            let Loaded { state, .. } = uploads.load(&repo(), ID).await.unwrap();
            assert_eq!(state.offset, winner_bytes.len() as u64, "{what}");
            let mut expected: Vec<String> = state.pending_keys();
            expected.push(state_key.clone());
            expected.sort();
            assert_eq!(upload_keys(&bucket), expected, "{what}: only the winner's pieces");
            // The winner's upload goes on to the right blob.
            let held = uploads.acquire(&repo(), ID, Vouched::Offset(state.offset), None, 1).await.unwrap();
            let desc = uploads.commit(&repo(), held, &Digest::of(Algorithm::Sha256, &winner_bytes), &&sink, 1).await.unwrap();
            assert_eq!(bucket.get(&desc.object).await.unwrap().unwrap().0, winner_bytes, "{what}");
        });
    }
}

#[test]
fn a_first_write_that_finds_its_upload_used_meanwhile_undoes_itself() {
    use crate::oci::error::Code;
    let p = MIN_PART_SIZE as usize;
    let bucket = MemoryBucket::new();
    block_on(async {
        let uploads = Uploads { bucket: &bucket, lease_ms: DEFAULT_LEASE_MS, clock: &|| 0 };
        let sink = MemorySink::new(&bucket);
        let fresh = uploads.start(&repo(), ID.into(), 0, Algorithm::Sha256);
        // While a first write of one whole part streams, the same URL is used for a whole
        // upload that is committed (its state deleted, its piece kept as the blob's data).
        let small = data(900, 7);
        let d = Digest::of(Algorithm::Sha256, &small);
        let other = async {
            let mut body = Body::new(vec![small.clone()], true);
            let held = write(&uploads, &sink, ID, Vouched::Fresh(&fresh), None, &mut body, 100 * MIB as u64, "other", After::Hold).await.unwrap();
            uploads.commit(&repo(), held, &d, &&sink, 1).await.unwrap();
        };
        let big = data(p, 8);
        let mut body = Racing { inner: Body::new(big.chunks(4096).map(|c| c.to_vec()).collect(), true), race: Some(Box::pin(other)) };
        let e = write(&uploads, &sink, ID, Vouched::Fresh(&fresh), None, &mut body, 100 * MIB as u64, "late", After::Release).await.unwrap_err();
        assert_eq!(e.code, Code::BlobUploadUnknown);
        // Nothing of the late write is left; the committed blob is intact.
        assert_eq!(upload_keys(&bucket), [format!("objects/{ID}/00000000000000000000")]);
        assert!(sink.uploads.borrow().is_empty(), "its multipart upload is aborted");
        let (desc, _) = crate::storage::blobs::descriptor(&bucket, &d).await.unwrap().unwrap();
        assert_eq!(bucket.get(&desc.object).await.unwrap().unwrap().0, small);
    });
}

#[test]
fn a_piece_written_unleased_loses_to_a_leased_write_and_is_undone() {
    use crate::oci::error::Code;
    let p = MIN_PART_SIZE as usize;
    let bucket = MemoryBucket::new();
    block_on(async {
        let uploads = Uploads { bucket: &bucket, lease_ms: DEFAULT_LEASE_MS, clock: &|| 0 };
        let sink = MemorySink::new(&bucket);
        let fresh = uploads.start(&repo(), ID.into(), 0, Algorithm::Sha256);
        let first = data(10, 9);
        let mut body = Body::new(vec![first.clone()], true);
        write(&uploads, &sink, ID, Vouched::Fresh(&fresh), None, &mut body, 100 * MIB as u64, "a", After::Release).await.unwrap();
        // A small chunk at offset 10 streams; meanwhile a chunk that fills a part (leased)
        // is written at the same offset and saved.
        let big = data(p, 10);
        let leased = async {
            let mut body = Body::new(vec![big.clone()], false);
            let held = write(&uploads, &sink, ID, Vouched::Offset(10), Some(10), &mut body, 100 * MIB as u64, "b", After::Release).await.unwrap();
            assert_eq!(held.state.parts.len(), 1);
        };
        let mut body = Racing { inner: Body::new(vec![vec![3u8; 20]], true), race: Some(Box::pin(leased)) };
        let e = write(&uploads, &sink, ID, Vouched::Offset(10), Some(10), &mut body, 100 * MIB as u64, "c", After::Release).await.unwrap_err();
        assert_eq!(e.code, Code::TooManyRequests);
        assert!(!bucket.keys().iter().any(|k| k.ends_with(".c")), "the loser's piece is deleted: {:?}", bucket.keys());
        let Loaded { state, .. } = uploads.load(&repo(), ID).await.unwrap();
        let held = uploads.acquire(&repo(), ID, Vouched::Offset(state.offset), None, 1).await.unwrap();
        let blob: Vec<u8> = first.iter().chain(big.iter()).copied().collect();
        let desc = uploads.commit(&repo(), held, &Digest::of(Algorithm::Sha256, &blob), &&sink, 1).await.unwrap();
        assert_eq!(bucket.get(&desc.object).await.unwrap().unwrap().0, blob);
    });
}

#[test]
fn a_cancel_waits_for_the_lease_and_then_leaves_only_a_closed_state() {
    use crate::oci::error::Code;
    let bucket = MemoryBucket::new();
    block_on(async {
        let uploads = Uploads { bucket: &bucket, lease_ms: DEFAULT_LEASE_MS, clock: &|| 0 };
        let sink = MemorySink::new(&bucket);
        let fresh = uploads.start(&repo(), ID.into(), 0, Algorithm::Sha256);
        let blob = data(7 * MIB as usize, 11);
        let mut body = Body::new(vec![blob.clone()], true);
        let held = write(&uploads, &sink, ID, Vouched::Fresh(&fresh), None, &mut body, 100 * MIB as u64, "a", After::Hold).await.unwrap();
        // A commit holds the lease: a cancel now would delete what it is committing.
        let e = uploads.cancel(&repo(), ID, Vouched::Offset(held.state.offset), &&sink, 1).await.unwrap_err();
        assert_eq!(e.code, Code::TooManyRequests);
        uploads.cancel(&repo(), ID, Vouched::Offset(held.state.offset), &&sink, DEFAULT_LEASE_MS + 1).await.unwrap();
        let state_key = crate::storage::paths::PathSpec::UploadState { id: ID }.key();
        assert_eq!(upload_keys(&bucket), [state_key]);
        assert!(sink.uploads.borrow().is_empty(), "multipart aborted");
        assert_eq!(uploads.peek(&repo(), ID, Vouched::Offset(held.state.offset)).await.unwrap_err().code, Code::BlobUploadUnknown);
    });
}

#[test]
fn second_upload_of_same_content_keeps_one_copy() {
    let blob = data(6 * MIB as usize, 6);
    let bucket = MemoryBucket::new();
    block_on(async {
        let uploads = Uploads { bucket: &bucket, lease_ms: DEFAULT_LEASE_MS, clock: &|| 0 };
        let sink = MemorySink::new(&bucket);
        let d = Digest::of(Algorithm::Sha256, &blob);
        let second = "1f8fad5b-d9cb-469f-a165-70867728950e";
        for id in [ID, second] {
            let fresh = uploads.start(&repo(), id.into(), 0, Algorithm::Sha256);
            let mut body = Body::new(vec![blob.clone()], true);
            let held = write(&uploads, &sink, id, Vouched::Fresh(&fresh), None, &mut body, 100 * MIB, "t", After::Hold).await.unwrap();
            uploads.commit(&repo(), held, &d, &&sink, 1).await.unwrap();
        }
        let objects: Vec<String> = bucket.keys().into_iter().filter(|k| k.starts_with("objects/")).collect();
        assert_eq!(objects.len(), 1, "{objects:?}");
        // The second kept no bytes of its own: a closed state refuses its first URL.
        let fresh = uploads.start(&repo(), second.into(), 0, Algorithm::Sha256);
        assert_eq!(uploads.peek(&repo(), second, Vouched::Fresh(&fresh)).await.unwrap_err().code, crate::oci::error::Code::BlobUploadUnknown);
        let first = uploads.start(&repo(), ID.into(), 0, Algorithm::Sha256);
        assert_eq!(uploads.peek(&repo(), ID, Vouched::Fresh(&first)).await.unwrap_err().code, crate::oci::error::Code::BlobUploadUnknown);
        let states: Vec<String> = bucket.keys().into_iter().filter(|k| k.starts_with("uploads/")).collect();
        assert_eq!(states, vec![crate::storage::paths::PathSpec::UploadState { id: second }.key()]);
    });
}

/// A body that takes 5 s per piece, noting the upload's persisted lease as it goes.
struct SlowBody<'a> {
    pieces: VecDeque<Vec<u8>>,
    clock: &'a std::cell::Cell<u64>,
    bucket: &'a MemoryBucket,
    leases: Vec<(u64, u64)>,
}

#[async_trait::async_trait(?Send)]
impl BodySource for SlowBody<'_> {
    type Piece = Vec<u8>;
    async fn next(&mut self) -> Result<Option<Vec<u8>>> {
        let state_key = crate::storage::paths::PathSpec::UploadState { id: ID }.key();
        let state: UploadState = serde_json::from_slice(&self.bucket.get(&state_key).await?.unwrap().0).unwrap();
        self.leases.push((self.clock.get(), state.lease_until));
        self.clock.set(self.clock.get() + 5_000);
        Ok(self.pieces.pop_front())
    }
    fn remaining(&self) -> Option<u64> {
        None
    }
}

#[test]
fn the_lease_is_renewed_while_a_long_body_streams() {
    let bucket = MemoryBucket::new();
    let clock = std::cell::Cell::new(1_000u64);
    let now = || clock.get();
    block_on(async {
        let uploads = Uploads { bucket: &bucket, lease_ms: DEFAULT_LEASE_MS, clock: &now };
        let sink = MemorySink::new(&bucket);
        let fresh = uploads.start(&repo(), ID.into(), 0, Algorithm::Sha256);
        let mut empty = Body::new(Vec::<Vec<u8>>::new(), true);
        write(&uploads, &sink, ID, Vouched::Fresh(&fresh), None, &mut empty, 100 * MIB, "t0", After::Release).await.unwrap();
        // A body of unknown length into a started upload takes the lease. 24 pieces at 5 s
        // each: two minutes, four times the lease.
        let mut body = SlowBody { pieces: (0..24).map(|i| vec![i as u8; 1000]).collect(), clock: &clock, bucket: &bucket, leases: Vec::new() };
        let held = write(&uploads, &sink, ID, Vouched::Offset(0), None, &mut body, 100 * MIB, "t1", After::Release).await.unwrap();
        assert_eq!(held.state.offset, 24_000);
        for (at, until) in &body.leases {
            assert!(until > at, "the lease ran out while the body streamed: at {at}, until {until}");
            assert!(until - at <= DEFAULT_LEASE_MS);
        }
        let Loaded { state, .. } = uploads.load(&repo(), ID).await.unwrap();
        assert_eq!(state.lease_until, 0, "released after the chunk");
    });
}

#[test]
fn a_body_of_exactly_the_ceiling_is_taken_one_byte_more_is_not() {
    assert_eq!((MIN_PART_SIZE, MAX_PART_SIZE), (5 * MIB, 5 * 1024 * MIB - 1));
    block_on(async {
        let bucket = MemoryBucket::new();
        let sink = MemorySink::new(&bucket);
        let clock = || 0;
        let uploads = Uploads { bucket: &bucket, lease_ms: DEFAULT_LEASE_MS, clock: &clock };
        for known in [true, false] {
            let id = if known { "00000000-0000-0000-0000-00000000000a" } else { "00000000-0000-0000-0000-00000000000b" };
            let fresh = uploads.start(&repo(), id.into(), 0, Algorithm::Sha256);
            let mut body = Body::new(vec![vec![7u8; 60], vec![7u8; 40]], known);
            let held = write(&uploads, &sink, id, Vouched::Fresh(&fresh), None, &mut body, 100, "t1", After::Release).await.unwrap();
            assert_eq!(held.state.offset, 100, "known length: {known}");
            let mut body = Body::new(vec![vec![7u8; 60], vec![7u8; 41]], known);
            let e = write(&uploads, &sink, id, Vouched::Offset(100), None, &mut body, 100, "t2", After::Release).await.err().unwrap();
            assert_eq!(e.code, Code::TooLarge, "known length: {known}");
        }
    });
}
