//! HTTPS upstreams (`proxy_pass https://`), against an origin that is a
//! second sluice with `listen ... ssl` (it shows what the handshake settled
//! through `$ssl_server_name`, `$ssl_protocol` and its `$connection`):
//! verification off and on (the right and the wrong trusted certificate, a
//! name the certificate is not for), SNI only with `proxy_ssl_server_name
//! on`, `proxy_ssl_name` with variables, `proxy_ssl_protocols`, keep-alive
//! reuse of one TLS connection (and never across server names), dead,
//! plain-HTTP and stalled upstreams (next server, 502, 504 within
//! `proxy_connect_timeout`), the cache through an HTTPS origin, and the
//! `proxy_ssl_*` errors at `-t`.

mod common;

use common::*;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// The TLS origin: one worker (its `$connection` numbers every connection
/// it accepted), a certificate for `origin.test`, and `/who` telling the
/// connection, its request count, the protocol and the SNI name.
fn tls_origin(certs: &TempDir) -> (Server, TestCert) {
    let cert = make_cert(certs.path(), "origin", &["origin.test"]);
    let s = Server::start(
        Conf::new()
            .workers(1)
            .access_log("combined")
            .listen_params("ssl")
            .server(&format!(
                "        ssl_certificate {}; ssl_certificate_key {};\n\
                 \x20       location = /who {{ return 200 \"$connection:$connection_requests|$ssl_protocol|[$ssl_server_name]\"; }}",
                cert.cert.display(),
                cert.key.display()
            )),
    );
    (s, cert)
}

/// A one-worker proxy with `http` at http level and `server` in its server.
fn proxy(http: &str, server: &str) -> Server {
    Server::start(Conf::new().workers(1).http(http).server(server))
}

/// `/who`'s answer split: (connection, requests on it, protocol, SNI).
fn who(r: &Response) -> (u64, u64, String, String) {
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let parts: Vec<&str> = text.split('|').collect();
    let (c, n) = parts[0].split_once(':').expect("conn:requests");
    (
        c.parse().unwrap(),
        n.parse().unwrap(),
        parts[1].to_string(),
        parts[2].trim_matches(['[', ']']).to_string(),
    )
}

#[test]
fn verify_off_proxies_files_and_bodies_from_an_https_origin() {
    let certs = TempDir::new("upstls-off");
    let (origin, _) = tls_origin(&certs);
    let px = proxy(
        "",
        &format!(
            "location / {{ proxy_pass https://127.0.0.1:{}; }}",
            origin.port
        ),
    );
    let mut c = px.client();
    let r = c.get("/hello.txt").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), HELLO_TXT);
    // Several TLS records, and the origin's bytes as they are.
    let r = c.get("/64k.bin").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, pseudo_random_bytes(BIN_64K_BYTES, 0x5eed_1234));
    let r = c.get("/no-such-file").unwrap();
    assert_eq!(r.status, 404);
    // A request body (200 KB, more than one TLS record and than the send
    // queue holds) goes up through TLS too; the connection stays usable.
    let body = pseudo_random_bytes(200 * 1024, 7);
    let mut raw = format!(
        "POST /who HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    c.send(&raw);
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // The origin answers `/who` without waiting for the body: when its
    // answer comes before the proxy has sent all of the body, the client
    // connection closes (the rest cannot be framed), else it is kept.
    let mut c = if r.closes() { px.client() } else { c };
    // Without proxy_ssl_server_name, no SNI; TLS 1.3 by default.
    let (_, _, proto, sni) = who(&c.get("/who").unwrap());
    assert_eq!((proto.as_str(), sni.as_str()), ("TLSv1.3", ""));
}

#[test]
fn verify_on_takes_the_trusted_certificate_and_refuses_another_or_another_name() {
    let certs = TempDir::new("upstls-verify");
    let (origin, cert) = tls_origin(&certs);
    let other = make_cert(certs.path(), "other", &["origin.test"]);
    let px = proxy(
        "",
        &format!(
            "proxy_ssl_verify on; proxy_ssl_name origin.test;\n\
             location /good/ {{ proxy_pass https://127.0.0.1:{p}/; proxy_ssl_trusted_certificate {good}; }}\n\
             location /bad/ {{ proxy_pass https://127.0.0.1:{p}/; proxy_ssl_trusted_certificate {bad}; }}\n\
             location /name/ {{ proxy_pass https://127.0.0.1:{p}/; proxy_ssl_trusted_certificate {good}; proxy_ssl_name wrong.test; }}",
            p = origin.port,
            good = cert.cert.display(),
            bad = other.cert.display(),
        ),
    );
    let r = px.get("/good/hello.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), HELLO_TXT);
    let r = px.get("/bad/hello.txt");
    assert_eq!(r.status, 502);
    let log = px.wait_log("upstream SSL certificate verify error");
    assert!(log.contains("invalid peer certificate"), "{log}");
    assert!(log.contains("(name \"origin.test\")"), "{log}");
    let r = px.get("/name/hello.txt");
    assert_eq!(r.status, 502);
    let log = px.wait_log("(name \"wrong.test\")");
    assert!(log.contains("not valid for name"), "{log}");
    // The trusted one still works after the failures (nothing marked down
    // for good: a lone server never is).
    assert_eq!(px.get("/good/hello.txt").status, 200);
}

#[test]
fn sni_is_sent_only_with_proxy_ssl_server_name_on_and_takes_variables() {
    let certs = TempDir::new("upstls-sni");
    let (origin, _) = tls_origin(&certs);
    let px = proxy(
        &format!(
            "    upstream origin.test {{ server 127.0.0.1:{}; }}",
            origin.port
        ),
        "location /off/ { proxy_pass https://origin.test/; }\n\
         location /on/ { proxy_pass https://origin.test/; proxy_ssl_server_name on; }\n\
         location /ip/ { proxy_pass https://127.0.0.1:1/; proxy_ssl_server_name on; }\n\
         location /var/ { proxy_pass https://origin.test/; proxy_ssl_server_name on; proxy_ssl_name $http_x_name; }\n\
         location /v12/ { proxy_pass https://origin.test/; proxy_ssl_protocols TLSv1.2; }",
    );
    let mut c = px.client();
    assert_eq!(who(&c.get("/off/who").unwrap()).3, "");
    assert_eq!(who(&c.get("/on/who").unwrap()).3, "origin.test");
    let r = px.request("/var/who", &[("X-Name", "picked.test:8443")]);
    assert_eq!(who(&r).3, "picked.test", "the port is cut, as nginx does");
    let (_, _, proto, _) = who(&c.get("/v12/who").unwrap());
    assert_eq!(proto, "TLSv1.2");
    // An address is never sent as SNI (RFC 6066); this one is dead anyway.
    assert_eq!(c.get("/ip/who").unwrap().status, 502);
}

#[test]
fn one_tls_connection_carries_many_requests_and_is_never_shared_across_names() {
    let certs = TempDir::new("upstls-keepalive");
    let (origin, _) = tls_origin(&certs);
    let px = proxy(
        &format!(
            "    upstream o {{ server 127.0.0.1:{}; keepalive 4; }}",
            origin.port
        ),
        "proxy_ssl_server_name on;\n\
         location /a/ { proxy_pass https://o/; proxy_ssl_name a.test; }\n\
         location /b/ { proxy_pass https://o/; proxy_ssl_name b.test; }\n\
         location /plain/ { proxy_pass http://o/; }",
    );
    let mut first = None;
    for i in 1..=5u64 {
        // A new client connection each time: the upstream one is the pool's.
        let (conn, n, _, sni) = who(&px.get("/a/who"));
        assert_eq!(sni, "a.test");
        assert_eq!(n, i, "request {i} on the same upstream connection");
        assert_eq!(*first.get_or_insert(conn), conn);
    }
    let (b_conn, b_n, _, b_sni) = who(&px.get("/b/who"));
    assert_eq!(b_sni, "b.test");
    assert_ne!(Some(b_conn), first, "another name, another connection");
    assert_eq!(b_n, 1);
    let (a_conn, a_n, _, _) = who(&px.get("/a/who"));
    assert_eq!((Some(a_conn), a_n), (first, 6));
    let (b2, b2_n, _, _) = who(&px.get("/b/who"));
    assert_eq!((b2, b2_n), (b_conn, 2));
    // Plain HTTP to the TLS port: the origin answers 400 in plain text
    // and never gets a TLS connection of the pool.
    assert_eq!(px.get("/plain/who").status, 400);
    let (a3, a3_n, _, _) = who(&px.get("/a/who"));
    assert_eq!((Some(a3), a3_n), (first, 7));
}

#[test]
fn dead_plain_and_refusing_upstreams_give_way_to_the_next_server_or_502() {
    let certs = TempDir::new("upstls-next");
    let (origin, _) = tls_origin(&certs);
    let dead = free_port();
    let plain = proxy("", "location = /p { return 200 \"plain\"; }");
    let px = proxy(
        &format!(
            "    upstream u {{ server 127.0.0.1:{dead}; server 127.0.0.1:{plain}; server 127.0.0.1:{tls}; }}\n\
             \x20   upstream gone {{ server 127.0.0.1:{dead}; server 127.0.0.1:{plain}; }}",
            plain = plain.port,
            tls = origin.port
        ),
        "location /u/ { proxy_pass https://u/; }\n\
         location /gone/ { proxy_pass https://gone/; }\n\
         location /off/ { proxy_pass https://gone/; proxy_next_upstream off; }",
    );
    let r = px.get("/u/hello.txt");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), HELLO_TXT);
    let log = px.wait_log(&format!(
        "SSL handshake to upstream 127.0.0.1:{}",
        plain.port
    ));
    assert!(
        log.contains(&format!("connect() to upstream 127.0.0.1:{dead} failed")),
        "{log}"
    );
    // Both down now; the request after them goes straight to the origin.
    for _ in 0..3 {
        assert_eq!(px.get("/u/hello.txt").status, 200);
    }
    assert_eq!(px.get("/gone/x").status, 502);
    assert_eq!(px.get("/off/x").status, 502);
}

#[test]
fn a_stalled_handshake_is_bounded_by_proxy_connect_timeout() {
    let certs = TempDir::new("upstls-stall");
    let (origin, _) = tls_origin(&certs);
    // Accepts (the kernel does) and never says a word.
    let mute = TcpListener::bind("127.0.0.1:0").unwrap();
    let mute_port = mute.local_addr().unwrap().port();
    let px = proxy(
        &format!(
            "    upstream both {{ server 127.0.0.1:{mute_port}; server 127.0.0.1:{}; }}",
            origin.port
        ),
        &format!(
            "proxy_connect_timeout 1s;\n\
             location /mute/ {{ proxy_pass https://127.0.0.1:{mute_port}/; }}\n\
             location /both/ {{ proxy_pass https://both/; }}"
        ),
    );
    let t = Instant::now();
    let r = px.get("/mute/x");
    let took = t.elapsed();
    assert_eq!(r.status, 504);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(3000),
        "504 after {took:?}"
    );
    px.wait_log("upstream timed out (SSL handshake)");
    let t = Instant::now();
    let r = px.get("/both/hello.txt");
    assert_eq!(r.status, 200, "the next server after the timeout");
    assert!(t.elapsed() < Duration::from_millis(3000));
    drop(mute);
}

#[test]
fn the_cache_fills_from_an_https_origin_and_hits() {
    let certs = TempDir::new("upstls-cache");
    let (origin, _) = tls_origin(&certs);
    let cache = TempDir::new("upstls-cache-dir");
    let px = proxy(
        &format!(
            "    proxy_cache_path {} levels=1:2 keys_zone=z:1m;",
            cache.path().display()
        ),
        &format!(
            "location / {{ proxy_pass https://127.0.0.1:{}; proxy_cache z; proxy_cache_valid 200 10m; }}",
            origin.port
        ),
    );
    let r = px.get("/64k.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-cache-status"), Some("MISS"));
    let want = pseudo_random_bytes(BIN_64K_BYTES, 0x5eed_1234);
    assert_eq!(r.body, want);
    let hit = wait_for(Duration::from_secs(5), || {
        let r = px.get("/64k.bin");
        (r.header("x-cache-status") == Some("HIT")).then_some(r)
    })
    .expect("a HIT");
    assert_eq!(hit.body, want);
    let served = || count_lines(&origin.access_log(), "/64k.bin");
    let before = wait_for(Duration::from_secs(5), || {
        Some(served()).filter(|&n| n >= 1)
    })
    .expect("the origin's access log shows the fill");
    for _ in 0..3 {
        assert_eq!(px.get("/64k.bin").header("x-cache-status"), Some("HIT"));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(served(), before, "HITs never reach the origin");
}

#[test]
fn proxy_ssl_errors_fail_t_with_file_and_line() {
    let run = |server: &str| test_config("upstls-t", "", server);
    let out = run(
        "    location / { proxy_pass https://127.0.0.1:1; }\n    proxy_ssl_trusted_certificate /no/such/dir/nope.pem;",
    );
    assert_conf_error(
        &out,
        10,
        "cannot load certificate \"/no/such/dir/nope.pem\"",
    );
    let out =
        run("    location / {\n proxy_pass https://127.0.0.1:1; proxy_ssl_protocols TLSv1; }");
    assert_conf_error(&out, 10, "\"proxy_ssl_protocols\" enables neither");
    let out =
        run("    location / {\n proxy_pass https://127.0.0.1:1; proxy_ssl_verify sometimes; }");
    assert_conf_error(&out, 10, "invalid value \"sometimes\"");
    // Verification without a file: the system's roots (this machine has them).
    let out = run("    location / { proxy_pass https://127.0.0.1:1; proxy_ssl_verify on; proxy_ssl_server_name on; }");
    assert!(out.status.success(), "system roots: {}", out.stderr);
}
