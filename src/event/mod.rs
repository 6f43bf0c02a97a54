//! The event loop and its plumbing, shared by master and workers: the loop
//! ([`EventLoop`], `ae.c` style: poll, clock, typed tokens, signals, timers,
//! a before-sleep hook; the master and a worker are its [`Handler`]s), a
//! cached clock, a hashed timer wheel, typed poll tokens ([`Tok`]) and the
//! accept loop with its EMFILE pause ([`Acceptor`]).

pub mod accept;
pub mod run_loop;
pub mod timer;
pub mod token;

pub use accept::{Acceptor, Drained};
pub use run_loop::{EventLoop, Flow, Handler};
pub use timer::TimerWheel;
pub use token::Tok;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock microseconds since the epoch, read now (a vDSO call).
pub fn unix_us_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Milliseconds since an arbitrary per-process start, cached once per loop
/// iteration (nginx's ngx_time_update).
pub struct Clock {
    start: Instant,
    now_ms: u64,
    unix_secs: i64,
    unix_us: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        let mut c = Clock {
            start: Instant::now(),
            now_ms: 0,
            unix_secs: 0,
            unix_us: 0,
        };
        c.update();
        c
    }

    /// Re-read the time.
    pub fn update(&mut self) {
        self.now_ms = self.start.elapsed().as_millis() as u64;
        self.unix_us = unix_us_now();
        self.unix_secs = (self.unix_us / 1_000_000) as i64;
    }

    /// Monotonic milliseconds at the last update.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Wall-clock seconds at the last update.
    pub fn unix_secs(&self) -> i64 {
        self.unix_secs
    }

    /// Wall-clock microseconds at the last update (the clock of the limit
    /// zones, meaningful across restarts).
    pub fn unix_us(&self) -> u64 {
        self.unix_us
    }

    /// Monotonic time at the last update as an Instant.
    pub fn instant(&self) -> Instant {
        self.start + Duration::from_millis(self.now_ms)
    }
}
