//! Data-connection setup: passive listeners (PASV/EPSV/LPSV) and active
//! connects (PORT/EPRT/LPRT).
//!
//! A passive listener starts accepting as soon as it is announced, so a
//! client that connects before sending RETR is already connected when the
//! command arrives (125 instead of 150). It accepts only connections from
//! the control connection's address: a connection from anywhere else is
//! dropped and the listener keeps waiting for the real client (data
//! connection theft, "port stealing").
//!
//! A session has at most one passive listener: a new PASV/EPSV/LPSV, a
//! transfer claiming the connection, the accept timeout, and the end of the
//! session each close it at once (not when a task gets round to it), so
//! its port is free again for the next PASV. A range with no free port
//! answers 425 at once.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use crate::tls::MaybeTls;

/// A data connection waiting to be used by the next transfer command.
pub(crate) enum DataSetup {
    None,
    Passive(PassiveListener),
    Active {
        target: SocketAddr,
        local_ip: IpAddr,
    },
    /// A connection kept open after a MODE B transfer (RFC 959 §3.4.2).
    Open(MaybeTls),
}

impl DataSetup {
    /// True when a connection is already established: the transfer reply
    /// is then 125, not 150.
    pub fn is_connected(&self) -> bool {
        match self {
            DataSetup::Passive(p) => p.connected(),
            DataSetup::Open(_) => true,
            _ => false,
        }
    }

    /// [`is_connected`](DataSetup::is_connected), also counting a
    /// connection from the client that still waits in the listener's
    /// backlog: the client connected before sending the command, and the
    /// accept task simply has not run yet.
    pub fn is_connected_now(&self) -> bool {
        match self {
            DataSetup::Passive(p) => p.connected() || p.backlog_ready(),
            other => other.is_connected(),
        }
    }
}

/// The listening socket, shared with the accept task; whoever is done
/// with it first takes it out, which closes it. `accepted` is set under the
/// same lock as the client's connection leaves the backlog, so a look at
/// the backlog and the flag together never misses a connection in between.
struct Shared {
    listener: Option<TcpListener>,
    accepted: bool,
}

type Socket = Arc<Mutex<Shared>>;

pub(crate) struct PassiveListener {
    pub local: SocketAddr,
    socket: Socket,
    /// Taken when the transfer claims the connection.
    accept: Option<JoinHandle<io::Result<TcpStream>>>,
}

impl Drop for PassiveListener {
    fn drop(&mut self) {
        // A listener replaced by a new PASV, or dropped with the session,
        // stops listening now: its port must be free for the next bind.
        close(&self.socket);
        if let Some(accept) = &self.accept {
            accept.abort();
        }
    }
}

fn lock(socket: &Socket) -> std::sync::MutexGuard<'_, Shared> {
    socket.lock().unwrap_or_else(PoisonError::into_inner)
}

fn close(socket: &Socket) {
    let listener = lock(socket).listener.take();
    drop(listener);
}

/// Accepts the one connection from `client_ip` on the shared socket,
/// dropping connections from anywhere else, or fails once it is closed.
async fn accept_from(socket: &Socket, client_ip: IpAddr) -> io::Result<TcpStream> {
    std::future::poll_fn(|cx| {
        let mut shared = lock(socket);
        loop {
            let Some(listener) = shared.listener.as_ref() else {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "passive listener closed",
                )));
            };
            match listener.poll_accept(cx) {
                Poll::Ready(Ok((stream, peer))) if same_host(peer.ip(), client_ip) => {
                    shared.accepted = true;
                    return Poll::Ready(Ok(stream));
                }
                Poll::Ready(Ok((_, peer))) => {
                    tracing::warn!(%peer, expected = %client_ip, "data connection from a foreign address dropped");
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

impl PassiveListener {
    /// Binds a listener on `ip` (a port from `ports`, or any) and starts
    /// accepting the one connection from `client_ip`.
    pub async fn open(
        ip: IpAddr,
        ports: Option<&RangeInclusive<u16>>,
        client_ip: IpAddr,
        timeout: Duration,
    ) -> io::Result<PassiveListener> {
        let listener = bind_in_range(ip, ports)?;
        let local = listener.local_addr()?;
        let socket: Socket = Arc::new(Mutex::new(Shared {
            listener: Some(listener),
            accepted: false,
        }));
        let task_socket = Arc::clone(&socket);
        let accept = tokio::spawn(async move {
            let result = match tokio::time::timeout(timeout, accept_from(&task_socket, client_ip)).await {
                Ok(r) => r,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no data connection")),
            };
            // One connection per listener: the port is free again.
            close(&task_socket);
            result
        });
        Ok(PassiveListener {
            local,
            socket,
            accept: Some(accept),
        })
    }

    /// The client's connection has been accepted.
    fn connected(&self) -> bool {
        lock(&self.socket).accepted
    }

    /// True when the client's connection has been accepted or waits in
    /// the backlog (a connection from a foreign address waiting there
    /// counts too: it is rare, and only changes 150 into 125).
    fn backlog_ready(&self) -> bool {
        use std::os::fd::AsRawFd;
        let shared = lock(&self.socket);
        if shared.accepted {
            return true;
        }
        let Some(listener) = shared.listener.as_ref() else {
            return false;
        };
        let mut fd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout: never blocks.
        let ready = unsafe { libc::poll(&mut fd, 1, 0) };
        ready == 1 && fd.revents & libc::POLLIN != 0
    }

    async fn connection(mut self) -> io::Result<TcpStream> {
        let handle = self.accept.take().expect("a passive listener is claimed once");
        match handle.await {
            Ok(r) => r,
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

/// Two addresses of the same host, treating an IPv4-mapped IPv6 address as
/// the IPv4 address it carries.
pub(crate) fn same_host(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

fn bind_in_range(ip: IpAddr, ports: Option<&RangeInclusive<u16>>) -> io::Result<TcpListener> {
    let Some(range) = ports else {
        return bind(SocketAddr::new(ip, 0));
    };
    let (lo, hi) = (*range.start(), *range.end());
    let span = u32::from(hi - lo) + 1;
    // Start at a random port so that sessions spread over the range and a
    // client cannot predict the next port; then scan the whole range once.
    let start = random_u32() % span;
    for i in 0..span {
        let port = lo + ((start + i) % span) as u16;
        match bind(SocketAddr::new(ip, port)) {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, "passive port range exhausted"))
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if addr.port() != 0 {
        // A data connection this range port carried may linger in
        // TIME_WAIT; that must not keep the port from the next PASV. (Two
        // listeners still cannot share a port: Linux refuses that without
        // SO_REUSEPORT.)
        socket.set_reuseaddr(true)?;
    }
    socket.bind(addr)?;
    socket.listen(1)
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // A failure only makes the start port predictable, never unsafe.
    let _ = getrandom::getrandom(&mut b);
    u32::from_ne_bytes(b)
}

/// Turns the setup into a connected stream: waits for the passive peer or
/// connects to the active target. The flag is true for a new connection
/// (false for one kept open by MODE B, whose TLS is already set up).
pub(crate) async fn establish(setup: DataSetup, timeout: Duration) -> io::Result<(MaybeTls, bool)> {
    let stream = match setup {
        DataSetup::None => return Err(io::Error::new(io::ErrorKind::NotConnected, "no data connection set up")),
        DataSetup::Open(s) => return Ok((s, false)),
        DataSetup::Passive(p) => p.connection().await?,
        DataSetup::Active { target, local_ip } => {
            let socket = if target.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            // Connect from the address the client talks to, so the data
            // connection comes from the host it expects.
            let local_ip = if target.is_ipv4() {
                local_ip.to_canonical()
            } else {
                local_ip
            };
            if local_ip.is_ipv4() == target.is_ipv4() {
                socket.bind(SocketAddr::new(local_ip, 0))?;
            }
            match tokio::time::timeout(timeout, socket.connect(target)).await {
                Ok(r) => r?,
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "active connect timed out")),
            }
        }
    };
    let _ = stream.set_nodelay(true);
    Ok((MaybeTls::Plain(stream), true))
}
