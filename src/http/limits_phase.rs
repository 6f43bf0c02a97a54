//! The limits phase: applies a location's traffic limits (`limits/`) to a
//! request, between choosing the location and running its content handler.
//!
//! Order, for a request seen for the first time:
//! 1. `count`: every request reaching the location is counted;
//! 2. `limit_bytes`: a key over its quota is refused;
//! 3. `limit_req`: each zone decides (GCRA); one refusal refuses the request
//!    (and gives back what the earlier zones admitted); otherwise the
//!    longest delay holds the request — the connection keeps the head and
//!    comes back after the delay with `skip` set (`Outcome::delay_until_ms`);
//! 4. content of the location itself, when it is `count_report` (JSON) or
//!    `limit_check` (204 / refusal, for nginx's `auth_request`).
//!
//! Refusals use `limit_req_status` (default 429) with `Retry-After` and
//! `RateLimit-Limit/-Remaining/-Reset`; `limit_req_dry_run on` counts and
//! logs them but lets the request through. Bytes for `limit_bytes` are added
//! by [`account_bytes`] once the response size is known. Counters are kept
//! per worker and folded into the zone headers once per loop iteration
//! ([`LimitsCtx::publish`]).
//!
//! Keys are the variables engine's templates: `build` evaluates one with
//! `http::vars` into the reused key buffer, `limits::key` applies the
//! limits' own rules (`limit_req_subnet`, empty keys). For `limit_check`, the
//! variables describe the original request behind the subrequest
//! (`original_request`): the client is `X-Real-IP` (else the first
//! `X-Forwarded-For`), `$request_uri`/`$uri`/`$args`/`$arg_*` come from
//! `X-Original-URI`, `$request_method` from `X-Original-Method` (nginx's
//! subrequests are GETs), `$host` from `X-Forwarded-Host` (else `Host`);
//! headers and cookies are the subrequest's (nginx passes the client's on).

use crate::config::{LocationConf, LocationLimits, ReqDelay, Template, ZoneKind};
use crate::http::ctx::HttpCtx;
use crate::http::handler::error_reply;
use crate::http::header_filter::Sink;
use crate::http::request::{at, find_header, Head};
use crate::http::uri;
use crate::http::vars::{self, ConnVars, ReqVars, RespVars};
use crate::limits::key::{self, Subnet};
use crate::limits::{Gcra, Metric, Verdict, METRICS};
use crate::proto::reply::Framing;
use crate::zones::Zones;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Worker-wide state of the limits phase.
pub struct LimitsCtx {
    /// This generation's zones.
    pub zones: Arc<Zones>,
    /// Wall clock in µs (cached once per loop iteration).
    pub now_us: u64,
    key: Vec<u8>,
    uri: Vec<u8>,
    pending: Vec<[u64; METRICS]>,
    dirty: bool,
    admitted: Vec<(usize, usize, Gcra, u64)>,
}

impl LimitsCtx {
    /// State over `zones`.
    pub fn new(zones: Arc<Zones>) -> LimitsCtx {
        let n = zones.limits.zones().len();
        LimitsCtx {
            zones,
            now_us: 0,
            key: Vec::with_capacity(64),
            uri: Vec::with_capacity(256),
            pending: vec![[0; METRICS]; n],
            dirty: false,
            admitted: Vec::new(),
        }
    }

    fn bump(&mut self, zone: usize, m: Metric, n: u64) {
        if let Some(p) = self.pending.get_mut(zone) {
            p[m as usize] += n;
            self.dirty = true;
        }
    }

    /// Fold this worker's counters into the shared zone headers.
    pub fn publish(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        for (i, p) in self.pending.iter_mut().enumerate() {
            let Some(z) = self.zones.limits.get(i) else {
                continue;
            };
            for m in Metric::ALL {
                let v = std::mem::take(&mut p[m as usize]);
                if v > 0 {
                    z.metric(m).fetch_add(v, Relaxed);
                }
            }
        }
    }
}

/// The request as the limits phase sees it.
pub struct LimitRequest<'a> {
    /// The request's variables.
    pub vars: &'a ReqVars<'a>,
    /// Client address.
    pub peer: IpAddr,
    /// The read buffer, starting with the head.
    pub buf: &'a [u8],
    /// The parsed head.
    pub head: &'a Head,
    /// Host (header or absolute target), with port.
    pub host: Option<&'a [u8]>,
    /// Raw query string.
    pub query: Option<&'a [u8]>,
    /// Keep the connection after the response.
    pub keep_alive: bool,
    /// HEAD request.
    pub head_only: bool,
}

/// A response the phase queued.
pub struct LimitReply {
    /// Status sent.
    pub status: u16,
    /// Body bytes sent.
    pub body_bytes: u64,
}

/// What the request does next.
pub enum LimitFlow {
    /// Go on to the content handler.
    Next,
    /// Hold the request until this monotonic ms, then dispatch it again
    /// with the limits skipped.
    Delay(u64),
    /// The phase answered (refusal, `count_report`, `limit_check`).
    Done(LimitReply),
}

/// RateLimit-* values of the tightest limit.
#[derive(Clone, Copy)]
struct RateInfo {
    zone: usize,
    limit: u64,
    remaining: u64,
    reset_us: u64,
}

enum Decided {
    Pass {
        rate: Option<RateInfo>,
        report: Option<u64>,
    },
    Delay(u64, RateInfo),
    Reject {
        retry_us: u64,
        rate: RateInfo,
    },
}

fn parse_ip(v: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(v.trim_ascii()).ok()?.parse().ok()
}

/// The client behind an `auth_request` subrequest.
fn original_client(head: &[u8], peer: IpAddr) -> IpAddr {
    find_header(head, b"x-real-ip")
        .and_then(parse_ip)
        .or_else(|| {
            find_header(head, b"x-forwarded-for")
                .and_then(|v| v.split(|&b| b == b',').next())
                .and_then(parse_ip)
        })
        .unwrap_or(peer)
}

/// For `limit_check`: the variables of the request behind the subrequest
/// `sub` (see the module's doc). `head` receives a copy of the subrequest's
/// head whose method is `X-Original-Method`'s, `path` the normalized path
/// of `X-Original-URI` (default `/`); both are the caller's, reused.
fn original_request<'a>(
    sub: &ReqVars<'a>,
    head: &'a mut Option<Head>,
    path: &'a mut Vec<u8>,
) -> ReqVars<'a> {
    let hb = sub.head_bytes;
    let fields = &hb[..sub.head.len];
    let target = find_header(fields, b"x-original-uri").unwrap_or(b"/");
    let (raw_path, query) = match target.iter().position(|&b| b == b'?') {
        Some(q) => (&target[..q], Some(&target[q + 1..])),
        None => (target, None),
    };
    if uri::normalize_path(raw_path, path).is_err() {
        path.clear();
        path.extend_from_slice(raw_path);
    }
    let head = head.insert(sub.head.clone());
    if let Some(m) = find_header(fields, b"x-original-method").filter(|m| !m.is_empty()) {
        // The value lies inside the head: its span is the method's.
        let start = (m.as_ptr() as usize - hb.as_ptr() as usize) as u32;
        head.method_span = (start, start + m.len() as u32);
    }
    let client = original_client(fields, sub.conn.peer.ip());
    ReqVars {
        head: &*head,
        target,
        path: path.as_slice(),
        query,
        host: find_header(fields, b"x-forwarded-host").or(sub.host),
        conn: ConnVars {
            peer: SocketAddr::new(client, sub.conn.peer.port()),
            ..sub.conn
        },
        ..*sub
    }
}

/// Run the phase for `loc` (whose limits are active). The request's
/// `limit_bytes` keys go into `slots` (the request's), for
/// [`account_bytes`] once the response size is known.
pub fn run(
    ctx: &mut HttpCtx,
    loc: &LocationConf,
    req: &LimitRequest<'_>,
    skip: bool,
    slots: &mut Vec<(usize, usize)>,
    out: &mut Sink<'_>,
) -> LimitFlow {
    let lim = &loc.limits;
    let mut uri_buf = std::mem::take(&mut ctx.limits.uri);
    let mut check_head = None;
    let checked;
    let vars = if lim.check {
        checked = original_request(req.vars, &mut check_head, &mut uri_buf);
        &checked
    } else {
        req.vars
    };
    let mut dry_hit = None;
    let decided = decide(&mut ctx.limits, lim, vars, skip, slots, &mut dry_hit);
    let client = vars.conn.peer.ip();
    ctx.limits.uri = uri_buf;
    if let Some(rate) = dry_hit {
        log_refusal(
            &ctx.limits.zones,
            lim,
            req,
            client,
            "limiting requests",
            &rate,
            lim.log_level,
        );
    }
    match decided {
        Decided::Delay(delay_us, rate) => {
            slots.clear();
            let level = match lim.log_level {
                log::Level::Error => log::Level::Warn,
                log::Level::Warn => log::Level::Info,
                _ => log::Level::Debug,
            };
            log_refusal(
                &ctx.limits.zones,
                lim,
                req,
                client,
                "delaying request",
                &rate,
                level,
            );
            LimitFlow::Delay(ctx.now_ms + delay_us.div_ceil(1000))
        }
        Decided::Reject { retry_us, rate } => {
            slots.clear();
            log_refusal(
                &ctx.limits.zones,
                lim,
                req,
                client,
                "limiting requests",
                &rate,
                lim.log_level,
            );
            LimitFlow::Done(refuse(ctx, loc, req, retry_us, &rate, out))
        }
        Decided::Pass { rate, report } => {
            if lim.check {
                LimitFlow::Done(check_answer(ctx, loc, req, rate.as_ref(), out))
            } else if let Some(n) = report {
                LimitFlow::Done(report_answer(ctx, loc, req, n, out))
            } else {
                LimitFlow::Next
            }
        }
    }
}

/// Key bytes of `t` for the request `vars` into `buf`; false when the key
/// is empty (not limited). Nothing is known of the response yet: its
/// variables are empty (`$status` is `000`).
fn build(t: &Template, vars: &ReqVars<'_>, lim: &LocationLimits, buf: &mut Vec<u8>) -> bool {
    let subnet = Subnet {
        v4_bits: lim.subnet_v4_bits,
        v6_bits: lim.subnet_v6_bits,
    };
    let resp = RespVars::default();
    key::build(t, vars.conn.peer.ip(), subnet, buf, |v, out| {
        vars::eval_var(v, vars, &resp, out)
    })
}

/// Run the location's limits for `src`. `dry_hit` gets the rate a
/// `dry_run` limit would have refused (logged, not enforced).
fn decide(
    lc: &mut LimitsCtx,
    lim: &LocationLimits,
    src: &ReqVars<'_>,
    skip: bool,
    slots: &mut Vec<(usize, usize)>,
    dry_hit: &mut Option<RateInfo>,
) -> Decided {
    let zones = lc.zones.clone();
    // The time now, not the loop iteration's: another worker may have
    // moved a key's TAT with a later clock while this one was preempted
    // after poll() returned, and a stale `now` would read as a request
    // arriving early (a burst's last request refused).
    let now_us = crate::event::unix_us_now().max(lc.now_us);
    lc.now_us = now_us;
    let now_ms = now_us / 1000;
    let mut keybuf = std::mem::take(&mut lc.key);
    slots.clear();
    let decided = 'd: {
        if !skip {
            for c in &lim.count {
                let Some(z) = zones.limits.get(c.zone) else {
                    continue;
                };
                if build(&c.key, src, lim, &mut keybuf) {
                    z.count_add(z.key_hash(&keybuf), now_ms);
                    lc.bump(c.zone, Metric::Counted, 1);
                }
            }
        }
        for &zi in &lim.bytes {
            let Some(z) = zones.limits.get(zi) else {
                continue;
            };
            if !build(&z.conf.key, src, lim, &mut keybuf) {
                continue;
            }
            let Some((slot, over)) = z.quota_check(z.key_hash(&keybuf), now_ms) else {
                continue;
            };
            if !lim.check {
                slots.push((zi, slot));
            }
            if skip {
                continue;
            }
            match over {
                None => lc.bump(zi, Metric::Allowed, 1),
                Some(retry_ms) => {
                    let rate = RateInfo {
                        zone: zi,
                        limit: z.quota().map_or(0, |q| q.quota_bytes),
                        remaining: 0,
                        reset_us: retry_ms * 1000,
                    };
                    if lim.dry_run {
                        lc.bump(zi, Metric::DryRun, 1);
                        *dry_hit = Some(rate);
                        continue;
                    }
                    lc.bump(zi, Metric::Rejected, 1);
                    break 'd Decided::Reject {
                        retry_us: retry_ms * 1000,
                        rate,
                    };
                }
            }
        }
        if skip {
            break 'd Decided::Pass {
                rate: None,
                report: report_sum(&zones, lim, src, &mut keybuf, now_ms),
            };
        }
        lc.admitted.clear();
        let mut tightest: Option<RateInfo> = None;
        for r in &lim.req {
            let Some(z) = zones.limits.get(r.zone) else {
                continue;
            };
            let ZoneKind::Rate { interval_us } = z.conf.kind else {
                continue;
            };
            if !build(&z.conf.key, src, lim, &mut keybuf) {
                continue;
            }
            let free = match r.delay {
                ReqDelay::NoDelay => None,
                ReqDelay::After(n) => Some(n),
            };
            let g = Gcra::new(interval_us, r.burst, free);
            let Some((verdict, slot, applied)) = z.rate_check(z.key_hash(&keybuf), &g, now_us)
            else {
                continue;
            };
            match verdict {
                Verdict::Allow {
                    delay_us,
                    remaining,
                    reset_us,
                } => {
                    lc.admitted.push((r.zone, slot, applied, delay_us));
                    if tightest.is_none_or(|t| remaining < t.remaining) {
                        tightest = Some(RateInfo {
                            zone: r.zone,
                            limit: g.limit(),
                            remaining,
                            reset_us,
                        });
                    }
                }
                Verdict::Reject { retry_us, reset_us } => {
                    if lim.dry_run {
                        lc.bump(r.zone, Metric::DryRun, 1);
                        *dry_hit = Some(RateInfo {
                            zone: r.zone,
                            limit: g.limit(),
                            remaining: 0,
                            reset_us,
                        });
                        continue;
                    }
                    for (zi, slot, g, _) in lc.admitted.drain(..) {
                        if let Some(z) = zones.limits.get(zi) {
                            z.rate_undo(slot, &g, now_us);
                        }
                    }
                    lc.bump(r.zone, Metric::Rejected, 1);
                    break 'd Decided::Reject {
                        retry_us,
                        rate: RateInfo {
                            zone: r.zone,
                            limit: g.limit(),
                            remaining: 0,
                            reset_us,
                        },
                    };
                }
            }
        }
        let mut delay_us = 0;
        for i in 0..lc.admitted.len() {
            // A dry run limits nothing: no delays either (as nginx).
            let (zi, _, _, d) = lc.admitted[i];
            let d = if lim.dry_run { 0 } else { d };
            delay_us = delay_us.max(d);
            lc.bump(
                zi,
                if d > 0 {
                    Metric::Delayed
                } else {
                    Metric::Allowed
                },
                1,
            );
        }
        if delay_us > 0 {
            let rate = tightest.unwrap_or(RateInfo {
                zone: 0,
                limit: 0,
                remaining: 0,
                reset_us: delay_us,
            });
            break 'd Decided::Delay(delay_us, rate);
        }
        Decided::Pass {
            rate: tightest,
            report: report_sum(&zones, lim, src, &mut keybuf, now_ms),
        }
    };
    lc.key = keybuf;
    decided
}

fn report_sum(
    zones: &Zones,
    lim: &LocationLimits,
    src: &ReqVars<'_>,
    keybuf: &mut Vec<u8>,
    now_ms: u64,
) -> Option<u64> {
    let r = lim.report.as_ref()?;
    let z = zones.limits.get(r.zone)?;
    if !build(&r.key, src, lim, keybuf) {
        return Some(0);
    }
    Some(z.count_sum(z.key_hash(keybuf), now_ms))
}

/// Charge `bytes` (the response just sent, head and body) to the
/// request's `limit_bytes` keys in `slots`, which are then spent.
pub fn account_bytes(ctx: &mut HttpCtx, slots: &mut Vec<(usize, usize)>, bytes: u64) {
    if slots.is_empty() {
        return;
    }
    let lc = &mut ctx.limits;
    let now_ms = lc.now_us / 1000;
    let zones = lc.zones.clone();
    for &(zi, slot) in slots.iter() {
        if let Some(z) = zones.limits.get(zi) {
            z.quota_add(slot, now_ms, bytes);
            lc.bump(zi, Metric::Bytes, bytes);
        }
    }
    slots.clear();
}

/// A decimal number in a stack buffer (header values without allocating).
/// A number formatted once, kept for several header values.
struct Num(itoa::Buffer, u64);

impl Num {
    fn new(n: u64) -> Num {
        Num(itoa::Buffer::new(), n)
    }

    fn bytes(&mut self) -> &[u8] {
        self.0.format(self.1).as_bytes()
    }
}

fn secs_ceil(us: u64) -> u64 {
    us.div_ceil(1_000_000)
}

fn log_refusal(
    zones: &Zones,
    lim: &LocationLimits,
    req: &LimitRequest<'_>,
    client: IpAddr,
    what: &str,
    rate: &RateInfo,
    level: log::Level,
) {
    if !log::log_enabled!(level) {
        return;
    }
    let head = req.head;
    log::log!(
        level,
        "{what}{} by zone \"{}\", limit {}, reset in {:.3}s, client: {client}, request: \"{} {} HTTP/1.{}\", host: \"{}\"",
        if lim.dry_run { ", dry run," } else { "" },
        zones.limits.get(rate.zone).map_or("", |z| z.name()),
        rate.limit,
        rate.reset_us as f64 / 1e6,
        String::from_utf8_lossy(at(req.buf, head.method_span)),
        String::from_utf8_lossy(at(req.buf, head.target)),
        head.version_minor,
        String::from_utf8_lossy(req.host.unwrap_or_default()),
    );
}

fn refuse(
    ctx: &HttpCtx,
    loc: &LocationConf,
    req: &LimitRequest<'_>,
    retry_us: u64,
    rate: &RateInfo,
    out: &mut Sink<'_>,
) -> LimitReply {
    let status = loc.limits.req_status;
    let mut retry = Num::new(secs_ceil(retry_us).max(1));
    let mut limit = Num::new(rate.limit);
    let mut reset = Num::new(secs_ceil(rate.reset_us).max(1));
    let extra: [(&[u8], &[u8]); 4] = [
        (b"Retry-After", retry.bytes()),
        (b"RateLimit-Limit", limit.bytes()),
        (b"RateLimit-Remaining", b"0"),
        (b"RateLimit-Reset", reset.bytes()),
    ];
    let body_bytes = error_reply(
        ctx,
        loc,
        req.vars,
        status,
        req.keep_alive,
        req.head_only,
        &extra,
        out,
    );
    LimitReply { status, body_bytes }
}

/// `limit_check` passed: 204, with the tightest limit's RateLimit-* values.
fn check_answer(
    ctx: &HttpCtx,
    loc: &LocationConf,
    req: &LimitRequest<'_>,
    rate: Option<&RateInfo>,
    out: &mut Sink<'_>,
) -> LimitReply {
    let h = out.start(204, Framing::None, req.keep_alive);
    if let Some(r) = rate {
        h.push_u64(b"RateLimit-Limit", r.limit);
        h.push_u64(b"RateLimit-Remaining", r.remaining);
        h.push_u64(b"RateLimit-Reset", secs_ceil(r.reset_us));
    }
    out.send(ctx, loc, req.vars);
    LimitReply {
        status: 204,
        body_bytes: 0,
    }
}

/// `count_report`: `{"requestCount":N}`.
fn report_answer(
    ctx: &HttpCtx,
    loc: &LocationConf,
    req: &LimitRequest<'_>,
    n: u64,
    out: &mut Sink<'_>,
) -> LimitReply {
    let mut num = Num::new(n);
    let len = b"{\"requestCount\":}".len() + num.bytes().len();
    let h = out.start(200, Framing::Length(len as u64), req.keep_alive);
    h.push(b"Content-Type", b"application/json");
    h.push(b"Cache-Control", b"no-store");
    out.send(ctx, loc, req.vars);
    if req.head_only {
        return LimitReply {
            status: 200,
            body_bytes: 0,
        };
    }
    let out = &mut *out.out;
    out.extend_from_slice(b"{\"requestCount\":");
    out.extend_from_slice(num.bytes());
    out.push(b'}');
    LimitReply {
        status: 200,
        body_bytes: len as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::http::vars::with_req;

    fn key_of(text: &str, vars: &ReqVars<'_>, lim: &LocationLimits) -> Option<String> {
        let t = Template::compile(text).unwrap();
        let mut buf = Vec::new();
        build(&t, vars, lim, &mut buf).then(|| String::from_utf8_lossy(&buf).into_owned())
    }

    #[test]
    fn keys_evaluate_every_engine_variable_as_before() {
        let raw = "POST /a%20b?x=1&page=7&flag HTTP/1.1\r\nHost: Example.COM:8080\r\nX-User: alice\r\nCookie: a=1\r\nCookie: SID=s1\r\n\r\n";
        with_req(raw, |v| {
            let lim = LocationLimits {
                subnet_v4_bits: 24,
                ..LocationLimits::default()
            };
            // The variables keys always had, unchanged: the subnet applies,
            // `$host` is lowercase without port, names match in any case.
            assert_eq!(
                key_of(
                    "$remote_addr|$host|$http_x_user|$cookie_sid|$arg_PAGE|$uri",
                    v,
                    &lim
                )
                .as_deref(),
                Some("10.0.0.0|example.com|alice|s1|7|/a b")
            );
            let mut buf = Vec::new();
            let t = Template::compile("$binary_remote_addr").unwrap();
            assert!(build(&t, v, &lim, &mut buf));
            assert_eq!(buf, [10, 0, 0, 0]);
            // And the engine's others.
            assert_eq!(
                key_of(
                    "$request_method $scheme://$server_name$request_uri",
                    v,
                    &lim
                )
                .as_deref(),
                Some("POST http://example.com/a%20b?x=1&page=7&flag")
            );
            // All parts empty: not limited; no parts: the zone-wide key.
            assert_eq!(key_of("$http_none$cookie_none", v, &lim), None);
            assert_eq!(key_of("", v, &lim).as_deref(), Some(""));
            // Nothing of the response is known yet.
            assert_eq!(
                key_of("$status$upstream_status", v, &lim).as_deref(),
                Some("000")
            );
        });
    }

    #[test]
    fn limit_check_keys_read_the_request_behind_the_subrequest() {
        let raw = "GET /check HTTP/1.1\r\nHost: sluice:81\r\nX-Original-URI: /app/%2E/x.txt?u=bob\r\nX-Original-Method: PUT\r\nX-Forwarded-Host: Shop.Example:443\r\nX-Real-IP: 10.9.9.9\r\nX-User: carol\r\n\r\n";
        with_req(raw, |sub| {
            let (mut head, mut path) = (None, Vec::new());
            let v = original_request(sub, &mut head, &mut path);
            let lim = LocationLimits::default();
            assert_eq!(
                key_of(
                    "$remote_addr $request_method $request_uri $uri $args $arg_u $host $http_x_user",
                    &v,
                    &lim
                )
                .as_deref(),
                Some("10.9.9.9 PUT /app/%2E/x.txt?u=bob /app/x.txt u=bob bob shop.example carol")
            );
            assert_eq!(
                key_of("$request", &v, &lim).as_deref(),
                Some("PUT /app/%2E/x.txt?u=bob HTTP/1.1")
            );
        });
        // Without the headers: the subrequest's own method, host and
        // client; the path `/`, no query.
        with_req("GET /check HTTP/1.1\r\nHost: Sluice:81\r\n\r\n", |sub| {
            let (mut head, mut path) = (None, Vec::new());
            let v = original_request(sub, &mut head, &mut path);
            assert_eq!(
                key_of(
                    "$request_method $uri $is_args$args $host $remote_addr",
                    &v,
                    &LocationLimits::default()
                )
                .as_deref(),
                Some("GET /  sluice 10.0.0.7")
            );
        });
    }

    #[test]
    fn subrequest_client_address() {
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let h = b"GET /c HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n\r\n";
        assert_eq!(
            original_client(h, peer),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        let h = b"GET /c HTTP/1.1\r\nX-Real-IP: 2001:db8::5\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n";
        assert_eq!(
            original_client(h, peer),
            "2001:db8::5".parse::<IpAddr>().unwrap()
        );
        let h = b"GET /c HTTP/1.1\r\nX-Real-IP: junk\r\n\r\n";
        assert_eq!(original_client(h, peer), peer);
    }

    #[test]
    fn numbers_without_allocating() {
        assert_eq!(Num::new(0).bytes(), b"0");
        assert_eq!(Num::new(429).bytes(), b"429");
        assert_eq!(Num::new(u64::MAX).bytes(), b"18446744073709551615");
        assert_eq!(secs_ceil(1), 1);
        assert_eq!(secs_ceil(2_000_000), 2);
    }
}
