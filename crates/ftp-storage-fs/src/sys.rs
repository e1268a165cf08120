//! Safe wrappers around the Linux system calls this crate needs and the
//! standard library does not offer relative to a directory descriptor.
//!
//! Every wrapper takes borrowed descriptors and NUL-terminated names, checks
//! the return value and turns a failure into an `io::Error` carrying the
//! errno (which `StorageError::from` maps to a kind), so the rest of the
//! crate contains no `unsafe`. Calls interrupted by a signal are retried.

use std::ffi::{c_int, CStr};
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How every lookup below a root is resolved: never leave the starting
/// directory (no `..` above it, no absolute symlink, no symlink whose target
/// lies outside; the kernel answers EXDEV), and never follow "magic" links
/// such as /proc/self/fd/N, which can point anywhere.
const RESOLVE: u64 = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;

/// How often openat2 is retried on EAGAIN, which RESOLVE_BENEATH returns
/// when a concurrent rename elsewhere on the filesystem means the kernel
/// cannot prove a `..` stayed beneath the root (openat2(2) says: retry).
const EAGAIN_RETRIES: u32 = 16;

/// `struct open_how` from linux/openat2.h (version 0, 24 bytes). Declared
/// here because libc's is `#[non_exhaustive]` and cannot be built with a
/// literal; the layout is fixed kernel ABI.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Turns a `-1` return into the thread's errno.
fn check(ret: c_int) -> io::Result<c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Runs `f` again while it fails with EINTR.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Opens `path` (relative, may have several components) beneath `dir` with
/// openat2(2) and [`RESOLVE`]. Symlinks are followed only while they stay
/// beneath `dir`. `O_CLOEXEC` is always added; `mode` is used only with
/// `O_CREAT` (the kernel rejects a mode otherwise).
pub fn openat2(dir: BorrowedFd<'_>, path: &CStr, flags: c_int, mode: u32) -> io::Result<OwnedFd> {
    let flags = flags | libc::O_CLOEXEC;
    let how = OpenHow {
        flags: flags as u32 as u64,
        mode: if flags & libc::O_CREAT != 0 { u64::from(mode) } else { 0 },
        resolve: RESOLVE,
    };
    let mut again = 0;
    loop {
        // SAFETY: `how` is a live, initialised open_how whose size is passed
        // along; `path` is NUL-terminated and outlives the call; `dir` is an
        // open descriptor borrowed for the call. The kernel writes nothing
        // back; it returns a new descriptor (which nothing else owns) or -1.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                size_of::<OpenHow>(),
            )
        };
        if ret >= 0 {
            // SAFETY: a non-negative return is a descriptor freshly opened
            // for us; wrapping it makes it closed exactly once.
            return Ok(unsafe { OwnedFd::from_raw_fd(ret as c_int) });
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) if again < EAGAIN_RETRIES => again += 1,
            _ => return Err(err),
        }
    }
}

/// openat(2) of a single `name` in `dir` (no path walk, so no confinement
/// is needed beyond `dir` itself having been opened with [`openat2`]).
/// `O_CLOEXEC` is always added.
pub fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: c_int, mode: u32) -> io::Result<OwnedFd> {
    retry(|| {
        // SAFETY: `name` is NUL-terminated and outlives the call; `dir` is
        // open. The mode argument is read by the kernel only with O_CREAT.
        let fd = check(unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        })?;
        // SAFETY: a successful openat returns a new descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    })
}

pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call; `dir` is open.
    retry(|| check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) })).map(drop)
}

/// unlinkat(2): removes a directory entry itself, never what a symlink
/// points to. `directory` selects rmdir semantics (AT_REMOVEDIR).
pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, directory: bool) -> io::Result<()> {
    let flags = if directory { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: `name` is NUL-terminated and outlives the call; `dir` is open.
    retry(|| check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) })).map(drop)
}

/// What [`try_lock`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// The lock is ours now.
    Taken,
    /// Another open file description holds a lock on the file.
    Held,
}

/// flock(2) with LOCK_EX | LOCK_NB: takes an exclusive advisory lock if
/// no one holds one. The kernel drops it when the last descriptor of this
/// open file description closes, the process's death included.
/// Filesystems without locks fail with an error (EINVAL, ENOLCK,
/// EOPNOTSUPP), which tells nothing about the file.
pub fn try_lock(fd: BorrowedFd<'_>) -> io::Result<Lock> {
    // SAFETY: plain call on an open descriptor.
    match retry(|| check(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) })) {
        Ok(_) => Ok(Lock::Taken),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(Lock::Held),
        Err(e) => Err(e),
    }
}

/// renameat(2): replaces `to` if it exists (and is compatible).
pub fn renameat(from_dir: BorrowedFd<'_>, from: &CStr, to_dir: BorrowedFd<'_>, to: &CStr) -> io::Result<()> {
    retry(|| {
        // SAFETY: both names are NUL-terminated and outlive the call; both
        // descriptors are open.
        check(unsafe { libc::renameat(from_dir.as_raw_fd(), from.as_ptr(), to_dir.as_raw_fd(), to.as_ptr()) })
    })
    .map(drop)
}

/// Renames `from` to `to` in `dir` only if `to` does not exist (EEXIST
/// otherwise), atomically. Uses renameat2(RENAME_NOREPLACE); on a
/// filesystem without that flag (EINVAL) it falls back to link + unlink,
/// which is just as atomic about the target (link(2) never replaces).
pub fn rename_noreplace(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    let renamed = retry(|| {
        // SAFETY: both names are NUL-terminated and outlive the call; `dir`
        // is open.
        check(unsafe {
            libc::renameat2(
                dir.as_raw_fd(),
                from.as_ptr(),
                dir.as_raw_fd(),
                to.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        })
    });
    match renamed {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
            retry(|| {
                // SAFETY: as above; flags 0 means a symlink `from` is linked
                // itself, not followed.
                check(unsafe { libc::linkat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr(), 0) })
            })?;
            unlinkat(dir, from, false)
        }
        other => other.map(drop),
    }
}

/// What this crate needs from a `struct stat`.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    pub size: u64,
    pub mtime: SystemTime,
    /// Device and inode: what the file is, whatever the path to it.
    pub dev: u64,
    pub ino: u64,
}

impl Stat {
    fn file_type(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == libc::S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.file_type() == libc::S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.file_type() == libc::S_IFLNK
    }
}

fn fstatat_raw(dir: BorrowedFd<'_>, name: &CStr, flags: c_int) -> io::Result<Stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    retry(|| {
        // SAFETY: `st` points to writable memory of the size of struct stat;
        // `name` is NUL-terminated and outlives the call; `dir` is open.
        check(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), st.as_mut_ptr(), flags) })
    })?;
    // SAFETY: fstatat succeeded, so the kernel filled the whole struct.
    let st = unsafe { st.assume_init() };
    Ok(Stat {
        mode: st.st_mode,
        size: u64::try_from(st.st_size).unwrap_or(0),
        mtime: system_time(st.st_mtime, st.st_mtime_nsec),
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// lstat(2) semantics relative to `dir`: a symlink is described itself.
pub fn lstatat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Stat> {
    fstatat_raw(dir, name, libc::AT_SYMLINK_NOFOLLOW)
}

/// fstat(2) of an open descriptor, also one opened with O_PATH.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    fstatat_raw(fd, c"", libc::AT_EMPTY_PATH)
}

/// Sets the modification time of `name` in `dir` (the entry itself, a
/// symlink is not followed) and leaves the access time alone.
pub fn set_mtime_at(dir: BorrowedFd<'_>, name: &CStr, mtime: SystemTime) -> io::Result<()> {
    let (tv_sec, tv_nsec) = timespec(mtime);
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec { tv_sec, tv_nsec },
    ];
    retry(|| {
        // SAFETY: `times` is an array of two initialised timespecs as
        // utimensat expects; `name` is NUL-terminated; `dir` is open.
        check(unsafe {
            libc::utimensat(
                dir.as_raw_fd(),
                name.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    })
    .map(drop)
}

/// fchmod(2) of an open (not O_PATH) descriptor.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on an open descriptor, no memory passed.
    retry(|| check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) })).map(drop)
}

/// Turns O_DIRECT on or off for an open file (fcntl F_SETFL). A
/// filesystem that cannot write past its page cache refuses it (EINVAL).
pub fn set_direct_io(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL and F_SETFL on an open descriptor, no memory passed.
    let flags = retry(|| check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) }))?;
    let wanted = if on {
        flags | libc::O_DIRECT
    } else {
        flags & !libc::O_DIRECT
    };
    if wanted == flags {
        return Ok(());
    }
    // SAFETY: as above.
    retry(|| check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, wanted) })).map(drop)
}

/// fallocate(2) with FALLOC_FL_KEEP_SIZE: reserves disk blocks for `len`
/// bytes at `offset` without changing the file's length (what a read or
/// stat sees); blocks left past the end are freed by truncating the file
/// to its own length.
pub fn reserve_space(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()> {
    let (offset, len) = (
        libc::off_t::try_from(offset).map_err(io::Error::other)?,
        libc::off_t::try_from(len).map_err(io::Error::other)?,
    );
    // SAFETY: plain syscall on an open descriptor, no memory passed.
    retry(|| check(unsafe { libc::fallocate(fd.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len) })).map(drop)
}

/// Reads into `buf` at `offset` only what the page cache already holds
/// (preadv2(2) with RWF_NOWAIT): `WouldBlock` (EAGAIN) when the read would
/// wait for the disk; other errors include a kernel or filesystem without
/// the flag. A short count means only part was cached; 0 is the end.
pub fn pread_cached(file: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: one iovec over `buf`, exclusively borrowed for the call; the
    // kernel writes at most `buf.len()` bytes; `file` is open.
    retry(|| check_size(unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset as libc::off_t, libc::RWF_NOWAIT) }))
}

/// pread(2): up to `buf.len()` bytes at `offset`, 0 at the end.
pub fn pread(file: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`,
    // exclusively borrowed for the call; `file` is open.
    retry(|| {
        check_size(unsafe {
            libc::pread(
                file.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                offset as libc::off_t,
            )
        })
    })
}

fn check_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Reads directory entries of `dir` (opened O_RDONLY|O_DIRECTORY) into
/// `buf` with getdents64(2); returns the bytes filled, 0 at the end. Parse
/// them with [`dirents`].
pub fn getdents64(dir: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| {
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`,
        // which is exclusively borrowed for the call; `dir` is open.
        check_size(
            unsafe { libc::syscall(libc::SYS_getdents64, dir.as_raw_fd(), buf.as_mut_ptr(), buf.len()) }
                as libc::ssize_t,
        )
    })
}

/// One record of a buffer filled by [`getdents64`].
pub struct Dirent<'a> {
    /// Where the next record starts (to resume mid-buffer).
    pub end: usize,
    pub name: &'a CStr,
    /// d_type: `libc::DT_DIR`, `DT_REG`, ... or `DT_UNKNOWN` where the
    /// filesystem does not say (then lstat tells).
    pub kind: u8,
}

/// The records in a buffer filled by [`getdents64`]. Each is a
/// `struct linux_dirent64`: d_ino (u64), d_off (i64), d_reclen (u16),
/// d_type (u8), then the NUL-terminated name, padded to d_reclen. Parsed
/// with bounds checks, so a malformed buffer ends the iteration instead of
/// reading out of bounds.
pub fn dirents(buf: &[u8]) -> impl Iterator<Item = Dirent<'_>> {
    const NAME_OFFSET: usize = 19;
    let mut pos = 0;
    std::iter::from_fn(move || {
        let header = buf.get(pos..pos + NAME_OFFSET)?;
        let reclen = usize::from(u16::from_ne_bytes([header[16], header[17]]));
        let kind = header[18];
        let record = buf.get(pos..pos + reclen).filter(|_| reclen > NAME_OFFSET)?;
        pos += reclen;
        let name = CStr::from_bytes_until_nul(&record[NAME_OFFSET..]).ok()?;
        Some(Dirent { end: pos, name, kind })
    })
}

/// Fills `buf` from the kernel's random source (getrandom(2)).
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the kernel writes at most `rest.len()` bytes into `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        } else {
            filled += n as usize;
        }
    }
    Ok(())
}

fn system_time(sec: i64, nsec: i64) -> SystemTime {
    let nsec = u32::try_from(nsec).unwrap_or(0);
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec)
    } else {
        // -1.25 s is stored as sec = -2, nsec = 750_000_000.
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::new(0, nsec)
    }
}

fn timespec(t: SystemTime) -> (libc::time_t, libc::c_long) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as libc::time_t, d.subsec_nanos() as libc::c_long),
        Err(before) => {
            let d = before.duration();
            let mut sec = -(d.as_secs() as libc::time_t);
            let mut nsec = d.subsec_nanos() as libc::c_long;
            if nsec > 0 {
                sec -= 1;
                nsec = 1_000_000_000 - nsec;
            }
            (sec, nsec)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_before_and_after_the_epoch() {
        for t in [
            UNIX_EPOCH + Duration::new(981_173_106, 5),
            UNIX_EPOCH - Duration::new(1, 250_000_000),
            UNIX_EPOCH - Duration::from_secs(3),
            UNIX_EPOCH,
        ] {
            let (s, ns) = timespec(t);
            assert_eq!(system_time(s, ns), t);
        }
    }

    #[test]
    fn dirents_parse_and_stop_on_garbage() {
        let mut buf = Vec::new();
        for (name, kind) in [(&b"a"[..], libc::DT_REG), (b"longer-name", libc::DT_DIR)] {
            let reclen = (19 + name.len() + 1).next_multiple_of(8);
            let start = buf.len();
            buf.resize(start + reclen, 0);
            buf[start + 16..start + 18].copy_from_slice(&(reclen as u16).to_ne_bytes());
            buf[start + 18] = kind;
            buf[start + 19..start + 19 + name.len()].copy_from_slice(name);
        }
        let names: Vec<_> = dirents(&buf).map(|d| (d.name.to_bytes().to_vec(), d.kind)).collect();
        assert_eq!(
            names,
            vec![(b"a".to_vec(), libc::DT_REG), (b"longer-name".to_vec(), libc::DT_DIR)]
        );
        assert_eq!(dirents(&buf).last().map(|d| d.end), Some(buf.len()));
        // A record claiming to be longer than the buffer ends the walk.
        buf[16..18].copy_from_slice(&1000u16.to_ne_bytes());
        assert_eq!(dirents(&buf).count(), 0);
        assert_eq!(dirents(&buf[..10]).count(), 0);
    }
}
