//! Typed resolution of cluster mode: the `cluster` directive of `http` and
//! the `cluster=on|off` parameter of the zone directives.

use super::parse::Directive;
use super::types_cluster::{ClusterConf, ClusterFailure};
use super::values::{Spec, HTTP};
use super::ConfigError;
use crate::util::units::parse_duration_ms;

/// The cluster directives, for the generic checks in `resolve.rs`.
pub(super) const SPECS: &[Spec] = &[Spec::new("cluster", HTTP, 1, 4)];

/// Shortest and longest `sync=`.
const SYNC_MS: (u64, u64) = (10, 60_000);

/// `cluster redis://HOST:PORT[/DB] [sync=TIME] [failure=MODE] [node=NAME];`
pub(super) fn parse(d: &Directive) -> Result<ClusterConf, ConfigError> {
    let url = d.args[0].clone();
    check_url(d, &url)?;
    let mut c = ClusterConf {
        url,
        sync_ms: 100,
        failure: ClusterFailure::Local,
        node: None,
    };
    for (k, v) in super::values::params(d, 1, &["sync", "failure", "node"])? {
        match k {
            "sync" => {
                c.sync_ms = parse_duration_ms(v)
                    .filter(|t| (SYNC_MS.0..=SYNC_MS.1).contains(t))
                    .ok_or_else(|| d.error(format!("invalid sync \"{v}\" (10ms to 60s)")))?;
            }
            "failure" => {
                c.failure = match v {
                    "open" => ClusterFailure::Open,
                    "closed" => ClusterFailure::Closed,
                    "local" => ClusterFailure::Local,
                    _ => {
                        return Err(
                            d.error(format!("invalid failure \"{v}\" (open, closed, local)"))
                        )
                    }
                }
            }
            "node" => {
                let ok = !v.is_empty()
                    && v.len() <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
                if !ok {
                    return Err(d.error(format!(
                        "invalid node \"{v}\" (1 to 64 letters, digits, \"_\", \"-\", \".\", \":\")"
                    )));
                }
                c.node = Some(v.to_string());
            }
            _ => {} // params() lets only the names above through
        }
    }
    Ok(c)
}

/// `redis://[[USER]:PASSWORD@]HOST:PORT[/DB]`: checked here so a typo is a
/// config error, not a node that never syncs.
fn check_url(d: &Directive, url: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| d.error(format!("invalid cluster address \"{url}\": {why}"));
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| bad("expected redis://HOST:PORT[/DB]"))?;
    let (auth_host, db) = match rest.split_once('/') {
        Some((h, db)) => (h, Some(db)),
        None => (rest, None),
    };
    let host_port = auth_host.rsplit_once('@').map_or(auth_host, |(_, h)| h);
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| bad("a port is required"))?;
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(bad("no host"));
    }
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad("invalid port"));
    }
    if let Some(db) = db {
        if !db.is_empty() && db.parse::<u16>().is_err() {
            return Err(bad("invalid database number"));
        }
    }
    redis::Client::open(url).map_err(|e| bad(&e.to_string()))?;
    Ok(())
}

/// The error for a `cluster=on` zone in an `http` block without `cluster`.
pub(super) fn missing(d: &Directive, zone: &str) -> ConfigError {
    d.error(format!(
        "zone \"{zone}\" has cluster=on, but the http block has no \"cluster\" directive"
    ))
}
