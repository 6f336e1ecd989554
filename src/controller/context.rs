//! What every reconcile shares.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use kube::runtime::events::Recorder;
use kube::{Client, ResourceExt};

use super::validate::OperatorSettings;
use crate::api::MySQLCluster;
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
        }
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
