//! What the integration tests share: tiny HTTP/1.1 servers on 127.0.0.1:0 (plain,
//! or TLS with rustls and a certificate made at test time), running the real
//! `sluice-bench` binary, and checking that its counts add up.

#![allow(dead_code)] // each test file uses its own part

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{HandshakeKind, ServerConfig, ServerConnection, StreamOwned};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;

/// Request lines seen by a server.
pub type Seen = Arc<Mutex<Vec<String>>>;

/// A keep-alive HTTP/1.1 server answering every request with `status` and a
/// 5-byte body; honours pipelining and `Connection: close`. Records every
/// request line.
pub fn recording_server(status: u16) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let lines = seen.clone();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let lines = lines.clone();
            thread::spawn(move || serve(&mut stream, status, &lines));
        }
    });
    (format!("http://{addr}/"), seen)
}

/// Answers requests on `stream` until the client closes or asks to.
pub fn serve(stream: &mut (impl Read + Write), status: u16, seen: &Mutex<Vec<String>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut out = Vec::new();
        let mut close = false;
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            buf.drain(..end + 4);
            let line = head.lines().next().unwrap_or("").to_string();
            seen.lock().unwrap().push(line);
            let head = head.to_ascii_lowercase();
            close = head.contains("connection: close");
            let conn = if close { "Connection: close\r\n" } else { "" };
            out.extend_from_slice(
                format!("HTTP/1.1 {status} X\r\nContent-Length: 5\r\n{conn}\r\nhello").as_bytes(),
            );
            if close {
                break;
            }
        }
        if stream.write_all(&out).is_err() || stream.flush().is_err() || close {
            return;
        }
    }
}

/// A self-signed ECDSA P-256 certificate for `name`: (PEM, DER, PKCS#8 key).
pub fn make_cert(name: &str) -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
    let key = PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()).into();
    (ck.cert.pem(), ck.cert.der().clone(), key)
}

/// What a TLS server saw, by connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Handshakes {
    /// Connections accepted.
    pub conns: u64,
    /// Full handshakes completed.
    pub full: u64,
    /// Resumed handshakes completed.
    pub resumed: u64,
}

/// A TLS server (rustls, TLS 1.3 and 1.2, session resumption on) for the name
/// `bench.test`, answering like [`recording_server`].
pub struct TlsServer {
    /// `https://127.0.0.1:PORT/`
    pub url: String,
    /// The server's certificate, PEM.
    pub cert_pem: String,
    /// Request lines seen.
    pub seen: Seen,
    /// Handshakes seen.
    pub handshakes: Arc<Mutex<Handshakes>>,
}

pub fn tls_server(status: u16) -> TlsServer {
    let (cert_pem, der, key) = make_cert("bench.test");
    let config = Arc::new(
        ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![der], key)
            .expect("server config"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let handshakes = Arc::new(Mutex::new(Handshakes::default()));
    let (lines, counts) = (seen.clone(), handshakes.clone());
    thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (lines, counts, config) = (lines.clone(), counts.clone(), config.clone());
            counts.lock().unwrap().conns += 1;
            thread::spawn(move || serve_tls(tcp, config, status, &lines, &counts));
        }
    });
    TlsServer {
        url: format!("https://{addr}/"),
        cert_pem,
        seen,
        handshakes,
    }
}

fn serve_tls(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    status: u16,
    seen: &Mutex<Vec<String>>,
    counts: &Mutex<Handshakes>,
) {
    let conn = ServerConnection::new(config).expect("server connection");
    let mut tls = StreamOwned::new(conn, tcp);
    serve(&mut tls, status, seen);
    if !tls.conn.is_handshaking() {
        let mut c = counts.lock().unwrap();
        match tls.conn.handshake_kind() {
            Some(HandshakeKind::Resumed) => c.resumed += 1,
            _ => c.full += 1,
        }
        tls.conn.send_close_notify();
        let _ = tls.flush();
    }
}

/// Runs `sluice-bench --json ARGS` and returns its JSON.
pub fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// An unsigned number from the JSON.
pub fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// sent = ok + every error kind, and the error total agrees.
pub fn assert_adds_up(v: &Value) {
    let errors: u64 = v["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| e.as_u64().unwrap())
        .sum();
    assert_eq!(n(v, "sent"), n(v, "ok") + errors, "{v}");
    assert_eq!(n(v, "error_total"), errors, "{v}");
    assert_eq!(n(v, "non2xx"), n(&v["errors"], "status"), "{v}");
}
