//! Listeners: accept loops, the session cap and shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ftp_auth::Authenticator;
use ftp_proto::{Reply, ReplyCode};
use ftp_storage::Backend;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::config::ServerConfig;
use crate::net;
use crate::session::{Session, Shared};

/// A bound server, ready to run.
pub struct Server {
    /// Each listener, and whether it is for implicit FTPS.
    listeners: Vec<(TcpListener, bool)>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl Server {
    /// Binds every `config.listen` address (port 0 picks a free port; see
    /// [`Server::local_addrs`]).
    pub async fn bind(
        config: ServerConfig,
        backend: Arc<dyn Backend>,
        auth: Arc<dyn Authenticator>,
    ) -> io::Result<Server> {
        let mut listeners = Vec::new();
        for addr in &config.listen {
            listeners.push((bind_listener(*addr)?, false));
        }
        for addr in config.tls.iter().flat_map(|t| &t.implicit_listen) {
            listeners.push((bind_listener(*addr)?, true));
        }
        let (shutdown, shutting_down) = watch::channel(false);
        Ok(Server {
            listeners,
            shared: Arc::new(Shared {
                config,
                backend,
                auth,
                shutting_down,
            }),
            shutdown,
        })
    }

    /// The explicit (plain, AUTH TLS) listeners' addresses.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(false)
    }

    /// The implicit-FTPS listeners' addresses.
    pub fn implicit_tls_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(true)
    }

    fn addrs(&self, implicit: bool) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|(_, i)| *i == implicit)
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` resolves. Then every session is told (421,
    /// at once when idle, after its transfer otherwise), new connections
    /// get 421, and the server returns when the sessions have ended or the
    /// grace period is over.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let max = self
            .shared
            .config
            .max_sessions
            .min(Semaphore::MAX_PERMITS)
            .min(u32::MAX as usize);
        let slots = Arc::new(Semaphore::new(max));
        let mut accepts = JoinSet::new();
        for (listener, implicit) in self.listeners {
            accepts.spawn(accept_loop(
                listener,
                Arc::clone(&self.shared),
                Arc::clone(&slots),
                implicit,
            ));
        }
        shutdown.await;
        let _ = self.shutdown.send(true);
        let all_ended = slots.acquire_many(max as u32);
        if tokio::time::timeout(self.shared.config.shutdown_grace, all_ended)
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace period over; closing the remaining sessions");
        }
        accepts.shutdown().await;
        Ok(())
    }
}

fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, slots: Arc<Semaphore>, implicit_tls: bool) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if let Err(e) = net::set_oob_inline(&stream) {
            tracing::debug!(error = %e, "SO_OOBINLINE failed");
        }
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(_) => continue,
        };
        if *shared.shutting_down.borrow() {
            tokio::spawn(refuse(stream, "Service not available, server shutting down"));
            continue;
        }
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tokio::spawn(refuse(stream, "Too many users, server is full"));
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            Session::new(shared, stream, peer, local, implicit_tls).run().await;
            drop(permit);
        });
    }
}

/// Every accepted connection gets an answer, never silence.
async fn refuse(mut stream: TcpStream, text: &'static str) {
    let reply = Reply::new(ReplyCode::ServiceNotAvailable, text);
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&reply.encode())).await;
    let _ = stream.shutdown().await;
}
