//! The TOML configuration file. Unknown keys are errors; every key has a
//! default documented in `docs/configuration.md` (kept in step with the
//! `Default` impls here and in `ftp_server::ServerConfig`).

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ftp_server::{BanConfig, FailedLoginReply, IpNet, ProxyProtocolConfig, ServerConfig, VirtualHost};
use ftp_storage_fs::{Durability, FsOptions};
use serde::Deserialize;

/// The largest `storage.upload_preallocation` step: more only ties up disk
/// space that a failing upload gives back late.
const MAX_UPLOAD_PREALLOCATION: u64 = 1 << 30;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub timeouts: TimeoutsSection,
    #[serde(default)]
    pub bans: BansSection,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub s3: S3Section,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub tls: TlsSection,
    #[serde(default)]
    pub gssapi: GssapiSection,
    #[serde(default, rename = "virtual_host")]
    pub virtual_hosts: Vec<VirtualHostEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub listen: Vec<SocketAddr>,
    pub greeting: String,
    /// "LO-HI", e.g. "50000-50100".
    pub passive_ports: Option<String>,
    pub passive_address: Option<IpAddr>,
    /// Expect a PROXY protocol header (v1 or v2) on every control
    /// connection; only `trusted_proxies` may then connect.
    pub proxy_protocol: bool,
    /// Addresses or CIDR networks of the load balancers ("10.0.0.1",
    /// "10.0.0.0/24", "2001:db8::/64").
    pub trusted_proxies: Vec<String>,
    pub allow_foreign_data_address: bool,
    /// Names no upload, MKD or RNTO may create ("*.exe", ".ht*"); 553.
    pub denied_names: Vec<String>,
    pub transfer_buffer_size: usize,
    /// Plain binary uploads spliced socket → pipe → file (see
    /// ftp_server::ServerConfig::splice_uploads).
    pub splice_uploads: bool,
    /// Threads for blocking work: file system calls, disk reads and writes,
    /// password hashing. Bounded so a burst of sessions cannot grow the
    /// process by a thread (stack and allocator arena) per session.
    pub blocking_threads: usize,
    /// Threads that each send one large plain download, outside the
    /// runtime's workers (0: none, the workers send everything).
    pub send_threads: usize,
    /// Threads that each receive one large plain upload to local disk,
    /// outside the runtime's workers (0: none, the workers receive all).
    pub receive_threads: usize,
    /// Seconds between hand-backs of freed memory to the system (0: never).
    pub memory_trim_interval: u64,
    /// The Linux scheduling policy of the server's threads.
    pub cpu_scheduling: CpuScheduling,
    /// The operator's Unix socket (`ferroftp admin`); unset: none.
    pub admin_socket: Option<PathBuf>,
}

/// How the kernel schedules the server's threads (Linux; elsewhere the
/// setting is accepted and has no effect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuScheduling {
    /// `SCHED_BATCH`: a woken server thread never preempts the thread that
    /// is running on a CPU; it takes an idle CPU if there is one, else waits
    /// for the running thread's time slice. Same share of CPU as `normal`.
    Batch,
    /// `SCHED_OTHER`, the kernel's default: a woken thread may preempt.
    Normal,
}

impl Default for ServerSection {
    fn default() -> Self {
        let d = ServerConfig::default();
        ServerSection {
            listen: d.listen,
            greeting: d.greeting,
            passive_ports: None,
            passive_address: None,
            proxy_protocol: false,
            trusted_proxies: Vec::new(),
            allow_foreign_data_address: d.allow_foreign_data_address,
            denied_names: Vec::new(),
            transfer_buffer_size: d.transfer_buffer_size,
            splice_uploads: d.splice_uploads,
            blocking_threads: 64,
            send_threads: d.send_threads,
            receive_threads: d.receive_threads,
            memory_trim_interval: 10,
            cpu_scheduling: CpuScheduling::Batch,
            admin_socket: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub max_sessions: usize,
    /// 0: no limit.
    pub max_sessions_per_address: usize,
    /// 0: no limit.
    pub max_sessions_per_user: usize,
    pub queue_when_full: bool,
    /// Seconds.
    pub max_queue_wait: u64,
    /// Seconds; 0: no limit.
    pub max_session_length: u64,
    /// 0: no limit.
    pub max_bad_commands_before_login: usize,
    pub max_line_length: usize,
    pub max_queued_commands: usize,
    pub max_stat_entries: usize,
    /// Bytes: the largest PROXY v2 header taken (v1 lines are at most 107).
    pub max_proxy_header: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let d = ServerConfig::default();
        LimitsSection {
            max_sessions: d.max_sessions,
            max_sessions_per_address: d.max_sessions_per_address,
            max_sessions_per_user: d.max_sessions_per_user,
            queue_when_full: d.queue_when_full,
            max_queue_wait: d.max_queue_wait.as_secs(),
            max_session_length: d.max_session_length.as_secs(),
            max_bad_commands_before_login: d.max_bad_commands_before_login,
            max_line_length: d.max_line_length,
            max_queued_commands: d.max_queued_commands,
            max_stat_entries: d.max_stat_entries,
            max_proxy_header: ftp_server::ProxyProtocolConfig::default().max_v2_header,
        }
    }
}

/// Failed logins per client address: growing delays, then a ban.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BansSection {
    /// Failures within `window` that ban the address; 0 never bans.
    pub max_failures: u32,
    /// Seconds.
    pub window: u64,
    /// Seconds.
    pub ban_time: u64,
    /// Milliseconds before the first failure reply; doubles per failure.
    pub failure_delay_ms: u64,
    /// Milliseconds at most.
    pub max_failure_delay_ms: u64,
    pub max_addresses: usize,
}

impl Default for BansSection {
    fn default() -> Self {
        let d = BanConfig::default();
        BansSection {
            max_failures: d.max_failures,
            window: d.window.as_secs(),
            ban_time: d.ban_time.as_secs(),
            failure_delay_ms: d.failure_delay.as_millis() as u64,
            max_failure_delay_ms: d.max_failure_delay.as_millis() as u64,
            max_addresses: d.max_addresses,
        }
    }
}

/// All in seconds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsSection {
    pub login: u64,
    pub idle: u64,
    pub data_connection: u64,
    pub transfer_stall: u64,
    pub shutdown_grace: u64,
    /// From connect to a complete PROXY header.
    pub proxy_header: u64,
}

impl Default for TimeoutsSection {
    fn default() -> Self {
        let d = ServerConfig::default();
        TimeoutsSection {
            login: d.login_timeout.as_secs(),
            idle: d.idle_timeout.as_secs(),
            data_connection: d.data_connection_timeout.as_secs(),
            transfer_stall: d.transfer_stall_timeout.as_secs(),
            shutdown_grace: d.shutdown_grace.as_secs(),
            proxy_header: ftp_server::ProxyProtocolConfig::default().header_timeout.as_secs(),
        }
    }
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// "fs" (local disk under `root`) or "s3" (the `[s3]` section; `root`
    /// is then not used).
    pub backend: String,
    pub root: PathBuf,
    /// "none", "file" or "file+directory".
    pub durability: String,
    pub keep_partial_uploads: bool,
    /// Local disk: metadata calls on the worker threads (see
    /// ftp_storage_fs::FsOptions::inline_metadata).
    pub inline_metadata: bool,
    /// Local disk: disk space a new upload reserves ahead of its writes, in
    /// steps of this size; 0 turns it off (see
    /// ftp_storage_fs::FsOptions::upload_preallocation).
    pub upload_preallocation: ftp_auth::Size,
    /// Local disk: a new upload writes past the page cache (O_DIRECT) once
    /// it holds this many bytes; 0 turns it off. Unset, it follows the
    /// durability (see ftp_storage_fs::FsOptions::direct_io_after).
    pub upload_direct_io_after: Option<ftp_auth::Size>,
    /// Local disk: seconds a hidden upload file nobody holds must have been
    /// unchanged before a listing or an RMD removes it; 0 never removes
    /// one (see ftp_storage_fs::FsOptions::abandoned_upload_age).
    pub abandoned_upload_age: u64,
    /// Local disk: hidden upload files one listing checks at most, at
    /// least 1 (see ftp_storage_fs::FsOptions::abandoned_upload_checks_per_listing).
    pub abandoned_upload_checks_per_listing: usize,
    /// Defaults for users whose users-file entry does not set them: bytes
    /// and files under the home, largest file (see ftp_auth::quota).
    pub quota_bytes: Option<ftp_auth::Size>,
    pub quota_files: Option<ftp_auth::Size>,
    pub max_file_size: Option<ftp_auth::Size>,
}

/// The S3-compatible store of `storage.backend = "s3"`. Credentials left
/// out come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Section {
    /// The S3 API's URL; unset: AWS S3 itself.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: Option<String>,
    /// Keys of every home start with this.
    pub prefix: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow an http:// endpoint; unset: only for a loopback address.
    pub allow_http: Option<bool>,
    pub virtual_hosted_style: bool,
    /// Bytes per multipart part (5 MiB to 5 GiB).
    pub part_size: usize,
    pub part_concurrency: usize,
    /// Seconds.
    pub request_timeout: u64,
    pub max_retries: usize,
}

impl Default for S3Section {
    fn default() -> Self {
        let d = ftp_storage_s3::S3Options::default();
        S3Section {
            endpoint: None,
            region: d.region,
            bucket: None,
            prefix: String::new(),
            access_key_id: None,
            secret_access_key: None,
            allow_http: None,
            virtual_hosted_style: d.virtual_hosted_style,
            part_size: d.part_size,
            part_concurrency: d.part_concurrency,
            request_timeout: d.request_timeout.as_secs(),
            max_retries: d.max_retries,
        }
    }
}

impl S3Section {
    /// The backend's options, the command line's `--s3-*` flags winning.
    pub fn options(
        &self,
        endpoint: Option<&str>,
        bucket: Option<&str>,
        region: Option<&str>,
    ) -> Result<ftp_storage_s3::S3Options, ConfigError> {
        let endpoint = endpoint.map(str::to_string).or_else(|| self.endpoint.clone());
        let bucket = bucket
            .map(str::to_string)
            .or_else(|| self.bucket.clone())
            .ok_or_else(|| ConfigError::Invalid("s3: no bucket (--s3-bucket or s3.bucket)".into()))?;
        let allow_http = match self.allow_http {
            Some(allow) => allow,
            None => endpoint.as_deref().is_some_and(is_loopback_http),
        };
        if self.request_timeout == 0 {
            return Err(ConfigError::Invalid(
                "s3.request_timeout must be at least 1 second".into(),
            ));
        }
        Ok(ftp_storage_s3::S3Options {
            endpoint,
            region: region.map(str::to_string).unwrap_or_else(|| self.region.clone()),
            bucket,
            prefix: self.prefix.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            allow_http,
            virtual_hosted_style: self.virtual_hosted_style,
            part_size: self.part_size,
            part_concurrency: self.part_concurrency,
            request_timeout: Duration::from_secs(self.request_timeout),
            max_retries: self.max_retries,
            ..ftp_storage_s3::S3Options::default()
        })
    }
}

/// `http://` to 127.0.0.0/8, `[::1]` or localhost: plain HTTP that never
/// leaves the machine.
fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl StorageSection {
    /// The section without the users' quota defaults, the part of it that
    /// only a restart changes (the backend was built from it).
    fn without_quota_defaults(&self) -> StorageSection {
        StorageSection {
            backend: self.backend.clone(),
            root: self.root.clone(),
            durability: self.durability.clone(),
            quota_bytes: None,
            quota_files: None,
            max_file_size: None,
            ..*self
        }
    }
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            backend: "fs".to_string(),
            root: PathBuf::from("./ftp-root"),
            durability: "file".to_string(),
            keep_partial_uploads: false,
            inline_metadata: true,
            upload_preallocation: ftp_auth::Size(FsOptions::default().upload_preallocation),
            upload_direct_io_after: None,
            abandoned_upload_age: FsOptions::default().abandoned_upload_age.map_or(0, |age| age.as_secs()),
            abandoned_upload_checks_per_listing: FsOptions::default().abandoned_upload_checks_per_listing,
            quota_bytes: None,
            quota_files: None,
            max_file_size: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    pub users_file: Option<PathBuf>,
    pub anonymous: bool,
    pub anonymous_home: String,
    /// 530 (default) or 430.
    pub failed_login_reply: u16,
    pub credential_cache_size: usize,
    /// argon2 verifications at once; 0 = one per CPU.
    pub max_concurrent_hashes: usize,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            users_file: None,
            anonymous: false,
            anonymous_home: "/".to_string(),
            failed_login_reply: 530,
            credential_cache_size: 10_000,
            max_concurrent_hashes: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// PEM certificate chain and private key; both or neither.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Generate a certificate at start (when no cert/key are given).
    pub self_signed: bool,
    /// Implicit FTPS listeners (TLS from the first byte).
    pub implicit_listen: Vec<SocketAddr>,
    pub require_for_login: bool,
    pub require_for_data: bool,
    pub require_session_reuse: bool,
    pub allow_ccc: bool,
    /// Ask clients for a certificate; users whose entry lists its
    /// fingerprint log in with it, without a password.
    pub client_certificates: bool,
    /// Hand FTPS downloads and binary uploads to kernel TLS where the
    /// kernel has it.
    pub kernel_offload: bool,
}

impl Default for TlsSection {
    fn default() -> Self {
        let p = ftp_server::tls::TlsPolicy::default();
        TlsSection {
            cert: None,
            key: None,
            self_signed: false,
            implicit_listen: Vec::new(),
            require_for_login: p.require_for_login,
            require_for_data: p.require_for_data,
            require_session_reuse: p.require_session_reuse,
            allow_ccc: p.allow_ccc,
            client_certificates: false,
            kernel_offload: true,
        }
    }
}

/// The largest `gssapi.max_buffer_size`: a protected upload holds one
/// block, and its opened copy, of up to this size.
const MAX_GSS_BUFFER: u32 = 16 << 20;

/// RFC 2228 GSSAPI (Kerberos 5): on when a keytab is given.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GssapiSection {
    /// The keytab holding the service key (`ftp/host@REALM`); AUTH GSSAPI
    /// is answered 504 without one.
    pub keytab: Option<PathBuf>,
    /// The GSS-API library, loaded at start.
    pub library: String,
    /// Once the exchange is done, plain commands get 533.
    pub require_protected_commands: bool,
    /// The largest protection buffer PBSZ agrees to, in bytes.
    pub max_buffer_size: u32,
}

impl Default for GssapiSection {
    fn default() -> Self {
        GssapiSection {
            keytab: None,
            library: ftp_server::gssapi::DEFAULT_LIBRARY.to_string(),
            require_protected_commands: true,
            max_buffer_size: 1 << 20,
        }
    }
}

impl TlsSection {
    pub fn policy(&self) -> ftp_server::tls::TlsPolicy {
        ftp_server::tls::TlsPolicy {
            require_for_login: self.require_for_login,
            require_for_data: self.require_for_data,
            require_session_reuse: self.require_session_reuse,
            allow_ccc: self.allow_ccc,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualHostEntry {
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// A configuration problem, with enough context to fix it.
#[derive(Debug)]
pub enum ConfigError {
    Read(PathBuf, std::io::Error),
    Parse(PathBuf, String),
    Invalid(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Read(p, e) => write!(f, "{}: {e}", p.display()),
            ConfigError::Parse(p, e) => write!(f, "{}: {e}", p.display()),
            ConfigError::Invalid(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ConfigError {}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
        let config: FileConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse(path.to_owned(), e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// `server.denied_names` as patterns.
    fn denied_names(&self) -> Result<Vec<ftp_proto::glob::NamePattern>, ConfigError> {
        self.server
            .denied_names
            .iter()
            .map(|p| {
                ftp_proto::glob::NamePattern::new(p)
                    .map_err(|e| ConfigError::Invalid(format!("server.denied_names: {p:?}: {e}")))
            })
            .collect()
    }

    /// Checks what serde cannot: value ranges and cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.denied_names()?;
        if let Some(p) = &self.server.passive_ports {
            parse_port_range(p)?;
        }
        parse_durability(&self.storage.durability)?;
        if !matches!(self.storage.backend.as_str(), "fs" | "s3") {
            return Err(ConfigError::Invalid(format!(
                "storage.backend: unknown backend {:?} (known: \"fs\", \"s3\")",
                self.storage.backend
            )));
        }
        if !(512..=MAX_GSS_BUFFER).contains(&self.gssapi.max_buffer_size) {
            return Err(ConfigError::Invalid(format!(
                "gssapi.max_buffer_size: 512 bytes (a wrapped block's overhead is about 60) to {MAX_GSS_BUFFER} \
                 (each protected upload may hold a block of this size)"
            )));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(ConfigError::Invalid("tls.cert and tls.key go together".into()));
        }
        let tls_on = self.tls.cert.is_some() || self.tls.self_signed;
        if !tls_on && (!self.tls.implicit_listen.is_empty() || self.tls.require_for_login || self.tls.require_for_data)
        {
            return Err(ConfigError::Invalid(
                "tls: implicit_listen and require_* need a certificate (tls.cert and tls.key, or tls.self_signed)"
                    .into(),
            ));
        }
        if !matches!(self.auth.failed_login_reply, 430 | 530) {
            return Err(ConfigError::Invalid(
                "auth.failed_login_reply must be 530 or 430".into(),
            ));
        }
        if self.limits.max_sessions == 0 || self.limits.max_line_length < 64 {
            return Err(ConfigError::Invalid(
                "limits: max_sessions must be at least 1 and max_line_length at least 64".into(),
            ));
        }
        if self.limits.queue_when_full && self.limits.max_queue_wait == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_queue_wait must be at least 1 second when limits.queue_when_full is on".into(),
            ));
        }
        if self.bans.max_failures > 0 && (self.bans.window == 0 || self.bans.ban_time == 0) {
            return Err(ConfigError::Invalid(
                "bans: window and ban_time must be at least 1 second (max_failures = 0 turns bans off)".into(),
            ));
        }
        if self.bans.failure_delay_ms > self.bans.max_failure_delay_ms || self.bans.max_failure_delay_ms > 60_000 {
            return Err(ConfigError::Invalid(
                "bans: failure_delay_ms <= max_failure_delay_ms <= 60000 is required".into(),
            ));
        }
        if self.bans.max_addresses == 0 {
            return Err(ConfigError::Invalid("bans.max_addresses must be at least 1".into()));
        }
        if self.storage.abandoned_upload_checks_per_listing == 0 {
            return Err(ConfigError::Invalid(
                "storage.abandoned_upload_checks_per_listing must be at least 1 \
                 (abandoned_upload_age = 0 turns the sweep off)"
                    .into(),
            ));
        }
        if self.storage.upload_preallocation.0 > MAX_UPLOAD_PREALLOCATION {
            return Err(ConfigError::Invalid(
                "storage.upload_preallocation must be at most 1 GiB (0 turns it off)".into(),
            ));
        }
        if self.server.transfer_buffer_size < 4096 || self.server.transfer_buffer_size > 64 << 20 {
            return Err(ConfigError::Invalid(
                "server.transfer_buffer_size must be between 4096 and 67108864".into(),
            ));
        }
        let trusted = self.trusted_proxies()?;
        if self.server.proxy_protocol && trusted.is_empty() {
            return Err(ConfigError::Invalid(
                "server.proxy_protocol needs server.trusted_proxies: no one else may send the header".into(),
            ));
        }
        // The fixed 16 bytes plus TCP over IPv6 at least; the length field's
        // own limit at most.
        if !(16 + 36..=16 + 65535).contains(&self.limits.max_proxy_header) {
            return Err(ConfigError::Invalid(
                "limits.max_proxy_header must be between 52 and 65551".into(),
            ));
        }
        if self.timeouts.proxy_header == 0 {
            return Err(ConfigError::Invalid(
                "timeouts.proxy_header must be at least 1 second".into(),
            ));
        }
        if self.server.send_threads > 1024 {
            return Err(ConfigError::Invalid(
                "server.send_threads must be between 0 and 1024".into(),
            ));
        }
        if self.server.receive_threads > 1024 {
            return Err(ConfigError::Invalid(
                "server.receive_threads must be between 0 and 1024".into(),
            ));
        }
        if self.server.blocking_threads == 0 || self.server.blocking_threads > 1024 {
            return Err(ConfigError::Invalid(
                "server.blocking_threads must be between 1 and 1024".into(),
            ));
        }
        Ok(())
    }

    fn trusted_proxies(&self) -> Result<Vec<IpNet>, ConfigError> {
        self.server
            .trusted_proxies
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|e| ConfigError::Invalid(format!("server.trusted_proxies: {e}")))
            })
            .collect()
    }

    /// The settings of `new` that differ from `self` and take effect only
    /// at a restart: the start built something from them (the storage,
    /// the runtime's threads, where the accounts come from, the certificate
    /// provider, the Kerberos credentials). The server configuration's own
    /// ones (listeners, transfer threads) are named by
    /// `ftp_server::ConfigReloader::apply`.
    pub fn restart_only_changes(&self, new: &FileConfig) -> Vec<&'static str> {
        let (a, b) = (self, new);
        [
            // The quota defaults are live (`quota_*`, `max_file_size`).
            (
                "storage",
                a.storage.without_quota_defaults() != b.storage.without_quota_defaults(),
            ),
            ("s3", a.s3 != b.s3),
            (
                "server.blocking_threads",
                a.server.blocking_threads != b.server.blocking_threads,
            ),
            (
                "server.cpu_scheduling",
                a.server.cpu_scheduling != b.server.cpu_scheduling,
            ),
            (
                "server.memory_trim_interval",
                a.server.memory_trim_interval != b.server.memory_trim_interval,
            ),
            ("auth.users_file", a.auth.users_file != b.auth.users_file),
            ("auth.anonymous", a.auth.anonymous != b.auth.anonymous),
            ("auth.anonymous_home", a.auth.anonymous_home != b.auth.anonymous_home),
            (
                "auth.credential_cache_size",
                a.auth.credential_cache_size != b.auth.credential_cache_size,
            ),
            (
                "auth.max_concurrent_hashes",
                a.auth.max_concurrent_hashes != b.auth.max_concurrent_hashes,
            ),
            ("tls.cert", a.tls.cert != b.tls.cert),
            ("tls.key", a.tls.key != b.tls.key),
            ("tls.self_signed", a.tls.self_signed != b.tls.self_signed),
            (
                "tls.client_certificates",
                a.tls.client_certificates != b.tls.client_certificates,
            ),
            ("gssapi.keytab", a.gssapi.keytab != b.gssapi.keytab),
            ("gssapi.library", a.gssapi.library != b.gssapi.library),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
    }

    pub fn server_config(&self) -> Result<ServerConfig, ConfigError> {
        let secs = Duration::from_secs;
        let proxy_protocol = match self.server.proxy_protocol {
            false => None,
            true => Some(ProxyProtocolConfig {
                trusted_proxies: self.trusted_proxies()?,
                header_timeout: secs(self.timeouts.proxy_header),
                max_v2_header: self.limits.max_proxy_header,
            }),
        };
        Ok(ServerConfig {
            listen: self.server.listen.clone(),
            greeting: self.server.greeting.clone(),
            passive_ports: self.server.passive_ports.as_deref().map(parse_port_range).transpose()?,
            passive_address: self.server.passive_address,
            proxy_protocol,
            max_sessions: self.limits.max_sessions,
            max_sessions_per_address: self.limits.max_sessions_per_address,
            max_sessions_per_user: self.limits.max_sessions_per_user,
            queue_when_full: self.limits.queue_when_full,
            max_queue_wait: secs(self.limits.max_queue_wait),
            max_session_length: secs(self.limits.max_session_length),
            max_bad_commands_before_login: self.limits.max_bad_commands_before_login,
            max_line_length: self.limits.max_line_length,
            max_queued_commands: self.limits.max_queued_commands,
            login_timeout: secs(self.timeouts.login),
            idle_timeout: secs(self.timeouts.idle),
            data_connection_timeout: secs(self.timeouts.data_connection),
            transfer_stall_timeout: secs(self.timeouts.transfer_stall),
            shutdown_grace: secs(self.timeouts.shutdown_grace),
            allow_foreign_data_address: self.server.allow_foreign_data_address,
            denied_names: self.denied_names()?,
            bans: BanConfig {
                max_failures: self.bans.max_failures,
                window: secs(self.bans.window),
                ban_time: secs(self.bans.ban_time),
                failure_delay: Duration::from_millis(self.bans.failure_delay_ms),
                max_failure_delay: Duration::from_millis(self.bans.max_failure_delay_ms),
                max_addresses: self.bans.max_addresses,
            },
            failed_login_reply: if self.auth.failed_login_reply == 430 {
                FailedLoginReply::InvalidCredentials
            } else {
                FailedLoginReply::NotLoggedIn
            },
            transfer_buffer_size: self.server.transfer_buffer_size,
            splice_uploads: self.server.splice_uploads,
            send_threads: self.server.send_threads,
            receive_threads: self.server.receive_threads,
            virtual_hosts: self
                .virtual_hosts
                .iter()
                .map(|h| VirtualHost {
                    name: h.name.clone(),
                    enabled: h.enabled,
                })
                .collect(),
            max_stat_entries: self.limits.max_stat_entries,
            admin_socket: self.server.admin_socket.clone(),
            tls: None,
            gssapi: None,
            default_quota: ftp_auth::QuotaLimits {
                bytes: self.storage.quota_bytes.map(|s| s.0),
                files: self.storage.quota_files.map(|s| s.0),
                max_file_size: self.storage.max_file_size.map(|s| s.0),
            },
        })
    }

    pub fn fs_options(&self) -> Result<FsOptions, ConfigError> {
        Ok(FsOptions {
            durability: parse_durability(&self.storage.durability)?,
            keep_partial_uploads: self.storage.keep_partial_uploads,
            inline_metadata: self.storage.inline_metadata,
            upload_preallocation: self.storage.upload_preallocation.0,
            upload_direct_io_after: self.storage.upload_direct_io_after.map(|size| size.0),
            abandoned_upload_age: (self.storage.abandoned_upload_age > 0)
                .then(|| Duration::from_secs(self.storage.abandoned_upload_age)),
            abandoned_upload_checks_per_listing: self.storage.abandoned_upload_checks_per_listing,
            ..FsOptions::default()
        })
    }
}

pub fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, ConfigError> {
    let bad = || {
        ConfigError::Invalid(format!(
            "passive port range {s:?}: expected LO-HI with 1024 <= LO <= HI <= 65535"
        ))
    };
    let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo < 1024 || lo > hi {
        return Err(bad());
    }
    Ok(lo..=hi)
}

fn parse_durability(s: &str) -> Result<Durability, ConfigError> {
    match s {
        "none" => Ok(Durability::None),
        "file" => Ok(Durability::File),
        "file+directory" => Ok(Durability::FileAndDirectory),
        other => Err(ConfigError::Invalid(format!(
            "storage.durability: {other:?} is not one of \"none\", \"file\", \"file+directory\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c: FileConfig = toml::from_str("").unwrap();
        c.validate().unwrap();
        let s = c.server_config().unwrap();
        let d = ServerConfig::default();
        assert_eq!(s.listen, d.listen);
        assert_eq!(s.idle_timeout, d.idle_timeout);
        assert_eq!(s.max_sessions, d.max_sessions);
        assert_eq!(s.max_sessions_per_address, d.max_sessions_per_address);
        assert_eq!(s.max_sessions_per_user, d.max_sessions_per_user);
        assert_eq!(s.queue_when_full, d.queue_when_full);
        assert_eq!(s.max_queue_wait, d.max_queue_wait);
        assert_eq!(s.max_session_length, d.max_session_length);
        assert_eq!(s.max_bad_commands_before_login, d.max_bad_commands_before_login);
        assert_eq!(s.bans, d.bans);
    }

    /// The example in docs/configuration.md uses only keys that exist, with
    /// values that pass validation.
    #[test]
    fn documented_example_parses() {
        let doc = include_str!("../../../docs/configuration.md");
        let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let len = doc[start..].find("```").expect("end of the toml block");
        let c: FileConfig = toml::from_str(&doc[start..start + len]).expect("the documented example parses");
        c.validate().unwrap();
    }

    #[test]
    fn security_settings_read() {
        let c: FileConfig = toml::from_str(
            "[limits]\nmax_sessions_per_address = 3\nmax_sessions_per_user = 2\nqueue_when_full = true\n\
             max_queue_wait = 5\nmax_session_length = 0\nmax_bad_commands_before_login = 4\n\
             [bans]\nmax_failures = 3\nwindow = 7\nban_time = 9\nfailure_delay_ms = 100\n\
             max_failure_delay_ms = 400\nmax_addresses = 11\n",
        )
        .unwrap();
        c.validate().unwrap();
        let s = c.server_config().unwrap();
        assert_eq!(s.max_sessions_per_address, 3);
        assert_eq!(s.max_sessions_per_user, 2);
        assert!(s.queue_when_full);
        assert_eq!(s.max_queue_wait, Duration::from_secs(5));
        assert!(s.max_session_length.is_zero());
        assert_eq!(s.max_bad_commands_before_login, 4);
        assert_eq!(s.bans.max_failures, 3);
        assert_eq!(s.bans.window, Duration::from_secs(7));
        assert_eq!(s.bans.ban_time, Duration::from_secs(9));
        assert_eq!(s.bans.failure_delay, Duration::from_millis(100));
        assert_eq!(s.bans.max_failure_delay, Duration::from_millis(400));
        assert_eq!(s.bans.max_addresses, 11);
        assert!(toml::from_str::<FileConfig>("[bans]\nmax_failure = 3").is_err());
        for bad in [
            "[bans]\nfailure_delay_ms = 900\nmax_failure_delay_ms = 800",
            "[bans]\nmax_failure_delay_ms = 60001",
            "[bans]\nwindow = 0",
            "[bans]\nmax_addresses = 0",
            "[limits]\nqueue_when_full = true\nmax_queue_wait = 0",
        ] {
            let c: FileConfig = toml::from_str(bad).unwrap();
            assert!(c.validate().is_err(), "{bad}");
        }
        let c: FileConfig = toml::from_str("[bans]\nmax_failures = 0\nwindow = 0\nban_time = 0").unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_rejected() {
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
        assert!(toml::from_str::<FileConfig>("[server]\nlisten_on = []").is_err());
        assert!(toml::from_str::<FileConfig>("[timeouts]\nidle = 5\nidel = 6").is_err());
    }

    #[test]
    fn s3_section() {
        let c: FileConfig = toml::from_str(
            "[storage]\nbackend = \"s3\"\n[s3]\nendpoint = \"http://127.0.0.1:3900\"\nbucket = \"b\"\nregion = \"garage\"\nprefix = \"ftp\"",
        )
        .unwrap();
        c.validate().unwrap();
        let o = c.s3.options(None, None, None).unwrap();
        assert_eq!(
            (o.bucket.as_str(), o.region.as_str(), o.prefix.as_str()),
            ("b", "garage", "ftp")
        );
        assert!(o.allow_http, "loopback http is allowed by default");
        let o =
            c.s3.options(Some("http://s3.example.com"), Some("other"), None)
                .unwrap();
        assert_eq!(o.bucket, "other");
        assert!(!o.allow_http, "http elsewhere needs s3.allow_http");
        assert!(is_loopback_http("http://[::1]:9000/"));
        assert!(is_loopback_http("http://localhost:9000"));
        assert!(!is_loopback_http("https://127.0.0.1:9000"));
        assert!(
            FileConfig::default().s3.options(None, None, None).is_err(),
            "a bucket is required"
        );
        assert!(toml::from_str::<FileConfig>("[s3]\nbuckett = \"b\"").is_err());
        let c: FileConfig = toml::from_str("[storage]\nbackend = \"ftp\"").unwrap();
        assert!(c.validate().is_err());
    }

    #[test]
    fn proxy_protocol_settings() {
        let d = FileConfig::default().server_config().unwrap();
        assert!(d.proxy_protocol.is_none(), "off by default");
        let c: FileConfig = toml::from_str(
            "[server]\nproxy_protocol = true\ntrusted_proxies = [\"10.0.0.1\", \"10.0.1.0/24\", \"2001:db8::/64\"]\n\
             [timeouts]\nproxy_header = 3\n[limits]\nmax_proxy_header = 1024\n",
        )
        .unwrap();
        c.validate().unwrap();
        let p = c.server_config().unwrap().proxy_protocol.unwrap();
        assert!(p.trusts("10.0.0.1".parse().unwrap()));
        assert!(p.trusts("10.0.1.77".parse().unwrap()));
        assert!(p.trusts("::ffff:10.0.1.77".parse().unwrap()));
        assert!(p.trusts("2001:db8::5".parse().unwrap()));
        assert!(!p.trusts("10.0.0.2".parse().unwrap()));
        assert_eq!(p.header_timeout, Duration::from_secs(3));
        assert_eq!(p.max_v2_header, 1024);
        let defaults = ProxyProtocolConfig::default();
        let c: FileConfig =
            toml::from_str("[server]\nproxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]").unwrap();
        let p = c.server_config().unwrap().proxy_protocol.unwrap();
        assert_eq!(
            (p.header_timeout, p.max_v2_header),
            (defaults.header_timeout, defaults.max_v2_header)
        );
        for bad in [
            "[server]\nproxy_protocol = true",
            "[server]\nproxy_protocol = true\ntrusted_proxies = [\"10.0.0.1/24\"]",
            "[server]\ntrusted_proxies = [\"proxy.example.com\"]",
            "[server]\nproxy_protocol = true\ntrusted_proxies = [\"10.0.0.1\"]\n[timeouts]\nproxy_header = 0",
            "[limits]\nmax_proxy_header = 51",
            "[limits]\nmax_proxy_header = 65552",
        ] {
            let c: FileConfig = toml::from_str(bad).unwrap();
            assert!(c.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn values_checked() {
        let c: FileConfig = toml::from_str("[server]\npassive_ports = \"60000-50000\"").unwrap();
        assert!(c.validate().is_err());
        let c: FileConfig = toml::from_str("[storage]\ndurability = \"sometimes\"").unwrap();
        assert!(c.validate().is_err());
        let c: FileConfig = toml::from_str("[auth]\nfailed_login_reply = 431").unwrap();
        assert!(c.validate().is_err());
        let c: FileConfig = toml::from_str("[server]\nsend_threads = 1025").unwrap();
        assert!(c.validate().is_err());
        let c: FileConfig = toml::from_str("[server]\nsend_threads = 0").unwrap();
        assert_eq!(c.server_config().unwrap().send_threads, 0);
        let c: FileConfig = toml::from_str("[server]\nreceive_threads = 1025").unwrap();
        assert!(c.validate().is_err());
        let c: FileConfig = toml::from_str("[server]\nreceive_threads = 0").unwrap();
        assert_eq!(c.server_config().unwrap().receive_threads, 0);
        assert_eq!(parse_port_range("50000-50010").unwrap(), 50000..=50010);
    }

    #[test]
    fn denied_names_are_checked_patterns() {
        let c: FileConfig = toml::from_str("[server]\ndenied_names = [\"*.exe\", \".ht*\"]").unwrap();
        c.validate().unwrap();
        let names = c.server_config().unwrap().denied_names;
        assert!(names[0].matches("A.EXE") && names[1].matches(".htpasswd"));
        let c: FileConfig = toml::from_str("[server]\ndenied_names = [\"bin/*\"]").unwrap();
        assert!(c.validate().is_err(), "a pattern over a path");
        let c: FileConfig = toml::from_str("[server]\ndenied_names = [\"\"]").unwrap();
        assert!(c.validate().is_err(), "an empty pattern");
    }

    #[test]
    fn gssapi_section() {
        let d = FileConfig::default().gssapi;
        assert_eq!(d.keytab, None, "off unless a keytab is given");
        assert_eq!(d.library, "libgssapi_krb5.so.2");
        assert!(d.require_protected_commands);
        assert_eq!(d.max_buffer_size, 1 << 20);
        let c: FileConfig = toml::from_str(
            "[gssapi]\nkeytab = \"/etc/k.keytab\"\nrequire_protected_commands = false\nmax_buffer_size = 65536",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.gssapi.keytab.as_deref(), Some(Path::new("/etc/k.keytab")));
        assert!(!c.gssapi.require_protected_commands);
        assert_eq!(c.gssapi.max_buffer_size, 65536);
        let c: FileConfig = toml::from_str("[gssapi]\nmax_buffer_size = 100").unwrap();
        assert!(c.validate().is_err(), "below the wrap overhead");
        let c: FileConfig = toml::from_str("[gssapi]\nmax_buffer_size = 16777217").unwrap();
        assert!(c.validate().is_err(), "over 16 MiB");
        assert!(
            toml::from_str::<FileConfig>("[gssapi]\nrealm = \"X\"").is_err(),
            "unknown key"
        );
    }

    #[test]
    fn storage_quota_defaults() {
        let d = FileConfig::default().server_config().unwrap().default_quota;
        assert!(d.is_unlimited(), "no quota unless configured");
        let c: FileConfig = toml::from_str(
            "[storage]
quota_bytes = \"10 GiB\"
quota_files = 5000
max_file_size = \"unlimited\"",
        )
        .unwrap();
        let q = c.server_config().unwrap().default_quota;
        assert_eq!(q.bytes, Some(10 << 30));
        assert_eq!(q.files, Some(5000));
        assert_eq!(q.max_file_size, Some(u64::MAX));
        assert!(toml::from_str::<FileConfig>(
            "[storage]
quota_bytes = \"lots\""
        )
        .is_err());
        assert!(toml::from_str::<FileConfig>(
            "[storage]
quota_bytes = -1"
        )
        .is_err());
    }

    /// The local-disk options a config text gives, after validation.
    fn fs_options_of(text: &str) -> Result<FsOptions, ConfigError> {
        let c: FileConfig = toml::from_str(text).unwrap();
        c.validate().and_then(|()| c.fs_options())
    }

    #[test]
    fn upload_preallocation_is_a_size_up_to_one_gib() {
        let fs = |text: &str| fs_options_of(text).map(|o| o.upload_preallocation);
        assert_eq!(fs("").unwrap(), 8 << 20, "the default");
        assert_eq!(fs("[storage]\nupload_preallocation = 0").unwrap(), 0, "off");
        assert_eq!(fs("[storage]\nupload_preallocation = \"64 MiB\"").unwrap(), 64 << 20);
        assert!(fs("[storage]\nupload_preallocation = \"2 GiB\"").is_err());
        assert!(fs("[storage]\nupload_preallocation = \"unlimited\"").is_err());
    }

    #[test]
    fn abandoned_upload_age_is_seconds_and_zero_turns_it_off() {
        let age = |text: &str| fs_options_of(text).map(|o| o.abandoned_upload_age);
        assert_eq!(age("").unwrap(), Some(Duration::from_secs(600)), "the default");
        assert_eq!(age("[storage]\nabandoned_upload_age = 0").unwrap(), None, "off");
        assert_eq!(
            age("[storage]\nabandoned_upload_age = 3600").unwrap(),
            Some(Duration::from_secs(3600))
        );
        assert!(toml::from_str::<FileConfig>("[storage]\nabandoned_upload_age = -1").is_err());
        let checks = |text: &str| fs_options_of(text).map(|o| o.abandoned_upload_checks_per_listing);
        assert_eq!(checks("").unwrap(), 100, "default");
        assert_eq!(checks("[storage]\nabandoned_upload_checks_per_listing = 5").unwrap(), 5);
        assert!(checks("[storage]\nabandoned_upload_checks_per_listing = 0").is_err());
    }

    #[test]
    fn upload_direct_io_after_is_a_size() {
        let fs = |text: &str| fs_options_of(text).map(|o| o.direct_io_after());
        assert_eq!(fs("").unwrap(), 8 << 20, "the default, with durability \"file\"");
        assert_eq!(fs("[storage]\ndurability = \"file+directory\"").unwrap(), 8 << 20);
        assert_eq!(
            fs("[storage]\ndurability = \"none\"").unwrap(),
            0,
            "buffered without fsync"
        );
        assert_eq!(
            fs("[storage]\ndurability = \"none\"\nupload_direct_io_after = \"8 MiB\"").unwrap(),
            8 << 20,
            "set, it holds whatever the durability"
        );
        assert_eq!(fs("[storage]\nupload_direct_io_after = 0").unwrap(), 0, "off");
        assert_eq!(fs("[storage]\nupload_direct_io_after = \"1 GiB\"").unwrap(), 1 << 30);
        assert_eq!(
            fs("[storage]\nupload_direct_io_after = \"unlimited\"").unwrap(),
            u64::MAX,
            "never reached"
        );
    }
}
