//! HTTP protocol helpers: request targets, ranges, chunked bodies, conditionals.
pub mod chunked;
pub mod cond;
pub mod range;
pub mod uri;
