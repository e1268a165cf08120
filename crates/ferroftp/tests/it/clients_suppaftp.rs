//! suppaftp (sync `FtpStream`) as the client: a full session in PASV and
//! EPSV mode, its LIST and MLSD parsers over our listings, REST through
//! `resume_transfer`, and APPE. Every socket has a read timeout, so a
//! server that stops answering fails the test instead of hanging it.

use std::io::Cursor;
use std::net::{SocketAddr, TcpStream};
use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use suppaftp::list::File;
use suppaftp::types::FileType;
use suppaftp::{FtpError, FtpStream, Mode, Status};

use crate::common::{self, TestServer, PASS, USER};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A logged-in binary-mode session in `mode`, with timeouts on the control
/// connection and on every data connection.
fn connect(server: &TestServer, mode: Mode) -> FtpStream {
    let mut ftp = FtpStream::connect_timeout(server.addr, TIMEOUT)
        .expect("connect")
        .passive_stream_builder(|addr: SocketAddr| {
            let s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(FtpError::ConnectionError)?;
            s.set_read_timeout(Some(TIMEOUT)).map_err(FtpError::ConnectionError)?;
            s.set_write_timeout(Some(TIMEOUT)).map_err(FtpError::ConnectionError)?;
            Ok(s)
        });
    ftp.get_ref().set_read_timeout(Some(TIMEOUT)).unwrap();
    ftp.set_mode(mode);
    assert!(
        ftp.get_welcome_msg().is_some_and(|m| m.starts_with("220")),
        "greeting {:?}",
        ftp.get_welcome_msg()
    );
    ftp.login(USER, PASS).expect("login");
    ftp.transfer_type(FileType::Binary).expect("TYPE I");
    ftp
}

fn retr(ftp: &mut FtpStream, path: &str) -> Vec<u8> {
    ftp.retr_as_buffer(path)
        .unwrap_or_else(|e| panic!("RETR {path}: {e}"))
        .into_inner()
}

/// The whole session: every call suppaftp offers for everyday work, each
/// checked against the server's disk.
fn full_session(mode: Mode) {
    let server = TestServer::start(&[]);
    let mut ftp = connect(&server, mode);
    let data = common::payload(400_000, 41);

    assert_eq!(ftp.pwd().unwrap(), "/");
    ftp.mkdir("box").expect("MKD");
    ftp.cwd("box").expect("CWD");
    assert_eq!(ftp.pwd().unwrap(), "/box");

    let sent = ftp.put_file("data.bin", &mut Cursor::new(&data)).expect("STOR");
    assert_eq!(sent, data.len() as u64);
    assert!(server.read("box/data.bin") == data, "stored bytes on disk");
    ftp.put_file("small.txt", &mut Cursor::new(b"small"))
        .expect("STOR small");

    assert_eq!(ftp.size("data.bin").expect("SIZE"), data.len());
    let mtime = std::fs::metadata(server.path("box/data.bin"))
        .unwrap()
        .modified()
        .unwrap();
    let mdtm = ftp.mdtm("data.bin").expect("MDTM");
    assert_eq!(
        mdtm.and_utc().timestamp(),
        mtime.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64,
        "MDTM is the file's mtime in UTC"
    );
    assert!(retr(&mut ftp, "data.bin") == data, "RETR returns the stored bytes");

    ftp.mkdir("sub").unwrap();
    let mut names = ftp.nlst(None).expect("NLST");
    names.sort();
    assert_eq!(names, ["data.bin", "small.txt", "sub"]);

    // suppaftp's own parsers must understand our LIST and MLSD lines. Its
    // MLSx parser takes only a 3-digit UNIX.mode, and we send the common
    // 4-digit form (0644), so leave that fact out with OPTS MLST.
    ftp.opts("MLST", Some("type;size;modify;perm;")).expect("OPTS MLST");
    let listed: Vec<File> = ftp
        .list(None)
        .expect("LIST")
        .iter()
        .map(|l| File::from_str(l).unwrap_or_else(|e| panic!("LIST line {l:?}: {e:?}")))
        .collect();
    let mlsd: Vec<File> = ftp
        .mlsd(None)
        .expect("MLSD")
        .iter()
        .map(|l| File::from_mlsx_line(l).unwrap_or_else(|e| panic!("MLSD line {l:?}: {e:?}")))
        .collect();
    for files in [&listed, &mlsd] {
        let find = |n: &str| {
            files
                .iter()
                .find(|f| f.name() == n)
                .unwrap_or_else(|| panic!("{n} missing from listing"))
        };
        assert!(find("data.bin").is_file() && find("data.bin").size() == data.len());
        assert!(find("small.txt").is_file() && find("small.txt").size() == 5);
        assert!(find("sub").is_directory());
        assert_eq!(files.len(), 3);
    }
    let mlst = ftp.mlst(Some("data.bin")).expect("MLST");
    assert!(
        mlst.contains(&format!("size={};", data.len())) && mlst.contains("type=file;"),
        "MLST facts: {mlst:?}"
    );

    ftp.rename("data.bin", "renamed.bin").expect("RNFR/RNTO");
    assert!(!server.path("box/data.bin").exists() && server.read("box/renamed.bin") == data);
    ftp.rm("small.txt").expect("DELE");
    assert!(!server.path("box/small.txt").exists());
    match ftp.rm("small.txt") {
        Err(FtpError::UnexpectedResponse(r)) => assert_eq!(r.status, Status::FileUnavailable, "DELE of a missing file"),
        other => panic!("DELE of a missing file should fail with 550, got {other:?}"),
    }
    ftp.rmdir("sub").expect("RMD");
    ftp.cdup().expect("CDUP");
    assert_eq!(ftp.pwd().unwrap(), "/");
    ftp.rm("box/renamed.bin").unwrap();
    ftp.rmdir("box").expect("RMD box");
    assert!(!server.path("box").exists());
    ftp.noop().expect("NOOP");
    ftp.quit().expect("QUIT");
}

#[test]
fn suppaftp_full_session_passive() {
    full_session(Mode::Passive);
}

#[test]
fn suppaftp_full_session_extended_passive() {
    full_session(Mode::ExtendedPassive);
}

#[test]
fn suppaftp_resume_transfer_restarts_retr_at_offset() {
    let server = TestServer::start(&[]);
    let data = common::payload(300_000, 42);
    server.write("r.bin", &data);
    let mut ftp = connect(&server, Mode::ExtendedPassive);

    for offset in [1usize, 65_536, 299_999] {
        ftp.resume_transfer(offset).expect("REST");
        assert!(retr(&mut ftp, "r.bin") == data[offset..], "RETR after REST {offset}");
    }
    assert!(
        retr(&mut ftp, "r.bin") == data,
        "REST applies to the next transfer only"
    );

    // REST before STOR overwrites from the offset and keeps what is before.
    let patch = b"PATCHED";
    ftp.resume_transfer(1000).expect("REST");
    ftp.put_file("r.bin", &mut Cursor::new(patch)).expect("STOR after REST");
    let mut want = data[..1000].to_vec();
    want.extend_from_slice(patch);
    assert!(
        server.read("r.bin") == want,
        "STOR after REST 1000 writes at offset 1000 and ends there"
    );
    ftp.quit().unwrap();
}

#[test]
fn suppaftp_append_file() {
    let server = TestServer::start(&[]);
    server.write("log.bin", b"head;");
    let mut ftp = connect(&server, Mode::Passive);

    ftp.append_file("log.bin", &mut Cursor::new(b"tail")).expect("APPE");
    assert_eq!(server.read("log.bin"), b"head;tail");
    ftp.append_file("new.bin", &mut Cursor::new(b"created"))
        .expect("APPE to a new file");
    assert_eq!(server.read("new.bin"), b"created");
    ftp.quit().unwrap();
}
