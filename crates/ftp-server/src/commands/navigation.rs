//! CWD/XCWD, CDUP/XCUP and PWD/XPWD (RFC 959 §4.1.1, RFC 775).

use ftp_proto::listing::EntryKind;
use ftp_proto::reply::quote_path;
use ftp_proto::ReplyCode;

use crate::session::Session;

impl Session {
    /// CWD (and CDUP as `CWD ..`): the target must be a directory the user
    /// can reach.
    pub(super) async fn cmd_cwd(&mut self, arg: &[u8]) {
        let Some(path) = self.resolve(arg).await else { return };
        match self.storage().stat(&path).await {
            Ok(facts) if facts.kind == EntryKind::Dir => {
                let text = format!("Directory changed to {}", quote_path(path.as_str()));
                self.cwd = path;
                self.reply(ReplyCode::RequestedFileActionOkay, text).await;
            }
            Ok(_) => self.reply(ReplyCode::FileUnavailable, "Not a directory").await,
            Err(e) => self.storage_failed(&e).await,
        }
    }

    pub(super) async fn cmd_pwd(&mut self) {
        let text = format!("{} is the current directory", quote_path(self.cwd.as_str()));
        self.reply(ReplyCode::PathCreated, text).await;
    }
}
