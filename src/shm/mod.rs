//! Shared memory: regions mapped MAP_SHARED by the master before forking, so
//! every worker (and every later generation of workers) sees the same pages.
//! Access is through atomics only. `stats` holds the per-worker counters that
//! `status;` reports, and the
//! `proxy_cache_lock` and `proxy_cache_min_uses` tables (`fill_locks`,
//! `key_uses`), the shared TLS session cache (`tls_sessions`); `zone` the
//! file-backed zones of the traffic limits,
//! whose pages are a file's and so outlive every sluice process.

pub mod fill_locks;
pub mod key_uses;
pub mod stats;
pub mod tls_sessions;
pub mod zone;

use std::io;
use std::ptr::NonNull;

/// An anonymous MAP_SHARED region, zero-filled, page aligned.
pub struct ShmRegion {
    ptr: NonNull<u8>,
    len: usize,
    /// A file mapping's SIGBUS watch and the descriptor it re-extends the
    /// file through if the file is truncated under us (`sys::sigbus`).
    _watch: Option<(crate::sys::sigbus::Watch, std::fs::File)>,
}

// SAFETY: the region is plain shared memory accessed only through atomics by
// the typed views built on it; the pointer stays valid until Drop.
unsafe impl Send for ShmRegion {}
// SAFETY: as above.
unsafe impl Sync for ShmRegion {}

impl ShmRegion {
    /// Map `len` bytes of zeroed shared anonymous memory.
    pub fn anonymous(len: usize) -> io::Result<ShmRegion> {
        let len = len.max(1);
        // SAFETY: a fresh anonymous mapping aliases nothing; we check for
        // MAP_FAILED before using the pointer.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p as *mut u8).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(ShmRegion {
            ptr,
            len,
            _watch: None,
        })
    }

    /// Map the first `len` bytes of `file` MAP_SHARED, read-write. The file
    /// must be open for reading and writing and at least `len` bytes long;
    /// the mapping outlives `file` (and a later rename or unlink of it). A
    /// truncation of the file while mapped is repaired, not fatal
    /// (`sys::sigbus`).
    pub fn map_file(file: &std::fs::File, len: usize) -> io::Result<ShmRegion> {
        use std::os::fd::AsRawFd;
        if len == 0 || (file.metadata()?.len() as usize) < len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "file shorter than the mapping",
            ));
        }
        // SAFETY: a fresh mapping of a file we hold open; we check for
        // MAP_FAILED before using the pointer. Other processes may write the
        // same pages concurrently, which is why every view is atomics only.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p as *mut u8).ok_or_else(|| io::Error::other("mmap returned null"))?;
        let _watch = file.try_clone().ok().and_then(|dup| {
            crate::sys::sigbus::watch(p as usize, len, dup.as_raw_fd()).map(|w| (w, dup))
        });
        Ok(ShmRegion { ptr, len, _watch })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty (never, but clippy asks).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A typed view of `count` values of `T` at byte `offset`.
    ///
    /// `T` must be made only of atomics (valid when zeroed, shareable); the
    /// range must lie inside the region and be aligned for `T`.
    pub fn slice<T: AtomicsOnly>(&self, offset: usize, count: usize) -> &[T] {
        let size = std::mem::size_of::<T>() * count;
        assert!(offset + size <= self.len, "shm view out of bounds");
        assert_eq!(offset % std::mem::align_of::<T>(), 0, "shm view misaligned");
        // SAFETY: bounds and alignment are checked above; T is AtomicsOnly, so
        // an all-zero or concurrently updated bit pattern is a valid T and
        // shared references to it are sound across processes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset) as *const T, count) }
    }
}

impl Drop for ShmRegion {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap and are unmapped once.
        unsafe {
            libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len);
        }
    }
}

/// Where a 16-byte key (an MD5) lives in a table of `slots` (a power of
/// two), and its nonzero 32-bit fingerprint, taken from other bits than
/// the slot: the per-key tables (`fill_locks`, `key_uses`) share this.
pub(crate) fn key_slot(key: &[u8; 16], slots: usize) -> (usize, u32) {
    let lo = u64::from_le_bytes(key[..8].try_into().unwrap_or([0; 8]));
    let fp = u32::from_le_bytes(key[8..12].try_into().unwrap_or([0; 4])) | 1;
    ((lo as usize) & (slots - 1), fp)
}

/// Marker for `#[repr(C)]` structs made only of atomics, valid when zeroed.
///
/// # Safety
/// Implement only for types whose every field is an atomic integer (or an
/// array of them), so any bit pattern is valid and `&T` may be shared.
pub unsafe trait AtomicsOnly: Sync {}

// SAFETY: a plain atomic integer: every bit pattern is valid and it is Sync.
unsafe impl AtomicsOnly for std::sync::atomic::AtomicU64 {}
