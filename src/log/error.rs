//! The error log behind the `log` facade, in nginx's line shape:
//! `2026/11/23 10:44:26 [error] 1234#0: message`.
//!
//! env_logger formats; the bytes go to a swappable sink: stderr before the
//! config is known, the error log file (synchronously) in the master, and the
//! worker's log thread in a worker. The master is single-threaded, so the sink
//! mutex is never held across fork.

use super::writer::{open_append, LogMsg};
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::Mutex;

enum Sink {
    Stderr,
    File(File),
    Queue(SyncSender<LogMsg>, usize),
}

static SINK: Mutex<Sink> = Mutex::new(Sink::Stderr);
static PATH: Mutex<Option<PathBuf>> = Mutex::new(None);
static WORKER_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct SinkWriter;

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut sink = SINK.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *sink {
            Sink::Stderr => io::stderr().write_all(buf)?,
            Sink::File(f) => f.write_all(buf)?,
            Sink::Queue(tx, idx) => {
                let _ = tx.send(LogMsg::Write(*idx, buf.to_vec()));
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Install the global logger (once per process, before forking).
pub fn init() {
    let mut b = env_logger::Builder::new();
    b.filter_level(log::LevelFilter::Trace)
        .target(env_logger::Target::Pipe(Box::new(SinkWriter)))
        .format(|buf, record| {
            let mut t = [0u8; 19];
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            crate::util::httpdate::format_error_log_time(now, &mut t);
            let level = match record.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warn",
                log::Level::Info => "notice",
                log::Level::Debug => "info",
                log::Level::Trace => "debug",
            };
            writeln!(
                buf,
                "{} [{}] {}#{}: {}",
                String::from_utf8_lossy(&t),
                level,
                std::process::id(),
                WORKER_ID.load(std::sync::atomic::Ordering::Relaxed),
                record.args()
            )
        });
    let logger = b.build();
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// Set the minimum level written.
pub fn set_level(level: log::LevelFilter) {
    log::set_max_level(level);
}

/// Master: write to `path` (None = stderr) synchronously.
pub fn use_file(path: Option<PathBuf>) -> io::Result<()> {
    let sink = match &path {
        Some(p) => Sink::File(open_append(p)?),
        None => Sink::Stderr,
    };
    *SINK.lock().unwrap_or_else(|e| e.into_inner()) = sink;
    *PATH.lock().unwrap_or_else(|e| e.into_inner()) = path;
    Ok(())
}

/// Master: reopen the error log file (SIGUSR1).
pub fn reopen() -> io::Result<()> {
    let path = PATH.lock().unwrap_or_else(|e| e.into_inner()).clone();
    use_file(path)
}

/// Worker: send lines to the log thread's file `idx`.
pub fn use_queue(tx: SyncSender<LogMsg>, idx: usize, worker_id: usize) {
    WORKER_ID.store(worker_id, std::sync::atomic::Ordering::Relaxed);
    *SINK.lock().unwrap_or_else(|e| e.into_inner()) = Sink::Queue(tx, idx);
}

/// Worker exit: back to stderr so nothing is queued to a stopped thread.
pub fn use_stderr() {
    *SINK.lock().unwrap_or_else(|e| e.into_inner()) = Sink::Stderr;
}
