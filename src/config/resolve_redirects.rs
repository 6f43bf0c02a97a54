//! Internal redirects' directives: `try_files FILE... LAST` (server,
//! location) and `error_page CODE... [=[CODE]] URI|@name` (http, server,
//! location; a level with its own replaces the inherited list, as nginx).

use super::parse::Directive;
use super::values::{Spec, HTTP, LOCATION, SERVER};
use super::vars::Template;
use super::ConfigError;

/// The directives, for the generic checks.
pub(super) const SPECS: &[Spec] = &[
    Spec::new("try_files", SERVER | LOCATION, 2, 32),
    Spec::new("error_page", HTTP | SERVER | LOCATION, 2, 32).repeatable(),
];

/// Where a redirect goes.
#[derive(Debug, Clone)]
pub enum RedirectTarget {
    /// A URI (with variables; a `?` starts new arguments).
    Uri(Template),
    /// A named location.
    Named(String),
}

/// `try_files`.
#[derive(Debug, Clone)]
pub struct TryFiles {
    /// The files tried, in order (a trailing `/` asks for a directory).
    pub files: Vec<Template>,
    /// The last parameter.
    pub last: TryLast,
}

/// `try_files`'s last parameter.
#[derive(Debug, Clone)]
pub enum TryLast {
    /// `=CODE`.
    Code(u16),
    /// A URI or a named location.
    Redirect(RedirectTarget),
}

/// One `error_page`.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    /// The statuses it takes over.
    pub codes: Vec<u16>,
    /// `=CODE`: answer with this status; `=` alone: the target's own;
    /// absent: the original status.
    pub status: Option<Option<u16>>,
    /// Where the request goes.
    pub target: RedirectTarget,
}

fn target(d: &Directive, v: &str) -> Result<RedirectTarget, ConfigError> {
    if let Some(name) = v.strip_prefix('@') {
        if name.is_empty() {
            return Err(d.error(format!("invalid location name \"{v}\"")));
        }
        return Ok(RedirectTarget::Named(v.to_string()));
    }
    if v.starts_with("http://") || v.starts_with("https://") {
        return Err(d.error(format!(
            "redirects to \"{v}\" are not supported yet: use a local URI or a named location"
        )));
    }
    Ok(RedirectTarget::Uri(
        Template::compile(v).map_err(|m| d.error(m))?,
    ))
}

/// `try_files FILE... LAST`.
pub(super) fn try_files(d: &Directive) -> Result<TryFiles, ConfigError> {
    let (last, files) = d.args.split_last().expect("at least 2 arguments");
    let files = files
        .iter()
        .map(|f| Template::compile(f).map_err(|m| d.error(m)))
        .collect::<Result<_, _>>()?;
    let last = match last.strip_prefix('=') {
        Some(code) => TryLast::Code(
            code.parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| d.error(format!("invalid code \"{last}\"")))?,
        ),
        None => TryLast::Redirect(target(d, last)?),
    };
    Ok(TryFiles { files, last })
}

/// `error_page CODE... [=[CODE]] URI|@name`.
pub(super) fn error_page(d: &Directive) -> Result<ErrorPage, ConfigError> {
    let (last, rest) = d.args.split_last().expect("at least 2 arguments");
    let mut codes = Vec::new();
    let mut status = None;
    for a in rest {
        if let Some(s) = a.strip_prefix('=') {
            status = Some(if s.is_empty() {
                None
            } else {
                Some(
                    s.parse::<u16>()
                        .ok()
                        .filter(|c| (100..=599).contains(c))
                        .ok_or_else(|| d.error(format!("invalid value \"{a}\"")))?,
                )
            });
            continue;
        }
        let c = a
            .parse::<u16>()
            .ok()
            .filter(|c| (300..=599).contains(c))
            .ok_or_else(|| d.error(format!("value \"{a}\" must be between 300 and 599")))?;
        codes.push(c);
    }
    if codes.is_empty() {
        return Err(d.error("invalid number of arguments in \"error_page\" directive"));
    }
    Ok(ErrorPage {
        codes,
        status,
        target: target(d, last)?,
    })
}
