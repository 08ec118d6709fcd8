//! Upload URLs carry `_state=<offset>.<mac>`: an HMAC-SHA256 over repository name, upload id
//! and offset with the registry's secret (`UPLOAD_SECRET`). A forged token is refused as an
//! unknown upload; a genuine but stale one (an offset the upload has moved past) is recognised
//! by the upload store, which answers 416 with the real `Range`. (Not the bearer-token key:
//! that one signs the JWTs of `token`.)

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::oci::error::{Code, RegistryError, Result};

/// The key that signs upload URLs (from `UPLOAD_SECRET`).
pub struct UploadUrlKey(Vec<u8>);

impl UploadUrlKey {
    pub fn new(secret: &[u8]) -> Self {
        UploadUrlKey(secret.to_vec())
    }

    fn mac(&self, name: &str, id: &str, offset: u64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("any key length");
        mac.update(format!("{name}\n{id}\n{offset}").as_bytes());
        mac
    }

    pub fn sign(&self, name: &str, id: &str, offset: u64) -> String {
        let tag = self.mac(name, id, offset).finalize().into_bytes();
        format!("{offset}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The offset a token vouches for; BLOB_UPLOAD_UNKNOWN if it was not signed by us for
    /// this name and id. The comparison is constant-time.
    pub fn verify(&self, name: &str, id: &str, token: &str) -> Result<u64> {
        let forged = || RegistryError::new(Code::BlobUploadUnknown, "upload token invalid");
        let (offset, tag) = token.split_once('.').ok_or_else(forged)?;
        let offset: u64 = offset.parse().map_err(|_| forged())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| forged())?;
        self.mac(name, id, offset).verify_slice(&tag).map_err(|_| forged())?;
        Ok(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_for_their_name_and_id_only() {
        let key = UploadUrlKey::new(b"k");
        let t = key.sign("a/b", "id1", 42);
        assert_eq!(key.verify("a/b", "id1", &t).unwrap(), 42);
        for (name, id, token) in [("a/c", "id1", t.as_str()), ("a/b", "id2", t.as_str()), ("a/b", "id1", "42.AAAA"), ("a/b", "id1", "x"), ("a/b", "id1", "")] {
            assert_eq!(key.verify(name, id, token).unwrap_err().code, Code::BlobUploadUnknown, "{name} {id} {token}");
        }
        assert!(UploadUrlKey::new(b"other").verify("a/b", "id1", &t).is_err());
        // The offset is covered by the MAC.
        let forged = t.replacen("42.", "43.", 1);
        assert!(key.verify("a/b", "id1", &forged).is_err());
    }
}
