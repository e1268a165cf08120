//! From [`FtpPath`] to object keys: `<prefix>/<home>/<path>`.
//!
//! Keys are built with `Path::parse`, which keeps every character as it is
//! (a name `50%.txt` is the key `.../50%.txt`, as other S3 tools would
//! write it), rather than `Path::from`, which would percent-encode some
//! characters and so disagree with the keys that listings return. An
//! [`FtpPath`] has no empty, `.` or `..` component and no control
//! character, so parsing cannot fail for it.
//!
//! A directory marker is the directory's key with a trailing `/`. An
//! object_store `Path` never ends in `/` when parsed, but `child("")`
//! appends one, which is how the marker's key is written; the unit test
//! below pins that behaviour.

use ftp_storage::{ErrorKind, FtpPath, Result, StorageError};
use object_store::path::Path;

/// S3's longest key, in bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 1024;

/// Checks a configured prefix and returns it without surrounding `/`.
pub fn normalise_prefix(prefix: &str) -> Result<String, String> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    Path::parse(trimmed).map_err(|e| format!("s3: prefix {prefix:?}: {e}"))?;
    if trimmed.split('/').any(|c| c.is_empty()) {
        return Err(format!("s3: prefix {prefix:?} has an empty component"));
    }
    Ok(trimmed.to_string())
}

/// The keys of one user's storage.
#[derive(Debug, Clone)]
pub struct Keys {
    /// `prefix/home` without surrounding `/`; empty for the bucket's root.
    base: String,
}

impl Keys {
    pub fn new(prefix: &str, home: &FtpPath) -> Keys {
        let mut base = prefix.to_string();
        for c in home.components() {
            if !base.is_empty() {
                base.push('/');
            }
            base.push_str(c);
        }
        Keys { base }
    }

    /// The key naming `p` (without a trailing `/`); empty for the root of
    /// a storage at the bucket's root.
    fn key(&self, p: &FtpPath) -> String {
        let mut key = self.base.clone();
        for c in p.components() {
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(c);
        }
        key
    }

    /// The object holding the file `p`. `p` must not be the root.
    pub fn object(&self, p: &FtpPath) -> Result<Path> {
        let key = self.key(p);
        if key.len() + 1 > MAX_KEY_LEN {
            // +1: the same name must also fit as a directory marker.
            return Err(StorageError::new(
                ErrorKind::NameNotAllowed,
                format!("object key of {p} is longer than {MAX_KEY_LEN} bytes"),
            ));
        }
        Path::parse(&key).map_err(|e| StorageError::new(ErrorKind::NameNotAllowed, format!("{p}: {e}")))
    }

    /// The prefix of everything inside the directory `p` (`key/`), or
    /// `None` for the bucket's root.
    pub fn dir_prefix(&self, p: &FtpPath) -> Option<String> {
        let key = self.key(p);
        (!key.is_empty()).then(|| key + "/")
    }

    /// The directory marker of `p` (`key/`), or `None` for the bucket's
    /// root, which has none.
    pub fn marker(&self, p: &FtpPath) -> Result<Option<Path>> {
        if self.key(p).is_empty() {
            return Ok(None);
        }
        Ok(Some(self.object(p)?.child("")))
    }
}

/// The name of a listed key or common prefix directly inside `prefix`
/// (`None` for the bucket's root), or `None` when it is not directly inside
/// (the directory's own marker, or a key a store returned out of place).
/// object_store strips the trailing `/` of markers and common prefixes.
pub fn child_name<'a>(prefix: Option<&str>, location: &'a str) -> Option<&'a str> {
    let rest = match prefix {
        Some(prefix) => location.strip_prefix(prefix)?,
        None => location,
    };
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> FtpPath {
        FtpPath::root().resolve(s.as_bytes()).unwrap()
    }

    #[test]
    fn keys_of_paths() {
        let k = Keys::new("ftp", &p("/alice"));
        assert_eq!(k.object(&p("/docs/a.txt")).unwrap().as_ref(), "ftp/alice/docs/a.txt");
        assert_eq!(k.dir_prefix(&p("/docs")).unwrap(), "ftp/alice/docs/");
        assert_eq!(k.dir_prefix(&FtpPath::root()).unwrap(), "ftp/alice/");
        let k = Keys::new("", &FtpPath::root());
        assert_eq!(k.object(&p("/a")).unwrap().as_ref(), "a");
        assert_eq!(k.dir_prefix(&FtpPath::root()), None);
        assert!(k.marker(&FtpPath::root()).unwrap().is_none());
    }

    #[test]
    fn names_are_kept_verbatim() {
        let k = Keys::new("", &p("/u"));
        for name in ["50%.txt", "a b", "x#y?z", "é", "[1]{2}", "back\\slash"] {
            assert_eq!(k.object(&p(&format!("/{name}"))).unwrap().as_ref(), format!("u/{name}"));
        }
    }

    /// The marker key relies on `Path::child("")` keeping a trailing `/`;
    /// an object_store upgrade that changes it must fail here.
    #[test]
    fn marker_key_has_trailing_slash() {
        let k = Keys::new("pre/fix", &p("/home"));
        let m = k.marker(&p("/d")).unwrap().unwrap();
        assert_eq!(m.as_ref(), "pre/fix/home/d/");
        assert_eq!(k.marker(&FtpPath::root()).unwrap().unwrap().as_ref(), "pre/fix/home/");
    }

    #[test]
    fn too_long_keys_are_refused() {
        let k = Keys::new("", &FtpPath::root());
        let long = format!(
            "/{}/{}/{}/{}/{}",
            "a".repeat(250),
            "b".repeat(250),
            "c".repeat(250),
            "d".repeat(250),
            "e".repeat(30)
        );
        assert_eq!(k.object(&p(&long)).unwrap_err().kind, ErrorKind::NameNotAllowed);
    }

    #[test]
    fn prefixes() {
        assert_eq!(normalise_prefix("/ftp/users/").unwrap(), "ftp/users");
        assert_eq!(normalise_prefix("").unwrap(), "");
        assert!(normalise_prefix("a//b").is_err());
        assert!(normalise_prefix("a/../b").is_err());
    }

    #[test]
    fn child_names() {
        assert_eq!(child_name(Some("u/d/"), "u/d/f"), Some("f"));
        assert_eq!(child_name(Some("u/d/"), "u/d"), None);
        assert_eq!(child_name(Some("u/d/"), "u/d/x/y"), None);
        assert_eq!(child_name(None, "f"), Some("f"));
    }
}
