//! USER, PASS, ACCT (RFC 959 §4.1.1), REIN and QUIT.
//!
//! A failed login (wrong password, disabled account, wrong ACCT) is scored
//! against the client's address (`bans`): its reply waits a growing delay,
//! and enough of them ban the address (the failure reply, then 421 and
//! close). A banned address's open sessions get 421 at their next PASS.
//! A login beyond `max_sessions_per_user` gets 421 "Too many sessions for
//! this user" and the connection closes: 421, not 530, because the
//! password was right and the client should retry later rather than ask
//! for another one; and only after the password is checked, so the limit
//! tells nothing about an account to someone without its password.

use std::sync::Arc;
use std::time::Instant;

use ftp_auth::{AccountRequirement, AuthError, User};
use ftp_proto::{FtpPath, ReplyCode};
use ftp_storage::Storage;

use crate::config::FailedLoginReply;
use crate::data::DataSetup;
use crate::session::{Flow, Login, Session, TransferParams};
use crate::tls;

impl Session {
    /// USER: starts a new login; a logged-in user is logged out first (RFC
    /// 959 lets USER change the user at any time).
    pub(super) async fn cmd_user(&mut self, name: &[u8]) {
        let Ok(name) = std::str::from_utf8(name) else {
            self.reply(ReplyCode::ArgumentSyntaxError, "User name must be UTF-8")
                .await;
            return;
        };
        let global = self.config.tls.as_ref().is_some_and(|t| t.policy.require_for_login);
        let required = self.shared.auth.tls_rules(name).login.unwrap_or(global);
        if !self.command_confidential() && required {
            self.reply(
                ReplyCode::RequestDeniedForPolicy,
                "Policy requires TLS; send AUTH TLS first",
            )
            .await;
            return;
        }
        self.log_out();
        if self.certificate_login(name).await || self.principal_login(name).await {
            return;
        }
        let guest = self.shared.auth.is_anonymous_name(name);
        self.login = Login::AwaitingPassword { name: name.to_string() };
        if guest {
            self.reply(
                ReplyCode::UserNameOkayNeedPassword,
                "Guest login ok, send your e-mail address as password",
            )
            .await;
        } else {
            // The same answer for every name, so USER reveals nothing.
            self.reply(ReplyCode::UserNameOkayNeedPassword, "Password required")
                .await;
        }
    }

    /// PASS: verifies the password; 230, or 332 when the account needs ACCT.
    pub(super) async fn cmd_pass(&mut self, password: &[u8]) {
        let name = match &self.login {
            Login::AwaitingPassword { name } => name.clone(),
            Login::LoggedIn => {
                self.reply(ReplyCode::CommandSuperfluous, "Already logged in").await;
                return;
            }
            _ => {
                self.reply(ReplyCode::BadSequence, "Send USER first").await;
                return;
            }
        };
        if self.shared.bans.is_banned(self.addr_key(), Instant::now()) {
            self.login = Login::AwaitingUser;
            self.refuse_banned().await;
            return;
        }
        let user = match self.shared.auth.authenticate(&name, password).await {
            Ok(user) => user,
            Err(e) => {
                self.login = Login::AwaitingUser;
                let (code, text) = match self.config.failed_login_reply {
                    FailedLoginReply::NotLoggedIn => (ReplyCode::NotLoggedIn, "Login incorrect"),
                    FailedLoginReply::InvalidCredentials => {
                        (ReplyCode::InvalidUsernameOrPassword, "Invalid username or password")
                    }
                };
                if let AuthError::Backend(msg) = &e {
                    // Not the client's fault: not scored.
                    tracing::warn!(error = %msg, "authentication backend failed");
                    self.reply(code, text).await;
                } else {
                    tracing::info!(peer = %self.peer, user = %name, "failed login");
                    self.failed_login(code, text).await;
                }
                return;
            }
        };
        let storage = match self.shared.backend.user_storage(&user.home).await {
            Ok(s) => s,
            Err(e) if e.kind == ftp_storage::ErrorKind::TemporarilyUnavailable => {
                // The password was right and the store may be back in a
                // moment: 530 would tell the client the credentials are
                // wrong. RFC 959 allows PASS no 4xx but 421, which closes.
                tracing::warn!(user = %user.name, error = %e, "storage temporarily unavailable at login");
                self.login = Login::AwaitingUser;
                self.reply(
                    ReplyCode::ServiceNotAvailable,
                    "Storage temporarily unavailable; try again later",
                )
                .await;
                self.close_requested = true;
                return;
            }
            Err(e) => {
                tracing::error!(user = %user.name, error = %e, "home directory unavailable");
                self.login = Login::AwaitingUser;
                self.reply(ReplyCode::NotLoggedIn, "Home directory unavailable").await;
                return;
            }
        };
        if user.account_requirement == AccountRequirement::ForLogin {
            self.login = Login::AwaitingAccount { user, storage };
            self.reply(ReplyCode::NeedAccountForLogin, "Need account for login; send ACCT")
                .await;
            return;
        }
        self.complete_login(user, storage, ReplyCode::UserLoggedIn).await;
    }

    /// Logs in by the client certificate of the TLS session, when the
    /// user's entry lists it: 232 (RFC 2228: authorized by security data
    /// exchange), or 332 when the account also needs ACCT. False when there
    /// is no certificate or it is not this user's: USER then goes on to ask
    /// for a password as usual, telling nothing.
    async fn certificate_login(&mut self, name: &str) -> bool {
        let Some(fingerprint) = tls::peer_fingerprint(&self.ctl.stream) else {
            return false;
        };
        if self.shared.bans.is_banned(self.addr_key(), Instant::now()) {
            return false;
        }
        let verdict = self.shared.auth.authenticate_certificate(name, &fingerprint).await;
        self.log_in_by_security_data(name, "client certificate", verdict).await
    }

    /// Ends a login that security data may authorize (a client
    /// certificate, a Kerberos principal, named by `what` in the log), on
    /// the authenticator's `verdict`: 232, or 332 when the account also
    /// needs ACCT. False when the data is not this user's, the account is
    /// disabled or the home is unavailable: USER then goes on to ask for a
    /// password, telling nothing.
    pub(super) async fn log_in_by_security_data(
        &mut self,
        name: &str,
        what: &str,
        verdict: Result<User, AuthError>,
    ) -> bool {
        let user = match verdict {
            Ok(user) => user,
            Err(AuthError::Disabled) => {
                tracing::info!(peer = %self.peer, user = %name, "{what} of a disabled account");
                return false;
            }
            Err(_) => return false,
        };
        tracing::info!(peer = %self.peer, user = %user.name, "{what} accepted");
        let storage = match self.shared.backend.user_storage(&user.home).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(user = %user.name, error = %e, "home directory unavailable");
                return false;
            }
        };
        if user.account_requirement == AccountRequirement::ForLogin {
            self.login = Login::AwaitingAccount { user, storage };
            self.reply(ReplyCode::NeedAccountForLogin, "Need account for login; send ACCT")
                .await;
        } else {
            self.complete_login(user, storage, ReplyCode::USER_LOGGED_IN_BY_SECURITY_DATA)
                .await;
        }
        true
    }

    async fn complete_login(&mut self, user: User, storage: Arc<dyn Storage>, code: ReplyCode) {
        // Subscribed before the check, so a reload after it is seen: the
        // user was looked up in the accounts of when PASS began, and a
        // reload since may have disabled, removed or changed the account.
        let account_changes = self.shared.auth.account_changes();
        if !self.shared.auth.account_current(&user) {
            tracing::info!(peer = %self.peer, user = %user.name, "account changed during login");
            self.log_out();
            self.reply(ReplyCode::NotLoggedIn, "Login incorrect").await;
            return;
        }
        let Some(place) = self.shared.per_user.try_acquire(&user.name) else {
            tracing::info!(peer = %self.peer, user = %user.name, "too many sessions for this user");
            self.log_out();
            self.reply(ReplyCode::ServiceNotAvailable, "Too many sessions for this user")
                .await;
            self.close_requested = true;
            return;
        };
        self.user_place = Some(place);
        self.space_log_in(&user, &storage);
        tracing::info!(peer = %self.peer, user = %user.name, "logged in");
        let text = if user.anonymous {
            "Guest login ok, access restrictions apply"
        } else if code == ReplyCode::USER_LOGGED_IN_BY_SECURITY_DATA {
            "User logged in, authorized by security data exchange"
        } else {
            "Login successful"
        };
        self.registration.set_user(Some(&user.name));
        self.user = Some(user);
        self.storage = Some(storage);
        self.cwd = FtpPath::root();
        self.login = Login::LoggedIn;
        self.account_changes = account_changes;
        self.reply(code, text).await;
    }

    /// ACCT: finishes a login that needs an account (332), or gives the
    /// account needed for storing (532); superfluous otherwise (202).
    pub(super) async fn cmd_acct(&mut self, account: &[u8]) {
        match std::mem::replace(&mut self.login, Login::AwaitingUser) {
            Login::AwaitingAccount { user, storage } => {
                if account_matches(&user, account) {
                    self.account_given = true;
                    self.complete_login(user, storage, ReplyCode::UserLoggedIn).await;
                } else {
                    self.login = Login::AwaitingAccount { user, storage };
                    self.failed_login(ReplyCode::NotLoggedIn, "Account not accepted").await;
                }
            }
            Login::LoggedIn => {
                self.login = Login::LoggedIn;
                let user = self.user.as_ref().expect("logged in");
                if user.account_requirement == AccountRequirement::None {
                    self.reply(ReplyCode::CommandSuperfluous, "ACCT not needed").await;
                } else if account_matches(user, account) {
                    self.account_given = true;
                    self.reply(ReplyCode::UserLoggedIn, "Account accepted").await;
                } else {
                    self.reply(ReplyCode::NotLoggedIn, "Account not accepted").await;
                }
            }
            other => {
                self.login = other;
                self.reply(ReplyCode::BadSequence, "Log in with USER and PASS first")
                    .await;
            }
        }
    }

    /// REIN: back to the state of a new connection, keeping the control
    /// connection (RFC 959 §4.1.1). Queued behind a running transfer, so any
    /// transfer has finished by now.
    pub(super) async fn cmd_rein(&mut self) {
        self.log_out();
        // The control connection stays in TLS; the data protection level
        // starts over (RFC 4217 §11).
        self.pbsz = self.implicit_tls;
        self.prot_private = self.implicit_tls;
        // So does GSSAPI's; its security context stays.
        self.gss_buffer_size = None;
        self.gss_data = None;
        self.host = None;
        self.utf8 = true;
        self.epsv_all = false;
        self.params = TransferParams::default();
        self.data = DataSetup::None;
        self.reply(ReplyCode::ServiceReady, "Service ready for new user").await;
    }

    pub(super) async fn cmd_quit(&mut self) -> Flow {
        if self.transfer.is_some() {
            self.quit_pending = true;
            self.reply(
                ReplyCode::LogoutAfterTransfer,
                "Logging out when the transfer completes",
            )
            .await;
            return Flow::Continue;
        }
        self.reply(ReplyCode::ClosingControlConnection, "Goodbye").await;
        Flow::Close
    }

    /// Scores a failed login against the client's address, waits the
    /// delay that earns, then replies; a failure that bans the address ends
    /// the session with 421 after the reply.
    async fn failed_login(&mut self, code: ReplyCode, text: &str) {
        let verdict = self.shared.bans.record_failure(self.addr_key(), Instant::now());
        if !verdict.delay.is_zero() {
            tokio::time::sleep(verdict.delay).await;
        }
        self.reply(code, text).await;
        if verdict.banned {
            tracing::warn!(peer = %self.peer, address = %self.addr_key(), "address banned after failed logins");
            self.refuse_banned().await;
        }
    }

    async fn refuse_banned(&mut self) {
        self.reply(
            ReplyCode::ServiceNotAvailable,
            "Too many failed logins from your address; try again later",
        )
        .await;
        self.close_requested = true;
    }

    /// Forgets any login (after AUTH TLS changes the security state).
    pub(super) fn reset_login(&mut self) {
        self.log_out();
    }

    fn log_out(&mut self) {
        self.registration.set_user(None);
        self.login = Login::AwaitingUser;
        self.account_changes = None;
        self.revoked_pending = false;
        self.user = None;
        self.user_place = None;
        self.space_log_out();
        self.storage = None;
        self.account_given = false;
        self.cwd = FtpPath::root();
        self.restart_offset = None;
        self.rename_from = None;
    }
}

/// The account a user must give, if the user has one configured; an
/// account-requiring user without a configured value accepts any.
fn account_matches(user: &User, given: &[u8]) -> bool {
    match &user.account {
        Some(expected) => expected.as_bytes() == given,
        None => !given.is_empty(),
    }
}
