//! The cache keeping itself up to date: one fill per key under
//! `proxy_cache_lock`, conditional revalidation (304 → REVALIDATED), stale
//! answers when the origin fails (`proxy_cache_use_stale`) and while another
//! request refreshes the entry (UPDATING).

use crate::origin::Canned;
use crate::support::{assert_served, cache_status, request, Harness};
use std::time::Duration;

#[test]
fn cache_lock_lets_one_request_fill_a_cold_key() {
    let h = Harness::start_workers(2, "proxy_cache_lock on; proxy_cache_lock_timeout 10s;");
    h.origin.route_fn("/cold", |r| {
        std::thread::sleep(Duration::from_millis(300));
        Canned::ok(format!("fill {}", r.n)).cc("max-age=60")
    });
    let port = h.srv.port;
    let handles: Vec<_> = (0..100)
        .map(|_| std::thread::spawn(move || request(port, "GET", "/cold", &[])))
        .collect();
    let rs: Vec<_> = handles.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(h.origin.count("/cold"), 1, "one request reached the origin");
    for r in &rs {
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "fill 1");
    }
    let misses = rs.iter().filter(|r| cache_status(r) == "MISS").count();
    assert_eq!(misses, 1, "exactly one MISS, the others HIT after the fill");
}

#[test]
fn requests_arriving_as_the_fill_publishes_do_not_fill_again() {
    // Requests keep arriving on both workers before, during and after the
    // fill is published: a worker that remembered the key as absent, or
    // stat'ed it just before the rename, must still not fetch it again once
    // the lock is free (it looks again under the lock).
    let h = Harness::start_workers(2, "proxy_cache_lock on; proxy_cache_lock_timeout 10s;");
    h.origin.route_fn("/wave", |r| {
        std::thread::sleep(Duration::from_millis(150));
        Canned::ok(format!("fill {}", r.n)).cc("max-age=60")
    });
    let port = h.srv.port;
    let mut handles = Vec::new();
    for _ in 0..40 {
        for _ in 0..4 {
            handles.push(std::thread::spawn(move || {
                request(port, "GET", "/wave", &[])
            }));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for t in handles {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "fill 1");
    }
    assert_eq!(h.origin.count("/wave"), 1, "one request reached the origin");
}

#[test]
fn the_fill_lock_holds_across_a_reload() {
    // The old generation is filling when SIGHUP starts the new one: a new
    // worker's request for the key waits for that fill (the lock table is
    // shared memory mapped by the master) instead of fetching it again.
    let h = Harness::start("proxy_cache_lock on; proxy_cache_lock_timeout 10s;");
    h.origin.route_fn("/slow", |r| {
        std::thread::sleep(Duration::from_millis(1500));
        Canned::ok(format!("fill {}", r.n)).cc("max-age=60")
    });
    let port = h.srv.port;
    let first = std::thread::spawn(move || request(port, "GET", "/slow", &[]));
    let t0 = std::time::Instant::now();
    while h.origin.count("/slow") == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the fill never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    h.srv.reload();
    let second = std::thread::spawn(move || request(port, "GET", "/slow", &[]));
    assert_served(&first.join().unwrap(), "MISS", "fill 1");
    // The old worker exits once its fill is published (not before: that
    // would lose the entry and leave the lock held for lock_age).
    let second = second.join().unwrap();
    assert_served(&second, "HIT", "fill 1");
    assert_eq!(h.origin.count("/slow"), 1);
}

#[test]
fn expired_entry_is_revalidated_with_the_origin() {
    let h = Harness::start("");
    h.origin.route_fn("/r", |r| {
        if r.header("if-none-match") == Some("\"v1\"") {
            Canned::ok("")
                .status(304)
                .header("ETag", "\"v1\"")
                .cc("max-age=1")
        } else {
            Canned::ok("body v1")
                .header("ETag", "\"v1\"")
                .cc("max-age=1")
        }
    });
    assert_served(&h.get("/r"), "MISS", "body v1");
    h.wait_stored("/r");
    std::thread::sleep(Duration::from_millis(1200));
    assert_served(&h.get("/r"), "REVALIDATED", "body v1");
    let reqs = h.origin.requests("/r");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].header("if-none-match"), Some("\"v1\""));
    // The merged entry is fresh again: a HIT without the origin.
    assert_served(&h.get("/r"), "HIT", "body v1");
    assert_eq!(h.origin.count("/r"), 2);
}

#[test]
fn stale_entry_answers_when_the_origin_fails() {
    let mut h = Harness::start("proxy_cache_use_stale error timeout http_500;");
    h.origin.route_fn("/s", |r| {
        if r.n == 1 {
            Canned::ok("good").cc("max-age=1")
        } else {
            Canned::ok("broken").status(500)
        }
    });
    assert_served(&h.get("/s"), "MISS", "good");
    h.wait_stored("/s");
    std::thread::sleep(Duration::from_millis(1200));
    // The origin answers 500: the stale copy is served instead.
    assert_served(&h.get("/s"), "STALE", "good");
    // The origin is gone: still the stale copy.
    h.origin.stop();
    assert_served(&h.get("/s"), "STALE", "good");
}

#[test]
fn without_use_stale_an_origin_error_is_a_502() {
    let mut h = Harness::start("");
    h.origin.route("/e", Canned::ok("good").cc("max-age=1"));
    assert_served(&h.get("/e"), "MISS", "good");
    h.wait_stored("/e");
    std::thread::sleep(Duration::from_millis(1200));
    h.origin.stop();
    assert_eq!(h.get("/e").status, 502);
}

#[test]
fn stale_copy_answers_while_another_request_refreshes() {
    let h = Harness::start_workers(2, "proxy_cache_lock on; proxy_cache_use_stale updating;");
    h.origin.route_fn("/u", |r| {
        if r.n > 1 {
            std::thread::sleep(Duration::from_millis(800));
        }
        Canned::ok(format!("v{}", r.n)).cc("max-age=1")
    });
    assert_served(&h.get("/u"), "MISS", "v1");
    h.wait_stored("/u");
    std::thread::sleep(Duration::from_millis(1200));
    let port = h.srv.port;
    let refresher = std::thread::spawn(move || request(port, "GET", "/u", &[]));
    std::thread::sleep(Duration::from_millis(200));
    // While the refresh holds the lock, the stale copy answers at once.
    let r = h.get("/u");
    assert_served(&r, "UPDATING", "v1");
    let refreshed = refresher.join().unwrap();
    assert_served(&refreshed, "EXPIRED", "v2");
    assert_eq!(h.origin.count("/u"), 2);
}

#[test]
fn bypass_skips_the_cache_and_no_cache_skips_storing() {
    let h = Harness::start("proxy_cache_bypass $arg_fresh; proxy_no_cache $http_x_nostore;");
    h.origin
        .route_fn("/b", |r| Canned::ok(format!("b{}", r.n)).cc("max-age=60"));
    // Not stored: the request said X-NoStore.
    let r = crate::support::request(h.srv.port, "GET", "/b", &[("X-NoStore", "1")]);
    assert_served(&r, "MISS", "b1");
    assert_served(&h.get("/b"), "MISS", "b2");
    h.wait_stored("/b");
    assert_served(&h.get("/b"), "HIT", "b2");
    // ?fresh=1 goes to the origin (BYPASS) and refreshes the entry; ?fresh=0 does not bypass.
    assert_served(&h.get("/b?fresh=1"), "BYPASS", "b3");
    assert_eq!(cache_status(&h.get("/b?fresh=0")), "MISS");
}

#[test]
fn background_update_answers_stale_at_once_and_refreshes_behind() {
    let h = Harness::start("proxy_cache_background_update on; proxy_cache_use_stale updating;");
    h.origin.route_fn("/bg", |r| {
        if r.n > 1 {
            std::thread::sleep(Duration::from_millis(600));
        }
        // The refreshed copy stays fresh, so a slow (shared) machine still
        // sees it as a HIT before it could expire again.
        Canned::ok(format!("v{}", r.n)).cc(if r.n > 1 { "max-age=60" } else { "max-age=1" })
    });
    assert_served(&h.get("/bg"), "MISS", "v1");
    h.wait_stored("/bg");
    std::thread::sleep(Duration::from_millis(1200));
    // Expired: the stale copy answers at once, without waiting for the origin.
    let t = std::time::Instant::now();
    assert_served(&h.get("/bg"), "UPDATING", "v1");
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "waited {:?}",
        t.elapsed()
    );
    // The refresh lands in the background.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = h.get("/bg");
        if r.text() == "v2" {
            assert_eq!(cache_status(&r), "HIT");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no refresh: {r:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(h.origin.count("/bg"), 2, "exactly one background refresh");
}

#[test]
fn reload_keeps_the_cache() {
    let h = Harness::start("");
    h.origin.route("/k", Canned::ok("kept").cc("max-age=600"));
    assert_served(&h.get("/k"), "MISS", "kept");
    h.wait_stored("/k");
    assert_served(&h.get("/k"), "HIT", "kept");
    // New workers after SIGHUP: the entry is still served, without the origin.
    h.srv.reload();
    assert_served(&h.get("/k"), "HIT", "kept");
    assert_eq!(h.origin.count("/k"), 1);
}
