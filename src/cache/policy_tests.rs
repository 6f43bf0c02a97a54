//! Tests of `policy.rs`: what is stored, for how long, and in what form.

use super::*;
use crate::cache::key::variant_md5;

const T: i64 = 1_700_000_000;

fn http_date(t: i64) -> Vec<u8> {
    let mut b = [0u8; 29];
    format_http_date(t, &mut b);
    b.to_vec()
}

fn store(
    method: &str,
    req: Headers<'_, '_>,
    status: u16,
    resp: Headers<'_, '_>,
    cfg: &StoreConfig,
) -> Storable {
    storable(method.as_bytes(), req, status, resp, cfg, T, T)
}

fn yes(s: Storable) -> StoreDecision {
    match s {
        Storable::Yes(d) => d,
        Storable::No(why) => panic!("not stored: {}", why.as_str()),
    }
}

fn no(s: Storable) -> NotStored {
    match s {
        Storable::No(why) => why,
        Storable::Yes(d) => panic!("stored: {d:?}"),
    }
}

fn cfg() -> StoreConfig {
    StoreConfig::default()
}

const MAX60: &[(&[u8], &[u8])] = &[(b"Cache-Control", b"max-age=60")];

#[test]
fn explicit_freshness_is_stored_with_age_subtracted() {
    let d = yes(store("GET", &[], 200, MAX60, &cfg()));
    assert_eq!(
        (d.lifetime_s, d.expires_at, d.from_valid),
        (60, T + 60, false)
    );
    // Age: 20 from an upstream cache and a 2s round trip.
    let resp: &[(&[u8], &[u8])] = &[(b"Cache-Control", b"max-age=60"), (b"Age", b"20")];
    let d = yes(storable(b"GET", &[], 200, resp, &cfg(), T - 2, T));
    assert_eq!(d.expires_at, T + 60 - 22);
}

#[test]
fn only_get_responses_with_storable_statuses() {
    assert_eq!(
        no(store("HEAD", &[], 200, MAX60, &cfg())),
        NotStored::Method
    );
    assert_eq!(
        no(store("POST", &[], 200, MAX60, &cfg())),
        NotStored::Method
    );
    for s in [101, 206, 304, 600, 0] {
        assert_eq!(
            no(store("GET", &[], s, MAX60, &cfg())),
            NotStored::Status,
            "{s}"
        );
    }
    for s in [203, 301, 302, 307, 404, 410, 500] {
        yes(store("GET", &[], s, MAX60, &cfg()));
    }
}

#[test]
fn refusals_no_store_private_vary_star_set_cookie() {
    let r = |v: &[u8]| -> Vec<(&[u8], Vec<u8>)> { vec![(b"Cache-Control", v.to_vec())] };
    let check = |resp: Vec<(&[u8], Vec<u8>)>, why| {
        let h: Vec<(&[u8], &[u8])> = resp.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        assert_eq!(no(store("GET", &[], 200, &h, &cfg())), why);
    };
    check(r(b"max-age=60, no-store"), NotStored::NoStore);
    check(r(b"max-age=60, private"), NotStored::Private);
    let mut v = r(b"max-age=60");
    v.push((b"Vary", b"Accept, *".to_vec()));
    check(v, NotStored::VaryStar);
    let mut v = r(b"max-age=60");
    v.push((b"Set-Cookie", b"s=1".to_vec()));
    check(v, NotStored::SetCookie);
    let req: &[(&[u8], &[u8])] = &[(b"Cache-Control", b"no-store")];
    assert_eq!(
        no(store("GET", req, 200, MAX60, &cfg())),
        NotStored::RequestNoStore
    );
    let resp: &[(&[u8], &[u8])] = &[
        (b"X-Accel-Expires", b"0"),
        (b"Cache-Control", b"max-age=60"),
    ];
    assert_eq!(
        no(store("GET", &[], 200, resp, &cfg())),
        NotStored::AccelExpiresZero
    );
}

#[test]
fn ignore_headers_set_cookie_stores_without_the_cookie_and_vary_star() {
    let c = StoreConfig {
        ignore: IgnoreHeaders {
            set_cookie: true,
            vary: true,
            ..IgnoreHeaders::default()
        },
        ..cfg()
    };
    let resp: &[(&[u8], &[u8])] = &[
        (b"Cache-Control", b"max-age=60"),
        (b"Set-Cookie", b"session=secret"),
        (b"Vary", b"*"),
        (b"Content-Type", b"text/html"),
    ];
    let d = yes(store("GET", &[], 200, resp, &c));
    assert!(d.vary.is_empty());
    // The origin can allow it too: no-cache="Set-Cookie" means "store it without the cookie".
    let qualified: &[(&[u8], &[u8])] = &[
        (b"Cache-Control", b"max-age=60, no-cache=\"Set-Cookie\""),
        (b"Set-Cookie", b"session=secret"),
    ];
    let q = yes(store("GET", &[], 200, qualified, &cfg()));
    assert!(!q.no_cache);
    let qm = build_meta(b"k", &[], 200, qualified, &q, T, T);
    assert_eq!(qm.headers.len(), 2); // Cache-Control + the added Date
    let m = build_meta(b"k", &[], 200, resp, &d, T, T);
    assert!(!m
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(b"set-cookie")));
    assert!(m.headers.iter().any(|(n, _)| n == b"Content-Type"));
}

#[test]
fn authorization_requires_public_s_maxage_or_must_revalidate() {
    let req: &[(&[u8], &[u8])] = &[(b"Authorization", b"Bearer x")];
    assert_eq!(
        no(store("GET", req, 200, MAX60, &cfg())),
        NotStored::Authorization
    );
    for cc in [
        &b"max-age=60, public"[..],
        b"s-maxage=60",
        b"max-age=60, must-revalidate",
    ] {
        let resp: &[(&[u8], &[u8])] = &[(b"Cache-Control", cc)];
        yes(store("GET", req, 200, resp, &cfg()));
    }
    let resp: &[(&[u8], &[u8])] = &[(b"Cache-Control", b"s-maxage=60")];
    assert!(yes(store("GET", req, 200, resp, &cfg())).must_revalidate); // s-maxage implies proxy-revalidate
}

#[test]
fn proxy_cache_valid_applies_only_without_explicit_freshness() {
    let plain: &[(&[u8], &[u8])] = &[(b"Content-Type", b"text/plain")];
    assert_eq!(
        no(store("GET", &[], 200, plain, &cfg())),
        NotStored::NoFreshness
    );
    let c = StoreConfig {
        valid: vec![
            (vec![200, 302], 600_000),
            (vec![404], 60_000),
            (vec![], 1500),
        ],
        ..cfg()
    };
    let d = yes(store("GET", &[], 200, plain, &c));
    assert_eq!((d.lifetime_s, d.from_valid), (600, true));
    assert_eq!(yes(store("GET", &[], 404, plain, &c)).lifetime_s, 60);
    assert_eq!(yes(store("GET", &[], 500, plain, &c)).lifetime_s, 2); // any, ms rounded up
                                                                      // The origin's max-age wins over proxy_cache_valid.
    assert_eq!(yes(store("GET", &[], 200, MAX60, &c)).lifetime_s, 60);
    // nginx order: the first matching line, `any` included.
    let c = StoreConfig {
        valid: vec![(vec![], 1000), (vec![200], 600_000)],
        ..cfg()
    };
    assert_eq!(c.valid_for(200), Some(1));
    let zero = StoreConfig {
        valid: vec![(vec![200], 0)],
        ..cfg()
    };
    assert_eq!(
        no(store("GET", &[], 200, plain, &zero)),
        NotStored::NoFreshness
    );
    let loc = LocationCacheConf {
        valid: vec![(vec![200], 5000)],
        ..LocationCacheConf::default()
    };
    assert_eq!(StoreConfig::from_location(&loc).valid_for(200), Some(5));
}

#[test]
fn no_cache_and_max_age_zero_are_stored_only_when_revalidatable() {
    let resp: &[(&[u8], &[u8])] = &[
        (b"Cache-Control", b"no-cache, max-age=600"),
        (b"ETag", b"\"a\""),
    ];
    let d = yes(store("GET", &[], 200, resp, &cfg()));
    assert!(d.no_cache);
    let resp: &[(&[u8], &[u8])] = &[(b"Cache-Control", b"no-cache, max-age=600")];
    assert_eq!(
        no(store("GET", &[], 200, resp, &cfg())),
        NotStored::NoValidator
    );
    let lm = http_date(T - 100);
    let resp: &[(&[u8], &[u8])] = &[(b"Cache-Control", b"max-age=0"), (b"Last-Modified", &lm)];
    assert_eq!(yes(store("GET", &[], 200, resp, &cfg())).expires_at, T);
    let resp: &[(&[u8], &[u8])] = &[(b"Cache-Control", b"max-age=0")];
    assert_eq!(
        no(store("GET", &[], 200, resp, &cfg())),
        NotStored::NoValidator
    );
    let resp: &[(&[u8], &[u8])] = &[(b"Cache-Control", b"max-age=0, stale-while-revalidate=30")];
    assert_eq!(
        yes(store("GET", &[], 200, resp, &cfg())).stale_while_revalidate_s,
        30
    );
}

#[test]
fn build_meta_filters_hop_by_hop_and_extracts_validators() {
    let resp: &[(&[u8], &[u8])] = &[
        (
            b"Cache-Control",
            b"max-age=60, stale-if-error=300, private=\"X-User\"",
        ),
        (b"Connection", b"keep-alive, X-Hop"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Content-Length", b"5"),
        (b"Age", b"4"),
        (b"X-Hop", b"1"),
        (b"X-User", b"alice"),
        (b"ETag", b" \"v1\" "),
        (b"Last-Modified", b"Tue, 14 Nov 2023 22:13:20 GMT"),
        (b"Content-Type", b"text/html"),
    ];
    let d = yes(store("GET", &[], 200, resp, &cfg()));
    let m = build_meta(b"key", &[], 200, resp, &d, T, T);
    let names: Vec<&[u8]> = m.headers.iter().map(|(n, _)| n.as_slice()).collect();
    assert_eq!(
        names,
        vec![
            &b"Cache-Control"[..],
            b"ETag",
            b"Last-Modified",
            b"Content-Type",
            b"Date"
        ]
    );
    assert_eq!(m.headers[4].1, http_date(T)); // Date added
    assert_eq!(
        (m.date, m.age_value_s, m.stale_if_error_s),
        (Some(T), 4, 300)
    );
    assert_eq!(m.etag.as_deref(), Some(&b"\"v1\""[..]));
    assert_eq!(m.expires_at, T + 56);
    assert_eq!(
        (m.key.as_slice(), m.status, m.variant),
        (&b"key"[..], 200, None)
    );
}

#[test]
fn vary_variants_select_and_place_entries() {
    let resp: &[(&[u8], &[u8])] = &[
        (b"Cache-Control", b"max-age=60"),
        (b"Vary", b"Accept-Encoding, accept-encoding"),
    ];
    let gzip: &[(&[u8], &[u8])] = &[(b"Accept-Encoding", b"gzip")];
    let br: &[(&[u8], &[u8])] = &[(b"accept-encoding", b" br")];
    let d = yes(store("GET", gzip, 200, resp, &cfg()));
    assert_eq!(d.vary, vec![b"accept-encoding".to_vec()]);
    let primary = cache_key_md5(b"k");
    let m_gzip = build_meta(b"k", gzip, 200, resp, &d, T, T);
    let v_gzip = variant_md5(&primary, &[(b"accept-encoding", Some(b"gzip"))]);
    assert_eq!(m_gzip.variant, Some(v_gzip));
    assert_eq!(vary_mismatch(&m_gzip, gzip), None);
    let v_br = vary_mismatch(&m_gzip, br).unwrap();
    assert_ne!(v_br, v_gzip);
    assert_eq!(vary_mismatch(&m_gzip, &[]).map(|v| v == v_br), Some(false));
    // First variant goes to the primary file, another one to its variant key,
    // a refresh of the primary's own variant back to the primary.
    assert_eq!(store_md5(primary, &m_gzip, None), primary);
    let m_br = build_meta(b"k", br, 200, resp, &d, T, T);
    assert_eq!(store_md5(primary, &m_br, Some(&m_gzip)), v_br);
    assert_eq!(store_md5(primary, &m_gzip, Some(&m_gzip)), primary);
    let plain = build_meta(
        b"k",
        &[],
        200,
        MAX60,
        &yes(store("GET", &[], 200, MAX60, &cfg())),
        T,
        T,
    );
    assert_eq!(store_md5(primary, &m_br, Some(&plain)), primary);
    assert_eq!(vary_mismatch(&plain, br), None);
}

#[test]
fn cache_status_strings_and_methods() {
    let all = [
        (CacheStatus::Hit, "HIT"),
        (CacheStatus::Miss, "MISS"),
        (CacheStatus::Expired, "EXPIRED"),
        (CacheStatus::Stale, "STALE"),
        (CacheStatus::Updating, "UPDATING"),
        (CacheStatus::Revalidated, "REVALIDATED"),
        (CacheStatus::Bypass, "BYPASS"),
    ];
    for (s, v) in all {
        assert_eq!(s.as_str(), v);
    }
    let methods = LocationCacheConf::default().methods;
    assert!(lookup_method(b"GET", &methods) && lookup_method(b"HEAD", &methods));
    assert!(!lookup_method(b"POST", &methods) && !lookup_method(b"get", &methods));
}
