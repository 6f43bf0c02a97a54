//! GCRA (generic cell rate algorithm) rate limiting: one word per key, the
//! *theoretical arrival time* (TAT, unix µs), updated by compare-and-swap so
//! the decision is exact however many workers share the cell.
//!
//! With emission interval T = 1/rate and burst b, the tolerance is τ = b·T.
//! A request at `now` conforms when `max(TAT, now) - now <= τ`; it then moves
//! TAT to `max(TAT, now) + T`. A burst of b+1 requests passes at once, then
//! one per T — nginx's `limit_req` accounting, without its leaky-bucket
//! bookkeeping. A rejected request leaves TAT alone.
//!
//! Without `nodelay`, a conforming request ahead of schedule is delayed by
//! `max(TAT, now) - now` (minus `delay=N`·T), which releases a burst at the
//! rate exactly as nginx does.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Parameters of one `limit_req` on one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// 1 / rate, in µs.
    pub interval_us: u64,
    /// burst · interval, in µs.
    pub tolerance_us: u64,
    /// How far ahead of schedule a request may be before it is delayed
    /// (`delay=N` · interval; `u64::MAX` for `nodelay`).
    pub free_us: u64,
    /// How late a request may arrive and still be scheduled from the old
    /// TAT rather than from now (0 for a local zone). A node that enforces
    /// its share of a global rate uses it so that arrival jitter does not
    /// eat the share: see [`Gcra::share`].
    pub slack_us: u64,
}

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it, after `delay_us` (0 = now).
    Allow {
        /// How long to hold the request first.
        delay_us: u64,
        /// Requests that would still conform right now.
        remaining: u64,
        /// Until the key is back to a full burst.
        reset_us: u64,
    },
    /// Refuse it.
    Reject {
        /// Until a request would conform again.
        retry_us: u64,
        /// Until the key is back to a full burst.
        reset_us: u64,
    },
}

impl Gcra {
    /// `interval_us` per request, `burst` excess requests, the first
    /// `no_delay` of them not delayed (`None` = `nodelay`).
    pub fn new(interval_us: u64, burst: u64, no_delay: Option<u64>) -> Gcra {
        let interval_us = interval_us.max(1);
        Gcra {
            interval_us,
            tolerance_us: burst.saturating_mul(interval_us),
            free_us: no_delay.map_or(u64::MAX, |n| n.saturating_mul(interval_us)),
            slack_us: 0,
        }
    }

    /// Requests a full bucket admits at once (burst + 1): `RateLimit-Limit`.
    pub fn limit(&self) -> u64 {
        self.tolerance_us / self.interval_us + 1
    }

    /// This limit as one node's share of it: `share_ppm` millionths of the
    /// rate (the interval stretched), the same burst *time* (so the burst
    /// is shared the same way), and a slack of a quarter interval: a node
    /// admitting one request in many at a low share would otherwise lose
    /// half an arrival gap per admission, and the cluster would undershoot.
    pub fn share(&self, share_ppm: u64) -> Gcra {
        let ppm = share_ppm.clamp(1, 1_000_000);
        let interval_us =
            (self.interval_us as u128 * 1_000_000 / ppm as u128).min(u64::MAX as u128 / 2) as u64;
        Gcra {
            interval_us,
            tolerance_us: self.tolerance_us,
            free_us: self.free_us,
            slack_us: interval_us / 4,
        }
    }

    /// The pure decision: the verdict and the new TAT (`None` = unchanged).
    pub fn decide(&self, tat_us: u64, now_us: u64) -> (Verdict, Option<u64>) {
        let start = tat_us.max(now_us.saturating_sub(self.slack_us));
        let ahead = start.saturating_sub(now_us);
        if ahead > self.tolerance_us {
            return (
                Verdict::Reject {
                    retry_us: ahead - self.tolerance_us,
                    reset_us: ahead,
                },
                None,
            );
        }
        let new_tat = start.saturating_add(self.interval_us);
        let verdict = Verdict::Allow {
            delay_us: ahead.saturating_sub(self.free_us),
            remaining: (self.tolerance_us - ahead) / self.interval_us,
            reset_us: new_tat.saturating_sub(now_us),
        };
        (verdict, Some(new_tat))
    }

    /// Decide and record a request on `cell`, exactly once, whatever other
    /// workers do to the cell meanwhile.
    pub fn check(&self, cell: &AtomicU64, now_us: u64) -> Verdict {
        let mut tat = cell.load(Relaxed);
        loop {
            let (verdict, new) = self.decide(tat, now_us);
            let Some(new) = new else {
                return verdict;
            };
            match cell.compare_exchange_weak(tat, new, Relaxed, Relaxed) {
                Ok(_) => return verdict,
                Err(actual) => tat = actual,
            }
        }
    }

    /// Take back one admitted request (another limit on the same request
    /// refused it): TAT moves back one interval, never below `now_us`.
    pub fn undo(&self, cell: &AtomicU64, now_us: u64) {
        let mut tat = cell.load(Relaxed);
        loop {
            let back = tat.saturating_sub(self.interval_us).max(now_us);
            if back >= tat {
                return;
            }
            match cell.compare_exchange_weak(tat, back, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(actual) => tat = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000;

    /// A fake clock: the tests move time by hand.
    struct Clock(u64);

    fn allowed(v: Verdict) -> bool {
        matches!(v, Verdict::Allow { .. })
    }

    #[test]
    fn burst_nodelay_admits_burst_plus_one_then_the_rate() {
        // 1 r/s, burst 5, nodelay.
        let g = Gcra::new(SEC, 5, None);
        let cell = AtomicU64::new(0);
        let mut clock = Clock(1_000 * SEC);
        let results: Vec<Verdict> = (0..10).map(|_| g.check(&cell, clock.0)).collect();
        assert_eq!(results.iter().filter(|v| allowed(**v)).count(), 6);
        assert_eq!(
            results[0],
            Verdict::Allow {
                delay_us: 0,
                remaining: 5,
                reset_us: SEC
            }
        );
        assert_eq!(
            results[5],
            Verdict::Allow {
                delay_us: 0,
                remaining: 0,
                reset_us: 6 * SEC
            }
        );
        assert_eq!(
            results[6],
            Verdict::Reject {
                retry_us: SEC,
                reset_us: 6 * SEC
            }
        );
        // Half a second later: still nothing; a full second: one more.
        clock.0 += SEC / 2;
        assert!(!allowed(g.check(&cell, clock.0)));
        clock.0 += SEC / 2;
        assert!(allowed(g.check(&cell, clock.0)));
        assert!(!allowed(g.check(&cell, clock.0)));
        // After 3 s of rest, three more.
        clock.0 += 3 * SEC;
        let n = (0..10).filter(|_| allowed(g.check(&cell, clock.0))).count();
        assert_eq!(n, 3);
    }

    #[test]
    fn without_nodelay_the_burst_is_spread_at_the_rate() {
        // 10 r/s (100 ms), burst 3, no nodelay.
        let g = Gcra::new(100_000, 3, Some(0));
        let cell = AtomicU64::new(0);
        let now = 50 * SEC;
        let delays: Vec<u64> = (0..5)
            .map(|_| match g.check(&cell, now) {
                Verdict::Allow { delay_us, .. } => delay_us,
                Verdict::Reject { .. } => u64::MAX,
            })
            .collect();
        assert_eq!(delays, [0, 100_000, 200_000, 300_000, u64::MAX]);
    }

    #[test]
    fn delay_n_lets_the_first_n_excess_requests_through_undelayed() {
        // nginx: burst=12 delay=8 -> 1 + 8 at once, 4 delayed, the rest refused.
        let g = Gcra::new(100_000, 12, Some(8));
        let cell = AtomicU64::new(0);
        let now = 7 * SEC;
        let delays: Vec<u64> = (0..14)
            .map(|_| match g.check(&cell, now) {
                Verdict::Allow { delay_us, .. } => delay_us,
                Verdict::Reject { .. } => u64::MAX,
            })
            .collect();
        assert_eq!(&delays[..9], &[0; 9]);
        assert_eq!(&delays[9..13], &[100_000, 200_000, 300_000, 400_000]);
        assert_eq!(delays[13], u64::MAX);
    }

    #[test]
    fn burst_zero_is_exactly_the_rate() {
        let g = Gcra::new(SEC / 4, 0, None);
        let cell = AtomicU64::new(0);
        let mut allowed_total = 0;
        // 100 requests per second for 10 s, at 4 r/s: 40 (+1 at the start edge).
        for tick in 0..1000u64 {
            if allowed(g.check(&cell, 100 * SEC + tick * 10_000)) {
                allowed_total += 1;
            }
        }
        assert_eq!(allowed_total, 40);
        assert_eq!(g.limit(), 1);
    }

    #[test]
    fn a_share_admits_its_part_of_the_rate_despite_arrival_jitter() {
        // 20 r/s, this node's share a third: one request per 150 ms. Arrivals
        // every 11 ms (never on the TAT): without slack each admission would
        // come up to 11 ms late and the node would fall short of its share.
        let g = Gcra::new(50_000, 0, None).share(333_333);
        assert_eq!(g.interval_us, 150_000);
        let cell = AtomicU64::new(0);
        let t0 = 100 * SEC;
        let n = (0..=909u64)
            .filter(|i| allowed(g.check(&cell, t0 + i * 11_000)))
            .count();
        // 10 s at 6.67 r/s: 66.7, plus the first request of a full bucket.
        assert!((66..=68).contains(&n), "{n}");
        let plain = Gcra::new(150_000, 0, None);
        let cell = AtomicU64::new(0);
        let m = (0..=909u64)
            .filter(|i| allowed(plain.check(&cell, t0 + i * 11_000)))
            .count();
        assert!(
            m < n,
            "without slack a node loses part of its share: {m} vs {n}"
        );
        // The burst stays the same time, so the node's part of it shrinks.
        let b = Gcra::new(SEC, 9, None).share(500_000);
        assert_eq!((b.interval_us, b.tolerance_us), (2 * SEC, 9 * SEC));
    }

    #[test]
    fn undo_returns_the_slot() {
        let g = Gcra::new(SEC, 0, None);
        let cell = AtomicU64::new(0);
        assert!(allowed(g.check(&cell, 10 * SEC)));
        assert!(!allowed(g.check(&cell, 10 * SEC)));
        g.undo(&cell, 10 * SEC);
        assert!(allowed(g.check(&cell, 10 * SEC)));
        // Never below now: undoing an idle key does nothing.
        let idle = AtomicU64::new(0);
        g.undo(&idle, 10 * SEC);
        assert_eq!(idle.load(Relaxed), 0);
    }

    #[test]
    fn threads_together_never_exceed_burst_plus_one() {
        let g = Gcra::new(SEC, 9, None);
        let cell = AtomicU64::new(0);
        let total = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if allowed(g.check(&cell, 500 * SEC)) {
                            total.fetch_add(1, Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(total.load(Relaxed), 10);
    }
}
