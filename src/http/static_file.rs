//! Static files: root + URI, index files, directory redirects, validators,
//! conditional requests and single ranges.
//!
//! A per-worker open-file cache keeps metadata, validators and — for small
//! files — the content, revalidated with one stat(2) at most every
//! `REVALIDATE_MS` (like nginx's `open_file_cache_valid`). Larger files are
//! opened per request and sent with sendfile(2).

use crate::http::{cond, range};
use crate::util::httpdate;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

/// How long a cached stat is trusted.
pub const REVALIDATE_MS: u64 = 1000;
/// Files up to this size are kept in memory.
pub const MAX_CACHED_FILE_BYTES: u64 = 256 * 1024;
/// Memory budget of one worker's file cache.
pub const MAX_CACHE_BYTES: usize = 32 * 1024 * 1024;
/// Most entries.
pub const MAX_ENTRIES: usize = 4096;

/// What the cache knows about a path.
pub struct FileInfo {
    /// Directory rather than a regular file.
    pub is_dir: bool,
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: i64,
    ino: u64,
    dev: u64,
    /// Quoted ETag.
    pub etag: Vec<u8>,
    /// Last-Modified value.
    pub last_modified: [u8; 29],
    /// Content when small.
    pub body: Option<Arc<[u8]>>,
    /// `body` gzipped, and at which level (made on first use).
    gzip: std::cell::RefCell<Option<(u32, Arc<[u8]>)>>,
    checked_ms: u64,
    used_ms: u64,
}

/// Outcome of looking a path up.
pub enum Found<'a> {
    /// A regular file (or directory) with validators.
    Info(&'a FileInfo),
    /// 404
    NotFound,
    /// 403
    Forbidden,
    /// 500 (logged)
    Error,
}

/// The per-worker open-file cache.
#[derive(Default)]
pub struct FileCache {
    map: HashMap<Box<[u8]>, FileInfo>,
    bytes: usize,
}

fn classify(e: &io::Error) -> Found<'static> {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::InvalidFilename => {
            Found::NotFound
        }
        ErrorKind::PermissionDenied => Found::Forbidden,
        _ if e.raw_os_error() == Some(libc::ENAMETOOLONG)
            || e.raw_os_error() == Some(libc::ELOOP) =>
        {
            Found::NotFound
        }
        _ => Found::Error,
    }
}

fn path_of(bytes: &[u8]) -> &std::path::Path {
    use std::os::unix::ffi::OsStrExt;
    std::path::Path::new(std::ffi::OsStr::from_bytes(bytes))
}

impl FileCache {
    /// Look `path` up, using the cached entry while it is fresh.
    pub fn lookup(&mut self, path: &[u8], now_ms: u64) -> Found<'_> {
        let fresh = match self.map.get(path) {
            Some(e) => now_ms.saturating_sub(e.checked_ms) < REVALIDATE_MS,
            None => false,
        };
        if !fresh {
            if let Err(found) = self.refresh(path, now_ms) {
                return found;
            }
        }
        match self.map.get_mut(path) {
            Some(e) => {
                e.used_ms = now_ms;
                Found::Info(e)
            }
            None => Found::Error,
        }
    }

    fn refresh(&mut self, path: &[u8], now_ms: u64) -> Result<(), Found<'static>> {
        let p = path_of(path);
        let meta = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(e) => {
                self.remove(path);
                return Err(classify(&e));
            }
        };
        if let Some(e) = self.map.get_mut(path) {
            if e.mtime == meta.mtime()
                && e.size == meta.len()
                && e.ino == meta.ino()
                && e.dev == meta.dev()
            {
                e.checked_ms = now_ms;
                return Ok(());
            }
        }
        self.remove(path);
        let is_dir = meta.is_dir();
        if !is_dir && !meta.is_file() {
            return Err(Found::NotFound);
        }
        let mut body = None;
        if !is_dir && meta.len() <= MAX_CACHED_FILE_BYTES {
            let mut data = Vec::with_capacity(meta.len() as usize);
            match File::open(p).and_then(|mut f| f.read_to_end(&mut data)) {
                Ok(_) if data.len() as u64 == meta.len() => body = Some(Arc::from(data)),
                Ok(_) => {} // changed under us: serve it uncached this time
                Err(e) => return Err(classify(&e)),
            }
        }
        let mut etag = Vec::with_capacity(24);
        cond::make_etag(meta.mtime(), meta.len(), &mut etag);
        let mut last_modified = [0u8; 29];
        httpdate::format_http_date(meta.mtime(), &mut last_modified);
        let info = FileInfo {
            is_dir,
            size: meta.len(),
            mtime: meta.mtime(),
            ino: meta.ino(),
            dev: meta.dev(),
            etag,
            last_modified,
            body,
            gzip: std::cell::RefCell::new(None),
            checked_ms: now_ms,
            used_ms: now_ms,
        };
        self.make_room(now_ms);
        self.bytes += path.len() + info.body.as_ref().map_or(0, |b| b.len());
        self.map.insert(path.into(), info);
        Ok(())
    }

    fn remove(&mut self, path: &[u8]) {
        if let Some(old) = self.map.remove(path) {
            self.bytes -= path.len() + old.body.as_ref().map_or(0, |b| b.len());
        }
    }

    fn make_room(&mut self, now_ms: u64) {
        if self.map.len() < MAX_ENTRIES && self.bytes < MAX_CACHE_BYTES {
            return;
        }
        // Drop what was not used in the last few seconds; if that is not
        // enough, start over (a full scan at most once per MAX_ENTRIES inserts).
        let before = self.map.len();
        self.map
            .retain(|_, e| now_ms.saturating_sub(e.used_ms) < 5 * REVALIDATE_MS);
        if self.map.len() * 2 > before || self.map.len() >= MAX_ENTRIES {
            self.map.clear();
        }
        self.bytes = self
            .map
            .iter()
            .map(|(k, e)| k.len() + e.body.as_ref().map_or(0, |b| b.len()))
            .sum();
    }
}

impl FileInfo {
    /// The content gzipped at `level`, compressed once and kept with the
    /// entry (`None`: the file is not held in memory).
    pub fn gzipped(&self, level: u32) -> Option<Arc<[u8]>> {
        let body = self.body.as_ref()?;
        if let Some((l, z)) = self.gzip.borrow().as_ref() {
            if *l == level {
                return Some(z.clone());
            }
        }
        // zlib-rs's level 1 is a quicker, weaker algorithm than zlib's (its
        // output here was 60 % larger than nginx's at level 1); level 2
        // matches zlib's level 1, and the result is compressed only once.
        let effective = if level == 1 { 2 } else { level };
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 2 + 64),
            flate2::Compression::new(effective),
        );
        std::io::Write::write_all(&mut enc, body).ok()?;
        let z: Arc<[u8]> = Arc::from(enc.finish().ok()?);
        *self.gzip.borrow_mut() = Some((level, z.clone()));
        Some(z)
    }
}

/// Whether an `Accept-Encoding` value accepts gzip (`gzip` or `*` with a
/// q-value above 0).
pub fn accepts_gzip(value: Option<&[u8]>) -> bool {
    let Some(v) = value else {
        return false;
    };
    v.split(|&b| b == b',').any(|item| {
        let mut parts = item.split(|&b| b == b';');
        let coding = parts.next().unwrap_or_default().trim_ascii();
        if !coding.eq_ignore_ascii_case(b"gzip")
            && coding != b"*"
            && !coding.eq_ignore_ascii_case(b"x-gzip")
        {
            return false;
        }
        parts.all(|p| {
            let p = p.trim_ascii();
            match p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q=")) {
                Some(q) => q.iter().any(|&b| (b'1'..=b'9').contains(&b)),
                None => true,
            }
        })
    })
}

/// What to send after the head.
pub enum Body {
    /// Nothing (HEAD, 304, errors already in the head buffer).
    None,
    /// `len` bytes of in-memory content from `offset`.
    Mem(Arc<[u8]>, usize, usize),
    /// `len` bytes of a file from `offset`, by sendfile.
    File(File, u64, u64),
}

/// The conditional and range headers of a request, resolved to bytes.
#[derive(Default)]
pub struct Conditions<'a> {
    /// If-None-Match.
    pub if_none_match: Option<&'a [u8]>,
    /// If-Modified-Since.
    pub if_modified_since: Option<&'a [u8]>,
    /// If-Match.
    pub if_match: Option<&'a [u8]>,
    /// If-Unmodified-Since.
    pub if_unmodified_since: Option<&'a [u8]>,
    /// Range (GET only).
    pub range: Option<&'a [u8]>,
    /// If-Range.
    pub if_range: Option<&'a [u8]>,
}

/// The decision for a file response.
pub enum Decision {
    /// 200 with the whole file.
    Full,
    /// 206 for bytes start..=end.
    Partial(u64, u64),
    /// 304
    NotModified,
    /// 412
    PreconditionFailed,
    /// 416
    Unsatisfiable,
}

/// Apply RFC 9110 §13.2.2 precedence: If-Match, If-Unmodified-Since,
/// If-None-Match, If-Modified-Since, then Range/If-Range.
pub fn decide(info: &FileInfo, c: &Conditions<'_>) -> Decision {
    if let Some(im) = c.if_match {
        if !cond::if_match(im, &info.etag) {
            return Decision::PreconditionFailed;
        }
    } else if let Some(ius) = c.if_unmodified_since {
        if let Some(t) = httpdate::parse_http_date(ius) {
            if info.mtime > t {
                return Decision::PreconditionFailed;
            }
        }
    }
    if let Some(inm) = c.if_none_match {
        if cond::if_none_match(inm, &info.etag) {
            return Decision::NotModified;
        }
    } else if let Some(ims) = c.if_modified_since {
        if cond::not_modified_since(ims, info.mtime) {
            return Decision::NotModified;
        }
    }
    let Some(r) = c.range else {
        return Decision::Full;
    };
    if let Some(ir) = c.if_range {
        let ok = if ir.first() == Some(&b'"') {
            ir == info.etag.as_slice()
        } else {
            httpdate::parse_http_date(ir) == Some(info.mtime)
        };
        if !ok {
            return Decision::Full;
        }
    }
    match range::parse_range(r, info.size) {
        range::RangeResult::Full => Decision::Full,
        range::RangeResult::Single {
            start,
            end_inclusive,
        } => Decision::Partial(start, end_inclusive),
        range::RangeResult::Unsatisfiable => Decision::Unsatisfiable,
    }
}

/// Open a file for a sendfile body and check it is still what `info` says.
pub fn open_body(path: &[u8], info: &FileInfo) -> io::Result<File> {
    let f = File::open(path_of(path))?;
    let m = f.metadata()?;
    if m.len() != info.size {
        return Err(io::Error::other("file changed while being served"));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("sluice-static-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn cache_revalidates_after_change() {
        let d = dir("reval");
        let f = d.join("a.txt");
        std::fs::write(&f, b"one").unwrap();
        let key = f.to_str().unwrap().as_bytes().to_vec();
        let mut c = FileCache::default();
        match c.lookup(&key, 0) {
            Found::Info(i) => assert_eq!(&i.body.as_ref().unwrap()[..], b"one"),
            _ => panic!("not found"),
        }
        std::fs::write(&f, b"two!").unwrap();
        // Still within the revalidation window: old content.
        match c.lookup(&key, 500) {
            Found::Info(i) => assert_eq!(i.size, 3),
            _ => panic!("not found"),
        }
        match c.lookup(&key, 1500) {
            Found::Info(i) => assert_eq!(&i.body.as_ref().unwrap()[..], b"two!"),
            _ => panic!("not found"),
        }
        std::fs::remove_file(&f).unwrap();
        assert!(matches!(c.lookup(&key, 3000), Found::NotFound));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn accept_encoding_gzip_and_q_values() {
        for (v, want) in [
            ("gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("GZIP", true),
            ("*", true),
            ("gzip;q=0", false),
            ("gzip;q=0.000", false),
            ("br, deflate", false),
            ("gzipx", false),
        ] {
            assert_eq!(accepts_gzip(Some(v.as_bytes())), want, "{v}");
        }
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn conditions_precedence() {
        let info = FileInfo {
            is_dir: false,
            size: 100,
            mtime: 1_000_000,
            ino: 1,
            dev: 1,
            etag: b"\"f4240-64\"".to_vec(),
            last_modified: [b' '; 29],
            body: None,
            gzip: std::cell::RefCell::new(None),
            checked_ms: 0,
            used_ms: 0,
        };
        let c = Conditions {
            if_none_match: Some(b"\"f4240-64\""),
            ..Default::default()
        };
        assert!(matches!(decide(&info, &c), Decision::NotModified));
        let c = Conditions {
            if_match: Some(b"\"other\""),
            ..Default::default()
        };
        assert!(matches!(decide(&info, &c), Decision::PreconditionFailed));
        let c = Conditions {
            range: Some(b"bytes=10-19"),
            ..Default::default()
        };
        assert!(matches!(decide(&info, &c), Decision::Partial(10, 19)));
        let c = Conditions {
            range: Some(b"bytes=10-19"),
            if_range: Some(b"\"stale\""),
            ..Default::default()
        };
        assert!(matches!(decide(&info, &c), Decision::Full));
        let c = Conditions {
            range: Some(b"bytes=200-"),
            ..Default::default()
        };
        assert!(matches!(decide(&info, &c), Decision::Unsatisfiable));
    }
}
