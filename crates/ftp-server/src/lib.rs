//! The ferroftp server: listeners, control sessions, data connections and
//! transfers, on tokio.
//!
//! Layout:
//! - [`config`]: [`ServerConfig`], every limit and timeout the server uses.
//! - [`listener`]: accept loops, the session cap, graceful shutdown.
//! - `session`: one task per control connection that owns its session
//!   state; the read loop, command dispatch and the reply path.
//! - `gate`: the one check run before any handler (login, transfer in
//!   progress, permissions), driven by the command table in `ftp-proto`.
//! - `commands`: the handlers, grouped by area (login, navigation, file
//!   actions, transfer parameters, data-connection setup, information).
//! - `limits`: session counts per client address and per user.
//! - `bans`: failed logins scored per address: growing delays, bans.
//! - `data`: passive listeners and active connects, with the peer-address
//!   checks that refuse bounce and data-connection theft.
//! - `transfer`: RETR/STOR/LIST as cancellable tasks, so ABOR, STAT and
//!   QUIT work while they run; TYPE A, MODE B and STRU P encodings.
//! - `replies`: storage and auth errors turned into replies in one place.
//! - `quota`: per-user quotas (bytes, files) and the largest file: usage
//!   measured once per user, counted chunk by chunk, 552 when exceeded.
//! - [`tls`]: FTPS with rustls: certificates, per-session configs binding
//!   data connections to their control session, plain-or-TLS streams.
//! - `proxy`: the PROXY protocol header read from a trusted balancer's
//!   connection before the greeting.
//! - `net`: socket options (TCP_NODELAY, SO_OOBINLINE) and sendfile.
//! - [`gssapi`]: RFC 2228's GSSAPI mechanism (Kerberos) over the system's
//!   GSS-API library, loaded at run time; `gss_framing`: its protected
//!   commands and replies (MIC, CONF, ENC; 631-633) and data blocks.
//! - `ktls`: FTPS downloads handed to kernel TLS, so sendfile serves them.
//! - `send_thread`, `receive_thread`: large plain downloads and uploads
//!   moved off the runtime's workers to a bounded set of threads, one per
//!   transfer; `transfer_thread` holds what the two share.

mod admin;
mod bans;
mod commands;
pub mod config;
mod cork;
mod data;
mod gate;
mod gss_framing;
pub mod gssapi;
mod ktls;
mod limits;
pub mod listener;
mod live_config;
mod net;
mod proxy;
mod quota;
mod receive_thread;
mod replies;
mod send_thread;
mod session;
pub mod tls;
mod tls_socket;
mod transfer;
mod transfer_thread;

pub use config::{
    BanConfig, FailedLoginReply, GssConfig, IpNet, ProxyProtocolConfig, ServerConfig, TlsConfig, VirtualHost,
};
pub use listener::Server;
pub use live_config::ConfigReloader;
