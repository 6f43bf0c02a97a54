//! Writing entries safely: a [`TempWriter`] streams header + body into
//! `DIR/tmp/<unique>` and `commit` renames it into place, so a reader never
//! sees a partial file; [`rewrite_header`] replaces an entry's header after a
//! 304 by writing a new file (new header + old body) and renaming it; a
//! [`StoreGate`] turns storing off for a while after a full disk or an I/O
//! error (serving is never affected).
//!
//! Blocking `std::fs` calls: the proxy runs these on its I/O threads, off the
//! client's path. No fsync, as nginx: a crash may lose recent entries, and
//! the loader drops any file whose length does not match its header.

#![deny(missing_docs)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::entry::{encode_header, patch_body_len, read_header, validate_file_len, EntryMeta};

/// Name of the temp directory inside a cache directory.
pub const TMP_DIR: &str = "tmp";
/// Marker in the names of temp files written next to an entry by
/// [`rewrite_header`]: `<32 hex>.t<unique>`.
pub const SIBLING_TMP_MARK: &str = ".t";

/// A process-unique suffix: pid, counter and the current nanoseconds.
fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}.{n}.{nanos:x}", std::process::id())
}

fn invalid(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// An entry being written to a temp file. Dropping it without `commit`
/// removes the temp file.
#[derive(Debug)]
pub struct TempWriter {
    tmp_path: PathBuf,
    file: Option<File>,
    header: Vec<u8>,
    body_written: u64,
    expected_body_len: Option<u64>,
}

impl TempWriter {
    /// Creates `cache_dir/tmp/<unique>` (and the `tmp` directory if needed) and
    /// writes `meta`'s header. `expected_body_len` (from `Content-Length`)
    /// makes `commit` refuse a body of another length (an upstream cut short).
    pub fn create(
        cache_dir: &Path,
        meta: &EntryMeta,
        expected_body_len: Option<u64>,
    ) -> io::Result<TempWriter> {
        let dir = cache_dir.join(TMP_DIR);
        fs::create_dir_all(&dir)?;
        let mut meta_len = meta.clone();
        meta_len.body_len = expected_body_len.unwrap_or(0);
        let header = encode_header(&meta_len).map_err(invalid)?;
        let tmp_path = dir.join(unique());
        let mut w = TempWriter {
            file: Some(
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&tmp_path)?,
            ),
            tmp_path,
            header,
            body_written: 0,
            expected_body_len,
        };
        if let Some(f) = w.file.as_mut() {
            f.write_all(&w.header)?; // on error, Drop removes the file
        }
        Ok(w)
    }

    /// Appends body bytes.
    pub fn write_body(&mut self, chunk: &[u8]) -> io::Result<()> {
        let f = self.file.as_mut().ok_or_else(|| invalid("writer closed"))?;
        f.write_all(chunk)?;
        self.body_written += chunk.len() as u64;
        Ok(())
    }

    /// Body bytes written so far.
    pub fn body_written(&self) -> u64 {
        self.body_written
    }

    /// Where the temp file is.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp_path
    }

    /// Finishes the file (patching `body_len` if it was not known up front) and
    /// renames it to `final_path`, creating the level directories. On any
    /// error, including a body shorter or longer than `expected_body_len`,
    /// the temp file is removed and nothing is published.
    pub fn commit(mut self, final_path: &Path) -> io::Result<()> {
        let Some(mut f) = self.file.take() else {
            return Err(invalid("writer closed"));
        };
        if let Some(n) = self.expected_body_len {
            if n != self.body_written {
                return Err(invalid(format!(
                    "body is {} bytes, expected {n}",
                    self.body_written
                )));
            }
        } else {
            if !patch_body_len(&mut self.header, self.body_written) {
                return Err(invalid("bad header"));
            }
            f.write_all_at(&self.header, 0)?;
        }
        f.flush()?;
        drop(f);
        if let Some(parent) = final_path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::rename(&self.tmp_path, final_path)?;
        self.tmp_path = PathBuf::new(); // published: nothing to clean up
        Ok(())
    }

    /// Drops the entry and removes the temp file.
    pub fn abort(self) {}
}

impl Drop for TempWriter {
    fn drop(&mut self) {
        self.file = None;
        if !self.tmp_path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

/// Replaces the header of the entry at `path` with `new_meta` (after a 304):
/// writes new header + the old body (copied with `copy_file_range` where the
/// kernel has it) to a temp file beside `path`, then renames it over `path`.
/// The old file is never modified in place, so a concurrent reader sees the
/// old or the new entry. `new_meta.body_len` is taken from the old entry; the
/// keys must match. If another writer replaced the file meanwhile, the last
/// rename wins (both are complete entries).
pub fn rewrite_header(path: &Path, new_meta: &EntryMeta) -> io::Result<()> {
    let mut old = File::open(path)?;
    let file_len = old.metadata()?.len();
    let (old_meta, body_off) = read_header(&mut old).map_err(invalid)?;
    if !validate_file_len(&old_meta, file_len, body_off) {
        return Err(invalid("torn cache file"));
    }
    if old_meta.key != new_meta.key {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cache key differs",
        ));
    }
    let mut meta = new_meta.clone();
    meta.body_len = old_meta.body_len;
    let header = encode_header(&meta).map_err(invalid)?;
    let name = path.file_name().ok_or_else(|| invalid("no file name"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(SIBLING_TMP_MARK);
    tmp_name.push(unique());
    let tmp_path = path.with_file_name(tmp_name);
    let result = (|| {
        let mut tmp = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)?;
        tmp.write_all(&header)?;
        old.seek(SeekFrom::Start(body_off as u64))?;
        let copied = io::copy(&mut (&mut old).take(old_meta.body_len), &mut tmp)?;
        if copied != old_meta.body_len {
            return Err(invalid("cache file shrank while copying"));
        }
        tmp.flush()?;
        fs::rename(&tmp_path, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp_path);
    }
    result
}

/// Removes an entry file; a missing file is not an error.
pub fn remove_entry(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// True for "the disk is full" errors (`ENOSPC`, `EDQUOT`).
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Whether storing is currently allowed: a write error turns storing off for
/// `retry_after_s` (serving from the cache goes on); the next write after
/// that probes the disk again. Counters feed the metrics.
#[derive(Debug, Clone, Default)]
pub struct StoreGate {
    disabled_until: i64,
    /// Write errors seen (all kinds).
    pub errors: u64,
    /// Of which "disk full".
    pub disk_full: u64,
}

impl StoreGate {
    /// Seconds storing stays off after an error.
    pub const RETRY_AFTER_S: i64 = 60;

    /// May a new entry be written at `now` (Unix seconds)?
    pub fn allow(&self, now: i64) -> bool {
        now >= self.disabled_until
    }

    /// Records a failed write at `now`; returns true when this turned storing
    /// off (log it once, not per request).
    pub fn on_error(&mut self, e: &io::Error, now: i64) -> bool {
        let was_allowed = self.allow(now);
        self.errors += 1;
        if is_disk_full(e) {
            self.disk_full += 1;
        }
        self.disabled_until = now.saturating_add(Self::RETRY_AFTER_S);
        was_allowed
    }
}

#[cfg(test)]
mod tests {
    use super::super::entry::decode_header;
    use super::super::key::entry_path;
    use super::super::testutil::TempDir;
    use super::*;

    fn meta(key: &[u8]) -> EntryMeta {
        EntryMeta {
            key: key.to_vec(),
            headers: vec![(b"Content-Type".to_vec(), b"text/plain".to_vec())],
            etag: Some(b"\"v1\"".to_vec()),
            ..EntryMeta::default()
        }
    }

    fn read_entry(path: &Path) -> (EntryMeta, Vec<u8>) {
        let bytes = fs::read(path).unwrap();
        let (m, off) = decode_header(&bytes).unwrap();
        assert!(validate_file_len(&m, bytes.len() as u64, off));
        (m, bytes[off..].to_vec())
    }

    fn tmp_files(dir: &Path) -> usize {
        fs::read_dir(dir.join(TMP_DIR)).map_or(0, |d| d.count())
    }

    #[test]
    fn commit_publishes_with_patched_length() {
        let t = TempDir::new("store-commit");
        let dest = entry_path(&t.0, &[1, 2], &[0xab; 16]);
        let mut w = TempWriter::create(&t.0, &meta(b"k"), None).unwrap();
        w.write_body(b"hello ").unwrap();
        w.write_body(b"world").unwrap();
        assert_eq!(w.body_written(), 11);
        assert!(!dest.exists());
        w.commit(&dest).unwrap();
        let (m, body) = read_entry(&dest);
        assert_eq!(m.body_len, 11);
        assert_eq!(body, b"hello world");
        assert_eq!(tmp_files(&t.0), 0);
    }

    #[test]
    fn short_body_against_content_length_is_never_published() {
        let t = TempDir::new("store-short");
        let dest = t.0.join("e");
        let mut w = TempWriter::create(&t.0, &meta(b"k"), Some(10)).unwrap();
        w.write_body(b"12345").unwrap();
        assert!(w.commit(&dest).is_err());
        assert!(!dest.exists());
        assert_eq!(tmp_files(&t.0), 0);

        let mut w = TempWriter::create(&t.0, &meta(b"k"), Some(5)).unwrap();
        w.write_body(b"12345").unwrap();
        w.commit(&dest).unwrap();
        assert_eq!(read_entry(&dest).1, b"12345");
    }

    #[test]
    fn abort_and_drop_remove_the_temp_file() {
        let t = TempDir::new("store-abort");
        let w = TempWriter::create(&t.0, &meta(b"k"), None).unwrap();
        assert!(w.tmp_path().exists());
        w.abort();
        let mut w = TempWriter::create(&t.0, &meta(b"k"), None).unwrap();
        w.write_body(b"x").unwrap();
        drop(w);
        assert_eq!(tmp_files(&t.0), 0);
    }

    #[test]
    fn commit_replaces_an_existing_entry_atomically() {
        let t = TempDir::new("store-replace");
        let dest = t.0.join("a").join("e");
        for body in [&b"old"[..], b"newer body"] {
            let mut w = TempWriter::create(&t.0, &meta(b"k"), None).unwrap();
            w.write_body(body).unwrap();
            w.commit(&dest).unwrap();
        }
        assert_eq!(read_entry(&dest).1, b"newer body");
    }

    #[test]
    fn rewrite_header_keeps_body_and_replaces_meta() {
        let t = TempDir::new("store-rewrite");
        let dest = t.0.join("e");
        let mut w = TempWriter::create(&t.0, &meta(b"k"), None).unwrap();
        w.write_body(&vec![b'z'; 100_000]).unwrap();
        w.commit(&dest).unwrap();

        let mut new = meta(b"k");
        new.etag = Some(b"\"v2\"".to_vec());
        new.headers.push((b"X-New".to_vec(), b"1".to_vec()));
        new.body_len = 3; // ignored: taken from the old entry
        rewrite_header(&dest, &new).unwrap();
        let (m, body) = read_entry(&dest);
        assert_eq!(m.etag.as_deref(), Some(&b"\"v2\""[..]));
        assert_eq!(m.headers.len(), 2);
        assert_eq!(body.len(), 100_000);
        assert!(body.iter().all(|&b| b == b'z'));
        assert_eq!(fs::read_dir(&t.0).unwrap().count(), 2); // e + tmp/

        // Wrong key, torn file, missing file: errors, file untouched.
        assert!(rewrite_header(&dest, &meta(b"other")).is_err());
        let len = fs::metadata(&dest).unwrap().len();
        let f = OpenOptions::new().write(true).open(&dest).unwrap();
        f.set_len(len - 1).unwrap();
        assert!(rewrite_header(&dest, &new).is_err());
        assert!(rewrite_header(&t.0.join("missing"), &new).is_err());
        assert_eq!(fs::read_dir(&t.0).unwrap().count(), 2);
    }

    #[test]
    fn store_gate_turns_storing_off_then_probes_again() {
        let mut g = StoreGate::default();
        assert!(g.allow(100));
        let full = io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(is_disk_full(&full));
        assert!(g.on_error(&full, 100));
        assert!(!g.on_error(&io::Error::other("x"), 101)); // already off: log once
        assert!(!g.allow(150));
        assert!(g.allow(101 + StoreGate::RETRY_AFTER_S));
        assert_eq!((g.errors, g.disk_full), (2, 1));
        assert!(remove_entry(Path::new("/nonexistent/sluice/x")).is_ok());
    }
}
