//! Typed configuration of the traffic limits: the zones declared in `http`
//! (`limit_req_zone`, `count_zone`, `limit_bytes_zone`) and what each
//! location applies (`limit_req`, `count`, `count_report`, `limit_bytes`,
//! `limit_check` and their settings). Parsed by `resolve_limits.rs`; zone
//! references are already resolved to indices into [`LimitsConf::zones`].
//!
//! A key is a [`Template`] of the variables engine (`config::vars`): the
//! concatenation of its parts. No parts = one key for the whole zone (`count`
//! without `key=`); parts that all evaluate to nothing = the request is not
//! limited (as nginx); `limit_req_subnet` applies to `$remote_addr` and
//! `$binary_remote_addr`. Evaluation is `http::limits_phase` + `limits::key`.

use super::Template;

/// What a zone holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneKind {
    /// `limit_req_zone ... rate=`: one GCRA cell per key.
    Rate {
        /// Emission interval: 1 / rate, in microseconds.
        interval_us: u64,
    },
    /// `count_zone ... window= precision=`: a ring of buckets per key.
    Count {
        /// Window length in milliseconds.
        window_ms: u64,
        /// Bucket width in milliseconds (divides `window_ms`).
        precision_ms: u64,
    },
    /// `limit_bytes_zone ... quota= per=`: bytes per key per period.
    Bytes {
        /// Bytes allowed per period.
        quota_bytes: u64,
        /// Period length in milliseconds.
        per_ms: u64,
    },
}

impl ZoneKind {
    /// Words of state per key: the algorithm's cells, plus the cluster
    /// bookkeeping of a `cluster=on` zone (see `limits::cluster`).
    pub fn payload_words(&self, cluster: bool) -> u64 {
        let (own, synced) = match *self {
            ZoneKind::Rate { .. } => (1, 3),
            ZoneKind::Count {
                window_ms,
                precision_ms,
            } => ((window_ms / precision_ms.max(1)).max(1), 3),
            ZoneKind::Bytes { .. } => (1, 2),
        };
        own + if cluster { synced } else { 0 }
    }

    /// The directive that declares this kind of zone.
    pub fn directive(&self) -> &'static str {
        match self {
            ZoneKind::Rate { .. } => "limit_req_zone",
            ZoneKind::Count { .. } => "count_zone",
            ZoneKind::Bytes { .. } => "limit_bytes_zone",
        }
    }
}

/// One declared zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitZoneConf {
    /// Zone name (also the file name `STATE_DIR/NAME.zone`).
    pub name: String,
    /// Zone size in bytes (file size, header included; page multiple).
    pub size_bytes: u64,
    /// The zone's key (empty for `count_zone`, whose key is per `count`).
    pub key: Template,
    /// Kind and parameters.
    pub kind: ZoneKind,
    /// `cluster=on`: global over the `cluster` Redis.
    pub cluster: bool,
    /// Line of the declaring directive.
    pub line: usize,
}

/// `http`-level limit settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitsConf {
    /// Every declared zone, in file order; locations refer to them by index.
    pub zones: Vec<LimitZoneConf>,
}

/// `nodelay` / `delay=N` of `limit_req`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqDelay {
    /// `nodelay`: requests within the burst are served at once.
    NoDelay,
    /// `delay=N` (default 0): the first N excess requests are not delayed,
    /// later ones within the burst are delayed to the rate.
    After(u64),
}

/// `limit_req zone=NAME [burst=N] [nodelay | delay=N];`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitReqConf {
    /// Index into [`LimitsConf::zones`] (a `limit_req_zone`).
    pub zone: usize,
    /// Excess requests allowed (default 0).
    pub burst: u64,
    /// Delay mode.
    pub delay: ReqDelay,
}

/// `count zone=NAME [key=KEY];` / `count_report zone=NAME [key=KEY];`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountConf {
    /// Index into [`LimitsConf::zones`] (a `count_zone`).
    pub zone: usize,
    /// The key; no parts = one counter for the zone.
    pub key: Template,
}

/// Limits applied by one location (inheritable settings already merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationLimits {
    /// `limit_req` (inherited only when the location has none, as nginx).
    pub req: Vec<LimitReqConf>,
    /// `limit_req_status` (default 429).
    pub req_status: u16,
    /// `limit_req_dry_run on|off` (default off).
    pub dry_run: bool,
    /// `limit_req_log_level info|notice|warn|error` (default error); delays
    /// are logged one level lower.
    pub log_level: log::Level,
    /// `limit_req_subnet V4BITS V6BITS` (default 32 128: whole addresses).
    pub subnet_v4_bits: u8,
    /// IPv6 prefix length.
    pub subnet_v6_bits: u8,
    /// `limit_bytes zone=NAME` (indices of `limit_bytes_zone`s).
    pub bytes: Vec<usize>,
    /// `count zone=NAME [key=KEY]` (location only).
    pub count: Vec<CountConf>,
    /// `count_report zone=NAME [key=KEY]` (location only): the content.
    pub report: Option<CountConf>,
    /// `limit_check;` (location only): answer 204 / the rejection status for
    /// an `auth_request` subrequest, keyed by its X-Real-IP / X-Original-URI.
    pub check: bool,
}

impl Default for LocationLimits {
    fn default() -> Self {
        LocationLimits {
            req: Vec::new(),
            req_status: 429,
            dry_run: false,
            log_level: log::Level::Error,
            subnet_v4_bits: 32,
            subnet_v6_bits: 128,
            bytes: Vec::new(),
            count: Vec::new(),
            report: None,
            check: false,
        }
    }
}

impl LocationLimits {
    /// Whether the limits phase has anything to do here.
    pub fn is_active(&self) -> bool {
        !self.req.is_empty()
            || !self.bytes.is_empty()
            || !self.count.is_empty()
            || self.report.is_some()
            || self.check
    }
}
