//! The storage plug-in interface.
//!
//! Layout:
//! - this file: the [`Storage`] trait (object-safe, used as
//!   `Arc<dyn Storage>`), its directory stream, read handle and [`Upload`].
//! - [`error`]: [`StorageError`] and its kinds, each naming the reply code
//!   the server answers with.
//! - [`conformance`]: the behaviour suite every backend runs in its tests.
//! - [`busy`]: [`BusyTargets`], a registry of upload targets in progress
//!   that backends use to answer `Busy` to a second writer.
//!
//! A backend is rooted at one user's home: every [`FtpPath`] it receives is
//! relative to that root, already normalised so it cannot name anything
//! above it. The backend adds what only it can check (symlinks on disk).

pub mod busy;
pub mod conformance;
pub mod error;

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::io::AsyncRead;

pub use busy::{BusyGuard, BusyTargets};
pub use error::{ErrorKind, StorageError};
pub use ftp_proto::listing::{EntryKind, Facts};
pub use ftp_proto::FtpPath;

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub facts: Facts,
}

/// What a backend can do, so the server answers with the documented code
/// instead of faking an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// APPE and REST+STOR (writing into an existing file).
    pub append: bool,
    /// Renaming directories (object stores cannot do it atomically).
    pub rename_directories: bool,
    /// MFMT / SITE UTIME.
    pub set_mtime: bool,
    /// SITE CHMOD.
    pub chmod: bool,
    /// Unix permission bits in listings.
    pub unix_modes: bool,
}

/// How an upload writes its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// STOR: replace the file. Readers see the old file or the whole new one,
    /// never a part (the backend writes aside and swaps on commit).
    Replace,
    /// STOU: the name must not exist yet; fails with `AlreadyExists`.
    CreateNew,
    /// APPE: add to the end, creating the file if missing.
    Append,
    /// REST n + STOR: keep the first `n` bytes, write from there on, and
    /// drop what was after. `n` beyond the end is `InvalidOffset`.
    ResumeAt(u64),
}

/// A stream of directory entries, read one at a time so listings of any
/// size take constant memory.
#[async_trait]
pub trait DirStream: Send {
    /// The next entry, or `None` at the end. Entries `.` and `..` are not
    /// returned.
    async fn next_entry(&mut self) -> Result<Option<DirEntry>>;

    /// Appends the next entries to `out`: at least one, or none at the end.
    /// Backends that read in batches or pages hand over what they hold, so
    /// a listing of 50,000 entries costs the caller a call per batch rather
    /// than per entry. The default takes one entry.
    async fn next_entries(&mut self, out: &mut Vec<DirEntry>) -> Result<()> {
        if let Some(entry) = self.next_entry().await? {
            out.push(entry);
        }
        Ok(())
    }
}

/// An open file being read.
pub trait FileRead: AsyncRead + Send + Unpin {
    /// A file descriptor the server may pass to sendfile(2) for zero-copy
    /// downloads, reading from the offset it asked for. `None` for backends
    /// whose bytes are not in a local file.
    fn sendfile_fd(&self) -> Option<RawFd> {
        None
    }

    /// The whole file's size, when opening it told the backend (so the
    /// server needs no separate `stat` before a download).
    fn size(&self) -> Option<u64> {
        None
    }
}

/// An upload in progress. Nothing of it is visible under its final name
/// until [`commit`](Upload::commit) (except for `Append`/`ResumeAt`, which
/// write in place). Dropping an upload without commit or abort aborts it.
#[async_trait]
pub trait Upload: Send {
    async fn write_all(&mut self, data: &[u8]) -> Result<()>;
    /// Flushes, makes the file visible, and returns the bytes written.
    async fn commit(self: Box<Self>) -> Result<u64>;
    /// Discards what was written (for `Replace`/`CreateNew`; in-place
    /// modes keep what reached the file, so a client can resume).
    async fn abort(self: Box<Self>) -> Result<()>;
    /// Leaves nothing of this upload behind whatever the backend's options
    /// (the server calls it when a quota or the disk ran out, where a
    /// partial file is of no use): `Replace`/`CreateNew` as `abort` without
    /// keeping a partial file; in-place modes cut the file back to the
    /// length it had when the upload started (and remove it if the upload
    /// created it). The default is [`abort`](Upload::abort), which is exact
    /// for a backend that never keeps partial uploads nor writes in place.
    async fn discard(self: Box<Self>) -> Result<()> {
        self.abort().await
    }

    /// Whether the upload's writes go to a local file, finishing without
    /// waiting on the network or on other tasks (at most on the local
    /// disk, or on a write the upload handed to the blocking pool). The
    /// server may then receive a large upload on a thread of its own,
    /// calling the upload's methods through the runtime's handle
    /// (`Handle::block_on`). `false` (the default) keeps every call on the
    /// runtime's workers.
    fn writes_locally(&self) -> bool {
        false
    }

    /// Zero-copy uploads: a descriptor the server may splice(2) incoming
    /// bytes into, at its current file offset, instead of calling
    /// [`write_all`](Upload::write_all). `None` (the default) for backends
    /// whose bytes do not go to a local file, and whenever the upload
    /// cannot take direct writes right now. The server asks again before
    /// each batch: an upload may stop offering one part-way (the local disk
    /// does before writing past its page cache), and the server then goes
    /// on with `write_all`. Once an upload has stopped offering one it must
    /// not offer one again: the receive thread decides once, when it
    /// starts, whether it needs a splice pipe.
    fn direct_fd(&self) -> Option<RawFd> {
        None
    }

    /// Called before the server writes `n` bytes through
    /// [`direct_fd`](Upload::direct_fd): the upload counts them, or refuses
    /// them as `write_all` would (a quota, the largest file: the bytes are
    /// then not written).
    fn direct_reserve(&mut self, n: u64) -> Result<()> {
        let _ = n;
        Err(StorageError::new(ErrorKind::Unsupported, "no direct writes"))
    }

    /// A write through [`direct_fd`](Upload::direct_fd) failed: the file
    /// may have a hole, so nothing may follow and commit must fail.
    fn direct_failed(&mut self) {}

    /// Uploads that collect incoming bytes in buffers of their own (the
    /// local disk past its page cache): room the server may read the next
    /// bytes into, sparing the copy `write_all` would make. `None` (the
    /// default) whenever the upload takes `write_all` only; never empty.
    /// Asked again before each read, like `direct_fd`.
    fn buffer(&mut self) -> Option<&mut [u8]> {
        None
    }

    /// `n` bytes were read into the start of [`buffer`](Upload::buffer):
    /// they are the upload's now, as if given to `write_all` (and refused
    /// the same way: a quota, the largest file).
    async fn buffer_filled(&mut self, n: usize) -> Result<()> {
        let _ = n;
        Err(StorageError::new(ErrorKind::Unsupported, "no upload buffer"))
    }
}

/// A user's view of a storage backend, rooted at the user's home.
#[async_trait]
pub trait Storage: Send + Sync {
    fn capabilities(&self) -> Capabilities;
    async fn stat(&self, path: &FtpPath) -> Result<Facts>;
    async fn list(&self, dir: &FtpPath) -> Result<Box<dyn DirStream>>;
    async fn open_read(&self, path: &FtpPath, offset: u64) -> Result<Box<dyn FileRead>>;
    async fn open_write(&self, path: &FtpPath, mode: WriteMode) -> Result<Box<dyn Upload>>;
    async fn mkdir(&self, path: &FtpPath) -> Result<()>;
    /// Removes an empty directory; `DirectoryNotEmpty` otherwise.
    async fn rmdir(&self, path: &FtpPath) -> Result<()>;
    /// Removes a file (not a directory: `IsADirectory`).
    async fn delete(&self, path: &FtpPath) -> Result<()>;
    async fn rename(&self, from: &FtpPath, to: &FtpPath) -> Result<()>;
    async fn set_mtime(&self, path: &FtpPath, time: SystemTime) -> Result<()>;
    async fn chmod(&self, path: &FtpPath, mode: u32) -> Result<()>;
    /// Fails with [`ErrorKind::Busy`] while `path` is the target of an
    /// upload in progress through any storage of this backend in this
    /// process (whichever user's, also through an overlapping home). The
    /// server asks before RNFR; `open_write`, `delete`, `rename` and
    /// `mkdir` of a busy target must refuse by themselves. The default
    /// never finds anything busy (a backend without upload exclusivity).
    async fn check_not_busy(&self, path: &FtpPath) -> Result<()> {
        let _ = path;
        Ok(())
    }
}

/// A storage backend: hands out one [`Storage`] per logged-in user.
#[async_trait]
pub trait Backend: Send + Sync {
    /// A storage rooted at `home`, a path below the backend's own root,
    /// created if it does not exist yet.
    async fn user_storage(&self, home: &FtpPath) -> Result<Arc<dyn Storage>>;

    /// Whether the storage answers at all: the server asks at start and
    /// greets clients with 120, holding them, until it does. A backend
    /// that is always there (a local disk) keeps the default.
    async fn ready(&self) -> Result<()> {
        Ok(())
    }
}
