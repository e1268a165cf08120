//! The ferroftp binary: `serve`, `check-config`, `user add`, `sweep` and
//! `admin`.
//!
//! Layout: `config` reads and checks the TOML file; `serve` builds the
//! storage, the users and the server from the file and the flags, and runs
//! it; this file holds the command line.

mod config;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ferroftp", version, about = "An FTP and FTPS server")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

// `serve` takes many flags; the enum is built once per process.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Commands {
    /// Run the server. With no options: local disk under ./ftp-root,
    /// 127.0.0.1:2121, and one account whose password is printed at start.
    Serve(serve::ServeArgs),
    /// Validate a configuration file and exit.
    CheckConfig { file: PathBuf },
    /// Manage a users file.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Remove the hidden files of uploads a killed server left anywhere
    /// under the local-disk storage root, in one walk of the tree (a
    /// listing removes only those of the directory it reads). Safe beside
    /// running servers: a file still locked by its upload, or changed
    /// within the age, stays.
    Sweep(SweepArgs),
    /// Talk to a running server through its admin socket
    /// (`server.admin_socket`): `sessions` lists them (ID PEER USER
    /// SECONDS), `kick ID` ends one, `kick-user NAME` ends every session
    /// of a user (231 after a running transfer's reply).
    Admin(AdminArgs),
}

#[derive(clap::Args)]
struct AdminArgs {
    /// Configuration file: its `server.admin_socket`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The admin socket (default: the file's `server.admin_socket`).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// sessions | kick ID | kick-user NAME
    #[arg(required = true, num_args = 1..=2)]
    command: Vec<String>,
}

#[derive(clap::Args)]
struct SweepArgs {
    /// Configuration file: its `storage.root` and `storage.abandoned_upload_age`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Storage root (default: the file's `storage.root`, else ./ftp-root).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Seconds a hidden upload file must have been unchanged, at least 1
    /// (default: the file's `storage.abandoned_upload_age`, 600).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    min_age: Option<u64>,
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user with an argon2 password hash to a users file (created if
    /// missing). The password is read from standard input unless given.
    Add {
        /// The users file.
        #[arg(long)]
        file: PathBuf,
        name: String,
        #[arg(long)]
        password: Option<String>,
        /// Home directory below the storage root.
        #[arg(long)]
        home: Option<String>,
        /// Comma-separated permissions (list,read,write,append,delete,
        /// rename,mkdir,rmdir,chmod or all).
        #[arg(long, value_delimiter = ',')]
        permissions: Option<Vec<String>>,
        #[command(flatten)]
        quota: QuotaArgs,
        #[command(flatten)]
        tls: UserTlsArgs,
    },
}

/// A user's own TLS rules (unset: the server's `[tls]` policy), and the
/// client certificates and Kerberos principals that log the user in
/// without a password.
#[derive(clap::Args)]
struct UserTlsArgs {
    /// TLS before USER for this user (true/false), whatever the server's
    /// `tls.require_for_login`.
    #[arg(long)]
    require_tls_for_login: Option<bool>,
    /// PROT P for this user's data connections (true/false), whatever the
    /// server's `tls.require_for_data`.
    #[arg(long)]
    require_tls_for_data: Option<bool>,
    /// SHA-256 fingerprint of a client certificate (AA:BB:...) that logs
    /// this user in (repeatable; needs `tls.client_certificates = true`).
    #[arg(long = "client-certificate")]
    client_certificates: Vec<String>,
    /// Kerberos principal (alice@EXAMPLE.COM) that logs this user in after
    /// AUTH GSSAPI (repeatable; needs a `[gssapi]` keytab).
    #[arg(long = "kerberos-principal")]
    kerberos_principals: Vec<String>,
}

/// A user's storage limits: bytes with an optional unit ("512K", "10 MiB",
/// "2G"), a plain count for files, or "unlimited". Unset limits take the
/// server's defaults (`storage.quota_bytes` and friends).
#[derive(clap::Args)]
struct QuotaArgs {
    /// Bytes of files the user may keep under the home directory.
    #[arg(long, value_parser = parse_size_arg)]
    quota_bytes: Option<ftp_auth::Size>,
    /// Number of files the user may keep under the home directory.
    #[arg(long, value_parser = parse_size_arg)]
    quota_files: Option<ftp_auth::Size>,
    /// The largest file the user may upload.
    #[arg(long, value_parser = parse_size_arg)]
    max_file_size: Option<ftp_auth::Size>,
}

fn parse_size_arg(text: &str) -> Result<ftp_auth::Size, String> {
    ftp_auth::parse_size(text).map(ftp_auth::Size)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Commands::Serve(args) => serve::run(args),
        Commands::CheckConfig { file } => config::FileConfig::load(&file)
            .map(|_| println!("{}: ok", file.display()))
            .map_err(Into::into),
        Commands::User {
            action:
                UserAction::Add {
                    file,
                    name,
                    password,
                    home,
                    permissions,
                    quota,
                    tls,
                },
        } => user_add(file, name, password, home, permissions, quota, tls),
        Commands::Sweep(args) => sweep(args),
        Commands::Admin(args) => admin(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferroftp: {e}");
            ExitCode::FAILURE
        }
    }
}

fn admin(args: AdminArgs) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::{BufRead, BufReader, Write};
    let socket = match (args.socket, &args.config) {
        (Some(socket), _) => socket,
        (None, Some(path)) => config::FileConfig::load(path)?
            .server
            .admin_socket
            .ok_or_else(|| format!("{}: no server.admin_socket", path.display()))?,
        (None, None) => return Err("give --socket PATH or --config FILE".into()),
    };
    let mut stream = std::os::unix::net::UnixStream::connect(&socket)
        .map_err(|e| format!("admin socket {}: {e}", socket.display()))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    writeln!(stream, "{}", args.command.join(" "))?;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        if let Some(rest) = line.strip_prefix("OK") {
            eprintln!("ferroftp:{rest}");
            return Ok(());
        }
        if let Some(rest) = line.strip_prefix("ERR ") {
            return Err(rest.to_string().into());
        }
        println!("{line}");
    }
    Err("the server closed the admin connection without an answer".into())
}

fn sweep(args: SweepArgs) -> Result<(), Box<dyn std::error::Error>> {
    let file = match &args.config {
        Some(path) => config::FileConfig::load(path)?,
        None => config::FileConfig::default(),
    };
    if args.root.is_none() && file.storage.backend != "fs" {
        return Err(format!(
            "storage.backend is {:?}: sweep is for local disk (on S3, a lifecycle rule that aborts \
             incomplete multipart uploads removes what a killed server left)",
            file.storage.backend
        )
        .into());
    }
    let root = args.root.unwrap_or_else(|| file.storage.root.clone());
    let age = match args
        .min_age
        .or(Some(file.storage.abandoned_upload_age).filter(|&a| a > 0))
    {
        Some(age) => age,
        None => return Err("storage.abandoned_upload_age = 0 (never remove): give --min-age".into()),
    };
    raise_open_files_limit();
    let report = ftp_storage_fs::sweep_tree(&root, std::time::Duration::from_secs(age))
        .map_err(|e| format!("storage root {}: {e}", root.display()))?;
    println!(
        "swept {}: {} directories read, {} abandoned uploads removed ({} bytes), {} hidden upload files kept \
         (in use, changed within {age} s, or not removable)",
        root.display(),
        report.directories,
        report.removed,
        report.removed_bytes,
        report.kept
    );
    for (path, error) in &report.first_failures {
        eprintln!("ferroftp: {}: {error}", path.display());
    }
    if report.failures > 0 {
        return Err(format!(
            "{} directories could not be read or abandoned uploads removed",
            report.failures
        )
        .into());
    }
    Ok(())
}

/// The walk keeps a descriptor per directory level: as many as the hard
/// limit allows, for deep trees.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct they are
    // given, which lives across both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn user_add(
    file: PathBuf,
    name: String,
    password: Option<String>,
    home: Option<String>,
    permissions: Option<Vec<String>>,
    quota: QuotaArgs,
    tls: UserTlsArgs,
) -> Result<(), Box<dyn std::error::Error>> {
    let password = match password {
        Some(p) => p,
        None => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if password.is_empty() {
        return Err("the password must not be empty".into());
    }
    if let Some(p) = &permissions {
        ftp_auth::PermissionSet::from_names(p.iter()).map_err(|e| format!("unknown permission {:?}", e.0))?;
    }
    let hash = ftp_auth::hash_password(&password)?;
    let mut entry = ftp_auth::UserEntry::new(name.clone(), hash);
    entry.home = home;
    entry.permissions = permissions;
    entry.quota_bytes = quota.quota_bytes;
    entry.quota_files = quota.quota_files;
    entry.max_file_size = quota.max_file_size;
    entry.require_tls_for_login = tls.require_tls_for_login;
    entry.require_tls_for_data = tls.require_tls_for_data;
    entry.client_certificates = tls
        .client_certificates
        .iter()
        .map(|c| {
            ftp_auth::normalize_fingerprint(c)
                .ok_or_else(|| format!("--client-certificate {c:?} is not a SHA-256 fingerprint"))
        })
        .collect::<Result<_, _>>()?;
    entry.kerberos_principals = tls.kerberos_principals;
    ftp_auth::add_user_to_file(&file, entry)?;
    println!("added user {name} to {}", file.display());
    Ok(())
}
