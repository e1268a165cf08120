//! Helpers for the `security_*` modules: connections from another loopback
//! address (127.0.0.2), replies read with a deadline, consecutive free
//! ports for a passive range, and timing.

#![allow(dead_code)]

use std::io::{BufReader, ErrorKind, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::common::{read_reply, RawClient, Reply};

/// The second loopback address: a different client host for the server.
pub const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A TCP connection to `addr` from `local` (any port): Linux routes all of
/// 127/8 over loopback, so binding the client socket to 127.0.0.2 makes it
/// another client address for the server.
pub fn stream_from(local: IpAddr, addr: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = rt
        .block_on(async {
            let s = tokio::net::TcpSocket::new_v4()?;
            s.bind(SocketAddr::new(local, 0))?;
            tokio::time::timeout(Duration::from_secs(10), s.connect(addr))
                .await
                .map_err(|_| std::io::Error::new(ErrorKind::TimedOut, "connect"))?
        })
        .unwrap_or_else(|e| panic!("connect from {local} to {addr}: {e}"));
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

/// A control connection from `local`, with its first reply read.
pub fn client_from(local: IpAddr, addr: SocketAddr) -> RawClient {
    let mut reader = BufReader::new(stream_from(local, addr));
    let greeting = read_reply(&mut reader).expect("first reply");
    RawClient { reader, addr, greeting }
}

/// A control connection from 127.0.0.1 whose first reply is returned as is
/// (220, 120 or 421).
pub fn client(addr: SocketAddr) -> RawClient {
    RawClient::connect(addr)
}

/// The next reply, or `None` if none comes within `limit` (the read
/// timeout is restored afterwards).
pub fn reply_within(c: &mut RawClient, limit: Duration) -> Option<Reply> {
    c.reader.get_ref().set_read_timeout(Some(limit)).unwrap();
    let r = read_reply(&mut c.reader);
    c.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    match r {
        Ok(r) => Some(r),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(e) => panic!("reading a reply: {e}"),
    }
}

/// Asserts the server closed the connection (EOF or reset) within `limit`.
#[track_caller]
pub fn assert_closed_within(c: &mut RawClient, limit: Duration) {
    c.reader.get_ref().set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 64];
    match c.reader.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Ok(n) => panic!("more bytes instead of a close: {:?}", String::from_utf8_lossy(&b[..n])),
        Err(e) => panic!("still open after {limit:?}: {e}"),
    }
}

/// Two consecutive ports that are free on 127.0.0.1 right now, for a
/// passive range of exactly two ports.
pub fn free_port_pair() -> u16 {
    free_ports_in_a_row(2)
}

/// The first of `n` consecutive ports (`n` >= 1) that are free on
/// 127.0.0.1 right now.
pub fn free_ports_in_a_row(n: u16) -> u16 {
    for _ in 0..100 {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < 1024 || p.checked_add(n - 1).is_none() {
            continue;
        }
        if (1..n).all(|i| TcpListener::bind(("127.0.0.1", p + i)).is_ok()) {
            return p;
        }
    }
    panic!("no {n} consecutive free ports found");
}

/// Runs `f` and returns its result with the time it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let r = f();
    (r, start.elapsed())
}

/// The port of a `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)` reply.
pub fn pasv_port(r: &Reply) -> u16 {
    let n = crate::replies_util::paren_numbers(&r.text);
    n[4] * 256 + n[5]
}
