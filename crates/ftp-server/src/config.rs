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

/// FTPS: the certificate, the policy, and implicit-TLS listeners.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub provider: Arc<TlsProvider>,
    pub policy: TlsPolicy,
    /// Listeners where TLS starts at connect (implicit FTPS, port 990).
    pub implicit_listen: Vec<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    /// The text of the 220 greeting.
    pub greeting: String,
    /// Ports for passive data connections; `None` lets the OS choose.
    pub passive_ports: Option<RangeInclusive<u16>>,
    /// The address announced in PASV replies (behind NAT); by default the
    /// local address of the control connection.
    pub passive_address: Option<IpAddr>,
    /// Sessions at once; more get 421 "Too many users, server is full".
    pub max_sessions: usize,
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
    /// Bytes per read/write of a transfer.
    pub transfer_buffer_size: usize,
    /// Names HOST accepts; empty accepts any name.
    pub virtual_hosts: Vec<VirtualHost>,
    /// Entries STAT <dir> sends over the control connection at most.
    pub max_stat_entries: usize,
    /// FTPS; `None` answers AUTH with 504.
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2121))],
            greeting: "ferroftp ready".to_string(),
            passive_ports: None,
            passive_address: None,
            max_sessions: 1000,
            max_line_length: 4096,
            max_queued_commands: 32,
            login_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(300),
            data_connection_timeout: Duration::from_secs(30),
            transfer_stall_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(30),
            allow_foreign_data_address: false,
            failed_login_reply: FailedLoginReply::NotLoggedIn,
            transfer_buffer_size: 256 * 1024,
            virtual_hosts: Vec::new(),
            max_stat_entries: 10_000,
            tls: None,
        }
    }
}
