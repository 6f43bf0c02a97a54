//! Filling the cache and hitting it: MISS then HIT, `Age`, the entry file
//! layout, freshness sources (max-age, s-maxage, Expires + Date,
//! `proxy_cache_valid`), responses that must not be stored, upstream
//! framings (chunked, close-delimited, truncated), a 1 MiB entry served from
//! disk, restarts, a stopped origin and cross-worker hits.

use std::fs;
use std::thread::sleep;
use std::time::Duration;

use crate::common::{http_date, pseudo_random_bytes, Client};
use crate::origin::{unix_now, Canned, Framing};
use crate::support::*;

#[test]
fn miss_then_hit_with_same_body_and_one_origin_request() {
    let h = Harness::start("");
    h.origin.route(
        "/a",
        Canned::ok("alpha")
            .cc("max-age=60")
            .header("X-Origin", "yes"),
    );
    let r = h.get("/a");
    assert_served(&r, "MISS", "alpha");
    assert_eq!(r.header("x-origin"), Some("yes"));
    h.wait_stored("/a");
    for _ in 0..3 {
        let r = h.get("/a");
        assert_served(&r, "HIT", "alpha");
        assert_eq!(r.header("x-origin"), Some("yes"), "stored headers replayed");
        assert_eq!(r.content_length(), Some(5));
    }
    assert_eq!(h.origin.count("/a"), 1);
}

#[test]
fn entry_file_is_at_md5_of_default_key_with_levels_1_2() {
    let h = Harness::start("");
    h.origin.route("/lay/out", Canned::ok("x").cc("max-age=60"));
    assert_served(&h.get("/lay/out?q=1"), "MISS", "x");
    // Default key: $scheme$proxy_host$request_uri.
    let p = entry_path(h.dir(), &h.default_key("/lay/out?q=1"));
    let files = h.wait_entries(1);
    assert_eq!(files, vec![p.clone()], "exactly one entry, at the md5 path");
    let hex = md5_hex(&h.default_key("/lay/out?q=1"));
    let rel = p
        .strip_prefix(h.dir())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(rel, format!("{}/{}/{hex}", &hex[31..], &hex[29..31]));
    assert_eq!(h.origin.requests("/lay/out")[0].target, "/lay/out?q=1");
    // Another query is another key.
    assert_served(&h.get("/lay/out?q=2"), "MISS", "x");
    assert_eq!(h.origin.count("/lay/out"), 2);
}

#[test]
fn custom_key_with_host_and_uri_ignores_the_query() {
    let h = Harness::start("            proxy_cache_key $host$uri;");
    h.origin
        .route_fn("/k", |r| Canned::ok(format!("n={}", r.n)).cc("max-age=60"));
    assert_served(&h.get("/k?a=1"), "MISS", "n=1");
    h.wait_entries(1);
    assert!(entry_path(h.dir(), "test/k").exists(), "key is $host$uri");
    assert_served(&h.get("/k?a=2"), "HIT", "n=1");
    // Another Host is another key.
    let mut c = Client::connect(h.srv.port);
    c.send(b"GET /k HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n");
    let r = c.read_response().unwrap();
    assert_served(&r, "MISS", "n=2");
    assert_eq!(h.origin.count("/k"), 2);
}

#[test]
fn key_variables_method_header_uri_and_args() {
    let h =
        Harness::start("            proxy_cache_key $request_method:$http_x_tenant:$uri:$args;");
    h.origin.route_fn("/t", |r| {
        let t = r.header("x-tenant").unwrap_or("-").to_string();
        Canned::ok(format!("{t}{}", r.n)).cc("max-age=60")
    });
    let a = [("X-Tenant", "a")];
    let b = [("X-Tenant", "b")];
    assert_served(&h.get_with("/t?x=1", &a), "MISS", "a1");
    assert_served(&h.get_with("/t?x=1", &b), "MISS", "b2");
    h.wait_entries(2);
    assert!(
        entry_path(h.dir(), "GET:a:/t:x=1").exists(),
        "{:?}",
        entry_files(h.dir())
    );
    assert!(entry_path(h.dir(), "GET:b:/t:x=1").exists());
    assert_served(&h.get_with("/t?x=1", &a), "HIT", "a1");
    assert_served(&h.get_with("/t?x=1", &b), "HIT", "b2");
    assert_served(&h.get_with("/t?x=2", &a), "MISS", "a3");
    assert_eq!(h.origin.count("/t"), 3);
}

#[test]
fn age_is_sent_on_hits_and_grows() {
    let h = Harness::start("");
    h.origin.route("/age", Canned::ok("aged").cc("max-age=60"));
    h.origin.route(
        "/age30",
        Canned::ok("old").cc("max-age=600").header("Age", "30"),
    );
    assert_served(&h.get("/age"), "MISS", "aged");
    assert_served(&h.get("/age30"), "MISS", "old");
    h.wait_stored("/age");
    h.wait_stored("/age30");
    let first = h.get("/age");
    assert_served(&first, "HIT", "aged");
    let a1 = age(&first);
    assert!(a1 <= 1, "fresh entry Age {a1}");
    let o1 = age(&h.get("/age30"));
    assert!((30..=32).contains(&o1), "origin Age 30 is kept: {o1}");
    sleep(Duration::from_millis(1100));
    let second = h.get("/age");
    assert_served(&second, "HIT", "aged");
    assert!(age(&second) > a1, "Age {} after {a1}", age(&second));
    assert_eq!(second.header_count("age"), 1);
    assert!(age(&h.get("/age30")) > o1);
    assert_eq!(h.origin.count("/age"), 1);
}

#[test]
fn max_age_1_expires_and_explicit_freshness_beats_proxy_cache_valid() {
    // proxy_cache_valid would keep it 1m; the origin's max-age=1 wins.
    let h = Harness::start("            proxy_cache_valid 200 1m;");
    h.origin.route_fn("/short", |r| {
        Canned::ok(format!("v{}", r.n)).cc("max-age=1").no_date()
    });
    // s-maxage beats max-age in both directions.
    h.origin
        .route("/smax-long", Canned::ok("sl").cc("max-age=1, s-maxage=60"));
    h.origin.route_fn("/smax-short", |r| {
        Canned::ok(format!("ss{}", r.n)).cc("s-maxage=1, max-age=60")
    });
    // Expires relative to the origin's Date.
    h.origin.route_fn("/expires", |_| {
        let now = unix_now();
        Canned::ok("exp")
            .header("Date", &http_date(now))
            .header("Expires", &http_date(now + 60))
    });
    h.origin.route_fn("/expires-short", |r| {
        let now = unix_now();
        Canned::ok(format!("es{}", r.n))
            .header("Date", &http_date(now))
            .header("Expires", &http_date(now + 1))
    });
    for p in [
        "/short",
        "/smax-long",
        "/smax-short",
        "/expires",
        "/expires-short",
    ] {
        assert_eq!(cache_status(&h.get(p)), "MISS", "{p}");
        h.wait_stored(p);
    }
    assert_served(&h.get("/expires"), "HIT", "exp");
    sleep(Duration::from_millis(1200));
    assert_served(&h.get("/short"), "EXPIRED", "v2");
    assert_eq!(h.origin.count("/short"), 2);
    assert_served(&h.get("/smax-long"), "HIT", "sl");
    assert_served(&h.get("/smax-short"), "EXPIRED", "ss2");
    assert_served(&h.get("/expires"), "HIT", "exp");
    assert_served(&h.get("/expires-short"), "EXPIRED", "es2");
    assert_eq!(h.origin.count("/smax-long"), 1);
    assert_eq!(h.origin.count("/expires"), 1);
}

#[test]
fn expires_in_the_past_is_not_served_from_cache() {
    let mut h = Harness::start("");
    h.origin.route_fn("/past", |r| {
        let now = unix_now();
        Canned::ok(format!("p{}", r.n))
            .header("Date", &http_date(now))
            .header("Expires", &http_date(now - 3600))
    });
    assert_served(&h.get("/past"), "MISS", "p1");
    h.barrier();
    let r = h.get("/past");
    assert_ne!(cache_status(&r), "HIT");
    assert_eq!(r.text(), "p2");
    assert_eq!(h.origin.count("/past"), 2);
}

#[test]
fn no_explicit_freshness_is_stored_only_with_proxy_cache_valid() {
    let mut h = Harness::start("");
    h.origin
        .route_fn("/plain", |r| Canned::ok(format!("p{}", r.n)));
    assert_served(&h.get("/plain"), "MISS", "p1");
    h.barrier();
    assert!(!h.entry_of("/plain").exists(), "stored without freshness");
    assert_served(&h.get("/plain"), "MISS", "p2");
    drop(h);

    let mut h = Harness::start("            proxy_cache_valid 200 1m;");
    h.origin
        .route_fn("/plain", |r| Canned::ok(format!("p{}", r.n)));
    h.origin
        .route_fn("/missing", |r| Canned::ok(format!("m{}", r.n)).status(404));
    assert_served(&h.get("/plain"), "MISS", "p1");
    h.wait_stored("/plain");
    assert_served(&h.get("/plain"), "HIT", "p1");
    // 404 is not listed in `proxy_cache_valid 200 1m`.
    assert_eq!(h.get("/missing").status, 404);
    h.barrier();
    let r = h.get("/missing");
    assert_eq!(
        (r.status, cache_status(&r), r.text().as_str()),
        (404, "MISS", "m2")
    );
}

#[test]
fn proxy_cache_valid_any_and_specific_codes() {
    let h = Harness::start(
        "            proxy_cache_valid 404 1m;\n            proxy_cache_valid any 1m;",
    );
    h.origin
        .route_fn("/nf", |r| Canned::ok(format!("nf{}", r.n)).status(404));
    h.origin
        .route_fn("/err", |r| Canned::ok(format!("e{}", r.n)).status(500));
    assert_eq!(h.get("/nf").status, 404);
    assert_eq!(h.get("/err").status, 500);
    h.wait_stored("/nf");
    h.wait_stored("/err");
    let r = h.get("/nf");
    assert_eq!(
        (r.status, cache_status(&r), r.text().as_str()),
        (404, "HIT", "nf1")
    );
    let r = h.get("/err");
    assert_eq!(
        (r.status, cache_status(&r), r.text().as_str()),
        (500, "HIT", "e1")
    );
}

/// Each response is fetched twice with a fill barrier between: the second
/// must reach the origin again and no entry may exist.
#[track_caller]
fn assert_never_stored(h: &mut Harness, uri: &str, headers: &[(&str, &str)]) {
    let r = h.get_with(uri, headers);
    assert_eq!(r.status, 200, "{uri}");
    assert_eq!(cache_status(&r), "MISS", "{uri}");
    h.barrier();
    assert!(!h.entry_of(uri).exists(), "{uri} was stored");
    let r = h.get_with(uri, headers);
    assert_eq!(cache_status(&r), "MISS", "{uri} second time");
    assert_eq!(h.origin.count(uri), 2, "{uri} origin requests");
}

#[test]
fn no_store_private_set_cookie_and_authorization_are_never_hits() {
    let mut h = Harness::start("            proxy_cache_valid 200 1m;");
    h.origin
        .route("/nostore", Canned::ok("ns").cc("no-store, max-age=60"));
    h.origin
        .route("/private", Canned::ok("pv").cc("private, max-age=60"));
    h.origin.route(
        "/cookie",
        Canned::ok("ck")
            .cc("max-age=60")
            .header("Set-Cookie", "sid=1"),
    );
    h.origin.route("/auth", Canned::ok("au").cc("max-age=60"));
    h.origin
        .route("/reqnostore", Canned::ok("rn").cc("max-age=60"));
    assert_never_stored(&mut h, "/nostore", &[]);
    assert_never_stored(&mut h, "/private", &[]);
    assert_never_stored(&mut h, "/cookie", &[]);
    assert_never_stored(&mut h, "/auth", &[("Authorization", "Basic dTpw")]);
    assert_never_stored(&mut h, "/reqnostore", &[("Cache-Control", "no-store")]);
    assert_eq!(h.get("/cookie").header("set-cookie"), Some("sid=1"));
}

#[test]
fn ignored_set_cookie_is_stored_but_the_cookie_is_not_replayed() {
    let h = Harness::start("            proxy_ignore_headers Set-Cookie;");
    h.origin.route(
        "/ck",
        Canned::ok("cookie body")
            .cc("max-age=60")
            .header("Set-Cookie", "sid=secret")
            .header("X-Kept", "1"),
    );
    let r = h.get("/ck");
    assert_served(&r, "MISS", "cookie body");
    assert_eq!(
        r.header("set-cookie"),
        Some("sid=secret"),
        "the filler gets it"
    );
    h.wait_stored("/ck");
    let r = h.get("/ck");
    assert_served(&r, "HIT", "cookie body");
    assert_eq!(r.header("set-cookie"), None, "cookie replayed: {r:?}");
    assert_eq!(r.header("x-kept"), Some("1"));
    let file = fs::read(h.entry_of("/ck")).unwrap();
    assert!(
        !file.windows(6).any(|w| w == b"secret"),
        "the cookie is in the entry file"
    );
    assert_eq!(h.origin.count("/ck"), 1);
}

#[test]
fn truncated_upstream_body_is_not_stored() {
    let mut h = Harness::start("");
    h.origin.route(
        "/cut",
        Canned::ok(vec![b'c'; 1000])
            .cc("max-age=60")
            .framing(Framing::Truncated(400)),
    );
    let mut c = Client::connect(h.srv.port);
    c.send(&request_bytes("GET", "/cut", &[], true));
    // The client gets a head and a cut body (or nothing): never a full one.
    assert!(c.read_response().is_err(), "a truncated body was completed");
    h.barrier();
    assert!(!h.entry_of("/cut").exists(), "truncated entry published");
    assert!(
        entry_files(h.dir()).len() == 1,
        "{:?}",
        entry_files(h.dir())
    );
    let mut c = Client::connect(h.srv.port);
    c.send(&request_bytes("GET", "/cut", &[], true));
    assert!(c.read_response().is_err());
    assert_eq!(h.origin.count("/cut"), 2);
}

#[test]
fn chunked_and_close_delimited_responses_are_stored_with_a_length() {
    let h = Harness::start("");
    let body = pseudo_random_bytes(5000, 7);
    h.origin.route(
        "/chunked",
        Canned::ok(body.clone())
            .cc("max-age=60")
            .framing(Framing::Chunked),
    );
    h.origin.route(
        "/close",
        Canned::ok(body.clone())
            .cc("max-age=60")
            .framing(Framing::Close),
    );
    for p in ["/chunked", "/close"] {
        // HTTP/1.0: the MISS is close-delimited, readable by the test client.
        let mut c = Client::connect(h.srv.port);
        c.send(format!("GET {p} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes());
        let r = c.read_response().unwrap();
        assert_eq!((r.status, cache_status(&r)), (200, "MISS"), "{p}");
        assert_eq!(r.body, body, "{p} MISS body");
        h.wait_stored(p);
        let r = h.get(p);
        assert_eq!(cache_status(&r), "HIT", "{p}");
        assert_eq!(r.content_length(), Some(body.len()), "{p}");
        assert_eq!(r.body, body, "{p} HIT body");
        assert_eq!(h.origin.count(p), 1);
    }
}

#[test]
fn large_entry_is_served_byte_exact_from_disk() {
    let h = Harness::start("");
    let body = pseudo_random_bytes(1 << 20, 0xb16);
    h.origin
        .route("/big", Canned::ok(body.clone()).cc("max-age=60"));
    let r = h.get("/big");
    assert_eq!(cache_status(&r), "MISS");
    assert!(r.body == body, "MISS body differs");
    let p = h.wait_stored("/big");
    assert!(fs::metadata(&p).unwrap().len() > 1 << 20);
    for _ in 0..2 {
        let mut c = Client::connect_small_rcvbuf(h.srv.port);
        c.send(&request_bytes("GET", "/big", &[], true));
        let r = c.read_response().unwrap();
        assert_eq!(cache_status(&r), "HIT");
        assert_eq!(r.content_length(), Some(1 << 20));
        assert!(r.body == body, "HIT body differs");
    }
    let r = h.head("/big");
    assert_eq!(
        (cache_status(&r), r.content_length()),
        ("HIT", Some(1 << 20))
    );
    assert!(r.body.is_empty());
    // Disk entries are not kept in memory: a damaged file is noticed at once.
    let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(4096).unwrap();
    drop(f);
    let r = h.get("/big");
    assert_eq!(cache_status(&r), "MISS");
    assert!(r.body == body);
    assert_eq!(h.origin.count("/big"), 2);
}

#[test]
fn entries_survive_a_restart() {
    let mut h = Harness::start("");
    h.origin.route_fn("/keep", |r| {
        Canned::ok(format!("k{}", r.n)).cc("max-age=600")
    });
    assert_served(&h.get("/keep"), "MISS", "k1");
    h.wait_stored("/keep");
    h.restart();
    assert_served(&h.get("/keep"), "HIT", "k1");
    assert_eq!(h.origin.count("/keep"), 1);
}

#[test]
fn fresh_entry_is_a_hit_while_the_origin_is_down() {
    let mut h = Harness::start("");
    h.origin
        .route("/up", Canned::ok("still here").cc("max-age=600"));
    assert_served(&h.get("/up"), "MISS", "still here");
    h.wait_stored("/up");
    h.origin.stop();
    assert!(crate::common::port_refuses(h.origin.port));
    // Past the hot entry's 1 s trust: the file is checked again, not the origin.
    assert_served(&h.get("/up"), "HIT", "still here");
    sleep(Duration::from_millis(1100));
    assert_served(&h.get("/up"), "HIT", "still here");
    assert_eq!(h.get("/never-cached").status, 502, "origin really down");
}

#[test]
fn entry_filled_by_one_worker_is_a_hit_in_the_other() {
    let h = Harness::start_workers(2, "");
    h.origin
        .route("/shared", Canned::ok("both").cc("max-age=600"));
    let workers = h.srv.wait_worker_count(2, Duration::from_secs(10));
    let mut filler = Client::connect(h.srv.port);
    assert_served(
        &request_on(&mut filler, "GET", "/shared", &[]),
        "MISS",
        "both",
    );
    let fill_worker = serving_worker(&filler, h.srv.port, &workers);
    h.wait_stored("/shared");
    let mut served_by = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let mut c = Client::connect(h.srv.port);
        assert_served(&request_on(&mut c, "GET", "/shared", &[]), "HIT", "both");
        served_by.push(serving_worker(&c, h.srv.port, &workers));
        clients.push(c); // keep them open so the next goes elsewhere
    }
    assert_eq!(h.origin.count("/shared"), 1);
    assert!(fill_worker.is_some(), "filling worker not found in /proc");
    assert!(
        served_by.iter().any(|w| w.is_some() && *w != fill_worker),
        "no HIT from the worker that did not fill ({fill_worker:?}): {served_by:?}"
    );
}

#[test]
fn min_uses_stores_on_the_nth_request_counted_across_workers() {
    // Each request is a new connection; the master deals them to both
    // workers in turn, so the count must live in shared memory.
    let h = Harness::start_workers(2, "proxy_cache_min_uses 3;");
    h.origin
        .route_fn("/m", |r| Canned::ok(format!("v{}", r.n)).cc("max-age=60"));
    assert_served(&h.get("/m"), "MISS", "v1");
    assert_served(&h.get("/m"), "MISS", "v2");
    // Not stored after two uses.
    sleep(Duration::from_millis(300));
    assert!(!h.entry_of("/m").exists(), "stored before min_uses");
    // The third use stores it; later requests, on either worker, are hits.
    assert_served(&h.get("/m"), "MISS", "v3");
    h.wait_stored("/m");
    for _ in 0..4 {
        assert_served(&h.get("/m"), "HIT", "v3");
    }
    assert_eq!(h.origin.count("/m"), 3);
    // Another key starts its own count.
    h.origin.route("/other", Canned::ok("o").cc("max-age=60"));
    assert_served(&h.get("/other"), "MISS", "o");
    sleep(Duration::from_millis(300));
    assert!(!h.entry_of("/other").exists());
}
