//! Upstream pools of one worker: smooth weighted round robin (nginx's),
//! passive health (`max_fails` within `fail_timeout` marks a server down for
//! `fail_timeout`), and idle keep-alive connections per server, plain or
//! TLS (a TLS one is reused only with the same client configuration and
//! server name it was made for).

use crate::config::UpstreamConf;
use crate::tls::Stream;
use mio::net::TcpStream;
use std::net::SocketAddr;

/// What a TLS upstream connection was made for: the client configuration
/// (`ProxyTls::client`) and the server name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsKey {
    /// Index into `HttpConf::upstream_tls`.
    pub client: usize,
    /// The name sent (SNI) and verified.
    pub name: Box<str>,
}

/// An upstream connection: the socket and, for an HTTPS upstream, its TLS.
pub struct UpConn {
    /// The socket.
    pub sock: TcpStream,
    /// TLS over it, and what it was made for.
    pub tls: Option<(TlsKey, Box<Stream>)>,
}

impl std::fmt::Debug for UpConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpConn")
            .field("sock", &self.sock)
            .field("tls", &self.tls.as_ref().map(|(k, _)| k))
            .finish()
    }
}

impl UpConn {
    /// Whether this connection is the kind `want` asks for (`None`: plain).
    fn fits(&self, want: Option<&TlsKey>) -> bool {
        self.tls.as_ref().map(|(k, _)| k) == want
    }

    /// Whether an idle connection can still carry a request: nothing came
    /// since (a close, a reset, stray bytes); through TLS, records that
    /// carry no data (a late session ticket) are taken and it stays usable.
    fn still_open(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.sock.peek(&mut b) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Ok(n) if n > 0 => {}
            _ => return false,
        }
        match &mut self.tls {
            Some((_, t)) => matches!(
                t.read(&mut self.sock, &mut b),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            ),
            None => false,
        }
    }

    /// Read response bytes (through TLS when it has it).
    pub fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::Read;
        match &mut self.tls {
            Some((_, t)) => t.read(&mut self.sock, buf),
            None => self.sock.read(buf),
        }
    }

    /// Write request bytes (through TLS when it has it).
    pub fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use std::io::Write;
        match &mut self.tls {
            Some((_, t)) => t.write(&mut self.sock, buf),
            None => self.sock.write(buf),
        }
    }

    /// Send the TLS records still held; Ok(true) when none is left.
    pub fn flush(&mut self) -> std::io::Result<bool> {
        match &mut self.tls {
            Some((_, t)) => t.flush(&mut self.sock),
            None => Ok(true),
        }
    }

    /// Close politely: a TLS connection sends `close_notify` first (best
    /// effort: the socket is non-blocking).
    pub fn close(mut self) {
        if let Some((_, t)) = &mut self.tls {
            if !t.is_handshaking() {
                t.close();
                let _ = t.flush(&mut self.sock);
            }
        }
    }
}

/// Runtime state of one server.
#[derive(Debug)]
pub struct Peer {
    /// Address.
    pub addr: SocketAddr,
    weight: i64,
    current_weight: i64,
    max_fails: u32,
    fail_timeout_ms: u64,
    backup: bool,
    fails: u32,
    first_fail_ms: u64,
    down_until_ms: u64,
    idle: Vec<UpConn>,
}

/// Runtime state of one upstream.
pub struct Pool {
    /// Name, for logs.
    pub name: String,
    /// Servers.
    pub peers: Vec<Peer>,
    /// Idle connections kept per server (0 = none).
    pub keepalive: usize,
}

/// All upstreams of the configuration, indexed like `HttpConf::upstreams`,
/// and the worker's cache writer.
#[derive(Default)]
pub struct Pools {
    /// Pools.
    pub pools: Vec<Pool>,
    /// The cache writer thread (when the config has `proxy_cache_path`).
    pub cache: Option<crate::cache::io::Writer>,
    /// Small cache entries held in memory.
    pub hot: crate::cache::lookup::Hot,
    /// I/O threads for cache reads that would block.
    pub io: Option<crate::cache::io::IoPool>,
    /// Background refreshes to start (request, fill lock held).
    pub spawn: Vec<(
        Box<crate::http::handler::ProxyReq>,
        crate::cache::lookup::FillLock,
    )>,
    /// Upstream reads land here first (allocated and zeroed once per worker).
    pub read_buf: Vec<u8>,
}

impl Pools {
    /// Runtime pools for `confs`.
    pub fn new(confs: &[UpstreamConf]) -> Pools {
        Pools {
            cache: None,
            hot: Default::default(),
            io: None,
            spawn: Vec::new(),
            read_buf: Vec::new(),
            pools: confs
                .iter()
                .map(|u| Pool {
                    name: u.name.clone(),
                    keepalive: u.keepalive,
                    peers: u
                        .servers
                        .iter()
                        .map(|s| Peer {
                            addr: s.addr,
                            weight: s.weight as i64,
                            current_weight: 0,
                            max_fails: s.max_fails,
                            fail_timeout_ms: s.fail_timeout_ms,
                            backup: s.backup,
                            fails: 0,
                            first_fail_ms: 0,
                            down_until_ms: 0,
                            idle: Vec::new(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl Pool {
    fn excluded(p: &Peer, now_ms: u64, tried: &Tried, i: usize) -> bool {
        tried.contains(i) || p.down_until_ms > now_ms
    }

    /// Pick a server not in `tried` (bit i = server i tried already):
    /// smooth weighted round robin over live primaries, then live backups.
    pub fn pick(&mut self, now_ms: u64, tried: &Tried) -> Option<usize> {
        for backup in [false, true] {
            let mut total = 0;
            let mut best: Option<(usize, i64)> = None;
            for (i, p) in self.peers.iter_mut().enumerate() {
                if p.backup != backup || Self::excluded(p, now_ms, tried, i) {
                    continue;
                }
                p.current_weight += p.weight;
                total += p.weight;
                if best.is_none_or(|(_, w)| p.current_weight > w) {
                    best = Some((i, p.current_weight));
                }
            }
            if let Some((i, _)) = best {
                self.peers[i].current_weight -= total;
                return Some(i);
            }
        }
        None
    }

    /// Record a failed attempt on server `i`.
    pub fn failed(&mut self, i: usize, now_ms: u64) {
        let lone = self.peers.len() == 1;
        let Some(p) = self.peers.get_mut(i) else {
            return;
        };
        p.idle.clear();
        // nginx: a lone server is never considered unavailable.
        if p.max_fails == 0 || lone {
            return;
        }
        if now_ms.saturating_sub(p.first_fail_ms) > p.fail_timeout_ms {
            p.fails = 0;
        }
        if p.fails == 0 {
            p.first_fail_ms = now_ms;
        }
        p.fails += 1;
        if p.fails >= p.max_fails {
            p.down_until_ms = now_ms + p.fail_timeout_ms;
            p.fails = 0;
            log::warn!(
                "upstream server {} marked down for {}ms",
                p.addr,
                p.fail_timeout_ms
            );
        }
    }

    /// Record a success on server `i`.
    pub fn succeeded(&mut self, i: usize) {
        if let Some(p) = self.peers.get_mut(i) {
            p.fails = 0;
        }
    }

    /// An idle keep-alive connection to server `i` of the kind `want`
    /// (`None`: plain TCP), if any that is still open: one the upstream
    /// closed meanwhile (EOF or data waiting) is dropped.
    pub fn take_idle(&mut self, i: usize, want: Option<&TlsKey>) -> Option<UpConn> {
        let idle = &mut self.peers.get_mut(i)?.idle;
        while let Some(at) = idle.iter().rposition(|c| c.fits(want)) {
            let mut c = idle.remove(at);
            if c.still_open() {
                return Some(c);
            }
            // closed, reset, or unexpected bytes: not reusable
        }
        None
    }

    /// Keep a connection for reuse; given back when the pool is full or off.
    pub fn put_idle(&mut self, i: usize, c: UpConn) -> Result<(), UpConn> {
        let keepalive = self.keepalive;
        match self.peers.get_mut(i) {
            Some(p) if p.idle.len() < keepalive => {
                p.idle.push(c);
                Ok(())
            }
            _ => Err(c),
        }
    }

    /// Servers in the pool.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// No servers (never: the config requires one).
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

/// The servers of a pool a request has tried: a bit set, inline for the
/// first 64 servers and growing only for a larger pool.
#[derive(Debug, Default, Clone)]
pub struct Tried {
    first: u64,
    more: Vec<u64>,
}

impl Tried {
    /// Mark server `i` tried.
    pub fn insert(&mut self, i: usize) {
        match i.checked_sub(64) {
            None => self.first |= 1 << i,
            Some(j) => {
                if self.more.len() <= j / 64 {
                    self.more.resize(j / 64 + 1, 0);
                }
                self.more[j / 64] |= 1 << (j % 64);
            }
        }
    }

    /// Forget server `i` (a stale keep-alive connection is not its fault).
    pub fn remove(&mut self, i: usize) {
        match i.checked_sub(64) {
            None => self.first &= !(1 << i),
            Some(j) => {
                if let Some(w) = self.more.get_mut(j / 64) {
                    *w &= !(1 << (j % 64));
                }
            }
        }
    }

    /// Whether server `i` was tried.
    pub fn contains(&self, i: usize) -> bool {
        match i.checked_sub(64) {
            None => self.first & (1 << i) != 0,
            Some(j) => self
                .more
                .get(j / 64)
                .is_some_and(|w| w & (1 << (j % 64)) != 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamServer;

    fn tried(servers: &[usize]) -> Tried {
        let mut t = Tried::default();
        for &i in servers {
            t.insert(i);
        }
        t
    }

    fn pool(weights: &[(u32, bool)]) -> Pool {
        let conf = UpstreamConf {
            name: "u".into(),
            servers: weights
                .iter()
                .enumerate()
                .map(|(i, &(w, backup))| UpstreamServer {
                    addr: SocketAddr::from(([127, 0, 0, 1], 9000 + i as u16)),
                    weight: w,
                    max_fails: 2,
                    fail_timeout_ms: 1000,
                    backup,
                })
                .collect(),
            keepalive: 2,
            implicit: false,
            https: false,
        };
        Pools::new(&[conf]).pools.pop().unwrap()
    }

    #[test]
    fn smooth_weighted_round_robin() {
        let none = Tried::default();
        let mut p = pool(&[(5, false), (1, false), (1, false)]);
        let picks: Vec<usize> = (0..7).map(|_| p.pick(0, &none).unwrap()).collect();
        // nginx's sequence for 5/1/1: a a b a c a a
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn max_fails_marks_down_then_recovers() {
        let none = Tried::default();
        let mut p = pool(&[(1, false), (1, false)]);
        p.failed(0, 100);
        assert!(
            (0..4).any(|_| p.pick(200, &none) == Some(0)),
            "one failure is not enough"
        );
        p.failed(0, 150);
        for _ in 0..4 {
            assert_eq!(p.pick(300, &none), Some(1));
        }
        // After fail_timeout the server is back.
        assert!((0..4).any(|_| p.pick(1200, &none) == Some(0)));
    }

    #[test]
    fn backups_only_when_primaries_are_down_or_tried() {
        let none = Tried::default();
        let mut p = pool(&[(1, false), (1, true)]);
        assert_eq!(p.pick(0, &none), Some(0));
        assert_eq!(p.pick(0, &tried(&[0])), Some(1));
        assert_eq!(p.pick(0, &tried(&[0, 1])), None);
    }

    #[test]
    fn the_tried_set_works_past_64_servers() {
        // Regression: a u64 bit set; servers 64 and up were never marked
        // tried, so a request could be retried on the same one again.
        let weights = vec![(1, false); 150];
        let mut p = pool(&weights);
        let mut t = Tried::default();
        let mut seen = Vec::new();
        while let Some(i) = p.pick(0, &t) {
            assert!(!t.contains(i), "server {i} picked twice");
            t.insert(i);
            seen.push(i);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..150).collect::<Vec<_>>());
        t.remove(130);
        t.remove(3);
        assert!(!t.contains(130) && !t.contains(3) && t.contains(129));
        assert_eq!(p.pick(0, &t).map(|i| i == 3 || i == 130), Some(true));
    }
}
