//! Graceful reload (SIGHUP): zero failed requests under keep-alive load in
//! handoff and reuseport modes, a new generation of workers with the same
//! count, old workers finishing in-flight responses and closing keep-alive
//! connections with `Connection: close`, and a bad config that is logged
//! while the old workers keep serving.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// What one load thread saw.
#[derive(Default)]
struct LoadReport {
    ok: u64,
    reconnects: u64,
    failures: Vec<String>,
}

/// Keep-alive GETs of /index.html in a loop until `stop`. A connection the
/// server closes after a `Connection: close` response is reopened; anything
/// else (connect error, reset, EOF before a full response, non-200) fails.
fn load_client(port: u16, stop: Arc<AtomicBool>) -> LoadReport {
    let mut rep = LoadReport::default();
    let fail = |rep: &mut LoadReport, what: String| {
        if rep.failures.len() < 20 {
            rep.failures.push(what);
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let mut c = match Client::try_connect(port) {
            Ok(c) => c,
            Err(e) => {
                fail(&mut rep, format!("connect: {e}"));
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        rep.reconnects += 1;
        while !stop.load(Ordering::Relaxed) {
            match c.get("/index.html") {
                Ok(r) if r.status == 200 && r.body.len() == INDEX_HTML_BYTES => {
                    rep.ok += 1;
                    if r.closes() {
                        break;
                    }
                }
                Ok(r) => {
                    fail(
                        &mut rep,
                        format!("status {} body {} bytes", r.status, r.body.len()),
                    );
                    break;
                }
                Err(e) => {
                    let what = format!("after {} ok: {e}", rep.ok);
                    fail(&mut rep, what);
                    break;
                }
            }
        }
    }
    rep
}

/// Runs `threads` load clients while `during` runs, then for at least
/// `total` overall; returns the merged report.
fn under_load(srv: &Server, threads: usize, total: Duration, during: impl FnOnce()) -> LoadReport {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let stop = stop.clone();
            let port = srv.port;
            thread::spawn(move || load_client(port, stop))
        })
        .collect();
    // Stop the clients even if `during` panics.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let guard = StopOnDrop(stop);
    during();
    if let Some(left) = total.checked_sub(started.elapsed()) {
        thread::sleep(left);
    }
    drop(guard);
    let mut all = LoadReport::default();
    for h in handles {
        let r = h.join().expect("load thread panicked");
        all.ok += r.ok;
        all.reconnects += r.reconnects;
        all.failures.extend(r.failures);
    }
    all
}

/// Append a broken line, HUP, wait for the logged refusal, restore the file.
fn reload_bad_config(srv: &Server) {
    let good = std::fs::read_to_string(srv.conf_path()).expect("read config");
    let line = good.lines().count() + 1;
    srv.write_conf_text(&format!("{good}this_is_not_a_directive on;\n"));
    let before = count_lines(&srv.error_log(), "reload failed");
    srv.signal(Signal::SIGHUP);
    let want = format!("sluice.conf:{line}: unknown directive \"this_is_not_a_directive\"");
    let logged = wait_for(START_TIMEOUT, || {
        let log = srv.error_log();
        (count_lines(&log, "reload failed") > before && log.contains(&want)).then_some(())
    });
    srv.write_conf_text(&good);
    assert!(
        logged.is_some(),
        "bad reload not logged with {want:?}:\n{}",
        srv.error_log()
    );
}

fn assert_no_failures(rep: &LoadReport, min_ok: u64) {
    assert!(
        rep.failures.is_empty(),
        "{} ok, failures: {:#?}",
        rep.ok,
        rep.failures
    );
    assert!(
        rep.ok >= min_ok,
        "only {} requests in the load window",
        rep.ok
    );
}

#[test]
fn reload_under_keepalive_load_loses_no_request() {
    let srv = Server::start(Conf::new());
    let first = srv.wait_worker_count(2, START_TIMEOUT);
    let mut generations = vec![first.clone()];
    let rep = under_load(&srv, 8, Duration::from_secs(4), || {
        thread::sleep(Duration::from_millis(400));
        for _ in 0..3 {
            generations.push(srv.reload());
            thread::sleep(Duration::from_millis(500));
        }
        let current = generations.last().expect("a generation").clone();
        reload_bad_config(&srv);
        // The bad config started nobody new.
        let now = srv.worker_pids();
        assert!(
            current.iter().all(|p| now.contains(p)),
            "current workers {current:?} gone after a bad reload: {now:?}"
        );
    });
    eprintln!("load: {} ok, {} connections", rep.ok, rep.reconnects);
    assert_no_failures(&rep, 500);
    let last = generations.last().expect("a generation");
    assert_eq!(last.len(), 2);
    // Old generations drain away; exactly the last generation remains.
    let settled = srv.wait_new_workers(2, &generations[..3].concat(), START_TIMEOUT);
    assert_eq!(&settled, last);
    assert!(first.iter().all(|p| !last.contains(p)));
    assert_eq!(srv.get("/hello.txt").status, 200);
    assert!(srv.master_alive());
}

#[test]
fn reuseport_mode_serves_and_reloads_with_zero_failures() {
    let srv = Server::start(Conf::new().accept_mode("reuseport"));
    let first = srv.wait_worker_count(2, START_TIMEOUT);
    let mut last = first.clone();
    let rep = under_load(&srv, 4, Duration::from_millis(2500), || {
        thread::sleep(Duration::from_millis(300));
        for _ in 0..2 {
            last = srv.reload();
            thread::sleep(Duration::from_millis(500));
        }
    });
    assert_no_failures(&rep, 200);
    assert!(first.iter().all(|p| !last.contains(p)));
    let settled = srv.wait_new_workers(2, &first, START_TIMEOUT);
    assert_eq!(settled, last);
}

#[test]
fn listen_reuseport_flag_serves_and_reloads() {
    let srv = Server::start(Conf::new().listen_params("reuseport"));
    for _ in 0..10 {
        assert_eq!(srv.get("/hello.txt").status, 200);
    }
    let new = srv.reload();
    assert_eq!(new.len(), 2);
    for _ in 0..10 {
        assert_eq!(srv.get("/hello.txt").status, 200);
    }
}

#[test]
fn reload_replaces_workers_and_idle_keepalive_gets_connection_close() {
    let srv = Server::start(Conf::new());
    let old = srv.wait_worker_count(2, START_TIMEOUT);
    let mut c = srv.client();
    let r = c.get("/hello.txt").expect("before reload");
    assert!(!r.closes());
    let new = srv.reload();
    assert_eq!(new.len(), old.len());
    assert!(
        new.iter().all(|p| !old.contains(p)),
        "old {old:?} new {new:?}"
    );
    // Once it has taken its QUIT, the old worker answers the next request on
    // its connection with `Connection: close`, then closes.
    c.get_until_close("/hello.txt", Duration::from_secs(2));
    assert!(c.closed_within(Duration::from_secs(3)));
    assert_eq!(srv.get("/hello.txt").status, 200);
    assert_eq!(srv.wait_new_workers(2, &old, START_TIMEOUT), new);
}

#[test]
fn reload_lets_old_worker_finish_large_response_in_flight() {
    let srv = Server::start(Conf::new());
    let big = pseudo_random_bytes(16 << 20, 7);
    std::fs::write(srv.path("www/big.bin"), &big).expect("write big.bin");
    let old = srv.wait_worker_count(2, START_TIMEOUT);
    let mut c = Client::connect_small_rcvbuf(srv.port);
    c.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    c.read_at_least(64 * 1024);
    let new = srv.reload();
    // The response is still in flight: its worker must still be there.
    assert!(
        old.iter().any(|p| alive(*p)),
        "old workers exited with a response in flight"
    );
    let r = c.read_response().expect("in-flight response completes");
    assert_eq!(r.status, 200);
    assert!(r.body == big, "in-flight body corrupted across reload");
    c.get_until_close("/hello.txt", Duration::from_secs(2));
    assert!(c.closed_within(Duration::from_secs(3)));
    assert_eq!(srv.wait_new_workers(2, &old, START_TIMEOUT), new);
}

#[test]
fn bad_config_reload_is_logged_and_old_workers_keep_serving() {
    let srv = Server::start(Conf::new());
    let old = srv.wait_worker_count(2, START_TIMEOUT);
    let mut c = srv.client();
    assert_eq!(c.get("/hello.txt").expect("before").status, 200);
    reload_bad_config(&srv);
    assert_eq!(srv.worker_pids(), old, "a bad config replaced the workers");
    let r = c
        .get("/hello.txt")
        .expect("keep-alive after a refused reload");
    assert_eq!(r.status, 200);
    assert!(!r.closes(), "a refused reload must not drain the workers");
    // The master still reloads a good config afterwards.
    let new = srv.reload();
    assert!(new.iter().all(|p| !old.contains(p)));
}

#[test]
fn reload_applies_a_changed_config() {
    let srv = Server::start(Conf::new());
    assert_eq!(srv.get("/ret").text(), "ret-ok");
    assert_eq!(srv.get("/added").status, 404);
    let conf = srv
        .conf
        .clone()
        .workers(3)
        .server("location = /added { return 200 \"added\"; }");
    srv.write_conf(&conf);
    let before = srv.worker_pids();
    srv.signal(Signal::SIGHUP);
    let new = wait_for(START_TIMEOUT, || {
        let w: Vec<i32> = srv
            .worker_pids()
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        (w.len() == 3).then_some(w)
    })
    .expect("3 new workers after reloading worker_processes 3");
    assert_eq!(srv.wait_new_workers(3, &before, START_TIMEOUT), new);
    let r = srv.get("/added");
    assert_eq!((r.status, r.text().as_str()), (200, "added"));
}

#[test]
fn reload_counts_in_status_and_counters_survive_old_workers() {
    let srv = Server::start(Conf::new());
    for _ in 0..5 {
        assert_eq!(srv.get("/hello.txt").status, 200);
    }
    let old = srv.worker_pids();
    srv.reload();
    srv.wait_new_workers(2, &old, START_TIMEOUT);
    let text = srv.get("/status").text();
    assert_eq!(metric(&text, "sluice_reloads_total"), Some(1), "{text}");
    assert_eq!(metric(&text, "sluice_requests_total"), Some(5), "{text}");
}

#[test]
fn reload_to_a_new_port_binds_it_and_closes_the_old_one() {
    let srv = Server::start(Conf::new());
    let old_port = srv.port;
    let new_port = free_port();
    let text = srv.conf.render(srv.dir.path(), new_port);
    srv.write_conf_text(&text);
    srv.reload();
    assert_eq!(get(new_port, "/hello.txt").status, 200);
    assert!(
        wait_for(Duration::from_secs(3), || port_refuses(old_port)
            .then_some(()))
        .is_some(),
        "old port {old_port} still accepting after the reload removed it"
    );
}

#[test]
fn reload_that_cannot_bind_keeps_the_old_config_serving() {
    let srv = Server::start(Conf::new());
    let old = srv.wait_worker_count(2, START_TIMEOUT);
    // Someone else holds the port the new config wants.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = squatter.local_addr().expect("addr").port();
    let good = std::fs::read_to_string(srv.conf_path()).expect("read config");
    srv.write_conf_text(&srv.conf.render(srv.dir.path(), taken));
    srv.signal(Signal::SIGHUP);
    let logged = wait_for(START_TIMEOUT, || {
        let log = srv.error_log();
        (log.contains("reload failed") && log.contains(&format!("127.0.0.1:{taken}"))).then_some(())
    });
    srv.write_conf_text(&good);
    assert!(
        logged.is_some(),
        "bind failure not logged:\n{}",
        srv.error_log()
    );
    assert_eq!(srv.worker_pids(), old);
    assert_eq!(srv.get("/hello.txt").status, 200);
    drop(squatter);
}

#[test]
fn access_log_loses_no_line_under_load_with_reload_and_quit() {
    let srv = Server::start(Conf::new().access_log("combined buffer=64k flush=5s"));
    let rep = under_load(&srv, 4, Duration::from_millis(1500), || {
        thread::sleep(Duration::from_millis(500));
        srv.reload();
    });
    assert_no_failures(&rep, 200);
    srv.quit();
    let lines = count_lines(&srv.access_log(), "\"GET /index.html HTTP/1.1\" 200 ");
    assert_eq!(
        lines as u64, rep.ok,
        "access log lines vs answered requests"
    );
}
