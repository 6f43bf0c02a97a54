//! TLS for the integration tests: certificates made at test time (`rcgen`)
//! and a blocking rustls client that speaks HTTP/1.1 over them.

use super::client::{parse_responses, Response};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A self-signed certificate for some names, written to `dir`.
pub struct TestCert {
    /// The PEM certificate file.
    pub cert: PathBuf,
    /// The PEM key file.
    pub key: PathBuf,
    /// The certificate, DER (to trust it, or to recognise it).
    pub der: CertificateDer<'static>,
}

/// An ECDSA P-256 certificate for `names`, as `dir/<file>.crt` and `.key`.
pub fn make_cert(dir: &Path, file: &str, names: &[&str]) -> TestCert {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let ck = rcgen::generate_simple_self_signed(names).expect("rcgen");
    write_cert(dir, file, &ck.cert, &ck.signing_key)
}

/// An RSA-2048 certificate for `names`.
pub fn make_rsa_cert(dir: &Path, file: &str, names: &[&str]) -> TestCert {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("rsa key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .expect("params")
        .self_signed(&key)
        .expect("self-signed");
    write_cert(dir, file, &cert, &key)
}

fn write_cert(dir: &Path, file: &str, cert: &rcgen::Certificate, key: &rcgen::KeyPair) -> TestCert {
    let c = dir.join(format!("{file}.crt"));
    let k = dir.join(format!("{file}.key"));
    std::fs::write(&c, cert.pem()).expect("write cert");
    std::fs::write(&k, key.serialize_pem()).expect("write key");
    TestCert {
        cert: c,
        key: k,
        der: cert.der().clone(),
    }
}

/// A client config trusting `roots`, with `versions` (empty: both).
pub fn client_config(
    roots: &[&CertificateDer<'static>],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for r in roots {
        store.add((*r).clone()).expect("root");
    }
    let versions = if versions.is_empty() {
        rustls::ALL_VERSIONS
    } else {
        versions
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(store)
            .with_no_client_auth(),
    )
}

/// A TLS connection to 127.0.0.1:`port` for `sni`.
pub struct TlsClient {
    /// The stream (handshake done after [`TlsClient::connect`]).
    pub s: StreamOwned<ClientConnection, TcpStream>,
}

impl TlsClient {
    /// Connect and complete the handshake.
    pub fn connect(port: u16, sni: &str, cfg: &Arc<ClientConfig>) -> io::Result<TlsClient> {
        let sock = TcpStream::connect(("127.0.0.1", port))?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        sock.set_write_timeout(Some(Duration::from_secs(10)))?;
        let name = ServerName::try_from(sni.to_string()).map_err(io::Error::other)?;
        let conn = ClientConnection::new(cfg.clone(), name).map_err(io::Error::other)?;
        let mut s = StreamOwned::new(conn, sock);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        Ok(TlsClient { s })
    }

    /// The server's leaf certificate.
    pub fn peer_cert(&self) -> Option<CertificateDer<'static>> {
        self.s.conn.peer_certificates()?.first().cloned()
    }

    /// Whether the session was resumed.
    pub fn resumed(&self) -> bool {
        self.s.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// Send raw bytes.
    pub fn send(&mut self, raw: &[u8]) -> io::Result<()> {
        self.s.write_all(raw)?;
        self.s.flush()
    }

    /// Read until `n` complete responses arrived (bodies by Content-Length).
    pub fn responses(&mut self, n: usize) -> io::Result<Vec<Response>> {
        let mut raw = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            let got = parse_responses(&raw);
            if got.len() >= n {
                return Ok(got);
            }
            match self.s.read(&mut buf) {
                Ok(0) => return Ok(got),
                Ok(k) => raw.extend_from_slice(&buf[..k]),
                Err(e) => return Err(e),
            }
        }
    }

    /// `GET path` on this connection (keep-alive).
    pub fn get(&mut self, path: &str, host: &str) -> io::Result<Response> {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())?;
        self.responses(1)?
            .pop()
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no response"))
    }

    /// Everything until the server closes, cleanly (close_notify) or not.
    pub fn read_to_close(&mut self) -> (Vec<u8>, bool) {
        let mut raw = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => return (raw, true),
                Ok(k) => raw.extend_from_slice(&buf[..k]),
                Err(_) => return (raw, false),
            }
        }
    }
}

/// A test certificate authority.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    /// Its certificate, PEM (an `ssl_client_certificate` file).
    pub cert: PathBuf,
}

/// A CA whose certificate is written to `dir/<file>.crt`.
pub fn make_ca(dir: &Path, file: &str) -> TestCa {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{file} test CA"));
    let key = rcgen::KeyPair::generate().expect("key");
    let issuer = rcgen::CertifiedIssuer::self_signed(params, key).expect("ca");
    let cert = dir.join(format!("{file}.crt"));
    std::fs::write(&cert, issuer.pem()).expect("write ca");
    TestCa { issuer, cert }
}

/// A client certificate for `cn` issued by `ca`: (chain, key).
pub fn client_identity(
    ca: &TestCa,
    cn: &str,
) -> (
    Vec<CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn.to_string());
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("sign");
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    (vec![cert.der().clone()], der)
}

/// A client config trusting `roots` that presents `identity`.
pub fn client_config_with_identity(
    roots: &[&CertificateDer<'static>],
    identity: (
        Vec<CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for r in roots {
        store.add((*r).clone()).expect("root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(store)
            .with_client_auth_cert(identity.0, identity.1)
            .expect("client cert"),
    )
}

/// A client config trusting `root` that records the OCSP response the
/// server staples into the returned cell.
pub fn client_config_recording_ocsp(
    root: &CertificateDer<'static>,
) -> (Arc<ClientConfig>, Arc<std::sync::Mutex<Vec<u8>>>) {
    let mut store = RootCertStore::empty();
    store.add(root.clone()).expect("root");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(store),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let verifier = Arc::new(OcspRecorder {
        inner,
        seen: seen.clone(),
    });
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    (Arc::new(cfg), seen)
}

#[derive(Debug)]
struct OcspRecorder {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    seen: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl rustls::client::danger::ServerCertVerifier for OcspRecorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = ocsp.to_vec();
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A server certificate for `names` issued by `ca` with serial `serial`,
/// as `dir/<file>.crt` and `.key`.
pub fn server_cert_by(
    ca: &TestCa,
    dir: &Path,
    file: &str,
    names: &[&str],
    serial: u64,
) -> TestCert {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).expect("params");
    params.serial_number = Some(rcgen::SerialNumber::from(serial));
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("sign");
    write_cert(dir, file, &cert, &key)
}

/// A CRL from `ca` revoking the certificates with these serials, PEM, as
/// `dir/<file>.crl`.
pub fn make_crl(ca: &TestCa, dir: &Path, file: &str, serials: &[u64]) -> PathBuf {
    let params = rcgen::CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2024, 1, 1),
        next_update: rcgen::date_time_ymd(2099, 1, 1),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|&s| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(s),
                revocation_time: rcgen::date_time_ymd(2024, 1, 2),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&ca.issuer).expect("crl");
    let p = dir.join(format!("{file}.crl"));
    std::fs::write(&p, crl.pem().expect("pem")).expect("write crl");
    p
}

/// A client certificate for `cn` issued by `ca`, written as
/// `dir/<file>.crt` and `.key` (for `proxy_ssl_certificate`).
pub fn client_cert_files(ca: &TestCa, dir: &Path, file: &str, cn: &str) -> TestCert {
    let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn.to_string());
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("sign");
    write_cert(dir, file, &cert, &key)
}
