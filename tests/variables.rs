//! The variables engine end to end: `$name` in `return`, `add_header`,
//! `proxy_set_header`, `proxy_cache_key` and limit keys, evaluated per
//! request against the real binary; an unknown variable stops `-t` with
//! `file:line`.

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

/// One request with `method`, `path` and extra header lines on `c`.
fn send(c: &mut Client, method: &str, path: &str, headers: &str) -> Response {
    c.send(
        format!("{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n{headers}\r\n")
            .as_bytes(),
    );
    c.read_response().expect("response")
}

#[test]
fn limit_keys_use_the_engine() {
    let s = Server::start(
        Conf::new()
            .workers(1)
            .http(
                "    limit_req_zone $request_method zone=bymethod:64k rate=1r/m;\n\
                 \x20   limit_req_zone \"$request_method $uri\" zone=check:64k rate=1r/m;\n\
                 \x20   count_zone zone=hits:64k window=60s;",
            )
            .server(
                "        location = /m { limit_req zone=bymethod burst=1 nodelay; try_files /hello.txt =404; }\n\
                 \x20       location = /c { count zone=hits key=$request_method:$http_x_tenant; count_report zone=hits; }\n\
                 \x20       location = /check { limit_check; limit_req zone=check; }",
            ),
    );
    let mut c = s.client();
    // `$request_method`: GETs and POSTs are two keys, each with its burst.
    let codes = |c: &mut Client, method: &str| -> Vec<u16> {
        (0..3).map(|_| send(c, method, "/m", "").status).collect()
    };
    assert_eq!(codes(&mut c, "GET"), [200, 200, 429]);
    // A static file answers POST with 405; the limit still counts POSTs apart.
    assert_eq!(codes(&mut c, "POST"), [405, 405, 429]);
    assert_eq!(send(&mut c, "GET", "/m", "").status, 429);

    // `count key=` with two variables; `count_report` reports that key.
    let report = |c: &mut Client, method: &str, tenant: &str| {
        send(c, method, "/c", &format!("X-Tenant: {tenant}\r\n")).text()
    };
    assert_eq!(report(&mut c, "GET", "a"), "{\"requestCount\":1}");
    assert_eq!(report(&mut c, "GET", "a"), "{\"requestCount\":2}");
    assert_eq!(report(&mut c, "POST", "a"), "{\"requestCount\":1}");
    assert_eq!(report(&mut c, "GET", "b"), "{\"requestCount\":1}");

    // `limit_check`: the variables are the original request's, from the
    // X-Original-* headers an nginx `auth_request` location sets.
    let check = |c: &mut Client, method: &str, uri: &str| {
        let h = format!("X-Original-Method: {method}\r\nX-Original-URI: {uri}\r\n");
        send(c, "GET", "/check", &h).status
    };
    assert_eq!(check(&mut c, "DELETE", "/x?a=1"), 204);
    assert_eq!(
        check(&mut c, "DELETE", "/x?a=2"),
        429,
        "same method and $uri"
    );
    assert_eq!(check(&mut c, "PUT", "/x"), 204);
    assert_eq!(check(&mut c, "DELETE", "/y"), 204);
}

/// `sluice -t` of a config whose `http` block is `http` (its first line is
/// the file's line 5) fails with `FILE:line: message`.
/// A server block on lines 5-8 whose location (line 7) is `location`.
fn server_with(location: &str) -> String {
    format!(
        "  server {{\n    listen 127.0.0.1:{};\n    {location}\n  }}",
        free_port()
    )
}

#[test]
fn t_refuses_an_unknown_variable_with_file_and_line() {
    let server = server_with("location = /v { return 200 \"$no_such_var\"; }");
    assert_t_fails("vars-t", &server, 7, "unknown \"no_such_var\" variable");
}

#[test]
fn t_refuses_an_unknown_variable_in_a_limit_key() {
    let server = server_with("location / { count zone=c key=$arg_a$nosuchvar; }");
    let unknown = "unknown \"nosuchvar\" variable";
    let zone = format!("  limit_req_zone $nosuchvar zone=x:64k rate=1r/s;\n{server}");
    assert_t_fails("vars-t-zone", &zone, 5, unknown);
    // In `count key=`, the error is at the location's line.
    let count = format!("  count_zone zone=c:64k window=1s;\n{server}");
    assert_t_fails("vars-t-count", &count, 8, unknown);
}
