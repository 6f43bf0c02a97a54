//! Typed resolution, part 1: the directive table, nginx's generic checks
//! (context, block or not, argument count, duplicates), value parsers, and the
//! main and `events` contexts. `http`/`server`/`location` are in
//! `resolve_http.rs`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::parse::{absolute, Directive};
use super::resolve_http::resolve_http;
use super::types::{AcceptMode, Config, ErrorLogConf, EventsConf};
use super::ConfigError;
use crate::util::units::{parse_duration_ms, parse_number, parse_size};

/// Context bits: where a directive may appear.
pub(crate) const MAIN: u8 = 1;
/// Inside `events { }`.
pub(crate) const EVENTS: u8 = 1 << 1;
/// Inside `http { }`.
pub(crate) const HTTP: u8 = 1 << 2;
/// Inside `server { }`.
pub(crate) const SERVER: u8 = 1 << 3;
/// Inside `location { }`.
pub(crate) const LOCATION: u8 = 1 << 4;

/// http, server and location.
pub(crate) const HSL: u8 = HTTP | SERVER | LOCATION;
const MANY: usize = usize::MAX;

/// What the generic checks need to know about a directive.
pub(crate) struct Spec {
    name: &'static str,
    contexts: u8,
    block: bool,
    min_args: usize,
    max_args: usize,
    /// May appear several times in one block (values accumulate).
    repeatable: bool,
}

impl Spec {
    /// A `;` directive allowed once per block.
    pub(crate) const fn new(
        name: &'static str,
        contexts: u8,
        min_args: usize,
        max_args: usize,
    ) -> Spec {
        spec(name, contexts, min_args, max_args)
    }

    /// May appear several times in one block.
    pub(crate) const fn repeatable(self) -> Spec {
        repeatable(self)
    }
}

const fn spec(name: &'static str, contexts: u8, min_args: usize, max_args: usize) -> Spec {
    Spec {
        name,
        contexts,
        block: false,
        min_args,
        max_args,
        repeatable: false,
    }
}

const fn repeatable(mut s: Spec) -> Spec {
    s.repeatable = true;
    s
}

const fn block(mut s: Spec) -> Spec {
    s.block = true;
    s
}

/// Every directive sluice knows. `include` is expanded by `parse`.
const SPECS: &[Spec] = &[
    spec("worker_processes", MAIN, 1, 1),
    spec("daemon", MAIN, 1, 1),
    spec("pid", MAIN, 1, 1),
    spec("error_log", MAIN, 1, 2),
    spec("worker_shutdown_timeout", MAIN, 1, 1),
    spec("state_dir", MAIN, 1, 1),
    spec("worker_rlimit_nofile", MAIN, 1, 1),
    block(spec("events", MAIN, 0, 0)),
    block(spec("http", MAIN, 0, 0)),
    spec("worker_connections", EVENTS, 1, 1),
    spec("accept_mode", EVENTS, 1, 1),
    repeatable(block(spec("types", HTTP, 0, 0))),
    spec("default_type", HTTP, 1, 1),
    repeatable(block(spec("server", HTTP, 0, 0))),
    repeatable(spec("access_log", HSL, 1, MANY)),
    spec("root", HSL, 1, 1),
    repeatable(spec("index", HSL, 1, MANY)),
    spec("keepalive_timeout", HSL, 1, 2),
    spec("keepalive_requests", HSL, 1, 1),
    spec("client_body_timeout", HSL, 1, 1),
    spec("send_timeout", HSL, 1, 1),
    spec("client_max_body_size", HSL, 1, 1),
    spec("sendfile", HSL, 1, 1),
    spec("tcp_nodelay", HSL, 1, 1),
    spec("server_tokens", HSL, 1, 1),
    repeatable(spec("add_header", HSL, 2, 3)),
    spec("client_header_timeout", HTTP | SERVER, 1, 1),
    spec("large_client_header_buffers", HTTP | SERVER, 2, 2),
    repeatable(spec("listen", SERVER, 1, MANY)),
    repeatable(spec("server_name", SERVER, 1, MANY)),
    spec("return", SERVER | LOCATION, 1, 2),
    repeatable(block(spec("location", SERVER, 1, 2))),
    spec("status", LOCATION, 0, 0),
    repeatable(block(spec("upstream", HTTP, 1, 1))),
    spec("proxy_pass", LOCATION, 1, 1),
    repeatable(spec("proxy_set_header", HSL, 1, 2)),
    repeatable(spec("proxy_hide_header", HSL, 1, 1)),
    spec("proxy_http_version", HSL, 1, 1),
    spec("proxy_connect_timeout", HSL, 1, 1),
    spec("proxy_read_timeout", HSL, 1, 1),
    spec("proxy_send_timeout", HSL, 1, 1),
    spec("proxy_next_upstream", HSL, 1, MANY),
    spec("proxy_next_upstream_tries", HSL, 1, 1),
];

/// Directives sluice knows but does not implement yet: a precise error
/// rather than a setting that would be silently ignored.
const NOT_YET: &[&str] = &["proxy_cache_methods"];

/// nginx's generic checks for `d` appearing in context `ctx`, in nginx's
/// order: known, allowed here, `;` vs `{`, argument count, duplicate. `seen`
/// holds the non-repeatable names already used in this block.
pub(crate) fn check<'a>(
    d: &'a Directive,
    ctx: u8,
    seen: &mut HashSet<&'a str>,
) -> Result<(), ConfigError> {
    let name = d.name.as_str();
    if NOT_YET.contains(&name) {
        return Err(d.error(format!("\"{name}\" is not supported yet")));
    }
    let cache_spec = super::resolve_cache::CACHE_DIRECTIVES
        .iter()
        .find(|c| c.0 == name)
        .map(|&(name, contexts, min_args, max_args, repeatable)| Spec {
            name,
            contexts,
            block: false,
            min_args,
            max_args,
            repeatable,
        });
    let Some(spec) = SPECS
        .iter()
        .chain(super::resolve_limits::SPECS)
        .chain(super::resolve_cluster::SPECS)
        .chain(super::resolve_waiting_room::SPECS)
        .find(|s| s.name == name)
        .or(cache_spec.as_ref())
    else {
        return Err(d.error(format!("unknown directive \"{name}\"")));
    };
    if spec.contexts & ctx == 0 {
        return Err(not_allowed(d));
    }
    match (spec.block, d.block.is_some()) {
        (false, true) => {
            return Err(d.error(format!("directive \"{name}\" is not terminated by \";\"")))
        }
        (true, false) => return Err(d.error(format!("directive \"{name}\" has no opening \"{{\""))),
        _ => {}
    }
    if d.args.len() < spec.min_args || d.args.len() > spec.max_args {
        return Err(d.error(format!(
            "invalid number of arguments in \"{name}\" directive"
        )));
    }
    if !spec.repeatable && !seen.insert(name) {
        return Err(d.error(format!("\"{name}\" directive is duplicate")));
    }
    Ok(())
}

/// `"name" directive is not allowed here`.
pub(crate) fn not_allowed(d: &Directive) -> ConfigError {
    d.error(format!("\"{}\" directive is not allowed here", d.name))
}

/// `invalid value "v" in "name" directive`.
pub(crate) fn invalid_value(d: &Directive, v: &str) -> ConfigError {
    d.error(format!("invalid value \"{v}\" in \"{}\" directive", d.name))
}

/// The first argument (the generic check guarantees it exists).
pub(crate) fn arg0(d: &Directive) -> &str {
    d.args.first().map_or("", String::as_str)
}

/// `on|off` in the first argument.
pub(crate) fn flag(d: &Directive) -> Result<bool, ConfigError> {
    match arg0(d) {
        "on" => Ok(true),
        "off" => Ok(false),
        v => Err(d.error(format!(
            "invalid value \"{v}\" in \"{}\" directive, it must be \"on\" or \"off\"",
            d.name
        ))),
    }
}

/// A plain number.
pub(crate) fn number(d: &Directive, v: &str) -> Result<u64, ConfigError> {
    parse_number(v).ok_or_else(|| invalid_value(d, v))
}

/// A plain number that must be at least 1 and fit in `usize`.
pub(crate) fn positive(d: &Directive, v: &str) -> Result<usize, ConfigError> {
    number(d, v)?
        .try_into()
        .ok()
        .filter(|&n: &usize| n > 0)
        .ok_or_else(|| invalid_value(d, v))
}

/// A string with variables, compiled; an unknown variable is an error here.
pub(crate) fn template(d: &Directive, v: &str) -> Result<super::Template, ConfigError> {
    super::Template::compile(v).map_err(|m| d.error(m))
}

/// An nginx duration, in milliseconds.
pub(crate) fn duration(d: &Directive, v: &str) -> Result<u64, ConfigError> {
    parse_duration_ms(v).ok_or_else(|| invalid_value(d, v))
}

/// An nginx size, in bytes.
pub(crate) fn size(d: &Directive, v: &str) -> Result<u64, ConfigError> {
    parse_size(v).ok_or_else(|| invalid_value(d, v))
}

/// A non-empty path, made absolute against `base`.
pub(crate) fn path_arg(d: &Directive, base: &Path, v: &str) -> Result<PathBuf, ConfigError> {
    if v.is_empty() {
        return Err(invalid_value(d, v));
    }
    Ok(absolute(base, v))
}

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
    let mut events = None;
    let mut http = None;
    for d in main {
        check(d, MAIN, &mut seen)?;
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
        events: events.ok_or_else(|| missing("events"))?,
        http: http.ok_or_else(|| missing("http"))?,
    })
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
