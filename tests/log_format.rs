//! `log_format` with any variable, escaping as nginx (`default`, `json`,
//! `none`), used by `access_log FILE NAME` for local and proxied requests;
//! an unknown format name fails `-t`.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn log_format_lines_carry_variables_escaped() {
    let origin = Origin::fixed(http_response(200, "", b"from origin"));
    let dir = TempDir::new("logfmt");
    let d = dir.path().display().to_string();
    let s = Server::start_in(
        dir,
        Conf::new().workers(1).http(
            "    log_format timed '$remote_addr \"$request\" $status $body_bytes_sent '\n\
             \x20       'host=$host ua=\"$http_user_agent\" up=$upstream_status x=$arg_x';\n\
             \x20   log_format js escape=json '{\"uri\":\"$uri\",\"ua\":\"$http_user_agent\",\"s\":$status}';",
        )
        .server(&format!(
            "        access_log {d}/timed.log timed;\n\
             \x20       access_log {d}/js.log js;\n\
             \x20       location /up/ {{ proxy_pass http://{}; }}",
            origin.addr()
        )),
    );
    let r = request(
        s.port,
        "/hello.txt?x=1",
        &[("User-Agent", "tool \"q\" \\ é")],
    );
    assert_eq!(r.status, 200);
    let r = request(s.port, "/up/a", &[]);
    assert_eq!(r.text(), "from origin");
    let read = |name: &str| {
        wait_for(Duration::from_secs(5), || {
            let t = std::fs::read_to_string(s.path(name)).unwrap_or_default();
            (t.lines().count() >= 2).then_some(t)
        })
        .unwrap_or_else(|| panic!("{name}: two lines"))
    };
    let timed = read("timed.log");
    let lines: Vec<&str> = timed.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "127.0.0.1 \"GET /hello.txt?x=1 HTTP/1.1\" 200 {} host=test ua=\"tool \\x22q\\x22 \\x5C \\xC3\\xA9\" up=- x=1",
            HELLO_TXT.len()
        )
    );
    assert_eq!(
        lines[1],
        "127.0.0.1 \"GET /up/a HTTP/1.1\" 200 11 host=test ua=\"-\" up=200 x=-"
    );
    let js = read("js.log");
    let lines: Vec<&str> = js.lines().collect();
    assert_eq!(
        lines[0],
        "{\"uri\":\"/hello.txt\",\"ua\":\"tool \\\"q\\\" \\\\ é\",\"s\":200}"
    );
    assert_eq!(lines[1], "{\"uri\":\"/up/a\",\"ua\":\"-\",\"s\":200}");
}

#[test]
fn an_unknown_or_duplicate_format_fails_t() {
    let port = free_port();
    let server = |extra: &str| format!("{extra}\n  server {{\n    listen 127.0.0.1:{port};\n  }}");
    assert_t_fails(
        "lf-unknown",
        &server("  access_log /tmp/x.log nosuch;"),
        5,
        "unknown log format \"nosuch\"",
    );
    assert_t_fails(
        "lf-dup",
        &server("  log_format a '$status';\n  log_format a '$uri';"),
        6,
        "duplicate \"log_format\" name \"a\"",
    );
    assert_t_fails(
        "lf-var",
        &server("  log_format a '$nope';"),
        5,
        "unknown \"nope\" variable",
    );
}
