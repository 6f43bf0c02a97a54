//! One TLS connection over a non-blocking socket, server side (a client
//! of ours) or client side (an upstream of the proxy). The connection's owner
//! reads and writes plaintext through [`Stream::read`] and [`Stream::write`]
//! as it would through the socket (`WouldBlock` included), and calls
//! [`Stream::flush`] before it considers its output written: records rustls
//! still holds go out there. A read fills the buffer as far as the socket
//! has data, so a short read still means the socket is drained (what an
//! edge-triggered loop relies on).
//!
//! On an address whose server blocks differ in handshake settings the
//! server side reads the ClientHello first (rustls's `Acceptor`) and goes on
//! with the configuration of the server its SNI names.

use super::client_auth::{ClientAuth, ClientVerify};
use super::server::{Handshaker, TlsAddress, VerifyClient};
use rustls::pki_types::ServerName;
use rustls::server::Acceptor;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConnection};
use std::io::{self, ErrorKind, Read, Write};
use std::sync::Arc;

/// The socket a stream runs over.
pub trait Socket: Read + Write {
    /// Look at the next bytes without taking them.
    fn peek(&self, buf: &mut [u8]) -> io::Result<usize>;
}

impl Socket for mio::net::TcpStream {
    fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        mio::net::TcpStream::peek(self, buf)
    }
}

/// What the handshake settled (for `$ssl_*` variables).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.3`, `TLSv1.2`.
    pub protocol: &'static str,
    /// The cipher suite, by its OpenSSL name.
    pub cipher: &'static str,
    /// The SNI name the client sent.
    pub server_name: Option<Box<str>>,
    /// The client certificate's check (`$ssl_client_verify`).
    pub client_verify: ClientVerify,
    /// The session was resumed (`$ssl_session_reused`).
    pub session_reused: bool,
    /// The client's leaf certificate, DER (`$ssl_client_s_dn`,
    /// `$ssl_client_fingerprint`).
    pub client_cert: Option<Arc<[u8]>>,
}

impl TlsInfo {
    /// Whether a request to a server with `ssl_verify_client mode` must be
    /// refused (400) for this connection's client certificate, and why (for
    /// the error log).
    pub fn refuses(&self, mode: VerifyClient) -> Option<&'static str> {
        match (mode, &self.client_verify) {
            (VerifyClient::On, ClientVerify::None) => {
                Some("client sent no required SSL certificate")
            }
            (VerifyClient::On | VerifyClient::Optional, ClientVerify::Failed(_)) => {
                Some("client SSL certificate verify error")
            }
            _ => None,
        }
    }
}

/// A TLS connection.
pub struct Stream {
    conn: Connection,
    /// Reading the ClientHello before `conn` is made (`None`: made).
    accepting: Option<Box<Accepting>>,
    client_auth: Option<(ClientAuth, VerifyClient)>,
    /// Server side and nothing read yet: the first bytes may be plain HTTP.
    first: bool,
    plain_http: bool,
}

/// Plaintext rustls may buffer for writing before `write` says WouldBlock.
const PLAINTEXT_LIMIT: usize = 256 * 1024;

/// The ClientHello being read, and the address that picks a configuration
/// by its SNI.
struct Accepting {
    acceptor: Acceptor,
    address: TlsAddress,
}

impl Stream {
    /// A new server connection on the TLS address `a`.
    pub fn new(a: &TlsAddress) -> io::Result<Stream> {
        if let Some(one) = a.single() {
            return Stream::server(one);
        }
        // Until the ClientHello is read, `conn` is a placeholder on the
        // default server's configuration (never read from or written to).
        let mut s = Stream::server(a.for_name(None))?;
        s.accepting = Some(Box::new(Accepting {
            acceptor: Acceptor::default(),
            address: a.clone(),
        }));
        Ok(s)
    }

    fn server(h: &Handshaker) -> io::Result<Stream> {
        let conn = ServerConnection::new(h.config.clone()).map_err(io::Error::other)?;
        let mut s = Stream::of(conn.into(), true);
        s.client_auth = h.client_auth.clone();
        Ok(s)
    }

    /// Read the ClientHello; when it is complete, make the connection the
    /// server its SNI names wants (its first flight queued). Ok(true): done.
    fn accept(&mut self, sock: &mut impl Socket) -> io::Result<bool> {
        let Some(a) = self.accepting.as_mut() else {
            return Ok(true);
        };
        loop {
            match a.acceptor.read_tls(sock) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let accepted = match a.acceptor.accept() {
                Ok(None) => continue,
                Ok(Some(accepted)) => accepted,
                Err((e, mut alert)) => {
                    let _ = alert.write_all(sock);
                    return Err(io::Error::new(ErrorKind::InvalidData, e));
                }
            };
            let h = a.address.for_name(accepted.client_hello().server_name());
            let (config, client_auth) = (h.config.clone(), h.client_auth.clone());
            let mut conn = match accepted.into_connection(config) {
                Ok(c) => c,
                Err((e, mut alert)) => {
                    let _ = alert.write_all(sock);
                    return Err(io::Error::new(ErrorKind::InvalidData, e));
                }
            };
            conn.set_buffer_limit(Some(PLAINTEXT_LIMIT));
            self.conn = conn.into();
            self.client_auth = client_auth;
            self.accepting = None;
            return Ok(true);
        }
    }

    /// A new client connection to `name` under `cfg` (its first flight is
    /// queued: [`Stream::handshake`] sends it).
    pub fn client(cfg: &Arc<ClientConfig>, name: ServerName<'static>) -> io::Result<Stream> {
        let conn = ClientConnection::new(cfg.clone(), name).map_err(io::Error::other)?;
        Ok(Stream::of(conn.into(), false))
    }

    fn of(mut conn: Connection, server: bool) -> Stream {
        conn.set_buffer_limit(Some(PLAINTEXT_LIMIT));
        Stream {
            conn,
            accepting: None,
            client_auth: None,
            first: server,
            plain_http: false,
        }
    }

    /// Drive the handshake as far as the socket allows. Ok(true): done (and
    /// its last flight written or queued); Ok(false): waiting for the
    /// socket; an error is the peer's refusal, ours (the certificate did not
    /// verify: the alert is sent first), or the socket's.
    pub fn handshake(&mut self, sock: &mut impl Socket) -> io::Result<bool> {
        if self.accepting.is_some() {
            match self.accept(sock) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        loop {
            let flushed = self.flush(sock)?;
            if !self.conn.is_handshaking() {
                return Ok(true);
            }
            if !flushed && !self.conn.wants_read() {
                return Ok(false);
            }
            match self.conn.read_tls(sock) {
                Ok(0) => {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "peer closed the connection during the handshake",
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if let Err(e) = self.conn.process_new_packets() {
                let _ = self.flush(sock);
                return Err(io::Error::new(ErrorKind::InvalidData, e));
            }
        }
    }

    /// The client spoke plain HTTP to this TLS port (after a read failed):
    /// the owner answers nginx's 400 in plain text and closes.
    pub fn plain_http(&self) -> bool {
        self.plain_http
    }

    /// Still handshaking.
    pub fn is_handshaking(&self) -> bool {
        self.accepting.is_some() || self.conn.is_handshaking()
    }

    /// Read plaintext into `buf` (not empty). Ok(0): the client closed.
    pub fn read(&mut self, sock: &mut impl Socket, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        loop {
            match self.conn.reader().read(&mut buf[filled..]) {
                Ok(0) => return Ok(filled),
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        return Ok(filled);
                    }
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if filled > 0 => {
                    log::debug!("tls read: {e}");
                    return Ok(filled);
                }
                Err(e) => return Err(e),
            }
            if self.first {
                let mut b = [0u8; 1];
                match sock.peek(&mut b) {
                    Ok(1) if b[0].is_ascii_uppercase() => {
                        self.plain_http = true;
                        return Err(io::Error::new(ErrorKind::InvalidData, "plain HTTP"));
                    }
                    Ok(_) => self.first = false,
                    Err(e) => return Err(e),
                }
            }
            if self.accepting.is_some() {
                // The ClientHello, then the server's first flight.
                self.accept(sock)?;
                self.flush(sock)?;
                continue;
            }
            match self.conn.read_tls(sock) {
                Ok(0) => return Ok(filled),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock && filled > 0 => return Ok(filled),
                Err(e) => return Err(e),
            }
            if let Err(e) = self.conn.process_new_packets() {
                // The alert is queued: send what can be sent, then fail.
                let _ = self.flush(sock);
                return Err(io::Error::new(ErrorKind::InvalidData, e));
            }
            // Handshake replies (and tickets): out now if the socket takes
            // them, else with the next flush.
            match self.flush(sock) {
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Take plaintext from `buf` for sending; `WouldBlock` when rustls holds
    /// as much as it may and the socket takes nothing.
    pub fn write(&mut self, sock: &mut impl Socket, buf: &[u8]) -> io::Result<usize> {
        if self.accepting.is_some() {
            return Err(ErrorKind::WouldBlock.into());
        }
        let mut n = self.conn.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            if !self.flush(sock)? {
                return Err(ErrorKind::WouldBlock.into());
            }
            n = self.conn.writer().write(buf)?;
        }
        self.flush(sock)?;
        if n == 0 && !buf.is_empty() {
            return Err(ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Send the records rustls holds. Ok(true): all sent.
    pub fn flush(&mut self, sock: &mut impl Socket) -> io::Result<bool> {
        if self.accepting.is_some() {
            return Ok(true);
        }
        while self.conn.wants_write() {
            match self.conn.write_tls(sock) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Whether records wait to be sent.
    pub fn wants_write(&self) -> bool {
        self.accepting.is_none() && self.conn.wants_write()
    }

    /// Queue a `close_notify` alert (sent by the next flush).
    pub fn close(&mut self) {
        if self.accepting.is_none() {
            self.conn.send_close_notify();
        }
    }

    /// Whether ALPN chose HTTP/2.
    pub fn alpn_is_h2(&self) -> bool {
        self.conn.alpn_protocol() == Some(b"h2")
    }

    /// Whether the handshake resumed a session.
    pub fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// The handshake's results (`None` while handshaking).
    pub fn info(&self) -> Option<TlsInfo> {
        if self.is_handshaking() {
            return None;
        }
        Some(TlsInfo {
            protocol: match self.conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "",
            },
            cipher: self
                .conn
                .negotiated_cipher_suite()
                .map_or("", |s| openssl_name(s.suite())),
            server_name: match &self.conn {
                Connection::Server(c) => c.server_name().map(Into::into),
                Connection::Client(_) => None,
            },
            client_verify: match &self.client_auth {
                Some((auth, _)) => auth.check(self.conn.peer_certificates()),
                None => ClientVerify::None,
            },
            session_reused: self.resumed(),
            client_cert: match (&self.conn, &self.client_auth) {
                (Connection::Server(c), Some(_)) => c
                    .peer_certificates()
                    .and_then(|p| p.first())
                    .map(|c| c.as_ref().into()),
                _ => None,
            },
        })
    }
}

/// Whether a handshake error is the peer's certificate failing verification
/// (expired, untrusted, for another name...).
pub fn is_certificate_error(e: &io::Error) -> bool {
    matches!(
        e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(_))
    )
}

/// nginx reports OpenSSL's names for suites (`$ssl_cipher`).
fn openssl_name(s: rustls::CipherSuite) -> &'static str {
    use rustls::CipherSuite as C;
    match s {
        C::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        C::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        C::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => "",
    }
}
