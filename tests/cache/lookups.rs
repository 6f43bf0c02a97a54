//! Lookups: request Cache-Control (no-cache, max-age, min-fresh, max-stale,
//! only-if-cached), Vary variants, HEAD from a cached GET, client
//! conditionals answered from the cache, POST bypass, damaged entry files,
//! and the header fields of a hit.

use std::fs;
use std::thread::sleep;
use std::time::Duration;

use crate::common::{http_date, Client};
use crate::origin::{unix_now, Canned};
use crate::support::*;

#[test]
fn request_no_cache_goes_to_the_origin_and_refreshes_the_entry() {
    let h = Harness::start("");
    h.origin
        .route_fn("/nc", |r| Canned::ok(format!("v{}", r.n)).cc("max-age=600"));
    assert_served(&h.get("/nc"), "MISS", "v1");
    let p = h.wait_stored("/nc");
    assert_served(&h.get("/nc"), "HIT", "v1");
    let r = h.get_with("/nc", &[("Cache-Control", "no-cache")]);
    assert_eq!((r.status, r.text().as_str()), (200, "v2"));
    assert_ne!(cache_status(&r), "HIT");
    assert_eq!(h.origin.count("/nc"), 2);
    // HTTP/1.0's Pragma: no-cache counts when there is no Cache-Control.
    let r = h.get_with("/nc", &[("Pragma", "no-cache")]);
    assert_eq!(r.text(), "v3", "Pragma: no-cache");
    assert_eq!(h.origin.count("/nc"), 3);
    let r = h.get_with(
        "/nc",
        &[("Pragma", "no-cache"), ("Cache-Control", "max-age=600")],
    );
    assert_ne!(
        r.text(),
        "v4",
        "Pragma must be ignored next to Cache-Control"
    );
    // The refetched response replaced the entry on disk.
    crate::common::wait_for(FILL_TIMEOUT, || {
        let f = fs::read(&p).unwrap_or_default();
        f.ends_with(b"v3").then_some(())
    })
    .expect("entry file not refreshed to v3");
}

#[test]
fn refetched_entry_is_used_at_once_by_the_worker_that_stored_it() {
    use std::os::unix::fs::MetadataExt;
    let h = Harness::start("");
    // Only the first response expires quickly; no Date, so no apparent age.
    h.origin.route_fn("/re", |r| {
        let cc = if r.n == 1 { "max-age=1" } else { "max-age=600" };
        Canned::ok(format!("v{}", r.n)).cc(cc).no_date()
    });
    assert_served(&h.get("/re"), "MISS", "v1");
    let p = h.wait_stored("/re");
    let ino = fs::metadata(&p).unwrap().ino();
    sleep(Duration::from_millis(1200));
    assert_served(&h.get("/re"), "EXPIRED", "v2");
    crate::common::wait_for(FILL_TIMEOUT, || {
        fs::metadata(&p).ok().filter(|m| m.ino() != ino).map(|_| ())
    })
    .expect("expired entry not replaced on disk");
    assert_served(&h.get("/re"), "HIT", "v2");
    assert_eq!(h.origin.count("/re"), 2);
    // The same after a refresh forced by the client.
    let ino = fs::metadata(&p).unwrap().ino();
    assert_served(
        &h.get_with("/re", &[("Cache-Control", "no-cache")]),
        "EXPIRED",
        "v3",
    );
    crate::common::wait_for(FILL_TIMEOUT, || {
        fs::metadata(&p).ok().filter(|m| m.ino() != ino).map(|_| ())
    })
    .expect("refreshed entry not replaced on disk");
    assert_served(&h.get("/re"), "HIT", "v3");
}

#[test]
fn request_max_age_and_min_fresh_limit_what_the_cache_may_serve() {
    let h = Harness::start("");
    // Age 10 on arrival, 50 s of freshness left.
    h.origin.route_fn("/lim", |r| {
        Canned::ok(format!("v{}", r.n))
            .cc("max-age=60")
            .header("Age", "10")
    });
    assert_served(&h.get("/lim"), "MISS", "v1");
    h.wait_stored("/lim");
    assert_served(
        &h.get_with("/lim", &[("Cache-Control", "max-age=30")]),
        "HIT",
        "v1",
    );
    assert_served(
        &h.get_with("/lim", &[("Cache-Control", "min-fresh=5")]),
        "HIT",
        "v1",
    );
    let r = h.get_with("/lim", &[("Cache-Control", "min-fresh=55")]);
    assert_eq!(r.text(), "v2", "min-fresh beyond the remaining life");
    assert_ne!(cache_status(&r), "HIT");
    let r = h.get_with("/lim", &[("Cache-Control", "max-age=5")]);
    assert_ne!(cache_status(&r), "HIT", "max-age below the entry's age");
    let r = h.get_with("/lim", &[("Cache-Control", "max-age=0")]);
    assert_ne!(cache_status(&r), "HIT", "max-age=0");
    assert_eq!(h.origin.count("/lim"), 4);
}

#[test]
fn a_fill_by_one_worker_is_seen_at_once_by_a_worker_that_found_the_key_absent() {
    // Both workers look the key up and remember it as absent; then one of
    // them stores it. The other must not answer from its memory of the
    // absence (that would be a second origin fetch): the writer bumps the
    // key's store sequence in shared memory.
    let h = Harness::start_workers(2, "");
    h.origin
        .route("/seen", Canned::ok("stored").cc("max-age=60"));
    for _ in 0..6 {
        let r = h.get_with("/seen", &[("Cache-Control", "only-if-cached")]);
        assert_eq!(r.status, 504);
    }
    assert_served(&h.get("/seen"), "MISS", "stored");
    h.wait_stored("/seen");
    for _ in 0..6 {
        assert_served(&h.get("/seen"), "HIT", "stored");
    }
    assert_eq!(h.origin.count("/seen"), 1);
}

#[test]
fn a_refresh_by_one_worker_replaces_the_copy_every_worker_holds_in_memory() {
    // Both workers hold v1 in memory (trusted for a second without a stat);
    // one of them refetches the key. Once the new file is in place, no
    // worker answers with its old copy: the store sequence moved.
    use std::os::unix::fs::MetadataExt;
    let h = Harness::start_workers(2, "");
    h.origin.route_fn("/mem", |r| {
        Canned::ok(format!("v{}", r.n)).cc("max-age=600")
    });
    assert_served(&h.get("/mem"), "MISS", "v1");
    let p = h.wait_stored("/mem");
    for _ in 0..6 {
        assert_served(&h.get("/mem"), "HIT", "v1");
    }
    let ino = fs::metadata(&p).unwrap().ino();
    let r = h.get_with("/mem", &[("Cache-Control", "no-cache")]);
    assert_eq!(r.text(), "v2");
    crate::common::wait_for(FILL_TIMEOUT, || {
        fs::metadata(&p).ok().filter(|m| m.ino() != ino).map(|_| ())
    })
    .expect("refreshed entry not replaced on disk");
    for _ in 0..6 {
        assert_served(&h.get("/mem"), "HIT", "v2");
    }
    assert_eq!(h.origin.count("/mem"), 2);
}

#[test]
fn only_if_cached_with_a_cold_key_is_504() {
    let h = Harness::start("");
    h.origin.route("/oic", Canned::ok("warm").cc("max-age=60"));
    h.origin.route(
        "/oicv",
        Canned::ok("variant").cc("max-age=60").header("Vary", "X-V"),
    );
    let r = h.get_with("/oic", &[("Cache-Control", "only-if-cached")]);
    assert_eq!(r.status, 504);
    assert_eq!(
        h.origin.count("/oic"),
        0,
        "only-if-cached reached the origin"
    );
    // A stored variant does not satisfy another one.
    assert_served(&h.get_with("/oicv", &[("X-V", "1")]), "MISS", "variant");
    h.wait_stored("/oicv");
    let r = h.get_with(
        "/oicv",
        &[("X-V", "2"), ("Cache-Control", "only-if-cached")],
    );
    assert_eq!(r.status, 504);
    assert_eq!(h.origin.count("/oicv"), 1);
}

#[test]
fn only_if_cached_with_a_warm_key_is_a_hit() {
    let h = Harness::start("");
    h.origin.route("/oic", Canned::ok("warm").cc("max-age=60"));
    assert_served(&h.get("/oic"), "MISS", "warm");
    h.wait_stored("/oic");
    let r = h.get_with("/oic", &[("Cache-Control", "only-if-cached")]);
    assert_served(&r, "HIT", "warm");
    assert_eq!(h.origin.count("/oic"), 1);
}

#[test]
fn max_stale_serves_an_expired_entry_as_stale() {
    let h = Harness::start("");
    h.origin
        .route_fn("/ms", |r| Canned::ok(format!("v{}", r.n)).cc("max-age=1"));
    h.origin.route_fn("/mr", |r| {
        Canned::ok(format!("m{}", r.n)).cc("max-age=1, must-revalidate")
    });
    assert_served(&h.get("/ms"), "MISS", "v1");
    assert_served(&h.get("/mr"), "MISS", "m1");
    h.wait_stored("/ms");
    h.wait_stored("/mr");
    sleep(Duration::from_millis(1200));
    let r = h.get_with("/ms", &[("Cache-Control", "max-stale=60")]);
    assert_served(&r, "STALE", "v1");
    assert!(age(&r) >= 1);
    assert_eq!(h.origin.count("/ms"), 1);
    let r = h.get_with("/ms", &[("Cache-Control", "max-stale")]);
    assert_served(&r, "STALE", "v1");
    // max-stale cannot override must-revalidate.
    let r = h.get_with("/mr", &[("Cache-Control", "max-stale=60")]);
    assert_eq!(r.text(), "m2");
    assert_ne!(cache_status(&r), "STALE");
    // only-if-cached with an expired entry and no max-stale: 504.
    let r = h.get_with("/ms", &[("Cache-Control", "only-if-cached")]);
    assert_eq!(r.status, 504);
    assert_eq!(h.origin.count("/ms"), 1);
}

#[test]
fn vary_variants_are_hits_each_with_their_own_body() {
    let h = Harness::start("");
    h.origin.route_fn("/v", |r| {
        let ae = r.header("accept-encoding").unwrap_or("none").to_string();
        Canned::ok(format!("body for {ae} #{}", r.n))
            .cc("max-age=60")
            .header("Vary", "Accept-Encoding")
    });
    let gz = [("Accept-Encoding", "gzip")];
    let id = [("Accept-Encoding", "identity")];
    assert_served(&h.get_with("/v", &gz), "MISS", "body for gzip #1");
    h.wait_entries(1);
    assert_served(&h.get_with("/v", &id), "MISS", "body for identity #2");
    h.wait_entries(2);
    assert_served(&h.get("/v"), "MISS", "body for none #3");
    h.wait_entries(3);
    for _ in 0..2 {
        assert_served(&h.get_with("/v", &gz), "HIT", "body for gzip #1");
        assert_served(&h.get_with("/v", &id), "HIT", "body for identity #2");
        assert_served(&h.get("/v"), "HIT", "body for none #3");
    }
    let r = h.get_with("/v", &[("Accept-Encoding", "br")]);
    assert_served(&r, "MISS", "body for br #4");
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(h.origin.count("/v"), 4);
}

#[test]
fn head_after_a_cached_get_is_a_hit_without_body() {
    let h = Harness::start("");
    h.origin.route(
        "/h",
        Canned::ok("0123456789")
            .cc("max-age=60")
            .header("ETag", "\"h1\""),
    );
    assert_served(&h.get("/h"), "MISS", "0123456789");
    h.wait_stored("/h");
    // HEAD then GET on one connection: a body after the HEAD head would
    // corrupt the GET's response.
    let mut c = Client::connect(h.srv.port);
    let r = request_on(&mut c, "HEAD", "/h", &[]);
    assert_eq!((r.status, cache_status(&r)), (200, "HIT"));
    assert_eq!(r.content_length(), Some(10));
    assert_eq!(r.header("etag"), Some("\"h1\""));
    let r = request_on(&mut c, "GET", "/h", &[]);
    assert_served(&r, "HIT", "0123456789");
    assert!(
        c.silent_for(Duration::from_millis(100)),
        "bytes after the GET"
    );
    assert_eq!(h.origin.count("/h"), 1);
}

#[test]
fn head_miss_does_not_poison_the_get() {
    let mut h = Harness::start("");
    h.origin.route_fn("/hf", |r| {
        Canned::ok(format!("full body {}", r.n)).cc("max-age=60")
    });
    let r = h.head("/hf");
    assert_eq!((r.status, cache_status(&r)), (200, "MISS"));
    assert!(r.body.is_empty());
    h.barrier();
    // Whether or not the HEAD filled the cache, a GET gets the whole body.
    let r = h.get("/hf");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("full body "), "GET after HEAD: {r:?}");
    assert_eq!(r.content_length(), Some(r.body.len()));
    let body = r.text();
    h.wait_stored("/hf");
    let r = h.get("/hf");
    assert_served(&r, "HIT", &body);
    assert_eq!(r.content_length(), Some(body.len()));
}

#[test]
fn head_miss_with_convert_head_off_is_sent_as_head_and_not_stored() {
    let mut h = Harness::start("            proxy_cache_convert_head off;");
    h.origin.route_fn("/hf", |r| {
        Canned::ok(format!("full body {}", r.n)).cc("max-age=60")
    });
    let r = h.head("/hf");
    assert_eq!((r.status, cache_status(&r)), (200, "MISS"));
    h.barrier();
    assert!(!h.entry_of("/hf").exists(), "a HEAD response was stored");
    assert_served(&h.get("/hf"), "MISS", "full body 2");
    h.wait_stored("/hf");
    assert_served(&h.get("/hf"), "HIT", "full body 2");
    let methods: Vec<String> = h
        .origin
        .requests("/hf")
        .into_iter()
        .map(|r| r.method)
        .collect();
    assert_eq!(methods, ["HEAD", "GET"]);
}

#[test]
fn head_miss_with_convert_head_on_fills_the_cache_with_get() {
    let h = Harness::start("");
    h.origin.route_fn("/ch", |r| {
        Canned::ok(format!("converted {}", r.n)).cc("max-age=60")
    });
    let mut c = Client::connect(h.srv.port);
    let r = request_on(&mut c, "HEAD", "/ch", &[]);
    assert_eq!((r.status, cache_status(&r)), (200, "MISS"));
    // No body may follow the HEAD's head, though the origin sent one.
    assert!(c.silent_for(Duration::from_millis(200)), "body after HEAD");
    let methods: Vec<String> = h
        .origin
        .requests("/ch")
        .into_iter()
        .map(|r| r.method)
        .collect();
    assert_eq!(methods, ["GET"], "HEAD not converted to GET upstream");
    h.wait_stored("/ch");
    assert_served(&h.get("/ch"), "HIT", "converted 1");
    assert_eq!(h.origin.count("/ch"), 1);
}

#[test]
fn client_conditionals_are_answered_from_the_cache() {
    let h = Harness::start("");
    let lm = http_date(unix_now() - 3600);
    h.origin.route(
        "/c",
        Canned::ok("conditional")
            .cc("max-age=60")
            .header("ETag", "\"v1\"")
            .header("Last-Modified", &lm),
    );
    assert_served(&h.get("/c"), "MISS", "conditional");
    h.wait_stored("/c");
    let r = h.get_with("/c", &[("If-None-Match", "\"v1\"")]);
    assert_eq!(r.status, 304);
    assert_eq!(cache_status(&r), "HIT");
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert!(r.body.is_empty());
    let r = h.get_with("/c", &[("If-None-Match", "\"v0\", W/\"v1\"")]);
    assert_eq!(r.status, 304, "weak comparison");
    assert_served(
        &h.get_with("/c", &[("If-None-Match", "\"v2\"")]),
        "HIT",
        "conditional",
    );
    let r = h.get_with("/c", &[("If-Modified-Since", &http_date(unix_now()))]);
    assert_eq!(r.status, 304, "If-Modified-Since after Last-Modified");
    let r = h.get_with(
        "/c",
        &[("If-Modified-Since", &http_date(unix_now() - 7200))],
    );
    assert_served(&r, "HIT", "conditional");
    let r = h.get_with("/c", &[("If-Match", "\"nope\"")]);
    assert_eq!(r.status, 412);
    assert_eq!(h.origin.count("/c"), 1, "a conditional reached the origin");
}

#[test]
fn post_bypasses_the_cache_and_invalidates_the_stored_get() {
    let h = Harness::start("");
    h.origin.route_fn("/p", |r| {
        Canned::ok(format!("{} {}", r.method, r.n)).cc("max-age=60")
    });
    assert_served(&h.get("/p"), "MISS", "GET 1");
    h.wait_stored("/p");
    for n in [2, 3] {
        let mut c = Client::connect(h.srv.port);
        c.send(
            b"POST /p HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        );
        let r = c.read_response().unwrap();
        assert_served(&r, "BYPASS", &format!("POST {n}"));
    }
    assert_eq!(h.origin.requests("/p")[1].body, b"abc");
    // A successful POST invalidates the stored GET (RFC 9111 §4.4).
    assert_served(&h.get("/p"), "MISS", "GET 4");
}

/// Damage the entry file of `uri` with `f`.
fn damage(h: &Harness, uri: &str, f: impl FnOnce(&fs::File, u64)) {
    let p = h.entry_of(uri);
    let len = fs::metadata(&p).unwrap().len();
    let file = fs::OpenOptions::new().write(true).open(&p).unwrap();
    f(&file, len);
}

#[test]
fn damaged_entry_files_are_not_served() {
    use std::os::unix::fs::FileExt;
    let h = Harness::start("");
    for p in ["/trunc", "/zero", "/empty"] {
        h.origin.route_fn(p, move |r| {
            Canned::ok(format!("{p} body {}", r.n)).cc("max-age=600")
        });
        assert_served(&h.get(p), "MISS", &format!("{p} body 1"));
        h.wait_stored(p);
        assert_served(&h.get(p), "HIT", &format!("{p} body 1"));
    }
    damage(&h, "/trunc", |f, len| f.set_len(len - 3).unwrap());
    damage(&h, "/zero", |f, len| {
        f.write_all_at(&vec![0u8; len as usize], 0).unwrap()
    });
    damage(&h, "/empty", |f, _| f.set_len(0).unwrap());
    // Hot entries are trusted for 1 s, then checked with stat.
    sleep(Duration::from_millis(1150));
    for p in ["/trunc", "/zero", "/empty"] {
        let r = h.get(p);
        assert_served(&r, "MISS", &format!("{p} body 2"));
        assert_eq!(h.origin.count(p), 2, "{p}");
    }
}

#[test]
fn hit_has_one_date_and_one_server_field() {
    let h = Harness::start("");
    h.origin.route(
        "/hd",
        Canned::ok("hdr")
            .cc("max-age=600")
            .header("Server", "origin/1.0"),
    );
    let r = h.get("/hd");
    assert_eq!(r.header_count("date"), 1, "MISS {r:?}");
    assert_eq!(r.header_count("server"), 1, "MISS {r:?}");
    h.wait_stored("/hd");
    let r = h.get("/hd");
    assert_eq!(cache_status(&r), "HIT");
    assert_eq!(r.header_count("date"), 1, "HIT {r:?}");
    assert_eq!(r.header_count("server"), 1, "HIT {r:?}");
    assert_eq!(r.header_count("content-length"), 1);
    assert_eq!(r.header_count("x-cache-status"), 1);
}

#[test]
fn proxy_hide_header_applies_to_hits() {
    let h = Harness::start("            proxy_hide_header X-Internal;");
    h.origin.route(
        "/hide",
        Canned::ok("h")
            .cc("max-age=600")
            .header("X-Internal", "secret"),
    );
    let r = h.get("/hide");
    assert_eq!(r.header("x-internal"), None, "MISS {r:?}");
    h.wait_stored("/hide");
    let r = h.get("/hide");
    assert_eq!(cache_status(&r), "HIT");
    assert_eq!(r.header("x-internal"), None, "HIT {r:?}");
}

#[test]
fn keep_alive_connection_mixes_hits_and_misses() {
    let h = Harness::start("");
    h.origin.route("/k1", Canned::ok("one").cc("max-age=60"));
    h.origin.route("/k2", Canned::ok("two").cc("max-age=60"));
    let mut c = Client::connect(h.srv.port);
    assert_served(&request_on(&mut c, "GET", "/k1", &[]), "MISS", "one");
    h.wait_stored("/k1");
    for _ in 0..3 {
        assert_served(&request_on(&mut c, "GET", "/k1", &[]), "HIT", "one");
    }
    assert_served(&request_on(&mut c, "GET", "/k2", &[]), "MISS", "two");
    h.wait_stored("/k2");
    assert_served(&request_on(&mut c, "GET", "/k2", &[]), "HIT", "two");
    assert_served(&request_on(&mut c, "GET", "/k1", &[]), "HIT", "one");
}

#[test]
fn cached_204_is_a_hit_without_body() {
    let h = Harness::start("");
    h.origin
        .route("/nocontent", Canned::ok("").status(204).cc("max-age=60"));
    let r = h.get("/nocontent");
    assert_eq!((r.status, cache_status(&r)), (204, "MISS"));
    h.wait_stored("/nocontent");
    let mut c = Client::connect(h.srv.port);
    for _ in 0..2 {
        let r = request_on(&mut c, "GET", "/nocontent", &[]);
        assert_eq!((r.status, cache_status(&r)), (204, "HIT"));
        assert!(r.body.is_empty());
    }
    assert_eq!(h.origin.count("/nocontent"), 1);
}

#[test]
fn cached_204_has_no_content_length() {
    let h = Harness::start("");
    h.origin
        .route("/nocontent", Canned::ok("").status(204).cc("max-age=60"));
    let r = h.get("/nocontent");
    assert_eq!(r.header("content-length"), None, "MISS {r:?}");
    h.wait_stored("/nocontent");
    let r = h.get("/nocontent");
    assert_eq!((r.status, cache_status(&r)), (204, "HIT"));
    assert_eq!(r.header("content-length"), None, "HIT {r:?}");
}

#[test]
fn empty_200_is_cached_and_the_connection_goes_on() {
    let h = Harness::start("");
    h.origin.route("/empty", Canned::ok("").cc("max-age=60"));
    h.origin
        .route("/after", Canned::ok("after").cc("max-age=60"));
    let mut c = Client::connect(h.srv.port);
    let r = request_on(&mut c, "GET", "/empty", &[]);
    assert_served(&r, "MISS", "");
    assert_eq!(r.content_length(), Some(0));
    c.send(&request_bytes("GET", "/after", &[], false));
    let r = c
        .read_response()
        .expect("next request after an empty response");
    assert_served(&r, "MISS", "after");
    h.wait_stored("/empty");
    let r = h.get("/empty");
    assert_served(&r, "HIT", "");
    assert_eq!(r.content_length(), Some(0));
    assert_eq!(h.origin.count("/empty"), 1);
}
