//! Access settings, merged http -> server -> location as nginx does:
//! `allow`/`deny` rules, `satisfy all|any`, `auth_basic` +
//! `auth_basic_user_file`, `auth_request`, `limit_except METHOD ... { }`
//! (its own rules and authentication, else the location's), and the real
//! client address (`set_real_ip_from`, `real_ip_header`,
//! `real_ip_recursive`). Typed into `types_access`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::parse::Directive;
use super::types_access::{
    AuthBasic, AuthConf, AuthRequest, LimitExcept, RealIpConf, RealIpHeader,
};
use super::values::{arg0, flag, invalid_value, path_arg, template, Spec, HTTP, LOCATION, SERVER};
use super::{AccessRule, Cidr, ConfigError};

const HSL: u8 = HTTP | SERVER | LOCATION;

/// The directives, for the generic checks.
pub(super) const SPECS: &[Spec] = &[
    Spec::new("satisfy", HSL, 1, 1),
    Spec::new("auth_basic", HSL, 1, 1),
    Spec::new("auth_basic_user_file", HSL, 1, 1),
    Spec::new("auth_request", HSL, 1, 1),
    Spec::new("auth_request_set", HSL, 2, 2).repeatable(),
    Spec::new("set_real_ip_from", HSL, 1, 1).repeatable(),
    Spec::new("real_ip_header", HSL, 1, 1),
    Spec::new("real_ip_recursive", HSL, 1, 1),
    Spec {
        name: "limit_except",
        contexts: LOCATION,
        block: true,
        min_args: 1,
        max_args: 16,
        repeatable: false,
    },
];

/// The methods `limit_except` knows (nginx's list).
const METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "MKCOL",
    "COPY",
    "MOVE",
    "OPTIONS",
    "PROPFIND",
    "PROPPATCH",
    "LOCK",
    "UNLOCK",
    "PATCH",
];

/// What a `limit_except` block may hold.
const IN_LIMIT_EXCEPT: &[&str] = &[
    "allow",
    "deny",
    "auth_basic",
    "auth_basic_user_file",
    "auth_request",
];

/// `allow ADDR|CIDR|all;` / `deny ...;`
pub(super) fn rule(d: &Directive) -> Result<AccessRule, ConfigError> {
    let v = arg0(d);
    if v.starts_with("unix:") {
        return Err(d.error("unix domain sockets are not supported"));
    }
    let from = super::values::cidrs(v).ok_or_else(|| invalid_value(d, v))?;
    Ok(AccessRule {
        allow: d.name == "allow",
        from,
    })
}

/// One level's access settings while resolving; `None` = not set here.
#[derive(Debug, Default, Clone)]
pub(super) struct AccessInherit {
    satisfy_any: Option<bool>,
    /// `Some(None)`: `auth_basic off`.
    basic_realm: Option<Option<super::Template>>,
    user_file: Option<PathBuf>,
    /// `Some(None)`: `auth_request off`.
    request: Option<Option<String>>,
    /// `auth_request_set`s of this level: (variable index, value).
    sets: Option<Vec<(usize, super::Template)>>,
    /// `set_real_ip_from`s of this level (addresses, `unix:`).
    real_from: Option<(Vec<Cidr>, bool)>,
    real_header: Option<RealIpHeader>,
    real_recursive: Option<bool>,
}

impl AccessInherit {
    /// Applies `d` if it is an access setting; `Ok(false)` otherwise.
    pub(super) fn apply(&mut self, d: &Directive, conf_dir: &Path) -> Result<bool, ConfigError> {
        let v = arg0(d);
        match d.name.as_str() {
            "satisfy" => {
                self.satisfy_any = Some(match v {
                    "all" => false,
                    "any" => true,
                    _ => return Err(invalid_value(d, v)),
                })
            }
            "auth_basic" => {
                self.basic_realm = Some(match v {
                    "off" => None,
                    _ => Some(template(d, v)?),
                })
            }
            "auth_basic_user_file" => self.user_file = Some(path_arg(d, conf_dir, v)?),
            "auth_request" => {
                self.request = Some(match v {
                    "off" => None,
                    _ if !v.starts_with('/') => return Err(invalid_value(d, v)),
                    _ => Some(v.to_string()),
                })
            }
            "set_real_ip_from" => {
                let from = self.real_from.get_or_insert_with(Default::default);
                if v == "unix:" {
                    from.1 = true;
                } else {
                    let c = super::values::cidrs(v).ok_or_else(|| invalid_value(d, v))?;
                    from.0.extend(c);
                }
            }
            "real_ip_header" => {
                self.real_header = Some(match v.to_ascii_lowercase().as_str() {
                    "x-real-ip" => RealIpHeader::XRealIp,
                    "x-forwarded-for" => RealIpHeader::XForwardedFor,
                    "proxy_protocol" => return Err(d.error(
                        "\"real_ip_header proxy_protocol\" needs \"listen ... proxy_protocol\", \
                             and sluice does not accept the PROXY protocol yet",
                    )),
                    "" => return Err(invalid_value(d, v)),
                    other => RealIpHeader::Other(other.to_string()),
                })
            }
            "real_ip_recursive" => self.real_recursive = Some(flag(d)?),
            "auth_request_set" => {
                let name = v.strip_prefix('$').unwrap_or("");
                let Some(super::Var::AuthSet(i)) = super::Var::from_name(name) else {
                    return Err(d.error(format!("invalid variable name \"{v}\"")));
                };
                let value = d.args.get(1).map_or("", String::as_str);
                let t = super::vars::compile_auth_set(value).map_err(|m| d.error(m))?;
                self.sets.get_or_insert_with(Vec::new).push((i, t));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `self` (inner) over `outer`.
    pub(super) fn over(self, outer: &AccessInherit) -> AccessInherit {
        AccessInherit {
            satisfy_any: self.satisfy_any.or(outer.satisfy_any),
            basic_realm: self.basic_realm.or_else(|| outer.basic_realm.clone()),
            user_file: self.user_file.or_else(|| outer.user_file.clone()),
            request: self.request.or_else(|| outer.request.clone()),
            sets: self.sets.or_else(|| outer.sets.clone()),
            real_from: self.real_from.or_else(|| outer.real_from.clone()),
            real_header: self.real_header.or_else(|| outer.real_header.clone()),
            real_recursive: self.real_recursive.or(outer.real_recursive),
        }
    }

    /// The authentication of a fully merged level (no `limit_except`).
    fn auth(&self) -> AuthConf {
        let basic = match (&self.basic_realm, &self.user_file) {
            (Some(Some(realm)), Some(file)) => Some(Arc::new(AuthBasic {
                realm: realm.clone(),
                user_file: file.clone(),
            })),
            _ => None,
        };
        AuthConf {
            satisfy_any: self.satisfy_any.unwrap_or(false),
            basic,
            request: self.request.clone().flatten().map(|uri| {
                Arc::new(AuthRequest {
                    uri,
                    sets: self.sets.clone().unwrap_or_default(),
                    vars: super::vars::auth_set_count(),
                })
            }),
            limit_except: None,
        }
    }

    /// A location's authentication (with its `limit_except`, whose unset
    /// settings come from the location) and real-address settings.
    pub(super) fn finish(
        &self,
        limit: Option<RawLimitExcept>,
        rules: &[AccessRule],
    ) -> (AuthConf, Option<Arc<RealIpConf>>) {
        let mut auth = self.auth();
        if let Some(l) = limit {
            let merged = l.inherit.over(self);
            auth.limit_except = Some(Arc::new(LimitExcept {
                methods: l.methods,
                rules: l.rules.unwrap_or_else(|| rules.to_vec()),
                auth: merged.auth(),
            }));
        }
        let realip = match &self.real_from {
            Some((from, unix)) if !from.is_empty() || *unix => Some(Arc::new(RealIpConf {
                from: from.clone(),
                unix: *unix,
                header: self.real_header.clone().unwrap_or(RealIpHeader::XRealIp),
                recursive: self.real_recursive.unwrap_or(false),
            })),
            _ => None,
        };
        (auth, realip)
    }
}

/// The `auth_request_set` variables of an http block, anywhere in it
/// (lowercase, without `$`); `maps` are the `map` variables.
pub(super) fn set_names(block: &[Directive], maps: &[String]) -> Result<Vec<String>, ConfigError> {
    fn walk(ds: &[Directive], maps: &[String], out: &mut Vec<String>) -> Result<(), ConfigError> {
        for d in ds {
            if d.name == "auth_request_set" {
                let v = arg0(d);
                let name = v.strip_prefix('$').unwrap_or("");
                let lower = name.to_ascii_lowercase();
                if name.is_empty()
                    || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    || super::Var::builtin(&lower).is_some()
                    || maps.contains(&lower)
                {
                    return Err(d.error(format!("invalid variable name \"{v}\"")));
                }
                if !out.contains(&lower) {
                    out.push(lower);
                }
            }
            walk(d.children(), maps, out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(block, maps, &mut out)?;
    Ok(out)
}

/// A `limit_except` block as read.
#[derive(Debug, Clone)]
pub(super) struct RawLimitExcept {
    methods: Vec<String>,
    rules: Option<Vec<AccessRule>>,
    inherit: AccessInherit,
}

/// `limit_except METHOD ... { allow/deny/auth_basic/auth_request ... }`.
pub(super) fn limit_except(d: &Directive, conf_dir: &Path) -> Result<RawLimitExcept, ConfigError> {
    let mut methods = Vec::new();
    for m in &d.args {
        let up = m.to_ascii_uppercase();
        if !METHODS.contains(&up.as_str()) {
            return Err(d.error(format!("invalid method \"{m}\"")));
        }
        if up == "GET" {
            methods.push("HEAD".to_string());
        }
        methods.push(up);
    }
    let mut raw = RawLimitExcept {
        methods,
        rules: None,
        inherit: AccessInherit::default(),
    };
    let mut seen = HashSet::new();
    for c in d.children() {
        super::resolve_http::check(c, LOCATION, &mut seen)?;
        if !IN_LIMIT_EXCEPT.contains(&c.name.as_str()) {
            return Err(c.error(format!(
                "\"{}\" directive is not supported inside \"limit_except\"",
                c.name
            )));
        }
        if c.name == "allow" || c.name == "deny" {
            raw.rules.get_or_insert_with(Vec::new).push(rule(c)?);
        } else {
            raw.inherit.apply(c, conf_dir)?;
        }
    }
    Ok(raw)
}
