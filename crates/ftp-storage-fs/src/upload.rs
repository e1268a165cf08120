//! Uploads.
//!
//! `Replace` and `CreateNew` write to a hidden temporary file beside the
//! target (`.ferroftp-upload.<hex>`, made with O_EXCL in the parent
//! directory) and rename it over the target on commit, so readers see the
//! old file or the whole new one. `Append` and `ResumeAt` write into the
//! file itself.
//!
//! Every upload holds its target's [`busy`] mark from before
//! anything is created or cut until it is committed, aborted, discarded or
//! dropped (after the clean-up), so a second writer of the same file gets
//! `Busy`.
//!
//! Writing a chunk, `write_all(&[u8])`, has two paths:
//!
//! - On a multi-threaded runtime (the server's), the chunk is written
//!   straight from the caller's slice inside `block_in_place`: no copy.
//!   The worker's other tasks move to another thread meanwhile, so nothing
//!   else waits for the disk, and the write reads the bytes from the CPU
//!   cache the socket read just filled. The hand-over has a price: the
//!   caller's task goes on from the thread that wrote, so a long upload
//!   wanders over the runtime's threads; the server therefore drives a
//!   large upload from a thread of its own, where `block_in_place` (inside
//!   `Handle::block_on`) costs nothing (`writes_locally`).
//!   Overlapping the two instead (the current-thread path below, tried on
//!   the server's runtime) measured twice the server's CPU, for reasons
//!   not profiled further (an extra copy, hand-overs between threads, the
//!   bytes read on another CPU than the one that received them): 512 MiB STOR
//!   into the page cache, interleaved rounds with ProFTPD, 2026-12-07:
//!   inline 1,928-2,477 MiB/s at 0.20-0.26 s of server CPU, overlapped on
//!   the blocking pool 1,116-1,295 MiB/s at 0.43-0.49 s (ProFTPD
//!   1,653-1,916 at 0.25-0.31 s).
//! - On a current-thread runtime, where `block_in_place` panics, the chunk
//!   is copied into one of two buffers this upload owns (spawn_blocking
//!   needs owned data) and written on the blocking pool; `write_all`
//!   returns without waiting, and the next call copies its chunk before
//!   waiting for the previous write, so copy, the caller's next read and
//!   the disk write overlap. A failed write is then reported by the next
//!   `write_all` or by `commit`.
//!
//! On the server's runtime, a new file (`Replace`, `CreateNew`) reserves
//! its disk space a step ahead of the writes once it passes its first step
//! ([`Preallocation`]; chunks and zero-copy batches alike), and gives back
//! what is left past its end before it is published under its name.
//!
//! A new file past [`FsOptions::upload_direct_io_after`] bytes leaves both
//! paths: from the next block boundary on, `write_all` copies into an
//! aligned chunk of the upload's own, and each full chunk is written with
//! O_DIRECT on the blocking pool while the next one fills ([`direct_io`]).
//! It then offers no zero-copy descriptor any more, so the server hands over
//! from splice to `write_all` at that point; once the chunk exists the
//! upload offers it as its `buffer`, and the server reads undecoded bytes
//! straight into it. What is still in the chunk is
//! written by `commit` (and by `abort` or a drop when the partial file is
//! kept).
//!
//! [`FsOptions::upload_direct_io_after`]: crate::FsOptions::upload_direct_io_after
//!
//! Either way a failed write poisons the upload (the file has a hole), and
//! a `write_all` future dropped half-way (the server's stall timeout or
//! ABOR) loses nothing already handed to the disk: the write in flight stays
//! tracked and is waited for by the next call.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use async_trait::async_trait;
use ftp_storage::{ErrorKind, Result, StorageError, Upload};
use tokio::runtime::RuntimeFlavor;
use tokio::task::JoinHandle;

use crate::busy;
use crate::direct_io::{self, AlignedChunk};
use crate::names::TEMP_PREFIX;
use crate::{blocking, sys, Durability};

/// How many random names are tried before giving up on creating a
/// temporary file (a clash needs someone creating our random names).
const TEMP_ATTEMPTS: usize = 8;

/// Creates a new temporary upload file in `dir` with O_EXCL (so nothing
/// existing, not even a symlink planted under that name, is opened).
pub(crate) fn create_temp(dir: &OwnedFd, mode: u32) -> io::Result<(File, CString)> {
    let mut last = io::Error::from_raw_os_error(libc::EEXIST);
    for _ in 0..TEMP_ATTEMPTS {
        let mut random = [0u8; 8];
        sys::random_bytes(&mut random)?;
        let name = format!("{TEMP_PREFIX}{:016x}", u64::from_ne_bytes(random));
        let name = CString::new(name).map_err(io::Error::other)?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        match sys::openat(dir.as_fd(), &name, flags, mode) {
            Ok(fd) => {
                // The lock marks the file as in use for as long as any
                // descriptor of it is open, and the kernel drops it when
                // this process dies: a sweep removes only hidden files
                // nobody holds (`abandoned`). Never waited for: only
                // someone else opening our brand-new file could hold it
                // (a local user watching the directory), and that must not
                // stall the thread; the file then stays theirs to hold, and
                // the sweep's age guard still protects it while it
                // changes. A filesystem without locks refuses it; its
                // leftovers are never swept, as a sweep cannot lock either.
                let _ = sys::try_lock(fd.as_fd());
                return Ok((File::from(fd), name));
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// A temporary file waiting to be renamed to its final name.
pub(crate) struct Aside {
    /// The parent directory (opened beneath the root); both names are in it.
    pub dir: OwnedFd,
    pub temp: CString,
    pub name: CString,
    /// `CreateNew`: the final name must not exist at commit either.
    pub exclusive: bool,
    /// [`FsOptions::keep_partial_uploads`](crate::FsOptions).
    pub keep_partial: bool,
}

impl Aside {
    /// Moves the temporary file to its final name.
    fn publish(&self) -> io::Result<()> {
        if self.exclusive {
            sys::rename_noreplace(self.dir.as_fd(), &self.temp, &self.name)
        } else {
            sys::renameat(self.dir.as_fd(), &self.temp, self.dir.as_fd(), &self.name)
        }
    }

    /// Removes the temporary file, then closes it: while it has its hidden
    /// name the open file holds the lock that tells a sweep it is in use
    /// (see `abandoned`).
    fn remove(&self, file: Option<File>) -> io::Result<()> {
        let removed = sys::unlinkat(self.dir.as_fd(), &self.temp, false);
        drop(file);
        removed
    }

    /// Abort or drop without commit: remove the temporary file, or with
    /// `keep_partial` publish what arrived so the client can resume it
    /// (first writing what still waits in a direct-I/O chunk, then giving
    /// back the space reserved past its end, when `trim`; best effort, a
    /// failed write leaves a shorter file that is still a prefix of what
    /// was sent).
    fn abandon(&self, mut file: Option<File>, trim: bool, staged: Option<AlignedChunk>) -> io::Result<()> {
        if let (true, Some(file)) = (self.keep_partial, file.as_mut()) {
            if let Some(chunk) = &staged {
                let _ = direct_io::write_tail(file, chunk.data());
            }
            if trim {
                let _ = trim_reserved(file);
            }
        }
        if self.keep_partial && self.publish().is_ok() {
            // `file` closes on return, after the rename.
            return Ok(());
        }
        self.remove(file)
    }
}

/// Where the bytes of an upload go.
pub(crate) enum Placement {
    Aside(Aside),
    /// Into the target itself.
    InPlace(InPlace),
}

pub(crate) struct InPlace {
    /// The parent directory: synced under `FileAndDirectory` (the file may
    /// have been created), and where a created file is removed by discard.
    pub dir: OwnedFd,
    pub name: CString,
    /// The file's length when writing began (what discard cuts back to).
    pub start: u64,
    /// The upload created the file (discard removes it).
    pub created: bool,
}

impl InPlace {
    /// Undoes the upload: back to `start` bytes, or no file if it was new.
    fn undo(&self, file: Option<File>) -> io::Result<()> {
        if self.created {
            drop(file);
            return match sys::unlinkat(self.dir.as_fd(), &self.name, false) {
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
                other => other,
            };
        }
        match file {
            Some(file) => file.set_len(self.start),
            None => Err(io::Error::other("upload file was lost")),
        }
    }
}

/// Disk space reserved ahead of a new file's writes
/// ([`FsOptions::upload_preallocation`](crate::FsOptions)). Best effort: a
/// filesystem without fallocate, or a full disk, stops the reserving and
/// the writes themselves then tell the real story.
#[derive(Debug, Clone, Copy)]
struct Preallocation {
    step: u64,
    /// Every byte below this is written or reserved. It starts at one step
    /// so that an upload smaller than a step reserves nothing, and grows
    /// only when a reservation succeeds.
    reserved_to: u64,
    stopped: bool,
}

impl Preallocation {
    fn new(step: u64) -> Option<Preallocation> {
        (step > 0).then_some(Preallocation {
            step,
            reserved_to: step,
            stopped: false,
        })
    }

    /// Before bytes up to `end` are written: reserves up to the next step
    /// boundary past it when they reach beyond what is reserved.
    fn make_room(&mut self, file: &File, end: u64) {
        if !self.needs_room(end) {
            return;
        }
        let to = end.div_ceil(self.step).saturating_mul(self.step);
        match sys::reserve_space(file.as_fd(), self.reserved_to, to - self.reserved_to) {
            Ok(()) => self.reserved_to = to,
            Err(_) => self.stopped = true,
        }
    }

    /// Whether writing bytes up to `end` needs a reservation first.
    fn needs_room(&self, end: u64) -> bool {
        !self.stopped && end > self.reserved_to
    }

    /// Something was reserved: the file may hold blocks past its end.
    fn reserved_any(&self) -> bool {
        self.reserved_to > self.step
    }
}

/// Gives back the blocks reserved past the file's end: truncating a file
/// to its own length frees them and leaves every byte as it is. (The
/// length comes from the file, not from a byte count, so a failed write
/// can never turn into a hole of zeros here.)
fn trim_reserved(file: &File) -> io::Result<()> {
    let len = file.metadata()?.len();
    file.set_len(len)
}

/// A chunk written on the blocking pool, handed back with the file.
struct Written {
    file: File,
    buf: Chunk,
    result: io::Result<()>,
}

/// The buffer of a chunk in flight, to reuse once it is written.
enum Chunk {
    /// A copy made on a current-thread runtime.
    Copied(Vec<u8>),
    /// A direct-I/O chunk.
    Aligned(AlignedChunk),
}

/// Whether this upload writes past the page cache (see [`direct_io`]).
enum DirectIo {
    /// Never: in-place uploads, the option turned off, or a filesystem
    /// that refused O_DIRECT.
    Off,
    /// Buffered (or spliced) until the file holds this many bytes.
    After(u64),
    /// O_DIRECT is on: data collects in `staged`, and each full chunk is
    /// written on the blocking pool while the next one fills. `spare` is
    /// the other chunk whenever no write holds it.
    On {
        staged: AlignedChunk,
        spare: Option<AlignedChunk>,
    },
}

pub(crate) struct FsUpload {
    /// `None` while a chunk is in flight (the blocking task holds it).
    file: Option<File>,
    in_flight: Option<JoinHandle<Written>>,
    /// The buffer the next chunk is copied into.
    spare: Vec<u8>,
    written: u64,
    /// A write failed: the file has a hole, so nothing may follow.
    failed: bool,
    /// `None` once committed or aborted, so `Drop` knows there is nothing
    /// to clean up.
    placement: Option<Placement>,
    durability: Durability,
    /// The target's busy mark, released when this upload is finished with.
    busy: Option<busy::Guard>,
    /// New files only (an in-place upload writes after its offset into a
    /// file whose blocks are not ours to trim).
    prealloc: Option<Preallocation>,
    /// New files only, like `prealloc`.
    direct: DirectIo,
}

impl FsUpload {
    pub(crate) fn new(file: File, placement: Placement, durability: Durability, busy: busy::Guard) -> FsUpload {
        FsUpload {
            busy: Some(busy),
            file: Some(file),
            in_flight: None,
            spare: Vec::new(),
            written: 0,
            failed: false,
            placement: Some(placement),
            durability,
            prealloc: None,
            direct: DirectIo::Off,
        }
    }

    /// Writes past the page cache once the file holds `after` bytes (0:
    /// never). Only for a file this upload created, written from offset 0.
    pub(crate) fn direct_io_after(mut self, after: u64) -> FsUpload {
        self.direct = match after {
            0 => DirectIo::Off,
            n => DirectIo::After(n),
        };
        self
    }

    /// Reserves disk space ahead of the writes in steps of `step` bytes (0:
    /// never). Only for a file this upload created, written from offset 0.
    pub(crate) fn preallocating(mut self, step: u64) -> FsUpload {
        self.prealloc = Preallocation::new(step);
        self
    }

    /// Whether the file may hold reserved blocks past its end.
    fn has_reserved(&self) -> bool {
        self.prealloc.is_some_and(|p| p.reserved_any())
    }

    fn poisoned() -> StorageError {
        StorageError::new(ErrorKind::Local, "an earlier write of this upload failed")
    }

    /// Waits for the chunk in flight, if any, and takes the file back.
    async fn settle(&mut self) -> Result<()> {
        if let Some(handle) = self.in_flight.as_mut() {
            // Awaited in place, not taken: if this future is dropped, the
            // chunk stays tracked and the next call waits for it again.
            let joined = handle.await;
            self.in_flight = None;
            match joined {
                Ok(done) => {
                    self.file = Some(done.file);
                    match done.buf {
                        Chunk::Copied(buf) => self.spare = buf,
                        Chunk::Aligned(mut chunk) => {
                            chunk.clear();
                            if let DirectIo::On { spare, .. } = &mut self.direct {
                                *spare = Some(chunk);
                            }
                        }
                    }
                    if let Err(e) = done.result {
                        self.failed = true;
                        return Err(e.into());
                    }
                }
                Err(e) => {
                    self.failed = true;
                    return Err(StorageError::new(
                        ErrorKind::Local,
                        format!("upload write task failed: {e}"),
                    ));
                }
            }
        }
        if self.failed {
            return Err(Self::poisoned());
        }
        Ok(())
    }

    fn file_gone() -> StorageError {
        // Only a panic in a write task can lose the file.
        StorageError::new(ErrorKind::Local, "upload file was lost")
    }

    fn take_file(&mut self) -> Result<File> {
        self.file.take().ok_or_else(Self::file_gone)
    }

    /// The direct-I/O chunk still to be written, if it holds anything.
    fn take_staged(&mut self) -> Option<AlignedChunk> {
        match std::mem::replace(&mut self.direct, DirectIo::Off) {
            DirectIo::On { staged, .. } if !staged.is_empty() => Some(staged),
            _ => None,
        }
    }

    /// Writes through the page cache: inline on the server's runtime, or
    /// copied and handed to the blocking pool (see the module docs).
    async fn write_buffered(&mut self, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if on_multi_thread_runtime() {
            self.settle().await?;
            let file = self.file.as_mut().ok_or_else(Self::file_gone)?;
            let end = self.written + data.len() as u64;
            let prealloc = &mut self.prealloc;
            let written = tokio::task::block_in_place(|| {
                if let Some(p) = prealloc {
                    p.make_room(file, end);
                }
                file.write_all(data)
            });
            if let Err(e) = written {
                self.failed = true;
                return Err(e.into());
            }
            self.written += data.len() as u64;
            return Ok(());
        }
        // Copy first, while the previous chunk is still being written.
        let mut buf = std::mem::take(&mut self.spare);
        buf.clear();
        buf.extend_from_slice(data);
        self.settle().await?;
        let mut file = self.take_file()?;
        self.written += data.len() as u64;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let result = file.write_all(&buf);
            Written {
                file,
                buf: Chunk::Copied(buf),
                result,
            }
        }));
        Ok(())
    }

    /// At a block boundary past the threshold: O_DIRECT on, or off for
    /// good if the filesystem refuses it.
    async fn start_direct_io(&mut self) -> Result<()> {
        self.settle().await?;
        let file = self.file.as_ref().ok_or_else(Self::file_gone)?;
        self.direct = match sys::set_direct_io(file.as_fd(), true) {
            Ok(()) => DirectIo::On {
                staged: AlignedChunk::new(),
                spare: Some(AlignedChunk::new()),
            },
            Err(_) => DirectIo::Off,
        };
        Ok(())
    }

    /// Collects `data` into the direct-I/O chunk, handing each full one to
    /// the blocking pool. Disk space is not reserved ahead here: a direct
    /// write allocates its blocks itself, with none of the page accounting
    /// reserving saves.
    async fn write_staged(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let DirectIo::On { staged, .. } = &mut self.direct else {
                return self.write_buffered(data).await;
            };
            let n = staged.fill_from(data);
            data = &data[n..];
            self.staged_grew(n).await?;
        }
        Ok(())
    }

    /// `n` more bytes are in the direct-I/O chunk: they count as written,
    /// and a full chunk goes to the disk.
    async fn staged_grew(&mut self, n: usize) -> Result<()> {
        self.written += n as u64;
        if matches!(&self.direct, DirectIo::On { staged, .. } if staged.is_full()) {
            self.flush_staged().await?;
        }
        Ok(())
    }

    /// Writes the full chunk on the blocking pool once the previous one is
    /// written, and goes on filling the other.
    async fn flush_staged(&mut self) -> Result<()> {
        self.settle().await?;
        let DirectIo::On { staged, spare } = &mut self.direct else {
            return Ok(());
        };
        let next = spare.take().unwrap_or_else(AlignedChunk::new);
        let full = std::mem::replace(staged, next);
        let mut file = self.take_file()?;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let result = direct_io::write_chunk(&mut file, full.data());
            Written {
                file,
                buf: Chunk::Aligned(full),
                result,
            }
        }));
        Ok(())
    }
}

/// Whether `block_in_place` may be used here.
fn on_multi_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
}

/// Writes what waits in the direct-I/O chunk, makes the upload durable as
/// configured and visible under its name.
fn finish(
    mut file: File,
    staged: Option<AlignedChunk>,
    placement: Placement,
    durability: Durability,
    trim: bool,
) -> io::Result<()> {
    let tail_written = staged.map_or(Ok(()), |chunk| direct_io::write_tail(&mut file, chunk.data()));
    match placement {
        Placement::Aside(aside) => {
            let published = (|| {
                tail_written?;
                if trim {
                    trim_reserved(&file)?;
                }
                if durability != Durability::None {
                    file.sync_data()?;
                }
                aside.publish()
            })();
            if let Err(e) = published {
                // Never leave a hidden file behind.
                let _ = aside.remove(Some(file));
                return Err(e);
            }
            // Closed after the rename, not before: under its hidden name the
            // file must hold its lock (see `abandoned`).
            drop(file);
            if durability == Durability::FileAndDirectory {
                sync_dir(&aside.dir)?;
            }
            Ok(())
        }
        Placement::InPlace(target) => {
            tail_written?;
            if durability != Durability::None {
                file.sync_data()?;
            }
            if durability == Durability::FileAndDirectory {
                sync_dir(&target.dir)?;
            }
            Ok(())
        }
    }
}

/// fsync of a directory, so a rename or a creation in it survives a crash.
/// `dir` may be an O_PATH descriptor, which fsync refuses, hence the reopen.
fn sync_dir(dir: &OwnedFd) -> io::Result<()> {
    let fd = sys::openat(dir.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    File::from(fd).sync_all()
}

#[async_trait]
impl Upload for FsUpload {
    async fn write_all(&mut self, mut data: &[u8]) -> Result<()> {
        if self.failed {
            return Err(Self::poisoned());
        }
        if let DirectIo::After(after) = self.direct {
            // Buffered up to the first block boundary at or past the
            // threshold, direct from there.
            let switch_at = direct_io::align_up(after.max(self.written));
            let head = switch_at - self.written;
            if data.len() as u64 >= head {
                let (buffered, rest) = data.split_at(head as usize);
                self.write_buffered(buffered).await?;
                self.start_direct_io().await?;
                data = rest;
            }
        }
        match self.direct {
            DirectIo::On { .. } => self.write_staged(data).await,
            _ => self.write_buffered(data).await,
        }
    }

    fn writes_locally(&self) -> bool {
        true
    }

    fn direct_fd(&self) -> Option<RawFd> {
        // Only between chunks on the server's runtime (no write in flight),
        // not for O_APPEND files, which splice(2) refuses, and not once the
        // upload writes past the page cache: splice's pipe pages cannot be
        // written with O_DIRECT (their offsets are the network's), so the
        // server goes on through `write_all` from there.
        let direct_io = match self.direct {
            DirectIo::Off => false,
            DirectIo::After(after) => self.written >= after,
            DirectIo::On { .. } => true,
        };
        if self.failed || direct_io || self.in_flight.is_some() || !on_multi_thread_runtime() {
            return None;
        }
        let fd = self.file.as_ref()?.as_raw_fd();
        // SAFETY: F_GETFL on a descriptor this upload owns.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        (flags >= 0 && flags & libc::O_APPEND == 0).then_some(fd)
    }

    fn direct_reserve(&mut self, n: u64) -> Result<()> {
        if self.failed {
            return Err(Self::poisoned());
        }
        // The batch is written next (direct_fd is only offered on the
        // server's runtime, where block_in_place works).
        if let (Some(p), Some(file)) = (self.prealloc.as_mut(), self.file.as_ref()) {
            let end = self.written + n;
            if p.needs_room(end) {
                tokio::task::block_in_place(|| p.make_room(file, end));
            }
        }
        self.written += n;
        Ok(())
    }

    fn direct_failed(&mut self) {
        self.failed = true;
    }

    fn buffer(&mut self) -> Option<&mut [u8]> {
        // A full chunk (its write waits for the previous one, and that wait
        // was cut short) goes out through the next `write_all`.
        match &mut self.direct {
            DirectIo::On { staged, .. } if !self.failed && !staged.is_full() => Some(staged.room()),
            _ => None,
        }
    }

    async fn buffer_filled(&mut self, n: usize) -> Result<()> {
        if self.failed {
            return Err(Self::poisoned());
        }
        let DirectIo::On { staged, .. } = &mut self.direct else {
            return Err(StorageError::new(ErrorKind::Local, "the upload has no buffer"));
        };
        staged.filled(n);
        self.staged_grew(n).await
    }

    async fn commit(mut self: Box<Self>) -> Result<u64> {
        self.settle().await?;
        let file = self.take_file()?;
        let staged = self.take_staged();
        let placement = self
            .placement
            .take()
            .ok_or_else(|| StorageError::new(ErrorKind::Local, "upload already finished"))?;
        let durability = self.durability;
        let trim = self.has_reserved();
        // From here `finish` cleans up after itself, even if this future is
        // dropped (a blocking task runs to its end).
        blocking(move || finish(file, staged, placement, durability, trim).map_err(StorageError::from)).await?;
        Ok(self.written)
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        // Let the chunk in flight land: in-place modes keep what was sent.
        let _ = self.settle().await;
        let file = self.file.take();
        let staged = self.take_staged();
        let placement = self.placement.take();
        let trim = self.has_reserved();
        blocking(move || match placement {
            Some(Placement::Aside(aside)) => aside.abandon(file, trim, staged).map_err(StorageError::from),
            _ => Ok(()),
        })
        .await
    }

    /// Nothing stays, whatever `keep_partial_uploads` says.
    async fn discard(mut self: Box<Self>) -> Result<()> {
        let _ = self.settle().await;
        let file = self.file.take();
        let placement = self.placement.take();
        blocking(move || {
            let undone = match placement {
                Some(Placement::Aside(aside)) => aside.remove(file),
                Some(Placement::InPlace(target)) => target.undo(file),
                None => Ok(()),
            };
            undone.map_err(StorageError::from)
        })
        .await
    }
}

impl Drop for FsUpload {
    /// Dropped without commit or abort (a lost connection, a cancelled
    /// task): the upload is aborted. Removing the temporary name right away
    /// is safe even with a chunk still in flight: that write lands in the
    /// unlinked file, which the kernel frees when the task closes it.
    fn drop(&mut self) {
        let busy = self.busy.take();
        let Some(Placement::Aside(aside)) = self.placement.take() else {
            return;
        };
        // With a chunk in flight (current-thread runtimes, or a direct-I/O
        // chunk) the file is not here: a kept partial file then keeps its
        // reserved blocks and ends with that chunk, without what was
        // collected after it (still a prefix of what was sent).
        let file = self.file.take();
        let staged = self.take_staged();
        let trim = self.has_reserved();
        // The target stays busy until its clean-up (which may publish the
        // partial file) is done.
        let cleanup = move || {
            let _ = aside.abandon(file, trim, staged);
            drop(busy);
        };
        // unlink can block (freeing a large file's blocks): keep it off the
        // async threads when there is a runtime.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(cleanup)),
            Err(_) => cleanup(),
        }
    }
}
