//! Observation: the pods Kubernetes reports and, for each, what its mysqld says over SQL.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::mysql::{
    Credentials, Endpoint, InstanceStatus, MySqlAdmin, MySqlConnector, ServerIdentity,
};
use crate::resources::naming;

/// Everything `decide` looks at.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// `spec.instances`.
    pub desired_instances: u8,
    /// The primary recorded in the status, if any.
    pub current_primary: Option<u8>,
    /// The StatefulSet's update revision: the pod template every pod should run.
    pub update_revision: Option<String>,
    /// Instances that joined the cluster (held its data and followed a primary), recorded in
    /// the status: they count towards the semi-sync majority even while they are down.
    pub members: Vec<u8>,
    /// One entry per ordinal, in order: every desired one, and the recorded primary if it is
    /// beyond them (a scale-down that waits for a switchover).
    pub instances: Vec<InstanceObservation>,
    /// Ordinals whose data volume is older than the MySQLCluster (kept from an earlier cluster
    /// of the same name): they may hold history. Read only while no primary is recorded.
    pub retained_volumes: Vec<u8>,
    /// The primary the last automatic failover replaced (`status.lastFailoverFrom`).
    pub failed_over_from: Option<u8>,
    /// Ordinals whose data a clone is replacing now: a clone task of this operator's runs for
    /// them, or their `clone_status` says `In Progress`.
    pub cloning: Vec<u8>,
}

/// One instance as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceObservation {
    pub ordinal: u8,
    /// The pod, if it exists.
    pub pod: Option<PodFacts>,
    /// What mysqld said.
    pub mysql: MySqlObservation,
    /// The instance this one replicates from, if its source is one of this cluster's pods.
    pub replication_source: Option<u8>,
}

/// What Kubernetes says about an instance's pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFacts {
    pub name: String,
    pub ip: Option<String>,
    pub ready: bool,
    pub role_label: Option<String>,
    pub terminating: bool,
    /// The mysqld container runs and has passed its startup probe (it has not just restarted).
    pub mysqld_started: bool,
    /// A person asked for this instance to be re-cloned (the re-clone annotation).
    pub reclone_requested: bool,
    /// The StatefulSet revision of the pod's template.
    pub revision: Option<String>,
    /// Why the mysqld container is not running, if it waits (e.g. `ImagePullBackOff`).
    pub waiting_reason: Option<String>,
    /// The settings the operator applied online to this pod's mysqld (its annotation), if any.
    pub online_settings: Option<String>,
    /// The restart-requiring settings the pod's template was made with, if it says.
    pub restart_settings: Option<String>,
    /// The pod mounts the cluster's TLS Secret, so its mysqld serves the cluster's certificate
    /// (a pod made before TLS serves mysqld's self-signed one until it is rolled).
    pub serves_cluster_certificate: bool,
}

/// What an instance's mysqld said, or why it said nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum MySqlObservation {
    /// No pod, or a pod without an IP yet: nothing to ask.
    NotRunning,
    /// The server did not answer; the reason, for the status.
    Unreachable(String),
    /// The connection was refused: nothing listens on the MySQL port at the pod's address, so
    /// no mysqld runs there that could take a write (it crashed or is restarting). A partition
    /// drops packets instead, which is `Unreachable`.
    NotListening(String),
    /// The server answered.
    Observed(Box<InstanceStatus>),
}

impl Observation {
    /// The pod of instance `ordinal`, if it has one.
    pub fn pod(&self, ordinal: u8) -> Option<&PodFacts> {
        self.instances
            .iter()
            .find(|i| i.ordinal == ordinal)
            .and_then(|i| i.pod.as_ref())
    }

    /// Records which instances are being cloned: `started` by this operator and still running,
    /// and any whose server reports a clone in progress (one a previous leader started).
    pub fn note_clones(&mut self, started: &[u8]) {
        let mut cloning: Vec<u8> = self
            .instances
            .iter()
            .filter(|i| {
                started.contains(&i.ordinal)
                    || matches!(&i.mysql, MySqlObservation::Observed(s)
                        if s.clone.as_ref().is_some_and(|c| c.state == CLONE_IN_PROGRESS))
            })
            .map(|i| i.ordinal)
            .collect();
        cloning.dedup();
        self.cloning = cloning;
    }
}

/// `performance_schema.clone_status.STATE` of a clone that has not ended.
const CLONE_IN_PROGRESS: &str = "In Progress";

impl PodFacts {
    /// Extracts the facts `decide` and the status need from a pod.
    pub fn from_pod(pod: &Pod) -> Self {
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        Self {
            name: pod.name_any(),
            ip: status.and_then(|s| s.pod_ip.clone()),
            ready,
            role_label: pod.labels().get(naming::ROLE_LABEL).cloned(),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            mysqld_started: status
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.name == naming::MYSQLD_CONTAINER))
                .is_some_and(|c| {
                    c.state.as_ref().is_some_and(|s| s.running.is_some()) && c.started == Some(true)
                }),
            reclone_requested: pod
                .annotations()
                .get(naming::RECLONE_ANNOTATION)
                .is_some_and(|v| v == "true"),
            revision: pod.labels().get(REVISION_LABEL).cloned(),
            serves_cluster_certificate: pod
                .spec
                .iter()
                .flat_map(|s| s.volumes.iter().flatten())
                .any(|v| v.name == naming::TLS_VOLUME && v.secret.is_some()),
            waiting_reason: waiting_reason(pod),
            online_settings: pod
                .annotations()
                .get(naming::ONLINE_SETTINGS_ANNOTATION)
                .cloned(),
            restart_settings: pod
                .annotations()
                .get(naming::RESTART_SETTINGS_ANNOTATION)
                .cloned(),
        }
    }
}

/// Why the pod's server is not running yet: a waiting init container first (an image that
/// cannot be pulled stops the init container before mysqld's own shows anything but
/// `PodInitializing`), else the mysqld container.
fn waiting_reason(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let waiting = |c: &k8s_openapi::api::core::v1::ContainerStatus| {
        let w = c.state.as_ref()?.waiting.as_ref()?;
        let reason = w.reason.clone().unwrap_or_else(|| "Waiting".into());
        Some(match &w.message {
            Some(m) => format!("{}: {reason}: {m}", c.name),
            None => format!("{}: {reason}", c.name),
        })
    };
    status
        .init_container_statuses
        .iter()
        .flatten()
        .find_map(waiting)
        .or_else(|| {
            status
                .container_statuses
                .iter()
                .flatten()
                .filter(|c| c.name == naming::MYSQLD_CONTAINER)
                .find_map(waiting)
        })
}

/// The label the StatefulSet controller puts on each pod: its template's revision.
const REVISION_LABEL: &str = "controller-revision-hash";

/// How long one observation of one instance may take.
pub const OBSERVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Observes every desired instance in parallel; an instance that does not answer in time is
/// `Unreachable`, never a reason to fail the whole observation.
#[allow(clippy::too_many_arguments)]
pub async fn observe<C: MySqlConnector>(
    connector: &C,
    credentials: &Credentials,
    cluster_name: &str,
    namespace: &str,
    desired_instances: u8,
    current_primary: Option<u8>,
    members: Vec<u8>,
    update_revision: Option<String>,
    pods: &[Pod],
    cluster_ca: Option<&Arc<[u8]>>,
) -> Observation {
    let observed = current_primary.map_or(desired_instances, |p| desired_instances.max(p + 1));
    let instances = (0..observed).map(|ordinal| {
        let pod = pods
            .iter()
            .find(|p| naming::ordinal_of(cluster_name, &p.name_any()) == Some(ordinal))
            .map(PodFacts::from_pod);
        async move {
            let endpoint = pod
                .as_ref()
                .and_then(|p| instance_endpoint(cluster_name, namespace, ordinal, p, cluster_ca));
            let mysql = match endpoint {
                None => MySqlObservation::NotRunning,
                Some(endpoint) => observe_mysql(connector, credentials, endpoint).await,
            };
            let replication_source = match &mysql {
                MySqlObservation::Observed(status) => status
                    .replica
                    .as_ref()
                    .and_then(|r| ordinal_of_host(cluster_name, namespace, &r.source_host)),
                _ => None,
            };
            InstanceObservation {
                ordinal,
                pod,
                mysql,
                replication_source,
            }
        }
    });
    Observation {
        desired_instances,
        current_primary,
        update_revision,
        members,
        instances: join_all(instances).await,
        // From the API server and the status, filled in by the caller.
        retained_volumes: Vec::new(),
        failed_over_from: None,
        cloning: Vec::new(),
    }
}

/// Where the operator reaches an instance: its pod's address (no DNS lookup in the way of a
/// failover), checking, once the pod serves the cluster's certificate and the CA is known, that
/// the certificate is the cluster's and names the pod. `None` while the pod has no address.
pub fn instance_endpoint(
    cluster_name: &str,
    namespace: &str,
    ordinal: u8,
    pod: &PodFacts,
    cluster_ca: Option<&Arc<[u8]>>,
) -> Option<Endpoint> {
    let ip = pod.ip.clone()?;
    let identity = cluster_ca
        .filter(|_| pod.serves_cluster_certificate)
        .map(|ca| ServerIdentity {
            ca_pem: ca.clone(),
            name: naming::pod_host(cluster_name, namespace, ordinal),
        });
    Some(Endpoint::new(ip, naming::MYSQL_PORT as u16).verified(identity))
}

async fn observe_mysql<C: MySqlConnector>(
    connector: &C,
    credentials: &Credentials,
    endpoint: Endpoint,
) -> MySqlObservation {
    let attempt = async {
        let admin = connector.connect_kept(&endpoint, credentials).await?;
        admin.status().await
    };
    match tokio::time::timeout(OBSERVE_TIMEOUT, attempt).await {
        Ok(Ok(status)) => MySqlObservation::Observed(Box::new(status)),
        Ok(Err(e)) if connection_refused(&e) => MySqlObservation::NotListening(error_chain(&e)),
        Ok(Err(e)) => MySqlObservation::Unreachable(error_chain(&e)),
        Err(_) => MySqlObservation::Unreachable(format!(
            "failed to observe {endpoint} within {OBSERVE_TIMEOUT:?}"
        )),
    }
}

/// Whether an error was caused by a refused TCP connection (`ECONNREFUSED`) anywhere in its
/// chain of sources.
pub fn connection_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// The ordinal of the pod whose stable name is `host`, if it is one of this cluster's.
pub fn ordinal_of_host(cluster_name: &str, namespace: &str, host: &str) -> Option<u8> {
    (0..9).find(|o| naming::pod_host(cluster_name, namespace, *o) == host)
}

/// An error and its sources on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::clustering::decide::SEMI_SYNC_TIMEOUT;
    use crate::mysql::{GtidSet, ReplicaStatus, SemiSyncStatus, ThreadState};

    /// A reachable or unreachable instance with a pod; `read_only` None means unreachable.
    pub(crate) fn instance(
        ordinal: u8,
        read_only: Option<bool>,
        role: Option<&str>,
    ) -> InstanceObservation {
        InstanceObservation {
            ordinal,
            pod: Some(PodFacts {
                name: format!("db-{ordinal}"),
                ip: Some(format!("10.244.0.{}", 10 + ordinal)),
                ready: read_only.is_some(),
                role_label: role.map(Into::into),
                terminating: false,
                mysqld_started: true,
                reclone_requested: false,
                revision: Some("r1".into()),
                waiting_reason: None,
                online_settings: None,
                restart_settings: None,
                serves_cluster_certificate: true,
            }),
            mysql: match read_only {
                None => MySqlObservation::Unreachable("failed to connect".into()),
                Some(ro) => MySqlObservation::Observed(Box::new(InstanceStatus {
                    server_uuid: format!("00000000-0000-0000-0000-00000000000{ordinal}"),
                    server_id: u32::from(ordinal) + 1,
                    version: "9.7.4".into(),
                    read_only: ro,
                    super_read_only: ro,
                    gtid_executed: GtidSet::default(),
                    gtid_purged: GtidSet::default(),
                    replica: None,
                    semi_sync: SemiSyncStatus::default(),
                    clone: None,
                    cluster_identity: None,
                    served_certificate_not_after: None,
                })),
            },
            replication_source: None,
        }
    }

    pub(crate) fn status_mut(instance: &mut InstanceObservation) -> &mut InstanceStatus {
        match &mut instance.mysql {
            MySqlObservation::Observed(s) => s,
            _ => panic!("instance {} is not observed", instance.ordinal),
        }
    }

    /// Sets the executed and purged GTID sets of an observed instance.
    pub(crate) fn gtids(
        mut instance: InstanceObservation,
        executed: &str,
        purged: &str,
    ) -> InstanceObservation {
        let status = status_mut(&mut instance);
        status.gtid_executed = GtidSet::parse(executed).unwrap();
        status.gtid_purged = GtidSet::parse(purged).unwrap();
        instance
    }

    /// A writable primary with `history`, semi-sync configured for `instances`.
    pub(crate) fn primary_with(ordinal: u8, instances: u8, history: &str) -> InstanceObservation {
        let mut primary = gtids(instance(ordinal, Some(false), Some("primary")), history, "");
        let wait = crate::clustering::decide::semi_sync_wait_count(instances);
        let status = status_mut(&mut primary);
        status.semi_sync = SemiSyncStatus {
            source_plugin_loaded: true,
            replica_plugin_loaded: true,
            source_enabled: wait > 0,
            source_active: wait > 0,
            source_clients: 2,
            wait_for_replica_count: Some(wait),
            source_timeout: Some(SEMI_SYNC_TIMEOUT),
            wait_point: Some("AFTER_SYNC".into()),
            replica_enabled: false,
            replica_active: false,
        };
        primary
    }

    /// A read-only replica with `history`, replicating from `source` with semi-sync.
    pub(crate) fn replica_following(ordinal: u8, source: u8, history: &str) -> InstanceObservation {
        let mut replica = gtids(instance(ordinal, Some(true), Some("replica")), history, "");
        replica.replication_source = Some(source);
        let status = status_mut(&mut replica);
        status.semi_sync.replica_enabled = true;
        status.semi_sync.replica_active = true;
        status.replica = Some(ReplicaStatus {
            source_host: naming::pod_host("db", "shop", source),
            source_port: 3306,
            io_thread: ThreadState::Running,
            sql_thread: ThreadState::Running,
            last_io_error: None,
            last_sql_error: None,
            seconds_behind_source: Some(0),
            retrieved_gtid_set: GtidSet::default(),
            auto_position: true,
            channel_tls: crate::mysql::ChannelTls::Verified,
        });
        replica
    }

    pub(crate) fn observation(
        desired: u8,
        current_primary: Option<u8>,
        instances: Vec<InstanceObservation>,
    ) -> Observation {
        Observation {
            desired_instances: desired,
            current_primary,
            update_revision: Some("r1".into()),
            members: Vec::new(),
            instances,
            retained_volumes: Vec::new(),
            failed_over_from: None,
            cloning: Vec::new(),
        }
    }

    #[test]
    fn a_waiting_init_container_names_why_the_pod_does_not_start() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db-2"},
            "status": {
                "initContainerStatuses": [{"name": "init", "image": "x", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}}],
                "containerStatuses": [{"name": "mysqld", "image": "x", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]
            }
        }))
        .unwrap();
        assert_eq!(
            PodFacts::from_pod(&pod).waiting_reason.as_deref(),
            Some("init: ImagePullBackOff: no such image")
        );
    }

    #[test]
    fn error_chain_joins_every_source() {
        let inner = std::io::Error::other("connection refused");
        let outer = crate::mysql::MySqlError::Connect {
            endpoint: "10.0.0.1:3306".into(),
            source: Box::new(inner),
        };
        assert_eq!(
            error_chain(&outer),
            "failed to connect to 10.0.0.1:3306: connection refused"
        );
    }
}
