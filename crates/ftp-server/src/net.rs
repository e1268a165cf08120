//! Socket options and zero-copy sends that tokio does not expose.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use tokio::io::Interest;
use tokio::net::TcpStream;

/// SO_OOBINLINE keeps TCP urgent data in the normal stream. Python's ftplib
/// sends ABOR with MSG_OOB; without this option the kernel pulls the urgent
/// byte (the final LF) out of the stream and the command never ends.
pub fn set_oob_inline(stream: &TcpStream) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the fd is a live socket owned by `stream`; the option value is
    // a c_int whose size we pass.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_OOBINLINE,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends up to `count` bytes of `file_fd` starting at `*offset` to the
/// socket with sendfile(2), advancing `*offset`. Returns the bytes sent (0
/// at end of file). Waits for socket writability without blocking a thread.
pub async fn sendfile(stream: &TcpStream, file_fd: RawFd, offset: &mut u64, count: usize) -> io::Result<usize> {
    loop {
        stream.writable().await?;
        let result = stream.try_io(Interest::WRITABLE, || {
            let mut off = *offset as libc::off_t;
            // SAFETY: both fds are open for the duration of the call; `off`
            // is a valid off_t the kernel updates.
            let n = unsafe { libc::sendfile(stream.as_raw_fd(), file_fd, &mut off, count) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                *offset = off as u64;
                Ok(n as usize)
            }
        });
        match result {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}
