//! Typed poll tokens: what a readiness event is for, as an enum, encoded in
//! mio's `usize` (kind in the top byte, index below) instead of number
//! ranges (`LISTENER_BASE`, `CONN_BASE`, `UPSTREAM_BASE`) every loop
//! compared by hand.

use mio::Token;

/// What a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok {
    /// The signal pipe.
    Signals,
    /// A worker's channel from the master (connection handoff).
    Channel,
    /// The I/O pool's waker: file reads finished.
    IoDone,
    /// Listening socket `i` (an index into the process's listener list).
    Listener(usize),
    /// Client connection `i` (a slab key).
    Conn(usize),
    /// Upstream socket of proxy session `i` (a slab key).
    Upstream(usize),
    /// The master's channel to worker `i` (a slab key).
    Worker(usize),
}

const KIND_SHIFT: u32 = usize::BITS - 8;
const INDEX_MASK: usize = (1 << KIND_SHIFT) - 1;

impl Tok {
    /// The mio token.
    pub fn token(self) -> Token {
        let (kind, i) = match self {
            Tok::Signals => (0, 0),
            Tok::Channel => (1, 0),
            Tok::IoDone => (2, 0),
            Tok::Listener(i) => (3, i),
            Tok::Conn(i) => (4, i),
            Tok::Upstream(i) => (5, i),
            Tok::Worker(i) => (6, i),
        };
        debug_assert!(i <= INDEX_MASK);
        Token(kind << KIND_SHIFT | (i & INDEX_MASK))
    }

    /// The token's meaning (`None`: not one of ours).
    pub fn of(t: Token) -> Option<Tok> {
        let i = t.0 & INDEX_MASK;
        Some(match t.0 >> KIND_SHIFT {
            0 => Tok::Signals,
            1 => Tok::Channel,
            2 => Tok::IoDone,
            3 => Tok::Listener(i),
            4 => Tok::Conn(i),
            5 => Tok::Upstream(i),
            6 => Tok::Worker(i),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_with_large_indices() {
        for t in [
            Tok::Signals,
            Tok::Channel,
            Tok::IoDone,
            Tok::Listener(0),
            Tok::Listener(15),
            Tok::Conn(0),
            Tok::Conn(1 << 40),
            Tok::Upstream(123_456),
            Tok::Worker(3),
        ] {
            assert_eq!(Tok::of(t.token()), Some(t), "{t:?}");
        }
        assert_ne!(Tok::Conn(5).token(), Tok::Upstream(5).token());
        assert_eq!(Tok::of(Token(usize::MAX)), None);
    }
}
