//! Large plain uploads received on a thread of their own.
//!
//! On the runtime, every write of an upload into the page cache runs under
//! `block_in_place`, which hands the worker's core to another thread for
//! the length of the write; the session's task then goes on from the
//! thread that wrote, so one 512 MiB upload in 256 KiB chunks wandered
//! over seventeen of the runtime's threads (`/proc/<pid>/task`), each
//! hand-over a wake-up and cold caches. Server CPU per 512 MiB STOR over
//! loopback, 2 cores, durability "none", measured per process in
//! alternating rounds (2026-12-07): 0.25-0.37 s on the runtime, 0.21-0.25
//! with the whole server pinned to one CPU, Pure-FTPd's session process
//! (blocking reads and writes on one thread) 0.20-0.21. So an upload that
//! is still going after [`MIN_BYTES`] moves to a thread that reads the
//! socket and writes the file itself, as Pure-FTPd's process does: a
//! non-blocking read, a poll when the socket is empty, the upload's own
//! write called through the runtime's handle.
//!
//! With `server.splice_uploads` the thread splices socket → pipe → file
//! while the upload offers its descriptor, as the runtime's path does
//! (`transfer::receive_spliced`): 0.16-0.20 s of server CPU per 512 MiB
//! against 0.20-0.24 copied, in the same rounds.
//!
//! The stall timeout counts, as on the runtime, from the last data the
//! socket gave; a write to a disk that hangs holds the thread (and the
//! upload) as it would hold the runtime's blocking write.
//!
//! Only uploads whose writes go to a local file ([`Upload::writes_locally`]):
//! they finish without waiting on anything the thread's `block_on` would
//! have to wake it for, except the local disk's own writes behind it.
//! Threads are few and bounded ([`ReceiveThreads`]); an upload that finds
//! none free stays on the runtime.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ftp_storage::{ErrorKind, StorageError, Upload};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::net::SplicePipe;
use crate::transfer::store_spliced_batch;
use crate::transfer_thread::{dup, wait_ready, StopSignal, ThreadBudget, WaitError, STACK_SIZE};

/// Uploads move to a thread once this much of them arrived on the runtime:
/// starting a thread costs tens of microseconds, more than a small file
/// takes to arrive.
pub(crate) const MIN_BYTES: u64 = 4 << 20;

/// The cap on receive threads, shared by every session of a server.
pub(crate) type ReceiveThreads = ThreadBudget;

/// Why a threaded upload ended before the client's end of data.
#[derive(Debug)]
pub(crate) enum ReceiveError {
    /// No data for the stall timeout.
    Stalled,
    /// Told to stop ([`ThreadReceive::stop`], or the receive was dropped).
    Stopped,
    /// The data connection failed.
    Network(io::Error),
    /// The upload refused or failed a write (a quota, a full disk).
    Storage(StorageError),
}

impl From<WaitError> for ReceiveError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Stalled => ReceiveError::Stalled,
            WaitError::Stopped => ReceiveError::Stopped,
            WaitError::Io(e) => ReceiveError::Network(e),
        }
    }
}

/// What a receive thread hands back: the upload (to be committed or
/// aborted on the runtime) and how it ended.
pub(crate) struct Received {
    pub upload: Box<dyn Upload>,
    pub result: Result<(), ReceiveError>,
}

/// An upload running on its own thread. Dropping it tells the thread to
/// stop; the thread then drops the upload, whose drop cleans up as any
/// dropped upload's does.
pub(crate) struct ThreadReceive {
    stop: Arc<StopSignal>,
    done: oneshot::Receiver<Received>,
}

impl ThreadReceive {
    /// Receives the rest of `socket`'s data into `upload` on a thread,
    /// reading through a buffer of `buffer_size` bytes where the upload has
    /// no buffer of its own; with `splice_pipe` (`server.splice_uploads`,
    /// the pipe's size) it splices through a pipe of its own while the
    /// upload offers its descriptor (the pipe is made only if it offers one
    /// now).
    /// The upload comes back as `Err` when it does not write locally, every
    /// thread is taken or none could be started: the caller goes on with it.
    /// `progress` counts the bytes stored (for STAT).
    pub fn start(
        threads: &Arc<ReceiveThreads>,
        socket: &TcpStream,
        upload: Box<dyn Upload>,
        buffer_size: usize,
        splice_pipe: Option<usize>,
        stall: Duration,
        progress: Arc<AtomicU64>,
    ) -> Result<ThreadReceive, Box<dyn Upload>> {
        if !upload.writes_locally() {
            return Err(upload);
        }
        let Some(slot) = threads.try_reserve() else {
            return Err(upload);
        };
        let (Ok(socket), Ok(stop), Ok(runtime)) = (dup(socket.as_raw_fd()), StopSignal::new(), Handle::try_current())
        else {
            return Err(upload);
        };
        let splice = splice_pipe
            .filter(|_| upload.direct_fd().is_some())
            .and_then(|size| SplicePipe::new(size).ok());
        let stop = Arc::new(stop);
        let (tx, done) = oneshot::channel();
        let thread_stop = Arc::clone(&stop);
        // The upload is handed over once the thread runs, so that a failed
        // spawn leaves it here.
        let (hand, handed) = std::sync::mpsc::sync_channel::<Box<dyn Upload>>(1);
        let spawned = std::thread::Builder::new()
            .name("ferroftp-recv".into())
            .stack_size(STACK_SIZE)
            .spawn(move || {
                let Ok(mut upload) = handed.recv() else {
                    return;
                };
                // The runtime's context while the thread receives: the
                // upload's own calls find it.
                let entered = runtime.enter();
                let mut buf = vec![0u8; buffer_size];
                let result = catch_unwind(AssertUnwindSafe(|| {
                    let receiver = Receiver {
                        socket: &socket,
                        runtime: &runtime,
                        stop: &thread_stop,
                        stall,
                        progress: &progress,
                    };
                    receiver.receive_all(upload.as_mut(), &mut buf, splice.as_ref())
                }))
                .unwrap_or_else(|_| {
                    Err(ReceiveError::Storage(StorageError::new(
                        ErrorKind::Local,
                        "the upload's write panicked",
                    )))
                });
                // Close the copy before saying so: once the transfer hears
                // the end, the connection is its own again.
                drop((socket, slot));
                if let Err(unsent) = tx.send(Received { upload, result }) {
                    // The transfer is gone (the session ended, or the server
                    // is stopping): the upload's drop cleans up. Outside the
                    // runtime's context that clean-up runs here, on a thread
                    // that may block, instead of on a blocking pool that may
                    // be shutting down. (A transfer dropped just after the
                    // send drops the upload on the runtime, as an upload
                    // received there is dropped.)
                    drop(entered);
                    drop(unsent);
                }
            });
        if spawned.is_err() {
            return Err(upload);
        }
        // The thread takes it first thing; the send fails only if the
        // thread is already gone.
        if let Err(std::sync::mpsc::SendError(upload)) = hand.send(upload) {
            return Err(upload);
        }
        Ok(ThreadReceive { stop, done })
    }

    /// Waits for the thread. `None` if it ended without handing the upload
    /// back (it cannot, short of the process failing).
    pub async fn finish(&mut self) -> Option<Received> {
        (&mut self.done).await.ok()
    }

    /// Stops the thread and waits until it has handed the upload back.
    pub async fn stop(mut self) -> Option<Received> {
        self.stop.raise();
        self.finish().await
    }
}

impl Drop for ThreadReceive {
    fn drop(&mut self) {
        self.stop.raise();
    }
}

/// What the thread's loop works with.
struct Receiver<'a> {
    socket: &'a OwnedFd,
    runtime: &'a Handle,
    stop: &'a StopSignal,
    stall: Duration,
    progress: &'a AtomicU64,
}

impl Receiver<'_> {
    /// The thread's loop: reads on the non-blocking socket into the
    /// upload's buffer or `buf` and hands each read to the upload, or, with
    /// `splice` (`server.splice_uploads`) while the upload offers its
    /// descriptor, splices socket → pipe → file as `transfer` does on the
    /// runtime. Polls for data (or the stop signal) when the socket is
    /// empty. Ends at the client's end of data.
    fn receive_all(
        &self,
        upload: &mut dyn Upload,
        buf: &mut [u8],
        splice: Option<&SplicePipe>,
    ) -> Result<(), ReceiveError> {
        loop {
            // A client that keeps the socket full never makes the thread
            // poll: look for the signal between reads too.
            if self.stop.is_raised() {
                return Err(ReceiveError::Stopped);
            }
            // Taken before the batch: counting it may end the offer, and
            // the batch in the pipe must still reach this file.
            let (read, into) = match splice.zip(upload.direct_fd()) {
                Some((pipe, fd)) => (pipe.fill_from_fd(self.socket.as_raw_fd()), ReadInto::Pipe(pipe, fd)),
                None => match upload.buffer() {
                    Some(room) => (recv(self.socket, room), ReadInto::UploadBuffer),
                    None => (recv(self.socket, buf), ReadInto::Buf),
                },
            };
            let n = match read {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_ready(self.socket, libc::POLLIN, self.stop, self.stall)?;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReceiveError::Network(e)),
            };
            match into {
                ReadInto::Pipe(pipe, fd) => {
                    store_spliced_batch(upload, pipe, fd, n).map_err(ReceiveError::Storage)?;
                }
                ReadInto::UploadBuffer => self
                    .runtime
                    .block_on(upload.buffer_filled(n))
                    .map_err(ReceiveError::Storage)?,
                ReadInto::Buf => self
                    .runtime
                    .block_on(upload.write_all(&buf[..n]))
                    .map_err(ReceiveError::Storage)?,
            }
            self.progress.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

/// Where one read of the thread's loop went.
enum ReadInto<'p> {
    /// The splice pipe, to be drained into the file behind the descriptor.
    Pipe(&'p SplicePipe, RawFd),
    /// The upload's own buffer (`Upload::buffer`).
    UploadBuffer,
    /// The thread's buffer, for `Upload::write_all`.
    Buf,
}

/// recv(2) on the non-blocking socket: up to `buf.len()` bytes, 0 at the
/// client's end of data.
fn recv(socket: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`,
    // exclusively borrowed for the call; the descriptor is the thread's.
    let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;
    use std::time::Instant;

    use async_trait::async_trait;

    use crate::transfer_thread::test_pair as pair;

    /// An upload into memory, refusing writes past `limit` as a quota would.
    struct MemoryUpload {
        stored: Stored,
        local: bool,
        limit: usize,
        /// Set when the upload is dropped.
        dropped: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Drop for MemoryUpload {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::Release);
        }
    }

    #[async_trait]
    impl Upload for MemoryUpload {
        async fn write_all(&mut self, data: &[u8]) -> ftp_storage::Result<()> {
            let mut stored = self.stored.lock().unwrap();
            if stored.len() + data.len() > self.limit {
                return Err(StorageError::new(ErrorKind::QuotaExceeded, "over the limit"));
            }
            stored.extend_from_slice(data);
            Ok(())
        }
        async fn commit(self: Box<Self>) -> ftp_storage::Result<u64> {
            Ok(self.stored.lock().unwrap().len() as u64)
        }
        async fn abort(self: Box<Self>) -> ftp_storage::Result<()> {
            Ok(())
        }
        fn writes_locally(&self) -> bool {
            self.local
        }
    }

    fn memory_upload(limit: usize) -> (Box<dyn Upload>, Stored) {
        let (upload, stored, _) = watched_upload(limit);
        (upload, stored)
    }

    /// What a [`MemoryUpload`] stored, shared with the test.
    type Stored = Arc<Mutex<Vec<u8>>>;

    /// A memory upload and the flag its drop sets.
    fn watched_upload(limit: usize) -> (Box<dyn Upload>, Stored, Arc<std::sync::atomic::AtomicBool>) {
        let stored = Arc::new(Mutex::new(Vec::new()));
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let upload = MemoryUpload {
            stored: Arc::clone(&stored),
            local: true,
            limit,
            dropped: Arc::clone(&dropped),
        };
        (Box::new(upload), stored, dropped)
    }

    fn start(
        threads: &Arc<ReceiveThreads>,
        server: &TcpStream,
        upload: Box<dyn Upload>,
        stall: Duration,
    ) -> (ThreadReceive, Arc<AtomicU64>) {
        let progress = Arc::new(AtomicU64::new(0));
        let receive = ThreadReceive::start(threads, server, upload, 64 << 10, None, stall, Arc::clone(&progress));
        (receive.ok().expect("a receive thread"), progress)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn receives_to_the_end_and_frees_its_thread() {
        let threads = ReceiveThreads::new(1);
        let (server, mut client) = pair().await;
        let (upload, stored) = memory_upload(usize::MAX);
        let (mut receive, progress) = start(&threads, &server, upload, Duration::from_secs(10));
        assert_eq!(threads.running(), 1);
        // The one thread is taken: a second upload comes back, not queued.
        let (other, _) = memory_upload(usize::MAX);
        let progress2 = Arc::new(AtomicU64::new(0));
        assert!(ThreadReceive::start(&threads, &server, other, 4096, None, Duration::from_secs(1), progress2).is_err());
        let bytes = pattern(6 << 20);
        let sent = bytes.clone();
        let writer = std::thread::spawn(move || {
            for chunk in sent.chunks(100_000) {
                client.write_all(chunk).unwrap();
            }
        });
        writer.join().unwrap();
        // The client's end of data (its socket closed by the join).
        let received = receive.finish().await.expect("the upload comes back");
        assert!(received.result.is_ok(), "{:?}", received.result);
        assert!(*stored.lock().unwrap() == bytes, "the stored bytes differ");
        assert_eq!(progress.load(Ordering::Relaxed), bytes.len() as u64);
        assert_eq!(received.upload.commit().await.unwrap(), bytes.len() as u64);
        drop(receive);
        assert_eq!(threads.running(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_upload_that_does_not_write_locally_stays_on_the_runtime() {
        let threads = ReceiveThreads::new(4);
        let (server, _client) = pair().await;
        let upload = Box::new(MemoryUpload {
            stored: Arc::default(),
            local: false,
            limit: usize::MAX,
            dropped: Arc::default(),
        });
        let progress = Arc::new(AtomicU64::new(0));
        assert!(ThreadReceive::start(&threads, &server, upload, 4096, None, Duration::from_secs(1), progress).is_err());
        assert_eq!(threads.running(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_write_ends_it_with_the_storage_error() {
        let threads = ReceiveThreads::new(4);
        let (server, mut client) = pair().await;
        let (upload, stored) = memory_upload(1 << 20);
        let (mut receive, _) = start(&threads, &server, upload, Duration::from_secs(10));
        let writer = std::thread::spawn(move || {
            // The server stops reading at the limit and closes its copy; the
            // client's writes may then fail, which is the point.
            let _ = client.write_all(&pattern(4 << 20));
        });
        let received = receive.finish().await.expect("the upload comes back");
        assert!(
            matches!(&received.result, Err(ReceiveError::Storage(e)) if e.kind == ErrorKind::QuotaExceeded),
            "{:?}",
            received.result
        );
        assert!(stored.lock().unwrap().len() <= 1 << 20);
        drop(server);
        writer.join().unwrap();
    }

    /// Stops a receive, which must end at once with `Stopped`.
    async fn stop_at_once(receive: ThreadReceive) {
        let received = tokio::time::timeout(Duration::from_secs(5), receive.stop())
            .await
            .expect("stop returns at once")
            .expect("the upload comes back");
        assert!(
            matches!(received.result, Err(ReceiveError::Stopped)),
            "{:?}",
            received.result
        );
    }

    /// A stall past what `Instant` can count to never passes (the
    /// configuration takes any number of seconds); the stop still works.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_endless_stall_timeout_waits_for_the_stop() {
        let threads = ReceiveThreads::new(4);
        let (server, _client) = pair().await;
        let (upload, _) = memory_upload(usize::MAX);
        let (receive, _) = start(&threads, &server, upload, Duration::from_secs(u64::MAX));
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop_at_once(receive).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_sending_stalls_it() {
        let threads = ReceiveThreads::new(4);
        let (server, mut client) = pair().await;
        let (upload, stored) = memory_upload(usize::MAX);
        let started = Instant::now();
        let (mut receive, _) = start(&threads, &server, upload, Duration::from_millis(300));
        client.write_all(b"some bytes, then nothing").unwrap();
        let received = receive.finish().await.expect("the upload comes back");
        assert!(
            matches!(received.result, Err(ReceiveError::Stalled)),
            "{:?}",
            received.result
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(*stored.lock().unwrap(), b"some bytes, then nothing");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stop_ends_a_waiting_thread_and_dropping_does_too() {
        let threads = ReceiveThreads::new(4);
        let (server, _client) = pair().await;
        let (upload, _) = memory_upload(usize::MAX);
        let (receive, _) = start(&threads, &server, upload, Duration::from_secs(600));
        stop_at_once(receive).await;
        assert_eq!(threads.running(), 0);
        // Dropped (the session gone): the thread ends and drops the upload,
        // whose own drop cleans up.
        let (upload, _, dropped) = watched_upload(usize::MAX);
        drop(start(&threads, &server, upload, Duration::from_secs(600)));
        let deadline = Instant::now() + Duration::from_secs(5);
        while threads.running() != 0 || !dropped.load(Ordering::Acquire) {
            assert!(
                Instant::now() < deadline,
                "a dropped receive's thread did not end and drop the upload"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
