//! A client connection's byte stream: the non-blocking socket itself, or TLS
//! over it. Both read and write like the socket (`WouldBlock` included), so
//! the load loops drive either the same way; [`Stream::flush`] sends what TLS
//! still holds (handshake records, or records the socket did not take).
//!
//! A TLS read fills the buffer as far as the socket has data, so a short read
//! still means the socket is drained, as an edge-triggered loop needs. A
//! failed handshake (or a bad record) is an `InvalidData` error, which
//! [`read_error`] tells apart from a socket's own errors. The plain path adds
//! one branch per call and nothing else.

use crate::stats::{ErrorKind, Stats};
use crate::tls;
use mio::net::TcpStream;
use rustls::ClientConnection;
use std::io::{self, Read, Write};

/// How a completed TLS handshake went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// A full handshake (with or without a HelloRetryRequest).
    Full,
    /// A resumed session.
    Resumed,
}

/// One connection's bytes.
pub struct Stream {
    sock: TcpStream,
    tls: Option<Box<ClientConnection>>,
}

impl Stream {
    /// A plain stream over `sock` (still connecting, usually).
    pub fn new(sock: TcpStream) -> Stream {
        Stream { sock, tls: None }
    }

    /// Once connected: start TLS for `target` (the ClientHello goes out with
    /// the next flush, or read, or write).
    pub fn start_tls(&mut self, target: &tls::Target) -> io::Result<()> {
        let conn = ClientConnection::new(target.config.clone(), target.name.clone())
            .map_err(io::Error::other)?;
        self.tls = Some(Box::new(conn));
        Ok(())
    }

    /// The socket (to register, or to ask whether the connect completed).
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    /// Reads plaintext into `buf` (not empty); Ok(0) at end of stream.
    #[inline]
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            None => self.sock.read(buf),
            Some(conn) => tls_read(conn, &mut self.sock, buf),
        }
    }

    /// Takes plaintext from `buf` to send; never Ok(0) for a non-empty `buf`
    /// on TLS (`WouldBlock` instead).
    #[inline]
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.tls {
            None => self.sock.write(buf),
            Some(conn) => tls_write(conn, &mut self.sock, buf),
        }
    }

    /// Sends the records TLS holds. Ok(true): nothing left.
    #[inline]
    pub fn flush(&mut self) -> io::Result<bool> {
        match &mut self.tls {
            None => Ok(true),
            Some(conn) => tls_flush(conn, &mut self.sock),
        }
    }

    /// Records wait for the socket to take them.
    #[inline]
    pub fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|c| c.wants_write())
    }

    /// The completed handshake's kind (`None`: plain, or not completed).
    pub fn handshake(&self) -> Option<Handshake> {
        let conn = self.tls.as_ref()?;
        if conn.is_handshaking() {
            return None;
        }
        Some(match conn.handshake_kind() {
            Some(rustls::HandshakeKind::Resumed) => Handshake::Resumed,
            _ => Handshake::Full,
        })
    }
}

/// The error kind of a failed read: `tls` for a failed handshake or record
/// (the run's first such error is kept in `stats` to be shown).
pub fn read_error(e: &io::Error, stats: &mut Stats) -> ErrorKind {
    if e.kind() != io::ErrorKind::InvalidData {
        return ErrorKind::Read;
    }
    if stats.first_tls_error.is_none() {
        stats.first_tls_error = Some(e.to_string());
    }
    ErrorKind::Tls
}

fn tls_read(
    conn: &mut ClientConnection,
    sock: &mut TcpStream,
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut filled = 0;
    loop {
        match conn.reader().read(&mut buf[filled..]) {
            // close_notify: the end, after what was read.
            Ok(0) => return Ok(filled),
            Ok(n) => {
                filled += n;
                if filled == buf.len() {
                    return Ok(filled);
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // (A close without close_notify shows on the next call.)
            Err(_) if filled > 0 => return Ok(filled),
            Err(e) => return Err(e),
        }
        match conn.read_tls(sock) {
            Ok(0) => return Ok(filled),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && filled > 0 => return Ok(filled),
            Err(e) => return Err(e),
        }
        if let Err(e) = conn.process_new_packets() {
            // Send the alert rustls queued if the socket takes it, then fail.
            let _ = tls_flush(conn, sock);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        // Handshake replies now, or with the next flush.
        tls_flush(conn, sock)?;
    }
}

fn tls_write(conn: &mut ClientConnection, sock: &mut TcpStream, buf: &[u8]) -> io::Result<usize> {
    let mut n = conn.writer().write(buf)?;
    if n == 0 && !buf.is_empty() {
        if !tls_flush(conn, sock)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        n = conn.writer().write(buf)?;
    }
    tls_flush(conn, sock)?;
    if n == 0 && !buf.is_empty() {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok(n)
}

fn tls_flush(conn: &mut ClientConnection, sock: &mut TcpStream) -> io::Result<bool> {
    while conn.wants_write() {
        match conn.write_tls(sock) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
