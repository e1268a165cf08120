//! The users file re-read on SIGHUP: new and changed accounts take effect
//! at the next login, and a session whose account was disabled, removed
//! or given new credentials is logged out with 231 (after its running
//! transfer, or once ABOR ends it); `--user` and anonymous sessions stay;
//! a file that does not load, or loads empty, leaves the accounts as they
//! were.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{RawClient, TestServer, PASS, USER};
use crate::replies_util::{connect_data, epsv_addr};
use crate::safety_util::{login_as, server_with_users, user_add, PASSWORD};

/// Replaces the users file in one rename, as an editor or configuration
/// management would.
fn replace_users_file(users: &Path, with: &Path) {
    std::fs::rename(with, users).expect("rename the new users file into place");
}

/// Logs in as `name` once the server's accounts allow it (the reload runs
/// beside the sessions).
fn login_when_allowed(server: &TestServer, name: &str) -> RawClient {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut c = server.client();
        c.expect(&format!("USER {name}"), 331);
        if c.cmd(&format!("PASS {PASSWORD}")).code == 230 {
            return c;
        }
        assert!(Instant::now() < deadline, "{name} never became able to log in");
        // Each miss counts toward a ban (10 by default): few and slow.
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn security_reloaded_users_file_logs_out_disabled_and_removed_accounts_with_231() {
    let (server, dir) = server_with_users(&[("alice", &[]), ("bob", &[]), ("dave", &[]), ("erin", &[])], "");
    let users = dir.path().join("users.toml");
    server.write("big.bin", &vec![7u8; 16 << 20]);
    let mut alice = login_as(&server, "alice");
    let mut bob = login_as(&server, "bob");
    // --user and anonymous accounts do not come from the file: they stay.
    let mut cli = server.client();
    cli.login(USER, PASS);
    let mut guest = server.client();
    guest.login("ftp", "guest@example.com");
    // erin is mid-download too, and ABOR ends it: 426, 226, then 231.
    // dave is mid-download when his account goes: the transfer finishes
    // first (its 226), then 231.
    let mut dave = login_as(&server, "dave");
    let addr = epsv_addr(&mut dave);
    let mut data = connect_data(addr);
    let started = dave.cmd("RETR big.bin");
    assert!(matches!(started.code, 125 | 150), "{started:?}");
    let mut erin = login_as(&server, "erin");
    let addr = epsv_addr(&mut erin);
    let erin_data = connect_data(addr);
    let started = erin.cmd("RETR big.bin");
    assert!(matches!(started.code, 125 | 150), "{started:?}");

    let next = dir.path().join("users.next.toml");
    user_add(&next, "carol", &[]);
    user_add(&next, "alice", &[]);
    // alice's table is the file's last: this key lands in it.
    std::fs::write(&next, std::fs::read_to_string(&next).unwrap() + "disabled = true\n").unwrap();
    replace_users_file(&users, &next);
    server.sighup();

    let mut carol = login_when_allowed(&server, "carol");
    alice.expect_reply(231);
    assert!(alice.is_closed(), "alice's session closes after 231");
    bob.expect_reply(231);
    assert!(bob.is_closed());
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut data, &mut got).unwrap();
    assert_eq!(got.len(), 16 << 20, "the running download is not cut");
    dave.expect_reply(226);
    dave.expect_reply(231);
    assert!(dave.is_closed());
    erin.send("ABOR");
    erin.expect_reply(426);
    erin.expect_reply(226);
    erin.expect_reply(231);
    assert!(erin.is_closed());
    drop(erin_data);
    carol.expect("NOOP", 200);
    cli.expect("NOOP", 200);
    guest.expect("NOOP", 200);

    let mut c = server.client();
    c.expect("USER alice", 331);
    c.expect(&format!("PASS {PASSWORD}"), 530);
    let mut c = server.client();
    c.expect("USER bob", 331);
    c.expect(&format!("PASS {PASSWORD}"), 530);

    // A new password for carol: her session ends, the new password works.
    let next = dir.path().join("users.next.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_ferroftp"))
        .args(["user", "add", "--file"])
        .arg(&next)
        .args(["carol", "--password", "a-new-one"])
        .output()
        .unwrap();
    assert!(out.status.success());
    replace_users_file(&users, &next);
    server.sighup();
    carol.expect_reply(231);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut c = server.client();
        c.expect("USER carol", 331);
        if c.cmd("PASS a-new-one").code == 230 {
            break;
        }
        assert!(Instant::now() < deadline, "the new password never worked");
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut carol = server.client();
    carol.login("carol", "a-new-one");

    // A users file that does not load, then one caught empty: the accounts
    // stay as they were.
    std::fs::write(&users, "[[user]]\nname = \"broken\"\n").unwrap();
    server.sighup();
    std::fs::write(&users, "").unwrap();
    server.sighup();
    std::thread::sleep(Duration::from_millis(500));
    carol.expect("NOOP", 200);
    cli.expect("NOOP", 200);
    let mut c = server.client();
    c.login("carol", "a-new-one");
    c.expect("QUIT", 221);
}
