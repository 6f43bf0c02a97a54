//! The header filter phase: what every response head gets on its way out,
//! whether the content was local (static, `return`, `status`, an error or
//! limit page) or proxied (upstream or cache): the location's `add_header`
//! fields and the waiting room's pending `Set-Cookie`. Written once, here.
//!
//! `add_header` follows nginx: a field applies to 200, 201, 204, 206, 301,
//! 302, 303, 304, 307 and 308, and to every status with `always`.

use crate::config::LocationConf;
use crate::http::response as resp;

/// Header (name, value) pairs borrowed from the configuration or the request.
pub type HeaderPairs<'a> = Vec<(&'a [u8], &'a [u8])>;

/// Whether an `add_header` without `always` applies to `status` (nginx's list).
pub fn add_header_applies(status: u16) -> bool {
    matches!(
        status,
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

/// Append the filter's fields for a response with `status` in `loc` to
/// `pairs`: `add_header`, then `Set-Cookie: cookie` when `cookie` is not
/// empty (a proxied response: the cookie travels with the request).
pub fn pairs<'a>(
    loc: &'a LocationConf,
    status: u16,
    cookie: &'a [u8],
    pairs: &mut HeaderPairs<'a>,
) {
    let applies = add_header_applies(status);
    pairs.extend(
        loc.add_headers
            .iter()
            .filter(|h| applies || h.always)
            .map(|h| (h.name.as_bytes(), h.value.as_bytes())),
    );
    if !cookie.is_empty() {
        pairs.push((b"Set-Cookie", cookie));
    }
}

/// Write the filter's fields into a local response head being built in
/// `out` (before [`resp::end`]): `add_header` and `cookie`, the one the
/// waiting room left for this request (`ctx.rooms.pending_cookie()`).
pub fn write(loc: &LocationConf, status: u16, cookie: &[u8], out: &mut Vec<u8>) {
    let applies = add_header_applies(status);
    for h in loc.add_headers.iter().filter(|h| applies || h.always) {
        resp::header(out, h.name.as_bytes(), h.value.as_bytes());
    }
    if !cookie.is_empty() {
        resp::header(out, b"Set-Cookie", cookie);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_header_follows_nginx_status_list_on_every_path() {
        // Regression: the proxy and cache paths used `status < 400`, so a
        // proxied 404 or 302-less 3xx got headers a local one did not.
        for s in [200, 201, 204, 206, 301, 302, 303, 304, 307, 308] {
            assert!(add_header_applies(s), "{s}");
        }
        for s in [202, 203, 300, 305, 400, 404, 429, 500, 502, 503] {
            assert!(!add_header_applies(s), "{s}");
        }
    }
}
