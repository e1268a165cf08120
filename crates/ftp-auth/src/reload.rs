//! A user database a running server can replace: `ferroftp serve` re-reads
//! the users file on SIGHUP and swaps the new database in, so an account
//! added, changed, disabled or removed takes effect without a restart.
//!
//! Logins after the swap see only the new accounts (and a new credentials
//! cache, so a changed password never still works from the old one).
//! Sessions already logged in are told through [`Authenticator::
//! account_changes`]; the server logs out those whose account is now
//! disabled or gone (231).

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::{AuthError, Authenticator, TlsRules, User, UserDb};

pub struct ReloadableUsers {
    current: RwLock<Arc<UserDb>>,
    /// Bumped at each swap.
    changes: watch::Sender<u64>,
}

impl ReloadableUsers {
    pub fn new(db: UserDb) -> Arc<ReloadableUsers> {
        Arc::new(ReloadableUsers {
            current: RwLock::new(Arc::new(db)),
            changes: watch::Sender::new(0),
        })
    }

    /// Swaps `db` in. Checks already under way finish against the old one.
    pub fn replace(&self, db: UserDb) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(db);
        self.changes.send_modify(|generation| *generation += 1);
    }

    /// The database logins use now.
    pub fn current(&self) -> Arc<UserDb> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait]
impl Authenticator for ReloadableUsers {
    async fn authenticate(&self, username: &str, password: &[u8]) -> Result<User, AuthError> {
        self.current().authenticate(username, password).await
    }

    fn is_anonymous_name(&self, username: &str) -> bool {
        self.current().is_anonymous_name(username)
    }

    fn tls_rules(&self, username: &str) -> TlsRules {
        self.current().tls_rules(username)
    }

    async fn authenticate_certificate(&self, username: &str, fingerprint: &str) -> Result<User, AuthError> {
        self.current().authenticate_certificate(username, fingerprint).await
    }

    async fn authenticate_principal(&self, username: &str, principal: &str) -> Result<User, AuthError> {
        self.current().authenticate_principal(username, principal).await
    }

    fn account_current(&self, user: &User) -> bool {
        self.current().account_current(user)
    }

    fn account_changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.changes.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(users: &[&str]) -> UserDb {
        let mut db = UserDb::empty();
        db.use_cheap_hashing();
        for name in users {
            db.add_plaintext(name, "pw").unwrap();
        }
        db
    }

    #[tokio::test]
    async fn a_swap_changes_logins_and_tells_the_subscribers() {
        let users = ReloadableUsers::new(db(&["alice", "bob"]));
        let mut changes = users.account_changes().expect("a reloadable database reports changes");
        let bob = users.authenticate("bob", b"pw").await.unwrap();
        let alice = users.authenticate("alice", b"pw").await.unwrap();
        assert!(users.account_current(&bob));
        users.replace(db(&["alice", "carol"]));
        changes.changed().await.unwrap();
        assert_eq!(
            users.authenticate("bob", b"pw").await,
            Err(AuthError::InvalidCredentials)
        );
        assert!(!users.account_current(&bob), "removed");
        // Hashed again with a new salt: another stamp, as a changed
        // password gives.
        assert!(!users.account_current(&alice), "credentials changed");
        let alice = users.authenticate("alice", b"pw").await.unwrap();
        assert!(users.account_current(&alice));
        assert!(users.authenticate("carol", b"pw").await.is_ok());
    }
}
