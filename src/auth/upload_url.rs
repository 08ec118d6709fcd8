//! Upload URLs carry `_state=<token>`, an HMAC-SHA256 with the registry's secret
//! (`UPLOAD_SECRET`) over repository name, upload id and what the token vouches for:
//! - `<offset>.<mac>`: the upload is at `offset`, its state in the bucket;
//! - `0.<started>.<algorithm>.<mac>`: an upload nothing was written to yet, started at
//!   `started` (ms) hashing with `algorithm`. A POST writes nothing: this token is all there is of
//!   the upload until its first write creates the state (`storage::uploads`).
//!
//! A forged token is refused as an unknown upload; a genuine but stale one (an offset the upload
//! has moved past) is recognised by the upload store, which answers 416 with the real `Range`.
//! (Not the bearer-token key: that one signs the JWTs of `token`.)

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::oci::digest::Algorithm;
use crate::oci::error::{Code, RegistryError, Result};

/// What a genuine upload token vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voucher {
    /// The upload is at this offset; its state is in the bucket.
    Offset(u64),
    /// Nothing was written to the upload yet: when it started (ms) and the algorithm it hashes with.
    Fresh { started_at: u64, algorithm: Algorithm },
}

/// The key that signs upload URLs (from `UPLOAD_SECRET`).
pub struct UploadUrlKey(Vec<u8>);

impl UploadUrlKey {
    pub fn new(secret: &[u8]) -> Self {
        UploadUrlKey(secret.to_vec())
    }

    fn mac(&self, name: &str, id: &str, vouched: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("any key length");
        mac.update(format!("{name}\n{id}\n{vouched}").as_bytes());
        mac
    }

    fn signed(&self, name: &str, id: &str, vouched: String) -> String {
        let tag = self.mac(name, id, &vouched).finalize().into_bytes();
        format!("{vouched}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The token of an upload at `offset` whose state is in the bucket.
    pub fn sign(&self, name: &str, id: &str, offset: u64) -> String {
        self.signed(name, id, offset.to_string())
    }

    /// The token of an upload nothing was written to yet.
    pub fn sign_fresh(&self, name: &str, id: &str, started_at: u64, algorithm: Algorithm) -> String {
        self.signed(name, id, format!("0.{started_at}.{}", algorithm.as_str()))
    }

    /// What a token vouches for; BLOB_UPLOAD_UNKNOWN if it was not signed by us for this name
    /// and id. The comparison is constant-time.
    pub fn verify(&self, name: &str, id: &str, token: &str) -> Result<Voucher> {
        let forged = || RegistryError::new(Code::BlobUploadUnknown, "upload token invalid");
        let (vouched, tag) = token.rsplit_once('.').ok_or_else(forged)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| forged())?;
        self.mac(name, id, vouched).verify_slice(&tag).map_err(|_| forged())?;
        let fields: Vec<&str> = vouched.split('.').collect();
        match fields.as_slice() {
            [offset] => Ok(Voucher::Offset(offset.parse().map_err(|_| forged())?)),
            ["0", started, algorithm] => Ok(Voucher::Fresh {
                started_at: started.parse().map_err(|_| forged())?,
                algorithm: Algorithm::parse(algorithm).ok_or_else(forged)?,
            }),
            _ => Err(forged()),
        }
    }

    /// [`verify`](Self::verify) at `now`: a fresh upload's token lives `max_age_ms` from its
    /// start, as long as the purge lets an upload live (past that, what refuses a used token
    /// again may have been purged).
    pub fn verify_at(&self, name: &str, id: &str, token: &str, now: u64, max_age_ms: u64) -> Result<Voucher> {
        let voucher = self.verify(name, id, token)?;
        match voucher {
            Voucher::Fresh { started_at, .. } if now >= started_at.saturating_add(max_age_ms) => {
                Err(RegistryError::new(Code::BlobUploadUnknown, format!("upload {id} expired")))
            }
            _ => Ok(voucher),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_for_their_name_and_id_only() {
        let key = UploadUrlKey::new(b"k");
        let t = key.sign("a/b", "id1", 42);
        assert_eq!(key.verify("a/b", "id1", &t).unwrap(), Voucher::Offset(42));
        for (name, id, token) in [("a/c", "id1", t.as_str()), ("a/b", "id2", t.as_str()), ("a/b", "id1", "42.AAAA"), ("a/b", "id1", "x"), ("a/b", "id1", "")] {
            assert_eq!(key.verify(name, id, token).unwrap_err().code, Code::BlobUploadUnknown, "{name} {id} {token}");
        }
        assert!(UploadUrlKey::new(b"other").verify("a/b", "id1", &t).is_err());
        // The offset is covered by the MAC.
        let forged = t.replacen("42.", "43.", 1);
        assert!(key.verify("a/b", "id1", &forged).is_err());
    }

    #[test]
    fn fresh_tokens_carry_start_and_algorithm_under_the_mac() {
        let key = UploadUrlKey::new(b"k");
        let t = key.sign_fresh("a/b", "id1", 1234, Algorithm::Sha512);
        assert!(t.starts_with("0.1234.sha512."), "{t}");
        assert_eq!(key.verify("a/b", "id1", &t).unwrap(), Voucher::Fresh { started_at: 1234, algorithm: Algorithm::Sha512 });
        for forged in [t.replacen("1234", "1235", 1), t.replacen("sha512", "sha256", 1), t.replacen("0.1234.sha512", "0", 1)] {
            assert_eq!(key.verify("a/b", "id1", &forged).unwrap_err().code, Code::BlobUploadUnknown, "{forged}");
        }
        assert!(key.verify("a/b", "id2", &t).is_err());
        // A genuine MAC over fields that do not form a token is still refused.
        let odd = key.signed("a/b", "id1", "1.2".into());
        assert!(key.verify("a/b", "id1", &odd).is_err());
    }

    #[test]
    fn a_fresh_token_expires_with_the_upload_age_an_offset_token_does_not() {
        let key = UploadUrlKey::new(b"k");
        let fresh = key.sign_fresh("a/b", "id1", 1000, Algorithm::Sha256);
        assert!(key.verify_at("a/b", "id1", &fresh, 1999, 1000).is_ok());
        assert_eq!(key.verify_at("a/b", "id1", &fresh, 2000, 1000).unwrap_err().code, Code::BlobUploadUnknown);
        let stored = key.sign("a/b", "id1", 5);
        assert_eq!(key.verify_at("a/b", "id1", &stored, u64::MAX, 1000).unwrap(), Voucher::Offset(5));
    }
}
