//! File actions on the control connection: MKD, RMD, DELE, RNFR/RNTO
//! (RFC 959), SIZE and MDTM (RFC 3659), MFMT, and SITE.
//!
//! A file another session is uploading is busy (450) for DELE, RNFR and
//! RNTO (the storage refuses). DELE and an RNTO that replaces a file lower
//! the user's counted usage (`quota`).

use ftp_proto::command::Permission;
use ftp_proto::listing::EntryKind;
use ftp_proto::reply::quote_path;
use ftp_proto::time::UtcTime;
use ftp_proto::{FtpPath, Reply, ReplyCode};

use crate::session::Session;

impl Session {
    pub(super) async fn cmd_mkd(&mut self, arg: &[u8]) {
        let Some(path) = self.resolve_new_name(arg).await else {
            return;
        };
        match self.storage().mkdir(&path).await {
            Ok(()) => {
                let text = format!("{} created", quote_path(path.as_str()));
                self.reply(ReplyCode::PathCreated, text).await
            }
            Err(e) => self.storage_failed(&e).await,
        }
    }

    pub(super) async fn cmd_rmd(&mut self, arg: &[u8]) {
        let Some(path) = self.resolve_name(arg).await else {
            return;
        };
        match self.storage().rmdir(&path).await {
            Ok(()) => {
                self.reply(ReplyCode::RequestedFileActionOkay, "Directory removed")
                    .await
            }
            Err(e) => self.storage_failed(&e).await,
        }
    }

    pub(super) async fn cmd_dele(&mut self, arg: &[u8]) {
        let Some(path) = self.resolve_name(arg).await else {
            return;
        };
        let removal = self.before_removal(&path).await;
        match self.storage().delete(&path).await {
            Ok(()) => {
                if let Some(r) = removal {
                    r.done();
                }
                self.reply(ReplyCode::RequestedFileActionOkay, "File deleted").await
            }
            Err(e) => self.storage_failed(&e).await,
        }
    }

    pub(super) async fn cmd_rnfr(&mut self, arg: &[u8]) {
        let Some(path) = self.resolve_name(arg).await else {
            return;
        };
        let storage = self.storage();
        let checked = match storage.stat(&path).await {
            Ok(_) => storage.check_not_busy(&path).await,
            Err(e) => Err(e),
        };
        match checked {
            Ok(()) => {
                self.rename_from = Some(path);
                self.reply(ReplyCode::RequestedFileActionPending, "Ready for RNTO")
                    .await;
            }
            Err(e) => self.storage_failed(&e).await,
        }
    }

    pub(super) async fn cmd_rnto(&mut self, from: Option<FtpPath>, arg: &[u8]) {
        let Some(from) = from else {
            self.reply(ReplyCode::BadSequence, "RNFR required first").await;
            return;
        };
        let Some(to) = self.resolve_new_name(arg).await else {
            return;
        };
        let replaced = if to == from {
            None
        } else {
            self.before_removal(&to).await
        };
        match self.storage().rename(&from, &to).await {
            Ok(()) => {
                if let Some(r) = replaced {
                    r.done();
                }
                self.reply(ReplyCode::RequestedFileActionOkay, "Rename successful")
                    .await
            }
            Err(e) => self.storage_failed(&e).await,
        }
    }

    /// SIZE (RFC 3659 §4): the size of a plain file, in bytes as stored.
    pub(super) async fn cmd_size(&mut self, arg: &[u8]) {
        let Some(path) = self.resolve(arg).await else { return };
        match self.storage().stat(&path).await {
            Ok(f) if f.kind != EntryKind::Dir => self.reply(ReplyCode::FileStatus, f.size.to_string()).await,
            Ok(_) => self.reply(ReplyCode::FileUnavailable, "Not a plain file").await,
            Err(e) => self.storage_failed(&e).await,
        }
    }

    /// MDTM (RFC 3659 §3): the modification time in UTC.
    pub(super) async fn cmd_mdtm(&mut self, arg: &[u8]) {
        let Some(path) = self.resolve(arg).await else { return };
        match self.storage().stat(&path).await {
            Ok(f) => match f.modified {
                Some(t) => {
                    self.reply(ReplyCode::FileStatus, UtcTime::from_system(t).to_time_val())
                        .await
                }
                None => {
                    self.reply(ReplyCode::FileUnavailable, "Modification time unknown")
                        .await
                }
            },
            Err(e) => self.storage_failed(&e).await,
        }
    }

    /// MFMT (draft-somers-ftp-mfxx): sets the modification time and answers
    /// `213 Modify=<time>; <path>` as the draft specifies.
    pub(super) async fn cmd_mfmt(&mut self, time: UtcTime, arg: &[u8]) {
        let Some(path) = self.resolve_name(arg).await else {
            return;
        };
        if !self.storage().capabilities().set_mtime {
            self.reply(ReplyCode::CommandNotImplemented, "Not supported by this storage")
                .await;
            return;
        }
        match self.storage().set_mtime(&path, time.to_system()).await {
            Ok(()) => {
                let text = format!("Modify={}; {}", time.to_time_val(), path);
                self.reply(ReplyCode::FileStatus, text).await
            }
            Err(e) => self.storage_failed(&e).await,
        }
    }

    /// SITE HELP, `SITE CHMOD <mode> <path>`, `SITE UTIME <time> <path>` (and
    /// lftp's `SITE UTIME <path> <atime> <mtime> <ctime> UTC`).
    pub(super) async fn cmd_site(&mut self, name: &str, args: &[u8]) {
        match name {
            "HELP" => {
                let body = vec![
                    " CHMOD <mode> <path>".to_string(),
                    " UTIME <YYYYMMDDHHMMSS> <path>".to_string(),
                    " HELP".to_string(),
                ];
                self.send(Reply::multiline(ReplyCode::SystemStatus, "SITE commands:", body, "End"))
                    .await;
            }
            "CHMOD" => self.site_chmod(args).await,
            "UTIME" => self.site_utime(args).await,
            _ => {
                self.reply(ReplyCode::CommandNotImplemented, format!("SITE {name} not implemented"))
                    .await
            }
        }
    }

    async fn site_chmod(&mut self, args: &[u8]) {
        if !self.permissions().contains(Permission::Chmod) {
            self.reply(ReplyCode::FileUnavailable, "Permission denied").await;
            return;
        }
        let Some(split) = args.iter().position(|&b| b == b' ') else {
            self.reply(ReplyCode::ArgumentSyntaxError, "SITE CHMOD <mode> <path>")
                .await;
            return;
        };
        let mode = std::str::from_utf8(&args[..split])
            .ok()
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .filter(|m| *m <= 0o7777);
        let Some(mode) = mode else {
            self.reply(ReplyCode::ArgumentSyntaxError, "Mode must be octal, at most 7777")
                .await;
            return;
        };
        let Some(path) = self.resolve_name(&args[split + 1..]).await else {
            return;
        };
        if !self.storage().capabilities().chmod {
            self.reply(ReplyCode::CommandNotImplemented, "Not supported by this storage")
                .await;
            return;
        }
        match self.storage().chmod(&path, mode).await {
            Ok(()) => {
                self.reply(ReplyCode::RequestedFileActionOkay, "SITE CHMOD successful")
                    .await
            }
            Err(e) => self.storage_failed(&e).await,
        }
    }

    async fn site_utime(&mut self, args: &[u8]) {
        if !self.permissions().contains(Permission::Write) {
            self.reply(ReplyCode::FileUnavailable, "Permission denied").await;
            return;
        }
        let text = String::from_utf8_lossy(args).into_owned();
        let words: Vec<&str> = text.split(' ').collect();
        // `<time> <path>` or `<path> <atime> <mtime> <ctime> UTC`.
        let parsed = match words.as_slice() {
            [path @ .., _atime, mtime, _ctime, utc] if utc.eq_ignore_ascii_case("UTC") && !path.is_empty() => {
                UtcTime::parse_time_val(mtime).map(|t| (t, path.join(" ")))
            }
            [time, path @ ..] if !path.is_empty() => UtcTime::parse_time_val(time).map(|t| (t, path.join(" "))),
            _ => None,
        };
        let Some((time, path)) = parsed else {
            self.reply(ReplyCode::ArgumentSyntaxError, "SITE UTIME <YYYYMMDDHHMMSS> <path>")
                .await;
            return;
        };
        let Some(path) = self.resolve_name(path.as_bytes()).await else {
            return;
        };
        match self.storage().set_mtime(&path, time.to_system()).await {
            Ok(()) => {
                self.reply(ReplyCode::RequestedFileActionOkay, "SITE UTIME successful")
                    .await
            }
            Err(e) => self.storage_failed(&e).await,
        }
    }
}
