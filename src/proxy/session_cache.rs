//! The cache side of a proxied request (a child of `session`, so it sees
//! the session's fields): lookups and hits, PURGE, invalidation after unsafe
//! requests, stale answers, 304 revalidation, fills and the fill lock.

use super::*;

use crate::config::Template;
use crate::http::header_filter;
use crate::http::vars::{ReqVars, RespVars};

impl Session {
    /// Answer from the cache when a usable entry exists; `None` = go upstream.
    pub(super) fn cache_lookup(
        &mut self,
        loc: &LocationConf,
        conn: &mut dyn Client,
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
        self.no_store |= self.any_condition(&loc.cache.no_cache);
        if !matches!(self.req.head.method, Method::Get | Method::Head) {
            self.cache_status = Some(CacheStatus::Bypass);
            return None;
        }
        if self.any_condition(&loc.cache.bypass) {
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
            LookupResult::Pending(path, md5) => {
                // The entry is not in memory: an I/O thread looks it up
                // (stat, open, read); the worker wakes us to look again.
                self.io_tries += 1;
                let job = self.io_job(path, md5, &pools.hot);
                let queued = pools.io.as_ref().is_some_and(|io| io.submit(job));
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
                // Filled meanwhile (looked again under the lock): answer it.
                self.lock = None;
                let word = if stale {
                    CacheStatus::Stale
                } else {
                    CacheStatus::Hit
                };
                let keep_alive = self.client_keep_alive && !self.wants_body();
                let hit = self.write_hit(loc, found.meta(), &found, word, &req_headers, conn, ctx);
                match hit {
                    Ok((status, bytes, head_len)) => {
                        self.head_sent = head_len;
                        self.cache_status = Some(word);
                        self.state = St::Done;
                        self.log(ctx, status, bytes);
                        conn.finish_proxy(keep_alive, ctx.now_ms);
                        Some(Next::Finished)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && self.io_tries < 2 => {
                        self.io_tries += 1;
                        let path = found.path().to_path_buf();
                        let md5 = path
                            .file_name()
                            .and_then(|n| crate::cache::key::from_hex(n.as_encoded_bytes()))
                            .unwrap_or_else(|| crate::cache::cache_key_md5(&self.cache_key));
                        let job = self.io_job(path, md5, &pools.hot);
                        if pools.io.as_ref().is_some_and(|io| io.submit(job)) {
                            self.state = St::WaitIo;
                            self.deadline_ms = ctx.now_ms + 5000;
                            return Some(Next::Wait);
                        }
                        self.cache_status = Some(CacheStatus::Miss);
                        None
                    }
                    Err(e) => {
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
                if self.lock.is_some() {
                    // Looked again under the fill lock: still ours to fill.
                    self.state = St::Connecting;
                    return None;
                }
                if loc.cache.background_update
                    && status == CacheStatus::Expired
                    && !self.no_store
                    && matches!(self.req.head.method, Method::Get | Method::Head)
                    && self.updating_allowed(loc, ctx)
                {
                    if let Some(next) = self.serve_and_refresh(zone, loc, conn, ctx, pools) {
                        return Some(next);
                    }
                }
                let md5 = crate::cache::cache_key_md5(&self.cache_key);
                if status == CacheStatus::Miss && !self.uses_counted && !self.no_store {
                    // proxy_cache_min_uses: counted once per request, in
                    // shared memory, so every worker's requests add up.
                    self.uses_counted = true;
                    self.no_store = !cached::used_enough(
                        ctx.stats.key_uses(),
                        zone,
                        &md5,
                        loc.cache.min_uses,
                        ctx.unix_secs,
                    );
                }
                if !loc.cache.lock || self.no_store {
                    return None;
                }
                match cached::try_lock(ctx.stats.fill_locks(), zone, &md5, loc.cache.lock_age_ms) {
                    cached::LockTry::Acquired(p) => {
                        // What this worker saw of the key (its memory of an
                        // absent file, or an I/O-pool stat) may predate a
                        // fill that published and freed the lock just now:
                        // look at the disk once more, holding the lock.
                        self.lock = Some(p);
                        pools.hot.forget(&md5);
                        self.io_tries = 0;
                        self.cache_lookup(loc, conn, ctx, pools)
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
                self.release_lock();
                self.cache_status = Some(CacheStatus::Miss);
                Some(self.fail(conn, ctx, 504))
            }
        }
    }

    /// Answer this request from the stored response `entry` (with `meta`,
    /// its own or a 304-merged one): the hit's head, the header filter on
    /// it (`word` is `$upstream_cache_status`), serialized once, then the
    /// body. Returns (status, body bytes, head bytes); on an error nothing
    /// stays queued.
    #[allow(clippy::too_many_arguments)]
    fn write_hit(
        &self,
        loc: &LocationConf,
        meta: &EntryMeta,
        entry: &cached::Entry,
        word: CacheStatus,
        req_headers: &[(&[u8], &[u8])],
        conn: &mut dyn Client,
        ctx: &HttpCtx,
    ) -> std::io::Result<(u16, u64, u64)> {
        let params = cached::HitParams {
            method: crate::http::request::at(&self.req.head_bytes, self.req.head.method_span),
            req_headers,
            keep_alive: self.client_keep_alive && !self.wants_body(),
            status_word: word.as_str().as_bytes(),
            hide: &loc.proxy.hide_headers,
            now: ctx.unix_secs,
        };
        let sink = conn.sink();
        let with_body = cached::hit_head(meta, &params, sink.head);
        let status = sink.head.status;
        let resp = RespVars {
            status,
            cache_status: Some(word.as_str()),
            ..RespVars::default()
        };
        self.filter_head(loc, ctx, &resp, sink.head);
        let mark = sink.out.len();
        sink.head
            .write_h1(ctx.server_header(loc), &ctx.date, sink.out);
        let head_len = (sink.out.len() - mark) as u64;
        if !with_body {
            return Ok((status, 0, head_len));
        }
        if let Err(e) = cached::write_hit_body(entry, sink.out) {
            sink.out.truncate(mark);
            return Err(e);
        }
        Ok((status, meta.body_len, head_len))
    }

    /// The header filter (`add_header`, the waiting room's cookie) on a
    /// proxied or cached response head described by `resp`.
    pub(super) fn filter_head(
        &self,
        loc: &LocationConf,
        ctx: &HttpCtx,
        resp: &RespVars<'_>,
        head: &mut ReplyHead,
    ) {
        let vars = self.req_vars(ctx.now_unix_ms());
        header_filter::apply(loc, &vars, resp, head);
    }

    /// This request's variables (`now_unix_ms` for the time ones).
    pub(super) fn req_vars(&self, now_unix_ms: u64) -> ReqVars<'_> {
        let r = &self.req;
        let loc = location(&self.cfg, r);
        let proxy_host = loc
            .proxy
            .pass
            .as_ref()
            .and_then(|p| self.cfg.http.upstreams.get(p.upstream))
            .map_or(self.dyn_authority.as_str(), |u| u.name.as_str());
        let server_name = self.cfg.http.servers[r.server]
            .server_names
            .first()
            .map_or("", String::as_str);
        ReqVars {
            head_bytes: &r.head_bytes,
            head: &r.head,
            target: crate::http::request::at(&r.head_bytes, r.head.target),
            path: &r.path,
            query: r.query.as_deref(),
            host: r.host.as_deref(),
            conn: r.conn,
            server_name,
            proxy_host,
            started_unix_ms: r.started_unix_ms,
            now_unix_ms,
            set_cookie: &r.set_cookie,
            tls: r.tls.as_ref(),
            captures: &r.captures,
            maps: &self.cfg.http.maps,
            auth_vars: &r.auth_vars,
            script: &r.script,
            loc: Some(loc),
        }
    }

    /// The request-building context for `vars` in `loc` (no keep-alive, no
    /// conditionals, the client's method); callers override fields with
    /// struct update syntax.
    pub(super) fn req_ctx<'a>(
        &'a self,
        vars: &'a ReqVars<'a>,
        loc: &'a LocationConf,
        pass: &'a crate::config::ProxyPass,
    ) -> ReqCtx<'a> {
        ReqCtx {
            vars,
            loc_path: &loc.path,
            pass,
            set_headers: &loc.proxy.set_headers,
            http_minor: loc.proxy.http_version_minor,
            keepalive: false,
            conditional: &[],
            method: None,
            body: self.req.head.body,
            uri: self.dyn_uri.as_deref(),
        }
    }

    /// nginx's condition lists (`proxy_cache_bypass`, `proxy_no_cache`): true
    /// when any string evaluates to something other than empty or "0".
    pub(super) fn any_condition(&self, list: &[Template]) -> bool {
        let vars = self.req_vars(self.req.started_unix_ms);
        let mut scratch = Vec::new();
        list.iter()
            .any(|t| crate::http::vars::is_true(t, &vars, &mut scratch))
    }

    /// The evaluated `proxy_cache_key`, for the request or for another
    /// target of the same origin (its `$request_uri` is that target).
    pub(super) fn compute_key(&self, loc: &LocationConf, target: Option<&[u8]>) -> Option<Vec<u8>> {
        loc.proxy.pass.as_ref()?;
        let mut vars = self.req_vars(self.req.started_unix_ms);
        if let Some(t) = target {
            vars.target = t;
        }
        let mut key = Vec::with_capacity(128);
        crate::http::vars::eval(&loc.cache.key, &vars, &RespVars::default(), &mut key);
        Some(key)
    }

    /// `PURGE`: delete the entry (its primary file and this request's Vary
    /// variant) if the client is allowed. 200 purged, 404 absent, 403 refused.
    pub(super) fn purge(
        &mut self,
        loc: &LocationConf,
        zone: &crate::config::CachePathConf,
        conn: &mut dyn Client,
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
        let mut sink = conn.sink();
        let framing = crate::proto::reply::Framing::Length(body.len() as u64);
        sink.start(code, framing, keep_alive)
            .push(b"Content-Type", b"application/json");
        let mark = sink.out.len();
        sink.send_unfiltered(ctx);
        self.head_sent = (sink.out.len() - mark) as u64;
        sink.out.extend_from_slice(body);
        self.state = St::Done;
        self.log(ctx, code, body.len() as u64);
        conn.finish_proxy(keep_alive, ctx.now_ms);
        Next::Finished
    }

    /// After a successful unsafe request: drop the stored responses of its
    /// URI and of its same-origin Location / Content-Location (RFC 9111 §4.4).
    pub(super) fn invalidate_targets(&mut self, pools: &mut Pools, ctx: &HttpCtx) {
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

    fn io_job(
        &self,
        path: std::path::PathBuf,
        md5: [u8; 16],
        hot: &cached::Hot,
    ) -> crate::cache::io::IoJob {
        crate::cache::io::IoJob {
            token: self.token.0,
            path,
            md5,
            key: self.cache_key.clone(),
            seq: hot.stored_seq(&md5),
        }
    }

    /// `proxy_cache_background_update`: answer with the stale copy now
    /// (UPDATING) and refresh the entry from a background request that holds
    /// the key's fill lock (only one refresh per key at a time). `None` when
    /// the stale copy could not be sent.
    pub(super) fn serve_and_refresh(
        &mut self,
        zone: &crate::config::CachePathConf,
        loc: &LocationConf,
        conn: &mut dyn Client,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
    ) -> Option<Next> {
        let md5 = crate::cache::cache_key_md5(&self.cache_key);
        let lock = match cached::try_lock(ctx.stats.fill_locks(), zone, &md5, loc.cache.lock_age_ms)
        {
            // A refresh that published just before the lock was free
            // (since this copy was read) needs no second one.
            cached::LockTry::Acquired(_)
                if self
                    .stale
                    .as_ref()
                    .is_some_and(|e| e.superseded(&pools.hot)) =>
            {
                None
            }
            cached::LockTry::Acquired(l) => Some(l),
            cached::LockTry::Busy => None, // a refresh is under way already
        };
        if !self.serve_stored(CacheStatus::Updating, None, conn, ctx) {
            return None; // (the lock, if taken, is freed as it drops)
        }
        if let Some(lock) = lock {
            let mut req = (*self.req).clone();
            req.keep_alive = false;
            req.bytes_slots.clear();
            pools.spawn.push((Box::new(req), lock));
        }
        let (status, bytes) = self.served.unwrap_or((200, 0));
        self.log(ctx, status, bytes);
        self.state = St::Done;
        let keep_alive = self.client_keep_alive && !self.wants_body();
        conn.finish_proxy(keep_alive, ctx.now_ms);
        Some(Next::Finished)
    }

    /// May a stale entry answer while another request refreshes it
    /// (`proxy_cache_use_stale updating`, or the response's
    /// `stale-while-revalidate` window)?
    pub(super) fn updating_allowed(&self, loc: &LocationConf, ctx: &HttpCtx) -> bool {
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
    pub(super) fn stale_allowed(&self, failure: OriginFailure, ctx: &HttpCtx) -> bool {
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
    pub(super) fn serve_stored(
        &mut self,
        word: CacheStatus,
        meta: Option<&EntryMeta>,
        conn: &mut dyn Client,
        ctx: &HttpCtx,
    ) -> bool {
        let Some(entry) = &self.stale else {
            return false;
        };
        let cfg = self.cfg.clone();
        let loc = location(&cfg, &self.req);
        let meta = meta.unwrap_or(entry.meta());
        let req_headers = upreq::header_pairs(&self.req.head_bytes);
        match self.write_hit(loc, meta, entry, word, &req_headers, conn, ctx) {
            Ok((status, bytes, head_len)) => {
                self.head_sent = head_len;
                self.served = Some((status, bytes));
                self.cache_status = Some(word);
                true
            }
            Err(e) => {
                log::warn!("cache: reading a stored entry failed: {e}");
                false
            }
        }
    }

    /// A 304 answered our revalidation: merge it into the stored entry,
    /// update the file, answer from the cache (REVALIDATED). False when the
    /// 304 does not match the stored response.
    pub(super) fn revalidated(
        &mut self,
        up: &UpHead,
        pools: &mut Pools,
        conn: &mut dyn Client,
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
    pub(super) fn begin_fill(&mut self, up: &UpHead, pools: &mut Pools, ctx: &HttpCtx) {
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
    pub(super) fn fill_data(fill: &mut Option<u64>, pools: &Pools, bytes: &[u8]) {
        if let (Some(id), Some(w)) = (*fill, pools.cache.as_ref()) {
            if !bytes.is_empty() && !w.data(id, bytes) {
                w.abort(id);
                *fill = None;
            }
        }
    }

    pub(super) fn release_lock(&mut self) {
        self.lock = None;
    }

    pub(super) fn end_fill(&mut self, pools: &Pools, commit: bool) {
        self.release_lock();
        if let (Some(id), Some(w)) = (self.fill.take(), pools.cache.as_ref()) {
            if commit {
                w.commit(id);
            } else {
                w.abort(id);
            }
        }
    }
}
