//! The request phases for one parsed head, nginx's list, each returning a
//! [`Flow`] (`Next`, `Done(reply)`, `Again(until)`, `Proxy`):
//!
//! 1. `find_config`: server (listen address + Host), location (path), the
//!    request's variables;
//!    then `refuse_phase` (nginx's find-config checks): a path or body
//!    refused outright (400/413), a TLS client certificate missing (400),
//!    a Host other than the SNI name (421);
//! 2. `rewrite_phase`: the server's and the location's `rewrite`, `return`,
//!    `set`, `if`, `break` in config order (a new URI selects a location
//!    again, checked as in 1; an `if` block may become the request's
//!    configuration). `return` answers here, before access and limits, as
//!    in nginx;
//! 3. access: `auth_phase` (allow/deny, auth_basic, auth_request, satisfy,
//!    limit_except; a proxied subrequest makes the request wait), the
//!    waiting room (`waiting_room_phase`), the limits (`limits_phase`);
//! 4. `content_phase`: the proxy (handed to `proxy::Session`, via
//!    the cache), `status;`, a static file (`static_serve`), `try_files`;
//!    an internal redirect (`try_files`' last parameter, an `error_page`)
//!    runs this phase again in the location its URI or name selects;
//! 5. header filter (`header_filter`): the content handler builds the
//!    response head as a value (`proto::reply::ReplyHead`, in the request's
//!    state); `add_header` and the room's cookie are applied to it, then it
//!    is serialized once (`Sink::send`) — local and proxied heads alike;
//! 6. `log_phase` → `end_request`: bytes for `limit_bytes`, the access-log
//!    line (one copy, the proxy's session calls the same), and what the
//!    connection does next.
//!
//! What a request keeps across phases is its [`Request`] (path, room
//! cookie, `limit_bytes` slots, response head), owned by the connection.

use crate::config::{LocationConf, ReturnConf, ServerConf};
use crate::http::chunked::{ChunkedDecoder, ChunkedError};
use crate::http::ctx::HttpCtx;
use crate::http::header_filter::Sink;
use crate::http::limits_phase::{self, LimitFlow, LimitRequest};
use crate::http::req_state::Request;
use crate::http::request::{at, BodyFraming, Head, HeadError, Method};
use crate::http::response as resp;
use crate::http::static_file::{self, Conditions, Decision, Found};
use crate::http::vars::{self, ReqVars, RespVars};
use crate::http::waiting_room_phase::{self, RoomFlow, RoomRequest};
use crate::http::{header_filter, status, uri};
use crate::log::format::AccessRecord;
use crate::proto::reply::Framing;
use std::fs::File;
use std::net::IpAddr;

#[path = "auth_phase.rs"]
mod auth_phase;
#[path = "static_serve.rs"]
mod static_serve;

#[path = "rewrite_phase.rs"]
mod rewrite_phase;
use static_serve::serve_static;

/// What the handler needs to know about the connection.
pub struct ConnInfo<'t> {
    /// Client address.
    pub peer: IpAddr,
    /// The connection's variables (`requests` counts this one).
    pub vars: crate::http::vars::ConnVars,
    /// Listen-table index.
    pub listen_idx: usize,
    /// Requests on this connection, this one included.
    pub requests: u64,
    /// Bytes after the head already in the buffer.
    pub body_pending: usize,
    /// The connection's TLS (`None`: plain HTTP).
    pub tls: Option<&'t crate::tls::TlsInfo>,
}

/// A request the reverse proxy takes over (the head is copied: the
/// connection's buffer moves on to the request body).
#[derive(Clone)]
pub struct ProxyReq {
    /// Server index.
    pub server: usize,
    /// Location index in that server.
    pub location: usize,
    /// The request head, raw.
    pub head_bytes: Vec<u8>,
    /// Its parse (spans into `head_bytes`).
    pub head: Head,
    /// Normalized path.
    pub path: Vec<u8>,
    /// Query string.
    pub query: Option<Vec<u8>>,
    /// Host (header or absolute-form target).
    pub host: Option<Vec<u8>>,
    /// Client address.
    pub peer: IpAddr,
    /// The client connection may stay open after the response.
    pub keep_alive: bool,
    /// Request body bytes already buffered after the head.
    pub body_pending: usize,
    /// `limit_bytes` slots to charge with the response size when it is done.
    pub bytes_slots: Vec<(usize, usize)>,
    /// The waiting room's `Set-Cookie` for the response (empty: none).
    pub set_cookie: Vec<u8>,
    /// The connection's variables.
    pub conn: crate::http::vars::ConnVars,
    /// When the request began, Unix ms.
    pub started_unix_ms: u64,
    /// The connection's TLS.
    pub tls: Option<crate::tls::TlsInfo>,
    /// The regex location's captures (spans of `path`).
    pub captures: Vec<(u32, u32)>,
    /// An `auth_request` subrequest: GET, no body, not logged, its answer
    /// kept for the request that waits.
    pub subrequest: bool,
    /// The `auth_request_set` variables' values.
    pub auth_vars: Vec<Vec<u8>>,
    /// Already answering for an `error_page` (no second one).
    pub in_error_page: bool,
    /// What the rewrite phase set (`set`, captures, the rewritten URI).
    pub script: crate::http::vars::ScriptVars,
}

/// What the connection does after the response is queued.
pub struct Outcome {
    /// Keep the connection for another request.
    pub keep_alive: bool,
    /// When closing, drain what the client still sends first.
    pub linger: bool,
    /// A file body to send after the queued bytes: (file, offset, length).
    pub file: Option<(File, u64, u64)>,
    /// Request body still to read and drop.
    pub discard: BodyFraming,
    /// keepalive_timeout of the location.
    pub keepalive_timeout_ms: u64,
    /// send_timeout of the location.
    pub send_timeout_ms: u64,
    /// client_body_timeout of the location.
    pub body_timeout_ms: u64,
    /// sendfile on/off.
    pub sendfile: bool,
    /// client_max_body_size (0 = unlimited), enforced while discarding.
    pub max_body_bytes: u64,
    /// tcp_nodelay on/off.
    pub tcp_nodelay: bool,
    /// The reverse proxy answers this request.
    pub proxy: Option<Box<ProxyReq>>,
    /// `limit_req` delays the request: nothing was queued; keep the head in
    /// the buffer and dispatch it again (with `skip_limits`) at this
    /// monotonic ms (the request's state keeps what the access phase gave
    /// it). The other fields are then meaningless.
    pub delay_until_ms: Option<u64>,
    /// An `auth_request` subrequest to proxy before this request goes on:
    /// like a delay, the head stays and is dispatched again (with the
    /// subrequest's answer in the request's state).
    pub subrequest: Option<Box<ProxyReq>>,
}

/// A local answer already queued: what the log phase needs of it.
struct Reply {
    status: u16,
    body_bytes: u64,
    file: Option<(File, u64, u64)>,
    close: bool,
}

impl From<limits_phase::LimitReply> for Reply {
    fn from(l: limits_phase::LimitReply) -> Reply {
        Reply {
            status: l.status,
            body_bytes: l.body_bytes,
            file: None,
            close: false,
        }
    }
}

/// Queue a complete error response (nginx-style page), outside any
/// location (no header filter).
pub fn simple_error(ctx: &HttpCtx, code: u16, keep_alive: bool, sink: &mut Sink<'_>) {
    sink.start(
        code,
        Framing::Length(resp::error_page_len(code)),
        keep_alive,
    )
    .push(b"Content-Type", b"text/html");
    sink.send_unfiltered(ctx);
    resp::error_page(sink.out, code);
}

/// Queue an error page with `extra` headers; returns the body bytes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn error_reply(
    ctx: &HttpCtx,
    loc: &LocationConf,
    vars: &ReqVars<'_>,
    code: u16,
    keep_alive: bool,
    head_only: bool,
    extra: &[(&[u8], &[u8])],
    sink: &mut Sink<'_>,
) -> u64 {
    let len = resp::error_page_len(code);
    let h = sink.start(code, Framing::Length(len), keep_alive);
    h.push(b"Content-Type", b"text/html");
    for (n, v) in extra {
        h.push(n, v);
    }
    sink.send(ctx, loc, vars);
    if head_only {
        0
    } else {
        resp::error_page(sink.out, code);
        len
    }
}

/// A head that could not be parsed: error response, log line, close.
pub fn head_error(
    ctx: &mut HttpCtx,
    peer: IpAddr,
    listen_idx: usize,
    buf: &[u8],
    e: HeadError,
    sink: &mut Sink<'_>,
) {
    let code = e.status();
    simple_error(ctx, code, false, sink);
    let line_end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len())
        .min(2048);
    let cfg = ctx.site.cfg.clone();
    let si = ctx.site.listens.get(listen_idx).map_or(0, |l| l.default);
    let Some(server) = cfg.http.servers.get(si) else {
        return;
    };
    let li = ctx.site.find_location(si, b"/", &mut Vec::new());
    let rec = AccessRecord {
        remote_addr: peer,
        time_unix: ctx.unix_secs,
        method: b"",
        target: b"",
        version_minor: 9,
        request_line_raw: Some(&buf[..line_end]),
        status: code,
        body_bytes_sent: resp::error_page_len(code),
        referer: None,
        user_agent: None,
        host: None,
        request_time_us: 0,
    };
    for &i in &server.locations[li].access_logs {
        ctx.logs.record(i, &rec, None);
    }
    ctx.counters.requests += 1;
}

/// What the log phase records of a finished request.
pub struct Finished<'a> {
    /// The location's access logs.
    pub logs: &'a [usize],
    /// Client address.
    pub peer: IpAddr,
    /// The request head, raw.
    pub head_bytes: &'a [u8],
    /// Its parse.
    pub head: &'a Head,
    /// Host header or absolute-form host.
    pub host: Option<&'a [u8]>,
    /// Status sent.
    pub status: u16,
    /// Body bytes sent (`$body_bytes_sent`).
    pub body_bytes: u64,
    /// Head and body bytes sent (charged to `limit_bytes`).
    pub sent_bytes: u64,
    /// From the first byte to the last, in microseconds.
    pub request_time_us: u64,
    /// The request's variables, for `log_format`s.
    pub vars: &'a ReqVars<'a>,
    /// The response's (status, sizes, upstream, cache), for `log_format`s.
    pub resp: RespVars<'a>,
}

/// The log phase's work, one copy for local and proxied requests: charge
/// what the client got to the request's `limit_bytes` keys (`slots`, which
/// the limits phase found) and write the access-log line.
pub fn end_request(ctx: &mut HttpCtx, f: &Finished<'_>, slots: &mut Vec<(usize, usize)>) {
    limits_phase::account_bytes(ctx, slots, f.sent_bytes);
    let (buf, head) = (f.head_bytes, f.head);
    let rec = AccessRecord {
        remote_addr: f.peer,
        time_unix: ctx.unix_secs,
        method: at(buf, head.method_span),
        target: at(buf, head.target),
        version_minor: if head.h2 {
            AccessRecord::VERSION_H2
        } else {
            head.version_minor
        },
        request_line_raw: None,
        status: f.status,
        body_bytes_sent: f.body_bytes,
        referer: head.referer.map(|s| at(buf, s)),
        user_agent: head.user_agent.map(|s| at(buf, s)),
        host: f.host,
        request_time_us: f.request_time_us,
    };
    let mut vars = ReqVars { ..*f.vars };
    vars.now_unix_ms = ctx.now_unix_ms();
    for &i in f.logs {
        ctx.logs.record(i, &rec, Some((&vars, &f.resp)));
    }
    ctx.counters.requests += 1;
}

/// Answer one request whose head is complete; `rq` is its state (the
/// connection's, reused).
pub fn dispatch(
    ctx: &mut HttpCtx,
    info: &ConnInfo<'_>,
    rq: &mut Request,
    buf: &[u8],
    head: &Head,
    out: &mut Vec<u8>,
) -> Outcome {
    rq.begin();
    // The real client address (`set_real_ip_from`), before anything uses it.
    let real_info;
    let info = match crate::http::realip::resolve(ctx, info, buf, head) {
        Some(i) => {
            real_info = i;
            &real_info
        }
        None => info,
    };
    let Request {
        path,
        captures,
        cookie,
        bytes_slots,
        reply,
        held,
        auth_sub,
        script,
    } = rq;
    let cfg = ctx.site.cfg.clone();
    let mut sink = Sink {
        head: reply,
        out,
        status: None,
    };
    let mut req = find_config(ctx, &cfg, info, *held, buf, head, path, captures);
    let out_start = sink.out.len();
    // nginx's find-config checks (a bad path, a body too large for the
    // location) come before its rewrite phase, and again in the location a
    // rewrite selects.
    let mut flow = refuse_phase(ctx, &req, &mut sink);
    if matches!(flow, Flow::Next) && rewrite_phase::configured(&req) {
        let at = req.at;
        script.is_set.clear();
        (req, flow) = rewrite_phase::run(ctx, req, script, true, &mut sink);
        if matches!(flow, Flow::Next) && req.at != at {
            flow = refuse_phase(ctx, &req, &mut sink);
        }
    }
    let mut vals = Vec::new();
    if let Flow::Next = flow {
        flow = auth_phase::run(ctx, &req, auth_sub.take(), &mut vals, &mut sink);
    }
    // `auth_request_set` values, for the phases after access.
    req.vars.auth_vars = &vals;
    if let Flow::Next = flow {
        if let RoomFlow::Done(l) = room_phase(ctx, &req, cookie, &mut sink) {
            flow = Flow::Done(Reply::from(l));
        }
    }
    req.vars.set_cookie = cookie;
    if let Flow::Next = flow {
        flow = limits_step(ctx, &req, bytes_slots, &mut sink);
    }
    if let Flow::Next = flow {
        flow = content_phase(ctx, &req, &mut sink);
    }
    let reply = match flow {
        Flow::Again(until_ms) => {
            // Held: the request's state (its room cookie) waits with it.
            *held = true;
            let base = location_outcome(req.loc, req.keep_alive, true, req.discard);
            return Outcome {
                delay_until_ms: Some(until_ms),
                ..base
            };
        }
        Flow::Proxy(mut p) => {
            *held = false;
            p.bytes_slots = std::mem::take(bytes_slots);
            let loc = &cfg.http.servers[p.server].locations[p.location];
            let keep_alive = p.keep_alive;
            return Outcome {
                proxy: Some(p),
                ..location_outcome(loc, keep_alive, true, BodyFraming::None)
            };
        }
        Flow::Subrequest(p) => {
            // The head stays; the subrequest's answer brings it back.
            return Outcome {
                subrequest: Some(p),
                ..location_outcome(req.loc, req.keep_alive, true, req.discard)
            };
        }
        Flow::Done(reply) => reply,
        // Content always answers; a phase that did not is a 500.
        Flow::Next => {
            let n = error_reply(
                ctx,
                req.loc,
                &req.vars,
                500,
                false,
                req.head_only,
                &[],
                &mut sink,
            );
            Reply {
                status: 500,
                body_bytes: n,
                file: None,
                close: true,
            }
        }
    };
    *held = false;
    let queued = sink.out.len() - out_start;
    log_phase(ctx, &req, reply, queued, bytes_slots)
}

/// Internal redirects one request may take (`try_files`, `error_page`),
/// nginx's limit.
const MAX_REDIRECTS: u8 = 10;

/// One request while its phases run: where it goes and what it is.
#[derive(Clone, Copy)]
struct Req<'a> {
    info: &'a ConnInfo<'a>,
    /// Dispatched again after a `limit_req` delay.
    held: bool,
    server: &'a ServerConf,
    loc: &'a LocationConf,
    /// (server, location) indices.
    at: (usize, usize),
    vars: ReqVars<'a>,
    /// The target's path as sent (for URLs the waiting room writes).
    raw_path: &'a [u8],
    path_ok: bool,
    head_only: bool,
    /// Keep-alive as the client and the location allow it.
    requested_keep_alive: bool,
    /// Keep-alive for a local answer (not when the body is left unread).
    keep_alive: bool,
    discard: BodyFraming,
    /// Internal redirects taken so far.
    redirects: u8,
    /// Already answering for an `error_page` (nginx's
    /// `recursive_error_pages off`: no second one).
    in_error_page: bool,
}

/// What a phase decided.
enum Flow {
    /// Go on to the next phase.
    Next,
    /// Answered (the reply is queued).
    Done(Reply),
    /// `limit_req` holds the request until this monotonic ms.
    Again(u64),
    /// The reverse proxy takes over (the request as the content phase
    /// found it, perhaps after internal redirects).
    Proxy(Box<ProxyReq>),
    /// An `auth_request` subrequest must be proxied first; the request
    /// waits for its answer.
    Subrequest(Box<ProxyReq>),
}

/// Phase 1: the server (listen address + Host) and the location (path),
/// and the request's variables.
#[allow(clippy::too_many_arguments)]
fn find_config<'a>(
    ctx: &mut HttpCtx,
    cfg: &'a crate::config::Config,
    info: &'a ConnInfo<'a>,
    held: bool,
    buf: &'a [u8],
    head: &'a Head,
    path_buf: &'a mut Vec<u8>,
    captures: &'a mut Vec<(u32, u32)>,
) -> Req<'a> {
    let target = at(buf, head.target);
    let parsed = uri::split_target(target);
    let (host, path_ok, query, raw_path) = match &parsed {
        Ok(t) => {
            let ok = uri::normalize_path(t.path, path_buf).is_ok();
            (
                head.host.map(|h| at(buf, h)).or(t.host),
                ok,
                t.query,
                t.path,
            )
        }
        Err(_) => (head.host.map(|h| at(buf, h)), false, None, &b"/"[..]),
    };
    if !path_ok {
        path_buf.clear();
        path_buf.push(b'/');
    }
    let path: &[u8] = path_buf;
    let si = ctx.site.find_server(info.listen_idx, host);
    let li = ctx.site.find_location(si, path, captures);
    let captures: &[(u32, u32)] = captures;
    let server = &cfg.http.servers[si];
    let loc = &server.locations[li];
    let now_unix_ms = ctx.now_unix_ms();
    let requested_keep_alive = head.keep_alive
        && !ctx.draining
        && loc.keepalive_timeout_ms > 0
        && info.requests < loc.keepalive_requests;
    let unread_body =
        head.expect_continue && head.body != BodyFraming::None && info.body_pending == 0;
    Req {
        info,
        held,
        server,
        loc,
        at: (si, li),
        vars: ReqVars {
            head_bytes: buf,
            head,
            target,
            path,
            query,
            host,
            conn: info.vars,
            server_name: server.server_names.first().map_or("", String::as_str),
            proxy_host: "",
            started_unix_ms: now_unix_ms,
            now_unix_ms,
            set_cookie: b"",
            tls: info.tls,
            captures,
            maps: &cfg.http.maps,
            auth_vars: &[],
            script: &vars::NO_SCRIPT,
            loc: Some(loc),
        },
        raw_path,
        path_ok,
        head_only: head.method == Method::Head,
        requested_keep_alive,
        // We answer without reading the body: close after the response.
        keep_alive: requested_keep_alive && !unread_body,
        discard: if unread_body {
            BodyFraming::None
        } else {
            head.body
        },
        redirects: 0,
        in_error_page: false,
    }
}

/// Whether a TLS request names (by Host) another server than its SNI did,
/// one that checks client certificates: nginx's 421, so a handshake made
/// for a server without `ssl_verify_client` cannot reach one with it.
fn misdirected(r: &Req<'_>) -> bool {
    let (Some(t), Some(host)) = (r.info.tls, r.vars.host) else {
        return false;
    };
    let Some(sni) = t.server_name.as_deref() else {
        return false;
    };
    r.server.ssl.verify_client != crate::tls::VerifyClient::Off
        && !super::site::host_without_port(host).eq_ignore_ascii_case(sni.as_bytes())
}

/// Phase 3a (access): a path or body refused outright (400, 413), a TLS
/// client certificate the server requires missing or invalid (400), a Host
/// other than the SNI name for a server that checks them (421); then
/// `auth_phase` (allow/deny, auth_basic, auth_request, satisfy).
fn refuse_phase(ctx: &mut HttpCtx, r: &Req<'_>, out: &mut Sink<'_>) -> Flow {
    let (loc, head, buf) = (r.loc, r.vars.head, r.vars.head_bytes);
    let misdirected = misdirected(r);
    if misdirected {
        log::info!(
            "client attempted to request the server name different from the one that was negotiated, client: {}",
            r.info.peer
        );
    }
    let cert_refused = r
        .info
        .tls
        .and_then(|t| t.refuses(r.server.ssl.verify_client));
    if let Some(why) = cert_refused {
        log::info!(
            "{why} while reading client request headers, client: {}",
            r.info.peer
        );
    }
    let refused = if misdirected {
        Some(421)
    } else if cert_refused.is_some() {
        Some(400)
    } else if r.path_ok {
        refused_body(head, &buf[head.len..], loc.client_max_body_size_bytes)
    } else {
        Some(400)
    };
    if let Some(code) = refused {
        let n = error_reply(ctx, loc, &r.vars, code, false, r.head_only, &[], out);
        return Flow::Done(Reply {
            status: code,
            body_bytes: n,
            file: None,
            close: true,
        });
    }
    Flow::Next
}

/// Phase 3b (access): the waiting room (skipped when a `limit_req` delay
/// dispatches again).
fn room_phase(
    ctx: &mut HttpCtx,
    r: &Req<'_>,
    cookie: &mut Vec<u8>,
    out: &mut Sink<'_>,
) -> RoomFlow {
    let (loc, head, buf) = (r.loc, r.vars.head, r.vars.head_bytes);
    match loc.waiting_room.as_ref().filter(|_| !r.held) {
        Some(lr) => {
            let req = RoomRequest {
                vars: &r.vars,
                peer: r.info.peer,
                head_bytes: buf,
                head,
                raw_path: r.raw_path,
                path: r.vars.path,
                query: r.vars.query,
                keep_alive: r.keep_alive,
                head_only: r.head_only,
            };
            waiting_room_phase::run(ctx, loc, lr, &req, cookie, out)
        }
        None => RoomFlow::Next,
    }
}

/// Phase 3c (access): the traffic limits.
fn limits_step(
    ctx: &mut HttpCtx,
    r: &Req<'_>,
    slots: &mut Vec<(usize, usize)>,
    out: &mut Sink<'_>,
) -> Flow {
    let (loc, head, buf) = (r.loc, r.vars.head, r.vars.head_bytes);
    if !loc.limits.is_active() {
        return Flow::Next;
    }
    let req = LimitRequest {
        vars: &r.vars,
        peer: r.info.peer,
        buf,
        head,
        host: r.vars.host,
        query: r.vars.query,
        keep_alive: r.keep_alive,
        head_only: r.head_only,
    };
    match limits_phase::run(ctx, loc, &req, r.held, slots, out) {
        LimitFlow::Next => Flow::Next,
        LimitFlow::Delay(until_ms) => Flow::Again(until_ms),
        LimitFlow::Done(l) => Flow::Done(Reply::from(l)),
    }
}

/// Phase 4: the content handler: the proxy (via the cache), `status;`, or a static file. Each writes its head through the header
/// filter (phase 5, `header_filter`).
fn content_phase(ctx: &mut HttpCtx, r: &Req<'_>, out: &mut Sink<'_>) -> Flow {
    let (loc, head) = (r.loc, r.vars.head);
    if loc.proxy.pass.is_some() {
        return Flow::Proxy(Box::new(proxy_req(r)));
    }
    if !loc.status {
        if let Some(tf) = &loc.try_files {
            return try_files(ctx, r, tf, out);
        }
        let mark = out.out.len();
        let reply = serve_static(ctx, loc, &r.vars, head, r.keep_alive, r.vars.query, out);
        return after_content(ctx, r, reply, mark, out);
    }
    let json = head.accept.is_some_and(|a| {
        at(r.vars.head_bytes, a)
            .windows(16)
            .any(|w| w.eq_ignore_ascii_case(b"application/json"))
    });
    let (ct, body) = status::render(&ctx.stats, &ctx.limits.zones, ctx.now_unix_ms(), json);
    let h = out.start(200, Framing::Length(body.len() as u64), r.keep_alive);
    h.push(b"Content-Type", ct);
    h.push(b"Cache-Control", b"no-store");
    out.send(ctx, loc, &r.vars);
    if !r.head_only {
        out.out.extend_from_slice(&body);
    }
    Flow::Done(Reply {
        status: 200,
        body_bytes: if r.head_only { 0 } else { body.len() as u64 },
        file: None,
        close: false,
    })
}

/// `try_files`: the first file (or `dir/`) that exists under the
/// location's root or alias is served (as that URI, in this location); else
/// the last parameter: `=CODE`, a URI or a named location.
fn try_files(
    ctx: &mut HttpCtx,
    r: &Req<'_>,
    tf: &crate::config::TryFiles,
    out: &mut Sink<'_>,
) -> Flow {
    let (mut candidate, mut norm, mut fs) = (Vec::new(), Vec::new(), Vec::new());
    for f in &tf.files {
        candidate.clear();
        vars::eval(f, &r.vars, &RespVars::default(), &mut candidate);
        if uri::normalize_path(&candidate, &mut norm).is_err() {
            continue;
        }
        let want_dir = candidate.ends_with(b"/");
        if want_dir && !norm.ends_with(b"/") {
            norm.push(b'/');
        }
        let mut v = r.vars;
        v.path = &norm;
        static_serve::fs_path_for(r.loc, &v, &mut fs);
        let found = match ctx.files.lookup(&fs, ctx.now_ms) {
            static_file::Found::Info(i) => i.is_dir == want_dir,
            _ => false,
        };
        if found {
            let mut next = *r;
            next.vars = v;
            let mark = out.out.len();
            let reply = serve_static(
                ctx,
                r.loc,
                &next.vars,
                r.vars.head,
                r.keep_alive,
                r.vars.query,
                out,
            );
            return after_content(ctx, &next, reply, mark, out);
        }
    }
    match &tf.last {
        crate::config::TryLast::Code(c) => error_page(ctx, r, *c, out),
        crate::config::TryLast::Redirect(t) => redirect(ctx, r, t, out),
    }
}

/// The content's answer, or the `error_page` that takes its status over
/// (the content's bytes are taken back first).
fn after_content(
    ctx: &mut HttpCtx,
    r: &Req<'_>,
    reply: Reply,
    mark: usize,
    out: &mut Sink<'_>,
) -> Flow {
    let page = r
        .loc
        .error_pages
        .iter()
        .find(|p| p.codes.contains(&reply.status));
    match page {
        Some(p) if reply.file.is_none() && !r.in_error_page && !reply.close => {
            out.out.truncate(mark);
            take_error_page(ctx, r, p, reply.status, out)
        }
        _ => Flow::Done(reply),
    }
}

/// Answer `code`: its `error_page` if the location has one, else the
/// standard page.
fn error_page(ctx: &mut HttpCtx, r: &Req<'_>, code: u16, out: &mut Sink<'_>) -> Flow {
    let mark = out.out.len();
    let n = error_reply(
        ctx,
        r.loc,
        &r.vars,
        code,
        r.keep_alive,
        r.head_only,
        &[],
        out,
    );
    let reply = Reply {
        status: code,
        body_bytes: n,
        file: None,
        close: false,
    };
    after_content(ctx, r, reply, mark, out)
}

/// The `error_page` `p` for `code`: the target answers, with `code` (or
/// the page's `=CODE`, or with `=` its own status).
fn take_error_page(
    ctx: &mut HttpCtx,
    r: &Req<'_>,
    p: &crate::config::ErrorPage,
    code: u16,
    out: &mut Sink<'_>,
) -> Flow {
    let status = match p.status {
        None => Some(code),
        Some(s) => s,
    };
    let mut next = *r;
    next.in_error_page = true;
    let before = out.status;
    out.status = status;
    let flow = redirect(ctx, &next, &p.target, out);
    out.status = before;
    match flow {
        Flow::Done(mut reply) => {
            if let Some(s) = status {
                reply.status = s;
            }
            Flow::Done(reply)
        }
        other => other,
    }
}

/// An internal redirect to `target`: the content phase again, in the
/// location the new URI (or the name) selects.
fn redirect(
    ctx: &mut HttpCtx,
    r: &Req<'_>,
    target: &crate::config::RedirectTarget,
    out: &mut Sink<'_>,
) -> Flow {
    if r.redirects >= MAX_REDIRECTS {
        log::error!(
            "rewrite or internal redirection cycle while internally redirecting, client: {}",
            r.info.peer
        );
        let n = error_reply(ctx, r.loc, &r.vars, 500, false, r.head_only, &[], out);
        return Flow::Done(Reply {
            status: 500,
            body_bytes: n,
            file: None,
            close: true,
        });
    }
    let si = r.at.0;
    match target {
        crate::config::RedirectTarget::Named(name) => {
            let Some(li) = ctx.site.find_named(si, name) else {
                log::error!(
                    "could not find named location \"{name}\", client: {}",
                    r.info.peer
                );
                return error_page(ctx, r, 500, out);
            };
            let mut next = *r;
            next.loc = &r.server.locations[li];
            next.at = (si, li);
            next.redirects += 1;
            let mut script = r.vars.script.clone();
            rewrite_then_content(ctx, next, &mut script, false, out)
        }
        crate::config::RedirectTarget::Uri(t) => {
            let mut target_uri = Vec::new();
            vars::eval(t, &r.vars, &RespVars::default(), &mut target_uri);
            let (p, q) = match target_uri.iter().position(|&b| b == b'?') {
                Some(i) => (&target_uri[..i], Some(&target_uri[i + 1..])),
                None => (&target_uri[..], None),
            };
            let mut path = Vec::new();
            if uri::normalize_path(p, &mut path).is_err() {
                return error_page(ctx, r, 400, out);
            }
            let mut caps = Vec::new();
            let li = ctx.site.find_location(si, &path, &mut caps);
            let mut next = *r;
            next.loc = &r.server.locations[li];
            next.at = (si, li);
            next.redirects += 1;
            next.vars.path = &path;
            next.vars.captures = &caps;
            if q.is_some() {
                next.vars.query = q;
            }
            let mut script = r.vars.script.clone();
            rewrite_then_content(ctx, next, &mut script, true, out)
        }
    }
}

/// After an internal redirect: the rewrite phase of the new location (and
/// of the server, for a URI), then its content.
fn rewrite_then_content<'a>(
    ctx: &mut HttpCtx,
    r: Req<'a>,
    script: &'a mut vars::ScriptVars,
    server_ops: bool,
    out: &mut Sink<'_>,
) -> Flow {
    let uses = (server_ops && !r.server.rewrite.ops.is_empty()) || !r.loc.rewrite.ops.is_empty();
    if !uses {
        return content_phase(ctx, &r, out);
    }
    match rewrite_phase::run(ctx, r, script, server_ops, out) {
        (next, Flow::Next) => content_phase(ctx, &next, out),
        (_, flow) => flow,
    }
}

/// The request the reverse proxy takes over: its head is copied (the
/// connection's buffer moves on to the body), with what the phases left
/// for it (the `limit_bytes` slots are added by the dispatcher).
fn proxy_req(r: &Req<'_>) -> ProxyReq {
    let v = &r.vars;
    ProxyReq {
        server: r.at.0,
        location: r.at.1,
        head_bytes: v.head_bytes[..v.head.len].to_vec(),
        head: v.head.clone(),
        path: v.path.to_vec(),
        query: v.query.map(<[u8]>::to_vec),
        host: v.host.map(<[u8]>::to_vec),
        peer: r.info.peer,
        keep_alive: r.requested_keep_alive,
        body_pending: r.info.body_pending,
        bytes_slots: Vec::new(),
        set_cookie: v.set_cookie.to_vec(),
        conn: r.info.vars,
        started_unix_ms: v.started_unix_ms,
        tls: r.info.tls.cloned(),
        captures: v.captures.to_vec(),
        subrequest: false,
        auth_vars: v.auth_vars.to_vec(),
        in_error_page: r.in_error_page,
        script: if std::ptr::eq(v.script, &vars::NO_SCRIPT) {
            vars::ScriptVars::new()
        } else {
            v.script.clone()
        },
    }
}

/// `proxy_intercept_errors`: the upstream answered `p` with `code`, which
/// the location's `error_page` takes over (an internal redirect, as for a
/// local answer; the request body, already sent, is not sent again).
/// `None` when it has no page for `code`.
pub fn proxied_error_page(
    ctx: &mut HttpCtx,
    info: &ConnInfo<'_>,
    rq: &mut Request,
    p: &mut ProxyReq,
    code: u16,
    keep_alive: bool,
    out: &mut Vec<u8>,
) -> Option<Outcome> {
    let cfg = ctx.site.cfg.clone();
    let server = cfg.http.servers.get(p.server)?;
    let loc = server.locations.get(p.location)?;
    let page = loc.error_pages.iter().find(|e| e.codes.contains(&code))?;
    if p.in_error_page {
        return None;
    }
    let mut head = p.head.clone();
    head.body = BodyFraming::None;
    let now_unix_ms = ctx.now_unix_ms();
    let req = Req {
        info,
        held: false,
        server,
        loc,
        at: (p.server, p.location),
        vars: ReqVars {
            head_bytes: &p.head_bytes,
            head: &head,
            target: at(&p.head_bytes, head.target),
            path: &p.path,
            query: p.query.as_deref(),
            host: p.host.as_deref(),
            conn: p.conn,
            server_name: server.server_names.first().map_or("", String::as_str),
            proxy_host: "",
            started_unix_ms: p.started_unix_ms,
            now_unix_ms,
            set_cookie: &p.set_cookie,
            tls: info.tls,
            captures: &p.captures,
            maps: &cfg.http.maps,
            auth_vars: &p.auth_vars,
            script: &p.script,
            loc: Some(loc),
        },
        raw_path: &p.path,
        path_ok: true,
        head_only: head.method == Method::Head,
        requested_keep_alive: keep_alive,
        keep_alive,
        discard: BodyFraming::None,
        redirects: 0,
        in_error_page: false,
    };
    let mut sink = Sink {
        head: &mut rq.reply,
        out,
        status: None,
    };
    let start = sink.out.len();
    let mut slots = std::mem::take(&mut p.bytes_slots);
    match take_error_page(ctx, &req, page, code, &mut sink) {
        Flow::Proxy(mut next) => {
            next.bytes_slots = slots;
            Some(Outcome {
                proxy: Some(next),
                ..location_outcome(loc, keep_alive, true, BodyFraming::None)
            })
        }
        Flow::Done(reply) => {
            let queued = sink.out.len() - start;
            Some(log_phase(ctx, &req, reply, queued, &mut slots))
        }
        // Internal redirects run content only: no hold, no subrequest.
        Flow::Next | Flow::Again(_) | Flow::Subrequest(_) => None,
    }
}

/// Phase 6: charge the bytes sent to `limit_bytes`, write the access-log
/// line, and say what the connection does next.
fn log_phase(
    ctx: &mut HttpCtx,
    r: &Req<'_>,
    reply: Reply,
    queued_bytes: usize,
    slots: &mut Vec<(usize, usize)>,
) -> Outcome {
    let keep_alive = r.keep_alive && !reply.close;
    let linger = reply.status != 444;
    let discard = if reply.close {
        BodyFraming::None
    } else {
        r.discard
    };
    let v = &r.vars;
    let done = Finished {
        logs: &r.loc.access_logs,
        peer: r.info.peer,
        head_bytes: v.head_bytes,
        head: v.head,
        host: v.host,
        status: reply.status,
        body_bytes: reply.body_bytes,
        sent_bytes: queued_bytes as u64 + reply.file.as_ref().map_or(0, |f| f.2),
        request_time_us: 0,
        vars: v,
        resp: RespVars {
            status: reply.status,
            body_bytes: reply.body_bytes,
            bytes: queued_bytes as u64 + reply.file.as_ref().map_or(0, |f| f.2),
            ..RespVars::default()
        },
    };
    end_request(ctx, &done, slots);
    Outcome {
        file: reply.file,
        ..location_outcome(r.loc, keep_alive, linger, discard)
    }
}

/// The status for a request body that the head and the bytes already read
/// refuse: 413 over `client_max_body_size` (0 = no limit), counting the
/// length or a chunk's declared size; 400 for broken chunked framing.
fn refused_body(head: &Head, after_head: &[u8], limit_bytes: u64) -> Option<u16> {
    match head.body {
        BodyFraming::Length(n) if limit_bytes > 0 && n > limit_bytes => Some(413),
        BodyFraming::Chunked => ChunkedDecoder::with_limit(limit_bytes)
            .feed(after_head, &mut |_| {})
            .err()
            .map(ChunkedError::status),
        _ => None,
    }
}

/// An outcome with `loc`'s connection settings and no file.
fn location_outcome(
    loc: &LocationConf,
    keep_alive: bool,
    linger: bool,
    discard: BodyFraming,
) -> Outcome {
    Outcome {
        keep_alive,
        linger,
        file: None,
        discard,
        keepalive_timeout_ms: loc.keepalive_timeout_ms,
        send_timeout_ms: loc.send_timeout_ms,
        body_timeout_ms: loc.client_body_timeout_ms,
        sendfile: loc.sendfile,
        max_body_bytes: loc.client_max_body_size_bytes,
        tcp_nodelay: loc.tcp_nodelay,
        proxy: None,
        delay_until_ms: None,
        subrequest: None,
    }
}

fn do_return(
    ctx: &HttpCtx,
    loc: &LocationConf,
    vars: &ReqVars<'_>,
    r: &ReturnConf,
    head_only: bool,
    keep_alive: bool,
    out: &mut Sink<'_>,
) -> Reply {
    if r.code == 444 {
        return Reply {
            status: 444,
            body_bytes: 0,
            file: None,
            close: true,
        };
    }
    let mut text = Vec::new();
    if let Some(t) = &r.text {
        let resp = RespVars {
            status: r.code,
            ..RespVars::default()
        };
        vars::eval(t, vars, &resp, &mut text);
    }
    if resp::is_redirect(r.code) || (r.text.is_none() && r.code >= 400) {
        // The URL goes into a header: a decoded CR/LF must not split it.
        uri::escape_controls(&mut text, 0);
        let loc_hdr: Vec<(&[u8], &[u8])> = if resp::is_redirect(r.code) && r.text.is_some() {
            vec![(b"Location", &text[..])]
        } else {
            Vec::new()
        };
        let n = error_reply(ctx, loc, vars, r.code, keep_alive, head_only, &loc_hdr, out);
        return Reply {
            status: r.code,
            body_bytes: n,
            file: None,
            close: false,
        };
    }
    let bodiless = resp::bodiless(r.code);
    let framing = if bodiless {
        Framing::None
    } else {
        Framing::Length(text.len() as u64)
    };
    let h = out.start(r.code, framing, keep_alive);
    if r.text.is_some() {
        h.push(b"Content-Type", b"text/plain");
    }
    out.send(ctx, loc, vars);
    let sent = if head_only || bodiless { 0 } else { text.len() };
    out.out.extend_from_slice(&text[..sent]);
    Reply {
        status: r.code,
        body_bytes: sent as u64,
        file: None,
        close: false,
    }
}
