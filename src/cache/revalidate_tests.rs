//! Tests of `revalidate.rs`: 304 merging, client conditionals, invalidation.

use super::*;
use crate::cache::policy::{build_meta, Storable, StoreConfig};
use crate::util::httpdate::format_http_date;

const T: i64 = 1_700_000_000;

fn http_date(t: i64) -> Vec<u8> {
    let mut b = [0u8; 29];
    format_http_date(t, &mut b);
    b.to_vec()
}

/// A stored 200 with ETag "v1", Last-Modified T-1000, max-age=60, received at T.
fn stored() -> EntryMeta {
    let lm = http_date(T - 1000);
    let resp: &[(&[u8], &[u8])] = &[
        (b"Cache-Control", b"max-age=60"),
        (b"ETag", b"\"v1\""),
        (b"Last-Modified", &lm),
        (b"Content-Type", b"text/html"),
        (b"X-Old", b"1"),
    ];
    let Storable::Yes(d) = storable(b"GET", &[], 200, resp, &StoreConfig::default(), T, T) else {
        panic!("not stored")
    };
    let mut m = build_meta(b"k", &[], 200, resp, &d, T, T);
    m.body_len = 1234;
    m
}

fn header<'a>(m: &'a EntryMeta, name: &[u8]) -> Vec<&'a [u8]> {
    m.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
        .collect()
}

#[test]
fn conditional_headers_for_revalidation() {
    let m = stored();
    let h = revalidation_headers(&m);
    assert_eq!(h[0], (&b"If-None-Match"[..], b"\"v1\"".to_vec()));
    assert_eq!(h[1], (&b"If-Modified-Since"[..], http_date(T - 1000)));
    assert!(revalidation_headers(&EntryMeta::default()).is_empty());
}

#[test]
fn merge_304_updates_headers_and_freshness() {
    let m = stored();
    let d = http_date(T + 500);
    let h304: &[(&[u8], &[u8])] = &[
        (b"Date", &d),
        (b"ETag", b"\"v1\""),
        (b"Cache-Control", b"max-age=120"),
        (b"X-New", b"a"),
        (b"X-New", b"b"),
        (b"Content-Length", b"0"),
        (b"Connection", b"close"),
        (b"Age", b"5"),
    ];
    let merged = merge_304(&m, &[], h304, &StoreConfig::default(), T + 499, T + 500).unwrap();
    assert_eq!(merged.action, MergeAction::Rewrite);
    let n = &merged.meta;
    assert_eq!(header(n, b"cache-control"), vec![&b"max-age=120"[..]]);
    assert_eq!(header(n, b"x-new"), vec![&b"a"[..], b"b"]);
    assert_eq!(header(n, b"x-old"), vec![&b"1"[..]]);
    assert_eq!(header(n, b"content-type"), vec![&b"text/html"[..]]);
    assert_eq!(header(n, b"date"), vec![d.as_slice()]);
    assert!(header(n, b"content-length").is_empty() && header(n, b"connection").is_empty());
    assert!(header(n, b"age").is_empty());
    // Fresh again: 120s from the new response, minus Age 5 plus the 1s round trip.
    assert_eq!(n.expires_at, T + 500 + 120 - 6);
    assert_eq!(
        (n.request_time, n.response_time, n.age_value_s),
        (T + 499, T + 500, 5)
    );
    assert_eq!((n.body_len, n.status), (1234, 200));
    assert_eq!(n.last_modified, m.last_modified);
}

#[test]
fn merge_304_without_date_does_not_age_the_entry() {
    let m = stored();
    let h304: &[(&[u8], &[u8])] = &[(b"Cache-Control", b"max-age=60")];
    let n = merge_304(&m, &[], h304, &StoreConfig::default(), T + 3600, T + 3600)
        .unwrap()
        .meta;
    assert_eq!(n.date, Some(T + 3600));
    assert_eq!(header(&n, b"date"), vec![http_date(T + 3600).as_slice()]);
    assert_eq!(n.expires_at, T + 3660);
}

#[test]
fn merge_304_with_other_validators_is_rejected() {
    let m = stored();
    let other: &[(&[u8], &[u8])] = &[(b"ETag", b"\"v2\"")];
    assert_eq!(
        merge_304(&m, &[], other, &StoreConfig::default(), T, T),
        None
    );
    let lm_other = http_date(T - 5);
    let other: &[(&[u8], &[u8])] = &[(b"Last-Modified", &lm_other)];
    assert_eq!(
        merge_304(&m, &[], other, &StoreConfig::default(), T, T),
        None
    );
    let lm_same = http_date(T - 1000);
    let same: &[(&[u8], &[u8])] = &[(b"Last-Modified", &lm_same)];
    assert!(merge_304(&m, &[], same, &StoreConfig::default(), T, T).is_some());
}

#[test]
fn merge_304_that_forbids_storing_drops_the_entry() {
    let m = stored();
    let h304: &[(&[u8], &[u8])] = &[(b"Cache-Control", b"no-store")];
    let merged = merge_304(&m, &[], h304, &StoreConfig::default(), T + 10, T + 10).unwrap();
    assert_eq!(merged.action, MergeAction::Remove(NotStored::NoStore));
    assert_eq!(merged.meta.body_len, 1234); // still served this once
    assert!(merged.meta.expires_at <= T + 10);
    // A client's request no-store must not delete the shared entry.
    let req: &[(&[u8], &[u8])] = &[(b"Cache-Control", b"no-store")];
    let ok: &[(&[u8], &[u8])] = &[(b"Cache-Control", b"max-age=60")];
    let merged = merge_304(&m, req, ok, &StoreConfig::default(), T + 10, T + 10).unwrap();
    assert_eq!(merged.action, MergeAction::Leave);
}

#[test]
fn client_conditionals_answered_from_cache() {
    let m = stored();
    let ask = |method: &[u8], h: &[(&[u8], &[u8])]| client_conditional(&m, method, h);
    let later = http_date(T);
    let earlier = http_date(T - 2000);
    assert_eq!(ask(b"GET", &[]), ClientAnswer::Full);
    assert_eq!(
        ask(b"GET", &[(b"If-None-Match", b"\"x\", W/\"v1\"")]),
        ClientAnswer::NotModified
    );
    assert_eq!(
        ask(b"HEAD", &[(b"If-None-Match", b"*")]),
        ClientAnswer::NotModified
    );
    // If-None-Match that fails wins over a matching If-Modified-Since.
    assert_eq!(
        ask(
            b"GET",
            &[(b"If-None-Match", b"\"x\""), (b"If-Modified-Since", &later)]
        ),
        ClientAnswer::Full
    );
    assert_eq!(
        ask(b"GET", &[(b"If-Modified-Since", &later)]),
        ClientAnswer::NotModified
    );
    assert_eq!(
        ask(b"GET", &[(b"If-Modified-Since", &earlier)]),
        ClientAnswer::Full
    );
    assert_eq!(
        ask(b"GET", &[(b"If-Modified-Since", b"garbage")]),
        ClientAnswer::Full
    );
    assert_eq!(
        ask(b"GET", &[(b"If-Match", b"\"v2\"")]),
        ClientAnswer::PreconditionFailed
    );
    assert_eq!(ask(b"GET", &[(b"If-Match", b"\"v1\"")]), ClientAnswer::Full);
    assert_eq!(
        ask(b"GET", &[(b"If-Unmodified-Since", &earlier)]),
        ClientAnswer::PreconditionFailed
    );
    assert_eq!(
        ask(b"GET", &[(b"If-Unmodified-Since", &later)]),
        ClientAnswer::Full
    );
    // Non-2xx entries ignore preconditions.
    let mut nf = stored();
    nf.status = 404;
    assert_eq!(
        client_conditional(&nf, b"GET", &[(b"If-None-Match", b"*")]),
        ClientAnswer::Full
    );
    let names: Vec<&[u8]> = not_modified_headers(&m).map(|(n, _)| n).collect();
    assert_eq!(names, vec![&b"Cache-Control"[..], b"ETag", b"Date"]);
}

#[test]
fn unsafe_methods_invalidate_on_success() {
    for m in [&b"POST"[..], b"PUT", b"DELETE", b"PATCH", b"PROPFIND"] {
        assert!(
            invalidates(m, 200)
                && invalidates(m, 303)
                && !invalidates(m, 404)
                && !invalidates(m, 500)
        );
    }
    for m in [&b"GET"[..], b"HEAD", b"OPTIONS", b"TRACE"] {
        assert!(!invalidates(m, 200));
    }
}

#[test]
fn invalidation_targets_same_origin_only() {
    let t = |loc: &[u8]| {
        let h: &[(&[u8], &[u8])] = &[(b"Location", loc)];
        invalidation_targets(b"http", b"Example.com", b"/a/b/c?x=1", h)
    };
    let one = |s: &str| vec![b"/a/b/c?x=1".to_vec(), s.as_bytes().to_vec()];
    assert_eq!(t(b"/new"), one("/new"));
    assert_eq!(t(b"d?y#frag"), one("/a/b/d?y"));
    assert_eq!(t(b"../up/./x"), one("/a/up/x"));
    assert_eq!(t(b"?q=2"), one("/a/b/c?q=2"));
    assert_eq!(t(b"http://example.COM:80/p"), one("/p"));
    assert_eq!(t(b"HTTP://user@example.com"), one("/"));
    assert_eq!(t(b"//example.com/net"), one("/net"));
    assert_eq!(t(b"/../../x/"), one("/x/"));
    for other in [
        &b"http://evil.com/p"[..],
        b"https://example.com/p",
        b"http://example.com:8080/p",
        b"//evil.com/x",
        b"mailto:x@example.com",
        b"/has space",
        b"",
        b"http://example.com:x/",
    ] {
        assert_eq!(
            t(other),
            vec![b"/a/b/c?x=1".to_vec()],
            "{}",
            String::from_utf8_lossy(other)
        );
    }
    let h: &[(&[u8], &[u8])] = &[
        (b"Location", b"/same"),
        (b"Content-Location", b"https://example.com:443/cl"),
    ];
    let got = invalidation_targets(b"https", b"example.com", b"/same", h);
    assert_eq!(got, vec![b"/same".to_vec(), b"/cl".to_vec()]);
    let ipv6 = invalidation_targets(
        b"http",
        b"[::1]:8080",
        b"/",
        &[(b"Location", b"http://[::1]:8080/v6")],
    );
    assert_eq!(ipv6, vec![b"/".to_vec(), b"/v6".to_vec()]);
}
