//! Data-connection setup and its replies: 227, 228, 229, 200 for
//! PORT/EPRT/LPRT, 150 and 125, 226, 425, 504 for foreign targets, 225 and
//! 226 for ABOR with no transfer.

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use crate::common::{RawClient, TestServer};
use crate::replies_util::{active_listener, closed_port, connect_data, epsv_addr, epsv_connected, paren_numbers};

/// NLST over a passive address the client connects to after the command:
/// always 150 then 226.
fn list_over(c: &mut RawClient, addr: SocketAddr) -> Vec<u8> {
    c.expect("NLST", 150);
    let mut data = connect_data(addr);
    let mut buf = Vec::new();
    data.read_to_end(&mut buf).unwrap();
    c.expect_reply(226);
    buf
}

#[test]
fn pasv_227_format() {
    let server = TestServer::start(&[]);
    server.write("f", b"x");
    let mut c = server.login();
    let r = c.expect("PASV", 227);
    assert!(r.text.starts_with("Entering Passive Mode ("), "{r:?}");
    let n = paren_numbers(&r.text);
    assert_eq!(n.len(), 6, "{r:?}");
    assert_eq!(&n[..4], &[127, 0, 0, 1]);
    assert!(n[4] <= 255 && n[5] <= 255);
    let port = n[4] * 256 + n[5];
    assert_eq!(list_over(&mut c, SocketAddr::from(([127, 0, 0, 1], port))), b"f\r\n");
}

#[test]
fn lpsv_228_format() {
    let server = TestServer::start(&[]);
    server.write("f", b"x");
    let mut c = server.login();
    let r = c.expect("LPSV", 228);
    assert!(r.text.starts_with("Entering Long Passive Mode ("), "{r:?}");
    // RFC 1639: af=4, hal=4, h1..h4, pal=2, p1, p2.
    let n = paren_numbers(&r.text);
    assert_eq!(n.len(), 9, "{r:?}");
    assert_eq!(&n[..6], &[4, 4, 127, 0, 0, 1]);
    assert_eq!(n[6], 2);
    let port = n[7] * 256 + n[8];
    assert_eq!(list_over(&mut c, SocketAddr::from(([127, 0, 0, 1], port))), b"f\r\n");
}

#[test]
fn epsv_229_format() {
    let server = TestServer::start(&[]);
    server.write("f", b"x");
    let mut c = server.login();
    let r = c.expect("EPSV", 229);
    // RFC 2428 §3: "(<d><d><d><port><d>)" with '|' as the delimiter.
    let inner = r
        .text
        .split('(')
        .nth(1)
        .and_then(|s| s.strip_suffix(')'))
        .expect("(|||port|)");
    let port: u16 = inner
        .strip_prefix("|||")
        .and_then(|s| s.strip_suffix('|'))
        .and_then(|p| p.parse().ok())
        .expect("port");
    assert_eq!(list_over(&mut c, SocketAddr::from(([127, 0, 0, 1], port))), b"f\r\n");
    c.expect("EPSV 1", 229);
    // EPSV ALL: from now on only EPSV sets up data connections.
    c.expect("EPSV ALL", 200);
    c.expect("PASV", 503);
    c.expect("LPSV", 503);
    c.expect("PORT 127,0,0,1,4,1", 503);
    c.expect("EPSV", 229);
}

#[test]
fn transfer_without_port_or_pasv_425() {
    let server = TestServer::start(&[]);
    server.write("f", b"x");
    let mut c = server.login();
    for line in ["RETR f", "STOR g", "APPE g", "STOU", "LIST", "NLST", "MLSD"] {
        c.expect(line, 425);
    }
    assert!(!server.path("g").exists());
    // A data setup is used once: the next transfer needs a new one.
    let (bytes, r) = c.fetch("RETR f");
    assert_eq!((bytes.as_slice(), r.code), (&b"x"[..], 226));
    c.expect("RETR f", 425);
}

#[test]
fn active_port_150_then_226() {
    let server = TestServer::start(&[]);
    server.write("f", b"active bytes");
    let mut c = server.login();
    c.expect("TYPE I", 200);
    for setup in ["PORT", "EPRT", "LPRT"] {
        let (listener, port_arg) = active_listener();
        let port = listener.local_addr().unwrap().port();
        let line = match setup {
            "PORT" => format!("PORT {port_arg}"),
            "EPRT" => format!("EPRT |1|127.0.0.1|{port}|"),
            _ => format!("LPRT 4,4,127,0,0,1,2,{},{}", port >> 8, port & 0xFF),
        };
        c.expect(&line, 200);
        c.expect("RETR f", 150);
        let (mut data, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        data.read_to_end(&mut buf).unwrap();
        assert_eq!(buf, b"active bytes", "{setup}");
        c.expect_reply(226);
    }
}

#[test]
fn active_connect_refused_150_then_425() {
    let server = TestServer::start(&[]);
    server.write("f", b"x");
    let mut c = server.login();
    let port = closed_port();
    c.expect(&format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xFF), 200);
    c.expect("RETR f", 150);
    c.expect_reply(425);
    c.expect("NOOP", 200);
}

#[test]
fn port_to_foreign_address_or_privileged_port_504() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    // RFC 2577 (FTP bounce): only the client's own address, ports >= 1024.
    c.expect("PORT 127,0,0,2,78,32", 504);
    c.expect("PORT 10,0,0,1,78,32", 504);
    c.expect("PORT 127,0,0,1,3,255", 504);
    c.expect("PORT 127,0,0,1,0,21", 504);
    c.expect("EPRT |1|127.0.0.2|20000|", 504);
    c.expect("EPRT |1|127.0.0.1|1023|", 504);
    c.expect("LPRT 4,4,127,0,0,2,2,78,32", 504);
    c.expect("PORT 127,0,0,1,4,0", 200);
}

/// The passive peer connects before the transfer command: 125, not 150.
#[test]
fn passive_connected_early_125() {
    let server = TestServer::start(&[]);
    server.write("f", b"early");
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let mut seen = Vec::new();
    for attempt in 0..8u64 {
        let mut data = epsv_connected(&mut c, Duration::from_millis(10 * attempt * attempt));
        let first = c.cmd("RETR f");
        seen.push(first.code);
        assert!(first.code == 125 || first.code == 150, "{first:?}");
        let mut buf = Vec::new();
        data.read_to_end(&mut buf).unwrap();
        assert_eq!(buf, b"early");
        c.expect_reply(226);
        if first.code == 125 {
            return;
        }
    }
    panic!("never 125 with the data connection open first: {seen:?}");
}

#[test]
fn abor_with_nothing_open_226() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    c.expect("ABOR", 226);
    // A passive listener nobody connected to is not an open connection.
    let _ = c.expect("EPSV", 229);
    c.expect("ABOR", 226);
    c.expect("NOOP", 200);
}

/// ABOR with a data connection open and no transfer running: 225, and the
/// connection is closed.
#[test]
fn abor_with_idle_open_data_connection_225() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    let mut seen = Vec::new();
    for attempt in 0..8u64 {
        let mut data = epsv_connected(&mut c, Duration::from_millis(10 * attempt * attempt));
        let r = c.cmd("ABOR");
        seen.push(r.code);
        match r.code {
            225 => {
                let mut b = [0u8; 1];
                assert!(
                    matches!(data.read(&mut b), Ok(0) | Err(_)),
                    "data connection still open after 225"
                );
                // The aborted setup is gone.
                c.expect("RETR f", 425);
                return;
            }
            226 => continue,
            _ => panic!("ABOR -> {r:?}"),
        }
    }
    panic!("never 225 with an idle open data connection: {seen:?}");
}

/// 425 when the passive peer never connects within
/// `timeouts.data_connection`; a connection from another address does not
/// count (it is dropped, RFC 2577 "port stealing").
#[test]
fn passive_accept_timeout_and_foreign_peer_425() {
    let server = TestServer::start_with_config("[timeouts]\ndata_connection = 1\n", &[]);
    server.write("f", b"x");
    let mut c = server.login();
    let addr = epsv_addr(&mut c);
    c.expect("RETR f", 150);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let foreign = rt
        .block_on(async {
            let s = tokio::net::TcpSocket::new_v4()?;
            s.bind(SocketAddr::from(([127, 0, 0, 2], 0)))?;
            s.connect(addr).await
        })
        .expect("connect from 127.0.0.2");
    let mut foreign = foreign.into_std().unwrap();
    foreign.set_nonblocking(false).unwrap();
    foreign.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 1];
    assert!(
        matches!(foreign.read(&mut b), Ok(0) | Err(_)),
        "a foreign peer got data"
    );
    let r = c.expect_reply(425);
    assert!(r.text.contains("data connection"), "{r:?}");
    c.expect("NOOP", 200);
}
