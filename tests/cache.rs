//! Integration tests of the disk cache (`proxy_cache`): a real sluice
//! proxies to a scriptable origin in the test process (`cache/origin.rs`),
//! and the tests check X-Cache-Status, bodies, how many requests reached the
//! origin, and the entry files on disk.
//!
//! - `cache/fills.rs`: MISS/HIT, `Age`, the on-disk layout, freshness
//!   (max-age, s-maxage, Expires, `proxy_cache_valid`), what is not stored,
//!   upstream framings, large entries, restarts, a stopped origin, workers.
//! - `cache/lookups.rs`: request Cache-Control, Vary, HEAD, client
//!   conditionals, POST, damaged entries, the headers of a hit.
//! - `cache/upkeep.rs`: the fill lock, revalidation, stale answers.
//! - `cache/config.rs`: cache directives `sluice -t` refuses, with file:line.
//!
//! Fills are published by a writer thread after the response, so tests wait
//! for the entry file (or a fill barrier) before expecting a HIT.

mod common;

#[path = "cache/config.rs"]
mod config;
#[path = "cache/fills.rs"]
mod fills;
#[path = "cache/lookups.rs"]
mod lookups;
#[path = "cache/origin.rs"]
mod origin;
#[path = "cache/support.rs"]
mod support;
#[path = "cache/upkeep.rs"]
mod upkeep;
