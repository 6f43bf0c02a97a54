//! The log thread: one per worker, fed by a bounded queue of whole-line
//! batches, each written with one write(2) to a file opened O_APPEND.
//!
//! Nothing is ever dropped: when the queue is full the sender blocks (the
//! worker then waits on the disk, like a synchronous write). Emptied buffers
//! travel back to the worker over a second channel so steady state allocates
//! nothing. `Reopen` reopens every file (logrotate + SIGUSR1); `Flush` is
//! acknowledged once every earlier batch is on its way to the kernel.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::thread::JoinHandle;

/// Batches the queue holds before senders block.
pub const QUEUE_BATCHES: usize = 256;

/// A message to the log thread.
pub enum LogMsg {
    /// Append these bytes (whole lines) to file `idx`.
    Write(usize, Vec<u8>),
    /// Reopen every file.
    Reopen,
    /// Reply once everything sent earlier is written.
    Flush(SyncSender<()>),
    /// Write what is queued, then exit.
    Stop,
}

/// Open a log file for appending, creating it (0644) if missing.
pub fn open_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)?;
        }
    }
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
}

/// Handle to a running log thread.
pub struct LogThread {
    tx: SyncSender<LogMsg>,
    recycled: Receiver<Vec<u8>>,
    handle: Option<JoinHandle<()>>,
}

impl LogThread {
    /// Start a thread writing to `paths` (index = file id). A `None` path
    /// means stderr. Files that cannot be opened are reported to stderr and
    /// retried on `Reopen`.
    pub fn start(paths: Vec<Option<PathBuf>>) -> io::Result<LogThread> {
        let (tx, rx) = mpsc::sync_channel::<LogMsg>(QUEUE_BATCHES);
        let (back_tx, back_rx) = mpsc::channel::<Vec<u8>>();
        let handle = std::thread::Builder::new()
            .name("sluice-log".into())
            .spawn(move || run(paths, rx, back_tx))?;
        Ok(LogThread {
            tx,
            recycled: back_rx,
            handle: Some(handle),
        })
    }

    /// A sender for other parts of the worker (the error logger).
    pub fn sender(&self) -> SyncSender<LogMsg> {
        self.tx.clone()
    }

    /// Queue a batch; blocks only when the queue is full.
    pub fn write(&self, idx: usize, batch: Vec<u8>) {
        match self.tx.try_send(LogMsg::Write(idx, batch)) {
            Ok(()) => {}
            Err(TrySendError::Full(msg)) => {
                // Never drop a line: wait for the log thread.
                let _ = self.tx.send(msg);
            }
            Err(TrySendError::Disconnected(LogMsg::Write(_, b))) => {
                // Log thread gone (should not happen): write to stderr.
                let _ = io::stderr().write_all(&b);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// An empty buffer to fill, reusing one the thread sent back if possible.
    pub fn buffer(&self) -> Vec<u8> {
        self.recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(16 * 1024))
    }

    /// Ask the thread to reopen its files.
    pub fn reopen(&self) {
        let _ = self.tx.send(LogMsg::Reopen);
    }

    /// Wait until everything queued so far has been written.
    pub fn flush(&self) {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if self.tx.send(LogMsg::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv();
        }
    }

    /// Write everything and stop the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.tx.send(LogMsg::Stop);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for LogThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn open_all(paths: &[Option<PathBuf>]) -> Vec<Option<File>> {
    paths
        .iter()
        .map(|p| match p {
            None => None,
            Some(p) => match open_append(p) {
                Ok(f) => Some(f),
                Err(e) => {
                    eprintln!("sluice: cannot open log {}: {e}", p.display());
                    None
                }
            },
        })
        .collect()
}

fn run(paths: Vec<Option<PathBuf>>, rx: Receiver<LogMsg>, back: Sender<Vec<u8>>) {
    let mut files = open_all(&paths);
    for msg in rx.iter() {
        match msg {
            LogMsg::Write(idx, mut batch) => {
                let res = match files.get_mut(idx) {
                    Some(Some(f)) => f.write_all(&batch),
                    _ => io::stderr().write_all(&batch),
                };
                if let Err(e) = res {
                    eprintln!("sluice: log write failed: {e}");
                }
                batch.clear();
                if batch.capacity() <= 1 << 20 {
                    let _ = back.send(batch);
                }
            }
            LogMsg::Reopen => files = open_all(&paths),
            LogMsg::Flush(ack) => {
                let _ = ack.send(());
            }
            LogMsg::Stop => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sluice-logtest-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn every_line_written_even_when_queue_overflows() {
        let d = tmp("overflow");
        let p = d.join("a.log");
        let t = LogThread::start(vec![Some(p.clone())]).unwrap();
        for i in 0..(QUEUE_BATCHES * 8) {
            let mut b = t.buffer();
            b.extend_from_slice(format!("line {i}\n").as_bytes());
            t.write(0, b);
        }
        t.stop();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), QUEUE_BATCHES * 8);
        assert!(text
            .lines()
            .enumerate()
            .all(|(i, l)| l == format!("line {i}")));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn reopen_follows_a_rotated_file() {
        let d = tmp("reopen");
        let p = d.join("a.log");
        let t = LogThread::start(vec![Some(p.clone())]).unwrap();
        t.write(0, b"before\n".to_vec());
        t.flush();
        std::fs::rename(&p, d.join("a.log.1")).unwrap();
        t.reopen();
        t.write(0, b"after\n".to_vec());
        t.stop();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "after\n");
        assert_eq!(
            std::fs::read_to_string(d.join("a.log.1")).unwrap(),
            "before\n"
        );
        std::fs::remove_dir_all(d).unwrap();
    }
}
