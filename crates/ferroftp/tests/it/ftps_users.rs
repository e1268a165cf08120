//! Per-user TLS rules and client-certificate login (issue: FTPS): a user's
//! own `require_tls_for_login` / `require_tls_for_data` tighten or relax
//! the server's `[tls]` policy, and a user whose entry lists a client
//! certificate's fingerprint logs in with it alone: `232` at USER (RFC
//! 2228, "authorized by security data exchange"), checked with Python's
//! ssl module and with curl `--cert`.

use crate::common::TestServer;
use crate::ftps::{curl, make_cert, openssl_fingerprint, python};
use crate::safety_util::{server_with_users, PASSWORD};

/// The server requires TLS for login and data; `legacy` is exempt from
/// both, so a device that cannot speak TLS still works, alone.
#[test]
fn a_user_can_be_exempt_from_the_servers_tls_policy() {
    let (server, _users) = server_with_users(
        &[
            (
                "legacy",
                &["--require-tls-for-login", "false", "--require-tls-for-data", "false"],
            ),
            ("normal", &[]),
        ],
        "[tls]\nself_signed = true\nrequire_for_login = true\nrequire_for_data = true\n",
    );
    server.write("f.txt", b"plain for legacy\n");
    let mut c = server.client();
    c.expect("USER normal", 534);
    c.expect("USER nobody", 534);
    c.expect("USER legacy", 331);
    c.expect(&format!("PASS {PASSWORD}"), 230);
    c.expect("TYPE I", 200);
    let (bytes, r) = c.fetch("RETR f.txt");
    assert_eq!((r.code, bytes.as_slice()), (226, &b"plain for legacy\n"[..]));
    c.expect("QUIT", 221);
}

/// The server allows plain FTP; `strict` must use TLS for login and PROT P
/// for data, while others still log in in plain.
#[test]
fn a_user_can_require_tls_where_the_server_does_not() {
    let (server, _users) = server_with_users(
        &[
            (
                "strict",
                &["--require-tls-for-login", "true", "--require-tls-for-data", "true"],
            ),
            ("other", &[]),
        ],
        "[tls]\nself_signed = true\n",
    );
    server.write("f.txt", b"protected\n");
    let mut c = server.client();
    c.expect("USER strict", 534);
    c.expect("USER other", 331);
    c.expect(&format!("PASS {PASSWORD}"), 230);
    let (_, r) = c.fetch("NLST");
    assert_eq!(r.code, 226, "plain data for a user without rules");
    let script = format!(
        r#"
c = Ctl(int(sys.argv[1]))
c.tls()
c.expect('USER strict', 331)
c.expect('PASS {PASSWORD}', 230)
c.expect('TYPE I', 200)
c.expect('PBSZ 0', 200)
c.expect('PROT C', 521)
s = c.epsv()
c.expect('RETR f.txt', 521)
s.close()
c.expect('PROT P', 200)
assert c.retr('f.txt') == b'protected\n'
print('OK')
"#
    );
    let out = python(&script, &[&server.port().to_string()]);
    assert!(out.contains("OK"), "{out}");
}

/// A client certificate listed in `certuser`'s entry logs certuser in at
/// USER with 232, no password; the same certificate does nothing for
/// another user (331, the password flow), and without a certificate
/// certuser needs the password like anyone.
#[test]
fn client_certificate_logs_its_user_in_with_232() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "client");
    let fp = openssl_fingerprint(&cert);
    let (server, _users) = server_with_users(
        &[
            ("certuser", &["--home", "/", "--client-certificate", &fp]),
            ("other", &[]),
        ],
        "[tls]\nself_signed = true\nclient_certificates = true\n",
    );
    server.write("f.txt", b"by certificate\n");
    let script = format!(
        r#"
cert, key = sys.argv[2], sys.argv[3]
ctx = insecure()
ctx.load_cert_chain(cert, key)
c = Ctl(int(sys.argv[1]), ctx=ctx)
c.tls()
r = c.expect('USER certuser', 232)
assert 'security data' in r[1], r
c.expect('PWD', 257)
c.expect('TYPE I', 200)
c.protect()
assert c.retr('f.txt') == b'by certificate\n'
# The certificate is not other's: the usual password login.
c.expect('USER other', 331)
c.expect('PASS {PASSWORD}', 230)
# Without a certificate, certuser needs the password.
n = Ctl(int(sys.argv[1]))
n.tls()
n.expect('USER certuser', 331)
n.expect('PASS wrong', 530)
n.expect('USER certuser', 331)
n.expect('PASS {PASSWORD}', 230)
# ftplib: login() sends USER only and takes the 232.
f = ftplib.FTP_TLS(context=ctx, timeout=20)
f.connect(HOST, int(sys.argv[1]))
f.auth()
assert f.login('certuser').startswith('232'), 'ftplib login'
# (no data connection: ftplib's do not resume the TLS session, which
# this server requires by default)
assert f.pwd() == '/'
f.quit()
print('OK')
"#
    );
    let out = python(
        &script,
        &[
            &server.port().to_string(),
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
        ],
    );
    assert!(out.contains("OK"), "{out}");

    // curl with the certificate and no password in the URL.
    let url = format!("ftp://certuser@127.0.0.1:{}/f.txt", server.port());
    let (body, _) = curl(&[
        "--ssl-reqd",
        "-k",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        &url,
    ]);
    assert_eq!(body, b"by certificate\n");
}

/// Without `tls.client_certificates` the server asks for no certificate,
/// so a listed one logs no one in.
#[test]
fn client_certificates_are_off_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "client");
    let fp = openssl_fingerprint(&cert);
    let (server, _users): (TestServer, _) = server_with_users(
        &[("certuser", &["--client-certificate", &fp])],
        "[tls]\nself_signed = true\n",
    );
    let script = r#"
ctx = insecure()
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
c = Ctl(int(sys.argv[1]), ctx=ctx)
c.tls()
c.expect('USER certuser', 331)
print('OK')
"#;
    let out = python(
        script,
        &[
            &server.port().to_string(),
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
        ],
    );
    assert!(out.contains("OK"), "{out}");
}
