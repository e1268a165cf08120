//! Reply codes of the login sequence (RFC 959 §4.1.1, §5.4), REIN, QUIT and
//! HOST (RFC 7151): 220, 221, 230, 331, 332, 202, 430, 434, 503, 504, 530,
//! 532.

use crate::common::{TestServer, PASS, USER};
use crate::replies_util::{server_with_account, ACCOUNT, ACCT_PASS, ACCT_USER};

#[test]
fn greeting_220() {
    let server = TestServer::start(&[]);
    let c = server.client();
    assert_eq!(c.greeting.code, 220, "{:?}", c.greeting);
}

#[test]
fn user_331_then_pass_230() {
    let server = TestServer::start(&[]);
    let mut c = server.client();
    c.expect(&format!("USER {USER}"), 331);
    c.expect(&format!("PASS {PASS}"), 230);
    // Anonymous login (enabled with --anonymous) takes the same path.
    let mut a = server.client();
    a.expect("USER anonymous", 331);
    a.expect("PASS guest@example.com", 230);
}

#[test]
fn bad_password_530() {
    let server = TestServer::start(&[]);
    let mut c = server.client();
    c.expect(&format!("USER {USER}"), 331);
    c.expect("PASS wrong", 530);
    // An unknown name is refused the same way, after its 331.
    c.expect("USER nobody", 331);
    c.expect("PASS wrong", 530);
    // The failed login leaves the session logged out.
    c.expect("PWD", 530);
}

#[test]
fn commands_before_login_530() {
    let server = TestServer::start(&[]);
    let mut c = server.client();
    for line in [
        "PWD", "CWD /", "LIST", "RETR x", "STOR x", "MKD d", "EPSV", "PASV", "TYPE I", "SIZE x", "MLST",
    ] {
        c.expect(line, 530);
    }
    // A command that needs a login gets 530 even when its argument is
    // missing: the login rule is checked before the syntax.
    c.expect("RETR", 530);
    c.expect("PORT 1,2,3", 530);
}

#[test]
fn pass_without_user_503() {
    let server = TestServer::start(&[]);
    let mut c = server.client();
    c.expect("PASS 12345", 503);
    // A failed login starts over: PASS again without USER is out of
    // sequence too.
    c.expect(&format!("USER {USER}"), 331);
    c.expect("PASS wrong", 530);
    c.expect("PASS 12345", 503);
}

#[test]
fn rnto_without_rnfr_503() {
    let server = TestServer::start(&[]);
    server.write("a", b"x");
    let mut c = server.login();
    c.expect("RNTO b", 503);
    // RNTO must follow RNFR directly: any command in between cancels it.
    c.expect("RNFR a", 350);
    c.expect("NOOP", 200);
    c.expect("RNTO b", 503);
    assert!(server.path("a").exists() && !server.path("b").exists());
}

#[test]
fn acct_before_login_503() {
    let server = TestServer::start(&[]);
    let mut c = server.client();
    c.expect("ACCT something", 503);
}

#[test]
fn acct_needed_for_login_332_then_acct_230() {
    let (server, _users) = server_with_account("login");
    let mut c = server.client();
    c.expect(&format!("USER {ACCT_USER}"), 331);
    c.expect(&format!("PASS {ACCT_PASS}"), 332);
    // Not logged in until ACCT.
    c.expect("PWD", 530);
    c.expect("ACCT wrong-account", 530);
    c.expect(&format!("ACCT {ACCOUNT}"), 230);
    c.expect("PWD", 257);
}

#[test]
fn acct_needed_for_storing_532_until_acct() {
    let (server, _users) = server_with_account("store");
    let mut c = server.client();
    c.login(ACCT_USER, ACCT_PASS);
    // Reading is allowed; every storing command is refused until ACCT.
    c.expect("PWD", 257);
    for line in ["STOR f", "APPE f", "STOU", "MKD d"] {
        c.expect(line, 532);
    }
    assert!(!server.path("d").exists());
    c.expect("ACCT wrong-account", 530);
    c.expect("MKD d", 532);
    c.expect(&format!("ACCT {ACCOUNT}"), 230);
    c.expect("MKD d", 257);
    let r = c.put("STOR d/f", b"stored");
    assert_eq!(r.code, 226, "{r:?}");
    assert_eq!(server.read("d/f"), b"stored");
}

#[test]
fn acct_not_needed_202_and_allo_202() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    c.expect("ACCT anything", 202);
    // PASS once logged in is superfluous too.
    c.expect("PASS 12345", 202);
    c.expect("ALLO 1000", 202);
    c.expect("ALLO 1000 R 100", 202);
}

#[test]
fn failed_login_430_when_configured() {
    let server = TestServer::start_with_config("[auth]\nfailed_login_reply = 430\n", &[]);
    let mut c = server.client();
    c.expect(&format!("USER {USER}"), 331);
    let r = c.expect("PASS wrong", 430);
    assert_eq!(r.text, "Invalid username or password");
    // Commands before login are still 530: 430 is only the failed login.
    c.expect("PWD", 530);
    c.login(USER, PASS);
}

#[test]
fn rein_220_then_login_needed_again() {
    let server = TestServer::start(&[]);
    std::fs::create_dir(server.path("d")).unwrap();
    let mut c = server.login();
    c.expect("CWD d", 250);
    c.expect("REIN", 220);
    c.expect("PWD", 530);
    c.expect("CWD /", 530);
    c.login(USER, PASS);
    let r = c.expect("PWD", 257);
    assert!(r.text.starts_with("\"/\""), "{r:?}");
}

#[test]
fn host_before_user_220() {
    let server = TestServer::start(&[]);
    let mut c = server.client();
    c.expect("HOST ftp.example.com", 220);
    c.login(USER, PASS);
    // HOST after USER/PASS is out of sequence (RFC 7151 §3).
    c.expect("HOST ftp.example.com", 503);
    let mut c = server.client();
    c.expect(&format!("USER {USER}"), 331);
    c.expect("HOST ftp.example.com", 503);
}

#[test]
fn host_unknown_504_disabled_434() {
    let config = "[[virtual_host]]\nname = \"ftp.example.com\"\n\n[[virtual_host]]\nname = \"down.example.com\"\nenabled = false\n";
    let server = TestServer::start_with_config(config, &[]);
    let mut c = server.client();
    c.expect("HOST nowhere.example.com", 504);
    c.expect("HOST down.example.com", 434);
    c.expect("HOST FTP.example.com", 220);
    c.login(USER, PASS);
}

#[test]
fn quit_221_and_close() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    c.expect("QUIT", 221);
    assert!(c.is_closed());
    // QUIT needs no login.
    let mut c = server.client();
    c.expect("QUIT", 221);
    assert!(c.is_closed());
}
