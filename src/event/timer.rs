//! Hashed timer wheel: O(1) insert, amortised O(1) expiry, no allocation in
//! steady state (slot vectors keep their capacity).
//!
//! Entries are `(key, deadline_ms)`. Cancelling is lazy: the owner keeps the
//! deadline it currently wants and ignores expired entries that no longer
//! match (see the worker's connection timers).

/// Width of one slot in milliseconds.
pub const TICK_MS: u64 = 50;
const SLOTS: usize = 1024; // 51.2 s per revolution; later deadlines wait for their round

/// The wheel.
pub struct TimerWheel {
    slots: Vec<Vec<(usize, u64)>>,
    /// Next tick to process.
    tick: u64,
    len: usize,
}

impl Default for TimerWheel {
    fn default() -> Self {
        Self::new(0)
    }
}

impl TimerWheel {
    /// An empty wheel whose first tick covers `now_ms`.
    pub fn new(now_ms: u64) -> TimerWheel {
        TimerWheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            tick: now_ms / TICK_MS,
            len: 0,
        }
    }

    /// Number of pending entries (including stale ones).
    pub fn len(&self) -> usize {
        self.len
    }

    /// No pending entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedule `key` to fire at `deadline_ms` (or at the next tick if past).
    pub fn schedule(&mut self, key: usize, deadline_ms: u64) {
        let t = (deadline_ms / TICK_MS).max(self.tick);
        self.slots[(t as usize) % SLOTS].push((key, deadline_ms));
        self.len += 1;
    }

    /// Move every entry with `deadline <= now_ms` into `out`.
    pub fn expire(&mut self, now_ms: u64, out: &mut Vec<(usize, u64)>) {
        let last = now_ms / TICK_MS;
        if self.len == 0 {
            self.tick = last;
            return;
        }
        // Never walk more than one revolution: beyond that every slot was seen.
        let first = self.tick.max(last.saturating_sub(SLOTS as u64 - 1));
        let mut t = first;
        while t <= last {
            let slot = &mut self.slots[(t as usize) % SLOTS];
            let mut i = 0;
            while i < slot.len() {
                if slot[i].1 <= now_ms {
                    out.push(slot.swap_remove(i));
                    self.len -= 1;
                } else {
                    i += 1;
                }
            }
            t += 1;
        }
        self.tick = last;
    }

    /// How long the event loop may sleep before the next tick matters.
    pub fn poll_timeout_ms(&self, now_ms: u64) -> Option<u64> {
        if self.len == 0 {
            None
        } else {
            Some(TICK_MS - now_ms % TICK_MS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_deadline_not_before() {
        let mut w = TimerWheel::new(0);
        w.schedule(1, 120);
        w.schedule(2, 40);
        let mut out = Vec::new();
        w.expire(30, &mut out);
        assert!(out.is_empty());
        w.expire(60, &mut out);
        assert_eq!(out, vec![(2, 40)]);
        out.clear();
        w.expire(119, &mut out);
        assert!(out.is_empty());
        w.expire(125, &mut out);
        assert_eq!(out, vec![(1, 120)]);
        assert!(w.is_empty());
    }

    #[test]
    fn deadlines_beyond_one_revolution_wait_their_round() {
        let mut w = TimerWheel::new(0);
        let far = TICK_MS * SLOTS as u64 + 75;
        w.schedule(9, far);
        let mut out = Vec::new();
        for now in (0..far).step_by(TICK_MS as usize) {
            w.expire(now, &mut out);
            assert!(out.is_empty(), "fired early at {now}");
        }
        w.expire(far + 1, &mut out);
        assert_eq!(out, vec![(9, far)]);
    }

    #[test]
    fn long_sleep_catches_up() {
        let mut w = TimerWheel::new(0);
        for k in 0..100 {
            w.schedule(k, k as u64 * 37);
        }
        let mut out = Vec::new();
        w.expire(1_000_000, &mut out);
        assert_eq!(out.len(), 100);
    }

    #[test]
    fn past_deadline_fires_on_next_expire() {
        let mut w = TimerWheel::new(1000);
        w.schedule(3, 10);
        let mut out = Vec::new();
        w.expire(1000, &mut out);
        assert_eq!(out, vec![(3, 10)]);
    }
}
