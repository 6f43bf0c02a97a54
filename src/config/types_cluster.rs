//! Typed configuration of cluster mode: `cluster redis://HOST:PORT[/DB]
//! [sync=TIME] [failure=open|closed|local] [node=NAME];` in `http`, and
//! `cluster=on` on the zones it makes global. Parsed by `resolve_cluster.rs`.

/// What a node does with its global zones while it cannot sync with Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterFailure {
    /// Allow: global limits are not enforced, rooms admit.
    Open,
    /// Deny: requests under a global limit or room are refused.
    Closed,
    /// Enforce each global limit divided by the last known node count.
    Local,
}

impl ClusterFailure {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterFailure::Open => "open",
            ClusterFailure::Closed => "closed",
            ClusterFailure::Local => "local",
        }
    }
}

/// The `cluster` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConf {
    /// `redis://HOST:PORT[/DB]`, as written.
    pub url: String,
    /// Interval between syncs, milliseconds (default 100).
    pub sync_ms: u64,
    /// Failure mode (default `local`).
    pub failure: ClusterFailure,
    /// This node's name in Redis; `None` = `HOSTNAME:MASTER_PID`.
    pub node: Option<String>,
}

impl ClusterConf {
    /// How long the last successful sync stays good: past this the failure
    /// mode applies (three missed syncs, and never less than 300 ms).
    pub fn stale_ms(&self) -> u64 {
        (self.sync_ms * 3).max(300)
    }
}
