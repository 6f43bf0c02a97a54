//! Reverse proxy: upstream pools and balancing (`upstream`), `proxy_redirect`
//! (`redirect`), the request sent
//! upstream (`request`), the response head relayed to the client
//! (`response`), and the per-request state machine (`session`, with its
//! cache side in `session_cache.rs`) the worker drives from readiness events
//! on both sockets. The cache runtime itself is `cache/`.

pub mod redirect;
pub mod request;
pub mod response;
pub mod session;
pub mod upstream;
