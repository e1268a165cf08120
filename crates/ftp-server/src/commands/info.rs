//! FEAT (RFC 2389), HELP and STAT (RFC 959), HOST (RFC 7151).

use std::time::SystemTime;

use ftp_proto::command::{Structure, TransferMode, TransferType, VERBS};
use ftp_proto::listing::{self, EntryKind};
use ftp_proto::{Reply, ReplyCode, Verb};

use crate::data::DataSetup;
use crate::session::{Login, Session};

impl Session {
    /// FEAT: each feature on its own line, starting with a space.
    pub(super) async fn cmd_feat(&mut self) {
        let mut lines: Vec<String> = [
            "EPRT",
            "EPSV",
            "HOST",
            "MDTM",
            "MFMT",
            "REST STREAM",
            "SIZE",
            "TVFS",
            "UTF8",
        ]
        .iter()
        .map(|f| format!(" {f}"))
        .collect();
        lines.push(format!(" {}", self.facts.feat_line()));
        // One AUTH line per mechanism, as vsftpd lists AUTH SSL and AUTH
        // TLS: parsers look for the line "AUTH TLS".
        let cfg = &self.config;
        if cfg.tls.is_some() {
            lines.push(" AUTH TLS".to_string());
        }
        if cfg.gssapi.is_some() {
            lines.push(" AUTH GSSAPI".to_string());
        }
        if cfg.tls.is_some() || cfg.gssapi.is_some() {
            lines.extend([" PBSZ".to_string(), " PROT".to_string()]);
        }
        lines.sort();
        self.send(Reply::multiline(
            ReplyCode::SystemStatus,
            "Extensions supported:",
            lines,
            "End",
        ))
        .await;
    }

    /// HELP lists the commands; `HELP <command>` explains one.
    pub(super) async fn cmd_help(&mut self, topic: Option<&str>) {
        match topic {
            None => {
                let names: Vec<&str> = VERBS.iter().flat_map(|s| s.names.iter().copied()).collect();
                let body: Vec<String> = names.chunks(8).map(|c| format!(" {}", c.join(" "))).collect();
                self.send(Reply::multiline(
                    ReplyCode::HelpMessage,
                    "The following commands are recognized:",
                    body,
                    "Help OK",
                ))
                .await;
            }
            Some(name) => match Verb::from_name(name.as_bytes()) {
                Some(verb) => self.reply(ReplyCode::HelpMessage, verb.spec().help).await,
                None => {
                    self.reply(ReplyCode::ArgumentSyntaxError, format!("Unknown command {name}"))
                        .await
                }
            },
        }
    }

    /// STAT: the transfer's progress while one runs (213); the session's
    /// status with no argument (211); a directory listing (212) or a file's
    /// line (213) with one.
    pub(super) async fn cmd_stat(&mut self, arg: Option<&[u8]>) {
        if let Some(t) = &self.transfer {
            let text = format!(
                "Status: {} of {} transferred, {} bytes so far",
                t.verb.name(),
                t.path,
                t.bytes()
            );
            self.reply(ReplyCode::FileStatus, text).await;
            return;
        }
        match arg {
            None => {
                let status = self.status_lines();
                self.send(Reply::multiline(
                    ReplyCode::SystemStatus,
                    "ferroftp status:",
                    status,
                    "End of status",
                ))
                .await;
            }
            Some(_) if !self.logged_in() => {
                self.reply(ReplyCode::NotLoggedIn, "Please log in with USER and PASS")
                    .await
            }
            // A listing over the control connection needs the same right as
            // LIST (the command table cannot say so: STAT without an
            // argument needs none).
            Some(_) if !self.permissions().contains(ftp_proto::command::Permission::List) => {
                self.reply(ReplyCode::FileUnavailable, "Permission denied").await
            }
            Some(arg) => self.stat_path(arg).await,
        }
    }

    fn status_lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!(" Connected to {}", self.local.ip()),
            format!(" Connected from {}", self.peer.ip()),
        ];
        if let Some(p) = &self.proxied {
            lines.push(format!(" Through proxy {}", p.proxy.ip()));
        }
        lines.push(match (&self.login, &self.user) {
            (Login::LoggedIn, Some(u)) => format!(" Logged in as {}", u.name),
            _ => " Not logged in".to_string(),
        });
        lines.push(format!(
            " TYPE: {}, STRU: {}, MODE: {}",
            match self.params.kind {
                TransferType::Ascii => "ASCII",
                TransferType::Image => "BINARY",
            },
            match self.params.structure {
                Structure::File => "File",
                Structure::Page => "Page",
            },
            match self.params.mode {
                TransferMode::Stream => "Stream",
                TransferMode::Block => "Block",
            }
        ));
        lines.push(
            match self.data {
                DataSetup::None => " No data connection",
                DataSetup::Passive(_) => " Passive data connection set up",
                DataSetup::Active { .. } => " Active data connection set up",
                DataSetup::Open(_) => " Data connection open",
            }
            .to_string(),
        );
        lines
    }

    /// `STAT <path>`: a directory's `ls -l` listing over the control
    /// connection, streamed and capped at `max_stat_entries`.
    async fn stat_path(&mut self, arg: &[u8]) {
        let (_, target) = ftp_proto::command::split_list_options(Some(arg));
        let Some(path) = self.resolve(target.unwrap_or(b".")).await else {
            return;
        };
        let storage = self.storage();
        let facts = match storage.stat(&path).await {
            Ok(f) => f,
            Err(e) => return self.storage_failed(&e).await,
        };
        let now = SystemTime::now();
        if facts.kind != EntryKind::Dir {
            let line = listing::format_list_line(&facts, path.file_name().unwrap_or("/"), now);
            self.send(Reply::multiline(
                ReplyCode::FileStatus,
                format!("Status of {path}:"),
                vec![line],
                "End of status",
            ))
            .await;
            return;
        }
        let mut entries = match storage.list(&path).await {
            Ok(s) => s,
            Err(e) => return self.storage_failed(&e).await,
        };
        let mut out = Vec::with_capacity(16 * 1024);
        Reply::new(ReplyCode::DirectoryStatus, format!("Status of {path}:")).encode_into(&mut out);
        // The first line went out as a one-line reply; turn it into the
        // opening line of a multi-line one.
        out[3] = b'-';
        let max = self.config.max_stat_entries;
        let mut count = 0;
        // The reply is under way, so its code cannot change: a cut listing
        // says so in the closing line instead.
        let mut end = "End of status".to_string();
        loop {
            match entries.next_entry().await {
                Ok(Some(_)) if count >= max => {
                    end = format!("End of status (first {max} entries; LIST or MLSD shows them all)");
                    break;
                }
                Ok(Some(e)) => {
                    count += 1;
                    let line = listing::format_list_line(&e.facts, &e.name, now);
                    out.extend(line.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
                    out.extend_from_slice(b"\r\n");
                    if out.len() > 16 * 1024 {
                        if self.ctl.send_raw(&out).await.is_err() {
                            return;
                        }
                        out.clear();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "STAT listing failed midway");
                    end = "End of status (incomplete: the directory could not be read to its end)".to_string();
                    break;
                }
            }
        }
        Reply::new(ReplyCode::DirectoryStatus, end).encode_into(&mut out);
        let _ = self.ctl.send_raw(&out).await;
    }

    /// HOST (RFC 7151): before USER only. Without configured virtual hosts
    /// any name is accepted; with them, an unknown name is 504 and a
    /// disabled one 434.
    pub(super) async fn cmd_host(&mut self, name: &str) {
        if !matches!(self.login, Login::AwaitingUser) {
            self.reply(ReplyCode::BadSequence, "HOST must come before USER").await;
            return;
        }
        let hosts = &self.config.virtual_hosts;
        if !hosts.is_empty() {
            match hosts.iter().find(|h| h.name.eq_ignore_ascii_case(name)) {
                None => {
                    self.reply(ReplyCode::ParameterNotImplemented, "Unknown host").await;
                    return;
                }
                Some(h) if !h.enabled => {
                    self.reply(ReplyCode::RequestedHostUnavailable, "Requested host unavailable")
                        .await;
                    return;
                }
                Some(_) => {}
            }
        }
        self.host = Some(name.to_string());
        self.reply(ReplyCode::ServiceReady, format!("Host {name} ready")).await;
    }
}
