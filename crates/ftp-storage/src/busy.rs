//! Upload targets in progress, so that a second writer of the same file is
//! told `Busy` (450) instead of racing the first one.
//!
//! A backend keeps one [`BusyTargets`] for the whole process (a `static`),
//! so every user storage it hands out, and every backend instance, sees
//! the same set. What a key is belongs to the backend: it must name the
//! place a file lives the same way whichever user's home (and so whichever
//! path) reaches it. The local-disk backend uses the parent directory's
//! device and inode plus the final name; an object store would use the
//! bucket and the object key.
//!
//! Memory is bounded by the number of uploads running at once: a key lives
//! exactly as long as its [`BusyGuard`], which the upload holds.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{ErrorKind, Result, StorageError};

/// The set of targets with an upload in progress.
#[derive(Debug)]
pub struct BusyTargets<K> {
    keys: Mutex<HashSet<K>>,
    /// `keys.len()`, readable without the lock: most deletes and renames
    /// happen while nothing is being uploaded and can skip working out
    /// their key.
    len: AtomicUsize,
}

impl<K> Default for BusyTargets<K> {
    fn default() -> Self {
        BusyTargets {
            keys: Mutex::new(HashSet::new()),
            len: AtomicUsize::new(0),
        }
    }
}

/// A target marked busy; dropping it (with the upload that holds it) frees
/// the target.
#[derive(Debug)]
pub struct BusyGuard<K: Eq + Hash> {
    targets: Arc<BusyTargets<K>>,
    key: Option<K>,
}

pub(crate) fn busy_error() -> StorageError {
    StorageError::new(ErrorKind::Busy, "an upload of this file is in progress")
}

impl<K: Eq + Hash> BusyTargets<K> {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<K>> {
        // A panic while holding this lock cannot leave the set half-changed
        // (insert and remove are single calls), so a poisoned lock is fine.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `key` busy, or fails with [`ErrorKind::Busy`] if it is already.
    pub fn acquire(self: &Arc<Self>, key: K) -> Result<BusyGuard<K>>
    where
        K: Clone,
    {
        let mut keys = self.lock();
        if !keys.insert(key.clone()) {
            return Err(busy_error());
        }
        self.len.store(keys.len(), Ordering::Release);
        Ok(BusyGuard {
            targets: Arc::clone(self),
            key: Some(key),
        })
    }

    /// Whether an upload of `key` is in progress.
    pub fn is_busy(&self, key: &K) -> bool {
        self.lock().contains(key)
    }

    /// Fails with [`ErrorKind::Busy`] when an upload of `key` is in
    /// progress.
    pub fn check(&self, key: &K) -> Result<()> {
        if self.is_busy(key) {
            Err(busy_error())
        } else {
            Ok(())
        }
    }

    /// True when no upload is in progress at all (no lock taken).
    pub fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }

    /// Uploads in progress.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }
}

impl<K: Eq + Hash> Drop for BusyGuard<K> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut keys = self.targets.lock();
            keys.remove(&key);
            self.targets.len.store(keys.len(), Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_guard_per_key_until_dropped() {
        let targets = BusyTargets::<&str>::new();
        assert!(targets.is_empty());
        let a = targets.acquire("a").unwrap();
        assert_eq!(targets.acquire("a").unwrap_err().kind, ErrorKind::Busy);
        assert_eq!(targets.check(&"a").unwrap_err().kind, ErrorKind::Busy);
        let b = targets.acquire("b").unwrap();
        assert_eq!(targets.len(), 2);
        drop(a);
        assert!(!targets.is_busy(&"a"));
        targets.check(&"a").unwrap();
        let _a = targets.acquire("a").unwrap();
        drop(b);
        assert_eq!(targets.len(), 1);
    }
}
