//! Freshness (RFC 9111 §4.2): explicit lifetime, age, and what a lookup may
//! do with a stored entry given the request's directives and
//! `proxy_cache_use_stale`.
//!
//! Times are Unix seconds. A stored entry is fresh while `now < expires_at`,
//! where `expires_at = response_time + lifetime - corrected_initial_age`
//! (equivalent to RFC's `current_age < freshness_lifetime`).
//!
//! Where RFC 9111 and nginx differ, sluice follows the RFC (documented per item):
//! `must-revalidate`/`proxy-revalidate`/`s-maxage` forbid every stale answer,
//! including `proxy_cache_use_stale` (nginx ignores these directives); request
//! directives (`no-cache`, `max-age`, `min-fresh`, `max-stale`,
//! `only-if-cached`) are honoured (nginx ignores request Cache-Control).

#![deny(missing_docs)]

use super::control::{delta_seconds, first_header, CacheControl, Headers, DELTA_MAX};
use super::entry::EntryMeta;
use crate::config::{IgnoreHeaders, UseStale};
use crate::util::httpdate::parse_http_date;
use crate::util::units::parse_number;

/// RFC 9111 §4.2.3 `corrected_initial_age`: the age the response already had
/// when it arrived, from its `Date`, its `Age` and the request's round trip.
/// A missing `Date` counts as `response_time` (the time we would have added).
pub fn corrected_initial_age(
    request_time: i64,
    response_time: i64,
    date: Option<i64>,
    age_value_s: u64,
) -> u64 {
    let date = date.unwrap_or(response_time);
    let apparent_age = response_time.saturating_sub(date).max(0) as u64;
    let response_delay = response_time.saturating_sub(request_time).max(0) as u64;
    let corrected_age_value = age_value_s.saturating_add(response_delay);
    apparent_age.max(corrected_age_value).min(DELTA_MAX)
}

/// RFC 9111 §4.2.3 `current_age` of a stored entry at `now`: its corrected
/// initial age plus the time it has been stored. This is the `Age` to send.
pub fn current_age(meta: &EntryMeta, now: i64) -> u64 {
    let initial = corrected_initial_age(
        meta.request_time,
        meta.response_time,
        meta.date,
        u64::from(meta.age_value_s),
    );
    let resident = now.saturating_sub(meta.response_time).max(0) as u64;
    initial.saturating_add(resident).min(DELTA_MAX)
}

/// The explicit freshness lifetime (RFC 9111 §4.2.1) of a response, seconds,
/// or `None` when it has none. Precedence: `X-Accel-Expires` (nginx; `@T` is
/// an absolute time) > `s-maxage` > `max-age` > `Expires − Date`. A `Date`
/// that is missing or invalid counts as `response_time`; an invalid `Expires`
/// means already expired (lifetime 0). Each source can be switched off by
/// `proxy_ignore_headers`. Note `X-Accel-Expires: 0` is handled by the caller
/// (nginx: not cacheable) and reported here as `Some(0)`.
pub fn freshness_lifetime(
    resp_cc: &CacheControl,
    resp_headers: Headers<'_, '_>,
    response_time: i64,
    ignore: &IgnoreHeaders,
) -> Option<u64> {
    let date = || {
        first_header(resp_headers, b"date")
            .and_then(parse_http_date)
            .unwrap_or(response_time)
    };
    if !ignore.x_accel_expires {
        if let Some(v) = first_header(resp_headers, b"x-accel-expires") {
            if let Some(abs) = v.strip_prefix(b"@") {
                let t = std::str::from_utf8(abs).ok().and_then(parse_number);
                if let Some(t) = t.and_then(|t| i64::try_from(t).ok()) {
                    return Some(t.saturating_sub(date()).clamp(0, DELTA_MAX as i64) as u64);
                }
            } else if let Some(n) = delta_seconds(v) {
                return Some(n);
            }
        }
    }
    if !ignore.cache_control {
        if let Some(s) = resp_cc.s_maxage {
            return Some(s);
        }
        if let Some(m) = resp_cc.max_age {
            return Some(m);
        }
    }
    if !ignore.expires {
        if let Some(v) = first_header(resp_headers, b"expires") {
            return Some(match parse_http_date(v) {
                Some(exp) => exp.saturating_sub(date()).clamp(0, DELTA_MAX as i64) as u64,
                None => 0,
            });
        }
    }
    None
}

/// What a lookup may do with a stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Serve it (X-Cache-Status HIT).
    Fresh,
    /// Stale, but the client's `max-stale` accepts it: serve without
    /// contacting the origin (X-Cache-Status STALE).
    ClientAcceptsStale,
    /// The origin must be asked (conditionally when the entry has validators).
    /// Stale entries (or fresh ones the client's `max-age`/`min-fresh`
    /// rejects) may still answer in these cases:
    Stale {
        /// Serve it now while another request or a background refresh updates
        /// it (`stale-while-revalidate` window or `use_stale updating`) — UPDATING.
        can_serve_while_revalidate: bool,
        /// Serve it if the origin fails in at least one way (`stale-if-error`
        /// or a `use_stale` failure case); check the actual failure with
        /// [`may_serve_stale_on`].
        can_serve_if_error: bool,
    },
    /// `no-cache` (response, or request incl. `Pragma: no-cache`): only a
    /// successful revalidation allows using it; never served stale.
    MustRevalidate,
    /// `only-if-cached` and nothing usable: answer 504 without asking the origin.
    Unsatisfiable,
}

/// How the origin failed, for [`may_serve_stale_on`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginFailure {
    /// Connection refused/reset, or the response was cut short.
    Error,
    /// Connect/read timeout.
    Timeout,
    /// An unparseable response head.
    InvalidHeader,
    /// A complete response with this status.
    Status(u16),
}

/// Seconds past expiry (negative while fresh).
fn staleness(meta: &EntryMeta, now: i64) -> i64 {
    now.saturating_sub(meta.expires_at)
}

/// Is an entry `stale_s` seconds past expiry inside a stale window of
/// `window_s` seconds (`stale-while-revalidate=N`: "stale by up to N")?
/// A zero window allows nothing.
fn within_window(stale_s: i64, window_s: u64) -> bool {
    window_s > 0 && stale_s <= i64::try_from(window_s).unwrap_or(i64::MAX)
}

/// Do the request's `max-age`/`min-fresh` accept the entry's age and remaining life?
fn client_limits_ok(meta: &EntryMeta, req: &CacheControl, now: i64) -> bool {
    let age = current_age(meta, now);
    let remaining = -staleness(meta, now);
    req.max_age.is_none_or(|m| age <= m)
        && req
            .min_fresh
            .is_none_or(|m| remaining >= i64::try_from(m).unwrap_or(i64::MAX))
}

/// Decides what a lookup may do with `meta` at `now` (RFC 9111 §4.2, §4.2.4,
/// §5.2.1, §5.2.2; RFC 5861). See [`Lookup`].
pub fn lookup_decision(
    meta: &EntryMeta,
    req: &CacheControl,
    now: i64,
    use_stale: &UseStale,
) -> Lookup {
    let stale_s = staleness(meta, now);
    let fresh = stale_s < 0;
    let client_ok = client_limits_ok(meta, req, now);
    let always_revalidate = meta.no_cache || req.no_cache;
    if !always_revalidate && fresh && client_ok {
        return Lookup::Fresh;
    }
    let stale_allowed = !meta.must_revalidate && !always_revalidate;
    if stale_allowed && !fresh && client_ok_for_stale(meta, req, now) {
        if let Some(max_stale) = req.max_stale {
            if stale_s as u64 <= max_stale {
                return Lookup::ClientAcceptsStale;
            }
        }
    }
    if req.only_if_cached {
        return Lookup::Unsatisfiable;
    }
    if always_revalidate {
        return Lookup::MustRevalidate;
    }
    let within = |window: u64| within_window(stale_s, window);
    let swr = stale_allowed
        && client_ok
        && (within(u64::from(meta.stale_while_revalidate_s)) || use_stale.updating);
    let sie = req
        .stale_if_error
        .unwrap_or(0)
        .max(u64::from(meta.stale_if_error_s));
    let if_error = fresh || (stale_allowed && (within(sie) || use_stale.any_failure()));
    Lookup::Stale {
        can_serve_while_revalidate: swr,
        can_serve_if_error: if_error,
    }
}

/// The client's `max-age` still applies to a stale answer; `min-fresh`
/// contradicts `max-stale` and the stricter (`min-fresh`) wins.
fn client_ok_for_stale(meta: &EntryMeta, req: &CacheControl, now: i64) -> bool {
    req.min_fresh.is_none() && req.max_age.is_none_or(|m| current_age(meta, now) <= m)
}

/// After the origin failed with `failure`, may the stored entry answer?
/// Fresh entries always may (unless `no-cache` applies); stale ones within
/// `stale-if-error` (response or request; RFC 5861 counts connection errors,
/// timeouts and 500/502/503/504) or when `proxy_cache_use_stale` lists the
/// failure — never past `must-revalidate`/`proxy-revalidate`/`s-maxage`.
pub fn may_serve_stale_on(
    meta: &EntryMeta,
    req: &CacheControl,
    now: i64,
    use_stale: &UseStale,
    failure: OriginFailure,
) -> bool {
    if meta.no_cache || req.no_cache {
        return false;
    }
    let stale_s = staleness(meta, now);
    if stale_s < 0 {
        return true;
    }
    if meta.must_revalidate {
        return false;
    }
    let sie = req
        .stale_if_error
        .unwrap_or(0)
        .max(u64::from(meta.stale_if_error_s));
    let rfc5861_error = matches!(
        failure,
        OriginFailure::Error
            | OriginFailure::Timeout
            | OriginFailure::Status(500 | 502 | 503 | 504)
    );
    if rfc5861_error && within_window(stale_s, sie) {
        return true;
    }
    match failure {
        OriginFailure::Error => use_stale.error,
        OriginFailure::Timeout => use_stale.timeout,
        OriginFailure::InvalidHeader => use_stale.invalid_header,
        OriginFailure::Status(s) => use_stale.on_status(s),
    }
}

#[cfg(test)]
#[path = "freshness_tests.rs"]
mod tests;
