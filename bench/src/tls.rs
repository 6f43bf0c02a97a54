//! The TLS client configuration for `https://` targets: rustls with its
//! aws-lc-rs provider, TLS 1.3 and 1.2.
//!
//! Like wrk (and `curl -k`), the server's certificate is not verified unless
//! `--cacert` names the roots to verify it against: benchmarks run on
//! self-signed certificates. The handshake's signatures are always checked,
//! so an unverified handshake still costs the client what a real one does.
//! Sessions are not resumed unless `--resume` asks for it, so by default every
//! connection is a full handshake. The key exchange groups offered default to
//! X25519, P-256, P-384 (one X25519 key share), what OpenSSL 3.0 clients such
//! as wrk and ab offer, so a server is not handed a post-quantum hybrid by one
//! client and not by another.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::aws_lc_rs::{self as provider, kx_group};
use rustls::crypto::{SupportedKxGroup, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// Sessions kept for `--resume` (per server name rustls keeps a few tickets).
const SESSION_CACHE: usize = 1024;

/// A protocol version to insist on (`--tls-version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// TLS 1.2 only.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// A key exchange group (`--tls-groups`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// X25519.
    X25519,
    /// NIST P-256.
    P256,
    /// NIST P-384.
    P384,
    /// The X25519 + ML-KEM-768 hybrid.
    X25519MlKem768,
}

impl Group {
    /// Parses a group name as OpenSSL and nginx spell it (case-insensitive).
    pub fn parse(name: &str) -> Option<Group> {
        match name.to_ascii_lowercase().as_str() {
            "x25519" => Some(Group::X25519),
            "p-256" | "p256" | "prime256v1" | "secp256r1" => Some(Group::P256),
            "p-384" | "p384" | "secp384r1" => Some(Group::P384),
            "x25519mlkem768" => Some(Group::X25519MlKem768),
            _ => None,
        }
    }

    fn kx(self) -> &'static dyn SupportedKxGroup {
        match self {
            Group::X25519 => kx_group::X25519,
            Group::P256 => kx_group::SECP256R1,
            Group::P384 => kx_group::SECP384R1,
            Group::X25519MlKem768 => kx_group::X25519MLKEM768,
        }
    }
}

/// What the command line says about TLS.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--cacert`: verify the server's certificate against these roots.
    pub roots: Option<Vec<CertificateDer<'static>>>,
    /// `--sni`: the server name sent (and verified) instead of the URL's host.
    pub sni: Option<String>,
    /// `--resume`: reuse sessions (tickets) across connections.
    pub resume: bool,
    /// `--tls-version`: one version only (default: 1.3 and 1.2 offered).
    pub version: Option<Version>,
    /// `--tls-groups`: key exchange groups in order (empty: the default).
    pub groups: Vec<Group>,
}

/// What a connection to one https target needs.
#[derive(Clone, Debug)]
pub struct Target {
    /// Shared by every connection of the run (and its session cache).
    pub config: Arc<ClientConfig>,
    /// The name sent in SNI (an IP address sends none) and verified.
    pub name: ServerName<'static>,
}

/// The certificates in a PEM file's bytes (at least one).
pub fn parse_roots(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate in the file".into());
    }
    Ok(certs)
}

/// The name for SNI and verification: `--sni` if given, else the URL's host
/// (without the brackets of an IPv6 literal).
pub fn server_name(host: &str, sni: Option<&str>) -> Result<ServerName<'static>, String> {
    let name = sni.unwrap_or_else(|| host.trim_start_matches('[').trim_end_matches(']'));
    ServerName::try_from(name.to_string()).map_err(|_| format!("'{name}' is not a server name"))
}

/// The one client configuration of a run.
pub fn client_config(opts: &Options) -> Result<Arc<ClientConfig>, String> {
    let mut p = provider::default_provider();
    let groups: &[Group] = if opts.groups.is_empty() {
        &[Group::X25519, Group::P256, Group::P384]
    } else {
        &opts.groups
    };
    p.kx_groups = groups.iter().map(|g| g.kx()).collect();
    let algorithms = p.signature_verification_algorithms;
    let versions: &[&'static rustls::SupportedProtocolVersion] = match opts.version {
        None => rustls::DEFAULT_VERSIONS,
        Some(Version::Tls13) => &[&rustls::version::TLS13],
        Some(Version::Tls12) => &[&rustls::version::TLS12],
    };
    let builder = ClientConfig::builder_with_provider(Arc::new(p))
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let mut cfg = match &opts.roots {
        Some(certs) => {
            let mut roots = RootCertStore::empty();
            for c in certs {
                roots.add(c.clone()).map_err(|e| format!("--cacert: {e}"))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(algorithms)))
            .with_no_client_auth(),
    };
    cfg.resumption = if opts.resume {
        Resumption::in_memory_sessions(SESSION_CACHE)
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(cfg))
}

/// Accepts any certificate, and checks the handshake signatures made with it.
#[derive(Debug)]
struct Unverified(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_groups() {
        assert!(matches!(
            server_name("[::1]", None),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("127.0.0.1", Some("a.test")),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("127.0.0.1", Some("bad name")).is_err());
        assert_eq!(Group::parse("prime256v1"), Some(Group::P256));
        assert_eq!(Group::parse("X25519MLKEM768"), Some(Group::X25519MlKem768));
        assert_eq!(Group::parse("ffdhe2048"), None);
    }

    #[test]
    fn configs_build() {
        let cfg = client_config(&Options::default()).unwrap();
        assert_eq!(cfg.crypto_provider().kx_groups.len(), 3);
        let opts = Options {
            version: Some(Version::Tls12),
            groups: vec![Group::P256],
            resume: true,
            ..Options::default()
        };
        let cfg = client_config(&opts).unwrap();
        assert_eq!(cfg.crypto_provider().kx_groups.len(), 1);
        assert!(parse_roots(b"not pem").is_err());
    }
}
