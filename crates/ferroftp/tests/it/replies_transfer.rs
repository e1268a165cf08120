//! Replies around running transfers: 150/226, 426 + 226 for ABOR, 232 for
//! QUIT, 213 for STAT mid-transfer, MODE B (110 restart marks, 225 and 125
//! with the connection kept open), STRU P (551), TYPE A, STOU, and 552 for
//! a file-size limit.

use std::io::{Read, Write};

use crate::common::{payload, TestServer};
use crate::replies_util::{
    block, connect_data, epsv_addr, page, read_blocks, send_and_close, sparse_file, LimitedServer, EOF_BLOCK,
    MARKER_BLOCK,
};

const BIG: u64 = 256 << 20;

#[test]
fn stor_and_retr_150_then_226() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let bytes = payload(300_000, 1);
    assert_eq!(c.put("STOR f", &bytes).code, 226);
    assert_eq!(server.read("f"), bytes);
    let (got, r) = c.fetch("RETR f");
    assert_eq!(r.code, 226);
    assert!(got == bytes);
    let r = c.put("APPE f", b"tail");
    assert_eq!(r.code, 226);
    assert_eq!(server.read("f").len(), bytes.len() + 4);
}

#[test]
fn abor_mid_transfer_426_then_226() {
    let server = TestServer::start(&[]);
    sparse_file(&server, "big", BIG);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let addr = epsv_addr(&mut c);
    c.expect("RETR big", 150);
    let mut data = connect_data(addr);
    // Read a little, slowly, so the transfer is certainly running.
    let mut buf = vec![0u8; 64 * 1024];
    data.read_exact(&mut buf).unwrap();
    let r = c.expect("ABOR", 426);
    assert!(r.text.contains("aborted"), "{r:?}");
    c.expect_reply(226);
    // The data connection is closed by the server.
    let mut rest = Vec::new();
    let _ = data.read_to_end(&mut rest);
    assert!((rest.len() as u64) < BIG);
    c.expect("NOOP", 200);
}

/// Python's ftplib and others send ABOR after Telnet IP and Synch (IAC IP
/// IAC DM, RFC 959 §4.1.3); the Telnet bytes are dropped.
#[test]
fn abor_after_telnet_synch_426_then_226() {
    let server = TestServer::start(&[]);
    sparse_file(&server, "big", BIG);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let addr = epsv_addr(&mut c);
    c.expect("RETR big", 150);
    let mut data = connect_data(addr);
    let mut buf = vec![0u8; 64 * 1024];
    data.read_exact(&mut buf).unwrap();
    c.send_bytes(b"\xff\xf4\xff\xf2ABOR");
    c.expect_reply(426);
    c.expect_reply(226);
    c.expect("NOOP", 200);
}

#[test]
fn abor_mid_upload_426_then_226_and_no_partial_file() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let addr = epsv_addr(&mut c);
    c.expect("STOR part", 150);
    let mut data = connect_data(addr);
    data.write_all(&payload(200_000, 4)).unwrap();
    c.expect("ABOR", 426);
    c.expect_reply(226);
    assert!(!server.path("part").exists());
    assert_eq!(
        std::fs::read_dir(&server.root).unwrap().count(),
        0,
        "temporary upload file left behind"
    );
}

#[test]
fn data_connection_broken_mid_transfer_426() {
    let server = TestServer::start(&[]);
    sparse_file(&server, "big", BIG);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let addr = epsv_addr(&mut c);
    c.expect("RETR big", 150);
    let mut data = connect_data(addr);
    let mut buf = vec![0u8; 64 * 1024];
    data.read_exact(&mut buf).unwrap();
    // Closing with unread data resets the connection.
    drop(data);
    c.expect_reply(426);
    c.expect("NOOP", 200);
}

/// 426 when a transfer makes no progress for `timeouts.transfer_stall`
/// (here the client stops reading).
#[test]
fn transfer_stall_426() {
    let server = TestServer::start_with_config("[timeouts]\ntransfer_stall = 1\n", &[]);
    sparse_file(&server, "big", BIG);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let addr = epsv_addr(&mut c);
    c.expect("RETR big", 150);
    let _data = connect_data(addr);
    let r = c.expect_reply(426);
    assert!(r.text.contains("stalled"), "{r:?}");
    c.expect("NOOP", 200);
}

#[test]
fn quit_mid_transfer_232_then_226_then_221() {
    let server = TestServer::start(&[]);
    let len = 32u64 << 20;
    sparse_file(&server, "big", len);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let addr = epsv_addr(&mut c);
    c.expect("RETR big", 150);
    let mut data = connect_data(addr);
    let mut buf = vec![0u8; 64 * 1024];
    data.read_exact(&mut buf).unwrap();
    c.expect("QUIT", 232);
    // The transfer runs to its end, then the session closes.
    let mut rest = Vec::new();
    data.read_to_end(&mut rest).unwrap();
    assert_eq!(buf.len() as u64 + rest.len() as u64, len);
    c.expect_reply(226);
    c.expect_reply(221);
    assert!(c.is_closed());
}

#[test]
fn stat_during_transfer_213() {
    let server = TestServer::start(&[]);
    sparse_file(&server, "big", BIG);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let addr = epsv_addr(&mut c);
    c.expect("RETR big", 150);
    let mut data = connect_data(addr);
    let mut buf = vec![0u8; 64 * 1024];
    data.read_exact(&mut buf).unwrap();
    let r = c.expect("STAT", 213);
    assert!(r.text.contains("RETR") && r.text.contains("bytes so far"), "{r:?}");
    // NOOP and HELP are answered mid-transfer too.
    c.expect("NOOP", 200);
    c.expect("HELP", 214);
    c.expect("ABOR", 426);
    c.expect_reply(226);
}

#[test]
fn type_a_upload_crlf_to_lf_and_back() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    c.expect("TYPE A", 200);
    let r = c.put("STOR t.txt", b"one\r\ntwo\r\n");
    assert_eq!(r.code, 226);
    assert_eq!(server.read("t.txt"), b"one\ntwo\n");
    let (got, r) = c.fetch("RETR t.txt");
    assert_eq!((got.as_slice(), r.code), (&b"one\r\ntwo\r\n"[..], 226));
}

#[test]
fn stou_150_file_name_then_226() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let addr = epsv_addr(&mut c);
    let r = c.expect("STOU", 150);
    let mut data = connect_data(addr);
    // RFC 1123 §4.1.2.9: "150 FILE: <name>".
    let name = r
        .text
        .strip_prefix("FILE: ")
        .unwrap_or_else(|| panic!("{r:?}"))
        .to_string();
    data.write_all(b"unique").unwrap();
    drop(data);
    let r = c.expect_reply(226);
    assert!(r.text.contains(&name), "{r:?}");
    assert_eq!(server.read(&name), b"unique");
    // With a base name.
    let addr = epsv_addr(&mut c);
    let r = c.expect("STOU report", 150);
    let mut data = connect_data(addr);
    let name = r.text.strip_prefix("FILE: ").unwrap().to_string();
    assert!(name.starts_with("report."), "{name}");
    data.write_all(b"r").unwrap();
    drop(data);
    c.expect_reply(226);
    assert_eq!(server.read(&name), b"r");
}

#[test]
fn mode_b_retr_eof_block_225_then_125_on_kept_connection() {
    let server = TestServer::start(&[]);
    let bytes = payload(150_000, 2);
    server.write("f", &bytes);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    c.expect("MODE B", 200);
    let addr = epsv_addr(&mut c);
    c.expect("RETR f", 150);
    let mut data = connect_data(addr);
    let blocks = read_blocks(&mut data);
    let (last_desc, last) = blocks.last().unwrap();
    assert_eq!(*last_desc, EOF_BLOCK);
    assert!(last.is_empty());
    let got: Vec<u8> = blocks.iter().flat_map(|(_, d)| d.clone()).collect();
    assert!(got == bytes, "block payload differs");
    assert!(blocks[..blocks.len() - 1].iter().all(|(d, _)| *d == 0));
    // The connection stays open after the EOF block (RFC 959 §3.4.2).
    c.expect_reply(225);
    // The next transfer uses it: 125, data connection already open.
    c.expect("RETR f", 125);
    let again: Vec<u8> = read_blocks(&mut data).into_iter().flat_map(|(_, d)| d).collect();
    assert!(again == bytes);
    c.expect_reply(225);
    // ABOR with that idle connection open: 225, and it is closed.
    c.expect("ABOR", 225);
    let mut b = [0u8; 1];
    assert!(matches!(data.read(&mut b), Ok(0) | Err(_)));
    c.expect("RETR f", 425);
}

#[test]
fn mode_b_stor_restart_marker_110() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    c.expect("MODE B", 200);
    let addr = epsv_addr(&mut c);
    c.expect("STOR f", 150);
    let mut data = connect_data(addr);
    let mut wire = block(0, b"hello");
    wire.extend(block(MARKER_BLOCK, b"R1"));
    wire.extend(block(0, b", block"));
    wire.extend(block(MARKER_BLOCK, b"R2"));
    wire.extend(block(EOF_BLOCK, b" mode"));
    data.write_all(&wire).unwrap();
    // RFC 959 §4.2: "110 MARK yyyy = mmmm", the client's marker and the
    // server's (here the byte offset stored so far).
    assert_eq!(c.expect_reply(110).text, "MARK R1 = 5");
    assert_eq!(c.expect_reply(110).text, "MARK R2 = 12");
    c.expect_reply(225);
    assert_eq!(server.read("f"), b"hello, block mode");
    // The kept connection carries the next upload: 125, then 225 again.
    c.expect("STOR g", 125);
    data.write_all(&block(EOF_BLOCK, b"second file")).unwrap();
    c.expect_reply(225);
    assert_eq!(server.read("g"), b"second file");
}

/// 450: the storage reports the file busy. Here APPE (which writes into the
/// file itself) targets a program that is running (ETXTBSY).
#[test]
fn file_busy_450() {
    let server = TestServer::start(&[]);
    std::fs::copy("/bin/sleep", server.path("busy")).unwrap();
    let mut running = std::process::Command::new(server.path("busy"))
        .arg("30")
        .spawn()
        .expect("run the copied program");
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let _addr = epsv_addr(&mut c);
    let r = c.expect("APPE busy", 450);
    assert!(r.text.contains("busy"), "{r:?}");
    let _addr = epsv_addr(&mut c);
    c.expect("REST 4", 350);
    c.expect("STOR busy", 450);
    let _ = running.kill();
    let _ = running.wait();
}

#[test]
fn mode_b_rest_marker_resumes_stor() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    c.expect("MODE B", 200);
    let addr = epsv_addr(&mut c);
    c.expect("STOR f", 150);
    let data = connect_data(addr);
    let mut wire = block(0, b"first half|");
    wire.extend(block(MARKER_BLOCK, b"M1"));
    // The connection drops before the end-of-file block.
    send_and_close(data, &wire);
    let mark = c.expect_reply(110);
    assert_eq!(mark.text, "MARK M1 = 11");
    c.expect_reply(426);
    // What arrived before the marker is kept for the restart.
    assert_eq!(server.read("f"), b"first half|");
    // REST with the server's marker, then STOR sends the rest.
    c.expect("REST 11", 350);
    let addr = epsv_addr(&mut c);
    c.expect("STOR f", 150);
    let mut data = connect_data(addr);
    data.write_all(&block(EOF_BLOCK, b"second half")).unwrap();
    c.expect_reply(225);
    assert_eq!(server.read("f"), b"first half|second half");
}

#[test]
fn stru_p_unknown_page_type_551() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    c.expect("STRU P", 200);
    let addr = epsv_addr(&mut c);
    c.expect("STOR paged", 150);
    let mut data = connect_data(addr);
    let mut wire = page(1, 1, b"ok");
    wire.extend(page(2, 9, b"??"));
    data.write_all(&wire).unwrap();
    let r = c.expect_reply(551);
    assert!(r.text.contains("page type"), "{r:?}");
    assert!(!server.path("paged").exists());
    c.expect("NOOP", 200);
}

#[test]
fn stru_p_round_trip() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    c.expect("STRU P", 200);
    let mut wire = page(0, 2, b"descriptor");
    wire.extend(page(1, 1, b"hello "));
    wire.extend(page(2, 1, b"pages"));
    wire.extend(page(3, 0, b""));
    assert_eq!(c.put("STOR paged", &wire).code, 226);
    assert_eq!(server.read("paged"), b"hello pages");
    let (got, r) = c.fetch("RETR paged");
    assert_eq!(r.code, 226);
    let mut expect = page(1, 1, b"hello pages");
    expect.extend(page(2, 0, b""));
    assert_eq!(got, expect);
}

/// 552: the upload would exceed the largest file the server may write (here
/// the process file-size limit, EFBIG).
#[test]
fn file_size_limit_552() {
    let server = LimitedServer::start(64);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let small = c.put("STOR small", b"fits");
    assert_eq!(small.code, 226, "{small:?}");
    let addr = epsv_addr(&mut c);
    c.expect("STOR big", 150);
    let mut data = connect_data(addr);
    // The server may close the data connection as soon as the write fails.
    let _ = data.write_all(&payload(1 << 20, 3));
    drop(data);
    let r = c.expect_reply(552);
    assert!(r.text.contains("storage allocation"), "{r:?}");
    assert!(!server.root.join("big").exists());
}
