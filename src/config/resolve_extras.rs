//! Response-header extras of static and proxied answers, merged
//! http -> server -> location: `expires` (nginx's forms: a time, `-TIME`,
//! `epoch`, `max`, `off`, `modified TIME`), `charset` (appended to the
//! `Content-Type` of the `charset_types`), `etag on|off`.

use super::parse::Directive;
use super::values::{arg0, flag, invalid_value, Spec, HTTP, LOCATION, SERVER};
use super::ConfigError;
use crate::util::units::parse_duration_ms;

const HSL: u8 = HTTP | SERVER | LOCATION;

/// The directives, for the generic checks.
pub(super) const SPECS: &[Spec] = &[
    Spec::new("expires", HSL, 1, 2),
    Spec::new("charset", HSL, 1, 1),
    Spec::new("charset_types", HSL, 1, 32),
    Spec::new("source_charset", HSL, 1, 1),
    Spec::new("etag", HSL, 1, 1),
];

/// `expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expires {
    /// `off` (default): headers left as they are.
    #[default]
    Off,
    /// `epoch`: `Expires: Thu, 01 Jan 1970 00:00:01 GMT`, `no-cache`.
    Epoch,
    /// `max`: 31 Dec 2037 and ten years of `max-age`.
    Max,
    /// `TIME` from now (negative: `no-cache`).
    After(i64),
    /// `modified TIME`: from the file's modification time.
    Modified(i64),
}

/// nginx's default `charset_types`.
pub const DEFAULT_CHARSET_TYPES: [&str; 6] = [
    "text/html",
    "text/xml",
    "text/plain",
    "text/vnd.wap.wml",
    "application/javascript",
    "application/rss+xml",
];

/// The merged extras of a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extras {
    /// `expires`.
    pub expires: Expires,
    /// `charset NAME` (`None`: `off`).
    pub charset: Option<String>,
    /// `charset_types` (lowercase).
    pub charset_types: Vec<String>,
    /// `etag` (default on).
    pub etag: bool,
}

/// One level's settings while resolving.
#[derive(Debug, Default, Clone)]
pub(super) struct ExtrasInherit {
    expires: Option<Expires>,
    charset: Option<Option<String>>,
    charset_types: Option<Vec<String>>,
    etag: Option<bool>,
}

fn seconds(d: &Directive, v: &str) -> Result<i64, ConfigError> {
    let (neg, t) = match v.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, v),
    };
    let ms = parse_duration_ms(t).ok_or_else(|| invalid_value(d, v))?;
    let s = (ms / 1000) as i64;
    Ok(if neg { -s } else { s })
}

impl ExtrasInherit {
    /// Applies `d` if it is one of these directives; `Ok(false)` otherwise.
    pub(super) fn apply(&mut self, d: &Directive) -> Result<bool, ConfigError> {
        match d.name.as_str() {
            "expires" => {
                let v = arg0(d);
                self.expires = Some(match (v, d.args.get(1)) {
                    ("modified", Some(t)) => Expires::Modified(seconds(d, t)?),
                    ("off", None) => Expires::Off,
                    ("epoch", None) => Expires::Epoch,
                    ("max", None) => Expires::Max,
                    (_, None) => Expires::After(seconds(d, v)?),
                    (_, Some(_)) => return Err(invalid_value(d, v)),
                });
            }
            "charset" => {
                let v = arg0(d);
                self.charset = Some((v != "off").then(|| v.to_string()));
            }
            "charset_types" => {
                let types = d.args.iter().map(|t| t.to_ascii_lowercase()).collect();
                self.charset_types = Some(types);
            }
            "source_charset" => {
                log::info!(
                    "{}:{}: \"source_charset\" is accepted: sluice does not recode bodies",
                    d.file.display(),
                    d.line
                );
            }
            "etag" => self.etag = Some(flag(d)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `self` (inner) over `outer`.
    pub(super) fn over(&self, outer: &ExtrasInherit) -> ExtrasInherit {
        ExtrasInherit {
            expires: self.expires.or(outer.expires),
            charset: self.charset.clone().or_else(|| outer.charset.clone()),
            charset_types: self
                .charset_types
                .clone()
                .or_else(|| outer.charset_types.clone()),
            etag: self.etag.or(outer.etag),
        }
    }

    /// Defaults filled.
    pub(super) fn finish(&self) -> Extras {
        Extras {
            expires: self.expires.unwrap_or_default(),
            charset: self.charset.clone().flatten(),
            charset_types: self.charset_types.clone().unwrap_or_else(|| {
                DEFAULT_CHARSET_TYPES
                    .iter()
                    .map(|t| t.to_string())
                    .collect()
            }),
            etag: self.etag.unwrap_or(true),
        }
    }
}
