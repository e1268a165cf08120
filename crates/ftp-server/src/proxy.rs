//! The PROXY protocol header on an accepted connection: read before the
//! greeting (the client waits for the server to speak first, so a header
//! that never comes is a timeout, not a deadlock), exactly as many bytes as
//! the parser asks for, so whatever follows it (a client's TLS ClientHello
//! on an implicit-FTPS listener) stays in the socket for the session.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use ftp_proto::proxy::{self, Addresses, Progress, ProxyError};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::config::ProxyProtocolConfig;

/// A connection relayed by a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Proxied {
    /// The proxy's own address (the TCP peer).
    pub proxy: SocketAddr,
    /// Where the client connected: the balancer's frontend. `None` for a
    /// header without addresses (a health check).
    pub destination: Option<SocketAddr>,
}

#[derive(Debug)]
pub(crate) enum HeaderError {
    Invalid(ProxyError),
    /// The connection closed before the header was complete.
    Closed,
    TimedOut,
    Io(io::Error),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Invalid(e) => e.fmt(f),
            HeaderError::Closed => f.write_str("connection closed inside the PROXY header"),
            HeaderError::TimedOut => f.write_str("no PROXY header in time"),
            HeaderError::Io(e) => write!(f, "reading the PROXY header: {e}"),
        }
    }
}

/// Reads the header of a connection from the trusted proxy `peer`; returns
/// the client's address (the peer's own for a header without one) and what
/// the session should know of the proxy.
pub(crate) async fn read_header(
    stream: &mut TcpStream,
    peer: SocketAddr,
    config: &ProxyProtocolConfig,
) -> Result<(SocketAddr, Proxied), HeaderError> {
    let header = match tokio::time::timeout(config.header_timeout, read(stream, config.max_v2_header)).await {
        Ok(r) => r?,
        Err(_) => return Err(HeaderError::TimedOut),
    };
    Ok(match header.addresses {
        Addresses::Tcp { source, destination } => (
            source,
            Proxied {
                proxy: peer,
                destination: Some(destination),
            },
        ),
        // The spec: use the connection's own endpoints.
        Addresses::Unknown => (
            peer,
            Proxied {
                proxy: peer,
                destination: None,
            },
        ),
    })
}

async fn read(stream: &mut TcpStream, max_v2: usize) -> Result<proxy::Header, HeaderError> {
    let mut buf = Vec::with_capacity(proxy::V1_MAX_LEN);
    loop {
        match proxy::parse(&buf, max_v2).map_err(HeaderError::Invalid)? {
            Progress::Done(header) => return Ok(header),
            Progress::NeedMore(n) => {
                let have = buf.len();
                buf.resize(n, 0);
                let got = stream.read(&mut buf[have..]).await.map_err(HeaderError::Io)?;
                if got == 0 {
                    return Err(HeaderError::Closed);
                }
                buf.truncate(have + got);
            }
        }
    }
}
