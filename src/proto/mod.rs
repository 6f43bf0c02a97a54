//! HTTP protocol rules that several layers share and that need no
//! connection, config or I/O: conditional-request evaluation (`cond`, used
//! by static files and by the cache's revalidation), head pieces (`head`:
//! reason phrases, a field line), the response head as a value (`reply`)
//! and the hop-by-hop
//! field list (the proxy's request and response, the cache's store). A leaf:
//! it uses only `util`.
pub mod cond;
pub mod h2;
pub mod head;
pub mod reply;

/// Hop-by-hop fields (RFC 9110 §7.6.1, plus `Keep-Alive` and the legacy
/// `Proxy-Connection`): never forwarded, relayed or stored. Each user adds
/// the fields it regenerates itself.
pub const HOP_BY_HOP: [&[u8]; 7] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
];

/// Whether `name` is a hop-by-hop field (case-insensitive).
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hop_by_hop_is_case_insensitive_and_exact() {
        assert!(super::is_hop_by_hop(b"Transfer-Encoding"));
        assert!(super::is_hop_by_hop(b"KEEP-ALIVE"));
        assert!(!super::is_hop_by_hop(b"transfer-encodings"));
        assert!(!super::is_hop_by_hop(b"content-length"));
    }
}
