//! Tests of `freshness.rs`: RFC 9111 worked examples for age and lifetime,
//! and every branch of the lookup decision.

use super::*;
use crate::cache::control::parse_cache_control;

fn cc(v: &str) -> CacheControl {
    parse_cache_control([v.as_bytes()])
}

fn date(t: i64) -> Vec<u8> {
    let mut b = [0u8; 29];
    crate::util::httpdate::format_http_date(t, &mut b);
    b.to_vec()
}

const T: i64 = 1_700_000_000;

/// An entry received at T with lifetime `life` and no initial age.
fn entry(life: i64) -> EntryMeta {
    EntryMeta {
        request_time: T,
        response_time: T,
        date: Some(T),
        expires_at: T + life,
        ..EntryMeta::default()
    }
}

fn lifetime(cc_value: &str, headers: &[(&[u8], &[u8])]) -> Option<u64> {
    freshness_lifetime(&cc(cc_value), headers, T, &IgnoreHeaders::default())
}

#[test]
fn age_calculation_rfc9111_4_2_3() {
    // Request sent at T, response at T+2, origin Date T-5, Age: 3.
    // apparent_age = 7, response_delay = 2, corrected_age_value = 5 -> initial 7.
    assert_eq!(corrected_initial_age(T, T + 2, Some(T - 5), 3), 7);
    let m = EntryMeta {
        request_time: T,
        response_time: T + 2,
        date: Some(T - 5),
        age_value_s: 3,
        ..EntryMeta::default()
    };
    assert_eq!(current_age(&m, T + 2), 7);
    assert_eq!(current_age(&m, T + 12), 17); // + resident time
                                             // An upstream cache's Age dominates a recent Date.
    assert_eq!(corrected_initial_age(T, T + 2, Some(T + 1), 30), 32);
    // Origin clock ahead: apparent age clamps at 0.
    assert_eq!(corrected_initial_age(T, T, Some(T + 500), 0), 0);
    // No Date: only Age and delay count. Clock going backwards: no negative age.
    assert_eq!(corrected_initial_age(T, T + 1, None, 0), 1);
    assert_eq!(current_age(&m, T - 100), 7);
    // Absurd values saturate at 2^31.
    assert_eq!(
        corrected_initial_age(i64::MIN, i64::MAX, Some(i64::MIN), u64::MAX),
        DELTA_MAX
    );
}

#[test]
fn s_maxage_beats_max_age_beats_expires() {
    let exp = date(T + 1000);
    let d = date(T);
    let h: &[(&[u8], &[u8])] = &[(b"Date", &d), (b"Expires", &exp)];
    assert_eq!(lifetime("max-age=60, s-maxage=30", h), Some(30));
    assert_eq!(lifetime("max-age=60", h), Some(60));
    assert_eq!(lifetime("public", h), Some(1000));
    assert_eq!(lifetime("public", &[]), None);
    let ignore_cc = IgnoreHeaders {
        cache_control: true,
        ..IgnoreHeaders::default()
    };
    assert_eq!(
        freshness_lifetime(&cc("max-age=60"), h, T, &ignore_cc),
        Some(1000)
    );
    let ignore_both = IgnoreHeaders {
        expires: true,
        ..ignore_cc
    };
    assert_eq!(
        freshness_lifetime(&cc("max-age=60"), h, T, &ignore_both),
        None
    );
}

#[test]
fn expires_is_relative_to_the_origins_date_not_our_clock() {
    // Origin clock one hour behind ours: Date = T-3600, Expires = Date+600.
    let d = date(T - 3600);
    let exp = date(T - 3000);
    let h: &[(&[u8], &[u8])] = &[(b"Date", &d), (b"Expires", &exp)];
    assert_eq!(lifetime("", h), Some(600)); // not Expires - now (negative)
                                            // ...but the apparent age (now - Date) makes it stale on arrival, as RFC 9111 says.
    assert_eq!(corrected_initial_age(T, T, Some(T - 3600), 0), 3600);
    // Without Date, Expires is measured from the response time.
    let exp = date(T + 120);
    assert_eq!(lifetime("", &[(b"Expires", &exp)]), Some(120));
    // Invalid Expires ("0", garbage) means already expired; past Expires is 0.
    assert_eq!(lifetime("", &[(b"Expires", b"0")]), Some(0));
    let past = date(T - 10);
    assert_eq!(lifetime("", &[(b"Expires", &past)]), Some(0));
}

#[test]
fn x_accel_expires_has_priority_unless_ignored() {
    let at = format!("@{}", T + 90);
    let h: &[(&[u8], &[u8])] = &[(b"X-Accel-Expires", b"15")];
    assert_eq!(lifetime("max-age=60", h), Some(15));
    let h: &[(&[u8], &[u8])] = &[(b"X-Accel-Expires", at.as_bytes())];
    assert_eq!(lifetime("max-age=60", h), Some(90));
    // Absolute times past 2038 are not capped like delta-seconds.
    let far = format!("@{}", 4_000_000_000i64);
    let h: &[(&[u8], &[u8])] = &[(b"X-Accel-Expires", far.as_bytes())];
    assert_eq!(lifetime("", h), Some(DELTA_MAX));
    let h: &[(&[u8], &[u8])] = &[(b"X-Accel-Expires", b"@")];
    assert_eq!(lifetime("max-age=60", h), Some(60));
    let h: &[(&[u8], &[u8])] = &[(b"X-Accel-Expires", b"soon")];
    assert_eq!(lifetime("max-age=60", h), Some(60));
    let ig = IgnoreHeaders {
        x_accel_expires: true,
        ..IgnoreHeaders::default()
    };
    let h: &[(&[u8], &[u8])] = &[(b"X-Accel-Expires", b"15")];
    assert_eq!(freshness_lifetime(&cc("max-age=60"), h, T, &ig), Some(60));
}

#[test]
fn fresh_then_stale() {
    let m = entry(60);
    let none = CacheControl::default();
    let off = UseStale::default();
    assert_eq!(lookup_decision(&m, &none, T + 59, &off), Lookup::Fresh);
    assert_eq!(
        lookup_decision(&m, &none, T + 60, &off),
        Lookup::Stale {
            can_serve_while_revalidate: false,
            can_serve_if_error: false
        }
    );
}

#[test]
fn request_max_stale_accepts_stale_but_must_revalidate_blocks_it() {
    let mut m = entry(60);
    let off = UseStale::default();
    assert_eq!(
        lookup_decision(&m, &cc("max-stale=30"), T + 90, &off),
        Lookup::ClientAcceptsStale
    );
    assert!(matches!(
        lookup_decision(&m, &cc("max-stale=30"), T + 91, &off),
        Lookup::Stale { .. }
    ));
    assert_eq!(
        lookup_decision(&m, &cc("max-stale"), T + 100_000, &off),
        Lookup::ClientAcceptsStale
    );
    // max-age still applies with max-stale; min-fresh contradicts it.
    assert!(matches!(
        lookup_decision(&m, &cc("max-stale, max-age=70"), T + 80, &off),
        Lookup::Stale { .. }
    ));
    assert!(matches!(
        lookup_decision(&m, &cc("max-stale, min-fresh=1"), T + 80, &off),
        Lookup::Stale { .. }
    ));
    m.must_revalidate = true;
    let all = UseStale {
        error: true,
        updating: true,
        ..UseStale::default()
    };
    assert_eq!(
        lookup_decision(&m, &cc("max-stale"), T + 61, &all),
        Lookup::Stale {
            can_serve_while_revalidate: false,
            can_serve_if_error: false
        }
    );
}

#[test]
fn request_max_age_and_min_fresh_force_origin_contact_on_fresh_entries() {
    let m = entry(60);
    let off = UseStale::default();
    let revalidate_fresh = Lookup::Stale {
        can_serve_while_revalidate: false,
        can_serve_if_error: true, // it is still fresh: fine to use if the origin fails
    };
    assert_eq!(
        lookup_decision(&m, &cc("max-age=0"), T + 1, &off),
        revalidate_fresh
    );
    assert_eq!(
        lookup_decision(&m, &cc("max-age=10"), T + 10, &off),
        Lookup::Fresh
    );
    assert_eq!(
        lookup_decision(&m, &cc("max-age=10"), T + 11, &off),
        revalidate_fresh
    );
    assert_eq!(
        lookup_decision(&m, &cc("min-fresh=20"), T + 40, &off),
        Lookup::Fresh
    );
    assert_eq!(
        lookup_decision(&m, &cc("min-fresh=20"), T + 41, &off),
        revalidate_fresh
    );
}

#[test]
fn no_cache_forces_revalidation_and_forbids_stale() {
    let mut m = entry(3600);
    let all = UseStale {
        error: true,
        updating: true,
        ..UseStale::default()
    };
    let req_no_cache = CacheControl {
        no_cache: true,
        ..CacheControl::default()
    };
    assert_eq!(
        lookup_decision(&m, &req_no_cache, T + 1, &all),
        Lookup::MustRevalidate
    );
    assert!(!may_serve_stale_on(
        &m,
        &req_no_cache,
        T + 1,
        &all,
        OriginFailure::Error
    ));
    m.no_cache = true;
    let none = CacheControl::default();
    assert_eq!(
        lookup_decision(&m, &none, T + 1, &all),
        Lookup::MustRevalidate
    );
    assert_eq!(
        lookup_decision(&m, &cc("max-stale"), T + 1, &all),
        Lookup::MustRevalidate
    );
    assert!(!may_serve_stale_on(
        &m,
        &none,
        T + 1,
        &all,
        OriginFailure::Timeout
    ));
}

#[test]
fn only_if_cached() {
    let m = entry(60);
    let off = UseStale::default();
    let req = cc("only-if-cached");
    assert_eq!(lookup_decision(&m, &req, T + 1, &off), Lookup::Fresh);
    assert_eq!(
        lookup_decision(&m, &req, T + 61, &off),
        Lookup::Unsatisfiable
    );
    let req = cc("only-if-cached, max-stale=100");
    assert_eq!(
        lookup_decision(&m, &req, T + 61, &off),
        Lookup::ClientAcceptsStale
    );
    let mut nc = entry(60);
    nc.no_cache = true;
    assert_eq!(
        lookup_decision(&nc, &cc("only-if-cached"), T + 1, &off),
        Lookup::Unsatisfiable
    );
}

#[test]
fn stale_while_revalidate_window_and_use_stale_updating() {
    let mut m = entry(60);
    m.stale_while_revalidate_s = 30;
    let none = CacheControl::default();
    let off = UseStale::default();
    let at = |now| lookup_decision(&m, &none, now, &off);
    assert_eq!(
        at(T + 90),
        Lookup::Stale {
            can_serve_while_revalidate: true,
            can_serve_if_error: false
        }
    );
    assert_eq!(
        at(T + 91),
        Lookup::Stale {
            can_serve_while_revalidate: false,
            can_serve_if_error: false
        }
    );
    let updating = UseStale {
        updating: true,
        ..UseStale::default()
    };
    assert!(matches!(
        lookup_decision(&m, &none, T + 10_000, &updating),
        Lookup::Stale {
            can_serve_while_revalidate: true,
            ..
        }
    ));
    // A client max-age it fails disables serving stale while updating.
    assert!(matches!(
        lookup_decision(&m, &cc("max-age=5"), T + 70, &updating),
        Lookup::Stale {
            can_serve_while_revalidate: false,
            ..
        }
    ));
}

#[test]
fn stale_if_error_and_use_stale_per_failure() {
    let mut m = entry(60);
    m.stale_if_error_s = 100;
    let none = CacheControl::default();
    let off = UseStale::default();
    let ok = |m: &EntryMeta, now, us: &UseStale, f| may_serve_stale_on(m, &none, now, us, f);
    assert!(ok(&m, T + 160, &off, OriginFailure::Error));
    assert!(ok(&m, T + 160, &off, OriginFailure::Status(503)));
    assert!(!ok(&m, T + 160, &off, OriginFailure::Status(404)));
    assert!(!ok(&m, T + 160, &off, OriginFailure::InvalidHeader));
    assert!(!ok(&m, T + 161, &off, OriginFailure::Timeout));
    assert!(matches!(
        lookup_decision(&m, &none, T + 160, &off),
        Lookup::Stale {
            can_serve_if_error: true,
            ..
        }
    ));
    // proxy_cache_use_stale extends it without limit, per failure kind.
    let us = UseStale {
        timeout: true,
        http_502: true,
        ..UseStale::default()
    };
    assert!(ok(&m, T + 10_000, &us, OriginFailure::Timeout));
    assert!(ok(&m, T + 10_000, &us, OriginFailure::Status(502)));
    assert!(!ok(&m, T + 10_000, &us, OriginFailure::Status(500)));
    // Request stale-if-error widens the window.
    let req = cc("stale-if-error=1000");
    assert!(may_serve_stale_on(
        &m,
        &req,
        T + 1000,
        &off,
        OriginFailure::Error
    ));
    // Fresh entries always may; must-revalidate forbids stale ones.
    assert!(ok(&m, T + 1, &off, OriginFailure::InvalidHeader));
    m.must_revalidate = true;
    assert!(!ok(&m, T + 61, &us, OriginFailure::Timeout));
    assert!(!ok(&m, T + 61, &off, OriginFailure::Error));
}
