//! Python's ftplib as the client: a full passive session, active mode,
//! REST, ASCII line-end conversion, ABOR in the middle of a download, and
//! STAT. Each test runs a short script; the script asserts what ftplib
//! sees, and the test checks the files on the server's disk.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{self, TestServer};

/// Opens the session every script starts from: `ftp` logged in as the
/// full-rights user, `LOCAL` the test's scratch directory.
const PRELUDE: &str = r#"
import ftplib, io, os, sys
PORT, LOCAL = int(sys.argv[1]), sys.argv[2]
ftp = ftplib.FTP()
ftp.connect("127.0.0.1", PORT, timeout=10)
ftp.login("user", "12345")

def local(name):
    with open(os.path.join(LOCAL, name), "rb") as f:
        return f.read()

def fetch(command, **kw):
    buf = io.BytesIO()
    resp = ftp.retrbinary(command, buf.write, **kw)
    assert resp.startswith("226"), resp
    return buf.getvalue()
"#;

/// Runs `body` after [`PRELUDE`]; returns the script's stdout. A failed
/// assertion in the script fails the test with the Python traceback.
pub(crate) fn ftplib(server: &TestServer, local: &Path, body: &str) -> String {
    let script = format!("{PRELUDE}\n{body}\nprint('done')\n");
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).arg(server.port().to_string()).arg(local);
    let (ok, out, err) = common::run(&mut cmd, Duration::from_secs(60));
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(ok, "ftplib script failed:\n{err}\nstdout:\n{out}");
    assert!(out.trim_end().ends_with("done"), "script did not finish: {out}");
    out
}

#[test]
fn ftplib_passive_session_covers_the_basic_commands() {
    let server = TestServer::start(&[]);
    let local = tempfile::tempdir().unwrap();
    let data = common::payload(333_333, 31);
    std::fs::write(local.path().join("src.bin"), &data).unwrap();

    ftplib(
        &server,
        local.path(),
        r#"
data = local("src.bin")
assert ftp.pwd() == "/", ftp.pwd()
assert ftp.mkd("work") == "/work"
assert ftp.cwd("work").startswith("250")
assert ftp.pwd() == "/work", ftp.pwd()

assert ftp.storbinary("STOR up.bin", io.BytesIO(data)).startswith("226")
assert ftp.storbinary("STOR other.bin", io.BytesIO(data[:1000])).startswith("226")
ftp.voidcmd("TYPE I")
assert ftp.size("up.bin") == len(data), ftp.size("up.bin")
assert fetch("RETR up.bin") == data

assert sorted(ftp.nlst()) == ["other.bin", "up.bin"], ftp.nlst()
facts = dict(ftp.mlsd(facts=["type", "size"]))
assert set(facts) == {"other.bin", "up.bin"}, facts
assert facts["up.bin"]["type"] == "file" and facts["up.bin"]["size"] == str(len(data)), facts
ftp.mkd("inner")
assert dict(ftp.mlsd("/work"))["inner"]["type"] == "dir"

assert ftp.rename("up.bin", "/kept.bin").startswith("250")
assert ftp.delete("other.bin").startswith("250")
try:
    ftp.delete("other.bin")
    raise AssertionError("deleting a missing file must fail")
except ftplib.error_perm as e:
    assert str(e).startswith("550"), e
ftp.rmd("inner")
ftp.cwd("..")
assert ftp.pwd() == "/"
ftp.rmd("work")
assert ftp.nlst() == ["kept.bin"], ftp.nlst()
assert ftp.quit().startswith("221")
"#,
    );

    assert!(!server.path("work").exists(), "RMD removed the directory");
    assert!(server.read("kept.bin") == data, "renamed upload keeps its bytes");
}

#[test]
fn ftplib_active_mode_uses_port() {
    let server = TestServer::start(&[]);
    let local = tempfile::tempdir().unwrap();
    let data = common::payload(200_000, 32);
    std::fs::write(local.path().join("src.bin"), &data).unwrap();
    server.write("listed/a.txt", b"a");

    let out = ftplib(
        &server,
        local.path(),
        r#"
ftp.set_pasv(False)
ftp.set_debuglevel(1)
data = local("src.bin")
assert ftp.storbinary("STOR active.bin", io.BytesIO(data)).startswith("226")
assert fetch("RETR active.bin") == data
assert ftp.nlst("listed") == ["a.txt"], ftp.nlst("listed")
lines = []
ftp.retrlines("LIST listed", lines.append)
assert len(lines) == 1 and lines[0].endswith(" a.txt"), lines
"#,
    );

    assert!(server.read("active.bin") == data, "active-mode upload stored the bytes");
    // ftplib's debug trace: every data connection was set up with PORT to
    // its loopback listener, each answered 200, and never PASV.
    let ports = out.matches("*cmd* 'PORT 127,0,0,1,").count();
    assert_eq!(ports, 4, "one PORT per transfer:\n{out}");
    assert_eq!(out.matches("*resp* '200 PORT").count(), 4, "PORT answered 200:\n{out}");
    assert!(!out.contains("PASV"), "active mode never sends PASV:\n{out}");
}

#[test]
fn ftplib_retrbinary_with_rest_offset() {
    let server = TestServer::start(&[]);
    let local = tempfile::tempdir().unwrap();
    let data = common::payload(500_000, 33);
    server.write("rest.bin", &data);
    std::fs::write(local.path().join("src.bin"), &data).unwrap();

    ftplib(
        &server,
        local.path(),
        r#"
data = local("src.bin")
for offset in (1, 4096, 499_999, 500_000):
    assert fetch("RETR rest.bin", rest=offset) == data[offset:], offset
assert fetch("RETR rest.bin") == data, "REST applies to one transfer only"
"#,
    );
}

#[test]
fn ftplib_ascii_lines_round_trip_with_crlf_conversion() {
    let server = TestServer::start(&[]);
    let local = tempfile::tempdir().unwrap();
    server.write("unix.txt", b"alpha\nbeta\n\ngamma\n");

    ftplib(
        &server,
        local.path(),
        r#"
text = io.BytesIO(b"line one\nline two\r\n\nline four\n")
assert ftp.storlines("STOR lines.txt", text).startswith("226")

lines = []
assert ftp.retrlines("RETR lines.txt", lines.append).startswith("226")
assert lines == ["line one", "line two", "", "line four"], lines

# TYPE A on the wire is CR LF, whatever the stored line ends.
ftp.voidcmd("TYPE A")
conn = ftp.transfercmd("RETR unix.txt")
wire = b""
while chunk := conn.recv(65536):
    wire += chunk
conn.close()
assert ftp.voidresp().startswith("226")
assert wire == b"alpha\r\nbeta\r\n\r\ngamma\r\n", wire
"#,
    );

    assert_eq!(
        server.read("lines.txt"),
        b"line one\nline two\n\nline four\n",
        "TYPE A upload is stored with LF line ends"
    );
}

#[test]
fn ftplib_abort_mid_download_keeps_the_session_usable() {
    let server = TestServer::start(&[]);
    let local = tempfile::tempdir().unwrap();
    // Larger than what the socket buffers can hold, so the transfer is
    // still running when ABOR arrives.
    let data = common::payload(24 * 1024 * 1024, 34);
    server.write("big.bin", &data);
    std::fs::write(local.path().join("src.bin"), &data).unwrap();

    ftplib(
        &server,
        local.path(),
        r#"
ftp.voidcmd("TYPE I")
conn = ftp.transfercmd("RETR big.bin")
assert conn.recv(65536), "some data arrived"

# STAT during a transfer reports on it (RFC 959 4.1.3).
status = ftp.sendcmd("STAT")
assert status.startswith("213") and "big.bin" in status, status

# ftplib sends ABOR as TCP urgent data and reads one reply; RFC 959 asks
# for 426 (transfer aborted) then 226 (abort done) while a transfer runs.
resp = ftp.abort()
conn.close()
assert resp.startswith("426"), resp
after = ftp.getmultiline()
assert after.startswith("226"), after

assert ftp.voidcmd("NOOP").startswith("200")
assert fetch("RETR big.bin") == local("src.bin"), "full download after ABOR"
"#,
    );
}

#[test]
fn ftplib_stat_reports_session_and_paths() {
    let server = TestServer::start(&[]);
    let local = tempfile::tempdir().unwrap();
    server.write("s/one.txt", b"12345");

    ftplib(
        &server,
        local.path(),
        r#"
ftp.voidcmd("TYPE I")
status = ftp.voidcmd("STAT")
assert status.startswith("211-") and status.rstrip().splitlines()[-1].startswith("211 "), status
assert "user" in status and "BINARY" in status, status

listing = ftp.sendcmd("STAT s")
assert listing.startswith("212-") or listing.startswith("213-"), listing
assert any(l.endswith(" one.txt") for l in listing.splitlines()), listing

try:
    ftp.sendcmd("STAT missing")
    raise AssertionError("STAT of a missing path must fail")
except ftplib.error_perm as e:
    assert str(e).startswith("550"), e
"#,
    );
}
