//! nginx directives that only tune nginx's own internals: accepted, with a
//! note at `-t` saying what sluice does instead (so a real nginx
//! configuration moves over unchanged); and the modules sluice deliberately
//! does not implement, refused in words at their line.

use super::parse::Directive;
use super::values::{arg0, flag, Spec, EVENTS, HTTP, LOCATION, MAIN, SERVER};
use super::ConfigError;

const HSL: u8 = HTTP | SERVER | LOCATION;
const MANY: usize = 16;

/// The accepted directives, for the generic checks.
pub(super) const SPECS: &[Spec] = &[
    Spec::new("pcre_jit", MAIN, 1, 1),
    Spec::new("worker_cpu_affinity", MAIN, 1, MANY),
    Spec::new("worker_priority", MAIN, 1, 1),
    Spec::new("timer_resolution", MAIN, 1, 1),
    Spec::new("thread_pool", MAIN, 2, 3).repeatable(),
    Spec::new("multi_accept", EVENTS, 1, 1),
    Spec::new("use", EVENTS, 1, 1),
    Spec::new("accept_mutex", EVENTS, 1, 1),
    Spec::new("accept_mutex_delay", EVENTS, 1, 1),
    Spec::new("worker_aio_requests", EVENTS, 1, 1),
    Spec::new("tcp_nopush", HSL, 1, 1),
    Spec::new("types_hash_max_size", HSL, 1, 1),
    Spec::new("types_hash_bucket_size", HSL, 1, 1),
    Spec::new("server_names_hash_max_size", HTTP, 1, 1),
    Spec::new("server_names_hash_bucket_size", HTTP, 1, 1),
    Spec::new("variables_hash_max_size", HTTP, 1, 1),
    Spec::new("variables_hash_bucket_size", HTTP, 1, 1),
    Spec::new("map_hash_max_size", HTTP, 1, 1),
    Spec::new("map_hash_bucket_size", HTTP, 1, 1),
    Spec::new("proxy_headers_hash_max_size", HSL, 1, 1),
    Spec::new("proxy_headers_hash_bucket_size", HSL, 1, 1),
    Spec::new("open_file_cache", HSL, 1, 3),
    Spec::new("open_file_cache_valid", HSL, 1, 1),
    Spec::new("open_file_cache_min_uses", HSL, 1, 1),
    Spec::new("open_file_cache_errors", HSL, 1, 1),
    Spec::new("reset_timedout_connection", HSL, 1, 1),
    Spec::new("output_buffers", HSL, 2, 2),
    Spec::new("postpone_output", HSL, 1, 1),
    Spec::new("aio", HSL, 1, 1),
    Spec::new("directio", HSL, 1, 1),
    Spec::new("lingering_close", HSL, 1, 1),
    Spec::new("lingering_time", HSL, 1, 1),
    Spec::new("lingering_timeout", HSL, 1, 1),
];

/// What sluice does instead of each accepted directive.
fn why(name: &str) -> Option<&'static str> {
    Some(match name {
        "pcre_jit" => "regexes are compiled by the regex crate",
        "worker_cpu_affinity" | "worker_priority" => "the kernel schedules the workers",
        "timer_resolution" => "the clock is read once per loop iteration",
        "thread_pool" | "aio" | "directio" | "worker_aio_requests" => {
            "file reads for the cache run in sluice's own I/O pool; static files use the page cache"
        }
        "multi_accept" => "listeners are always drained",
        "use" => "sluice uses epoll",
        "accept_mutex" | "accept_mutex_delay" => {
            "connections are handed to workers by the master (or SO_REUSEPORT)"
        }
        "tcp_nopush" | "output_buffers" | "postpone_output" => {
            "a response head and small body go out in one write"
        }
        "open_file_cache" | "open_file_cache_valid" | "open_file_cache_min_uses"
        | "open_file_cache_errors" => {
            "each worker caches small files and their metadata, revalidated once a second"
        }
        "reset_timedout_connection" => "timed-out connections are closed",
        "lingering_close" | "lingering_time" | "lingering_timeout" => {
            "a closing connection drains what the client still sends, up to 5 s at a time and 30 s in all"
        }
        "error_log" => "messages go to the main context's error_log",
        n if n.ends_with("_hash_max_size") || n.ends_with("_hash_bucket_size") => {
            "sluice's tables size themselves"
        }
        _ => return None,
    })
}

/// Modules and directives sluice does not implement, by design.
pub(super) fn refused(name: &str) -> Option<&'static str> {
    Some(match name {
        "load_module" => "dynamic modules are not supported: sluice is one binary",
        "stream" => "the stream (TCP/UDP proxy) module is not supported",
        "mail" => "the mail proxy module is not supported",
        "ssi" | "ssi_types" | "ssi_silent_errors" => "server-side includes are not supported",
        n if n.starts_with("perl") => "embedded Perl is not supported",
        n if n.starts_with("js_") => "njs is not supported",
        n if n.starts_with("lua_") || n.ends_with("_by_lua") || n.ends_with("_by_lua_block") => {
            "Lua (OpenResty) is not supported"
        }
        _ => return None,
    })
}

/// Accept `d` with a note if it is one of the tuning directives (in
/// `ctx`); `Ok(false)` otherwise.
pub(super) fn apply(d: &Directive, ctx: u8) -> Result<bool, ConfigError> {
    let name = d.name.as_str();
    if name == "error_log" && ctx == MAIN {
        return Ok(false);
    }
    let Some(why) = why(name) else {
        return Ok(false);
    };
    match name {
        "pcre_jit"
        | "multi_accept"
        | "accept_mutex"
        | "tcp_nopush"
        | "reset_timedout_connection" => {
            flag(d)?;
        }
        "use" if arg0(d) != "epoll" => {
            return Err(d.error(format!(
                "invalid event type \"{}\": sluice uses epoll",
                arg0(d)
            )))
        }
        _ => {}
    }
    log::info!(
        "{}:{}: \"{name}\" is accepted: {why}",
        d.file.display(),
        d.line
    );
    Ok(true)
}
