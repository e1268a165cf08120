//! When a download's data connection is corked (TCP_CORK, see
//! [`net::set_cork`]).
//!
//! Corked, the kernel sends whole segments only, and the shutdown that ends
//! a stream-mode download puts the FIN on the last data segment instead of
//! a segment of its own (Linux's tcp_send_fin): a small file is one
//! segment, one wake-up and one ACK of the client's instead of two (perf,
//! 4 KiB downloads: the second segment's loopback delivery and wake-up were
//! a tenth of the server's CPU per file). Two rules:
//!
//! - Every stream-mode download is corked for its last [`CORKED_TAIL`]
//!   bytes, for that FIN.
//! - A plain sendfile download is corked from its first byte while it is
//!   the only one the server is sending ([`SendfileCork`]). sendfile fills
//!   whole segments from the page cache, and the cork keeps each call's
//!   end, or a window that opened by less than a segment, from going out
//!   as a short one. Alone, that pays: 1 GiB RETR over loopback,
//!   interleaved hand runs against the tail-only cork, 37,800 -> 24,500
//!   TCP segments and 0.78 -> 0.64 machine CPU-s per GiB, 1,775 -> 2,218
//!   MiB/s median of ten (ProFTPD, which corks its whole sendfile: 24,500
//!   segments). With other downloads at once it costs: 32 clients each
//!   fetching 64 MiB, 3,400-4,100 MiB/s corked throughout against
//!   5,000-6,500 tail-only, the server's CPU per round 0.44-0.58 s against
//!   0.15-0.28, and the same direction at 4 and 8 clients (the profile
//!   puts the extra time in tcp_write_xmit, pushing corked sockets). So
//!   the cork follows the count, looked at again before every sendfile
//!   call: a download that was alone uncorks when a second starts, and
//!   corks again when it is alone once more.
//!
//! The copying path (TLS, encodings, object stores) corks its tail only: it
//! writes whatever the source gives it, and a source that stalls must not
//! leave a partial segment waiting out the cork's 200 ms. Never in MODE B,
//! whose connection stays open after the transfer and would keep its last
//! block waiting; never before the TLS handshake (the caller runs it
//! first), whose flights must not wait either.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ftp_proto::command::TransferMode;

use crate::net;
use crate::tls::MaybeTls;

/// How much of a download's end is sent corked.
pub(crate) const CORKED_TAIL: u64 = 256 << 10;

/// Corks a copied send's data connection for its last [`CORKED_TAIL`]
/// bytes (see the module's rules).
pub(crate) struct TailCork {
    pending: bool,
}

impl TailCork {
    pub fn new(mode: TransferMode) -> Self {
        TailCork {
            pending: mode != TransferMode::Block,
        }
    }

    /// Corks `stream` once `left` bytes are all that is left to send
    /// (`None`: unknown, so corks now).
    pub fn near_end(&mut self, stream: &MaybeTls, left: Option<u64>) {
        if !self.pending || left.is_some_and(|left| left > CORKED_TAIL) {
            return;
        }
        self.pending = false;
        if let Some(tcp) = stream.tcp() {
            // An optimisation only: a socket that refuses it still works.
            let _ = net::set_cork(tcp.as_fd(), true);
        }
    }
}

/// The plain sendfile downloads a server is sending, counted across its
/// sessions.
#[derive(Default)]
pub(crate) struct SendfileDownloads {
    sending: AtomicUsize,
}

impl SendfileDownloads {
    pub fn new() -> Arc<SendfileDownloads> {
        Arc::default()
    }

    /// Counts a download in until the returned guard is dropped.
    pub fn start(self: &Arc<Self>) -> Sending {
        self.sending.fetch_add(1, Ordering::AcqRel);
        Sending(Arc::clone(self))
    }
}

/// One download counted in [`SendfileDownloads`].
pub(crate) struct Sending(Arc<SendfileDownloads>);

impl Sending {
    /// A cork for this download's socket, for whichever thread sends it.
    pub fn cork(&self) -> SendfileCork {
        SendfileCork {
            downloads: Arc::clone(&self.0),
            corked: None,
        }
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.sending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Keeps a plain sendfile download's socket corked or not by the module's
/// rules, touching the option only when the answer changes.
pub(crate) struct SendfileCork {
    downloads: Arc<SendfileDownloads>,
    /// What the socket was last set to (`None`: not yet, by this cork).
    corked: Option<bool>,
}

impl SendfileCork {
    /// Called before each sendfile call, with the bytes still to send
    /// (`None`: unknown).
    pub fn before_send(&mut self, socket: BorrowedFd<'_>, left: Option<u64>) {
        let want = wanted(self.downloads.sending.load(Ordering::Acquire), left);
        if self.corked == Some(want) {
            return;
        }
        // An optimisation only: a socket that refuses it still works, and
        // asking again next time costs one call.
        if net::set_cork(socket, want).is_ok() {
            self.corked = Some(want);
        }
    }
}

/// Whether a sendfile download should be corked with `sending` downloads
/// in flight (itself included) and `left` bytes still to send.
fn wanted(sending: usize, left: Option<u64>) -> bool {
    sending <= 1 || left.is_some_and(|left| left <= CORKED_TAIL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn alone_a_download_is_corked_throughout_with_others_only_in_its_tail() {
        assert!(wanted(1, Some(1 << 30)));
        assert!(wanted(1, None));
        assert!(!wanted(2, Some(CORKED_TAIL + 1)));
        assert!(wanted(2, Some(CORKED_TAIL)));
        assert!(wanted(32, Some(0)));
        assert!(!wanted(32, None));
    }

    #[test]
    fn the_count_follows_the_guards() {
        let downloads = SendfileDownloads::new();
        let first = downloads.start();
        let second = downloads.start();
        assert_eq!(downloads.sending.load(Ordering::Acquire), 2);
        drop(first);
        assert_eq!(downloads.sending.load(Ordering::Acquire), 1);
        drop(second);
        assert_eq!(downloads.sending.load(Ordering::Acquire), 0);
    }

    fn is_corked(socket: &std::net::TcpStream) -> bool {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a live socket, and a c_int-sized buffer whose size we pass.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_CORK,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        value != 0
    }

    #[test]
    fn a_download_uncorks_while_another_runs_except_in_its_tail() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (socket, _) = listener.accept().unwrap();
        let downloads = SendfileDownloads::new();
        let this = downloads.start();
        let mut cork = this.cork();
        let far = Some(CORKED_TAIL * 4);

        cork.before_send(socket.as_fd(), far);
        assert!(is_corked(&socket));

        let other = downloads.start();
        cork.before_send(socket.as_fd(), far);
        assert!(!is_corked(&socket));
        drop(other);
        cork.before_send(socket.as_fd(), far);
        assert!(is_corked(&socket));

        let _other = downloads.start();
        cork.before_send(socket.as_fd(), far);
        assert!(!is_corked(&socket));
        cork.before_send(socket.as_fd(), Some(CORKED_TAIL));
        assert!(is_corked(&socket), "the tail is corked whatever else runs");
    }
}
