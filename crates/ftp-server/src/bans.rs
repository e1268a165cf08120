//! Brute-force protection: failed logins scored per client address.
//!
//! Each failed login within the window makes the next failure reply wait
//! longer (the first waits `failure_delay`, each further one twice as long,
//! up to `max_failure_delay`); `max_failures` of them ban the address for
//! `ban_time`: its new connections get 421 at connect, and its open
//! sessions get 421 at their next PASS. Only time clears a score: a
//! successful login does not, or a guessing client could clear its own
//! score by logging in anonymously between guesses.
//!
//! Memory is bounded: at most `max_addresses` entries. A periodic purge
//! drops entries whose window and ban are over; a new address arriving at a
//! full table purges first, then forgets the least recently seen address
//! (one not banned, if any).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::config::BanConfig;
use crate::limits::AddrKey;

#[derive(Debug, Clone, Copy)]
struct Score {
    /// Failures counted in the current window.
    failures: u32,
    window_start: Instant,
    banned_until: Option<Instant>,
    last_seen: Instant,
}

impl Score {
    fn banned_at(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|t| now < t)
    }

    fn expired(&self, now: Instant, window: Duration) -> bool {
        !self.banned_at(now) && now.saturating_duration_since(self.window_start) >= window
    }
}

/// What a failed login leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Wait this long before sending the failure reply.
    pub delay: Duration,
    /// This failure banned the address.
    pub banned: bool,
}

pub(crate) struct BanTable {
    /// The rules for failures from now on (a reload replaces them; bans
    /// already given keep their end).
    config: RwLock<BanConfig>,
    scores: Mutex<HashMap<AddrKey, Score>>,
}

impl BanTable {
    pub fn new(config: BanConfig) -> BanTable {
        BanTable {
            config: RwLock::new(config),
            scores: Mutex::new(HashMap::new()),
        }
    }

    pub fn set_config(&self, config: BanConfig) {
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
    }

    fn config(&self) -> BanConfig {
        self.config.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// How often the periodic purge runs.
    pub fn purge_interval(&self) -> Duration {
        let config = self.config();
        config
            .window
            .min(config.ban_time)
            .clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    pub fn is_banned(&self, key: AddrKey, now: Instant) -> bool {
        let scores = self.scores.lock().unwrap_or_else(PoisonError::into_inner);
        scores.get(&key).is_some_and(|s| s.banned_at(now))
    }

    /// Counts a failed login from `key`.
    pub fn record_failure(&self, key: AddrKey, now: Instant) -> Verdict {
        let cfg = &self.config();
        if cfg.max_failures == 0 && cfg.failure_delay.is_zero() {
            return Verdict {
                delay: Duration::ZERO,
                banned: false,
            };
        }
        let mut scores = self.scores.lock().unwrap_or_else(PoisonError::into_inner);
        if !scores.contains_key(&key) && scores.len() >= cfg.max_addresses.max(1) {
            purge(&mut scores, now, cfg.window);
            if scores.len() >= cfg.max_addresses.max(1) {
                evict_oldest(&mut scores, now);
            }
        }
        let score = scores.entry(key).or_insert(Score {
            failures: 0,
            window_start: now,
            banned_until: None,
            last_seen: now,
        });
        score.last_seen = now;
        if now.saturating_duration_since(score.window_start) >= cfg.window {
            score.failures = 0;
            score.window_start = now;
        }
        score.failures = score.failures.saturating_add(1);
        let delay = growing_delay(cfg, score.failures);
        let banned = cfg.max_failures > 0 && score.failures >= cfg.max_failures;
        if banned {
            score.banned_until = Some(now + cfg.ban_time);
            // The ban starts a new count: after it, the address gets the
            // whole allowance again.
            score.failures = 0;
            score.window_start = now;
        }
        Verdict { delay, banned }
    }

    /// Drops every entry whose window and ban are over.
    pub fn purge(&self, now: Instant) {
        let mut scores = self.scores.lock().unwrap_or_else(PoisonError::into_inner);
        purge(&mut scores, now, self.config().window);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.scores.lock().unwrap().len()
    }
}

/// `failure_delay * 2^(failures - 1)`, at most `max_failure_delay`.
fn growing_delay(cfg: &BanConfig, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    cfg.failure_delay
        .checked_mul(1u32 << doublings)
        .unwrap_or(Duration::MAX)
        .min(cfg.max_failure_delay)
}

fn purge(scores: &mut HashMap<AddrKey, Score>, now: Instant, window: Duration) {
    scores.retain(|_, s| !s.expired(now, window));
}

/// Forgets the least recently seen address, preferring one not banned.
fn evict_oldest(scores: &mut HashMap<AddrKey, Score>, now: Instant) {
    let victim = scores
        .iter()
        .min_by_key(|(_, s)| (s.banned_at(now), s.last_seen))
        .map(|(k, _)| *k);
    if let Some(k) = victim {
        scores.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BanConfig {
        BanConfig {
            max_failures: 4,
            window: Duration::from_secs(60),
            ban_time: Duration::from_secs(300),
            failure_delay: Duration::from_millis(500),
            max_failure_delay: Duration::from_secs(2),
            max_addresses: 3,
        }
    }

    fn key(n: u8) -> AddrKey {
        AddrKey::of([192, 0, 2, n].into())
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn delay_doubles_up_to_the_cap_then_ban() {
        let t = BanTable::new(cfg());
        let now = Instant::now();
        let delays: Vec<_> = (0..4).map(|_| t.record_failure(key(1), now)).collect();
        let ms: Vec<_> = delays.iter().map(|v| v.delay.as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 2000]);
        assert_eq!(delays.iter().filter(|v| v.banned).count(), 1);
        assert!(delays[3].banned);
        assert!(t.is_banned(key(1), now));
        assert!(!t.is_banned(key(2), now), "another address is unaffected");
        assert!(t.is_banned(key(1), now + secs(299)));
        assert!(!t.is_banned(key(1), now + secs(300)), "bans end");
    }

    #[test]
    fn failures_outside_the_window_start_over() {
        let t = BanTable::new(cfg());
        let now = Instant::now();
        for _ in 0..3 {
            t.record_failure(key(1), now);
        }
        let later = now + secs(61);
        let v = t.record_failure(key(1), later);
        assert_eq!(v.delay, Duration::from_millis(500));
        assert!(!v.banned);
    }

    #[test]
    fn other_addresses_do_not_touch_a_score() {
        let t = BanTable::new(cfg());
        let now = Instant::now();
        for _ in 0..3 {
            t.record_failure(key(1), now);
        }
        t.record_failure(key(2), now);
        assert!(t.record_failure(key(1), now).banned);
    }

    #[test]
    fn table_is_capped_and_keeps_bans_over_plain_scores() {
        let t = BanTable::new(cfg());
        let now = Instant::now();
        for _ in 0..4 {
            t.record_failure(key(1), now);
        }
        t.record_failure(key(2), now + secs(1));
        t.record_failure(key(3), now + secs(2));
        assert_eq!(t.len(), 3);
        // A fourth address: nothing has expired, so the least recently
        // seen address that is not banned (2) is forgotten.
        t.record_failure(key(4), now + secs(3));
        assert_eq!(t.len(), 3);
        assert!(t.is_banned(key(1), now + secs(3)));
        let v = t.record_failure(key(2), now + secs(4));
        assert_eq!(v.delay, Duration::from_millis(500), "address 2 starts over");
        for i in 5..200 {
            t.record_failure(key(i), now + secs(5));
            assert!(t.len() <= 3);
        }
    }

    #[test]
    fn purge_drops_expired_entries_only() {
        let t = BanTable::new(cfg());
        let now = Instant::now();
        for _ in 0..4 {
            t.record_failure(key(1), now);
        }
        t.record_failure(key(2), now);
        t.purge(now + secs(59));
        assert_eq!(t.len(), 2);
        t.purge(now + secs(60));
        assert_eq!(t.len(), 1, "the banned address stays until its ban ends");
        t.purge(now + secs(300));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn off_switches() {
        let mut c = cfg();
        c.max_failures = 0;
        let t = BanTable::new(c.clone());
        let now = Instant::now();
        for _ in 0..10 {
            assert!(!t.record_failure(key(1), now).banned);
        }
        c.failure_delay = Duration::ZERO;
        let t = BanTable::new(c);
        assert_eq!(t.record_failure(key(1), now).delay, Duration::ZERO);
        assert_eq!(t.len(), 0, "nothing to remember");
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let mut c = cfg();
        c.max_failures = 0;
        c.max_failure_delay = Duration::MAX;
        let t = BanTable::new(c);
        let now = Instant::now();
        for _ in 0..100 {
            t.record_failure(key(1), now);
        }
    }
}
