//! Data connections (docs/security.md, "Bounce and theft" and "Passive
//! ports"): one pending passive listener per session, a full passive range
//! answered 425 at once, and a stolen passive connection dropped while the
//! real client's transfer goes through. The bounce refusals (504) are in
//! `replies_data.rs::port_to_foreign_address_or_privileged_port_504`.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::common::TestServer;
use crate::replies_util::{connect_data, epsv_addr};
use crate::security_util::{free_port_pair, pasv_port, stream_from, timed, OTHER};

/// A range of two ports and three sessions: the third gets 425 at once; a
/// new PASV replaces the session's earlier listener (so with the range full
/// it gets that same port back); a transfer frees its port.
#[test]
fn security_pasv_range_exhausted_425_and_new_pasv_replaces_old() {
    let lo = free_port_pair();
    let server = TestServer::start_with_config(&format!("[server]\npassive_ports = \"{lo}-{}\"\n", lo + 1), &[]);
    server.write("f", b"data");
    let mut a = server.login();
    let mut b = server.login();
    let mut c = server.login();
    let pa = pasv_port(&a.expect("PASV", 227));
    let pb = pasv_port(&b.expect("PASV", 227));
    assert_ne!(pa, pb);
    assert!([lo, lo + 1].contains(&pa) && [lo, lo + 1].contains(&pb));
    for line in ["PASV", "EPSV", "LPSV"] {
        let (r, took) = timed(|| c.cmd(line));
        assert_eq!(r.code, 425, "{line} -> {r:?}");
        assert!(took < Duration::from_secs(1), "{line} answered after {took:?}");
    }
    // One pending listener per session: the new PASV closes the old one
    // first, so it can only have got the same port back.
    for _ in 0..3 {
        assert_eq!(pasv_port(&a.expect("PASV", 227)), pa);
    }
    // The listener works: a transfer over it, which frees the port.
    a.expect("NLST", 150);
    let mut data = connect_data(SocketAddr::from(([127, 0, 0, 1], pa)));
    let mut listing = Vec::new();
    data.read_to_end(&mut listing).unwrap();
    assert_eq!(listing, b"f\r\n");
    a.expect_reply(226);
    assert_eq!(pasv_port(&c.expect("PASV", 227)), pa);
    a.expect("PASV", 425);
    b.expect("NOOP", 200);
}

/// A connection to the passive port from another address (127.0.0.2)
/// arrives first: it is dropped, and the real client, connecting after it
/// to the same port, gets its file.
#[test]
fn security_passive_theft_dropped_then_real_client_succeeds() {
    let server = TestServer::start(&[]);
    server.write("f", b"the real client's bytes");
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let addr = epsv_addr(&mut c);
    let mut thief = stream_from(OTHER, addr);
    thief.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 1];
    assert!(
        matches!(thief.read(&mut b), Ok(0) | Err(_)),
        "the foreign connection was not dropped"
    );
    let mut data = TcpStream::connect(addr).expect("the real client connects to the same port");
    data.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let first = c.cmd("RETR f");
    assert!(first.code == 125 || first.code == 150, "{first:?}");
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"the real client's bytes");
    c.expect_reply(226);
}
