//! A worker process: a handler of the event loop with a slab of
//! connections and a timer wheel.
//!
//! Connections arrive over the channel from the master (handoff mode, fds
//! with SCM_RIGHTS, several per message) or from the worker's own
//! SO_REUSEPORT sockets. Signals: QUIT (or the channel closing) starts a
//! graceful stop, TERM/INT a fast one, USR1 reopens the logs.

use crate::config::Config;
use crate::event::{Acceptor, Clock, EventLoop, Flow, Handler, TimerWheel, Tok};
use crate::http::conn::{Conn, ConnLimits};
use crate::http::ctx::{AccessLogs, HttpCtx, ERROR_LOG_FILE};
use crate::http::request::HeadLimits;
use crate::http::vars::ConnVars;
use crate::log::writer::LogThread;
use crate::process::handoff;
use crate::proxy::session::{Next, NullClient, Session, DETACHED};
use crate::proxy::upstream::Pools;
use crate::shm::stats::StatsZone;
use crate::sys;
use crate::zones::Zones;
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use slab::Slab;
use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

#[path = "worker_h2.rs"]
mod worker_h2;

/// Timer-wheel keys of background refreshes (sessions without a client).
const DETACHED_TIMER: usize = 1 << 30;

/// Everything a worker starts with (moved out of the master after fork).
pub struct WorkerInit {
    /// Configuration of this worker's generation.
    pub cfg: Arc<Config>,
    /// Worker number within its generation.
    pub index: usize,
    /// Stats slot.
    pub slot: usize,
    /// The worker end of the master channel.
    pub channel: OwnedFd,
    /// Per-worker SO_REUSEPORT sockets: (listen index, socket).
    pub listeners: Vec<(usize, std::net::TcpListener)>,
    /// Shared counters.
    pub stats: Arc<StatsZone>,
    /// Traffic-limit zones of this generation (mapped by the master).
    pub zones: Arc<Zones>,
    /// The master's pid (to notice it died before PDEATHSIG was set).
    pub master_pid: i32,
    /// The signal mask to restore once the worker's own signal pipe is in
    /// place (the master forks with every signal blocked).
    pub signal_mask: nix::sys::signal::SigSet,
}

struct Worker {
    registry: Registry,
    conns: Slab<Conn>,
    sessions: Slab<Session>,
    pools: Pools,
    null: NullClient,
    wheel: TimerWheel,
    ctx: HttpCtx,
    limits: Vec<ConnLimits>,
    listeners: Vec<(usize, TcpListener)>,
    channel: Option<OwnedFd>,
    stats: Arc<StatsZone>,
    slot: usize,
    max_conns: usize,
    draining: bool,
    /// Set when draining: the cluster sync thread (worker 0) pushes what
    /// is left and lets the next generation's take over.
    cluster_stop: Arc<AtomicBool>,
    shutdown_at_ms: u64,
    shutdown_timeout_ms: u64,
    acceptor: Acceptor,
    last_gauges_ms: u64,
    fds: Vec<OwnedFd>,
    /// TLS handshake steps this loop iteration may still run.
    handshakes_left: u32,
    /// Connections whose handshake step waits for the next iteration.
    parked: Vec<usize>,
}

/// TLS handshake steps (a ClientHello answered, a Finished read...) one
/// loop iteration runs; the rest wait for the next one, so a flood of new
/// handshakes (hundreds of microseconds of CPU each) cannot hold back the
/// requests of established connections for long.
const HANDSHAKES_PER_ITERATION: u32 = 16;

/// Run a worker until it stops; never returns.
pub fn run(init: WorkerInit) -> ! {
    let code = match start(init) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("worker failed: {e}");
            2
        }
    };
    crate::log::error::use_stderr();
    sys::exit_now(code)
}

fn conn_limits(cfg: &Config) -> Vec<ConnLimits> {
    crate::http::site::listen_table(cfg)
        .iter()
        .map(|e| {
            let s = &cfg.http.servers[e.default];
            let (count, size) = s.large_header_buffers;
            ConnLimits {
                head: HeadLimits {
                    line_bytes: size,
                    total_bytes: count * size,
                },
                header_timeout_ms: s.client_header_timeout_ms,
                http2: e.conf.http2,
            }
        })
        .collect()
}

fn start(init: WorkerInit) -> std::io::Result<()> {
    // First, as nginx: the worker gives up root before it opens a file or
    // reads a byte from a client. (The drop clears the parent-death signal,
    // so that comes after it.)
    if let Some(who) = init.cfg.user.as_ref().filter(|_| sys::geteuid() == 0) {
        sys::drop_privileges(who)?;
    }
    let _ = sys::set_parent_death_signal(libc::SIGQUIT);
    if sys::getppid() != init.master_pid {
        return Ok(());
    }
    let signal_fd = sys::install_signal_pipe(&[
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGUSR1,
        libc::SIGHUP,
    ])?;
    sys::default_signals(&[libc::SIGCHLD])?;
    sys::set_signal_mask(&init.signal_mask)?;
    let cfg = init.cfg.clone();
    let mut paths = vec![cfg.error_log.path.clone()];
    paths.extend(cfg.http.access_logs.iter().map(|l| Some(l.path.clone())));
    let log_thread = LogThread::start(paths)?;
    crate::log::error::use_queue(log_thread.sender(), ERROR_LOG_FILE, init.index);
    let mut lp = EventLoop::new(1024)?;
    lp.watch_signals(signal_fd)?;
    let registry = lp.registry().try_clone()?;
    registry.register(
        &mut SourceFd(&init.channel.as_raw_fd()),
        Tok::Channel.token(),
        Interest::READABLE,
    )?;
    let mut listeners = Vec::new();
    for (i, (idx, l)) in init.listeners.into_iter().enumerate() {
        let mut l = TcpListener::from_std(l);
        registry.register(&mut l, Tok::Listener(i).token(), Interest::READABLE)?;
        listeners.push((idx, l));
    }
    let pools = {
        let mut p = Pools::new(&cfg.http.upstreams);
        if !cfg.http.cache_paths.is_empty() {
            p.cache = Some(crate::cache::io::Writer::start(init.stats.clone())?);
            p.hot.share(init.stats.clone());
            if init.index == 0 {
                crate::cache::manager::start(cfg.http.cache_paths.clone())?;
            }
            let waker = Arc::new(lp.waker(Tok::IoDone)?);
            p.io = Some(crate::cache::io::IoPool::start(waker)?);
        }
        p
    };
    let cluster_stop = Arc::new(AtomicBool::new(false));
    if let (0, Some(c)) = (init.index, cfg.http.cluster.as_ref()) {
        crate::cluster::start(
            c,
            cfg.state_dir.clone(),
            init.zones.clone(),
            cluster_stop.clone(),
        )?;
    }
    let mut w = Worker {
        cluster_stop,
        registry,
        conns: Slab::with_capacity(1024),
        sessions: Slab::new(),
        pools,
        null: NullClient::default(),
        wheel: TimerWheel::new(lp.clock().now_ms()),
        ctx: HttpCtx::new(
            cfg.clone(),
            AccessLogs::new(&cfg, Some(log_thread)),
            init.stats.clone(),
            init.zones,
        ),
        limits: conn_limits(&cfg),
        listeners,
        channel: Some(init.channel),
        stats: init.stats,
        slot: init.slot,
        max_conns: cfg.events.worker_connections,
        draining: false,
        shutdown_at_ms: 0,
        shutdown_timeout_ms: cfg.worker_shutdown_timeout_ms,
        acceptor: Acceptor::default(),
        last_gauges_ms: 0,
        fds: Vec::new(),
        handshakes_left: HANDSHAKES_PER_ITERATION,
        parked: Vec::new(),
    };
    log::debug!("worker {} started", init.index);
    lp.run(&mut w)
}

impl Handler for Worker {
    fn after_sleep(&mut self, clock: &Clock) {
        self.ctx.set_time(clock.now_ms(), clock.unix_secs());
        self.ctx.limits.now_us = clock.unix_us();
        self.handshakes_left = HANDSHAKES_PER_ITERATION;
        // Handshakes parked last iteration go first, in arrival order (the
        // list's buffer is kept when none was parked again meanwhile).
        if !self.parked.is_empty() {
            let mut parked = std::mem::take(&mut self.parked);
            for &key in &parked {
                if let Some(c) = self.conns.get_mut(key) {
                    c.parked = false;
                }
                self.conn_ready(key);
            }
            parked.clear();
            if self.parked.is_empty() {
                self.parked = parked;
            }
        }
    }

    fn on_signal(&mut self, sig: i32) -> Flow {
        match sig {
            libc::SIGQUIT => self.start_draining(),
            libc::SIGTERM | libc::SIGINT => {
                // Fast stop: fills that completed are still published
                // (briefly waited for).
                if let Some(w) = &self.pools.cache {
                    w.finish(Duration::from_millis(500));
                }
                self.ctx.logs.stop();
                return Flow::Stop;
            }
            libc::SIGUSR1 => self.ctx.logs.reopen(),
            _ => {}
        }
        Flow::Continue
    }

    fn on_event(&mut self, tok: Tok, _ev: &Event) {
        match tok {
            Tok::Channel => self.receive_fds(),
            Tok::IoDone => self.io_done(),
            Tok::Listener(i) => self.accept(i),
            Tok::Upstream(sk) => self.upstream_ready(sk),
            Tok::Conn(key) => self.conn_ready(key),
            Tok::Signals | Tok::Worker(_) => {}
        }
    }

    fn wheel(&mut self) -> Option<&mut TimerWheel> {
        Some(&mut self.wheel)
    }

    fn on_timer(&mut self, key: usize, at: u64) {
        if key >= DETACHED_TIMER {
            self.detached_timer(key - DETACHED_TIMER, at);
        } else {
            self.conn_timer(key, at);
        }
    }

    fn before_sleep(&mut self) -> Flow {
        if !self.pools.spawn.is_empty() {
            self.start_background();
        }
        if let Some(w) = &self.pools.cache {
            w.flush();
        }
        if let Some(io) = &self.pools.io {
            io.flush();
        }
        self.ctx.logs.before_sleep(self.ctx.now_ms);
        let gauges = self.ctx.now_ms.saturating_sub(self.last_gauges_ms) >= 1000;
        self.publish(gauges);
        if self.draining {
            // Background refreshes (sessions without a client) finish too:
            // their fills would otherwise be lost with the process.
            let idle = self.conns.is_empty() && self.sessions.is_empty() && self.channel.is_none();
            if idle || self.ctx.now_ms >= self.shutdown_at_ms {
                self.finish_draining();
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    fn max_sleep_ms(&self) -> Option<u64> {
        // Gauges are refreshed about once a second even when idle.
        let mut t = 1000;
        if let Some(f) = self.ctx.logs.wake_ms() {
            t = t.min(f);
        }
        if self.draining || self.acceptor.paused_until_ms > 0 {
            t = t.min(50);
        }
        if !self.parked.is_empty() {
            t = 0;
        }
        Some(t)
    }
}

impl Worker {
    fn start_draining(&mut self) {
        if self.draining {
            return;
        }
        self.draining = true;
        self.ctx.draining = true;
        self.cluster_stop.store(true, Relaxed);
        self.shutdown_at_ms = self.ctx.now_ms + self.shutdown_timeout_ms;
        // Stop accepting on our own sockets; the master keeps them open for
        // the next generation, so queued connections are not lost.
        for (_, mut l) in self.listeners.drain(..) {
            let _ = self.registry.deregister(&mut l);
        }
        // Take everything the master already sent, then serve it with
        // `Connection: close`.
        self.receive_fds();
        let now = self.ctx.now_ms;
        for (key, c) in self.conns.iter_mut() {
            c.start_draining(now);
            if c.deadline_ms < c.scheduled_ms || c.scheduled_ms == 0 {
                self.wheel.schedule(key, c.deadline_ms);
                c.scheduled_ms = c.deadline_ms;
            }
        }
    }

    /// The end of a graceful stop: close what is left, publish the cache
    /// fills and the counters.
    fn finish_draining(&mut self) {
        if !self.conns.is_empty() {
            log::warn!(
                "worker_shutdown_timeout: closing {} connections",
                self.conns.len()
            );
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.close_conn(k);
        }
        if let Some(w) = &self.pools.cache {
            w.finish(Duration::from_secs(5));
        }
        self.publish(true);
        self.ctx.logs.stop();
    }

    fn receive_fds(&mut self) {
        let Some(ch) = &self.channel else {
            return;
        };
        let fd = ch.as_raw_fd();
        let mut payload = [0u8; handoff::MAX_PAYLOAD];
        loop {
            self.fds.clear();
            match sys::recv_fds(fd, &mut payload, &mut self.fds) {
                Ok(0) => {
                    // The master closed the channel: no more connections.
                    let _ = self.registry.deregister(&mut SourceFd(&fd));
                    self.channel = None;
                    self.start_draining();
                    return;
                }
                Ok(n) => {
                    let metas = handoff::decode(&payload[..n]);
                    let fds = std::mem::take(&mut self.fds);
                    for (fd, meta) in fds.into_iter().zip(metas) {
                        let stream = TcpStream::from_std(std::net::TcpStream::from(fd));
                        self.add_conn(stream, meta.peer, meta.listen_idx);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    log::error!("recvmsg from master failed: {e}");
                    return;
                }
            }
        }
    }

    fn accept(&mut self, i: usize) {
        if self.acceptor.paused(self.ctx.now_ms) {
            return;
        }
        // Both are put back below; add_conn touches neither.
        let listeners = std::mem::take(&mut self.listeners);
        let mut acceptor = std::mem::take(&mut self.acceptor);
        if let Some((idx, l)) = listeners.get(i) {
            acceptor.drain(l, self.ctx.now_ms, |s, peer| {
                self.add_conn(s, peer, *idx);
                true
            });
        }
        self.listeners = listeners;
        self.acceptor = acceptor;
    }

    fn add_conn(&mut self, mut sock: TcpStream, peer: SocketAddr, listen_idx: usize) {
        self.ctx.counters.accepted += 1;
        if self.conns.len() >= self.max_conns {
            // Refuse politely rather than leave the client hanging.
            let _ = sock.write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n",
            );
            log::warn!("{} worker_connections are not enough", self.max_conns);
            return;
        }
        let Some(limits) = self.limits.get(listen_idx).copied() else {
            log::error!("connection for unknown listen index {listen_idx}");
            return;
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if self
            .registry
            .register(
                &mut sock,
                Tok::Conn(key).token(),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            log::error!("epoll registration of a connection failed");
            return;
        }
        // `$server_addr`: the listen address, or the socket's for a wildcard.
        let local = self
            .ctx
            .site
            .listens
            .get(listen_idx)
            .map(|l| l.conf.addr)
            .filter(|a| !a.ip().is_unspecified())
            .or_else(|| sock.local_addr().ok());
        let tls = match self
            .ctx
            .site
            .listens
            .get(listen_idx)
            .and_then(|l| l.tls.as_ref())
        {
            Some(cfg) => match crate::tls::Stream::new(cfg) {
                Ok(s) => Some(Box::new(s)),
                Err(e) => {
                    log::error!("TLS connection setup failed: {e}");
                    let _ = self.registry.deregister(&mut sock);
                    return;
                }
            },
            None => None,
        };
        let vars = ConnVars {
            serial: self.ctx.counters.accepted,
            requests: 0,
            peer,
            local,
            https: tls.is_some(),
            realip_peer: None,
        };
        let mut c = Conn::new(sock, vars, listen_idx, limits, self.ctx.now_ms, tls);
        if self.draining {
            c.start_draining(self.ctx.now_ms);
        }
        self.wheel.schedule(key, c.deadline_ms);
        c.scheduled_ms = c.deadline_ms;
        entry.insert(c);
        self.ctx.counters.handled += 1;
    }

    fn conn_ready(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.parked {
            return;
        }
        if c.tls_handshaking() {
            if self.handshakes_left == 0 {
                c.parked = true;
                self.parked.push(key);
                return;
            }
            self.handshakes_left -= 1;
        }
        if !c.on_ready(&mut self.ctx) {
            self.close_conn(key);
            return;
        }
        self.after_conn(key);
    }

    /// After a connection ran: start or drive its proxy session, then
    /// (re)arm its timer.
    fn after_conn(&mut self, key: usize) {
        if self.conns.get(key).is_some_and(|c| c.is_h2()) {
            self.after_h2(key, true);
            return;
        }
        // A finished proxied response can unblock pipelined requests, which
        // can start another proxied request: loop until the connection waits.
        for _ in 0..64 {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            let next = if let Some(req) = c.sub_req.take() {
                // An auth_request subrequest: its answer goes to `c.sub`.
                let entry = self.sessions.vacant_entry();
                let sk = entry.key();
                let mut s = Session::new(
                    req,
                    self.ctx.site.cfg.clone(),
                    key,
                    Tok::Upstream(sk).token(),
                    self.ctx.now_ms,
                );
                let reg = &self.registry;
                let Some(cap) = c.sub.as_deref_mut() else {
                    return;
                };
                let mut next = s.start(cap, &mut self.ctx, &mut self.pools, reg);
                if next == Next::Wait {
                    next = s.pump(cap, &mut self.ctx, &mut self.pools, reg);
                }
                entry.insert(s);
                c.session = Some(sk);
                next
            } else if let (Some(sk), Some(cap)) = (c.session, c.sub.as_deref_mut()) {
                let Some(s) = self.sessions.get_mut(sk) else {
                    return;
                };
                s.pump(cap, &mut self.ctx, &mut self.pools, &self.registry)
            } else if let Some(req) = c.proxy_req.take() {
                let entry = self.sessions.vacant_entry();
                let sk = entry.key();
                let mut s = Session::new(
                    req,
                    self.ctx.site.cfg.clone(),
                    key,
                    Tok::Upstream(sk).token(),
                    self.ctx.now_ms,
                );
                let reg = &self.registry;
                let mut next = s.start(c, &mut self.ctx, &mut self.pools, reg);
                if next == Next::Wait {
                    next = s.pump(c, &mut self.ctx, &mut self.pools, reg);
                }
                entry.insert(s);
                c.session = Some(sk);
                next
            } else if let Some(sk) = c.session.filter(|_| c.proxying) {
                let Some(s) = self.sessions.get_mut(sk) else {
                    return;
                };
                s.pump(c, &mut self.ctx, &mut self.pools, &self.registry)
            } else {
                break;
            };
            match next {
                Next::Wait => break,
                Next::Finished => {
                    if let Some(sk) = c.session.take() {
                        self.sessions.try_remove(sk);
                    }
                    // A subrequest's answer: the waiting request goes on.
                    c.finish_subrequest();
                    // Flush the response and go on with pipelined requests.
                    if !c.on_ready(&mut self.ctx) {
                        self.close_conn(key);
                        return;
                    }
                }
                Next::Abort => {
                    self.close_conn(key);
                    return;
                }
            }
        }
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(s) = c.session.and_then(|sk| self.sessions.get(sk)) {
            c.deadline_ms = s.deadline_ms;
        }
        if c.scheduled_ms == 0 || c.deadline_ms < c.scheduled_ms {
            self.wheel.schedule(key, c.deadline_ms);
            c.scheduled_ms = c.deadline_ms;
        }
    }

    /// Cache reads finished by the I/O pool: resume their sessions.
    fn io_done(&mut self) {
        let mut done = Vec::new();
        if let Some(io) = &self.pools.io {
            io.take_done(&mut done);
        }
        let epoch = self
            .ctx
            .stats
            .retired()
            .cache_epoch
            .load(std::sync::atomic::Ordering::Acquire);
        for d in done {
            self.pools
                .hot
                .install(d.md5, d.loaded, self.ctx.now_ms, epoch, d.seq);
            let Some(Tok::Upstream(sk)) = Tok::of(Token(d.token)) else {
                continue;
            };
            if let Some(s) = self.sessions.get_mut(sk) {
                s.io_finished();
                self.upstream_ready(sk);
            }
        }
    }

    /// Start the background refreshes sessions asked for.
    fn start_background(&mut self) {
        while let Some((req, lock)) = self.pools.spawn.pop() {
            let entry = self.sessions.vacant_entry();
            let sk = entry.key();
            let mut s = Session::background(
                req,
                self.ctx.site.cfg.clone(),
                Tok::Upstream(sk).token(),
                self.ctx.now_ms,
                lock,
            );
            let reg = &self.registry;
            let mut next = s.start(&mut self.null, &mut self.ctx, &mut self.pools, reg);
            if next == Next::Wait {
                next = s.pump(&mut self.null, &mut self.ctx, &mut self.pools, reg);
            }
            entry.insert(s);
            self.after_detached(sk, next);
        }
    }

    /// After a background refresh ran: re-arm its timer or drop it.
    fn after_detached(&mut self, sk: usize, next: Next) {
        match next {
            Next::Wait => {
                if let Some(s) = self.sessions.get_mut(sk) {
                    if s.scheduled_ms == 0 || s.deadline_ms < s.scheduled_ms {
                        self.wheel.schedule(DETACHED_TIMER + sk, s.deadline_ms);
                        s.scheduled_ms = s.deadline_ms;
                    }
                }
            }
            Next::Finished | Next::Abort => {
                if let Some(mut s) = self.sessions.try_remove(sk) {
                    s.close(&self.registry, &mut self.pools);
                }
            }
        }
    }

    fn upstream_ready(&mut self, sk: usize) {
        let Some(s) = self.sessions.get_mut(sk) else {
            return;
        };
        if s.conn_key == DETACHED {
            let next = s.pump(
                &mut self.null,
                &mut self.ctx,
                &mut self.pools,
                &self.registry,
            );
            self.after_detached(sk, next);
            return;
        }
        let key = s.conn_key;
        if self.conns.get(key).is_some_and(|c| c.is_h2()) {
            self.h2_upstream_ready(key, sk);
            return;
        }
        if self.conns.get(key).is_some_and(|c| c.session == Some(sk)) {
            self.after_conn(key);
        }
    }

    /// Close a client connection and its proxy session.
    fn close_conn(&mut self, key: usize) {
        if let Some(c) = self.conns.try_remove(key) {
            for sk in c.h2_sessions() {
                if let Some(mut s) = self.sessions.try_remove(sk) {
                    s.close(&self.registry, &mut self.pools);
                }
            }
            if let Some(sk) = c.session {
                if let Some(mut s) = self.sessions.try_remove(sk) {
                    s.close(&self.registry, &mut self.pools);
                }
            }
        }
    }

    /// Timer of connection `key` (set for `at`) expired.
    fn conn_timer(&mut self, key: usize, at: u64) {
        let now = self.ctx.now_ms;
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.scheduled_ms != at {
            return; // stale entry
        }
        c.scheduled_ms = 0;
        if c.deadline_ms > now {
            self.wheel.schedule(key, c.deadline_ms);
            c.scheduled_ms = c.deadline_ms;
        } else if c.is_h2() {
            self.h2_timer(key);
        } else if let Some(sk) = c.session {
            let Some(s) = self.sessions.get_mut(sk) else {
                return;
            };
            let next = match c.sub.as_deref_mut() {
                Some(cap) => s.on_timeout(cap, &mut self.ctx, &mut self.pools, &self.registry),
                None => s.on_timeout(c, &mut self.ctx, &mut self.pools, &self.registry),
            };
            match next {
                Next::Abort => self.close_conn(key),
                Next::Finished => {
                    c.session = None;
                    self.sessions.try_remove(sk);
                    c.finish_subrequest();
                    if c.on_ready(&mut self.ctx) {
                        self.after_conn(key);
                    } else {
                        self.close_conn(key);
                    }
                }
                Next::Wait => self.after_conn(key),
            }
        } else if c.on_timeout(&mut self.ctx) {
            // A limit_req delay ended: the request goes on (and may start a
            // proxy session); after_conn re-arms the timer.
            self.after_conn(key);
        } else {
            log::debug!("close: timeout");
            self.close_conn(key);
        }
    }

    fn detached_timer(&mut self, sk: usize, at: u64) {
        let now = self.ctx.now_ms;
        let Some(s) = self.sessions.get_mut(sk) else {
            return;
        };
        if s.conn_key != DETACHED || s.scheduled_ms != at {
            return;
        }
        s.scheduled_ms = 0;
        let next = if s.deadline_ms > now {
            Next::Wait
        } else {
            s.on_timeout(
                &mut self.null,
                &mut self.ctx,
                &mut self.pools,
                &self.registry,
            )
        };
        self.after_detached(sk, next);
    }

    fn publish(&mut self, gauges: bool) {
        self.ctx.limits.publish();
        let s = self.stats.slot(self.slot);
        let c = self.ctx.counters;
        s.requests.store(c.requests, Relaxed);
        s.accepted.store(c.accepted, Relaxed);
        s.handled.store(c.handled, Relaxed);
        s.h2_connections.store(c.h2_connections, Relaxed);
        s.h2_streams.store(c.h2_streams, Relaxed);
        s.active.store(self.conns.len() as u64, Relaxed);
        if gauges {
            self.last_gauges_ms = self.ctx.now_ms;
            let (mut r, mut w) = (0, 0);
            for (_, c) in self.conns.iter() {
                if c.is_writing() {
                    w += 1;
                } else if c.is_reading() {
                    r += 1;
                }
            }
            s.reading.store(r, Relaxed);
            s.writing.store(w, Relaxed);
        }
    }
}
