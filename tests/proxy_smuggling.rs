//! Request smuggling and framing abuse through a proxied location: raw bytes
//! go through sluice to a capturing [`Origin`], and each test asserts exactly
//! what the origin received. A chunked request body is decoded by sluice and
//! framed again (re-chunked, or sent with Content-Length when it was read
//! whole); a framing sluice refuses never reaches the origin, and an upstream
//! connection that got part of a refused body is closed, never reused. The
//! response side: an upstream's chunked body is decoded and re-chunked, and
//! an ambiguous upstream framing is a 502.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// An origin answering each request with its decoded body length.
fn body_len_origin() -> Origin {
    Origin::start(|r| {
        vec![Step::Write(ok_response(
            r.body.len().to_string().as_bytes(),
        ))]
    })
}

/// A one-worker proxy to `origin` speaking HTTP/1.1 upstream, with `extra`
/// directives in its `location /`.
fn proxy_to(origin: &Origin, extra: &str) -> Server {
    Server::start(Conf::new().workers(1).server(&format!(
        "location / {{ proxy_pass http://{}; proxy_http_version 1.1; {extra} }}",
        origin.addr()
    )))
}

/// A chunked POST head.
const CHUNKED_HEAD: &[u8] = b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

/// Send `raw` in one write; the first response's status and whether the
/// connection then closes.
fn status_of(port: u16, raw: &[u8]) -> (u16, bool) {
    let mut c = FullClient::connect(port);
    c.send(raw);
    let (r, _) = c
        .response(false)
        .unwrap_or_else(|e| panic!("no response to {:?}: {e}", String::from_utf8_lossy(raw)));
    (
        r.status,
        r.closes() || c.closed_within(Duration::from_secs(2)),
    )
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Wait until the origin has read `needle`.
fn wait_raw(origin: &Origin, needle: &[u8]) {
    assert!(
        wait_for(Duration::from_secs(5), || contains(
            &origin.raw_received(),
            needle
        )
        .then_some(()))
        .is_some(),
        "origin never read {:?}; it has {:?}",
        String::from_utf8_lossy(needle),
        String::from_utf8_lossy(&origin.raw_received())
    );
}

/// Wait until `n` of the origin's connections ended.
fn wait_ended(origin: &Origin, n: usize) -> bool {
    wait_for(Duration::from_secs(5), || {
        (origin.ended() >= n).then_some(())
    })
    .is_some()
}

#[test]
fn chunk_size_overflow_gets_400_and_never_reaches_the_origin() {
    let origin = body_len_origin();
    let px = proxy_to(&origin, "");
    for body in [
        // The case: 16 hex digits, past any signed 64-bit length.
        &b"FFFFFFFFFFFFFFFF\r\nabc\r\n"[..],
        // 17 digits after a valid first chunk.
        b"3\r\nabc\r\n10000000000000000\r\nabc\r\n0\r\n\r\n",
        b"8000000000000000\r\nabc\r\n",
    ] {
        let (status, closes) = status_of(px.port, &cat(CHUNKED_HEAD, body));
        assert_eq!(status, 400, "{:?}", String::from_utf8_lossy(body));
        assert!(closes, "connection closes after a broken body");
    }
    let raw = origin.raw_received();
    for size in [
        &b"FFFFFFFFFFFFFFFF"[..],
        b"10000000000000000",
        b"8000000000000000",
    ] {
        assert!(!contains(&raw, size), "origin read the client's chunk size");
    }
    assert_eq!(origin.request_count(), 0);
    assert_eq!(px.get("/hello").status, 200, "the proxy still serves");
}

#[test]
fn a_bad_chunk_after_streaming_began_gets_400_and_closes_the_upstream_connection() {
    let origin = body_len_origin();
    let px = proxy_to(&origin, "");
    let mut c = FullClient::connect(px.port);
    c.send(&cat(CHUNKED_HEAD, b"5\r\nhello\r\n"));
    // The head and the first chunk are upstream, framed by sluice.
    wait_raw(&origin, b"5\r\nhello\r\n");
    c.send(b"FFFFFFFFFFFFFFFF\r\nabc\r\n");
    let (r, _) = c.response(false).expect("a response to the bad chunk");
    assert_eq!(r.status, 400);
    assert!(c.closed_within(Duration::from_secs(2)));
    assert!(
        wait_ended(&origin, 1),
        "the upstream connection holding half a body was not closed"
    );
    assert!(!contains(&origin.raw_received(), b"FFFFFFFFFFFFFFFF"));
    assert_eq!(
        origin.request_count(),
        0,
        "the origin never got a whole request"
    );
    // The next request goes on a new upstream connection.
    assert_eq!(px.get("/after").status, 200);
    assert_eq!(origin.accepted(), 2);
}

#[test]
fn declared_chunk_size_over_client_max_body_size_gets_413_before_its_data() {
    let origin = body_len_origin();
    let px = proxy_to(&origin, "client_max_body_size 1k;");
    // All in one write: refused before any upstream contact.
    let mut body = b"800\r\n".to_vec();
    body.extend_from_slice(&[b'x'; 100]);
    assert_eq!(status_of(px.port, &cat(CHUNKED_HEAD, &body)).0, 413);
    assert_eq!(origin.accepted(), 0);
    // While streaming: 512 bytes pass, then a chunk declaring 768 more.
    let mut c = FullClient::connect(px.port);
    let mut first = b"200\r\n".to_vec();
    first.extend_from_slice(&[b'y'; 512]);
    first.extend_from_slice(b"\r\n");
    c.send(&cat(CHUNKED_HEAD, &first));
    wait_raw(&origin, &[b'y'; 512]);
    c.send(b"300\r\n");
    let (r, _) = c.response(false).expect("a response to the big chunk");
    assert_eq!(r.status, 413);
    assert!(wait_ended(&origin, 1), "upstream connection not closed");
    assert_eq!(origin.request_count(), 0);
    // Within the limit the same body passes.
    let mut ok = first.clone();
    ok.extend_from_slice(b"0\r\n\r\n");
    let mut c = FullClient::connect(px.port);
    c.send(&cat(CHUNKED_HEAD, &ok));
    let (r, _) = c.response(false).expect("response");
    assert_eq!((r.status, r.text()), (200, "512".to_string()));
}

#[test]
fn chunked_framing_abuse_gets_400_and_never_reaches_the_origin() {
    let origin = body_len_origin();
    let px = proxy_to(&origin, "");
    for body in [
        // Bare LF line endings.
        &b"5\nhello\n0\n\n"[..],
        b"5\r\nhello\n0\r\n\r\n",
        // No CRLF after the chunk data.
        b"5\r\nhelloX0\r\n\r\n",
        // Chunk extension abuse: a control byte, a bare CR.
        b"5;a\x01b\r\nhello\r\n0\r\n\r\n",
        b"5;a\rb\r\nhello\r\n0\r\n\r\n",
        // Sizes that are not hex digits.
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"5 5\r\nhello\r\n0\r\n\r\n",
        b"\r\nhello\r\n0\r\n\r\n",
        // Trailers: obsolete line folding, bare LF, no colon.
        b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n",
        b"5\r\nhello\r\n0\r\nX-T: a\n\r\n",
        b"5\r\nhello\r\n0\r\nno colon here\r\n\r\n",
    ] {
        let (status, closes) = status_of(px.port, &cat(CHUNKED_HEAD, body));
        assert_eq!(status, 400, "{:?}", String::from_utf8_lossy(body));
        assert!(closes, "{:?}", String::from_utf8_lossy(body));
    }
    assert_eq!(origin.accepted(), 0, "an upstream connection was opened");
}

#[test]
fn chunk_extensions_and_trailers_are_not_forwarded_a_whole_body_goes_with_its_length() {
    let origin = body_len_origin();
    let px = proxy_to(&origin, "");
    let body = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: evil\r\n\r\n";
    let mut c = FullClient::connect(px.port);
    c.send(&cat(CHUNKED_HEAD, body));
    let (r, _) = c.response(false).expect("response");
    assert_eq!((r.status, r.text()), (200, "11".to_string()));
    let s = origin.only_request();
    assert_eq!(s.header("content-length"), Some("11"), "{:?}", s.headers);
    assert_eq!(s.header("transfer-encoding"), None);
    assert_eq!(s.body, b"hello world");
    let raw = origin.raw_received();
    assert!(!contains(&raw, b"name=value") && !contains(&raw, b"X-Trailer"));
    assert_eq!(c.get("/after").0.status, 200, "connection still in sync");
}

#[test]
fn a_streamed_chunked_body_is_rechunked_not_copied() {
    let origin = body_len_origin();
    let px = proxy_to(&origin, "");
    let mut c = FullClient::connect(px.port);
    c.send(CHUNKED_HEAD);
    // The head went upstream alone: the body must stream, chunked.
    wait_raw(&origin, b"Transfer-Encoding: chunked\r\n");
    c.send(b"3;ext=\"q\"\r\nabc\r\n");
    std::thread::sleep(Duration::from_millis(100));
    c.send(b"0000004\r\ndefg\r\n0;last\r\nX-Trailer: t\r\n\r\n");
    let (r, _) = c.response(false).expect("response");
    assert_eq!((r.status, r.text()), (200, "7".to_string()));
    let s = origin.only_request();
    assert_eq!(s.body, b"abcdefg");
    let raw = origin.raw_received();
    for client_only in [&b"ext="[..], b"0000004", b";last", b"X-Trailer"] {
        assert!(
            !contains(&raw, client_only),
            "client bytes {:?} reached the origin: {:?}",
            String::from_utf8_lossy(client_only),
            String::from_utf8_lossy(&raw)
        );
    }
    assert!(
        raw.ends_with(b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"),
        "{raw:?}"
    );
    assert_eq!(c.get("/after").0.status, 200, "connection still in sync");
}

#[test]
fn early_eof_in_a_request_body_gets_400_and_closes_the_upstream() {
    let origin = body_len_origin();
    let px = proxy_to(&origin, "");
    let heads: [&[u8]; 2] = [
        b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello",
    ];
    for (i, raw) in heads.into_iter().enumerate() {
        let mut c = FullClient::connect(px.port);
        c.send(raw);
        wait_raw(&origin, if i == 0 { b"hel" } else { b"hello" });
        c.stream.shutdown(Shutdown::Write).expect("half close");
        let (r, _) = c.response(false).expect("a response after the early EOF");
        assert_eq!(r.status, 400);
        assert!(
            wait_ended(&origin, i + 1),
            "upstream connection {i} not closed"
        );
    }
    assert_eq!(origin.request_count(), 0);
}

#[test]
fn cl_te_te_cl_and_obfuscated_transfer_encoding_never_reach_the_origin() {
    let origin = body_len_origin();
    let px = proxy_to(&origin, "");
    let body = "5\r\nhello\r\n0\r\n\r\n";
    for headers in [
        // CL.TE and TE.CL.
        "Content-Length: 15\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 15\r\n",
        // TE.TE: a second, different or obfuscated coding.
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked, identity\r\n",
        "Transfer-Encoding: identity, chunked\r\n",
        "Transfer-Encoding: xchunked\r\n",
        "Transfer-Encoding : chunked\r\n",
        "Transfer-Encoding:\x0bchunked\r\n",
        "Transfer-Encoding: \"chunked\"\r\n",
        " Transfer-Encoding: chunked\r\n",
        "X: y\r\n Transfer-Encoding: chunked\r\n",
        "Transfer-Encoding\r\n: chunked\r\n",
        // Content-Length forms a peer may read differently.
        "Content-Length: 15\r\nContent-Length: 16\r\n",
        "Content-Length: +15\r\n",
        "Content-Length: 15, 15\r\n",
        "Content-Length: 0x0f\r\n",
        "Content-Length: 1 5\r\n",
    ] {
        let raw = format!("POST /x HTTP/1.1\r\nHost: x\r\n{headers}\r\n{body}");
        let (status, closes) = status_of(px.port, raw.as_bytes());
        assert!(
            status == 400 || status == 501,
            "{headers:?}: status {status}"
        );
        assert!(closes, "{headers:?}: connection kept");
    }
    // chunked on HTTP/1.0 is refused too.
    let raw = format!("POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
    assert_eq!(status_of(px.port, raw.as_bytes()).0, 400);
    assert_eq!(origin.accepted(), 0, "an upstream connection was opened");
    // The coding name is case-insensitive: this one is a valid body.
    let raw = format!("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n{body}");
    assert_eq!(status_of(px.port, raw.as_bytes()).0, 200);
    let s = origin.only_request();
    assert_eq!(
        (s.header("content-length"), s.body.as_slice()),
        (Some("5"), &b"hello"[..])
    );
}

#[test]
fn header_values_with_cr_or_nul_and_bad_targets_get_400() {
    let origin = body_len_origin();
    let px = proxy_to(&origin, "");
    for raw in [
        &b"GET /x HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n"[..],
        b"GET /x HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a\rb HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let (status, _) = status_of(px.port, raw);
        // "/a b HTTP/1.1" reads as an unknown version: 505.
        assert!(
            status == 400 || status == 505,
            "{:?}: {status}",
            String::from_utf8_lossy(raw)
        );
    }
    assert_eq!(origin.accepted(), 0, "an upstream connection was opened");
}

#[test]
fn decoded_crlf_in_the_path_cannot_inject_a_header() {
    let origin = Origin::start(|r| vec![Step::Write(ok_response(r.target.as_bytes()))]);
    let px = Server::start(Conf::new().workers(1).server(&format!(
        "location /p/ {{ proxy_pass http://{}/q/; proxy_set_header X-Uri $uri; }}",
        origin.addr()
    )));
    let mut c = FullClient::connect(px.port);
    c.send(b"GET /p/a%0d%0aX-Injected:%201 HTTP/1.1\r\nHost: x\r\n\r\n");
    let (r, _) = c.response(false).expect("response");
    assert_eq!(r.status, 200);
    let s = origin.only_request();
    assert_eq!(s.header("x-injected"), None, "{:?}", s.headers);
    assert_eq!(s.header("x-uri"), Some("/p/a%0D%0AX-Injected: 1"));
    assert_eq!(s.target, "/q/a%0D%0AX-Injected%3A%201");
    // `return 301 /new$uri` (the test config's /r/): no response splitting.
    c.send(b"GET /r/a%0d%0aSet-Cookie:%20x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    let (r, _) = c.response(false).expect("redirect");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("set-cookie"), None, "{:?}", r.headers);
    assert_eq!(r.header("location"), Some("/new/r/a%0D%0ASet-Cookie: x=1"));
}

/// A proxy whose origin answers with `response` (raw bytes), then closes.
fn proxy_answering(response: &'static [u8]) -> (Origin, Server) {
    let origin = Origin::start(move |_| vec![Step::Write(response.to_vec()), Step::Close]);
    let px = proxy_to(&origin, "");
    (origin, px)
}

#[test]
fn ambiguous_upstream_framing_gets_502() {
    for response in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n",
    ] {
        let (_origin, px) = proxy_answering(response);
        assert_eq!(
            px.get("/x").status,
            502,
            "{:?}",
            String::from_utf8_lossy(response)
        );
    }
}

/// `GET /x` on a raw socket; every byte until `end` appears or the server closes.
fn raw_get_until(port: u16, end: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !contains(&got, end) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

#[test]
fn an_upstream_chunked_body_is_rechunked_without_extensions_or_trailers() {
    let (_origin, px) = proxy_answering(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n000006\r\n world\r\n0\r\nX-T: t\r\n\r\n",
    );
    let got = raw_get_until(px.port, b"0\r\n\r\n");
    let body_at = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    assert!(contains(&got[..body_at], b"Transfer-Encoding: chunked\r\n"));
    assert_eq!(
        String::from_utf8_lossy(&got[body_at..]),
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    );
}

#[test]
fn an_upstream_chunk_size_overflow_cuts_the_response() {
    let (_origin, px) = proxy_answering(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n",
    );
    // The client gets the head at most, then the connection closes.
    let got = raw_get_until(px.port, b"never appears");
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 200"),
        "{got:?}"
    );
    assert!(
        !contains(&got, b"abc") && !contains(&got, b"0\r\n\r\n"),
        "a broken upstream body was completed for the client: {:?}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn a_chunked_body_for_an_http10_upstream_is_read_whole_and_sent_with_its_length() {
    let origin = body_len_origin();
    let px = Server::start(Conf::new().workers(1).server(&format!(
        "location / {{ proxy_pass http://{}; proxy_http_version 1.0; }}",
        origin.addr()
    )));
    let mut c = FullClient::connect(px.port);
    c.send(b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
    // The client waits for 100 Continue before its body.
    let (r, _) = c.response(false).expect("100 Continue");
    assert_eq!(r.status, 100);
    c.send(b"4\r\nwhol");
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(
        origin.accepted(),
        0,
        "upstream contacted before the body was whole"
    );
    c.send(b"\r\n1\r\ne\r\n0\r\n\r\n");
    let (r, _) = c.response(false).expect("response");
    assert_eq!((r.status, r.text()), (200, "5".to_string()));
    let s = origin.only_request();
    assert_eq!(s.version, "HTTP/1.0");
    assert_eq!(s.header("content-length"), Some("5"));
    assert_eq!(s.header("transfer-encoding"), None);
    assert_eq!(s.body, b"whole");
}
