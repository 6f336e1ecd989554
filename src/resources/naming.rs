//! Names and labels of everything the operator creates. These names are a contract with users.

use std::collections::BTreeMap;

use crate::api::names::{PRIMARY_SERVICE_SUFFIX, REPLICAS_SERVICE_SUFFIX};

/// The API group, also the prefix of the operator's labels and annotations.
pub const GROUP: &str = "mysql.sakila.dev";
/// The label that says whether a pod is the `primary` or a `replica`; the client Services select on it.
pub const ROLE_LABEL: &str = "mysql.sakila.dev/role";
/// Role label value of the writable instance.
pub const ROLE_PRIMARY: &str = "primary";
/// Role label value of a read-only instance.
pub const ROLE_REPLICA: &str = "replica";
/// The annotation holding a hash of what the operator last applied to an object.
pub const APPLIED_HASH_ANNOTATION: &str = "mysql.sakila.dev/applied-hash";
/// Set to "true" on a replica's pod to have its data replaced by a clone (e.g. to discard errant
/// transactions); the operator removes it once done.
pub const RECLONE_ANNOTATION: &str = "mysql.sakila.dev/reclone";
/// The pod template annotation that changes when a part of the mysqld configuration that only
/// a restart applies changes (settings applied online are left out of it).
pub const CONFIG_HASH_ANNOTATION: &str = "mysql.sakila.dev/config-hash";
/// The pod template annotation listing the `spec.mysqlConfig` settings that need a restart, as
/// `name=value` lines: comparing a pod's copy with the template's names what a rollout changes.
pub const RESTART_SETTINGS_ANNOTATION: &str = "mysql.sakila.dev/restart-settings";
/// The pod annotation listing the settings the operator applied online to that instance's
/// mysqld, as `name=value` lines; a new pod has none until they are applied.
pub const ONLINE_SETTINGS_ANNOTATION: &str = "mysql.sakila.dev/online-settings";
/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "sakila-operator";

/// Container running mysqld.
pub const MYSQLD_CONTAINER: &str = "mysqld";
/// Init container that lays out the instance's identity and data directory.
pub const INIT_CONTAINER: &str = "init";
/// The MySQL protocol port.
pub const MYSQL_PORT: i32 = 3306;

/// Keys of the credentials Secret.
pub const ROOT_PASSWORD_KEY: &str = "root-password";
pub const OPERATOR_PASSWORD_KEY: &str = "operator-password";
pub const REPLICATION_PASSWORD_KEY: &str = "replication-password";
pub const PROBE_PASSWORD_KEY: &str = "probe-password";
/// The clone donor's password; only in Secrets made since the donor has its own account (see
/// `ClusterPasswords::required_keys`).
pub const CLONE_PASSWORD_KEY: &str = "clone-password";

/// Keys of a TLS Secret, in the layout cert-manager writes (`ca.key` only in the operator's own).
pub const CA_CERT_KEY: &str = "ca.crt";
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";
pub const CA_KEY_KEY: &str = "ca.key";
/// Where the pods mount the TLS Secret's certificates and server key (never the CA's key).
pub const TLS_DIR: &str = "/etc/mysql-tls";
/// The cluster DNS domain the certificate's fully qualified names end in.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// MySQL accounts the operator creates on every instance.
pub const OPERATOR_USER: &str = "sakila-operator";
pub const REPLICATION_USER: &str = "sakila-repl";
pub const PROBE_USER: &str = "sakila-probe";
/// The account recipients clone from (`BACKUP_ADMIN` only), apart from replication's.
pub const CLONE_USER: &str = "sakila-clone";
/// The table in which the primary holds its lease (read by the fence container).
pub const LEASE_TABLE: &str = "sakila.primary_lease";
/// The container running the self-fence loop beside mysqld.
pub const FENCE_CONTAINER: &str = "fence";
/// The well-known node labels the pods spread over by default.
pub const HOSTNAME_TOPOLOGY_KEY: &str = "kubernetes.io/hostname";
pub const ZONE_TOPOLOGY_KEY: &str = "topology.kubernetes.io/zone";
/// The agent beside mysqld: its probes, and its metrics with `spec.monitoring.enabled`.
pub const AGENT_CONTAINER: &str = "agent";
/// The `agent::REVISION` the pod template's agent is of.
pub const AGENT_REVISION_ANNOTATION: &str = "mysql.sakila.dev/agent-revision";
/// The agent's metrics port name, which the chart's PodMonitor scrapes.
pub const METRICS_PORT_NAME: &str = "metrics";

/// StatefulSet, PodDisruptionBudget and headless Service share the cluster's name.
pub fn statefulset(cluster: &str) -> String {
    cluster.to_string()
}

/// The headless Service that gives each pod a stable DNS name.
pub fn headless_service(cluster: &str) -> String {
    cluster.to_string()
}

/// The read-write Service, always in front of the primary.
pub fn primary_service(cluster: &str) -> String {
    format!("{cluster}{PRIMARY_SERVICE_SUFFIX}")
}

/// The read-only Service, in front of the replicas.
pub fn replicas_service(cluster: &str) -> String {
    format!("{cluster}{REPLICAS_SERVICE_SUFFIX}")
}

/// The Secret with the root password and the operator's own accounts.
pub fn credentials_secret(cluster: &str) -> String {
    format!("{cluster}-credentials")
}

/// The passwords the servers have now, per key of the credentials Secret, and where a rotation
/// to the Secret's stands (`controller/password_rotation.rs`); the operator's, not for users.
pub fn applied_passwords_secret(cluster: &str) -> String {
    format!("{cluster}-applied-passwords")
}

/// The Secret with the CA and the server certificate the operator issues the cluster.
pub fn tls_secret(cluster: &str) -> String {
    format!("{cluster}-tls")
}

/// The ConfigMap with my.cnf and the pod's scripts, named by the hash of its content: a pod
/// template refers to exactly the configuration it was made with, which never changes under it.
pub fn config_map(cluster: &str, hash: &str) -> String {
    format!("{cluster}-config-{hash}")
}

/// What every `config_map` name of the cluster starts with.
pub fn config_map_prefix(cluster: &str) -> String {
    format!("{cluster}-config-")
}

/// The one ConfigMap of a cluster before configurations were named by hash; pods made then still
/// read it until they are rolled.
pub fn legacy_config_map(cluster: &str) -> String {
    format!("{cluster}-config")
}

/// The ConfigMap with the online settings my.cnf includes: the values mysqld took, which change
/// without a restart and are shared by every pod template.
pub fn online_config_map(cluster: &str) -> String {
    format!("{cluster}-online-config")
}

/// The PodDisruptionBudget.
pub fn pod_disruption_budget(cluster: &str) -> String {
    cluster.to_string()
}

/// The NetworkPolicy of a cluster with `spec.networkPolicy.enabled`.
/// The ConfigMap with the restore's settings, there only until the cluster's first primary.
pub fn restore_config_map(cluster: &str) -> String {
    format!("{cluster}-restore")
}

pub fn network_policy(cluster: &str) -> String {
    cluster.to_string()
}

/// The label of the operator's pods (the chart's `sakila.selectorLabels`).
pub const OPERATOR_POD_LABEL: (&str, &str) = ("app.kubernetes.io/name", "sakila-operator");

/// The pod of instance `ordinal`.
pub fn pod(cluster: &str, ordinal: u8) -> String {
    format!("{cluster}-{ordinal}")
}

/// The ordinal of a pod of this cluster, from its name.
pub fn ordinal_of(cluster: &str, pod_name: &str) -> Option<u8> {
    pod_name
        .strip_prefix(cluster)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// The StatefulSet's volume claim template; the PVCs are `data-<pod>`.
pub const DATA_VOLUME: &str = "data";
/// The pod volume with the TLS Secret's certificates: a pod that has it serves the cluster's
/// certificate (a pod made before TLS serves mysqld's self-signed one).
pub const TLS_VOLUME: &str = "tls";

/// The data volume (PVC) of instance `ordinal`, as the StatefulSet controller names it.
pub fn data_claim(cluster: &str, ordinal: u8) -> String {
    format!("{DATA_VOLUME}-{}", pod(cluster, ordinal))
}

/// The ordinal of a data volume of this cluster, from its name.
pub fn data_claim_ordinal(cluster: &str, claim_name: &str) -> Option<u8> {
    ordinal_of(
        cluster,
        claim_name.strip_prefix(DATA_VOLUME)?.strip_prefix('-')?,
    )
}

/// The stable DNS name of a pod under the headless Service.
pub fn pod_host(cluster: &str, namespace: &str, ordinal: u8) -> String {
    format!(
        "{}.{}.{namespace}.svc",
        pod(cluster, ordinal),
        headless_service(cluster)
    )
}

/// The standard label naming the application.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The standard label naming the cluster an object belongs to.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// The standard label naming the tool that manages an object, and Sakila's value of it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "sakila";

/// Labels that identify the pods of one cluster; also the StatefulSet's (immutable) selector.
pub fn selector_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), "mysql".to_string()),
        (INSTANCE_LABEL.to_string(), cluster.to_string()),
    ])
}

/// The standard labels on every object the operator creates for a cluster.
pub fn common_labels(cluster: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(cluster);
    labels.insert("app.kubernetes.io/component".into(), "database".into());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels
}

/// `selector_labels` as a label selector, for list calls.
pub fn selector(cluster: &str) -> String {
    selector_labels(cluster)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The label selector of every object Sakila manages, for watches.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selector_names_the_application_and_the_cluster() {
        assert_eq!(
            selector("db"),
            "app.kubernetes.io/instance=db,app.kubernetes.io/name=mysql"
        );
    }

    #[test]
    fn ordinal_is_read_back_only_from_this_clusters_pods() {
        assert_eq!(ordinal_of("db", "db-2"), Some(2));
        assert_eq!(ordinal_of("db", "db-primary"), None);
        assert_eq!(ordinal_of("db", "dbx-1"), None);
        assert_eq!(ordinal_of("db-1", "db-1-0"), Some(0));
    }

    #[test]
    fn data_claims_are_named_after_the_template_and_the_pod() {
        assert_eq!(data_claim("db", 2), "data-db-2");
        assert_eq!(data_claim_ordinal("db", "data-db-2"), Some(2));
        assert_eq!(data_claim_ordinal("db", "data-dbx-2"), None);
        assert_eq!(data_claim_ordinal("db", "db-2"), None);
        assert_eq!(data_claim_ordinal("data", "data-data-0"), Some(0));
    }

    #[test]
    fn pod_host_is_the_headless_service_name() {
        assert_eq!(pod_host("db", "shop", 1), "db-1.db.shop.svc");
    }
}
