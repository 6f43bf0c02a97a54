//! End-to-end tests of `load`/`load_str`: main and events contexts, generic
//! errors with `file:line`, `-g`, includes, relative paths, garbage input.
//! http/server/location behaviour is in `tests_http.rs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

pub(super) const CONF: &str = "/etc/sluice/sluice.conf";

pub(super) fn load_ok(text: &str) -> Config {
    match load_str(text, Path::new(CONF), None) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

pub(super) fn load_err(text: &str) -> ConfigError {
    match load_str(text, Path::new(CONF), None) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e,
    }
}

/// Asserts that `text` fails at `line` of the main file with exactly `message`.
#[track_caller]
pub(super) fn assert_err(text: &str, line: usize, message: &str) {
    let e = load_err(text);
    assert_eq!(e.to_string(), format!("{CONF}:{line}: {message}"));
}

/// `events {}` plus an http block holding `body`.
pub(super) fn http(body: &str) -> String {
    format!("events {{}}\nhttp {{\n{body}\n}}\n")
}

/// A fresh directory under the system temp dir, removed on drop.
pub(super) struct TempDir(pub PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sluice-config-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(super) fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = load_ok("events {}\nhttp {\n  server {}\n}\n");
    assert_eq!(c.file, Path::new(CONF));
    assert_eq!(c.worker_processes, 1);
    assert!(c.daemon);
    assert_eq!(c.pid_path, Path::new("/run/sluice.pid"));
    assert_eq!(c.error_log.path, None);
    assert_eq!(c.error_log.level, log::LevelFilter::Error);
    assert_eq!(c.worker_shutdown_timeout_ms, 10_000);
    assert_eq!(c.state_dir, Path::new("/var/lib/sluice"));
    assert_eq!(c.worker_rlimit_nofile, None);
    assert_eq!(c.events.worker_connections, 1024);
    assert_eq!(c.events.accept_mode, AcceptMode::Handoff);
    assert!(c.http.access_logs.is_empty());
    assert_eq!(c.http.default_type, "application/octet-stream");
    assert_eq!(c.http.mime_types, default_mime_types());
    let s = &c.http.servers[0];
    assert_eq!(s.line, 3);
    assert_eq!(s.listens.len(), 1);
    assert_eq!(s.listens[0].addr.to_string(), "0.0.0.0:80");
    assert!(!s.listens[0].default_server && !s.listens[0].reuseport);
    assert_eq!(s.listens[0].backlog, 4096);
    assert!(s.server_names.is_empty());
    assert_eq!(s.client_header_timeout_ms, 60_000);
    assert_eq!(s.large_header_buffers, (4, 8192));
    assert_eq!(s.rewrite.first_return().cloned(), None);
    let l = &s.locations[0];
    assert_eq!(
        (l.line, l.match_kind, l.path.as_str()),
        (0, LocationMatch::Prefix, "/")
    );
    assert_eq!(l.root, Path::new("/etc/sluice/html"));
    assert_eq!(l.index, ["index.html"]);
    assert_eq!((l.rewrite.first_return().cloned(), l.status), (None, false));
    assert!(l.access_logs.is_empty());
    assert_eq!(l.keepalive_timeout_ms, 75_000);
    assert_eq!(l.keepalive_requests, 1000);
    assert_eq!(l.client_body_timeout_ms, 60_000);
    assert_eq!(l.send_timeout_ms, 60_000);
    assert_eq!(l.client_max_body_size_bytes, 1 << 20);
    assert!(l.sendfile && l.tcp_nodelay && l.server_tokens);
    assert!(l.add_headers.is_empty());
}

#[test]
fn http_without_servers_is_fine() {
    let c = load_ok("events {}\nhttp {}\n");
    assert!(c.http.servers.is_empty());
}

#[test]
fn main_directives_happy_path() {
    let c = load_ok(
        "worker_processes 4;\ndaemon off;\npid run/s.pid;\nerror_log /var/log/e.log warn;\n\
         worker_shutdown_timeout 1m30s;\nstate_dir ./state;\nworker_rlimit_nofile 65536;\n\
         events { worker_connections 4096; accept_mode reuseport; }\nhttp {}\n",
    );
    assert_eq!(c.worker_processes, 4);
    assert!(!c.daemon);
    assert_eq!(c.pid_path, Path::new("/etc/sluice/run/s.pid"));
    assert_eq!(
        c.error_log.path.as_deref(),
        Some(Path::new("/var/log/e.log"))
    );
    assert_eq!(c.error_log.level, log::LevelFilter::Warn);
    assert_eq!(c.worker_shutdown_timeout_ms, 90_000);
    assert_eq!(c.state_dir, Path::new("/etc/sluice/state"));
    assert_eq!(c.worker_rlimit_nofile, Some(65536));
    assert_eq!(c.events.worker_connections, 4096);
    assert_eq!(c.events.accept_mode, AcceptMode::Reuseport);
}

#[test]
fn worker_processes_auto_is_the_core_count() {
    let c = load_ok("worker_processes auto;\nevents {}\nhttp {}\n");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(c.worker_processes, cores);
    assert_err(
        "worker_processes 0;\nevents {}\nhttp {}\n",
        1,
        "invalid value \"0\" in \"worker_processes\" directive",
    );
}

#[test]
fn error_log_levels_map_to_level_filters() {
    use log::LevelFilter::*;
    for (word, level) in [
        ("debug", Debug),
        ("info", Info),
        ("notice", Info),
        ("warn", Warn),
        ("error", Error),
        ("crit", Error),
        ("alert", Error),
        ("emerg", Error),
    ] {
        let c = load_ok(&format!(
            "error_log stderr {word};\nevents {{}}\nhttp {{}}\n"
        ));
        assert_eq!((c.error_log.path.clone(), c.error_log.level), (None, level));
    }
    let c = load_ok("error_log logs/error.log;\nevents {}\nhttp {}\n");
    assert_eq!(
        c.error_log.path.as_deref(),
        Some(Path::new("/etc/sluice/logs/error.log"))
    );
    assert_eq!(c.error_log.level, Error);
    assert_err(
        "events {}\nerror_log stderr loud;\nhttp {}\n",
        2,
        "invalid log level \"loud\"",
    );
}

#[test]
fn events_rejects_unknown_and_bad_values() {
    // nginx's tuning directives are accepted; another event method is not.
    load_ok("events {\n  use epoll;\n  multi_accept on;\n}\nhttp {}\n");
    assert_err(
        "events {\n  use kqueue;\n}\nhttp {}\n",
        2,
        "invalid event type \"kqueue\": sluice uses epoll",
    );
    assert_err(
        "events {\n  use_epoll;\n}\nhttp {}\n",
        2,
        "unknown directive \"use_epoll\"",
    );
    assert_err(
        "load_module modules/x.so;\nevents {}\nhttp {}\n",
        1,
        "\"load_module\": dynamic modules are not supported: sluice is one binary",
    );
    assert_err(
        "events {\n\n  worker_connections abc;\n}\nhttp {}\n",
        3,
        "invalid value \"abc\" in \"worker_connections\" directive",
    );
    assert_err(
        "events { worker_connections 0; }\nhttp {}\n",
        1,
        "invalid value \"0\" in \"worker_connections\" directive",
    );
    assert_err(
        "events { accept_mode steal; }\nhttp {}\n",
        1,
        "invalid value \"steal\" in \"accept_mode\" directive",
    );
    assert_err(
        "events { root /x; }\nhttp {}\n",
        1,
        "\"root\" directive is not allowed here",
    );
}

#[test]
fn missing_events_or_http_section() {
    let e = load_err("http {}\n");
    assert_eq!(
        e.to_string(),
        format!("{CONF}: no \"events\" section in configuration")
    );
    assert_eq!(e.line, 0);
    let e = load_err("events {}\n");
    assert_eq!(
        e.to_string(),
        format!("{CONF}: no \"http\" section in configuration")
    );
    let e = load_err("");
    assert!(e.message.contains("no \"events\" section"));
}

#[test]
fn unknown_directive_reports_its_line() {
    let text = "events {}\nhttp {\n    server {\n        listen 8080;\n\n        \
                location / {\n        }\n        bogus_directive on;\n    }\n}\n";
    let e = load_err(text);
    assert!(
        e.to_string()
            .contains(":8: unknown directive \"bogus_directive\""),
        "{e}"
    );
    assert_eq!(e.file, Path::new(CONF));
}

#[test]
fn directive_in_wrong_context() {
    assert_err(
        &http("listen 80;"),
        3,
        "\"listen\" directive is not allowed here",
    );
    assert_err(
        &http("server {\n worker_processes 2;\n}"),
        4,
        "\"worker_processes\" directive is not allowed here",
    );
    assert_err(
        "events {}\nhttp {}\nserver {}\n",
        3,
        "\"server\" directive is not allowed here",
    );
    assert_err(
        "events {}\nhttp { events {} }\n",
        2,
        "\"events\" directive is not allowed here",
    );
    assert_err(
        &http("server { status; }"),
        3,
        "\"status\" directive is not allowed here",
    );
}

#[test]
fn wrong_argument_counts() {
    assert_err(
        &http("root a b;"),
        3,
        "invalid number of arguments in \"root\" directive",
    );
    assert_err(
        "daemon;\nevents {}\nhttp {}\n",
        1,
        "invalid number of arguments in \"daemon\" directive",
    );
    assert_err(
        "events {}\nhttp x {}\n",
        2,
        "invalid number of arguments in \"http\" directive",
    );
    assert_err(
        &http("server { location / { status on; } }"),
        3,
        "invalid number of arguments in \"status\" directive",
    );
    assert_err(
        &http("add_header X;"),
        3,
        "invalid number of arguments in \"add_header\" directive",
    );
}

#[test]
fn duplicate_directives_at_one_level() {
    assert_err(
        &http("root /a;\n\nroot /b;"),
        5,
        "\"root\" directive is duplicate",
    );
    assert_err(
        "events {}\nevents {}\nhttp {}\n",
        2,
        "\"events\" directive is duplicate",
    );
    assert_err(
        "events {}\nhttp {}\nhttp {}\n",
        3,
        "\"http\" directive is duplicate",
    );
    assert_err(
        "daemon on;\ndaemon off;\nevents {}\nhttp {}\n",
        2,
        "\"daemon\" directive is duplicate",
    );
    // The same directive at different levels is not a duplicate.
    load_ok(&http(
        "root /a;\nserver { root /b; location / { root /c; } }",
    ));
}

#[test]
fn block_expected_or_unexpected() {
    assert_err(
        "events {}\nhttp;\n",
        2,
        "directive \"http\" has no opening \"{\"",
    );
    assert_err(
        &http("server;"),
        3,
        "directive \"server\" has no opening \"{\"",
    );
    assert_err(
        &http("root /x { }"),
        3,
        "directive \"root\" is not terminated by \";\"",
    );
    assert_err(
        "daemon off { }\nevents {}\nhttp {}\n",
        1,
        "directive \"daemon\" is not terminated by \";\"",
    );
}

#[test]
fn bad_values_in_main_context() {
    assert_err(
        "daemon yes;\nevents {}\nhttp {}\n",
        1,
        "invalid value \"yes\" in \"daemon\" directive, it must be \"on\" or \"off\"",
    );
    assert_err(
        "worker_shutdown_timeout 10x;\nevents {}\nhttp {}\n",
        1,
        "invalid value \"10x\" in \"worker_shutdown_timeout\" directive",
    );
    assert_err(
        "worker_rlimit_nofile -1;\nevents {}\nhttp {}\n",
        1,
        "invalid value \"-1\" in \"worker_rlimit_nofile\" directive",
    );
    assert_err(
        "pid \"\";\nevents {}\nhttp {}\n",
        1,
        "invalid value \"\" in \"pid\" directive",
    );
}

#[test]
fn syntax_errors_carry_file_and_line() {
    assert_err("events {}\nhttp {}\n}\n", 3, "unexpected \"}\"");
    assert_err("}", 1, "unexpected \"}\"");
    assert_err(
        "events {}\nhttp {}\ndaemon off",
        3,
        "unexpected end of file, expecting \";\" or \"}\"",
    );
    assert_err(
        "events {}\nhttp {\n server {\n",
        3,
        "unexpected end of file, expecting \"}\"",
    );
    assert_err(
        "events {}\npid \"/x;\nhttp {}\n",
        2,
        "unterminated quoted string",
    );
}

#[test]
fn relative_paths_resolve_against_main_conf_dir() {
    let c = load_ok(
        "pid ../run/s.pid;\nstate_dir st;\nerror_log ./e.log;\nevents {}\n\
         http { root www; access_log logs/a.log; server { root /abs; } server {} }\n",
    );
    assert_eq!(c.pid_path, Path::new("/etc/sluice/../run/s.pid"));
    assert_eq!(c.state_dir, Path::new("/etc/sluice/st"));
    assert_eq!(
        c.error_log.path.as_deref(),
        Some(Path::new("/etc/sluice/e.log"))
    );
    assert_eq!(
        c.http.access_logs[0].path,
        Path::new("/etc/sluice/logs/a.log")
    );
    assert_eq!(c.http.servers[0].locations[0].root, Path::new("/abs"));
    assert_eq!(
        c.http.servers[1].locations[0].root,
        Path::new("/etc/sluice/www")
    );
}

#[test]
fn relative_main_path_is_made_absolute() {
    let c = match load_str("events {}\nhttp {}\n", Path::new("conf/x.conf"), None) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert!(c.file.is_absolute());
    assert!(c.file.ends_with("conf/x.conf"));
}

#[test]
fn extra_main_overrides_file_directives() {
    let text = "daemon on;\nworker_processes 8;\npid /a.pid;\nevents {}\nhttp {}\n";
    let c = load_str(
        text,
        Path::new(CONF),
        Some("daemon off; worker_processes 2;"),
    )
    .unwrap();
    assert!(!c.daemon);
    assert_eq!(c.worker_processes, 2);
    assert_eq!(c.pid_path, Path::new("/a.pid"));
    // -g paths are relative to the main config's directory.
    let c = load_str(text, Path::new(CONF), Some("pid x.pid;")).unwrap();
    assert_eq!(c.pid_path, Path::new("/etc/sluice/x.pid"));
}

#[test]
fn extra_main_errors_name_dash_g() {
    let text = "events {}\nhttp {}\n";
    let e = load_str(text, Path::new(CONF), Some("daemon off;\nbogus 1;")).unwrap_err();
    assert_eq!(e.to_string(), "-g:2: unknown directive \"bogus\"");
    let e = load_str(text, Path::new(CONF), Some("daemon off; daemon on;")).unwrap_err();
    assert_eq!(e.to_string(), "-g:1: \"daemon\" directive is duplicate");
    let e = load_str(text, Path::new(CONF), Some("daemon off")).unwrap_err();
    assert_eq!(e.file, Path::new("-g"));
    let e = load_str(text, Path::new(CONF), Some("listen 80;")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "-g:1: \"listen\" directive is not allowed here"
    );
}

#[test]
fn load_reads_file_with_glob_includes() {
    let tmp = TempDir::new("load");
    tmp.write(
        "mime.types",
        "types {\n  text/html html;\n  image/png png;\n}\n",
    );
    tmp.write("conf.d/b.conf", "server {\n  listen 8082;\n}\n");
    tmp.write(
        "conf.d/a.conf",
        "server {\n  listen 8081;\n  root site;\n}\n",
    );
    let main = tmp.write(
        "main.conf",
        "events {}\nhttp {\n  include mime.types;\n  include conf.d/*.conf;\n}\n",
    );
    let c = load(&main, None).unwrap();
    assert_eq!(c.file, main);
    let ports: Vec<u16> = c
        .http
        .servers
        .iter()
        .map(|s| s.listens[0].addr.port())
        .collect();
    assert_eq!(ports, [8081, 8082]);
    assert_eq!(c.http.servers[0].line, 1);
    assert_eq!(c.http.servers[0].locations[0].root, tmp.0.join("site"));
    assert_eq!(
        c.http.mime_types,
        [
            ("html".to_string(), "text/html".to_string()),
            ("png".to_string(), "image/png".to_string())
        ]
    );
}

#[test]
fn error_inside_included_file_names_that_file() {
    let tmp = TempDir::new("incerr");
    let inc = tmp.write(
        "sites/one.conf",
        "server {\n  listen 80;\n  bogus_directive on;\n}\n",
    );
    let main = tmp.write(
        "main.conf",
        "events {}\nhttp {\n  include sites/*.conf;\n}\n",
    );
    let e = load(&main, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}:3: unknown directive \"bogus_directive\"", inc.display())
    );
    let main = tmp.write(
        "main2.conf",
        "events {}\nhttp {\n\n  include missing.conf;\n}\n",
    );
    let e = load(&main, None).unwrap_err();
    assert_eq!((e.file.clone(), e.line), (main, 4));
}

#[test]
fn load_missing_or_non_utf8_file() {
    let tmp = TempDir::new("missing");
    let path = tmp.0.join("nope.conf");
    let e = load(&path, None).unwrap_err();
    assert_eq!(e.line, 0);
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot open: ", path.display())),
        "{e}"
    );
    let bad = tmp.0.join("bad.conf");
    fs::write(&bad, b"events {}\n\nhttp { \xc3\x28 }\n").unwrap();
    let e = load(&bad, None).unwrap_err();
    assert_eq!((e.file, e.line), (bad, 3));
}

#[test]
fn shipped_default_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/sluice.conf");
    let c = load(&path, Some("daemon off;")).unwrap();
    assert!(!c.daemon);
    assert_eq!(c.events.worker_connections, 4096);
    assert_eq!(c.error_log.level, log::LevelFilter::Info);
    assert_eq!(c.http.access_logs.len(), 1);
    assert_eq!(c.http.access_logs[0].buffer_bytes, 64 * 1024);
    assert_eq!(c.http.access_logs[0].flush_ms, 1000);
    let s = &c.http.servers[0];
    assert_eq!(s.listens[0].addr.to_string(), "127.0.0.1:8080");
    assert_eq!(s.server_names, ["localhost"]);
    let paths: Vec<&str> = s.locations.iter().map(|l| l.path.as_str()).collect();
    assert_eq!(paths, ["/status", "/hello", "/"]);
    assert!(s.locations[0].status);
    assert_eq!(
        s.locations[1]
            .rewrite
            .first_return()
            .unwrap()
            .text
            .as_ref()
            .map(|t| t.source.as_str()),
        Some("hello from sluice\n")
    );
    assert!(s.locations.iter().all(|l| l.access_logs == [0]));
}

#[test]
fn quoted_strings_with_spaces_and_escapes() {
    let c = load_ok(&http(
        "server {\n  root \"/srv/my site\";\n  server_name 'Example.COM' \"\" _;\n  \
         location = /q { return 200 \"say \\\"hi\\\"\\n\\tbye\"; }\n}",
    ));
    let s = &c.http.servers[0];
    assert_eq!(s.server_names, ["example.com", "", "_"]);
    assert_eq!(s.locations[0].root, Path::new("/srv/my site"));
    let ret = s.locations[0].rewrite.first_return().cloned().unwrap();
    assert_eq!(
        ret.text.as_ref().map(|t| t.source.as_str()),
        Some("say \"hi\"\n\tbye")
    );
}

/// xorshift64*: deterministic pseudo-random numbers for the garbage tests.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn garbage_input_never_panics() {
    let mut next = rng(0x5eed);
    for _ in 0..300 {
        let len = (next() % 400) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = load_str(&text, Path::new(CONF), Some(&text));
    }
    for text in [
        "}",
        "{",
        ";",
        "{{{{",
        "}}}}",
        "\"",
        "'",
        "\\",
        "#",
        "events {",
        "http { } }",
    ] {
        assert!(load_str(text, Path::new(CONF), None).is_err(), "{text:?}");
    }
}

#[test]
fn token_soup_never_panics() {
    const WORDS: &[&str] = &[
        "events",
        "http",
        "server",
        "location",
        "listen",
        "root",
        "return",
        "types",
        "access_log",
        "add_header",
        "include",
        "status",
        "=",
        "^~",
        "~",
        "/",
        "80",
        "[::1]:99999",
        "off",
        "on",
        "json",
        "buffer=",
        "flush=1s",
        "\"\"",
        "'x y'",
        "99999999999999999999",
        "1h30m",
        "default_server",
        "backlog=0",
        "keepalive_timeout",
        "large_client_header_buffers",
        "$scheme://x",
        "301",
        "index",
        "server_name",
        "~*",
        "@x",
        "*:8080",
        "localhost",
    ];
    const PUNCT: &[&str] = &[" ", " ", " ", ";\n", " {\n", "}\n"];
    let mut next = rng(42);
    for _ in 0..2000 {
        let mut text = String::from("events {}\nhttp {\n");
        for _ in 0..(next() % 40) {
            if next().is_multiple_of(3) {
                text.push_str(PUNCT[(next() % PUNCT.len() as u64) as usize]);
            } else {
                text.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
                text.push(' ');
            }
        }
        let _ = load_str(&text, Path::new(CONF), None);
    }
}

#[test]
fn feature_resolvers_use_only_the_value_parsers() {
    // Regression: resolve*.rs formed a 7-file cycle (each feature resolver
    // used resolve.rs's value parsers, resolve.rs used every feature).
    // Now: resolve -> resolve_http -> each feature -> values (a leaf).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config");
    for f in [
        "resolve_cache.rs",
        "resolve_cluster.rs",
        "resolve_limits.rs",
        "resolve_proxy.rs",
        "resolve_waiting_room.rs",
        "values.rs",
    ] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            assert!(
                !code.contains("super::resolve"),
                "{f}:{}: a feature resolver or the value leaf uses another resolver: {line}",
                n + 1
            );
        }
    }
}

#[test]
fn user_resolves_to_ids_for_a_root_master_and_is_ignored_otherwise() {
    let c = load_ok("user nobody nogroup;\nevents {}\nhttp {}\n");
    if crate::sys::geteuid() != 0 {
        assert_eq!(c.user, None);
        return;
    }
    let (Ok(Some(uid)), Ok(Some(gid))) = (
        crate::sys::user_uid("nobody"),
        crate::sys::group_gid("nogroup"),
    ) else {
        eprintln!("skipped: no nobody/nogroup here");
        return;
    };
    let u = c.user.expect("user");
    assert_eq!((u.name.as_str(), u.uid, u.gid), ("nobody", uid, gid));
    assert_eq!(load_ok("events {}\nhttp {}\n").user, None);
    assert_err(
        "user no-such-user-here;\nevents {}\nhttp {}\n",
        1,
        "getpwnam(\"no-such-user-here\") failed: no such user",
    );
    assert_err(
        "user nobody no-such-group-here;\nevents {}\nhttp {}\n",
        1,
        "getgrnam(\"no-such-group-here\") failed: no such group",
    );
    assert_err(
        "user a b c;\nevents {}\nhttp {}\n",
        1,
        "invalid number of arguments in \"user\" directive",
    );
}
