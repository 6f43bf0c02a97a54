//! The cache-test harness: a [`Harness`] owns a sluice [`Server`] proxying
//! `location /` to a scriptable [`Origin`] with `proxy_cache` on, and the
//! cache directory (a separate [`TempDir`], so a restarted server can reuse
//! it). Helpers send requests with extra headers, read `X-Cache-Status`,
//! compute where an entry must be on disk (md5 of the key, `levels=1:2`),
//! wait for the writer thread to publish entries, and find which worker
//! serves a connection (via /proc).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};

use super::origin::Origin;
use crate::common::{wait_for, Client, Conf, Response, Server, TempDir};

/// How long a fill may take to appear on disk.
pub const FILL_TIMEOUT: Duration = Duration::from_secs(5);

/// A sluice with a cache zone `zone1` in front of an [`Origin`].
pub struct Harness {
    /// The proxy (dropped first: stopped before the origin and the cache dir go).
    pub srv: Server,
    /// The origin.
    pub origin: Origin,
    /// The cache directory's owner.
    pub cache: TempDir,
    barriers: usize,
}

/// The config of a cache test: `proxy_cache_path <cache> levels=1:2
/// keys_zone=zone1:1m` and `location / { proxy_pass origin; proxy_cache
/// zone1; <loc_extra> }`.
pub fn cache_conf(cache: &Path, origin_port: u16, workers: usize, loc_extra: &str) -> Conf {
    Conf::new()
        .workers(workers)
        .http(&format!(
            "    proxy_cache_path {} levels=1:2 keys_zone=zone1:1m;",
            cache.display()
        ))
        .server(&format!(
            "        location / {{\n            proxy_pass http://127.0.0.1:{origin_port};\n\
             \x20           proxy_cache zone1;\n{loc_extra}\n        }}"
        ))
}

impl Harness {
    /// One worker; `loc_extra` goes into `location /`.
    pub fn start(loc_extra: &str) -> Harness {
        Harness::start_workers(1, loc_extra)
    }

    /// `workers` workers; `loc_extra` goes into `location /`.
    pub fn start_workers(workers: usize, loc_extra: &str) -> Harness {
        let origin = Origin::start();
        let cache = TempDir::new("cache");
        let srv = Server::start(cache_conf(cache.path(), origin.port, workers, loc_extra));
        Harness {
            srv,
            origin,
            cache,
            barriers: 0,
        }
    }

    /// QUIT the server and start a new one with the same config (same cache
    /// directory and origin; another port and server directory).
    pub fn restart(&mut self) {
        self.srv.quit();
        let conf = self.srv.conf.clone();
        self.srv = Server::start(conf);
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        self.cache.path()
    }

    /// The default key (`$scheme$proxy_host$request_uri`) of `uri`.
    pub fn default_key(&self, uri: &str) -> String {
        format!("http127.0.0.1:{}{uri}", self.origin.port)
    }

    /// Where the primary entry of `uri` (default key) lives.
    pub fn entry_of(&self, uri: &str) -> PathBuf {
        entry_path(self.dir(), &self.default_key(uri))
    }

    /// Wait until the primary entry of `uri` exists on disk (panics after 5 s).
    pub fn wait_stored(&self, uri: &str) -> PathBuf {
        let p = self.entry_of(uri);
        wait_for(FILL_TIMEOUT, || p.exists().then_some(()))
            .unwrap_or_else(|| panic!("no cache entry for {uri} at {}", p.display()));
        p
    }

    /// Wait until at least `n` entry files exist (panics after 5 s).
    pub fn wait_entries(&self, n: usize) -> Vec<PathBuf> {
        wait_for(FILL_TIMEOUT, || {
            let v = entry_files(self.dir());
            (v.len() >= n).then_some(v)
        })
        .unwrap_or_else(|| {
            panic!(
                "expected {n} cache entries, have {:?}",
                entry_files(self.dir())
            )
        })
    }

    /// A fill barrier (one worker): fill a fresh cacheable path and wait for
    /// its file. The worker's writer thread handles fills in order, so any
    /// fill queued before this one has been published (or dropped) by now.
    pub fn barrier(&mut self) {
        self.barriers += 1;
        let uri = format!("/_barrier{}", self.barriers);
        let r = self.get(&uri);
        assert_eq!(r.status, 200, "barrier GET {uri}");
        self.wait_stored(&uri);
    }

    /// `GET uri` on a fresh connection.
    pub fn get(&self, uri: &str) -> Response {
        request(self.srv.port, "GET", uri, &[])
    }

    /// `GET uri` with extra header fields.
    pub fn get_with(&self, uri: &str, headers: &[(&str, &str)]) -> Response {
        request(self.srv.port, "GET", uri, headers)
    }

    /// `HEAD uri` on a fresh connection.
    pub fn head(&self, uri: &str) -> Response {
        request(self.srv.port, "HEAD", uri, &[])
    }
}

/// The request head for `method uri` with extra fields.
pub fn request_bytes(method: &str, uri: &str, headers: &[(&str, &str)], close: bool) -> Vec<u8> {
    let mut s = format!("{method} {uri} HTTP/1.1\r\nHost: test\r\n");
    for (n, v) in headers {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    if close {
        s.push_str("Connection: close\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// One request on a fresh connection (`Connection: close`).
pub fn request(port: u16, method: &str, uri: &str, headers: &[(&str, &str)]) -> Response {
    let mut c = Client::connect(port);
    c.send(&request_bytes(method, uri, headers, true));
    let r = if method == "HEAD" {
        c.read_head_response()
    } else {
        c.read_response()
    };
    r.unwrap_or_else(|e| panic!("{method} {uri}: {e}"))
}

/// One keep-alive request on `c`.
pub fn request_on(c: &mut Client, method: &str, uri: &str, headers: &[(&str, &str)]) -> Response {
    c.send(&request_bytes(method, uri, headers, false));
    let r = if method == "HEAD" {
        c.read_head_response()
    } else {
        c.read_response()
    };
    r.unwrap_or_else(|e| panic!("{method} {uri}: {e}"))
}

/// `X-Cache-Status` of a response ("" when absent).
pub fn cache_status(r: &Response) -> &str {
    r.header("x-cache-status").unwrap_or("")
}

/// Assert status 200, `X-Cache-Status: want` and the body.
#[track_caller]
pub fn assert_served(r: &Response, want: &str, body: &str) {
    assert_eq!(r.status, 200, "status; response {r:?}");
    assert_eq!(cache_status(r), want, "X-Cache-Status; response {r:?}");
    assert_eq!(r.text(), body, "body");
}

/// `Age` as a number (panics when absent or bad).
#[track_caller]
pub fn age(r: &Response) -> u64 {
    r.header("age")
        .unwrap_or_else(|| panic!("no Age in {r:?}"))
        .parse()
        .expect("numeric Age")
}

/// The lowercase hex md5 of `key`.
pub fn md5_hex(key: &str) -> String {
    Md5::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `DIR/<last hex char>/<2 previous hex chars>/<md5 hex>` (levels=1:2).
pub fn entry_path(dir: &Path, key: &str) -> PathBuf {
    let h = md5_hex(key);
    dir.join(&h[31..]).join(&h[29..31]).join(&h)
}

/// Entry files under `dir` (everything but the `tmp` directory), sorted.
pub fn entry_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(p: &Path, top: bool, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let path = e.path();
            if top && e.file_name() == "tmp" {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(&path, false, out),
                Ok(_) => out.push(path),
                Err(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, true, &mut out);
    out.sort();
    out
}

/// The worker (of `workers`) holding the server side of the client socket
/// `c` connected to `server_port`: the socket inode from /proc/net/tcp,
/// then the worker whose fd table has `socket:[inode]`.
pub fn serving_worker(c: &Client, server_port: u16, workers: &[i32]) -> Option<i32> {
    let client_port = c.stream.local_addr().ok()?.port();
    let want_local = format!("0100007F:{server_port:04X}");
    let want_remote = format!("0100007F:{client_port:04X}");
    let tcp = fs::read_to_string("/proc/net/tcp").ok()?;
    let inode = tcp.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 9 && f[1] == want_local && f[2] == want_remote).then(|| f[9].to_string())
    })?;
    let link = format!("socket:[{inode}]");
    workers.iter().copied().find(|pid| {
        fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == link.as_str()))
        })
    })
}
