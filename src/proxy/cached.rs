//! The disk cache wired into the proxy: lookups before going upstream, hits
//! answered from the entry file, and fills written by a per-worker writer
//! thread so a client never waits for the disk (the worker only queues
//! bytes; a full queue abandons the fill, never the response).

use crate::cache::control::CacheControl;
use crate::cache::entry::{self, EntryMeta};
use crate::cache::freshness::{self, Lookup};
use crate::cache::{key, policy, revalidate, store};
use crate::config::{CachePathConf, LocationCacheConf};
use crate::http::response::{self as resp, put_u64};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Messages queued to the writer thread before fills are abandoned.
const QUEUE: usize = 4096;
/// A fill with no message for this long is abandoned by the writer.
const FILL_IDLE: Duration = Duration::from_secs(120);
/// Bytes read at once from an entry file.
const READ_CHUNK: usize = 64 * 1024;

enum WriteMsg {
    Begin {
        id: u64,
        dir: PathBuf,
        meta: Box<EntryMeta>,
        expected: Option<u64>,
        path: PathBuf,
        lock: Option<PathBuf>,
    },
    Data(u64, Vec<u8>),
    Commit(u64),
    Abort(u64),
    Rewrite(PathBuf, Box<EntryMeta>),
}

/// Handle to the worker's cache writer thread. Messages wait in `batch`
/// until the event loop is about to sleep ([`Writer::flush`]): one channel
/// send, and at most one wakeup of the thread, per loop iteration.
pub struct Writer {
    tx: Sender<Vec<WriteMsg>>,
    next_id: u64,
    batch: RefCell<Vec<WriteMsg>>,
    /// Messages handed over and not yet done by the thread.
    queued: Arc<AtomicUsize>,
}

fn run_writer(rx: Receiver<Vec<WriteMsg>>, queued: Arc<AtomicUsize>) {
    // Storing is best effort: the thread yields its CPU to the event loop
    // the moment the loop has work (under full load fills are abandoned
    // when the queue fills, never the response).
    if let Err(e) = crate::sys::set_thread_background() {
        log::debug!("cache writer: SCHED_IDLE not set: {e}");
    }
    let mut fills: HashMap<u64, (store::TempWriter, PathBuf, Instant)> = HashMap::new();
    // Fill locks to release once their fill is published or dropped.
    let mut locks: HashMap<u64, PathBuf> = HashMap::new();
    let release = |locks: &mut HashMap<u64, PathBuf>, id: u64| {
        if let Some(l) = locks.remove(&id) {
            let _ = std::fs::remove_file(l);
        }
    };
    let mut gate = store::StoreGate::default();
    let mut msgs: std::vec::IntoIter<WriteMsg> = Vec::new().into_iter();
    loop {
        let msg = match msgs.next() {
            Some(m) => Ok(Some(m)),
            None => rx.recv_timeout(Duration::from_secs(10)).map(|batch| {
                msgs = batch.into_iter();
                msgs.next()
            }),
        };
        let msg = match msg {
            Ok(Some(m)) => {
                queued.fetch_sub(1, Ordering::AcqRel);
                m
            }
            Ok(None) => continue,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                fills.retain(|_, (_, _, t)| t.elapsed() < FILL_IDLE);
                let orphans: Vec<u64> = locks
                    .keys()
                    .filter(|id| !fills.contains_key(id))
                    .copied()
                    .collect();
                for id in orphans {
                    release(&mut locks, id);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let now = crate::event::Clock::new().unix_secs();
        match msg {
            WriteMsg::Begin {
                id,
                dir,
                meta,
                expected,
                path,
                lock,
            } => {
                if let Some(l) = lock {
                    locks.insert(id, l);
                }
                if !gate.allow(now) {
                    release(&mut locks, id);
                    continue;
                }
                match store::TempWriter::create(&dir, &meta, expected) {
                    Ok(w) => {
                        fills.insert(id, (w, path, Instant::now()));
                    }
                    Err(e) => {
                        release(&mut locks, id);
                        if gate.on_error(&e, now) {
                            log::error!("cache: storing paused: {e}");
                        }
                    }
                }
            }
            WriteMsg::Data(id, bytes) => {
                if let Some((w, _, t)) = fills.get_mut(&id) {
                    *t = Instant::now();
                    if let Err(e) = w.write_body(&bytes) {
                        fills.remove(&id);
                        release(&mut locks, id);
                        if gate.on_error(&e, now) {
                            log::error!("cache: storing paused: {e}");
                        }
                    }
                }
            }
            WriteMsg::Commit(id) => {
                if let Some((w, path, _)) = fills.remove(&id) {
                    if let Some(parent) = path.parent() {
                        let _ = std::fs::create_dir_all(parent);
                    }
                    if let Err(e) = w.commit(&path) {
                        log::warn!("cache: not stored {}: {e}", path.display());
                        if gate.on_error(&e, now) {
                            log::error!("cache: storing paused: {e}");
                        }
                    }
                }
                release(&mut locks, id);
            }
            WriteMsg::Abort(id) => {
                fills.remove(&id);
                release(&mut locks, id);
            }
            WriteMsg::Rewrite(path, meta) => {
                if let Err(e) = store::rewrite_header(&path, &meta) {
                    log::warn!("cache: updating {} after a 304 failed: {e}", path.display());
                }
            }
        }
    }
}

impl Writer {
    /// Start the thread.
    pub fn start() -> io::Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        std::thread::Builder::new()
            .name("sluice-cache".into())
            .spawn(move || run_writer(rx, q))?;
        Ok(Writer {
            tx,
            next_id: 1,
            batch: RefCell::new(Vec::new()),
            queued,
        })
    }

    /// Queue a message; false when `QUEUE` messages are waiting already.
    fn send(&self, m: WriteMsg) -> bool {
        let mut batch = self.batch.borrow_mut();
        if self.queued.load(Ordering::Acquire) + batch.len() >= QUEUE {
            return false;
        }
        batch.push(m);
        true
    }

    /// Hand the queued messages to the thread (the event loop calls this
    /// before it sleeps).
    pub fn flush(&self) {
        let batch = std::mem::take(&mut *self.batch.borrow_mut());
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        self.queued.fetch_add(n, Ordering::AcqRel);
        if let Err(mpsc::SendError(lost)) = self.tx.send(batch) {
            // The thread is gone: nothing will be stored; free the locks
            // it would have released.
            self.queued.fetch_sub(n, Ordering::AcqRel);
            for m in lost {
                if let WriteMsg::Begin { lock: Some(l), .. } = m {
                    let _ = std::fs::remove_file(l);
                }
            }
        }
    }

    /// Begin a fill; `None` when the queue is full.
    pub fn begin(
        &mut self,
        dir: PathBuf,
        meta: EntryMeta,
        expected: Option<u64>,
        path: PathBuf,
        lock: Option<PathBuf>,
    ) -> Option<u64> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(WriteMsg::Begin {
            id,
            dir,
            meta: Box::new(meta),
            expected,
            path,
            lock,
        })
        .then_some(id)
    }

    /// Queue body bytes; false when the fill had to be abandoned.
    pub fn data(&self, id: u64, bytes: &[u8]) -> bool {
        self.send(WriteMsg::Data(id, bytes.to_vec()))
    }

    /// Publish the entry.
    pub fn commit(&self, id: u64) {
        if !self.send(WriteMsg::Commit(id)) {
            // The writer forgets idle fills: the temp file is removed.
            log::warn!("cache: writer queue full, entry not stored");
        }
    }

    /// Drop the fill.
    pub fn abort(&self, id: u64) {
        let _ = self.send(WriteMsg::Abort(id));
    }

    /// Store a merged header after a 304 (header rewritten beside the old
    /// body, then renamed into place).
    pub fn rewrite(&self, path: PathBuf, meta: EntryMeta) {
        let _ = self.send(WriteMsg::Rewrite(path, Box::new(meta)));
    }
}

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
    path: PathBuf,
}

/// How often a hot entry's file gets its access time refreshed (for the manager's LRU).
const TOUCH_EVERY_MS: u64 = 60_000;

impl HotEntry {
    fn used(&self, now_ms: u64) {
        if now_ms.saturating_sub(self.touched_ms.get()) >= TOUCH_EVERY_MS {
            self.touched_ms.set(now_ms);
            crate::proxy::cache_manager::touch(&self.path);
        }
    }
}

/// The worker's map of hot entries, by entry md5.
#[derive(Default)]
pub struct Hot {
    map: HashMap<[u8; 16], Rc<HotEntry>>,
    bytes: usize,
    /// Keys the I/O pool found absent: (when, purge epoch). A miss is
    /// answered from here for `HOT_REVALIDATE_MS` without touching the disk.
    absent: HashMap<[u8; 16], (u64, u64)>,
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
        if let Some(h) = self.map.get(md5) {
            if now_ms.saturating_sub(h.checked_ms.get()) < HOT_REVALIDATE_MS
                && h.epoch.get() == epoch
                && h.meta.key == key
            {
                h.used(now_ms);
                return Ok(Some(Entry::Hot(h.clone())));
            }
        }
        if nowait && !self.map.contains_key(md5) {
            // Unknown here: the disk is asked by the I/O pool, never inline
            // (a path lookup can wait on a directory the writer is changing).
            if let Some(&(at, ep)) = self.absent.get(md5) {
                if ep == epoch && now_ms.saturating_sub(at) < HOT_REVALIDATE_MS {
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

    /// Take in what the I/O pool found for `md5`.
    pub fn install(&mut self, md5: [u8; 16], loaded: Loaded, now_ms: u64, epoch: u64) {
        if self.absent.len() > MAX_ABSENT {
            self.absent.clear();
            self.warmed.clear();
        }
        match loaded {
            Loaded::Entry(h) => {
                h.checked_ms.set(now_ms);
                h.touched_ms.set(now_ms);
                h.epoch.set(epoch);
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
                self.absent.insert(md5, (now_ms, epoch));
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

/// What a cached answer needs from the request and server.
pub struct HitParams<'a> {
    /// Method bytes.
    pub method: &'a [u8],
    /// Request header pairs.
    pub req_headers: &'a [(&'a [u8], &'a [u8])],
    /// Date header value.
    pub date: &'a [u8],
    /// Server header value.
    pub server: &'a [u8],
    /// Keep the client connection.
    pub keep_alive: bool,
    /// X-Cache-Status value.
    pub status_word: &'a [u8],
    /// `add_header` pairs.
    pub extra: &'a [(&'a [u8], &'a [u8])],
    /// `proxy_hide_header` names (lowercase).
    pub hide: &'a [String],
    /// Unix seconds now.
    pub now: i64,
}

/// Write the cached response (head and body) into `out`. Returns (status,
/// body bytes) for the access log.
pub fn write_hit(f: &Entry, p: &HitParams<'_>, out: &mut Vec<u8>) -> io::Result<(u16, u64)> {
    write_hit_with(f.meta(), f, p, out)
}

/// [`write_hit`] with a header other than the stored one (after a 304 merge).
pub fn write_hit_with(
    meta: &EntryMeta,
    f: &Entry,
    p: &HitParams<'_>,
    out: &mut Vec<u8>,
) -> io::Result<(u16, u64)> {
    let answer = revalidate::client_conditional(meta, p.method, p.req_headers);
    let (status, with_body) = match answer {
        revalidate::ClientAnswer::Full => (meta.status, p.method != b"HEAD"),
        revalidate::ClientAnswer::NotModified => (304, false),
        revalidate::ClientAnswer::PreconditionFailed => (412, false),
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    put_u64(out, status as u64);
    out.push(b' ');
    out.extend_from_slice(resp::reason(status).as_bytes());
    out.extend_from_slice(b"\r\nServer: ");
    out.extend_from_slice(p.server);
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(p.date);
    out.extend_from_slice(b"\r\n");
    if status == 304 {
        for (n, v) in revalidate::not_modified_headers(meta) {
            resp::header(out, n, v);
        }
    } else if status != 412 {
        // Our own Server and Date replace the origin's, as on a MISS.
        for (n, v) in &meta.headers {
            if n.eq_ignore_ascii_case(b"date")
                || n.eq_ignore_ascii_case(b"server")
                || p.hide.iter().any(|h| n.eq_ignore_ascii_case(h.as_bytes()))
            {
                continue;
            }
            resp::header(out, n, v);
        }
    }
    out.extend_from_slice(b"Age: ");
    put_u64(out, freshness::current_age(meta, p.now));
    out.extend_from_slice(b"\r\nX-Cache-Status: ");
    out.extend_from_slice(p.status_word);
    out.extend_from_slice(b"\r\n");
    for (n, v) in p.extra {
        resp::header(out, n, v);
    }
    if status != 304 && status != 204 && !(100..200).contains(&status) {
        out.extend_from_slice(b"Content-Length: ");
        put_u64(out, if status == 412 { 0 } else { meta.body_len });
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(if p.keep_alive {
        b"Connection: keep-alive\r\n\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
    if !with_body || status == 412 {
        return Ok((status, 0));
    }
    match f {
        Entry::Hot(h) => out.extend_from_slice(&h.body),
        Entry::Disk(d) => read_body_mode(d, out, true)?,
    }
    Ok((status, meta.body_len))
}

/// Result of trying to take a key's fill lock.
pub enum LockTry {
    /// This request fills the entry; release the lock file when done.
    Acquired(PathBuf),
    /// Another request (any worker) is filling it.
    Busy,
    /// Locks cannot be taken (the directory is unusable): go on unlocked.
    Unavailable,
}

/// Take the fill lock of `md5` in `zone`: a file created with O_EXCL in the
/// zone's tmp directory, so it is shared by every worker. A lock older than
/// `lock_age_ms` is considered abandoned and taken over (nginx's
/// `proxy_cache_lock_age`).
pub fn try_lock(zone: &CachePathConf, md5: &[u8; 16], lock_age_ms: u64) -> LockTry {
    let dir = zone.dir.join("tmp");
    let path = dir.join(format!("{}.lock", key::hex_string(md5)));
    for attempt in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => return LockTry::Acquired(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let age_ms = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .map_or(0, |d| d.as_millis() as u64);
                if age_ms < lock_age_ms || attempt > 0 {
                    return LockTry::Busy;
                }
                let _ = std::fs::remove_file(&path);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempt == 0 => {
                if std::fs::create_dir_all(&dir).is_err() {
                    return LockTry::Unavailable;
                }
            }
            Err(_) => return LockTry::Unavailable,
        }
    }
    LockTry::Busy
}

/// The worker's I/O threads: entry lookups (stat, open, read) that would
/// block the event loop run here; the result goes back to the worker, which
/// is woken through its `mio::Waker` and looks again.
///
/// Lookups wait in `pending` until the loop is about to sleep
/// ([`IoPool::flush`]), so a thread never preempts the loop mid-iteration;
/// a thread wakes the loop only when no wakeup is outstanding
/// ([`IoPool::take_done`] re-arms it).
pub struct IoPool {
    shared: Arc<IoShared>,
    pending: RefCell<Vec<IoJob>>,
    done: Receiver<IoDone>,
}

struct IoShared {
    jobs: Mutex<VecDeque<IoJob>>,
    ready: Condvar,
    /// A wakeup of the loop is outstanding (set by a thread, cleared by the loop).
    woken: AtomicBool,
}

/// A lookup for the I/O pool.
pub struct IoJob {
    /// Token of the session waiting for it.
    pub token: usize,
    /// Entry file.
    pub path: PathBuf,
    /// Entry md5 (its file name).
    pub md5: [u8; 16],
    /// The cache key the entry must carry.
    pub key: Vec<u8>,
}

/// A finished lookup.
pub struct IoDone {
    /// Token of the waiting session.
    pub token: usize,
    /// Entry md5.
    pub md5: [u8; 16],
    /// What was found.
    pub loaded: Loaded,
}

/// Threads per worker.
pub const IO_THREADS: usize = 2;

fn load(job: &IoJob) -> Loaded {
    let Some(found) = read_entry(&job.path, &job.key) else {
        return Loaded::Absent;
    };
    if found.meta.body_len > HOT_MAX_BODY {
        warm(&job.path);
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
        path: job.path.clone(),
        meta: found.meta,
        body,
    }))
}

impl IoPool {
    /// Start the threads; `waker` wakes the worker's poll.
    pub fn start(waker: Arc<mio::Waker>) -> io::Result<IoPool> {
        let (done_tx, done) = mpsc::channel();
        let shared = Arc::new(IoShared {
            jobs: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            woken: AtomicBool::new(false),
        });
        for i in 0..IO_THREADS {
            let shared = shared.clone();
            let done_tx = done_tx.clone();
            let waker = waker.clone();
            std::thread::Builder::new()
                .name(format!("sluice-io-{i}"))
                .spawn(move || io_thread(&shared, &done_tx, &waker))?;
        }
        Ok(IoPool {
            shared,
            pending: RefCell::new(Vec::new()),
            done,
        })
    }

    /// Queue a lookup (handed to the threads by [`IoPool::flush`]).
    pub fn submit(&self, job: IoJob) -> bool {
        self.pending.borrow_mut().push(job);
        true
    }

    /// Hand the queued lookups to the threads (the event loop calls this
    /// before it sleeps).
    pub fn flush(&self) {
        let mut pending = self.pending.borrow_mut();
        if pending.is_empty() {
            return;
        }
        let n = pending.len();
        if let Ok(mut jobs) = self.shared.jobs.lock() {
            jobs.extend(pending.drain(..));
        } else {
            // A thread panicked holding the lock: the sessions time out
            // and read inline.
            pending.clear();
            return;
        }
        if n == 1 {
            self.shared.ready.notify_one();
        } else {
            self.shared.ready.notify_all();
        }
    }

    /// Finished lookups (after the waker fired): re-arms the wakeup first,
    /// so a lookup finishing meanwhile wakes the loop again.
    pub fn take_done(&self, out: &mut Vec<IoDone>) {
        self.shared.woken.store(false, Ordering::SeqCst);
        while let Ok(d) = self.done.try_recv() {
            out.push(d);
        }
    }
}

fn io_thread(shared: &IoShared, done_tx: &Sender<IoDone>, waker: &mio::Waker) {
    loop {
        let job = {
            let Ok(mut jobs) = shared.jobs.lock() else {
                return;
            };
            loop {
                if let Some(j) = jobs.pop_front() {
                    break j;
                }
                jobs = match shared.ready.wait(jobs) {
                    Ok(j) => j,
                    Err(_) => return,
                };
            }
        };
        let loaded = load(&job);
        let done = IoDone {
            token: job.token,
            md5: job.md5,
            loaded,
        };
        if done_tx.send(done).is_err() {
            return; // the worker is gone
        }
        if !shared.woken.swap(true, Ordering::SeqCst) {
            let _ = waker.wake();
        }
    }
}

/// Read a whole file so its pages are cached.
fn warm(path: &Path) {
    use std::io::Read;
    if let Ok(mut f) = File::open(path) {
        let mut buf = vec![0u8; READ_CHUNK];
        while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
    }
}
