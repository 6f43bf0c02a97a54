//! `gzip` and its settings (http -> server -> location), nginx's names and
//! defaults: `gzip`, `gzip_types` (`text/html` always), `gzip_min_length`,
//! `gzip_comp_level`, `gzip_vary`, `gzip_disable` (regexes on User-Agent,
//! `msie6`), `gzip_http_version`, `gzip_static on|off|always`;
//! `gzip_buffers` is accepted (sluice sizes its own). `gzip_proxied` is
//! parsed; compressing proxied responses is not implemented yet, so any
//! value other than `off` says so at `-t`.

use super::parse::Directive;
use super::values::{arg0, flag, invalid_value, number, Spec, HTTP, LOCATION, SERVER};
use super::ConfigError;

const HSL: u8 = HTTP | SERVER | LOCATION;

/// The directives, for the generic checks.
pub(super) const SPECS: &[Spec] = &[
    Spec::new("gzip", HSL, 1, 1),
    Spec::new("gzip_types", HSL, 1, 64),
    Spec::new("gzip_min_length", HSL, 1, 1),
    Spec::new("gzip_comp_level", HSL, 1, 1),
    Spec::new("gzip_vary", HSL, 1, 1),
    Spec::new("gzip_disable", HSL, 1, 16),
    Spec::new("gzip_http_version", HSL, 1, 1),
    Spec::new("gzip_static", HSL, 1, 1),
    Spec::new("gzip_buffers", HSL, 2, 2),
    Spec::new("gzip_proxied", HSL, 1, 9),
];

/// `gzip_static`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GzipStatic {
    /// `off` (default).
    #[default]
    Off,
    /// `on`: `FILE.gz` for clients that accept gzip.
    On,
    /// `always`: `FILE.gz` whatever the client says.
    Always,
}

/// The merged gzip settings of a location.
#[derive(Debug, Clone)]
pub struct GzipConf {
    /// `gzip on`.
    pub on: bool,
    /// `gzip_types` (lowercase; `*` = any); `text/html` is always in.
    pub types: Vec<String>,
    /// `gzip_min_length` (default 20).
    pub min_length: u64,
    /// `gzip_comp_level` 1-9 (default 1).
    pub level: u32,
    /// `gzip_vary` (default off).
    pub vary: bool,
    /// `gzip_disable`: User-Agent patterns (`msie6` is nginx's shortcut).
    pub disable: Vec<regex::bytes::Regex>,
    /// `gzip_http_version`: the lowest HTTP/1.x minor compressed (default 1).
    pub http_minor: u8,
    /// `gzip_static`.
    pub serve_static: GzipStatic,
}

impl GzipConf {
    /// Whether a `Content-Type` (parameters ignored) is compressed.
    pub fn type_ok(&self, content_type: &[u8]) -> bool {
        let mime = content_type
            .split(|&b| b == b';')
            .next()
            .unwrap_or(content_type)
            .trim_ascii();
        mime.eq_ignore_ascii_case(b"text/html")
            || self
                .types
                .iter()
                .any(|t| t == "*" || t.as_bytes().eq_ignore_ascii_case(mime))
    }
}

/// One level's settings while resolving.
#[derive(Debug, Default, Clone)]
pub(super) struct GzipInherit {
    on: Option<bool>,
    types: Option<Vec<String>>,
    min_length: Option<u64>,
    level: Option<u32>,
    vary: Option<bool>,
    disable: Option<Vec<regex::bytes::Regex>>,
    http_minor: Option<u8>,
    serve_static: Option<GzipStatic>,
}

impl GzipInherit {
    /// Applies `d` if it is a gzip directive; `Ok(false)` otherwise.
    pub(super) fn apply(&mut self, d: &Directive) -> Result<bool, ConfigError> {
        let v = arg0(d);
        match d.name.as_str() {
            "gzip" => self.on = Some(flag(d)?),
            "gzip_types" => {
                self.types = Some(d.args.iter().map(|t| t.to_ascii_lowercase()).collect())
            }
            "gzip_min_length" => self.min_length = Some(number(d, v)?),
            "gzip_comp_level" => {
                let n = number(d, v)?;
                if !(1..=9).contains(&n) {
                    return Err(invalid_value(d, v));
                }
                self.level = Some(n as u32);
            }
            "gzip_vary" => self.vary = Some(flag(d)?),
            "gzip_disable" => {
                let mut res = Vec::new();
                for a in &d.args {
                    let pattern = if a == "msie6" {
                        "MSIE [4-6]\\."
                    } else {
                        a.as_str()
                    };
                    let re = regex::bytes::RegexBuilder::new(pattern)
                        .case_insensitive(true)
                        .build()
                        .map_err(|_| d.error(format!("invalid regex \"{a}\"")))?;
                    res.push(re);
                }
                self.disable = Some(res);
            }
            "gzip_http_version" => {
                self.http_minor = Some(match v {
                    "1.0" => 0,
                    "1.1" => 1,
                    _ => return Err(invalid_value(d, v)),
                })
            }
            "gzip_static" => {
                self.serve_static = Some(match v {
                    "on" => GzipStatic::On,
                    "off" => GzipStatic::Off,
                    "always" => GzipStatic::Always,
                    _ => return Err(invalid_value(d, v)),
                })
            }
            "gzip_buffers" => {}
            "gzip_proxied" => {
                const KNOWN: [&str; 9] = [
                    "off",
                    "expired",
                    "no-cache",
                    "no-store",
                    "private",
                    "no_last_modified",
                    "no_etag",
                    "auth",
                    "any",
                ];
                if let Some(bad) = d.args.iter().find(|a| !KNOWN.contains(&a.as_str())) {
                    return Err(invalid_value(d, bad));
                }
                if v != "off" {
                    log::warn!(
                        "{}:{}: \"gzip_proxied {}\": proxied responses are not compressed yet",
                        d.file.display(),
                        d.line,
                        d.args.join(" ")
                    );
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `self` (inner) over `outer`.
    pub(super) fn over(&self, outer: &GzipInherit) -> GzipInherit {
        GzipInherit {
            on: self.on.or(outer.on),
            types: self.types.clone().or_else(|| outer.types.clone()),
            min_length: self.min_length.or(outer.min_length),
            level: self.level.or(outer.level),
            vary: self.vary.or(outer.vary),
            disable: self.disable.clone().or_else(|| outer.disable.clone()),
            http_minor: self.http_minor.or(outer.http_minor),
            serve_static: self.serve_static.or(outer.serve_static),
        }
    }

    /// Defaults filled.
    pub(super) fn finish(&self) -> GzipConf {
        GzipConf {
            on: self.on.unwrap_or(false),
            types: self.types.clone().unwrap_or_default(),
            min_length: self.min_length.unwrap_or(20),
            level: self.level.unwrap_or(1),
            vary: self.vary.unwrap_or(false),
            disable: self.disable.clone().unwrap_or_default(),
            http_minor: self.http_minor.unwrap_or(1),
            serve_static: self.serve_static.unwrap_or_default(),
        }
    }
}
