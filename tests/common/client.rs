//! A tiny HTTP/1.1 client over `TcpStream`: [`Client`] reads exactly one
//! [`Response`] at a time (body by Content-Length); [`parse_responses`]
//! splits what a server sent to pipelined requests.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Default read/write timeout of test sockets.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// One parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// "HTTP/1.1" or "HTTP/1.0".
    pub version: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        super::header_of(&self.headers, name)
    }

    /// How many header fields are named `name`.
    pub fn header_count(&self, name: &str) -> usize {
        super::header_count_of(&self.headers, name)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as a string slice (panics unless it is UTF-8).
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body)
            .unwrap_or_else(|e| panic!("non-UTF-8 body ({e}): {:?}", self.text()))
    }

    /// The server announced it closes the connection.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    /// Content-Length, if any.
    pub fn content_length(&self) -> Option<usize> {
        self.header("content-length")?.trim().parse().ok()
    }

    /// The status line and header fields as text, for failure messages.
    pub fn head(&self) -> String {
        let mut head = format!("{} {}", self.version, self.status);
        for (n, v) in &self.headers {
            head.push_str(&format!("\n{n}: {v}"));
        }
        head
    }
}

/// Parse one head at the start of `buf`: (response without body, head length).
/// `Ok(None)` when the head is not complete yet.
fn parse_head(buf: &[u8]) -> io::Result<Option<(Response, usize)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end])
        .map_err(|_| io::Error::new(ErrorKind::InvalidData, "non-UTF-8 response head"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("").to_string();
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| {
            io::Error::new(
                ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
    let mut headers = Vec::new();
    for l in lines {
        let (n, v) = l.split_once(':').ok_or_else(|| {
            io::Error::new(ErrorKind::InvalidData, format!("bad header line {l:?}"))
        })?;
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    Ok(Some((
        Response {
            status,
            version,
            headers,
            body: Vec::new(),
        },
        end + 4,
    )))
}

/// Body length of a response: `None` means "until the connection closes".
fn body_len(r: &Response, head_only: bool) -> io::Result<Option<usize>> {
    if head_only || r.status < 200 || r.status == 204 || r.status == 304 {
        return Ok(Some(0));
    }
    if r.header("transfer-encoding").is_some() {
        return Err(io::Error::new(
            ErrorKind::InvalidData,
            "chunked responses are not supported by the test client",
        ));
    }
    match r.header("content-length") {
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| io::Error::new(ErrorKind::InvalidData, "bad Content-Length")),
        None => Ok(None),
    }
}

/// Split everything a server sent into responses (bodies by Content-Length;
/// 1xx/204/304 have none). A trailing incomplete response is dropped.
pub fn parse_responses(mut raw: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    while let Ok(Some((mut r, n))) = parse_head(raw) {
        let len = match body_len(&r, false) {
            Ok(Some(l)) => l,
            Ok(None) => raw.len() - n,
            Err(_) => break,
        };
        if raw.len() < n + len {
            break;
        }
        r.body = raw[n..n + len].to_vec();
        raw = &raw[n + len..];
        out.push(r);
    }
    out
}

/// Status codes of all complete responses in `raw`.
pub fn statuses(raw: &[u8]) -> Vec<u16> {
    parse_responses(raw).iter().map(|r| r.status).collect()
}

/// A client connection that reads one response at a time.
pub struct Client {
    /// The socket.
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connect to 127.0.0.1:port (panics after 5 s).
    pub fn connect(port: u16) -> Client {
        Client::try_connect(port).unwrap_or_else(|e| panic!("connect to port {port}: {e}"))
    }

    /// Connect to 127.0.0.1:port.
    pub fn try_connect(port: u16) -> io::Result<Client> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            buf: Vec::new(),
        })
    }

    /// Connect with a small receive buffer, so a large response stays in
    /// flight on the server while the test reads slowly.
    pub fn connect_small_rcvbuf(port: u16) -> Client {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        s.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        s.connect_timeout(&addr.into(), IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to port {port}: {e}"));
        let stream: TcpStream = s.into();
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Read until at least `n` bytes of the next response arrived (head
    /// included); they stay buffered for [`Client::read_response`].
    pub fn read_at_least(&mut self, n: usize) {
        while self.buf.len() < n {
            match self.fill() {
                Ok(0) => panic!("connection closed after {} bytes", self.buf.len()),
                Ok(_) => {}
                Err(e) => panic!("read failed after {} bytes: {e}", self.buf.len()),
            }
        }
    }

    /// Write all bytes (panics on error).
    pub fn send(&mut self, raw: &[u8]) {
        self.try_send(raw).expect("write to server");
    }

    /// Write all bytes.
    pub fn try_send(&mut self, raw: &[u8]) -> io::Result<()> {
        self.stream.write_all(raw)
    }

    /// Send a keep-alive `GET path` and read its response.
    pub fn get(&mut self, path: &str) -> io::Result<Response> {
        self.get_host(path, "test")
    }

    /// Send a keep-alive `GET path` with `Host: host` and read its response.
    pub fn get_host(&mut self, path: &str, host: &str) -> io::Result<Response> {
        self.try_send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())?;
        self.read_response()
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Read exactly one response (a GET-like one: body by Content-Length).
    /// EOF before it is complete is an `UnexpectedEof` error.
    pub fn read_response(&mut self) -> io::Result<Response> {
        self.read_one(false)
    }

    /// Read exactly one response to a HEAD request (no body).
    pub fn read_head_response(&mut self) -> io::Result<Response> {
        self.read_one(true)
    }

    fn read_one(&mut self, head_only: bool) -> io::Result<Response> {
        let (mut r, n) = loop {
            if let Some(x) = parse_head(&self.buf)? {
                break x;
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a full response head ({} bytes)",
                        self.buf.len()
                    ),
                ));
            }
        };
        match body_len(&r, head_only)? {
            Some(len) => {
                while self.buf.len() < n + len {
                    if self.fill()? == 0 {
                        return Err(io::Error::new(
                            ErrorKind::UnexpectedEof,
                            format!(
                                "connection closed in the body ({} of {len} bytes)",
                                self.buf.len() - n
                            ),
                        ));
                    }
                }
                r.body = self.buf[n..n + len].to_vec();
                self.buf.drain(..n + len);
            }
            None => {
                while self.fill()? > 0 {}
                r.body = self.buf[n..].to_vec();
                self.buf.clear();
            }
        }
        Ok(r)
    }

    /// Keep sending `GET path` until a response says `Connection: close`
    /// (a retired worker drains once it has handled its QUIT, which is
    /// asynchronous to the signal). Every response must be a 200.
    pub fn get_until_close(&mut self, path: &str, timeout: Duration) -> Response {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self
                .get(path)
                .unwrap_or_else(|e| panic!("keep-alive GET {path} failed: {e}"));
            assert_eq!(r.status, 200, "GET {path}");
            if r.closes() {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no Connection: close on GET {path} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Read whatever arrives until the server closes or `timeout` passes.
    pub fn read_until_close(&mut self, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let _ = self.stream.set_read_timeout(Some(left));
            match self.fill() {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = self.stream.set_read_timeout(Some(IO_TIMEOUT));
        std::mem::take(&mut self.buf)
    }

    /// True when the server closes the connection (EOF or reset) within
    /// `timeout` without sending anything more.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let _ = self.stream.set_read_timeout(Some(timeout));
        let mut b = [0u8; 1];
        let r = match self.stream.read(&mut b) {
            Ok(0) => self.buf.is_empty(),
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        };
        let _ = self.stream.set_read_timeout(Some(IO_TIMEOUT));
        r
    }

    /// True when nothing arrives for `timeout` and the connection stays open.
    pub fn silent_for(&mut self, timeout: Duration) -> bool {
        let _ = self.stream.set_read_timeout(Some(timeout));
        let mut b = [0u8; 1];
        let r = matches!(self.stream.read(&mut b),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut));
        let _ = self.stream.set_read_timeout(Some(IO_TIMEOUT));
        r && self.buf.is_empty()
    }

    /// Half-close our side.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// One `GET path` with `Connection: close` on a fresh connection.
pub fn get(port: u16, path: &str) -> Response {
    request(port, path, &[])
}

/// One `GET path` with `extra` header fields and `Connection: close` on a
/// fresh connection (panics on errors).
pub fn request(port: u16, path: &str, extra: &[(&str, &str)]) -> Response {
    try_request(port, path, extra).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// [`request`], with connection errors returned.
pub fn try_request(port: u16, path: &str, extra: &[(&str, &str)]) -> io::Result<Response> {
    let mut c = Client::try_connect(port)?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (n, v) in extra {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    c.try_send(req.as_bytes())?;
    c.read_response()
}

/// Send raw bytes on a fresh connection; return everything received until
/// the server closes (or 5 s pass).
pub fn exchange(port: u16, raw: &[u8]) -> Vec<u8> {
    let mut c = Client::connect(port);
    // A server may answer and close before reading everything (e.g. 414).
    let _ = c.try_send(raw);
    c.read_until_close(IO_TIMEOUT)
}

/// Status codes of everything the server answers to `raw` on one connection.
pub fn exchange_statuses(port: u16, raw: &[u8]) -> Vec<u16> {
    statuses(&exchange(port, raw))
}
