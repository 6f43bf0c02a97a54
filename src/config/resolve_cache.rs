//! Typed resolution of the cache directives: `proxy_cache_path` (http level)
//! and the `proxy_cache*` settings merged http -> server -> location.
//!
//! Not yet called by `resolve_http.rs`: the proxy wires it in by adding
//! [`CACHE_DIRECTIVES`] to the directive table, calling
//! [`parse_proxy_cache_path`] + [`check_cache_path_unique`] for each
//! `proxy_cache_path`, [`CacheInherit::apply`] at each level,
//! [`CacheInherit::over`] to merge and [`CacheInherit::finish`] per location,
//! then [`check_zone_ref`] once all paths are known.

// Some parsers serve directives that `resolve::NOT_YET` still refuses.
#![cfg_attr(not(test), allow(dead_code))]

use std::path::Path;

use super::parse::Directive;
use super::types_cache::{
    default_purge_allow, CachePathConf, Cidr, IgnoreHeaders, LocationCacheConf, UseStale,
};
use super::values::{
    arg0, duration, flag, invalid_value, path_arg, positive, HTTP, LOCATION, SERVER,
};
use super::ConfigError;
use crate::util::units::{parse_duration_ms, parse_number, parse_size};

const HSL: u8 = HTTP | SERVER | LOCATION;
const MANY: usize = usize::MAX;

/// The cache directives for the directive table: (name, contexts, min args,
/// max args, repeatable within one block).
pub(crate) const CACHE_DIRECTIVES: &[(&str, u8, usize, usize, bool)] = &[
    ("proxy_cache_path", HTTP, 2, MANY, true),
    ("proxy_cache", HSL, 1, 1, false),
    ("proxy_cache_key", HSL, 1, 1, false),
    ("proxy_cache_valid", HSL, 1, MANY, true),
    ("proxy_cache_methods", HSL, 1, MANY, false),
    ("proxy_cache_min_uses", HSL, 1, 1, false),
    ("proxy_cache_bypass", HSL, 1, MANY, true),
    ("proxy_no_cache", HSL, 1, MANY, true),
    ("proxy_cache_lock", HSL, 1, 1, false),
    ("proxy_cache_lock_timeout", HSL, 1, 1, false),
    ("proxy_cache_lock_age", HSL, 1, 1, false),
    ("proxy_cache_use_stale", HSL, 1, MANY, false),
    ("proxy_cache_background_update", HSL, 1, 1, false),
    ("proxy_cache_revalidate", HSL, 1, 1, false),
    ("proxy_cache_convert_head", HSL, 1, 1, false),
    ("proxy_ignore_headers", HSL, 1, MANY, false),
    ("proxy_cache_purge", HSL, 1, MANY, false),
];

/// Smallest `keys_zone` size (nginx: two pages).
pub(crate) const MIN_ZONE_BYTES: u64 = 8 * 1024;

/// `proxy_cache_path DIR [levels=..] keys_zone=NAME:SIZE [max_size=..] ...;`
/// `DIR` is made absolute against `conf_dir`.
pub(crate) fn parse_proxy_cache_path(
    d: &Directive,
    conf_dir: &Path,
) -> Result<CachePathConf, ConfigError> {
    let mut conf = CachePathConf {
        dir: path_arg(d, conf_dir, arg0(d))?,
        levels: Vec::new(),
        zone_name: String::new(),
        zone_size_bytes: 0,
        max_size_bytes: None,
        min_free_bytes: None,
        inactive_ms: 600_000,
        use_temp_path: true,
        loader_files: 100,
        loader_sleep_ms: 50,
        loader_threshold_ms: 200,
        manager_files: 100,
        manager_sleep_ms: 50,
        manager_threshold_ms: 200,
    };
    let mut have_zone = false;
    for a in d.args.iter().skip(1) {
        let bad = || invalid_value(d, a);
        let (name, v) = a
            .split_once('=')
            .ok_or_else(|| d.error(format!("invalid parameter \"{a}\"")))?;
        match name {
            "levels" => {
                let levels: Option<Vec<u8>> = v
                    .split(':')
                    .map(|l| match l {
                        "1" => Some(1),
                        "2" => Some(2),
                        _ => None,
                    })
                    .collect();
                conf.levels = levels.filter(|l| super::valid_levels(l)).ok_or_else(bad)?;
            }
            "keys_zone" => {
                let (zone, sz) = v.split_once(':').ok_or_else(bad)?;
                if zone.is_empty() {
                    return Err(bad());
                }
                let bytes = parse_size(sz).ok_or_else(bad)?;
                if bytes < MIN_ZONE_BYTES {
                    return Err(d.error(format!("keys_zone \"{zone}\" is too small")));
                }
                conf.zone_name = zone.to_string();
                conf.zone_size_bytes = bytes;
                have_zone = true;
            }
            "max_size" => conf.max_size_bytes = Some(parse_size(v).ok_or_else(bad)?),
            "min_free" => conf.min_free_bytes = Some(parse_size(v).ok_or_else(bad)?),
            "inactive" => conf.inactive_ms = parse_duration_ms(v).ok_or_else(bad)?,
            "use_temp_path" => {
                conf.use_temp_path = match v {
                    "on" => true,
                    "off" => false,
                    _ => return Err(bad()),
                }
            }
            "loader_files" | "manager_files" => {
                let n = parse_number(v).filter(|&n| n > 0).ok_or_else(bad)?;
                *if name == "loader_files" {
                    &mut conf.loader_files
                } else {
                    &mut conf.manager_files
                } = n;
            }
            "loader_sleep" => conf.loader_sleep_ms = parse_duration_ms(v).ok_or_else(bad)?,
            "loader_threshold" => {
                conf.loader_threshold_ms = parse_duration_ms(v).ok_or_else(bad)?
            }
            "manager_sleep" => conf.manager_sleep_ms = parse_duration_ms(v).ok_or_else(bad)?,
            "manager_threshold" => {
                conf.manager_threshold_ms = parse_duration_ms(v).ok_or_else(bad)?
            }
            _ => return Err(d.error(format!("invalid parameter \"{a}\""))),
        }
    }
    if !have_zone {
        return Err(d.error("\"proxy_cache_path\" must have \"keys_zone\" parameter"));
    }
    Ok(conf)
}

/// A new `proxy_cache_path` (`d`, parsed as `new`) may not reuse a zone name
/// or a directory of the earlier ones.
pub(crate) fn check_cache_path_unique(
    d: &Directive,
    new: &CachePathConf,
    existing: &[CachePathConf],
) -> Result<(), ConfigError> {
    for old in existing {
        if old.zone_name == new.zone_name {
            return Err(d.error(format!("duplicate zone \"{}\"", new.zone_name)));
        }
        if old.dir == new.dir {
            return Err(d.error(format!("duplicate cache path \"{}\"", new.dir.display())));
        }
    }
    Ok(())
}

/// `proxy_cache NAME` (`d`) must name a `proxy_cache_path` zone.
pub(crate) fn check_zone_ref(
    d: &Directive,
    zone: &str,
    paths: &[CachePathConf],
) -> Result<(), ConfigError> {
    if paths.iter().any(|p| p.zone_name == zone) {
        Ok(())
    } else {
        Err(d.error(format!("\"proxy_cache\" zone \"{zone}\" is unknown")))
    }
}

/// `proxy_cache_valid [code ...|any] time`: (statuses, ms); no codes = 200 301 302.
pub(crate) fn parse_cache_valid(d: &Directive) -> Result<(Vec<u16>, u64), ConfigError> {
    let Some((time, codes)) = d.args.split_last() else {
        return Err(invalid_value(d, ""));
    };
    let ms = duration(d, time)?;
    if codes.is_empty() {
        return Ok((vec![200, 301, 302], ms));
    }
    let mut statuses = Vec::new();
    for c in codes {
        if c == "any" {
            if codes.len() > 1 {
                return Err(invalid_value(d, c));
            }
            return Ok((Vec::new(), ms));
        }
        match parse_number(c) {
            Some(n @ 100..=599) if c.len() == 3 => statuses.push(n as u16),
            _ => return Err(invalid_value(d, c)),
        }
    }
    Ok((statuses, ms))
}

/// `proxy_cache_use_stale off | error timeout invalid_header updating http_5xx ...`.
pub(crate) fn parse_use_stale(d: &Directive) -> Result<UseStale, ConfigError> {
    let mut s = UseStale::default();
    if d.args.len() == 1 && arg0(d) == "off" {
        return Ok(s);
    }
    for a in &d.args {
        let field = match a.as_str() {
            "error" => &mut s.error,
            "timeout" => &mut s.timeout,
            "invalid_header" => &mut s.invalid_header,
            "updating" => &mut s.updating,
            "http_500" => &mut s.http_500,
            "http_502" => &mut s.http_502,
            "http_503" => &mut s.http_503,
            "http_504" => &mut s.http_504,
            "http_403" => &mut s.http_403,
            "http_404" => &mut s.http_404,
            "http_429" => &mut s.http_429,
            _ => return Err(invalid_value(d, a)),
        };
        *field = true;
    }
    Ok(s)
}

/// `proxy_ignore_headers X-Accel-Expires Expires Cache-Control Set-Cookie Vary ...`
/// (other `X-Accel-*` names are accepted and have no effect).
pub(crate) fn parse_ignore_headers(d: &Directive) -> Result<IgnoreHeaders, ConfigError> {
    let mut h = IgnoreHeaders::default();
    for a in &d.args {
        match a.to_ascii_lowercase().as_str() {
            "x-accel-expires" => h.x_accel_expires = true,
            "expires" => h.expires = true,
            "cache-control" => h.cache_control = true,
            "set-cookie" => h.set_cookie = true,
            "vary" => h.vary = true,
            "x-accel-redirect" | "x-accel-limit-rate" | "x-accel-buffering" | "x-accel-charset" => {
            }
            _ => return Err(invalid_value(d, a)),
        }
    }
    Ok(h)
}

/// `proxy_cache_methods GET|HEAD|POST ...`; GET and HEAD are always included.
pub(crate) fn parse_cache_methods(d: &Directive) -> Result<Vec<String>, ConfigError> {
    let mut methods = vec!["GET".to_string(), "HEAD".to_string()];
    for a in &d.args {
        match a.as_str() {
            "GET" | "HEAD" => {}
            "POST" => {
                if !methods.iter().any(|m| m == "POST") {
                    methods.push("POST".to_string());
                }
            }
            _ => return Err(invalid_value(d, a)),
        }
    }
    Ok(methods)
}

/// `proxy_cache_purge on|off [from all|ADDR[/LEN] ...]`: (enabled, allow list).
/// Without `from`, only loopback clients may purge.
pub(crate) fn parse_purge(d: &Directive) -> Result<(bool, Vec<Cidr>), ConfigError> {
    let on = match arg0(d) {
        "on" => true,
        "off" => false,
        v => return Err(invalid_value(d, v)),
    };
    let rest = &d.args[1..];
    if rest.is_empty() {
        return Ok((on, default_purge_allow()));
    }
    if !on || rest[0] != "from" || rest.len() < 2 {
        return Err(d.error("invalid number of arguments in \"proxy_cache_purge\" directive"));
    }
    let mut allow = Vec::new();
    for a in &rest[1..] {
        allow.extend(super::values::cidrs(a).ok_or_else(|| invalid_value(d, a))?);
    }
    Ok((on, allow))
}

/// The cache settings of one level; `None` = not set here (inherit).
#[derive(Debug, Default, Clone)]
pub(crate) struct CacheInherit {
    zone: Option<Option<String>>,
    key: Option<super::Template>,
    valid: Option<Vec<(Vec<u16>, u64)>>,
    methods: Option<Vec<String>>,
    min_uses: Option<u64>,
    bypass: Option<Vec<super::Template>>,
    no_cache: Option<Vec<super::Template>>,
    lock: Option<bool>,
    lock_timeout_ms: Option<u64>,
    lock_age_ms: Option<u64>,
    use_stale: Option<UseStale>,
    background_update: Option<bool>,
    revalidate: Option<bool>,
    convert_head: Option<bool>,
    ignore_headers: Option<IgnoreHeaders>,
    purge: Option<(bool, Vec<Cidr>)>,
}

impl CacheInherit {
    /// Applies `d` if it is a per-location cache directive (the generic
    /// context/argument checks have run). `Ok(false)`: not a cache directive.
    pub(crate) fn apply(&mut self, d: &Directive) -> Result<bool, ConfigError> {
        let v = arg0(d);
        match d.name.as_str() {
            "proxy_cache" => {
                if v.is_empty() {
                    return Err(invalid_value(d, v));
                }
                self.zone = Some((v != "off").then(|| v.to_string()));
            }
            "proxy_cache_key" => {
                if v.is_empty() {
                    return Err(invalid_value(d, v));
                }
                self.key = Some(super::values::template(d, v)?);
            }
            "proxy_cache_valid" => self
                .valid
                .get_or_insert_with(Vec::new)
                .push(parse_cache_valid(d)?),
            "proxy_cache_methods" => self.methods = Some(parse_cache_methods(d)?),
            "proxy_cache_min_uses" => self.min_uses = Some(positive(d, v)? as u64),
            "proxy_cache_bypass" => {
                let t = templates(d)?;
                self.bypass.get_or_insert_with(Vec::new).extend(t)
            }
            "proxy_no_cache" => {
                let t = templates(d)?;
                self.no_cache.get_or_insert_with(Vec::new).extend(t)
            }
            "proxy_cache_lock" => self.lock = Some(flag(d)?),
            "proxy_cache_lock_timeout" => self.lock_timeout_ms = Some(duration(d, v)?),
            "proxy_cache_lock_age" => self.lock_age_ms = Some(duration(d, v)?),
            "proxy_cache_use_stale" => self.use_stale = Some(parse_use_stale(d)?),
            "proxy_cache_background_update" => self.background_update = Some(flag(d)?),
            "proxy_cache_revalidate" => self.revalidate = Some(flag(d)?),
            "proxy_cache_convert_head" => self.convert_head = Some(flag(d)?),
            "proxy_ignore_headers" => self.ignore_headers = Some(parse_ignore_headers(d)?),
            "proxy_cache_purge" => self.purge = Some(parse_purge(d)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// This (inner) level's settings over `outer`'s.
    pub(crate) fn over(self, outer: &CacheInherit) -> CacheInherit {
        let o = outer.clone();
        CacheInherit {
            zone: self.zone.or(o.zone),
            key: self.key.or(o.key),
            valid: self.valid.or(o.valid),
            methods: self.methods.or(o.methods),
            min_uses: self.min_uses.or(o.min_uses),
            bypass: self.bypass.or(o.bypass),
            no_cache: self.no_cache.or(o.no_cache),
            lock: self.lock.or(o.lock),
            lock_timeout_ms: self.lock_timeout_ms.or(o.lock_timeout_ms),
            lock_age_ms: self.lock_age_ms.or(o.lock_age_ms),
            use_stale: self.use_stale.or(o.use_stale),
            background_update: self.background_update.or(o.background_update),
            revalidate: self.revalidate.or(o.revalidate),
            convert_head: self.convert_head.or(o.convert_head),
            ignore_headers: self.ignore_headers.or(o.ignore_headers),
            purge: self.purge.or(o.purge),
        }
    }

    /// Fills defaults.
    pub(crate) fn finish(self) -> LocationCacheConf {
        let d = LocationCacheConf::default();
        let (purge, purge_allow) = self.purge.unwrap_or((d.purge, d.purge_allow));
        LocationCacheConf {
            zone: self.zone.unwrap_or(d.zone),
            key: self.key.unwrap_or(d.key),
            valid: self.valid.unwrap_or(d.valid),
            methods: self.methods.unwrap_or(d.methods),
            min_uses: self.min_uses.unwrap_or(d.min_uses),
            bypass: self.bypass.unwrap_or(d.bypass),
            no_cache: self.no_cache.unwrap_or(d.no_cache),
            lock: self.lock.unwrap_or(d.lock),
            lock_timeout_ms: self.lock_timeout_ms.unwrap_or(d.lock_timeout_ms),
            lock_age_ms: self.lock_age_ms.unwrap_or(d.lock_age_ms),
            use_stale: self.use_stale.unwrap_or(d.use_stale),
            background_update: self.background_update.unwrap_or(d.background_update),
            revalidate: self.revalidate.unwrap_or(d.revalidate),
            convert_head: self.convert_head.unwrap_or(d.convert_head),
            ignore_headers: self.ignore_headers.unwrap_or(d.ignore_headers),
            purge,
            purge_allow,
        }
    }
}

/// Every argument of `d` compiled as a string with variables.
fn templates(d: &Directive) -> Result<Vec<super::Template>, ConfigError> {
    d.args
        .iter()
        .map(|a| super::values::template(d, a))
        .collect()
}
