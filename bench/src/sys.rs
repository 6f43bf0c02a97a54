//! Operating-system helpers: raising RLIMIT_NOFILE and opening non-blocking client
//! sockets, optionally bound to a chosen loopback source address so that many
//! connections are not limited by one address's ephemeral port range.

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Raises the open-file limit as far as allowed (to the kernel's `nr_open` when
/// running as root, else to the hard limit). Returns the soft limit in force.
pub fn raise_nofile() -> u64 {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(hard)
        .min(1 << 20);
    if nr_open > hard && setrlimit(Resource::RLIMIT_NOFILE, nr_open, nr_open).is_ok() {
        return nr_open;
    }
    if hard > soft && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// Source addresses 127.0.0.1..=127.0.0.n for a loopback IPv4 target; empty
/// otherwise (the kernel picks the source).
pub fn loopback_sources(target: SocketAddr, n: u8) -> Vec<IpAddr> {
    match target {
        SocketAddr::V4(a) if a.ip().is_loopback() && n > 1 => (1..=n)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Starts a non-blocking connect to `addr`, from `source` if given. The connect
/// usually completes later: wait for writability, then call [`connect_result`].
pub fn start_connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<mio::net::TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    if let Some(ip) = source {
        // Let connect() pick the port from the full 4-tuple, not bind().
        let _ = nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::IpBindAddressNoPort,
            &true,
        );
        socket.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    }
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EINPROGRESS as i32) => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(socket.into()))
}

/// After a writable/error event on a connecting socket: `Ok(true)` connected,
/// `Ok(false)` still connecting, `Err` the connect failed.
pub fn connect_result(stream: &mio::net::TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_only_for_loopback_v4() {
        let lo: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(loopback_sources(lo, 3).len(), 3);
        assert!(loopback_sources(lo, 1).is_empty());
        let other: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert!(loopback_sources(other, 3).is_empty());
    }

    #[test]
    fn nofile_does_not_go_down() {
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert!(raise_nofile() >= soft);
    }
}
