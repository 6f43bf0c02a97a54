//! Tests of the traffic-limit directives: zones, keys, inheritance, errors.

use super::tests::{assert_err, http, load_ok};
use super::*;

fn zones_and(zones: &str, server: &str) -> Config {
    load_ok(&http(&format!("{zones}\nserver {{\n{server}\n}}")))
}

fn loc<'a>(c: &'a Config, path: &str) -> &'a LocationConf {
    match c.http.servers[0].locations.iter().find(|l| l.path == path) {
        Some(l) => l,
        None => panic!("no location {path}"),
    }
}

#[test]
fn zones_parse_with_their_units() {
    let c = zones_and(
        "limit_req_zone $binary_remote_addr zone=ip:1m rate=10r/s;\n\
         limit_req_zone $host zone=perhost:64k rate=30r/m;\n\
         count_zone zone=hits:2m window=60s precision=100ms;\n\
         limit_bytes_zone $host zone=quota:1m quota=10m per=1h;",
        "",
    );
    let z = &c.http.limits.zones;
    assert_eq!(z.len(), 4);
    assert_eq!(
        (z[0].name.as_str(), z[0].size_bytes, z[0].kind),
        (
            "ip",
            1 << 20,
            ZoneKind::Rate {
                interval_us: 100_000
            }
        )
    );
    assert_eq!(z[0].key.parts, [Part::Var(Var::BinaryRemoteAddr)]);
    assert!(
        z[2].key.parts.is_empty(),
        "a count_zone has no key of its own"
    );
    assert_eq!(
        z[1].kind,
        ZoneKind::Rate {
            interval_us: 2_000_000
        }
    );
    assert_eq!(
        z[2].kind,
        ZoneKind::Count {
            window_ms: 60_000,
            precision_ms: 100
        }
    );
    assert_eq!(
        z[3].kind,
        ZoneKind::Bytes {
            quota_bytes: 10 << 20,
            per_ms: 3_600_000
        }
    );
    // Sizes are rounded up to pages.
    let c = zones_and("limit_req_zone $uri zone=r:10000 rate=1r/s;", "");
    assert_eq!(c.http.limits.zones[0].size_bytes, 12288);
}

#[test]
fn key_templates() {
    let c = zones_and(
        "limit_req_zone \"u:$http_x_user_id/${cookie_sid}-$arg_k$remote_addr$uri\" zone=k:64k rate=1r/s;",
        "",
    );
    assert_eq!(
        c.http.limits.zones[0].key.parts,
        [
            Part::Text("u:".into()),
            Part::Var(Var::Http("x-user-id".into())),
            Part::Text("/".into()),
            Part::Var(Var::Cookie("sid".into())),
            Part::Text("-".into()),
            Part::Var(Var::Arg("k".into())),
            Part::Var(Var::RemoteAddr),
            Part::Var(Var::Uri),
        ]
    );
}

#[test]
fn keys_take_every_variable_of_the_engine() {
    let c = zones_and(
        "limit_req_zone $request_method zone=m:64k rate=1r/s;\n\
         limit_req_zone \"$scheme://$server_name$request_uri\" zone=u:64k rate=1r/s;\n\
         limit_bytes_zone $http_x_forwarded_for zone=q:64k quota=1m per=1h;\n\
         count_zone zone=hits:64k window=10s;",
        "location = /c { count zone=hits key=$request_method:$args; count_report zone=hits key=${Request_Method}; }",
    );
    let z = &c.http.limits.zones;
    assert_eq!(z[0].key.parts, [Part::Var(Var::RequestMethod)]);
    assert_eq!(z[1].key, "$scheme://$server_name$request_uri");
    assert!(z[1].key.uses(&Var::ServerName) && z[1].key.uses(&Var::RequestUri));
    assert_eq!(
        z[2].key.parts,
        [Part::Var(Var::Http("x-forwarded-for".into()))]
    );
    let l = &loc(&c, "/c").limits;
    assert_eq!(l.count[0].key, "$request_method:$args");
    assert_eq!(
        l.report.as_ref().unwrap().key.parts,
        [Part::Var(Var::RequestMethod)]
    );
}

#[test]
fn an_unknown_key_variable_is_an_error_at_its_line() {
    let cases = [
        (
            "limit_req_zone $nosuchvar zone=a:1m rate=1r/s;",
            "unknown \"nosuchvar\" variable",
        ),
        (
            "limit_bytes_zone \"$host$server_nam\" zone=q:1m quota=1m per=1h;",
            "unknown \"server_nam\" variable",
        ),
        (
            "limit_req_zone ${host zone=a:1m rate=1r/s;",
            "invalid variable name in \"${host\"",
        ),
        (
            "limit_req_zone a$ zone=a:1m rate=1r/s;",
            "invalid variable name in \"a$\"",
        ),
    ];
    for (text, msg) in cases {
        assert_err(&http(text), 3, msg);
    }
    assert_err(
        &http("count_zone zone=c:1m window=1s;\nserver {\nlocation / {\ncount zone=c key=$arg_a$nope;\n}\n}"),
        6,
        "unknown \"nope\" variable",
    );
    assert_err(
        &http("count_zone zone=c:1m window=1s;\nserver {\nlocation / {\ncount_report zone=c key=$http_;\n}\n}"),
        6,
        "unknown \"http_\" variable",
    );
}

#[test]
fn location_limits_and_nginx_inheritance() {
    let c = zones_and(
        "limit_req_zone $binary_remote_addr zone=a:64k rate=1r/s;\n\
         limit_req_zone $binary_remote_addr zone=b:64k rate=1r/s;\n\
         count_zone zone=hits:1m window=10s;\n\
         limit_bytes_zone $host zone=q:64k quota=1m per=1d;\n\
         limit_req zone=a burst=5;\nlimit_req_status 503;\nlimit_req_log_level warn;",
        "limit_req_subnet 24 64;\n\
         location /own/ { limit_req zone=b burst=2 nodelay; limit_req_dry_run on; }\n\
         location /delay/ { limit_req zone=b burst=12 delay=8; limit_bytes zone=q; }\n\
         location /plain/ { }\n\
         location = /count { count zone=hits key=$arg_u; count_report zone=hits; }\n\
         location = /check { limit_check; }",
    );
    let own = &loc(&c, "/own/").limits;
    assert_eq!(
        own.req,
        [LimitReqConf {
            zone: 1,
            burst: 2,
            delay: ReqDelay::NoDelay
        }]
    );
    assert!(own.dry_run);
    assert_eq!((own.req_status, own.log_level), (503, log::Level::Warn));
    assert_eq!((own.subnet_v4_bits, own.subnet_v6_bits), (24, 64));
    let d = &loc(&c, "/delay/").limits;
    assert_eq!(d.req[0].delay, ReqDelay::After(8));
    assert_eq!(d.bytes, [3]);
    let plain = &loc(&c, "/plain/").limits;
    assert_eq!(
        plain.req,
        [LimitReqConf {
            zone: 0,
            burst: 5,
            delay: ReqDelay::After(0)
        }]
    );
    assert!(!plain.dry_run && plain.is_active());
    let count = &loc(&c, "/count").limits;
    assert_eq!(count.count.len(), 1);
    // count_report without key= reports what the location counts.
    let report = count.report.as_ref().unwrap();
    assert_eq!(report.zone, 2);
    assert_eq!(report.key.parts, [Part::Var(Var::Arg("u".into()))]);
    assert!(loc(&c, "/check").limits.check);
    let fresh = zones_and("", "location /x { }");
    assert!(!loc(&fresh, "/x").limits.is_active());
    assert_eq!(loc(&fresh, "/x").limits.req_status, 429);
}

#[test]
fn unknown_zone_is_nginx_zero_size_error() {
    assert_err(
        &http("server {\nlocation / {\nlimit_req zone=nope;\n}\n}"),
        5,
        "zero size shared memory zone \"nope\"",
    );
    // Also at a level no location inherits from.
    assert_err(
        &http("limit_req zone=nope;\nserver {\nlocation / { limit_req zone=x; }\n}"),
        3,
        "zero size shared memory zone \"nope\"",
    );
    assert_err(
        &http("count_zone zone=c:1m window=1s;\nserver {\nlocation / {\nlimit_req zone=c;\n}\n}"),
        6,
        "zone \"c\" is declared by \"count_zone\", \"limit_req\" needs a \"limit_req_zone\"",
    );
}

#[test]
fn bad_values_have_precise_errors() {
    let cases = [
        (
            "limit_req_zone $binary_remote_addr zone=a:1m rate=10r/h;",
            "invalid rate \"10r/h\"",
        ),
        (
            "limit_req_zone $binary_remote_addr zone=a:1m rate=2000000r/s;",
            "rate \"2000000r/s\" is too high (at most 1000000r/s)",
        ),
        (
            "limit_req_zone $binary_remote_addr zone=a rate=1r/s;",
            "invalid zone size \"a\"",
        ),
        (
            "limit_req_zone $binary_remote_addr zone=../x:1m rate=1r/s;",
            "invalid zone name \"../x\" (letters, digits, \"_\", \"-\", \".\")",
        ),
        (
            "limit_req_zone $bogus zone=a:1m rate=1r/s;",
            "unknown \"bogus\" variable",
        ),
        (
            "limit_req_zone $binary_remote_addr zone=a:1m;",
            "\"limit_req_zone\" must have \"rate\" parameter",
        ),
        (
            "limit_req_zone $binary_remote_addr zone=a:1m rate=1r/s burst=3;",
            "invalid parameter \"burst=3\"",
        ),
        (
            "count_zone zone=c:1m window=1s precision=300ms;",
            "window 1000ms is not a multiple of precision 300ms",
        ),
        (
            "count_zone zone=c:16k window=60s precision=10ms;",
            "zone \"c\" is too small: each key takes 48024 bytes, at least 388288 bytes are needed",
        ),
        (
            "limit_bytes_zone $host zone=q:1m quota=0 per=1h;",
            "invalid quota \"0\" (1 byte to 1023g)",
        ),
        ("limit_req_status 200;", "value must be between 400 and 599"),
        (
            "limit_req_log_level debug;",
            "invalid value \"debug\" in \"limit_req_log_level\" directive, it must be \"info\", \"notice\", \"warn\" or \"error\"",
        ),
        ("limit_req_subnet 33;", "invalid prefix length \"33\""),
        (
            "limit_req_zone $uri zone=a:1m rate=1r/s;\nlimit_req_zone $uri zone=a:1m rate=1r/s;",
            "duplicate zone \"a\"",
        ),
    ];
    for (text, msg) in cases {
        let line = 3 + text.matches('\n').count();
        assert_err(&http(text), line, msg);
    }
}

#[test]
fn location_only_directives_stay_in_locations() {
    assert_err(
        &http("count_zone zone=c:1m window=1s;\ncount zone=c;"),
        4,
        "\"count\" directive is not allowed here",
    );
    assert_err(
        &http("limit_req_zone $uri zone=a:1m rate=1r/s;\nserver {\nlimit_req_zone $uri zone=b:1m rate=1r/s;\n}"),
        5,
        "\"limit_req_zone\" directive is not allowed here",
    );
    assert_err(
        &http("server {\nlocation = /c {\nlimit_check;\n}\n}"),
        5,
        "\"limit_check\" needs a \"limit_req\", \"limit_bytes\" or \"count\" to apply",
    );
    assert_err(
        &http("limit_req_zone $uri zone=a:1m rate=1r/s;\nserver {\nlocation / {\nlimit_req zone=a;\nlimit_req zone=a burst=2;\n}\n}"),
        7,
        "duplicate limit_req zone \"a\"",
    );
    assert_err(
        &http("limit_req_zone $uri zone=a:1m rate=1r/s;\nserver {\nlocation / {\nlimit_req burst=2;\n}\n}"),
        6,
        "\"limit_req\" must have \"zone\" parameter",
    );
}
