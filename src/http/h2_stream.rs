//! One HTTP/2 stream as an HTTP/1.1 request: the phase engine never knows.
//!
//! In: the checked header block becomes an HTTP/1.1 head in the stream's
//! own buffer (`:method :path` as the request line, `:authority` as
//! `Host`, cookies joined as RFC 9113 §8.2.3 says, `Transfer-Encoding:
//! chunked` for a body of unknown length), parsed by `request::parse` and
//! run by `handler::dispatch` with the stream's own `Request` state. DATA
//! is the request body (re-chunked when it has no length) for the proxy.
//!
//! Out: whatever the handler or the proxy session writes — an HTTP/1.1
//! head and body, in the stream's output buffer — is turned into frames:
//! the head into HEADERS (hop-by-hop fields dropped), the body into DATA
//! (de-chunked), a file body read in window-sized pieces. Upstreams and
//! the cache stay HTTP/1.1.

use super::H2Conn;
use crate::http::chunked::{encode_chunk, ChunkedDecoder};
use crate::http::conn::Conn;
use crate::http::ctx::HttpCtx;
use crate::http::handler::{self, ConnInfo, Outcome, ProxyReq};
use crate::http::header_filter::Sink;
use crate::http::req_state::{Request, SubCapture};
use crate::http::request::{self, Head};
use crate::http::vars::ConnVars;
use crate::proto::h2::frame::ErrorCode;
use crate::proto::h2::hpack;
use std::fs::File;

/// What the connection keeps for one stream.
#[derive(Default)]
pub struct StreamApp {
    /// The request's state across phases.
    pub req: Request,
    head_bytes: Vec<u8>,
    head: Option<Head>,
    delayed_until_ms: u64,
    /// The response, as HTTP/1.1 bytes, and how far it went out.
    out: Vec<u8>,
    out_pos: usize,
    head_sent: bool,
    no_body: bool,
    chunked: Option<ChunkedDecoder>,
    /// De-chunked body bytes not yet sent.
    dec: Vec<u8>,
    file: Option<(File, u64, u64)>,
    /// Nothing more will be added to `out` (or `file`).
    pub complete: bool,
    /// For the worker: a request to proxy, an `auth_request` subrequest.
    pub proxy_req: Option<Box<ProxyReq>>,
    pub sub_req: Option<Box<ProxyReq>>,
    /// The subrequest's answer being captured.
    pub sub: Option<Box<SubCapture>>,
    /// The proxy session serving this stream.
    pub session: Option<usize>,
    /// Request body for the proxy (HTTP/1.1-framed).
    body: Vec<u8>,
    body_unacked: usize,
    body_chunked: bool,
    body_ended: bool,
    /// The request body is not wanted (a local answer): dropped on arrival.
    discard: bool,
    is_head: bool,
    send_timeout_ms: u64,
}

impl StreamApp {
    /// When a `limit_req` delay of this stream ends (0: none).
    pub fn delayed_until_ms(&self) -> u64 {
        self.delayed_until_ms
    }
}

/// The HTTP/1.1 head of a stream's request, from its checked fields.
/// The HTTP/1.1 head of a request: `chunked` for a body still coming
/// without a length, `known_len` for one that all came (END_STREAM seen)
/// without a content-length field.
fn build_head(
    f: &crate::proto::h2::fields::ReqFields,
    chunked: bool,
    known_len: Option<usize>,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(f.method());
    out.push(b' ');
    out.extend_from_slice(f.path());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let authority = f.authority();
    if let Some(a) = authority {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    let mut cookie = false;
    for (n, v) in f.fields() {
        if (n == b"host" && authority.is_some()) || n == b"expect" || n == b"te" {
            continue;
        }
        if n == b"cookie" {
            cookie = true;
            continue;
        }
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    if cookie {
        out.extend_from_slice(b"Cookie: ");
        let mut first = true;
        for (_, v) in f.fields().filter(|(n, _)| *n == b"cookie") {
            if !first {
                out.extend_from_slice(b"; ");
            }
            first = false;
            out.extend_from_slice(v);
        }
        out.extend_from_slice(b"\r\n");
    }
    if chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    } else if let Some(n) = known_len {
        out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

impl Conn {
    /// A stream's request head arrived.
    pub(super) fn h2_request(&mut self, h: &mut H2Conn, ctx: &mut HttpCtx, id: u32) {
        let limits = self.limits.head;
        let Some(s) = h.proto.stream(id) else {
            return;
        };
        ctx.counters.h2_streams += 1;
        self.requests += 1;
        if let Some(why) = s.head.malformed {
            log::info!("http2 from {}: stream {id}: {why}", self.peer);
            h.proto
                .stream_error(id, ErrorCode::Protocol, &mut self.wbuf);
            return;
        }
        let app = &mut s.app;
        if s.head.too_large {
            let mut sink = Sink {
                head: &mut app.req.reply,
                out: &mut app.out,
                status: None,
            };
            handler::simple_error(ctx, 431, true, &mut sink);
            app.complete = true;
            app.discard = true;
            return;
        }
        app.body_chunked = s.head.content_length.is_none() && !s.recv_closed;
        app.is_head = s.head.method() == b"HEAD";
        // The whole body may have come with the head (one read): its length.
        let known_len = (s.head.content_length.is_none() && s.recv_closed && !s.body.is_empty())
            .then_some(s.body.len());
        build_head(&s.head, app.body_chunked, known_len, &mut app.head_bytes);
        // Generous limits: the field limits were applied to the block.
        let parse_limits = request::HeadLimits {
            line_bytes: limits.line_bytes.max(app.head_bytes.len()),
            total_bytes: app.head_bytes.len() + 1,
        };
        match request::parse(&app.head_bytes, &parse_limits) {
            Ok(Some(mut head)) => {
                head.h2 = true;
                head.keep_alive = true;
                app.head = Some(head);
            }
            Ok(None) | Err(_) => {
                let code = match request::parse(&app.head_bytes, &parse_limits) {
                    Err(e) => e.status(),
                    _ => 400,
                };
                let mut sink = Sink {
                    head: &mut app.req.reply,
                    out: &mut app.out,
                    status: None,
                };
                handler::simple_error(ctx, code, true, &mut sink);
                app.complete = true;
                app.discard = true;
                return;
            }
        }
        self.h2_dispatch(h, ctx, id);
    }

    /// Run (or run again: after a delay, a subrequest) a stream's phases.
    pub(super) fn h2_dispatch(&mut self, h: &mut H2Conn, ctx: &mut HttpCtx, id: u32) {
        let info = ConnInfo {
            peer: self.peer,
            vars: ConnVars {
                requests: self.requests,
                ..self.vars
            },
            listen_idx: self.listen_idx,
            requests: self.requests,
            body_pending: 0,
            tls: self.tls_info.as_ref(),
        };
        let Some(s) = h.proto.stream(id) else {
            return;
        };
        let app = &mut s.app;
        app.delayed_until_ms = 0;
        let Some(head) = app.head.as_ref() else {
            return;
        };
        let out = handler::dispatch(
            ctx,
            &info,
            &mut app.req,
            &app.head_bytes,
            head,
            &mut app.out,
        );
        apply(app, out, ctx.now_ms);
        if app.out.is_empty() && app.complete && app.file.is_none() {
            // `return 444`: no answer; HTTP/2 resets the stream.
            h.proto.stream_error(id, ErrorCode::Cancel, &mut self.wbuf);
        }
        body_arrived(h, id, &mut self.wbuf);
    }
}

/// What the phases decided for a stream.
fn apply(app: &mut StreamApp, mut out: Outcome, now_ms: u64) {
    app.send_timeout_ms = out.send_timeout_ms;
    if let Some(sub) = out.subrequest.take() {
        app.sub_req = Some(sub);
        app.sub = Some(Box::default());
        return;
    }
    if let Some(until) = out.delay_until_ms {
        app.delayed_until_ms = until.max(now_ms + 1);
        return;
    }
    if let Some(p) = out.proxy.take() {
        app.proxy_req = Some(p);
        return;
    }
    app.file = out.file.take();
    app.discard = true;
    app.complete = true;
}

/// Body bytes arrived on stream `id` (or its end): keep them for the
/// proxy, or drop them (and give the window back) when nobody wants them.
pub(super) fn body_arrived(h: &mut H2Conn, id: u32, wbuf: &mut Vec<u8>) {
    let Some(s) = h.proto.stream(id) else {
        return;
    };
    let n = s.body.len();
    let ended = s.recv_closed;
    let app = &mut s.app;
    if app.discard {
        s.body.clear();
        let kept = std::mem::take(&mut app.body_unacked);
        app.body.clear();
        h.proto.consumed(id, n + kept, wbuf);
        return;
    }
    if n > 0 {
        if app.body_chunked {
            encode_chunk(&mut app.body, &s.body);
        } else {
            app.body.extend_from_slice(&s.body);
        }
        s.body.clear();
        app.body_unacked += n;
    }
    if ended && app.body_chunked && !app.body_ended {
        app.body.extend_from_slice(b"0\r\n\r\n");
        app.body_ended = true;
    }
}

/// Lowercase fields the HTTP/2 head must not carry (§8.2.2), and what the
/// frames say instead (framing, the connection).
fn dropped(name: &[u8]) -> bool {
    crate::proto::is_hop_by_hop(name)
}

/// Forget stream `id`, giving back the window of body bytes nobody read.
pub(super) fn forget(h: &mut H2Conn, id: u32, wbuf: &mut Vec<u8>) {
    if let Some(s) = h.proto.stream(id) {
        let n = std::mem::take(&mut s.app.body_unacked);
        if let Some(sk) = s.app.session.take() {
            h.dead_sessions.push(sk);
        }
        if n > 0 {
            h.proto.consumed(id, n, wbuf);
        }
    }
    h.proto.remove(id, wbuf);
}

/// Move stream `id`'s response into frames. True when it is all out.
pub(super) fn send(h: &mut H2Conn, id: u32, wbuf: &mut Vec<u8>, now_ms: u64) -> bool {
    let H2Conn {
        proto, block, fbuf, ..
    } = h;
    let Some(s) = proto.stream(id) else {
        return true;
    };
    if s.reset {
        return false; // the Reset event removes it
    }
    if s.send_closed {
        return true;
    }
    let app = &mut s.app;
    if !app.head_sent {
        let pending = &app.out[app.out_pos..];
        let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
            if app.complete {
                proto.stream_error(id, ErrorCode::Internal, wbuf);
            }
            return false;
        };
        let head_len = end + 4;
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut r = httparse::Response::new(&mut fields);
        let status = match r.parse(&pending[..head_len]) {
            Ok(httparse::Status::Complete(_)) => r.code.unwrap_or(500),
            _ => {
                proto.stream_error(id, ErrorCode::Internal, wbuf);
                return false;
            }
        };
        if (100..200).contains(&status) {
            // Informational (100 Continue): not forwarded.
            app.out_pos += head_len;
            return false;
        }
        block.clear();
        hpack::encode_status(block, status);
        let mut lower = Vec::new();
        for f in r.headers.iter() {
            lower.clear();
            lower.extend(f.name.bytes().map(|b| b.to_ascii_lowercase()));
            if lower == b"transfer-encoding" {
                if f.value.eq_ignore_ascii_case(b"chunked") {
                    app.chunked = Some(ChunkedDecoder::new());
                }
                continue;
            }
            if dropped(&lower) {
                continue;
            }
            hpack::encode_field(block, &lower, f.value);
        }
        app.no_body = app.is_head || status == 204 || status == 304;
        app.head_sent = true;
        app.out_pos += head_len;
        let end_stream = app.no_body && app.complete;
        proto.send_headers(id, block, end_stream, wbuf);
        if end_stream {
            return true;
        }
    }
    let Some(s) = proto.stream(id) else {
        return true;
    };
    let app = &mut s.app;
    if app.no_body {
        app.out.clear();
        app.out_pos = 0;
        app.file = None;
        if app.complete {
            proto.send_data(id, &[], true, wbuf, now_ms);
            return true;
        }
        return false;
    }
    // Body bytes in `out` (de-chunked into `dec` first when chunked).
    let mut body_done = false;
    if let Some(dec) = &mut app.chunked {
        let dst = &mut app.dec;
        match dec.feed(&app.out[app.out_pos..], &mut |d| dst.extend_from_slice(d)) {
            Ok((used, done)) => {
                app.out_pos += used;
                body_done = done;
            }
            Err(_) => {
                proto.stream_error(id, ErrorCode::Internal, wbuf);
                return false;
            }
        }
    }
    let complete = app.complete || body_done;
    let mut data = std::mem::take(if app.chunked.is_some() {
        &mut app.dec
    } else {
        &mut app.out
    });
    let chunked = app.chunked.is_some();
    let start = if chunked { 0 } else { app.out_pos };
    let file_left = app.file.is_some();
    let n = proto.send_data(id, &data[start..], complete && !file_left, wbuf, now_ms);
    let Some(s) = proto.stream(id) else {
        return true;
    };
    let app = &mut s.app;
    if chunked {
        data.drain(..n);
        app.dec = data;
        if app.out_pos == app.out.len() {
            app.out.clear();
            app.out_pos = 0;
        }
    } else {
        app.out_pos += n;
        if app.out_pos == data.len() {
            data.clear();
            app.out_pos = 0;
        }
        app.out = data;
    }
    if s.send_closed {
        return true;
    }
    let app = &mut s.app;
    let body_left = if chunked {
        app.dec.len()
    } else {
        app.out.len() - app.out_pos
    };
    if body_left > 0 {
        return false;
    }
    // A file body, window by window.
    loop {
        let window = proto.send_window(id).min(64 * 1024);
        let Some(s) = proto.stream(id) else {
            return true;
        };
        let complete = s.app.complete;
        let Some((file, off, rem)) = &mut s.app.file else {
            break;
        };
        if *rem == 0 {
            s.app.file = None;
            break;
        }
        if window == 0 {
            proto.send_data(id, &[1], false, wbuf, now_ms); // marks it blocked
            return false;
        }
        let chunk = (*rem as usize).min(window);
        fbuf.resize(chunk, 0);
        use std::os::unix::fs::FileExt;
        let got = match file.read_at(&mut fbuf[..chunk], *off) {
            Ok(0) | Err(_) => {
                proto.stream_error(id, ErrorCode::Internal, wbuf);
                return false;
            }
            Ok(n) => n,
        };
        *off += got as u64;
        *rem -= got as u64;
        let last = *rem == 0 && complete;
        proto.send_data(id, &fbuf[..got], last, wbuf, now_ms);
        if last {
            return true;
        }
        if wbuf.len() > 256 * 1024 {
            return false;
        }
    }
    let Some(s) = proto.stream(id) else {
        return true;
    };
    if s.app.complete && !s.send_closed {
        proto.send_data(id, &[], true, wbuf, now_ms);
    }
    proto.stream(id).is_none_or(|s| s.send_closed)
}

/// The client side of a stream for its proxy session (the proxy
/// implements its `Client` over this).
pub struct StreamIo<'a> {
    /// The connection.
    pub conn: &'a mut Conn,
    /// The stream.
    pub id: u32,
    /// Monotonic ms now.
    pub now_ms: u64,
}

impl StreamIo<'_> {
    fn app(&mut self) -> Option<&mut StreamApp> {
        let id = self.id;
        Some(&mut self.conn.h2.as_mut()?.proto.stream(id)?.app)
    }

    /// Request-body bytes buffered.
    pub fn body_bytes(&self) -> &[u8] {
        let id = self.id;
        self.conn
            .h2
            .as_ref()
            .and_then(|h| h.proto.streams.iter().find(|s| s.id == id))
            .map_or(&[][..], |s| &s.app.body[..])
    }

    /// The session took `n` body bytes: the client may send more.
    pub fn consume(&mut self, n: usize) {
        let id = self.id;
        let Some(h) = self.conn.h2.as_mut() else {
            return;
        };
        let Some(s) = h.proto.stream(id) else {
            return;
        };
        let n = n.min(s.app.body.len());
        s.app.body.drain(..n);
        let credit = n.min(s.app.body_unacked);
        s.app.body_unacked -= credit;
        h.proto.consumed(id, credit, &mut self.conn.wbuf);
    }

    /// More body now? The connection reads the socket itself: Ok(false),
    /// or Err when the stream is gone.
    #[allow(clippy::result_unit_err)]
    pub fn read_body(&mut self) -> Result<bool, ()> {
        match self.app() {
            Some(_) => Ok(false),
            None => Err(()),
        }
    }

    /// The response's output (HTTP/1.1 bytes; a stream that is gone
    /// writes to a scratch buffer nobody reads).
    pub fn out(&mut self) -> &mut Vec<u8> {
        let id = self.id;
        let conn = &mut *self.conn;
        let orphan = &mut conn.h2_orphan;
        match conn.h2.as_mut().and_then(|h| h.proto.stream(id)) {
            Some(s) => &mut s.app.out,
            None => {
                orphan.out.clear();
                &mut orphan.out
            }
        }
    }

    /// The response head being built and the output.
    pub fn sink(&mut self) -> Sink<'_> {
        let id = self.id;
        let conn = &mut *self.conn;
        let orphan = &mut conn.h2_orphan;
        let (head, out) = match conn.h2.as_mut().and_then(|h| h.proto.stream(id)) {
            Some(s) => (&mut s.app.req.reply, &mut s.app.out),
            None => {
                orphan.out.clear();
                (&mut orphan.head, &mut orphan.out)
            }
        };
        Sink {
            head,
            out,
            status: None,
        }
    }

    /// Response bytes not yet on the wire (the stream's and the socket's).
    pub fn out_pending(&self) -> usize {
        let id = self.id;
        let own = self
            .conn
            .h2
            .as_ref()
            .and_then(|h| h.proto.streams.iter().find(|s| s.id == id))
            .map_or(0, |s| s.app.out.len() - s.app.out_pos + s.app.dec.len());
        own + (self.conn.wbuf.len() - self.conn.wpos)
    }

    /// Frame what the session wrote and write the socket; Ok(true) when
    /// all of it is out.
    #[allow(clippy::result_unit_err)]
    pub fn flush_out(&mut self) -> Result<bool, ()> {
        let id = self.id;
        let conn = &mut *self.conn;
        if let Some(h) = conn.h2.as_mut() {
            // A stream all sent is forgotten by the connection's next run.
            send(h, id, &mut conn.wbuf, self.now_ms);
        }
        conn.flush()?;
        Ok(self.out_pending() == 0)
    }

    /// The proxied response is complete.
    pub fn finish_proxy(&mut self) {
        if let Some(app) = self.app() {
            app.complete = true;
        }
    }

    /// The stream's send_timeout.
    pub fn send_timeout_ms(&self) -> u64 {
        let id = self.id;
        self.conn
            .h2
            .as_ref()
            .and_then(|h| h.proto.streams.iter().find(|s| s.id == id))
            .map_or(60_000, |s| s.app.send_timeout_ms.max(1))
    }

    /// `proxy_intercept_errors`: the location's `error_page` answers.
    pub fn error_page(&mut self, ctx: &mut HttpCtx, p: &mut ProxyReq, code: u16) -> bool {
        let id = self.id;
        let conn = &mut *self.conn;
        let info = ConnInfo {
            peer: conn.peer,
            vars: ConnVars {
                requests: conn.requests,
                ..conn.vars
            },
            listen_idx: conn.listen_idx,
            requests: conn.requests,
            body_pending: 0,
            tls: conn.tls_info.as_ref(),
        };
        let Some(h) = conn.h2.as_mut() else {
            return false;
        };
        let Some(s) = h.proto.stream(id) else {
            return false;
        };
        let app = &mut s.app;
        let Some(out) =
            handler::proxied_error_page(ctx, &info, &mut app.req, p, code, true, &mut app.out)
        else {
            return false;
        };
        apply(app, out, ctx.now_ms);
        true
    }
}
