//! More of TLS to upstreams: a client certificate for an origin that
//! requires one (`proxy_ssl_certificate`, `proxy_ssl_certificate_key`),
//! revocation lists (`proxy_ssl_crl`: a revoked origin certificate is
//! refused, 502), session resumption with `proxy_ssl_session_reuse` on and
//! not with it off (seen through the origin's `$ssl_session_reused`),
//! `proxy_ssl_ciphers` accepted, and the new directives' errors at `-t`.
//! The origins are second sluices with `listen ... ssl`.

mod common;

use common::*;

fn ssl(cert: &TestCert) -> String {
    format!(
        "ssl_certificate {}; ssl_certificate_key {};",
        cert.cert.display(),
        cert.key.display()
    )
}

/// An origin with `cert`, closing every connection after one response (so
/// every request is a new handshake), `/who` telling the client
/// certificate's check and subject and whether the session was resumed.
fn origin(cert: &TestCert, extra: &str) -> Server {
    Server::start(
        Conf::new()
            .workers(1)
            .listen_params("ssl")
            .server(&format!(
                "        {} {extra} keepalive_timeout 0;\n\
                 \x20       location = /who {{ return 200 \"$ssl_client_verify|$ssl_client_s_dn|$ssl_session_reused\"; }}",
                ssl(cert)
            )),
    )
}

#[test]
fn a_client_certificate_reaches_an_origin_that_requires_one_and_sessions_resume_only_with_reuse_on()
{
    let dir = TempDir::new("upmtls");
    let ca = make_ca(dir.path(), "ca");
    let origin_cert = make_cert(dir.path(), "origin", &["origin.test"]);
    let o = origin(
        &origin_cert,
        &format!(
            "ssl_client_certificate {}; ssl_verify_client on;",
            ca.cert.display()
        ),
    );
    let me = client_cert_files(&ca, dir.path(), "proxy", "proxy.test");
    let id = format!(
        "proxy_ssl_certificate {}; proxy_ssl_certificate_key {};",
        me.cert.display(),
        me.key.display()
    );
    let p = o.port;
    let px = Server::start(Conf::new().workers(1).server(&format!(
        "proxy_ssl_ciphers HIGH:!aNULL;\n\
         location /with/ {{ proxy_pass https://127.0.0.1:{p}/; {id} }}\n\
         location /without/ {{ proxy_pass https://127.0.0.1:{p}/; }}\n\
         location /noreuse/ {{ proxy_pass https://127.0.0.1:{p}/; {id} proxy_ssl_session_reuse off; }}"
    )));
    let r = px.get("/without/who");
    assert_eq!(r.status, 400, "no client certificate: {}", r.text());
    let r = px.get("/with/who");
    assert_eq!(
        (r.status, r.text()),
        (200, "SUCCESS|CN=proxy.test|.".to_string())
    );
    // Reuse on (the default): later connections resume.
    for _ in 0..3 {
        let r = px.get("/with/who");
        assert_eq!(
            (r.status, r.text()),
            (200, "SUCCESS|CN=proxy.test|r".to_string())
        );
    }
    // Off: every connection is a full handshake.
    for _ in 0..3 {
        let r = px.get("/noreuse/who");
        assert_eq!(
            (r.status, r.text()),
            (200, "SUCCESS|CN=proxy.test|.".to_string())
        );
    }
}

#[test]
fn an_origin_certificate_the_crl_revokes_is_refused_with_502() {
    let dir = TempDir::new("upcrl");
    let ca = make_ca(dir.path(), "ca");
    let revoked = server_cert_by(&ca, dir.path(), "revoked", &["origin.test"], 7);
    let good = server_cert_by(&ca, dir.path(), "good", &["origin.test"], 8);
    let crl = make_crl(&ca, dir.path(), "ca", &[7]);
    let (bad_o, good_o) = (origin(&revoked, ""), origin(&good, ""));
    let verify = format!(
        "proxy_ssl_verify on; proxy_ssl_name origin.test; proxy_ssl_trusted_certificate {};",
        ca.cert.display()
    );
    let px = Server::start(Conf::new().workers(1).server(&format!(
        "location /revoked/ {{ proxy_pass https://127.0.0.1:{b}/; {verify} proxy_ssl_crl {c}; }}\n\
         location /good/ {{ proxy_pass https://127.0.0.1:{g}/; {verify} proxy_ssl_crl {c}; }}\n\
         location /nocrl/ {{ proxy_pass https://127.0.0.1:{b}/; {verify} }}",
        b = bad_o.port,
        g = good_o.port,
        c = crl.display()
    )));
    assert_eq!(px.get("/good/who").status, 200);
    assert_eq!(px.get("/revoked/who").status, 502);
    // The same origin without the CRL is trusted: the CRL refused it.
    assert_eq!(px.get("/nocrl/who").status, 200);
    px.wait_log("upstream");
}

#[test]
fn upstream_certificate_and_crl_errors_fail_t_with_file_and_line() {
    let dir = TempDir::new("upcrl-t");
    let ca = make_ca(dir.path(), "ca");
    let me = client_cert_files(&ca, dir.path(), "me", "me.test");
    let run = |server: &str| test_config("upcert-t", "", server);
    let out = run(&format!(
        "    location / {{ proxy_pass https://127.0.0.1:1; }}\n    proxy_ssl_certificate {};",
        me.cert.display()
    ));
    assert_conf_error(&out, 10, "no \"proxy_ssl_certificate_key\" is defined");
    let out = run(&format!(
        "    location / {{ proxy_pass https://127.0.0.1:1; }}\n    proxy_ssl_certificate {}; proxy_ssl_certificate_key {};",
        me.cert.display(),
        ca.cert.display()
    ));
    assert_conf_error(&out, 10, "cannot load certificate key");
    let out = run(
        "    location / { proxy_pass https://127.0.0.1:1; }\n    proxy_ssl_crl /no/such/file.crl;",
    );
    assert_conf_error(&out, 10, "cannot load CRL");
    let out = run(&format!(
        "    location / {{ proxy_pass https://127.0.0.1:1; }}\n    proxy_ssl_crl {};",
        me.cert.display()
    ));
    assert_conf_error(&out, 10, "no CRL in the file");
}
