//! The server's runtime configuration. The binary builds it from the TOML
//! file and flags; tests build it directly. Defaults are documented in
//! `docs/configuration.md` and must stay in step with [`Default`].

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use crate::tls::{TlsPolicy, TlsProvider};

/// The reply to a failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedLoginReply {
    /// 530, what every client expects (the default).
    NotLoggedIn,
    /// 430 "Invalid username or password".
    InvalidCredentials,
}

/// A name a client may select with HOST (RFC 7151).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualHost {
    pub name: String,
    /// A disabled host exists but answers 434.
    pub enabled: bool,
}

/// Brute-force protection: failed logins are scored per client address
/// (an IPv4 address, or the /64 of an IPv6 address). Each failure within
/// `window` waits longer before its reply; `max_failures` of them ban the
/// address for `ban_time` (421 at connect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanConfig {
    /// Failed logins within `window` that ban the address; 0 never bans.
    pub max_failures: u32,
    /// How long failures are counted, from the first one.
    pub window: Duration,
    /// How long a ban lasts.
    pub ban_time: Duration,
    /// Wait before the reply to the first failed login; it doubles with
    /// each further failure in the window. Zero: no wait.
    pub failure_delay: Duration,
    /// The longest wait before a failed-login reply.
    pub max_failure_delay: Duration,
    /// Addresses remembered at most (bounded memory): when full, expired
    /// entries are purged, then the oldest is forgotten.
    pub max_addresses: usize,
}

impl Default for BanConfig {
    fn default() -> Self {
        BanConfig {
            max_failures: 10,
            window: Duration::from_secs(600),
            ban_time: Duration::from_secs(1800),
            failure_delay: Duration::from_millis(500),
            max_failure_delay: Duration::from_secs(8),
            max_addresses: 10_000,
        }
    }
}

/// An address or a network in CIDR form: `10.0.0.1`, `10.0.0.0/24`,
/// `2001:db8::/32`. An IPv4-mapped IPv6 address matches as the IPv4
/// address it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a text is not an [`IpNet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpNetError {
    Address(String),
    Prefix(String),
    /// Bits set below the prefix (`10.0.0.1/24`): probably a typo for the
    /// network or for the single address.
    HostBits(String),
}

impl std::fmt::Display for IpNetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpNetError::Address(s) => write!(f, "{s:?} is not an IP address"),
            IpNetError::Prefix(s) => write!(f, "{s:?}: the prefix length is out of range"),
            IpNetError::HostBits(s) => write!(f, "{s:?} has bits set below its prefix length"),
        }
    }
}

impl std::error::Error for IpNetError {}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(u128::from(u32::from(ip)), self.prefix, 32) == u128::from(u32::from(net))
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask(u128::from(ip), self.prefix, 128) == u128::from(net),
            _ => false,
        }
    }
}

/// `bits` with all but its top `prefix` bits (of `width`) cleared.
fn mask(bits: u128, prefix: u8, width: u8) -> u128 {
    let host = u32::from(width - prefix);
    if host >= 128 {
        0
    } else {
        bits >> host << host
    }
}

impl std::str::FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<IpNet, IpNetError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| IpNetError::Address(s.to_string()))?;
        // Stored canonical, so a mapped address in the config matches the
        // plain IPv4 peer and the other way round.
        let addr = addr.to_canonical();
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(n) if n <= width && !p.trim().starts_with('+') => n,
                _ => return Err(IpNetError::Prefix(s.to_string())),
            },
        };
        let bits = match addr {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        };
        if mask(bits, prefix, width) != bits {
            return Err(IpNetError::HostBits(s.to_string()));
        }
        Ok(IpNet { addr, prefix })
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The PROXY protocol (v1 and v2) on every control listener, for a TCP
/// load balancer in front of the server (HAProxy `send-proxy-v2`). Then
/// only `trusted_proxies` may connect, and each connection must start with
/// a header within `header_timeout`; everything else gets 421 and is
/// closed. The header's client address is the session's from then on:
/// limits, bans, logs and the data-connection checks use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocolConfig {
    pub trusted_proxies: Vec<IpNet>,
    /// Time from connect to a complete header (the spec asks for at least
    /// 3 s, a TCP retransmission).
    pub header_timeout: Duration,
    /// The largest v2 header taken, fixed 16 bytes included (v1 lines are
    /// at most 107 bytes by the spec).
    pub max_v2_header: usize,
}

impl ProxyProtocolConfig {
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }
}

impl Default for ProxyProtocolConfig {
    fn default() -> Self {
        ProxyProtocolConfig {
            trusted_proxies: Vec::new(),
            header_timeout: Duration::from_secs(5),
            max_v2_header: ftp_proto::proxy::DEFAULT_MAX_V2_LEN,
        }
    }
}

/// FTPS: the certificate, the policy, and implicit-TLS listeners.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub provider: Arc<TlsProvider>,
    pub policy: TlsPolicy,
    /// Listeners where TLS starts at connect (implicit FTPS, port 990).
    pub implicit_listen: Vec<SocketAddr>,
    /// Hand binary downloads of local files (sent with sendfile) and binary
    /// MODE S uploads (decrypted by the kernel) to kernel TLS where the
    /// kernel has it (see `ktls`).
    pub kernel_offload: bool,
}

/// RFC 2228 GSSAPI (Kerberos): AUTH GSSAPI, ADAT, protected commands and
/// data connections.
#[derive(Debug, Clone)]
pub struct GssConfig {
    /// The server's credentials (its keytab).
    pub acceptor: Arc<crate::gssapi::Acceptor>,
    /// Once a context is set up, commands must come protected (MIC, CONF,
    /// ENC); a plain one gets 533.
    pub require_protected_commands: bool,
    /// The largest protection buffer PBSZ agrees to, in bytes: a client
    /// asking for more is answered `PBSZ=` this (RFC 2228).
    pub max_buffer_size: u32,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    /// The text of the 220 greeting.
    pub greeting: String,
    /// Ports for passive data connections; `None` lets the OS choose.
    pub passive_ports: Option<RangeInclusive<u16>>,
    /// The address announced in PASV replies (behind NAT); by default the
    /// local address of the control connection. Behind a load balancer:
    /// this node's own address, where clients reach its passive ports.
    pub passive_address: Option<IpAddr>,
    /// PROXY protocol on the control listeners; `None` (the default): off,
    /// and a header is just an unknown command.
    pub proxy_protocol: Option<ProxyProtocolConfig>,
    /// Sessions at once; more get 421 "Too many users, server is full"
    /// (or wait, with `queue_when_full`).
    pub max_sessions: usize,
    /// Connections at once from one client address (an IPv4 address or an
    /// IPv6 /64), waiting ones included; more get 421. 0: no limit.
    pub max_sessions_per_address: usize,
    /// Logged-in sessions at once of one user; a login beyond it gets 421
    /// "Too many sessions for this user" and the connection closes. 0: no
    /// limit.
    pub max_sessions_per_user: usize,
    /// At the session limit, answer 120 and wait for a free slot (220)
    /// instead of 421 at once. At most `max_sessions` connections wait.
    pub queue_when_full: bool,
    /// The longest wait in the queue; then 421.
    pub max_queue_wait: Duration,
    /// A session older than this is logged out (231) and closed, after its
    /// running transfer if any. Zero: no limit.
    pub max_session_length: Duration,
    /// Bad commands before login (lines that are not a valid command:
    /// unknown, malformed, over-long) a connection may send; one more gets
    /// 421 and the connection closes. 0: no limit.
    pub max_bad_commands_before_login: usize,
    /// Longest command line in bytes; longer ones get 500.
    pub max_line_length: usize,
    /// Commands a client may send ahead while a transfer runs; beyond that
    /// the session is closed with 421.
    pub max_queued_commands: usize,
    /// Time from connect to a completed login.
    pub login_timeout: Duration,
    /// Time without a command (no transfer running) before 421.
    pub idle_timeout: Duration,
    /// Time to wait for a data connection (passive accept or active connect).
    pub data_connection_timeout: Duration,
    /// Time a transfer may make no progress before it is aborted (426).
    pub transfer_stall_timeout: Duration,
    /// On shutdown, how long running transfers may take to finish before
    /// the server exits anyway.
    pub shutdown_grace: Duration,
    /// Allow PORT/EPRT/LPRT to an address other than the client's, or to a
    /// port below 1024 (site-to-site "FXP"); off by default (bounce attacks).
    pub allow_foreign_data_address: bool,
    pub failed_login_reply: FailedLoginReply,
    pub bans: BanConfig,
    /// Bytes per read/write of a transfer.
    pub transfer_buffer_size: usize,
    /// Plain binary uploads to local disk go socket → pipe → file with
    /// splice(2) instead of read and write (see `transfer::receive_spliced`
    /// for why this is off by default).
    pub splice_uploads: bool,
    /// Threads that each send one large plain download (see
    /// `send_thread`); downloads beyond them are sent by the runtime's
    /// workers. 0: all of them are.
    pub send_threads: usize,
    /// Threads that each receive one large plain upload to local disk (see
    /// `receive_thread`); uploads beyond them are received by the
    /// runtime's workers. 0: all of them are.
    pub receive_threads: usize,
    /// Names HOST accepts; empty accepts any name.
    pub virtual_hosts: Vec<VirtualHost>,
    /// Entries `STAT <dir>` sends over the control connection at most.
    pub max_stat_entries: usize,
    /// The operator's Unix socket (`admin`): lists sessions and ends them.
    /// `None`: no socket.
    pub admin_socket: Option<std::path::PathBuf>,
    /// Names no upload, MKD or RNTO may create (553), matched against the
    /// new name's last component.
    pub denied_names: Vec<ftp_proto::glob::NamePattern>,
    /// FTPS; `None` answers AUTH with 504.
    pub tls: Option<TlsConfig>,
    /// GSSAPI; `None` answers AUTH GSSAPI with 504.
    pub gssapi: Option<GssConfig>,
    /// Storage limits for users whose users-file entry does not set them
    /// (per-user bytes and files, largest file); none by default.
    pub default_quota: ftp_auth::QuotaLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2121))],
            greeting: "ferroftp ready".to_string(),
            passive_ports: None,
            passive_address: None,
            proxy_protocol: None,
            max_sessions: 1000,
            max_sessions_per_address: 50,
            max_sessions_per_user: 0,
            queue_when_full: false,
            max_queue_wait: Duration::from_secs(60),
            max_session_length: Duration::from_secs(24 * 3600),
            max_bad_commands_before_login: 10,
            max_line_length: 4096,
            max_queued_commands: 32,
            login_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(300),
            data_connection_timeout: Duration::from_secs(30),
            transfer_stall_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(30),
            allow_foreign_data_address: false,
            failed_login_reply: FailedLoginReply::NotLoggedIn,
            bans: BanConfig::default(),
            transfer_buffer_size: 256 * 1024,
            splice_uploads: false,
            send_threads: 64,
            receive_threads: 64,
            virtual_hosts: Vec::new(),
            max_stat_entries: 10_000,
            admin_socket: None,
            tls: None,
            gssapi: None,
            denied_names: Vec::new(),
            default_quota: ftp_auth::QuotaLimits::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ip_nets() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(net("10.0.0.1").contains(ip("10.0.0.1")));
        assert!(!net("10.0.0.1").contains(ip("10.0.0.2")));
        assert!(net("10.0.0.0/24").contains(ip("10.0.0.255")));
        assert!(!net("10.0.0.0/24").contains(ip("10.0.1.0")));
        assert!(net("10.0.0.0/24").contains(ip("::ffff:10.0.0.7")), "mapped peers match");
        assert!(net("::ffff:10.0.0.1").contains(ip("10.0.0.1")));
        assert!(net("0.0.0.0/0").contains(ip("192.0.2.1")));
        assert!(!net("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(net("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!net("2001:db8::/32").contains(ip("2001:db9::1")));
        assert!(net("::/0").contains(ip("::1")));
        assert!(net("::1/128").contains(ip("::1")));
        assert_eq!(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
        for bad in [
            "10.0.0.1/24",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "host",
            "10.0.0.0/-1",
            "",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }
}
