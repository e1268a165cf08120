//! Listeners: accept loops, bans, the session caps (total and per
//! address), the queue for a full server, and shutdown.
//!
//! Every accepted connection gets an answer: the greeting (220, after 120
//! when it waited in the queue, or for the storage to answer at start) or
//! 421 with the reason.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftp_auth::Authenticator;
use ftp_proto::{Reply, ReplyCode};
use ftp_storage::Backend;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::bans::BanTable;
use crate::config::ServerConfig;
use crate::limits::{AddrKey, CountGuard, SessionCounts};
use crate::live_config::{ConfigReloader, LiveConfig, SessionSlots};
use crate::net;
use crate::proxy::{self, Proxied};
use crate::session::{Session, Shared};

/// A bound server, ready to run.
pub struct Server {
    /// Each listener, and whether it is for implicit FTPS.
    listeners: Vec<(TcpListener, bool)>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    /// Told once the storage answers (see `probe_storage`).
    storage_ready: watch::Sender<bool>,
    /// The operator's socket (`server.admin_socket`), and its file.
    admin: Option<(tokio::net::UnixListener, crate::admin::SocketFile)>,
}

/// How long the first check of the storage may take before the listeners
/// open anyway (and clients wait with 120 until it answers).
const FIRST_STORAGE_CHECK: Duration = Duration::from_secs(3);
/// Each later check's limit, and the longest pause between checks.
const STORAGE_CHECK_TIMEOUT: Duration = Duration::from_secs(10);
const STORAGE_CHECK_MAX_PAUSE: Duration = Duration::from_secs(5);

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
        if config.tls.as_ref().is_some_and(|t| t.kernel_offload) {
            // Probed (and logged) at start rather than at the first FTPS
            // transfer, so the log says at once which path transfers take.
            crate::ktls::support();
        }
        let admin = config.admin_socket.as_deref().map(crate::admin::bind).transpose()?;
        let (shutdown, shutting_down) = watch::channel(false);
        let (storage_ready, storage_ready_rx) = watch::channel(false);
        Ok(Server {
            listeners,
            shared: Arc::new(Shared {
                slots: SessionSlots::new(config.max_sessions),
                per_address: SessionCounts::new(config.max_sessions_per_address),
                per_user: SessionCounts::new(config.max_sessions_per_user),
                bans: BanTable::new(config.bans.clone()),
                quotas: Default::default(),
                send_threads: crate::send_thread::SendThreads::new(config.send_threads),
                receive_threads: crate::receive_thread::ReceiveThreads::new(config.receive_threads),
                sendfile_downloads: crate::cork::SendfileDownloads::new(),
                sessions: Default::default(),
                config: LiveConfig::new(config),
                backend,
                auth,
                shutting_down,
                storage_ready: storage_ready_rx,
            }),
            shutdown,
            storage_ready,
            admin,
        })
    }

    /// Puts a new configuration in force for new sessions (SIGHUP; see
    /// `live_config`), before or while the server runs.
    pub fn reloader(&self) -> ConfigReloader {
        ConfigReloader {
            shared: Arc::clone(&self.shared),
        }
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
        let slots = Arc::clone(self.shared.slots.permits());
        let waiting = Arc::new(AtomicUsize::new(0));
        let mut accepts = JoinSet::new();
        let backend = Arc::clone(&self.shared.backend);
        match tokio::time::timeout(FIRST_STORAGE_CHECK, backend.ready()).await {
            Ok(Ok(())) => {
                self.storage_ready.send_replace(true);
            }
            outcome => {
                let why = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no answer".to_string(),
                };
                tracing::warn!(error = %why, "storage not ready; clients wait (120) until it answers");
                accepts.spawn(probe_storage(backend, self.storage_ready));
            }
        }
        for (listener, implicit) in self.listeners {
            accepts.spawn(accept_loop(
                listener,
                Arc::clone(&self.shared),
                Arc::clone(&slots),
                Arc::clone(&waiting),
                implicit,
            ));
        }
        accepts.spawn(purge_bans(Arc::clone(&self.shared)));
        let admin_file = self.admin.map(|(listener, file)| {
            accepts.spawn(crate::admin::serve(listener, Arc::clone(&self.shared)));
            file
        });
        shutdown.await;
        let _ = self.shutdown.send(true);
        // Every permit there is once no session runs; no reload resizes
        // the semaphore from here on.
        let all_ended = slots.acquire_many(self.shared.slots.close() as u32);
        if tokio::time::timeout(self.shared.config.current().shutdown_grace, all_ended)
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace period over; closing the remaining sessions");
        }
        accepts.shutdown().await;
        if let Some(file) = admin_file {
            file.remove();
        }
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

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    implicit_tls: bool,
) {
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
        let incoming = Incoming {
            stream,
            peer,
            local,
            implicit_tls,
            proxied: None,
        };
        let config = shared.config.current();
        match &config.proxy_protocol {
            None => admit(&shared, &slots, &waiting, incoming),
            Some(pp) if !pp.trusts(peer.ip()) => {
                // With the PROXY protocol on, a client reaching the port
                // directly could claim any address it likes in a header
                // of its own: only the balancers may connect.
                tracing::info!(%peer, "connection from an untrusted address refused (PROXY protocol on)");
                tokio::spawn(refuse(
                    incoming.stream,
                    "Connections are accepted only through the site's proxy",
                ));
            }
            // The header is read in the connection's own task: a slow
            // proxy must not hold up the accept loop.
            Some(_) => {
                tokio::spawn(admit_proxied(
                    Arc::clone(&shared),
                    Arc::clone(&slots),
                    Arc::clone(&waiting),
                    incoming,
                    Arc::clone(&config),
                ));
            }
        }
    }
}

/// A connection as accepted, before any check; `peer` is the client's
/// address (from the PROXY header when there is one).
struct Incoming {
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    implicit_tls: bool,
    proxied: Option<Proxied>,
}

/// Reads the PROXY header of a connection from a trusted proxy, then
/// checks the client it names like any other.
/// `config`: the one the accept checked the peer under (a reload between
/// the accept and here must not leave the connection without an answer).
async fn admit_proxied(
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    mut incoming: Incoming,
    config: Arc<ServerConfig>,
) {
    let Some(pp) = &config.proxy_protocol else {
        return;
    };
    match proxy::read_header(&mut incoming.stream, incoming.peer, pp).await {
        Ok((client, proxied)) => {
            tracing::debug!(%client, proxy = %proxied.proxy, destination = ?proxied.destination, "PROXY header");
            incoming.peer = client;
            incoming.proxied = Some(proxied);
            admit(&shared, &slots, &waiting, incoming);
        }
        Err(e) => {
            tracing::info!(proxy = %incoming.peer, error = %e, "connection without a valid PROXY header refused");
            refuse(incoming.stream, "A valid PROXY protocol header is required").await;
        }
    }
}

/// Shutdown, bans, the per-address limit and the session cap, in that
/// order; then the session starts, waits in the queue, or is refused.
fn admit(shared: &Arc<Shared>, slots: &Arc<Semaphore>, waiting: &Arc<AtomicUsize>, incoming: Incoming) {
    let peer = incoming.peer;
    if *shared.shutting_down.borrow() {
        tokio::spawn(refuse(incoming.stream, "Service not available, server shutting down"));
        return;
    }
    let key = AddrKey::of(peer.ip());
    if shared.bans.is_banned(key, Instant::now()) {
        tracing::info!(%peer, "connection from a banned address refused");
        tokio::spawn(refuse(
            incoming.stream,
            "Too many failed logins from your address; try again later",
        ));
        return;
    }
    let Some(address_place) = shared.per_address.try_acquire(&key) else {
        tracing::info!(%peer, "too many connections from one address");
        tokio::spawn(refuse(incoming.stream, "Too many connections from your address"));
        return;
    };
    let accepted = Accepted {
        incoming,
        address_place,
    };
    if !*shared.storage_ready.borrow() {
        if !enter_queue(waiting, shared.slots.size()) {
            tokio::spawn(refuse(accepted.incoming.stream, "Too many users, server is full"));
            return;
        }
        tokio::spawn(wait_for_storage(
            Arc::clone(shared),
            Arc::clone(slots),
            Arc::clone(waiting),
            accepted,
        ));
        return;
    }
    start_or_queue(shared, slots, waiting, accepted);
}

/// A session now if a slot is free; otherwise the queue or 421.
fn start_or_queue(shared: &Arc<Shared>, slots: &Arc<Semaphore>, waiting: &Arc<AtomicUsize>, accepted: Accepted) {
    match Arc::clone(slots).try_acquire_owned() {
        Ok(permit) => {
            tokio::spawn(run_session(Arc::clone(shared), accepted, permit));
        }
        Err(_) if shared.config.current().queue_when_full && enter_queue(waiting, shared.slots.size()) => {
            tokio::spawn(wait_in_queue(
                Arc::clone(shared),
                Arc::clone(slots),
                Arc::clone(waiting),
                accepted,
            ));
        }
        Err(_) => {
            tokio::spawn(refuse(accepted.incoming.stream, "Too many users, server is full"));
        }
    }
}

/// A connection that passed the ban and per-address checks.
struct Accepted {
    incoming: Incoming,
    /// Held for the whole life of the connection, queue wait included.
    address_place: CountGuard<AddrKey>,
}

async fn run_session(shared: Arc<Shared>, accepted: Accepted, permit: OwnedSemaphorePermit) {
    let Accepted {
        incoming:
            Incoming {
                stream,
                peer,
                local,
                implicit_tls,
                proxied,
            },
        address_place,
    } = accepted;
    Session::new(Arc::clone(&shared), stream, peer, local, implicit_tls, proxied)
        .run()
        .await;
    shared.slots.release(permit);
    drop(address_place);
}

/// Takes one of the `max` places in the queue, if one is free.
fn enter_queue(waiting: &AtomicUsize, max: usize) -> bool {
    waiting
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1))
        .is_ok()
}

/// The server is full: 120, then the session (220) as soon as a slot frees,
/// or 421 after `max_queue_wait`. Slots go to waiting connections in the
/// order they arrived. A client that hangs up stops waiting. Implicit-TLS
/// connections wait without the 120, which cannot precede the handshake.
async fn wait_in_queue(shared: Arc<Shared>, slots: Arc<Semaphore>, waiting: Arc<AtomicUsize>, mut accepted: Accepted) {
    let permit = queued(&shared, &slots, &mut accepted.incoming).await;
    // Out of the queue, whatever comes next.
    waiting.fetch_sub(1, Ordering::Relaxed);
    match permit {
        Some(Ok(permit)) if !*shared.shutting_down.borrow() => run_session(shared, accepted, permit).await,
        Some(_) => refuse_after_wait(&shared, accepted, "Too many users, server is full").await,
        // The client hung up or could not be told.
        None => {}
    }
}

/// The wait itself: a slot (`Ok`), no slot in time or shutdown (`Err`), or
/// `None` when the client is gone.
async fn queued(
    shared: &Shared,
    slots: &Arc<Semaphore>,
    accepted: &mut Incoming,
) -> Option<Result<OwnedSemaphorePermit, ()>> {
    let wait = shared.config.current().max_queue_wait;
    if !tell_to_wait(accepted, wait, "").await {
        return None;
    }
    let mut shutting_down = shared.shutting_down.clone();
    tokio::select! {
        permit = Arc::clone(slots).acquire_owned() => Some(permit.map_err(|_| ())),
        _ = tokio::time::sleep(wait) => Some(Err(())),
        _ = hung_up(&accepted.stream) => None,
        _ = shutting_down.wait_for(|down| *down) => Some(Err(())),
    }
}

/// 120 "Service ready in N minutes." (N from `wait`, rounded up), with
/// `why` after it; nothing on implicit TLS, where no reply can precede the
/// handshake. False when the client could not be told.
async fn tell_to_wait(incoming: &mut Incoming, wait: Duration, why: &str) -> bool {
    if incoming.implicit_tls {
        return true;
    }
    let minutes = wait.as_secs().div_ceil(60).max(1);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    let reply = Reply::new(
        ReplyCode::ServiceReadyInMinutes,
        format!("Service ready in {minutes} {unit}.{why}"),
    );
    let sent = tokio::time::timeout(Duration::from_secs(5), incoming.stream.write_all(&reply.encode())).await;
    matches!(sent, Ok(Ok(())))
}

/// The server started before its storage answered: 120, then the session
/// (or the queue of a full server) once it does, or 421 after
/// `max_queue_wait`. At most `max_sessions` connections wait, as in the
/// queue (they share its count).
async fn wait_for_storage(
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    mut accepted: Accepted,
) {
    let wait = shared.config.current().max_queue_wait;
    let ready = if tell_to_wait(&mut accepted.incoming, wait, " (the storage is starting)").await {
        let mut ready = shared.storage_ready.clone();
        let mut shutting_down = shared.shutting_down.clone();
        tokio::select! {
            r = ready.wait_for(|ready| *ready) => Some(r.is_ok()),
            _ = tokio::time::sleep(wait) => Some(false),
            _ = hung_up(&accepted.incoming.stream) => None,
            _ = shutting_down.wait_for(|down| *down) => Some(false),
        }
    } else {
        None
    };
    waiting.fetch_sub(1, Ordering::Relaxed);
    match ready {
        Some(true) if !*shared.shutting_down.borrow() => start_or_queue(&shared, &slots, &waiting, accepted),
        Some(_) => refuse_after_wait(&shared, accepted, "Storage not available yet; try again later").await,
        None => {}
    }
}

/// 421 for a connection that waited in vain: the server is shutting down,
/// or `why`.
async fn refuse_after_wait(shared: &Shared, accepted: Accepted, why: &'static str) {
    let text = if *shared.shutting_down.borrow() {
        "Service not available, server shutting down"
    } else {
        why
    };
    refuse(accepted.incoming.stream, text).await;
}

/// Checks the storage until it answers, with growing pauses; then the
/// waiting connections are greeted and new ones admitted at once.
async fn probe_storage(backend: Arc<dyn Backend>, ready: watch::Sender<bool>) {
    let mut pause = Duration::from_millis(250);
    loop {
        tokio::time::sleep(pause).await;
        match tokio::time::timeout(STORAGE_CHECK_TIMEOUT, backend.ready()).await {
            Ok(Ok(())) => {
                tracing::info!("storage answers; greeting clients");
                ready.send_replace(true);
                return;
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "storage not ready yet"),
            Err(_) => tracing::debug!("storage check timed out"),
        }
        pause = (pause * 2).min(STORAGE_CHECK_MAX_PAUSE);
    }
}

/// Resolves when the peer closes the connection (or it fails). Input the
/// client sends ahead is left for the session to read.
async fn hung_up(stream: &TcpStream) {
    let mut b = [0u8; 1];
    match stream.peek(&mut b).await {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}

/// Forgets expired failed-login scores now and then (bounded memory even
/// when nobody new fails).
async fn purge_bans(shared: Arc<Shared>) {
    loop {
        // Asked each time: a reload may change the ban rules.
        tokio::time::sleep(shared.bans.purge_interval()).await;
        shared.bans.purge(Instant::now());
    }
}

/// Every accepted connection gets an answer, never silence.
async fn refuse(mut stream: TcpStream, text: &'static str) {
    let reply = Reply::new(ReplyCode::ServiceNotAvailable, text);
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&reply.encode())).await;
    let _ = stream.shutdown().await;
}
