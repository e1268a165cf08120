//! One control connection: the task that owns its session state, reads
//! commands, runs them and writes every reply.
//!
//! The loop reads lines and, while a transfer runs, also waits for the
//! transfer's events (restart marks, completion). Commands the table marks
//! `during_transfer` (ABOR, STAT, QUIT, NOOP, HELP) are answered at once;
//! any other command waits in a bounded queue until the transfer ends, as
//! RFC 959 §4.1.3 asks.
//!
//! The session's clocks: the login deadline (from connect, never extended
//! by activity), the idle deadline (from the answer to the last command,
//! paused while a transfer runs) and the session's maximum length (231 and
//! close, after the running transfer if any). Before login, too many bad
//! commands end the session (421).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftp_auth::{Authenticator, User};
use ftp_proto::command::{Structure, TransferMode, TransferType};
use ftp_proto::line::LineTooLong;
use ftp_proto::listing::FactSet;
use ftp_proto::{Command, FtpPath, LineDecoder, ParseError, Reply, ReplyCode, Verb};
use ftp_storage::{Backend, Storage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::bans::BanTable;
use crate::config::ServerConfig;
use crate::data::DataSetup;
use crate::gate::{self, GateView};
use crate::gss_framing::{CommandLevel, ReplyProtection};
use crate::gssapi;
use crate::limits::{AddrKey, CountGuard, SessionCounts};
use crate::proxy::Proxied;
use crate::tls::{self, MaybeTls};
use crate::transfer::TransferOutcome;

/// What every session shares: configuration, storage, authentication, and
/// the counts and scores kept per client address and per user.
/// How long the last replies and the close of a session being ended may
/// take, for a client that has stopped reading.
const FAREWELL: Duration = Duration::from_secs(5);

pub(crate) struct Shared {
    /// The configuration for new sessions (a SIGHUP may replace it; each
    /// session keeps the one it started with: `Session::config`).
    pub config: crate::live_config::LiveConfig,
    /// The sessions that may run at once (`max_sessions`).
    pub slots: crate::live_config::SessionSlots,
    /// Every session alive, for the operator (`admin`).
    pub sessions: crate::admin::Registry,
    /// Connections per client address (taken at accept).
    pub per_address: SessionCounts<AddrKey>,
    /// Logged-in sessions per user name (taken at login).
    pub per_user: SessionCounts<String>,
    /// Failed logins per client address.
    pub bans: BanTable,
    /// Usage of the users with quotas and a session open.
    pub quotas: crate::quota::Quotas,
    pub backend: Arc<dyn Backend>,
    pub auth: Arc<dyn Authenticator>,
    /// Threads for large plain downloads, `config.send_threads` at most.
    pub send_threads: Arc<crate::send_thread::SendThreads>,
    /// Threads for large plain uploads, `config.receive_threads` at most.
    pub receive_threads: Arc<crate::receive_thread::ReceiveThreads>,
    /// Plain sendfile downloads in flight, which decide their corks.
    pub sendfile_downloads: Arc<crate::cork::SendfileDownloads>,
    /// Becomes true when the server shuts down.
    pub shutting_down: watch::Receiver<bool>,
    /// Becomes true once the storage answers (at once for a local disk);
    /// until then connections are greeted with 120 and wait.
    pub storage_ready: watch::Receiver<bool>,
}

/// Where the session is in the login sequence (RFC 959 §5.4 state diagram).
pub(crate) enum Login {
    AwaitingUser,
    AwaitingPassword {
        name: String,
    },
    /// PASS was right; the account needs ACCT to finish logging in (332).
    AwaitingAccount {
        user: User,
        storage: Arc<dyn Storage>,
    },
    LoggedIn,
}

/// TYPE, STRU and MODE: how bytes travel on the data connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TransferParams {
    pub kind: TransferType,
    pub structure: Structure,
    pub mode: TransferMode,
}

impl Default for TransferParams {
    fn default() -> Self {
        // RFC 959 §5.1 defaults: ASCII, file structure, stream mode.
        TransferParams {
            kind: TransferType::Ascii,
            structure: Structure::File,
            mode: TransferMode::Stream,
        }
    }
}

/// A transfer running in its own task.
pub(crate) struct RunningTransfer {
    pub verb: Verb,
    pub path: String,
    pub progress: Arc<AtomicU64>,
    pub cancel: Option<oneshot::Sender<()>>,
    /// The transfer itself, polled by the session's own loop beside the
    /// control connection rather than spawned: a spawned task wakes
    /// another worker thread to steal it, and that hand-off (futex wakes,
    /// context switches) cost more than the rest of a small download.
    /// Dropping it cancels the transfer; the session drives it to its end
    /// first (`cancel_transfer`), so an upload is aborted or kept cleanly.
    pub done: Exclusive<TransferFuture>,
    /// Replies the transfer asks the control connection to send while it
    /// runs (110 restart marks; MODE B uploads only).
    pub marks: Option<mpsc::Receiver<Reply>>,
    /// Under GSSAPI, the protection of the command that started the
    /// transfer: its marks and final reply go out at that level, whatever
    /// commands came between.
    pub protection: Option<ReplyProtection>,
}

pub(crate) type TransferFuture = std::pin::Pin<Box<dyn std::future::Future<Output = TransferOutcome> + Send>>;

/// A value only ever reached through `&mut` (the `Exclusive` pattern of
/// the standard library, not yet stable): a shared `&Exclusive<T>` gives
/// access to nothing, so it is `Sync` whenever `T` is `Send`. The session
/// is borrowed shared across awaits (so must be `Sync`) and holds the
/// transfer future, which is only `Send`.
pub(crate) struct Exclusive<T>(T);

// SAFETY: no method takes `&self`; the inner value is reachable only
// through `&mut self`, so no two threads can ever touch it at once.
unsafe impl<T: Send> Sync for Exclusive<T> {}

impl<T> Exclusive<T> {
    pub fn new(value: T) -> Self {
        Exclusive(value)
    }

    pub fn get_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

pub(crate) enum TransferEvent {
    Mark(Reply),
    Done(TransferOutcome),
}

impl RunningTransfer {
    async fn next_event(&mut self) -> TransferEvent {
        let marks = async {
            match self.marks.as_mut() {
                Some(marks) => marks.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            Some(mark) = marks => TransferEvent::Mark(mark),
            outcome = self.done.get_mut() => TransferEvent::Done(outcome),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }
}

/// What woke the session loop.
enum Wake {
    /// Input arrived (`true`) or the client closed the connection (`false`).
    Read(bool),
    Transfer(TransferEvent),
    Timeout(Clock),
    Shutdown,
    /// The passive listener's wait ended: the client connected, or the
    /// accept timeout closed it.
    DataConnection,
    /// The accounts may have changed (a reload of the users).
    AccountsChanged,
    /// The operator ended the session (`admin`).
    EndedByOperator,
}

/// Which of the session's clocks ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    Login,
    Idle,
    SessionLength,
}

/// Whether the session goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Close,
}

/// The control connection: the socket, its line decoder and reply output.
pub(crate) struct Control {
    pub stream: MaybeTls,
    decoder: LineDecoder,
    decoder_max: usize,
    read_buf: Vec<u8>,
    out: Vec<u8>,
    /// Under GSSAPI, the protection of the command being answered (and of
    /// replies no command asked for, like a transfer's 226): its replies go
    /// out as 631, 632 or 633. `None`: plain replies.
    pub protection: Option<ReplyProtection>,
    protected_out: Vec<u8>,
}

impl Control {
    pub async fn send(&mut self, reply: Reply) -> std::io::Result<()> {
        self.out.clear();
        reply.encode_into(&mut self.out);
        let bytes = on_the_wire(self.protection.as_ref(), &self.out, &mut self.protected_out)?;
        self.stream.write_all(bytes).await
    }

    /// Writes encoded reply lines, whole lines only (streamed STAT
    /// listings), protected when the command was.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let bytes = on_the_wire(self.protection.as_ref(), bytes, &mut self.protected_out)?;
        self.stream.write_all(bytes).await
    }

    /// Drops every byte received but not yet run: after AUTH TLS, whatever
    /// a client pipelined in plaintext must never be executed.
    pub fn discard_pending_input(&mut self) {
        self.decoder = LineDecoder::new(self.decoder_max);
    }

    async fn read_more(&mut self) -> std::io::Result<usize> {
        let n = match &self.stream {
            MaybeTls::Plain(tcp) => read_plain(tcp, &mut self.read_buf).await?,
            _ => self.stream.read(&mut self.read_buf).await?,
        };
        self.decoder.feed(&self.read_buf[..n]);
        Ok(n)
    }
}

/// Encoded reply lines as they go out: as they are, or protected into
/// `scratch`.
fn on_the_wire<'a>(
    protection: Option<&ReplyProtection>,
    encoded: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> std::io::Result<&'a [u8]> {
    let Some(protection) = protection else {
        return Ok(encoded);
    };
    scratch.clear();
    protection.protect(encoded, scratch)?;
    Ok(scratch)
}

/// Reads a plain control socket. Not `AsyncReadExt::read`: tokio takes a
/// short read as proof the socket is drained and waits for the next
/// readiness edge, but a read also stops short at the TCP urgent mark
/// (ftplib sends `ABOR\r\n` with MSG_OOB, and SO_OOBINLINE keeps the urgent
/// LF in the stream) with that byte already received: no edge ever comes,
/// and the command would wait for input the client will not send.
/// `try_read` clears readiness only on WouldBlock.
async fn read_plain(tcp: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        tcp.readable().await?;
        match tcp.try_read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

pub(crate) struct Session {
    pub shared: Arc<Shared>,
    /// The configuration in force when the session was accepted, kept to
    /// its end (see `live_config`).
    pub config: Arc<ServerConfig>,
    pub ctl: Control,
    /// The client's address: the TCP peer's, or the one a trusted proxy's
    /// PROXY header named.
    pub peer: SocketAddr,
    /// This node's end of the control connection (not the balancer's).
    pub local: SocketAddr,
    /// Set when the connection came through a PROXY-protocol proxy.
    pub proxied: Option<Proxied>,
    pub login: Login,
    pub user: Option<User>,
    pub storage: Option<Arc<dyn Storage>>,
    pub account_given: bool,
    /// The name chosen with HOST, before USER (RFC 7151).
    pub host: Option<String>,
    pub cwd: FtpPath,
    pub params: TransferParams,
    pub restart_offset: Option<u64>,
    pub rename_from: Option<FtpPath>,
    pub data: DataSetup,
    /// After `EPSV ALL`, only EPSV may set up data connections (RFC 2428).
    pub epsv_all: bool,
    pub utf8: bool,
    pub facts: FactSet,
    /// The TLS configs of this session once the control connection is in
    /// TLS; data connections under PROT P use them too.
    pub tls: Option<Arc<tls::SessionTls>>,
    /// Implicit FTPS: TLS from the first byte.
    pub implicit_tls: bool,
    /// PBSZ was given (RFC 4217 §9: PROT needs it first).
    pub pbsz: bool,
    /// PROT P: data connections use TLS.
    pub prot_private: bool,
    /// RFC 2228 GSSAPI: AUTH GSSAPI given, or a context set up by ADAT.
    pub gss: GssState,
    /// Under GSSAPI: the buffer size PBSZ agreed, and the data protection
    /// PROT chose (`Some(true)`: P, `Some(false)`: S; `None`: C).
    pub gss_buffer_size: Option<u32>,
    pub gss_data: Option<bool>,
    /// The sequence number of the last protected command's token.
    pub gss_last_command: Option<u64>,
    /// The protection the command being run came with (`None`: plain).
    pub command_level: Option<CommandLevel>,
    pub transfer: Option<RunningTransfer>,
    /// QUIT arrived during a transfer: close once it ends (232 sent).
    pub quit_pending: bool,
    /// The server is shutting down: close (421) once the transfer ends.
    shutdown_pending: bool,
    /// The session reached its maximum length during a transfer: 231 and
    /// close once the transfer ends.
    expired_pending: bool,
    /// The account was disabled, removed or changed (a reload of the
    /// users) during a transfer: 231 and close once the transfer ends.
    pub revoked_pending: bool,
    /// The session's place in the operator's list (`admin`).
    pub registration: crate::admin::Registration,
    /// While logged in: wakes when the accounts may have changed.
    pub account_changes: Option<watch::Receiver<u64>>,
    /// A handler asks for the session to end after its replies (a ban, a
    /// per-user limit).
    pub close_requested: bool,
    /// The logged-in user's place in the per-user count.
    pub user_place: Option<CountGuard<String>>,
    /// Bad commands before login (unknown, malformed, over-long).
    bad_commands: usize,
    /// The logged-in user's storage limits and usage (`quota`).
    pub space: crate::quota::SessionSpace,
    shutting_down: watch::Receiver<bool>,
    /// Commands that arrived during a transfer, run after it (with the
    /// protection of the MIC, CONF or ENC that carried them).
    deferred: VecDeque<(Vec<u8>, Option<CommandLevel>)>,
    connected_at: Instant,
    /// The idle clock: the answer to the last command, or the end of the
    /// last transfer.
    last_activity: Instant,
}

impl Session {
    pub fn new(
        shared: Arc<Shared>,
        stream: TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
        implicit_tls: bool,
        proxied: Option<Proxied>,
    ) -> Session {
        let config = shared.config.current();
        let registration = shared.sessions.register(peer);
        let max_line = config.max_line_length;
        let shutting_down = shared.shutting_down.clone();
        let now = Instant::now();
        Session {
            shared,
            config,
            ctl: Control {
                stream: MaybeTls::Plain(stream),
                decoder: LineDecoder::new(max_line),
                decoder_max: max_line,
                read_buf: vec![0; 4096],
                out: Vec::with_capacity(256),
                protection: None,
                protected_out: Vec::new(),
            },
            peer,
            local,
            proxied,
            login: Login::AwaitingUser,
            user: None,
            storage: None,
            account_given: false,
            host: None,
            cwd: FtpPath::root(),
            params: TransferParams::default(),
            restart_offset: None,
            rename_from: None,
            data: DataSetup::None,
            epsv_all: false,
            utf8: true,
            facts: FactSet::default(),
            tls: None,
            implicit_tls,
            pbsz: implicit_tls,
            prot_private: implicit_tls,
            gss: GssState::None,
            gss_buffer_size: None,
            gss_data: None,
            gss_last_command: None,
            command_level: None,
            transfer: None,
            quit_pending: false,
            shutdown_pending: false,
            expired_pending: false,
            revoked_pending: false,
            registration,
            account_changes: None,
            close_requested: false,
            user_place: None,
            bad_commands: 0,
            space: Default::default(),
            shutting_down,
            deferred: VecDeque::new(),
            connected_at: now,
            last_activity: now,
        }
    }

    /// Sends a reply; a failed write ends the session at the next read.
    pub async fn reply(&mut self, code: ReplyCode, text: impl Into<String>) {
        self.send(Reply::new(code, text)).await;
    }

    /// Sends a reply. A failed write (the peer gone, or a reply the
    /// security context could not wrap) ends the session after the command.
    pub async fn send(&mut self, reply: Reply) {
        if let Err(e) = self.ctl.send(reply).await {
            tracing::debug!(error = %e, "control write failed");
            self.close_requested = true;
        }
    }

    /// Sends a reply at `protection` rather than the current command's
    /// level (a transfer's replies; refusals of lines that did not open).
    pub async fn send_as(&mut self, protection: Option<ReplyProtection>, reply: Reply) {
        let current = std::mem::replace(&mut self.ctl.protection, protection);
        self.send(reply).await;
        self.ctl.protection = current;
    }

    /// The protection of replies to a command that came at `level`.
    fn reply_protection(&self, level: Option<CommandLevel>) -> Option<ReplyProtection> {
        let GssState::Established(context) = &self.gss else {
            return None;
        };
        Some(ReplyProtection {
            context: Arc::clone(context),
            level: level?,
        })
    }

    pub fn logged_in(&self) -> bool {
        matches!(self.login, Login::LoggedIn)
    }

    /// The client's address as the per-address limit and bans count it.
    pub fn addr_key(&self) -> AddrKey {
        AddrKey::of(self.peer.ip())
    }

    /// The storage of the logged-in user. The gate guarantees a login for
    /// every command that calls this.
    pub fn storage(&self) -> Arc<dyn Storage> {
        Arc::clone(self.storage.as_ref().expect("gate ensures a logged-in user"))
    }

    /// Runs the session until QUIT, a timeout, or the client goes away.
    pub async fn run(mut self) {
        if self.implicit_tls && !self.start_tls().await {
            return;
        }
        let greeting = self.config.greeting.clone();
        self.reply(ReplyCode::ServiceReady, greeting).await;
        while self.step().await == Flow::Continue {}
        self.end_transfer_on_close().await;
        // A TLS close_notify is a write too: a client that reads nothing
        // must not hold the session's task.
        let _ = tokio::time::timeout(FAREWELL, self.ctl.stream.shutdown()).await;
    }

    /// One turn of the loop: a queued command, a decoded line, or a wait
    /// for input, transfer events and timeouts.
    async fn step(&mut self) -> Flow {
        if self.transfer.is_none() {
            // A transfer that ABOR ended leaves what waited for its end.
            if let Some(flow) = self.after_transfer().await {
                return flow;
            }
            if let Some((line, level)) = self.deferred.pop_front() {
                return self.dispatch_line(&line, level).await;
            }
        }
        if let Some(line) = self.ctl.decoder.next_line() {
            return match line {
                Err(LineTooLong) => {
                    self.bad_command(Reply::new(ReplyCode::SyntaxError, "Command line too long"))
                        .await
                }
                Ok(line) => self.accept_line(line).await,
            };
        }
        let deadline = self.deadline();
        let watch_shutdown = !self.shutdown_pending;
        let shutdown = &mut self.shutting_down;
        let ctl = &mut self.ctl;
        let transfer = self.transfer.as_mut();
        let data = &mut self.data;
        let accounts = self.account_changes.as_mut();
        let registration = &self.registration;
        let wake = tokio::select! {
            read = ctl.read_more() => Wake::Read(read.map(|n| n > 0).unwrap_or(false)),
            event = async { match transfer { Some(t) => t.next_event().await, None => std::future::pending().await } } => Wake::Transfer(event),
            clock = async { match deadline { Some((d, clock)) => { tokio::time::sleep_until(d.into()).await; clock } None => std::future::pending().await } } => Wake::Timeout(clock),
            _ = async { if watch_shutdown { let _ = shutdown.wait_for(|down| *down).await; } else { std::future::pending::<()>().await } } => Wake::Shutdown,
            _ = async { match data { DataSetup::Passive(p) => p.wait_for_client().await, _ => std::future::pending().await } } => Wake::DataConnection,
            _ = async { match accounts { Some(rx) => if rx.changed().await.is_err() { std::future::pending::<()>().await }, None => std::future::pending().await } } => Wake::AccountsChanged,
            _ = registration.ended() => Wake::EndedByOperator,
        };
        match wake {
            Wake::Read(true) | Wake::DataConnection => Flow::Continue,
            Wake::AccountsChanged => self.check_account().await,
            Wake::EndedByOperator => {
                tracing::info!(peer = %self.peer, "session ended by the operator");
                self.ended_by_operator().await
            }
            Wake::Read(false) => Flow::Close,
            Wake::Transfer(TransferEvent::Mark(reply)) => {
                self.send_transfer_reply(reply).await;
                Flow::Continue
            }
            Wake::Transfer(TransferEvent::Done(outcome)) => self.finish_transfer(outcome).await,
            Wake::Shutdown => {
                self.shutdown_pending = true;
                if self.transfer.is_some() {
                    // The transfer may finish within the server's grace
                    // period; the 421 follows its reply.
                    return Flow::Continue;
                }
                self.reply(
                    ReplyCode::ServiceNotAvailable,
                    "Service not available, server shutting down",
                )
                .await;
                Flow::Close
            }
            Wake::Timeout(Clock::SessionLength) => {
                if self.transfer.is_some() {
                    // The transfer finishes first; 231 follows its reply.
                    self.expired_pending = true;
                    return Flow::Continue;
                }
                self.session_expired().await
            }
            Wake::Timeout(clock) => {
                let text = if clock == Clock::Idle {
                    "Idle timeout, closing control connection"
                } else {
                    "Login timeout, closing control connection"
                };
                self.reply(ReplyCode::ServiceNotAvailable, text).await;
                Flow::Close
            }
        }
    }

    /// Turns the control connection into TLS (AUTH TLS, or implicit FTPS at
    /// connect). False when the handshake failed: the session must end.
    pub async fn start_tls(&mut self) -> bool {
        let Some(tls_config) = &self.config.tls else {
            return false;
        };
        let config = match tls_config.provider.session_config() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "TLS session config");
                return false;
            }
        };
        self.ctl.discard_pending_input();
        let MaybeTls::Plain(tcp) = std::mem::replace(&mut self.ctl.stream, MaybeTls::Detached) else {
            return false;
        };
        let deadline = self.connected_at + self.config.login_timeout;
        let handshake = tokio::time::timeout_at(
            deadline
                .max(Instant::now() + self.config.data_connection_timeout)
                .into(),
            tls::accept(Arc::clone(&config.control), tcp),
        );
        match handshake.await {
            Ok(Ok(stream)) => {
                self.ctl.stream = MaybeTls::Tls(Box::new(stream));
                self.tls = Some(config);
                true
            }
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, error = %e, "control TLS handshake failed");
                false
            }
            Err(_) => {
                tracing::debug!(peer = %self.peer, "control TLS handshake timed out");
                false
            }
        }
    }

    /// The next of the session's clocks to run out: the login deadline
    /// (counted from connect, never extended by activity) or the idle
    /// deadline (paused while a transfer runs), and the session's maximum
    /// length (once; during a transfer it only marks the session to end
    /// after it).
    fn deadline(&self) -> Option<(Instant, Clock)> {
        let cfg = &self.config;
        let activity = if !self.logged_in() {
            Some((self.connected_at + cfg.login_timeout, Clock::Login))
        } else if self.transfer.is_some() {
            None
        } else {
            Some((self.last_activity + cfg.idle_timeout, Clock::Idle))
        };
        // Once the limit passed during a transfer, it is due again as soon
        // as no transfer runs (whichever way the transfer ended).
        let waiting_for_transfer = self.expired_pending && self.transfer.is_some();
        let length = (!cfg.max_session_length.is_zero() && !waiting_for_transfer)
            .then(|| (self.connected_at + cfg.max_session_length, Clock::SessionLength));
        match (activity, length) {
            (Some(a), Some(l)) => Some(if l.0 < a.0 { l } else { a }),
            (a, l) => a.or(l),
        }
    }

    /// The session reached `max_session_length`: a logged-in user is logged
    /// out for the account's reason (231); a connection still logging in
    /// gets 421.
    async fn session_expired(&mut self) -> Flow {
        tracing::info!(peer = %self.peer, "session time limit reached");
        self.end_session(
            "Session time limit reached; logged out, closing control connection",
            "Session time limit reached",
        )
        .await
    }

    /// Ends the session for a reason of the account's, not the service's:
    /// 231 with `logged_out` to a logged-in user, 421 with `otherwise` to
    /// a connection still logging in.
    async fn end_session(&mut self, logged_out: &str, otherwise: &str) -> Flow {
        if self.logged_in() {
            self.reply(ReplyCode::UserLoggedOut, logged_out).await;
        } else {
            self.reply(ReplyCode::ServiceNotAvailable, otherwise).await;
        }
        Flow::Close
    }

    /// The accounts changed (the users file was reloaded): a session whose
    /// account is now disabled or gone, or whose credentials changed, is
    /// logged out for the account's reason (231), after its running
    /// transfer if any.
    async fn check_account(&mut self) -> Flow {
        let Some(user) = self.user.as_ref().filter(|_| self.logged_in()) else {
            return Flow::Continue;
        };
        if self.shared.auth.account_current(user) {
            return Flow::Continue;
        }
        tracing::info!(peer = %self.peer, user = %user.name, "account disabled, removed or changed; logging out");
        if self.transfer.is_some() {
            self.revoked_pending = true;
            return Flow::Continue;
        }
        self.account_revoked().await
    }

    /// The operator's kick: a running transfer is cut (its 426), then 231
    /// (421 before login), within `FAREWELL`: a client that does not read
    /// its replies does not keep the session.
    async fn ended_by_operator(&mut self) -> Flow {
        let farewell = async {
            if let Some(outcome) = self.cancel_transfer().await {
                self.send(outcome.reply).await;
            }
            self.end_session(
                "Logged out by the server's operator, closing control connection",
                "Closed by the server's operator, closing control connection",
            )
            .await
        };
        tokio::time::timeout(FAREWELL, farewell).await.unwrap_or(Flow::Close)
    }

    async fn account_revoked(&mut self) -> Flow {
        self.reply(
            ReplyCode::UserLoggedOut,
            "Account disabled, removed or its credentials changed; logged out, closing control connection",
        )
        .await;
        Flow::Close
    }

    /// Answers a bad command: a line that is not a valid command (unknown,
    /// malformed, over-long). Before login, the one after
    /// `max_bad_commands_before_login` of them gets 421 and the session
    /// ends. A valid command refused for want of a login (530) is not
    /// counted: it costs nothing, and clients probe with them.
    async fn bad_command(&mut self, reply: Reply) -> Flow {
        let max = self.config.max_bad_commands_before_login;
        if !self.logged_in() && max > 0 {
            self.bad_commands += 1;
            if self.bad_commands > max {
                tracing::info!(peer = %self.peer, "too many bad commands before login");
                self.reply(
                    ReplyCode::ServiceNotAvailable,
                    "Too many bad commands, closing control connection",
                )
                .await;
                return Flow::Close;
            }
        }
        self.send(reply).await;
        Flow::Continue
    }

    /// A complete line from the client: run it now, or queue it behind a
    /// running transfer.
    async fn accept_line(&mut self, line: Vec<u8>) -> Flow {
        self.accept_protected_line(line, None).await
    }

    /// [`Session::accept_line`] for a line that came protected at `level`
    /// (opened from a MIC, CONF or ENC) or plain (`None`).
    pub(crate) async fn accept_protected_line(&mut self, line: Vec<u8>, level: Option<CommandLevel>) -> Flow {
        let runs_now = self.transfer.is_none() && self.deferred.is_empty() || allowed_during_transfer(&line);
        if runs_now {
            return self.dispatch_line(&line, level).await;
        }
        if self.deferred.len() >= self.config.max_queued_commands {
            self.reply(
                ReplyCode::ServiceNotAvailable,
                "Too many commands queued during a transfer",
            )
            .await;
            return Flow::Close;
        }
        self.deferred.push_back((line, level));
        Flow::Continue
    }

    /// Runs one command; the idle clock starts again once it is answered,
    /// so a slow command (an argon2 check under load, a storage call to a
    /// distant object store) does not eat into the client's idle time.
    async fn dispatch_line(&mut self, line: &[u8], level: Option<CommandLevel>) -> Flow {
        let flow = self.run_line(line, level).await;
        self.last_activity = Instant::now();
        flow
    }

    async fn run_line(&mut self, line: &[u8], level: Option<CommandLevel>) -> Flow {
        // Replies follow the command's protection: a protected command's
        // own replies, and those no command asks for until the next one (a
        // timeout's 421), go out at its level; a transfer's keep the level
        // of the command that started it (`RunningTransfer::protection`).
        let protection = self.reply_protection(level);
        self.command_level = level;
        let command = match Command::parse(line) {
            Ok(c) => c,
            Err(e) => {
                let reply = self.parse_error_reply(&e);
                self.ctl.protection = protection;
                return self.bad_command(reply).await;
            }
        };
        tracing::trace!(verb = ?command.verb(), "command");
        let verb = command.verb();
        if level.is_none() && !self.plain_command_allowed(verb) {
            let refusal = Reply::new(
                ReplyCode::CommandProtectionLevelDenied,
                "Commands must be protected (MIC, CONF or ENC) once the security exchange is done",
            );
            self.send_as(None, refusal).await;
            return Flow::Continue;
        }
        // The line of a MIC, CONF or ENC leaves the level alone: the
        // command inside sets it when it runs (now, or after a transfer).
        if level.is_some() || !matches!(verb, Verb::Mic | Verb::Conf | Verb::Enc) {
            self.ctl.protection = protection;
        }
        let spec = command.verb().spec();
        let view = GateView {
            user: self.user.as_ref().filter(|_| self.logged_in()),
            account_given: self.account_given,
        };
        if let Err(reply) = gate::check(&view, spec) {
            if command.verb() != Verb::Rnto {
                self.rename_from = None;
            }
            self.send(reply).await;
            return Flow::Continue;
        }
        let flow = self.dispatch(command).await;
        if self.close_requested {
            return Flow::Close;
        }
        flow
    }

    fn parse_error_reply(&self, e: &ParseError) -> Reply {
        if let Some(verb) = e.verb() {
            if verb.spec().needs_login && !self.logged_in() {
                return Reply::new(ReplyCode::NotLoggedIn, "Please log in with USER and PASS");
            }
        }
        match e {
            ParseError::UnknownCommand => Reply::new(ReplyCode::SyntaxError, "Unknown command"),
            ParseError::MissingArgument(v) => Reply::new(
                ReplyCode::ArgumentSyntaxError,
                format!("{} needs an argument", v.name()),
            ),
            ParseError::UnexpectedArgument(v) => Reply::new(
                ReplyCode::ArgumentSyntaxError,
                format!("{} takes no argument", v.name()),
            ),
            ParseError::InvalidArgument(_, why) => Reply::new(
                ReplyCode::ArgumentSyntaxError,
                format!("Syntax error in argument: {why}"),
            ),
            ParseError::UnsupportedParameter(_, why) => Reply::new(
                ReplyCode::ParameterNotImplemented,
                format!("Not implemented for that parameter: {why}"),
            ),
            ParseError::UnsupportedProtocol(_) => Reply::new(
                ReplyCode::NetworkProtocolNotSupported,
                "Network protocol not supported, use (1,2)",
            ),
        }
    }

    /// Sends the final reply of a finished transfer; runs a pending QUIT.
    pub async fn finish_transfer(&mut self, outcome: TransferOutcome) -> Flow {
        let protection = self.transfer.take().and_then(|t| t.protection);
        if let Some(stream) = outcome.keep_open {
            self.data = DataSetup::Open(stream);
        }
        self.send_as(protection, outcome.reply).await;
        if let Some(flow) = self.after_transfer().await {
            return flow;
        }
        // The idle clock starts again when the transfer ends.
        self.last_activity = Instant::now();
        Flow::Continue
    }

    /// What waited for the transfer to end, however it ended (its reply,
    /// or ABOR's): the shutdown's 421, QUIT's 221, the session limit's or
    /// the account's 231. `None`: the session goes on.
    async fn after_transfer(&mut self) -> Option<Flow> {
        if self.shutdown_pending {
            self.reply(
                ReplyCode::ServiceNotAvailable,
                "Service not available, server shutting down",
            )
            .await;
            return Some(Flow::Close);
        }
        if self.quit_pending {
            self.reply(ReplyCode::ClosingControlConnection, "Goodbye").await;
            return Some(Flow::Close);
        }
        if self.expired_pending {
            return Some(self.session_expired().await);
        }
        if self.revoked_pending {
            return Some(self.account_revoked().await);
        }
        None
    }

    /// Cancels a running transfer and waits for it to clean up (an upload
    /// is aborted or kept per policy inside the transfer task).
    pub async fn cancel_transfer(&mut self) -> Option<TransferOutcome> {
        let mut t = self.transfer.take()?;
        if let Some(cancel) = t.cancel.take() {
            let _ = cancel.send(());
        }
        loop {
            match t.next_event().await {
                TransferEvent::Mark(m) => self.send_as(t.protection.clone(), m).await,
                TransferEvent::Done(outcome) => return Some(outcome),
            }
        }
    }

    /// A reply of the running transfer (a 110 mark), at its protection.
    async fn send_transfer_reply(&mut self, reply: Reply) {
        let protection = self.transfer.as_ref().and_then(|t| t.protection.clone());
        self.send_as(protection, reply).await;
    }

    async fn end_transfer_on_close(&mut self) {
        if self.transfer.is_some() {
            let _ = self.cancel_transfer().await;
        }
    }
}

/// A session's RFC 2228 GSSAPI state.
pub(crate) enum GssState {
    None,
    /// AUTH GSSAPI answered 334; ADAT rounds go on (the negotiation is
    /// taken out while a round runs on a blocking thread).
    Negotiating(Option<gssapi::Negotiation>),
    /// ADAT finished (235): the context protects commands and data.
    Established(Arc<gssapi::SecurityContext>),
}

/// True when the line's verb is one the table allows during a transfer.
fn allowed_during_transfer(line: &[u8]) -> bool {
    let name = line.split(|&b| b == b' ').next().unwrap_or_default();
    Verb::from_name(name).is_some_and(|v| v.spec().during_transfer)
}
