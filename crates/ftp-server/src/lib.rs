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
//! - `data`: passive listeners and active connects, with the peer-address
//!   checks that refuse bounce and data-connection theft.
//! - `transfer`: RETR/STOR/LIST as cancellable tasks, so ABOR, STAT and
//!   QUIT work while they run; TYPE A, MODE B and STRU P encodings.
//! - `replies`: storage and auth errors turned into replies in one place.
//! - [`tls`]: FTPS with rustls: certificates, per-session configs binding
//!   data connections to their control session, plain-or-TLS streams.
//! - `net`: socket options (TCP_NODELAY, SO_OOBINLINE) and sendfile.

mod commands;
pub mod config;
mod data;
mod gate;
pub mod listener;
mod net;
mod replies;
mod session;
pub mod tls;
mod transfer;

pub use config::{FailedLoginReply, ServerConfig, TlsConfig, VirtualHost};
pub use listener::Server;
