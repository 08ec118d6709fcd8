//! Content digests (`algorithm:hex`) and the incremental hasher whose state is saved between
//! upload chunks.
//!
//! Supported algorithms are the spec's registered ones, sha256 and sha512. The hasher is
//! RustCrypto's `sha2`; its serializable state (digest 0.11 `SerializableState`) lets an upload
//! stop after any chunk and resume in another request without re-reading a byte.

use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest as _, Sha256, Sha512};
use std::fmt;

use super::error::{Code, RegistryError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// The one parser of algorithm names (`sha256`, `sha512`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

impl serde::Serialize for Algorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Algorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = <String as serde::Deserialize>::deserialize(d)?;
        Algorithm::parse(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown algorithm {name}")))
    }
}

/// A validated digest: a registered algorithm and lowercase hex of the right length.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `algorithm:encoded`. Grammar-valid digests with an algorithm we do not implement
    /// are refused as DIGEST_INVALID too: we could never verify them.
    pub fn parse(s: &str) -> Result<Self> {
        let invalid = || RegistryError::new(Code::DigestInvalid, format!("invalid digest: {s:?}"));
        let (alg, hex) = s.split_once(':').ok_or_else(invalid)?;
        let algorithm = Algorithm::parse(alg).ok_or_else(invalid)?;
        if hex.len() != algorithm.hex_len() || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid());
        }
        Ok(Digest { algorithm, hex: hex.to_string() })
    }

    /// The digest of `bytes` under `algorithm`, in one call.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Self {
        let mut h = BlobHasher::new(algorithm);
        h.update(bytes);
        h.finish()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

/// An incremental hasher for one of the supported algorithms whose state can be saved.
#[derive(Clone)]
pub enum BlobHasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl BlobHasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => BlobHasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => BlobHasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            BlobHasher::Sha256(h) => h.update(bytes),
            BlobHasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, bytes) = match self {
            BlobHasher::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            BlobHasher::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        Digest { algorithm, hex: hex::encode(bytes) }
    }

    /// The hasher's internal state (chaining values, length, buffered partial block).
    pub fn save(&self) -> Vec<u8> {
        match self {
            BlobHasher::Sha256(h) => h.serialize().to_vec(),
            BlobHasher::Sha512(h) => h.serialize().to_vec(),
        }
    }

    /// Restores a hasher saved with [`BlobHasher::save`].
    pub fn restore(algorithm: Algorithm, state: &[u8]) -> Result<Self> {
        let bad = || RegistryError::new(Code::BlobUploadInvalid, "corrupt upload hash state");
        Ok(match algorithm {
            Algorithm::Sha256 => {
                let s = state.try_into().map_err(|_| bad())?;
                BlobHasher::Sha256(Sha256::deserialize(s).map_err(|_| bad())?)
            }
            Algorithm::Sha512 => {
                let s = state.try_into().map_err(|_| bad())?;
                BlobHasher::Sha512(Sha512::deserialize(s).map_err(|_| bad())?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY256: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints() {
        let d = Digest::parse(EMPTY256).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY256);
        assert_eq!(Digest::of(Algorithm::Sha256, b""), d);
    }

    #[test]
    fn rejects_bad_digests() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
        ] {
            let err = Digest::parse(bad).unwrap_err();
            assert_eq!(err.code, Code::DigestInvalid, "{bad}");
        }
    }

    #[test]
    fn sha512_known_answer() {
        let d = Digest::of(Algorithm::Sha512, b"abc");
        assert_eq!(
            d.to_string(),
            "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
    }

    #[test]
    fn saved_state_resumes_at_any_split() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let whole = Digest::of(alg, &data);
            for split in [0, 1, 63, 64, 65, 127, 128, 129, 500, 1000] {
                let mut h = BlobHasher::new(alg);
                h.update(&data[..split]);
                let saved = h.save();
                let mut resumed = BlobHasher::restore(alg, &saved).unwrap();
                resumed.update(&data[split..]);
                assert_eq!(resumed.finish(), whole, "{alg:?} split {split}");
            }
        }
    }

    #[test]
    fn corrupt_state_is_an_error() {
        assert!(BlobHasher::restore(Algorithm::Sha256, &[1, 2, 3]).is_err());
        let s512 = BlobHasher::new(Algorithm::Sha512).save();
        assert!(BlobHasher::restore(Algorithm::Sha256, &s512).is_err());
    }
}
