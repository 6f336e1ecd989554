//! Backups: where a cluster's backups go (`spec.backup` of a `MySQLCluster`) and the
//! `MySQLBackup` resource, one per backup, made by the schedule or by a user.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A cluster's backups: the object store they go to, when they are taken and how many are kept.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// The S3-compatible object store.
    pub store: ObjectStoreSpec,
    /// When to take a backup, as a cron expression in UTC (minute hour day-of-month month
    /// day-of-week, e.g. `0 3 * * *`). Left out, backups are only taken on demand by creating a
    /// `MySQLBackup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // Five fields of the characters cron uses; the operator parses the rest and reports a
    // schedule it cannot use in the BackupScheduled condition.
    #[schemars(
        regex(pattern = r"^\s*[0-9*,/-]+(\s+[0-9*,/-]+){4}\s*$"),
        length(max = 128)
    )]
    pub schedule: Option<String>,
    /// How many completed backups of this cluster to keep (the oldest are deleted, with their
    /// objects in the store). Left out, every backup is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub keep: Option<i32>,
    /// Completed backups that completed more than this many days ago are deleted, with their
    /// objects, whatever `keep` allows; the newest completed backup is kept at any age, so a
    /// cluster whose backups stopped still has one. Applied, like `keep`, each time a backup of
    /// the cluster completes. Left out, age deletes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub keep_days: Option<i32>,
    /// CPU and memory of the backup Job's container: the throwaway mysqld that receives the
    /// clone (128 MiB buffer pool) and the compressor. Left out: requests of 100m CPU and
    /// 512Mi, a 1Gi memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
    /// Continuous archiving of the primary's binary log into the store, for point-in-time
    /// recovery. On by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlogs: Option<BinlogArchiveSpec>,
    /// Verification restores: on this schedule the newest completed backup is restored into a
    /// scratch server in a Job and checked; the result goes to its `MySQLBackup`'s
    /// `status.verification`. Left out, backups are not verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifySpec>,
}

/// When backups are proven restorable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifySpec {
    /// A cron expression in UTC, as `schedule`'s (e.g. `0 5 * * *`).
    #[schemars(
        regex(pattern = r"^\s*[0-9*,/-]+(\s+[0-9*,/-]+){4}\s*$"),
        length(max = 128)
    )]
    pub schedule: String,
}

/// How the binary log is archived: `<path>/<namespace>/<cluster>/binlogs/`, in segments of whole
/// transactions, from whichever instance is primary.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BinlogArchiveSpec {
    /// Archive the binary log. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The longest a committed transaction waits before its segment is uploaded: what a restore
    /// to the latest point can miss. Default 10.
    #[serde(default = "default_archive_delay")]
    #[schemars(range(min = 1, max = 3600))]
    pub delay_seconds: i32,
}

fn default_archive_delay() -> i32 {
    10
}

impl BackupSpec {
    /// The archive's settings, when the binary log is archived.
    pub fn binlog_archive(&self) -> Option<BinlogArchiveSpec> {
        let spec = self.binlogs.clone().unwrap_or(BinlogArchiveSpec {
            enabled: true,
            delay_seconds: default_archive_delay(),
        });
        spec.enabled.then_some(spec)
    }
}

/// An S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStoreSpec {
    /// The store's URL, `https://host[:port]` (or `http://` for a store inside the cluster).
    #[schemars(regex(pattern = r"^https?://[^/\s]+/?$"), length(max = 512))]
    pub endpoint: String,
    /// The bucket; it must exist.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"))]
    pub bucket: String,
    /// A path inside the bucket under which this cluster's backups are stored as
    /// `<path>/<namespace>/<cluster>/`. Empty: the bucket's root.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9!_.*'()/-]*$"), length(max = 256))]
    pub path: String,
    /// The region the requests are signed for (default `us-east-1`, which MinIO accepts).
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 64))]
    pub region: String,
    /// Address the bucket in the path (`https://host/bucket/key`) rather than as a host name
    /// (`https://bucket.host/key`). On by default: what MinIO and most S3-compatible stores
    /// need; AWS S3 takes both.
    #[serde(default = "default_true")]
    pub path_style: bool,
    /// A Secret in the cluster's namespace with the keys `access-key-id` and
    /// `secret-access-key`.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(max = 253)
    )]
    pub credentials_secret: String,
    /// A Secret key holding the PEM CA bundle that signs an `https` store's certificate, for a
    /// store with a private CA. Left out, the system's roots are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<super::SecretKeySelector>,
}

/// How a cluster's data begins.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapSpec {
    /// Restore a backup into instance 0 before it first starts; the other instances are then
    /// cloned from it. The restored data keeps its own accounts and their passwords, except
    /// root and the operator's accounts, which get this cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoverySpec>,
}

/// Which backup to restore: a `MySQLBackup`, or a backup in a store by the names it was taken
/// under (for a cluster, and backups, that no longer exist in Kubernetes).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.backup) != has(self.source)")
        .message("spec.bootstrap.recovery needs exactly one of backup (a MySQLBackup) and source (a backup in a store)"),
)]
pub struct RecoverySpec {
    /// A completed `MySQLBackup` in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub backup: Option<String>,
    /// A backup in an object store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<RecoverySourceSpec>,
    /// How far to recover past the backup, replaying the archived binary log of the cluster that
    /// took it. Left out: the backup's own point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<RecoveryTarget>,
}

/// The point a restore recovers to: exactly one of `time`, `gtidSet` and `latest`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("[has(self.time), has(self.gtidSet), has(self.latest) && self.latest].filter(x, x).size() == 1")
        .message("spec.bootstrap.recovery.target needs exactly one of time, gtidSet and latest: true"),
)]
pub struct RecoveryTarget {
    /// Every transaction committed at or before this time (RFC 3339, e.g.
    /// `2026-11-29T12:00:00.250Z`), none after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
    ))]
    pub time: Option<String>,
    /// Every transaction of the archive up to and including the last one of this GTID set
    /// (MySQL's text form, e.g. `3e11fa47-71ca-11e1-9e33-c80aa9429562:1-1041`): the shortest
    /// stretch of history that holds the set. Typically `@@gtid_executed` as it was at the
    /// point to return to. The restore fails if the archive does not reach it, or if the backup
    /// already holds more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 65536),
        regex(
            pattern = r"^\s*[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}(:([a-zA-Z_][a-zA-Z0-9_]{0,31}|[0-9]+(-[0-9]+)?))+(\s*,\s*[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}(:([a-zA-Z_][a-zA-Z0-9_]{0,31}|[0-9]+(-[0-9]+)?))+)*\s*$"
        )
    )]
    pub gtid_set: Option<String>,
    /// Everything the archive holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<bool>,
}

/// A backup in an object store, named as it was taken: `<path>/<namespace>/<cluster>/backups/<backup>`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoverySourceSpec {
    pub store: ObjectStoreSpec,
    /// The namespace of the cluster that took it.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// The cluster that took it.
    #[schemars(length(min = 1, max = 63))]
    pub cluster: String,
    /// The backup's name (its `MySQLBackup`'s).
    #[schemars(length(min = 1, max = 253))]
    pub backup: String,
}

/// A backup to restore, resolved: where it is and, when its `MySQLBackup` said so, what it must
/// hold.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSource {
    pub store: ObjectStoreSpec,
    /// The backup's directory in the store, below the store's path.
    pub directory: String,
    /// The `MySQLBackup` it came from, if it was named by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// The data's SHA-256, which the restore checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The GTID set the restored data must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_set: Option<String>,
    /// The binary log archive replayed after the backup, and to where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplaySource>,
}

/// How far to replay, on a restored backup, the binary log archive its manifest names.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplaySource {
    /// Replay transactions committed at or before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Replay up to the transaction that completes this GTID set. Neither this nor `until`:
    /// everything archived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_gtid_set: Option<String>,
}

/// The Secret keys of a store's credentials.
pub const ACCESS_KEY_ID_KEY: &str = "access-key-id";
/// See [`ACCESS_KEY_ID_KEY`].
pub const SECRET_ACCESS_KEY_KEY: &str = "secret-access-key";

fn default_region() -> String {
    "us-east-1".into()
}

fn default_true() -> bool {
    true
}

/// One physical backup of a `MySQLCluster`: a clone of one instance's data, compressed into the
/// cluster's object store, with the GTID set and binary log position it holds. Create one for an
/// on-demand backup; the schedule creates them too. Deleting it deletes its objects in the store.
// kube-derive takes one `printcolumn(...)` per column, which the lint mistakes for repetition.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mysql.sakila.dev",
    version = "v1alpha1",
    kind = "MySQLBackup",
    plural = "mysqlbackups",
    shortname = "myb",
    namespaced,
    status = "MySQLBackupStatus",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Size", type_ = "string", json_path = ".status.size"),
    printcolumn(
        name = "Verified",
        type_ = "string",
        json_path = ".status.verification.phase"
    ),
    printcolumn(
        name = "Source",
        type_ = "string",
        json_path = ".status.sourceInstance"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self == oldSelf")
        .message("a MySQLBackup's spec cannot change: create another MySQLBackup instead"),
)]
pub struct MySQLBackupSpec {
    /// The `MySQLCluster` in this namespace to back up; it must have `spec.backup`.
    #[schemars(regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub cluster: String,
}

/// Where a backup is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackupPhase {
    /// Waiting for the cluster (no store configured yet, no instance to copy).
    Pending,
    /// The copy is being taken and uploaded.
    Running,
    /// In the store, complete and checked.
    Completed,
    /// Did not complete; `message` says why. Nothing of it is used for a restore.
    Failed,
}

impl BackupPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
        }
    }

    /// Completed and Failed never change again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// The last verification restore of a completed backup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupVerification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<VerificationPhase>,
    /// The fire time of `spec.backup.verify.schedule` that asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// What was checked, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where a verification restore is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum VerificationPhase {
    /// Asked for; its Job starts next.
    Requested,
    /// Its Job restores and checks the backup.
    Running,
    /// The backup restored: its checksum, its GTID set, a server starting on it and every
    /// table checked.
    Passed,
    /// It did not restore; `message` says why.
    Failed,
}

/// What a backup holds and where it is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MySQLBackupStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupPhase>,
    /// Why the backup waits or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the copy started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the backup was complete in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// The instance the data was copied from (a replica when one was healthy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_instance: Option<String>,
    /// The server version of the data, which a restore must run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql_version: Option<String>,
    /// The GTID set the backup contains: every transaction up to the clone point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_set: Option<String>,
    /// The source's binary log file at the clone point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_file: Option<String>,
    /// The position in `binlogFile` at the clone point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_position: Option<i64>,
    /// Where it is: `s3://bucket/key` of the backup's directory (its `manifest.json` and
    /// `data.tar.zst`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The size of the compressed data in the store, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// `sizeBytes` for people, e.g. `12.3 MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// SHA-256 of the compressed data, hex; a restore checks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The store it is in, as the cluster's `spec.backup.store` was when it completed: a
    /// restore needs only this `MySQLBackup`, also once the cluster is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<ObjectStoreSpec>,
    /// The last verification restore (`spec.backup.verify` of the cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<BackupVerification>,
}

/// Bytes for people: `512 B`, `12.3 MiB`, `1.5 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_the_largest_unit_below_1024() {
        for (bytes, expected) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (12_897_485, "12.3 MiB"),
            (1_610_612_736, "1.5 GiB"),
        ] {
            assert_eq!(human_size(bytes), expected, "{bytes}");
        }
    }

    #[test]
    fn final_phases_are_completed_and_failed() {
        assert!(BackupPhase::Completed.is_final());
        assert!(BackupPhase::Failed.is_final());
        assert!(!BackupPhase::Pending.is_final());
        assert!(!BackupPhase::Running.is_final());
    }
}
