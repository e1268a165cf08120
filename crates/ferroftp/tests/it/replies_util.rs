//! Helpers for the `replies_*` modules: servers with a users file, data
//! connections set up by hand, MODE B and STRU P framing, and a server run
//! under a file-size limit.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{RawClient, Reply, TestServer};

/// The user that a users-file server adds besides the harness's own.
pub const ACCT_USER: &str = "acct-user";
pub const ACCT_PASS: &str = "acct-pw";
pub const ACCOUNT: &str = "acct1";

/// A TOML basic string holding `p`.
pub fn toml_str(p: &Path) -> String {
    let s = p.to_str().expect("UTF-8 path");
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Writes a users file with `ferroftp user add`, gives its one user the
/// account `acct1` with `account_required = requirement` ("login" or
/// "store"), and starts a server with `[auth] users_file` pointing at it.
/// The returned directory holds the file; keep it alive with the server.
pub fn server_with_account(requirement: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_ferroftp"))
        .args(["user", "add", "--file"])
        .arg(&users)
        .args([ACCT_USER, "--password", ACCT_PASS])
        .output()
        .expect("run ferroftp user add");
    assert!(
        out.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The user's table is the last one in the file, so lines appended at the
    // end belong to it.
    let mut text = std::fs::read_to_string(&users).unwrap();
    text.push_str(&format!(
        "account = \"{ACCOUNT}\"\naccount_required = \"{requirement}\"\n"
    ));
    std::fs::write(&users, text).unwrap();
    let server = TestServer::start_with_config(&format!("[auth]\nusers_file = {}\n", toml_str(&users)), &[]);
    (server, dir)
}

/// Makes `rel` a sparse file of `len` bytes: large enough that a transfer
/// cannot finish while the client does not read, and free to create.
pub fn sparse_file(server: &TestServer, rel: &str, len: u64) {
    let f = std::fs::File::create(server.path(rel)).unwrap();
    f.set_len(len).unwrap();
}

/// A listener for an active data connection and its PORT argument.
pub fn active_listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, format!("127,0,0,1,{},{}", port >> 8, port & 0xFF))
}

/// A local port with nothing listening on it (bound, then released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The numbers inside the parentheses of a 227/228 reply.
pub fn paren_numbers(text: &str) -> Vec<u16> {
    let inner = text
        .split('(')
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("parenthesised address");
    inner.split(',').map(|x| x.trim().parse().expect("number")).collect()
}

pub fn connect_data(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("data connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// EPSV without connecting yet. A client that connects only after sending
/// the transfer command always gets 150 (the server waits for it); one that
/// connects first may get 125 (already open).
pub fn epsv_addr(c: &mut RawClient) -> SocketAddr {
    let r = c.expect("EPSV", 229);
    let port: u16 = r
        .text
        .split("|||")
        .nth(1)
        .and_then(|s| s.split('|').next())
        .and_then(|p| p.parse().ok())
        .expect("EPSV port");
    SocketAddr::new(c.addr.ip(), port)
}

/// EPSV and connect, then give the server time to accept the
/// connection: a NOOP round trip, plus `settle` for retries. Nothing on the
/// wire tells the client the server has accepted, so callers that need the
/// connection to be established server-side retry with a longer settle.
pub fn epsv_connected(c: &mut RawClient, settle: Duration) -> TcpStream {
    let s = c.epsv();
    std::thread::sleep(settle);
    c.expect("NOOP", 200);
    s
}

/// A MODE B block: descriptor, 16-bit big-endian count, data.
pub fn block(descriptor: u8, data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("block fits");
    let mut v = vec![descriptor];
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(data);
    v
}

pub const EOF_BLOCK: u8 = 64;
pub const MARKER_BLOCK: u8 = 16;

/// Reads MODE B blocks up to and including the end-of-file block; returns
/// the blocks as (descriptor, data).
pub fn read_blocks(s: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    let mut blocks = Vec::new();
    loop {
        let mut h = [0u8; 3];
        s.read_exact(&mut h).expect("block header");
        let len = u16::from_be_bytes([h[1], h[2]]) as usize;
        let mut data = vec![0u8; len];
        s.read_exact(&mut data).expect("block data");
        let eof = h[0] & EOF_BLOCK != 0;
        blocks.push((h[0], data));
        if eof {
            return blocks;
        }
    }
}

/// A STRU P page header (4 bytes: header length, index, data length, type).
pub fn page(index: u8, kind: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![4, index, u8::try_from(data.len()).expect("page fits"), kind];
    v.extend_from_slice(data);
    v
}

/// Polls `cond` every 20 ms for at most `limit`.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines of a multi-line reply between its first and last line.
pub fn body_lines(r: &Reply) -> Vec<&str> {
    let lines: Vec<&str> = r.text.lines().collect();
    assert!(lines.len() >= 2, "not a multi-line reply: {r:?}");
    lines[1..lines.len() - 1].to_vec()
}

/// `ferroftp serve` started through `sh` so that it runs with SIGXFSZ
/// ignored and `ulimit -f` set: a write past the limit then fails with
/// EFBIG instead of killing the process. Killed on drop.
pub struct LimitedServer {
    child: Child,
    pub addr: SocketAddr,
    pub root: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl LimitedServer {
    /// `blocks` is the shell's `ulimit -f` argument (512- or 1024-byte
    /// units depending on the shell; callers stay far from the boundary).
    pub fn start(blocks: u64) -> LimitedServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let script = "trap '' XFSZ; ulimit -f \"$1\" || exit 97; shift; exec \"$@\"";
        let mut child = Command::new("sh")
            .args([
                "-c",
                script,
                "sh",
                &blocks.to_string(),
                env!("CARGO_BIN_EXE_ferroftp"),
                "serve",
            ])
            .args(["--listen", "127.0.0.1:0", "--root"])
            .arg(&root)
            .args(["--user", "user:12345"])
            .env("FERROFTP_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sh");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("ferroftp exited before listening").expect("stdout");
            if let Some(rest) = line.split("listening on ftp://").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().expect("listen address");
            }
        };
        std::thread::spawn(move || for _ in lines {});
        LimitedServer {
            child,
            addr,
            root,
            _dir: dir,
        }
    }

    pub fn login(&self) -> RawClient {
        let mut c = RawClient::connect(self.addr);
        c.login("user", "12345");
        c
    }
}

impl Drop for LimitedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes all of `bytes` then closes the sending side.
pub fn send_and_close(mut s: TcpStream, bytes: &[u8]) {
    s.write_all(bytes).unwrap();
    let _ = s.shutdown(std::net::Shutdown::Write);
    drop(s);
}
