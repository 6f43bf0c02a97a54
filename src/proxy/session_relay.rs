//! The byte relay of a proxied request (a child of `session`): the client's
//! request body to the upstream, and the upstream's response head and body
//! to the client with backpressure, framing and the cache fill tee.

use super::*;

impl Session {
    /// The upstream switched protocols (a WebSocket upgrade): relay its
    /// 101 head with its `Upgrade` and `Connection`, then tunnel bytes both
    /// ways until either side closes. Refused (502) when the client did not
    /// ask for an upgrade, as nginx.
    fn switch_protocols(
        &mut self,
        up: UpHead,
        conn: &mut dyn Client,
        ctx: &mut HttpCtx,
    ) -> Result<(), ProxyError> {
        let asked = upreq::header_pairs(&self.req.head_bytes)
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(b"upgrade"));
        if !asked || self.req.head.version_minor == 0 {
            log::error!("upstream sent 101 to a request without Upgrade");
            return Err(ProxyError::InvalidHeader);
        }
        let cfg = self.cfg.clone();
        let server = ctx.server_header(location(&cfg, &self.req));
        let out = conn.out();
        let mark = out.len();
        out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nServer: ");
        out.extend_from_slice(server);
        out.extend_from_slice(b"\r\nDate: ");
        out.extend_from_slice(&ctx.date);
        out.extend_from_slice(b"\r\n");
        for (n, v) in upresp::header_pairs(&self.resp[..up.len]) {
            let keep = n.eq_ignore_ascii_case(b"upgrade") || n.eq_ignore_ascii_case(b"connection");
            if !keep
                && (crate::proto::is_hop_by_hop(n)
                    || n.eq_ignore_ascii_case(b"server")
                    || n.eq_ignore_ascii_case(b"date")
                    || n.eq_ignore_ascii_case(b"content-length"))
            {
                continue;
            }
            out.extend_from_slice(n);
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        self.head_sent = (out.len() - mark) as u64;
        self.resp.drain(..up.len);
        self.head = Some(up);
        self.client_keep_alive = false;
        self.body = ReqBody::None;
        self.state = St::Tunnel;
        Ok(())
    }

    /// Move bytes both ways through an upgraded connection. `Some` when
    /// the tunnel ended.
    pub(super) fn tunnel(
        &mut self,
        conn: &mut dyn Client,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
    ) -> Option<Next> {
        loop {
            let mut progress = false;
            // Client -> upstream.
            if self.sendq.len() - self.sendq_pos < SEND_BUF {
                if conn.body_bytes().is_empty() {
                    match conn.read_body() {
                        Ok(got) => progress |= got,
                        Err(()) => return Some(self.end_tunnel(conn, ctx, pools, "client")),
                    }
                }
                let n = conn.body_bytes().len().min(SEND_BUF);
                if n > 0 {
                    self.sendq.extend_from_slice(&conn.body_bytes()[..n]);
                    conn.consume(n);
                    progress = true;
                }
            }
            match self.send() {
                Ok(p) => progress |= p,
                Err(()) => return Some(self.end_tunnel(conn, ctx, pools, "upstream")),
            }
            // Upstream -> client.
            if conn.out_pending() < HIGH_WATER && !self.up_eof {
                match self.receive(&mut pools.read_buf) {
                    Ok(p) => progress |= p,
                    Err(()) => self.up_eof = true,
                }
            }
            if !self.resp.is_empty() {
                conn.out().extend_from_slice(&self.resp);
                self.body_bytes += self.resp.len() as u64;
                self.resp.clear();
                progress = true;
            }
            if conn.flush_out().is_err() {
                return Some(self.end_tunnel(conn, ctx, pools, "client"));
            }
            if self.up_eof {
                return Some(self.end_tunnel(conn, ctx, pools, "upstream"));
            }
            if !progress {
                break;
            }
            // nginx re-arms proxy_read_timeout whenever the tunnel moves.
            self.deadline_ms = ctx.now_ms + self.loc().proxy.read_timeout_ms;
        }
        if self.deadline_ms <= ctx.now_ms {
            self.deadline_ms = ctx.now_ms + self.loc().proxy.read_timeout_ms;
        }
        None
    }

    /// One side of a tunnel closed (or the timeout passed): log the
    /// request (101) and close both connections once the client has what
    /// was relayed.
    pub(super) fn end_tunnel(
        &mut self,
        conn: &mut dyn Client,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
        side: &str,
    ) -> Next {
        log::debug!("proxy: upgraded connection closed by the {side}");
        if let Some(c) = self.up.take() {
            c.close();
        }
        self.active = None;
        self.log(ctx, 101, self.body_bytes);
        self.state = St::Done;
        self.end_fill(pools, false);
        conn.finish_proxy(false, ctx.now_ms);
        Next::Finished
    }

    pub(super) fn wants_body(&self) -> bool {
        match &self.body {
            ReqBody::None => false,
            ReqBody::Length(n) => *n > 0,
            ReqBody::Chunked(d) => !d.is_done(),
        }
    }

    /// Queue `100 Continue` for a client that waits for it before sending
    /// its body (once, and only while none of the body is here). True when
    /// it was queued.
    pub(super) fn send_continue(&mut self, conn: &mut dyn Client) -> bool {
        if self.continue_sent || !self.req.head.expect_continue || !conn.body_bytes().is_empty() {
            return false;
        }
        conn.out()
            .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        self.continue_sent = true;
        true
    }

    /// Move request-body bytes from the client buffer to the send queue: a
    /// Content-Length body as it is, a chunked one decoded and re-chunked.
    /// Err(status) when the client's chunked framing is refused.
    pub(super) fn take_body(&mut self, conn: &mut dyn Client) -> Result<bool, u16> {
        if self.sendq.len() - self.sendq_pos >= SEND_BUF || !self.wants_body() {
            return Ok(false);
        }
        self.send_continue(conn);
        let avail = conn.body_bytes();
        if avail.is_empty() {
            return Ok(false);
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
                let q = &mut self.sendq;
                match dec.feed(&avail[..take], &mut |d| chunked::encode_chunk(q, d)) {
                    Ok((n, done)) => {
                        if done {
                            q.extend_from_slice(chunked::LAST_CHUNK);
                        }
                        n
                    }
                    Err(e) => return Err(e.status()),
                }
            }
        };
        conn.consume(used);
        if used > 0 {
            self.body_sent = true;
        }
        Ok(used > 0)
    }

    pub(super) fn send(&mut self) -> Result<bool, ()> {
        let Some(up) = &mut self.up else {
            return Ok(false);
        };
        let mut progress = false;
        while self.sendq_pos < self.sendq.len() {
            match up.write(&self.sendq[self.sendq_pos..]) {
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
        // TLS records the socket did not take go out as it drains.
        if up.flush().is_err() {
            return Err(());
        }
        Ok(progress)
    }

    /// Read from the upstream into `resp`, through the worker's `scratch`
    /// buffer (zeroed once, so a read does not clear 32 KB first).
    pub(super) fn receive(&mut self, scratch: &mut Vec<u8>) -> Result<bool, ()> {
        let Some(up) = &mut self.up else {
            return Ok(false);
        };
        if scratch.len() < READ_CHUNK {
            scratch.resize(READ_CHUNK, 0);
        }
        let r = loop {
            match up.read(&mut scratch[..READ_CHUNK]) {
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
                self.resp.extend_from_slice(&scratch[..n]);
                Ok(n > 0 || self.up_eof)
            }
            Err(()) => {
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

    /// Parse the head / move body bytes to the client. Err when the attempt
    /// failed (`Broken` once the client has the head).
    pub(super) fn process_response(
        &mut self,
        conn: &mut dyn Client,
        ctx: &mut HttpCtx,
        pools: &mut Pools,
    ) -> Result<bool, ProxyError> {
        let mut progress = false;
        if self.head.is_none() {
            if self.resp.is_empty() {
                return if self.up_eof {
                    Err(ProxyError::Connection)
                } else {
                    Ok(false)
                };
            }
            let head_req = self.req.head.method == Method::Head && !self.head_as_get;
            let minor = self.loc().proxy.http_version_minor;
            let up = match upresp::parse_head(&self.resp, head_req, minor) {
                Ok(Some(h)) => h,
                Ok(None) => {
                    return if self.up_eof {
                        Err(ProxyError::Connection)
                    } else {
                        Ok(false)
                    }
                }
                Err(_) => {
                    log::error!("upstream sent an invalid response head");
                    return Err(ProxyError::InvalidHeader);
                }
            };
            if up.status == 101 {
                return self.switch_protocols(up, conn, ctx).map(|()| true);
            }
            if (100..200).contains(&up.status) {
                // Other interim responses are not relayed.
                self.resp.drain(..up.len);
                return Ok(true);
            }
            if self.loc().proxy.next_upstream.retries_status(up.status)
                && self.can_retry()
                && self.more_peers
            {
                return Err(ProxyError::Status(up.status));
            }
            let cfg = self.cfg.clone();
            let loc = location(&cfg, &self.req);
            if up.status >= 300
                && loc.proxy.intercept_errors
                && !self.wants_body()
                && loc.error_pages.iter().any(|p| p.codes.contains(&up.status))
            {
                let keep_alive = self.client_keep_alive;
                self.end_fill(pools, false);
                if conn.error_page(ctx, &mut self.req, up.status, keep_alive) {
                    self.head = Some(up);
                    self.resp.clear();
                    self.state = St::Intercepted;
                    return Ok(true);
                }
            }
            let server = ctx.server_header(loc);
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
            // proxy_buffering off (or the upstream's X-Accel-Buffering: no):
            // relayed, never stored.
            let buffering = loc.proxy.buffering
                && !upresp::header_value(&self.resp[..up.len], b"x-accel-buffering")
                    .is_some_and(|v| v.eq_ignore_ascii_case(b"no"));
            if !self.no_store && buffering {
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
            let upstream_addr = pools
                .pools
                .get(self.pool)
                .and_then(|p| p.peers.get(self.peer))
                .map(|p| &p.addr);
            let resp_vars = crate::http::vars::RespVars {
                status: up.status,
                head: &self.resp[..up.len],
                upstream_addr,
                upstream_status: up.status,
                upstream_ms: Some(ctx.now_ms.saturating_sub(self.started_ms)),
                cache_status: self.cache_status.map(|c| c.as_str()),
                ..Default::default()
            };
            let req_vars = self.req_vars(ctx.now_unix_ms());
            let rules = &loc.proxy.redirects;
            let rewrite = |v: &[u8], refresh: bool| {
                crate::proxy::redirect::rewrite(rules, v, refresh, &req_vars)
            };
            let sink = conn.sink();
            let (framing, keep_alive) = upresp::client_head(
                &self.resp,
                &up,
                &ClientHeadParams {
                    keep_alive: self.client_keep_alive && !self.wants_body(),
                    client_http11: self.req.head.version_minor == 1,
                    head_only: self.head_as_get,
                    hide: &loc.proxy.hide_headers,
                    pass: &loc.proxy.pass_headers,
                    rewrite: (!rules.is_empty()).then_some(&rewrite),
                },
                sink.head,
            );
            if let Some(cs) = self.cache_status {
                sink.head.push(b"X-Cache-Status", cs.as_str().as_bytes());
            }
            self.filter_head(loc, ctx, &resp_vars, sink.head);
            let mark = sink.out.len();
            // `proxy_pass_header Server` / `Date`: the upstream's in place of ours.
            let passed = |name: &str| {
                loc.proxy
                    .pass_headers
                    .iter()
                    .any(|p| p == name)
                    .then(|| upresp::header_value(&self.resp[..up.len], name.as_bytes()))
                    .flatten()
            };
            let server = passed("server").unwrap_or(server);
            let date = passed("date").unwrap_or(&ctx.date);
            sink.head.write_h1(server, date, sink.out);
            self.head_sent = (sink.out.len() - mark) as u64;
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
                    return Err(ProxyError::Broken); // truncated upstream body
                }
                progress |= n > 0;
            }
            UpFraming::Chunked => {
                let framing = self.framing;
                let mut body = 0u64;
                let fill = &mut self.fill;
                let res = self.dec.feed(&self.resp, &mut |d| {
                    match framing {
                        ClientFraming::Close => out.extend_from_slice(d),
                        ClientFraming::Chunked => chunked::encode_chunk(out, d),
                        _ => {}
                    }
                    Self::fill_data(fill, pools, d);
                    body += d.len() as u64;
                });
                match res {
                    Ok((used, done)) => {
                        if done && framing == ClientFraming::Chunked {
                            out.extend_from_slice(chunked::LAST_CHUNK);
                        }
                        self.body_bytes += body;
                        self.resp.drain(..used);
                        progress |= used > 0;
                        if done {
                            self.state = St::Done;
                        } else if self.up_eof {
                            return Err(ProxyError::Broken);
                        }
                    }
                    Err(_) => return Err(ProxyError::Broken),
                }
            }
            UpFraming::Close => {
                if !self.resp.is_empty() {
                    if self.framing == ClientFraming::Chunked {
                        chunked::encode_chunk(out, &self.resp);
                    } else if self.framing != ClientFraming::None {
                        out.extend_from_slice(&self.resp);
                    }
                    Self::fill_data(&mut self.fill, pools, &self.resp);
                    self.body_bytes += self.resp.len() as u64;
                    self.resp.clear();
                    progress = true;
                }
                if self.up_eof {
                    if self.framing == ClientFraming::Chunked {
                        out.extend_from_slice(chunked::LAST_CHUNK);
                    }
                    self.state = St::Done;
                }
            }
        }
        Ok(progress)
    }
}
