//! Accepting connections, one copy for the master (handoff mode) and the
//! workers (reuseport mode): drain a listener until it would block; when
//! the process is out of file descriptors (EMFILE, ENFILE) pause every
//! accept for 100 ms instead of spinning on a readiness that cannot be
//! served (nginx's `ngx_event_accept` does the same).

use mio::net::{TcpListener, TcpStream};
use std::io::ErrorKind;
use std::net::SocketAddr;

/// How long accepting pauses after EMFILE/ENFILE.
pub const PAUSE_MS: u64 = 100;

/// The accept state of one process.
#[derive(Debug, Default)]
pub struct Acceptor {
    /// No accept before this (loop ms; 0 = not paused).
    pub paused_until_ms: u64,
}

/// Why a drain stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// The listener would block: nothing more now.
    Empty,
    /// The caller did not want more (`take` returned false).
    Full,
    /// Out of file descriptors: paused.
    Paused,
}

impl Acceptor {
    /// Whether accepting is paused at `now_ms` (clears an expired pause).
    pub fn paused(&mut self, now_ms: u64) -> bool {
        if now_ms < self.paused_until_ms {
            return true;
        }
        self.paused_until_ms = 0;
        false
    }

    /// Accept from `l` until it would block, handing each connection to
    /// `take`, which returns whether it wants another.
    pub fn drain(
        &mut self,
        l: &TcpListener,
        now_ms: u64,
        mut take: impl FnMut(TcpStream, SocketAddr) -> bool,
    ) -> Drained {
        loop {
            match l.accept() {
                Ok((s, peer)) => {
                    if !take(s, peer) {
                        return Drained::Full;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Drained::Empty,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                    log::error!("accept() failed: {e}; pausing accepts for {PAUSE_MS}ms");
                    self.paused_until_ms = now_ms + PAUSE_MS;
                    return Drained::Paused;
                }
                Err(_) => {} // ECONNABORTED and friends: the next one
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_until_would_block_and_stops_when_full() {
        let l = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut a = Acceptor::default();
        let mut got = 0;
        assert_eq!(
            a.drain(&l, 0, |_, _| {
                got += 1;
                got < 2
            }),
            Drained::Full
        );
        assert_eq!(
            a.drain(&l, 0, |_, _| {
                got += 1;
                true
            }),
            Drained::Empty
        );
        assert_eq!(got, 3);
        assert!(!a.paused(0));
        a.paused_until_ms = 100;
        assert!(a.paused(99) && !a.paused(100));
        drop(clients);
    }
}
