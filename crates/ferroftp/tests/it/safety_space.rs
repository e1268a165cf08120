//! Storage space (docs/security.md, "Storage space"): a full filesystem
//! answers 452 and leaves the rest intact; per-user quotas in bytes and
//! files and the largest file answer 552 (before 150 when known to exceed,
//! mid-transfer when crossed), and nothing half-written stays.

use std::time::Duration;

use crate::common::{payload, TestServer};
use crate::safety_util::{
    get, login_as, names_in, put_any, put_fails_midway, put_refused, server_with_users, Tmpfs, Trickle,
};

const K: usize = 1024;

/// A 2 MiB tmpfs mounted inside the storage root: uploading 4 MiB into it
/// gets 452, leaves no partial or hidden file, the files already there are
/// intact, and once something is deleted a small upload works.
#[test]
fn full_filesystem_452_leaves_the_rest_intact() {
    let server = TestServer::start(&[]);
    let small = Tmpfs::mount(&server.path("small"), "2m");
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let (a, b) = (payload(300 * K, 1), payload(500 * K, 2));
    assert_eq!(put_any(&mut c, "STOR small/a", &a).code, 226);
    assert_eq!(put_any(&mut c, "STOR small/b", &b).code, 226);
    server.write("outside", b"outside the full filesystem");

    let r = put_fails_midway(&mut c, "STOR small/big", &payload(4 * K * K, 3), 452);
    assert!(r.text.contains("storage"), "{r:?}");
    assert_eq!(names_in(&small.path), ["a", "b"], "a partial or hidden file was left");
    assert_eq!(get(&mut c, "small/a"), a);
    assert_eq!(get(&mut c, "small/b"), b);
    assert_eq!(server.read("outside"), b"outside the full filesystem");
    // Replacing a file with something too big keeps the old one.
    put_fails_midway(&mut c, "STOR small/a", &payload(4 * K * K, 4), 452);
    assert_eq!(get(&mut c, "small/a"), a);

    c.expect("DELE small/b", 250);
    let c_data = payload(200 * K, 5);
    assert_eq!(put_any(&mut c, "STOR small/c", &c_data).code, 226);
    assert_eq!(get(&mut c, "small/c"), c_data);
    assert_eq!(names_in(&small.path), ["a", "c"]);
    drop(c);
    drop(server);
    drop(small);
}

/// A byte quota: the home's existing files are counted at login; an upload
/// that crosses the quota gets 552 mid-transfer and leaves nothing (an
/// APPE is cut back to where it started); replacing a file counts only
/// the difference; DELE gives space back; a full quota refuses at once.
#[test]
fn byte_quota_552_and_nothing_half_written() {
    let (server, _users) = server_with_users(&[("q", &["--home", "/q", "--quota-bytes", "1M"])], "");
    server.write("q/before", &payload(200 * K, 1));
    let mut c = login_as(&server, "q");
    let a = payload(500 * K, 2);
    assert_eq!(put_any(&mut c, "STOR a", &a).code, 226);

    // 200K + 500K stored: 400K more crosses 1 MiB.
    let r = put_fails_midway(&mut c, "STOR b", &payload(400 * K, 3), 552);
    assert!(r.text.contains("storage allocation"), "{r:?}");
    assert_eq!(names_in(&server.path("q")), ["a", "before"], "something of b was left");
    put_fails_midway(&mut c, "APPE a", &payload(400 * K, 4), 552);
    assert_eq!(get(&mut c, "a"), a, "a cut-short APPE is undone");

    // Replacing a (500K) by 800K needs 300K more: it fits.
    let a2 = payload(800 * K, 5);
    assert_eq!(put_any(&mut c, "STOR a", &a2).code, 226);
    assert_eq!(get(&mut c, "a"), a2);
    // 1000K used: a 50K file crosses, DELE of "before" makes room.
    put_fails_midway(&mut c, "STOR c", &payload(50 * K, 6), 552);
    c.expect("DELE before", 250);
    assert_eq!(put_any(&mut c, "STOR c", &payload(200 * K, 6)).code, 226);
    // Exactly full (1000K + 24K = 1 MiB): a new upload is refused before 150.
    assert_eq!(put_any(&mut c, "STOR d", &payload(24 * K, 7)).code, 226);
    put_refused(&mut c, "STOR e", 552);
    assert_eq!(names_in(&server.path("q")), ["a", "c", "d"]);
}

/// Two sessions of one user share the quota: uploading at the same time,
/// they cannot together go beyond it.
#[test]
fn parallel_sessions_share_one_quota() {
    let (server, _users) = server_with_users(&[("q", &["--home", "/q", "--quota-bytes", "1M"])], "");
    let mut one = login_as(&server, "q");
    let mut two = login_as(&server, "q");
    let mut up1 = Trickle::start(&mut one, "STOR one");
    let mut up2 = Trickle::start(&mut two, "STOR two");
    let chunk = payload(64 * K, 8);
    let (mut ok1, mut ok2) = (true, true);
    for _ in 0..10 {
        ok1 = ok1 && up1.data.write_all_ok(&chunk);
        ok2 = ok2 && up2.data.write_all_ok(&chunk);
        std::thread::sleep(Duration::from_millis(10));
    }
    let (r1, r2) = (up1.finish(&mut one), up2.finish(&mut two));
    let codes = [r1.code, r2.code];
    assert!(codes.contains(&552), "640K + 640K went past 1 MiB: {r1:?} {r2:?}");
    let home = server.path("q");
    let total: u64 = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(total <= 1 << 20, "{total} bytes stored under a 1 MiB quota");
    assert!(
        names_in(&home).iter().all(|n| n == "one" || n == "two"),
        "{:?}",
        names_in(&home)
    );
}

/// A file quota refuses a new file before 150; replacing an existing file
/// is not a new file; DELE gives a file back.
#[test]
fn file_quota_552_before_the_transfer() {
    let (server, _users) = server_with_users(&[("q", &["--home", "/q", "--quota-files", "2"])], "");
    let mut c = login_as(&server, "q");
    assert_eq!(put_any(&mut c, "STOR f1", b"1").code, 226);
    assert_eq!(put_any(&mut c, "STOR f2", b"2").code, 226);
    put_refused(&mut c, "STOR f3", 552);
    put_refused(&mut c, "APPE f3", 552);
    put_refused(&mut c, "STOU", 552);
    assert_eq!(put_any(&mut c, "STOR f1", b"one again").code, 226);
    assert_eq!(put_any(&mut c, "APPE f2", b"more").code, 226);
    c.expect("DELE f1", 250);
    assert_eq!(put_any(&mut c, "STOR f3", b"3").code, 226);
    assert_eq!(names_in(&server.path("q")), ["f2", "f3"]);
}

/// The largest file: crossed mid-transfer (552, nothing left, an APPE
/// undone), or known at once from a REST offset or an ALLO size.
#[test]
fn max_file_size_552() {
    let (server, _users) = server_with_users(&[("q", &["--home", "/q", "--max-file-size", "100K"])], "");
    let mut c = login_as(&server, "q");
    let small = payload(60 * K, 1);
    assert_eq!(put_any(&mut c, "STOR small", &small).code, 226);
    assert_eq!(put_any(&mut c, "STOR exact", &payload(100 * K, 2)).code, 226);
    put_fails_midway(&mut c, "STOR big", &payload(300 * K, 3), 552);
    put_fails_midway(&mut c, "APPE small", &payload(60 * K, 4), 552);
    assert_eq!(get(&mut c, "small"), small, "the APPE was undone");
    c.expect("REST 200000", 350);
    put_refused(&mut c, "STOR small", 552);
    c.expect("ALLO 200000", 202);
    put_refused(&mut c, "STOR big", 552);
    // The announced size is forgotten after that upload.
    assert_eq!(put_any(&mut c, "STOR big", b"x").code, 226);
    assert_eq!(names_in(&server.path("q")), ["big", "exact", "small"]);
}

/// The same limit on the other write paths, where the server does not
/// call `write_all`: spliced (`server.splice_uploads`), the upload counts
/// each batch before it is written; past `storage.upload_direct_io_after`,
/// the server reads into the upload's own aligned chunks. The bytes are
/// counted there too.
#[test]
fn max_file_size_552_on_the_splice_and_direct_paths() {
    for config in [
        "[server]\nsplice_uploads = true\n",
        "[storage]\nupload_direct_io_after = \"1 MiB\"\n",
    ] {
        let (server, _users) = server_with_users(&[("q", &["--home", "/q", "--max-file-size", "3M"])], config);
        let mut c = login_as(&server, "q");
        c.expect("TYPE I", 200);
        let exact = payload(3 << 20, 1);
        assert_eq!(put_any(&mut c, "STOR exact", &exact).code, 226, "{config:?}");
        assert_eq!(get(&mut c, "exact"), exact, "{config:?}");
        put_fails_midway(&mut c, "STOR big", &payload(5 << 20, 2), 552);
        assert_eq!(names_in(&server.path("q")), ["exact"], "{config:?}");
    }
}

/// Server-wide defaults (`[storage] quota_files`) apply to users whose
/// entry sets nothing; an entry's own value, "unlimited" too, wins.
#[test]
fn quota_defaults_from_the_config_and_per_user_overrides() {
    let (server, _users) = server_with_users(
        &[
            ("plain", &["--home", "/plain"]),
            ("free", &["--home", "/free", "--quota-files", "unlimited"]),
            ("three", &["--home", "/three", "--quota-files", "3"]),
        ],
        "[storage]\nquota_files = 1\n",
    );
    for (user, allowed) in [("plain", 1), ("free", 4), ("three", 3)] {
        let mut c = login_as(&server, user);
        for i in 0..4 {
            if i < allowed {
                assert_eq!(
                    put_any(&mut c, &format!("STOR f{i}"), b"x").code,
                    226,
                    "{user}: file {i}"
                );
            } else {
                put_refused(&mut c, &format!("STOR f{i}"), 552);
            }
        }
    }
}

trait WriteAllOk {
    fn write_all_ok(&mut self, data: &[u8]) -> bool;
}

impl WriteAllOk for std::net::TcpStream {
    /// False once the server has closed the data connection.
    fn write_all_ok(&mut self, data: &[u8]) -> bool {
        std::io::Write::write_all(self, data).is_ok()
    }
}
