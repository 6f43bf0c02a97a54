//! Keep-alive (closed loop) and constant-rate (open loop) modes: one mio event loop
//! per thread driving persistent connections.
//!
//! Keep-alive: each connection keeps `pipeline` requests in flight and sends the next
//! one as soon as a response completes; latency is measured from the send.
//! Rate: request k of a thread is *intended* at `start + k / rate`; it goes out on a
//! connection with a free slot, and its latency is measured from the intended time,
//! so a stalled server shows up as latency instead of as fewer requests
//! (no coordinated omission). Sends are woken by a timerfd (microsecond resolution,
//! unlike epoll's milliseconds), so the measured latency holds little timer slack.
//! With `--no-keepalive` every request goes on a connection of its own (sent with
//! `Connection: close`, closed by the server), and in keep-alive mode its latency runs
//! from the start of the connect (TLS handshake included).
//!
//! Accounting: a request counts once it has an outcome (`ok` or an error kind).
//! All requests in flight on a connection that fails get that failure's kind.
//! Requests pipelined behind a `Connection: close` response were never answered by
//! design; they are re-issued, not counted. In flight at the end: `unfinished`.

use crate::http::ResponseParser;
use crate::stats::{ErrorKind, Stats};
use crate::stream::{read_error, Stream};
use crate::{sys, tls};
use mio::{event::Event, unix::SourceFd, Events, Interest, Poll, Token};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Size of the per-thread read buffer, bytes.
const READ_BUF_BYTES: usize = 256 * 1024;
/// Wait before reconnecting after a failed connect.
const RECONNECT_DELAY: Duration = Duration::from_millis(10);
/// Token of the rate-mode send timer (connections use their index).
const TIMER: Token = Token(usize::MAX);

/// One server address and the requests (round robin) sent to it.
#[derive(Clone, Debug)]
pub struct Target {
    /// Server address.
    pub addr: SocketAddr,
    /// Complete request bytes, one entry per URL on this address.
    pub requests: Vec<Vec<u8>>,
    /// Where each request has the `{n}` marker (a URL asking for a unique
    /// path per request), if it has one.
    pub marks: Vec<Option<usize>>,
    /// Source addresses to spread connections over (empty: kernel's choice).
    pub sources: Vec<IpAddr>,
    /// TLS for an https target.
    pub tls: Option<tls::Target>,
}

/// What all threads share.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Targets; connection k goes to target k mod len.
    pub targets: Vec<Target>,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Per-request and connect timeout.
    pub timeout: Duration,
    /// Requests are HEAD (responses have no body).
    pub head: bool,
    /// One request per connection (the requests say `Connection: close`).
    pub no_keepalive: bool,
    /// What `{n}` becomes before the thread and request numbers: differs
    /// from run to run, so a cache in front never saw the paths before.
    pub run_tag: String,
}

/// The position of the `{n}` marker in request bytes.
pub fn unique_mark(req: &[u8]) -> Option<usize> {
    req.windows(3).position(|w| w == b"{n}")
}

/// One thread's share of the run.
#[derive(Clone, Copy, Debug)]
pub struct Share {
    /// Connections of this thread.
    pub conns: usize,
    /// Global index of its first connection (spreads targets and sources).
    pub first_conn: usize,
    /// Requests this thread may issue (`None`: until `end`).
    pub quota: Option<u64>,
    /// Open-loop rate of this thread, requests/s (`None`: keep-alive mode).
    pub rate_per_sec: Option<f64>,
    /// Common start instant.
    pub start: Instant,
    /// Hard end of the run.
    pub end: Instant,
}

/// Runs one thread's share; `progress` receives the count of completed requests.
pub fn run(plan: &Plan, share: Share, progress: &AtomicU64) -> io::Result<Stats> {
    let mut w = Worker {
        plan,
        poll: Poll::new()?,
        conns: (0..share.conns)
            .map(|k| Conn::new(plan, share.first_conn + k))
            .collect(),
        rbuf: vec![0; READ_BUF_BYTES],
        stats: Stats::new(),
        quota: share.quota,
        in_flight: 0,
        retry: Vec::new(),
        rate: match share.rate_per_sec {
            Some(per_sec) => Some(RateState {
                per_sec,
                next_k: 0,
                free: Vec::new(),
                requeue: Vec::new(),
                timer: TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK)?,
                armed: None,
            }),
            None => None,
        },
        start: share.start,
        end: share.end,
        first_conn: share.first_conn,
        seq: 0,
    };
    w.run_loop(progress)?;
    Ok(w.stats)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Connecting { since: Instant },
    Open,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    intended: Instant,
    sent: Instant,
}

struct Conn {
    stream: Option<Stream>,
    phase: Phase,
    /// When the current connection's connect started.
    opened: Instant,
    target: usize,
    next_req: usize,
    source_seq: usize,
    parser: ResponseParser,
    leftover: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    inflight: VecDeque<InFlight>,
    closing: bool,
}

impl Conn {
    fn new(plan: &Plan, global_index: usize) -> Self {
        Conn {
            stream: None,
            phase: Phase::Idle,
            opened: Instant::now(),
            target: global_index % plan.targets.len(),
            next_req: 0,
            source_seq: global_index,
            parser: ResponseParser::new(plan.head),
            leftover: Vec::new(),
            wbuf: Vec::with_capacity(4096),
            wpos: 0,
            inflight: VecDeque::with_capacity(plan.pipeline),
            closing: false,
        }
    }
}

struct RateState {
    per_sec: f64,
    /// Index of the next request never issued before.
    next_k: u64,
    /// Connections with a free slot (may hold stale entries; checked on use).
    free: Vec<usize>,
    /// Intended times of requests to re-issue (dropped behind `Connection: close`).
    requeue: Vec<Instant>,
    /// Wakes the loop at the next intended send.
    timer: TimerFd,
    /// When `timer` is set to fire.
    armed: Option<Instant>,
}

struct Worker<'a> {
    plan: &'a Plan,
    poll: Poll,
    conns: Vec<Conn>,
    rbuf: Vec<u8>,
    stats: Stats,
    quota: Option<u64>,
    in_flight: usize,
    retry: Vec<(Instant, usize)>,
    rate: Option<RateState>,
    start: Instant,
    end: Instant,
    /// First connection of this thread (names its unique paths).
    first_conn: usize,
    /// Unique paths issued so far.
    seq: u64,
}

impl Worker<'_> {
    fn run_loop(&mut self, progress: &AtomicU64) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        if let Some(rs) = &self.rate {
            let fd = rs.timer.as_fd().as_raw_fd();
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), TIMER, Interest::READABLE)?;
        }
        let now = Instant::now();
        for i in 0..self.conns.len() {
            self.connect(i, now);
        }
        let tick =
            (self.plan.timeout / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
        let mut next_tick = now + tick;
        let mut reported = 0u64;
        loop {
            let now = Instant::now();
            if now >= self.end || self.all_issued_and_done() {
                break;
            }
            if now >= next_tick {
                self.check_timeouts(now);
                next_tick = now + tick;
                let done = self.stats.sent();
                progress.fetch_add(done - reported, Ordering::Relaxed);
                reported = done;
            }
            self.reconnect_due(now);
            self.dispatch(now);
            let wake = self.end.min(next_tick);
            self.arm_timer(now);
            match self
                .poll
                .poll(&mut events, Some(wake.saturating_duration_since(now)))
            {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                if ev.token() == TIMER {
                    if let Some(rs) = &mut self.rate {
                        let _ = nix::unistd::read(&rs.timer, &mut [0u8; 8]);
                        rs.armed = None;
                    }
                } else {
                    self.on_event(ev.token().0, ev);
                }
            }
        }
        progress.fetch_add(self.stats.sent() - reported, Ordering::Relaxed);
        self.finish();
        Ok(())
    }

    fn all_issued_and_done(&self) -> bool {
        self.quota == Some(0) && self.in_flight == 0
    }

    /// Takes one request from the budget; false when it is used up.
    fn take_quota(&mut self) -> bool {
        match &mut self.quota {
            Some(0) => false,
            Some(q) => {
                *q -= 1;
                true
            }
            None => true,
        }
    }

    fn connect(&mut self, i: usize, now: Instant) {
        if self.quota == Some(0) {
            return;
        }
        let conn = &mut self.conns[i];
        let target = &self.plan.targets[conn.target];
        let source = if target.sources.is_empty() {
            None
        } else {
            conn.source_seq = conn.source_seq.wrapping_add(1);
            Some(target.sources[conn.source_seq % target.sources.len()])
        };
        let started = sys::start_connect(target.addr, source).and_then(|mut s| {
            self.poll.registry().register(
                &mut s,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(s)
        });
        match started {
            Ok(s) => {
                conn.stream = Some(Stream::new(s));
                conn.phase = Phase::Connecting { since: now };
                conn.opened = now;
            }
            Err(_) => self.connect_failed(i, ErrorKind::Connect, now),
        }
    }

    /// A connect attempt failed: it costs one request of that kind.
    fn connect_failed(&mut self, i: usize, kind: ErrorKind, now: Instant) {
        self.drop_stream(i);
        if self.take_quota() {
            self.stats.record_error(kind, 1);
        }
        self.retry.push((now + RECONNECT_DELAY, i));
    }

    fn reconnect_due(&mut self, now: Instant) {
        let mut k = 0;
        while k < self.retry.len() {
            if self.retry[k].0 <= now {
                let (_, i) = self.retry.swap_remove(k);
                self.connect(i, now);
            } else {
                k += 1;
            }
        }
    }

    fn drop_stream(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        if let Some(mut s) = conn.stream.take() {
            self.stats.record_handshake(s.handshake());
            let _ = self.poll.registry().deregister(s.socket());
        }
        conn.phase = Phase::Idle;
        conn.parser.reset();
        conn.leftover.clear();
        conn.wbuf.clear();
        conn.wpos = 0;
        conn.closing = false;
    }

    fn on_event(&mut self, i: usize, ev: &Event) {
        let now = Instant::now();
        let Some(conn) = self.conns.get_mut(i) else {
            return;
        };
        match conn.phase {
            Phase::Idle => {}
            Phase::Connecting { .. } => {
                let Some(stream) = &mut conn.stream else {
                    return;
                };
                match sys::connect_result(stream.socket()) {
                    Ok(true) => match &self.plan.targets[conn.target].tls {
                        Some(t) if stream.start_tls(t).is_err() => {
                            self.connect_failed(i, ErrorKind::Tls, now)
                        }
                        _ => self.on_connected(i, now),
                    },
                    Ok(false) => {}
                    Err(_) => self.connect_failed(i, ErrorKind::Connect, now),
                }
            }
            Phase::Open => {
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.on_readable(i);
                }
                let conn = &self.conns[i];
                if ev.is_writable()
                    && conn.phase == Phase::Open
                    && (conn.wpos < conn.wbuf.len()
                        || conn.stream.as_ref().is_some_and(Stream::wants_write))
                {
                    self.flush(i, now);
                }
            }
        }
    }

    fn on_connected(&mut self, i: usize, now: Instant) {
        self.conns[i].phase = Phase::Open;
        match &mut self.rate {
            Some(rs) => {
                rs.free.extend(std::iter::repeat_n(i, self.plan.pipeline));
                self.dispatch(now);
            }
            None => self.top_up(i, now),
        }
        // The ClientHello, when nothing was written (rate mode, no request due).
        if self.conns[i].phase == Phase::Open && self.conns[i].wbuf.is_empty() {
            self.flush(i, now);
        }
    }

    /// Appends one request to connection `i`'s write buffer.
    fn issue(&mut self, i: usize, intended: Instant, now: Instant) {
        let conn = &mut self.conns[i];
        let target = &self.plan.targets[conn.target];
        let req = &target.requests[conn.next_req];
        match target.marks[conn.next_req] {
            Some(at) => {
                use std::io::Write;
                self.seq += 1;
                conn.wbuf.extend_from_slice(&req[..at]);
                let _ = write!(
                    conn.wbuf,
                    "{}-{}-{}",
                    self.plan.run_tag, self.first_conn, self.seq
                );
                conn.wbuf.extend_from_slice(&req[at + 3..]);
            }
            None => conn.wbuf.extend_from_slice(req),
        }
        conn.next_req = (conn.next_req + 1) % target.requests.len();
        conn.inflight.push_back(InFlight {
            intended,
            sent: now,
        });
        self.in_flight += 1;
    }

    /// Keep-alive mode: fill connection `i` up to the pipelining depth and send.
    fn top_up(&mut self, i: usize, now: Instant) {
        let mut added = false;
        // One request per connection: it waited for the connect (and handshake).
        let since = if self.plan.no_keepalive {
            self.conns[i].opened
        } else {
            now
        };
        while {
            let c = &self.conns[i];
            c.phase == Phase::Open && !c.closing && c.inflight.len() < self.plan.pipeline
        } && self.take_quota()
        {
            self.issue(i, since, since);
            added = true;
        }
        if added {
            self.flush(i, now);
        }
    }

    /// Rate mode: send every request whose intended time has come, while
    /// connections have free slots.
    fn dispatch(&mut self, now: Instant) {
        let Some(rs) = &self.rate else { return };
        let elapsed = now.saturating_duration_since(self.start);
        let due = (elapsed.as_secs_f64() * rs.per_sec) as u64 + 1;
        loop {
            let Some(rs) = &self.rate else { return };
            let from_requeue = !rs.requeue.is_empty();
            if (!from_requeue && rs.next_k >= due) || self.quota == Some(0) {
                return;
            }
            let Some(i) = self.pop_free() else { return };
            let Some(rs) = &mut self.rate else { return };
            let intended = match rs.requeue.pop() {
                Some(t) => t,
                None => {
                    let t = self.start + Duration::from_secs_f64(rs.next_k as f64 / rs.per_sec);
                    rs.next_k += 1;
                    t
                }
            };
            self.take_quota();
            self.issue(i, intended, now);
            self.flush(i, now);
        }
    }

    fn pop_free(&mut self) -> Option<usize> {
        let rs = self.rate.as_mut()?;
        while let Some(i) = rs.free.pop() {
            let c = &self.conns[i];
            if c.phase == Phase::Open && !c.closing && c.inflight.len() < self.plan.pipeline {
                return Some(i);
            }
        }
        None
    }

    /// When the loop must wake up for the next intended send (rate mode).
    fn next_wake(&self) -> Option<Instant> {
        let rs = self.rate.as_ref()?;
        if rs.free.is_empty() || self.quota == Some(0) {
            return None;
        }
        if !rs.requeue.is_empty() {
            return Some(self.start);
        }
        Some(self.start + Duration::from_secs_f64(rs.next_k as f64 / rs.per_sec))
    }

    /// Rate mode: sets the timer to the next intended send, if that changed.
    fn arm_timer(&mut self, now: Instant) {
        let wake = self.next_wake();
        let Some(rs) = &mut self.rate else { return };
        if wake == rs.armed {
            return;
        }
        let result = match wake {
            Some(t) => {
                // A zero value would disarm the timer: fire in 1 µs instead.
                let delay = t
                    .saturating_duration_since(now)
                    .max(Duration::from_micros(1));
                let spec = TimeSpec::from_duration(delay);
                rs.timer
                    .set(Expiration::OneShot(spec), TimerSetTimeFlags::empty())
            }
            None => rs.timer.unset(),
        };
        rs.armed = if result.is_ok() { wake } else { None };
    }

    fn flush(&mut self, i: usize, now: Instant) {
        let conn = &mut self.conns[i];
        let Some(stream) = &mut conn.stream else {
            return;
        };
        while conn.wpos < conn.wbuf.len() {
            match stream.write(&conn.wbuf[conn.wpos..]) {
                Ok(0) => return self.close(i, Some(ErrorKind::Write), now),
                Ok(n) => conn.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(i, Some(ErrorKind::Write), now),
            }
        }
        conn.wbuf.clear();
        conn.wpos = 0;
        if stream.flush().is_err() {
            self.close(i, Some(ErrorKind::Write), now);
        }
    }

    fn on_readable(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let mut len = conn.leftover.len();
        self.rbuf[..len].copy_from_slice(&conn.leftover);
        conn.leftover.clear();
        let mut eof = false;
        let mut failure = None;
        let mut now = Instant::now();
        loop {
            let Some(stream) = &mut self.conns[i].stream else {
                return;
            };
            let space = self.rbuf.len() - len;
            if space == 0 {
                failure = Some(ErrorKind::Parse); // unreachable: the parser bounds heads
                break;
            }
            match stream.read(&mut self.rbuf[len..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    now = Instant::now();
                    self.stats.bytes += n as u64;
                    len += n;
                    match self.consume(i, len, now) {
                        Ok(used) => {
                            self.rbuf.copy_within(used..len, 0);
                            len -= used;
                        }
                        Err(kind) => {
                            failure = Some(kind);
                            break;
                        }
                    }
                    // A short read drained the socket; edge-triggered readiness
                    // fires again when more arrives.
                    if n < space || self.conns[i].closing {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(read_error(&e, &mut self.stats));
                    break;
                }
            }
        }
        if let Some(kind) = failure {
            return self.close(i, Some(kind), now);
        }
        if eof {
            if let Some(resp) = self.conns[i].parser.on_eof() {
                if let Err(kind) = self.complete(i, resp, now) {
                    return self.close(i, Some(kind), now);
                }
            }
            let conn = &self.conns[i];
            let clean = conn.inflight.is_empty() || conn.closing;
            return self.close(i, if clean { None } else { Some(ErrorKind::Read) }, now);
        }
        if self.conns[i].closing {
            return self.close(i, None, now);
        }
        self.conns[i].leftover.extend_from_slice(&self.rbuf[..len]);
        if self.rate.is_none() {
            self.top_up(i, now);
        }
    }

    /// Parses `rbuf[..len]` for connection `i`; returns the bytes used.
    fn consume(&mut self, i: usize, len: usize, now: Instant) -> Result<usize, ErrorKind> {
        let mut pos = 0;
        while pos < len && !self.conns[i].closing {
            let parsed = self.conns[i].parser.parse(&self.rbuf[pos..len]);
            match parsed {
                Ok((n, Some(resp))) => {
                    pos += n;
                    self.complete(i, resp, now)?;
                }
                Ok((n, None)) => {
                    pos += n;
                    break;
                }
                Err(_) => return Err(ErrorKind::Parse),
            }
        }
        Ok(pos)
    }

    fn complete(
        &mut self,
        i: usize,
        resp: crate::http::Response,
        now: Instant,
    ) -> Result<(), ErrorKind> {
        let conn = &mut self.conns[i];
        let Some(req) = conn.inflight.pop_front() else {
            return Err(ErrorKind::Parse); // a response nobody asked for
        };
        self.in_flight -= 1;
        self.stats
            .record_response(resp.status, now.saturating_duration_since(req.intended));
        if !resp.keep_alive {
            conn.closing = true;
        } else if let Some(rs) = &mut self.rate {
            rs.free.push(i);
        }
        Ok(())
    }

    /// Closes connection `i`. With an error kind, every request in flight on it
    /// failed that way; without, they are re-issued. Then reconnects.
    fn close(&mut self, i: usize, failure: Option<ErrorKind>, now: Instant) {
        let conn = &mut self.conns[i];
        let n = conn.inflight.len();
        self.in_flight -= n;
        match failure {
            Some(kind) => self.stats.record_error(kind, n as u64),
            None => {
                if let Some(q) = &mut self.quota {
                    *q += n as u64;
                }
                if let Some(rs) = &mut self.rate {
                    rs.requeue.extend(conn.inflight.iter().map(|r| r.intended));
                }
            }
        }
        conn.inflight.clear();
        self.drop_stream(i);
        if now < self.end {
            self.connect(i, now);
        }
    }

    fn check_timeouts(&mut self, now: Instant) {
        let timeout = self.plan.timeout;
        for i in 0..self.conns.len() {
            let conn = &self.conns[i];
            match conn.phase {
                Phase::Connecting { since } if now - since >= timeout => {
                    self.connect_failed(i, ErrorKind::Timeout, now);
                }
                Phase::Open
                    if conn
                        .inflight
                        .front()
                        .is_some_and(|r| now - r.sent >= timeout) =>
                {
                    self.close(i, Some(ErrorKind::Timeout), now);
                }
                _ => {}
            }
        }
    }

    /// End of run: whatever is still in flight, or was due and not yet sent, is
    /// unfinished.
    fn finish(&mut self) {
        let mut unfinished = self.in_flight as u64;
        if let Some(rs) = &self.rate {
            let window = self.end.saturating_duration_since(self.start).as_secs_f64();
            let due = (window * rs.per_sec).ceil() as u64;
            let mut unsent = rs.requeue.len() as u64 + due.saturating_sub(rs.next_k);
            if let Some(q) = self.quota {
                unsent = unsent.min(q);
            }
            unfinished += unsent;
        }
        self.stats.unfinished = unfinished;
        for i in 0..self.conns.len() {
            self.drop_stream(i);
        }
    }
}
