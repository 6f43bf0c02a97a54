//! A client connection that speaks HTTP/2: the socket side of
//! `proto::h2::conn::H2` inside the HTTP/1.1 connection (`Conn`) it began
//! as — same socket, TLS, buffers, deadline and timer entry.
//!
//! It starts when ALPN chose `h2` or a plain listener marked `http2` sees
//! the client's preface. Then each `on_ready` writes what is queued, reads
//! what the client sent and feeds it to the state machine, turns its events
//! into stream work (`h2_stream`: each request runs `handler::dispatch`
//! like any HTTP/1.1 request), and moves every stream's response into
//! HEADERS and DATA frames as the windows allow.
//!
//! Timeouts, all on the connection's one deadline: the preface and a
//! started frame or header block (`http2_recv_timeout`, else
//! `client_header_timeout`), our SETTINGS' acknowledgement, output that
//! cannot move — the socket's or a flow-control window's — for
//! `send_timeout` (a zero-window stall), no stream open
//! (`http2_idle_timeout`, else `keepalive_timeout`), `limit_req` delays.
//! A graceful stop sends GOAWAY and lets the open streams finish.

use super::{Conn, ReadResult};
use crate::config::Http2Conf;
use crate::http::ctx::HttpCtx;
use crate::http::handler::ProxyReq;
use crate::http::req_state::SubCapture;
use crate::proto::h2::conn::{Event, Limits, H2};
use crate::proto::h2::frame::{ErrorCode, PREFACE};

#[path = "h2_stream.rs"]
mod h2_stream;
use h2_stream::StreamApp;
pub use h2_stream::StreamIo;

/// Read buffer of an HTTP/2 connection: a full frame and then some.
const RBUF_BYTES: usize = 32 * 1024;
/// Frames queued for the socket before streams stop adding DATA.
const MAX_QUEUED_BYTES: usize = 256 * 1024;

/// What an HTTP/2 connection keeps besides the `Conn` it lives in.
pub struct H2Conn {
    proto: H2<StreamApp>,
    /// Scratch: an encoded header block, a file chunk.
    block: Vec<u8>,
    fbuf: Vec<u8>,
    /// Proxy sessions of streams that ended: the worker closes them.
    pub dead_sessions: Vec<usize>,
    /// Since when no stream is open (0: some are).
    idle_since_ms: u64,
    /// When a started frame or header block must be complete (0: none).
    recv_deadline_ms: u64,
    /// When the socket last took bytes, or had nothing to take.
    write_progress_ms: u64,
    idle_timeout_ms: u64,
    recv_timeout_ms: u64,
    send_timeout_ms: u64,
}

/// Whether `buf` starts like the HTTP/2 preface (enough to switch).
pub fn looks_like_preface(buf: &[u8]) -> bool {
    let n = buf.len().min(PREFACE.len());
    n >= 4 && buf[..n] == PREFACE[..n]
}

impl H2Conn {
    /// No stream is open.
    pub fn is_idle(&self) -> bool {
        self.proto.streams.is_empty()
    }
}

impl Conn {
    /// This connection speaks HTTP/2.
    pub fn is_h2(&self) -> bool {
        self.h2.is_some()
    }

    /// Switch to HTTP/2 (before any HTTP/1.1 request was read).
    pub(super) fn start_h2(&mut self, ctx: &mut HttpCtx) {
        let si = ctx
            .site
            .listens
            .get(self.listen_idx)
            .map_or(0, |l| l.default);
        let cfg = ctx.site.cfg.clone();
        let (conf, head_limits, header_timeout_ms, ka_ms, send_ms, requests) =
            match cfg.http.servers.get(si) {
                Some(s) => {
                    let loc = s.locations.first();
                    (
                        s.http2,
                        s.large_header_buffers,
                        s.client_header_timeout_ms,
                        loc.map_or(75_000, |l| l.keepalive_timeout_ms),
                        loc.map_or(60_000, |l| l.send_timeout_ms),
                        loc.map_or(1000, |l| l.keepalive_requests),
                    )
                }
                None => (
                    Http2Conf::default(),
                    (4, 8192),
                    60_000,
                    75_000,
                    60_000,
                    1000,
                ),
            };
        let limits = Limits {
            max_concurrent_streams: conf.max_concurrent_streams,
            max_field_bytes: conf.max_field_bytes.unwrap_or(head_limits.1),
            max_header_list_bytes: conf
                .max_header_bytes
                .unwrap_or(head_limits.0 * head_limits.1),
            max_requests: requests.max(1),
            conn_window: 1 << 20,
        };
        let mut h = Box::new(H2Conn {
            proto: H2::new(limits),
            block: Vec::new(),
            fbuf: Vec::new(),
            dead_sessions: Vec::new(),
            idle_since_ms: ctx.now_ms,
            recv_deadline_ms: ctx.now_ms + conf.recv_timeout_ms.unwrap_or(header_timeout_ms),
            write_progress_ms: ctx.now_ms,
            idle_timeout_ms: conf.idle_timeout_ms.unwrap_or(ka_ms),
            recv_timeout_ms: conf.recv_timeout_ms.unwrap_or(header_timeout_ms),
            send_timeout_ms: send_ms,
        });
        h.proto.start(&mut self.wbuf, ctx.now_ms);
        if self.rbuf.len() < RBUF_BYTES {
            self.rbuf.resize(RBUF_BYTES, 0);
        }
        if self.tls_info.is_none() {
            self.tls_info = self.tls.as_ref().and_then(|t| t.info());
        }
        ctx.counters.h2_connections += 1;
        self.h2 = Some(h);
    }

    /// `on_ready` of an HTTP/2 connection. False: close it.
    pub(super) fn h2_ready(&mut self, ctx: &mut HttpCtx) -> bool {
        let Some(mut h) = self.h2.take() else {
            return false;
        };
        let keep = self.h2_run(&mut h, ctx);
        self.h2 = Some(h);
        if keep {
            self.h2_deadline(ctx);
        }
        keep
    }

    fn h2_run(&mut self, h: &mut H2Conn, ctx: &mut HttpCtx) -> bool {
        if ctx.draining && !h.proto.goaway_sent() {
            h.proto.goaway(&mut self.wbuf);
        }
        // Until the socket or the client's windows stop us: reading stops
        // at WouldBlock, but while streams still produce frames and the
        // socket takes them all, go on (no writable event would come).
        let mut reads = 0;
        loop {
            // Bytes already buffered (the preface that made us switch).
            if self.rend > self.rstart && !h.proto.is_closed() {
                let buf = &self.rbuf[self.rstart..self.rend];
                match h.proto.recv(buf, &mut self.wbuf, ctx.now_ms) {
                    Ok(n) => self.rstart += n,
                    Err(e) => {
                        log::info!("http2 from {}: {} ({})", self.peer, e.why, e.code.as_str());
                        self.rstart = self.rend;
                    }
                }
                if self.rstart == self.rend {
                    self.rstart = 0;
                    self.rend = 0;
                    h.recv_deadline_ms = 0;
                } else if h.recv_deadline_ms == 0 {
                    h.recv_deadline_ms = ctx.now_ms + h.recv_timeout_ms;
                }
                if h.proto.in_header_block() && h.recv_deadline_ms == 0 {
                    h.recv_deadline_ms = ctx.now_ms + h.recv_timeout_ms;
                }
            }
            let queued = self.wbuf.len() - self.wpos;
            self.h2_events(h, ctx);
            self.h2_output(h, ctx);
            self.h2_events(h, ctx);
            let before = self.wbuf.len() - self.wpos;
            let produced = before > queued;
            match self.flush() {
                Err(()) => return false,
                Ok(true) => h.write_progress_ms = ctx.now_ms,
                Ok(false) => {
                    if self.wbuf.len() - self.wpos < before {
                        h.write_progress_ms = ctx.now_ms;
                    }
                }
            }
            if h.proto.is_closed() {
                // GOAWAY for a connection error is out (or as far as it
                // goes): close without waiting.
                return false;
            }
            if (ctx.draining || h.proto.goaway_sent() || h.proto.peer_goaway)
                && h.proto.streams.is_empty()
                && !self.is_writing()
            {
                return false;
            }
            if self.wbuf.len() - self.wpos > MAX_QUEUED_BYTES {
                return true; // the client must read first
            }
            if self.drained || reads >= 64 {
                if produced {
                    continue;
                }
                return true;
            }
            if self.rstart > 0 {
                self.rbuf.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
            }
            if self.rend == self.rbuf.len() {
                return false; // cannot happen: frames are at most 16 KiB
            }
            reads += 1;
            match self.read() {
                ReadResult::Data(drained) => self.drained = drained,
                ReadResult::WouldBlock if produced => {}
                ReadResult::WouldBlock => return true,
                ReadResult::Eof | ReadResult::Error => return false,
            }
        }
    }

    /// React to what the state machine reported (requests, body, resets;
    /// stream work can add more).
    fn h2_events(&mut self, h: &mut H2Conn, ctx: &mut HttpCtx) {
        while !h.proto.events.is_empty() {
            let mut events = std::mem::take(&mut h.proto.events);
            for ev in &events {
                match *ev {
                    Event::Request(id) => self.h2_request(h, ctx, id),
                    Event::Data(id) => h2_stream::body_arrived(h, id, &mut self.wbuf),
                    Event::Reset(id) => h2_stream::forget(h, id, &mut self.wbuf),
                }
            }
            events.clear();
            if h.proto.events.is_empty() {
                h.proto.events = events;
            }
        }
    }

    /// Move every stream's response along; forget the finished ones.
    fn h2_output(&mut self, h: &mut H2Conn, ctx: &HttpCtx) {
        let mut i = 0;
        while i < h.proto.streams.len() {
            if self.wbuf.len() - self.wpos > MAX_QUEUED_BYTES {
                return;
            }
            let id = h.proto.streams[i].id;
            if h2_stream::send(h, id, &mut self.wbuf, ctx.now_ms)
                && h.proto.streams[i].app.session.is_none()
            {
                h2_stream::forget(h, id, &mut self.wbuf);
                continue; // swap_remove moved another stream here
            }
            i += 1;
        }
        if h.proto.streams.is_empty() {
            if h.idle_since_ms == 0 {
                h.idle_since_ms = ctx.now_ms;
            }
        } else {
            h.idle_since_ms = 0;
        }
    }

    /// The next deadline of an HTTP/2 connection.
    fn h2_deadline(&mut self, ctx: &HttpCtx) {
        let Some(h) = &self.h2 else {
            return;
        };
        let mut d = u64::MAX;
        let mut take = |t: u64| {
            if t > 0 {
                d = d.min(t);
            }
        };
        take(h.recv_deadline_ms);
        take(h.proto.settings_deadline_ms());
        if h.proto.blocked_since_ms > 0 {
            take(h.proto.blocked_since_ms + h.send_timeout_ms);
        }
        if self.wpos < self.wbuf.len() {
            take(h.write_progress_ms + h.send_timeout_ms);
        }
        for s in &h.proto.streams {
            take(s.app.delayed_until_ms());
        }
        if h.proto.streams.is_empty() {
            take(if ctx.draining {
                ctx.now_ms
            } else {
                h.idle_since_ms.max(1) + h.idle_timeout_ms
            });
        }
        self.deadline_ms = if d == u64::MAX {
            ctx.now_ms + h.idle_timeout_ms
        } else {
            d
        };
    }

    /// A deadline of an HTTP/2 connection passed. False: close it.
    pub(super) fn h2_timeout(&mut self, ctx: &mut HttpCtx) -> bool {
        let Some(mut h) = self.h2.take() else {
            return false;
        };
        let now = ctx.now_ms;
        let fatal = if h.recv_deadline_ms > 0 && now >= h.recv_deadline_ms {
            Some(("a frame or header block took too long", ErrorCode::NoError))
        } else if h.proto.settings_overdue(now) {
            Some(("SETTINGS not acknowledged", ErrorCode::SettingsTimeout))
        } else if h.proto.blocked_since_ms > 0
            && now >= h.proto.blocked_since_ms + h.send_timeout_ms
        {
            Some((
                "flow-control window closed past send_timeout",
                ErrorCode::NoError,
            ))
        } else if self.wpos < self.wbuf.len() && now >= h.write_progress_ms + h.send_timeout_ms {
            Some(("client does not read (send_timeout)", ErrorCode::NoError))
        } else if h.proto.streams.is_empty()
            && !ctx.draining
            && h.idle_since_ms > 0
            && now >= h.idle_since_ms + h.idle_timeout_ms
        {
            Some(("idle", ErrorCode::NoError))
        } else {
            None
        };
        if let Some((why, code)) = fatal {
            log::info!("http2 from {}: {why}", self.peer);
            h.proto.fail(code, &mut self.wbuf);
            let _ = self.flush();
            self.h2 = Some(h);
            return false;
        }
        // limit_req delays that ended: those requests go on.
        let due: Vec<u32> = h
            .proto
            .streams
            .iter()
            .filter(|s| s.app.delayed_until_ms() > 0 && s.app.delayed_until_ms() <= now)
            .map(|s| s.id)
            .collect();
        for id in due {
            self.h2_dispatch(&mut h, ctx, id);
        }
        let keep = self.h2_run(&mut h, ctx);
        self.h2 = Some(h);
        if keep {
            self.h2_deadline(ctx);
        }
        keep
    }

    /// Requests the proxy must take over: (stream, request, whether it is
    /// an `auth_request` subrequest). Taken by the worker.
    pub fn h2_take_proxy(&mut self) -> Option<(u32, Box<ProxyReq>, bool)> {
        let h = self.h2.as_mut()?;
        h.proto.streams.iter_mut().find_map(|s| {
            if let Some(r) = s.app.sub_req.take() {
                return Some((s.id, r, true));
            }
            s.app.proxy_req.take().map(|r| (s.id, r, false))
        })
    }

    /// The worker started session `sk` for stream `id`.
    pub fn h2_set_session(&mut self, id: u32, sk: usize) {
        if let Some(s) = self.h2.as_mut().and_then(|h| h.proto.stream(id)) {
            s.app.session = Some(sk);
        }
    }

    /// The stream whose session is `sk`, and whether it is a subrequest's.
    pub fn h2_stream_of(&self, sk: usize) -> Option<(u32, bool)> {
        let h = self.h2.as_ref()?;
        h.proto
            .streams
            .iter()
            .find(|s| s.app.session == Some(sk))
            .map(|s| (s.id, s.app.sub.is_some()))
    }

    /// Every session of this connection's streams.
    pub fn h2_sessions(&self) -> Vec<usize> {
        self.h2.as_ref().map_or(Vec::new(), |h| {
            h.proto
                .streams
                .iter()
                .filter_map(|s| s.app.session)
                .chain(h.dead_sessions.iter().copied())
                .collect()
        })
    }

    /// Sessions whose streams are gone (taken by the worker, which closes them).
    pub fn h2_take_dead(&mut self) -> Vec<usize> {
        self.h2
            .as_mut()
            .map_or(Vec::new(), |h| std::mem::take(&mut h.dead_sessions))
    }

    /// The subrequest capture of stream `id` (the session's client).
    pub fn h2_sub(&mut self, id: u32) -> Option<&mut SubCapture> {
        let h = self.h2.as_mut()?;
        h.proto.stream(id)?.app.sub.as_deref_mut()
    }

    /// The client side of stream `id` for its proxy session.
    pub fn h2_stream_io(&mut self, id: u32, now_ms: u64) -> Option<StreamIo<'_>> {
        let exists = self
            .h2
            .as_mut()
            .is_some_and(|h| h.proto.stream(id).is_some());
        exists.then_some(StreamIo {
            conn: self,
            id,
            now_ms,
        })
    }

    /// The session of stream `id` ended: `aborted` resets the stream; a
    /// subrequest's answer sends its request on through the phases.
    pub fn h2_session_done(&mut self, ctx: &mut HttpCtx, id: u32, aborted: bool) {
        let Some(mut h) = self.h2.take() else {
            return;
        };
        if let Some(s) = h.proto.stream(id) {
            s.app.session = None;
            if let Some(sub) = s.app.sub.take() {
                s.app.req.auth_sub = Some(sub.result());
                self.h2_dispatch(&mut h, ctx, id);
            } else if aborted {
                h.proto
                    .stream_error(id, ErrorCode::Internal, &mut self.wbuf);
            } else {
                s.app.complete = true;
            }
        }
        self.h2 = Some(h);
    }

    /// Write what stream work queued and arm the deadline (after the
    /// worker drove sessions). False: close.
    pub fn h2_after_sessions(&mut self, ctx: &mut HttpCtx) -> bool {
        self.drained = true; // do not read here: on_ready does
        let keep = self.h2_ready(ctx);
        self.drained = false;
        keep
    }
}

/// Where the output of a stream that is gone goes (its session may still
/// write before the worker closes it).
#[derive(Default)]
pub struct Orphan {
    out: Vec<u8>,
    head: crate::proto::reply::ReplyHead,
}
