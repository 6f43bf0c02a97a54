//! Transfer quotas: bytes sent to a key per period. One word per key packs
//! `(period index mod 2²⁴, bytes)`; periods are fixed windows of `per_ms`
//! aligned to the unix epoch (a daily quota rolls at 00:00 UTC), the same
//! for every worker and across restarts. A key whose count has reached the
//! quota is refused until its period rolls.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Quota parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Bytes per period (at most 2⁴⁰ - 1).
    pub quota_bytes: u64,
    /// Period length in ms, at least 1.
    pub per_ms: u64,
}

const BYTES_BITS: u32 = 40;
const BYTES_MAX: u64 = (1 << BYTES_BITS) - 1;
const PERIOD_MASK: u64 = (1 << (64 - BYTES_BITS)) - 1;

fn pack(period: u64, bytes: u64) -> u64 {
    ((period & PERIOD_MASK) << BYTES_BITS) | bytes.min(BYTES_MAX)
}

fn unpack(w: u64) -> (u64, u64) {
    (w >> BYTES_BITS, w & BYTES_MAX)
}

impl Quota {
    /// The period number of `now_ms`.
    pub fn period(&self, now_ms: u64) -> u64 {
        now_ms / self.per_ms.max(1)
    }

    /// Bytes used in the current period.
    pub fn used(&self, cell: &AtomicU64, now_ms: u64) -> u64 {
        let (p, bytes) = unpack(cell.load(Relaxed));
        if p == self.period(now_ms) & PERIOD_MASK {
            bytes
        } else {
            0
        }
    }

    /// Record that `bytes` were used in the period of `now_ms` (a store,
    /// for the cluster's `pushed` and `remote` words).
    pub fn set(&self, cell: &AtomicU64, now_ms: u64, bytes: u64) {
        cell.store(pack(self.period(now_ms) & PERIOD_MASK, bytes), Relaxed);
    }

    /// Milliseconds until the period of `now_ms` rolls.
    pub fn until_next(&self, now_ms: u64) -> u64 {
        let per = self.per_ms.max(1);
        per - now_ms % per
    }

    /// `Some(ms until the period rolls)` when the key is over its quota.
    pub fn over(&self, cell: &AtomicU64, now_ms: u64) -> Option<u64> {
        (self.used(cell, now_ms) >= self.quota_bytes).then(|| self.until_next(now_ms))
    }

    /// Add `bytes` sent at `now_ms`.
    pub fn add(&self, cell: &AtomicU64, now_ms: u64, bytes: u64) {
        let p = self.period(now_ms) & PERIOD_MASK;
        let mut cur = cell.load(Relaxed);
        loop {
            let (cp, cb) = unpack(cur);
            let new = if cp == p {
                pack(p, cb.saturating_add(bytes))
            } else {
                pack(p, bytes)
            };
            match cell.compare_exchange_weak(cur, new, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_quota_until_the_period_rolls() {
        let q = Quota {
            quota_bytes: 1000,
            per_ms: 60_000,
        };
        let cell = AtomicU64::new(0);
        let t0 = 1_800_000_000_000u64; // a period boundary
        assert_eq!(q.over(&cell, t0), None);
        q.add(&cell, t0 + 10, 600);
        assert_eq!(q.over(&cell, t0 + 20), None);
        q.add(&cell, t0 + 30, 600);
        assert_eq!(q.used(&cell, t0 + 40), 1200);
        assert_eq!(q.over(&cell, t0 + 40_000), Some(20_000));
        // The next period starts from zero.
        assert_eq!(q.over(&cell, t0 + 60_000), None);
        q.add(&cell, t0 + 60_001, 5);
        assert_eq!(q.used(&cell, t0 + 60_002), 5);
    }

    #[test]
    fn threads_lose_no_bytes_and_saturate_instead_of_wrapping() {
        let q = Quota {
            quota_bytes: BYTES_MAX,
            per_ms: 1000,
        };
        let cell = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        q.add(&cell, 42_000, 3);
                    }
                });
            }
        });
        assert_eq!(q.used(&cell, 42_500), 12_000);
        q.add(&cell, 42_600, u64::MAX);
        assert_eq!(q.used(&cell, 42_600), BYTES_MAX);
        assert_eq!(q.used(&cell, 43_000), 0);
    }
}
