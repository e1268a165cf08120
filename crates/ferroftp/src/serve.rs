//! `ferroftp serve`: flags over the config file over the embedded defaults.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ftp_auth::UserDb;
use ftp_proto::FtpPath;
use ftp_server::Server;
use ftp_storage_fs::FsBackend;

use crate::config::{parse_port_range, FileConfig};

/// The account of the embedded default, when no user is configured.
const DEFAULT_USER: &str = "admin";

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Configuration file (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (repeatable; IPv6 as [::1]:2121).
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Storage root directory (created if missing).
    #[arg(long)]
    root: Option<PathBuf>,
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
}

pub fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
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

    let root = args.root.clone().unwrap_or_else(|| file.storage.root.clone());
    std::fs::create_dir_all(&root).map_err(|e| format!("storage root {}: {e}", root.display()))?;
    let backend = Arc::new(FsBackend::new(&root, file.fs_options()?)?);

    let mut users = match &file.auth.users_file {
        Some(path) => UserDb::load_file(path)?,
        None => UserDb::empty(),
    };
    users.set_cache_capacity(file.auth.credential_cache_size);
    for spec in &args.users {
        let (name, password) = spec.split_once(':').ok_or_else(|| format!("--user {spec:?}: expected NAME:PASSWORD"))?;
        users.add_plaintext(name, password)?;
    }
    let mut generated = None;
    if users.is_empty() {
        let password = random_password();
        users.add_plaintext(DEFAULT_USER, &password)?;
        generated = Some(password);
    }
    if args.anonymous || file.auth.anonymous {
        let home = FtpPath::root().resolve(file.auth.anonymous_home.as_bytes()).map_err(|e| format!("auth.anonymous_home: {e}"))?;
        users.enable_anonymous(home);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let server = Server::bind(config, backend, Arc::new(users)).await?;
        let mut out = std::io::stdout().lock();
        for addr in server.local_addrs() {
            writeln!(out, "ferroftp: listening on ftp://{addr} (storage root {})", root.display())?;
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERROFTP_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// 16 characters from a 62-letter alphabet: about 95 bits.
fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    // 256 % 62 leaves a slight bias toward the first letters; at 16
    // characters that costs well under one bit.
    bytes.iter().map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char).collect()
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
