//! Limit keys: a template (`$binary_remote_addr`, `$http_x_user:$uri`, ...)
//! evaluated against a [`KeySource`] into a reusable byte buffer, then
//! hashed with the zone's seed into the [`KeyHash`] the table stores.
//!
//! The source is a trait so this module knows nothing of HTTP: the phase
//! adapter answers for a real request, `limit_check` for the request behind
//! an `auth_request` subrequest, tests for a fake one. As in nginx, the
//! key is the plain concatenation of its parts, and a key whose parts are all
//! empty is not limited. `limit_req_subnet` groups addresses by prefix.

use super::table::KeyHash;
use crate::config::{KeyPart, KeyTemplate};
use crate::util::hash::siphash128;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What key variables read.
pub trait KeySource {
    /// The client address (`$remote_addr`, `$binary_remote_addr`).
    fn remote_addr(&self) -> IpAddr;
    /// A request header by lowercase name (`-` separated).
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// A cookie value.
    fn cookie(&self, name: &str) -> Option<&[u8]>;
    /// A query argument, raw.
    fn arg(&self, name: &str) -> Option<&[u8]>;
    /// The host (`$host`): lowercased here, so any case will do.
    fn host(&self) -> &[u8];
    /// The normalized path (`$uri`).
    fn uri(&self) -> &[u8];
}

/// Prefix lengths that group client addresses (`limit_req_subnet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// IPv4 prefix length, 1-32.
    pub v4_bits: u8,
    /// IPv6 prefix length, 1-128.
    pub v6_bits: u8,
}

impl Default for Subnet {
    fn default() -> Self {
        Subnet {
            v4_bits: 32,
            v6_bits: 128,
        }
    }
}

/// `ip` reduced to its subnet (IPv4-mapped IPv6 addresses count as IPv4).
pub fn mask(ip: IpAddr, s: Subnet) -> IpAddr {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(a) => {
            let bits = s.v4_bits.min(32) as u32;
            let m = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let bits = s.v6_bits.min(128) as u32;
            let m = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

/// Evaluate `t` into `out` (cleared first). Returns false when the key is
/// empty and the request must not be limited; a template without parts is
/// the zone-wide key (empty bytes, returns true).
pub fn build(t: &KeyTemplate, src: &impl KeySource, s: Subnet, out: &mut Vec<u8>) -> bool {
    out.clear();
    if t.parts.is_empty() {
        return true;
    }
    for p in &t.parts {
        match p {
            KeyPart::Text(x) => out.extend_from_slice(x.as_bytes()),
            KeyPart::BinaryRemoteAddr => match mask(src.remote_addr(), s) {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            },
            KeyPart::RemoteAddr => {
                let _ = write!(out, "{}", mask(src.remote_addr(), s));
            }
            KeyPart::Header(n) => out.extend_from_slice(src.header(n).unwrap_or_default()),
            KeyPart::Cookie(n) => out.extend_from_slice(src.cookie(n).unwrap_or_default()),
            KeyPart::Arg(n) => out.extend_from_slice(src.arg(n).unwrap_or_default()),
            KeyPart::Host => out.extend(src.host().iter().map(u8::to_ascii_lowercase)),
            KeyPart::Uri => out.extend_from_slice(src.uri()),
        }
    }
    !out.is_empty()
}

/// The table key of `bytes` under a zone's `seed`.
pub fn hash(seed: (u64, u64), bytes: &[u8]) -> KeyHash {
    KeyHash::from_u128(siphash128(seed.0, seed.1, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        ip: IpAddr,
    }

    impl KeySource for Fake {
        fn remote_addr(&self) -> IpAddr {
            self.ip
        }
        fn header(&self, name: &str) -> Option<&[u8]> {
            (name == "x-user").then_some(b"alice".as_slice())
        }
        fn cookie(&self, name: &str) -> Option<&[u8]> {
            (name == "sid").then_some(b"s1".as_slice())
        }
        fn arg(&self, name: &str) -> Option<&[u8]> {
            (name == "k").then_some(b"v".as_slice())
        }
        fn host(&self) -> &[u8] {
            b"Example.COM"
        }
        fn uri(&self) -> &[u8] {
            b"/a/b"
        }
    }

    fn t(parts: Vec<KeyPart>) -> KeyTemplate {
        KeyTemplate { parts }
    }

    #[test]
    fn parts_concatenate() {
        let src = Fake {
            ip: "10.1.2.3".parse().unwrap(),
        };
        let mut out = Vec::new();
        let tpl = t(vec![
            KeyPart::RemoteAddr,
            KeyPart::Text("|".into()),
            KeyPart::Header("x-user".into()),
            KeyPart::Cookie("sid".into()),
            KeyPart::Arg("k".into()),
            KeyPart::Host,
            KeyPart::Uri,
        ]);
        assert!(build(&tpl, &src, Subnet::default(), &mut out));
        assert_eq!(out, b"10.1.2.3|alices1vexample.com/a/b");
        assert!(build(
            &t(vec![KeyPart::BinaryRemoteAddr]),
            &src,
            Subnet::default(),
            &mut out
        ));
        assert_eq!(out, [10, 1, 2, 3]);
    }

    #[test]
    fn empty_key_is_not_limited_but_no_parts_is_zone_wide() {
        let src = Fake {
            ip: "::1".parse().unwrap(),
        };
        let mut out = Vec::new();
        assert!(!build(
            &t(vec![KeyPart::Header("missing".into())]),
            &src,
            Subnet::default(),
            &mut out
        ));
        assert!(build(
            &KeyTemplate::default(),
            &src,
            Subnet::default(),
            &mut out
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn subnets_group_clients() {
        let s = Subnet {
            v4_bits: 24,
            v6_bits: 64,
        };
        let a = mask("192.168.7.42".parse().unwrap(), s);
        assert_eq!(a, "192.168.7.0".parse::<IpAddr>().unwrap());
        let b = mask("2001:db8:1:2:aaaa::1".parse().unwrap(), s);
        assert_eq!(b, "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let mapped = mask("::ffff:10.0.0.9".parse().unwrap(), s);
        assert_eq!(mapped, "10.0.0.0".parse::<IpAddr>().unwrap());
        let whole = mask("10.0.0.9".parse().unwrap(), Subnet::default());
        assert_eq!(whole, "10.0.0.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn hash_depends_on_seed_and_bytes() {
        assert_eq!(hash((1, 2), b"a"), hash((1, 2), b"a"));
        assert_ne!(hash((1, 2), b"a"), hash((1, 3), b"a"));
        assert_ne!(hash((1, 2), b"a"), hash((1, 2), b"b"));
    }
}
