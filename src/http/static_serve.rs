//! The static-file content handler (a child of `handler`): root + URI,
//! index files, directory redirects, validators, conditionals and ranges,
//! small files from the open-file cache, larger ones by sendfile.

use super::*;
use crate::config::GzipStatic;

#[allow(clippy::too_many_arguments)]
pub(super) fn serve_static(
    ctx: &mut HttpCtx,
    loc: &LocationConf,
    rv: &ReqVars<'_>,
    head: &Head,
    keep_alive: bool,
    query: Option<&[u8]>,
    out: &mut Sink<'_>,
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
    let mut fs_path = std::mem::take(&mut ctx.fs_path);
    fs_path_for(loc, rv, &mut fs_path);
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

/// The file system path of `rv.path` in `loc` (`root` or `alias`).
pub(super) fn fs_path_for(loc: &LocationConf, rv: &ReqVars<'_>, fs_path: &mut Vec<u8>) {
    fs_path.clear();
    vars::request_filename(loc, rv, fs_path);
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
    out: &mut Sink<'_>,
) -> Reply {
    let err = |ctx: &HttpCtx, code: u16, out: &mut Sink<'_>| {
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
            let len = resp::error_page_len(301);
            let h = out.start(301, Framing::Length(len), keep_alive);
            h.push(b"Content-Type", b"text/html");
            h.push_with(b"Location", |l| {
                uri::percent_encode_path(rv.path, l);
                l.push(b'/');
                if let Some(q) = query {
                    l.push(b'?');
                    l.extend_from_slice(q);
                }
            });
            out.send(ctx, loc, rv);
            let n = if head_only {
                0
            } else {
                resp::error_page(out.out, 301);
                len
            };
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
    out: &mut Sink<'_>,
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
    let now_ms = ctx.now_ms;
    let gz = &loc.gzip;
    // (No header scan unless the location compresses.)
    let accepts_gzip = (gz.on || gz.serve_static != GzipStatic::Off)
        && static_file::accepts_gzip(crate::http::request::find_header(
            &buf[..head.len],
            b"accept-encoding",
        ))
        && head.version_minor >= gz.http_minor
        && !gz
            .disable
            .iter()
            .any(|re| head.user_agent.is_some_and(|ua| re.is_match(at(buf, ua))));
    // gzip_static: FILE.gz in its place when there is one.
    let mut gz_path = Vec::new();
    let precompressed = gz.serve_static != GzipStatic::Off
        && (accepts_gzip || gz.serve_static == GzipStatic::Always)
        && {
            gz_path.extend_from_slice(fs_path);
            gz_path.extend_from_slice(b".gz");
            matches!(ctx.files.lookup(&gz_path, now_ms), Found::Info(i) if !i.is_dir)
        };
    let serve_path: &[u8] = if precompressed { &gz_path } else { fs_path };
    let Found::Info(info) = ctx.files.lookup(serve_path, now_ms) else {
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
            let mut cr = [0u8; 32];
            let cr = range_unsatisfied(info.size, &mut cr);
            let n = error_reply(
                ctx,
                loc,
                rv,
                416,
                keep_alive,
                head_only,
                &[(b"Content-Range", cr)],
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
    // gzip: small files, compressed once and kept with the cached file.
    let content_type = ctx.site.mime(fs_path);
    let compressible =
        !precompressed && gz.on && gz.type_ok(content_type) && info.size >= gz.min_length;
    let gzipped = if compressible && accepts_gzip && status == 200 {
        info.gzipped(gz.level)
    } else {
        None
    };
    let len = gzipped.as_ref().map_or(len, |z| z.len() as u64);
    let framing = if status == 304 {
        Framing::None
    } else {
        Framing::Length(len)
    };
    let h = out.start(status, framing, keep_alive);
    if status != 304 {
        h.push(b"Content-Type", content_type);
    }
    h.push(b"Last-Modified", &info.last_modified);
    if loc.extras.etag {
        match gzipped {
            // Another representation: the validator becomes weak (nginx).
            Some(_) => h.push_with(b"ETag", |v| {
                v.extend_from_slice(b"W/");
                v.extend_from_slice(&info.etag);
            }),
            None => {
                h.push(b"ETag", &info.etag);
                true
            }
        };
    }
    if gzipped.is_some() || precompressed {
        h.push(b"Content-Encoding", b"gzip");
    }
    if gz.vary && (compressible || precompressed) {
        h.push(b"Vary", b"Accept-Encoding");
    }
    if status == 206 {
        h.push_with(b"Content-Range", |v| {
            v.extend_from_slice(b"bytes ");
            resp::put_u64(v, start);
            v.push(b'-');
            resp::put_u64(v, start + len - 1);
            v.push(b'/');
            resp::put_u64(v, info.size);
        });
    }
    if status != 304 && gzipped.is_none() {
        h.push(b"Accept-Ranges", b"bytes");
    }
    // (The file's fields are borrowed from the open-file cache: the filter
    // and the head writer need only the rest of the worker state.)
    let server: &[u8] = if loc.server_tokens {
        &ctx.server_full
    } else {
        b"sluice"
    };
    let resp = RespVars {
        status,
        ..RespVars::default()
    };
    header_filter::apply(loc, rv, &resp, out.head);
    if let Some(s) = out.status {
        out.head.status = s;
    }
    out.head.write_h1(server, &ctx.date, out.out);
    if head_only || status == 304 || len == 0 {
        return Reply {
            status,
            body_bytes: 0,
            file: None,
            close: false,
        };
    }
    if let Some(z) = &gzipped {
        out.out.extend_from_slice(z);
        return Reply {
            status,
            body_bytes: len,
            file: None,
            close: false,
        };
    }
    if let Some(body) = &info.body {
        out.out
            .extend_from_slice(&body[start as usize..(start + len) as usize]);
        return Reply {
            status,
            body_bytes: len,
            file: None,
            close: false,
        };
    }
    match static_file::open_body(serve_path, info) {
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

/// `bytes */SIZE` (a 416's `Content-Range`) in `buf`.
fn range_unsatisfied(size: u64, buf: &mut [u8; 32]) -> &[u8] {
    let mut n = itoa::Buffer::new();
    let digits = n.format(size).as_bytes();
    buf[..8].copy_from_slice(b"bytes */");
    buf[8..8 + digits.len()].copy_from_slice(digits);
    &buf[..8 + digits.len()]
}
