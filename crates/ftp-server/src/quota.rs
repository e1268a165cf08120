//! Storage space: per-user quotas (bytes and files under the home) and the
//! largest file a user may upload, answered 552 (`QuotaExceeded`).
//!
//! Limits come from the users file, with the server's defaults for what an
//! entry does not set ([`QuotaLimits::or`]). A user with no limit at all
//! costs nothing here: no scan, no wrapper around uploads.
//!
//! How usage is known: the first time a user with a byte or file quota
//! logs in, a task walks the user's home through the storage and counts
//! regular files and their bytes. The result is kept in memory, shared by
//! all of that user's sessions, and kept up to date by this server's own
//! uploads (each chunk is counted before it is written, so parallel
//! sessions cannot overshoot together), DELE and RNTO over a file. It is
//! dropped when the user's last session ends, so the next login counts
//! afresh. Memory is one small entry per user with a session open, and the
//! walk holds at most [`OPEN_LEVELS`] directory streams plus a bounded list
//! of deeper directories still to visit.
//!
//! The limits of that approach (documented in docs/security.md): writes by
//! anything else (another process, another server, a user whose home
//! overlaps this one) are not seen until the next walk; while the first
//! walk runs, uploads wait for it and a DELE is not subtracted twice only
//! if it lands after the walk passed the file; symlinks are not followed
//! (a link counts nothing).
//!
//! An upload is refused at once (before 150) when it is known to exceed: a
//! new file beyond the file quota, a home already full, a REST offset or
//! an ALLO size beyond the largest file, an ALLO size beyond the space
//! left. Otherwise the chunk that would cross a limit stops the transfer
//! with 552 and the upload is discarded: nothing of it stays (see
//! `transfer::receive_file`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use async_trait::async_trait;
use ftp_auth::{QuotaLimits, User};
use ftp_proto::listing::EntryKind;
use ftp_proto::FtpPath;
use ftp_storage::{DirStream, ErrorKind, Storage, StorageError, Upload, WriteMode};

use crate::session::Session;

/// Directory streams the walk keeps open at once (one per level); deeper
/// directories wait in a list.
pub(crate) const OPEN_LEVELS: usize = 32;

/// Deeper directories the walk may have waiting; beyond, the walk fails
/// and the user's uploads are refused (451) rather than counted wrong.
pub(crate) const MAX_DEFERRED: usize = 100_000;

/// The users with a session open and limits to enforce.
#[derive(Default)]
pub(crate) struct Quotas {
    users: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    by_name: HashMap<String, Weak<UserSpace>>,
    /// Entries of users with no session left are purged when the map
    /// reaches this size, so it stays proportional to users logged in.
    purge_at: usize,
}

impl Quotas {
    /// The shared state of `name`, created with `limits` if no session of
    /// that user holds one with these limits. Limits changed by a reload
    /// (the users file, or the configuration's defaults) start a new one:
    /// sessions logged in before keep theirs, and their count, until they
    /// end, so while both run each counts only its own sessions' uploads
    /// beyond the files on disk when its walk ran.
    fn for_user(&self, name: &str, limits: QuotaLimits) -> Arc<UserSpace> {
        let mut reg = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(space) = reg.by_name.get(name).and_then(Weak::upgrade) {
            if space.limits == limits {
                return space;
            }
        }
        if reg.by_name.len() >= reg.purge_at {
            reg.by_name.retain(|_, w| w.strong_count() > 0);
            reg.purge_at = (reg.by_name.len() * 2).max(64);
        }
        let space = Arc::new(UserSpace {
            limits,
            usage: tokio::sync::OnceCell::new(),
        });
        reg.by_name.insert(name.to_string(), Arc::downgrade(&space));
        space
    }
}

/// What a user has stored, counting the uploads in progress.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Usage {
    bytes: i64,
    files: i64,
}

/// One user's limits and usage, shared by that user's sessions.
pub(crate) struct UserSpace {
    limits: QuotaLimits,
    /// Set once the walk of the home finished.
    usage: tokio::sync::OnceCell<Mutex<Usage>>,
}

fn lock(usage: &Mutex<Usage>) -> MutexGuard<'_, Usage> {
    usage.lock().unwrap_or_else(|e| e.into_inner())
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn exceeded(why: &str) -> StorageError {
    StorageError::new(ErrorKind::QuotaExceeded, why.to_string())
}

impl UserSpace {
    /// Whether usage must be known (a byte or file quota).
    fn counts_usage(&self) -> bool {
        self.limits.bytes.is_some() || self.limits.files.is_some()
    }

    /// The usage, walking the home first if nobody has yet (concurrent
    /// callers wait for the same walk; a failed walk is tried again by the
    /// next caller).
    async fn usage(&self, storage: &dyn Storage) -> Result<&Mutex<Usage>, StorageError> {
        self.usage
            .get_or_try_init(|| async {
                let usage = measure(storage).await?;
                tracing::debug!(bytes = usage.bytes, files = usage.files, "home measured for its quota");
                Ok(Mutex::new(usage))
            })
            .await
    }

    /// The usage if it is known already.
    fn known_usage(&self) -> Option<&Mutex<Usage>> {
        self.usage.get()
    }
}

/// Walks the home depth first and counts its regular files. An unreadable
/// directory below the home is skipped (with a warning); the home itself
/// must be listable.
async fn measure(storage: &dyn Storage) -> Result<Usage, StorageError> {
    let mut usage = Usage::default();
    let mut waiting = vec![FtpPath::root()];
    while let Some(top) = waiting.pop() {
        let is_home = top == FtpPath::root();
        let mut stack: Vec<(FtpPath, Box<dyn DirStream>)> = Vec::new();
        match storage.list(&top).await {
            Ok(stream) => stack.push((top, stream)),
            Err(e) if is_home => return Err(e),
            Err(e) => tracing::warn!(dir = %top, error = %e, "quota walk skips a directory"),
        }
        while let Some((dir, stream)) = stack.last_mut() {
            let entry = match stream.next_entry().await {
                Ok(Some(entry)) => entry,
                Ok(None) => {
                    stack.pop();
                    continue;
                }
                Err(e) => {
                    tracing::warn!(dir = %dir, error = %e, "quota walk skips the rest of a directory");
                    stack.pop();
                    continue;
                }
            };
            let sub = match entry.facts.kind {
                EntryKind::File => {
                    usage.bytes = usage.bytes.saturating_add(as_i64(entry.facts.size));
                    usage.files += 1;
                    continue;
                }
                EntryKind::Dir => dir.join(&entry.name),
                _ => continue,
            };
            if stack.len() >= OPEN_LEVELS {
                if waiting.len() >= MAX_DEFERRED {
                    return Err(StorageError::new(
                        ErrorKind::Local,
                        "home too deep and wide to measure for its quota",
                    ));
                }
                waiting.push(sub);
                continue;
            }
            match storage.list(&sub).await {
                Ok(stream) => stack.push((sub, stream)),
                Err(e) => tracing::warn!(dir = %sub, error = %e, "quota walk skips a directory"),
            }
        }
    }
    Ok(usage)
}

/// A session's part: its user's shared state, and the size an ALLO
/// announced for the next upload.
#[derive(Default)]
pub(crate) struct SessionSpace {
    space: Option<Arc<UserSpace>>,
    /// ALLO's size, used (and forgotten) by the next STOR, STOU or APPE.
    pub allo: Option<u64>,
}

impl Session {
    /// At login: the user's limits (their own over the server's defaults),
    /// and the walk of the home started in the background when a quota
    /// needs it.
    pub(crate) fn space_log_in(&mut self, user: &User, storage: &Arc<dyn Storage>) {
        self.space.allo = None;
        let limits = user.quota.or(self.config.default_quota);
        if limits.is_unlimited() {
            self.space.space = None;
            return;
        }
        let space = self.shared.quotas.for_user(&user.name, limits);
        if space.counts_usage() && space.known_usage().is_none() {
            let (space, storage) = (Arc::clone(&space), Arc::clone(storage));
            tokio::spawn(async move {
                if let Err(e) = space.usage(&*storage).await {
                    tracing::warn!(error = %e, "measuring a home for its quota failed");
                }
            });
        }
        self.space.space = Some(space);
    }

    pub(crate) fn space_log_out(&mut self) {
        self.space = SessionSpace::default();
    }

    /// Checks an upload against the user's limits before it opens, and
    /// counts what it will change. `None` when the user has no limits.
    pub(crate) async fn admit_upload(
        &mut self,
        path: &FtpPath,
        mode: WriteMode,
    ) -> Result<Option<Ticket>, StorageError> {
        let announced = self.space.allo.take();
        let Some(space) = self.space.space.clone() else {
            return Ok(None);
        };
        let storage = self.storage();
        let existed = match storage.stat(path).await {
            Ok(f) if f.kind == EntryKind::File => Some(f.size),
            // A directory, a missing file or an error: open_write decides.
            _ => None,
        };
        let start = match mode {
            WriteMode::Replace | WriteMode::CreateNew => 0,
            WriteMode::Append => existed.unwrap_or(0),
            WriteMode::ResumeAt(n) => n,
        };
        let limits = space.limits;
        if let Some(max) = limits.max_file_size {
            if start > max || announced.is_some_and(|n| start.saturating_add(n) > max) {
                return Err(exceeded("the file would exceed the largest file allowed"));
            }
        }
        let mut ticket = Ticket {
            space: Arc::clone(&space),
            storage: Arc::clone(&storage),
            path: path.clone(),
            existed,
            size: start,
            tracked: false,
            credit: 0,
            new_file: false,
            reserved: 0,
            settled: false,
        };
        if !space.counts_usage() {
            return Ok(Some(ticket));
        }
        let usage = space.usage(&*storage).await?;
        let mut u = lock(usage);
        // What the upload frees when it lands: the replaced file, or the
        // tail a resume cuts off.
        let credit = match mode {
            WriteMode::Replace => existed.unwrap_or(0),
            WriteMode::ResumeAt(n) => existed.unwrap_or(0).saturating_sub(n),
            WriteMode::CreateNew | WriteMode::Append => 0,
        };
        let new_file = existed.is_none();
        if let Some(files) = limits.files {
            if new_file && u.files.saturating_add(1) > as_i64(files) {
                return Err(exceeded("the file quota is used up"));
            }
        }
        if let Some(bytes) = limits.bytes {
            let left = as_i64(bytes).saturating_sub(u.bytes.saturating_sub(as_i64(credit)));
            if left <= 0 || announced.is_some_and(|n| as_i64(n) > left) {
                return Err(exceeded("the byte quota is used up"));
            }
        }
        u.bytes -= as_i64(credit);
        u.files += i64::from(new_file);
        ticket.tracked = true;
        ticket.credit = as_i64(credit);
        ticket.new_file = new_file;
        Ok(Some(ticket))
    }

    /// Before a DELE (or an RNTO over a file): the size the user's usage
    /// drops by if it succeeds. `None` when usage is not counted (yet).
    pub(crate) async fn before_removal(&self, path: &FtpPath) -> Option<Removal> {
        let space = self.space.space.as_ref()?;
        space.known_usage()?;
        match self.storage.as_ref()?.stat(path).await {
            Ok(f) if f.kind == EntryKind::File => Some(Removal {
                space: Arc::clone(space),
                size: f.size,
            }),
            _ => None,
        }
    }
}

/// A file about to be removed; [`Removal::done`] once it is.
pub(crate) struct Removal {
    space: Arc<UserSpace>,
    size: u64,
}

impl Removal {
    pub(crate) fn done(self) {
        if let Some(usage) = self.space.known_usage() {
            let mut u = lock(usage);
            u.bytes -= as_i64(self.size);
            u.files -= 1;
        }
    }
}

/// An admitted upload: what it changed in the usage so far, settled
/// against what is on the storage when it ends. Dropped unused (the open
/// failed), it gives back what it counted.
pub(crate) struct Ticket {
    space: Arc<UserSpace>,
    storage: Arc<dyn Storage>,
    path: FtpPath,
    /// The target's size before the upload, if it was a file.
    existed: Option<u64>,
    /// The target's size as this upload writes it.
    size: u64,
    /// Usage is counted (a byte or file quota); otherwise only the largest
    /// file is checked.
    tracked: bool,
    /// Bytes subtracted at admission (the replaced file or cut tail).
    credit: i64,
    /// A file counted at admission.
    new_file: bool,
    /// Bytes counted chunk by chunk.
    reserved: i64,
    settled: bool,
}

impl Ticket {
    /// `upload`, checked against the limits chunk by chunk.
    pub(crate) fn wrap(self, upload: Box<dyn Upload>) -> Box<dyn Upload> {
        Box::new(QuotaUpload {
            ticket: self,
            inner: upload,
        })
    }

    /// Counts a chunk, or refuses it when it would cross a limit.
    fn take(&mut self, len: u64) -> Result<(), StorageError> {
        let size = self.size.saturating_add(len);
        if self.space.limits.max_file_size.is_some_and(|max| size > max) {
            return Err(exceeded("the file exceeds the largest file allowed"));
        }
        if self.tracked {
            if let Some(usage) = self.space.known_usage() {
                let mut u = lock(usage);
                let grown = u.bytes.saturating_add(as_i64(len));
                if self.space.limits.bytes.is_some_and(|limit| grown > as_i64(limit)) {
                    return Err(exceeded("the byte quota is used up"));
                }
                u.bytes = grown;
                self.reserved += as_i64(len);
            }
        }
        self.size = size;
        Ok(())
    }

    /// Replaces what this upload counted by what it really changed:
    /// `after` is whether the target is a file now, and its size (`None`
    /// when unknown: taken as unchanged).
    fn settle(&mut self, after: Option<(bool, u64)>) {
        if std::mem::replace(&mut self.settled, true) || !self.tracked {
            return;
        }
        let Some(usage) = self.space.known_usage() else { return };
        let before = as_i64(self.existed.unwrap_or(0));
        let (bytes, files) = match after {
            Some((exists, size)) => (
                as_i64(size) - before,
                i64::from(exists) - i64::from(self.existed.is_some()),
            ),
            None => (0, 0),
        };
        let mut u = lock(usage);
        u.bytes += bytes - (self.reserved - self.credit);
        u.files += files - i64::from(self.new_file);
    }

    /// The target as it is after the upload ended.
    async fn settle_from_storage(&mut self, fallback: Option<(bool, u64)>) {
        if !self.tracked || self.settled {
            return;
        }
        let after = match self.storage.stat(&self.path).await {
            Ok(f) if f.kind == EntryKind::File => Some((true, f.size)),
            Ok(_) => Some((false, 0)),
            Err(e) if e.kind == ErrorKind::NotFound => Some((false, 0)),
            Err(_) => fallback,
        };
        self.settle(after);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.settle(None);
    }
}

/// An upload under a user's limits.
struct QuotaUpload {
    ticket: Ticket,
    inner: Box<dyn Upload>,
}

#[async_trait]
impl Upload for QuotaUpload {
    async fn write_all(&mut self, data: &[u8]) -> ftp_storage::Result<()> {
        self.ticket.take(data.len() as u64)?;
        self.inner.write_all(data).await
    }

    fn writes_locally(&self) -> bool {
        self.inner.writes_locally()
    }

    fn direct_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.direct_fd()
    }

    fn direct_reserve(&mut self, n: u64) -> ftp_storage::Result<()> {
        self.ticket.take(n)?;
        self.inner.direct_reserve(n)
    }

    fn direct_failed(&mut self) {
        self.inner.direct_failed();
    }

    fn buffer(&mut self) -> Option<&mut [u8]> {
        self.inner.buffer()
    }

    async fn buffer_filled(&mut self, n: usize) -> ftp_storage::Result<()> {
        self.ticket.take(n as u64)?;
        self.inner.buffer_filled(n).await
    }

    async fn commit(mut self: Box<Self>) -> ftp_storage::Result<u64> {
        let QuotaUpload { mut ticket, inner } = *self;
        let result = inner.commit().await;
        let fallback = result.is_ok().then_some((true, ticket.size));
        ticket.settle_from_storage(fallback).await;
        result
    }

    async fn abort(self: Box<Self>) -> ftp_storage::Result<()> {
        let QuotaUpload { mut ticket, inner } = *self;
        let result = inner.abort().await;
        ticket.settle_from_storage(None).await;
        result
    }

    async fn discard(self: Box<Self>) -> ftp_storage::Result<()> {
        let QuotaUpload { mut ticket, inner } = *self;
        let result = inner.discard().await;
        ticket.settle_from_storage(None).await;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file is counted, also below the levels the walk keeps open
    /// (those wait in a list); symlinks count nothing.
    #[tokio::test]
    async fn the_walk_counts_every_level() {
        use ftp_storage::Backend;
        let dir = tempfile::tempdir().unwrap();
        let mut deep = dir.path().join("home");
        let mut expected = Usage::default();
        for level in 0..(OPEN_LEVELS * 2 + 3) {
            std::fs::create_dir_all(&deep).unwrap();
            for i in 0..3 {
                std::fs::write(deep.join(format!("f{i}")), vec![0u8; level + i]).unwrap();
                expected.bytes += (level + i) as i64;
                expected.files += 1;
            }
            std::fs::create_dir(deep.join("empty")).unwrap();
            deep = deep.join(format!("level{level}"));
        }
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("home/link")).unwrap();
        let backend = ftp_storage_fs::FsBackend::new(dir.path(), ftp_storage_fs::FsOptions::default()).unwrap();
        let storage = backend.user_storage(&FtpPath::root().join("home")).await.unwrap();
        assert_eq!(measure(&*storage).await.unwrap(), expected);
    }

    #[test]
    fn registry_forgets_users_without_sessions() {
        let quotas = Quotas::default();
        let limits = QuotaLimits {
            bytes: Some(10),
            ..QuotaLimits::default()
        };
        let a = quotas.for_user("a", limits);
        let a2 = quotas.for_user("a", limits);
        assert!(Arc::ptr_eq(&a, &a2), "sessions of one user share its usage");
        drop((a, a2));
        let again = quotas.for_user("a", limits);
        let changed = QuotaLimits {
            bytes: Some(1),
            ..limits
        };
        let other = quotas.for_user("a", changed);
        assert!(!Arc::ptr_eq(&other, &again), "new limits, new space");
        assert!(Arc::ptr_eq(&quotas.for_user("a", changed), &other));
        assert!(again.known_usage().is_none(), "a new first session measures again");
        for i in 0..1000 {
            drop(quotas.for_user(&format!("u{i}"), limits));
        }
        let reg = quotas.users.lock().unwrap();
        assert!(reg.by_name.len() <= 128, "{} entries kept", reg.by_name.len());
    }
}
