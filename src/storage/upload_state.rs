//! An upload session's persisted state: everything a chunk or the commit needs to continue
//! the upload in another request (offset, saved hash state, multipart id and part etags,
//! pending pieces, the lease). Stored as JSON in `uploads/<id>/state` from the upload's first
//! write on (a fresh upload is described by its URL's token alone); `uploads` owns its
//! lifecycle, `chunking` advances it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::paths::PathSpec;
use crate::oci::digest::{Algorithm, BlobHasher};
use crate::oci::error::{Code, RegistryError, Result};
use crate::oci::name::RepoName;

/// A pending piece: bytes from `offset` that did not fill a part yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub offset: u64,
    pub len: u64,
    /// The tag of the request that wrote it, part of its key (none at offset 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl Pending {
    /// The piece `len` bytes from `offset` on, written by the request tagged `tag`: the piece
    /// at offset 0 has the upload's one untagged key.
    pub fn new(offset: u64, len: u64, tag: &str) -> Self {
        Pending { offset, len, tag: (offset > 0).then(|| tag.to_string()) }
    }
}

/// Everything an upload needs to continue in another request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    pub id: String,
    pub name: String,
    /// Milliseconds since the epoch (for purging abandoned uploads).
    pub started_at: u64,
    pub offset: u64,
    pub algorithm: Algorithm,
    /// The hasher's saved state, base64.
    pub hash_state: String,
    #[serde(default)]
    pub part_size: Option<u64>,
    #[serde(default)]
    pub multipart_id: Option<String>,
    #[serde(default)]
    pub parts: Vec<(u16, String)>,
    #[serde(default)]
    pub pending: Vec<Pending>,
    /// A request is writing until this time (ms); 0 when idle.
    #[serde(default)]
    pub lease_until: u64,
    /// Closed for good (cancelled, or a whole PUT that failed its digest): its URLs are refused
    /// until the purge removes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closed: bool,
}

impl UploadState {
    /// Nothing was written to the upload yet: no bytes, no parts, no pending piece.
    pub fn is_untouched(&self) -> bool {
        self.offset == 0 && self.multipart_id.is_none() && self.parts.is_empty() && self.pending.is_empty()
    }

    pub fn new(id: String, name: &RepoName, started_at: u64, algorithm: Algorithm) -> Self {
        let hasher = BlobHasher::new(algorithm);
        UploadState {
            id,
            name: name.to_string(),
            started_at,
            offset: 0,
            algorithm,
            hash_state: URL_SAFE_NO_PAD.encode(hasher.save()),
            part_size: None,
            multipart_id: None,
            parts: Vec::new(),
            pending: Vec::new(),
            lease_until: 0,
            closed: false,
        }
    }

    pub fn hasher(&self) -> Result<BlobHasher> {
        let bytes = URL_SAFE_NO_PAD
            .decode(&self.hash_state)
            .map_err(|_| RegistryError::new(Code::BlobUploadInvalid, "corrupt upload hash state"))?;
        BlobHasher::restore(self.algorithm, &bytes)
    }

    pub fn save_hasher(&mut self, hasher: &BlobHasher) {
        self.hash_state = URL_SAFE_NO_PAD.encode(hasher.save());
    }

    pub fn pending_len(&self) -> u64 {
        self.pending.iter().map(|p| p.len).sum()
    }

    pub fn pending_key(&self, piece: &Pending) -> String {
        PathSpec::UploadPending { id: &self.id, offset: piece.offset, tag: piece.tag.as_deref() }.key()
    }

    pub fn pending_keys(&self) -> Vec<String> {
        self.pending.iter().map(|p| self.pending_key(p)).collect()
    }

    /// The multipart object (or joined object) this upload completes into.
    pub fn object_key(&self) -> String {
        PathSpec::UploadObject { id: &self.id }.key()
    }

    /// Every object this upload may have written, for discarding it.
    pub fn written_keys(&self) -> Vec<String> {
        let mut keys = self.pending_keys();
        keys.push(self.object_key());
        keys
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serializable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_until_something_is_written() {
        let name = RepoName::parse("a/b").unwrap();
        let fresh = UploadState::new("id".into(), &name, 0, Algorithm::Sha256);
        assert!(fresh.is_untouched());
        for touched in [
            UploadState { offset: 1, ..fresh.clone() },
            UploadState { multipart_id: Some("m".into()), ..fresh.clone() },
            UploadState { parts: vec![(1, "e".into())], ..fresh.clone() },
            UploadState { pending: vec![Pending::new(0, 0, "t")], ..fresh.clone() },
        ] {
            assert!(!touched.is_untouched(), "{touched:?}");
        }
    }
}
