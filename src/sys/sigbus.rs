//! Surviving a mapped file cut short under the running server.
//!
//! The limit zones are files mapped MAP_SHARED (their pages must outlive
//! every sluice process). If someone truncates such a file while it is
//! mapped — a stray `> file`, a backup restore — the next access to a page
//! past the new end raises SIGBUS, which would kill the worker and every
//! worker after it. [`watch`] records each file mapping with a duplicate of
//! its descriptor; the SIGBUS handler, when the faulting address is inside
//! a watched mapping, re-extends the file to the mapping's length (the lost
//! pages come back zeroed) and returns, so the access is retried and
//! succeeds. The zone then reads as empty where it was cut (its readers
//! treat zeroed slots as free), and a restart sets a damaged file aside.
//! A SIGBUS outside every watched mapping gets the default action.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

const SLOTS: usize = 64;

struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    fd: AtomicI32,
}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        fd: AtomicI32::new(-1),
    }
}; SLOTS];
static REPAIRS: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();

const MESSAGE: &[u8] = b"sluice: a mapped zone file was truncated while in use; \
re-extended it (its cut part reads as empty; a restart sets a damaged file aside)\n";

/// A watched mapping; unwatched on drop (before its descriptor closes).
#[derive(Debug)]
pub struct Watch(usize);

impl Drop for Watch {
    fn drop(&mut self) {
        let s = &TABLE[self.0];
        s.start.store(0, Ordering::SeqCst);
        s.len.store(0, Ordering::SeqCst);
        s.fd.store(-1, Ordering::SeqCst);
    }
}

/// Watch `len` bytes mapped at `start` from the file open as `fd` (which
/// the caller keeps open while the returned [`Watch`] lives). `None` when
/// every slot is taken (the mapping then goes unwatched).
pub fn watch(start: usize, len: usize, fd: RawFd) -> Option<Watch> {
    INSTALL.call_once(install);
    for (i, s) in TABLE.iter().enumerate() {
        if s.start
            .compare_exchange(0, usize::MAX, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            s.len.store(len, Ordering::SeqCst);
            s.fd.store(fd, Ordering::SeqCst);
            s.start.store(start, Ordering::SeqCst);
            return Some(Watch(i));
        }
    }
    None
}

/// How many truncated mappings this process has repaired.
pub fn repairs() -> u64 {
    REPAIRS.load(Ordering::Relaxed)
}

fn install() {
    // SAFETY: a zeroed sigaction is a valid starting value; we set an
    // extern "C" handler with the SA_SIGINFO signature and an empty mask.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        if libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()) == -1 {
            log::warn!(
                "SIGBUS handler not installed: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler;
    // si_addr is the faulting address for SIGBUS.
    let addr = unsafe { (*info).si_addr() } as usize;
    for s in &TABLE {
        let start = s.start.load(Ordering::SeqCst);
        let len = s.len.load(Ordering::SeqCst);
        let fd = s.fd.load(Ordering::SeqCst);
        if start == 0 || start == usize::MAX || fd < 0 || addr < start || addr - start >= len {
            continue;
        }
        // SAFETY: ftruncate and write are async-signal-safe; fd is open
        // while the slot is watched.
        let ok = unsafe { libc::ftruncate(fd, len as libc::off_t) } == 0;
        if ok {
            REPAIRS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: as above; a short or failed write to stderr is harmless.
            unsafe {
                libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
            }
            return; // the faulting access is retried on the restored pages
        }
        break;
    }
    // Not ours, or not repairable: the default action, on the retried access.
    // SAFETY: signal() with SIG_DFL is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
    }
}
