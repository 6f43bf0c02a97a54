//! One proxied request: connect (or reuse an idle connection), stream the
//! request head and body upstream, read the response head, stream the body
//! to the client with backpressure, then return the upstream connection to
//! its pool or close it. Retries the next server on errors and timeouts
//! while that is still safe (nothing sent to the client, and an idempotent
//! request or no body sent). 502 for a refused/failed/malformed upstream,
//! 504 for a timeout.

use crate::cache::freshness::OriginFailure;
use crate::cache::{CacheStatus, EntryMeta};
use crate::config::LocationConf;
use crate::http::chunked::ChunkedDecoder;
use crate::http::conn::Conn;
use crate::http::ctx::HttpCtx;
use crate::http::handler::{self, ProxyReq};
use crate::http::request::{BodyFraming, Method};
use crate::proxy::cached::{self, LookupResult};
use crate::proxy::request::{self as upreq, ReqCtx};
use crate::proxy::response::{self as upresp, ClientFraming, ClientHeadParams, UpFraming, UpHead};
use crate::proxy::upstream::Pools;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;

/// Client output above which upstream reads pause (backpressure).
const HIGH_WATER: usize = 256 * 1024;
/// Request-body bytes buffered for the upstream at most.
const SEND_BUF: usize = 64 * 1024;
/// Read size from the upstream.
const READ_CHUNK: usize = 32 * 1024;
/// `retry` code: the upstream's head was malformed (502 to the client).
const INVALID_HEADER: u16 = 1;
/// `retry` code: the response broke after the client got its head.
const BROKEN: u16 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// Another request holds the key's fill lock: poll the cache.
    WaitLock,
    /// An entry file is being read by the I/O pool: look again when done.
    WaitIo,
    Connecting,
    Active,
    Done,
}

/// How often a request waiting on a fill lock looks at the cache again.
const LOCK_POLL_MS: u64 = 25;

enum ReqBody {
    None,
    Length(u64),
    Chunked(ChunkedDecoder),
}

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
    tried: u64,
    tries: u32,
    sock: Option<TcpStream>,
    reused: bool,
    state: St,
    sendq: Vec<u8>,
    sendq_pos: usize,
    body: ReqBody,
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
    /// The fill lock this request holds.
    lock: Option<std::path::PathBuf>,
    /// When waiting on another request's fill lock ends (then: uncached).
    lock_wait_until_ms: u64,
    /// Go to the origin without storing (lock wait timed out, proxy_no_cache).
    no_store: bool,
    /// proxy_cache_bypass matched: origin asked, response may be stored.
    bypassed: bool,
    /// Reads handed to the I/O pool so far (after two, read inline).
    io_tries: u8,
    /// The I/O pool finished this session's read.
    io_done: bool,
}

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
        let body = match req.head.body {
            BodyFraming::None => ReqBody::None,
            BodyFraming::Length(n) => ReqBody::Length(n),
            BodyFraming::Chunked => ReqBody::Chunked(ChunkedDecoder::new()),
        };
        let client_keep_alive = req.keep_alive;
        Session {
            conn_key,
            deadline_ms: now_ms,
            req,
            cfg,
            pool,
            peer: usize::MAX,
            tried: 0,
            tries: 0,
            sock: None,
            reused: false,
            state: St::Connecting,
            sendq: Vec::new(),
            sendq_pos: 0,
            body,
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
            io_done: false,
        }
    }

    fn loc(&self) -> &LocationConf {
        &self.cfg.http.servers[self.req.server].locations[self.req.location]
    }

    /// Pick a server and connect (or reuse). Errors end in a 502 response.
    pub fn start(
        &mut self,
        conn: &mut Conn,
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
        let Some(pool) = pools.pools.get_mut(self.pool) else {
            return self.fail(conn, ctx, 502);
        };
        let max_tries = match loc.proxy.next_upstream_tries {
            0 => pool.len() as u32,
            n => n,
        };
        loop {
            if self.tries >= max_tries.max(1) {
                return self.fail(conn, ctx, self.last_code);
            }
            let Some(peer) = pool.pick(ctx.now_ms, self.tried) else {
                if self.tries == 0 {
                    log::error!("no live upstreams in \"{}\"", pool.name);
                }
                return self.fail(conn, ctx, self.last_code);
            };
            self.peer = peer;
            self.tried |= 1u64.checked_shl(peer as u32).unwrap_or(0);
            self.tries += 1;
            self.more_peers = self.tries < max_tries && (self.tries as usize) < pool.len();
            // Reuse an idle keep-alive connection if one is waiting.
            let (sock, reused) = match pool.take_idle(peer) {
                Some(s) => (Ok(s), true),
                None => (TcpStream::connect(pool.peers[peer].addr), false),
            };
            match sock {
                Ok(mut s) => {
                    if reg
                        .register(&mut s, self.token, Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        pool.failed(peer, ctx.now_ms);
                        continue;
                    }
                    self.sock = Some(s);
                    self.reused = reused;
                    self.state = if reused { St::Active } else { St::Connecting };
                    self.deadline_ms = ctx.now_ms
                        + if reused {
                            loc.proxy.send_timeout_ms
                        } else {
                            loc.proxy.connect_timeout_ms
                        };
                    let keepalive = loc.proxy.http_version_minor == 1 && pool.keepalive > 0;
                    self.build_request(loc, keepalive);
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

    /// Answer from the cache when a usable entry exists; `None` = go upstream.
    fn cache_lookup(
        &mut self,
        loc: &LocationConf,
        conn: &mut Conn,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
    ) -> Option<Next> {
        let cfg = self.cfg.clone();
        let zone = cached::zone(&cfg.http.cache_paths, &loc.cache)?;
        pools.cache.as_ref()?;
        self.cache_key = self.compute_key(loc, None)?;
        if self.req.head.method == Method::Other
            && crate::http::request::at(&self.req.head_bytes, self.req.head.method_span) == b"PURGE"
            && loc.cache.purge
        {
            return Some(self.purge(loc, zone, conn, ctx, pools));
        }
        self.no_store |= self.any_condition(loc, &loc.cache.no_cache);
        if !matches!(self.req.head.method, Method::Get | Method::Head) {
            self.cache_status = Some(CacheStatus::Bypass);
            return None;
        }
        if self.any_condition(loc, &loc.cache.bypass) {
            // proxy_cache_bypass: not answered from the cache, but the
            // response may still be stored.
            self.cache_status = Some(CacheStatus::Bypass);
            self.bypassed = true;
            return None;
        }
        let req_headers = upreq::header_pairs(&self.req.head_bytes);
        let now = ctx.unix_secs;
        match cached::lookup(
            zone,
            &loc.cache,
            &self.cache_key,
            &req_headers,
            now,
            &mut pools.hot,
            ctx.now_ms,
            ctx.stats
                .retired()
                .cache_epoch
                .load(std::sync::atomic::Ordering::Acquire),
            self.io_tries < 2 && pools.io.is_some(),
        ) {
            LookupResult::Pending(path) => {
                // Reading would wait for the disk: an I/O thread pulls the
                // file into the page cache; the worker wakes us to look again.
                self.io_tries += 1;
                let queued = pools
                    .io
                    .as_ref()
                    .is_some_and(|io| io.submit(self.token.0, path));
                if !queued {
                    self.io_tries = 2;
                    self.looked_up = false;
                    return self.cache_lookup(loc, conn, ctx, pools);
                }
                self.state = St::WaitIo;
                self.deadline_ms = ctx.now_ms + 5000;
                Some(Next::Wait)
            }
            LookupResult::Serve(found, stale) => {
                let server: &[u8] = if loc.server_tokens {
                    &ctx.server_full
                } else {
                    b"sluice"
                };
                let extra: Vec<(&[u8], &[u8])> = loc
                    .add_headers
                    .iter()
                    .filter(|h| h.always || found.meta().status < 400)
                    .map(|h| (h.name.as_bytes(), h.value.as_bytes()))
                    .collect();
                let keep_alive = self.client_keep_alive && !self.wants_body();
                let word = if stale {
                    CacheStatus::Stale
                } else {
                    CacheStatus::Hit
                };
                let params = cached::HitParams {
                    method: crate::http::request::at(
                        &self.req.head_bytes,
                        self.req.head.method_span,
                    ),
                    req_headers: &req_headers,
                    date: &ctx.date,
                    server,
                    keep_alive,
                    status_word: word.as_str().as_bytes(),
                    extra: &extra,
                    hide: &loc.proxy.hide_headers,
                    now,
                };
                let mark = conn.out().len();
                match cached::write_hit(&found, &params, conn.out()) {
                    Ok((status, bytes)) => {
                        self.cache_status = Some(word);
                        self.state = St::Done;
                        self.log(ctx, status, bytes);
                        conn.finish_proxy(keep_alive, ctx.now_ms);
                        Some(Next::Finished)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && self.io_tries < 2 => {
                        conn.out().truncate(mark);
                        self.io_tries += 1;
                        let path = found.path().to_path_buf();
                        if pools
                            .io
                            .as_ref()
                            .is_some_and(|io| io.submit(self.token.0, path))
                        {
                            self.state = St::WaitIo;
                            self.deadline_ms = ctx.now_ms + 5000;
                            return Some(Next::Wait);
                        }
                        self.cache_status = Some(CacheStatus::Miss);
                        None
                    }
                    Err(e) => {
                        conn.out().truncate(mark);
                        log::warn!("cache: reading an entry failed: {e}");
                        self.cache_status = Some(CacheStatus::Miss);
                        None
                    }
                }
            }
            LookupResult::Origin(status, meta, stale) => {
                self.cache_status = Some(status);
                self.cached_meta = meta;
                self.revalidating = loc.cache.revalidate
                    && self.req.head.method == Method::Get
                    && stale.as_ref().is_some_and(|e| {
                        e.meta().etag.is_some() || e.meta().last_modified.is_some()
                    });
                self.stale = stale;
                self.head_as_get = loc.cache.convert_head && self.req.head.method == Method::Head;
                if !loc.cache.lock || self.no_store {
                    return None;
                }
                let md5 = crate::cache::cache_key_md5(&self.cache_key);
                match cached::try_lock(zone, &md5, loc.cache.lock_age_ms) {
                    cached::LockTry::Acquired(p) => {
                        self.lock = Some(p);
                        self.state = St::Connecting;
                        None
                    }
                    cached::LockTry::Unavailable => {
                        self.state = St::Connecting;
                        None
                    }
                    cached::LockTry::Busy => {
                        // Someone else is filling: a stale copy may answer
                        // meanwhile (UPDATING), else wait for the fill.
                        if self.updating_allowed(loc, ctx)
                            && self.serve_stored(CacheStatus::Updating, None, conn, ctx)
                        {
                            let (status, bytes) = self.served.unwrap_or((200, 0));
                            self.log(ctx, status, bytes);
                            self.state = St::Done;
                            let keep_alive = self.client_keep_alive && !self.wants_body();
                            conn.finish_proxy(keep_alive, ctx.now_ms);
                            return Some(Next::Finished);
                        }
                        if self.lock_wait_until_ms == 0 {
                            self.lock_wait_until_ms = ctx.now_ms + loc.cache.lock_timeout_ms;
                        }
                        self.state = St::WaitLock;
                        self.deadline_ms = ctx.now_ms + LOCK_POLL_MS;
                        Some(Next::Wait)
                    }
                }
            }
            LookupResult::Unsatisfiable => {
                self.cache_status = Some(CacheStatus::Miss);
                Some(self.fail(conn, ctx, 504))
            }
        }
    }

    /// The request-building context for this request in `loc` (no
    /// keep-alive, no conditionals, the client's method); callers override
    /// fields with struct update syntax.
    fn req_ctx<'a>(
        &'a self,
        loc: &'a LocationConf,
        pass: &'a crate::config::ProxyPass,
    ) -> ReqCtx<'a> {
        let proxy_host = self
            .cfg
            .http
            .upstreams
            .get(pass.upstream)
            .map_or("", |u| u.name.as_str());
        ReqCtx {
            head_bytes: &self.req.head_bytes,
            head: &self.req.head,
            norm_path: &self.req.path,
            query: self.req.query.as_deref(),
            loc_path: &loc.path,
            pass,
            proxy_host,
            client: self.req.peer,
            set_headers: &loc.proxy.set_headers,
            http_minor: loc.proxy.http_version_minor,
            keepalive: false,
            conditional: &[],
            method: None,
        }
    }

    /// nginx's condition lists (`proxy_cache_bypass`, `proxy_no_cache`): true
    /// when any string expands to something other than empty or "0".
    fn any_condition(&self, loc: &LocationConf, list: &[String]) -> bool {
        list.iter().any(|v| {
            let mut out = Vec::new();
            if let Some(pass) = loc.proxy.pass.as_ref() {
                let c = self.req_ctx(loc, pass);
                upreq::expand_str(&c, v, &mut out);
            }
            !out.is_empty() && out != b"0"
        })
    }

    /// The evaluated `proxy_cache_key`, for the request or for another
    /// target of the same origin (`$request_uri` replaced by it).
    fn compute_key(&self, loc: &LocationConf, target: Option<&[u8]>) -> Option<Vec<u8>> {
        let pass = loc.proxy.pass.as_ref()?;
        let c = self.req_ctx(loc, pass);
        let template = match target {
            Some(t) => loc
                .cache
                .key
                .replace("$request_uri", &String::from_utf8_lossy(t)),
            None => loc.cache.key.clone(),
        };
        let mut key = Vec::with_capacity(128);
        upreq::expand_str(&c, &template, &mut key);
        Some(key)
    }

    /// `PURGE`: delete the entry (its primary file and this request's Vary
    /// variant) if the client is allowed. 200 purged, 404 absent, 403 refused.
    fn purge(
        &mut self,
        loc: &LocationConf,
        zone: &crate::config::CachePathConf,
        conn: &mut Conn,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
    ) -> Next {
        if !loc
            .cache
            .purge_allow
            .iter()
            .any(|a| a.contains(self.req.peer))
        {
            return self.fail(conn, ctx, 403);
        }
        let primary = crate::cache::cache_key_md5(&self.cache_key);
        let mut md5s = vec![primary];
        let path = crate::cache::entry_path(&zone.dir, &zone.levels, &primary);
        let req_headers = upreq::header_pairs(&self.req.head_bytes);
        if let Some(found) = cached::read_entry(&path, &self.cache_key) {
            if let Some(v) = crate::cache::policy::vary_mismatch(&found.meta, &req_headers) {
                md5s.push(v);
            }
        }
        let mut purged = 0;
        for md5 in md5s {
            pools.hot.forget(&md5);
            let p = crate::cache::entry_path(&zone.dir, &zone.levels, &md5);
            if p.exists() {
                purged += 1;
                // Removed here, not by the writer: other workers see the
                // epoch move only once the file is gone.
                let _ = crate::cache::store::remove_entry(&p);
            }
        }
        ctx.stats
            .retired()
            .cache_epoch
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let (code, body): (u16, &[u8]) = if purged > 0 {
            (200, b"{\"purged\":true}\n")
        } else {
            (404, b"{\"purged\":false}\n")
        };
        let keep_alive = self.client_keep_alive && !self.wants_body();
        crate::http::response::begin(
            conn.out(),
            &crate::http::response::HeadParams {
                status: code,
                date: &ctx.date,
                server: b"sluice",
                content_type: Some(b"application/json"),
                content_length: Some(body.len() as u64),
                keep_alive,
            },
        );
        crate::http::response::end(conn.out());
        conn.out().extend_from_slice(body);
        self.state = St::Done;
        self.log(ctx, code, body.len() as u64);
        conn.finish_proxy(keep_alive, ctx.now_ms);
        Next::Finished
    }

    /// After a successful unsafe request: drop the stored responses of its
    /// URI and of its same-origin Location / Content-Location (RFC 9111 §4.4).
    fn invalidate_targets(&mut self, pools: &mut Pools, ctx: &HttpCtx) {
        if self.invalidate.is_empty() {
            return;
        }
        let cfg = self.cfg.clone();
        let loc = location(&cfg, &self.req);
        let Some(zone) = cached::zone(&cfg.http.cache_paths, &loc.cache) else {
            return;
        };
        for t in std::mem::take(&mut self.invalidate) {
            let Some(key) = self.compute_key(loc, Some(&t)) else {
                continue;
            };
            let md5 = crate::cache::cache_key_md5(&key);
            pools.hot.forget(&md5);
            let p = crate::cache::entry_path(&zone.dir, &zone.levels, &md5);
            let _ = crate::cache::store::remove_entry(&p);
        }
        ctx.stats
            .retired()
            .cache_epoch
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// May a stale entry answer while another request refreshes it
    /// (`proxy_cache_use_stale updating`, or the response's
    /// `stale-while-revalidate` window)?
    fn updating_allowed(&self, loc: &LocationConf, ctx: &HttpCtx) -> bool {
        let Some(e) = &self.stale else {
            return false;
        };
        let req_headers = upreq::header_pairs(&self.req.head_bytes);
        let req_cc = crate::cache::control::CacheControl::from_request(&req_headers);
        match crate::cache::freshness::lookup_decision(
            e.meta(),
            &req_cc,
            ctx.unix_secs,
            &loc.cache.use_stale,
        ) {
            crate::cache::freshness::Lookup::Stale {
                can_serve_while_revalidate,
                ..
            } => can_serve_while_revalidate,
            _ => false,
        }
    }

    /// May the stored entry answer after the origin failed this way?
    fn stale_allowed(&self, failure: OriginFailure, ctx: &HttpCtx) -> bool {
        let Some(e) = &self.stale else {
            return false;
        };
        let req_headers = upreq::header_pairs(&self.req.head_bytes);
        let req_cc = crate::cache::control::CacheControl::from_request(&req_headers);
        crate::cache::freshness::may_serve_stale_on(
            e.meta(),
            &req_cc,
            ctx.unix_secs,
            &self.loc().cache.use_stale,
            failure,
        )
    }

    /// Answer from the stored entry (with `meta` instead of its own header
    /// after a 304 merge). False when the entry could not be read.
    fn serve_stored(
        &mut self,
        word: CacheStatus,
        meta: Option<&EntryMeta>,
        conn: &mut Conn,
        ctx: &HttpCtx,
    ) -> bool {
        let Some(entry) = &self.stale else {
            return false;
        };
        let cfg = self.cfg.clone();
        let loc = location(&cfg, &self.req);
        let meta = meta.unwrap_or(entry.meta());
        let server: &[u8] = if loc.server_tokens {
            &ctx.server_full
        } else {
            b"sluice"
        };
        let extra: Vec<(&[u8], &[u8])> = loc
            .add_headers
            .iter()
            .filter(|h| h.always || meta.status < 400)
            .map(|h| (h.name.as_bytes(), h.value.as_bytes()))
            .collect();
        let req_headers = upreq::header_pairs(&self.req.head_bytes);
        let keep_alive = self.client_keep_alive && !self.wants_body();
        let params = cached::HitParams {
            method: crate::http::request::at(&self.req.head_bytes, self.req.head.method_span),
            req_headers: &req_headers,
            date: &ctx.date,
            server,
            keep_alive,
            status_word: word.as_str().as_bytes(),
            extra: &extra,
            hide: &loc.proxy.hide_headers,
            now: ctx.unix_secs,
        };
        let mark = conn.out().len();
        match cached::write_hit_with(meta, entry, &params, conn.out()) {
            Ok(served) => {
                self.served = Some(served);
                self.cache_status = Some(word);
                true
            }
            Err(e) => {
                conn.out().truncate(mark);
                log::warn!("cache: reading a stored entry failed: {e}");
                false
            }
        }
    }

    /// A 304 answered our revalidation: merge it into the stored entry,
    /// update the file, answer from the cache (REVALIDATED). False when the
    /// 304 does not match the stored response.
    fn revalidated(
        &mut self,
        up: &UpHead,
        pools: &mut Pools,
        conn: &mut Conn,
        ctx: &HttpCtx,
    ) -> bool {
        let Some(entry) = &self.stale else {
            return false;
        };
        let h304 = upresp::header_pairs(&self.resp[..up.len]);
        let req_headers = upreq::header_pairs(&self.req.head_bytes);
        let store_cfg = crate::cache::StoreConfig::from_location(&self.loc().cache);
        let waited_s = (ctx.now_ms.saturating_sub(self.started_ms) / 1000) as i64;
        let Some(merged) = crate::cache::revalidate::merge_304(
            entry.meta(),
            &req_headers,
            &h304,
            &store_cfg,
            ctx.unix_secs - waited_s,
            ctx.unix_secs,
        ) else {
            return false;
        };
        let path = entry.path().to_path_buf();
        match merged.action {
            crate::cache::revalidate::MergeAction::Rewrite => {
                pools.hot.replace_meta(&path, &merged.meta);
                if let Some(w) = pools.cache.as_ref() {
                    w.rewrite(path, merged.meta.clone());
                }
            }
            crate::cache::revalidate::MergeAction::Remove(_) => {
                let _ = crate::cache::store::remove_entry(&path);
            }
            crate::cache::revalidate::MergeAction::Leave => {}
        }
        self.serve_stored(CacheStatus::Revalidated, Some(&merged.meta), conn, ctx)
    }

    /// After the upstream head: start storing the response if it may be stored.
    fn begin_fill(&mut self, up: &UpHead, pools: &mut Pools, ctx: &HttpCtx) {
        let fillable = matches!(
            self.cache_status,
            Some(CacheStatus::Miss) | Some(CacheStatus::Expired)
        ) || self.bypassed;
        if !fillable || !(self.req.head.method == Method::Get || self.head_as_get) {
            return;
        }
        let cfg = self.cfg.clone();
        let loc = location(&cfg, &self.req);
        let Some(zone) = cached::zone(&self.cfg.http.cache_paths, &loc.cache) else {
            return;
        };
        let Some(writer) = pools.cache.as_mut() else {
            return;
        };
        let resp_headers = upresp::header_pairs(&self.resp[..up.len]);
        let req_headers = upreq::header_pairs(&self.req.head_bytes);
        let cfg = crate::cache::StoreConfig::from_location(&loc.cache);
        let waited_s = (ctx.now_ms.saturating_sub(self.started_ms) / 1000) as i64;
        let request_time = ctx.unix_secs - waited_s;
        let response_time = ctx.unix_secs;
        let decision = crate::cache::policy::storable(
            b"GET",
            &req_headers,
            up.status,
            &resp_headers,
            &cfg,
            request_time,
            response_time,
        );
        let crate::cache::Storable::Yes(d) = decision else {
            return;
        };
        let meta = crate::cache::policy::build_meta(
            &self.cache_key,
            &req_headers,
            up.status,
            &resp_headers,
            &d,
            request_time,
            response_time,
        );
        let primary = crate::cache::cache_key_md5(&self.cache_key);
        let md5 = crate::cache::policy::store_md5(primary, &meta, self.cached_meta.as_deref());
        let path = crate::cache::entry_path(&zone.dir, &zone.levels, &md5);
        // The entry held in memory is about to be replaced.
        pools.hot.forget(&md5);
        let expected = match up.framing {
            UpFraming::Length(n) => Some(n),
            _ => None,
        };
        self.fill = writer.begin(zone.dir.clone(), meta, expected, path, self.lock.take());
        if self.fill.is_none() {
            self.release_lock();
        }
    }

    /// Tee body bytes into the fill; a full writer queue abandons it.
    fn fill_data(fill: &mut Option<u64>, pools: &Pools, bytes: &[u8]) {
        if let (Some(id), Some(w)) = (*fill, pools.cache.as_ref()) {
            if !bytes.is_empty() && !w.data(id, bytes) {
                w.abort(id);
                *fill = None;
            }
        }
    }

    fn release_lock(&mut self) {
        if let Some(l) = self.lock.take() {
            let _ = std::fs::remove_file(l);
        }
    }

    fn end_fill(&mut self, pools: &Pools, commit: bool) {
        self.release_lock();
        if let (Some(id), Some(w)) = (self.fill.take(), pools.cache.as_ref()) {
            if commit {
                w.commit(id);
            } else {
                w.abort(id);
            }
        }
    }

    fn build_request(&mut self, loc: &LocationConf, keepalive: bool) {
        let Some(pass) = loc.proxy.pass.as_ref() else {
            return;
        };
        let conditional = match (&self.stale, self.revalidating) {
            (Some(e), true) => crate::cache::revalidate::revalidation_headers(e.meta()),
            _ => Vec::new(),
        };
        let mut q = std::mem::take(&mut self.sendq);
        q.clear();
        let c = ReqCtx {
            keepalive,
            conditional: &conditional,
            method: self.head_as_get.then_some(&b"GET"[..]),
            ..self.req_ctx(loc, pass)
        };
        upreq::build(&c, &mut q);
        self.sendq = q;
        self.sendq_pos = 0;
    }

    /// Drive the session after readiness on either socket.
    pub fn pump(
        &mut self,
        conn: &mut Conn,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
        reg: &Registry,
    ) -> Next {
        if self.state == St::Done {
            return Next::Finished;
        }
        if self.state == St::WaitLock {
            return Next::Wait;
        }
        if self.state == St::WaitIo {
            if !self.io_done {
                return Next::Wait;
            }
            self.io_done = false;
            return self.look_again(conn, ctx, pools, reg);
        }
        if self.state == St::Connecting {
            let Some(sock) = &self.sock else {
                return self.retry(conn, ctx, pools, reg, 502);
            };
            if let Ok(Some(e)) | Err(e) = sock.take_error() {
                log::error!("connect() to upstream failed: {e}");
                return self.retry(conn, ctx, pools, reg, 502);
            }
            match sock.peer_addr() {
                Ok(_) => {
                    self.state = St::Active;
                    self.deadline_ms = ctx.now_ms + self.loc().proxy.send_timeout_ms;
                }
                Err(e) if e.kind() == ErrorKind::NotConnected => return Next::Wait,
                Err(_) => return self.retry(conn, ctx, pools, reg, 502),
            }
        }
        loop {
            let mut progress = false;
            // Client body -> send queue, reading the client as needed.
            progress |= self.take_body(conn);
            if self.wants_body()
                && conn.body_bytes().is_empty()
                && self.sendq.len() - self.sendq_pos < SEND_BUF
            {
                match conn.read_body() {
                    Ok(true) => progress = true,
                    Ok(false) => {}
                    Err(()) => return self.abort(pools),
                }
            }
            // Send queue -> upstream.
            match self.send() {
                Ok(p) => progress |= p,
                Err(()) => return self.retry(conn, ctx, pools, reg, 502),
            }
            // Upstream -> client (only while the client keeps up).
            if conn.out_pending() < HIGH_WATER && !self.up_eof {
                match self.receive(ctx) {
                    Ok(p) => progress |= p,
                    Err(()) => return self.retry(conn, ctx, pools, reg, 502),
                }
            }
            match self.process_response(conn, ctx, pools) {
                Ok(true) => progress = true,
                Ok(false) => {}
                Err(code) => return self.retry(conn, ctx, pools, reg, code),
            }
            match conn.flush_out() {
                Ok(_) => {}
                Err(()) => return self.abort(pools),
            }
            if self.state == St::Done {
                return self.finish(conn, ctx, pools, reg);
            }
            if !progress {
                break;
            }
        }
        conn.want_body = self.wants_body() && self.sendq.len() - self.sendq_pos < SEND_BUF;
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

    fn wants_body(&self) -> bool {
        match &self.body {
            ReqBody::None => false,
            ReqBody::Length(n) => *n > 0,
            ReqBody::Chunked(d) => !d.is_done(),
        }
    }

    /// Move request-body bytes from the client buffer to the send queue.
    fn take_body(&mut self, conn: &mut Conn) -> bool {
        if self.sendq.len() - self.sendq_pos >= SEND_BUF || !self.wants_body() {
            return false;
        }
        if !self.continue_sent && self.req.head.expect_continue && conn.body_bytes().is_empty() {
            conn.out()
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            self.continue_sent = true;
        }
        let avail = conn.body_bytes();
        if avail.is_empty() {
            return false;
        }
        let room = SEND_BUF - (self.sendq.len() - self.sendq_pos);
        let used = match &mut self.body {
            ReqBody::None => 0,
            ReqBody::Length(left) => {
                let n = (*left as usize).min(avail.len()).min(room);
                self.sendq.extend_from_slice(&avail[..n]);
                *left -= n as u64;
                n
            }
            ReqBody::Chunked(dec) => {
                let take = avail.len().min(room);
                match dec.feed(&avail[..take], &mut |_| {}) {
                    Ok((n, _)) => {
                        self.sendq.extend_from_slice(&avail[..n]);
                        n
                    }
                    Err(_) => {
                        // Broken framing: nothing sensible can follow.
                        self.body = ReqBody::None;
                        0
                    }
                }
            }
        };
        conn.consume(used);
        used > 0
    }

    fn send(&mut self) -> Result<bool, ()> {
        let Some(sock) = &mut self.sock else {
            return Ok(false);
        };
        let mut progress = false;
        while self.sendq_pos < self.sendq.len() {
            match sock.write(&self.sendq[self.sendq_pos..]) {
                Ok(0) => return Err(()),
                Ok(n) => {
                    self.sendq_pos += n;
                    progress = true;
                    if !matches!(self.body, ReqBody::None)
                        || self.req.head.body != BodyFraming::None
                    {
                        self.body_sent = true;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
        if self.sendq_pos == self.sendq.len() {
            self.sendq.clear();
            self.sendq_pos = 0;
        }
        Ok(progress)
    }

    fn receive(&mut self, _ctx: &mut HttpCtx) -> Result<bool, ()> {
        let Some(sock) = &mut self.sock else {
            return Ok(false);
        };
        let start = self.resp.len();
        self.resp.resize(start + READ_CHUNK, 0);
        let r = loop {
            match sock.read(&mut self.resp[start..]) {
                Ok(0) => {
                    self.up_eof = true;
                    break Ok(0);
                }
                Ok(n) => break Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(0),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break Err(()),
            }
        };
        match r {
            Ok(n) => {
                self.resp.truncate(start + n);
                Ok(n > 0 || self.up_eof)
            }
            Err(()) => {
                self.resp.truncate(start);
                // A reset after a complete close-delimited body still ends it.
                if self.head.is_some() {
                    self.up_eof = true;
                    Ok(true)
                } else {
                    Err(())
                }
            }
        }
    }

    /// Parse the head / move body bytes to the client. Err(status) when the
    /// upstream failed before the client saw anything.
    fn process_response(
        &mut self,
        conn: &mut Conn,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
    ) -> Result<bool, u16> {
        let mut progress = false;
        if self.head.is_none() {
            if self.resp.is_empty() {
                return if self.up_eof { Err(502) } else { Ok(false) };
            }
            let head_req = self.req.head.method == Method::Head && !self.head_as_get;
            let minor = self.loc().proxy.http_version_minor;
            let up = match upresp::parse_head(&self.resp, head_req, minor) {
                Ok(Some(h)) => h,
                Ok(None) => return if self.up_eof { Err(502) } else { Ok(false) },
                Err(_) => {
                    log::error!("upstream sent an invalid response head");
                    return Err(INVALID_HEADER);
                }
            };
            if (100..200).contains(&up.status) {
                // Interim responses are not relayed (101 is not supported).
                if up.status == 101 {
                    return Err(INVALID_HEADER);
                }
                self.resp.drain(..up.len);
                return Ok(true);
            }
            if self.loc().proxy.next_upstream.retries_status(up.status)
                && self.can_retry()
                && self.more_peers
            {
                return Err(up.status);
            }
            let cfg = self.cfg.clone();
            let loc = location(&cfg, &self.req);
            let server: &[u8] = if loc.server_tokens {
                &ctx.server_full
            } else {
                b"sluice"
            };
            if self.revalidating && up.status == 304 && self.revalidated(&up, pools, conn, ctx) {
                self.resp.drain(..up.len);
                self.head = Some(up);
                self.state = St::Done;
                return Ok(true);
            }
            if (500..=504).contains(&up.status)
                && self.stale_allowed(OriginFailure::Status(up.status), ctx)
                && self.serve_stored(CacheStatus::Stale, None, conn, ctx)
            {
                self.head = Some(up);
                self.state = St::Done;
                return Ok(true);
            }
            if !self.no_store {
                self.begin_fill(&up, pools, ctx);
            }
            // Not stored after all (or the writer took the lock): free it.
            self.release_lock();
            let method = crate::http::request::at(&self.req.head_bytes, self.req.head.method_span);
            if self.cache_status == Some(CacheStatus::Bypass)
                && crate::cache::revalidate::invalidates(method, up.status)
            {
                let resp_headers = upresp::header_pairs(&self.resp[..up.len]);
                let host = self.req.host.as_deref().unwrap_or(b"");
                let target = crate::http::request::at(&self.req.head_bytes, self.req.head.target);
                self.invalidate = crate::cache::revalidate::invalidation_targets(
                    b"http",
                    host,
                    target,
                    &resp_headers,
                );
            }
            let mut extra: Vec<(&[u8], &[u8])> = loc
                .add_headers
                .iter()
                .filter(|h| h.always || up.status < 400)
                .map(|h| (h.name.as_bytes(), h.value.as_bytes()))
                .collect();
            if let Some(cs) = self.cache_status {
                extra.push((b"X-Cache-Status", cs.as_str().as_bytes()));
            }
            let (framing, keep_alive) = upresp::write_client_head(
                &self.resp,
                &up,
                &ClientHeadParams {
                    date: &ctx.date,
                    server,
                    keep_alive: self.client_keep_alive && !self.wants_body(),
                    client_http11: self.req.head.version_minor == 1,
                    head_only: self.head_as_get,
                    hide: &loc.proxy.hide_headers,
                    extra: &extra,
                },
                conn.out(),
            );
            self.client_keep_alive = keep_alive;
            self.framing = framing;
            self.up_left = match up.framing {
                UpFraming::Length(n) => n,
                _ => 0,
            };
            self.resp.drain(..up.len);
            self.head = Some(up);
            progress = true;
            if matches!(up.framing, UpFraming::None | UpFraming::Length(0)) {
                self.state = St::Done;
                return Ok(true);
            }
        }
        let Some(up) = self.head else {
            return Ok(progress);
        };
        if self.resp.is_empty() && !self.up_eof {
            return Ok(progress);
        }
        let out = conn.out();
        match up.framing {
            UpFraming::None => self.state = St::Done,
            UpFraming::Length(_) => {
                let n = (self.up_left as usize).min(self.resp.len());
                if self.framing != ClientFraming::None {
                    out.extend_from_slice(&self.resp[..n]);
                }
                Self::fill_data(&mut self.fill, pools, &self.resp[..n]);
                self.body_bytes += n as u64;
                self.up_left -= n as u64;
                self.resp.drain(..n);
                if self.up_left == 0 {
                    self.state = St::Done;
                } else if self.up_eof {
                    return Err(BROKEN); // truncated upstream body
                }
                progress |= n > 0;
            }
            UpFraming::Chunked => {
                let framing = self.framing;
                let mut body = 0u64;
                let fill = &mut self.fill;
                let res = self.dec.feed(&self.resp, &mut |d| {
                    if framing == ClientFraming::Close {
                        out.extend_from_slice(d);
                    }
                    Self::fill_data(fill, pools, d);
                    body += d.len() as u64;
                });
                match res {
                    Ok((used, done)) => {
                        if framing == ClientFraming::PassChunked {
                            out.extend_from_slice(&self.resp[..used]);
                        }
                        self.body_bytes += body;
                        self.resp.drain(..used);
                        progress |= used > 0;
                        if done {
                            self.state = St::Done;
                        } else if self.up_eof {
                            return Err(BROKEN);
                        }
                    }
                    Err(_) => return Err(BROKEN),
                }
            }
            UpFraming::Close => {
                if !self.resp.is_empty() {
                    if self.framing == ClientFraming::Encode {
                        let mut hex = Vec::with_capacity(18);
                        let _ = write!(hex, "{:x}\r\n", self.resp.len());
                        out.extend_from_slice(&hex);
                        out.extend_from_slice(&self.resp);
                        out.extend_from_slice(b"\r\n");
                    } else if self.framing != ClientFraming::None {
                        out.extend_from_slice(&self.resp);
                    }
                    Self::fill_data(&mut self.fill, pools, &self.resp);
                    self.body_bytes += self.resp.len() as u64;
                    self.resp.clear();
                    progress = true;
                }
                if self.up_eof {
                    if self.framing == ClientFraming::Encode {
                        out.extend_from_slice(b"0\r\n\r\n");
                    }
                    self.state = St::Done;
                }
            }
        }
        Ok(progress)
    }

    fn can_retry(&self) -> bool {
        let nu = &self.loc().proxy.next_upstream;
        let idempotent = matches!(
            self.req.head.method,
            Method::Get | Method::Head | Method::Options | Method::Put | Method::Delete
        );
        (idempotent || nu.non_idempotent) && !self.body_sent
    }

    /// An attempt failed: `code` is 502 (connection error), 504 (timeout),
    /// `INVALID_HEADER`, `BROKEN` (after the client got the head) or a
    /// status listed in `proxy_next_upstream`.
    fn retry(
        &mut self,
        conn: &mut Conn,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
        reg: &Registry,
        code: u16,
    ) -> Next {
        self.end_fill(pools, false);
        let reused = self.reused;
        let head_relayed = self.head.is_some();
        self.drop_upstream(reg);
        if head_relayed || code == BROKEN {
            // The client already has part of the response: cut it.
            return self.abort(pools);
        }
        let nu = self.loc().proxy.next_upstream;
        // A kept-alive connection the upstream closed meanwhile is not the
        // server's fault: try again on a fresh connection.
        let stale = reused && code == 502 && !self.body_sent;
        let counts = match code {
            502 => nu.error,
            504 => nu.timeout,
            INVALID_HEADER => nu.invalid_header,
            _ => true,
        };
        if stale {
            self.tries = self.tries.saturating_sub(1);
            self.tried &= !(1u64.checked_shl(self.peer as u32).unwrap_or(0));
        } else if counts {
            if let Some(p) = pools.pools.get_mut(self.pool) {
                p.failed(self.peer, ctx.now_ms);
            }
        }
        self.resp.clear();
        self.head = None;
        self.last_code = if code == 504 { 504 } else { 502 };
        if stale || (counts && self.can_retry()) {
            self.state = St::Connecting;
            return match self.start(conn, ctx, pools, reg) {
                Next::Wait => self.pump(conn, ctx, pools, reg),
                other => other,
            };
        }
        self.fail(conn, ctx, if code == 504 { 504 } else { 502 })
    }

    /// The I/O pool finished this session's read.
    pub fn io_finished(&mut self) {
        self.io_done = true;
    }

    /// Run the cache lookup again (after an I/O wait).
    fn look_again(
        &mut self,
        conn: &mut Conn,
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
        conn: &mut Conn,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
        reg: &Registry,
    ) -> Next {
        if self.deadline_ms > ctx.now_ms {
            return Next::Wait;
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
            }
            return match self.start(conn, ctx, pools, reg) {
                Next::Wait if self.state != St::WaitLock => self.pump(conn, ctx, pools, reg),
                other => other,
            };
        }
        if conn.out_pending() >= HIGH_WATER || self.head.is_some() {
            log::info!("proxy: timeout while relaying the response");
            self.drop_upstream(reg);
            return self.abort(pools);
        }
        log::error!(
            "upstream timed out ({})",
            if self.state == St::Connecting {
                "connect"
            } else {
                "read"
            }
        );
        self.retry(conn, ctx, pools, reg, 504)
    }

    /// Answer the client with an error status and finish.
    fn fail(&mut self, conn: &mut Conn, ctx: &mut HttpCtx, code: u16) -> Next {
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
        handler::simple_error(ctx, code, keep_alive, conn.out());
        self.log(ctx, code, crate::http::response::error_page_len(code));
        self.state = St::Done;
        conn.finish_proxy(keep_alive, ctx.now_ms);
        Next::Finished
    }

    fn finish(
        &mut self,
        conn: &mut Conn,
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
        if let Some(mut s) = self.sock.take() {
            let _ = reg.deregister(&mut s);
            let kept = reusable
                && pools
                    .pools
                    .get_mut(self.pool)
                    .is_some_and(|p| p.put_idle(self.peer, s));
            let _ = kept;
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

    fn log(&self, ctx: &mut HttpCtx, status: u16, bytes: u64) {
        let elapsed_us = ctx.now_ms.saturating_sub(self.started_ms) * 1000;
        let logs = self.loc().access_logs.clone();
        handler::log_access(
            ctx,
            &logs,
            self.req.peer,
            &self.req.head_bytes,
            &self.req.head,
            self.req.host.as_deref(),
            status,
            bytes,
            elapsed_us,
        );
    }

    fn drop_upstream(&mut self, reg: &Registry) {
        if let Some(mut s) = self.sock.take() {
            let _ = reg.deregister(&mut s);
        }
        self.up_eof = false;
        self.state = St::Connecting;
    }

    fn abort(&mut self, pools: &mut Pools) -> Next {
        self.end_fill(pools, false);
        self.sock = None;
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
