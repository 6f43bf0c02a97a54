//! Typed TLS configuration of a server (`ssl_*`, merged http -> server).
//! Certificates are loaded while the configuration is read, so a bad pair
//! fails `-t` and a reload at its directive's line.

use crate::tls::server::{Curve, VerifyClient};
use crate::tls::ClientAuth;
use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::sync::Arc;

/// One `ssl_certificate` + `ssl_certificate_key` pair, loaded.
#[derive(Debug, Clone)]
pub struct SslCert {
    /// The certificate chain file.
    pub cert: PathBuf,
    /// The key file.
    pub key: PathBuf,
    /// Both, parsed and checked to match.
    pub loaded: Arc<CertifiedKey>,
}

/// `ssl_session_cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCache {
    /// `off` / `none`: no server-side cache (tickets still resume).
    Off,
    /// `builtin[:N]`: N sessions per worker.
    Builtin(usize),
    /// `shared:NAME:SIZE`: one zone in shared memory for every worker (and
    /// every server naming it).
    Shared {
        /// The zone's name.
        name: String,
        /// Its size.
        bytes: u64,
    },
}

/// A server's TLS settings.
#[derive(Debug, Clone)]
pub struct SslConf {
    /// Certificate pairs (several: RSA and ECDSA side by side).
    pub certificates: Vec<SslCert>,
    /// `ssl_protocols` includes TLSv1.2.
    pub tls12: bool,
    /// `ssl_protocols` includes TLSv1.3.
    pub tls13: bool,
    /// `ssl_prefer_server_ciphers`.
    pub prefer_server_ciphers: bool,
    /// `ssl_ecdh_curve` (empty: `auto`).
    pub curves: Vec<Curve>,
    /// `ssl_session_cache`.
    pub session_cache: SessionCache,
    /// `ssl_session_timeout` (default 5m): a ticket's key period.
    pub session_timeout_ms: u64,
    /// `ssl_session_tickets` (default on).
    pub session_tickets: bool,
    /// `ssl_session_ticket_key` files' contents (first seals, all open).
    pub ticket_keys: Vec<Vec<u8>>,
    /// `ssl_verify_client` (default off).
    pub verify_client: VerifyClient,
    /// `ssl_client_certificate`: the file and its CAs, loaded.
    pub client_certificate: Option<(PathBuf, ClientAuth)>,
    /// `ssl_stapling on` with `ssl_stapling_file`: the OCSP response stapled.
    pub stapling_file: Option<PathBuf>,
}

impl Default for SslConf {
    fn default() -> Self {
        SslConf {
            certificates: Vec::new(),
            tls12: true,
            tls13: true,
            prefer_server_ciphers: false,
            curves: Vec::new(),
            session_cache: SessionCache::Off,
            session_timeout_ms: 300_000,
            session_tickets: true,
            ticket_keys: Vec::new(),
            verify_client: VerifyClient::Off,
            client_certificate: None,
            stapling_file: None,
        }
    }
}
