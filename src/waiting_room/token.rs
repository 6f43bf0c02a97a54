//! Signed waiting-room tokens and session cookies.
//!
//! Both are the same structure, URL-safe base64 without padding:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | kind: 1 = ticket (`sluice_wr=`), 2 = session cookie |
//! | 1 + k | key id length, key id (1..=16 bytes) |
//! | 8 | issue time, unix ms |
//! | 8 | ticket: slot time (earliest admission); session: last renewal |
//! | 8 | expiry, unix ms |
//! | 1 | flags: bit 0 = bound to the client address |
//! | 8 | FNV-1a of the target path (tells "wrong path" from "tampered") |
//! | 32 | HMAC-SHA256 |
//!
//! The MAC covers a domain tag, the zone name, every byte above, the full
//! target path and (when bound) the client address, so a token cannot be
//! forged, moved to another zone, path or client, or turned into a cookie.
//! It is checked with `verify_slice` (constant time). The first key signs;
//! every key verifies (rotation keeps queued users' tokens valid).

use super::b64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::IpAddr;

type HmacSha256 = Hmac<Sha256>;

/// Longest key id.
pub const MAX_KEY_ID: usize = 16;
const MAC_BYTES: usize = 32;
const MAX_RAW: usize = 2 + MAX_KEY_ID + 8 * 3 + 1 + 8 + MAC_BYTES;
const DOMAIN: &[u8] = b"sluice-waiting-room-v1\0";

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A place in the queue, carried in the `sluice_wr` query parameter.
    Ticket = 1,
    /// An admitted user's session cookie.
    Session = 2,
}

/// The signed fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    /// Ticket or session.
    pub kind: Kind,
    /// When it was issued, unix ms.
    pub issued_ms: u64,
    /// Ticket: earliest admission; session: last renewal (unix ms).
    pub slot_ms: u64,
    /// Expiry, unix ms.
    pub expires_ms: u64,
    /// Bound to the client address.
    pub ip_bound: bool,
}

/// Why a token was not accepted (a metric label each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not base64, wrong length or kind.
    Malformed = 0,
    /// Signed with a key id no longer configured.
    UnknownKey = 1,
    /// MAC mismatch (changed bytes, other zone or client).
    Tampered = 2,
    /// Valid for another path.
    WrongPath = 3,
    /// Past its expiry.
    Expired = 4,
}

/// Number of [`Reject`] reasons.
pub const REJECTS: usize = 5;

impl Reject {
    /// Every reason, in index order.
    pub const ALL: [Reject; REJECTS] = [
        Reject::Malformed,
        Reject::UnknownKey,
        Reject::Tampered,
        Reject::WrongPath,
        Reject::Expired,
    ];

    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Malformed => "malformed",
            Reject::UnknownKey => "unknown_key",
            Reject::Tampered => "tampered",
            Reject::WrongPath => "wrong_path",
            Reject::Expired => "expired",
        }
    }
}

use crate::util::hash::fnv1a64 as fnv;

fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The keys of one configuration, with their HMAC state prepared once.
#[derive(Clone)]
pub struct Signer {
    keys: Vec<(Vec<u8>, HmacSha256)>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({} keys)", self.keys.len())
    }
}

/// Where a token is valid.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Zone name.
    pub zone: &'a [u8],
    /// Normalized target path (empty for sessions).
    pub path: &'a [u8],
    /// Client address (used when the token is bound).
    pub ip: IpAddr,
}

impl Signer {
    /// Keys as `(id, secret)`, the first signing. Ids longer than
    /// [`MAX_KEY_ID`] are cut (the config refuses them).
    pub fn new(keys: &[(String, Vec<u8>)]) -> Signer {
        let keys = keys
            .iter()
            .filter_map(|(id, secret)| {
                let id = id.as_bytes()[..id.len().min(MAX_KEY_ID)].to_vec();
                HmacSha256::new_from_slice(secret).ok().map(|m| (id, m))
            })
            .collect();
        Signer { keys }
    }

    /// Whether no key is configured (nothing can be signed).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn mac(&self, key: &HmacSha256, scope: &Scope<'_>, raw: &[u8], bound: bool) -> HmacSha256 {
        let mut m = key.clone();
        m.update(DOMAIN);
        m.update(scope.zone);
        m.update(&[0]);
        m.update(raw);
        m.update(scope.path);
        m.update(&[0]);
        if bound {
            m.update(&ip_bytes(scope.ip));
        }
        m
    }

    /// Append the encoded, signed token for `c` to `out`.
    pub fn sign(&self, c: &Claims, scope: &Scope<'_>, out: &mut Vec<u8>) {
        let Some((id, key)) = self.keys.first() else {
            return;
        };
        let mut raw = [0u8; MAX_RAW];
        let mut n = 0;
        let mut put = |b: &[u8]| {
            raw[n..n + b.len()].copy_from_slice(b);
            n += b.len();
        };
        put(&[c.kind as u8, id.len() as u8]);
        put(id);
        put(&c.issued_ms.to_le_bytes());
        put(&c.slot_ms.to_le_bytes());
        put(&c.expires_ms.to_le_bytes());
        put(&[c.ip_bound as u8]);
        put(&fnv(scope.path).to_le_bytes());
        let tag = self
            .mac(key, scope, &raw[..n], c.ip_bound)
            .finalize()
            .into_bytes();
        raw[n..n + MAC_BYTES].copy_from_slice(&tag);
        b64::encode(&raw[..n + MAC_BYTES], out);
    }

    /// Check `text` as a token of `kind` for `scope` at `now_ms`.
    pub fn verify(
        &self,
        text: &[u8],
        kind: Kind,
        scope: &Scope<'_>,
        now_ms: u64,
    ) -> Result<Claims, Reject> {
        let mut raw = [0u8; MAX_RAW];
        let len = b64::decode(text, &mut raw).ok_or(Reject::Malformed)?;
        let raw = &raw[..len];
        let id_len = *raw.get(1).ok_or(Reject::Malformed)? as usize;
        let body = 2 + id_len + 8 * 3 + 1 + 8;
        if raw[0] != kind as u8 || id_len == 0 || id_len > MAX_KEY_ID || len != body + MAC_BYTES {
            return Err(Reject::Malformed);
        }
        let id = &raw[2..2 + id_len];
        let word = |i: usize| {
            let at = 2 + id_len + 8 * i;
            let mut w = [0u8; 8];
            w.copy_from_slice(&raw[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let flags = raw[2 + id_len + 24];
        let path_hash = {
            let at = 2 + id_len + 25;
            let mut w = [0u8; 8];
            w.copy_from_slice(&raw[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let (_, key) = self
            .keys
            .iter()
            .find(|(k, _)| k.as_slice() == id)
            .ok_or(Reject::UnknownKey)?;
        let bound = flags & 1 != 0;
        if self
            .mac(key, scope, &raw[..body], bound)
            .verify_slice(&raw[body..])
            .is_err()
        {
            return Err(if path_hash != fnv(scope.path) {
                Reject::WrongPath
            } else {
                Reject::Tampered
            });
        }
        let c = Claims {
            kind,
            issued_ms: word(0),
            slot_ms: word(1),
            expires_ms: word(2),
            ip_bound: bound,
        };
        if now_ms >= c.expires_ms {
            return Err(Reject::Expired);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[(&str, &str)]) -> Signer {
        Signer::new(
            &list
                .iter()
                .map(|(i, s)| (i.to_string(), s.as_bytes().to_vec()))
                .collect::<Vec<_>>(),
        )
    }

    fn scope<'a>(path: &'a str) -> Scope<'a> {
        Scope {
            zone: b"shop",
            path: path.as_bytes(),
            ip: "10.0.0.1".parse().unwrap(),
        }
    }

    fn ticket(slot_ms: u64) -> Claims {
        Claims {
            kind: Kind::Ticket,
            issued_ms: 1_000,
            slot_ms,
            expires_ms: 100_000,
            ip_bound: false,
        }
    }

    fn signed(s: &Signer, c: &Claims, path: &str) -> Vec<u8> {
        let mut out = Vec::new();
        s.sign(c, &scope(path), &mut out);
        out
    }

    #[test]
    fn sign_then_verify_returns_the_claims() {
        let s = keys(&[("k1", "secret-one")]);
        let t = signed(&s, &ticket(5_000), "/shop/x");
        assert!(t
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(b)));
        assert_eq!(
            s.verify(&t, Kind::Ticket, &scope("/shop/x"), 2_000),
            Ok(ticket(5_000))
        );
    }

    #[test]
    fn every_changed_character_is_refused() {
        let s = keys(&[("k1", "secret-one")]);
        let t = signed(&s, &ticket(5_000), "/shop/x");
        for i in 0..t.len() {
            let mut bad = t.clone();
            bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
            let r = s.verify(&bad, Kind::Ticket, &scope("/shop/x"), 2_000);
            assert!(r.is_err(), "changed byte {i} accepted");
        }
        let mut tail = t.clone();
        let n = tail.len();
        tail[n - 2..].copy_from_slice(b"AA");
        assert_eq!(
            s.verify(&tail, Kind::Ticket, &scope("/shop/x"), 2_000),
            Err(Reject::Tampered)
        );
        assert_eq!(
            s.verify(b"%%%", Kind::Ticket, &scope("/shop/x"), 2_000),
            Err(Reject::Malformed)
        );
    }

    #[test]
    fn other_path_zone_kind_or_client_is_refused() {
        let s = keys(&[("k1", "secret-one")]);
        let t = signed(&s, &ticket(5_000), "/shop/x");
        assert_eq!(
            s.verify(&t, Kind::Ticket, &scope("/shop/y"), 2_000),
            Err(Reject::WrongPath)
        );
        let other_zone = Scope {
            zone: b"other",
            ..scope("/shop/x")
        };
        assert_eq!(
            s.verify(&t, Kind::Ticket, &other_zone, 2_000),
            Err(Reject::Tampered)
        );
        assert_eq!(
            s.verify(&t, Kind::Session, &scope("/shop/x"), 2_000),
            Err(Reject::Malformed)
        );
        let bound = Claims {
            ip_bound: true,
            ..ticket(5_000)
        };
        let t = signed(&s, &bound, "/shop/x");
        assert!(s.verify(&t, Kind::Ticket, &scope("/shop/x"), 2_000).is_ok());
        let elsewhere = Scope {
            ip: "10.0.0.2".parse().unwrap(),
            ..scope("/shop/x")
        };
        assert_eq!(
            s.verify(&t, Kind::Ticket, &elsewhere, 2_000),
            Err(Reject::Tampered)
        );
    }

    #[test]
    fn expiry_on_a_fake_clock() {
        let s = keys(&[("k1", "secret-one")]);
        let t = signed(&s, &ticket(5_000), "/a");
        assert!(s.verify(&t, Kind::Ticket, &scope("/a"), 99_999).is_ok());
        assert_eq!(
            s.verify(&t, Kind::Ticket, &scope("/a"), 100_000),
            Err(Reject::Expired)
        );
    }

    #[test]
    fn rotation_first_key_signs_all_verify() {
        let old = keys(&[("k1", "secret-one")]);
        let t_old = signed(&old, &ticket(5_000), "/a");
        let rotated = keys(&[("k2", "secret-two"), ("k1", "secret-one")]);
        assert!(rotated
            .verify(&t_old, Kind::Ticket, &scope("/a"), 2_000)
            .is_ok());
        let t_new = signed(&rotated, &ticket(5_000), "/a");
        assert!(old.verify(&t_new, Kind::Ticket, &scope("/a"), 2_000) == Err(Reject::UnknownKey));
        let dropped = keys(&[("k2", "secret-two")]);
        assert_eq!(
            dropped.verify(&t_old, Kind::Ticket, &scope("/a"), 2_000),
            Err(Reject::UnknownKey)
        );
        // Same id, other secret: a forgery.
        let forged = keys(&[("k1", "guess")]);
        let t = signed(&forged, &ticket(0), "/a");
        assert_eq!(
            old.verify(&t, Kind::Ticket, &scope("/a"), 2_000),
            Err(Reject::Tampered)
        );
    }

    /// `cargo test --profile ci --lib waiting_room::token -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_verify_cost() {
        let s = keys(&[("k1", "0123456789abcdef0123456789abcdef")]);
        let t = signed(&s, &ticket(5_000), "/shop/x");
        let n = 200_000;
        let start = std::time::Instant::now();
        let mut ok = 0;
        for _ in 0..n {
            ok += s
                .verify(
                    std::hint::black_box(&t),
                    Kind::Ticket,
                    &scope("/shop/x"),
                    2_000,
                )
                .is_ok() as u32;
        }
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        assert_eq!(ok, n);
        println!("token verify: {ns:.0} ns/verify ({} byte token)", t.len());
    }
}
