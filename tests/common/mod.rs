//! Integration-test harness: starts the real `sluice` binary on loopback and
//! talks to it over raw sockets.
//!
//! - [`TempDir`]: a directory per test (a `tempfile::TempDir`), removed on
//!   drop.
//! - [`Conf`]: the config a test wants (nginx syntax, rendered per server).
//! - [`Server`]: a daemonized master started from a [`Conf`] (in a fresh
//!   directory, or in one the test filled first); waits for the pid file and
//!   the port, can be reloaded, stopped, `kill -9`ed and started again, and
//!   remembers its master's pid: on drop (also when the test panics, and
//!   whatever was dropped before it) it sends QUIT, waits up to 5 s, then
//!   SIGKILLs the master and its workers.
//! - [`Client`] / [`Response`]: a tiny HTTP/1.1 client over `TcpStream` that
//!   reads exactly one response at a time, plus helpers for raw exchanges
//!   and pipelined replies.
//! - [`Origin`] / [`FullClient`] (`origin.rs`): scriptable loopback origins
//!   and a client that also reads chunked responses, for the proxy tests.
//! - [`TestCert`] / [`TlsClient`] (`tls.rs`): certificates made at test
//!   time and a rustls client.
//! - [`Nginx`] (`nginx.rs`): a real nginx in the foreground, for tests that
//!   put sluice behind it; stopped on drop like a [`Foreground`].
//!
//! Every wait here is bounded; the functions panic with a message saying
//! what did not happen in time.

#![allow(dead_code)]

mod client;
mod conf;
mod nginx;
mod origin;
mod server;
mod tls;

pub use client::*;
pub use conf::*;
#[allow(unused_imports)] // only the limits tests use it
pub use nginx::*;
#[allow(unused_imports)] // only the proxy tests use it
pub use origin::*;
pub use server::*;
#[allow(unused_imports)] // only the TLS tests use it
pub use tls::*;

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Size of `www/index.html`.
pub const INDEX_HTML_BYTES: usize = 612;
/// Content of `www/hello.txt`.
pub const HELLO_TXT: &str = "hello from sluice tests\n";
/// Size of `www/64k.bin`.
pub const BIN_64K_BYTES: usize = 65536;
/// Content of `www/dir/index.html`.
pub const DIR_INDEX: &str = "inner index\n";

// ---------------------------------------------------------------- temp dirs

/// A fresh directory under the system temp dir (a [`tempfile::TempDir`]),
/// removed with everything in it on drop.
pub struct TempDir {
    dir: tempfile::TempDir,
}

impl TempDir {
    /// `<tmp>/sluice-it-<tag>-<random>`.
    pub fn new(tag: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("sluice-it-{tag}-"))
            .tempdir()
            .expect("create temp dir");
        TempDir { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the directory.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    /// Write the file `rel` (creating the directories it is in); its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dirs");
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

/// The first header field named `name` (case-insensitive).
fn header_of<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// How many header fields are named `name` (case-insensitive).
fn header_count_of(headers: &[(String, String)], name: &str) -> usize {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .count()
}

/// A loopback port that was free a moment ago (bind to :0, read, drop).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pseudo_random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Fill `root` with the test site: index.html (612 bytes), hello.txt,
/// 64k.bin (random), dir/index.html, emptydir/.
pub fn make_site(root: &Path) {
    fs::create_dir_all(root.join("dir")).expect("mkdir www/dir");
    fs::create_dir_all(root.join("emptydir")).expect("mkdir www/emptydir");
    let mut index = b"<!DOCTYPE html><title>sluice test</title>".to_vec();
    index.resize(INDEX_HTML_BYTES, b'a');
    fs::write(root.join("index.html"), index).expect("write index.html");
    fs::write(root.join("hello.txt"), HELLO_TXT).expect("write hello.txt");
    fs::write(
        root.join("64k.bin"),
        pseudo_random_bytes(BIN_64K_BYTES, 0x5eed_1234),
    )
    .expect("write 64k.bin");
    fs::write(root.join("dir/index.html"), DIR_INDEX).expect("write dir/index.html");
}

// -------------------------------------------------------------- misc helpers

/// Poll `f` every 10 ms until it returns `Some`, at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Poll `ok` every 10 ms until it is true; panics after `timeout`, saying
/// it timed out waiting for `what`.
pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    if wait_for(timeout, || ok().then_some(())).is_none() {
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

/// Whether nothing accepts connections on 127.0.0.1:port now.
pub fn port_refuses(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_err()
}

/// The value of an unlabelled Prometheus sample `name` in `text`.
pub fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Number of lines in `text` containing `needle`.
pub fn count_lines(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for Unix seconds.
pub fn http_date(unix_secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs.div_euclid(86400);
    let secs = unix_secs.rem_euclid(86400);
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Modification time of a file in Unix seconds.
pub fn mtime_secs(path: &Path) -> i64 {
    let m = fs::metadata(path).expect("stat").modified().expect("mtime");
    m.duration_since(UNIX_EPOCH)
        .expect("mtime after epoch")
        .as_secs() as i64
}

/// Set a file's mtime to `secs` after the epoch.
pub fn set_mtime(path: &Path, secs: u64) {
    let f = File::options()
        .write(true)
        .open(path)
        .expect("open for mtime");
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .expect("set mtime");
}
