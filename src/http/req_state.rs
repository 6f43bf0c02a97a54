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
    /// The rewrite phase's variables, captures, URI and arguments.
    pub script: crate::http::vars::ScriptVars,
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
