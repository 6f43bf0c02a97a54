//! The disk cache wired into the proxy: lookups before going upstream, hits
//! answered from memory or the entry file, and the fill lock. The threads
//! that write fills and look entries up off the event loop are in `io`.

use crate::cache::control::CacheControl;
use crate::cache::entry::{self, EntryMeta};
use crate::cache::freshness::{self, Lookup};
use crate::cache::{key, policy, revalidate};
use crate::config::{CachePathConf, LocationCacheConf};
use crate::proto::reply::{Framing, ReplyHead};
use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Bytes read at once from an entry file.
const READ_CHUNK: usize = 64 * 1024;

/// A usable stored entry.
pub struct Found {
    /// Its header.
    pub meta: EntryMeta,
    /// The open file.
    pub file: File,
    /// Body offset in the file.
    pub body_off: u64,
    /// The first bytes read (header and possibly the body).
    pub prefix: Vec<u8>,
    /// Where the entry lives.
    pub path: PathBuf,
}

/// A read that would have waited for the disk (page cache miss): hand it
/// to the I/O pool and look again when it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending;

fn read_at(file: &File, buf: &mut [u8], off: u64, nowait: bool) -> io::Result<usize> {
    if nowait {
        use std::os::fd::AsRawFd;
        crate::sys::pread_nowait(file.as_raw_fd(), buf, off)
    } else {
        file.read_at(buf, off)
    }
}

/// Read and check the entry at `path` for `key`; `None` = MISS (absent,
/// torn, other key or version — never served). Blocking.
pub fn read_entry(path: &std::path::Path, key: &[u8]) -> Option<Found> {
    read_entry_mode(path, key, false).ok().flatten()
}

/// [`read_entry`]; with `nowait`, `Err(Pending)` instead of waiting for the disk.
pub fn read_entry_mode(path: &Path, key: &[u8], nowait: bool) -> Result<Option<Found>, Pending> {
    let Ok(file) = File::open(path) else {
        return Ok(None);
    };
    let Ok(m) = file.metadata() else {
        return Ok(None);
    };
    let len = m.len();
    let mut prefix = vec![0u8; READ_CHUNK.min(len as usize)];
    let n = match read_at(&file, &mut prefix, 0, nowait) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(Pending),
        Err(_) => return Ok(None),
    };
    prefix.truncate(n);
    let Ok(need) = entry::header_len(&prefix) else {
        return Ok(None);
    };
    if need > prefix.len() {
        let mut more = vec![0u8; need - prefix.len()];
        let m = match read_at(&file, &mut more, prefix.len() as u64, nowait) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(Pending),
            Err(_) => return Ok(None),
        };
        more.truncate(m);
        prefix.extend_from_slice(&more);
    }
    let Ok((meta, body_off)) = entry::decode_for_key(&prefix, key) else {
        return Ok(None);
    };
    if !entry::validate_file_len(&meta, len, body_off) {
        return Ok(None);
    }
    Ok(Some(Found {
        meta,
        file,
        body_off: body_off as u64,
        prefix,
        path: path.to_path_buf(),
    }))
}

/// The cache zone a location uses.
pub fn zone<'a>(paths: &'a [CachePathConf], c: &LocationCacheConf) -> Option<&'a CachePathConf> {
    let name = c.zone.as_deref()?;
    paths.iter().find(|p| p.zone_name == name)
}

/// Most remembered absent/warmed keys per worker before they are dropped.
const MAX_ABSENT: usize = 65_536;

/// Entries up to this body size are kept in the worker's memory.
pub const HOT_MAX_BODY: u64 = 256 * 1024;
/// Memory budget of the hot-entry map per worker.
pub const HOT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// How long a hot entry is trusted before one stat(2) checks the file.
pub const HOT_REVALIDATE_MS: u64 = 1000;

/// A small entry held in memory (revalidated against its file).
pub struct HotEntry {
    /// Header.
    pub meta: EntryMeta,
    /// Body.
    pub body: Vec<u8>,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    checked_ms: Cell<u64>,
    touched_ms: Cell<u64>,
    epoch: Cell<u64>,
    /// The key's store sequence when this copy was read (or last found
    /// to be the file on disk): when it moves, some worker stored the key.
    seq: Cell<u64>,
    path: PathBuf,
}

/// How often a hot entry's file gets its access time refreshed (for the manager's LRU).
const TOUCH_EVERY_MS: u64 = 60_000;

impl HotEntry {
    fn used(&self, now_ms: u64) {
        if now_ms.saturating_sub(self.touched_ms.get()) >= TOUCH_EVERY_MS {
            self.touched_ms.set(now_ms);
            crate::cache::manager::touch(&self.path);
        }
    }
}

/// The worker's map of hot entries, by entry md5.
#[derive(Default)]
pub struct Hot {
    map: HashMap<[u8; 16], Rc<HotEntry>>,
    bytes: usize,
    /// Keys the I/O pool found absent: (when, purge epoch, store sequence
    /// when asked). A miss is answered from here for `HOT_REVALIDATE_MS`
    /// without touching the disk, unless some worker stored the key since.
    absent: HashMap<[u8; 16], (u64, u64, u64)>,
    /// The shared store sequences (none in unit tests: never moves).
    shared: Option<std::sync::Arc<crate::shm::stats::StatsZone>>,
    /// Large entries the I/O pool pulled into the page cache (when).
    warmed: HashMap<[u8; 16], u64>,
}

/// What the I/O pool found for a lookup.
pub enum Loaded {
    /// A small entry, read whole.
    Entry(Box<HotEntry>),
    /// No usable entry.
    Absent,
    /// A large entry, now in the page cache.
    Warmed,
}

/// A stored entry to answer from.
pub enum Entry {
    /// In memory.
    Hot(Rc<HotEntry>),
    /// On disk (large bodies).
    Disk(Box<Found>),
}

impl Entry {
    /// Its file.
    pub fn path(&self) -> &Path {
        match self {
            Entry::Hot(h) => &h.path,
            Entry::Disk(f) => &f.path,
        }
    }

    /// Whether some worker stored this key since this copy was read (a
    /// copy read from disk for this request only is taken as current).
    pub fn superseded(&self, hot: &Hot) -> bool {
        match self {
            Entry::Hot(h) => key::from_hex(
                h.path
                    .file_name()
                    .map_or(b"".as_slice(), |n| n.as_encoded_bytes()),
            )
            .is_some_and(|md5| hot.stored_seq(&md5) != h.seq.get()),
            Entry::Disk(_) => false,
        }
    }

    /// Its header.
    pub fn meta(&self) -> &EntryMeta {
        match self {
            Entry::Hot(h) => &h.meta,
            Entry::Disk(f) => &f.meta,
        }
    }
}

fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    m.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(m.mtime_nsec())
}

impl Hot {
    /// Use the shared store sequences of `stats` (the worker's zone).
    pub fn share(&mut self, stats: std::sync::Arc<crate::shm::stats::StatsZone>) {
        self.shared = Some(stats);
    }

    /// The store sequence of the entry named `md5` now (see
    /// [`crate::shm::key_uses`]); capture it before asking the disk.
    pub fn stored_seq(&self, md5: &[u8; 16]) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |s| s.key_uses().stored_seq(md5))
    }

    /// The entry at `path` (md5 `md5`) for `key`, from memory when fresh.
    /// `epoch` is the shared purge counter: when it moved, the file is
    /// checked even within the revalidation interval.
    pub fn get(
        &mut self,
        path: &Path,
        md5: &[u8; 16],
        key: &[u8],
        now_ms: u64,
        epoch: u64,
        nowait: bool,
    ) -> Result<Option<Entry>, Pending> {
        let seq = self.stored_seq(md5);
        if let Some(h) = self.map.get(md5) {
            if now_ms.saturating_sub(h.checked_ms.get()) < HOT_REVALIDATE_MS
                && h.epoch.get() == epoch
                && h.seq.get() == seq
                && h.meta.key == key
            {
                h.used(now_ms);
                return Ok(Some(Entry::Hot(h.clone())));
            }
        }
        if nowait && !self.map.contains_key(md5) {
            // Unknown here: the disk is asked by the I/O pool, never inline
            // (a path lookup can wait on a directory the writer is changing).
            if let Some(&(at, ep, seq_then)) = self.absent.get(md5) {
                if ep == epoch && now_ms.saturating_sub(at) < HOT_REVALIDATE_MS && seq_then == seq {
                    return Ok(None);
                }
            }
            let warm = self
                .warmed
                .get(md5)
                .is_some_and(|&at| now_ms.saturating_sub(at) < HOT_REVALIDATE_MS);
            if !warm {
                return Err(Pending);
            }
        }
        let m = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(_) => {
                self.remove(md5);
                return Ok(None);
            }
        };
        if let Some(h) = self.map.get(md5) {
            if h.ino == m.ino()
                && h.size == m.len()
                && h.mtime_ns == mtime_ns(&m)
                && h.meta.key == key
            {
                h.checked_ms.set(now_ms);
                h.epoch.set(epoch);
                h.seq.set(seq);
                h.used(now_ms);
                return Ok(Some(Entry::Hot(h.clone())));
            }
        }
        self.remove(md5);
        let Some(found) = read_entry_mode(path, key, nowait)? else {
            return Ok(None);
        };
        if found.meta.body_len > HOT_MAX_BODY {
            let _ = found
                .file
                .set_times(std::fs::FileTimes::new().set_accessed(std::time::SystemTime::now()));
            return Ok(Some(Entry::Disk(Box::new(found))));
        }
        let mut body = Vec::new();
        match read_body_mode(&found, &mut body, nowait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(Pending),
            Err(_) => return Ok(None),
        }
        let Ok(fm) = found.file.metadata() else {
            return Ok(None);
        };
        let h = Rc::new(HotEntry {
            ino: fm.ino(),
            size: fm.len(),
            mtime_ns: mtime_ns(&fm),
            checked_ms: Cell::new(now_ms),
            touched_ms: Cell::new(now_ms),
            epoch: Cell::new(epoch),
            seq: Cell::new(seq),
            path: path.to_path_buf(),
            meta: found.meta,
            body,
        });
        self.bytes += h.body.len() + 512;
        if self.bytes > HOT_MAX_BYTES {
            self.map.clear();
            self.bytes = h.body.len() + 512;
        }
        self.map.insert(*md5, h.clone());
        Ok(Some(Entry::Hot(h)))
    }

    /// After a 304 merge: keep serving the same body with the merged header
    /// until the rewritten file replaces the entry (a later stat sees it).
    pub fn replace_meta(&mut self, path: &Path, meta: &EntryMeta) {
        let Some((md5, h)) = self.map.iter().find(|(_, h)| h.path == path) else {
            return;
        };
        let md5 = *md5;
        let fresh = Rc::new(HotEntry {
            meta: meta.clone(),
            body: h.body.clone(),
            ino: h.ino,
            size: h.size,
            mtime_ns: h.mtime_ns,
            checked_ms: Cell::new(h.checked_ms.get()),
            touched_ms: Cell::new(h.touched_ms.get()),
            epoch: Cell::new(h.epoch.get()),
            seq: Cell::new(h.seq.get()),
            path: h.path.clone(),
        });
        self.map.insert(md5, fresh);
    }

    /// Forget an entry (purged, invalidated, or about to be refilled).
    pub fn forget(&mut self, md5: &[u8; 16]) {
        self.remove(md5);
        self.absent.remove(md5);
        self.warmed.remove(md5);
    }

    /// Take in what the I/O pool found for `md5` (asked when its store
    /// sequence was `seq`).
    pub fn install(&mut self, md5: [u8; 16], loaded: Loaded, now_ms: u64, epoch: u64, seq: u64) {
        if self.absent.len() > MAX_ABSENT {
            self.absent.clear();
            self.warmed.clear();
        }
        match loaded {
            Loaded::Entry(h) => {
                h.checked_ms.set(now_ms);
                h.touched_ms.set(now_ms);
                h.epoch.set(epoch);
                h.seq.set(seq);
                self.absent.remove(&md5);
                self.remove(&md5);
                self.bytes += h.body.len() + 512;
                if self.bytes > HOT_MAX_BYTES {
                    self.map.clear();
                    self.bytes = h.body.len() + 512;
                }
                self.map.insert(md5, Rc::from(h));
            }
            Loaded::Absent => {
                self.remove(&md5);
                self.absent.insert(md5, (now_ms, epoch, seq));
            }
            Loaded::Warmed => {
                self.warmed.insert(md5, now_ms);
            }
        }
    }

    fn remove(&mut self, md5: &[u8; 16]) {
        if let Some(h) = self.map.remove(md5) {
            self.bytes = self.bytes.saturating_sub(h.body.len() + 512);
        }
    }
}

/// Read the whole body of `f` into `out` (appending). Blocking.
pub fn read_body(f: &Found, out: &mut Vec<u8>) -> io::Result<()> {
    read_body_mode(f, out, false)
}

/// [`read_body`]; with `nowait`, `WouldBlock` instead of waiting for the disk
/// (`out` is left as it was).
pub fn read_body_mode(f: &Found, out: &mut Vec<u8>, nowait: bool) -> io::Result<()> {
    let mark = out.len();
    let start = f.body_off as usize;
    let end = (start as u64 + f.meta.body_len) as usize;
    let have_end = end.min(f.prefix.len());
    if start < have_end {
        out.extend_from_slice(&f.prefix[start..have_end]);
    }
    let mut off = have_end.max(start) as u64;
    let base = out.len();
    let rest = (end as u64).saturating_sub(off) as usize;
    out.resize(base + rest, 0);
    let mut filled = 0;
    while filled < rest {
        let n = match read_at(&f.file, &mut out[base + filled..], off, nowait) {
            Ok(n) => n,
            Err(e) => {
                out.truncate(mark);
                return Err(e);
            }
        };
        if n == 0 {
            out.truncate(base);
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "cache entry shrank",
            ));
        }
        filled += n;
        off += n as u64;
    }
    Ok(())
}

/// Outcome of a lookup.
pub enum LookupResult {
    /// Serve this entry; `stale` = X-Cache-Status STALE instead of HIT.
    Serve(Entry, bool),
    /// Go to the origin; the entry (if any) is kept for the Vary decision.
    /// Go to the origin: the status word, the primary entry's header (for
    /// Vary placement) and the stored entry that may still answer (stale, to
    /// revalidate or to serve if the origin fails).
    Origin(
        crate::cache::CacheStatus,
        Option<Box<EntryMeta>>,
        Option<Entry>,
    ),
    /// `only-if-cached` with nothing usable: 504.
    Unsatisfiable,
    /// Reading the entry would wait for the disk: the I/O pool looks it
    /// up (this file, this md5), then the worker looks again.
    Pending(PathBuf, [u8; 16]),
}

/// Look the request up.
#[allow(clippy::too_many_arguments)]
pub fn lookup(
    zone: &CachePathConf,
    c: &LocationCacheConf,
    key_bytes: &[u8],
    req_headers: &[(&[u8], &[u8])],
    now: i64,
    hot: &mut Hot,
    now_ms: u64,
    epoch: u64,
    nowait: bool,
) -> LookupResult {
    use crate::cache::CacheStatus;
    let primary = key::cache_key_md5(key_bytes);
    let path = key::entry_path(&zone.dir, &zone.levels, &primary);
    let req_cc = CacheControl::from_request(req_headers);
    let got = match hot.get(&path, &primary, key_bytes, now_ms, epoch, nowait) {
        Ok(g) => g,
        Err(Pending) => return LookupResult::Pending(path, primary),
    };
    let Some(mut found) = got else {
        if req_cc.only_if_cached {
            return LookupResult::Unsatisfiable;
        }
        return LookupResult::Origin(CacheStatus::Miss, None, None);
    };
    if let Some(v) = policy::vary_mismatch(found.meta(), req_headers) {
        let vpath = key::entry_path(&zone.dir, &zone.levels, &v);
        let got = match hot.get(&vpath, &v, key_bytes, now_ms, epoch, nowait) {
            Ok(g) => g,
            Err(Pending) => return LookupResult::Pending(vpath, v),
        };
        match got {
            Some(f) if policy::vary_mismatch(f.meta(), req_headers).is_none() => found = f,
            _ if req_cc.only_if_cached => return LookupResult::Unsatisfiable,
            _ => {
                return LookupResult::Origin(
                    CacheStatus::Miss,
                    Some(Box::new(found.meta().clone())),
                    None,
                )
            }
        }
    }
    match freshness::lookup_decision(found.meta(), &req_cc, now, &c.use_stale) {
        Lookup::Fresh => LookupResult::Serve(found, false),
        Lookup::ClientAcceptsStale => LookupResult::Serve(found, true),
        Lookup::Unsatisfiable => LookupResult::Unsatisfiable,
        Lookup::Stale { .. } | Lookup::MustRevalidate => LookupResult::Origin(
            CacheStatus::Expired,
            Some(Box::new(found.meta().clone())),
            Some(found),
        ),
    }
}

/// What a cached answer needs from the request.
pub struct HitParams<'a> {
    /// Method bytes.
    pub method: &'a [u8],
    /// Request header pairs.
    pub req_headers: &'a [(&'a [u8], &'a [u8])],
    /// Keep the client connection.
    pub keep_alive: bool,
    /// X-Cache-Status value.
    pub status_word: &'a [u8],
    /// `proxy_hide_header` names (lowercase).
    pub hide: &'a [String],
    /// Unix seconds now.
    pub now: i64,
}

/// Fill `head` with the answer `meta` (a stored response) gives this
/// request: 200/206-as-stored, or 304/412 for its conditionals; the stored
/// fields (our own `Server` and `Date` replace the origin's, as on a MISS),
/// `Age`, `X-Cache-Status`, the length. The header filter runs on it next.
/// Returns whether the stored body follows the head.
pub fn hit_head(meta: &EntryMeta, p: &HitParams<'_>, head: &mut ReplyHead) -> bool {
    let answer = revalidate::client_conditional(meta, p.method, p.req_headers);
    let (status, with_body) = match answer {
        revalidate::ClientAnswer::Full => (meta.status, p.method != b"HEAD"),
        revalidate::ClientAnswer::NotModified => (304, false),
        revalidate::ClientAnswer::PreconditionFailed => (412, false),
    };
    let framing = if status == 304 || status == 204 || (100..200).contains(&status) {
        Framing::None
    } else if status == 412 {
        Framing::Length(0)
    } else {
        Framing::Length(meta.body_len)
    };
    head.reset(status, framing, p.keep_alive);
    if status == 304 {
        for (n, v) in revalidate::not_modified_headers(meta) {
            head.push(n, v);
        }
    } else if status != 412 {
        for (n, v) in &meta.headers {
            if n.eq_ignore_ascii_case(b"date")
                || n.eq_ignore_ascii_case(b"server")
                || p.hide.iter().any(|h| n.eq_ignore_ascii_case(h.as_bytes()))
            {
                continue;
            }
            head.push(n, v);
        }
    }
    head.push_u64(b"Age", freshness::current_age(meta, p.now));
    head.push(b"X-Cache-Status", p.status_word);
    with_body && status != 412
}

/// Append the stored body of `f` (after [`hit_head`] said it follows).
pub fn write_hit_body(f: &Entry, out: &mut Vec<u8>) -> io::Result<()> {
    match f {
        Entry::Hot(h) => out.extend_from_slice(&h.body),
        Entry::Disk(d) => read_body_mode(d, out, true)?,
    }
    Ok(())
}

pub use crate::shm::fill_locks::{FillLock, LockTry};

/// Take the fill lock of `md5` in `zone` (`proxy_cache_lock`), in the
/// shared table every worker sees; a lock older than `lock_age_ms` is
/// considered abandoned and taken over (nginx's `proxy_cache_lock_age`).
pub fn try_lock(
    locks: &std::sync::Arc<crate::shm::fill_locks::FillLocks>,
    zone: &CachePathConf,
    md5: &[u8; 16],
    lock_age_ms: u64,
) -> LockTry {
    locks.try_lock(&zone_key(zone, md5), lock_age_ms)
}

/// `md5` mixed with its zone's name: the key of the shared per-key tables
/// (fill locks, use counts), which all zones share.
fn zone_key(zone: &CachePathConf, md5: &[u8; 16]) -> [u8; 16] {
    let zone_md5 = key::cache_key_md5(zone.zone_name.as_bytes());
    let mut k = *md5;
    for (b, z) in k.iter_mut().zip(zone_md5) {
        *b ^= z;
    }
    k
}

/// Count a request for `md5` that found nothing stored; true when the key
/// has now been asked for `proxy_cache_min_uses` times (within the zone's
/// `inactive`), so its response may be stored.
pub fn used_enough(
    uses: &crate::shm::key_uses::KeyUses,
    zone: &CachePathConf,
    md5: &[u8; 16],
    min_uses: u64,
    now: i64,
) -> bool {
    min_uses <= 1 || uses.bump(&zone_key(zone, md5), now, zone.inactive_ms / 1000) >= min_uses
}

/// What the I/O pool finds at `path` for `key` (blocking: stat, open, read).
pub(crate) fn load(path: &Path, key: &[u8]) -> Loaded {
    let Some(found) = read_entry(path, key) else {
        return Loaded::Absent;
    };
    if found.meta.body_len > HOT_MAX_BODY {
        warm(path);
        return Loaded::Warmed;
    }
    let mut body = Vec::new();
    if read_body(&found, &mut body).is_err() {
        return Loaded::Absent;
    }
    let Ok(m) = found.file.metadata() else {
        return Loaded::Absent;
    };
    Loaded::Entry(Box::new(HotEntry {
        ino: m.ino(),
        size: m.len(),
        mtime_ns: mtime_ns(&m),
        checked_ms: Cell::new(0),
        touched_ms: Cell::new(0),
        epoch: Cell::new(0),
        seq: Cell::new(0),
        path: path.to_path_buf(),
        meta: found.meta,
        body,
    }))
}

/// Read a whole file so its pages are cached.
fn warm(path: &Path) {
    use std::io::Read;
    if let Ok(mut f) = File::open(path) {
        let mut buf = vec![0u8; READ_CHUNK];
        while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
    }
}
