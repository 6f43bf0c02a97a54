//! The request sent upstream: nginx's URI replacement, the client's headers
//! minus hop-by-hop ones, `proxy_set_header` (with variables), and the
//! forwarding headers sluice sets by default (`X-Forwarded-For`,
//! `X-Real-IP`, `X-Forwarded-Proto`).

use crate::config::{ProxyPass, Template};
use crate::http::request::{BodyFraming, MAX_HEADERS};
use crate::http::uri;
use crate::http::vars::{self, ReqVars, RespVars};

/// What the builder needs.
pub struct ReqCtx<'a> {
    /// The request's variables (head, path, query, client...).
    pub vars: &'a ReqVars<'a>,
    /// The matched location's path.
    pub loc_path: &'a str,
    /// The location's `proxy_pass`.
    pub pass: &'a ProxyPass,
    /// `proxy_set_header` list.
    pub set_headers: &'a [(String, Template)],
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
    /// The evaluated URI of a `proxy_pass` with variables: sent as it is.
    pub uri: Option<&'a [u8]>,
}

const CONDITIONALS: &[&[u8]] = &[
    b"if-none-match",
    b"if-modified-since",
    b"if-match",
    b"if-unmodified-since",
    b"if-range",
];

/// Client fields sluice sets itself upstream (besides the hop-by-hop ones).
const REPLACED: &[&[u8]] = &[
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

/// The request URI for the upstream.
pub fn upstream_uri(c: &ReqCtx<'_>, out: &mut Vec<u8>) {
    if let Some(u) = c.uri {
        out.extend_from_slice(u);
        return;
    }
    if c.vars.script.uri_changed {
        // nginx: a URI a `rewrite` changed goes whole, whatever the
        // `proxy_pass` URI part.
        uri::percent_encode_path(c.vars.path, out);
        if let Some(q) = c.vars.query.filter(|q| !q.is_empty()) {
            out.push(b'?');
            out.extend_from_slice(q);
        }
        return;
    }
    match &c.pass.uri {
        Some(u) => {
            out.extend_from_slice(u.as_bytes());
            let rest = c
                .vars
                .path
                .strip_prefix(c.loc_path.as_bytes())
                .unwrap_or(b"");
            let mut enc = Vec::with_capacity(rest.len());
            uri::percent_encode_path(rest, &mut enc);
            if out.last() == Some(&b'/') && enc.first() == Some(&b'/') {
                enc.remove(0);
            }
            out.extend_from_slice(&enc);
            if let Some(q) = c.vars.query {
                out.push(b'?');
                out.extend_from_slice(q);
            }
        }
        None => {
            let target = c.vars.target;
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

/// The headers sluice sets upstream unless `proxy_set_header` names them
/// (compiled once).
fn default_headers() -> &'static [(String, Template)] {
    static DEFAULTS: std::sync::OnceLock<Vec<(String, Template)>> = std::sync::OnceLock::new();
    DEFAULTS.get_or_init(|| {
        [
            ("Host", "$proxy_host"),
            ("X-Real-IP", "$remote_addr"),
            ("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
            ("X-Forwarded-Proto", "$scheme"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), Template::compile(v).unwrap_or_default()))
        .collect()
    })
}

/// Write the upstream request head into `out`.
pub fn build(c: &ReqCtx<'_>, out: &mut Vec<u8>) {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    // The head was parsed before; a failure here leaves no headers to copy.
    let _ = req.parse(c.vars.head_bytes);
    let headers: &[httparse::Header<'_>] = req.headers;
    let client_method = crate::http::request::at(c.vars.head_bytes, c.vars.head.method_span);
    out.extend_from_slice(c.method.unwrap_or(client_method));
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
        if crate::proto::is_hop_by_hop(name)
            || REPLACED.iter().any(|x| lower_is(x))
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
    let defaults = default_headers();
    let defaults = defaults.iter().filter(|(n, _)| !overridden(n.as_bytes()));
    let sets = c.set_headers.iter();
    let none = RespVars::default();
    for (name, value) in defaults.chain(sets) {
        let mark = out.len();
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        let value_start = out.len();
        vars::eval(value, c.vars, &none, out);
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

    fn build_for(raw: &str, loc: &str, pass_uri: Option<&str>, sets: &[(&str, &str)]) -> String {
        let head = crate::http::request::parse_for_test(raw.as_bytes());
        let target = crate::http::request::at(raw.as_bytes(), head.target);
        let t = uri::split_target(target).unwrap();
        let mut norm = Vec::new();
        uri::normalize_path(t.path, &mut norm).unwrap();
        let pass = ProxyPass {
            upstream: 0,
            dynamic: None,
            uri: pass_uri.map(str::to_string),
            tls: None,
        };
        let sets: Vec<(String, Template)> = sets
            .iter()
            .map(|(a, b)| (a.to_string(), Template::compile(b).unwrap()))
            .collect();
        let rv = ReqVars {
            head_bytes: raw.as_bytes(),
            head: &head,
            target,
            path: &norm,
            query: t.query,
            host: head
                .host
                .map(|h| crate::http::request::at(raw.as_bytes(), h)),
            conn: crate::http::vars::ConnVars {
                serial: 1,
                requests: 1,
                peer: "10.0.0.7:4000".parse().unwrap(),
                local: None,
                https: false,
                realip_peer: None,
            },
            server_name: "",
            proxy_host: "app",
            started_unix_ms: 0,
            now_unix_ms: 0,
            set_cookie: b"",
            tls: None,
            captures: &[],
            maps: &[],
            auth_vars: &[],
            script: &crate::http::vars::NO_SCRIPT,
            loc: None,
        };
        let c = ReqCtx {
            vars: &rv,
            loc_path: loc,
            pass: &pass,
            set_headers: &sets,
            http_minor: 1,
            keepalive: true,
            conditional: &[],
            method: None,
            body: head.body,
            uri: None,
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
