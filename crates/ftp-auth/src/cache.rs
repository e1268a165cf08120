//! The verified-credentials cache: lets a user who logs in again with the
//! password that last verified skip argon2.
//!
//! Why: argon2 costs tens of milliseconds of CPU per login by design, which
//! caps a server at a few dozen logins per second per core; clients that
//! open a connection per transfer log in with the same credentials over and
//! over (SFTPGo caches for the same reason).
//!
//! What is stored: user name -> a BLAKE2b-256 MAC of the password, keyed
//! with 32 random bytes drawn once per process, and bound to the user's
//! stored hash. So:
//! - a wrong password gives a different MAC and goes to full argon2, so it
//!   can never pass; a first login always pays argon2, and only a password
//!   argon2 accepted is ever recorded;
//! - the cache never holds passwords, and its MACs are useless without the
//!   in-memory key (which dies with the process);
//! - a changed hash for the same name (a new users file) would not match the
//!   old entry; today the user database is immutable after load and each
//!   load gets its own, empty cache.
//!
//! The trade-off: someone who can read the server's memory gets the key and
//! the MACs and can test guesses at BLAKE2 speed instead of argon2 speed, for
//! users who logged in recently. Capacity 0 turns the cache off.
//!
//! A login that waits for a hashing slot (`UserDb`'s bound on argon2
//! runs at once) looks here again when it gets one, so a burst of clients
//! with one password (a site reconnecting after a restart) pays argon2
//! once, not once per client.
//!
//! Bounded: when it is full it is simply cleared (every user then pays
//! argon2 once more), which is cheaper to reason about than an LRU and
//! costs nothing in the common case of fewer users than the capacity.

use std::collections::HashMap;
use std::sync::Mutex;

use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2bMac;

/// Default number of users remembered.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

type Digest = [u8; 32];

pub(crate) struct CredentialCache {
    /// `None` when the operating system gave no random key; the cache is
    /// then off rather than keyed with something guessable.
    key: Option<[u8; 32]>,
    capacity: usize,
    entries: Mutex<HashMap<String, Digest>>,
}

impl CredentialCache {
    pub(crate) fn new(capacity: usize) -> Self {
        let mut key = [0u8; 32];
        let key = getrandom::getrandom(&mut key).ok().map(|()| key);
        CredentialCache {
            key,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        let entries = self.entries.get_mut().unwrap_or_else(|e| e.into_inner());
        if entries.len() > capacity {
            entries.clear();
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The MAC of one login attempt, or `None` when the cache is off.
    /// Each field is length-prefixed so that no two different
    /// (name, hash, password) triples feed the MAC the same bytes.
    pub(crate) fn digest(&self, user: &str, stored_hash: &str, password: &[u8]) -> Option<Digest> {
        if self.capacity == 0 {
            return None;
        }
        let key = self.key.as_ref()?;
        let mut mac = <Blake2bMac<U32> as KeyInit>::new_from_slice(key).ok()?;
        for field in [user.as_bytes(), stored_hash.as_bytes(), password] {
            mac.update(&(field.len() as u64).to_le_bytes());
            mac.update(field);
        }
        Some(mac.finalize().into_bytes().into())
    }

    /// Whether `digest` is the one recorded for `user` by a successful
    /// argon2 verification. Compared in constant time.
    pub(crate) fn matches(&self, user: &str, digest: &Digest) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(user).is_some_and(|known| constant_time_eq(known, digest))
    }

    /// Records the digest of a password that argon2 just accepted. Must
    /// never be called for one it rejected.
    pub(crate) fn remember(&self, user: &str, digest: Digest) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(user) {
            entries.clear();
        }
        entries.insert(user.to_string(), digest);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

/// Equality whose running time does not depend on where the inputs differ.
fn constant_time_eq(a: &Digest, b: &Digest) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_every_field() {
        let cache = CredentialCache::new(10);
        let d = cache.digest("alice", "$h1", b"pw").unwrap();
        assert_eq!(cache.digest("alice", "$h1", b"pw"), Some(d));
        assert_ne!(cache.digest("alice", "$h1", b"pW"), Some(d));
        assert_ne!(cache.digest("alice", "$h2", b"pw"), Some(d));
        assert_ne!(cache.digest("alicf", "$h1", b"pw"), Some(d));
        // Field boundaries matter.
        assert_ne!(cache.digest("ab", "c", b""), cache.digest("a", "bc", b""));
    }

    #[test]
    fn keys_differ_per_cache() {
        let a = CredentialCache::new(10);
        let b = CredentialCache::new(10);
        assert_ne!(a.digest("u", "h", b"p"), b.digest("u", "h", b"p"));
    }

    #[test]
    fn remember_then_match() {
        let cache = CredentialCache::new(10);
        let good = cache.digest("alice", "$h", b"right").unwrap();
        let bad = cache.digest("alice", "$h", b"wrong").unwrap();
        assert!(!cache.matches("alice", &good));
        cache.remember("alice", good);
        assert!(cache.matches("alice", &good));
        assert!(!cache.matches("alice", &bad));
        assert!(!cache.matches("bob", &good));
    }

    #[test]
    fn bounded_by_clearing() {
        let cache = CredentialCache::new(2);
        for name in ["a", "b"] {
            cache.remember(name, cache.digest(name, "h", b"p").unwrap());
        }
        assert_eq!(cache.len(), 2);
        // Refreshing a present name does not clear.
        cache.remember("a", cache.digest("a", "h", b"p").unwrap());
        assert_eq!(cache.len(), 2);
        cache.remember("c", cache.digest("c", "h", b"p").unwrap());
        assert_eq!(cache.len(), 1);
        assert!(cache.matches("c", &cache.digest("c", "h", b"p").unwrap()));
    }

    #[test]
    fn capacity_zero_is_off() {
        let cache = CredentialCache::new(0);
        assert_eq!(cache.digest("a", "h", b"p"), None);
        cache.remember("a", [0; 32]);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn constant_time_eq_is_eq() {
        let a = [7u8; 32];
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] ^= 1;
        assert!(!constant_time_eq(&a, &b));
    }
}
