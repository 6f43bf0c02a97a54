//! HTTP/1.x from raw sockets: every 4xx/5xx the parser and limits produce,
//! keep-alive and pipelining, HTTP/1.0, request bodies that are read and
//! discarded, `Expect: 100-continue`, header timeouts, `keepalive_requests`
//! and the `worker_connections` cap.

mod common;

use common::*;
use std::time::{Duration, Instant};

const H: &str = "Host: test\r\n";

/// Exactly one response with `code`, and the server closed the connection.
fn assert_single_error(srv: &Server, raw: &[u8], code: u16) {
    let got = srv.exchange(raw);
    let rs = parse_responses(&got);
    assert_eq!(
        rs.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![code],
        "request {:?} got {:?}",
        String::from_utf8_lossy(&raw[..raw.len().min(120)]),
        String::from_utf8_lossy(&got[..got.len().min(400)])
    );
    assert!(
        rs[0].closes(),
        "error {code} must announce Connection: close"
    );
    assert_eq!(rs[0].header("content-type"), Some("text/html"));
}

#[test]
fn malformed_request_line_is_400() {
    let srv = Server::start(Conf::new());
    assert_single_error(&srv, b"GARBAGE\r\n\r\n", 400);
    assert_single_error(&srv, b"GET / FOO/1.1\r\nHost: t\r\n\r\n", 400);
    assert_single_error(&srv, b"GET\r\n\r\n", 400);
}

#[test]
fn missing_or_duplicate_host_on_http11_is_400() {
    let srv = Server::start(Conf::new());
    assert_single_error(&srv, b"GET /hello.txt HTTP/1.1\r\n\r\n", 400);
    assert_single_error(
        &srv,
        b"GET /hello.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
    );
    // HTTP/1.0 needs no Host.
    let raw = srv.exchange(b"GET /hello.txt HTTP/1.0\r\n\r\n");
    assert_eq!(statuses(&raw), vec![200]);
}

#[test]
fn content_length_with_transfer_encoding_is_400() {
    let srv = Server::start(Conf::new());
    assert_single_error(
        &srv,
        format!("POST /ret HTTP/1.1\r\n{H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").as_bytes(),
        400,
    );
}

#[test]
fn differing_content_lengths_are_400() {
    let srv = Server::start(Conf::new());
    assert_single_error(
        &srv,
        format!("POST /ret HTTP/1.1\r\n{H}Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde")
            .as_bytes(),
        400,
    );
    assert_single_error(
        &srv,
        format!("POST /ret HTTP/1.1\r\n{H}Content-Length: -1\r\n\r\n").as_bytes(),
        400,
    );
}

#[test]
fn dot_dot_above_root_is_400() {
    let srv = Server::start(Conf::new());
    assert_single_error(
        &srv,
        format!("GET /../etc/passwd HTTP/1.1\r\n{H}\r\n").as_bytes(),
        400,
    );
}

#[test]
fn body_over_client_max_body_size_is_413() {
    let srv = Server::start(Conf::new());
    assert_single_error(
        &srv,
        format!("POST /ret HTTP/1.1\r\n{H}Content-Length: 5000000\r\n\r\n").as_bytes(),
        413,
    );
    // Exactly at the limit is fine.
    let body = vec![b'x'; 1024 * 1024];
    let mut c = srv.client();
    c.send(
        format!(
            "POST /ret HTTP/1.1\r\n{H}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    assert_eq!(c.read_response().expect("1m body").status, 200);
}

#[test]
fn request_line_longer_than_buffer_is_414() {
    let srv = Server::start(Conf::new());
    let long = "a".repeat(9000);
    assert_single_error(
        &srv,
        format!("GET /{long} HTTP/1.1\r\n{H}\r\n").as_bytes(),
        414,
    );
    // Also when the line never ends.
    assert_single_error(&srv, format!("GET /{}", "b".repeat(20000)).as_bytes(), 414);
}

#[test]
fn request_line_over_buffer_is_414_before_the_head_is_complete() {
    let srv = Server::start(Conf::new().server("client_header_timeout 3s;"));
    let mut c = srv.client();
    c.send(format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000)).as_bytes());
    let started = Instant::now();
    let got = c.read_until_close(Duration::from_secs(5));
    assert_eq!(statuses(&got), vec![414], "after {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn unknown_expectation_is_417() {
    let srv = Server::start(Conf::new());
    assert_single_error(
        &srv,
        format!("GET /hello.txt HTTP/1.1\r\n{H}Expect: teapot\r\n\r\n").as_bytes(),
        417,
    );
}

#[test]
fn header_line_too_large_is_431() {
    let srv = Server::start(Conf::new());
    let big = "v".repeat(9000);
    assert_single_error(
        &srv,
        format!("GET /hello.txt HTTP/1.1\r\n{H}X-Big: {big}\r\n\r\n").as_bytes(),
        431,
    );
    // Many small headers over 4 x 8k in total.
    let many = "X-Filler: 0123456789012345678901234567890123456789\r\n".repeat(800);
    assert_single_error(
        &srv,
        format!("GET /hello.txt HTTP/1.1\r\n{H}{many}\r\n").as_bytes(),
        431,
    );
}

#[test]
fn transfer_encoding_other_than_chunked_is_501() {
    let srv = Server::start(Conf::new());
    assert_single_error(
        &srv,
        format!("POST /ret HTTP/1.1\r\n{H}Transfer-Encoding: gzip\r\n\r\n").as_bytes(),
        501,
    );
}

#[test]
fn unsupported_http_version_is_505() {
    let srv = Server::start(Conf::new());
    assert_single_error(&srv, format!("GET / HTTP/2.7\r\n{H}\r\n").as_bytes(), 505);
}

#[test]
fn error_responses_are_access_logged() {
    let srv = Server::start(Conf::new());
    assert_single_error(&srv, b"GARBAGE\r\n\r\n", 400);
    assert_single_error(&srv, format!("GET / HTTP/2.7\r\n{H}\r\n").as_bytes(), 505);
    srv.quit();
    let log = srv.access_log();
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(log.contains("\"GARBAGE\" 400 "), "{log}");
    assert!(log.contains(" 505 "), "{log}");
}

#[test]
fn keep_alive_connection_serves_many_requests() {
    let srv = Server::start(Conf::new());
    let mut c = srv.client();
    for i in 0..10 {
        let path = if i % 2 == 0 { "/hello.txt" } else { "/64k.bin" };
        let r = c.get(path).unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
}

#[test]
fn three_pipelined_requests_in_one_write_get_three_responses_in_order() {
    let srv = Server::start(Conf::new());
    let raw = format!(
        "GET /hello.txt HTTP/1.1\r\n{H}\r\nGET /nope HTTP/1.1\r\n{H}\r\nGET /index.html HTTP/1.1\r\n{H}Connection: close\r\n\r\n"
    );
    let rs = parse_responses(&srv.exchange(raw.as_bytes()));
    assert_eq!(
        rs.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![200, 404, 200]
    );
    assert_eq!(rs[0].text(), HELLO_TXT);
    assert_eq!(rs[2].body.len(), INDEX_HTML_BYTES);
    assert!(rs[2].closes());
}

#[test]
fn many_pipelined_requests_are_all_answered() {
    let srv = Server::start(Conf::new());
    let mut raw = format!("GET /64k.bin HTTP/1.1\r\n{H}\r\n").repeat(50);
    raw.push_str(&format!(
        "GET /ret HTTP/1.1\r\n{H}Connection: close\r\n\r\n"
    ));
    let rs = parse_responses(&srv.exchange(raw.as_bytes()));
    assert_eq!(rs.len(), 51);
    assert!(rs[..50]
        .iter()
        .all(|r| r.status == 200 && r.body.len() == BIN_64K_BYTES));
    assert_eq!(rs[50].text(), "ret-ok");
}

#[test]
fn http10_closes_by_default() {
    let srv = Server::start(Conf::new());
    let mut c = srv.client();
    c.send(b"GET /hello.txt HTTP/1.0\r\n\r\n");
    let r = c.read_response().expect("1.0 response");
    assert_eq!(r.status, 200);
    assert!(r.closes());
    assert!(
        c.closed_within(Duration::from_secs(3)),
        "HTTP/1.0 connection left open"
    );
}

#[test]
fn http10_with_connection_keep_alive_stays_open() {
    let srv = Server::start(Conf::new());
    let mut c = srv.client();
    for _ in 0..2 {
        c.send(b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.read_response().expect("1.0 keep-alive response");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
}

#[test]
fn connection_close_from_client_is_honoured() {
    let srv = Server::start(Conf::new());
    let mut c = srv.client();
    c.send(format!("GET /hello.txt HTTP/1.1\r\n{H}Connection: close\r\n\r\n").as_bytes());
    assert!(c.read_response().expect("response").closes());
    assert!(c.closed_within(Duration::from_secs(3)));
}

fn chunked_post_then_get(srv: &Server) -> Vec<u16> {
    let raw = format!(
        "POST /ret HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n\
         GET /hello.txt HTTP/1.1\r\n{H}Connection: close\r\n\r\n"
    );
    exchange_statuses(srv.port, raw.as_bytes())
}

#[test]
fn chunked_body_is_discarded_and_next_pipelined_request_is_answered() {
    let srv = Server::start(Conf::new());
    assert_eq!(chunked_post_then_get(&srv), vec![200, 200]);
}

#[test]
fn chunked_body_is_discarded_when_body_size_is_unlimited() {
    let srv = Server::start(Conf::new().server("client_max_body_size 0;"));
    assert_eq!(chunked_post_then_get(&srv), vec![200, 200]);
}

#[test]
fn chunked_body_over_client_max_body_size_is_413() {
    let srv = Server::start(Conf::new().server("client_max_body_size 1k;"));
    let chunk = "x".repeat(4096);
    let raw = format!(
        "POST /ret HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n1000\r\n{chunk}\r\n0\r\n\r\n"
    );
    assert_eq!(exchange_statuses(srv.port, raw.as_bytes()), vec![413]);
}

#[test]
fn content_length_body_is_discarded_and_next_pipelined_request_is_answered() {
    let srv = Server::start(Conf::new());
    let raw = format!(
        "POST /ret HTTP/1.1\r\n{H}Content-Length: 10\r\n\r\n0123456789\
         GET /hello.txt HTTP/1.1\r\n{H}Connection: close\r\n\r\n"
    );
    let rs = parse_responses(&srv.exchange(raw.as_bytes()));
    assert_eq!(
        rs.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![200, 200]
    );
    assert_eq!(rs[1].text(), HELLO_TXT);
}

#[test]
fn body_sent_in_pieces_is_discarded_on_a_keep_alive_connection() {
    let srv = Server::start(Conf::new());
    let mut c = srv.client();
    c.send(format!("POST /ret HTTP/1.1\r\n{H}Content-Length: 20000\r\n\r\n").as_bytes());
    let r = c.read_response().expect("response before the body");
    assert_eq!(r.text(), "ret-ok");
    for _ in 0..4 {
        c.send(&[b'z'; 5000]);
    }
    let r = c.get("/hello.txt").expect("next request after the body");
    assert_eq!(r.text(), HELLO_TXT);
}

#[test]
fn expect_100_continue_gets_an_answer_without_waiting_for_the_body() {
    let srv = Server::start(Conf::new());
    let mut c = srv.client();
    c.send(
        format!("POST /ret HTTP/1.1\r\n{H}Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            .as_bytes(),
    );
    let started = Instant::now();
    let first = c.read_response().expect("interim or final response");
    assert!(started.elapsed() < Duration::from_secs(2));
    let last = if first.status == 100 {
        c.send(b"hello");
        c.read_response().expect("final response after 100")
    } else {
        first
    };
    assert_eq!(last.status, 200);
    assert_eq!(last.text(), "ret-ok");
}

#[test]
fn expect_100_continue_with_body_already_sent_keeps_the_connection() {
    let srv = Server::start(Conf::new());
    let mut c = srv.client();
    c.send(
        format!("POST /ret HTTP/1.1\r\n{H}Content-Length: 5\r\nExpect: 100-continue\r\n\r\nhello")
            .as_bytes(),
    );
    let mut r = c.read_response().expect("response");
    if r.status == 100 {
        r = c.read_response().expect("final response");
    }
    assert_eq!(r.status, 200);
    assert!(!r.closes());
    assert_eq!(c.get("/hello.txt").expect("second request").status, 200);
}

#[test]
fn incomplete_head_gets_408_and_close_after_client_header_timeout() {
    let srv = Server::start(Conf::new().server("client_header_timeout 1s;"));
    let mut c = srv.client();
    let started = Instant::now();
    c.send(format!("GET /hello.txt HTTP/1.1\r\n{H}X-Slow: 1\r\n").as_bytes());
    let got = c.read_until_close(Duration::from_secs(5));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
    assert_eq!(
        statuses(&got),
        vec![408],
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn slow_but_complete_head_within_timeout_is_served() {
    let srv = Server::start(Conf::new().server("client_header_timeout 2s;"));
    let mut c = srv.client();
    for part in [
        "GET /hello.txt HTTP/1.1\r\n",
        "Host: t\r\n",
        "X-A: 1\r\n",
        "\r\n",
    ] {
        c.send(part.as_bytes());
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(c.read_response().expect("response").status, 200);
}

#[test]
fn idle_connection_without_request_is_closed_after_header_timeout() {
    let srv = Server::start(Conf::new().server("client_header_timeout 1s;"));
    let mut c = srv.client();
    let started = Instant::now();
    let got = c.read_until_close(Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        got.is_empty() || statuses(&got) == vec![408],
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn keepalive_timeout_closes_idle_connection() {
    let srv = Server::start(Conf::new().server("keepalive_timeout 1s;"));
    let mut c = srv.client();
    assert_eq!(c.get("/hello.txt").expect("first").status, 200);
    let started = Instant::now();
    assert!(
        c.closed_within(Duration::from_secs(4)),
        "idle keep-alive not closed"
    );
    assert!(started.elapsed() >= Duration::from_millis(800));
}

#[test]
fn keepalive_requests_3_closes_after_third_response() {
    let srv = Server::start(Conf::new().server("keepalive_requests 3;"));
    let mut c = srv.client();
    for i in 1..=3 {
        let r = c
            .get("/hello.txt")
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.closes(),
            i == 3,
            "request {i}: Connection {:?}",
            r.header("connection")
        );
    }
    assert!(c.closed_within(Duration::from_secs(3)));
}

#[test]
fn over_worker_connections_new_connections_get_503() {
    let srv = Server::start(Conf::new().workers(1).worker_connections(10));
    let mut conns: Vec<Client> = (0..20).map(|_| srv.client()).collect();
    for c in &conns {
        c.stream.set_nonblocking(true).expect("nonblocking");
    }
    // Poll until at least the ten over the cap were refused and no further
    // refusal arrived for 300 ms (or 3 s pass).
    let mut refused = vec![false; conns.len()];
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last_change = Instant::now();
    loop {
        for (i, c) in conns.iter_mut().enumerate() {
            let mut b = [0u8; 256];
            if let Ok(n) = std::io::Read::read(&mut c.stream, &mut b) {
                if n > 0 && b[..n].starts_with(b"HTTP/1.1 503") && !refused[i] {
                    refused[i] = true;
                    last_change = Instant::now();
                }
            }
        }
        let n = refused.iter().filter(|r| **r).count();
        let settled = n >= 10 && last_change.elapsed() > Duration::from_millis(300);
        if settled || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // One worker holds at most 10 (the harness's readiness probe may have
    // taken a slot for a moment, so 11 refusals are possible).
    let n_refused = refused.iter().filter(|r| **r).count();
    assert!(
        (10..=11).contains(&n_refused),
        "{n_refused} of 20 connections got 503 with worker_connections 10"
    );
    // The held ones are served normally.
    let mut served = 0;
    for (c, _) in conns.iter_mut().zip(&refused).filter(|(_, r)| !**r) {
        c.stream.set_nonblocking(false).expect("blocking");
        assert_eq!(c.get("/hello.txt").expect("held connection").status, 200);
        served += 1;
    }
    assert!((9..=10).contains(&served), "{served} held connections");
    // Once they are gone, new connections are accepted again.
    drop(conns);
    let ok = wait_for(Duration::from_secs(3), || {
        let mut c = Client::try_connect(srv.port).ok()?;
        c.get("/hello.txt").ok().filter(|r| r.status == 200)
    });
    assert!(
        ok.is_some(),
        "server did not recover after the held connections closed"
    );
}

#[test]
fn absolute_form_target_is_served() {
    let srv = Server::start(Conf::new());
    let raw = srv
        .exchange(b"GET http://test/hello.txt HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let rs = parse_responses(&raw);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].text(), HELLO_TXT);
}

#[test]
fn server_keeps_serving_after_garbage() {
    let srv = Server::start(Conf::new());
    let noise = pseudo_random_bytes(4096, 42);
    let _ = srv.exchange(&noise);
    let _ = srv.exchange(b"\x00\x01\x02\r\n\r\n");
    let _ = srv.exchange(b"GET / HTTP/1.1\r\nHost: \r\n\r\n");
    assert_eq!(srv.get("/hello.txt").status, 200);
    assert_eq!(srv.worker_pids().len(), 2, "a worker died on garbage input");
}

#[test]
fn requests_after_connection_close_are_not_answered() {
    let srv = Server::start(Conf::new());
    let raw = format!(
        "GET /hello.txt HTTP/1.1\r\n{H}Connection: close\r\n\r\nGET /ret HTTP/1.1\r\n{H}\r\n"
    );
    assert_eq!(exchange_statuses(srv.port, raw.as_bytes()), vec![200]);
}

#[test]
fn keepalive_timeout_0_disables_keep_alive() {
    let srv = Server::start(Conf::new().server("keepalive_timeout 0;"));
    let mut c = srv.client();
    let r = c.get("/hello.txt").expect("response");
    assert!(r.closes());
    assert!(c.closed_within(Duration::from_secs(3)));
}
