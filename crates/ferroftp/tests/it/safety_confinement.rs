//! Confinement over the wire (docs/security.md, "Confinement"): `..`,
//! absolute names, symlinks that point out of the root and NUL bytes never
//! reach outside the user's root, whatever command carries them. The
//! storage-level checks are in `ftp-storage-fs/tests/confinement.rs`; this
//! module proves the same through a real session.

use std::os::unix::fs::symlink;

use crate::common::{RawClient, TestServer};

/// A secret next to the root: what every escape below tries to reach.
fn server_with_secret() -> (TestServer, std::path::PathBuf) {
    let server = TestServer::start(&[]);
    let secret = server.root.parent().unwrap().join("secret.txt");
    std::fs::write(&secret, b"outside the root").unwrap();
    server.write("inside.txt", b"inside");
    std::fs::create_dir(server.path("sub")).unwrap();
    (server, secret)
}

/// The reply to a transfer command that must not start: no 150/125.
fn refused(c: &mut RawClient, line: &str) -> u16 {
    let _data = c.epsv();
    let r = c.cmd(line);
    assert!(r.code >= 500, "{line:?} must be refused: {r:?}");
    r.code
}

/// `..` climbs to the user's "/" and stops there: PWD never shows more, and
/// the files above the root stay out of reach for every command.
#[test]
fn dot_dot_stops_at_the_root() {
    let (server, secret) = server_with_secret();
    let mut c = server.login();
    c.expect("TYPE I", 200);
    c.expect("CWD sub", 250);
    c.expect("CWD ../../../..", 250);
    assert_eq!(c.expect("PWD", 257).text.split('"').nth(1), Some("/"));
    c.expect("CDUP", 250);
    assert_eq!(c.expect("PWD", 257).text.split('"').nth(1), Some("/"));
    // `..` past the root means the root: ../inside.txt is /inside.txt.
    let (bytes, r) = c.fetch("RETR ../../inside.txt");
    assert_eq!((r.code, bytes.as_slice()), (226, &b"inside"[..]));
    for line in ["RETR ../secret.txt", "RETR sub/../../secret.txt", "RETR /../secret.txt"] {
        assert_eq!(refused(&mut c, line), 550, "{line}");
    }
    c.expect("SIZE ../secret.txt", 550);
    c.expect("MDTM ../secret.txt", 550);
    c.expect("DELE ../secret.txt", 550);
    c.expect("RNFR ../secret.txt", 550);
    // Writes land inside the root, never next to it.
    assert_eq!(c.put("STOR ../../escaped.txt", b"x").code, 226);
    assert!(server.path("escaped.txt").exists());
    assert!(!server.root.parent().unwrap().join("escaped.txt").exists());
    c.expect("MKD ../made", 257);
    assert!(server.path("made").is_dir());
    assert!(!server.root.parent().unwrap().join("made").exists());
    assert_eq!(std::fs::read(&secret).unwrap(), b"outside the root");
    c.expect("QUIT", 221);
}

/// Absolute host paths are paths inside the user's root.
#[test]
fn absolute_names_are_inside_the_root() {
    let (server, _secret) = server_with_secret();
    let mut c = server.login();
    c.expect("TYPE I", 200);
    assert_eq!(refused(&mut c, "RETR /etc/passwd"), 550);
    c.expect("CWD /etc", 550);
    let root = server.root.to_str().unwrap().to_string();
    assert_eq!(refused(&mut c, &format!("RETR {root}/inside.txt")), 550);
    c.expect("QUIT", 221);
}

/// Symlinks that lead out of the root (absolute, relative with `..`, to a
/// file or to a directory) are refused for reading, listing, changing
/// into, writing through and deleting through; the targets are untouched.
#[test]
fn symlinks_out_of_the_root_are_refused() {
    let (server, secret) = server_with_secret();
    let outside_dir = server.root.parent().unwrap().join("outside-dir");
    std::fs::create_dir(&outside_dir).unwrap();
    std::fs::write(outside_dir.join("f.txt"), b"outside file").unwrap();
    symlink(&secret, server.path("abs-link")).unwrap();
    symlink("../secret.txt", server.path("rel-link")).unwrap();
    symlink(&outside_dir, server.path("dir-link")).unwrap();
    symlink("/etc", server.path("etc")).unwrap();
    symlink("inside.txt", server.path("good-link")).unwrap();

    let mut c = server.login();
    c.expect("TYPE I", 200);
    for line in [
        "RETR abs-link",
        "RETR rel-link",
        "RETR dir-link/f.txt",
        "RETR etc/passwd",
    ] {
        assert_eq!(refused(&mut c, line), 550, "{line}");
    }
    c.expect("CWD dir-link", 550);
    c.expect("CWD etc", 550);
    c.expect("SIZE abs-link", 550);
    for line in ["LIST dir-link", "NLST etc", "MLSD dir-link"] {
        assert_eq!(refused(&mut c, line), 550, "{line}");
    }
    c.expect("MLST dir-link/f.txt", 550);
    // Writing through a link out of the root changes nothing out there.
    assert!(
        matches!(c.cmd("STOR dir-link/new.txt").code, 550 | 553),
        "STOR through a link"
    );
    assert!(!outside_dir.join("new.txt").exists());
    c.expect("DELE dir-link/f.txt", 550);
    c.expect("MKD dir-link/d", 550);
    assert!(!outside_dir.join("d").exists());
    // A link inside the root works.
    let (bytes, r) = c.fetch("RETR good-link");
    assert_eq!((r.code, bytes.as_slice()), (226, &b"inside"[..]));
    assert_eq!(std::fs::read(&secret).unwrap(), b"outside the root");
    assert_eq!(std::fs::read(outside_dir.join("f.txt")).unwrap(), b"outside file");
    c.expect("QUIT", 221);
}

/// NUL and other control characters in a name: 553, before any storage
/// call, and the session goes on.
#[test]
fn nul_in_a_name_is_553() {
    let (server, _secret) = server_with_secret();
    let mut c = server.login();
    for verb in ["RETR", "STOR", "DELE", "MKD", "CWD", "SIZE"] {
        let _data = matches!(verb, "RETR" | "STOR").then(|| c.epsv());
        let mut line = format!("{verb} inside.txt").into_bytes();
        line.extend_from_slice(b"\0/../../secret.txt");
        c.send_bytes(&line);
        assert_eq!(c.reply().code, 553, "{verb} with a NUL");
    }
    c.expect("NOOP", 200);
    assert_eq!(server.read("inside.txt"), b"inside");
    c.expect("QUIT", 221);
}
