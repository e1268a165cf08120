//! Session counts: per client address (checked at connect) and per user
//! (checked at login). A count is held by a guard that gives it back when
//! dropped, so a session that ends any way at all frees its place.
//!
//! A "client address" is an IPv4 address, or the /64 prefix of an IPv6
//! address: one IPv6 host usually has a whole /64 to pick addresses from.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The unit the per-address limit and the ban table count by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct AddrKey(IpAddr);

impl AddrKey {
    pub fn of(ip: IpAddr) -> AddrKey {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                AddrKey(IpAddr::V6(Ipv6Addr::from(bits)))
            }
            v4 => AddrKey(v4),
        }
    }
}

impl std::fmt::Display for AddrKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
            v4 => write!(f, "{v4}"),
        }
    }
}

type Counts<K> = Arc<Mutex<HashMap<K, usize>>>;

/// How many sessions each key holds, up to `max` each (0: no limit).
/// Counted even without a limit, so a reload that sets one
/// (`set_limit`) finds the sessions already open. Keys at zero are
/// removed, so memory follows the number of live sessions.
pub(crate) struct SessionCounts<K: Hash + Eq + Clone> {
    max: AtomicUsize,
    counts: Counts<K>,
}

impl<K: Hash + Eq + Clone> SessionCounts<K> {
    pub fn new(max: usize) -> Self {
        SessionCounts {
            max: AtomicUsize::new(max),
            counts: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The limit for places taken from now on; places held stay.
    pub fn set_limit(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// Takes a place for `key`, or `None` when it already holds `max`.
    pub fn try_acquire(&self, key: &K) -> Option<CountGuard<K>> {
        let max = self.max.load(Ordering::Relaxed);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(key.clone()).or_insert(0);
        if max != 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(CountGuard {
            key: key.clone(),
            counts: Arc::clone(&self.counts),
        })
    }

    #[cfg(test)]
    fn count(&self, key: &K) -> usize {
        let counts = self.counts.lock().unwrap();
        counts.get(key).copied().unwrap_or(0)
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.counts.lock().unwrap().len()
    }
}

/// One place in a [`SessionCounts`], given back on drop.
pub(crate) struct CountGuard<K: Hash + Eq> {
    key: K,
    counts: Counts<K>,
}

impl<K: Hash + Eq> Drop for CountGuard<K> {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_ipv4_as_ipv4() {
        let a = AddrKey::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = AddrKey::of("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = AddrKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        let mapped = AddrKey::of("::ffff:192.0.2.7".parse().unwrap());
        assert_eq!(mapped, AddrKey::of("192.0.2.7".parse().unwrap()));
        assert_eq!(mapped.to_string(), "192.0.2.7");
    }

    #[test]
    fn limit_per_key_and_places_given_back() {
        let counts = SessionCounts::new(2);
        let a1 = counts.try_acquire(&"a").unwrap();
        let a2 = counts.try_acquire(&"a").unwrap();
        assert!(counts.try_acquire(&"a").is_none());
        let b1 = counts.try_acquire(&"b").unwrap();
        assert_eq!(counts.count(&"a"), 2);
        drop(a1);
        let a3 = counts.try_acquire(&"a").unwrap();
        drop((a2, a3, b1));
        assert_eq!(counts.keys(), 0, "keys at zero are removed");
    }

    #[test]
    fn zero_means_no_limit_and_a_limit_set_later_counts_the_places_held() {
        let counts = SessionCounts::new(0);
        let mut guards: Vec<_> = (0..100).map(|_| counts.try_acquire(&1u8).unwrap()).collect();
        assert_eq!(counts.count(&1), 100);
        counts.set_limit(99);
        assert!(counts.try_acquire(&1).is_none(), "100 held, 99 allowed");
        guards.truncate(98);
        let one_more = counts.try_acquire(&1).expect("98 held now");
        assert!(counts.try_acquire(&1).is_none());
        drop((guards, one_more));
        assert_eq!(counts.keys(), 0);
    }
}
