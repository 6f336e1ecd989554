//! Connections the probe and the lease leave open for the next round, one per instance and
//! account: an instance probed every few seconds then costs one round trip per probe, not a TCP
//! handshake, a login and a session set-up each time.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mysql_async::Conn;

use crate::mysql::admin::{Credentials, Endpoint};

/// A kept connection unused for this long is closed: its pod is gone, or its cluster no longer
/// probed (the longest probe interval is 60 s).
const IDLE_LIMIT: Duration = Duration::from_secs(120);

/// What a connection learnt about its server: tables a probe may read in its one round trip
/// without the risk of an error that would cut the round trip short.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct KnownTables {
    /// `performance_schema.clone_status` (the clone plugin is loaded).
    pub clone_status: bool,
    /// `sakila.cluster`, where the cluster's identity is recorded.
    pub cluster_identity: bool,
}

/// A connection at rest, with what it knows.
pub(super) struct Kept {
    pub conn: Conn,
    pub known: KnownTables,
}

/// Whose connection it is: a connection is only handed to the same login at the same address.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct KeepKey {
    endpoint: Endpoint,
    user: String,
    password: String,
}

impl KeepKey {
    pub fn new(endpoint: &Endpoint, credentials: &Credentials) -> Self {
        Self {
            endpoint: endpoint.clone(),
            user: credentials.user.clone(),
            password: credentials.password.clone(),
        }
    }
}

/// The idle connections, shared by every clone of the client.
#[derive(Clone, Default)]
pub(super) struct KeptConnections {
    idle: Arc<Mutex<HashMap<KeepKey, (Kept, Instant)>>>,
}

impl std::fmt::Debug for KeptConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptConnections")
            .field("idle", &self.lock().len())
            .finish()
    }
}

impl KeptConnections {
    /// The idle connection of this login, if one was kept.
    pub fn take(&self, key: &KeepKey) -> Option<Kept> {
        let (kept, stale) = {
            let mut idle = self.lock();
            let stale = evict_stale(&mut idle, Instant::now());
            (idle.remove(key).map(|(kept, _)| kept), stale)
        };
        // Closed outside the lock.
        drop(stale);
        kept
    }

    /// Keeps a connection for the next session of its login; one is enough, so a second one
    /// (two sessions ran at once) is closed.
    pub fn put(&self, key: KeepKey, kept: Kept) {
        let now = Instant::now();
        let (stale, surplus) = {
            let mut idle = self.lock();
            let stale = evict_stale(&mut idle, now);
            let surplus = match idle.entry(key) {
                Entry::Occupied(_) => Some(kept),
                Entry::Vacant(slot) => {
                    slot.insert((kept, now));
                    None
                }
            };
            (stale, surplus)
        };
        drop((stale, surplus));
    }

    /// How many connections are kept now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<KeepKey, (Kept, Instant)>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn evict_stale(idle: &mut HashMap<KeepKey, (Kept, Instant)>, now: Instant) -> Vec<Kept> {
    let stale: Vec<KeepKey> = idle
        .iter()
        .filter(|(_, (_, since))| now.saturating_duration_since(*since) >= IDLE_LIMIT)
        .map(|(key, _)| key.clone())
        .collect();
    stale
        .iter()
        .filter_map(|key| idle.remove(key).map(|(kept, _)| kept))
        .collect()
}
