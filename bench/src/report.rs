//! Rendering of merged [`Stats`]: one JSON object (`--json`) or a human table.
//!
//! JSON keys (all modes): `mode`, `connections`, `threads`, `duration_s`, `rps`
//! (complete responses/s, like wrk), `ok_rps`, `sent`, `ok`, `non2xx`, `errors` (by
//! kind), `error_total`, `unfinished`, `bytes`, `bytes_per_sec`, `latency_ms`
//! {`p50`,`p90`,`p99`,`p999`,`max`}, `status_codes`, `keepalive` (false: one request
//! per connection), and with https URLs `tls` {`handshakes`, `resumed`}. Burst mode
//! adds `succeeded`, `connect_failed`, `reset`, `timed_out`, `tls_failed`,
//! `unfinished` totals and a `bursts` array with the same fields per concurrency
//! level.

use crate::stats::{ErrorKind, Stats};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::time::Duration;

/// What was run, for the report header.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// Mode name.
    pub mode: &'static str,
    /// Connections (keep-alive, rate); the largest burst in burst mode.
    pub connections: usize,
    /// Threads.
    pub threads: usize,
    /// Pipelining depth.
    pub pipeline: usize,
    /// Target rate (rate mode).
    pub rate_per_sec: Option<f64>,
    /// URLs as given.
    pub urls: Vec<String>,
    /// Some URL is https.
    pub tls: bool,
    /// Connections carry more than one request.
    pub keepalive: bool,
}

/// Outcome of one burst of `conns` one-shot connections.
#[derive(Clone, Debug)]
pub struct BurstResult {
    /// Connections opened at once.
    pub conns: usize,
    /// Merged counters.
    pub stats: Stats,
    /// Time until the last connection finished.
    pub elapsed: Duration,
}

/// Burst outcome names derived from error kinds.
pub struct BurstOutcome {
    /// Complete 2xx/3xx responses.
    pub succeeded: u64,
    /// Connects that failed.
    pub connect_failed: u64,
    /// Reset or closed before a complete response (read or write side).
    pub reset: u64,
    /// No response within the timeout.
    pub timed_out: u64,
    /// TLS handshake failed.
    pub tls_failed: u64,
    /// Still open when the burst's hard cap ended it.
    pub unfinished: u64,
}

impl BurstOutcome {
    /// Classifies `stats` of a burst.
    pub fn of(stats: &Stats) -> Self {
        BurstOutcome {
            succeeded: stats.ok,
            connect_failed: stats.error(ErrorKind::Connect),
            reset: stats.error(ErrorKind::Read) + stats.error(ErrorKind::Write),
            timed_out: stats.error(ErrorKind::Timeout),
            tls_failed: stats.error(ErrorKind::Tls),
            unfinished: stats.unfinished,
        }
    }
}

fn per_sec(n: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn common(info: &RunInfo, stats: &Stats, elapsed: Duration) -> Map<String, Value> {
    let mut errors = Map::new();
    for kind in ErrorKind::ALL {
        errors.insert(kind.as_str().into(), stats.error(kind).into());
    }
    let mut codes = Map::new();
    for (code, n) in stats.status_list() {
        codes.insert(code.to_string(), n.into());
    }
    let v = json!({
        "duration_s": round3(elapsed.as_secs_f64()),
        "rps": round3(per_sec(stats.responses(), elapsed)),
        "ok_rps": round3(per_sec(stats.ok, elapsed)),
        "sent": stats.sent(),
        "ok": stats.ok,
        "non2xx": stats.error(ErrorKind::Status),
        "errors": errors,
        "error_total": stats.error_total(),
        "unfinished": stats.unfinished,
        "bytes": stats.bytes,
        "bytes_per_sec": round3(per_sec(stats.bytes, elapsed)),
        "latency_ms": {
            "p50": stats.latency_ms(0.5),
            "p90": stats.latency_ms(0.9),
            "p99": stats.latency_ms(0.99),
            "p999": stats.latency_ms(0.999),
            "max": stats.latency_max_ms(),
        },
        "status_codes": codes,
    });
    let mut m = match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if info.tls {
        let mut tls = json!({ "handshakes": stats.tls_handshakes, "resumed": stats.tls_resumed });
        if let Some(e) = &stats.first_tls_error {
            tls["first_error"] = e.as_str().into();
        }
        m.insert("tls".into(), tls);
    }
    m
}

fn header(info: &RunInfo, m: &mut Map<String, Value>) {
    m.insert("mode".into(), info.mode.into());
    m.insert("connections".into(), info.connections.into());
    m.insert("threads".into(), info.threads.into());
    m.insert("pipeline".into(), info.pipeline.into());
    if let Some(r) = info.rate_per_sec {
        m.insert("rate_per_sec".into(), r.into());
    }
    m.insert("urls".into(), info.urls.clone().into());
    m.insert("keepalive".into(), info.keepalive.into());
}

fn add_outcome(m: &mut Map<String, Value>, o: &BurstOutcome) {
    m.insert("succeeded".into(), o.succeeded.into());
    m.insert("connect_failed".into(), o.connect_failed.into());
    m.insert("reset".into(), o.reset.into());
    m.insert("timed_out".into(), o.timed_out.into());
    m.insert("tls_failed".into(), o.tls_failed.into());
    m.insert("unfinished".into(), o.unfinished.into());
}

/// JSON for keep-alive and rate runs.
pub fn run_json(info: &RunInfo, stats: &Stats, elapsed: Duration) -> Value {
    let mut m = Map::new();
    header(info, &mut m);
    m.extend(common(info, stats, elapsed));
    Value::Object(m)
}

/// JSON for burst runs: totals at top level plus one entry per burst.
pub fn burst_json(info: &RunInfo, bursts: &[BurstResult]) -> Value {
    let mut total = Stats::new();
    let mut elapsed = Duration::ZERO;
    let mut list = Vec::new();
    for b in bursts {
        total.merge(&b.stats);
        elapsed += b.elapsed;
        let mut m = Map::new();
        m.insert("conns".into(), b.conns.into());
        m.extend(common(info, &b.stats, b.elapsed));
        add_outcome(&mut m, &BurstOutcome::of(&b.stats));
        list.push(Value::Object(m));
    }
    let mut m = Map::new();
    header(info, &mut m);
    m.extend(common(info, &total, elapsed));
    add_outcome(&mut m, &BurstOutcome::of(&total));
    m.insert("bursts".into(), Value::Array(list));
    Value::Object(m)
}

fn human_bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.2} {}", UNITS[u])
}

/// ", N TLS handshakes (M resumed)" for https runs.
fn tls_note(info: &RunInfo, stats: &Stats) -> String {
    if !info.tls {
        return String::new();
    }
    format!(
        ", {} TLS handshakes ({} resumed)",
        stats.tls_handshakes, stats.tls_resumed
    )
}

fn error_line(stats: &Stats) -> String {
    ErrorKind::ALL
        .iter()
        .map(|k| format!("{} {}", k.as_str(), stats.error(*k)))
        .collect::<Vec<_>>()
        .join("  ")
}

/// Human table for keep-alive and rate runs.
pub fn run_table(info: &RunInfo, stats: &Stats, elapsed: Duration) -> String {
    let mut s = String::new();
    let rate = info
        .rate_per_sec
        .map(|r| format!(", target {r} req/s"))
        .unwrap_or_default();
    let per = if info.keepalive {
        ""
    } else {
        ", one request per connection"
    };
    let _ = writeln!(
        s,
        "sluice-bench {}: {} connections{per}, {} thread(s), pipeline {}{rate}, {:.2} s",
        info.mode,
        info.connections,
        info.threads,
        info.pipeline,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(s, "  {}", info.urls.join(" "));
    let _ = writeln!(
        s,
        "  requests   sent {}  ok {}  errors {}  unfinished {}{}",
        stats.sent(),
        stats.ok,
        stats.error_total(),
        stats.unfinished,
        tls_note(info, stats)
    );
    let _ = writeln!(
        s,
        "  throughput {:.1} req/s  {}/s  ({} total)",
        per_sec(stats.responses(), elapsed),
        human_bytes(per_sec(stats.bytes, elapsed)),
        human_bytes(stats.bytes as f64)
    );
    let _ = writeln!(
        s,
        "  latency ms p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        stats.latency_ms(0.5),
        stats.latency_ms(0.9),
        stats.latency_ms(0.99),
        stats.latency_ms(0.999),
        stats.latency_max_ms()
    );
    let _ = writeln!(s, "  errors     {}", error_line(stats));
    let codes: Vec<String> = stats
        .status_list()
        .iter()
        .map(|(c, n)| format!("{c}: {n}"))
        .collect();
    let _ = writeln!(s, "  status     {}", codes.join("  "));
    s
}

/// Human table for burst runs, one row per burst size.
pub fn burst_table(info: &RunInfo, bursts: &[BurstResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "sluice-bench burst: one-shot connections, {} thread(s)\n  {}",
        info.threads,
        info.urls.join(" ")
    );
    let _ = writeln!(
        s,
        "{:>7} {:>10} {:>9} {:>7} {:>9} {:>10} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9}",
        "conns",
        "succeeded",
        "conn_fail",
        "reset",
        "timed_out",
        "unfinished",
        "non2xx",
        "parse",
        "tls",
        "time_s",
        "p50_ms",
        "p99_ms"
    );
    for b in bursts {
        let o = BurstOutcome::of(&b.stats);
        let _ = writeln!(
            s,
            "{:>7} {:>10} {:>9} {:>7} {:>9} {:>10} {:>7} {:>7} {:>7} {:>9.3} {:>9.3} {:>9.3}",
            b.conns,
            o.succeeded,
            o.connect_failed,
            o.reset,
            o.timed_out,
            o.unfinished,
            b.stats.error(ErrorKind::Status),
            b.stats.error(ErrorKind::Parse),
            o.tls_failed,
            b.elapsed.as_secs_f64(),
            b.stats.latency_ms(0.5),
            b.stats.latency_ms(0.99)
        );
    }
    if info.tls {
        let (full, resumed) = bursts.iter().fold((0, 0), |(f, r), b| {
            (f + b.stats.tls_handshakes, r + b.stats.tls_resumed)
        });
        let _ = writeln!(s, "  TLS handshakes {full} ({resumed} resumed)");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> RunInfo {
        RunInfo {
            mode: "keepalive",
            connections: 2,
            threads: 1,
            pipeline: 1,
            rate_per_sec: None,
            urls: vec!["http://127.0.0.1:1/".into()],
            tls: false,
            keepalive: true,
        }
    }

    #[test]
    fn json_has_required_keys_and_adds_up() {
        let mut s = Stats::new();
        for _ in 0..8 {
            s.record_response(200, Duration::from_millis(2));
        }
        s.record_response(500, Duration::from_millis(2));
        s.record_error(ErrorKind::Read, 1);
        s.unfinished = 2;
        s.bytes = 1000;
        let v = run_json(&info(), &s, Duration::from_secs(2));
        assert_eq!(v["rps"], 4.5);
        assert_eq!(v["ok"], 8);
        assert_eq!(v["sent"], 10);
        assert_eq!(v["errors"]["read"], 1);
        assert_eq!(v["errors"]["status"], 1);
        assert_eq!(v["non2xx"], 1);
        assert_eq!(v["error_total"], 2);
        assert_eq!(v["unfinished"], 2);
        assert_eq!(v["bytes_per_sec"], 500.0);
        assert_eq!(v["status_codes"]["500"], 1);
        for k in ["p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_ms"][k].as_f64().unwrap() > 1.9, "{k}");
        }
        let errors: u64 = v["errors"]
            .as_object()
            .unwrap()
            .values()
            .map(|e| e.as_u64().unwrap())
            .sum();
        assert_eq!(
            v["sent"].as_u64().unwrap(),
            v["ok"].as_u64().unwrap() + errors
        );
    }

    #[test]
    fn burst_outcomes_add_up_to_conns() {
        let mut s = Stats::new();
        for _ in 0..90 {
            s.record_response(200, Duration::from_millis(1));
        }
        s.record_error(ErrorKind::Connect, 4);
        s.record_error(ErrorKind::Read, 2);
        s.record_error(ErrorKind::Write, 1);
        s.record_error(ErrorKind::Timeout, 2);
        s.unfinished = 1;
        let b = BurstResult {
            conns: 100,
            stats: s,
            elapsed: Duration::from_millis(500),
        };
        let v = burst_json(&info(), &[b.clone(), b]);
        let one = &v["bursts"][0];
        let sum: u64 = [
            "succeeded",
            "connect_failed",
            "reset",
            "timed_out",
            "unfinished",
        ]
        .iter()
        .map(|k| one[*k].as_u64().unwrap())
        .sum();
        assert_eq!(sum, 100);
        assert_eq!(v["succeeded"], 180);
        assert_eq!(v["reset"], 6);
        assert_eq!(v["rps"], 180.0);
        assert!(burst_table(&info(), &[]).contains("succeeded"));
    }

    #[test]
    fn table_mentions_every_error_kind() {
        let t = run_table(&info(), &Stats::new(), Duration::from_secs(1));
        for k in ErrorKind::ALL {
            assert!(t.contains(k.as_str()));
        }
        assert_eq!(human_bytes(2048.0), "2.00 KB");
    }
}
