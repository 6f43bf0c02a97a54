//! Fault injection: what a user sees when the machine misbehaves under a
//! running sluice. Each test breaks one thing for real and checks that
//! serving goes on, an error-log line says why, nothing is lost, and the
//! server recovers by itself:
//!
//! - the cache directory's file system fills up (a small tmpfs);
//! - the state directory turns read-only, or a zone file is truncated or
//!   overwritten while running (then set aside on restart);
//! - the upstream dies mid-response, resets, stalls (other clients unaffected);
//! - `worker_connections` is exhausted.
//!
//! Worker and master `kill -9` are in tests/process.rs and tests/limits.rs,
//! Redis faults in tests/cluster.rs, a garbage upstream head in
//! tests/proxy_upstream.rs. Tests that mount a tmpfs need root (and the
//! right to mount): without it they say so and skip.

mod common;

use common::{ok_response, Origin, Step};
use common::{wait_until, Client, Conf, Server, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted on a directory; lazily unmounted on drop (also on panic).
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    /// `at` bind-mounted on itself, read-only: files open for writing (the
    /// mapped zones) keep working, nothing new can be written there.
    fn bind_read_only(at: &Path) -> Option<Tmpfs> {
        let ok = |args: &[&str]| {
            Command::new("mount")
                .args(args)
                .arg(at)
                .arg(at)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ok(&["--bind"]) {
            eprintln!("SKIP: cannot bind-mount here (needs root and CAP_SYS_ADMIN)");
            return None;
        }
        let guard = Tmpfs {
            at: at.to_path_buf(),
        };
        let st = Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(at)
            .status()
            .expect("mount");
        assert!(st.success(), "remount read-only");
        Some(guard)
    }

    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIP: cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)");
            return None;
        }
        Some(Tmpfs {
            at: at.to_path_buf(),
        })
    }

    fn remount(&self, opts: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.at)
            .status()
            .expect("mount");
        assert!(st.success(), "remount {opts}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A body of `len` bytes that names its path (so a mix-up shows).
fn body_for(path: &str, len: usize) -> Vec<u8> {
    let mut b = path.as_bytes().repeat(len / path.len() + 1);
    b.truncate(len);
    b
}

#[test]
fn a_full_cache_disk_stops_caching_not_serving_and_caching_resumes() {
    let cache_dir = TempDir::new("fullcache");
    let Some(fs) = Tmpfs::mount(&cache_dir.join("c"), "256k") else {
        return;
    };
    const LEN: usize = 40_000;
    let origin = Origin::start(|seen| {
        let body = body_for(&seen.target, LEN);
        vec![Step::Write(common::http_response(
            200,
            "Cache-Control: max-age=600\r\n",
            &body,
        ))]
    });
    let srv = Server::start(
        Conf::new()
            .workers(1)
            .http(&format!(
                "    proxy_cache_path {} levels=1:2 keys_zone=z:1m;",
                fs.at.display()
            ))
            .server(&format!(
                "        location / {{ proxy_pass http://127.0.0.1:{};\n\
                 \x20           proxy_cache z; add_header X-Cache-Status $upstream_cache_status; }}",
                origin.port
            )),
    );
    // 256 KiB holds about six 40 KB entries: ask for twenty.
    for i in 0..20 {
        let path = format!("/f{i}");
        let r = srv.get(&path);
        assert_eq!(r.status, 200, "{path} while the disk fills");
        assert_eq!(r.body, body_for(&path, LEN), "{path}: body");
        std::thread::sleep(Duration::from_millis(30));
    }
    srv.wait_log("cache: storing paused: No space left on device");
    // Entries that were stored still hit; the rest are fetched each time.
    let hits = (0..20)
        .filter(|i| srv.get(&format!("/f{i}")).header("x-cache-status") == Some("HIT"))
        .count();
    assert!(
        (1..20).contains(&hits),
        "some, not all, entries stored: {hits}"
    );
    // No half-written file is left taking the space.
    let tmp = fs.at.join("tmp");
    wait_until("temp files removed", Duration::from_secs(5), || {
        files_under(&tmp).is_empty()
    });
    // Space comes back: after the retry delay a new response is stored again.
    fs.remount("size=8m");
    let t0 = Instant::now();
    wait_until("caching resumes", Duration::from_secs(75), || {
        let r = srv.get("/again");
        assert_eq!(r.status, 200);
        std::thread::sleep(Duration::from_millis(500));
        srv.get("/again").header("x-cache-status") == Some("HIT")
    });
    eprintln!("caching resumed {:?} after space returned", t0.elapsed());
    drop(srv);
}

fn count_conf(state_extra: &str) -> Conf {
    Conf::new()
        .workers(2)
        .http(&format!(
            "    limit_req_zone $arg_k zone=rl:64k rate=60r/m;\n{state_extra}"
        ))
        .server(
            "        location = /t { limit_req zone=rl burst=2 nodelay; try_files /hello.txt =404; }\n\
             \x20       location = /c { count zone=hits; count_report zone=hits; }",
        )
        .http("    count_zone zone=hits:64k window=60s precision=1s;")
}

/// Requests for key `k` until the first 503; how many passed.
fn passes(srv: &Server, k: &str) -> usize {
    let mut c = Client::connect(srv.port);
    (0..10)
        .take_while(|_| c.get(&format!("/t?k={k}")).unwrap().status == 200)
        .count()
}

#[test]
fn a_read_only_state_dir_keeps_limits_deciding() {
    let srv = Server::start(count_conf(""));
    assert_eq!(passes(&srv, "a"), 3, "burst 2 + 1");
    let Some(ro) = Tmpfs::bind_read_only(&srv.path("state")) else {
        return;
    };
    assert!(
        std::fs::write(srv.path("state/probe"), b"x").is_err(),
        "really read-only"
    );
    // The zones are mapped: deciding goes on without writing the directory.
    assert_eq!(passes(&srv, "a"), 0, "key a stays limited");
    assert_eq!(passes(&srv, "b"), 3, "key b gets its own burst");
    for _ in 0..3 {
        srv.get("/c");
    }
    assert!(srv.get("/c").text().contains("\"requestCount\":4"));
    // A reload cannot write a new zone file: it fails in words, old config serves.
    srv.signal(nix::sys::signal::Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(srv.get("/ret").status, 200);
    assert_eq!(passes(&srv, "a"), 0);
    drop(srv);
    drop(ro);
}

#[test]
fn a_zone_file_truncated_or_overwritten_while_running_is_survived_and_set_aside() {
    let dir = TempDir::new("trunczone");
    let mut srv = Server::start_in(dir, count_conf(""));
    assert_eq!(passes(&srv, "a"), 3);
    let zone = srv.path("state/rl.zone");
    let hits = srv.path("state/hits.zone");
    // Someone truncates one zone file and scribbles over another under the
    // running server (a bad backup restore, a stray `> file`).
    std::fs::OpenOptions::new()
        .write(true)
        .open(&zone)
        .unwrap()
        .set_len(0)
        .unwrap();
    std::fs::write(&hits, vec![0x5au8; 4096]).unwrap();
    let workers = srv.worker_pids();
    // Serving and deciding go on, on every worker.
    for _ in 0..10 {
        let r = srv.get("/ret");
        assert_eq!(r.status, 200);
    }
    let _ = passes(&srv, "b");
    let _ = srv.get("/c");
    assert_eq!(srv.worker_pids(), workers, "no worker died");
    assert!(srv.master_alive());
    srv.wait_log("a mapped zone file was truncated while in use; re-extended it");
    // On restart the damaged files are set aside and fresh zones made.
    srv.quit();
    srv.restart();
    assert_eq!(passes(&srv, "z"), 3);
    assert_eq!(srv.get("/c").status, 200);
    let names: Vec<String> = std::fs::read_dir(srv.path("state"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("hits.zone.corrupt-")),
        "overwritten zone set aside: {names:?}"
    );
}

fn proxy_conf(origin: u16, extra: &str) -> Conf {
    Conf::new().workers(1).server(&format!(
        "        location / {{ proxy_pass http://127.0.0.1:{origin}; proxy_read_timeout 1s; {extra} }}"
    ))
}

#[test]
fn an_upstream_dying_mid_body_truncates_and_closes_and_others_go_on() {
    let origin = Origin::start(|seen| match seen.target.as_str() {
        "/die" => vec![
            Step::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial".to_vec()),
            Step::Sleep(Duration::from_millis(100)),
            Step::Close,
        ],
        "/stall" => vec![
            Step::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nhalf".to_vec()),
            Step::Hang,
        ],
        "/silent" => vec![Step::Hang],
        "/reset" => vec![Step::Close],
        _ => vec![Step::Write(ok_response(b"fine"))],
    });
    let srv = Server::start(proxy_conf(origin.port, ""));
    // Mid-body death: the bytes so far, then the connection closes (no hang,
    // no pretended-complete body).
    let raw = |path: &str| {
        let mut c = srv.client();
        c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        c.read_until_close(Duration::from_secs(5))
    };
    let got = raw("/die");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.ends_with("partial"),
        "the bytes so far, then the close: {text}"
    );
    // Stall mid-body: proxy_read_timeout closes the client's connection.
    let t0 = Instant::now();
    let got = raw("/stall");
    assert!(String::from_utf8_lossy(&got).ends_with("half"));
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "closed by the read timeout"
    );
    // Stall before the head: 504. Reset before the head: 502.
    assert_eq!(srv.get("/silent").status, 504);
    assert_eq!(srv.get("/reset").status, 502);
    // Meanwhile, clients of a healthy path see nothing of it.
    let mut stalled = srv.client();
    stalled.send(b"GET /silent HTTP/1.1\r\nHost: x\r\n\r\n");
    for _ in 0..20 {
        let r = srv.get("/ok");
        assert_eq!((r.status, r.body_str()), (200, "fine"));
    }
    assert_eq!(stalled.read_response().unwrap().status, 504);
    let log = srv.error_log();
    assert!(
        log.contains("upstream"),
        "the error log says what happened:\n{log}"
    );
}

#[test]
fn exhausted_worker_connections_refuse_new_clients_keep_old_ones_and_recover() {
    let srv = Server::start(Conf::new().workers(1).worker_connections(32));
    // Fill the worker with idle keep-alive clients.
    let mut held: Vec<Client> = Vec::new();
    for _ in 0..40 {
        match Client::try_connect(srv.port) {
            Ok(mut c) => {
                if c.get("/ret").is_ok_and(|r| r.status == 200) {
                    held.push(c);
                }
            }
            Err(_) => break,
        }
    }
    assert!(held.len() >= 20, "most slots served: {}", held.len());
    // One more client: refused cleanly (closed or 503), never left hanging.
    let extra = Client::try_connect(srv.port);
    if let Ok(mut c) = extra {
        let _ = c.try_send(b"GET /ret HTTP/1.1\r\nHost: x\r\n\r\n");
        let raw = c.read_until_close(Duration::from_secs(3));
        let text = String::from_utf8_lossy(&raw);
        assert!(
            raw.is_empty() || text.starts_with("HTTP/1.1 503") || text.starts_with("HTTP/1.1 200"),
            "a clean answer or a close: {text:?}"
        );
    }
    // The clients it holds keep working.
    for c in held.iter_mut().take(5) {
        assert_eq!(c.get("/ret").unwrap().status, 200);
    }
    // They go away: new clients are served again.
    held.clear();
    wait_until("new clients served again", Duration::from_secs(5), || {
        Client::try_connect(srv.port)
            .ok()
            .and_then(|mut c| c.get("/ret").ok())
            .is_some_and(|r| r.status == 200)
    });
}
