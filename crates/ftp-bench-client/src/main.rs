//! The FTPS client of `scripts/bench`. Python's ssl module returns one
//! 16 KiB TLS record per call, and at a few GB/s that loop, not the
//! server, sets the pace; this client reads and writes in 4 MiB chunks
//! over rustls, so the FTPS rows measure the servers.
//!
//! ```text
//! ftpbench-client retr PORT USER PASSWORD PATH BYTES
//! ftpbench-client stor PORT USER PASSWORD PATH BYTES
//! ```
//!
//! Connects to 127.0.0.1:PORT, AUTH TLS, logs in, PBSZ 0, PROT P, TYPE I,
//! PASV (EPSV if refused), then transfers BYTES (a RETR must deliver exactly
//! that many). The data connection resumes the control connection's TLS
//! session, as the servers require. Prints one line,
//! `MIBPS <rate> <protocol> <cipher suite>`, timed from the transfer command
//! to its final reply; exits 1 with a message on any failure.
//!
//! A RETR ended without a close_notify counts what arrived (some peers close
//! that way); with `FTPBENCH_REQUIRE_CLOSE_NOTIFY=1` it is a failure
//! (scripts/ktls-vm-test, where the kernel sends ferroftp's close_notify).
//! `FTPBENCH_STOR_WITHOUT_CLOSE_NOTIFY=1` ends a STOR without its
//! close_notify, which the server must refuse as a cut upload. A STOR
//! sends a fixed pattern; `FTPBENCH_VERIFY_PATTERN=1` makes a RETR check
//! that it got that pattern back.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

const CHUNK: usize = 4 << 20;
const HOST: &str = "127.0.0.1";

type Fallible<T> = Result<T, String>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("ftpbench-client: {e}");
            std::process::exit(1);
        }
    }
}

fn run(args: &[String]) -> Fallible<String> {
    let [verb, port, user, password, path, bytes] = args else {
        return Err("usage: ftpbench-client retr|stor PORT USER PASSWORD PATH BYTES".into());
    };
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    let bytes: u64 = bytes.parse().map_err(|_| format!("bad byte count {bytes:?}"))?;
    let config = Arc::new(client_config()?);
    let mut ctl = Control::connect(port, Arc::clone(&config))?;
    ctl.login(user, password)?;
    let data_addr = ctl.passive()?;
    let mut raw = TcpStream::connect(data_addr).map_err(|e| format!("data connect: {e}"))?;
    raw.set_read_timeout(Some(Duration::from_secs(60))).ok();
    // What a STOR sends: the pattern, byte `o` of the file = `buf[o % CHUNK]`.
    let mut buf = pattern();
    let verify = std::env::var_os("FTPBENCH_VERIFY_PATTERN").is_some_and(|v| v == "1");
    let started = Instant::now();
    let command = match verb.as_str() {
        "retr" => "RETR",
        "stor" => "STOR",
        other => return Err(format!("unknown verb {other:?}")),
    };
    ctl.expect(&format!("{command} {path}"), &[125, 150])?;
    let mut conn = ClientConnection::new(Arc::clone(&config), server_name()).map_err(|e| e.to_string())?;
    let mut pos = 0u64;
    if command == "STOR" {
        pos = handshake_with_first_data(&mut conn, &mut raw, &buf[..bytes.min(CHUNK as u64) as usize])? as u64;
    }
    let mut data = StreamOwned::new(conn, raw);
    if command == "RETR" {
        let require_close_notify = std::env::var_os("FTPBENCH_REQUIRE_CLOSE_NOTIFY").is_some_and(|v| v == "1");
        let reference = verify.then(pattern);
        let mut got = 0u64;
        loop {
            match data.read(&mut buf) {
                // rustls reports the end as 0 only after a close_notify.
                Ok(0) => break,
                Ok(n) => {
                    if let Some(reference) = &reference {
                        if !matches_pattern(reference, got, &buf[..n]) {
                            return Err(format!("RETR: bytes {got}..{} differ from the pattern", got + n as u64));
                        }
                    }
                    got += n as u64;
                }
                // A server that closes without close_notify: what arrived counts.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !require_close_notify => break,
                Err(e) => return Err(format!("data read: {e}")),
            }
        }
        if got != bytes {
            return Err(format!("RETR delivered {got} bytes, expected {bytes}"));
        }
    } else {
        while pos < bytes {
            let start = (pos % CHUNK as u64) as usize;
            let n = (bytes - pos).min((CHUNK - start) as u64) as usize;
            data.write_all(&buf[start..start + n])
                .map_err(|e| format!("data write: {e}"))?;
            pos += n as u64;
        }
        // FTPBENCH_STOR_WITHOUT_CLOSE_NOTIFY=1: end the upload with a bare
        // TCP close, as a cut connection would (scripts/ktls-vm-test: the
        // server must not take it for a whole file).
        if std::env::var_os("FTPBENCH_STOR_WITHOUT_CLOSE_NOTIFY").is_none_or(|v| v != "1") {
            data.conn.send_close_notify();
        }
        data.flush().map_err(|e| format!("data flush: {e}"))?;
        let _ = data.sock.shutdown(Shutdown::Write);
        // Read what the server sent (TLS 1.3 session tickets) until it
        // closes: a socket closed with unread bytes sends RST, which the
        // server rightly takes for a broken upload.
        let mut sink = [0u8; 16 * 1024];
        while matches!(data.sock.read(&mut sink), Ok(n) if n > 0) {}
    }
    let (protocol, suite) = negotiated(&data.conn);
    drop(data);
    ctl.expect_reply(&[226, 250])?;
    let secs = started.elapsed().as_secs_f64();
    let _ = ctl.send("QUIT");
    Ok(format!(
        "MIBPS {:.1} {protocol} {suite}",
        bytes as f64 / (1 << 20) as f64 / secs
    ))
}

/// One period of the bytes a STOR sends: not all zeros, so that a test
/// that reads the file back (`FTPBENCH_VERIFY_PATTERN=1` on RETR) sees
/// misplaced or lost data.
fn pattern() -> Vec<u8> {
    (0..CHUNK as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// Whether `got`, read at file offset `offset`, is the pattern there.
fn matches_pattern(reference: &[u8], offset: u64, mut got: &[u8]) -> bool {
    let mut start = (offset % CHUNK as u64) as usize;
    while !got.is_empty() {
        let n = got.len().min(CHUNK - start);
        if got[..n] != reference[start..start + n] {
            return false;
        }
        got = &got[n..];
        start = 0;
    }
    true
}

/// An upload's handshake whose Finished goes out in one write with the
/// first data records, as a client that writes at once may send them: the
/// server must read its handshake without taking any of that data along
/// (ferroftp's uploads under kernel TLS, scripts/ktls-vm-test). Returns
/// how much of `first` was sent.
fn handshake_with_first_data(conn: &mut ClientConnection, sock: &mut TcpStream, first: &[u8]) -> Fallible<usize> {
    let io = |e: std::io::Error| format!("data handshake: {e}");
    // rustls stops "handshaking" once the server's Finished is in; its own
    // Finished is then queued, not yet written.
    while conn.is_handshaking() {
        if conn.wants_write() {
            conn.write_tls(sock).map_err(io)?;
        } else {
            if conn.read_tls(sock).map_err(io)? == 0 {
                return Err("data handshake: connection closed".into());
            }
            conn.process_new_packets().map_err(|e| format!("data handshake: {e}"))?;
        }
    }
    let sent = conn.writer().write(first).map_err(io)?;
    let mut records = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut records).map_err(io)?;
    }
    sock.write_all(&records).map_err(io)?;
    Ok(sent)
}

fn negotiated(conn: &ClientConnection) -> (String, String) {
    let protocol = conn.protocol_version().map_or("?".into(), |v| format!("{v:?}"));
    let suite = conn
        .negotiated_cipher_suite()
        .map_or("?".into(), |s| format!("{:?}", s.suite()));
    (protocol, suite)
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("a valid name")
}

fn client_config() -> Fallible<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(config)
}

/// The servers use the run's self-signed certificate: any certificate is
/// accepted, the handshake signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The control connection: plain until AUTH TLS, then TLS.
struct Control {
    plain: Option<BufReader<TcpStream>>,
    tls: Option<BufReader<StreamOwned<ClientConnection, TcpStream>>>,
    config: Arc<ClientConfig>,
}

impl Control {
    fn connect(port: u16, config: Arc<ClientConfig>) -> Fallible<Control> {
        let tcp = TcpStream::connect((HOST, port)).map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).ok();
        tcp.set_read_timeout(Some(Duration::from_secs(60))).ok();
        let mut ctl = Control {
            plain: Some(BufReader::new(tcp)),
            tls: None,
            config,
        };
        ctl.expect_reply(&[220])?;
        Ok(ctl)
    }

    fn login(&mut self, user: &str, password: &str) -> Fallible<()> {
        self.expect("AUTH TLS", &[234])?;
        let tcp = self.plain.take().expect("plain before AUTH").into_inner();
        let conn = ClientConnection::new(Arc::clone(&self.config), server_name()).map_err(|e| e.to_string())?;
        self.tls = Some(BufReader::new(StreamOwned::new(conn, tcp)));
        if self.expect(&format!("USER {user}"), &[230, 331])? == 331 {
            self.expect(&format!("PASS {password}"), &[230])?;
        }
        self.expect("PBSZ 0", &[200])?;
        self.expect("PROT P", &[200])?;
        self.expect("TYPE I", &[200])?;
        Ok(())
    }

    /// PASV, or EPSV where PASV is refused: the data address.
    fn passive(&mut self) -> Fallible<(String, u16)> {
        self.send("PASV")?;
        let (code, text) = self.reply()?;
        if code == 227 {
            let inner = text.split('(').nth(1).and_then(|t| t.split(')').next()).unwrap_or("");
            let n: Vec<u16> = inner.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            if n.len() == 6 {
                return Ok((HOST.to_string(), n[4] * 256 + n[5]));
            }
            return Err(format!("unparsable PASV reply {text:?}"));
        }
        self.send("EPSV")?;
        let (code, text) = self.reply()?;
        let port = text
            .split("|||")
            .nth(1)
            .and_then(|t| t.split('|').next())
            .and_then(|p| p.parse().ok());
        match (code, port) {
            (229, Some(port)) => Ok((HOST.to_string(), port)),
            _ => Err(format!("EPSV -> {code} {text}")),
        }
    }

    fn send(&mut self, line: &str) -> Fallible<()> {
        let bytes = format!("{line}\r\n");
        let result = match (&mut self.tls, &mut self.plain) {
            (Some(t), _) => t
                .get_mut()
                .write_all(bytes.as_bytes())
                .and_then(|()| t.get_mut().flush()),
            (None, Some(p)) => p.get_mut().write_all(bytes.as_bytes()),
            (None, None) => unreachable!("a control connection"),
        };
        result.map_err(|e| format!("send {line:?}: {e}"))
    }

    fn read_line(&mut self) -> Fallible<String> {
        let mut line = String::new();
        let n = match (&mut self.tls, &mut self.plain) {
            (Some(t), _) => t.read_line(&mut line),
            (None, Some(p)) => p.read_line(&mut line),
            (None, None) => unreachable!("a control connection"),
        }
        .map_err(|e| format!("control read: {e}"))?;
        if n == 0 {
            return Err("control connection closed".into());
        }
        Ok(line.trim_end().to_string())
    }

    /// One whole reply (multi-line aware): code and first line's text.
    fn reply(&mut self) -> Fallible<(u16, String)> {
        let first = self.read_line()?;
        let code: u16 = first
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or(format!("bad reply {first:?}"))?;
        if first.as_bytes().get(3) == Some(&b'-') {
            loop {
                let more = self.read_line()?;
                if more.starts_with(&format!("{code} ")) {
                    break;
                }
            }
        }
        Ok((code, first))
    }

    fn expect_reply(&mut self, ok: &[u16]) -> Fallible<u16> {
        let (code, text) = self.reply()?;
        if ok.contains(&code) {
            Ok(code)
        } else {
            Err(format!("unexpected reply {text:?}"))
        }
    }

    fn expect(&mut self, line: &str, ok: &[u16]) -> Fallible<u16> {
        self.send(line)?;
        let shown = if line.starts_with("PASS") { "PASS ****" } else { line };
        self.expect_reply(ok).map_err(|e| format!("{shown}: {e}"))
    }
}
