//! `allow` / `deny` as nginx: in order, the first rule that matches the
//! client decides, none means allowed; a level with its own rules replaces
//! the outer ones; a refusal is 403 and logged.

mod common;

use common::*;

#[test]
fn allow_and_deny_in_order_with_nginx_inheritance() {
    let s = Server::start(Conf::new().workers(1).server(
        "        deny 192.0.2.0/24;\n\
         \x20       location /a/ { deny 127.0.0.1; }\n\
         \x20       location /b/ { allow 10.0.0.0/8; deny all; }\n\
         \x20       location /c/ { allow 127.0.0.0/8; deny all; }\n\
         \x20       location /d/ { allow ::1; deny 127.0.0.1; allow all; }\n\
         \x20       location /e/ { return 200 \"open\"; }",
    ));
    for dir in ["a", "b", "c", "d"] {
        std::fs::create_dir_all(s.path(&format!("www/{dir}"))).unwrap();
        std::fs::write(s.path(&format!("www/{dir}/f.txt")), dir).unwrap();
    }
    assert_eq!(s.get("/a/f.txt").status, 403);
    assert_eq!(s.get("/b/f.txt").status, 403);
    assert_eq!(s.get("/c/f.txt").text(), "c");
    assert_eq!(
        s.get("/d/f.txt").status,
        403,
        "the first matching rule decides"
    );
    // The server's `deny 192.0.2.0/24` does not match this client.
    assert_eq!(s.get("/e/").text(), "open");
    assert!(s.wait_log("access forbidden by rule").contains("127.0.0.1"));
}

#[test]
fn bad_rules_fail_t() {
    let port = free_port();
    let server =
        |extra: &str| format!("  server {{\n    listen 127.0.0.1:{port};\n    {extra}\n  }}");
    assert_t_fails(
        "acc-bad",
        &server("allow 10.0.0.0/33;"),
        7,
        "invalid value \"10.0.0.0/33\"",
    );
    assert_t_fails(
        "acc-word",
        &server("deny everyone;"),
        7,
        "invalid value \"everyone\"",
    );
}
