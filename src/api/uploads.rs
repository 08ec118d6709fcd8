//! `/v2/<name>/blobs/uploads/[<id>]`: start (with monolithic and mount variants), status,
//! chunk, commit, cancel. Starting writes nothing: the Location's token describes the fresh
//! upload until its first write (`storage::uploads`). The chunked path streams through
//! `storage::uploads`; a body whose digest is known up front goes straight to its key, verified
//! by R2: `POST ?digest=` to its content-addressed key, a PUT carrying the whole blob into a
//! fresh upload to the upload's single piece.

use worker::{Response, ResponseBody};

use super::reply;
use crate::app::Context;
use crate::http::chunk_start;
use crate::oci::digest::{Algorithm, Digest};
use crate::oci::error::{Code, RegistryError, Result};
use crate::oci::name::RepoName;
use crate::routes::{blob_url, upload_url};
use crate::storage::chunking::Limits;
use crate::storage::r2::{body_matches, RequestBody, Verified};
use crate::http::upload_range;
use crate::storage::upload_state::UploadState;
use crate::auth::upload_url::Voucher;
use crate::storage::paths::PathSpec;
use crate::storage::uploads::{After, Loaded, Uploads, Vouched};
use crate::storage::blobs;

fn wall_clock() -> u64 {
    js_sys::Date::now() as u64
}

fn store<'a>(cx: &'a Context<'a>) -> Uploads<'a, crate::storage::r2::R2> {
    Uploads { bucket: &cx.app.r2, lease_ms: cx.app.config.upload_lease_ms, clock: &wall_clock }
}

/// 202 with the upload's Location, id and Range.
fn in_progress(cx: &Context<'_>, name: &RepoName, state: &UploadState, status: u16) -> Result<Response> {
    let key = &cx.app.config.upload_url_key;
    let token = if state.is_untouched() {
        key.sign_fresh(name.as_str(), &state.id, state.started_at, state.algorithm)
    } else {
        key.sign(name.as_str(), &state.id, state.offset)
    };
    let headers = [
        ("Location", upload_url(name, &state.id, &token)),
        ("Docker-Upload-UUID", state.id.clone()),
        ("Range", upload_range(state.offset)),
        ("Content-Length", "0".to_string()),
    ];
    reply(status, &headers, ResponseBody::Empty)
}

fn created(name: &RepoName, digest: &Digest) -> Result<Response> {
    let headers = [("Location", blob_url(name, digest)), ("Docker-Content-Digest", digest.to_string()), ("Content-Length", "0".to_string())];
    reply(201, &headers, ResponseBody::Empty)
}

fn digest_param(cx: &Context<'_>) -> Result<Option<Digest>> {
    cx.query("digest").map(Digest::parse).transpose()
}

pub async fn post(cx: Context<'_>, name: &RepoName) -> Result<Response> {
    if let (Some(mount), Some(from)) = (cx.query("mount"), cx.query("from")) {
        let digest = Digest::parse(mount)?;
        let from = RepoName::parse(from)?;
        // Mounting reads `from`: the caller must be allowed to pull there (else: upload).
        let may_read = cx.caller.actions_on(&cx.app.config.auth, &from).contains(crate::auth::Action::Pull);
        if may_read && blobs::mount(&cx.app.r2, name, &from, &digest, cx.now_ms()).await?.is_some() {
            return created(name, &digest);
        }
        // Not visible in `from`: fall back to a regular upload session.
    }
    if let Some(digest) = digest_param(&cx)? {
        let len = cx.content_length()?.ok_or_else(|| {
            RegistryError::new(Code::SizeInvalid, "a monolithic upload needs a Content-Length")
        })?;
        return put_whole(&cx, name, &digest, len).await;
    }
    let algorithm = match cx.query("digest-algorithm") {
        None => Algorithm::Sha256,
        Some(name) => Algorithm::parse(name)
            .ok_or_else(|| RegistryError::new(Code::Unsupported, format!("digest algorithm {name} not supported")))?,
    };
    let state = store(&cx).start(name, cx.new_id(), cx.now_ms(), algorithm);
    in_progress(&cx, name, &state, 202)
}

/// A whole blob whose digest is known before its bytes: written once, to its own key, with
/// R2 verifying the digest (a mismatch stores nothing).
async fn put_whole(cx: &Context<'_>, name: &RepoName, digest: &Digest, len: u64) -> Result<Response> {
    if len > cx.app.config.max_body {
        return Err(RegistryError::new(Code::TooLarge, format!("request body of {len} bytes exceeds {}", cx.app.config.max_body)));
    }
    store_whole(cx, name, digest, len, WholeKey::ContentAddressed).await?;
    created(name, digest)
}

/// Where a whole blob's bytes go: its own content-addressed key, or a fresh upload's first piece.
enum WholeKey {
    ContentAddressed,
    /// The key of a fresh upload's piece at offset 0, written only if absent: its writer owns
    /// the upload.
    FirstPiece(String),
}

/// Stores the request body (`len` bytes, the whole blob) as `digest` in `name`: linked if the
/// blob is stored already and the body hashes to its digest, else streamed to `key` with R2
/// verifying the digest. The bytes never enter wasm. Returns whether the blob's data is now at
/// `key` (not when the blob was stored before, or a racing upload stored it first).
///
/// Proof of possession: a digest names bytes, it does not prove the caller has them. Linking a
/// stored blob on the digest alone let any pusher read every tenant's blobs (name the digest,
/// send one junk byte, pull it from its own repository), and told it which digests exist. So a
/// stored blob is linked only when the body hashes to it (the runtime hashes; nothing is written
/// twice), and a wrong body gets the same DIGEST_INVALID whether the digest exists or not.
async fn store_whole(cx: &Context<'_>, name: &RepoName, digest: &Digest, len: u64, key: WholeKey) -> Result<bool> {
    let (r2, now) = (&cx.app.r2, cx.now_ms());
    let mismatch = || RegistryError::new(Code::DigestInvalid, format!("content does not match {digest}"));
    match blobs::claim(r2, digest, now).await? {
        // Stored before: link it, once the body proves the caller holds its bytes.
        Some(desc) => {
            if !body_matches(cx.req.inner().body(), len, digest).await {
                return Err(mismatch());
            }
            blobs::link(r2, name, digest, &desc).await?;
            Ok(false)
        }
        None => {
            let (key, only_new) = match key {
                WholeKey::FirstPiece(k) => (k, true),
                WholeKey::ContentAddressed => (blobs::fresh_data_key(r2, digest, &cx.new_id()).await?, false),
            };
            match r2.put_verified(&key, cx.req.inner().body(), len, digest, only_new).await? {
                Verified::Stored => {}
                Verified::Mismatch => return Err(mismatch()),
                Verified::Exists => return Err(crate::storage::chunking::first_piece_taken()),
            }
            let (desc, _) = blobs::commit(r2, name, digest, len, key.clone(), now).await?;
            Ok(desc.object == key)
        }
    }
}

/// The request's upload token, checked once: what it vouches for (`None` when the URL has no
/// token), with the fresh upload it describes if it describes one.
struct Token {
    voucher: Option<Voucher>,
    fresh: Option<UploadState>,
}

impl Token {
    fn of(cx: &Context<'_>, name: &RepoName, id: &str) -> Result<Token> {
        let Some(token) = cx.query("_state") else { return Ok(Token { voucher: None, fresh: None }) };
        let max_age = cx.app.config.lifecycle.upload_max_age_ms;
        let voucher = cx.app.config.upload_url_key.verify_at(name.as_str(), id, token, cx.now_ms(), max_age)?;
        let fresh = match voucher {
            Voucher::Fresh { started_at, algorithm } => Some(UploadState::new(id.to_string(), name, started_at, algorithm)),
            Voucher::Offset(_) => None,
        };
        Ok(Token { voucher: Some(voucher), fresh })
    }

    /// What the upload store is to check the stored state against.
    fn vouched(&self) -> Vouched<'_> {
        match (&self.fresh, self.voucher) {
            (Some(f), _) => Vouched::Fresh(f),
            (None, Some(Voucher::Offset(o))) => Vouched::Offset(o),
            _ => Vouched::Unchecked,
        }
    }
}

/// The upload's status: like every other upload request, only with its signed URL (an upload
/// id alone, from a log line or a Docker-Upload-UUID header, reveals and changes nothing).
pub async fn status(cx: &Context<'_>, name: &RepoName, id: &str) -> Result<Response> {
    let token = Token::of(cx, name, id)?;
    require(&token)?;
    let state = store(cx).peek(name, id, token.vouched()).await?;
    in_progress(cx, name, &state, 204)
}

/// Where the client says a body starts (`Content-Range`), checked against the body's length.
fn range_start(cx: &Context<'_>, len: Option<u64>) -> Result<Option<u64>> {
    match cx.header("content-range") {
        Some(h) => Ok(Some(chunk_start(&h, len).ok_or_else(|| {
            // Malformed (or not matching the body's length): a bad request. A well-formed
            // range that does not start at the upload's offset is 416 (in `acquire`).
            RegistryError::new(Code::BlobUploadInvalid, format!("invalid Content-Range {h:?}"))
        })?)),
        None => Ok(None),
    }
}

/// The request's token, required for any write.
fn require(token: &Token) -> Result<()> {
    match token.voucher {
        Some(_) => Ok(()),
        None => Err(RegistryError::new(Code::BlobUploadUnknown, "upload URL without its state token")),
    }
}

/// Loads (or, for a fresh upload, creates) and leases the upload for a commit without a body,
/// checking the request's token and Content-Range.
async fn acquire(cx: &Context<'_>, name: &RepoName, id: &str, token: &Token, len: Option<u64>) -> Result<Loaded> {
    let range_start = range_start(cx, len)?;
    require(token)?;
    store(cx).acquire(name, id, token.vouched(), range_start, cx.now_ms()).await
}

/// Appends the request body to the upload, checking the request's token and Content-Range.
async fn write(cx: &Context<'_>, name: &RepoName, id: &str, token: &Token, len: Option<u64>, after: After) -> Result<Loaded> {
    let range_start = range_start(cx, len)?;
    require(token)?;
    let mut body = RequestBody::new(&cx.req, len);
    let limits = Limits { max_body: cx.app.config.max_body, part_size: cx.app.config.part_size };
    // A tag unique to this request for the pieces it writes (48 random bits).
    let tag: String = cx.new_id().chars().filter(char::is_ascii_hexdigit).take(12).collect();
    store(cx).write(name, id, token.vouched(), range_start, &mut body, &cx.app.r2, limits, &tag, after).await
}

pub async fn patch(cx: Context<'_>, name: &RepoName, id: &str) -> Result<Response> {
    let len = cx.content_length()?;
    let held = write(&cx, name, id, &Token::of(&cx, name, id)?, len, After::Release).await?;
    in_progress(&cx, name, &held.state, 202)
}

pub async fn put(cx: Context<'_>, name: &RepoName, id: &str) -> Result<Response> {
    let digest = digest_param(&cx)?.ok_or_else(|| RegistryError::new(Code::DigestInvalid, "PUT needs ?digest="))?;
    let len = cx.content_length()?;
    let whole = len.filter(|l| *l > 0 && *l <= cx.app.config.max_body);
    let token = Token::of(&cx, name, id)?;
    if let Some(len) = whole {
        let uploads = store(&cx);
        match (uploads.find(name, id).await?, &token.fresh) {
            // The whole blob in this one body into a fresh upload (POST, then PUT with the
            // bytes, as oras and python clients push small blobs): the bytes become the upload's
            // single piece, verified by R2. No state, no hash state, no parts, no lease.
            (None, Some(fresh)) => {
                if range_start(&cx, len.into())?.is_some_and(|s| s != 0) {
                    return Err(RegistryError::new(Code::RangeInvalid, "Content-Range must start at 0").with_range(0));
                }
                uploads.ensure_unused(id).await?;
                let piece = PathSpec::UploadPending { id, offset: 0, tag: None }.key();
                return match store_whole(&cx, name, &digest, len, WholeKey::FirstPiece(piece)).await {
                    // The piece marks the upload as used; without one, a closed state does
                    // (unless another request made the upload its own meanwhile).
                    Ok(true) => created(name, &digest),
                    Ok(false) => {
                        uploads.close_fresh(fresh).await?;
                        created(name, &digest)
                    }
                    // As on the chunked path, a digest mismatch ends the upload.
                    Err(e) if e.code == Code::DigestInvalid => {
                        uploads.close_fresh(fresh).await?;
                        Err(e)
                    }
                    Err(e) => Err(e),
                };
            }
            // The whole blob into an upload whose state exists but holds nothing yet: straight
            // to its content-addressed key, verified by R2, like a `POST ?digest=`; the session
            // just ends.
            (Some(found), _) if found.state.is_untouched() => {
                let held = acquire(&cx, name, id, &token, Some(len)).await?;
                return match store_whole(&cx, name, &digest, len, WholeKey::ContentAddressed).await {
                    Ok(_) => {
                        uploads.discard(&held.state, &cx.app.r2).await?;
                        created(name, &digest)
                    }
                    // As on the chunked path, a digest mismatch ends the upload; other faults
                    // leave it.
                    Err(e) if e.code == Code::DigestInvalid => {
                        uploads.discard(&held.state, &cx.app.r2).await?;
                        Err(e)
                    }
                    Err(e) => {
                        let _ = uploads.release(held.state, held.etag).await;
                        Err(e)
                    }
                };
            }
            _ => {}
        }
    }
    let has_body = len.is_some_and(|l| l > 0) || (len.is_none() && cx.req.inner().body().is_some());
    if !has_body {
        let held = acquire(&cx, name, id, &token, len).await?;
        store(&cx).commit(name, held, &digest, &cx.app.r2, cx.now_ms()).await?;
        return created(name, &digest);
    }
    // The last chunk, then the commit under the lease its write kept.
    let held = write(&cx, name, id, &token, len, After::Hold).await?;
    store(&cx).commit(name, held, &digest, &cx.app.r2, cx.now_ms()).await?;
    created(name, &digest)
}

/// Cancels the upload: all it wrote is deleted, and a closed state keeps its URLs refused.
pub async fn delete(cx: &Context<'_>, name: &RepoName, id: &str) -> Result<Response> {
    let token = Token::of(cx, name, id)?;
    require(&token)?;
    store(cx).cancel(name, id, token.vouched(), &cx.app.r2, cx.now_ms()).await?;
    reply(204, &[], ResponseBody::Empty)
}
