//! The command line: `-V`, `-t` (with `file:line` errors), `-s quit`, the
//! pid-file lock against a second master, and `-g "daemon off;"`.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

const CMD_TIMEOUT: Duration = Duration::from_secs(10);

/// Write `text` as `<dir>/<name>` and run `sluice -t -c` on it.
fn check_config(dir: &TempDir, name: &str, text: &str) -> CmdOutput {
    let path = dir.join(name);
    fs::write(&path, text).expect("write config");
    run_sluice(
        dir.path(),
        &["-t", "-c", path.to_str().expect("utf-8 path")],
        CMD_TIMEOUT,
    )
}

/// `-t` must fail and name `<file>:<line>: <message>`.
fn assert_config_error(text: &str, line: usize, message: &str) {
    let dir = TempDir::new("cli-t");
    let out = check_config(&dir, "bad.conf", text);
    assert_eq!(
        out.status.code(),
        Some(1),
        "-t must exit 1 on a bad config; stderr: {}",
        out.stderr
    );
    let want = format!("{}:{line}: {message}", dir.join("bad.conf").display());
    assert!(
        out.stderr.contains(&want),
        "-t stderr lacks {want:?}:\n{}",
        out.stderr
    );
    assert!(out.stderr.contains("test failed"), "{}", out.stderr);
}

/// A minimal valid config with `server_body` inside `server { }` at line 5.
fn minimal(server_body: &str) -> String {
    format!(
        "worker_processes 1;\nevents {{\n}}\nhttp {{\n  server {{\n    listen 127.0.0.1:1;\n{server_body}  }}\n}}\n"
    )
}

#[test]
fn version_flag_prints_name_and_version() {
    let dir = TempDir::new("cli-v");
    let out = run_sluice(dir.path(), &["-V"], CMD_TIMEOUT);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("sluice/{}", env!("CARGO_PKG_VERSION"))),
        "-V output: {out:?}"
    );
}

#[test]
fn test_flag_accepts_a_valid_config() {
    let dir = TempDir::new("cli-ok");
    let conf = Conf::new().render(dir.path(), free_port());
    let out = check_config(&dir, "ok.conf", &conf);
    assert!(out.status.success(), "-t rejected a valid config: {out:?}");
    assert!(out.stderr.contains("syntax is ok"), "{}", out.stderr);
    assert!(out.stderr.contains("test is successful"), "{}", out.stderr);
    assert!(
        !dir.join("sluice.pid").exists(),
        "-t must not start a server"
    );
}

#[test]
fn test_flag_accepts_the_shipped_example_config() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/sluice.conf");
    let dir = TempDir::new("cli-example");
    let out = run_sluice(dir.path(), &["-t", "-c", conf], CMD_TIMEOUT);
    assert!(out.status.success(), "conf/sluice.conf: {out:?}");
}

#[test]
fn test_flag_reports_unknown_directive_with_file_and_line() {
    assert_config_error(
        &minimal("    bogus_directive on;\n"),
        7,
        "unknown directive \"bogus_directive\"",
    );
}

#[test]
fn test_flag_reports_directive_in_wrong_context() {
    let text = format!("{}root /tmp;\n", minimal(""));
    assert_config_error(&text, 9, "\"root\" directive is not allowed here");
}

#[test]
fn test_flag_reports_bad_value() {
    let text = "worker_processes 1;\nevents {\n  worker_connections abc;\n}\nhttp {\n}\n";
    assert_config_error(
        text,
        3,
        "invalid value \"abc\" in \"worker_connections\" directive",
    );
}

#[test]
fn test_flag_reports_missing_semicolon_before_block() {
    let text = "worker_processes 1\nevents {\n}\nhttp {\n}\n";
    assert_config_error(
        text,
        1,
        "directive \"worker_processes\" is not terminated by \";\"",
    );
}

#[test]
fn test_flag_reports_missing_semicolon_before_closing_brace() {
    // The directive runs into the "}" on the next line, as in nginx.
    assert_config_error(
        &minimal("    keepalive_timeout 5s\n"),
        8,
        "unexpected \"}\"",
    );
}

#[test]
fn test_flag_reports_duplicate_listen() {
    assert_config_error(
        &minimal("    listen 127.0.0.1:1;\n"),
        7,
        "duplicate listen 127.0.0.1:1",
    );
}

#[test]
fn test_flag_reports_unterminated_block_at_end_of_file() {
    assert_config_error(
        "worker_processes 1;\nevents {\n}\nhttp {\n",
        4,
        "unexpected end of file, expecting \"}\"",
    );
}

#[test]
fn start_fails_with_message_on_bad_config_and_leaves_no_pid_file() {
    let dir = TempDir::new("cli-badstart");
    let path = dir.join("bad.conf");
    let text = format!(
        "pid {}/sluice.pid;\n{}",
        dir.path().display(),
        minimal("    nope;\n")
    );
    fs::write(&path, text).expect("write config");
    let out = run_sluice(
        dir.path(),
        &["-c", path.to_str().expect("utf-8 path")],
        CMD_TIMEOUT,
    );
    assert!(!out.status.success(), "started with a bad config");
    assert!(
        out.stderr
            .contains(&format!("{}:8: unknown directive \"nope\"", path.display())),
        "{}",
        out.stderr
    );
    assert!(!dir.join("sluice.pid").exists());
}

#[test]
fn signal_quit_stops_the_daemon_and_removes_the_pid_file() {
    let srv = Server::start(Conf::new());
    assert_eq!(srv.get("/hello.txt").status, 200);
    let master = srv.master_pid();
    let conf = srv.conf_path();
    let out = run_sluice(
        srv.dir.path(),
        &["-c", conf.to_str().expect("utf-8 path"), "-s", "quit"],
        CMD_TIMEOUT,
    );
    assert!(out.status.success(), "-s quit failed: {out:?}");
    assert!(
        srv.wait_exit(Duration::from_secs(5)),
        "master {master} still running 5 s after -s quit"
    );
    assert!(
        wait_for(Duration::from_secs(2), || (!srv.pid_path().exists())
            .then_some(()))
        .is_some(),
        "pid file left behind after -s quit"
    );
    assert!(port_refuses(srv.port), "port still accepting after quit");
}

#[test]
fn signal_option_without_running_master_fails_with_message() {
    let dir = TempDir::new("cli-nomaster");
    let conf = Conf::new().render(dir.path(), free_port());
    let path = dir.join("sluice.conf");
    fs::write(&path, conf).expect("write config");
    let out = run_sluice(
        dir.path(),
        &["-c", path.to_str().expect("utf-8 path"), "-s", "reload"],
        CMD_TIMEOUT,
    );
    assert!(!out.status.success());
    assert!(out.stderr.contains("sluice.pid"), "{}", out.stderr);
}

#[test]
fn second_start_with_same_pid_file_fails_and_first_keeps_serving() {
    let srv = Server::start(Conf::new());
    let first = srv.master_pid();
    // Same pid file, another port: the pid-file lock must refuse it.
    let other_port = free_port();
    let text = Conf::new().render(srv.dir.path(), other_port);
    let path = srv.path("second.conf");
    fs::write(&path, text).expect("write config");
    let out = run_sluice(
        srv.dir.path(),
        &["-c", path.to_str().expect("utf-8 path")],
        CMD_TIMEOUT,
    );
    assert!(!out.status.success(), "second master started: {out:?}");
    assert!(
        out.stderr.contains("already running") && out.stderr.contains(&first.to_string()),
        "message should name the running master {first}: {}",
        out.stderr
    );
    assert_eq!(read_pid_file(&srv.pid_path()), Some(first));
    assert!(srv.master_alive());
    assert_eq!(srv.get("/hello.txt").status, 200);
    // The same config again: its port is taken, also a clear failure.
    let out = run_sluice(
        srv.dir.path(),
        &["-c", srv.conf_path().to_str().expect("utf-8 path")],
        CMD_TIMEOUT,
    );
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("in use") || out.stderr.contains("already running"),
        "{}",
        out.stderr
    );
    assert_eq!(read_pid_file(&srv.pid_path()), Some(first));
}

#[test]
fn foreground_mode_serves_and_stops_on_sigquit() {
    let dir = TempDir::new("cli-fg");
    make_site(&dir.join("www"));
    let port = free_port();
    let path = dir.join("sluice.conf");
    fs::write(
        &path,
        Conf::new().no_daemon_directive().render(dir.path(), port),
    )
    .expect("write config");
    let child = Command::new(BIN)
        .args([
            "-c",
            path.to_str().expect("utf-8 path"),
            "-g",
            "daemon off;",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sluice");
    let mut fg = Foreground { child };
    let pid = fg.child.id() as i32;
    wait_for(START_TIMEOUT, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("foreground sluice not listening after 10 s");
    // Listeners are bound before the pid file is written: wait for both.
    wait_for(START_TIMEOUT, || {
        (read_pid_file(&dir.join("sluice.pid")) == Some(pid)).then_some(())
    })
    .expect("in the foreground the pid file names the process we started");
    assert!(
        fg.child.try_wait().expect("try_wait").is_none(),
        "foreground sluice exited"
    );
    assert_eq!(wait_for_workers(pid, 2).len(), 2);
    assert_eq!(get(port, "/hello.txt").text(), HELLO_TXT);
    assert!(send_signal(pid, Signal::SIGQUIT));
    let status = wait_child(&mut fg.child, Duration::from_secs(5))
        .expect("foreground sluice still running 5 s after SIGQUIT");
    assert!(status.success(), "exit status after QUIT: {status}");
    assert!(!dir.join("sluice.pid").exists(), "pid file left behind");
}

fn wait_for_workers(master: i32, n: usize) -> Vec<i32> {
    wait_for(START_TIMEOUT, || {
        let w = children_of(master);
        (w.len() == n).then_some(w)
    })
    .unwrap_or_else(|| panic!("expected {n} workers of {master}"))
}
