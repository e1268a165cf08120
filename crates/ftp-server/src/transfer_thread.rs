//! What the transfer threads share (`send_thread` for large plain
//! downloads, `receive_thread` for large plain uploads): a cap on how many
//! run at once, the signal that stops one, and the poll that waits on the
//! data connection for it.
//!
//! A thread owns copies of the data connection's descriptor (and of the
//! file's, for a download), so that whatever happens on the runtime's side
//! (the transfer dropped, its socket closed) the numbers it uses can never
//! name something else.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The loops need next to no stack; the default 2 MiB is only address
/// space, but a small one says what a thread is for.
pub(crate) const STACK_SIZE: usize = 64 << 10;

/// The cap on one kind of transfer thread, shared by every session of a
/// server.
pub(crate) struct ThreadBudget {
    running: AtomicUsize,
    limit: usize,
}

impl ThreadBudget {
    /// At most `limit` threads at once; 0 leaves every transfer to the
    /// runtime.
    pub fn new(limit: usize) -> Arc<ThreadBudget> {
        Arc::new(ThreadBudget {
            running: AtomicUsize::new(0),
            limit,
        })
    }

    /// Whether the cap lets any thread run at all (0 turns them off).
    pub fn allows_any(&self) -> bool {
        self.limit > 0
    }

    /// Threads running now.
    #[cfg(test)]
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// A place for one more thread, if the cap allows it.
    pub fn try_reserve(self: &Arc<Self>) -> Option<Slot> {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(self)))
    }
}

/// One place of a [`ThreadBudget`], held by its thread until it ends.
pub(crate) struct Slot(Arc<ThreadBudget>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why waiting on the data connection ended without it being ready.
#[derive(Debug)]
pub(crate) enum WaitError {
    /// Nothing happened for the stall timeout.
    Stalled,
    /// The [`StopSignal`] was raised.
    Stopped,
    Io(io::Error),
}

/// Waits until `socket` is ready for `events` (`POLLIN` or `POLLOUT`), or
/// has an error to report, `stop` is raised, or `stall` passes (a stall
/// too long to count from now, as the configuration allows, never passes).
pub(crate) fn wait_ready(
    socket: &OwnedFd,
    events: libc::c_short,
    stop: &StopSignal,
    stall: Duration,
) -> Result<(), WaitError> {
    let deadline = Instant::now().checked_add(stall);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|left| left.is_zero()) {
            return Err(WaitError::Stalled);
        }
        let mut fds = [
            libc::pollfd {
                fd: socket.as_raw_fd(),
                events,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // Rounded up, so that the last poll does not spin on a remainder
        // under a millisecond; -1 waits without a limit.
        let ms = left.map_or(-1, |left| {
            left.as_millis().saturating_add(1).min(i32::MAX as u128) as libc::c_int
        });
        // SAFETY: `fds` is an array of two initialised pollfds.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(WaitError::Io(err));
        }
        if fds[1].revents != 0 {
            return Err(WaitError::Stopped);
        }
        if fds[0].revents != 0 {
            // Ready, or an error (POLLERR, POLLHUP) the next call reports.
            return Ok(());
        }
    }
}

/// A descriptor of the thread's own for `fd`.
pub(crate) fn dup(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor the caller keeps open for
    // the duration of the call; the new one is owned by the result.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `copy` was just created and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// How a thread is told to stop: a flag it checks between calls, and an
/// eventfd (readable once raised, and it stays so) that wakes its poll.
pub(crate) struct StopSignal {
    raised: AtomicBool,
    fd: OwnedFd,
}

impl StopSignal {
    pub fn new() -> io::Result<StopSignal> {
        // SAFETY: eventfd creates a new descriptor or fails.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(StopSignal {
            raised: AtomicBool::new(false),
            // SAFETY: `fd` was just created and nothing else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    pub fn raise(&self) {
        if self.raised.swap(true, Ordering::AcqRel) {
            return;
        }
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one` to our own eventfd, whose
        // counter one write cannot overflow.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

/// A connected pair for the threads' tests: the server's end as tokio's,
/// the client's as std.
#[cfg(test)]
pub(crate) async fn test_pair() -> (tokio::net::TcpStream, std::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::task::spawn_blocking(move || std::net::TcpStream::connect(addr).unwrap());
    let (server, _) = listener.accept().await.unwrap();
    (server, client.await.unwrap())
}
