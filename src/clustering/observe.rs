//! Observation: the pods Kubernetes reports and, for each, what its mysqld says over SQL.

use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::mysql::{Credentials, Endpoint, InstanceStatus, MySqlAdmin, MySqlConnector};
use crate::resources::naming;

/// Everything `decide` looks at.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// `spec.instances`.
    pub desired_instances: u8,
    /// The primary recorded in the status, if any.
    pub current_primary: Option<u8>,
    /// One entry per desired ordinal, in order.
    pub instances: Vec<InstanceObservation>,
}

/// One instance as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceObservation {
    pub ordinal: u8,
    /// The pod, if it exists.
    pub pod: Option<PodFacts>,
    /// What mysqld said.
    pub mysql: MySqlObservation,
}

/// What Kubernetes says about an instance's pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFacts {
    pub name: String,
    pub ip: Option<String>,
    pub ready: bool,
    pub role_label: Option<String>,
    pub terminating: bool,
}

/// What an instance's mysqld said, or why it said nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum MySqlObservation {
    /// No pod, or a pod without an IP yet: nothing to ask.
    NotRunning,
    /// The server did not answer; the reason, for the status.
    Unreachable(String),
    /// The server answered.
    Observed(Box<InstanceStatus>),
}

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
        }
    }
}

/// How long one observation of one instance may take.
pub const OBSERVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Observes every desired instance in parallel; an instance that does not answer in time is
/// `Unreachable`, never a reason to fail the whole observation.
pub async fn observe<C: MySqlConnector>(
    connector: &C,
    credentials: &Credentials,
    cluster_name: &str,
    desired_instances: u8,
    current_primary: Option<u8>,
    pods: &[Pod],
) -> Observation {
    let instances = (0..desired_instances).map(|ordinal| {
        let pod = pods
            .iter()
            .find(|p| naming::ordinal_of(cluster_name, &p.name_any()) == Some(ordinal))
            .map(PodFacts::from_pod);
        async move {
            let mysql = match pod.as_ref().and_then(|p| p.ip.clone()) {
                None => MySqlObservation::NotRunning,
                Some(ip) => observe_mysql(connector, credentials, &ip).await,
            };
            InstanceObservation {
                ordinal,
                pod,
                mysql,
            }
        }
    });
    Observation {
        desired_instances,
        current_primary,
        instances: join_all(instances).await,
    }
}

async fn observe_mysql<C: MySqlConnector>(
    connector: &C,
    credentials: &Credentials,
    ip: &str,
) -> MySqlObservation {
    let endpoint = Endpoint::new(ip, naming::MYSQL_PORT as u16);
    let attempt = async {
        let admin = connector.connect(&endpoint, credentials).await?;
        admin.status().await
    };
    match tokio::time::timeout(OBSERVE_TIMEOUT, attempt).await {
        Ok(Ok(status)) => MySqlObservation::Observed(Box::new(status)),
        Ok(Err(e)) => MySqlObservation::Unreachable(error_chain(&e)),
        Err(_) => MySqlObservation::Unreachable(format!(
            "failed to observe {endpoint} within {OBSERVE_TIMEOUT:?}"
        )),
    }
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
    use crate::mysql::{GtidSet, SemiSyncStatus};

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
                })),
            },
        }
    }

    pub(crate) fn observation(
        desired: u8,
        current_primary: Option<u8>,
        instances: Vec<InstanceObservation>,
    ) -> Observation {
        Observation {
            desired_instances: desired,
            current_primary,
            instances,
        }
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
