//! Data-connection setup: passive listeners (PASV/EPSV/LPSV) and active
//! connects (PORT/EPRT/LPRT).
//!
//! A passive listener starts accepting as soon as it is announced (the
//! session polls it beside the control connection), so a client that
//! connects before sending RETR is already connected when the command
//! arrives (125 instead of 150). It accepts only connections from
//! the control connection's address: a connection from anywhere else is
//! dropped and the listener keeps waiting for the real client (data
//! connection theft, "port stealing").
//!
//! A session has at most one passive listener: a new PASV/EPSV/LPSV, a
//! transfer claiming the connection, the client's connection or the accept
//! timeout, and the end of the session each close it at once, so its port
//! is free again for the next PASV. A range with no free port
//! answers 425 at once.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

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
    /// session has not polled the listener since.
    pub fn is_connected_now(&self) -> bool {
        match self {
            DataSetup::Passive(p) => p.connected() || p.backlog_ready(),
            other => other.is_connected(),
        }
    }
}

/// A passive listener waiting for the client's data connection. The
/// session polls [`wait_for_client`](PassiveListener::wait_for_client)
/// beside its control connection, so the accept runs in the session's own
/// task: a spawned accept task cost a task spawn, a wake of the other
/// worker thread and a join per data connection, which on small downloads
/// was more than the download (perf: cross-thread wakes and context
/// switches at the top of the server's profile).
pub(crate) struct PassiveListener {
    pub local: SocketAddr,
    /// Closed (`None`) as soon as the wait is over, so the port is free.
    listener: Option<TcpListener>,
    client_ip: IpAddr,
    /// When the wait for the client's connection gives up.
    deadline: tokio::time::Instant,
    /// The end of the wait: the client's connection, or why there is none.
    outcome: Option<io::Result<TcpStream>>,
}

/// Accepts the one connection from `client_ip`, dropping connections from
/// anywhere else. Cancel-safe: a connection is never lost half-accepted.
async fn accept_from(listener: &TcpListener, client_ip: IpAddr) -> io::Result<TcpStream> {
    loop {
        let (stream, peer) = listener.accept().await?;
        if same_host(peer.ip(), client_ip) {
            return Ok(stream);
        }
        tracing::warn!(%peer, expected = %client_ip, "data connection from a foreign address dropped");
    }
}

impl PassiveListener {
    /// Binds a listener on `ip` (a port from `ports`, or any) for the one
    /// connection from `client_ip`, which must come within `timeout`.
    pub async fn open(
        ip: IpAddr,
        ports: Option<&RangeInclusive<u16>>,
        client_ip: IpAddr,
        timeout: Duration,
    ) -> io::Result<PassiveListener> {
        let listener = bind_in_range(ip, ports)?;
        let local = listener.local_addr()?;
        let now = tokio::time::Instant::now();
        // A huge timeout means "no limit" rather than an overflow.
        let deadline = now
            .checked_add(timeout)
            .unwrap_or(now + Duration::from_secs(100 * 365 * 86_400));
        Ok(PassiveListener {
            local,
            listener: Some(listener),
            client_ip,
            deadline,
            outcome: None,
        })
    }

    /// Waits until the client's connection is accepted or the deadline
    /// passes, then closes the listener; after that, never completes. The
    /// session polls this while it waits for commands (dropping foreign
    /// connections as they come, and so that a client that connects first
    /// finds its connection accepted); the transfer finishes the wait.
    /// Cancel-safe.
    pub async fn wait_for_client(&mut self) {
        let Some(listener) = self.listener.as_ref() else {
            return std::future::pending().await;
        };
        let result = match tokio::time::timeout_at(self.deadline, accept_from(listener, self.client_ip)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no data connection")),
        };
        // One connection per listener: the port is free again.
        self.listener = None;
        self.outcome = Some(result);
    }

    /// The client's connection has been accepted.
    fn connected(&self) -> bool {
        matches!(self.outcome, Some(Ok(_)))
    }

    /// True when the client's connection has been accepted or waits in
    /// the backlog (a connection from a foreign address waiting there
    /// counts too: it is rare, and only changes 150 into 125).
    fn backlog_ready(&self) -> bool {
        use std::os::fd::AsRawFd;
        if self.connected() {
            return true;
        }
        let Some(listener) = self.listener.as_ref() else {
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
        if self.outcome.is_none() {
            self.wait_for_client().await;
        }
        self.outcome.take().expect("the wait ended with an outcome")
    }
}

/// Two addresses of the same host, treating an IPv4-mapped IPv6 address as
/// the IPv4 address it carries.
pub(crate) fn same_host(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

fn bind_in_range(ip: IpAddr, ports: Option<&RangeInclusive<u16>>) -> io::Result<TcpListener> {
    let Some(range) = ports else {
        return bind_ephemeral(ip);
    };
    let (lo, hi) = (*range.start(), *range.end());
    let span = u32::from(hi - lo) + 1;
    // Start at a random port so that sessions spread over the range and a
    // client cannot predict the next port; then scan the whole range once.
    let start = random_u32() % span;
    for i in 0..span {
        let port = lo + ((start + i) % span) as u16;
        if let Some(listener) = bind_if_free(SocketAddr::new(ip, port))? {
            return Ok(listener);
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, "passive port range exhausted"))
}

/// Random tries at a port of the kernel's ephemeral range before leaving
/// the choice to the kernel.
const EPHEMERAL_TRIES: u32 = 8;

/// A listener on a port of the kernel's ephemeral range, for sites with no
/// `passive_ports`. The port is picked here at random and bound like a
/// range port, because `bind(port 0)` is slow exactly when an FTP server
/// is busy: the kernel skips every port that still has a data connection
/// in TIME_WAIT and walks their bind buckets to find one (perf, 8,000
/// TIME_WAIT sockets from a client fetching small files: 45% of the
/// server's CPU in inet_csk_get_port and its conflict checks). A bind to a
/// chosen port looks at one bucket, and TIME_WAIT does not block it.
fn bind_ephemeral(ip: IpAddr) -> io::Result<TcpListener> {
    let (lo, hi) = ephemeral_range();
    let span = u32::from(hi - lo) + 1;
    let reserved = reserved_ports();
    for _ in 0..EPHEMERAL_TRIES {
        let port = lo + (random_u32() % span) as u16;
        if reserved.iter().any(|r| r.contains(&port)) {
            continue;
        }
        if let Some(listener) = bind_if_free(SocketAddr::new(ip, port))? {
            return Ok(listener);
        }
    }
    bind(SocketAddr::new(ip, 0))
}

/// [`bind`], with `None` for a port in use (the caller tries another).
fn bind_if_free(addr: SocketAddr) -> io::Result<Option<TcpListener>> {
    match bind(addr) {
        Ok(listener) => Ok(Some(listener)),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(None),
        Err(e) => Err(e),
    }
}

/// The kernel's ephemeral port range (net.ipv4.ip_local_port_range, which
/// applies to IPv6 too), read once; Linux's default if it cannot be read.
fn ephemeral_range() -> (u16, u16) {
    static RANGE: std::sync::OnceLock<(u16, u16)> = std::sync::OnceLock::new();
    *RANGE.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|text| parse_port_range(&text))
            .unwrap_or((32768, 60999))
    })
}

/// net.ipv4.ip_local_reserved_ports, read once: ports of the ephemeral
/// range the site keeps for other services, which `bind(port 0)` would
/// never hand out either.
fn reserved_ports() -> &'static [RangeInclusive<u16>] {
    static RESERVED: std::sync::OnceLock<Vec<RangeInclusive<u16>>> = std::sync::OnceLock::new();
    RESERVED.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_reserved_ports")
            .map(|text| parse_reserved_ports(&text))
            .unwrap_or_default()
    })
}

/// `8080,9000-9100` (the kernel's format); malformed items are skipped.
fn parse_reserved_ports(text: &str) -> Vec<RangeInclusive<u16>> {
    text.trim()
        .split(',')
        .filter_map(|item| {
            let item = item.trim();
            let (lo, hi) = item.split_once('-').unwrap_or((item, item));
            let (lo, hi) = (lo.trim().parse::<u16>().ok()?, hi.trim().parse::<u16>().ok()?);
            (lo <= hi).then_some(lo..=hi)
        })
        .collect()
}

fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut fields = text.split_whitespace().map(str::parse::<u16>);
    let (lo, hi) = (fields.next()?.ok()?, fields.next()?.ok()?);
    (1024 <= lo && lo <= hi).then_some((lo, hi))
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
    // Room for a few foreign connections besides the client's: they are
    // dropped only when the session next polls the listener, and a full
    // queue would make the kernel drop the client's SYN (a 1 s retry).
    socket.listen(8)
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
    Ok((MaybeTls::Plain(stream), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_port_range_parsing() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("1024 1024"), Some((1024, 1024)));
        // Privileged, reversed, short or garbled ranges fall back.
        assert_eq!(parse_port_range("80 90"), None);
        assert_eq!(parse_port_range("5000 4000"), None);
        assert_eq!(parse_port_range("5000"), None);
        assert_eq!(parse_port_range("a b"), None);
    }

    #[test]
    fn reserved_ports_parsing() {
        assert_eq!(parse_reserved_ports("\n"), Vec::<RangeInclusive<u16>>::new());
        assert_eq!(
            parse_reserved_ports("8080,40000-40010\n"),
            vec![8080..=8080, 40000..=40010]
        );
        assert_eq!(parse_reserved_ports("x,5-3,7"), vec![7..=7]);
    }

    #[tokio::test]
    async fn ephemeral_listeners_get_distinct_ports_in_the_kernel_range() {
        let (lo, hi) = ephemeral_range();
        let listeners: Vec<_> = (0..50)
            .map(|_| bind_ephemeral(IpAddr::from([127, 0, 0, 1])).unwrap())
            .collect();
        let mut ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
        assert!(
            ports.iter().all(|p| (lo..=hi).contains(p)),
            "{ports:?} outside {lo}-{hi}"
        );
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 50, "two listeners on one port");
    }
}
