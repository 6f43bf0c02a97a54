//! The waiting room end to end: the real binary, daemonized, two workers,
//! with its zone in a temp state directory. Fresh users beyond capacity
//! wait; the refresh URL admits after its time and not before; tampered
//! tokens are queued anew; the JSON form; session cookie expiry;
//! `mode=reject`; reload and restart keep everyone's place.

mod common;

use common::{free_port, http_response, Conf, Origin, Response, Server, Step, TempDir};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// Write the room's key file `wr.key` (mode 0600) into `dir`; its path.
fn write_key(dir: &TempDir) -> std::path::PathBuf {
    let key = dir.write("wr.key", "k1 0123456789abcdef0123456789abcdef\n");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    key
}

fn start(dir: TempDir, zone: &str) -> Server {
    start_with(dir, zone, "")
}

fn start_with(dir: TempDir, zone: &str, extra_http: &str) -> Server {
    dir.write("www/shop/x", "shop-content\n");
    dir.write("www/shop/y", "shop-y\n");
    let key = write_key(&dir);
    Server::start_in(
        dir,
        Conf::new()
            .workers(2)
            .http(&format!(
                "waiting_room_zone shop:64k {zone};\nwaiting_room_secret {};\n{extra_http}",
                key.display()
            ))
            .server("location /shop/ { waiting_room shop; }"),
    )
}

fn cookie(r: &Response) -> String {
    let c = r
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no Set-Cookie in {}", r.head()));
    assert!(c.contains("HttpOnly"), "{c}");
    c.split(';').next().unwrap_or_default().to_string()
}

fn is_wait_page(r: &Response) -> bool {
    r.status == 200 && !r.body_str().contains("shop-content") && r.body_str().contains("sluice_wr=")
}

/// The retry URL of a wait page (path and query).
fn retry_url(r: &Response) -> String {
    let refresh = r
        .header("refresh")
        .unwrap_or_else(|| panic!("no Refresh header: {}", r.head()));
    let url = refresh.split_once(";url=").expect("url in Refresh").1;
    assert!(
        r.body_str()
            .contains(&format!("content=\"{}", refresh.replace('&', "&amp;"))),
        "meta refresh differs from the header: {}",
        r.body_str()
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

fn status_json(s: &Server) -> String {
    s.request("/status", &[("Accept", "application/json")])
        .text()
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

#[test]
fn fresh_users_wait_and_the_refresh_url_admits_after_its_time_not_before() {
    let dir = TempDir::new("wr-flow");
    let s = start(dir, "admit_rate=30/m max_active=1000 session=10m");
    let a = s.request("/shop/x", &[]);
    assert!(
        a.status == 200 && a.body_str().contains("shop-content"),
        "{}",
        a.head()
    );
    let cookie_a = cookie(&a);
    let t0 = Instant::now();
    let b = s.request("/shop/x?q=1", &[]);
    assert!(
        is_wait_page(&b),
        "second user not queued: {} {}",
        b.head(),
        b.body_str()
    );
    assert!(b
        .header("cache-control")
        .is_some_and(|c| c.contains("no-store")));
    let url = retry_url(&b);
    assert!(url.starts_with("/shop/x?q=1&sluice_wr="), "{url}");
    assert!(b.body_str().contains("Your place: 1"), "{}", b.body_str());
    let queued = json_field(&status_json(&s), "queued");
    // Too early: still waiting, in the same place (no new place taken).
    let early = s.request(&url, &[]);
    assert!(is_wait_page(&early), "early token: {}", early.head());
    assert_eq!(
        retry_url(&early),
        url,
        "early refresh keeps the same ticket"
    );
    assert_eq!(json_field(&status_json(&s), "queued"), queued);
    // The same ticket on another path is ignored: a new place, never content.
    let tok = url.split("sluice_wr=").nth(1).unwrap().to_string();
    sleep_until(t0 + Duration::from_millis(2300));
    let other = s.request(&format!("/shop/y?sluice_wr={tok}"), &[]);
    assert!(
        other.status != 302 && !other.body_str().contains("shop-y"),
        "{}",
        other.head()
    );
    // After its slot: 302 to the URL without the ticket, and a cookie.
    let ok = s.request(&url, &[]);
    assert_eq!(ok.status, 302, "{} {}", ok.head(), ok.body_str());
    assert_eq!(ok.header("location"), Some("/shop/x?q=1"));
    let cookie_b = cookie(&ok);
    for c in [&cookie_a, &cookie_b] {
        let r = s.request("/shop/x", &[("Cookie", c)]);
        assert!(r.body_str().contains("shop-content"), "{c}: {}", r.head());
        assert!(r.header("set-cookie").is_none(), "fresh cookie renewed");
    }
    let st = status_json(&s);
    assert_eq!(json_field(&st, "admitted"), 2, "{st}");
    assert_eq!(json_field(&st, "wrong_path"), 1, "{st}");
}

#[test]
fn tampered_tokens_and_cookies_are_queued_anew_and_json_form() {
    let dir = TempDir::new("wr-tamper");
    let s = start(dir, "admit_rate=12/m max_active=1000 session=10m");
    let a = s.request("/shop/x", &[]);
    let cookie_a = cookie(&a);
    let j = s.request("/shop/x", &[("Accept", "application/json")]);
    assert_eq!(j.status, 200);
    assert!(j
        .header("content-type")
        .is_some_and(|c| c.contains("application/json")));
    assert!(j
        .header("cache-control")
        .is_some_and(|c| c.contains("no-store")));
    assert_eq!(json_field(j.body_str(), "position"), 1, "{}", j.body_str());
    let wait = json_field(j.body_str(), "wait_s");
    assert!((4..=5).contains(&wait), "{}", j.body_str());
    assert!(
        j.body_str().contains("\"retry_url\":\"/shop/x?sluice_wr="),
        "{}",
        j.body_str()
    );
    let url = j.body_str().split("\"retry_url\":\"").nth(1).unwrap();
    let url = url.split('"').next().unwrap().to_string();
    // Wait past the slot, then tamper: never admitted, a new place instead.
    std::thread::sleep(Duration::from_millis(5200));
    let n = url.len();
    let swap = if &url[n - 2..] == "AA" { "BB" } else { "AA" };
    let bad = format!("{}{swap}", &url[..n - 2]);
    let r = s.request(&bad, &[]);
    assert!(
        is_wait_page(&r) && r.status != 302,
        "tampered: {}",
        r.head()
    );
    assert_ne!(retry_url(&r), bad, "a tampered ticket is replaced");
    // A forged cookie is not a session either.
    let forged = format!("{}xyz", &cookie_a[..cookie_a.len() - 3]);
    let r = s.request("/shop/x", &[("Cookie", &forged)]);
    assert!(is_wait_page(&r), "forged cookie passed: {}", r.head());
    let st = status_json(&s);
    assert!(json_field(&st, "tampered") >= 2, "{st}");
    // The genuine ticket still admits.
    let ok = s.request(&url, &[]);
    assert_eq!(ok.status, 302, "{}", ok.head());
}

#[test]
fn session_cookie_expires_after_inactivity_and_max_active_holds_others() {
    let dir = TempDir::new("wr-session");
    let s = start(dir, "admit_rate=600/m max_active=1 session=2s");
    let a = s.request("/shop/x", &[]);
    let cookie_a = cookie(&a);
    // The slot is free but the only session is taken: wait.
    std::thread::sleep(Duration::from_millis(150));
    let b = s.request("/shop/x", &[]);
    assert!(is_wait_page(&b), "max_active ignored: {}", b.head());
    assert!(s
        .request("/shop/x", &[("Cookie", &cookie_a)])
        .body_str()
        .contains("shop-content"));
    // Idle past `session`: the cookie is refused and its session freed.
    std::thread::sleep(Duration::from_millis(2400));
    let r = s.request("/shop/x", &[("Cookie", &cookie_a)]);
    let fresh = r.header("set-cookie");
    assert!(
        is_wait_page(&r) || fresh.is_some(),
        "expired cookie still a session: {}",
        r.head()
    );
    assert!(json_field(&status_json(&s), "expired") >= 1);
    // The freed session admits someone new (B's ticket, or a new arrival).
    let url = retry_url(&b);
    std::thread::sleep(Duration::from_millis(2400));
    let ok = s.request(&url, &[]);
    assert_eq!(ok.status, 302, "{}", ok.head());
}

#[test]
fn reject_mode_answers_503_with_retry_after() {
    let dir = TempDir::new("wr-reject");
    let s = start(dir, "admit_rate=6/m max_active=100 session=10m mode=reject");
    let a = s.request("/shop/x", &[]);
    assert!(a.body_str().contains("shop-content"));
    let b = s.request("/shop/x", &[]);
    assert_eq!(b.status, 503, "{}", b.head());
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
    let mut s = start(dir, "admit_rate=6/m max_active=1000 session=10m");
    let json = [("Accept", "application/json")];
    let a = s.request("/shop/x", &[]);
    assert!(a.body_str().contains("shop-content"));
    let cookie_a = cookie(&a);
    let b = s.request("/shop/x", &json);
    assert_eq!(json_field(b.body_str(), "position"), 1, "{}", b.body_str());
    let b_url = b.body_str().split("\"retry_url\":\"").nth(1).unwrap();
    let b_url = b_url.split('"').next().unwrap().to_string();
    // Rotate: a new key signs, the old one still verifies B's ticket.
    s.dir.write(
        "wr.key",
        "k2 fedcba9876543210fedcba9876543210\nk1 0123456789abcdef0123456789abcdef\n",
    );
    s.reload_and_drain();
    let c = s.request("/shop/x", &json);
    assert_eq!(
        json_field(c.body_str(), "position"),
        2,
        "reload lost the queue: {}",
        c.body_str()
    );
    assert!(json_field(c.body_str(), "wait_s") >= 15, "{}", c.body_str());
    s.quit();
    s.restart();
    let d = s.request("/shop/x", &json);
    assert_eq!(
        json_field(d.body_str(), "position"),
        3,
        "restart lost the queue: {}",
        d.body_str()
    );
    // B's ticket (old key) is still good after both, and still early; the
    // session admitted before the reload (old key) still passes.
    let r = s.request(&b_url, &json);
    assert_eq!(json_field(r.body_str(), "position"), 1, "{}", r.body_str());
    assert!(r.body_str().contains(&b_url), "{}", r.body_str());
    let r = s.request("/shop/x", &[("Cookie", &cookie_a)]);
    assert!(r.body_str().contains("shop-content"), "{}", r.head());
    // New tickets are signed with the new key ("k2").
    let tok = d.body_str().split("sluice_wr=").nth(1).unwrap();
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
    let page = dir.write(
        "page.html",
        "<html><head>{{refresh}}</head><body>Queue! #{{position}}, ~{{wait_s}}s \
         <a href=\"{{url}}\">go</a> {{unknown}}</body></html>",
    );
    let s = start_with(
        dir,
        "admit_rate=6/m max_active=100 session=10m",
        &format!("waiting_room_page {};", page.display()),
    );
    assert!(s
        .request("/shop/x", &[])
        .body_str()
        .contains("shop-content"));
    let r = s.request("/shop/x?a=1&b=2", &[]);
    assert!(
        r.body_str()
            .starts_with("<html><head><meta http-equiv=\"refresh\" content=\""),
        "{}",
        r.body_str()
    );
    assert!(r.body_str().contains("Queue! #1, ~10s"), "{}", r.body_str());
    assert!(
        r.body_str()
            .contains("href=\"/shop/x?a=1&amp;b=2&amp;sluice_wr="),
        "{}",
        r.body_str()
    );
    assert!(r.body_str().contains("{{unknown}}"), "{}", r.body_str());
    assert!(retry_url(&r).starts_with("/shop/x?a=1&b=2&sluice_wr="));
    let text = s.request("/status", &[]).text();
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
    format!(
        "waiting_room_zone app:64k admit_rate=6/m max_active=10 session=10m;\n\
         waiting_room_secret {};\n{extra}",
        write_key(dir).display()
    )
}

#[test]
fn proxied_location_admits_with_its_cookie_on_the_proxied_response() {
    // Regression: admission answered a proxied request with a 307 to the
    // same URL only to set its cookie.
    let dir = TempDir::new("wr-proxy");
    dir.write("www/app/x", "app-content\n");
    let origin = free_port();
    let http = room_http(
        &dir,
        &format!(
            "server {{ listen 127.0.0.1:{origin}; root {}/www; }}",
            dir.path().display()
        ),
    );
    let s = Server::start_in(
        dir,
        Conf::new().workers(1).http(&http).server(&format!(
            "location /app/ {{ waiting_room app; proxy_pass http://127.0.0.1:{origin}; \
             add_header X-Room on; }}"
        )),
    );
    let r = s.request("/app/x?k=v", &[]);
    assert_eq!(r.status, 200, "{}", r.head());
    assert!(r.body_str().contains("app-content"), "{}", r.body_str());
    assert_eq!(r.header("x-room"), Some("on"), "{}", r.head());
    let c = cookie(&r);
    let ok = s.request("/app/x?k=v", &[("Cookie", &c)]);
    assert_eq!(ok.status, 200, "{}", ok.head());
    assert!(ok.body_str().contains("app-content"), "{}", ok.body_str());
    assert_eq!(
        ok.header("set-cookie"),
        None,
        "a fresh session is not renewed"
    );
    // The next new user waits; nothing reaches the origin for them.
    assert!(s.request("/app/x", &[]).body_str().contains("sluice_wr="));
}

#[test]
fn a_post_admitted_on_a_proxied_location_reaches_the_origin_once() {
    let dir = TempDir::new("wr-post");
    let origin = Origin::start(|_| {
        vec![
            Step::Write(http_response(200, "Connection: close\r\n", b"ok")),
            Step::Close,
        ]
    });
    let http = room_http(&dir, "");
    let s = Server::start_in(
        dir,
        Conf::new().workers(1).http(&http).server(&format!(
            "location /app/ {{ waiting_room app; proxy_pass http://{}; }}",
            origin.addr()
        )),
    );
    let got = s.exchange(
        b"POST /app/form HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhello-body",
    );
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("Set-Cookie: sluice_wr_app="), "{text}");
    assert!(text.ends_with("ok"), "{text}");
    assert!(
        origin.wait_requests(1, Duration::from_secs(5)),
        "the POST never reached the origin"
    );
    // One request, with its body, and no second one a while later.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        origin.only_request().body,
        b"hello-body",
        "the POST reached the origin twice"
    );
}

#[test]
fn a_request_held_by_limit_req_keeps_the_cookie_it_was_admitted_with() {
    // Regression: the waiting room admitted the request (a session was
    // counted), limit_req delayed it, and the dispatch after the delay
    // skipped the room: the response went out without its Set-Cookie.
    let dir = TempDir::new("wr-delay");
    dir.write("www/app/x", "app-content\n");
    let http = format!(
        "{}limit_req_zone $binary_remote_addr zone=slow:1m rate=4r/s;",
        room_http(&dir, "").replace("admit_rate=6/m", "admit_rate=6000/m")
    );
    let s = Server::start_in(
        dir,
        Conf::new()
            .workers(1)
            .http(&http)
            .server("location /app/ { waiting_room app; limit_req zone=slow burst=5; }"),
    );
    let first = s.request("/app/x", &[]);
    assert_eq!(first.status, 200, "{}", first.head());
    cookie(&first);
    // Past the room's next slot (10 ms at 6000/m), within limit_req's
    // 250 ms: admitted at once, then held by the limit.
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let held = s.request("/app/x", &[]);
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "the second request was not delayed: {} {}",
        held.head(),
        held.body_str()
    );
    assert_eq!(held.status, 200, "{}", held.head());
    assert!(held.body_str().contains("app-content"));
    cookie(&held);
}
