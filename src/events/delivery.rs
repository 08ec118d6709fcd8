//! Webhook delivery: the signature a receiver checks, when a delivery is done, and how long a
//! failed batch waits before the next attempt.
//!
//! The signature is `X-Registry-Signature: sha256=<hex HMAC-SHA256 of the body>` with the
//! secret `WEBHOOK_SECRET`, as GitHub's webhooks sign theirs; a receiver recomputes it over the
//! raw body and compares in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "X-Registry-Signature";

/// The signature header's value for `body`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A delivery is done when the receiver answers 2xx; anything else (and no answer) is retried.
pub fn delivered(status: u16) -> bool {
    (200..300).contains(&status)
}

/// Shortest and longest wait before a failed batch is tried again (seconds).
pub const MIN_RETRY_S: u32 = 5;
pub const MAX_RETRY_S: u32 = 3600;

/// How long a batch whose oldest event was sent `age_ms` ago waits before its next attempt:
/// twice its age, within bounds, so the waits grow about twofold per attempt (5 s, 10 s, 30 s,
/// …, an hour) without counting attempts.
pub fn retry_delay_s(age_ms: u64) -> u32 {
    let doubled = (age_ms / 1000).saturating_mul(2);
    doubled.clamp(MIN_RETRY_S as u64, MAX_RETRY_S as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // RFC 4231 test case 2.
        let s = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(s, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_ne!(signature(b"other", b"what do ya want for nothing?"), s);
    }

    #[test]
    fn only_2xx_is_delivered_and_waits_grow() {
        assert!(delivered(200) && delivered(204) && delivered(299));
        assert!(!delivered(199) && !delivered(301) && !delivered(429) && !delivered(500));
        assert_eq!(retry_delay_s(0), MIN_RETRY_S);
        assert_eq!(retry_delay_s(10_000), 20);
        assert_eq!(retry_delay_s(60_000), 120);
        assert_eq!(retry_delay_s(u64::MAX), MAX_RETRY_S);
    }
}
