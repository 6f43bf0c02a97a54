//! Cluster mode: the sync thread that makes `cluster=on` zones global over
//! a real Redis — the "main server" of the original limit server, to which
//! every node sent its diffs.
//!
//! Local first: workers decide from shared memory only and never wait for
//! Redis (see `limits::cluster` for what they keep). One thread per node —
//! started by worker 0, holding `STATE_DIR/cluster.lock` so that a reload's
//! old and new generations never both push — wakes every `sync=` interval
//! and, in one Lua script call (`sync.lua`):
//! - registers the node in a sorted set of live nodes (their count);
//! - rate zones: pushes each active key's demand (arrivals per second,
//!   smoothed) and gets the sum over all nodes; the node's share of the
//!   rate is its share of the demand (TokenGen's capacity estimator);
//! - count zones: pushes each key's new requests into time buckets and gets
//!   the count of all nodes over the window;
//! - byte quotas: pushes each key's new bytes for the period, gets the total;
//! - waiting rooms: pushes the slots taken here (moving the global next
//!   slot) and this node's active sessions, gets the next slot and the
//!   other nodes' sessions.
//!
//! Idle keys cost nothing: a key is pushed only while it has new traffic
//! (count and byte keys also while their window or period lasts, so their
//! global totals stay fresh). If Redis is down or slower than the interval,
//! the zones' sync time goes stale and their failure mode applies; a log
//! line says so, another when syncing resumes, and the zone headers count
//! failed syncs (`status;` shows them).

use crate::config::{ClusterConf, ZoneKind};
use crate::limits::cluster::{self as cl};
use crate::limits::table::KeyHash;
use crate::limits::LimitZone;
use crate::shm::zone::ZoneHeader;
use crate::zones::Zones;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The script run at every sync.
const SCRIPT: &str = include_str!("sync.lua");
/// Most operations in one script call.
const CHUNK: usize = 512;
/// The sorted set of live nodes.
const NODES_KEY: &str = "sluice:nodes";
/// Weight of the newest interval in a key's smoothed demand.
const ALPHA: f64 = 0.5;
/// Syncs without traffic after which a rate key is forgotten.
const IDLE_SYNCS: u32 = 3;

/// Start the sync thread of this node if `zones` has a global zone. It
/// runs until `stop` is set (a final sync pushes what is left) or the
/// process exits.
pub fn start(
    conf: &ClusterConf,
    state_dir: PathBuf,
    zones: Arc<Zones>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    if !zones.has_cluster() {
        return Ok(());
    }
    let client = redis::Client::open(conf.url.as_str())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let node = conf.node.clone().unwrap_or_else(default_node);
    let mut s = Syncer {
        conf: conf.clone(),
        node,
        zones,
        client,
        con: None,
        script: redis::Script::new(SCRIPT),
        demand: HashMap::new(),
        failing: None,
        synced_once: false,
        shown_url: shown_url(&conf.url),
    };
    std::thread::Builder::new()
        .name("sluice-cluster".into())
        .spawn(move || s.run(&state_dir.join("cluster.lock"), &stop))?;
    Ok(())
}

/// `url` with its password (if any) replaced by `***`.
fn shown_url(url: &str) -> String {
    let Some(rest) = url.strip_prefix("redis://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((auth, host)) => {
            let user = auth.split_once(':').map_or("", |(u, _)| u);
            format!("redis://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

/// `HOSTNAME:MASTER_PID`: unique per running node.
fn default_node() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    format!(
        "{}:{}",
        if host.is_empty() { "sluice" } else { host },
        crate::sys::getppid()
    )
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A key's smoothed demand, in this thread's memory.
struct Demand {
    /// Milli-requests per second.
    mrps: f64,
    /// When it was last pushed.
    at_ms: u64,
    /// Syncs in a row without new arrivals.
    idle: u32,
    /// Its Redis key.
    key: String,
}

/// What one operation's reply is written back to.
enum Target {
    Rate {
        zone: usize,
        slot: usize,
        key: KeyHash,
        demand: u64,
        mine: u64,
    },
    Count {
        zone: usize,
        slot: usize,
        key: KeyHash,
        hits: u64,
    },
    Bytes {
        zone: usize,
        slot: usize,
        key: KeyHash,
        used: u64,
    },
    Room {
        room: usize,
        taken: u64,
    },
    /// A rate key this node no longer pushes: its demand is removed.
    Forget,
}

/// The operation that takes this node's demand for `key` out of the sum.
fn forget(key: String) -> Op {
    Op {
        key,
        args: vec!["r".into(), "0".into()],
        target: Target::Forget,
    }
}

/// One operation: its key, arguments and target.
struct Op {
    key: String,
    args: Vec<String>,
    target: Target,
}

struct Syncer {
    conf: ClusterConf,
    node: String,
    zones: Arc<Zones>,
    client: redis::Client,
    con: Option<redis::Connection>,
    script: redis::Script,
    demand: HashMap<(usize, u64, u64), Demand>,
    /// Since when syncs fail, and how many did.
    failing: Option<(u64, u64)>,
    /// Whether a sync has succeeded yet (the first one is logged).
    synced_once: bool,
    /// The Redis URL for logs, without its password.
    shown_url: String,
}

impl Syncer {
    fn run(&mut self, lock_path: &std::path::Path, stop: &AtomicBool) {
        let interval = Duration::from_millis(self.conf.sync_ms);
        let mut lock: Option<nix::fcntl::Flock<File>> = None;
        let mut next = Instant::now();
        loop {
            let stopping = stop.load(Relaxed);
            if lock.is_none() {
                lock = take_lock(lock_path);
            }
            if lock.is_some() {
                self.sync_once();
            }
            if stopping {
                if lock.is_some() {
                    self.forget_all();
                    self.leave();
                }
                return;
            }
            next += interval;
            let now = Instant::now();
            if next < now {
                next = now;
            }
            while Instant::now() < next && !stop.load(Relaxed) {
                std::thread::sleep((next - Instant::now()).min(Duration::from_millis(20)));
            }
        }
    }

    /// Leave the cluster: this node no longer counts as live.
    fn leave(&mut self) {
        if let Some(con) = self.con.as_mut() {
            let _: redis::RedisResult<i64> =
                redis::cmd("ZREM").arg(NODES_KEY).arg(&self.node).query(con);
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis((self.conf.sync_ms * 2).clamp(100, 1000))
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let t = self.timeout();
        let c = self.client.get_connection_with_timeout(t)?;
        c.set_read_timeout(Some(t))?;
        c.set_write_timeout(Some(t))?;
        Ok(c)
    }

    /// One sync: push, pull, write back; on failure count and log it.
    fn sync_once(&mut self) {
        let now_ms = wall_ms();
        let ops = self.plan(now_ms);
        match self.exchange(now_ms, &ops) {
            Ok(nodes) => {
                let done = wall_ms();
                self.mark(|h| {
                    h.metrics[cl::H_LAST_OK_MS].store(done, Relaxed);
                    h.metrics[cl::H_NODES].store(nodes.max(1), Relaxed);
                    h.metrics[cl::H_SYNCS].fetch_add(1, Relaxed);
                });
                if let Some((since, n)) = self.failing.take() {
                    log::warn!(
                        "cluster: synced with {} again after {n} failed syncs ({} ms); {nodes} nodes",
                        self.shown_url,
                        done.saturating_sub(since)
                    );
                } else if !self.synced_once {
                    log::info!(
                        "cluster: node \"{}\" syncing with {} every {} ms; {nodes} nodes",
                        self.node,
                        self.shown_url,
                        self.conf.sync_ms
                    );
                }
                self.synced_once = true;
            }
            Err(e) => {
                self.con = None;
                self.drop_rate_diffs(&ops);
                self.mark(|h| {
                    h.metrics[cl::H_FAILURES].fetch_add(1, Relaxed);
                });
                match &mut self.failing {
                    Some((_, n)) => *n += 1,
                    None => {
                        log::error!(
                            "cluster: cannot sync with {}: {e}; failure mode \"{}\" applies to global zones after {} ms without a sync",
                            self.shown_url,
                            self.conf.failure.as_str(),
                            self.conf.stale_ms()
                        );
                        self.failing = Some((now_ms, 1));
                    }
                }
            }
        }
    }

    /// After a failed sync: rate keys' arrivals are only an estimate of the
    /// demand, already taken into the smoothed rate; marking them pushed
    /// keeps an outage's backlog from counting again (a spike in this
    /// node's share) when Redis is back. Counts and bytes are kept, to be
    /// pushed then.
    fn drop_rate_diffs(&self, ops: &[Op]) {
        for op in ops {
            if let Target::Rate {
                zone,
                slot,
                key,
                demand,
                ..
            } = op.target
            {
                let Some(z) = self.zones.limits.get(zone) else {
                    continue;
                };
                let t = z.table();
                if t.holds(slot, key) {
                    t.payload(slot)[cl::RATE_DEMAND_PUSHED].store(demand, Relaxed);
                }
            }
        }
    }

    /// Apply `f` to the header of every global zone and room.
    fn mark(&self, f: impl Fn(&ZoneHeader)) {
        for z in self
            .zones
            .limits
            .zones()
            .iter()
            .filter(|z| z.cluster.is_some())
        {
            f(z.header());
        }
        for r in self
            .zones
            .rooms
            .rooms()
            .iter()
            .filter(|r| r.cluster.is_some())
        {
            f(r.header());
        }
    }

    /// The operations of this sync.
    fn plan(&mut self, now_ms: u64) -> Vec<Op> {
        let zones = self.zones.clone();
        let mut ops = Vec::new();
        for (zi, z) in zones.limits.zones().iter().enumerate() {
            if z.cluster.is_none() {
                continue;
            }
            match z.conf.kind {
                ZoneKind::Rate { .. } => self.plan_rate(zi, z, now_ms, &mut ops),
                ZoneKind::Count {
                    window_ms,
                    precision_ms,
                } => {
                    let width = precision_ms.max(self.conf.sync_ms);
                    let buckets = window_ms.div_ceil(width);
                    plan_count(zi, z, now_ms, width, buckets, &mut ops);
                }
                ZoneKind::Bytes { .. } => plan_bytes(zi, z, now_ms, &mut ops),
            }
        }
        for (ri, r) in zones.rooms.rooms().iter().enumerate() {
            if r.cluster.is_none() {
                continue;
            }
            let Some(room) = r.room(now_ms) else { continue };
            let (n, taken) = room.taken_since_push();
            let p = r.params();
            ops.push(Op {
                key: format!("sluice:w:{}", r.conf.name),
                args: vec![
                    "w".into(),
                    n.to_string(),
                    p.interval_us.to_string(),
                    (self.conf.sync_ms * 1000).to_string(),
                    room.local_active(now_ms).to_string(),
                    (now_ms * 1000).to_string(),
                ],
                target: Target::Room { room: ri, taken },
            });
        }
        ops
    }

    fn plan_rate(&mut self, zi: usize, z: &LimitZone, now_ms: u64, ops: &mut Vec<Op>) {
        let t = z.table();
        let sync_s = self.conf.sync_ms as f64 / 1000.0;
        for (slot, key, _) in t.keys(now_ms) {
            let p = t.payload(slot);
            let demand = p[cl::RATE_DEMAND].load(Relaxed);
            let pushed = p[cl::RATE_DEMAND_PUSHED].load(Relaxed);
            let new = fresh_diff(demand, pushed);
            let id = (zi, key.tag, key.check);
            let forget_share = || {
                if p[cl::RATE_SHARE].load(Relaxed) != 0 && t.holds(slot, key) {
                    p[cl::RATE_SHARE].store(0, Relaxed);
                }
            };
            let Some(d) = self.demand.get_mut(&id) else {
                if new == 0 {
                    forget_share();
                    continue;
                }
                self.demand.insert(
                    id,
                    Demand {
                        mrps: -1.0,
                        at_ms: now_ms.saturating_sub(self.conf.sync_ms),
                        idle: 0,
                        key: format!(
                            "sluice:r:{}:{:016x}{:016x}",
                            z.conf.name, key.tag, key.check
                        ),
                    },
                );
                self.push_rate(id, slot, key, new, demand, now_ms, ops);
                continue;
            };
            // No arrival where several were expected: the traffic moved or
            // stopped, so this node's demand leaves the global sum now (a
            // slow key only after a few quiet syncs).
            let expected = d.mrps / 1000.0 * sync_s;
            if new == 0 && (d.idle + 1 >= IDLE_SYNCS || expected >= 3.0) {
                forget_share();
                if let Some(d) = self.demand.remove(&id) {
                    ops.push(forget(d.key));
                }
                continue;
            }
            self.push_rate(id, slot, key, new, demand, now_ms, ops);
        }
        // Keys that left the table leave the global sums too.
        let live: std::collections::HashSet<(u64, u64)> =
            t.keys(now_ms).map(|(_, k, _)| (k.tag, k.check)).collect();
        let gone: Vec<_> = self
            .demand
            .keys()
            .filter(|(z, tag, check)| *z == zi && !live.contains(&(*tag, *check)))
            .copied()
            .collect();
        for id in gone {
            if let Some(d) = self.demand.remove(&id) {
                ops.push(forget(d.key));
            }
        }
    }

    /// Smooth key `id`'s demand with `new` arrivals and queue its push.
    #[allow(clippy::too_many_arguments)]
    fn push_rate(
        &mut self,
        id: (usize, u64, u64),
        slot: usize,
        key: KeyHash,
        new: u64,
        demand: u64,
        now_ms: u64,
        ops: &mut Vec<Op>,
    ) {
        let Some(d) = self.demand.get_mut(&id) else {
            return;
        };
        let elapsed = now_ms.saturating_sub(d.at_ms).max(1) as f64;
        let rate = new as f64 * 1_000_000.0 / elapsed;
        d.mrps = if d.mrps < 0.0 {
            rate
        } else {
            ALPHA * rate + (1.0 - ALPHA) * d.mrps
        };
        d.at_ms = now_ms;
        d.idle = if new == 0 { d.idle + 1 } else { 0 };
        let mine = d.mrps.round().max(1.0) as u64;
        ops.push(Op {
            key: d.key.clone(),
            args: vec!["r".into(), mine.to_string()],
            target: Target::Rate {
                zone: id.0,
                slot,
                key,
                demand,
                mine,
            },
        });
    }

    /// Take every demand of this node out of the global sums (leaving).
    fn forget_all(&mut self) {
        let ops: Vec<Op> = self.demand.drain().map(|(_, d)| forget(d.key)).collect();
        if !ops.is_empty() {
            let _ = self.exchange(wall_ms(), &ops);
        }
    }

    /// Run `ops` (in chunks) and write the replies back. Returns the number
    /// of live nodes.
    fn exchange(&mut self, now_ms: u64, ops: &[Op]) -> redis::RedisResult<u64> {
        let ttl = (self.conf.stale_ms() * 2).max(1000);
        let mut nodes = 0;
        let mut chunks: Vec<&[Op]> = ops.chunks(CHUNK).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let mut con = match self.con.take() {
            Some(c) => c,
            None => self.connect()?,
        };
        for chunk in chunks {
            let mut inv = self.script.prepare_invoke();
            inv.key(NODES_KEY).arg(now_ms).arg(&self.node).arg(ttl);
            for op in chunk {
                inv.key(&op.key);
                for a in &op.args {
                    inv.arg(a);
                }
            }
            let reply: redis::Value = inv.invoke(&mut con)?;
            let items = match reply {
                redis::Value::Array(v) if v.len() == chunk.len() + 1 => v,
                other => {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::UnexpectedReturnType,
                        "unexpected sync reply",
                        format!("{other:?}"),
                    )))
                }
            };
            nodes = int(&items[0]);
            for (op, v) in chunk.iter().zip(&items[1..]) {
                self.apply(op, v, now_ms);
            }
        }
        self.con = Some(con);
        Ok(nodes)
    }

    /// Write one reply back to shared memory.
    fn apply(&self, op: &Op, v: &redis::Value, now_ms: u64) {
        let zones = &self.zones;
        match op.target {
            Target::Rate {
                zone,
                slot,
                key,
                demand,
                mine,
            } => {
                let Some(z) = zones.limits.get(zone) else {
                    return;
                };
                let t = z.table();
                if !t.holds(slot, key) {
                    return;
                }
                let total = int(v).max(mine);
                let p = t.payload(slot);
                let share = (mine as u128 * cl::PPM as u128 / total as u128) as u64;
                p[cl::RATE_SHARE].store(share.clamp(1, cl::PPM), Relaxed);
                p[cl::RATE_DEMAND_PUSHED].store(demand, Relaxed);
            }
            Target::Count {
                zone,
                slot,
                key,
                hits,
            } => {
                let (Some(z), Some(w)) = (
                    zones.limits.get(zone),
                    zones.limits.get(zone).and_then(|z| z.window()),
                ) else {
                    return;
                };
                let t = z.table();
                if !t.holds(slot, key) {
                    return;
                }
                let extra = &t.payload(slot)[w.buckets as usize..];
                extra[cl::COUNT_GLOBAL].store(cl::pack_global(int(v), hits), Relaxed);
                extra[cl::COUNT_HITS_PUSHED].store(hits, Relaxed);
            }
            Target::Bytes {
                zone,
                slot,
                key,
                used,
            } => {
                let (Some(z), Some(q)) = (
                    zones.limits.get(zone),
                    zones.limits.get(zone).and_then(|z| z.quota()),
                ) else {
                    return;
                };
                let t = z.table();
                if !t.holds(slot, key) {
                    return;
                }
                let p = t.payload(slot);
                q.set(&p[cl::BYTES_PUSHED], now_ms, used);
                q.set(&p[cl::BYTES_REMOTE], now_ms, int(v).saturating_sub(used));
            }
            Target::Forget => {}
            Target::Room { room, taken } => {
                let Some(r) = zones.rooms.get(room).and_then(|r| r.room(now_ms)) else {
                    return;
                };
                if let redis::Value::Array(pair) = v {
                    if let [next, others] = pair.as_slice() {
                        r.pushed(taken, int(next), int(others));
                    }
                }
            }
        }
    }
}

/// Requests or hits since the last push; a counter behind its pushed mark
/// was reset (its slot reused): all of it is new.
fn fresh_diff(now: u64, pushed: u64) -> u64 {
    if now >= pushed {
        now - pushed
    } else {
        now
    }
}

/// Count keys: every key still within its window (so its global count
/// stays fresh), with its new requests.
fn plan_count(zi: usize, z: &LimitZone, now_ms: u64, width: u64, buckets: u64, ops: &mut Vec<Op>) {
    let (t, Some(w)) = (z.table(), z.window()) else {
        return;
    };
    for (slot, key, expired) in t.keys(now_ms) {
        let extra = &t.payload(slot)[w.buckets as usize..];
        let hits = extra[cl::COUNT_HITS].load(Relaxed);
        let new = fresh_diff(hits, extra[cl::COUNT_HITS_PUSHED].load(Relaxed));
        if expired && new == 0 {
            continue;
        }
        ops.push(Op {
            key: format!(
                "sluice:c:{}:{:016x}{:016x}",
                z.conf.name, key.tag, key.check
            ),
            args: vec![
                "c".into(),
                new.to_string(),
                width.to_string(),
                buckets.to_string(),
            ],
            target: Target::Count {
                zone: zi,
                slot,
                key,
                hits,
            },
        });
    }
}

/// Byte-quota keys: every key used in this period, with its new bytes.
fn plan_bytes(zi: usize, z: &LimitZone, now_ms: u64, ops: &mut Vec<Op>) {
    let (t, Some(q)) = (z.table(), z.quota()) else {
        return;
    };
    for (slot, key, expired) in t.keys(now_ms) {
        let p = t.payload(slot);
        let used = q.used(&p[0], now_ms);
        let new = used.saturating_sub(q.used(&p[cl::BYTES_PUSHED], now_ms));
        if expired && new == 0 {
            continue;
        }
        ops.push(Op {
            key: format!(
                "sluice:b:{}:{:016x}{:016x}:{}",
                z.conf.name,
                key.tag,
                key.check,
                q.period(now_ms)
            ),
            args: vec!["b".into(), new.to_string(), q.per_ms.to_string()],
            target: Target::Bytes {
                zone: zi,
                slot,
                key,
                used,
            },
        });
    }
}

/// An integer reply (0 for anything else).
fn int(v: &redis::Value) -> u64 {
    match v {
        redis::Value::Int(i) => (*i).max(0) as u64,
        redis::Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .map_or(0, |f| f.max(0.0) as u64),
        _ => 0,
    }
}

/// Take the node's sync lock (non-blocking); `None` while another thread
/// of this node (the previous generation's) holds it.
fn take_lock(path: &std::path::Path) -> Option<nix::fcntl::Flock<File>> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_survive_a_reset_counter() {
        assert_eq!(fresh_diff(10, 4), 6);
        assert_eq!(fresh_diff(4, 4), 0);
        assert_eq!(fresh_diff(3, 9), 3);
    }

    #[test]
    fn logged_urls_hide_the_password() {
        assert_eq!(
            shown_url("redis://:s3cret@r:6379/2"),
            "redis://:***@r:6379/2"
        );
        assert_eq!(shown_url("redis://u:s3cret@r:1"), "redis://u:***@r:1");
        assert_eq!(shown_url("redis://r:1"), "redis://r:1");
    }

    #[test]
    fn replies_read_as_integers() {
        assert_eq!(int(&redis::Value::Int(42)), 42);
        assert_eq!(int(&redis::Value::Int(-3)), 0);
        assert_eq!(int(&redis::Value::BulkString(b"17".to_vec())), 17);
        assert_eq!(int(&redis::Value::Nil), 0);
    }
}
