//! The Prometheus registry, served as text on `/metrics`.
//!
//! Labels are bounded: namespace, cluster name and small enums; an error's free-form message
//! never becomes a label, only its static `category()`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::ResourceExt;
use kube::core::DynamicObject;
use kube::runtime::reflector::Store;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::api::conditions::ConditionType;
use crate::api::{BackupPhase, MySQLBackup, MySQLClusterStatus, VerificationPhase};
use crate::mysql::ThreadState;

/// How a reconcile ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Error,
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let value = match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
        };
        EncodeLabelValue::encode(&value, encoder)
    }
}

/// The `Ready` condition of a cluster as a label value.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReadyState {
    True,
    False,
    Unknown,
}

impl EncodeLabelValue for ReadyState {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let value = match self {
            ReadyState::True => "true",
            ReadyState::False => "false",
            ReadyState::Unknown => "unknown",
        };
        EncodeLabelValue::encode(&value, encoder)
    }
}

const READY_STATES: [ReadyState; 3] = [ReadyState::True, ReadyState::False, ReadyState::Unknown];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    namespace: String,
    cluster: String,
    result: Outcome,
    /// The error's static category; empty on success.
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    result: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    namespace: String,
    cluster: String,
    ready: ReadyState,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    namespace: String,
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    namespace: String,
    cluster: String,
    /// One of the condition types the operator sets (a fixed, small set).
    r#type: String,
    status: ReadyState,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    namespace: String,
    cluster: String,
    r#type: String,
    /// The condition's reason: a CamelCase word from the operator's code, so a small set.
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    namespace: String,
    cluster: String,
    instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    namespace: String,
    cluster: String,
    instance: String,
    /// `primary`, `replica` or `unknown`.
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    namespace: String,
    cluster: String,
    /// A `BackupPhase` (`Pending` also for a backup not yet looked at).
    phase: &'static str,
}

fn cluster_labels(namespace: &str, cluster: &str) -> ClusterLabels {
    ClusterLabels {
        namespace: namespace.to_string(),
        cluster: cluster.to_string(),
    }
}

/// How the primary moved.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum PrimaryMove {
    /// The operator replaced a primary it could not reach.
    Failover,
    /// The primary moved as asked (`spec.primaryInstance`, a rollout, a scale-in).
    Switchover,
}

/// Series rebuilt at each scrape from the cached MySQLClusters: what the status says, so a
/// standby replica, or a leader just started, reports the same as the one that wrote it.
struct FromStatus {
    ready: Family<ReadyLabels, Gauge>,
    conditions: Family<ConditionLabels, Gauge>,
    reasons: Family<ReasonLabels, Gauge>,
    instances_desired: Family<ClusterLabels, Gauge>,
    instances_ready: Family<ClusterLabels, Gauge>,
    max_lag: Family<ClusterLabels, Gauge>,
    last_failover: Family<ClusterLabels, Gauge>,
    role: Family<RoleLabels, Gauge>,
    instance_ready: Family<InstanceLabels, Gauge>,
    lag: Family<InstanceLabels, Gauge>,
    replicating: Family<InstanceLabels, Gauge>,
    errant: Family<InstanceLabels, Gauge>,
    unreachable: Family<InstanceLabels, Gauge>,
    cloning: Family<InstanceLabels, Gauge>,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    durations: Family<DurationLabels, Histogram>,
    from_status: FromStatus,
    failovers: Family<ClusterLabels, Counter>,
    switchovers: Family<ClusterLabels, Counter>,
    archive_delay: Family<ClusterLabels, Gauge<f64, AtomicU64>>,
    archive_failures: Family<ClusterLabels, Counter>,
    from_backups: FromBackups,
    leader: Gauge,
    /// The controllers' caches of MySQLClusters, read at scrape time for the Ready gauge.
    stores: Mutex<Vec<Store<DynamicObject>>>,
    /// The backup controllers' caches of MySQLBackups, read at scrape time.
    backup_stores: Mutex<Vec<Store<MySQLBackup>>>,
    /// One scrape at a time: the Ready gauge is rebuilt on each.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn duration_histogram() -> Histogram {
    // 5 ms .. ~41 s: a no-op reconcile takes milliseconds, one that waits on MySQL seconds.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Metrics {
    /// A registry with every metric registered and zero samples.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sakila");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles of MySQLClusters by result and error category",
            reconciles.clone(),
        );
        let durations = Family::<DurationLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile of a MySQLCluster took, by result",
            durations.clone(),
        );
        let from_status = FromStatus::register(&mut registry);
        let failovers = Family::<ClusterLabels, Counter>::default();
        registry.register(
            "failovers",
            "Automatic failovers this operator process began (a primary it could not reach replaced)",
            failovers.clone(),
        );
        let switchovers = Family::<ClusterLabels, Counter>::default();
        registry.register(
            "switchovers",
            "Planned switchovers this operator process carried out",
            switchovers.clone(),
        );
        let archive_delay = Family::<ClusterLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "binlog_archive_delay_seconds",
            "How long the oldest transaction of the last archived binary log segment waited, from its commit to its upload",
            archive_delay.clone(),
        );
        let archive_failures = Family::<ClusterLabels, Counter>::default();
        registry.register(
            "binlog_archive_failures",
            "Binary log streams or uploads that failed (each is tried again after 5 s)",
            archive_failures.clone(),
        );
        let from_backups = FromBackups::register(&mut registry);
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this operator replica holds the leader lease and reconciles",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            durations,
            from_status,
            failovers,
            switchovers,
            archive_delay,
            archive_failures,
            from_backups,
            leader,
            stores: Mutex::new(Vec::new()),
            backup_stores: Mutex::new(Vec::new()),
            scrape: Mutex::new(()),
        }
    }

    /// Counts one reconcile of `namespace/cluster`; `error_category` is `None` on success.
    pub fn reconciled(
        &self,
        namespace: &str,
        cluster: &str,
        error_category: Option<&'static str>,
        took: Duration,
    ) {
        let result = match error_category {
            None => Outcome::Success,
            Some(_) => Outcome::Error,
        };
        self.reconciles
            .get_or_create(&ReconcileLabels {
                namespace: namespace.to_string(),
                cluster: cluster.to_string(),
                result,
                category: error_category.unwrap_or(""),
            })
            .inc();
        self.durations
            .get_or_create(&DurationLabels { result })
            .observe(took.as_secs_f64());
    }

    /// Counts a failover or a switchover of `namespace/cluster`.
    pub fn primary_moved(&self, namespace: &str, cluster: &str, how: PrimaryMove) {
        let family = match how {
            PrimaryMove::Failover => &self.failovers,
            PrimaryMove::Switchover => &self.switchovers,
        };
        family
            .get_or_create(&ClusterLabels {
                namespace: namespace.to_string(),
                cluster: cluster.to_string(),
            })
            .inc();
    }

    /// Records an archived segment whose oldest transaction waited `delay` for its upload.
    pub fn binlog_archived(&self, namespace: &str, cluster: &str, delay: Duration) {
        self.archive_delay
            .get_or_create(&cluster_labels(namespace, cluster))
            .set(delay.as_secs_f64());
    }

    /// Counts a failed binary log stream or upload.
    pub fn binlog_archive_failed(&self, namespace: &str, cluster: &str) {
        self.archive_failures
            .get_or_create(&cluster_labels(namespace, cluster))
            .inc();
    }

    /// Sets `sakila_leader`.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Adds a controller's cache of clusters to the ones the Ready gauge is computed from.
    pub fn watch_clusters(&self, store: Store<DynamicObject>) {
        self.stores.lock().unwrap().push(store);
    }

    /// Adds a backup controller's cache of backups to the ones the backup series come from.
    pub fn watch_backups(&self, store: Store<MySQLBackup>) {
        self.backup_stores.lock().unwrap().push(store);
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap();
        // Rebuilt from the caches, so a deleted cluster's series disappear with it.
        self.from_status.clear();
        for store in self.stores.lock().unwrap().iter() {
            for cluster in store.state() {
                self.from_status.export(&cluster);
            }
        }
        let backups: Vec<_> = self
            .backup_stores
            .lock()
            .unwrap()
            .iter()
            .flat_map(|store| store.state())
            .collect();
        self.from_backups
            .export(&backup_figures(backups.iter().map(|b| &**b)));
        self.render_registry()
    }

    fn render_registry(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl FromStatus {
    fn register(registry: &mut Registry) -> Self {
        Self {
            ready: gauge(
                registry,
                "cluster_ready",
                "1 for the state of each MySQLCluster's Ready condition, 0 for the other states",
            ),
            conditions: gauge(
                registry,
                "cluster_condition",
                "1 for the status of each condition of each MySQLCluster, 0 for the other statuses",
            ),
            reasons: gauge(
                registry,
                "cluster_condition_reason",
                "1 for the current reason of each condition of each MySQLCluster (e.g. Writable FailoverBlocked)",
            ),
            instances_desired: gauge(
                registry,
                "cluster_instances",
                "spec.instances of each MySQLCluster",
            ),
            instances_ready: gauge(
                registry,
                "cluster_ready_instances",
                "Instances ready in their role (status.readyInstances)",
            ),
            max_lag: gauge(
                registry,
                "cluster_max_lag_seconds",
                "spec.replication.maxLagSeconds: a replica further behind is not ready",
            ),
            last_failover: gauge(
                registry,
                "cluster_last_failover_timestamp_seconds",
                "When the last automatic failover was decided (status.lastFailoverTime), Unix time",
            ),
            role: gauge(
                registry,
                "instance_role",
                "1 for the role the operator gives each instance (primary, replica, unknown)",
            ),
            instance_ready: gauge(
                registry,
                "instance_ready",
                "1 when the instance's pod is ready in its role, else 0",
            ),
            lag: gauge(
                registry,
                "instance_replication_lag_seconds",
                "Seconds_Behind_Source of a replica as the operator last saw it; absent when unknown",
            ),
            replicating: gauge(
                registry,
                "instance_replicating",
                "1 when both replication threads of a replica run, 0 when one does not; absent on the primary",
            ),
            errant: gauge(
                registry,
                "instance_errant_transactions",
                "1 when the instance holds transactions the primary does not (status.instances[].errantGtids)",
            ),
            unreachable: gauge(
                registry,
                "instance_unreachable",
                "1 when the operator could not reach the instance's mysqld in its last round",
            ),
            cloning: gauge(
                registry,
                "instance_cloning",
                "1 while a clone replaces the instance's data (status.instances[].cloning)",
            ),
        }
    }

    fn clear(&self) {
        self.ready.clear();
        self.conditions.clear();
        self.reasons.clear();
        self.instances_desired.clear();
        self.instances_ready.clear();
        self.max_lag.clear();
        self.last_failover.clear();
        self.role.clear();
        self.instance_ready.clear();
        self.lag.clear();
        self.replicating.clear();
        self.errant.clear();
        self.unreachable.clear();
        self.cloning.clear();
    }

    /// The series of one cached cluster; fields the object lacks give no series.
    fn export(&self, object: &DynamicObject) {
        let cluster = ClusterLabels {
            namespace: object.namespace().unwrap_or_default(),
            cluster: object.name_any(),
        };
        let state = ready_state(object);
        for candidate in READY_STATES {
            self.ready
                .get_or_create(&ReadyLabels {
                    namespace: cluster.namespace.clone(),
                    cluster: cluster.cluster.clone(),
                    ready: candidate,
                })
                .set(i64::from(candidate == state));
        }
        let spec = &object.data["spec"];
        if let Some(instances) = spec["instances"].as_i64() {
            self.instances_desired
                .get_or_create(&cluster)
                .set(instances);
        }
        if let Some(lag) = spec["replication"]["maxLagSeconds"].as_i64() {
            self.max_lag.get_or_create(&cluster).set(lag);
        }
        let Ok(status) =
            serde_json::from_value::<MySQLClusterStatus>(object.data["status"].clone())
        else {
            return;
        };
        self.instances_ready
            .get_or_create(&cluster)
            .set(i64::from(status.ready_instances));
        if let Some(time) = &status.last_failover_time {
            self.last_failover
                .get_or_create(&cluster)
                .set(time.0.as_second());
        }
        for condition in &status.conditions {
            self.reasons
                .get_or_create(&ReasonLabels {
                    namespace: cluster.namespace.clone(),
                    cluster: cluster.cluster.clone(),
                    r#type: condition.type_.clone(),
                    reason: condition.reason.clone(),
                })
                .set(1);
            let state = condition_state(&condition.status);
            for candidate in READY_STATES {
                self.conditions
                    .get_or_create(&ConditionLabels {
                        namespace: cluster.namespace.clone(),
                        cluster: cluster.cluster.clone(),
                        r#type: condition.type_.clone(),
                        status: candidate,
                    })
                    .set(i64::from(candidate == state));
            }
        }
        for instance in &status.instances {
            let labels = InstanceLabels {
                namespace: cluster.namespace.clone(),
                cluster: cluster.cluster.clone(),
                instance: instance.name.clone(),
            };
            self.role
                .get_or_create(&RoleLabels {
                    namespace: cluster.namespace.clone(),
                    cluster: cluster.cluster.clone(),
                    instance: instance.name.clone(),
                    role: instance.role.clone(),
                })
                .set(1);
            self.instance_ready
                .get_or_create(&labels)
                .set(i64::from(instance.ready));
            self.errant
                .get_or_create(&labels)
                .set(i64::from(instance.errant_gtids.is_some()));
            self.unreachable
                .get_or_create(&labels)
                .set(i64::from(instance.unreachable.is_some()));
            self.cloning
                .get_or_create(&labels)
                .set(i64::from(instance.cloning));
            if let Some(replication) = &instance.replication {
                let running = replication.io_thread == ThreadState::Running.as_str()
                    && replication.sql_thread == ThreadState::Running.as_str();
                self.replicating
                    .get_or_create(&labels)
                    .set(i64::from(running));
                if let Some(lag) = replication.lag_seconds {
                    self.lag.get_or_create(&labels).set(lag);
                }
            }
        }
    }
}

/// What the backups of one cluster say, for its series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackupFigures {
    /// Of the backup that completed last: when (Unix seconds), how long it took, its size.
    pub last_completed: Option<i64>,
    pub last_duration_seconds: Option<f64>,
    pub last_size_bytes: Option<i64>,
    /// How many of its `MySQLBackup`s are in each phase.
    pub phases: BTreeMap<&'static str, i64>,
    /// Of the verification that ended last: when, and whether it passed.
    pub last_verification: Option<(i64, bool)>,
}

const BACKUP_PHASES: [BackupPhase; 4] = [
    BackupPhase::Pending,
    BackupPhase::Running,
    BackupPhase::Completed,
    BackupPhase::Failed,
];

/// The figures of each cluster that has backups, by namespace and cluster.
pub fn backup_figures<'a>(
    backups: impl IntoIterator<Item = &'a MySQLBackup>,
) -> BTreeMap<(String, String), BackupFigures> {
    let mut figures: BTreeMap<(String, String), BackupFigures> = BTreeMap::new();
    for backup in backups {
        let key = (
            backup.namespace().unwrap_or_default(),
            backup.spec.cluster.clone(),
        );
        let entry = figures.entry(key).or_insert_with(|| BackupFigures {
            phases: BACKUP_PHASES.iter().map(|p| (p.as_str(), 0)).collect(),
            ..Default::default()
        });
        let status = backup.status.clone().unwrap_or_default();
        let phase = status.phase.unwrap_or(BackupPhase::Pending);
        *entry.phases.entry(phase.as_str()).or_default() += 1;
        if phase == BackupPhase::Completed
            && let Some(completed) = &status.completed_at
            && entry
                .last_completed
                .is_none_or(|last| completed.0.as_second() > last)
        {
            entry.last_completed = Some(completed.0.as_second());
            entry.last_duration_seconds = status
                .started_at
                .as_ref()
                .map(|started| (completed.0 - started.0).total(jiff::Unit::Second))
                .and_then(Result::ok);
            entry.last_size_bytes = status.size_bytes;
        }
        if let Some(verification) = &status.verification
            && let Some(ended) = &verification.completed_at
            && let Some(phase) = verification.phase
            && matches!(phase, VerificationPhase::Passed | VerificationPhase::Failed)
            && entry
                .last_verification
                .is_none_or(|(last, _)| ended.0.as_second() > last)
        {
            entry.last_verification =
                Some((ended.0.as_second(), phase == VerificationPhase::Passed));
        }
    }
    figures
}

/// Series rebuilt at each scrape from the cached MySQLBackups, per cluster.
struct FromBackups {
    last_completed: Family<ClusterLabels, Gauge>,
    last_duration: Family<ClusterLabels, Gauge<f64, AtomicU64>>,
    last_size: Family<ClusterLabels, Gauge>,
    phases: Family<PhaseLabels, Gauge>,
    last_verification: Family<ClusterLabels, Gauge>,
    last_verification_passed: Family<ClusterLabels, Gauge>,
}

impl FromBackups {
    fn register(registry: &mut Registry) -> Self {
        let last_duration = Family::<ClusterLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "backup_last_duration_seconds",
            "How long the cluster's last completed backup took, from its start to complete in the store",
            last_duration.clone(),
        );
        Self {
            last_completed: gauge(
                registry,
                "backup_last_completed_timestamp_seconds",
                "When the cluster's last completed backup completed, Unix time (its age: time() minus this)",
            ),
            last_duration,
            last_size: gauge(
                registry,
                "backup_last_size_bytes",
                "The compressed size of the cluster's last completed backup in the store",
            ),
            phases: gauge(
                registry,
                "backups",
                "The cluster's MySQLBackups in each phase (Pending, Running, Completed, Failed)",
            ),
            last_verification: gauge(
                registry,
                "backup_last_verification_timestamp_seconds",
                "When the last verification restore of one of the cluster's backups ended, Unix time",
            ),
            last_verification_passed: gauge(
                registry,
                "backup_last_verification_passed",
                "1 when the last verification restore of one of the cluster's backups passed, 0 when it failed",
            ),
        }
    }

    fn export(&self, figures: &BTreeMap<(String, String), BackupFigures>) {
        self.last_completed.clear();
        self.last_duration.clear();
        self.last_size.clear();
        self.phases.clear();
        self.last_verification.clear();
        self.last_verification_passed.clear();
        for ((namespace, cluster), figures) in figures {
            let labels = cluster_labels(namespace, cluster);
            for (phase, count) in &figures.phases {
                self.phases
                    .get_or_create(&PhaseLabels {
                        namespace: namespace.clone(),
                        cluster: cluster.clone(),
                        phase,
                    })
                    .set(*count);
            }
            if let Some(completed) = figures.last_completed {
                self.last_completed.get_or_create(&labels).set(completed);
            }
            if let Some(duration) = figures.last_duration_seconds {
                self.last_duration.get_or_create(&labels).set(duration);
            }
            if let Some(size) = figures.last_size_bytes {
                self.last_size.get_or_create(&labels).set(size);
            }
            if let Some((ended, passed)) = figures.last_verification {
                self.last_verification.get_or_create(&labels).set(ended);
                self.last_verification_passed
                    .get_or_create(&labels)
                    .set(i64::from(passed));
            }
        }
    }
}

fn gauge<L>(registry: &mut Registry, name: &str, help: &str) -> Family<L, Gauge>
where
    L: EncodeLabelSet + Clone + std::fmt::Debug + std::hash::Hash + Eq + Send + Sync + 'static,
{
    let family = Family::default();
    registry.register(name, help, family.clone());
    family
}

fn condition_state(status: &str) -> ReadyState {
    match status {
        "True" => ReadyState::True,
        "False" => ReadyState::False,
        _ => ReadyState::Unknown,
    }
}

/// The status of the `Ready` condition of a cluster read as an untyped object.
pub fn ready_state(cluster: &DynamicObject) -> ReadyState {
    let conditions = cluster.data["status"]["conditions"].as_array();
    let ready = conditions.and_then(|cs| {
        cs.iter()
            .find(|c| c["type"] == ConditionType::Ready.as_str())
    });
    condition_state(ready.and_then(|c| c["status"].as_str()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::{ApiResource, ObjectMeta};
    use serde_json::json;

    fn cluster(status: serde_json::Value) -> DynamicObject {
        let resource = ApiResource::erase::<crate::api::MySQLCluster>(&());
        let mut object = DynamicObject::new("db", &resource).within("shop");
        object.metadata = ObjectMeta {
            name: Some("db".into()),
            namespace: Some("shop".into()),
            ..ObjectMeta::default()
        };
        object.data = json!({ "status": status });
        object
    }

    #[test]
    fn the_ready_state_follows_the_ready_condition_and_is_unknown_without_one() {
        let cases = [
            (
                json!({"conditions": [{"type": "Ready", "status": "True"}]}),
                ReadyState::True,
            ),
            (
                json!({"conditions": [{"type": "Ready", "status": "False"}]}),
                ReadyState::False,
            ),
            (
                json!({"conditions": [{"type": "Progressing", "status": "True"}]}),
                ReadyState::Unknown,
            ),
            (json!(null), ReadyState::Unknown),
        ];
        for (status, expected) in cases {
            assert_eq!(ready_state(&cluster(status.clone())), expected, "{status}");
        }
    }

    /// Renders the series of one cached cluster, as a scrape would.
    fn scraped(object: &DynamicObject) -> String {
        let metrics = Metrics::new();
        metrics.from_status.export(object);
        metrics.render_registry()
    }

    #[test]
    fn the_status_of_a_cluster_becomes_cluster_and_instance_series() {
        let mut object = cluster(json!({
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "r", "message": "",
                 "lastTransitionTime": "2026-11-28T10:00:00Z"},
                {"type": "Replicating", "status": "False", "reason": "ReplicaStopped", "message": "",
                 "lastTransitionTime": "2026-11-28T10:00:00Z"},
            ],
            "readyInstances": 1,
            "lastFailoverTime": "2026-11-28T10:00:00Z",
            "instances": [
                {"name": "db-0", "role": "primary", "ready": true},
                {"name": "db-1", "role": "replica", "ready": false,
                 "errantGtids": "aaaaaaaa-0000-0000-0000-000000000000:1",
                 "replication": {"source": "db-0", "ioThread": "Running",
                                 "sqlThread": "Stopped", "lagSeconds": 42, "semiSync": false}},
                {"name": "db-2", "role": "unknown", "ready": false, "unreachable": "timed out",
                 "cloning": true},
            ],
        }));
        object.data["spec"] = json!({"instances": 3, "replication": {"maxLagSeconds": 30}});
        let text = scraped(&object);
        let expected = [
            r#"sakila_cluster_ready{namespace="shop",cluster="db",ready="false"} 1"#,
            r#"sakila_cluster_ready{namespace="shop",cluster="db",ready="true"} 0"#,
            r#"sakila_cluster_condition{namespace="shop",cluster="db",type="Replicating",status="false"} 1"#,
            r#"sakila_cluster_condition{namespace="shop",cluster="db",type="Replicating",status="true"} 0"#,
            r#"sakila_cluster_condition_reason{namespace="shop",cluster="db",type="Replicating",reason="ReplicaStopped"} 1"#,
            r#"sakila_cluster_instances{namespace="shop",cluster="db"} 3"#,
            r#"sakila_cluster_ready_instances{namespace="shop",cluster="db"} 1"#,
            r#"sakila_cluster_max_lag_seconds{namespace="shop",cluster="db"} 30"#,
            r#"sakila_cluster_last_failover_timestamp_seconds{namespace="shop",cluster="db"} 1795860000"#,
            r#"sakila_instance_role{namespace="shop",cluster="db",instance="db-0",role="primary"} 1"#,
            r#"sakila_instance_role{namespace="shop",cluster="db",instance="db-2",role="unknown"} 1"#,
            r#"sakila_instance_ready{namespace="shop",cluster="db",instance="db-0"} 1"#,
            r#"sakila_instance_ready{namespace="shop",cluster="db",instance="db-1"} 0"#,
            r#"sakila_instance_replicating{namespace="shop",cluster="db",instance="db-1"} 0"#,
            r#"sakila_instance_replication_lag_seconds{namespace="shop",cluster="db",instance="db-1"} 42"#,
            r#"sakila_instance_errant_transactions{namespace="shop",cluster="db",instance="db-1"} 1"#,
            r#"sakila_instance_errant_transactions{namespace="shop",cluster="db",instance="db-0"} 0"#,
            r#"sakila_instance_unreachable{namespace="shop",cluster="db",instance="db-2"} 1"#,
            r#"sakila_instance_cloning{namespace="shop",cluster="db",instance="db-2"} 1"#,
            r#"sakila_instance_cloning{namespace="shop",cluster="db",instance="db-0"} 0"#,
        ];
        for line in expected {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        // The primary has no replication channel: no lag, no replicating series for it.
        assert!(
            !text.contains(
                r#"sakila_instance_replicating{namespace="shop",cluster="db",instance="db-0"}"#
            ),
            "{text}"
        );
    }

    #[test]
    fn a_cluster_without_status_has_only_its_spec_and_unknown_readiness() {
        let mut object = cluster(json!(null));
        object.data["spec"] = json!({"instances": 1});
        let text = scraped(&object);
        assert!(
            text.contains(
                r#"sakila_cluster_ready{namespace="shop",cluster="db",ready="unknown"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"sakila_cluster_instances{namespace="shop",cluster="db"} 1"#),
            "{text}"
        );
        assert!(!text.contains("sakila_instance_role{"), "{text}");
    }

    #[test]
    fn failovers_and_switchovers_are_counted_apart() {
        let metrics = Metrics::new();
        metrics.primary_moved("shop", "db", PrimaryMove::Failover);
        metrics.primary_moved("shop", "db", PrimaryMove::Switchover);
        metrics.primary_moved("shop", "db", PrimaryMove::Switchover);
        let text = metrics.render();
        assert!(
            text.contains(r#"sakila_failovers_total{namespace="shop",cluster="db"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sakila_switchovers_total{namespace="shop",cluster="db"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn reconciles_are_labelled_by_cluster_result_and_category_only() {
        let metrics = Metrics::new();
        metrics.reconciled("shop", "db", None, Duration::from_millis(20));
        metrics.reconciled("shop", "db", Some("ApplyFailed"), Duration::from_millis(20));
        metrics.set_leader(true);
        let text = metrics.render();
        assert!(text.contains(
            r#"sakila_reconciles_total{namespace="shop",cluster="db",result="success",category=""} 1"#
        ), "{text}");
        assert!(text.contains(
            r#"sakila_reconciles_total{namespace="shop",cluster="db",result="error",category="ApplyFailed"} 1"#
        ), "{text}");
        assert!(
            text.contains(r#"sakila_reconcile_duration_seconds_count{result="error"} 1"#),
            "{text}"
        );
        assert!(text.contains("sakila_leader 1"), "{text}");
    }

    fn backup(name: &str, cluster: &str, status: serde_json::Value) -> MySQLBackup {
        serde_json::from_value(json!({
            "apiVersion": "mysql.sakila.dev/v1alpha1", "kind": "MySQLBackup",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"cluster": cluster},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn the_backups_of_a_cluster_give_its_last_backup_and_verification_and_phase_counts() {
        let backups = [
            backup(
                "old",
                "db",
                json!({"phase": "Completed",
                "startedAt": "2026-11-28T03:00:00Z", "completedAt": "2026-11-28T03:00:40Z",
                "sizeBytes": 100,
                "verification": {"phase": "Failed", "completedAt": "2026-11-28T05:00:00Z"}}),
            ),
            backup(
                "new",
                "db",
                json!({"phase": "Completed",
                "startedAt": "2026-11-29T03:00:00Z", "completedAt": "2026-11-29T03:00:12.5Z",
                "sizeBytes": 200,
                "verification": {"phase": "Passed", "completedAt": "2026-11-29T05:00:00Z"}}),
            ),
            backup("broken", "db", json!({"phase": "Failed"})),
            backup("asked", "db", json!(null)),
            // A verification under way says nothing yet.
            backup(
                "checking",
                "web",
                json!({"phase": "Completed",
                "startedAt": "2026-11-29T03:00:00Z", "completedAt": "2026-11-29T03:01:00Z",
                "verification": {"phase": "Running"}}),
            ),
        ];
        let figures = backup_figures(&backups);
        let db = &figures[&("shop".to_string(), "db".to_string())];
        let at = |t: &str| t.parse::<jiff::Timestamp>().unwrap().as_second();
        assert_eq!(db.last_completed, Some(at("2026-11-29T03:00:12Z")));
        assert_eq!(db.last_duration_seconds, Some(12.5));
        assert_eq!(db.last_size_bytes, Some(200));
        assert_eq!(
            db.last_verification,
            Some((at("2026-11-29T05:00:00Z"), true))
        );
        assert_eq!(
            db.phases,
            BTreeMap::from([
                ("Completed", 2),
                ("Failed", 1),
                ("Pending", 1),
                ("Running", 0)
            ])
        );
        let web = &figures[&("shop".to_string(), "web".to_string())];
        assert_eq!((web.last_verification, web.last_size_bytes), (None, None));

        let metrics = Metrics::new();
        metrics.from_backups.export(&figures);
        let text = metrics.render_registry();
        for line in [
            r#"sakila_backup_last_completed_timestamp_seconds{namespace="shop",cluster="db"} 1795921212"#,
            r#"sakila_backup_last_duration_seconds{namespace="shop",cluster="db"} 12.5"#,
            r#"sakila_backup_last_size_bytes{namespace="shop",cluster="db"} 200"#,
            r#"sakila_backups{namespace="shop",cluster="db",phase="Failed"} 1"#,
            r#"sakila_backup_last_verification_passed{namespace="shop",cluster="db"} 1"#,
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
        assert!(
            !text.contains(
                r#"sakila_backup_last_verification_passed{namespace="shop",cluster="web"}"#
            )
        );
    }
}
