//! The configuration a running server takes again (SIGHUP).
//!
//! A session takes the configuration in force when it is accepted and
//! keeps it to its end, as a logged-in session keeps its account: a reload
//! never changes the rules under a command or a transfer. Connections
//! accepted after the reload get the new one, and the counts the accept
//! path checks (sessions at once, per address, per user, the ban rules)
//! change at once for every new connection and login.
//!
//! What the server built from the configuration at start stays until a
//! restart: the listeners, the TLS certificate provider (its files reload
//! on their own), the Kerberos credentials and the thread caps.
//! [`ConfigReloader::apply`] keeps those from the running configuration and
//! names the ones the new file changed, so the operator is told.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::Semaphore;

use crate::config::ServerConfig;
use crate::session::Shared;

/// The configuration in force for new sessions.
pub(crate) struct LiveConfig(RwLock<Arc<ServerConfig>>);

impl LiveConfig {
    pub fn new(config: ServerConfig) -> LiveConfig {
        LiveConfig(RwLock::new(Arc::new(config)))
    }

    pub fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn replace(&self, config: ServerConfig) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
    }
}

/// The sessions that may run at once (`max_sessions`): one semaphore
/// permit each, in a semaphore a reload resizes.
pub(crate) struct SessionSlots {
    permits: Arc<Semaphore>,
    size: Mutex<usize>,
}

impl SessionSlots {
    pub fn new(max_sessions: usize) -> SessionSlots {
        let size = clamp(max_sessions);
        SessionSlots {
            permits: Arc::new(Semaphore::new(size)),
            size: Mutex::new(size),
        }
    }

    pub fn permits(&self) -> &Arc<Semaphore> {
        &self.permits
    }

    /// Permits there are once every resize has taken effect.
    pub fn size(&self) -> usize {
        *self.size.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// More permits at once; fewer as sessions end: a task takes the
    /// difference as permits come back and forgets them. The semaphore is
    /// fair, so sessions queued behind it wait for the smaller limit, and
    /// a later increase simply adds to whatever is still owed.
    fn resize(&self, max_sessions: usize) {
        let new = clamp(max_sessions);
        let mut size = self.size.lock().unwrap_or_else(PoisonError::into_inner);
        if new > *size {
            self.permits.add_permits(new - *size);
        } else if new < *size {
            let fewer = (*size - new) as u32;
            let permits = Arc::clone(&self.permits);
            tokio::spawn(async move {
                if let Ok(taken) = permits.acquire_many_owned(fewer).await {
                    taken.forget();
                }
            });
        }
        *size = new;
    }
}

fn clamp(max_sessions: usize) -> usize {
    max_sessions.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize))
}

/// Puts a new configuration in force (see the module documentation).
#[derive(Clone)]
pub struct ConfigReloader {
    pub(crate) shared: Arc<Shared>,
}

impl ConfigReloader {
    /// The configuration new sessions get now.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.shared.config.current()
    }

    /// Makes `new` the configuration of new sessions, after keeping what
    /// only a restart changes from the running one; returns the names of
    /// those settings that `new` would have changed.
    pub fn apply(&self, mut new: ServerConfig) -> Vec<&'static str> {
        let shared = &self.shared;
        let old = shared.config.current();
        let mut kept = Vec::new();
        keep(&mut kept, "listen", &mut new.listen, &old.listen);
        keep(
            &mut kept,
            "server.send_threads",
            &mut new.send_threads,
            &old.send_threads,
        );
        keep(
            &mut kept,
            "server.receive_threads",
            &mut new.receive_threads,
            &old.receive_threads,
        );
        match (&old.tls, new.tls.as_mut()) {
            (Some(old_tls), Some(new_tls)) => {
                // The policy is the new file's; the certificates stay
                // with the provider, which reloads their files itself.
                new_tls.provider = Arc::clone(&old_tls.provider);
                let (old_listen, new_listen) = (&old_tls.implicit_listen, &mut new_tls.implicit_listen);
                keep(&mut kept, "tls.implicit_listen", new_listen, old_listen);
                keep(
                    &mut kept,
                    "tls.kernel_offload",
                    &mut new_tls.kernel_offload,
                    &old_tls.kernel_offload,
                );
            }
            (None, None) => {}
            _ => {
                kept.push("tls (FTPS on or off)");
                new.tls = old.tls.clone();
            }
        }
        match (&old.gssapi, new.gssapi.as_mut()) {
            (Some(old_gss), Some(new_gss)) => new_gss.acceptor = Arc::clone(&old_gss.acceptor),
            (None, None) => {}
            _ => {
                kept.push("gssapi (Kerberos on or off)");
                new.gssapi = old.gssapi.clone();
            }
        }
        shared.slots.resize(new.max_sessions);
        shared.per_address.set_limit(new.max_sessions_per_address);
        shared.per_user.set_limit(new.max_sessions_per_user);
        shared.bans.set_config(new.bans.clone());
        shared.config.replace(new);
        kept
    }
}

/// Keeps `old` in `new`, noting `name` when they differ.
fn keep<T: PartialEq + Clone>(kept: &mut Vec<&'static str>, name: &'static str, new: &mut T, old: &T) {
    if new != old {
        kept.push(name);
        *new = old.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_smaller_size_takes_effect_as_permits_come_back() {
        let slots = SessionSlots::new(10);
        let held: Vec<_> = (0..3)
            .map(|_| Arc::clone(slots.permits()).try_acquire_owned().unwrap())
            .collect();
        slots.resize(2);
        tokio::task::yield_now().await;
        assert_eq!(
            slots.permits().available_permits(),
            0,
            "the decrease waits with the 7 free ones"
        );
        assert!(Arc::clone(slots.permits()).try_acquire_owned().is_err());
        let mut held = held;
        held.truncate(1);
        tokio::task::yield_now().await;
        assert_eq!(slots.permits().available_permits(), 1, "two allowed, one held");
        slots.resize(5);
        assert_eq!(slots.permits().available_permits(), 4);
        assert_eq!(slots.size(), 5);
        drop(held);
    }
}
