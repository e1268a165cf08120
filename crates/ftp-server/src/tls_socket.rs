//! The TCP socket under a rustls stream, which can hand rustls the
//! handshake one TLS record at a time.
//!
//! Kernel TLS takes over a connection's receive direction at a record
//! boundary: every byte past the handshake must still be in the socket
//! when the keys go to the kernel (`TLS_RX`), because rustls cannot give
//! back what it has read (`dangerous_extract_secrets` drops its buffers
//! unseen). tokio-rustls, though, reads whatever the socket has and goes on
//! reading after the handshake's last record while rustls wants more, and
//! an upload's client sends its first data right behind its Finished. So
//! for a connection that may move to kernel TLS (`ktls`) this socket reads
//! record by record during the handshake: never past the record it is in,
//! and after each whole record it answers "not yet" once (waking itself at
//! once), which ends tokio-rustls's read loop. A handshake that has just
//! finished thus returns before anything of the next record is read.
//! Afterwards [`TlsSocket::whole_reads`] goes back to plain reads, should
//! rustls keep the connection.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TLS record header: type, version (2), length (2).
const HEADER_LEN: usize = 5;

pub(crate) struct TlsSocket {
    tcp: TcpStream,
    records: Option<RecordBoundaries>,
}

/// Where the reads stand in the record stream.
#[derive(Debug, Default)]
struct RecordBoundaries {
    header: [u8; HEADER_LEN],
    header_read: usize,
    body_left: usize,
    /// A record has just been read whole: the next read waits once.
    pause: bool,
}

impl RecordBoundaries {
    /// How many bytes the next read may take.
    fn limit(&self) -> usize {
        if self.header_read < HEADER_LEN {
            HEADER_LEN - self.header_read
        } else {
            self.body_left
        }
    }

    /// Accounts for `bytes`, read under [`RecordBoundaries::limit`].
    fn consumed(&mut self, bytes: &[u8]) {
        if self.header_read < HEADER_LEN {
            self.header[self.header_read..self.header_read + bytes.len()].copy_from_slice(bytes);
            self.header_read += bytes.len();
            if self.header_read == HEADER_LEN {
                self.body_left = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
            }
        } else {
            self.body_left -= bytes.len();
        }
        if self.header_read == HEADER_LEN && self.body_left == 0 {
            self.header_read = 0;
            self.pause = true;
        }
    }
}

impl TlsSocket {
    /// Plain reads: rustls reads as much as the socket has.
    pub(crate) fn new(tcp: TcpStream) -> TlsSocket {
        TlsSocket { tcp, records: None }
    }

    /// Reads that stop at every record's end (see the module comment).
    pub(crate) fn record_by_record(tcp: TcpStream) -> TlsSocket {
        TlsSocket {
            tcp,
            records: Some(RecordBoundaries::default()),
        }
    }

    /// Back to plain reads. Only at a record boundary, which is where a
    /// finished handshake leaves the socket.
    pub(crate) fn whole_reads(&mut self) {
        self.records = None;
    }

    /// Reading record by record and not inside a record: where a
    /// finished handshake must leave the socket before the kernel takes it.
    pub(crate) fn between_records(&self) -> bool {
        self.records.as_ref().is_some_and(|r| r.header_read == 0)
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    pub(crate) fn into_tcp(self) -> TcpStream {
        self.tcp
    }
}

impl AsyncRead for TlsSocket {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(records) = &mut this.records else {
            return Pin::new(&mut this.tcp).poll_read(cx, buf);
        };
        if records.pause {
            records.pause = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let limit = records.limit().min(buf.remaining());
        let mut part = ReadBuf::new(buf.initialize_unfilled_to(limit));
        ready!(Pin::new(&mut this.tcp).poll_read(cx, &mut part))?;
        let n = part.filled().len();
        records.consumed(part.filled());
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TlsSocket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    // rustls hands its queued records over as one vectored write.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn record(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    /// Three records (one empty) sent in one write come out a record at a
    /// time, each read within one record, with a pause after each.
    #[tokio::test]
    async fn reads_stop_at_every_record_end() {
        let (mut client, server) = pair().await;
        let records = [record(22, &[1; 300]), record(23, &[]), record(23, &[2; 70])];
        client.write_all(&records.concat()).await.unwrap();
        let mut socket = TlsSocket::record_by_record(server);
        for want in &records {
            let mut got = Vec::new();
            while got.len() < want.len() {
                let mut buf = [0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
                assert!(got.len() <= want.len(), "a read went past the record's end");
                assert_eq!(socket.between_records(), got.len() == want.len());
            }
            assert_eq!(&got, want);
            assert!(socket.records.as_ref().unwrap().pause, "no pause after a whole record");
        }
        // Plain reads afterwards take what is there at once.
        client.write_all(&[9; 1000]).await.unwrap();
        socket.whole_reads();
        let mut buf = [0u8; 4096];
        let mut n = 0;
        while n < 1000 {
            n += socket.read(&mut buf[n..]).await.unwrap();
        }
        assert_eq!(&buf[..1000], &[9; 1000][..]);
    }

    /// The point of it all: a client whose Finished and first data arrive
    /// in one segment. After a record-by-record handshake every byte of
    /// the data is still in the socket (kernel TLS could take it from
    /// here), rustls holds none of it, and rustls reading on afterwards
    /// gets all of it. (With `tls::accept`'s plain reads rustls takes some
    /// of the data into its buffers with the handshake.)
    #[tokio::test]
    async fn a_record_by_record_handshake_leaves_the_data_in_the_socket() {
        use rustls::pki_types::PrivateKeyDer;
        use std::io::Write;
        use std::os::fd::AsRawFd;
        use std::sync::Arc;

        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let der = generated.cert.der().clone();
        let key = PrivateKeyDer::try_from(generated.key_pair.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server_config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        server_config.send_tls13_tickets = 0;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let (data_sent, data_was_sent) = std::sync::mpsc::channel::<usize>();
        let (looked, server_looked) = std::sync::mpsc::channel::<()>();
        let client = std::thread::spawn(move || {
            let mut conn =
                rustls::ClientConnection::new(Arc::new(client_config), "localhost".try_into().unwrap()).unwrap();
            let mut sock = std::net::TcpStream::connect(addr).unwrap();
            while conn.is_handshaking() {
                if conn.wants_write() {
                    conn.write_tls(&mut sock).unwrap();
                } else {
                    conn.read_tls(&mut sock).unwrap();
                    conn.process_new_packets().unwrap();
                }
            }
            // The Finished, then the data's records, in one write.
            let mut finished = Vec::new();
            while conn.wants_write() {
                conn.write_tls(&mut finished).unwrap();
            }
            conn.writer().write_all(&sent).unwrap();
            let mut records = Vec::new();
            while conn.wants_write() {
                conn.write_tls(&mut records).unwrap();
            }
            sock.write_all(&[finished, records.clone()].concat()).unwrap();
            data_sent.send(records.len()).unwrap();
            server_looked.recv().unwrap();
            conn.send_close_notify();
            conn.write_tls(&mut sock).unwrap();
            // Held open until the server has read it all.
            let _ = std::io::Read::read(&mut sock, &mut [0u8; 1]);
        });

        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = crate::tls::accept_record_by_record(Arc::new(server_config), tcp)
            .await
            .unwrap();
        let records_len = tokio::task::spawn_blocking(move || data_was_sent.recv().unwrap())
            .await
            .unwrap();
        assert!(tls.get_ref().0.between_records());
        let state = tls.get_mut().1.process_new_packets().unwrap();
        assert_eq!(
            state.plaintext_bytes_to_read(),
            0,
            "rustls decrypted data with the handshake"
        );
        let mut waiting: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int.
        let rc = unsafe { libc::ioctl(tls.get_ref().0.tcp().as_raw_fd(), libc::FIONREAD, &mut waiting) };
        assert_eq!(rc, 0);
        assert_eq!(
            waiting as usize, records_len,
            "the data's records are not all in the socket after the handshake"
        );
        looked.send(()).unwrap();

        tls.get_mut().0.whole_reads();
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, data);
        drop(tls);
        client.join().unwrap();
    }

    /// The header may arrive a byte at a time.
    #[test]
    fn a_header_split_anywhere_is_followed() {
        let mut b = RecordBoundaries::default();
        assert_eq!(b.limit(), 5);
        b.consumed(&[23, 3]);
        assert_eq!(b.limit(), 3);
        b.consumed(&[3, 0x01]);
        assert_eq!(b.limit(), 1);
        b.consumed(&[0x02]);
        assert_eq!(b.limit(), 0x0102);
        b.consumed(&[0; 0x0100]);
        assert_eq!(b.limit(), 2);
        assert!(!b.pause);
        b.consumed(&[0; 2]);
        assert!(b.pause);
        assert_eq!(b.limit(), 5);
    }
}
