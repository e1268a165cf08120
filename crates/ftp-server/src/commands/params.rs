//! Transfer parameters: TYPE, STRU, MODE (RFC 959 §4.1.2), REST (RFC 3659
//! §5) and OPTS (RFC 2389).

use ftp_proto::command::{Structure, TransferMode, TransferType};
use ftp_proto::listing::FactSet;
use ftp_proto::ReplyCode;

use crate::session::Session;

impl Session {
    pub(super) async fn cmd_type(&mut self, kind: TransferType) {
        self.params.kind = kind;
        let text = match kind {
            TransferType::Ascii => "Type set to A",
            TransferType::Image => "Type set to I",
        };
        self.reply(ReplyCode::CommandOkay, text).await;
    }

    pub(super) async fn cmd_stru(&mut self, structure: Structure) {
        self.params.structure = structure;
        let text = match structure {
            Structure::File => "Structure set to F",
            Structure::Page => "Structure set to P",
        };
        self.reply(ReplyCode::CommandOkay, text).await;
    }

    pub(super) async fn cmd_mode(&mut self, mode: TransferMode) {
        self.params.mode = mode;
        let text = match mode {
            TransferMode::Stream => "Mode set to S",
            TransferMode::Block => "Mode set to B",
        };
        self.reply(ReplyCode::CommandOkay, text).await;
    }

    /// REST: a byte offset in stream mode, or (MODE B) the server's side of
    /// a 110 restart mark, which is the same byte offset here.
    pub(super) async fn cmd_rest(&mut self, offset: u64) {
        self.restart_offset = Some(offset);
        self.reply(
            ReplyCode::RequestedFileActionPending,
            format!("Restarting at {offset}; send STOR or RETR"),
        )
        .await;
    }

    /// OPTS UTF8 ON|OFF (RFC 2640; paths are UTF-8 either way) and
    /// `OPTS MLST <facts>` (RFC 3659 §7.9).
    pub(super) async fn cmd_opts(&mut self, name: &str, value: &[u8]) {
        let value = String::from_utf8_lossy(value).to_ascii_uppercase();
        match (name, value.as_str()) {
            ("UTF8" | "UTF-8", "ON" | "") => {
                self.utf8 = true;
                self.reply(ReplyCode::CommandOkay, "UTF8 mode on").await;
            }
            ("UTF8" | "UTF-8", "OFF") => {
                self.utf8 = false;
                self.reply(ReplyCode::CommandOkay, "UTF8 mode off").await;
            }
            ("MLST", facts) => {
                self.facts = FactSet::select(facts);
                let text = format!("MLST OPTS {}", self.facts.selected_names());
                self.reply(ReplyCode::CommandOkay, text).await;
            }
            _ => {
                self.reply(ReplyCode::ArgumentSyntaxError, "Option not understood")
                    .await
            }
        }
    }
}
