//! HTTP/1.1: connection state machine (`conn`), head parsing (`request`),
//! request phases (`handler`, `limits_phase`), static files, `status;`,
//! response heads, and protocol helpers (targets, ranges, chunked bodies,
//! conditionals).
pub mod auth_basic;
pub mod chunked;
pub mod conn;
pub mod ctx;
pub mod handler;
pub mod header_filter;
pub mod limits_phase;
pub mod range;
pub mod realip;
pub mod req_state;
pub mod request;
pub mod response;
pub mod site;
pub mod static_file;
pub mod status;
pub mod uri;
pub mod vars;
pub mod waiting_room_phase;

pub use crate::proto::cond;
