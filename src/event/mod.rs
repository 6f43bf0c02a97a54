//! Event-loop plumbing shared by master and workers: a cached clock and a
//! hashed timer wheel. The loops themselves are `mio::Poll` + `slab`; tokens
//! below `FIRST_CONN` are fixed roles, the rest are slab keys.

pub mod timer;

pub use timer::TimerWheel;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since an arbitrary per-process start, cached once per loop
/// iteration (nginx's ngx_time_update).
pub struct Clock {
    start: Instant,
    now_ms: u64,
    unix_secs: i64,
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
        };
        c.update();
        c
    }

    /// Re-read the time.
    pub fn update(&mut self) {
        self.now_ms = self.start.elapsed().as_millis() as u64;
        self.unix_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
    }

    /// Monotonic milliseconds at the last update.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Wall-clock seconds at the last update.
    pub fn unix_secs(&self) -> i64 {
        self.unix_secs
    }

    /// Monotonic time at the last update as an Instant.
    pub fn instant(&self) -> Instant {
        self.start + Duration::from_millis(self.now_ms)
    }
}
