//! The `MySQLCluster` resource: what a user asks for (spec) and what the operator reports (status).
//!
//! Field names are a contract with users; validation lives in the CRD itself (OpenAPI bounds and
//! CEL rules) so that the API server refuses a bad manifest with a message naming the field.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::names::{
    dns_label_rule, length_rule, reserved_keys_message_expression, reserved_keys_rule,
    suffix_message, suffix_rule,
};
use super::owned_settings::{
    owned_settings_message_expression, owned_settings_rule, refused_settings_rule,
};

/// The MySQL version used when `spec.version` is left out.
pub const DEFAULT_MYSQL_VERSION: &str = "9.7.4";
/// The number of instances used when `spec.instances` is left out.
pub const DEFAULT_INSTANCES: i32 = 3;
/// The smallest `spec.storage.size` MySQL can initialise a data directory in. Measured with
/// MySQL 9.7.4 and the operator's settings (binary log on): `mysqld --initialize` leaves 203 MiB
/// (redo log 100, mysql.ibd 29, two undo tablespaces 32, doublewrite 16, ibdata1 12, ibtmp1 12);
/// on ext4 it failed in a 224 MiB volume and succeeded in a 256 MiB one. See docs/storage.md.
pub const MIN_STORAGE_SIZE: &str = "256Mi";

/// CEL: the new `version` is not lower than the old one, comparing major, minor and patch as
/// numbers (the pattern on `version` guarantees three numeric parts).
const VERSION_NOT_LOWER: &str = "int(self.version.split('.')[0]) > int(oldSelf.version.split('.')[0]) || (int(self.version.split('.')[0]) == int(oldSelf.version.split('.')[0]) && (int(self.version.split('.')[1]) > int(oldSelf.version.split('.')[1]) || (int(self.version.split('.')[1]) == int(oldSelf.version.split('.')[1]) && int(self.version.split('.')[2]) >= int(oldSelf.version.split('.')[2]))))";

/// A replicated MySQL cluster: one writable primary and read-only replicas.
// kube-derive takes one `printcolumn(...)` per column, which the lint mistakes for repetition.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mysql.sakila.dev",
    version = "v1alpha1",
    kind = "MySQLCluster",
    plural = "mysqlclusters",
    shortname = "myc",
    namespaced,
    status = "MySQLClusterStatus",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Instances",
        type_ = "string",
        json_path = ".status.instancesSummary",
        description = "ready/desired instances"
    ),
    printcolumn(
        name = "Primary",
        type_ = "string",
        json_path = ".status.currentPrimary"
    ),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.version"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    // On the whole object, so the rule can read the status: a size that was never carried out
    // (the StorageClass refused it) may be undone, a volume that really grew cannot shrink.
    // `string()`: a quantity may be written as a number. A size that is not a quantity at all is
    // left to the rule on the field, which names the problem.
    validation = Rule::new(
        "!isQuantity(string(self.spec.storage.size)) || !isQuantity(string(oldSelf.spec.storage.size)) || quantity(string(self.spec.storage.size)).compareTo(quantity(string(oldSelf.spec.storage.size))) >= 0 || (has(self.status) && has(self.status.volumeSize) && isQuantity(string(self.status.volumeSize)) && quantity(string(self.spec.storage.size)).compareTo(quantity(string(self.status.volumeSize))) >= 0)"
    )
    .message("cannot shrink: volumes cannot be made smaller; it may only go back down to status.volumeSize, the size the volumes have")
    .field_path(".spec.storage.size"),
    // The name rules run on creation only (`optionalOldSelf`: no old object): a name never
    // changes, and a cluster created before a rule existed must stay editable. No fieldPath:
    // the schema does not declare metadata, and the message names the field.
    validation = Rule::new(format!("oldSelf.hasValue() || {}", dns_label_rule()))
        .optional_old_self(true)
        .message("metadata.name must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter and ending with a letter or digit): it is also the name of the cluster's headless Service"),
    validation = Rule::new(format!("oldSelf.hasValue() || {}", length_rule()))
        .optional_old_self(true)
        .message(Message::Message(format!("metadata.name must be at most {} characters: the StatefulSet's pods carry the label controller-revision-hash: <name>-<hash of up to 10 characters>, and a label value is at most 63", super::names::MAX_NAME_LENGTH))),
    validation = Rule::new(format!("oldSelf.hasValue() || ({})", suffix_rule()))
        .optional_old_self(true)
        .message(Message::Message(suffix_message())),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(VERSION_NOT_LOWER)
        .message("spec.version cannot be lowered: MySQL does not support downgrading a data directory in place; restore a backup into a new cluster instead")
        .field_path(".version"),
    validation = Rule::new("!has(self.primaryInstance) || self.primaryInstance < self.instances")
        .message("primaryInstance must be the ordinal of one of the instances (below spec.instances); move the primary before scaling below it")
        .field_path(".primaryInstance"),
)]
pub struct MySQLClusterSpec {
    /// Number of MySQL servers, 1 to 9. Instance 0 starts as the primary.
    #[serde(default = "default_instances")]
    #[schemars(range(min = 1, max = 9))]
    pub instances: i32,

    /// MySQL server version, e.g. `9.7.4`. Selects the image unless `image` is set.
    #[serde(default = "default_version")]
    #[schemars(
        regex(pattern = r"^[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}$"),
        length(max = 14)
    )]
    pub version: String,

    /// Container image for mysqld; overrides the image derived from `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,

    /// Persistent storage of each instance.
    pub storage: StorageSpec,

    /// Compute resources of the mysqld container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// `[mysqld]` settings. Settings the operator owns (server_id, gtid_mode, read_only, ...) are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    // Bounds keep the CEL rules below inside the API server's cost budget.
    #[schemars(extend("maxProperties" = 128, "additionalProperties" = {"type": "string", "maxLength": 1024}))]
    #[x_kube(
        validation = Rule::new("self.all(k, k.matches('^[A-Za-z0-9_.-]+$'))")
            .message("mysqlConfig keys may contain only letters, digits, '_', '-' and '.'"),
        validation = Rule::new("self.all(k, !self[k].contains('\\n') && !self[k].contains('\\r'))")
            .message("mysqlConfig values must be a single line"),
        validation = Rule::new(owned_settings_rule())
            .message(Message::Expression(owned_settings_message_expression())),
        validation = refused_settings_rule(0),
        validation = refused_settings_rule(1),
        validation = refused_settings_rule(2),
        validation = refused_settings_rule(3),
    )]
    pub mysql_config: BTreeMap<String, String>,

    /// Replication between the instances.
    #[serde(default, skip_serializing_if = "ReplicationSpec::is_default")]
    pub replication: ReplicationSpec,

    /// Secret key holding the root password; generated into `<name>-credentials` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_password_secret: Option<SecretKeySelector>,

    /// Where root may log in from: `Remote` (default) keeps `root@'%'` open; `LocalOnly` locks
    /// it on every instance, so root logs in only inside a pod (`kubectl exec`, the Unix
    /// socket). Switching back unlocks it; its password and privileges are kept either way.
    #[serde(default, skip_serializing_if = "RootAccess::is_default")]
    pub root_access: RootAccess,

    /// Where and how the pods are scheduled, and extra pod metadata.
    #[serde(default, skip_serializing_if = "PodTemplateOverrides::is_empty")]
    pub pod_template: PodTemplateOverrides,

    /// The read-write Service `<name>-primary`.
    #[serde(default, skip_serializing_if = "ClientServiceSpec::is_empty")]
    pub primary_service: ClientServiceSpec,

    /// The read-only Service `<name>-replicas`.
    #[serde(default, skip_serializing_if = "ClientServiceSpec::is_empty")]
    pub replicas_service: ClientServiceSpec,

    /// The ordinal of the instance that should be the primary. Changing it is a planned
    /// switchover; left out, the primary stays wherever bootstrap or the last failover put it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 8))]
    pub primary_instance: Option<i32>,

    /// Automatic failover when the primary is lost.
    #[serde(default, skip_serializing_if = "FailoverSpec::is_default")]
    pub failover: FailoverSpec,

    /// While true the operator takes no action on the cluster (no failover, no switchover, no
    /// changes to its resources); it only reports what it observes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,

    /// MySQL metrics for Prometheus.
    #[serde(default, skip_serializing_if = "MonitoringSpec::is_default")]
    pub monitoring: MonitoringSpec,

    /// Who may connect to the instances, as a NetworkPolicy (enforced by the network plugins
    /// that implement NetworkPolicy).
    #[serde(default, skip_serializing_if = "NetworkPolicySpec::is_default")]
    pub network_policy: NetworkPolicySpec,

    /// Encryption of client connections, replication and clones: the certificate mysqld serves,
    /// and whether unencrypted TCP connections are refused.
    #[serde(default, skip_serializing_if = "TlsSpec::is_default")]
    pub tls: TlsSpec,

    /// How a password changed in the credentials Secret (or in `rootPasswordSecret`) reaches
    /// the servers: set as the accounts' own with the old one still accepted, then the old one
    /// discarded.
    #[serde(default, skip_serializing_if = "PasswordRotationSpec::is_default")]
    pub password_rotation: PasswordRotationSpec,

    /// Physical backups to an S3-compatible object store, on a schedule and on demand
    /// (`MySQLBackup`). Left out, the cluster has no backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<super::BackupSpec>,

    /// How the cluster's data begins: left out, empty; `recovery` restores a backup into it.
    /// Read when the cluster is created; it cannot change afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("self == oldSelf")
            .message("spec.bootstrap cannot change: it only says how the cluster's data began"),
    )]
    pub bootstrap: Option<super::BootstrapSpec>,
}

/// The certificate every instance serves, and what TLS is required for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A Secret in the cert-manager layout (`tls.crt`, `tls.key`, `ca.crt`) holding the server
    /// certificate, e.g. a cert-manager Certificate's. It must cover the names the operator's
    /// certificate covers (docs/security.md). Left out, the operator issues the cluster its own
    /// CA and certificate into `<name>-tls` and renews the certificate before it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(min = 1, max = 253)
    )]
    pub secret_name: Option<String>,
    /// Further DNS names or IP addresses the operator's certificate covers, e.g. a
    /// LoadBalancer's address; `*.` wildcards allowed. Not used with `secretName`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // A pattern per item rather than a CEL rule: it costs the API server's CEL budget nothing.
    #[schemars(
        length(max = 32),
        inner(
            regex(pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$|^[0-9a-fA-F:.]+$"),
            length(min = 1, max = 253)
        )
    )]
    pub extra_names: Vec<String>,
    /// How long the operator's certificates are valid, in minutes (default 129600: 90 days);
    /// each is renewed, from the same CA, when a third of its life is left. Not used with
    /// `secretName`.
    #[serde(default = "default_certificate_lifetime_minutes")]
    #[schemars(range(min = 3, max = 2628000))]
    pub certificate_lifetime_minutes: i32,
    /// Refuse unencrypted TCP connections (`require_secure_transport`). On by default; turn it
    /// off for clients that cannot use TLS. Connections over the pod's Unix socket are local
    /// and always allowed.
    #[serde(default = "default_true")]
    pub require_secure_transport: bool,
}

impl Default for TlsSpec {
    fn default() -> Self {
        Self {
            secret_name: None,
            extra_names: Vec::new(),
            certificate_lifetime_minutes: default_certificate_lifetime_minutes(),
            require_secure_transport: true,
        }
    }
}

fn default_certificate_lifetime_minutes() -> i32 {
    90 * 24 * 60
}

impl TlsSpec {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// Password rotation with dual passwords.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordRotationSpec {
    /// How long the old password keeps working once every instance accepts the new one: the
    /// time clients (and the pods' own probes, which read the Secret as the kubelet refreshes
    /// it, up to about a minute later) have to switch. Then `DISCARD OLD PASSWORD`.
    #[serde(default = "default_keep_old_password_seconds")]
    #[schemars(range(min = 0, max = 604800))]
    pub keep_old_password_seconds: i32,
}

impl Default for PasswordRotationSpec {
    fn default() -> Self {
        Self {
            keep_old_password_seconds: default_keep_old_password_seconds(),
        }
    }
}

fn default_keep_old_password_seconds() -> i32 {
    120
}

impl PasswordRotationSpec {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// A NetworkPolicy for the cluster's pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create the NetworkPolicy `<name>`: MySQL's port 3306 only from the cluster's own pods
    /// (replication, clones, the self-fence), the operator's pods and `allowedClients`; with
    /// monitoring, the exporter's port 9104 from anywhere. Other ports are closed, egress is
    /// not restricted. Turning it off deletes the policy.
    #[serde(default)]
    pub enabled: bool,
    /// Further clients of port 3306, as NetworkPolicy `from` peers (podSelector,
    /// namespaceSelector, ipBlock), e.g. the application's pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_clients: Vec<NetworkPolicyPeer>,
}

impl NetworkPolicySpec {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// MySQL's own metrics, served beside each mysqld.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Have the agent container of every pod serve MySQL's metrics on port 9104 (`metrics`) at
    /// `/metrics`, and annotate the pods for Prometheus. Turning it on or off rolls the pods
    /// one at a time, as any pod template change does.
    #[serde(default)]
    pub enabled: bool,
}

impl MonitoringSpec {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// When and how the operator replaces a lost primary.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverSpec {
    /// Replace a lost primary automatically. When false, a lost primary is reported and a
    /// person decides (e.g. by setting `primaryInstance`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How often the primary is probed over SQL, in seconds; pod events are seen at once.
    #[serde(default = "default_probe_interval_seconds")]
    #[schemars(range(min = 1, max = 60))]
    pub probe_interval_seconds: i32,
    /// Consecutive failed probes of a primary whose pod still runs before it is declared lost.
    /// A pod that is gone, a mysqld container that is not running, or an address that refuses
    /// connections is lost at once.
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1, max = 20))]
    pub failure_threshold: i32,
    /// At most one automatic failover within this many seconds; a primary lost again sooner is
    /// left to restart in place, and the status says so.
    #[serde(default = "default_min_interval_seconds")]
    #[schemars(range(min = 0, max = 86400))]
    pub min_interval_seconds: i32,
    /// Replace an instance whose node has been lost (not Ready, or deleted) for
    /// `lostNodeSeconds`, never the primary's before a failover moved it: a volume bound to the
    /// lost node (a local disk) is deleted with the pod and the instance is cloned afresh on
    /// another node; a volume that can move keeps its data and only the pod is deleted. When
    /// false, such an instance is only reported and waits for its node.
    #[serde(default = "default_true")]
    pub replace_lost_instances: bool,
    /// How long a node stays not Ready before its instance is replaced, in seconds. Kubernetes
    /// marks a node not Ready about 40 s after its last heartbeat; this counts from then.
    #[serde(default = "default_lost_node_seconds")]
    #[schemars(range(min = 10, max = 86400))]
    pub lost_node_seconds: i32,
}

impl Default for FailoverSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            probe_interval_seconds: default_probe_interval_seconds(),
            failure_threshold: default_failure_threshold(),
            min_interval_seconds: default_min_interval_seconds(),
            replace_lost_instances: true,
            lost_node_seconds: default_lost_node_seconds(),
        }
    }
}

impl FailoverSpec {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

fn default_true() -> bool {
    true
}

fn default_probe_interval_seconds() -> i32 {
    2
}

fn default_failure_threshold() -> i32 {
    3
}

fn default_min_interval_seconds() -> i32 {
    300
}

fn default_lost_node_seconds() -> i32 {
    120
}

/// Persistent storage of each instance, one PVC per instance from a StorageClass.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)")
        .message("storageClassName is immutable: it cannot be set, changed or removed after creation")
        .field_path(".storageClassName"),
    validation = Rule::new("has(self.selector) == has(oldSelf.selector) && (!has(self.selector) || self.selector == oldSelf.selector)")
        .message("selector is immutable: it cannot be set, changed or removed after creation")
        .field_path(".selector"),
)]
pub struct StorageSpec {
    /// Size of each instance's volume, e.g. `10Gi`. May grow (when the StorageClass allows volume expansion), never shrink.
    #[x_kube(
        validation = Rule::new("isQuantity(string(self))").message("size must be a quantity such as 10Gi"),
        validation = Rule::new(format!("!isQuantity(string(self)) || quantity(string(self)).compareTo(quantity('{MIN_STORAGE_SIZE}')) >= 0"))
            .message(Message::Message(format!("size must be at least {MIN_STORAGE_SIZE}: an initialised MySQL 9.7 data directory with its redo log, undo tablespaces and binary log takes about 203 MiB"))),
    )]
    pub size: Quantity,
    /// StorageClass of the volumes; the cluster default when left out. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub storage_class_name: Option<String>,
    /// Binds each instance's PVC only to a PersistentVolume with these labels: volumes an
    /// administrator made in advance (e.g. local disks, one PV per node, with a StorageClass
    /// that provisions nothing). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// What happens to the volumes when the MySQLCluster is deleted: `Retain` (default) keeps
    /// them and the credentials Secret, so a new cluster of the same name starts on the same
    /// data; `Delete` removes them with the cluster.
    #[serde(default, skip_serializing_if = "DeletionPolicy::is_default")]
    pub deletion_policy: DeletionPolicy,
}

/// Where root may log in from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RootAccess {
    /// From anywhere that reaches port 3306, with the root password (`root@'%'` open).
    #[default]
    Remote,
    /// Only inside the instance's pod (`root@'localhost'`); `root@'%'` is locked.
    LocalOnly,
}

impl RootAccess {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RootAccess::Remote => "Remote",
            RootAccess::LocalOnly => "LocalOnly",
        }
    }
}

/// What happens to a cluster's volumes (and credentials) when the cluster is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the PVCs and the credentials Secret; delete them by hand when no longer wanted.
    #[default]
    Retain,
    /// Delete the PVCs and the credentials Secret with the cluster.
    Delete,
}

impl DeletionPolicy {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The value of a StatefulSet's `persistentVolumeClaimRetentionPolicy.whenDeleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionPolicy::Retain => "Retain",
            DeletionPolicy::Delete => "Delete",
        }
    }
}

/// Replication settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationSpec {
    /// A replica further behind than this is not ready, so `<name>-replicas` stops routing to it.
    #[serde(default = "default_max_lag_seconds")]
    #[schemars(range(min = 1, max = 86400))]
    pub max_lag_seconds: i32,
}

impl Default for ReplicationSpec {
    fn default() -> Self {
        Self {
            max_lag_seconds: default_max_lag_seconds(),
        }
    }
}

impl ReplicationSpec {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

fn default_max_lag_seconds() -> i32 {
    30
}

/// A key of a Secret in the cluster's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// Scheduling knobs and extra metadata for the MySQL pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Extra labels on every MySQL pod (the operator's own labels win on conflict); keys under
    /// `mysql.sakila.dev/` are the operator's and refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new(reserved_keys_rule())
        .message(Message::Expression(reserved_keys_message_expression("spec.podTemplate.labels"))))]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on every MySQL pod; keys under `mysql.sakila.dev/` are the operator's
    /// and refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new(reserved_keys_rule())
        .message(Message::Expression(reserved_keys_message_expression("spec.podTemplate.annotations"))))]
    pub annotations: BTreeMap<String, String>,
    /// Pod affinity rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Pod tolerations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Node selector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// How the pods spread over the cluster's topology. Left out, they spread over nodes and
    /// zones as far as the scheduler can (`whenUnsatisfiable: ScheduleAnyway` on
    /// `kubernetes.io/hostname` and `topology.kubernetes.io/zone`), so a one-node cluster still
    /// runs every instance; give `DoNotSchedule` constraints here to require the spread.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
}

impl PodTemplateOverrides {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Type and annotations of a client Service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientServiceSpec {
    /// Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Extra annotations on the Service (e.g. for a cloud load balancer).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ClientServiceSpec {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// The Kubernetes Service types a client Service may have.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
    /// Also through a cloud load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The value Kubernetes expects in `Service.spec.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// What the operator observed and did, last time it looked.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MySQLClusterStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing, Degraded, ReconcileSuccess.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The pod name of the writable instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_primary: Option<String>,
    /// Instances that are ready in their role.
    #[serde(default)]
    pub ready_instances: i32,
    /// `ready/desired`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances_summary: Option<String>,
    /// Per-instance state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceStatus>,
    /// The MySQL version the instances run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Instances that have joined the cluster (seeded and replicating at least once); the
    /// semi-sync majority is counted among them, so a replica still being seeded blocks nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// When the operator last decided an automatic failover (for `spec.failover.minIntervalSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover_time: Option<Time>,
    /// The primary the last automatic failover replaced. Only this instance's transactions that
    /// no replica holds are discarded automatically when it returns (semi-sync guarantees no
    /// client was told they committed); anyone else's are reported, never thrown away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover_from: Option<String>,
    /// The largest size a data volume has or is growing to; spec.storage.size may not go below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<Quantity>,
    /// Transactions the operator threw away when it re-cloned an instance: a former primary's
    /// commits that no replica acknowledged (so no client was told they succeeded), or errant
    /// ones a user asked to discard. The most recent last; at most 10 are kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discarded_transactions: Vec<DiscardedTransactions>,
    /// The online settings of `spec.mysqlConfig` (by variable name) that my.cnf holds: each
    /// value once mysqld took it with `SET GLOBAL`, so a restarting mysqld never reads a value
    /// mysqld refused; a refused value leaves the last one it took. Absent until the operator
    /// first applied settings: my.cnf then holds the spec as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_settings: Option<BTreeMap<String, String>>,
    /// The settings of `spec.mysqlConfig` that the rolling restart in progress, or the last
    /// one, applies: the `ConfigApplied` condition names them once the restart is over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_restart_settings: Vec<String>,
    /// The backup the cluster's data was restored from (`spec.bootstrap.recovery`), as the
    /// operator found it when the cluster was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<super::RestoreSource>,
    /// The fire time of `spec.backup.schedule` the last scheduled backup was taken for (or when
    /// the schedule was first seen); the next is due after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled_backup: Option<Time>,
    /// The fire time of `spec.backup.verify.schedule` the last verification was asked for (or
    /// when the schedule was first seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled_verification: Option<Time>,
    /// The `spec.rootAccess` last put in place on every instance; absent until `LocalOnly`
    /// first was (root's remote login is then as the data directory was made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_access: Option<RootAccess>,
}

/// One re-clone that discarded transactions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscardedTransactions {
    /// The pod whose data was replaced.
    pub instance: String,
    /// The GTID set it held that the rest of the cluster did not.
    pub gtids: String,
    /// When the clone was made.
    pub time: Time,
}

/// The state of one MySQL instance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// Pod name, `<cluster>-<ordinal>`.
    pub name: String,
    /// The pod's IP when it was observed. After a pod is force-deleted its server may live on
    /// for a while at this address, and a failover demotes it there first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    /// `primary`, `replica`, or `unknown` while it cannot be observed.
    pub role: String,
    /// Whether the instance is ready in its role.
    pub ready: bool,
    /// `@@gtid_executed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_executed: Option<String>,
    /// Replication from the primary, for a replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationStatus>,
    /// Transactions this replica has that the primary lacks (it is kept out of promotion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errant_gtids: Option<String>,
    /// Why the instance could not be observed, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<String>,
    /// A clone is replacing the instance's data (started by this operator, or reported in
    /// progress by the recipient's `performance_schema.clone_status`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cloning: bool,
}

/// A replica's replication state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationStatus {
    /// The source's host.
    pub source: String,
    /// `Running`, `Connecting` or `Stopped`.
    pub io_thread: String,
    /// `Running` or `Stopped`.
    pub sql_thread: String,
    /// Seconds behind the source, when the SQL thread runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<i64>,
    /// Whether the I/O thread acknowledges transactions (semi-sync).
    pub semi_sync: bool,
    /// The last I/O or SQL thread error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

fn default_instances() -> i32 {
    DEFAULT_INSTANCES
}

fn default_version() -> String {
    DEFAULT_MYSQL_VERSION.to_string()
}
