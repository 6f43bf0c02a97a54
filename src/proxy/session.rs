//! One proxied request: connect (or reuse an idle connection), stream the
//! request head and body upstream, read the response head, stream the body
//! to the client with backpressure, then return the upstream connection to
//! its pool or close it. Retries the next server on errors and timeouts
//! while that is still safe (nothing sent to the client, and an idempotent
//! request or no body sent). 502 for a refused/failed/malformed upstream,
//! 504 for a timeout.

use crate::cache::freshness::OriginFailure;
use crate::cache::lookup::{self as cached, LookupResult};
use crate::cache::{CacheStatus, EntryMeta};
use crate::config::LocationConf;
use crate::config::PeerAddr;
use crate::http::chunked::{self, ChunkedDecoder};
use crate::http::conn::Conn;
use crate::http::ctx::HttpCtx;
use crate::http::handler::{self, ProxyReq};
use crate::http::header_filter::Sink;
use crate::http::request::{BodyFraming, Method};
use crate::proto::reply::ReplyHead;
use crate::proxy::request::{self as upreq, ReqCtx};
use crate::proxy::response::{self as upresp, ClientFraming, ClientHeadParams, UpFraming, UpHead};
use crate::proxy::upstream::{Active, Pick, Pools, TlsKey, UpConn, UpSock};
use mio::{Interest, Registry, Token};
use rustls::pki_types::ServerName;
use std::io::ErrorKind;
use std::sync::Arc;

/// Client output above which upstream reads pause (backpressure).
const HIGH_WATER: usize = 256 * 1024;
/// Request-body bytes buffered for the upstream at most.
const SEND_BUF: usize = 64 * 1024;
/// Read size from the upstream.
const READ_CHUNK: usize = 32 * 1024;
/// Why an attempt at an upstream failed (Pingora-style: the kind decides
/// the client's status and whether another server may be tried).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// Connecting, sending or reading failed, or the upstream closed early.
    Connection,
    /// No answer within the timeout.
    Timeout,
    /// The upstream's response head was malformed or ambiguous.
    InvalidHeader,
    /// The response broke after the client got its head: nothing can be
    /// retried, the client connection is cut.
    Broken,
    /// The upstream answered a status `proxy_next_upstream` lists.
    Status(u16),
}

impl ProxyError {
    /// The status the client gets when no other server answers.
    pub fn client_status(self) -> u16 {
        match self {
            ProxyError::Timeout => 504,
            _ => 502,
        }
    }

    /// Whether another server may be tried at all (`proxy_next_upstream`
    /// and the request's idempotence decide the rest).
    pub fn retryable(self) -> bool {
        self != ProxyError::Broken
    }

    /// For logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyError::Connection => "connection",
            ProxyError::Timeout => "timeout",
            ProxyError::InvalidHeader => "invalid header",
            ProxyError::Broken => "broken response",
            ProxyError::Status(_) => "status",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// Reading a chunked request body whole before choosing an upstream
    /// (it goes with Content-Length to an HTTP/1.0 upstream).
    ReadBody,
    /// Another request holds the key's fill lock: poll the cache.
    WaitLock,
    /// An entry file is being read by the I/O pool: look again when done.
    WaitIo,
    Connecting,
    Active,
    /// The upstream switched protocols: bytes pass both ways as they are.
    Tunnel,
    Done,
    /// `proxy_intercept_errors`: an `error_page` answered (and logged).
    Intercepted,
}

/// How often a request waiting on a fill lock looks at the cache again.
const LOCK_POLL_MS: u64 = 25;

/// Request-body bytes still to take from the client. A chunked body is
/// never copied: it is decoded here and framed again by us.
enum ReqBody {
    None,
    /// Bytes left of a Content-Length body.
    Length(u64),
    /// A chunked body streamed upstream re-chunked.
    Chunked(ChunkedDecoder),
}

/// Most bytes of a chunked request body buffered whole when the location
/// has no `client_max_body_size` (0) and the upstream needs a length.
const MAX_BUFFERED_BODY_BYTES: u64 = 64 << 20;

/// What the worker should do after driving a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Waiting for I/O.
    Wait,
    /// The response is complete: drop the session; the client connection
    /// continues (or closes, as decided).
    Finished,
    /// Tear down the client connection too.
    Abort,
}

/// A proxied request in flight.
pub struct Session {
    /// Slab key of the client connection.
    pub conn_key: usize,
    /// When the session's current wait times out (ms, worker clock).
    pub deadline_ms: u64,
    req: Box<ProxyReq>,
    cfg: Arc<crate::config::Config>,
    pool: usize,
    peer: usize,
    tried: crate::proxy::upstream::Tried,
    tries: u32,
    /// The current attempt counted on its server (`least_conn`, `max_conns`).
    active: Option<Active>,
    /// The evaluated `hash` key of the upstream (empty: not a hash upstream).
    pick_key: Vec<u8>,
    /// A `proxy_pass` with variables: the authority it evaluated to (`$proxy_host`).
    dyn_authority: String,
    /// ... and its URI part, which replaces the request URI.
    dyn_uri: Option<Vec<u8>>,
    /// The pool is chosen (a `proxy_pass` with variables resolved).
    pool_ready: bool,
    /// The upstream connection of the current attempt.
    up: Option<UpConn>,
    reused: bool,
    state: St,
    sendq: Vec<u8>,
    sendq_pos: usize,
    body: ReqBody,
    /// How the upstream gets the body: a chunked body decoded whole before
    /// the first attempt goes with its length.
    up_body: BodyFraming,
    /// The decoded body read before the first attempt (sent again on a retry).
    body_buf: Vec<u8>,
    /// `up_body` and `body_buf` are decided.
    body_ready: bool,
    /// Body bytes left the client's buffer, or reached the upstream: a retry
    /// could not send them again.
    body_sent: bool,
    continue_sent: bool,
    resp: Vec<u8>,
    head: Option<UpHead>,
    framing: ClientFraming,
    up_left: u64,
    dec: ChunkedDecoder,
    up_eof: bool,
    client_keep_alive: bool,
    body_bytes: u64,
    /// Bytes of the client's response head (written once per response),
    /// charged to `limit_bytes` with the body, as for local answers.
    head_sent: u64,
    started_ms: u64,
    token: Token,
    more_peers: bool,
    /// Status for the client when no server is left to try.
    last_code: u16,
    /// X-Cache-Status of this request (None: the location does not cache).
    cache_status: Option<CacheStatus>,
    /// Evaluated cache key.
    cache_key: Vec<u8>,
    /// The entry found at lookup (for Vary placement).
    cached_meta: Option<Box<EntryMeta>>,
    /// The cache fill in progress.
    fill: Option<u64>,
    looked_up: bool,
    /// Request targets to invalidate if this unsafe request succeeds.
    invalidate: Vec<Vec<u8>>,
    /// The stored entry that may still answer: revalidated by a 304, or
    /// served stale when the origin fails (`proxy_cache_use_stale`).
    stale: Option<cached::Entry>,
    /// The origin request carries the stale entry's validators.
    revalidating: bool,
    /// (status, body bytes) of a response served from the cache after the
    /// origin was asked (for the access log).
    served: Option<(u16, u64)>,
    /// A HEAD miss is fetched as GET to fill the cache
    /// (`proxy_cache_convert_head`); the client gets the head only.
    head_as_get: bool,
    /// The fill lock this request holds (freed when dropped: by the cache
    /// writer once the fill is published, or with the session).
    lock: Option<cached::FillLock>,
    /// When waiting on another request's fill lock ends (then: uncached).
    lock_wait_until_ms: u64,
    /// Go to the origin without storing (lock wait timed out, proxy_no_cache).
    no_store: bool,
    /// proxy_cache_bypass matched: origin asked, response may be stored.
    bypassed: bool,
    /// Reads handed to the I/O pool so far (after two, read inline).
    io_tries: u8,
    /// This request was counted for `proxy_cache_min_uses`.
    uses_counted: bool,
    /// The I/O pool finished this session's read.
    io_done: bool,
    /// A background refresh: timer entry the worker holds (0 = none).
    pub scheduled_ms: u64,
}

/// The client side of a session: a connection, or nobody (a background
/// refresh whose response only fills the cache).
pub trait Client {
    /// Request-body bytes buffered.
    fn body_bytes(&self) -> &[u8];
    /// The session took `n` body bytes.
    fn consume(&mut self, n: usize);
    /// Read more body bytes; Ok(false) when none now.
    #[allow(clippy::result_unit_err)]
    fn read_body(&mut self) -> Result<bool, ()>;
    /// Output buffer.
    fn out(&mut self) -> &mut Vec<u8>;
    /// The response head being built and the output buffer.
    fn sink(&mut self) -> Sink<'_>;
    /// Output not yet written.
    fn out_pending(&self) -> usize;
    /// Write output; Ok(true) when all is out.
    #[allow(clippy::result_unit_err)]
    fn flush_out(&mut self) -> Result<bool, ()>;
    /// The response is complete.
    fn finish_proxy(&mut self, keep_alive: bool, now_ms: u64);
    /// The client's send_timeout.
    fn send_timeout_ms(&self) -> u64;
    /// Whether the session wants more body bytes.
    fn set_want_body(&mut self, on: bool);
    /// `proxy_intercept_errors`: answer `code` with the location's
    /// `error_page` (which logs the request); false when there is none.
    fn error_page(
        &mut self,
        _ctx: &mut HttpCtx,
        _req: &mut ProxyReq,
        _code: u16,
        _keep_alive: bool,
    ) -> bool {
        false
    }
}

impl Client for Conn {
    fn body_bytes(&self) -> &[u8] {
        Conn::body_bytes(self)
    }
    fn consume(&mut self, n: usize) {
        Conn::consume(self, n)
    }
    fn read_body(&mut self) -> Result<bool, ()> {
        Conn::read_body(self)
    }
    fn out(&mut self) -> &mut Vec<u8> {
        Conn::out(self)
    }
    fn sink(&mut self) -> Sink<'_> {
        Conn::sink(self)
    }
    fn out_pending(&self) -> usize {
        Conn::out_pending(self)
    }
    fn flush_out(&mut self) -> Result<bool, ()> {
        Conn::flush_out(self)
    }
    fn finish_proxy(&mut self, keep_alive: bool, now_ms: u64) {
        Conn::finish_proxy(self, keep_alive, now_ms)
    }
    fn send_timeout_ms(&self) -> u64 {
        Conn::send_timeout_ms(self)
    }
    fn set_want_body(&mut self, on: bool) {
        self.want_body = on;
    }
    fn error_page(
        &mut self,
        ctx: &mut HttpCtx,
        req: &mut ProxyReq,
        code: u16,
        keep_alive: bool,
    ) -> bool {
        self.proxied_error_page(ctx, req, code, keep_alive)
    }
}

/// An HTTP/2 stream: the connection frames what the session writes.
impl Client for crate::http::conn::h2::StreamIo<'_> {
    fn body_bytes(&self) -> &[u8] {
        Self::body_bytes(self)
    }
    fn consume(&mut self, n: usize) {
        Self::consume(self, n)
    }
    fn read_body(&mut self) -> Result<bool, ()> {
        Self::read_body(self)
    }
    fn out(&mut self) -> &mut Vec<u8> {
        Self::out(self)
    }
    fn sink(&mut self) -> Sink<'_> {
        Self::sink(self)
    }
    fn out_pending(&self) -> usize {
        Self::out_pending(self)
    }
    fn flush_out(&mut self) -> Result<bool, ()> {
        Self::flush_out(self)
    }
    fn finish_proxy(&mut self, _keep_alive: bool, _now_ms: u64) {
        Self::finish_proxy(self)
    }
    fn send_timeout_ms(&self) -> u64 {
        Self::send_timeout_ms(self)
    }
    fn set_want_body(&mut self, _on: bool) {}
    fn error_page(
        &mut self,
        ctx: &mut HttpCtx,
        req: &mut ProxyReq,
        code: u16,
        _keep_alive: bool,
    ) -> bool {
        Self::error_page(self, ctx, req, code)
    }
}

/// The client of a background refresh: output is dropped.
#[derive(Default)]
pub struct NullClient {
    out: Vec<u8>,
    head: ReplyHead,
}

impl Client for NullClient {
    fn body_bytes(&self) -> &[u8] {
        &[]
    }
    fn consume(&mut self, _n: usize) {}
    fn read_body(&mut self) -> Result<bool, ()> {
        Ok(false)
    }
    fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }
    fn sink(&mut self) -> Sink<'_> {
        Sink {
            head: &mut self.head,
            out: &mut self.out,
            status: None,
        }
    }
    fn out_pending(&self) -> usize {
        0
    }
    fn flush_out(&mut self) -> Result<bool, ()> {
        self.out.clear();
        Ok(true)
    }
    fn finish_proxy(&mut self, _keep_alive: bool, _now_ms: u64) {}
    fn send_timeout_ms(&self) -> u64 {
        60_000
    }
    fn set_want_body(&mut self, _on: bool) {}
}

/// The client of an `auth_request` subrequest: the head is kept.
impl Client for crate::http::req_state::SubCapture {
    fn body_bytes(&self) -> &[u8] {
        &[]
    }
    fn consume(&mut self, _n: usize) {}
    fn read_body(&mut self) -> Result<bool, ()> {
        Ok(false)
    }
    fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }
    fn sink(&mut self) -> Sink<'_> {
        Sink {
            head: &mut self.head,
            out: &mut self.out,
            status: None,
        }
    }
    fn out_pending(&self) -> usize {
        0
    }
    fn flush_out(&mut self) -> Result<bool, ()> {
        self.trim();
        Ok(true)
    }
    fn finish_proxy(&mut self, _keep_alive: bool, _now_ms: u64) {}
    fn send_timeout_ms(&self) -> u64 {
        60_000
    }
    fn set_want_body(&mut self, _on: bool) {}
}

/// `conn_key` of a background refresh (no client connection).
pub const DETACHED: usize = usize::MAX;

#[path = "session_cache.rs"]
mod cache;
#[path = "session_relay.rs"]
mod relay;

fn location<'a>(cfg: &'a crate::config::Config, req: &ProxyReq) -> &'a LocationConf {
    &cfg.http.servers[req.server].locations[req.location]
}

impl Session {
    /// Start proxying `req` for connection `conn_key`; `token` is the
    /// upstream socket's token.
    pub fn new(
        req: Box<ProxyReq>,
        cfg: Arc<crate::config::Config>,
        conn_key: usize,
        token: Token,
        now_ms: u64,
    ) -> Session {
        let pool = cfg.http.servers[req.server].locations[req.location]
            .proxy
            .pass
            .as_ref()
            .map_or(0, |p| p.upstream);
        let loc = &cfg.http.servers[req.server].locations[req.location];
        let body = match req.head.body {
            BodyFraming::None => ReqBody::None,
            BodyFraming::Length(n) => ReqBody::Length(n),
            BodyFraming::Chunked => ReqBody::Chunked(ChunkedDecoder::with_limit(
                match loc.client_max_body_size_bytes {
                    0 if loc.proxy.http_version_minor == 0 => MAX_BUFFERED_BODY_BYTES,
                    n => n,
                },
            )),
        };
        let client_keep_alive = req.keep_alive;
        let up_body = req.head.body;
        Session {
            conn_key,
            deadline_ms: now_ms,
            req,
            cfg,
            pool,
            peer: usize::MAX,
            tried: Default::default(),
            tries: 0,
            active: None,
            pick_key: Vec::new(),
            dyn_authority: String::new(),
            dyn_uri: None,
            pool_ready: false,
            up: None,
            reused: false,
            state: St::Connecting,
            sendq: Vec::new(),
            sendq_pos: 0,
            body,
            up_body,
            body_buf: Vec::new(),
            body_ready: false,
            body_sent: false,
            continue_sent: false,
            resp: Vec::new(),
            head: None,
            framing: ClientFraming::None,
            up_left: 0,
            dec: ChunkedDecoder::new(),
            up_eof: false,
            client_keep_alive,
            body_bytes: 0,
            head_sent: 0,
            started_ms: now_ms,
            token,
            more_peers: false,
            last_code: 502,
            cache_status: None,
            cache_key: Vec::new(),
            cached_meta: None,
            fill: None,
            looked_up: false,
            invalidate: Vec::new(),
            stale: None,
            revalidating: false,
            served: None,
            head_as_get: false,
            lock: None,
            lock_wait_until_ms: 0,
            no_store: false,
            bypassed: false,
            io_tries: 0,
            uses_counted: false,
            io_done: false,
            scheduled_ms: 0,
        }
    }

    /// A background refresh of `req`'s cache entry (no client): fetched
    /// unconditionally and stored; `lock` is the fill lock it holds.
    pub fn background(
        req: Box<ProxyReq>,
        cfg: Arc<crate::config::Config>,
        token: Token,
        now_ms: u64,
        lock: cached::FillLock,
    ) -> Session {
        let mut s = Session::new(req, cfg, DETACHED, token, now_ms);
        let cfg = s.cfg.clone();
        let loc = location(&cfg, &s.req);
        s.looked_up = true;
        s.cache_key = s.compute_key(loc, None).unwrap_or_default();
        s.cache_status = Some(CacheStatus::Expired);
        s.head_as_get = s.req.head.method == Method::Head;
        s.lock = Some(lock);
        s
    }

    fn loc(&self) -> &LocationConf {
        &self.cfg.http.servers[self.req.server].locations[self.req.location]
    }

    /// Pick a server and connect (or reuse). Errors end in a 502 response.
    pub fn start(
        &mut self,
        conn: &mut dyn Client,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
        reg: &Registry,
    ) -> Next {
        let cfg = self.cfg.clone();
        let loc = location(&cfg, &self.req);
        if !self.looked_up {
            self.looked_up = true;
            if let Some(next) = self.cache_lookup(loc, conn, ctx, pools) {
                return next;
            }
        }
        if let Some(next) = self.prepare_body(conn, ctx, pools, reg) {
            return next;
        }
        if !self.pool_ready {
            if let Err(e) = self.choose_pool(loc, ctx, pools) {
                log::error!("{e} (proxy_pass with variables), client: {}", self.req.peer);
                return self.fail(conn, ctx, 502);
            }
        }
        let Some(pool) = pools.pools.get_mut(self.pool) else {
            return self.fail(conn, ctx, 502);
        };
        let max_tries = match loc.proxy.next_upstream_tries {
            0 => pool.len() as u32,
            n => n,
        };
        let tls = match self.upstream_tls(loc, ctx.now_unix_ms()) {
            Ok(t) => t,
            Err(name) => {
                log::error!("invalid upstream SSL name \"{name}\" (proxy_ssl_name)");
                return self.fail(conn, ctx, 502);
            }
        };
        loop {
            if self.tries >= max_tries.max(1) {
                return self.fail(conn, ctx, self.last_code);
            }
            let at = Pick {
                now_ms: ctx.now_ms,
                client: self.req.peer,
                key: &self.pick_key,
            };
            let Some(peer) = pool.pick(&at, &mut self.tried) else {
                if self.tries == 0 {
                    log::error!("no live upstreams in \"{}\"", pool.name);
                }
                return self.fail(conn, ctx, self.last_code);
            };
            self.active = pool.hold(peer);
            self.peer = peer;
            self.tried.insert(peer);
            self.tries += 1;
            self.more_peers = self.tries < max_tries && (self.tries as usize) < pool.len();
            // Reuse an idle keep-alive connection (of the same TLS) if one
            // is waiting.
            let (up, reused) = match pool.take_idle(peer, tls.as_ref().map(|t| &t.0)) {
                Some(c) => (Ok(c), true),
                None => (open(&cfg, &pool.peers[peer].addr, tls.as_ref()), false),
            };
            match up {
                Ok(mut c) => {
                    if reg
                        .register(
                            &mut c.sock,
                            self.token,
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        pool.failed(peer, ctx.now_ms);
                        continue;
                    }
                    self.up = Some(c);
                    self.reused = reused;
                    self.state = if reused { St::Active } else { St::Connecting };
                    self.deadline_ms = ctx.now_ms
                        + if reused {
                            loc.proxy.send_timeout_ms
                        } else {
                            loc.proxy.connect_timeout_ms
                        };
                    let keepalive = loc.proxy.http_version_minor == 1 && pool.keepalive > 0;
                    self.build_request(loc, keepalive, ctx.now_unix_ms());
                    return Next::Wait;
                }
                Err(e) => {
                    log::error!("connect() to {} failed: {e}", pool.peers[peer].addr);
                    pool.failed(peer, ctx.now_ms);
                    if !loc.proxy.next_upstream.error {
                        return self.fail(conn, ctx, 502);
                    }
                }
            }
        }
    }

    /// The pool of this request: the location's upstream, or for a
    /// `proxy_pass` with variables the upstream block its value names, else
    /// a pool for the address (a name needs `resolver`). And the `hash` key.
    fn choose_pool(
        &mut self,
        loc: &LocationConf,
        ctx: &HttpCtx,
        pools: &mut Pools,
    ) -> Result<(), String> {
        self.pool_ready = true;
        let Some(pass) = loc.proxy.pass.as_ref() else {
            return Err("no proxy_pass".into());
        };
        if let Some(d) = &pass.dynamic {
            let vars = self.req_vars(ctx.now_unix_ms());
            let mut out = Vec::new();
            crate::http::vars::eval(&d.authority, &vars, &Default::default(), &mut out);
            let uri = d.uri.as_ref().map(|t| {
                let mut u = Vec::new();
                crate::http::vars::eval(t, &vars, &Default::default(), &mut u);
                u
            });
            let authority = String::from_utf8_lossy(&out).into_owned();
            let unix = authority.starts_with("unix:");
            if authority.is_empty() || authority.bytes().any(|b| b <= b' ' || (b == b'/' && !unix))
            {
                return Err(format!("invalid upstream \"{authority}\""));
            }
            let named = self
                .cfg
                .http
                .upstreams
                .iter()
                .position(|u| !u.implicit && u.name == authority);
            self.pool = match named {
                Some(i) => i,
                None => {
                    let port = if d.https { 443 } else { 80 };
                    let literal = authority.starts_with("unix:") || is_ip_literal(&authority);
                    let resolver = loc.proxy.resolver_valid_ms;
                    if !literal && resolver.is_none() {
                        return Err(format!("no resolver defined to resolve {authority}"));
                    }
                    let valid_ms = if literal { 0 } else { resolver.unwrap_or(0) };
                    let https = d.https;
                    pools.dynamic(https, &authority, ctx.now_ms, valid_ms, || {
                        let addrs = match authority.strip_prefix("unix:") {
                            Some(p) => vec![PeerAddr::Unix(p.into())],
                            None => crate::config::lookup(&authority, port)?
                                .into_iter()
                                .map(PeerAddr::Inet)
                                .collect(),
                        };
                        Some(crate::config::implicit_upstream(&authority, addrs, https))
                    })?
                }
            };
            self.dyn_authority = authority;
            self.dyn_uri = uri;
        }
        if let Some(crate::config::Balance::Hash { key, .. }) =
            self.cfg.http.upstreams.get(self.pool).map(|u| &u.balance)
        {
            let vars = self.req_vars(ctx.now_unix_ms());
            let mut k = Vec::new();
            crate::http::vars::eval(key, &vars, &Default::default(), &mut k);
            self.pick_key = k;
        }
        Ok(())
    }

    /// For an HTTPS upstream: what its connections are made for (the
    /// client configuration, `proxy_ssl_name` evaluated, its port cut) and
    /// the name as TLS takes it (`None`: not a valid name, which only a
    /// connection that verifies nothing may do without: it names the
    /// server by its address). Err(name): invalid, and needed to verify.
    fn upstream_tls(
        &self,
        loc: &LocationConf,
        now_unix_ms: u64,
    ) -> Result<Option<(TlsKey, Option<ServerName<'static>>)>, String> {
        let Some(t) = loc.proxy.pass.as_ref().and_then(|p| p.tls.as_ref()) else {
            return Ok(None);
        };
        let name = match &t.name {
            Some(tpl) => {
                let vars = self.req_vars(now_unix_ms);
                let mut out = Vec::new();
                crate::http::vars::eval(tpl, &vars, &Default::default(), &mut out);
                let text = String::from_utf8_lossy(&out);
                crate::tls::client::host_of(&text).to_string()
            }
            None if !self.dyn_authority.is_empty() => {
                crate::tls::client::host_of(&self.dyn_authority).to_string()
            }
            None => t.host.clone(),
        };
        let server_name = crate::tls::client::server_name(&name);
        let verify = self
            .cfg
            .http
            .upstream_tls
            .get(t.client)
            .is_some_and(|c| c.settings.verify);
        if server_name.is_none() && verify {
            return Err(name);
        }
        let key = TlsKey {
            client: t.client,
            name: name.into(),
        };
        Ok(Some((key, server_name)))
    }

    fn build_request(&mut self, loc: &LocationConf, keepalive: bool, now_unix_ms: u64) {
        let Some(pass) = loc.proxy.pass.as_ref() else {
            return;
        };
        let conditional = match (&self.stale, self.revalidating) {
            (Some(e), true) => crate::cache::revalidate::revalidation_headers(e.meta()),
            _ => Vec::new(),
        };
        let mut q = std::mem::take(&mut self.sendq);
        q.clear();
        let vars = self.req_vars(now_unix_ms);
        let c = ReqCtx {
            keepalive,
            conditional: &conditional,
            // A HEAD cache fill, and a subrequest (as nginx's), are GETs.
            method: (self.head_as_get || self.req.subrequest).then_some(&b"GET"[..]),
            body: self.up_body,
            ..self.req_ctx(&vars, loc, pass)
        };
        upreq::build(&c, &mut q);
        match self.up_body {
            BodyFraming::Length(_) => q.extend_from_slice(&self.body_buf),
            BodyFraming::Chunked => chunked::encode_chunk(&mut q, &self.body_buf),
            BodyFraming::None => {}
        }
        self.sendq = q;
        self.sendq_pos = 0;
    }

    /// Drive the session after readiness on either socket.
    pub fn pump(
        &mut self,
        conn: &mut dyn Client,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
        reg: &Registry,
    ) -> Next {
        if matches!(self.state, St::Done | St::Intercepted) {
            return Next::Finished;
        }
        if self.state == St::WaitLock {
            return Next::Wait;
        }
        if self.state == St::ReadBody {
            return match self.start(conn, ctx, pools, reg) {
                Next::Wait if self.state != St::ReadBody => self.pump(conn, ctx, pools, reg),
                other => other,
            };
        }
        if self.state == St::WaitIo {
            if !self.io_done {
                return Next::Wait;
            }
            self.io_done = false;
            return self.look_again(conn, ctx, pools, reg);
        }
        if self.state == St::Tunnel {
            return self.tunnel(conn, ctx, pools).unwrap_or(Next::Wait);
        }
        if self.state == St::Connecting {
            match self.connected(pools) {
                Ok(true) => {
                    self.state = St::Active;
                    self.deadline_ms = ctx.now_ms + self.loc().proxy.send_timeout_ms;
                }
                Ok(false) => return Next::Wait,
                Err(()) => return self.retry(conn, ctx, pools, reg, ProxyError::Connection),
            }
        }
        loop {
            let mut progress = false;
            // Client body -> send queue, reading the client as needed.
            match self.take_body(conn) {
                Ok(p) => progress |= p,
                Err(code) => return self.reject_body(conn, ctx, pools, reg, code),
            }
            if self.wants_body()
                && conn.body_bytes().is_empty()
                && self.sendq.len() - self.sendq_pos < SEND_BUF
            {
                match conn.read_body() {
                    Ok(true) => progress = true,
                    Ok(false) => {}
                    // The body ended early: the upstream must not take the
                    // part it has as the whole request.
                    Err(()) => return self.reject_body(conn, ctx, pools, reg, 400),
                }
            }
            // Send queue -> upstream.
            match self.send() {
                Ok(p) => progress |= p,
                Err(()) => return self.retry(conn, ctx, pools, reg, ProxyError::Connection),
            }
            // Upstream -> client (only while the client keeps up).
            if conn.out_pending() < HIGH_WATER && !self.up_eof {
                match self.receive(&mut pools.read_buf) {
                    Ok(p) => progress |= p,
                    Err(()) => return self.retry(conn, ctx, pools, reg, ProxyError::Connection),
                }
            }
            match self.process_response(conn, ctx, pools) {
                Ok(true) => progress = true,
                Ok(false) => {}
                Err(err) => return self.retry(conn, ctx, pools, reg, err),
            }
            match conn.flush_out() {
                Ok(_) => {}
                Err(()) => return self.abort(pools),
            }
            if self.state == St::Done {
                return self.finish(conn, ctx, pools, reg);
            }
            if self.state == St::Intercepted {
                self.drop_upstream(reg);
                self.state = St::Intercepted;
                return Next::Finished;
            }
            if self.state == St::Tunnel {
                return self.tunnel(conn, ctx, pools).unwrap_or(Next::Wait);
            }
            if !progress {
                break;
            }
        }
        conn.set_want_body(self.wants_body() && self.sendq.len() - self.sendq_pos < SEND_BUF);
        self.deadline_ms = ctx.now_ms
            + if conn.out_pending() >= HIGH_WATER {
                conn.send_timeout_ms()
            } else if self.head.is_none()
                && self.sendq_pos >= self.sendq.len()
                && !self.wants_body()
            {
                self.loc().proxy.read_timeout_ms
            } else if self.sendq_pos < self.sendq.len() {
                self.loc().proxy.send_timeout_ms
            } else {
                self.loc().proxy.read_timeout_ms
            };
        Next::Wait
    }

    /// Whether the new connection is ready for the request: TCP connected
    /// and, for an HTTPS upstream, the handshake done (the connect timeout
    /// bounds both, as in nginx). Err after logging why not.
    fn connected(&mut self, pools: &Pools) -> Result<bool, ()> {
        let addr = pools
            .pools
            .get(self.pool)
            .and_then(|p| p.peers.get(self.peer))
            .map(|p| &p.addr);
        let Some(up) = &mut self.up else {
            return Err(());
        };
        if let Ok(Some(e)) | Err(e) = up.sock.take_error() {
            log::error!("connect() to upstream {} failed: {e}", show(addr));
            return Err(());
        }
        match up.sock.connected() {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => {
                log::error!("connect() to upstream {} failed: {e}", show(addr));
                return Err(());
            }
        }
        let Some((key, t)) = &mut up.tls else {
            return Ok(true);
        };
        match t.handshake(&mut up.sock) {
            Ok(done) => Ok(done),
            Err(e) if crate::tls::is_certificate_error(&e) => {
                log::error!(
                    "upstream SSL certificate verify error: {e} while SSL handshaking to upstream {} (name \"{}\")",
                    show(addr),
                    key.name
                );
                Err(())
            }
            Err(e) => {
                log::error!(
                    "SSL handshake to upstream {} (name \"{}\") failed: {e}",
                    show(addr),
                    key.name
                );
                Err(())
            }
        }
    }

    fn can_retry(&self) -> bool {
        let nu = &self.loc().proxy.next_upstream;
        let idempotent = matches!(
            self.req.head.method,
            Method::Get | Method::Head | Method::Options | Method::Put | Method::Delete
        );
        (idempotent || nu.non_idempotent) && !self.body_sent
    }

    /// An attempt failed with `err`: try the next server while that is safe,
    /// else answer (or cut) the client.
    fn retry(
        &mut self,
        conn: &mut dyn Client,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
        reg: &Registry,
        err: ProxyError,
    ) -> Next {
        log::debug!("proxy: attempt {} failed: {}", self.tries, err.as_str());
        self.end_fill(pools, false);
        let reused = self.reused;
        let head_relayed = self.head.is_some();
        self.drop_upstream(reg);
        if head_relayed || !err.retryable() {
            // The client already has part of the response: cut it.
            return self.abort(pools);
        }
        let nu = self.loc().proxy.next_upstream;
        // A kept-alive connection the upstream closed meanwhile is not the
        // server's fault: try again on a fresh connection.
        let stale = reused && err == ProxyError::Connection && !self.body_sent;
        let counts = match err {
            ProxyError::Connection => nu.error,
            ProxyError::Timeout => nu.timeout,
            ProxyError::InvalidHeader => nu.invalid_header,
            ProxyError::Status(_) | ProxyError::Broken => true,
        };
        if stale {
            self.tries = self.tries.saturating_sub(1);
            self.tried.remove(self.peer);
        } else if counts {
            if let Some(p) = pools.pools.get_mut(self.pool) {
                p.failed(self.peer, ctx.now_ms);
            }
        }
        self.resp.clear();
        self.head = None;
        self.last_code = err.client_status();
        if stale || (counts && self.can_retry()) {
            self.state = St::Connecting;
            return match self.start(conn, ctx, pools, reg) {
                Next::Wait => self.pump(conn, ctx, pools, reg),
                other => other,
            };
        }
        self.fail(conn, ctx, err.client_status())
    }

    /// The I/O pool finished this session's read.
    pub fn io_finished(&mut self) {
        self.io_done = true;
    }

    /// Run the cache lookup again (after an I/O wait).
    fn look_again(
        &mut self,
        conn: &mut dyn Client,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
        reg: &Registry,
    ) -> Next {
        self.looked_up = false;
        self.state = St::Connecting;
        match self.start(conn, ctx, pools, reg) {
            Next::Wait if !matches!(self.state, St::WaitIo | St::WaitLock) => {
                self.pump(conn, ctx, pools, reg)
            }
            other => other,
        }
    }

    /// The deadline passed.
    pub fn on_timeout(
        &mut self,
        conn: &mut dyn Client,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
        reg: &Registry,
    ) -> Next {
        if self.deadline_ms > ctx.now_ms {
            return Next::Wait;
        }
        if self.state == St::ReadBody {
            return self.reject_body(conn, ctx, pools, reg, 408);
        }
        if self.state == St::WaitIo {
            // The I/O pool is slow: read inline rather than wait longer.
            self.io_tries = 2;
            return self.look_again(conn, ctx, pools, reg);
        }
        if self.state == St::WaitLock {
            // Look again: the fill may be done, or the lock free; past
            // proxy_cache_lock_timeout go to the origin without storing.
            if ctx.now_ms >= self.lock_wait_until_ms {
                self.no_store = true;
                self.state = St::Connecting;
            } else {
                self.looked_up = false;
                // What this worker remembers about the key predates the
                // fill we are waiting for: ask the disk again.
                pools
                    .hot
                    .forget(&crate::cache::cache_key_md5(&self.cache_key));
                self.io_tries = 0;
            }
            return match self.start(conn, ctx, pools, reg) {
                Next::Wait if self.state != St::WaitLock => self.pump(conn, ctx, pools, reg),
                other => other,
            };
        }
        if self.state == St::Tunnel {
            log::info!("proxy: upgraded connection timed out (proxy_read_timeout)");
            return self.end_tunnel(conn, ctx, pools, "timeout");
        }
        if conn.out_pending() >= HIGH_WATER || self.head.is_some() {
            log::info!("proxy: timeout while relaying the response");
            self.drop_upstream(reg);
            return self.abort(pools);
        }
        let handshaking = self.up.as_ref().is_some_and(|c| {
            c.tls.as_ref().is_some_and(|(_, t)| t.is_handshaking())
                && c.sock.connected().unwrap_or(false)
        });
        log::error!(
            "upstream timed out ({})",
            match self.state {
                St::Connecting if handshaking => "SSL handshake",
                St::Connecting => "connect",
                _ => "read",
            }
        );
        self.retry(conn, ctx, pools, reg, ProxyError::Timeout)
    }

    /// Answer the client with an error status and finish.
    fn fail(&mut self, conn: &mut dyn Client, ctx: &mut HttpCtx, code: u16) -> Next {
        let keep_alive = self.client_keep_alive && !self.wants_body();
        let failure = if code == 504 {
            OriginFailure::Timeout
        } else {
            OriginFailure::Error
        };
        if self.stale_allowed(failure, ctx)
            && self.serve_stored(CacheStatus::Stale, None, conn, ctx)
        {
            let (status, bytes) = self.served.unwrap_or((200, 0));
            self.log(ctx, status, bytes);
            self.state = St::Done;
            conn.finish_proxy(keep_alive, ctx.now_ms);
            return Next::Finished;
        }
        self.error_reply(conn, ctx, code, keep_alive)
    }

    /// Answer the client with the error page for `code` (through the header
    /// filter: `add_header ... always`, the waiting room's cookie) and finish.
    fn error_reply(
        &mut self,
        conn: &mut dyn Client,
        ctx: &mut HttpCtx,
        code: u16,
        keep_alive: bool,
    ) -> Next {
        let cfg = self.cfg.clone();
        let loc = location(&cfg, &self.req);
        let head_only = self.req.head.method == Method::Head;
        let vars = self.req_vars(ctx.now_unix_ms());
        let mut sink = conn.sink();
        let mark = sink.out.len();
        let n = handler::error_reply(ctx, loc, &vars, code, keep_alive, head_only, &[], &mut sink);
        let after = sink.out.len();
        self.note_head(mark, after, n);
        self.log(ctx, code, n);
        self.state = St::Done;
        conn.finish_proxy(keep_alive, ctx.now_ms);
        Next::Finished
    }

    /// The client's request body is refused (`code` 400: broken chunked
    /// framing; 413: over `client_max_body_size`; 408: it stopped coming).
    /// The upstream connection, which may hold part of the body, is closed,
    /// never pooled; the client gets `code` unless its response has begun,
    /// and its connection closes (the rest of the body cannot be framed).
    fn reject_body(
        &mut self,
        conn: &mut dyn Client,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
        reg: &Registry,
        code: u16,
    ) -> Next {
        log::info!(
            "{}",
            match code {
                413 => "client intended to send too large chunked body",
                408 => "client timed out sending the request body",
                _ => "client sent an invalid or truncated request body",
            }
        );
        self.end_fill(pools, false);
        self.release_lock();
        let relayed = self.head.is_some();
        self.drop_upstream(reg);
        self.body = ReqBody::None;
        if relayed {
            return self.abort(pools);
        }
        self.client_keep_alive = false;
        self.error_reply(conn, ctx, code, false)
    }

    /// Decide how the request body goes upstream, before the first attempt.
    /// A chunked body is decoded: when it is all here already (or the
    /// upstream speaks HTTP/1.0, for which it is read whole first) it goes
    /// with `Content-Length`; otherwise what is here becomes the first chunk
    /// and the rest streams re-chunked. `Some` when the session must wait for
    /// more body or has answered (a refused body).
    fn prepare_body(
        &mut self,
        conn: &mut dyn Client,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
        reg: &Registry,
    ) -> Option<Next> {
        if self.body_ready {
            return None;
        }
        let whole = self.loc().proxy.http_version_minor == 0;
        let body_timeout_ms = self.loc().client_body_timeout_ms;
        loop {
            let ReqBody::Chunked(dec) = &mut self.body else {
                self.body_ready = true;
                return None;
            };
            let buf = &mut self.body_buf;
            match dec.feed(conn.body_bytes(), &mut |d| buf.extend_from_slice(d)) {
                Ok((used, done)) => {
                    conn.consume(used);
                    if done {
                        self.up_body = BodyFraming::Length(self.body_buf.len() as u64);
                        self.body = ReqBody::None;
                        continue;
                    }
                }
                Err(e) => return Some(self.reject_body(conn, ctx, pools, reg, e.status())),
            }
            if !whole {
                self.up_body = BodyFraming::Chunked;
                self.body_ready = true;
                return None;
            }
            if self.send_continue(conn) && conn.flush_out().is_err() {
                return Some(self.abort(pools));
            }
            match conn.read_body() {
                Ok(true) => {}
                Ok(false) => {
                    if self.state != St::ReadBody {
                        self.state = St::ReadBody;
                        self.deadline_ms = ctx.now_ms + body_timeout_ms;
                    }
                    conn.set_want_body(true);
                    return Some(Next::Wait);
                }
                Err(()) => return Some(self.reject_body(conn, ctx, pools, reg, 400)),
            }
            // Bytes came: the client is still sending.
            self.deadline_ms = ctx.now_ms + body_timeout_ms;
        }
    }

    fn finish(
        &mut self,
        conn: &mut dyn Client,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
        reg: &Registry,
    ) -> Next {
        let up = self.head;
        self.end_fill(pools, true);
        self.invalidate_targets(pools, ctx);
        if let Some(p) = pools.pools.get_mut(self.pool) {
            p.succeeded(self.peer);
        }
        let reusable = up.is_some_and(|h| h.reusable)
            && self.served.is_none()
            && self.resp.is_empty()
            && !self.up_eof
            && self.sendq_pos >= self.sendq.len()
            && !self.wants_body();
        if let Some(mut c) = self.up.take() {
            let _ = reg.deregister(&mut c.sock);
            let pool = pools.pools.get_mut(self.pool).filter(|_| reusable);
            match pool.map(|p| p.put_idle(self.peer, c)) {
                Some(Ok(())) => {}
                Some(Err(c)) => c.close(),
                None => {}
            }
        }
        let (status, bytes) = self
            .served
            .unwrap_or((up.map_or(502, |h| h.status), self.body_bytes));
        self.log(ctx, status, bytes);
        // A request body the upstream did not read ends the client connection.
        let keep_alive = self.client_keep_alive && !self.wants_body();
        conn.finish_proxy(keep_alive, ctx.now_ms);
        Next::Finished
    }

    /// A response of `body` bytes was queued from `before` to `after` in the
    /// client's output: the rest is its head.
    fn note_head(&mut self, before: usize, after: usize, body: u64) {
        self.head_sent = (after.saturating_sub(before) as u64).saturating_sub(body);
    }

    /// The log phase (`handler::end_request`, shared with local answers):
    /// `limit_bytes` gets head and body, the access log its line.
    fn log(&mut self, ctx: &mut HttpCtx, status: u16, bytes: u64) {
        if self.req.subrequest {
            return; // nginx's `log_subrequest off`
        }
        let mut slots = std::mem::take(&mut self.req.bytes_slots);
        let cfg = self.cfg.clone();
        let vars = self.req_vars(ctx.now_unix_ms());
        let done = handler::Finished {
            logs: &location(&cfg, &self.req).access_logs,
            peer: self.req.peer,
            head_bytes: &self.req.head_bytes,
            head: &self.req.head,
            host: self.req.host.as_deref(),
            status,
            body_bytes: bytes,
            sent_bytes: self.head_sent + bytes,
            request_time_us: ctx.now_ms.saturating_sub(self.started_ms) * 1000,
            vars: &vars,
            resp: crate::http::vars::RespVars {
                status,
                body_bytes: bytes,
                bytes: self.head_sent + bytes,
                upstream_status: self.head.map_or(0, |h| h.status),
                cache_status: self.cache_status.map(|c| c.as_str()),
                ..Default::default()
            },
        };
        handler::end_request(ctx, &done, &mut slots);
    }

    fn drop_upstream(&mut self, reg: &Registry) {
        if let Some(mut c) = self.up.take() {
            let _ = reg.deregister(&mut c.sock);
            c.close();
        }
        self.up_eof = false;
        self.state = St::Connecting;
    }

    fn abort(&mut self, pools: &mut Pools) -> Next {
        self.end_fill(pools, false);
        if let Some(c) = self.up.take() {
            c.close();
        }
        self.state = St::Done;
        Next::Abort
    }

    /// Close the upstream side (the client connection is going away).
    pub fn close(&mut self, reg: &Registry, pools: &mut Pools) {
        self.end_fill(pools, false);
        self.drop_upstream(reg);
        self.state = St::Done;
    }
}

/// A new connection to `addr`, with TLS when `tls` says (its first flight
/// queued, sent once connected).
fn open(
    cfg: &crate::config::Config,
    addr: &PeerAddr,
    tls: Option<&(TlsKey, Option<ServerName<'static>>)>,
) -> std::io::Result<UpConn> {
    let sock = UpSock::connect(addr)?;
    let tls = match tls {
        None => None,
        Some((key, name)) => {
            let client = cfg.http.upstream_tls.get(key.client).ok_or_else(|| {
                std::io::Error::other("no TLS client configuration for the upstream")
            })?;
            let name = match (name, addr) {
                (Some(n), _) => n.clone(),
                (None, PeerAddr::Inet(a)) => ServerName::IpAddress(a.ip().into()),
                (None, PeerAddr::Unix(_)) => ServerName::try_from("localhost")
                    .map_err(|_| std::io::Error::other("no TLS name for the upstream"))?,
            };
            let stream = crate::tls::Stream::client(&client.config, name)?;
            Some((key.clone(), Box::new(stream)))
        }
    };
    Ok(UpConn { sock, tls })
}

/// An upstream address for logs.
fn show(addr: Option<&PeerAddr>) -> String {
    addr.map_or_else(|| "?".to_string(), |a| a.to_string())
}

/// `host` of `host[:port]` is an IP address (no lookup needed).
fn is_ip_literal(authority: &str) -> bool {
    let host = crate::tls::client::host_of(authority);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::ProxyError;

    #[test]
    fn proxy_errors_say_their_status_and_whether_a_retry_is_possible() {
        // Was: u16 sentinels (BROKEN = 0, INVALID_HEADER = 1) mixed with
        // statuses in one parameter.
        assert_eq!(ProxyError::Timeout.client_status(), 504);
        for e in [
            ProxyError::Connection,
            ProxyError::InvalidHeader,
            ProxyError::Broken,
            ProxyError::Status(503),
        ] {
            assert_eq!(e.client_status(), 502, "{}", e.as_str());
        }
        assert!(!ProxyError::Broken.retryable());
        assert!(ProxyError::Status(500).retryable() && ProxyError::Connection.retryable());
    }
}
