//! `sluice-bench`: the load generator behind `scripts/bench.sh`.
//!
//! Three modes (see `--help`): keep-alive (closed loop, wrk-like), burst (C one-shot
//! connections at once, for each C in a list) and rate (open loop at R requests/s,
//! latency from the intended send time); http:// or https:// (rustls, one client
//! configuration for the run). Each thread runs one mio event loop; the
//! per-thread [`stats::Stats`] are merged and printed as a table or one JSON object.
//! Every run is bounded: by `-d`, by `-n` with a 10-minute cap, or per burst by the
//! timeout. Exit status 2 means bad arguments.

mod args;
mod burst;
mod http;
mod load;
mod report;
mod stats;
mod stream;
mod sys;
mod tls;

use args::{Command, Config, Mode};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Run time when only `-n` bounds a run.
const REQUEST_RUN_CAP: Duration = Duration::from_secs(600);
/// Runs longer than this print progress on stderr.
const PROGRESS_AFTER: Duration = Duration::from_secs(3);

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match args::parse(&argv) {
        Ok(Command::Help) => {
            print!("{}", args::USAGE);
            return;
        }
        Ok(Command::Version) => {
            println!("sluice-bench {}", env!("CARGO_PKG_VERSION"));
            return;
        }
        Ok(Command::Run(cfg)) => cfg,
        Err(e) => {
            eprintln!("sluice-bench: {e}\nTry 'sluice-bench --help'.");
            std::process::exit(2);
        }
    };
    let result = match cfg.mode {
        Mode::Burst => run_burst(&cfg),
        Mode::KeepAlive | Mode::Rate => run_load(&cfg),
    };
    if let Err(e) = result {
        eprintln!("sluice-bench: {e}");
        std::process::exit(1);
    }
}

/// Groups URLs by address (and scheme and server name) and builds their request
/// bytes once.
fn plan(cfg: &Config) -> io::Result<load::Plan> {
    let close = cfg.no_keepalive;
    let config = match cfg.urls.iter().any(|u| u.tls) {
        true => Some(tls::client_config(&cfg.tls).map_err(io::Error::other)?),
        false => None,
    };
    let mut targets: Vec<load::Target> = Vec::new();
    for u in &cfg.urls {
        let req = http::build_request(&cfg.method, u, &cfg.headers, &cfg.body, close);
        let tls = match (&config, u.tls) {
            (Some(config), true) => Some(tls::Target {
                config: config.clone(),
                name: tls::server_name(&u.host, cfg.tls.sni.as_deref())
                    .map_err(io::Error::other)?,
            }),
            _ => None,
        };
        let name = |t: &Option<tls::Target>| t.as_ref().map(|t| t.name.clone());
        match targets
            .iter_mut()
            .find(|t| t.addr == u.addr && name(&t.tls) == name(&tls))
        {
            Some(t) => {
                t.marks.push(load::unique_mark(&req));
                t.requests.push(req);
            }
            None => targets.push(load::Target {
                addr: u.addr,
                marks: vec![load::unique_mark(&req)],
                requests: vec![req],
                sources: sys::loopback_sources(u.addr, cfg.sources),
                tls,
            }),
        }
    }
    Ok(load::Plan {
        targets,
        pipeline: cfg.pipeline,
        timeout: cfg.timeout,
        head: cfg.method == "HEAD",
        no_keepalive: close,
        run_tag: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            .to_string(),
    })
}

fn info(cfg: &Config) -> report::RunInfo {
    report::RunInfo {
        mode: cfg.mode.as_str(),
        connections: cfg.connections.iter().copied().max().unwrap_or(0),
        threads: cfg.threads,
        pipeline: cfg.pipeline,
        rate_per_sec: cfg.rate_per_sec,
        urls: cfg.urls.iter().map(|u| u.raw.clone()).collect(),
        tls: cfg.urls.iter().any(|u| u.tls),
        keepalive: !cfg.no_keepalive,
    }
}

/// Splits `total` into `parts` near-equal shares.
fn split(total: u64, parts: usize, index: usize) -> u64 {
    let parts = parts as u64;
    total / parts + u64::from((index as u64) < total % parts)
}

fn warn_nofile(needed: usize) {
    let limit = sys::raise_nofile();
    if needed as u64 + 64 > limit {
        eprintln!("sluice-bench: warning: open-file limit {limit} is below {needed} connections");
    }
}

/// Says on stderr why TLS handshakes failed, if they did.
fn warn_tls(stats: &stats::Stats) {
    if let Some(e) = &stats.first_tls_error {
        let n = stats.error(stats::ErrorKind::Tls);
        eprintln!("sluice-bench: {n} TLS failure(s), the first: {e}");
    }
}

fn run_load(cfg: &Config) -> io::Result<()> {
    let conns = cfg.connections[0];
    warn_nofile(conns);
    let plan = plan(cfg)?;
    let run_for = match (cfg.duration, cfg.requests) {
        (Some(d), _) => d,
        (None, Some(_)) => REQUEST_RUN_CAP,
        (None, None) => Duration::from_secs(10),
    };
    let progress = AtomicU64::new(0);
    let threads = cfg.threads;
    let start = Instant::now();
    let end = start + run_for;
    let results = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        let mut first_conn = 0;
        for t in 0..threads {
            let share = load::Share {
                conns: split(conns as u64, threads, t) as usize,
                first_conn,
                quota: cfg.requests.map(|n| split(n, threads, t)),
                rate_per_sec: cfg.rate_per_sec.map(|r| r / threads as f64),
                start,
                end,
            };
            first_conn += share.conns;
            let (plan, progress) = (&plan, &progress);
            handles.push(scope.spawn(move || load::run(plan, share, progress)));
        }
        let show = run_for > PROGRESS_AFTER;
        let mut last = (start, 0u64);
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
            let now = Instant::now();
            if show && now - last.0 >= Duration::from_secs(1) {
                let done = progress.load(Ordering::Relaxed);
                let rate = (done - last.1) as f64 / (now - last.0).as_secs_f64();
                eprintln!(
                    "sluice-bench: {:5.1}s  {done} requests  {rate:.0} req/s",
                    (now - start).as_secs_f64()
                );
                last = (now, done);
            }
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("worker thread panicked")))
            })
            .collect::<Vec<_>>()
    });
    let elapsed = start.elapsed().min(run_for);
    let mut total = stats::Stats::new();
    for r in results {
        total.merge(&r?);
    }
    warn_tls(&total);
    let info = info(cfg);
    if cfg.json {
        println!("{}", report::run_json(&info, &total, elapsed));
    } else {
        print!("{}", report::run_table(&info, &total, elapsed));
    }
    Ok(())
}

fn run_burst(cfg: &Config) -> io::Result<()> {
    warn_nofile(cfg.connections.iter().copied().max().unwrap_or(0));
    let plan = plan(cfg)?;
    let cap = cfg.duration.unwrap_or(cfg.timeout + Duration::from_secs(1));
    let mut bursts = Vec::new();
    for (n, &conns) in cfg.connections.iter().enumerate() {
        if n > 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
        let threads = cfg.threads.min(conns);
        let barrier = Barrier::new(threads);
        let results = std::thread::scope(|scope| {
            let mut handles = Vec::new();
            let mut first_conn = 0;
            for t in 0..threads {
                let mine = split(conns as u64, threads, t) as usize;
                let (plan, barrier) = (&plan, &barrier);
                let first = first_conn;
                handles.push(scope.spawn(move || burst::run(plan, mine, first, cap, barrier)));
                first_conn += mine;
            }
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("worker thread panicked")))
                })
                .collect::<Vec<_>>()
        });
        let mut total = stats::Stats::new();
        let mut elapsed = Duration::ZERO;
        for r in results {
            let (s, e) = r?;
            total.merge(&s);
            elapsed = elapsed.max(e);
        }
        if cfg.connections.len() > 1 {
            let o = report::BurstOutcome::of(&total);
            eprintln!(
                "sluice-bench: burst {conns}: {} succeeded, {} connect failed, {} reset, {} timed out, {} TLS failed in {:.2}s",
                o.succeeded,
                o.connect_failed,
                o.reset,
                o.timed_out,
                o.tls_failed,
                elapsed.as_secs_f64()
            );
        }
        bursts.push(report::BurstResult {
            conns,
            stats: total,
            elapsed,
        });
    }
    for b in &bursts {
        warn_tls(&b.stats);
    }
    let info = info(cfg);
    if cfg.json {
        println!("{}", report::burst_json(&info, &bursts));
    } else {
        print!("{}", report::burst_table(&info, &bursts));
    }
    Ok(())
}
