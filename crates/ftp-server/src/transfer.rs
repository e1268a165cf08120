//! Transfers: RETR, STOR/STOU/APPE and LIST/NLST/MLSD, each run as its own
//! task so the control connection keeps answering (ABOR, STAT, QUIT).
//!
//! The handler opens the source or sink first (so a missing file is a 550
//! before any 150), then hands it here with the data-connection setup. Every
//! await on the network or storage is guarded by the cancel signal (ABOR, or
//! the session going away) and the stall timeout.
//!
//! Bytes on the wire pass through up to three encodings, innermost first:
//! TYPE A line ends, STRU P page headers, MODE B block headers.

use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ftp_auth::PermissionSet;
use ftp_proto::ascii::{FromNetwork, ToNetwork};
use ftp_proto::command::{Structure, TransferMode, TransferType};
use ftp_proto::listing::{self, EntryKind, FactSet};
use ftp_proto::modeb::{self, BlockDecoder, BlockEvent};
use ftp_proto::page::{self, PageDecoder, PageEvent};
use ftp_proto::{Reply, ReplyCode};
use ftp_storage::{DirEntry, DirStream, ErrorKind, FileRead, StorageError, Upload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::cork::{SendfileDownloads, Sending, TailCork};
use crate::data::{self, DataSetup};
use crate::gss_framing::{self, GssStream};
use crate::ktls;
use crate::net;
use crate::receive_thread::{self, ReceiveError, ReceiveThreads, ThreadReceive};
use crate::replies;
use crate::send_thread::{self, SendError, SendThreads, ThreadSend};
use crate::session::TransferParams;
use crate::tls::{self, MaybeTls};

/// How a transfer ended: the final reply, and for MODE B a data connection
/// that stays open for the next transfer.
pub(crate) struct TransferOutcome {
    pub reply: Reply,
    pub keep_open: Option<MaybeTls>,
}

impl TransferOutcome {
    pub fn failed(reply: Reply) -> Self {
        TransferOutcome { reply, keep_open: None }
    }
}

/// What a transfer moves.
pub(crate) enum Job {
    Retr {
        source: Box<dyn FileRead>,
        offset: u64,
    },
    Stor {
        upload: Box<dyn Upload>,
        offset: u64,
        unique_name: Option<String>,
    },
    List {
        listing: Listing,
        format: ListFormat,
    },
}

pub(crate) enum Listing {
    Dir(Box<dyn DirStream>),
    Single(DirEntry),
}

pub(crate) enum ListFormat {
    /// LIST: `ls -l` lines.
    Long,
    /// NLST: names only.
    Names,
    /// MLSD: RFC 3659 facts.
    Facts { set: FactSet, permissions: PermissionSet },
}

/// Everything a transfer task needs besides its job.
pub(crate) struct TransferContext {
    pub params: TransferParams,
    pub data: DataSetup,
    pub connect_timeout: Duration,
    pub stall_timeout: Duration,
    pub buffer_size: usize,
    /// `config.splice_uploads`.
    pub splice_uploads: bool,
    pub progress: Arc<AtomicU64>,
    /// Where 110 restart marks go: only for MODE B uploads.
    pub marks: Option<mpsc::Sender<Reply>>,
    pub cancel: oneshot::Receiver<()>,
    /// PROT P: TLS on the data connection, with the control session's
    /// config (see `tls`).
    pub protection: Option<DataProtection>,
    /// PROT S or P under GSSAPI: RFC 2228 blocks wrapped by the control
    /// session's security context.
    pub gss: Option<gss_framing::DataProtection>,
    /// Threads for large plain downloads (see `send_thread`).
    pub send_threads: Arc<SendThreads>,
    /// Threads for large plain uploads (see `receive_thread`).
    pub receive_threads: Arc<ReceiveThreads>,
    /// The server's plain sendfile downloads, which decide their corks
    /// (see `cork`).
    pub sendfile_downloads: Arc<SendfileDownloads>,
}

pub(crate) struct DataProtection {
    pub config: Arc<rustls::ServerConfig>,
    pub require_session_reuse: bool,
    /// `tls.kernel_offload`: downloads that sendfile can serve, and binary
    /// MODE S uploads, go to kernel TLS where the kernel takes the
    /// connection's cipher.
    pub kernel_offload: bool,
}

/// Why a transfer stopped early.
enum Stop {
    Cancelled,
    Stalled,
    Network(io::Error),
    Storage(StorageError),
    Page(page::PageError),
    /// The data connection closed before the MODE B end-of-file block.
    Truncated,
    /// No data connection could be made (425).
    NoConnection,
    /// PROT P, but the data connection's TLS handshake failed (522).
    TlsRequired,
    /// PROT P, but the handshake did not resume the control session (522).
    SessionNotResumed,
}

impl Stop {
    /// The storage ran out of space: a quota (552) or the disk (452).
    fn out_of_space(&self) -> bool {
        matches!(self, Stop::Storage(e) if matches!(e.kind, ErrorKind::QuotaExceeded | ErrorKind::InsufficientStorage))
    }

    fn reply(&self) -> Reply {
        match self {
            Stop::Cancelled => Reply::new(
                ReplyCode::ConnectionClosedTransferAborted,
                "Connection closed; transfer aborted",
            ),
            Stop::Stalled => Reply::new(
                ReplyCode::ConnectionClosedTransferAborted,
                "Transfer stalled; connection closed",
            ),
            Stop::Network(e) => {
                tracing::debug!(error = %e, "data connection failed");
                Reply::new(
                    ReplyCode::ConnectionClosedTransferAborted,
                    "Data connection broken; transfer aborted",
                )
            }
            Stop::Truncated => Reply::new(
                ReplyCode::ConnectionClosedTransferAborted,
                "Data connection closed before end of file; transfer aborted",
            ),
            Stop::Storage(e) => replies::storage_error(e),
            Stop::NoConnection => Reply::new(ReplyCode::CantOpenDataConnection, "Can't open data connection"),
            Stop::TlsRequired => Reply::new(
                ReplyCode::NetworkProtocolNotSupported,
                "TLS handshake on the data connection failed; PROT P needs TLS",
            ),
            Stop::SessionNotResumed => Reply::new(
                ReplyCode::NetworkProtocolNotSupported,
                "Data connection must resume the TLS session of the control connection",
            ),
            Stop::Page(page::PageError::UnknownType(t)) => Reply::new(
                ReplyCode::PageTypeUnknown,
                format!("Requested action aborted: page type {t} unknown"),
            ),
            Stop::Page(page::PageError::BadHeaderLength(n)) => Reply::new(
                ReplyCode::PageTypeUnknown,
                format!("Requested action aborted: bad page header length {n}"),
            ),
        }
    }
}

/// Awaits `fut` unless the transfer is cancelled or makes no progress for
/// the stall timeout.
async fn guarded<T, E: Into<StopCause>>(
    cancel: &mut oneshot::Receiver<()>,
    stall: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, Stop> {
    tokio::select! {
        biased;
        _ = cancel => Err(Stop::Cancelled),
        r = tokio::time::timeout(stall, fut) => match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.into().0),
            Err(_) => Err(Stop::Stalled),
        },
    }
}

impl From<SendError> for Stop {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Stalled => Stop::Stalled,
            SendError::Stopped => Stop::Cancelled,
            SendError::Io(e) => Stop::Network(e),
        }
    }
}

impl From<ReceiveError> for Stop {
    fn from(e: ReceiveError) -> Self {
        match e {
            ReceiveError::Stalled => Stop::Stalled,
            ReceiveError::Stopped => Stop::Cancelled,
            ReceiveError::Network(e) => Stop::Network(e),
            ReceiveError::Storage(e) => Stop::Storage(e),
        }
    }
}

/// Lets [`guarded`] take both network and storage futures.
struct StopCause(Stop);

impl From<io::Error> for StopCause {
    fn from(e: io::Error) -> Self {
        StopCause(Stop::Network(e))
    }
}

impl From<StorageError> for StopCause {
    fn from(e: StorageError) -> Self {
        StopCause(Stop::Storage(e))
    }
}

pub(crate) async fn run(job: Job, mut ctx: TransferContext) -> TransferOutcome {
    let connect = data::establish(std::mem::replace(&mut ctx.data, DataSetup::None), ctx.connect_timeout);
    let connected = tokio::select! {
        biased;
        _ = &mut ctx.cancel => Err(Stop::Cancelled),
        r = connect => r.map_err(|e| {
            tracing::debug!(error = %e, "data connection not established");
            Stop::NoConnection
        }),
    };
    let stream = match connected {
        Ok((stream, true)) => {
            if needs_nodelay(&ctx) {
                if let Some(tcp) = stream.tcp() {
                    let _ = tcp.set_nodelay(true);
                }
            }
            // An upload the kernel may decrypt reads its handshake record
            // by record (see `ktls`).
            let for_kernel_rx = matches!(job, Job::Stor { .. }) && kernel_may_receive(&ctx);
            protect(stream, &mut ctx, for_kernel_rx).await
        }
        Ok((stream, false)) => Ok(stream),
        Err(stop) => Err(stop),
    };
    let stream = match stream {
        Ok(s) => s,
        Err(stop) => {
            if let Job::Stor { upload, .. } = job {
                let _ = upload.abort().await;
            }
            return TransferOutcome::failed(stop.reply());
        }
    };
    match job {
        Job::Retr { source, offset } => send_file(stream, source, offset, ctx).await,
        Job::Stor {
            upload,
            offset,
            unique_name,
        } => receive_file(stream, upload, offset, unique_name, ctx).await,
        Job::List { listing, format } => send_listing(stream, listing, format, ctx).await,
    }
}

/// Whether a new data connection turns Nagle's algorithm off. A plain
/// stream-mode transfer keeps it on: the end of its data is corked and the
/// shutdown sends whatever is left at once (see [`TailCork`]), and with it
/// off each sendfile pushed out whatever part of a segment the window
/// allowed (32 clients fetching 64 MiB each: 23,300 segments per GiB with
/// it off, 21,700 on, against vsftpd's 18,600; the clients spent a quarter
/// less CPU, and the aggregate went from 2,370-2,820 to 2,989-3,505 MiB/s
/// over four interleaved rounds). Under TLS the handshake's and the
/// records' small writes must not wait for an ACK, nor may the last block
/// of a MODE B transfer, whose connection stays open with nothing to
/// push it.
fn needs_nodelay(ctx: &TransferContext) -> bool {
    ctx.protection.is_some() || ctx.gss.is_some() || ctx.params.mode == TransferMode::Block
}

/// Whether a protected upload with these parameters goes to kernel TLS
/// when the kernel takes its cipher: binary MODE S, file structure, where
/// what the kernel decrypts is the file as it is.
fn kernel_may_receive(ctx: &TransferContext) -> bool {
    ctx.protection.as_ref().is_some_and(|p| p.kernel_offload)
        && ctx.params.kind == TransferType::Image
        && ctx.params.mode == TransferMode::Stream
        && ctx.params.structure == Structure::File
        && ktls::support().receives_any()
}

/// Runs the TLS handshake on a new data connection under PROT P and checks
/// that it resumed the control session when the policy says so. With
/// `for_kernel_rx` (an upload, see [`kernel_may_receive`]) the connection
/// then goes to kernel TLS in both directions where the kernel takes it.
async fn protect(stream: MaybeTls, ctx: &mut TransferContext, for_kernel_rx: bool) -> Result<MaybeTls, Stop> {
    if let Some(gss) = &ctx.gss {
        // A kept MODE B connection is already wrapped.
        return match stream {
            MaybeTls::Plain(tcp) => GssStream::new(tcp, gss.clone())
                .map(|g| MaybeTls::Gss(Box::new(g)))
                .map_err(Stop::Network),
            other => Ok(other),
        };
    }
    let Some(protection) = &ctx.protection else {
        return Ok(stream);
    };
    let MaybeTls::Plain(tcp) = stream else {
        return Ok(stream);
    };
    let config = Arc::clone(&protection.config);
    let handshake = async move {
        if for_kernel_rx {
            tls::accept_record_by_record(config, tcp).await
        } else {
            tls::accept(config, tcp).await
        }
    };
    let tls = tokio::select! {
        biased;
        _ = &mut ctx.cancel => return Err(Stop::Cancelled),
        r = tokio::time::timeout(ctx.connect_timeout, handshake) => match r {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "data TLS handshake failed");
                return Err(Stop::TlsRequired);
            }
            Err(_) => return Err(Stop::TlsRequired),
        },
    };
    if protection.require_session_reuse && !tls::resumed(&tls) {
        return Err(Stop::SessionNotResumed);
    }
    let mut tls = tls;
    // rustls queues at most 64 KiB of records by default, so one 256 KiB
    // write became four rounds of encrypt-then-writev; room for a whole
    // transfer buffer (plus record overhead) makes it one.
    tls.get_mut()
        .1
        .set_buffer_limit(Some(ctx.buffer_size + ctx.buffer_size / 8));
    let stream = MaybeTls::Tls(Box::new(tls));
    if for_kernel_rx {
        to_kernel_tls(stream, ctx, ktls::Directions::SendAndReceive).await
    } else {
        Ok(stream)
    }
}

/// A protected connection moved into kernel TLS in `directions` when the
/// kernel takes its cipher (see `ktls`); otherwise as it was.
async fn to_kernel_tls(
    stream: MaybeTls,
    ctx: &mut TransferContext,
    directions: ktls::Directions,
) -> Result<MaybeTls, Stop> {
    let MaybeTls::Tls(tls) = stream else {
        return Ok(stream);
    };
    let offload = tokio::select! {
        biased;
        _ = &mut ctx.cancel => return Err(Stop::Cancelled),
        r = tokio::time::timeout(ctx.stall_timeout, ktls::offload(tls, directions)) => match r {
            Ok(r) => r.map_err(Stop::Network)?,
            Err(_) => return Err(Stop::Stalled),
        },
    };
    Ok(match offload {
        ktls::Offload::Kernel(k) => MaybeTls::Kernel(k),
        ktls::Offload::Kept(tls) => MaybeTls::Tls(tls),
    })
}

/// The final reply of a successful send; MODE B keeps the connection.
async fn finish_send(mut stream: MaybeTls, mode: TransferMode) -> TransferOutcome {
    if mode == TransferMode::Block {
        // The connection stays open, so no shutdown pushes out what a TLS
        // or GSSAPI stream still holds of the end-of-file block.
        if let Err(e) = stream.flush().await {
            return TransferOutcome::failed(Stop::Network(e).reply());
        }
        return TransferOutcome {
            reply: Reply::new(
                ReplyCode::DataConnectionOpenNoTransfer,
                "Transfer complete; data connection kept open (MODE B)",
            ),
            keep_open: Some(stream),
        };
    }
    let _ = stream.shutdown().await;
    TransferOutcome::failed(Reply::new(ReplyCode::ClosingDataConnection, "Transfer complete"))
}

/// The encodings applied to outgoing bytes.
struct SendEncoder {
    ascii: Option<ToNetwork>,
    pages: Option<u8>,
    blocks: bool,
    scratch: Vec<u8>,
}

impl SendEncoder {
    fn new(params: TransferParams) -> Self {
        SendEncoder {
            ascii: (params.kind == TransferType::Ascii).then(ToNetwork::default),
            pages: (params.structure == Structure::Page).then_some(0),
            blocks: params.mode == TransferMode::Block,
            scratch: Vec::new(),
        }
    }

    /// True when bytes go out exactly as stored (zero-copy is possible).
    fn is_identity(&self) -> bool {
        self.ascii.is_none() && self.pages.is_none() && !self.blocks
    }

    /// Encodes `input` into `out` (cleared first).
    fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        let data: &[u8] = match &mut self.ascii {
            Some(conv) => {
                conv.convert(input, &mut text);
                &text
            }
            None => input,
        };
        let mut paged = Vec::new();
        let data: &[u8] = match &mut self.pages {
            Some(index) => {
                for chunk in data.chunks(page::MAX_PAGE_DATA) {
                    *index = index.wrapping_add(1);
                    paged.extend_from_slice(&page::simple_page_header(*index, chunk.len() as u8));
                    paged.extend_from_slice(chunk);
                }
                &paged
            }
            None => data,
        };
        if self.blocks {
            for chunk in data.chunks(modeb::MAX_BLOCK) {
                out.extend_from_slice(&modeb::header(0, chunk.len() as u16));
                out.extend_from_slice(chunk);
            }
        } else {
            out.extend_from_slice(data);
        }
        self.scratch = text;
    }

    /// The trailer: the last page and the end-of-file block.
    fn finish(&mut self, out: &mut Vec<u8>) {
        out.clear();
        let mut tail = Vec::new();
        if let Some(index) = self.pages {
            tail.extend_from_slice(&page::last_page_header(index.wrapping_add(1)));
        }
        if self.blocks {
            out.extend_from_slice(&modeb::header(modeb::END_OF_FILE, tail.len() as u16));
        }
        out.extend_from_slice(&tail);
    }
}

/// Sends a large download from a thread of its own (see `send_thread`) and
/// returns where it got to; `pos` as it was when the download is too
/// short for one or no thread is free.
async fn send_on_thread(
    tcp: &tokio::net::TcpStream,
    fd: std::os::fd::RawFd,
    pos: u64,
    end: u64,
    sending: &Sending,
    ctx: &mut TransferContext,
) -> Result<u64, Stop> {
    if end.saturating_sub(pos) < send_thread::MIN_BYTES {
        return Ok(pos);
    }
    let progress = Arc::clone(&ctx.progress);
    let (range, cork) = (pos..end, sending.cork());
    let Some(mut send) = ThreadSend::start(&ctx.send_threads, tcp, fd, range, cork, ctx.stall_timeout, progress) else {
        return Ok(pos);
    };
    let finished = tokio::select! {
        biased;
        _ = &mut ctx.cancel => None,
        r = send.finish() => Some(r),
    };
    match finished {
        Some(r) => r.map_err(Stop::from),
        None => {
            // Waits for the thread to let go of the connection, so that
            // closing it after the 426 really closes it.
            send.stop().await;
            Err(Stop::Cancelled)
        }
    }
}

async fn send_file(
    mut stream: MaybeTls,
    mut source: Box<dyn FileRead>,
    offset: u64,
    mut ctx: TransferContext,
) -> TransferOutcome {
    let mut encoder = SendEncoder::new(ctx.params);
    let mut tail_cork = TailCork::new(ctx.params.mode);
    let stall = ctx.stall_timeout;
    // The size at open: a download is that snapshot.
    let end = source.size();
    let kernel_tls = ctx.protection.as_ref().is_some_and(|p| p.kernel_offload);
    if kernel_tls && encoder.is_identity() && source.sendfile_fd().is_some() {
        stream = match to_kernel_tls(stream, &mut ctx, ktls::Directions::Send).await {
            Ok(stream) => stream,
            Err(stop) => return TransferOutcome::failed(stop.reply()),
        };
    }
    let result: Result<(), Stop> = async {
        if let (true, Some(fd), Some(tcp)) = (encoder.is_identity(), source.sendfile_fd(), stream.sendfile_target()) {
            // Stream mode, plain or under kernel TLS: corked by the count
            // of sendfile downloads (see `cork`).
            let sending = ctx.sendfile_downloads.start();
            let mut pos = offset;
            if let Some(end) = end {
                pos = send_on_thread(tcp, fd, pos, end, &sending, &mut ctx).await?;
            }
            let mut cork = sending.cork();
            loop {
                // Knowing the end also saves the last sendfile call, which
                // would only say "end".
                if end.is_some_and(|end| pos >= end) {
                    return Ok(());
                }
                cork.before_send(tcp.as_fd(), end.map(|end| end.saturating_sub(pos)));
                let n = guarded(
                    &mut ctx.cancel,
                    stall,
                    net::sendfile(tcp, fd, &mut pos, net::SENDFILE_CHUNK),
                )
                .await?;
                if n == 0 {
                    return Ok(());
                }
                ctx.progress.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        let mut buf = vec![0u8; ctx.buffer_size];
        let mut wire = Vec::with_capacity(ctx.buffer_size + ctx.buffer_size / 8);
        let mut pos = offset;
        loop {
            let n = guarded(&mut ctx.cancel, stall, source.read(&mut buf)).await?;
            if n == 0 {
                break;
            }
            pos += n as u64;
            tail_cork.near_end(&stream, end.map(|end| end.saturating_sub(pos)));
            let out: &[u8] = if encoder.is_identity() {
                &buf[..n]
            } else {
                encoder.encode(&buf[..n], &mut wire);
                &wire
            };
            guarded(&mut ctx.cancel, stall, stream.write_all(out)).await?;
            ctx.progress.fetch_add(n as u64, Ordering::Relaxed);
        }
        encoder.finish(&mut wire);
        if !wire.is_empty() {
            guarded(&mut ctx.cancel, stall, stream.write_all(&wire)).await?;
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => finish_send(stream, ctx.params.mode).await,
        Err(stop) => TransferOutcome::failed(stop.reply()),
    }
}

/// The decodings applied to incoming bytes.
struct ReceiveDecoder {
    blocks: Option<BlockDecoder>,
    pages: Option<PageDecoder>,
    ascii: Option<FromNetwork>,
}

impl ReceiveDecoder {
    /// Binary MODE S, STRU F: what arrives is the file as it is.
    fn is_identity(&self) -> bool {
        self.blocks.is_none() && self.pages.is_none() && self.ascii.is_none()
    }
}

/// An upload's decoding, and where it stands: the bytes written so far,
/// counted from the file's start (the server's side of a 110 restart
/// mark), and the marks sent.
struct Receiving {
    dec: ReceiveDecoder,
    position: u64,
    marks_sent: u32,
}

/// How far one stage of an upload took it.
enum Received {
    /// To the end of the data (decoders finished, ASCII tail written).
    All,
    /// The rest is for the next stage.
    Rest,
}

/// An upload received on the runtime: spliced first with `splice` (see
/// [`receive_spliced_first`]), then read and decoded ([`receive_loop`]);
/// with `hand_off_at`, up to that position.
async fn receive_on_runtime(
    stream: &mut MaybeTls,
    upload: &mut Box<dyn Upload>,
    state: &mut Receiving,
    ctx: &mut TransferContext,
    splice: bool,
    hand_off_at: Option<u64>,
) -> Result<Received, Stop> {
    if splice {
        let spliced = receive_spliced_first(stream, upload, state, ctx, hand_off_at).await;
        if !matches!(spliced, Ok(Received::Rest)) {
            return spliced;
        }
    }
    receive_loop(stream, upload, state, ctx, hand_off_at).await
}

/// A plain binary upload to a local file, spliced while the upload offers
/// its descriptor (`server.splice_uploads`, see [`receive_spliced`]) and,
/// with `hand_off_at`, until its position reaches it.
async fn receive_spliced_first(
    stream: &MaybeTls,
    upload: &mut Box<dyn Upload>,
    state: &mut Receiving,
    ctx: &mut TransferContext,
    hand_off_at: Option<u64>,
) -> Result<Received, Stop> {
    let (Some(tcp), Some(_)) = (stream.as_plain(), upload.direct_fd()) else {
        return Ok(Received::Rest);
    };
    let Some(pipe) = splice_pipe(ctx) else {
        return Ok(Received::Rest);
    };
    receive_spliced(tcp, upload, &pipe, ctx, &mut state.position, hand_off_at).await
}

/// The pipe of a spliced upload, `None` if the system has none to give.
fn splice_pipe(ctx: &TransferContext) -> Option<net::SplicePipe> {
    net::SplicePipe::new(splice_pipe_size(ctx)).ok()
}

fn splice_pipe_size(ctx: &TransferContext) -> usize {
    ctx.buffer_size.max(SPLICE_PIPE_SIZE)
}

/// Reads, decodes and stores on the runtime until the end of the data, or,
/// with `hand_off_at`, until the upload's position reaches it (then
/// [`Received::Rest`], between two reads, with nothing held back).
async fn receive_loop(
    stream: &mut MaybeTls,
    upload: &mut Box<dyn Upload>,
    state: &mut Receiving,
    ctx: &mut TransferContext,
    hand_off_at: Option<u64>,
) -> Result<Received, Stop> {
    // Already there (the splice stage got there): no buffers to make.
    if hand_off_at.is_some_and(|at| state.position >= at) {
        return Ok(Received::Rest);
    }
    let stall = ctx.stall_timeout;
    let identity = state.dec.is_identity();
    let dec = &mut state.dec;
    let mut buf = vec![0u8; ctx.buffer_size];
    let mut stored = Vec::with_capacity(ctx.buffer_size);
    loop {
        if hand_off_at.is_some_and(|at| state.position >= at) {
            return Ok(Received::Rest);
        }
        // Undecoded bytes go straight into the upload's own buffer when
        // it has one (a local file past its page cache): no copy.
        if let Some(room) = upload.buffer().filter(|_| identity) {
            let n = guarded(&mut ctx.cancel, stall, stream.read(room)).await?;
            if n == 0 {
                break;
            }
            guarded(&mut ctx.cancel, stall, upload.buffer_filled(n)).await?;
            state.position += n as u64;
            ctx.progress.fetch_add(n as u64, Ordering::Relaxed);
            continue;
        }
        let n = guarded(&mut ctx.cancel, stall, stream.read(&mut buf)).await?;
        if n == 0 {
            if dec.blocks.as_ref().is_some_and(|b| !b.is_done()) {
                return Err(Stop::Truncated);
            }
            break;
        }
        let mut input = &buf[..n];
        while !input.is_empty() {
            // MODE B: unwrap blocks first, answering restart markers.
            let data: &[u8] = match &mut dec.blocks {
                Some(blocks) => {
                    let (used, event) = blocks.decode(input);
                    input = &input[used..];
                    match event {
                        Some(BlockEvent::Data(d)) => d,
                        Some(BlockEvent::RestartMarker(marker)) => {
                            let marker: String = String::from_utf8_lossy(&marker)
                                .chars()
                                .filter(|c| c.is_ascii_graphic())
                                .collect();
                            let reply =
                                Reply::new(ReplyCode::RestartMarker, format!("MARK {marker} = {}", state.position));
                            if let Some(marks) = &ctx.marks {
                                if marks.send(reply).await.is_ok() {
                                    state.marks_sent += 1;
                                }
                            }
                            continue;
                        }
                        Some(BlockEvent::EndOfFile) => break,
                        None if used == 0 => break,
                        None => continue,
                    }
                }
                None => std::mem::take(&mut input),
            };
            let written = store_chunk(dec, data, &mut stored, upload, &mut ctx.cancel, stall).await?;
            state.position += written;
            ctx.progress.fetch_add(written, Ordering::Relaxed);
        }
        if dec.blocks.as_ref().is_some_and(BlockDecoder::is_done) {
            break;
        }
        if dec.pages.as_ref().is_some_and(PageDecoder::is_done) && dec.blocks.is_none() {
            break;
        }
    }
    if let Some(ascii) = &mut dec.ascii {
        stored.clear();
        ascii.finish(&mut stored);
        if !stored.is_empty() {
            guarded(&mut ctx.cancel, stall, upload.write_all(&stored)).await?;
        }
    }
    Ok(Received::All)
}

/// How an upload's stage on a thread of its own went.
enum OnThread {
    /// The thread ran to the end of the data or stopped; the upload is back.
    Ended(Box<dyn Upload>, Result<(), Stop>),
    /// No thread took it: the upload as it was.
    Refused(Box<dyn Upload>),
    /// The thread ended without handing the upload back.
    Lost,
}

/// The rest of a plain binary upload received on a thread of its own
/// (`receive_thread`), where the upload writes locally and a thread is
/// free. ABOR (or the session ending) stops the thread and waits for the
/// upload to come back.
async fn receive_on_thread(stream: &MaybeTls, upload: Box<dyn Upload>, ctx: &mut TransferContext) -> OnThread {
    let Some(tcp) = stream.as_plain() else {
        return OnThread::Refused(upload);
    };
    let progress = Arc::clone(&ctx.progress);
    let pipe = ctx.splice_uploads.then(|| splice_pipe_size(ctx));
    let started = ThreadReceive::start(
        &ctx.receive_threads,
        tcp,
        upload,
        ctx.buffer_size,
        pipe,
        ctx.stall_timeout,
        progress,
    );
    let mut receive = match started {
        Ok(receive) => receive,
        Err(upload) => return OnThread::Refused(upload),
    };
    let finished = tokio::select! {
        biased;
        _ = &mut ctx.cancel => None,
        r = receive.finish() => Some(r),
    };
    let (received, cancelled) = match finished {
        Some(received) => (received, false),
        None => (receive.stop().await, true),
    };
    let Some(received) = received else {
        return OnThread::Lost;
    };
    let result = match received.result {
        _ if cancelled => Err(Stop::Cancelled),
        result => result.map_err(Stop::from),
    };
    OnThread::Ended(received.upload, result)
}

async fn receive_file(
    mut stream: MaybeTls,
    mut upload: Box<dyn Upload>,
    offset: u64,
    unique_name: Option<String>,
    mut ctx: TransferContext,
) -> TransferOutcome {
    let mut state = Receiving {
        dec: ReceiveDecoder {
            blocks: (ctx.params.mode == TransferMode::Block).then(BlockDecoder::default),
            pages: (ctx.params.structure == Structure::Page).then(PageDecoder::default),
            ascii: (ctx.params.kind == TransferType::Ascii).then(FromNetwork::default),
        },
        position: offset,
        marks_sent: 0,
    };
    let identity = state.dec.is_identity();
    let splice = identity && ctx.splice_uploads;
    // A plain binary upload may move to a thread of its own once it is past
    // its first few MiB (see `receive_thread`). The thread counts its bytes
    // in `ctx.progress` only, not in `state.position`: nothing reads the
    // position after an identity upload (no MODE B restart marks), which
    // is why only those may go to a thread.
    let threadable = identity && stream.as_plain().is_some() && ctx.receive_threads.allows_any();
    let hand_off_at = threadable.then_some(offset + receive_thread::MIN_BYTES);
    let mut result = receive_on_runtime(&mut stream, &mut upload, &mut state, &mut ctx, splice, hand_off_at).await;
    if matches!(result, Ok(Received::Rest)) {
        result = match receive_on_thread(&stream, upload, &mut ctx).await {
            OnThread::Ended(returned, result) => {
                upload = returned;
                result.map(|()| Received::All)
            }
            // No thread: the runtime goes on.
            OnThread::Refused(returned) => {
                upload = returned;
                receive_on_runtime(&mut stream, &mut upload, &mut state, &mut ctx, splice, None).await
            }
            OnThread::Lost => {
                return TransferOutcome::failed(Reply::new(
                    ReplyCode::LocalError,
                    "Upload failed: the receiving thread ended without a result",
                ))
            }
        };
    }
    let result = result.map(|_| ());
    let marks_sent = state.marks_sent;
    match result {
        Ok(()) => match upload.commit().await {
            Ok(_) => {
                let text = match unique_name {
                    Some(name) => format!("Transfer complete (unique file name: {name})"),
                    None => "Transfer complete".to_string(),
                };
                if ctx.params.mode == TransferMode::Block {
                    TransferOutcome {
                        reply: Reply::new(
                            ReplyCode::DataConnectionOpenNoTransfer,
                            format!("{text}; data connection kept open (MODE B)"),
                        ),
                        keep_open: Some(stream),
                    }
                } else {
                    let _ = stream.shutdown().await;
                    TransferOutcome::failed(Reply::new(ReplyCode::ClosingDataConnection, text))
                }
            }
            Err(e) => TransferOutcome::failed(replies::storage_error(&e)),
        },
        Err(stop) => {
            if stop.out_of_space() {
                // Over a quota or a full disk, a partial file is of no use
                // (resuming it fails the same way) and only holds space:
                // nothing of it stays, whatever the other policies say.
                let _ = upload.discard().await;
            } else if marks_sent > 0 {
                // A client told of restart marks may resume from them: keep
                // what arrived. Otherwise the storage's policy applies
                // (`keep_partial_uploads` for the local disk).
                let _ = upload.commit().await;
            } else {
                let _ = upload.abort().await;
            }
            TransferOutcome::failed(stop.reply())
        }
    }
}

/// The pipe of a zero-copy upload: 1 MiB, Linux's default `pipe-max-size`.
const SPLICE_PIPE_SIZE: usize = 1 << 20;

/// A plain binary MODE S upload to a local file: socket → pipe → file with
/// splice(2), so the bytes never cross into user space (the counterpart of
/// sendfile for RETR); the page cache copy is the only one left. The
/// upload counts (and may refuse: quotas) each batch before it is written,
/// and is asked for its descriptor before each batch. `position` advances
/// by each batch written; with `hand_off_at` the splicing stops there.
/// [`Received::Rest`] when it stopped before the end of the data: at
/// `hand_off_at`, or when the upload stopped offering a descriptor (a
/// local file about to be written past the page cache); nothing is left
/// in the pipe then.
///
/// Only with `server.splice_uploads`. A spliced write moves up to the
/// pipe's 1 MiB at a time into the page cache, which then takes large
/// folios from the large free blocks, and on a VM whose host takes back
/// free memory (free page reporting) those are the blocks it took: each
/// must fault back in. 512 MiB STOR into the page cache (durability
/// "none", interleaved with vsftpd and ProFTPD, five rounds): spliced
/// 427-2,165 MiB/s, copied through the 256 KiB transfer buffer 1,832-1,997
/// (vsftpd 1,466-1,778, ProFTPD 987-2,091). Where memory stays backed the
/// splice saves a copy: a third to half of the system time per byte.
async fn receive_spliced(
    tcp: &tokio::net::TcpStream,
    upload: &mut Box<dyn Upload>,
    pipe: &net::SplicePipe,
    ctx: &mut TransferContext,
    position: &mut u64,
    hand_off_at: Option<u64>,
) -> Result<Received, Stop> {
    let stall = ctx.stall_timeout;
    loop {
        if hand_off_at.is_some_and(|at| *position >= at) {
            return Ok(Received::Rest);
        }
        // Taken before the batch: counting it may end the offer, and the
        // batch in the pipe must still reach this file.
        let Some(fd) = upload.direct_fd() else {
            return Ok(Received::Rest);
        };
        let n = guarded(&mut ctx.cancel, stall, pipe.fill_from(tcp)).await?;
        if n == 0 {
            return Ok(Received::All);
        }
        // A disk write, like `write_all`'s: the worker's other tasks move
        // to another thread meanwhile.
        tokio::task::block_in_place(|| store_spliced_batch(upload.as_mut(), pipe, fd, n)).map_err(Stop::Storage)?;
        *position += n as u64;
        ctx.progress.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Stores the `n` bytes in `pipe` through `fd`, the descriptor `upload`
/// offered before the batch was read: the upload counts them first (and
/// may refuse them), and hears of a failed write, as
/// [`Upload::direct_reserve`] asks. A blocking disk write; the runtime's
/// and the receive thread's splicing both store their batches here.
pub(crate) fn store_spliced_batch(
    upload: &mut dyn Upload,
    pipe: &net::SplicePipe,
    fd: std::os::fd::RawFd,
    n: usize,
) -> Result<(), StorageError> {
    upload.direct_reserve(n as u64)?;
    pipe.drain_to(fd, n).map_err(|e| {
        upload.direct_failed();
        StorageError::from(e)
    })
}

/// Runs one chunk of wire data through the page and ASCII decoders and
/// writes the result; returns the bytes stored.
async fn store_chunk(
    dec: &mut ReceiveDecoder,
    mut data: &[u8],
    stored: &mut Vec<u8>,
    upload: &mut Box<dyn Upload>,
    cancel: &mut oneshot::Receiver<()>,
    stall: Duration,
) -> Result<u64, Stop> {
    let mut total = 0u64;
    while !data.is_empty() {
        let piece: &[u8] = match &mut dec.pages {
            Some(pages) => {
                let (used, event) = pages.decode(data).map_err(Stop::Page)?;
                data = &data[used..];
                match event {
                    Some(PageEvent::Data(d)) => d,
                    Some(PageEvent::End) => break,
                    None if used == 0 => break,
                    None => continue,
                }
            }
            None => std::mem::take(&mut data),
        };
        let out: &[u8] = match &mut dec.ascii {
            Some(ascii) => {
                stored.clear();
                ascii.convert(piece, stored);
                stored
            }
            None => piece,
        };
        guarded(cancel, stall, upload.write_all(out)).await?;
        total += out.len() as u64;
    }
    Ok(total)
}

async fn send_listing(
    mut stream: MaybeTls,
    listing: Listing,
    format: ListFormat,
    mut ctx: TransferContext,
) -> TransferOutcome {
    let stall = ctx.stall_timeout;
    let now = SystemTime::now();
    let mut out = Vec::with_capacity(64 * 1024);
    let mut wire = Vec::new();
    // Listings are text: TYPE A changes nothing (lines already end in CR LF)
    // but MODE B and STRU P framing still apply.
    let mut encoder = SendEncoder::new(TransferParams {
        kind: TransferType::Image,
        ..ctx.params
    });
    let result: Result<(), Stop> = async {
        let now = ftp_proto::time::unix_seconds(now);
        // The perm fact depends only on the kind: computed once, not per entry.
        let perm_facts = match &format {
            ListFormat::Facts { permissions, .. } => Some([
                crate::commands::perm_fact(EntryKind::File, *permissions),
                crate::commands::perm_fact(EntryKind::Dir, *permissions),
            ]),
            _ => None,
        };
        let (mut dir, mut entries) = match listing {
            Listing::Single(e) => (None, vec![e]),
            Listing::Dir(d) => (Some(d), Vec::new()),
        };
        loop {
            for entry in entries.drain(..) {
                match &format {
                    ListFormat::Long => listing::write_list_line(&mut out, &entry.facts, &entry.name, now),
                    ListFormat::Names => out.extend_from_slice(entry.name.as_bytes()),
                    ListFormat::Facts { set, .. } => {
                        let [file_perm, dir_perm] = perm_facts.as_ref().expect("computed for MLSD");
                        let perm = if entry.facts.kind == EntryKind::Dir {
                            dir_perm
                        } else {
                            file_perm
                        };
                        listing::write_mlsx(&mut out, &entry.facts, &entry.name, perm, set)
                    }
                }
                out.extend_from_slice(b"\r\n");
            }
            if out.len() >= 60 * 1024 {
                flush_listing(
                    &mut stream,
                    &mut encoder,
                    &mut out,
                    &mut wire,
                    &mut ctx.cancel,
                    stall,
                    &ctx.progress,
                )
                .await?;
            }
            let Some(d) = dir.as_mut() else { break };
            guarded(&mut ctx.cancel, stall, d.next_entries(&mut entries)).await?;
            if entries.is_empty() {
                break;
            }
        }
        // The last batch: the rest of the listing is in `out`.
        TailCork::new(ctx.params.mode).near_end(&stream, None);
        flush_listing(
            &mut stream,
            &mut encoder,
            &mut out,
            &mut wire,
            &mut ctx.cancel,
            stall,
            &ctx.progress,
        )
        .await?;
        encoder.finish(&mut wire);
        if !wire.is_empty() {
            guarded(&mut ctx.cancel, stall, stream.write_all(&wire)).await?;
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => finish_send(stream, ctx.params.mode).await,
        Err(stop) => TransferOutcome::failed(stop.reply()),
    }
}

async fn flush_listing(
    stream: &mut MaybeTls,
    encoder: &mut SendEncoder,
    out: &mut Vec<u8>,
    wire: &mut Vec<u8>,
    cancel: &mut oneshot::Receiver<()>,
    stall: Duration,
    progress: &AtomicU64,
) -> Result<(), Stop> {
    if out.is_empty() {
        return Ok(());
    }
    let bytes: &[u8] = if encoder.is_identity() {
        out
    } else {
        encoder.encode(out, wire);
        wire
    };
    guarded(cancel, stall, stream.write_all(bytes)).await?;
    progress.fetch_add(out.len() as u64, Ordering::Relaxed);
    out.clear();
    Ok(())
}
