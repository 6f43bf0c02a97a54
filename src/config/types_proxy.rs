//! Typed configuration of the reverse proxy: `upstream { }` blocks and the
//! `proxy_*` location settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Where an upstream server listens: a TCP address or a Unix socket
/// (`server unix:/path;`, `proxy_pass http://unix:/path:/uri`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    /// TCP.
    Inet(SocketAddr),
    /// A Unix-domain stream socket.
    Unix(PathBuf),
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddr::Inet(a) => write!(f, "{a}"),
            PeerAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// How an upstream picks a server for a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Balance {
    /// Smooth weighted round robin (nginx's default).
    #[default]
    RoundRobin,
    /// `least_conn`: fewest active requests per weight, round robin among equals.
    LeastConn,
    /// `ip_hash`: the client's IPv4 /24 (or whole IPv6 address).
    IpHash,
    /// `hash KEY [consistent]`.
    Hash {
        /// The key, with variables.
        key: super::Template,
        /// ketama (160 points per weight unit) instead of `hash % weight`.
        consistent: bool,
    },
    /// `random [two [least_conn]]`.
    Random {
        /// Two random picks, the one with fewer active requests wins.
        two: bool,
    },
}

impl Balance {
    /// For logs and errors.
    pub fn as_str(&self) -> &'static str {
        match self {
            Balance::RoundRobin => "round robin",
            Balance::LeastConn => "least_conn",
            Balance::IpHash => "ip_hash",
            Balance::Hash { .. } => "hash",
            Balance::Random { .. } => "random",
        }
    }
}

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
    /// The balancing method.
    pub balance: Balance,
    /// `zone NAME [SIZE]` (accepted: sluice keeps upstream state per worker).
    pub zone: Option<String>,
    /// Whether this upstream came from a `proxy_pass` address rather than a block.
    pub implicit: bool,
    /// An implicit upstream of `proxy_pass https://` (default port 443):
    /// apart from the `http://` one to the same name.
    pub https: bool,
}

/// `server ADDR [weight=N] [max_fails=N] [fail_timeout=T] [max_conns=N] [backup] [down];`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamServer {
    /// The address as written (`hash ... consistent` hashes it, as nginx).
    pub name: String,
    /// Address.
    pub addr: PeerAddr,
    /// Relative weight for round robin (default 1).
    pub weight: u32,
    /// Failures within `fail_timeout` that mark the server down (default 1; 0 = never).
    pub max_fails: u32,
    /// Window for `max_fails`, and how long a failed server rests (default 10s).
    pub fail_timeout_ms: u64,
    /// Used only when every primary server is down.
    pub backup: bool,
    /// `down`: never used.
    pub down: bool,
    /// `max_conns`: active requests at most, per worker (0 = no limit).
    pub max_conns: u32,
}

impl UpstreamServer {
    /// A server with nginx's defaults.
    pub fn new(name: &str, addr: PeerAddr) -> UpstreamServer {
        UpstreamServer {
            name: name.to_string(),
            addr,
            weight: 1,
            max_fails: 1,
            fail_timeout_ms: 10_000,
            backup: false,
            down: false,
            max_conns: 0,
        }
    }
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
    /// Index into `HttpConf::upstreams` (meaningless when `dynamic`).
    pub upstream: usize,
    /// `proxy_pass http://$backend...`: the target with variables,
    /// evaluated per request (an upstream name or `host:port`).
    pub dynamic: Option<DynamicPass>,
    /// The URI part (`/uri`), which replaces the location prefix as nginx
    /// does; `None` passes the request URI unchanged.
    pub uri: Option<String>,
    /// `https://`: how the upstream connections are made.
    pub tls: Option<ProxyTls>,
}

/// A `proxy_pass` with variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicPass {
    /// The authority (`$backend`, `$host:8080`).
    pub authority: super::Template,
    /// The URI part with variables: it replaces the request URI whole, as
    /// nginx does (`None`: the request URI unchanged).
    pub uri: Option<super::Template>,
    /// `https://`.
    pub https: bool,
}

/// `proxy_redirect FROM TO` (resolved: `default` becomes one of these).
#[derive(Debug, Clone)]
pub struct ProxyRedirect {
    /// What to look for.
    pub from: RedirectFrom,
    /// The replacement (variables; for a regex, `$1`..`$9` are its captures).
    pub to: super::Template,
}

/// The pattern of a `proxy_redirect`.
#[derive(Debug, Clone)]
pub enum RedirectFrom {
    /// A prefix of the header value (case-sensitive, as nginx).
    Prefix(super::Template),
    /// `~regex` / `~*regex`: the whole value is replaced when it matches.
    Regex(regex::bytes::Regex),
}

impl PartialEq for ProxyRedirect {
    fn eq(&self, o: &Self) -> bool {
        self.to == o.to
            && match (&self.from, &o.from) {
                (RedirectFrom::Prefix(a), RedirectFrom::Prefix(b)) => a == b,
                (RedirectFrom::Regex(a), RedirectFrom::Regex(b)) => a.as_str() == b.as_str(),
                _ => false,
            }
    }
}

impl Eq for ProxyRedirect {}

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
    /// `proxy_hide_header NAME`: headers removed from responses (lowercase),
    /// besides nginx's defaults (`X-Accel-*`, `X-Pad`).
    pub hide_headers: Vec<String>,
    /// `proxy_pass_header NAME`: headers passed that would be hidden or
    /// replaced (`Server`, `Date`, `X-Accel-*`), lowercase.
    pub pass_headers: Vec<String>,
    /// `proxy_redirect` rules for `Location` and `Refresh`, in order (the
    /// first that matches rewrites); empty = off.
    pub redirects: Vec<ProxyRedirect>,
    /// `proxy_buffering` (default on). Off: nothing is cached; bytes are
    /// relayed as they come (as they always are).
    pub buffering: bool,
    /// `proxy_intercept_errors` (default off): an upstream status >= 300
    /// with an `error_page` is answered by that page.
    pub intercept_errors: bool,
    /// `resolver ... valid=T`: names in a `proxy_pass` with variables are
    /// looked up and kept this long (`None`: no resolver, such a name is a 502).
    pub resolver_valid_ms: Option<u64>,
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
            pass_headers: Vec::new(),
            redirects: Vec::new(),
            buffering: true,
            intercept_errors: false,
            resolver_valid_ms: None,
        }
    }
}
