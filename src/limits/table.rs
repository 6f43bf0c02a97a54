//! A bounded hash table of fixed-size slots over a slice of atomics (a
//! zone's body), shared by every worker, lock-free.
//!
//! Slot layout, in 64-bit words:
//!
//! | word | | |
//! |---|---|---|
//! | 0 | `tag` | 0 = empty; bit 63 set = being (re)claimed, low bits = claim time in ms; else the key hash's high 63 bits |
//! | 1 | `check` | the key hash's low 64 bits |
//! | 2 | `seen_ms` | last use, unix ms, written at most once per [`TOUCH_MS`] |
//! | 3.. | payload | owned by the zone kind (GCRA cell, window buckets, quota word) |
//!
//! Keys are not stored: a key is its 128-bit keyed hash (`tag` + `check`).
//! With a per-zone random seed two live keys collide with probability about
//! n²/2¹²⁸ — never in practice — and in exchange every slot has the same
//! size whatever the key (an IPv6 address, a long header), a claim is one
//! CAS, and a table can be rehashed into one of another size (migration)
//! without knowing the keys.
//!
//! A key lives in one of [`PROBE_SLOTS`] consecutive slots from its home
//! slot. Claiming: CAS the chosen slot's tag to "busy", reset the payload,
//! write `check` and `seen_ms`, publish the tag. Slots never become empty
//! again, so a lookup may stop at the first empty slot. When the window has
//! no empty slot the victim is an expired slot if any, else the least
//! recently used one — an *eviction*, reported to the caller. A claimer
//! killed mid-claim leaves a busy tag; after [`BUSY_STALE_MS`] any worker may
//! take the slot over. No lock is ever held, across a syscall or otherwise.

use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

/// Words before the payload.
pub const SLOT_HEADER_WORDS: usize = 3;
/// Slots a key may live in, from its home slot on.
pub const PROBE_SLOTS: usize = 16;
/// `seen_ms` is refreshed at most this often (so expiry adds this margin).
pub const TOUCH_MS: u64 = 1000;
/// A busy tag older than this belongs to a dead claimer.
pub const BUSY_STALE_MS: u64 = 1000;
/// Scans retried while another worker is claiming in the same window.
const CLAIM_ATTEMPTS: usize = 4096;

const BUSY: u64 = 1 << 63;
const TAG: usize = 0;
const CHECK: usize = 1;
const SEEN: usize = 2;

/// A key as the table knows it: a 128-bit keyed hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHash {
    /// High 63 bits, never 0.
    pub tag: u64,
    /// Low 64 bits.
    pub check: u64,
}

impl KeyHash {
    /// From a 128-bit hash.
    pub fn from_u128(h: u128) -> KeyHash {
        let tag = ((h >> 64) as u64) & !BUSY;
        KeyHash {
            tag: if tag == 0 { 1 } else { tag },
            check: h as u64,
        }
    }
}

/// When a key's state no longer matters (so its slot may be reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Unused for this long (window and quota zones).
    IdleMs(u64),
    /// The payload's first word is a GCRA theoretical arrival time (µs)
    /// that has passed: the key is back to a full bucket.
    TatPassed,
}

/// The result of [`Table::find_or_claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Slot index.
    pub slot: usize,
    /// The key was not there; the slot was claimed with a zeroed payload.
    pub fresh: bool,
    /// Claiming it discarded another key that had not expired.
    pub evicted: bool,
}

/// The table view over a zone body.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    cells: &'a [AtomicU64],
    slot_words: usize,
    slots: usize,
    expiry: Expiry,
}

enum Victim {
    Empty(usize),
    Reuse { slot: usize, tag: u64, live: bool },
}

impl<'a> Table<'a> {
    /// A table of `slot_words`-word slots over `cells` (`payload` words =
    /// `slot_words - SLOT_HEADER_WORDS`, at least 1).
    pub fn new(cells: &'a [AtomicU64], slot_words: usize, expiry: Expiry) -> Table<'a> {
        let slot_words = slot_words.max(SLOT_HEADER_WORDS + 1);
        Table {
            cells,
            slot_words,
            slots: cells.len() / slot_words,
            expiry,
        }
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    fn word(&self, slot: usize, i: usize) -> &'a AtomicU64 {
        &self.cells[slot * self.slot_words + i]
    }

    /// The payload words of `slot`.
    pub fn payload(&self, slot: usize) -> &'a [AtomicU64] {
        let base = slot * self.slot_words;
        &self.cells[base + SLOT_HEADER_WORDS..base + self.slot_words]
    }

    fn home(&self, k: KeyHash) -> usize {
        ((k.check as u128 * self.slots as u128) >> 64) as usize
    }

    fn window(&self) -> usize {
        PROBE_SLOTS.min(self.slots)
    }

    /// Whether `slot`'s key no longer matters at `now_ms`.
    pub fn expired(&self, slot: usize, now_ms: u64) -> bool {
        match self.expiry {
            Expiry::IdleMs(ttl) => {
                let seen = self.word(slot, SEEN).load(Relaxed);
                now_ms.saturating_sub(seen) >= ttl.saturating_add(TOUCH_MS)
            }
            Expiry::TatPassed => self.payload(slot)[0].load(Relaxed) <= now_ms.saturating_mul(1000),
        }
    }

    fn touch(&self, slot: usize, now_ms: u64) {
        let seen = self.word(slot, SEEN);
        if now_ms.saturating_sub(seen.load(Relaxed)) >= TOUCH_MS {
            seen.store(now_ms, Relaxed);
        }
    }

    fn matches(&self, slot: usize, tag: u64, k: KeyHash) -> bool {
        tag == k.tag && self.word(slot, CHECK).load(Acquire) == k.check
    }

    /// The slot holding `k`, if any (refreshing its last use).
    pub fn find(&self, k: KeyHash, now_ms: u64) -> Option<usize> {
        if self.slots == 0 {
            return None;
        }
        let home = self.home(k);
        for i in 0..self.window() {
            let s = (home + i) % self.slots;
            let tag = self.word(s, TAG).load(Acquire);
            if tag == 0 {
                return None;
            }
            if self.matches(s, tag, k) {
                self.touch(s, now_ms);
                return Some(s);
            }
        }
        None
    }

    /// The slot holding `k`, claiming one (evicting if the window is full)
    /// when it is not there. `None` only when the table has no slots or
    /// other workers kept the window busy for the whole retry budget.
    pub fn find_or_claim(&self, k: KeyHash, now_ms: u64) -> Option<Claim> {
        if self.slots == 0 {
            return None;
        }
        let home = self.home(k);
        for attempt in 0..CLAIM_ATTEMPTS {
            let mut busy = false;
            let mut victim: Option<Victim> = None;
            let mut best: Option<(bool, u64)> = None; // (live, seen) of the reuse victim
            for i in 0..self.window() {
                let s = (home + i) % self.slots;
                let tag = self.word(s, TAG).load(Acquire);
                if tag == 0 {
                    victim = Some(Victim::Empty(s));
                    break;
                }
                if tag & BUSY != 0 {
                    if now_ms.saturating_sub(tag & !BUSY) < BUSY_STALE_MS {
                        busy = true;
                    } else if best.is_none_or(|b| b > (false, 0)) {
                        // A claimer died here: the slot is free for the taking.
                        best = Some((false, 0));
                        victim = Some(Victim::Reuse {
                            slot: s,
                            tag,
                            live: false,
                        });
                    }
                    continue;
                }
                if self.matches(s, tag, k) {
                    self.touch(s, now_ms);
                    return Some(Claim {
                        slot: s,
                        fresh: false,
                        evicted: false,
                    });
                }
                let rank = (!self.expired(s, now_ms), self.word(s, SEEN).load(Relaxed));
                if best.is_none_or(|b| rank < b) {
                    best = Some(rank);
                    victim = Some(Victim::Reuse {
                        slot: s,
                        tag,
                        live: rank.0,
                    });
                }
            }
            if busy {
                // Someone is installing a key in this window, maybe this one:
                // a few hundred ns. If it takes longer the claimer was
                // preempted; give it the CPU (no lock is held here).
                if attempt < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
                continue;
            }
            let (slot, expect, live) = match victim {
                Some(Victim::Empty(s)) => (s, 0, false),
                Some(Victim::Reuse { slot, tag, live }) => (slot, tag, live),
                None => return None,
            };
            let mine = BUSY | (now_ms & !BUSY);
            let tag = self.word(slot, TAG);
            if tag
                .compare_exchange(expect, mine, Acquire, Relaxed)
                .is_err()
            {
                continue;
            }
            for w in self.payload(slot) {
                w.store(0, Relaxed);
            }
            self.word(slot, CHECK).store(k.check, Relaxed);
            self.word(slot, SEEN).store(now_ms, Relaxed);
            tag.store(k.tag, Release);
            return Some(Claim {
                slot,
                fresh: true,
                evicted: live,
            });
        }
        None
    }

    /// The keys held now, with their slots and whether they expired (for
    /// the cluster sync thread, which reads their payloads).
    pub fn keys(&self, now_ms: u64) -> impl Iterator<Item = (usize, KeyHash, bool)> + '_ {
        (0..self.slots).filter_map(move |s| {
            let tag = self.word(s, TAG).load(Acquire);
            (tag != 0 && tag & BUSY == 0).then(|| {
                let k = KeyHash {
                    tag,
                    check: self.word(s, CHECK).load(Relaxed),
                };
                (s, k, self.expired(s, now_ms))
            })
        })
    }

    /// Whether `slot` still holds `k` (it may have been reused).
    pub fn holds(&self, slot: usize, k: KeyHash) -> bool {
        slot < self.slots && self.matches(slot, self.word(slot, TAG).load(Acquire), k)
    }

    /// Keys whose state still matters.
    pub fn live_keys(&self, now_ms: u64) -> u64 {
        (0..self.slots)
            .filter(|&s| {
                let tag = self.word(s, TAG).load(Relaxed);
                tag != 0 && tag & BUSY == 0 && !self.expired(s, now_ms)
            })
            .count() as u64
    }

    /// Copy every live key of `from` (same slot size) into this table:
    /// a resize keeps state. Returns (copied, evicted).
    pub fn copy_from(&self, from: &Table<'_>, now_ms: u64) -> (u64, u64) {
        let (mut copied, mut evicted) = (0, 0);
        if from.slot_words != self.slot_words {
            return (0, 0);
        }
        for s in 0..from.slots {
            let tag = from.word(s, TAG).load(Acquire);
            if tag == 0 || tag & BUSY != 0 || from.expired(s, now_ms) {
                continue;
            }
            let k = KeyHash {
                tag,
                check: from.word(s, CHECK).load(Relaxed),
            };
            let Some(c) = self.find_or_claim(k, now_ms) else {
                continue;
            };
            self.word(c.slot, SEEN)
                .store(from.word(s, SEEN).load(Relaxed), Relaxed);
            for (dst, src) in self.payload(c.slot).iter().zip(from.payload(s)) {
                dst.store(src.load(Relaxed), Relaxed);
            }
            copied += 1;
            evicted += c.evicted as u64;
        }
        (copied, evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    fn key(i: u64) -> KeyHash {
        KeyHash::from_u128(crate::util::hash::siphash128(1, 2, &i.to_le_bytes()))
    }

    #[test]
    fn claim_then_find_the_same_slot() {
        let c = cells(4 * 64);
        let t = Table::new(&c, 4, Expiry::IdleMs(1000));
        assert_eq!(t.slots(), 64);
        let a = t.find_or_claim(key(1), 10).unwrap();
        assert!(a.fresh && !a.evicted);
        t.payload(a.slot)[0].store(5, Relaxed);
        let again = t.find_or_claim(key(1), 20).unwrap();
        assert_eq!((again.slot, again.fresh), (a.slot, false));
        assert_eq!(t.find(key(1), 20), Some(a.slot));
        assert_eq!(t.payload(a.slot)[0].load(Relaxed), 5);
        assert_eq!(t.find(key(2), 20), None);
        assert_eq!(t.live_keys(20), 1);
    }

    #[test]
    fn full_table_evicts_least_recently_used_and_says_so() {
        let c = cells(4 * 8);
        let t = Table::new(&c, 4, Expiry::IdleMs(60_000));
        for i in 0..8 {
            let cl = t.find_or_claim(key(i), 1000 + i * 2000).unwrap();
            assert!(!cl.evicted, "key {i}");
            t.payload(cl.slot)[0].store(100 + i, Relaxed);
        }
        assert_eq!(t.live_keys(20_000), 8);
        // Key 0 is the least recently used: the ninth key takes its slot.
        let slot0 = t.find(key(0), 20_000);
        // Touch key 0 again? No: `find` refreshed it, so key 1 is now oldest.
        assert!(slot0.is_some());
        let slot1 = t.find(key(1), 0).unwrap();
        let ninth = t.find_or_claim(key(99), 21_000).unwrap();
        assert!(ninth.fresh && ninth.evicted);
        assert_eq!(ninth.slot, slot1);
        assert_eq!(t.payload(ninth.slot)[0].load(Relaxed), 0, "payload reset");
        assert_eq!(t.find(key(1), 21_000), None);
        assert_eq!(t.live_keys(21_000), 8);
    }

    #[test]
    fn expired_keys_are_reused_before_live_ones_without_counting_evictions() {
        let c = cells(4 * 8);
        let t = Table::new(&c, 4, Expiry::IdleMs(1000));
        for i in 0..8 {
            // Key 5 is old, the others recent.
            let now = if i == 5 { 0 } else { 10_000 };
            t.find_or_claim(key(i), now).unwrap();
        }
        assert_eq!(t.live_keys(10_000), 7);
        let slot5 = t.find(key(5), 0).unwrap();
        let n = t.find_or_claim(key(50), 10_000).unwrap();
        assert_eq!((n.slot, n.evicted), (slot5, false));
    }

    #[test]
    fn gcra_expiry_follows_the_arrival_time() {
        let c = cells(4 * 8);
        let t = Table::new(&c, 4, Expiry::TatPassed);
        let cl = t.find_or_claim(key(1), 1000).unwrap();
        t.payload(cl.slot)[0].store(5_000_000, Relaxed); // TAT at 5 s
        assert!(!t.expired(cl.slot, 4_999));
        assert!(t.expired(cl.slot, 5_000));
    }

    #[test]
    fn dead_claimer_busy_slot_is_taken_over() {
        let c = cells(4 * 8);
        let t = Table::new(&c, 4, Expiry::IdleMs(1000));
        let home = t.home(key(7));
        // A claimer died right after marking the home slot busy at t=100.
        c[home * 4].store(BUSY | 100, Relaxed);
        // Fresh busy: the claimer may still be working; we wait, then give up
        // only after the retry budget (the slot stays busy in this test).
        assert_eq!(t.find_or_claim(key(7), 200), None);
        // Stale busy: no longer waited for.
        let cl = t.find_or_claim(key(7), 100 + BUSY_STALE_MS + 1).unwrap();
        assert_eq!(t.find(key(7), 5000), Some(cl.slot));
        // With the window otherwise full, the dead claimer's slot is reused
        // first, and that is no eviction.
        let c = cells(4 * 8);
        let t = Table::new(&c, 4, Expiry::IdleMs(60_000));
        for i in 100..108 {
            t.find_or_claim(key(i), 5000).unwrap();
        }
        c[3 * 4].store(BUSY | 100, Relaxed);
        let cl = t.find_or_claim(key(7), 5000).unwrap();
        assert_eq!((cl.slot, cl.evicted), (3, false));
    }

    #[test]
    fn garbage_never_panics() {
        // A zone body full of noise (say, a foreign file) is only ever read
        // through bounds-checked indices.
        let c: Vec<AtomicU64> = (0..4 * 32)
            .map(|i| AtomicU64::new((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        let t = Table::new(&c, 4, Expiry::IdleMs(1000));
        for i in 0..100 {
            let _ = t.find_or_claim(key(i), u64::MAX / 2);
            let _ = t.find(key(i), 0);
        }
        let _ = t.live_keys(0);
    }

    #[test]
    fn copy_keeps_live_keys_across_sizes() {
        let small = cells(4 * 16);
        let a = Table::new(&small, 4, Expiry::IdleMs(10_000));
        for i in 0..10 {
            let cl = a.find_or_claim(key(i), 1000).unwrap();
            a.payload(cl.slot)[0].store(i + 1, Relaxed);
        }
        let big = cells(4 * 64);
        let b = Table::new(&big, 4, Expiry::IdleMs(10_000));
        assert_eq!(b.copy_from(&a, 2000), (10, 0));
        for i in 0..10 {
            let s = b.find(key(i), 2000).unwrap();
            assert_eq!(b.payload(s)[0].load(Relaxed), i + 1);
        }
    }

    #[test]
    fn concurrent_claims_of_one_key_agree_on_one_slot() {
        let c = cells(4 * 2048);
        let t = Table::new(&c, 4, Expiry::IdleMs(60_000));
        std::thread::scope(|sc| {
            for _ in 0..4 {
                sc.spawn(|| {
                    for i in 0..200u64 {
                        let cl = t.find_or_claim(key(i), 1000).unwrap();
                        t.payload(cl.slot)[0].fetch_add(1, Relaxed);
                    }
                });
            }
        });
        for i in 0..200u64 {
            let s = t.find(key(i), 1000).unwrap();
            assert_eq!(t.payload(s)[0].load(Relaxed), 4, "key {i}");
        }
    }
}
