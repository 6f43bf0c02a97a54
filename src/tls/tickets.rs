//! Session tickets every worker can open. A ticket is sealed with
//! AES-256-GCM under a key derived (HMAC-SHA256) from a secret and the
//! current period of `ssl_session_timeout`: workers agree without talking,
//! the key rolls every period, and a ticket opens during its period and the
//! next. The secret is the `ssl_session_ticket_key` files' contents (the
//! first seals, all open: several hosts can share them), or else a random
//! one made once per master process before any worker is forked (so every
//! worker and every reload's workers share it, and a restart forgets it).

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

const VERSION: u8 = 1;
/// version, period, nonce.
const HEADER: usize = 1 + 8 + NONCE_LEN;

static PROCESS_SECRET: OnceLock<[u8; 32]> = OnceLock::new();

/// Make this process's ticket secret now (the master calls it before it
/// forks, so the workers inherit one secret).
pub fn init() {
    process_secret();
}

fn process_secret() -> &'static [u8; 32] {
    PROCESS_SECRET.get_or_init(|| {
        let mut s = [0u8; 32];
        if aws_lc_rs::rand::fill(&mut s).is_err() {
            // No randomness: tickets sealed with a fixed key would be
            // forgeable, so make them unopenable instead (every resumption
            // falls back to a full handshake).
            log::error!("no random source for TLS session tickets");
        }
        s
    })
}

/// The ticket producer of one server configuration.
pub struct Ticketer {
    /// `ssl_session_ticket_key` contents; empty: the process secret.
    secrets: Vec<Vec<u8>>,
    period_s: u64,
    /// The sealing key of the current period, derived once per period (a
    /// handshake sends two tickets: no key schedule per ticket).
    sealing: Mutex<Option<(u64, LessSafeKey)>>,
}

impl std::fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticketer")
            .field("secrets", &self.secrets.len())
            .field("period_s", &self.period_s)
            .finish()
    }
}

impl Ticketer {
    /// Tickets under `secrets` (empty: the process's), rolling every
    /// `period_s` seconds (at least 1).
    pub fn new(secrets: Vec<Vec<u8>>, period_s: u64) -> Ticketer {
        Ticketer {
            secrets,
            period_s: period_s.clamp(1, u32::MAX as u64),
            sealing: Mutex::new(None),
        }
    }

    fn now_period(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        now / self.period_s
    }

    fn key(secret: &[u8], period: u64) -> Option<LessSafeKey> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
        mac.update(b"sluice tls ticket v1");
        mac.update(&period.to_be_bytes());
        let k = mac.finalize().into_bytes();
        Some(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k).ok()?))
    }

    fn sealing_secret(&self) -> &[u8] {
        self.secrets
            .first()
            .map_or(&process_secret()[..], Vec::as_slice)
    }

    fn seal_at(&self, plain: &[u8], period: u64) -> Option<Vec<u8>> {
        let mut cached = self.sealing.lock().ok()?;
        if cached.as_ref().is_none_or(|(p, _)| *p != period) {
            *cached = Some((period, Self::key(self.sealing_secret(), period)?));
        }
        let key = &cached.as_ref()?.1;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(HEADER + plain.len() + 16);
        out.push(VERSION);
        out.extend_from_slice(&period.to_be_bytes());
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&out[..9]),
            &mut body,
        )
        .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    fn open_at(&self, ticket: &[u8], now_period: u64) -> Option<Vec<u8>> {
        if ticket.len() < HEADER + 16 || ticket[0] != VERSION {
            return None;
        }
        let period = u64::from_be_bytes(ticket[1..9].try_into().ok()?);
        if period != now_period && period.checked_add(1) != Some(now_period) {
            return None;
        }
        let nonce: [u8; NONCE_LEN] = ticket[9..HEADER].try_into().ok()?;
        let fallback = [process_secret().to_vec()];
        let secrets = if self.secrets.is_empty() {
            &fallback[..]
        } else {
            &self.secrets[..]
        };
        for s in secrets {
            let Some(key) = Self::key(s, period) else {
                continue;
            };
            let mut body = ticket[HEADER..].to_vec();
            if let Ok(plain) = key.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&ticket[..9]),
                &mut body,
            ) {
                return Some(plain.to_vec());
            }
        }
        None
    }
}

impl rustls::server::ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        // A ticket opens for up to two periods; promise one.
        self.period_s as u32
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.seal_at(plain, self.now_period())
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.open_at(cipher, self.now_period())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_opens_in_its_period_and_the_next_only() {
        let t = Ticketer::new(Vec::new(), 300);
        let sealed = t.seal_at(b"session state", 1000).unwrap();
        assert_eq!(
            t.open_at(&sealed, 1000).as_deref(),
            Some(&b"session state"[..])
        );
        assert_eq!(
            t.open_at(&sealed, 1001).as_deref(),
            Some(&b"session state"[..])
        );
        assert_eq!(t.open_at(&sealed, 1002), None, "expired");
        assert_eq!(t.open_at(&sealed, 999), None, "from the future");
    }

    #[test]
    fn another_process_with_the_same_secret_opens_it_a_different_one_does_not() {
        let a = Ticketer::new(
            vec![b"shared key file contents 48 bytes long.........".to_vec()],
            60,
        );
        let b = Ticketer::new(
            vec![
                b"new key".to_vec(),
                b"shared key file contents 48 bytes long.........".to_vec(),
            ],
            60,
        );
        let other = Ticketer::new(vec![b"something else".to_vec()], 60);
        let sealed = a.seal_at(b"x", 7).unwrap();
        assert_eq!(
            b.open_at(&sealed, 7).as_deref(),
            Some(&b"x"[..]),
            "old keys still open"
        );
        assert_eq!(other.open_at(&sealed, 7), None);
    }

    #[test]
    fn tampered_or_short_tickets_are_refused() {
        let t = Ticketer::new(Vec::new(), 60);
        let mut sealed = t.seal_at(b"state", 5).unwrap();
        for i in [0, 4, HEADER, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(t.open_at(&bad, 5), None, "byte {i}");
        }
        sealed.truncate(HEADER + 15);
        assert_eq!(t.open_at(&sealed, 5), None);
        assert_eq!(t.open_at(&[], 5), None);
    }
}
