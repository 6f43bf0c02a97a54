//! The cache manager: a background thread (run by worker 0 of each
//! generation) that keeps every zone under `max_size` and removes entries
//! not used for `inactive`. Each pass indexes the zone's files (the loader's
//! scan), takes a file's access time as its last use — hits refresh it, at
//! most once a minute per entry and worker — and deletes the least recently
//! used first. Blocking file work stays off the event loop.

use crate::cache::{index::Index, key, loader, store};
use crate::config::CachePathConf;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// Pause between passes.
pub const PASS_INTERVAL: Duration = Duration::from_secs(5);

/// One pass over `zone` at `now` (Unix seconds). Returns files removed.
pub fn pass(zone: &CachePathConf, now: i64) -> usize {
    let mut idx = Index::new();
    loader::scan(&zone.dir, &zone.levels, now, |md5, mut e| {
        let path = key::entry_path(&zone.dir, &zone.levels, &md5);
        if let Ok(m) = std::fs::metadata(&path) {
            e.last_access = m.atime().max(m.mtime());
        }
        idx.insert(md5, e);
    });
    let inactive_s = zone.inactive_ms / 1000;
    let victims = idx.evict_candidates(zone.max_size_bytes, inactive_s, now);
    for md5 in &victims {
        let _ = store::remove_entry(&key::entry_path(&zone.dir, &zone.levels, md5));
    }
    if !victims.is_empty() {
        log::info!(
            "cache manager: removed {} entries from zone \"{}\"",
            victims.len(),
            zone.zone_name
        );
    }
    victims.len()
}

/// Start the manager thread for `zones`; it runs until the process exits.
pub fn start(zones: Vec<CachePathConf>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("sluice-cache-mgr".into())
        .spawn(move || {
            // A pass reads every entry's header: it runs only on CPU time
            // the event loops leave.
            if let Err(e) = crate::sys::set_thread_background() {
                log::debug!("cache manager: SCHED_IDLE not set: {e}");
            }
            loop {
                std::thread::sleep(PASS_INTERVAL);
                let now = crate::event::Clock::new().unix_secs();
                for z in &zones {
                    pass(z, now);
                }
            }
        })?;
    Ok(())
}

/// Record a use of the entry file at `path` (its access time), for the manager.
pub fn touch(path: &std::path::Path) {
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.set_times(std::fs::FileTimes::new().set_accessed(std::time::SystemTime::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::EntryMeta;
    use crate::cache::store::TempWriter;

    fn zone(dir: &std::path::Path, max: Option<u64>, inactive_ms: u64) -> CachePathConf {
        CachePathConf {
            dir: dir.to_path_buf(),
            levels: vec![1, 2],
            zone_name: "z".into(),
            zone_size_bytes: 1 << 20,
            max_size_bytes: max,
            min_free_bytes: None,
            inactive_ms,
            use_temp_path: true,
            loader_files: 100,
            loader_sleep_ms: 50,
            loader_threshold_ms: 200,
            manager_files: 100,
            manager_sleep_ms: 50,
            manager_threshold_ms: 200,
        }
    }

    fn put(dir: &std::path::Path, key: &[u8], body: &[u8], atime_s: i64) -> std::path::PathBuf {
        let meta = EntryMeta {
            key: key.to_vec(),
            body_len: body.len() as u64,
            expires_at: i64::MAX / 2,
            ..Default::default()
        };
        let md5 = key::cache_key_md5(key);
        let path = key::entry_path(dir, &[1, 2], &md5);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut w = TempWriter::create(dir, &meta, Some(body.len() as u64)).unwrap();
        w.write_body(body).unwrap();
        w.commit(&path).unwrap();
        let t = std::time::UNIX_EPOCH + Duration::from_secs(atime_s as u64);
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
            .unwrap();
        path
    }

    #[test]
    fn evicts_least_recently_used_over_max_size_and_inactive() {
        let d = std::env::temp_dir().join(format!("sluice-mgr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let now = 2_000_000_000;
        let old = put(&d, b"old", &[1u8; 4000], now - 100);
        let mid = put(&d, b"mid", &[2u8; 4000], now - 50);
        let new = put(&d, b"new", &[3u8; 4000], now - 1);
        // max_size fits two entries: the least recently used goes.
        let size = std::fs::metadata(&new).unwrap().len();
        assert_eq!(pass(&zone(&d, Some(size * 2 + 10), 0), now), 1);
        assert!(!old.exists() && mid.exists() && new.exists());
        // inactive=30s removes what was not used for 30 s.
        assert_eq!(pass(&zone(&d, None, 30_000), now), 1);
        assert!(!mid.exists() && new.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
