//! gzip the nginx way, for static files: `gzip on` compresses the
//! `gzip_types` (and `text/html`) at `gzip_comp_level` for clients that
//! accept it, from `gzip_min_length` bytes; `gzip_vary`, weak ETags, no
//! ranges on a compressed answer; `gzip_disable`; `gzip_static` serves
//! `FILE.gz`; an edited file is compressed again.

mod common;

use common::*;
use std::io::Read;

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn get(s: &Server, path: &str, headers: &[(&str, &str)]) -> Response {
    request(s.port, path, headers)
}

const AE: (&str, &str) = ("Accept-Encoding", "gzip, deflate, br");

#[test]
fn static_files_are_compressed_for_clients_that_accept_gzip() {
    let s = Server::start(Conf::new().workers(1).http(
        "    gzip on; gzip_comp_level 6; gzip_min_length 100; gzip_vary on;\n\
         \x20   gzip_types text/css application/javascript; gzip_disable msie6;",
    ));
    let css = "body { color: red; }\n".repeat(200);
    std::fs::write(s.path("www/a.css"), &css).unwrap();
    std::fs::write(s.path("www/tiny.css"), "p{}").unwrap();
    std::fs::write(s.path("www/b.png"), vec![7u8; 5000]).unwrap();
    let r = get(&s, "/a.css", &[AE]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(
        r.header("etag").unwrap().starts_with("W/\""),
        "{:?}",
        r.header("etag")
    );
    assert_eq!(r.header("accept-ranges"), None);
    assert!(r.body.len() < css.len() / 10, "{} bytes", r.body.len());
    assert_eq!(r.content_length(), Some(r.body.len()));
    assert_eq!(gunzip(&r.body), css.as_bytes());
    // Not for a client that does not ask, or refuses it with q=0.
    for ae in [None, Some("identity"), Some("gzip;q=0"), Some("br")] {
        let h: Vec<(&str, &str)> = ae.map(|v| ("Accept-Encoding", v)).into_iter().collect();
        let r = get(&s, "/a.css", &h);
        assert_eq!(r.header("content-encoding"), None, "{ae:?}");
        assert_eq!(r.body, css.as_bytes());
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{ae:?}");
    }
    // Too short, not a gzip_type, a range, or an old browser: identity.
    assert_eq!(get(&s, "/tiny.css", &[AE]).header("content-encoding"), None);
    assert_eq!(get(&s, "/b.png", &[AE]).header("content-encoding"), None);
    let r = get(&s, "/a.css", &[AE, ("Range", "bytes=0-9")]);
    assert_eq!((r.status, r.header("content-encoding")), (206, None));
    let r = get(
        &s,
        "/a.css",
        &[AE, ("User-Agent", "Mozilla/4.0 (compatible; MSIE 6.0)")],
    );
    assert_eq!(r.header("content-encoding"), None);
    // text/html is always a gzip type; HEAD gets the same head.
    let html = format!("<html>{}</html>", "<p>x</p>".repeat(100));
    std::fs::write(s.path("www/p.html"), &html).unwrap();
    let r = get(&s, "/p.html", &[AE]);
    assert_eq!(gunzip(&r.body), html.as_bytes());
    // Edited: compressed again (the cached copy follows the file).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let css2 = "a { color: blue; }\n".repeat(300);
    std::fs::write(s.path("www/a.css"), &css2).unwrap();
    let r = wait_for(std::time::Duration::from_secs(5), || {
        let r = get(&s, "/a.css", &[AE]);
        (gunzip(&r.body) == css2.as_bytes()).then_some(r)
    });
    assert!(r.is_some(), "stale compressed copy");
}

#[test]
fn gzip_static_serves_the_precompressed_file() {
    let s = Server::start(Conf::new().workers(1).server(
        "        location /on/ { gzip_static on; gzip_vary on; }\n\
         \x20       location /always/ { gzip_static always; }",
    ));
    for dir in ["on", "always"] {
        std::fs::create_dir_all(s.path(&format!("www/{dir}"))).unwrap();
        std::fs::write(s.path(&format!("www/{dir}/app.js")), "plain js").unwrap();
        std::fs::write(
            s.path(&format!("www/{dir}/app.js.gz")),
            b"\x1f\x8bprecompressed",
        )
        .unwrap();
    }
    let r = get(&s, "/on/app.js", &[AE]);
    assert_eq!(r.body, b"\x1f\x8bprecompressed");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-type"), Some("application/javascript"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let r = get(&s, "/on/app.js", &[]);
    assert_eq!(r.body, b"plain js");
    assert_eq!(r.header("content-encoding"), None);
    let r = get(&s, "/always/app.js", &[]);
    assert_eq!(r.body, b"\x1f\x8bprecompressed");
}

#[test]
fn bad_gzip_settings_fail_t() {
    let port = free_port();
    let server =
        |extra: &str| format!("  server {{\n    listen 127.0.0.1:{port};\n    {extra}\n  }}");
    assert_t_fails(
        "gz-level",
        &server("gzip_comp_level 10;"),
        7,
        "invalid value \"10\"",
    );
    assert_t_fails(
        "gz-ver",
        &server("gzip_http_version 2.0;"),
        7,
        "invalid value \"2.0\"",
    );
    assert_t_fails(
        "gz-static",
        &server("gzip_static maybe;"),
        7,
        "invalid value \"maybe\"",
    );
}
