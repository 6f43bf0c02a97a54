//! Listening sockets owned by the master: bound with socket2, kept open
//! across reloads when the address stays, bound anew for new addresses and
//! closed for removed ones.
//!
//! An address is either *shared* (one socket the master accepts on and hands
//! connections off from) or *per worker* (one SO_REUSEPORT socket per worker
//! slot, inherited by the worker of that slot, which accepts on it itself).

use crate::config::AcceptMode;
use crate::http::site::ListenEntry;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener};

/// Sockets of one address.
pub struct Bound {
    /// Address.
    pub addr: SocketAddr,
    /// The master's accept socket (shared mode).
    pub shared: Option<TcpListener>,
    /// One socket per worker slot (per-worker mode).
    pub per_worker: Vec<TcpListener>,
}

/// All listening sockets.
#[derive(Default)]
pub struct Listeners {
    /// In the order of the current config's listen table.
    pub bound: Vec<Bound>,
}

/// Bind one listening socket.
pub fn bind(addr: SocketAddr, backlog: i32, reuseport: bool) -> io::Result<TcpListener> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::STREAM.cloexec(), Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if reuseport {
        s.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_tcp_nodelay(true)?; // inherited by accepted sockets
    s.set_nonblocking(true)?;
    s.bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind() to {addr} failed ({e})")))?;
    s.listen(backlog)
        .map_err(|e| io::Error::new(e.kind(), format!("listen() to {addr} failed ({e})")))?;
    Ok(s.into())
}

/// Whether an address gets per-worker sockets.
pub fn per_worker(entry: &ListenEntry, mode: AcceptMode) -> bool {
    mode == AcceptMode::Reuseport || entry.conf.reuseport
}

impl Listeners {
    /// Make the sockets match `table` (same order). Everything new is bound
    /// first; only when every bind succeeded are removed addresses closed, so
    /// a failed reload leaves the running set untouched.
    pub fn update(
        &mut self,
        table: &[ListenEntry],
        mode: AcceptMode,
        workers: usize,
    ) -> io::Result<()> {
        // Phase 1: bind new addresses and extra per-worker sockets.
        let mut fresh: Vec<Vec<TcpListener>> = Vec::with_capacity(table.len());
        for e in table {
            let pw = per_worker(e, mode);
            let need = match self.bound.iter().find(|b| b.addr == e.conf.addr) {
                Some(b) if pw == b.shared.is_none() => {
                    if pw {
                        workers.saturating_sub(b.per_worker.len())
                    } else {
                        0
                    }
                }
                // Kind changed: rebound in phase 2, after the old socket closes.
                Some(_) => 0,
                None if pw => workers,
                None => 1,
            };
            let mut socks = Vec::with_capacity(need);
            for _ in 0..need {
                socks.push(bind(e.conf.addr, e.conf.backlog, pw)?);
            }
            fresh.push(socks);
        }
        // Phase 2: assemble the new set in table order; drop the rest.
        let mut old: Vec<Option<Bound>> = self.bound.drain(..).map(Some).collect();
        for (e, mut socks) in table.iter().zip(fresh) {
            let pw = per_worker(e, mode);
            let prev = old
                .iter_mut()
                .find(|b| b.as_ref().is_some_and(|b| b.addr == e.conf.addr))
                .and_then(Option::take);
            let mut b = match prev {
                Some(b) if pw == b.shared.is_none() => b,
                other => {
                    drop(other);
                    Bound {
                        addr: e.conf.addr,
                        shared: None,
                        per_worker: Vec::new(),
                    }
                }
            };
            if pw {
                b.per_worker.append(&mut socks);
                while b.per_worker.len() < workers {
                    match bind(e.conf.addr, e.conf.backlog, true) {
                        Ok(s) => b.per_worker.push(s),
                        Err(err) => {
                            log::error!("{err}");
                            break;
                        }
                    }
                }
                b.per_worker.truncate(workers);
            } else if b.shared.is_none() {
                b.shared = match socks.pop() {
                    Some(s) => Some(s),
                    None => match bind(e.conf.addr, e.conf.backlog, false) {
                        Ok(s) => Some(s),
                        Err(err) => {
                            log::error!("{err}");
                            None
                        }
                    },
                };
            }
            self.bound.push(b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ListenConf;

    fn entry(addr: SocketAddr) -> ListenEntry {
        ListenEntry {
            conf: ListenConf {
                addr,
                default_server: false,
                reuseport: false,
                backlog: 128,
                ssl: false,
                http2: false,
            },
            servers: vec![0],
            default: 0,
            tls: None,
        }
    }

    #[test]
    fn kept_address_keeps_its_socket() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let real = probe.local_addr().unwrap();
        drop(probe);
        let mut l = Listeners::default();
        let a = entry(real);
        l.update(std::slice::from_ref(&a), AcceptMode::Handoff, 2)
            .unwrap();
        let first = l.bound[0].shared.as_ref().unwrap().local_addr().unwrap();
        assert_eq!(first, real);
        l.update(std::slice::from_ref(&a), AcceptMode::Handoff, 2)
            .unwrap();
        let again = l.bound[0].shared.as_ref().unwrap().local_addr().unwrap();
        assert_eq!(real, again);
        // Another socket cannot take the address while we hold it.
        assert!(bind(real, 16, false).is_err());
    }

    #[test]
    fn reuseport_mode_binds_one_per_worker() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let mut l = Listeners::default();
        l.update(&[entry(addr)], AcceptMode::Reuseport, 3).unwrap();
        assert_eq!(l.bound[0].per_worker.len(), 3);
        assert!(l.bound[0].shared.is_none());
    }

    #[test]
    fn failed_bind_leaves_running_set_untouched() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = probe.local_addr().unwrap();
        drop(probe);
        let mut l = Listeners::default();
        l.update(&[entry(a)], AcceptMode::Handoff, 1).unwrap();
        // A second address that someone else holds: the reload must fail...
        let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = squatter.local_addr().unwrap();
        assert!(l
            .update(&[entry(a), entry(b)], AcceptMode::Handoff, 1)
            .is_err());
        // ...and the old socket is still there, still ours.
        assert_eq!(l.bound.len(), 1);
        assert_eq!(l.bound[0].shared.as_ref().unwrap().local_addr().unwrap(), a);
        // Removing an address closes it.
        l.update(&[], AcceptMode::Handoff, 1).unwrap();
        assert!(bind(a, 16, false).is_ok());
    }
}
