//! Certificate chains and private keys from PEM files, checked to match.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::Arc;

/// Why a certificate/key pair could not be loaded (the message is what the
/// config error shows after `file:line:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertError(pub String);

impl std::fmt::Display for CertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Largest certificate or key file read.
const MAX_PEM_BYTES: u64 = 1 << 20;

fn read(path: &Path, what: &str) -> Result<Vec<u8>, CertError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| CertError(format!("cannot load {what} \"{}\": {e}", path.display())))?;
    if !meta.is_file() {
        return Err(CertError(format!(
            "cannot load {what} \"{}\": not a regular file",
            path.display()
        )));
    }
    if meta.len() > MAX_PEM_BYTES {
        return Err(CertError(format!(
            "cannot load {what} \"{}\": larger than 1 MiB",
            path.display()
        )));
    }
    std::fs::read(path)
        .map_err(|e| CertError(format!("cannot load {what} \"{}\": {e}", path.display())))
}

/// The certificates of a PEM file, in order (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let pem = read(path, "certificate")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            CertError(format!(
                "cannot load certificate \"{}\": {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(CertError(format!(
            "cannot load certificate \"{}\": no certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// Load `cert` (a PEM chain, leaf first) and `key` (PKCS#8, PKCS#1 or SEC1
/// PEM) and check that the key is the certificate's.
pub fn load_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, CertError> {
    let chain = load_certs(cert)?;
    let key_pem = read(key, "certificate key")?;
    let der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        CertError(format!(
            "cannot load certificate key \"{}\": {e}",
            key.display()
        ))
    })?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let ck = CertifiedKey::from_der(chain, der, &provider).map_err(|e| {
        CertError(format!(
            "cannot use certificate \"{}\" with key \"{}\": {e}",
            cert.display(),
            key.display()
        ))
    })?;
    Ok(Arc::new(ck))
}
