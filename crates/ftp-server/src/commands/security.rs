//! RFC 2228 security commands. Without TLS configured, AUTH names a
//! mechanism this server does not offer (504), and the commands that need
//! an established security exchange are out of sequence (503).

use ftp_proto::command::ProtLevel;
use ftp_proto::ReplyCode;

use crate::session::Session;

impl Session {
    pub(super) async fn cmd_auth(&mut self, mechanism: &str) {
        self.reply(ReplyCode::ParameterNotImplemented, format!("AUTH {mechanism} not available")).await;
    }

    pub(super) async fn cmd_adat(&mut self) {
        self.reply(ReplyCode::BadSequence, "ADAT needs AUTH first").await;
    }

    pub(super) async fn cmd_pbsz(&mut self) {
        self.reply(ReplyCode::BadSequence, "PBSZ needs AUTH first").await;
    }

    pub(super) async fn cmd_prot(&mut self, _level: ProtLevel) {
        self.reply(ReplyCode::BadSequence, "PROT needs AUTH and PBSZ first").await;
    }

    pub(super) async fn cmd_ccc(&mut self) {
        self.reply(ReplyCode::CommandProtectionLevelDenied, "Control connection is not protected").await;
    }

    pub(super) async fn cmd_protected(&mut self) {
        self.reply(ReplyCode::BadSequence, "No security mechanism established; send AUTH first").await;
    }
}
