//! The master process: owns listeners, shared memory and the workers; a
//! handler of the event loop.
//!
//! Signals (nginx's table):
//! - HUP: reload — parse the config again; on error log it and keep serving;
//!   else bind new addresses, start a new generation of workers, then close
//!   the old workers' channels and send them QUIT.
//! - QUIT: graceful stop; TERM/INT: fast stop; USR1: reopen logs;
//! - CHLD: reap, and respawn a current worker that died (with a backoff when
//!   it keeps dying young).
//!
//! In handoff mode the master accepts on the shared sockets and passes the
//! fds round robin to the current workers, batched, skipping a worker whose
//! channel is full.

use crate::config::{self, Config};
use crate::event::{Acceptor, Clock, Drained, EventLoop, Flow, Handler, Tok};
use crate::http::site::{listen_table, ListenEntry};
use crate::process::handoff::{self, Meta};
use crate::process::listeners::Listeners;
use crate::process::worker::{self, WorkerInit};
use crate::shm::stats::StatsZone;
use crate::sys::{self, ChildExit, Fork, MAX_FDS_PER_MSG};
use crate::zones::Zones;
use mio::event::Event;
use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Interest, Registry};
use slab::Slab;
use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Accepted connections the master holds while every worker's channel is full.
const MAX_PENDING: usize = 8192;

struct WorkerProc {
    pid: i32,
    index: usize,
    slot: usize,
    generation: u64,
    channel: Option<OwnedFd>,
    started_ms: u64,
    quitting: bool,
    full: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    Graceful,
    Fast,
}

/// The master.
struct Master {
    cfg: Arc<Config>,
    conf_path: PathBuf,
    extra_main: Option<String>,
    registry: Registry,
    listeners: Listeners,
    accept_socks: Vec<(usize, TcpListener)>,
    table: Vec<ListenEntry>,
    workers: Slab<WorkerProc>,
    generation: u64,
    rr: usize,
    pending: VecDeque<(OwnedFd, Meta)>,
    stats: Arc<StatsZone>,
    zones: Arc<Zones>,
    stop: Stop,
    stop_deadline_ms: u64,
    respawn: Vec<(usize, u64)>,
    crashes: Vec<u32>,
    acceptor: Acceptor,
    /// The loop's clock at the last wake-up.
    now_ms: u64,
    /// Signals of this turn, handled in before_sleep (after the events).
    signals: Vec<i32>,
    /// This turn's events: a listener is readable, a worker channel writable.
    accept: bool,
    writable: bool,
}

/// Master start-up state, prepared before daemonizing.
pub struct Prepared {
    /// Config.
    pub cfg: Arc<Config>,
    /// Listeners already bound.
    pub listeners: Listeners,
    /// Limit zones, opened (created, migrated) in the state directory.
    pub zones: Arc<Zones>,
}

/// Bind what `cfg` needs (before daemonizing, so errors reach the terminal).
pub fn prepare(cfg: Arc<Config>) -> io::Result<Prepared> {
    let mut listeners = Listeners::default();
    let table = listen_table(&cfg);
    listeners.update(&table, cfg.events.accept_mode, cfg.worker_processes)?;
    // After the listeners: a second instance on the same ports fails there,
    // before it touches the running one's zone files.
    let zones = Arc::new(Zones::open(&cfg, None)?);
    crate::process::owner::hand_over(&cfg)?;
    Ok(Prepared {
        cfg,
        listeners,
        zones,
    })
}

/// Start the master and its workers; run until stopped.
pub fn run(p: Prepared, conf_path: PathBuf, extra_main: Option<String>) -> io::Result<()> {
    let mut lp = EventLoop::new(256)?;
    let mut m = Master::new(p, conf_path, extra_main, &mut lp)?;
    m.start_workers()?;
    lp.run(&mut m)
}

impl Master {
    /// Build the master from prepared state, on `lp`.
    fn new(
        p: Prepared,
        conf_path: PathBuf,
        extra_main: Option<String>,
        lp: &mut EventLoop,
    ) -> io::Result<Master> {
        let signal_fd = sys::install_signal_pipe(&[
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGUSR1,
            libc::SIGCHLD,
        ])?;
        lp.watch_signals(signal_fd)?;
        let table = listen_table(&p.cfg);
        let mut m = Master {
            cfg: p.cfg,
            conf_path,
            extra_main,
            registry: lp.registry().try_clone()?,
            listeners: p.listeners,
            accept_socks: Vec::new(),
            table,
            workers: Slab::new(),
            generation: 1,
            rr: 0,
            pending: VecDeque::new(),
            stats: Arc::new(StatsZone::new()?),
            zones: p.zones,
            stop: Stop::Running,
            stop_deadline_ms: 0,
            respawn: Vec::new(),
            crashes: Vec::new(),
            acceptor: Acceptor::default(),
            now_ms: lp.clock().now_ms(),
            signals: Vec::new(),
            accept: false,
            writable: false,
        };
        m.register_accept_sockets()?;
        Ok(m)
    }

    fn register_accept_sockets(&mut self) -> io::Result<()> {
        for (_, mut l) in self.accept_socks.drain(..) {
            let _ = self.registry.deregister(&mut l);
            // The fd is a dup: closing it leaves the socket open.
        }
        for (idx, b) in self.listeners.bound.iter().enumerate() {
            if let Some(shared) = &b.shared {
                let mut l = TcpListener::from_std(shared.try_clone()?);
                self.registry
                    .register(&mut l, Tok::Listener(idx).token(), Interest::READABLE)?;
                self.accept_socks.push((idx, l));
            }
        }
        Ok(())
    }

    fn start_workers(&mut self) -> io::Result<()> {
        self.crashes = vec![0; self.cfg.worker_processes];
        for i in 0..self.cfg.worker_processes {
            self.spawn(i)?;
        }
        log::info!(
            "sluice {} started: {} workers, {:?} mode",
            env!("CARGO_PKG_VERSION"),
            self.cfg.worker_processes,
            self.cfg.events.accept_mode
        );
        Ok(())
    }

    fn handle_signal(&mut self, sig: i32) {
        match sig {
            libc::SIGHUP if self.stop == Stop::Running => self.reload(),
            libc::SIGQUIT => self.begin_stop(Stop::Graceful),
            libc::SIGTERM | libc::SIGINT => self.begin_stop(Stop::Fast),
            libc::SIGUSR1 => {
                log::info!("reopening logs");
                if let Err(e) = crate::log::error::reopen() {
                    eprintln!("sluice: reopen error log failed: {e}");
                }
                // Rotated logs are new files, made by root: the workers'.
                if let Err(e) = crate::process::owner::hand_over(&self.cfg) {
                    log::error!("{e}");
                }
                for (_, w) in self.workers.iter() {
                    let _ = sys::kill(w.pid, libc::SIGUSR1);
                }
            }
            libc::SIGCHLD => self.reap(),
            _ => {}
        }
    }

    fn begin_stop(&mut self, how: Stop) {
        if self.stop == Stop::Fast || self.stop == how {
            return;
        }
        log::info!(
            "{} stop requested",
            if how == Stop::Fast {
                "fast"
            } else {
                "graceful"
            }
        );
        self.stop = how;
        // No more new connections: close the accept sockets and what is queued.
        for (_, mut l) in self.accept_socks.drain(..) {
            let _ = self.registry.deregister(&mut l);
        }
        self.listeners.bound.clear();
        self.hand_off();
        self.pending.clear();
        let now = self.now_ms;
        self.stop_deadline_ms = match how {
            Stop::Graceful => now + self.cfg.worker_shutdown_timeout_ms + 2000,
            _ => now + 2000,
        };
        let sig = if how == Stop::Fast {
            libc::SIGTERM
        } else {
            libc::SIGQUIT
        };
        let keys: Vec<usize> = self.workers.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.retire(k, sig);
        }
    }

    /// Stop handing connections to a worker and tell it to finish.
    fn retire(&mut self, key: usize, sig: i32) {
        let Some(w) = self.workers.get_mut(key) else {
            return;
        };
        w.quitting = true;
        if let Some(ch) = w.channel.take() {
            let _ = self.registry.deregister(&mut SourceFd(&ch.as_raw_fd()));
        }
        let _ = sys::kill(w.pid, sig);
    }

    fn reload(&mut self) {
        log::info!("reloading configuration {}", self.conf_path.display());
        let cfg = match config::load(&self.conf_path, self.extra_main.as_deref()) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                log::error!("reload failed, keeping the running configuration: {e}");
                return;
            }
        };
        // Zones with the same name and size keep their mapping; others are
        // opened, migrated or rebuilt (each with a log line).
        let zones = match Zones::open(&cfg, Some(&self.zones)) {
            Ok(z) => Arc::new(z),
            Err(e) => {
                log::error!("reload failed, keeping the running configuration: {e}");
                return;
            }
        };
        if let Err(e) = crate::process::owner::hand_over(&cfg) {
            log::error!("reload failed, keeping the running configuration: {e}");
            return;
        }
        let table = listen_table(&cfg);
        // Hand queued connections to the old generation while indices still match.
        self.hand_off();
        let old_table = std::mem::take(&mut self.table);
        if let Err(e) = self
            .listeners
            .update(&table, cfg.events.accept_mode, cfg.worker_processes)
        {
            log::error!("reload failed, keeping the running configuration: {e}");
            self.table = old_table;
            return;
        }
        // Re-index connections still queued to the new table by address.
        let mut kept = VecDeque::new();
        for (fd, mut meta) in self.pending.drain(..) {
            let addr = old_table.get(meta.listen_idx).map(|e| e.conf.addr);
            if let Some(i) = table.iter().position(|e| Some(e.conf.addr) == addr) {
                meta.listen_idx = i;
                kept.push_back((fd, meta));
            }
        }
        self.pending = kept;
        self.table = table;
        if let Err(e) = self.register_accept_sockets() {
            log::error!("registering listeners failed: {e}");
        }
        if self.cfg.error_log.path != cfg.error_log.path {
            if let Err(e) = crate::log::error::use_file(cfg.error_log.path.clone()) {
                log::error!("cannot open new error log: {e}");
            }
        }
        crate::log::error::set_level(cfg.error_log.level);
        self.cfg = cfg;
        self.zones = zones;
        self.generation += 1;
        self.respawn.clear();
        let old: Vec<usize> = self
            .workers
            .iter()
            .filter(|(_, w)| !w.quitting)
            .map(|(k, _)| k)
            .collect();
        self.crashes = vec![0; self.cfg.worker_processes];
        for i in 0..self.cfg.worker_processes {
            if let Err(e) = self.spawn(i) {
                log::error!("fork of worker {i} failed: {e}");
                self.respawn.push((i, self.now_ms + 500));
            }
        }
        for k in old {
            self.retire(k, libc::SIGQUIT);
        }
        self.stats.retired().reloads.fetch_add(1, Relaxed);
        log::info!("reload done: generation {}", self.generation);
    }

    fn reap(&mut self) {
        while let Some((pid, how)) = sys::reap_child() {
            let Some(key) = self
                .workers
                .iter()
                .find(|(_, w)| w.pid == pid)
                .map(|(k, _)| k)
            else {
                continue;
            };
            let w = self.workers.remove(key);
            if let Some(ch) = &w.channel {
                let _ = self.registry.deregister(&mut SourceFd(&ch.as_raw_fd()));
            }
            self.stats.release(w.slot);
            let crashed = !matches!(how, ChildExit::Exited(0));
            if crashed {
                log::error!("worker {} (pid {pid}) exited: {how:?}", w.index);
            } else {
                log::info!("worker {} (pid {pid}) exited", w.index);
            }
            if self.stop == Stop::Running && !w.quitting && w.generation == self.generation {
                let now = self.now_ms;
                let young = now.saturating_sub(w.started_ms) < 1000;
                let n = self.crashes.get(w.index).copied().unwrap_or(0);
                let n = if young { n + 1 } else { 0 };
                if let Some(c) = self.crashes.get_mut(w.index) {
                    *c = n;
                }
                let delay = if n <= 1 {
                    0
                } else {
                    (50u64 << n.min(7)).min(5000)
                };
                if delay > 0 {
                    log::warn!("worker {} keeps dying; respawning in {delay}ms", w.index);
                }
                self.respawn.push((w.index, now + delay));
                self.stats.retired().respawns.fetch_add(1, Relaxed);
            }
        }
    }

    fn run_respawns(&mut self) {
        let now = self.now_ms;
        let due: Vec<usize> = self
            .respawn
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(i, _)| *i)
            .collect();
        self.respawn.retain(|(_, at)| *at > now);
        for i in due {
            if let Err(e) = self.spawn(i) {
                log::error!("respawn of worker {i} failed: {e}");
                self.respawn.push((i, now + 1000));
            }
        }
    }

    fn spawn(&mut self, index: usize) -> io::Result<()> {
        let (master_end, worker_end) = sys::seqpacket_pair()?;
        let slot = self
            .stats
            .claim(-1, self.generation)
            .ok_or_else(|| io::Error::other("no free stats slot"))?;
        let master_pid = sys::getpid();
        // Signals stay blocked until the child has its own signal pipe (see
        // sys::block_signals); the worker restores `mask` then.
        let mask = sys::block_signals()?;
        let forked = sys::fork();
        if !matches!(forked, Ok(Fork::Child)) {
            sys::set_signal_mask(&mask)?;
        }
        match forked {
            Err(e) => {
                self.stats.release(slot);
                Err(e)
            }
            Ok(Fork::Child) => {
                let mut init =
                    self.worker_init_in_child(index, slot, worker_end, master_end, master_pid);
                init.signal_mask = mask;
                worker::run(init)
            }
            Ok(Fork::Parent(pid)) => {
                drop(worker_end);
                self.stats.slot(slot).pid.store(pid as u64, Relaxed);
                let entry = self.workers.vacant_entry();
                let key = entry.key();
                self.registry.register(
                    &mut SourceFd(&master_end.as_raw_fd()),
                    Tok::Worker(key).token(),
                    Interest::WRITABLE,
                )?;
                entry.insert(WorkerProc {
                    pid,
                    index,
                    slot,
                    generation: self.generation,
                    channel: Some(master_end),
                    started_ms: self.now_ms,
                    quitting: false,
                    full: false,
                });
                Ok(())
            }
        }
    }

    /// In the forked child: keep what the worker needs, close the rest
    /// (other workers' channels, shared listeners, the master's poll).
    fn worker_init_in_child(
        &mut self,
        index: usize,
        slot: usize,
        channel: OwnedFd,
        master_end: OwnedFd,
        master_pid: i32,
    ) -> WorkerInit {
        drop(master_end);
        for (_, w) in self.workers.iter_mut() {
            w.channel = None;
        }
        self.pending.clear();
        let mut mine = Vec::new();
        for (idx, b) in self.listeners.bound.iter_mut().enumerate() {
            if index < b.per_worker.len() {
                mine.push((idx, b.per_worker.swap_remove(index)));
            }
        }
        self.listeners.bound.clear();
        self.accept_socks.clear();
        WorkerInit {
            cfg: self.cfg.clone(),
            index,
            slot,
            channel,
            listeners: mine,
            stats: self.stats.clone(),
            zones: self.zones.clone(),
            master_pid,
            signal_mask: nix::sys::signal::SigSet::empty(),
        }
    }

    fn accept_all(&mut self) {
        let now = self.now_ms;
        if self.acceptor.paused(now) {
            return;
        }
        for (idx, l) in &self.accept_socks {
            if self.pending.len() >= MAX_PENDING {
                return; // resumed when a channel drains
            }
            let pending = &mut self.pending;
            let drained = self.acceptor.drain(l, now, |s, peer| {
                let fd: OwnedFd = s.into();
                pending.push_back((
                    fd,
                    Meta {
                        listen_idx: *idx,
                        peer,
                    },
                ));
                pending.len() < MAX_PENDING
            });
            if drained != Drained::Empty {
                return;
            }
        }
    }

    /// Pass queued connections to current workers, round robin, batched.
    fn hand_off(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let current: Vec<usize> = self
            .workers
            .iter()
            .filter(|(_, w)| !w.quitting && w.channel.is_some() && w.generation == self.generation)
            .map(|(k, _)| k)
            .collect();
        if current.is_empty() {
            return;
        }
        let max_conns = self.cfg.events.worker_connections as u64;
        let per_round = self
            .pending
            .len()
            .div_ceil(current.len())
            .clamp(1, MAX_FDS_PER_MSG);
        let mut payload = Vec::with_capacity(handoff::MAX_PAYLOAD);
        let mut fds = Vec::with_capacity(MAX_FDS_PER_MSG);
        let mut stuck = 0;
        while !self.pending.is_empty() && stuck < current.len() {
            self.rr = (self.rr + 1) % current.len();
            let key = current[self.rr];
            let w = &mut self.workers[key];
            let busy = self.stats.slot(w.slot).active.load(Relaxed) >= max_conns;
            let Some(ch) = w.channel.as_ref().filter(|_| !w.full && !busy) else {
                stuck += 1;
                continue;
            };
            payload.clear();
            fds.clear();
            for (fd, meta) in self.pending.iter().take(per_round) {
                handoff::encode(meta, &mut payload);
                fds.push(fd.as_raw_fd());
            }
            match sys::send_fds(ch.as_raw_fd(), &payload, &fds) {
                Ok(()) => {
                    stuck = 0;
                    // The worker has its own copies now; close ours.
                    let n = fds.len();
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    w.full = true;
                    stuck += 1;
                }
                Err(e) => {
                    log::error!("sendmsg to worker {} failed: {e}", w.index);
                    w.full = true;
                    stuck += 1;
                }
            }
        }
        if !self.pending.is_empty() && stuck >= current.len() {
            // Everyone is busy or full: if all are merely at worker_connections,
            // let the workers refuse politely rather than queue here forever.
            let all_busy = current.iter().all(|k| !self.workers[*k].full);
            if all_busy {
                for k in &current {
                    self.workers[*k].full = false;
                }
                let key = current[self.rr % current.len()];
                if let Some(ch) = self.workers[key].channel.as_ref() {
                    payload.clear();
                    fds.clear();
                    for (fd, meta) in self.pending.iter().take(MAX_FDS_PER_MSG) {
                        handoff::encode(meta, &mut payload);
                        fds.push(fd.as_raw_fd());
                    }
                    if sys::send_fds(ch.as_raw_fd(), &payload, &fds).is_ok() {
                        let n = fds.len();
                        self.pending.drain(..n);
                    }
                }
            }
        }
    }
}

impl Handler for Master {
    fn after_sleep(&mut self, clock: &Clock) {
        self.now_ms = clock.now_ms();
    }

    fn on_signal(&mut self, sig: i32) -> Flow {
        self.signals.push(sig);
        Flow::Continue
    }

    fn on_event(&mut self, tok: Tok, _ev: &Event) {
        match tok {
            Tok::Worker(key) => {
                if let Some(w) = self.workers.get_mut(key) {
                    w.full = false;
                }
                self.writable = true;
            }
            Tok::Listener(_) => self.accept = true,
            _ => {}
        }
    }

    fn before_sleep(&mut self) -> Flow {
        for i in 0..self.signals.len() {
            self.handle_signal(self.signals[i]);
        }
        self.signals.clear();
        let (accept, writable) = (self.accept, self.writable);
        (self.accept, self.writable) = (false, false);
        if self.stop == Stop::Running {
            if accept || writable || self.acceptor.paused_until_ms > 0 {
                self.accept_all();
            }
            self.hand_off();
            self.run_respawns();
            return Flow::Continue;
        }
        if self.workers.is_empty() {
            log::info!("exit");
            return Flow::Stop;
        }
        if self.now_ms >= self.stop_deadline_ms {
            for (_, w) in self.workers.iter() {
                let _ = sys::kill(w.pid, libc::SIGKILL);
            }
            self.stop_deadline_ms = self.now_ms + 1000;
        }
        Flow::Continue
    }

    fn max_sleep_ms(&self) -> Option<u64> {
        let busy = self.stop != Stop::Running
            || !self.respawn.is_empty()
            || self.acceptor.paused_until_ms > 0;
        busy.then_some(50)
    }
}

/// Where the config listens, for the start-up line.
pub fn describe(cfg: &Config) -> String {
    listen_table(cfg)
        .iter()
        .map(|e| format!("http://{}/", e.conf.addr))
        .collect::<Vec<_>>()
        .join(", ")
}
