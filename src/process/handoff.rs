//! The master -> worker handoff message: up to `MAX_FDS_PER_MSG` accepted
//! connections per sendmsg, their fds as SCM_RIGHTS and, in the payload, for
//! each fd the listen-table index and the peer address (so the worker needs
//! no getpeername(2)).
//!
//! Entry layout (21 bytes): listen index u16 LE, family u8 (4|6), port u16
//! LE, address 16 bytes (IPv4 in the first 4).

use crate::sys::MAX_FDS_PER_MSG;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const ENTRY: usize = 21;
/// Largest payload of one message.
pub const MAX_PAYLOAD: usize = ENTRY * MAX_FDS_PER_MSG;

/// What travels with each fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Listen-table index of the accepting socket.
    pub listen_idx: usize,
    /// Client address.
    pub peer: SocketAddr,
}

/// Append one entry.
pub fn encode(m: &Meta, out: &mut Vec<u8>) {
    out.extend_from_slice(&(m.listen_idx as u16).to_le_bytes());
    let mut addr = [0u8; 16];
    let family = match m.peer.ip() {
        IpAddr::V4(v4) => {
            addr[..4].copy_from_slice(&v4.octets());
            4
        }
        IpAddr::V6(v6) => {
            addr.copy_from_slice(&v6.octets());
            6
        }
    };
    out.push(family);
    out.extend_from_slice(&m.peer.port().to_le_bytes());
    out.extend_from_slice(&addr);
}

/// Decode every whole entry of a payload.
pub fn decode(buf: &[u8]) -> Vec<Meta> {
    buf.chunks_exact(ENTRY)
        .map(|e| {
            let listen_idx = u16::from_le_bytes([e[0], e[1]]) as usize;
            let port = u16::from_le_bytes([e[3], e[4]]);
            let ip = if e[2] == 6 {
                let mut a = [0u8; 16];
                a.copy_from_slice(&e[5..21]);
                IpAddr::V6(Ipv6Addr::from(a))
            } else {
                IpAddr::V4(Ipv4Addr::new(e[5], e[6], e[7], e[8]))
            };
            Meta {
                listen_idx,
                peer: SocketAddr::new(ip, port),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let metas = [
            Meta {
                listen_idx: 0,
                peer: "127.0.0.9:4242".parse().unwrap(),
            },
            Meta {
                listen_idx: 3,
                peer: "[2001:db8::1]:80".parse().unwrap(),
            },
        ];
        let mut buf = Vec::new();
        for m in &metas {
            encode(m, &mut buf);
        }
        assert_eq!(buf.len(), 2 * ENTRY);
        assert_eq!(decode(&buf), metas);
        // A torn trailing entry is ignored, never misread.
        assert_eq!(decode(&buf[..ENTRY + 5]), metas[..1]);
    }
}
