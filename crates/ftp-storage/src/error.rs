//! Storage errors. Each kind says which reply the server sends for it, so
//! the same failure always gets the same code (the mapping itself lives in
//! one function in the server).

use std::fmt;
use std::io;

/// What went wrong, at the level a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 550: no such file or directory.
    NotFound,
    /// 550: the user or the filesystem does not allow it.
    PermissionDenied,
    /// 550: a file where a directory was needed.
    NotADirectory,
    /// 550: a directory where a file was needed.
    IsADirectory,
    /// 550: the target name exists already.
    AlreadyExists,
    /// 550 "Directory not empty".
    DirectoryNotEmpty,
    /// 553: a name the storage cannot hold or the site denies.
    NameNotAllowed,
    /// 550: a restart offset beyond the end of the file.
    InvalidOffset,
    /// 450: the file is busy (another session is uploading it).
    Busy,
    /// 450: the storage is temporarily unavailable (throttled, timed out).
    TemporarilyUnavailable,
    /// 452: no space left on the device or quota of the filesystem.
    InsufficientStorage,
    /// 552: the user's quota or the maximum file size would be exceeded.
    QuotaExceeded,
    /// 502: the backend does not support this operation (see its
    /// capabilities).
    Unsupported,
    /// 451: any other local error.
    Local,
}

/// A storage failure: a kind and a message for the log (never sent to the
/// client verbatim, which gets the kind's fixed text).
#[derive(Debug)]
pub struct StorageError {
    pub kind: ErrorKind,
    pub message: String,
}

impl StorageError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StorageError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for StorageError {}

impl From<io::Error> for StorageError {
    /// The one place where operating-system errors become storage kinds.
    fn from(e: io::Error) -> Self {
        let kind = match e.raw_os_error() {
            Some(libc_codes::ENOENT) => ErrorKind::NotFound,
            Some(libc_codes::EACCES | libc_codes::EPERM | libc_codes::EROFS) => ErrorKind::PermissionDenied,
            // ELOOP and EXDEV come from RESOLVE_BENEATH when a path tries to
            // leave the root: refused as permission denied (550), the same
            // answer as any other refusal.
            Some(libc_codes::ELOOP | libc_codes::EXDEV) => ErrorKind::PermissionDenied,
            Some(libc_codes::ENOTDIR) => ErrorKind::NotADirectory,
            Some(libc_codes::EISDIR) => ErrorKind::IsADirectory,
            Some(libc_codes::EEXIST) => ErrorKind::AlreadyExists,
            Some(libc_codes::ENOTEMPTY) => ErrorKind::DirectoryNotEmpty,
            Some(libc_codes::ENAMETOOLONG | libc_codes::EINVAL | libc_codes::EILSEQ) => ErrorKind::NameNotAllowed,
            Some(libc_codes::ENOSPC | libc_codes::EDQUOT) => ErrorKind::InsufficientStorage,
            Some(libc_codes::EFBIG) => ErrorKind::QuotaExceeded,
            Some(libc_codes::EBUSY | libc_codes::ETXTBSY) => ErrorKind::Busy,
            Some(libc_codes::EAGAIN | libc_codes::ETIMEDOUT) => ErrorKind::TemporarilyUnavailable,
            _ => match e.kind() {
                io::ErrorKind::NotFound => ErrorKind::NotFound,
                io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                io::ErrorKind::Unsupported => ErrorKind::Unsupported,
                _ => ErrorKind::Local,
            },
        };
        StorageError::new(kind, e.to_string())
    }
}

/// Linux errno values, named here so this crate needs no libc dependency.
mod libc_codes {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const EAGAIN: i32 = 11;
    pub const EACCES: i32 = 13;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const EXDEV: i32 = 18;
    pub const ENOTDIR: i32 = 20;
    pub const EISDIR: i32 = 21;
    pub const EINVAL: i32 = 22;
    pub const ETXTBSY: i32 = 26;
    pub const EFBIG: i32 = 27;
    pub const ENOSPC: i32 = 28;
    pub const EROFS: i32 = 30;
    pub const ENAMETOOLONG: i32 = 36;
    pub const ENOTEMPTY: i32 = 39;
    pub const ELOOP: i32 = 40;
    pub const EILSEQ: i32 = 84;
    pub const ETIMEDOUT: i32 = 110;
    pub const EDQUOT: i32 = 122;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping() {
        let k = |n| StorageError::from(io::Error::from_raw_os_error(n)).kind;
        assert_eq!(k(2), ErrorKind::NotFound);
        assert_eq!(k(39), ErrorKind::DirectoryNotEmpty);
        assert_eq!(k(28), ErrorKind::InsufficientStorage);
        assert_eq!(k(122), ErrorKind::InsufficientStorage);
        assert_eq!(k(40), ErrorKind::PermissionDenied);
        assert_eq!(k(5), ErrorKind::Local);
    }
}
