//! Reverse proxy: upstream pools and balancing (`upstream`), the request sent
//! upstream (`request`), the response head relayed to the client
//! (`response`), and the per-request state machine (`session`) the worker
//! drives from readiness events on both sockets.

pub mod cache_io;
pub mod cache_manager;
pub mod cached;
pub mod request;
pub mod response;
pub mod session;
pub mod upstream;
