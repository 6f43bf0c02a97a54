//! Typed configuration of the waiting room: the zones declared in `http`
//! (`waiting_room_zone`), the signing keys (`waiting_room_secret`) and what
//! a location applies (`waiting_room`, `waiting_room_page`). Parsed by
//! `resolve_waiting_room.rs`.

use std::path::PathBuf;
use std::sync::Arc;

/// What to do with arrivals beyond capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomMode {
    /// First come, first served.
    Fifo,
    /// Places are drawn by lottery among those queued since.
    Random,
    /// No queue: 503 with `Retry-After`.
    Reject,
}

/// `waiting_room_zone NAME:SIZE admit_rate=N/m max_active=N session=TIME
/// [max_wait=TIME] [mode=fifo|random|reject] [bind_ip=on|off] [cluster=on|off];`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomZoneConf {
    /// Zone name (file `STATE_DIR/wr.NAME.zone`).
    pub name: String,
    /// Zone size in bytes (page multiple).
    pub size_bytes: u64,
    /// Admission interval: 1 / admit_rate, µs.
    pub interval_us: u64,
    /// Most sessions alive at once.
    pub max_active: u64,
    /// Session lifetime without activity, ms.
    pub session_ms: u64,
    /// Longest wait handed out (default 30m), ms.
    pub max_wait_ms: u64,
    /// Queue discipline (default fifo).
    pub mode: RoomMode,
    /// Tokens and cookies are bound to the client address (default off).
    pub bind_ip: bool,
    /// `cluster=on`: next slot and active sessions global over Redis.
    pub cluster: bool,
    /// Line of the directive.
    pub line: usize,
}

/// Signing keys: `(KEY_ID, SECRET)`, the first signs. Debug never prints
/// the secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RoomKeys(pub Vec<(String, Vec<u8>)>);

impl std::fmt::Debug for RoomKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.0.iter().map(|(i, _)| i.as_str()).collect();
        write!(f, "RoomKeys({ids:?})")
    }
}

/// `http`-level waiting-room settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitingRoomsConf {
    /// Declared rooms, in file order; locations refer to them by index.
    pub zones: Vec<RoomZoneConf>,
    /// Keys read from `waiting_room_secret`.
    pub keys: RoomKeys,
    /// The secret file.
    pub secret_path: Option<PathBuf>,
}

/// `waiting_room NAME;` in a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationRoom {
    /// Index into [`WaitingRoomsConf::zones`].
    pub zone: usize,
    /// `waiting_room_page FILE` contents: HTML with `{{wait_s}}`,
    /// `{{position}}`, `{{url}}` (and `{{refresh}}`) placeholders.
    pub page: Option<Arc<str>>,
}
