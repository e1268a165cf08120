//! [`UserDb`]: the accounts from a users file and the command line, plus
//! optional anonymous login, answering [`Authenticator`].

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use argon2::Params;
use async_trait::async_trait;
use ftp_proto::FtpPath;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::cache::{CredentialCache, DEFAULT_CACHE_CAPACITY};
use crate::hash;
use crate::permissions::PermissionSet;
use crate::quota::QuotaLimits;
use crate::users_file::{self, Account, EntryProblem, UserEntry, UsersFileError};
use crate::{AccountRequirement, AuthError, Authenticator, TlsRules, User};

/// The names that log in anonymously when anonymous login is enabled,
/// matched without regard to ASCII case.
pub const ANONYMOUS_NAMES: [&str; 2] = ["anonymous", "ftp"];

/// The user database. Immutable once built and shared (behind an `Arc`) by
/// every connection; the credentials cache is its only interior state.
pub struct UserDb {
    users: HashMap<String, Account>,
    /// The user handed out for anonymous logins; `None` when disabled.
    anonymous: Option<User>,
    /// What a login for an unknown name verifies against (see
    /// [`hash::dummy_phc_like`]).
    dummy_phc: Arc<str>,
    cache: CredentialCache,
    /// Bounds how many argon2 runs (each allocating its memory cost, 19 MiB
    /// by default) are in flight at once: a burst of logins queues here
    /// instead of filling tokio's 512-thread blocking pool.
    hashing: Arc<Semaphore>,
    /// Parameters for hashing `--user` passwords; tests make them cheap.
    hash_params: Params,
    /// Argon2 runs so far (for tests of the cache).
    argon2_runs: AtomicU64,
}

impl UserDb {
    /// No users, anonymous login off.
    pub fn empty() -> UserDb {
        UserDb {
            users: HashMap::new(),
            anonymous: None,
            dummy_phc: hash::dummy_phc_like(None).into(),
            cache: CredentialCache::new(DEFAULT_CACHE_CAPACITY),
            hashing: Arc::new(Semaphore::new(hashing_slots(0))),
            hash_params: Params::DEFAULT,
            argon2_runs: AtomicU64::new(0),
        }
    }

    /// Loads a users file (format in [`crate::users_file`]). Every problem
    /// is reported with the file name and the entry.
    pub fn load_file(path: &Path) -> Result<UserDb, UsersFileError> {
        let text = users_file::read_file(path)?;
        let (_, accounts) = users_file::load_text(&text, path)?;
        let mut db = UserDb::empty();
        for account in accounts {
            db.insert(account);
        }
        Ok(db)
    }

    /// Adds an account given on the command line (`--user NAME:PASSWORD`):
    /// the password is hashed with argon2id now, so the plaintext is not
    /// kept; full permissions, home `/`. Refuses a name already present.
    pub fn add_plaintext(&mut self, name: &str, password: &str) -> Result<(), UsersFileError> {
        let fail = |problem| UsersFileError::Entry {
            path: None,
            index: None,
            user: name.to_string(),
            problem,
        };
        users_file::check_name(name).map_err(fail)?;
        if self.users.contains_key(name) {
            return Err(fail(EntryProblem::DuplicateName));
        }
        let phc = hash::hash_password_with_params(password.as_bytes(), self.hash_params.clone())
            .map_err(UsersFileError::Hash)?;
        let account = users_file::check_entry(&UserEntry::new(name, phc)).map_err(fail)?;
        self.insert(account);
        Ok(())
    }

    fn insert(&mut self, account: Account) {
        if self.users.is_empty() {
            // Unknown names should cost what known ones do, so the dummy
            // copies the parameters of the first real hash. Users with other
            // parameters still differ in timing from unknown names; keeping
            // one set of parameters per file avoids that.
            self.dummy_phc = hash::dummy_phc_like(Some(&account.phc)).into();
        }
        self.users.insert(account.user.name.clone(), account);
    }

    /// Allows read-only (List + Read) logins as `anonymous` or `ftp`, any
    /// case, with any password (by custom, an e-mail address), rooted at
    /// `home`. A configured user with exactly one of those names keeps it.
    pub fn enable_anonymous(&mut self, home: FtpPath) {
        self.anonymous = Some(User {
            name: ANONYMOUS_NAMES[0].to_string(),
            home,
            permissions: PermissionSet::read_only(),
            account: None,
            account_requirement: AccountRequirement::None,
            anonymous: true,
            quota: QuotaLimits::default(),
            tls: TlsRules::default(),
            credentials: 0,
        });
    }

    pub fn anonymous_enabled(&self) -> bool {
        self.anonymous.is_some()
    }

    /// Number of named users (anonymous not counted).
    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn contains_user(&self, name: &str) -> bool {
        self.users.contains_key(name)
    }

    /// How many users the credentials cache remembers (default 10 000);
    /// 0 turns it off, so every login runs argon2.
    pub fn set_cache_capacity(&mut self, capacity: usize) {
        self.cache.set_capacity(capacity);
    }

    pub fn cache_capacity(&self) -> usize {
        self.cache.capacity()
    }

    /// Copies `name`'s account from `other`, as it is there (same hash,
    /// same credentials stamp): a reload keeps the `--user` accounts this
    /// way rather than hashing their passwords again, which would change
    /// their stamps and log their sessions out. False when `other` has no
    /// such account or this database already does.
    pub fn copy_account_from(&mut self, other: &UserDb, name: &str) -> bool {
        if self.users.contains_key(name) {
            return false;
        }
        let Some(account) = other.users.get(name) else {
            return false;
        };
        self.insert(account.clone());
        true
    }

    /// Uses `other`'s limit on argon2 runs at once: a database that
    /// replaces another (a reload) shares it, so logins on the old and the
    /// new one together stay within one limit.
    pub fn share_hashing_with(&mut self, other: &UserDb) {
        self.hashing = Arc::clone(&other.hashing);
    }

    /// How many argon2 verifications may run at once; 0 (the default)
    /// means one per CPU. Each holds its memory cost for its duration.
    pub fn set_max_concurrent_hashes(&mut self, n: usize) {
        self.hashing = Arc::new(Semaphore::new(hashing_slots(n)));
    }

    /// The user handed out for `username` if it is an anonymous login.
    fn anonymous_user(&self, username: &str) -> Option<&User> {
        let anonymous = self.anonymous.as_ref()?;
        let is_alias = ANONYMOUS_NAMES.iter().any(|alias| username.eq_ignore_ascii_case(alias));
        (is_alias && !self.users.contains_key(username)).then_some(anonymous)
    }

    /// Waits for one of `hashing`'s permits: the caller holds it until it
    /// has recorded the outcome, so a login queued behind one with the
    /// same password finds that password in the cache when its turn comes.
    async fn hashing_slot(&self) -> Result<OwnedSemaphorePermit, AuthError> {
        self.hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AuthError::Backend("password hashing is shut down".into()))
    }

    /// Runs argon2 on tokio's blocking pool under `permit`, which comes
    /// back with the outcome.
    async fn verify(
        &self,
        permit: OwnedSemaphorePermit,
        phc: Arc<str>,
        password: &[u8],
    ) -> Result<(bool, OwnedSemaphorePermit), AuthError> {
        self.argon2_runs.fetch_add(1, Ordering::Relaxed);
        let password = password.to_vec();
        tokio::task::spawn_blocking(move || {
            // Moved into the task, not kept by the caller: if the login is
            // abandoned (client gone) the hash still runs to the end and
            // keeps its slot until then.
            let verified = hash::verify_password(&phc, &password)?;
            Ok((verified, permit))
        })
        .await
        .map_err(|e| AuthError::Backend(format!("password check task failed: {e}")))?
    }

    #[cfg(test)]
    pub(crate) fn use_cheap_hashing(&mut self) {
        self.hash_params = crate::hash::tests::cheap_params();
    }

    #[cfg(test)]
    pub(crate) fn argon2_runs(&self) -> u64 {
        self.argon2_runs.load(Ordering::Relaxed)
    }
}

/// `n` hashing slots, or one per CPU for 0.
fn hashing_slots(n: usize) -> usize {
    match n {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

#[async_trait]
impl Authenticator for UserDb {
    async fn authenticate(&self, username: &str, password: &[u8]) -> Result<User, AuthError> {
        if let Some(anonymous) = self.anonymous_user(username) {
            return Ok(anonymous.clone());
        }
        let Some(account) = self.users.get(username) else {
            // Spend what a wrong password for a real user costs; the
            // outcome is irrelevant.
            let slot = self.hashing_slot().await?;
            let _ = self.verify(slot, self.dummy_phc.clone(), password).await;
            return Err(AuthError::InvalidCredentials);
        };
        let digest = self.cache.digest(username, &account.phc, password);
        // Only passwords argon2 accepted are ever remembered, and a
        // disabled account is never remembered.
        let cached = || {
            digest
                .as_ref()
                .is_some_and(|digest| !account.disabled && self.cache.matches(username, digest))
        };
        if cached() {
            return Ok(account.user.clone());
        }
        let slot = self.hashing_slot().await?;
        // Again now that a slot is free: clients that reconnect together
        // (a site's transfers after a restart) queue here with the same
        // password, and only the first needs argon2.
        if cached() {
            return Ok(account.user.clone());
        }
        let (verified, _slot) = self.verify(slot, account.phc.clone(), password).await?;
        if !verified {
            return Err(AuthError::InvalidCredentials);
        }
        // Checked after the password so that "disabled" is only learnt by
        // someone who knows it, and costs the same as any other attempt.
        if account.disabled {
            return Err(AuthError::Disabled);
        }
        if let Some(digest) = digest {
            self.cache.remember(username, digest);
        }
        Ok(account.user.clone())
    }

    fn is_anonymous_name(&self, username: &str) -> bool {
        self.anonymous_user(username).is_some()
    }

    fn tls_rules(&self, username: &str) -> TlsRules {
        if self.anonymous_user(username).is_some() {
            return TlsRules::default();
        }
        self.users.get(username).map(|a| a.user.tls).unwrap_or_default()
    }

    async fn authenticate_certificate(&self, username: &str, fingerprint: &str) -> Result<User, AuthError> {
        self.authorized_by_security_data(username, |a| {
            a.certificates.iter().any(|c| c.eq_ignore_ascii_case(fingerprint))
        })
    }

    async fn authenticate_principal(&self, username: &str, principal: &str) -> Result<User, AuthError> {
        self.authorized_by_security_data(username, |a| a.principals.iter().any(|p| p == principal))
    }

    fn account_current(&self, user: &User) -> bool {
        if user.anonymous {
            // Whatever alias it used; a real account named `anonymous`
            // is another user.
            return self.anonymous.is_some();
        }
        self.users
            .get(&user.name)
            .is_some_and(|a| !a.disabled && a.user.credentials == user.credentials)
    }
}

impl UserDb {
    /// The user whose entry `listed` says the security data (a client
    /// certificate, a Kerberos principal) belongs to; a disabled account
    /// is refused after the match, so only its owner learns it is disabled.
    fn authorized_by_security_data(
        &self,
        username: &str,
        listed: impl Fn(&Account) -> bool,
    ) -> Result<User, AuthError> {
        let Some(account) = self.users.get(username) else {
            return Err(AuthError::InvalidCredentials);
        };
        if !listed(account) {
            return Err(AuthError::InvalidCredentials);
        }
        if account.disabled {
            return Err(AuthError::Disabled);
        }
        Ok(account.user.clone())
    }
}

impl fmt::Debug for UserDb {
    // By hand, so that hashes never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserDb")
            .field("users", &self.users.len())
            .field("anonymous", &self.anonymous.is_some())
            .field("cache_capacity", &self.cache.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::tests::cheap_hash;
    use ftp_proto::command::Permission;

    fn db_with(users: &[(&str, &str)]) -> UserDb {
        let mut db = UserDb::empty();
        db.use_cheap_hashing();
        for (name, password) in users {
            db.add_plaintext(name, password).unwrap();
        }
        db
    }

    #[tokio::test]
    async fn certificate_login_needs_the_users_own_fingerprint() {
        let fp = "AB:".repeat(31) + "AB";
        let other = "CD:".repeat(31) + "CD";
        let mut db = UserDb::empty();
        db.use_cheap_hashing();
        let phc = hash::hash_password_with_params(b"pw", db.hash_params.clone()).unwrap();
        let mut entry = UserEntry::new("c", phc.clone());
        entry.client_certificates = vec![fp.to_lowercase()];
        entry.require_tls_for_login = Some(true);
        db.insert(users_file::check_entry(&entry).unwrap());
        let mut off = UserEntry::new("off", phc);
        off.client_certificates = vec![fp.clone()];
        off.disabled = true;
        db.insert(users_file::check_entry(&off).unwrap());

        assert_eq!(db.authenticate_certificate("c", &fp).await.unwrap().name, "c");
        assert_eq!(
            db.authenticate_certificate("c", &other).await,
            Err(AuthError::InvalidCredentials)
        );
        assert_eq!(
            db.authenticate_certificate("nobody", &fp).await,
            Err(AuthError::InvalidCredentials)
        );
        assert_eq!(db.authenticate_certificate("off", &fp).await, Err(AuthError::Disabled));
        assert_eq!(db.tls_rules("c").login, Some(true));
        assert_eq!(db.tls_rules("nobody"), TlsRules::default());
    }

    #[tokio::test]
    async fn right_password_passes_wrong_fails() {
        let db = db_with(&[("alice", "s3cret")]);
        let user = db.authenticate("alice", b"s3cret").await.unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.home, FtpPath::root());
        assert_eq!(user.permissions, PermissionSet::all());
        assert!(!user.anonymous);
        for wrong in [&b"s3cret "[..], b"S3cret", b"", b"s3cre"] {
            assert!(matches!(
                db.authenticate("alice", wrong).await,
                Err(AuthError::InvalidCredentials)
            ));
        }
        // Names are case-sensitive.
        assert!(matches!(
            db.authenticate("Alice", b"s3cret").await,
            Err(AuthError::InvalidCredentials)
        ));
    }

    #[tokio::test]
    async fn cache_skips_argon2_but_never_lets_a_wrong_password_in() {
        let db = db_with(&[("alice", "right")]);
        // First login pays argon2.
        db.authenticate("alice", b"right").await.unwrap();
        assert_eq!(db.argon2_runs(), 1);
        // The second is served from the cache.
        db.authenticate("alice", b"right").await.unwrap();
        assert_eq!(db.argon2_runs(), 1);
        // A wrong one after a right one goes to argon2 and fails.
        assert!(matches!(
            db.authenticate("alice", b"wrong").await,
            Err(AuthError::InvalidCredentials)
        ));
        assert_eq!(db.argon2_runs(), 2);
        // And does not evict the right one.
        db.authenticate("alice", b"right").await.unwrap();
        assert_eq!(db.argon2_runs(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logins_queued_together_with_one_password_pay_argon2_once() {
        let mut db = db_with(&[("alice", "right")]);
        db.set_max_concurrent_hashes(1);
        let db = Arc::new(db);
        let logins: Vec<_> = (0..16)
            .map(|i| {
                let db = db.clone();
                // Two wrong passwords among them: each still pays argon2
                // and fails, queued or not.
                let password: &'static [u8] = if i % 8 == 3 { b"wrong" } else { b"right" };
                tokio::spawn(async move { (password, db.authenticate("alice", password).await) })
            })
            .collect();
        for login in logins {
            let (password, outcome) = login.await.unwrap();
            if password == b"right" {
                outcome.unwrap();
            } else {
                assert!(matches!(outcome, Err(AuthError::InvalidCredentials)));
            }
        }
        // The first right one, and the two wrong ones.
        assert_eq!(db.argon2_runs(), 3);
    }

    #[tokio::test]
    async fn cache_can_be_turned_off() {
        let mut db = db_with(&[("alice", "right")]);
        db.set_cache_capacity(0);
        db.authenticate("alice", b"right").await.unwrap();
        db.authenticate("alice", b"right").await.unwrap();
        assert_eq!(db.argon2_runs(), 2);
    }

    #[tokio::test]
    async fn unknown_user_fails_after_the_same_work() {
        let db = db_with(&[("alice", "pw")]);
        assert!(matches!(
            db.authenticate("mallory", b"pw").await,
            Err(AuthError::InvalidCredentials)
        ));
        assert_eq!(db.argon2_runs(), 1, "an unknown name still runs argon2");
        // The dummy copies the real users' parameters.
        assert!(db.dummy_phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
        // Never cached.
        let _ = db.authenticate("mallory", b"pw").await;
        assert_eq!(db.argon2_runs(), 2);
    }

    #[tokio::test]
    async fn disabled_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut entry = UserEntry::new("old", cheap_hash("pw"));
        entry.disabled = true;
        users_file::add_user_to_file(&path, entry).unwrap();
        let db = UserDb::load_file(&path).unwrap();
        assert!(matches!(db.authenticate("old", b"pw").await, Err(AuthError::Disabled)));
        assert!(matches!(
            db.authenticate("old", b"nope").await,
            Err(AuthError::InvalidCredentials)
        ));
        // Still refused the second time: disabled logins are not cached.
        assert!(matches!(db.authenticate("old", b"pw").await, Err(AuthError::Disabled)));
    }

    #[tokio::test]
    async fn loaded_file_users_log_in_with_their_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut entry = UserEntry::new("carol", cheap_hash("pw"));
        entry.home = Some("/carol".into());
        entry.permissions = Some(vec!["list".into(), "read".into(), "append".into()]);
        entry.account = Some("proj-7".into());
        entry.account_required = AccountRequirement::ForStore;
        users_file::add_user_to_file(&path, entry).unwrap();
        let db = UserDb::load_file(&path).unwrap();
        assert_eq!(db.len(), 1);
        assert!(db.contains_user("carol"));
        let user = db.authenticate("carol", b"pw").await.unwrap();
        assert_eq!(user.home.as_str(), "/carol");
        assert!(user.permissions.contains(Permission::Append));
        assert!(!user.permissions.contains(Permission::Write));
        assert_eq!(user.account.as_deref(), Some("proj-7"));
        assert_eq!(user.account_requirement, AccountRequirement::ForStore);
    }

    #[tokio::test]
    async fn anonymous_off_by_default() {
        let db = db_with(&[("alice", "pw")]);
        assert!(!db.anonymous_enabled());
        assert!(!db.is_anonymous_name("anonymous"));
        assert!(matches!(
            db.authenticate("anonymous", b"me@example.com").await,
            Err(AuthError::InvalidCredentials)
        ));
    }

    #[tokio::test]
    async fn anonymous_on() {
        let mut db = db_with(&[("alice", "pw")]);
        let home = FtpPath::root().resolve(b"/pub").unwrap();
        db.enable_anonymous(home.clone());
        for name in ["anonymous", "ftp", "FTP", "Anonymous"] {
            assert!(db.is_anonymous_name(name), "{name}");
            let user = db.authenticate(name, b"me@example.com").await.unwrap();
            assert!(user.anonymous);
            assert_eq!(user.permissions, PermissionSet::read_only());
            assert_eq!(user.home, home);
        }
        // Any password, even none.
        assert!(db.authenticate("ftp", b"").await.is_ok());
        assert_eq!(db.argon2_runs(), 0);
        assert!(!db.is_anonymous_name("alice"));
        assert!(!db.is_anonymous_name("anon"));
        assert_eq!(db.len(), 1, "anonymous is not counted");
    }

    #[tokio::test]
    async fn a_configured_user_keeps_an_anonymous_name() {
        let mut db = db_with(&[("ftp", "pw")]);
        db.enable_anonymous(FtpPath::root());
        assert!(!db.is_anonymous_name("ftp"));
        assert!(db.is_anonymous_name("anonymous"));
        assert!(matches!(
            db.authenticate("ftp", b"me@example.com").await,
            Err(AuthError::InvalidCredentials)
        ));
        let user = db.authenticate("ftp", b"pw").await.unwrap();
        assert!(!user.anonymous);
    }

    #[test]
    fn add_plaintext_refuses_duplicates_and_bad_names() {
        let mut db = db_with(&[("alice", "pw")]);
        let err = db.add_plaintext("alice", "other").unwrap_err();
        assert!(matches!(
            err,
            UsersFileError::Entry {
                problem: EntryProblem::DuplicateName,
                ..
            }
        ));
        assert_eq!(err.to_string(), "user \"alice\": a user with this name already exists");
        assert!(db.add_plaintext("", "pw").is_err());
        assert!(db.add_plaintext("a\rb", "pw").is_err());
        assert_eq!(db.len(), 1);
    }

    #[tokio::test]
    async fn add_plaintext_on_top_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        users_file::add_user_to_file(&path, UserEntry::new("alice", cheap_hash("a"))).unwrap();
        let mut db = UserDb::load_file(&path).unwrap();
        db.use_cheap_hashing();
        db.add_plaintext("bob", "b").unwrap();
        assert!(db.add_plaintext("alice", "x").is_err());
        assert_eq!(db.len(), 2);
        assert!(db.authenticate("alice", b"a").await.is_ok());
        assert!(db.authenticate("bob", b"b").await.is_ok());
    }

    #[test]
    fn load_file_reports_missing_file_with_its_name() {
        let err = UserDb::load_file(Path::new("/nonexistent/ferroftp-users.toml")).unwrap_err();
        assert!(matches!(err, UsersFileError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/ferroftp-users.toml"), "{err}");
    }

    #[test]
    fn debug_hides_hashes() {
        let db = db_with(&[("alice", "pw")]);
        let shown = format!("{db:?}");
        assert!(!shown.contains("argon2"), "{shown}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_logins() {
        let mut db = db_with(&[("alice", "right")]);
        db.set_max_concurrent_hashes(1);
        let db = Arc::new(db);
        let mut tasks = Vec::new();
        for i in 0..16 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let password: &[u8] = if i % 2 == 0 { b"right" } else { b"wrong" };
                (i, db.authenticate("alice", password).await)
            }));
        }
        for task in tasks {
            let (i, result) = task.await.unwrap();
            assert_eq!(result.is_ok(), i % 2 == 0, "login {i}: {result:?}");
        }
    }
}
