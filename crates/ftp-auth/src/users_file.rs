//! The users file: a TOML list of accounts, read at startup and added to by
//! `ferroftp user add`.
//!
//! # Format
//!
//! One `[[user]]` table per account:
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."   # argon2 PHC string; plaintext is refused
//! home = "/alice"            # optional, default "/": directory below the storage root
//! permissions = ["all"]      # optional, default ["all"]
//! account = "proj-7"         # optional: the ACCT value this user must give
//! account_required = "login" # optional: "none" (default), "login" or "store"
//! disabled = false           # optional, default false
//! quota_bytes = "10 GiB"     # optional: bytes of files under home (default: the server's)
//! quota_files = 100000       # optional: number of files under home (default: the server's)
//! max_file_size = "2G"       # optional: largest file (default: the server's)
//! ```
//!
//! - `name`: the USER argument, matched exactly (case-sensitive). Not
//!   empty, no control characters, unique in the file. A user named
//!   `anonymous` or `ftp` takes that name over from anonymous login.
//! - `password`: an argon2 (argon2id recommended; argon2i and argon2d are
//!   accepted) hash in PHC string form, as written by `ferroftp user add`.
//!   Anything else, in particular a plaintext password, is refused when the
//!   file is loaded. Parameters above m=1048576 (1 GiB) or t=64 are refused
//!   too, since every login would allocate that much.
//! - `home`: the user's root directory, a path below the server's storage
//!   root (`..` cannot climb above it).
//! - `permissions`: a list of `list`, `read`, `write`, `append`, `delete`,
//!   `rename`, `mkdir`, `rmdir`, `chmod`, or `all`. An empty list allows
//!   logging in and moving around only.
//! - `account`, `account_required`: with `"login"` the password is answered
//!   332 and the user must send `ACCT <account>` to finish logging in; with
//!   `"store"` the login succeeds but uploads are refused (532) until ACCT
//!   is given. `"login"` and `"store"` need `account`.
//! - `disabled = true`: the entry stays in the file but cannot log in (the
//!   server answers 530, as for a wrong password).
//! - `quota_bytes`, `quota_files`, `max_file_size`: storage limits (see
//!   [`crate::quota`] for how sizes are written); unset keys take the
//!   server's defaults, `"unlimited"` lifts a default for this user.
//!
//! Unknown keys, anywhere, are errors, as are duplicate names; every error
//! names the file and the entry.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ftp_proto::{FtpPath, PathError};
use serde::{Deserialize, Serialize};

use crate::hash::{self, HashProblem};
use crate::permissions::{PermissionSet, UnknownPermission};
use crate::quota::{QuotaLimits, Size};
use crate::{AccountRequirement, AuthError, TlsRules, User};

/// One `[[user]]` table, as written in the file. Values are checked when
/// the file is loaded (or the entry added), not when this is built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub name: String,
    /// An argon2 PHC string, e.g. from [`crate::hash_password`].
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    /// `None` means every permission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "is_default_requirement")]
    pub account_required: AccountRequirement,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<Size>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_files: Option<Size>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_size: Option<Size>,
    /// Overrides `tls.require_for_login` for this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_tls_for_login: Option<bool>,
    /// Overrides `tls.require_for_data` for this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_tls_for_data: Option<bool>,
    /// SHA-256 fingerprints (`AA:BB:...`, 32 bytes) of client certificates
    /// that log this user in without a password.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_certificates: Vec<String>,
    /// Kerberos principals (`alice@EXAMPLE.COM`, compared exactly) that
    /// log this user in without a password after AUTH GSSAPI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kerberos_principals: Vec<String>,
}

impl UserEntry {
    /// An entry with every optional key left at its default: home `/`,
    /// all permissions, no account, enabled.
    pub fn new(name: impl Into<String>, password_hash: impl Into<String>) -> Self {
        UserEntry {
            name: name.into(),
            password: password_hash.into(),
            home: None,
            permissions: None,
            account: None,
            account_required: AccountRequirement::None,
            disabled: false,
            quota_bytes: None,
            quota_files: None,
            max_file_size: None,
            require_tls_for_login: None,
            require_tls_for_data: None,
            client_certificates: Vec::new(),
            kerberos_principals: Vec::new(),
        }
    }
}

fn is_default_requirement(r: &AccountRequirement) -> bool {
    *r == AccountRequirement::None
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<UserEntry>,
}

/// The whole file, for writing.
#[derive(Serialize)]
struct UsersFileOut<'a> {
    user: &'a [UserEntry],
}

/// What is wrong with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryProblem {
    EmptyName,
    ControlCharacterInName,
    DuplicateName,
    Password(HashProblem),
    Home(PathError),
    Permission(UnknownPermission),
    /// `account_required` is `"login"` or `"store"` but there is no
    /// `account`.
    AccountRequiredWithoutAccount,
    /// `account` is empty or has control characters (no ACCT could match).
    InvalidAccount,
    /// A `client_certificates` value is not a SHA-256 fingerprint.
    BadCertificateFingerprint(String),
    /// A `kerberos_principals` value is not `name@REALM`.
    BadPrincipal(String),
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryProblem::EmptyName => f.write_str("name is empty"),
            EntryProblem::ControlCharacterInName => f.write_str("name has a control character"),
            EntryProblem::DuplicateName => f.write_str("a user with this name already exists"),
            EntryProblem::Password(p) => p.fmt(f),
            EntryProblem::Home(e) => write!(f, "home is not a valid path: {e}"),
            EntryProblem::Permission(e) => e.fmt(f),
            EntryProblem::AccountRequiredWithoutAccount => {
                f.write_str("account_required is \"login\" or \"store\" but no account is set")
            }
            EntryProblem::InvalidAccount => f.write_str("account is empty or has a control character"),
            EntryProblem::BadCertificateFingerprint(v) => write!(
                f,
                "client_certificates: {v:?} is not a SHA-256 fingerprint (32 hex bytes separated by colons)"
            ),
            EntryProblem::BadPrincipal(v) => {
                write!(f, "kerberos_principals: {v:?} is not a principal (name@REALM)")
            }
        }
    }
}

/// Why a users file (or a `--user` account) could not be loaded or written.
#[derive(Debug)]
pub enum UsersFileError {
    Read {
        path: PathBuf,
        source: io::Error,
    },
    Write {
        path: PathBuf,
        source: io::Error,
    },
    /// Not TOML, or not the expected shape (unknown key, wrong type...).
    /// `message` carries the parser's line and column.
    Syntax {
        path: PathBuf,
        message: String,
    },
    /// One entry is unusable. `path` is `None` for accounts given on the
    /// command line; `index` is the 1-based position of the `[[user]]`
    /// table in the file, when the entry came from one.
    Entry {
        path: Option<PathBuf>,
        index: Option<usize>,
        user: String,
        problem: EntryProblem,
    },
    /// Hashing a password given on the command line failed.
    Hash(AuthError),
    /// A reload found no accounts in a file that had some: refused, as a
    /// file caught mid-write would log everyone out.
    NoAccounts {
        path: PathBuf,
    },
}

impl fmt::Display for UsersFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsersFileError::Read { path, source } => {
                write!(f, "cannot read users file {}: {source}", path.display())
            }
            UsersFileError::Write { path, source } => {
                write!(f, "cannot write users file {}: {source}", path.display())
            }
            UsersFileError::Syntax { path, message } => {
                write!(f, "users file {}: {}", path.display(), message.trim_end())
            }
            UsersFileError::Entry {
                path,
                index,
                user,
                problem,
            } => {
                if let Some(path) = path {
                    write!(f, "users file {}: ", path.display())?;
                }
                if let Some(index) = index {
                    write!(f, "[[user]] #{index} ")?;
                }
                write!(f, "user {user:?}: {problem}")
            }
            UsersFileError::Hash(e) => write!(f, "cannot hash password: {e}"),
            UsersFileError::NoAccounts { path } => write!(
                f,
                "{}: no accounts in a file that had some; kept the old ones (restart to remove them all)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for UsersFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UsersFileError::Read { source, .. } | UsersFileError::Write { source, .. } => Some(source),
            UsersFileError::Hash(e) => Some(e),
            UsersFileError::Syntax { .. } | UsersFileError::Entry { .. } | UsersFileError::NoAccounts { .. } => None,
        }
    }
}

/// A checked entry, ready for the user database.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) user: User,
    /// The argon2 PHC string; shared with the blocking verification task.
    pub(crate) phc: Arc<str>,
    pub(crate) disabled: bool,
    /// Client-certificate fingerprints, normalised to `AA:BB:...`.
    pub(crate) certificates: Vec<String>,
    pub(crate) principals: Vec<String>,
}

pub(crate) fn check_name(name: &str) -> Result<(), EntryProblem> {
    if name.is_empty() {
        return Err(EntryProblem::EmptyName);
    }
    if name.chars().any(char::is_control) {
        return Err(EntryProblem::ControlCharacterInName);
    }
    Ok(())
}

/// Checks every value of `entry` and builds its account.
pub(crate) fn check_entry(entry: &UserEntry) -> Result<Account, EntryProblem> {
    check_name(&entry.name)?;
    hash::check_phc(&entry.password).map_err(EntryProblem::Password)?;
    let home = match &entry.home {
        Some(home) => FtpPath::root().resolve(home.as_bytes()).map_err(EntryProblem::Home)?,
        None => FtpPath::root(),
    };
    let permissions = match &entry.permissions {
        Some(names) => PermissionSet::from_names(names).map_err(EntryProblem::Permission)?,
        None => PermissionSet::all(),
    };
    if let Some(account) = &entry.account {
        if account.is_empty() || account.chars().any(char::is_control) {
            return Err(EntryProblem::InvalidAccount);
        }
    } else if entry.account_required != AccountRequirement::None {
        return Err(EntryProblem::AccountRequiredWithoutAccount);
    }
    let certificates = entry
        .client_certificates
        .iter()
        .map(|c| normalize_fingerprint(c).ok_or_else(|| EntryProblem::BadCertificateFingerprint(c.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(bad) = entry.kerberos_principals.iter().find(|p| !is_principal(p)) {
        return Err(EntryProblem::BadPrincipal(bad.clone()));
    }
    Ok(Account {
        user: User {
            name: entry.name.clone(),
            home,
            permissions,
            account: entry.account.clone(),
            account_requirement: entry.account_required,
            anonymous: false,
            quota: QuotaLimits {
                bytes: entry.quota_bytes.map(|s| s.0),
                files: entry.quota_files.map(|s| s.0),
                max_file_size: entry.max_file_size.map(|s| s.0),
            },
            tls: TlsRules {
                login: entry.require_tls_for_login,
                data: entry.require_tls_for_data,
            },
            credentials: credentials_stamp(entry, &certificates),
        },
        phc: Arc::from(entry.password.as_str()),
        disabled: entry.disabled,
        certificates,
        principals: entry.kerberos_principals.clone(),
    })
}

/// What [`User::credentials`] compares: the password hash, the client
/// certificates and the principals (compared within one process only, so
/// std's hasher does).
fn credentials_stamp(entry: &UserEntry, certificates: &[String]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    entry.password.hash(&mut h);
    certificates.hash(&mut h);
    entry.kerberos_principals.hash(&mut h);
    h.finish()
}

/// `name@REALM`: both parts present, no spaces or control characters.
fn is_principal(text: &str) -> bool {
    let Some((name, realm)) = text.rsplit_once('@') else {
        return false;
    };
    !name.is_empty() && !realm.is_empty() && !text.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// `AA:BB:...` (upper case, 32 bytes) from a fingerprint written with or
/// without colons, in either case; `None` if it is not 32 hex bytes.
pub fn normalize_fingerprint(text: &str) -> Option<String> {
    let hex: String = text.trim().chars().filter(|&c| c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let upper = hex.to_ascii_uppercase();
    Some(
        upper
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).expect("ASCII"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// Parses the file's text into entries, checking only the TOML shape.
fn parse_entries(text: &str, path: &Path) -> Result<Vec<UserEntry>, UsersFileError> {
    toml::from_str::<UsersFile>(text)
        .map(|file| file.user)
        .map_err(|e| UsersFileError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Parses and checks the whole file: shape, every entry, unique names.
pub(crate) fn load_text(text: &str, path: &Path) -> Result<(Vec<UserEntry>, Vec<Account>), UsersFileError> {
    let entries = parse_entries(text, path)?;
    let mut accounts: Vec<Account> = Vec::with_capacity(entries.len());
    let mut seen = std::collections::HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let fail = |problem| UsersFileError::Entry {
            path: Some(path.to_path_buf()),
            index: Some(i + 1),
            user: entry.name.clone(),
            problem,
        };
        let account = check_entry(entry).map_err(fail)?;
        if !seen.insert(entry.name.as_str()) {
            return Err(fail(EntryProblem::DuplicateName));
        }
        accounts.push(account);
    }
    Ok((entries, accounts))
}

pub(crate) fn read_file(path: &Path) -> Result<String, UsersFileError> {
    fs::read_to_string(path).map_err(|source| UsersFileError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Written at the top of a users file that `add_user_to_file` creates.
const NEW_FILE_HEADER: &str = "# ferroftp users: one [[user]] table per account (see docs/configuration.md).\n";

/// Adds `entry` to the users file at `path` (for `ferroftp user add`).
///
/// Creates the file if it does not exist. Refuses an entry that does not
/// check out (see the module docs), a name already in the file, and a file
/// that does not load as it is (so a broken file is never made worse). The
/// existing text, comments included, is kept and the new `[[user]]` table
/// appended; only a file whose layout cannot take an appended table (an
/// inline `user = [...]` array) is rewritten in the standard layout.
///
/// The new file replaces the old one atomically (written to a temporary
/// file in the same directory, synced, then renamed over it) and has mode
/// 0600, since it holds password hashes. Two concurrent runs can lose one
/// of the additions (last rename wins); run them one at a time.
pub fn add_user_to_file(path: &Path, entry: UserEntry) -> Result<(), UsersFileError> {
    let existing = match fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(UsersFileError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut entries = match &existing {
        Some(text) => load_text(text, path)?.0,
        None => Vec::new(),
    };
    let fail = |problem| UsersFileError::Entry {
        path: Some(path.to_path_buf()),
        index: None,
        user: entry.name.clone(),
        problem,
    };
    check_entry(&entry).map_err(fail)?;
    if entries.iter().any(|e| e.name == entry.name) {
        return Err(fail(EntryProblem::DuplicateName));
    }

    let serialize = |user: &[UserEntry]| {
        toml::to_string(&UsersFileOut { user }).map_err(|e| UsersFileError::Write {
            path: path.to_path_buf(),
            source: io::Error::other(e),
        })
    };
    let mut text = existing.unwrap_or_else(|| NEW_FILE_HEADER.to_string());
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(&serialize(std::slice::from_ref(&entry))?);
    entries.push(entry);
    // Appending is right for any file written in the documented layout;
    // check the result rather than trusting that, and fall back to writing
    // every entry afresh.
    if parse_entries(&text, path).ok().as_ref() != Some(&entries) {
        text = format!("{NEW_FILE_HEADER}\n{}", serialize(&entries)?);
    }
    write_atomically(path, text.as_bytes()).map_err(|source| UsersFileError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Replaces `path` with `contents`: a temporary file in the same directory
/// (so the rename cannot cross filesystems), mode 0600, synced, renamed over
/// the target, then the directory synced so the rename itself is durable.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut nonce = [0u8; 8];
    getrandom::getrandom(&mut nonce).map_err(io::Error::other)?;
    let tmp = dir.join(format!(
        ".{}.{}.{:016x}.tmp",
        file_name.to_string_lossy(),
        std::process::id(),
        u64::from_le_bytes(nonce)
    ));

    let mut options = fs::OpenOptions::new();
    // create_new: never follow or reuse something already at the temporary
    // name.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    let written = (|| {
        // The umask can only clear bits, but set the mode explicitly anyway
        // so the result does not depend on it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    #[cfg(unix)]
    if let Ok(dir) = fs::File::open(dir) {
        // Best effort: some filesystems refuse to sync a directory.
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::tests::cheap_hash;
    use ftp_proto::command::Permission;

    fn load(text: &str) -> Result<Vec<Account>, UsersFileError> {
        load_text(text, Path::new("users.toml")).map(|(_, accounts)| accounts)
    }

    fn entry_problem(err: UsersFileError) -> EntryProblem {
        match err {
            UsersFileError::Entry { problem, .. } => problem,
            other => panic!("expected an entry error, got {other:?}"),
        }
    }

    #[test]
    fn loads_a_full_entry_and_defaults() {
        let text = format!(
            r#"
            # comment
            [[user]]
            name = "alice"
            password = "{}"
            home = "/alice/./files/"
            permissions = ["list", "read", "write"]
            account = "proj-7"
            account_required = "login"
            disabled = true

            [[user]]
            name = "bob"
            password = "{}"
            "#,
            cheap_hash("a"),
            cheap_hash("b")
        );
        let accounts = load(&text).unwrap();
        assert_eq!(accounts.len(), 2);
        let alice = &accounts[0];
        assert_eq!(alice.user.name, "alice");
        assert_eq!(alice.user.home.as_str(), "/alice/files");
        assert!(alice.user.permissions.contains(Permission::Write));
        assert!(!alice.user.permissions.contains(Permission::Delete));
        assert_eq!(alice.user.account.as_deref(), Some("proj-7"));
        assert_eq!(alice.user.account_requirement, AccountRequirement::ForLogin);
        assert!(alice.disabled);
        assert!(!alice.user.anonymous);

        let bob = &accounts[1];
        assert_eq!(bob.user.home, FtpPath::root());
        assert_eq!(bob.user.permissions, PermissionSet::all());
        assert_eq!(bob.user.account, None);
        assert_eq!(bob.user.account_requirement, AccountRequirement::None);
        assert!(!bob.disabled);
    }

    #[test]
    fn tls_keys_and_certificate_fingerprints() {
        let fp = "ab:".repeat(31) + "ab";
        let text = format!(
            "[[user]]\nname = \"t\"\npassword = \"{}\"\nrequire_tls_for_login = true\nrequire_tls_for_data = false\nclient_certificates = [\"{fp}\", \"{}\"]\n",
            cheap_hash("t"),
            "CD".repeat(32)
        );
        let accounts = load(&text).unwrap();
        assert_eq!(
            accounts[0].user.tls,
            TlsRules {
                login: Some(true),
                data: Some(false),
            }
        );
        assert_eq!(accounts[0].certificates, [fp.to_uppercase(), "CD:".repeat(31) + "CD"]);
        for bad in ["AB:CD", &"zz".repeat(32), &"AB".repeat(33)] {
            let text = format!(
                "[[user]]\nname = \"t\"\npassword = \"{}\"\nclient_certificates = [\"{bad}\"]\n",
                cheap_hash("t")
            );
            assert!(
                matches!(
                    load(&text),
                    Err(UsersFileError::Entry {
                        problem: EntryProblem::BadCertificateFingerprint(_),
                        ..
                    })
                ),
                "{bad}"
            );
        }
        assert_eq!(normalize_fingerprint(" abcd ").as_deref(), None);
    }

    #[test]
    fn quota_keys() {
        let text = format!(
            "[[user]]\nname = \"q\"\npassword = \"{}\"\nquota_bytes = \"10 MiB\"\nquota_files = 7\nmax_file_size = \"unlimited\"\n",
            cheap_hash("q")
        );
        let accounts = load(&text).unwrap();
        assert_eq!(
            accounts[0].user.quota,
            QuotaLimits {
                bytes: Some(10 << 20),
                files: Some(7),
                max_file_size: Some(crate::quota::UNLIMITED),
            }
        );
        for bad in ["quota_bytes = -1", "quota_files = \"many\"", "max_file_size = 1.5"] {
            let text = format!("[[user]]\nname = \"q\"\npassword = \"{}\"\n{bad}\n", cheap_hash("q"));
            assert!(matches!(load(&text), Err(UsersFileError::Syntax { .. })), "{bad}");
        }
        // Written back as numbers (or "unlimited"), and loaded again.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut entry = UserEntry::new("q", cheap_hash("q"));
        entry.quota_bytes = Some(Size(1 << 30));
        entry.max_file_size = Some(Size(crate::quota::UNLIMITED));
        add_user_to_file(&path, entry.clone()).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("quota_bytes = 1073741824"), "{text}");
        assert!(text.contains("max_file_size = \"unlimited\""), "{text}");
        assert!(!text.contains("quota_files"), "{text}");
        assert_eq!(load_text(&text, &path).unwrap().0, [entry]);
    }

    #[test]
    fn empty_file_has_no_users() {
        assert_eq!(load("").unwrap().len(), 0);
        assert_eq!(load("# nobody yet\n").unwrap().len(), 0);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let hash = cheap_hash("a");
        let err = load(&format!(
            "[[user]]\nname = \"a\"\npassword = \"{hash}\"\nshell = \"/bin/sh\"\n"
        ))
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, UsersFileError::Syntax { .. }), "{err:?}");
        assert!(msg.starts_with("users file users.toml: "), "{msg}");
        assert!(msg.contains("shell"), "{msg}");

        let err = load(&format!("[[users]]\nname = \"a\"\npassword = \"{hash}\"\n")).unwrap_err();
        assert!(err.to_string().contains("users"), "{err}");
    }

    #[test]
    fn wrong_types_and_values_are_refused() {
        let hash = cheap_hash("a");
        for bad in [
            format!("[[user]]\nname = 1\npassword = \"{hash}\"\n"),
            "[[user]]\nname = \"a\"\n".to_string(),
            format!("[[user]]\nname = \"a\"\npassword = \"{hash}\"\naccount_required = \"yes\"\n"),
            format!("[[user]]\nname = \"a\"\npassword = \"{hash}\"\npermissions = \"all\"\n"),
        ] {
            let err = load(&bad).unwrap_err();
            assert!(matches!(err, UsersFileError::Syntax { .. }), "{bad}: {err:?}");
        }
    }

    #[test]
    fn duplicates_are_refused() {
        let text = format!(
            "[[user]]\nname = \"a\"\npassword = \"{0}\"\n[[user]]\nname = \"a\"\npassword = \"{0}\"\n",
            cheap_hash("x")
        );
        let err = load(&text).unwrap_err();
        let msg = err.to_string();
        assert_eq!(entry_problem(err), EntryProblem::DuplicateName);
        assert!(msg.contains("[[user]] #2 user \"a\""), "{msg}");
    }

    #[test]
    fn plaintext_and_foreign_passwords_are_refused() {
        let err = load("[[user]]\nname = \"carol\"\npassword = \"hunter2\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("users file users.toml"), "{msg}");
        assert!(msg.contains("\"carol\""), "{msg}");
        assert!(msg.contains("plaintext"), "{msg}");
        assert!(!msg.contains("hunter2"), "the value must not be echoed: {msg}");
        assert_eq!(entry_problem(err), EntryProblem::Password(HashProblem::NotPhcString));

        let err = load("[[user]]\nname = \"d\"\npassword = \"$argon2id$v=19$garbage\"\n").unwrap_err();
        assert!(matches!(
            entry_problem(err),
            EntryProblem::Password(HashProblem::Malformed(_))
        ));
    }

    #[test]
    fn other_bad_values_are_refused() {
        let hash = cheap_hash("x");
        let cases = [
            ("name = \"\"", EntryProblem::EmptyName),
            ("name = \"a\\nb\"", EntryProblem::ControlCharacterInName),
            (
                "name = \"a\"\npermissions = [\"read\", \"upload\"]",
                EntryProblem::Permission(UnknownPermission("upload".into())),
            ),
            (
                "name = \"a\"\nhome = \"/a\\u0001\"",
                EntryProblem::Home(PathError::ControlCharacter),
            ),
            (
                "name = \"a\"\naccount_required = \"store\"",
                EntryProblem::AccountRequiredWithoutAccount,
            ),
            ("name = \"a\"\naccount = \"\"", EntryProblem::InvalidAccount),
        ];
        for (keys, want) in cases {
            let text = format!("[[user]]\n{keys}\npassword = \"{hash}\"\n");
            assert_eq!(entry_problem(load(&text).unwrap_err()), want, "{keys}");
        }
    }

    #[test]
    fn home_cannot_climb_above_the_root() {
        let text = format!(
            "[[user]]\nname = \"a\"\nhome = \"../../etc\"\npassword = \"{}\"\n",
            cheap_hash("x")
        );
        assert_eq!(load(&text).unwrap()[0].user.home.as_str(), "/etc");
    }

    #[test]
    fn add_creates_appends_refuses_duplicates_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");

        add_user_to_file(&path, UserEntry::new("alice", cheap_hash("a"))).unwrap();
        let created = fs::read_to_string(&path).unwrap();
        assert!(created.starts_with(NEW_FILE_HEADER), "{created}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let mut bob = UserEntry::new("bob", cheap_hash("b"));
        bob.home = Some("/bob".into());
        bob.permissions = Some(vec!["list".into(), "read".into()]);
        bob.account = Some("acct".into());
        bob.account_required = AccountRequirement::ForStore;
        bob.disabled = true;
        add_user_to_file(&path, bob.clone()).unwrap();

        let err = add_user_to_file(&path, UserEntry::new("alice", cheap_hash("c"))).unwrap_err();
        assert_eq!(entry_problem(err), EntryProblem::DuplicateName);

        let text = fs::read_to_string(&path).unwrap();
        let (entries, accounts) = load_text(&text, &path).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "alice");
        assert_eq!(entries[1], bob);
        assert_eq!(accounts[1].user.home.as_str(), "/bob");
        assert_eq!(accounts[1].user.account_requirement, AccountRequirement::ForStore);
        // Defaults are left out rather than written.
        assert!(!text.contains("disabled = false"), "{text}");
        // No temporary files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn add_keeps_comments_and_other_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let original = format!(
            "# site accounts\n[[user]]\nname = \"ops\" # on call\npassword = \"{}\"",
            cheap_hash("o")
        );
        fs::write(&path, &original).unwrap();
        add_user_to_file(&path, UserEntry::new("dev", cheap_hash("d"))).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(&original), "{text}");
        let (entries, _) = load_text(&text, &path).unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["ops", "dev"]);
    }

    #[test]
    fn add_rewrites_an_inline_array_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        fs::write(
            &path,
            format!("user = [{{ name = \"ops\", password = \"{}\" }}]\n", cheap_hash("o")),
        )
        .unwrap();
        add_user_to_file(&path, UserEntry::new("dev", cheap_hash("d"))).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let (entries, _) = load_text(&text, &path).unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["ops", "dev"]);
    }

    #[test]
    fn add_refuses_bad_entries_and_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let err = add_user_to_file(&path, UserEntry::new("a", "plaintext")).unwrap_err();
        assert!(matches!(
            entry_problem(err),
            EntryProblem::Password(HashProblem::NotPhcString)
        ));
        assert!(!path.exists(), "nothing written for a refused entry");

        fs::write(&path, "this is not toml").unwrap();
        let err = add_user_to_file(&path, UserEntry::new("a", cheap_hash("a"))).unwrap_err();
        assert!(matches!(err, UsersFileError::Syntax { .. }), "{err:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "this is not toml");
    }
}
