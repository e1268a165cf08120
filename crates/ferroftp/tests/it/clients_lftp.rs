//! lftp as the client: MLSD listings, recursive mirrors both ways, resumed
//! and parallel (pget) downloads, and the file-management commands. lftp
//! runs with `debug` on, so the commands it sent are checked too, and with
//! one try per operation (`net:max-retries 1`), so a retry cannot hide a
//! server failure.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{self, TestServer};

/// One finished lftp run: success, stdout, and stderr (the debug trace).
pub(crate) struct Lftp {
    pub ok: bool,
    pub out: String,
    pub trace: String,
}

/// Runs `commands` in one `lftp -c` session logged in to `server`, with
/// `local` as both HOME (no user rc files or history) and the local
/// working directory.
pub(crate) fn lftp(server: &TestServer, local: &Path, commands: &str) -> Lftp {
    let script = format!(
        "set net:max-retries 1; set net:timeout 10; set net:reconnect-interval-base 1; \
         set ftp:passive-mode on; set ftp:ssl-allow no; set cmd:fail-exit yes; set xfer:clobber on; \
         debug 5; open -u user,12345 ftp://127.0.0.1:{}; lcd {}; {commands}",
        server.port(),
        local.display()
    );
    let mut cmd = Command::new("lftp");
    cmd.arg("-c").arg(script).env("HOME", local).current_dir(local);
    let (ok, out, trace) = common::run(&mut cmd, Duration::from_secs(60));
    Lftp {
        ok,
        out: String::from_utf8_lossy(&out).into_owned(),
        trace,
    }
}

impl Lftp {
    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(self.ok, "lftp failed; stdout:\n{}\ntrace:\n{}", self.out, self.trace);
    }

    /// The commands lftp sent (`---> ` lines of the debug trace).
    pub fn sent(&self) -> Vec<&str> {
        self.trace
            .lines()
            .filter_map(|l| l.split_once("---> ").map(|(_, c)| c))
            .collect()
    }

    pub fn count_sent(&self, prefix: &str) -> usize {
        self.sent().iter().filter(|c| c.starts_with(prefix)).count()
    }

    #[track_caller]
    pub fn assert_sent(&self, prefix: &str) {
        assert!(
            self.count_sent(prefix) > 0,
            "lftp never sent {prefix:?}; sent {:?}",
            self.sent()
        );
    }
}

/// Every entry under `root`: relative path -> file bytes, or `None` for a
/// directory.
pub(crate) fn tree(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                out.insert(rel, None);
                walk(root, &path, out);
            } else {
                out.insert(rel, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Asserts two trees hold the same paths and the same bytes, naming the
/// first difference rather than dumping megabytes.
#[track_caller]
pub(crate) fn assert_same_tree(got: &BTreeMap<String, Option<Vec<u8>>>, want: &BTreeMap<String, Option<Vec<u8>>>) {
    let got_paths: Vec<&String> = got.keys().collect();
    let want_paths: Vec<&String> = want.keys().collect();
    assert_eq!(got_paths, want_paths, "tree paths differ");
    for (path, bytes) in want {
        match (bytes, &got[path]) {
            (None, None) => {}
            (Some(w), Some(g)) => assert!(
                g == w,
                "{path}: {} bytes, want {} bytes (content differs)",
                g.len(),
                w.len()
            ),
            _ => panic!("{path}: file/directory mismatch"),
        }
    }
}

/// A tree with nesting, an empty file, an empty directory, a name with a
/// space and a multi-block binary file.
pub(crate) fn sample_tree(root: &Path) {
    let files: [(&str, Vec<u8>); 7] = [
        ("top.txt", b"top level\n".to_vec()),
        ("empty.dat", Vec::new()),
        ("docs/readme.md", b"# readme\r\nwith CRLF\r\n".to_vec()),
        ("docs/deep/er/note.txt", b"deep".to_vec()),
        ("bin/blob.bin", common::payload(700_000, 21)),
        ("bin/all bytes.bin", (0..=255u8).cycle().take(4096).collect()),
        ("bin/zero.bin", vec![0u8; 3000]),
    ];
    for (rel, data) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    std::fs::create_dir_all(root.join("docs/empty-dir")).unwrap();
}

/// An old, whole-second modification time, far from "now" and from any
/// time zone offset.
fn old_mtime() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_262_401_445) // 2010-01-02 03:04:05 UTC
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn lftp_lists_with_mlsd_and_list() {
    let server = TestServer::start(&[]);
    server.write("d/f.txt", b"12345");
    server.write("d/z.bin", &vec![1u8; 70_000]);
    server.write("d/sub/inner", b"x");
    let local = tempfile::tempdir().unwrap();

    let run = lftp(&server, local.path(), "set ftp:use-mlsd on; cls -l d/; ls d/");
    run.assert_ok();
    run.assert_sent("MLSD");
    run.assert_sent("LIST");

    // `cls -l` lines come from MLSD facts: perms, size (files), date, path.
    let cls: Vec<&str> = run.out.lines().filter(|l| l.contains("d/")).collect();
    let find = |name: &str| {
        cls.iter()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("no cls line for {name}: {cls:?}"))
    };
    assert!(
        find("d/f.txt").split_whitespace().nth(1) == Some("5"),
        "f.txt size: {cls:?}"
    );
    assert!(
        find("d/z.bin").split_whitespace().nth(1) == Some("70000"),
        "z.bin size: {cls:?}"
    );
    assert!(find("d/sub/").starts_with('d'), "sub is a directory: {cls:?}");

    // `ls` passes the LIST output through: `ls -l` lines with bare names.
    let ls: Vec<&str> = run.out.lines().filter(|l| !l.contains("d/")).collect();
    for (name, size) in [("f.txt", "5"), ("z.bin", "70000")] {
        let line = ls
            .iter()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("no LIST line for {name}: {ls:?}"));
        assert_eq!(line.split_whitespace().nth(4), Some(size), "LIST size of {name}");
    }
    assert!(
        ls.iter().any(|l| l.starts_with('d') && l.ends_with(" sub")),
        "LIST shows sub as a directory: {ls:?}"
    );
}

#[test]
fn lftp_mirror_downloads_a_tree() {
    let server = TestServer::start(&[]);
    sample_tree(&server.path("site"));
    set_mtime(&server.path("site/docs/readme.md"), old_mtime());
    let local = tempfile::tempdir().unwrap();

    let run = lftp(&server, local.path(), "mirror site copy");
    run.assert_ok();
    run.assert_sent("RETR");

    assert_same_tree(&tree(&local.path().join("copy")), &tree(&server.path("site")));
    // lftp dates the copy from the listing's modify fact (UTC).
    assert_eq!(
        mtime(&local.path().join("copy/docs/readme.md")),
        old_mtime(),
        "mirror keeps the server's mtime"
    );
}

#[test]
fn lftp_mirror_reverse_uploads_a_tree() {
    let server = TestServer::start(&[]);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    sample_tree(&src);

    set_mtime(&src.join("bin/blob.bin"), old_mtime());

    let run = lftp(&server, local.path(), "mirror -R --parallel=3 src uploaded");
    run.assert_ok();
    run.assert_sent("STOR");
    run.assert_sent("MKD");

    assert_same_tree(&tree(&server.path("uploaded")), &tree(&src));
    // lftp sets the time with MFMT after each upload.
    run.assert_sent("MFMT");
    assert_eq!(
        mtime(&server.path("uploaded/bin/blob.bin")),
        old_mtime(),
        "mirror -R keeps the local mtime"
    );
}

#[test]
fn lftp_get_continue_resumes_a_partial_download() {
    let server = TestServer::start(&[]);
    let data = common::payload(900_000, 22);
    server.write("resume.bin", &data);
    let local = tempfile::tempdir().unwrap();
    let partial = 333_333;
    std::fs::write(local.path().join("resume.bin"), &data[..partial]).unwrap();

    let run = lftp(&server, local.path(), "get -c resume.bin");
    run.assert_ok();

    assert!(
        std::fs::read(local.path().join("resume.bin")).unwrap() == data,
        "resumed download differs from the server's file"
    );
    assert!(
        run.sent().contains(&format!("REST {partial}").as_str()),
        "lftp resumes with REST {partial}; sent {:?}",
        run.sent()
    );
    assert_eq!(run.count_sent("RETR"), 1, "one RETR, no retry; sent {:?}", run.sent());
}

#[test]
fn lftp_put_continue_resumes_an_upload() {
    let server = TestServer::start(&[]);
    let data = common::payload(600_000, 28);
    server.write("up.bin", &data[..200_000]);
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("up.bin"), &data).unwrap();

    let run = lftp(&server, local.path(), "put -c up.bin");
    run.assert_ok();

    assert!(
        server.read("up.bin") == data,
        "resumed upload differs from the local file"
    );
    assert!(
        run.sent().contains(&"REST 200000"),
        "lftp resumes with REST 200000; sent {:?}",
        run.sent()
    );
    assert_eq!(run.count_sent("STOR"), 1, "one STOR, no retry; sent {:?}", run.sent());
}

#[test]
fn lftp_active_mode_transfers_and_lists() {
    let server = TestServer::start(&[]);
    let data = common::payload(300_000, 29);
    server.write("a.bin", &data);
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("up.bin"), &data).unwrap();

    // lftp listens on the control connection's local address (loopback).
    let run = lftp(
        &server,
        local.path(),
        "set ftp:passive-mode off; get a.bin -o got.bin; put up.bin -o put.bin; cls",
    );
    run.assert_ok();

    assert!(
        std::fs::read(local.path().join("got.bin")).unwrap() == data,
        "active-mode download"
    );
    assert!(server.read("put.bin") == data, "active-mode upload");
    let active = run.count_sent("PORT 127,0,0,1,") + run.count_sent("EPRT |1|127.0.0.1|");
    assert!(active >= 3, "PORT/EPRT for each data connection; sent {:?}", run.sent());
    assert_eq!(
        run.count_sent("PASV") + run.count_sent("EPSV"),
        0,
        "no passive mode; sent {:?}",
        run.sent()
    );
}

#[test]
fn lftp_put_mkdir_mv_and_rm() {
    let server = TestServer::start(&[]);
    server.write("doomed.txt", b"bye");
    let local = tempfile::tempdir().unwrap();
    let data = common::payload(250_000, 23);
    std::fs::write(local.path().join("up.bin"), &data).unwrap();

    let run = lftp(
        &server,
        local.path(),
        "mkdir -p a/b/c; put up.bin -o a/b/c/up.bin; mv a/b/c/up.bin a/moved.bin; rm doomed.txt; put up.bin -o a/b/copy.bin",
    );
    run.assert_ok();

    assert!(server.path("a/b/c").is_dir(), "mkdir -p made every level");
    assert!(!server.path("a/b/c/up.bin").exists(), "mv removed the old name");
    assert!(server.read("a/moved.bin") == data, "mv kept the uploaded bytes");
    assert!(server.read("a/b/copy.bin") == data, "put stored the bytes");
    assert!(!server.path("doomed.txt").exists(), "rm deleted the file");
    for cmd in ["MKD", "STOR", "RNFR", "RNTO", "DELE"] {
        run.assert_sent(cmd);
    }
}

#[test]
fn lftp_pget_downloads_ranges_in_parallel() {
    let server = TestServer::start(&[]);
    let data = common::payload(4 * 1024 * 1024 + 321, 24);
    server.write("big.bin", &data);
    let local = tempfile::tempdir().unwrap();

    // On loopback one connection fetches the whole file before the other
    // three have logged in; a per-connection rate limit (1 MB/s, so about a
    // second in all) makes the ranges really run in parallel.
    let run = lftp(
        &server,
        local.path(),
        "set pget:min-chunk-size 65536; set net:limit-rate 1000000; pget -n 4 big.bin -o got.bin",
    );
    run.assert_ok();

    assert!(
        std::fs::read(local.path().join("got.bin")).unwrap() == data,
        "pget result differs from the server's file"
    );
    let rests = run
        .sent()
        .iter()
        .filter(|c| c.starts_with("REST ") && **c != "REST 0")
        .count();
    assert!(
        rests >= 2,
        "pget -n 4 should fetch ranges from non-zero REST offsets; sent {:?}",
        run.sent()
    );
    assert!(
        run.count_sent("RETR") > rests,
        "a RETR for the start and one per range; sent {:?}",
        run.sent()
    );
    assert!(
        !run.trace.contains("Timeout"),
        "no connection stalled (lftp ends a range with ABOR):\n{}",
        run.trace
    );
}

#[test]
fn lftp_abort_of_a_piped_download_keeps_the_session() {
    let server = TestServer::start(&[]);
    let big = common::payload(16 * 1024 * 1024, 26);
    server.write("big.bin", &big);
    let small = common::payload(300_000, 27);
    server.write("small.bin", &small);
    let local = tempfile::tempdir().unwrap();

    // `head` exits after 1000 bytes, the pipe breaks, and lftp aborts the
    // running RETR: ABOR sent as Telnet IP + Synch (urgent data). The same
    // session then downloads another file.
    let run = lftp(
        &server,
        local.path(),
        "cat big.bin | head -c 1000 > /dev/null; get small.bin -o small.bin",
    );
    run.assert_ok();

    assert!(
        run.sent().contains(&"ABOR"),
        "lftp aborted the piped RETR; sent {:?}",
        run.sent()
    );
    let after_abor: Vec<&str> = run
        .trace
        .lines()
        .skip_while(|l| !l.ends_with("---> ABOR"))
        .filter_map(|l| l.split_once("<--- ").map(|(_, r)| r))
        .take(2)
        .collect();
    assert!(
        after_abor.len() == 2 && after_abor[0].starts_with("426") && after_abor[1].starts_with("226"),
        "ABOR during a transfer is answered 426 then 226 (RFC 959): {after_abor:?}"
    );
    assert!(
        !run.trace.contains("Timeout"),
        "the ABOR must be answered at once, not after a timeout:\n{}",
        run.trace
    );
    assert!(
        std::fs::read(local.path().join("small.bin")).unwrap() == small,
        "download after ABOR is intact"
    );
}

#[test]
fn lftp_gets_no_unknown_command_replies() {
    let server = TestServer::start(&[]);
    server.write("f.txt", b"x");
    let local = tempfile::tempdir().unwrap();

    // lftp picks commands from what FEAT advertises (LANG, HOST, OPTS UTF8,
    // MLST, ...); each must be one the server implements.
    let run = lftp(&server, local.path(), "cls -l; get f.txt -o f.txt");
    run.assert_ok();
    let refused: Vec<&str> = run
        .trace
        .lines()
        .filter_map(|l| l.split_once("<--- ").map(|(_, r)| r))
        .filter(|r| r.starts_with("500") || r.starts_with("502"))
        .collect();
    assert!(
        refused.is_empty(),
        "replies 500/502 to commands lftp sent {:?}: {refused:?}",
        run.sent()
    );
}

#[test]
fn lftp_prefers_epsv_when_asked() {
    let server = TestServer::start(&[]);
    let data = common::payload(123_456, 25);
    server.write("e.bin", &data);
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("up.bin"), &data).unwrap();

    let run = lftp(
        &server,
        local.path(),
        "set ftp:prefer-epsv true; get e.bin -o e-copy.bin; put up.bin -o e-up.bin; ls",
    );
    run.assert_ok();

    assert!(std::fs::read(local.path().join("e-copy.bin")).unwrap() == data);
    assert!(server.read("e-up.bin") == data);
    assert!(
        run.count_sent("EPSV") >= 3,
        "EPSV for each data connection; sent {:?}",
        run.sent()
    );
    assert_eq!(
        run.count_sent("PASV"),
        0,
        "no PASV with prefer-epsv; sent {:?}",
        run.sent()
    );
}
