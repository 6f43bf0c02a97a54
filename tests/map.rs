//! `map` as nginx: exact keys ignoring case, hostname masks (longest
//! prefix mask, then suffix mask), regexes in order, `default` (possibly
//! with variables), values with variables, a map used before its block, in
//! `add_header`, `return` and a limit key; errors at `-t`.

mod common;

use common::*;

#[test]
fn maps_resolve_as_nginx() {
    let s = Server::start(
        Conf::new()
            .workers(1)
            .http(
                "    map $http_x_tier $tier { default free; gold paid; \\default weird; }\n\
                 \x20   map $host $site { hostnames; default other; example.com main; *.example.com sub;\n\
                 \x20       .example.org org; www.* www; ~^api[0-9]+\\. api; }\n\
                 \x20   map $http_user_agent $mobile { default 0; \"~Opera Mini\" 1; ~*iphone 2; }\n\
                 \x20   map $arg_u $who { default \"anon from $remote_addr\"; ~^(adm) \"admin $tier\"; }\n\
                 \x20   limit_req_zone $tier zone=tiers:64k rate=1r/m;",
            )
            .server(
                "        location = /t { add_header X-Tier $tier; return 200 \"$tier|$site|$mobile|$who\"; }\n\
                 \x20       location = /lim { limit_req zone=tiers; try_files /hello.txt =404; }",
            ),
    );
    let get = |headers: &[(&str, &str)], path: &str| {
        let r = request(s.port, path, headers);
        assert_eq!(r.status, 200, "{path} {headers:?}");
        r
    };
    let r = get(&[("X-Tier", "GOLD")], "/t");
    assert_eq!(r.header("x-tier"), Some("paid"), "keys match ignoring case");
    assert_eq!(r.text(), "paid|other|0|anon from 127.0.0.1");
    assert_eq!(
        get(&[("X-Tier", "default")], "/t").text().split('|').next(),
        Some("weird")
    );
    for (host, site) in [
        ("example.com", "main"),
        ("a.b.example.com", "sub"),
        ("example.org", "org"),
        ("x.example.org", "org"),
        ("www.example.net", "www"),
        ("api7.example.net", "api"),
        ("Example.COM", "main"),
        ("elsewhere.test", "other"),
    ] {
        let t = s.client().get_host("/t", host).unwrap().text();
        assert_eq!(t.split('|').nth(1), Some(site), "{host}");
    }
    let ua = |v: &str| {
        get(&[("User-Agent", v)], "/t")
            .text()
            .split('|')
            .nth(2)
            .unwrap()
            .to_string()
    };
    assert_eq!(ua("Opera/9.80 (Opera Mini/7)"), "1");
    assert_eq!(ua("opera mini"), "0", "~ is case-sensitive");
    assert_eq!(ua("Mozilla (iPhone)"), "2");
    assert_eq!(
        get(&[("X-Tier", "gold")], "/t?u=admin")
            .text()
            .rsplit('|')
            .next(),
        Some("admin paid")
    );
    // A map as a limit key: one key per tier.
    assert_eq!(request(s.port, "/lim", &[("X-Tier", "gold")]).status, 200);
    assert_eq!(request(s.port, "/lim", &[("X-Tier", "gold")]).status, 429);
    assert_eq!(
        request(s.port, "/lim", &[]).status,
        200,
        "the free tier has its own key"
    );
}

#[test]
fn bad_maps_fail_t() {
    let port = free_port();
    let with = |maps: &str| format!("{maps}\n  server {{\n    listen 127.0.0.1:{port};\n  }}");
    assert_t_fails(
        "map-name",
        &with("  map $arg_a b { default 1; }"),
        5,
        "invalid variable name \"b\"",
    );
    assert_t_fails(
        "map-dup",
        &with("  map $arg_a $host { default 1; }"),
        5,
        "the duplicate \"host\" variable",
    );
    assert_t_fails(
        "map-re",
        &with("  map $arg_a $x {\n    ~(bad 1;\n  }"),
        6,
        "invalid regex \"(bad\"",
    );
    assert_t_fails(
        "map-var",
        &with("  map $arg_a $x {\n    default $nope;\n  }"),
        6,
        "unknown \"nope\" variable",
    );
    assert_t_fails(
        "map-default",
        &with("  map $arg_a $x {\n    default 1;\n    default 2;\n  }"),
        7,
        "duplicate default map parameter",
    );
}
