//! Real clients (curl, lftp, Python's ftplib) against `ferroftp serve
//! --storage s3` on a Garage node the test starts: uploads (multipart
//! above 5 MiB), downloads, REST resumes by ranged GET, LIST/NLST/MLSD,
//! MKD/RMD (550 for a non-empty prefix), RNFR/RNTO of files, SIZE/MDTM,
//! and the documented refusals: APPE and REST+STOR are 502 (the store
//! cannot append), and so are MFMT, SITE CHMOD and renaming a directory. Then what only a store shows over FTP: an aborted
//! upload leaves neither an object nor an unfinished multipart upload,
//! and a store that stops answering is 450.

use std::io::Write;
use std::time::Duration;

use crate::clients_curl::{assert_transfer_ok, curl};
use crate::clients_ftplib::ftplib;
use crate::clients_lftp::{assert_same_tree, lftp, sample_tree, tree};
use crate::common;
use crate::s3_util::{s3_server, wait_until_down, Garage};

const MIB: usize = 1024 * 1024;

#[test]
fn s3_curl_upload_download_resume_list_head_and_append_refused() {
    let g = Garage::shared();
    let server = s3_server(g, "", "");
    let local = tempfile::tempdir().unwrap();
    // Over one 5 MiB part: a multipart upload of two parts.
    let data = common::payload(7 * MIB + 123, 41);
    let src = local.path().join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let src = src.to_str().unwrap();

    let run = curl(&["--ftp-create-dirs", "-T", src, &server.url("/up/dir/big.bin")]);
    run.assert_ok();
    run.assert_sent_in_order(&[
        "CWD up",
        "MKD up",
        "CWD up",
        "CWD dir",
        "MKD dir",
        "CWD dir",
        "STOR big.bin",
    ]);
    assert_transfer_ok(&run, "STOR big.bin");

    let out = local.path().join("back.bin");
    let run = curl(&["-o", out.to_str().unwrap(), &server.url("/up/dir/big.bin")]);
    run.assert_ok();
    assert!(std::fs::read(&out).unwrap() == data, "downloaded bytes differ");

    // REST by ranged GET: a partial local copy is completed.
    let partial = 5 * MIB + 7;
    std::fs::write(&out, &data[..partial]).unwrap();
    let run = curl(&["-C", "-", "-o", out.to_str().unwrap(), &server.url("/up/dir/big.bin")]);
    run.assert_ok();
    run.assert_sent_in_order(&["SIZE big.bin", &format!("REST {partial}"), "RETR big.bin"]);
    run.assert_replies(&format!("REST {partial}"), &[350]);
    assert_transfer_ok(&run, "RETR big.bin");
    assert!(std::fs::read(&out).unwrap() == data, "resumed download differs");

    // SIZE and MDTM from the object's metadata.
    let run = curl(&["-I", &server.url("/up/dir/big.bin")]);
    run.assert_ok();
    let head = String::from_utf8(run.body.clone()).unwrap();
    assert!(head.contains(&format!("Content-Length: {}", data.len())), "{head}");
    assert!(head.contains("Last-Modified: "), "{head}");
    run.assert_replies("MDTM big.bin", &[213]);

    // LIST and NLST of the prefix.
    let small = local.path().join("small.txt");
    std::fs::write(&small, b"small").unwrap();
    curl(&["-T", small.to_str().unwrap(), &server.url("/up/dir/small.txt")]).assert_ok();
    let run = curl(&[&server.url("/up/dir/")]);
    run.assert_ok();
    assert_transfer_ok(&run, "LIST");
    let text = String::from_utf8(run.body.clone()).unwrap();
    let sizes: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[8..].join(" "), f[4].to_string())
        })
        .collect();
    assert_eq!(
        sizes,
        [
            ("big.bin".to_string(), data.len().to_string()),
            ("small.txt".to_string(), "5".to_string())
        ],
        "{text}"
    );
    let run = curl(&["-l", &server.url("/up/")]);
    run.assert_ok();
    assert_eq!(
        String::from_utf8(run.body.clone()).unwrap().lines().collect::<Vec<_>>(),
        ["dir"]
    );

    // APPE cannot be done on an object: 502, and the object is unchanged.
    let run = curl(&["-a", "-T", small.to_str().unwrap(), &server.url("/up/dir/small.txt")]);
    assert!(!run.ok, "APPE must fail on S3; trace:\n{}", run.trace);
    run.assert_replies("APPE small.txt", &[502]);
    let run = curl(&[&server.url("/up/dir/small.txt")]);
    run.assert_ok();
    assert_eq!(run.body, b"small");
}

#[test]
fn s3_lftp_mirror_both_ways_mlsd_mv_and_rmdir() {
    let g = Garage::shared();
    let server = s3_server(g, "", "");
    let up = tempfile::tempdir().unwrap();
    sample_tree(&up.path().join("site"));
    let want = tree(&up.path().join("site"));

    let run = lftp(&server, up.path(), "mirror -R site site");
    run.assert_ok();
    run.assert_sent("MKD");
    run.assert_sent("STOR");

    let down = tempfile::tempdir().unwrap();
    let run = lftp(
        &server,
        down.path(),
        "set ftp:use-mlsd on; mirror site site; cls -l site/bin/",
    );
    run.assert_ok();
    run.assert_sent("MLSD");
    assert_same_tree(&tree(&down.path().join("site")), &want);
    assert!(
        run.out
            .lines()
            .any(|l| l.ends_with("site/bin/blob.bin") && l.contains(" 700000 ")),
        "cls -l (MLSD) shows the size:\n{}",
        run.out
    );

    // A file renamed (copy + delete), a non-empty prefix refused, then
    // emptied and removed.
    let run = lftp(
        &server,
        down.path(),
        "mv site/top.txt site/docs/top-moved.txt; cls site/ site/docs/",
    );
    run.assert_ok();
    run.assert_sent("RNFR");
    run.assert_sent("RNTO");
    assert!(run.out.contains("site/docs/top-moved.txt"), "{}", run.out);
    assert!(!run.out.contains("site/top.txt"), "{}", run.out);
    let run = lftp(&server, down.path(), "rmdir site/docs");
    assert!(!run.ok, "RMD of a non-empty prefix must fail");
    assert!(run.trace.contains("<--- 550"), "{}", run.trace);
    let run = lftp(
        &server,
        down.path(),
        "rm -r site/docs; ls site/; rmdir site/bin/../empty-missing || echo missing-is-550",
    );
    run.assert_ok();
    assert!(!run.out.contains("docs"), "{}", run.out);
    assert!(run.out.contains("missing-is-550"), "{}", run.out);
}

#[test]
fn s3_ftplib_session_rest_refusals_and_codes() {
    let g = Garage::shared();
    let server = s3_server(g, "", "");
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("src.bin"), common::payload(6 * MIB + 5, 3)).unwrap();
    ftplib(
        &server,
        local.path(),
        r#"
data = local("src.bin")
assert ftp.mkd("work") == "/work"
assert ftp.cwd("work").startswith("250")
assert ftp.storbinary("STOR f.bin", io.BytesIO(data)).startswith("226")
assert ftp.size("f.bin") == len(data), ftp.size("f.bin")
mdtm = ftp.voidcmd("MDTM f.bin")
assert mdtm.startswith("213 ") and len(mdtm) == 18, mdtm
assert fetch("RETR f.bin") == data
# REST + RETR: a ranged GET from inside the second part.
assert fetch("RETR f.bin", rest=5 * 1024 * 1024 + 1) == data[5 * 1024 * 1024 + 1:]
assert ftp.nlst() == ["f.bin"], ftp.nlst()
facts = dict(ftp.mlsd())
assert facts["f.bin"]["type"] == "file" and int(facts["f.bin"]["size"]) == len(data), facts
lines = []
ftp.retrlines("LIST", lines.append)
assert len(lines) == 1 and lines[0].endswith(" f.bin") and str(len(data)) in lines[0], lines

# REST + STOR and APPE: the store cannot append; 502, object unchanged.
for attempt in (lambda: ftp.storbinary("STOR f.bin", io.BytesIO(b"tail"), rest=len(data)),
                lambda: ftp.storbinary("APPE f.bin", io.BytesIO(b"tail"))):
    try:
        attempt()
        raise AssertionError("appending was accepted")
    except ftplib.error_perm as e:
        assert str(e).startswith("502"), e
assert ftp.size("f.bin") == len(data)

# RNFR/RNTO of a file: copy + delete.
assert ftp.sendcmd("RNFR f.bin").startswith("350")
assert ftp.sendcmd("RNTO g.bin").startswith("250")
assert ftp.nlst() == ["g.bin"], ftp.nlst()
assert fetch("RETR g.bin") == data
try:
    ftp.size("f.bin")
    raise AssertionError("the old name is still there")
except ftplib.error_perm as e:
    assert str(e).startswith("550"), e

# What objects do not carry or cannot do atomically: 502.
ftp.mkd("/sub")
for command in ("MFMT 20200101000000 g.bin", "SITE CHMOD 600 g.bin", "RNFR /sub"):
    try:
        reply = ftp.sendcmd(command)
        if command.startswith("RNFR"):
            reply = ftp.sendcmd("RNTO /sub2")
        raise AssertionError("%s accepted: %s" % (command, reply))
    except ftplib.error_perm as e:
        assert str(e).startswith("502"), (command, e)
ftp.rmd("/sub")

# RMD of a non-empty prefix is 550; empty, it goes.
ftp.cwd("/")
try:
    ftp.rmd("work")
    raise AssertionError("RMD of a non-empty directory succeeded")
except ftplib.error_perm as e:
    assert str(e).startswith("550"), e
ftp.delete("work/g.bin")
assert ftp.rmd("work").startswith("250")
assert ftp.nlst() == [], ftp.nlst()
ftp.quit()
"#,
    );
}

/// ABOR in the middle of a multipart STOR: no object, and the multipart
/// upload is aborted in the store too. Then the store goes away: commands
/// that need it answer 450 (transient), not 550 or 451.
#[test]
fn s3_aborted_upload_leaves_nothing_and_a_store_that_is_down_is_450() {
    let g = Garage::start(1); // its own node: it is stopped below
    let server = s3_server(&g, "max_retries = 1\nrequest_timeout = 5", "");
    let mut c = server.login();
    c.expect("TYPE I", 200);
    c.put("STOR kept.txt", b"kept");

    let mut data = c.epsv();
    let r = c.cmd("STOR aborted.bin");
    assert!(matches!(r.code, 125 | 150), "{r:?}");
    let chunk = common::payload(MIB, 5);
    for _ in 0..7 {
        data.write_all(&chunk).unwrap();
    }
    // Two parts have been sent to the store by now (5 MiB each at most).
    let mut started = 0;
    for _ in 0..100 {
        started = g.unfinished_multipart_uploads();
        if started > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(started, 1, "the upload is multipart");
    c.send("ABOR");
    let r = c.reply();
    assert!(matches!(r.code, 426 | 225 | 226), "{r:?}");
    if r.code == 426 {
        c.expect_reply(226);
    }
    drop(data);
    c.expect("SIZE aborted.bin", 550);
    let mut left = started;
    for _ in 0..100 {
        left = g.unfinished_multipart_uploads();
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(left, 0, "the multipart upload was not aborted in the store");

    let stopping = std::time::Instant::now();
    g.stop_node(1);
    wait_until_down(&g.endpoint);
    eprintln!("Garage node down after {:?}", stopping.elapsed());
    let started = std::time::Instant::now();
    c.expect("SIZE kept.txt", 450);
    c.expect("MDTM kept.txt", 450);
    c.expect("CWD /", 250);
    let mut data = c.epsv();
    let r = c.cmd("RETR kept.txt");
    assert_eq!(r.code, 450, "{r:?}");
    drop(data);
    data = c.epsv();
    let r = c.cmd("LIST");
    assert_eq!(r.code, 450, "{r:?}");
    drop(data);
    let took = started.elapsed();
    eprintln!("four 450 answers from a stopped store in {took:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    // The session itself is fine.
    c.expect("NOOP", 200);
    // A login needs the store too (the home is looked up): the password
    // was right, so not 530 but 421, "try again later".
    let mut late = server.client();
    late.expect(&format!("USER {}", common::USER), 331);
    let r = late.expect(&format!("PASS {}", common::PASS), 421);
    assert!(r.text.contains("temporarily"), "{r:?}");
    assert!(late.is_closed(), "421 closes the connection");
}

/// A node started while its store does not answer yet opens its listeners
/// anyway and greets each client with 120 "Service ready in N minutes",
/// holding it; once the store answers (here: a forwarder to Garage starts
/// on the endpoint's port) the waiting client gets 220 and logs in, and
/// new ones get 220 at once.
#[test]
fn s3_store_not_ready_at_start_120_then_220() {
    use crate::common::RawClient;
    use crate::s3_util::{s3_flags, s3_table, unique_prefix};
    use std::net::{TcpListener, TcpStream};

    let g = Garage::shared();
    let garage: std::net::SocketAddr = g
        .endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    // A port nothing listens on yet: the store "not up".
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let flags = s3_flags(g, &endpoint);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = common::TestServer::start_with_config(&s3_table(g, &unique_prefix("start")), &flags);

    let mut waiting = RawClient::connect(server.addr);
    assert_eq!(waiting.greeting.code, 120, "{:?}", waiting.greeting);
    assert!(waiting.greeting.text.contains("storage"), "{:?}", waiting.greeting);

    // The store comes up: every connection to the endpoint is forwarded.
    let forwarder = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for client in forwarder.incoming().flatten() {
            let Ok(store) = TcpStream::connect(garage) else {
                continue;
            };
            let (mut a, mut b) = (client.try_clone().unwrap(), store.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut a, &mut b);
                let _ = b.shutdown(std::net::Shutdown::Write);
            });
            let (mut a, mut b) = (store, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut a, &mut b);
                let _ = b.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    waiting.expect_reply(220);
    waiting.login(common::USER, common::PASS);
    waiting.expect("PWD", 257);
    let mut next = RawClient::connect(server.addr);
    assert_eq!(next.greeting.code, 220, "{:?}", next.greeting);
    next.login(common::USER, common::PASS);
}
