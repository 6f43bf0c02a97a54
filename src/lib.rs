//! sluice: HTTP server, caching reverse proxy, traffic limiter and waiting room.
//!
//! Layers (a module uses only the ones below it): process -> http -> limits ->
//! event -> log -> config -> shm -> sys -> util. See shared/DESIGN.md.

pub mod cache;
pub mod config;
pub mod event;
pub mod http;
pub mod limits;
pub mod log;
pub mod process;
pub mod proxy;
pub mod shm;
pub mod sys;
pub mod util;
pub mod waiting_room;
