//! End-to-end tests of the http, server and location contexts: listen,
//! locations, merge rules, access logs, types, return.

use std::path::Path;

use super::tests::{assert_err, http, load_err, load_ok};
use super::*;

fn server(body: &str) -> Config {
    load_ok(&http(&format!("server {{\n{body}\n}}")))
}

fn addrs(c: &Config) -> Vec<String> {
    c.http.servers[0]
        .listens
        .iter()
        .map(|l| l.addr.to_string())
        .collect()
}

fn header(name: &str, value: &str, always: bool) -> AddHeader {
    AddHeader {
        name: name.to_string(),
        value: Template::compile(value).unwrap(),
        always,
    }
}

#[test]
fn listen_address_forms() {
    let c = server(
        "listen 8080;\nlisten *:8081;\nlisten 127.0.0.1:8082;\nlisten [::1]:8083;\n\
         listen localhost:8084;\nlisten 10.0.0.1;\nlisten [::];\nlisten LOCALHOST;",
    );
    assert_eq!(
        addrs(&c),
        [
            "0.0.0.0:8080",
            "0.0.0.0:8081",
            "127.0.0.1:8082",
            "[::1]:8083",
            "127.0.0.1:8084",
            "10.0.0.1:80",
            "[::]:80",
            "127.0.0.1:80",
        ]
    );
}

#[test]
fn listen_flags() {
    let c = server("listen 8080 default_server reuseport backlog=511;\nlisten 8081 default;");
    let l = &c.http.servers[0].listens;
    assert!(l[0].default_server && l[0].reuseport);
    assert_eq!(l[0].backlog, 511);
    assert!(l[1].default_server && !l[1].reuseport);
    assert_eq!(l[1].backlog, 4096);
}

#[test]
fn listen_errors() {
    let cases = [
        ("127.0.0.1:99999", "invalid port in \"127.0.0.1:99999\""),
        ("0", "invalid port in \"0\""),
        ("127.0.0.1:", "invalid port in \"127.0.0.1:\""),
        ("127.0.0.1:+80", "invalid port in \"127.0.0.1:+80\""),
        ("example.com:80", "host not found in \"example.com:80\""),
        ("999.1.1.1:80", "host not found in \"999.1.1.1:80\""),
        ("[::1", "invalid IPv6 address in \"[::1\""),
        ("[zz]:80", "invalid IPv6 address in \"[zz]:80\""),
        ("[::1]80", "invalid port in \"[::1]80\""),
        (":80", "no host in \":80\""),
        (
            "unix:/tmp/s",
            "unix domain sockets are not supported in \"unix:/tmp/s\"",
        ),
    ];
    for (arg, msg) in cases {
        assert_err(
            &http(&format!("server {{\nlisten {arg};\n}}")),
            4,
            &format!("{msg} of the \"listen\" directive"),
        );
    }
    assert_err(
        &http("server {\nlisten 80 ssl;\n}"),
        4,
        "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive",
    );
    assert_err(
        &http("server {\nlisten 80 sssl;\n}"),
        4,
        "invalid parameter \"sssl\"",
    );
    for bad in ["0", "x", "-1", "2147483648", ""] {
        assert_err(
            &http(&format!("server {{\nlisten 80 backlog={bad};\n}}")),
            4,
            &format!("invalid backlog \"{bad}\""),
        );
    }
}

#[test]
fn duplicate_listen_in_one_server() {
    assert_err(
        &http("server {\n  listen 127.0.0.1:8080;\n  listen 127.0.0.1:8080 reuseport;\n}"),
        5,
        "duplicate listen 127.0.0.1:8080",
    );
    // Distinct addresses on one port, and one address in two servers, are fine.
    let c = load_ok(&http(
        "server { listen 127.0.0.1:80; listen 0.0.0.0:80; }\nserver { listen 127.0.0.1:80; }",
    ));
    assert_eq!(c.http.servers.len(), 2);
}

#[test]
fn duplicate_default_server() {
    assert_err(
        &http(
            "server {\n  listen 127.0.0.1:8080 default_server;\n}\n\
             server {\n  listen 8081;\n  listen 127.0.0.1:8080 default_server;\n}",
        ),
        8,
        "a duplicate default server for 127.0.0.1:8080",
    );
    let c = load_ok(&http(
        "server { listen 8080 default_server; }\nserver { listen 8081 default_server; }",
    ));
    assert!(c.http.servers.iter().all(|s| s.listens[0].default_server));
}

#[test]
fn server_names_are_lowercased_and_accumulate() {
    let c = server("server_name Example.com WWW.example.com;\nserver_name _ \"\" *.x.org;");
    assert_eq!(
        c.http.servers[0].server_names,
        ["example.com", "www.example.com", "_", "", "*.x.org"]
    );
    assert_err(
        &http("server {\nserver_name ~^www;\n}"),
        4,
        "regex server names are not supported: \"~^www\"",
    );
}

#[test]
fn location_kinds_in_file_order() {
    let c = server(
        "location = /exact {}\nlocation ^~ /static/ {}\nlocation /api {}\n\
         location =/joined {}\nlocation ^~/j2 {}",
    );
    let locs: Vec<(LocationMatch, &str, usize)> = c.http.servers[0]
        .locations
        .iter()
        .map(|l| (l.match_kind, l.path.as_str(), l.line))
        .collect();
    use LocationMatch::*;
    assert_eq!(
        locs,
        [
            (Exact, "/exact", 4),
            (PrefixNoRegex, "/static/", 5),
            (Prefix, "/api", 6),
            (Exact, "/joined", 7),
            (PrefixNoRegex, "/j2", 8),
            (Prefix, "/", 0),
        ]
    );
}

#[test]
fn location_forms() {
    // Every regex form compiles; `~*` ignores case; `@name` is parsed.
    for (loc, path, matches) in [
        ("~ \\.php$", "/a.php", true),
        ("~* \\.png$", "/A.PNG", true),
        ("~\\.php$", "/a.PHP", false),
        ("~*x", "/X", true),
    ] {
        let cfg = load_ok(&http(&format!("server {{\nlocation {loc} {{}}\n}}")));
        let l = &cfg.http.servers[0].locations[0];
        assert_eq!(l.match_kind, LocationMatch::Regex, "{loc}");
        assert_eq!(
            l.regex.as_ref().unwrap().is_match(path.as_bytes()),
            matches,
            "{loc} {path}"
        );
    }
    let cfg = load_ok(&http("server {\nlocation @fallback {}\n}"));
    assert_eq!(
        cfg.http.servers[0].locations[0].match_kind,
        LocationMatch::Named
    );
    let e = load_err(&http("server {\nlocation ~ (unclosed {}\n}")).to_string();
    assert!(
        e.starts_with(&format!(
            "{}:4: invalid regex \"(unclosed\": ",
            super::tests::CONF
        )),
        "{e}"
    );
    assert_err(
        &http("server {\nlocation >> /x {}\n}"),
        4,
        "invalid location modifier \">>\"",
    );
    assert_err(
        &http("server {\nlocation = /x /y {}\n}"),
        4,
        "invalid number of arguments in \"location\" directive",
    );
    assert_err(
        &http("server {\nlocation /x;\n}"),
        4,
        "directive \"location\" has no opening \"{\"",
    );
}

#[test]
fn nested_location_is_an_error() {
    assert_err(
        &http("server {\n  location /a {\n    root /x;\n    location /a/b { }\n  }\n}"),
        6,
        "nested locations are not supported",
    );
}

#[test]
fn duplicate_locations() {
    assert_err(
        &http("server {\n  location /x {}\n  location = /x {}\n  location /x {}\n}"),
        6,
        "duplicate location \"/x\"",
    );
    assert_err(
        &http("server {\n  location = /x {}\n  location = /x {}\n}"),
        5,
        "duplicate location \"/x\"",
    );
    // `^~ /x` and `/x` are the same static location, as in nginx.
    assert_err(
        &http("server {\n  location ^~ /x {}\n  location /x {}\n}"),
        5,
        "duplicate location \"/x\"",
    );
    // The same path in two servers is fine.
    load_ok(&http(
        "server { location /x {} }\nserver { location /x {} }",
    ));
}

#[test]
fn synthetic_root_location_carries_server_settings() {
    let c = load_ok(&http(
        "root /h;\nsendfile off;\nserver {\n  root /s;\n  keepalive_timeout 5s;\n  \
         add_header X-S s;\n  location = /e { root /l; }\n}",
    ));
    let locs = &c.http.servers[0].locations;
    assert_eq!(locs.len(), 2);
    let (e, root) = (&locs[0], &locs[1]);
    assert_eq!(e.root, Path::new("/l"));
    assert_eq!((root.line, root.path.as_str()), (0, "/"));
    assert_eq!(root.match_kind, LocationMatch::Prefix);
    assert_eq!(root.root, Path::new("/s"));
    assert_eq!(root.keepalive_timeout_ms, 5_000);
    assert!(!root.sendfile);
    assert_eq!(root.add_headers, [header("X-S", "s", false)]);
}

#[test]
fn no_synthetic_location_when_root_is_covered() {
    for loc in ["location /", "location ^~ /"] {
        let c = server(&format!("{loc} {{ root /r; }}\nlocation = / {{}}"));
        let locs = &c.http.servers[0].locations;
        assert_eq!(locs.len(), 2, "{loc}");
        assert!(locs.iter().all(|l| l.line != 0));
    }
    // `location = /` alone matches only "/", so "/" is still appended.
    let c = server("location = / {}");
    assert_eq!(c.http.servers[0].locations.len(), 2);
}

#[test]
fn settings_inherit_http_server_location() {
    let c = load_ok(&http(
        "keepalive_timeout 30s;\nkeepalive_requests 50;\nclient_body_timeout 5s;\n\
         send_timeout 7s;\nclient_max_body_size 10m;\ntcp_nodelay off;\nserver_tokens off;\n\
         index a.html;\n\
         server {\n  send_timeout 8s;\n  index b.html c.html;\n\
           location /one { client_max_body_size 0; sendfile off; }\n\
           location /two { index d.html; index e.html; server_tokens on; }\n}\n\
         server {}",
    ));
    let s = &c.http.servers[0];
    let (one, two, root) = (&s.locations[0], &s.locations[1], &s.locations[2]);
    for l in [one, two, root] {
        assert_eq!(l.keepalive_timeout_ms, 30_000);
        assert_eq!(l.keepalive_requests, 50);
        assert_eq!(l.client_body_timeout_ms, 5_000);
        assert_eq!(l.send_timeout_ms, 8_000);
        assert!(!l.tcp_nodelay);
    }
    assert_eq!(one.client_max_body_size_bytes, 0);
    assert!(!one.sendfile && two.sendfile);
    assert_eq!(two.client_max_body_size_bytes, 10 << 20);
    assert_eq!(one.index, ["b.html", "c.html"]);
    assert_eq!(two.index, ["d.html", "e.html"]);
    assert!(!one.server_tokens && two.server_tokens);
    let other = &c.http.servers[1].locations[0];
    assert_eq!(other.send_timeout_ms, 7_000);
    assert_eq!(other.index, ["a.html"]);
}

#[test]
fn http_settings_after_servers_still_apply() {
    let c = load_ok(&http("server {}\nroot /late;\nclient_header_timeout 3s;"));
    let s = &c.http.servers[0];
    assert_eq!(s.locations[0].root, Path::new("/late"));
    assert_eq!(s.client_header_timeout_ms, 3_000);
}

#[test]
fn add_header_level_replaces_inherited_list() {
    let c = load_ok(&http(
        "add_header X-H h;\nadd_header X-H2 \"two words\" always;\n\
         server {\n  location /inherit {}\n  location /own { add_header X-L l; }\n}\n\
         server {\n  add_header X-S s;\n  location /a {}\n}",
    ));
    let s0 = &c.http.servers[0];
    let http_level = [header("X-H", "h", false), header("X-H2", "two words", true)];
    assert_eq!(s0.locations[0].add_headers, http_level);
    assert_eq!(s0.locations[1].add_headers, [header("X-L", "l", false)]);
    assert_eq!(s0.locations[2].add_headers, http_level);
    let s1 = &c.http.servers[1];
    assert_eq!(s1.locations[0].add_headers, [header("X-S", "s", false)]);
    assert_eq!(s1.locations[1].add_headers, [header("X-S", "s", false)]);
}

#[test]
fn add_header_validation() {
    assert_err(
        &http("add_header X v sometimes;"),
        3,
        "invalid parameter \"sometimes\"",
    );
    assert_err(
        &http("add_header \"X Y\" v;"),
        3,
        "invalid header name \"X Y\"",
    );
    assert_err(&http("add_header \"\" v;"), 3, "invalid header name \"\"");
    assert_err(
        &http("add_header X \"a\\r\\nSet-Cookie: x\";"),
        3,
        "invalid header value in \"X\"",
    );
}

#[test]
fn access_logs_dedupe_by_path_and_merge() {
    let c = load_ok(&http(
        "access_log /l/a.log;\naccess_log /l/j.log json buffer=32k flush=5s;\n\
         server {\n  location /off { access_log off; }\n  \
           location /own { access_log /l/a.log combined; }\n  \
           location /both { access_log /l/j.log json buffer=32k flush=5s; access_log /l/b.log buffer=1k; }\n}\n\
         server { access_log off; location /x { } }",
    ));
    let logs = &c.http.access_logs;
    assert_eq!(logs.len(), 3);
    assert_eq!(logs[0].path, Path::new("/l/a.log"));
    assert_eq!(
        (logs[0].format, logs[0].buffer_bytes, logs[0].flush_ms),
        (LogFormat::Combined, 0, 0)
    );
    assert_eq!(
        (logs[1].format, logs[1].buffer_bytes, logs[1].flush_ms),
        (LogFormat::Json, 32 * 1024, 5_000)
    );
    assert_eq!((logs[2].buffer_bytes, logs[2].flush_ms), (1024, 0));
    let l = &c.http.servers[0].locations;
    assert!(l[0].access_logs.is_empty());
    assert_eq!(l[1].access_logs, [0]);
    assert_eq!(l[2].access_logs, [1, 2]);
    assert_eq!(l[3].access_logs, [0, 1]);
    assert!(c.http.servers[1]
        .locations
        .iter()
        .all(|l| l.access_logs.is_empty()));
}

#[test]
fn access_log_flush_without_buffer_and_off_wins() {
    let c =
        server("access_log /a.log flush=2s;\nlocation /x { access_log /b.log; access_log off; }");
    assert_eq!(c.http.access_logs[0].flush_ms, 2_000);
    assert_eq!(c.http.access_logs[0].buffer_bytes, 0);
    assert!(c.http.servers[0].locations[0].access_logs.is_empty());
    assert_eq!(c.http.servers[0].locations[1].access_logs, [0]);
}

#[test]
fn access_log_errors() {
    assert_err(
        &http("access_log /a.log;\nserver {\n  access_log /a.log json;\n}"),
        5,
        "conflicting access_log parameters for /a.log",
    );
    assert_err(
        &http("access_log /a.log buffer=1k;\naccess_log /a.log buffer=2k;"),
        4,
        "conflicting access_log parameters for /a.log",
    );
    assert_err(
        &http("access_log /a.log main;"),
        3,
        "unknown log format \"main\"",
    );
    assert_err(
        &http("access_log off json;"),
        3,
        "invalid parameter \"json\"",
    );
    assert_err(
        &http("access_log /a.log json gzip;"),
        3,
        "invalid parameter \"gzip\"",
    );
    assert_err(
        &http("access_log /a.log buffer=x;"),
        3,
        "invalid buffer size \"x\"",
    );
    assert_err(
        &http("access_log /a.log flush=1q;"),
        3,
        "invalid flush time \"1q\"",
    );
}

#[test]
fn types_blocks_replace_default_table() {
    let c = load_ok(&http(
        "types {\n  text/html html HTM;\n  text/plain txt;\n}\ntypes {\n  text/x-html html;\n}\n\
         default_type text/plain;",
    ));
    assert_eq!(
        c.http.mime_types,
        [
            ("html".to_string(), "text/x-html".to_string()),
            ("htm".to_string(), "text/html".to_string()),
            ("txt".to_string(), "text/plain".to_string()),
        ]
    );
    assert_eq!(c.http.default_type, "text/plain");
    // An empty `types {}` means no types at all, as in nginx.
    assert!(load_ok(&http("types {}")).http.mime_types.is_empty());
    assert_err(
        &http("types {\n  text/html { }\n}"),
        4,
        "directive \"text/html\" is not terminated by \";\"",
    );
}

#[test]
fn types_and_default_type_only_at_http_level() {
    assert_err(
        &http("server {\n  default_type text/plain;\n}"),
        4,
        "\"default_type\" directive is not allowed here",
    );
    assert_err(
        &http("server {\n location / {\n  types { }\n }\n}"),
        5,
        "\"types\" directive is not allowed here",
    );
    assert_err(
        &http("default_type a;\ndefault_type b;"),
        4,
        "\"default_type\" directive is duplicate",
    );
}

#[test]
fn return_forms() {
    let c = server(
        "return 301 https://example.com$request_uri;\n\
         location = /a { return 200 \"ok\"; }\nlocation = /b { return 404; }\n\
         location = /c { return https://x/; }\nlocation = /d { return $scheme://h/p; }\n\
         location = /e { return http://x/; }\nlocation = /f { return 444; }\n\
         location = /g { return 0 zero; }",
    );
    let s = &c.http.servers[0];
    let ret = |code: u16, text: Option<&str>| ReturnConf {
        code,
        text: text.map(|t| Template::compile(t).unwrap()),
    };
    assert_eq!(
        s.rewrite.first_return().cloned(),
        Some(ret(301, Some("https://example.com$request_uri")))
    );
    let got: Vec<Option<ReturnConf>> = s
        .locations
        .iter()
        .map(|l| l.rewrite.first_return().cloned())
        .collect();
    assert_eq!(
        got,
        [
            Some(ret(200, Some("ok"))),
            Some(ret(404, None)),
            Some(ret(302, Some("https://x/"))),
            Some(ret(302, Some("$scheme://h/p"))),
            Some(ret(302, Some("http://x/"))),
            Some(ret(444, None)),
            Some(ret(0, Some("zero"))),
            None,
        ]
    );
}

#[test]
fn return_errors() {
    for (args, msg) in [
        ("1000", "invalid return code \"1000\""),
        ("abc", "invalid return code \"abc\""),
        ("/relative", "invalid return code \"/relative\""),
        ("https://x y", "invalid return code \"https://x\""),
        (
            "99999999999999999999999",
            "invalid return code \"99999999999999999999999\"",
        ),
        ("\"\"", "invalid return code \"\""),
    ] {
        assert_err(&http(&format!("server {{\nreturn {args};\n}}")), 4, msg);
    }
    assert_err(
        &http("server {\nreturn 200 a b;\n}"),
        4,
        "invalid number of arguments in \"return\" directive",
    );
    // nginx: several `return`s are ops in order (the first answers).
    let c = load_ok(&http("server {\nlocation / { return 200; return 201; }\n}"));
    let ops = &c.http.servers[0].locations[0].rewrite.ops;
    assert_eq!(ops.len(), 2);
    assert_err(
        &http("return 200;"),
        3,
        "\"return\" directive is not allowed here",
    );
}

#[test]
fn status_directive() {
    let c = server("location = /status { status; }");
    let l = &c.http.servers[0].locations;
    assert!(l[0].status && !l[1].status);
}

#[test]
fn keepalive_timeout_header_value_is_rejected() {
    assert_err(
        &http("server {\n  keepalive_timeout 75s 60s;\n}"),
        4,
        "keepalive_timeout header value is not supported",
    );
    assert_err(
        &http("keepalive_timeout 1 2 3;"),
        3,
        "invalid number of arguments in \"keepalive_timeout\" directive",
    );
    let c = server("keepalive_timeout 0;");
    assert_eq!(c.http.servers[0].locations[0].keepalive_timeout_ms, 0);
}

#[test]
fn large_client_header_buffers_and_client_header_timeout() {
    let c = load_ok(&http(
        "large_client_header_buffers 8 16k;\nclient_header_timeout 10s;\n\
         server {}\nserver { large_client_header_buffers 2 1k; client_header_timeout 1s; }",
    ));
    let s = &c.http.servers;
    assert_eq!(
        (s[0].large_header_buffers, s[0].client_header_timeout_ms),
        ((8, 16384), 10_000)
    );
    assert_eq!(
        (s[1].large_header_buffers, s[1].client_header_timeout_ms),
        ((2, 1024), 1_000)
    );
    assert_err(
        &http("large_client_header_buffers 0 8k;"),
        3,
        "invalid value \"0\" in \"large_client_header_buffers\" directive",
    );
    assert_err(
        &http("large_client_header_buffers 4 0;"),
        3,
        "invalid value \"0\" in \"large_client_header_buffers\" directive, the size must be at least 1k",
    );
    assert_err(
        &http("large_client_header_buffers 4 8q;"),
        3,
        "invalid value \"8q\" in \"large_client_header_buffers\" directive",
    );
    assert_err(
        &http("server { location / { client_header_timeout 1s; } }"),
        3,
        "\"client_header_timeout\" directive is not allowed here",
    );
}

#[test]
fn bad_values_in_http_contexts() {
    assert_err(
        &http("sendfile maybe;"),
        3,
        "invalid value \"maybe\" in \"sendfile\" directive, it must be \"on\" or \"off\"",
    );
    assert_err(
        &http("client_max_body_size 1t;"),
        3,
        "invalid value \"1t\" in \"client_max_body_size\" directive",
    );
    assert_err(
        &http("keepalive_requests many;"),
        3,
        "invalid value \"many\" in \"keepalive_requests\" directive",
    );
    assert_err(
        &http("server {\nlocation / {\nsend_timeout 5x;\n}\n}"),
        5,
        "invalid value \"5x\" in \"send_timeout\" directive",
    );
    assert_err(
        &http("index a \"\";"),
        3,
        "invalid value \"\" in \"index\" directive",
    );
    let e = load_err(&http("root \"\";"));
    assert_eq!(e.line, 3);
}

#[test]
fn client_header_timeout_18446744073709551615ms_is_an_invalid_value() {
    // Regression: accepted by -t, then every connection overflowed
    // `now_ms + timeout_ms`. Every duration and size is capped in units.rs.
    assert_err(
        &http("client_header_timeout 18446744073709551615ms;"),
        3,
        "invalid value \"18446744073709551615ms\" in \"client_header_timeout\" directive",
    );
    assert_err(
        &http("keepalive_timeout 101y;"),
        3,
        "invalid value \"101y\" in \"keepalive_timeout\" directive",
    );
    assert_err(
        &http("client_max_body_size 18446744073709551615;"),
        3,
        "invalid value \"18446744073709551615\" in \"client_max_body_size\" directive",
    );
    assert_err(
        &http("keepalive_requests 18446744073709551615;"),
        3,
        "invalid value \"18446744073709551615\" in \"keepalive_requests\" directive",
    );
    // The largest values still load.
    let c = load_ok(&http(
        "client_header_timeout 100y; client_max_body_size 1048576g; server {}",
    ));
    assert_eq!(
        c.http.servers[0].locations[0].client_max_body_size_bytes,
        crate::util::units::MAX_SIZE_BYTES
    );
}

#[test]
fn unknown_variables_are_file_line_errors_everywhere_a_string_takes_variables() {
    // Regression: `return 301 https://$server_name$request_uri` sent the
    // literal `$server_name`... when misspelled, and `add_header X-Cache
    // $upstream_cache_status` sent the text: now every such string is
    // compiled at load and an unknown name is refused by -t.
    for (directive, name) in [
        ("return 200 \"$no_such_var\";", "no_such_var"),
        ("return 301 https://$server_nam$request_uri;", "server_nam"),
        (
            "add_header X-A $upstream_cache_stat;",
            "upstream_cache_stat",
        ),
        ("proxy_set_header X-A $remote_adr;", "remote_adr"),
        ("proxy_cache_key $schem$host;", "schem"),
        ("proxy_cache_bypass $nocache;", "nocache"),
        ("proxy_no_cache $x;", "x"),
    ] {
        assert_err(
            &http(&format!("server {{\nlocation / {{\n{directive}\n}}\n}}")),
            5,
            &format!("unknown \"{name}\" variable"),
        );
    }
    assert_err(
        &http("server {\nlocation / {\nreturn 200 \"a$\";\n}\n}"),
        5,
        "invalid variable name in \"a$\"",
    );
    // Known ones load, compiled.
    let c = load_ok(&http(
        "server {\nlocation / {\nreturn 301 https://$server_name$request_uri;\n\
         add_header X-Cache $upstream_cache_status;\n}\n}",
    ));
    let l = &c.http.servers[0].locations[0];
    let ret = l
        .rewrite
        .first_return()
        .and_then(|r| r.text.as_ref())
        .unwrap();
    assert_eq!(
        ret.parts,
        vec![
            Part::Text("https://".into()),
            Part::Var(Var::ServerName),
            Part::Var(Var::RequestUri)
        ]
    );
    assert!(l.add_headers[0].value.uses(&Var::UpstreamCacheStatus));
}
