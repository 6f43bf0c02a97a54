//! Config value parsers, a leaf of `config`: where a directive may appear
//! (the context bits, the core directive table; the generic checks over all
//! tables are `resolve_http::check`) and the parsers every
//! feature's resolver shares (flags, numbers, sizes, durations, paths,
//! strings with variables, `name=value` parameters, zone names). The
//! `resolve*` files use it; it uses none of them.

use std::path::{Path, PathBuf};

use super::parse::{absolute, Directive};
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
    /// The directive's name.
    pub(crate) name: &'static str,
    /// Context bits where it may appear.
    pub(crate) contexts: u8,
    /// A `{ }` block rather than `;`.
    pub(crate) block: bool,
    /// Fewest arguments.
    pub(crate) min_args: usize,
    /// Most arguments.
    pub(crate) max_args: usize,
    /// May appear several times in one block (values accumulate).
    pub(crate) repeatable: bool,
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
pub(crate) const SPECS: &[Spec] = &[
    spec("worker_processes", MAIN, 1, 1),
    spec("daemon", MAIN, 1, 1),
    spec("pid", MAIN, 1, 1),
    spec("error_log", MAIN | HTTP | SERVER | LOCATION, 1, 2),
    repeatable(spec("log_format", HTTP, 2, 64)),
    spec("worker_shutdown_timeout", MAIN, 1, 1),
    spec("state_dir", MAIN, 1, 1),
    spec("user", MAIN, 1, 2),
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
    spec("alias", LOCATION, 1, 1),
    repeatable(spec("allow", HSL, 1, 1)),
    repeatable(spec("deny", HSL, 1, 1)),
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
    spec("http2", HTTP | SERVER, 1, 1),
    spec("http2_max_concurrent_streams", HTTP | SERVER, 1, 1),
    spec("http2_max_field_size", HTTP | SERVER, 1, 1),
    spec("http2_max_header_size", HTTP | SERVER, 1, 1),
    spec("http2_recv_timeout", HTTP | SERVER, 1, 1),
    spec("http2_idle_timeout", HTTP | SERVER, 1, 1),
    repeatable(spec("listen", SERVER, 1, MANY)),
    repeatable(spec("server_name", SERVER, 1, MANY)),
    repeatable(spec("return", SERVER | LOCATION, 1, 2)),
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
    spec("proxy_ssl_server_name", HSL, 1, 1),
    spec("proxy_ssl_name", HSL, 1, 1),
    spec("proxy_ssl_verify", HSL, 1, 1),
    spec("proxy_ssl_trusted_certificate", HSL, 1, 1),
    spec("proxy_ssl_protocols", HSL, 1, 6),
    spec("proxy_ssl_session_reuse", HSL, 1, 1),
    spec("proxy_ssl_certificate", HSL, 1, 1),
    spec("proxy_ssl_certificate_key", HSL, 1, 1),
    spec("proxy_ssl_crl", HSL, 1, 1),
    spec("proxy_ssl_ciphers", HSL, 1, 1),
    repeatable(spec("proxy_pass_header", HSL, 1, 1)),
    repeatable(spec("proxy_redirect", HSL, 1, 2)),
    spec("proxy_buffering", HSL, 1, 1),
    spec("proxy_request_buffering", HSL, 1, 1),
    spec("proxy_buffer_size", HSL, 1, 1),
    spec("proxy_buffers", HSL, 2, 2),
    spec("proxy_busy_buffers_size", HSL, 1, 1),
    spec("proxy_max_temp_file_size", HSL, 1, 1),
    spec("proxy_temp_file_write_size", HSL, 1, 1),
    spec("proxy_temp_path", HSL, 1, 4),
    spec("proxy_intercept_errors", HSL, 1, 1),
    spec("resolver", HSL, 1, 16),
    spec("resolver_timeout", HSL, 1, 1),
];

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

/// Splits `name=value` parameters after `skip` leading arguments; an
/// unknown or repeated name is an error.
pub(crate) fn params<'a>(
    d: &'a Directive,
    skip: usize,
    known: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, ConfigError> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for a in d.args.iter().skip(skip) {
        let Some((k, v)) = a.split_once('=') else {
            return Err(d.error(format!("invalid parameter \"{a}\"")));
        };
        if !known.contains(&k) || out.iter().any(|(o, _)| *o == k) {
            return Err(d.error(format!("invalid parameter \"{a}\"")));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// `ssl_protocols` (and `proxy_ssl_protocols`): (TLS 1.2, TLS 1.3).
pub(crate) fn protocols(d: &Directive) -> Result<(bool, bool), ConfigError> {
    let (mut v12, mut v13) = (false, false);
    for a in &d.args {
        match a.as_str() {
            "TLSv1.2" => v12 = true,
            "TLSv1.3" => v13 = true,
            "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1" => log::warn!(
                "{}:{}: \"{a}\" in \"{}\" is ignored: only TLSv1.2 and TLSv1.3 are offered",
                d.file.display(),
                d.line,
                d.name
            ),
            _ => return Err(invalid_value(d, a)),
        }
    }
    if !v12 && !v13 {
        return Err(d.error(format!(
            "\"{}\" enables neither TLSv1.2 nor TLSv1.3",
            d.name
        )));
    }
    Ok((v12, v13))
}

/// A shared-memory zone name (it becomes a file name under `state_dir`):
/// 1 to 64 letters, digits, `_`, `-` or `.`, not starting with `.`.
pub(crate) fn check_zone_name(d: &Directive, name: &str) -> Result<(), ConfigError> {
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if name_ok {
        Ok(())
    } else {
        Err(d.error(format!(
            "invalid zone name \"{name}\" (letters, digits, \"_\", \"-\", \".\")"
        )))
    }
}

/// The value of a zone's `cluster=` parameter.
pub(crate) fn cluster_flag(d: &Directive, v: &str) -> Result<bool, ConfigError> {
    match v {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(d.error(format!("invalid parameter \"cluster={v}\" (on or off)"))),
    }
}

/// `ADDR` or `ADDR/LEN`, host bits cleared.
pub(crate) fn prefix(s: &str) -> Option<super::Cidr> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: std::net::IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix_len = match len {
        None => max,
        Some(l) => parse_number(l).filter(|&n| n <= u64::from(max))? as u8,
    };
    let addr = match addr {
        std::net::IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix_len))
                .unwrap_or(0);
            std::net::IpAddr::V4((u32::from(a) & mask).into())
        }
        std::net::IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix_len))
                .unwrap_or(0);
            std::net::IpAddr::V6((u128::from(a) & mask).into())
        }
    };
    Some(super::Cidr { addr, prefix_len })
}

/// `ADDR`, `ADDR/LEN` or `all` (a zero-length prefix of each family).
pub(crate) fn cidrs(s: &str) -> Option<Vec<super::Cidr>> {
    if s == "all" {
        return Some(vec![
            super::Cidr {
                addr: std::net::Ipv4Addr::UNSPECIFIED.into(),
                prefix_len: 0,
            },
            super::Cidr {
                addr: std::net::Ipv6Addr::UNSPECIFIED.into(),
                prefix_len: 0,
            },
        ]);
    }
    prefix(s).map(|c| vec![c])
}
