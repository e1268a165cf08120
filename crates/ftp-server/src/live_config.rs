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

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
    state: Mutex<SlotState>,
}

struct SlotState {
    /// The limit now.
    size: usize,
    /// Permits to forget as sessions give them back: a lowered limit whose
    /// sessions are still running. None are closed for it.
    owed: usize,
    /// The server is shutting down: the size stays as it is.
    closed: bool,
}

impl SessionSlots {
    pub fn new(max_sessions: usize) -> SessionSlots {
        let size = clamp(max_sessions);
        SessionSlots {
            permits: Arc::new(Semaphore::new(size)),
            state: Mutex::new(SlotState {
                size,
                owed: 0,
                closed: false,
            }),
        }
    }

    pub fn permits(&self) -> &Arc<Semaphore> {
        &self.permits
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The limit now.
    pub fn size(&self) -> usize {
        self.state().size
    }

    /// More permits at once; fewer at once from the free ones and, for
    /// the rest, from the sessions running now as they end (`release`).
    /// Nothing once the server shuts down.
    fn resize(&self, max_sessions: usize) {
        let new = clamp(max_sessions);
        let mut state = self.state();
        if state.closed {
            return;
        }
        if new > state.size {
            let mut more = new - state.size;
            // What is still owed is forgiven first.
            let forgiven = more.min(state.owed);
            state.owed -= forgiven;
            more -= forgiven;
            self.permits.add_permits(more);
        } else {
            let fewer = state.size - new;
            let forgotten = self.permits.forget_permits(fewer);
            state.owed += fewer - forgotten;
        }
        state.size = new;
    }

    /// Gives a session's permit back when its session ends, or forgets it
    /// while a lowered limit is owed permits.
    pub fn release(&self, permit: OwnedSemaphorePermit) {
        let mut state = self.state();
        if state.owed > 0 && !state.closed {
            state.owed -= 1;
            permit.forget();
        }
        // Otherwise the permit goes back as it drops.
    }

    /// Stops resizing for the shutdown, and says how many permits there
    /// are with every session ended (the owed ones are given back again).
    pub fn close(&self) -> usize {
        let mut state = self.state();
        state.closed = true;
        state.size + std::mem::take(&mut state.owed)
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
            "server.admin_socket",
            &mut new.admin_socket,
            &old.admin_socket,
        );
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

    #[test]
    fn a_smaller_size_takes_effect_as_sessions_end_and_a_closed_one_stays() {
        let slots = SessionSlots::new(10);
        let take = || Arc::clone(slots.permits()).try_acquire_owned();
        let mut held: Vec<_> = (0..3).map(|_| take().unwrap()).collect();
        slots.resize(2);
        assert_eq!(
            slots.permits().available_permits(),
            0,
            "the 7 free ones are forgotten at once"
        );
        assert!(take().is_err());
        slots.release(held.pop().unwrap());
        assert_eq!(slots.permits().available_permits(), 0, "one more owed, forgotten");
        slots.release(held.pop().unwrap());
        assert_eq!(slots.permits().available_permits(), 1, "two allowed, one held");
        slots.resize(5);
        assert_eq!(slots.permits().available_permits(), 4);
        // Lowered again with sessions running, then raised: the owed
        // permits are forgiven first.
        let more: Vec<_> = (0..4).map(|_| take().unwrap()).collect();
        slots.resize(2);
        slots.resize(4);
        assert_eq!(slots.permits().available_permits(), 0);
        assert_eq!(slots.close(), 4 + 1, "the size and what is still owed");
        slots.resize(100);
        assert_eq!(slots.size(), 4, "no resize once closed");
        for p in more {
            slots.release(p);
        }
        slots.release(held.pop().unwrap());
        assert_eq!(
            slots.permits().available_permits(),
            5,
            "every permit back for the shutdown"
        );
    }
}
