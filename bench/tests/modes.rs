//! Runs the real `sluice-bench` binary in each mode for about a second against tiny
//! servers started here on 127.0.0.1:0, and checks that its counts add up and that
//! a server that closes connections without answering shows up as errors.

mod common;

use common::{assert_adds_up, bench, n, recording_server};
use std::io::Read;
use std::net::TcpListener;
use std::process::Command;
use std::thread;

/// A keep-alive HTTP/1.1 server answering every request with `status`.
fn answering_server(status: u16) -> String {
    recording_server(status).0
}

/// A server that accepts, reads the request, and closes without answering.
fn closing_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut chunk = [0u8; 4096];
            let _ = stream.read(&mut chunk);
        }
    });
    format!("http://{addr}/")
}

#[test]
fn keepalive_counts_add_up() {
    let url = answering_server(200);
    let v = bench(&["-c", "4", "-d", "1s", &url]);
    assert_adds_up(&v);
    assert!(n(&v, "ok") > 100, "{v}");
    assert_eq!(n(&v, "error_total"), 0, "{v}");
    assert!(n(&v, "unfinished") <= 4, "{v}");
    assert!(v["rps"].as_f64().unwrap() > 100.0);
    assert_eq!(n(&v["status_codes"], "200"), n(&v, "ok"));
    assert!(n(&v, "bytes") >= n(&v, "ok") * 5);
    for k in ["p50", "p90", "p99", "p999", "max"] {
        assert!(v["latency_ms"][k].as_f64().unwrap() > 0.0, "{k}: {v}");
    }
}

#[test]
fn keepalive_pipelined_with_two_threads_adds_up() {
    let url = answering_server(200);
    let v = bench(&[
        "-c",
        "4",
        "-t",
        "2",
        "--pipeline",
        "4",
        "-d",
        "1s",
        &url,
        &url,
    ]);
    assert_adds_up(&v);
    assert!(n(&v, "ok") > 100, "{v}");
    assert_eq!(n(&v, "error_total"), 0, "{v}");
    assert!(n(&v, "unfinished") <= 16, "{v}");
}

#[test]
fn request_count_is_exact() {
    let url = answering_server(200);
    let v = bench(&["-c", "3", "-n", "100", "--pipeline", "2", &url]);
    assert_adds_up(&v);
    assert_eq!(n(&v, "sent"), 100, "{v}");
    assert_eq!(n(&v, "ok"), 100, "{v}");
    assert_eq!(n(&v, "unfinished"), 0, "{v}");
}

#[test]
fn non_2xx_is_a_status_error_not_ok() {
    let url = answering_server(503);
    let v = bench(&["-c", "2", "-d", "500ms", &url]);
    assert_adds_up(&v);
    assert_eq!(n(&v, "ok"), 0, "{v}");
    assert!(n(&v, "non2xx") > 10, "{v}");
    assert_eq!(n(&v["status_codes"], "503"), n(&v, "non2xx"));
}

#[test]
fn rate_mode_sends_at_the_rate() {
    let url = answering_server(200);
    let v = bench(&["--rate", "400", "-c", "4", "-d", "1s", &url]);
    assert_adds_up(&v);
    let total = n(&v, "sent") + n(&v, "unfinished");
    assert!((390..=401).contains(&total), "{v}");
    assert_eq!(n(&v, "error_total"), 0, "{v}");
}

#[test]
fn burst_mode_counts_every_connection() {
    let url = answering_server(200);
    let v = bench(&["--mode", "burst", "-c", "20,60", &url]);
    let bursts = v["bursts"].as_array().unwrap();
    assert_eq!(bursts.len(), 2);
    for (b, conns) in bursts.iter().zip([20, 60]) {
        assert_eq!(n(b, "conns"), conns);
        assert_eq!(n(b, "succeeded"), conns, "{b}");
        assert_adds_up(b);
    }
    assert_eq!(n(&v, "succeeded"), 80);
    assert_adds_up(&v);
}

#[test]
fn closing_server_is_errors_in_every_mode() {
    let url = closing_server();
    let v = bench(&["-c", "4", "-d", "1s", &url]);
    assert_adds_up(&v);
    assert_eq!(n(&v, "ok"), 0, "{v}");
    assert!(n(&v, "error_total") > 0, "{v}");

    let v = bench(&["--rate", "200", "-c", "4", "-d", "1s", &url]);
    assert_adds_up(&v);
    assert_eq!(n(&v, "ok"), 0, "{v}");
    assert!(n(&v, "error_total") > 50, "{v}");

    let v = bench(&["--mode", "burst", "-c", "30", "--timeout", "3s", &url]);
    assert_eq!(n(&v, "succeeded"), 0, "{v}");
    let failed = n(&v, "connect_failed") + n(&v, "reset") + n(&v, "timed_out");
    assert_eq!(failed + n(&v, "unfinished"), 30, "{v}");
    assert_adds_up(&v);
}

#[test]
fn refused_connections_are_connect_errors() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // the listener is dropped: nothing listens there now
    let url = format!("http://127.0.0.1:{port}/");
    let v = bench(&["-c", "2", "-d", "300ms", &url]);
    assert_adds_up(&v);
    assert_eq!(n(&v, "ok"), 0);
    assert!(n(&v["errors"], "connect") > 0, "{v}");
    let v = bench(&["--mode", "burst", "-c", "10", &url]);
    assert_eq!(n(&v, "connect_failed"), 10, "{v}");
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        vec!["-c", "0", "http://127.0.0.1:1/"],
        vec!["--mode", "sideways", "http://127.0.0.1:1/"],
        vec!["-d", "forever", "http://127.0.0.1:1/"],
        vec![],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("sluice-bench:"));
    }
}

#[test]
fn unique_marker_gives_every_request_its_own_path() {
    let (url, seen) = recording_server(200);
    let url = format!("{url}m/{{n}}?x=1");
    let v = bench(&["-c", "4", "-t", "2", "-n", "60", &url]);
    assert_adds_up(&v);
    assert_eq!(n(&v, "ok"), 60, "{v}");
    let lines = seen.lock().unwrap().clone();
    assert_eq!(lines.len(), 60);
    let distinct: std::collections::HashSet<&String> = lines.iter().collect();
    assert_eq!(distinct.len(), 60, "{lines:?}");
    for l in &lines {
        assert!(
            l.starts_with("GET /m/") && l.ends_with("?x=1 HTTP/1.1"),
            "{l}"
        );
        assert!(!l.contains("{n}"), "{l}");
    }
    // Another run names its paths differently (a cache in front has not seen them).
    let again = bench(&["-c", "1", "-n", "1", &url]);
    assert_eq!(n(&again, "ok"), 1);
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert!(!lines.contains(&last), "{last}");
}

#[test]
fn no_keepalive_sends_one_request_per_connection() {
    let (url, seen) = recording_server(200);
    let v = bench(&["-c", "2", "-n", "30", "--no-keepalive", &url]);
    assert_adds_up(&v);
    assert_eq!(n(&v, "ok"), 30, "{v}");
    assert_eq!(v["keepalive"], false, "{v}");
    assert!(v.get("tls").is_none(), "{v}");
    assert_eq!(seen.lock().unwrap().len(), 30);
}
