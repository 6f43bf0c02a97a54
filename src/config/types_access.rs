//! Typed access settings of a location (resolved by `resolve_access`):
//! `auth_basic`, `auth_request`, `satisfy`, `limit_except`, and the real
//! client address (`set_real_ip_from`, `real_ip_header`, `real_ip_recursive`).

use std::path::PathBuf;
use std::sync::Arc;

/// A location's authentication and how it combines with `allow`/`deny`.
#[derive(Debug, Clone, Default)]
pub struct AuthConf {
    /// `satisfy any` (default `all`): one module that allows is enough.
    pub satisfy_any: bool,
    /// `auth_basic REALM` with its `auth_basic_user_file` (`None`: `off`,
    /// or no file: nginx then checks nothing).
    pub basic: Option<Arc<AuthBasic>>,
    /// `auth_request URI` (`None`: `off`).
    pub request: Option<Arc<AuthRequest>>,
    /// `limit_except METHOD ... { }`: for the other methods.
    pub limit_except: Option<Arc<LimitExcept>>,
}

impl AuthConf {
    /// Whether anything beyond `allow`/`deny` is configured.
    pub fn is_active(&self) -> bool {
        self.basic.is_some() || self.request.is_some() || self.limit_except.is_some()
    }
}

/// `auth_basic` + `auth_basic_user_file`.
#[derive(Debug, Clone)]
pub struct AuthBasic {
    /// The realm (may hold variables).
    pub realm: super::Template,
    /// The htpasswd file.
    pub user_file: PathBuf,
}

/// `auth_request URI` and its `auth_request_set`s.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// The subrequest's URI (a path, perhaps with `?args`).
    pub uri: String,
    /// `auth_request_set $VAR VALUE`s: (variable index, value), evaluated
    /// when the subrequest is done.
    pub sets: Vec<(usize, super::Template)>,
    /// How many `auth_request_set` variables the configuration has.
    pub vars: usize,
}

/// `limit_except METHOD ... { ... }`.
#[derive(Debug, Clone)]
pub struct LimitExcept {
    /// The methods that are not limited (uppercase; `GET` brings `HEAD`).
    pub methods: Vec<String>,
    /// The block's `allow`/`deny` (else the location's).
    pub rules: Vec<super::AccessRule>,
    /// The block's authentication (its own, or the location's).
    pub auth: AuthConf,
}

impl LimitExcept {
    /// Whether the block applies to `method`.
    pub fn limits(&self, method: &[u8]) -> bool {
        !self
            .methods
            .iter()
            .any(|m| m.as_bytes().eq_ignore_ascii_case(method))
    }
}

/// Where the real client address comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealIpHeader {
    /// `X-Real-IP` (default).
    XRealIp,
    /// `X-Forwarded-For`.
    XForwardedFor,
    /// Another header (lowercase name).
    Other(String),
}

/// `set_real_ip_from` + `real_ip_header` + `real_ip_recursive`.
#[derive(Debug, Clone)]
pub struct RealIpConf {
    /// Trusted addresses.
    pub from: Vec<super::Cidr>,
    /// `set_real_ip_from unix:` (unix-socket clients are trusted).
    pub unix: bool,
    /// The header to read.
    pub header: RealIpHeader,
    /// `real_ip_recursive on`: skip trusted addresses from the right.
    pub recursive: bool,
}
