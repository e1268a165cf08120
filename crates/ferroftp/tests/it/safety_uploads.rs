//! Data safety of uploads (docs/security.md, "Data safety"): atomic
//! replacement seen from a second session, a file being uploaded is busy
//! (450) for every other writer, across users whose homes overlap, a broken
//! upload is removed or kept for resume by `storage.keep_partial_uploads`,
//! every `storage.durability` setting completes uploads, and a large upload
//! arrives whole through each write path (copied or spliced, then past the page cache);
//! the hidden file of an upload whose server was killed is swept once abandoned.

use std::time::Duration;

use crate::common::{payload, TestServer};
use crate::safety_util::{eventually, get, login_as, names_in, put_any, reset, server_with_users, Trickle};

const TEMP_PREFIX: &str = ".ferroftp-upload.";

/// While one session slowly replaces a file, another one reading it (RETR,
/// SIZE, NLST) sees the old file whole, every time; the new one whole once
/// the upload's 226 arrived.
#[test]
fn a_reader_never_sees_a_partial_upload() {
    const LEN: usize = 1 << 20;
    let server = TestServer::start(&[]);
    server.write("f", &vec![b'o'; LEN]);
    let mut writer = server.login();
    writer.expect("TYPE I", 200);
    let mut reader = server.login();
    reader.expect("TYPE I", 200);

    let mut up = Trickle::start(&mut writer, "STOR f");
    let chunk = vec![b'n'; 64 * 1024];
    let mut reads = 0;
    for i in 0..LEN / chunk.len() {
        up.send(&chunk);
        if i % 4 == 3 {
            std::thread::sleep(Duration::from_millis(20));
            let got = get(&mut reader, "f");
            assert_eq!(got.len(), LEN, "a reader saw a partial file");
            assert!(got.iter().all(|&b| b == b'o'), "a reader saw new bytes before the 226");
            assert_eq!(reader.expect("SIZE f", 213).text, LEN.to_string());
            let (names, r) = reader.fetch("NLST");
            assert_eq!(r.code, 226);
            assert_eq!(names, b"f\r\n", "the upload in progress shows in a listing");
            reads += 1;
        }
    }
    assert!(reads >= 4);
    let r = up.finish(&mut writer);
    assert_eq!(r.code, 226, "{r:?}");
    let got = get(&mut reader, "f");
    assert!(
        got.len() == LEN && got.iter().all(|&b| b == b'n'),
        "the new file after 226"
    );
    assert_eq!(names_in(&server.root), ["f"]);
}

/// A file with an upload in progress is busy (450) for STOR, REST+STOR,
/// APPE, DELE, RNFR and RNTO onto it, from another session of the same
/// user and from another user whose home contains it; reading it is
/// allowed and shows the old content. Other names are free, and the file
/// is free again once the upload ends.
#[test]
fn a_file_being_uploaded_is_busy_450() {
    let (server, _users) = server_with_users(&[("alice", &["--home", "/alice"]), ("admin", &[])], "");
    server.write("alice/f", b"old");
    server.write("alice/g", b"ggg");
    let mut alice = login_as(&server, "alice");
    let mut up = Trickle::start(&mut alice, "STOR f");
    up.send(&[b'n'; 100_000]);

    let mut again = login_as(&server, "alice");
    let mut admin = login_as(&server, "admin");
    for (who, c, f, g) in [
        ("alice", &mut again, "f", "g"),
        ("admin", &mut admin, "alice/f", "alice/g"),
    ] {
        for line in [format!("STOR {f}"), format!("APPE {f}")] {
            let r = put_any(c, &line, b"x");
            assert_eq!(r.code, 450, "{who}: {line}: {r:?}");
            assert!(r.text.contains("busy"), "{r:?}");
        }
        c.expect("REST 1", 350);
        let r = put_any(c, &format!("STOR {f}"), b"x");
        assert_eq!(r.code, 450, "{who}: REST+STOR: {r:?}");
        c.expect(&format!("DELE {f}"), 450);
        c.expect(&format!("RNFR {f}"), 450);
        c.expect(&format!("RNFR {g}"), 350);
        c.expect(&format!("RNTO {f}"), 450);
        assert_eq!(get(c, f), b"old", "{who}: a reader gets the old file");
        let other = f.replace('f', "other");
        assert_eq!(put_any(c, &format!("STOR {other}"), b"free").code, 226, "{who}");
    }
    assert_eq!(server.read("alice/f"), b"old", "the refused commands changed nothing");

    let r = up.finish(&mut alice);
    assert_eq!(r.code, 226, "{r:?}");
    assert_eq!(server.read("alice/f"), vec![b'n'; 100_000]);
    assert_eq!(put_any(&mut admin, "STOR alice/f", b"admin").code, 226);
    assert_eq!(get(&mut again, "f"), b"admin");
    again.expect("DELE f", 250);
}

/// Default (`keep_partial_uploads = false`): a connection reset in the
/// middle of an upload leaves nothing of it, and an older file under that
/// name keeps its content.
#[test]
fn a_broken_upload_leaves_nothing_by_default() {
    let server = TestServer::start(&[]);
    server.write("old", b"old content");
    for name in ["new", "old"] {
        let mut c = server.login();
        c.expect("TYPE I", 200);
        let mut up = Trickle::start(&mut c, &format!("STOR {name}"));
        up.send(&payload(200_000, 1));
        reset(c);
        let root = server.root.clone();
        let clean = eventually(Duration::from_secs(5), || names_in(&root) == ["old"]);
        assert!(clean, "after a broken STOR {name}: {:?}", names_in(&server.root));
        drop(up);
        assert_eq!(server.read("old"), b"old content");
    }
    let mut c = server.login();
    c.expect("TYPE I", 200);
    assert_eq!(
        put_any(&mut c, "STOR new", b"whole").code,
        226,
        "the name is free again"
    );
}

/// `keep_partial_uploads = true`: after a connection reset, what arrived
/// is there under the file's own name, and REST + STOR completes it (APPE
/// adds to it as well).
#[test]
fn a_broken_upload_is_kept_for_resume_when_configured() {
    let server = TestServer::start_with_config("[storage]\nkeep_partial_uploads = true\n", &[]);
    let whole = payload(600_000, 2);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let mut up = Trickle::start(&mut c, "STOR part");
    up.send(&whole[..300_000]);
    // Wait until the server has written all of it aside, then break.
    let root = server.root.clone();
    let arrived = eventually(Duration::from_secs(5), || {
        std::fs::read_dir(&root).unwrap().any(|e| {
            let e = e.unwrap();
            e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) && e.metadata().unwrap().len() == 300_000
        })
    });
    assert!(
        arrived,
        "the upload did not reach the disk: {:?}",
        names_in(&server.root)
    );
    reset(c);
    let part = server.path("part");
    assert!(
        eventually(Duration::from_secs(5), || part.exists()),
        "no partial file: {:?}",
        names_in(&server.root)
    );
    drop(up);
    assert_eq!(server.read("part"), whole[..300_000], "the kept part");
    assert_eq!(names_in(&server.root), ["part"], "nothing hidden left");

    let mut c = server.login();
    c.expect("TYPE I", 200);
    assert_eq!(c.expect("SIZE part", 213).text, "300000");
    c.expect("REST 300000", 350);
    let r = put_any(&mut c, "STOR part", &whole[300_000..]);
    assert_eq!(r.code, 226, "{r:?}");
    assert_eq!(server.read("part"), whole, "REST + STOR completed the file");
    assert_eq!(put_any(&mut c, "APPE part", b"tail").code, 226);
    assert_eq!(server.read("part").len(), whole.len() + 4);
}

/// Each `storage.durability` setting gives complete uploads (STOR, APPE,
/// REST + STOR) and a 226 (the flush itself failing is in
/// crates/ftp-server/tests/faults.rs: 451/452, never 226).
#[test]
fn every_durability_setting_completes_uploads() {
    for durability in ["none", "file", "file+directory"] {
        let server = TestServer::start_with_config(&format!("[storage]\ndurability = \"{durability}\"\n"), &[]);
        let mut c = server.login();
        c.expect("TYPE I", 200);
        c.expect("MKD d", 257);
        assert_eq!(put_any(&mut c, "STOR d/f", b"0123456789").code, 226, "{durability}");
        assert_eq!(put_any(&mut c, "APPE d/f", b"ab").code, 226, "{durability}");
        c.expect("REST 4", 350);
        assert_eq!(put_any(&mut c, "STOR d/f", b"xyz").code, 226, "{durability}");
        assert_eq!(get(&mut c, "d/f"), b"0123xyz", "{durability}");
    }
}

/// A plain binary STOR goes through the transfer buffer (or socket → pipe
/// → file with `server.splice_uploads`), and past
/// `storage.upload_direct_io_after` through aligned O_DIRECT chunks (the
/// switch, on a block boundary after the threshold, is checked in
/// crates/ftp-storage-fs/tests/uploads.rs); a TYPE A upload reaches the
/// same chunks through its decoder. Every byte arrives, under the
/// default threshold and an odd one, copied and spliced.
#[test]
fn a_large_upload_arrives_whole_through_every_write_path() {
    let data = payload((9 << 20) + 4097, 11);
    for toml in [
        "",
        "[storage]\nupload_direct_io_after = 1048577\n",
        "[server]\nsplice_uploads = true\n",
        "[server]\nsplice_uploads = true\n[storage]\nupload_direct_io_after = 1048577\n",
    ] {
        let server = TestServer::start_with_config(toml, &[]);
        let mut c = server.login();
        c.expect("TYPE I", 200);
        assert_eq!(put_any(&mut c, "STOR big.bin", &data).code, 226, "{toml:?}");
        assert_eq!(get(&mut c, "big.bin"), data, "{toml:?}");
        let text: Vec<u8> = data
            .iter()
            .map(|b| if *b == b'\r' || *b == b'\n' { b'x' } else { *b })
            .collect();
        c.expect("TYPE A", 200);
        assert_eq!(put_any(&mut c, "STOR text.txt", &text).code, 226, "{toml:?}");
        c.expect("TYPE I", 200);
        assert_eq!(get(&mut c, "text.txt"), text, "{toml:?}");
        assert_eq!(
            names_in(&server.root),
            ["big.bin", "text.txt"],
            "{toml:?}: no temporary file left"
        );
    }
}

/// The hidden upload files in `dir`, once they hold `lens` bytes (in any
/// order): the server has written what was sent.
fn temps_holding(dir: &std::path::Path, lens: &[u64]) -> Vec<String> {
    let temps = || -> Vec<(String, u64)> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect()
    };
    let written = eventually(Duration::from_secs(5), || {
        let mut have: Vec<u64> = temps().iter().map(|(_, len)| *len).collect();
        let mut want = lens.to_vec();
        have.sort_unstable();
        want.sort_unstable();
        have == want
    });
    assert!(written, "the upload did not reach the disk: {:?}", temps());
    temps().into_iter().map(|(name, _)| name).collect()
}

fn backdate(p: &std::path::Path, ago: Duration) {
    let file = std::fs::File::open(p).unwrap();
    file.set_modified(std::time::SystemTime::now() - ago).unwrap();
}

/// A server killed mid-upload (SIGKILL: none of its clean-up runs) leaves
/// the upload's hidden file behind. After a restart, a leftover still
/// younger than `storage.abandoned_upload_age` stays (RMD of its directory,
/// which lists empty, is 550). Once older, a listing of its directory
/// removes it, and RMD of a directory holding only leftovers succeeds. An
/// upload in progress beside them, its file made to look old, is left
/// alone by both and completes.
#[test]
fn uploads_left_by_a_killed_server_are_swept_and_rmd_succeeds() {
    let mut server = TestServer::start_with_config("[storage]\nabandoned_upload_age = 60\n", &[]);
    let mut c = server.login();
    c.expect("MKD listed", 257);
    c.expect("MKD removed", 257);
    c.expect("TYPE I", 200);
    let mut c2 = server.login();
    c2.expect("TYPE I", 200);
    let mut up1 = Trickle::start(&mut c, "STOR listed/a");
    let mut up2 = Trickle::start(&mut c2, "STOR removed/b");
    up1.send(&[1; 200_000]);
    up2.send(&[2; 200_000]);
    let listed = server.path("listed");
    let removed = server.path("removed");
    let left_listed = temps_holding(&listed, &[200_000]);
    let left_removed = temps_holding(&removed, &[200_000]);

    server.crash_and_restart();
    drop((up1, up2, c, c2));
    let mut c = server.login();
    c.expect("TYPE I", 200);
    assert_eq!(c.expect("RMD removed", 550).code, 550, "a fresh leftover is kept");
    assert_eq!(names_in(&removed), left_removed);

    // An upload in progress in the same directory, its file backdated too.
    let mut live_client = server.login();
    live_client.expect("TYPE I", 200);
    let mut live = Trickle::start(&mut live_client, "STOR listed/live");
    live.send(&[3; 100_000]);
    temps_holding(&listed, &[200_000, 100_000]);
    for name in names_in(&listed) {
        backdate(&listed.join(name), Duration::from_secs(3600));
    }
    for name in &left_removed {
        backdate(&removed.join(name), Duration::from_secs(120));
    }

    let (names, r) = c.fetch("NLST listed");
    assert_eq!((names.as_slice(), r.code), (&b""[..], 226), "{r:?}");
    let after = names_in(&listed);
    assert_eq!(after.len(), 1, "only the live upload's file is left: {after:?}");
    assert!(!after.contains(&left_listed[0]));
    c.expect("RMD removed", 250);
    assert!(!removed.exists());

    live.send(&[4; 100_000]);
    assert_eq!(live.finish(&mut live_client).code, 226);
    let got = server.read("listed/live");
    assert!(got.len() == 200_000 && got[..100_000].iter().all(|&b| b == 3) && got[100_000..].iter().all(|&b| b == 4));
    assert_eq!(names_in(&listed), ["live"]);
}

/// `ferroftp sweep` removes what a killed server left in a directory no
/// client lists again, beside a running server: the upload in progress in
/// the same directory, its file backdated as well, keeps its file and
/// completes; a leftover still younger than the age stays until a later
/// sweep. The command refuses an S3 configuration and a zero age.
#[test]
fn ferroftp_sweep_removes_leftovers_no_listing_meets_beside_a_running_server() {
    let mut server = TestServer::start_with_config("[storage]\nabandoned_upload_age = 60\n", &[]);
    let mut c = server.login();
    c.expect("MKD deep", 257);
    c.expect("MKD deep/er", 257);
    c.expect("TYPE I", 200);
    let mut up = Trickle::start(&mut c, "STOR deep/er/lost");
    up.send(&[1; 150_000]);
    let dir = server.path("deep/er");
    let left = temps_holding(&dir, &[150_000]);
    server.crash_and_restart();
    drop((up, c));

    let mut live_client = server.login();
    live_client.expect("TYPE I", 200);
    let mut live = Trickle::start(&mut live_client, "STOR deep/er/live");
    live.send(&[2; 50_000]);
    let both = temps_holding(&dir, &[150_000, 50_000]);
    for name in &both {
        backdate(&dir.join(name), Duration::from_secs(30));
    }
    let sweep = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ferroftp"))
            .arg("sweep")
            .arg("--root")
            .arg(&server.root)
            .args(extra)
            .output()
            .expect("run ferroftp sweep")
    };
    let out = sweep(&["--min-age", "60"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(names_in(&dir).len(), 2, "30 s old: both stay");

    for name in &both {
        backdate(&dir.join(name), Duration::from_secs(3600));
    }
    let out = sweep(&["--min-age", "60"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        said.contains("1 abandoned uploads removed (150000 bytes), 1 hidden upload files kept"),
        "{said}"
    );
    let after = names_in(&dir);
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(!after.contains(&left[0]), "the killed server's file is gone: {after:?}");

    live.send(&[3; 50_000]);
    assert_eq!(live.finish(&mut live_client).code, 226);
    assert_eq!(server.read("deep/er/live").len(), 100_000);
    assert_eq!(names_in(&dir), ["live"]);

    let refused = sweep(&["--min-age", "0"]);
    assert!(!refused.status.success());
    let config = server.root.join("s3.toml");
    std::fs::write(
        &config,
        "[storage]\nbackend = \"s3\"\n[s3]\nendpoint = \"http://127.0.0.1:9\"\nbucket = \"b\"\nregion = \"r\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferroftp"))
        .args(["sweep", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sweep is for local disk"),
        "{out:?}"
    );
}
