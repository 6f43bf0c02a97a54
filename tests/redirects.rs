//! Internal redirects as nginx: `try_files` (files, `$uri/`, a URI, a named
//! location, `=CODE`), `error_page` (a local page with the error's status,
//! `=CODE`, `=`, a named location, once only), through to a proxied named
//! location, and the loop limit.

mod common;

use common::*;

#[test]
fn try_files_and_error_page_as_nginx() {
    let origin = Origin::fixed(http_response(200, "", b"from the app"));
    let s = Server::start(Conf::new().workers(1).server(&format!(
        "        error_page 404 /404.html;\n\
         \x20       error_page 403 =200 /hello.txt;\n\
         \x20       location /app/ {{ try_files $uri $uri/ /index.html; }}\n\
         \x20       location /named {{ try_files /nope @fallback; }}\n\
         \x20       location @fallback {{ return 200 \"from named\\n\"; }}\n\
         \x20       location /api/ {{ try_files $uri @backend; }}\n\
         \x20       location @backend {{ proxy_pass http://{}; }}\n\
         \x20       location /code/ {{ try_files $uri =410; }}\n\
         \x20       location /loop/ {{ try_files /nope /loop/again; }}\n\
         \x20       location /own/ {{ error_page 404 = @fallback; }}",
        origin.addr()
    )));
    std::fs::write(s.path("www/404.html"), "custom 404\n").unwrap();
    std::fs::create_dir_all(s.path("www/app/sub")).unwrap();
    std::fs::write(s.path("www/app/real.js"), "js\n").unwrap();
    std::fs::write(s.path("www/app/sub/index.html"), "sub index\n").unwrap();
    std::fs::create_dir_all(s.path("www/api")).unwrap();
    std::fs::write(s.path("www/api/static.json"), "{}\n").unwrap();
    std::fs::create_dir_all(s.path("www/secret")).unwrap();
    // try_files: the file, the directory's index, else the SPA fallback.
    assert_eq!(s.get("/app/real.js").text(), "js\n");
    assert_eq!(s.get("/app/sub").text(), "sub index\n");
    let r = s.get("/app/some/route");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), INDEX_HTML_BYTES, "the root index.html");
    assert_eq!(s.get("/named").text(), "from named\n");
    // A named location that proxies: the app answers what is not a file.
    assert_eq!(s.get("/api/static.json").text(), "{}\n");
    assert_eq!(s.get("/api/users/1").text(), "from the app");
    assert_eq!(origin.request_count(), 1);
    assert_eq!(s.get("/code/x").status, 410);
    // error_page: the page's body with the error's status.
    let r = s.get("/nothing-here");
    assert_eq!((r.status, r.text().as_str()), (404, "custom 404\n"));
    assert_eq!(r.content_length(), Some(r.body.len()));
    // =200: the page with 200 (a directory without an index is 403).
    let r = s.get("/secret/");
    assert_eq!((r.status, r.text().as_str()), (200, HELLO_TXT));
    // `=` alone: the target's own status.
    let r = s.get("/own/missing");
    assert_eq!((r.status, r.text().as_str()), (200, "from named\n"));
    // A named location is not reachable by a URI.
    assert_eq!(s.get("/@fallback").status, 404);
    // The loop limit: 500 after 10 redirects.
    assert_eq!(s.get("/loop/x").status, 500);
    assert!(s
        .wait_log("rewrite or internal redirection cycle")
        .contains("cycle"));
}

#[test]
fn error_page_targets_are_not_redirected_twice() {
    // The page itself is missing: nginx (recursive_error_pages off) sends
    // the plain 404, not a loop.
    let s = Server::start(
        Conf::new()
            .workers(1)
            .server("        error_page 404 /missing-page.html;"),
    );
    let r = s.get("/x");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("404 Not Found"), "{}", r.text());
}

#[test]
fn bad_redirect_directives_fail_t() {
    let port = free_port();
    let server =
        |extra: &str| format!("  server {{\n    listen 127.0.0.1:{port};\n    {extra}\n  }}");
    assert_t_fails(
        "ep-code",
        &server("error_page 99 /x;"),
        7,
        "value \"99\" must be between 300 and 599",
    );
    assert_t_fails(
        "tf-code",
        &server("try_files $uri =1000;"),
        7,
        "invalid code \"=1000\"",
    );
    assert_t_fails(
        "tf-var",
        &server("try_files $nope /x;"),
        7,
        "unknown \"nope\" variable",
    );
}
