//! Burst mode, the thesis' experiment: open C one-shot connections at once, each
//! sends one `Connection: close` request and reads the whole response. Every
//! connection ends as exactly one of: succeeded (2xx/3xx), status (other code),
//! connect failed, reset (closed or reset before a complete response, read or write
//! side), timed out (no complete response within the timeout, connect included),
//! parse error, TLS failed (https: the handshake failed), or unfinished (still open
//! at the burst's hard cap). Over https every connection is a TLS handshake of its
//! own (full unless `--resume`), started once its TCP connect completes.
//!
//! Latency of a connection runs from the start of its connect to its last byte.

use crate::http::ResponseParser;
use crate::load::Plan;
use crate::stats::{ErrorKind, Stats};
use crate::stream::{read_error, Stream};
use crate::sys;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::sync::Barrier;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Writing,
    Reading,
    Done,
}

struct OneShot {
    stream: Option<Stream>,
    phase: Phase,
    started: Instant,
    target: usize,
    request: usize,
    wpos: usize,
    parser: ResponseParser,
    leftover: Vec<u8>,
}

/// Runs `conns` one-shot connections (global indices from `first_conn`) after all
/// threads reached `barrier`; stops at `cap` after the start at the latest.
/// Returns the counters and the time until this thread's last connection ended.
pub fn run(
    plan: &Plan,
    conns: usize,
    first_conn: usize,
    cap: Duration,
    barrier: &Barrier,
) -> io::Result<(Stats, Duration)> {
    let mut poll = Poll::new()?;
    let mut stats = Stats::new();
    let mut rbuf = vec![0u8; 64 * 1024];
    let mut events = Events::with_capacity(4096);
    barrier.wait();
    let start = Instant::now();
    let mut shots = Vec::with_capacity(conns);
    let mut pending = 0usize;
    for k in 0..conns {
        let g = first_conn + k;
        let target = g % plan.targets.len();
        let t = &plan.targets[target];
        let source = (!t.sources.is_empty()).then(|| t.sources[g % t.sources.len()]);
        let mut shot = OneShot {
            stream: None,
            phase: Phase::Done,
            started: Instant::now(),
            target,
            request: (g / plan.targets.len()) % t.requests.len(),
            wpos: 0,
            parser: ResponseParser::new(plan.head),
            leftover: Vec::new(),
        };
        let started = sys::start_connect(t.addr, source).and_then(|mut s| {
            let interest = Interest::READABLE | Interest::WRITABLE;
            poll.registry().register(&mut s, Token(k), interest)?;
            Ok(s)
        });
        match started {
            Ok(s) => {
                shot.stream = Some(Stream::new(s));
                shot.phase = Phase::Connecting;
                pending += 1;
            }
            Err(_) => stats.record_error(ErrorKind::Connect, 1),
        }
        shots.push(shot);
    }
    let deadline = start + cap;
    let tick = (plan.timeout / 4).clamp(Duration::from_millis(1), Duration::from_millis(50));
    let mut finished_at = Instant::now();
    let mut next_check = start + tick;
    while pending > 0 {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let wait = tick.min(deadline - now);
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            let Some(shot) = shots.get_mut(ev.token().0) else {
                continue;
            };
            if let Some(outcome) = advance(plan, shot, &mut rbuf, &mut stats) {
                finish(shot, outcome, &mut stats, &poll);
                pending -= 1;
                finished_at = Instant::now();
            }
        }
        let now = Instant::now();
        if now < next_check {
            continue;
        }
        next_check = now + tick;
        for shot in shots.iter_mut() {
            if shot.phase != Phase::Done && now - shot.started >= plan.timeout {
                finish(shot, Outcome::Failed(ErrorKind::Timeout), &mut stats, &poll);
                pending -= 1;
                finished_at = now;
            }
        }
    }
    for shot in shots.iter_mut().filter(|s| s.phase != Phase::Done) {
        stats.unfinished += 1;
        finish(shot, Outcome::Unfinished, &mut stats, &poll);
        finished_at = Instant::now();
    }
    Ok((stats, finished_at.saturating_duration_since(start)))
}

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Response(u16),
    Failed(ErrorKind),
    Unfinished,
}

fn finish(shot: &mut OneShot, outcome: Outcome, stats: &mut Stats, poll: &Poll) {
    match outcome {
        Outcome::Response(status) => stats.record_response(status, shot.started.elapsed()),
        Outcome::Failed(kind) => stats.record_error(kind, 1),
        Outcome::Unfinished => {}
    }
    if let Some(mut s) = shot.stream.take() {
        stats.record_handshake(s.handshake());
        let _ = poll.registry().deregister(s.socket());
    }
    shot.phase = Phase::Done;
    shot.leftover = Vec::new();
}

/// Moves one connection forward after an event; `Some` when it has ended.
fn advance(plan: &Plan, shot: &mut OneShot, rbuf: &mut [u8], stats: &mut Stats) -> Option<Outcome> {
    let target = &plan.targets[shot.target];
    if shot.phase == Phase::Connecting {
        let stream = shot.stream.as_mut()?;
        match sys::connect_result(stream.socket()) {
            Ok(true) => shot.phase = Phase::Writing,
            Ok(false) => return None,
            Err(_) => return Some(Outcome::Failed(ErrorKind::Connect)),
        }
        if let Some(t) = &target.tls {
            if stream.start_tls(t).is_err() {
                return Some(Outcome::Failed(ErrorKind::Tls));
            }
        }
    }
    if shot.phase == Phase::Writing {
        let request = &target.requests[shot.request];
        let stream = shot.stream.as_mut()?;
        while shot.wpos < request.len() {
            match stream.write(&request[shot.wpos..]) {
                Ok(0) => return Some(Outcome::Failed(ErrorKind::Write)),
                Ok(n) => shot.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Some(Outcome::Failed(ErrorKind::Write)),
            }
        }
        if shot.wpos == request.len() {
            shot.phase = Phase::Reading;
        }
    }
    // TLS records the socket did not take yet (handshake, request).
    if let Some(stream) = shot.stream.as_mut() {
        if stream.wants_write() && stream.flush().is_err() {
            return Some(Outcome::Failed(ErrorKind::Write));
        }
    }
    // Read even while writing: a server may answer (and close) early.
    read_response(shot, rbuf, stats)
}

fn read_response(shot: &mut OneShot, rbuf: &mut [u8], stats: &mut Stats) -> Option<Outcome> {
    let stream = shot.stream.as_mut()?;
    let mut len = shot.leftover.len();
    rbuf[..len].copy_from_slice(&shot.leftover);
    shot.leftover.clear();
    loop {
        if len == rbuf.len() {
            return Some(Outcome::Failed(ErrorKind::Parse));
        }
        match stream.read(&mut rbuf[len..]) {
            Ok(0) => {
                return Some(match shot.parser.on_eof() {
                    Some(r) => Outcome::Response(r.status),
                    None => Outcome::Failed(ErrorKind::Read),
                })
            }
            Ok(n) => {
                stats.bytes += n as u64;
                len += n;
                // One call parses as far as the bytes go (interim 1xx included).
                match shot.parser.parse(&rbuf[..len]) {
                    Ok((_, Some(r))) => return Some(Outcome::Response(r.status)),
                    Ok((used, None)) => {
                        rbuf.copy_within(used..len, 0);
                        len -= used;
                    }
                    Err(_) => return Some(Outcome::Failed(ErrorKind::Parse)),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => break,
            Err(e) => return Some(Outcome::Failed(read_error(&e, stats))),
        }
    }
    shot.leftover.extend_from_slice(&rbuf[..len]);
    None
}
