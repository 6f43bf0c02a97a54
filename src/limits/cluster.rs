//! The node side of cluster mode: what a `cluster=on` zone keeps beyond its
//! own algorithm, and how a worker decides with it. Workers never talk to
//! Redis: the sync thread (`crate::cluster`) reads the counters below from
//! shared memory, pushes their diffs, and writes back what it pulled.
//!
//! Per key, after the algorithm's own cells (see [`ZoneKind::payload_words`]):
//!
//! | kind | words |
//! |---|---|
//! | rate | `demand` (arrivals, monotonic), `share` (this node's share of the rate, ppm; 0 = not known), `demand_pushed` |
//! | count | `hits` (monotonic), `global` ((G + 1) << 32 \| hits at that sync, 0 = never synced), `hits_pushed` |
//! | bytes | `pushed` (this period's bytes already pushed), `remote` (other nodes' bytes this period) |
//!
//! In the zone header, metric words 8-11 hold the zone's sync state:
//! the time of the last successful sync, the live nodes it saw, syncs and
//! failed syncs. A zone whose last sync is older than
//! [`ClusterConf::stale_ms`] is *failed*, and its failure mode applies,
//! whether Redis is down, slow, or the sync thread is gone.
//!
//! [`ZoneKind::payload_words`]: crate::config::ZoneKind::payload_words
//! [`ClusterConf::stale_ms`]: crate::config::ClusterConf::stale_ms

use crate::config::{ClusterConf, ClusterFailure};
use crate::shm::zone::ZoneHeader;
use std::sync::atomic::Ordering::Relaxed;

/// Header metric word: unix ms of the last successful sync (0 = never).
pub const H_LAST_OK_MS: usize = 8;
/// Header metric word: live nodes at the last sync.
pub const H_NODES: usize = 9;
/// Header metric word: successful syncs.
pub const H_SYNCS: usize = 10;
/// Header metric word: failed syncs.
pub const H_FAILURES: usize = 11;

/// Millionths: shares are in ppm.
pub const PPM: u64 = 1_000_000;

/// Rate payload: the GCRA cell.
pub const RATE_TAT: usize = 0;
/// Rate payload: arrivals (admitted or not), monotonic.
pub const RATE_DEMAND: usize = 1;
/// Rate payload: this node's share of the rate in ppm; 0 = not known.
pub const RATE_SHARE: usize = 2;
/// Rate payload: `demand` as of the last push.
pub const RATE_DEMAND_PUSHED: usize = 3;

/// Count payload (after the ring): requests counted here, monotonic.
pub const COUNT_HITS: usize = 0;
/// Count payload (after the ring): the global count at the last sync.
pub const COUNT_GLOBAL: usize = 1;
/// Count payload (after the ring): `hits` as of the last push.
pub const COUNT_HITS_PUSHED: usize = 2;

/// Bytes payload (after the cell): bytes of this period already pushed.
pub const BYTES_PUSHED: usize = 1;
/// Bytes payload (after the cell): the other nodes' bytes this period.
pub const BYTES_REMOTE: usize = 2;

/// A global zone's cluster settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterRt {
    /// What applies while the zone is not synced.
    pub failure: ClusterFailure,
    /// Age past which the last sync no longer counts.
    pub stale_ms: u64,
}

impl ClusterRt {
    /// The settings of a zone declared with `cluster=on` under `c`.
    pub fn of(c: Option<&ClusterConf>, on: bool) -> Option<ClusterRt> {
        c.filter(|_| on).map(|c| ClusterRt {
            failure: c.failure,
            stale_ms: c.stale_ms(),
        })
    }
}

/// How a global zone decides right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Synced recently with `nodes` live nodes: global decisions.
    Synced {
        /// Live nodes (at least 1).
        nodes: u64,
    },
    /// Not synced: the failure mode, and the last known node count.
    Failed {
        /// The configured failure mode.
        mode: ClusterFailure,
        /// Nodes at the last successful sync (at least 1).
        nodes: u64,
    },
}

/// The gate of a zone whose header is `h`, at `now_ms`.
pub fn gate(h: &ZoneHeader, rt: &ClusterRt, now_ms: u64) -> Gate {
    let nodes = h.metrics[H_NODES].load(Relaxed).max(1);
    let last = h.metrics[H_LAST_OK_MS].load(Relaxed);
    if last > 0 && now_ms.saturating_sub(last) <= rt.stale_ms {
        Gate::Synced { nodes }
    } else {
        Gate::Failed {
            mode: rt.failure,
            nodes,
        }
    }
}

/// The `global` word of a count key: the global count `g` as of a sync at
/// which this node's `hits` counter read `hits`.
pub fn pack_global(g: u64, hits: u64) -> u64 {
    (g.min(u32::MAX as u64 - 1) + 1) << 32 | (hits & u32::MAX as u64)
}

/// The global count now, from the `global` word and the current `hits`;
/// `None` if the key was never synced.
pub fn global_count(word: u64, hits: u64) -> Option<u64> {
    if word == 0 {
        return None;
    }
    let g = (word >> 32) - 1;
    let since = (hits as u32).wrapping_sub(word as u32) as u64;
    Some(g + since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_count_adds_local_hits_since_the_sync() {
        assert_eq!(global_count(0, 5), None);
        let w = pack_global(30, 7);
        assert_eq!(global_count(w, 7), Some(30));
        assert_eq!(global_count(w, 8), Some(31));
        // The local counter wraps past 32 bits: still the difference.
        let w = pack_global(100, u32::MAX as u64);
        assert_eq!(global_count(w, u32::MAX as u64 + 3), Some(103));
        assert_eq!(global_count(pack_global(0, 0), 0), Some(0));
    }
}
