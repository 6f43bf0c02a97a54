//! `proxy_cache_min_uses`: how many times each cache key was asked for
//! recently, shared by every worker of every generation (mapped by the
//! master like the fill locks), so a response is stored only once its key
//! has been requested `min_uses` times within the zone's `inactive` time.
//!
//! Beside it, a store sequence per slot, bumped by a worker's cache writer
//! each time it publishes an entry: a worker that remembers a key as absent
//! trusts that memory only while the key's sequence has not moved, so a
//! fill by another worker is seen at once.
//!
//! A use slot is one `AtomicU64`: a 32-bit fingerprint of the key, a 12-bit use
//! count (saturating) and the minute of the last use in the low 20 bits
//! (wrapping). Keys whose slot holds another key take it over from a count
//! of one: the other key has to be asked again, which only delays its
//! storing, never stores anything early.

use super::ShmRegion;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// Slots in the table (a power of two): 2 MB of shared memory, touched only
/// where keys land.
pub const SLOTS: usize = 1 << 18;

const COUNT_MAX: u64 = (1 << 12) - 1;
const MINUTE_MASK: u64 = (1 << 20) - 1;

/// The shared table of use counts.
pub struct KeyUses {
    region: ShmRegion,
    stored: ShmRegion,
}

fn place(key: &[u8; 16]) -> (usize, u64) {
    let (slot, fp) = super::key_slot(key, SLOTS);
    (slot, u64::from(fp))
}

impl KeyUses {
    /// Map a new, empty table.
    pub fn new() -> io::Result<KeyUses> {
        Ok(KeyUses {
            region: ShmRegion::anonymous(SLOTS * 8)?,
            stored: ShmRegion::anonymous(SLOTS * 8)?,
        })
    }

    fn stored_slot(&self, md5: &[u8; 16]) -> &AtomicU64 {
        &self.stored.slice::<AtomicU64>(0, SLOTS)[place(md5).0]
    }

    /// The store sequence of the entry named `md5` (its file name).
    pub fn stored_seq(&self, md5: &[u8; 16]) -> u64 {
        self.stored_slot(md5).load(Ordering::Acquire)
    }

    /// An entry named `md5` was just published (after its rename).
    pub fn mark_stored(&self, md5: &[u8; 16]) {
        self.stored_slot(md5).fetch_add(1, Ordering::AcqRel);
    }

    fn slots(&self) -> &[AtomicU64] {
        self.region.slice::<AtomicU64>(0, SLOTS)
    }

    /// Count one use of `key` at `now_secs` (unix time) and return the
    /// uses within `inactive_secs` of each other, this one included.
    pub fn bump(&self, key: &[u8; 16], now_secs: i64, inactive_secs: u64) -> u64 {
        let (slot, fp) = place(key);
        let minute = (now_secs.max(0) as u64 / 60) & MINUTE_MASK;
        let inactive_min = inactive_secs.div_ceil(60).max(1);
        let cell = &self.slots()[slot];
        let mut w = cell.load(Ordering::Acquire);
        loop {
            let last = w & MINUTE_MASK;
            let age = minute.wrapping_sub(last) & MINUTE_MASK;
            let count = if w != 0 && w >> 32 == fp && age <= inactive_min {
                ((w >> 20) & COUNT_MAX).saturating_add(1).min(COUNT_MAX)
            } else {
                1
            };
            let word = (fp << 32) | (count << 20) | minute;
            match cell.compare_exchange_weak(w, word, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return count,
                Err(seen) => w = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[0] = n;
        k[9] = n;
        k
    }

    #[test]
    fn counts_per_key_and_forgets_after_inactive() {
        let u = KeyUses::new().unwrap();
        let t = 1_800_000_000;
        assert_eq!(u.bump(&key(1), t, 600), 1);
        assert_eq!(u.bump(&key(1), t + 5, 600), 2);
        assert_eq!(u.bump(&key(2), t + 5, 600), 1);
        assert_eq!(u.bump(&key(1), t + 300, 600), 3);
        // Unused for longer than inactive: counting starts again.
        assert_eq!(u.bump(&key(1), t + 300 + 700, 600), 1);
    }

    #[test]
    fn a_colliding_key_restarts_the_count_never_raises_it() {
        let u = KeyUses::new().unwrap();
        let a = key(3);
        let mut b = a;
        b[8] ^= 0x10; // same slot, another fingerprint
        let t = 1_800_000_000;
        assert_eq!(u.bump(&a, t, 600), 1);
        assert_eq!(u.bump(&a, t, 600), 2);
        assert_eq!(u.bump(&b, t, 600), 1);
        assert_eq!(u.bump(&a, t, 600), 1);
    }

    #[test]
    fn store_sequence_moves_per_key() {
        let u = KeyUses::new().unwrap();
        let (a, b) = (key(5), key(6));
        let (sa, sb) = (u.stored_seq(&a), u.stored_seq(&b));
        u.mark_stored(&a);
        assert_ne!(u.stored_seq(&a), sa);
        assert_eq!(u.stored_seq(&b), sb);
    }

    #[test]
    fn concurrent_bumps_are_all_counted() {
        let u = KeyUses::new().unwrap();
        let t = 1_800_000_000;
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..500 {
                        u.bump(&key(4), t, 600);
                    }
                });
            }
        });
        assert_eq!(u.bump(&key(4), t, 600), 2001);
    }
}
