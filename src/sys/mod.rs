//! Every `unsafe` block and raw syscall of sluice lives here (and in `shm/`):
//! fork, setsid, stdio redirection, signal handlers feeding a self-pipe,
//! SCM_RIGHTS fd passing, sendfile, resource limits and the privilege drop
//! (initgroups, setgid, setuid). Each `unsafe` block carries a `// SAFETY:`
//! comment.

pub mod sigbus;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// Call a libc function returning -1 on error, turning it into `io::Result`.
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)* ) ) => {{
        // SAFETY: the caller passes valid arguments for this syscall; every use
        // below is reviewed at its call site.
        #[allow(unused_unsafe)]
        let res = unsafe { libc::$fn($($arg, )*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// Result of `fork`.
pub enum Fork {
    /// In the parent; the child's pid.
    Parent(i32),
    /// In the child.
    Child,
}

/// Threads of this process (entries of `/proc/self/task`).
pub fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// fork(2) for a single-threaded process (the master, before it starts
/// anything): refused with an error when other threads run, since the child
/// of a multi-threaded process may inherit a lock that no thread will ever
/// release (an allocator's, the log's).
pub fn fork() -> io::Result<Fork> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!(
            "fork refused: the process has {threads} threads"
        )));
    }
    // SAFETY: the process has one thread (checked just above; only this
    // thread could start another), so the child's copy is consistent.
    unsafe { fork_unchecked() }
}

/// fork(2) without the single-thread check.
///
/// # Safety
/// Other threads may hold locks the child inherits held: the child must use
/// only async-signal-safe operations (atomics on shared memory, `_exit`).
pub unsafe fn fork_unchecked() -> io::Result<Fork> {
    let pid = syscall!(fork())?;
    Ok(if pid == 0 {
        Fork::Child
    } else {
        Fork::Parent(pid)
    })
}

/// setsid(2): detach from the controlling terminal.
pub fn setsid() -> io::Result<()> {
    syscall!(setsid()).map(|_| ())
}

/// Point stdin, stdout and stderr at /dev/null.
pub fn stdio_to_devnull() -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in 0..3 {
        syscall!(dup2(null.as_raw_fd(), fd))?;
    }
    Ok(())
}

/// Point stderr at `fd` (used so panics and early messages reach the error log).
pub fn redirect_stderr(fd: RawFd) -> io::Result<()> {
    syscall!(dup2(fd, 2)).map(|_| ())
}

/// umask(2).
pub fn set_umask(mask: u32) {
    // SAFETY: umask cannot fail and touches no memory.
    unsafe {
        libc::umask(mask as libc::mode_t);
    }
}

/// Ask the kernel to send `sig` to this process when its parent dies.
pub fn set_parent_death_signal(sig: i32) -> io::Result<()> {
    syscall!(prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0)).map(|_| ())
}

/// _exit(2): leave now, without running destructors or atexit handlers
/// (used by forked children that must not unwind into the parent's code).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// Current pid.
pub fn getpid() -> i32 {
    std::process::id() as i32
}

/// Parent pid.
pub fn getppid() -> i32 {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() }
}

/// kill(2); `Ok(false)` when the process does not exist.
pub fn kill(pid: i32, sig: i32) -> io::Result<bool> {
    match syscall!(kill(pid, sig)) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// exit(code)
    Exited(i32),
    /// killed by a signal
    Signaled(i32),
}

/// Reap one exited child without blocking; `None` when none is waiting.
pub fn reap_child() -> Option<(i32, ChildExit)> {
    let mut status: libc::c_int = 0;
    // SAFETY: status is a valid pointer for the duration of the call.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid <= 0 {
        return None;
    }
    let how = if libc::WIFEXITED(status) {
        ChildExit::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        ChildExit::Signaled(libc::WTERMSIG(status))
    } else {
        ChildExit::Exited(-1)
    };
    Some((pid, how))
}

/// Raise RLIMIT_NOFILE's soft limit to `want` (or to the hard limit when
/// `want` is `None`). Returns the new soft limit.
pub fn raise_nofile(want: Option<u64>) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid, writable rlimit.
    syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut lim))?;
    let target = match want {
        // Never lower what the operator already allowed.
        Some(n) => (n as libc::rlim_t).max(lim.rlim_cur),
        None => lim.rlim_max,
    };
    if target > lim.rlim_max {
        lim.rlim_max = target;
    }
    lim.rlim_cur = target;
    // SAFETY: lim is a valid rlimit.
    if syscall!(setrlimit(libc::RLIMIT_NOFILE, &lim)).is_err() {
        // Not privileged to raise the hard limit: settle for it.
        // SAFETY: as above.
        syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut lim))?;
        lim.rlim_cur = lim.rlim_max.min(target);
        // SAFETY: as above.
        syscall!(setrlimit(libc::RLIMIT_NOFILE, &lim))?;
    }
    Ok(lim.rlim_cur)
}

// ---------------------------------------------------------------------------
// Users and privileges
// ---------------------------------------------------------------------------

/// A user account, as the `user` directive names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name (for initgroups).
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Group id the workers run with.
    pub gid: u32,
}

/// geteuid(2).
pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// The uid of user `name` (getpwnam); `Ok(None)` when there is no such user.
pub fn user_uid(name: &str) -> io::Result<Option<u32>> {
    nix::unistd::User::from_name(name)
        .map(|u| u.map(|u| u.uid.as_raw()))
        .map_err(io::Error::from)
}

/// The gid of group `name` (getgrnam); `Ok(None)` when there is no such group.
pub fn group_gid(name: &str) -> io::Result<Option<u32>> {
    nix::unistd::Group::from_name(name)
        .map(|g| g.map(|g| g.gid.as_raw()))
        .map_err(io::Error::from)
}

/// Become `who` for good, in nginx's order: the supplementary groups
/// (initgroups, which calls setgroups), then the gid, then the uid — a
/// process that has given up its uid can no longer change its groups. Then
/// checks that root cannot be taken back.
///
/// Changing credentials clears the parent-death signal and the dumpable
/// flag: set PR_SET_PDEATHSIG after this.
pub fn drop_privileges(who: &Account) -> io::Result<()> {
    let name = std::ffi::CString::new(who.name.as_str())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name has a NUL byte"))?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call;
    // initgroups reads the group database and calls setgroups(2).
    let r = unsafe { libc::initgroups(name.as_ptr(), who.gid as libc::gid_t) };
    if r == -1 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("initgroups({}, {}) failed ({e})", who.name, who.gid),
        ));
    }
    // SAFETY: setgid takes a plain integer and touches no memory.
    if unsafe { libc::setgid(who.gid as libc::gid_t) } == -1 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("setgid({}) failed ({e})", who.gid),
        ));
    }
    // SAFETY: setuid takes a plain integer and touches no memory.
    if unsafe { libc::setuid(who.uid as libc::uid_t) } == -1 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("setuid({}) failed ({e})", who.uid),
        ));
    }
    // SAFETY: as above; this call must fail.
    if who.uid != 0 && unsafe { libc::setuid(0) } != -1 {
        return Err(io::Error::other("setuid(0) succeeded after the drop"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Signals -> self-pipe
// ---------------------------------------------------------------------------

static SIGNAL_PIPE_WR: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE_WR.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; b lives for the call. errno is
        // saved and restored so the interrupted code does not see ours.
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(fd, &b as *const u8 as *const libc::c_void, 1);
            *libc::__errno_location() = errno;
        }
    }
}

/// Create a fresh non-blocking self-pipe, route `signals` into it and ignore
/// SIGPIPE. Returns the read end; each byte read is a signal number. Calling it
/// again (in a forked child) replaces the previous pipe.
pub fn install_signal_pipe(signals: &[i32]) -> io::Result<OwnedFd> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid array of two ints.
    syscall!(pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC))?;
    // SAFETY: pipe2 just returned these two fds and nothing else owns them.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let old = SIGNAL_PIPE_WR.swap(wr.as_raw_fd(), Ordering::SeqCst);
    std::mem::forget(wr); // owned by the static from now on
    if old >= 0 {
        // SAFETY: `old` was the write end we stored earlier and nobody else owns it.
        unsafe {
            libc::close(old);
        }
    }
    for &sig in signals {
        set_handler(sig, on_signal as *const () as usize)?;
    }
    set_handler(libc::SIGPIPE, libc::SIG_IGN)?;
    Ok(rd)
}

/// Block every signal in the calling thread; returns the previous mask.
/// The master forks workers with signals blocked: a child inherits the
/// master's handler, which writes into the master's signal pipe, so a signal
/// reaching the child before it installs its own pipe would be read by the
/// master as its own (a worker's early SIGQUIT stopping the whole server).
pub fn block_signals() -> io::Result<nix::sys::signal::SigSet> {
    use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
    let mut old = SigSet::empty();
    sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )
    .map_err(io::Error::from)?;
    Ok(old)
}

/// Set the calling thread's signal mask to `mask` (after [`block_signals`]);
/// signals that arrived meanwhile are delivered now.
pub fn set_signal_mask(mask: &nix::sys::signal::SigSet) -> io::Result<()> {
    use nix::sys::signal::{sigprocmask, SigmaskHow};
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None).map_err(io::Error::from)
}

/// Restore the default disposition of `signals` (used by a child before exec-less work).
pub fn default_signals(signals: &[i32]) -> io::Result<()> {
    for &sig in signals {
        set_handler(sig, libc::SIG_DFL)?;
    }
    Ok(())
}

fn set_handler(sig: i32, handler: usize) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid starting value; we then set the
    // handler (a valid extern "C" fn or SIG_IGN/SIG_DFL), an empty mask and
    // SA_RESTART.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = libc::SA_RESTART;
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Drain the signal pipe into `out` (signal numbers, in arrival order).
pub fn read_signals(fd: RawFd, out: &mut Vec<i32>) {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: buf is valid for writes of buf.len() bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n <= 0 {
            return;
        }
        out.extend(buf[..n as usize].iter().map(|&b| b as i32));
    }
}

// ---------------------------------------------------------------------------
// fd passing over Unix sockets (SCM_RIGHTS)
// ---------------------------------------------------------------------------

/// Most fds sent in one message.
pub const MAX_FDS_PER_MSG: usize = 64;

/// A connected pair of non-blocking, close-on-exec SOCK_SEQPACKET sockets.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid array of two ints.
    syscall!(socketpair(
        libc::AF_UNIX,
        libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        0,
        fds.as_mut_ptr()
    ))?;
    // SAFETY: socketpair just returned these fds; we are their only owner.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[repr(C)]
union CmsgBuf {
    _align: libc::cmsghdr,
    buf: [u8; 512],
}

/// Send `payload` with `fds` attached in one message, without blocking.
/// `WouldBlock` when the peer's queue is full (nothing was sent).
pub fn send_fds(sock: RawFd, payload: &[u8], fds: &[RawFd]) -> io::Result<()> {
    assert!(fds.len() <= MAX_FDS_PER_MSG && !payload.is_empty());
    let fd_bytes = std::mem::size_of_val(fds);
    let mut cbuf = CmsgBuf { buf: [0; 512] };
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is valid. The control buffer is
    // large and aligned enough for one cmsghdr with MAX_FDS_PER_MSG fds
    // (CMSG_SPACE(256) < 512), and the CMSG_* macros only address inside it.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = cbuf.buf.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = libc::CMSG_SPACE(fd_bytes as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr() as *const u8,
                libc::CMSG_DATA(cmsg),
                fd_bytes,
            );
        }
        if libc::sendmsg(sock, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Receive one message into `payload`, appending the fds it carried to `fds`.
/// Returns the payload length; `Ok(0)` means the peer closed.
pub fn recv_fds(sock: RawFd, payload: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut cbuf = CmsgBuf { buf: [0; 512] };
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // SAFETY: as in send_fds; the kernel writes at most msg_controllen bytes
    // of control data, and we walk it only with the CMSG_* macros. Each fd
    // received is new and owned by nobody else, so OwnedFd may take it.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.buf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of::<CmsgBuf>() as _;
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC);
        if n == -1 {
            return Err(io::Error::last_os_error());
        }
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let len = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                let count = len / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    let mut fd: RawFd = -1;
                    std::ptr::copy_nonoverlapping(
                        data.add(i * std::mem::size_of::<RawFd>()),
                        &mut fd as *mut RawFd as *mut u8,
                        std::mem::size_of::<RawFd>(),
                    );
                    if fd >= 0 {
                        fds.push(OwnedFd::from_raw_fd(fd));
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        Ok(n as usize)
    }
}

// ---------------------------------------------------------------------------
// Sockets and files
// ---------------------------------------------------------------------------

/// sendfile(2) from `file` at `*offset` to `sock`, advancing `offset`.
pub fn sendfile(sock: RawFd, file: RawFd, offset: &mut u64, count: usize) -> io::Result<usize> {
    let mut off = *offset as libc::off_t;
    // SAFETY: off is a valid pointer for the call; the fds are the caller's.
    let n = syscall!(sendfile(sock, file, &mut off, count))?;
    *offset = off as u64;
    Ok(n as usize)
}

/// pread that never waits for the disk: preadv2(RWF_NOWAIT). `WouldBlock`
/// when the data is not in the page cache (the caller hands the read to an
/// I/O thread); a kernel or file system without RWF_NOWAIT falls back to
/// a plain pread.
pub fn pread_nowait(fd: RawFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: iov points at `buf`, valid for writes of buf.len() bytes for
    // the duration of the call.
    let n = unsafe { libc::preadv2(fd, &iov, 1, offset as libc::off_t, libc::RWF_NOWAIT) };
    if n >= 0 {
        return Ok(n as usize);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) => Err(io::Error::from(io::ErrorKind::WouldBlock)),
        Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            // SAFETY: as above; a plain positional read into `buf`.
            let n = unsafe {
                libc::pread(
                    fd,
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    offset as libc::off_t,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }
        _ => Err(e),
    }
}

/// shutdown(fd, SHUT_WR): send FIN, keep reading.
pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    syscall!(shutdown(fd, libc::SHUT_WR)).map(|_| ())
}

/// Set SO_LINGER {on, 0} so close() resets (used only for fast stop).
pub fn set_linger_zero(fd: RawFd) -> io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: l is a valid linger struct for the duration of the call.
    syscall!(setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_LINGER,
        &l as *const libc::linger as *const libc::c_void,
        std::mem::size_of::<libc::linger>() as libc::socklen_t
    ))
    .map(|_| ())
}

/// Fill `buf` with random bytes from the kernel (getrandom(2)).
pub fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is valid for writes of `rest.len()` bytes.
        let n = syscall!(getrandom(
            rest.as_mut_ptr() as *mut libc::c_void,
            rest.len(),
            0
        ));
        match n {
            Ok(n) => done += n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Put the calling thread in the `SCHED_IDLE` class: it runs only when no
/// normal thread wants its CPU, and a normal thread that wakes up preempts
/// it at once. For background threads (cache writer, cache manager) whose
/// work must never delay the event loop. No-op where the class is missing.
pub fn set_thread_background() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param for the call; pid 0 is the
        // calling thread, so no other task is affected.
        let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if r == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Number of online CPUs.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn background_thread_is_sched_idle() {
        let policy = std::thread::spawn(|| {
            set_thread_background().unwrap();
            // SAFETY: sched_getscheduler only reads the calling thread's policy.
            unsafe { libc::sched_getscheduler(0) }
        })
        .join()
        .unwrap();
        assert_eq!(policy, libc::SCHED_IDLE);
        // The calling thread keeps its own class.
        // SAFETY: as above.
        assert_ne!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_IDLE);
    }

    #[test]
    fn fork_is_refused_while_other_threads_run() {
        // Regression: `fork()` was a safe function whose contract
        // ("single-threaded caller") nothing checked.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        let e = match fork() {
            Err(e) => e,
            Ok(Fork::Child) => exit_now(9),
            Ok(Fork::Parent(_)) => panic!("fork ran with {} threads", thread_count().unwrap()),
        };
        assert!(e.to_string().contains("threads"), "{e}");
        assert!(thread_count().unwrap() >= 2);
        drop(tx);
        let _ = t.join();
    }

    #[test]
    fn a_signal_to_a_child_before_its_own_pipe_is_not_the_parents() {
        // The master/worker pattern: the parent routes SIGUSR2 into its
        // pipe, forks with signals blocked; the child is signalled before it
        // has a pipe of its own. The parent must not read it; the child gets
        // it once its pipe is in place and the mask restored.
        let parent_rd = install_signal_pipe(&[libc::SIGUSR2]).unwrap();
        let mask = block_signals().unwrap();
        // SAFETY: the test harness runs other threads; the child only makes
        // system calls (sigaction, pipe, read) and `_exit`s.
        match unsafe { fork_unchecked() }.unwrap() {
            Fork::Child => {
                // SAFETY: raise only sends a signal to the calling thread.
                unsafe { libc::raise(libc::SIGUSR2) };
                let Ok(rd) = install_signal_pipe(&[libc::SIGUSR2]) else {
                    exit_now(3);
                };
                if set_signal_mask(&mask).is_err() {
                    exit_now(4);
                }
                let mut got = Vec::new();
                read_signals(rd.as_raw_fd(), &mut got);
                exit_now(if got == [libc::SIGUSR2] { 0 } else { 5 });
            }
            Fork::Parent(pid) => {
                set_signal_mask(&mask).unwrap();
                let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
                assert!(
                    matches!(st, nix::sys::wait::WaitStatus::Exited(_, 0)),
                    "child: {st:?}"
                );
                let mut got = Vec::new();
                read_signals(parent_rd.as_raw_fd(), &mut got);
                assert!(
                    got.is_empty(),
                    "the parent read its child's signal: {got:?}"
                );
            }
        }
    }

    #[test]
    fn fds_cross_a_seqpacket_pair() {
        let (a, b) = seqpacket_pair().unwrap();
        let f1 = std::fs::File::open("/dev/null").unwrap();
        let f2 = std::fs::File::open("/dev/zero").unwrap();
        send_fds(a.as_raw_fd(), &[7, 9], &[f1.as_raw_fd(), f2.as_raw_fd()]).unwrap();
        let mut payload = [0u8; 16];
        let mut got = Vec::new();
        let n = recv_fds(b.as_raw_fd(), &mut payload, &mut got).unwrap();
        assert_eq!(&payload[..n], &[7, 9]);
        assert_eq!(got.len(), 2);
        // The received fd reads zeros: it is /dev/zero.
        let mut z = std::fs::File::from(got.pop().unwrap());
        let mut buf = [1u8; 4];
        std::io::Read::read_exact(&mut z, &mut buf).unwrap();
        assert_eq!(buf, [0; 4]);
    }

    #[test]
    fn recv_on_empty_pair_would_block_and_eof_after_close() {
        let (a, b) = seqpacket_pair().unwrap();
        let mut payload = [0u8; 16];
        let mut got = Vec::new();
        let e = recv_fds(b.as_raw_fd(), &mut payload, &mut got).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(a);
        assert_eq!(recv_fds(b.as_raw_fd(), &mut payload, &mut got).unwrap(), 0);
    }

    #[test]
    fn pread_nowait_reads_cached_pages() {
        let p = std::env::temp_dir().join(format!("sluice-pread-{}", std::process::id()));
        std::fs::write(&p, b"hello world").unwrap();
        let f = std::fs::File::open(&p).unwrap();
        let mut buf = [0u8; 5];
        // Just written: the pages are cached, so the read never blocks.
        let n = pread_nowait(f.as_raw_fd(), &mut buf, 6).unwrap();
        assert_eq!(&buf[..n], b"world");
        std::fs::remove_file(&p).unwrap();
    }
}
