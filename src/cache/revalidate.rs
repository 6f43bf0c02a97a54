//! After the cache decided to contact the origin or answer itself:
//! conditional revalidation headers, merging a 304 into the stored entry
//! (RFC 9111 §3.2, §4.3.4), client conditionals answered from the cache
//! (RFC 9110 §13.2.2), and invalidation by unsafe methods (RFC 9111 §4.4).

#![deny(missing_docs)]

use super::control::{first_header, has_header, Headers};
use super::entry::EntryMeta;
use super::policy::{
    build_meta, connection_listed, storable, stored_field, NotStored, Storable, StoreConfig,
    StoreDecision,
};
use crate::proto::cond::{if_match, if_none_match, not_modified_since};
use crate::util::httpdate::parse_http_date;

/// Headers to add to the origin request when revalidating `meta`:
/// `If-None-Match` (its ETag) and `If-Modified-Since` (its Last-Modified).
/// Empty when the entry has no validator (then the request is unconditional).
/// The client's own conditionals must not be forwarded on a cache fill.
pub fn revalidation_headers(meta: &EntryMeta) -> Vec<(&'static [u8], Vec<u8>)> {
    let mut out = Vec::new();
    if let Some(etag) = &meta.etag {
        out.push((&b"If-None-Match"[..], etag.clone()));
    }
    if let Some(lm) = &meta.last_modified {
        out.push((&b"If-Modified-Since"[..], lm.clone()));
    }
    out
}

/// What to do with the stored entry after merging a 304.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeAction {
    /// Rewrite the stored header with the merged one (`store::rewrite_header`).
    Rewrite,
    /// Leave the stored entry as it was: the request said `no-store`, so
    /// nothing about this exchange may be stored — but the entry stays valid.
    Leave,
    /// The merged response is no longer storable (e.g. the 304 said
    /// `no-store`): remove the entry.
    Remove(NotStored),
}

/// A stored entry updated by a 304.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The updated entry: serve it (status and body of the stored response).
    pub meta: EntryMeta,
    /// What to do on disk.
    pub action: MergeAction,
}

/// Does a 304 refer to this stored response (RFC 9111 §4.3.4)? By its ETag
/// if it has one, else by its Last-Modified, else yes.
fn validators_match(meta: &EntryMeta, h304: Headers<'_, '_>) -> bool {
    let same = |ours: &Option<Vec<u8>>, theirs: &[u8]| {
        ours.as_deref().map(<[u8]>::trim_ascii) == Some(theirs)
    };
    if let Some(etag) = first_header(h304, b"etag") {
        return same(&meta.etag, etag);
    }
    if let Some(lm) = first_header(h304, b"last-modified") {
        return same(&meta.last_modified, lm);
    }
    true
}

/// Merges a 304's headers into the stored entry and recomputes its freshness
/// with the new request/response times. `None` when the 304's validators do
/// not match the stored response (fetch it unconditionally instead).
///
/// Each field of the 304 replaces all stored fields of that name, except
/// hop-by-hop fields, `Content-Length` and `Age` (RFC 9111 §3.2). A 304
/// without `Date` gets one (its response time) so the entry is not aged by
/// the old `Date`.
pub fn merge_304(
    meta: &EntryMeta,
    req_headers: Headers<'_, '_>,
    headers_304: Headers<'_, '_>,
    cfg: &StoreConfig,
    request_time: i64,
    response_time: i64,
) -> Option<Merged> {
    if !validators_match(meta, headers_304) {
        return None;
    }
    let listed = connection_listed(headers_304);
    let update: Vec<(&[u8], &[u8])> = headers_304
        .iter()
        .filter(|(n, _)| stored_field(n, &listed, &[]))
        .map(|(n, v)| (*n, *v))
        .collect();
    let replaced = |name: &[u8]| {
        update.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
            || (name.eq_ignore_ascii_case(b"date") && !has_header(headers_304, b"date"))
    };
    let mut merged: Vec<(&[u8], &[u8])> = meta
        .headers
        .iter()
        .filter(|(n, _)| !replaced(n))
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect();
    merged.extend(update.iter().copied());
    if let Some(age) = first_header(headers_304, b"age") {
        merged.push((b"Age", age)); // read by build_meta, never stored
    }
    let decision = storable(
        b"GET",
        req_headers,
        meta.status,
        &merged,
        cfg,
        request_time,
        response_time,
    );
    let (d, action) = match decision {
        Storable::Yes(d) => (d, MergeAction::Rewrite),
        Storable::No(why) => (
            StoreDecision {
                lifetime_s: 0,
                expires_at: response_time,
                from_valid: false,
                stale_while_revalidate_s: 0,
                stale_if_error_s: 0,
                must_revalidate: true,
                no_cache: true,
                vary: meta.vary.clone(),
                strip: Vec::new(),
            },
            if why == NotStored::RequestNoStore {
                MergeAction::Leave
            } else {
                MergeAction::Remove(why)
            },
        ),
    };
    let mut out = build_meta(
        &meta.key,
        req_headers,
        meta.status,
        &merged,
        &d,
        request_time,
        response_time,
    );
    out.body_len = meta.body_len;
    Some(Merged { meta: out, action })
}

/// How to answer a client's conditional GET/HEAD from a cached entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAnswer {
    /// Send the cached response.
    Full,
    /// 304 Not Modified (send [`not_modified_headers`]).
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

/// RFC 9110 §13.2.2 evaluation of `If-Match`, `If-Unmodified-Since`,
/// `If-None-Match` and `If-Modified-Since` against the cached entry.
/// Preconditions apply only to 2xx entries; `If-Modified-Since` only when
/// there is no `If-None-Match`, and only for GET/HEAD.
pub fn client_conditional(
    meta: &EntryMeta,
    method: &[u8],
    req_headers: Headers<'_, '_>,
) -> ClientAnswer {
    if !(200..300).contains(&meta.status) {
        return ClientAnswer::Full;
    }
    let etag = meta.etag.as_deref().unwrap_or(b"");
    let lm = meta.last_modified.as_deref().and_then(parse_http_date);
    let get_or_head = method == b"GET" || method == b"HEAD";
    if let Some(h) = first_header(req_headers, b"if-match") {
        if !if_match(h, etag) {
            return ClientAnswer::PreconditionFailed;
        }
    } else if let Some(since) =
        first_header(req_headers, b"if-unmodified-since").and_then(parse_http_date)
    {
        if lm.is_none_or(|lm| lm > since) {
            return ClientAnswer::PreconditionFailed;
        }
    }
    if let Some(h) = first_header(req_headers, b"if-none-match") {
        if if_none_match(h, etag) {
            return if get_or_head {
                ClientAnswer::NotModified
            } else {
                ClientAnswer::PreconditionFailed
            };
        }
        return ClientAnswer::Full;
    }
    if get_or_head {
        if let (Some(h), Some(lm)) = (first_header(req_headers, b"if-modified-since"), lm) {
            if not_modified_since(h, lm) {
                return ClientAnswer::NotModified;
            }
        }
    }
    ClientAnswer::Full
}

/// The stored headers a 304 carries (RFC 9110 §15.4.5): `Cache-Control`,
/// `Content-Location`, `Date`, `ETag`, `Expires`, `Vary`.
pub fn not_modified_headers(meta: &EntryMeta) -> impl Iterator<Item = (&[u8], &[u8])> {
    const KEEP: [&[u8]; 6] = [
        b"cache-control",
        b"content-location",
        b"date",
        b"etag",
        b"expires",
        b"vary",
    ];
    meta.headers
        .iter()
        .filter(|(n, _)| KEEP.iter().any(|k| n.eq_ignore_ascii_case(k)))
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
}

/// RFC 9111 §4.4: does a response to `method` with `status` invalidate the
/// stored responses for its URI? Unsafe methods (anything but GET, HEAD,
/// OPTIONS, TRACE) with a 2xx or 3xx status.
pub fn invalidates(method: &[u8], status: u16) -> bool {
    const SAFE: [&[u8]; 4] = [b"GET", b"HEAD", b"OPTIONS", b"TRACE"];
    !SAFE.contains(&method) && (200..400).contains(&status)
}

/// The request targets (path and query) to invalidate after a successful
/// unsafe request to `scheme://host` + `request_target`: the target itself,
/// then `Location` and `Content-Location` when they resolve to the same
/// origin (RFC 9111 §4.4 forbids others). Relative references are resolved
/// against the request target; fragments and dot segments are removed.
pub fn invalidation_targets(
    scheme: &[u8],
    host: &[u8],
    request_target: &[u8],
    resp_headers: Headers<'_, '_>,
) -> Vec<Vec<u8>> {
    let mut out = vec![request_target.to_vec()];
    for name in [&b"location"[..], b"content-location"] {
        if let Some(v) = first_header(resp_headers, name) {
            if let Some(t) = same_origin_target(scheme, host, request_target, v) {
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
    }
    out
}

/// `reference` resolved against the request, as a path?query, or `None`
/// when it names another origin or is not a usable reference.
fn same_origin_target(
    scheme: &[u8],
    host: &[u8],
    base: &[u8],
    reference: &[u8],
) -> Option<Vec<u8>> {
    let reference = match reference.iter().position(|&b| b == b'#') {
        Some(i) => &reference[..i],
        None => reference,
    };
    if reference.is_empty() || reference.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return None;
    }
    let ours = normalize_authority(scheme, host)?;
    let rest = if let Some((s, after)) = split_scheme(reference) {
        if !s.eq_ignore_ascii_case(scheme) {
            return None;
        }
        after.strip_prefix(b"//")?
    } else if let Some(after) = reference.strip_prefix(b"//") {
        after
    } else {
        return Some(resolve_relative(base, reference));
    };
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    if normalize_authority(scheme, &rest[..end])? != ours {
        return None;
    }
    let path = &rest[end..];
    let mut t = if path.starts_with(b"?") || path.is_empty() {
        [&b"/"[..], path].concat()
    } else {
        path.to_vec()
    };
    dot_segments_in_target(&mut t);
    Some(t)
}

/// `scheme:` prefix of an absolute URI, if any.
fn split_scheme(r: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = r.iter().position(|&b| b == b':')?;
    let s = &r[..colon];
    let ok = s.first().is_some_and(u8::is_ascii_alphabetic)
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.');
    ok.then(|| (s, &r[colon + 1..]))
}

/// Lowercase `host:port` (default port by scheme, userinfo dropped).
fn normalize_authority(scheme: &[u8], authority: &[u8]) -> Option<Vec<u8>> {
    let a = match authority.iter().rposition(|&b| b == b'@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    if a.is_empty() {
        return None;
    }
    let host_end = if a.starts_with(b"[") {
        a.iter().position(|&b| b == b']')? + 1
    } else {
        a.iter().position(|&b| b == b':').unwrap_or(a.len())
    };
    let (h, port) = a.split_at(host_end);
    let port: &[u8] = if port.is_empty() || port == b":" {
        if scheme.eq_ignore_ascii_case(b"https") {
            b"443"
        } else {
            b"80"
        }
    } else {
        match port.strip_prefix(b":") {
            Some(p) if p.iter().all(u8::is_ascii_digit) => p,
            _ => return None,
        }
    };
    let mut out = h.to_ascii_lowercase();
    out.push(b':');
    out.extend_from_slice(port);
    Some(out)
}

/// RFC 3986 §5.2.2 for a relative-path or absolute-path reference.
fn resolve_relative(base: &[u8], reference: &[u8]) -> Vec<u8> {
    let base_path = &base[..base.iter().position(|&b| b == b'?').unwrap_or(base.len())];
    let mut t = if reference.starts_with(b"/") {
        reference.to_vec()
    } else if reference.starts_with(b"?") {
        [base_path, reference].concat()
    } else {
        let dir_end = base_path
            .iter()
            .rposition(|&b| b == b'/')
            .map_or(0, |i| i + 1);
        let mut t = if dir_end == 0 {
            b"/".to_vec()
        } else {
            base_path[..dir_end].to_vec()
        };
        t.extend_from_slice(reference);
        t
    };
    dot_segments_in_target(&mut t);
    t
}

/// Removes dot segments from the path part of `target` (before `?`).
fn dot_segments_in_target(target: &mut Vec<u8>) {
    let q = target
        .iter()
        .position(|&b| b == b'?')
        .unwrap_or(target.len());
    let mut path = remove_dot_segments(&target[..q]);
    path.extend_from_slice(&target[q..]);
    *target = path;
}

/// RFC 3986 §5.2.4, for an absolute path.
fn remove_dot_segments(path: &[u8]) -> Vec<u8> {
    let mut segs: Vec<&[u8]> = Vec::new();
    let parts: Vec<&[u8]> = path.split(|&b| b == b'/').skip(1).collect();
    let last = parts.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, s) in parts.iter().enumerate() {
        match *s {
            b"." => trailing_slash = i == last,
            b".." => {
                segs.pop();
                trailing_slash = i == last;
            }
            _ => {
                segs.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for s in &segs {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if trailing_slash || out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
#[path = "revalidate_tests.rs"]
mod tests;
