//! Directory listings as a stream: the directory is read with getdents64 in
//! batches of [`BATCH`] entries per blocking call, each entry described with
//! lstat semantics, so a listing of any size holds at most two batches in
//! memory (one read ahead) and costs a thread hop per batch rather than per
//! entry.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{mpsc, Arc, Mutex};

use async_trait::async_trait;
use ftp_storage::{DirEntry, DirStream, EntryKind, ErrorKind, Facts, Result, StorageError};

use crate::abandoned::Sweep;
use crate::{names, sys};

/// Entries described per blocking call. Each batch costs two trips to the
/// blocking pool (the batch and the helper for its back half) and their
/// wake-ups: with 512, a LIST of 50,000 made 994 futex calls and took
/// 0.062-0.083 s with curl (median of 15, three rounds); with 2,048, 245
/// futex calls and 0.058-0.066 s. Larger batches gained nothing more. A
/// batch is about 190 KiB (a 64-byte entry and its name's allocation each),
/// so the two held (one read ahead) stay under 400 KiB.
pub(crate) const BATCH: usize = 2048;

/// getdents64 buffer: holds a few hundred typical records per call.
const BUFFER: usize = 32 * 1024;

/// The facts of a `stat` result, as listings show them.
pub(crate) fn facts(st: &sys::Stat) -> Facts {
    let kind = if st.is_dir() {
        EntryKind::Dir
    } else if st.is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::File
    };
    Facts {
        kind,
        size: st.size,
        modified: Some(st.mtime),
        mode: Some(st.mode & 0o7777),
    }
}

/// Reads one directory; lives on the blocking pool while a batch is read.
pub(crate) struct DirReader {
    /// Shared with the helper thread that describes half of each batch.
    dir: Arc<OwnedFd>,
    buf: Vec<u8>,
    /// Bytes of `buf` filled by the last getdents64, and how many of them
    /// were turned into entries already.
    filled: usize,
    consumed: usize,
    eof: bool,
    /// What becomes of the abandoned uploads met in the directory
    /// ([`FsOptions::abandoned_upload_age`](crate::FsOptions)); `None`:
    /// they stay.
    sweep: Option<Sweep>,
}

impl DirReader {
    /// `dir` must be opened O_RDONLY | O_DIRECTORY.
    pub(crate) fn new(dir: OwnedFd, sweep: Option<Sweep>) -> DirReader {
        DirReader {
            dir: Arc::new(dir),
            buf: vec![0; BUFFER],
            filled: 0,
            consumed: 0,
            eof: false,
            sweep,
        }
    }

    /// The entries for the next `max` names of the directory; fewer at the
    /// end, and fewer (even none) when names are hidden or vanished.
    pub(crate) fn next_batch(&mut self, max: usize) -> io::Result<Vec<DirEntry>> {
        let names = self.next_names(max)?;
        describe_all(&self.dir, names)
    }

    /// Up to `max` names a listing may show (see [`visible`]).
    pub(crate) fn next_names(&mut self, max: usize) -> io::Result<Vec<CString>> {
        let mut out = Vec::with_capacity(max.min(BATCH));
        while out.len() < max {
            if self.consumed >= self.filled {
                if self.eof {
                    break;
                }
                self.filled = sys::getdents64(self.dir.as_fd(), &mut self.buf)?;
                self.consumed = 0;
                if self.filled == 0 {
                    self.eof = true;
                    break;
                }
            }
            // A batch may end in the middle of a buffer: resume where the
            // last record taken ended.
            let rest = &self.buf[self.consumed..self.filled];
            let mut used = 0;
            for entry in sys::dirents(rest) {
                used = entry.end;
                if visible(entry.name) {
                    out.push(entry.name.to_owned());
                    if out.len() == max {
                        break;
                    }
                } else if let Some(sweep) = self.sweep.as_mut().filter(|_| names::is_temp_name(entry.name)) {
                    sweep.meet(self.dir.as_fd(), entry.name);
                }
            }
            if used == 0 {
                // Nothing parseable left in this buffer: read the next one.
                used = rest.len();
            }
            self.consumed += used;
        }
        Ok(out)
    }

    pub(crate) fn at_end(&self) -> bool {
        self.eof && self.consumed >= self.filled
    }
}

/// Whether a listing shows `name`. Hidden: `.` and `..`, the backend's
/// temporary uploads, names that are not UTF-8 or contain the control
/// characters FtpPath refuses (no client path can name them, and a CR/LF in
/// a name would forge lines in a LIST reply).
fn visible(name: &CStr) -> bool {
    let Ok(text) = name.to_str() else {
        return false;
    };
    !(text == "." || text == ".." || names::is_temp_name(name) || text.bytes().any(|b| b < 0x20 || b == 0x7F))
}

/// Batches at least this long are described by two threads.
const SPLIT_AT: usize = 64;

/// The entries for `names`, in their order. The lstat of each name is most
/// of a listing's cost (the kernel's dentry lookup and inode read), so a
/// long batch is split: a second blocking thread describes the back half
/// while this one does the front. If the pool has no thread free for the
/// helper, this thread takes the back half back and does it itself, so a
/// busy pool can only make a listing slower, never stall it.
fn describe_all(dir: &Arc<OwnedFd>, mut names: Vec<CString>) -> io::Result<Vec<DirEntry>> {
    let runtime = tokio::runtime::Handle::try_current().ok();
    let Some(runtime) = runtime.filter(|_| names.len() >= SPLIT_AT) else {
        return describe_each(dir.as_fd(), names);
    };
    let back = Arc::new(Mutex::new(Some(names.split_off(names.len() / 2))));
    let (done, result) = mpsc::sync_channel(1);
    {
        let back = Arc::clone(&back);
        let dir = Arc::clone(dir);
        runtime.spawn_blocking(move || {
            let taken = back.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(names) = taken {
                // The receiver only goes away after an error of its own.
                let _ = done.send(describe_each(dir.as_fd(), names));
            }
        });
    }
    let front = describe_each(dir.as_fd(), names);
    let not_started = back.lock().unwrap_or_else(|e| e.into_inner()).take();
    // Taken either way: after an error the helper, if it has not started,
    // finds nothing to do.
    let mut entries = front?;
    let rest = match not_started {
        Some(names) => describe_each(dir.as_fd(), names),
        None => result
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("directory listing helper thread died"))),
    }?;
    entries.extend(rest);
    Ok(entries)
}

fn describe_each(dir: BorrowedFd<'_>, names: Vec<CString>) -> io::Result<Vec<DirEntry>> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if let Some(entry) = describe(dir, name)? {
            out.push(entry);
        }
    }
    Ok(out)
}

/// The listing entry for a visible `name`, or `None` if it was removed
/// since the directory was read.
fn describe(dir: BorrowedFd<'_>, name: CString) -> io::Result<Option<DirEntry>> {
    match sys::lstatat(dir, &name) {
        Ok(st) => Ok(Some(DirEntry {
            // visible() checked it is UTF-8.
            name: name.into_string().map_err(|e| io::Error::other(e.utf8_error()))?,
            facts: facts(&st),
        })),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A batch read on the blocking pool, handing the reader back with it.
type PendingBatch = tokio::task::JoinHandle<(DirReader, io::Result<Vec<DirEntry>>)>;

/// The [`DirStream`] handed to the server. It reads one batch ahead: while
/// the server formats and sends a batch, the next one is being read (and
/// every entry lstat'ed) on the blocking pool, so on two cores the kernel's
/// directory and inode work runs beside the formatting instead of between
/// its batches. At most two batches are held.
pub(crate) struct FsDirStream {
    /// The batch being read, `None` once the directory is read to its end
    /// or a read failed.
    pending: Option<PendingBatch>,
    batch: VecDeque<DirEntry>,
}

impl FsDirStream {
    /// Starts reading the first batch at once (needs a tokio runtime).
    pub(crate) fn new(reader: DirReader) -> FsDirStream {
        FsDirStream {
            pending: Some(read_ahead(reader)),
            batch: VecDeque::new(),
        }
    }

    /// While no batch is at hand: waits for the one being read and starts
    /// the next (nothing to do while entries are left). Cancel-safe:
    /// dropped half-way, the read stays pending for the next call.
    /// A batch can come back empty without being the last (every name in
    /// it hidden or removed): then the next one is waited for.
    async fn refill(&mut self) -> Result<()> {
        while self.batch.is_empty() {
            let Some(pending) = self.pending.as_mut() else {
                return Ok(());
            };
            let joined = pending.await;
            self.pending = None;
            let (reader, batch) =
                joined.map_err(|e| StorageError::new(ErrorKind::Local, format!("directory read task failed: {e}")))?;
            let batch = batch?;
            if !reader.at_end() {
                self.pending = Some(read_ahead(reader));
            }
            // else the reader (and the directory) is closed now, not when
            // the stream is dropped.
            self.batch = VecDeque::from(batch);
        }
        Ok(())
    }
}

fn read_ahead(mut reader: DirReader) -> PendingBatch {
    tokio::task::spawn_blocking(move || {
        let batch = reader.next_batch(BATCH);
        (reader, batch)
    })
}

#[async_trait]
impl DirStream for FsDirStream {
    async fn next_entry(&mut self) -> Result<Option<DirEntry>> {
        self.refill().await?;
        Ok(self.batch.pop_front())
    }

    async fn next_entries(&mut self, out: &mut Vec<DirEntry>) -> Result<()> {
        self.refill().await?;
        out.extend(self.batch.drain(..));
        Ok(())
    }
}
