//! Client configurations for HTTPS upstreams (`proxy_pass https://`): the
//! trusted roots (a PEM file, or the system's store), whether the peer's
//! certificate is verified at all (nginx's `proxy_ssl_verify`, off by
//! default: then any certificate is taken, though the handshake's signature
//! must still be made by its key), revocation lists (`proxy_ssl_crl`), the
//! client certificate presented to the upstream (`proxy_ssl_certificate`),
//! SNI, the protocol versions and session resumption. Built once per
//! distinct setting while the config is read.

use super::cert::CertError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, Resumption, WebPkiServerVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// What an upstream's TLS client does.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Verify the upstream's certificate chain and name against `roots`.
    pub verify: bool,
    /// Trust anchors (used when `verify`).
    pub roots: Arc<Vec<CertificateDer<'static>>>,
    /// TLS 1.2 allowed.
    pub tls12: bool,
    /// TLS 1.3 allowed.
    pub tls13: bool,
    /// Send the server name (SNI).
    pub sni: bool,
    /// Resume sessions (per worker, per upstream name).
    pub session_reuse: bool,
    /// Revocation lists the upstream's chain is checked against (used when
    /// `verify`; every certificate of the chain must then be covered).
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// The certificate and key presented when the upstream asks for one.
    pub identity: Option<Arc<CertifiedKey>>,
}

/// The revocation lists of a PEM file (at least one).
pub fn load_crls(
    path: &std::path::Path,
) -> Result<Vec<CertificateRevocationListDer<'static>>, CertError> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path)
        .map_err(|e| CertError(format!("cannot load CRL \"{}\": {e}", path.display())))?;
    let crls: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CertError(format!("cannot load CRL \"{}\": {e}", path.display())))?;
    if crls.is_empty() {
        return Err(CertError(format!(
            "cannot load CRL \"{}\": no CRL in the file",
            path.display()
        )));
    }
    Ok(crls)
}

/// Always presents the configured certificate.
#[derive(Debug)]
struct Identity(Arc<CertifiedKey>);

impl ResolvesClientCert for Identity {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The system's trusted roots (the OS store; `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` override where it is looked for).
pub fn system_roots() -> Result<Vec<CertificateDer<'static>>, CertError> {
    let found = rustls_native_certs::load_native_certs();
    if found.certs.is_empty() {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_string(), |e| e.to_string());
        return Err(CertError(format!(
            "cannot load the system's trusted certificates: {why}"
        )));
    }
    Ok(found.certs)
}

/// The host of `host[:port]` (`[v6]:port` too, without brackets): the
/// name TLS uses for an upstream whose name may carry a port (nginx strips
/// it from `proxy_ssl_name` and the `proxy_pass` host alike).
pub fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// `name` as a TLS server name: a DNS name (sent as SNI when the
/// configuration enables it, and verified), or an IP address (never sent,
/// as RFC 6066 wants; verified against the certificate's IP addresses).
pub fn server_name(name: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(name.to_string()).ok()
}

/// Takes any certificate, but still checks that the handshake was signed
/// by its key (what OpenSSL does with verification off).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client configuration for `opts`.
pub fn build_client(opts: &ClientOptions) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if opts.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if opts.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = if opts.verify {
        let mut store = RootCertStore::empty();
        let (added, _) = store.add_parsable_certificates(opts.roots.iter().cloned());
        if added == 0 {
            return Err("no usable trusted certificate".into());
        }
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
            .with_crls(opts.crls.iter().cloned())
            .build()
            .map_err(|e| e.to_string())?;
        builder.with_webpki_verifier(verifier)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
    };
    let mut cfg = match &opts.identity {
        Some(id) => builder.with_client_cert_resolver(Arc::new(Identity(id.clone()))),
        None => builder.with_no_client_auth(),
    };
    cfg.enable_sni = opts.sni;
    if !opts.session_reuse {
        cfg.resumption = Resumption::disabled();
    }
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_port_and_brackets() {
        assert_eq!(host_of("example.com:8443"), "example.com");
        assert_eq!(host_of("example.com"), "example.com");
        assert_eq!(host_of("[::1]:443"), "::1");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
        assert!(matches!(server_name("::1"), Some(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("a.test"),
            Some(ServerName::DnsName(_))
        ));
        assert!(server_name("bad name").is_none());
    }

    #[test]
    fn a_client_without_roots_cannot_verify() {
        let opts = ClientOptions {
            verify: true,
            roots: Arc::new(Vec::new()),
            tls12: true,
            tls13: true,
            sni: false,
            session_reuse: true,
            crls: Vec::new(),
            identity: None,
        };
        assert!(build_client(&opts).is_err());
        let off = ClientOptions {
            verify: false,
            tls12: false,
            ..opts
        };
        let cfg = build_client(&off).unwrap();
        assert!(!cfg.enable_sni);
    }
}
