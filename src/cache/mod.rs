//! The disk cache's pure core (RFC 9111 + nginx `proxy_cache`): keys and file
//! layout (`key`), the entry file format (`entry`), writing entries safely
//! (`store`), Cache-Control parsing (`control`), storage and freshness
//! decisions (`policy`, `freshness`), revalidation and invalidation
//! (`revalidate`), the in-memory index with eviction (`index`) and the
//! start-up loader (`loader`).
//!
//! No sockets, no event loop: the proxy drives these with header lists,
//! clock values and file paths.

pub mod control;
pub mod entry;
pub mod freshness;
pub mod index;
pub mod key;
pub mod loader;
pub mod policy;
pub mod revalidate;
pub mod store;
#[cfg(test)]
mod testutil;
