//! Upstream balancing and server parameters against the real binary:
//! `least_conn`, `ip_hash`, `hash [consistent]` (the same server for every
//! key as a real nginx picks), `random`, `max_conns`, `backup`, `down`,
//! `zone`; Unix-socket upstreams; `proxy_pass` with variables (and
//! `resolver`); the config errors of these directives.

mod common;

use common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn proxy(http: &str, server_extra: &str) -> Server {
    Server::start(Conf::new().workers(1).http(http).server(server_extra))
}

/// An origin answering its `name`; `/slow` after `slow_ms`.
fn named(name: &'static str, slow_ms: u64) -> Origin {
    Origin::start(move |r| {
        let mut steps = Vec::new();
        if r.target.starts_with("/slow") {
            steps.push(Step::Sleep(Duration::from_millis(slow_ms)));
        }
        steps.push(Step::Write(ok_response(name.as_bytes())));
        steps
    })
}

#[test]
fn least_conn_sends_new_requests_to_the_idle_server() {
    let a = named("a", 1500);
    let b = named("b", 1500);
    let px = proxy(
        &format!(
            "upstream u {{ least_conn; server {}; server {}; }}",
            a.addr(),
            b.addr()
        ),
        "location / { proxy_pass http://u; }",
    );
    let port = px.port;
    let slow = std::thread::spawn(move || get(port, "/slow").text());
    wait_until(
        "the slow request reached an origin",
        Duration::from_secs(5),
        || a.request_count() + b.request_count() == 1,
    );
    let busy = if a.request_count() == 1 { "a" } else { "b" };
    for i in 0..6 {
        let r = px.get(&format!("/fast{i}"));
        assert_ne!(r.text(), busy, "request {i} went to the busy server");
    }
    assert_eq!(slow.join().expect("slow request"), busy);
    // Both idle again: round robin between equals.
    let mut seen = std::collections::HashSet::new();
    for i in 0..4 {
        seen.insert(px.get(&format!("/x{i}")).text());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[test]
fn ip_hash_keeps_a_client_on_one_server_and_down_moves_it() {
    let origins: Vec<Origin> = ["a", "b", "c"].iter().map(|n| named(n, 0)).collect();
    let servers = |down: Option<usize>| {
        origins
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let d = if Some(i) == down { " down" } else { "" };
                format!("server {}{d};", o.addr())
            })
            .collect::<String>()
    };
    let px = proxy(
        &format!("upstream u {{ ip_hash; {} }}", servers(None)),
        "location / { proxy_pass http://u; }",
    );
    let first = px.get("/0").text();
    for i in 1..12 {
        assert_eq!(px.get(&format!("/{i}")).text(), first);
    }
    let idx = ["a", "b", "c"]
        .iter()
        .position(|n| *n == first)
        .expect("a name");
    // nginx's hash of 127.0.0.x: 89, then (h * 113 + octet) % 6271.
    let mut h: u64 = 89;
    for o in [127u64, 0, 0] {
        h = (h * 113 + o) % 6271;
    }
    assert_eq!(idx as u64, h % 3, "not nginx's ip_hash");
    drop(px);
    let px = proxy(
        &format!("upstream u {{ ip_hash; {} }}", servers(Some(idx))),
        "location / { proxy_pass http://u; }",
    );
    let moved = px.get("/0").text();
    assert_ne!(moved, first, "a down server was used");
    for i in 1..6 {
        assert_eq!(px.get(&format!("/{i}")).text(), moved);
    }
}

/// The server each of `keys` lands on, by origin name, through `port`.
fn mapping(port: u16, keys: &[String]) -> Vec<String> {
    keys.iter().map(|k| get(port, k).text()).collect()
}

#[test]
fn hash_and_consistent_hash_pick_the_servers_nginx_picks() {
    let origins: Vec<Origin> = ["a", "b", "c", "d"].iter().map(|n| named(n, 0)).collect();
    let servers: String = origins
        .iter()
        .enumerate()
        .map(|(i, o)| format!("server {} weight={};", o.addr(), 1 + i % 2))
        .collect();
    let keys: Vec<String> = (0..40).map(|i| format!("/k/{i}?q={}", i * 7)).collect();
    let http = format!(
        "upstream h {{ hash $request_uri; {servers} }}\n\
         upstream c {{ hash $request_uri consistent; {servers} }}\n"
    );
    let px = proxy(
        &http,
        "location /k/ { proxy_pass http://h; }\nlocation /c/k/ { proxy_pass http://c/k/; }",
    );
    let plain = mapping(px.port, &keys);
    let ckeys: Vec<String> = keys.iter().map(|k| format!("/c{k}")).collect();
    let consistent = mapping(px.port, &ckeys);
    // Stable, and spread over the servers.
    assert_eq!(mapping(px.port, &keys), plain);
    for m in [&plain, &consistent] {
        let distinct: std::collections::HashSet<_> = m.iter().collect();
        assert!(distinct.len() >= 3, "{m:?}");
    }
    // The same choices as nginx, key for key.
    let dir = TempDir::new("nginx-hash");
    let body = format!(
        "{http}server {{ listen 127.0.0.1:{{port}}; \
         location /k/ {{ proxy_pass http://h; }} location /c/k/ {{ proxy_pass http://c/k/; }} }}"
    );
    let Some(ng) = Nginx::start(&dir, &body) else {
        eprintln!("nginx not installed: comparison skipped");
        return;
    };
    assert_eq!(mapping(ng.port, &keys), plain, "hash differs from nginx");
    assert_eq!(
        mapping(ng.port, &ckeys),
        consistent,
        "hash consistent differs from nginx"
    );
}

#[test]
fn random_two_and_zone_are_served() {
    let a = named("a", 0);
    let b = named("b", 0);
    let px = proxy(
        &format!(
            "upstream u {{ zone u 64k; random two least_conn; server {}; server {}; }}",
            a.addr(),
            b.addr()
        ),
        "location / { proxy_pass http://u; }",
    );
    for i in 0..40 {
        assert_eq!(px.get(&format!("/{i}")).status, 200);
    }
    assert!(a.request_count() > 5 && b.request_count() > 5);
}

#[test]
fn max_conns_overflows_to_the_backup_and_down_is_never_used() {
    let main = named("main", 1200);
    let spare = named("spare", 0);
    let off = named("off", 0);
    let px = proxy(
        &format!(
            "upstream u {{ server {} max_conns=1; server {} down; server {} backup; }}",
            main.addr(),
            off.addr(),
            spare.addr()
        ),
        "location / { proxy_pass http://u; }",
    );
    // Idle: the primary answers, the backup is not used.
    for i in 0..4 {
        assert_eq!(px.get(&format!("/{i}")).text(), "main");
    }
    let port = px.port;
    let slow = std::thread::spawn(move || get(port, "/slow").text());
    wait_until(
        "the slow request reached main",
        Duration::from_secs(5),
        || main.request_count() == 5,
    );
    // main is at max_conns: the backup takes the overflow.
    assert_eq!(px.get("/over").text(), "spare");
    assert_eq!(slow.join().expect("slow"), "main");
    assert_eq!(px.get("/after").text(), "main");
    assert_eq!(off.request_count(), 0, "a down server got requests");
}

#[test]
fn backup_serves_only_while_the_primary_is_failing() {
    let dead = free_port();
    let spare = named("spare", 0);
    let px = proxy(
        &format!(
            "upstream u {{ server 127.0.0.1:{dead} max_fails=1 fail_timeout=30s; server {} backup; }}",
            spare.addr()
        ),
        "location / { proxy_pass http://u; }",
    );
    for i in 0..5 {
        assert_eq!(px.get(&format!("/{i}")).text(), "spare");
    }
}

/// A one-connection-at-a-time HTTP origin on a Unix socket: answers the
/// request target it read, and closes.
fn unix_origin(path: &std::path::Path) -> std::thread::JoinHandle<()> {
    let l = std::os::unix::net::UnixListener::bind(path).expect("bind unix");
    std::thread::spawn(move || {
        for s in l.incoming().take(4) {
            let Ok(mut s) = s else { return };
            let mut buf = Vec::new();
            let mut b = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&b[..n]),
                }
            }
            let line = String::from_utf8_lossy(&buf);
            let target = line.split(' ').nth(1).unwrap_or("?").to_string();
            let body = format!("unix {target}");
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })
}

#[test]
fn unix_socket_upstreams_in_blocks_and_in_proxy_pass() {
    let dir = TempDir::new("unix-up");
    let sock = dir.join("app.sock");
    let origin = unix_origin(&sock);
    let s = sock.display();
    let px = proxy(
        &format!("upstream app {{ server unix:{s}; }}"),
        &format!(
            "location /block/ {{ proxy_pass http://app; }}\n\
             location /direct/ {{ proxy_pass http://unix:{s}:/inner/; }}\n\
             location /var/ {{ proxy_pass http://$http_x_to; }}"
        ),
    );
    assert_eq!(px.get("/block/a").text(), "unix /block/a");
    assert_eq!(px.get("/direct/b?x=1").text(), "unix /inner/b?x=1");
    let r = request(px.port, "/var/c", &[("X-To", &format!("unix:{s}"))]);
    assert_eq!(r.text(), "unix /var/c");
    drop(px);
    // Unblock the origin's last accept.
    let _ = std::os::unix::net::UnixStream::connect(&sock);
    let _ = origin.join();
}

#[test]
fn proxy_pass_with_variables_names_an_upstream_or_an_address() {
    let a = named("a", 0);
    let b = named("b", 0);
    let px = proxy(
        &format!("upstream pool {{ server {}; }}", a.addr()),
        "location / { proxy_pass http://$http_x_backend; }\n\
         location /res/ { resolver 127.0.0.1 valid=10s; proxy_pass http://$http_x_backend; }\n\
         location /uri/ { proxy_pass http://$http_x_backend/fixed$is_args$args; }",
    );
    let to = |path: &str, backend: &str| request(px.port, path, &[("X-Backend", backend)]);
    assert_eq!(to("/1", "pool").text(), "a");
    assert_eq!(to("/2", &b.addr()).text(), "b");
    assert_eq!(to("/3", "pool").text(), "a");
    // A name without a resolver: 502 and why in the error log.
    assert_eq!(to("/4", "localhost:1").status, 502);
    let port_b = b.addr().rsplit(':').next().unwrap().to_string();
    assert_eq!(to("/5", &format!("localhost:{port_b}")).status, 502);
    wait_until("the error-log line", Duration::from_secs(5), || {
        std::fs::read_to_string(px.path("error.log"))
            .unwrap_or_default()
            .contains("no resolver defined to resolve localhost:1")
    });
    // With a resolver the name is looked up.
    assert_eq!(to("/res/6", &format!("localhost:{port_b}")).text(), "b");
    // The URI with variables replaces the request's.
    assert_eq!(to("/uri/x?k=v", &b.addr()).text(), "b");
    let last = b.seen().last().cloned().expect("a request");
    assert_eq!(last.target, "/fixed?k=v");
    assert_eq!(last.header("host"), Some(b.addr().as_str()));
}

#[test]
fn config_errors_of_upstream_directives_name_their_line() {
    let cases: &[(&str, &str)] = &[
        (
            "upstream u { ip_hash;\nserver 127.0.0.1:1 backup; }",
            "invalid parameter \"backup\"",
        ),
        (
            "upstream u {\nserver 127.0.0.1:1 slow_start=1s; }",
            "invalid parameter \"slow_start=1s\"",
        ),
        (
            "upstream u { server 127.0.0.1:1;\nhash $uri sometimes; }",
            "invalid value \"sometimes\"",
        ),
        (
            "upstream u { server 127.0.0.1:1;\nrandom three; }",
            "invalid value \"three\"",
        ),
        (
            "upstream u { server 127.0.0.1:1;\nmax_conns 3; }",
            "\"max_conns\" directive is not allowed here",
        ),
    ];
    for (i, (http, want)) in cases.iter().enumerate() {
        let dir = TempDir::new("up-err");
        let conf = dir.join("sluice.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\npid {d}/p;\nerror_log {d}/e.log;\nstate_dir {d}/s;\nevents {{ }}\nhttp {{\n{http}\n}}\n",
                d = dir.path().display()
            ),
        )
        .expect("write");
        let out = run_sluice(
            dir.path(),
            &["-t", "-c", conf.to_str().expect("utf-8")],
            Duration::from_secs(10),
        );
        assert_conf_error(&out, 8, want);
        let _ = i;
    }
    let out = test_config(
        "redir-var",
        "",
        "location / { proxy_pass http://$host;\nproxy_redirect default; }",
    );
    assert_conf_error(&out, 10, "\"proxy_redirect default\" cannot be used");
}

#[test]
fn a_burst_spreads_over_weighted_servers_quickly() {
    let a = named("a", 0);
    let b = named("b", 0);
    let px = proxy(
        &format!(
            "upstream u {{ least_conn; server {} weight=2; server {}; keepalive 4; }}",
            a.addr(),
            b.addr()
        ),
        "location / { proxy_pass http://u; }",
    );
    let t = Instant::now();
    let mut c = px.client();
    for i in 0..30 {
        assert_eq!(c.get(&format!("/{i}")).expect("GET").status, 200);
    }
    assert!(t.elapsed() < Duration::from_secs(5));
    let (na, nb) = (a.request_count(), b.request_count());
    // Sequential requests are all ties: weighted round robin, 2:1.
    assert_eq!((na, nb), (20, 10));
}
