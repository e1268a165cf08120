//! Timeouts (docs/security.md, "Timeouts"): the login deadline under a
//! slowloris crowd, the idle timeout paused by a transfer, the maximum
//! session length (231), too many bad commands before login (421), and the
//! active-connect timeout against a port that drops SYNs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{self, TestServer};
use crate::replies_util::{connect_data, epsv_addr, sparse_file};
use crate::security_util::{assert_closed_within, reply_within};

const SECOND: Duration = Duration::from_secs(1);

/// 300 connections that send one byte a second and never finish a line:
/// each is dropped at the login timeout (2 s) counted from its connect,
/// however recently it sent a byte, while curl logs in and transfers.
#[test]
fn security_slowloris_login_deadline_while_curl_transfers() {
    const CROWD: usize = 300;
    let server = TestServer::start_with_config(
        "[limits]\nmax_sessions = 400\nmax_sessions_per_address = 400\n[timeouts]\nlogin = 2\n",
        &[],
    );
    let start = Instant::now();
    let crowd: Vec<TcpStream> = (0..CROWD)
        .map(|_| {
            let s = TcpStream::connect(server.addr).expect("slowloris connect");
            s.set_nodelay(true).unwrap();
            s
        })
        .collect();
    let connected = start.elapsed();
    assert!(connected < SECOND, "opening the crowd took {connected:?}");
    // One byte from each connection at 0 s, 0.9 s and 1.8 s: all before
    // the deadline, so a deadline extended by activity would end at 3.8 s
    // or later.
    let writers: Vec<TcpStream> = crowd.iter().map(|s| s.try_clone().unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut writers = writers;
            for round in 0..3u32 {
                let due = start + Duration::from_millis(900) * round;
                while Instant::now() < due && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                for w in &mut writers {
                    let _ = w.write_all(b"U");
                }
            }
        })
    };

    // Meanwhile a real client logs in and transfers both ways.
    let local = tempfile::tempdir().unwrap();
    let data = common::payload(1 << 20, 7);
    let file = local.path().join("up.bin");
    std::fs::write(&file, &data).unwrap();
    let curl = |args: &[&str]| {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-q",
            "-sS",
            "--noproxy",
            "*",
            "--connect-timeout",
            "10",
            "--max-time",
            "20",
        ]);
        cmd.args(args);
        common::run(&mut cmd, Duration::from_secs(30))
    };
    let (ok, _, err) = curl(&["-T", file.to_str().unwrap(), &server.url("/up.bin")]);
    assert!(ok, "curl upload during the slowloris crowd: {err}");
    let (ok, body, err) = curl(&[&server.url("/up.bin")]);
    assert!(ok, "curl download during the slowloris crowd: {err}");
    assert!(body == data, "downloaded {} bytes, expected {}", body.len(), data.len());
    let curl_done = start.elapsed();
    assert!(curl_done < Duration::from_millis(3300), "curl took until {curl_done:?}");

    // At 3.3 s every crowd connection has been answered 421 and closed.
    let check_at = start + Duration::from_millis(3300);
    std::thread::sleep(check_at.saturating_duration_since(Instant::now()));
    let mut open = 0;
    for mut s in crowd {
        s.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
                Err(_) => break true,
            }
        };
        if !closed {
            open += 1;
            continue;
        }
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("220 ") && text.contains("\r\n421 Login timeout"),
            "a crowd connection got {text:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    trickle.join().unwrap();
    assert_eq!(
        open, 0,
        "{open} of {CROWD} trickling connections outlived the login timeout"
    );
    // The server is still fine.
    let mut c = server.login();
    c.expect("NOOP", 200);
}

/// The idle timeout does not run while a transfer does: a download that
/// takes longer than the idle timeout completes, and the idle clock starts
/// again when it ends.
#[test]
fn security_idle_timeout_paused_during_a_longer_transfer() {
    let server = TestServer::start_with_config("[timeouts]\nidle = 1\n", &[]);
    let len = 32u64 << 20;
    sparse_file(&server, "big", len);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let addr = epsv_addr(&mut c);
    c.expect("RETR big", 150);
    let mut data = connect_data(addr);
    // The transfer cannot finish while nothing is read: 2.5 s, more than
    // twice the idle timeout, with no command sent.
    std::thread::sleep(Duration::from_millis(2500));
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got.len() as u64, len);
    c.expect_reply(226);
    c.expect("NOOP", 200);
    let idle_from = Instant::now();
    let r = c.expect_reply(421);
    assert!(r.text.contains("Idle timeout"), "{r:?}");
    assert!(idle_from.elapsed() >= Duration::from_millis(800));
}

/// `max_session_length`: a logged-in session is logged out with 231 and
/// closed; one still logging in gets 421; a running transfer finishes
/// first (226, then 231).
#[test]
fn security_max_session_length_231_after_the_running_transfer() {
    let server = TestServer::start_with_config("[limits]\nmax_session_length = 2\n", &[]);
    let len = 32u64 << 20;
    sparse_file(&server, "big", len);
    let start = Instant::now();
    let mut idle = server.login();
    let mut anonymous_pending = server.client();
    anonymous_pending.expect("USER anonymous", 331);
    let mut busy = server.login();
    busy.expect("TYPE I", 200);
    let addr = epsv_addr(&mut busy);
    busy.expect("RETR big", 150);
    let mut data = connect_data(addr);

    let r = idle.expect_reply(231);
    assert!(r.text.contains("Session time limit"), "{r:?}");
    let at = start.elapsed();
    assert!(at >= Duration::from_millis(1800) && at < SECOND * 5, "231 after {at:?}");
    assert_closed_within(&mut idle, SECOND * 5);
    let r = anonymous_pending.expect_reply(421);
    assert!(r.text.contains("Session time limit"), "{r:?}");

    // The busy session's transfer runs past the limit and completes.
    std::thread::sleep(Duration::from_millis(3000).saturating_sub(start.elapsed()));
    assert!(reply_within(&mut busy, Duration::from_millis(100)).is_none());
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got.len() as u64, len);
    busy.expect_reply(226);
    busy.expect_reply(231);
    assert_closed_within(&mut busy, SECOND * 5);
}

/// Before login, bad commands (lines that are not a valid command:
/// unknown, malformed, over-long) beyond `max_bad_commands_before_login`
/// (default 10) end the session with 421. Valid commands do not count, not
/// even those refused for want of a login (530); after login there is no
/// such limit.
#[test]
fn security_bad_commands_before_login_421() {
    let server = TestServer::start_with_config("[limits]\nmax_line_length = 64\n", &[]);
    let mut c = server.client();
    let bad: Vec<String> = vec![
        "GET / HTTP/1.1".into(),
        "Host: example.com".into(),
        "FOO".into(),
        "USER".into(),
        "REST abc".into(),
        "X".repeat(100),
        "PORT 1,2,3".into(),
        "EPRT |9|x|1|".into(),
        "RETR".into(),
        "BAR".into(),
    ];
    for (i, line) in bad.iter().enumerate() {
        let r = c.cmd(line);
        assert!(r.code >= 500, "bad command {i} {line:?} -> {r:?}");
        // Valid commands in between do not count.
        c.expect("NOOP", 200);
        c.expect("LIST", 530);
    }
    let r = c.cmd("BAZ");
    assert_eq!(r.code, 421, "{r:?}");
    assert!(r.text.contains("Too many bad commands"), "{r:?}");
    assert_closed_within(&mut c, SECOND * 5);

    let mut logged_in = server.login();
    for _ in 0..15 {
        logged_in.expect("FOO", 500);
    }
    logged_in.expect("NOOP", 200);
}

/// The same limit set in the file (3): the fourth bad command gets 421.
#[test]
fn security_bad_commands_limit_configurable() {
    let server = TestServer::start_with_config("[limits]\nmax_bad_commands_before_login = 3\n", &[]);
    let mut c = server.client();
    c.expect("FOO", 500);
    c.expect("CWD /", 530);
    c.expect("BAR", 500);
    c.expect("USER", 501);
    c.expect("BAZ", 421);
    assert_closed_within(&mut c, SECOND * 5);
}

/// The active connect times out (`timeouts.data_connection`) when the
/// target drops SYNs: a loopback listener with a backlog of 0 and its
/// accept queue already full does exactly that on Linux.
#[test]
fn security_active_connect_timeout_425() {
    let server = TestServer::start_with_config("[timeouts]\ndata_connection = 1\n", &[]);
    server.write("f", b"x");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hole = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        s.listen(0).unwrap()
    });
    let hole_addr = hole.local_addr().unwrap();
    // Fills the accept queue (never accepted).
    let _filler = TcpStream::connect(hole_addr).unwrap();
    let mut c = server.login();
    let port = hole_addr.port();
    c.expect(&format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xFF), 200);
    let start = Instant::now();
    c.expect("RETR f", 150);
    let r = c.expect_reply(425);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < SECOND * 5,
        "425 after {took:?}"
    );
    assert!(r.text.to_lowercase().contains("data connection"), "{r:?}");
    c.expect("NOOP", 200);
    drop(hole);
}
