//! Helpers for the reverse-proxy tests: a scriptable loopback [`Origin`]
//! (one thread per connection, records every request it reads and answers
//! with a list of [`Step`]s), a [`FullClient`] that also reads chunked and
//! close-delimited responses, chunked encoding/decoding, and VmRSS.
//!
//! Everything is bounded: origin sockets have 10 s timeouts, and dropping an
//! [`Origin`] (also on panic) shuts every connection down and joins every
//! thread it started.

use super::{Client, Response};
use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What an origin does after reading a request (in order). When the steps
/// end without `Close`/`Hang`, the connection waits for the next request
/// (unless the request asked to close).
#[derive(Clone)]
pub enum Step {
    /// Write these bytes.
    Write(Vec<u8>),
    /// Write shared (large) bytes.
    WriteShared(Arc<Vec<u8>>),
    /// Pause.
    Sleep(Duration),
    /// Shut the connection down now (no more bytes).
    Close,
    /// Never answer; hold the connection until the origin is dropped.
    Hang,
}

/// A request as the origin read it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Number of the connection (0-based accept order).
    pub conn: usize,
    /// Method.
    pub method: String,
    /// Request target, raw.
    pub target: String,
    /// "HTTP/1.1" or "HTTP/1.0".
    pub version: String,
    /// Header fields in order.
    pub headers: Vec<(String, String)>,
    /// Body, de-chunked.
    pub body: Vec<u8>,
    /// Body bytes as they came on the wire.
    pub raw_body: Vec<u8>,
}

impl Seen {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        super::header_of(&self.headers, name)
    }

    /// How many header fields are named `name`.
    pub fn header_count(&self, name: &str) -> usize {
        super::header_count_of(&self.headers, name)
    }

    fn wants_close(&self) -> bool {
        let c = self.header("connection").unwrap_or("").to_ascii_lowercase();
        c.contains("close") || (self.version == "HTTP/1.0" && !c.contains("keep-alive"))
    }
}

type Handler = dyn Fn(&Seen) -> Vec<Step> + Send + Sync;

struct Shared {
    stop: AtomicBool,
    accepted: AtomicUsize,
    /// Connections whose serving thread ended (EOF, error or close).
    ended: AtomicUsize,
    /// Every byte read from any connection, in arrival order.
    raw: Mutex<Vec<u8>>,
    seen: Mutex<Vec<Seen>>,
    open: Mutex<HashMap<usize, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    handler: Box<Handler>,
}

/// A scriptable HTTP origin on 127.0.0.1, stopped on drop.
pub struct Origin {
    /// Its port.
    pub port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Origin {
    /// Listen on a free loopback port; `handler` decides each answer.
    pub fn start(handler: impl Fn(&Seen) -> Vec<Step> + Send + Sync + 'static) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
            raw: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            open: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            handler: Box::new(handler),
        });
        let sh = shared.clone();
        let acceptor = std::thread::spawn(move || accept_loop(listener, sh));
        Origin {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Answer every request with the same bytes (keep-alive).
    pub fn fixed(bytes: Vec<u8>) -> Origin {
        Origin::start(move |_| vec![Step::Write(bytes.clone())])
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections that ended so far (the peer closed, or the origin did).
    pub fn ended(&self) -> usize {
        self.shared.ended.load(Ordering::SeqCst)
    }

    /// Every byte the origin read, from all connections, as it arrived
    /// (also the bytes of requests it could not parse).
    pub fn raw_received(&self) -> Vec<u8> {
        self.shared
            .raw
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Requests read so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Number of requests read so far.
    pub fn request_count(&self) -> usize {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The only request seen (panics unless exactly one).
    pub fn only_request(&self) -> Seen {
        let s = self.seen();
        assert_eq!(s.len(), 1, "origin saw {} requests: {s:?}", s.len());
        s.into_iter().next().expect("one request")
    }

    /// Wait until at least `n` requests were read.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> bool {
        super::wait_for(timeout, || (self.request_count() >= n).then_some(())).is_some()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for s in self
            .shared
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            let _ = s.shutdown(Shutdown::Both);
        }
        let threads = std::mem::take(
            &mut *self
                .shared
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, sh: Arc<Shared>) {
    while !sh.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => {
                let id = sh.accepted.fetch_add(1, Ordering::SeqCst);
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
                let _ = s.set_nodelay(true);
                if let Ok(c) = s.try_clone() {
                    sh.open
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id, c);
                }
                let sh2 = sh.clone();
                let t = std::thread::spawn(move || {
                    serve(s, id, &sh2);
                    sh2.ended.fetch_add(1, Ordering::SeqCst);
                    sh2.open
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                });
                sh.threads.lock().unwrap_or_else(|e| e.into_inner()).push(t);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

fn pause(sh: &Shared, d: Duration) {
    let end = Instant::now() + d;
    while !sh.stop.load(Ordering::SeqCst) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5).min(end - Instant::now()));
    }
}

fn serve(mut s: TcpStream, id: usize, sh: &Shared) {
    let mut buf = Vec::new();
    loop {
        let Ok(Some(req)) = read_request(&mut s, &mut buf, id, sh) else {
            return;
        };
        sh.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(req.clone());
        for step in (sh.handler)(&req) {
            let ok = match step {
                Step::Write(b) => s.write_all(&b).is_ok(),
                Step::WriteShared(b) => s.write_all(&b).is_ok(),
                Step::Sleep(d) => {
                    pause(sh, d);
                    true
                }
                Step::Close => false,
                Step::Hang => {
                    pause(sh, Duration::from_secs(60));
                    false
                }
            };
            if !ok || sh.stop.load(Ordering::SeqCst) {
                let _ = s.shutdown(Shutdown::Both);
                return;
            }
        }
        if req.wants_close() {
            let _ = s.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 65536];
    let n = s.read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn parse_fields(text: &str) -> (String, Vec<(String, String)>) {
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("").to_string();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    (first, headers)
}

/// Read one request (head and body); `Ok(None)` on EOF before a head.
/// Every byte read is also appended to `sh.raw`.
fn read_request(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    conn: usize,
    sh: &Shared,
) -> io::Result<Option<Seen>> {
    let fill = |s: &mut TcpStream, buf: &mut Vec<u8>| -> io::Result<usize> {
        let before = buf.len();
        let n = fill(s, buf)?;
        sh.raw
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(&buf[before..]);
        Ok(n)
    };
    let n = loop {
        if let Some(n) = head_end(buf) {
            break n;
        }
        if fill(s, buf)? == 0 {
            return Ok(None);
        }
    };
    let (line, headers) = parse_fields(&String::from_utf8_lossy(&buf[..n]));
    buf.drain(..n);
    let mut parts = line.split(' ');
    let mut seen = Seen {
        conn,
        method: parts.next().unwrap_or("").into(),
        target: parts.next().unwrap_or("").into(),
        version: parts.next().unwrap_or("").into(),
        headers,
        body: Vec::new(),
        raw_body: Vec::new(),
    };
    let chunked = seen
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        loop {
            match decode_chunked(buf) {
                Ok(Some((body, used))) => {
                    seen.body = body;
                    seen.raw_body = buf.drain(..used).collect();
                    break;
                }
                Ok(None) if fill(s, buf)? > 0 => {}
                _ => return Err(io::Error::new(ErrorKind::InvalidData, "bad chunked body")),
            }
        }
    } else if let Some(len) = seen.header("content-length").and_then(|v| v.parse().ok()) {
        while buf.len() < len {
            if fill(s, buf)? == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
        }
        seen.body = buf.drain(..len).collect();
        seen.raw_body = seen.body.clone();
    }
    Ok(Some(seen))
}

/// Decode a complete chunked body at the start of `buf`: (body, bytes used).
/// `Ok(None)` when incomplete; `Err` on bad framing.
pub fn decode_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ()> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let Some(eol) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[pos..pos + eol]).map_err(|_| ())?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| ())?;
        pos += eol + 2;
        if size == 0 {
            // Trailer section: lines until an empty one.
            loop {
                let Some(eol) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some((body, pos)));
                }
            }
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err(());
        }
        pos += size + 2;
    }
}

/// `body` as a chunked body in pieces of `piece` bytes.
pub fn encode_chunked(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(piece.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// A complete HTTP/1.1 response with Content-Length; `headers` are extra
/// lines, each ending in CRLF.
pub fn http_response(status: u16, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 {status} X\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

/// `200` with `body` (keep-alive).
pub fn ok_response(body: &[u8]) -> Vec<u8> {
    http_response(200, "", body)
}

/// How a response's body was delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 204, 304).
    None,
    /// Content-Length.
    Length,
    /// Transfer-Encoding: chunked.
    Chunked,
    /// Until the server closed.
    Close,
}

/// A client that reads Content-Length, chunked and close-delimited responses.
pub struct FullClient {
    /// The socket.
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl FullClient {
    /// Connect to 127.0.0.1:port (5 s timeouts).
    pub fn connect(port: u16) -> FullClient {
        FullClient {
            stream: Client::connect(port).stream,
            buf: Vec::new(),
        }
    }

    /// Write all bytes.
    pub fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("write to proxy");
    }

    /// Read one response (`head_only` for a HEAD request).
    pub fn response(&mut self, head_only: bool) -> io::Result<(Response, Framing)> {
        let n = loop {
            if let Some(n) = head_end(&self.buf) {
                break n;
            }
            if fill(&mut self.stream, &mut self.buf)? == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
        };
        let (line, headers) = parse_fields(&String::from_utf8_lossy(&self.buf[..n]));
        self.buf.drain(..n);
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or("").to_string();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(ErrorKind::InvalidData, line.clone()))?;
        let mut r = Response {
            status,
            version,
            headers,
            body: Vec::new(),
        };
        let framing = if head_only || status == 204 || status == 304 || status < 200 {
            Framing::None
        } else if r
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            Framing::Chunked
        } else if r.content_length().is_some() {
            Framing::Length
        } else {
            Framing::Close
        };
        match framing {
            Framing::None => {}
            Framing::Length => {
                let len = r.content_length().unwrap_or(0);
                while self.buf.len() < len {
                    if fill(&mut self.stream, &mut self.buf)? == 0 {
                        return Err(io::Error::new(
                            ErrorKind::UnexpectedEof,
                            format!("EOF after {} of {len} body bytes", self.buf.len()),
                        ));
                    }
                }
                r.body = self.buf.drain(..len).collect();
            }
            Framing::Chunked => loop {
                match decode_chunked(&self.buf) {
                    Ok(Some((body, used))) => {
                        r.body = body;
                        self.buf.drain(..used);
                        break;
                    }
                    Ok(None) => {
                        if fill(&mut self.stream, &mut self.buf)? == 0 {
                            return Err(ErrorKind::UnexpectedEof.into());
                        }
                    }
                    Err(()) => return Err(io::Error::new(ErrorKind::InvalidData, "bad chunks")),
                }
            },
            Framing::Close => {
                while fill(&mut self.stream, &mut self.buf)? > 0 {}
                r.body = std::mem::take(&mut self.buf);
            }
        }
        Ok((r, framing))
    }

    /// `GET path` (keep-alive), read the response; panics on errors.
    pub fn get(&mut self, path: &str) -> (Response, Framing) {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.response(false)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// True when the server closes (EOF or reset) within `timeout` without
    /// sending anything more.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let _ = self.stream.set_read_timeout(Some(timeout));
        let mut b = [0u8; 1];
        let r = match self.stream.read(&mut b) {
            Ok(0) => self.buf.is_empty(),
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        };
        let _ = self.stream.set_read_timeout(Some(super::IO_TIMEOUT));
        r
    }
}

/// Resident set size of a process in KiB (from /proc/PID/status).
pub fn vm_rss_kib(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
