//! Phase 2 (rewrite), nginx's `ngx_http_rewrite_module`: the server's ops
//! (before a location is chosen), then the location's, in config order —
//! `rewrite` (captures, flags, arguments), `return`, `set`, `if` (its block
//! may move the request into the block's configuration), `break`. A URI
//! changed by `last` (or by a rewrite without a flag) selects a location
//! again, at most [`MAX_REDIRECTS`] times in all, then 500 as nginx.
//!
//! A request where neither the server nor the location has an op costs one
//! check: its variables point at `vars::NO_SCRIPT`.

use super::*;
use crate::config::{Cond, FileTest, Op, RewriteFlag, RewriteOp};
use crate::http::vars::ScriptVars;

/// How a run of ops ended.
enum Step<'c> {
    /// Every op ran.
    Next,
    /// `break`, `rewrite ... break`: the request stays where it is.
    Break,
    /// `rewrite ... last`: select a location for the new URI.
    Last,
    /// `return`.
    Return(&'c ReturnConf),
    /// A redirecting `rewrite`: this status, `ScriptVars::location`.
    Redirect(u16),
    /// 500 (a rewritten URI of zero length).
    Error,
}

/// One run of ops.
struct Run<'c> {
    server: &'c ServerConf,
    /// The location the request is in (an `if` block moves it).
    loc: usize,
    /// `rewrite_log` of the ops' level.
    log: bool,
    /// An unflagged `rewrite` changed the URI (a location is selected again
    /// once the ops end, unless a `break` follows).
    changed: bool,
    scratch: Vec<u8>,
    tmp: Vec<u8>,
    spans: Vec<(u32, u32)>,
}

/// The variables as the ops see them: the request's, with the rewritten
/// URI and arguments and what the ops set.
fn vars<'s>(base: &ReqVars<'s>, st: &'s ScriptVars, loc: &'s LocationConf) -> ReqVars<'s> {
    ReqVars {
        path: &st.uri,
        query: st.has_args.then_some(&st.args[..]),
        script: st,
        loc: Some(loc),
        ..*base
    }
}

/// Whether the request's server or location has rewrite ops.
pub(super) fn configured(r: &Req<'_>) -> bool {
    !r.server.rewrite.ops.is_empty() || !r.loc.rewrite.ops.is_empty()
}

/// Run the phase for `r`, with `st` (the request's script state, its
/// variables already cleared) for what it sets. Returns the request as the
/// later phases see it (its location, URI, arguments, variables) and
/// whether it was answered (`Flow::Done`) or goes on (`Flow::Next`).
/// `server_ops`: the server's ops run too (not for a named location).
pub(super) fn run<'a>(
    ctx: &mut HttpCtx,
    r: Req<'a>,
    st: &'a mut ScriptVars,
    server_ops: bool,
    out: &mut Sink<'_>,
) -> (Req<'a>, Flow) {
    let server = r.server;
    let si = r.at.0;
    st.begin(r.vars.path, r.vars.query);
    let mut run = Run {
        server,
        loc: r.at.1,
        log: server.rewrite.log,
        changed: false,
        scratch: Vec::new(),
        tmp: Vec::new(),
        spans: Vec::new(),
    };
    let mut redirects = r.redirects;
    let mut step = Step::Next;
    if server_ops && !server.rewrite.ops.is_empty() {
        st.uninit_warn = server.rewrite.uninit_warn;
        step = exec(&mut run, &r.vars, &server.rewrite.ops, st);
        if matches!(step, Step::Next | Step::Break | Step::Last) {
            step = Step::Next;
            if st.uri_changed {
                run.loc = find_location(ctx, si, st);
            }
        }
    }
    if let Step::Next = step {
        loop {
            let loc = &server.locations[run.loc];
            if loc.rewrite.ops.is_empty() {
                break;
            }
            run.log = loc.rewrite.log;
            run.changed = false;
            st.uninit_warn = loc.rewrite.uninit_warn;
            step = exec(&mut run, &r.vars, &loc.rewrite.ops, st);
            let again = match step {
                Step::Last => true,
                Step::Next => run.changed,
                _ => false,
            };
            if !again {
                break;
            }
            step = Step::Next;
            if redirects >= MAX_REDIRECTS {
                log::error!(
                    "rewrite or internal redirection cycle while processing \"{}\", client: {}",
                    String::from_utf8_lossy(&st.uri),
                    r.info.peer
                );
                step = Step::Error;
                break;
            }
            redirects += 1;
            run.loc = find_location(ctx, si, st);
        }
    }
    let st: &'a ScriptVars = st;
    let mut next = r;
    next.redirects = redirects;
    move_to(ctx, &mut next, run.loc);
    next.vars.path = &st.uri;
    next.vars.query = st.has_args.then_some(&st.args[..]);
    next.vars.script = st;
    let flow = match step {
        Step::Next | Step::Break | Step::Last => Flow::Next,
        Step::Return(ret) => {
            let mark = out.out.len();
            let reply = do_return(
                ctx,
                next.loc,
                &next.vars,
                ret,
                next.head_only,
                next.keep_alive,
                out,
            );
            if ret.text.is_none() && ret.code >= 400 {
                after_content(ctx, &next, reply, mark, out)
            } else {
                Flow::Done(reply)
            }
        }
        Step::Redirect(code) => {
            let n = error_reply(
                ctx,
                next.loc,
                &next.vars,
                code,
                next.keep_alive,
                next.head_only,
                &[(b"Location", &st.location)],
                out,
            );
            Flow::Done(Reply {
                status: code,
                body_bytes: n,
                file: None,
                close: false,
            })
        }
        Step::Error => error_page(ctx, &next, 500, out),
    };
    (next, flow)
}

/// The location for the rewritten URI; a regex location's captures become
/// `$1`..`$9`.
fn find_location(ctx: &HttpCtx, si: usize, st: &mut ScriptVars) -> usize {
    let mut caps = std::mem::take(&mut st.captures);
    let li = ctx.site.find_location(si, &st.uri, &mut caps);
    if caps.is_empty() {
        // A prefix location: the last regex's captures stay.
        caps.clear();
        if st.has_captures {
            caps.extend_from_slice(&st.captures);
        }
    } else {
        st.subject.clear();
        st.subject.extend_from_slice(&st.uri);
        st.has_captures = true;
    }
    st.captures = caps;
    li
}

/// Put `r` in location `li` of its server (the connection settings it
/// derives from the location follow).
fn move_to(ctx: &HttpCtx, r: &mut Req<'_>, li: usize) {
    if r.at.1 == li {
        return;
    }
    let loc = &r.server.locations[li];
    let head = r.vars.head;
    let unread_body =
        head.expect_continue && head.body != BodyFraming::None && r.info.body_pending == 0;
    r.loc = loc;
    r.at.1 = li;
    r.requested_keep_alive = head.keep_alive
        && !ctx.draining
        && loc.keepalive_timeout_ms > 0
        && r.info.requests < loc.keepalive_requests;
    r.keep_alive = r.requested_keep_alive && !unread_body;
    r.vars.loc = Some(loc);
}

/// Run `ops` in order.
fn exec<'c>(run: &mut Run<'c>, base: &ReqVars<'c>, ops: &'c [Op], st: &mut ScriptVars) -> Step<'c> {
    let none = RespVars::default();
    for op in ops {
        let loc = &run.server.locations[run.loc];
        match op {
            Op::Break => {
                run.changed = false;
                return Step::Break;
            }
            Op::Return(ret) => return Step::Return(ret),
            Op::Set { var, args, value } => {
                run.scratch.clear();
                vars::eval(value, &vars(base, st, loc), &none, &mut run.scratch);
                if *args {
                    st.args.clear();
                    st.args.extend_from_slice(&run.scratch);
                    st.has_args = !st.args.is_empty();
                } else {
                    st.set(*var, &run.scratch);
                }
            }
            Op::If { cond, ops, loc } => {
                if test(run, base, cond, st) {
                    if let Some(l) = loc {
                        run.loc = *l;
                    }
                    match exec(run, base, ops, st) {
                        Step::Next => {}
                        other => return other,
                    }
                }
            }
            Op::Rewrite(rw) => match rewrite(run, base, rw, st) {
                Step::Next => {}
                other => return other,
            },
        }
    }
    Step::Next
}

/// Record a regex match of `subject` (already in `run.tmp`) with the spans
/// in `run.spans`: `$1`..`$9` and the named captures.
fn matched(run: &mut Run<'_>, names: &[(usize, usize)], st: &mut ScriptVars) {
    st.subject.clear();
    st.subject.extend_from_slice(&run.tmp);
    st.captures.clear();
    st.captures.extend_from_slice(&run.spans);
    st.has_captures = true;
    for &(group, var) in names {
        let value = match run.spans.get(group) {
            Some(&(s, e)) if s != u32::MAX => &run.tmp[s as usize..e as usize],
            _ => &b""[..],
        };
        st.set(var, value);
    }
}

/// Match `re` against `run.tmp`; the spans go into `run.spans`.
fn regex_match(run: &mut Run<'_>, re: &regex::bytes::Regex) -> bool {
    run.spans.clear();
    let Some(c) = re.captures(&run.tmp) else {
        return false;
    };
    run.spans.extend(
        c.iter()
            .map(|m| m.map_or((u32::MAX, u32::MAX), |m| (m.start() as u32, m.end() as u32))),
    );
    true
}

fn log_match(run: &Run<'_>, base: &ReqVars<'_>, re: &regex::bytes::Regex, hit: bool) {
    if run.log {
        log::info!(
            "\"{}\" {} \"{}\", client: {}, request: \"{} {}\"",
            re.as_str(),
            if hit { "matches" } else { "does not match" },
            String::from_utf8_lossy(&run.tmp),
            base.conn.peer.ip(),
            String::from_utf8_lossy(at(base.head_bytes, base.head.method_span)),
            String::from_utf8_lossy(base.target),
        );
    }
}

/// An `if`'s condition.
fn test(run: &mut Run<'_>, base: &ReqVars<'_>, cond: &Cond, st: &mut ScriptVars) -> bool {
    let none = RespVars::default();
    let loc = &run.server.locations[run.loc];
    run.tmp.clear();
    match cond {
        Cond::Var(t) => {
            vars::eval(t, &vars(base, st, loc), &none, &mut run.tmp);
            !run.tmp.is_empty() && run.tmp != b"0"
        }
        Cond::Eq { var, value, negate } => {
            let v = vars(base, st, loc);
            vars::eval(var, &v, &none, &mut run.tmp);
            run.scratch.clear();
            vars::eval(value, &v, &none, &mut run.scratch);
            (run.tmp == run.scratch) != *negate
        }
        Cond::Regex {
            var,
            regex,
            negate,
            names,
        } => {
            vars::eval(var, &vars(base, st, loc), &none, &mut run.tmp);
            let hit = regex_match(run, regex);
            log_match(run, base, regex, hit);
            if hit {
                matched(run, names, st);
            }
            hit != *negate
        }
        Cond::File { test, path, negate } => {
            use std::os::unix::ffi::OsStrExt;
            use std::os::unix::fs::PermissionsExt;
            vars::eval(path, &vars(base, st, loc), &none, &mut run.tmp);
            let meta = std::fs::metadata(std::ffi::OsStr::from_bytes(&run.tmp));
            let ok = match (test, meta) {
                (_, Err(_)) => false,
                (FileTest::File, Ok(m)) => m.is_file(),
                (FileTest::Dir, Ok(m)) => m.is_dir(),
                (FileTest::Exists, Ok(_)) => true,
                (FileTest::Exec, Ok(m)) => m.permissions().mode() & 0o100 != 0,
            };
            ok != *negate
        }
    }
}

/// `rewrite`: on a match, the new URI (and arguments), or a redirect.
fn rewrite<'c>(
    run: &mut Run<'c>,
    base: &ReqVars<'c>,
    rw: &'c RewriteOp,
    st: &mut ScriptVars,
) -> Step<'c> {
    run.tmp.clear();
    run.tmp.extend_from_slice(&st.uri);
    let hit = regex_match(run, &rw.regex);
    log_match(run, base, &rw.regex, hit);
    if !hit {
        return Step::Next;
    }
    matched(run, &rw.names, st);
    let loc = &run.server.locations[run.loc];
    run.scratch.clear();
    vars::eval(
        &rw.replacement,
        &vars(base, st, loc),
        &RespVars::default(),
        &mut run.scratch,
    );
    let keep_args = !rw.drop_args && st.has_args && !st.args.is_empty();
    if let RewriteFlag::Redirect | RewriteFlag::Permanent = rw.flag {
        st.location.clear();
        unescape_redirect(&run.scratch, &mut st.location);
        if keep_args {
            let sep = if run.scratch.contains(&b'?') {
                b'&'
            } else {
                b'?'
            };
            st.location.push(sep);
            st.location.extend_from_slice(&st.args);
        }
        uri::escape_controls(&mut st.location, 0);
        if run.log {
            log::info!(
                "rewritten redirect: \"{}\", client: {}",
                String::from_utf8_lossy(&st.location),
                base.conn.peer.ip()
            );
        }
        return Step::Redirect(if rw.flag == RewriteFlag::Permanent {
            301
        } else {
            302
        });
    }
    let (new_uri, new_args) = match run.scratch.iter().position(|&b| b == b'?') {
        Some(q) => (&run.scratch[..q], Some(&run.scratch[q + 1..])),
        None => (&run.scratch[..], None),
    };
    if new_uri.is_empty() {
        log::error!(
            "the rewritten URI has a zero length, client: {}",
            base.conn.peer.ip()
        );
        return Step::Error;
    }
    match new_args {
        Some(a) => {
            run.tmp.clear();
            run.tmp.extend_from_slice(a);
            if keep_args {
                run.tmp.push(b'&');
                run.tmp.extend_from_slice(&st.args);
            }
            std::mem::swap(&mut st.args, &mut run.tmp);
            st.has_args = true;
        }
        None if rw.drop_args => {
            st.args.clear();
            st.has_args = false;
        }
        None => {}
    }
    st.uri.clear();
    st.uri.extend_from_slice(new_uri);
    st.uri_changed = true;
    if run.log {
        log::info!(
            "rewritten data: \"{}\", args: \"{}\", client: {}",
            String::from_utf8_lossy(&st.uri),
            String::from_utf8_lossy(&st.args),
            base.conn.peer.ip()
        );
    }
    match rw.flag {
        RewriteFlag::Last => Step::Last,
        RewriteFlag::Break => {
            run.changed = false;
            Step::Break
        }
        _ => {
            run.changed = true;
            Step::Next
        }
    }
}

/// nginx's `NGX_UNESCAPE_REDIRECT`: before the `?`, `%XX` becomes the byte
/// when it is a printable character after `%`; everything else stays.
fn unescape_redirect(s: &[u8], out: &mut Vec<u8>) {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut i = 0;
    let query = s.iter().position(|&b| b == b'?').unwrap_or(s.len());
    while i < s.len() {
        if i < query && s[i] == b'%' && i + 2 < s.len().min(query) + 1 {
            if let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            ) {
                let ch = h << 4 | l;
                if ch > b'%' && ch < 0x7f {
                    out.push(ch);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(s[i]);
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::unescape_redirect;

    #[test]
    fn redirect_unescaping_is_nginx_s() {
        let mut out = Vec::new();
        unescape_redirect(b"/a%41%20b%2F?x=%41", &mut out);
        assert_eq!(out, b"/aA%20b/?x=%41");
        out.clear();
        unescape_redirect(b"/x%4", &mut out);
        assert_eq!(out, b"/x%4");
    }
}
