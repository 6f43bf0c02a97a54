//! The server configurations of one TLS listen address: the certificates
//! and handshake settings (protocols, curves, client certificates) of every
//! server block on it, chosen by the ClientHello's SNI (an unknown or missing
//! name gets the default server's, as in nginx), and the default server's
//! session cache and tickets, which every server on the address shares.
//! Servers whose handshake settings agree share one rustls configuration.

use rustls::crypto::aws_lc_rs::{self as provider, kx_group};
use rustls::crypto::SupportedKxGroup;
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::sync::Arc;

use super::client_auth::ClientAuth;

/// A key exchange group (`ssl_ecdh_curve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// X25519.
    X25519,
    /// NIST P-256 (`prime256v1`).
    P256,
    /// NIST P-384 (`secp384r1`).
    P384,
    /// The X25519 + ML-KEM-768 hybrid.
    X25519MlKem768,
}

impl Curve {
    /// The group for an OpenSSL / nginx name.
    pub fn from_name(name: &str) -> Option<Curve> {
        Some(match name.to_ascii_lowercase().as_str() {
            "x25519" => Curve::X25519,
            "prime256v1" | "secp256r1" | "p-256" => Curve::P256,
            "secp384r1" | "p-384" => Curve::P384,
            "x25519mlkem768" => Curve::X25519MlKem768,
            _ => return None,
        })
    }

    fn group(self) -> &'static dyn SupportedKxGroup {
        match self {
            Curve::X25519 => kx_group::X25519,
            Curve::P256 => kx_group::SECP256R1,
            Curve::P384 => kx_group::SECP384R1,
            Curve::X25519MlKem768 => kx_group::X25519MLKEM768,
        }
    }
}

/// The handshake settings of one server block (`ssl_protocols`,
/// `ssl_prefer_server_ciphers`, `ssl_ecdh_curve`, client certificates):
/// the server the ClientHello's SNI names decides them.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// TLS 1.2 allowed.
    pub tls12: bool,
    /// TLS 1.3 allowed.
    pub tls13: bool,
    /// `ssl_prefer_server_ciphers on`.
    pub prefer_server_ciphers: bool,
    /// `ssl_ecdh_curve` (empty: the provider's defaults).
    pub curves: Vec<Curve>,
    /// Client certificates asked for and checked (`ssl_verify_client`),
    /// with the `ssl_client_certificate` file they come from.
    pub client_auth: Option<(ClientAuth, VerifyClient, std::path::PathBuf)>,
}

impl Handshake {
    /// Whether one rustls configuration serves both.
    fn same(&self, o: &Handshake) -> bool {
        self.tls12 == o.tls12
            && self.tls13 == o.tls13
            && self.prefer_server_ciphers == o.prefer_server_ciphers
            && self.curves == o.curves
            && self.client_auth.as_ref().map(|a| (a.1, &a.2))
                == o.client_auth.as_ref().map(|a| (a.1, &a.2))
    }
}

/// One server block on the address.
#[derive(Debug, Clone)]
pub struct ServerEntry {
    /// Its `server_name`s, lowercase (`*.x` and `.x` are wildcards).
    pub names: Vec<String>,
    /// Its certificates (RSA, ECDSA...: the first the client can verify).
    pub keys: Vec<Arc<CertifiedKey>>,
    /// Its handshake settings.
    pub handshake: Handshake,
}

/// The address's settings every server on it shares: the session cache and
/// tickets (the default server's), and ALPN.
#[derive(Debug, Clone)]
pub struct Options {
    /// The session cache (`None`: `ssl_session_cache off`).
    pub session_cache: Option<SessionStore>,
    /// Ticket secrets and period (`None`: `ssl_session_tickets off`).
    pub tickets: Option<(Vec<Vec<u8>>, u64)>,
    /// ALPN protocols offered, in preference order.
    pub alpn: Vec<Vec<u8>>,
}

/// Where sessions are kept for resumption by session ID.
#[derive(Debug, Clone)]
pub enum SessionStore {
    /// `builtin[:N]`: N sessions in each worker.
    Builtin(usize),
    /// `shared:NAME:SIZE`: in shared memory, for every worker.
    Shared(super::session_cache::SharedSessions),
}

/// `ssl_verify_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyClient {
    /// Not asked for.
    #[default]
    Off,
    /// A request without a valid certificate gets 400.
    On,
    /// A request with an invalid certificate gets 400; none is fine.
    Optional,
}

/// One rustls configuration of an address and how it checks client
/// certificates.
#[derive(Debug, Clone)]
pub struct Handshaker {
    /// The rustls server configuration.
    pub config: Arc<ServerConfig>,
    /// The client-certificate check and its mode.
    pub client_auth: Option<(ClientAuth, VerifyClient)>,
}

/// What a TLS listen address needs: a rustls configuration per distinct
/// handshake setting of its servers, and which one each SNI name gets.
#[derive(Debug, Clone)]
pub struct TlsAddress {
    /// The configurations (several only when server blocks differ).
    configs: Vec<Handshaker>,
    /// Server entry -> its configuration.
    by_server: Vec<usize>,
    sni: Arc<Sni>,
}

impl TlsAddress {
    /// Whether every server shares one configuration (then the handshake
    /// starts without reading the ClientHello first).
    pub fn single(&self) -> Option<&Handshaker> {
        match self.configs.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// The configuration of the server `sni` names (the default server's
    /// for an unknown or missing name).
    pub fn for_name(&self, sni: Option<&str>) -> &Handshaker {
        &self.configs[self.by_server[self.sni.index_for(sni)]]
    }
}

#[derive(Debug)]
struct Sni {
    servers: Vec<ServerEntry>,
    default: usize,
}

fn name_matches(pattern: &str, host: &str) -> bool {
    if let Some(suffix) = pattern.strip_prefix("*.") {
        host.len() > suffix.len() + 1
            && host.ends_with(suffix)
            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
    } else if let Some(base) = pattern.strip_prefix('.') {
        host == base || name_matches(&format!("*.{base}"), host)
    } else {
        pattern == host
    }
}

impl Sni {
    fn index_for(&self, sni: Option<&str>) -> usize {
        let found = sni.and_then(|h| {
            let h = h.trim_end_matches('.').to_ascii_lowercase();
            // Exact names first, then wildcards (nginx's order).
            self.servers
                .iter()
                .position(|s| s.names.contains(&h))
                .or_else(|| {
                    self.servers
                        .iter()
                        .position(|s| s.names.iter().any(|n| name_matches(n, &h)))
                })
        });
        found.unwrap_or(self.default)
    }
}

impl ResolvesServerCert for Sni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let s = &self.servers[self.index_for(hello.server_name())];
        let schemes = hello.signature_schemes();
        s.keys
            .iter()
            .find(|k| k.key.choose_scheme(schemes).is_some())
            .or(s.keys.first())
            .cloned()
    }
}

/// The server configurations for `servers` (`default` indexes the default
/// server): one per distinct [`Handshake`], all sharing the certificate
/// resolver, the session cache and the ticketer. Every entry must have at
/// least one key.
pub fn build(
    servers: Vec<ServerEntry>,
    default: usize,
    opts: &Options,
) -> Result<TlsAddress, String> {
    if servers.is_empty() || default >= servers.len() || servers.iter().any(|s| s.keys.is_empty()) {
        return Err("a TLS address needs a certificate for every server on it".into());
    }
    let storage: Arc<dyn rustls::server::StoresServerSessions> = match &opts.session_cache {
        Some(SessionStore::Builtin(n)) if *n > 0 => {
            rustls::server::ServerSessionMemoryCache::new(*n)
        }
        Some(SessionStore::Shared(s)) => Arc::new(s.clone()),
        _ => Arc::new(NoServerSessionStorage {}),
    };
    let ticketer: Option<Arc<dyn rustls::server::ProducesTickets>> =
        opts.tickets.as_ref().map(|(secrets, period_s)| {
            Arc::new(super::tickets::Ticketer::new(secrets.clone(), *period_s)) as _
        });
    // The default server's settings first: its configuration is configs[0].
    let mut kinds: Vec<Handshake> = vec![servers[default].handshake.clone()];
    let mut by_server = Vec::with_capacity(servers.len());
    for s in &servers {
        let i = match kinds.iter().position(|k| k.same(&s.handshake)) {
            Some(i) => i,
            None => {
                kinds.push(s.handshake.clone());
                kinds.len() - 1
            }
        };
        by_server.push(i);
    }
    let sni = Arc::new(Sni { servers, default });
    let configs = kinds
        .iter()
        .map(|h| {
            let config = one_config(h, &sni, &storage, ticketer.as_ref(), opts)?;
            Ok(Handshaker {
                config,
                client_auth: h.client_auth.as_ref().map(|a| (a.0.clone(), a.1)),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(TlsAddress {
        configs,
        by_server,
        sni,
    })
}

fn one_config(
    h: &Handshake,
    sni: &Arc<Sni>,
    storage: &Arc<dyn rustls::server::StoresServerSessions>,
    ticketer: Option<&Arc<dyn rustls::server::ProducesTickets>>,
    opts: &Options,
) -> Result<Arc<ServerConfig>, String> {
    let mut p = provider::default_provider();
    if !h.curves.is_empty() {
        p.kx_groups = h.curves.iter().map(|c| c.group()).collect();
    }
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if h.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if h.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let builder = ServerConfig::builder_with_provider(Arc::new(p))
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = match &h.client_auth {
        Some((auth, _, _)) => builder.with_client_cert_verifier(auth.handshake_verifier()),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_cert_resolver(sni.clone());
    cfg.ignore_client_order = h.prefer_server_ciphers;
    cfg.alpn_protocols = opts.alpn.clone();
    cfg.max_early_data_size = 0;
    cfg.session_storage = storage.clone();
    if let Some(t) = ticketer {
        cfg.ticketer = t.clone();
    }
    // One TLS 1.3 ticket per handshake (rustls and OpenSSL send two): a
    // resumption gets a fresh one, and neither side spends work on a second
    // ticket most clients never use.
    cfg.send_tls13_tickets = 1;
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_match_as_nginx() {
        assert!(name_matches("a.test", "a.test"));
        assert!(!name_matches("a.test", "b.a.test"));
        assert!(name_matches("*.a.test", "b.a.test"));
        assert!(!name_matches("*.a.test", "a.test"));
        assert!(!name_matches("*.a.test", "ba.test"));
        assert!(name_matches(".a.test", "a.test"));
        assert!(name_matches(".a.test", "x.y.a.test"));
    }

    #[test]
    fn curves_by_openssl_name() {
        assert_eq!(Curve::from_name("prime256v1"), Some(Curve::P256));
        assert_eq!(Curve::from_name("X25519"), Some(Curve::X25519));
        assert_eq!(Curve::from_name("secp384r1"), Some(Curve::P384));
        assert_eq!(Curve::from_name("brainpoolP256r1"), None);
    }
}
