//! Traffic limits — the limit server of the original design, inside every
//! worker: decisions in nanoseconds over shared memory that no reload, crash
//! or restart loses. Nothing here knows HTTP; `http::limits_phase` adapts it
//! to requests.
//!
//! - [`gcra`]: rate limits (`limit_req`), one CAS-updated word per key;
//! - [`window`]: moving-window request counters (`count`, `count_report`);
//! - [`quota`]: transfer quotas (`limit_bytes`), bytes per key per period;
//! - [`table`]: the bounded, lock-free hash table of keys inside a zone;
//! - [`key`]: keys (variables-engine templates) with the limits' own rules:
//!   `limit_req_subnet`, empty keys not limited; and their hashes;
//! - [`cluster`]: what a `cluster=on` zone keeps for the sync thread, and
//!   how it decides with the global totals (or its failure mode);
//! - [`zones`]: opening, keeping and migrating zone files (master), and
//!   running a zone's algorithm on a key (workers).
//!
//! Every function takes the time as an argument (unix µs or ms, from
//! CLOCK_REALTIME so state stays meaningful across restarts); unit tests
//! drive them with a fake clock.

pub mod cluster;
pub mod gcra;
pub mod key;
pub mod quota;
pub mod table;
pub mod window;
pub mod zones;

#[cfg(test)]
mod tests;

pub use gcra::{Gcra, Verdict};
pub use zones::{LimitZone, Metric, ZoneSet, ZoneStats, METRICS};
