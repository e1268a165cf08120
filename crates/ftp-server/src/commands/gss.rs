//! RFC 2228 with the GSSAPI mechanism (Kerberos 5): AUTH GSSAPI (334),
//! ADAT rounds (335, then 235), protected commands (MIC, CONF, ENC)
//! answered 631, 633 and 632, PBSZ and PROT for protected data
//! connections, and login by the authenticated principal (232).

use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ftp_proto::command::ProtLevel;
use ftp_proto::{Reply, ReplyCode, Verb};

use crate::gss_framing::{self, CommandError, CommandLevel};
use crate::gssapi::Step;
use crate::session::{Flow, GssState, Session};

/// The smallest buffer PBSZ accepts under GSSAPI: room for a wrap's
/// overhead (about 60 bytes) and some data.
const MIN_BUFFER_SIZE: u32 = 512;

impl Session {
    pub(crate) fn gss_established(&self) -> bool {
        matches!(self.gss, GssState::Established(_))
    }

    /// Data connections are protected: PROT P under TLS, or PROT S or P
    /// under GSSAPI.
    /// (What a site's `require_for_data` asks: encryption, so PROT S,
    /// integrity alone, is not enough.)
    pub(crate) fn data_protected(&self) -> bool {
        self.prot_private || (self.gss_established() && self.gss_data == Some(true))
    }

    /// The command being run came encrypted: under TLS, or in a GSSAPI
    /// ENC or CONF. What a password needs where the site requires
    /// protection for login.
    pub(crate) fn command_confidential(&self) -> bool {
        self.tls.is_some() || self.command_level.is_some_and(|l| l != CommandLevel::Integrity)
    }

    /// Whether a command that came unprotected may run: any, unless a
    /// GSSAPI context is set up and the site requires protected commands.
    pub(crate) fn plain_command_allowed(&self, verb: Verb) -> bool {
        !(self.protected_commands_required() && self.gss_established())
            || matches!(verb, Verb::Mic | Verb::Conf | Verb::Enc)
    }

    /// `gssapi.require_protected_commands`.
    fn protected_commands_required(&self) -> bool {
        self.config
            .gssapi
            .as_ref()
            .is_some_and(|g| g.require_protected_commands)
    }

    /// The GSSAPI protection of the next data connection, if any.
    pub(crate) fn gss_data_protection(&self) -> Option<gss_framing::DataProtection> {
        let GssState::Established(context) = &self.gss else {
            return None;
        };
        Some(gss_framing::DataProtection {
            context: Arc::clone(context),
            confidential: self.gss_data?,
            buffer_size: self.gss_buffer_size?,
            after: context.highest_received(),
        })
    }

    /// AUTH GSSAPI: 334 and the ADAT rounds may start. Like AUTH TLS it
    /// starts the login over.
    pub(super) async fn cmd_auth_gssapi(&mut self) {
        let Some(gss) = &self.config.gssapi else {
            self.reply(
                ReplyCode::ParameterNotImplemented,
                "AUTH GSSAPI not available: no keytab is configured",
            )
            .await;
            return;
        };
        if self.tls.is_some() {
            self.reply(ReplyCode::BadSequence, "Already using TLS").await;
            return;
        }
        if self.gss_established() {
            self.reply(ReplyCode::BadSequence, "The security data exchange is already done")
                .await;
            return;
        }
        self.gss = GssState::Negotiating(Some(gss.acceptor.negotiation()));
        self.reset_login();
        self.reply(
            ReplyCode::SecurityMechanismAccepted,
            "AUTH GSSAPI accepted; send the security data with ADAT",
        )
        .await;
    }

    /// ADAT under GSSAPI: one token of the context's setup. A token that
    /// fails ends the exchange (535): the client starts again with AUTH.
    pub(super) async fn gss_adat(&mut self, data: &[u8]) {
        let GssState::Negotiating(negotiation) = &mut self.gss else {
            self.reply(ReplyCode::BadSequence, "The security data exchange is already done")
                .await;
            return;
        };
        let Ok(token) = BASE64.decode(data.trim_ascii()) else {
            self.reply(ReplyCode::ArgumentSyntaxError, "ADAT data is not base64")
                .await;
            return;
        };
        let Some(negotiation) = negotiation.take() else {
            self.reply(ReplyCode::BadSequence, "Send AUTH GSSAPI first").await;
            return;
        };
        // The library may read the keytab and write its replay cache.
        let step = tokio::task::spawn_blocking(move || negotiation.step(&token)).await;
        let step = match step {
            Ok(Ok(step)) => step,
            Ok(Err(e)) => {
                self.gss = GssState::None;
                tracing::info!(peer = %self.peer, error = %e, "GSSAPI security data rejected");
                self.reply(
                    ReplyCode::FailedSecurityCheck,
                    "Security data rejected; send AUTH again",
                )
                .await;
                return;
            }
            Err(e) => {
                self.gss = GssState::None;
                tracing::error!(error = %e, "GSSAPI step panicked");
                self.reply(ReplyCode::LocalError, "Security data could not be processed")
                    .await;
                return;
            }
        };
        match step {
            Step::Continue(negotiation, token) => {
                self.gss = GssState::Negotiating(Some(negotiation));
                self.reply(
                    ReplyCode::SecurityDataNeedMore,
                    format!("ADAT={}", BASE64.encode(token)),
                )
                .await;
            }
            Step::Established { context, token } => {
                tracing::info!(peer = %self.peer, principal = %context.client(), "GSSAPI context established");
                self.gss = GssState::Established(Arc::new(context));
                let text = if token.is_empty() {
                    "Security data exchange complete".to_string()
                } else {
                    format!("ADAT={}", BASE64.encode(token))
                };
                self.reply(ReplyCode::SecurityDataExchangeDone, text).await;
            }
        }
    }

    /// PBSZ under GSSAPI: the largest protected block, lowered to the
    /// site's maximum (`200 PBSZ=n` tells the client the size agreed).
    pub(super) async fn gss_pbsz(&mut self, size: u32) {
        if size < MIN_BUFFER_SIZE {
            self.reply(
                ReplyCode::ArgumentSyntaxError,
                format!("PBSZ must be at least {MIN_BUFFER_SIZE} under GSSAPI"),
            )
            .await;
            return;
        }
        let max = self.config.gssapi.as_ref().map_or(size, |g| g.max_buffer_size);
        let agreed = size.min(max);
        self.gss_buffer_size = Some(agreed);
        self.forget_kept_data_connection();
        self.reply(ReplyCode::CommandOkay, format!("PBSZ={agreed}")).await;
    }

    /// PROT under GSSAPI: C, S (integrity) or P (encrypted). E is served
    /// as P: GSSAPI has no encryption without integrity, and more
    /// protection than asked is never less.
    pub(super) async fn gss_prot(&mut self, level: ProtLevel) {
        if self.gss_buffer_size.is_none() {
            self.reply(ReplyCode::BadSequence, "PROT needs PBSZ first").await;
            return;
        }
        let (data, text) = match level {
            ProtLevel::Clear if self.data_protection_required() => {
                self.reply(
                    ReplyCode::ProtectionPolicyRefused,
                    "PROT C not allowed: data connections must be protected",
                )
                .await;
                return;
            }
            ProtLevel::Clear => (None, "Protection level set to C"),
            ProtLevel::Safe => (Some(false), "Protection level set to S"),
            ProtLevel::Private => (Some(true), "Protection level set to P"),
            ProtLevel::Confidential => (Some(true), "Protection level set to E (encrypted with integrity, as P)"),
        };
        self.gss_data = data;
        self.forget_kept_data_connection();
        self.reply(ReplyCode::CommandOkay, text).await;
    }

    /// CCC under GSSAPI: plain commands from now on, where the site does
    /// not require protected ones.
    pub(super) async fn gss_ccc(&mut self) {
        if self.protected_commands_required() {
            self.reply(ReplyCode::CommandProtectionLevelDenied, "CCC not allowed by policy")
                .await;
        } else {
            self.reply(ReplyCode::CommandOkay, "CCC ok; commands may now come unprotected")
                .await;
        }
    }

    /// MIC, CONF or ENC under GSSAPI: opens the command inside and runs it
    /// (or queues it behind a running transfer) at that protection level.
    pub(super) async fn gss_protected(&mut self, level: CommandLevel, argument: &[u8]) -> Flow {
        let GssState::Established(context) = &self.gss else {
            return Flow::Continue;
        };
        if self.command_level.is_some() {
            self.reply(ReplyCode::BadSequence, "A protected command cannot carry another")
                .await;
            return Flow::Continue;
        }
        let context = Arc::clone(context);
        // While a transfer runs, an upload's blocks may be opened before a
        // command wrapped ahead of them: the command need only follow the
        // last command. Otherwise it must follow every token seen.
        let after = if self.transfer.is_some() {
            self.gss_last_command
        } else {
            context.highest_received()
        };
        let line = match gss_framing::open_command(&context, level, argument, after) {
            Ok((line, sequence)) => {
                self.gss_last_command = Some(sequence);
                line
            }
            Err(e) => {
                let (code, text) = match &e {
                    CommandError::NotBase64 => (ReplyCode::ArgumentSyntaxError, "Protected command is not base64"),
                    CommandError::NotALine => (
                        ReplyCode::ArgumentSyntaxError,
                        "Protected command must hold one command line",
                    ),
                    CommandError::NotEncrypted => (
                        ReplyCode::FailedSecurityCheck,
                        "CONF and ENC commands must be encrypted",
                    ),
                    CommandError::EncryptedMic => {
                        (ReplyCode::FailedSecurityCheck, "MIC commands must not be encrypted")
                    }
                    CommandError::OutOfOrder => {
                        tracing::info!(peer = %self.peer, "protected command replayed or out of order");
                        (ReplyCode::FailedSecurityCheck, "Protected command out of order")
                    }
                    CommandError::Verify(why) => {
                        tracing::info!(peer = %self.peer, error = %why, "protected command failed its check");
                        (ReplyCode::FailedSecurityCheck, "Protected command failed its check")
                    }
                };
                // Plain: the token did not open.
                self.send_as(None, Reply::new(code, text)).await;
                return Flow::Continue;
            }
        };
        // Boxed: the command inside runs through the same dispatch.
        Box::pin(self.accept_protected_line(line, Some(level))).await
    }

    /// Logs in by the GSSAPI principal when the user's entry lists it: 232
    /// (authorized by security data exchange), or 332 when the account
    /// also needs ACCT. False when there is no context or the principal is
    /// not this user's: USER then asks for a password as usual.
    pub(super) async fn principal_login(&mut self, name: &str) -> bool {
        let GssState::Established(context) = &self.gss else {
            return false;
        };
        if self.shared.bans.is_banned(self.addr_key(), Instant::now()) {
            return false;
        }
        let principal = context.client().to_string();
        let verdict = self.shared.auth.authenticate_principal(name, &principal).await;
        self.log_in_by_security_data(name, &format!("Kerberos principal {principal}"), verdict)
            .await
    }
}
