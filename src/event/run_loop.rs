//! The event loop (Redis `ae.c` in spirit): one `mio::Poll`, turned on
//! behalf of a [`Handler`] (the master, a worker). One turn:
//!
//! 1. sleep in `poll` until an event, the handler's timer wheel's next tick
//!    or [`Handler::max_sleep_ms`], whichever comes first (EINTR is a
//!    wake-up like any other);
//! 2. re-read the [`Clock`] and give it to [`Handler::after_sleep`];
//! 3. deliver each event as a typed [`Tok`] ([`Handler::on_event`]); the
//!    loop reads the signal pipe itself and delivers each signal
//!    ([`Handler::on_signal`]);
//! 4. fire what expired on the handler's [`TimerWheel`] ([`Handler::on_timer`]);
//! 5. [`Handler::before_sleep`]: the batched work of the turn (flushes,
//!    hand-offs) and the stop checks.
//!
//! A turn allocates nothing: the event, signal and expiry buffers keep their
//! capacity.

use super::{Clock, TimerWheel, Tok};
use mio::event::Event;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Waker};
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// Whether the loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Next turn.
    Continue,
    /// Return from [`EventLoop::run`].
    Stop,
}

/// What the loop drives. Only `after_sleep`, `on_event` and `before_sleep`
/// are required.
pub trait Handler {
    /// `poll` returned and the clock was re-read; called before the turn's
    /// events.
    fn after_sleep(&mut self, clock: &Clock);

    /// A readiness event for one of the handler's tokens (never
    /// [`Tok::Signals`]: the loop reads that pipe).
    fn on_event(&mut self, tok: Tok, ev: &Event);

    /// A signal from the pipe given to [`EventLoop::watch_signals`]. `Stop`
    /// ends the loop at once: the turn's other signals and events are not
    /// delivered, `before_sleep` is not called.
    fn on_signal(&mut self, _sig: i32) -> Flow {
        Flow::Continue
    }

    /// The handler's timer wheel, if it has one: the loop sleeps no longer
    /// than its next tick and expires it every turn.
    fn wheel(&mut self) -> Option<&mut TimerWheel> {
        None
    }

    /// An entry of the wheel expired (it may be stale: see
    /// [`TimerWheel`]).
    fn on_timer(&mut self, _key: usize, _deadline_ms: u64) {}

    /// The end of a turn, after events and timers: batched work and the
    /// stop checks.
    fn before_sleep(&mut self) -> Flow;

    /// The longest the handler lets `poll` sleep, in ms (`None`: as long
    /// as nothing happens).
    fn max_sleep_ms(&self) -> Option<u64> {
        None
    }
}

/// The loop: the poll, its event buffer and the process's clock.
pub struct EventLoop {
    poll: Poll,
    events: Events,
    clock: Clock,
    signal_fd: Option<OwnedFd>,
    signals: Vec<i32>,
    expired: Vec<(usize, u64)>,
}

impl EventLoop {
    /// A loop taking up to `capacity` events per turn.
    pub fn new(capacity: usize) -> io::Result<EventLoop> {
        Ok(EventLoop {
            poll: Poll::new()?,
            events: Events::with_capacity(capacity),
            clock: Clock::new(),
            signal_fd: None,
            signals: Vec::new(),
            expired: Vec::new(),
        })
    }

    /// Where sources are registered. A handler keeps its own handle
    /// (`registry().try_clone()`) for what it registers while running.
    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// The clock as of the last turn.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Read signals from `fd` (the pipe of `sys::install_signal_pipe`) and
    /// deliver them to [`Handler::on_signal`].
    pub fn watch_signals(&mut self, fd: OwnedFd) -> io::Result<()> {
        self.poll.registry().register(
            &mut SourceFd(&fd.as_raw_fd()),
            Tok::Signals.token(),
            Interest::READABLE,
        )?;
        self.signal_fd = Some(fd);
        Ok(())
    }

    /// The poll's waker (mio allows one per poll), delivered as `tok`; for
    /// threads that hand work back to the loop (the I/O pool: `Tok::IoDone`).
    pub fn waker(&self, tok: Tok) -> io::Result<Waker> {
        Waker::new(self.poll.registry(), tok.token())
    }

    /// Turn until the handler says stop; an error only if `poll` fails.
    pub fn run<H: Handler>(&mut self, h: &mut H) -> io::Result<()> {
        let EventLoop {
            poll,
            events,
            clock,
            signal_fd,
            signals,
            expired,
        } = self;
        loop {
            let now = clock.now_ms();
            let tick = h.wheel().and_then(|w| w.poll_timeout_ms(now));
            let sleep = match (tick, h.max_sleep_ms()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Err(e) = poll.poll(events, sleep.map(Duration::from_millis)) {
                if e.kind() != ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            clock.update();
            h.after_sleep(clock);
            for ev in events.iter() {
                match Tok::of(ev.token()) {
                    Some(Tok::Signals) => {
                        let Some(fd) = signal_fd else {
                            continue;
                        };
                        signals.clear();
                        crate::sys::read_signals(fd.as_raw_fd(), signals);
                        for &s in signals.iter() {
                            if h.on_signal(s) == Flow::Stop {
                                return Ok(());
                            }
                        }
                    }
                    Some(tok) => h.on_event(tok, ev),
                    None => {}
                }
            }
            if let Some(w) = h.wheel() {
                expired.clear();
                w.expire(clock.now_ms(), expired);
                for &(key, at) in expired.iter() {
                    h.on_timer(key, at);
                }
            }
            if h.before_sleep() == Flow::Stop {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;
    use std::time::Instant;

    /// What the test handler saw, in order.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Event(Tok),
        Signal(i32),
        Timer(usize),
        BeforeSleep,
    }

    #[derive(Default)]
    struct Probe {
        wheel: TimerWheel,
        now_ms: u64,
        seen: Vec<Seen>,
        turns: usize,
        /// Stop in before_sleep once a timer fired.
        stop_on_timer: bool,
        /// Stop in before_sleep of this turn.
        stop_at_turn: usize,
        cap_ms: Option<u64>,
    }

    impl Handler for Probe {
        fn after_sleep(&mut self, clock: &Clock) {
            assert!(clock.now_ms() >= self.now_ms, "the clock went back");
            self.now_ms = clock.now_ms();
        }
        fn on_event(&mut self, tok: Tok, _ev: &Event) {
            self.seen.push(Seen::Event(tok));
        }
        fn on_signal(&mut self, sig: i32) -> Flow {
            self.seen.push(Seen::Signal(sig));
            if sig == libc::SIGTERM {
                Flow::Stop
            } else {
                Flow::Continue
            }
        }
        fn wheel(&mut self) -> Option<&mut TimerWheel> {
            Some(&mut self.wheel)
        }
        fn on_timer(&mut self, key: usize, deadline_ms: u64) {
            assert!(self.now_ms >= deadline_ms, "timer fired early");
            self.seen.push(Seen::Timer(key));
        }
        fn before_sleep(&mut self) -> Flow {
            self.turns += 1;
            if self.seen.last() != Some(&Seen::BeforeSleep) {
                self.seen.push(Seen::BeforeSleep);
            }
            let fired = self.seen.iter().any(|s| matches!(s, Seen::Timer(_)));
            if self.stop_on_timer && fired || self.turns == self.stop_at_turn {
                Flow::Stop
            } else {
                Flow::Continue
            }
        }
        fn max_sleep_ms(&self) -> Option<u64> {
            self.cap_ms
        }
    }

    #[test]
    fn delivers_waker_and_socket_as_typed_tokens_then_the_timer() {
        let mut lp = EventLoop::new(16).unwrap();
        // Kept alive here: a waker dropped before the loop polls is gone.
        let waker = Arc::new(lp.waker(Tok::IoDone).unwrap());
        let w = waker.clone();
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        lp.registry()
            .register(
                &mut SourceFd(&a.as_raw_fd()),
                Tok::Conn(7).token(),
                Interest::READABLE,
            )
            .unwrap();
        let mut h = Probe {
            stop_on_timer: true,
            stop_at_turn: 50,
            cap_ms: Some(100),
            ..Probe::default()
        };
        let at = lp.clock().now_ms() + 120;
        h.wheel.schedule(3, at);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            w.wake().unwrap();
            b.write_all(b"x").unwrap();
            b
        });
        let started = Instant::now();
        lp.run(&mut h).unwrap();
        drop(t.join().unwrap());
        assert!(started.elapsed() >= Duration::from_millis(120));
        // The wake-up and the byte come in one turn or two, in either order,
        // each turn closed by before_sleep; the timer fires in a later turn,
        // before its before_sleep, which stops the loop.
        let (last, rest) = h.seen.split_at(h.seen.len() - 2);
        assert_eq!(rest, &[Seen::Timer(3), Seen::BeforeSleep], "{:?}", h.seen);
        assert_eq!(last.last(), Some(&Seen::BeforeSleep), "{:?}", h.seen);
        let mut events: Vec<&Seen> = last.iter().filter(|s| **s != Seen::BeforeSleep).collect();
        events.sort_by_key(|s| format!("{s:?}"));
        assert_eq!(
            events,
            [&Seen::Event(Tok::Conn(7)), &Seen::Event(Tok::IoDone)],
            "{:?}",
            h.seen
        );
        // Edge-triggered: the unread byte is not delivered again; the only
        // other wake-ups are the wheel's 50 ms ticks.
        assert!(h.turns < 10, "{} turns", h.turns);
    }

    #[test]
    fn signals_are_read_and_stop_ends_the_turn_at_once() {
        let mut lp = EventLoop::new(16).unwrap();
        let (rd, mut wr) = UnixStream::pair().unwrap();
        rd.set_nonblocking(true).unwrap();
        lp.watch_signals(OwnedFd::from(rd)).unwrap();
        let mut h = Probe {
            stop_at_turn: 1,
            ..Probe::default()
        };
        // USR1 goes on; TERM stops before the HUP behind it is delivered.
        let sigs = [libc::SIGUSR1, libc::SIGTERM, libc::SIGHUP];
        wr.write_all(&sigs.map(|s| s as u8)).unwrap();
        lp.run(&mut h).unwrap();
        assert_eq!(
            h.seen,
            [Seen::Signal(libc::SIGUSR1), Seen::Signal(libc::SIGTERM)]
        );
        assert_eq!(h.turns, 0, "before_sleep ran after Stop");
    }

    #[test]
    fn max_sleep_wakes_an_idle_loop() {
        let mut lp = EventLoop::new(16).unwrap();
        let mut h = Probe {
            cap_ms: Some(10),
            stop_at_turn: 5,
            ..Probe::default()
        };
        // A loop that ignored max_sleep would sleep forever: a slow waker
        // ends it (and the test fails) instead.
        let waker = Arc::new(lp.waker(Tok::IoDone).unwrap());
        let w = waker.clone();
        std::thread::spawn(move || {
            for _ in 0..10 {
                std::thread::sleep(Duration::from_millis(500));
                let _ = w.wake();
            }
        });
        let started = Instant::now();
        lp.run(&mut h).unwrap();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(40), "{took:?}");
        assert!(took < Duration::from_millis(450), "{took:?}");
        assert_eq!(h.seen, [Seen::BeforeSleep]);
    }
}
