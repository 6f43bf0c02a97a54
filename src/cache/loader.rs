//! The cache loader: after a (re)start, walks `DIR/<levels...>/<md5>` and
//! hands each usable entry to the caller (to index it), reading only each
//! file's header. Removes what can never be served: torn files, bad headers
//! (magic, version, checksum), files whose name does not match their key or
//! sits in the wrong level directory, and temp files left by a crash more
//! than an hour ago. Never panics, whatever the directory holds; files it
//! does not recognise are left alone.
//!
//! Blocking; the proxy runs it on a background thread (sleeping between
//! batches inside `on_entry` per `loader_files`/`loader_sleep`) while the
//! cache already serves: entries are found on disk even before they are indexed.

#![deny(missing_docs)]

use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::UNIX_EPOCH;

use super::entry::{read_header, validate_file_len, EntryError};
use super::index::IndexEntry;
use super::key::{cache_key_md5, entry_path, from_hex, MAX_LEVELS};
use super::store::{SIBLING_TMP_MARK, TMP_DIR};

/// Temp files older than this (seconds) are debris from a crash.
pub const TEMP_MAX_AGE_S: i64 = 3600;

/// What a scan found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Usable entries reported to `on_entry`.
    pub entries: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Unusable entry files deleted.
    pub bad_removed: u64,
    /// Stale temp files deleted.
    pub temp_removed: u64,
    /// Unrecognised files and directories left alone.
    pub skipped: u64,
    /// I/O errors (unreadable directories or files; left alone).
    pub errors: u64,
}

/// Walks the cache directory `dir` laid out with `levels` and calls
/// `on_entry(md5, entry)` for each usable entry (`last_access = now`, as
/// nginx: a restart gives every entry a fresh `inactive` period). `now` is
/// Unix seconds, also used to age temp files.
pub fn scan(
    dir: &Path,
    levels: &[u8],
    now: i64,
    mut on_entry: impl FnMut([u8; 16], IndexEntry),
) -> ScanStats {
    let mut stats = ScanStats::default();
    let levels = &levels[..levels.len().min(MAX_LEVELS)];
    walk(dir, dir, levels, 0, now, &mut stats, &mut on_entry);
    stats
}

fn walk(
    root: &Path,
    here: &Path,
    levels: &[u8],
    depth: usize,
    now: i64,
    stats: &mut ScanStats,
    on_entry: &mut dyn FnMut([u8; 16], IndexEntry),
) {
    let Ok(rd) = fs::read_dir(here) else {
        stats.errors += 1;
        return;
    };
    for item in rd {
        let Ok(item) = item else {
            stats.errors += 1;
            continue;
        };
        let path = item.path();
        let name = item.file_name();
        let name = name.as_bytes();
        let Ok(ft) = item.file_type() else {
            stats.errors += 1;
            continue;
        };
        if depth == 0 && ft.is_dir() && name == TMP_DIR.as_bytes() {
            clean_temp_dir(&path, now, stats);
        } else if depth < levels.len() {
            let width = usize::from(levels[depth]);
            if ft.is_dir()
                && name.len() == width
                && name
                    .iter()
                    .all(|&b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                walk(root, &path, levels, depth + 1, now, stats, on_entry);
            } else {
                stats.skipped += 1;
            }
        } else if !ft.is_file() {
            stats.skipped += 1;
        } else if let Some(md5) = from_hex(name) {
            load_entry(root, levels, &path, md5, now, stats, on_entry);
        } else if is_sibling_temp(name) {
            remove_if_old(&path, now, stats);
        } else {
            stats.skipped += 1;
        }
    }
}

/// `<32 hex>.t<anything>`: a temp file of `rewrite_header`.
fn is_sibling_temp(name: &[u8]) -> bool {
    name.len() > 32
        && from_hex(&name[..32]).is_some()
        && name[32..].starts_with(SIBLING_TMP_MARK.as_bytes())
}

fn clean_temp_dir(dir: &Path, now: i64, stats: &mut ScanStats) {
    let Ok(rd) = fs::read_dir(dir) else {
        stats.errors += 1;
        return;
    };
    for item in rd.flatten() {
        if item.file_type().is_ok_and(|t| t.is_file()) {
            remove_if_old(&item.path(), now, stats);
        } else {
            stats.skipped += 1;
        }
    }
}

fn remove_if_old(path: &Path, now: i64, stats: &mut ScanStats) {
    let mtime = fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(i64::MAX, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    if now.saturating_sub(mtime) > TEMP_MAX_AGE_S {
        match fs::remove_file(path) {
            Ok(()) => stats.temp_removed += 1,
            Err(_) => stats.errors += 1,
        }
    }
}

/// Why an entry file is unusable (it is deleted), or an I/O error (left alone).
enum Verdict {
    Ok([u8; 16], IndexEntry),
    Bad,
    Io,
}

#[allow(clippy::too_many_arguments)]
fn load_entry(
    root: &Path,
    levels: &[u8],
    path: &Path,
    md5: [u8; 16],
    now: i64,
    stats: &mut ScanStats,
    on_entry: &mut dyn FnMut([u8; 16], IndexEntry),
) {
    let verdict = if entry_path(root, levels, &md5) != path {
        Verdict::Bad // in the wrong level directory: lookups never find it
    } else {
        check_entry(path, md5, now)
    };
    match verdict {
        Verdict::Ok(md5, e) => {
            stats.entries += 1;
            stats.bytes = stats.bytes.saturating_add(e.size_bytes);
            on_entry(md5, e);
        }
        Verdict::Bad => match fs::remove_file(path) {
            Ok(()) => stats.bad_removed += 1,
            Err(_) => stats.errors += 1,
        },
        Verdict::Io => stats.errors += 1,
    }
}

fn check_entry(path: &Path, md5: [u8; 16], now: i64) -> Verdict {
    let Ok(mut f) = File::open(path) else {
        return Verdict::Io; // vanished or unreadable: not ours to delete
    };
    let Ok(file_len) = f.metadata().map(|m| m.len()) else {
        return Verdict::Io;
    };
    let (meta, body_off) = match read_header(&mut f) {
        Ok(x) => x,
        Err(EntryError::Io(_)) => return Verdict::Io,
        Err(_) => return Verdict::Bad,
    };
    if !validate_file_len(&meta, file_len, body_off) {
        return Verdict::Bad;
    }
    let primary = cache_key_md5(&meta.key);
    if md5 != primary && meta.variant != Some(md5) {
        return Verdict::Bad;
    }
    Verdict::Ok(
        md5,
        IndexEntry {
            size_bytes: file_len,
            expires_at: meta.expires_at,
            last_access: now,
            primary,
            uses: 0,
        },
    )
}

#[cfg(test)]
#[path = "loader_tests.rs"]
mod tests;
