//! RFC 2228 security commands: as RFC 4217 profiles them for TLS (AUTH,
//! PBSZ, PROT, CCC; ADAT, MIC, CONF and ENC have no use with TLS), and for
//! the GSSAPI mechanism (Kerberos), whose handlers are in `gss`.

use std::time::Duration;

use ftp_proto::command::ProtLevel;
use ftp_proto::ReplyCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::data::DataSetup;
use crate::gss_framing::CommandLevel;
use crate::session::{Flow, GssState, Session};
use crate::tls::MaybeTls;

/// How long CCC waits for the client's close_notify.
const CCC_CLOSE_NOTIFY_WAIT: Duration = Duration::from_secs(10);

impl Session {
    fn tls_policy(&self) -> Option<&crate::tls::TlsPolicy> {
        self.config.tls.as_ref().map(|t| &t.policy)
    }

    /// PROT P required for data: the logged-in user's own rule, else the
    /// server's policy.
    pub(super) fn data_protection_required(&self) -> bool {
        let global = self.tls_policy().is_some_and(|p| p.require_for_data);
        self.user.as_ref().and_then(|u| u.tls.data).unwrap_or(global)
    }

    /// AUTH TLS (and its aliases SSL, TLS-C, TLS-P): 234, then the
    /// handshake. Anything the client pipelined after AUTH is discarded.
    pub(super) async fn cmd_auth(&mut self, mechanism: &str) -> Flow {
        if mechanism == "GSSAPI" {
            self.cmd_auth_gssapi().await;
            return Flow::Continue;
        }
        if self.config.tls.is_none() {
            self.reply(
                ReplyCode::ParameterNotImplemented,
                format!("AUTH {mechanism} not available: TLS is not configured"),
            )
            .await;
            return Flow::Continue;
        }
        if !matches!(mechanism, "TLS" | "SSL" | "TLS-C" | "TLS-P") {
            self.reply(
                ReplyCode::ParameterNotImplemented,
                format!("AUTH {mechanism} not supported; use AUTH TLS"),
            )
            .await;
            return Flow::Continue;
        }
        if self.tls.is_some() {
            self.reply(ReplyCode::BadSequence, "Already using TLS").await;
            return Flow::Continue;
        }
        if self.gss_established() {
            self.reply(ReplyCode::BadSequence, "A GSSAPI security context is already in use")
                .await;
            return Flow::Continue;
        }
        self.gss = GssState::None;
        self.reply(
            ReplyCode::SecurityDataExchangeComplete,
            format!("AUTH {mechanism} successful; start TLS negotiation"),
        )
        .await;
        if !self.start_tls().await {
            return Flow::Close;
        }
        // RFC 4217 §4: security state changes reset the login.
        self.reset_login();
        Flow::Continue
    }

    pub(super) async fn cmd_adat(&mut self, data: &[u8]) {
        if self.tls.is_some() {
            self.reply(ReplyCode::BadSequence, "ADAT is not used with TLS").await;
        } else if matches!(self.gss, GssState::None) {
            self.reply(ReplyCode::BadSequence, "ADAT needs AUTH first").await;
        } else {
            self.gss_adat(data).await;
        }
    }

    /// PBSZ: TLS has no buffer size; RFC 4217 §8 answers PBSZ=0.
    pub(super) async fn cmd_pbsz(&mut self, size: u32) {
        if self.gss_established() {
            self.gss_pbsz(size).await;
            return;
        }
        if self.tls.is_none() {
            self.reply(ReplyCode::BadSequence, "PBSZ needs AUTH first").await;
            return;
        }
        self.pbsz = true;
        self.reply(ReplyCode::CommandOkay, "PBSZ=0").await;
    }

    /// PROT C or P (S and E cannot be provided by TLS: 536).
    pub(super) async fn cmd_prot(&mut self, level: ProtLevel) {
        if self.gss_established() {
            self.gss_prot(level).await;
            return;
        }
        if self.tls.is_none() || !self.pbsz {
            self.reply(ReplyCode::BadSequence, "PROT needs AUTH and PBSZ first")
                .await;
            return;
        }
        match level {
            ProtLevel::Private => {
                if !self.prot_private {
                    self.forget_kept_data_connection();
                }
                self.prot_private = true;
                self.reply(ReplyCode::CommandOkay, "Protection level set to P").await;
            }
            ProtLevel::Clear if self.data_protection_required() => {
                self.reply(
                    ReplyCode::ProtectionPolicyRefused,
                    "PROT C not allowed: data connections must be protected",
                )
                .await;
            }
            ProtLevel::Clear => {
                if self.prot_private {
                    self.forget_kept_data_connection();
                }
                self.prot_private = false;
                self.reply(ReplyCode::CommandOkay, "Protection level set to C").await;
            }
            ProtLevel::Safe | ProtLevel::Confidential => {
                self.reply(
                    ReplyCode::ProtectionLevelNotSupported,
                    "PROT S and E are not supported by TLS",
                )
                .await;
            }
        }
    }

    /// A data connection that MODE B kept open has the protection it was
    /// opened with: after a new level, the next transfer needs a new one
    /// (425 until PASV or PORT).
    pub(super) fn forget_kept_data_connection(&mut self) {
        if matches!(self.data, DataSetup::Open(_)) {
            self.data = DataSetup::None;
        }
    }

    /// CCC (RFC 4217 §6): back to a plain control connection, after both
    /// sides exchange close_notify. Refused unless the site allows it.
    pub(super) async fn cmd_ccc(&mut self) -> Flow {
        if self.gss_established() {
            self.gss_ccc().await;
            return Flow::Continue;
        }
        // The control stream itself, not `self.tls`: that stays set after a
        // CCC, for the data connections under PROT P.
        if !matches!(self.ctl.stream, MaybeTls::Tls(_)) || self.implicit_tls {
            self.reply(
                ReplyCode::CommandProtectionLevelDenied,
                "Control connection is not protected by AUTH TLS",
            )
            .await;
            return Flow::Continue;
        }
        if !self.tls_policy().is_some_and(|p| p.allow_ccc) {
            self.reply(ReplyCode::CommandProtectionLevelDenied, "CCC not allowed by policy")
                .await;
            return Flow::Continue;
        }
        self.reply(ReplyCode::CommandOkay, "CCC ok; the control connection is now clear")
            .await;
        let MaybeTls::Tls(mut tls) = std::mem::replace(&mut self.ctl.stream, MaybeTls::Detached) else {
            return Flow::Close;
        };
        tls.get_mut().1.send_close_notify();
        if tls.flush().await.is_err() {
            return Flow::Close;
        }
        let (socket, _) = tls.into_inner();
        let mut tcp = socket.into_tcp();
        // The client answers with its own close_notify: one TLS record to
        // read and drop before the plaintext commands start.
        let skip = async {
            let mut header = [0u8; 5];
            tcp.read_exact(&mut header).await?;
            let len = u16::from_be_bytes([header[3], header[4]]) as usize;
            let mut body = vec![0u8; len];
            tcp.read_exact(&mut body).await?;
            Ok::<_, std::io::Error>(())
        };
        match tokio::time::timeout(CCC_CLOSE_NOTIFY_WAIT, skip).await {
            Ok(Ok(())) => {
                self.ctl.stream = MaybeTls::Plain(tcp);
                self.ctl.discard_pending_input();
                Flow::Continue
            }
            _ => Flow::Close,
        }
    }

    pub(super) async fn cmd_protected(&mut self, level: CommandLevel, argument: &[u8]) -> Flow {
        if self.tls.is_some() {
            self.reply(
                ReplyCode::CommandNotImplemented,
                "MIC, CONF and ENC are not used with TLS",
            )
            .await;
        } else if !self.gss_established() {
            self.reply(
                ReplyCode::BadSequence,
                "No security mechanism established; send AUTH first",
            )
            .await;
        } else {
            return self.gss_protected(level, argument).await;
        }
        Flow::Continue
    }
}
