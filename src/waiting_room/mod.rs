//! The waiting room: admits users at a configured rate into a limited
//! number of sessions and keeps the rest in a fair virtual queue, with
//! signed (HMAC-SHA256) tickets and session cookies. No HTTP in here:
//! `http/waiting_room_phase.rs` adapts it.
//!
//! - [`token`]: the signed ticket / cookie format, sign and verify;
//! - [`room`]: the shared queue state (next free slot, active sessions,
//!   counters) over a zone's words;
//! - [`zones`]: the zone files, opened by the master and kept on reload.

pub mod b64;
pub mod room;
pub mod token;
pub mod zones;

pub use room::{Mode, Params, Room, RoomStats};
pub use token::{Claims, Kind, Reject, Scope, Signer, REJECTS};
pub use zones::{RoomSet, RoomZone};
