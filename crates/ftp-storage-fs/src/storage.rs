//! [`FsStorage`]: one user's view of the disk, rooted at the user's home.

use std::ffi::CStr;
use std::fs::File;
use std::future::Future;
use std::io::{self, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use async_trait::async_trait;
use ftp_storage::{
    Capabilities, DirStream, ErrorKind, Facts, FileRead, FtpPath, Result, Storage, StorageError, Upload, WriteMode,
};
use tokio::io::{AsyncRead, ReadBuf};

use crate::abandoned::Sweep;
use crate::list::{facts, DirReader, FsDirStream};
use crate::upload::{create_temp, Aside, FsUpload, InPlace, Placement};
use crate::{busy, metadata, names, sys, FsOptions};

/// A user's storage: every path is resolved beneath `root` (see the crate
/// documentation for how).
#[derive(Debug, Clone)]
pub struct FsStorage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// O_PATH | O_DIRECTORY descriptor of the user's root.
    root: OwnedFd,
    options: FsOptions,
}

impl Inner {
    /// Opens `rel` beneath the root (following symlinks that stay inside).
    fn open(&self, rel: &CStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
        sys::openat2(self.root.as_fd(), rel, flags, mode)
    }

    /// Opens the directory `rel` beneath the root for `*at` calls.
    fn open_dir(&self, rel: &CStr) -> io::Result<OwnedFd> {
        self.open(rel, libc::O_PATH | libc::O_DIRECTORY, 0)
    }
}

/// Flags for opening a file to read it or change its attributes. O_NONBLOCK
/// keeps a FIFO someone placed in the tree from blocking the thread forever
/// (it is refused right after as not a regular file); Linux ignores the
/// flag for regular files. O_NOCTTY keeps a terminal device from becoming
/// the server's controlling terminal.
const OPEN_EXISTING: libc::c_int = libc::O_NONBLOCK | libc::O_NOCTTY;

fn not_a_file(st: &sys::Stat) -> Option<StorageError> {
    if st.is_dir() {
        Some(StorageError::new(ErrorKind::IsADirectory, "is a directory"))
    } else if !st.is_file() {
        Some(StorageError::new(ErrorKind::PermissionDenied, "not a regular file"))
    } else {
        None
    }
}

fn invalid_offset(offset: u64, size: u64) -> StorageError {
    StorageError::new(
        ErrorKind::InvalidOffset,
        format!("offset {offset} is beyond the end of the file ({size} bytes)"),
    )
}

impl FsStorage {
    pub(crate) fn new(root: OwnedFd, options: FsOptions) -> FsStorage {
        FsStorage {
            inner: Arc::new(Inner { root, options }),
        }
    }

    /// Runs `op` on the final name of `path` relative to its parent
    /// directory, which is opened beneath the root.
    async fn at_name<T, F>(&self, path: &FtpPath, op: F) -> Result<T>
    where
        F: FnOnce(BorrowedFd<'_>, &CStr, &Inner) -> io::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.at_name_inline(self.inner.options.inline_metadata, path, op).await
    }

    /// [`at_name`](Self::at_name) on the worker when `inline`, else on the
    /// blocking pool whatever the options say.
    async fn at_name_inline<T, F>(&self, inline: bool, path: &FtpPath, op: F) -> Result<T>
    where
        F: FnOnce(BorrowedFd<'_>, &CStr, &Inner) -> io::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (parent, name) = names::split(path)?;
        let inner = Arc::clone(&self.inner);
        metadata(inline, move || {
            let dir = inner.open_dir(&parent)?;
            Ok(op(dir.as_fd(), &name, &inner)?)
        })
        .await
    }

    /// Runs `op` with the inner state and `path` relative to the root.
    async fn at_path<T, F>(&self, path: &FtpPath, op: F) -> Result<T>
    where
        F: FnOnce(&Inner, &CStr) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let rel = names::relative(path)?;
        let inner = Arc::clone(&self.inner);
        metadata(inner.options.inline_metadata, move || op(&inner, &rel)).await
    }
}

/// Opens the temporary file of a `Replace` or `CreateNew` upload.
fn open_aside(inner: &Inner, path: &FtpPath, exclusive: bool) -> Result<FsUpload> {
    let (parent, name) = names::split(path)?;
    let dir = inner.open_dir(&parent)?;
    let busy = busy::acquire(dir.as_fd(), &name)?;
    // Refuse now what commit would refuse, before the client sends data.
    let existing = match sys::lstatat(dir.as_fd(), &name) {
        Ok(st) => Some(st),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(st) = &existing {
        if st.is_dir() {
            return Err(StorageError::new(ErrorKind::IsADirectory, "is a directory"));
        }
        if exclusive {
            return Err(StorageError::new(ErrorKind::AlreadyExists, "file exists"));
        }
    }
    let options = &inner.options;
    let (file, temp) = create_temp(&dir, options.file_mode)?;
    if let Some(st) = existing.filter(|st| st.is_file()) {
        // Re-uploading a file keeps its permissions (a script stays
        // executable), as overwriting it in place would. Best effort: the
        // upload itself is fine either way.
        let _ = sys::fchmod(file.as_fd(), st.mode & 0o777);
    }
    let aside = Aside {
        dir,
        temp,
        name,
        exclusive,
        keep_partial: options.keep_partial_uploads,
    };
    Ok(FsUpload::new(file, Placement::Aside(aside), options.durability, busy)
        .preallocating(options.upload_preallocation)
        .direct_io_after(options.direct_io_after()))
}

/// Opens the target of an `Append` or `ResumeAt` upload, which writes into
/// the file itself.
fn open_in_place(inner: &Inner, path: &FtpPath, resume_at: Option<u64>) -> Result<FsUpload> {
    let rel = names::relative(path)?;
    let (parent, name) = names::split(path)?;
    let dir = inner.open_dir(&parent)?;
    // Before anything is created or cut: a busy file is left alone.
    let busy = busy::acquire(dir.as_fd(), &name)?;
    let existed = match sys::lstatat(dir.as_fd(), &name) {
        Ok(_) => true,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => false,
        Err(e) => return Err(e.into()),
    };
    let mode = inner.options.file_mode;
    let fd = match resume_at {
        None => inner.open(
            &rel,
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | OPEN_EXISTING,
            mode,
        )?,
        Some(offset) => match inner.open(&rel, libc::O_WRONLY | OPEN_EXISTING, 0) {
            // REST 0 + STOR of a new file is a plain upload.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && offset == 0 => {
                inner.open(&rel, libc::O_WRONLY | libc::O_CREAT | OPEN_EXISTING, mode)?
            }
            // A missing file has no byte `offset`.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(invalid_offset(offset, 0)),
            other => other?,
        },
    };
    let st = sys::fstat(fd.as_fd())?;
    if let Some(e) = not_a_file(&st) {
        return Err(e);
    }
    let mut file = File::from(fd);
    let start = match resume_at {
        Some(offset) => {
            if offset > st.size {
                return Err(invalid_offset(offset, st.size));
            }
            file.set_len(offset)?;
            file.seek(SeekFrom::Start(offset))?;
            offset
        }
        None => st.size,
    };
    let target = InPlace {
        dir,
        name,
        start,
        created: !existed,
    };
    Ok(FsUpload::new(
        file,
        Placement::InPlace(target),
        inner.options.durability,
        busy,
    ))
}

/// A file opened for download. Reads of data in the page cache (nearly
/// all of them on a busy server) are made on the worker that asks, straight
/// into the caller's buffer; only a read that would wait for the disk goes
/// to the blocking pool. tokio's `File` sent every read through the pool
/// and its own buffer: a thread hop and an extra copy per 256 KiB, the
/// largest cost of FTPS downloads beside AES itself.
struct FsFileRead {
    file: Arc<File>,
    size: u64,
    /// Where the next read starts (reads are positional: the descriptor's
    /// own position stays where open_read put it, for sendfile).
    pos: u64,
    /// Try page-cache reads on the worker (`FsOptions::inline_metadata`,
    /// and while the filesystem supports RWF_NOWAIT).
    try_cached: bool,
    /// A read from disk running on the blocking pool.
    pending: Option<tokio::task::JoinHandle<io::Result<Vec<u8>>>>,
    /// What that read brought beyond the caller's buffer, and how much of
    /// it was handed out.
    spill: Vec<u8>,
    spilled: usize,
}

/// The most a read from disk on the blocking pool asks for at once.
const DISK_READ_MAX: usize = 1 << 20;

impl FsFileRead {
    fn new(file: File, size: u64, offset: u64, try_cached: bool) -> FsFileRead {
        FsFileRead {
            file: Arc::new(file),
            size,
            pos: offset,
            try_cached,
            pending: None,
            spill: Vec::new(),
            spilled: 0,
        }
    }
}

impl AsyncRead for FsFileRead {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.spilled < this.spill.len() {
                let n = buf.remaining().min(this.spill.len() - this.spilled);
                buf.put_slice(&this.spill[this.spilled..this.spilled + n]);
                this.spilled += n;
                return Poll::Ready(Ok(()));
            }
            if let Some(pending) = this.pending.as_mut() {
                let joined = std::task::ready!(Pin::new(pending).poll(cx));
                this.pending = None;
                let data = joined.map_err(io::Error::other)??;
                this.pos += data.len() as u64;
                this.spill = data;
                this.spilled = 0;
                if this.spill.is_empty() {
                    return Poll::Ready(Ok(())); // end of file
                }
                continue;
            }
            if this.try_cached {
                let unfilled = buf.initialize_unfilled();
                match sys::pread_cached(this.file.as_fd(), unfilled, this.pos) {
                    Ok(n) => {
                        buf.advance(n);
                        this.pos += n as u64;
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // Unsupported, or refused in a way plain reads may not
                    // be (a seccomp filter): plain reads from now on, and a
                    // real I/O error shows there.
                    Err(_) => this.try_cached = false,
                }
            }
            let file = Arc::clone(&this.file);
            let (pos, len) = (this.pos, buf.remaining().min(DISK_READ_MAX));
            this.pending = Some(tokio::task::spawn_blocking(move || {
                let mut data = vec![0; len];
                let n = sys::pread(file.as_fd(), &mut data, pos)?;
                data.truncate(n);
                Ok(data)
            }));
        }
    }
}

impl FileRead for FsFileRead {
    /// The descriptor is positioned at the requested offset (reads through
    /// `AsyncRead` are positional and leave it there).
    fn sendfile_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }

    fn size(&self) -> Option<u64> {
        Some(self.size)
    }
}

#[async_trait]
impl Storage for FsStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            append: true,
            rename_directories: true,
            set_mtime: true,
            chmod: true,
            unix_modes: true,
        }
    }

    /// Follows symlinks that stay inside the root (a listing, by contrast,
    /// shows the symlink itself).
    async fn stat(&self, path: &FtpPath) -> Result<Facts> {
        self.at_path(path, |inner, rel| {
            let fd = inner.open(rel, libc::O_PATH, 0)?;
            Ok(facts(&sys::fstat(fd.as_fd())?))
        })
        .await
    }

    async fn list(&self, dir: &FtpPath) -> Result<Box<dyn DirStream>> {
        let reader = self
            .at_path(dir, |inner, rel| {
                let fd = inner.open(rel, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                Ok(DirReader::new(fd, inner.options.listing_sweep()))
            })
            .await?;
        Ok(Box::new(FsDirStream::new(reader)))
    }

    /// An offset beyond the end is `InvalidOffset`; at the end, the read is
    /// empty.
    async fn open_read(&self, path: &FtpPath, offset: u64) -> Result<Box<dyn FileRead>> {
        let file = self
            .at_path(path, move |inner, rel| {
                let fd = inner.open(rel, libc::O_RDONLY | OPEN_EXISTING, 0)?;
                let st = sys::fstat(fd.as_fd())?;
                if let Some(e) = not_a_file(&st) {
                    return Err(e);
                }
                if offset > st.size {
                    return Err(invalid_offset(offset, st.size));
                }
                let mut file = File::from(fd);
                if offset > 0 {
                    file.seek(SeekFrom::Start(offset))?;
                }
                Ok((file, st.size))
            })
            .await?;
        let (file, size) = file;
        Ok(Box::new(FsFileRead::new(
            file,
            size,
            offset,
            self.inner.options.inline_metadata,
        )))
    }

    async fn open_write(&self, path: &FtpPath, mode: WriteMode) -> Result<Box<dyn Upload>> {
        let inner = Arc::clone(&self.inner);
        let path = path.clone();
        let upload = metadata(inner.options.inline_metadata, move || match mode {
            WriteMode::Replace => open_aside(&inner, &path, false),
            WriteMode::CreateNew => open_aside(&inner, &path, true),
            WriteMode::Append => open_in_place(&inner, &path, None),
            WriteMode::ResumeAt(offset) => open_in_place(&inner, &path, Some(offset)),
        })
        .await?;
        Ok(Box::new(upload))
    }

    async fn mkdir(&self, path: &FtpPath) -> Result<()> {
        self.at_name(path, |dir, name, inner| {
            busy::check(dir, name)?;
            sys::mkdirat(dir, name, inner.options.dir_mode)
        })
        .await
    }

    /// A directory that lists empty but holds abandoned uploads (hidden)
    /// is read as a listing reads it, which removes them, and removed.
    async fn rmdir(&self, path: &FtpPath) -> Result<()> {
        let removed = self.at_name(path, |dir, name, _| sys::unlinkat(dir, name, true)).await;
        let age = match (&removed, self.inner.options.abandoned_upload_age) {
            (Err(e), Some(age)) if e.kind == ErrorKind::DirectoryNotEmpty => age,
            _ => return removed,
        };
        // Reading a directory and unlinking what it holds can take long:
        // on the blocking pool, whatever `inline_metadata` says.
        self.at_name_inline(false, path, move |dir, name, _| {
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            // Every leftover must go for the directory to go.
            let mut reader = DirReader::new(sys::openat(dir, name, flags, 0)?, Some(Sweep::new(age, usize::MAX)));
            if reader.next_names(1)?.is_empty() {
                sys::unlinkat(dir, name, true)
            } else {
                Err(io::Error::from_raw_os_error(libc::ENOTEMPTY))
            }
        })
        .await
    }

    /// A file being uploaded is `Busy`.
    async fn delete(&self, path: &FtpPath) -> Result<()> {
        self.at_name(path, |dir, name, _| {
            busy::check(dir, name)?;
            sys::unlinkat(dir, name, false)
        })
        .await
    }

    /// `Busy` when either name is being uploaded.
    async fn rename(&self, from: &FtpPath, to: &FtpPath) -> Result<()> {
        let (to_parent, to_name) = names::split(to)?;
        self.at_name(from, move |from_dir, from_name, inner| {
            let to_dir = inner.open_dir(&to_parent)?;
            busy::check(from_dir, from_name)?;
            busy::check(to_dir.as_fd(), &to_name)?;
            sys::renameat(from_dir, from_name, to_dir.as_fd(), &to_name)
        })
        .await
    }

    async fn check_not_busy(&self, path: &FtpPath) -> Result<()> {
        if busy::none_in_progress() {
            return Ok(());
        }
        self.at_name(path, |dir, name, _| busy::check(dir, name)).await
    }

    /// Sets the time of the entry itself: on a symlink, of the link (never
    /// followed, so a link cannot lead the change out of the root).
    async fn set_mtime(&self, path: &FtpPath, time: SystemTime) -> Result<()> {
        self.at_name(path, move |dir, name, _| sys::set_mtime_at(dir, name, time))
            .await
    }

    /// Only the permission bits (0o777) are applied: setuid, setgid and
    /// sticky bits are dropped. The file is opened beneath the root and
    /// changed through its descriptor, because fchmodat(2) on a name would
    /// follow a symlink out of the root (and cannot refuse to follow before
    /// Linux 6.6). This needs read permission on the target.
    async fn chmod(&self, path: &FtpPath, mode: u32) -> Result<()> {
        self.at_path(path, move |inner, rel| {
            let fd = inner.open(rel, libc::O_RDONLY | OPEN_EXISTING, 0)?;
            Ok(sys::fchmod(fd.as_fd(), mode & 0o777)?)
        })
        .await
    }
}
