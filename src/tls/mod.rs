//! TLS with rustls, a leaf below `config`: certificates are loaded while the
//! configuration is read (a missing, unreadable or mismatched pair is a
//! `file:line` error at `-t` and at reload, and the old configuration keeps
//! serving), the per-address server configuration picks each server's
//! certificate by SNI, session tickets are sealed with keys every worker
//! derives alike, and [`Stream`] drives one connection's TLS through the
//! worker's non-blocking socket (rustls is sans-I/O: it reads and writes
//! through buffers), as a server or as the proxy's client of an HTTPS
//! upstream (whose configurations [`client`] builds).

pub mod cert;
pub mod cert_info;
pub mod client;
pub mod client_auth;
pub mod server;
pub mod session_cache;
pub mod stream;
pub mod tickets;

pub use cert::{load_pair, CertError};
pub use client::{build_client, ClientOptions};
pub use client_auth::{ClientAuth, ClientVerify};
pub use server::{build, Handshake, Options, ServerEntry, TlsAddress, VerifyClient};
pub use stream::{is_certificate_error, Stream, TlsInfo};
