//! The request router built from the config: listen table, virtual-host
//! selection by Host, location matching (exact, then longest prefix) and the
//! MIME table.

use crate::config::{Config, ListenConf, LocationMatch};
use std::collections::HashMap;
use std::sync::Arc;

/// One distinct listen address and the servers on it.
#[derive(Debug, Clone)]
pub struct ListenEntry {
    /// First `listen` seen for the address (its flags win).
    pub conf: ListenConf,
    /// Servers listening here, in file order.
    pub servers: Vec<usize>,
    /// The default server (first, or the one with `default_server`).
    pub default: usize,
    /// TLS of the address (some `listen ... ssl` names it): every server on
    /// it by SNI.
    pub tls: Option<crate::tls::TlsAddress>,
}

/// Routing tables for one configuration.
pub struct Site {
    /// The configuration.
    pub cfg: Arc<Config>,
    /// Distinct listen addresses; a connection carries an index into this.
    pub listens: Vec<ListenEntry>,
    mime: HashMap<Box<[u8]>, Box<[u8]>>,
}

/// Build the listen table of a config (also used by the master to bind).
pub fn listen_table(cfg: &Config) -> Vec<ListenEntry> {
    let mut table: Vec<ListenEntry> = Vec::new();
    for (si, server) in cfg.http.servers.iter().enumerate() {
        for l in &server.listens {
            match table.iter_mut().find(|e| e.conf.addr == l.addr) {
                Some(e) => {
                    e.conf.ssl |= l.ssl;
                    e.conf.http2 |= server.speaks_h2_on(l.addr);
                    if !e.servers.contains(&si) {
                        e.servers.push(si);
                    }
                    if l.default_server {
                        e.default = si;
                    }
                }
                None => table.push(ListenEntry {
                    conf: ListenConf {
                        http2: server.speaks_h2_on(l.addr),
                        ..l.clone()
                    },
                    servers: vec![si],
                    default: si,
                    tls: None,
                }),
            }
        }
    }
    for e in &mut table {
        e.tls = cfg
            .http
            .tls
            .iter()
            .find(|(a, _)| *a == e.conf.addr)
            .map(|(_, c)| c.clone());
    }
    table
}

pub(crate) fn host_without_port(host: &[u8]) -> &[u8] {
    let h = if host.first() == Some(&b'[') {
        match host.iter().position(|&b| b == b']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.iter().rposition(|&b| b == b':') {
            Some(c) => &host[..c],
            None => host,
        }
    };
    h.strip_suffix(b".").unwrap_or(h)
}

fn name_matches(pattern: &str, host: &[u8]) -> bool {
    let p = pattern.as_bytes();
    if let Some(suffix) = p.strip_prefix(b"*") {
        // "*.example.com" matches "a.example.com"
        host.len() > suffix.len() && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    } else if let Some(prefix) = p.strip_suffix(b"*") {
        host.len() > prefix.len() && host[..prefix.len()].eq_ignore_ascii_case(prefix)
    } else if let Some(rest) = p.strip_prefix(b".") {
        // ".example.com" matches example.com and its subdomains
        host.eq_ignore_ascii_case(rest)
            || (host.len() > p.len() && host[host.len() - p.len()..].eq_ignore_ascii_case(p))
    } else {
        host.eq_ignore_ascii_case(p)
    }
}

impl Site {
    /// Build the router.
    pub fn new(cfg: Arc<Config>) -> Site {
        let listens = listen_table(&cfg);
        let mut mime = HashMap::new();
        for (ext, ty) in &cfg.http.mime_types {
            mime.insert(
                ext.to_ascii_lowercase().into_bytes().into_boxed_slice(),
                ty.clone().into_bytes().into_boxed_slice(),
            );
        }
        Site { cfg, listens, mime }
    }

    /// Pick the server for a connection on `listen_idx` with this Host.
    pub fn find_server(&self, listen_idx: usize, host: Option<&[u8]>) -> usize {
        let Some(entry) = self.listens.get(listen_idx) else {
            return 0;
        };
        if entry.servers.len() == 1 {
            return entry.servers[0];
        }
        if let Some(host) = host {
            let h = host_without_port(host);
            // exact names first, then wildcards
            for exact in [true, false] {
                for &si in &entry.servers {
                    let names = &self.cfg.http.servers[si].server_names;
                    if names.iter().any(|n| {
                        let wild = n.starts_with('*') || n.ends_with('*') || n.starts_with('.');
                        wild != exact && name_matches(n, h)
                    }) {
                        return si;
                    }
                }
            }
        }
        entry.default
    }

    /// Pick the location of `server` for a normalized path, nginx's order:
    /// an exact match; else the longest prefix, kept at once if it is `^~`;
    /// else the first regex in config order that matches (its captures go
    /// into `caps`, as spans of `path`, for `$1`..`$9`); else that prefix.
    pub fn find_location(&self, server: usize, path: &[u8], caps: &mut Vec<(u32, u32)>) -> usize {
        caps.clear();
        let locs = &self.cfg.http.servers[server].locations;
        let mut best: Option<(usize, usize)> = None;
        for (i, l) in locs.iter().enumerate() {
            let lp = l.path.as_bytes();
            match l.match_kind {
                LocationMatch::Exact => {
                    if lp == path {
                        return i;
                    }
                }
                LocationMatch::Prefix | LocationMatch::PrefixNoRegex => {
                    if path.starts_with(lp) && best.is_none_or(|(_, len)| lp.len() > len) {
                        best = Some((i, lp.len()));
                    }
                }
                LocationMatch::Regex | LocationMatch::Named | LocationMatch::If => {}
            }
        }
        let no_regex =
            best.is_some_and(|(i, _)| locs[i].match_kind == LocationMatch::PrefixNoRegex);
        if !no_regex {
            for (i, l) in locs.iter().enumerate() {
                let Some(re) = l.regex.as_ref() else {
                    continue;
                };
                if let Some(c) = re.captures(path) {
                    caps.extend(c.iter().map(|m| {
                        m.map_or((u32::MAX, u32::MAX), |m| (m.start() as u32, m.end() as u32))
                    }));
                    return i;
                }
            }
        }
        // The loader guarantees a "/" prefix location, so paths starting with
        // '/' always match; fall back to the last location otherwise.
        best.map_or(locs.len().saturating_sub(1), |(i, _)| i)
    }

    /// The `location @name` of `server` called `name` (with its `@`).
    pub fn find_named(&self, server: usize, name: &str) -> Option<usize> {
        self.cfg.http.servers[server]
            .locations
            .iter()
            .position(|l| l.match_kind == LocationMatch::Named && l.path == name)
    }

    /// Content type for a file path by its extension.
    pub fn mime(&self, path: &[u8]) -> &[u8] {
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        if let Some(dot) = name.iter().rposition(|&b| b == b'.') {
            let ext = &name[dot + 1..];
            let mut lower = [0u8; 16];
            if ext.len() <= lower.len() {
                for (d, s) in lower.iter_mut().zip(ext) {
                    *d = s.to_ascii_lowercase();
                }
                if let Some(t) = self.mime.get(&lower[..ext.len()]) {
                    return t;
                }
            }
        }
        self.cfg.http.default_type.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_stripping() {
        assert_eq!(host_without_port(b"example.com:8080"), b"example.com");
        assert_eq!(host_without_port(b"example.com."), b"example.com");
        assert_eq!(host_without_port(b"[::1]:80"), b"[::1]");
        assert_eq!(host_without_port(b"x"), b"x");
    }

    #[test]
    fn wildcard_names() {
        assert!(name_matches("*.example.com", b"a.example.com"));
        assert!(!name_matches("*.example.com", b"example.com"));
        assert!(name_matches("www.*", b"www.test"));
        assert!(name_matches(".example.com", b"example.com"));
        assert!(name_matches(".example.com", b"x.example.com"));
        assert!(name_matches("Example.com", b"example.COM"));
    }
}
