//! The process model apart from reload: daemon layout (master + workers),
//! kill -9 of a worker and its respawn, QUIT (graceful: in-flight responses
//! finish, pid file removed), TERM (fast), USR1 log reopening, the async
//! access log losing no line, and the `status` counters.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::fs;
use std::time::{Duration, Instant};

#[test]
fn daemon_runs_detached_master_with_configured_worker_count() {
    let srv = Server::start(Conf::new().workers(3));
    let master = srv.master_pid();
    let me = std::process::id() as i32;
    let ppid = fs::read_to_string(format!("/proc/{master}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s[s.rfind(')')? + 2..].to_string();
            rest.split_whitespace().nth(1)?.parse::<i32>().ok()
        })
        .expect("master's ppid");
    assert_ne!(ppid, me, "the master must be detached from the test");
    assert_eq!(srv.wait_worker_count(3, START_TIMEOUT).len(), 3);
    assert_eq!(srv.get("/hello.txt").text(), HELLO_TXT);
}

#[test]
fn killed_worker_is_respawned_and_other_workers_connections_survive() {
    let srv = Server::start(Conf::new());
    let workers = srv.wait_worker_count(2, START_TIMEOUT);
    // Keep-alive connections spread round robin over both workers.
    let mut held: Vec<Client> = (0..6).map(|_| srv.client()).collect();
    for (i, c) in held.iter_mut().enumerate() {
        assert_eq!(
            c.get("/hello.txt").expect("held request").status,
            200,
            "conn {i}"
        );
    }
    let victim = workers[0];
    assert!(send_signal(victim, Signal::SIGKILL));
    let now = wait_for(Duration::from_secs(3), || {
        let w = srv.worker_pids();
        (w.len() == 2 && !w.contains(&victim)).then_some(w)
    })
    .unwrap_or_else(|| panic!("no replacement for worker {victim} within 3 s"));
    assert!(
        now.contains(&workers[1]),
        "the surviving worker was replaced too"
    );
    for i in 0..20 {
        assert_eq!(
            srv.get("/hello.txt").status,
            200,
            "request {i} after respawn"
        );
    }
    // Connections of the killed worker are gone; the survivor's still work.
    let mut alive_conns = 0;
    for c in held.iter_mut() {
        match c.get("/hello.txt") {
            Ok(r) => {
                assert_eq!(r.status, 200);
                alive_conns += 1;
            }
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                ),
                "a dead worker's connection must just close: {e}"
            ),
        }
    }
    assert!(
        alive_conns >= 1,
        "no held connection survived on the other worker"
    );
    let text = srv.get("/status").text();
    assert_eq!(
        metric(&text, "sluice_worker_respawns_total"),
        Some(1),
        "{text}"
    );
}

#[test]
fn quit_finishes_in_flight_response_refuses_new_connections_and_removes_pid_file() {
    let srv = Server::start(Conf::new());
    let big = pseudo_random_bytes(16 << 20, 11);
    fs::write(srv.path("www/big.bin"), &big).expect("write big.bin");
    let mut c = Client::connect_small_rcvbuf(srv.port);
    c.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    c.read_at_least(64 * 1024);
    srv.signal(Signal::SIGQUIT);
    assert!(
        wait_for(Duration::from_secs(3), || port_refuses(srv.port)
            .then_some(()))
        .is_some(),
        "still accepting connections after QUIT"
    );
    assert!(
        srv.master_alive(),
        "master exited with a response in flight"
    );
    let r = c
        .read_response()
        .expect("in-flight response completes after QUIT");
    assert!(r.body == big, "in-flight body corrupted by QUIT");
    assert!(
        srv.wait_exit(Duration::from_secs(5)),
        "master still running 5 s after QUIT"
    );
    assert!(!srv.pid_path().exists(), "pid file left behind");
    assert!(srv.worker_pids().is_empty());
}

#[test]
fn term_stops_fast_despite_a_busy_connection() {
    let srv = Server::start(Conf::new());
    let workers = srv.wait_worker_count(2, START_TIMEOUT);
    // A request body that never finishes keeps a connection busy; a graceful
    // stop would wait for it up to worker_shutdown_timeout (10 s).
    let mut c = srv.client();
    c.send(b"POST /ret HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n0123456789");
    assert_eq!(c.read_response().expect("early response").status, 200);
    let started = Instant::now();
    srv.signal(Signal::SIGTERM);
    assert!(
        srv.wait_exit(Duration::from_secs(3)),
        "master still running 3 s after TERM"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        workers.iter().all(|p| !alive(*p)),
        "workers outlived the master"
    );
    assert!(
        c.closed_within(Duration::from_secs(2)),
        "busy connection left open"
    );
    assert!(!srv.pid_path().exists(), "pid file left behind after TERM");
}

#[test]
fn usr1_reopens_access_and_error_logs_after_rename() {
    let srv = Server::start(Conf::new().workers(1));
    assert_eq!(srv.get("/before-rotate").status, 404);
    wait_for(Duration::from_secs(5), || {
        srv.access_log().contains("before-rotate").then_some(())
    })
    .expect("access log line for /before-rotate within 5 s");
    fs::rename(srv.path("access.log"), srv.path("access.log.1")).expect("rename access.log");
    fs::rename(srv.path("error.log"), srv.path("error.log.1")).expect("rename error.log");
    srv.signal(Signal::SIGUSR1);
    wait_for(Duration::from_secs(3), || {
        (srv.path("access.log").exists() && srv.path("error.log").exists()).then_some(())
    })
    .expect("USR1 did not recreate access.log and error.log within 3 s");
    assert_eq!(srv.get("/after-reopen").status, 404);
    wait_for(Duration::from_secs(5), || {
        srv.access_log().contains("after-reopen").then_some(())
    })
    .expect("request after USR1 not logged in the new access.log");
    let old = fs::read_to_string(srv.path("access.log.1")).expect("read access.log.1");
    assert!(old.contains("before-rotate"));
    assert!(!old.contains("after-reopen"), "written to the rotated file");
    // The master's own messages go to the new error log too.
    srv.quit();
    assert!(
        !srv.error_log().is_empty(),
        "nothing in the reopened error.log"
    );
}

#[test]
fn access_log_has_exactly_one_line_per_request_after_quit() {
    let srv = Server::start(Conf::new().access_log("combined buffer=64k flush=5s"));
    let mut n = 0;
    // Five keep-alive connections, 40 requests each, plus a pipelined burst.
    for _ in 0..5 {
        let mut c = srv.client();
        for _ in 0..40 {
            c.send(
                format!(
                    "GET /hello.txt?n={n} HTTP/1.1\r\nHost: t\r\n\
                     Referer: http://ref.test/\r\nUser-Agent: itest-agent/1.0\r\n\r\n"
                )
                .as_bytes(),
            );
            assert_eq!(c.read_response().expect("response").status, 200);
            n += 1;
        }
    }
    let mut burst = String::new();
    for _ in 0..30 {
        burst.push_str(&format!("GET /hello.txt?n={n} HTTP/1.1\r\nHost: t\r\n\r\n"));
        n += 1;
    }
    burst.push_str("GET /ret HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(statuses(&srv.exchange(burst.as_bytes())).len(), 31);
    srv.quit();
    let log = srv.access_log();
    assert_eq!(count_lines(&log, "GET /hello.txt?n="), n, "{n} requests");
    assert_eq!(log.lines().count(), n + 1, "plus one line for /ret");
    for i in 0..n {
        let needle = format!("\"GET /hello.txt?n={i} HTTP/1.1\" 200 {}", HELLO_TXT.len());
        assert_eq!(count_lines(&log, &needle), 1, "line for request {i}");
    }
    // Workers flush independently: find the first request's line anywhere.
    let first = log
        .lines()
        .find(|l| l.contains("?n=0 "))
        .expect("line for request 0");
    assert!(first.starts_with("127.0.0.1 - - ["), "{first}");
    assert!(
        first.contains(" +0000] \"GET /hello.txt?n=0 HTTP/1.1\" 200 "),
        "{first}"
    );
    assert!(
        first.ends_with("\"http://ref.test/\" \"itest-agent/1.0\""),
        "combined format: {first}"
    );
}

#[test]
fn access_log_keeps_every_line_across_reload() {
    let srv = Server::start(Conf::new().access_log("combined buffer=64k flush=5s"));
    let mut c = srv.client();
    for _ in 0..50 {
        assert_eq!(c.get("/hello.txt?phase=old").expect("old").status, 200);
    }
    drop(c);
    let old = srv.worker_pids();
    srv.reload();
    srv.wait_new_workers(2, &old, START_TIMEOUT);
    let mut c = srv.client();
    for _ in 0..50 {
        assert_eq!(c.get("/hello.txt?phase=new").expect("new").status, 200);
    }
    drop(c);
    srv.quit();
    let log = srv.access_log();
    assert_eq!(count_lines(&log, "phase=old"), 50);
    assert_eq!(count_lines(&log, "phase=new"), 50);
}

#[test]
fn status_counts_requests_in_prometheus_text() {
    let srv = Server::start(Conf::new());
    let mut c = srv.client();
    let r = c.get("/status").expect("status");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain")));
    let text = r.text();
    assert_eq!(metric(&text, "sluice_requests_total"), Some(0), "{text}");
    for name in [
        "sluice_connections_active",
        "sluice_connections_accepted_total",
        "sluice_connections_handled_total",
        "sluice_connections_reading",
        "sluice_connections_writing",
        "sluice_connections_idle",
        "sluice_reloads_total",
    ] {
        assert!(metric(&text, name).is_some(), "{name} missing:\n{text}");
    }
    for _ in 0..10 {
        assert_eq!(srv.get("/hello.txt").status, 200);
    }
    // Other workers publish after their event-loop turn: poll briefly. Each
    // status request counts too (after it is answered).
    let mut polls = 0;
    let text = wait_for(Duration::from_secs(2), || {
        let t = c.get("/status").ok()?.text();
        polls += 1;
        (metric(&t, "sluice_requests_total")? >= 10 + polls).then_some(t)
    })
    .expect("sluice_requests_total did not count the requests");
    assert_eq!(
        metric(&text, "sluice_requests_total"),
        Some(10 + polls),
        "10 GETs and {polls} status requests before this one:\n{text}"
    );
    assert!(metric(&text, "sluice_connections_active").is_some_and(|n| n >= 1));
    assert!(metric(&text, "sluice_connections_accepted_total").is_some_and(|n| n >= 11));
    assert_eq!(
        count_lines(&text, "sluice_worker_requests_total{"),
        2,
        "{text}"
    );
}

#[test]
fn status_speaks_json_when_asked() {
    let srv = Server::start(Conf::new());
    for _ in 0..3 {
        assert_eq!(srv.get("/hello.txt").status, 200);
    }
    // Other workers publish after their event-loop turn: poll briefly. Each
    // status request counts too (after it is answered).
    let mut c = srv.client();
    let mut polls = 0;
    let r = wait_for(Duration::from_secs(2), || {
        c.send(b"GET /status HTTP/1.1\r\nHost: t\r\nAccept: application/json\r\n\r\n");
        let r = c.read_response().expect("json status");
        let want = format!("{{\"requests\":{},", 3 + polls);
        polls += 1;
        r.text().starts_with(&want).then_some(r)
    })
    .expect("JSON status counting 3 GETs and the earlier status requests");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = r.text();
    assert!(body.contains("\"connections\":{\"accepted\":"), "{body}");
    assert_eq!(body.matches("\"slot\":").count(), 2, "{body}");
    assert!(body.contains("],\"limits\":{"), "{body}");
    assert!(body.trim_end().ends_with('}'), "{body}");
}

#[test]
fn quit_closes_idle_keepalive_connections_promptly() {
    let srv = Server::start(Conf::new());
    let mut idle = srv.client();
    assert_eq!(idle.get("/hello.txt").expect("request").status, 200);
    let started = Instant::now();
    srv.signal(Signal::SIGQUIT);
    assert!(
        idle.closed_within(Duration::from_secs(3)),
        "idle connection kept open"
    );
    assert!(
        srv.wait_exit(Duration::from_secs(3)),
        "master still running 3 s after QUIT"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!srv.pid_path().exists());
}

/// Kills the listed pids on drop (workers orphaned by a killed master).
struct KillOnDrop(Vec<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &p in &self.0 {
            if alive(p) {
                send_signal(p, Signal::SIGKILL);
            }
        }
    }
}

#[test]
fn workers_exit_when_the_master_is_killed() {
    let srv = Server::start(Conf::new());
    let workers = srv.wait_worker_count(2, START_TIMEOUT);
    let _guard = KillOnDrop(workers.clone());
    assert!(send_signal(srv.master_pid(), Signal::SIGKILL));
    let gone = wait_for(Duration::from_secs(5), || {
        workers.iter().all(|p| !alive(*p)).then_some(())
    });
    assert!(
        gone.is_some(),
        "workers {workers:?} outlived a killed master"
    );
}
