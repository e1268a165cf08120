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
//! reads it, trying at most `FsOptions::abandoned_upload_checks_per_listing`
//! old ones (a directory full of leftovers, or one on a filesystem that
//! refuses the unlink, costs each listing a bounded amount; a later listing
//! meets the rest, and young files, which cost a stat, are not counted),
//! and RMD of a directory that lists empty reads it the
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
    /// Old hidden upload files still to try: each costs an open, a lock
    /// and an unlink. Younger ones (an upload in progress changes its file)
    /// cost a stat and are not counted, so they never hold back the rest.
    tries_left: usize,
}

impl Sweep {
    pub(crate) fn new(min_age: Duration, tries: usize) -> Sweep {
        Sweep {
            min_age,
            tries_left: tries,
        }
    }

    /// Checks `name`, a temporary upload name in `dir`, removing it if it
    /// is abandoned, while tries are left.
    pub(crate) fn meet(&mut self, dir: BorrowedFd<'_>, name: &CStr) {
        if self.tries_left == 0 {
            return;
        }
        if let Ok(Some(st)) = old_upload_file(dir, name, self.min_age) {
            self.tries_left -= 1;
            let _ = remove_if_unlocked(dir, name, &st);
        }
    }
}

/// What became of one hidden upload file.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Abandoned and removed: the bytes it held.
    Removed(u64),
    /// Left in place: an upload in progress, too recent, or gone already.
    Kept,
    /// Abandoned, but it could not be opened or removed.
    Failed(std::io::Error),
}

/// Removes `name` (a temporary upload name) in `dir` if it is abandoned
/// (see the module documentation).
pub(crate) fn remove_if_abandoned(dir: BorrowedFd<'_>, name: &CStr, min_age: Duration) -> Outcome {
    match old_upload_file(dir, name, min_age) {
        Ok(Some(st)) => remove_if_unlocked(dir, name, &st),
        Ok(None) => Outcome::Kept,
        Err(e) if gone(&e) => Outcome::Kept,
        Err(e) => Outcome::Failed(e),
    }
}

/// The cheap check first, a stat: a regular file unchanged for `min_age`.
/// An upload in progress changes its file, so a listing beside one costs
/// a stat and nothing more.
fn old_upload_file(dir: BorrowedFd<'_>, name: &CStr, min_age: Duration) -> std::io::Result<Option<sys::Stat>> {
    let st = sys::lstatat(dir, name)?;
    Ok((st.is_file() && unchanged_for(st.mtime, min_age)).then_some(st))
}

/// Takes the file's lock and, holding it, removes the file: no upload can
/// own it any more (uploads take it right after creating the file and keep
/// it to the end).
fn remove_if_unlocked(dir: BorrowedFd<'_>, name: &CStr, st: &sys::Stat) -> Outcome {
    // O_NOFOLLOW: the name was a regular file a moment ago; if it became a
    // symlink since, nothing is opened through it. A lock needs a
    // descriptor opened for reading or writing (not O_PATH), and a
    // file_mode without read permission leaves writing.
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
    let opened = sys::openat(dir, name, flags | libc::O_RDONLY, 0)
        .or_else(|_| sys::openat(dir, name, flags | libc::O_WRONLY, 0));
    let file = match opened {
        Ok(file) => file,
        Err(e) if gone(&e) => return Outcome::Kept,
        Err(e) => return Outcome::Failed(e),
    };
    // Still the file the stat saw (not another one renamed over the name
    // between the two), and still regular.
    match sys::fstat(file.as_fd()) {
        Ok(now) if now.is_file() && now.dev == st.dev && now.ino == st.ino => {}
        Ok(_) => return Outcome::Kept,
        Err(e) => return Outcome::Failed(e),
    }
    if !matches!(sys::try_lock(file.as_fd()), Ok(Lock::Taken)) {
        return Outcome::Kept;
    }
    match sys::unlinkat(dir, name, false) {
        Ok(()) => Outcome::Removed(st.size),
        Err(e) if gone(&e) => Outcome::Kept,
        Err(e) => Outcome::Failed(e),
    }
}

/// The name went away (another sweep, a listing, the upload's own end) or
/// turned into something that is not opened (a symlink).
fn gone(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ELOOP))
}

fn unchanged_for(mtime: SystemTime, min_age: Duration) -> bool {
    SystemTime::now().duration_since(mtime).is_ok_and(|age| age >= min_age)
}
