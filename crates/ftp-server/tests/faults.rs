//! Storage faults injected under a real server: a backend that wraps the
//! local disk and fails uploads on demand, chosen by the file name, so the
//! replies to failures no disk produces at will are proven over a raw
//! control connection: 451 for an unexpected I/O error (mid-transfer or
//! while flushing at commit), 452 when the storage runs out of space at
//! commit, and never a 226 for data that did not land.
//!
//! The backend keeps partial uploads (`keep_partial_uploads = true`), so
//! the tests also show which failures keep what arrived (an I/O error:
//! the storage's policy) and which never do (no space: discarded).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use ftp_auth::UserDb;
use ftp_server::{Server, ServerConfig};
use ftp_storage::{
    Backend, Capabilities, DirStream, ErrorKind, Facts, FileRead, FtpPath, Result, Storage, StorageError, Upload,
    WriteMode,
};
use ftp_storage_fs::{FsBackend, FsOptions};

/// Bytes a `write-*` upload takes before its fault.
const FAULT_AFTER: u64 = 64 * 1024;

/// What an upload does wrong, from its file name's prefix.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// write_all fails with `Local` (an EIO-like error) after FAULT_AFTER.
    WriteError,
    /// write_all fails with `InsufficientStorage` after FAULT_AFTER.
    WriteNoSpace,
    /// commit (where the data is flushed) fails with `Local`.
    CommitError,
    /// commit fails with `InsufficientStorage` (ENOSPC from fsync).
    CommitNoSpace,
}

fn fault_of(path: &FtpPath) -> Option<Fault> {
    let name = path.file_name()?;
    [
        ("write-error", Fault::WriteError),
        ("write-nospace", Fault::WriteNoSpace),
        ("commit-error", Fault::CommitError),
        ("commit-nospace", Fault::CommitNoSpace),
    ]
    .into_iter()
    .find(|(prefix, _)| name.starts_with(prefix))
    .map(|(_, f)| f)
}

struct FaultyBackend(FsBackend);

#[async_trait]
impl Backend for FaultyBackend {
    async fn user_storage(&self, home: &FtpPath) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(FaultyStorage(self.0.user_storage(home).await?)))
    }
}

struct FaultyStorage(Arc<dyn Storage>);

#[async_trait]
impl Storage for FaultyStorage {
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    async fn stat(&self, path: &FtpPath) -> Result<Facts> {
        self.0.stat(path).await
    }
    async fn list(&self, dir: &FtpPath) -> Result<Box<dyn DirStream>> {
        self.0.list(dir).await
    }
    async fn open_read(&self, path: &FtpPath, offset: u64) -> Result<Box<dyn FileRead>> {
        self.0.open_read(path, offset).await
    }
    async fn open_write(&self, path: &FtpPath, mode: WriteMode) -> Result<Box<dyn Upload>> {
        let inner = self.0.open_write(path, mode).await?;
        Ok(match fault_of(path) {
            Some(fault) => Box::new(FaultyUpload {
                inner,
                fault,
                written: 0,
            }),
            None => inner,
        })
    }
    async fn mkdir(&self, path: &FtpPath) -> Result<()> {
        self.0.mkdir(path).await
    }
    async fn rmdir(&self, path: &FtpPath) -> Result<()> {
        self.0.rmdir(path).await
    }
    async fn delete(&self, path: &FtpPath) -> Result<()> {
        self.0.delete(path).await
    }
    async fn rename(&self, from: &FtpPath, to: &FtpPath) -> Result<()> {
        self.0.rename(from, to).await
    }
    async fn set_mtime(&self, path: &FtpPath, time: SystemTime) -> Result<()> {
        self.0.set_mtime(path, time).await
    }
    async fn chmod(&self, path: &FtpPath, mode: u32) -> Result<()> {
        self.0.chmod(path, mode).await
    }
    async fn check_not_busy(&self, path: &FtpPath) -> Result<()> {
        self.0.check_not_busy(path).await
    }
}

struct FaultyUpload {
    inner: Box<dyn Upload>,
    fault: Fault,
    written: u64,
}

fn injected(kind: ErrorKind) -> StorageError {
    StorageError::new(kind, "injected fault")
}

#[async_trait]
impl Upload for FaultyUpload {
    async fn write_all(&mut self, data: &[u8]) -> Result<()> {
        if self.written + data.len() as u64 > FAULT_AFTER {
            // Part of the chunk lands first, as with a real failing disk.
            let fits = (FAULT_AFTER - self.written.min(FAULT_AFTER)) as usize;
            match self.fault {
                Fault::WriteError => {
                    self.inner.write_all(&data[..fits]).await?;
                    self.written += fits as u64;
                    return Err(injected(ErrorKind::Local));
                }
                Fault::WriteNoSpace => {
                    self.inner.write_all(&data[..fits]).await?;
                    self.written += fits as u64;
                    return Err(injected(ErrorKind::InsufficientStorage));
                }
                Fault::CommitError | Fault::CommitNoSpace => {}
            }
        }
        self.inner.write_all(data).await?;
        self.written += data.len() as u64;
        Ok(())
    }
    async fn commit(self: Box<Self>) -> Result<u64> {
        let kind = match self.fault {
            Fault::CommitError => ErrorKind::Local,
            Fault::CommitNoSpace => ErrorKind::InsufficientStorage,
            Fault::WriteError | Fault::WriteNoSpace => return self.inner.commit().await,
        };
        // The flush failed: the backend removes what it wrote aside.
        self.inner.discard().await?;
        Err(injected(kind))
    }
    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
    async fn discard(self: Box<Self>) -> Result<()> {
        self.inner.discard().await
    }
}

// ----------------------------------------------------------------- server

struct Running {
    addr: SocketAddr,
    root: PathBuf,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

/// A server on 127.0.0.1:0 over the faulty backend, user `u` / `p`.
fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let options = FsOptions {
        keep_partial_uploads: true,
        ..FsOptions::default()
    };
    let backend = Arc::new(FaultyBackend(FsBackend::new(&root, options).unwrap()));
    let mut users = UserDb::empty();
    users.add_plaintext("u", "p").unwrap();
    let config = ServerConfig {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        ..ServerConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(Server::bind(config, backend, Arc::new(users)))
        .unwrap();
    let addr = server.local_addrs()[0];
    runtime.spawn(server.run_until(std::future::pending()));
    Running {
        addr,
        root,
        _dir: dir,
        _runtime: runtime,
    }
}

struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut c = Client {
            reader: BufReader::new(s),
        };
        assert_eq!(c.reply().0, 220);
        c
    }

    /// One reply (multi-line aware): code and last line.
    fn reply(&mut self) -> (u16, String) {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let code: u16 = line[..3].parse().unwrap_or_else(|_| panic!("bad reply {line:?}"));
        if line.as_bytes()[3] == b'-' {
            let end = format!("{code} ");
            loop {
                line.clear();
                self.reader.read_line(&mut line).unwrap();
                if line.starts_with(&end) {
                    break;
                }
            }
        }
        (code, line.trim_end().to_string())
    }

    fn cmd(&mut self, line: &str, code: u16) -> String {
        self.reader
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        let (got, text) = self.reply();
        assert_eq!(got, code, "{line} -> {got} {text}");
        text
    }

    /// A transfer command: 150, or 125 when the data connection is open.
    fn preliminary(&mut self, line: &str) -> String {
        self.reader
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        let (code, text) = self.reply();
        assert!(code == 150 || code == 125, "{line} -> {code} {text}");
        text
    }

    fn epsv(&mut self) -> TcpStream {
        let text = self.cmd("EPSV", 229);
        let port: u16 = text
            .split("|||")
            .nth(1)
            .unwrap()
            .trim_end_matches(['|', ')'])
            .parse()
            .unwrap();
        TcpStream::connect((self.reader.get_ref().peer_addr().unwrap().ip(), port)).unwrap()
    }

    /// STOR of `data`; the final reply's code.
    fn stor(&mut self, name: &str, data: &[u8]) -> (u16, String) {
        let mut d = self.epsv();
        let first = self.preliminary(&format!("STOR {name}"));
        assert!(first.contains(name), "{first}");
        // The server may close the data connection as soon as it fails.
        let _ = d.write_all(data);
        drop(d);
        self.reply()
    }

    fn retr(&mut self, name: &str) -> Vec<u8> {
        let mut d = self.epsv();
        self.preliminary(&format!("RETR {name}"));
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        assert_eq!(self.reply().0, 226);
        out
    }
}

fn login(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr);
    c.cmd("USER u", 331);
    c.cmd("PASS p", 230);
    c.cmd("TYPE I", 200);
    c
}

fn on_disk(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// An unexpected I/O error mid-upload: 451, never 226; with partial
/// uploads kept, what reached the storage stays for a resume.
#[test]
fn io_error_mid_transfer_451() {
    let server = start();
    let mut c = login(server.addr);
    let (code, text) = c.stor("write-error.bin", &data(1 << 20));
    assert_eq!(code, 451, "{text}");
    let kept = std::fs::read(server.root.join("write-error.bin")).expect("partial kept by policy");
    assert_eq!(kept, data(1 << 20)[..FAULT_AFTER as usize], "what was kept");
    // The session goes on.
    let (code, _) = c.stor("fine.bin", b"fine");
    assert_eq!(code, 226);
}

/// The storage runs out of space mid-upload: 452, and nothing stays,
/// even with partial uploads kept; an older file under that name is left
/// as it was.
#[test]
fn no_space_mid_transfer_452_leaves_nothing() {
    let server = start();
    let mut c = login(server.addr);
    let (code, text) = c.stor("write-nospace.bin", &data(1 << 20));
    assert_eq!(code, 452, "{text}");
    assert!(on_disk(&server.root).is_empty(), "left: {:?}", on_disk(&server.root));
    std::fs::write(server.root.join("write-nospace.old"), b"old content").unwrap();
    let (code, _) = c.stor("write-nospace.old", &data(1 << 20));
    assert_eq!(code, 452);
    assert_eq!(c.retr("write-nospace.old"), b"old content");
    assert_eq!(on_disk(&server.root), ["write-nospace.old"]);
}

/// The flush at commit fails: 451 (I/O) or 452 (no space), never 226, and
/// nothing of the upload appears.
#[test]
fn failed_flush_at_commit_451_or_452_never_226() {
    let server = start();
    let mut c = login(server.addr);
    let (code, text) = c.stor("commit-error.bin", &data(1000));
    assert_eq!(code, 451, "{text}");
    let (code, text) = c.stor("commit-nospace.bin", &data(1000));
    assert_eq!(code, 452, "{text}");
    assert!(on_disk(&server.root).is_empty(), "left: {:?}", on_disk(&server.root));
    // Nothing stays busy after a failed upload.
    let (code, _) = c.stor("fine.bin", b"fine");
    assert_eq!(code, 226);
    assert_eq!(on_disk(&server.root), ["fine.bin"]);
}
