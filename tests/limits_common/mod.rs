//! A small harness for the limits integration tests: a temp directory, a
//! daemonized `sluice` started from a config template (killed on drop, even
//! when a test panics), a raw HTTP/1.1 client, and a real nginx for the
//! `auth_request` test. Every wait is bounded.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const WAIT: Duration = Duration::from_secs(10);

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `<tmp>/sluice-lt-<pid>-<n>-<tag>`.
    pub fn new(tag: &str) -> TempDir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("sluice-lt-{}-{n}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(p.join("www")).expect("mkdir www");
        fs::create_dir_all(p.join("logs")).expect("mkdir logs");
        TempDir(p)
    }

    /// A path inside.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// Children of `pid`, from /proc.
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
        let ppid = after.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out.sort();
    out
}

/// A running sluice: `conf` is a template where `{dir}` and `{port}` are
/// replaced; the file is `DIR/sluice.conf`, the pid file `DIR/sluice.pid`,
/// zones in `DIR/state`, the error log `DIR/logs/error.log`.
pub struct Sluice {
    /// Working directory (owned by the test).
    pub dir: PathBuf,
    /// Listening port.
    pub port: u16,
    /// Config path.
    pub conf: PathBuf,
    /// The master's pid as last seen, so it can be stopped even after the
    /// test removed its directory (and the pid file with it).
    master: std::sync::atomic::AtomicI32,
}

/// The usual frame around a test's http-level text and server-level text.
pub fn conf_template(workers: usize, http: &str, server: &str) -> String {
    format!(
        "worker_processes {workers};\ndaemon on;\npid {{dir}}/sluice.pid;\n\
         error_log {{dir}}/logs/error.log info;\nstate_dir {{dir}}/state;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  {http}\n  server {{\n    listen 127.0.0.1:{{port}};\n\
         root {{dir}}/www;\n    location = /status {{ status; }}\n    {server}\n  }}\n}}\n"
    )
}

impl Sluice {
    /// Write the config and start sluice; panics if it is not serving in time.
    pub fn start(dir: &Path, template: &str) -> Sluice {
        let port = free_port();
        let conf = dir.join("sluice.conf");
        let text = template
            .replace("{dir}", &dir.display().to_string())
            .replace("{port}", &port.to_string());
        fs::write(&conf, text).expect("write conf");
        let s = Sluice {
            dir: dir.to_path_buf(),
            port,
            conf,
            master: std::sync::atomic::AtomicI32::new(0),
        };
        s.launch();
        s
    }

    /// Start (again) on the same config and port.
    pub fn launch(&self) {
        let out = Command::new(BIN)
            .arg("-c")
            .arg(&self.conf)
            .output()
            .expect("run sluice");
        assert!(
            out.status.success(),
            "sluice failed to start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + WAIT;
        while self.master_pid().is_none() || !port_open(self.port) {
            assert!(Instant::now() < deadline, "sluice not serving in time");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The master's pid, from the pid file (or as last seen, if the file
    /// is gone and that process still runs).
    pub fn master_pid(&self) -> Option<i32> {
        let read = fs::read_to_string(self.dir.join("sluice.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        match read {
            Some(pid) => {
                self.master.store(pid, std::sync::atomic::Ordering::Relaxed);
                Some(pid)
            }
            None => Some(self.master.load(std::sync::atomic::Ordering::Relaxed))
                .filter(|&m| m > 0 && alive(m)),
        }
    }

    /// Worker pids.
    pub fn workers(&self) -> Vec<i32> {
        self.master_pid().map(children).unwrap_or_default()
    }

    /// SIGHUP, then wait until the worker set changed.
    pub fn reload(&self) {
        let before = self.workers();
        let m = self.master_pid().expect("master pid");
        signal(m, nix::sys::signal::Signal::SIGHUP);
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.workers();
            if !now.is_empty() && now.iter().all(|p| !before.contains(p)) {
                break;
            }
            assert!(Instant::now() < deadline, "reload did not replace workers");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Graceful stop; waits for the master to exit.
    pub fn stop(&self) {
        let Some(m) = self.master_pid() else {
            return;
        };
        signal(m, nix::sys::signal::Signal::SIGQUIT);
        let deadline = Instant::now() + WAIT;
        while alive(m) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
    }

    /// `kill -9` the master and its workers, remove the stale pid file.
    pub fn kill9(&self) {
        if let Some(m) = self.master_pid() {
            let ws = children(m);
            signal(m, nix::sys::signal::Signal::SIGKILL);
            for w in ws {
                signal(w, nix::sys::signal::Signal::SIGKILL);
            }
            let deadline = Instant::now() + WAIT;
            while alive(m) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = fs::remove_file(self.dir.join("sluice.pid"));
        let deadline = Instant::now() + WAIT;
        while port_open(self.port) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default()
    }

    /// The error log once it contains `needle` (it is written by a log
    /// thread, so a line may land a moment after the response); panics
    /// with the log after `WAIT`.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.error_log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the error log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One request on a fresh connection.
    pub fn get(&self, path: &str) -> Response {
        request(self.port, path, &[])
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A response: status, raw head, body.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code (0 if none could be read).
    pub status: u16,
    /// The head, lowercased, for header checks.
    pub head: String,
    /// The head as sent (tokens and cookies are case-sensitive).
    pub raw_head: String,
    /// The body.
    pub body: String,
}

impl Response {
    /// A header value (name in lowercase).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.trim() == name).then(|| v.trim().to_string())
        })
    }

    /// A header value as sent (name in any case).
    pub fn header_exact(&self, name: &str) -> Option<String> {
        self.raw_head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Parse one response out of `data`; returns it and the bytes used.
pub fn parse_response(data: &[u8]) -> Option<(Response, usize)> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let raw_head = String::from_utf8_lossy(&data[..end]).into_owned();
    let head = raw_head.to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut r = Response {
        status,
        head,
        raw_head,
        body: String::new(),
    };
    let len: usize = r
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if data.len() < end + len {
        return None;
    }
    r.body = String::from_utf8_lossy(&data[end..end + len]).into_owned();
    Some((r, end + len))
}

/// `GET path` with `extra` header lines on a fresh connection (closed after).
pub fn request(port: u16, path: &str, extra: &[(&str, &str)]) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (n, v) in extra {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut data = Vec::new();
    let _ = s.read_to_end(&mut data);
    parse_response(&data).map(|(r, _)| r).unwrap_or(Response {
        status: 0,
        head: String::new(),
        raw_head: String::new(),
        body: String::new(),
    })
}

/// A keep-alive connection sending one request at a time.
pub struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connect.
    pub fn new(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let _ = s.set_nodelay(true);
        Conn { s, buf: Vec::new() }
    }

    /// Send raw bytes.
    pub fn send(&mut self, raw: &str) {
        self.s.write_all(raw.as_bytes()).expect("write");
    }

    /// Read the next response.
    pub fn read(&mut self) -> Response {
        self.try_read()
            .expect("connection closed before a full response")
    }

    /// Read the next response; `None` if the server closed first.
    pub fn try_read(&mut self) -> Option<Response> {
        loop {
            if let Some((r, used)) = parse_response(&self.buf) {
                self.buf.drain(..used);
                return Some(r);
            }
            let mut chunk = [0u8; 8192];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// `GET path` with `Host: host`, keep-alive; the response.
    pub fn get(&mut self, path: &str, host: &str) -> Response {
        self.send(&format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        self.read()
    }
}

/// A real nginx started in the foreground under its own prefix; stopped on
/// drop. `None` (with a printed note) when nginx is not installed.
pub struct Nginx {
    child: Child,
    /// Its port.
    pub port: u16,
}

impl Nginx {
    /// Start nginx with `http_body` inside `http { }` (`{port}` and
    /// `{dir}` replaced).
    pub fn start(dir: &Path, http_body: &str) -> Option<Nginx> {
        let bin = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let port = free_port();
        fs::create_dir_all(dir.join("logs")).ok()?;
        let body = http_body
            .replace("{port}", &port.to_string())
            .replace("{dir}", &dir.display().to_string());
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\n\
             pid {d}/nginx.pid;\nerror_log {d}/logs/nginx-error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/cb;\n proxy_temp_path {d}/px;\n\
             fastcgi_temp_path {d}/fc;\n uwsgi_temp_path {d}/uw;\n scgi_temp_path {d}/sc;\n{body}\n}}\n"
        );
        let path = dir.join("nginx.conf");
        fs::write(&path, conf).ok()?;
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let n = Nginx { child, port };
        let deadline = Instant::now() + WAIT;
        while !port_open(port) {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(n)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        signal(pid, nix::sys::signal::Signal::SIGQUIT);
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for c in children(pid) {
            signal(c, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
