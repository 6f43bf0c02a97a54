//! Typed resolution of the TLS directives (http and server levels, the
//! server's own overriding the http block's): `ssl_certificate` and
//! `ssl_certificate_key` pairs (loaded here: a missing, unreadable or
//! mismatched pair is an error at its line), `ssl_protocols` (TLSv1.2,
//! TLSv1.3; older ones are ignored with a warning, as they cannot be
//! offered), `ssl_prefer_server_ciphers`, `ssl_ecdh_curve`,
//! `ssl_session_cache`, `ssl_session_timeout`, `ssl_session_tickets`,
//! `ssl_session_ticket_key`, `ssl_client_certificate` + `ssl_verify_client`
//! (client certificates), `ssl_stapling` + `ssl_stapling_file` (a stapled
//! OCSP response; sluice does not fetch them). `ssl_ciphers`, `ssl_dhparam`,
//! `ssl_early_data`, `ssl_verify_depth`, `ssl_stapling_verify` and
//! `ssl_trusted_certificate` are accepted: rustls offers only its own modern
//! suites, has no finite-field DH, 0-RTT stays off, and webpki bounds chains
//! itself.

use std::path::Path;

use super::parse::Directive;
use super::types_ssl::{SessionCache, SslCert, SslConf};
use super::values::{arg0, duration, flag, invalid_value, path_arg, protocols, Spec, HTTP, SERVER};
use super::ConfigError;
use crate::tls::server::{Curve, VerifyClient};
use crate::util::units::{parse_number, parse_size};

const HS: u8 = HTTP | SERVER;

/// The TLS directives, for the generic checks.
pub(super) const SPECS: &[Spec] = &[
    Spec::new("ssl_certificate", HS, 1, 1).repeatable(),
    Spec::new("ssl_certificate_key", HS, 1, 1).repeatable(),
    Spec::new("ssl_protocols", HS, 1, 6),
    Spec::new("ssl_ciphers", HS, 1, 1),
    Spec::new("ssl_prefer_server_ciphers", HS, 1, 1),
    Spec::new("ssl_ecdh_curve", HS, 1, 1),
    Spec::new("ssl_session_cache", HS, 1, 2),
    Spec::new("ssl_session_timeout", HS, 1, 1),
    Spec::new("ssl_session_tickets", HS, 1, 1),
    Spec::new("ssl_session_ticket_key", HS, 1, 1).repeatable(),
    Spec::new("ssl_dhparam", HS, 1, 1),
    Spec::new("ssl_early_data", HS, 1, 1),
    Spec::new("ssl_buffer_size", HS, 1, 1),
    Spec::new("ssl_client_certificate", HS, 1, 1),
    Spec::new("ssl_verify_client", HS, 1, 1),
    Spec::new("ssl_verify_depth", HS, 1, 1),
    Spec::new("ssl_stapling", HS, 1, 1),
    Spec::new("ssl_stapling_file", HS, 1, 1),
    Spec::new("ssl_stapling_verify", HS, 1, 1),
    Spec::new("ssl_trusted_certificate", HS, 1, 1),
];

/// Largest OCSP response file.
const MAX_OCSP_BYTES: u64 = 64 * 1024;

/// Largest `ssl_session_ticket_key` file.
const MAX_TICKET_KEY_BYTES: u64 = 4096;

/// One level's TLS settings while resolving (`None`: not set here).
#[derive(Debug, Default, Clone)]
pub(super) struct SslInherit {
    certs: Vec<Directive>,
    keys: Vec<Directive>,
    protocols: Option<(bool, bool)>,
    prefer_server_ciphers: Option<bool>,
    curves: Option<Vec<Curve>>,
    session_cache: Option<SessionCache>,
    session_timeout_ms: Option<u64>,
    session_tickets: Option<bool>,
    ticket_keys: Option<Vec<Vec<u8>>>,
    verify_client: Option<(VerifyClient, Directive)>,
    client_certificate: Option<Directive>,
    stapling: Option<(bool, Directive)>,
    stapling_file: Option<Directive>,
}

impl SslInherit {
    /// Applies `d` if it is a TLS directive; `Ok(false)` otherwise.
    pub(super) fn apply(&mut self, d: &Directive, conf_dir: &Path) -> Result<bool, ConfigError> {
        match d.name.as_str() {
            "ssl_certificate" => self.certs.push(d.clone()),
            "ssl_certificate_key" => self.keys.push(d.clone()),
            "ssl_protocols" => self.protocols = Some(protocols(d)?),
            "ssl_prefer_server_ciphers" => self.prefer_server_ciphers = Some(flag(d)?),
            "ssl_ecdh_curve" => self.curves = Some(curves(d)?),
            "ssl_session_cache" => self.session_cache = Some(session_cache(d)?),
            "ssl_session_timeout" => self.session_timeout_ms = Some(duration(d, arg0(d))?),
            "ssl_session_tickets" => self.session_tickets = Some(flag(d)?),
            "ssl_session_ticket_key" => {
                let p = path_arg(d, conf_dir, arg0(d))?;
                let key = read_ticket_key(&p).map_err(|m| d.error(m))?;
                self.ticket_keys.get_or_insert_with(Vec::new).push(key);
            }
            "ssl_verify_client" => {
                let mode = match arg0(d) {
                    "on" => VerifyClient::On,
                    "off" => VerifyClient::Off,
                    "optional" => VerifyClient::Optional,
                    "optional_no_ca" => {
                        return Err(d.error("\"ssl_verify_client optional_no_ca\" is not supported"))
                    }
                    v => return Err(invalid_value(d, v)),
                };
                self.verify_client = Some((mode, d.clone()));
            }
            "ssl_client_certificate" => self.client_certificate = Some(d.clone()),
            "ssl_stapling" => self.stapling = Some((flag(d)?, d.clone())),
            "ssl_stapling_file" => self.stapling_file = Some(d.clone()),
            "ssl_verify_depth" | "ssl_stapling_verify" | "ssl_trusted_certificate" => {
                if d.name == "ssl_stapling_verify" {
                    flag(d)?;
                }
                log::info!(
                    "{}:{}: \"{}\" is accepted and ignored",
                    d.file.display(),
                    d.line,
                    d.name
                );
            }
            "ssl_ciphers" | "ssl_dhparam" | "ssl_buffer_size" => {
                log::info!(
                    "{}:{}: \"{}\" is accepted and ignored: {}",
                    d.file.display(),
                    d.line,
                    d.name,
                    match d.name.as_str() {
                        "ssl_ciphers" => "rustls offers only its own modern cipher suites",
                        "ssl_dhparam" => "rustls has no finite-field Diffie-Hellman",
                        _ => "records are sized by rustls",
                    }
                );
            }
            "ssl_early_data" => {
                if flag(d)? {
                    log::warn!(
                        "{}:{}: \"ssl_early_data on\" is ignored: 0-RTT stays off",
                        d.file.display(),
                        d.line
                    );
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// This level over `outer` (a level with any certificate replaces the
    /// outer pairs), then defaults; certificates are loaded here.
    pub(super) fn over(&self, outer: &SslInherit, conf_dir: &Path) -> Result<SslConf, ConfigError> {
        let (certs, keys) = if self.certs.is_empty() && self.keys.is_empty() {
            (&outer.certs, &outer.keys)
        } else {
            (&self.certs, &self.keys)
        };
        let stapled = self.stapled(outer, conf_dir)?;
        let mut certificates = Vec::new();
        for (i, c) in certs.iter().enumerate() {
            let Some(k) = keys.get(i) else {
                return Err(c.error(format!(
                    "no \"ssl_certificate_key\" is defined for certificate \"{}\"",
                    arg0(c)
                )));
            };
            let cert = path_arg(c, conf_dir, arg0(c))?;
            let key = path_arg(k, conf_dir, arg0(k))?;
            let mut loaded = crate::tls::load_pair(&cert, &key).map_err(|e| c.error(e.0))?;
            if let Some((_, ocsp)) = &stapled {
                let mut k = (*loaded).clone();
                k.ocsp = Some(ocsp.clone());
                loaded = std::sync::Arc::new(k);
            }
            certificates.push(SslCert { cert, key, loaded });
        }
        if let Some(extra) = keys.get(certs.len()) {
            return Err(
                extra.error("no \"ssl_certificate\" is defined for this \"ssl_certificate_key\"")
            );
        }
        let d = SslConf::default();
        let verify = self.verify_client.as_ref().or(outer.verify_client.as_ref());
        let ca = self
            .client_certificate
            .as_ref()
            .or(outer.client_certificate.as_ref());
        let verify_client = verify.map_or(VerifyClient::Off, |v| v.0);
        let client_certificate = match (verify, ca) {
            (Some((VerifyClient::Off, _)) | None, _) => None,
            (Some((_, vd)), None) => {
                return Err(vd.error("no \"ssl_client_certificate\" for \"ssl_verify_client\""))
            }
            (Some(_), Some(cd)) => {
                let p = path_arg(cd, conf_dir, arg0(cd))?;
                let roots = load_roots(&p).map_err(|m| cd.error(m))?;
                let auth = crate::tls::ClientAuth::new(roots).map_err(|m| cd.error(m))?;
                Some((p, auth))
            }
        };
        let (tls12, tls13) = self
            .protocols
            .or(outer.protocols)
            .unwrap_or((d.tls12, d.tls13));
        Ok(SslConf {
            certificates,
            tls12,
            tls13,
            prefer_server_ciphers: self
                .prefer_server_ciphers
                .or(outer.prefer_server_ciphers)
                .unwrap_or(d.prefer_server_ciphers),
            curves: self
                .curves
                .clone()
                .or_else(|| outer.curves.clone())
                .unwrap_or_default(),
            session_cache: self
                .session_cache
                .clone()
                .or_else(|| outer.session_cache.clone())
                .unwrap_or(d.session_cache),
            session_timeout_ms: self
                .session_timeout_ms
                .or(outer.session_timeout_ms)
                .unwrap_or(d.session_timeout_ms),
            session_tickets: self
                .session_tickets
                .or(outer.session_tickets)
                .unwrap_or(d.session_tickets),
            ticket_keys: self
                .ticket_keys
                .clone()
                .or_else(|| outer.ticket_keys.clone())
                .unwrap_or_default(),
            verify_client,
            client_certificate,
            stapling_file: stapled.map(|(p, _)| p),
        })
    }

    /// `ssl_stapling on` with its `ssl_stapling_file`: the file and the
    /// DER OCSP response in it (`None`: nothing stapled).
    fn stapled(
        &self,
        outer: &SslInherit,
        conf_dir: &Path,
    ) -> Result<Option<(std::path::PathBuf, Vec<u8>)>, ConfigError> {
        let Some((true, on)) = self.stapling.as_ref().or(outer.stapling.as_ref()) else {
            return Ok(None);
        };
        let Some(fd) = self.stapling_file.as_ref().or(outer.stapling_file.as_ref()) else {
            log::warn!(
                "{}:{}: \"ssl_stapling\" without \"ssl_stapling_file\" staples nothing: sluice does not fetch OCSP responses",
                on.file.display(),
                on.line
            );
            return Ok(None);
        };
        let p = path_arg(fd, conf_dir, arg0(fd))?;
        let meta = std::fs::metadata(&p)
            .map_err(|e| fd.error(format!("cannot read \"{}\": {e}", p.display())))?;
        if !meta.is_file() || meta.len() == 0 || meta.len() > MAX_OCSP_BYTES {
            return Err(fd.error(format!("\"{}\" is not an OCSP response file", p.display())));
        }
        let der = std::fs::read(&p)
            .map_err(|e| fd.error(format!("cannot read \"{}\": {e}", p.display())))?;
        Ok(Some((p, der)))
    }
}

/// The CA certificates of an `ssl_client_certificate` file.
fn load_roots(p: &Path) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(p)
        .map_err(|e| format!("cannot load client certificates \"{}\": {e}", p.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        let c =
            c.map_err(|e| format!("cannot load client certificates \"{}\": {e}", p.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("cannot use client certificate in \"{}\": {e}", p.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("no certificate in \"{}\"", p.display()));
    }
    Ok(roots)
}

/// `ssl_ecdh_curve auto | NAME[:NAME...]`.
fn curves(d: &Directive) -> Result<Vec<Curve>, ConfigError> {
    let v = arg0(d);
    if v == "auto" {
        return Ok(Vec::new());
    }
    v.split(':')
        .map(|n| {
            Curve::from_name(n)
                .ok_or_else(|| d.error(format!("unknown curve \"{n}\" in \"ssl_ecdh_curve\"")))
        })
        .collect()
}

/// `ssl_session_cache off | none | [builtin[:N]] [shared:NAME:SIZE]`; with
/// both, the shared one is used (every worker resumes from it).
fn session_cache(d: &Directive) -> Result<SessionCache, ConfigError> {
    let mut builtin = None;
    let mut shared = None;
    for a in &d.args {
        match a.as_str() {
            "off" | "none" if d.args.len() == 1 => return Ok(SessionCache::Off),
            "builtin" => builtin = Some(20_480),
            _ => {
                if let Some(n) = a.strip_prefix("builtin:") {
                    let n = parse_number(n)
                        .filter(|&n| n > 0)
                        .ok_or_else(|| invalid_value(d, a))?;
                    builtin = Some(usize::try_from(n).map_err(|_| invalid_value(d, a))?);
                } else if let Some(rest) = a.strip_prefix("shared:") {
                    let (name, sz) = rest.rsplit_once(':').ok_or_else(|| invalid_value(d, a))?;
                    let bytes = parse_size(sz)
                        .filter(|&b| (8192..=1 << 34).contains(&b))
                        .ok_or_else(|| invalid_value(d, a))?;
                    if name.is_empty() {
                        return Err(invalid_value(d, a));
                    }
                    shared = Some(SessionCache::Shared {
                        name: name.to_string(),
                        bytes,
                    });
                } else {
                    return Err(invalid_value(d, a));
                }
            }
        }
    }
    Ok(shared.unwrap_or(SessionCache::Builtin(builtin.unwrap_or(20_480))))
}

/// An `ssl_session_ticket_key` file: nginx's 48 or 80 random bytes.
fn read_ticket_key(p: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(p).map_err(|e| format!("cannot read \"{}\": {e}", p.display()))?;
    if !meta.is_file() || meta.len() > MAX_TICKET_KEY_BYTES {
        return Err(format!("\"{}\" is not a ticket key file", p.display()));
    }
    let key = std::fs::read(p).map_err(|e| format!("cannot read \"{}\": {e}", p.display()))?;
    if key.len() != 48 && key.len() != 80 {
        return Err(format!(
            "\"{}\" must be 48 or 80 bytes, not {}",
            p.display(),
            key.len()
        ));
    }
    Ok(key)
}
