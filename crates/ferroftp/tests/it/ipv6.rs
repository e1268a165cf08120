//! The same server over IPv6: listening on [::1], passive and active data
//! connections in both extended (RFC 2428) and long (RFC 1639) forms.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};

use crate::common::RawClient;

/// `ferroftp serve` listening on [::1] only, killed on drop.
struct V6Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for V6Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl V6Server {
    fn write(&self, name: &str, data: &[u8]) {
        std::fs::write(self.dir.path().join(name), data).unwrap();
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap()
    }
}

fn start_v6() -> (V6Server, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferroftp"))
        .args(["serve", "--listen", "[::1]:0", "--user", "user:12345", "--root"])
        .arg(dir.path())
        .env("FERROFTP_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn ferroftp");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("ferroftp exited before listening").unwrap();
        if let Some(rest) = line.split("listening on ftp://").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    assert!(addr.is_ipv6());
    (V6Server { child, dir }, addr)
}

#[test]
fn epsv_and_eprt_over_ipv6() {
    let (server, v6) = start_v6();
    server.write("f.txt", b"over six");
    let mut c = RawClient::connect(v6);
    c.login("user", "12345");
    let (data, done) = c.fetch("RETR f.txt");
    assert_eq!(data, b"over six");
    assert_eq!(done.code, 226);

    // Active, extended: EPRT |2|::1|port|.
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    c.expect(&format!("EPRT |2|::1|{port}|"), 200);
    c.expect("RETR f.txt", 150);
    let (mut s, _) = listener.accept().unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"over six");
    c.expect_reply(226);
}

#[test]
fn ipv6_refuses_ipv4_forms() {
    let (_server, v6) = start_v6();
    let mut c = RawClient::connect(v6);
    c.login("user", "12345");
    // PASV's reply cannot carry an IPv6 address.
    c.expect("PASV", 425);
    let r = c.expect("EPRT |1|127.0.0.1|2000|", 522);
    assert!(r.text.contains("(2)"), "{r:?}");
    c.expect("EPSV 1", 522);
    c.expect("EPSV 2", 229);
}

#[test]
fn lpsv_and_lprt_over_ipv6() {
    let (server, v6) = start_v6();
    let mut c = RawClient::connect(v6);
    c.login("user", "12345");
    let r = c.expect("LPSV", 228);
    let inner = r.text.split('(').nth(1).and_then(|s| s.split(')').next()).unwrap();
    let n: Vec<u16> = inner.split(',').map(|x| x.parse().unwrap()).collect();
    assert_eq!(&n[..2], &[6, 16], "{r:?}");
    assert_eq!(&n[2..18], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(n[18], 2);
    let port = n[19] * 256 + n[20];
    let mut data = TcpStream::connect(("::1", port)).unwrap();
    c.expect("STOR up.txt", 125);
    data.write_all(b"long passive").unwrap();
    drop(data);
    c.expect_reply(226);
    assert_eq!(server.read("up.txt"), b"long passive");

    let listener = TcpListener::bind("[::1]:0").unwrap();
    let p = listener.local_addr().unwrap().port();
    let mut lprt = String::from("6,16,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,2,");
    lprt.push_str(&format!("{},{}", p >> 8, p & 0xff));
    c.expect(&format!("LPRT {lprt}"), 200);
    c.expect("RETR up.txt", 150);
    let (mut s, _) = listener.accept().unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"long passive");
    c.expect_reply(226);
}
