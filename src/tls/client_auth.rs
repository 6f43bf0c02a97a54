//! Client certificates (`ssl_client_certificate`, `ssl_verify_client`), the
//! nginx way: the handshake asks for a certificate but never fails over one
//! (only the proof that the client holds its key is checked there); the
//! chain is verified right after, and the request answered by the server's
//! setting: `on` refuses a request without a valid certificate with 400,
//! `optional` one with an invalid certificate. `$ssl_client_verify` says
//! `SUCCESS`, `FAILED:reason` or `NONE`.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// The outcome of a client certificate check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClientVerify {
    /// No certificate was sent (or none was asked for).
    #[default]
    None,
    /// The certificate chains to a configured CA.
    Success,
    /// It does not: why.
    Failed(Box<str>),
}

impl ClientVerify {
    /// `$ssl_client_verify`'s text.
    pub fn as_text(&self) -> String {
        match self {
            ClientVerify::None => "NONE".into(),
            ClientVerify::Success => "SUCCESS".into(),
            ClientVerify::Failed(why) => format!("FAILED:{why}"),
        }
    }
}

/// Verifies client chains against the `ssl_client_certificate` CAs.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    chains: Arc<dyn ClientCertVerifier>,
}

impl ClientAuth {
    /// A verifier for `roots` (at least one certificate).
    pub fn new(roots: RootCertStore) -> Result<ClientAuth, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chains = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(ClientAuth { chains })
    }

    /// The handshake's verifier: asks for a certificate, checks signatures,
    /// accepts any chain (checked after, by [`ClientAuth::check`]).
    pub fn handshake_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::new(Deferred {
            inner: self.chains.clone(),
        })
    }

    /// Check the chain a client presented (leaf first).
    pub fn check(&self, chain: Option<&[CertificateDer<'_>]>) -> ClientVerify {
        let Some((leaf, rest)) = chain.and_then(|c| c.split_first()) else {
            return ClientVerify::None;
        };
        match self.chains.verify_client_cert(leaf, rest, UnixTime::now()) {
            Ok(_) => ClientVerify::Success,
            Err(e) => ClientVerify::Failed(e.to_string().into()),
        }
    }
}

#[derive(Debug)]
struct Deferred {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for Deferred {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
