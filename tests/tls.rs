//! TLS end to end, with certificates made at test time: TLS 1.2 and 1.3
//! (rustls client, and curl when installed), SNI picking each server's
//! certificate, sessions resumed across workers by tickets, plain HTTP to the
//! TLS port, keep-alive, pipelining and large files over TLS, a stalled
//! handshake, limits behind TLS, bad certificates at `-t`, and a reload that
//! swaps the certificate under load with zero failed requests.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const V12: &rustls::SupportedProtocolVersion = &rustls::version::TLS12;
const V13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

fn ssl(cert: &TestCert) -> String {
    format!(
        "ssl_certificate {}; ssl_certificate_key {};",
        cert.cert.display(),
        cert.key.display()
    )
}

/// Two servers on one TLS port: a.test (the default, in the harness's server
/// block; its TLS settings are the address's) and b.test (in the http
/// block), each with its own certificate.
fn two_servers(dir: &Path, workers: usize, extra: &str) -> (Server, TestCert, TestCert) {
    let a = make_cert(dir, "a", &["a.test"]);
    let b = make_cert(dir, "b", &["b.test", "*.b.test"]);
    let s = Server::start(
        Conf::new()
            .workers(workers)
            .listen_params("ssl default_server")
            .http(&format!(
                "    server {{ listen 127.0.0.1:@PORT@ ssl; server_name b.test *.b.test; {} \
                 location / {{ return 200 \"b:$ssl_server_name\"; }} }}",
                ssl(&b)
            ))
            .server(&format!(
                "        server_name a.test; {} {extra}\n\
                 \x20       location = /v {{ return 200 \"$scheme|$https|$ssl_protocol|$ssl_cipher|$ssl_server_name\"; }}",
                ssl(&a)
            )),
    );
    (s, a, b)
}

#[test]
fn tls_1_2_and_1_3_serve_and_sni_picks_each_servers_certificate() {
    let certs = TempDir::new("tls-certs");
    let (s, a, b) = two_servers(certs.path(), 1, "");
    for (v, name, cipher) in [
        (V13, "TLSv1.3", "TLS_AES_"),
        (V12, "TLSv1.2", "ECDHE-ECDSA-"),
    ] {
        let cfg = client_config(&[&a.der], &[v]);
        let mut c = TlsClient::connect(s.port, "a.test", &cfg).expect("handshake");
        assert_eq!(c.peer_cert().as_ref(), Some(&a.der));
        let r = c.get("/v", "a.test").expect("response");
        assert_eq!(r.status, 200);
        let text = r.text();
        let parts: Vec<&str> = text.split('|').collect();
        assert_eq!(parts[..3], ["https", "on", name], "{text}");
        assert!(parts[3].starts_with(cipher), "{text}");
        assert_eq!(parts[4], "a.test");
        // The same connection keeps serving (keep-alive over TLS).
        let r = c.get("/index.html", "a.test").expect("second");
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), INDEX_HTML_BYTES);
    }
    for sni in ["b.test", "www.b.test"] {
        let cfg = client_config(&[&b.der], &[]);
        let mut c = TlsClient::connect(s.port, sni, &cfg).expect("SNI handshake");
        assert_eq!(c.peer_cert().as_ref(), Some(&b.der), "{sni}");
        let r = c.get("/", sni).expect("b");
        assert_eq!(r.text(), format!("b:{sni}"));
    }
    // An unknown name gets the default server's certificate (nginx): a
    // client that trusts it but asked for another name refuses it.
    let cfg = client_config(&[&a.der, &b.der], &[]);
    let err = TlsClient::connect(s.port, "c.test", &cfg)
        .err()
        .expect("name mismatch");
    assert!(
        err.to_string().contains("NotValidForName") || err.to_string().contains("name"),
        "{err}"
    );
    if let Ok(out) = std::process::Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(&b.cert)
        .args(["--resolve", &format!("b.test:{}:127.0.0.1", s.port)])
        .arg(format!("https://b.test:{}/x", s.port))
        .output()
    {
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "b:b.test",
            "curl: {out:?}"
        );
    }
}

#[test]
fn plain_http_on_the_tls_port_gets_nginx_400_and_the_connection_closes() {
    let certs = TempDir::new("tls-plain");
    let (s, _, _) = two_servers(certs.path(), 1, "");
    let mut sock = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    sock.read_to_end(&mut raw).expect("closed, not timed out");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(
        text.contains("The plain HTTP request was sent to HTTPS port"),
        "{text}"
    );
    let r = &parse_responses(&raw)[0];
    assert_eq!(r.content_length(), Some(r.body.len()));
    // Garbage that is neither: refused, and the server goes on.
    let mut g = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    g.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    g.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3])
        .unwrap();
    g.write_all(&[0u8; 600]).unwrap();
    let mut sink = Vec::new();
    let _ = g.read_to_end(&mut sink);
    // A client that does not trust the certificate refuses it; the server
    // still serves the next one.
    let stranger = make_cert(certs.path(), "x", &["x"]);
    let c = TlsClient::connect(s.port, "a.test", &client_config(&[&stranger.der], &[]));
    assert!(c.is_err(), "untrusted certificate accepted");
    let a = pem_cert(&certs.join("a.crt"));
    let mut ok = TlsClient::connect(s.port, "a.test", &client_config(&[&a], &[])).unwrap();
    assert_eq!(ok.get("/v", "a.test").unwrap().status, 200);
}

/// A PEM certificate file's first certificate.
fn pem_cert(p: &Path) -> rustls::pki_types::CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(p).expect("pem")
}

#[test]
fn pipelined_requests_and_a_large_file_over_tls() {
    let certs = TempDir::new("tls-pipe");
    let (s, a, _) = two_servers(certs.path(), 1, "");
    let big = pseudo_random_bytes(3 << 20, 7);
    std::fs::write(s.path("www/big.bin"), &big).unwrap();
    let cfg = client_config(&[&a.der], &[]);
    let mut c = TlsClient::connect(s.port, "a.test", &cfg).unwrap();
    c.send(
        b"GET /index.html HTTP/1.1\r\nHost: a.test\r\n\r\n\
          GET /big.bin HTTP/1.1\r\nHost: a.test\r\n\r\n\
          GET /v HTTP/1.1\r\nHost: a.test\r\n\r\n",
    )
    .unwrap();
    let rs = c.responses(3).expect("three responses");
    assert_eq!(rs.len(), 3);
    assert_eq!(rs[0].body.len(), INDEX_HTML_BYTES);
    assert_eq!(rs[1].status, 200);
    assert!(
        rs[1].body == big,
        "3 MiB body differs ({} bytes)",
        rs[1].body.len()
    );
    assert!(rs[2].text().starts_with("https|on|"));
    // A range of it, then the connection closes cleanly (close_notify).
    c.send(b"GET /big.bin HTTP/1.1\r\nHost: a.test\r\nRange: bytes=1000-1999\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (raw, clean) = c.read_to_close();
    let r = &parse_responses(&raw)[0];
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &big[1000..2000]);
    assert!(clean, "closed without close_notify");
}

/// One full handshake (with a request, which reads the session it leaves),
/// then `n` connections that must all resume.
fn resumes(port: u16, cfg: &Arc<rustls::ClientConfig>, n: usize) {
    let mut first = TlsClient::connect(port, "a.test", cfg).unwrap();
    assert_eq!(first.get("/v", "a.test").unwrap().status, 200);
    assert!(!first.resumed());
    drop(first);
    for i in 0..n {
        let mut c = TlsClient::connect(port, "a.test", cfg).unwrap();
        assert_eq!(c.get("/v", "a.test").unwrap().status, 200);
        assert!(c.resumed(), "connection {i} was a full handshake");
    }
}

#[test]
fn sessions_resume_across_workers_with_tickets_and_not_without() {
    let certs = TempDir::new("tls-resume");
    let (s, a, _) = two_servers(certs.path(), 2, "");
    assert_eq!(s.worker_pids().len(), 2);
    // Round robin hands consecutive connections to both workers.
    resumes(s.port, &client_config(&[&a.der], &[V13]), 6);
    resumes(s.port, &client_config(&[&a.der], &[V12]), 4);
    let certs2 = TempDir::new("tls-noresume");
    let (s2, a2, _) = two_servers(certs2.path(), 2, "ssl_session_tickets off;");
    let cfg = client_config(&[&a2.der], &[V13]);
    for _ in 0..3 {
        let mut c = TlsClient::connect(s2.port, "a.test", &cfg).unwrap();
        c.get("/v", "a.test").unwrap();
        assert!(!c.resumed(), "resumed with tickets off and no cache");
    }
}

#[test]
fn a_stalled_handshake_is_closed_by_client_header_timeout() {
    let certs = TempDir::new("tls-stall");
    let (s, _, _) = two_servers(certs.path(), 1, "client_header_timeout 1s;");
    let mut sock = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    // Half a ClientHello record header, then nothing.
    sock.write_all(&[0x16, 0x03]).unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 64];
    let n = loop {
        match sock.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r.expect("closed, not timed out"),
        }
    };
    assert_eq!(n, 0);
    let waited = t0.elapsed();
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
}

#[test]
fn limits_apply_behind_tls() {
    let certs = TempDir::new("tls-limits");
    let a = make_cert(certs.path(), "a", &["a.test"]);
    let s = Server::start(
        Conf::new()
            .workers(1)
            .listen_params("ssl")
            .http("    limit_req_zone $binary_remote_addr zone=one:64k rate=1r/m;")
            .server(&format!(
                "        {}\n        location /l/ {{ limit_req zone=one; try_files /hello.txt =404; }}",
                ssl(&a)
            )),
    );
    let cfg = client_config(&[&a.der], &[]);
    let mut c = TlsClient::connect(s.port, "a.test", &cfg).unwrap();
    assert_eq!(c.get("/l/1", "a.test").unwrap().status, 200);
    let r = c.get("/l/2", "a.test").unwrap();
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
}

#[test]
fn bad_certificates_and_protocols_fail_t_with_file_and_line() {
    let certs = TempDir::new("tls-t");
    let a = make_cert(certs.path(), "a", &["a.test"]);
    let b = make_cert(certs.path(), "b", &["b.test"]);
    let run = |tag: &str, server: &str| test_config(tag, "ssl", server);
    let fails = assert_conf_error;
    let missing = run(
        "t-missing",
        &format!(
            "    ssl_certificate {}/nope.crt; ssl_certificate_key {};",
            certs.path().display(),
            a.key.display()
        ),
    );
    fails(&missing, 9, "nope.crt");
    let mismatched = run(
        "t-mismatch",
        &format!(
            "    ssl_certificate {}; ssl_certificate_key {};",
            a.cert.display(),
            b.key.display()
        ),
    );
    fails(&mismatched, 9, "cannot use certificate");
    let none = run("t-none", "    server_name x;");
    fails(&none, 8, "no \"ssl_certificate\" is defined");
    let old = run(
        "t-old",
        &format!("    {}\n    ssl_protocols TLSv1 TLSv1.1;", ssl(&a)),
    );
    fails(&old, 10, "neither TLSv1.2 nor TLSv1.3");
    let curve = run(
        "t-curve",
        &format!("    {}\n    ssl_ecdh_curve brainpool;", ssl(&a)),
    );
    fails(&curve, 10, "unknown curve");
    let no_ca = run(
        "t-noca",
        &format!("    {}\n    ssl_verify_client on;", ssl(&a)),
    );
    fails(&no_ca, 10, "no \"ssl_client_certificate\"");
    let bad_ca = run(
        "t-badca",
        &format!(
            "    {}\n    ssl_verify_client optional; ssl_client_certificate {};",
            ssl(&a),
            a.key.display()
        ),
    );
    fails(&bad_ca, 10, "no certificate in");
    let ok = run("t-ok", &format!("    {}\n    ssl_protocols TLSv1 TLSv1.2 TLSv1.3;\n    ssl_ciphers HIGH:!aNULL;\n    ssl_session_cache shared:SSL:10m;", ssl(&a)));
    assert!(ok.status.success(), "{}", ok.stderr);
}

#[test]
fn an_rsa_and_an_ecdsa_certificate_side_by_side_each_client_gets_one_it_verifies() {
    let certs = TempDir::new("tls-dual");
    let ec = make_cert(certs.path(), "ec", &["a.test"]);
    let rsa = make_rsa_cert(certs.path(), "rsa", &["a.test"]);
    let s = Server::start(Conf::new().workers(1).listen_params("ssl").server(&format!(
        "        {} {}",
        ssl(&ec),
        ssl(&rsa)
    )));
    let cfg = client_config(&[&ec.der, &rsa.der], &[]);
    let c = TlsClient::connect(s.port, "a.test", &cfg).unwrap();
    assert_eq!(
        c.peer_cert().as_ref(),
        Some(&ec.der),
        "ECDSA first when both verify"
    );
    let Ok(out) = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", s.port),
            "-servername",
            "a.test",
        ])
        .args(["-tls1_2", "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256", "-brief"])
        .stdin(std::process::Stdio::null())
        .output()
    else {
        return; // openssl missing: the ECDSA half above still ran
    };
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Ciphersuite: ECDHE-RSA-"),
        "an RSA-only client did not get the RSA certificate: {text}"
    );
}

#[test]
fn reload_swaps_the_certificate_under_load_with_zero_failed_requests() {
    let certs = TempDir::new("tls-reload");
    let old = make_cert(certs.path(), "old", &["a.test"]);
    let live_cert = certs.join("live.crt");
    let live_key = certs.join("live.key");
    std::fs::copy(&old.cert, &live_cert).unwrap();
    std::fs::copy(&old.key, &live_key).unwrap();
    let s = Server::start(Conf::new().workers(2).listen_params("ssl").server(&format!(
        "        ssl_certificate {}; ssl_certificate_key {};",
        live_cert.display(),
        live_key.display()
    )));
    let new = make_cert(certs.path(), "new", &["a.test"]);
    let cfg = client_config(&[&old.der, &new.der], &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let port = s.port;
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed, cfg) = (stop.clone(), ok.clone(), failed.clone(), cfg.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // A new connection each time: every handshake sees the
                    // certificate of the moment.
                    let good = TlsClient::connect(port, "a.test", &cfg)
                        .and_then(|mut c| c.get("/index.html", "a.test"))
                        .is_ok_and(|r| r.status == 200);
                    let n = if good { &ok } else { &failed };
                    n.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::copy(&new.cert, &live_cert).unwrap();
    std::fs::copy(&new.key, &live_key).unwrap();
    s.reload_and_drain();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed requests during the reload"
    );
    assert!(
        ok.load(Ordering::Relaxed) > 20,
        "too little load: {}",
        ok.load(Ordering::Relaxed)
    );
    // (A fresh client: a resumed session would show the old certificate.)
    let fresh = || client_config(&[&old.der, &new.der], &[]);
    let c = TlsClient::connect(port, "a.test", &fresh()).unwrap();
    assert_eq!(
        c.peer_cert().as_ref(),
        Some(&new.der),
        "still the old certificate"
    );
    // A broken pair at reload: refused, the running config keeps serving.
    std::fs::write(&live_key, "not a key").unwrap();
    s.signal(nix::sys::signal::Signal::SIGHUP);
    s.wait_log("cannot load certificate key");
    let c = TlsClient::connect(port, "a.test", &fresh()).unwrap();
    assert_eq!(c.peer_cert().as_ref(), Some(&new.der));
}

#[test]
fn client_certificates_on_and_optional_as_nginx() {
    let certs = TempDir::new("tls-mtls");
    let server_cert = make_cert(certs.path(), "a", &["a.test"]);
    let ca = make_ca(certs.path(), "ca");
    let other_ca = make_ca(certs.path(), "other");
    let start = |mode: &str| {
        Server::start(Conf::new().workers(1).listen_params("ssl").server(&format!(
            "        {} ssl_client_certificate {}; ssl_verify_client {mode}; ssl_verify_depth 2;\n\
             \x20       location = /who {{ return 200 \"$ssl_client_verify\"; }}",
            ssl(&server_cert),
            ca.cert.display()
        )))
    };
    let get = |s: &Server, cfg: &Arc<rustls::ClientConfig>| {
        let mut c = TlsClient::connect(s.port, "a.test", cfg).expect("handshake completes");
        let r = c.get("/who", "a.test").expect("response");
        (r.status, r.text())
    };
    let anonymous = client_config(&[&server_cert.der], &[]);
    let good = client_config_with_identity(&[&server_cert.der], client_identity(&ca, "alice"));
    let stranger =
        client_config_with_identity(&[&server_cert.der], client_identity(&other_ca, "mallory"));
    let on = start("on");
    assert_eq!(get(&on, &anonymous).0, 400, "no certificate");
    assert_eq!(get(&on, &good), (200, "SUCCESS".to_string()));
    let (status, _) = get(&on, &stranger);
    assert_eq!(status, 400, "a certificate from another CA");
    assert!(on
        .wait_log("client sent no required SSL certificate")
        .contains("client"));
    let optional = start("optional");
    assert_eq!(get(&optional, &anonymous), (200, "NONE".to_string()));
    assert_eq!(get(&optional, &good), (200, "SUCCESS".to_string()));
    assert_eq!(get(&optional, &stranger).0, 400);
}

#[test]
fn a_configured_ocsp_response_is_stapled() {
    let certs = TempDir::new("tls-ocsp");
    let a = make_cert(certs.path(), "a", &["a.test"]);
    let ocsp = certs.join("a.ocsp");
    // The bytes are passed through as configured (sluice fetches nothing).
    std::fs::write(&ocsp, b"\x30\x03\x0a\x01\x00").unwrap();
    let s = Server::start(Conf::new().workers(1).listen_params("ssl").server(&format!(
        "        {} ssl_stapling on; ssl_stapling_verify on; ssl_stapling_file {};",
        ssl(&a),
        ocsp.display()
    )));
    let (cfg, seen) = client_config_recording_ocsp(&a.der);
    let mut c = TlsClient::connect(s.port, "a.test", &cfg).unwrap();
    assert_eq!(c.get("/index.html", "a.test").unwrap().status, 200);
    assert_eq!(*seen.lock().unwrap(), b"\x30\x03\x0a\x01\x00");
}

#[test]
fn a_burst_of_handshakes_all_complete_while_established_connections_are_served() {
    // More simultaneous handshakes than one loop iteration runs (16): the
    // rest are parked for the next iterations, and none may be forgotten.
    let certs = TempDir::new("tls-burst");
    let (s, a, _) = two_servers(certs.path(), 1, "");
    let cfg = client_config(&[&a.der], &[]);
    let mut established = TlsClient::connect(s.port, "a.test", &cfg).unwrap();
    let start = Arc::new(std::sync::Barrier::new(65));
    let port = s.port;
    let burst: Vec<_> = (0..64)
        .map(|_| {
            let (start, cfg) = (start.clone(), cfg.clone());
            std::thread::spawn(move || {
                start.wait();
                TlsClient::connect(port, "a.test", &cfg)
                    .and_then(|mut c| c.get("/index.html", "a.test"))
                    .map(|r| r.status)
            })
        })
        .collect();
    start.wait();
    for _ in 0..20 {
        assert_eq!(established.get("/v", "a.test").unwrap().status, 200);
    }
    for t in burst {
        assert_eq!(t.join().unwrap().expect("handshake and request"), 200);
    }
}

#[test]
fn old_protocols_and_null_ciphers_are_refused_and_the_server_goes_on() {
    let certs = TempDir::new("tls-old");
    let (s, a, _) = two_servers(certs.path(), 1, "");
    let openssl = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{}", s.port)])
            .args(["-servername", "a.test"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
    };
    let Ok(modern) = openssl(&["-tls1_3"]) else {
        return; // no openssl binary: the rustls tests cover the rest
    };
    assert!(modern.status.success(), "TLS 1.3 refused: {modern:?}");
    for args in [
        &["-tls1_1"][..],
        &["-tls1"],
        &["-tls1_2", "-cipher", "NULL"],
        &["-tls1_2", "-cipher", "RC4"],
    ] {
        let out = openssl(args).expect("openssl");
        assert!(
            !out.status.success()
                || !String::from_utf8_lossy(&out.stdout).contains("BEGIN CERTIFICATE"),
            "{args:?} was accepted: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let mut c = TlsClient::connect(s.port, "a.test", &client_config(&[&a.der], &[])).unwrap();
    assert_eq!(c.get("/v", "a.test").unwrap().status, 200);
}

#[test]
fn a_shared_session_cache_resumes_on_every_worker_without_tickets() {
    let certs = TempDir::new("tls-shared-cache");
    let (s, a, _) = two_servers(
        certs.path(),
        2,
        "ssl_session_tickets off; ssl_session_cache builtin:100 shared:SSL:1m; ssl_session_timeout 10m;",
    );
    for v in [V13, V12] {
        resumes(s.port, &client_config(&[&a.der], &[v]), 6);
    }
}
