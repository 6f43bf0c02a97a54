//! Upstream pools of one worker: the balancing methods (`balance.rs`:
//! nginx's smooth weighted round robin, `least_conn`, `ip_hash`, `hash`
//! with ketama consistent hashing, `random [two]`), passive health
//! (`max_fails` within `fail_timeout` marks a server down for
//! `fail_timeout`), `max_conns`, and idle keep-alive connections per
//! server, over TCP or a Unix socket, plain or TLS (a TLS one is reused
//! only with the same client configuration and server name it was made
//! for). Pools of a `proxy_pass` with variables are made here on first use.

use crate::config::{PeerAddr, UpstreamConf};
use crate::tls::Stream;
use mio::net::{TcpStream, UnixStream};
use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;

#[path = "balance.rs"]
mod balance;
pub use balance::Pick;

/// What a TLS upstream connection was made for: the client configuration
/// (`ProxyTls::client`) and the server name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsKey {
    /// Index into `HttpConf::upstream_tls`.
    pub client: usize,
    /// The name sent (SNI) and verified.
    pub name: Box<str>,
}

/// An upstream socket: TCP or Unix.
#[derive(Debug)]
pub enum UpSock {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix-domain stream socket.
    Unix(UnixStream),
}

impl UpSock {
    /// A non-blocking connect to `addr` (in progress when it returns).
    pub fn connect(addr: &PeerAddr) -> std::io::Result<UpSock> {
        Ok(match addr {
            PeerAddr::Inet(a) => UpSock::Tcp(TcpStream::connect(*a)?),
            PeerAddr::Unix(p) => UpSock::Unix(UnixStream::connect(p)?),
        })
    }

    /// A pending socket error (a failed connect).
    pub fn take_error(&self) -> std::io::Result<Option<std::io::Error>> {
        match self {
            UpSock::Tcp(s) => s.take_error(),
            UpSock::Unix(s) => s.take_error(),
        }
    }

    /// Ok(true) connected, Ok(false) still connecting.
    pub fn connected(&self) -> std::io::Result<bool> {
        let r = match self {
            UpSock::Tcp(s) => s.peer_addr().map(|_| ()),
            UpSock::Unix(s) => s.peer_addr().map(|_| ()),
        };
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Read for UpSock {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            UpSock::Tcp(s) => s.read(buf),
            UpSock::Unix(s) => s.read(buf),
        }
    }
}

impl Write for UpSock {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            UpSock::Tcp(s) => s.write(buf),
            UpSock::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl crate::tls::stream::Socket for UpSock {
    fn peek(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            UpSock::Tcp(s) => s.peek(buf),
            UpSock::Unix(s) => {
                use std::os::fd::AsRawFd;
                nix::sys::socket::recv(s.as_raw_fd(), buf, nix::sys::socket::MsgFlags::MSG_PEEK)
                    .map_err(std::io::Error::from)
            }
        }
    }
}

impl mio::event::Source for UpSock {
    fn register(
        &mut self,
        r: &mio::Registry,
        t: mio::Token,
        i: mio::Interest,
    ) -> std::io::Result<()> {
        match self {
            UpSock::Tcp(s) => s.register(r, t, i),
            UpSock::Unix(s) => s.register(r, t, i),
        }
    }
    fn reregister(
        &mut self,
        r: &mio::Registry,
        t: mio::Token,
        i: mio::Interest,
    ) -> std::io::Result<()> {
        match self {
            UpSock::Tcp(s) => s.reregister(r, t, i),
            UpSock::Unix(s) => s.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &mio::Registry) -> std::io::Result<()> {
        match self {
            UpSock::Tcp(s) => s.deregister(r),
            UpSock::Unix(s) => s.deregister(r),
        }
    }
}

/// An upstream connection: the socket and, for an HTTPS upstream, its TLS.
pub struct UpConn {
    /// The socket.
    pub sock: UpSock,
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
        use crate::tls::stream::Socket;
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
        match &mut self.tls {
            Some((_, t)) => t.read(&mut self.sock, buf),
            None => self.sock.read(buf),
        }
    }

    /// Write request bytes (through TLS when it has it).
    pub fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
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

/// One active request on a server (`least_conn`, `max_conns`): counted
/// while held, released when dropped, whatever ends the attempt.
#[derive(Debug)]
pub struct Active(Rc<Cell<u32>>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// Runtime state of one server.
#[derive(Debug)]
pub struct Peer {
    /// Address.
    pub addr: PeerAddr,
    /// The `server` address as written (ketama points are made of it).
    name: String,
    weight: i64,
    /// nginx's effective weight: lowered by failures, recovering by one per pick.
    effective_weight: i64,
    current_weight: i64,
    max_fails: u32,
    fail_timeout_ms: u64,
    backup: bool,
    down: bool,
    max_conns: u32,
    /// Requests in flight on this server (from this worker).
    conns: Rc<Cell<u32>>,
    fails: u32,
    first_fail_ms: u64,
    down_until_ms: u64,
    idle: Vec<UpConn>,
}

impl Peer {
    /// Requests in flight on this server.
    pub fn active(&self) -> u32 {
        self.conns.get()
    }
}

/// Runtime state of one upstream.
pub struct Pool {
    /// Name, for logs.
    pub name: String,
    /// Servers.
    pub peers: Vec<Peer>,
    /// Idle connections kept per server (0 = none).
    pub keepalive: usize,
    method: balance::Method,
    /// ketama points (hash, server index), sorted (`hash ... consistent`).
    points: Vec<(u32, usize)>,
    /// Sum of the primary servers' weights.
    total_weight: i64,
    /// xorshift state for `random`.
    rng: Cell<u64>,
    /// When the names of a pool of a `proxy_pass` with variables were
    /// looked up (worker ms), and until when they hold (0: forever).
    pub(crate) expires_ms: u64,
    /// The key a dynamic pool was made for (`https` flag and authority).
    pub(crate) dynamic_key: Option<(bool, String)>,
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

/// Most pools a worker makes for `proxy_pass` with variables.
pub const MAX_DYNAMIC_POOLS: usize = 1024;

impl Pools {
    /// Runtime pools for `confs`.
    pub fn new(confs: &[UpstreamConf]) -> Pools {
        Pools {
            cache: None,
            hot: Default::default(),
            io: None,
            spawn: Vec::new(),
            read_buf: Vec::new(),
            pools: confs.iter().map(Pool::new).collect(),
        }
    }

    /// The pool of a `proxy_pass` with variables that evaluated to
    /// `authority`: made on first use from `make` (the addresses, or None
    /// when the name is unknown), looked up again once `valid_ms` passed
    /// (0: kept). Err: a message for the error log.
    pub fn dynamic(
        &mut self,
        https: bool,
        authority: &str,
        now_ms: u64,
        valid_ms: u64,
        make: impl FnOnce() -> Option<UpstreamConf>,
    ) -> Result<usize, String> {
        let found = self.pools.iter().position(|p| {
            p.dynamic_key
                .as_ref()
                .is_some_and(|(h, a)| *h == https && a == authority)
        });
        if let Some(i) = found {
            let p = &self.pools[i];
            if p.expires_ms == 0 || p.expires_ms > now_ms {
                return Ok(i);
            }
        }
        let Some(conf) = make() else {
            return Err(format!("{authority} could not be resolved"));
        };
        let mut pool = Pool::new(&conf);
        pool.dynamic_key = Some((https, authority.to_string()));
        pool.expires_ms = if valid_ms == 0 { 0 } else { now_ms + valid_ms };
        match found {
            Some(i) => {
                let same = self.pools[i]
                    .peers
                    .iter()
                    .map(|p| &p.addr)
                    .eq(pool.peers.iter().map(|p| &p.addr));
                if same {
                    self.pools[i].expires_ms = pool.expires_ms;
                } else {
                    self.pools[i] = pool;
                }
                Ok(i)
            }
            None => {
                let dynamic = self
                    .pools
                    .iter()
                    .filter(|p| p.dynamic_key.is_some())
                    .count();
                if dynamic >= MAX_DYNAMIC_POOLS {
                    return Err(format!(
                        "too many upstream addresses from proxy_pass with variables ({MAX_DYNAMIC_POOLS})"
                    ));
                }
                self.pools.push(pool);
                Ok(self.pools.len() - 1)
            }
        }
    }
}

impl Pool {
    /// The runtime state of `u`.
    pub fn new(u: &UpstreamConf) -> Pool {
        let peers: Vec<Peer> = u
            .servers
            .iter()
            .map(|s| Peer {
                addr: s.addr.clone(),
                name: s.name.clone(),
                weight: i64::from(s.weight),
                effective_weight: i64::from(s.weight),
                current_weight: 0,
                max_fails: s.max_fails,
                fail_timeout_ms: s.fail_timeout_ms,
                backup: s.backup,
                down: s.down,
                max_conns: s.max_conns,
                conns: Rc::new(Cell::new(0)),
                fails: 0,
                first_fail_ms: 0,
                down_until_ms: 0,
                idle: Vec::new(),
            })
            .collect();
        let total_weight = peers.iter().filter(|p| !p.backup).map(|p| p.weight).sum();
        let method = balance::Method::of(&u.balance);
        let points = if method == balance::Method::Consistent {
            balance::ketama_points(&peers)
        } else {
            Vec::new()
        };
        Pool {
            name: u.name.clone(),
            keepalive: u.keepalive,
            peers,
            method,
            points,
            total_weight,
            rng: Cell::new(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id())),
            expires_ms: 0,
            dynamic_key: None,
        }
    }

    /// Count a request on server `i` until the returned guard drops.
    pub fn hold(&self, i: usize) -> Option<Active> {
        let c = &self.peers.get(i)?.conns;
        c.set(c.get() + 1);
        Some(Active(c.clone()))
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
        p.effective_weight = (p.effective_weight - p.weight / i64::from(p.max_fails)).max(0);
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
                "upstream server temporarily disabled: {} marked down for {}ms",
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
/// first 64 servers and growing only for a larger pool; and where the
/// hash methods are in their sequence for this request (nginx keeps it
/// across retries).
#[derive(Debug, Default, Clone)]
pub struct Tried {
    first: u64,
    more: Vec<u64>,
    /// `ip_hash` / `hash`: the running hash; `consistent`: the point index.
    hash: u64,
    /// `hash`: rehash count (prefixed to the key after the first round).
    rehash: u64,
    /// Hash attempts so far (past 20: round robin, as nginx).
    hash_tries: u32,
    /// The hash state was set up (ip_hash's 89, the ketama point).
    hash_started: bool,
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

    #[test]
    fn the_tried_set_works_past_64_servers() {
        // Regression: a u64 bit set; servers 64 and up were never marked
        // tried, so a request could be retried on the same one again.
        let mut t = Tried::default();
        for i in [3, 63, 64, 129, 130, 149] {
            t.insert(i);
        }
        assert!(t.contains(130) && t.contains(64) && t.contains(3) && !t.contains(65));
        t.remove(130);
        t.remove(3);
        assert!(!t.contains(130) && !t.contains(3) && t.contains(129));
    }

    #[test]
    fn active_requests_are_released_when_the_guard_drops() {
        let conf = crate::config::implicit_upstream(
            "a",
            vec![PeerAddr::Inet("127.0.0.1:1".parse().unwrap())],
            false,
        );
        let p = Pool::new(&conf);
        let a = p.hold(0).unwrap();
        let b = p.hold(0).unwrap();
        assert_eq!(p.peers[0].active(), 2);
        drop(a);
        assert_eq!(p.peers[0].active(), 1);
        drop(b);
        assert_eq!(p.peers[0].active(), 0);
    }
}
