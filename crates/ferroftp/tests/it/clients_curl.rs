//! curl as the client: uploads and downloads in every data-connection mode
//! (EPSV, PASV, EPRT, PORT), resumed transfers, APPE, quote commands,
//! listings and odd file names. Every run uses `-v`, so the commands curl
//! sent and the replies it got are checked as well as the bytes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{self, TestServer};

/// One finished curl run: whether it succeeded, what it wrote to stdout,
/// and its stderr (the `-v` trace and any error line).
pub(crate) struct Curl {
    pub ok: bool,
    pub body: Vec<u8>,
    pub trace: String,
}

/// Runs curl with a clean configuration (`-q` skips ~/.curlrc), no proxy,
/// and deadlines on both curl and the process.
pub(crate) fn curl(args: &[&str]) -> Curl {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-q",
        "-sS",
        "-v",
        "--noproxy",
        "*",
        "--connect-timeout",
        "10",
        "--max-time",
        "30",
    ]);
    cmd.args(args);
    let (ok, body, trace) = common::run(&mut cmd, Duration::from_secs(45));
    Curl { ok, body, trace }
}

impl Curl {
    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(self.ok, "curl failed; trace:\n{}", self.trace);
    }

    /// The commands curl sent, in order (`> ` lines of the trace).
    pub fn sent(&self) -> Vec<&str> {
        self.trace.lines().filter_map(|l| l.strip_prefix("> ")).collect()
    }

    /// True when curl sent a command starting with `prefix`.
    pub fn sent_any(&self, prefix: &str) -> bool {
        self.sent().iter().any(|c| c.starts_with(prefix))
    }

    /// Asserts that curl sent these commands in this order (others may come
    /// between them): each entry matches a sent line by prefix.
    #[track_caller]
    pub fn assert_sent_in_order(&self, expected: &[&str]) {
        let sent = self.sent();
        let mut rest = sent.iter();
        for want in expected {
            assert!(
                rest.any(|c| c.starts_with(want)),
                "curl did not send {want:?} in the expected order; sent {sent:?}\ntrace:\n{}",
                self.trace
            );
        }
    }

    /// The trace lines after the first command starting with `prefix`, up
    /// to the next command: what the server answered to it.
    fn answer_to<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let mut lines = self
            .trace
            .lines()
            .skip_while(move |l| !l.strip_prefix("> ").is_some_and(|c| c.starts_with(prefix)));
        lines.next();
        lines
            .take_while(|l| !l.starts_with("> "))
            .filter_map(|l| l.strip_prefix("< "))
    }

    /// The reply codes that answered the first command starting with
    /// `prefix` (final lines only, `NNN text`).
    pub fn replies_to(&self, prefix: &str) -> Vec<u16> {
        self.answer_to(prefix)
            .filter(|r| r.as_bytes().get(3) == Some(&b' '))
            .filter_map(|r| r.get(..3)?.parse().ok())
            .collect()
    }

    #[track_caller]
    pub fn assert_replies(&self, prefix: &str, expected: &[u16]) {
        assert_eq!(
            self.replies_to(prefix),
            expected,
            "replies to {prefix:?}; trace:\n{}",
            self.trace
        );
    }

    /// The text (after the code) of the first reply to `prefix`.
    pub fn reply_text(&self, prefix: &str) -> String {
        self.answer_to(prefix)
            .next()
            .and_then(|r| r.get(4..))
            .unwrap_or_default()
            .to_string()
    }

    /// curl's exit code, from its `curl: (N) ...` error line.
    pub fn exit_code(&self) -> Option<u32> {
        let line = self.trace.lines().find(|l| l.starts_with("curl: ("))?;
        line["curl: (".len()..].split(')').next()?.parse().ok()
    }
}

/// The reply to a transfer command: 125 or 150, then 226.
#[track_caller]
pub(crate) fn assert_transfer_ok(run: &Curl, command: &str) {
    let codes = run.replies_to(command);
    assert!(
        codes.len() == 2 && (codes[0] == 125 || codes[0] == 150) && codes[1] == 226,
        "{command:?} should be answered 125/150 then 226, got {codes:?}; trace:\n{}",
        run.trace
    );
}

/// `len` bytes that hold every byte value (each 256-byte run first, then
/// pseudo-random bytes), so any text conversion or truncation shows.
fn all_byte_values(len: usize, seed: u64) -> Vec<u8> {
    let head = len.min(64 * 1024);
    let mut data: Vec<u8> = (0..=255u8).cycle().take(head).collect();
    data.extend(common::payload(len - head, seed));
    data
}

fn write_local(dir: &Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p.to_str().unwrap().to_string()
}

/// Percent-encodes everything but unreserved characters and `/`.
fn url_path(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn curl_upload_creates_missing_directories() {
    let server = TestServer::start(&[]);
    let local = tempfile::tempdir().unwrap();
    let data = common::payload(200_000, 1);
    let file = write_local(local.path(), "up.bin", &data);

    let run = curl(&["--ftp-create-dirs", "-T", &file, &server.url("/new/deeper/up.bin")]);
    run.assert_ok();

    assert_eq!(server.read("new/deeper/up.bin"), data, "uploaded bytes on disk");
    run.assert_sent_in_order(&[
        "USER user",
        "PASS 12345",
        "PWD",
        "CWD new",
        "MKD new",
        "CWD new",
        "CWD deeper",
        "MKD deeper",
        "CWD deeper",
        "EPSV",
        "TYPE I",
        "STOR up.bin",
    ]);
    run.assert_replies("USER", &[331]);
    run.assert_replies("PASS", &[230]);
    run.assert_replies("PWD", &[257]);
    run.assert_replies("CWD new", &[550]);
    run.assert_replies("MKD new", &[257]);
    run.assert_replies("MKD deeper", &[257]);
    run.assert_replies("EPSV", &[229]);
    run.assert_replies("TYPE I", &[200]);
    assert_transfer_ok(&run, "STOR up.bin");
}

#[test]
fn curl_download_uses_size_then_retr() {
    let server = TestServer::start(&[]);
    let data = common::payload(300_001, 2);
    server.write("pub/file.bin", &data);
    let local = tempfile::tempdir().unwrap();
    let out = local.path().join("out.bin");

    let run = curl(&["-o", out.to_str().unwrap(), &server.url("/pub/file.bin")]);
    run.assert_ok();

    assert_eq!(std::fs::read(&out).unwrap(), data, "downloaded bytes");
    run.assert_sent_in_order(&["CWD pub", "EPSV", "TYPE I", "SIZE file.bin", "RETR file.bin"]);
    run.assert_replies("SIZE file.bin", &[213]);
    assert_eq!(run.reply_text("SIZE file.bin"), "300001", "SIZE reply text");
    assert_transfer_ok(&run, "RETR file.bin");
}

#[test]
fn curl_download_to_stdout_in_passive_pasv_mode() {
    let server = TestServer::start(&[]);
    let data = common::payload(150_000, 3);
    server.write("pasv.bin", &data);

    let run = curl(&["--disable-epsv", &server.url("/pasv.bin")]);
    run.assert_ok();

    assert_eq!(run.body, data, "downloaded bytes");
    assert!(
        !run.sent_any("EPSV"),
        "--disable-epsv must not send EPSV; sent {:?}",
        run.sent()
    );
    run.assert_replies("PASV", &[227]);
    assert!(
        run.reply_text("PASV").contains("(127,0,0,1,"),
        "PASV reply announces loopback: {:?}",
        run.reply_text("PASV")
    );
    assert_transfer_ok(&run, "RETR pasv.bin");
}

#[test]
fn curl_active_eprt_download_and_upload() {
    let server = TestServer::start(&[]);
    let data = common::payload(250_000, 4);
    server.write("act.bin", &data);
    let local = tempfile::tempdir().unwrap();

    let down = curl(&["-P", "127.0.0.1", &server.url("/act.bin")]);
    down.assert_ok();
    assert_eq!(down.body, data, "downloaded bytes over EPRT");
    assert!(
        !down.sent_any("EPSV") && !down.sent_any("PASV"),
        "active mode must not go passive; sent {:?}",
        down.sent()
    );
    down.assert_sent_in_order(&["EPRT |1|127.0.0.1|", "RETR act.bin"]);
    down.assert_replies("EPRT", &[200]);
    assert_transfer_ok(&down, "RETR act.bin");

    let up_data = common::payload(180_000, 5);
    let file = write_local(local.path(), "up.bin", &up_data);
    let up = curl(&["-P", "127.0.0.1", "-T", &file, &server.url("/act-up.bin")]);
    up.assert_ok();
    assert_eq!(server.read("act-up.bin"), up_data, "uploaded bytes over EPRT");
    up.assert_replies("EPRT", &[200]);
    assert_transfer_ok(&up, "STOR act-up.bin");
}

#[test]
fn curl_active_port_download_and_upload() {
    let server = TestServer::start(&[]);
    let data = common::payload(250_000, 6);
    server.write("port.bin", &data);
    let local = tempfile::tempdir().unwrap();

    let down = curl(&["-P", "127.0.0.1", "--disable-eprt", &server.url("/port.bin")]);
    down.assert_ok();
    assert_eq!(down.body, data, "downloaded bytes over PORT");
    assert!(
        !down.sent_any("EPRT"),
        "--disable-eprt must not send EPRT; sent {:?}",
        down.sent()
    );
    down.assert_sent_in_order(&["PORT 127,0,0,1,", "RETR port.bin"]);
    down.assert_replies("PORT", &[200]);
    assert_transfer_ok(&down, "RETR port.bin");

    let up_data = common::payload(90_000, 7);
    let file = write_local(local.path(), "up.bin", &up_data);
    let up = curl(&[
        "-P",
        "127.0.0.1",
        "--disable-eprt",
        "-T",
        &file,
        &server.url("/port-up.bin"),
    ]);
    up.assert_ok();
    assert_eq!(server.read("port-up.bin"), up_data, "uploaded bytes over PORT");
    up.assert_replies("PORT", &[200]);
    assert_transfer_ok(&up, "STOR port-up.bin");
}

#[test]
fn curl_resumes_a_partial_download() {
    let server = TestServer::start(&[]);
    let data = common::payload(400_000, 8);
    server.write("resume.bin", &data);
    let local = tempfile::tempdir().unwrap();
    let partial = 123_457;
    let out = write_local(local.path(), "resume.bin", &data[..partial]);

    let run = curl(&["-C", "-", "-o", &out, &server.url("/resume.bin")]);
    run.assert_ok();

    assert_eq!(
        std::fs::read(&out).unwrap(),
        data,
        "resumed file must equal the server's file"
    );
    run.assert_sent_in_order(&["SIZE resume.bin", &format!("REST {partial}"), "RETR resume.bin"]);
    run.assert_replies(&format!("REST {partial}"), &[350]);
    assert_transfer_ok(&run, "RETR resume.bin");
    assert!(
        run.reply_text("RETR resume.bin")
            .contains(&format!("({} bytes)", data.len() - partial)),
        "150 reply should announce the remaining byte count: {:?}",
        run.reply_text("RETR resume.bin")
    );
}

#[test]
fn curl_resumes_a_partial_upload() {
    let server = TestServer::start(&[]);
    let data = common::payload(300_000, 9);
    server.write("partial-up.bin", &data[..100_000]);
    let local = tempfile::tempdir().unwrap();
    let file = write_local(local.path(), "full.bin", &data);

    let run = curl(&["-C", "-", "-T", &file, &server.url("/partial-up.bin")]);
    run.assert_ok();

    assert_eq!(
        server.read("partial-up.bin"),
        data,
        "resumed upload must complete the file exactly"
    );
    run.assert_replies("SIZE partial-up.bin", &[213]);
    // curl resumes an upload with APPE after SIZE; REST + STOR is the other
    // correct form.
    if run.sent_any("APPE") {
        assert_transfer_ok(&run, "APPE partial-up.bin");
    } else {
        run.assert_sent_in_order(&["REST 100000", "STOR partial-up.bin"]);
        assert_transfer_ok(&run, "STOR partial-up.bin");
    }
}

#[test]
fn curl_append_adds_to_existing_and_creates_missing() {
    let server = TestServer::start(&[]);
    server.write("log.txt", b"first line\n");
    let local = tempfile::tempdir().unwrap();
    let file = write_local(local.path(), "more.txt", b"second line\n\x00\xff binary tail");

    let run = curl(&["-a", "-T", &file, &server.url("/log.txt")]);
    run.assert_ok();
    assert_eq!(server.read("log.txt"), b"first line\nsecond line\n\x00\xff binary tail");
    run.assert_sent_in_order(&["TYPE I", "APPE log.txt"]);
    assert_transfer_ok(&run, "APPE log.txt");

    let run = curl(&["-a", "-T", &file, &server.url("/fresh.txt")]);
    run.assert_ok();
    assert_eq!(
        server.read("fresh.txt"),
        b"second line\n\x00\xff binary tail",
        "APPE to a missing file creates it"
    );
    assert_transfer_ok(&run, "APPE fresh.txt");
}

#[test]
fn curl_quote_commands_run_before_and_after_the_transfer() {
    let server = TestServer::start(&[]);
    server.write("old.txt", b"renamed content");
    server.write("victim.txt", b"deleted after the listing");

    let run = curl(&[
        "-l",
        "-Q",
        "MKD made",
        "-Q",
        "RNFR old.txt",
        "-Q",
        "RNTO new.txt",
        "-Q",
        "-DELE victim.txt",
        &server.url("/"),
    ]);
    run.assert_ok();

    run.assert_sent_in_order(&["MKD made", "RNFR old.txt", "RNTO new.txt", "NLST", "DELE victim.txt"]);
    run.assert_replies("MKD made", &[257]);
    run.assert_replies("RNFR old.txt", &[350]);
    run.assert_replies("RNTO new.txt", &[250]);
    run.assert_replies("DELE victim.txt", &[250]);

    // The listing ran after the pre-quote commands and before the post-quote.
    let mut names: Vec<String> = String::from_utf8(run.body.clone())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["made", "new.txt", "victim.txt"],
        "NLST between pre- and post-quote"
    );

    assert!(server.path("made").is_dir(), "MKD made a directory");
    assert!(!server.path("old.txt").exists(), "RNFR source is gone");
    assert_eq!(server.read("new.txt"), b"renamed content");
    assert!(!server.path("victim.txt").exists(), "post-quote DELE removed the file");
}

#[test]
fn curl_failing_quote_command_is_reported() {
    let server = TestServer::start(&[]);
    let run = curl(&["-Q", "DELE missing.txt", &server.url("/")]);
    assert!(!run.ok, "a 550 to a quote command must fail the run");
    assert_eq!(
        run.exit_code(),
        Some(21),
        "curl exit 21 (quote error); trace:\n{}",
        run.trace
    );
    run.assert_replies("DELE missing.txt", &[550]);
}

#[test]
fn curl_name_list_of_a_directory() {
    let server = TestServer::start(&[]);
    server.write("d/a.txt", b"a");
    server.write("d/b.bin", &[0u8; 10]);
    server.write("d/sub/inner.txt", b"inner");
    server.write("d/.hidden", b"h");

    let run = curl(&["-l", &server.url("/d/")]);
    run.assert_ok();

    let text = String::from_utf8(run.body.clone()).unwrap();
    let mut names: Vec<&str> = text.lines().collect();
    names.sort();
    // NLST shows names only (no paths), one per line, sub-directories included.
    assert!(
        names.contains(&"a.txt") && names.contains(&"b.bin") && names.contains(&"sub"),
        "NLST names: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n.contains("inner")),
        "NLST is not recursive: {names:?}"
    );
    run.assert_sent_in_order(&["CWD d", "EPSV", "TYPE A", "NLST"]);
    assert_transfer_ok(&run, "NLST");
}

#[test]
fn curl_long_listing_of_a_directory() {
    let server = TestServer::start(&[]);
    server.write("d/a.txt", b"12345");
    server.write("d/big.bin", &vec![7u8; 70_000]);
    server.write("d/sub/inner.txt", b"inner");

    let run = curl(&[&server.url("/d/")]);
    run.assert_ok();
    run.assert_sent_in_order(&["CWD d", "EPSV", "TYPE A", "LIST"]);
    assert_transfer_ok(&run, "LIST");

    let text = String::from_utf8(run.body.clone()).unwrap();
    // `ls -l` lines: perms, links, owner, group, size, 3 date fields, name.
    let mut entries: Vec<(char, u64, String)> = text
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(fields.len() >= 9, "LIST line has ls -l fields: {line:?}");
            let kind = fields[0].chars().next().unwrap();
            let size = fields[4].parse().unwrap_or_else(|_| panic!("size field in {line:?}"));
            (kind, size, fields[8..].join(" "))
        })
        .collect();
    entries.sort_by(|a, b| a.2.cmp(&b.2));
    let files: Vec<(char, u64, &str)> = entries
        .iter()
        .filter(|e| e.0 == '-')
        .map(|e| (e.0, e.1, e.2.as_str()))
        .collect();
    assert_eq!(
        files,
        [('-', 5, "a.txt"), ('-', 70_000, "big.bin")],
        "file lines of LIST:\n{text}"
    );
    assert!(
        entries.iter().any(|e| e.0 == 'd' && e.2 == "sub"),
        "directory line for sub:\n{text}"
    );
    assert_eq!(entries.len(), 3, "LIST shows exactly the entries of d:\n{text}");
}

#[test]
fn curl_head_reports_size_and_modification_time() {
    let server = TestServer::start(&[]);
    server.write("meta.bin", &[1u8; 4321]);

    let run = curl(&["-I", &server.url("/meta.bin")]);
    run.assert_ok();
    let head = String::from_utf8(run.body.clone()).unwrap();
    assert!(head.contains("Content-Length: 4321"), "size from SIZE: {head:?}");
    assert!(head.contains("Last-Modified: "), "time from MDTM: {head:?}");
    run.assert_replies("MDTM meta.bin", &[213]);
    let mdtm = run.reply_text("MDTM meta.bin");
    assert!(
        mdtm.len() == 14 && mdtm.bytes().all(|b| b.is_ascii_digit()),
        "MDTM answers YYYYMMDDHHMMSS: {mdtm:?}"
    );
}

#[test]
fn curl_missing_file_is_remote_file_not_found() {
    let server = TestServer::start(&[]);
    let local = tempfile::tempdir().unwrap();
    let out = local.path().join("never.bin");

    let run = curl(&["-o", out.to_str().unwrap(), &server.url("/no/such/file.bin")]);
    assert!(!run.ok, "downloading a missing file must fail");
    // The missing directory is found first (CWD no -> 550).
    assert_eq!(
        run.exit_code(),
        Some(9),
        "curl exit 9 (access denied to remote dir); trace:\n{}",
        run.trace
    );
    run.assert_replies("CWD no", &[550]);

    let run = curl(&["-o", out.to_str().unwrap(), &server.url("/missing.bin")]);
    assert!(!run.ok, "downloading a missing file must fail");
    assert_eq!(
        run.exit_code(),
        Some(78),
        "curl exit 78 (remote file not found); trace:\n{}",
        run.trace
    );
    run.assert_replies("SIZE missing.bin", &[550]);
    assert!(!server.path("missing.bin").exists());
}

#[test]
fn curl_round_trips_every_byte_value() {
    let server = TestServer::start(&[]);
    let data = all_byte_values(3 * 1024 * 1024 + 17, 10);
    let local = tempfile::tempdir().unwrap();
    let file = write_local(local.path(), "all.bin", &data);

    curl(&["-T", &file, &server.url("/bin/all.bin"), "--ftp-create-dirs"]).assert_ok();
    assert!(
        server.read("bin/all.bin") == data,
        "uploaded binary differs from the source"
    );

    let out = local.path().join("back.bin");
    let run = curl(&["-o", out.to_str().unwrap(), &server.url("/bin/all.bin")]);
    run.assert_ok();
    assert!(
        std::fs::read(&out).unwrap() == data,
        "downloaded binary differs from the source"
    );
    assert_eq!(run.reply_text("SIZE all.bin"), data.len().to_string());
}

#[test]
fn curl_file_name_with_spaces_and_utf8() {
    let server = TestServer::start(&[]);
    let dir = "dir with space";
    let name = "naïve файл €.txt";
    let remote = format!("/{dir}/{name}");
    let data = b"unicode name\r\nkept as is\n".to_vec();
    let local = tempfile::tempdir().unwrap();
    let file = write_local(local.path(), "src.txt", &data);

    let up = curl(&["--ftp-create-dirs", "-T", &file, &server.url(&url_path(&remote))]);
    up.assert_ok();
    up.assert_sent_in_order(&[&format!("MKD {dir}"), &format!("STOR {name}")]);
    assert_eq!(server.read(&remote), data, "file stored under the exact UTF-8 name");

    let down = curl(&[&server.url(&url_path(&remote))]);
    down.assert_ok();
    assert_eq!(down.body, data);

    let list = curl(&["-l", &server.url(&url_path(&format!("/{dir}/")))]);
    list.assert_ok();
    assert_eq!(
        String::from_utf8(list.body.clone()).unwrap().trim_end(),
        name,
        "NLST shows the UTF-8 name verbatim"
    );
}

#[test]
fn curl_upload_replaces_a_longer_file_and_handles_empty_files() {
    let server = TestServer::start(&[]);
    server.write("over.bin", &common::payload(500_000, 11));
    let local = tempfile::tempdir().unwrap();
    let short = common::payload(1000, 12);
    let file = write_local(local.path(), "short.bin", &short);

    curl(&["-T", &file, &server.url("/over.bin")]).assert_ok();
    assert_eq!(server.read("over.bin"), short, "STOR truncates the old content");

    let empty = write_local(local.path(), "empty.bin", b"");
    let up = curl(&["-T", &empty, &server.url("/empty.bin")]);
    up.assert_ok();
    assert_transfer_ok(&up, "STOR empty.bin");
    assert_eq!(server.read("empty.bin"), b"", "empty upload makes an empty file");
    curl(&["-T", &empty, &server.url("/over.bin")]).assert_ok();
    assert_eq!(server.read("over.bin"), b"", "empty upload truncates to zero");

    let out = local.path().join("got-empty.bin");
    let down = curl(&["-o", out.to_str().unwrap(), &server.url("/empty.bin")]);
    down.assert_ok();
    assert_eq!(down.reply_text("SIZE empty.bin"), "0");
    assert_eq!(std::fs::read(&out).unwrap(), b"", "empty download");
}

#[test]
fn curl_ascii_mode_converts_line_ends_both_ways() {
    let server = TestServer::start(&[]);
    let text = b"first\nsecond\n\nfourth line\n".to_vec();
    let local = tempfile::tempdir().unwrap();
    let file = write_local(local.path(), "text.txt", &text);

    // curl -B sends TYPE A and LF as CR LF; the server stores local (LF)
    // line ends.
    let up = curl(&["-B", "-T", &file, &server.url("/text.txt")]);
    up.assert_ok();
    up.assert_sent_in_order(&["TYPE A", "STOR text.txt"]);
    assert_eq!(server.read("text.txt"), text, "TYPE A upload stored with LF line ends");

    // Downloading in TYPE A sends CR LF, which curl turns back into LF.
    let down = curl(&["-B", &server.url("/text.txt")]);
    down.assert_ok();
    down.assert_sent_in_order(&["TYPE A", "RETR text.txt"]);
    assert_eq!(down.body, text, "TYPE A round trip");

    // The same file in TYPE I is byte for byte what is stored.
    assert_eq!(curl(&[&server.url("/text.txt")]).body, text);
}

#[test]
fn curl_ftp_methods_nocwd_and_singlecwd() {
    let server = TestServer::start(&[]);
    let data = common::payload(77_777, 13);
    server.write("x/y/z.bin", &data);

    let nocwd = curl(&["--ftp-method", "nocwd", &server.url("/x/y/z.bin")]);
    nocwd.assert_ok();
    assert_eq!(nocwd.body, data);
    assert!(!nocwd.sent_any("CWD"), "nocwd sends no CWD: {:?}", nocwd.sent());
    nocwd.assert_sent_in_order(&["SIZE x/y/z.bin", "RETR x/y/z.bin"]);

    let single = curl(&["--ftp-method", "singlecwd", &server.url("/x/y/z.bin")]);
    single.assert_ok();
    assert_eq!(single.body, data);
    single.assert_sent_in_order(&["CWD x/y", "SIZE z.bin", "RETR z.bin"]);
    single.assert_replies("CWD x/y", &[250]);
}

#[test]
fn curl_lists_a_large_directory_completely() {
    let server = TestServer::start(&[]);
    let count = 3000;
    let dir = server.path("many");
    std::fs::create_dir_all(&dir).unwrap();
    let mut want: Vec<String> = (0..count)
        .map(|i| format!("file-with-a-longish-name-{i:05}.dat"))
        .collect();
    for name in &want {
        std::fs::write(dir.join(name), name.as_bytes()).unwrap();
    }
    want.sort();

    let nlst = curl(&["-l", &server.url("/many/")]);
    nlst.assert_ok();
    let mut names: Vec<String> = String::from_utf8(nlst.body.clone())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    names.sort();
    assert!(names == want, "NLST of {count} entries: got {} names", names.len());

    let list = curl(&[&server.url("/many/")]);
    list.assert_ok();
    let text = String::from_utf8(list.body.clone()).unwrap();
    let mut listed: Vec<&str> = text.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
    listed.sort();
    assert!(listed == want, "LIST of {count} entries: got {} lines", listed.len());
}

#[test]
fn curl_parallel_sessions_keep_their_data_apart() {
    let server = TestServer::start(&[]);
    let local = tempfile::tempdir().unwrap();
    let sessions = 6;
    let files: Vec<(String, Vec<u8>)> = (0..sessions)
        .map(|i| {
            let data = common::payload(1024 * 1024 + i * 1000, 100 + i as u64);
            (write_local(local.path(), &format!("p{i}.bin"), &data), data)
        })
        .collect();

    // Uploads at once, each with its own session and data connection, then
    // downloads at once, half of them in active mode. (The directory exists
    // first: concurrent --ftp-create-dirs would race on MKD.)
    std::fs::create_dir(server.path("par")).unwrap();
    std::thread::scope(|s| {
        for (i, (file, _)) in files.iter().enumerate() {
            let url = server.url(&format!("/par/p{i}.bin"));
            s.spawn(move || curl(&["-T", file, &url]).assert_ok());
        }
    });
    for (i, (_, data)) in files.iter().enumerate() {
        assert!(
            server.read(&format!("par/p{i}.bin")) == *data,
            "parallel upload {i} on disk"
        );
    }
    std::thread::scope(|s| {
        for (i, (_, data)) in files.iter().enumerate() {
            let url = server.url(&format!("/par/p{i}.bin"));
            s.spawn(move || {
                let run = if i % 2 == 0 {
                    curl(&[&url])
                } else {
                    curl(&["-P", "127.0.0.1", &url])
                };
                run.assert_ok();
                assert!(run.body == *data, "parallel download {i}");
            });
        }
    });
}
