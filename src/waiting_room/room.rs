//! The shared state of one waiting room, over the body of its zone (words
//! of `AtomicU64`, shared by every worker of every generation):
//!
//! | word | field | unit |
//! |---|---|---|
//! | 0 | `next_slot` | unix µs: the next free admission slot |
//! | 1 | `admitted` | users admitted (counter) |
//! | 2 | `queued` | places handed out (counter) |
//! | 3 | `refused` | users turned away (`mode=reject`, `max_wait`) |
//! | 4 | `wait_pages` | wait pages served |
//! | 8.. | `token_rejects` | tokens ignored, by [`Reject`] |
//! | 16..16+64 | `active` | sessions by last-activity bucket: `epoch << 24 \| count` |
//!
//! Admission is a virtual queue: each arrival takes the slot
//! `max(next_slot, now)` and advances `next_slot` by `1 / admit_rate`; its
//! wait is the slot minus now (0 = admitted at once). `max_active` is checked
//! at admission against the sessions active in the last `session` window,
//! counted in [`BUCKETS`] buckets by last activity (a renewal moves a
//! session to the current bucket). Everything is a CAS on one word; the
//! clock is passed in, so tests run on a fake one.

use super::token::{Reject, REJECTS};
pub use crate::config::RoomMode as Mode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Activity buckets of `max_active` accounting.
pub const BUCKETS: usize = 64;
/// Body words a room uses.
pub const ROOM_WORDS: usize = W_BUCKETS + BUCKETS;

const W_NEXT: usize = 0;
const W_ADMITTED: usize = 1;
const W_QUEUED: usize = 2;
const W_REFUSED: usize = 3;
const W_PAGES: usize = 4;
/// Cluster: slots taken here, monotonic.
const W_TAKEN: usize = 5;
/// Cluster: `W_TAKEN` as of the last push.
const W_TAKEN_PUSHED: usize = 6;
/// Cluster: sessions active on the other nodes, as of the last sync.
const W_REMOTE_ACTIVE: usize = 7;
const W_REJECTS: usize = 8;
const W_BUCKETS: usize = 16;
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// A room's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// 1 / admit_rate, µs.
    pub interval_us: u64,
    /// Most sessions alive at once.
    pub max_active: u64,
    /// Session lifetime without activity, ms.
    pub session_ms: u64,
    /// Longest wait handed out, ms.
    pub max_wait_ms: u64,
    /// Queue discipline.
    pub mode: Mode,
    /// Sessions active on other nodes (a synced cluster room; else 0).
    pub remote_active: u64,
}

/// Counters of a room (for `status;`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomStats {
    /// Users admitted.
    pub admitted: u64,
    /// Places handed out.
    pub queued: u64,
    /// Users turned away.
    pub refused: u64,
    /// Wait pages served.
    pub wait_pages: u64,
    /// Sessions active now.
    pub active: u64,
    /// Users waiting now (slots still ahead).
    pub queue_len: u64,
    /// Wait of a new arrival now, ms.
    pub wait_ms: u64,
    /// Tokens ignored, by [`Reject`].
    pub token_rejects: [u64; REJECTS],
}

/// A room over its zone body.
pub struct Room<'a> {
    w: &'a [AtomicU64],
    p: Params,
}

impl<'a> Room<'a> {
    /// `body` must have at least [`ROOM_WORDS`] words.
    pub fn new(body: &'a [AtomicU64], p: Params) -> Option<Room<'a>> {
        (body.len() >= ROOM_WORDS).then_some(Room { w: body, p })
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.p
    }

    /// Take the next place at `now_us`: its slot (unix µs; `now_us` = at
    /// once), or `None` when the wait would exceed `max_wait` (nothing is
    /// taken). `draw` (0..=u64::MAX) places a `random`-mode arrival.
    pub fn take_slot(&self, now_us: u64, draw: u64) -> Option<u64> {
        let next = &self.w[W_NEXT];
        let mut cur = next.load(Relaxed);
        loop {
            let slot = cur.max(now_us);
            if slot - now_us > self.p.max_wait_ms * 1000 {
                self.w[W_REFUSED].fetch_add(1, Relaxed);
                return None;
            }
            match next.compare_exchange_weak(cur, slot + self.p.interval_us, Relaxed, Relaxed) {
                Ok(_) => {
                    self.w[W_TAKEN].fetch_add(1, Relaxed);
                    if slot > now_us {
                        self.w[W_QUEUED].fetch_add(1, Relaxed);
                    }
                    if self.p.mode == Mode::Random && slot > now_us {
                        // A lottery among everyone queued so far: any slot
                        // between now and the end of the queue.
                        let span = slot - now_us;
                        return Some(now_us + 1 + (draw % span));
                    }
                    return Some(slot);
                }
                Err(c) => cur = c,
            }
        }
    }

    /// Whether a new arrival would be admitted now without taking a place
    /// (`mode=reject`): a free slot and room for a session.
    pub fn free_now(&self, now_us: u64) -> bool {
        self.w[W_NEXT].load(Relaxed) <= now_us && self.active(now_us / 1000) < self.p.max_active
    }

    /// (users waiting, the wait of a new arrival in ms) at `now_us`. The
    /// last place taken ends `interval` before `next_slot`, so the users with
    /// slots still ahead number `(next_slot - now - 1µs) / interval`.
    pub fn estimate(&self, now_us: u64) -> (u64, u64) {
        let ahead_us = self.w[W_NEXT].load(Relaxed).saturating_sub(now_us);
        let interval = self.p.interval_us.max(1);
        // Slots still ahead of `now`, rounded so that a `now` truncated to
        // the millisecond (status pages) does not count one slot too many.
        let queue = ((ahead_us + interval / 2) / interval).saturating_sub(1);
        (queue, ahead_us.div_ceil(1000))
    }

    /// Position of a ticket whose slot is `slot_us` (1 = next).
    pub fn position(&self, slot_us: u64, now_us: u64) -> u64 {
        slot_us
            .saturating_sub(now_us)
            .div_ceil(self.p.interval_us.max(1))
            .max(1)
    }

    fn bucket_width_ms(&self) -> u64 {
        self.p.session_ms.div_ceil(BUCKETS as u64 - 4).max(1)
    }

    fn live(&self, epoch: u64, now_epoch: u64) -> bool {
        epoch + (BUCKETS as u64 - 3) > now_epoch && epoch <= now_epoch
    }

    /// Sessions active at `now_ms`, on every node of a synced cluster room.
    pub fn active(&self, now_ms: u64) -> u64 {
        self.local_active(now_ms) + self.p.remote_active
    }

    /// Sessions active at `now_ms` on this node.
    pub fn local_active(&self, now_ms: u64) -> u64 {
        let now_epoch = now_ms / self.bucket_width_ms();
        self.w[W_BUCKETS..W_BUCKETS + BUCKETS]
            .iter()
            .map(|b| b.load(Relaxed))
            .filter(|v| self.live(v >> COUNT_BITS, now_epoch))
            .map(|v| v & COUNT_MASK)
            .sum()
    }

    fn bucket_add(&self, at_ms: u64, now_ms: u64, add: bool) {
        let width = self.bucket_width_ms();
        let epoch = at_ms / width;
        if !self.live(epoch, now_ms / width) {
            return;
        }
        let cell = &self.w[W_BUCKETS + (epoch % BUCKETS as u64) as usize];
        let mut cur = cell.load(Relaxed);
        loop {
            let (e, n) = (cur >> COUNT_BITS, cur & COUNT_MASK);
            let n = if e == epoch { n } else { 0 };
            if !add && (e != epoch || n == 0) {
                return;
            }
            let n = if add { (n + 1).min(COUNT_MASK) } else { n - 1 };
            match cell.compare_exchange_weak(cur, epoch << COUNT_BITS | n, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(c) => cur = c,
            }
        }
    }

    /// Admit a user at `now_ms` if a session is free; counts it.
    pub fn admit(&self, now_ms: u64) -> bool {
        if self.active(now_ms) >= self.p.max_active {
            return false;
        }
        self.bucket_add(now_ms, now_ms, true);
        self.w[W_ADMITTED].fetch_add(1, Relaxed);
        true
    }

    /// A session last renewed at `seen_ms` is renewed at `now_ms`.
    pub fn renew(&self, seen_ms: u64, now_ms: u64) {
        self.bucket_add(seen_ms, now_ms, false);
        self.bucket_add(now_ms, now_ms, true);
    }

    /// Cluster sync: slots taken here since the last push; the caller
    /// pushes them, then calls [`Room::pushed`] with the returned total.
    pub fn taken_since_push(&self) -> (u64, u64) {
        let taken = self.w[W_TAKEN].load(Relaxed);
        (
            taken.wrapping_sub(self.w[W_TAKEN_PUSHED].load(Relaxed)),
            taken,
        )
    }

    /// Cluster sync: slots up to `taken` are pushed; the global next slot
    /// is `next_us` (never moved back) and `remote_active` sessions are
    /// active on the other nodes.
    pub fn pushed(&self, taken: u64, next_us: u64, remote_active: u64) {
        self.w[W_TAKEN_PUSHED].store(taken, Relaxed);
        self.w[W_NEXT].fetch_max(next_us, Relaxed);
        self.w[W_REMOTE_ACTIVE].store(remote_active, Relaxed);
    }

    /// Sessions active on other nodes as of the last sync.
    pub fn remote_active_word(&self) -> u64 {
        self.w[W_REMOTE_ACTIVE].load(Relaxed)
    }

    /// One more wait page served.
    pub fn count_wait_page(&self) {
        self.w[W_PAGES].fetch_add(1, Relaxed);
    }

    /// One more refusal (`mode=reject`).
    pub fn count_refused(&self) {
        self.w[W_REFUSED].fetch_add(1, Relaxed);
    }

    /// One more ignored token.
    pub fn count_reject(&self, r: Reject) {
        self.w[W_REJECTS + r as usize].fetch_add(1, Relaxed);
    }

    /// Counters now.
    pub fn stats(&self, now_us: u64) -> RoomStats {
        let (queue_len, wait_ms) = self.estimate(now_us);
        let mut token_rejects = [0; REJECTS];
        for (i, r) in token_rejects.iter_mut().enumerate() {
            *r = self.w[W_REJECTS + i].load(Relaxed);
        }
        RoomStats {
            admitted: self.w[W_ADMITTED].load(Relaxed),
            queued: self.w[W_QUEUED].load(Relaxed),
            refused: self.w[W_REFUSED].load(Relaxed),
            wait_pages: self.w[W_PAGES].load(Relaxed),
            active: self.active(now_us / 1000),
            queue_len,
            wait_ms,
            token_rejects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Vec<AtomicU64> {
        (0..ROOM_WORDS).map(|_| AtomicU64::new(0)).collect()
    }

    fn params(per_min: u64, max_active: u64) -> Params {
        Params {
            interval_us: 60_000_000 / per_min,
            max_active,
            session_ms: 600_000,
            max_wait_ms: 1_800_000,
            mode: Mode::Fifo,
            remote_active: 0,
        }
    }

    const T0: u64 = 1_700_000_000_000_000;

    #[test]
    fn arrivals_get_consecutive_slots() {
        let b = body();
        let r = Room::new(&b, params(20, 1000)).unwrap();
        assert_eq!(r.take_slot(T0, 0), Some(T0));
        assert_eq!(r.take_slot(T0, 0), Some(T0 + 3_000_000));
        assert_eq!(r.take_slot(T0 + 1_000_000, 0), Some(T0 + 6_000_000));
        assert_eq!(r.position(T0 + 6_000_000, T0 + 1_000_000), 2);
        assert_eq!(r.estimate(T0 + 1_000_000), (2, 8_000));
        // After a quiet spell the queue is empty again: admitted at once.
        assert_eq!(r.take_slot(T0 + 60_000_000, 0), Some(T0 + 60_000_000));
    }

    #[test]
    fn queue_length_is_not_inflated_by_a_millisecond_truncated_now() {
        // Regression: a status page computed `now` in whole milliseconds, up to
        // 999 us before the arrival's, and counted one waiting user too many.
        let b = body();
        let r = Room::new(&b, params(6, 1000)).unwrap(); // one slot per 10 s
        assert_eq!(r.take_slot(T0 + 700, 0), Some(T0 + 700)); // admitted
        assert!(r.take_slot(T0 + 800, 0).is_some()); // waits for the next slot
        let truncated = (T0 + 900) / 1000 * 1000;
        assert_eq!(r.estimate(truncated).0, 1);
        assert_eq!(r.estimate(T0 + 900).0, 1);
        assert_eq!(r.estimate(T0 + 10_000_700).0, 0);
    }

    #[test]
    fn queue_order_with_several_workers_is_a_permutation_of_the_slots() {
        let b = body();
        let p = params(600, 1000);
        let slots = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let r = Room::new(&b, p).unwrap();
                    for _ in 0..250 {
                        let slot = r.take_slot(T0, 0).unwrap();
                        slots.lock().unwrap().push(slot);
                    }
                });
            }
        });
        let mut v = slots.into_inner().unwrap();
        v.sort_unstable();
        let want: Vec<u64> = (0..1000).map(|i| T0 + i * 100_000).collect();
        assert_eq!(v, want, "every place once, none skipped");
    }

    #[test]
    fn max_wait_refuses_without_taking_a_place() {
        let b = body();
        let mut p = params(60, 1000);
        p.max_wait_ms = 2_000;
        let r = Room::new(&b, p).unwrap();
        assert_eq!(r.take_slot(T0, 0), Some(T0));
        assert_eq!(r.take_slot(T0, 0), Some(T0 + 1_000_000));
        assert_eq!(r.take_slot(T0, 0), Some(T0 + 2_000_000));
        assert_eq!(r.take_slot(T0, 0), None);
        assert_eq!(r.stats(T0).refused, 1);
        assert_eq!(r.estimate(T0).1, 3_000);
    }

    #[test]
    fn random_mode_draws_within_the_queue() {
        let b = body();
        let mut p = params(60, 1000);
        p.mode = Mode::Random;
        let r = Room::new(&b, p).unwrap();
        assert_eq!(r.take_slot(T0, 7), Some(T0));
        for i in 0..50u64 {
            let end = T0 + (i + 1) * 1_000_000;
            let s = r
                .take_slot(T0, i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .unwrap();
            assert!(s > T0 && s <= end, "{s} outside the queue");
        }
    }

    #[test]
    fn max_active_and_session_expiry() {
        let b = body();
        let r = Room::new(&b, params(600, 2)).unwrap();
        let now = T0 / 1000;
        assert!(r.admit(now));
        assert!(r.admit(now));
        assert!(!r.admit(now), "third session beyond max_active");
        assert_eq!(r.active(now + 300_000), 2);
        // One session stays active, the other goes idle past `session`.
        r.renew(now, now + 300_000);
        assert_eq!(r.active(now + 300_000), 2);
        assert_eq!(r.active(now + 650_000), 1);
        assert!(r.admit(now + 650_000));
        assert_eq!(r.active(now + 2_000_000), 0);
        assert_eq!(r.stats(T0).admitted, 3);
    }
}
