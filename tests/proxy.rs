//! Reverse proxy, request and response side: GET/HEAD/404 through a real
//! sluice origin, nginx's URI replacement, the headers sent upstream and
//! relayed downstream, request and response bodies in every framing
//! (Content-Length, chunked, close-delimited, tiny pieces), pipelining and
//! the access log. Origins are a second sluice or scriptable [`Origin`]s in
//! threads; upstream failures, balancing and keep-alive are in
//! `proxy_upstream.rs`.

mod common;

use common::*;
use std::time::Duration;

/// A one-worker proxy with `server_extra` (locations) in its server block.
fn proxy(server_extra: &str) -> Server {
    Server::start(Conf::new().workers(1).server(server_extra))
}

/// An origin answering every request with its raw request target as body.
fn echo_target_origin() -> Origin {
    Origin::start(|r| vec![Step::Write(ok_response(r.target.as_bytes()))])
}

/// `GET path` with extra header lines on a fresh connection, then close.
fn get_with(port: u16, path: &str, headers: &str) -> Response {
    let mut c = FullClient::connect(port);
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    c.response(false).expect("response").0
}

#[test]
fn get_head_and_404_through_a_sluice_origin() {
    let origin = Server::start(
        Conf::new()
            .workers(1)
            .server(r#"location /echo/ { return 200 "uri=$request_uri"; }"#),
    );
    let px = proxy(&format!(
        "location / {{ proxy_pass http://127.0.0.1:{}; }}",
        origin.port
    ));
    let mut c = px.client();
    let r = c.get("/hello.txt").expect("GET /hello.txt");
    assert_eq!((r.status, r.text().as_str()), (200, HELLO_TXT));
    assert!(!r.closes(), "keep-alive kept through the proxy");
    let r = c.get("/64k.bin").expect("GET /64k.bin");
    assert_eq!(r.status, 200);
    assert!(
        r.body == pseudo_random_bytes(BIN_64K_BYTES, 0x5eed_1234),
        "64k.bin differs"
    );
    let r = c.get("/no-such-file").expect("GET 404");
    assert_eq!(r.status, 404, "origin's 404 relayed");
    c.send(b"HEAD /hello.txt HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = c.read_head_response().expect("HEAD");
    assert_eq!((r.status, r.body.len()), (200, 0));
    // The connection is still in sync after the HEAD.
    let r = c.get("/echo/a%20b?x=%41&y").expect("GET /echo/");
    assert_eq!(r.text(), "uri=/echo/a%20b?x=%41&y", "URI passed unchanged");
}

#[test]
fn head_through_proxy_keeps_content_length() {
    let origin = Origin::fixed(ok_response(b"twelve bytes"));
    let px = proxy(&format!(
        "location / {{ proxy_pass http://{}; }}",
        origin.addr()
    ));
    let mut c = FullClient::connect(px.port);
    c.send(b"HEAD /x HTTP/1.1\r\nHost: test\r\n\r\n");
    let (r, _) = c.response(true).expect("HEAD");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("12"), "{:?}", r.headers);
}

#[test]
fn uri_part_replaces_the_location_prefix() {
    let origin = echo_target_origin();
    let px = Server::start(
        Conf::new()
            .workers(1)
            .http(&format!("upstream up {{ server {}; }}", origin.addr()))
            .server("location /api/ { proxy_pass http://up/v2/; }")
            .server("location /plain/ { proxy_pass http://up; }"),
    );
    let mut c = FullClient::connect(px.port);
    for (path, want) in [
        ("/api/x?q=1", "/v2/x?q=1"),
        ("/api/", "/v2/"),
        ("/api/a/b%20c?k=a%20b&z", "/v2/a/b%20c?k=a%20b&z"),
        ("/plain/x?q=1", "/plain/x?q=1"),
        ("/plain/a%2Fb%20c?x=%41&y=1", "/plain/a%2Fb%20c?x=%41&y=1"),
    ] {
        let (r, _) = c.get(path);
        assert_eq!((r.status, r.text().as_str()), (200, want), "GET {path}");
    }
}

#[test]
fn host_header_is_the_upstream_name_or_the_client_host() {
    let origin = Origin::fixed(ok_response(b"ok"));
    let px = Server::start(
        Conf::new()
            .workers(1)
            .http(&format!("upstream backend {{ server {}; }}", origin.addr()))
            .server("location /named/ { proxy_pass http://backend; }")
            .server(&format!(
                "location /addr/ {{ proxy_pass http://{}; }}",
                origin.addr()
            ))
            .server("location /host/ { proxy_pass http://backend; proxy_set_header Host $host; }"),
    );
    let host = "Host: example.test:8080\r\n";
    for p in ["/named/", "/addr/", "/host/"] {
        let mut c = FullClient::connect(px.port);
        c.send(format!("GET {p} HTTP/1.1\r\n{host}Connection: close\r\n\r\n").as_bytes());
        assert_eq!(c.response(false).expect("response").0.status, 200);
    }
    let seen = origin.seen();
    let hosts: Vec<_> = seen
        .iter()
        .map(|s| s.header("host").unwrap_or("-"))
        .collect();
    assert_eq!(hosts, ["backend", origin.addr().as_str(), "example.test"]);
    assert!(seen.iter().all(|s| s.header_count("host") == 1), "{seen:?}");
}

#[test]
fn forwarding_headers_are_set() {
    let origin = Origin::fixed(ok_response(b"ok"));
    let px = proxy(&format!(
        "location / {{ proxy_pass http://{}; }}",
        origin.addr()
    ));
    get_with(px.port, "/a", "");
    get_with(
        px.port,
        "/b",
        "X-Forwarded-For: 10.1.2.3\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n",
    );
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        seen[1].header("x-forwarded-for"),
        Some("10.1.2.3, 127.0.0.1")
    );
    for s in &seen {
        assert_eq!(s.header("x-real-ip"), Some("127.0.0.1"), "{s:?}");
        assert_eq!(s.header("x-forwarded-proto"), Some("http"), "{s:?}");
        for h in ["x-forwarded-for", "x-real-ip", "x-forwarded-proto"] {
            assert_eq!(s.header_count(h), 1, "{h} in {s:?}");
        }
    }
}

#[test]
fn hop_by_hop_and_emptied_headers_are_not_forwarded() {
    let origin = Origin::fixed(ok_response(b"ok"));
    let px = proxy(&format!(
        "location / {{ proxy_pass http://{}; proxy_set_header X-Empty \"\"; \
         proxy_set_header X-Via sluice; }}",
        origin.addr()
    ));
    let r = get_with(
        px.port,
        "/",
        "Connection: keep-alive, X-Conn-Opt\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\
         Proxy-Connection: keep-alive\r\nX-Conn-Opt: secret\r\nX-Empty: gone\r\nX-Other: kept\r\n",
    );
    assert_eq!(r.status, 200);
    let s = origin.only_request();
    for h in [
        "keep-alive",
        "te",
        "proxy-connection",
        "x-conn-opt",
        "x-empty",
    ] {
        assert_eq!(s.header(h), None, "{h} forwarded: {:?}", s.headers);
    }
    assert!(
        s.header("connection")
            .is_none_or(|v| v.eq_ignore_ascii_case("close")),
        "client's Connection forwarded: {:?}",
        s.headers
    );
    assert_eq!(s.header("x-other"), Some("kept"));
    assert_eq!(s.header("x-via"), Some("sluice"));
}

#[test]
fn response_headers_are_rewritten_hidden_and_added() {
    let origin = Origin::start(|r| {
        let status = if r.target == "/missing" { 404 } else { 200 };
        vec![Step::Write(http_response(
            status,
            "Server: origin/9\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\nx-secret: s\r\n\
             X-App: a\r\nConnection: keep-alive\r\nKeep-Alive: timeout=3\r\n",
            b"body",
        ))]
    });
    let px = proxy(&format!(
        "location / {{ proxy_pass http://{}; proxy_hide_header X-Secret; add_header X-Added yes; }}",
        origin.addr()
    ));
    let mut c = FullClient::connect(px.port);
    let (r, _) = c.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "body"));
    assert!(
        r.header("server").is_some_and(|v| v.starts_with("sluice")),
        "{:?}",
        r.headers
    );
    assert!(
        r.header("date").is_some_and(|v| !v.contains("2001")),
        "{:?}",
        r.headers
    );
    assert_eq!((r.header_count("server"), r.header_count("date")), (1, 1));
    assert_eq!(r.header("x-secret"), None, "hidden");
    assert_eq!(r.header("keep-alive"), None, "hop-by-hop");
    assert_eq!(r.header("x-app"), Some("a"));
    assert_eq!(r.header("x-added"), Some("yes"));
    let (r, _) = c.get("/missing");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("x-added"),
        None,
        "add_header without `always` skips 404"
    );
}

/// An origin answering with the length of the (de-chunked) body it read.
fn body_len_origin() -> Origin {
    Origin::start(|r| {
        vec![Step::Write(ok_response(
            r.body.len().to_string().as_bytes(),
        ))]
    })
}

/// `POST path` with a Content-Length `body`, head and body in one write.
fn post_raw(path: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// `POST path` with `body` in chunks of `piece` bytes, in one write.
fn post_chunked_raw(path: &str, body: &[u8], piece: usize) -> Vec<u8> {
    let mut raw = format!("POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .into_bytes();
    raw.extend_from_slice(&encode_chunked(body, piece));
    raw
}

#[test]
fn post_body_with_content_length_arrives_byte_exact() {
    let origin = body_len_origin();
    let px = proxy(&format!(
        "location / {{ proxy_pass http://{}; }}",
        origin.addr()
    ));
    // Head and body fit the worker's first 2 KiB read: see the ignored
    // tests below for bodies beyond it.
    let body = pseudo_random_bytes(1500, 7);
    let mut c = FullClient::connect(px.port);
    c.send(&post_raw("/up", &body));
    let (r, _) = c.response(false).expect("response");
    assert_eq!((r.status, r.text()), (200, "1500".to_string()));
    let s = origin.only_request();
    assert_eq!(s.header("content-length"), Some("1500"));
    assert_eq!(s.header("transfer-encoding"), None);
    assert!(
        s.body == body,
        "body differs ({} bytes arrived)",
        s.body.len()
    );
    assert_eq!(c.get("/after").0.status, 200, "connection still in sync");
}

#[test]
fn a_whole_chunked_request_body_goes_upstream_with_its_length() {
    let origin = body_len_origin();
    let px = proxy(&format!(
        "location / {{ proxy_pass http://{}; }}",
        origin.addr()
    ));
    let body = pseudo_random_bytes(1200, 11);
    let mut c = FullClient::connect(px.port);
    c.send(&post_chunked_raw("/c", &body, 250));
    let (r, _) = c.response(false).expect("response");
    assert_eq!((r.status, r.text()), (200, "1200".to_string()));
    // It was all here when the request started: decoded and sent with its
    // length (nginx buffers request bodies the same way).
    let s = origin.only_request();
    assert_eq!(s.header("content-length"), Some("1200"), "{:?}", s.headers);
    assert_eq!(s.header("transfer-encoding"), None);
    assert!(
        s.body == body,
        "decoded body differs ({} bytes)",
        s.body.len()
    );
    assert_eq!(c.get("/after").0.status, 200, "connection still in sync");
}

#[test]
fn request_body_beyond_the_first_read_is_forwarded() {
    let origin = body_len_origin();
    let px = proxy(&format!(
        "location / {{ proxy_pass http://{}; }}",
        origin.addr()
    ));
    let mut c = FullClient::connect(px.port);
    c.send(&post_raw("/up", &[b'b'; 5000]));
    let (r, _) = c.response(false).expect("response within 5 s");
    assert_eq!((r.status, r.text()), (200, "5000".to_string()));
}

#[test]
fn large_request_bodies_arrive_byte_exact() {
    let origin = body_len_origin();
    let px = proxy(&format!(
        "location / {{ proxy_pass http://{}; }}",
        origin.addr()
    ));
    let body = pseudo_random_bytes(200 * 1024, 7);
    let mut c = FullClient::connect(px.port);
    for raw in [post_raw("/cl", &body), post_chunked_raw("/te", &body, 7000)] {
        c.send(&raw);
        let (r, _) = c.response(false).expect("response");
        assert_eq!((r.status, r.text()), (200, body.len().to_string()));
    }
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("content-length"), Some("204800"));
    assert_eq!(seen[1].header("transfer-encoding"), Some("chunked"));
    assert!(seen.iter().all(|s| s.body == body), "a body differs");
}

#[test]
fn two_megabyte_response_arrives_byte_exact() {
    let big = pseudo_random_bytes(2 << 20, 3);
    let origin = Origin::fixed(ok_response(&big));
    let px = proxy(&format!(
        "location / {{ proxy_pass http://{}; }}",
        origin.addr()
    ));
    let mut c = px.client();
    let r = c.get("/big").expect("GET /big");
    assert_eq!((r.status, r.content_length()), (200, Some(big.len())));
    assert!(r.body == big, "2 MB body differs");
    assert_eq!(c.get("/big").expect("again").body.len(), big.len());
}

#[test]
fn chunked_response_is_relayed_and_dechunked_for_http10() {
    let body = pseudo_random_bytes(100_000, 5);
    let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    raw.extend_from_slice(&encode_chunked(&body, 3000));
    let origin = Origin::fixed(raw);
    let px = proxy(&format!(
        "location / {{ proxy_pass http://{}; }}",
        origin.addr()
    ));
    let mut c = FullClient::connect(px.port);
    for _ in 0..2 {
        let (r, framing) = c.get("/c");
        assert_eq!((r.status, framing), (200, Framing::Chunked));
        assert!(r.body == body, "chunked body differs");
        assert!(!r.closes());
    }
    let mut c = FullClient::connect(px.port);
    c.send(b"GET /c HTTP/1.0\r\n\r\n");
    let (r, framing) = c.response(false).expect("HTTP/1.0 response");
    assert_eq!(
        (r.status, framing),
        (200, Framing::Close),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("transfer-encoding"), None);
    assert!(
        r.body == body,
        "de-chunked body differs ({} bytes)",
        r.body.len()
    );
}

#[test]
fn close_delimited_response_is_chunked_for_http11_with_keep_alive() {
    let body = pseudo_random_bytes(70_000, 9);
    let mut raw = b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    raw.extend_from_slice(&body);
    let origin = Origin::start(move |_| vec![Step::Write(raw.clone()), Step::Close]);
    let px = proxy(&format!(
        "location / {{ proxy_pass http://{}; }}",
        origin.addr()
    ));
    let mut c = FullClient::connect(px.port);
    for _ in 0..2 {
        let (r, framing) = c.get("/close");
        assert_eq!(
            (r.status, framing),
            (200, Framing::Chunked),
            "{:?}",
            r.headers
        );
        assert!(r.body == body, "body differs ({} bytes)", r.body.len());
        assert!(!r.closes(), "keep-alive kept");
    }
}

#[test]
fn responses_sent_in_tiny_pieces_are_relayed() {
    let body: Vec<u8> = (0..300u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    chunked.extend_from_slice(&encode_chunked(&body, 10));
    let plain = ok_response(&body);
    let origin = Origin::start(move |r| {
        let raw = if r.target == "/chunked" {
            &chunked
        } else {
            &plain
        };
        raw.chunks(3)
            .flat_map(|p| {
                [
                    Step::Write(p.to_vec()),
                    Step::Sleep(Duration::from_millis(1)),
                ]
            })
            .collect()
    });
    let px = proxy(&format!(
        "location / {{ proxy_pass http://{}; }}",
        origin.addr()
    ));
    let mut c = FullClient::connect(px.port);
    let (r, f) = c.get("/plain");
    assert_eq!(
        (r.status, f, r.body.as_slice()),
        (200, Framing::Length, &body[..])
    );
    let (r, f) = c.get("/chunked");
    assert_eq!(
        (r.status, f, r.body.as_slice()),
        (200, Framing::Chunked, &body[..])
    );
}

#[test]
fn interim_response_from_origin_is_not_relayed() {
    let mut raw = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
    raw.extend_from_slice(&ok_response(b"final"));
    let origin = Origin::fixed(raw);
    let px = proxy(&format!(
        "location / {{ proxy_pass http://{}; }}",
        origin.addr()
    ));
    let mut c = FullClient::connect(px.port);
    let (r, _) = c.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "final"));
    assert_eq!(c.get("/").0.status, 200);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let origin = echo_target_origin();
    let px = proxy(&format!(
        "location /p/ {{ proxy_pass http://{}; }}",
        origin.addr()
    ));
    let mut c = px.client();
    c.send(
        b"GET /p/1 HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /p/2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc\
          GET /ret HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /p/4 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let bodies: Vec<String> = (0..4)
        .map(|i| {
            c.read_response()
                .unwrap_or_else(|e| panic!("response {i}: {e}"))
                .text()
        })
        .collect();
    assert_eq!(bodies, ["/p/1", "/p/2", "ret-ok", "/p/4"]);
    let seen = origin.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].body, b"abc");
}

#[test]
fn access_log_has_upstream_status_and_body_size() {
    let origin = Origin::fixed(http_response(201, "", &[b'x'; 1234]));
    let dead = free_port();
    let px = Server::start(
        Conf::new()
            .workers(1)
            .access_log("combined")
            .server(&format!(
                "location /log/ {{ proxy_pass http://{}; }}",
                origin.addr()
            ))
            .server(&format!(
                "location /down/ {{ proxy_pass http://127.0.0.1:{dead}; }}"
            )),
    );
    assert_eq!(px.get("/log/a").status, 201);
    assert_eq!(px.get("/down/b").status, 502);
    let log = wait_for(Duration::from_secs(5), || {
        let l = px.access_log();
        (l.lines().count() >= 2).then_some(l)
    })
    .unwrap_or_else(|| panic!("no two access-log lines: {:?}", px.access_log()));
    assert_eq!(
        count_lines(&log, "\"GET /log/a HTTP/1.1\" 201 1234 "),
        1,
        "{log}"
    );
    assert_eq!(
        count_lines(&log, "\"GET /down/b HTTP/1.1\" 502 "),
        1,
        "{log}"
    );
}
