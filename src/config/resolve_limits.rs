//! Typed resolution, part 3: the traffic-limit directives.
//!
//! - zones, in `http`: `limit_req_zone KEY zone=NAME:SIZE rate=Nr/s|Nr/m;`,
//!   `count_zone zone=NAME:SIZE window=TIME [precision=TIME];`,
//!   `limit_bytes_zone KEY zone=NAME:SIZE quota=SIZE per=TIME;`
//! - inheritable (http, server, location): `limit_req`, `limit_req_status`,
//!   `limit_req_dry_run`, `limit_req_log_level`, `limit_req_subnet`,
//!   `limit_bytes` — `limit_req` and `limit_bytes` lists are inherited only
//!   by a level that has none of its own (nginx's array rule);
//! - location only: `count`, `count_report`, `limit_check`.
//!
//! Keys (`KEY`, `key=`) are compiled by the variables engine, so any variable
//! it knows may be used and an unknown one is an error at its line.
//!
//! Zone references are resolved once the whole `http` block is read, so a
//! zone may be declared after its use; an unknown name is nginx's
//! `zero size shared memory zone "NAME"` at the referring line.

use std::path::PathBuf;
use std::sync::Arc;

use super::parse::Directive;
use super::types_limits::{
    CountConf, LimitReqConf, LimitZoneConf, LocationLimits, ReqDelay, ZoneKind,
};
use super::values::{
    arg0, check_zone_name, cluster_flag, flag, params, template, Spec, HSL, HTTP, LOCATION,
};
use super::ConfigError;
use super::Template;
use crate::util::units::{parse_duration_ms, parse_number, parse_size};

/// The limit directives, for the generic checks in `resolve.rs`.
pub(super) const SPECS: &[Spec] = &[
    Spec::new("limit_req_zone", HTTP, 2, 5).repeatable(),
    Spec::new("count_zone", HTTP, 2, 4).repeatable(),
    Spec::new("limit_bytes_zone", HTTP, 2, 6).repeatable(),
    Spec::new("limit_req", HSL, 1, 3).repeatable(),
    Spec::new("limit_req_status", HSL, 1, 1),
    Spec::new("limit_req_dry_run", HSL, 1, 1),
    Spec::new("limit_req_log_level", HSL, 1, 1),
    Spec::new("limit_req_subnet", HSL, 1, 2),
    Spec::new("limit_bytes", HSL, 1, 1).repeatable(),
    Spec::new("count", LOCATION, 1, 2).repeatable(),
    Spec::new("count_report", LOCATION, 1, 2),
    Spec::new("limit_check", LOCATION, 0, 0),
];

/// Bytes of a zone's header page (see `shm::zone`).
const ZONE_HEADER_BYTES: u64 = crate::shm::zone::HEADER_BYTES as u64;
/// Words of a table slot before its payload (see `limits::table`).
const SLOT_HEADER_WORDS: u64 = 3;
/// Fewest keys a zone must hold.
const MIN_ZONE_KEYS: u64 = 8;
/// Most buckets per key of a `count_zone` (window / precision).
const MAX_BUCKETS: u64 = 1_000_000;
/// Largest `quota=` (the counter keeps 40 bits of bytes per period).
const MAX_QUOTA_BYTES: u64 = (1 << 40) - 1;

/// Where a directive was written, for errors found after parsing.
#[derive(Debug, Clone)]
struct At {
    file: Arc<PathBuf>,
    line: usize,
}

impl At {
    fn of(d: &Directive) -> At {
        At {
            file: d.file.clone(),
            line: d.line,
        }
    }

    fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.as_ref().clone(),
            line: self.line,
            message: message.into(),
        }
    }
}

/// A `zone=NAME` reference waiting for resolution.
#[derive(Debug, Clone)]
struct ZoneRef {
    name: String,
    at: At,
}

#[derive(Debug, Clone)]
struct RawReq {
    zone: ZoneRef,
    burst: u64,
    delay: ReqDelay,
}

#[derive(Debug, Clone)]
struct RawCount {
    zone: ZoneRef,
    key: Option<Template>,
}

/// Inheritable limit settings of one level; `None` = not set here.
#[derive(Debug, Default, Clone)]
pub(super) struct LimitsInherit {
    req: Option<Vec<RawReq>>,
    status: Option<u16>,
    dry_run: Option<bool>,
    log_level: Option<log::Level>,
    subnet: Option<(u8, u8)>,
    bytes: Option<Vec<ZoneRef>>,
}

/// Location-only limit directives.
#[derive(Debug, Default)]
pub(super) struct LocationOnly {
    count: Vec<RawCount>,
    report: Option<RawCount>,
    check: Option<At>,
}

/// Handles a zone-declaring directive of the `http` block; `Ok(false)` if
/// `d` is not one.
pub(super) fn zone_directive(
    d: &Directive,
    zones: &mut Vec<LimitZoneConf>,
) -> Result<bool, ConfigError> {
    let zone = match d.name.as_str() {
        "limit_req_zone" => rate_zone(d)?,
        "count_zone" => count_zone(d)?,
        "limit_bytes_zone" => bytes_zone(d)?,
        _ => return Ok(false),
    };
    if zones.iter().any(|z| z.name == zone.name) {
        return Err(d.error(format!("duplicate zone \"{}\"", zone.name)));
    }
    zones.push(zone);
    Ok(true)
}

/// `zone=NAME:SIZE` -> (name, size rounded up to a page).
fn zone_param(d: &Directive, v: &str) -> Result<(String, u64), ConfigError> {
    let (name, size) = v
        .split_once(':')
        .ok_or_else(|| d.error(format!("invalid zone size \"{v}\"")))?;
    check_zone_name(d, name)?;
    let bytes = parse_size(size)
        .filter(|&b| b > 0)
        .ok_or_else(|| d.error(format!("invalid zone size \"{v}\"")))?;
    let bytes = bytes
        .checked_next_multiple_of(4096)
        .ok_or_else(|| d.error(format!("invalid zone size \"{v}\"")))?;
    Ok((name.to_string(), bytes))
}

/// Checks that a zone of `bytes` holds enough keys of `payload_words`.
fn check_fits(
    d: &Directive,
    name: &str,
    bytes: u64,
    payload_words: u64,
) -> Result<(), ConfigError> {
    let slot_bytes = (SLOT_HEADER_WORDS + payload_words) * 8;
    let keys = bytes.saturating_sub(ZONE_HEADER_BYTES) / slot_bytes;
    if keys < MIN_ZONE_KEYS {
        return Err(d.error(format!(
            "zone \"{name}\" is too small: each key takes {slot_bytes} bytes, at least {} bytes are needed",
            ZONE_HEADER_BYTES + MIN_ZONE_KEYS * slot_bytes
        )));
    }
    Ok(())
}

fn get<'a>(ps: &[(&str, &'a str)], k: &str) -> Option<&'a str> {
    ps.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
}

fn need<'a>(d: &Directive, ps: &[(&str, &'a str)], k: &str) -> Result<&'a str, ConfigError> {
    get(ps, k).ok_or_else(|| d.error(format!("\"{}\" must have \"{k}\" parameter", d.name)))
}

fn rate_zone(d: &Directive) -> Result<LimitZoneConf, ConfigError> {
    let key = template(d, arg0(d))?;
    let ps = params(d, 1, &["zone", "rate", "cluster"])?;
    let (name, size_bytes) = zone_param(d, need(d, &ps, "zone")?)?;
    let rate = need(d, &ps, "rate")?;
    let bad = || d.error(format!("invalid rate \"{rate}\""));
    let (n, per_us) = if let Some(n) = rate.strip_suffix("r/s") {
        (n, 1_000_000u64)
    } else if let Some(n) = rate.strip_suffix("r/m") {
        (n, 60_000_000u64)
    } else {
        return Err(bad());
    };
    let n = parse_number(n).filter(|&n| n > 0).ok_or_else(bad)?;
    let interval_us = per_us / n;
    if interval_us == 0 {
        return Err(d.error(format!("rate \"{rate}\" is too high (at most 1000000r/s)")));
    }
    finish_zone(
        d,
        &ps,
        name,
        size_bytes,
        key,
        ZoneKind::Rate { interval_us },
    )
}

fn count_zone(d: &Directive) -> Result<LimitZoneConf, ConfigError> {
    let ps = params(d, 0, &["zone", "window", "precision", "cluster"])?;
    let (name, size_bytes) = zone_param(d, need(d, &ps, "zone")?)?;
    let window = need(d, &ps, "window")?;
    let window_ms = parse_duration_ms(window)
        .filter(|&w| w > 0)
        .ok_or_else(|| d.error(format!("invalid window \"{window}\"")))?;
    let precision_ms = match get(&ps, "precision") {
        Some(p) => parse_duration_ms(p)
            .filter(|&p| p > 0)
            .ok_or_else(|| d.error(format!("invalid precision \"{p}\"")))?,
        None => 1000.min(window_ms),
    };
    if window_ms % precision_ms != 0 {
        return Err(d.error(format!(
            "window {window_ms}ms is not a multiple of precision {precision_ms}ms"
        )));
    }
    if window_ms / precision_ms > MAX_BUCKETS {
        return Err(d.error(format!(
            "window / precision is {} buckets per key, at most {MAX_BUCKETS}",
            window_ms / precision_ms
        )));
    }
    let kind = ZoneKind::Count {
        window_ms,
        precision_ms,
    };
    finish_zone(d, &ps, name, size_bytes, Template::default(), kind)
}

fn bytes_zone(d: &Directive) -> Result<LimitZoneConf, ConfigError> {
    let key = template(d, arg0(d))?;
    let ps = params(d, 1, &["zone", "quota", "per", "cluster"])?;
    let (name, size_bytes) = zone_param(d, need(d, &ps, "zone")?)?;
    let quota = need(d, &ps, "quota")?;
    let quota_bytes = parse_size(quota)
        .filter(|&q| q > 0 && q <= MAX_QUOTA_BYTES)
        .ok_or_else(|| d.error(format!("invalid quota \"{quota}\" (1 byte to 1023g)")))?;
    let per = need(d, &ps, "per")?;
    let per_ms = parse_duration_ms(per)
        .filter(|&p| p > 0)
        .ok_or_else(|| d.error(format!("invalid period \"{per}\"")))?;
    let kind = ZoneKind::Bytes {
        quota_bytes,
        per_ms,
    };
    finish_zone(d, &ps, name, size_bytes, key, kind)
}

/// The zone of a declaring directive, once its kind is known: `cluster=`
/// read and the size checked against the kind's slot.
fn finish_zone(
    d: &Directive,
    ps: &[(&str, &str)],
    name: String,
    size_bytes: u64,
    key: Template,
    kind: ZoneKind,
) -> Result<LimitZoneConf, ConfigError> {
    let cluster = match get(ps, "cluster") {
        Some(v) => cluster_flag(d, v)?,
        None => false,
    };
    check_fits(d, &name, size_bytes, kind.payload_words(cluster))?;
    Ok(LimitZoneConf {
        name,
        size_bytes,
        key,
        kind,
        cluster,
        line: d.line,
    })
}

fn zone_ref(d: &Directive, v: &str) -> ZoneRef {
    ZoneRef {
        name: v.to_string(),
        at: At::of(d),
    }
}

impl LimitsInherit {
    /// Applies `d` if it is an inheritable limit setting; `Ok(false)` otherwise.
    pub(super) fn apply(&mut self, d: &Directive) -> Result<bool, ConfigError> {
        let v = arg0(d);
        match d.name.as_str() {
            "limit_req" => {
                let r = limit_req(d)?;
                let list = self.req.get_or_insert_with(Vec::new);
                if list.iter().any(|o| o.zone.name == r.zone.name) {
                    return Err(d.error(format!("duplicate limit_req zone \"{}\"", r.zone.name)));
                }
                list.push(r);
            }
            "limit_req_status" => {
                let code = parse_number(v)
                    .filter(|c| (400..=599).contains(c))
                    .ok_or_else(|| d.error("value must be between 400 and 599"))?;
                self.status = Some(code as u16);
            }
            "limit_req_dry_run" => self.dry_run = Some(flag(d)?),
            "limit_req_log_level" => {
                self.log_level = Some(match v {
                    "info" | "notice" => log::Level::Info,
                    "warn" => log::Level::Warn,
                    "error" => log::Level::Error,
                    _ => {
                        return Err(d.error(format!(
                            "invalid value \"{v}\" in \"{}\" directive, it must be \"info\", \"notice\", \"warn\" or \"error\"",
                            d.name
                        )))
                    }
                });
            }
            "limit_req_subnet" => {
                let bits = |s: &str, max: u64| {
                    parse_number(s)
                        .filter(|&b| (1..=max).contains(&b))
                        .map(|b| b as u8)
                        .ok_or_else(|| d.error(format!("invalid prefix length \"{s}\"")))
                };
                let v4 = bits(v, 32)?;
                let v6 = match d.args.get(1) {
                    Some(s) => bits(s, 128)?,
                    None => 128,
                };
                self.subnet = Some((v4, v6));
            }
            "limit_bytes" => {
                let ps = params(d, 0, &["zone"])?;
                let r = zone_ref(d, need(d, &ps, "zone")?);
                let list = self.bytes.get_or_insert_with(Vec::new);
                if list.iter().any(|o| o.name == r.name) {
                    return Err(d.error(format!("duplicate limit_bytes zone \"{}\"", r.name)));
                }
                list.push(r);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `self` (inner) over `outer`.
    pub(super) fn over(self, outer: &LimitsInherit) -> LimitsInherit {
        LimitsInherit {
            req: self.req.or_else(|| outer.req.clone()),
            status: self.status.or(outer.status),
            dry_run: self.dry_run.or(outer.dry_run),
            log_level: self.log_level.or(outer.log_level),
            subnet: self.subnet.or(outer.subnet),
            bytes: self.bytes.or_else(|| outer.bytes.clone()),
        }
    }

    /// Checks that every zone named at this level exists (so an unused
    /// level still reports a bad name).
    pub(super) fn check_refs(&self, zones: &[LimitZoneConf]) -> Result<(), ConfigError> {
        for r in self.req.iter().flatten() {
            find_zone(&r.zone, zones, "limit_req")?;
        }
        for r in self.bytes.iter().flatten() {
            find_zone(r, zones, "limit_bytes")?;
        }
        Ok(())
    }
}

/// `limit_req zone=NAME [burst=N] [nodelay | delay=N];`
fn limit_req(d: &Directive) -> Result<RawReq, ConfigError> {
    let mut zone = None;
    let mut burst = 0;
    let mut delay = None;
    for a in &d.args {
        if let Some(v) = a.strip_prefix("zone=") {
            zone = Some(zone_ref(d, v));
        } else if let Some(v) = a.strip_prefix("burst=") {
            burst = parse_number(v)
                .filter(|&b| b <= 1_000_000_000)
                .ok_or_else(|| d.error(format!("invalid burst value \"{a}\"")))?;
        } else if let Some(v) = a.strip_prefix("delay=") {
            let n = parse_number(v).ok_or_else(|| d.error(format!("invalid delay \"{a}\"")))?;
            delay = Some(ReqDelay::After(n));
        } else if a == "nodelay" {
            delay = Some(ReqDelay::NoDelay);
        } else {
            return Err(d.error(format!("invalid parameter \"{a}\"")));
        }
    }
    let zone = zone.ok_or_else(|| d.error("\"limit_req\" must have \"zone\" parameter"))?;
    Ok(RawReq {
        zone,
        burst,
        delay: delay.unwrap_or(ReqDelay::After(0)),
    })
}

/// `count` / `count_report`: `zone=NAME [key=KEY]`.
fn count_args(d: &Directive) -> Result<RawCount, ConfigError> {
    let mut zone = None;
    let mut key = None;
    for a in &d.args {
        if let Some(v) = a.strip_prefix("zone=") {
            zone = Some(zone_ref(d, v));
        } else if let Some(v) = a.strip_prefix("key=") {
            key = Some(template(d, v)?);
        } else {
            return Err(d.error(format!("invalid parameter \"{a}\"")));
        }
    }
    let zone =
        zone.ok_or_else(|| d.error(format!("\"{}\" must have \"zone\" parameter", d.name)))?;
    Ok(RawCount { zone, key })
}

impl LocationOnly {
    /// Applies a location-only limit directive; `Ok(false)` otherwise.
    pub(super) fn apply(&mut self, d: &Directive) -> Result<bool, ConfigError> {
        match d.name.as_str() {
            "count" => {
                let c = count_args(d)?;
                if self.count.iter().any(|o| o.zone.name == c.zone.name) {
                    return Err(d.error(format!("duplicate count zone \"{}\"", c.zone.name)));
                }
                self.count.push(c);
            }
            "count_report" => self.report = Some(count_args(d)?),
            "limit_check" => self.check = Some(At::of(d)),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn find_zone(r: &ZoneRef, zones: &[LimitZoneConf], directive: &str) -> Result<usize, ConfigError> {
    let i = zones.iter().position(|z| z.name == r.name).ok_or_else(|| {
        r.at.error(format!("zero size shared memory zone \"{}\"", r.name))
    })?;
    let wanted = match directive {
        "limit_req" => "limit_req_zone",
        "limit_bytes" => "limit_bytes_zone",
        _ => "count_zone",
    };
    let is = zones[i].kind.directive();
    if is != wanted {
        return Err(r.at.error(format!(
            "zone \"{}\" is declared by \"{is}\", \"{directive}\" needs a \"{wanted}\"",
            r.name
        )));
    }
    Ok(i)
}

/// The limits of one location: merged inheritable settings plus its own
/// location-only directives, with zone names resolved.
pub(super) fn finish_location(
    inherit: &LimitsInherit,
    own: LocationOnly,
    zones: &[LimitZoneConf],
) -> Result<LocationLimits, ConfigError> {
    let mut out = LocationLimits::default();
    for r in inherit.req.iter().flatten() {
        out.req.push(LimitReqConf {
            zone: find_zone(&r.zone, zones, "limit_req")?,
            burst: r.burst,
            delay: r.delay,
        });
    }
    for r in inherit.bytes.iter().flatten() {
        out.bytes.push(find_zone(r, zones, "limit_bytes")?);
    }
    out.req_status = inherit.status.unwrap_or(out.req_status);
    out.dry_run = inherit.dry_run.unwrap_or(false);
    out.log_level = inherit.log_level.unwrap_or(out.log_level);
    if let Some((v4, v6)) = inherit.subnet {
        out.subnet_v4_bits = v4;
        out.subnet_v6_bits = v6;
    }
    for c in own.count {
        out.count.push(CountConf {
            zone: find_zone(&c.zone, zones, "count")?,
            key: c.key.unwrap_or_default(),
        });
    }
    if let Some(r) = own.report {
        let zone = find_zone(&r.zone, zones, "count_report")?;
        // Without key=, report what this location's `count` counts.
        let key = r.key.unwrap_or_else(|| {
            out.count
                .iter()
                .find(|c| c.zone == zone)
                .map(|c| c.key.clone())
                .unwrap_or_default()
        });
        if own.check.is_some() {
            return Err(r
                .zone
                .at
                .error("\"count_report\" and \"limit_check\" cannot share a location"));
        }
        out.report = Some(CountConf { zone, key });
    }
    if let Some(at) = own.check {
        if out.req.is_empty() && out.bytes.is_empty() && out.count.is_empty() {
            return Err(at.error(
                "\"limit_check\" needs a \"limit_req\", \"limit_bytes\" or \"count\" to apply",
            ));
        }
        out.check = true;
    }
    Ok(out)
}
