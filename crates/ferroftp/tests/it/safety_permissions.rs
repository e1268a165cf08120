//! Per-user permissions (docs/security.md, "Permissions"), one test per
//! permission. Each writes a users file with `ferroftp user add
//! --permissions`: user `without` has every permission but the one under
//! test and gets 550 for the command it guards (and nothing changes);
//! user `only` has that permission alone and the command works.

use crate::common::{RawClient, TestServer};
use crate::safety_util::{get, login_as, put_any, server_with_users};

const ALL: [&str; 9] = [
    "list", "read", "write", "append", "delete", "rename", "mkdir", "rmdir", "chmod",
];

/// A server with `without` (all but `permission`) and `only`
/// (`permission`), both rooted at the storage root, which holds a file `f`
/// ("data") and an empty directory `d`.
fn server_for(permission: &str) -> (TestServer, tempfile::TempDir) {
    let others: Vec<&str> = ALL.iter().copied().filter(|p| *p != permission).collect();
    let others = others.join(",");
    let (server, users) = server_with_users(
        &[
            ("without", &["--permissions", &others]),
            ("only", &["--permissions", permission]),
        ],
        "",
    );
    server.write("f", b"data");
    std::fs::create_dir(server.path("d")).unwrap();
    (server, users)
}

fn denied(c: &mut RawClient, line: &str) {
    let r = c.cmd(line);
    assert_eq!(r.code, 550, "{line}: {r:?}");
    assert!(r.text.contains("Permission denied"), "{line}: {r:?}");
}

#[test]
fn permission_list() {
    let (server, _u) = server_for("list");
    let mut c = login_as(&server, "without");
    for line in ["LIST", "NLST", "MLSD", "MLST f", "STAT ."] {
        denied(&mut c, line);
    }
    let mut c = login_as(&server, "only");
    c.expect("STAT .", 212);
    let (names, r) = c.fetch("NLST");
    assert_eq!(r.code, 226);
    let listed = String::from_utf8(names).unwrap();
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort();
    assert_eq!(listed, ["d", "f"]);
}

#[test]
fn permission_read() {
    let (server, _u) = server_for("read");
    let mut c = login_as(&server, "without");
    c.epsv();
    denied(&mut c, "RETR f");
    let mut c = login_as(&server, "only");
    assert_eq!(get(&mut c, "f"), b"data");
}

#[test]
fn permission_write() {
    let (server, _u) = server_for("write");
    let mut c = login_as(&server, "without");
    c.epsv();
    denied(&mut c, "STOR new");
    c.epsv();
    denied(&mut c, "STOU");
    c.epsv();
    denied(&mut c, "STOR f");
    assert!(!server.path("new").exists());
    assert_eq!(server.read("f"), b"data");
    let mut c = login_as(&server, "only");
    assert_eq!(put_any(&mut c, "STOR new", b"new").code, 226);
    assert_eq!(put_any(&mut c, "STOR f", b"replaced").code, 226);
    assert_eq!(server.read("new"), b"new");
    assert_eq!(server.read("f"), b"replaced");
}

#[test]
fn permission_append() {
    let (server, _u) = server_for("append");
    let mut c = login_as(&server, "without");
    c.epsv();
    denied(&mut c, "APPE f");
    assert_eq!(server.read("f"), b"data");
    let mut c = login_as(&server, "only");
    assert_eq!(put_any(&mut c, "APPE f", b"+more").code, 226);
    assert_eq!(server.read("f"), b"data+more");
}

#[test]
fn permission_delete() {
    let (server, _u) = server_for("delete");
    let mut c = login_as(&server, "without");
    denied(&mut c, "DELE f");
    assert!(server.path("f").exists());
    let mut c = login_as(&server, "only");
    c.expect("DELE f", 250);
    assert!(!server.path("f").exists());
}

#[test]
fn permission_rename() {
    let (server, _u) = server_for("rename");
    let mut c = login_as(&server, "without");
    denied(&mut c, "RNFR f");
    assert!(server.path("f").exists());
    let mut c = login_as(&server, "only");
    c.expect("RNFR f", 350);
    c.expect("RNTO g", 250);
    assert_eq!(server.read("g"), b"data");
}

#[test]
fn permission_mkdir() {
    let (server, _u) = server_for("mkdir");
    let mut c = login_as(&server, "without");
    denied(&mut c, "MKD new");
    assert!(!server.path("new").exists());
    let mut c = login_as(&server, "only");
    c.expect("MKD new", 257);
    assert!(server.path("new").is_dir());
}

#[test]
fn permission_rmdir() {
    let (server, _u) = server_for("rmdir");
    let mut c = login_as(&server, "without");
    denied(&mut c, "RMD d");
    assert!(server.path("d").is_dir());
    let mut c = login_as(&server, "only");
    c.expect("RMD d", 250);
    assert!(!server.path("d").exists());
}

#[test]
fn permission_chmod() {
    use std::os::unix::fs::PermissionsExt;
    let (server, _u) = server_for("chmod");
    let mode = || std::fs::metadata(server.path("f")).unwrap().permissions().mode() & 0o777;
    let before = mode();
    let mut c = login_as(&server, "without");
    denied(&mut c, "SITE CHMOD 600 f");
    assert_eq!(mode(), before);
    let mut c = login_as(&server, "only");
    c.expect("SITE CHMOD 600 f", 250);
    assert_eq!(mode(), 0o600);
}
