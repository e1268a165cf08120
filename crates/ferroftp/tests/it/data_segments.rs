//! How downloads use the wire: a download is corked, so a small file, or
//! the tail of a large one, goes out in the same segment as the FIN that
//! ends it, and a sendfile download the server sends alone is corked
//! throughout, so its body goes out in whole segments (the server's `cork`
//! module says why only alone). Counted with the client socket's TCP_INFO
//! (segments received), which is exact on loopback: after the client's
//! connect the server sends nothing on a data connection but the transfer.

use std::io::Read;
use std::net::TcpStream;
use std::os::fd::AsRawFd;

use crate::common::{payload, RawClient, TestServer};

/// The client socket's TCP_INFO.
fn tcp_info(stream: &TcpStream) -> libc::tcp_info {
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
    info
}

/// Segments `stream` has received so far (SYN-ACK included).
fn segments_in(stream: &TcpStream) -> u32 {
    tcp_info(stream).tcpi_segs_in
}

/// EPSV and a data connection whose receive buffer is set before it
/// connects (the kernel doubles the value for its own overhead; shrinking
/// it after the handshake would leave the window announced in the SYN
/// larger than the buffer, and the kernel then drops what it cannot hold).
/// Values below the default `net.core.rmem_max` of 212,992 bytes mean the
/// same on every machine.
fn epsv_with_receive_buffer(c: &mut RawClient, bytes: usize) -> TcpStream {
    let addr = c.epsv_addr();
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(bytes).unwrap();
    socket.connect(&addr.into()).expect("data connect");
    let stream = TcpStream::from(socket);
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    stream
}

/// The two ways a large plain download is sent: a thread of its own (the
/// default), and the runtime's workers.
const SEND_PATHS: [&str; 2] = ["", "[server]\nsend_threads = 0\n"];

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

/// RETR `name` over a fresh EPSV connection whose client reads `piece`
/// bytes at a time with a receive buffer of `receive_buffer`; returns the
/// bytes, the segments that carried them, and the connection's MSS.
fn fetch_with_buffer(c: &mut RawClient, name: &str, receive_buffer: usize, piece: usize) -> (Vec<u8>, u32, u32) {
    let mut data = epsv_with_receive_buffer(c, receive_buffer);
    let before = segments_in(&data);
    let first = c.cmd(&format!("RETR {name}"));
    assert!(first.code == 150 || first.code == 125, "RETR {name} -> {first:?}");
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; piece];
    loop {
        let n = data.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    let info = tcp_info(&data);
    c.expect_reply(226);
    (bytes, info.tcpi_segs_in - before, info.tcpi_rcv_mss)
}

#[test]
fn a_sendfile_download_goes_out_in_whole_segments() {
    // With only the tail corked, Nagle (Linux's Minshall variant) let a
    // short segment out whenever the window opened by a part of one: this
    // client saw 260-499 segments for 16 MiB (mostly over 400) against 257
    // whole ones, where the download corked throughout sees 258 in most
    // runs. Not every run: the kernel pushes a short segment, cork or
    // not, each time the send buffer fills (up to 293 seen), hence the
    // median of five. Both send paths: a thread of its own, and the
    // runtime's workers (`send_threads = 0`).
    let big = payload(16 << 20, 9);
    for config in SEND_PATHS {
        let server = TestServer::start_with_config(config, &[]);
        server.write("big", &big);
        let mut c = server.login();
        c.expect("TYPE I", 200);
        let mut counts = Vec::new();
        let mut whole = 0;
        for _ in 0..5 {
            let (bytes, segments, mss) = fetch_with_buffer(&mut c, "big", 200_000, 100_000);
            assert!(bytes == big, "RETR big ({config:?}): other bytes");
            whole = big.len().div_ceil(mss as usize) as u32;
            counts.push(segments);
        }
        counts.sort_unstable();
        assert!(
            counts[2] <= whole + whole / 10,
            "{config:?}: {counts:?} segments per download, {whole} whole ones would do"
        );
    }
}

#[test]
fn a_large_download_corked_throughout_arrives_whole() {
    // Corking holds back only partial segments; every byte of a file
    // larger than the socket buffer still arrives, on both send paths, and
    // to a client whose window is far smaller than one loopback segment
    // (the kernel then sizes segments to half the window, which the cork
    // lets through).
    let server = TestServer::start(&[]);
    let big = text(payload(5 << 20, 8));
    server.write("big", &big);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let (bytes, _) = fetch_counting(&mut c, "RETR big");
    assert!(bytes == big, "binary download differs");
    let (bytes, _, _) = fetch_with_buffer(&mut c, "big", 4096, 1000);
    assert!(bytes == big, "binary download to a small window differs");
    c.expect("TYPE A", 200);
    let (bytes, _) = fetch_counting(&mut c, "RETR big");
    assert!(bytes == crlf(&big), "TYPE A download differs");
}

#[test]
fn downloads_sent_at_once_arrive_whole_as_their_corks_change() {
    // A sendfile download alone is corked throughout; while a second runs
    // both are uncorked but for their tails, and the one left corks again.
    // Every byte still arrives across those changes, on both send paths.
    let big = payload(16 << 20, 10);
    for config in SEND_PATHS {
        let server = TestServer::start_with_config(config, &[]);
        server.write("big", &big);
        let mut first = server.login();
        first.expect("TYPE I", 200);
        let mut second = server.login();
        second.expect("TYPE I", 200);
        // The first stops reading after its first MiB, so that it is still
        // sending (its socket full) while the second runs start to end.
        let mut data = epsv_with_receive_buffer(&mut first, 100_000);
        let reply = first.cmd("RETR big");
        assert!(reply.code == 150 || reply.code == 125, "RETR big -> {reply:?}");
        let mut got = vec![0u8; 1 << 20];
        data.read_exact(&mut got).unwrap();
        let (bytes, _, _) = fetch_with_buffer(&mut second, "big", 200_000, 100_000);
        assert!(bytes == big, "{config:?}: the second download differs");
        data.read_to_end(&mut got).unwrap();
        assert!(got == big, "{config:?}: the first download differs");
        first.expect_reply(226);
    }
}
