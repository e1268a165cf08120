//! Turning an [`FtpPath`] into what the system calls take: a path relative
//! to the user's root (for openat2) or a parent path plus a final name (for
//! the `*at` calls that act on a name in a directory).

use std::ffi::{CStr, CString};

use ftp_storage::{ErrorKind, FtpPath, Result, StorageError};

/// The name prefix of the backend's own temporary upload files. Such names
/// never appear in listings, and clients cannot name them (so they can
/// neither read nor clobber another session's upload in progress).
pub(crate) const TEMP_PREFIX: &str = ".ferroftp-upload.";

/// Whether `name` is one of the backend's temporary upload names.
pub(crate) fn is_temp_name(name: &CStr) -> bool {
    name.to_bytes().starts_with(TEMP_PREFIX.as_bytes())
}

fn c_string(s: String) -> Result<CString> {
    // FtpPath refuses NUL already; this keeps the invariant local.
    CString::new(s).map_err(|_| StorageError::new(ErrorKind::NameNotAllowed, "NUL in a name"))
}

fn check(name: &str) -> Result<()> {
    if name.starts_with(TEMP_PREFIX) {
        return Err(StorageError::new(
            ErrorKind::NameNotAllowed,
            format!("{name:?} is reserved for uploads in progress"),
        ));
    }
    Ok(())
}

/// `path` relative to the root, `.` for the root itself.
pub(crate) fn relative(path: &FtpPath) -> Result<CString> {
    let mut out = String::with_capacity(path.as_str().len());
    for name in path.components() {
        check(name)?;
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(name);
    }
    if out.is_empty() {
        out.push('.');
    }
    c_string(out)
}

/// The parent of `path` relative to the root, and the final name. The root
/// has no name: operations on it are refused.
pub(crate) fn split(path: &FtpPath) -> Result<(CString, CString)> {
    let name = path.file_name().ok_or_else(|| {
        StorageError::new(
            ErrorKind::PermissionDenied,
            "the root directory itself cannot be changed",
        )
    })?;
    check(name)?;
    Ok((relative(&path.parent())?, c_string(name.to_string())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> FtpPath {
        FtpPath::root().resolve(s.as_bytes()).expect("valid path")
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative(&p("/")).unwrap().as_bytes(), b".");
        assert_eq!(relative(&p("/a/b")).unwrap().as_bytes(), b"a/b");
    }

    #[test]
    fn split_paths() {
        let (parent, name) = split(&p("/a/b/c")).unwrap();
        assert_eq!((parent.as_bytes(), name.as_bytes()), (&b"a/b"[..], &b"c"[..]));
        let (parent, name) = split(&p("/c")).unwrap();
        assert_eq!((parent.as_bytes(), name.as_bytes()), (&b"."[..], &b"c"[..]));
        assert_eq!(split(&p("/")).unwrap_err().kind, ErrorKind::PermissionDenied);
    }

    #[test]
    fn temp_names_are_reserved() {
        let reserved = format!("/d/{TEMP_PREFIX}0123");
        assert_eq!(split(&p(&reserved)).unwrap_err().kind, ErrorKind::NameNotAllowed);
        let inside = format!("/{TEMP_PREFIX}x/f");
        assert_eq!(relative(&p(&inside)).unwrap_err().kind, ErrorKind::NameNotAllowed);
    }
}
