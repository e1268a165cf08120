//! The TOML configuration file. Unknown keys are errors; every key has a
//! default documented in `docs/configuration.md` (kept in step with the
//! `Default` impls here and in `ftp_server::ServerConfig`).

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ftp_server::{FailedLoginReply, ServerConfig, VirtualHost};
use ftp_storage_fs::{Durability, FsOptions};
use serde::Deserialize;

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
    pub storage: StorageSection,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub tls: TlsSection,
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
    pub allow_foreign_data_address: bool,
    pub transfer_buffer_size: usize,
}

impl Default for ServerSection {
    fn default() -> Self {
        let d = ServerConfig::default();
        ServerSection {
            listen: d.listen,
            greeting: d.greeting,
            passive_ports: None,
            passive_address: None,
            allow_foreign_data_address: d.allow_foreign_data_address,
            transfer_buffer_size: d.transfer_buffer_size,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub max_sessions: usize,
    pub max_line_length: usize,
    pub max_queued_commands: usize,
    pub max_stat_entries: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let d = ServerConfig::default();
        LimitsSection {
            max_sessions: d.max_sessions,
            max_line_length: d.max_line_length,
            max_queued_commands: d.max_queued_commands,
            max_stat_entries: d.max_stat_entries,
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
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// Only "fs" so far.
    pub backend: String,
    pub root: PathBuf,
    /// "none", "file" or "file+directory".
    pub durability: String,
    pub keep_partial_uploads: bool,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            backend: "fs".to_string(),
            root: PathBuf::from("./ftp-root"),
            durability: "file".to_string(),
            keep_partial_uploads: false,
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
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            users_file: None,
            anonymous: false,
            anonymous_home: "/".to_string(),
            failed_login_reply: 530,
            credential_cache_size: 10_000,
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

    /// Checks what serde cannot: value ranges and cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(p) = &self.server.passive_ports {
            parse_port_range(p)?;
        }
        parse_durability(&self.storage.durability)?;
        if self.storage.backend != "fs" {
            return Err(ConfigError::Invalid(format!(
                "storage.backend: unknown backend {:?} (known: \"fs\")",
                self.storage.backend
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
        if self.server.transfer_buffer_size < 4096 || self.server.transfer_buffer_size > 64 << 20 {
            return Err(ConfigError::Invalid(
                "server.transfer_buffer_size must be between 4096 and 67108864".into(),
            ));
        }
        Ok(())
    }

    pub fn server_config(&self) -> Result<ServerConfig, ConfigError> {
        let secs = Duration::from_secs;
        Ok(ServerConfig {
            listen: self.server.listen.clone(),
            greeting: self.server.greeting.clone(),
            passive_ports: self.server.passive_ports.as_deref().map(parse_port_range).transpose()?,
            passive_address: self.server.passive_address,
            max_sessions: self.limits.max_sessions,
            max_line_length: self.limits.max_line_length,
            max_queued_commands: self.limits.max_queued_commands,
            login_timeout: secs(self.timeouts.login),
            idle_timeout: secs(self.timeouts.idle),
            data_connection_timeout: secs(self.timeouts.data_connection),
            transfer_stall_timeout: secs(self.timeouts.transfer_stall),
            shutdown_grace: secs(self.timeouts.shutdown_grace),
            allow_foreign_data_address: self.server.allow_foreign_data_address,
            failed_login_reply: if self.auth.failed_login_reply == 430 {
                FailedLoginReply::InvalidCredentials
            } else {
                FailedLoginReply::NotLoggedIn
            },
            transfer_buffer_size: self.server.transfer_buffer_size,
            virtual_hosts: self
                .virtual_hosts
                .iter()
                .map(|h| VirtualHost {
                    name: h.name.clone(),
                    enabled: h.enabled,
                })
                .collect(),
            max_stat_entries: self.limits.max_stat_entries,
            tls: None,
        })
    }

    pub fn fs_options(&self) -> Result<FsOptions, ConfigError> {
        Ok(FsOptions {
            durability: parse_durability(&self.storage.durability)?,
            keep_partial_uploads: self.storage.keep_partial_uploads,
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
    }

    #[test]
    fn unknown_keys_rejected() {
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
        assert!(toml::from_str::<FileConfig>("[server]\nlisten_on = []").is_err());
        assert!(toml::from_str::<FileConfig>("[timeouts]\nidle = 5\nidel = 6").is_err());
    }

    #[test]
    fn values_checked() {
        let c: FileConfig = toml::from_str("[server]\npassive_ports = \"60000-50000\"").unwrap();
        assert!(c.validate().is_err());
        let c: FileConfig = toml::from_str("[storage]\ndurability = \"sometimes\"").unwrap();
        assert!(c.validate().is_err());
        let c: FileConfig = toml::from_str("[auth]\nfailed_login_reply = 431").unwrap();
        assert!(c.validate().is_err());
        assert_eq!(parse_port_range("50000-50010").unwrap(), 50000..=50010);
    }
}
