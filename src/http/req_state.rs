//! The state one request keeps while its phases run, which outlives any
//! one phase: the normalized path (`$uri`), the waiting room's cookie for
//! the response, the `limit_bytes` slots the log phase charges, and the
//! response head. The connection owns one (HTTP/2 will own one per
//! stream) and reuses its buffers for every request: no allocation per
//! request once warm, and no request state in the worker's scratch.

use crate::proto::reply::ReplyHead;

/// One request's state.
#[derive(Debug, Default)]
pub struct Request {
    /// The normalized path.
    pub path: Vec<u8>,
    /// A regex location's captures, as spans of `path` (`$1`..`$9`).
    pub captures: Vec<(u32, u32)>,
    /// The waiting room's `Set-Cookie` value for the response (empty: none).
    pub cookie: Vec<u8>,
    /// (zone, slot) of the request's `limit_bytes` keys.
    pub bytes_slots: Vec<(usize, usize)>,
    /// The response head.
    pub reply: ReplyHead,
    /// A `limit_req` delay held the request and it is dispatched again: the
    /// access phase already decided (the room does not run again, its
    /// cookie is kept; the limits are not charged again).
    pub held: bool,
    /// The answer of this request's `auth_request` subrequest, proxied
    /// while the request waited (taken by the access phase).
    pub auth_sub: Option<SubResult>,
    /// The rewrite phase's variables, captures, URI and arguments.
    pub script: crate::http::vars::ScriptVars,
}

/// What an `auth_request` subrequest answered.
#[derive(Debug, Clone, Default)]
pub struct SubResult {
    /// Its status.
    pub status: u16,
    /// Its `WWW-Authenticate` (for a 401).
    pub www_authenticate: Option<Vec<u8>>,
    /// Its upstream's response head (`$upstream_http_NAME`; empty: local).
    pub head: Vec<u8>,
}

/// The client side of a proxied subrequest: its response head is kept,
/// the body dropped.
#[derive(Debug, Default)]
pub struct SubCapture {
    /// Output so far (the head, then body bytes that are dropped).
    pub out: Vec<u8>,
    /// The response head being built.
    pub head: ReplyHead,
}

/// Head bytes a subrequest keeps at most.
const MAX_SUB_HEAD: usize = 64 * 1024;

impl SubCapture {
    /// Keep only the head of what was written.
    pub fn trim(&mut self) {
        match self.out.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => self.out.truncate(i + 4),
            None => self.out.truncate(MAX_SUB_HEAD),
        }
    }

    /// The status and `WWW-Authenticate` of the captured head (500 if none).
    pub fn result(&self) -> SubResult {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut fields);
        if !matches!(r.parse(&self.out), Ok(httparse::Status::Complete(_))) {
            return SubResult {
                status: 500,
                ..SubResult::default()
            };
        }
        SubResult {
            status: r.code.unwrap_or(500),
            www_authenticate: r
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("www-authenticate"))
                .map(|h| h.value.to_vec()),
            head: self.out.clone(),
        }
    }
}

impl Request {
    /// Start the next request on the connection (a held one keeps what the
    /// access phase gave it).
    pub fn begin(&mut self) {
        if !self.held {
            self.cookie.clear();
        }
        self.bytes_slots.clear();
    }
}
