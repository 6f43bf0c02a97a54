//! `user USER [GROUP];`: a root master binds, opens the logs and the state
//! as root, and its workers run as USER (checked in /proc/PID/status);
//! serving, the cache, limits, reload and log reopening keep working with
//! the files the master handed over. Needs root and the `nobody` user with
//! the `nogroup` group (Debian's); skipped, saying so, otherwise.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

/// nobody / nogroup ids, when the test can run.
fn nobody() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the privilege-drop tests need root");
        return None;
    }
    let u = nix::unistd::User::from_name("nobody").ok().flatten();
    let g = nix::unistd::Group::from_name("nogroup").ok().flatten();
    match (u, g) {
        (Some(u), Some(g)) => Some((u.uid.as_raw(), g.gid.as_raw())),
        _ => {
            eprintln!("skipped: no nobody user or nogroup group");
            None
        }
    }
}

/// (real, effective, saved, fs) uids and gids, and the supplementary
/// groups, of `pid`.
fn ids(pid: i32) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| -> Vec<u32> {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            .split_whitespace()
            .map(|v| v.parse().expect("id"))
            .collect()
    };
    (field("Uid:"), field("Gid:"), field("Groups:"))
}

#[track_caller]
fn assert_runs_as(pid: i32, uid: u32, gid: u32) {
    let (u, g, groups) = ids(pid);
    assert_eq!(u, vec![uid; 4], "Uid of {pid}");
    assert_eq!(g, vec![gid; 4], "Gid of {pid}");
    if uid != 0 {
        assert!(!groups.contains(&0), "{pid} kept group root: {groups:?}");
    }
}

fn owner(p: &std::path::Path) -> (u32, u32) {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.gid())
}

/// A server whose workers run as nobody: static files, a cached proxy
/// location and a limit, in a directory nobody may enter.
fn start(origin: &Origin, user: &str) -> Server {
    let dir = TempDir::new("user");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache = dir.join("cache");
    let conf = Conf::new()
        .workers(2)
        .main(user)
        .http(&format!(
            "    proxy_cache_path {} levels=1:2 keys_zone=c:1m;\n\
             \x20   limit_req_zone $arg_user zone=u:64k rate=1r/m;",
            cache.display()
        ))
        .server(&format!(
            "        location /c/ {{ proxy_pass http://127.0.0.1:{}; proxy_cache c; proxy_cache_valid 200 1m; }}\n\
             \x20       location = /lim {{ limit_req zone=u burst=1 nodelay; try_files /hello.txt =404; }}",
            origin.port
        ));
    Server::start_in(dir, conf)
}

/// GET /c/x until it is a HIT (fills are published after the response).
fn wait_hit(srv: &Server) {
    wait_until("a cache HIT", Duration::from_secs(10), || {
        let r = srv.get("/c/x");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.text(), "from origin\n");
        r.header("x-cache-status") == Some("HIT")
    });
}

#[test]
fn workers_run_as_the_user_and_everything_still_works() {
    let Some((uid, gid)) = nobody() else { return };
    let origin = Origin::fixed(ok_response(b"from origin\n"));
    let srv = start(&origin, "user nobody nogroup;\n");
    assert_runs_as(srv.master_pid(), 0, 0);
    let workers = srv.wait_worker_count(2, Duration::from_secs(10));
    for &w in &workers {
        assert_runs_as(w, uid, gid);
    }

    // Static files, the cache (entries written by nobody), limits.
    let r = srv.get("/hello.txt");
    assert_eq!((r.status, r.text().as_str()), (200, HELLO_TXT));
    let r = srv.get("/c/x");
    assert_eq!(r.header("x-cache-status"), Some("MISS"), "{r:?}");
    wait_hit(&srv);
    let cache = srv.path("cache");
    assert_eq!(owner(&cache), (uid, gid), "cache dir");
    let entry = walk_files(&cache)
        .into_iter()
        .find(|p| !p.starts_with(cache.join("tmp")))
        .expect("a cache entry file");
    assert_eq!(owner(&entry).0, uid, "{}", entry.display());
    assert_eq!(srv.get("/lim?user=a").status, 200);
    assert_eq!(srv.get("/lim?user=a").status, 200, "burst=1");
    assert_eq!(srv.get("/lim?user=a").status, 429, "over the limit");
    // The logs were handed over: both are still written.
    assert_eq!(owner(&srv.path("access.log")).0, uid);
    assert_eq!(owner(&srv.path("error.log")).0, uid);
    wait_until("the access log line", Duration::from_secs(5), || {
        srv.access_log().contains("GET /lim?user=a")
    });

    // Reload: a new generation, as nobody, with the same cache and counters.
    let fetched = origin.request_count();
    let new = srv.reload_and_drain();
    for &w in &new {
        assert_runs_as(w, uid, gid);
    }
    wait_hit(&srv);
    assert_eq!(
        origin.request_count(),
        fetched,
        "the entry survived the reload"
    );
    assert_eq!(srv.get("/lim?user=a").status, 429, "the count survived");

    // Reopen: the rotated logs are new files the workers can write.
    std::fs::rename(srv.path("access.log"), srv.path("access.log.1")).unwrap();
    srv.signal(Signal::SIGUSR1);
    wait_until("a new access.log", Duration::from_secs(5), || {
        srv.path("access.log").exists()
    });
    wait_until(
        "a line in the new access.log",
        Duration::from_secs(5),
        || srv.get("/hello.txt").status == 200 && srv.access_log().contains("GET /hello.txt"),
    );
    assert_eq!(owner(&srv.path("access.log")).0, uid);
    assert!(
        !srv.error_log().contains("Permission denied"),
        "{}",
        srv.error_log()
    );
}

#[test]
fn group_defaults_to_the_users_name_as_in_nginx() {
    if nobody().is_none() {
        return;
    }
    // Debian has no group "nobody": nginx says `getgrnam("nobody") failed`.
    let dir = TempDir::new("user-t");
    let conf = dir.write(
        "sluice.conf",
        "user nobody;\nevents {}\nhttp { server { listen 127.0.0.1:1; } }\n",
    );
    let out = run_sluice(
        dir.path(),
        &["-t", "-c", conf.to_str().unwrap()],
        Duration::from_secs(10),
    );
    if nix::unistd::Group::from_name("nobody")
        .ok()
        .flatten()
        .is_some()
    {
        assert!(out.status.success(), "{}", out.stderr);
        return;
    }
    assert_conf_error(&out, 1, "getgrnam(\"nobody\") failed");
    let conf = dir.write(
        "sluice.conf",
        "events {}\nuser no-such-user-here;\nhttp { server { listen 127.0.0.1:1; } }\n",
    );
    let out = run_sluice(
        dir.path(),
        &["-t", "-c", conf.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert_conf_error(&out, 2, "getpwnam(\"no-such-user-here\") failed");
}

#[test]
fn a_cache_filled_by_root_is_handed_to_the_workers() {
    let Some((uid, _)) = nobody() else { return };
    let origin = Origin::fixed(ok_response(b"from origin\n"));
    // First without `user`: root fills the cache.
    let srv = start(&origin, "");
    wait_hit(&srv);
    for &w in &srv.worker_pids() {
        assert_runs_as(w, 0, 0);
    }
    let cache = srv.path("cache");
    // Then a reload to `user nobody`: the tree becomes nobody's, and the
    // new workers serve and refresh it.
    let text = std::fs::read_to_string(srv.conf_path()).unwrap();
    srv.write_conf_text(&format!("user nobody nogroup;\n{text}"));
    let new = srv.reload_and_drain();
    for &w in &new {
        assert_runs_as(
            w,
            uid,
            nix::unistd::Group::from_name("nogroup")
                .unwrap()
                .unwrap()
                .gid
                .as_raw(),
        );
    }
    for p in walk_files(&cache) {
        assert_eq!(owner(&p).0, uid, "{}", p.display());
    }
    wait_hit(&srv);
    let r = srv.request("/c/y", &[]);
    assert_eq!(r.header("x-cache-status"), Some("MISS"));
    wait_until("a second entry", Duration::from_secs(10), || {
        walk_files(&cache).len() >= 2
    });
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}
