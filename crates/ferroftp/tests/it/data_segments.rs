//! How downloads use the wire: a download is corked, so a small file, or
//! the tail of a large one, goes out in the same segment as the FIN that
//! ends it. Counted with the client socket's TCP_INFO (segments received),
//! which is exact on loopback: after the client's connect the server sends
//! nothing on a data connection but the transfer.

use std::io::Read;
use std::net::TcpStream;
use std::os::fd::AsRawFd;

use crate::common::{payload, RawClient, TestServer};

/// Segments `stream` has received so far (SYN-ACK included).
fn segments_in(stream: &TcpStream) -> u32 {
    // SAFETY: an all-zero tcp_info is valid; getsockopt writes at most `len`
    // bytes into it and the fd is a live socket.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info.tcpi_segs_in
}

/// `bytes` with no CR, so that its TYPE A form is exactly [`crlf`].
fn text(mut bytes: Vec<u8>) -> Vec<u8> {
    for b in &mut bytes {
        if *b == b'\r' {
            *b = b'.';
        }
    }
    bytes
}

/// Every LF as CRLF: what a TYPE A download of CR-free bytes sends.
fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 64);
    for &b in bytes {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Runs `command` over a fresh EPSV connection; returns the bytes and the
/// segments that carried them and the end of file.
fn fetch_counting(c: &mut RawClient, command: &str) -> (Vec<u8>, u32) {
    let mut data = c.epsv();
    let before = segments_in(&data);
    let first = c.cmd(command);
    assert!(first.code == 150 || first.code == 125, "{command} -> {first:?}");
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).unwrap();
    let segments = segments_in(&data) - before;
    c.expect_reply(226);
    (bytes, segments)
}

#[test]
fn a_small_download_arrives_with_its_end_in_one_segment() {
    let server = TestServer::start(&[]);
    let small = text(payload(4096, 7));
    server.write("small", &small);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    for _ in 0..3 {
        let (bytes, segments) = fetch_counting(&mut c, "RETR small");
        assert!(bytes == small, "RETR small: other bytes");
        assert_eq!(segments, 1, "data and FIN in separate segments");
    }
    // The copying path too (ASCII conversion rules out sendfile).
    c.expect("TYPE A", 200);
    let (bytes, segments) = fetch_counting(&mut c, "RETR small");
    assert!(bytes == crlf(&small), "TYPE A RETR small: other bytes");
    assert_eq!(segments, 1, "ASCII download: data and FIN in separate segments");
}

#[test]
fn a_small_listing_arrives_with_its_end_in_one_segment() {
    let server = TestServer::start(&[]);
    for name in ["a", "b", "c"] {
        server.write(name, b"x");
    }
    let mut c = server.login();
    let (names, segments) = fetch_counting(&mut c, "NLST");
    let mut names: Vec<&str> = std::str::from_utf8(&names).unwrap().split_terminator("\r\n").collect();
    names.sort_unstable();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(segments, 1, "NLST: data and FIN in separate segments");
    let (lines, segments) = fetch_counting(&mut c, "MLSD");
    assert_eq!(String::from_utf8(lines).unwrap().lines().count(), 3);
    assert_eq!(segments, 1, "MLSD: data and FIN in separate segments");
}

#[test]
fn a_large_download_corked_at_its_tail_arrives_whole() {
    // Corking holds back only a partial last segment; every byte of a file
    // larger than the socket buffer still arrives, on both send paths.
    let server = TestServer::start(&[]);
    let big = text(payload(5 << 20, 8));
    server.write("big", &big);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let (bytes, _) = fetch_counting(&mut c, "RETR big");
    assert!(bytes == big, "binary download differs");
    c.expect("TYPE A", 200);
    let (bytes, _) = fetch_counting(&mut c, "RETR big");
    assert!(bytes == crlf(&big), "TYPE A download differs");
}
