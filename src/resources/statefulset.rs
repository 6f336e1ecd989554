//! The StatefulSet: one pod and one PVC per instance, mysqld started directly (no entrypoint script).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapKeySelector, ConfigMapVolumeSource, Container, ContainerPort,
    DownwardAPIVolumeFile, DownwardAPIVolumeSource, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    ExecAction, HTTPGetAction, KeyToPath, Lifecycle, LifecycleHandler, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, SeccompProfile, SecretKeySelector, SecretVolumeSource,
    SecurityContext, TopologySpreadConstraint, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config_map::{
    ALIVE_SCRIPT, FENCE_SCRIPT, INIT_SCRIPT, MY_CNF, ONLINE_CONFIG_DIR, PRE_STOP_SCRIPT,
    READY_SCRIPT,
};
use super::{meta, mysql_settings, naming};
use crate::backup::job;
use crate::validate::ValidatedCluster;

/// The uid and gid of the `mysql` user in the official image (and in Sakila's Debian image).
const MYSQL_UID: i64 = 999;
/// Long enough for InnoDB to flush a large buffer pool on shutdown.
const TERMINATION_GRACE_SECONDS: i64 = 300;
/// How long a deleted primary's preStop hook waits for the operator's switchover; well inside
/// the grace period, so mysqld still has minutes to shut down cleanly.
const PRE_STOP_WAIT_SECONDS: u32 = 60;
/// The PVC template's name; PVCs are `data-<pod>`.
pub const DATA_VOLUME: &str = naming::DATA_VOLUME;

const CONFIG_VOLUME: &str = "config";
const ONLINE_CONFIG_VOLUME: &str = "online-config";
const RUNTIME_VOLUME: &str = "sakila-run";
const SOCKET_VOLUME: &str = "mysqld-run";
const TMP_VOLUME: &str = "tmp";
const PODINFO_VOLUME: &str = "podinfo";
/// The probe account's password as the servers have it (`<name>-applied-passwords`): init.sh
/// writes probe.cnf with it, and fence.sh switches probe.cnf when a rotation changes it.
const PASSWORDS_VOLUME: &str = "applied-passwords";
const PASSWORDS_DIR: &str = "/etc/sakila-passwords";

/// The size in the volume claim template: `spec.storage.size` for a new StatefulSet, and the
/// size an existing one was created with.
///
/// Kubernetes refuses any change to a StatefulSet's volumeClaimTemplates, so a template that
/// followed `spec.storage.size` would make every apply fail after a resize. The template only
/// shapes PVCs not created yet; existing ones are grown one by one (`crate::storage`), and so are
/// PVCs created later from the old size. Deleting the StatefulSet with its pods orphaned and
/// creating it again with a new template would also work, but leaves the pods without a
/// controller in between, and buys nothing the expansion does not already do.
pub fn claim_template_size(cluster: &ValidatedCluster, existing: Option<&StatefulSet>) -> Quantity {
    existing
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.volume_claim_templates.as_ref())
        .and_then(|templates| {
            templates
                .iter()
                .find(|t| t.metadata.name.as_deref() == Some(DATA_VOLUME))
        })
        .and_then(|t| t.spec.as_ref()?.resources.as_ref()?.requests.as_ref())
        .and_then(|requests| requests.get("storage"))
        .cloned()
        .unwrap_or_else(|| cluster.storage_size.clone())
}

/// What the StatefulSet built carries over from the one that exists.
#[derive(Debug, Clone, PartialEq)]
pub struct Carried {
    /// The data volume claim template's size: `claim_template_size`.
    pub claim_size: Quantity,
    /// The agent's image, `None` for no agent: `agent_image`.
    pub agent_image: Option<String>,
}

impl Carried {
    /// From the StatefulSet as it is, if there is one.
    pub fn from_existing(cluster: &ValidatedCluster, existing: Option<&StatefulSet>) -> Self {
        Self {
            claim_size: claim_template_size(cluster, existing),
            agent_image: agent_image(cluster, existing),
        }
    }
}

/// The agent's image: the one the pods run, so that a new operator image alone does not roll
/// every cluster's pods (the agent is the operator's binary); the operator's own when the pods
/// roll anyway (a new mysqld image or a configuration only a restart applies), when they have no
/// agent yet, or when their agent is of an older `agent::REVISION`. `None` when the operator
/// does not know its image.
pub fn agent_image(cluster: &ValidatedCluster, existing: Option<&StatefulSet>) -> Option<String> {
    let operator_image = cluster.operator_image.clone()?;
    let template = existing
        .and_then(|s| s.spec.as_ref())
        .map(|spec| &spec.template);
    let annotation = |key: &str| {
        template
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(key))
            .map(String::as_str)
    };
    let image_of = |name: &str| {
        template
            .and_then(|t| t.spec.as_ref())
            .and_then(|spec| spec.containers.iter().find(|c| c.name == name))
            .and_then(|c| c.image.as_deref())
    };
    let rolls_anyway = image_of(naming::MYSQLD_CONTAINER) != Some(cluster.image.as_str())
        || annotation(naming::CONFIG_HASH_ANNOTATION)
            != Some(super::config_map::restart_hash(cluster).as_str())
        || annotation(naming::AGENT_REVISION_ANNOTATION)
            != Some(crate::agent::REVISION.to_string().as_str());
    match image_of(naming::AGENT_CONTAINER) {
        Some(running) if !rolls_anyway => Some(running.to_string()),
        _ => Some(operator_image),
    }
}

/// Builds the StatefulSet. `config_hash` is `config_map::restart_hash`, which also names the
/// ConfigMap the template mounts: a configuration change that only a restart applies rolls the
/// pods, and nothing else about the operator does. `carried` comes from `Carried::from_existing`.
pub fn build_statefulset(
    cluster: &ValidatedCluster,
    config_hash: &str,
    carried: &Carried,
) -> StatefulSet {
    let agent_image = carried.agent_image.as_deref();
    let name = naming::statefulset(&cluster.name);
    let mut pod_labels = cluster.pod_template.labels.clone();
    pod_labels.extend(naming::common_labels(&cluster.name));
    let mut pod_annotations = cluster.pod_template.annotations.clone();
    pod_annotations.insert(naming::CONFIG_HASH_ANNOTATION.into(), config_hash.into());
    pod_annotations.insert(
        naming::RESTART_SETTINGS_ANNOTATION.into(),
        mysql_settings::encode(&mysql_settings::split(&cluster.mysql_config).restart),
    );
    if cluster.exporter_image.is_some() {
        // The convention of Prometheus' kubernetes-pods scrape job, for a Prometheus without
        // the operator's PodMonitor (the chart ships one).
        pod_annotations.insert("prometheus.io/scrape".into(), "true".into());
        pod_annotations.insert(
            "prometheus.io/port".into(),
            crate::exporter::EXPORTER_PORT.to_string(),
        );
        pod_annotations.insert("prometheus.io/path".into(), "/metrics".into());
    }
    if agent_image.is_some() {
        pod_annotations.insert(
            naming::AGENT_REVISION_ANNOTATION.into(),
            crate::agent::REVISION.to_string(),
        );
    }

    StatefulSet {
        metadata: meta(cluster, name),
        spec: Some(StatefulSetSpec {
            replicas: Some(i32::from(cluster.serving_instances)),
            service_name: Some(naming::headless_service(&cluster.name)),
            selector: LabelSelector {
                match_labels: Some(naming::selector_labels(&cluster.name)),
                ..Default::default()
            },
            // Instances start together; the operator, not pod order, decides who is primary.
            pod_management_policy: Some("Parallel".into()),
            // The operator rolls pods itself (replicas first, one at a time, each healthy before
            // the next, then one switchover and the old primary): see `decide`'s rollout.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..Default::default()
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(cluster.deletion_policy.as_str().into()),
                    // A scale-down is routine and often undone; the data of a removed instance
                    // is kept whatever the deletion policy, and reused if it comes back.
                    when_scaled: Some("Retain".into()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..Default::default()
                }),
                spec: Some(pod_spec(cluster, config_hash, agent_image)),
            },
            volume_claim_templates: Some(vec![data_claim(cluster, &carried.claim_size)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn data_claim(cluster: &ValidatedCluster, size: &Quantity) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.into()),
            labels: Some(naming::common_labels(&cluster.name)),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: cluster.storage_class_name.clone(),
            selector: cluster.storage_selector.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), size.clone())])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_spec(cluster: &ValidatedCluster, config_hash: &str, agent_image: Option<&str>) -> PodSpec {
    let overrides = &cluster.pod_template;
    PodSpec {
        init_containers: Some(
            restore_containers(cluster)
                .into_iter()
                .chain([init_container(cluster)])
                .collect(),
        ),
        // The agent runs the self-fence when there is one; fence.sh otherwise.
        containers: vec![
            mysqld_container(cluster, agent_image.is_some()),
            match agent_image {
                Some(image) => agent_container(cluster, image),
                None => fence_container(cluster),
            },
        ],
        volumes: Some(volumes(cluster, config_hash)),
        security_context: Some(PodSecurityContext {
            run_as_user: Some(MYSQL_UID),
            run_as_group: Some(MYSQL_UID),
            fs_group: Some(MYSQL_UID),
            run_as_non_root: Some(true),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
        // Nothing in the pod talks to the API server (the role comes through the downward
        // API): a token would only be something to steal.
        automount_service_account_token: Some(false),
        // Service environment variables are noise for mysqld and grow with the namespace.
        enable_service_links: Some(false),
        affinity: overrides.affinity.clone(),
        tolerations: (!overrides.tolerations.is_empty()).then(|| overrides.tolerations.clone()),
        node_selector: (!overrides.node_selector.is_empty())
            .then(|| overrides.node_selector.clone()),
        priority_class_name: overrides.priority_class_name.clone(),
        topology_spread_constraints: Some(spread(cluster)),
        ..Default::default()
    }
}

/// The user's spread constraints, or by default a preference for distinct nodes, then distinct
/// zones: losing a node or a zone should take one instance, not the primary and its replicas.
/// Preferred only, so that a cluster with fewer nodes than instances still runs.
fn spread(cluster: &ValidatedCluster) -> Vec<TopologySpreadConstraint> {
    let overrides = &cluster.pod_template.topology_spread_constraints;
    if !overrides.is_empty() {
        return overrides.clone();
    }
    [naming::HOSTNAME_TOPOLOGY_KEY, naming::ZONE_TOPOLOGY_KEY]
        .into_iter()
        .map(|key| TopologySpreadConstraint {
            max_skew: 1,
            topology_key: key.into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(naming::selector_labels(&cluster.name)),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}

pub(crate) fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn mount(volume: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

fn common_mounts() -> Vec<VolumeMount> {
    vec![
        mount(DATA_VOLUME, "/var/lib/mysql"),
        mount(CONFIG_VOLUME, "/etc/sakila"),
        // my.cnf includes online.cnf from here (also when the init container initialises).
        mount(ONLINE_CONFIG_VOLUME, ONLINE_CONFIG_DIR),
        mount(RUNTIME_VOLUME, "/var/run/sakila"),
        mount(SOCKET_VOLUME, "/var/run/mysqld"),
        mount(TMP_VOLUME, "/tmp"),
        mount(naming::TLS_VOLUME, naming::TLS_DIR),
    ]
}

pub(crate) fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    optional_secret_env(name, secret, key, false)
}

pub(crate) fn optional_secret_env(name: &str, secret: &str, key: &str, optional: bool) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(optional),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// For a cluster restored from a backup (`status.restoredFrom`): the operator's binary copied
/// in, then `sakila-operator restore`, which fills instance 0's empty data directory from the
/// backup before `init.sh` runs (`crate::backup::restore`) while the restore's ConfigMap is
/// there (see [`build_restore_config_map`]); in every other case it does nothing.
fn restore_containers(cluster: &ValidatedCluster) -> Vec<Container> {
    let (Some(source), Some(operator_image)) = (&cluster.restore, &cluster.operator_image) else {
        return Vec::new();
    };
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        // Optional: once the cluster has its first primary the ConfigMap is gone, and the
        // container restores nothing (the template, and so the pods, stay as they are).
        EnvVar {
            name: crate::backup::restore::RESTORE_SETTINGS_ENV.into(),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: naming::restore_config_map(&cluster.name),
                    key: crate::backup::restore::RESTORE_SETTINGS_KEY.into(),
                    optional: Some(true),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    // Optional: once restored, the store's Secret may go without keeping the pods from starting.
    env.extend(job::store_credentials_env(&source.store, true));
    env.extend(account_password_env(cluster));
    let mut mounts = vec![
        mount(DATA_VOLUME, "/var/lib/mysql"),
        mount(TMP_VOLUME, "/tmp"),
        job::tools_mount(),
    ];
    mounts.extend(job::store_ca(&source.store).map(|(_, mount)| mount));
    vec![
        job::tools_container(operator_image),
        Container {
            name: RESTORE_CONTAINER.into(),
            image: Some(cluster.image.clone()),
            image_pull_policy: Some("IfNotPresent".into()),
            command: Some(vec![job::tools_binary(), "restore".into()]),
            env: Some(env),
            volume_mounts: Some(mounts),
            resources: cluster.resources.clone(),
            security_context: Some(restricted_security_context()),
            termination_message_policy: Some("FallbackToLogsOnError".into()),
            ..Default::default()
        },
    ]
}

/// The restore's settings for the restore container, while the restore is pending: the cluster
/// has had no primary yet.
pub fn build_restore_config_map(cluster: &ValidatedCluster) -> Option<ConfigMap> {
    let source = cluster.restore.as_ref()?;
    cluster.operator_image.as_ref()?;
    if !cluster.restore_pending {
        return None;
    }
    let settings = crate::backup::restore::RestoreSettings {
        store: job::store_settings(&source.store),
        directory: source.directory.clone(),
        sha256: source.sha256.clone(),
        gtid_set: source.gtid_set.clone(),
        replay: source.replay.clone(),
    };
    Some(ConfigMap {
        metadata: super::meta(cluster, naming::restore_config_map(&cluster.name)),
        data: Some(BTreeMap::from([(
            crate::backup::restore::RESTORE_SETTINGS_KEY.to_string(),
            serde_json::to_string(&settings).expect("settings serialise"),
        )])),
        ..Default::default()
    })
}

/// The restore container's name.
pub const RESTORE_CONTAINER: &str = "restore";

/// The passwords `init.sh` (and a restore) give root and the operator's accounts.
fn account_password_env(cluster: &ValidatedCluster) -> Vec<EnvVar> {
    let credentials = naming::credentials_secret(&cluster.name);
    vec![
        secret_env(
            "ROOT_PASSWORD",
            &cluster.root_password.name,
            &cluster.root_password.key,
        ),
        secret_env(
            "OPERATOR_PASSWORD",
            &credentials,
            naming::OPERATOR_PASSWORD_KEY,
        ),
        secret_env(
            "REPLICATION_PASSWORD",
            &credentials,
            naming::REPLICATION_PASSWORD_KEY,
        ),
        secret_env("PROBE_PASSWORD", &credentials, naming::PROBE_PASSWORD_KEY),
        // Absent from a Secret made before the donor had its own account (init.sh then makes
        // the accounts as they were made then).
        optional_secret_env(
            "CLONE_PASSWORD",
            &credentials,
            naming::CLONE_PASSWORD_KEY,
            true,
        ),
    ]
}

fn init_container(cluster: &ValidatedCluster) -> Container {
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        EnvVar {
            name: "SERVICE_NAME".into(),
            value: Some(naming::headless_service(&cluster.name)),
            ..Default::default()
        },
    ];
    env.extend(account_password_env(cluster));
    Container {
        name: naming::INIT_CONTAINER.into(),
        image: Some(cluster.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["sh".into(), format!("/etc/sakila/{INIT_SCRIPT}")]),
        env: Some(env),
        volume_mounts: Some(
            common_mounts()
                .into_iter()
                .chain([mount(PASSWORDS_VOLUME, PASSWORDS_DIR)])
                .collect(),
        ),
        resources: cluster.resources.clone(),
        security_context: Some(restricted_security_context()),
        ..Default::default()
    }
}

/// The self-fence loop (`fence.sh`), beside mysqld: the same image (it has the mysql client),
/// the local socket and the probe account.
fn fence_container(cluster: &ValidatedCluster) -> Container {
    Container {
        name: naming::FENCE_CONTAINER.into(),
        image: Some(cluster.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["sh".into(), format!("/etc/sakila/{FENCE_SCRIPT}")]),
        volume_mounts: Some(vec![
            mount(CONFIG_VOLUME, "/etc/sakila"),
            mount(RUNTIME_VOLUME, "/var/run/sakila"),
            mount(SOCKET_VOLUME, "/var/run/mysqld"),
            mount(PASSWORDS_VOLUME, PASSWORDS_DIR),
        ]),
        // The memory limit allows a mysql client per peer at once (about 8 MiB each) with room to
        // spare. No CPU limit: throttling would stretch the fence's timing, which the failover's
        // margin counts on.
        resources: Some(sidecar_resources("10m", "16Mi", "128Mi")),
        security_context: Some(restricted_security_context()),
        ..Default::default()
    }
}

/// The agent (`sakila-operator agent`, the operator's binary, `image` from `agent_image`):
/// answers the kubelet's probes of mysqld, runs the self-fence and, when
/// `spec.monitoring.enabled`, serves MySQL's metrics; the local socket, the probe account's
/// option file and password record, and the pod's labels, nothing else.
fn agent_container(cluster: &ValidatedCluster, image: &str) -> Container {
    let mut args = vec![
        "agent".to_string(),
        "--fence".to_string(),
        format!(
            "--max-replica-lag-seconds={}",
            cluster.max_replica_lag_seconds
        ),
    ];
    let metrics = cluster.exporter_image.is_some();
    if metrics {
        args.push("--metrics".into());
    }
    Container {
        name: naming::AGENT_CONTAINER.into(),
        image: Some(image.into()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(args),
        ports: metrics.then(|| {
            vec![ContainerPort {
                name: Some(naming::METRICS_PORT_NAME.into()),
                container_port: i32::from(crate::agent::AGENT_PORT),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]
        }),
        volume_mounts: Some(vec![
            mount(RUNTIME_VOLUME, "/var/run/sakila"),
            mount(SOCKET_VOLUME, "/var/run/mysqld"),
            mount(PODINFO_VOLUME, "/etc/podinfo"),
            mount(PASSWORDS_VOLUME, PASSWORDS_DIR),
        ]),
        // The exporter alone measured about 10 MiB (docs/monitoring.md). No CPU limit:
        // throttling would stretch the fence's timing, which the failover's margin counts on.
        resources: Some(sidecar_resources("5m", "16Mi", "64Mi")),
        security_context: Some(restricted_security_context()),
        ..Default::default()
    }
}

/// Requests of a container of ours beside mysqld, and a memory limit that keeps a leak or a
/// misbehaving loop away from mysqld's memory. No CPU limit: a throttled sidecar is slow, and
/// takes nothing from mysqld that the request does not.
pub(crate) fn sidecar_resources(
    cpu: &str,
    memory: &str,
    memory_limit: &str,
) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity(memory_limit.into()),
        )])),
        ..Default::default()
    }
}

fn script_probe(script: &str, period: i32, failures: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["sh".into(), format!("/etc/sakila/{script}")]),
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// A probe the agent answers: an HTTP request to the pod's own address, no container exec.
fn agent_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(i32::from(crate::agent::AGENT_PORT)),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// mysqld's probes: startup, liveness and readiness.
///
/// With the agent, startup and readiness are HTTP requests it answers on a kept connection:
/// they run every 2 s (a restarted primary is routed to as soon as it is back), and as container
/// execs they were most of what a pod cost its node. Liveness stays the script, every 20 s: it
/// restarts mysqld, which the agent's own failure (a crash, a bad image) must never cause.
/// Without the agent (the operator does not know its image) all three are the scripts.
fn mysqld_probes(with_agent: bool) -> (Probe, Probe, Probe) {
    // Crash recovery of a large InnoDB can take long: allow an hour before liveness applies.
    if with_agent {
        (
            agent_probe("/alive", 2, 1800),
            script_probe(ALIVE_SCRIPT, 20, 3),
            agent_probe("/ready", 2, 2),
        )
    } else {
        (
            script_probe(ALIVE_SCRIPT, 2, 1800),
            script_probe(ALIVE_SCRIPT, 10, 6),
            script_probe(READY_SCRIPT, 2, 2),
        )
    }
}

fn mysqld_container(cluster: &ValidatedCluster, with_agent: bool) -> Container {
    let (startup, liveness, readiness) = mysqld_probes(with_agent);
    let mut mounts = common_mounts();
    mounts.push(mount(PODINFO_VOLUME, "/etc/podinfo"));
    Container {
        name: naming::MYSQLD_CONTAINER.into(),
        image: Some(cluster.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec![
            "mysqld".into(),
            format!("--defaults-file=/etc/sakila/{MY_CNF}"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("mysql".into()),
            container_port: naming::MYSQL_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        env: Some(vec![
            EnvVar {
                name: "MAX_REPLICA_LAG_SECONDS".into(),
                value: Some(cluster.max_replica_lag_seconds.to_string()),
                ..Default::default()
            },
            EnvVar {
                name: "PRE_STOP_WAIT_SECONDS".into(),
                value: Some(PRE_STOP_WAIT_SECONDS.to_string()),
                ..Default::default()
            },
        ]),
        startup_probe: Some(startup),
        liveness_probe: Some(liveness),
        readiness_probe: Some(readiness),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec!["sh".into(), format!("/etc/sakila/{PRE_STOP_SCRIPT}")]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        resources: cluster.resources.clone(),
        security_context: Some(restricted_security_context()),
        ..Default::default()
    }
}

pub(crate) fn empty_dir(name: &str, medium: Option<&str>) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(Into::into),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn volumes(cluster: &ValidatedCluster, config_hash: &str) -> Vec<Volume> {
    let mut volumes = vec![
        Volume {
            name: CONFIG_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: naming::config_map(&cluster.name, config_hash),
                ..Default::default()
            }),
            ..Default::default()
        },
        // Mounted whole (no subPath), so a value mysqld took reaches running pods' my.cnf.
        Volume {
            name: ONLINE_CONFIG_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: naming::online_config_map(&cluster.name),
                ..Default::default()
            }),
            ..Default::default()
        },
        // Memory-backed: it briefly holds the initial accounts' passwords and the probe options.
        empty_dir(RUNTIME_VOLUME, Some("Memory")),
        empty_dir(SOCKET_VOLUME, None),
        empty_dir(TMP_VOLUME, None),
        // The certificates and the server key; never the CA's key, which only the operator uses.
        // Mounted whole (no subPath), so a renewed certificate reaches running pods.
        Volume {
            name: naming::TLS_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(cluster.tls.secret_name.clone()),
                items: Some(
                    [
                        naming::CA_CERT_KEY,
                        naming::TLS_CERT_KEY,
                        naming::TLS_KEY_KEY,
                    ]
                    .into_iter()
                    .map(|key| KeyToPath {
                        key: key.into(),
                        path: key.into(),
                        ..Default::default()
                    })
                    .collect(),
                ),
                // Read by mysqld through the pod's fsGroup.
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        },
        // Optional: the operator writes it at the end of the cluster's first round, after the
        // StatefulSet; init.sh falls back to the credentials Secret's password (the same then).
        // Mounted whole, so a rotation reaches running pods.
        Volume {
            name: PASSWORDS_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(naming::applied_passwords_secret(&cluster.name)),
                items: Some(vec![KeyToPath {
                    key: naming::PROBE_PASSWORD_KEY.into(),
                    path: naming::PROBE_PASSWORD_KEY.into(),
                    ..Default::default()
                }]),
                default_mode: Some(0o440),
                optional: Some(true),
            }),
            ..Default::default()
        },
        Volume {
            name: PODINFO_VOLUME.into(),
            downward_api: Some(DownwardAPIVolumeSource {
                items: Some(vec![DownwardAPIVolumeFile {
                    path: "labels".into(),
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.labels".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    if let (Some(source), Some(_)) = (&cluster.restore, &cluster.operator_image) {
        volumes.push(job::tools_volume());
        volumes.extend(job::store_ca(&source.store).map(|(volume, _)| volume));
    }
    volumes
}
