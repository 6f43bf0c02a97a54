//! Daemon plumbing: the locked pid file and detaching from the terminal.

use crate::sys::{self, Fork};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The pid file, locked (flock) for the master's lifetime.
pub struct PidFile {
    path: PathBuf,
    file: File,
}

impl PidFile {
    /// Open and lock; fails when another master holds it.
    pub fn lock(path: &Path) -> io::Result<PidFile> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("open() \"{}\" failed ({e})", path.display()),
                )
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = (&file).read_to_string(&mut pid);
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "already running (pid {}, pid file \"{}\" is locked)",
                        pid.trim(),
                        path.display()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        Ok(PidFile {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Write our pid (after daemonizing).
    pub fn write_pid(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        let mut f = &self.file;
        use std::io::Seek;
        f.seek(io::SeekFrom::Start(0))?;
        writeln!(f, "{}", sys::getpid())
    }

    /// Remove the file (master exit).
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Read the pid of a running master from its pid file.
pub fn read_pid(path: &Path) -> io::Result<i32> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("open() \"{}\" failed ({e})", path.display()),
        )
    })?;
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            io::Error::other(format!(
                "invalid PID number \"{}\" in \"{}\"",
                text.trim(),
                path.display()
            ))
        })
}

/// Detach: fork (the parent waits until the child says it is ready, then
/// exits), setsid, umask 022, stdio to /dev/null. Returns in the child with
/// a notifier to call once the pid file is written.
pub fn daemonize() -> io::Result<Ready> {
    let (rd, wr) = std::io::pipe()?;
    match sys::fork()? {
        Fork::Parent(_) => {
            drop(wr);
            let mut rd = rd;
            let mut b = [0u8; 1];
            let ok = matches!(rd.read(&mut b), Ok(1)) && b[0] == b'1';
            sys::exit_now(if ok { 0 } else { 1 });
        }
        Fork::Child => {
            drop(rd);
            sys::setsid()?;
            sys::set_umask(0o022);
            Ok(Ready { pipe: Some(wr) })
        }
    }
}

/// Tells the waiting parent the daemon is up.
pub struct Ready {
    pipe: Option<std::io::PipeWriter>,
}

impl Ready {
    /// Signal readiness and detach stdio.
    pub fn done(mut self) -> io::Result<()> {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(b"1");
        }
        sys::stdio_to_devnull()
    }
}
