//! Typed, validated configuration: what the rest of sluice reads.
//!
//! Produced by `config::load` from the raw directive tree. Every path here is
//! absolute (relative paths in the file resolve against the config file's
//! directory). Durations are milliseconds, sizes are bytes; names carry units.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::types_limits::{LimitsConf, LocationLimits};

/// How connections reach workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptMode {
    /// The master accepts and passes each fd to a worker over a socketpair.
    Handoff,
    /// Each worker accepts on its own SO_REUSEPORT socket.
    Reuseport,
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Absolute path of the main config file (or "<embedded>").
    pub file: PathBuf,
    /// Number of workers (`auto` already resolved to the number of cores).
    pub worker_processes: usize,
    /// `daemon on|off` (default on).
    pub daemon: bool,
    /// `pid FILE` (default /run/sluice.pid).
    pub pid_path: PathBuf,
    /// `error_log FILE [level]`; `None` path means stderr.
    pub error_log: ErrorLogConf,
    /// `worker_shutdown_timeout` (default 10s).
    pub worker_shutdown_timeout_ms: u64,
    /// `state_dir DIR` (default /var/lib/sluice).
    pub state_dir: PathBuf,
    /// `worker_rlimit_nofile N` (default: raise the soft limit to the hard limit).
    pub worker_rlimit_nofile: Option<u64>,
    /// `user USER [GROUP]`: who the workers run as. `None` when not set, or
    /// when the config is read by a process that is not root (nginx: the
    /// directive is then ignored with a warning).
    pub user: Option<crate::sys::Account>,
    /// The `events { }` block.
    pub events: EventsConf,
    /// The `http { }` block.
    pub http: HttpConf,
}

/// `error_log`.
#[derive(Debug, Clone)]
pub struct ErrorLogConf {
    /// File to append to; `None` = stderr.
    pub path: Option<PathBuf>,
    /// Minimum level written.
    pub level: log::LevelFilter,
}

/// `events { worker_connections N; accept_mode handoff|reuseport; }`
#[derive(Debug, Clone)]
pub struct EventsConf {
    /// Per-worker connection cap (default 1024).
    pub worker_connections: usize,
    /// Default `Handoff`.
    pub accept_mode: AcceptMode,
}

/// Access log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// nginx `combined`.
    Combined,
    /// One JSON object per line.
    Json,
    /// A `log_format` (index into `HttpConf::log_formats`).
    Custom(usize),
}

/// How a `log_format` escapes variable values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEscape {
    /// `"`, `\` and bytes outside 0x20-0x7e as `\xHH` (nginx's default).
    Default,
    /// JSON string escaping.
    Json,
    /// Nothing.
    None,
}

/// `log_format NAME [escape=...] STRING...;`
#[derive(Debug, Clone)]
pub struct LogFormatConf {
    /// Its name.
    pub name: String,
    /// How values are escaped.
    pub escape: LogEscape,
    /// The line (without its newline).
    pub template: super::Template,
}

/// One access log target (deduplicated by path across the config).
#[derive(Debug, Clone)]
pub struct AccessLogConf {
    /// Absolute path.
    pub path: PathBuf,
    /// Line format.
    pub format: LogFormat,
    /// `buffer=` in bytes; 0 = hand each event-loop iteration's lines to the log thread.
    pub buffer_bytes: usize,
    /// `flush=` in ms; 0 = no timed flush beyond the per-iteration one.
    pub flush_ms: u64,
}

/// The `http { }` block.
#[derive(Debug, Clone)]
pub struct HttpConf {
    /// All distinct access logs; locations refer to them by index.
    pub access_logs: Vec<AccessLogConf>,
    /// MIME types: extension (lowercase, no dot) -> type. Filled from `types {}`
    /// blocks, or a built-in table when the config has none.
    pub mime_types: Vec<(String, String)>,
    /// `default_type` (default "application/octet-stream").
    pub default_type: String,
    /// Servers in file order. The first server for a listen address is its default
    /// unless another has `default_server`.
    pub servers: Vec<ServerConf>,
    /// `upstream { }` blocks, then implicit upstreams of `proxy_pass ADDR`.
    pub upstreams: Vec<super::UpstreamConf>,
    /// Client configurations of `proxy_pass https://` (`ProxyTls::client`).
    pub upstream_tls: Vec<super::UpstreamTls>,
    /// `proxy_cache_path` zones.
    pub cache_paths: Vec<super::CachePathConf>,
    /// Traffic-limit zones (`limit_req_zone`, `count_zone`, `limit_bytes_zone`).
    pub limits: LimitsConf,
    /// Waiting rooms (`waiting_room_zone`, `waiting_room_secret`).
    pub waiting_rooms: super::WaitingRoomsConf,
    /// `cluster`: the Redis that makes `cluster=on` zones global.
    pub cluster: Option<super::ClusterConf>,
    /// The TLS server configuration of each `listen ... ssl` address (every
    /// server on it, by SNI), built while the config is read.
    pub tls: Vec<(SocketAddr, crate::tls::TlsAddress)>,
    /// `map` blocks, by `Var::Map` index.
    pub maps: Vec<super::MapConf>,
    /// `log_format`s, by `LogFormat::Custom` index.
    pub log_formats: Vec<LogFormatConf>,
}

/// `listen ADDR:PORT [ssl] [http2] [default_server] [reuseport] [backlog=N];`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenConf {
    /// Address to bind.
    pub addr: SocketAddr,
    /// `default_server` flag.
    pub default_server: bool,
    /// `reuseport` flag (forces per-worker SO_REUSEPORT sockets for this address).
    pub reuseport: bool,
    /// `backlog=N` (default 4096; the kernel caps it at somaxconn).
    pub backlog: i32,
    /// `ssl`: connections on this address speak TLS.
    pub ssl: bool,
    /// `http2`: HTTP/2 on this address (ALPN `h2` with `ssl`, h2c with
    /// prior knowledge without), next to HTTP/1.1.
    pub http2: bool,
}

/// One `server { }`.
#[derive(Debug, Clone)]
pub struct ServerConf {
    /// Where this server block starts, for messages.
    pub line: usize,
    /// `listen` directives (default 0.0.0.0:80 when none, as nginx).
    pub listens: Vec<ListenConf>,
    /// `server_name` values (lowercased). Empty = "".
    pub server_names: Vec<String>,
    /// `client_header_timeout` (default 60s).
    pub client_header_timeout_ms: u64,
    /// `large_client_header_buffers COUNT SIZE` (default 4 8k).
    pub large_header_buffers: (usize, usize),
    /// HTTP/2 settings (`http2`, `http2_max_concurrent_streams`, ...).
    pub http2: Http2Conf,
    /// The server's rewrite-module directives (`rewrite`, `return`, `set`,
    /// `if`, `break`): run for every request before a location is chosen.
    pub rewrite: super::RewriteConf,
    /// Locations, in file order. Always contains at least one entry: when the
    /// file has no `location /`, a synthetic prefix location "/" carrying the
    /// server-level settings is appended, so every URI starting with '/' matches.
    pub locations: Vec<LocationConf>,
    /// TLS settings (used when it listens with `ssl`).
    pub ssl: super::SslConf,
    /// Some location has `set_real_ip_from`.
    pub realip: bool,
    /// The server level's real-IP settings (nginx's post-read phase: when
    /// they replace the address, a location's are not read again).
    pub realip_server: Option<std::sync::Arc<super::RealIpConf>>,
}

impl ServerConf {
    /// Whether this server turns HTTP/2 on for `addr` (`listen ... http2`
    /// on it, or `http2 on;` with a listen there).
    pub fn speaks_h2_on(&self, addr: std::net::SocketAddr) -> bool {
        self.listens
            .iter()
            .any(|l| l.addr == addr && (l.http2 || self.http2.on))
    }
}

/// A server's HTTP/2 settings (http or server level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Conf {
    /// `http2 on|off` (nginx 1.25.1): HTTP/2 on the server's addresses,
    /// as `listen ... http2` does for one address (default off).
    pub on: bool,
    /// `http2_max_concurrent_streams N` (default 128).
    pub max_concurrent_streams: u32,
    /// `http2_max_field_size SIZE`: the largest field after decompression
    /// (default: a `large_client_header_buffers` buffer).
    pub max_field_bytes: Option<usize>,
    /// `http2_max_header_size SIZE`: the largest header list after
    /// decompression (default: all `large_client_header_buffers`).
    pub max_header_bytes: Option<usize>,
    /// `http2_recv_timeout T`: how long a frame or a header block may take
    /// to arrive once started (default: `client_header_timeout`).
    pub recv_timeout_ms: Option<u64>,
    /// `http2_idle_timeout T`: an HTTP/2 connection with no stream open
    /// (default: `keepalive_timeout`).
    pub idle_timeout_ms: Option<u64>,
}

impl Default for Http2Conf {
    fn default() -> Self {
        Http2Conf {
            on: false,
            max_concurrent_streams: 128,
            max_field_bytes: None,
            max_header_bytes: None,
            recv_timeout_ms: None,
            idle_timeout_ms: None,
        }
    }
}

/// How a location matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocationMatch {
    /// `location = /x`
    Exact,
    /// `location ^~ /x` (longest prefix; when it is the longest, no regex
    /// is tried)
    PrefixNoRegex,
    /// `location /x`
    Prefix,
    /// `location ~ RE` / `location ~* RE` (case-insensitive): tried in
    /// config order after the prefixes; the first match wins.
    Regex,
    /// `location @name`: never matched by a URI (a target for internal
    /// redirects).
    Named,
    /// The block of an `if` in a location: never matched by a URI; the
    /// request moves here when the condition holds.
    If,
}

/// One `allow` or `deny`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    /// `allow` (else `deny`).
    pub allow: bool,
    /// The addresses (`all`: a zero-length prefix of each family).
    pub from: Vec<super::Cidr>,
}

impl AccessRule {
    /// Whether `ip` falls under this rule.
    pub fn matches(&self, ip: std::net::IpAddr) -> bool {
        self.from.iter().any(|p| p.contains(ip))
    }
}

/// `return CODE [TEXT|URL];` / `return URL;`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnConf {
    /// Status code (URL-only form means 302).
    pub code: u16,
    /// Body text for non-redirect codes, or the Location for 301/302/303/307/308.
    pub text: Option<super::Template>,
}

/// One `location { }`, with every inheritable setting already merged from
/// server and http level (nginx's merge step).
#[derive(Debug, Clone)]
pub struct LocationConf {
    /// Line of the `location` directive (0 for the synthetic one).
    pub line: usize,
    /// Match kind.
    pub match_kind: LocationMatch,
    /// The URI prefix or exact path (the pattern, for a regex location).
    pub path: String,
    /// The compiled pattern of a regex location.
    pub regex: Option<regex::bytes::Regex>,
    /// `root` (default `<conf dir>/html`, as nginx's prefix/html).
    pub root: PathBuf,
    /// `index` files (default ["index.html"]).
    pub index: Vec<String>,
    /// The location's rewrite-module directives, in config order (`return`
    /// among them).
    pub rewrite: super::RewriteConf,
    /// `allow` / `deny` rules in order (the first that matches decides; none:
    /// allowed). A level with its own rules replaces the outer ones.
    pub access: Vec<AccessRule>,
    /// `auth_basic`, `auth_request`, `satisfy`, `limit_except`.
    pub auth: super::AuthConf,
    /// `set_real_ip_from` and friends (`None`: no trusted address).
    pub realip: Option<std::sync::Arc<super::RealIpConf>>,
    /// `try_files` (the location's, else the server's).
    pub try_files: Option<super::TryFiles>,
    /// `error_page`s (merged http -> server -> location).
    pub error_pages: Vec<super::ErrorPage>,
    /// `alias` (instead of `root`): the path the location's prefix maps to,
    /// or, with variables (a regex location's captures), the whole path.
    pub alias: Option<super::Template>,
    /// `status;` makes this location the metrics endpoint.
    pub status: bool,
    /// Indices into `HttpConf::access_logs`; empty = `access_log off`.
    pub access_logs: Vec<usize>,
    /// `keepalive_timeout` (default 75s; 0 disables keep-alive).
    pub keepalive_timeout_ms: u64,
    /// `keepalive_requests` (default 1000).
    pub keepalive_requests: u64,
    /// `client_body_timeout` (default 60s).
    pub client_body_timeout_ms: u64,
    /// `send_timeout` (default 60s).
    pub send_timeout_ms: u64,
    /// `client_max_body_size` (default 1m; 0 = unlimited).
    pub client_max_body_size_bytes: u64,
    /// `sendfile on|off` (default on).
    pub sendfile: bool,
    /// `tcp_nodelay on|off` (default on).
    pub tcp_nodelay: bool,
    /// `server_tokens on|off` (default on: "Server: sluice/VERSION", off: "Server: sluice").
    pub server_tokens: bool,
    /// `expires`, `charset`, `etag`.
    pub extras: super::Extras,
    /// `gzip*`.
    pub gzip: super::GzipConf,
    /// `add_header NAME VALUE [always];` (merged like nginx: a level with any
    /// add_header replaces the inherited list).
    pub add_headers: Vec<AddHeader>,
    /// Reverse-proxy settings (`proxy_pass` and friends).
    pub proxy: super::LocationProxy,
    /// Cache settings (`proxy_cache` and friends).
    pub cache: super::LocationCacheConf,
    /// Traffic limits applied here (`limit_req`, `count`, ...).
    pub limits: LocationLimits,
    /// `waiting_room NAME;` (and its page template).
    pub waiting_room: Option<super::LocationRoom>,
}

/// `add_header NAME VALUE [always];`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddHeader {
    /// Header name as written.
    pub name: String,
    /// Header value (variables are evaluated per response).
    pub value: super::Template,
    /// Also on error responses.
    pub always: bool,
}
