//! Whether a response may be stored (RFC 9111 §3 with nginx's
//! `proxy_cache_valid` / `proxy_ignore_headers`), what is stored
//! ([`build_meta`]), and the `X-Cache-Status` values. Freshness and lookup
//! decisions live in `freshness.rs`, revalidation and invalidation in
//! `revalidate.rs`; their main items are re-exported here.
//!
//! Choices (RFC 9111 vs nginx):
//! - Lifetime: the origin's explicit freshness (`X-Accel-Expires` >
//!   `s-maxage` > `max-age` > `Expires`) wins; only without it does
//!   `proxy_cache_valid` apply (first matching line in config order, `any`
//!   matching everything, as nginx); without either the response is not
//!   stored (no heuristic freshness).
//! - `no-cache` and `max-age=0` responses are stored (nginx refuses them) when
//!   they are useful: they have a validator, or (`max-age=0` only) a
//!   `stale-*` window. Every use then revalidates.
//! - Request `no-store` and `Authorization` (without `public`, `s-maxage` or
//!   `must-revalidate`) prevent storing, as RFC 9111 requires (nginx ignores both).
//! - `Set-Cookie` responses are not stored (nginx) unless
//!   `proxy_ignore_headers Set-Cookie`; then the cookie itself is NOT stored
//!   (nginx would replay it to every client).
//! - Qualified `private="f"` / `no-cache="f"`: the response is stored without
//!   those fields (RFC 9111 §5.2.2.4, §5.2.2.7); `no-cache="Set-Cookie"` thus
//!   makes a `Set-Cookie` response storable (without the cookie).
//! - Status: any final status but 206 and 304 is storable with explicit
//!   freshness (RFC 9111 §3, and what nginx does) or a matching
//!   `proxy_cache_valid` line (`proxy_cache_valid 302 10m` works as in nginx).
//!   The RFC's "heuristically cacheable" list is irrelevant: sluice has no
//!   heuristic freshness.
//! - HEAD responses are not stored: with `proxy_cache_convert_head on` the
//!   proxy fills with GET, and HEAD is answered from the GET entry.

#![deny(missing_docs)]

pub use super::control::{parse_cache_control, CacheControl};
pub use super::freshness::{
    current_age, freshness_lifetime, lookup_decision, may_serve_stale_on, Lookup, OriginFailure,
};
pub use super::revalidate::{
    client_conditional, invalidates, invalidation_targets, merge_304, revalidation_headers,
    ClientAnswer, MergeAction, Merged,
};

use super::control::{comma_list, delta_seconds, first_header, has_header, header_values, Headers};
use super::entry::{EntryMeta, ENTRY_VERSION};
use super::freshness::corrected_initial_age;
use super::key::{cache_key_md5, request_variant};
use crate::config::{IgnoreHeaders, LocationCacheConf};
use crate::util::httpdate::{format_http_date, parse_http_date};

/// Fields not stored besides the hop-by-hop ones: proxy authentication, and
/// what the cache regenerates.
const NOT_STORED: [&[u8]; 4] = [
    b"proxy-authenticate",
    b"proxy-authorization",
    b"content-length", // sent as body_len
    b"age",            // sent as current_age
];

/// The store-side configuration of a location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreConfig {
    /// `proxy_cache_valid` lines: (statuses, ms), empty statuses = any.
    pub valid: Vec<(Vec<u16>, u64)>,
    /// `proxy_ignore_headers`.
    pub ignore: IgnoreHeaders,
}

impl StoreConfig {
    /// From a location's cache settings.
    pub fn from_location(c: &LocationCacheConf) -> StoreConfig {
        StoreConfig {
            valid: c.valid.clone(),
            ignore: c.ignore_headers,
        }
    }

    /// nginx's lookup: the first `proxy_cache_valid` line listing `status`
    /// (or `any`), in seconds rounded up.
    pub fn valid_for(&self, status: u16) -> Option<u64> {
        self.valid
            .iter()
            .find(|(codes, _)| codes.is_empty() || codes.contains(&status))
            .map(|(_, ms)| ms.div_ceil(1000))
    }
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// Not a GET response.
    Method,
    /// 1xx, 206 (partial), 304 or a status outside 200..=599.
    Status,
    /// Response `no-store`.
    NoStore,
    /// Request `no-store`.
    RequestNoStore,
    /// Response `private` (unqualified).
    Private,
    /// `Vary: *`.
    VaryStar,
    /// `Set-Cookie` without `proxy_ignore_headers Set-Cookie`.
    SetCookie,
    /// The request had `Authorization` and the response no `public`,
    /// `s-maxage` or `must-revalidate`.
    Authorization,
    /// No explicit freshness and no `proxy_cache_valid` line (or a zero one).
    NoFreshness,
    /// `X-Accel-Expires: 0`.
    AccelExpiresZero,
    /// Must always be revalidated but has no validator to do it with.
    NoValidator,
}

impl NotStored {
    /// Short reason for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStored::Method => "method",
            NotStored::Status => "status",
            NotStored::NoStore => "no-store",
            NotStored::RequestNoStore => "request no-store",
            NotStored::Private => "private",
            NotStored::VaryStar => "vary *",
            NotStored::SetCookie => "set-cookie",
            NotStored::Authorization => "authorization",
            NotStored::NoFreshness => "no freshness",
            NotStored::AccelExpiresZero => "x-accel-expires 0",
            NotStored::NoValidator => "no validator",
        }
    }
}

/// What storing a response needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreDecision {
    /// Freshness lifetime, seconds.
    pub lifetime_s: u64,
    /// End of freshness, Unix seconds (age already subtracted).
    pub expires_at: i64,
    /// The lifetime came from `proxy_cache_valid`, not the origin.
    pub from_valid: bool,
    /// `stale-while-revalidate` seconds.
    pub stale_while_revalidate_s: u32,
    /// `stale-if-error` seconds.
    pub stale_if_error_s: u32,
    /// Never serve stale (`must-revalidate`, `proxy-revalidate`, `s-maxage`).
    pub must_revalidate: bool,
    /// Revalidate on every use (`no-cache`).
    pub no_cache: bool,
    /// `Vary` names, lowercase (empty when ignored).
    pub vary: Vec<Vec<u8>>,
    /// Lowercase names of fields not to store.
    pub strip: Vec<Vec<u8>>,
}

/// The storage verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storable {
    /// Do not store, and why.
    No(NotStored),
    /// Store, with these parameters (then [`build_meta`]).
    Yes(StoreDecision),
}

fn secs_u32(s: u64) -> u32 {
    u32::try_from(s).unwrap_or(u32::MAX)
}

/// May this response be stored? `request_time`/`response_time` are when the
/// request was sent and the response head received (Unix seconds).
pub fn storable(
    req_method: &[u8],
    req_headers: Headers<'_, '_>,
    status: u16,
    resp_headers: Headers<'_, '_>,
    cfg: &StoreConfig,
    request_time: i64,
    response_time: i64,
) -> Storable {
    use NotStored::*;
    if req_method != b"GET" {
        return Storable::No(Method);
    }
    if !(200..=599).contains(&status) || status == 206 || status == 304 {
        return Storable::No(Status);
    }
    let ignore = &cfg.ignore;
    let cc = if ignore.cache_control {
        CacheControl::default()
    } else {
        CacheControl::from_headers(resp_headers)
    };
    if cc.no_store {
        return Storable::No(NoStore);
    }
    if CacheControl::from_headers(req_headers).no_store {
        return Storable::No(RequestNoStore);
    }
    if cc.private {
        return Storable::No(Private);
    }
    let mut vary = Vec::new();
    if !ignore.vary {
        for name in header_values(resp_headers, b"vary").flat_map(comma_list) {
            if name == b"*" {
                return Storable::No(VaryStar);
            }
            let lower = name.to_ascii_lowercase();
            if !vary.contains(&lower) {
                vary.push(lower);
            }
        }
    }
    let mut strip: Vec<Vec<u8>> = cc
        .private_fields
        .iter()
        .chain(&cc.no_cache_fields)
        .cloned()
        .collect();
    if has_header(resp_headers, b"set-cookie") {
        let origin_allows = strip.iter().any(|f| f == b"set-cookie"); // no-cache="Set-Cookie"
        if !ignore.set_cookie && !origin_allows {
            return Storable::No(SetCookie);
        }
        strip.push(b"set-cookie".to_vec());
    }
    let must_revalidate = cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some();
    if has_header(req_headers, b"authorization") && !(cc.public || must_revalidate) {
        return Storable::No(Authorization);
    }
    if !ignore.x_accel_expires && first_header(resp_headers, b"x-accel-expires") == Some(b"0") {
        return Storable::No(AccelExpiresZero);
    }
    let explicit = freshness_lifetime(&cc, resp_headers, response_time, ignore);
    let (lifetime_s, from_valid) = match explicit {
        Some(l) => (l, false),
        None => match cfg.valid_for(status) {
            Some(l) if l > 0 => (l, true),
            _ => return Storable::No(NoFreshness),
        },
    };
    let swr = cc.stale_while_revalidate.unwrap_or(0);
    let sie = cc.stale_if_error.unwrap_or(0);
    let has_validator =
        has_header(resp_headers, b"etag") || has_header(resp_headers, b"last-modified");
    let useful = has_validator || (!cc.no_cache && (lifetime_s > 0 || swr > 0 || sie > 0));
    if !useful {
        return Storable::No(NoValidator);
    }
    let date = first_header(resp_headers, b"date").and_then(parse_http_date);
    let age = first_header(resp_headers, b"age")
        .and_then(delta_seconds)
        .unwrap_or(0);
    let initial_age = corrected_initial_age(request_time, response_time, date, age);
    let expires_at = response_time
        .saturating_add(lifetime_s as i64)
        .saturating_sub(initial_age as i64);
    Storable::Yes(StoreDecision {
        lifetime_s,
        expires_at,
        from_valid,
        stale_while_revalidate_s: secs_u32(swr),
        stale_if_error_s: secs_u32(sie),
        must_revalidate,
        no_cache: cc.no_cache,
        vary,
        strip,
    })
}

/// Is a field named `name` (any case) kept when storing? Drops hop-by-hop
/// fields, those listed in `Connection`, `Content-Length`, `Age` and `strip`.
pub fn stored_field(name: &[u8], connection_listed: &[Vec<u8>], strip: &[Vec<u8>]) -> bool {
    let lower = name.to_ascii_lowercase();
    !crate::proto::is_hop_by_hop(&lower)
        && !NOT_STORED.contains(&lower.as_slice())
        && !connection_listed.contains(&lower)
        && !strip.contains(&lower)
}

/// Lowercase names listed in the `Connection` header(s).
pub fn connection_listed(headers: Headers<'_, '_>) -> Vec<Vec<u8>> {
    header_values(headers, b"connection")
        .flat_map(comma_list)
        .map(<[u8]>::to_ascii_lowercase)
        .collect()
}

/// The stored header list: `resp_headers` filtered by [`stored_field`], with
/// a `Date` (from `response_time`) added when the response had none.
pub fn stored_headers(
    resp_headers: Headers<'_, '_>,
    strip: &[Vec<u8>],
    response_time: i64,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let listed = connection_listed(resp_headers);
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = resp_headers
        .iter()
        .filter(|(n, _)| stored_field(n, &listed, strip))
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    if !has_header(resp_headers, b"date") {
        let mut d = [0u8; 29];
        format_http_date(response_time, &mut d);
        out.push((b"Date".to_vec(), d.to_vec()));
    }
    out
}

/// The entry header for a response that [`storable`] accepted. `key` is the
/// evaluated cache key; for a response with `Vary` the variant key is
/// computed from `req_headers`. `body_len` is 0 until the writer knows it.
#[allow(clippy::too_many_arguments)]
pub fn build_meta(
    key: &[u8],
    req_headers: Headers<'_, '_>,
    status: u16,
    resp_headers: Headers<'_, '_>,
    d: &StoreDecision,
    request_time: i64,
    response_time: i64,
) -> EntryMeta {
    let field = |name: &[u8]| first_header(resp_headers, name).map(<[u8]>::to_vec);
    let date = first_header(resp_headers, b"date")
        .and_then(parse_http_date)
        .unwrap_or(response_time);
    let variant =
        (!d.vary.is_empty()).then(|| request_variant(&cache_key_md5(key), &d.vary, req_headers));
    EntryMeta {
        version: ENTRY_VERSION,
        key: key.to_vec(),
        status,
        headers: stored_headers(resp_headers, &d.strip, response_time),
        request_time,
        response_time,
        date: Some(date),
        age_value_s: secs_u32(
            first_header(resp_headers, b"age")
                .and_then(delta_seconds)
                .unwrap_or(0),
        ),
        expires_at: d.expires_at,
        stale_while_revalidate_s: d.stale_while_revalidate_s,
        stale_if_error_s: d.stale_if_error_s,
        must_revalidate: d.must_revalidate,
        no_cache: d.no_cache,
        etag: field(b"etag"),
        last_modified: field(b"last-modified"),
        vary: d.vary.clone(),
        variant,
        body_len: 0,
    }
}

/// May a request with this method be answered from the cache? GET and HEAD
/// (HEAD from the GET entry) plus whatever `proxy_cache_methods` adds.
pub fn lookup_method(method: &[u8], methods: &[String]) -> bool {
    methods.iter().any(|m| m.as_bytes() == method)
}

/// Does a stored entry with `Vary` match this request? `Some(variant)` means
/// "no: the request's variant key is this; look there". Entries without
/// `Vary` always match (`None`).
pub fn vary_mismatch(meta: &EntryMeta, req_headers: Headers<'_, '_>) -> Option<[u8; 16]> {
    if meta.vary.is_empty() {
        return None;
    }
    let v = request_variant(&cache_key_md5(&meta.key), &meta.vary, req_headers);
    (meta.variant != Some(v)).then_some(v)
}

/// Where to store a response (nginx's scheme): at the primary key unless the
/// primary file holds a *different* variant of a varying response, in which
/// case at the variant key. `primary_meta` is the entry currently at the
/// primary key, if any.
pub fn store_md5(primary: [u8; 16], new: &EntryMeta, primary_meta: Option<&EntryMeta>) -> [u8; 16] {
    match (new.variant, primary_meta) {
        (Some(v), Some(old))
            if !old.vary.is_empty() && old.vary == new.vary && old.variant != Some(v) =>
        {
            v
        }
        _ => primary,
    }
}

/// `X-Cache-Status` values (nginx's `$upstream_cache_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served fresh from the cache.
    Hit,
    /// Not in the cache; fetched from the origin.
    Miss,
    /// In the cache but expired; fetched in full from the origin.
    Expired,
    /// Served stale (origin failed, or the client's `max-stale` allowed it).
    Stale,
    /// Served stale while another request refreshes it.
    Updating,
    /// Expired, and a conditional request got 304: served from the cache.
    Revalidated,
    /// The cache was bypassed (`proxy_cache_bypass`, uncacheable method, lock timeout).
    Bypass,
}

impl CacheStatus {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Expired => "EXPIRED",
            CacheStatus::Stale => "STALE",
            CacheStatus::Updating => "UPDATING",
            CacheStatus::Revalidated => "REVALIDATED",
            CacheStatus::Bypass => "BYPASS",
        }
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
