//! Counts the storage operations one request makes, by what they cost: R2 class A (writes,
//! lists, multipart steps) and class B (reads, heads), KV reads and writes, edge-cache hits,
//! misses and writes, and requests to a mirrored upstream. Deletes and multipart aborts are free on R2 and not counted. Every
//! response reports the counts in the [`HEADER`] header, so cost is visible per request.

use std::cell::Cell;

/// The response header carrying [`Meter::summary`].
pub const HEADER: &str = "Registry-Storage-Ops";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    R2ClassA,
    R2ClassB,
    KvRead,
    KvWrite,
    CacheHit,
    CacheMiss,
    CacheWrite,
    /// A request to a mirrored repository's upstream registry (token requests included).
    Upstream,
}

const OPS: [(Op, &str); 8] = [
    (Op::R2ClassA, "r2-a"),
    (Op::R2ClassB, "r2-b"),
    (Op::KvRead, "kv-read"),
    (Op::KvWrite, "kv-write"),
    (Op::CacheHit, "cache-hit"),
    (Op::CacheMiss, "cache-miss"),
    (Op::CacheWrite, "cache-write"),
    (Op::Upstream, "upstream"),
];

#[derive(Debug, Default)]
pub struct Meter {
    counts: [Cell<u32>; 8],
}

impl Meter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&self, op: Op, n: u32) {
        let c = &self.counts[op as usize];
        c.set(c.get().saturating_add(n));
    }

    pub fn count(&self, op: Op) -> u32 {
        self.counts[op as usize].get()
    }

    /// `r2-a=1, r2-b=2, kv-read=0, ...`: every counter, always in the same order.
    pub fn summary(&self) -> String {
        OPS.iter().map(|(op, name)| format!("{name}={}", self.count(*op))).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_summary() {
        let m = Meter::new();
        assert_eq!(m.summary(), "r2-a=0, r2-b=0, kv-read=0, kv-write=0, cache-hit=0, cache-miss=0, cache-write=0, upstream=0");
        m.add(Op::R2ClassB, 2);
        m.add(Op::R2ClassA, 1);
        m.add(Op::CacheWrite, 1);
        m.add(Op::CacheWrite, 1);
        assert_eq!(m.count(Op::R2ClassB), 2);
        assert_eq!(m.summary(), "r2-a=1, r2-b=2, kv-read=0, kv-write=0, cache-hit=0, cache-miss=0, cache-write=2, upstream=0");
        for (i, (op, _)) in OPS.iter().enumerate() {
            assert_eq!(*op as usize, i);
        }
    }
}
