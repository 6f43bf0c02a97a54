//! Typed resolution, the top of it: the main and `events` contexts, then
//! `http` (`resolve_http.rs`, which uses the feature resolvers). The
//! directive table and the value parsers are the leaf `values.rs`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::parse::Directive;
use super::resolve_http::{check, resolve_http};
use super::types::{AcceptMode, Config, ErrorLogConf, EventsConf};
use super::values::*;
use super::ConfigError;

/// Resolves the main-context directives (file ones, then `-g` ones) of the
/// config whose absolute path is `file`.
pub(crate) fn resolve(main: &[Directive], file: &Path) -> Result<Config, ConfigError> {
    let conf_dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut seen = HashSet::new();
    let mut worker_processes = 1;
    let mut daemon = true;
    let mut pid_path = PathBuf::from("/run/sluice.pid");
    let mut error_log = ErrorLogConf {
        path: None,
        level: log::LevelFilter::Error,
    };
    let mut worker_shutdown_timeout_ms = 10_000;
    let mut state_dir = PathBuf::from("/var/lib/sluice");
    let mut worker_rlimit_nofile = None;
    let mut user = None;
    let mut events = None;
    let mut http = None;
    for d in main {
        check(d, MAIN, &mut seen)?;
        if super::resolve_compat::apply(d, MAIN)? {
            continue;
        }
        let v = arg0(d);
        match d.name.as_str() {
            "worker_processes" => {
                worker_processes = if v == "auto" {
                    std::thread::available_parallelism().map_or(1, |n| n.get())
                } else {
                    positive(d, v)?
                };
            }
            "daemon" => daemon = flag(d)?,
            "pid" => pid_path = path_arg(d, &conf_dir, v)?,
            "error_log" => error_log = resolve_error_log(d, &conf_dir)?,
            "worker_shutdown_timeout" => worker_shutdown_timeout_ms = duration(d, v)?,
            "state_dir" => state_dir = path_arg(d, &conf_dir, v)?,
            "worker_rlimit_nofile" => worker_rlimit_nofile = Some(positive(d, v)? as u64),
            "user" => user = resolve_user(d)?,
            "events" => events = Some(resolve_events(d)?),
            "http" => http = Some(resolve_http(d.children(), &conf_dir)?),
            _ => return Err(not_allowed(d)),
        }
    }
    let missing = |what: &str| ConfigError {
        file: file.to_path_buf(),
        line: 0,
        message: format!("no \"{what}\" section in configuration"),
    };
    Ok(Config {
        file: file.to_path_buf(),
        worker_processes,
        daemon,
        pid_path,
        error_log,
        worker_shutdown_timeout_ms,
        state_dir,
        worker_rlimit_nofile,
        user,
        events: events.ok_or_else(|| missing("events"))?,
        http: http.ok_or_else(|| missing("http"))?,
    })
}

/// `user USER [GROUP];` as nginx reads it: only a root master can change
/// user, so otherwise it is ignored with a warning; GROUP defaults to the
/// group named like USER; both names must exist.
fn resolve_user(d: &Directive) -> Result<Option<crate::sys::Account>, ConfigError> {
    if crate::sys::geteuid() != 0 {
        log::warn!(
            "{}:{}: the \"user\" directive makes sense only if the master process runs with super-user privileges, ignored",
            d.file.display(),
            d.line
        );
        return Ok(None);
    }
    let name = arg0(d);
    let group = d.args.get(1).map_or(name, |g| g.as_str());
    let uid = crate::sys::user_uid(name)
        .map_err(|e| d.error(format!("getpwnam(\"{name}\") failed ({e})")))?
        .ok_or_else(|| d.error(format!("getpwnam(\"{name}\") failed: no such user")))?;
    let gid = crate::sys::group_gid(group)
        .map_err(|e| d.error(format!("getgrnam(\"{group}\") failed ({e})")))?
        .ok_or_else(|| d.error(format!("getgrnam(\"{group}\") failed: no such group")))?;
    Ok(Some(crate::sys::Account {
        name: name.to_string(),
        uid,
        gid,
    }))
}

/// `error_log FILE|stderr [level];`
fn resolve_error_log(d: &Directive, conf_dir: &Path) -> Result<ErrorLogConf, ConfigError> {
    use log::LevelFilter;
    let v = arg0(d);
    if v.starts_with("syslog:") || v.starts_with("memory:") {
        return Err(d.error(format!("\"{v}\" error logs are not supported")));
    }
    let path = match v {
        "stderr" => None,
        _ => Some(path_arg(d, conf_dir, v)?),
    };
    let level = match d.args.get(1).map(String::as_str) {
        None | Some("error" | "crit" | "alert" | "emerg") => LevelFilter::Error,
        Some("debug") => LevelFilter::Debug,
        Some("info" | "notice") => LevelFilter::Info,
        Some("warn") => LevelFilter::Warn,
        Some(other) => return Err(d.error(format!("invalid log level \"{other}\""))),
    };
    Ok(ErrorLogConf { path, level })
}

/// `events { worker_connections N; accept_mode handoff|reuseport; }`
fn resolve_events(events: &Directive) -> Result<EventsConf, ConfigError> {
    let mut conf = EventsConf {
        worker_connections: 1024,
        accept_mode: AcceptMode::Handoff,
    };
    let mut seen = HashSet::new();
    for d in events.children() {
        check(d, EVENTS, &mut seen)?;
        if super::resolve_compat::apply(d, EVENTS)? {
            continue;
        }
        let v = arg0(d);
        match d.name.as_str() {
            "worker_connections" => conf.worker_connections = positive(d, v)?,
            "accept_mode" => {
                conf.accept_mode = match v {
                    "handoff" => AcceptMode::Handoff,
                    "reuseport" => AcceptMode::Reuseport,
                    _ => return Err(invalid_value(d, v)),
                }
            }
            _ => return Err(not_allowed(d)),
        }
    }
    Ok(conf)
}
