//! The operator's socket (`server.admin_socket`) through `ferroftp
//! admin`: the sessions are listed with their users, `kick` ends one (231
//! when logged in, 421 before), `kick-user` ends a user's sessions, one
//! mid-download at once (426, then 231); other sessions stay; the socket
//! is the owner's alone, and a second server cannot take it.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{TestServer, USER};
use crate::replies_util::{connect_data, epsv_addr};
use crate::safety_util::eventually;

/// `ferroftp admin --socket SOCKET ARGS`: (success, stdout, stderr).
fn admin(socket: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferroftp"))
        .arg("admin")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run ferroftp admin");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The session numbers `sessions` lists for `user` ("-": not logged in).
fn ids_of(socket: &Path, user: &str) -> Vec<String> {
    let (ok, listed, err) = admin(socket, &["sessions"]);
    assert!(ok, "{err}");
    listed
        .lines()
        .filter(|l| l.split(' ').nth(2) == Some(user))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

#[test]
fn the_operator_lists_sessions_and_ends_them() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let server = TestServer::start_with_config(&format!("[server]\nadmin_socket = \"{}\"\n", socket.display()), &[]);
    let mode = std::fs::metadata(&socket)
        .expect("the socket exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the owner's alone");
    server.write("big.bin", &vec![9u8; 16 << 20]);

    let mut idle = server.login();
    let mut guest = server.client();
    guest.login("ftp", "guest@example.com");
    let mut anonymous_before_login = server.client();
    let mut downloading = server.login();
    downloading.expect("TYPE I", 200);
    let addr = epsv_addr(&mut downloading);
    downloading.expect("RETR big.bin", 150);
    let mut data = connect_data(addr);
    let mut first = vec![0u8; 1 << 20];
    data.read_exact(&mut first).unwrap();

    let (ok, listed, said) = admin(&socket, &["sessions"]);
    assert!(ok && said.contains("4 sessions"), "{listed}{said}");
    assert_eq!(ids_of(&socket, USER).len(), 2, "{listed}");
    assert_eq!(ids_of(&socket, "anonymous").len(), 1, "{listed}");
    let before_login = ids_of(&socket, "-");
    assert_eq!(before_login.len(), 1, "{listed}");

    let idle_id = ids_of(&socket, USER).into_iter().next().unwrap();
    assert!(admin(&socket, &["kick", &idle_id]).0);
    let r = idle.reply();
    assert_eq!(r.code, 231, "{r:?}");
    assert!(
        idle.reader.get_mut().read(&mut [0u8; 1]).unwrap_or(0) == 0,
        "closed after the 231"
    );

    assert!(admin(&socket, &["kick", &before_login[0]]).0);
    assert_eq!(anonymous_before_login.reply().code, 421);

    // The download is cut: 426, then 231.
    let left = eventually(Duration::from_secs(10), || ids_of(&socket, USER).len() == 1);
    assert!(left, "the kicked idle session is gone from the list");
    let (ok, _, said) = admin(&socket, &["kick-user", USER]);
    assert!(ok && said.contains("ended 1"), "{said}");
    let mut rest = Vec::new();
    let _ = data.read_to_end(&mut rest);
    assert!(first.len() + rest.len() < 16 << 20, "not the whole file");
    assert_eq!(downloading.reply().code, 426);
    assert_eq!(downloading.reply().code, 231);

    let (ok, _, err) = admin(&socket, &["kick", "999"]);
    assert!(!ok && err.contains("no session 999"), "{err}");
    guest.expect("NOOP", 200);
    let (ok, listed, _) = admin(&socket, &["sessions"]);
    assert!(ok);
    assert_eq!(listed.lines().count(), 1, "only the guest is left: {listed}");
    assert!(listed.contains(" anonymous "), "{listed}");

    // A second server on the same socket path does not start.
    let second = Command::new(env!("CARGO_BIN_EXE_ferroftp"))
        .args(["serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(dir.path())
        .args(["--user", "x:y", "--config"])
        .arg(server.config_file())
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another server holds"),
        "{second:?}"
    );
    guest.expect("NOOP", 200);
}
