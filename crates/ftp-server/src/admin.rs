//! The operator's view of the sessions: every session is in a registry
//! while it lives, and a Unix socket (`server.admin_socket`, used by
//! `ferroftp admin`) lists them and ends one, or all of one user's.
//!
//! An ended session finishes what it is doing first, as for the other
//! reasons a server ends a session: a logged-in one gets 231 after its
//! running transfer's reply (at once when idle), one not logged in 421.
//!
//! The socket is the only way in, and it is made readable and writable
//! by the server's own user only (mode 0600, created under a umask that
//! never lets it be wider), so the file system's permissions are the
//! access control. It speaks lines: a command, then the answer's lines,
//! the last one `OK ...` or `ERR ...`.
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
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
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
    end: Arc<Notify>,
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
        let end = Arc::new(Notify::new());
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

    /// Tells the sessions `which` picks to end; how many there were.
    fn end(&self, which: impl Fn(u64, &Entry) -> bool) -> usize {
        let sessions = lock(&self.sessions);
        let mut ended = 0;
        for (id, entry) in sessions.iter() {
            if which(*id, entry) {
                // A permit if the session is not waiting right now: its
                // loop sees it at its next turn.
                entry.end.notify_one();
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
    end: Arc<Notify>,
}

impl Registration {
    /// The user the session is logged in as (`None`: not logged in).
    pub fn set_user(&self, user: Option<&str>) {
        if let Some(entry) = lock(&self.sessions).get_mut(&self.id) {
            entry.user = user.map(str::to_string);
        }
    }

    /// Resolves when the operator ends the session.
    pub async fn ended(&self) {
        self.end.notified().await;
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

/// Binds the socket at `path`, mode 0600. A socket left there by a server
/// that is gone is replaced; any other file there is an error.
pub(crate) fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}: another server answers on this admin socket", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists and is not a socket", path.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // The socket file takes its mode from the umask at bind: 0177 makes it
    // 0600 from its first moment, not after a chmod. Bound at start,
    // before any upload creates a file under the process's umask.
    // SAFETY: umask(2) only swaps the process's file mode mask.
    let previous = unsafe { libc::umask(0o177) };
    let bound = std::os::unix::net::UnixListener::bind(path);
    // SAFETY: as above, restoring the mask read there.
    unsafe { libc::umask(previous) };
    let listener = bound?;
    listener.set_nonblocking(true)?;
    UnixListener::from_std(listener)
}

/// Answers connections on the admin socket until the task is dropped.
pub(crate) async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
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
            Ok(id) => match registry.end(|i, _| i == id) {
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
            let n = registry.end(|_, e| e.user.as_deref() == Some(name));
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
        assert!(run("reboot", &registry).starts_with("ERR "));
        assert!(run(&"x".repeat(2000), &registry).starts_with("ERR command too long"));

        drop(a);
        assert_eq!(run("sessions", &registry).lines().last(), Some("OK 2 sessions"));
    }
}
