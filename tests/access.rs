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

/// Basic credentials for `user:pass`.
fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {b}")
}

/// An htpasswd file with one user per format, made by Apache's `htpasswd`
/// (`{PLAIN}` written by hand): (user, flag).
const FORMATS: &[(&str, &str)] = &[
    ("bcrypt", "-B"),
    ("apr1", "-m"),
    ("sha1", "-s"),
    ("sha256", "-2"),
    ("sha512", "-5"),
];

fn htpasswd(file: &std::path::Path, user: &str, flag: &str, pass: &str) {
    let mut args = vec!["-b"];
    if !file.exists() {
        args.push("-c");
    }
    args.extend([flag, file.to_str().unwrap(), user, pass]);
    let out = std::process::Command::new("htpasswd")
        .args(&args)
        .output()
        .expect("htpasswd (apache2-utils) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_users(file: &std::path::Path) -> String {
    for (user, flag) in FORMATS {
        htpasswd(file, user, flag, &format!("pw-{user}"));
    }
    let mut text = std::fs::read_to_string(file).unwrap();
    text.push_str("# a comment\nplain:{PLAIN}pw-plain\n");
    std::fs::write(file, &text).unwrap();
    text
}

/// Status and `WWW-Authenticate` of every case, against one port.
fn basic_cases(port: u16) -> Vec<(String, u16, Option<String>)> {
    let mut users: Vec<&str> = FORMATS.iter().map(|f| f.0).collect();
    users.push("plain");
    let mut out = Vec::new();
    for user in users {
        for (what, pass) in [("right", format!("pw-{user}")), ("wrong", "nope".into())] {
            let auth = basic(user, &pass);
            let r = request(port, "/vault/f.txt", &[("Authorization", &auth)]);
            let www = r.header("www-authenticate").map(str::to_string);
            out.push((format!("{user} {what}"), r.status, www));
        }
    }
    for (what, auth) in [
        ("none", None),
        ("no such user", Some(basic("mallory", "x"))),
        ("not basic", Some("Bearer abc".to_string())),
        ("bad base64", Some("Basic %%%".to_string())),
    ] {
        let extra: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let r = request(port, "/vault/f.txt", &extra);
        let www = r.header("www-authenticate").map(str::to_string);
        out.push((what.to_string(), r.status, www));
    }
    out
}

#[test]
fn auth_basic_checks_every_htpasswd_format_as_nginx_does() {
    let dir = TempDir::new("auth-basic");
    let users = dir.join("users");
    make_users(&users);
    let loc = format!(
        "auth_basic \"Vault Zone\"; auth_basic_user_file {};\n\
         location /vault/ {{ }}\n\
         location /open/ {{ auth_basic off; }}",
        users.display()
    );
    let s = Server::start(Conf::new().workers(1).server(&loc));
    for d in ["vault", "open"] {
        std::fs::create_dir_all(s.path(&format!("www/{d}"))).unwrap();
        std::fs::write(s.path(&format!("www/{d}/f.txt")), d).unwrap();
    }
    let got = basic_cases(s.port);
    for (what, status, www) in &got {
        let right = what.ends_with("right");
        assert_eq!(*status, if right { 200 } else { 401 }, "{what}");
        if !right {
            assert_eq!(www.as_deref(), Some("Basic realm=\"Vault Zone\""), "{what}");
        }
    }
    assert_eq!(s.get("/open/f.txt").text(), "open", "auth_basic off");
    assert!(s.wait_log("password mismatch").contains("user \"bcrypt\""));

    let ndir = TempDir::new("auth-basic-nginx");
    ndir.write("www/vault/f.txt", "vault");
    ndir.write("www/open/f.txt", "open");
    let http = format!("server {{ listen 127.0.0.1:{{port}}; root {{dir}}/www;\n{loc}\n}}");
    let Some(nginx) = Nginx::start(&ndir, &http) else {
        println!("note: nginx did not start; compared with nginx's documented behaviour only");
        return;
    };
    assert_eq!(basic_cases(nginx.port), got, "the same answers as nginx");
}

#[test]
fn the_user_file_is_read_again_when_it_changes() {
    let dir = TempDir::new("auth-reread");
    let users = dir.join("users");
    htpasswd(&users, "ann", "-B", "first");
    let s = Server::start(Conf::new().workers(1).server(&format!(
        "location /vault/ {{ auth_basic on; auth_basic_user_file {}; }}",
        users.display()
    )));
    std::fs::create_dir_all(s.path("www/vault")).unwrap();
    std::fs::write(s.path("www/vault/f.txt"), "v").unwrap();
    let as_ann = |pass: &str| {
        request(
            s.port,
            "/vault/f.txt",
            &[("Authorization", &basic("ann", pass))],
        )
        .status
    };
    assert_eq!(as_ann("first"), 200);
    assert_eq!(
        as_ann("first"),
        200,
        "a remembered verification still answers"
    );
    htpasswd(&users, "ann", "-m", "second");
    set_mtime(&users, 1_000_000);
    assert_eq!(as_ann("second"), 200, "no reload needed");
    assert_eq!(as_ann("first"), 401, "the old password is gone");
    std::fs::remove_file(&users).unwrap();
    assert_eq!(
        as_ann("second"),
        500,
        "an unreadable file is a server error"
    );
}

/// The statuses of the `satisfy` / `limit_except` cases on one port.
fn satisfy_cases(port: u16) -> Vec<(String, u16)> {
    let good = basic("ann", "pw");
    let mut out = Vec::new();
    for dir in [
        "any", "all", "deny-any", "deny-all", "le", "le-auth", "le-any",
    ] {
        for (method, creds) in [
            ("GET", false),
            ("GET", true),
            ("HEAD", false),
            ("DELETE", false),
            ("DELETE", true),
        ] {
            let mut raw =
                format!("{method} /{dir}/f.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
            if creds {
                raw.push_str(&format!("Authorization: {good}\r\n"));
            }
            raw.push_str("\r\n");
            let reply = exchange(port, raw.as_bytes());
            let status = String::from_utf8_lossy(&reply)
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0u16);
            out.push((format!("{dir} {method} creds={creds}"), status));
        }
    }
    out
}

#[test]
fn satisfy_and_limit_except_combine_as_nginx_does() {
    let dir = TempDir::new("satisfy");
    let users = dir.join("users");
    std::fs::write(&users, "ann:{PLAIN}pw\n").unwrap();
    let u = users.display();
    let locs = format!(
        "location /any/ {{ satisfy any; allow 127.0.0.1; deny all; auth_basic a; auth_basic_user_file {u}; }}\n\
         location /all/ {{ allow 127.0.0.1; deny all; auth_basic a; auth_basic_user_file {u}; }}\n\
         location /deny-any/ {{ satisfy any; deny all; auth_basic a; auth_basic_user_file {u}; }}\n\
         location /deny-all/ {{ deny all; auth_basic a; auth_basic_user_file {u}; }}\n\
         location /le/ {{ limit_except GET {{ deny all; }} }}\n\
         location /le-auth/ {{ limit_except GET {{ auth_basic a; auth_basic_user_file {u}; }} }}\n\
         location /le-any/ {{ satisfy any; deny all; limit_except GET {{ auth_basic a; auth_basic_user_file {u}; }} }}"
    );
    let s = Server::start(Conf::new().workers(1).server(&locs));
    let dirs = [
        "any", "all", "deny-any", "deny-all", "le", "le-auth", "le-any",
    ];
    for d in dirs {
        std::fs::create_dir_all(s.path(&format!("www/{d}"))).unwrap();
        std::fs::write(s.path(&format!("www/{d}/f.txt")), d).unwrap();
    }
    let got = satisfy_cases(s.port);
    let want = |case: &str| got.iter().find(|(c, _)| c == case).unwrap().1;
    assert_eq!(want("any GET creds=false"), 200, "the address is enough");
    assert_eq!(want("all GET creds=false"), 401);
    assert_eq!(want("all GET creds=true"), 200);
    assert_eq!(want("deny-any GET creds=false"), 401, "401 wins over 403");
    assert_eq!(want("deny-any GET creds=true"), 200);
    assert_eq!(want("deny-all GET creds=true"), 403);
    assert_eq!(want("le GET creds=false"), 200);
    assert_eq!(want("le HEAD creds=false"), 200, "GET brings HEAD");
    assert_eq!(want("le DELETE creds=true"), 403);
    assert_eq!(want("le-auth DELETE creds=false"), 401);
    assert_eq!(want("le-auth GET creds=false"), 200);
    assert_eq!(want("le-any GET creds=false"), 403);

    let ndir = TempDir::new("satisfy-nginx");
    for d in dirs {
        ndir.write(&format!("www/{d}/f.txt"), d);
    }
    let http = format!("server {{ listen 127.0.0.1:{{port}}; root {{dir}}/www;\n{locs}\n}}");
    let Some(nginx) = Nginx::start(&ndir, &http) else {
        println!("note: nginx did not start; compared with nginx's documented behaviour only");
        return;
    };
    // nginx answers an allowed DELETE of a static file 405; sluice serves
    // it (its static handler ignores the method): compare the refusals.
    let theirs: Vec<(String, u16)> = satisfy_cases(nginx.port)
        .into_iter()
        .map(|(c, st)| (c, if st == 405 { 200 } else { st }))
        .collect();
    let ours: Vec<(String, u16)> = got
        .into_iter()
        .map(|(c, st)| (c, if st == 405 { 200 } else { st }))
        .collect();
    assert_eq!(ours, theirs);
}

/// An auth origin: `X-Token: yes` 204, `no` 401 with a challenge, `forbid`
/// 403, anything else 302.
fn auth_origin() -> Origin {
    Origin::start(|seen| {
        let (status, extra) = match seen.header("x-token") {
            Some("yes") => (204, "X-User: ann\r\n"),
            Some("no") => (401, "WWW-Authenticate: Bearer realm=\"api\"\r\n"),
            Some("forbid") => (403, ""),
            _ => (302, "Location: /login\r\n"),
        };
        vec![Step::Write(http_response(status, extra, b""))]
    })
}

/// (case, status, WWW-Authenticate, body, X-User) against one port.
type AuthCase = (String, u16, Option<String>, String, Option<String>);

fn auth_request_cases(port: u16) -> Vec<AuthCase> {
    let mut out = Vec::new();
    for path in ["/app/f.txt", "/local-no/f.txt", "/local-yes/f.txt"] {
        for token in ["yes", "no", "forbid", "other"] {
            for method in ["GET", "POST"] {
                let body = if method == "POST" {
                    "Content-Length: 5\r\n\r\nhello"
                } else {
                    "\r\n"
                };
                let raw = format!(
                    "{method} {path}?q=1 HTTP/1.1\r\nHost: t\r\nX-Token: {token}\r\nConnection: close\r\n{body}"
                );
                let reply = exchange(port, raw.as_bytes());
                let Some(r) = parse_responses(&reply).into_iter().next() else {
                    panic!(
                        "{path} {token} {method}: {}",
                        String::from_utf8_lossy(&reply)
                    );
                };
                let www = r.header("www-authenticate").map(str::to_string);
                let text = if r.status == 200 {
                    r.text()
                } else {
                    String::new()
                };
                let user = r.header("x-user").map(str::to_string);
                out.push((
                    format!("{path} {token} {method}"),
                    r.status,
                    www,
                    text,
                    user,
                ));
            }
        }
    }
    out
}

#[test]
fn auth_request_proxied_or_local_decides_as_nginx_does() {
    let origin = auth_origin();
    let locs = format!(
        "location /app/ {{ auth_request /_auth; auth_request_set $user $upstream_http_x_user; \
         auth_request_set $said $upstream_status; add_header X-User \"$user:$said\" always; }}\n\
         location = /_auth {{ proxy_pass http://127.0.0.1:{}/check; \
         proxy_set_header X-Original-URI $request_uri; }}\n\
         location /local-no/ {{ auth_request /_no; }}\n\
         location = /_no {{ return 403; }}\n\
         location /local-yes/ {{ auth_request /_yes; }}\n\
         location = /_yes {{ return 204; }}",
        origin.port
    );
    let s = Server::start(Conf::new().workers(1).server(&locs));
    for d in ["app", "local-no", "local-yes"] {
        std::fs::create_dir_all(s.path(&format!("www/{d}"))).unwrap();
        std::fs::write(s.path(&format!("www/{d}/f.txt")), d).unwrap();
    }
    let got = auth_request_cases(s.port);
    let case = |c: &str| got.iter().find(|g| g.0 == c).unwrap().clone();
    assert_eq!(case("/app/f.txt yes GET").1, 200);
    assert_eq!(case("/app/f.txt yes GET").3, "app");
    assert_eq!(
        case("/app/f.txt yes GET").4.as_deref(),
        Some("ann:204"),
        "auth_request_set from the subrequest's answer"
    );
    assert_eq!(case("/app/f.txt no GET").4.as_deref(), Some(":401"));
    // Allowed, then refused by the static handler (as nginx): the body
    // waited for the subrequest and was read after it.
    assert_eq!(case("/app/f.txt yes POST").1, 405);
    let no = case("/app/f.txt no GET");
    assert_eq!((no.1, no.2.as_deref()), (401, Some("Bearer realm=\"api\"")));
    assert_eq!(case("/app/f.txt forbid GET").1, 403);
    assert_eq!(case("/app/f.txt other GET").1, 500);
    assert_eq!(case("/local-no/f.txt yes GET").1, 403);
    assert_eq!(case("/local-yes/f.txt no GET").1, 200);
    // The subrequest: GET to the auth URI, the client's headers, no body.
    let seen = origin.seen();
    assert!(seen
        .iter()
        .all(|r| r.method == "GET" && r.target == "/check"));
    assert!(seen.iter().all(|r| r.body.is_empty()));
    assert!(seen
        .iter()
        .any(|r| r.header("x-original-uri") == Some("/app/f.txt?q=1")));
    // Subrequests are not logged (nginx's log_subrequest off).
    let log = std::fs::read_to_string(s.path("access.log")).unwrap_or_default();
    assert!(!log.contains("/_auth") && !log.contains("/check"), "{log}");

    let ndir = TempDir::new("auth-request-nginx");
    for d in ["app", "local-no", "local-yes"] {
        ndir.write(&format!("www/{d}/f.txt"), d);
    }
    // nginx passes the client's Content-Length to the subrequest without
    // the body unless told (its documentation's two lines); sluice never
    // sends the body nor its length.
    let nlocs = locs.replace(
        "proxy_set_header X-Original-URI",
        "proxy_pass_request_body off; proxy_set_header Content-Length \"\"; \
         proxy_set_header X-Original-URI",
    );
    let http = format!("server {{ listen 127.0.0.1:{{port}}; root {{dir}}/www;\n{nlocs}\n}}");
    let Some(nginx) = Nginx::start(&ndir, &http) else {
        println!("note: nginx did not start; compared with nginx's documented behaviour only");
        return;
    };
    assert_eq!(got, auth_request_cases(nginx.port));
}

fn realip_cases(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for (path, xff) in [
        ("/ip/", "203.0.113.7, 10.1.1.1"),
        ("/ip/", "bogus, 10.1.1.1"),
        ("/ip/", "10.2.2.2,10.1.1.1"),
        ("/flat/", "203.0.113.7, 10.1.1.1"),
        ("/real/", "198.51.100.1"),
        ("/deny/", "203.0.113.7"),
        ("/deny/", "203.0.113.8"),
    ] {
        let r = request(
            port,
            path,
            &[("X-Forwarded-For", xff), ("X-Real-IP", "198.51.100.9")],
        );
        out.push(format!("{path} {xff} -> {} {}", r.status, r.text().trim()));
    }
    out
}

#[test]
fn real_client_addresses_as_nginx_reads_them() {
    let locs = "set_real_ip_from 127.0.0.1;\n set_real_ip_from 10.0.0.0/8;\n\
         real_ip_header X-Forwarded-For;\n real_ip_recursive on;\n\
         location /ip/ { return 200 \"$remote_addr $realip_remote_addr\\n\"; }\n\
         location /flat/ { real_ip_recursive off; return 200 \"$remote_addr\\n\"; }\n\
         location /real/ { real_ip_header X-Real-IP; return 200 \"$remote_addr\\n\"; }\n\
         location /deny/ { deny 203.0.113.7; try_files /hello.txt =404; }";
    let s = Server::start(Conf::new().workers(1).server(locs));
    let got = realip_cases(s.port);
    assert_eq!(
        got[0],
        "/ip/ 203.0.113.7, 10.1.1.1 -> 200 203.0.113.7 127.0.0.1"
    );
    // The server level's settings decide first (nginx's post-read phase);
    // a location's apply only when those changed nothing.
    assert_eq!(got[3], "/flat/ 203.0.113.7, 10.1.1.1 -> 200 203.0.113.7");
    assert_eq!(got[4], "/real/ 198.51.100.1 -> 200 198.51.100.1");
    assert!(got[5].contains("-> 403"), "{}", got[5]);
    assert!(
        got[6].starts_with("/deny/ 203.0.113.8 -> 200 "),
        "{}",
        got[6]
    );

    let ndir = TempDir::new("realip-nginx");
    let http = format!("server {{ listen 127.0.0.1:{{port}};\n{locs}\n}}");
    let Some(nginx) = Nginx::start(&ndir, &http) else {
        println!("note: nginx did not start; compared with nginx's documented behaviour only");
        return;
    };
    // The 403 pages name their server: compare the addresses only.
    let theirs = realip_cases(nginx.port);
    assert_eq!(got[..5], theirs[..5]);
}

#[test]
fn limits_key_on_the_real_address() {
    let s = Server::start(
        Conf::new()
            .workers(1)
            .http("    limit_req_zone $binary_remote_addr zone=per_ip:1m rate=1r/m;\n")
            .server(
                "location /lim/ { set_real_ip_from 127.0.0.0/8; limit_req zone=per_ip; \
                 add_header X-Addr $remote_addr always; try_files /hello.txt =404; }",
            ),
    );
    let as_ip = |ip: &str| request(s.port, "/lim/", &[("X-Real-IP", ip)]).status;
    assert_eq!(
        request(s.port, "/lim/", &[("X-Real-IP", "192.0.2.1")]).header("x-addr"),
        Some("192.0.2.1"),
        "a location's own set_real_ip_from"
    );
    assert_eq!(as_ip("192.0.2.1"), 429, "the same client");
    assert_eq!(
        as_ip("192.0.2.2"),
        200,
        "another client behind the same proxy"
    );
}

#[test]
fn bad_access_directives_fail_t() {
    let port = free_port();
    let server =
        |extra: &str| format!("  server {{\n    listen 127.0.0.1:{port};\n    {extra}\n  }}");
    assert_t_fails(
        "acc-pp",
        &server("real_ip_header proxy_protocol;"),
        7,
        "\"real_ip_header proxy_protocol\" needs \"listen ... proxy_protocol\"",
    );
    assert_t_fails(
        "acc-satisfy",
        &server("satisfy some;"),
        7,
        "invalid value \"some\"",
    );
    assert_t_fails(
        "acc-le",
        &server("location / { limit_except BREW { deny all; } }"),
        7,
        "invalid method \"BREW\"",
    );
    assert_t_fails(
        "acc-le-body",
        &server("location / { limit_except GET {\n root /tmp; } }"),
        8,
        "\"root\" directive is not supported inside \"limit_except\"",
    );
    assert_t_fails(
        "acc-set-builtin",
        &server("auth_request_set $host $upstream_http_x;"),
        7,
        "invalid variable name \"$host\"",
    );
    assert_t_fails(
        "acc-upstream-http",
        &server("add_header X $upstream_http_x_user;"),
        7,
        "unknown \"upstream_http_x_user\" variable",
    );
    assert_t_fails(
        "acc-from",
        &server("set_real_ip_from 10.0.0.0/40;"),
        7,
        "invalid value \"10.0.0.0/40\"",
    );
}

#[test]
fn auth_request_set_values_reach_the_proxied_request() {
    let auth = auth_origin();
    let app = Origin::fixed(ok_response(b"app"));
    let s = Server::start(Conf::new().workers(1).server(&format!(
        "location /papp/ {{ auth_request /_auth; auth_request_set $user $upstream_http_x_user; \
         proxy_set_header X-Auth-User $user; proxy_pass http://127.0.0.1:{}; }}\n\
         location = /_auth {{ proxy_pass http://127.0.0.1:{}/check; }}",
        app.port, auth.port
    )));
    let r = request(s.port, "/papp/x", &[("X-Token", "yes")]);
    assert_eq!((r.status, r.text().as_str()), (200, "app"));
    assert_eq!(app.only_request().header("x-auth-user"), Some("ann"));
    assert_eq!(request(s.port, "/papp/x", &[("X-Token", "no")]).status, 401);
    assert_eq!(
        app.request_count(),
        1,
        "a refused request never reaches the origin"
    );
}
