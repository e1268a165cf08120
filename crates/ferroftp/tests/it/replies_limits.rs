//! 421 in each of its situations: the session limit, the login and idle
//! timeouts, too many commands queued behind a transfer; and what a reset
//! control connection leaves behind (seed 10054).

use std::io::Read;
use std::time::{Duration, Instant};

use crate::common::{RawClient, TestServer};
use crate::replies_util::{connect_data, epsv_addr, sparse_file, wait_until};

#[test]
fn server_full_421_too_many_users() {
    let server = TestServer::start(&["--max-sessions", "1"]);
    let mut first = server.login();
    let mut second = server.client();
    assert_eq!(second.greeting.code, 421, "{:?}", second.greeting);
    assert_eq!(second.greeting.text, "Too many users, server is full");
    assert!(second.is_closed());
    // The first session is unaffected, and its slot frees when it ends.
    first.expect("NOOP", 200);
    first.expect("QUIT", 221);
    assert!(first.is_closed());
    let freed = wait_until(Duration::from_secs(3), || {
        RawClient::connect(server.addr).greeting.code == 220
    });
    assert!(freed, "no 220 after the only session ended");
}

#[test]
fn idle_timeout_421() {
    let server = TestServer::start_with_config("[timeouts]\nidle = 1\n", &[]);
    let mut c = server.login();
    let start = Instant::now();
    let r = c.expect_reply(421);
    assert!(r.text.contains("Idle timeout"), "{r:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "timed out after {:?}",
        start.elapsed()
    );
    assert!(c.is_closed());
}

#[test]
fn login_timeout_421() {
    let server = TestServer::start_with_config("[timeouts]\nlogin = 1\n", &[]);
    let start = Instant::now();
    let mut c = server.client();
    // Activity does not extend the login deadline.
    c.expect("USER user", 331);
    let r = c.expect_reply(421);
    assert!(r.text.contains("Login timeout"), "{r:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "timed out after {:?}",
        start.elapsed()
    );
    assert!(c.is_closed());
}

#[test]
fn too_many_commands_queued_421() {
    let server = TestServer::start_with_config("[limits]\nmax_queued_commands = 2\n", &[]);
    sparse_file(&server, "big", 256 << 20);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let addr = epsv_addr(&mut c);
    c.expect("RETR big", 150);
    let mut data = connect_data(addr);
    let mut buf = [0u8; 4096];
    data.read_exact(&mut buf).unwrap();
    // PWD waits for the transfer; the third queued command is one too many.
    c.send("PWD");
    c.send("PWD");
    c.send("PWD");
    let r = c.expect_reply(421);
    assert!(r.text.contains("queued"), "{r:?}");
    assert!(c.is_closed());
}

/// Seed 10054: the client resets the control connection in the middle of an
/// upload. The session ends, the partial upload is removed (the default
/// policy, `keep_partial_uploads = false`), and the server goes on serving.
#[test]
fn control_reset_mid_upload_removes_partial_file() {
    use std::io::Write;
    let server = TestServer::start(&[]);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let addr = epsv_addr(&mut c);
    c.expect("STOR part", 150);
    let mut data = connect_data(addr);
    data.write_all(&[7u8; 100_000]).unwrap();
    // Leave an unread reply in the receive buffer: closing the socket then
    // sends a TCP reset rather than an orderly FIN.
    c.send("NOOP");
    let mut b = [0u8; 1];
    c.reader.get_ref().peek(&mut b).unwrap();
    drop(c);
    let root = server.root.clone();
    let empty = wait_until(Duration::from_secs(3), || {
        std::fs::read_dir(&root).unwrap().next().is_none()
    });
    assert!(
        empty,
        "left behind: {:?}",
        std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    drop(data);
    let mut c = server.login();
    c.expect("NOOP", 200);
}

/// 421 to every session when the server shuts down (REPLY-CODES.md).
#[test]
fn shutdown_421_to_every_session() {
    let server = TestServer::start(&[]);
    let mut logged_in = server.login();
    let mut fresh = server.client();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    for c in [&mut logged_in, &mut fresh] {
        let r = crate::common::read_reply(&mut c.reader).expect("a reply before the connection closes");
        assert_eq!(r.code, 421, "{r:?}");
        assert!(c.is_closed());
    }
}

/// SIGTERM during a transfer: the transfer finishes (226), then 421.
#[test]
fn shutdown_lets_a_running_transfer_finish() {
    let server = TestServer::start(&[]);
    let payload = crate::common::payload(4 << 20, 9);
    server.write("big.bin", &payload);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let mut data = c.epsv();
    c.send("RETR big.bin");
    let first = c.reply();
    assert!(first.code == 150 || first.code == 125, "{first:?}");
    // Read a little so the transfer is under way, then ask the server to stop.
    let mut head = vec![0u8; 64 * 1024];
    std::io::Read::read_exact(&mut data, &mut head).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut data, &mut rest).unwrap();
    head.extend_from_slice(&rest);
    assert!(
        head == payload,
        "the download was cut short: {} of {} bytes",
        head.len(),
        payload.len()
    );
    c.expect_reply(226);
    c.expect_reply(421);
    assert!(c.is_closed());
}
