//! The request sent upstream: nginx's URI replacement, the client's headers
//! minus hop-by-hop ones, `proxy_set_header` (with variables), and the
//! forwarding headers sluice sets by default (`X-Forwarded-For`,
//! `X-Real-IP`, `X-Forwarded-Proto`).

use crate::config::ProxyPass;
use crate::http::request::{at, BodyFraming, Head, MAX_HEADERS};
use crate::http::uri;
use std::net::IpAddr;

/// What the builder needs.
pub struct ReqCtx<'a> {
    /// The client's request head, raw.
    pub head_bytes: &'a [u8],
    /// Its parse.
    pub head: &'a Head,
    /// Normalized (decoded) path.
    pub norm_path: &'a [u8],
    /// Query string, if any.
    pub query: Option<&'a [u8]>,
    /// The matched location's path.
    pub loc_path: &'a str,
    /// The location's `proxy_pass`.
    pub pass: &'a ProxyPass,
    /// `$proxy_host`: the upstream's name.
    pub proxy_host: &'a str,
    /// Client address.
    pub client: IpAddr,
    /// `proxy_set_header` list.
    pub set_headers: &'a [(String, String)],
    /// 0 or 1.
    pub http_minor: u8,
    /// Ask the upstream to keep the connection.
    pub keepalive: bool,
    /// Headers the cache adds to revalidate an entry; when present, the
    /// client's own conditional headers are not forwarded.
    pub conditional: &'a [(&'static [u8], Vec<u8>)],
    /// Send this method instead of the client's (HEAD converted to GET).
    pub method: Option<&'a [u8]>,
    /// How the body is framed for the upstream (a chunked body read whole
    /// goes with its length); the client's own framing headers never pass.
    pub body: BodyFraming,
}

const CONDITIONALS: &[&[u8]] = &[
    b"if-none-match",
    b"if-modified-since",
    b"if-match",
    b"if-unmodified-since",
    b"if-range",
];

const HOP_BY_HOP: &[&[u8]] = &[
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"content-length",
    b"expect",
    b"host",
    b"x-real-ip",
    b"x-forwarded-proto",
];

fn header<'a>(headers: &[httparse::Header<'a>], name: &[u8]) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.as_bytes().eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    use std::io::Write;
    let _ = write!(out, "{ip}");
}

/// The request URI for the upstream.
pub fn upstream_uri(c: &ReqCtx<'_>, out: &mut Vec<u8>) {
    match &c.pass.uri {
        Some(u) => {
            out.extend_from_slice(u.as_bytes());
            let rest = c
                .norm_path
                .strip_prefix(c.loc_path.as_bytes())
                .unwrap_or(b"");
            let mut enc = Vec::with_capacity(rest.len());
            uri::percent_encode_path(rest, &mut enc);
            if out.last() == Some(&b'/') && enc.first() == Some(&b'/') {
                enc.remove(0);
            }
            out.extend_from_slice(&enc);
            if let Some(q) = c.query {
                out.push(b'?');
                out.extend_from_slice(q);
            }
        }
        None => {
            let target = at(c.head_bytes, c.head.target);
            match uri::split_target(target) {
                Ok(t) if t.host.is_some() => {
                    out.extend_from_slice(t.path);
                    if let Some(q) = t.query {
                        out.push(b'?');
                        out.extend_from_slice(q);
                    }
                }
                _ => out.extend_from_slice(target),
            }
        }
    }
}

/// Expand `$name` variables of a `proxy_set_header` value.
fn expand(c: &ReqCtx<'_>, headers: &[httparse::Header<'_>], value: &str, out: &mut Vec<u8>) {
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        let name = &value[start..end];
        let host = header(headers, b"host");
        match name {
            "host" => {
                let h = host.unwrap_or(c.proxy_host.as_bytes());
                let h = match h.iter().rposition(|&x| x == b':') {
                    Some(p) if !h.ends_with(b"]") => &h[..p],
                    _ => h,
                };
                out.extend_from_slice(h);
            }
            "http_host" => out.extend_from_slice(host.unwrap_or(b"")),
            "proxy_host" => out.extend_from_slice(c.proxy_host.as_bytes()),
            "remote_addr" => put_ip(out, c.client),
            "scheme" => out.extend_from_slice(b"http"),
            "request_method" => out.extend_from_slice(at(c.head_bytes, c.head.method_span)),
            "request_uri" => out.extend_from_slice(at(c.head_bytes, c.head.target)),
            "uri" => out.extend_from_slice(c.norm_path),
            "args" | "query_string" => out.extend_from_slice(c.query.unwrap_or(b"")),
            "proxy_add_x_forwarded_for" => {
                if let Some(x) = header(headers, b"x-forwarded-for") {
                    out.extend_from_slice(x);
                    out.extend_from_slice(b", ");
                }
                put_ip(out, c.client);
            }
            _ if name.starts_with("cookie_") => {
                let want = &name.as_bytes()[7..];
                let v = header(headers, b"cookie").and_then(|c| {
                    c.split(|&x| x == b';').find_map(|kv| {
                        let kv = kv.trim_ascii();
                        let eq = kv.iter().position(|&x| x == b'=')?;
                        (&kv[..eq] == want).then(|| &kv[eq + 1..])
                    })
                });
                out.extend_from_slice(v.unwrap_or(b""));
            }
            _ if name.starts_with("arg_") => {
                let want = &name.as_bytes()[4..];
                let v = c.query.and_then(|q| {
                    q.split(|&x| x == b'&').find_map(|kv| {
                        let eq = kv.iter().position(|&x| x == b'=').unwrap_or(kv.len());
                        (&kv[..eq] == want).then(|| kv.get(eq + 1..).unwrap_or(b""))
                    })
                });
                out.extend_from_slice(v.unwrap_or(b""));
            }
            _ if name.starts_with("http_") => {
                let want: Vec<u8> = name[5..]
                    .bytes()
                    .map(|x| if x == b'_' { b'-' } else { x })
                    .collect();
                out.extend_from_slice(header(headers, &want).unwrap_or(b""));
            }
            _ => {
                // Unknown variable: keep it literally, as text.
                out.extend_from_slice(&b[i..end]);
            }
        }
        i = end.max(start);
    }
}

/// Expand the variables of a configured string (`proxy_cache_key`) for this request.
pub fn expand_str(c: &ReqCtx<'_>, value: &str, out: &mut Vec<u8>) {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    let _ = req.parse(c.head_bytes);
    expand(c, req.headers, value, out);
}

/// The request's header fields as (name, value) pairs.
pub fn header_pairs(head_bytes: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    let _ = req.parse(head_bytes);
    req.headers
        .iter()
        .map(|h| (h.name.as_bytes(), h.value))
        .collect()
}

/// Write the upstream request head into `out`.
pub fn build(c: &ReqCtx<'_>, out: &mut Vec<u8>) {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    // The head was parsed before; a failure here leaves no headers to copy.
    let _ = req.parse(c.head_bytes);
    let headers: &[httparse::Header<'_>] = req.headers;
    out.extend_from_slice(c.method.unwrap_or(at(c.head_bytes, c.head.method_span)));
    out.push(b' ');
    upstream_uri(c, out);
    out.extend_from_slice(if c.http_minor == 0 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    let overridden = |name: &[u8]| {
        c.set_headers
            .iter()
            .any(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
    };
    let connection_tokens = header(headers, b"connection").unwrap_or(b"");
    for h in headers {
        let name = h.name.as_bytes();
        let lower_is = |x: &[u8]| name.eq_ignore_ascii_case(x);
        if HOP_BY_HOP.iter().any(|x| lower_is(x))
            || (!c.conditional.is_empty() && CONDITIONALS.iter().any(|x| lower_is(x)))
            || overridden(name)
            || (lower_is(b"x-forwarded-for") && !overridden(b"x-forwarded-for"))
            || connection_tokens
                .split(|&x| x == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(name))
        {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    let mut defaults: Vec<(&str, &str)> = vec![
        ("Host", "$proxy_host"),
        ("X-Real-IP", "$remote_addr"),
        ("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
        ("X-Forwarded-Proto", "$scheme"),
    ];
    defaults.retain(|(n, _)| !overridden(n.as_bytes()));
    let sets = c.set_headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    for (name, value) in defaults.into_iter().chain(sets) {
        let mark = out.len();
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        let value_start = out.len();
        expand(c, headers, value, out);
        if out.len() == value_start {
            // An empty value removes the header (nginx).
            out.truncate(mark);
            continue;
        }
        // `$uri` and `$arg_*` may hold decoded CR/LF: never a new header line.
        uri::escape_controls(out, value_start);
        out.extend_from_slice(b"\r\n");
    }
    match c.body {
        BodyFraming::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            crate::http::response::put_u64(out, n);
            out.extend_from_slice(b"\r\n");
        }
        BodyFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        BodyFraming::None => {}
    }
    for (n, v) in c.conditional {
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    if c.http_minor == 0 || !c.keepalive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{parse, HeadLimits};

    fn build_for(raw: &str, loc: &str, pass_uri: Option<&str>, sets: &[(&str, &str)]) -> String {
        let head = parse(
            raw.as_bytes(),
            &HeadLimits {
                line_bytes: 8192,
                total_bytes: 32768,
            },
        )
        .unwrap()
        .unwrap();
        let t = uri::split_target(at(raw.as_bytes(), head.target)).unwrap();
        let mut norm = Vec::new();
        uri::normalize_path(t.path, &mut norm).unwrap();
        let pass = ProxyPass {
            upstream: 0,
            uri: pass_uri.map(str::to_string),
        };
        let sets: Vec<(String, String)> = sets
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let c = ReqCtx {
            head_bytes: raw.as_bytes(),
            head: &head,
            norm_path: &norm,
            query: t.query,
            loc_path: loc,
            pass: &pass,
            proxy_host: "app",
            client: "10.0.0.7".parse().unwrap(),
            set_headers: &sets,
            http_minor: 1,
            keepalive: true,
            conditional: &[],
            method: None,
            body: head.body,
        };
        let mut out = Vec::new();
        build(&c, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn uri_replacement_like_nginx() {
        let r = build_for(
            "GET /api/a%20b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
            "/api/",
            Some("/v2/"),
            &[],
        );
        assert!(r.starts_with("GET /v2/a%20b?x=1 HTTP/1.1\r\n"), "{r}");
        let r = build_for(
            "GET /api/a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
            "/api/",
            None,
            &[],
        );
        assert!(r.starts_with("GET /api/a?x=1 HTTP/1.1\r\n"), "{r}");
    }

    #[test]
    fn hop_by_hop_removed_forwarding_added() {
        let r = build_for(
            "POST /x HTTP/1.1\r\nHost: h:81\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 1.2.3.4\r\nContent-Length: 3\r\nAccept: */*\r\n\r\n",
            "/",
            None,
            &[],
        );
        assert!(!r.contains("X-Secret"), "{r}");
        assert!(!r.contains("Keep-Alive"), "{r}");
        assert!(r.contains("Host: app\r\n"), "{r}");
        assert!(r.contains("X-Forwarded-For: 1.2.3.4, 10.0.0.7\r\n"), "{r}");
        assert!(r.contains("X-Real-IP: 10.0.0.7\r\n"), "{r}");
        assert!(r.contains("X-Forwarded-Proto: http\r\n"), "{r}");
        assert!(r.contains("Accept: */*\r\n"), "{r}");
        assert!(r.contains("Content-Length: 3\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n"));
    }

    #[test]
    fn set_header_with_variables_and_removal() {
        let r = build_for(
            "GET / HTTP/1.1\r\nHost: example.com:8080\r\nX-Drop: y\r\nUser-Agent: ua\r\n\r\n",
            "/",
            None,
            &[
                ("Host", "$host"),
                ("X-Drop", ""),
                ("X-UA", "[$http_user_agent]"),
            ],
        );
        assert!(r.contains("Host: example.com\r\n"), "{r}");
        assert!(!r.contains("X-Drop"), "{r}");
        assert!(r.contains("X-UA: [ua]\r\n"), "{r}");
        assert_eq!(r.matches("Host:").count(), 1);
    }
}
