//! The static-file content handler (a child of `handler`): root + URI,
//! index files, directory redirects, validators, conditionals and ranges,
//! small files from the open-file cache, larger ones by sendfile.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn serve_static(
    ctx: &mut HttpCtx,
    loc: &LocationConf,
    rv: &ReqVars<'_>,
    head: &Head,
    keep_alive: bool,
    query: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Reply {
    let head_only = head.method == Method::Head;
    if !matches!(head.method, Method::Get | Method::Head) {
        let n = error_reply(
            ctx,
            loc,
            rv,
            405,
            keep_alive,
            false,
            &[(b"Allow", b"GET, HEAD")],
            out,
        );
        return Reply {
            status: 405,
            body_bytes: n,
            file: None,
            close: false,
        };
    }
    use std::os::unix::ffi::OsStrExt;
    let mut fs_path = std::mem::take(&mut ctx.fs_path);
    fs_path.clear();
    fs_path.extend_from_slice(loc.root.as_os_str().as_bytes());
    if fs_path.last() == Some(&b'/') {
        fs_path.pop();
    }
    fs_path.extend_from_slice(rv.path);
    let reply = static_lookup(
        ctx,
        loc,
        rv,
        keep_alive,
        head_only,
        query,
        &mut fs_path,
        out,
    );
    ctx.fs_path = fs_path;
    reply
}

#[allow(clippy::too_many_arguments)]
pub(super) fn static_lookup(
    ctx: &mut HttpCtx,
    loc: &LocationConf,
    rv: &ReqVars<'_>,
    keep_alive: bool,
    head_only: bool,
    query: Option<&[u8]>,
    fs_path: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Reply {
    let err = |ctx: &HttpCtx, code: u16, out: &mut Vec<u8>| {
        let n = error_reply(ctx, loc, rv, code, keep_alive, head_only, &[], out);
        Reply {
            status: code,
            body_bytes: n,
            file: None,
            close: false,
        }
    };
    if fs_path.last() == Some(&b'/') {
        let base = fs_path.len();
        for idx in &loc.index {
            fs_path.truncate(base);
            fs_path.extend_from_slice(idx.as_bytes());
            if let Found::Info(i) = ctx.files.lookup(fs_path, ctx.now_ms) {
                if !i.is_dir {
                    return send_file(ctx, loc, rv, keep_alive, head_only, fs_path, out);
                }
            }
        }
        fs_path.truncate(base);
        return match ctx.files.lookup(fs_path, ctx.now_ms) {
            Found::Info(i) if i.is_dir => err(ctx, 403, out),
            Found::Forbidden => err(ctx, 403, out),
            Found::Error => err(ctx, 500, out),
            _ => err(ctx, 404, out),
        };
    }
    match ctx.files.lookup(fs_path, ctx.now_ms) {
        Found::Info(i) if i.is_dir => {
            let mut location = Vec::with_capacity(rv.path.len() + 2);
            uri::percent_encode_path(rv.path, &mut location);
            location.push(b'/');
            if let Some(q) = query {
                location.push(b'?');
                location.extend_from_slice(q);
            }
            let n = error_reply(
                ctx,
                loc,
                rv,
                301,
                keep_alive,
                head_only,
                &[(b"Location", &location)],
                out,
            );
            Reply {
                status: 301,
                body_bytes: n,
                file: None,
                close: false,
            }
        }
        Found::Info(_) => send_file(ctx, loc, rv, keep_alive, head_only, fs_path, out),
        Found::NotFound => err(ctx, 404, out),
        Found::Forbidden => err(ctx, 403, out),
        Found::Error => err(ctx, 500, out),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn send_file(
    ctx: &mut HttpCtx,
    loc: &LocationConf,
    rv: &ReqVars<'_>,
    keep_alive: bool,
    head_only: bool,
    fs_path: &[u8],
    out: &mut Vec<u8>,
) -> Reply {
    let (head, buf) = (rv.head, rv.head_bytes);
    let get = |s: Option<crate::http::request::Span>| s.map(|s| at(buf, s));
    let conds = Conditions {
        if_none_match: get(head.if_none_match),
        if_modified_since: get(head.if_modified_since),
        if_match: get(head.if_match),
        if_unmodified_since: get(head.if_unmodified_since),
        range: if head.method == Method::Get {
            get(head.range)
        } else {
            None
        },
        if_range: get(head.if_range),
    };
    // Disjoint borrows of the worker state: no per-request copies.
    let now_ms = ctx.now_ms;
    // (Not ctx.server_header(): that would borrow all of ctx.)
    let server: &[u8] = if loc.server_tokens {
        &ctx.server_full
    } else {
        b"sluice"
    };
    let content_type = ctx.site.mime(fs_path);
    let date = &ctx.date;
    let Found::Info(info) = ctx.files.lookup(fs_path, now_ms) else {
        return Reply {
            status: 404,
            body_bytes: error_reply(ctx, loc, rv, 404, keep_alive, head_only, &[], out),
            file: None,
            close: false,
        };
    };
    let decision = static_file::decide(info, &conds);
    let (status, start, len) = match decision {
        Decision::Full => (200, 0, info.size),
        Decision::Partial(s, e) => (206, s, e - s + 1),
        Decision::NotModified => (304, 0, 0),
        Decision::PreconditionFailed => {
            let n = error_reply(ctx, loc, rv, 412, keep_alive, head_only, &[], out);
            return Reply {
                status: 412,
                body_bytes: n,
                file: None,
                close: false,
            };
        }
        Decision::Unsatisfiable => {
            let cr = format!("bytes */{}", info.size);
            let n = error_reply(
                ctx,
                loc,
                rv,
                416,
                keep_alive,
                head_only,
                &[(b"Content-Range", cr.as_bytes())],
                out,
            );
            return Reply {
                status: 416,
                body_bytes: n,
                file: None,
                close: false,
            };
        }
    };
    resp::begin(
        out,
        &HeadParams {
            status,
            date,
            server,
            content_type: if status == 304 {
                None
            } else {
                Some(content_type)
            },
            content_length: if status == 304 { None } else { Some(len) },
            keep_alive,
        },
    );
    resp::header(out, b"Last-Modified", &info.last_modified);
    resp::header(out, b"ETag", &info.etag);
    if status == 206 {
        out.extend_from_slice(b"Content-Range: bytes ");
        resp::put_u64(out, start);
        out.push(b'-');
        resp::put_u64(out, start + len - 1);
        out.push(b'/');
        resp::put_u64(out, info.size);
        out.extend_from_slice(b"\r\n");
    }
    if status != 304 {
        out.extend_from_slice(b"Accept-Ranges: bytes\r\n");
    }
    let resp = RespVars {
        status,
        ..RespVars::default()
    };
    header_filter::write(loc, rv, &resp, out);
    resp::end(out);
    if head_only || status == 304 || len == 0 {
        return Reply {
            status,
            body_bytes: 0,
            file: None,
            close: false,
        };
    }
    if let Some(body) = &info.body {
        out.extend_from_slice(&body[start as usize..(start + len) as usize]);
        return Reply {
            status,
            body_bytes: len,
            file: None,
            close: false,
        };
    }
    match static_file::open_body(fs_path, info) {
        Ok(f) => Reply {
            status,
            body_bytes: len,
            file: Some((f, start, len)),
            close: false,
        },
        Err(e) => {
            // The head is already queued: the only honest move is to close.
            log::error!("open {} failed: {e}", String::from_utf8_lossy(fs_path));
            Reply {
                status,
                body_bytes: 0,
                file: None,
                close: true,
            }
        }
    }
}
