//! Shared set-up of the integration tests.
#![allow(dead_code)] // each test file uses a different part

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ftp_storage::{Backend, ErrorKind, FtpPath, Result, Storage, WriteMode};
use ftp_storage_fs::{FsBackend, FsOptions};
use tempfile::TempDir;
use tokio::io::AsyncReadExt;

/// A temporary tree: `<tmp>/root` is the backend root, the user's home is
/// `<tmp>/root/user`, and `<tmp>/outside` holds a file no user may reach.
pub struct Tree {
    pub tmp: TempDir,
    pub backend: FsBackend,
    pub storage: Arc<dyn Storage>,
}

impl Tree {
    pub async fn new() -> Tree {
        Tree::with_options(FsOptions::default()).await
    }

    pub async fn with_options(options: FsOptions) -> Tree {
        let tmp = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(tmp.path().join("root")).expect("root");
        std::fs::create_dir(tmp.path().join("outside")).expect("outside");
        std::fs::write(tmp.path().join("outside/secret.txt"), b"secret").expect("secret");
        let backend = FsBackend::new(tmp.path().join("root"), options).expect("backend");
        let storage = backend.user_storage(&path("/user")).await.expect("user storage");
        Tree { tmp, backend, storage }
    }

    /// The user's home on disk.
    pub fn home(&self) -> PathBuf {
        self.tmp.path().join("root/user")
    }

    pub fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }

    /// Names in a directory of the home as they are on disk (temporary
    /// upload files included), sorted.
    pub fn on_disk(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.home().join(dir))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    pub fn symlink(&self, target: impl AsRef<Path>, link: &str) {
        std::os::unix::fs::symlink(target, self.home().join(link)).expect("symlink");
    }
}

pub fn path(s: &str) -> FtpPath {
    FtpPath::root().resolve(s.as_bytes()).expect("valid path")
}

pub async fn read(s: &dyn Storage, p: &str) -> Result<Vec<u8>> {
    let mut file = s.open_read(&path(p), 0).await?;
    let mut out = Vec::new();
    file.read_to_end(&mut out).await?;
    Ok(out)
}

pub async fn upload(s: &dyn Storage, p: &str, mode: WriteMode, data: &[u8]) -> Result<u64> {
    let mut up = s.open_write(&path(p), mode).await?;
    up.write_all(data).await?;
    up.commit().await
}

pub async fn names(s: &dyn Storage, dir: &str) -> Result<Vec<String>> {
    let mut stream = s.list(&path(dir)).await?;
    let mut out = Vec::new();
    while let Some(entry) = stream.next_entry().await? {
        out.push(entry.name);
    }
    out.sort();
    Ok(out)
}

#[track_caller]
pub fn assert_kind<T: std::fmt::Debug>(r: Result<T>, kinds: &[ErrorKind], what: &str) {
    match r {
        Ok(v) => panic!("{what}: succeeded with {v:?}, expected one of {kinds:?}"),
        Err(e) => assert!(kinds.contains(&e.kind), "{what}: got {e}, expected one of {kinds:?}"),
    }
}

/// The answers a refused escape may give.
pub const REFUSED: &[ErrorKind] = &[ErrorKind::PermissionDenied, ErrorKind::NotFound];
