//! The rewrite module's compiled form: each server and location holds its
//! `rewrite`, `return`, `set`, `if` and `break` directives as [`Op`]s in
//! config order (nginx's script codes, as a tree: an `if` holds its own
//! ops). `http::handler`'s rewrite phase runs them.

use super::types::ReturnConf;
use super::vars::Template;

/// What a `rewrite` does after its replacement when the regex matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteFlag {
    /// No flag: the next op runs (a changed URI selects a location again
    /// once the ops end).
    None,
    /// `last`: stop, select a location for the new URI.
    Last,
    /// `break`: stop, stay in this location.
    Break,
    /// `redirect` (302), or a replacement starting with `http://`,
    /// `https://` or `$scheme`.
    Redirect,
    /// `permanent` (301).
    Permanent,
}

/// `rewrite REGEX REPLACEMENT [flag];`
#[derive(Debug, Clone)]
pub struct RewriteOp {
    /// The pattern, matched against `$uri`.
    pub regex: regex::bytes::Regex,
    /// The replacement, with `$1`..`$9`, named captures and variables.
    pub replacement: Template,
    /// The flag (a URL replacement is `Redirect` unless `permanent`).
    pub flag: RewriteFlag,
    /// The replacement ends with `?`: the request's arguments are dropped.
    pub drop_args: bool,
    /// Named groups as (group index, script variable index).
    pub names: Vec<(usize, usize)>,
}

/// A file test of `if`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileTest {
    /// `-f`: a regular file.
    File,
    /// `-d`: a directory.
    Dir,
    /// `-e`: a file, directory or symbolic link.
    Exists,
    /// `-x`: an executable file.
    Exec,
}

/// The condition of an `if`.
#[derive(Debug, Clone)]
pub enum Cond {
    /// `($var)`: false when empty or `0`.
    Var(Template),
    /// `($var = text)` (`negate`: `!=`).
    Eq {
        /// The variable.
        var: Template,
        /// The text compared (may hold variables).
        value: Template,
        /// `!=`.
        negate: bool,
    },
    /// `($var ~ re)`, `~*` (caseless), `!~`, `!~*`.
    Regex {
        /// The variable.
        var: Template,
        /// The compiled pattern.
        regex: regex::bytes::Regex,
        /// `!~` / `!~*`.
        negate: bool,
        /// Named groups as (group index, script variable index).
        names: Vec<(usize, usize)>,
    },
    /// `(-f path)` and friends (`negate`: `!-f`).
    File {
        /// Which test.
        test: FileTest,
        /// The path (may hold variables).
        path: Template,
        /// `!-f`.
        negate: bool,
    },
}

/// One compiled rewrite-module directive.
#[derive(Debug, Clone)]
pub enum Op {
    /// `rewrite`.
    Rewrite(RewriteOp),
    /// `return`.
    Return(ReturnConf),
    /// `set $var value;` (`args`: `set $args`, which replaces the query).
    Set {
        /// Script variable index (unused for `$args`).
        var: usize,
        /// `set $args`.
        args: bool,
        /// The value.
        value: Template,
    },
    /// `if (cond) { ops }`.
    If {
        /// The condition.
        cond: Cond,
        /// The block's rewrite ops.
        ops: Vec<Op>,
        /// In a location: the block's configuration (an index into the
        /// server's locations) that serves the request once the condition
        /// holds. `None` in a server's `if`.
        loc: Option<usize>,
    },
    /// `break;`.
    Break,
}

/// The rewrite module of one server or location.
#[derive(Debug, Clone)]
pub struct RewriteConf {
    /// The ops in config order (empty: the phase costs nothing).
    pub ops: Vec<Op>,
    /// `rewrite_log on|off` (default off): matches at notice level.
    pub log: bool,
    /// `uninitialized_variable_warn on|off` (default on).
    pub uninit_warn: bool,
}

impl Default for RewriteConf {
    fn default() -> RewriteConf {
        RewriteConf {
            ops: Vec::new(),
            log: false,
            uninit_warn: true,
        }
    }
}

impl RewriteConf {
    /// The first top-level `return` (config tests, messages).
    pub fn first_return(&self) -> Option<&ReturnConf> {
        self.ops.iter().find_map(|o| match o {
            Op::Return(r) => Some(r),
            _ => None,
        })
    }
}
