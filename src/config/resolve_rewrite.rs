//! The rewrite module's directives, compiled into `types_rewrite::Op`s:
//! `rewrite`, `return`, `set`, `break`, `if` (its condition; the block of
//! an `if` in a location is resolved by `resolve_http`, which gives it a
//! configuration of its own), `rewrite_log`, `uninitialized_variable_warn`.
//! Also the names of the script variables (`set $x`, named captures of
//! every regex), gathered before anything is compiled: nginx knows them
//! everywhere in the http block.

use super::parse::Directive;
use super::types::ReturnConf;
use super::types_rewrite::{Cond, FileTest, Op, RewriteFlag, RewriteOp};
use super::values::{flag, template, Spec, HTTP, LOCATION, SERVER};
use super::vars::{script_index, Var};
use super::ConfigError;

const SL: u8 = SERVER | LOCATION;
const MANY: usize = 64;

/// The directives, for the generic checks (`return` is in `values`).
pub(super) const SPECS: &[Spec] = &[
    Spec::new("rewrite", SL, 2, 3).repeatable(),
    Spec::new("set", SL, 2, 2).repeatable(),
    Spec::new("break", SL, 0, 0).repeatable(),
    Spec {
        name: "if",
        contexts: SL,
        block: true,
        min_args: 1,
        max_args: MANY,
        repeatable: true,
    },
    Spec::new("rewrite_log", HTTP | SL, 1, 1),
    Spec::new("uninitialized_variable_warn", HTTP | SL, 1, 1),
];

/// Directives other than the rewrite module's that an `if` in a location
/// may hold (nginx's "if in location" context, those sluice has).
pub(super) const IN_LOCATION_IF: &[&str] = &[
    "root",
    "add_header",
    "proxy_pass",
    "expires",
    "charset",
    "gzip",
    "access_log",
    "error_page",
    "sendfile",
];

/// The rewrite module's directives that compile into ops (`if` aside).
pub(super) fn is_op(name: &str) -> bool {
    matches!(name, "rewrite" | "return" | "set" | "break")
}

/// `rewrite_log` / `uninitialized_variable_warn` of one level.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RewriteFlags {
    pub(super) log: Option<bool>,
    pub(super) uninit_warn: Option<bool>,
}

impl RewriteFlags {
    /// Applies `d` if it is one of the two; `Ok(false)` otherwise.
    pub(super) fn apply(&mut self, d: &Directive) -> Result<bool, ConfigError> {
        match d.name.as_str() {
            "rewrite_log" => self.log = Some(flag(d)?),
            "uninitialized_variable_warn" => self.uninit_warn = Some(flag(d)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `self` (inner) over `outer`.
    pub(super) fn over(self, outer: &RewriteFlags) -> RewriteFlags {
        RewriteFlags {
            log: self.log.or(outer.log),
            uninit_warn: self.uninit_warn.or(outer.uninit_warn),
        }
    }

    /// The configuration with these flags and `ops`.
    pub(super) fn conf(self, ops: Vec<Op>) -> super::RewriteConf {
        super::RewriteConf {
            ops,
            log: self.log.unwrap_or(false),
            uninit_warn: self.uninit_warn.unwrap_or(true),
        }
    }
}

/// Compile `rewrite`, `return`, `set` or `break`.
pub(super) fn op(d: &Directive) -> Result<Op, ConfigError> {
    Ok(match d.name.as_str() {
        "rewrite" => Op::Rewrite(rewrite(d)?),
        "return" => Op::Return(return_conf(d)?),
        "set" => set(d)?,
        _ => Op::Break,
    })
}

/// An `if` of a server block: only rewrite-module directives inside.
pub(super) fn server_if(d: &Directive) -> Result<Op, ConfigError> {
    let cond = condition(d)?;
    let mut ops = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for c in d.children() {
        super::resolve_http::check(c, SERVER, &mut seen)?;
        match c.name.as_str() {
            "if" => ops.push(server_if(c)?),
            n if is_op(n) => ops.push(op(c)?),
            _ => return Err(super::values::not_allowed(c)),
        }
    }
    Ok(Op::If {
        cond,
        ops,
        loc: None,
    })
}

/// Add `base` to every `if`'s location index in `ops` (a location's
/// blocks are numbered from 0 while it is read).
pub(super) fn offset_ifs(ops: &mut [Op], base: usize) {
    for o in ops {
        if let Op::If { ops, loc, .. } = o {
            if let Some(l) = loc {
                *l += base;
            }
            offset_ifs(ops, base);
        }
    }
}

/// A regex, nginx's way: the `regex` crate, a bounded program size.
fn regex(d: &Directive, pattern: &str, caseless: bool) -> Result<regex::bytes::Regex, ConfigError> {
    regex::bytes::RegexBuilder::new(pattern)
        .case_insensitive(caseless)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            let why = e.to_string();
            let last = why.lines().last().unwrap_or("").trim().to_string();
            d.error(format!("invalid regex \"{pattern}\": {last}"))
        })
}

/// The named groups of `re` as (group, script variable).
fn names(d: &Directive, re: &regex::bytes::Regex) -> Result<Vec<(usize, usize)>, ConfigError> {
    let mut out = Vec::new();
    for (i, name) in re.capture_names().enumerate() {
        let Some(name) = name else { continue };
        match script_index(name) {
            Some(v) if Var::builtin(name).is_none() => out.push((i, v)),
            _ => return Err(d.error(format!("the duplicate \"{name}\" variable"))),
        }
    }
    Ok(out)
}

fn rewrite(d: &Directive) -> Result<RewriteOp, ConfigError> {
    let re = regex(d, &d.args[0], false)?;
    let mut repl = d.args[1].as_str();
    let is_url = ["http://", "https://", "$scheme"]
        .iter()
        .any(|p| repl.starts_with(p));
    let flag = match d.args.get(2).map(String::as_str) {
        None if is_url => RewriteFlag::Redirect,
        None => RewriteFlag::None,
        Some("last") if is_url => RewriteFlag::Redirect,
        Some("last") => RewriteFlag::Last,
        Some("break") if is_url => RewriteFlag::Redirect,
        Some("break") => RewriteFlag::Break,
        Some("redirect") => RewriteFlag::Redirect,
        Some("permanent") => RewriteFlag::Permanent,
        Some(other) => return Err(d.error(format!("invalid parameter \"{other}\""))),
    };
    let drop_args = repl.ends_with('?');
    if drop_args {
        repl = &repl[..repl.len() - 1];
    }
    Ok(RewriteOp {
        names: names(d, &re)?,
        regex: re,
        replacement: template(d, repl)?,
        flag,
        drop_args,
    })
}

/// `return CODE [TEXT|URL];` / `return URL;`
pub(super) fn return_conf(d: &Directive) -> Result<ReturnConf, ConfigError> {
    let first = super::values::arg0(d);
    let invalid = || d.error(format!("invalid return code \"{first}\""));
    if first.bytes().all(|b| b.is_ascii_digit()) {
        let code = super::values::number(d, first)
            .ok()
            .and_then(|c| u16::try_from(c).ok())
            .filter(|&c| c <= 999)
            .ok_or_else(invalid)?;
        return Ok(ReturnConf {
            code,
            text: d.args.get(1).map(|t| template(d, t)).transpose()?,
        });
    }
    let is_url = ["http://", "https://", "$scheme"]
        .iter()
        .any(|p| first.starts_with(p));
    if d.args.len() == 1 && is_url {
        return Ok(ReturnConf {
            code: 302,
            text: Some(template(d, first)?),
        });
    }
    Err(invalid())
}

fn set(d: &Directive) -> Result<Op, ConfigError> {
    let name = &d.args[0];
    let Some(bare) = name.strip_prefix('$').filter(|n| !n.is_empty()) else {
        return Err(d.error(format!("invalid variable name \"{name}\"")));
    };
    let value = template(d, &d.args[1])?;
    if matches!(Var::builtin(bare), Some(Var::Args)) && bare.eq_ignore_ascii_case("args") {
        return Ok(Op::Set {
            var: 0,
            args: true,
            value,
        });
    }
    match (Var::builtin(bare), script_index(bare)) {
        (None, Some(var)) => Ok(Op::Set {
            var,
            args: false,
            value,
        }),
        _ => Err(d.error(format!("the duplicate \"{bare}\" variable"))),
    }
}

/// The condition of `if (...)`, nginx's forms: `$var`, `$var = text`,
/// `!=`, `~`, `~*`, `!~`, `!~*`, `-f`, `!-f`, `-d`, `!-d`, `-e`, `!-e`,
/// `-x`, `!-x`. The parentheses may stand alone or touch the first and
/// last words.
pub(super) fn condition(d: &Directive) -> Result<Cond, ConfigError> {
    let invalid = || {
        d.error(format!(
            "invalid condition \"{}\"",
            d.args.first().map_or("", String::as_str)
        ))
    };
    let mut words: Vec<&str> = d.args.iter().map(String::as_str).collect();
    let first = words.first().copied().ok_or_else(invalid)?;
    let Some(rest) = first.strip_prefix('(') else {
        return Err(invalid());
    };
    if rest.is_empty() {
        words.remove(0);
    } else {
        words[0] = rest;
    }
    let last = words.last().copied().ok_or_else(invalid)?;
    let Some(rest) = last.strip_suffix(')') else {
        return Err(invalid());
    };
    let n = words.len();
    if rest.is_empty() {
        words.pop();
    } else {
        words[n - 1] = rest;
    }
    let var = |w: &str| {
        if w.len() > 1 && w.starts_with('$') {
            template(d, w)
        } else {
            Err(invalid())
        }
    };
    match words.as_slice() {
        [v] if v.starts_with('$') => Ok(Cond::Var(var(v)?)),
        [v, op, value] if v.starts_with('$') => {
            let var = var(v)?;
            let (negate, caseless) = match *op {
                "=" => {
                    return Ok(Cond::Eq {
                        var,
                        value: template(d, value)?,
                        negate: false,
                    })
                }
                "!=" => {
                    return Ok(Cond::Eq {
                        var,
                        value: template(d, value)?,
                        negate: true,
                    })
                }
                "~" => (false, false),
                "~*" => (false, true),
                "!~" => (true, false),
                "!~*" => (true, true),
                other => return Err(d.error(format!("unexpected \"{other}\" in condition"))),
            };
            let re = regex(d, value, caseless)?;
            Ok(Cond::Regex {
                var,
                names: names(d, &re)?,
                regex: re,
                negate,
            })
        }
        [op, path] => {
            let (negate, t) = match op.strip_prefix('!') {
                Some(t) => (true, t),
                None => (false, *op),
            };
            let test = match t {
                "-f" => FileTest::File,
                "-d" => FileTest::Dir,
                "-e" => FileTest::Exists,
                "-x" => FileTest::Exec,
                _ => return Err(d.error(format!("invalid condition \"{op}\""))),
            };
            Ok(Cond::File {
                test,
                path: template(d, path)?,
                negate,
            })
        }
        _ => Err(invalid()),
    }
}

/// The script variables of an http block (`set $x` and named captures of
/// `rewrite`s and `if`s), lowercase, in first-seen order.
pub(super) fn script_names(block: &[Directive]) -> Vec<String> {
    let mut out = Vec::new();
    collect(block, &mut out);
    out
}

fn add(name: &str, out: &mut Vec<String>) {
    let lower = name.to_ascii_lowercase();
    if Var::builtin(&lower).is_none() && !out.contains(&lower) {
        out.push(lower);
    }
}

fn groups(pattern: &str, out: &mut Vec<String>) {
    if let Ok(re) = regex::bytes::Regex::new(pattern) {
        for n in re.capture_names().flatten() {
            add(n, out);
        }
    }
}

fn collect(block: &[Directive], out: &mut Vec<String>) {
    for d in block {
        match d.name.as_str() {
            "set" => {
                if let Some(n) = d.args.first().and_then(|a| a.strip_prefix('$')) {
                    add(n, out);
                }
            }
            "rewrite" => {
                if let Some(p) = d.args.first() {
                    groups(p, out);
                }
            }
            "if" => {
                if let Some(i) = d.args.iter().position(|a| a.contains('~')) {
                    if let Some(p) = d.args.get(i + 1) {
                        groups(p.strip_suffix(')').unwrap_or(p), out);
                    }
                }
            }
            _ => {}
        }
        collect(d.children(), out);
    }
}
