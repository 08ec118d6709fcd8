//! When to ask the upstream, and what its answer means, pure.
//!
//! A tag is served from storage while the upstream confirmed it less than `tag_ttl_seconds`
//! ago; after that it is revalidated (a HEAD, which Docker Hub does not count as a pull).
//! Content by digest never changes: stored once, never asked for again. When the upstream
//! cannot answer (no answer, 429, 5xx, refused credentials), what is stored is served
//! (stale-if-error); with nothing stored the client gets the spec's error naming the upstream's
//! status.

use crate::oci::error::{Code, RegistryError};

/// What a response of a mirrored repository was served from (`Registry-Upstream` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// From storage, without asking the upstream.
    Hit,
    /// Fetched from the upstream (and stored).
    Miss,
    /// From storage, after the upstream confirmed it is current.
    Revalidated,
    /// From storage, because the upstream could not answer.
    Stale,
}

impl Served {
    pub fn as_str(self) -> &'static str {
        match self {
            Served::Hit => "hit",
            Served::Miss => "miss",
            Served::Revalidated => "revalidated",
            Served::Stale => "stale",
        }
    }
}

/// The header saying how a mirrored response was served.
pub const HEADER: &str = "Registry-Upstream";

/// Whether a tag confirmed at `checked_ms` may still be served at `now_ms` without asking.
pub fn is_fresh(checked_ms: u64, now_ms: u64, ttl_s: u64) -> bool {
    now_ms < checked_ms.saturating_add(ttl_s.saturating_mul(1000))
}

/// What an upstream's answer to a request for `what` means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 200: use it.
    Found,
    /// 404: the upstream does not have it.
    Missing,
    /// Anything else, or no answer: serve what is stored if anything, else this error.
    Failed(RegistryError),
}

/// Judges an upstream answer: its status, or why there was none (`Err`).
pub fn judge(answer: Result<u16, &str>, what: &str) -> Verdict {
    match answer {
        Ok(200) => Verdict::Found,
        Ok(404) => Verdict::Missing,
        Ok(429) => Verdict::Failed(RegistryError::new(Code::TooManyRequests, format!("upstream answered 429 (rate limit) for {what}")).with_retry_after(60)),
        Ok(status) => Verdict::Failed(RegistryError::new(Code::Unavailable, format!("upstream answered {status} for {what}"))),
        Err(why) => Verdict::Failed(RegistryError::new(Code::Unavailable, format!("upstream unreachable for {what}: {why}"))),
    }
}

/// The `Warning` header of a stale answer (RFC 7234's 110), saying why.
pub fn stale_warning(why: &RegistryError) -> String {
    format!("110 - \"Response is Stale: {}\"", why.detail.replace(['"', '\\'], "'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_window() {
        assert!(is_fresh(1000, 1000, 1));
        assert!(is_fresh(1000, 1999, 1));
        assert!(!is_fresh(1000, 2000, 1));
        assert!(!is_fresh(1000, 1000, 0));
        assert!(is_fresh(u64::MAX - 5, u64::MAX - 1, u64::MAX));
    }

    #[test]
    fn verdicts() {
        assert_eq!(judge(Ok(200), "m"), Verdict::Found);
        assert_eq!(judge(Ok(404), "m"), Verdict::Missing);
        let Verdict::Failed(e) = judge(Ok(429), "manifest a:b") else { panic!() };
        assert_eq!((e.code, e.retry_after), (Code::TooManyRequests, Some(60)));
        assert!(e.detail.contains("429") && e.detail.contains("manifest a:b"));
        for status in [500, 502, 503, 401, 403, 206, 301] {
            let Verdict::Failed(e) = judge(Ok(status), "x") else { panic!("{status}") };
            assert_eq!(e.code, Code::Unavailable);
            assert!(e.detail.contains(&status.to_string()));
        }
        let Verdict::Failed(e) = judge(Err("timed out"), "x") else { panic!() };
        assert_eq!((e.code, e.status()), (Code::Unavailable, 503));
        assert!(e.detail.ends_with("timed out"));
    }

    #[test]
    fn names_and_warning() {
        let all = [Served::Hit, Served::Miss, Served::Revalidated, Served::Stale].map(Served::as_str);
        assert_eq!(all, ["hit", "miss", "revalidated", "stale"]);
        let e = RegistryError::new(Code::Unavailable, "upstream answered \"503\"");
        assert_eq!(stale_warning(&e), "110 - \"Response is Stale: upstream answered '503'\"");
    }
}
