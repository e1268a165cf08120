//! Authentication for ferroftp: who may log in, with what password, and
//! what they may do once in.
//!
//! Layout:
//! - this file: the [`Authenticator`] trait the server calls, the [`User`]
//!   it gets back, [`AccountRequirement`] and [`AuthError`].
//! - [`permissions`]: [`PermissionSet`] and the permission names of the
//!   users file.
//! - [`users_file`]: the users file format (documented there), loading and
//!   checking it, and [`add_user_to_file`] for `ferroftp user add`.
//! - [`hash`]: argon2id hashing ([`hash_password`]), PHC string checks and
//!   (blocking) verification.
//! - `cache`: the verified-credentials cache that lets repeated logins skip
//!   argon2 without ever letting a wrong password through.
//! - [`db`]: [`UserDb`], the in-memory user database implementing
//!   [`Authenticator`], with optional anonymous login.
//! - [`quota`]: [`QuotaLimits`] (per-user bytes, files, largest file) and
//!   [`Size`], how the users file and the configuration write them.
//! - [`reload`]: [`ReloadableUsers`], a [`UserDb`] the server swaps for a
//!   new one when the users file changes (SIGHUP).

use std::fmt;

use async_trait::async_trait;
use ftp_proto::FtpPath;
use serde::{Deserialize, Serialize};

mod cache;
pub mod db;
pub mod hash;
pub mod permissions;
pub mod quota;
pub mod reload;
pub mod users_file;

pub use cache::DEFAULT_CACHE_CAPACITY;
pub use db::{UserDb, ANONYMOUS_NAMES};
pub use hash::{hash_password, HashProblem};
pub use permissions::{PermissionSet, UnknownPermission};
pub use quota::{parse_size, QuotaLimits, Size};
pub use reload::ReloadableUsers;
pub use users_file::{add_user_to_file, normalize_fingerprint, EntryProblem, UserEntry, UsersFileError};

/// When a user must send ACCT (RFC 959 §4.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AccountRequirement {
    /// ACCT is never needed.
    #[default]
    #[serde(rename = "none")]
    None,
    /// Needed to log in: PASS is answered 332 and the login completes only
    /// after a matching ACCT.
    #[serde(rename = "login")]
    ForLogin,
    /// The login completes at PASS, but storing commands are answered 532
    /// until a matching ACCT.
    #[serde(rename = "store")]
    ForStore,
}

/// A logged-in user, as the server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// The user's root: a path below the server's storage root ("/" is the
    /// storage root itself).
    pub home: FtpPath,
    pub permissions: PermissionSet,
    /// The ACCT value this user must give, if any.
    pub account: Option<String>,
    pub account_requirement: AccountRequirement,
    pub anonymous: bool,
    /// The user's own storage limits from the users file; the server fills
    /// what is unset from its defaults ([`QuotaLimits::or`]).
    pub quota: QuotaLimits,
    /// The user's own TLS rules; unset ones follow the server's policy.
    pub tls: TlsRules,
    /// A fingerprint of what logs this user in (the password hash, client
    /// certificates, Kerberos principals): a reload that changes it logs
    /// the user's sessions out, as one that disables or removes the
    /// account does. 0 for anonymous and built-in users.
    pub credentials: u64,
}

/// A user's own TLS rules, overriding the server's policy where set
/// (`Some(true)`: required for this user; `Some(false)`: plain allowed for
/// this user even where the server requires TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlsRules {
    /// TLS on the control connection before USER.
    pub login: Option<bool>,
    /// PROT P for every data connection.
    pub data: Option<bool>,
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Unknown name or wrong password; deliberately not told apart.
    InvalidCredentials,
    /// The password was right but the account is disabled. The server
    /// answers 530 as for a wrong password; this is for its log.
    Disabled,
    /// The check itself failed (e.g. the hashing task panicked).
    Backend(String),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::InvalidCredentials => f.write_str("invalid user name or password"),
            AuthError::Disabled => f.write_str("account disabled"),
            AuthError::Backend(why) => write!(f, "authentication failed: {why}"),
        }
    }
}

impl std::error::Error for AuthError {}

/// What the server asks at USER and PASS.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// Verifies a USER/PASS pair. Must never let a wrong password pass.
    /// Unknown names and wrong passwords both give
    /// [`AuthError::InvalidCredentials`], after the same amount of work.
    async fn authenticate(&self, username: &str, password: &[u8]) -> Result<User, AuthError>;

    /// Whether `username` logs in anonymously (anonymous login is enabled
    /// and the name is one of its aliases). The server uses it only to word
    /// its 331 reply ("Guest login ok, send your e-mail address as
    /// password"); every other name, known or not, gets the same 331 asking
    /// for a password, so USER never reveals which names exist.
    fn is_anonymous_name(&self, username: &str) -> bool;

    /// The TLS rules of `username`, asked at USER before any password. A
    /// name without rules of its own (unknown names too) gets the default,
    /// so only names the site gave rules to can be told apart.
    fn tls_rules(&self, _username: &str) -> TlsRules {
        TlsRules::default()
    }

    /// Logs `username` in by the client certificate the TLS handshake
    /// presented (its SHA-256 fingerprint, `AA:BB:...`), with no password:
    /// only when the user's entry lists that very certificate.
    async fn authenticate_certificate(&self, _username: &str, _fingerprint: &str) -> Result<User, AuthError> {
        Err(AuthError::InvalidCredentials)
    }

    /// Logs `username` in by the Kerberos principal an RFC 2228 GSSAPI
    /// exchange authenticated (`alice@EXAMPLE.COM`), with no password: only
    /// when the user's entry lists that very principal.
    async fn authenticate_principal(&self, _username: &str, _principal: &str) -> Result<User, AuthError> {
        Err(AuthError::InvalidCredentials)
    }

    /// Whether a session logged in as `user` may stay: false once the
    /// account is disabled or gone, or its credentials changed (after a
    /// reload of the users).
    fn account_current(&self, _user: &User) -> bool {
        true
    }

    /// Changes whenever the accounts may have changed (a reload); `None`
    /// for accounts that never change while the server runs.
    fn account_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}
