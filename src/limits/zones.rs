//! The zones of one configuration, as the master opens them and workers use
//! them: each [`LimitZone`] is a config zone plus its mapped file, and knows
//! how to run its kind's algorithm on a key.
//!
//! Opening (master only, before forking and on every reload), per zone:
//! - the running set has it with the same size, kind and slot layout: the
//!   mapping is kept (a SIGHUP loses nothing); changed parameters that keep
//!   the layout (a new `rate=` or `quota=`) are recorded in the header:
//!   "migrated in place";
//! - else the file is opened: a valid file of the same shape is used as it
//!   is (restart, `kill -9`); one of another size is *migrated* (every live
//!   key rehashed into the new table); one of another layout (a new window,
//!   precision or period) is *rebuilt* empty; a corrupt one is set aside.
//!
//! Every outcome is one error-log line naming the zone.

use super::cluster::{self as cl, ClusterRt, Gate};
use super::gcra::{Gcra, Verdict};
use super::quota::Quota;
use super::table::{Expiry, KeyHash, Table, SLOT_HEADER_WORDS};
use super::window::Window;
use crate::config::{ClusterFailure, Config, LimitZoneConf, ZoneKind};
use crate::shm::zone::{self, Opened, ZoneMap, ZoneSpec};
use crate::util::hash::hash_words;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Zone counters kept in the header (`status;` reports them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Requests admitted at once.
    Allowed = 0,
    /// Requests admitted after a delay.
    Delayed = 1,
    /// Requests refused.
    Rejected = 2,
    /// Requests that would have been refused (`limit_req_dry_run on`).
    DryRun = 3,
    /// Live keys discarded to make room.
    Evictions = 4,
    /// Requests counted (`count`).
    Counted = 5,
    /// Bytes accounted (`limit_bytes`).
    Bytes = 6,
}

/// Number of [`Metric`]s.
pub const METRICS: usize = 7;

impl Metric {
    /// Every metric, in index order.
    pub const ALL: [Metric; METRICS] = [
        Metric::Allowed,
        Metric::Delayed,
        Metric::Rejected,
        Metric::DryRun,
        Metric::Evictions,
        Metric::Counted,
        Metric::Bytes,
    ];

    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Allowed => "allowed",
            Metric::Delayed => "delayed",
            Metric::Rejected => "rejected",
            Metric::DryRun => "dry_run_rejected",
            Metric::Evictions => "evictions",
            Metric::Counted => "counted",
            Metric::Bytes => "bytes",
        }
    }
}

/// A point-in-time view of a zone for `status;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneStats {
    /// Zone name.
    pub name: String,
    /// Declaring directive.
    pub kind: &'static str,
    /// Counters, indexed by [`Metric`].
    pub metrics: [u64; METRICS],
    /// Keys whose state still matters.
    pub keys: u64,
    /// Capacity in keys.
    pub slots: u64,
}

/// One zone: its configuration and its mapped file.
pub struct LimitZone {
    /// The zone as configured.
    pub conf: LimitZoneConf,
    map: Arc<ZoneMap>,
    seed: (u64, u64),
    slot_words: usize,
    expiry: Expiry,
    /// `Some` for a `cluster=on` zone under a `cluster` directive.
    pub cluster: Option<ClusterRt>,
}

fn kind_id(k: &ZoneKind) -> u64 {
    match k {
        ZoneKind::Rate { .. } => 1,
        ZoneKind::Count { .. } => 2,
        ZoneKind::Bytes { .. } => 3,
    }
}

/// Slot size in words for a zone (`cluster`: a `cluster=on` zone).
pub fn slot_words(k: &ZoneKind, cluster: bool) -> usize {
    SLOT_HEADER_WORDS + k.payload_words(cluster) as usize
}

/// Digest of what shapes a slot's payload.
fn layout(k: &ZoneKind, cluster: bool) -> u64 {
    let words = slot_words(k, cluster) as u64;
    let c = cluster as u64;
    match *k {
        ZoneKind::Rate { .. } if cluster => hash_words(&[1, words, c]),
        ZoneKind::Rate { .. } => hash_words(&[1, words]),
        ZoneKind::Count { precision_ms, .. } if cluster => hash_words(&[2, words, precision_ms, c]),
        ZoneKind::Count { precision_ms, .. } => hash_words(&[2, words, precision_ms]),
        ZoneKind::Bytes { per_ms, .. } if cluster => hash_words(&[3, words, per_ms, c]),
        ZoneKind::Bytes { per_ms, .. } => hash_words(&[3, words, per_ms]),
    }
}

/// The key-hash seed of a cluster zone: derived from its name, so that
/// every node hashes a key to the same Redis key.
pub fn cluster_seed(name: &str) -> (u64, u64) {
    let h = crate::util::hash::siphash128(0x736c_7569_6365, 0x0063_6c75_7374_6572, name.as_bytes());
    ((h >> 64) as u64, h as u64)
}

/// Digest of every parameter.
fn fingerprint(k: &ZoneKind, cluster: bool) -> u64 {
    let params = match *k {
        ZoneKind::Rate { interval_us } => [interval_us, 0],
        ZoneKind::Count {
            window_ms,
            precision_ms,
        } => [window_ms, precision_ms],
        ZoneKind::Bytes {
            quota_bytes,
            per_ms,
        } => [quota_bytes, per_ms],
    };
    hash_words(&[kind_id(k), layout(k, cluster), params[0], params[1]])
}

fn expiry(k: &ZoneKind) -> Expiry {
    match *k {
        ZoneKind::Rate { .. } => Expiry::TatPassed,
        ZoneKind::Count { window_ms, .. } => Expiry::IdleMs(window_ms),
        ZoneKind::Bytes { per_ms, .. } => Expiry::IdleMs(per_ms),
    }
}

/// Wall-clock milliseconds (the master's clock for migrations).
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl LimitZone {
    fn new(cfg: &Config, conf: &LimitZoneConf, map: Arc<ZoneMap>) -> LimitZone {
        LimitZone {
            seed: map.header().seed(),
            conf: conf.clone(),
            slot_words: slot_words(&conf.kind, conf.cluster),
            expiry: expiry(&conf.kind),
            cluster: ClusterRt::of(cfg.http.cluster.as_ref(), conf.cluster),
            map,
        }
    }

    /// The mapped file's header (the sync thread keeps its state there).
    pub fn header(&self) -> &crate::shm::zone::ZoneHeader {
        self.map.header()
    }

    /// How a cluster zone decides now; `None` for a local zone.
    pub fn gate(&self, now_ms: u64) -> Option<Gate> {
        Some(cl::gate(self.map.header(), self.cluster.as_ref()?, now_ms))
    }

    /// Zone name.
    pub fn name(&self) -> &str {
        &self.conf.name
    }

    /// The table over the zone body.
    pub fn table(&self) -> Table<'_> {
        Table::new(self.map.body(), self.slot_words, self.expiry)
    }

    /// The table key of `key` bytes.
    pub fn key_hash(&self, key: &[u8]) -> KeyHash {
        super::key::hash(self.seed, key)
    }

    /// A header counter.
    pub fn metric(&self, m: Metric) -> &AtomicU64 {
        &self.map.header().metrics[m as usize]
    }

    fn slot(&self, k: KeyHash, now_ms: u64) -> Option<usize> {
        let c = self.table().find_or_claim(k, now_ms)?;
        if c.evicted {
            self.metric(Metric::Evictions).fetch_add(1, Relaxed);
        }
        Some(c.slot)
    }

    /// `limit_req`: decide for key `k` at `now_us`. `None` (not limited)
    /// when the table could not give the key a slot, or a cluster zone's
    /// failure mode is `open`. The slot index and the limit as applied (a
    /// cluster node's share of `g`) come back for [`LimitZone::rate_undo`].
    pub fn rate_check(&self, k: KeyHash, g: &Gcra, now_us: u64) -> Option<(Verdict, usize, Gcra)> {
        let now_ms = now_us / 1000;
        let s = self.slot(k, now_ms)?;
        let p = self.table().payload(s);
        let Some(gate) = self.gate(now_ms) else {
            return Some((g.check(&p[cl::RATE_TAT], now_us), s, *g));
        };
        p[cl::RATE_DEMAND].fetch_add(1, Relaxed);
        let share = match gate {
            Gate::Synced { nodes } => match p[cl::RATE_SHARE].load(Relaxed) {
                0 => cl::PPM / nodes,
                v => v,
            },
            Gate::Failed { mode, nodes } => match mode {
                ClusterFailure::Open => return None,
                ClusterFailure::Closed => return Some((refused(), s, *g)),
                ClusterFailure::Local => cl::PPM / nodes,
            },
        };
        let mine = g.share(share);
        Some((mine.check(&p[cl::RATE_TAT], now_us), s, mine))
    }

    /// Take back a request admitted by [`LimitZone::rate_check`].
    pub fn rate_undo(&self, slot: usize, g: &Gcra, now_us: u64) {
        if let Some(cell) = self.table().payload(slot).first() {
            g.undo(cell, now_us);
        }
    }

    /// The window of a `count_zone`.
    pub fn window(&self) -> Option<Window> {
        match self.conf.kind {
            ZoneKind::Count {
                window_ms,
                precision_ms,
            } => Some(Window::new(window_ms, precision_ms)),
            _ => None,
        }
    }

    /// `count`: one more request for `k`.
    pub fn count_add(&self, k: KeyHash, now_ms: u64) {
        if let (Some(w), Some(s)) = (self.window(), self.slot(k, now_ms)) {
            let p = self.table().payload(s);
            let ring = w.buckets as usize;
            w.add(&p[..ring], now_ms, 1);
            if self.cluster.is_some() {
                p[ring + cl::COUNT_HITS].fetch_add(1, Relaxed);
            }
        }
    }

    /// `count_report`: requests of `k` in the window ending at `now_ms`.
    /// A synced cluster zone reports the global count (all nodes, as of
    /// the last sync, plus this node's requests since); a failed one, this
    /// node's own. A cluster zone gives an unseen key a slot, so that the
    /// sync thread fetches its global count.
    pub fn count_sum(&self, k: KeyHash, now_ms: u64) -> u64 {
        let Some(w) = self.window() else {
            return 0;
        };
        let slot = match self.cluster {
            Some(_) => self.slot(k, now_ms),
            None => self.table().find(k, now_ms),
        };
        let Some(s) = slot else {
            return 0;
        };
        let p = self.table().payload(s);
        let ring = w.buckets as usize;
        if let Some(Gate::Synced { .. }) = self.gate(now_ms) {
            let hits = p[ring + cl::COUNT_HITS].load(Relaxed);
            if let Some(g) = cl::global_count(p[ring + cl::COUNT_GLOBAL].load(Relaxed), hits) {
                return g;
            }
        }
        w.sum(&p[..ring], now_ms)
    }

    /// The quota of a `limit_bytes_zone`.
    pub fn quota(&self) -> Option<Quota> {
        match self.conf.kind {
            ZoneKind::Bytes {
                quota_bytes,
                per_ms,
            } => Some(Quota {
                quota_bytes,
                per_ms,
            }),
            _ => None,
        }
    }

    /// `limit_bytes` before the response: the key's slot, and `Some(ms
    /// until the period rolls)` when it is over quota.
    pub fn quota_check(&self, k: KeyHash, now_ms: u64) -> Option<(usize, Option<u64>)> {
        let q = self.quota()?;
        let s = self.slot(k, now_ms)?;
        let p = self.table().payload(s);
        let Some(gate) = self.gate(now_ms) else {
            return Some((s, q.over(&p[0], now_ms)));
        };
        let used = q.used(&p[0], now_ms);
        let limit = match gate {
            Gate::Synced { .. } => {
                let remote = q.used(&p[cl::BYTES_REMOTE], now_ms);
                q.quota_bytes.saturating_sub(remote)
            }
            Gate::Failed { mode, nodes } => match mode {
                ClusterFailure::Open => u64::MAX,
                ClusterFailure::Closed => 0,
                ClusterFailure::Local => q.quota_bytes / nodes,
            },
        };
        Some((s, (used >= limit).then(|| q.until_next(now_ms))))
    }

    /// `limit_bytes` after the response: `bytes` more for the key in `slot`.
    pub fn quota_add(&self, slot: usize, now_ms: u64, bytes: u64) {
        if let (Some(q), Some(cell)) = (self.quota(), self.table().payload(slot).first()) {
            q.add(cell, now_ms, bytes);
        }
    }

    /// Counters and key usage now.
    pub fn stats(&self, now_ms: u64) -> ZoneStats {
        let t = self.table();
        let mut metrics = [0; METRICS];
        for m in Metric::ALL {
            metrics[m as usize] = self.metric(m).load(Relaxed);
        }
        ZoneStats {
            name: self.conf.name.clone(),
            kind: self.conf.kind.directive(),
            metrics,
            keys: t.live_keys(now_ms),
            slots: t.slots() as u64,
        }
    }
}

/// The zones of one configuration, indexed like `cfg.http.limits.zones`.
#[derive(Default)]
pub struct ZoneSet {
    zones: Vec<Arc<LimitZone>>,
}

impl ZoneSet {
    /// No zones.
    pub fn empty() -> ZoneSet {
        ZoneSet::default()
    }

    /// Zone `i` of the configuration.
    pub fn get(&self, i: usize) -> Option<&LimitZone> {
        self.zones.get(i).map(|z| &**z)
    }

    /// All zones.
    pub fn zones(&self) -> &[Arc<LimitZone>] {
        &self.zones
    }

    /// Open (or keep from `previous`) every zone `cfg` declares, in
    /// `cfg.state_dir`. Master only: creates, migrates and renames files.
    pub fn open(cfg: &Config, previous: Option<&ZoneSet>) -> io::Result<ZoneSet> {
        let mut zones = Vec::new();
        for conf in &cfg.http.limits.zones {
            let z = open_one(cfg, conf, previous).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("zone \"{}\" in {}: {e}", conf.name, cfg.state_dir.display()),
                )
            })?;
            zones.push(Arc::new(z));
        }
        Ok(ZoneSet { zones })
    }
}

/// The verdict of a cluster zone whose failure mode is `closed`: refused,
/// to be retried in a second.
fn refused() -> Verdict {
    Verdict::Reject {
        retry_us: 1_000_000,
        reset_us: 1_000_000,
    }
}

fn open_one(
    cfg: &Config,
    conf: &LimitZoneConf,
    previous: Option<&ZoneSet>,
) -> io::Result<LimitZone> {
    let name = &conf.name;
    let spec = ZoneSpec {
        dir: &cfg.state_dir,
        name,
        zone_bytes: conf.size_bytes,
        kind: kind_id(&conf.kind),
        slot_words: slot_words(&conf.kind, conf.cluster) as u64,
        layout: layout(&conf.kind, conf.cluster),
        fingerprint: fingerprint(&conf.kind, conf.cluster),
        seed: conf.cluster.then(|| cluster_seed(name)),
    };
    let same_shape = |m: &ZoneMap| {
        let h = m.header();
        m.len() as u64 == spec.zone_bytes
            && h.kind.load(Relaxed) == spec.kind
            && h.slot_words.load(Relaxed) == spec.slot_words
            && h.layout.load(Relaxed) == spec.layout
    };
    let refresh = |m: &ZoneMap, how: &str| {
        if m.header().fingerprint.load(Relaxed) != spec.fingerprint {
            m.set_fingerprint(spec.fingerprint);
            log::warn!(
                "zone \"{name}\": parameters changed, same size and layout: migrated in place, state kept ({how})"
            );
        }
    };
    if let Some(prev) = previous.and_then(|p| p.zones.iter().find(|z| z.conf.name == *name)) {
        if same_shape(&prev.map) {
            refresh(&prev.map, "reload");
            return Ok(LimitZone::new(cfg, conf, prev.map.clone()));
        }
    }
    let now_ms = wall_ms();
    let map = match zone::open(&spec)? {
        Opened::Created(m) => {
            let z = LimitZone::new(cfg, conf, Arc::new(m));
            log::info!(
                "zone \"{name}\": created {} ({} keys)",
                z.map.path().display(),
                z.table().slots()
            );
            return Ok(z);
        }
        Opened::Existing(m) => {
            refresh(&m, "file");
            let z = LimitZone::new(cfg, conf, Arc::new(m));
            log::info!(
                "zone \"{name}\": using {} ({} of {} keys in use)",
                z.map.path().display(),
                z.table().live_keys(now_ms),
                z.table().slots()
            );
            return Ok(z);
        }
        Opened::SetAside {
            new,
            moved_to,
            reason,
        } => {
            log::error!(
                "zone \"{name}\": {} cannot be trusted ({reason}); set aside as {}, starting empty",
                zone::zone_path(&cfg.state_dir, name).display(),
                moved_to.display()
            );
            new
        }
        Opened::Changed { old, mut new } => {
            let oh = old.header();
            let old_words = oh.slot_words.load(Relaxed);
            let layout_same = oh.kind.load(Relaxed) == spec.kind
                && old_words == spec.slot_words
                && oh.layout.load(Relaxed) == spec.layout;
            if layout_same {
                let ex = expiry(&conf.kind);
                let from = Table::new(old.body(), old_words as usize, ex);
                let to = Table::new(new.body(), spec.slot_words as usize, ex);
                let (copied, evicted) = to.copy_from(&from, now_ms);
                for (d, s) in new.header().metrics.iter().zip(&oh.metrics) {
                    d.store(s.load(Relaxed), Relaxed);
                }
                new.header().metrics[Metric::Evictions as usize].fetch_add(evicted, Relaxed);
                log::warn!(
                    "zone \"{name}\": size changed from {} to {} bytes: migrated {copied} keys ({evicted} evicted)",
                    old.len(),
                    new.len()
                );
            } else {
                log::warn!(
                    "zone \"{name}\": kind or layout changed (window, precision or period): rebuilt empty"
                );
            }
            new.commit()?;
            new
        }
    };
    Ok(LimitZone::new(cfg, conf, Arc::new(map)))
}
