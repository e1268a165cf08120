//! PROXY protocol on the control listener (docs/scaling.md), driven by a
//! raw socket playing the load balancer: the header's client address is
//! the one limits, bans, STAT and the data-connection checks use; only
//! trusted proxies may connect, and only with a valid header, in time.
//! (`s3_scaleout.rs` runs the same through a real HAProxy.)

use std::io::{BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use ftp_proto::proxy::{encode_v1, encode_v2, Addresses};

use crate::common::{read_reply, RawClient, TestServer, PASS, USER};
use crate::security_util::{assert_closed_within, pasv_port, reply_within, stream_from, OTHER};

/// The proxy connects from 127.0.0.1; the clients it speaks for are other
/// loopback addresses, each a different host to the server.
const PROXY: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const CLIENT_A: IpAddr = OTHER;
const CLIENT_B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

fn proxied_server(extra: &str) -> TestServer {
    TestServer::start_with_config(
        &format!("[server]\nproxy_protocol = true\ntrusted_proxies = [\"127.0.0.0/30\"]\n{extra}"),
        &[],
    )
}

/// A control connection from the proxy that starts with `header`; the
/// first reply is read (220 or 421).
fn through_proxy(server: SocketAddr, header: &[u8]) -> RawClient {
    let mut stream = stream_from(PROXY, server);
    stream.write_all(header).unwrap();
    let mut reader = BufReader::new(stream);
    let greeting = read_reply(&mut reader).expect("first reply");
    RawClient {
        reader,
        addr: server,
        greeting,
    }
}

fn for_client(client: IpAddr, port: u16, server: SocketAddr) -> Addresses {
    Addresses::Tcp {
        source: SocketAddr::new(client, port),
        destination: server,
    }
}

fn status(c: &mut RawClient) -> String {
    c.expect("STAT", 211).text
}

#[test]
fn proxy_v1_and_v2_name_the_client() {
    let server = proxied_server("");
    for header in [
        encode_v2(&for_client(CLIENT_A, 40000, server.addr)),
        encode_v1(&for_client(CLIENT_A, 40001, server.addr)),
    ] {
        let mut c = through_proxy(server.addr, &header);
        assert_eq!(c.greeting.code, 220, "{:?}", c.greeting);
        c.login(USER, PASS);
        let s = status(&mut c);
        assert!(s.contains("Connected from 127.0.0.2"), "{s}");
        assert!(s.contains("Through proxy 127.0.0.1"), "{s}");
    }
    // A health check (v2 LOCAL, v1 UNKNOWN): the proxy itself is the peer.
    for header in [encode_v2(&Addresses::Unknown), encode_v1(&Addresses::Unknown)] {
        let mut c = through_proxy(server.addr, &header);
        assert_eq!(c.greeting.code, 220);
        let s = status(&mut c);
        assert!(s.contains("Connected from 127.0.0.1"), "{s}");
    }
}

/// A header that arrives in pieces is waited for, and the client's first
/// command right behind it in the same segment is not lost.
#[test]
fn proxy_header_in_pieces_and_pipelined_command() {
    let server = proxied_server("");
    let header = encode_v1(&for_client(CLIENT_A, 40000, server.addr));
    let mut stream = stream_from(PROXY, server.addr);
    for piece in header.chunks(7) {
        stream.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut reader = BufReader::new(stream);
    assert_eq!(read_reply(&mut reader).unwrap().code, 220);

    let mut both = encode_v2(&for_client(CLIENT_A, 40001, server.addr));
    both.extend_from_slice(b"NOOP\r\n");
    let mut stream = stream_from(PROXY, server.addr);
    stream.write_all(&both).unwrap();
    let mut reader = BufReader::new(stream);
    assert_eq!(read_reply(&mut reader).unwrap().code, 220);
    assert_eq!(read_reply(&mut reader).unwrap().code, 200, "the pipelined NOOP");
}

#[test]
fn untrusted_address_or_missing_header_is_refused_421() {
    // Only 127.0.0.3 is trusted: 127.0.0.1 is refused, header or not.
    let server = TestServer::start_with_config(
        "[server]\nproxy_protocol = true\ntrusted_proxies = [\"127.0.0.3\"]\n",
        &[],
    );
    let mut c = through_proxy(server.addr, &encode_v2(&for_client(CLIENT_A, 1, server.addr)));
    assert_eq!(c.greeting.code, 421, "{:?}", c.greeting);
    assert!(c.greeting.text.contains("proxy"), "{:?}", c.greeting);
    assert_closed_within(&mut c, Duration::from_secs(5));
    drop(server);

    let server = proxied_server("[timeouts]\nproxy_header = 1\n");
    // A trusted proxy that sends no header: a plain FTP command...
    let mut c = through_proxy(server.addr, b"USER anonymous\r\n");
    assert_eq!(c.greeting.code, 421, "{:?}", c.greeting);
    assert!(c.greeting.text.contains("PROXY"), "{:?}", c.greeting);
    assert_closed_within(&mut c, Duration::from_secs(5));
    // ...a malformed header (a leading zero)...
    let c = through_proxy(server.addr, b"PROXY TCP4 127.0.0.02 127.0.0.1 1 21\r\n");
    assert_eq!(c.greeting.code, 421, "{:?}", c.greeting);
    // ...a v2 length over the bound (limits.max_proxy_header)...
    let mut long = encode_v2(&for_client(CLIENT_A, 1, server.addr));
    long[14..16].copy_from_slice(&600u16.to_be_bytes());
    let c = through_proxy(server.addr, &long[..16]);
    assert_eq!(c.greeting.code, 421, "{:?}", c.greeting);
    // ...or nothing at all: 421 after timeouts.proxy_header.
    let started = std::time::Instant::now();
    let mut c = through_proxy(server.addr, b"");
    assert_eq!(c.greeting.code, 421, "{:?}", c.greeting);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_closed_within(&mut c, Duration::from_secs(5));
    // A truncated header waits the same way.
    let v2 = encode_v2(&for_client(CLIENT_A, 1, server.addr));
    let c = through_proxy(server.addr, &v2[..20]);
    assert_eq!(c.greeting.code, 421, "{:?}", c.greeting);
}

/// The per-address limit and the ban table count the client, not the
/// proxy every client comes through.
#[test]
fn limits_and_bans_count_the_client_behind_the_proxy() {
    let server = proxied_server(
        "[limits]\nmax_sessions_per_address = 1\n\
         [bans]\nmax_failures = 1\nwindow = 60\nban_time = 60\nfailure_delay_ms = 0\nmax_failure_delay_ms = 0\n",
    );
    let a = through_proxy(server.addr, &encode_v2(&for_client(CLIENT_A, 1, server.addr)));
    assert_eq!(a.greeting.code, 220);
    let mut b = through_proxy(server.addr, &encode_v2(&for_client(CLIENT_B, 1, server.addr)));
    assert_eq!(b.greeting.code, 220, "another client through the same proxy");
    let a2 = through_proxy(server.addr, &encode_v2(&for_client(CLIENT_A, 2, server.addr)));
    assert_eq!(a2.greeting.code, 421, "{:?}", a2.greeting);
    assert!(a2.greeting.text.contains("Too many connections"), "{:?}", a2.greeting);
    drop(a);

    // B fails a login and is banned; A (same proxy) is not.
    b.expect(&format!("USER {USER}"), 331);
    b.expect("PASS wrong", 530);
    drop(b);
    let b = through_proxy(server.addr, &encode_v2(&for_client(CLIENT_B, 3, server.addr)));
    assert_eq!(b.greeting.code, 421, "{:?}", b.greeting);
    assert!(b.greeting.text.contains("failed logins"), "{:?}", b.greeting);
    let mut a = through_proxy(server.addr, &encode_v2(&for_client(CLIENT_A, 3, server.addr)));
    assert_eq!(a.greeting.code, 220, "{:?}", a.greeting);
    a.login(USER, PASS);
}

/// PORT must name the client behind the proxy, not the proxy; a passive
/// connection must come from that client.
#[test]
fn data_connections_belong_to_the_client_behind_the_proxy() {
    let server = proxied_server("");
    server.write("f.txt", b"behind the proxy");
    let mut c = through_proxy(server.addr, &encode_v2(&for_client(CLIENT_A, 1, server.addr)));
    c.login(USER, PASS);
    c.expect("TYPE I", 200);

    // Active: the proxy's address is a third party now.
    c.expect("PORT 127,0,0,1,200,10", 504);
    let listener = TcpListener::bind((CLIENT_A, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    c.expect(&format!("PORT 127,0,0,2,{},{}", port >> 8, port & 0xff), 200);
    c.expect("RETR f.txt", 150);
    let (mut data, from) = listener.accept().unwrap();
    assert_eq!(
        from.ip(),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        "the node connects from its own address"
    );
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"behind the proxy");
    c.expect_reply(226);

    // Passive: a connection from the proxy's address is dropped, the
    // client's is served.
    let r = c.expect("PASV", 227);
    let port = pasv_port(&r);
    assert!(r.text.contains("(127,0,0,1,"), "the node's own address: {r:?}");
    let mut thief = stream_from(PROXY, SocketAddr::new(PROXY, port));
    let mut real = stream_from(CLIENT_A, SocketAddr::new(PROXY, port));
    let r = c.cmd("RETR f.txt");
    assert!(matches!(r.code, 125 | 150), "{r:?}");
    let mut got = Vec::new();
    real.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"behind the proxy");
    c.expect_reply(226);
    thief.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 16];
    assert!(
        matches!(thief.read(&mut b), Ok(0) | Err(_)),
        "the proxy's connection got data"
    );
}

/// EPSV names only a port, so the client connects to the address it
/// reached: refused (425, clients fall back to PASV) when that is not
/// where this node's passive ports are announced.
#[test]
fn epsv_through_a_proxy_at_another_address_425_pasv_names_the_node() {
    let server = proxied_server("");
    let elsewhere = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)), 21);
    let mut c = through_proxy(server.addr, &encode_v2(&for_client(CLIENT_A, 1, elsewhere)));
    c.login(USER, PASS);
    let r = c.expect("EPSV", 425);
    assert!(r.text.contains("PASV"), "{r:?}");
    let r = c.expect("PASV", 227);
    assert!(r.text.contains("(127,0,0,1,"), "{r:?}");
    // Where the balancer and the node share the address, EPSV works.
    let mut c = through_proxy(server.addr, &encode_v2(&for_client(CLIENT_A, 2, server.addr)));
    c.login(USER, PASS);
    let data = c.expect("EPSV", 229);
    assert!(data.text.contains("|||"), "{data:?}");
    assert!(reply_within(&mut c, Duration::from_millis(100)).is_none());
}

/// Implicit FTPS behind the header: the TLS ClientHello right after it
/// (in the same segment, as often as not) reaches the handshake intact.
#[test]
fn implicit_ftps_after_the_header() {
    let server = TestServer::start_with_config(
        "[server]\nproxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]\n",
        &["--tls-self-signed", "--implicit-tls-listen", "127.0.0.1:0"],
    );
    let implicit = server.implicit_addr.expect("an implicit FTPS listener");
    let header = encode_v2(&for_client(CLIENT_A, 40000, implicit));
    let hex: String = header.iter().map(|b| format!("{b:02x}")).collect();
    let script = r#"
import socket, ssl, sys
port, header = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
raw = socket.create_connection(("127.0.0.1", port), timeout=10)
raw.sendall(header)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
tls = ctx.wrap_socket(raw)
f = tls.makefile("rwb")
def reply():
    lines = [f.readline().decode()]
    if lines[0][3:4] == "-":
        while not lines[-1].startswith(lines[0][:3] + " "):
            lines.append(f.readline().decode())
    return "".join(lines)
def cmd(line):
    f.write((line + "\r\n").encode()); f.flush()
    return reply()
assert reply().startswith("220")
assert cmd("USER user").startswith("331")
assert cmd("PASS 12345").startswith("230")
stat = cmd("STAT")
assert "Connected from 127.0.0.2" in stat, stat
print("done")
"#;
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(script).arg(implicit.port().to_string()).arg(hex);
    let (ok, out, err) = crate::common::run(&mut cmd, Duration::from_secs(30));
    assert!(ok && String::from_utf8_lossy(&out).contains("done"), "{err}");
}
