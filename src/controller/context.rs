//! What every reconcile shares.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use kube::runtime::events::Recorder;
use kube::{Client, ResourceExt};

use super::validate::OperatorSettings;
use crate::api::MySQLCluster;
use crate::clustering::clones::CloneTasks;
use crate::clustering::{MySqlObservation, Observation};
use crate::mysql::MySqlClient;

/// Shared state of the controller.
pub struct Context {
    pub client: Client,
    pub settings: OperatorSettings,
    pub connector: MySqlClient,
    pub recorder: Recorder,
    /// Per cluster (by UID), how many observations in a row could not reach the recorded
    /// primary. Kept in memory: a new leader starts counting afresh, which only delays a
    /// failover by the threshold.
    pub primary_failures: Mutex<HashMap<String, u32>>,
    /// Per cluster (by UID), when its primary's lease was last renewed, or when this operator
    /// first looked at the cluster: a new leader cannot know of a renewal before its time, so it
    /// counts the lease from there.
    pub lease_renewed: Mutex<HashMap<String, Instant>>,
    /// Per cluster (by UID), the resourceVersion of the newest copy of it this operator has from
    /// the API server itself: the answer to its own last status write, or a read.
    pub known_versions: Mutex<HashMap<String, String>>,
    /// Per cluster (by UID), the primary whose failover has begun (its replicas are fenced) and
    /// not finished. In memory: a new leader that does not know it lets a primary that returns
    /// meanwhile stay primary, which is safe too, only not the failover that was begun.
    pub failovers_underway: Mutex<HashMap<String, u8>>,
    /// The clones this operator runs in the background.
    pub clones: CloneTasks,
}

/// Whether the watched copy of a cluster may predate what this operator knows of it.
///
/// The watch delivers the operator's own status writes some time after they are made, and a
/// reconcile triggered meanwhile (by a pod it just annotated, say) would otherwise build on the
/// status before that write and then overwrite it. resourceVersions are opaque, so only
/// equality tells: a copy other than the known one is read again from the API server.
pub fn watched_copy_is_stale(known: Option<&str>, watched: Option<&str>) -> bool {
    match (known, watched) {
        (None, _) => false,
        (Some(known), Some(watched)) => known != watched,
        (Some(_), None) => true,
    }
}

impl Context {
    /// A context with no history.
    pub fn new(
        client: Client,
        settings: OperatorSettings,
        connector: MySqlClient,
        recorder: Recorder,
    ) -> Self {
        Self {
            client,
            settings,
            connector,
            recorder,
            primary_failures: Mutex::new(HashMap::new()),
            lease_renewed: Mutex::new(HashMap::new()),
            known_versions: Mutex::new(HashMap::new()),
            failovers_underway: Mutex::new(HashMap::new()),
            clones: CloneTasks::default(),
        }
    }

    /// The primary whose failover an earlier round began and that has not finished.
    pub fn failover_underway(&self, cluster: &MySQLCluster) -> Option<u8> {
        self.failovers_underway
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&cluster.uid().unwrap_or_default())
            .copied()
    }

    /// Remembers what this round's plan says of a failover under way.
    pub fn record_failover_underway(&self, cluster: &MySQLCluster, primary: Option<u8>) {
        let mut underway = self
            .failovers_underway
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = cluster.uid().unwrap_or_default();
        match primary {
            Some(primary) => underway.insert(key, primary),
            None => underway.remove(&key),
        };
    }

    /// Remembers the resourceVersion of a copy of the cluster the API server just returned.
    pub fn record_version(&self, cluster: &MySQLCluster) {
        let Some(version) = cluster.resource_version() else {
            return;
        };
        self.known_versions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(cluster.uid().unwrap_or_default(), version);
    }

    /// Whether this watched copy of the cluster may be older than one the operator has seen.
    pub fn is_stale(&self, watched: &MySQLCluster) -> bool {
        let known = self
            .known_versions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&watched.uid().unwrap_or_default())
            .cloned();
        watched_copy_is_stale(known.as_deref(), watched.resource_version().as_deref())
    }

    /// Records a renewal of the cluster's primary lease.
    pub fn record_lease_renewal(&self, cluster: &MySQLCluster, at: Instant) {
        self.lease_renewed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(cluster.uid().unwrap_or_default(), at);
    }

    /// When the cluster's primary lease was last renewed, as far as this operator knows (its first
    /// look at the cluster, if it renewed none yet).
    pub fn last_lease_renewal(&self, cluster: &MySQLCluster, now: Instant) -> Instant {
        *self
            .lease_renewed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(cluster.uid().unwrap_or_default())
            .or_insert(now)
    }

    /// Counts this observation into the cluster's run of failed primary probes; returns the run.
    pub fn count_primary_failures(&self, cluster: &MySQLCluster, observation: &Observation) -> u32 {
        let failed = observation.current_primary.is_some_and(|primary| {
            !observation
                .instances
                .iter()
                .any(|i| i.ordinal == primary && matches!(i.mysql, MySqlObservation::Observed(_)))
        });
        let key = cluster.uid().unwrap_or_default();
        let mut runs = self
            .primary_failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if failed {
            let run = runs.entry(key).or_insert(0);
            *run += 1;
            *run
        } else {
            runs.remove(&key);
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::watched_copy_is_stale;

    #[test]
    fn only_a_copy_other_than_the_known_one_is_read_again() {
        let cases = [
            // (known, watched, stale)
            (None, Some("7"), false),
            (None, None, false),
            (Some("7"), Some("7"), false),
            (Some("8"), Some("7"), true),
            // Opaque: a watched version that looks newer is read again all the same.
            (Some("7"), Some("8"), true),
            (Some("7"), None, true),
        ];
        for (known, watched, stale) in cases {
            assert_eq!(
                watched_copy_is_stale(known, watched),
                stale,
                "known {known:?}, watched {watched:?}"
            );
        }
    }
}
