//! Tests of the cache directives (`resolve_cache.rs`): values, defaults,
//! merging, and `file:line` errors, on directives parsed from text.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::parse::{parse_text, Directive};
use super::resolve_cache::*;
use super::*;

fn parse(text: &str) -> Vec<Directive> {
    match parse_text(
        text,
        Arc::new(PathBuf::from("/etc/sluice/c.conf")),
        Path::new("/etc/sluice"),
    ) {
        Ok(d) => d,
        Err(e) => panic!("parse: {e}"),
    }
}

fn one(text: &str) -> Directive {
    parse(text).remove(0)
}

fn path_ok(text: &str) -> CachePathConf {
    match parse_proxy_cache_path(&one(text), Path::new("/etc/sluice")) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn path_err(text: &str) -> String {
    match parse_proxy_cache_path(&one(text), Path::new("/etc/sluice")) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// Applies every directive of `text` to one level.
fn level(text: &str) -> Result<CacheInherit, ConfigError> {
    let mut l = CacheInherit::default();
    for d in parse(text) {
        assert!(l.apply(&d)?, "not a cache directive: {}", d.name);
    }
    Ok(l)
}

fn level_err(text: &str) -> String {
    match level(text) {
        Ok(l) => panic!("expected an error, got {l:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn cache_path_full_and_defaults() {
    let c = path_ok(
        "proxy_cache_path /var/cache/s levels=1:2 keys_zone=one:10m max_size=1g \
         inactive=60m use_temp_path=off min_free=100m loader_files=200 loader_sleep=10ms;",
    );
    assert_eq!(c.dir, Path::new("/var/cache/s"));
    assert_eq!(c.levels, vec![1, 2]);
    assert_eq!((c.zone_name.as_str(), c.zone_size_bytes), ("one", 10 << 20));
    assert_eq!(c.max_size_bytes, Some(1 << 30));
    assert_eq!(c.min_free_bytes, Some(100 << 20));
    assert_eq!(c.inactive_ms, 3_600_000);
    assert!(!c.use_temp_path);
    assert_eq!(
        (c.loader_files, c.loader_sleep_ms, c.loader_threshold_ms),
        (200, 10, 200)
    );

    let c = path_ok("proxy_cache_path cache keys_zone=z:1m;");
    assert_eq!(c.dir, Path::new("/etc/sluice/cache"));
    assert!(c.levels.is_empty());
    assert_eq!(
        (c.max_size_bytes, c.inactive_ms, c.use_temp_path),
        (None, 600_000, true)
    );
}

#[test]
fn cache_path_errors_name_file_and_line() {
    let f = "/etc/sluice/c.conf";
    assert_eq!(
        path_err("\n\nproxy_cache_path /c levels=1:2;"),
        format!("{f}:3: \"proxy_cache_path\" must have \"keys_zone\" parameter")
    );
    for (arg, msg) in [
        (
            "levels=3",
            "invalid value \"levels=3\" in \"proxy_cache_path\" directive",
        ),
        (
            "levels=1:2:2:1",
            "invalid value \"levels=1:2:2:1\" in \"proxy_cache_path\" directive",
        ),
        (
            "levels=",
            "invalid value \"levels=\" in \"proxy_cache_path\" directive",
        ),
        (
            "keys_zone=one",
            "invalid value \"keys_zone=one\" in \"proxy_cache_path\" directive",
        ),
        (
            "keys_zone=:1m",
            "invalid value \"keys_zone=:1m\" in \"proxy_cache_path\" directive",
        ),
        (
            "keys_zone=one:1x",
            "invalid value \"keys_zone=one:1x\" in \"proxy_cache_path\" directive",
        ),
        ("keys_zone=one:1k", "keys_zone \"one\" is too small"),
        (
            "max_size=lots",
            "invalid value \"max_size=lots\" in \"proxy_cache_path\" directive",
        ),
        (
            "inactive=1q",
            "invalid value \"inactive=1q\" in \"proxy_cache_path\" directive",
        ),
        (
            "use_temp_path=yes",
            "invalid value \"use_temp_path=yes\" in \"proxy_cache_path\" directive",
        ),
        (
            "loader_files=0",
            "invalid value \"loader_files=0\" in \"proxy_cache_path\" directive",
        ),
        ("purger=on", "invalid parameter \"purger=on\""),
        ("bogus", "invalid parameter \"bogus\""),
    ] {
        let text = format!("proxy_cache_path /c keys_zone=z:1m {arg};");
        assert_eq!(path_err(&text), format!("{f}:1: {msg}"), "{arg}");
    }
}

#[test]
fn duplicate_zones_and_paths_and_unknown_zone_refs() {
    let ds = parse(
        "proxy_cache_path /a keys_zone=one:1m;\nproxy_cache_path /b keys_zone=one:1m;\n\
         proxy_cache_path /a keys_zone=two:1m;\nproxy_cache nope;",
    );
    let first = parse_proxy_cache_path(&ds[0], Path::new("/")).unwrap();
    let paths = vec![first];
    let second = parse_proxy_cache_path(&ds[1], Path::new("/")).unwrap();
    let e = check_cache_path_unique(&ds[1], &second, &paths).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/sluice/c.conf:2: duplicate zone \"one\""
    );
    let third = parse_proxy_cache_path(&ds[2], Path::new("/")).unwrap();
    let e = check_cache_path_unique(&ds[2], &third, &paths).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/sluice/c.conf:3: duplicate cache path \"/a\""
    );
    assert!(check_zone_ref(&ds[3], "one", &paths).is_ok());
    let e = check_zone_ref(&ds[3], "nope", &paths).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/sluice/c.conf:4: \"proxy_cache\" zone \"nope\" is unknown"
    );
}

#[test]
fn location_defaults() {
    let c = CacheInherit::default().finish();
    assert_eq!(c, LocationCacheConf::default());
    assert_eq!(c.zone, None);
    assert_eq!(c.key, DEFAULT_CACHE_KEY);
    assert_eq!(c.methods, vec!["GET", "HEAD"]);
    assert!(c.valid.is_empty() && !c.lock && c.revalidate && c.convert_head && !c.purge);
    assert_eq!(
        (c.lock_timeout_ms, c.lock_age_ms, c.min_uses),
        (5000, 5000, 1)
    );
}

#[test]
fn location_settings_parse() {
    let c = level(
        "proxy_cache one; proxy_cache_key $host$uri; proxy_cache_valid 200 302 10m;\n\
         proxy_cache_valid 404 1m; proxy_cache_valid any 30s; proxy_cache_valid 5m;\n\
         proxy_cache_lock on; proxy_cache_lock_timeout 2s; proxy_cache_min_uses 3;\n\
         proxy_cache_use_stale error timeout http_500 http_503;\n\
         proxy_cache_background_update on; proxy_cache_revalidate off;\n\
         proxy_cache_methods GET POST; proxy_cache_bypass $cookie_nocache $arg_nocache;\n\
         proxy_no_cache $http_pragma; proxy_ignore_headers Set-Cookie vary X-Accel-Redirect;",
    )
    .unwrap()
    .finish();
    assert_eq!(c.zone.as_deref(), Some("one"));
    assert_eq!(c.key, "$host$uri");
    assert_eq!(
        c.valid,
        vec![
            (vec![200, 302], 600_000),
            (vec![404], 60_000),
            (vec![], 30_000),
            (vec![200, 301, 302], 300_000)
        ]
    );
    assert!(c.lock && c.background_update && !c.revalidate);
    assert_eq!((c.lock_timeout_ms, c.min_uses), (2000, 3));
    let s = c.use_stale;
    assert!(s.error && s.timeout && !s.updating && s.http_500 && s.http_503);
    assert!(!s.http_502 && !s.http_504 && !s.invalid_header);
    assert!(s.on_status(503) && !s.on_status(502) && s.any_failure());
    assert_eq!(c.methods, vec!["GET", "HEAD", "POST"]);
    assert_eq!(c.bypass, vec!["$cookie_nocache", "$arg_nocache"]);
    assert_eq!(c.no_cache, vec!["$http_pragma"]);
    let ig = c.ignore_headers;
    assert!(ig.set_cookie && ig.vary && !ig.expires && !ig.cache_control && !ig.x_accel_expires);
    let off = level("proxy_cache off; proxy_cache_use_stale off;")
        .unwrap()
        .finish();
    assert_eq!(off.zone, None);
    assert_eq!(off.use_stale, UseStale::default());
    assert!(!UseStale {
        updating: true,
        ..UseStale::default()
    }
    .any_failure());
}

#[test]
fn location_value_errors() {
    let f = "/etc/sluice/c.conf";
    for (text, msg) in [
        ("proxy_cache_valid 200 abc;", "invalid value \"abc\" in \"proxy_cache_valid\" directive"),
        ("proxy_cache_valid 99 1m;", "invalid value \"99\" in \"proxy_cache_valid\" directive"),
        ("proxy_cache_valid 2000 1m;", "invalid value \"2000\" in \"proxy_cache_valid\" directive"),
        ("proxy_cache_valid any 200 1m;", "invalid value \"any\" in \"proxy_cache_valid\" directive"),
        ("proxy_cache_use_stale error off;", "invalid value \"off\" in \"proxy_cache_use_stale\" directive"),
        ("proxy_cache_use_stale http_501;", "invalid value \"http_501\" in \"proxy_cache_use_stale\" directive"),
        ("proxy_cache_lock maybe;", "invalid value \"maybe\" in \"proxy_cache_lock\" directive, it must be \"on\" or \"off\""),
        ("proxy_cache_lock_timeout 5x;", "invalid value \"5x\" in \"proxy_cache_lock_timeout\" directive"),
        ("proxy_cache_min_uses 0;", "invalid value \"0\" in \"proxy_cache_min_uses\" directive"),
        ("proxy_cache_methods GET PUT;", "invalid value \"PUT\" in \"proxy_cache_methods\" directive"),
        ("proxy_ignore_headers Server;", "invalid value \"Server\" in \"proxy_ignore_headers\" directive"),
        ("proxy_cache \"\";", "invalid value \"\" in \"proxy_cache\" directive"),
        ("proxy_cache_key \"\";", "invalid value \"\" in \"proxy_cache_key\" directive"),
        ("proxy_cache_purge yes;", "invalid value \"yes\" in \"proxy_cache_purge\" directive"),
        ("proxy_cache_purge on from;", "invalid number of arguments in \"proxy_cache_purge\" directive"),
        ("proxy_cache_purge off from all;", "invalid number of arguments in \"proxy_cache_purge\" directive"),
        ("proxy_cache_purge on to 1.2.3.4;", "invalid number of arguments in \"proxy_cache_purge\" directive"),
        ("proxy_cache_purge on from 10.0.0.0/33;", "invalid value \"10.0.0.0/33\" in \"proxy_cache_purge\" directive"),
        ("proxy_cache_purge on from example.com;", "invalid value \"example.com\" in \"proxy_cache_purge\" directive"),
    ] {
        let text = format!("\n{text}");
        assert_eq!(level_err(&text), format!("{f}:2: {msg}"), "{text}");
    }
}

#[test]
fn purge_allow_lists() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let c = level("proxy_cache_purge on;").unwrap().finish();
    assert!(c.purge_allowed(ip("127.0.0.1")) && c.purge_allowed(ip("::1")));
    assert!(c.purge_allowed(ip("::ffff:127.0.0.9")));
    assert!(!c.purge_allowed(ip("10.0.0.1")));
    let c = level("proxy_cache_purge on from 10.1.2.3/8 2001:db8::/32 192.168.1.5;")
        .unwrap()
        .finish();
    assert_eq!(c.purge_allow[0].addr, ip("10.0.0.0"));
    assert!(c.purge_allowed(ip("10.200.0.1")) && c.purge_allowed(ip("2001:db8:1::5")));
    assert!(c.purge_allowed(ip("192.168.1.5")) && !c.purge_allowed(ip("192.168.1.6")));
    assert!(!c.purge_allowed(ip("127.0.0.1")) && !c.purge_allowed(ip("2001:db9::1")));
    let c = level("proxy_cache_purge on from all;").unwrap().finish();
    assert!(c.purge_allowed(ip("8.8.8.8")) && c.purge_allowed(ip("2a00::1")));
    let c = level("proxy_cache_purge off;").unwrap().finish();
    assert!(!c.purge_allowed(ip("127.0.0.1")));
}

#[test]
fn inner_levels_override_and_lists_replace() {
    let http = level(
        "proxy_cache one; proxy_cache_valid 200 10m; proxy_cache_lock on; proxy_cache_bypass $arg_a;",
    )
    .unwrap();
    let server = level("proxy_cache_valid 404 1m;").unwrap().over(&http);
    let loc = level("proxy_cache off;").unwrap().over(&server).finish();
    assert_eq!(loc.zone, None);
    assert_eq!(loc.valid, vec![(vec![404], 60_000)]);
    assert!(loc.lock);
    assert_eq!(loc.bypass, vec!["$arg_a"]);
    let loc = CacheInherit::default().over(&server).finish();
    assert_eq!(loc.zone.as_deref(), Some("one"));
    // Not a cache directive: left to the caller.
    let mut l = CacheInherit::default();
    assert!(!l.apply(&one("root /x;")).unwrap());
}

#[test]
fn directive_table_covers_every_location_directive() {
    let mut l = CacheInherit::default();
    for (name, _, min, _, _) in CACHE_DIRECTIVES {
        if *name == "proxy_cache_path" {
            continue;
        }
        let args = match *name {
            "proxy_cache_valid" | "proxy_cache_lock_timeout" | "proxy_cache_lock_age" => "1m",
            "proxy_cache_min_uses" => "2",
            "proxy_cache_use_stale" => "error",
            "proxy_cache_methods" => "GET",
            "proxy_ignore_headers" => "Vary",
            "proxy_cache" | "proxy_cache_key" | "proxy_cache_bypass" | "proxy_no_cache" => "x",
            _ => "on",
        };
        assert!(*min <= 1);
        assert!(l.apply(&one(&format!("{name} {args};"))).unwrap(), "{name}");
    }
}
