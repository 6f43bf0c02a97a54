//! Typed resolution of the reverse-proxy directives: `upstream { }` blocks,
//! `proxy_pass` targets (named upstreams, or implicit ones for an address;
//! `https://` ones with the client configuration of their `proxy_ssl_*`
//! settings, built here once per distinct set) and the inheritable
//! `proxy_*` settings.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::parse::Directive;
use super::types_proxy::{
    Balance, DynamicPass, LocationProxy, NextUpstream, PeerAddr, ProxyPass, ProxyRedirect,
    ProxyTls, RedirectFrom, UpstreamConf, UpstreamServer, UpstreamTls, UpstreamTlsSettings,
};
use super::values::{arg0, duration, flag, invalid_value, number, path_arg, protocols, size};
use super::ConfigError;
use crate::util::units::parse_duration_ms;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};

/// The upstreams and HTTPS client configurations of an `http` block, as
/// they are collected.
#[derive(Debug, Default)]
pub(crate) struct Upstreams {
    /// `upstream { }` blocks, then implicit upstreams.
    pub(crate) confs: Vec<UpstreamConf>,
    /// Client configurations (`ProxyTls::client`).
    pub(crate) tls: Vec<UpstreamTls>,
}

/// A `proxy_ssl_trusted_certificate` file, loaded at its directive.
#[derive(Debug, Clone)]
struct Trusted {
    path: PathBuf,
    certs: Arc<Vec<CertificateDer<'static>>>,
}

/// Proxy settings collected at one level; `None` = not set here.
#[derive(Debug, Default, Clone)]
pub(crate) struct ProxyInherit {
    set_headers: Option<Vec<(String, super::Template)>>,
    http_version_minor: Option<u8>,
    connect_timeout_ms: Option<u64>,
    read_timeout_ms: Option<u64>,
    send_timeout_ms: Option<u64>,
    next_upstream: Option<NextUpstream>,
    next_upstream_tries: Option<u32>,
    hide_headers: Option<Vec<String>>,
    pass_headers: Option<Vec<String>>,
    redirects: Option<Vec<RawRedirect>>,
    buffering: Option<bool>,
    intercept_errors: Option<bool>,
    /// `resolver ... [valid=T]`: how long a looked-up name is kept.
    resolver_valid_ms: Option<u64>,
    ssl_server_name: Option<bool>,
    ssl_name: Option<super::Template>,
    ssl_verify: Option<bool>,
    ssl_trusted: Option<Trusted>,
    ssl_protocols: Option<(bool, bool)>,
    ssl_session_reuse: Option<bool>,
    ssl_crl: Option<(PathBuf, Arc<Vec<CertificateRevocationListDer<'static>>>)>,
    ssl_certificate: Option<(Directive, PathBuf)>,
    ssl_certificate_key: Option<PathBuf>,
}

/// One `proxy_redirect` as written at a level.
#[derive(Debug, Clone)]
enum RawRedirect {
    /// `default`: the `proxy_pass` URL becomes the location's path.
    Default(Directive),
    /// `off` (clears what came before at this level).
    Off,
    /// `FROM TO`.
    Rule(ProxyRedirect),
}

/// What sluice does instead of the buffer tuning directives it accepts.
const BUFFER_NOTE: &str = "sluice relays upstream bytes as they come through a fixed per-worker read buffer and never spools responses to temporary files";

fn valid_header_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl ProxyInherit {
    /// Applies `d` if it is an inheritable proxy setting; `Ok(false)` otherwise.
    pub(crate) fn apply(&mut self, d: &Directive, conf_dir: &Path) -> Result<bool, ConfigError> {
        let v = arg0(d);
        match d.name.as_str() {
            "proxy_set_header" => {
                let name = &d.args[0];
                let value = d.args.get(1).cloned().unwrap_or_default();
                if !valid_header_name(name) {
                    return Err(invalid_value(d, name));
                }
                if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                    return Err(invalid_value(d, &value));
                }
                let value = super::values::template(d, &value)?;
                self.set_headers
                    .get_or_insert_with(Vec::new)
                    .push((name.clone(), value));
            }
            "proxy_hide_header" => {
                if !valid_header_name(v) {
                    return Err(invalid_value(d, v));
                }
                self.hide_headers
                    .get_or_insert_with(Vec::new)
                    .push(v.to_ascii_lowercase());
            }
            "proxy_pass_header" => {
                if !valid_header_name(v) {
                    return Err(invalid_value(d, v));
                }
                self.pass_headers
                    .get_or_insert_with(Vec::new)
                    .push(v.to_ascii_lowercase());
            }
            "proxy_redirect" => {
                let list = self.redirects.get_or_insert_with(Vec::new);
                match (v, d.args.len()) {
                    ("off", 1) => {
                        list.clear();
                        list.push(RawRedirect::Off);
                    }
                    ("default", 1) => list.push(RawRedirect::Default(d.clone())),
                    (_, 2) => list.push(RawRedirect::Rule(redirect_rule(d)?)),
                    _ => return Err(invalid_value(d, v)),
                }
            }
            "proxy_buffering" => self.buffering = Some(flag(d)?),
            "proxy_intercept_errors" => self.intercept_errors = Some(flag(d)?),
            "proxy_request_buffering" => {
                flag(d)?;
                note(d, "request bodies are streamed to the upstream as they come (nginx's \"off\"), except a chunked body for an HTTP/1.0 upstream");
            }
            "proxy_buffer_size"
            | "proxy_busy_buffers_size"
            | "proxy_max_temp_file_size"
            | "proxy_temp_file_write_size" => {
                size(d, v)?;
                note(d, BUFFER_NOTE);
            }
            "proxy_buffers" => {
                if d.args.len() != 2 || number(d, v)? == 0 {
                    return Err(invalid_value(d, v));
                }
                size(d, &d.args[1])?;
                note(d, BUFFER_NOTE);
            }
            "proxy_temp_path" => {
                path_arg(d, conf_dir, v)?;
                for l in &d.args[1..] {
                    if !matches!(l.as_str(), "1" | "2") {
                        return Err(invalid_value(d, l));
                    }
                }
                note(d, BUFFER_NOTE);
            }
            "resolver" => {
                let mut valid_ms = 30_000;
                for a in &d.args {
                    if let Some(t) = a.strip_prefix("valid=") {
                        valid_ms = positive_ms(d, t)?;
                    } else if let Some(f) = a.strip_prefix("ipv6=").or(a.strip_prefix("ipv4=")) {
                        if f != "on" && f != "off" {
                            return Err(invalid_value(d, a));
                        }
                    } else if a.starts_with("status_zone=") {
                    } else if a.contains('=') {
                        return Err(invalid_value(d, a));
                    }
                }
                note(d, "names are looked up with the system resolver (getaddrinfo, /etc/resolv.conf), in the worker, and kept for valid= (default 30s)");
                self.resolver_valid_ms = Some(valid_ms);
            }
            "resolver_timeout" => {
                positive_ms(d, v)?;
            }
            "proxy_http_version" => {
                self.http_version_minor = Some(match v {
                    "1.0" => 0,
                    "1.1" => 1,
                    _ => return Err(invalid_value(d, v)),
                })
            }
            "proxy_connect_timeout" => self.connect_timeout_ms = Some(positive_ms(d, v)?),
            "proxy_read_timeout" => self.read_timeout_ms = Some(positive_ms(d, v)?),
            "proxy_send_timeout" => self.send_timeout_ms = Some(positive_ms(d, v)?),
            "proxy_next_upstream" => self.next_upstream = Some(next_upstream(d)?),
            "proxy_next_upstream_tries" => {
                self.next_upstream_tries =
                    Some(u32::try_from(number(d, v)?).map_err(|_| invalid_value(d, v))?)
            }
            "proxy_ssl_server_name" => self.ssl_server_name = Some(flag(d)?),
            "proxy_ssl_name" => {
                if v.is_empty() {
                    return Err(invalid_value(d, v));
                }
                self.ssl_name = Some(super::values::template(d, v)?)
            }
            "proxy_ssl_verify" => self.ssl_verify = Some(flag(d)?),
            "proxy_ssl_trusted_certificate" => {
                let path = path_arg(d, conf_dir, v)?;
                let certs = crate::tls::cert::load_certs(&path).map_err(|e| d.error(e.0))?;
                self.ssl_trusted = Some(Trusted {
                    path,
                    certs: Arc::new(certs),
                });
            }
            "proxy_ssl_protocols" => self.ssl_protocols = Some(protocols(d)?),
            "proxy_ssl_session_reuse" => self.ssl_session_reuse = Some(flag(d)?),
            "proxy_ssl_crl" => {
                let path = path_arg(d, conf_dir, v)?;
                let crls = crate::tls::client::load_crls(&path).map_err(|e| d.error(e.0))?;
                self.ssl_crl = Some((path, Arc::new(crls)));
            }
            "proxy_ssl_certificate" => {
                self.ssl_certificate = Some((d.clone(), path_arg(d, conf_dir, v)?))
            }
            "proxy_ssl_certificate_key" => {
                self.ssl_certificate_key = Some(path_arg(d, conf_dir, v)?)
            }
            "proxy_ssl_ciphers" => log::info!(
                "{}:{}: \"proxy_ssl_ciphers\" is accepted and ignored: rustls offers only its own modern cipher suites",
                d.file.display(),
                d.line
            ),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `self` (inner) over `outer`.
    pub(crate) fn over(self, outer: &ProxyInherit) -> ProxyInherit {
        ProxyInherit {
            set_headers: self.set_headers.or_else(|| outer.set_headers.clone()),
            http_version_minor: self.http_version_minor.or(outer.http_version_minor),
            connect_timeout_ms: self.connect_timeout_ms.or(outer.connect_timeout_ms),
            read_timeout_ms: self.read_timeout_ms.or(outer.read_timeout_ms),
            send_timeout_ms: self.send_timeout_ms.or(outer.send_timeout_ms),
            next_upstream: self.next_upstream.or(outer.next_upstream),
            next_upstream_tries: self.next_upstream_tries.or(outer.next_upstream_tries),
            hide_headers: self.hide_headers.or_else(|| outer.hide_headers.clone()),
            pass_headers: self.pass_headers.or_else(|| outer.pass_headers.clone()),
            redirects: self.redirects.or_else(|| outer.redirects.clone()),
            buffering: self.buffering.or(outer.buffering),
            intercept_errors: self.intercept_errors.or(outer.intercept_errors),
            resolver_valid_ms: self.resolver_valid_ms.or(outer.resolver_valid_ms),
            ssl_server_name: self.ssl_server_name.or(outer.ssl_server_name),
            ssl_name: self.ssl_name.or_else(|| outer.ssl_name.clone()),
            ssl_verify: self.ssl_verify.or(outer.ssl_verify),
            ssl_trusted: self.ssl_trusted.or_else(|| outer.ssl_trusted.clone()),
            ssl_protocols: self.ssl_protocols.or(outer.ssl_protocols),
            ssl_session_reuse: self.ssl_session_reuse.or(outer.ssl_session_reuse),
            ssl_crl: self.ssl_crl.or_else(|| outer.ssl_crl.clone()),
            ssl_certificate: self
                .ssl_certificate
                .or_else(|| outer.ssl_certificate.clone()),
            ssl_certificate_key: self
                .ssl_certificate_key
                .or_else(|| outer.ssl_certificate_key.clone()),
        }
    }

    /// The upstream of `t` (see [`resolve_pass`]) and, for `https://`, the
    /// TLS of these (merged) settings: an existing client configuration
    /// with the same settings, or a new one.
    pub(crate) fn resolve_pass(
        &self,
        t: &PassTarget,
        ups: &mut Upstreams,
    ) -> Result<ProxyPass, ConfigError> {
        let mut pass = resolve_pass(t, &mut ups.confs)?;
        if !t.https {
            return Ok(pass);
        }
        let (tls12, tls13) = self.ssl_protocols.unwrap_or((true, true));
        let verify = self.ssl_verify.unwrap_or(false);
        // nginx: a certificate needs its key; a key alone is ignored.
        let certificate = match (&self.ssl_certificate, &self.ssl_certificate_key) {
            (None, _) => None,
            (Some((c, _)), None) => {
                return Err(c.error(format!(
                    "no \"proxy_ssl_certificate_key\" is defined for certificate \"{}\"",
                    arg0(c)
                )))
            }
            (Some((c, cert)), Some(key)) => Some((c, cert.clone(), key.clone())),
        };
        let settings = UpstreamTlsSettings {
            verify,
            trusted: self
                .ssl_trusted
                .as_ref()
                .filter(|_| verify)
                .map(|t| t.path.clone()),
            tls12,
            tls13,
            server_name: self.ssl_server_name.unwrap_or(false),
            session_reuse: self.ssl_session_reuse.unwrap_or(true),
            crl: self
                .ssl_crl
                .as_ref()
                .filter(|_| verify)
                .map(|c| c.0.clone()),
            certificate: certificate.as_ref().map(|(_, c, k)| (c.clone(), k.clone())),
        };
        let client = match ups.tls.iter().position(|u| u.settings == settings) {
            Some(i) => i,
            None => {
                let d = &t.directive;
                let roots = match (&self.ssl_trusted, verify) {
                    (Some(tr), true) => tr.certs.clone(),
                    (None, true) => Arc::new(
                        crate::tls::client::system_roots()
                            .map_err(|e| d.error(format!("{e} (for \"proxy_ssl_verify on\")")))?,
                    ),
                    (_, false) => Arc::new(Vec::new()),
                };
                let opts = crate::tls::ClientOptions {
                    verify,
                    roots,
                    tls12,
                    tls13,
                    sni: settings.server_name,
                    session_reuse: settings.session_reuse,
                    crls: match (&self.ssl_crl, verify) {
                        (Some((_, crls)), true) => crls.to_vec(),
                        _ => Vec::new(),
                    },
                    identity: match &certificate {
                        Some((cd, cert, key)) => {
                            Some(crate::tls::load_pair(cert, key).map_err(|e| cd.error(e.0))?)
                        }
                        None => None,
                    },
                };
                let config = crate::tls::build_client(&opts)
                    .map_err(|e| d.error(format!("TLS to the upstream: {e}")))?;
                ups.tls.push(UpstreamTls { settings, config });
                ups.tls.len() - 1
            }
        };
        pass.tls = Some(ProxyTls {
            client,
            name: self.ssl_name.clone(),
            host: crate::tls::client::host_of(&t.authority).to_string(),
        });
        Ok(pass)
    }

    /// The merged settings with defaults filled in; `target` is the
    /// location's `proxy_pass` as written and `loc_path` its path (for
    /// `proxy_redirect default`), `prefix`: a prefix location.
    pub(crate) fn into_conf(
        self,
        pass: Option<ProxyPass>,
        target: Option<&PassTarget>,
        loc_path: &str,
        prefix: bool,
    ) -> Result<LocationProxy, ConfigError> {
        let d = LocationProxy::default();
        let mut redirects = Vec::new();
        let raw = self
            .redirects
            .unwrap_or_else(|| vec![RawRedirect::Off, RawRedirect::Off]);
        let implicit = raw.len() == 2 && matches!(raw[..], [RawRedirect::Off, RawRedirect::Off]);
        let raw = match target {
            // Not set anywhere: nginx's `proxy_redirect default`.
            Some(t) if implicit => vec![RawRedirect::Default(t.directive.clone())],
            _ => raw,
        };
        for r in raw {
            match r {
                RawRedirect::Off => redirects.clear(),
                RawRedirect::Rule(rule) => redirects.push(rule),
                RawRedirect::Default(dir) => {
                    let Some(t) = target else { continue };
                    if t.dynamic {
                        if !implicit {
                            return Err(dir.error("\"proxy_redirect default\" cannot be used with \"proxy_pass\" directive with variables"));
                        }
                        continue;
                    }
                    if !prefix {
                        continue;
                    }
                    let url = arg0(&t.directive);
                    let (from, to) = match &t.uri {
                        Some(_) => (url.to_string(), loc_path.to_string()),
                        None => (format!("{url}/"), "/".to_string()),
                    };
                    let lit = |s: String| super::Template {
                        source: s.clone(),
                        parts: vec![super::Part::Text(s)],
                    };
                    let (from, to) = (lit(from), lit(to));
                    redirects.push(ProxyRedirect {
                        from: RedirectFrom::Prefix(from),
                        to,
                    });
                }
            }
        }
        Ok(LocationProxy {
            pass,
            set_headers: self.set_headers.unwrap_or_default(),
            http_version_minor: self.http_version_minor.unwrap_or(d.http_version_minor),
            connect_timeout_ms: self.connect_timeout_ms.unwrap_or(d.connect_timeout_ms),
            read_timeout_ms: self.read_timeout_ms.unwrap_or(d.read_timeout_ms),
            send_timeout_ms: self.send_timeout_ms.unwrap_or(d.send_timeout_ms),
            next_upstream: self.next_upstream.unwrap_or_default(),
            next_upstream_tries: self.next_upstream_tries.unwrap_or(0),
            hide_headers: self.hide_headers.unwrap_or_default(),
            pass_headers: self.pass_headers.unwrap_or_default(),
            redirects,
            buffering: self.buffering.unwrap_or(true),
            intercept_errors: self.intercept_errors.unwrap_or(false),
            resolver_valid_ms: self.resolver_valid_ms,
        })
    }
}

/// An accepted directive that does not map onto sluice: said at `-t`.
fn note(d: &Directive, why: &str) {
    log::info!(
        "{}:{}: \"{}\" is accepted: {why}",
        d.file.display(),
        d.line,
        d.name
    );
}

/// `proxy_redirect FROM TO` (`~regex` / `~*regex` FROM).
fn redirect_rule(d: &Directive) -> Result<ProxyRedirect, ConfigError> {
    let (from, to) = (&d.args[0], &d.args[1]);
    let from = if let Some(re) = from.strip_prefix("~*") {
        RedirectFrom::Regex(
            regex::bytes::RegexBuilder::new(re)
                .case_insensitive(true)
                .build()
                .map_err(|e| d.error(format!("invalid regex \"{re}\": {e}")))?,
        )
    } else if let Some(re) = from.strip_prefix('~') {
        RedirectFrom::Regex(
            regex::bytes::Regex::new(re)
                .map_err(|e| d.error(format!("invalid regex \"{re}\": {e}")))?,
        )
    } else if from.is_empty() {
        return Err(invalid_value(d, from));
    } else {
        RedirectFrom::Prefix(super::values::template(d, from)?)
    };
    Ok(ProxyRedirect {
        from,
        to: super::values::template(d, to)?,
    })
}

fn positive_ms(d: &Directive, v: &str) -> Result<u64, ConfigError> {
    match duration(d, v)? {
        0 => Err(invalid_value(d, v)),
        ms => Ok(ms),
    }
}

fn next_upstream(d: &Directive) -> Result<NextUpstream, ConfigError> {
    if d.args.len() == 1 && d.args[0] == "off" {
        return Ok(NextUpstream::off());
    }
    let mut n = NextUpstream::off();
    for a in &d.args {
        match a.as_str() {
            "error" => n.error = true,
            "timeout" => n.timeout = true,
            "invalid_header" => n.invalid_header = true,
            "http_500" => n.http_500 = true,
            "http_502" => n.http_502 = true,
            "http_503" => n.http_503 = true,
            "http_504" => n.http_504 = true,
            "http_404" => n.http_404 = true,
            "http_429" => n.http_429 = true,
            "non_idempotent" => n.non_idempotent = true,
            _ => return Err(invalid_value(d, a)),
        }
    }
    Ok(n)
}

/// Resolve `host:port` (a name is looked up once, at load time, as nginx does).
fn socket_addrs(
    d: &Directive,
    host_port: &str,
    default_port: u16,
) -> Result<Vec<SocketAddr>, ConfigError> {
    lookup(host_port, default_port)
        .ok_or_else(|| d.error(format!("host not found in upstream \"{host_port}\"")))
}

/// The addresses of `host[:port]` (an IP literal, or a name through the
/// system resolver); `None` when there are none.
pub fn lookup(host_port: &str, default_port: u16) -> Option<Vec<SocketAddr>> {
    if let Ok(a) = host_port.parse::<SocketAddr>() {
        return Some(vec![a]);
    }
    if let Ok(ip) = host_port
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        return Some(vec![SocketAddr::new(ip, default_port)]);
    }
    let with_port = if host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host_port.to_string()
    } else {
        format!("{host_port}:{default_port}")
    };
    let v: Vec<SocketAddr> = with_port.to_socket_addrs().ok()?.collect();
    (!v.is_empty()).then_some(v)
}

/// The addresses of a `server` / `proxy_pass` authority: `unix:/path` or
/// `host[:port]`.
fn peer_addrs(
    d: &Directive,
    authority: &str,
    default_port: u16,
) -> Result<Vec<PeerAddr>, ConfigError> {
    if let Some(path) = authority.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(d.error(format!("no path in the unix domain socket \"{authority}\"")));
        }
        return Ok(vec![PeerAddr::Unix(PathBuf::from(path))]);
    }
    Ok(socket_addrs(d, authority, default_port)?
        .into_iter()
        .map(PeerAddr::Inet)
        .collect())
}

/// `server ADDR [weight=N] [max_fails=N] [fail_timeout=T] [max_conns=N] [backup] [down]`.
fn upstream_server(c: &Directive, up: &mut UpstreamConf) -> Result<(), ConfigError> {
    if c.block.is_some() {
        return Err(c.error("directive \"server\" is not terminated by \";\""));
    }
    let Some(addr) = c.args.first() else {
        return Err(c.error("invalid number of arguments in \"server\" directive"));
    };
    let mut s = UpstreamServer::new(addr, PeerAddr::Unix(PathBuf::new()));
    for p in &c.args[1..] {
        let num = |v: &str| v.parse::<u32>().map_err(|_| invalid_value(c, p));
        if let Some(w) = p.strip_prefix("weight=") {
            s.weight = num(w)
                .ok()
                .filter(|w| *w > 0)
                .ok_or_else(|| invalid_value(c, p))?;
        } else if let Some(m) = p.strip_prefix("max_fails=") {
            s.max_fails = num(m)?;
        } else if let Some(m) = p.strip_prefix("max_conns=") {
            s.max_conns = num(m)?;
        } else if let Some(t) = p.strip_prefix("fail_timeout=") {
            s.fail_timeout_ms = parse_duration_ms(t).ok_or_else(|| invalid_value(c, p))?;
        } else if p == "backup" {
            s.backup = true;
        } else if p == "down" {
            s.down = true;
        } else {
            return Err(c.error(format!("invalid parameter \"{p}\"")));
        }
    }
    if s.backup && !matches!(up.balance, Balance::RoundRobin | Balance::LeastConn) {
        return Err(c.error("invalid parameter \"backup\""));
    }
    for a in peer_addrs(c, addr, 80)? {
        up.servers.push(UpstreamServer {
            addr: a,
            ..s.clone()
        });
    }
    Ok(())
}

/// A balancing method directive (`least_conn`, `ip_hash`, `hash`, `random`).
fn balance(c: &Directive) -> Result<Option<Balance>, ConfigError> {
    let args = |min: usize, max: usize| {
        if c.args.len() < min || c.args.len() > max {
            Err(c.error(format!(
                "invalid number of arguments in \"{}\" directive",
                c.name
            )))
        } else {
            Ok(())
        }
    };
    Ok(Some(match c.name.as_str() {
        "least_conn" => {
            args(0, 0)?;
            Balance::LeastConn
        }
        "ip_hash" => {
            args(0, 0)?;
            Balance::IpHash
        }
        "hash" => {
            args(1, 2)?;
            let consistent = match c.args.get(1).map(String::as_str) {
                None => false,
                Some("consistent") => true,
                Some(v) => return Err(invalid_value(c, v)),
            };
            Balance::Hash {
                key: super::values::template(c, &c.args[0])?,
                consistent,
            }
        }
        "random" => {
            args(0, 2)?;
            let two = match c.args.first().map(String::as_str) {
                None => false,
                Some("two") => true,
                Some(v) => return Err(invalid_value(c, v)),
            };
            if let Some(m) = c.args.get(1) {
                if m != "least_conn" {
                    return Err(invalid_value(c, m));
                }
            }
            Balance::Random { two }
        }
        _ => return Ok(None),
    }))
}

/// `upstream NAME { server ADDR [params]; keepalive N; least_conn; ... }`
pub(crate) fn upstream_block(d: &Directive) -> Result<UpstreamConf, ConfigError> {
    let name = arg0(d).to_string();
    let mut up = UpstreamConf {
        name,
        servers: Vec::new(),
        keepalive: 0,
        balance: Balance::RoundRobin,
        zone: None,
        implicit: false,
        https: false,
    };
    let mut keepalive_seen = false;
    let mut balance_seen = false;
    for c in d.children() {
        if let Some(b) = balance(c)? {
            if balance_seen {
                log::warn!(
                    "{}:{}: load balancing method redefined",
                    c.file.display(),
                    c.line
                );
            }
            balance_seen = true;
            if !matches!(b, Balance::RoundRobin | Balance::LeastConn)
                && up.servers.iter().any(|s| s.backup)
            {
                return Err(c.error(format!(
                    "\"{}\" cannot be used with \"backup\" servers",
                    c.name
                )));
            }
            up.balance = b;
            continue;
        }
        match c.name.as_str() {
            "server" => upstream_server(c, &mut up)?,
            "zone" => {
                if c.args.is_empty() || c.args.len() > 2 {
                    return Err(c.error("invalid number of arguments in \"zone\" directive"));
                }
                if let Some(sz) = c.args.get(1) {
                    size(c, sz)?;
                }
                note(
                    c,
                    "upstream state (failures, active requests, round robin) is kept per worker",
                );
                up.zone = Some(c.args[0].clone());
            }
            "keepalive" => {
                if keepalive_seen {
                    return Err(c.error("\"keepalive\" directive is duplicate"));
                }
                keepalive_seen = true;
                let v = arg0(c);
                if c.args.len() != 1 {
                    return Err(c.error("invalid number of arguments in \"keepalive\" directive"));
                }
                up.keepalive = usize::try_from(number(c, v)?).map_err(|_| invalid_value(c, v))?;
            }
            "keepalive_timeout" | "keepalive_requests" | "keepalive_time" => {
                // Accepted for nginx compatibility: idle upstream connections are
                // closed by the upstream or reused; sluice keeps no timer for them.
                if c.args.len() != 1 {
                    return Err(c.error(format!(
                        "invalid number of arguments in \"{}\" directive",
                        c.name
                    )));
                }
            }
            _ => return Err(c.error(format!("\"{}\" directive is not allowed here", c.name))),
        }
    }
    if up.servers.is_empty() {
        return Err(d.error(format!("no servers are inside upstream \"{}\"", up.name)));
    }
    if up.servers.iter().all(|s| s.backup) {
        return Err(d.error(format!("no primary servers in upstream \"{}\"", up.name)));
    }
    Ok(up)
}

/// A `proxy_pass` argument before upstream names are known.
#[derive(Debug, Clone)]
pub(crate) struct PassTarget {
    /// The directive, for error messages.
    pub(crate) directive: Directive,
    /// `host[:port]` or `unix:/path` part (with variables when `dynamic`).
    pub(crate) authority: String,
    /// URI part, if any.
    pub(crate) uri: Option<String>,
    /// `https://`.
    pub(crate) https: bool,
    /// The URL has variables: resolved per request.
    pub(crate) dynamic: bool,
}

/// Parse `proxy_pass http[s]://AUTHORITY[/uri]` (`unix:/path[:/uri]` as
/// the authority; variables anywhere make it resolved per request).
pub(crate) fn parse_pass(d: &Directive) -> Result<PassTarget, ConfigError> {
    let v = arg0(d);
    let (rest, https) = if v.len() >= 7 && v[..7].eq_ignore_ascii_case("http://") {
        (&v[7..], false)
    } else if v.len() >= 8 && v[..8].eq_ignore_ascii_case("https://") {
        (&v[8..], true)
    } else {
        return Err(d.error(format!("invalid URL prefix in \"{v}\"")));
    };
    let (authority, uri) = if rest.len() >= 5 && rest[..5].eq_ignore_ascii_case("unix:") {
        match rest[5..].find(':') {
            Some(i) => (&rest[..5 + i], Some(rest[5 + i + 1..].to_string())),
            None => (rest, None),
        }
    } else {
        match rest.find('/') {
            Some(i) => (&rest[..i], Some(rest[i..].to_string())),
            None => (rest, None),
        }
    };
    let uri = uri.filter(|u| !u.is_empty());
    if authority.is_empty() || authority == "unix:" {
        return Err(d.error(format!("invalid host in \"{v}\"")));
    }
    let dynamic = v.contains('$');
    if dynamic {
        super::values::template(d, authority)?;
        if let Some(u) = &uri {
            super::values::template(d, u)?;
        }
    }
    Ok(PassTarget {
        directive: d.clone(),
        authority: authority.to_string(),
        uri,
        https,
        dynamic,
    })
}

/// Map a target to an upstream: a named block, else an implicit upstream
/// for the address (shared by every `proxy_pass` with the same scheme to
/// the same address; `https://` defaults to port 443). A target with
/// variables is kept as templates, resolved per request.
fn resolve_pass(
    t: &PassTarget,
    upstreams: &mut Vec<UpstreamConf>,
) -> Result<ProxyPass, ConfigError> {
    if t.dynamic {
        let d = &t.directive;
        return Ok(ProxyPass {
            upstream: usize::MAX,
            dynamic: Some(DynamicPass {
                authority: super::values::template(d, &t.authority)?,
                uri: t
                    .uri
                    .as_deref()
                    .map(|u| super::values::template(d, u))
                    .transpose()?,
                https: t.https,
            }),
            uri: None,
            tls: None,
        });
    }
    let idx = match upstreams
        .iter()
        .position(|u| !u.implicit && u.name == t.authority)
    {
        Some(i) => i,
        None => match upstreams
            .iter()
            .position(|u| u.implicit && u.https == t.https && u.name == t.authority)
        {
            Some(i) => i,
            None => {
                let port = if t.https { 443 } else { 80 };
                let addrs = peer_addrs(&t.directive, &t.authority, port)?;
                upstreams.push(implicit_upstream(&t.authority, addrs, t.https));
                upstreams.len() - 1
            }
        },
    };
    Ok(ProxyPass {
        upstream: idx,
        dynamic: None,
        uri: t.uri.clone(),
        tls: None,
    })
}

/// The upstream of a `proxy_pass` straight to an address (keep-alive on).
pub fn implicit_upstream(name: &str, addrs: Vec<PeerAddr>, https: bool) -> UpstreamConf {
    UpstreamConf {
        name: name.to_string(),
        servers: addrs
            .into_iter()
            .map(|a| UpstreamServer::new(name, a))
            .collect(),
        keepalive: 32,
        balance: Balance::RoundRobin,
        zone: None,
        implicit: true,
        https,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{load_str, PeerAddr};
    use std::path::Path;

    fn conf(http: &str) -> String {
        format!("events {{}}\nhttp {{\n{http}\n}}\n")
    }

    #[test]
    fn upstream_and_pass() {
        let c = load_str(
            &conf("upstream app { server 127.0.0.1:9001 weight=3; server 127.0.0.1:9002 max_fails=2 fail_timeout=5s; keepalive 16; }\nserver { listen 127.0.0.1:8080; location /api/ { proxy_pass http://app/v1/; proxy_set_header X-A b; } location / { proxy_pass http://127.0.0.1:9003; } }"),
            Path::new("/t/s.conf"),
            None,
        )
        .unwrap();
        let h = &c.http;
        assert_eq!(h.upstreams.len(), 2);
        assert_eq!(h.upstreams[0].servers[0].weight, 3);
        assert_eq!(h.upstreams[0].servers[1].fail_timeout_ms, 5000);
        assert_eq!(h.upstreams[0].keepalive, 16);
        assert!(h.upstreams[1].implicit);
        let api = &h.servers[0].locations[0].proxy;
        assert_eq!(api.pass.as_ref().unwrap().upstream, 0);
        assert_eq!(api.pass.as_ref().unwrap().uri.as_deref(), Some("/v1/"));
        assert_eq!(api.set_headers.len(), 1);
        assert_eq!(
            (
                api.set_headers[0].0.as_str(),
                api.set_headers[0].1.source.as_str()
            ),
            ("X-A", "b")
        );
        let root = &h.servers[0].locations[1].proxy;
        assert_eq!(root.pass.as_ref().unwrap().upstream, 1);
        assert!(root.set_headers.is_empty());
    }

    #[test]
    fn upstream_defined_after_use() {
        let c = load_str(
            &conf("server { listen 127.0.0.1:8080; location / { proxy_pass http://late; } }\nupstream late { server 127.0.0.1:1; }"),
            Path::new("/t/s.conf"),
            None,
        )
        .unwrap();
        assert_eq!(c.http.upstreams.len(), 1);
        assert!(!c.http.upstreams[0].implicit);
    }

    #[test]
    fn errors_have_lines() {
        let cases = [
            ("upstream u { }", "3: no servers are inside upstream \"u\""),
            ("upstream u {\nserver 127.0.0.1:1 weight=0; }", "4: invalid value \"weight=0\""),
            ("upstream u {\nbogus 1; }", "4: \"bogus\" directive is not allowed here"),
            ("server { listen 1.2.3.4:80; location / {\nproxy_pass ftp://x; } }", "4: invalid URL prefix in \"ftp://x\""),
            ("server { listen 1.2.3.4:80; location / {\nproxy_pass http://no-such-host.invalid; } }", "4: host not found in upstream \"no-such-host.invalid\""),
            ("proxy_http_version 2.0;", "3: invalid value \"2.0\""),
            ("proxy_next_upstream sometimes;", "3: invalid value \"sometimes\""),
        ];
        for (text, want) in cases {
            let e = load_str(&conf(text), Path::new("/t/s.conf"), None).unwrap_err();
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn https_upstreams_and_their_tls_settings() {
        let dir = std::env::temp_dir().join(format!("sluice-upstls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["o.test".to_string()]).unwrap();
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.cert.pem()).unwrap();
        let c = load_str(
            &conf(&format!(
                "proxy_ssl_server_name on;\nupstream app {{ server 127.0.0.1:9001; }}\n\
                 server {{ listen 127.0.0.1:8080;\n\
                 location /a {{ proxy_pass https://127.0.0.1:9443; }}\n\
                 location /b {{ proxy_pass http://127.0.0.1:9443; }}\n\
                 location /c {{ proxy_pass https://app/x/; proxy_ssl_name $host; \
                 proxy_ssl_verify on; proxy_ssl_trusted_certificate {}; proxy_ssl_protocols TLSv1.3; }}\n\
                 location /d {{ proxy_pass https://localhost; proxy_ssl_server_name off; }}\n\
                 location /e {{ proxy_pass https://127.0.0.1:9443; }} }}",
                ca_path.display()
            )),
            Path::new("/t/s.conf"),
            None,
        )
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let h = &c.http;
        let l = &h.servers[0].locations;
        let pass = |i: usize| l[i].proxy.pass.as_ref().unwrap();
        // http:// and https:// to one address are two implicit upstreams.
        assert_ne!(pass(0).upstream, pass(1).upstream);
        assert!(h.upstreams[pass(0).upstream].https);
        assert!(pass(1).tls.is_none());
        let a = pass(0).tls.as_ref().unwrap();
        assert_eq!(a.host, "127.0.0.1");
        assert!(a.name.is_none());
        // The same settings share one client configuration.
        assert_eq!(pass(4).tls.as_ref().unwrap().client, a.client);
        let sa = &h.upstream_tls[a.client].settings;
        assert!(sa.server_name && !sa.verify && sa.tls12 && sa.tls13 && sa.session_reuse);
        let cc = pass(2).tls.as_ref().unwrap();
        assert_eq!(pass(2).upstream, 0, "the named upstream");
        assert_eq!(cc.host, "app");
        assert_eq!(cc.name.as_ref().unwrap().source, "$host");
        let sc = &h.upstream_tls[cc.client].settings;
        assert!(sc.verify && !sc.tls12 && sc.tls13);
        assert_eq!(sc.trusted.as_deref(), Some(ca_path.as_path()));
        // https://localhost: port 443.
        let d = &h.upstreams[pass(3).upstream];
        assert!(d
            .servers
            .iter()
            .all(|s| matches!(s.addr, PeerAddr::Inet(a) if a.port() == 443)));
        assert!(
            !h.upstream_tls[pass(3).tls.as_ref().unwrap().client]
                .settings
                .server_name
        );
        assert_eq!(h.upstream_tls.len(), 3);
    }

    #[test]
    fn proxy_ssl_errors_have_lines() {
        let cases = [
            (
                "proxy_ssl_trusted_certificate /no/such/ca.pem;",
                "3: cannot load certificate \"/no/such/ca.pem\"",
            ),
            ("proxy_ssl_verify maybe;", "3: invalid value \"maybe\""),
            ("proxy_ssl_server_name 1;", "3: invalid value \"1\""),
            (
                "proxy_ssl_protocols TLSv1.1;",
                "3: \"proxy_ssl_protocols\" enables neither",
            ),
            ("proxy_ssl_protocols SSLv9;", "3: invalid value \"SSLv9\""),
            (
                "proxy_ssl_name $nonsense;",
                "3: unknown \"nonsense\" variable",
            ),
            (
                "server { listen 1.2.3.4:80; location / {\nproxy_pass https://; } }",
                "4: invalid host in \"https://\"",
            ),
        ];
        for (text, want) in cases {
            let e = load_str(&conf(text), Path::new("/t/s.conf"), None).unwrap_err();
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn inheritance_of_set_header() {
        let c = load_str(
            &conf("proxy_set_header X-Outer 1; proxy_read_timeout 5s;\nserver { listen 127.0.0.1:8080; location /a { proxy_pass http://127.0.0.1:1; } location /b { proxy_pass http://127.0.0.1:1; proxy_set_header X-Inner 2; } }"),
            Path::new("/t/s.conf"),
            None,
        )
        .unwrap();
        let l = &c.http.servers[0].locations;
        assert_eq!(l[0].proxy.set_headers[0].0, "X-Outer");
        assert_eq!(l[0].proxy.read_timeout_ms, 5000);
        assert_eq!(l[1].proxy.set_headers.len(), 1);
        assert_eq!(l[1].proxy.set_headers[0].0, "X-Inner");
        assert_eq!(l[1].proxy.read_timeout_ms, 5000);
    }
}
