//! Reply codes of file and directory commands on the control connection:
//! 257, 250, 350, 213, 212, 550, 553.

use std::os::unix::fs::PermissionsExt;

use crate::common::TestServer;
use crate::replies_util::body_lines;

#[test]
fn pwd_257_quoted() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    let r = c.expect("PWD", 257);
    assert!(r.text.starts_with("\"/\" "), "{r:?}");
    let r = c.expect("XPWD", 257);
    assert!(r.text.starts_with("\"/\" "), "{r:?}");
}

#[test]
fn mkd_257_doubles_inner_quotes() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    let r = c.expect("MKD say \"hi\"", 257);
    assert!(r.text.starts_with("\"/say \"\"hi\"\"\" "), "{r:?}");
    assert!(server.path("say \"hi\"").is_dir());
    c.expect("CWD say \"hi\"", 250);
    let r = c.expect("PWD", 257);
    assert!(r.text.starts_with("\"/say \"\"hi\"\"\" "), "{r:?}");
    let r = c.expect("XMKD sub", 257);
    assert!(r.text.starts_with("\"/say \"\"hi\"\"/sub\" "), "{r:?}");
}

#[test]
fn cwd_cdup_and_x_variants_250() {
    let server = TestServer::start(&[]);
    std::fs::create_dir_all(server.path("d1/d2")).unwrap();
    let mut c = server.login();
    c.expect("CWD d1", 250);
    c.expect("XCWD d2", 250);
    assert!(c.expect("PWD", 257).text.starts_with("\"/d1/d2\""));
    c.expect("CDUP", 250);
    assert!(c.expect("PWD", 257).text.starts_with("\"/d1\""));
    c.expect("XCUP", 250);
    assert!(c.expect("PWD", 257).text.starts_with("\"/\""));
    // CDUP at the root stays there.
    c.expect("CDUP", 250);
    assert!(c.expect("PWD", 257).text.starts_with("\"/\""));
}

#[test]
fn dele_rmd_rnto_250() {
    let server = TestServer::start(&[]);
    server.write("f", b"x");
    server.write("old", b"y");
    std::fs::create_dir_all(server.path("e1")).unwrap();
    std::fs::create_dir_all(server.path("e2")).unwrap();
    let mut c = server.login();
    c.expect("DELE f", 250);
    assert!(!server.path("f").exists());
    c.expect("RMD e1", 250);
    c.expect("XRMD e2", 250);
    assert!(!server.path("e1").exists() && !server.path("e2").exists());
    c.expect("RNFR old", 350);
    c.expect("RNTO new", 250);
    assert_eq!(server.read("new"), b"y");
    assert!(!server.path("old").exists());
}

#[test]
fn mlst_250_multiline_with_facts() {
    let server = TestServer::start(&[]);
    server.write("f.txt", b"hello");
    let mut c = server.login();
    let r = c.expect("MLST f.txt", 250);
    let body = body_lines(&r);
    assert_eq!(body.len(), 1, "{r:?}");
    // RFC 3659 §7.2: the facts line starts with one space and ends with
    // a space and the path.
    let line = body[0];
    assert!(line.starts_with(' ') && !line.starts_with("  "), "{line:?}");
    assert!(line.contains("type=file;") && line.contains("size=5;"), "{line:?}");
    assert!(line.ends_with("; /f.txt"), "{line:?}");
}

#[test]
fn site_chmod_250() {
    let server = TestServer::start(&[]);
    server.write("f", b"x");
    let mut c = server.login();
    c.expect("SITE CHMOD 640 f", 250);
    let mode = std::fs::metadata(server.path("f")).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o640);
    // SITE UTIME (lftp's way to set a modification time) is a file action.
    c.expect("SITE UTIME 20200102030405 f", 250);
    assert_eq!(c.expect("MDTM f", 213).text, "20200102030405");
    c.expect("SITE CHMOD 99 f", 501);
    c.expect("SITE CHMOD 644", 501);
}

#[test]
fn rest_and_rnfr_350() {
    let server = TestServer::start(&[]);
    server.write("f", b"x");
    let mut c = server.login();
    c.expect("REST 100", 350);
    c.expect("REST 0", 350);
    c.expect("REST 9223372036854775807", 350);
    c.expect("RNFR f", 350);
}

#[test]
fn size_mdtm_mfmt_213() {
    let server = TestServer::start(&[]);
    server.write("f.txt", b"hello");
    let mut c = server.login();
    assert_eq!(c.expect("SIZE f.txt", 213).text, "5");
    let r = c.expect("MDTM f.txt", 213);
    assert!(
        r.text.len() >= 14 && r.text[..14].bytes().all(|b| b.is_ascii_digit()),
        "{r:?}"
    );
    let r = c.expect("MFMT 20200102030405 f.txt", 213);
    assert_eq!(r.text, "Modify=20200102030405; /f.txt");
    assert_eq!(c.expect("MDTM f.txt", 213).text, "20200102030405");
}

#[test]
fn stat_file_213_and_directory_212() {
    let server = TestServer::start(&[]);
    server.write("d/f.txt", b"hello");
    server.write("d/g.txt", b"hi");
    let mut c = server.login();
    let r = c.expect("STAT d/f.txt", 213);
    let body = body_lines(&r);
    assert_eq!(body.len(), 1, "{r:?}");
    assert!(body[0].starts_with('-') && body[0].ends_with(" f.txt"), "{r:?}");
    let r = c.expect("STAT d", 212);
    let body = body_lines(&r);
    assert_eq!(body.len(), 2, "{r:?}");
    assert!(
        body.iter().any(|l| l.ends_with(" f.txt")) && body.iter().any(|l| l.ends_with(" g.txt")),
        "{r:?}"
    );
    // STAT with options like LIST (`STAT -l dir`).
    c.expect("STAT -la d", 212);
}

/// STAT of a directory longer than limits.max_stat_entries sends the first
/// entries and says in its closing line that the listing was cut.
#[test]
fn stat_directory_cut_at_max_stat_entries_says_so() {
    let server = TestServer::start_with_config("[limits]\nmax_stat_entries = 3\n", &[]);
    for i in 0..5 {
        server.write(&format!("d/f{i}"), b"x");
    }
    server.write("e/only", b"x");
    let mut c = server.login();
    let r = c.expect("STAT d", 212);
    assert_eq!(body_lines(&r).len(), 3, "{r:?}");
    let last = r.text.lines().last().unwrap();
    assert!(last.contains("first 3 entries"), "{r:?}");
    let r = c.expect("STAT e", 212);
    assert_eq!(body_lines(&r).len(), 1, "{r:?}");
    assert!(r.text.lines().last().unwrap().ends_with("End of status"), "{r:?}");
}

#[test]
fn missing_file_550() {
    let server = TestServer::start(&[]);
    server.write("file", b"x");
    std::fs::create_dir(server.path("dir")).unwrap();
    let mut c = server.login();
    for line in [
        "SIZE nope",
        "MDTM nope",
        "CWD nope",
        "DELE nope",
        "RMD nope",
        "RNFR nope",
        "STAT nope",
        "MLST nope",
        "MFMT 20200101000000 nope",
        "SITE CHMOD 644 nope",
    ] {
        c.expect(line, 550);
    }
    // CWD to a file, SIZE of a directory.
    c.expect("CWD file", 550);
    c.expect("SIZE dir", 550);
    // With a data connection set up, RETR of a missing file is 550 before
    // any 150.
    let _data = c.epsv();
    c.expect("RETR nope", 550);
    let _data = c.epsv();
    c.expect("RETR dir", 550);
    // MKD of an existing name.
    c.expect("MKD dir", 550);
}

#[test]
fn rmd_not_empty_550_directory_not_empty() {
    let server = TestServer::start(&[]);
    server.write("d/f", b"x");
    let mut c = server.login();
    let r = c.expect("RMD d", 550);
    assert_eq!(r.text, "Directory not empty");
    assert!(server.path("d/f").exists());
}

#[test]
fn anonymous_permission_denied_550() {
    let server = TestServer::start(&[]);
    server.write("f", b"x");
    std::fs::create_dir(server.path("d")).unwrap();
    let mut c = server.client();
    c.login("anonymous", "guest@example.com");
    for line in [
        "STOR new",
        "APPE f",
        "STOU",
        "DELE f",
        "MKD m",
        "RMD d",
        "RNFR f",
        "MFMT 20200101000000 f",
        "SITE CHMOD 777 f",
    ] {
        let r = c.expect(line, 550);
        assert_eq!(r.text, "Permission denied", "{line}");
    }
    assert!(server.path("f").exists() && server.path("d").exists() && !server.path("new").exists());
    // Reading is allowed.
    let (bytes, r) = c.fetch("RETR f");
    assert_eq!((bytes.as_slice(), r.code), (&b"x"[..], 226));
}

#[test]
fn control_characters_and_bad_names_553() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    for line in [
        &b"DELE a\x01b"[..],
        b"DELE a\x00b",
        b"MKD x\x7fy",
        b"CWD a\x1bb",
        b"RNFR a\tb",
        b"DELE \xc3\x28",
    ] {
        c.send_bytes(line);
        let r = c.reply();
        assert_eq!(r.code, 553, "{:?} -> {r:?}", String::from_utf8_lossy(line));
    }
    // A name longer than 255 bytes.
    c.expect(&format!("MKD {}", "n".repeat(300)), 553);
    // STOR refuses the name before answering 150.
    let _data = c.epsv();
    c.send_bytes(b"STOR bad\x02name");
    assert_eq!(c.reply().code, 553);
    c.expect("NOOP", 200);
    assert_eq!(std::fs::read_dir(&server.root).unwrap().count(), 0);
}

/// `server.denied_names`: names no upload, MKD or RNTO may create get 553
/// before any 150, in any ASCII case, and nothing is written; a name
/// already there stays readable and removable. Checked with curl too, the
/// way a user meets it.
#[test]
fn denied_names_553() {
    let server = TestServer::start_with_config("[server]\ndenied_names = [\"*.exe\", \".ht*\"]\n", &[]);
    server.write("old.exe", b"kept\n");
    server.write("ok.txt", b"fine\n");
    let mut c = server.login();
    let _data = c.epsv();
    for line in [
        "STOR setup.exe",
        "STOR SETUP.EXE",
        "APPE tool.Exe",
        "STOU a.exe",
        "MKD .htaccess",
    ] {
        let r = c.expect(line, 553);
        assert!(r.text.contains("denies"), "{r:?}");
    }
    c.expect("RNFR ok.txt", 350);
    c.expect("RNTO ok.exe", 553);
    c.expect("RNFR ok.txt", 350);
    c.expect("RNTO renamed.txt", 250);
    let mut names: Vec<_> = std::fs::read_dir(&server.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["old.exe", "renamed.txt"]);
    c.expect("TYPE I", 200);
    let (bytes, r) = c.fetch("RETR old.exe");
    assert_eq!((r.code, bytes.as_slice()), (226, &b"kept\n"[..]));
    c.expect("DELE old.exe", 250);
    drop(c);

    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("setup.exe");
    std::fs::write(&src, b"x").unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "-T"])
        .arg(&src)
        .arg(format!("ftp://user:12345@127.0.0.1:{}/setup.exe", server.port()))
        .output()
        .unwrap();
    assert!(!out.status.success(), "curl uploaded a denied name");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("553"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!server.path("setup.exe").exists());
}
