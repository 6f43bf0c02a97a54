//! The header filter phase: what every response head gets on its way out,
//! whether the content was local (static, `return`, `status`, an error or
//! limit page) or proxied (upstream or cache): the location's `add_header`
//! fields and the waiting room's pending `Set-Cookie`, applied to the head as a
//! value ([`ReplyHead`]) before it is serialized. Written once, here.
//!
//! `add_header` follows nginx: a field applies to 200, 201, 204, 206, 301,
//! 302, 303, 304, 307 and 308, and to every status with `always`.

use crate::config::LocationConf;
use crate::http::ctx::HttpCtx;
use crate::http::uri;
use crate::http::vars::{self, ReqVars, RespVars};
use crate::proto::reply::{Framing, ReplyHead};

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

/// Where a local answer goes: the request's response head (a value the
/// content handler fills and the filter changes) and the connection's
/// output, which gets the head serialized once, then the body.
pub struct Sink<'a> {
    /// The response head being built.
    pub head: &'a mut ReplyHead,
    /// The connection's output.
    pub out: &'a mut Vec<u8>,
}

impl Sink<'_> {
    /// Start a new head (the last response's fields are gone).
    pub fn start(&mut self, status: u16, framing: Framing, keep_alive: bool) -> &mut ReplyHead {
        self.head.reset(status, framing, keep_alive);
        self.head
    }

    /// Run the header filter for `loc` on the head and serialize it.
    pub fn send(&mut self, ctx: &HttpCtx, loc: &LocationConf, req: &ReqVars<'_>) {
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
