//! The waiting room end to end: the real binary, daemonized, two workers,
//! with its zone in a temp state directory. Fresh users beyond capacity
//! wait; the refresh URL admits after its time and not before; tampered
//! tokens are queued anew; the JSON form; session cookie expiry;
//! `mode=reject`; reload and restart keep everyone's place.

mod limits_common;

use limits_common::{conf_template, Sluice, TempDir};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// A response with header values as sent (tokens are case-sensitive).
struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

fn request(port: u16, path: &str, extra: &[(&str, &str)]) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (n, v) in extra {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut data = Vec::new();
    let _ = s.read_to_end(&mut data);
    let text = String::from_utf8_lossy(&data).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Response {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn start(dir: &TempDir, zone: &str) -> Sluice {
    start_with(dir, zone, "")
}

fn start_with(dir: &TempDir, zone: &str, extra_http: &str) -> Sluice {
    std::fs::create_dir_all(dir.join("www/shop")).unwrap();
    std::fs::write(dir.join("www/shop/x"), "shop-content\n").unwrap();
    std::fs::write(dir.join("www/shop/y"), "shop-y\n").unwrap();
    let key = dir.join("wr.key");
    std::fs::write(&key, "k1 0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    Sluice::start(
        &dir.0,
        &conf_template(
            2,
            &format!(
                "waiting_room_zone shop:64k {zone};\nwaiting_room_secret {};\n{extra_http}",
                key.display()
            ),
            "location /shop/ { waiting_room shop; }",
        ),
    )
}

fn get(s: &Sluice, path: &str, headers: &[(&str, &str)]) -> Response {
    request(s.port, path, headers)
}

fn cookie(r: &Response) -> String {
    let c = r
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no Set-Cookie in {}", r.head));
    assert!(c.contains("HttpOnly"), "{c}");
    c.split(';').next().unwrap_or_default().to_string()
}

fn is_wait_page(r: &Response) -> bool {
    r.status == 200 && !r.body.contains("shop-content") && r.body.contains("sluice_wr=")
}

/// The retry URL of a wait page (path and query).
fn retry_url(r: &Response) -> String {
    let refresh = r
        .header("refresh")
        .unwrap_or_else(|| panic!("no Refresh header: {}", r.head));
    let url = refresh.split_once(";url=").expect("url in Refresh").1;
    assert!(
        r.body
            .contains(&format!("content=\"{}", refresh.replace('&', "&amp;"))),
        "meta refresh differs from the header: {}",
        r.body
    );
    url.to_string()
}

fn json_field(body: &str, name: &str) -> u64 {
    let key = format!("\"{name}\":");
    let at = body
        .find(&key)
        .unwrap_or_else(|| panic!("{name} in {body}"))
        + key.len();
    body[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name} not a number in {body}"))
}

fn status_json(s: &Sluice) -> String {
    get(s, "/status", &[("Accept", "application/json")]).body
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

#[test]
fn fresh_users_wait_and_the_refresh_url_admits_after_its_time_not_before() {
    let dir = TempDir::new("wr-flow");
    let s = start(&dir, "admit_rate=30/m max_active=1000 session=10m");
    let a = get(&s, "/shop/x", &[]);
    assert!(
        a.status == 200 && a.body.contains("shop-content"),
        "{}",
        a.head
    );
    let cookie_a = cookie(&a);
    let t0 = Instant::now();
    let b = get(&s, "/shop/x?q=1", &[]);
    assert!(
        is_wait_page(&b),
        "second user not queued: {} {}",
        b.head,
        b.body
    );
    assert!(b
        .header("cache-control")
        .is_some_and(|c| c.contains("no-store")));
    let url = retry_url(&b);
    assert!(url.starts_with("/shop/x?q=1&sluice_wr="), "{url}");
    assert!(b.body.contains("Your place: 1"), "{}", b.body);
    let queued = json_field(&status_json(&s), "queued");
    // Too early: still waiting, in the same place (no new place taken).
    let early = get(&s, &url, &[]);
    assert!(is_wait_page(&early), "early token: {}", early.head);
    assert_eq!(
        retry_url(&early),
        url,
        "early refresh keeps the same ticket"
    );
    assert_eq!(json_field(&status_json(&s), "queued"), queued);
    // The same ticket on another path is ignored: a new place, never content.
    let tok = url.split("sluice_wr=").nth(1).unwrap().to_string();
    sleep_until(t0 + Duration::from_millis(2300));
    let other = get(&s, &format!("/shop/y?sluice_wr={tok}"), &[]);
    assert!(
        other.status != 302 && !other.body.contains("shop-y"),
        "{}",
        other.head
    );
    // After its slot: 302 to the URL without the ticket, and a cookie.
    let ok = get(&s, &url, &[]);
    assert_eq!(ok.status, 302, "{} {}", ok.head, ok.body);
    assert_eq!(ok.header("location").as_deref(), Some("/shop/x?q=1"));
    let cookie_b = cookie(&ok);
    for c in [&cookie_a, &cookie_b] {
        let r = get(&s, "/shop/x", &[("Cookie", c)]);
        assert!(r.body.contains("shop-content"), "{c}: {}", r.head);
        assert!(r.header("set-cookie").is_none(), "fresh cookie renewed");
    }
    let st = status_json(&s);
    assert_eq!(json_field(&st, "admitted"), 2, "{st}");
    assert_eq!(json_field(&st, "wrong_path"), 1, "{st}");
}

#[test]
fn tampered_tokens_and_cookies_are_queued_anew_and_json_form() {
    let dir = TempDir::new("wr-tamper");
    let s = start(&dir, "admit_rate=12/m max_active=1000 session=10m");
    let a = get(&s, "/shop/x", &[]);
    let cookie_a = cookie(&a);
    let j = get(&s, "/shop/x", &[("Accept", "application/json")]);
    assert_eq!(j.status, 200);
    assert!(j
        .header("content-type")
        .is_some_and(|c| c.contains("application/json")));
    assert!(j
        .header("cache-control")
        .is_some_and(|c| c.contains("no-store")));
    assert_eq!(json_field(&j.body, "position"), 1, "{}", j.body);
    let wait = json_field(&j.body, "wait_s");
    assert!((4..=5).contains(&wait), "{}", j.body);
    assert!(
        j.body.contains("\"retry_url\":\"/shop/x?sluice_wr="),
        "{}",
        j.body
    );
    let url = j.body.split("\"retry_url\":\"").nth(1).unwrap();
    let url = url.split('"').next().unwrap().to_string();
    // Wait past the slot, then tamper: never admitted, a new place instead.
    std::thread::sleep(Duration::from_millis(5200));
    let n = url.len();
    let swap = if &url[n - 2..] == "AA" { "BB" } else { "AA" };
    let bad = format!("{}{swap}", &url[..n - 2]);
    let r = get(&s, &bad, &[]);
    assert!(is_wait_page(&r) && r.status != 302, "tampered: {}", r.head);
    assert_ne!(retry_url(&r), bad, "a tampered ticket is replaced");
    // A forged cookie is not a session either.
    let forged = format!("{}xyz", &cookie_a[..cookie_a.len() - 3]);
    let r = get(&s, "/shop/x", &[("Cookie", &forged)]);
    assert!(is_wait_page(&r), "forged cookie passed: {}", r.head);
    let st = status_json(&s);
    assert!(json_field(&st, "tampered") >= 2, "{st}");
    // The genuine ticket still admits.
    let ok = get(&s, &url, &[]);
    assert_eq!(ok.status, 302, "{}", ok.head);
}

#[test]
fn session_cookie_expires_after_inactivity_and_max_active_holds_others() {
    let dir = TempDir::new("wr-session");
    let s = start(&dir, "admit_rate=600/m max_active=1 session=2s");
    let a = get(&s, "/shop/x", &[]);
    let cookie_a = cookie(&a);
    // The slot is free but the only session is taken: wait.
    std::thread::sleep(Duration::from_millis(150));
    let b = get(&s, "/shop/x", &[]);
    assert!(is_wait_page(&b), "max_active ignored: {}", b.head);
    assert!(get(&s, "/shop/x", &[("Cookie", &cookie_a)])
        .body
        .contains("shop-content"));
    // Idle past `session`: the cookie is refused and its session freed.
    std::thread::sleep(Duration::from_millis(2400));
    let r = get(&s, "/shop/x", &[("Cookie", &cookie_a)]);
    let fresh = r.header("set-cookie");
    assert!(
        is_wait_page(&r) || fresh.is_some(),
        "expired cookie still a session: {}",
        r.head
    );
    assert!(json_field(&status_json(&s), "expired") >= 1);
    // The freed session admits someone new (B's ticket, or a new arrival).
    let url = retry_url(&b);
    std::thread::sleep(Duration::from_millis(2400));
    let ok = get(&s, &url, &[]);
    assert_eq!(ok.status, 302, "{}", ok.head);
}

#[test]
fn reject_mode_answers_503_with_retry_after() {
    let dir = TempDir::new("wr-reject");
    let s = start(
        &dir,
        "admit_rate=6/m max_active=100 session=10m mode=reject",
    );
    let a = get(&s, "/shop/x", &[]);
    assert!(a.body.contains("shop-content"));
    let b = get(&s, "/shop/x", &[]);
    assert_eq!(b.status, 503, "{}", b.head);
    let retry: u64 = b
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    assert!(b
        .header("cache-control")
        .is_some_and(|c| c.contains("no-store")));
    assert!(json_field(&status_json(&s), "refused") >= 1);
}

#[test]
fn reload_and_restart_keep_the_queue() {
    let dir = TempDir::new("wr-reload");
    let s = start(&dir, "admit_rate=6/m max_active=1000 session=10m");
    let json = [("Accept", "application/json")];
    let a = get(&s, "/shop/x", &[]);
    assert!(a.body.contains("shop-content"));
    let cookie_a = cookie(&a);
    let b = get(&s, "/shop/x", &json);
    assert_eq!(json_field(&b.body, "position"), 1, "{}", b.body);
    let b_url = b.body.split("\"retry_url\":\"").nth(1).unwrap();
    let b_url = b_url.split('"').next().unwrap().to_string();
    // Rotate: a new key signs, the old one still verifies B's ticket.
    std::fs::write(
        dir.join("wr.key"),
        "k2 fedcba9876543210fedcba9876543210\nk1 0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    s.reload();
    let c = get(&s, "/shop/x", &json);
    assert_eq!(
        json_field(&c.body, "position"),
        2,
        "reload lost the queue: {}",
        c.body
    );
    assert!(json_field(&c.body, "wait_s") >= 15, "{}", c.body);
    s.stop();
    s.launch();
    let d = get(&s, "/shop/x", &json);
    assert_eq!(
        json_field(&d.body, "position"),
        3,
        "restart lost the queue: {}",
        d.body
    );
    // B's ticket (old key) is still good after both, and still early; the
    // session admitted before the reload (old key) still passes.
    let r = get(&s, &b_url, &json);
    assert_eq!(json_field(&r.body, "position"), 1, "{}", r.body);
    assert!(r.body.contains(&b_url), "{}", r.body);
    let r = get(&s, "/shop/x", &[("Cookie", &cookie_a)]);
    assert!(r.body.contains("shop-content"), "{}", r.head);
    // New tickets are signed with the new key ("k2").
    let tok = d.body.split("sluice_wr=").nth(1).unwrap();
    // base64 of [1, 2, 'k', '2', ..]: "AQJrM" then a character of 'g'..='v'
    // (the high bits "10" of '2'; '1' gives 'Q'..='f').
    let sixth = tok.as_bytes()[5];
    assert!(
        tok.starts_with("AQJrM") && (b'g'..=b'v').contains(&sixth),
        "not signed by k2: {tok}"
    );
    assert_eq!(json_field(&status_json(&s), "unknown_key"), 0);
}

#[test]
fn page_template_and_prometheus_metrics() {
    let dir = TempDir::new("wr-page");
    std::fs::write(
        dir.join("page.html"),
        "<html><head>{{refresh}}</head><body>Queue! #{{position}}, ~{{wait_s}}s \
         <a href=\"{{url}}\">go</a> {{unknown}}</body></html>",
    )
    .unwrap();
    let s = start_with(
        &dir,
        "admit_rate=6/m max_active=100 session=10m",
        &format!("waiting_room_page {};", dir.join("page.html").display()),
    );
    assert!(get(&s, "/shop/x", &[]).body.contains("shop-content"));
    let r = get(&s, "/shop/x?a=1&b=2", &[]);
    assert!(
        r.body
            .starts_with("<html><head><meta http-equiv=\"refresh\" content=\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("Queue! #1, ~10s"), "{}", r.body);
    assert!(
        r.body.contains("href=\"/shop/x?a=1&amp;b=2&amp;sluice_wr="),
        "{}",
        r.body
    );
    assert!(r.body.contains("{{unknown}}"), "{}", r.body);
    assert!(retry_url(&r).starts_with("/shop/x?a=1&b=2&sluice_wr="));
    let text = get(&s, "/status", &[]).body;
    for line in [
        "sluice_waiting_room_admitted_total{zone=\"shop\"} 1",
        "sluice_waiting_room_queued_total{zone=\"shop\"} 1",
        "sluice_waiting_room_wait_pages_total{zone=\"shop\"} 1",
        "sluice_waiting_room_active_sessions{zone=\"shop\"} 1",
        "sluice_waiting_room_queue_length{zone=\"shop\"} 1",
        "sluice_waiting_room_rejected_tokens_total{zone=\"shop\",reason=\"tampered\"} 0",
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
    assert!(text.contains("sluice_waiting_room_estimated_wait_seconds{zone=\"shop\"} "));
}

/// A room zone admitting 6/min with a key file in `dir`: (zone, secret) lines.
fn room_http(dir: &TempDir, extra: &str) -> String {
    let key = dir.join("wr.key");
    std::fs::write(&key, "k1 0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "waiting_room_zone app:64k admit_rate=6/m max_active=10 session=10m;\n\
         waiting_room_secret {};\n{extra}",
        key.display()
    )
}

#[test]
fn proxied_location_admits_with_its_cookie_on_the_proxied_response() {
    // Regression: admission answered a proxied request with a 307 to the
    // same URL only to set its cookie.
    let dir = TempDir::new("wr-proxy");
    std::fs::create_dir_all(dir.join("www/app")).unwrap();
    std::fs::write(dir.join("www/app/x"), "app-content\n").unwrap();
    let origin = limits_common::free_port();
    let s = Sluice::start(
        &dir.0,
        &conf_template(
            1,
            &room_http(
                &dir,
                &format!("server {{ listen 127.0.0.1:{origin}; root {{dir}}/www; }}"),
            ),
            &format!(
                "location /app/ {{ waiting_room app; proxy_pass http://127.0.0.1:{origin}; \
                 add_header X-Room on; }}"
            ),
        ),
    );
    let r = get(&s, "/app/x?k=v", &[]);
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(r.body.contains("app-content"), "{}", r.body);
    assert_eq!(r.header("x-room").as_deref(), Some("on"), "{}", r.head);
    let c = cookie(&r);
    let ok = get(&s, "/app/x?k=v", &[("Cookie", &c)]);
    assert_eq!(ok.status, 200, "{}", ok.head);
    assert!(ok.body.contains("app-content"), "{}", ok.body);
    assert_eq!(
        ok.header("set-cookie"),
        None,
        "a fresh session is not renewed"
    );
    // The next new user waits; nothing reaches the origin for them.
    assert!(get(&s, "/app/x", &[]).body.contains("sluice_wr="));
}

/// An origin on a free port counting requests and keeping their bodies
/// (Content-Length only); answers `200 ok` and closes. Stops after `max`.
fn counting_origin(max: usize) -> (u16, std::sync::mpsc::Receiver<Vec<u8>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for c in l.incoming().take(max) {
            let Ok(mut c) = c else { return };
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            let body = loop {
                let Ok(n) = c.read(&mut buf) else { break None };
                if n == 0 {
                    break None;
                }
                data.extend_from_slice(&buf[..n]);
                let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if data.len() >= end + 4 + len {
                    break Some(data[end + 4..end + 4 + len].to_vec());
                }
            };
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            if let Some(b) = body {
                let _ = tx.send(b);
            }
        }
    });
    (port, rx)
}

#[test]
fn a_post_admitted_on_a_proxied_location_reaches_the_origin_once() {
    let dir = TempDir::new("wr-post");
    let (origin, bodies) = counting_origin(4);
    let s = Sluice::start(
        &dir.0,
        &conf_template(
            1,
            &room_http(&dir, ""),
            &format!(
                "location /app/ {{ waiting_room app; proxy_pass http://127.0.0.1:{origin}; }}"
            ),
        ),
    );
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        b"POST /app/form HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhello-body",
    )
    .unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("Set-Cookie: sluice_wr_app="), "{text}");
    assert!(text.ends_with("ok"), "{text}");
    assert_eq!(
        bodies.recv_timeout(Duration::from_secs(5)).as_deref(),
        Ok(&b"hello-body"[..])
    );
    assert!(
        bodies.recv_timeout(Duration::from_millis(300)).is_err(),
        "the POST reached the origin twice"
    );
}

#[test]
fn a_request_held_by_limit_req_keeps_the_cookie_it_was_admitted_with() {
    // Regression: the waiting room admitted the request (a session was
    // counted), limit_req delayed it, and the dispatch after the delay
    // skipped the room: the response went out without its Set-Cookie.
    let dir = TempDir::new("wr-delay");
    std::fs::create_dir_all(dir.join("www/app")).unwrap();
    std::fs::write(dir.join("www/app/x"), "app-content\n").unwrap();
    let s = Sluice::start(
        &dir.0,
        &conf_template(
            1,
            &format!(
                "{}limit_req_zone $binary_remote_addr zone=slow:1m rate=4r/s;",
                room_http(&dir, "").replace("admit_rate=6/m", "admit_rate=6000/m")
            ),
            "location /app/ { waiting_room app; limit_req zone=slow burst=5; }",
        ),
    );
    let first = get(&s, "/app/x", &[]);
    assert_eq!(first.status, 200, "{}", first.head);
    cookie(&first);
    // Past the room's next slot (10 ms at 6000/m), within limit_req's
    // 250 ms: admitted at once, then held by the limit.
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let held = get(&s, "/app/x", &[]);
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "the second request was not delayed: {} {}",
        held.head,
        held.body
    );
    assert_eq!(held.status, 200, "{}", held.head);
    assert!(held.body.contains("app-content"));
    cookie(&held);
}
