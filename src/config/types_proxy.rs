//! Typed configuration of the reverse proxy: `upstream { }` blocks and the
//! `proxy_*` location settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// `upstream NAME { server ...; keepalive N; }` (or an implicit one for a
/// `proxy_pass` straight to an address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConf {
    /// Name as written (`127.0.0.1:8080` for implicit upstreams).
    pub name: String,
    /// Servers, in file order.
    pub servers: Vec<UpstreamServer>,
    /// Idle keep-alive connections kept per worker (0 = close after each request).
    pub keepalive: usize,
    /// Whether this upstream came from a `proxy_pass` address rather than a block.
    pub implicit: bool,
    /// An implicit upstream of `proxy_pass https://` (default port 443):
    /// apart from the `http://` one to the same name.
    pub https: bool,
}

/// `server ADDR:PORT [weight=N] [max_fails=N] [fail_timeout=T] [backup];`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamServer {
    /// Address.
    pub addr: SocketAddr,
    /// Relative weight for round robin (default 1).
    pub weight: u32,
    /// Failures within `fail_timeout` that mark the server down (default 1; 0 = never).
    pub max_fails: u32,
    /// Window for `max_fails`, and how long a failed server rests (default 10s).
    pub fail_timeout_ms: u64,
    /// Used only when every primary server is down.
    pub backup: bool,
}

/// When a failed attempt is retried on the next server (`proxy_next_upstream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextUpstream {
    /// Connect or I/O error before the response head.
    pub error: bool,
    /// Timeout before the response head.
    pub timeout: bool,
    /// Malformed response head.
    pub invalid_header: bool,
    /// Retry on these statuses.
    pub http_500: bool,
    /// 502
    pub http_502: bool,
    /// 503
    pub http_503: bool,
    /// 504
    pub http_504: bool,
    /// 404
    pub http_404: bool,
    /// 429
    pub http_429: bool,
    /// Also retry non-idempotent requests (nginx's `non_idempotent`).
    pub non_idempotent: bool,
}

impl Default for NextUpstream {
    fn default() -> Self {
        NextUpstream {
            error: true,
            timeout: true,
            invalid_header: false,
            http_500: false,
            http_502: false,
            http_503: false,
            http_504: false,
            http_404: false,
            http_429: false,
            non_idempotent: false,
        }
    }
}

impl NextUpstream {
    /// `proxy_next_upstream off`.
    pub fn off() -> Self {
        NextUpstream {
            error: false,
            timeout: false,
            ..Default::default()
        }
    }

    /// Whether a response with `status` is retried.
    pub fn retries_status(&self, status: u16) -> bool {
        match status {
            500 => self.http_500,
            502 => self.http_502,
            503 => self.http_503,
            504 => self.http_504,
            404 => self.http_404,
            429 => self.http_429,
            _ => false,
        }
    }
}

/// `proxy_pass http[s]://NAME|ADDR:PORT[/uri];`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPass {
    /// Index into `HttpConf::upstreams`.
    pub upstream: usize,
    /// The URI part (`/uri`), which replaces the location prefix as nginx
    /// does; `None` passes the request URI unchanged.
    pub uri: Option<String>,
    /// `https://`: how the upstream connections are made.
    pub tls: Option<ProxyTls>,
}

/// TLS to the upstream of an `https://` `proxy_pass`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyTls {
    /// Index into `HttpConf::upstream_tls`: the client configuration of the
    /// location's `proxy_ssl_*` settings (one per distinct set of them).
    pub client: usize,
    /// `proxy_ssl_name` (with variables); `None`: `host`.
    pub name: Option<super::Template>,
    /// The `proxy_pass` host without its port (nginx's default name).
    pub host: String,
}

/// The `proxy_ssl_*` settings that make a client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTlsSettings {
    /// `proxy_ssl_verify` (default off).
    pub verify: bool,
    /// `proxy_ssl_trusted_certificate` (`None`: the system's roots, used
    /// only with `proxy_ssl_verify on`).
    pub trusted: Option<PathBuf>,
    /// `proxy_ssl_protocols` allows TLS 1.2 (default both).
    pub tls12: bool,
    /// ... and TLS 1.3.
    pub tls13: bool,
    /// `proxy_ssl_server_name` (default off: no SNI).
    pub server_name: bool,
    /// `proxy_ssl_session_reuse` (default on).
    pub session_reuse: bool,
    /// `proxy_ssl_crl` (used with `proxy_ssl_verify on`).
    pub crl: Option<PathBuf>,
    /// `proxy_ssl_certificate` and `proxy_ssl_certificate_key`.
    pub certificate: Option<(PathBuf, PathBuf)>,
}

/// One client configuration for HTTPS upstreams, built while the config
/// is read.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// What it was built from.
    pub settings: UpstreamTlsSettings,
    /// The rustls configuration (its session cache is per worker: each
    /// worker has its own copy after the fork).
    pub config: Arc<rustls::ClientConfig>,
}

/// Proxy settings of a location (merged http -> server -> location).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationProxy {
    /// Where to pass requests; `None` = this location does not proxy.
    pub pass: Option<ProxyPass>,
    /// `proxy_set_header NAME VALUE;` (nginx inheritance: a level with any
    /// replaces the inherited list). An empty value removes the header.
    pub set_headers: Vec<(String, super::Template)>,
    /// `proxy_http_version 1.0|1.1` (default 1.1; 1.0 closes every upstream connection).
    pub http_version_minor: u8,
    /// `proxy_connect_timeout` (default 60s).
    pub connect_timeout_ms: u64,
    /// `proxy_read_timeout` (default 60s): between two reads from the upstream.
    pub read_timeout_ms: u64,
    /// `proxy_send_timeout` (default 60s): between two writes to the upstream.
    pub send_timeout_ms: u64,
    /// `proxy_next_upstream` (default `error timeout`).
    pub next_upstream: NextUpstream,
    /// `proxy_next_upstream_tries` (default 0 = as many as there are servers).
    pub next_upstream_tries: u32,
    /// `proxy_pass_header Server|Date ...` is not supported; `proxy_hide_header NAME`
    /// headers removed from responses.
    pub hide_headers: Vec<String>,
}

impl Default for LocationProxy {
    fn default() -> Self {
        LocationProxy {
            pass: None,
            set_headers: Vec::new(),
            http_version_minor: 1,
            connect_timeout_ms: 60_000,
            read_timeout_ms: 60_000,
            send_timeout_ms: 60_000,
            next_upstream: NextUpstream::default(),
            next_upstream_tries: 0,
            hide_headers: Vec::new(),
        }
    }
}
