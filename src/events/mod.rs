//! Notifications of what happens in the registry, for other systems: an image pushed, pulled,
//! deleted, or filled into the mirror. The worker sends each event to a Cloudflare Queue
//! (binding `EVENTS`, at-least-once) after the response, so a push never waits for it. The
//! same worker consumes the queue and, when `WEBHOOK_URL` is set, POSTs each batch there, signed
//! with `WEBHOOK_SECRET`, retrying with backoff until the receiver answers 2xx.
//!
//! - `envelope`: the event in the shape distribution's notifications use, and the batch body.
//! - `delivery`: the webhook's signature, when a delivery counts as done, the retry delays.
//! - `log`: the request log, one JSON line per request (no credential or URL in it).
//! - [`PullSampler`]: which pulls are notified when `NOTIFY_PULLS` is off (one per manifest
//!   per hour per isolate), so a busy registry does not send one event per pull.
//!
//! Pure; the wasm side (`api::events`) builds events from requests and talks to the queue.

pub mod delivery;
pub mod envelope;
pub mod log;

use std::collections::HashMap;

/// How often a manifest's pulls are notified when `NOTIFY_PULLS` is off.
pub const PULL_EVERY_MS: u64 = 3600 * 1000;
/// Manifests remembered per isolate; past it the memory starts over.
const PULLS_REMEMBERED: usize = 4096;

/// Pulls notified recently, by `repository@digest`.
#[derive(Debug, Default)]
pub struct PullSampler {
    last: HashMap<String, u64>,
}

impl PullSampler {
    /// Whether a pull of `key` at `now` is notified: the first, then once per [`PULL_EVERY_MS`].
    pub fn admit(&mut self, key: &str, now: u64) -> bool {
        if self.last.get(key).is_some_and(|at| now < at + PULL_EVERY_MS) {
            return false;
        }
        if self.last.len() >= PULLS_REMEMBERED {
            self.last.retain(|_, at| now < *at + PULL_EVERY_MS);
            if self.last.len() >= PULLS_REMEMBERED {
                self.last.clear();
            }
        }
        self.last.insert(key.to_string(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_are_sampled_once_an_hour_per_manifest_in_bounded_memory() {
        assert_eq!(PULL_EVERY_MS, 3_600_000, "an hour");
        let mut s = PullSampler::default();
        assert!(s.admit("a@1", 0));
        assert!(!s.admit("a@1", PULL_EVERY_MS - 1));
        assert!(s.admit("b@1", 5), "another manifest");
        assert!(s.admit("a@1", PULL_EVERY_MS));

        // Full: the expired entries go, the live ones stay.
        let t = 5 * PULL_EVERY_MS;
        let mut s = PullSampler::default();
        for i in 0..PULLS_REMEMBERED - 1 {
            s.admit(&format!("old{i}"), t);
        }
        assert!(s.admit("live", t + PULL_EVERY_MS - 1));
        assert_eq!(s.last.len(), PULLS_REMEMBERED);
        assert!(s.admit("new", t + PULL_EVERY_MS));
        assert_eq!(s.last.len(), 2, "the expired went");
        assert!(!s.admit("live", t + PULL_EVERY_MS), "the live one stayed");

        // Full of live entries: all go.
        for i in s.last.len()..PULLS_REMEMBERED {
            s.admit(&format!("fresh{i}"), t + PULL_EVERY_MS);
        }
        assert_eq!(s.last.len(), PULLS_REMEMBERED);
        assert!(s.admit("one more", t + PULL_EVERY_MS));
        assert_eq!(s.last.len(), 1);
    }
}
