//! Typed cache configuration: `proxy_cache_path` (http level) and the
//! per-location `proxy_cache*` settings, already merged and defaulted.
//! Parsed by `resolve_cache.rs`. Durations are milliseconds, sizes bytes.

use std::net::IpAddr;
use std::path::PathBuf;

/// nginx's default `proxy_cache_key`.
pub const DEFAULT_CACHE_KEY: &str = "$scheme$proxy_host$request_uri";

/// Most directory levels of a cache (`levels=1:2:2`).
pub const MAX_LEVELS: usize = 3;

/// True when `levels` is valid for `proxy_cache_path`: 1 to 3 levels of 1 or
/// 2 hex digits each.
pub fn valid_levels(levels: &[u8]) -> bool {
    (1..=MAX_LEVELS).contains(&levels.len()) && levels.iter().all(|&l| l == 1 || l == 2)
}

/// `proxy_cache_path DIR [levels=1:2] keys_zone=NAME:SIZE [max_size=S]
/// [inactive=T] [min_free=S] [use_temp_path=on|off] [loader_*=] [manager_*=];`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePathConf {
    /// Absolute cache directory.
    pub dir: PathBuf,
    /// Hex digits per directory level, outermost first (each 1 or 2, at most
    /// 3 levels). Empty = all files directly in `dir`.
    pub levels: Vec<u8>,
    /// `keys_zone` name, used by `proxy_cache NAME`.
    pub zone_name: String,
    /// `keys_zone` size in bytes (bounds the index: ~8000 keys per MiB, as nginx).
    pub zone_size_bytes: u64,
    /// `max_size`: total bytes on disk before the manager evicts (LRU). `None` = unlimited.
    pub max_size_bytes: Option<u64>,
    /// `min_free`: free space to keep on the file system. `None` = no check.
    pub min_free_bytes: Option<u64>,
    /// `inactive`: entries not accessed for this long are removed (default 10m).
    pub inactive_ms: u64,
    /// `use_temp_path` (default on). Accepted for compatibility; sluice always
    /// writes temp files to `DIR/tmp`, on the cache's own file system.
    pub use_temp_path: bool,
    /// `loader_files` (default 100): files indexed per loader iteration.
    pub loader_files: u64,
    /// `loader_sleep` (default 50ms): pause between loader iterations.
    pub loader_sleep_ms: u64,
    /// `loader_threshold` (default 200ms): longest loader iteration.
    pub loader_threshold_ms: u64,
    /// `manager_files` (default 100): files removed per manager iteration.
    pub manager_files: u64,
    /// `manager_sleep` (default 50ms).
    pub manager_sleep_ms: u64,
    /// `manager_threshold` (default 200ms).
    pub manager_threshold_ms: u64,
}

/// `proxy_cache_use_stale`: when a stale entry may answer instead of the origin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UseStale {
    /// The origin could not be reached or failed mid-response.
    pub error: bool,
    /// The origin timed out.
    pub timeout: bool,
    /// The origin sent an invalid response head.
    pub invalid_header: bool,
    /// Another request is already refreshing the entry.
    pub updating: bool,
    /// The origin answered 500.
    pub http_500: bool,
    /// 502.
    pub http_502: bool,
    /// 503.
    pub http_503: bool,
    /// 504.
    pub http_504: bool,
    /// 403.
    pub http_403: bool,
    /// 404.
    pub http_404: bool,
    /// 429.
    pub http_429: bool,
}

impl UseStale {
    /// Does this config allow a stale answer when the origin replies `status`?
    pub fn on_status(&self, status: u16) -> bool {
        match status {
            500 => self.http_500,
            502 => self.http_502,
            503 => self.http_503,
            504 => self.http_504,
            403 => self.http_403,
            404 => self.http_404,
            429 => self.http_429,
            _ => false,
        }
    }

    /// Is any origin-failure case enabled (everything but `updating`)?
    pub fn any_failure(&self) -> bool {
        let s = UseStale {
            updating: false,
            ..*self
        };
        s != UseStale::default()
    }
}

/// `proxy_ignore_headers`: origin headers whose caching meaning is ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IgnoreHeaders {
    /// `X-Accel-Expires`.
    pub x_accel_expires: bool,
    /// `Expires`.
    pub expires: bool,
    /// `Cache-Control` (all response directives).
    pub cache_control: bool,
    /// `Set-Cookie`: such responses are cached (the cookie itself is not stored).
    pub set_cookie: bool,
    /// `Vary`: variants are not distinguished (`Vary: *` is then cacheable).
    pub vary: bool,
}

/// An address prefix (`ADDR/LEN`): `proxy_cache_purge from`, `allow`, `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address (host bits zeroed).
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub prefix_len: u8,
}

impl Cidr {
    /// Is `ip` inside this prefix? IPv4-mapped IPv6 clients match IPv4 prefixes.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                prefix_eq(&net.octets(), &a.octets(), self.prefix_len)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                prefix_eq(&net.octets(), &a.octets(), self.prefix_len)
            }
            _ => false,
        }
    }
}

/// Are the first `bits` bits of `a` and `b` equal?
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits).min(a.len() * 8);
    let full = bits / 8;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

/// The `proxy_cache*` settings of one location (merged http -> server ->
/// location, nginx style: an inner level's list replaces the outer one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationCacheConf {
    /// `proxy_cache NAME|off` (default off = `None`).
    pub zone: Option<String>,
    /// `proxy_cache_key` (default [`DEFAULT_CACHE_KEY`]).
    pub key: super::Template,
    /// `proxy_cache_valid [code ...] time`: (statuses, ms) in config order;
    /// empty statuses = `any`. No codes means 200 301 302, as nginx.
    pub valid: Vec<(Vec<u16>, u64)>,
    /// `proxy_cache_methods` (default and always including GET HEAD).
    pub methods: Vec<String>,
    /// `proxy_cache_min_uses` (default 1).
    pub min_uses: u64,
    /// `proxy_cache_bypass` strings (variables, unevaluated): serve from origin.
    pub bypass: Vec<super::Template>,
    /// `proxy_no_cache` strings: do not store the response.
    pub no_cache: Vec<super::Template>,
    /// `proxy_cache_lock` (default off): one fill per key.
    pub lock: bool,
    /// `proxy_cache_lock_timeout` (default 5s): then go to the origin uncached.
    pub lock_timeout_ms: u64,
    /// `proxy_cache_lock_age` (default 5s): a fill older than this lets one more through.
    pub lock_age_ms: u64,
    /// `proxy_cache_use_stale` (default off).
    pub use_stale: UseStale,
    /// `proxy_cache_background_update` (default off): refresh a stale entry
    /// in the background while the stale one is served.
    pub background_update: bool,
    /// `proxy_cache_revalidate` (default ON, unlike nginx's off): expired
    /// entries with validators are revalidated with If-None-Match /
    /// If-Modified-Since, as RFC 9111 intends.
    pub revalidate: bool,
    /// `proxy_cache_convert_head` (default on): fill the cache with GET for HEAD.
    pub convert_head: bool,
    /// `proxy_ignore_headers`.
    pub ignore_headers: IgnoreHeaders,
    /// `proxy_cache_purge on|off` (default off): accept the PURGE method.
    pub purge: bool,
    /// `proxy_cache_purge on from ...` allow list (default 127.0.0.0/8 and ::1).
    pub purge_allow: Vec<Cidr>,
}

impl Default for LocationCacheConf {
    fn default() -> Self {
        LocationCacheConf {
            zone: None,
            key: super::Template::compile(DEFAULT_CACHE_KEY).unwrap_or_default(),
            valid: Vec::new(),
            methods: vec!["GET".to_string(), "HEAD".to_string()],
            min_uses: 1,
            bypass: Vec::new(),
            no_cache: Vec::new(),
            lock: false,
            lock_timeout_ms: 5000,
            lock_age_ms: 5000,
            use_stale: UseStale::default(),
            background_update: false,
            revalidate: true,
            convert_head: true,
            ignore_headers: IgnoreHeaders::default(),
            purge: false,
            purge_allow: default_purge_allow(),
        }
    }
}

/// Loopback only: 127.0.0.0/8 and ::1.
pub fn default_purge_allow() -> Vec<Cidr> {
    vec![
        Cidr {
            addr: IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 0)),
            prefix_len: 8,
        },
        Cidr {
            addr: IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            prefix_len: 128,
        },
    ]
}

impl LocationCacheConf {
    /// May `ip` send PURGE here?
    pub fn purge_allowed(&self, ip: IpAddr) -> bool {
        self.purge && self.purge_allow.iter().any(|p| p.contains(ip))
    }
}
