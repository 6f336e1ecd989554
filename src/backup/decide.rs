//! What to do next for one `MySQLBackup` (pure): wait for its cluster, start the Job from a
//! chosen donor, watch it, collect its result or report its failure.

use crate::api::{BackupPhase, InstanceStatus};
use crate::resources::naming;

/// What the backup controller saw in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupObservation {
    pub phase: Option<BackupPhase>,
    pub cluster: ClusterState,
    pub job: Option<JobState>,
}

/// The cluster being backed up.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterState {
    NotFound,
    /// It exists but has no `spec.backup`: nowhere to put a backup.
    NoBackupSpec,
    /// Its instances as its status last reported them.
    Ready {
        instances: Vec<InstanceStatus>,
    },
}

/// The backup's Job, as its status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Running,
    /// With the runner's termination message: what it did.
    Succeeded {
        message: String,
    },
    /// With the runner's termination message, when it left one: why it failed.
    Failed {
        message: String,
    },
}

/// The one step of this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupStep {
    /// Completed or failed: nothing more, ever.
    Done,
    /// Pending until the cluster can be backed up; says why.
    Wait { message: String },
    /// Create the Job, copying from `donor`.
    Start { donor: String },
    /// The Job runs.
    Watch,
    /// The Job succeeded: read the manifest from the store and complete.
    Collect,
    /// The Job failed.
    Fail { message: String },
}

pub fn decide(observation: &BackupObservation) -> BackupStep {
    if observation.phase.is_some_and(BackupPhase::is_final) {
        return BackupStep::Done;
    }
    match &observation.job {
        Some(JobState::Running) => return BackupStep::Watch,
        Some(JobState::Succeeded { .. }) => return BackupStep::Collect,
        Some(JobState::Failed { message }) => {
            return BackupStep::Fail {
                message: if message.trim().is_empty() {
                    "the backup Job failed without a message; see its pod's log".into()
                } else {
                    message.trim().to_string()
                },
            };
        }
        None => {}
    }
    if observation.phase == Some(BackupPhase::Running) {
        // Started, and the Job is gone before it finished (deleted by someone): the copy is
        // not known to be complete.
        return BackupStep::Fail {
            message: "the backup Job disappeared before it finished".into(),
        };
    }
    match &observation.cluster {
        ClusterState::NotFound => BackupStep::Wait {
            message: "the MySQLCluster does not exist".into(),
        },
        ClusterState::NoBackupSpec => BackupStep::Wait {
            message: "the MySQLCluster has no spec.backup: set spec.backup.store".into(),
        },
        ClusterState::Ready { instances } => match choose_donor(instances) {
            Some(donor) => BackupStep::Start { donor },
            None => BackupStep::Wait {
                message: "no instance of the cluster is ready to be copied".into(),
            },
        },
    }
}

/// A ready replica that is not being cloned (the copy then costs the primary nothing, and a
/// clone takes a backup lock that blocks DDL on its donor); the primary only when no replica
/// is ready. Among replicas, the one with the least lag, then the lowest ordinal.
pub fn choose_donor(instances: &[InstanceStatus]) -> Option<String> {
    let usable = |i: &&InstanceStatus| i.ready && !i.cloning && i.unreachable.is_none();
    instances
        .iter()
        .filter(usable)
        .filter(|i| i.role == naming::ROLE_REPLICA)
        .min_by_key(|i| {
            let lag = i
                .replication
                .as_ref()
                .and_then(|r| r.lag_seconds)
                .unwrap_or(i64::MAX);
            (lag, i.name.len(), i.name.clone())
        })
        .or_else(|| {
            instances
                .iter()
                .filter(usable)
                .find(|i| i.role == naming::ROLE_PRIMARY)
        })
        .map(|i| i.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ReplicationStatus;

    fn instance(name: &str, role: &str, ready: bool) -> InstanceStatus {
        InstanceStatus {
            name: name.into(),
            pod_ip: None,
            role: role.into(),
            ready,
            gtid_executed: None,
            replication: None,
            errant_gtids: None,
            unreachable: None,
            cloning: false,
        }
    }

    fn lagging(mut instance: InstanceStatus, seconds: i64) -> InstanceStatus {
        instance.replication = Some(ReplicationStatus {
            source: "db-0".into(),
            io_thread: "Running".into(),
            sql_thread: "Running".into(),
            lag_seconds: Some(seconds),
            semi_sync: true,
            last_error: None,
        });
        instance
    }

    fn ready_cluster(instances: Vec<InstanceStatus>) -> BackupObservation {
        BackupObservation {
            phase: None,
            cluster: ClusterState::Ready { instances },
            job: None,
        }
    }

    #[test]
    fn donors() {
        let primary = instance("db-0", "primary", true);
        let cases: Vec<(&str, Vec<InstanceStatus>, Option<&str>)> = vec![
            (
                "a ready replica over the primary",
                vec![primary.clone(), instance("db-1", "replica", true)],
                Some("db-1"),
            ),
            (
                "the replica with the least lag",
                vec![
                    primary.clone(),
                    lagging(instance("db-1", "replica", true), 30),
                    lagging(instance("db-2", "replica", true), 0),
                ],
                Some("db-2"),
            ),
            (
                "by ordinal when equal, db-2 before db-10",
                vec![
                    lagging(instance("db-10", "replica", true), 0),
                    lagging(instance("db-2", "replica", true), 0),
                ],
                Some("db-2"),
            ),
            (
                "never a replica being cloned or not ready",
                vec![
                    primary.clone(),
                    InstanceStatus {
                        cloning: true,
                        ..instance("db-1", "replica", true)
                    },
                    instance("db-2", "replica", false),
                ],
                Some("db-0"),
            ),
            (
                "the primary of a one-instance cluster",
                vec![primary.clone()],
                Some("db-0"),
            ),
            (
                "nothing when nothing is ready",
                vec![
                    instance("db-0", "primary", false),
                    instance("db-1", "unknown", true),
                ],
                None,
            ),
        ];
        for (name, instances, expected) in cases {
            assert_eq!(choose_donor(&instances).as_deref(), expected, "{name}");
        }
    }

    #[test]
    fn steps() {
        let replica = || {
            vec![
                instance("db-0", "primary", true),
                instance("db-1", "replica", true),
            ]
        };
        let cases: Vec<(&str, BackupObservation, BackupStep)> = vec![
            (
                "a new backup of a ready cluster starts from a replica",
                ready_cluster(replica()),
                BackupStep::Start {
                    donor: "db-1".into(),
                },
            ),
            (
                "a missing cluster is waited for",
                BackupObservation {
                    cluster: ClusterState::NotFound,
                    ..ready_cluster(vec![])
                },
                BackupStep::Wait {
                    message: "the MySQLCluster does not exist".into(),
                },
            ),
            (
                "a cluster without a store is waited for, saying what to set",
                BackupObservation {
                    cluster: ClusterState::NoBackupSpec,
                    ..ready_cluster(vec![])
                },
                BackupStep::Wait {
                    message: "the MySQLCluster has no spec.backup: set spec.backup.store".into(),
                },
            ),
            (
                "a running Job is watched",
                BackupObservation {
                    phase: Some(BackupPhase::Running),
                    job: Some(JobState::Running),
                    ..ready_cluster(replica())
                },
                BackupStep::Watch,
            ),
            (
                "a succeeded Job is collected",
                BackupObservation {
                    phase: Some(BackupPhase::Running),
                    job: Some(JobState::Succeeded {
                        message: String::new(),
                    }),
                    ..ready_cluster(replica())
                },
                BackupStep::Collect,
            ),
            (
                "a failed Job fails the backup with the runner's message",
                BackupObservation {
                    phase: Some(BackupPhase::Running),
                    job: Some(JobState::Failed {
                        message: "cloning db-1 failed: access denied\n".into(),
                    }),
                    ..ready_cluster(replica())
                },
                BackupStep::Fail {
                    message: "cloning db-1 failed: access denied".into(),
                },
            ),
            (
                "a Job that vanished mid-way fails the backup rather than starting another",
                BackupObservation {
                    phase: Some(BackupPhase::Running),
                    job: None,
                    ..ready_cluster(replica())
                },
                BackupStep::Fail {
                    message: "the backup Job disappeared before it finished".into(),
                },
            ),
            (
                "a completed backup is never touched again, even when its Job is gone",
                BackupObservation {
                    phase: Some(BackupPhase::Completed),
                    job: None,
                    ..ready_cluster(replica())
                },
                BackupStep::Done,
            ),
            (
                "a failed backup stays failed",
                BackupObservation {
                    phase: Some(BackupPhase::Failed),
                    job: Some(JobState::Succeeded {
                        message: String::new(),
                    }),
                    ..ready_cluster(replica())
                },
                BackupStep::Done,
            ),
        ];
        for (name, observation, expected) in cases {
            assert_eq!(decide(&observation), expected, "{name}");
        }
    }
}

/// How many completed backups a cluster keeps, and for how long (`spec.backup.keep` and
/// `keepDays`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    pub count: Option<usize>,
    pub max_age: Option<jiff::SignedDuration>,
}

impl Retention {
    pub fn of(spec: &crate::api::BackupSpec) -> Self {
        Self {
            count: spec.keep.and_then(|k| usize::try_from(k).ok()),
            max_age: spec
                .keep_days
                .map(|days| jiff::SignedDuration::from_hours(24 * i64::from(days))),
        }
    }

    /// Why a backup this old (`rank` 0 the newest) goes, if it does.
    fn expires(&self, rank: usize, age: Option<jiff::SignedDuration>) -> Option<String> {
        // The newest completed backup stays whatever its age: the cluster's last way back.
        if rank == 0 {
            return None;
        }
        if let Some(count) = self.count
            && rank >= count
        {
            return Some(format!("spec.backup.keep is {count}"));
        }
        match (self.max_age, age) {
            (Some(max), Some(age)) if age > max => Some(format!(
                "completed more than spec.backup.keepDays ({} days) ago",
                max.as_hours() / 24
            )),
            _ => None,
        }
    }
}

/// The completed backups of `cluster` that `retention` deletes at `now`, each with why, oldest
/// last. Failed backups are neither counted nor deleted (they hold nothing, and say why).
pub fn expired_backups(
    backups: &[crate::api::MySQLBackup],
    cluster: &str,
    retention: Retention,
    now: jiff::Timestamp,
) -> Vec<(String, String)> {
    let mut completed: Vec<(&crate::api::MySQLBackup, Option<jiff::Timestamp>)> = backups
        .iter()
        .filter(|b| b.spec.cluster == cluster)
        .filter_map(|b| {
            let status = b.status.as_ref()?;
            (status.phase == Some(BackupPhase::Completed))
                .then(|| (b, status.completed_at.as_ref().map(|t| t.0)))
        })
        .collect();
    // Newest first; the name breaks ties so the choice is stable.
    completed.sort_by(|(a, at_a), (b, at_b)| {
        at_b.cmp(at_a)
            .then_with(|| kube::ResourceExt::name_any(*b).cmp(&kube::ResourceExt::name_any(*a)))
    });
    completed
        .into_iter()
        .enumerate()
        .filter_map(|(rank, (b, at))| {
            let why = retention.expires(rank, at.map(|at| now.duration_since(at)))?;
            Some((kube::ResourceExt::name_any(b), why))
        })
        .collect()
}

#[cfg(test)]
mod retention_tests {
    use super::*;
    use crate::api::{MySQLBackup, MySQLBackupSpec, MySQLBackupStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn backup(name: &str, cluster: &str, phase: BackupPhase, completed: &str) -> MySQLBackup {
        let mut backup = MySQLBackup::new(
            name,
            MySQLBackupSpec {
                cluster: cluster.into(),
            },
        );
        backup.status = Some(MySQLBackupStatus {
            phase: Some(phase),
            completed_at: Some(Time(completed.parse().unwrap())),
            ..Default::default()
        });
        backup
    }

    #[test]
    fn retention_deletes_the_oldest_completed_backups_of_the_cluster_only() {
        let backups = vec![
            backup("d1", "db", BackupPhase::Completed, "2026-11-26T03:00:00Z"),
            backup("d3", "db", BackupPhase::Completed, "2026-11-28T03:00:00Z"),
            backup("d2", "db", BackupPhase::Completed, "2026-11-27T03:00:00Z"),
            backup("failed", "db", BackupPhase::Failed, "2026-11-25T03:00:00Z"),
            backup(
                "other",
                "shop",
                BackupPhase::Completed,
                "2026-11-20T03:00:00Z",
            ),
        ];
        let now: jiff::Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        let names = |retention: Retention, cluster: &str| -> Vec<String> {
            expired_backups(&backups, cluster, retention, now)
                .into_iter()
                .map(|(name, _)| name)
                .collect()
        };
        let count = |n| Retention {
            count: Some(n),
            max_age: None,
        };
        assert_eq!(names(count(2), "db"), ["d1"]);
        assert_eq!(names(count(1), "db"), ["d2", "d1"]);
        assert!(names(count(3), "db").is_empty());
        assert!(names(count(1), "shop").is_empty());
        assert!(names(Retention::default(), "db").is_empty(), "no limits");
    }

    #[test]
    fn retention_by_age_deletes_what_completed_before_the_limit_but_never_the_newest() {
        let backups = vec![
            backup("d1", "db", BackupPhase::Completed, "2026-11-26T03:00:00Z"),
            backup("d3", "db", BackupPhase::Completed, "2026-11-28T03:00:00Z"),
            backup("d2", "db", BackupPhase::Completed, "2026-11-27T03:00:00Z"),
            backup("failed", "db", BackupPhase::Failed, "2026-11-01T03:00:00Z"),
            backup(
                "old",
                "shop",
                BackupPhase::Completed,
                "2026-10-01T03:00:00Z",
            ),
        ];
        let spec = |keep: Option<i32>, keep_days: Option<i32>| crate::api::BackupSpec {
            store: serde_json::from_value(serde_json::json!({
                "endpoint": "http://minio:9000", "bucket": "b", "credentialsSecret": "s"
            }))
            .unwrap(),
            schedule: None,
            keep,
            keep_days,
            resources: None,
            binlogs: None,
            verify: None,
        };
        let at = |now: &str| now.parse::<jiff::Timestamp>().unwrap();
        let expired = |retention, cluster, now| expired_backups(&backups, cluster, retention, now);
        // One day: d1 (2.4 days old) and d2 (1.4 days) go, d3 (0.4 days) stays.
        let one_day = Retention::of(&spec(None, Some(1)));
        assert_eq!(
            expired(one_day, "db", at("2026-11-28T12:00:00Z")),
            [
                (
                    "d2".to_string(),
                    "completed more than spec.backup.keepDays (1 days) ago".to_string()
                ),
                (
                    "d1".to_string(),
                    "completed more than spec.backup.keepDays (1 days) ago".to_string()
                ),
            ]
        );
        // Exactly at the limit is not over it.
        assert!(expired(one_day, "db", at("2026-11-27T03:00:00Z")).is_empty());
        // Every backup too old: the newest stays, the cluster keeps a way back.
        let names: Vec<String> = expired(one_day, "db", at("2027-06-01T00:00:00Z"))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["d2", "d1"]);
        assert!(expired(one_day, "shop", at("2027-06-01T00:00:00Z")).is_empty());
        // Both limits: either one deletes, the count says so first.
        let both = Retention::of(&spec(Some(2), Some(2)));
        assert_eq!(
            expired(both, "db", at("2026-11-28T12:00:00Z")),
            [("d1".to_string(), "spec.backup.keep is 2".to_string())]
        );
        let both = Retention::of(&spec(Some(3), Some(1)));
        assert_eq!(
            expired(both, "db", at("2026-11-28T12:00:00Z"))
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>(),
            ["d2", "d1"]
        );
    }
}
