//! sluice: HTTP server, caching reverse proxy, traffic limiter and waiting room.
//!
//! Layers (a module uses only the ones below it): process -> http -> limits ->
//! waiting_room -> event -> log -> config -> shm -> sys -> util. See
//! shared/DESIGN.md. (`limits::ZoneSet` carries the waiting rooms' zones, so
//! both are opened, kept and handed to workers the same way.)

pub mod cache;
pub mod cluster;
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
