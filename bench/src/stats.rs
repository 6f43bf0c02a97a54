//! Counting: per-thread [`Stats`] (outcomes by kind, status codes, bytes, latency
//! histogram in microseconds), merged after the run and rendered by `report`.
//!
//! Arithmetic kept by construction: every request whose fate is known is either `ok`
//! or one error kind, so `sent() == ok + errors.total()`. Requests still in flight
//! when a run ends are `unfinished` and are not part of `sent`.

use hdrhistogram::Histogram;
use std::time::Duration;

/// Ways a request can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Connect refused, failed, or socket could not be created.
    Connect,
    /// Connection reset or closed before the response was complete.
    Read,
    /// Writing the request failed.
    Write,
    /// No complete response (or connection) within the timeout.
    Timeout,
    /// Complete response whose status is not 2xx/3xx.
    Status,
    /// Response could not be parsed.
    Parse,
    /// TLS handshake failed (certificate not verified, no common parameters,
    /// an alert) or a bad TLS record.
    Tls,
}

impl ErrorKind {
    /// All kinds, in report order.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Connect,
        ErrorKind::Read,
        ErrorKind::Write,
        ErrorKind::Timeout,
        ErrorKind::Status,
        ErrorKind::Parse,
        ErrorKind::Tls,
    ];

    /// Name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Read => "read",
            ErrorKind::Write => "write",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Status => "status",
            ErrorKind::Parse => "parse",
            ErrorKind::Tls => "tls",
        }
    }
}

/// Highest latency the histogram holds, microseconds (one hour).
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Counters of one thread (or, after [`Stats::merge`], of a whole run).
#[derive(Clone, Debug)]
pub struct Stats {
    /// Complete responses with status 2xx or 3xx.
    pub ok: u64,
    /// Failed requests by kind, indexed like [`ErrorKind::ALL`].
    pub errors: [u64; 7],
    /// Requests in flight (or due but not yet sent) when the run ended.
    pub unfinished: u64,
    /// Response bytes received (head and body).
    pub bytes: u64,
    /// Count of complete responses per status code (index = code, 0..1000).
    pub status_codes: Vec<u64>,
    /// Latency of complete responses, microseconds.
    pub latency_us: Histogram<u64>,
    /// TLS handshakes completed (full and resumed).
    pub tls_handshakes: u64,
    /// Of those, resumed sessions.
    pub tls_resumed: u64,
    /// The first TLS error's message (why handshakes fail).
    pub first_tls_error: Option<String>,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Empty counters.
    pub fn new() -> Self {
        Stats {
            ok: 0,
            errors: [0; 7],
            unfinished: 0,
            bytes: 0,
            status_codes: vec![0; 1000],
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("constant histogram bounds are valid"),
            tls_handshakes: 0,
            tls_resumed: 0,
            first_tls_error: None,
        }
    }

    /// Records a complete response: `ok` for 2xx/3xx, otherwise a `status` error.
    #[inline]
    pub fn record_response(&mut self, status: u16, latency: Duration) {
        self.status_codes[(status as usize).min(999)] += 1;
        if (200..400).contains(&status) {
            self.ok += 1;
        } else {
            self.errors[ErrorKind::Status as usize] += 1;
        }
        let us = latency.as_micros().min(MAX_LATENCY_US as u128) as u64;
        self.latency_us.saturating_record(us.max(1));
    }

    /// Records `count` failed requests of one kind.
    #[inline]
    pub fn record_error(&mut self, kind: ErrorKind, count: u64) {
        self.errors[kind as usize] += count;
    }

    /// Counts a connection's completed TLS handshake, if it had one.
    pub fn record_handshake(&mut self, done: Option<crate::stream::Handshake>) {
        match done {
            Some(crate::stream::Handshake::Full) => self.tls_handshakes += 1,
            Some(crate::stream::Handshake::Resumed) => {
                self.tls_handshakes += 1;
                self.tls_resumed += 1;
            }
            None => {}
        }
    }

    /// Errors of one kind.
    pub fn error(&self, kind: ErrorKind) -> u64 {
        self.errors[kind as usize]
    }

    /// All errors.
    pub fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Requests whose outcome is known: `ok + errors`.
    pub fn sent(&self) -> u64 {
        self.ok + self.error_total()
    }

    /// Complete responses of any status.
    pub fn responses(&self) -> u64 {
        self.ok + self.error(ErrorKind::Status)
    }

    /// Adds another thread's counters into these.
    pub fn merge(&mut self, other: &Stats) {
        self.ok += other.ok;
        for (a, b) in self.errors.iter_mut().zip(other.errors.iter()) {
            *a += b;
        }
        self.unfinished += other.unfinished;
        self.bytes += other.bytes;
        self.tls_handshakes += other.tls_handshakes;
        self.tls_resumed += other.tls_resumed;
        if self.first_tls_error.is_none() {
            self.first_tls_error.clone_from(&other.first_tls_error);
        }
        for (a, b) in self.status_codes.iter_mut().zip(other.status_codes.iter()) {
            *a += b;
        }
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
    }

    /// Latency at quantile `q` (0..=1) in milliseconds; 0 when nothing was recorded.
    pub fn latency_ms(&self, q: f64) -> f64 {
        if self.latency_us.is_empty() {
            return 0.0;
        }
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    /// Largest latency in milliseconds.
    pub fn latency_max_ms(&self) -> f64 {
        if self.latency_us.is_empty() {
            return 0.0;
        }
        self.latency_us.max() as f64 / 1000.0
    }

    /// Status codes that occurred, with counts.
    pub fn status_list(&self) -> Vec<(u16, u64)> {
        self.status_codes
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(code, &n)| (code as u16, n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut s = Stats::new();
        for i in 1..=1000 {
            s.record_response(200, ms(i));
        }
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.01;
        assert!(close(s.latency_ms(0.5), 500.0), "{}", s.latency_ms(0.5));
        assert!(close(s.latency_ms(0.9), 900.0));
        assert!(close(s.latency_ms(0.99), 990.0));
        assert!(close(s.latency_ms(0.999), 999.0));
        assert!(close(s.latency_max_ms(), 1000.0));
    }

    #[test]
    fn empty_histogram_reports_zero() {
        let s = Stats::new();
        assert_eq!(s.latency_ms(0.99), 0.0);
        assert_eq!(s.latency_max_ms(), 0.0);
    }

    #[test]
    fn merge_adds_counts_and_histograms() {
        let mut a = Stats::new();
        let mut b = Stats::new();
        for _ in 0..90 {
            a.record_response(200, ms(1));
        }
        for _ in 0..10 {
            b.record_response(200, ms(100));
        }
        b.record_response(503, ms(2));
        b.record_error(ErrorKind::Read, 3);
        b.unfinished = 4;
        b.bytes = 10;
        b.record_handshake(Some(crate::stream::Handshake::Full));
        b.record_handshake(Some(crate::stream::Handshake::Resumed));
        b.record_handshake(None);
        b.first_tls_error = Some("bad certificate".into());
        a.merge(&b);
        assert_eq!((a.tls_handshakes, a.tls_resumed), (2, 1));
        assert_eq!(a.first_tls_error.as_deref(), Some("bad certificate"));
        assert_eq!(a.ok, 100);
        assert_eq!(a.error(ErrorKind::Status), 1);
        assert_eq!(a.error(ErrorKind::Read), 3);
        assert_eq!(a.unfinished, 4);
        assert_eq!(a.bytes, 10);
        assert_eq!(a.latency_us.len(), 101);
        assert!(a.latency_ms(0.5) < 1.1);
        assert!(a.latency_ms(0.95) > 99.0);
        assert_eq!(a.status_list(), vec![(200, 100), (503, 1)]);
    }

    #[test]
    fn sent_is_ok_plus_errors_and_excludes_unfinished() {
        let mut s = Stats::new();
        s.record_response(200, ms(1));
        s.record_response(302, ms(1));
        s.record_response(404, ms(1));
        s.record_error(ErrorKind::Connect, 2);
        s.record_error(ErrorKind::Timeout, 1);
        s.unfinished = 7;
        assert_eq!(s.ok, 2);
        assert_eq!(s.error_total(), 4);
        assert_eq!(s.sent(), 6);
        assert_eq!(s.responses(), 3);
    }

    #[test]
    fn huge_latency_saturates() {
        let mut s = Stats::new();
        s.record_response(200, Duration::from_secs(100_000));
        s.record_response(200, Duration::ZERO);
        assert_eq!(s.latency_us.len(), 2);
        assert!(s.latency_max_ms() >= 3_599_000.0);
    }
}
