//! Commands that use the data connection (RETR, STOR, STOU, APPE, LIST,
//! NLST, MLSD), plus MLST and ABOR.
//!
//! Each handler opens its source or sink before answering 150, so a missing
//! file or a refused name is a plain 550/553 with no data connection used.
//! Uploads are checked against the user's storage limits first (`quota`:
//! 552 before 150 when known to exceed), and a file another upload is
//! writing is refused by the storage (450). RETR of such a file is allowed:
//! a STOR replaces the file atomically, so a reader gets the old content
//! whole (an APPE or REST+STOR writes in place, and a reader may see part
//! of what it added).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use ftp_proto::command::{split_list_options, TransferMode, TransferType};
use ftp_proto::listing::{self, EntryKind};
use ftp_proto::{FtpPath, Reply, ReplyCode, Verb};
use ftp_storage::{DirEntry, ErrorKind, WriteMode};
use tokio::sync::{mpsc, oneshot};

use crate::data::DataSetup;
use crate::session::{Exclusive, RunningTransfer, Session, TransferFuture};
use crate::transfer::{self, DataProtection, Job, ListFormat, Listing, TransferContext};

/// Tries at finding a free unique name for STOU.
const STOU_ATTEMPTS: usize = 16;

impl Session {
    /// 425 unless PORT/PASV (or a kept MODE B connection) came first.
    async fn require_data_setup(&mut self) -> bool {
        if matches!(self.data, DataSetup::None) {
            self.reply(ReplyCode::CantOpenDataConnection, "Use PORT, PASV, EPRT or EPSV first")
                .await;
            return false;
        }
        if self.data_protection_required() && !self.data_protected() {
            self.reply(
                ReplyCode::ProtectionPolicyRefused,
                "Data connections must be protected: use PBSZ 0 and PROT P",
            )
            .await;
            return false;
        }
        true
    }

    /// Answers 125/150 and starts the transfer task.
    async fn start_transfer(&mut self, verb: Verb, path: &FtpPath, job: Job, preliminary: String) {
        let code = if self.data.is_connected_now() {
            ReplyCode::DataConnectionAlreadyOpen
        } else {
            ReplyCode::FileStatusOkay
        };
        self.reply(code, preliminary).await;
        let cfg = &self.config;
        let progress = Arc::new(AtomicU64::new(0));
        let (cancel_tx, cancel_rx) = oneshot::channel();
        // Only a MODE B upload sends restart marks. A channel for every
        // transfer would cost a wake per transfer: the end of a transfer
        // drops its sender, which wakes the session task while that very
        // task is polling the transfer, and tokio answers a task woken
        // during its own poll by queueing it again and waking the other
        // worker thread to steal it (perf: one futex wake and a second
        // poll per small download).
        let (marks_tx, marks_rx) = match (&job, self.params.mode) {
            (Job::Stor { .. }, TransferMode::Block) => {
                let (tx, rx) = mpsc::channel(16);
                (Some(tx), Some(rx))
            }
            _ => (None, None),
        };
        let ctx = TransferContext {
            params: self.params,
            data: std::mem::replace(&mut self.data, DataSetup::None),
            connect_timeout: cfg.data_connection_timeout,
            stall_timeout: cfg.transfer_stall_timeout,
            buffer_size: cfg.transfer_buffer_size,
            splice_uploads: cfg.splice_uploads,
            progress: Arc::clone(&progress),
            marks: marks_tx,
            cancel: cancel_rx,
            protection: self.data_protection(matches!(job, Job::Stor { .. })),
            gss: self.gss_data_protection(),
            send_threads: Arc::clone(&self.shared.send_threads),
            receive_threads: Arc::clone(&self.shared.receive_threads),
            sendfile_downloads: Arc::clone(&self.shared.sendfile_downloads),
        };
        let done = Exclusive::new(Box::pin(transfer::run(job, ctx)) as TransferFuture);
        self.transfer = Some(RunningTransfer {
            verb,
            path: path.to_string(),
            progress,
            cancel: Some(cancel_tx),
            done,
            marks: marks_rx,
            protection: self.ctl.protection.clone(),
        });
    }

    /// TLS for the data connection under PROT P; `upload`: STOR, STOU or
    /// APPE, whose client only sends (see `SessionTls::upload_data`).
    fn data_protection(&self, upload: bool) -> Option<DataProtection> {
        let config = self.tls.as_ref().filter(|_| self.prot_private)?.data(upload);
        let tls = self.config.tls.as_ref();
        Some(DataProtection {
            config: Arc::clone(config),
            require_session_reuse: tls.is_none_or(|t| t.policy.require_session_reuse),
            kernel_offload: tls.is_some_and(|t| t.kernel_offload),
        })
    }

    fn type_word(&self) -> &'static str {
        match self.params.kind {
            TransferType::Ascii => "ASCII",
            TransferType::Image => "BINARY",
        }
    }

    pub(super) async fn cmd_retr(&mut self, arg: &[u8]) {
        let offset = self.restart_offset.take().unwrap_or(0);
        if !self.require_data_setup().await {
            return;
        }
        let Some(path) = self.resolve(arg).await else { return };
        let storage = self.storage();
        // One storage call in the common case: the open tells the size.
        let (source, offset) = match storage.open_read(&path, offset).await {
            Ok(s) => (s, offset),
            // An offset past the end sends nothing and completes, as a
            // resumed download of a complete file should.
            Err(e) if e.kind == ErrorKind::InvalidOffset => {
                let size = match storage.stat(&path).await {
                    Ok(f) => f.size,
                    Err(e) => return self.storage_failed(&e).await,
                };
                match storage.open_read(&path, size).await {
                    Ok(s) => (s, size),
                    Err(e) => return self.storage_failed(&e).await,
                }
            }
            Err(e) => return self.storage_failed(&e).await,
        };
        let size = match source.size() {
            Some(size) => size,
            None => match storage.stat(&path).await {
                Ok(f) => f.size,
                Err(e) => return self.storage_failed(&e).await,
            },
        };
        let text = format!(
            "Opening {} mode data connection for {} ({} bytes)",
            self.type_word(),
            path,
            size.saturating_sub(offset)
        );
        self.start_transfer(Verb::Retr, &path, Job::Retr { source, offset }, text)
            .await;
    }

    pub(super) async fn cmd_stor(&mut self, arg: &[u8]) {
        let mode = match self.restart_offset.take() {
            Some(n) if n > 0 => WriteMode::ResumeAt(n),
            _ => WriteMode::Replace,
        };
        self.store(arg, mode, Verb::Stor).await;
    }

    pub(super) async fn cmd_appe(&mut self, arg: &[u8]) {
        self.restart_offset = None;
        self.store(arg, WriteMode::Append, Verb::Appe).await;
    }

    async fn store(&mut self, arg: &[u8], mode: WriteMode, verb: Verb) {
        if !self.require_data_setup().await {
            return;
        }
        let Some(path) = self.resolve_new_name(arg).await else {
            return;
        };
        let storage = self.storage();
        if matches!(mode, WriteMode::Append | WriteMode::ResumeAt(_)) && !storage.capabilities().append {
            self.reply(
                ReplyCode::CommandNotImplemented,
                "Append and resumed uploads are not supported by this storage",
            )
            .await;
            return;
        }
        let ticket = match self.admit_upload(&path, mode).await {
            Ok(t) => t,
            Err(e) => return self.storage_failed(&e).await,
        };
        let upload = match storage.open_write(&path, mode).await {
            Ok(u) => u,
            Err(e) => return self.storage_failed(&e).await,
        };
        let upload = match ticket {
            Some(ticket) => ticket.wrap(upload),
            None => upload,
        };
        let offset = match mode {
            WriteMode::ResumeAt(n) => n,
            _ => 0,
        };
        let text = format!("Opening {} mode data connection for {}", self.type_word(), path);
        self.start_transfer(
            verb,
            &path,
            Job::Stor {
                upload,
                offset,
                unique_name: None,
            },
            text,
        )
        .await;
    }

    /// STOU: store under a name the server makes unique; the 150 reply
    /// names it (`FILE: <name>`, RFC 1123 §4.1.2.9).
    pub(super) async fn cmd_stou(&mut self, base: Option<&[u8]>) {
        self.restart_offset = None;
        if !self.require_data_setup().await {
            return;
        }
        let dir = match base {
            Some(b) => match self.resolve_new_name(b).await {
                Some(p) => p,
                None => return,
            },
            None => self.cwd.join("ftp"),
        };
        let stem = dir.file_name().unwrap_or("ftp").to_string();
        let parent = dir.parent();
        let storage = self.storage();
        let allo = self.space.allo;
        for _ in 0..STOU_ATTEMPTS {
            let name = format!("{stem}.{:08x}", random_u32());
            if self.refuse_denied_name(&name).await {
                return;
            }
            let path = parent.join(&name);
            self.space.allo = allo;
            let ticket = match self.admit_upload(&path, WriteMode::CreateNew).await {
                Ok(t) => t,
                Err(e) => return self.storage_failed(&e).await,
            };
            match storage.open_write(&path, WriteMode::CreateNew).await {
                Ok(upload) => {
                    let upload = match ticket {
                        Some(ticket) => ticket.wrap(upload),
                        None => upload,
                    };
                    let text = format!("FILE: {name}");
                    let job = Job::Stor {
                        upload,
                        offset: 0,
                        unique_name: Some(name),
                    };
                    self.start_transfer(Verb::Stou, &path, job, text).await;
                    return;
                }
                Err(e) if e.kind == ErrorKind::AlreadyExists => continue,
                Err(e) => return self.storage_failed(&e).await,
            }
        }
        self.reply(ReplyCode::FileNameNotAllowed, "Could not find a unique file name")
            .await;
    }

    pub(super) async fn cmd_list(&mut self, arg: Option<&[u8]>) {
        self.listing(arg, ListFormat::Long, Verb::List).await;
    }

    pub(super) async fn cmd_nlst(&mut self, arg: Option<&[u8]>) {
        self.listing(arg, ListFormat::Names, Verb::Nlst).await;
    }

    /// MLSD (RFC 3659 §7): the argument must be a directory (501 otherwise).
    pub(super) async fn cmd_mlsd(&mut self, arg: Option<&[u8]>) {
        let format = ListFormat::Facts {
            set: self.facts,
            permissions: self.permissions(),
        };
        self.listing(arg, format, Verb::Mlsd).await;
    }

    async fn listing(&mut self, arg: Option<&[u8]>, format: ListFormat, verb: Verb) {
        self.restart_offset = None;
        if !self.require_data_setup().await {
            return;
        }
        // MLSD takes a path as it is; LIST and NLST take `ls` options too.
        let target = if verb == Verb::Mlsd {
            arg
        } else {
            split_list_options(arg).1
        };
        let Some(path) = self.resolve(target.unwrap_or(b".")).await else {
            return;
        };
        let storage = self.storage();
        let facts = match storage.stat(&path).await {
            Ok(f) => f,
            Err(e) => return self.storage_failed(&e).await,
        };
        let listing = if facts.kind == EntryKind::Dir {
            match storage.list(&path).await {
                Ok(stream) => Listing::Dir(stream),
                Err(e) => return self.storage_failed(&e).await,
            }
        } else if verb == Verb::Mlsd {
            self.reply(
                ReplyCode::ArgumentSyntaxError,
                "MLSD needs a directory; use MLST for a file",
            )
            .await;
            return;
        } else {
            // LIST of a file shows that file; NLST of a file names it.
            let name = match verb {
                Verb::Nlst => target
                    .map(|t| String::from_utf8_lossy(t).into_owned())
                    .unwrap_or_default(),
                _ => path.file_name().unwrap_or("/").to_string(),
            };
            Listing::Single(DirEntry { name, facts })
        };
        let text = format!(
            "Opening ASCII mode data connection for {} listing of {}",
            verb.name(),
            path
        );
        self.start_transfer(verb, &path, Job::List { listing, format }, text)
            .await;
    }

    /// MLST (RFC 3659 §7): facts about one path on the control connection.
    pub(super) async fn cmd_mlst(&mut self, arg: Option<&[u8]>) {
        let Some(path) = self.resolve(arg.unwrap_or(b".")).await else {
            return;
        };
        match self.storage().stat(&path).await {
            Ok(facts) => {
                let perm = super::perm_fact(facts.kind, self.permissions());
                let line = format!(" {}", listing::format_mlsx(&facts, path.as_str(), &perm, &self.facts));
                let reply = Reply::multiline(
                    ReplyCode::RequestedFileActionOkay,
                    format!("Listing {path}"),
                    vec![line],
                    "End",
                );
                self.send(reply).await;
            }
            Err(e) => self.storage_failed(&e).await,
        }
    }

    /// ABOR (RFC 959 §4.1.3) in its four cases: a transfer running (426
    /// then 226), a data connection open and idle (225), nothing open (226),
    /// and a transfer that finished before ABOR was read (its own reply, then
    /// 226).
    pub(super) async fn cmd_abor(&mut self) {
        if self.transfer.is_some() {
            if let Some(outcome) = self.cancel_transfer().await {
                self.send(outcome.reply).await;
            }
            self.reply(
                ReplyCode::ClosingDataConnection,
                "ABOR successful; data connection closed",
            )
            .await;
            return;
        }
        let was_open = self.data.is_connected();
        self.data = DataSetup::None;
        if was_open {
            self.reply(
                ReplyCode::DataConnectionOpenNoTransfer,
                "Data connection closed; no transfer in progress",
            )
            .await;
        } else {
            self.reply(ReplyCode::ClosingDataConnection, "No transfer to abort")
                .await;
        }
    }
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // A failed read only makes the name guessable, and CreateNew still
    // refuses to overwrite.
    let _ = getrandom::getrandom(&mut b);
    u32::from_ne_bytes(b)
}
