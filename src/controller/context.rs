//! What every reconcile shares.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kube::runtime::events::Recorder;
use kube::{Client, ResourceExt};

use super::children::ChildCache;
use super::reconcile::KeptReads;
use super::snapshot::Snapshot;
use crate::api::{MySQLCluster, RootAccess};
use crate::backup::archiver::Archivers;
use crate::clustering::clones::CloneTasks;
use crate::clustering::{MySqlObservation, Observation};
use crate::metrics::Metrics;
use crate::mysql::MySqlClient;
use crate::validate::OperatorSettings;

/// Shared state of the controller.
pub struct Context {
    pub client: Client,
    pub settings: OperatorSettings,
    pub connector: MySqlClient,
    pub recorder: Recorder,
    /// The registry `/metrics` serves; reconciles count failovers and switchovers in it.
    pub metrics: Arc<Metrics>,
    /// What this operator remembers of each cluster between rounds.
    pub memory: ClusterMemories,
    /// The clones this operator runs in the background.
    pub clones: CloneTasks,
    /// The children's metadata as watched, filled in when the controller starts.
    pub children: ChildCache,
    /// The binary log archivers this operator runs, one per cluster that archives.
    pub archivers: Archivers,
}

/// What this operator remembers of each cluster between rounds, by UID. Only in memory: a new
/// leader starts with none, and each field of `ClusterMemory` says why that is safe. Entries of
/// clusters that no longer exist are dropped by `forget_all_but`.
#[derive(Default)]
pub struct ClusterMemories {
    by_uid: Mutex<HashMap<String, ClusterMemory>>,
}

impl ClusterMemories {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ClusterMemory>> {
        // A panic while the lock was held left at worst one cluster's counters half-updated,
        // which the next round corrects: keep going rather than poison every reconcile.
        self.by_uid
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on what is remembered of the cluster, an empty memory if nothing is yet.
    fn of<T>(&self, uid: &str, f: impl FnOnce(&mut ClusterMemory) -> T) -> T {
        f(self.lock().entry(uid.to_string()).or_default())
    }

    /// Drops what is remembered of every cluster whose UID is not in `live`: the controller is
    /// not called for a deleted cluster, so its memory would otherwise stay for good.
    pub fn forget_all_but(&self, live: &HashSet<String>) {
        self.lock().retain(|uid, _| live.contains(uid));
    }

    /// How many clusters something is remembered of.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is remembered of any cluster.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// What the operator remembers of one cluster between rounds.
#[derive(Debug, Default)]
struct ClusterMemory {
    /// How many observations in a row could not reach the recorded primary. A new leader starts
    /// counting afresh, which only delays a failover by the threshold.
    primary_failures: u32,
    /// When its primary's lease was last renewed, or when this operator first looked at the
    /// cluster: a new leader cannot know of a renewal before its time, so it counts the lease
    /// from there.
    lease_renewed: Option<Instant>,
    /// The resourceVersion of the newest copy of the cluster this operator has from the API
    /// server itself: the answer to its own last status write, or a read.
    known_version: Option<String>,
    /// The primary whose failover has begun (its replicas are fenced) and not finished. A new
    /// leader that does not know it lets a primary that returns meanwhile stay primary, which
    /// is safe too, only not the failover that was begun.
    failover_underway: Option<u8>,
    /// The `spec.rootAccess` the servers were last checked against, and when. A new leader
    /// checks at its first round at rest, which costs one read per instance.
    root_access_checked: Option<(RootAccess, Instant)>,
    /// What the last round read, when it ended at rest (`snapshot.rs`). A new leader reads
    /// afresh.
    snapshot: Option<Snapshot<KeptReads>>,
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
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            settings,
            connector,
            recorder,
            metrics,
            memory: ClusterMemories::default(),
            clones: CloneTasks::default(),
            archivers: Archivers::default(),
            children: ChildCache::default(),
        }
    }

    /// Runs `f` on what is remembered of `cluster`.
    fn remembered<T>(&self, cluster: &MySQLCluster, f: impl FnOnce(&mut ClusterMemory) -> T) -> T {
        self.memory.of(&cluster.uid().unwrap_or_default(), f)
    }

    /// The primary whose failover an earlier round began and that has not finished.
    pub fn failover_underway(&self, cluster: &MySQLCluster) -> Option<u8> {
        self.remembered(cluster, |m| m.failover_underway)
    }

    /// Remembers what this round's plan says of a failover under way.
    pub fn record_failover_underway(&self, cluster: &MySQLCluster, primary: Option<u8>) {
        self.remembered(cluster, |m| m.failover_underway = primary);
    }

    /// Remembers the resourceVersion of a copy of the cluster the API server just returned.
    pub fn record_version(&self, cluster: &MySQLCluster) {
        if let Some(version) = cluster.resource_version() {
            self.remembered(cluster, |m| m.known_version = Some(version));
        }
    }

    /// Whether this watched copy of the cluster may be older than one the operator has seen.
    pub fn is_stale(&self, watched: &MySQLCluster) -> bool {
        let known = self.remembered(watched, |m| m.known_version.clone());
        watched_copy_is_stale(known.as_deref(), watched.resource_version().as_deref())
    }

    /// Records a renewal of the cluster's primary lease.
    pub fn record_lease_renewal(&self, cluster: &MySQLCluster, at: Instant) {
        self.remembered(cluster, |m| m.lease_renewed = Some(at));
    }

    /// When the cluster's primary lease was last renewed, as far as this operator knows (its first
    /// look at the cluster, if it renewed none yet).
    pub fn last_lease_renewal(&self, cluster: &MySQLCluster, now: Instant) -> Instant {
        self.remembered(cluster, |m| *m.lease_renewed.get_or_insert(now))
    }

    /// When the servers were last checked against `spec.rootAccess` being `wanted`; `None` when
    /// never, or against another value.
    pub fn root_access_checked(
        &self,
        cluster: &MySQLCluster,
        wanted: RootAccess,
    ) -> Option<Instant> {
        self.remembered(cluster, |m| m.root_access_checked)
            .and_then(|(checked, at)| (checked == wanted).then_some(at))
    }

    /// Records that the servers were checked against `spec.rootAccess` being `wanted` at `at`.
    pub fn record_root_access_check(
        &self,
        cluster: &MySQLCluster,
        wanted: RootAccess,
        at: Instant,
    ) {
        self.remembered(cluster, |m| m.root_access_checked = Some((wanted, at)));
    }

    /// What the cluster's last round kept of its reads, if it ended at rest.
    pub fn snapshot(&self, cluster: &MySQLCluster) -> Option<Snapshot<KeptReads>> {
        self.remembered(cluster, |m| m.snapshot.clone())
    }

    /// Keeps a round's reads for the rounds after it.
    pub fn keep_snapshot(&self, cluster: &MySQLCluster, snapshot: Snapshot<KeptReads>) {
        self.remembered(cluster, |m| m.snapshot = Some(snapshot));
    }

    /// Drops the kept reads: the next round reads afresh.
    pub fn forget_snapshot(&self, cluster: &MySQLCluster) {
        self.remembered(cluster, |m| m.snapshot = None);
    }

    /// Counts this observation into the cluster's run of failed primary probes; returns the run.
    pub fn count_primary_failures(&self, cluster: &MySQLCluster, observation: &Observation) -> u32 {
        let failed = observation.current_primary.is_some_and(|primary| {
            !observation
                .instances
                .iter()
                .any(|i| i.ordinal == primary && matches!(i.mysql, MySqlObservation::Observed(_)))
        });
        self.remembered(cluster, |m| {
            m.primary_failures = if failed { m.primary_failures + 1 } else { 0 };
            m.primary_failures
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_of_clusters_that_are_gone_are_forgotten_and_the_rest_kept() {
        let memories = ClusterMemories::default();
        memories.of("uid-a", |m| m.primary_failures = 2);
        memories.of("uid-b", |m| m.failover_underway = Some(1));
        memories.of("uid-c", |m| m.known_version = Some("7".into()));
        assert_eq!(memories.len(), 3);

        let live: HashSet<String> = ["uid-a", "uid-c"].map(String::from).into();
        memories.forget_all_but(&live);

        assert_eq!(memories.len(), 2);
        assert_eq!(memories.of("uid-a", |m| m.primary_failures), 2);
        assert_eq!(
            memories.of("uid-c", |m| m.known_version.clone()),
            Some("7".into())
        );
        assert_eq!(
            memories.of("uid-b", |m| m.failover_underway),
            None,
            "a forgotten cluster starts afresh"
        );

        memories.forget_all_but(&HashSet::new());
        assert!(memories.is_empty());
    }

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
