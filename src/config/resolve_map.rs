//! `map SOURCE $NAME { ... }` (http level), nginx's semantics: strings match
//! ignoring case; with `hostnames`, `*.example.com`, `.example.com` and
//! `mail.*` masks (the longest prefix mask, then the longest suffix mask);
//! `~` / `~*` regexes in order; `default` (else empty). Values may contain
//! variables. A `\` escapes a key that is a special word. `volatile` is
//! accepted (nothing is cached). The variable `$NAME` is known to every
//! string of the configuration, before or after the `map`.

use super::parse::Directive;
use super::values::{Spec, HTTP};
use super::vars::Template;
use super::ConfigError;
use std::collections::HashMap;

/// The directive, for the generic checks.
pub(super) const SPECS: &[Spec] = &[Spec {
    name: "map",
    contexts: HTTP,
    block: true,
    min_args: 2,
    max_args: 2,
    repeatable: true,
}];

/// One `map`.
#[derive(Debug, Clone)]
pub struct MapConf {
    /// The variable's name (without `$`).
    pub name: String,
    /// What is looked up.
    pub source: Template,
    /// Exact keys, lowercase -> value index.
    pub exact: HashMap<Vec<u8>, usize>,
    /// `*.example.com` / `.example.com`: (".example.com", value), longest first.
    pub prefix_masks: Vec<(Vec<u8>, usize)>,
    /// `mail.*`: ("mail.", value), longest first.
    pub suffix_masks: Vec<(Vec<u8>, usize)>,
    /// Regexes in config order.
    pub regexes: Vec<(regex::bytes::Regex, usize)>,
    /// The values.
    pub values: Vec<Template>,
    /// `default` (index into `values`).
    pub default: Option<usize>,
}

impl MapConf {
    /// The value index for `source` (already evaluated).
    pub fn lookup(&self, source: &[u8]) -> Option<usize> {
        let lower = source.to_ascii_lowercase();
        if let Some(&v) = self.exact.get(&lower) {
            return Some(v);
        }
        for (suffix, v) in &self.prefix_masks {
            // ".example.com" matches "example.com" and "x.example.com".
            if lower.ends_with(suffix) || lower == suffix[1..] {
                return Some(*v);
            }
        }
        for (prefix, v) in &self.suffix_masks {
            if lower.starts_with(prefix) {
                return Some(*v);
            }
        }
        self.regexes
            .iter()
            .find(|(re, _)| re.is_match(source))
            .map(|(_, v)| *v)
            .or(self.default)
    }
}

/// The `$NAME`s the `map`s of an http block define (checked for form).
pub(super) fn names(block: &[Directive]) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for d in block.iter().filter(|d| d.name == "map") {
        let Some(name) = d.args.get(1).and_then(|v| v.strip_prefix('$')) else {
            return Err(d.error(format!(
                "invalid variable name \"{}\"",
                d.args.get(1).map_or("", String::as_str)
            )));
        };
        let lower = name.to_ascii_lowercase();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(d.error(format!("invalid variable name \"${name}\"")));
        }
        if super::vars::Var::builtin(&lower).is_some() || out.contains(&lower) {
            return Err(d.error(format!("the duplicate \"{name}\" variable")));
        }
        out.push(lower);
    }
    Ok(out)
}

/// Resolve one `map` block (the names of every map already known).
pub(super) fn resolve(d: &Directive) -> Result<MapConf, ConfigError> {
    let source = Template::compile(&d.args[0]).map_err(|m| d.error(m))?;
    let name = d.args[1][1..].to_ascii_lowercase();
    let mut m = MapConf {
        name,
        source,
        exact: HashMap::new(),
        prefix_masks: Vec::new(),
        suffix_masks: Vec::new(),
        regexes: Vec::new(),
        values: Vec::new(),
        default: None,
    };
    let mut hostnames = false;
    for e in d.children() {
        let key = e.name.as_str();
        match (key, e.args.len()) {
            ("hostnames", 0) => {
                hostnames = true;
                continue;
            }
            ("volatile", 0) => continue,
            ("include", _) => {
                return Err(e.error("\"include\" inside \"map\" is not supported yet"))
            }
            (_, 1) => {}
            _ => return Err(e.error("invalid number of the map parameters")),
        }
        let value = Template::compile(&e.args[0]).map_err(|msg| e.error(msg))?;
        m.values.push(value);
        let vi = m.values.len() - 1;
        if key == "default" {
            if m.default.replace(vi).is_some() {
                return Err(e.error("duplicate default map parameter"));
            }
            continue;
        }
        if let Some(pattern) = key.strip_prefix('~') {
            let (pattern, caseless) = match pattern.strip_prefix('*') {
                Some(p) => (p, true),
                None => (pattern, false),
            };
            let re = regex::bytes::RegexBuilder::new(pattern)
                .case_insensitive(caseless)
                .size_limit(1 << 20)
                .build()
                .map_err(|_| e.error(format!("invalid regex \"{pattern}\"")))?;
            m.regexes.push((re, vi));
            continue;
        }
        let key = key.strip_prefix('\\').unwrap_or(key).to_ascii_lowercase();
        if hostnames {
            if let Some(rest) = key.strip_prefix("*.") {
                m.prefix_masks.push((format!(".{rest}").into_bytes(), vi));
                continue;
            }
            if key.starts_with('.') {
                m.prefix_masks.push((key.into_bytes(), vi));
                continue;
            }
            if let Some(rest) = key.strip_suffix(".*") {
                m.suffix_masks.push((format!("{rest}.").into_bytes(), vi));
                continue;
            }
        }
        if m.exact.insert(key.clone().into_bytes(), vi).is_some() {
            return Err(e.error(format!("conflicting parameter \"{key}\"")));
        }
    }
    m.prefix_masks.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
    m.suffix_masks.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
    Ok(m)
}
