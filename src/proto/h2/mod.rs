//! HTTP/2 (RFC 9113) without I/O: frames (`frame`), header compression
//! (`hpack`), a request's header block checked (`fields`), and the
//! connection and stream state machine (`conn`). The worker's connection
//! (`http::h2`) feeds it the bytes it reads and writes the frames it
//! produces.
pub mod conn;
pub mod fields;
pub mod frame;
pub mod hpack;
