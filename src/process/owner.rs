//! Files the workers write, made theirs. With `user` set and a root master,
//! the master creates (as root) what the workers will write — the log
//! files, the cache directories, the state directory — and hands them to
//! the workers' user before it forks them, as nginx does with its paths and
//! log files. Called at start, on reload and on reopen (after the master
//! has reopened its error log, before it tells the workers).

use crate::config::Config;
use crate::sys::Account;
use std::io;
use std::os::unix::fs::{lchown, MetadataExt};
use std::path::Path;

/// Create and chown everything `cfg`'s workers write; a no-op without
/// `user` (or when the master is not root: then `user` is `None`).
pub fn hand_over(cfg: &Config) -> io::Result<()> {
    let Some(who) = &cfg.user else {
        return Ok(());
    };
    let mut logs: Vec<&Path> = cfg
        .http
        .access_logs
        .iter()
        .map(|l| l.path.as_path())
        .collect();
    if let Some(p) = &cfg.error_log.path {
        logs.push(p);
    }
    for p in logs {
        crate::log::writer::open_append(p).map_err(|e| ctx(p, "open()", e))?;
        // Only the owner changes (nginx: fchown(fd, user, -1)), so a log
        // group such as `adm` stays.
        give(p, who, false)?;
    }
    std::fs::create_dir_all(&cfg.state_dir).map_err(|e| ctx(&cfg.state_dir, "mkdir()", e))?;
    give(&cfg.state_dir, who, true)?;
    // Zone files (mapped by the master, so written through the mapping
    // anyway) and the cluster lock file.
    for e in std::fs::read_dir(&cfg.state_dir)?.flatten() {
        give(&e.path(), who, true)?;
    }
    for c in &cfg.http.cache_paths {
        std::fs::create_dir_all(&c.dir).map_err(|e| ctx(&c.dir, "mkdir()", e))?;
        // A tree whose top is the workers' own was made by them: only a
        // cache filled by another user (an earlier run as root) is walked.
        if std::fs::metadata(&c.dir)?.uid() != who.uid {
            give_tree(&c.dir, who)?;
        }
    }
    Ok(())
}

fn ctx(p: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} \"{}\" failed ({e})", p.display()))
}

/// chown `p` (not following a symlink) to the workers' user, and to their
/// group when `group`, unless it is theirs already.
fn give(p: &Path, who: &Account, group: bool) -> io::Result<()> {
    let m = std::fs::symlink_metadata(p).map_err(|e| ctx(p, "stat()", e))?;
    if m.uid() == who.uid && (!group || m.gid() == who.gid) {
        return Ok(());
    }
    let gid = group.then_some(who.gid);
    lchown(p, Some(who.uid), gid).map_err(|e| ctx(p, "chown()", e))
}

/// `give` to `dir` and everything under it.
fn give_tree(dir: &Path, who: &Account) -> io::Result<()> {
    give(dir, who, true)?;
    for e in std::fs::read_dir(dir).map_err(|e| ctx(dir, "opendir()", e))? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            give_tree(&p, who)?;
        } else {
            give(&p, who, true)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nobody() -> Option<Account> {
        let uid = crate::sys::user_uid("nobody").ok()??;
        let gid = crate::sys::group_gid("nogroup").ok()??;
        Some(Account {
            name: "nobody".into(),
            uid,
            gid,
        })
    }

    #[test]
    fn a_cache_tree_made_by_root_is_handed_over_whole() {
        let (Some(who), 0) = (nobody(), crate::sys::geteuid()) else {
            eprintln!("skipped: needs root and the nobody user");
            return;
        };
        let d = std::env::temp_dir().join(format!("sluice-owner-{}", std::process::id()));
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/entry"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("a/link")).unwrap();
        give_tree(&d, &who).unwrap();
        for p in ["", "a", "a/b", "a/b/entry"] {
            let m = std::fs::metadata(d.join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (who.uid, who.gid), "{p}");
        }
        // The link itself changed owner, not what it points to.
        assert_eq!(std::fs::metadata("/etc/passwd").unwrap().uid(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
