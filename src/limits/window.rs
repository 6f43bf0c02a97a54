//! Moving-window request counters: per key a ring of `window / precision`
//! buckets, each one word packing `(bucket epoch mod 2³², count)`. The
//! epoch is `unix_ms / precision_ms`, so buckets mean the same thing to every
//! worker and after a restart.
//!
//! Adding: the bucket at `epoch % buckets` is bumped if it holds this epoch,
//! else replaced by `(epoch, n)` — one CAS, so a stale bucket is reset
//! exactly once and no increment is lost. The sum counts the buckets whose
//! epoch lies in the last `buckets` epochs: the requests of the last window,
//! exact to one precision step. Memory per key is `buckets` words whatever
//! the request rate.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Window shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Buckets per key (`window / precision`), at least 1.
    pub buckets: u64,
    /// Bucket width in ms, at least 1.
    pub precision_ms: u64,
}

const COUNT_MAX: u64 = u32::MAX as u64;

fn pack(epoch: u32, count: u64) -> u64 {
    ((epoch as u64) << 32) | count.min(COUNT_MAX)
}

fn unpack(w: u64) -> (u32, u64) {
    ((w >> 32) as u32, w & COUNT_MAX)
}

impl Window {
    /// `window_ms` long in steps of `precision_ms`.
    pub fn new(window_ms: u64, precision_ms: u64) -> Window {
        let precision_ms = precision_ms.max(1);
        Window {
            buckets: (window_ms / precision_ms).max(1),
            precision_ms,
        }
    }

    /// Window length in ms.
    pub fn window_ms(&self) -> u64 {
        self.buckets * self.precision_ms
    }

    fn epoch(&self, now_ms: u64) -> u64 {
        now_ms / self.precision_ms
    }

    /// Count `n` requests at `now_ms` into `ring` (`buckets` words).
    pub fn add(&self, ring: &[AtomicU64], now_ms: u64, n: u64) {
        if ring.is_empty() {
            return;
        }
        let epoch = self.epoch(now_ms);
        let cell = &ring[(epoch % ring.len() as u64) as usize];
        let e32 = epoch as u32;
        let mut cur = cell.load(Relaxed);
        loop {
            let (e, c) = unpack(cur);
            // A bucket of this epoch (or, with a lagging clock, of a newer
            // one at the same position) is added to; an older one restarts.
            let behind = e32.wrapping_sub(e) as i32;
            let new = if c > 0 && behind <= 0 {
                pack(e, c.saturating_add(n))
            } else {
                pack(e32, n)
            };
            match cell.compare_exchange_weak(cur, new, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Requests counted in `ring` during the window ending at `now_ms`.
    pub fn sum(&self, ring: &[AtomicU64], now_ms: u64) -> u64 {
        let e32 = self.epoch(now_ms) as u32;
        let n = self.buckets.min(ring.len() as u64);
        ring.iter()
            .map(|w| unpack(w.load(Relaxed)))
            .filter(|&(e, c)| c > 0 && (e32.wrapping_sub(e) as u64) < n)
            .map(|(_, c)| c)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(n: u64) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn counts_within_the_window_and_forgets_after_it() {
        // 3 s window, 100 ms precision: 30 buckets.
        let w = Window::new(3000, 100);
        let r = ring(w.buckets);
        let t0 = 1_700_000_000_000u64;
        for i in 0..5 {
            w.add(&r, t0 + i * 10, 1);
        }
        assert_eq!(w.sum(&r, t0 + 50), 5);
        assert_eq!(w.sum(&r, t0 + 2_999), 5);
        // The bucket of t0 leaves the window when the window no longer covers it.
        assert_eq!(w.sum(&r, t0 + 3_000), 0);
        w.add(&r, t0 + 3_300, 1);
        assert_eq!(w.sum(&r, t0 + 3_300), 1);
    }

    #[test]
    fn exact_across_bucket_boundaries() {
        let w = Window::new(1000, 100);
        let r = ring(w.buckets);
        let t0 = 5_000_000u64; // on a bucket boundary
                               // One request every 10 ms for 2.5 s.
        for i in 0..250u64 {
            w.add(&r, t0 + i * 10, 1);
            let now = t0 + i * 10;
            // Requests in buckets epoch(now)-9 ..= epoch(now).
            let first_bucket_start = (now / 100).saturating_sub(9) * 100;
            let expect = (0..=i)
                .filter(|j| t0 + j * 10 >= first_bucket_start)
                .count() as u64;
            assert_eq!(w.sum(&r, now), expect, "at request {i}");
        }
    }

    #[test]
    fn a_stale_ring_slot_is_reset_not_added_to() {
        let w = Window::new(1000, 100);
        let r = ring(w.buckets);
        w.add(&r, 10_000, 7);
        // Same ring position, one window later.
        w.add(&r, 11_000, 1);
        assert_eq!(w.sum(&r, 11_000), 1);
        // A worker whose clock lags a little adds into the current bucket.
        w.add(&r, 10_950, 1);
        assert_eq!(w.sum(&r, 11_000), 2);
    }

    #[test]
    fn threads_lose_no_increment() {
        let w = Window::new(60_000, 100);
        let r = ring(w.buckets);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (w, r) = (&w, &r);
                s.spawn(move || {
                    for i in 0..5000u64 {
                        // Spread over bucket boundaries.
                        w.add(r, 1_000_000 + (i + t) % 700, 1);
                    }
                });
            }
        });
        assert_eq!(w.sum(&r, 1_000_700), 20_000);
    }
}
