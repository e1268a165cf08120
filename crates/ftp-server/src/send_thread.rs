//! Large plain downloads sent from a thread of their own.
//!
//! The runtime has one worker thread per core, and each worker waits on
//! the writability of many data connections at once; under load a socket
//! with room again waits until its worker gets round to it. A thread per
//! download refills its socket the moment it has room, as vsftpd's process
//! per session does, and the same bytes leave in fewer, larger segments
//! (each of which costs both ends a trip through the stack). Measured on 2
//! cores, 32 clients each fetching 64 MiB over loopback (`/proc/net/snmp`
//! OutSegs), three interleaved rounds: 22,400-24,200 segments per GiB and
//! 3,580-3,960 MiB/s when the workers sent, 18,400-18,600 and 4,630-5,400
//! MiB/s from a thread per download (vsftpd 18,600 and 3,940-4,000 in the
//! same rounds). A reproduction outside ferroftp, a Python server sending
//! 32 x 64 MiB with sendfile, showed that the number of waiting threads is
//! what matters: one epoll thread for all 32 sockets 25,500-27,000
//! segments per GiB, two threads 21,600-22,100, eight 18,300-18,600, one
//! per socket 18,100, whether that thread blocked in sendfile or polled a
//! non-blocking socket. So the thread here polls: the socket stays
//! non-blocking and tokio's registration of it is left alone.
//!
//! Threads are few and bounded ([`SendThreads`]); a download that finds
//! none free is sent by the runtime as before. Short downloads never take
//! one: starting a thread costs tens of microseconds, more than a small
//! file takes to send.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::cork::SendfileCork;
use crate::net;
use crate::transfer_thread::{dup, wait_ready, StopSignal, ThreadBudget, WaitError, STACK_SIZE};

/// Sendfile downloads shorter than this stay on the runtime.
pub(crate) const MIN_BYTES: u64 = 4 << 20;

/// The cap on send threads, shared by every session of a server.
pub(crate) type SendThreads = ThreadBudget;

/// Why a threaded send ended before its last byte.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No progress for the stall timeout.
    Stalled,
    /// Told to stop ([`ThreadSend::stop`], or the send was dropped).
    Stopped,
    Io(io::Error),
}

impl From<WaitError> for SendError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Stalled => SendError::Stalled,
            WaitError::Stopped => SendError::Stopped,
            WaitError::Io(e) => SendError::Io(e),
        }
    }
}

/// A download running on its own thread. Dropping it tells the thread to
/// stop; the thread then lets go of the connection at once.
pub(crate) struct ThreadSend {
    stop: Arc<StopSignal>,
    done: oneshot::Receiver<Result<u64, SendError>>,
}

impl ThreadSend {
    /// Starts sending bytes `from..to` of `file` on `socket`. `None` when
    /// every thread is taken or none could be started: the caller sends
    /// the bytes itself. `progress` counts the bytes sent (for STAT).
    pub fn start(
        threads: &Arc<SendThreads>,
        socket: &TcpStream,
        file: RawFd,
        range: std::ops::Range<u64>,
        mut cork: SendfileCork,
        stall: Duration,
        progress: Arc<AtomicU64>,
    ) -> Option<ThreadSend> {
        let slot = threads.try_reserve()?;
        // Copies of its own (see `transfer_thread`).
        let socket = dup(socket.as_raw_fd()).ok()?;
        let file = dup(file).ok()?;
        let stop = Arc::new(StopSignal::new().ok()?);
        let (tx, done) = oneshot::channel();
        let thread_stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("ferroftp-send".into())
            .stack_size(STACK_SIZE)
            .spawn(move || {
                let result = send_range(&socket, &file, &mut cork, &thread_stop, range, stall, &progress);
                // Close the copies before saying so: once the transfer
                // hears the end, the connection is its own again.
                drop((socket, file, slot));
                let _ = tx.send(result);
            })
            .ok()?;
        Some(ThreadSend { stop, done })
    }

    /// Waits for the thread: the position reached (the range's end, or
    /// less if the file turned out shorter).
    pub async fn finish(&mut self) -> Result<u64, SendError> {
        (&mut self.done).await.unwrap_or_else(|_| {
            Err(SendError::Io(io::Error::other(
                "the send thread ended without a result",
            )))
        })
    }

    /// Stops the thread and waits until it has let go of the connection.
    pub async fn stop(mut self) {
        self.stop.raise();
        let _ = self.finish().await;
    }
}

impl Drop for ThreadSend {
    fn drop(&mut self) {
        self.stop.raise();
    }
}

/// The thread's loop: sendfile on the non-blocking socket, and poll for
/// room (or the stop signal) when it is full.
fn send_range(
    socket: &OwnedFd,
    file: &OwnedFd,
    cork: &mut SendfileCork,
    stop: &StopSignal,
    range: std::ops::Range<u64>,
    stall: Duration,
    progress: &AtomicU64,
) -> Result<u64, SendError> {
    let mut pos = range.start;
    while pos < range.end {
        // A client that keeps up never makes the thread wait: look for
        // the signal between calls too.
        if stop.is_raised() {
            return Err(SendError::Stopped);
        }
        cork.before_send(socket.as_fd(), Some(range.end - pos));
        let count = (range.end - pos).min(net::SENDFILE_CHUNK as u64) as usize;
        let mut off = pos as libc::off_t;
        // SAFETY: both descriptors are owned by this thread; `off` is a
        // valid off_t the kernel updates.
        let n = unsafe { libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
        if n > 0 {
            pos = off as u64;
            progress.fetch_add(n as u64, Ordering::Relaxed);
            continue;
        }
        if n == 0 {
            // The file is shorter than it was at open.
            return Ok(pos);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::WouldBlock => wait_ready(socket, libc::POLLOUT, stop, stall)?,
            io::ErrorKind::Interrupted => {}
            _ => return Err(SendError::Io(err)),
        }
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Instant;

    use crate::transfer_thread::test_pair as pair;

    fn file_of(len: usize) -> (std::fs::File, Vec<u8>) {
        let cycle: Vec<u8> = (0..251u8).collect();
        let bytes: Vec<u8> = cycle.iter().copied().cycle().take(len).collect();
        let mut file = tempfile_in_tmp();
        file.write_all(&bytes).unwrap();
        (file, bytes)
    }

    fn tempfile_in_tmp() -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "ferroftp-send-thread-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    /// Starts a send with a progress counter of its own.
    fn start(
        threads: &Arc<SendThreads>,
        server: &TcpStream,
        file: &std::fs::File,
        range: std::ops::Range<u64>,
        stall: Duration,
    ) -> ThreadSend {
        let progress = Arc::new(AtomicU64::new(0));
        ThreadSend::start(threads, server, file.as_raw_fd(), range, lone_cork(), stall, progress).unwrap()
    }

    /// The cork of a download the server sends alone.
    fn lone_cork() -> SendfileCork {
        crate::cork::SendfileDownloads::new().start().cork()
    }

    #[tokio::test]
    async fn sends_the_range_and_frees_its_thread() {
        let threads = SendThreads::new(1);
        let (file, bytes) = file_of(6 << 20);
        let (server, mut client) = pair().await;
        let progress = Arc::new(AtomicU64::new(0));
        let range = 1000..(bytes.len() as u64 - 5);
        let mut send = ThreadSend::start(
            &threads,
            &server,
            file.as_raw_fd(),
            range.clone(),
            lone_cork(),
            Duration::from_secs(10),
            Arc::clone(&progress),
        )
        .unwrap();
        assert_eq!(threads.running(), 1);
        // The one thread is taken: a second send is refused, not queued.
        assert!(ThreadSend::start(
            &threads,
            &server,
            file.as_raw_fd(),
            0..1,
            lone_cork(),
            Duration::from_secs(1),
            Arc::clone(&progress)
        )
        .is_none());
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; (range.end - range.start) as usize];
            client.read_exact(&mut got).unwrap();
            got
        });
        assert_eq!(send.finish().await.unwrap(), bytes.len() as u64 - 5);
        assert!(reader.join().unwrap() == bytes[1000..bytes.len() - 5]);
        assert_eq!(progress.load(Ordering::Relaxed), bytes.len() as u64 - 1005);
        drop(send);
        assert_eq!(threads.running(), 0);
    }

    #[tokio::test]
    async fn a_shorter_file_ends_the_send_early() {
        let threads = SendThreads::new(4);
        let (file, bytes) = file_of(100_000);
        let (server, mut client) = pair().await;
        let mut send = start(&threads, &server, &file, 0..(8 << 20), Duration::from_secs(10));
        assert_eq!(send.finish().await.unwrap(), bytes.len() as u64);
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert!(got == bytes);
    }

    #[tokio::test]
    async fn a_reader_that_stops_reading_stalls_it() {
        let threads = SendThreads::new(4);
        let (file, _) = file_of(32 << 20);
        let (server, _client) = pair().await;
        let started = Instant::now();
        let mut send = start(&threads, &server, &file, 0..(32 << 20), Duration::from_millis(300));
        assert!(matches!(send.finish().await, Err(SendError::Stalled)));
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    /// A client that keeps up never makes the thread poll, so the flag is
    /// what stops it: raised before the loop starts, nothing is sent even
    /// though the socket has room.
    #[tokio::test]
    async fn a_raised_stop_is_seen_between_calls() {
        let (file, _) = file_of(1 << 20);
        let (server, _client) = pair().await;
        let socket = dup(server.as_raw_fd()).unwrap();
        let file = dup(file.as_raw_fd()).unwrap();
        let stop = StopSignal::new().unwrap();
        stop.raise();
        let progress = AtomicU64::new(0);
        let result = send_range(
            &socket,
            &file,
            &mut lone_cork(),
            &stop,
            0..(1 << 20),
            Duration::from_secs(10),
            &progress,
        );
        assert!(matches!(result, Err(SendError::Stopped)), "{result:?}");
        assert_eq!(progress.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn stop_ends_a_waiting_thread_and_dropping_does_too() {
        let threads = SendThreads::new(4);
        let (file, _) = file_of(32 << 20);
        let (server, _client) = pair().await;
        let progress = Arc::new(AtomicU64::new(0));
        let start = |progress: &Arc<AtomicU64>| {
            ThreadSend::start(
                &threads,
                &server,
                file.as_raw_fd(),
                0..(32 << 20),
                lone_cork(),
                Duration::from_secs(600),
                Arc::clone(progress),
            )
            .unwrap()
        };
        let send = start(&progress);
        // Let it fill the socket and wait for room that never comes.
        while progress.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::timeout(Duration::from_secs(5), send.stop())
            .await
            .expect("stop returns at once");
        assert_eq!(threads.running(), 0);
        drop(start(&progress));
        let deadline = Instant::now() + Duration::from_secs(5);
        while threads.running() != 0 {
            assert!(Instant::now() < deadline, "a dropped send's thread did not end");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
