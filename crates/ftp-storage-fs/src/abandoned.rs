//! Hidden upload files that no upload owns any more.
//!
//! A `Replace` or `CreateNew` upload writes to a hidden temporary file
//! (`upload`), which its commit renames and its abort or drop removes. A
//! process that dies in between (SIGKILL, the OOM killer, a power cut, a
//! shutdown that ends before a dropped upload's clean-up ran) leaves the
//! file behind: never listed, never nameable by a client, yet it holds disk
//! space and makes its directory impossible to remove (RMD answers "not
//! empty" for a directory whose listing is empty).
//!
//! Telling such a leftover from an upload in progress must be exact, even
//! with several server processes on one tree: every upload takes an
//! exclusive `flock` on its temporary file right after creating it and
//! keeps it until after the file has lost its hidden name, and the kernel
//! drops that lock when the holder's last descriptor closes, a crash
//! included. A hidden file is abandoned when it is a regular file, unchanged for the configured age
//! (`FsOptions::abandoned_upload_age`) and its lock can be taken. The age
//! is a second guard for filesystems whose locks are local to one machine
//! (NFS mounted `nolock`), where another machine's upload could look free:
//! an upload moves bytes, which changes the file, while its transfer runs.
//!
//! The server removes leftovers where they are met, never by walking the
//! tree: a listing of their directory (`list::DirReader`) drops them as it
//! reads it, checking at most `FsOptions::abandoned_upload_checks_per_listing`
//! of them (a directory full of leftovers, or one on a filesystem that
//! refuses the unlink, costs each listing a bounded amount; a later listing
//! meets the rest), and RMD of a directory that lists empty reads it the
//! same way, without that bound (which drops them all) and tries again.
//! `ferroftp sweep` walks a whole tree once (`sweep`), for the directories
//! no client lists.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, SystemTime};

use crate::sys::{self, Lock};

/// How a reader of a directory treats the hidden upload files it meets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sweep {
    /// Removed once unchanged this long (`FsOptions::abandoned_upload_age`).
    min_age: Duration,
    /// Hidden upload files still to check: each costs a stat, and an old
    /// one an open, a lock and an unlink.
    checks_left: usize,
}

impl Sweep {
    pub(crate) fn new(min_age: Duration, checks: usize) -> Sweep {
        Sweep {
            min_age,
            checks_left: checks,
        }
    }

    /// Checks `name`, a temporary upload name in `dir`, while checks are
    /// left (removing it if abandoned); false once they are used up.
    pub(crate) fn meet(&mut self, dir: BorrowedFd<'_>, name: &CStr) -> bool {
        let Some(left) = self.checks_left.checked_sub(1) else {
            return false;
        };
        self.checks_left = left;
        remove_if_abandoned(dir, name, self.min_age);
        true
    }
}

/// Removes `name` (a temporary upload name) in `dir` if it is abandoned
/// (see the module documentation); the bytes it held if it was removed.
/// Failures to look are answered `None`: a file that cannot be checked
/// stays.
pub(crate) fn remove_if_abandoned(dir: BorrowedFd<'_>, name: &CStr, min_age: Duration) -> Option<u64> {
    let st = sys::lstatat(dir, name).ok()?;
    // The cheap check first: an upload in progress changes its file, so a
    // listing beside one costs a stat and nothing more.
    if !st.is_file() || !unchanged_for(st.mtime, min_age) {
        return None;
    }
    // O_NOFOLLOW: the name was a regular file a moment ago; if it became a
    // symlink since, nothing is opened through it. A lock needs a
    // descriptor opened for reading or writing (not O_PATH), and a
    // file_mode without read permission leaves writing.
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
    let opened = sys::openat(dir, name, flags | libc::O_RDONLY, 0)
        .or_else(|_| sys::openat(dir, name, flags | libc::O_WRONLY, 0));
    let file = opened.ok()?;
    if !matches!(sys::try_lock(file.as_fd()), Ok(Lock::Taken)) {
        return None;
    }
    // Holding the lock, no upload can own the file any more: uploads take
    // it right after creating the file and keep it to the end.
    sys::unlinkat(dir, name, false).ok()?;
    Some(st.size)
}

fn unchanged_for(mtime: SystemTime, min_age: Duration) -> bool {
    SystemTime::now().duration_since(mtime).is_ok_and(|age| age >= min_age)
}
