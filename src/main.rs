//! sluice command line (nginx-compatible):
//! `sluice [-c FILE] [-t|-T] [-q] [-s reload|quit|stop|reopen] [-g "DIRECTIVES"] [-V] [-h]`.

use sluice::config;
use sluice::process::{daemon, master};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "usage: sluice [-c FILE] [-t|-T] [-q] [-s reload|quit|stop|reopen] [-g \"DIRECTIVES\"] [-V] [-h]

  -c FILE     configuration file (default: conf/sluice.conf, else /etc/sluice/sluice.conf)
  -t          test the configuration and exit
  -T          the same as -t (the configuration is not dumped)
  -q          with -t: print errors only
  -s SIGNAL   send SIGNAL to the running master: reload, quit, stop, reopen
  -g TEXT     main-context directives applied after the file, e.g. \"daemon off;\"
  -V, -v      print the version and exit
  -h, -?      this help";

struct Args {
    conf: Option<PathBuf>,
    test: bool,
    quiet: bool,
    signal: Option<String>,
    extra: Option<String>,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut a = Args {
        conf: None,
        test: false,
        quiet: false,
        signal: None,
        extra: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-c" => a.conf = Some(it.next().ok_or("option \"-c\" requires file name")?.into()),
            "-t" | "-T" => a.test = true,
            "-q" => a.quiet = true,
            "-s" => a.signal = Some(it.next().ok_or("option \"-s\" requires parameter")?),
            "-g" => a.extra = Some(it.next().ok_or("option \"-g\" requires parameter")?),
            "-V" | "-v" => {
                print_out(&format!(
                    "sluice version: sluice/{}",
                    env!("CARGO_PKG_VERSION")
                ));
                return Ok(None);
            }
            "-h" | "-?" | "--help" => {
                print_out(USAGE);
                return Ok(None);
            }
            other => return Err(format!("invalid option: \"{other}\"")),
        }
    }
    Ok(Some(a))
}

/// A line to stdout; a closed pipe (`sluice -h | head -1`) is not an error.
fn print_out(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{text}");
}

fn default_conf() -> PathBuf {
    let local = PathBuf::from("conf/sluice.conf");
    if local.exists() {
        local
    } else {
        PathBuf::from("/etc/sluice/sluice.conf")
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let conf_path = args.conf.clone().unwrap_or_else(default_conf);
    let conf_path = std::path::absolute(&conf_path).unwrap_or(conf_path);
    sluice::log::error::init();
    if args.quiet && args.test {
        // nginx's -q: no notes, no "syntax is ok"; warnings and errors stay.
        sluice::log::error::set_level(log::LevelFilter::Warn);
    }
    let cfg = match config::load(&conf_path, args.extra.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sluice: [emerg] {e}");
            if args.test {
                eprintln!(
                    "sluice: configuration file {} test failed",
                    conf_path.display()
                );
            }
            return ExitCode::FAILURE;
        }
    };
    if args.test && args.quiet {
        return ExitCode::SUCCESS;
    }
    if args.test {
        eprintln!(
            "sluice: the configuration file {} syntax is ok",
            conf_path.display()
        );
        eprintln!(
            "sluice: configuration file {} test is successful",
            conf_path.display()
        );
        return ExitCode::SUCCESS;
    }
    if let Some(sig) = args.signal {
        return send_signal(&cfg, &sig);
    }
    match start(cfg, conf_path, args.extra) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: [emerg] {e}");
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn send_signal(cfg: &config::Config, name: &str) -> ExitCode {
    let sig = match name {
        "reload" => libc::SIGHUP,
        "quit" => libc::SIGQUIT,
        "stop" => libc::SIGTERM,
        "reopen" => libc::SIGUSR1,
        _ => {
            eprintln!("sluice: invalid option: \"-s {name}\"");
            return ExitCode::from(2);
        }
    };
    let pid = match daemon::read_pid(&cfg.pid_path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sluice: [error] {e}");
            return ExitCode::FAILURE;
        }
    };
    match sluice::sys::kill(pid, sig) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("sluice: [error] kill({pid}, {sig}) failed (no such process)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("sluice: [error] kill({pid}, {sig}) failed ({e})");
            ExitCode::FAILURE
        }
    }
}

fn start(cfg: config::Config, conf_path: PathBuf, extra: Option<String>) -> std::io::Result<()> {
    let cfg = Arc::new(cfg);
    sluice::log::error::set_level(cfg.error_log.level);
    sluice::log::error::use_file(cfg.error_log.path.clone())
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot open error log: {e}")))?;
    let want = cfg.worker_rlimit_nofile.or(Some(
        (cfg.events.worker_connections as u64 * 2 + 64).max(1024),
    ));
    if let Err(e) = sluice::sys::raise_nofile(want) {
        log::warn!("cannot raise RLIMIT_NOFILE: {e}");
    }
    if let Err(e) = std::fs::create_dir_all(&cfg.state_dir) {
        log::warn!("state_dir {}: {e}", cfg.state_dir.display());
    }
    for l in &cfg.http.access_logs {
        sluice::log::writer::open_append(&l.path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("open() \"{}\" failed ({e})", l.path.display()),
            )
        })?;
    }
    // One ticket secret for every worker this master forks (reloads too).
    sluice::tls::tickets::init();
    let prepared = master::prepare(cfg.clone())?;
    let mut pid = daemon::PidFile::lock(&cfg.pid_path)?;
    let ready = if cfg.daemon {
        Some(daemon::daemonize()?)
    } else {
        eprintln!(
            "sluice: serving {} with {} workers (config {}); Ctrl-C stops",
            master::describe(&cfg),
            cfg.worker_processes,
            conf_path.display()
        );
        None
    };
    pid.write_pid()?;
    if let Some(r) = ready {
        r.done()?;
        if let Some(p) = &cfg.error_log.path {
            // Panics and stray prints of the daemon go to the error log.
            if let Ok(f) = sluice::log::writer::open_append(p) {
                use std::os::fd::AsRawFd;
                let _ = sluice::sys::redirect_stderr(f.as_raw_fd());
            }
        }
    }
    let res = master::run(prepared, conf_path, extra);
    pid.remove();
    res
}
