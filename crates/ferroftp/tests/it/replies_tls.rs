//! The RFC 4217 (FTPS) reply codes that a plain control connection can
//! provoke: 234, 504 for other AUTH mechanisms, 534 and 521 from the `[tls]`
//! policies. Codes that need a TLS handshake first (536, 522 for an
//! unresumed data session, 200 for PBSZ/PROT) are covered in `ftps.rs`.

use crate::common::TestServer;

#[test]
fn auth_tls_234_and_unknown_mechanism_504() {
    let server = TestServer::start(&["--tls-self-signed"]);
    let mut c = server.client();
    c.expect("AUTH KERBEROS_V4", 504);
    c.expect("AUTH TLS", 234);
    // The TLS handshake would follow; this client gives up instead.
    drop(c);
    let mut c = server.client();
    c.expect("AUTH SSL", 234);
    drop(c);
    // Neither abandoned handshake hurts the server.
    let mut c = server.login();
    c.expect("NOOP", 200);
}

#[test]
fn tls_required_for_login_534() {
    let server = TestServer::start_with_config("[tls]\nself_signed = true\nrequire_for_login = true\n", &[]);
    let mut c = server.client();
    let r = c.expect("USER user", 534);
    assert!(r.text.contains("AUTH TLS"), "{r:?}");
    c.expect("USER anonymous", 534);
    // The refused USER leaves no login in progress.
    c.expect("PASS 12345", 503);
    c.expect("PWD", 530);
    c.expect("AUTH TLS", 234);
}

#[test]
fn protected_data_required_521() {
    let server = TestServer::start_with_config("[tls]\nself_signed = true\nrequire_for_data = true\n", &[]);
    server.write("f", b"x");
    let mut c = server.login();
    // Without PROT P no transfer starts, whatever the direction.
    for line in ["LIST", "NLST", "MLSD", "RETR f", "STOR g", "APPE f", "STOU"] {
        let _data = c.epsv();
        c.expect(line, 521);
    }
    assert!(!server.path("g").exists());
    // With no data connection set up, 425 comes first.
    c.expect("REIN", 220);
    c.login("user", "12345");
    c.expect("RETR f", 425);
}
