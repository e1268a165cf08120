//! Local-disk storage for ferroftp, the server's default backend.
//!
//! Each user's storage holds an `O_PATH` descriptor of the user's root
//! directory, and every path a client names is resolved from it with
//! openat2(2) and `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: the kernel
//! itself refuses any walk that would leave the root, whether by `..`, an
//! absolute symlink or a symlink pointing outside. Symlinks that stay inside
//! are followed. Operations on a final name (mkdir, rmdir, unlink, rename,
//! lstat, utimensat, creating a temporary upload) open the *parent* beneath
//! the root and act on the name relative to that descriptor, so the name
//! itself is never followed out of the root either. There is no fallback
//! for kernels without openat2 (before 5.6): [`FsBackend::new`] fails.
//!
//! Every system call runs off the async threads: on tokio's blocking pool,
//! or, for upload writes on a multi-threaded runtime, inside
//! `block_in_place`, which spares copying each chunk (see `upload`).
//!
//! Layout:
//! - this file: [`FsOptions`], [`Durability`], [`FsBackend`] and the
//!   blocking-pool helper.
//! - `storage`: [`FsStorage`], the [`Storage`] implementation.
//! - `upload`: uploads (temporary file and rename, or in place).
//! - `direct_io`: the aligned chunks of uploads written past the page
//!   cache (O_DIRECT).
//! - `busy`: the process-wide set of files being uploaded (a second writer
//!   gets `Busy`), keyed by parent directory inode and name.
//! - `list`: directory listings streamed in batches.
//! - `names`: from [`FtpPath`] to relative paths and final names.
//! - `abandoned`: telling a dead server's upload files from live ones.
//! - `sweep`: one walk of a whole tree for them (`ferroftp sweep`).
//! - `sys`: the unsafe system-call wrappers, each with its SAFETY note.

mod abandoned;
mod busy;
mod direct_io;
mod list;
mod names;
mod storage;
mod sweep;
mod sys;
mod upload;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ftp_storage::{Backend, ErrorKind, FtpPath, Result, Storage, StorageError};

pub use storage::FsStorage;
pub use sweep::{sweep_tree, SweepReport};

/// How hard a committed upload is pushed to the disk before the server
/// answers 226 (transfer complete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// No fsync: the data reaches the disk when the kernel writes it back
    /// (seconds later). Fastest; a crash or power loss shortly after a
    /// 226 may lose the file or, on some filesystems, leave it empty.
    None,
    /// fdatasync the file before renaming it into place. The default: a
    /// 226 then means the bytes are on disk, and the rename can never
    /// expose a file whose contents did not make it; the cost is one flush
    /// per upload, small next to the transfer itself.
    #[default]
    File,
    /// Like `File`, and also fsync the directory after the rename, so the
    /// new name itself survives a crash (the rename is journalled but may
    /// otherwise still be in memory). One more flush per upload.
    FileAndDirectory,
}

/// Options of the local-disk backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsOptions {
    pub durability: Durability,
    /// Keep what arrived of an aborted `Replace`/`CreateNew` upload under
    /// its final name (as many FTP servers do, so a client can resume with
    /// REST + STOR) instead of discarding it. Off by default: the storage
    /// contract says an aborted upload leaves nothing behind.
    pub keep_partial_uploads: bool,
    /// Permission bits of new files, further reduced by the process umask.
    /// A `Replace` of an existing file keeps that file's permission bits.
    pub file_mode: u32,
    /// Permission bits of new directories, further reduced by the umask.
    pub dir_mode: u32,
    /// Run single metadata calls (open, stat, rename, unlink, mkdir...) on
    /// the worker thread that asks, instead of handing each to the blocking
    /// pool: on a local disk they take microseconds, less than the hand-off
    /// itself (a small download spent a third of the server's time in it).
    /// Turn off on network file systems or slow disks, where one call can
    /// block for milliseconds. Directory listings, data writes and fsync
    /// always run on the pool.
    pub inline_metadata: bool,
    /// Disk space a new file's upload reserves ahead of its writes, in
    /// steps of this many bytes (fallocate with FALLOC_FL_KEEP_SIZE; the
    /// first step is written without, so small uploads never pay for it);
    /// 0 turns it off. ext4 then allocates one extent per step instead of
    /// accounting every page under delayed allocation: about 30% less
    /// kernel time per byte stored (measured with 512 MiB in 1 MiB
    /// writes: 0.116 → 0.078 s of system time). What is left past the end
    /// is given back when the file is published.
    pub upload_preallocation: u64,
    /// A new file's upload writes past the page cache (O_DIRECT, in aligned
    /// 1 MiB chunks from memory of its own) once it holds this many bytes;
    /// 0 turns it off; `None` follows the durability
    /// ([`FsOptions::direct_io_after`]). The first bytes stay buffered, so
    /// small files keep the cache's write-back. A filesystem without
    /// O_DIRECT keeps the upload buffered.
    pub upload_direct_io_after: Option<u64>,
    /// A hidden upload file nobody holds (its server died mid-upload) is
    /// removed once it has been unchanged this long, when a listing of its
    /// directory or an RMD of it meets it (see `abandoned`); `None` never
    /// removes one.
    pub abandoned_upload_age: Option<Duration>,
    /// How many old hidden upload files one listing tries to remove at
    /// most (an open, a lock and an unlink each; young ones cost a stat and
    /// are not counted); a later listing tries the rest. Keeps a listing of
    /// a directory full of leftovers, or of one on a filesystem that
    /// refuses the unlink, quick. RMD tries them all.
    pub abandoned_upload_checks_per_listing: usize,
}

impl FsOptions {
    /// What a listing does with the abandoned uploads it meets.
    pub(crate) fn listing_sweep(&self) -> Option<abandoned::Sweep> {
        self.abandoned_upload_age
            .map(|age| abandoned::Sweep::new(age, self.abandoned_upload_checks_per_listing))
    }

    /// The bytes after which a new file's upload writes with O_DIRECT:
    /// `upload_direct_io_after` if set, else 8 MiB when the 226 waits for
    /// the disk and off (0) when it does not.
    ///
    /// Waiting for the disk (fdatasync), every byte is written to it before
    /// the reply anyway, and past the cache a large upload neither
    /// allocates, dirties and writes back page-cache pages, nor pushes the
    /// files being downloaded out of the cache: on a VM whose host takes
    /// back free pages, 512 MiB over loopback went from 350-800 MiB/s and
    /// 1.3-1.5 s of system time to 1,900-2,600 MiB/s and 0.06 s (see
    /// `direct_io`); on another, level (1,114 buffered, 1,151 direct,
    /// medians of five). With `Durability::None` the site asked the 226 not
    /// to wait for the disk, and the cache's write-back gives that at
    /// memory speed: on that second host 1,560-1,997 MiB/s copied into the
    /// cache against 1,040-1,265 direct, where the disk takes O_DIRECT
    /// writes at about 1,400 (`dd`).
    pub fn direct_io_after(&self) -> u64 {
        self.upload_direct_io_after.unwrap_or(match self.durability {
            Durability::None => 0,
            Durability::File | Durability::FileAndDirectory => 8 << 20,
        })
    }
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            durability: Durability::default(),
            keep_partial_uploads: false,
            file_mode: 0o644,
            dir_mode: 0o755,
            inline_metadata: true,
            upload_preallocation: 8 << 20,
            upload_direct_io_after: None,
            abandoned_upload_age: Some(Duration::from_secs(600)),
            abandoned_upload_checks_per_listing: 100,
        }
    }
}

/// The local-disk backend: one directory holding every user's home.
#[derive(Debug)]
pub struct FsBackend {
    root: Arc<OwnedFd>,
    options: FsOptions,
}

impl FsBackend {
    /// Opens the backend's root directory, which must exist. Fails if the
    /// kernel lacks openat2(2) (Linux before 5.6, or a seccomp filter
    /// refusing it): confinement depends on it.
    pub fn new(root: impl Into<PathBuf>, options: FsOptions) -> io::Result<FsBackend> {
        let root = root.into();
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(&root)
            .map_err(|e| io::Error::new(e.kind(), format!("storage root {root:?}: {e}")))?;
        let dir = OwnedFd::from(dir);
        sys::openat2(dir.as_fd(), c".", libc::O_PATH | libc::O_DIRECTORY, 0).map_err(|e| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "openat2(2) does not work here ({e}); it is required to confine users to \
                     their directories (Linux 5.6 or later, not blocked by seccomp)"
                ),
            )
        })?;
        Ok(FsBackend {
            root: Arc::new(dir),
            options,
        })
    }

    pub fn options(&self) -> &FsOptions {
        &self.options
    }
}

#[async_trait]
impl Backend for FsBackend {
    /// Creates the home's directories as needed, each one beneath the
    /// backend root (symlinks inside the root are followed, as everywhere).
    async fn user_storage(&self, home: &FtpPath) -> Result<Arc<dyn Storage>> {
        let root = Arc::clone(&self.root);
        let options = self.options;
        let home = home.clone();
        let user_root = metadata(self.options.inline_metadata, move || {
            let mut level = FtpPath::root();
            for name in home.components() {
                let parent = sys::openat2(
                    root.as_fd(),
                    &names::relative(&level)?,
                    libc::O_PATH | libc::O_DIRECTORY,
                    0,
                )?;
                level = level.join(name);
                let (_, name) = names::split(&level)?;
                match sys::mkdirat(parent.as_fd(), &name, options.dir_mode) {
                    Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e.into()),
                    _ => {}
                }
            }
            let dir = sys::openat2(
                root.as_fd(),
                &names::relative(&home)?,
                libc::O_PATH | libc::O_DIRECTORY,
                0,
            )?;
            Ok(dir)
        })
        .await?;
        Ok(Arc::new(FsStorage::new(user_root, options)))
    }
}

/// Runs one metadata call: right here when `inline` (see
/// [`FsOptions::inline_metadata`]), else on the blocking pool.
pub(crate) async fn metadata<T, F>(inline: bool, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    if inline {
        f()
    } else {
        blocking(f).await
    }
}

/// Runs blocking work on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::new(ErrorKind::Local, format!("blocking storage task failed: {e}")))?
}
