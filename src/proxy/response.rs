//! The upstream's response head: parse it (httparse), decide the body's
//! framing, and write the head the client gets (hop-by-hop headers removed,
//! our `Server`/`Date`, framing the client can read, `Connection` per the
//! client's keep-alive).

use crate::http::request::MAX_HEADERS;
use crate::proto::reply::{Framing, ReplyHead};

/// Largest upstream response head accepted.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// How the upstream frames its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpFraming {
    /// No body (HEAD, 204, 304).
    None,
    /// Content-Length.
    Length(u64),
    /// Transfer-Encoding: chunked.
    Chunked,
    /// Until the upstream closes.
    Close,
}

/// How the client receives the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFraming {
    /// No body.
    None,
    /// Content-Length, bytes copied as they come.
    Length(u64),
    /// Chunks framed by us: an upstream's chunked body decoded and chunked
    /// again (its extensions and trailers dropped), or a close-delimited one.
    Chunked,
    /// Body ends when we close (HTTP/1.0 clients).
    Close,
}

/// A parsed upstream head.
#[derive(Debug, Clone, Copy)]
pub struct UpHead {
    /// Bytes of the head.
    pub len: usize,
    /// Status code.
    pub status: u16,
    /// Body framing.
    pub framing: UpFraming,
    /// The upstream will keep the connection open after this response.
    pub reusable: bool,
}

/// Why a head is refused (-> 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadHead;

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// Parse a response head at the start of `buf`. `Ok(None)`: need more.
pub fn parse_head(
    buf: &[u8],
    head_request: bool,
    http_minor: u8,
) -> Result<Option<UpHead>, BadHead> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut storage);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD_BYTES {
                Err(BadHead)
            } else {
                Ok(None)
            };
        }
        Err(_) => return Err(BadHead),
    };
    let status = resp.code.ok_or(BadHead)?;
    let version_minor = resp.version.unwrap_or(0);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = version_minor == 0 || http_minor == 0;
    for h in resp.headers.iter() {
        let n = h.name.as_bytes();
        let v = trim(h.value);
        if n.eq_ignore_ascii_case(b"content-length") {
            let parsed = crate::http::request::parse_u64(v).ok_or(BadHead)?;
            if length.is_some_and(|l| l != parsed) {
                return Err(BadHead);
            }
            length = Some(parsed);
        } else if n.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only one `chunked`; any other coding, a list or a repeat is
            // refused, as is a Content-Length beside it (nginx 1.23+).
            if chunked || !v.eq_ignore_ascii_case(b"chunked") {
                return Err(BadHead);
            }
            chunked = true;
        } else if n.eq_ignore_ascii_case(b"connection") {
            for t in v.split(|&b| b == b',') {
                let t = trim(t);
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") && version_minor == 0 {
                    close = false;
                }
            }
        }
    }
    if chunked && length.is_some() {
        return Err(BadHead);
    }
    let framing = if head_request || status == 204 || status == 304 || (100..200).contains(&status)
    {
        UpFraming::None
    } else if chunked {
        UpFraming::Chunked
    } else if let Some(l) = length {
        UpFraming::Length(l)
    } else {
        UpFraming::Close
    };
    Ok(Some(UpHead {
        len,
        status,
        framing,
        reusable: !close && framing != UpFraming::Close,
    }))
}

/// The header fields of a response head as (name, value) pairs.
pub fn header_pairs(head: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut storage);
    let _ = resp.parse(head);
    resp.headers
        .iter()
        .map(|h| (h.name.as_bytes(), h.value))
        .collect()
}

/// What the client head needs besides the upstream head.
pub struct ClientHeadParams<'a> {
    /// Keep the client connection after the response.
    pub keep_alive: bool,
    /// Client speaks HTTP/1.1 (can read chunked).
    pub client_http11: bool,
    /// The client asked HEAD (the upstream got GET): send the head only.
    pub head_only: bool,
    /// `proxy_hide_header` names (lowercase).
    pub hide: &'a [String],
    /// `proxy_pass_header` names (lowercase).
    pub pass: &'a [String],
    /// `proxy_redirect`: the new value of a `Location` (`false`) or
    /// `Refresh` (`true`), or None to keep it.
    pub rewrite: Option<&'a RewriteHeader<'a>>,
}

/// `proxy_redirect`'s rewriter: a header value and whether it is `Refresh`
/// to the new value, or None to keep it.
pub type RewriteHeader<'a> = dyn Fn(&[u8], bool) -> Option<Vec<u8>> + 'a;

/// Upstream fields sluice writes itself (besides the hop-by-hop ones).
const REPLACED: &[&[u8]] = &[b"content-length", b"server", b"date"];

/// Upstream fields nginx hides unless `proxy_pass_header` names them.
const HIDDEN: &[&[u8]] = &[
    b"x-pad",
    b"x-accel-expires",
    b"x-accel-redirect",
    b"x-accel-limit-rate",
    b"x-accel-buffering",
    b"x-accel-charset",
];

fn dropped(name: &[u8], pass: &[String]) -> bool {
    let passed = || pass.iter().any(|p| name.eq_ignore_ascii_case(p.as_bytes()));
    crate::proto::is_hop_by_hop(name)
        || (REPLACED
            .iter()
            .chain(HIDDEN)
            .any(|d| name.eq_ignore_ascii_case(d))
            && !passed())
}

/// The first value of `name` in a response head.
pub fn header_value<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut storage);
    let _ = resp.parse(head);
    resp.headers
        .iter()
        .find(|h| h.name.as_bytes().eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Fill `head` with the client's response head for `up` (parsed from
/// `buf`): the upstream's status and reason, its end-to-end fields (not
/// the hop-by-hop ones, not `proxy_hide_header`'s, not the ones sluice
/// writes itself), the client's framing. Returns the framing used and
/// whether the client connection can stay open.
pub fn client_head(
    buf: &[u8],
    up: &UpHead,
    p: &ClientHeadParams<'_>,
    head: &mut ReplyHead,
) -> (ClientFraming, bool) {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut storage);
    let _ = resp.parse(&buf[..up.len]);
    let framing = match up.framing {
        _ if p.head_only => ClientFraming::None,
        UpFraming::None => ClientFraming::None,
        UpFraming::Length(n) => ClientFraming::Length(n),
        UpFraming::Chunked | UpFraming::Close if p.client_http11 => ClientFraming::Chunked,
        UpFraming::Chunked | UpFraming::Close => ClientFraming::Close,
    };
    let keep_alive = p.keep_alive && framing != ClientFraming::Close;
    head.reset(
        up.status,
        match framing {
            ClientFraming::None => Framing::None,
            ClientFraming::Length(n) => Framing::Length(n),
            ClientFraming::Chunked => Framing::Chunked,
            ClientFraming::Close => Framing::Close,
        },
        keep_alive,
    );
    head.set_reason(resp.reason.unwrap_or("").as_bytes());
    for h in resp.headers.iter() {
        let n = h.name.as_bytes();
        // A bodiless answer (HEAD, 304) keeps the length the body would have.
        let keep_length = framing == ClientFraming::None
            && up.status != 204
            && n.eq_ignore_ascii_case(b"content-length");
        let own = n.eq_ignore_ascii_case(b"server") || n.eq_ignore_ascii_case(b"date");
        if !keep_length && dropped(n, p.pass)
            || own
            || p.hide.iter().any(|d| n.eq_ignore_ascii_case(d.as_bytes()))
        {
            // Server and Date passed (`proxy_pass_header`) replace ours:
            // the caller writes them in their place.
            continue;
        }
        let refresh = n.eq_ignore_ascii_case(b"refresh");
        if refresh || n.eq_ignore_ascii_case(b"location") {
            if let Some(v) = p.rewrite.and_then(|f| f(h.value, refresh)) {
                head.push(n, &v);
                continue;
            }
        }
        head.push(n, h.value);
    }
    (framing, keep_alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_rules() {
        let h = parse_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            false,
            1,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, UpFraming::Length(5));
        assert!(h.reusable);
        let h = parse_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            1,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, UpFraming::Chunked);
        let h = parse_head(b"HTTP/1.0 200 OK\r\n\r\n", false, 1)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, UpFraming::Close);
        assert!(!h.reusable);
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, 1)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, UpFraming::None);
        let h = parse_head(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            false,
            1,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, UpFraming::None);
        let h = parse_head(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
            false,
            1,
        )
        .unwrap()
        .unwrap();
        assert!(!h.reusable);
    }

    #[test]
    fn malformed_heads_are_bad() {
        for bad in [
            &b"HTTP/1.1 2000 OK\r\n\r\n"[..],
            b"garbage\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            // Regression: Rust's u64 parse took a sign.
            b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            // Both framings: which one the next hop believes is anyone's guess.
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n",
        ] {
            assert_eq!(
                parse_head(bad, false, 1).unwrap_err(),
                BadHead,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n", false, 1)
            .unwrap()
            .is_none());
        let huge = [b'a'; MAX_HEAD_BYTES + 10];
        assert!(parse_head(&huge, false, 1).is_err());
    }

    #[test]
    fn client_head_rewrites() {
        let raw = b"HTTP/1.1 200 OK\r\nServer: origin\r\nDate: x\r\nConnection: keep-alive\r\nX-App: 1\r\nTransfer-Encoding: chunked\r\nX-Hide: s\r\n\r\n";
        let up = parse_head(raw, false, 1).unwrap().unwrap();
        let hide = vec!["x-hide".to_string()];
        let mut head = ReplyHead::new();
        let (f, ka) = client_head(
            raw,
            &up,
            &ClientHeadParams {
                keep_alive: true,
                client_http11: true,
                head_only: false,
                hide: &hide,
                pass: &[],
                rewrite: None,
            },
            &mut head,
        );
        // What the proxy adds before the header filter.
        head.push(b"X-Cache-Status", b"MISS");
        let mut out = Vec::new();
        head.write_h1(b"sluice", b"D", &mut out);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(f, ClientFraming::Chunked);
        assert!(ka);
        assert!(
            s.starts_with("HTTP/1.1 200 OK\r\nServer: sluice\r\nDate: D\r\n"),
            "{s}"
        );
        assert!(
            s.contains("X-App: 1\r\n") && !s.contains("origin") && !s.contains("X-Hide"),
            "{s}"
        );
        assert!(s.contains("X-Cache-Status: MISS\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"), "{s}");
    }
}
