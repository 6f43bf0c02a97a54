//! The worker's cache threads: the writer, which stores fills (temp file,
//! then rename) so a client never waits for the disk, and the I/O pool,
//! which looks entries up (stat, open, read) off the event loop. The loop
//! only queues work; it hands each queue over once per iteration, before it
//! sleeps, so a thread is woken at most once per iteration and never
//! preempts the loop halfway through one. A full writer queue abandons the
//! fill, never the response.

use crate::cache::entry::EntryMeta;
use crate::cache::lookup as cached;
use crate::cache::lookup::FillLock;
use crate::cache::store;
use crate::shm::stats::StatsZone;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Messages queued to the writer thread before fills are abandoned.
const QUEUE: usize = 4096;
/// A fill with no message for this long is abandoned by the writer.
const FILL_IDLE: Duration = Duration::from_secs(120);

enum WriteMsg {
    Begin {
        id: u64,
        dir: PathBuf,
        meta: Box<EntryMeta>,
        expected: Option<u64>,
        path: PathBuf,
        lock: Option<FillLock>,
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

fn run_writer(rx: Receiver<Vec<WriteMsg>>, queued: Arc<AtomicUsize>, stats: Arc<StatsZone>) {
    // Storing is best effort: the thread yields its CPU to the event loop
    // the moment the loop has work (under full load fills are abandoned
    // when the queue fills, never the response).
    if let Err(e) = crate::sys::set_thread_background() {
        log::debug!("cache writer: SCHED_IDLE not set: {e}");
    }
    let mut fills: HashMap<u64, (store::TempWriter, PathBuf, Instant)> = HashMap::new();
    // Fill locks to release once their fill is published or dropped.
    let mut locks: HashMap<u64, FillLock> = HashMap::new();
    let release = |locks: &mut HashMap<u64, FillLock>, id: u64| {
        locks.remove(&id);
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
                    match w.commit(&path) {
                        Ok(()) => {
                            // Workers that remember this entry as absent
                            // look at the disk again.
                            if let Some(md5) = path
                                .file_name()
                                .and_then(|n| crate::cache::key::from_hex(n.as_encoded_bytes()))
                            {
                                stats.key_uses().mark_stored(&md5);
                            }
                        }
                        Err(e) => {
                            log::warn!("cache: not stored {}: {e}", path.display());
                            if gate.on_error(&e, now) {
                                log::error!("cache: storing paused: {e}");
                            }
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
    /// Start the thread; `stats` holds the shared store sequences.
    pub fn start(stats: Arc<StatsZone>) -> io::Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        std::thread::Builder::new()
            .name("sluice-cache".into())
            .spawn(move || run_writer(rx, q, stats))?;
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

    /// Before the worker exits: hand over what is queued and wait (at most
    /// `limit`) until the thread has done it, so fills that completed are
    /// published and their locks freed rather than lost with the process.
    pub fn finish(&self, limit: Duration) {
        self.flush();
        let deadline = Instant::now() + limit;
        while self.queued.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                log::warn!(
                    "cache: exiting with {} writes not done",
                    self.queued.load(Ordering::Acquire)
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
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
            // The thread is gone: nothing will be stored; the locks it
            // would have released are freed as the messages drop.
            self.queued.fetch_sub(n, Ordering::AcqRel);
            drop(lost);
        }
    }

    /// Begin a fill; `None` when the queue is full.
    pub fn begin(
        &mut self,
        dir: PathBuf,
        meta: EntryMeta,
        expected: Option<u64>,
        path: PathBuf,
        lock: Option<FillLock>,
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

    /// Publish the entry. Queued even past the bound (one small message per
    /// fill): a fill whose bytes all got in is finished.
    pub fn commit(&self, id: u64) {
        self.batch.borrow_mut().push(WriteMsg::Commit(id));
    }

    /// Drop the fill. Queued even past the bound, so an abandoned fill's
    /// temp file and fill lock go at once, not when the writer next idles.
    pub fn abort(&self, id: u64) {
        self.batch.borrow_mut().push(WriteMsg::Abort(id));
    }

    /// Store a merged header after a 304 (header rewritten beside the old
    /// body, then renamed into place).
    pub fn rewrite(&self, path: PathBuf, meta: EntryMeta) {
        let _ = self.send(WriteMsg::Rewrite(path, Box::new(meta)));
    }
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
    /// The entry's store sequence when the lookup was asked for.
    pub seq: u64,
}

/// A finished lookup.
pub struct IoDone {
    /// Token of the waiting session.
    pub token: usize,
    /// Entry md5.
    pub md5: [u8; 16],
    /// What was found.
    pub loaded: cached::Loaded,
    /// [`IoJob::seq`].
    pub seq: u64,
}

/// Threads per worker.
pub const IO_THREADS: usize = 2;

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
        let loaded = cached::load(&job.path, &job.key);
        let done = IoDone {
            token: job.token,
            md5: job.md5,
            loaded,
            seq: job.seq,
        };
        if done_tx.send(done).is_err() {
            return; // the worker is gone
        }
        if !shared.woken.swap(true, Ordering::SeqCst) {
            let _ = waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_queue_bound_counts_messages_not_yet_flushed() {
        let w = Writer::start(Arc::new(StatsZone::new().unwrap())).unwrap();
        for _ in 0..QUEUE {
            assert!(w.data(1, b"x"));
        }
        // Nothing was handed over yet, but the batch counts.
        assert!(!w.data(1, b"x"), "the bound holds before a flush");
        w.flush();
        // The thread drains the batch (data for an unknown fill is dropped).
        let start = Instant::now();
        while w.queued.load(Ordering::Acquire) > 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "writer stuck");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(w.data(1, b"x"));
    }

    #[test]
    fn abort_is_queued_when_the_queue_is_full() {
        // Regression: an abandoned fill's abort was refused by the full
        // queue, leaving its temp file and lock until the writer idled 10 s.
        let w = Writer::start(Arc::new(StatsZone::new().unwrap())).unwrap();
        while w.data(1, b"x") {}
        w.abort(1);
        w.commit(2);
        assert!(matches!(w.batch.borrow().last(), Some(WriteMsg::Commit(2))));
        assert!(matches!(w.batch.borrow()[QUEUE], WriteMsg::Abort(1)));
    }

    #[test]
    fn finish_publishes_what_was_committed_and_moves_the_store_sequence() {
        let stats = Arc::new(StatsZone::new().unwrap());
        let dir = std::env::temp_dir().join(format!("sluice-finish-{}", std::process::id()));
        let md5 = [0xab; 16];
        let path = dir.join(crate::cache::key::hex_string(&md5));
        let seq = stats.key_uses().stored_seq(&md5);
        let mut w = Writer::start(stats.clone()).unwrap();
        let meta = EntryMeta {
            key: b"k".to_vec(),
            ..EntryMeta::default()
        };
        let id = w
            .begin(dir.clone(), meta, Some(4), path.clone(), None)
            .unwrap();
        assert!(w.data(id, b"body"));
        w.commit(id);
        // Nothing was flushed yet: finish hands it over and waits.
        w.finish(Duration::from_secs(10));
        assert!(path.exists(), "a committed fill was not published");
        assert_ne!(stats.key_uses().stored_seq(&md5), seq);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn wait_results(poll: &mut mio::Poll, io: &IoPool, want: usize) -> Vec<IoDone> {
        let mut events = mio::Events::with_capacity(8);
        let mut got = Vec::new();
        let start = Instant::now();
        while got.len() < want {
            assert!(start.elapsed() < Duration::from_secs(10), "no wakeup");
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            if !events.is_empty() {
                io.take_done(&mut got);
            }
        }
        got
    }

    #[test]
    fn io_pool_runs_lookups_after_flush_and_wakes_the_loop_again() {
        let mut poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(7)).unwrap());
        let io = IoPool::start(waker).unwrap();
        let dir = std::env::temp_dir().join(format!("sluice-iopool-{}", std::process::id()));
        let job = |token| IoJob {
            token,
            path: dir.join(format!("absent-{token}")),
            md5: [token as u8; 16],
            key: b"k".to_vec(),
            seq: 0,
        };
        for t in 1..=3 {
            assert!(io.submit(job(t)));
        }
        // Queued, not handed over: no thread runs and nothing wakes the loop.
        let mut events = mio::Events::with_capacity(8);
        poll.poll(&mut events, Some(Duration::from_millis(50)))
            .unwrap();
        assert!(events.is_empty());
        io.flush();
        let mut got = wait_results(&mut poll, &io, 3);
        got.sort_by_key(|d| d.token);
        assert_eq!(got.iter().map(|d| d.token).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(got
            .iter()
            .all(|d| matches!(d.loaded, cached::Loaded::Absent)));
        // take_done re-armed the wakeup: a later lookup wakes the loop again.
        io.submit(job(4));
        io.flush();
        let got = wait_results(&mut poll, &io, 1);
        assert_eq!(got[0].token, 4);
    }
}
