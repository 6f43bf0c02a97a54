//! The waiting-room phase: between choosing the location and the limits,
//! for a location with `waiting_room NAME;`. The queue logic is
//! `waiting_room/`; this file reads the cookie and the `sluice_wr`
//! parameter and writes the answers:
//!
//! 1. a valid session cookie (`sluice_wr_NAME`) passes (renewed, with a new
//!    `Set-Cookie`, once an eighth of `session` has gone by);
//! 2. a valid ticket (`?sluice_wr=TOKEN`) at or after its slot admits: a
//!    session cookie and a 302 to the URL without the parameter; before its
//!    slot it keeps waiting in the same place; an invalid one (expired,
//!    tampered, unknown key, other path) is counted and ignored;
//! 3. anyone else takes the next place: wait 0 passes at once with a cookie,
//!    otherwise a wait page (HTML with meta refresh and `Refresh`, or JSON
//!    for `Accept: application/json`), `Cache-Control: no-store`;
//!    `mode=reject` answers 503 with `Retry-After` instead.
//!
//! A cookie set while passing is written into the request's state
//! (`Request::cookie`, the variables' `set_cookie`); the header filter
//! (`header_filter`) writes it into the content's response, and a proxied request takes it along to the
//! upstream's (or the cache's) answer, so the request, a POST body included,
//! is sent once. Verified cookies are remembered per worker
//! (by their full text), so a session costs one HMAC per worker, not one
//! per request.

use crate::config::{ClusterFailure, LocationConf, LocationRoom, RoomMode};
use crate::http::ctx::HttpCtx;
use crate::http::handler::error_reply;
use crate::http::header_filter::Sink;
use crate::http::limits_phase::LimitReply;
use crate::http::request::{find_header, header_fields, Head};
use crate::http::response as resp;
use crate::limits::cluster::Gate;
use crate::proto::reply::Framing;
use crate::waiting_room::{Claims, Kind, Reject, Room, RoomSet, RoomZone, Scope};
use std::net::IpAddr;

/// Query parameter carrying a ticket.
pub const PARAM: &[u8] = b"sluice_wr";
const COOKIE_PREFIX: &[u8] = b"sluice_wr_";
const CACHE_SLOTS: usize = 256;
const CACHED_COOKIE_BYTES: usize = 112;
/// Longest refresh interval of a wait page, s.
const MAX_REFRESH_S: u64 = 60;
/// Refresh of a ticket due but without a free session, s.
const FULL_RETRY_S: u64 = 5;

#[derive(Clone, Copy)]
struct Cached {
    zone: usize,
    len: usize,
    text: [u8; CACHED_COOKIE_BYTES],
    claims: Claims,
    renewed: bool,
}

/// Worker-wide state of the phase.
pub struct RoomCtx {
    cache: Vec<Option<Cached>>,
    scratch: Vec<u8>,
    draws: u64,
}

impl Default for RoomCtx {
    fn default() -> Self {
        RoomCtx {
            cache: vec![None; CACHE_SLOTS],
            scratch: Vec::new(),
            draws: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

/// The request as the phase sees it.
pub struct RoomRequest<'a> {
    /// The request's variables.
    pub vars: &'a crate::http::vars::ReqVars<'a>,
    /// Client address.
    pub peer: IpAddr,
    /// The head bytes.
    pub head_bytes: &'a [u8],
    /// The parsed head.
    pub head: &'a Head,
    /// Path as sent (for URLs).
    pub raw_path: &'a [u8],
    /// Normalized path (what tickets are bound to).
    pub path: &'a [u8],
    /// Raw query string.
    pub query: Option<&'a [u8]>,
    /// Keep the connection.
    pub keep_alive: bool,
    /// HEAD request.
    pub head_only: bool,
}

/// What the request does next.
pub enum RoomFlow {
    /// Go on (limits, content); with a cookie in the request's state when
    /// it was admitted or its session renewed.
    Next,
    /// The phase answered.
    Done(LimitReply),
}

fn fnv(data: &[u8]) -> usize {
    let h = crate::util::hash::fnv1a64(data);
    (h ^ (h >> 32)) as usize
}

fn cookie_value<'a>(head: &'a [u8], zone: &str) -> Option<&'a [u8]> {
    header_fields(head)
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"))
        .flat_map(|(_, v)| v.split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let rest = pair.strip_prefix(COOKIE_PREFIX)?;
            let rest = rest.strip_prefix(zone.as_bytes())?;
            rest.strip_prefix(b"=")
        })
}

fn ticket_param(query: &[u8]) -> Option<&[u8]> {
    query
        .split(|&b| b == b'&')
        .find_map(|p| p.strip_prefix(PARAM)?.strip_prefix(b"="))
}

/// `raw_path` plus the query without `sluice_wr`, into `out`.
fn url_without_ticket(raw_path: &[u8], query: Option<&[u8]>, out: &mut Vec<u8>) {
    out.extend_from_slice(raw_path);
    let mut first = true;
    for p in query.unwrap_or_default().split(|&b| b == b'&') {
        let is_ticket = p
            .strip_prefix(PARAM)
            .is_some_and(|r| r.is_empty() || r[0] == b'=');
        if p.is_empty() || is_ticket {
            continue;
        }
        out.push(if first { b'?' } else { b'&' });
        first = false;
        out.extend_from_slice(p);
    }
}

fn html_escape(s: &[u8], out: &mut Vec<u8>) {
    for &b in s {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\'' => out.extend_from_slice(b"&#39;"),
            _ => out.push(b),
        }
    }
}

use crate::util::json::escape as json_escape;

fn wants_json(head_bytes: &[u8]) -> bool {
    find_header(head_bytes, b"accept").is_some_and(|a| {
        a.windows(16)
            .any(|w| w.eq_ignore_ascii_case(b"application/json"))
    })
}

/// Run the phase for `lr` (the location's room). A cookie for the
/// response goes into `cookie` (the request's).
pub fn run(
    ctx: &mut HttpCtx,
    loc: &LocationConf,
    lr: &LocationRoom,
    req: &RoomRequest<'_>,
    cookie: &mut Vec<u8>,
    out: &mut Sink<'_>,
) -> RoomFlow {
    let rooms = ctx.limits.zones.rooms.clone();
    let Some(zone) = rooms.get(lr.zone) else {
        return RoomFlow::Next;
    };
    let now_us = ctx.limits.now_us;
    let now_ms = now_us / 1000;
    let gate = zone.gate(now_ms);
    if let Some(Gate::Failed {
        mode: ClusterFailure::Open,
        ..
    }) = gate
    {
        return RoomFlow::Next;
    }
    let Some(room) = zone.room(now_ms) else {
        return RoomFlow::Next;
    };
    cookie.clear();

    // 1. A session.
    if let Some(v) = cookie_value(&req.head_bytes[..req.head.len], &zone.conf.name) {
        // A renewed session's cookie waits for the header filter.
        let valid = session(
            &mut ctx.rooms,
            cookie,
            &rooms,
            lr.zone,
            zone,
            &room,
            v,
            req.peer,
            now_ms,
        );
        if valid.is_some() {
            return RoomFlow::Next;
        }
    }
    let scope = Scope {
        zone: zone.conf.name.as_bytes(),
        path: req.path,
        ip: req.peer,
    };
    // A cluster room that cannot sync, failure mode closed: only sessions
    // already admitted go on.
    if let Some(Gate::Failed {
        mode: ClusterFailure::Closed,
        ..
    }) = gate
    {
        room.count_refused();
        return RoomFlow::Done(refuse(ctx, loc, &room, req, now_us, out));
    }
    // 2. A ticket.
    if let Some(t) = req.query.and_then(ticket_param) {
        match rooms.signer.verify(t, Kind::Ticket, &scope, now_ms) {
            Ok(c) if now_ms >= c.slot_ms => {
                if room.admit(now_ms) {
                    new_session(cookie, &rooms, zone, req.peer, now_ms);
                    return RoomFlow::Done(redirect(ctx, loc, req, cookie, out));
                }
                let t = t.to_vec();
                return RoomFlow::Done(wait_page(
                    ctx,
                    loc,
                    lr,
                    &room,
                    req,
                    &t,
                    c.slot_ms * 1000,
                    FULL_RETRY_S,
                    out,
                ));
            }
            Ok(c) => {
                let t = t.to_vec();
                let wait_s = (c.slot_ms * 1000)
                    .saturating_sub(now_us)
                    .div_ceil(1_000_000);
                return RoomFlow::Done(wait_page(
                    ctx,
                    loc,
                    lr,
                    &room,
                    req,
                    &t,
                    c.slot_ms * 1000,
                    wait_s,
                    out,
                ));
            }
            Err(r) => {
                room.count_reject(r);
                log::info!(
                    "waiting room \"{}\": ignored a ticket ({}), client: {}",
                    zone.conf.name,
                    r.as_str(),
                    req.peer
                );
            }
        }
    }
    // 3. A new arrival.
    if zone.conf.mode == RoomMode::Reject && !room.free_now(now_us) {
        room.count_refused();
        return RoomFlow::Done(refuse(ctx, loc, &room, req, now_us, out));
    }
    ctx.rooms.draws = ctx
        .rooms
        .draws
        .wrapping_mul(6364136223846793005)
        .wrapping_add(now_us | 1);
    let Some(slot_us) = room.take_slot(now_us, ctx.rooms.draws >> 11) else {
        return RoomFlow::Done(refuse(ctx, loc, &room, req, now_us, out));
    };
    if slot_us <= now_us && room.admit(now_ms) {
        new_session(cookie, &rooms, zone, req.peer, now_ms);
        return RoomFlow::Next;
    }
    if zone.conf.mode == RoomMode::Reject {
        room.count_refused();
        return RoomFlow::Done(refuse(ctx, loc, &room, req, now_us, out));
    }
    // Rounded down: a ticket may admit up to 1 ms early, never late.
    let slot_ms = slot_us / 1000;
    let claims = Claims {
        kind: Kind::Ticket,
        issued_ms: now_ms,
        slot_ms,
        expires_ms: slot_ms + zone.conf.max_wait_ms.max(zone.conf.session_ms),
        ip_bound: zone.conf.bind_ip,
    };
    let mut t = std::mem::take(&mut ctx.rooms.scratch);
    t.clear();
    rooms.signer.sign(&claims, &scope, &mut t);
    let wait_s = if slot_us <= now_us {
        FULL_RETRY_S
    } else {
        (slot_ms * 1000).saturating_sub(now_us).div_ceil(1_000_000)
    };
    let r = wait_page(ctx, loc, lr, &room, req, &t, slot_us, wait_s, out);
    ctx.rooms.scratch = t;
    RoomFlow::Done(r)
}

/// `Some(renew)` when `v` is a valid session of `zone`; on renewal the new
/// cookie is in `cookie`.
#[allow(clippy::too_many_arguments)]
fn session(
    rc: &mut RoomCtx,
    cookie: &mut Vec<u8>,
    rooms: &RoomSet,
    zi: usize,
    zone: &RoomZone,
    room: &Room<'_>,
    v: &[u8],
    peer: IpAddr,
    now_ms: u64,
) -> Option<bool> {
    let cacheable = !zone.conf.bind_ip && v.len() <= CACHED_COOKIE_BYTES;
    let slot = fnv(v) % CACHE_SLOTS;
    let hit = rc.cache[slot]
        .as_ref()
        .filter(|c| cacheable && c.zone == zi && c.len == v.len() && &c.text[..c.len] == v)
        .copied();
    let (claims, renewed) = match hit {
        Some(c) if now_ms < c.claims.expires_ms => (c.claims, c.renewed),
        Some(_) => {
            room.count_reject(Reject::Expired);
            return None;
        }
        None => {
            let scope = Scope {
                zone: zone.conf.name.as_bytes(),
                path: b"",
                ip: peer,
            };
            let c = match rooms.signer.verify(v, Kind::Session, &scope, now_ms) {
                Ok(c) => c,
                Err(r) => {
                    room.count_reject(r);
                    return None;
                }
            };
            if cacheable {
                let mut text = [0u8; CACHED_COOKIE_BYTES];
                text[..v.len()].copy_from_slice(v);
                rc.cache[slot] = Some(Cached {
                    zone: zi,
                    len: v.len(),
                    text,
                    claims: c,
                    renewed: false,
                });
            }
            (c, false)
        }
    };
    let renew_after_ms = (zone.conf.session_ms / 8).max(1000);
    if renewed || now_ms.saturating_sub(claims.slot_ms) < renew_after_ms {
        return Some(false);
    }
    if let Some(c) = rc.cache[slot].as_mut().filter(|_| cacheable) {
        c.renewed = true;
    }
    room.renew(claims.slot_ms, now_ms);
    set_cookie(cookie, rooms, zone, peer, claims.issued_ms, now_ms);
    Some(true)
}

fn new_session(c: &mut Vec<u8>, rooms: &RoomSet, zone: &RoomZone, peer: IpAddr, now_ms: u64) {
    set_cookie(c, rooms, zone, peer, now_ms, now_ms);
}

fn set_cookie(
    c: &mut Vec<u8>,
    rooms: &RoomSet,
    zone: &RoomZone,
    peer: IpAddr,
    issued_ms: u64,
    now_ms: u64,
) {
    let claims = Claims {
        kind: Kind::Session,
        issued_ms,
        slot_ms: now_ms,
        expires_ms: now_ms + zone.conf.session_ms,
        ip_bound: zone.conf.bind_ip,
    };
    let scope = Scope {
        zone: zone.conf.name.as_bytes(),
        path: b"",
        ip: peer,
    };
    c.clear();
    c.extend_from_slice(COOKIE_PREFIX);
    c.extend_from_slice(zone.conf.name.as_bytes());
    c.push(b'=');
    rooms.signer.sign(&claims, &scope, c);
    c.extend_from_slice(b"; Path=/; Max-Age=");
    resp::put_u64(c, zone.conf.session_ms / 1000);
    c.extend_from_slice(b"; HttpOnly; SameSite=Lax");
}

/// The 302 of an admitted ticket: to the URL without the ticket, with the
/// session cookie.
fn redirect(
    ctx: &HttpCtx,
    loc: &LocationConf,
    req: &RoomRequest<'_>,
    cookie: &[u8],
    out: &mut Sink<'_>,
) -> LimitReply {
    let h = out.start(302, Framing::Length(0), req.keep_alive);
    h.push_with(b"Location", |u| {
        url_without_ticket(req.raw_path, req.query, u)
    });
    h.push(b"Cache-Control", b"no-store");
    h.push(b"Set-Cookie", cookie);
    out.send(ctx, loc, req.vars);
    LimitReply {
        status: 302,
        body_bytes: 0,
    }
}

fn refuse(
    ctx: &HttpCtx,
    loc: &LocationConf,
    room: &Room<'_>,
    req: &RoomRequest<'_>,
    now_us: u64,
    out: &mut Sink<'_>,
) -> LimitReply {
    let wait_s = room.estimate(now_us).1.div_ceil(1000).max(1);
    let mut n = Vec::with_capacity(20);
    resp::put_u64(&mut n, wait_s);
    let extra: [(&[u8], &[u8]); 2] = [(b"Retry-After", &n), (b"Cache-Control", b"no-store")];
    let body_bytes = error_reply(
        ctx,
        loc,
        req.vars,
        503,
        req.keep_alive,
        req.head_only,
        &extra,
        out,
    );
    LimitReply {
        status: 503,
        body_bytes,
    }
}

const DEFAULT_PAGE: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n{{refresh}}\n<title>Waiting room</title></head>\n<body><h1>You are in the queue</h1>\n<p>Your place: {{position}}. Estimated wait: {{wait_s}} s.</p>\n<p>This page reloads by itself; keep it open. <a href=\"{{url}}\">Try again</a></p>\n</body></html>\n";

#[allow(clippy::too_many_arguments)]
fn wait_page(
    ctx: &mut HttpCtx,
    loc: &LocationConf,
    lr: &LocationRoom,
    room: &Room<'_>,
    req: &RoomRequest<'_>,
    ticket: &[u8],
    slot_us: u64,
    wait_s: u64,
    out: &mut Sink<'_>,
) -> LimitReply {
    room.count_wait_page();
    let now_us = ctx.limits.now_us;
    let position = room.position(slot_us, now_us);
    let shown_wait_s = (slot_us / 1000 * 1000)
        .saturating_sub(now_us)
        .div_ceil(1_000_000)
        .max(wait_s);
    let refresh_s = wait_s.clamp(1, MAX_REFRESH_S);
    let mut url = Vec::with_capacity(req.raw_path.len() + ticket.len() + 32);
    url_without_ticket(req.raw_path, req.query, &mut url);
    url.push(if url.contains(&b'?') { b'&' } else { b'?' });
    url.extend_from_slice(PARAM);
    url.push(b'=');
    url.extend_from_slice(ticket);
    let mut refresh = Vec::with_capacity(url.len() + 8);
    resp::put_u64(&mut refresh, refresh_s);
    refresh.extend_from_slice(b";url=");
    refresh.extend_from_slice(&url);
    let json = wants_json(&req.head_bytes[..req.head.len]);
    let mut body = Vec::with_capacity(1024);
    if json {
        body.extend_from_slice(b"{\"position\":");
        resp::put_u64(&mut body, position);
        body.extend_from_slice(b",\"wait_s\":");
        resp::put_u64(&mut body, shown_wait_s);
        body.extend_from_slice(b",\"retry_url\":\"");
        json_escape(&url, &mut body);
        body.extend_from_slice(b"\"}");
    } else {
        let template = lr.page.as_deref().unwrap_or(DEFAULT_PAGE);
        let mut rest = template.as_bytes();
        while let Some(i) = rest.windows(2).position(|w| w == b"{{") {
            body.extend_from_slice(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(end) = after.windows(2).position(|w| w == b"}}") else {
                body.extend_from_slice(&rest[i..]);
                rest = b"";
                break;
            };
            match &after[..end] {
                b"wait_s" => resp::put_u64(&mut body, shown_wait_s),
                b"position" => resp::put_u64(&mut body, position),
                b"url" => html_escape(&url, &mut body),
                b"refresh" => {
                    body.extend_from_slice(b"<meta http-equiv=\"refresh\" content=\"");
                    html_escape(&refresh, &mut body);
                    body.extend_from_slice(b"\">");
                }
                other => {
                    body.extend_from_slice(b"{{");
                    body.extend_from_slice(other);
                    body.extend_from_slice(b"}}");
                }
            }
            rest = &after[end + 2..];
        }
        body.extend_from_slice(rest);
    }
    let content_type: &[u8] = if json {
        b"application/json"
    } else {
        b"text/html; charset=utf-8"
    };
    let h = out.start(200, Framing::Length(body.len() as u64), req.keep_alive);
    h.push(b"Content-Type", content_type);
    h.push(b"Cache-Control", b"no-store");
    h.push(b"Refresh", &refresh);
    out.send(ctx, loc, req.vars);
    let body_bytes = if req.head_only {
        0
    } else {
        out.out.extend_from_slice(&body);
        body.len() as u64
    };
    LimitReply {
        status: 200,
        body_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_drop_only_the_ticket() {
        let mut u = Vec::new();
        url_without_ticket(b"/a", Some(b"x=1&sluice_wr=T&y=2"), &mut u);
        assert_eq!(u, b"/a?x=1&y=2");
        u.clear();
        url_without_ticket(b"/a", Some(b"sluice_wr=T"), &mut u);
        assert_eq!(u, b"/a");
        u.clear();
        url_without_ticket(b"/a", Some(b"sluice_wrx=1"), &mut u);
        assert_eq!(u, b"/a?sluice_wrx=1");
        assert_eq!(ticket_param(b"a=1&sluice_wr=XY"), Some(&b"XY"[..]));
        assert_eq!(ticket_param(b"sluice_wrx=1"), None);
    }

    #[test]
    fn cookie_of_the_zone_only() {
        let h = b"GET / HTTP/1.1\r\nCookie: a=1; sluice_wr_shopx=no; sluice_wr_shop=YES\r\n\r\n";
        assert_eq!(cookie_value(h, "shop"), Some(&b"YES"[..]));
        assert_eq!(cookie_value(h, "other"), None);
    }

    #[test]
    fn escaping() {
        let mut o = Vec::new();
        html_escape(b"/a?x=1&y=\"<>", &mut o);
        assert_eq!(o, b"/a?x=1&amp;y=&quot;&lt;&gt;");
        o.clear();
        json_escape(b"a\"b\\c", &mut o);
        assert_eq!(o, b"a\\\"b\\\\c");
    }
}
