//! `https://` targets: the real `sluice-bench` binary against a small rustls server
//! on 127.0.0.1:0 (certificate for `bench.test` made at test time), in every mode.
//! Requests succeed over TLS and are counted, handshakes are counted (and are full
//! unless `--resume`), and a certificate that `--cacert` does not trust fails every
//! handshake as a `tls` error, quickly.

mod common;

use common::{assert_adds_up, bench, make_cert, n, tls_server, Handshakes};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Writes `pem` to a file of its own under the test target's temporary directory.
fn pem_file(name: &str, pem: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

fn handshakes(v: &serde_json::Value) -> (u64, u64) {
    (n(&v["tls"], "handshakes"), n(&v["tls"], "resumed"))
}

/// The server's counts once `done` holds of them (its threads count a connection
/// when it ends, which may be just after the client exits), or after 3 s.
fn server_counts(srv: &common::TlsServer, done: impl Fn(&Handshakes) -> bool) -> Handshakes {
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let hs = *srv.handshakes.lock().unwrap();
        if done(&hs) || Instant::now() > until {
            return hs;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn keepalive_over_tls_reuses_connections() {
    let srv = tls_server(200);
    let v = bench(&["-c", "4", "-d", "1s", &srv.url]);
    assert_adds_up(&v);
    assert!(n(&v, "ok") > 100, "{v}");
    assert_eq!(n(&v, "error_total"), 0, "{v}");
    assert_eq!(n(&v["status_codes"], "200"), n(&v, "ok"));
    // Four connections, one full handshake each, every request on them.
    assert_eq!(handshakes(&v), (4, 0), "{v}");
    let seen = srv.seen.lock().unwrap().len() as u64;
    assert!(
        seen >= n(&v, "ok") && seen <= n(&v, "ok") + 4,
        "{seen}: {v}"
    );
    assert_eq!(srv.handshakes.lock().unwrap().conns, 4);
}

#[test]
fn exact_count_pipelined_over_tls() {
    let srv = tls_server(200);
    let v = bench(&[
        "-c",
        "3",
        "-t",
        "3",
        "-n",
        "300",
        "--pipeline",
        "4",
        &srv.url,
    ]);
    assert_adds_up(&v);
    assert_eq!((n(&v, "ok"), n(&v, "unfinished")), (300, 0), "{v}");
    assert_eq!(srv.seen.lock().unwrap().len(), 300);
}

#[test]
fn one_request_per_connection_is_a_full_handshake_each() {
    let srv = tls_server(200);
    let v = bench(&["-c", "2", "-n", "40", "--no-keepalive", &srv.url]);
    assert_adds_up(&v);
    assert_eq!(n(&v, "ok"), 40, "{v}");
    assert_eq!(v["keepalive"], false);
    // Every request had a connection and a full handshake of its own (a connection
    // opened as the budget ran out may have handshaken too, without a request).
    let (total, resumed) = handshakes(&v);
    assert!((40..=42).contains(&total) && resumed == 0, "{v}");
    let seen = srv.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 40);
    assert!(seen.iter().all(|l| l == "GET / HTTP/1.1"), "{seen:?}");
    let hs = server_counts(&srv, |h| h.full >= total);
    assert_eq!((hs.full, hs.resumed), (total, 0), "{hs:?}");
}

#[test]
fn resume_reuses_sessions_with_tls13_and_tls12() {
    for version in ["1.3", "1.2"] {
        let srv = tls_server(200);
        let v = bench(&[
            "-c",
            "1",
            "-n",
            "20",
            "--no-keepalive",
            "--resume",
            "--tls-version",
            version,
            &srv.url,
        ]);
        assert_adds_up(&v);
        assert_eq!(n(&v, "ok"), 20, "{version}: {v}");
        let (total, resumed) = handshakes(&v);
        assert_eq!(total, 20, "{version}: {v}");
        // The first is full; one connection at a time, every later one resumes.
        assert_eq!(resumed, 19, "{version}: {v}");
        let hs = server_counts(&srv, |h| h.resumed >= 19);
        assert_eq!((hs.full, hs.resumed), (1, 19), "{version}: {hs:?}");
    }
}

#[test]
fn burst_and_rate_modes_over_tls() {
    let srv = tls_server(200);
    let v = bench(&["--mode", "burst", "-c", "10,30", &srv.url]);
    let bursts = v["bursts"].as_array().unwrap();
    for (b, conns) in bursts.iter().zip([10, 30]) {
        assert_eq!(n(b, "succeeded"), conns, "{b}");
        assert_eq!(n(&b["tls"], "handshakes"), conns, "{b}");
        assert_adds_up(b);
    }
    assert_eq!(handshakes(&v), (40, 0), "{v}");
    assert_eq!(server_counts(&srv, |h| h.full >= 40).full, 40);

    let v = bench(&["--rate", "200", "-c", "2", "-d", "1s", &srv.url]);
    assert_adds_up(&v);
    let total = n(&v, "sent") + n(&v, "unfinished");
    assert!((190..=201).contains(&total), "{v}");
    assert_eq!(n(&v, "error_total"), 0, "{v}");
}

#[test]
fn cacert_verifies_and_a_wrong_one_fails_every_handshake() {
    let srv = tls_server(200);
    let right = pem_file("right.pem", &srv.cert_pem);
    let right = right.to_str().unwrap();
    // The right root, and the name the certificate is for.
    let v = bench(&[
        "-c",
        "2",
        "-n",
        "20",
        "--cacert",
        right,
        "--sni",
        "bench.test",
        &srv.url,
    ]);
    assert_eq!(n(&v, "ok"), 20, "{v}");
    // The right root, but an IP address the certificate is not for.
    let v = bench(&["-c", "2", "-n", "10", "--cacert", right, &srv.url]);
    assert_eq!((n(&v, "ok"), n(&v["errors"], "tls")), (0, 10), "{v}");

    let wrong = pem_file("wrong.pem", &make_cert("bench.test").0);
    let wrong = wrong.to_str().unwrap();
    let with_wrong_root = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--cacert", wrong, "--sni", "bench.test", &srv.url]);
        bench(&all)
    };
    let started = Instant::now();
    let v = with_wrong_root(&["-c", "2", "-n", "25"]);
    assert_adds_up(&v);
    assert_eq!(n(&v, "ok"), 0, "{v}");
    assert_eq!(n(&v["errors"], "tls"), 25, "{v}");
    assert_eq!(n(&v["tls"], "handshakes"), 0, "{v}");
    let why = v["tls"]["first_error"].as_str().unwrap();
    assert!(why.contains("certificate"), "{v}");

    let v = with_wrong_root(&["-c", "2", "-d", "500ms"]);
    assert_adds_up(&v);
    assert_eq!(n(&v, "ok"), 0, "{v}");
    assert!(n(&v["errors"], "tls") > 10, "{v}");

    let v = with_wrong_root(&["--mode", "burst", "-c", "20"]);
    assert_eq!((n(&v, "succeeded"), n(&v, "tls_failed")), (0, 20), "{v}");
    assert_adds_up(&v);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    // Without --cacert the same server is fine (not verified, like wrk).
    let v = bench(&["-c", "1", "-n", "5", "-k", &srv.url]);
    assert_eq!(n(&v, "ok"), 5, "{v}");
}

#[test]
fn https_to_a_plain_server_fails_without_hanging() {
    let (url, _) = common::recording_server(200);
    let url = url.replace("http://", "https://");
    let v = bench(&["-c", "1", "-n", "3", "--timeout", "500ms", &url]);
    assert_adds_up(&v);
    assert_eq!(n(&v, "ok"), 0, "{v}");
    assert_eq!(n(&v, "sent"), 3, "{v}");
}
