//! Helpers for the `safety_*` modules: servers with a users file written by
//! `ferroftp user add`, uploads that are expected to fail mid-transfer or
//! that trickle slowly, a connection reset, and a small tmpfs.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{RawClient, Reply, TestServer};
use crate::replies_util::{connect_data, epsv_addr, toml_str};

pub const PASSWORD: &str = "pw-safety";

/// Adds `name` to the users file `file` with `ferroftp user add` and the
/// extra arguments (`--home`, `--permissions`, `--quota-bytes`...).
pub fn user_add(file: &Path, name: &str, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferroftp"))
        .args(["user", "add", "--file"])
        .arg(file)
        .args([name, "--password", PASSWORD])
        .args(args)
        .output()
        .expect("run ferroftp user add");
    assert!(
        out.status.success(),
        "user add {name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server whose users file holds `users` (name, `user add` arguments),
/// with `extra_toml` appended to its config (e.g. a `[storage]` table).
/// The returned directory holds the users file; keep it with the server.
pub fn server_with_users(users: &[(&str, &[&str])], extra_toml: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("users.toml");
    for (name, args) in users {
        user_add(&file, name, args);
    }
    let toml = format!("[auth]\nusers_file = {}\n{extra_toml}", toml_str(&file));
    (TestServer::start_with_config(&toml, &[]), dir)
}

/// Logs `name` in (password [`PASSWORD`]) and sets TYPE I.
pub fn login_as(server: &TestServer, name: &str) -> RawClient {
    let mut c = server.client();
    c.login(name, PASSWORD);
    c.expect("TYPE I", 200);
    c
}

/// An upload over EPSV that may be cut short by the server: sends `data`
/// (ignoring a refused write once the server gives up), closes, and
/// returns the final reply.
pub fn put_any(c: &mut RawClient, line: &str, data: &[u8]) -> Reply {
    let addr = epsv_addr(c);
    let first = c.cmd(line);
    if first.code != 150 && first.code != 125 {
        return first;
    }
    let mut d = connect_data(addr);
    for chunk in data.chunks(64 * 1024) {
        if d.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = d.shutdown(std::net::Shutdown::Write);
    drop(d);
    c.reply()
}

/// An upload that must start (150/125) and then fail mid-transfer with
/// `code`.
pub fn put_fails_midway(c: &mut RawClient, line: &str, data: &[u8], code: u16) -> Reply {
    let addr = epsv_addr(c);
    let first = c.cmd(line);
    assert!(
        first.code == 150 || first.code == 125,
        "{line} did not start: {first:?}"
    );
    let mut d = connect_data(addr);
    for chunk in data.chunks(64 * 1024) {
        if d.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = d.shutdown(std::net::Shutdown::Write);
    drop(d);
    let r = c.reply();
    assert_eq!(r.code, code, "{line}: {r:?}");
    r
}

/// An upload refused before any 150 with `code`.
pub fn put_refused(c: &mut RawClient, line: &str, code: u16) -> Reply {
    epsv_addr(c);
    let r = c.cmd(line);
    assert_eq!(r.code, code, "{line} must be refused at once: {r:?}");
    r
}

/// Downloads `path`, asserting 150/125 then 226.
pub fn get(c: &mut RawClient, path: &str) -> Vec<u8> {
    let (data, r) = c.fetch(&format!("RETR {path}"));
    assert_eq!(r.code, 226, "RETR {path}: {r:?}");
    data
}

/// An upload the test feeds by hand: the data connection stays open until
/// [`Trickle::finish`].
pub struct Trickle {
    pub data: TcpStream,
}

impl Trickle {
    /// Sends `line` (a STOR or APPE) and connects; 150 or 125 expected.
    pub fn start(c: &mut RawClient, line: &str) -> Trickle {
        let addr = epsv_addr(c);
        let first = c.cmd(line);
        assert!(first.code == 150 || first.code == 125, "{line}: {first:?}");
        Trickle {
            data: connect_data(addr),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.data.write_all(bytes).expect("trickle write");
    }

    /// Closes the data connection and returns the final reply.
    pub fn finish(self, c: &mut RawClient) -> Reply {
        let _ = self.data.shutdown(std::net::Shutdown::Write);
        drop(self.data);
        c.reply()
    }
}

/// Resets the control connection: a reply left unread in the receive
/// buffer makes the close send a TCP RST instead of a FIN.
pub fn reset(mut c: RawClient) {
    c.send("NOOP");
    let mut b = [0u8; 1];
    c.reader.get_ref().peek(&mut b).expect("NOOP reply arrives");
    drop(c);
}

/// Names in `dir` (sorted), hidden upload files included.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A tmpfs mounted on a directory for the test's duration (unmounted on
/// drop). Tests run as root (in CI too); where mounting is not permitted
/// the test fails with the reason rather than passing without its check.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount(8): {e}"));
        assert!(
            out.status.success(),
            "this test needs to mount a small tmpfs and could not: `mount -t tmpfs -o size={size} tmpfs {}` \
             failed: {}. Run the tests as root (as CI does) or in a container allowed to mount; \
             the full-disk behaviour is not checked otherwise.",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a server being killed): detach it now, freed
            // when the last user lets go.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Reads from `s` until EOF.
pub fn read_all(mut s: TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    s.read_to_end(&mut v).unwrap();
    v
}

/// Polls every 20 ms for at most `limit`.
pub fn eventually(limit: Duration, cond: impl FnMut() -> bool) -> bool {
    crate::replies_util::wait_until(limit, cond)
}
