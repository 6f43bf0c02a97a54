//! `proxy_cache_lock` in shared memory: one fill per cache key across every
//! worker of every generation (the table is mapped by the master once and
//! inherited by each fork, so a reload's old and new workers share it).
//!
//! A slot is one `AtomicU64`: a 32-bit fingerprint of the key in the high
//! half and the lock's deadline (`proxy_cache_lock_age`) in 10 ms ticks of
//! CLOCK_MONOTONIC in the low half; 0 is a free slot. The slot is chosen by
//! other bits of the key's MD5 than the fingerprint. Taking, taking over an
//! expired lock and releasing are each a single compare-and-swap, so two
//! requests can never both hold a key. A live lock of another key in the
//! same slot reads as busy: the request waits for that fill as if it were
//! its own, then takes the lock. That costs latency, never a second fill.

use super::ShmRegion;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Slots in the table (a power of two): 2 MB of shared memory, touched
/// only where keys land. With 1,000 fills under way at once, a fill waits
/// for an unrelated one about 0.4 % of the time.
pub const SLOTS: usize = 1 << 18;

/// Clock resolution of the deadlines.
const TICK_MS: u64 = 10;

/// The shared lock table.
pub struct FillLocks {
    region: ShmRegion,
}

/// Result of [`FillLocks::try_lock`].
pub enum LockTry {
    /// This request fills the key; the lock is freed when the value drops.
    Acquired(FillLock),
    /// Another request (any worker) holds the key's slot.
    Busy,
}

/// A held fill lock; dropping it frees the slot (unless the lock expired
/// and somebody took it over meanwhile).
pub struct FillLock {
    table: Arc<FillLocks>,
    slot: usize,
    word: u64,
}

impl std::fmt::Debug for FillLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FillLock(slot {}, word {:#x})", self.slot, self.word)
    }
}

impl Drop for FillLock {
    fn drop(&mut self) {
        let _ = self.table.slots()[self.slot].compare_exchange(
            self.word,
            0,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

/// Milliseconds of CLOCK_MONOTONIC: the same clock in every process.
fn monotonic_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
        .unwrap_or(0)
}

impl FillLocks {
    /// Map a new, empty table.
    pub fn new() -> io::Result<Arc<FillLocks>> {
        Ok(Arc::new(FillLocks {
            region: ShmRegion::anonymous(SLOTS * 8)?,
        }))
    }

    fn slots(&self) -> &[AtomicU64] {
        self.region.slice::<AtomicU64>(0, SLOTS)
    }

    /// Take the lock of `key` for at most `age_ms` (after which it is
    /// considered abandoned and may be taken over).
    pub fn try_lock(self: &Arc<Self>, key: &[u8; 16], age_ms: u64) -> LockTry {
        self.try_lock_at(key, age_ms, monotonic_ms())
    }

    fn try_lock_at(self: &Arc<Self>, key: &[u8; 16], age_ms: u64, now_ms: u64) -> LockTry {
        let (slot, fp) = super::key_slot(key, SLOTS);
        let now = (now_ms / TICK_MS) as u32;
        let age = age_ms.div_ceil(TICK_MS).clamp(1, i32::MAX as u64) as u32;
        let cell = &self.slots()[slot];
        let mut w = cell.load(Ordering::Acquire);
        loop {
            let deadline = w as u32;
            if w != 0 && (deadline.wrapping_sub(now) as i32) > 0 {
                return LockTry::Busy;
            }
            let word = (u64::from(fp) << 32) | u64::from(now.wrapping_add(age));
            match cell.compare_exchange(w, word, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    return LockTry::Acquired(FillLock {
                        table: self.clone(),
                        slot,
                        word,
                    })
                }
                Err(seen) => w = seen,
            }
        }
    }

    /// Locks held now (for tests and diagnostics; scans the table).
    pub fn held(&self) -> usize {
        let now = (monotonic_ms() / TICK_MS) as u32;
        self.slots()
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .filter(|&w| w != 0 && ((w as u32).wrapping_sub(now) as i32) > 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[0] = n;
        k[9] = n.wrapping_mul(7);
        k
    }

    #[test]
    fn one_holder_per_key_until_released() {
        let t = FillLocks::new().unwrap();
        let a = match t.try_lock_at(&key(1), 5000, 1_000_000) {
            LockTry::Acquired(l) => l,
            LockTry::Busy => panic!("a free key is busy"),
        };
        assert!(matches!(
            t.try_lock_at(&key(1), 5000, 1_000_000),
            LockTry::Busy
        ));
        // Another key is independent.
        let b = t.try_lock_at(&key(2), 5000, 1_000_000);
        assert!(matches!(b, LockTry::Acquired(_)));
        drop(a);
        assert!(matches!(
            t.try_lock_at(&key(1), 5000, 1_000_010),
            LockTry::Acquired(_)
        ));
    }

    #[test]
    fn an_expired_lock_is_taken_over_and_its_late_release_is_harmless() {
        let t = FillLocks::new().unwrap();
        let LockTry::Acquired(old) = t.try_lock_at(&key(3), 1000, 1_000_000) else {
            panic!("busy");
        };
        assert!(matches!(
            t.try_lock_at(&key(3), 1000, 1_000_990),
            LockTry::Busy
        ));
        let LockTry::Acquired(new) = t.try_lock_at(&key(3), 1000, 1_001_000) else {
            panic!("an abandoned lock was not taken over");
        };
        // The abandoned holder finishing late does not free the new lock.
        drop(old);
        assert!(matches!(
            t.try_lock_at(&key(3), 1000, 1_001_010),
            LockTry::Busy
        ));
        drop(new);
        assert!(matches!(
            t.try_lock_at(&key(3), 1000, 1_001_010),
            LockTry::Acquired(_)
        ));
    }

    #[test]
    fn a_colliding_key_waits_rather_than_fill_twice() {
        let t = FillLocks::new().unwrap();
        let a = key(4);
        let mut b = a;
        b[8] ^= 0x10; // same slot, another fingerprint
        let LockTry::Acquired(la) = t.try_lock_at(&a, 5000, 2_000_000) else {
            panic!("busy");
        };
        assert!(matches!(t.try_lock_at(&b, 5000, 2_000_000), LockTry::Busy));
        drop(la);
        assert!(matches!(
            t.try_lock_at(&b, 5000, 2_000_000),
            LockTry::Acquired(_)
        ));
    }

    #[test]
    fn many_threads_one_winner() {
        let t = FillLocks::new().unwrap();
        let won = std::sync::atomic::AtomicUsize::new(0);
        let held = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if let LockTry::Acquired(l) = t.try_lock(&key(5), 60_000) {
                            won.fetch_add(1, Ordering::Relaxed);
                            held.lock().unwrap().push(l);
                        }
                    }
                });
            }
        });
        assert_eq!(won.load(Ordering::Relaxed), 1);
        assert_eq!(t.held(), 1);
        held.lock().unwrap().clear();
        assert_eq!(t.held(), 0);
    }

    #[test]
    fn shared_across_fork() {
        let t = FillLocks::new().unwrap();
        // SAFETY: the test harness runs other threads; the child only does
        // atomic operations on the shared mapping and `_exit`s.
        match unsafe { crate::sys::fork_unchecked() }.unwrap() {
            crate::sys::Fork::Child => {
                let code = match t.try_lock(&key(6), 60_000) {
                    LockTry::Acquired(l) => {
                        std::mem::forget(l);
                        0
                    }
                    LockTry::Busy => 1,
                };
                crate::sys::exit_now(code);
            }
            crate::sys::Fork::Parent(pid) => {
                let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
                assert!(matches!(st, nix::sys::wait::WaitStatus::Exited(_, 0)));
                assert!(matches!(t.try_lock(&key(6), 60_000), LockTry::Busy));
            }
        }
    }
}
