//! The balancing methods of a pool (a child of `upstream`), as nginx's
//! `ngx_http_upstream_{round_robin,least_conn,ip_hash,hash,random}_module`:
//! the same sequences, the same fallbacks (a hash method that finds no
//! usable server in 20 tries falls back to round robin). A server is
//! usable when the request has not tried it, it is not `down`, not resting
//! after `max_fails` failures, and below its `max_conns`.

use super::{Peer, Pool, Tried};
use crate::config::Balance;
use crate::util::hash::{crc32, Crc32};
use std::net::IpAddr;

/// A balancing method without its configuration (the hash key is
/// evaluated by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    RoundRobin,
    LeastConn,
    IpHash,
    Hash,
    Consistent,
    Random,
    RandomTwo,
}

impl Method {
    pub(super) fn of(b: &Balance) -> Method {
        match b {
            Balance::RoundRobin => Method::RoundRobin,
            Balance::LeastConn => Method::LeastConn,
            Balance::IpHash => Method::IpHash,
            Balance::Hash {
                consistent: false, ..
            } => Method::Hash,
            Balance::Hash {
                consistent: true, ..
            } => Method::Consistent,
            Balance::Random { two: false } => Method::Random,
            Balance::Random { two: true } => Method::RandomTwo,
        }
    }
}

/// What a pick needs to know about the request.
#[derive(Debug, Clone, Copy)]
pub struct Pick<'a> {
    /// Worker clock, ms.
    pub now_ms: u64,
    /// The client address (`ip_hash`).
    pub client: IpAddr,
    /// The evaluated `hash` key (empty: round robin, as nginx).
    pub key: &'a [u8],
}

/// Tries of a hash method before it falls back to round robin (nginx).
const HASH_TRIES: u32 = 20;

/// nginx's ketama points for `hash ... consistent`: 160 per weight unit
/// per server, each the CRC-32 of "host\0port" followed by the previous
/// point (little-endian), sorted.
pub(super) fn ketama_points(peers: &[Peer]) -> Vec<(u32, usize)> {
    let mut points = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        let name = p.name.as_bytes();
        let (host, port): (&[u8], &[u8]) =
            if name.len() >= 5 && name[..5].eq_ignore_ascii_case(b"unix:") {
                (&name[5..], b"")
            } else {
                let digits = name.iter().rev().take_while(|b| b.is_ascii_digit()).count();
                if digits < name.len() && name[name.len() - digits - 1] == b':' {
                    (
                        &name[..name.len() - digits - 1],
                        &name[name.len() - digits..],
                    )
                } else {
                    (name, b"")
                }
            };
        let base = Crc32::new().update(host).update(b"\0").update(port);
        let mut prev = 0u32;
        for _ in 0..p.weight * 160 {
            let h = base.update(&prev.to_le_bytes()).finish();
            points.push((h, i));
            prev = h;
        }
    }
    points.sort_unstable();
    points.dedup_by_key(|p| p.0);
    points
}

impl Pool {
    fn usable(&self, i: usize, now_ms: u64, tried: &Tried) -> bool {
        let p = &self.peers[i];
        !tried.contains(i)
            && !p.down
            && p.down_until_ms <= now_ms
            && (p.max_conns == 0 || p.conns.get() < p.max_conns)
    }

    /// Pick a server for an attempt of a request that tried `tried`
    /// already (and keeps its hash position there).
    pub fn pick(&mut self, at: &Pick<'_>, tried: &mut Tried) -> Option<usize> {
        let single = self.peers.len() == 1;
        match self.method {
            Method::RoundRobin => self.round_robin(at.now_ms, tried),
            Method::LeastConn => self.least_conn(at.now_ms, tried),
            _ if single => self.round_robin(at.now_ms, tried),
            Method::IpHash => self.ip_hash(at, tried),
            Method::Hash if at.key.is_empty() => self.round_robin(at.now_ms, tried),
            Method::Hash => self.hash(at, tried),
            Method::Consistent if at.key.is_empty() => self.round_robin(at.now_ms, tried),
            Method::Consistent => self.consistent(at, tried),
            Method::Random => self.random(at.now_ms, tried, false),
            Method::RandomTwo => self.random(at.now_ms, tried, true),
        }
    }

    /// Smooth weighted round robin over usable primaries, then backups.
    fn round_robin(&mut self, now_ms: u64, tried: &Tried) -> Option<usize> {
        for backup in [false, true] {
            let candidates = (0..self.peers.len())
                .filter(|&i| self.peers[i].backup == backup && self.usable(i, now_ms, tried))
                .collect::<SmallSet>();
            if let Some(i) = self.smooth(&candidates) {
                return Some(i);
            }
        }
        None
    }

    /// nginx's smooth weighted round robin among `candidates`.
    fn smooth(&mut self, candidates: &SmallSet) -> Option<usize> {
        let mut total = 0;
        let mut best: Option<usize> = None;
        let mut best_weight = 0;
        for i in candidates.iter() {
            let p = &mut self.peers[i];
            p.current_weight += p.effective_weight;
            total += p.effective_weight;
            if p.effective_weight < p.weight {
                p.effective_weight += 1;
            }
            if best.is_none() || p.current_weight > best_weight {
                best = Some(i);
                best_weight = p.current_weight;
            }
        }
        let b = best?;
        self.peers[b].current_weight -= total;
        Some(b)
    }

    /// Fewest active requests per weight; round robin among the equal ones.
    fn least_conn(&mut self, now_ms: u64, tried: &Tried) -> Option<usize> {
        for backup in [false, true] {
            let usable: SmallSet = (0..self.peers.len())
                .filter(|&i| self.peers[i].backup == backup && self.usable(i, now_ms, tried))
                .collect();
            let load = |p: &Peer| (i64::from(p.conns.get()), p.weight);
            let mut best: Option<usize> = None;
            for i in usable.iter() {
                let (c, w) = load(&self.peers[i]);
                let fewer = best.is_none_or(|b| {
                    let (bc, bw) = load(&self.peers[b]);
                    c * bw < bc * w
                });
                if fewer {
                    best = Some(i);
                }
            }
            let Some(b) = best else { continue };
            let (bc, bw) = load(&self.peers[b]);
            let equal: SmallSet = usable
                .iter()
                .filter(|&i| {
                    let (c, w) = load(&self.peers[i]);
                    c * bw == bc * w
                })
                .collect();
            return self.smooth(&equal);
        }
        None
    }

    /// The primary server `w` falls on, counting weights in order.
    fn by_weight(&self, mut w: i64) -> usize {
        for (i, p) in self.peers.iter().enumerate() {
            if w < p.weight {
                return i;
            }
            w -= p.weight;
        }
        self.peers.len() - 1
    }

    /// The client's first three IPv4 octets (or whole IPv6 address), hashed
    /// as nginx does (89, then `* 113 + byte` mod 6271, again per retry).
    fn ip_hash(&mut self, at: &Pick<'_>, tried: &mut Tried) -> Option<usize> {
        if !tried.hash_started {
            tried.hash_started = true;
            tried.hash = 89;
        }
        let v4;
        let v6;
        let addr: &[u8] = match at.client {
            IpAddr::V4(a) => {
                v4 = a.octets();
                &v4[..3]
            }
            IpAddr::V6(a) => {
                v6 = a.octets();
                &v6
            }
        };
        loop {
            for &b in addr {
                tried.hash = (tried.hash * 113 + u64::from(b)) % 6271;
            }
            let i = self.by_weight((tried.hash % self.total_weight.max(1) as u64) as i64);
            if self.usable(i, at.now_ms, tried) {
                return Some(i);
            }
            tried.hash_tries += 1;
            if tried.hash_tries > HASH_TRIES {
                return self.round_robin(at.now_ms, tried);
            }
        }
    }

    /// `hash KEY`: `((crc32([REHASH] KEY) >> 16) & 0x7fff) + PREV` mod the
    /// total weight (Cache::Memcached's, as nginx).
    fn hash(&mut self, at: &Pick<'_>, tried: &mut Tried) -> Option<usize> {
        loop {
            let mut c = Crc32::new();
            if tried.rehash > 0 {
                let mut n = itoa::Buffer::new();
                c = c.update(n.format(tried.rehash).as_bytes());
            }
            let h = (c.update(at.key).finish() >> 16) & 0x7fff;
            tried.hash += u64::from(h);
            tried.rehash += 1;
            let i = self.by_weight((tried.hash % self.total_weight.max(1) as u64) as i64);
            if self.usable(i, at.now_ms, tried) {
                return Some(i);
            }
            tried.hash_tries += 1;
            if tried.hash_tries > HASH_TRIES {
                return self.round_robin(at.now_ms, tried);
            }
        }
    }

    /// `hash KEY consistent`: the first ketama point at or after the key's
    /// CRC-32, then the next points while its server is unusable.
    fn consistent(&mut self, at: &Pick<'_>, tried: &mut Tried) -> Option<usize> {
        if self.points.is_empty() {
            return self.round_robin(at.now_ms, tried);
        }
        if !tried.hash_started {
            tried.hash_started = true;
            let h = crc32(at.key);
            tried.hash = self.points.partition_point(|p| p.0 < h) as u64;
        }
        loop {
            let server = self.points[(tried.hash % self.points.len() as u64) as usize].1;
            // Every address of that `server` line (a name with several).
            let name = &self.peers[server].name;
            let same: SmallSet = (0..self.peers.len())
                .filter(|&i| self.peers[i].name == *name && self.usable(i, at.now_ms, tried))
                .collect();
            if let Some(i) = self.smooth(&same) {
                return Some(i);
            }
            tried.hash += 1;
            tried.hash_tries += 1;
            if tried.hash_tries > HASH_TRIES {
                return self.round_robin(at.now_ms, tried);
            }
        }
    }

    fn next_random(&self) -> u64 {
        // xorshift64*: statistical quality is all `random` needs.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn peek_random(&self) -> usize {
        self.by_weight((self.next_random() % self.total_weight.max(1) as u64) as i64)
    }

    /// `random`: a server by weight; `two`: two of them, the one with fewer
    /// active requests per weight.
    fn random(&mut self, now_ms: u64, tried: &mut Tried, two: bool) -> Option<usize> {
        let mut first: Option<usize> = None;
        let mut tries = 0;
        loop {
            let i = self.peek_random();
            if self.usable(i, now_ms, tried) && first != Some(i) {
                match first {
                    None if two => first = Some(i),
                    None => return Some(i),
                    Some(f) => {
                        let (a, b) = (&self.peers[f], &self.peers[i]);
                        let fewer = i64::from(b.conns.get()) * a.weight
                            < i64::from(a.conns.get()) * b.weight;
                        return Some(if fewer { i } else { f });
                    }
                }
            }
            tries += 1;
            if tries > HASH_TRIES {
                return first.or_else(|| self.round_robin(now_ms, tried));
            }
        }
    }
}

/// Server indices (inline for small pools: no allocation per pick).
struct SmallSet {
    inline: [usize; 16],
    len: usize,
    more: Vec<usize>,
}

impl FromIterator<usize> for SmallSet {
    fn from_iter<T: IntoIterator<Item = usize>>(it: T) -> Self {
        let mut s = SmallSet {
            inline: [0; 16],
            len: 0,
            more: Vec::new(),
        };
        for i in it {
            if s.len < 16 {
                s.inline[s.len] = i;
                s.len += 1;
            } else {
                s.more.push(i);
            }
        }
        s
    }
}

impl SmallSet {
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.inline[..self.len]
            .iter()
            .chain(self.more.iter())
            .copied()
    }
}

#[cfg(test)]
#[path = "balance_tests.rs"]
mod tests;
