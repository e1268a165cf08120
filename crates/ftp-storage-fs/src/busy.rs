//! Which files have an upload in progress, for the whole process.
//!
//! A target is keyed by the device and inode of its parent directory plus
//! its final name, not by a path: users' homes overlap (an admin rooted at
//! `/` and a user rooted at `/alice` reach the same file by two paths), a
//! directory may be reached through a symlink inside the root, or be renamed
//! while an upload in it runs. The directory's identity is the same in
//! every case, and an upload's commit renames into that very directory (it
//! holds its descriptor), so the key names exactly what the commit will
//! replace. The registry is a `static`, shared by every [`FsBackend`] and
//! every user storage in the process.
//!
//! What the key does not catch: a final name that is itself a symlink to
//! another file (the link and its target are two names), and writers
//! outside this process.
//!
//! [`FsBackend`]: crate::FsBackend

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, LazyLock};

use ftp_storage::{BusyGuard, BusyTargets};

use crate::sys;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TargetKey {
    dev: u64,
    ino: u64,
    name: CString,
}

pub(crate) type Guard = BusyGuard<TargetKey>;

static UPLOADS: LazyLock<Arc<BusyTargets<TargetKey>>> = LazyLock::new(BusyTargets::new);

fn key(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<TargetKey> {
    let st = sys::fstat(dir)?;
    Ok(TargetKey {
        dev: st.dev,
        ino: st.ino,
        name: name.to_owned(),
    })
}

/// Marks `name` in `dir` as being uploaded; `Busy` if it already is.
pub(crate) fn acquire(dir: BorrowedFd<'_>, name: &CStr) -> ftp_storage::Result<Guard> {
    UPLOADS.acquire(key(dir, name)?)
}

/// True when no upload at all is in progress: nothing can be busy.
pub(crate) fn none_in_progress() -> bool {
    UPLOADS.is_empty()
}

/// EBUSY (which maps to `Busy`, 450) when `name` in `dir` is being
/// uploaded. Free when nothing at all is being uploaded.
pub(crate) fn check(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    if UPLOADS.is_empty() {
        return Ok(());
    }
    if UPLOADS.is_busy(&key(dir, name)?) {
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    }
    Ok(())
}
