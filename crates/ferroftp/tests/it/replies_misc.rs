//! Informational and syntax reply codes: 200, 211, 214, 215, 500, 501, 502,
//! 503, 504, 522, 533.

use crate::common::TestServer;
use crate::replies_util::body_lines;

#[test]
fn feat_211_each_feature_line_starts_with_a_space() {
    let server = TestServer::start(&[]);
    // FEAT is allowed before login (RFC 2389 §3).
    let mut c = server.client();
    let r = c.expect("FEAT", 211);
    let body = body_lines(&r);
    assert!(!body.is_empty());
    for line in &body {
        assert!(line.starts_with(' ') && !line.starts_with("  "), "FEAT line {line:?}");
    }
    for feature in [
        " EPSV",
        " EPRT",
        " SIZE",
        " MDTM",
        " REST STREAM",
        " UTF8",
        " MFMT",
        " HOST",
    ] {
        assert!(body.contains(&feature), "{feature:?} missing from {r:?}");
    }
    assert!(body.iter().any(|l| l.starts_with(" MLST ")), "{r:?}");
}

#[test]
fn stat_211_session_status() {
    let server = TestServer::start(&[]);
    let mut c = server.client();
    let r = c.expect("STAT", 211);
    assert!(r.text.contains("Not logged in"), "{r:?}");
    c.login("user", "12345");
    let r = c.expect("STAT", 211);
    assert!(r.text.contains("Logged in as user"), "{r:?}");
    assert!(body_lines(&r).len() >= 3);
}

#[test]
fn site_help_211() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    let r = c.expect("SITE HELP", 211);
    assert!(r.text.contains("CHMOD"), "{r:?}");
}

#[test]
fn help_214() {
    let server = TestServer::start(&[]);
    let mut c = server.client();
    let r = c.expect("HELP", 214);
    assert!(body_lines(&r).iter().any(|l| l.contains("RETR")), "{r:?}");
    let r = c.expect("HELP RETR", 214);
    assert!(r.text.contains("RETR"), "{r:?}");
    c.expect("HELP xyzzy", 501);
}

#[test]
fn syst_215() {
    let server = TestServer::start(&[]);
    let mut c = server.client();
    assert_eq!(c.expect("SYST", 215).text, "UNIX Type: L8");
}

#[test]
fn command_okay_200() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    for line in [
        "NOOP",
        "TYPE A",
        "TYPE A N",
        "TYPE I",
        "TYPE L 8",
        "STRU F",
        "STRU P",
        "STRU F",
        "MODE S",
        "MODE B",
        "MODE S",
        "OPTS UTF8 ON",
        "OPTS UTF8 OFF",
        "OPTS UTF8 ON",
    ] {
        c.expect(line, 200);
    }
    let r = c.expect("OPTS MLST type;size;", 200);
    assert_eq!(r.text, "MLST OPTS type;size;");
    // NOOP works before login.
    let mut d = server.client();
    d.expect("NOOP", 200);
}

#[test]
fn unknown_command_500() {
    let server = TestServer::start(&[]);
    let mut c = server.client();
    c.expect("XYZZY", 500);
    let mut c = server.login();
    c.expect("XYZZY now", 500);
    c.expect("FOO", 500);
}

#[test]
fn over_long_line_500_then_session_goes_on() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    let long = format!("NOOP {}", "x".repeat(5000));
    let r = c.expect(&long, 500);
    assert!(r.text.contains("too long"), "{r:?}");
    // Exactly one reply for the long line; the next command is answered.
    c.expect("NOOP", 200);
    // A line at the limit is still parsed as a command.
    let at_limit = format!("SIZE {}", "y".repeat(4096 - 5));
    c.expect(&at_limit, 553);
}

#[test]
fn syntax_error_in_arguments_501() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    for line in [
        "CWD",
        "RETR",
        "MKD",
        "USER",
        "PORT 1,2,3",
        "PORT 127,0,0,1,4",
        "PORT 256,0,0,1,4,1",
        "EPRT 127.0.0.1:5000",
        "EPRT |1|not-an-ip|5000|",
        "LPRT 4,4,127,0,0,1",
        "REST abc",
        "REST -1",
        "REST 18446744073709551615",
        "ALLO lots",
        "NOOP now",
        "TYPE Q",
        "STRU X",
        "MODE X",
        "MFMT 2020 f",
        "OPTS FOO BAR",
        "EPSV x",
        "PBSZ -1",
    ] {
        c.expect(line, 501);
    }
}

#[test]
fn not_implemented_502() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    c.expect("SMNT /mnt", 502);
    c.expect("SITE FOO", 502);
    c.expect("SITE EXEC ls", 502);
}

#[test]
fn not_implemented_for_parameter_504() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    for line in [
        "TYPE E", "TYPE A T", "TYPE L 7", "STRU R", "MODE C", "AUTH FOO", "PROT X",
    ] {
        c.expect(line, 504);
    }
    // AUTH is answered before login too.
    let mut d = server.client();
    d.expect("AUTH FOO", 504);
}

#[test]
fn network_protocol_not_supported_522() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    let r = c.expect("EPRT |3|1.2.3.4|5000|", 522);
    assert!(r.text.contains("(1,2)"), "{r:?}");
    c.expect("EPSV 3", 522);
    // An IPv6 address or EPSV 2 on an IPv4 control connection.
    let r = c.expect("EPRT |2|::1|5000|", 522);
    assert!(r.text.contains("(1)"), "{r:?}");
    c.expect("EPSV 2", 522);
}

#[test]
fn security_commands_without_auth_503_and_ccc_533() {
    let server = TestServer::start(&[]);
    let mut c = server.client();
    // RFC 2228: PBSZ, PROT, ADAT and protected commands need a security
    // exchange first.
    for line in ["PBSZ 0", "PROT P", "ADAT abc", "MIC abc", "CONF abc", "ENC abc"] {
        c.expect(line, 503);
    }
    c.login("user", "12345");
    c.expect("CCC", 533);
}
