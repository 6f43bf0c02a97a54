//! Running the binary: one-shot commands ([`run_sluice`], and
//! [`test_config`] for `-t` on a small config), a daemonized [`Server`]
//! stopped on drop, a [`Foreground`] process (sluice or nginx), and /proc
//! helpers for the master's workers.

use super::{exchange, free_port, get, request};
use super::{make_site, port_refuses, wait_for, Client, Conf, Response, TempDir};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::{self, File};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sluice");
/// Longest a start, a stop or a readiness wait may take.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Exit status and output of one finished `sluice` command.
#[derive(Debug)]
pub struct CmdOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Run `sluice ARGS` with stdout/stderr going to files in `dir` (a daemon
/// keeps no pipe of ours open); kill it after `timeout`.
pub fn run_sluice(dir: &Path, args: &[&str], timeout: Duration) -> CmdOutput {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let out_path = dir.join(format!("cmd-{n}.out"));
    let err_path = dir.join(format!("cmd-{n}.err"));
    let out = File::create(&out_path).expect("create stdout file");
    let err = File::create(&err_path).expect("create stderr file");
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn sluice");
    let status = wait_child(&mut child, timeout).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "`sluice {}` did not exit within {timeout:?}",
            args.join(" ")
        );
    });
    CmdOutput {
        status,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// `sluice -t` on a config of its own (in a fresh directory): one server on
/// a free port, `listen 127.0.0.1:PORT LISTEN_PARAMS;` on line 8 and the
/// server's other directives, `server`, from line 9.
pub fn test_config(tag: &str, listen_params: &str, server: &str) -> CmdOutput {
    let dir = TempDir::new(tag);
    let conf = dir.join("sluice.conf");
    fs::write(
        &conf,
        format!(
            "daemon off;\npid {d}/p;\nerror_log {d}/e.log;\nstate_dir {d}/s;\nevents {{ }}\nhttp {{\n  server {{\n    listen 127.0.0.1:{p} {listen_params};\n{server}\n  }}\n}}\n",
            d = dir.path().display(),
            p = free_port()
        ),
    )
    .expect("write sluice.conf");
    run_sluice(
        dir.path(),
        &["-t", "-c", conf.to_str().expect("utf-8 path")],
        Duration::from_secs(10),
    )
}

/// `out` is a refused config whose error is at `sluice.conf:LINE` and says `what`.
pub fn assert_conf_error(out: &CmdOutput, line: usize, what: &str) {
    assert!(!out.status.success(), "accepted: {}", out.stderr);
    assert!(
        out.stderr.contains(&format!("sluice.conf:{line}")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(what), "{}", out.stderr);
}

/// Wait for a child to exit, at most `timeout`.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `(state, ppid)` from /proc/PID/stat.
fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ..." — comm may hold spaces and parentheses.
    let rest = &s[s.rfind(')')? + 2..];
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    matches!(proc_stat(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

/// Live children of `pid`, sorted.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|&p| matches!(proc_stat(p), Some((s, pp)) if pp == pid && s != 'Z'))
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// Send a signal; false when the process is gone.
pub fn send_signal(pid: i32, sig: Signal) -> bool {
    kill(Pid::from_raw(pid), sig).is_ok()
}

/// Read a pid file.
pub fn read_pid_file(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A daemonized sluice started by a test. Stopped on drop, by the master's
/// pid it remembers (not the pid file, which may be gone by then).
pub struct Server {
    /// The test's directory: config, pid file, logs, `www/`, `state/`.
    pub dir: TempDir,
    /// The loopback port it listens on.
    pub port: u16,
    /// The config it was started with.
    pub conf: Conf,
    master: i32,
}

impl Server {
    /// [`Server::start_in`] a fresh directory.
    pub fn start(conf: Conf) -> Server {
        Server::start_in(TempDir::new("srv"), conf)
    }

    /// Make the site in `dir/www` (next to what the test put there), write
    /// `conf`, start sluice as a daemon and wait until the pid file names a
    /// live master and the port accepts connections. Retries with another
    /// port when the picked one was taken meanwhile.
    pub fn start_in(dir: TempDir, conf: Conf) -> Server {
        make_site(&dir.join("www"));
        let mut server = Server {
            dir,
            port: 0,
            conf,
            master: 0,
        };
        let mut last_err = String::new();
        for _ in 0..3 {
            server.port = free_port();
            server.write_conf(&server.conf);
            match server.launch() {
                Ok(()) => return server,
                Err(e) if e.contains("in use") => last_err = e,
                Err(e) => panic!("sluice failed to start: {e}"),
            }
        }
        panic!("sluice failed to start 3 times (ports taken?): {last_err}");
    }

    /// Run `sluice -c CONF`, then wait for a new live master in the pid
    /// file (remembered at once, for drop) and for the port.
    fn launch(&mut self) -> Result<(), String> {
        let conf_path = self.conf_path();
        let out = run_sluice(
            self.dir.path(),
            &["-c", conf_path.to_str().expect("utf-8 path")],
            START_TIMEOUT,
        );
        if !out.status.success() {
            return Err(format!("{}: {}", out.status, out.stderr));
        }
        let pid_path = self.pid_path();
        let old = self.master;
        self.master = wait_for(START_TIMEOUT, || {
            read_pid_file(&pid_path).filter(|&p| p != old && alive(p))
        })
        .unwrap_or_else(|| panic!("no live master in {} after 10 s", pid_path.display()));
        self.wait_listening();
        Ok(())
    }

    /// Start sluice again on the same config and port, after
    /// [`Server::quit`] or [`Server::kill9`].
    pub fn restart(&mut self) {
        assert!(
            !self.master_alive(),
            "master {} still runs; stop it first",
            self.master
        );
        assert!(
            wait_for(START_TIMEOUT, || port_refuses(self.port).then_some(())).is_some(),
            "port {} still accepting 10 s after the master exited",
            self.port
        );
        self.launch()
            .unwrap_or_else(|e| panic!("sluice failed to restart: {e}"));
    }

    fn wait_listening(&self) {
        let addr = self.addr();
        wait_for(START_TIMEOUT, || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        })
        .unwrap_or_else(|| panic!("port {} not accepting after 10 s", self.port));
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A path inside the server's directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// The config file.
    pub fn conf_path(&self) -> PathBuf {
        self.path("sluice.conf")
    }

    /// The pid file.
    pub fn pid_path(&self) -> PathBuf {
        self.path("sluice.pid")
    }

    /// Overwrite the config file with `text` (for reloads).
    pub fn write_conf_text(&self, text: &str) {
        fs::write(self.conf_path(), text).expect("write config");
    }

    /// Overwrite the config file with `conf` rendered for this server.
    pub fn write_conf(&self, conf: &Conf) {
        self.write_conf_text(&conf.render(self.dir.path(), self.port));
    }

    /// The master's pid as read from the pid file at start.
    pub fn master_pid(&self) -> i32 {
        self.master
    }

    /// Live worker pids (children of the master), sorted.
    pub fn worker_pids(&self) -> Vec<i32> {
        children_of(self.master)
    }

    /// Send `sig` to the master.
    pub fn signal(&self, sig: Signal) {
        assert!(
            send_signal(self.master, sig),
            "master {} is gone; cannot send {sig}",
            self.master
        );
    }

    /// Wait until exactly `n` workers run and none of them is in `old`.
    pub fn wait_new_workers(&self, n: usize, old: &[i32], timeout: Duration) -> Vec<i32> {
        wait_for(timeout, || {
            let w = self.worker_pids();
            (w.len() == n && w.iter().all(|p| !old.contains(p))).then_some(w)
        })
        .unwrap_or_else(|| {
            panic!(
                "expected {n} workers none of {old:?} within {timeout:?}, have {:?}",
                self.worker_pids()
            )
        })
    }

    /// Wait until exactly `n` workers run.
    pub fn wait_worker_count(&self, n: usize, timeout: Duration) -> Vec<i32> {
        self.wait_new_workers(n, &[], timeout)
    }

    /// SIGHUP and wait (10 s) for a new generation of `conf.workers`
    /// workers; returns their pids. Old workers may still be draining.
    pub fn reload(&self) -> Vec<i32> {
        let before = self.worker_pids();
        let n = self.conf.workers;
        self.signal(Signal::SIGHUP);
        wait_for(START_TIMEOUT, || {
            let new: Vec<i32> = self
                .worker_pids()
                .into_iter()
                .filter(|p| !before.contains(p))
                .collect();
            (new.len() == n).then_some(new)
        })
        .unwrap_or_else(|| {
            panic!(
                "no {n} new workers 10 s after SIGHUP (before {before:?}, now {:?}); error log:\n{}",
                self.worker_pids(),
                self.error_log()
            )
        })
    }

    /// [`Server::reload`], then wait (10 s) until the old workers have
    /// exited too: only the new generation runs.
    pub fn reload_and_drain(&self) -> Vec<i32> {
        let old = self.worker_pids();
        self.reload();
        self.wait_new_workers(self.conf.workers, &old, START_TIMEOUT)
    }

    /// Whether the master is still running.
    pub fn master_alive(&self) -> bool {
        alive(self.master)
    }

    /// Wait for the master to exit; true if it did within `timeout`.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        wait_for(timeout, || (!alive(self.master)).then_some(())).is_some()
    }

    /// SIGQUIT and wait for the master to exit (panics after 10 s).
    pub fn quit(&self) {
        self.signal(Signal::SIGQUIT);
        assert!(
            self.wait_exit(START_TIMEOUT),
            "master {} still running 10 s after QUIT",
            self.master
        );
    }

    /// `kill -9` the master and its workers (as a crash would), wait (10 s)
    /// until they are gone and the port refuses, and remove the stale pid
    /// file. Never panics (it is also the last resort of drop).
    pub fn kill9(&self) {
        let m = self.master;
        if m <= 0 {
            return;
        }
        let mut pids = children_of(m);
        pids.push(m);
        for &p in &pids {
            let _ = send_signal(p, Signal::SIGKILL);
        }
        let _ = wait_for(START_TIMEOUT, || {
            pids.iter().all(|&p| !alive(p)).then_some(())
        });
        let _ = fs::remove_file(self.pid_path());
        let _ = wait_for(START_TIMEOUT, || port_refuses(self.port).then_some(()));
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.path("error.log")).unwrap_or_default()
    }

    /// The error log once it contains `needle` (a log thread writes it, so
    /// a line may land a moment after the response); panics with the log
    /// after 10 s.
    pub fn wait_log(&self, needle: &str) -> String {
        wait_for(START_TIMEOUT, || {
            Some(self.error_log()).filter(|log| log.contains(needle))
        })
        .unwrap_or_else(|| panic!("no {needle:?} in the error log:\n{}", self.error_log()))
    }

    /// The access log so far.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.path("access.log")).unwrap_or_default()
    }

    /// A new keep-alive client connection.
    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    /// One `GET path` on a fresh connection (`Connection: close`).
    pub fn get(&self, path: &str) -> Response {
        get(self.port, path)
    }

    /// One `GET path` with `extra` header fields on a fresh connection.
    pub fn request(&self, path: &str, extra: &[(&str, &str)]) -> Response {
        request(self.port, path, extra)
    }

    /// Send raw bytes on a fresh connection and return all the server sent
    /// until it closed (or 5 s passed).
    pub fn exchange(&self, raw: &[u8]) -> Vec<u8> {
        exchange(self.port, raw)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let m = self.master;
        if m <= 0 || !alive(m) {
            return;
        }
        let _ = send_signal(m, Signal::SIGQUIT);
        if !self.wait_exit(Duration::from_secs(5)) {
            self.kill9();
        }
    }
}

/// A process started in the foreground (sluice with `-g "daemon off;"`, a
/// real nginx), stopped on drop by its pid: QUIT, up to 5 s, then SIGKILL
/// for it and its children.
pub struct Foreground {
    /// The process.
    pub child: Child,
}

impl Drop for Foreground {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = send_signal(pid, Signal::SIGQUIT);
        if wait_child(&mut self.child, Duration::from_secs(5)).is_none() {
            for c in children_of(pid) {
                let _ = send_signal(c, Signal::SIGKILL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `sluice -t` on a config whose `http` block is `http` (it starts on line
/// 4) fails with `file:LINE: MESSAGE`.
pub fn assert_t_fails(tag: &str, http: &str, line: usize, message: &str) {
    let dir = TempDir::new(tag);
    let conf = dir.join("bad.conf");
    std::fs::write(
        &conf,
        format!(
            "pid {d}/p.pid;\nerror_log {d}/e.log;\nevents {{}}\nhttp {{\n{http}\n}}\n",
            d = dir.path().display(),
        ),
    )
    .unwrap();
    let out = run_sluice(
        dir.path(),
        &["-t", "-c", conf.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let want = format!("{}:{line}: {message}", conf.display());
    assert!(out.stderr.contains(&want), "{}", out.stderr);
}
