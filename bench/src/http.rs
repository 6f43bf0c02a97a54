//! HTTP/1.x on the client side: request bytes built once per URL, and an incremental
//! response parser that consumes bytes as they arrive without copying bodies.
//!
//! Framing follows RFC 9112 §6.3: 1xx interim responses are skipped, HEAD/204/304
//! have no body, `Transfer-Encoding: chunked` wins over `Content-Length`, and a
//! response with neither ends when the server closes.

use crate::args::Url;

/// Largest header block (or chunk-size line backlog) accepted, bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Builds the complete request bytes for `url` (head plus body).
pub fn build_request(
    method: &str,
    url: &Url,
    headers: &[String],
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut req = Vec::with_capacity(128 + body.len());
    let has = |name: &str| {
        headers.iter().any(|h| {
            h.split(':')
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    };
    req.extend_from_slice(format!("{method} {} HTTP/1.1\r\n", url.path).as_bytes());
    if !has("host") {
        if url.port == if url.tls { 443 } else { 80 } {
            req.extend_from_slice(format!("Host: {}\r\n", url.host).as_bytes());
        } else {
            req.extend_from_slice(format!("Host: {}:{}\r\n", url.host, url.port).as_bytes());
        }
    }
    if !has("user-agent") {
        req.extend_from_slice(b"User-Agent: sluice-bench\r\n");
    }
    for h in headers {
        req.extend_from_slice(h.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    if close && !has("connection") {
        req.extend_from_slice(b"Connection: close\r\n");
    }
    if !body.is_empty() && !has("content-length") {
        req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    req
}

/// A complete response as far as the load loops care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Whether the connection may carry another request afterwards.
    pub keep_alive: bool,
}

/// Why a response could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Malformed status line or headers.
    Head,
    /// Header block larger than [`MAX_HEAD_BYTES`].
    TooLarge,
    /// Content-Length that is not a number.
    BadLength,
    /// Malformed chunked framing.
    BadChunk,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    Body { remaining_bytes: u64 },
    ChunkSize,
    ChunkData { remaining_bytes: u64 },
    ChunkDataEnd,
    Trailer,
    UntilClose,
}

/// Incremental response parser; one per connection, reused across responses.
#[derive(Clone, Debug)]
pub struct ResponseParser {
    state: State,
    head_request: bool,
    current: Response,
}

impl ResponseParser {
    /// A parser for responses to `HEAD` requests when `head_request` is true.
    pub fn new(head_request: bool) -> Self {
        ResponseParser {
            state: State::Head,
            head_request,
            current: Response {
                status: 0,
                keep_alive: true,
            },
        }
    }

    /// Forgets any partial response (connection closed).
    pub fn reset(&mut self) {
        self.state = State::Head;
    }

    /// Consumes from `buf`. Returns how many bytes were used and, if a response
    /// completed, the response; the caller passes the unused rest again later,
    /// with more bytes appended.
    pub fn parse(&mut self, buf: &[u8]) -> Result<(usize, Option<Response>), ParseError> {
        let mut pos = 0;
        loop {
            let avail = &buf[pos..];
            match self.state {
                State::Head => {
                    if avail.is_empty() {
                        return Ok((pos, None));
                    }
                    match self.parse_head(avail)? {
                        None => return Ok((pos, None)),
                        Some((used, done)) => {
                            pos += used;
                            if done {
                                return Ok((pos, Some(self.current)));
                            }
                        }
                    }
                }
                State::Body { remaining_bytes } => {
                    let take = remaining_bytes.min(avail.len() as u64);
                    pos += take as usize;
                    if take == remaining_bytes {
                        self.state = State::Head;
                        return Ok((pos, Some(self.current)));
                    }
                    self.state = State::Body {
                        remaining_bytes: remaining_bytes - take,
                    };
                    return Ok((pos, None));
                }
                State::UntilClose => return Ok((buf.len(), None)),
                State::ChunkSize => {
                    let Some(line) = find_crlf(avail) else {
                        return self.need_line(pos, avail);
                    };
                    let size = parse_chunk_size(&avail[..line])?;
                    pos += line + 2;
                    self.state = if size == 0 {
                        State::Trailer
                    } else {
                        State::ChunkData {
                            remaining_bytes: size,
                        }
                    };
                }
                State::ChunkData { remaining_bytes } => {
                    let take = remaining_bytes.min(avail.len() as u64);
                    pos += take as usize;
                    if take < remaining_bytes {
                        self.state = State::ChunkData {
                            remaining_bytes: remaining_bytes - take,
                        };
                        return Ok((pos, None));
                    }
                    self.state = State::ChunkDataEnd;
                }
                State::ChunkDataEnd => {
                    if avail.len() < 2 {
                        return Ok((pos, None));
                    }
                    if &avail[..2] != b"\r\n" {
                        return Err(ParseError::BadChunk);
                    }
                    pos += 2;
                    self.state = State::ChunkSize;
                }
                State::Trailer => {
                    let Some(line) = find_crlf(avail) else {
                        return self.need_line(pos, avail);
                    };
                    pos += line + 2;
                    if line == 0 {
                        self.state = State::Head;
                        return Ok((pos, Some(self.current)));
                    }
                }
            }
        }
    }

    /// The connection reached EOF: completes a close-delimited body, if any.
    pub fn on_eof(&mut self) -> Option<Response> {
        if self.state == State::UntilClose {
            self.state = State::Head;
            Some(self.current)
        } else {
            None
        }
    }

    fn need_line(&self, pos: usize, avail: &[u8]) -> Result<(usize, Option<Response>), ParseError> {
        if avail.len() > 4096 {
            Err(ParseError::BadChunk)
        } else {
            Ok((pos, None))
        }
    }

    /// Parses one header block. `None`: need more bytes. `Some((used, done))`:
    /// `done` when the response is complete already (no body).
    fn parse_head(&mut self, avail: &[u8]) -> Result<Option<(usize, bool)>, ParseError> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let used = match resp.parse(avail) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if avail.len() > MAX_HEAD_BYTES => {
                return Err(ParseError::TooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ParseError::Head),
        };
        let status = resp.code.unwrap_or(0);
        if (100..200).contains(&status) && status != 101 {
            return Ok(Some((used, false))); // interim response: the real one follows
        }
        let mut keep_alive = resp.version == Some(1);
        let mut chunked = false;
        let mut length = None;
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let text = std::str::from_utf8(h.value).map_err(|_| ParseError::BadLength)?;
                length = Some(
                    text.trim()
                        .parse::<u64>()
                        .map_err(|_| ParseError::BadLength)?,
                );
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = h
                    .value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        keep_alive = true;
                    }
                }
            }
        }
        if status == 101 {
            keep_alive = false;
        }
        self.current = Response { status, keep_alive };
        let no_body = self.head_request || status == 204 || status == 304 || status == 101;
        self.state = if no_body {
            State::Head
        } else if chunked {
            State::ChunkSize
        } else if let Some(n) = length {
            if n == 0 {
                State::Head
            } else {
                State::Body { remaining_bytes: n }
            }
        } else {
            self.current.keep_alive = false;
            State::UntilClose
        };
        Ok(Some((used, self.state == State::Head)))
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, ParseError> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or(b"")
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(ParseError::BadChunk);
    }
    let mut n = 0u64;
    for &d in digits {
        let v = (d as char).to_digit(16).ok_or(ParseError::BadChunk)?;
        n = n * 16 + v as u64;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes the way a connection does (keeping
    /// unconsumed bytes), then EOF; returns the responses seen.
    fn feed(input: &[u8], step: usize, head: bool) -> Result<Vec<Response>, ParseError> {
        let mut p = ResponseParser::new(head);
        let mut pending: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            pending.extend_from_slice(piece);
            loop {
                let (used, resp) = p.parse(&pending)?;
                pending.drain(..used);
                match resp {
                    Some(r) => out.push(r),
                    None => break,
                }
            }
        }
        out.extend(p.on_eof());
        Ok(out)
    }

    fn at_every_split(input: &[u8], head: bool) -> Vec<Response> {
        let whole = feed(input, input.len().max(1), head).unwrap();
        for step in 1..input.len() {
            assert_eq!(feed(input, step, head).unwrap(), whole, "step {step}");
        }
        whole
    }

    const OK: Response = Response {
        status: 200,
        keep_alive: true,
    };

    #[test]
    fn content_length_pipelined_at_every_split() {
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        let got = at_every_split(two, false);
        assert_eq!(
            got,
            vec![
                OK,
                Response {
                    status: 404,
                    keep_alive: true
                }
            ]
        );
    }

    #[test]
    fn chunked_with_extension_and_trailer_at_every_split() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz";
        assert_eq!(at_every_split(r, false), vec![OK, OK]);
    }

    #[test]
    fn interim_100_is_skipped() {
        let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
        let got = at_every_split(r, false);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].status, 201);
    }

    #[test]
    fn body_until_close() {
        let r = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nsome body bytes";
        let got = at_every_split(r, false);
        assert_eq!(
            got,
            vec![Response {
                status: 200,
                keep_alive: false
            }]
        );
    }

    #[test]
    fn eof_mid_body_is_not_a_response() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
        assert_eq!(feed(r, r.len(), false).unwrap(), vec![]);
    }

    #[test]
    fn head_204_304_have_no_body() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 612\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 612\r\n\r\n";
        assert_eq!(at_every_split(head, true), vec![OK, OK]);
        let r = b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n";
        let got = at_every_split(r, false);
        assert_eq!(
            got.iter().map(|r| r.status).collect::<Vec<_>>(),
            vec![204, 304]
        );
    }

    #[test]
    fn connection_close_and_http10_keep_alive() {
        let r = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(!feed(r, 100, false).unwrap()[0].keep_alive);
        let r = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
        assert!(feed(r, 100, false).unwrap()[0].keep_alive);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(feed(b"garbage\r\n\r\n", 100, false), Err(ParseError::Head));
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n";
        assert_eq!(feed(r, 100, false), Err(ParseError::BadLength));
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(feed(r, 100, false), Err(ParseError::BadChunk));
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n";
        assert_eq!(feed(r, 100, false), Err(ParseError::BadChunk));
        let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        big.resize(MAX_HEAD_BYTES + 10, b'a');
        assert_eq!(feed(&big, big.len(), false), Err(ParseError::TooLarge));
    }

    #[test]
    fn request_bytes() {
        let url = crate::args::parse_url("http://127.0.0.1:8080/a?b").unwrap();
        let r = build_request("GET", &url, &["X-A: 1".into()], b"", true);
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "GET /a?b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: sluice-bench\r\nX-A: 1\r\nConnection: close\r\n\r\n"
        );
        let r = build_request("POST", &url, &["host: h".into()], b"xyz", false);
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("POST /a?b HTTP/1.1\r\nUser-Agent: sluice-bench\r\nhost: h\r\n"));
        assert!(text.ends_with("Content-Length: 3\r\n\r\nxyz"));
        let url = crate::args::parse_url("https://127.0.0.1/").unwrap();
        let r = build_request("GET", &url, &[], b"", false);
        assert!(String::from_utf8(r)
            .unwrap()
            .contains("Host: 127.0.0.1\r\n"));
    }
}
