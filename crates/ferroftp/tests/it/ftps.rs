//! FTPS (RFC 4217): explicit AUTH TLS and implicit TLS with real clients
//! (curl, lftp, Python's ftplib), the protection commands' replies, the
//! data-connection session-reuse rule, ALPN, CCC, the site policies of the
//! `[tls]` section, and certificates from PEM files reloaded on SIGHUP.
//!
//! TLS handshakes driven by hand use Python's `ssl` module: each script
//! below is [`PRELUDE`] (a small control-connection client) plus the test's
//! own lines, run with a deadline by `common::run`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{self, TestServer, PASS, USER};

const SELF_SIGNED: &[&str] = &["--tls-self-signed"];

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A control client for the scripts: `Ctl(port)`, `.tls()` (AUTH TLS and
/// the handshake), `.login()`, `.expect(line, code)`, and data transfers
/// whose TLS resumes the control session (`.retr`, `.stor`, `.list`).
const PRELUDE: &str = r#"
import ftplib, hashlib, io, os, signal, socket, ssl, sys, time
HOST = '127.0.0.1'

def insecure(alpn=None, max12=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    if max12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx

def client_hello():
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = insecure().wrap_bio(inc, out, server_hostname='localhost')
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()

def fp_of_pem(path):
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(open(path).read())).hexdigest()

class Ctl:
    def __init__(self, port, ctx=None, implicit=False):
        self.ctx = ctx or insecure()
        self.kept_session = None
        self.sock = socket.create_connection((HOST, port), timeout=20)
        if implicit:
            self.sock = self.ctx.wrap_socket(self.sock, server_hostname='localhost')
        self.f = self.sock.makefile('rb')
        self.greeting = self.reply()
        assert self.greeting[0] == 220, self.greeting

    def send(self, line):
        self.sock.sendall(line.encode() + b'\r\n')

    def reply(self):
        line = self.f.readline().decode()
        if not line:
            raise EOFError('connection closed')
        code, text = int(line[:3]), line[4:].rstrip('\r\n')
        if line[3:4] == '-':
            while True:
                more = self.f.readline().decode()
                if not more:
                    raise EOFError('connection closed mid-reply')
                text += '\n' + more.rstrip('\r\n')
                if more.startswith('%d ' % code):
                    break
        return code, text

    def cmd(self, line):
        self.send(line)
        return self.reply()

    def expect(self, line, code):
        r = self.cmd(line)
        assert r[0] == code, (line, r)
        return r

    def expect_reply(self, code):
        r = self.reply()
        assert r[0] == code, ('expected %d' % code, r)
        return r

    def tls(self):
        self.expect('AUTH TLS', 234)
        self.sock = self.ctx.wrap_socket(self.sock, server_hostname='localhost')
        self.f = self.sock.makefile('rb')

    def login(self):
        self.expect('USER user', 331)
        self.expect('PASS 12345', 230)
        self.expect('TYPE I', 200)

    def protect(self):
        self.expect('PBSZ 0', 200)
        self.expect('PROT P', 200)

    def epsv(self):
        r = self.expect('EPSV', 229)
        port = int(r[1].split('|||')[1].split('|')[0])
        return socket.create_connection((HOST, port), timeout=20)

    def session(self):
        # The control connection's TLS session; after .ccc() the one kept
        # (an unwrapped SSLSocket answers None).
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.session is not None:
            return self.sock.session
        return self.kept_session

    def data_tls(self, s):
        d = self.ctx.wrap_socket(s, server_hostname='localhost', session=self.session())
        assert d.session_reused, 'data connection did not resume the control session'
        self.data_cert = d.getpeercert(binary_form=True)
        return d

    def ccc(self):
        self.kept_session = self.sock.session
        self.expect('CCC', 200)
        self.sock = self.sock.unwrap()
        self.f = self.sock.makefile('rb')

    def fetch(self, line):
        s = self.epsv()
        r = self.cmd(line)
        assert r[0] in (125, 150), (line, r)
        d = self.data_tls(s)
        buf = bytearray()
        while True:
            chunk = d.recv(65536)
            if not chunk:
                break
            buf += chunk
        d.close()
        self.expect_reply(226)
        return bytes(buf)

    def retr(self, name):
        return self.fetch('RETR ' + name)

    def list(self, path=''):
        return self.fetch(('LIST ' + path).strip()).decode()

    def stor(self, name, data, after_handshake=None):
        s = self.epsv()
        r = self.cmd('STOR ' + name)
        assert r[0] in (125, 150), r
        d = self.data_tls(s)
        if after_handshake:
            after_handshake(d)
        d.sendall(data)
        try:
            d.unwrap()
        except (OSError, ValueError):
            pass
        d.close()
        self.expect_reply(226)

    def served_cert(self):
        return self.sock.getpeercert(binary_form=True)

def served_fp(port):
    c = Ctl(port)
    c.tls()
    fp = hashlib.sha256(c.served_cert()).hexdigest()
    c.sock.close()
    return fp

def refused(fn):
    # True when fn raised: a refused handshake or a closed connection.
    try:
        fn()
    except (OSError, EOFError):
        return True
    return False

def server_closes(s):
    # True once the server closes `s` (a plain socket), False on a timeout.
    s.settimeout(10)
    try:
        while s.recv(4096):
            pass
        return True
    except socket.timeout:
        return False
    except OSError:
        return True
"#;

/// Runs `PRELUDE` + `script` with `args` as `sys.argv[1..]`; asserts it
/// exits 0 and returns its stdout.
#[track_caller]
pub(crate) fn python(script: &str, args: &[&str]) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(format!("{PRELUDE}\n{script}")).args(args);
    let (ok, out, err) = common::run(&mut cmd, Duration::from_secs(40));
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(ok, "python script failed\nstdout:\n{out}\nstderr:\n{err}");
    out
}

fn port_arg(addr: std::net::SocketAddr) -> String {
    addr.port().to_string()
}

/// `curl -sS --max-time 20` plus `args`; asserts success, returns
/// (stdout, stderr).
#[track_caller]
pub(crate) fn curl(args: &[&str]) -> (Vec<u8>, String) {
    let (ok, out, err) = curl_status(args);
    assert!(ok, "curl {args:?} failed: {err}");
    (out, err)
}

fn curl_status(args: &[&str]) -> (bool, Vec<u8>, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20"]).args(args);
    common::run(&mut cmd, Duration::from_secs(30))
}

fn ftp_url(port: u16, path: &str) -> String {
    format!("ftp://{USER}:{PASS}@127.0.0.1:{port}{path}")
}

fn ftps_url(port: u16, path: &str) -> String {
    format!("ftps://{USER}:{PASS}@127.0.0.1:{port}{path}")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// `openssl req -x509` for CN=localhost (also valid for 127.0.0.1, so
/// curl can verify it without -k); returns (cert, key).
pub(crate) fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-days",
        "1",
    ])
    .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
    .arg("-keyout")
    .arg(&key)
    .arg("-out")
    .arg(&cert);
    let (ok, _, err) = common::run(&mut cmd, Duration::from_secs(30));
    assert!(ok, "openssl req failed: {err}");
    (cert, key)
}

/// `AA:BB:...` SHA-256 fingerprint of a PEM certificate, per openssl.
pub(crate) fn openssl_fingerprint(cert: &Path) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["x509", "-noout", "-fingerprint", "-sha256", "-in"]).arg(cert);
    let (ok, out, err) = common::run(&mut cmd, Duration::from_secs(10));
    assert!(ok, "openssl x509 failed: {err}");
    let out = String::from_utf8(out).unwrap();
    out.trim().split_once('=').expect("fingerprint line").1.to_uppercase()
}

/// Every entry under `root`: relative path -> bytes, `None` for a directory.
fn snapshot(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else {
                out.insert(rel, Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[track_caller]
fn assert_same_tree(expected: &Path, actual: &Path) {
    let (e, a) = (snapshot(expected), snapshot(actual));
    let names = |t: &BTreeMap<String, Option<Vec<u8>>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&e), names(&a), "tree entries differ");
    for (k, v) in &e {
        assert!(v == &a[k], "{k}: contents differ");
    }
}

// ---------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------

/// Explicit FTPS with curl: upload, download, resumed download and upload,
/// listing; session reuse is required (the default), so every PROT P
/// data connection must resume the control connection's session.
fn curl_explicit(tls_args: &[&str], version: &str) {
    let server = TestServer::start(SELF_SIGNED);
    let local = tempfile::tempdir().unwrap();
    let port = server.port();
    let tls = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["--ssl-reqd", "-k"].iter().map(|s| s.to_string()).collect();
        v.extend(tls_args.iter().map(|s| s.to_string()));
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&str]| {
        let args = tls(extra);
        curl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // Upload.
    let up = common::payload(300_000, 1);
    let up_path = local.path().join("up.bin");
    std::fs::write(&up_path, &up).unwrap();
    // curl before 8.10 never reads an upload's data connection (curl issues
    // #6149, #13556): the server sends it nothing after the handshake, so
    // closing it cannot reset away the upload's tail.
    run(&["-T", path_str(&up_path), &ftp_url(port, "/up.bin")]);
    assert!(server.read("up.bin") == up, "uploaded bytes differ");

    // Download.
    let down = common::payload(400_000, 2);
    server.write("dir/down.bin", &down);
    let (got, _) = run(&[&ftp_url(port, "/dir/down.bin")]);
    assert!(
        got == down,
        "downloaded bytes differ ({} of {} bytes)",
        got.len(),
        down.len()
    );

    // Resumed download: curl asks SIZE, then REST + RETR for the rest.
    let part = local.path().join("part.bin");
    std::fs::write(&part, &down[..123_457]).unwrap();
    run(&["-C", "-", "-o", path_str(&part), &ftp_url(port, "/dir/down.bin")]);
    assert!(std::fs::read(&part).unwrap() == down, "resumed download differs");

    // Resumed upload: SIZE, then APPE of the rest.
    server.write("resume.bin", &up[..77_777]);
    run(&["-C", "-", "-T", path_str(&up_path), &ftp_url(port, "/resume.bin")]);
    assert!(server.read("resume.bin") == up, "resumed upload differs");

    // Several transfers on one control connection: curl 7.88's OpenSSL
    // session cache uses a TLS 1.3 ticket once, so each download or
    // listing connection brings a fresh ticket for the next one to resume.
    // (Uploads bring none, see `SessionTls::upload_data`: with curl 7.88 a
    // transfer after an upload on the same connection cannot resume; curl
    // 8 keeps several tickets, see `libcurl8_uploads_and_transfers_share_one_session`.)
    let (a, b, c) = (local.path().join("a"), local.path().join("b"), local.path().join("c"));
    let (_, trace) = run(&[
        "-v",
        &ftp_url(port, "/dir/down.bin"),
        "-o",
        path_str(&a),
        &ftp_url(port, "/dir/"),
        "-o",
        path_str(&b),
        &ftp_url(port, "/up.bin"),
        "-o",
        path_str(&c),
    ]);
    assert_eq!(
        trace.matches("> AUTH ").count(),
        1,
        "curl did not keep one control connection: {trace}"
    );
    assert!(
        std::fs::read(&a).unwrap() == down && std::fs::read(&c).unwrap() == up,
        "multi-transfer bytes differ"
    );
    assert!(String::from_utf8_lossy(&std::fs::read(&b).unwrap()).contains("down.bin"));

    // Listing, with -v to see which TLS version was negotiated.
    let (listing, trace) = run(&["-v", &ftp_url(port, "/dir/")]);
    let listing = String::from_utf8_lossy(&listing);
    assert!(listing.contains("down.bin"), "listing: {listing}");
    assert!(
        trace.contains(&format!("SSL connection using {version}")),
        "expected {version}: {trace}"
    );
    assert!(
        trace.contains("PROT P"),
        "curl did not protect the data connection: {trace}"
    );
    let (names, _) = run(&["-l", &ftp_url(port, "/")]);
    let names = String::from_utf8_lossy(&names);
    for n in ["up.bin", "resume.bin", "dir"] {
        assert!(names.lines().any(|l| l.trim() == n), "NLST lacks {n}: {names}");
    }
}

#[test]
fn curl_explicit_tls13_with_session_reuse_required() {
    curl_explicit(&[], "TLSv1.3");
}

#[test]
fn curl_explicit_tls12_with_session_reuse_required() {
    curl_explicit(&["--tls-max", "1.2"], "TLSv1.2");
}

const LIBCURL8_SESSION: &str = r#"
import pycurl
port, size = int(sys.argv[1]), int(sys.argv[2])
print('LIBCURL', pycurl.version_info()[1])
c = pycurl.Curl()
c.setopt(pycurl.USERPWD, 'user:12345')
c.setopt(pycurl.USE_SSL, pycurl.USESSL_ALL)
c.setopt(pycurl.SSL_VERIFYPEER, 0)
c.setopt(pycurl.SSL_VERIFYHOST, 0)
c.setopt(pycurl.SSLVERSION, pycurl.SSLVERSION_TLSv1_3)
data = os.urandom(size)
steps = ['up a', 'up b', 'up c', 'list', 'up d', 'down a', 'up e', 'up f', 'up g']
for step in steps:
    verb, name = (step.split() + [''])[:2]
    buf = io.BytesIO()
    c.setopt(pycurl.UPLOAD, 1 if verb == 'up' else 0)
    c.setopt(pycurl.URL, 'ftp://%s:%d/%s' % (HOST, port, name + '.bin' if name else ''))
    if verb == 'up':
        c.setopt(pycurl.READDATA, io.BytesIO(data))
        c.setopt(pycurl.INFILESIZE, len(data))
    else:
        c.setopt(pycurl.WRITEDATA, buf)
    try:
        c.perform()
        ok = verb != 'down' or buf.getvalue() == data
        print('STEP', step, 'ok' if ok else 'differs')
    except pycurl.error as e:
        print('STEP', step, 'error', e.args)
print('CONNECTS', c.getinfo(pycurl.NUM_CONNECTS))
"#;

/// libcurl 8 (pycurl's wheel, installed by scripts/test) over TLS 1.3 with
/// session reuse required: uploads, a listing and a download on one control
/// connection all resume, though upload connections bring no new ticket
/// (libcurl 8 keeps several, or the control connection's last).
#[test]
fn libcurl8_uploads_and_transfers_share_one_session() {
    let server = TestServer::start(SELF_SIGNED);
    let out = python(LIBCURL8_SESSION, &[&server.port().to_string(), "500000"]);
    let version: Vec<u32> = out
        .lines()
        .find_map(|l| l.strip_prefix("LIBCURL "))
        .unwrap_or("0")
        .split('.')
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    assert!(
        version.as_slice() >= [8, 10].as_slice(),
        "pycurl's libcurl is not 8.10+: {out}"
    );
    let steps: Vec<&str> = out.lines().filter(|l| l.starts_with("STEP ")).collect();
    assert_eq!(steps.len(), 9, "{out}");
    assert!(steps.iter().all(|l| l.ends_with(" ok")), "{out}");
    assert!(
        out.contains("CONNECTS 1"),
        "libcurl opened a second control connection: {out}"
    );
    for name in ["a", "b", "c", "d", "e", "f", "g"] {
        assert_eq!(server.read(&format!("{name}.bin")).len(), 500_000, "{name}.bin");
    }
}

#[test]
fn curl_implicit_ftps() {
    let server = TestServer::start(&["--tls-self-signed", "--implicit-tls-listen", "127.0.0.1:0"]);
    let implicit = server.implicit_addr.expect("server printed an ftps:// listener");
    assert_ne!(implicit.port(), server.port());
    let fp = server.fingerprint.clone().expect("fingerprint printed");
    assert_eq!(fp.len(), 32 * 3 - 1, "fingerprint format: {fp}");
    let local = tempfile::tempdir().unwrap();
    let port = implicit.port();

    let up = common::payload(250_000, 3);
    let up_path = local.path().join("up.bin");
    std::fs::write(&up_path, &up).unwrap();
    curl(&["-k", "-T", path_str(&up_path), &ftps_url(port, "/up.bin")]);
    assert!(server.read("up.bin") == up, "uploaded bytes differ");

    let down = common::payload(350_000, 4);
    server.write("down.bin", &down);
    let (got, _) = curl(&["-k", &ftps_url(port, "/down.bin")]);
    assert!(got == down, "downloaded bytes differ");
    let (got, _) = curl(&["-k", "--tls-max", "1.2", &ftps_url(port, "/down.bin")]);
    assert!(got == down, "downloaded bytes differ (TLS 1.2)");

    let (listing, trace) = curl(&["-k", "-v", &ftps_url(port, "/")]);
    let listing = String::from_utf8_lossy(&listing);
    assert!(
        listing.contains("down.bin") && listing.contains("up.bin"),
        "listing: {listing}"
    );
    assert!(!trace.contains("AUTH TLS"), "implicit FTPS must not need AUTH: {trace}");

    // Plaintext on the implicit port gets no FTP greeting.
    let mut s = TcpStream::connect(implicit).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"USER user\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        !buf.starts_with(b"220"),
        "plaintext greeting on the implicit port: {buf:?}"
    );

    // The explicit port still greets in plaintext.
    let mut c = server.client();
    assert_eq!(c.greeting.code, 220);
    c.expect("NOOP", 200);
}

// ---------------------------------------------------------------------------
// lftp
// ---------------------------------------------------------------------------

#[test]
fn lftp_mirror_both_ways() {
    let server = TestServer::start(SELF_SIGNED);
    server.write("tree/a.txt", b"alpha\n");
    server.write("tree/sub/b.bin", &common::payload(200_000, 5));
    server.write("tree/sub/deeper/c.txt", b"");
    server.write("tree/sub/deeper/d.bin", &common::payload(70_001, 6));
    std::fs::create_dir_all(server.path("tree/empty")).unwrap();

    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    for (rel, data) in [
        ("x.txt", b"x-ray\n".to_vec()),
        ("y/z.bin", common::payload(150_000, 7)),
        ("y/w/v.txt", b"victor".to_vec()),
    ] {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    let script = format!(
        "set net:max-retries 1; set net:timeout 10; set net:reconnect-interval-base 1; set cmd:fail-exit yes; \
         set ssl:verify-certificate no; set ftp:ssl-force true; set ftp:ssl-protect-data true; \
         debug 5; open -u {USER},{PASS} ftp://127.0.0.1:{}; lcd {}; \
         mirror /tree down; mirror -R src /uploaded",
        server.port(),
        local.path().display()
    );
    let mut cmd = Command::new("lftp");
    cmd.arg("-c")
        .arg(script)
        .env("HOME", local.path())
        .current_dir(local.path());
    let (ok, out, trace) = common::run(&mut cmd, Duration::from_secs(60));
    assert!(
        ok,
        "lftp failed\nstdout: {}\ntrace:\n{trace}",
        String::from_utf8_lossy(&out)
    );
    let sent: Vec<&str> = trace
        .lines()
        .filter_map(|l| l.split_once("---> ").map(|(_, c)| c))
        .collect();
    for cmd in ["AUTH TLS", "PBSZ 0", "PROT P"] {
        assert!(
            sent.iter().any(|c| c.starts_with(cmd)),
            "lftp never sent {cmd}: {sent:?}"
        );
    }
    assert!(
        !sent.iter().any(|c| c.starts_with("PROT C")),
        "lftp fell back to PROT C: {sent:?}"
    );

    assert_same_tree(&server.path("tree"), &local.path().join("down"));
    assert_same_tree(&src, &server.path("uploaded"));
}

// ---------------------------------------------------------------------------
// Python ftplib
// ---------------------------------------------------------------------------

const FTPLIB_522: &str = r#"
port, up_path = int(sys.argv[1]), sys.argv[2]
f = ftplib.FTP_TLS(context=insecure(), timeout=20)
f.connect(HOST, port)
f.login('user', '12345')
f.prot_p()

def data_reply(fn):
    # The final reply of a data command whose TLS data connection failed.
    try:
        fn()
    except ftplib.error_perm as e:
        return str(e)
    except (OSError, EOFError):
        try:
            f.voidresp()
        except ftplib.error_perm as e:
            return str(e)
    return 'no error'

print('NLST', data_reply(lambda: f.nlst()))
print('RETR', data_reply(lambda: f.retrbinary('RETR down.bin', lambda b: None)))
print('STOR', data_reply(lambda: f.storbinary('STOR nope.bin', open(up_path, 'rb'))))
print('NOOP', f.voidcmd('NOOP'))
f.quit()
"#;

/// Plain ftplib never resumes the control session on data connections: the
/// default server (reuse required) answers 522 and writes nothing.
#[test]
fn ftplib_without_session_reuse_gets_522() {
    let server = TestServer::start(SELF_SIGNED);
    server.write("down.bin", &common::payload(100_000, 8));
    let local = tempfile::tempdir().unwrap();
    let up = local.path().join("up.bin");
    std::fs::write(&up, common::payload(100_000, 9)).unwrap();
    let out = python(FTPLIB_522, &[&server.port().to_string(), path_str(&up)]);
    for verb in ["NLST", "RETR", "STOR"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(verb))
            .unwrap_or_else(|| panic!("no {verb} line: {out}"));
        assert!(
            line.starts_with(&format!("{verb} 522")),
            "{verb}: expected 522, got {line:?}"
        );
    }
    assert!(out.contains("NOOP 200"), "session unusable after 522: {out}");
    assert!(!server.path("nope.bin").exists(), "a refused upload left a file");
}

const UPLOAD_CONNECTION_QUIET: &str = r#"
import select
port, size = int(sys.argv[1]), int(sys.argv[2])
c = Ctl(port)
c.tls()
c.login()
c.protect()
print('VERSION', c.sock.version())

def unread_after_handshake(d, secs):
    # Bytes the server sent on the data connection after its handshake
    # that sit unread in this side's kernel buffer (peeked, not consumed).
    raw = socket.socket(fileno=os.dup(d.fileno()))
    try:
        readable, _, _ = select.select([raw], [], [], secs)
        return len(raw.recv(65536, socket.MSG_PEEK)) if readable else 0
    finally:
        raw.close()

data = os.urandom(size)
for name in ('one.bin', 'two.bin'):
    c.stor(name, data, lambda d: print('UNREAD', name, unread_after_handshake(d, 1.0)))
    print('STOR', name, 'done')
print('SAME', c.retr('two.bin') == data and c.retr('one.bin') == data)
"#;

/// An upload's data connection carries nothing from the server before the
/// client's close: a TLS 1.3 ticket sent there would sit unread in the
/// client's socket, and closing a socket with unread input makes Linux
/// reset the connection and drop the upload's unsent tail (lftp got 426 on
/// about half its uploads). The next data connections still resume with
/// the control connection's tickets.
#[test]
fn upload_data_connection_gets_no_post_handshake_bytes() {
    let server = TestServer::start(SELF_SIGNED);
    let out = python(UPLOAD_CONNECTION_QUIET, &[&server.port().to_string(), "300000"]);
    assert!(out.contains("VERSION TLSv1.3"), "{out}");
    for name in ["one.bin", "two.bin"] {
        assert!(
            out.contains(&format!("UNREAD {name} 0")),
            "server wrote on an upload connection: {out}"
        );
        assert!(out.contains(&format!("STOR {name} done")), "{out}");
    }
    assert!(out.contains("SAME True"), "{out}");
}

const FTPLIB_TRANSFERS: &str = r#"
port, down_copy, up_path, reuse, max12 = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == 'reuse', sys.argv[5] == '1.2'

class ReusingFTP_TLS(ftplib.FTP_TLS):
    # Resumes the control connection's TLS session on data connections.
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
            assert conn.session_reused, 'data connection did not resume'
        return conn, size

cls = ReusingFTP_TLS if reuse else ftplib.FTP_TLS
f = cls(context=insecure(max12=max12), timeout=20)
f.connect(HOST, port)
f.login('user', '12345')
f.prot_p()
print('VERSION', f.sock.version())
print('NLST', sorted(f.nlst()))
buf = io.BytesIO()
f.retrbinary('RETR down.bin', buf.write)
open(down_copy, 'wb').write(buf.getvalue())
with open(up_path, 'rb') as src:
    print('STOR', f.storbinary('STOR up.bin', src))
print('NLST', sorted(f.nlst()))
f.quit()
"#;

/// Runs [`FTPLIB_TRANSFERS`] and checks the bytes both ways.
fn ftplib_transfers(server_args: &[&str], mode: &str, version: &str) {
    let server = TestServer::start(server_args);
    let down = common::payload(333_333, 10);
    server.write("down.bin", &down);
    let local = tempfile::tempdir().unwrap();
    let up = common::payload(222_222, 11);
    let up_path = local.path().join("up.bin");
    std::fs::write(&up_path, &up).unwrap();
    let copy = local.path().join("down.copy");
    let out = python(
        FTPLIB_TRANSFERS,
        &[
            &server.port().to_string(),
            path_str(&copy),
            path_str(&up_path),
            mode,
            version,
        ],
    );
    let expect_version = if version == "1.2" {
        "VERSION TLSv1.2"
    } else {
        "VERSION TLSv1.3"
    };
    assert!(out.contains(expect_version), "{out}");
    assert!(out.contains("NLST ['down.bin']"), "{out}");
    assert!(out.contains("STOR 226"), "{out}");
    assert!(out.contains("NLST ['down.bin', 'up.bin']"), "{out}");
    assert!(std::fs::read(&copy).unwrap() == down, "retrbinary bytes differ");
    assert!(server.read("up.bin") == up, "storbinary bytes differ");
}

#[test]
fn ftplib_works_when_session_reuse_not_required() {
    ftplib_transfers(&["--tls-self-signed", "--no-tls-session-reuse"], "plain", "1.3");
}

#[test]
fn ftplib_resuming_the_session_works_with_reuse_required() {
    ftplib_transfers(SELF_SIGNED, "reuse", "1.3");
    ftplib_transfers(SELF_SIGNED, "reuse", "1.2");
}

// ---------------------------------------------------------------------------
// Protection commands and their replies
// ---------------------------------------------------------------------------

#[test]
fn protection_command_sequence() {
    let server = TestServer::start(SELF_SIGNED);
    // Plaintext: FEAT advertises FTPS; PBSZ, PROT and CCC need AUTH first.
    let mut c = server.client();
    let feat = c.expect("FEAT", 211);
    for f in ["AUTH TLS", "PBSZ", "PROT"] {
        assert!(
            feat.text.lines().any(|l| l.trim() == f),
            "FEAT lacks {f}: {}",
            feat.text
        );
    }
    c.expect("PBSZ 0", 503);
    c.expect("PROT P", 503);
    c.expect("AUTH KERBEROS_V4", 504);
    c.login(USER, PASS);
    c.expect("PBSZ 0", 503);
    c.expect("PROT C", 503);
    c.expect("CCC", 533);
    c.expect("NOOP", 200);

    let script = r#"
c = Ctl(int(sys.argv[1]))
c.tls()
c.expect('PROT P', 503)      # PROT before PBSZ
c.expect('AUTH TLS', 503)    # already in TLS
c.login()
c.expect('PROT P', 503)
c.expect('PBSZ 0', 200)
c.expect('PROT S', 536)
c.expect('PROT E', 536)
c.expect('PROT C', 200)
# PROT C: a plaintext data connection.
s = c.epsv()
r = c.cmd('LIST')
assert r[0] in (125, 150), r
data = s.makefile('rb').read()
c.expect_reply(226)
assert b'hello.txt' in data, data
# PROT P: TLS on the data connection, resuming the control session.
c.expect('PROT P', 200)
assert c.retr('hello.txt') == b'hello\n'
c.expect('CCC', 533)         # not allowed by default; still in TLS
c.expect('NOOP', 200)
c.expect('QUIT', 221)
print('OK')
"#;
    server.write("hello.txt", b"hello\n");
    let out = python(script, &[&server.port().to_string()]);
    assert!(out.contains("OK"), "{out}");
}

/// After AUTH TLS nothing pipelined in plaintext behind it runs: the next
/// reply is the one for the first command sent inside TLS.
#[test]
fn plaintext_pipelined_after_auth_is_discarded() {
    let server = TestServer::start(SELF_SIGNED);
    server.write("victim.txt", b"still here");
    let script = r#"
c = Ctl(int(sys.argv[1]))
c.login()
c.sock.sendall(b'AUTH TLS\r\nDELE victim.txt\r\nMKD pwned\r\n')
c.expect_reply(234)
c.sock = c.ctx.wrap_socket(c.sock, server_hostname='localhost')
c.f = c.sock.makefile('rb')
# AUTH reset the login; the first reply in TLS answers USER, not DELE.
c.expect('USER user', 331)
c.expect('PASS 12345', 230)
c.expect('SIZE victim.txt', 213)
c.expect('NOOP', 200)
print('OK')
"#;
    let out = python(script, &[&server.port().to_string()]);
    assert!(out.contains("OK"), "{out}");
    assert_eq!(server.read("victim.txt"), b"still here", "pipelined DELE ran");
    assert!(!server.path("pwned").exists(), "pipelined MKD ran");
}

/// Handshakes cut off after half a ClientHello (on both ports), and one
/// left hanging, do not hurt the server: full FTPS sessions work after.
#[test]
fn truncated_handshakes_leave_server_healthy() {
    let server = TestServer::start(&["--tls-self-signed", "--implicit-tls-listen", "127.0.0.1:0"]);
    let implicit = server.implicit_addr.expect("implicit listener");
    server.write("f.bin", &common::payload(100_000, 12));
    let script = r#"
port, iport, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
hello = client_hello()
assert len(hello) > 100 and hello[0] == 0x16, hello[:8]
half = hello[:len(hello) // 2]
for i in range(20):
    if i % 2 == 0:
        c = Ctl(port)
        c.expect('AUTH TLS', 234)
        c.sock.sendall(half)
        c.sock.close()
    else:
        s = socket.create_connection((HOST, iport), timeout=20)
        s.sendall(half)
        s.close()
# Two more left hanging mid-handshake while the real sessions run.
hang1 = Ctl(port)
hang1.expect('AUTH TLS', 234)
hang1.sock.sendall(half)
hang2 = socket.create_connection((HOST, iport), timeout=20)
hang2.sendall(half)
os.kill(pid, 0)
c = Ctl(port)
c.tls()
c.login()
c.protect()
data = c.retr('f.bin')
c.stor('g.bin', data)
c.expect('QUIT', 221)
i = Ctl(iport, implicit=True)
i.login()
assert 'g.bin' in i.list(), 'listing'
i.expect('QUIT', 221)
hang1.sock.close()
hang2.close()
print('OK')
"#;
    let pid = server.pid().to_string();
    let out = python(script, &[&server.port().to_string(), &port_arg(implicit), &pid]);
    assert!(out.contains("OK"), "{out}");
    assert_eq!(server.read("g.bin"), server.read("f.bin"));
    // And a real client after all that.
    let (got, _) = curl(&["--ssl-reqd", "-k", &ftp_url(server.port(), "/g.bin")]);
    assert!(got == server.read("f.bin"), "curl download differs");
}

/// ALPACA defence: a client offering ALPN without "ftp" is refused; "ftp"
/// (alone or among others) and no ALPN at all are accepted. Explicit and
/// implicit alike.
#[test]
fn alpn_must_include_ftp() {
    let server = TestServer::start(&["--tls-self-signed", "--implicit-tls-listen", "127.0.0.1:0"]);
    let implicit = server.implicit_addr.expect("implicit listener");
    let script = r#"
port, iport = int(sys.argv[1]), int(sys.argv[2])
# Explicit: the handshake fails and the control connection is closed.
c = Ctl(port, ctx=insecure(alpn=['h2']))
raw = c.sock.dup()
assert refused(c.tls), 'ALPN h2 accepted after AUTH TLS'
assert server_closes(raw), 'control connection still open after the refused handshake'
assert refused(lambda: Ctl(iport, ctx=insecure(alpn=['h2']), implicit=True)), 'ALPN h2 accepted on the implicit port'
assert refused(lambda: Ctl(iport, ctx=insecure(alpn=['http/1.1', 'imap']), implicit=True)), 'ALPN http/1.1 accepted'
for alpn, selected in ((['ftp'], 'ftp'), (['h2', 'ftp'], 'ftp'), (None, None)):
    c = Ctl(port, ctx=insecure(alpn=alpn))
    c.tls()
    assert c.sock.selected_alpn_protocol() == selected, (alpn, c.sock.selected_alpn_protocol())
    c.login()
    c.expect('QUIT', 221)
    i = Ctl(iport, ctx=insecure(alpn=alpn), implicit=True)
    assert i.sock.selected_alpn_protocol() == selected, (alpn, i.sock.selected_alpn_protocol())
    i.login()
    i.expect('QUIT', 221)
print('OK')
"#;
    let out = python(script, &[&server.port().to_string(), &port_arg(implicit)]);
    assert!(out.contains("OK"), "{out}");
}

// ---------------------------------------------------------------------------
// Site policies ([tls] in the config file)
// ---------------------------------------------------------------------------

#[test]
fn require_for_login_refuses_user_before_auth() {
    let server = TestServer::start_with_config("[tls]\nself_signed = true\nrequire_for_login = true\n", &[]);
    assert!(server.fingerprint.is_some(), "FTPS not enabled by the config");
    let mut c = server.client();
    c.expect("USER user", 534);
    c.expect("USER anonymous", 534);
    c.expect("PASS 12345", 503);
    c.expect("NOOP", 200);
    let script = r#"
c = Ctl(int(sys.argv[1]))
c.expect('USER user', 534)
c.tls()
c.login()
c.expect('PWD', 257)
print('OK')
"#;
    let out = python(script, &[&server.port().to_string()]);
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn require_for_data_refuses_clear_data() {
    let server = TestServer::start_with_config("[tls]\nself_signed = true\nrequire_for_data = true\n", &[]);
    server.write("f.txt", b"protected\n");
    // Without TLS at all: no data transfers.
    let mut c = server.login();
    let _data = c.epsv();
    c.expect("LIST", 521);
    c.expect("RETR f.txt", 521);
    c.expect("NOOP", 200);
    let script = r#"
c = Ctl(int(sys.argv[1]))
c.tls()
c.login()
c.expect('PBSZ 0', 200)
c.expect('PROT C', 521)
s = c.epsv()
c.expect('LIST', 521)        # still PROT C (the default)
s.close()
c.expect('PROT P', 200)
assert 'f.txt' in c.list()
assert c.retr('f.txt') == b'protected\n'
c.expect('PROT C', 521)      # refused: stays P
assert c.retr('f.txt') == b'protected\n'
print('OK')
"#;
    let out = python(script, &[&server.port().to_string()]);
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn ccc_allowed_by_config_returns_to_plaintext() {
    let server = TestServer::start_with_config("[tls]\nself_signed = true\nallow_ccc = true\n", &[]);
    server.write("f.txt", b"after ccc\n");
    let script = r#"
c = Ctl(int(sys.argv[1]))
c.tls()
c.login()
c.protect()
assert c.retr('f.txt') == b'after ccc\n'
c.ccc()
c.expect('NOOP', 200)
c.expect('PWD', 257)         # still logged in
c.expect('CCC', 533)         # no longer in TLS
# The data channel stays protected (PROT P survives CCC).
assert c.retr('f.txt') == b'after ccc\n'
c.expect('QUIT', 221)
print('OK')
"#;
    let out = python(script, &[&server.port().to_string()]);
    assert!(out.contains("OK"), "{out}");
}

// ---------------------------------------------------------------------------
// Certificates from files, SIGHUP reload
// ---------------------------------------------------------------------------

#[test]
fn pem_certificate_verified_by_curl_and_reloaded_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert1, key1) = make_cert(dir.path(), "one");
    let (cert2, key2) = make_cert(dir.path(), "two");
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    std::fs::copy(&cert1, &cert).unwrap();
    std::fs::copy(&key1, &key).unwrap();

    let server = TestServer::start(&["--tls-cert", path_str(&cert), "--tls-key", path_str(&key)]);
    assert_eq!(
        server.fingerprint.as_deref(),
        Some(openssl_fingerprint(&cert1).as_str()),
        "printed fingerprint"
    );
    server.write("f.txt", b"verified\n");
    let port = server.port();
    let url = ftp_url(port, "/f.txt");

    // Verified against the certificate file: no -k.
    let (got, _) = curl(&["--ssl-reqd", "--cacert", path_str(&cert1), &url]);
    assert_eq!(got, b"verified\n");
    // Verification is real: the other certificate does not vouch for it.
    let (ok, _, err) = curl_status(&["--ssl-reqd", "--cacert", path_str(&cert2), &url]);
    assert!(!ok, "curl accepted a certificate it should not trust");
    assert!(
        err.contains("certificate") || err.contains("SSL"),
        "unexpected curl error: {err}"
    );

    // A session in TLS before the reload, new certificate files, SIGHUP:
    // new sessions get the new certificate, the old one keeps its own.
    let script = r#"
port, pid, old_pem, new_pem, cert, key, new_cert, new_key = sys.argv[1:9]
port, pid = int(port), int(pid)
old_fp, new_fp = fp_of_pem(old_pem), fp_of_pem(new_pem)
assert served_fp(port) == old_fp, 'before reload'
early = Ctl(port)
early.tls()
early.login()
early.protect()
for src, dst in ((new_cert, cert), (new_key, key)):
    tmp = dst + '.tmp'
    open(tmp, 'wb').write(open(src, 'rb').read())
    os.replace(tmp, dst)
os.kill(pid, signal.SIGHUP)
deadline = time.time() + 10
while served_fp(port) != new_fp:
    assert time.time() < deadline, 'the new certificate was not served within 10 s of SIGHUP'
    time.sleep(0.05)
# The session from before keeps its certificate, data connections too.
assert hashlib.sha256(early.served_cert()).hexdigest() == old_fp
assert early.retr('f.txt') == b'verified\n'
assert hashlib.sha256(early.data_cert).hexdigest() == old_fp, 'data connection certificate'
early.expect('QUIT', 221)
# A broken file and another SIGHUP: the last good certificate stays.
open(cert, 'w').write('not a certificate\n')
os.kill(pid, signal.SIGHUP)
time.sleep(0.5)
os.kill(pid, 0)
assert served_fp(port) == new_fp, 'a failed reload replaced the certificate'
print('OK')
"#;
    let pid = server.pid().to_string();
    let out = python(
        script,
        &[
            &port.to_string(),
            &pid,
            path_str(&cert1),
            path_str(&cert2),
            path_str(&cert),
            path_str(&key),
            path_str(&cert2),
            path_str(&key2),
        ],
    );
    assert!(out.contains("OK"), "{out}");

    let (got, _) = curl(&["--ssl-reqd", "--cacert", path_str(&cert2), &url]);
    assert_eq!(got, b"verified\n");
    let (ok, _, _) = curl_status(&["--ssl-reqd", "--cacert", path_str(&cert1), &url]);
    assert!(!ok, "the old certificate is still served after the reload");
}
