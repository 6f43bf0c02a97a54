//! What the Debian package ships (debian/), checked against the binary:
//! the default configuration passes `sluice -t`, and so does every example
//! it shows commented out; the unit, logrotate file and man page use only
//! options the command line has; `sluice -h` lists them all. The package
//! itself is built and installed by scripts/package-test.sh.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

const SHIPPED: &str = include_str!("../debian/sluice.conf");
const UNIT: &str = include_str!("../debian/sluice.service");
const LOGROTATE: &str = include_str!("../debian/logrotate");
const MAN: &str = include_str!("../debian/sluice.8");

/// The options `sluice` accepts (src/main.rs), as `-h` spells them.
const OPTIONS: &[&str] = &["-c", "-t", "-T", "-q", "-s", "-g", "-V", "-v", "-h", "-?"];

/// `text` made checkable here: with a `user` that exists on this machine
/// (the package creates `sluice`; a non-root `-t` ignores `user` anyway).
fn portable(text: &str) -> String {
    let has_sluice = nix::unistd::User::from_name("sluice")
        .ok()
        .flatten()
        .is_some();
    if has_sluice {
        text.to_string()
    } else {
        text.replace("\nuser sluice;", "\nuser nobody nogroup;")
    }
}

fn t(dir: &TempDir, text: &str, extra: &[&str]) -> CmdOutput {
    let conf = dir.write("sluice.conf", text);
    let mut args = vec!["-t", "-c", conf.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    run_sluice(dir.path(), &args, Duration::from_secs(10))
}

#[test]
fn the_shipped_config_passes_t_quietly() {
    let dir = TempDir::new("shipped");
    let out = t(&dir, &portable(SHIPPED), &[]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stderr.contains("test is successful"), "{}", out.stderr);
    // ExecStartPre's form: nothing printed when all is well.
    let out = t(&dir, &portable(SHIPPED), &["-q"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.stderr, "", "-q printed");
    // And -q does not hide an error.
    let out = t(
        &dir,
        &portable(SHIPPED).replace("worker_processes auto;", "worker_processes x;"),
        &["-q"],
    );
    assert!(!out.status.success());
    assert!(out.stderr.contains("sluice.conf:"), "{}", out.stderr);
    for block in [
        "events {",
        "http {",
        "server {",
        "location / {",
        "upstream app {",
        "map ",
        "proxy_cache_path",
        "limit_req_zone",
        "waiting_room_zone",
        "cluster ",
        "listen 443 ssl",
    ] {
        assert!(
            SHIPPED.contains(block),
            "the shipped config does not show {block}"
        );
    }
}

/// Every commented example of the shipped config, uncommented, with the
/// files it names made here.
#[test]
fn every_commented_example_of_the_shipped_config_is_valid() {
    let dir = TempDir::new("shipped-full");
    let tls = make_cert(dir.path(), "site", &["example.com"]);
    let keys = dir.write("wr.keys", "k1 0123456789abcdef0123456789abcdef\n");
    set_mode(&keys, 0o600);
    std::fs::create_dir_all(dir.join("sites")).unwrap();
    let mut full = String::new();
    let mut uncommented = 0;
    for line in portable(SHIPPED).lines() {
        let indent = line.len() - line.trim_start().len();
        match line.trim_start().strip_prefix("#   ") {
            Some(rest) => {
                uncommented += 1;
                full.push_str(&" ".repeat(indent));
                full.push_str(rest);
            }
            None => full.push_str(line),
        }
        full.push('\n');
    }
    assert!(uncommented > 30, "only {uncommented} example lines");
    let full = full
        .replace("/etc/sluice/waiting-room.keys", keys.to_str().unwrap())
        .replace("/etc/ssl/certs/example.com.pem", tls.cert.to_str().unwrap())
        .replace(
            "/etc/ssl/private/example.com.key",
            tls.key.to_str().unwrap(),
        )
        .replace(
            "/etc/sluice/sites-enabled/*",
            &format!("{}/sites/*", dir.path().display()),
        );
    let out = t(&dir, &full, &[]);
    assert!(out.status.success(), "{}\n{full}", out.stderr);
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn help_man_page_unit_and_logrotate_agree_with_the_command_line() {
    let dir = TempDir::new("help");
    let out = run_sluice(dir.path(), &["-h"], Duration::from_secs(10));
    assert!(out.status.success());
    for o in OPTIONS {
        assert!(
            out.stdout.contains(o),
            "-h does not list {o}:\n{}",
            out.stdout
        );
        // roff writes a dash as \-.
        let roff = o.replace('-', "\\-");
        assert!(
            MAN.contains(&format!(".B {roff}"))
                || MAN.contains(&format!(".BI {roff}"))
                || MAN.contains(&format!(".BR {roff}"))
                || MAN.contains(&format!("\", \" {roff}")),
            "the man page does not document {o}"
        );
    }
    for sig in ["reload", "quit", "stop", "reopen"] {
        assert!(out.stdout.contains(sig), "-h: -s {sig}");
    }
    // The commands the unit and logrotate run.
    let exec: Vec<&str> = UNIT
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .filter(|(k, _)| k.starts_with("Exec"))
                .map(|(_, v)| v)
        })
        .collect();
    for want in [
        "/usr/sbin/sluice -t -q",
        "/usr/sbin/sluice",
        "/usr/sbin/sluice -s reload",
        "/usr/sbin/sluice -s quit",
    ] {
        assert!(exec.contains(&want), "unit lacks {want}: {exec:?}");
    }
    assert!(UNIT.contains("Type=forking") && UNIT.contains("PIDFile=/run/sluice.pid"));
    assert!(
        SHIPPED.contains("\npid /run/sluice.pid;"),
        "unit and config disagree on the pid file"
    );
    assert!(LOGROTATE.contains("/usr/sbin/sluice -s reopen"));
    // `-s` with a master that is not running says so, with status 1.
    let conf = dir.write(
        "sluice.conf",
        format!(
            "pid {}/none.pid;\nevents {{}}\nhttp {{}}\n",
            dir.path().display()
        ),
    );
    for sig in ["reload", "quit", "stop", "reopen"] {
        let out = run_sluice(
            dir.path(),
            &["-c", conf.to_str().unwrap(), "-s", sig],
            Duration::from_secs(10),
        );
        assert_eq!(out.status.code(), Some(1), "-s {sig}: {}", out.stderr);
    }
    let out = run_sluice(
        dir.path(),
        &["-c", conf.to_str().unwrap(), "-s", "restart"],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
}
