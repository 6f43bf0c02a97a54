//! The header filter runs on every response head as a value, whoever wrote
//! it: static files, `return`, error pages, the waiting room's wait page and
//! its admission 302 (which used to skip it), proxied and cached answers.
//! Each head is serialized once: one `Server`, one `Date`, one length.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;

fn room_key(dir: &TempDir) -> String {
    let key = dir.join("wr.key");
    std::fs::write(&key, "k1 0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    key.display().to_string()
}

fn once(r: &Response, name: &str) {
    assert_eq!(r.header_count(name), 1, "{name} in {:?}", r.headers);
}

#[test]
fn the_waiting_rooms_own_answers_go_through_the_header_filter() {
    let keys = TempDir::new("hf-key");
    let s = Server::start(
        Conf::new()
            .workers(1)
            .http(&format!(
                "    waiting_room_zone shop:64k admit_rate=30/m max_active=1000 session=10m;\n\
                 \x20   waiting_room_secret {};\n",
                room_key(&keys)
            ))
            .server(
                "        location /shop/ { waiting_room shop; add_header X-Site shop always; \
                 add_header X-Path $uri; }",
            ),
    );
    std::fs::create_dir_all(s.path("www/shop")).unwrap();
    std::fs::write(s.path("www/shop/x"), "shop-content\n").unwrap();
    // The first user is admitted at once: content, cookie and the filter.
    let a = s.get("/shop/x");
    assert_eq!(a.status, 200);
    assert_eq!(a.text(), "shop-content\n");
    assert_eq!(a.header("x-site"), Some("shop"));
    assert_eq!(a.header("x-path"), Some("/shop/x"));
    once(&a, "set-cookie");
    // The second waits: the wait page is the location's answer too.
    let b = s.get("/shop/x?q=1");
    assert_eq!(b.status, 200);
    assert!(b.text().contains("sluice_wr="), "{}", b.text());
    assert_eq!(b.header("x-site"), Some("shop"), "{:?}", b.headers);
    assert_eq!(b.header("x-path"), Some("/shop/x"));
    for f in [
        "server",
        "date",
        "content-length",
        "connection",
        "set-cookie",
    ] {
        if f == "set-cookie" {
            assert_eq!(b.header_count(f), 0, "a waiting user has no session");
        } else {
            once(&b, f);
        }
    }
    assert_eq!(b.content_length(), Some(b.body.len()));
    // Its ticket admits after its slot with a 302 that also has them, and
    // the session cookie exactly once.
    let refresh = b.header("refresh").expect("Refresh").to_string();
    let url = refresh.split_once(";url=").expect("url").1.to_string();
    let ok = wait_for(std::time::Duration::from_secs(5), || {
        let r = s.get(&url);
        (r.status == 302).then_some(r)
    })
    .expect("admitted within 5 s");
    assert_eq!(ok.header("location"), Some("/shop/x?q=1"));
    assert_eq!(ok.header("x-site"), Some("shop"), "{:?}", ok.headers);
    once(&ok, "set-cookie");
    once(&ok, "content-length");
}

#[test]
fn local_heads_are_serialized_once_with_the_filter_in_the_status_list() {
    let s = Server::start(Conf::new().workers(1).server(
        "        location /f/ { add_header X-A a; add_header X-B b always; }\n\
         \x20       location = /f/ret { return 200 \"r\"; add_header X-A a; add_header X-B b always; }",
    ));
    std::fs::create_dir_all(s.path("www/f")).unwrap();
    std::fs::write(s.path("www/f/file"), "0123456789").unwrap();
    let full = s.get("/f/file");
    assert_eq!((full.status, full.text().as_str()), (200, "0123456789"));
    for f in [
        "server",
        "date",
        "content-length",
        "content-type",
        "etag",
        "x-a",
        "x-b",
    ] {
        once(&full, f);
    }
    // A range: 206 is in nginx's list; a 404 only gets `always`.
    let mut c = s.client();
    c.send(b"GET /f/file HTTP/1.1\r\nHost: t\r\nRange: bytes=2-4\r\n\r\n");
    let part = c.read_response().expect("206");
    assert_eq!((part.status, part.text().as_str()), (206, "234"));
    assert_eq!(part.header("content-range"), Some("bytes 2-4/10"));
    once(&part, "x-a");
    c.send(b"GET /f/file HTTP/1.1\r\nHost: t\r\nRange: bytes=20-30\r\n\r\n");
    let bad = c.read_response().expect("416");
    assert_eq!(bad.status, 416);
    assert_eq!(bad.header("content-range"), Some("bytes */10"));
    assert_eq!(bad.header_count("x-a"), 0);
    once(&bad, "x-b");
    let missing = s.get("/f/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header_count("x-a"), 0);
    once(&missing, "x-b");
    let ret = s.get("/f/ret");
    assert_eq!((ret.status, ret.text().as_str()), (200, "r"));
    once(&ret, "x-a");
    once(&ret, "content-length");
}

#[test]
fn expires_charset_and_etag_as_nginx() {
    let s = Server::start(Conf::new().workers(1).http("    charset utf-8;").server(
        "        location /e/ { expires 1h; }\n\
         \x20       location /max/ { expires max; }\n\
         \x20       location /epoch/ { expires epoch; etag off; }\n\
         \x20       location /neg/ { expires -1; add_header Cache-Control private; }\n\
         \x20       location /mod/ { expires modified 2h; charset off; }",
    ));
    for dir in ["e", "max", "epoch", "neg", "mod"] {
        std::fs::create_dir_all(s.path(&format!("www/{dir}"))).unwrap();
        std::fs::write(s.path(&format!("www/{dir}/a.html")), "<p>hi</p>").unwrap();
        std::fs::write(s.path(&format!("www/{dir}/b.png")), "png").unwrap();
    }
    let mtime = 1_700_000_000;
    set_mtime(&s.path("www/mod/a.html"), mtime);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let r = s.get("/e/a.html");
    assert_eq!(r.header("cache-control"), Some("max-age=3600"));
    let exp = r.header("expires").expect("Expires");
    assert!(
        (now + 3599..=now + 3602).any(|t| http_date(t) == exp),
        "{exp} is not an hour after {}",
        http_date(now)
    );
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    // charset only on the charset_types.
    assert_eq!(s.get("/e/b.png").header("content-type"), Some("image/png"));
    let r = s.get("/max/a.html");
    assert_eq!(r.header("expires"), Some("Thu, 31 Dec 2037 23:55:55 GMT"));
    assert_eq!(r.header("cache-control"), Some("max-age=315360000"));
    let r = s.get("/epoch/a.html");
    assert_eq!(r.header("expires"), Some("Thu, 01 Jan 1970 00:00:01 GMT"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("etag"), None, "etag off");
    assert!(s.get("/e/a.html").header("etag").is_some());
    // add_header comes after expires: both Cache-Control values are sent.
    let r = s.get("/neg/a.html");
    assert_eq!(r.header_count("cache-control"), 2);
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let r = s.get("/mod/a.html");
    assert_eq!(
        r.header("expires"),
        Some(http_date(mtime as i64 + 7200).as_str())
    );
    assert_eq!(
        r.header("cache-control"),
        Some("no-cache"),
        "expired long ago"
    );
    assert_eq!(r.header("content-type"), Some("text/html"), "charset off");
    // Not on a 404 (nginx's status list).
    let miss = s.get("/e/none.html");
    assert_eq!(miss.status, 404);
    assert_eq!(miss.header("expires"), None);
}
