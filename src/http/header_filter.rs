//! The header filter phase: what every response head gets on its way out,
//! whether the content was local (static, `return`, `status`, an error or
//! limit page) or proxied (upstream or cache): the location's `add_header`
//! fields and the waiting room's pending `Set-Cookie`, applied to the head as a
//! value ([`ReplyHead`]) before it is serialized. Written once, here.
//!
//! `add_header` follows nginx: a field applies to 200, 201, 204, 206, 301,
//! 302, 303, 304, 307 and 308, and to every status with `always`.

use crate::config::{Expires, Extras, LocationConf};
use crate::http::ctx::HttpCtx;
use crate::http::uri;
use crate::http::vars::{self, ReqVars, RespVars};
use crate::proto::reply::{Framing, ReplyHead};
use crate::util::httpdate::{format_http_date, parse_http_date};

/// Whether an `add_header` without `always` applies to `status` (nginx's list).
pub fn add_header_applies(status: u16) -> bool {
    matches!(
        status,
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

/// Apply the filter to a response head with `resp.status` in `loc`: each
/// applicable `add_header`, its value evaluated for this request and
/// response (control bytes escaped: `$uri` is decoded), then the waiting
/// room's `Set-Cookie` when the request has one. An `add_header` whose
/// value is empty is not sent (nginx).
pub fn apply(loc: &LocationConf, req: &ReqVars<'_>, resp: &RespVars<'_>, head: &mut ReplyHead) {
    let applies = add_header_applies(resp.status);
    if applies {
        expires(loc.extras.expires, req.now_unix_ms / 1000, head);
        charset(&loc.extras, head);
    }
    for h in loc.add_headers.iter().filter(|h| applies || h.always) {
        match h.value.literal() {
            Some("") => {}
            Some(v) => head.push(h.name.as_bytes(), v.as_bytes()),
            None => {
                head.push_with(h.name.as_bytes(), |out| {
                    let start = out.len();
                    vars::eval(&h.value, req, resp, out);
                    uri::escape_controls(out, start);
                });
            }
        }
    }
    if !req.set_cookie.is_empty() {
        head.push(b"Set-Cookie", req.set_cookie);
    }
}

/// `expires`: `Expires` and `Cache-Control` replaced (nginx's rules; the
/// same status list as `add_header`).
fn expires(e: Expires, now: u64, head: &mut ReplyHead) {
    let now = now as i64;
    let (at, max_age) = match e {
        Expires::Off => return,
        Expires::Epoch => (1, None),
        Expires::Max => (2_145_916_555, Some(315_360_000)),
        Expires::After(t) => (now + t, (t >= 0).then_some(t)),
        Expires::Modified(t) => {
            let Some(m) = head.get(b"Last-Modified").and_then(parse_http_date) else {
                return;
            };
            let at = m + t;
            (at, (at >= now).then_some(at - now))
        }
    };
    head.remove(b"Expires");
    head.remove(b"Cache-Control");
    let mut date = [0u8; 29];
    format_http_date(at.max(0), &mut date);
    head.push(b"Expires", &date);
    match max_age {
        Some(s) => head.push_with(b"Cache-Control", |v| {
            v.extend_from_slice(b"max-age=");
            crate::proto::head::put_u64(v, s as u64);
        }),
        None => {
            head.push(b"Cache-Control", b"no-cache");
            true
        }
    };
}

/// `charset`: `; charset=NAME` on a `Content-Type` of the `charset_types`
/// that names no charset.
fn charset(x: &Extras, head: &mut ReplyHead) {
    let Some(cs) = x.charset.as_deref() else {
        return;
    };
    let Some(ct) = head.get(b"Content-Type") else {
        return;
    };
    let mime = ct.split(|&b| b == b';').next().unwrap_or(ct).trim_ascii();
    let listed = x
        .charset_types
        .iter()
        .any(|t| t == "*" || t.as_bytes().eq_ignore_ascii_case(mime));
    let has = ct.windows(8).any(|w| w.eq_ignore_ascii_case(b"charset="));
    if listed && !has {
        head.extend_value(b"Content-Type", |v| {
            v.extend_from_slice(b"; charset=");
            v.extend_from_slice(cs.as_bytes());
        });
    }
}

/// Where a local answer goes: the request's response head (a value the
/// content handler fills and the filter changes) and the connection's
/// output, which gets the head serialized once, then the body.
pub struct Sink<'a> {
    /// The response head being built.
    pub head: &'a mut ReplyHead,
    /// The connection's output.
    pub out: &'a mut Vec<u8>,
    /// `error_page`'s status for the answer being written (the target's
    /// content, the original error's status).
    pub status: Option<u16>,
}

impl Sink<'_> {
    /// Start a new head (the last response's fields are gone).
    pub fn start(&mut self, status: u16, framing: Framing, keep_alive: bool) -> &mut ReplyHead {
        self.head.reset(status, framing, keep_alive);
        self.head
    }

    /// Run the header filter for `loc` on the head and serialize it.
    pub fn send(&mut self, ctx: &HttpCtx, loc: &LocationConf, req: &ReqVars<'_>) {
        if let Some(s) = self.status {
            self.head.status = s;
        }
        let resp = RespVars {
            status: self.head.status,
            ..RespVars::default()
        };
        apply(loc, req, &resp, self.head);
        self.head
            .write_h1(ctx.server_header(loc), &ctx.date, self.out);
    }

    /// Serialize the head as it is (no location: a head that could not be
    /// parsed, a timeout).
    pub fn send_unfiltered(&mut self, ctx: &HttpCtx) {
        self.head.write_h1(b"sluice", &ctx.date, self.out);
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
