//! Cache directives `sluice -t` must refuse with `file:line: message`: an
//! unknown zone, directives not implemented yet, and bad `proxy_cache_path`
//! / `proxy_cache_valid` / `proxy_ignore_headers` parameters.

use std::fs;
use std::time::Duration;

use crate::common::{run_sluice, CmdOutput, TempDir};

const CMD_TIMEOUT: Duration = Duration::from_secs(10);

/// A config with `http_line` at line 5 (http level) and `loc_line` at line
/// 10 (inside `location /`, which proxies and caches in zone `one`).
fn conf(dir: &TempDir, http_line: &str, loc_line: &str) -> String {
    format!(
        "worker_processes 1;\nevents {{\n}}\nhttp {{\n{http_line}\n    server {{\n\
         \x20       listen 127.0.0.1:1;\n        location / {{\n\
         \x20           proxy_pass http://127.0.0.1:9;\n{loc_line}\n        }}\n    }}\n}}\n",
        http_line = http_line.replace("DIR", &dir.join("c").display().to_string()),
    )
}

fn check(dir: &TempDir, text: &str) -> CmdOutput {
    let path = dir.join("t.conf");
    fs::write(&path, text).expect("write config");
    run_sluice(
        dir.path(),
        &["-t", "-c", path.to_str().expect("utf-8 path")],
        CMD_TIMEOUT,
    )
}

/// `-t` must fail naming `t.conf:<line>: <message>`.
#[track_caller]
fn assert_error(http_line: &str, loc_line: &str, line: usize, message: &str) {
    let dir = TempDir::new("cache-t");
    let out = check(&dir, &conf(&dir, http_line, loc_line));
    assert_eq!(
        out.status.code(),
        Some(1),
        "-t must exit 1 for {http_line:?} / {loc_line:?}; stderr: {}",
        out.stderr
    );
    let want = format!("{}:{line}: {message}", dir.join("t.conf").display());
    assert!(
        out.stderr.contains(&want),
        "stderr lacks {want:?}:\n{}",
        out.stderr
    );
}

const GOOD_PATH: &str =
    "    proxy_cache_path DIR levels=1:2 keys_zone=one:1m max_size=10m inactive=1h;";

#[test]
fn valid_cache_config_passes_the_test() {
    let dir = TempDir::new("cache-t-ok");
    let loc = "            proxy_cache one;\n            proxy_cache_key $scheme$proxy_host$host$request_uri$args$http_x_v$request_method;\n\
               \x20           proxy_cache_valid 200 302 10m;\n            proxy_cache_valid any 1m;\n\
               \x20           proxy_cache_revalidate on;\n            proxy_cache_convert_head off;\n\
               \x20           proxy_ignore_headers Set-Cookie Vary Expires;";
    let out = check(&dir, &conf(&dir, GOOD_PATH, loc));
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.contains("test is successful"), "{}", out.stderr);
}

#[test]
fn unknown_zone_is_reported_at_the_proxy_cache_line() {
    assert_error(
        GOOD_PATH,
        "            proxy_cache nozone;",
        10,
        "\"proxy_cache\" zone \"nozone\" is unknown",
    );
    // Without any proxy_cache_path at all.
    assert_error(
        "",
        "            proxy_cache one;",
        10,
        "\"proxy_cache\" zone \"one\" is unknown",
    );
}

#[test]
fn proxy_cache_methods_is_not_supported_yet() {
    assert_error(
        GOOD_PATH,
        "            proxy_cache one;\n            proxy_cache_methods GET HEAD POST;",
        11,
        "\"proxy_cache_methods\" is not supported yet",
    );
}

#[test]
fn bad_proxy_cache_path_parameters_are_reported() {
    for (line, msg) in [
        (
            "proxy_cache_path DIR levels=1:2;",
            "\"proxy_cache_path\" must have \"keys_zone\" parameter".to_string(),
        ),
        (
            "proxy_cache_path DIR levels=3 keys_zone=one:1m;",
            "invalid value \"levels=3\" in \"proxy_cache_path\" directive".into(),
        ),
        (
            "proxy_cache_path DIR levels=1:2:2:2 keys_zone=one:1m;",
            "invalid value \"levels=1:2:2:2\" in \"proxy_cache_path\" directive".into(),
        ),
        (
            "proxy_cache_path DIR keys_zone=one;",
            "invalid value \"keys_zone=one\" in \"proxy_cache_path\" directive".into(),
        ),
        (
            "proxy_cache_path DIR keys_zone=one:1k;",
            "keys_zone \"one\" is too small".into(),
        ),
        (
            "proxy_cache_path DIR keys_zone=one:1m max_size=lots;",
            "invalid value \"max_size=lots\" in \"proxy_cache_path\" directive".into(),
        ),
        (
            "proxy_cache_path DIR keys_zone=one:1m inactive=soon;",
            "invalid value \"inactive=soon\" in \"proxy_cache_path\" directive".into(),
        ),
        (
            "proxy_cache_path DIR keys_zone=one:1m bogus=1;",
            "invalid parameter \"bogus=1\"".into(),
        ),
        (
            "proxy_cache_path DIR keys_zone=one:1m levels;",
            "invalid parameter \"levels\"".into(),
        ),
        (
            "proxy_cache_path DIR;",
            "invalid number of arguments in \"proxy_cache_path\" directive".into(),
        ),
    ] {
        assert_error(&format!("    {line}"), "", 5, &msg);
    }
    // Two paths with one zone name.
    assert_error(
        "    proxy_cache_path DIR keys_zone=one:1m;\n    proxy_cache_path DIR2 keys_zone=one:1m;",
        "",
        6,
        "duplicate zone \"one\"",
    );
}

#[test]
fn misplaced_and_bad_cache_settings_are_reported() {
    // proxy_cache_path is http-level only.
    assert_error(
        GOOD_PATH,
        "            proxy_cache_path /tmp/x keys_zone=two:1m;",
        10,
        "\"proxy_cache_path\" directive is not allowed here",
    );
    assert_error(
        GOOD_PATH,
        "            proxy_cache_valid 200 soon;",
        10,
        "invalid value \"soon\" in \"proxy_cache_valid\" directive",
    );
    assert_error(
        GOOD_PATH,
        "            proxy_cache_valid 2000 1m;",
        10,
        "invalid value \"2000\" in \"proxy_cache_valid\" directive",
    );
    assert_error(
        GOOD_PATH,
        "            proxy_ignore_headers X-Nope;",
        10,
        "invalid value \"X-Nope\" in \"proxy_ignore_headers\" directive",
    );
    assert_error(
        GOOD_PATH,
        "            proxy_cache one;\n            proxy_cache one;",
        11,
        "\"proxy_cache\" directive is duplicate",
    );
}
