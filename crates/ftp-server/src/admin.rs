//! The operator's view of the sessions: every session is in a registry
//! while it lives, and a Unix socket (`server.admin_socket`, used by
//! `ferroftp admin`) lists them and ends one, or all of one user's.
//!
//! An ended session stops at once: a running transfer is cut (426, as
//! ABOR would), then a logged-in session gets 231, one not logged in 421,
//! and the connection closes (those replies may take 5 s at most: a
//! client that stops reading does not keep its session). Connections
//! still waiting for a slot or for the storage (120) are not sessions yet
//! and are not listed; a kick during the implicit-TLS handshake takes
//! effect once the handshake ends.
//!
//! The socket is the only way in, and only the server's own user can
//! reach it: it is bound inside a new directory of mode 0700, made 0600,
//! and renamed into place, so it is never reachable with a wider mode, and
//! a lock on `PATH.lock`, held while the server runs, keeps a second
//! server from taking it over. It speaks lines: a command, then the
//! answer's lines, the last one `OK ...` or `ERR ...`.
//!
//! ```text
//! sessions           one line per session: ID PEER USER SECONDS (USER "-" before login)
//! kick ID            ends that session
//! kick-user NAME     ends every session of that user
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;

use crate::session::Shared;

/// The longest command line the socket reads.
const MAX_COMMAND: usize = 1024;
/// How long a connection to the socket may stay silent.
const IDLE: Duration = Duration::from_secs(30);

struct Entry {
    peer: SocketAddr,
    user: Option<String>,
    since: Instant,
    end: Arc<EndRequest>,
}

/// The operator's word to one session. A kick of a user names the login
/// it was meant for, so a session that logged out (REIN) or in as someone
/// else before it looked is not ended for it.
#[derive(Default)]
struct EndRequest {
    wake: Notify,
    /// Counts the session's logins and logouts.
    login: AtomicU64,
    /// `ANY_LOGIN`, or the `login` count the kick was meant for, plus 1;
    /// 0: none.
    wanted: AtomicU64,
}

const ANY_LOGIN: u64 = u64::MAX;

impl EndRequest {
    fn request(&self, only_this_login: bool) {
        let wanted = match only_this_login {
            true => self.login.load(Ordering::SeqCst) + 1,
            false => ANY_LOGIN,
        };
        self.wanted.store(wanted, Ordering::SeqCst);
        // A permit if the session is not waiting right now: its loop sees
        // it at its next turn.
        self.wake.notify_one();
    }

    fn stands(&self) -> bool {
        match self.wanted.load(Ordering::SeqCst) {
            0 => false,
            ANY_LOGIN => true,
            login => login == self.login.load(Ordering::SeqCst) + 1,
        }
    }
}

type Entries = Arc<Mutex<HashMap<u64, Entry>>>;

/// The sessions alive now.
#[derive(Default)]
pub(crate) struct Registry {
    next_id: AtomicU64,
    sessions: Entries,
}

impl Registry {
    /// Enters a new session; it stays in until the registration drops.
    pub fn register(&self, peer: SocketAddr) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let end = Arc::new(EndRequest::default());
        let entry = Entry {
            peer,
            user: None,
            since: Instant::now(),
            end: Arc::clone(&end),
        };
        lock(&self.sessions).insert(id, entry);
        Registration {
            id,
            sessions: Arc::clone(&self.sessions),
            end,
        }
    }

    /// One line per session, oldest first.
    fn list(&self) -> Vec<String> {
        let sessions = lock(&self.sessions);
        let mut ids: Vec<u64> = sessions.keys().copied().collect();
        ids.sort_unstable();
        ids.iter()
            .map(|id| {
                let e = &sessions[id];
                let user = e.user.as_deref().unwrap_or("-");
                format!("{id} {} {user} {}", e.peer, e.since.elapsed().as_secs())
            })
            .collect()
    }

    /// Tells the sessions `which` picks to end (`only_this_login`: unless
    /// their login changes first); how many there were.
    fn end(&self, only_this_login: bool, which: impl Fn(u64, &Entry) -> bool) -> usize {
        let sessions = lock(&self.sessions);
        let mut ended = 0;
        for (id, entry) in sessions.iter() {
            if which(*id, entry) {
                entry.end.request(only_this_login);
                ended += 1;
            }
        }
        ended
    }
}

/// A session's place in the registry.
pub(crate) struct Registration {
    id: u64,
    sessions: Entries,
    end: Arc<EndRequest>,
}

impl Registration {
    /// The user the session is logged in as (`None`: not logged in).
    pub fn set_user(&self, user: Option<&str>) {
        if let Some(entry) = lock(&self.sessions).get_mut(&self.id) {
            entry.user = user.map(str::to_string);
            // Under the registry's lock, as kicks look at users under it.
            self.end.login.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Resolves when the operator ends the session.
    pub async fn ended(&self) {
        loop {
            self.end.wake.notified().await;
            if self.end.stands() {
                return;
            }
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.sessions).remove(&self.id);
    }
}

fn lock(entries: &Entries) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
    entries.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The socket's file, and the lock that makes it this server's.
pub(crate) struct SocketFile {
    path: PathBuf,
    /// `PATH.lock`, locked (flock) while the server runs.
    _lock: std::fs::File,
}

impl SocketFile {
    /// Removes the socket file, before the lock goes with `self`, so no
    /// server that starts now loses its fresh socket to this one's exit.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the socket at `path`, mode 0600, replacing a socket a server
/// that is gone left there. Fails if another server holds the path, or if
/// something other than a socket is there.
pub(crate) fn bind(path: &Path) -> io::Result<(UnixListener, SocketFile)> {
    let taken = |why: String| io::Error::new(io::ErrorKind::AddrInUse, format!("{}: {why}", path.display()));
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // A symlink planted at the lock's name is not followed.
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)?;
    // SAFETY: flock on a descriptor the File owns.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(taken("another server holds this admin socket".into()));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => return Err(taken("exists and is not a socket".into())),
        Ok(_) | Err(_) => {}
    }
    // Bound where nobody else can reach it, given its mode, then renamed
    // into place (over a stale socket, atomically).
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = parent.join(format!(".ferroftp-admin.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
    let staged = staging.join("socket");
    let result = (|| {
        let listener = std::os::unix::net::UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        Ok::<_, io::Error>(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    let listener = result?;
    listener.set_nonblocking(true)?;
    let file = SocketFile {
        path: path.to_path_buf(),
        _lock: lock,
    };
    Ok((UnixListener::from_std(listener)?, file))
}

/// Answers connections on the admin socket until the task is dropped.
pub(crate) async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "admin socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &shared.sessions).await {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
    }
}

async fn answer(stream: UnixStream, registry: &Registry) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(MAX_COMMAND as u64 * 64)).lines();
    loop {
        let line = match tokio::time::timeout(IDLE, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) | Err(_) => return Ok(()),
            Ok(Err(e)) => return Err(e),
        };
        let out = run(line.trim(), registry);
        write.write_all(out.as_bytes()).await?;
    }
}

/// The answer to one command line, every line ended with LF.
fn run(line: &str, registry: &Registry) -> String {
    let mut out = String::new();
    if line.len() > MAX_COMMAND {
        out.push_str("ERR command too long\n");
        return out;
    }
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("sessions"), None, _) => {
            let sessions = registry.list();
            for s in &sessions {
                let _ = writeln!(out, "{s}");
            }
            let _ = writeln!(out, "OK {} sessions", sessions.len());
        }
        (Some("kick"), Some(id), None) => match id.parse::<u64>() {
            Ok(id) => match registry.end(false, |i, _| i == id) {
                0 => {
                    let _ = writeln!(out, "ERR no session {id}");
                }
                n => {
                    tracing::info!(session = id, "session ended by the operator");
                    let _ = writeln!(out, "OK ended {n}");
                }
            },
            Err(_) => out.push_str("ERR kick takes a session number\n"),
        },
        (Some("kick-user"), Some(name), None) => {
            let n = registry.end(true, |_, e| e.user.as_deref() == Some(name));
            tracing::info!(user = name, sessions = n, "user's sessions ended by the operator");
            let _ = writeln!(out, "OK ended {n}");
        }
        _ => out.push_str("ERR commands: sessions, kick ID, kick-user NAME\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test]
    async fn sessions_are_listed_and_ended_by_number_or_user() {
        let registry = Registry::default();
        let a = registry.register(peer(1000));
        let b = registry.register(peer(1001));
        let c = registry.register(peer(1002));
        b.set_user(Some("alice"));
        c.set_user(Some("alice"));
        let listed = run("sessions", &registry);
        let lines: Vec<&str> = listed.lines().collect();
        assert_eq!(lines.len(), 4, "{listed}");
        assert!(lines[0].starts_with("1 127.0.0.1:1000 - "), "{listed}");
        assert!(lines[1].starts_with("2 127.0.0.1:1001 alice "), "{listed}");
        assert_eq!(lines[3], "OK 3 sessions");

        assert_eq!(run("kick 1", &registry), "OK ended 1\n");
        // The permit waits for the session's next look.
        tokio::time::timeout(Duration::from_secs(1), a.ended())
            .await
            .expect("told");
        assert_eq!(run("kick 9", &registry), "ERR no session 9\n");
        assert_eq!(run("kick x", &registry), "ERR kick takes a session number\n");
        assert_eq!(run("kick-user alice", &registry), "OK ended 2\n");
        tokio::time::timeout(Duration::from_secs(1), b.ended())
            .await
            .expect("told");
        tokio::time::timeout(Duration::from_secs(1), c.ended())
            .await
            .expect("told");
        assert_eq!(run("kick-user bob", &registry), "OK ended 0\n");
        // A kick of a user does not outlive the login it was meant for.
        let d = registry.register(peer(1003));
        d.set_user(Some("carol"));
        assert_eq!(run("kick-user carol", &registry), "OK ended 1\n");
        d.set_user(None);
        d.set_user(Some("dave"));
        assert!(
            tokio::time::timeout(Duration::from_millis(100), d.ended())
                .await
                .is_err(),
            "dave is not ended for carol's kick"
        );
        assert_eq!(run(&format!("kick {}", 4), &registry), "OK ended 1\n");
        tokio::time::timeout(Duration::from_secs(1), d.ended())
            .await
            .expect("a kick by number stands");
        assert!(run("reboot", &registry).starts_with("ERR "));
        assert!(run(&"x".repeat(2000), &registry).starts_with("ERR command too long"));

        drop(a);
        assert_eq!(run("sessions", &registry).lines().last(), Some("OK 3 sessions"));
    }
}
