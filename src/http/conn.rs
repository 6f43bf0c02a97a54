//! One client connection: the HTTP/1.1 state machine.
//!
//! read -> parse heads (pipelined, batched) -> dispatch -> queue responses ->
//! write (one write(2) for many small responses, sendfile for large files) ->
//! keep-alive or a polite close. Edge-triggered: every event reads until a
//! short read or EAGAIN and writes until done or EAGAIN.
//!
//! Timeouts are deadlines the worker's timer wheel checks: the head must
//! arrive within `client_header_timeout` of its first byte; body reads and
//! writes must progress within `client_body_timeout` / `send_timeout`; an idle
//! keep-alive connection lives `keepalive_timeout`.
//!
//! A request that `limit_req` delays stays parsed-but-unanswered at the
//! front of the read buffer; the deadline becomes its release time, and when
//! the timer fires (`on_timeout`) it is dispatched again with the limits
//! skipped. Requests pipelined behind it wait.

use crate::http::chunked::ChunkedDecoder;
use crate::http::ctx::HttpCtx;
use crate::http::handler::{self, Outcome};
use crate::http::header_filter::Sink;
use crate::http::req_state::Request;
use crate::http::request::{self, HeadLimits};
use crate::http::vars::ConnVars;
use crate::tls::{Stream, TlsInfo};
use mio::net::TcpStream;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;

#[path = "h2.rs"]
pub mod h2;

/// Size of the first read buffer (nginx's client_header_buffer_size).
const INITIAL_RBUF: usize = 2048;
/// Responses queued before the connection stops parsing pipelined requests.
const MAX_QUEUED_OUTPUT: usize = 256 * 1024;
/// How long a closing connection drains what the client still sends.
const LINGER_MS: u64 = 5000;
/// Idle keep-alive connections are closed this long after draining starts.
pub const DRAIN_IDLE_MS: u64 = 1000;
/// nginx's answer to plain HTTP on a TLS port (in plain text), then close.
const PLAIN_HTTP_ON_TLS: &[u8] = b"HTTP/1.1 400 Bad Request\r\nServer: sluice\r\n\
Content-Type: text/html\r\nContent-Length: 220\r\nConnection: close\r\n\r\n\
<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n\
<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n\
<center>The plain HTTP request was sent to HTTPS port</center>\r\n\
<hr><center>sluice</center>\r\n</body>\r\n</html>\r\n";

/// Per-connection settings fixed at accept time (default server of the address).
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Head size limits.
    pub head: HeadLimits,
    /// client_header_timeout.
    pub header_timeout_ms: u64,
    /// The address speaks HTTP/2 too (ALPN `h2`, or h2c prior knowledge).
    pub http2: bool,
}

enum Discard {
    None,
    Length(u64),
    Chunked(ChunkedDecoder),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Active,
    Lingering,
}

enum ReadResult {
    Data(bool),
    WouldBlock,
    Eof,
    Error,
}

/// A client connection.
pub struct Conn {
    /// The socket.
    pub sock: TcpStream,
    /// Client address.
    pub peer: IpAddr,
    /// `$connection`, `$remote_port`, `$server_addr`... (`requests` is
    /// filled in per request).
    vars: ConnVars,
    /// Index into the listen table.
    pub listen_idx: usize,
    /// When the timer wheel should look at this connection (0 = never).
    pub deadline_ms: u64,
    /// The deadline the wheel currently holds an entry for (0 = none).
    pub scheduled_ms: u64,
    limits: ConnLimits,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    drained: bool,
    wbuf: Vec<u8>,
    wpos: usize,
    file: Option<(File, u64, u64)>,
    sendfile: bool,
    max_body_bytes: u64,
    nodelay: bool,
    discard: Discard,
    close_after_write: bool,
    linger: bool,
    phase: Phase,
    requests: u64,
    head_deadline_ms: u64,
    linger_until_ms: u64,
    ka_timeout_ms: u64,
    send_timeout_ms: u64,
    body_timeout_ms: u64,
    /// A request the proxy must take over (taken by the worker).
    pub proxy_req: Option<Box<handler::ProxyReq>>,
    /// The proxy owns the response: no new requests are parsed meanwhile.
    pub proxying: bool,
    /// The proxy wants more request-body bytes from the client.
    pub want_body: bool,
    /// The worker's proxy session for this connection.
    pub session: Option<usize>,
    /// An `auth_request` subrequest to proxy (taken by the worker).
    pub sub_req: Option<Box<handler::ProxyReq>>,
    /// The session answers a subrequest into `sub`; the request's head
    /// waits at `rstart` and is dispatched again when it is done.
    pub sub: Option<Box<crate::http::req_state::SubCapture>>,
    /// A `limit_req` delay holds the head at `rstart` until this monotonic
    /// ms (0 = none).
    delayed_until_ms: u64,
    /// The current request's state (reused for the next one).
    req: Request,
    /// TLS over the socket (`listen ... ssl`).
    tls: Option<Box<Stream>>,
    /// What the handshake settled, once it has.
    tls_info: Option<TlsInfo>,
    /// Its TLS handshake step waits for the worker's next loop iteration.
    pub parked: bool,
    /// HTTP/2, once the connection switched to it.
    h2: Option<Box<h2::H2Conn>>,
    /// Output of HTTP/2 streams that are gone.
    h2_orphan: h2::Orphan,
}

/// Read through TLS when the connection has it.
fn io_read(
    sock: &mut TcpStream,
    tls: &mut Option<Box<Stream>>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match tls {
        Some(t) => t.read(sock, buf),
        None => sock.read(buf),
    }
}

/// Write through TLS when the connection has it.
fn io_write(
    sock: &mut TcpStream,
    tls: &mut Option<Box<Stream>>,
    buf: &[u8],
) -> std::io::Result<usize> {
    match tls {
        Some(t) => t.write(sock, buf),
        None => sock.write(buf),
    }
}

impl Conn {
    /// A new connection.
    pub fn new(
        sock: TcpStream,
        vars: ConnVars,
        listen_idx: usize,
        limits: ConnLimits,
        now_ms: u64,
        tls: Option<Box<Stream>>,
    ) -> Conn {
        Conn {
            sock,
            peer: vars.peer.ip(),
            vars,
            listen_idx,
            deadline_ms: now_ms + limits.header_timeout_ms,
            scheduled_ms: 0,
            limits,
            rbuf: vec![0; INITIAL_RBUF],
            rstart: 0,
            rend: 0,
            drained: false,
            wbuf: Vec::new(),
            wpos: 0,
            file: None,
            sendfile: true,
            max_body_bytes: 0,
            nodelay: true,
            discard: Discard::None,
            close_after_write: false,
            linger: false,
            phase: Phase::Active,
            requests: 0,
            head_deadline_ms: now_ms + limits.header_timeout_ms,
            linger_until_ms: 0,
            ka_timeout_ms: 75_000,
            send_timeout_ms: 60_000,
            body_timeout_ms: 60_000,
            proxy_req: None,
            sub_req: None,
            sub: None,
            proxying: false,
            want_body: false,
            session: None,
            delayed_until_ms: 0,
            req: Request::default(),
            tls,
            tls_info: None,
            parked: false,
            h2: None,
            h2_orphan: h2::Orphan::default(),
        }
    }

    /// Still in its TLS handshake.
    pub fn tls_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// Reading a request (head or body) right now.
    pub fn is_reading(&self) -> bool {
        self.rend > self.rstart || !matches!(self.discard, Discard::None)
    }

    /// Output pending.
    pub fn is_writing(&self) -> bool {
        self.wpos < self.wbuf.len()
            || self.file.is_some()
            || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Idle between requests (keep-alive; HTTP/2: no stream open).
    pub fn is_idle(&self) -> bool {
        if let Some(h) = &self.h2 {
            return h.is_idle() && !self.is_writing();
        }
        self.phase == Phase::Active && !self.is_reading() && !self.is_writing()
    }

    /// Handle readiness. Returns false when the connection must be closed.
    pub fn on_ready(&mut self, ctx: &mut HttpCtx) -> bool {
        self.drained = false;
        if self.phase == Phase::Lingering {
            return self.linger_read(ctx);
        }
        if self.h2.is_some() {
            return self.h2_ready(ctx);
        }
        loop {
            match self.flush() {
                Err(()) => {
                    log::debug!("close: write failed");
                    return false;
                }
                Ok(false) => {
                    self.deadline_ms = ctx.now_ms + self.send_timeout_ms;
                    return true;
                }
                Ok(true) => {}
            }
            if self.close_after_write {
                return self.start_close(ctx);
            }
            self.process(ctx);
            if self.h2.is_some() {
                return self.h2_ready(ctx);
            }
            if self.is_writing() || self.close_after_write {
                continue;
            }
            if self.drained || self.proxying || self.delayed_until_ms > 0 || self.sub.is_some() {
                break;
            }
            match self.read() {
                ReadResult::Data(drained) => self.drained = drained,
                ReadResult::WouldBlock => break,
                ReadResult::Eof | ReadResult::Error => {
                    log::debug!(
                        "close: eof/error after {} requests, rstart {} rend {}",
                        self.requests,
                        self.rstart,
                        self.rend
                    );
                    return false;
                }
            }
        }
        self.set_wait_deadline(ctx);
        true
    }

    fn set_wait_deadline(&mut self, ctx: &HttpCtx) {
        self.deadline_ms = if self.delayed_until_ms > 0 {
            self.delayed_until_ms
        } else if !matches!(self.discard, Discard::None) {
            ctx.now_ms + self.body_timeout_ms
        } else if self.rend > self.rstart || self.requests == 0 {
            // A request is being received (or the first one is awaited): the
            // header deadline counts from its first byte (from accept).
            if self.head_deadline_ms == 0 {
                self.head_deadline_ms = ctx.now_ms + self.limits.header_timeout_ms;
            }
            self.head_deadline_ms
        } else if ctx.draining {
            ctx.now_ms + DRAIN_IDLE_MS
        } else {
            ctx.now_ms + self.ka_timeout_ms
        };
    }

    /// Request-body bytes buffered (proxying).
    pub fn body_bytes(&self) -> &[u8] {
        &self.rbuf[self.rstart..self.rend]
    }

    /// The proxy took `n` body bytes.
    pub fn consume(&mut self, n: usize) {
        self.rstart = (self.rstart + n).min(self.rend);
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        }
    }

    /// Read more request-body bytes for the proxy into the buffer (never
    /// growing it past the head limit). Ok(true): got bytes; Ok(false): none
    /// now (would block, or the buffer is full); Err: closed or failed.
    #[allow(clippy::result_unit_err)]
    pub fn read_body(&mut self) -> Result<bool, ()> {
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        } else if self.rstart > 0 {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            self.rend -= self.rstart;
            self.rstart = 0;
        }
        if self.rend == self.rbuf.len() {
            let max = self.limits.head.total_bytes + 1024;
            if self.rbuf.len() >= max {
                return Ok(false);
            }
            let new_len = (self.rbuf.len() * 2).min(max);
            self.rbuf.resize(new_len, 0);
        }
        loop {
            match io_read(&mut self.sock, &mut self.tls, &mut self.rbuf[self.rend..]) {
                Ok(0) => return Err(()),
                Ok(n) => {
                    self.rend += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
    }

    /// The output buffer (proxying appends the response here).
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.wbuf
    }

    /// The current request's response head and the output buffer.
    pub fn sink(&mut self) -> Sink<'_> {
        Sink {
            head: &mut self.req.reply,
            out: &mut self.wbuf,
            status: None,
        }
    }

    /// Output bytes not yet written.
    pub fn out_pending(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Write queued output; Ok(true) when all is written.
    #[allow(clippy::result_unit_err)]
    pub fn flush_out(&mut self) -> Result<bool, ()> {
        self.flush()
    }

    /// The proxy finished the response: resume normal processing.
    pub fn finish_proxy(&mut self, keep_alive: bool, now_ms: u64) {
        self.proxying = false;
        self.want_body = false;
        if !keep_alive {
            self.close_after_write = true;
            self.linger = true;
        }
        self.deadline_ms = now_ms + self.send_timeout_ms;
    }

    /// The subrequest's session finished: its answer goes to the request,
    /// which is dispatched again at the next `on_ready`.
    pub fn finish_subrequest(&mut self) {
        if let Some(sub) = self.sub.take() {
            self.req.auth_sub = Some(sub.result());
        }
    }

    /// `proxy_intercept_errors`: the location's `error_page` answers the
    /// upstream's `code` for `p` instead (a local page, or another proxied
    /// request). False when it has none.
    pub fn proxied_error_page(
        &mut self,
        ctx: &mut HttpCtx,
        p: &mut handler::ProxyReq,
        code: u16,
        keep_alive: bool,
    ) -> bool {
        let info = handler::ConnInfo {
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
        let Some(out) = handler::proxied_error_page(
            ctx,
            &info,
            &mut self.req,
            p,
            code,
            keep_alive,
            &mut self.wbuf,
        ) else {
            return false;
        };
        self.proxying = false;
        self.want_body = false;
        self.deadline_ms = ctx.now_ms + self.send_timeout_ms;
        self.apply(out);
        true
    }

    /// Whether the client connection hit EOF-free idle with no data (used to
    /// notice a client that went away while proxying).
    pub fn send_timeout_ms(&self) -> u64 {
        self.send_timeout_ms
    }

    /// Graceful shutdown began: idle connections go soon, busy ones after
    /// their current response.
    pub fn start_draining(&mut self, now_ms: u64) {
        if self.h2.is_some() {
            // GOAWAY now; open streams finish.
            self.deadline_ms = now_ms;
            return;
        }
        if self.is_idle() {
            self.deadline_ms = self.deadline_ms.min(now_ms + DRAIN_IDLE_MS);
        }
    }

    /// A deadline passed. Returns false when the connection must be closed.
    pub fn on_timeout(&mut self, ctx: &mut HttpCtx) -> bool {
        if self.deadline_ms > ctx.now_ms {
            return true;
        }
        if self.h2.is_some() {
            return self.h2_timeout(ctx);
        }
        if self.phase == Phase::Lingering || self.is_writing() {
            return false;
        }
        if self.delayed_until_ms > 0 {
            // A limit_req delay ended: answer the held request and go on.
            return self.on_ready(ctx);
        }
        if self.rend > self.rstart && matches!(self.discard, Discard::None) {
            // Head never completed (slowloris): tell the client, then close.
            self.wbuf.clear();
            self.wpos = 0;
            let mut sink = Sink {
                head: &mut self.req.reply,
                out: &mut self.wbuf,
                status: None,
            };
            handler::simple_error(ctx, 408, false, &mut sink);
            let _ = self.flush();
        }
        false
    }

    fn read(&mut self) -> ReadResult {
        if self.rend == self.rbuf.len() {
            if self.rstart > 0 {
                self.rbuf.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
            } else {
                let max = self.limits.head.total_bytes + 1024;
                if self.rbuf.len() >= max {
                    // Cannot happen: parse refuses heads above total_bytes.
                    return ReadResult::Error;
                }
                let new_len = (self.rbuf.len() * 2).min(max);
                self.rbuf.resize(new_len, 0);
            }
        }
        let space = self.rbuf.len() - self.rend;
        loop {
            match io_read(&mut self.sock, &mut self.tls, &mut self.rbuf[self.rend..]) {
                Ok(0) => return ReadResult::Eof,
                Ok(n) => {
                    self.rend += n;
                    return ReadResult::Data(n < space);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return ReadResult::WouldBlock,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    if self.tls.as_ref().is_some_and(|t| t.plain_http()) {
                        // nginx's answer, in plain text, then a lingering
                        // close (the request is still unread).
                        self.tls = None;
                        self.rstart = 0;
                        self.rend = 0;
                        self.wbuf.clear();
                        self.wpos = 0;
                        self.wbuf.extend_from_slice(PLAIN_HTTP_ON_TLS);
                        self.close_after_write = true;
                        self.linger = true;
                        return ReadResult::Data(true);
                    }
                    if self.tls.is_some() {
                        log::info!("TLS from {}: {e}", self.peer);
                    }
                    return ReadResult::Error;
                }
            }
        }
    }

    /// Write queued output (and the TLS records it became). Ok(true) when
    /// everything is out.
    fn flush(&mut self) -> Result<bool, ()> {
        if !self.flush_plain()? {
            return Ok(false);
        }
        match &mut self.tls {
            Some(t) => t.flush(&mut self.sock).map_err(|_| ()),
            None => Ok(true),
        }
    }

    fn flush_plain(&mut self) -> Result<bool, ()> {
        loop {
            while self.wpos < self.wbuf.len() {
                match io_write(&mut self.sock, &mut self.tls, &self.wbuf[self.wpos..]) {
                    Ok(0) => return Err(()),
                    Ok(n) => self.wpos += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return Err(()),
                }
            }
            self.wbuf.clear();
            self.wpos = 0;
            if self.wbuf.capacity() > MAX_QUEUED_OUTPUT * 2 {
                self.wbuf.shrink_to(64 * 1024);
            }
            let Some((file, off, rem)) = &mut self.file else {
                return Ok(true);
            };
            if *rem == 0 {
                self.file = None;
                return Ok(true);
            }
            if self.sendfile {
                let chunk = (*rem).min(1 << 20) as usize;
                match crate::sys::sendfile(self.sock.as_raw_fd(), file.as_raw_fd(), off, chunk) {
                    Ok(0) => return Err(()), // file shrank under us
                    Ok(n) => *rem -= n as u64,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return Err(()),
                }
            } else {
                use std::os::unix::fs::FileExt;
                let chunk = (*rem).min(64 * 1024) as usize;
                self.wbuf.resize(chunk, 0);
                match file.read_at(&mut self.wbuf, *off) {
                    Ok(0) | Err(_) => return Err(()),
                    Ok(n) => {
                        self.wbuf.truncate(n);
                        *off += n as u64;
                        *rem -= n as u64;
                    }
                }
            }
        }
    }

    /// Parse and answer as many buffered requests as allowed.
    fn process(&mut self, ctx: &mut HttpCtx) {
        if self.delayed_until_ms > 0 {
            if ctx.now_ms < self.delayed_until_ms {
                return;
            }
            self.delayed_until_ms = 0;
        }
        if self.limits.http2 && self.requests == 0 && self.h2.is_none() && self.wants_h2() {
            self.start_h2(ctx);
            return;
        }
        loop {
            if self.proxying
                || self.sub.is_some()
                || self.close_after_write
                || self.file.is_some()
                || self.wbuf.len() > MAX_QUEUED_OUTPUT
            {
                return;
            }
            if !self.consume_body() {
                return;
            }
            if self.rstart == self.rend {
                self.rstart = 0;
                self.rend = 0;
                if self.requests > 0 {
                    self.head_deadline_ms = 0;
                }
                return;
            }
            if self.head_deadline_ms == 0 {
                self.head_deadline_ms = ctx.now_ms + self.limits.header_timeout_ms;
            }
            let buf = &self.rbuf[self.rstart..self.rend];
            match request::parse(buf, &self.limits.head) {
                Ok(None) => return,
                Ok(Some(head)) => {
                    self.head_deadline_ms = 0;
                    if self.tls_info.is_none() {
                        self.tls_info = self.tls.as_ref().and_then(|t| t.info());
                    }
                    let info = handler::ConnInfo {
                        peer: self.peer,
                        vars: ConnVars {
                            requests: self.requests + 1,
                            ..self.vars
                        },
                        listen_idx: self.listen_idx,
                        requests: self.requests + 1,
                        body_pending: self.rend - self.rstart - head.len,
                        tls: self.tls_info.as_ref(),
                    };
                    let out =
                        handler::dispatch(ctx, &info, &mut self.req, buf, &head, &mut self.wbuf);
                    if let Some(sub) = out.subrequest {
                        // Keep the head; the subrequest's answer brings it back.
                        self.sub_req = Some(sub);
                        self.sub = Some(Box::default());
                        return;
                    }
                    if let Some(until) = out.delay_until_ms {
                        // Keep the head (and the request's state); the
                        // timer brings it back.
                        self.delayed_until_ms = until.max(ctx.now_ms + 1);
                        return;
                    }
                    self.requests += 1;
                    self.rstart += head.len;
                    self.apply(out);
                }
                Err(e) => {
                    let mut sink = Sink {
                        head: &mut self.req.reply,
                        out: &mut self.wbuf,
                        status: None,
                    };
                    handler::head_error(ctx, self.peer, self.listen_idx, buf, e, &mut sink);
                    self.requests += 1;
                    self.rstart = self.rend;
                    self.close_after_write = true;
                    self.linger = true;
                    return;
                }
            }
        }
    }

    /// Whether the connection should switch to HTTP/2: ALPN chose `h2`, or
    /// (plain) the client's bytes are the preface. A partial preface waits.
    fn wants_h2(&mut self) -> bool {
        if let Some(t) = &self.tls {
            return !t.is_handshaking() && t.alpn_is_h2();
        }
        let buf = &self.rbuf[self.rstart..self.rend];
        h2::looks_like_preface(buf)
    }

    fn apply(&mut self, mut out: Outcome) {
        if let Some(req) = out.proxy.take() {
            // The session decides keep-alive and body handling when it finishes.
            self.proxy_req = Some(req);
            self.proxying = true;
            self.ka_timeout_ms = out.keepalive_timeout_ms;
            self.send_timeout_ms = out.send_timeout_ms;
            self.body_timeout_ms = out.body_timeout_ms;
            return;
        }
        self.ka_timeout_ms = out.keepalive_timeout_ms;
        self.send_timeout_ms = out.send_timeout_ms;
        self.body_timeout_ms = out.body_timeout_ms;
        // No sendfile through TLS: the file is read and encrypted.
        self.sendfile = out.sendfile && self.tls.is_none();
        self.max_body_bytes = out.max_body_bytes;
        if out.tcp_nodelay != self.nodelay {
            // Listening sockets set TCP_NODELAY, which accepted ones inherit.
            if self.sock.set_nodelay(out.tcp_nodelay).is_ok() {
                self.nodelay = out.tcp_nodelay;
            }
        }
        if let Some(f) = out.file {
            self.file = Some(f);
        }
        self.discard = match out.discard {
            request::BodyFraming::None => Discard::None,
            request::BodyFraming::Length(n) => Discard::Length(n),
            request::BodyFraming::Chunked => Discard::Chunked(ChunkedDecoder::new()),
        };
        if !out.keep_alive {
            self.close_after_write = true;
            self.linger = out.linger;
        }
    }

    /// Discard request-body bytes in the buffer. Returns true when no body
    /// remains to be read.
    fn consume_body(&mut self) -> bool {
        let avail = self.rend - self.rstart;
        match &mut self.discard {
            Discard::None => true,
            Discard::Length(rem) => {
                let take = (*rem).min(avail as u64) as usize;
                *rem -= take as u64;
                self.rstart += take;
                if *rem == 0 {
                    self.discard = Discard::None;
                    true
                } else {
                    false
                }
            }
            Discard::Chunked(dec) => {
                match dec.feed(&self.rbuf[self.rstart..self.rend], &mut |_| {}) {
                    Ok(_) if self.max_body_bytes > 0 && dec.body_bytes() > self.max_body_bytes => {
                        // Over client_max_body_size after the response went
                        // out: all we can do is stop reading and close.
                        self.rstart = self.rend;
                        self.discard = Discard::None;
                        self.close_after_write = true;
                        self.linger = false;
                        false
                    }
                    Ok((used, done)) => {
                        self.rstart += used;
                        if done {
                            self.discard = Discard::None;
                        }
                        done
                    }
                    Err(_) => {
                        // Broken framing: we cannot find the next request.
                        self.rstart = self.rend;
                        self.discard = Discard::None;
                        self.close_after_write = true;
                        self.linger = true;
                        false
                    }
                }
            }
        }
    }

    /// All output is written and the connection must close.
    fn start_close(&mut self, ctx: &mut HttpCtx) -> bool {
        if let Some(t) = &mut self.tls {
            // close_notify: the client knows the response was complete.
            t.close();
            let _ = t.flush(&mut self.sock);
        }
        if !self.linger {
            return false;
        }
        if crate::sys::shutdown_write(self.sock.as_raw_fd()).is_err() {
            return false;
        }
        self.phase = Phase::Lingering;
        self.linger_until_ms = ctx.now_ms + LINGER_MS * 6;
        self.rstart = 0;
        self.rend = 0;
        self.linger_read(ctx)
    }

    /// Read and drop whatever the client still sends until it closes.
    fn linger_read(&mut self, ctx: &mut HttpCtx) -> bool {
        loop {
            match io_read(&mut self.sock, &mut self.tls, &mut self.rbuf) {
                Ok(0) => return false,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        self.deadline_ms = (ctx.now_ms + LINGER_MS).min(self.linger_until_ms);
        true
    }
}
