//! The header filter phase: what every response head gets on its way out,
//! whether the content was local (static, `return`, `status`, an error or
//! limit page) or proxied (upstream or cache): the location's `add_header`
//! fields and the waiting room's pending `Set-Cookie`. Written once, here.
//!
//! `add_header` follows nginx: a field applies to 200, 201, 204, 206, 301,
//! 302, 303, 304, 307 and 308, and to every status with `always`.

use crate::config::LocationConf;
use crate::http::response as resp;
use crate::http::uri;
use crate::http::vars::{self, ReqVars, RespVars};

/// Whether an `add_header` without `always` applies to `status` (nginx's list).
pub fn add_header_applies(status: u16) -> bool {
    matches!(
        status,
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

/// Append the filter's header lines for a response with `resp.status` in
/// `loc` to `out` (a response head being built, before its blank line, or a
/// block of lines the proxy adds to an upstream or cache head): each
/// applicable `add_header`, its value evaluated for this request and
/// response (control bytes escaped: `$uri` is decoded), then the waiting
/// room's `Set-Cookie` when the request has one. An `add_header` whose
/// value is empty is not sent (nginx).
pub fn write(loc: &LocationConf, req: &ReqVars<'_>, resp: &RespVars<'_>, out: &mut Vec<u8>) {
    let applies = add_header_applies(resp.status);
    for h in loc.add_headers.iter().filter(|h| applies || h.always) {
        match h.value.literal() {
            Some("") => {}
            Some(v) => resp::header(out, h.name.as_bytes(), v.as_bytes()),
            None => {
                let mark = out.len();
                out.extend_from_slice(h.name.as_bytes());
                out.extend_from_slice(b": ");
                let start = out.len();
                vars::eval(&h.value, req, resp, out);
                if out.len() == start {
                    out.truncate(mark);
                    continue;
                }
                uri::escape_controls(out, start);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    if !req.set_cookie.is_empty() {
        resp::header(out, b"Set-Cookie", req.set_cookie);
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
