//! Phase 3a' (access), nginx's access handlers in nginx's order: `allow` /
//! `deny`, `auth_basic`, `auth_request`, combined as `satisfy` says (`all`:
//! the first refusal answers; `any`: the first module that allows is
//! enough, else 401 if one asked for credentials, else 403). A
//! `limit_except` block replaces the location's rules and authentication
//! for the methods it does not list. `auth_request` runs a subrequest to a
//! URI: a local answer (`return`, a file) is decided here; a proxied one
//! makes the request wait (`Flow::Subrequest`) and come back with the
//! subrequest's status (2xx: go on; 401, 403: that status; other: 500).

use super::{error_reply, rewrite_then_content, Flow, Reply, Req};
use crate::config::{AccessRule, AuthConf};
use crate::http::auth_basic::Check;
use crate::http::header_filter::Sink;
use crate::http::req_state::SubResult;
use crate::http::request::{at, find_header, BodyFraming};
use crate::http::vars::{self, RespVars};
use crate::http::{ctx::HttpCtx, uri};

/// What one access module says.
enum Verdict {
    /// Not configured, or no rule matched.
    Declined,
    /// Allowed.
    Allowed,
    /// Refused with this status (and `WWW-Authenticate` for a 401).
    Refused(u16, Option<Vec<u8>>),
}

/// Run the access modules of `r`'s location; `sub` is the answer of a
/// proxied `auth_request` subrequest this request waited for; `vals` gets
/// the `auth_request_set` variables.
pub(super) fn run(
    ctx: &mut HttpCtx,
    r: &Req<'_>,
    sub: Option<SubResult>,
    vals: &mut Vec<Vec<u8>>,
    out: &mut Sink<'_>,
) -> Flow {
    let loc = r.loc;
    if loc.access.is_empty() && !loc.auth.is_active() {
        return Flow::Next;
    }
    let method = at(r.vars.head_bytes, r.vars.head.method_span);
    let (rules, auth): (&[AccessRule], &AuthConf) = match &loc.auth.limit_except {
        Some(l) if l.limits(method) => (&l.rules, &l.auth),
        _ => (&loc.access, &loc.auth),
    };
    let any = loc.auth.satisfy_any;
    let mut refusal: Option<(u16, Option<Vec<u8>>)> = None;
    let mut sub = sub;
    for module in 0..3 {
        let verdict = match module {
            0 => rules_verdict(r, rules),
            1 => basic_verdict(ctx, r, auth),
            _ => match request_verdict(ctx, r, auth, sub.take(), vals) {
                Ok(v) => v,
                Err(flow) => return flow,
            },
        };
        match verdict {
            Verdict::Declined => {}
            Verdict::Allowed if any => return Flow::Next,
            Verdict::Allowed => {}
            Verdict::Refused(code, www) if !any => return refuse(ctx, r, vals, code, www, out),
            Verdict::Refused(code, www) => {
                if refusal.as_ref().is_none_or(|(c, _)| *c != 401) {
                    refusal = Some((code, www));
                }
            }
        }
    }
    match refusal {
        Some((code, www)) => refuse(ctx, r, vals, code, www, out),
        None => Flow::Next,
    }
}

/// `allow` / `deny`: the first rule that matches the client decides.
fn rules_verdict(r: &Req<'_>, rules: &[AccessRule]) -> Verdict {
    match rules.iter().find(|a| a.matches(r.info.peer)) {
        None => Verdict::Declined,
        Some(a) if a.allow => Verdict::Allowed,
        Some(_) => {
            log::error!(
                "access forbidden by rule, client: {}, request: \"{}\"",
                r.info.peer,
                String::from_utf8_lossy(r.vars.target)
            );
            Verdict::Refused(403, None)
        }
    }
}

/// `auth_basic`: the credentials against the user file.
fn basic_verdict(ctx: &mut HttpCtx, r: &Req<'_>, auth: &AuthConf) -> Verdict {
    let Some(b) = &auth.basic else {
        return Verdict::Declined;
    };
    let head = r.vars.head;
    let header = find_header(&r.vars.head_bytes[..head.len], b"authorization");
    match ctx.auth_files.check(&b.user_file, header) {
        Check::Ok => Verdict::Allowed,
        Check::Error => Verdict::Refused(500, None),
        Check::Denied => {
            let mut realm = Vec::new();
            vars::eval(&b.realm, &r.vars, &RespVars::default(), &mut realm);
            uri::escape_controls(&mut realm, 0);
            let mut v = b"Basic realm=\"".to_vec();
            v.extend_from_slice(&realm);
            v.push(b'"');
            Verdict::Refused(401, Some(v))
        }
    }
}

/// `auth_request`: the subrequest's status, found here for a local answer;
/// `Err(Flow::Subrequest)` when it must be proxied first.
fn request_verdict(
    ctx: &mut HttpCtx,
    r: &Req<'_>,
    auth: &AuthConf,
    sub: Option<SubResult>,
    vals: &mut Vec<Vec<u8>>,
) -> Result<Verdict, Flow> {
    let Some(ar) = &auth.request else {
        return Ok(Verdict::Declined);
    };
    let result = match sub {
        Some(s) => s,
        None => local_subrequest(ctx, r, &ar.uri)?,
    };
    if !ar.sets.is_empty() {
        vals.resize(ar.vars, Vec::new());
        let resp = RespVars {
            status: result.status,
            upstream_head: &result.head,
            upstream_status: if result.head.is_empty() {
                0
            } else {
                result.status
            },
            ..RespVars::default()
        };
        for (i, t) in &ar.sets {
            if let Some(v) = vals.get_mut(*i) {
                v.clear();
                vars::eval(t, &r.vars, &resp, v);
            }
        }
    }
    Ok(match result.status {
        401 => Verdict::Refused(401, result.www_authenticate),
        403 => Verdict::Refused(403, None),
        200..=299 => Verdict::Allowed,
        s => {
            log::error!(
                "auth request unexpected status: {s}, client: {}",
                r.info.peer
            );
            Verdict::Refused(500, None)
        }
    })
}

/// Run the subrequest to `target` in this worker: the server's and the
/// location's rewrite phase (a `return` answers there, as in nginx), then
/// the content phase of the location it selects, into a scratch buffer; a proxied location hands
/// the subrequest (GET, no body, not logged) back as `Flow::Subrequest`.
fn local_subrequest(ctx: &mut HttpCtx, r: &Req<'_>, target: &str) -> Result<SubResult, Flow> {
    let (p, q) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.as_bytes())),
        None => (target, None),
    };
    let mut path = Vec::new();
    if uri::normalize_path(p.as_bytes(), &mut path).is_err() {
        return Ok(SubResult {
            status: 500,
            ..SubResult::default()
        });
    }
    let mut caps = Vec::new();
    let si = r.at.0;
    let li = ctx.site.find_location(si, &path, &mut caps);
    let mut next = *r;
    next.loc = &r.server.locations[li];
    next.at = (si, li);
    next.vars.path = &path;
    next.vars.captures = &caps;
    next.vars.query = q;
    next.head_only = true;
    next.in_error_page = false;
    let mut head = Default::default();
    let mut scratch = Vec::new();
    let mut sink = Sink {
        head: &mut head,
        out: &mut scratch,
        status: None,
    };
    let mut script = r.vars.script.clone();
    match rewrite_then_content(ctx, next, &mut script, true, &mut sink) {
        Flow::Done(reply) => Ok(SubResult {
            status: reply.status,
            ..SubResult::default()
        }),
        Flow::Proxy(mut p) => {
            p.head.body = BodyFraming::None;
            p.body_pending = 0;
            p.subrequest = true;
            p.keep_alive = true;
            Err(Flow::Subrequest(p))
        }
        _ => Ok(SubResult {
            status: 500,
            ..SubResult::default()
        }),
    }
}

/// Answer the refusal: the status page, with `WWW-Authenticate` for a 401
/// (`auth_request_set`'s values known to `add_header ... always`).
fn refuse(
    ctx: &mut HttpCtx,
    r: &Req<'_>,
    vals: &[Vec<u8>],
    code: u16,
    www: Option<Vec<u8>>,
    out: &mut Sink<'_>,
) -> Flow {
    let extra: Vec<(&[u8], &[u8])> = match &www {
        Some(v) => vec![(b"WWW-Authenticate", v)],
        None => Vec::new(),
    };
    let mut v = r.vars;
    v.auth_vars = vals;
    let n = error_reply(ctx, r.loc, &v, code, r.keep_alive, r.head_only, &extra, out);
    Flow::Done(Reply {
        status: code,
        body_bytes: n,
        file: None,
        close: false,
    })
}
