//! One walk of a whole tree for abandoned uploads (`ferroftp sweep`).
//!
//! The server removes a dead server's leftovers only where a listing or an
//! RMD meets them (`abandoned`), so a directory no client lists again keeps
//! them. An operator runs this walk over the storage root after a crash,
//! or from cron. It is safe beside running servers on the same tree: the
//! same lock and age checks decide, so no live upload's file is touched.
//!
//! The walk follows no symlink (directories are opened one name at a time
//! with `O_NOFOLLOW`) and keeps one descriptor per directory level still
//! being walked, not one per directory met (a tree deeper than the
//! process's descriptor limit reports the levels it could not open). It
//! goes into filesystems mounted under the root, as the server serves
//! them.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::abandoned::{self, Outcome};
use crate::{names, sys};

/// Errors kept word for word in a report; past these only counted.
const KEPT_ERRORS: usize = 20;

/// What a sweep found.
#[derive(Debug, Default)]
pub struct SweepReport {
    /// Directories read.
    pub directories: u64,
    /// Abandoned uploads removed, and the bytes they held.
    pub removed: u64,
    pub removed_bytes: u64,
    /// Hidden upload names left in place: an upload in progress, or one
    /// not yet unchanged for the age.
    pub kept: u64,
    /// Directories that could not be opened or read, and abandoned uploads
    /// that could not be opened or removed (a read-only filesystem, a
    /// directory the sweep's user may not write): all counted, the first
    /// few with their error.
    pub failures: u64,
    pub first_failures: Vec<(PathBuf, io::Error)>,
}

impl SweepReport {
    fn failed(&mut self, path: PathBuf, error: io::Error) {
        self.failures += 1;
        if self.first_failures.len() < KEPT_ERRORS {
            self.first_failures.push((path, error));
        }
    }
}

/// A directory still to read: its name in its parent, whose descriptor
/// and path stay (shared) while any of its subdirectories waits.
struct Pending {
    parent: Arc<OwnedFd>,
    parent_path: Arc<PathBuf>,
    name: CString,
}

impl Pending {
    fn path(&self) -> PathBuf {
        self.parent_path.join(OsStr::from_bytes(self.name.to_bytes()))
    }
}

/// Walks the tree under `root` and removes every abandoned upload in it:
/// a hidden upload file that no process holds locked and that has not
/// changed for `min_age`. Fails only when `root` itself cannot be opened;
/// directories below that cannot be read are counted in the report.
pub fn sweep_tree(root: &Path, min_age: Duration) -> io::Result<SweepReport> {
    let root_dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(root)?;
    let mut report = SweepReport::default();
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut walker = Walker {
        min_age,
        report: &mut report,
        pending: &mut pending,
        buf: &mut buf,
    };
    walker.read(Arc::new(OwnedFd::from(root_dir)), Arc::new(root.to_path_buf()));
    while let Some(next) = walker.pending.pop() {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        match sys::openat(next.parent.as_fd(), &next.name, flags, 0) {
            Ok(dir) => walker.read(Arc::new(dir), Arc::new(next.path())),
            // Gone since it was listed, or replaced by a non-directory.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)) => {}
            Err(e) => walker.report.failed(next.path(), e),
        }
    }
    Ok(report)
}

struct Walker<'a> {
    min_age: Duration,
    report: &'a mut SweepReport,
    pending: &'a mut Vec<Pending>,
    buf: &'a mut Vec<u8>,
}

impl Walker<'_> {
    /// Reads one directory: sweeps its hidden upload files and queues its
    /// subdirectories.
    fn read(&mut self, dir: Arc<OwnedFd>, path: Arc<PathBuf>) {
        self.report.directories += 1;
        loop {
            let filled = match sys::getdents64(dir.as_fd(), self.buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => return self.report.failed(path.to_path_buf(), e),
            };
            for entry in sys::dirents(&self.buf[..filled]) {
                let name = entry.name;
                if matches!(name.to_bytes(), b"." | b"..") {
                    continue;
                }
                if names::is_temp_name(name) {
                    match abandoned::remove_if_abandoned(dir.as_fd(), name, self.min_age) {
                        Outcome::Removed(bytes) => {
                            self.report.removed += 1;
                            self.report.removed_bytes += bytes;
                        }
                        Outcome::Kept => self.report.kept += 1,
                        Outcome::Failed(e) => {
                            let file = path.join(OsStr::from_bytes(name.to_bytes()));
                            self.report.failed(file, e);
                        }
                    }
                } else if is_directory(dir.as_fd(), name, entry.kind) {
                    self.pending.push(Pending {
                        parent: Arc::clone(&dir),
                        parent_path: Arc::clone(&path),
                        name: name.to_owned(),
                    });
                }
            }
        }
    }
}

/// Whether a directory entry is a directory (not a symlink to one); asks
/// lstat where the filesystem does not fill in d_type.
fn is_directory(dir: BorrowedFd<'_>, name: &CStr, kind: u8) -> bool {
    match kind {
        libc::DT_DIR => true,
        libc::DT_UNKNOWN => sys::lstatat(dir, name).is_ok_and(|st| st.is_dir()),
        _ => false,
    }
}
