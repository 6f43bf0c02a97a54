//! Handshake settings per server block on one TLS address: the ClientHello's
//! SNI picks the server, and with it `ssl_verify_client`,
//! `ssl_client_certificate` and `ssl_protocols` (mTLS on one name and not on
//! another, on one port); a Host other than the SNI name on a server that
//! checks client certificates gets nginx's 421; sessions resume across the
//! servers' configurations; `$ssl_session_reused`, `$ssl_client_s_dn` and
//! `$ssl_client_fingerprint`.

mod common;

use common::*;
use std::sync::Arc;

const V12: &rustls::SupportedProtocolVersion = &rustls::version::TLS12;
const V13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

fn ssl(cert: &TestCert) -> String {
    format!(
        "ssl_certificate {}; ssl_certificate_key {};",
        cert.cert.display(),
        cert.key.display()
    )
}

/// a.test (the default server: no client certificates, TLS 1.2 and 1.3)
/// and b.test (client certificates from `ca` required, TLS 1.3 only) on
/// one port.
fn mixed(dir: &TempDir) -> (Server, TestCert, TestCert, TestCa) {
    let a = make_cert(dir.path(), "a", &["a.test"]);
    let b = make_cert(dir.path(), "b", &["b.test"]);
    let ca = make_ca(dir.path(), "ca");
    let s = Server::start(
        Conf::new()
            .workers(2)
            .listen_params("ssl default_server")
            .http(&format!(
                "    server {{ listen 127.0.0.1:@PORT@ ssl; server_name b.test; {} \
                 ssl_protocols TLSv1.3; ssl_client_certificate {}; ssl_verify_client on; \
                 location / {{ return 200 \"b|$ssl_client_verify|$ssl_client_s_dn|$ssl_client_fingerprint|$ssl_protocol\"; }} }}",
                ssl(&b),
                ca.cert.display()
            ))
            .server(&format!(
                "        server_name a.test; {}\n\
                 \x20       location = /who {{ return 200 \"a|$ssl_client_verify|$ssl_session_reused|$ssl_protocol\"; }}",
                ssl(&a)
            )),
    );
    (s, a, b, ca)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn one_port_two_names_client_certificates_required_on_one_only() {
    let dir = TempDir::new("sni-mtls");
    let (s, a, b, ca) = mixed(&dir);
    let anonymous = client_config(&[&a.der, &b.der], &[]);
    let identity = client_identity(&ca, "alice");
    let leaf = identity.0[0].clone();
    let alice = client_config_with_identity(&[&a.der, &b.der], identity);
    let get = |sni: &str, host: &str, cfg: &Arc<rustls::ClientConfig>| {
        let mut c = TlsClient::connect(s.port, sni, cfg).expect("handshake");
        let r = c
            .get(if sni == "a.test" { "/who" } else { "/" }, host)
            .unwrap();
        (r.status, r.text())
    };
    // a.test asks for no certificate: even a client holding one sends none.
    let (st, text) = get("a.test", "a.test", &anonymous);
    assert_eq!((st, text.as_str()), (200, "a|NONE|.|TLSv1.3"));
    assert_eq!(get("a.test", "a.test", &alice).1, "a|NONE|.|TLSv1.3");
    // b.test requires one: none is 400, alice's passes, with her subject
    // and fingerprint.
    assert_eq!(get("b.test", "b.test", &anonymous).0, 400);
    let (st, text) = get("b.test", "b.test", &alice);
    assert_eq!(st, 200, "{text}");
    let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &leaf);
    assert_eq!(
        text,
        format!("b|SUCCESS|CN=alice|{}|TLSv1.3", hex(sha1.as_ref()))
    );
    // The certificate picked is each name's own.
    let c = TlsClient::connect(s.port, "b.test", &alice).unwrap();
    assert_eq!(c.peer_cert().as_ref(), Some(&b.der));
    // Per-server protocols: TLS 1.2 is a.test's, not b.test's.
    let only12 = client_config(&[&a.der, &b.der], &[V12]);
    let mut c = TlsClient::connect(s.port, "a.test", &only12).expect("TLS 1.2 to a.test");
    assert_eq!(c.get("/who", "a.test").unwrap().text(), "a|NONE|.|TLSv1.2");
    assert!(
        TlsClient::connect(s.port, "b.test", &only12).is_err(),
        "TLS 1.2 to b.test (ssl_protocols TLSv1.3) was accepted"
    );
    // A handshake for a.test cannot reach b.test by its Host: 421.
    assert_eq!(get("a.test", "b.test", &anonymous).0, 421);
    s.wait_log("different from the one that was negotiated");
    // An unknown name gets the default server (no certificate asked).
    assert_eq!(get("a.test", "c.test", &anonymous).0, 200);
}

#[test]
fn sessions_resume_on_an_address_with_several_configurations() {
    let dir = TempDir::new("sni-resume");
    let (s, a, b, ca) = mixed(&dir);
    for v in [V13, V12] {
        let cfg = client_config(&[&a.der], &[v]);
        let mut first = TlsClient::connect(s.port, "a.test", &cfg).unwrap();
        let t = first.get("/who", "a.test").unwrap().text();
        assert!(t.starts_with("a|NONE|.|"), "{t}");
        drop(first);
        // Both workers (round robin), each resuming.
        for _ in 0..3 {
            let mut c = TlsClient::connect(s.port, "a.test", &cfg).unwrap();
            let t = c.get("/who", "a.test").unwrap().text();
            assert!(c.resumed(), "not resumed: {t}");
            assert!(t.starts_with("a|NONE|r|"), "{t}");
        }
    }
    // A resumed session on b.test still carries the client certificate.
    let alice = client_config_with_identity(&[&b.der], client_identity(&ca, "alice"));
    for i in 0..3 {
        let mut c = TlsClient::connect(s.port, "b.test", &alice).unwrap();
        let r = c.get("/", "b.test").unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().starts_with("b|SUCCESS|CN=alice|"), "{}", r.text());
        assert_eq!(c.resumed(), i > 0);
    }
}
