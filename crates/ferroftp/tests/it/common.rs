//! Test harness shared by the integration tests: starts the real
//! `ferroftp` binary on port 0 over a temporary root, and a raw control
//! client that reads whole (multi-line) replies.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "user";
pub const PASS: &str = "12345";

/// A running `ferroftp serve`, killed on drop.
pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
    pub root: PathBuf,
    /// The first implicit FTPS listener ("listening on ftps://" line).
    pub implicit_addr: Option<SocketAddr>,
    /// The printed "FTPS certificate SHA-256 fingerprint", `AA:BB:...`.
    pub fingerprint: Option<String>,
    /// How it was started, for [`TestServer::crash_and_restart`].
    listen: String,
    args: Vec<String>,
    tls_hint: bool,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// `ferroftp serve --listen 127.0.0.1:0 --root DIR --user user:12345
    /// --anonymous` plus `extra` arguments.
    pub fn start(extra: &[&str]) -> TestServer {
        Self::start_with(&["--user", &format!("{USER}:{PASS}"), "--anonymous"], extra)
    }

    /// Like [`start`](TestServer::start) with a config file written from
    /// `toml` (its `[storage] root` is overridden by `--root`).
    pub fn start_with_config(toml: &str, extra: &[&str]) -> TestServer {
        Self::start_with_config_on("127.0.0.1:0", toml, extra)
    }

    /// Like [`start_with_config`](TestServer::start_with_config), listening
    /// on `listen` instead of 127.0.0.1.
    pub fn start_with_config_on(listen: &str, toml: &str, extra: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("ferroftp.toml");
        std::fs::write(&cfg, toml).expect("write config");
        let cfg = cfg.to_str().unwrap().to_string();
        let mut args = vec!["--config", cfg.as_str(), "--user", "user:12345", "--anonymous"];
        args.extend_from_slice(extra);
        Self::spawn_inner(dir, listen, &args, toml.contains("[tls]"))
    }

    pub fn start_with(base: &[&str], extra: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        Self::spawn(dir, &args)
    }

    fn spawn(dir: tempfile::TempDir, args: &[&str]) -> TestServer {
        Self::spawn_inner(dir, "127.0.0.1:0", args, false)
    }

    /// `tls_hint`: FTPS may be configured (besides the TLS flags, which
    /// are detected here), so the "ftps://" and fingerprint lines printed
    /// after the "ftp://" lines are worth waiting for.
    fn spawn_inner(dir: tempfile::TempDir, listen: &str, args: &[&str], tls_hint: bool) -> TestServer {
        let tls_hint = tls_hint
            || args
                .iter()
                .any(|a| matches!(*a, "--tls-self-signed" | "--tls-cert" | "--implicit-tls-listen"));
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).expect("root");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (child, addr, implicit_addr, fingerprint) = Self::spawn_child(&root, listen, &args, tls_hint);
        TestServer {
            child,
            addr,
            root,
            implicit_addr,
            fingerprint,
            listen: listen.to_string(),
            args,
            tls_hint,
            _dir: dir,
        }
    }

    /// Kills the server with SIGKILL, as a crash or the OOM killer would
    /// (no clean-up of any kind runs), and starts it again with the same
    /// arguments on the same root; `addr` is the new listener's.
    pub fn crash_and_restart(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
        let (child, addr, implicit_addr, fingerprint) =
            Self::spawn_child(&self.root, &self.listen, &self.args, self.tls_hint);
        self.child = child;
        self.addr = addr;
        self.implicit_addr = implicit_addr;
        self.fingerprint = fingerprint;
    }

    /// Starts `ferroftp serve` on `root` and waits for its listening lines.
    fn spawn_child(
        root: &Path,
        listen: &str,
        args: &[String],
        tls_hint: bool,
    ) -> (Child, SocketAddr, Option<SocketAddr>, Option<String>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferroftp"))
            .arg("serve")
            .args(["--listen", listen, "--root"])
            .arg(root)
            .args(args)
            .env(
                "FERROFTP_LOG",
                std::env::var("TEST_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ferroftp");
        let stdout = child.stdout.take().expect("stdout");
        // Keep draining stdout so the server never blocks on a full pipe;
        // lines go to `rx` for as long as it is listened to.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut implicit_addr = None;
        let mut fingerprint = None;
        let mut note = |line: &str| {
            if let Some(rest) = line.split("listening on ftps://").nth(1) {
                let a: SocketAddr = rest
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse()
                    .expect("implicit FTPS address");
                implicit_addr.get_or_insert(a);
            }
            if let Some(rest) = line.split("fingerprint ").nth(1) {
                fingerprint = Some(rest.trim().to_string());
            }
        };
        let addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("ferroftp exited before listening");
            note(&line);
            if let Some(rest) = line.split("listening on ftp://").nth(1) {
                let addr = rest.split_whitespace().next().unwrap();
                break addr.parse().expect("listen address");
            }
        };
        if tls_hint {
            // Printed right after the "ftp://" lines, before serving.
            while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
                note(&line);
                if line.contains("fingerprint ") {
                    break;
                }
            }
        }
        (child, addr, implicit_addr, fingerprint)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `ftp://user:12345@127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("ftp://{USER}:{PASS}@127.0.0.1:{}{path}", self.port())
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    pub fn write(&self, rel: &str, data: &[u8]) {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, data).unwrap();
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn client(&self) -> RawClient {
        RawClient::connect(self.addr)
    }

    /// A client already logged in as the full-rights user.
    pub fn login(&self) -> RawClient {
        let mut c = self.client();
        c.login(USER, PASS);
        c
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The configuration file given with `--config` (`start_with_config`).
    pub fn config_file(&self) -> PathBuf {
        let at = self
            .args
            .iter()
            .position(|a| a == "--config")
            .expect("started with --config");
        PathBuf::from(&self.args[at + 1])
    }

    /// Sends SIGHUP (reload the configuration, users and certificates).
    pub fn sighup(&self) {
        // SAFETY: kill(2) on the child's own pid.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGHUP) };
        assert_eq!(rc, 0, "kill -HUP");
    }

    /// The server's threads named `name` (`/proc/<pid>/task/*/comm`).
    pub fn threads_named(&self, name: &str) -> usize {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.pid())).unwrap();
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim() == name)
            .count()
    }

    /// Waits up to 10 s for the server to have `want` threads named `name`.
    pub fn wait_for_threads_named(&self, name: &str, want: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.threads_named(name) != want {
            assert!(
                std::time::Instant::now() < deadline,
                "{} {name} threads, expected {want}",
                self.threads_named(name)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One reply: its code and its full text (all lines, CR LF removed).
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

/// A control connection driven by hand, for exact reply codes.
pub struct RawClient {
    pub reader: BufReader<TcpStream>,
    pub addr: SocketAddr,
    pub greeting: Reply,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        // Commands are small writes; without NODELAY every one waits for
        // the server's delayed ACK.
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut reader = BufReader::new(stream);
        let greeting = read_reply(&mut reader).expect("greeting");
        RawClient { reader, addr, greeting }
    }

    pub fn send(&mut self, line: &str) {
        self.send_bytes(line.as_bytes());
    }

    pub fn send_bytes(&mut self, line: &[u8]) {
        let s = self.reader.get_mut();
        s.write_all(line).unwrap();
        s.write_all(b"\r\n").unwrap();
    }

    pub fn reply(&mut self) -> Reply {
        read_reply(&mut self.reader).expect("reply")
    }

    /// Sends a command and returns its reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        self.reply()
    }

    /// Sends a command and asserts the reply code.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line);
        assert_eq!(r.code, code, "{line:?} -> {r:?}");
        r
    }

    pub fn expect_reply(&mut self, code: u16) -> Reply {
        let r = self.reply();
        assert_eq!(r.code, code, "expected {code}, got {r:?}");
        r
    }

    pub fn login(&mut self, user: &str, pass: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {pass}"), 230);
    }

    /// EPSV: the address the server announced (its control address's IP).
    pub fn epsv_addr(&mut self) -> SocketAddr {
        let r = self.expect("EPSV", 229);
        let port: u16 = r
            .text
            .split("|||")
            .nth(1)
            .and_then(|s| s.split('|').next())
            .and_then(|p| p.parse().ok())
            .expect("EPSV port");
        SocketAddr::new(self.addr.ip(), port)
    }

    /// EPSV and connect to the announced port.
    pub fn epsv(&mut self) -> TcpStream {
        let addr = self.epsv_addr();
        let s = TcpStream::connect(addr).expect("data connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    /// PASV and connect to the announced address.
    pub fn pasv(&mut self) -> TcpStream {
        let r = self.expect("PASV", 227);
        let inner = r
            .text
            .split('(')
            .nth(1)
            .and_then(|s| s.split(')').next())
            .expect("PASV tuple");
        let n: Vec<u16> = inner.split(',').map(|x| x.trim().parse().unwrap()).collect();
        let port = n[4] * 256 + n[5];
        let s =
            TcpStream::connect((format!("{}.{}.{}.{}", n[0], n[1], n[2], n[3]).as_str(), port)).expect("data connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    /// Runs a download-type command (RETR, LIST, NLST, MLSD) over EPSV and
    /// returns the bytes and the final reply.
    pub fn fetch(&mut self, line: &str) -> (Vec<u8>, Reply) {
        let mut data = self.epsv();
        let first = self.cmd(line);
        assert!(first.code == 150 || first.code == 125, "{line:?} -> {first:?}");
        let mut buf = Vec::new();
        data.read_to_end(&mut buf).unwrap();
        (buf, self.reply())
    }

    /// Runs an upload command over EPSV and returns the final reply.
    pub fn put(&mut self, line: &str, bytes: &[u8]) -> Reply {
        let mut data = self.epsv();
        let first = self.cmd(line);
        assert!(first.code == 150 || first.code == 125, "{line:?} -> {first:?}");
        data.write_all(bytes).unwrap();
        drop(data);
        self.reply()
    }

    /// True once the server has closed the control connection.
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0) | Err(_))
    }
}

/// Reads one complete reply, multi-line aware (RFC 959 §4.2).
pub fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut first = String::new();
    if reader.read_line(&mut first)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let first = first.trim_end_matches(['\r', '\n']).to_string();
    let code: u16 = first
        .get(..3)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad reply line {first:?}"));
    let mut text = first.get(4..).unwrap_or("").to_string();
    if first.as_bytes().get(3) == Some(&b'-') {
        let end = format!("{code} ");
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed mid-reply",
                ));
            }
            let line = line.trim_end_matches(['\r', '\n']);
            text.push('\n');
            if let Some(rest) = line.strip_prefix(&end) {
                text.push_str(rest);
                break;
            }
            text.push_str(line);
        }
    }
    Ok(Reply { code, text })
}

/// Runs a command with a deadline; returns (status success, stdout, stderr).
pub fn run(cmd: &mut Command, timeout: Duration) -> (bool, Vec<u8>, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let start = Instant::now();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    });
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.success(), out_t.join().unwrap(), err_t.join().unwrap());
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} timed out; stderr: {}", err_t.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deterministic pseudo-random bytes for payloads.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
