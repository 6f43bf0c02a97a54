//! HTTP/2 to clients, end to end: curl (`--http2-prior-knowledge` on a
//! plain `http2` listener, `--http2` over TLS with ALPN), nghttp and h2load
//! when installed, and a raw frame client here for what the tools will not
//! do: static, return, proxy, cache, limits and request bodies over h2,
//! flow control with large bodies and tiny windows, many concurrent
//! streams, `http2_max_concurrent_streams`, header limits, GOAWAY on reload
//! with no failed stream, and the attacks (rapid reset, CONTINUATION flood,
//! HPACK bomb, SETTINGS and PING floods, zero-window stall, stream ids):
//! the bad client loses its connection, the others are served.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

// ------------------------------------------------------------ frame client

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;
const ACK: u8 = 1;

const PROTOCOL_ERROR: u32 = 1;
const REFUSED_STREAM: u32 = 7;
const STREAM_CLOSED: u32 = 5;
const ENHANCE_YOUR_CALM: u32 = 0xb;

fn frame(ty: u8, flags: u8, id: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, ty, flags];
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (k, v) in pairs {
        p.extend_from_slice(&k.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &p)
}

fn window_update(id: u32, n: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, id, &n.to_be_bytes())
}

#[derive(Debug)]
struct Frame {
    ty: u8,
    flags: u8,
    id: u32,
    payload: Vec<u8>,
}

#[derive(Debug, Default, Clone)]
struct H2Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// RST_STREAM error code, when the stream was reset.
    reset: Option<u32>,
    done: bool,
}

impl H2Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a connection ended with.
#[derive(Debug, Default)]
struct Ending {
    /// GOAWAY (last stream id, error code), if one came.
    goaway: Option<(u32, u32)>,
    /// The server closed the connection.
    closed: bool,
}

/// A raw HTTP/2 client over plain TCP (h2c prior knowledge).
struct H2Client {
    s: TcpStream,
    buf: Vec<u8>,
    enc: loona_hpack::Encoder<'static>,
    dec: loona_hpack::Decoder<'static>,
    /// Give the windows back as DATA is read.
    auto_window: bool,
    resps: HashMap<u32, H2Resp>,
    goaway: Option<(u32, u32)>,
    closed: bool,
    next_id: u32,
}

impl H2Client {
    fn connect(port: u16) -> H2Client {
        H2Client::connect_with(port, &[])
    }

    /// Preface and our SETTINGS (`pairs`).
    fn connect_with(port: u16, pairs: &[(u16, u32)]) -> H2Client {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_nodelay(true).ok();
        let mut c = H2Client {
            s,
            buf: Vec::new(),
            enc: loona_hpack::Encoder::new(),
            dec: loona_hpack::Decoder::new(),
            auto_window: true,
            resps: HashMap::new(),
            goaway: None,
            closed: false,
            next_id: 1,
        };
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(pairs));
        c.send(&hello);
        c
    }

    fn send(&mut self, bytes: &[u8]) {
        // A server that closed on us may refuse the rest: that is the point.
        let _ = self.s.write_all(bytes);
    }

    /// The next frame within `timeout`; `None` on timeout or close.
    fn read_frame(&mut self, timeout: Duration) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.buf.len() >= 9 {
                let n = (self.buf[0] as usize) << 16
                    | (self.buf[1] as usize) << 8
                    | self.buf[2] as usize;
                if self.buf.len() >= 9 + n {
                    let f = Frame {
                        ty: self.buf[3],
                        flags: self.buf[4],
                        id: u32::from_be_bytes(self.buf[5..9].try_into().unwrap()) & 0x7fff_ffff,
                        payload: self.buf[9..9 + n].to_vec(),
                    };
                    self.buf.drain(..9 + n);
                    return Some(f);
                }
            }
            if self.closed {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.s.set_read_timeout(Some(left)).ok();
            let mut tmp = [0u8; 65536];
            match self.s.read(&mut tmp) {
                Ok(0) => self.closed = true,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None
                }
                Err(_) => self.closed = true,
            }
        }
    }

    /// Read one frame and keep what it says; false on timeout or close.
    fn pump(&mut self, timeout: Duration) -> bool {
        let Some(f) = self.read_frame(timeout) else {
            return false;
        };
        match f.ty {
            SETTINGS if f.flags & ACK == 0 => self.send(&frame(SETTINGS, ACK, 0, &[])),
            PING if f.flags & ACK == 0 => self.send(&frame(PING, ACK, 0, &f.payload)),
            GOAWAY => {
                let last = u32::from_be_bytes(f.payload[0..4].try_into().unwrap());
                let code = u32::from_be_bytes(f.payload[4..8].try_into().unwrap());
                self.goaway = Some((last, code));
            }
            HEADERS | CONTINUATION => {
                let fields = self.dec.decode(&f.payload).expect("hpack from server");
                let r = self.resps.entry(f.id).or_default();
                for (n, v) in fields {
                    let (n, v) = (
                        String::from_utf8_lossy(&n).into_owned(),
                        String::from_utf8_lossy(&v).into_owned(),
                    );
                    if n == ":status" {
                        r.status = v.parse().unwrap();
                    } else {
                        r.headers.push((n, v));
                    }
                }
                assert!(
                    f.flags & END_HEADERS != 0,
                    "test client: no CONTINUATION from server expected"
                );
                if f.flags & END_STREAM != 0 {
                    r.done = true;
                }
            }
            DATA => {
                let r = self.resps.entry(f.id).or_default();
                r.body.extend_from_slice(&f.payload);
                if f.flags & END_STREAM != 0 {
                    r.done = true;
                }
                if self.auto_window && !f.payload.is_empty() {
                    let n = f.payload.len() as u32;
                    let mut w = window_update(0, n);
                    if f.flags & END_STREAM == 0 {
                        w.extend(window_update(f.id, n));
                    }
                    self.send(&w);
                }
            }
            RST_STREAM => {
                let r = self.resps.entry(f.id).or_default();
                r.reset = Some(u32::from_be_bytes(f.payload[0..4].try_into().unwrap()));
                r.done = true;
            }
            _ => {}
        }
        true
    }

    fn header_block(&mut self, method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut fields: Vec<(&[u8], &[u8])> = vec![
            (b":method", method.as_bytes()),
            (b":scheme", b"http"),
            (b":authority", b"localhost"),
            (b":path", path.as_bytes()),
        ];
        for (n, v) in extra {
            fields.push((n.as_bytes(), v.as_bytes()));
        }
        self.enc.encode(fields)
    }

    /// Open a stream with a request head; its id.
    fn start(&mut self, method: &str, path: &str, extra: &[(&str, &str)], end: bool) -> u32 {
        let id = self.next_id;
        self.next_id += 2;
        let block = self.header_block(method, path, extra);
        let flags = END_HEADERS | if end { END_STREAM } else { 0 };
        self.send(&frame(HEADERS, flags, id, &block));
        id
    }

    /// Wait until every stream in `ids` is done (or `timeout`).
    fn wait(&mut self, ids: &[u32], timeout: Duration) -> Vec<H2Resp> {
        let deadline = Instant::now() + timeout;
        while !ids
            .iter()
            .all(|id| self.resps.get(id).is_some_and(|r| r.done))
        {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || (!self.pump(left) && self.closed) {
                break;
            }
        }
        ids.iter()
            .map(|id| self.resps.get(id).cloned().unwrap_or_default())
            .collect()
    }

    fn get(&mut self, path: &str) -> H2Resp {
        let id = self.start("GET", path, &[], true);
        let r = self.wait(&[id], Duration::from_secs(10)).remove(0);
        assert!(
            r.done,
            "no complete answer for {path} on stream {id}: {r:?}"
        );
        r
    }

    /// Read (and answer) frames until the server closes, at most `timeout`.
    fn ending(&mut self, timeout: Duration) -> Ending {
        let deadline = Instant::now() + timeout;
        while !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.pump(left);
        }
        Ending {
            goaway: self.goaway,
            closed: self.closed,
        }
    }
}

// ---------------------------------------------------------------- helpers

/// A 3 MB file for the flow-control tests.
const BIG_BYTES: usize = 3_000_000;

fn h2c(extra_server: &str) -> Server {
    h2c_conf(Conf::new().workers(1).server(extra_server))
}

fn h2c_conf(conf: Conf) -> Server {
    let s = Server::start(conf.listen_params("http2"));
    fs_write(&s.path("www/big.bin"), &pseudo_random_bytes(BIG_BYTES, 7));
    s
}

fn fs_write(p: &Path, bytes: &[u8]) {
    std::fs::write(p, bytes).expect("write");
}

/// Regular files anywhere under `dir`.
fn files_under(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                files_under(&p)
            } else {
                usize::from(p.is_file())
            }
        })
        .sum()
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// curl with `args`; (status code, protocol version, body).
fn curl(args: &[&str]) -> (u16, String, Vec<u8>) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-S",
            "--max-time",
            "20",
            "-o",
            "-",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(args)
        .output()
        .expect("run curl");
    let mut body = out.stdout;
    let pos = body
        .iter()
        .rposition(|&b| b == b'\n')
        .expect("curl -w line");
    let tail = String::from_utf8_lossy(&body[pos + 1..]).into_owned();
    body.truncate(pos);
    let mut it = tail.split(' ');
    let code = it.next().unwrap_or("0").parse().unwrap_or(0);
    let ver = it.next().unwrap_or("").to_string();
    (code, ver, body)
}

/// `h2load` summary: (succeeded, failed, errored, 2xx).
fn h2load(args: &[&str]) -> (u64, u64, u64, u64) {
    let out = Command::new("h2load")
        .args(args)
        .output()
        .expect("run h2load");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let num_before = |line: &str, word: &str| -> u64 {
        let i = line
            .find(word)
            .unwrap_or_else(|| panic!("no {word} in {line}"));
        line[..i]
            .trim_end()
            .rsplit([' ', ','])
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let req = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or_else(|| panic!("h2load said:\n{text}"));
    let st = text
        .lines()
        .find(|l| l.starts_with("status codes:"))
        .unwrap();
    (
        num_before(req, "succeeded"),
        num_before(req, "failed"),
        num_before(req, "errored"),
        num_before(st, "2xx"),
    )
}

// ------------------------------------------------------------- the basics

#[test]
fn h2c_prior_knowledge_serves_static_return_head_404_and_logs_http_2_0() {
    let s = h2c(
        "location = /v { return 200 \"$server_protocol|$http2|$scheme\"; }\n\
         location = /t { try_files /hello.txt =404; }",
    );
    let base = format!("http://127.0.0.1:{}", s.port);
    let (code, ver, body) = curl(&["--http2-prior-knowledge", &format!("{base}/v")]);
    assert_eq!((code, ver.as_str()), (200, "2"));
    assert_eq!(body, b"HTTP/2.0|h2c|http");
    let (code, _, body) = curl(&["--http2-prior-knowledge", &format!("{base}/hello.txt")]);
    assert_eq!((code, body.as_slice()), (200, HELLO_TXT.as_bytes()));
    let (code, _, body) = curl(&["--http2-prior-knowledge", &format!("{base}/big.bin")]);
    assert_eq!(code, 200);
    assert!(
        body == pseudo_random_bytes(BIG_BYTES, 7),
        "big.bin differs ({} bytes)",
        body.len()
    );
    let (code, _, _) = curl(&["--http2-prior-knowledge", &format!("{base}/nope")]);
    assert_eq!(code, 404);
    let (code, _, body) = curl(&[
        "--http2-prior-knowledge",
        "-I",
        &format!("{base}/index.html"),
    ]);
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&body).contains("content-length: 612"));
    // The same listener still serves HTTP/1.1.
    let r = s.get("/hello.txt");
    assert_eq!((r.status, r.body_str()), (200, HELLO_TXT));
    // One connection, several streams, with the raw client.
    let mut c = H2Client::connect(s.port);
    let ids: Vec<u32> = ["/hello.txt", "/ret", "/t", "/dir/"]
        .iter()
        .map(|p| c.start("GET", p, &[], true))
        .collect();
    let rs = c.wait(&ids, Duration::from_secs(10));
    assert_eq!(rs[0].body, HELLO_TXT.as_bytes());
    assert_eq!(rs[1].body, b"ret-ok");
    assert_eq!(rs[2].body, HELLO_TXT.as_bytes());
    assert_eq!(rs[3].body, DIR_INDEX.as_bytes());
    assert!(rs
        .iter()
        .all(|r| r.status == 200 && r.header("server").is_some()));
    assert!(rs[0].header("connection").is_none());
    drop(c);
    // /status counts the h2 connections (5 curls, the raw client) and
    // their streams (5 + 4).
    wait_until("h2 counters in /status", Duration::from_secs(5), || {
        let t = s.get("/status").text();
        metric(&t, "sluice_http2_connections_total") == Some(6)
            && metric(&t, "sluice_http2_streams_total") == Some(9)
    });
    let log = wait_for(Duration::from_secs(5), || {
        let l = s.access_log();
        (count_lines(&l, "HTTP/2.0\" 200") >= 8).then_some(l)
    })
    .unwrap_or_else(|| panic!("access log:\n{}", s.access_log()));
    assert!(log.contains("\"GET /v HTTP/2.0\" 200"), "{log}");
    assert!(log.contains("\"GET /hello.txt HTTP/1.1\" 200"), "{log}");
}

#[test]
fn tls_alpn_picks_h2_and_still_serves_http_1_1_and_large_files() {
    let s = {
        let dir = TempDir::new("h2-tls");
        let cert = make_cert(dir.path(), "h2", &["localhost"]);
        let conf = Conf::new()
            .workers(1)
            .listen_params("ssl http2")
            .server(&format!(
                "ssl_certificate {}; ssl_certificate_key {};\n\
             location = /v {{ return 200 \"$server_protocol|$http2|$scheme\"; }}",
                cert.cert.display(),
                cert.key.display()
            ));
        let s = Server::start_in(dir, conf);
        fs_write(&s.path("www/big.bin"), &pseudo_random_bytes(BIG_BYTES, 7));
        s
    };
    let resolve = format!("localhost:{}:127.0.0.1", s.port);
    let base = format!("https://localhost:{}", s.port);
    let h2 = ["-k", "--http2", "--resolve", resolve.as_str()];
    let (code, ver, body) = curl(&[&h2[..], &[&format!("{base}/v")]].concat());
    assert_eq!((code, ver.as_str()), (200, "2"));
    assert_eq!(body, b"HTTP/2.0|h2|https");
    let (code, _, body) = curl(&[&h2[..], &[&format!("{base}/big.bin")]].concat());
    assert_eq!(code, 200);
    assert!(
        body == pseudo_random_bytes(BIG_BYTES, 7),
        "big.bin differs ({} bytes)",
        body.len()
    );
    let (code, ver, body) = curl(&[
        "-k",
        "--http1.1",
        "--resolve",
        &resolve,
        &format!("{base}/v"),
    ]);
    assert_eq!((code, ver.as_str()), (200, "1.1"));
    assert_eq!(body, b"HTTP/1.1||https");
    if have("nghttp") {
        let out = Command::new("nghttp")
            .args([
                "-n",
                "-s",
                &format!("{base}/index.html"),
                &format!("{base}/64k.bin"),
            ])
            .output()
            .expect("nghttp");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_plain_listener_without_http2_answers_the_preface_as_http_1_1() {
    let s = Server::start(Conf::new().workers(1));
    // As nginx: a request line with HTTP/2.0 is 505.
    let raw = s.exchange(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 505"), "{text}");
}

// ------------------------------------------------ proxy, cache, limits, bodies

#[test]
fn proxy_cache_and_request_bodies_over_h2_with_upstreams_on_http_1_1() {
    let origin = Origin::start(|seen| {
        let body = format!(
            "{} {} {} len={}",
            seen.method,
            seen.target,
            seen.version,
            seen.body.len()
        );
        vec![Step::Write(http_response(
            200,
            "Cache-Control: max-age=60\r\nX-Origin: yes\r\n",
            body.as_bytes(),
        ))]
    });
    let dir = TempDir::new("h2-proxy");
    let cache = dir.join("cache");
    let s = h2c_conf(
        Conf::new()
            .workers(1)
            .http(&format!("proxy_cache_path {} levels=1:2 keys_zone=c:1m;", cache.display()))
            .server(&format!(
                "location /p/ {{ proxy_pass http://{0}; }}\n\
                 location /c/ {{ proxy_pass http://{0}; proxy_cache c; add_header X-Cache $upstream_cache_status; }}\n\
                 location /up/ {{ client_max_body_size 8m; proxy_pass http://{0}; }}",
                origin.addr()
            )),
    );
    let base = format!("http://127.0.0.1:{}", s.port);
    let (code, _, body) = curl(&["--http2-prior-knowledge", &format!("{base}/p/a?x=1")]);
    assert_eq!(code, 200);
    assert_eq!(body, b"GET /p/a?x=1 HTTP/1.1 len=0");
    // Cache: MISS then HIT, the origin asked once.
    let before = origin.request_count();
    let mut c = H2Client::connect(s.port);
    let r1 = c.get("/c/k");
    // The fill is written by the worker's writer thread: wait for its file.
    wait_until("the cache entry", Duration::from_secs(5), || {
        files_under(&cache) > 0
    });
    let r2 = c.get("/c/k");
    assert_eq!((r1.status, r1.header("x-cache")), (200, Some("MISS")));
    assert_eq!((r2.status, r2.header("x-cache")), (200, Some("HIT")));
    assert_eq!(r2.body, b"GET /c/k HTTP/1.1 len=0");
    assert_eq!(origin.request_count(), before + 1);
    // A 2 MB upload (more than the 64 KiB stream window: WINDOW_UPDATEs).
    let up = dir.write("up.bin", pseudo_random_bytes(2_000_000, 3));
    let data = format!("@{}", up.display());
    let (code, _, body) = curl(&[
        "--http2-prior-knowledge",
        "--data-binary",
        &data,
        &format!("{base}/up/x"),
    ]);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, b"POST /up/x HTTP/1.1 len=2000000");
    let seen = origin.seen();
    let last = seen.last().unwrap();
    assert!(
        last.body == pseudo_random_bytes(2_000_000, 3),
        "upload differs"
    );
    // Over client_max_body_size (1m here): 413, then RST_STREAM NO_ERROR
    // for the rest of the body (RFC 9113 8.1; curl 7.88 loses such an
    // answer, so the raw client asks).
    let id = c.start("POST", "/p/big", &[("content-length", "2000000")], false);
    c.send(&frame(DATA, 0, id, &[b'x'; 16384]));
    let r = c.wait(&[id], Duration::from_secs(10)).remove(0);
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.reset.is_none_or(|code| code == 0), "{r:?}");
    // A body without a length, from the raw client, in DATA frames: all in
    // one write with the head (the server learns the length), and trickled
    // (re-chunked upstream).
    for trickle in [false, true] {
        let path = format!("/up/raw{}", u8::from(trickle));
        let block = c.header_block("POST", &path, &[]);
        let id = c.next_id;
        c.next_id += 2;
        let head = frame(HEADERS, END_HEADERS, id, &block);
        let d1 = frame(DATA, 0, id, b"hello ");
        let d2 = frame(DATA, END_STREAM, id, b"world");
        if trickle {
            for f in [head, d1, d2] {
                c.send(&f);
                std::thread::sleep(Duration::from_millis(100));
            }
        } else {
            c.send(&[head, d1, d2].concat());
        }
        let r = c.wait(&[id], Duration::from_secs(10)).remove(0);
        let want = format!("POST {path} HTTP/1.1 len=11");
        assert_eq!(
            (r.status, String::from_utf8_lossy(&r.body)),
            (200, want.clone().into())
        );
        let seen = origin.seen();
        let last = seen.last().unwrap();
        assert_eq!(last.body, b"hello world");
        let te = last.header("transfer-encoding");
        assert_eq!(te.is_some(), trickle, "{:?}", last.headers);
    }
}

#[test]
fn limit_req_applies_to_each_stream_and_header_limits_answer_431() {
    let s = h2c_conf(
        Conf::new()
            .workers(1)
            .http("limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;\nhttp2_max_field_size 4k;")
            .server("location = /lim { limit_req zone=one nodelay; limit_req_status 503; try_files /hello.txt =404; }"),
    );
    let mut c = H2Client::connect(s.port);
    let ids: Vec<u32> = (0..3).map(|_| c.start("GET", "/lim", &[], true)).collect();
    let mut codes: Vec<u16> = c
        .wait(&ids, Duration::from_secs(10))
        .iter()
        .map(|r| r.status)
        .collect();
    codes.sort();
    assert_eq!(codes, [200, 503, 503]);
    // A 5 KB field over http2_max_field_size 4k: 431 for that stream only.
    let big = "a".repeat(5000);
    let id = c.start("GET", "/hello.txt", &[("x-big", &big)], true);
    let r = c.wait(&[id], Duration::from_secs(10)).remove(0);
    assert_eq!(r.status, 431, "{r:?}");
    let r = c.get("/hello.txt");
    assert_eq!(r.status, 200);
    // A malformed request (no :path): 400 or a stream reset, never a hang.
    let block = c
        .enc
        .encode(vec![(&b":method"[..], &b"GET"[..]), (b":scheme", b"http")]);
    let id = c.next_id;
    c.next_id += 2;
    c.send(&frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
    let r = c.wait(&[id], Duration::from_secs(10)).remove(0);
    assert!(r.reset == Some(PROTOCOL_ERROR) || r.status == 400, "{r:?}");
    assert_eq!(c.get("/ret").status, 200);
}

// ------------------------------------------------------------ flow control

#[test]
fn flow_control_large_bodies_through_tiny_windows_arrive_whole() {
    let s = h2c("");
    let want = pseudo_random_bytes(BIG_BYTES, 7);
    // Stream windows of 1000 bytes, given back as read.
    let mut c = H2Client::connect_with(s.port, &[(4, 1000)]);
    let a = c.start("GET", "/big.bin", &[], true);
    let b = c.start("GET", "/64k.bin", &[], true);
    let rs = c.wait(&[a, b], Duration::from_secs(30));
    assert_eq!(rs[0].status, 200);
    assert!(rs[0].body == want, "big.bin: {} bytes", rs[0].body.len());
    assert_eq!(rs[1].body.len(), BIN_64K_BYTES);
    // No WINDOW_UPDATE at all: exactly the initial windows arrive, then
    // the rest once we open them.
    let mut c = H2Client::connect(s.port);
    c.auto_window = false;
    let id = c.start("GET", "/big.bin", &[], true);
    while c.pump(Duration::from_millis(500)) {}
    let got = c.resps[&id].body.len();
    assert_eq!(got, 65_535, "the server must stop at the stream window");
    c.send(&[window_update(0, 1 << 30), window_update(id, 1 << 30)].concat());
    let r = c.wait(&[id], Duration::from_secs(20)).remove(0);
    assert!(r.body == want, "{} bytes", r.body.len());
    if have("nghttp") {
        // nghttp with 64 KiB windows (2^16-1), 10 at once.
        let url = format!("http://127.0.0.1:{}/big.bin", s.port);
        let out = Command::new("nghttp")
            .args(["-n", "-s", "-w", "16", "-W", "16", "-m", "10", &url])
            .output()
            .expect("nghttp");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.matches("/big.bin").count(), 10, "{text}");
    }
}

#[test]
fn a_zero_window_stall_is_closed_after_send_timeout_others_unaffected() {
    let s = h2c("send_timeout 1s;");
    let mut bad = H2Client::connect_with(s.port, &[(4, 0)]);
    bad.auto_window = false;
    let t0 = Instant::now();
    let id = bad.start("GET", "/big.bin", &[], true);
    let mut good = H2Client::connect(s.port);
    assert_eq!(good.get("/hello.txt").status, 200);
    let end = bad.ending(Duration::from_secs(8));
    assert!(end.closed, "stalled connection still open after 8 s");
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "closed too early: {:?}",
        t0.elapsed()
    );
    assert!(bad.resps.get(&id).is_none_or(|r| r.body.is_empty()));
    assert_eq!(good.get("/64k.bin").body.len(), BIN_64K_BYTES);
}

// -------------------------------------------------------- many streams

#[test]
fn many_concurrent_streams_and_http2_max_concurrent_streams() {
    let origin = Origin::start(|_| {
        vec![
            Step::Sleep(Duration::from_millis(300)),
            Step::Write(ok_response(b"slow")),
        ]
    });
    let s = h2c(&format!(
        "location /slow {{ proxy_pass http://{}; }}",
        origin.addr()
    ));
    // 120 streams at once on one connection (default limit 128).
    let mut c = H2Client::connect(s.port);
    let paths = ["/hello.txt", "/index.html", "/64k.bin", "/ret"];
    let ids: Vec<u32> = (0..120)
        .map(|i| c.start("GET", paths[i % 4], &[], true))
        .collect();
    let rs = c.wait(&ids, Duration::from_secs(20));
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(r.status, 200, "stream {i}: {r:?}");
    }
    assert_eq!(rs[2].body.len(), BIN_64K_BYTES);
    if have("h2load") {
        let url = format!("http://127.0.0.1:{}/hello.txt", s.port);
        let (ok, failed, errored, x2) = h2load(&["-n", "5000", "-c", "8", "-m", "100", &url]);
        assert_eq!((ok, failed, errored, x2), (5000, 0, 0, 5000));
    }
    drop(s);
    // http2_max_concurrent_streams 2: the third slow stream is refused.
    let s = h2c_conf(
        Conf::new()
            .workers(1)
            .http("http2_max_concurrent_streams 2;")
            .server(&format!(
                "location /slow {{ proxy_pass http://{}; }}",
                origin.addr()
            )),
    );
    let mut c = H2Client::connect(s.port);
    // Our SETTINGS ack and theirs first, so the limit is known.
    c.pump(Duration::from_secs(2));
    let ids: Vec<u32> = (0..3).map(|_| c.start("GET", "/slow", &[], true)).collect();
    let rs = c.wait(&ids, Duration::from_secs(10));
    assert_eq!((rs[0].status, rs[1].status), (200, 200), "{rs:?}");
    assert_eq!(rs[0].body, b"slow");
    assert_eq!(rs[2].reset, Some(REFUSED_STREAM), "{:?}", rs[2]);
    // Once they are done, new streams are served again.
    assert_eq!(c.get("/slow").body, b"slow");
}

#[test]
fn reload_sends_goaway_and_no_stream_fails() {
    let origin = Origin::start(|_| {
        vec![
            Step::Sleep(Duration::from_millis(800)),
            Step::Write(ok_response(b"slow-done")),
        ]
    });
    let s = h2c(&format!(
        "location /slow {{ proxy_pass http://{}; }}",
        origin.addr()
    ));
    let mut c = H2Client::connect(s.port);
    assert_eq!(c.get("/hello.txt").status, 200);
    let id = c.start("GET", "/slow", &[], true);
    assert!(origin.wait_requests(1, Duration::from_secs(5)));
    // Load from h2load across the reload.
    let url = format!("http://127.0.0.1:{}/hello.txt", s.port);
    let load = have("h2load")
        .then(|| std::thread::spawn(move || h2load(&["-D", "3", "-c", "4", "-m", "10", &url])));
    std::thread::sleep(Duration::from_millis(500));
    s.reload();
    // The old worker tells us to go away (NO_ERROR), finishes the slow
    // stream, and only then closes.
    let r = c.wait(&[id], Duration::from_secs(10)).remove(0);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, b"slow-done".as_slice()),
        "{r:?}"
    );
    let end = c.ending(Duration::from_secs(10));
    let (last, code) = end.goaway.expect("GOAWAY on reload");
    assert_eq!(code, 0);
    assert!(last >= id, "last stream id {last} < {id}");
    assert!(end.closed);
    // New connections go to the new worker.
    assert_eq!(H2Client::connect(s.port).get("/ret").body, b"ret-ok");
    if let Some(t) = load {
        let (ok, failed, errored, x2) = t.join().unwrap();
        assert!(ok > 100, "h2load: only {ok} succeeded");
        assert_eq!((failed, errored), (0, 0), "h2load across the reload");
        assert_eq!(x2, ok);
    }
}

// ----------------------------------------------------------------- attacks

/// After an attack: a fresh client is served, and `other` (opened before)
/// still is.
fn others_unaffected(s: &Server, other: &mut H2Client) {
    assert_eq!(other.get("/hello.txt").body, HELLO_TXT.as_bytes());
    assert_eq!(H2Client::connect(s.port).get("/ret").body, b"ret-ok");
}

fn assert_goaway(end: &Ending, code: u32) {
    assert!(end.closed, "attacker still connected: {end:?}");
    assert_eq!(end.goaway.map(|g| g.1), Some(code), "{end:?}");
}

#[test]
fn rapid_reset_loses_the_connection() {
    let s = h2c("");
    let mut other = H2Client::connect(s.port);
    assert_eq!(other.get("/ret").status, 200);
    let mut bad = H2Client::connect(s.port);
    let mut burst = Vec::new();
    for _ in 0..1000 {
        let id = bad.next_id;
        bad.next_id += 2;
        let block = bad.header_block("GET", "/index.html", &[]);
        burst.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
        burst.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    bad.send(&burst);
    assert_goaway(&bad.ending(Duration::from_secs(5)), ENHANCE_YOUR_CALM);
    others_unaffected(&s, &mut other);
    s.wait_log("rapid reset");
}

#[test]
fn continuation_flood_loses_the_connection() {
    let s = h2c("");
    let mut other = H2Client::connect(s.port);
    let mut bad = H2Client::connect(s.port);
    let block = bad.header_block("GET", "/", &[]);
    let mut burst = frame(HEADERS, 0, 1, &block);
    for _ in 0..10_000 {
        burst.extend(frame(CONTINUATION, 0, 1, b"\x40\x01a\x01b"));
    }
    bad.send(&burst);
    assert_goaway(&bad.ending(Duration::from_secs(5)), ENHANCE_YOUR_CALM);
    others_unaffected(&s, &mut other);
}

#[test]
fn hpack_bomb_loses_the_connection() {
    let s = h2c("");
    let mut other = H2Client::connect(s.port);
    let mut bad = H2Client::connect(s.port);
    // Stream 1 puts a 4000-byte field in the dynamic table (literal with
    // incremental indexing, plain string)...
    let mut block = bad.header_block("GET", "/ret", &[]);
    block.push(0x40);
    block.push(6);
    block.extend_from_slice(b"x-bomb");
    let value = vec![b'a'; 4000];
    block.push(0x7f); // length 4000 = 127 + 3873
    let mut rest = 4000 - 127;
    while rest >= 128 {
        block.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    block.push(rest as u8);
    block.extend_from_slice(&value);
    bad.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    // ...stream 3 refers to it 16000 times (64 MB decoded, 16 KB sent).
    let mut bomb = bad.header_block("GET", "/ret", &[]);
    // The encoder's own entries came first; ours is the newest: index 62.
    bomb.extend(std::iter::repeat_n(0xbe, 16_000));
    bad.send(&frame(HEADERS, END_HEADERS | END_STREAM, 3, &bomb));
    let end = bad.ending(Duration::from_secs(5));
    assert_goaway(&end, ENHANCE_YOUR_CALM);
    others_unaffected(&s, &mut other);
}

#[test]
fn settings_and_ping_floods_lose_the_connection() {
    let s = h2c("");
    let mut other = H2Client::connect(s.port);
    for flood in [frame(SETTINGS, 0, 0, &[]), frame(PING, 0, 0, b"12345678")] {
        let mut bad = H2Client::connect(s.port);
        // Without reading the acknowledgements.
        bad.send(&flood.repeat(5000));
        assert_goaway(&bad.ending(Duration::from_secs(5)), ENHANCE_YOUR_CALM);
    }
    others_unaffected(&s, &mut other);
    // A client that pings now and then is fine.
    for _ in 0..5 {
        other.send(&frame(PING, 0, 0, b"abcdefgh"));
    }
    assert_eq!(other.get("/ret").status, 200);
}

#[test]
fn bad_stream_ids_and_keepalive_requests_end_the_connection() {
    let s = h2c_conf(Conf::new().workers(1).server("keepalive_requests 3;"));
    // An even (server-side) stream id: PROTOCOL_ERROR.
    let mut bad = H2Client::connect(s.port);
    bad.next_id = 2;
    bad.start("GET", "/ret", &[], true);
    assert_goaway(&bad.ending(Duration::from_secs(5)), PROTOCOL_ERROR);
    // A stream id lower than one already used (implicitly closed):
    // STREAM_CLOSED for the connection.
    let mut bad = H2Client::connect(s.port);
    bad.next_id = 7;
    assert_eq!(bad.get("/ret").status, 200);
    bad.next_id = 5;
    bad.start("GET", "/ret", &[], true);
    assert_goaway(&bad.ending(Duration::from_secs(5)), STREAM_CLOSED);
    // The largest stream id is fine once.
    let mut c = H2Client::connect(s.port);
    c.next_id = 0x7fff_ffff;
    assert_eq!(c.get("/ret").status, 200);
    // keepalive_requests 3: GOAWAY (NO_ERROR) after the third stream.
    let mut c = H2Client::connect(s.port);
    for _ in 0..3 {
        assert_eq!(c.get("/ret").status, 200);
    }
    let end = c.ending(Duration::from_secs(5));
    assert_eq!(end.goaway, Some((5, 0)), "{end:?}");
    assert!(end.closed);
}
