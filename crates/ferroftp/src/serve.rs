//! `ferroftp serve`: flags over the config file over the embedded defaults.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ftp_auth::UserDb;
use ftp_proto::FtpPath;
use ftp_server::tls::{CertSource, TlsProvider};
use ftp_server::{ConfigReloader, Server, ServerConfig, TlsConfig};
use ftp_storage_fs::FsBackend;

use crate::config::{parse_port_range, CpuScheduling, FileConfig};

/// The account of the embedded default, when no user is configured.
const DEFAULT_USER: &str = "admin";

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Configuration file (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (repeatable; IPv6 as `[::1]:2121`).
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Storage root directory (created if missing; not used with
    /// `--storage s3`).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Storage backend: fs (local disk under the root) or s3 (an
    /// S3-compatible object store; see the `[s3]` configuration section).
    #[arg(long, value_name = "fs|s3", value_parser = ["fs", "s3"])]
    storage: Option<String>,
    /// The S3 API's URL (http:// is allowed for loopback addresses).
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// The bucket holding every home.
    #[arg(long, value_name = "NAME")]
    s3_bucket: Option<String>,
    /// The region requests are signed for.
    #[arg(long, value_name = "REGION")]
    s3_region: Option<String>,
    /// A user with full rights in the root (repeatable).
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    users: Vec<String>,
    /// Allow read-only anonymous login (USER anonymous or ftp).
    #[arg(long)]
    anonymous: bool,
    /// Passive data port range.
    #[arg(long, value_name = "LO-HI")]
    passive_ports: Option<String>,
    /// Maximum sessions at once.
    #[arg(long, value_name = "N")]
    max_sessions: Option<usize>,
    /// Seconds a logged-in session may stay idle.
    #[arg(long, value_name = "SECONDS")]
    idle_timeout: Option<u64>,
    /// TLS certificate chain (PEM) for FTPS; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Offer FTPS with a certificate generated at start (its SHA-256
    /// fingerprint is printed).
    #[arg(long, conflicts_with = "tls_cert")]
    tls_self_signed: bool,
    /// Also listen for implicit FTPS (TLS from the first byte) here.
    #[arg(long = "implicit-tls-listen", value_name = "ADDR:PORT")]
    implicit_tls_listen: Vec<SocketAddr>,
    /// Accept PROT P data connections that do not resume the control
    /// connection's TLS session (for clients that cannot, like Python's
    /// ftplib).
    #[arg(long)]
    no_tls_session_reuse: bool,
    /// Offer RFC 2228 GSSAPI (Kerberos: AUTH GSSAPI, curl --krb) with the
    /// service key in this keytab.
    #[arg(long, value_name = "FILE")]
    gssapi_keytab: Option<PathBuf>,
}

impl ServeArgs {
    /// `ferroftp serve` with nothing else: the embedded default.
    fn is_bare(&self) -> bool {
        self.config.is_none()
            && self.listen.is_empty()
            && self.root.is_none()
            && self.users.is_empty()
            && !self.anonymous
    }
}

/// GSSAPI when a keytab is given: the library is loaded and the keytab's
/// keys acquired now, so a missing library or an unreadable keytab stops
/// the start rather than the first client's AUTH.
fn gss_config(
    args: &ServeArgs,
    file: &FileConfig,
) -> Result<Option<ftp_server::GssConfig>, Box<dyn std::error::Error>> {
    let Some(keytab) = args.gssapi_keytab.as_ref().or(file.gssapi.keytab.as_ref()) else {
        return Ok(None);
    };
    let acceptor = ftp_server::gssapi::Acceptor::from_keytab(&file.gssapi.library, keytab)
        .map_err(|e| format!("gssapi keytab {}: {e}", keytab.display()))?;
    Ok(Some(ftp_server::GssConfig {
        acceptor,
        require_protected_commands: file.gssapi.require_protected_commands,
        max_buffer_size: file.gssapi.max_buffer_size,
    }))
}

pub fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    // Until the reload handler is in place (hashing `--user` passwords and
    // loading the users file come first), a SIGHUP is ignored rather than
    // ending the server, its default.
    // SAFETY: setting a signal's disposition to SIG_IGN; no handler runs.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let mut config = server_config(&args, &file)?;
    config.tls = tls_config(&args, &file)?;
    config.gssapi = gss_config(&args, &file)?;

    let (backend, storage_name) = storage_backend(&args, &file)?;

    let mut accounts = AccountSources::new(&args, &file)?;
    let mut users = accounts.build(None)?;
    if users.is_empty() {
        let password = random_password();
        users.add_plaintext(DEFAULT_USER, &password)?;
        accounts.generated = Some(password);
    }
    // Printed once the listeners are up.
    let generated = accounts.generated.clone();
    // With a users file, SIGHUP re-reads it (see `reload_on_sighup`).
    let (auth, reloadable): (Arc<dyn ftp_auth::Authenticator>, _) = if accounts.users_file.is_some() {
        let reloadable = ftp_auth::ReloadableUsers::new(users);
        (reloadable.clone(), Some((reloadable, Arc::new(accounts))))
    } else {
        (Arc::new(users), None)
    };

    let tls = config.tls.clone();
    let memory_trim_interval =
        (file.server.memory_trim_interval > 0).then(|| Duration::from_secs(file.server.memory_trim_interval));
    keep_large_buffers_out_of_the_heap();
    apply_cpu_scheduling(file.server.cpu_scheduling);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(file.server.blocking_threads)
        .build()?;
    runtime.block_on(async move {
        if let Some(every) = memory_trim_interval {
            tokio::spawn(return_freed_memory(every));
        }
        let server = Server::bind(config, backend, auth).await?;
        // Always (SIGHUP stays ignored until here): its default action
        // would end the server.
        let reload = Reload {
            provider: tls.as_ref().map(|t| Arc::clone(&t.provider)),
            accounts: reloadable,
            config: args.config.clone().map(|path| ConfigSource {
                path,
                started: file,
                reloader: server.reloader(),
                args,
            }),
        };
        // The handler is in place before the listening lines are printed,
        // so a SIGHUP sent as soon as they appear is not lost.
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(hup) => {
                tokio::spawn(reload_on_sighup(hup, reload));
            }
            Err(e) => tracing::error!(error = %e, "no SIGHUP handler: nothing is reloaded"),
        }
        let mut out = std::io::stdout().lock();
        for addr in server.local_addrs() {
            writeln!(out, "ferroftp: listening on ftp://{addr} ({storage_name})")?;
        }
        for addr in server.implicit_tls_addrs() {
            writeln!(out, "ferroftp: listening on ftps://{addr} (implicit TLS)")?;
        }
        if let Some(tls) = &tls {
            writeln!(
                out,
                "ferroftp: FTPS certificate SHA-256 fingerprint {}",
                tls.provider.fingerprint()
            )?;
        }
        if let Some(password) = generated {
            writeln!(out, "ferroftp: user {DEFAULT_USER}, password {password}")?;
        }
        out.flush()?;
        drop(out);
        server.run_until(shutdown_signal()).await?;
        Ok(())
    })
}

/// The storage backend from the flags, else the file, and how to name it
/// in the start-up lines ("storage root DIR" or "storage s3://BUCKET/PREFIX
/// at ENDPOINT").
fn storage_backend(
    args: &ServeArgs,
    file: &FileConfig,
) -> Result<(Arc<dyn ftp_storage::Backend>, String), Box<dyn std::error::Error>> {
    let kind = args.storage.as_deref().unwrap_or(&file.storage.backend);
    if kind == "s3" {
        let options = file.s3.options(
            args.s3_endpoint.as_deref(),
            args.s3_bucket.as_deref(),
            args.s3_region.as_deref(),
        )?;
        let name = format!(
            "storage s3://{}/{} at {}",
            options.bucket,
            options.prefix,
            options.endpoint.as_deref().unwrap_or("AWS")
        );
        return Ok((Arc::new(ftp_storage_s3::S3Backend::new(options)?), name));
    }
    if args.s3_endpoint.is_some() || args.s3_bucket.is_some() || args.s3_region.is_some() {
        return Err(
            "--s3-endpoint, --s3-bucket and --s3-region need --storage s3 (or storage.backend = \"s3\")".into(),
        );
    }
    let root = args.root.clone().unwrap_or_else(|| file.storage.root.clone());
    std::fs::create_dir_all(&root).map_err(|e| format!("storage root {}: {e}", root.display()))?;
    let backend: Arc<dyn ftp_storage::Backend> = Arc::new(FsBackend::new(&root, file.fs_options()?)?);
    Ok((backend, format!("storage root {}", root.display())))
}

/// The server configuration from the file and the flags (flags win),
/// without TLS and Kerberos: those hold what the start made (a certificate
/// provider, Kerberos credentials), added by `tls_config` and `gss_config`
/// at start and kept by a reload (`reloaded_tls`, `reloaded_gss`).
fn server_config(args: &ServeArgs, file: &FileConfig) -> Result<ServerConfig, Box<dyn std::error::Error>> {
    let mut config = file.server_config()?;
    if !args.listen.is_empty() {
        config.listen = args.listen.clone();
    }
    if let Some(p) = &args.passive_ports {
        config.passive_ports = Some(parse_port_range(p)?);
    }
    if let Some(n) = args.max_sessions {
        config.max_sessions = n.max(1);
    }
    if let Some(s) = args.idle_timeout {
        config.idle_timeout = Duration::from_secs(s);
    }
    Ok(config)
}

/// FTPS from the flags, else the file; the embedded default offers
/// explicit FTPS with a self-signed certificate.
fn tls_config(args: &ServeArgs, file: &FileConfig) -> Result<Option<TlsConfig>, Box<dyn std::error::Error>> {
    let Some(source) = cert_source(args, file) else {
        if !args.implicit_tls_listen.is_empty() {
            return Err("--implicit-tls-listen needs a certificate: --tls-cert/--tls-key or --tls-self-signed".into());
        }
        return Ok(None);
    };
    let provider = Arc::new(TlsProvider::new(source, file.tls.client_certificates)?);
    Ok(Some(tls_settings(args, file, provider)))
}

/// Where the certificate comes from, if FTPS is on.
fn cert_source(args: &ServeArgs, file: &FileConfig) -> Option<CertSource> {
    match (&args.tls_cert, &args.tls_key, &file.tls.cert, &file.tls.key) {
        (Some(cert), Some(key), _, _) | (None, None, Some(cert), Some(key)) => Some(CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ if args.tls_self_signed || file.tls.self_signed || args.is_bare() => Some(CertSource::SelfSigned {
            names: vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()],
        }),
        _ => None,
    }
}

fn tls_settings(args: &ServeArgs, file: &FileConfig, provider: Arc<TlsProvider>) -> TlsConfig {
    let mut policy = file.tls.policy();
    if args.no_tls_session_reuse {
        policy.require_session_reuse = false;
    }
    let mut implicit_listen = file.tls.implicit_listen.clone();
    if !args.implicit_tls_listen.is_empty() {
        implicit_listen = args.implicit_tls_listen.clone();
    }
    TlsConfig {
        provider,
        policy,
        implicit_listen,
        kernel_offload: file.tls.kernel_offload,
    }
}

/// A reloaded file's TLS settings around the running certificate provider
/// (which re-reads its own files on SIGHUP). `None` when either side has
/// no FTPS: turning it on or off needs a restart (`ConfigReloader::apply`
/// keeps the running setting; `restart` is told when it is off now).
fn reloaded_tls(
    args: &ServeArgs,
    file: &FileConfig,
    running: Option<&TlsConfig>,
    restart: &mut Vec<&'static str>,
) -> Option<TlsConfig> {
    let wanted = cert_source(args, file).is_some();
    match running {
        Some(running) if wanted => Some(tls_settings(args, file, Arc::clone(&running.provider))),
        None if wanted => {
            restart.push("tls (FTPS on)");
            None
        }
        _ => None,
    }
}

/// As `reloaded_tls`, for Kerberos: the running credentials, the file's
/// rules.
fn reloaded_gss(
    args: &ServeArgs,
    file: &FileConfig,
    running: Option<&ftp_server::GssConfig>,
    restart: &mut Vec<&'static str>,
) -> Option<ftp_server::GssConfig> {
    let wanted = args.gssapi_keytab.is_some() || file.gssapi.keytab.is_some();
    match running {
        Some(running) if wanted => Some(ftp_server::GssConfig {
            acceptor: Arc::clone(&running.acceptor),
            require_protected_commands: file.gssapi.require_protected_commands,
            max_buffer_size: file.gssapi.max_buffer_size,
        }),
        None if wanted => {
            restart.push("gssapi (Kerberos on)");
            None
        }
        _ => None,
    }
}

/// Where the accounts come from, at start and at each SIGHUP: the users
/// file, the `--user` accounts, the generated default account (when there
/// is no other), and anonymous login.
struct AccountSources {
    users_file: Option<PathBuf>,
    cache_capacity: usize,
    max_concurrent_hashes: usize,
    /// `--user NAME:PASSWORD`, hashed again at each build (argv holds them
    /// anyway).
    command_line: Vec<(String, String)>,
    /// The password of the generated default account, printed at start.
    generated: Option<String>,
    /// Accounts the users file held at the last build that was taken.
    file_accounts: AtomicUsize,
    anonymous_home: Option<FtpPath>,
}

impl AccountSources {
    fn new(args: &ServeArgs, file: &FileConfig) -> Result<AccountSources, Box<dyn std::error::Error>> {
        let command_line = args
            .users
            .iter()
            .map(|spec| {
                spec.split_once(':')
                    .map(|(name, password)| (name.to_string(), password.to_string()))
                    .ok_or_else(|| format!("--user {spec:?}: expected NAME:PASSWORD"))
            })
            .collect::<Result<_, _>>()?;
        let anonymous_home = if args.anonymous || file.auth.anonymous {
            let home = FtpPath::root()
                .resolve(file.auth.anonymous_home.as_bytes())
                .map_err(|e| format!("auth.anonymous_home: {e}"))?;
            Some(home)
        } else {
            None
        };
        Ok(AccountSources {
            users_file: file.auth.users_file.clone(),
            cache_capacity: file.auth.credential_cache_size,
            max_concurrent_hashes: file.auth.max_concurrent_hashes,
            command_line,
            generated: None,
            file_accounts: AtomicUsize::new(0),
            anonymous_home,
        })
    }

    /// A new database from the sources as they are now (blocking: reads
    /// the file, hashes the `--user` passwords). On a reload `previous` is
    /// the database it replaces: the `--user` and generated accounts are
    /// taken from it as they are (hashing them again would give them new
    /// salts, so new credentials stamps, and log their sessions out), and
    /// so is its limit on argon2 runs at once.
    fn build(&self, previous: Option<&UserDb>) -> Result<UserDb, ftp_auth::UsersFileError> {
        let mut users = match &self.users_file {
            Some(path) => UserDb::load_file(path)?,
            None => UserDb::empty(),
        };
        let from_file = users.len();
        if let (Some(_), Some(path), 0) = (previous, &self.users_file, from_file) {
            if self.file_accounts.load(Ordering::Relaxed) > 0 {
                // Caught empty (truncated by a writer that does not
                // rename): taken, it would log everyone out.
                return Err(ftp_auth::UsersFileError::NoAccounts { path: path.clone() });
            }
        }
        users.set_cache_capacity(self.cache_capacity);
        match previous {
            Some(previous) => users.share_hashing_with(previous),
            None => users.set_max_concurrent_hashes(self.max_concurrent_hashes),
        }
        for (name, password) in &self.command_line {
            if !previous.is_some_and(|p| users.copy_account_from(p, name)) {
                users.add_plaintext(name, password)?;
            }
        }
        if let (true, Some(password)) = (users.is_empty(), &self.generated) {
            if !previous.is_some_and(|p| users.copy_account_from(p, DEFAULT_USER)) {
                users.add_plaintext(DEFAULT_USER, password)?;
            }
        }
        if let Some(home) = &self.anonymous_home {
            users.enable_anonymous(home.clone());
        }
        self.file_accounts.store(from_file, Ordering::Relaxed);
        Ok(users)
    }
}

/// SIGHUP re-reads the certificate files and the users file without a
/// restart. A file that fails to load leaves what was there.
/// What a SIGHUP re-reads.
struct Reload {
    provider: Option<Arc<TlsProvider>>,
    accounts: Option<(Arc<ftp_auth::ReloadableUsers>, Arc<AccountSources>)>,
    config: Option<ConfigSource>,
}

/// The configuration file, as the server started with it, and the flags
/// that override it.
struct ConfigSource {
    path: PathBuf,
    started: FileConfig,
    args: ServeArgs,
    reloader: ConfigReloader,
}

impl ConfigSource {
    /// Reads the file again and puts it in force for new sessions; a file
    /// that does not load or check changes nothing.
    fn reload(&self) {
        let file = match FileConfig::load(&self.path) {
            Ok(file) => file,
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; keeping the running one");
                return;
            }
        };
        let mut new = match server_config(&self.args, &file) {
            Ok(config) => config,
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; keeping the running one");
                return;
            }
        };
        let running = self.reloader.current();
        // Always against the file the server started with: until a
        // restart, every reload says again what waits for it.
        let mut restart = self.started.restart_only_changes(&file);
        new.tls = reloaded_tls(&self.args, &file, running.tls.as_ref(), &mut restart);
        new.gssapi = reloaded_gss(&self.args, &file, running.gssapi.as_ref(), &mut restart);
        restart.extend(self.reloader.apply(new));
        tracing::info!(file = %self.path.display(), "configuration reloaded for new sessions");
        if !restart.is_empty() {
            tracing::warn!(settings = ?restart, "changed settings that take effect only at a restart were kept");
        }
    }
}

async fn reload_on_sighup(mut hup: tokio::signal::unix::Signal, reload: Reload) {
    let Reload {
        provider,
        accounts,
        config,
    } = reload;
    while hup.recv().await.is_some() {
        if provider.is_none() && accounts.is_none() && config.is_none() {
            tracing::info!("SIGHUP: no configuration file, certificate files or users file to re-read");
        }
        if let Some(config) = &config {
            config.reload();
        }
        if let Some(provider) = &provider {
            match provider.reload() {
                Ok(()) => tracing::info!(fingerprint = %provider.fingerprint(), "TLS certificate reloaded"),
                Err(e) => tracing::error!(error = %e, "TLS certificate reload failed; keeping the old one"),
            }
        }
        if let Some((users, sources)) = &accounts {
            let sources = Arc::clone(sources);
            let previous = users.current();
            match tokio::task::spawn_blocking(move || sources.build(Some(&previous))).await {
                Ok(Ok(db)) => {
                    let count = db.len();
                    users.replace(db);
                    tracing::info!(users = count, "users file reloaded");
                }
                Ok(Err(e)) => tracing::error!(error = %e, "users file reload failed; keeping the old accounts"),
                Err(e) => tracing::error!(error = %e, "users file reload panicked; keeping the old accounts"),
            }
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERROFTP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// 16 characters from a 62-letter alphabet: about 95 bits.
fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    // 256 % 62 leaves a slight bias toward the first letters; at 16
    // characters that costs well under one bit.
    bytes
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

/// Transfer buffers (256 KiB by default, two per transfer) are above
/// glibc's mmap threshold, but glibc raises that threshold each time such a
/// block is freed, so after the first transfers they come from the heap
/// arenas instead. Hundreds of sessions then leave the arenas fragmented and
/// the server's memory never shrinks back after a busy minute. Setting the
/// threshold explicitly turns the adjustment off: large buffers stay
/// mmapped and go back to the system the moment a transfer ends. Their
/// pages are zero-filled by the kernel, so a small transfer touches only
/// what it uses.
fn keep_large_buffers_out_of_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before
    // the runtime starts any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Sets the scheduling policy of this thread before the runtime starts, so
/// every thread the server creates inherits it.
///
/// Why `SCHED_BATCH` by default: with the kernel's default policy a server
/// thread woken by a client on the same CPU preempts that client between
/// its send and its next read. Debian 12's curl 7.88 then finds the `229`
/// already there on its zero-timeout poll right after `EPSV` and sleeps a
/// full second before the data connection (README, "Known client quirk");
/// measured with 300 small files: 1 file/s under `SCHED_OTHER`, about 1,500
/// under `SCHED_BATCH` with no stall. It also leaves a client copying a
/// download undisturbed on its CPU. The server's share of CPU is the same
/// (policy, not priority); what it gives up is preempting a busy CPU on
/// wakeup, i.e. at most one time slice (milliseconds) of reply latency on a
/// machine with no idle CPU.
fn apply_cpu_scheduling(policy: CpuScheduling) {
    #[cfg(target_os = "linux")]
    {
        let (code, name) = match policy {
            CpuScheduling::Batch => (libc::SCHED_BATCH, "SCHED_BATCH"),
            CpuScheduling::Normal => (libc::SCHED_OTHER, "SCHED_OTHER"),
        };
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param for the call's duration;
        // pid 0 is the calling thread. Moving between the two non-realtime
        // policies needs no privilege.
        if unsafe { libc::sched_setscheduler(0, code, &param) } != 0 {
            eprintln!(
                "ferroftp: warning: server.cpu_scheduling: cannot set {name} ({}); keeping the current policy",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = policy;
}

/// glibc keeps what finished sessions freed in its per-thread arenas, free
/// but resident: after a busy minute of 500 sessions that is tens of MiB
/// the process holds while it uses a few. `malloc_trim` hands the free
/// pages of every arena back to the system; done every few seconds it
/// costs a walk over the free lists and keeps the server's footprint
/// where its live data is.
async fn return_freed_memory(every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free memory; it takes the
        // allocator's own locks.
        let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
    }
}
