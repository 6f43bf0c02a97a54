//! Configuration: lexer -> raw directive tree -> typed, validated `Config`.
//!
//! nginx syntax: blocks, `;`, `#` comments, quoted strings, `include`. Every
//! error carries `file:line`. Entry points: [`load`] (a file) and
//! [`load_str`] (text), both taking the `-g` main-context override text.
//!
//! Stages: `lexer` (tokens) -> `parse` (directive tree, includes expanded) ->
//! `resolve` + `resolve_http` + `resolve_limits` (typed `Config`, nginx
//! merge rules, defaults); `resolve_cache` parses the cache directives into
//! `types_cache`, `resolve_proxy` the proxy ones into `types_proxy`.

mod lexer;
mod mime_default;
mod parse;
mod resolve;
mod resolve_access;
mod resolve_cache;
mod resolve_cluster;
mod resolve_compat;
mod resolve_extras;
mod resolve_gzip;
mod resolve_http;
mod resolve_limits;
mod resolve_map;
mod resolve_proxy;
mod resolve_redirects;
mod resolve_rewrite;
mod resolve_ssl;
mod resolve_waiting_room;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cache;
#[cfg(test)]
mod tests_cluster;
#[cfg(test)]
mod tests_http;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_rewrite;
#[cfg(test)]
mod tests_waiting_room;
mod types;
mod types_access;
mod types_cache;
mod types_cluster;
mod types_limits;
mod types_proxy;
mod types_rewrite;
mod types_ssl;
mod types_waiting_room;
mod values;
mod vars;

pub use mime_default::default_mime_types;
pub use resolve_extras::{Expires, Extras};
pub use resolve_gzip::{GzipConf, GzipStatic};
pub use resolve_map::MapConf;
pub use resolve_proxy::{implicit_upstream, lookup};
pub use resolve_redirects::{ErrorPage, RedirectTarget, TryFiles, TryLast};
pub use types::*;
pub use types_access::*;
pub use types_cache::*;
pub use types_cluster::*;
pub use types_limits::*;
pub use types_proxy::*;
pub use types_rewrite::*;
pub use types_ssl::*;
pub use types_waiting_room::*;
pub use vars::{Part, Template, Var};

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parse::{parse_text, read_text, MAX_CONFIG_BYTES};

/// File name used in errors about the `-g` text.
pub const EXTRA_MAIN_FILE: &str = "-g";

/// Loads and validates the config file at `path`. `extra_main` is the `-g`
/// text: main-context directives applied after the file's, replacing
/// same-named directives of the file; its errors name the file `-g`.
pub fn load(path: &Path, extra_main: Option<&str>) -> Result<Config, ConfigError> {
    let file = absolute_file(path);
    let mut budget_bytes = MAX_CONFIG_BYTES;
    let text = read_text(&file, &mut budget_bytes).map_err(|e| e.located(&file, None))?;
    load_str(&text, &file, extra_main)
}

/// Like [`load`] on `text`; `path` names it in errors and is the base of
/// relative paths (made absolute against the current directory if needed).
pub fn load_str(text: &str, path: &Path, extra_main: Option<&str>) -> Result<Config, ConfigError> {
    let file = absolute_file(path);
    let conf_dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut main = parse_text(text, Arc::new(file.clone()), &conf_dir)?;
    if let Some(extra) = extra_main {
        let extra = parse_text(extra, Arc::new(PathBuf::from(EXTRA_MAIN_FILE)), &conf_dir)?;
        let overridden: HashSet<&str> = extra.iter().map(|d| d.name.as_str()).collect();
        main.retain(|d| !overridden.contains(d.name.as_str()));
        main.extend(extra);
    }
    resolve::resolve(&main, &file)
}

/// `path` made absolute against the current directory, `.` components dropped.
fn absolute_file(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.components().collect();
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(path).components().collect(),
        Err(_) => path.to_path_buf(),
    }
}

/// A configuration error with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File the error is in.
    pub file: PathBuf,
    /// 1-based line; 0 when the error is about the file as a whole.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}
