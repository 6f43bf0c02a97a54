//! A scriptable HTTP/1.1 origin on std::net for the cache tests: per-path
//! handlers return [`Canned`] responses (any headers, Content-Length /
//! chunked / close-delimited / truncated bodies), every request is counted
//! per path and recorded, and [`Origin::stop`] closes the listener to
//! simulate the origin being down. Threads are joined on stop and on drop.
//!
//! Paths starting with `/_barrier` always answer a cacheable 200
//! (`Cache-Control: max-age=600`), for the fill barrier in `support.rs`.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::http_date;

/// How the body of a [`Canned`] response is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`.
    Length,
    /// `Transfer-Encoding: chunked` (chunks of at most 1000 bytes).
    Chunked,
    /// No length: the body ends when the origin closes the connection.
    Close,
    /// `Content-Length` of the whole body, but only this many bytes are
    /// sent before the connection is closed.
    Truncated(usize),
}

/// One response of the origin.
#[derive(Debug, Clone)]
pub struct Canned {
    /// Status code.
    pub status: u16,
    /// Header fields (framing headers are added by the origin).
    pub headers: Vec<(String, String)>,
    /// Body (not sent to HEAD requests).
    pub body: Vec<u8>,
    /// Body framing.
    pub framing: Framing,
    /// Add `Date: now` unless the headers have one (default true).
    pub date: bool,
}

impl Canned {
    /// 200 with `body`, Content-Length framing and a `Date`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Canned {
        Canned {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            framing: Framing::Length,
            date: true,
        }
    }

    /// Set the status.
    pub fn status(mut self, s: u16) -> Canned {
        self.status = s;
        self
    }

    /// Add a header field.
    pub fn header(mut self, name: &str, value: &str) -> Canned {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// `Cache-Control: value`.
    pub fn cc(self, value: &str) -> Canned {
        self.header("Cache-Control", value)
    }

    /// Set the framing.
    pub fn framing(mut self, f: Framing) -> Canned {
        self.framing = f;
        self
    }

    /// Send no `Date` header.
    pub fn no_date(mut self) -> Canned {
        self.date = false;
        self
    }
}

/// A request as the origin received it.
#[derive(Debug, Clone)]
pub struct OriginReq {
    /// Method.
    pub method: String,
    /// Request target as sent.
    pub target: String,
    /// Target without the query.
    pub path: String,
    /// Header fields.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// 1 for the first request to this path, 2 for the second, ...
    pub n: usize,
}

impl OriginReq {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Handler = Arc<dyn Fn(&OriginReq) -> Canned + Send + Sync>;

#[derive(Default)]
struct Shared {
    routes: Mutex<HashMap<String, Handler>>,
    counts: Mutex<HashMap<String, usize>>,
    log: Mutex<Vec<OriginReq>>,
    stop: AtomicBool,
    conns: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
}

/// The origin server. Stopped (listener closed, threads joined) on drop.
pub struct Origin {
    /// Its loopback port.
    pub port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

impl Origin {
    /// Listen on 127.0.0.1:0 and serve until stopped.
    pub fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("origin bind");
        listener.set_nonblocking(true).expect("origin nonblocking");
        let port = listener.local_addr().expect("origin addr").port();
        let shared = Arc::new(Shared::default());
        let sh = shared.clone();
        let accept = std::thread::Builder::new()
            .name("origin-accept".into())
            .spawn(move || accept_loop(listener, sh))
            .expect("spawn origin");
        Origin {
            port,
            shared,
            accept: Some(accept),
        }
    }

    /// Answer `path` (exact, query ignored) with `f(request)`.
    pub fn route_fn(&self, path: &str, f: impl Fn(&OriginReq) -> Canned + Send + Sync + 'static) {
        self.shared
            .routes
            .lock()
            .unwrap()
            .insert(path.into(), Arc::new(f));
    }

    /// Answer `path` with a fixed response.
    pub fn route(&self, path: &str, c: Canned) {
        self.route_fn(path, move |_| c.clone());
    }

    /// How many requests for `path` arrived so far.
    pub fn count(&self, path: &str) -> usize {
        self.shared
            .counts
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Every request received so far for `path`, in order.
    pub fn requests(&self, path: &str) -> Vec<OriginReq> {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Close the listener and every connection; join all threads. After
    /// this, connections to the port are refused.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        let conns = std::mem::take(&mut *self.shared.conns.lock().unwrap());
        for (s, _) in &conns {
            let _ = s.shutdown(Shutdown::Both);
        }
        for (_, h) in conns {
            let _ = h.join();
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, sh: Arc<Shared>) {
    while !sh.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                let Ok(clone) = s.try_clone() else { continue };
                let sh2 = sh.clone();
                let h = std::thread::spawn(move || serve_conn(s, &sh2));
                let mut conns = sh.conns.lock().unwrap();
                // Forget finished connections so the list stays short.
                let (done, live): (Vec<_>, Vec<_>) = std::mem::take(&mut *conns)
                    .into_iter()
                    .partition(|(_, h)| h.is_finished());
                for (_, h) in done {
                    let _ = h.join();
                }
                *conns = live;
                conns.push((clone, h));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    // The listener is dropped here: the port refuses connections from now.
}

/// Read one request (head and Content-Length body) from `s`, using `buf` as
/// carry-over. `None` on EOF, error or garbage.
fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<OriginReq> {
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let mut chunk = [0u8; 8192];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let text = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = text.split("\r\n");
    let mut rl = lines.next()?.split(' ');
    let method = rl.next()?.to_string();
    let target = rl.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    buf.drain(..head_end + 4);
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < len {
        let mut chunk = [0u8; 8192];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buf.drain(..len).collect();
    let path = target.split('?').next().unwrap_or("").to_string();
    Some(OriginReq {
        method,
        target,
        path,
        headers,
        body,
        n: 0,
    })
}

fn serve_conn(mut s: TcpStream, sh: &Shared) {
    let mut buf = Vec::new();
    while let Some(mut req) = read_request(&mut s, &mut buf) {
        if sh.stop.load(Ordering::SeqCst) {
            return;
        }
        req.n = {
            let mut counts = sh.counts.lock().unwrap();
            let c = counts.entry(req.path.clone()).or_insert(0);
            *c += 1;
            *c
        };
        sh.log.lock().unwrap().push(req.clone());
        let handler = sh.routes.lock().unwrap().get(&req.path).cloned();
        let canned = match handler {
            Some(h) => h(&req),
            None if req.path.starts_with("/_barrier") => Canned::ok("barrier").cc("max-age=600"),
            None => Canned::ok("no route").status(404),
        };
        let close_req = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let (bytes, close_after) = render(&canned, req.method == "HEAD");
        if s.write_all(&bytes).is_err() {
            return;
        }
        if close_after || close_req {
            let _ = s.shutdown(Shutdown::Write);
            // Let the peer read everything before the socket goes away.
            let mut sink = [0u8; 1024];
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
            return;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        203 => "Non-Authoritative Information",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// The response bytes, and whether the connection must close after them.
fn render(c: &Canned, head: bool) -> (Vec<u8>, bool) {
    let mut out = format!("HTTP/1.1 {} {}\r\n", c.status, reason(c.status)).into_bytes();
    let has = |n: &str| c.headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(n));
    if c.date && !has("date") {
        out.extend_from_slice(format!("Date: {}\r\n", http_date(unix_now())).as_bytes());
    }
    for (n, v) in &c.headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    let mut close = false;
    match c.framing {
        Framing::Length | Framing::Truncated(_) => {
            out.extend_from_slice(format!("Content-Length: {}\r\n", c.body.len()).as_bytes());
        }
        Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::Close => {
            out.extend_from_slice(b"Connection: close\r\n");
            close = true;
        }
    }
    out.extend_from_slice(b"\r\n");
    if head {
        return (out, close);
    }
    match c.framing {
        Framing::Length | Framing::Close => out.extend_from_slice(&c.body),
        Framing::Truncated(n) => {
            out.extend_from_slice(&c.body[..n.min(c.body.len())]);
            close = true;
        }
        Framing::Chunked => {
            for chunk in c.body.chunks(1000) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
    (out, close)
}
