//! Command handlers, grouped by area. Each handler runs after the gate
//! (login, permission and account checks are done) and sends its own
//! replies through the session.

mod data_setup;
mod files;
mod gss;
mod info;
mod login;
mod navigation;
mod params;
mod security;
mod transfers;

use ftp_auth::PermissionSet;
use ftp_proto::command::Permission;
use ftp_proto::listing::EntryKind;
use ftp_proto::{Command, FtpPath, ReplyCode};

use crate::gss_framing::CommandLevel;
use crate::replies;
use crate::session::{Flow, Session};

impl Session {
    /// Runs one command that passed the gate.
    pub(crate) async fn dispatch(&mut self, command: Command) -> Flow {
        // RNTO must come straight after RNFR (RFC 959 §4.1.3): any other
        // command forgets the pending rename.
        let rename_from = self.rename_from.take();
        match command {
            Command::User(name) => self.cmd_user(&name).await,
            Command::Pass(password) => self.cmd_pass(&password).await,
            Command::Acct(account) => self.cmd_acct(&account).await,
            Command::Rein => self.cmd_rein().await,
            Command::Quit => return self.cmd_quit().await,
            Command::Cwd(path) => self.cmd_cwd(&path).await,
            Command::Cdup => self.cmd_cwd(b"..").await,
            Command::Pwd => self.cmd_pwd().await,
            Command::Mkd(path) => self.cmd_mkd(&path).await,
            Command::Rmd(path) => self.cmd_rmd(&path).await,
            Command::Dele(path) => self.cmd_dele(&path).await,
            Command::Rnfr(path) => self.cmd_rnfr(&path).await,
            Command::Rnto(path) => self.cmd_rnto(rename_from, &path).await,
            Command::Retr(path) => self.cmd_retr(&path).await,
            Command::Stor(path) => self.cmd_stor(&path).await,
            Command::Stou(base) => self.cmd_stou(base.as_deref()).await,
            Command::Appe(path) => self.cmd_appe(&path).await,
            Command::Allo(size) => {
                // Not reserved, but remembered: an upload known to exceed
                // a quota or the largest file is refused before it starts.
                self.space.allo = Some(size);
                self.reply(
                    ReplyCode::CommandSuperfluous,
                    "ALLO not needed; space is not pre-allocated",
                )
                .await
            }
            Command::Rest(offset) => self.cmd_rest(offset).await,
            Command::Abor => self.cmd_abor().await,
            Command::List(arg) => self.cmd_list(arg.as_deref()).await,
            Command::Nlst(arg) => self.cmd_nlst(arg.as_deref()).await,
            Command::Mlsd(arg) => self.cmd_mlsd(arg.as_deref()).await,
            Command::Mlst(arg) => self.cmd_mlst(arg.as_deref()).await,
            Command::Stat(arg) => self.cmd_stat(arg.as_deref()).await,
            Command::Help(topic) => self.cmd_help(topic.as_deref()).await,
            Command::Noop => self.reply(ReplyCode::CommandOkay, "NOOP ok").await,
            Command::Syst => self.reply(ReplyCode::SystemType, "UNIX Type: L8").await,
            Command::Site { name, args } => self.cmd_site(&name, &args).await,
            Command::Smnt(_) => {
                self.reply(ReplyCode::CommandNotImplemented, "SMNT not implemented")
                    .await
            }
            Command::Port(addr) => self.cmd_active(addr.into(), ftp_proto::Verb::Port).await,
            Command::Eprt(addr) => self.cmd_active(addr, ftp_proto::Verb::Eprt).await,
            Command::Lprt(addr) => self.cmd_active(addr, ftp_proto::Verb::Lprt).await,
            Command::Pasv => self.cmd_pasv().await,
            Command::Epsv(arg) => self.cmd_epsv(arg).await,
            Command::Lpsv => self.cmd_lpsv().await,
            Command::Type(kind) => self.cmd_type(kind).await,
            Command::Stru(structure) => self.cmd_stru(structure).await,
            Command::Mode(mode) => self.cmd_mode(mode).await,
            Command::Feat => self.cmd_feat().await,
            Command::Opts { name, value } => self.cmd_opts(&name, &value).await,
            Command::Size(path) => self.cmd_size(&path).await,
            Command::Mdtm(path) => self.cmd_mdtm(&path).await,
            Command::Mfmt { time, path } => self.cmd_mfmt(time, &path).await,
            Command::Host(name) => self.cmd_host(&name).await,
            Command::Auth(mechanism) => return self.cmd_auth(&mechanism).await,
            Command::Adat(data) => self.cmd_adat(&data).await,
            Command::Pbsz(size) => self.cmd_pbsz(size).await,
            Command::Prot(level) => self.cmd_prot(level).await,
            Command::Ccc => return self.cmd_ccc().await,
            Command::Mic(arg) => return self.cmd_protected(CommandLevel::Integrity, &arg).await,
            Command::Conf(arg) => return self.cmd_protected(CommandLevel::Confidential, &arg).await,
            Command::Enc(arg) => return self.cmd_protected(CommandLevel::Private, &arg).await,
        }
        Flow::Continue
    }

    /// Resolves a client path against the working directory; a refused name
    /// is answered 553 here and `None` returned.
    pub(crate) async fn resolve(&mut self, arg: &[u8]) -> Option<FtpPath> {
        match self.cwd.resolve(arg) {
            Ok(p) => Some(p),
            Err(e) => {
                self.send(replies::path_error(&e)).await;
                None
            }
        }
    }

    /// Like [`resolve`](Session::resolve) for a path that must name
    /// something below the root.
    pub(crate) async fn resolve_name(&mut self, arg: &[u8]) -> Option<FtpPath> {
        match self.cwd.resolve_name(arg) {
            Ok(p) => Some(p),
            Err(e) => {
                self.send(replies::path_error(&e)).await;
                None
            }
        }
    }

    /// [`resolve_name`](Session::resolve_name) for a name the command
    /// creates (STOR, STOU, APPE, MKD, RNTO): one the site denies
    /// (`denied_names`) is answered 553 here and `None` returned. Names
    /// already there stay reachable: the rule keeps new ones out.
    pub(crate) async fn resolve_new_name(&mut self, arg: &[u8]) -> Option<FtpPath> {
        let path = self.resolve_name(arg).await?;
        if self.refuse_denied_name(path.file_name().unwrap_or_default()).await {
            return None;
        }
        Some(path)
    }

    /// Answers 553 when the site denies `name` (`denied_names`).
    pub(crate) async fn refuse_denied_name(&mut self, name: &str) -> bool {
        let Some(pattern) = self.config.denied_names.iter().find(|p| p.matches(name)) else {
            return false;
        };
        let text = format!("File name not allowed: this site denies {pattern}");
        self.reply(ReplyCode::FileNameNotAllowed, text).await;
        true
    }

    pub(crate) fn permissions(&self) -> PermissionSet {
        self.user
            .as_ref()
            .map(|u| u.permissions)
            .unwrap_or_else(PermissionSet::empty)
    }

    pub(crate) async fn storage_failed(&mut self, e: &ftp_storage::StorageError) {
        self.send(replies::storage_error(e)).await;
    }
}

/// The RFC 3659 §7.5.5 `perm` fact for an entry, from the user's rights.
pub(crate) fn perm_fact(kind: EntryKind, p: PermissionSet) -> String {
    let mut out = String::new();
    let mut add = |on: bool, c: char| {
        if on {
            out.push(c);
        }
    };
    if kind == EntryKind::Dir {
        add(p.contains(Permission::Write), 'c');
        add(p.contains(Permission::Rmdir), 'd');
        add(true, 'e');
        add(p.contains(Permission::Rename), 'f');
        add(p.contains(Permission::List), 'l');
        add(p.contains(Permission::Mkdir), 'm');
        add(p.contains(Permission::Delete), 'p');
    } else {
        add(p.contains(Permission::Append), 'a');
        add(p.contains(Permission::Delete), 'd');
        add(p.contains(Permission::Rename), 'f');
        add(p.contains(Permission::Read), 'r');
        add(p.contains(Permission::Write), 'w');
    }
    out
}
