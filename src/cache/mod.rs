//! The disk cache's pure core (RFC 9111 + nginx `proxy_cache`): keys and file
//! layout (`key`), the entry file format (`entry`), writing entries safely
//! (`store`), `Cache-Control` parsing (`control`), storage decisions
//! (`policy`), freshness and lookup decisions (`freshness`), revalidation and
//! invalidation (`revalidate`), the in-memory index with eviction (`index`)
//! and the start-up loader (`loader`) — and the runtime around them: lookups
//! and hits with the fill lock (`lookup`), the writer thread and the I/O pool
//! (`io`), the manager thread (`manager`).
//!
//! No sockets and no HTTP connections: the proxy's session drives these with
//! header lists, clock values (Unix seconds) and file paths; the blocking
//! file work runs on the `io` and `manager` threads, off the client's path.
//! (The fill-lock and key-use tables are shared memory, so they live in
//! `shm/` with the other `unsafe` mappings.)
//!
//! How the proxy uses it (`dir`, `levels` from `CachePathConf`):
//!
//! ```text
//! lookup   md5 = key::cache_key_md5(key); read the header at key::entry_path(dir, levels, md5)
//!          entry::decode_for_key + entry::validate_file_len (else MISS; never serve it)
//!          policy::vary_mismatch(meta, req) = Some(v) -> same at entry_path(.., v) (else MISS)
//!          freshness::lookup_decision(meta, CacheControl::from_request(req), now, use_stale)
//!            Fresh -> HIT; ClientAcceptsStale -> STALE; Unsatisfiable -> 504;
//!            Stale/MustRevalidate -> origin, with revalidate::revalidation_headers(meta)
//!          answer: revalidate::client_conditional (304/412/full), `Age: current_age(meta, now)`,
//!          `Content-Length: body_len`; HEAD from the GET entry; index.touch(md5, now)
//! fill     policy::storable(..) = Yes(d) -> policy::build_meta(..) -> store::TempWriter::create
//!          -> write_body.. -> commit(entry_path(dir, levels, policy::store_md5(..))) -> index.insert
//! 304      revalidate::merge_304 -> MergeAction: Rewrite (store::rewrite_header) | Leave | Remove
//! failure  freshness::may_serve_stale_on(meta, req_cc, now, use_stale, failure) -> STALE
//! unsafe   revalidate::invalidates + invalidation_targets -> index.keys_for(primary) -> remove
//! manager  index.evict_candidates(max_size, inactive_s, now) -> store::remove_entry + index.remove
//! loader   loader::scan(dir, levels, now, |md5, e| { index.insert_if_absent(md5, e); })
//! errors   store::StoreGate: a full disk or write error pauses storing, never serving
//! ```

pub mod control;
pub mod entry;
pub mod freshness;
pub mod index;
pub mod io;
pub mod key;
pub mod loader;
pub mod lookup;
pub mod manager;
pub mod policy;
pub mod revalidate;
pub mod store;
#[cfg(test)]
mod testutil;

pub use entry::{decode_header, encode_header, validate_file_len, EntryError, EntryMeta};
pub use index::{Index, IndexEntry};
pub use key::{cache_key_md5, entry_path, variant_md5};
pub use policy::{CacheStatus, Storable, StoreConfig};
pub use store::{rewrite_header, TempWriter};
