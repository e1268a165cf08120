//! [`S3Storage`]: one user's view of the bucket.
//!
//! A name is a file when an object has its key, and a directory when its
//! marker or any object below it exists (a file wins when a foreign tool
//! made both). The checks a disk makes for free cost requests here, and are
//! made where the FTP semantics need them:
//!
//! | operation | requests |
//! |---|---|
//! | stat | HEAD; for a directory, also one LIST of one key |
//! | list | one LIST per page; an empty first page, one HEAD more |
//! | open_read | one GET (a HEAD more at the end of the file, a LIST more for a directory) |
//! | open_write | LIST (parent), LIST (the name is no directory), HEAD for CreateNew, at once |
//! | mkdir | LIST (parent), HEAD, LIST, at once; then the marker's PUT |
//! | rmdir | LIST of two keys, DELETE |
//! | delete, rename | HEAD, HEAD of the parent's marker; DELETE (rename: COPY first) |
//!
//! Deleting the last object of a directory that had no marker (one made by
//! another tool) first writes its marker, so the directory stays, as it
//! would on disk. None of these sequences is atomic: a concurrent writer
//! can slip between a check and the write (for example a file uploaded into
//! a directory between RMD's listing and its delete).

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use ftp_storage::{
    Capabilities, DirStream, EntryKind, ErrorKind, Facts, FileRead, FtpPath, Result, Storage, StorageError, Upload,
    WriteMode,
};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, PutPayload};

use crate::error::{from_store, timed_out};
use crate::keys::Keys;
use crate::list::{self, S3DirStream, PAGE_SIZE};
use crate::read::S3Read;
use crate::upload::S3Upload;
use crate::{BusyKey, Shared, CAPABILITIES};

/// A user's storage: the keys below the user's home.
#[derive(Debug, Clone)]
pub struct S3Storage {
    shared: Arc<Shared>,
    keys: Keys,
}

fn err(kind: ErrorKind, p: &FtpPath, what: &str) -> StorageError {
    StorageError::new(kind, format!("{p}: {what}"))
}

fn file_facts(meta: &ObjectMeta) -> Facts {
    Facts {
        kind: EntryKind::File,
        size: meta.size,
        modified: Some(meta.last_modified.into()),
        mode: None,
    }
}

fn dir_facts(modified: Option<SystemTime>) -> Facts {
    Facts {
        kind: EntryKind::Dir,
        size: 0,
        modified,
        mode: None,
    }
}

impl S3Storage {
    pub(crate) fn new(shared: Arc<Shared>, keys: Keys) -> S3Storage {
        S3Storage { shared, keys }
    }

    /// Writes the home's marker when the home holds nothing yet.
    pub(crate) async fn ensure_root(&self) -> Result<()> {
        let root = FtpPath::root();
        if self.keys.marker(&root)?.is_some() && self.directory(&root).await?.is_none() {
            self.put_marker(&root).await?;
        }
        Ok(())
    }

    /// A request the store must answer (listing the root), for
    /// [`Backend::ready`](ftp_storage::Backend::ready).
    pub(crate) async fn probe(&self) -> Result<()> {
        // Not `directory`: at the bucket's root it asks nothing.
        let prefix = self.keys.dir_prefix(&FtpPath::root());
        list::page(&self.shared, prefix.as_deref(), None, 1, false)
            .await
            .map(|_| ())
    }

    /// The object at `p`'s key, if there is one.
    async fn head(&self, p: &FtpPath) -> Result<Option<ObjectMeta>> {
        let key = self.keys.object(p)?;
        match self.shared.store.head(&key).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(from_store(&format!("HEAD {key}"), e)),
        }
    }

    /// `p` as a directory: its marker's time when it has a marker, no time
    /// when only objects below it make it exist; `None` when it does not.
    async fn directory(&self, p: &FtpPath) -> Result<Option<Facts>> {
        let Some(prefix) = self.keys.dir_prefix(p) else {
            return Ok(Some(dir_facts(None)));
        };
        let page = list::page(&self.shared, Some(&prefix), None, 1, false).await?;
        let Some(first) = page.result.objects.first() else {
            return Ok((!page.result.common_prefixes.is_empty()).then(|| dir_facts(None)));
        };
        let is_marker = Some(first.location.as_ref()) == prefix.strip_suffix('/');
        Ok(Some(dir_facts(is_marker.then(|| first.last_modified.into()))))
    }

    /// Ok when `p` is a directory; NotFound or NotADirectory otherwise.
    async fn require_dir(&self, p: &FtpPath) -> Result<()> {
        if p.is_root() || self.directory(p).await?.is_some() {
            return Ok(());
        }
        match self.head(p).await? {
            Some(_) => Err(err(ErrorKind::NotADirectory, p, "not a directory")),
            None => Err(err(ErrorKind::NotFound, p, "no such directory")),
        }
    }

    /// The error for a name that is no file: IsADirectory or NotFound.
    async fn not_a_file(&self, p: &FtpPath) -> StorageError {
        match self.directory(p).await {
            Ok(Some(_)) => err(ErrorKind::IsADirectory, p, "is a directory"),
            Ok(None) => err(ErrorKind::NotFound, p, "no such file"),
            Err(e) => e,
        }
    }

    async fn put_marker(&self, p: &FtpPath) -> Result<()> {
        let Some(marker) = self.keys.marker(p)? else {
            return Ok(());
        };
        self.shared
            .store
            .put(&marker, PutPayload::new())
            .await
            .map_err(|e| from_store(&format!("PUT {marker}"), e))?;
        Ok(())
    }

    /// Before `p` goes: makes sure its parent directory stays, by writing
    /// the parent's marker when it has none.
    async fn keep_parent(&self, p: &FtpPath) -> Result<()> {
        let parent = p.parent();
        if parent.is_root() {
            // The home always exists (listing it never fails).
            return Ok(());
        }
        let Some(marker) = self.keys.marker(&parent)? else {
            return Ok(());
        };
        match self.shared.store.head(&marker).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => self.put_marker(&parent).await,
            Err(e) => Err(from_store(&format!("HEAD {marker}"), e)),
        }
    }

    /// The name of `p`'s object among upload targets.
    fn busy_key(&self, p: &FtpPath) -> Result<BusyKey> {
        Ok((
            Arc::clone(&self.shared.store_id),
            self.keys.object(p)?.as_ref().to_string(),
        ))
    }

    /// Busy while an upload of `p` runs in this process.
    fn check_busy(&self, p: &FtpPath) -> Result<()> {
        if self.shared.busy.is_empty() || p.is_root() {
            return Ok(());
        }
        self.shared.busy.check(&self.busy_key(p)?)
    }

    async fn delete_key(&self, key: &Path) -> Result<()> {
        self.shared
            .store
            .delete(key)
            .await
            .map_err(|e| from_store(&format!("DELETE {key}"), e))
    }
}

#[async_trait]
impl Storage for S3Storage {
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn stat(&self, path: &FtpPath) -> Result<Facts> {
        if path.is_root() {
            return Ok(dir_facts(None));
        }
        if let Some(meta) = self.head(path).await? {
            return Ok(file_facts(&meta));
        }
        self.directory(path)
            .await?
            .ok_or_else(|| err(ErrorKind::NotFound, path, "no such file or directory"))
    }

    async fn list(&self, dir: &FtpPath) -> Result<Box<dyn DirStream>> {
        let prefix = self.keys.dir_prefix(dir);
        let first = list::page(&self.shared, prefix.as_deref(), None, PAGE_SIZE, true).await?;
        let nothing = first.result.objects.is_empty() && first.result.common_prefixes.is_empty();
        if nothing && !dir.is_root() {
            // Not even a marker: a file, or nothing.
            return Err(match self.head(dir).await? {
                Some(_) => err(ErrorKind::NotADirectory, dir, "not a directory"),
                None => err(ErrorKind::NotFound, dir, "no such directory"),
            });
        }
        Ok(Box::new(S3DirStream::new(Arc::clone(&self.shared), prefix, first)))
    }

    async fn open_read(&self, path: &FtpPath, offset: u64) -> Result<Box<dyn FileRead>> {
        if path.is_root() {
            return Err(err(ErrorKind::IsADirectory, path, "is a directory"));
        }
        let key = self.keys.object(path)?;
        let opts = GetOptions {
            range: (offset > 0).then_some(GetRange::Offset(offset)),
            ..Default::default()
        };
        let what = format!("GET {key} from {offset}");
        let got = tokio::time::timeout(self.shared.request_timeout, self.shared.reader.get_opts(&key, opts))
            .await
            .map_err(|_| timed_out(&what))?;
        match got {
            Ok(result) => {
                let len = result.range.end - result.range.start;
                let size = result.meta.size;
                Ok(Box::new(S3Read::new(result.into_stream(), len, size)))
            }
            Err(object_store::Error::NotFound { .. }) => Err(self.not_a_file(path).await),
            Err(e) => {
                let e = from_store(&what, e);
                if e.kind != ErrorKind::InvalidOffset {
                    return Err(e);
                }
                // 416: at the end of the file (an empty read) or beyond.
                match self.head(path).await? {
                    Some(meta) if meta.size == offset => Ok(Box::new(S3Read::empty(meta.size))),
                    Some(_) => Err(e),
                    None => Err(self.not_a_file(path).await),
                }
            }
        }
    }

    async fn open_write(&self, path: &FtpPath, mode: WriteMode) -> Result<Box<dyn Upload>> {
        if path.is_root() {
            return Err(err(ErrorKind::IsADirectory, path, "is a directory"));
        }
        // First, so a second writer hears Busy whatever it asks for.
        let busy = self.shared.busy.acquire(self.busy_key(path)?)?;
        let create_new = match mode {
            WriteMode::Replace => false,
            WriteMode::CreateNew => true,
            WriteMode::Append | WriteMode::ResumeAt(_) => {
                return Err(err(
                    ErrorKind::Unsupported,
                    path,
                    "objects cannot be appended to or written in place",
                ))
            }
        };
        let key = self.keys.object(path)?;
        let parent_dir = path.parent();
        let (parent, as_dir, existing) = tokio::join!(self.require_dir(&parent_dir), self.directory(path), async {
            if create_new {
                self.head(path).await
            } else {
                Ok(None)
            }
        });
        parent?;
        if as_dir?.is_some() {
            return Err(err(ErrorKind::IsADirectory, path, "is a directory"));
        }
        if existing?.is_some() {
            return Err(err(ErrorKind::AlreadyExists, path, "exists"));
        }
        Ok(Box::new(S3Upload::new(Arc::clone(&self.shared), busy, key, create_new)))
    }

    async fn mkdir(&self, path: &FtpPath) -> Result<()> {
        if path.is_root() {
            return Err(err(ErrorKind::AlreadyExists, path, "exists"));
        }
        self.keys.marker(path)?;
        self.check_busy(path)?;
        let parent_dir = path.parent();
        let (parent, file, dir) = tokio::join!(self.require_dir(&parent_dir), self.head(path), self.directory(path));
        parent?;
        if file?.is_some() || dir?.is_some() {
            return Err(err(ErrorKind::AlreadyExists, path, "exists"));
        }
        self.put_marker(path).await
    }

    async fn rmdir(&self, path: &FtpPath) -> Result<()> {
        if path.is_root() {
            return Err(err(ErrorKind::PermissionDenied, path, "the home cannot be removed"));
        }
        let prefix = self
            .keys
            .dir_prefix(path)
            .ok_or_else(|| err(ErrorKind::PermissionDenied, path, "the bucket's root"))?;
        let page = list::page(&self.shared, Some(&prefix), None, 2, false).await?;
        let objects = &page.result.objects;
        if objects.is_empty() {
            return Err(match self.head(path).await? {
                Some(_) => err(ErrorKind::NotADirectory, path, "not a directory"),
                None => err(ErrorKind::NotFound, path, "no such directory"),
            });
        }
        // Sorted, so the marker (the shortest key) comes first.
        let marker_only = objects.len() == 1 && Some(objects[0].location.as_ref()) == prefix.strip_suffix('/');
        if !marker_only {
            return Err(err(ErrorKind::DirectoryNotEmpty, path, "directory not empty"));
        }
        self.keep_parent(path).await?;
        let marker = self.keys.marker(path)?.expect("not the bucket's root");
        self.delete_key(&marker).await
    }

    async fn delete(&self, path: &FtpPath) -> Result<()> {
        if path.is_root() {
            return Err(err(ErrorKind::IsADirectory, path, "is a directory"));
        }
        self.check_busy(path)?;
        if self.head(path).await?.is_none() {
            return Err(self.not_a_file(path).await);
        }
        self.keep_parent(path).await?;
        self.delete_key(&self.keys.object(path)?).await
    }

    /// Files only: a copy, then the delete of the source. Not atomic (a
    /// failure between the two leaves both names), and limited to what one
    /// CopyObject request takes (5 GiB on AWS).
    async fn rename(&self, from: &FtpPath, to: &FtpPath) -> Result<()> {
        if from.is_root() {
            return Err(err(ErrorKind::Unsupported, from, "directories cannot be renamed here"));
        }
        if to.is_root() {
            return Err(err(ErrorKind::AlreadyExists, to, "exists"));
        }
        let (from_key, to_key) = (self.keys.object(from)?, self.keys.object(to)?);
        self.check_busy(from)?;
        self.check_busy(to)?;
        if self.head(from).await?.is_none() {
            let e = self.not_a_file(from).await;
            return Err(match e.kind {
                ErrorKind::IsADirectory => err(ErrorKind::Unsupported, from, "directories cannot be renamed here"),
                _ => e,
            });
        }
        if from == to {
            return Ok(());
        }
        let to_parent = to.parent();
        let (parent, as_dir) = tokio::join!(self.require_dir(&to_parent), self.directory(to));
        parent?;
        if as_dir?.is_some() {
            return Err(err(ErrorKind::IsADirectory, to, "is a directory"));
        }
        self.keep_parent(from).await?;
        self.shared
            .store
            .copy(&from_key, &to_key)
            .await
            .map_err(|e| from_store(&format!("COPY {from_key} to {to_key}"), e))?;
        self.delete_key(&from_key).await
    }

    async fn check_not_busy(&self, path: &FtpPath) -> Result<()> {
        self.check_busy(path)
    }

    async fn set_mtime(&self, path: &FtpPath, _time: SystemTime) -> Result<()> {
        Err(err(
            ErrorKind::Unsupported,
            path,
            "objects keep the time the store gave them",
        ))
    }

    async fn chmod(&self, path: &FtpPath, _mode: u32) -> Result<()> {
        Err(err(ErrorKind::Unsupported, path, "objects have no permission bits"))
    }
}
