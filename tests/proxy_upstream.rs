//! Reverse proxy, upstream side: 502/504 on refused, broken, silent and
//! truncating origins; `proxy_next_upstream` retries (and none for a POST
//! whose body was sent); weighted round robin and `max_fails`; idle
//! keep-alive connections to the upstream; backpressure towards a slow
//! client (bounded worker memory); and requests in flight across a reload.

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

/// A one-worker proxy: `http` at http level, `server_extra` in the server.
fn proxy(http: &str, server_extra: &str) -> Server {
    Server::start(Conf::new().workers(1).http(http).server(server_extra))
}

/// An origin that reads each request (body included) and closes without answering.
fn closing_origin() -> Origin {
    Origin::start(|_| vec![Step::Close])
}

#[test]
fn refused_upstream_is_502() {
    let dead = free_port();
    let px = proxy(
        "",
        &format!("location / {{ proxy_pass http://127.0.0.1:{dead}; }}"),
    );
    let mut c = px.client();
    for _ in 0..3 {
        let r = c.get("/").expect("response");
        assert_eq!(r.status, 502);
        assert!(!r.closes(), "a 502 keeps the client connection");
    }
}

#[test]
fn garbage_or_malformed_head_from_origin_is_502() {
    let origin = Origin::start(|r| {
        let raw: &[u8] = match r.target.as_str() {
            "/garbage" => b"\x00\x01garbage garbage\r\n\r\n",
            "/badlen" => b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nabc",
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        };
        vec![Step::Write(raw.to_vec()), Step::Close]
    });
    let px = proxy(
        "",
        &format!("location / {{ proxy_pass http://{}; }}", origin.addr()),
    );
    for p in ["/garbage", "/badlen", "/twolens"] {
        assert_eq!(px.get(p).status, 502, "GET {p}");
    }
}

#[test]
fn silent_origin_times_out_with_504() {
    let origin = Origin::start(|_| vec![Step::Hang]);
    let px = proxy(
        "",
        &format!(
            "location / {{ proxy_pass http://{}; proxy_read_timeout 1s; }}",
            origin.addr()
        ),
    );
    let t = Instant::now();
    let r = px.get("/slow");
    let took = t.elapsed();
    assert_eq!(r.status, 504);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "504 after {took:?}"
    );
}

#[test]
fn origin_closing_mid_body_closes_the_client_connection() {
    let origin = Origin::start(|r| {
        let mut raw = if r.target == "/chunked" {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n".to_vec()
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec()
        };
        raw.extend_from_slice(&[b'z'; 1000]);
        vec![
            Step::Write(raw),
            Step::Sleep(Duration::from_millis(50)),
            Step::Close,
        ]
    });
    let px = proxy(
        "",
        &format!("location / {{ proxy_pass http://{}; }}", origin.addr()),
    );
    for p in ["/length", "/chunked"] {
        let mut c = FullClient::connect(px.port);
        c.send(format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let t = Instant::now();
        let err = c
            .response(false)
            .expect_err("a truncated body must not look complete");
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "GET {p}: {err}");
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "GET {p} took {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn next_upstream_error_retries_a_refused_server() {
    let live = Origin::fixed(ok_response(b"live"));
    let dead = free_port();
    let px = proxy(
        &format!(
            "upstream u {{ server 127.0.0.1:{dead} max_fails=0; server {}; }}",
            live.addr()
        ),
        "location / { proxy_pass http://u; proxy_next_upstream error; }",
    );
    for i in 0..20 {
        let r = px.get(&format!("/{i}"));
        assert_eq!((r.status, r.text().as_str()), (200, "live"), "request {i}");
    }
    assert_eq!(live.request_count(), 20);
}

#[test]
fn next_upstream_off_relays_the_failure() {
    let live = Origin::fixed(ok_response(b"live"));
    let dead = free_port();
    let px = proxy(
        &format!(
            "upstream u {{ server 127.0.0.1:{dead} max_fails=0; server {}; }}",
            live.addr()
        ),
        "location / { proxy_pass http://u; proxy_next_upstream off; }",
    );
    let codes: Vec<u16> = (0..20).map(|i| px.get(&format!("/{i}")).status).collect();
    let bad = codes.iter().filter(|&&c| c == 502).count();
    let good = codes.iter().filter(|&&c| c == 200).count();
    assert!(bad > 0 && good > 0 && bad + good == 20, "{codes:?}");
}

#[test]
fn post_whose_body_was_sent_is_not_retried() {
    let (a, b) = (closing_origin(), closing_origin());
    let px = proxy(
        &format!(
            "upstream u {{ server {} max_fails=0; server {} max_fails=0; }}",
            a.addr(),
            b.addr()
        ),
        "location / { proxy_pass http://u; }",
    );
    let mut c = FullClient::connect(px.port);
    // One write, within the worker's first read (see proxy.rs for larger bodies).
    let mut raw = b"POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n".to_vec();
    raw.extend_from_slice(&[b'p'; 1000]);
    c.send(&raw);
    assert_eq!(c.response(false).expect("POST").0.status, 502);
    let seen = a.request_count() + b.request_count();
    assert_eq!(seen, 1, "the POST reached {seen} origins");
    // A GET failing the same way is tried on both.
    assert_eq!(px.get("/idempotent").status, 502);
    assert_eq!(a.request_count() + b.request_count(), 3);
}

#[test]
fn weights_split_requests_three_to_one() {
    let a = Origin::fixed(ok_response(b"a"));
    let b = Origin::fixed(ok_response(b"b"));
    let px = proxy(
        &format!(
            "upstream u {{ server {} weight=3; server {} weight=1; }}",
            a.addr(),
            b.addr()
        ),
        "location / { proxy_pass http://u; }",
    );
    for i in 0..40 {
        assert_eq!(px.get(&format!("/{i}")).status, 200);
    }
    let (na, nb) = (a.request_count(), b.request_count());
    assert!((28..=32).contains(&na) && na + nb == 40, "split {na}/{nb}");
}

#[test]
fn max_fails_marks_a_failing_server_down_for_fail_timeout() {
    // `bad` accepts, reads the request and closes: each try is one accept.
    let bad = closing_origin();
    let good = Origin::fixed(ok_response(b"good"));
    let px = proxy(
        &format!(
            "upstream u {{ server {} max_fails=1 fail_timeout=2s; server {}; }}",
            bad.addr(),
            good.addr()
        ),
        "location / { proxy_pass http://u; }",
    );
    let t = Instant::now();
    for i in 0..20 {
        assert_eq!(px.get(&format!("/{i}")).text(), "good", "request {i}");
    }
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "20 requests took {:?}",
        t.elapsed()
    );
    assert_eq!(bad.accepted(), 1, "tried again while marked down");
    // After fail_timeout it is tried again (and marked down again).
    std::thread::sleep(Duration::from_millis(2200).saturating_sub(t.elapsed()));
    for i in 0..4 {
        assert_eq!(px.get(&format!("/after{i}")).text(), "good");
    }
    assert_eq!(bad.accepted(), 2, "not retried after fail_timeout");
}

#[test]
fn upstream_keepalive_reuses_connections_unless_http10() {
    let origin = Origin::fixed(ok_response(b"ka"));
    let px = proxy(
        &format!(
            "upstream u {{ server {0}; keepalive 8; }}\nupstream u10 {{ server {0}; keepalive 8; }}",
            origin.addr()
        ),
        "location /ka/ { proxy_pass http://u; }\n\
         location /h10/ { proxy_pass http://u10; proxy_http_version 1.0; }",
    );
    let mut c = px.client();
    for i in 0..50 {
        assert_eq!(c.get(&format!("/ka/{i}")).expect("GET").text(), "ka");
    }
    let ka = origin.accepted();
    assert!(
        ka <= 2,
        "50 keep-alive requests used {ka} upstream connections"
    );
    for i in 0..50 {
        assert_eq!(c.get(&format!("/h10/{i}")).expect("GET").text(), "ka");
    }
    assert_eq!(
        origin.accepted() - ka,
        50,
        "HTTP/1.0 upstream connections reused"
    );
    let seen = origin.seen();
    let last = seen.last().expect("requests");
    assert_eq!(
        (last.version.as_str(), last.header("connection")),
        ("HTTP/1.0", Some("close"))
    );
}

/// An origin that closes each connection 50 ms after its response, without
/// announcing it: the proxy's idle connection goes stale.
fn idle_closing_origin() -> Origin {
    Origin::start(|_| {
        let ok = ok_response(b"fresh");
        vec![
            Step::Write(ok),
            Step::Sleep(Duration::from_millis(50)),
            Step::Close,
        ]
    })
}

#[test]
fn get_on_a_stale_idle_connection_is_retried() {
    let origin = idle_closing_origin();
    let px = proxy(
        &format!("upstream u {{ server {}; keepalive 4; }}", origin.addr()),
        "location / { proxy_pass http://u; }",
    );
    let mut c = px.client();
    for i in 0..3 {
        assert_eq!(c.get("/").expect("GET").text(), "fresh", "request {i}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn post_on_a_stale_idle_connection_succeeds() {
    let origin = idle_closing_origin();
    let px = proxy(
        &format!("upstream u {{ server {}; keepalive 4; }}", origin.addr()),
        "location / { proxy_pass http://u; }",
    );
    let mut c = FullClient::connect(px.port);
    assert_eq!(c.get("/warm").0.status, 200);
    std::thread::sleep(Duration::from_millis(300));
    c.send(b"POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    let (r, _) = c.response(false).expect("POST response");
    assert_eq!(
        r.status, 200,
        "POST after the origin closed its idle connection"
    );
}

/// VmRSS of `pid` in KiB (panics when unreadable).
fn rss(pid: i32) -> u64 {
    vm_rss_kib(pid).unwrap_or_else(|| panic!("no VmRSS for {pid}"))
}

#[test]
fn slow_client_gets_20mb_byte_exact_with_bounded_proxy_memory() {
    const BIG: usize = 20 << 20;
    let body = pseudo_random_bytes(BIG, 21);
    let raw = std::sync::Arc::new(ok_response(&body));
    let origin = Origin::start(move |r| match r.target.as_str() {
        "/big" => vec![Step::WriteShared(raw.clone())],
        _ => vec![Step::Write(ok_response(b"warm"))],
    });
    let px = proxy(
        "",
        &format!("location / {{ proxy_pass http://{}; }}", origin.addr()),
    );
    assert_eq!(px.get("/warm").status, 200);
    let worker = *px.worker_pids().first().expect("a worker");
    let before = rss(worker);

    let mut s = Client::connect_small_rcvbuf(px.port).stream;
    s.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut got = Vec::with_capacity(BIG + 1024);
    let mut buf = [0u8; 65536];
    let mut peak = before;
    // Read slowly (4 KiB per 5 ms) for two seconds, watching the worker.
    let slow_until = Instant::now() + Duration::from_secs(2);
    let mut next_sample = Instant::now();
    while Instant::now() < slow_until {
        let n = s.read(&mut buf[..4096]).expect("slow read");
        assert!(n > 0, "closed after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
        if Instant::now() >= next_sample {
            peak = peak.max(rss(worker));
            next_sample += Duration::from_millis(100);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        got.len() < BIG / 2,
        "the slow phase read {} bytes",
        got.len()
    );
    peak = peak.max(rss(worker));
    let head_len = loop {
        if let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut buf).expect("read head");
        assert!(n > 0, "closed in the head");
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_len]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {BIG}\r\n")),
        "{head}"
    );
    while got.len() < head_len + BIG {
        let n = s.read(&mut buf).expect("fast read");
        assert!(n > 0, "closed after {} body bytes", got.len() - head_len);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got[head_len..] == body[..], "20 MB body differs");
    let growth_kib = peak.saturating_sub(before);
    assert!(
        growth_kib < 8 * 1024,
        "worker grew by {growth_kib} KiB (from {before} KiB)"
    );
}

#[test]
fn requests_in_flight_complete_across_a_reload() {
    let origin = Origin::start(|r| {
        let body = format!("done {}", r.target).into_bytes();
        vec![
            Step::Sleep(Duration::from_millis(800)),
            Step::Write(ok_response(&body)),
        ]
    });
    let px = proxy(
        "",
        &format!("location / {{ proxy_pass http://{}; }}", origin.addr()),
    );
    let port = px.port;
    std::thread::scope(|sc| {
        let clients: Vec<_> = (0..3)
            .map(|i| sc.spawn(move || get(port, &format!("/slow{i}"))))
            .collect();
        assert!(
            origin.wait_requests(3, Duration::from_secs(5)),
            "requests not in flight"
        );
        px.reload();
        for (i, h) in clients.into_iter().enumerate() {
            let r = h.join().expect("client thread");
            assert_eq!((r.status, r.text()), (200, format!("done /slow{i}")));
        }
    });
    assert_eq!(px.get("/after").status, 200, "new generation proxies too");
}
