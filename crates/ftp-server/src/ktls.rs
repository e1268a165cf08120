//! Kernel TLS (kTLS) for FTPS data connections.
//!
//! rustls runs every protected data connection's handshake. For a download
//! the kernel can send by itself (a local file in binary MODE S, the same
//! downloads that use sendfile in plain FTP), the connection's TLS 1.3 send
//! keys and record number then go to the kernel (`TCP_ULP` "tls", then
//! `TLS_TX`), and the file goes out with sendfile: the kernel encrypts from
//! the page cache straight into the socket. In user space the same download
//! costs a read of the file into a buffer, rustls's copy of it into its
//! records, the encryption and a copy into the socket: on a 2-core VM the
//! server's core was the limit at 0.5-0.65 CPU-s per GiB, 22% of it the
//! read and 12% the copy into the socket (bench/README.md, FTPS RETR).
//!
//! A download moves only its send direction: its client sends nothing on
//! the data connection but, at the end, its close_notify, which the server
//! never needs to read. The server's own close_notify is an alert record
//! written with `TLS_SET_RECORD_TYPE`.
//!
//! A binary MODE S upload moves both (`TLS_RX` as well): the kernel
//! decrypts each record into the server's read buffer, in place of
//! rustls's copy out of the socket, decryption and copy out of its own
//! buffer. The keys can move only at a record boundary with nothing of the
//! client's data read yet, which `tls_socket` ensures by reading such a
//! handshake record by record. Reads go through recvmsg: a record that is
//! not application data comes with its type in a control message, and only
//! a close_notify alert ends the upload cleanly (a connection closed
//! without one is cut short, as rustls also reports it), a warning-level
//! user_canceled is passed over as rustls does, any other alert is an
//! error. So is a client's TLS 1.3 key update: the kernels this was built
//! on (6.1) cannot take new receive keys, and rustls, which could, no
//! longer has the connection. rustls and GnuTLS clients update their keys
//! after 2^24 AES-GCM records, some 256 GiB of full records in one upload;
//! such an upload ends with 426 under kernel TLS (`tls.kernel_offload =
//! false` keeps uploads in rustls).
//!
//! TLS 1.2 stays in rustls: its AES-GCM explicit nonces are rustls's IV
//! XOR the record number, while the kernel counts them up from a start
//! value, so the two sequences could meet. In TLS 1.3 both sides build
//! every nonce as IV XOR record number (RFC 8446 §5.3), so the kernel goes
//! on exactly where rustls stopped.
//!
//! Whether the kernel can do it is probed once per process, on a loopback
//! connection of its own for each cipher and direction (the module may be
//! missing, as on kernels built without `CONFIG_TLS`, or know only some
//! ciphers): once rustls has handed its keys over it cannot take the
//! connection back, so nothing is tried on a client's connection that the
//! probe did not show to work.

use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream as StdTcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};

use libc::c_int;
use rustls::{CipherSuite, ConnectionTrafficSecrets, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::tls::TlsConn;

// From linux/tcp.h and linux/tls.h (stable kernel ABI).
const TCP_ULP: c_int = 31;
const SOL_TLS: c_int = 282;
const TLS_TX: c_int = 1;
const TLS_RX: c_int = 2;
const TLS_SET_RECORD_TYPE: c_int = 1;
const TLS_GET_RECORD_TYPE: c_int = 2;
const TLS_1_3_VERSION: u16 = 0x0304;
const TLS_CIPHER_AES_GCM_128: u16 = 51;
const TLS_CIPHER_AES_GCM_256: u16 = 52;
const TLS_CIPHER_CHACHA20_POLY1305: u16 = 54;
/// TLS record content types.
const RECORD_TYPE_ALERT: u8 = 21;
const RECORD_TYPE_APPLICATION_DATA: u8 = 23;
/// A close_notify alert: level warning (1), description close_notify (0).
const CLOSE_NOTIFY: [u8; 2] = [1, 0];

/// `struct tls12_crypto_info_aes_gcm_128` (`KEY_LEN` 16) and `_256` (32),
/// which TLS 1.3 uses too.
#[repr(C)]
struct AesGcmInfo<const KEY_LEN: usize> {
    version: u16,
    cipher_type: u16,
    iv: [u8; 8],
    key: [u8; KEY_LEN],
    salt: [u8; 4],
    rec_seq: [u8; 8],
}

/// `struct tls12_crypto_info_chacha20_poly1305` (no salt: the whole
/// 12-byte IV is `iv`).
#[repr(C)]
struct Chacha20Info {
    version: u16,
    cipher_type: u16,
    iv: [u8; 12],
    key: [u8; 32],
    rec_seq: [u8; 8],
}

/// The `TLS_TX` or `TLS_RX` option value for one cipher. Wiped when
/// dropped: it holds one of the connection's keys.
enum CryptoInfo {
    AesGcm128(AesGcmInfo<16>),
    AesGcm256(AesGcmInfo<32>),
    Chacha20(Chacha20Info),
}

impl CryptoInfo {
    /// The option for `cipher` with this key, 12-byte IV and next record
    /// number; `None` for a key or IV of the wrong length.
    fn new(cipher: Cipher, key: &[u8], iv: &[u8], seq: u64) -> Option<CryptoInfo> {
        let rec_seq = seq.to_be_bytes();
        let version = TLS_1_3_VERSION;
        fn aes_gcm<const N: usize>(cipher_type: u16, key: &[u8], iv: &[u8], rec_seq: [u8; 8]) -> Option<AesGcmInfo<N>> {
            // AES-GCM's 12-byte nonce base is a 4-byte salt and an 8-byte IV.
            let (salt, iv) = iv.split_at_checked(4)?;
            Some(AesGcmInfo {
                version: TLS_1_3_VERSION,
                cipher_type,
                iv: iv.try_into().ok()?,
                key: key.try_into().ok()?,
                salt: salt.try_into().ok()?,
                rec_seq,
            })
        }
        Some(match cipher {
            Cipher::AesGcm128 => CryptoInfo::AesGcm128(aes_gcm(TLS_CIPHER_AES_GCM_128, key, iv, rec_seq)?),
            Cipher::AesGcm256 => CryptoInfo::AesGcm256(aes_gcm(TLS_CIPHER_AES_GCM_256, key, iv, rec_seq)?),
            Cipher::Chacha20 => CryptoInfo::Chacha20(Chacha20Info {
                version,
                cipher_type: TLS_CIPHER_CHACHA20_POLY1305,
                iv: iv.try_into().ok()?,
                key: key.try_into().ok()?,
                rec_seq,
            }),
        })
    }

    /// From rustls's TLS 1.3 traffic secrets and the next record number.
    fn tls13(secrets: &ConnectionTrafficSecrets, seq: u64) -> Option<CryptoInfo> {
        let (cipher, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (Cipher::AesGcm128, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (Cipher::AesGcm256, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (Cipher::Chacha20, key, iv),
            _ => return None,
        };
        CryptoInfo::new(cipher, key.as_ref(), iv.as_ref(), seq)
    }

    /// An all-zero key of the cipher, for the probe.
    fn probe(cipher: Cipher) -> CryptoInfo {
        let key_len = if cipher == Cipher::AesGcm128 { 16 } else { 32 };
        CryptoInfo::new(cipher, &[0; 32][..key_len], &[0; 12], 0).expect("the cipher's own lengths")
    }

    /// The option value's bytes.
    fn as_ptr_len(&self) -> (*const libc::c_void, usize) {
        fn raw<T>(v: &T) -> (*const libc::c_void, usize) {
            ((v as *const T).cast(), std::mem::size_of::<T>())
        }
        match self {
            CryptoInfo::AesGcm128(i) => raw(i),
            CryptoInfo::AesGcm256(i) => raw(i),
            CryptoInfo::Chacha20(i) => raw(i),
        }
    }
}

impl Drop for CryptoInfo {
    fn drop(&mut self) {
        fn wipe(key: &mut [u8]) {
            for b in key {
                // SAFETY: a valid, aligned u8 of this struct; volatile so
                // the wipe of a value about to die is not optimised away.
                unsafe { std::ptr::write_volatile(b, 0) };
            }
        }
        match self {
            CryptoInfo::AesGcm128(i) => wipe(&mut i.key),
            CryptoInfo::AesGcm256(i) => wipe(&mut i.key),
            CryptoInfo::Chacha20(i) => wipe(&mut i.key),
        }
    }
}

/// The TLS 1.3 ciphers rustls may negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cipher {
    AesGcm128,
    AesGcm256,
    Chacha20,
}

impl Cipher {
    const ALL: [Cipher; 3] = [Cipher::AesGcm128, Cipher::AesGcm256, Cipher::Chacha20];

    fn of_suite(suite: CipherSuite) -> Option<Cipher> {
        match suite {
            CipherSuite::TLS13_AES_128_GCM_SHA256 => Some(Cipher::AesGcm128),
            CipherSuite::TLS13_AES_256_GCM_SHA384 => Some(Cipher::AesGcm256),
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => Some(Cipher::Chacha20),
            _ => None,
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The ciphers this kernel takes for TLS 1.3, a bit per [`Cipher`] and
/// direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Support {
    send: u8,
    receive: u8,
}

impl Support {
    pub(crate) fn any(self) -> bool {
        self.send != 0
    }

    /// Whether uploads can go to the kernel with some cipher.
    pub(crate) fn receives_any(self) -> bool {
        self.receive != 0
    }

    fn sends(self, cipher: Cipher) -> bool {
        self.send & cipher.bit() != 0
    }

    fn receives(self, cipher: Cipher) -> bool {
        self.receive & cipher.bit() != 0
    }

    fn names(mask: u8) -> String {
        let names: Vec<String> = Cipher::ALL
            .iter()
            .filter(|c| mask & c.bit() != 0)
            .map(|c| format!("{c:?}"))
            .collect();
        names.join(",")
    }
}

/// What this kernel supports, probed on first use and logged once.
pub(crate) fn support() -> Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    *SUPPORT.get_or_init(|| {
        let support = probe();
        if support.any() {
            tracing::info!(
                send_ciphers = %Support::names(support.send),
                receive_ciphers = %Support::names(support.receive),
                "kernel TLS available: FTPS downloads are sent with sendfile, uploads decrypted by the kernel"
            );
        } else {
            tracing::info!("kernel TLS not available (no tls module?): FTPS data is encrypted by rustls");
        }
        support
    })
}

fn probe() -> Support {
    let mut found = Support::default();
    for cipher in Cipher::ALL {
        match probe_cipher(cipher) {
            Ok((send, receive)) => {
                if send {
                    found.send |= cipher.bit();
                }
                if receive {
                    found.receive |= cipher.bit();
                }
            }
            // No ULP at all (or no loopback): no other cipher can work.
            Err(e) => {
                tracing::debug!(error = %e, "kernel TLS probe");
                break;
            }
        }
    }
    found
}

/// Whether the kernel takes this cipher for sends and for receives; Err
/// when it has no TLS at all or the probe could not run.
fn probe_cipher(cipher: Cipher) -> io::Result<(bool, bool)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let client = StdTcpStream::connect(listener.local_addr()?)?;
    let _server = listener.accept()?;
    attach_ulp(client.as_fd())?;
    let send = set_keys(client.as_fd(), TLS_TX, &CryptoInfo::probe(cipher)).is_ok();
    let receive = set_keys(client.as_fd(), TLS_RX, &CryptoInfo::probe(cipher)).is_ok();
    Ok((send, receive))
}

fn attach_ulp(socket: BorrowedFd<'_>) -> io::Result<()> {
    const NAME: &[u8] = b"tls";
    // SAFETY: a live socket; the option value is NAME's bytes.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_TCP,
            TCP_ULP,
            NAME.as_ptr().cast(),
            NAME.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `TLS_TX` or `TLS_RX`, with the keys for that direction.
fn set_keys(socket: BorrowedFd<'_>, direction: c_int, info: &CryptoInfo) -> io::Result<()> {
    let (ptr, len) = info.as_ptr_len();
    // SAFETY: a live socket; `ptr` points at `len` bytes of a repr(C)
    // struct laid out as linux/tls.h's.
    let rc = unsafe { libc::setsockopt(socket.as_raw_fd(), SOL_TLS, direction, ptr, len as libc::socklen_t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A data connection under kernel TLS. Writes (and sendfile) put
/// plaintext into the socket; shutting it down sends the close_notify
/// first. An upload's connection is also read: the kernel decrypts.
pub(crate) struct KernelTls {
    tcp: TcpStream,
    close_notify_sent: bool,
    /// Whether the kernel decrypts what arrives (an upload's connection).
    receives: bool,
    /// The client's close_notify has arrived: reads return the end.
    close_notify_received: bool,
    /// The alert record being read: a read buffer of one byte left takes
    /// only its first byte, and the kernel hands out the rest, with the
    /// record type again, on the next read.
    alert: [u8; 2],
    alert_read: usize,
    /// Warning-level user_canceled alerts passed over so far.
    user_canceled_seen: u8,
}

impl KernelTls {
    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }
}

/// Which directions [`offload`] moves into the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Directions {
    /// A download's: the client's only record is its close_notify.
    Send,
    /// An upload's.
    SendAndReceive,
}

/// What [`offload`] did with a connection.
pub(crate) enum Offload {
    /// Handed over: the kernel encrypts (and decrypts) from here on.
    Kernel(KernelTls),
    /// Not possible for this connection (TLS 1.2, a cipher the kernel does
    /// not know, no kTLS, data already read by rustls): rustls goes on as
    /// before.
    Kept(Box<TlsConn>),
}

impl Offload {
    /// rustls goes on with the connection, reading as much as the socket
    /// has again (an upload's handshake was read record by record).
    fn kept(mut tls: Box<TlsConn>) -> Offload {
        tls.get_mut().0.whole_reads();
        Offload::Kept(tls)
    }
}

/// Moves `tls` into the kernel, in the given directions, when the kernel
/// can take its protocol and cipher. For [`Directions::SendAndReceive`]
/// the handshake must have been read record by record
/// (`tls::accept_record_by_record`), so that rustls holds nothing of what
/// the client sent after it. An error means the connection is lost (the
/// keys had left rustls, or its pending records could not be sent).
pub(crate) async fn offload(mut tls: Box<TlsConn>, directions: Directions) -> io::Result<Offload> {
    let conn = tls.get_ref().1;
    let cipher = conn.negotiated_cipher_suite().and_then(|s| Cipher::of_suite(s.suite()));
    let supported = |c: Cipher| match directions {
        Directions::Send => support().sends(c),
        Directions::SendAndReceive => support().sends(c) && support().receives(c),
    };
    let usable = conn.protocol_version() == Some(ProtocolVersion::TLSv1_3) && cipher.is_some_and(supported);
    if !usable {
        return Ok(Offload::kept(tls));
    }
    if directions == Directions::SendAndReceive {
        // Decrypted data in rustls, or part of a record, would be lost
        // with it. The record-by-record handshake leaves neither; this is
        // the check that it did.
        let buffered = tls.get_mut().1.process_new_packets().map_err(io::Error::other)?;
        if buffered.plaintext_bytes_to_read() > 0 || !tls.get_ref().0.between_records() {
            tracing::warn!("data read with the TLS handshake: this upload stays in rustls");
            return Ok(Offload::kept(tls));
        }
    }
    // What rustls has queued (the handshake's end, TLS 1.3 tickets) goes
    // out under its own keys first; the kernel continues the numbering.
    tls.flush().await?;
    if attach_ulp(tls.get_ref().0.tcp().as_fd()).is_err() {
        // The socket is unchanged: rustls keeps it.
        return Ok(Offload::kept(tls));
    }
    let (socket, conn) = (*tls).into_inner();
    let tcp = socket.into_tcp();
    let secrets = conn
        .dangerous_extract_secrets()
        .map_err(|e| io::Error::other(format!("TLS keys for the kernel: {e}")))?;
    let keys = |(seq, traffic): &(u64, ConnectionTrafficSecrets)| {
        CryptoInfo::tls13(traffic, *seq)
            .ok_or_else(|| io::Error::other("TLS keys for the kernel: unexpected key length"))
    };
    set_keys(tcp.as_fd(), TLS_TX, &keys(&secrets.tx)?)?;
    let receives = directions == Directions::SendAndReceive;
    if receives {
        set_keys(tcp.as_fd(), TLS_RX, &keys(&secrets.rx)?)?;
    }
    Ok(Offload::Kernel(KernelTls {
        tcp,
        close_notify_sent: false,
        receives,
        close_notify_received: false,
        alert: [0; 2],
        alert_read: 0,
        user_canceled_seen: 0,
    }))
}

/// One recvmsg on a socket under `TLS_RX`.
#[derive(Debug, PartialEq, Eq)]
enum Received {
    /// Application data, this many bytes.
    Data(usize),
    /// No bytes, but a record type: an empty application-data record (RFC
    /// 8446 §5.4 allows them), or the kernel stopping before an alert.
    Nothing,
    /// This many bytes of an alert record.
    Alert(usize),
    /// The connection closed (no record at all).
    Eof,
}

/// Reads decrypted bytes into `buf` (one non-blocking recvmsg). A record
/// of another type than application data comes alone, with its type in a
/// control message (again on each read, when it takes more than one). A
/// handshake record after the handshake is a key update or a ticket, which
/// this path cannot follow: an error.
fn receive_record(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; the iovec and the control buffer
    // outlive the call, and the kernel writes at most msg_controllen
    // bytes of control data and iov_len bytes of data.
    let (n, record_type, flags) = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut record_type = None;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if !cmsg.is_null() && (*cmsg).cmsg_level == SOL_TLS && (*cmsg).cmsg_type == TLS_GET_RECORD_TYPE {
            record_type = Some(*libc::CMSG_DATA(cmsg));
        }
        (n as usize, record_type, msg.msg_flags)
    };
    if flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other("kernel TLS: control message truncated"));
    }
    match (record_type, n) {
        (None, 0) => Ok(Received::Eof),
        (Some(RECORD_TYPE_APPLICATION_DATA), 0) => Ok(Received::Nothing),
        (None | Some(RECORD_TYPE_APPLICATION_DATA), n) => Ok(Received::Data(n)),
        (Some(RECORD_TYPE_ALERT), n) => Ok(Received::Alert(n)),
        (Some(other), _) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a TLS record of type {other} under kernel TLS (a key update?)"),
        )),
    }
}

/// A TLS 1.3 alert's description (the level is ignored: RFC 8446 §6).
const ALERT_CLOSE_NOTIFY: u8 = 0;
const ALERT_USER_CANCELED: u8 = 90;
/// rustls passes over a few warning-level user_canceled alerts in TLS 1.3
/// (Java's clients send them); so does this path, up to this many.
const USER_CANCELED_ALLOWED: u8 = 4;

impl KernelTls {
    /// Bytes of an alert record, as recvmsg handed them out.
    fn alert_piece(&mut self, piece: &[u8]) -> io::Result<()> {
        let end = self.alert_read + piece.len();
        if end > self.alert.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "kernel TLS: an alert record longer than 2 bytes",
            ));
        }
        self.alert[self.alert_read..end].copy_from_slice(piece);
        self.alert_read = end;
        if end < self.alert.len() {
            return Ok(());
        }
        self.alert_read = 0;
        self.alert_received(self.alert)
    }

    /// One whole alert from the client: the end (close_notify), nothing
    /// (a user_canceled warning, within limits), or an error.
    fn alert_received(&mut self, alert: [u8; 2]) -> io::Result<()> {
        match alert {
            [_, ALERT_CLOSE_NOTIFY] => {
                self.close_notify_received = true;
                Ok(())
            }
            [1, ALERT_USER_CANCELED] if self.user_canceled_seen < USER_CANCELED_ALLOWED => {
                self.user_canceled_seen += 1;
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!(
                    "TLS alert from the client: level {}, description {}",
                    alert[0], alert[1]
                ),
            )),
        }
    }
}

/// Writes a close_notify alert record (one non-blocking sendmsg).
fn send_close_notify(fd: RawFd) -> io::Result<()> {
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 4];
    let payload = CLOSE_NOTIFY;
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the
    // sendmsg call, and CMSG_SPACE(1) fits the 32-byte control buffer.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(1) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = SOL_TLS;
        (*cmsg).cmsg_type = TLS_SET_RECORD_TYPE;
        (*cmsg).cmsg_len = libc::CMSG_LEN(1) as _;
        *libc::CMSG_DATA(cmsg) = RECORD_TYPE_ALERT;
        libc::sendmsg(fd, &msg, 0)
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl AsyncRead for KernelTls {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.receives {
            // What arrives is still TLS records: never handed out as data.
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a kernel-TLS download connection is not read",
            )));
        }
        while !this.close_notify_received && buf.remaining() > 0 {
            ready!(this.tcp.poll_read_ready(cx))?;
            let fd = this.tcp.as_raw_fd();
            let room = buf.initialize_unfilled();
            let received = match this.tcp.try_io(Interest::READABLE, || receive_record(fd, room)) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            };
            match received {
                Received::Data(_) if this.alert_read > 0 => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "kernel TLS: data inside an alert record",
                    )))
                }
                Received::Data(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Received::Nothing => {}
                Received::Eof => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "peer closed connection without sending TLS close_notify",
                    )))
                }
                Received::Alert(n) => {
                    if let Err(e) = this.alert_piece(&buf.initialize_unfilled()[..n]) {
                        return Poll::Ready(Err(e));
                    }
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for KernelTls {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while !this.close_notify_sent {
            ready!(this.tcp.poll_write_ready(cx))?;
            let fd = this.tcp.as_raw_fd();
            match this.tcp.try_io(Interest::WRITABLE, || send_close_notify(fd)) {
                Ok(()) => this.close_notify_sent = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option values must be laid out exactly as linux/tls.h's structs.
    #[test]
    fn crypto_info_sizes_match_the_kernel_abi() {
        assert_eq!(std::mem::size_of::<AesGcmInfo<16>>(), 40);
        assert_eq!(std::mem::size_of::<AesGcmInfo<32>>(), 56);
        assert_eq!(std::mem::size_of::<Chacha20Info>(), 56);
    }

    #[test]
    fn tls13_secrets_split_into_salt_and_iv() {
        let iv: Vec<u8> = (1..=12).collect();
        let secrets = ConnectionTrafficSecrets::Aes256Gcm {
            key: rustls::crypto::cipher::AeadKey::from([7u8; 32]),
            iv: rustls::crypto::cipher::Iv::copy(&iv),
        };
        let converted = CryptoInfo::tls13(&secrets, 0x0102);
        let Some(CryptoInfo::AesGcm256(info)) = &converted else {
            panic!("AES-256-GCM expected");
        };
        assert_eq!(info.salt, [1, 2, 3, 4]);
        assert_eq!(info.iv, [5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(info.key, [7u8; 32]);
        assert_eq!(info.rec_seq, [0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!((info.version, info.cipher_type), (0x0304, 52));

        let chacha = ConnectionTrafficSecrets::Chacha20Poly1305 {
            key: rustls::crypto::cipher::AeadKey::from([9u8; 32]),
            iv: rustls::crypto::cipher::Iv::copy(&iv),
        };
        let converted = CryptoInfo::tls13(&chacha, u64::MAX);
        let Some(CryptoInfo::Chacha20(info)) = &converted else {
            panic!("ChaCha20-Poly1305 expected");
        };
        assert_eq!(info.iv.to_vec(), iv);
        assert_eq!(info.rec_seq, [0xff; 8]);
    }

    /// A key of the wrong length for its cipher is refused, not truncated.
    #[test]
    fn a_key_of_the_wrong_length_is_refused() {
        let secrets = ConnectionTrafficSecrets::Aes128Gcm {
            key: rustls::crypto::cipher::AeadKey::from([7u8; 32]),
            iv: rustls::crypto::cipher::Iv::copy(&[0u8; 12]),
        };
        assert!(CryptoInfo::tls13(&secrets, 0).is_none());
    }

    /// On this machine either answer is right; what matters is that the
    /// probe ends and agrees with a direct look at the ULP.
    #[test]
    fn probe_agrees_with_the_kernel() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let client = StdTcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _server = listener.accept().unwrap();
        let has_ulp = attach_ulp(client.as_fd()).is_ok();
        assert_eq!(support().any(), has_ulp);
    }
}
