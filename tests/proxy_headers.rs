//! Proxy response handling against the real binary: `proxy_pass_header`,
//! `proxy_hide_header` and nginx's hidden `X-Accel-*`, `proxy_redirect`
//! (default, off, prefix, regex; `Location` and `Refresh`), `proxy_buffering
//! off` (never cached), `proxy_ignore_headers`, `proxy_intercept_errors` with
//! `error_page`, and WebSocket upgrades tunnelled both ways.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn proxy(http: &str, server_extra: &str) -> Server {
    Server::start(Conf::new().workers(1).http(http).server(server_extra))
}

#[test]
fn pass_and_hide_headers() {
    let origin = Origin::fixed(http_response(
        200,
        "Server: origin-x\r\nX-Accel-Expires: 10\r\nX-Pad: avoid browser bug\r\nX-Secret: s\r\nX-Keep: k\r\n",
        b"ok",
    ));
    let a = origin.addr();
    let px = proxy(
        "",
        &format!(
            "location /plain/ {{ proxy_pass http://{a}; }}\n\
             location /pass/ {{ proxy_pass http://{a}; proxy_pass_header Server; proxy_pass_header X-Accel-Expires; proxy_hide_header X-Secret; }}"
        ),
    );
    let r = px.get("/plain/");
    assert!(
        r.header("server").is_some_and(|s| s.starts_with("sluice")),
        "{}",
        r.head()
    );
    assert_eq!(r.header("x-accel-expires"), None);
    assert_eq!(r.header("x-pad"), None);
    assert_eq!(r.header("x-secret"), Some("s"));
    assert_eq!(r.header("x-keep"), Some("k"));
    let r = px.get("/pass/");
    assert_eq!(r.header("server"), Some("origin-x"));
    assert_eq!(r.header_count("server"), 1);
    assert_eq!(r.header("x-accel-expires"), Some("10"));
    assert_eq!(r.header("x-secret"), None);
    assert_eq!(r.header("x-keep"), Some("k"));
}

#[test]
fn proxy_redirect_rewrites_location_and_refresh() {
    let origin = Origin::start(|r| {
        let path = r.target.clone();
        let (loc, refresh) = if path.contains("/abs") {
            (
                "http://app/two/x?y=1".to_string(),
                "3; url=http://app/two/r".to_string(),
            )
        } else if path.contains("/other") {
            ("http://elsewhere/z".to_string(), "0".to_string())
        } else {
            (
                "http://backend.local:8080/img/pic.png".to_string(),
                "1;URL=http://backend.local:8080/img/q".to_string(),
            )
        };
        vec![Step::Write(http_response(
            302,
            &format!("Location: {loc}\r\nRefresh: {refresh}\r\n"),
            b"",
        ))]
    });
    let px = proxy(
        &format!("upstream app {{ server {}; }}", origin.addr()),
        "location /one/ { proxy_pass http://app/two/; }\n\
         location /off/ { proxy_pass http://app/two/; proxy_redirect off; }\n\
         location /re/ { proxy_pass http://app; proxy_redirect ~^http://backend\\.local:\\d+/(.*)$ /static/$1; }\n\
         location /pre/ { proxy_pass http://app; proxy_redirect http://backend.local:8080/ https://$http_x_site/cdn/; }",
    );
    let r = px.get("/one/abs");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/one/x?y=1"), "default");
    assert_eq!(r.header("refresh"), Some("3; url=/one/r"));
    let r = px.get("/one/other");
    assert_eq!(
        r.header("location"),
        Some("http://elsewhere/z"),
        "no match: kept"
    );
    let r = px.get("/off/abs");
    assert_eq!(r.header("location"), Some("http://app/two/x?y=1"));
    let r = px.get("/re/img");
    assert_eq!(r.header("location"), Some("/static/img/pic.png"));
    assert_eq!(r.header("refresh"), Some("1;URL=/static/img/q"));
    let r = request(px.port, "/pre/img", &[("X-Site", "example.com")]);
    assert_eq!(
        r.header("location"),
        Some("https://example.com/cdn/img/pic.png")
    );
}

#[test]
fn proxy_redirect_default_matches_nginx() {
    let origin = Origin::fixed(http_response(301, "Location: http://app/two/dir/\r\n", b""));
    let locs = "location /one/ { proxy_pass http://app/two/; }";
    let up = format!("upstream app {{ server {}; }}", origin.addr());
    let px = proxy(&up, locs);
    let ours = px.get("/one/dir").header("location").map(str::to_string);
    assert_eq!(ours.as_deref(), Some("/one/dir/"));
    let dir = TempDir::new("nginx-redir");
    let Some(ng) = Nginx::start(
        &dir,
        &format!("{up}\nserver {{ listen 127.0.0.1:{{port}}; {locs} }}"),
    ) else {
        eprintln!("nginx not installed: comparison skipped");
        return;
    };
    // nginx makes a relative Location absolute (`absolute_redirect on`);
    // sluice leaves it relative: the path is the same.
    let theirs = get(ng.port, "/one/dir")
        .header("location")
        .map(str::to_string);
    let path = theirs
        .as_deref()
        .and_then(|l| l.strip_prefix("http://"))
        .and_then(|l| l.find('/').map(|i| l[i..].to_string()));
    assert_eq!(path, ours, "{theirs:?}");
}

#[test]
fn buffering_off_is_never_cached_and_ignore_headers_caches_no_store() {
    let dir = TempDir::new("buf-off");
    let cache = dir.join("cache");
    let origin = Origin::fixed(http_response(200, "Cache-Control: no-store\r\n", b"body"));
    let a = origin.addr();
    let conf = Conf::new().workers(1).http(&format!(
        "proxy_cache_path {} keys_zone=z:1m;\nproxy_cache_valid 200 1m;\n",
        cache.display()
    ));
    let conf = conf.server(&format!(
        "location /on/ {{ proxy_pass http://{a}; proxy_cache z; proxy_ignore_headers Cache-Control; }}\n\
         location /off/ {{ proxy_pass http://{a}; proxy_cache z; proxy_ignore_headers Cache-Control; proxy_buffering off; }}\n\
         location /plain/ {{ proxy_pass http://{a}; proxy_cache z; }}"
    ));
    let px = Server::start_in(dir, conf);
    let status = |p: &str| {
        let r = px.get(p);
        assert_eq!(r.text(), "body");
        r.header("x-cache-status").unwrap_or("").to_string()
    };
    // Fills are published by the writer thread: give it time.
    assert_eq!(status("/on/x"), "MISS");
    wait_until(
        "proxy_ignore_headers Cache-Control: stored",
        Duration::from_secs(5),
        || status("/on/x") == "HIT",
    );
    let on = origin.request_count();
    for p in ["/off/x", "/plain/x"] {
        assert_ne!(status(p), "HIT");
        std::thread::sleep(Duration::from_millis(500));
        assert_ne!(status(p), "HIT", "{p} was stored");
    }
    assert_eq!(origin.request_count(), on + 4);
}

#[test]
fn intercept_errors_hands_upstream_errors_to_error_page() {
    let origin = Origin::start(|r| {
        let status = match r.target.as_str() {
            t if t.ends_with("/missing") => 404,
            t if t.ends_with("/broken") => 500,
            _ => 200,
        };
        vec![Step::Write(http_response(
            status,
            "X-From: origin\r\n",
            b"origin page",
        ))]
    });
    let fallback = Origin::fixed(http_response(200, "", b"fallback"));
    let a = origin.addr();
    let px = proxy(
        "",
        &format!(
            "location /i/ {{ proxy_pass http://{a}; proxy_intercept_errors on; error_page 404 /oops; error_page 500 = @fb; }}\n\
             location /n/ {{ proxy_pass http://{a}; error_page 404 /oops; }}\n\
             location = /oops {{ return 200 \"custom page\"; }}\n\
             location @fb {{ proxy_pass http://{}; }}",
            fallback.addr()
        ),
    );
    let mut c = px.client();
    let r = c.get("/i/missing").expect("response");
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "custom page");
    assert_eq!(r.header("x-from"), None);
    let r = c.get("/i/broken").expect("response");
    assert_eq!((r.status, r.text().as_str()), (200, "fallback"));
    // Statuses without a page, and locations without intercept, pass.
    let r = c.get("/i/fine").expect("response");
    assert_eq!((r.status, r.text().as_str()), (200, "origin page"));
    let r = c.get("/n/missing").expect("response");
    assert_eq!((r.status, r.text().as_str()), (404, "origin page"));
    assert!(!r.closes(), "the connection stays usable");
    wait_until(
        "one access-log line per request",
        Duration::from_secs(5),
        || {
            let log = std::fs::read_to_string(px.path("access.log")).unwrap_or_default();
            log.lines().count() == 4 && log.contains(" 404 ") && !log.contains(" 500 ")
        },
    );
}

/// A WebSocket-ish echo origin: answers an `Upgrade` request with 101,
/// sends "hi", then echoes every byte until the client closes. Returns its
/// port and whether it saw the client close.
fn echo_origin() -> (u16, std::sync::mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&b[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if !text.contains("upgrade: websocket") || !text.contains("connection: upgrade") {
                    let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                    return;
                }
                let _ = s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\nhi");
                loop {
                    match s.read(&mut b) {
                        Ok(0) => {
                            let _ = tx.send("client closed".to_string());
                            return;
                        }
                        Err(_) => {
                            let _ = tx.send("error".to_string());
                            return;
                        }
                        Ok(n) => {
                            if s.write_all(&b[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (port, rx)
}

const UPGRADE: &[u8] = b"GET /ws/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn read_some(s: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut b = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < want && Instant::now() < deadline {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    got
}

#[test]
fn websocket_upgrade_is_tunnelled_both_ways_until_a_side_closes() {
    let (port, closed) = echo_origin();
    let px = proxy(
        "map $http_upgrade $connection_upgrade { default upgrade; '' close; }",
        &format!(
            "location /ws/ {{ proxy_pass http://127.0.0.1:{port}; proxy_http_version 1.1;\n\
             proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade; proxy_read_timeout 1s; }}"
        ),
    );
    let mut s = TcpStream::connect(("127.0.0.1", px.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200))).ok();
    s.write_all(UPGRADE).expect("send");
    let head = read_some(&mut s, 1);
    let mut got = head.clone();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") || !got.ends_with(b"hi") {
        let more = read_some(&mut s, 1);
        if more.is_empty() {
            break;
        }
        got.extend_from_slice(&more);
    }
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    assert!(text.contains("\r\nUpgrade: websocket\r\n"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("\r\nconnection: upgrade\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with("\r\n\r\nhi"),
        "server-first bytes relayed: {text}"
    );
    // Both ways, several rounds, a large one included.
    for round in 0..3 {
        let msg = format!("message {round}");
        s.write_all(msg.as_bytes()).expect("send");
        assert_eq!(read_some(&mut s, msg.len()), msg.as_bytes());
    }
    let big = pseudo_random_bytes(300_000, 7);
    let mut w = s.try_clone().expect("clone");
    let to_send = big.clone();
    let writer = std::thread::spawn(move || w.write_all(&to_send).is_ok());
    let echoed = read_some(&mut s, big.len());
    assert!(writer.join().expect("writer"));
    assert_eq!(echoed.len(), big.len());
    assert!(echoed == big, "echo differs");
    // The client closes: the origin sees it.
    drop(s);
    assert_eq!(
        closed.recv_timeout(Duration::from_secs(3)).ok().as_deref(),
        Some("client closed")
    );
    // Idle past proxy_read_timeout: the tunnel is closed.
    let mut s = TcpStream::connect(("127.0.0.1", px.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200))).ok();
    s.write_all(UPGRADE).expect("send");
    let t = Instant::now();
    let mut total = Vec::new();
    let mut eof = false;
    let mut b = [0u8; 4096];
    while t.elapsed() < Duration::from_secs(4) {
        match s.read(&mut b) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => total.extend_from_slice(&b[..n]),
            Err(_) => {}
        }
    }
    assert!(eof, "the idle tunnel stayed open");
    assert!(
        t.elapsed() >= Duration::from_millis(900) && t.elapsed() < Duration::from_millis(3000),
        "closed after {:?}",
        t.elapsed()
    );
    assert!(String::from_utf8_lossy(&total).starts_with("HTTP/1.1 101 "));
    wait_until("the 101 in the access log", Duration::from_secs(5), || {
        std::fs::read_to_string(px.path("access.log"))
            .unwrap_or_default()
            .contains(" 101 ")
    });
}

#[test]
fn a_101_without_an_upgrade_request_is_502() {
    let origin = Origin::fixed(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            .to_vec(),
    );
    let px = proxy(
        "",
        &format!("location / {{ proxy_pass http://{}; }}", origin.addr()),
    );
    assert_eq!(px.get("/").status, 502);
}
