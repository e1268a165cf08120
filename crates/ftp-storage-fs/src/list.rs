//! Directory listings as a stream: the directory is read with getdents64 in
//! batches of [`BATCH`] entries per blocking call, each entry described with
//! lstat semantics, so a listing of any size holds at most one batch in
//! memory and costs one thread hop per batch rather than per entry.

use std::collections::VecDeque;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use async_trait::async_trait;
use ftp_storage::{DirEntry, DirStream, EntryKind, ErrorKind, Facts, Result, StorageError};

use crate::names::TEMP_PREFIX;
use crate::{blocking, sys};

/// Entries described per blocking call.
pub(crate) const BATCH: usize = 512;

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
    dir: OwnedFd,
    buf: Vec<u8>,
    /// Bytes of `buf` filled by the last getdents64, and how many of them
    /// were turned into entries already.
    filled: usize,
    consumed: usize,
    eof: bool,
}

impl DirReader {
    /// `dir` must be opened O_RDONLY | O_DIRECTORY.
    pub(crate) fn new(dir: OwnedFd) -> DirReader {
        DirReader {
            dir,
            buf: vec![0; BUFFER],
            filled: 0,
            consumed: 0,
            eof: false,
        }
    }

    /// Up to `max` entries; fewer only at the end of the directory.
    pub(crate) fn next_batch(&mut self, max: usize) -> io::Result<Vec<DirEntry>> {
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
            for (end, name) in sys::dirents(rest) {
                used = end;
                if let Some(entry) = describe(self.dir.as_fd(), name)? {
                    out.push(entry);
                    if out.len() == max {
                        break;
                    }
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

/// The listing entry for `name`, or `None` for entries a client must not
/// see: `.` and `..`, the backend's temporary uploads, names that are not
/// UTF-8 or contain the control characters FtpPath refuses (no client path
/// can name them, and a CR/LF in a name would forge lines in a LIST reply),
/// and entries removed since the directory was read.
fn describe(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<DirEntry>> {
    let Ok(text) = name.to_str() else {
        return Ok(None);
    };
    if text == "." || text == ".." || text.starts_with(TEMP_PREFIX) || text.bytes().any(|b| b < 0x20 || b == 0x7F) {
        return Ok(None);
    }
    match sys::lstatat(dir, name) {
        Ok(st) => Ok(Some(DirEntry {
            name: text.to_string(),
            facts: facts(&st),
        })),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The [`DirStream`] handed to the server.
pub(crate) struct FsDirStream {
    /// `None` while a batch is being read on the blocking pool (or after a
    /// read was cancelled half-way, which ends the stream with an error).
    reader: Option<DirReader>,
    batch: VecDeque<DirEntry>,
    finished: bool,
}

impl FsDirStream {
    pub(crate) fn new(reader: DirReader) -> FsDirStream {
        FsDirStream {
            reader: Some(reader),
            batch: VecDeque::new(),
            finished: false,
        }
    }
}

#[async_trait]
impl DirStream for FsDirStream {
    async fn next_entry(&mut self) -> Result<Option<DirEntry>> {
        if let Some(entry) = self.batch.pop_front() {
            return Ok(Some(entry));
        }
        if self.finished {
            return Ok(None);
        }
        let mut reader = self
            .reader
            .take()
            .ok_or_else(|| StorageError::new(ErrorKind::Local, "directory listing was interrupted"))?;
        let (reader, batch) = blocking(move || {
            let batch = reader.next_batch(BATCH);
            Ok((reader, batch))
        })
        .await?;
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                self.finished = true;
                return Err(e.into());
            }
        };
        if reader.at_end() {
            // Closes the directory now rather than when the stream is dropped.
            self.finished = true;
        } else {
            self.reader = Some(reader);
        }
        self.batch = VecDeque::from(batch);
        Ok(self.batch.pop_front())
    }
}
