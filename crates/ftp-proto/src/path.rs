//! FtpPath: the path a client names, resolved against its working directory.
//!
//! Every path reaching storage is an [`FtpPath`]: absolute, normalised (no
//! `.`, `..` or empty components), valid UTF-8 (RFC 2640), free of NUL and
//! control characters, and with `..` unable to climb above `/`. Storage
//! backends add their own confinement below this (symlinks); this type makes
//! sure the lexical path can never name anything above the user's root.

use std::fmt;

/// Longest single name, in bytes (the common filesystem limit).
pub const MAX_NAME_LEN: usize = 255;
/// Longest whole path, in bytes (Linux's PATH_MAX).
pub const MAX_PATH_LEN: usize = 4096;

/// Why a client's path was refused; the server answers 553 for all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// NUL, CR, LF or another control character (0x00-0x1F, 0x7F).
    ControlCharacter,
    /// Not UTF-8 (RFC 2640 makes UTF-8 the path encoding).
    InvalidUtf8,
    /// One name longer than [`MAX_NAME_LEN`] or the path longer than
    /// [`MAX_PATH_LEN`].
    TooLong,
    /// An empty path where a name is needed.
    Empty,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::ControlCharacter => "File name not allowed (control character)",
            PathError::InvalidUtf8 => "File name not allowed (not UTF-8)",
            PathError::TooLong => "File name not allowed (too long)",
            PathError::Empty => "File name not allowed (empty)",
        })
    }
}

impl std::error::Error for PathError {}

/// An absolute, normalised path below the user's root, such as `/` or
/// `/docs/a.txt`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FtpPath(String);

impl FtpPath {
    pub fn root() -> Self {
        FtpPath("/".to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The names from the root down, none empty, `.` or `..`.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The last name, or `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        self.components().last()
    }

    /// The parent directory; the root is its own parent.
    pub fn parent(&self) -> FtpPath {
        match self.0.rfind('/') {
            Some(0) | None => FtpPath::root(),
            Some(i) => FtpPath(self.0[..i].to_string()),
        }
    }

    /// This path with one more name below it. `name` must be a single valid
    /// name (checked by the caller, e.g. one produced by storage).
    pub fn join(&self, name: &str) -> FtpPath {
        if self.is_root() {
            FtpPath(format!("/{name}"))
        } else {
            FtpPath(format!("{}/{name}", self.0))
        }
    }

    /// Resolves a client-supplied path against this directory. Absolute
    /// arguments start at the root; `..` stops at the root.
    pub fn resolve(&self, arg: &[u8]) -> Result<FtpPath, PathError> {
        if arg.iter().any(|&b| b < 0x20 || b == 0x7F) {
            return Err(PathError::ControlCharacter);
        }
        let arg = std::str::from_utf8(arg).map_err(|_| PathError::InvalidUtf8)?;
        if arg.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        let mut parts: Vec<&str> = if arg.starts_with('/') {
            Vec::new()
        } else {
            self.components().collect()
        };
        for part in arg.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                name if name.len() > MAX_NAME_LEN => return Err(PathError::TooLong),
                name => parts.push(name),
            }
        }
        let mut out = String::with_capacity(arg.len() + self.0.len() + 1);
        for part in &parts {
            out.push('/');
            out.push_str(part);
        }
        if out.is_empty() {
            out.push('/');
        }
        if out.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        Ok(FtpPath(out))
    }

    /// Like [`resolve`](FtpPath::resolve) for an argument that must name
    /// something other than the root (a file to store, a directory to make).
    pub fn resolve_name(&self, arg: &[u8]) -> Result<FtpPath, PathError> {
        let path = self.resolve(arg)?;
        if path.is_root() {
            return Err(PathError::Empty);
        }
        Ok(path)
    }
}

impl fmt::Display for FtpPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> FtpPath {
        FtpPath::root().resolve(s.as_bytes()).unwrap()
    }

    #[test]
    fn normalises() {
        assert_eq!(p("a/b/../c/./d//").as_str(), "/a/c/d");
        assert_eq!(p("/").as_str(), "/");
        assert_eq!(p("").as_str(), "/");
        assert_eq!(p("a").resolve(b"b").unwrap().as_str(), "/a/b");
        assert_eq!(p("a/b").resolve(b"/x").unwrap().as_str(), "/x");
    }

    #[test]
    fn cannot_climb_above_root() {
        assert_eq!(p("../../etc/passwd").as_str(), "/etc/passwd");
        assert_eq!(p("a").resolve(b"../../..").unwrap().as_str(), "/");
    }

    #[test]
    fn refuses_control_characters_and_bad_utf8() {
        let r = FtpPath::root();
        assert_eq!(r.resolve(b"a\0b"), Err(PathError::ControlCharacter));
        assert_eq!(r.resolve(b"a\nb"), Err(PathError::ControlCharacter));
        assert_eq!(r.resolve(b"a\x7fb"), Err(PathError::ControlCharacter));
        assert_eq!(r.resolve(b"\xff\xfe"), Err(PathError::InvalidUtf8));
        assert_eq!(r.resolve(&[b'a'; 256]), Err(PathError::TooLong));
        assert_eq!(r.resolve_name(b".."), Err(PathError::Empty));
    }

    #[test]
    fn utf8_names_kept() {
        assert_eq!(p("données/été.txt").file_name(), Some("été.txt"));
    }

    #[test]
    fn parent_and_join() {
        assert_eq!(p("a/b").parent().as_str(), "/a");
        assert_eq!(p("a").parent().as_str(), "/");
        assert_eq!(FtpPath::root().parent().as_str(), "/");
        assert_eq!(FtpPath::root().join("x").as_str(), "/x");
        assert_eq!(p("a").join("x").as_str(), "/a/x");
        assert_eq!(FtpPath::root().file_name(), None);
    }
}
