//! Request head parsing: httparse over the connection's read buffer, keeping
//! offsets (not copies) of the parts later phases need, and the framing rules
//! that prevent request smuggling (CL+TE, differing CLs, unknown codings).

/// A byte range `start..end` inside the read buffer (relative to the head start).
pub type Span = (u32, u32);

/// Most header fields accepted in one request.
pub const MAX_HEADERS: usize = 128;

/// Methods the core distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
    /// PATCH
    Patch,
    /// Anything else (a valid token).
    Other,
}

impl Method {
    fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// Content-Length bytes.
    Length(u64),
    /// Transfer-Encoding: chunked.
    Chunked,
}

/// A parsed request head. Spans are relative to the first byte of the head.
#[derive(Debug, Clone)]
pub struct Head {
    /// Length of the head including the blank line.
    pub len: usize,
    /// Method.
    pub method: Method,
    /// Method bytes.
    pub method_span: Span,
    /// Request target as sent.
    pub target: Span,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1 (and for a stream of an HTTP/2
    /// connection, whose head the connection made as HTTP/1.1).
    pub version_minor: u8,
    /// The request came on an HTTP/2 stream (`HTTP/2.0` in logs).
    pub h2: bool,
    /// Host header.
    pub host: Option<Span>,
    /// Keep the connection open after the response (version + Connection).
    pub keep_alive: bool,
    /// Body framing.
    pub body: BodyFraming,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// If-None-Match.
    pub if_none_match: Option<Span>,
    /// If-Modified-Since.
    pub if_modified_since: Option<Span>,
    /// If-Match.
    pub if_match: Option<Span>,
    /// If-Unmodified-Since.
    pub if_unmodified_since: Option<Span>,
    /// Range.
    pub range: Option<Span>,
    /// If-Range.
    pub if_range: Option<Span>,
    /// Referer.
    pub referer: Option<Span>,
    /// User-Agent.
    pub user_agent: Option<Span>,
    /// Accept.
    pub accept: Option<Span>,
}

/// Why a head was refused; each maps to one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// 400: malformed, missing Host, smuggling attempt.
    BadRequest,
    /// 414: request line longer than one large header buffer.
    UriTooLong,
    /// 431: a header line or the whole head too large, or too many fields.
    HeadersTooLarge,
    /// 501: a transfer coding other than chunked.
    NotImplemented,
    /// 505: HTTP version other than 1.0/1.1.
    VersionNotSupported,
    /// 417: an Expect other than 100-continue.
    ExpectationFailed,
}

impl HeadError {
    /// The response status.
    pub fn status(self) -> u16 {
        match self {
            HeadError::BadRequest => 400,
            HeadError::UriTooLong => 414,
            HeadError::HeadersTooLarge => 431,
            HeadError::NotImplemented => 501,
            HeadError::VersionNotSupported => 505,
            HeadError::ExpectationFailed => 417,
        }
    }
}

/// Size limits for the head (`large_client_header_buffers COUNT SIZE`).
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Longest request line or header line.
    pub line_bytes: usize,
    /// Longest head in total.
    pub total_bytes: usize,
}

fn span(buf: &[u8], part: &[u8]) -> Span {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    (start as u32, (start + part.len()) as u32)
}

/// Byte slice of a span.
pub fn at(buf: &[u8], s: Span) -> &[u8] {
    &buf[s.0 as usize..s.1 as usize]
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

/// A `Content-Length` value: ASCII digits only (no sign, no list), at most
/// 19 of them, no overflow.
pub fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add((d - b'0') as u64)
    })
}

fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

/// Decide why an incomplete head that has outgrown its buffer is refused.
fn too_large(buf: &[u8], limits: &HeadLimits) -> HeadError {
    match buf.iter().position(|&b| b == b'\n') {
        None => HeadError::UriTooLong,
        Some(eol) if eol > limits.line_bytes => HeadError::UriTooLong,
        Some(_) => HeadError::HeadersTooLarge,
    }
}

/// Parse a head at the start of `buf`. `Ok(None)`: need more bytes.
pub fn parse(buf: &[u8], limits: &HeadLimits) -> Result<Option<Head>, HeadError> {
    // Tolerate empty lines before a request line (RFC 9112 §2.2).
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            let first_eol = buf.iter().position(|&b| b == b'\n');
            if first_eol.unwrap_or(buf.len()) > limits.line_bytes {
                return Err(HeadError::UriTooLong);
            }
            let last_eol = buf.iter().rposition(|&b| b == b'\n').unwrap_or(0);
            if buf.len() > limits.total_bytes || buf.len() - last_eol > limits.line_bytes {
                return Err(too_large(buf, limits));
            }
            return Ok(None);
        }
        Err(httparse::Error::Version) => {
            // httparse reports any HTTP/x.y it cannot take as Version; only a
            // well-formed HTTP/d.d is a version problem, the rest is malformed.
            return Err(if looks_like_http_version(buf) {
                HeadError::VersionNotSupported
            } else {
                HeadError::BadRequest
            });
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::HeadersTooLarge),
        Err(_) => return Err(HeadError::BadRequest),
    };
    if len > limits.total_bytes {
        return Err(too_large(buf, limits));
    }
    let method = req.method.unwrap_or("");
    let path = req.path.unwrap_or("");
    if path.is_empty() {
        return Err(HeadError::BadRequest);
    }
    let request_line = method.len() + path.len() + 10;
    if request_line > limits.line_bytes {
        return Err(HeadError::UriTooLong);
    }
    let version_minor = req.version.unwrap_or(1);
    let mut head = Head {
        len,
        method: Method::from_bytes(method.as_bytes()),
        method_span: span(buf, method.as_bytes()),
        target: span(buf, path.as_bytes()),
        version_minor,
        h2: false,
        host: None,
        keep_alive: version_minor == 1,
        body: BodyFraming::None,
        expect_continue: false,
        if_none_match: None,
        if_modified_since: None,
        if_match: None,
        if_unmodified_since: None,
        range: None,
        if_range: None,
        referer: None,
        user_agent: None,
        accept: None,
    };
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = trim(h.value);
        if name.len() + h.value.len() + 4 > limits.line_bytes {
            return Err(HeadError::HeadersTooLarge);
        }
        let sp = Some(span(buf, value));
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                if head.host.is_some() || value.is_empty() || value.contains(&b'/') {
                    return Err(HeadError::BadRequest);
                }
                head.host = sp;
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                if has_token(value, b"close") {
                    head.keep_alive = false;
                } else if has_token(value, b"keep-alive") {
                    head.keep_alive = true;
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let n = parse_u64(value).ok_or(HeadError::BadRequest)?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(HeadError::BadRequest);
                }
                content_length = Some(n);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                if transfer_encoding || !value.eq_ignore_ascii_case(b"chunked") {
                    // Several codings or anything but chunked.
                    let chunked_only = value
                        .split(|&b| b == b',')
                        .all(|t| trim(t).eq_ignore_ascii_case(b"chunked"));
                    return Err(if chunked_only || value.is_empty() {
                        HeadError::BadRequest
                    } else {
                        HeadError::NotImplemented
                    });
                }
                transfer_encoding = true;
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                if value.eq_ignore_ascii_case(b"100-continue") {
                    head.expect_continue = version_minor == 1;
                } else {
                    return Err(HeadError::ExpectationFailed);
                }
            }
            13 if name.eq_ignore_ascii_case(b"if-none-match") => head.if_none_match = sp,
            17 if name.eq_ignore_ascii_case(b"if-modified-since") => head.if_modified_since = sp,
            8 if name.eq_ignore_ascii_case(b"if-match") => head.if_match = sp,
            19 if name.eq_ignore_ascii_case(b"if-unmodified-since") => {
                head.if_unmodified_since = sp
            }
            5 if name.eq_ignore_ascii_case(b"range") => head.range = sp,
            8 if name.eq_ignore_ascii_case(b"if-range") => head.if_range = sp,
            7 if name.eq_ignore_ascii_case(b"referer") => head.referer = sp,
            10 if name.eq_ignore_ascii_case(b"user-agent") => head.user_agent = sp,
            6 if name.eq_ignore_ascii_case(b"accept") => head.accept = sp,
            _ => {}
        }
    }
    head.body = match (content_length, transfer_encoding) {
        (Some(_), true) => return Err(HeadError::BadRequest),
        (Some(0), false) | (None, false) => BodyFraming::None,
        (Some(n), false) => BodyFraming::Length(n),
        (None, true) => {
            if version_minor == 0 {
                return Err(HeadError::BadRequest);
            }
            BodyFraming::Chunked
        }
    };
    if version_minor == 1 && head.host.is_none() {
        return Err(HeadError::BadRequest);
    }
    Ok(Some(head))
}

/// The header fields of a complete head (`buf[..head.len]`), as (name,
/// trimmed value) pairs in order; the request line is skipped. For the
/// headers later phases look up by name (`$http_NAME`, cookies, X-Real-IP).
pub fn header_fields(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head.split(|&b| b == b'\n')
        .skip(1)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            let colon = l.iter().position(|&b| b == b':')?;
            Some((&l[..colon], trim(&l[colon + 1..])))
        })
}

/// The first header named `name` (any case) in a complete head.
pub fn find_header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header_fields(head)
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn looks_like_http_version(buf: &[u8]) -> bool {
    let line_end = buf.iter().position(|&b| b == b'\r' || b == b'\n');
    let line = &buf[..line_end.unwrap_or(buf.len())];
    let Some(sp) = line.iter().rposition(|&b| b == b' ') else {
        return false;
    };
    let v = &line[sp + 1..];
    v.len() == 8
        && v.starts_with(b"HTTP/")
        && v[5].is_ascii_digit()
        && v[6] == b'.'
        && v[7].is_ascii_digit()
}

/// Parse a complete head with generous limits (unit tests).
#[cfg(test)]
pub fn parse_for_test(raw: &[u8]) -> Head {
    let limits = HeadLimits {
        line_bytes: 8192,
        total_bytes: 32768,
    };
    match parse(raw, &limits) {
        Ok(Some(h)) => h,
        other => panic!("not a complete head: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: HeadLimits = HeadLimits {
        line_bytes: 8192,
        total_bytes: 32768,
    };

    fn p(s: &str) -> Result<Option<Head>, HeadError> {
        parse(s.as_bytes(), &L)
    }

    #[test]
    fn simple_get() {
        let s = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\nNEXT";
        let h = p(s).unwrap().unwrap();
        assert_eq!(h.len, s.len() - 4);
        assert_eq!(h.method, Method::Get);
        assert_eq!(at(s.as_bytes(), h.target), b"/a?b=1");
        assert_eq!(at(s.as_bytes(), h.host.unwrap()), b"x");
        assert!(h.keep_alive);
        assert_eq!(h.body, BodyFraming::None);
    }

    #[test]
    fn partial_needs_more() {
        assert!(p("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
    }

    #[test]
    fn http10_keepalive_rules() {
        assert!(!p("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().keep_alive);
        assert!(
            p("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .unwrap()
                .keep_alive
        );
        assert!(
            !p("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap()
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn smuggling_rejected() {
        let cl_te =
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(p(cl_te).unwrap_err(), HeadError::BadRequest);
        let two_cl = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(p(two_cl).unwrap_err(), HeadError::BadRequest);
        let same_cl =
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n";
        assert_eq!(p(same_cl).unwrap().unwrap().body, BodyFraming::Length(4));
        let neg = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(p(neg).unwrap_err(), HeadError::BadRequest);
        let plus = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\n";
        assert_eq!(p(plus).unwrap_err(), HeadError::BadRequest);
        let two_te = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(p(two_te).unwrap_err(), HeadError::BadRequest);
    }

    #[test]
    fn unknown_coding_is_501() {
        let s = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(p(s).unwrap_err(), HeadError::NotImplemented);
        let s = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(p(s).unwrap_err(), HeadError::NotImplemented);
    }

    #[test]
    fn chunked_body() {
        let s = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n";
        assert_eq!(p(s).unwrap().unwrap().body, BodyFraming::Chunked);
    }

    #[test]
    fn version_and_garbage() {
        assert_eq!(
            p("GET / HTTP/2.7\r\nHost: x\r\n\r\n").unwrap_err(),
            HeadError::VersionNotSupported
        );
        assert_eq!(p("GARBAGE\r\n\r\n").unwrap_err(), HeadError::BadRequest);
        assert_eq!(
            p("GET / FOO/1.1\r\n\r\n").unwrap_err(),
            HeadError::BadRequest
        );
    }

    #[test]
    fn missing_or_double_host() {
        assert_eq!(
            p("GET / HTTP/1.1\r\n\r\n").unwrap_err(),
            HeadError::BadRequest
        );
        assert_eq!(
            p("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").unwrap_err(),
            HeadError::BadRequest
        );
    }

    #[test]
    fn size_limits() {
        let lim = HeadLimits {
            line_bytes: 100,
            total_bytes: 400,
        };
        let long_uri = format!("GET /{} HTTP/1.1\r\n", "a".repeat(200));
        assert_eq!(
            parse(long_uri.as_bytes(), &lim).unwrap_err(),
            HeadError::UriTooLong
        );
        let long_uri_partial = format!("GET /{}", "a".repeat(200));
        assert_eq!(
            parse(long_uri_partial.as_bytes(), &lim).unwrap_err(),
            HeadError::UriTooLong
        );
        let big_header = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "b".repeat(150)
        );
        assert_eq!(
            parse(big_header.as_bytes(), &lim).unwrap_err(),
            HeadError::HeadersTooLarge
        );
        let many = format!(
            "GET / HTTP/1.1\r\nHost: x\r\n{}",
            "X-A: 1234567890\r\n".repeat(30)
        );
        assert_eq!(
            parse(many.as_bytes(), &lim).unwrap_err(),
            HeadError::HeadersTooLarge
        );
    }

    #[test]
    fn expect() {
        let s = "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
        assert!(p(s).unwrap().unwrap().expect_continue);
        let s = "PUT / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n";
        assert_eq!(p(s).unwrap_err(), HeadError::ExpectationFailed);
    }

    #[test]
    fn headers_by_name() {
        let s = b"GET / HTTP/1.1\r\nHost: x\r\nX-Real-IP:  10.0.0.7 \r\nCookie: a=1\r\ncookie: b=2\r\n\r\nBODY: no";
        let h = p(std::str::from_utf8(s).unwrap()).unwrap().unwrap();
        let head = &s[..h.len];
        assert_eq!(find_header(head, b"x-real-ip"), Some(&b"10.0.0.7"[..]));
        assert_eq!(find_header(head, b"body"), None);
        let cookies: Vec<&[u8]> = header_fields(head)
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"))
            .map(|(_, v)| v)
            .collect();
        assert_eq!(cookies, [&b"a=1"[..], &b"b=2"[..]]);
    }

    #[test]
    fn never_panics_on_noise() {
        let mut seed = 0x1234_5678u64;
        for len in 0..400 {
            let v: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    b"GET /HTP1.\r\n: xa\x00\xff"[(seed % 17) as usize]
                })
                .collect();
            let _ = parse(&v, &L);
        }
    }
}
