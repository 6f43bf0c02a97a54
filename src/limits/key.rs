//! Limit keys: a template of the variables engine (`config::Template`:
//! `$binary_remote_addr`, `$http_x_user:$uri`, `$request_method`, ...)
//! evaluated into a reusable byte buffer, then hashed with the zone's seed
//! into the [`KeyHash`] the table stores.
//!
//! This module knows nothing of HTTP: [`build`] is given the client address
//! and a function that appends any other variable's value (the limits phase
//! answers from the request, or for `limit_check` from the request behind an
//! `auth_request` subrequest; tests from a fake). It keeps the rules that are
//! the limits' own: as in nginx, the key is the plain concatenation of its
//! parts and a key whose parts are all empty is not limited; a template
//! without parts is one key for the zone; `limit_req_subnet` groups the
//! addresses of `$remote_addr` and `$binary_remote_addr` by prefix.

use super::table::KeyHash;
use crate::config::{Part, Template, Var};
use crate::util::hash::siphash128;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

/// Evaluate `t` into `out` (cleared first): literal text as written,
/// `$remote_addr` and `$binary_remote_addr` as `client` reduced to subnet
/// `s`, every other variable appended by `var`. Returns false when the key
/// is empty and the request must not be limited; a template without parts is
/// the zone-wide key (empty bytes, returns true).
pub fn build(
    t: &Template,
    client: IpAddr,
    s: Subnet,
    out: &mut Vec<u8>,
    mut var: impl FnMut(&Var, &mut Vec<u8>),
) -> bool {
    out.clear();
    if t.parts.is_empty() {
        return true;
    }
    for p in &t.parts {
        match p {
            Part::Text(x) => out.extend_from_slice(x.as_bytes()),
            Part::Var(Var::BinaryRemoteAddr) => match mask(client, s) {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            },
            Part::Var(Var::RemoteAddr) => {
                let _ = write!(out, "{}", mask(client, s));
            }
            Part::Var(v) => var(v, out),
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

    /// A fake request: a few variables with values, the rest empty.
    fn fake(v: &Var, out: &mut Vec<u8>) {
        let value: &[u8] = match v {
            Var::Http(n) if n == "x-user" => b"alice",
            Var::Cookie(n) if n == "sid" => b"s1",
            Var::RequestMethod => b"GET",
            Var::Host => b"example.com",
            _ => b"",
        };
        out.extend_from_slice(value);
    }

    fn key(text: &str, client: &str, s: Subnet) -> Option<Vec<u8>> {
        let t = Template::compile(text).unwrap();
        let mut out = b"stale".to_vec();
        build(&t, client.parse().unwrap(), s, &mut out, fake).then_some(out)
    }

    #[test]
    fn parts_concatenate() {
        let all = Subnet::default();
        assert_eq!(
            key(
                "$remote_addr|$http_x_user$cookie_sid$request_method:$host",
                "10.1.2.3",
                all
            )
            .unwrap(),
            b"10.1.2.3|alices1GET:example.com"
        );
        assert_eq!(
            key("$binary_remote_addr", "10.1.2.3", all).unwrap(),
            [10, 1, 2, 3]
        );
        assert_eq!(key("lit", "10.1.2.3", all).unwrap(), b"lit");
    }

    #[test]
    fn subnet_masks_only_the_address_variables() {
        let s = Subnet {
            v4_bits: 24,
            v6_bits: 64,
        };
        assert_eq!(
            key("$remote_addr $binary_remote_addr", "192.168.7.42", s).unwrap(),
            b"192.168.7.0 \xc0\xa8\x07\x00"
        );
        assert_eq!(
            key("$remote_addr", "2001:db8:1:2:aaaa::1", s).unwrap(),
            b"2001:db8:1:2::"
        );
        // An IPv4-mapped client is its IPv4 address, even unmasked.
        assert_eq!(
            key("$binary_remote_addr", "::ffff:10.0.0.9", Subnet::default()).unwrap(),
            [10, 0, 0, 9]
        );
    }

    #[test]
    fn empty_key_is_not_limited_but_no_parts_is_zone_wide() {
        let all = Subnet::default();
        assert_eq!(key("$http_missing$arg_none", "::1", all), None);
        assert_eq!(key("", "::1", all).unwrap(), b"");
        // A literal makes the key non-empty (as nginx).
        assert_eq!(key("k:$http_missing", "::1", all).unwrap(), b"k:");
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
