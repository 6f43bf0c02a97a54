//! The variables engine end to end: `$name` in `return`, `add_header`,
//! `proxy_set_header` and `proxy_cache_key`, evaluated per request against
//! the real binary; an unknown variable stops `-t` with `file:line`.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn return_evaluates_request_variables() {
    let s = Server::start(Conf::new().workers(1).server(
        "        server_name example.test;\n\
         \x20       location = /v { return 200 \"$request_method $uri $args|$arg_x|$cookie_c|$http_user_agent|$remote_addr|$server_port|$host|$scheme|$is_args|$connection_requests\"; }\n\
         \x20       location /go/ { return 301 https://$server_name$request_uri; }",
    ));
    let mut c = s.client();
    c.send(
        b"GET /v?x=1&y=%20 HTTP/1.1\r\nHost: Example.Test:99\r\nCookie: a=0; c=choc\r\nUser-Agent: ua/1\r\n\r\n",
    );
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        format!(
            "GET /v x=1&y=%20|1|choc|ua/1|127.0.0.1|{}|example.test|http|?|1",
            s.port
        )
    );
    // The second request on the connection counts 2.
    let r = c.get("/v").expect("second");
    assert!(r.text().ends_with("||2"), "{}", r.text());
    let r = c.get("/go/a%20b?q=1").expect("redirect");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://example.test/go/a%20b?q=1")
    );
}

/// A one-worker server with a cache zone `z` in `cache` and `server` in its
/// server block.
fn with_cache(cache: &TempDir, server: &str) -> Server {
    Server::start(
        Conf::new()
            .workers(1)
            .http(&format!(
                "    proxy_cache_path {} levels=1:2 keys_zone=z:1m;",
                cache.path().display()
            ))
            .server(server),
    )
}

#[test]
fn add_header_evaluates_per_response_local_and_proxied() {
    let origin = Origin::fixed(ok_response(b"hi"));
    let cache = TempDir::new("vars-cache");
    let s = with_cache(
        &cache,
        &format!(
            "        location = /hello.txt {{ add_header X-Uri $uri; add_header X-Status $status; }}\n\
             \x20       location /p/ {{ proxy_pass http://{}; proxy_cache z; proxy_cache_valid 1m;\n\
             \x20           add_header X-Cache $upstream_cache_status;\n\
             \x20           add_header X-Up \"$upstream_status $upstream_addr\";\n\
             \x20           add_header X-Empty $arg_none; }}",
            origin.addr()
        ),
    );
    let r = s.get("/hello.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-uri"), Some("/hello.txt"));
    assert_eq!(r.header("x-status"), Some("200"));
    let r = s.get("/p/x");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-cache"), Some("MISS"), "{:?}", r.headers);
    assert_eq!(
        r.header("x-up").map(str::to_string),
        Some(format!("200 {}", origin.addr()))
    );
    assert_eq!(r.header("x-empty"), None, "an empty value is not sent");
    let hit = wait_for(Duration::from_secs(5), || {
        let r = s.get("/p/x");
        (r.header("x-cache") == Some("HIT")).then_some(r)
    })
    .expect("a HIT within 5 s");
    assert_eq!(hit.text(), "hi");
}

#[test]
fn proxy_set_header_and_cache_key_use_the_engine() {
    let origin = Origin::start(|r| vec![Step::Write(ok_response(r.target.as_bytes()))]);
    let cache = TempDir::new("vars-key");
    let s = with_cache(
        &cache,
        &format!(
            "        location / {{ proxy_pass http://{}; proxy_cache z; proxy_cache_valid 1m;\n\
             \x20           proxy_cache_key $uri;\n\
             \x20           proxy_set_header X-Id $request_id;\n\
             \x20           proxy_set_header X-Conn \"$connection_requests $request_method\";\n\
             \x20           proxy_set_header X-Xff $proxy_add_x_forwarded_for; }}",
            origin.addr()
        ),
    );
    let mut c = s.client();
    let a = c.get("/k?v=1").expect("first");
    assert_eq!(a.text(), "/k?v=1");
    let seen = origin.seen().remove(0);
    let id = seen.header("x-id").expect("X-Id");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(seen.header("x-conn"), Some("1 GET"));
    assert_eq!(seen.header("x-xff"), Some("127.0.0.1"));
    // Once stored (the fill is asynchronous), the key is `$uri` alone:
    // another query is the same entry.
    wait_for(Duration::from_secs(5), || {
        let r = c.get("/k?v=1").ok()?;
        (r.header("x-cache-status") == Some("HIT")).then_some(())
    })
    .expect("a HIT for /k?v=1");
    let b = c.get("/k?v=3").expect("other query");
    assert_eq!(b.header("x-cache-status"), Some("HIT"), "{:?}", b.headers);
    assert_eq!(b.text(), "/k?v=1");
}

#[test]
fn t_refuses_an_unknown_variable_with_file_and_line() {
    let dir = TempDir::new("vars-t");
    let conf = dir.join("bad.conf");
    std::fs::write(
        &conf,
        format!(
            "pid {d}/p.pid;\nerror_log {d}/e.log;\nevents {{}}\nhttp {{\n  server {{\n    listen 127.0.0.1:{port};\n    location = /v {{ return 200 \"$no_such_var\"; }}\n  }}\n}}\n",
            d = dir.path().display(),
            port = free_port()
        ),
    )
    .unwrap();
    let out = run_sluice(
        dir.path(),
        &["-t", "-c", conf.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let want = format!("{}:7: unknown \"no_such_var\" variable", conf.display());
    assert!(out.stderr.contains(&want), "{}", out.stderr);
}
