//! Connection and request counters per worker slot, in shared memory.
//!
//! The master assigns a slot to each worker it forks and, when the worker is
//! reaped, folds the slot's monotonic counters into `retired` so totals never
//! go backwards across reloads and crashes. Gauges (active, reading, ...) are
//! simply zeroed with the slot.

use super::fill_locks::FillLocks;
use super::key_uses::KeyUses;
use super::{AtomicsOnly, ShmRegion};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Slots available: enough for two generations of a large worker pool.
pub const MAX_SLOTS: usize = 256;

/// Counters of one worker; one cache line.
#[repr(C, align(64))]
#[derive(Default)]
pub struct WorkerStats {
    /// pid of the worker using the slot; 0 = free.
    pub pid: AtomicU64,
    /// Worker generation (bumped per reload).
    pub generation: AtomicU64,
    /// Requests answered (monotonic).
    pub requests: AtomicU64,
    /// Connections received by this worker (monotonic).
    pub accepted: AtomicU64,
    /// Connections taken into service, i.e. not refused (monotonic).
    pub handled: AtomicU64,
    /// Open client connections (gauge).
    pub active: AtomicU64,
    /// Connections reading a request (gauge).
    pub reading: AtomicU64,
    /// Connections writing a response (gauge).
    pub writing: AtomicU64,
    /// Connections that switched to HTTP/2 (monotonic).
    pub h2_connections: AtomicU64,
    /// HTTP/2 streams opened (monotonic).
    pub h2_streams: AtomicU64,
}

// SAFETY: only AtomicU64 fields.
unsafe impl AtomicsOnly for WorkerStats {}

/// Totals of workers that have exited.
#[repr(C, align(64))]
#[derive(Default)]
pub struct Retired {
    /// Requests of exited workers.
    pub requests: AtomicU64,
    /// Accepted connections of exited workers.
    pub accepted: AtomicU64,
    /// Handled connections of exited workers.
    pub handled: AtomicU64,
    /// Configuration reloads done.
    pub reloads: AtomicU64,
    /// Workers respawned after dying.
    pub respawns: AtomicU64,
    /// Bumped by every cache purge or invalidation: workers recheck the
    /// entries they hold in memory when it moves.
    pub cache_epoch: AtomicU64,
    /// HTTP/2 connections of exited workers.
    pub h2_connections: AtomicU64,
    /// HTTP/2 streams of exited workers.
    pub h2_streams: AtomicU64,
}

// SAFETY: only AtomicU64 fields.
unsafe impl AtomicsOnly for Retired {}

/// The stats zone.
pub struct StatsZone {
    region: ShmRegion,
    fill_locks: std::sync::Arc<FillLocks>,
    key_uses: KeyUses,
}

/// Sum over all slots plus retired counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Requests.
    pub requests: u64,
    /// Accepted connections.
    pub accepted: u64,
    /// Handled connections.
    pub handled: u64,
    /// Active connections.
    pub active: u64,
    /// Reading.
    pub reading: u64,
    /// Writing.
    pub writing: u64,
    /// Reloads.
    pub reloads: u64,
    /// HTTP/2 connections.
    pub h2_connections: u64,
    /// HTTP/2 streams.
    pub h2_streams: u64,
    /// Respawns.
    pub respawns: u64,
}

impl StatsZone {
    /// Map a new zeroed zone.
    pub fn new() -> io::Result<StatsZone> {
        let len = std::mem::size_of::<Retired>() + MAX_SLOTS * std::mem::size_of::<WorkerStats>();
        Ok(StatsZone {
            region: ShmRegion::anonymous(len)?,
            fill_locks: FillLocks::new()?,
            key_uses: KeyUses::new()?,
        })
    }

    /// Recent uses of each cache key (`proxy_cache_min_uses`).
    pub fn key_uses(&self) -> &KeyUses {
        &self.key_uses
    }

    /// The cache fill locks shared by all workers.
    pub fn fill_locks(&self) -> &std::sync::Arc<FillLocks> {
        &self.fill_locks
    }

    /// Retired totals and global counters.
    pub fn retired(&self) -> &Retired {
        &self.region.slice::<Retired>(0, 1)[0]
    }

    /// All worker slots.
    pub fn slots(&self) -> &[WorkerStats] {
        self.region
            .slice::<WorkerStats>(std::mem::size_of::<Retired>(), MAX_SLOTS)
    }

    /// One slot.
    pub fn slot(&self, i: usize) -> &WorkerStats {
        &self.slots()[i]
    }

    /// Claim a free slot for `pid` (master only). `None` if all are taken.
    pub fn claim(&self, pid: i32, generation: u64) -> Option<usize> {
        let i = self.slots().iter().position(|s| s.pid.load(Relaxed) == 0)?;
        let s = self.slot(i);
        for c in [
            &s.requests,
            &s.accepted,
            &s.handled,
            &s.active,
            &s.reading,
            &s.writing,
            &s.h2_connections,
            &s.h2_streams,
        ] {
            c.store(0, Relaxed);
        }
        s.generation.store(generation, Relaxed);
        s.pid.store(pid as u64, Relaxed);
        Some(i)
    }

    /// Free the slot of an exited worker, folding its counters into `retired`.
    pub fn release(&self, i: usize) {
        let s = self.slot(i);
        let r = self.retired();
        r.requests.fetch_add(s.requests.swap(0, Relaxed), Relaxed);
        r.accepted.fetch_add(s.accepted.swap(0, Relaxed), Relaxed);
        r.handled.fetch_add(s.handled.swap(0, Relaxed), Relaxed);
        r.h2_connections
            .fetch_add(s.h2_connections.swap(0, Relaxed), Relaxed);
        r.h2_streams
            .fetch_add(s.h2_streams.swap(0, Relaxed), Relaxed);
        for c in [&s.active, &s.reading, &s.writing] {
            c.store(0, Relaxed);
        }
        s.pid.store(0, Relaxed);
    }

    /// Totals across live and retired workers.
    pub fn totals(&self) -> Totals {
        let r = self.retired();
        let mut t = Totals {
            requests: r.requests.load(Relaxed),
            accepted: r.accepted.load(Relaxed),
            handled: r.handled.load(Relaxed),
            reloads: r.reloads.load(Relaxed),
            respawns: r.respawns.load(Relaxed),
            h2_connections: r.h2_connections.load(Relaxed),
            h2_streams: r.h2_streams.load(Relaxed),
            ..Totals::default()
        };
        for s in self.slots().iter().filter(|s| s.pid.load(Relaxed) != 0) {
            t.requests += s.requests.load(Relaxed);
            t.accepted += s.accepted.load(Relaxed);
            t.handled += s.handled.load(Relaxed);
            t.active += s.active.load(Relaxed);
            t.reading += s.reading.load(Relaxed);
            t.writing += s.writing.load(Relaxed);
            t.h2_connections += s.h2_connections.load(Relaxed);
            t.h2_streams += s.h2_streams.load(Relaxed);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_slot_keeps_totals_monotonic() {
        let z = StatsZone::new().unwrap();
        let a = z.claim(100, 1).unwrap();
        let b = z.claim(101, 1).unwrap();
        assert_ne!(a, b);
        z.slot(a).requests.fetch_add(5, Relaxed);
        z.slot(b).requests.fetch_add(7, Relaxed);
        z.slot(a).active.fetch_add(3, Relaxed);
        assert_eq!(z.totals().requests, 12);
        assert_eq!(z.totals().active, 3);
        z.release(a);
        let t = z.totals();
        assert_eq!(t.requests, 12);
        assert_eq!(t.active, 0);
        // The freed slot is reused and starts from zero.
        let c = z.claim(102, 2).unwrap();
        assert_eq!(c, a);
        assert_eq!(z.slot(c).requests.load(Relaxed), 0);
    }

    #[test]
    fn shared_across_fork() {
        let z = StatsZone::new().unwrap();
        let i = z.claim(1, 1).unwrap();
        // SAFETY: the test harness runs other threads; the child only does
        // atomic operations on the shared mapping and `_exit`s.
        match unsafe { crate::sys::fork_unchecked() }.unwrap() {
            crate::sys::Fork::Child => {
                z.slot(i).requests.fetch_add(41, Relaxed);
                crate::sys::exit_now(0);
            }
            crate::sys::Fork::Parent(pid) => {
                let mut status = 0;
                // Wait for exactly this child.
                while nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).is_err() {
                    status += 1;
                    assert!(status < 100);
                }
                assert_eq!(z.slot(i).requests.load(Relaxed), 41);
            }
        }
    }
}
