//! Operate: carries out a plan's actions in order, stopping at the first failure.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use super::clones::CloneTasks;
use super::decide::{Action, Plan, Role, SEMI_SYNC_TIMEOUT};
use super::observe::Observation;
use super::settings::{SettingsChange, SettingsResults};
use crate::mysql::{
    Credentials, Endpoint, GtidSet, MySqlAdmin, MySqlConnector, MySqlError, ReplicationSource,
    SemiSyncSourceConfig,
};
use crate::resources::naming;

/// How long the background task waits for a clone's statement (a clone runs at the speed of
/// the disks and the network: a day is a backstop against a session that never returns).
const CLONE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// How soon a replica's I/O thread retries a lost source: short, so failovers heal quickly.
const SOURCE_CONNECT_RETRY: Duration = Duration::from_secs(2);
/// How long a promotion waits for the candidate to apply what it received.
const RELAY_LOG_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a switchover waits for the new primary to apply the old one's last transactions;
/// writes are refused meanwhile, so a replica this far behind should not have been chosen.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// The operator's own accounts, whose sessions a demotion leaves alone.
const OWN_USERS: &[&str] = &[
    naming::OPERATOR_USER,
    naming::REPLICATION_USER,
    naming::PROBE_USER,
];
/// Retries before the I/O thread gives up (about two days at the retry interval above).
const SOURCE_RETRY_COUNT: u32 = 86_400;

/// The writes operating makes to the cluster's pods. Behind a trait so that a plan can be carried
/// out in a unit test without an API server.
pub trait PodWrites: Send + Sync {
    /// Moves the pod's role label, which the client Services select on.
    fn set_role(
        &self,
        pod: &str,
        role: Role,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send;

    /// Deletes the pod gracefully, so that its StatefulSet recreates it.
    fn restart(&self, pod: &str) -> impl Future<Output = Result<(), kube::Error>> + Send;

    /// Removes the pod's re-clone annotation.
    fn clear_reclone_request(
        &self,
        pod: &str,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send;

    /// Records in the pod's annotation the settings its mysqld holds online.
    fn record_online_settings(
        &self,
        pod: &str,
        record: &str,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send;
}

impl PodWrites for Api<Pod> {
    async fn set_role(&self, pod: &str, role: Role) -> Result<(), kube::Error> {
        let patch = json!({"metadata": {"labels": {naming::ROLE_LABEL: role.label()}}});
        self.patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
    }

    async fn restart(&self, pod: &str) -> Result<(), kube::Error> {
        self.delete(pod, &DeleteParams::default()).await.map(drop)
    }

    async fn clear_reclone_request(&self, pod: &str) -> Result<(), kube::Error> {
        let patch = json!({"metadata": {"annotations": {naming::RECLONE_ANNOTATION: null}}});
        self.patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
    }

    async fn record_online_settings(&self, pod: &str, record: &str) -> Result<(), kube::Error> {
        let patch =
            json!({"metadata": {"annotations": {naming::ONLINE_SETTINGS_ANNOTATION: record}}});
        self.patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
    }
}

/// What operating on a cluster needs besides the plan.
pub struct OperateTarget<'a, P> {
    pub cluster_name: &'a str,
    pub cluster_uid: &'a str,
    pub namespace: &'a str,
    /// The operator's own account.
    pub operator: &'a Credentials,
    /// The replication and clone-donor account.
    pub replication: &'a Credentials,
    /// The cluster's pods (the `Api<Pod>` of its namespace, but for tests).
    pub pods: &'a P,
    /// Where a clone runs once started.
    pub clones: &'a CloneTasks,
}

/// Why an action could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum OperateError {
    #[error("failed to {action} on instance {ordinal}")]
    Sql {
        action: &'static str,
        ordinal: u8,
        #[source]
        source: MySqlError,
    },
    #[error("failed to {action} on instance {ordinal}: the pod has no IP")]
    NoAddress { action: &'static str, ordinal: u8 },
    #[error("failed to delete pod {pod} for a rolling restart")]
    Restart {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to annotate pod {pod}")]
    Annotate {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to label pod {pod} as {role}")]
    Label {
        pod: String,
        role: &'static str,
        #[source]
        source: kube::Error,
    },
}

impl OperateError {
    /// The server answered and refused the statement (or the input could never be valid), as
    /// opposed to not answering at all.
    pub fn is_refusal(&self) -> bool {
        matches!(self, OperateError::Sql { source, .. } if refused_by_server(source))
    }

    /// A static category for event reasons and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            OperateError::Sql { .. } | OperateError::NoAddress { .. } => "MySQLOperationFailed",
            OperateError::Label { .. } | OperateError::Annotate { .. } => "PodLabelFailed",
            OperateError::Restart { .. } => "PodRestartFailed",
        }
    }
}

/// What carrying out a plan did.
#[derive(Debug)]
pub struct Operated {
    /// The actions done, in order.
    pub done: Vec<Action>,
    /// The failure that stopped the plan, if one did. What was done before it still happened:
    /// a clone that discarded transactions must be reported even when a later action failed.
    pub failed: Option<OperateError>,
}

/// Carries out the plan in order, stopping at the first failure.
pub async fn operate<C: MySqlConnector, P: PodWrites>(
    connector: &C,
    target: &OperateTarget<'_, P>,
    observation: &Observation,
    plan: &Plan,
) -> Operated {
    let mut done = Vec::new();
    let mut demoted = Demoted::new();
    for action in &plan.actions {
        if let Err(error) = carry_out(connector, target, observation, action, &mut demoted).await {
            return Operated {
                done,
                failed: Some(error),
            };
        }
        tracing::info!(?action, "done");
        done.push(action.clone());
    }
    Operated { done, failed: None }
}

/// How applying settings online to one instance went.
#[derive(Debug)]
pub struct SettingsOutcome {
    pub change: SettingsChange,
    /// Variables the instance took (set to the change's value, or reset to the default).
    pub taken: Vec<String>,
    /// Variables mysqld refused, each with its refusal.
    pub refused: Vec<(String, OperateError)>,
    /// What stopped the change before every variable was tried, or kept it from being
    /// recorded: the server did not answer, or the pod could not be annotated.
    pub error: Option<OperateError>,
}

/// Applies each instance's online settings, one variable at a time, and records on its pod what
/// it took. Unlike `operate`, a failure does not stop the rest: a value the server refuses is the
/// user's to fix, and it must not hold back the other settings, on that instance or the others.
pub async fn apply_settings<C: MySqlConnector, P: PodWrites>(
    connector: &C,
    target: &OperateTarget<'_, P>,
    observation: &Observation,
    changes: &[SettingsChange],
) -> Vec<SettingsOutcome> {
    let mut outcomes = Vec::with_capacity(changes.len());
    for change in changes {
        let outcome = apply_settings_to(connector, target, observation, change).await;
        match (&outcome.error, outcome.refused.as_slice()) {
            (None, []) => tracing::info!(?change, "settings applied online"),
            (error, refused) => tracing::warn!(
                ?change,
                error = error.as_ref().map(|e| e.to_string()),
                refused = ?refused.iter().map(|(n, _)| n).collect::<Vec<_>>(),
                "settings not applied"
            ),
        }
        outcomes.push(outcome);
    }
    outcomes
}

async fn apply_settings_to<C: MySqlConnector, P: PodWrites>(
    connector: &C,
    target: &OperateTarget<'_, P>,
    observation: &Observation,
    change: &SettingsChange,
) -> SettingsOutcome {
    const ACTION: &str = "apply settings online";
    let mut outcome = SettingsOutcome {
        change: change.clone(),
        taken: Vec::new(),
        refused: Vec::new(),
        error: None,
    };
    let wrap = |source| OperateError::Sql {
        action: ACTION,
        ordinal: change.ordinal,
        source,
    };
    // One variable per statement, so a refusal names its variable and spares the others.
    let tries: Vec<(String, Option<String>)> = change
        .set
        .iter()
        .map(|(n, v)| (n.clone(), Some(v.clone())))
        .chain(change.reset.iter().map(|n| (n.clone(), None)))
        .collect();
    let results = sql(
        connector,
        target,
        observation,
        change.ordinal,
        ACTION,
        |a| async move {
            let mut results = Vec::with_capacity(tries.len());
            for (name, value) in tries {
                let answer = match &value {
                    Some(v) => {
                        a.set_global_variables(&[(name.clone(), v.clone())], &[])
                            .await
                    }
                    None => {
                        a.set_global_variables(&[], std::slice::from_ref(&name))
                            .await
                    }
                };
                match answer {
                    Err(e) if !refused_by_server(&e) => return Err(e),
                    answer => results.push((name, answer)),
                }
            }
            Ok(results)
        },
    )
    .await;
    match results {
        Err(error) => {
            outcome.error = Some(error);
            return outcome;
        }
        Ok(results) => {
            for (name, answer) in results {
                match answer {
                    Ok(()) => outcome.taken.push(name),
                    Err(e) => outcome.refused.push((name, wrap(e))),
                }
            }
        }
    }
    if outcome.taken.is_empty() {
        // Nothing changed on the instance: its record stands.
        return outcome;
    }
    let record = change.record(&outcome.taken);
    if let Err(source) = target
        .pods
        .record_online_settings(&change.pod, &record)
        .await
    {
        outcome.error = Some(OperateError::Annotate {
            pod: change.pod.clone(),
            source,
        });
    }
    outcome
}

/// What mysqld took and refused across every instance, for `settings::accepted_settings`.
pub fn settings_results(outcomes: &[SettingsOutcome]) -> SettingsResults {
    SettingsResults {
        taken: outcomes
            .iter()
            .flat_map(|o| {
                o.change
                    .set
                    .iter()
                    .filter(|(n, _)| o.taken.contains(n))
                    .cloned()
            })
            .collect(),
        refused: outcomes
            .iter()
            .flat_map(|o| o.refused.iter().map(|(n, _)| n.clone()))
            .collect(),
    }
}

/// The server answered and refused the statement (or the input could never be valid), as
/// opposed to not answering at all.
fn refused_by_server(error: &MySqlError) -> bool {
    matches!(
        error,
        MySqlError::Query { .. } | MySqlError::InvalidInput { .. } | MySqlError::ReadOnly { .. }
    )
}

/// What each instance made read-only in this plan had executed, read in the same session right
/// after: a switchover's catch-up needs it, and a primary whose pod is being deleted stops
/// answering as soon as it is read-only (its preStop hook lets mysqld shut down).
type Demoted = std::collections::HashMap<u8, GtidSet>;

async fn carry_out<C: MySqlConnector, P: PodWrites>(
    connector: &C,
    target: &OperateTarget<'_, P>,
    observation: &Observation,
    action: &Action,
    demoted: &mut Demoted,
) -> Result<(), OperateError> {
    let stable_endpoint = |ordinal: u8| {
        Endpoint::new(
            naming::pod_host(target.cluster_name, target.namespace, ordinal),
            naming::MYSQL_PORT as u16,
        )
    };
    match action {
        Action::SetRoleLabel { ordinal, role } => {
            let pod = naming::pod(target.cluster_name, *ordinal);
            target
                .pods
                .set_role(&pod, *role)
                .await
                .map_err(|source| OperateError::Label {
                    pod,
                    role: role.label(),
                    source,
                })?;
            Ok(())
        }
        Action::MakeReadOnly { ordinal } => {
            let executed = make_read_only(connector, target, observation, *ordinal).await?;
            demoted.insert(*ordinal, executed);
            Ok(())
        }
        Action::ForceReadOnly { ordinal } => {
            let endpoint = pod_endpoint(observation, *ordinal, "make read-only")?;
            force_read_only(connector, target, *ordinal, &endpoint).await
        }
        Action::DemoteAtAddress { ordinal, address } => {
            let endpoint = Endpoint::new(address.clone(), naming::MYSQL_PORT as u16);
            match force_read_only(connector, target, *ordinal, &endpoint).await {
                // Gone (or not answering): nothing is left there to demote.
                Err(OperateError::Sql { source, .. }) if source.is_unreachable() => Ok(()),
                other => other,
            }
        }
        Action::CatchUpWith { ordinal, source } => {
            let gtids = match demoted.get(source) {
                Some(executed) => executed.clone(),
                None => {
                    sql(
                        connector,
                        target,
                        observation,
                        *source,
                        "read what the old primary executed",
                        |a| async move { Ok(a.status().await?.gtid_executed) },
                    )
                    .await?
                }
            };
            sql(
                connector,
                target,
                observation,
                *ordinal,
                "catch up with the old primary",
                |a| async move {
                    if a.wait_for_gtid(&gtids, CATCH_UP_TIMEOUT).await? {
                        Ok(())
                    } else {
                        Err(MySqlError::Timeout {
                            action: "catch up with the old primary".into(),
                            endpoint: format!("instance {ordinal}"),
                            after: CATCH_UP_TIMEOUT,
                        })
                    }
                },
            )
            .await
        }
        Action::RestartPod { ordinal } => {
            let pod = naming::pod(target.cluster_name, *ordinal);
            target
                .pods
                .restart(&pod)
                .await
                .map_err(|source| OperateError::Restart { pod, source })?;
            Ok(())
        }
        Action::ClearRecloneRequest { ordinal } => {
            let pod = naming::pod(target.cluster_name, *ordinal);
            target
                .pods
                .clear_reclone_request(&pod)
                .await
                .map_err(|source| OperateError::Annotate { pod, source })?;
            Ok(())
        }
        Action::MakeWritable { ordinal } => {
            sql(
                connector,
                target,
                observation,
                *ordinal,
                "make writable",
                |a| async move { a.set_read_only(false).await },
            )
            .await
        }
        Action::StopReplicating { ordinal } => {
            sql(
                connector,
                target,
                observation,
                *ordinal,
                "stop replicating",
                |a| async move { a.reset_replica_all().await },
            )
            .await
        }
        Action::EnableSemiSyncSource {
            ordinal,
            wait_for_replica_count,
        } => {
            let config = SemiSyncSourceConfig {
                wait_for_replica_count: *wait_for_replica_count,
                timeout: SEMI_SYNC_TIMEOUT,
            };
            sql(
                connector,
                target,
                observation,
                *ordinal,
                "enable semi-sync source",
                |a| async move { a.enable_semi_sync_source(config).await },
            )
            .await
        }
        Action::DisableSemiSyncSource { ordinal } => {
            sql(
                connector,
                target,
                observation,
                *ordinal,
                "disable semi-sync source",
                |a| async move { a.disable_semi_sync_source().await },
            )
            .await
        }
        Action::RecordClusterIdentity { ordinal } => {
            let (uid, name) = (target.cluster_uid, target.cluster_name);
            sql(
                connector,
                target,
                observation,
                *ordinal,
                "record the cluster identity",
                |a| async move { a.record_cluster_identity(uid, name).await },
            )
            .await
        }
        Action::ReplicateFrom { ordinal, source } => {
            let source = ReplicationSource {
                endpoint: stable_endpoint(*source),
                credentials: target.replication.clone(),
                tls: false,
                connect_retry: SOURCE_CONNECT_RETRY,
                retry_count: SOURCE_RETRY_COUNT,
            };
            sql(
                connector,
                target,
                observation,
                *ordinal,
                "start replicating",
                |a| async move {
                    // Semi-sync first, so the I/O thread acknowledges from its first event.
                    a.enable_semi_sync_replica().await?;
                    a.configure_replica(&source).await
                },
            )
            .await
        }
        Action::StopReplicaIo { ordinal } => {
            sql(
                connector,
                target,
                observation,
                *ordinal,
                "fence (stop replication I/O, also after a restart)",
                |a| async move { a.fence_replica().await },
            )
            .await
        }
        Action::WaitForTransactions { ordinal, gtids } => {
            let gtids = gtids.clone();
            sql(
                connector,
                target,
                observation,
                *ordinal,
                "apply the relay log",
                |a| async move {
                    if a.wait_for_gtid(&gtids, RELAY_LOG_TIMEOUT).await? {
                        Ok(())
                    } else {
                        Err(MySqlError::Timeout {
                            action: "apply the relay log before promotion".into(),
                            endpoint: format!("instance {ordinal}"),
                            after: RELAY_LOG_TIMEOUT,
                        })
                    }
                },
            )
            .await
        }
        Action::CloneFrom { ordinal, donor, .. } => {
            const ACTION: &str = "start a clone from a donor";
            let donor_endpoint = stable_endpoint(*donor);
            let credentials = target.replication.clone();
            let endpoint = pod_endpoint(observation, *ordinal, ACTION)?;
            let admin = connector
                .connect(&endpoint, target.operator)
                .await
                .map_err(|source| OperateError::Sql {
                    action: ACTION,
                    ordinal: *ordinal,
                    source,
                })?;
            let ordinal = *ordinal;
            target.clones.start(target.cluster_uid, ordinal, async move {
                match admin
                    .clone_from(&donor_endpoint, &credentials, false, CLONE_TIMEOUT)
                    .await
                {
                    // mysqld stops after a clone; the kubelet restarts its container with the
                    // new data, and the next rounds point it at the primary.
                    Ok(outcome) => {
                        tracing::info!(ordinal, ?outcome, donor = %donor_endpoint, "clone finished")
                    }
                    // The instance still needs its data: a later round clones again.
                    Err(e) => {
                        tracing::warn!(ordinal, donor = %donor_endpoint, error = %e, "clone failed")
                    }
                }
            });
            Ok(())
        }
    }
}

/// Makes a writable instance that must not be read-only; if a commit waiting for
/// acknowledgements that cannot come holds that back, shuts mysqld down (see `ForceReadOnly`).
async fn force_read_only<C: MySqlConnector, P: PodWrites>(
    connector: &C,
    target: &OperateTarget<'_, P>,
    ordinal: u8,
    endpoint: &Endpoint,
) -> Result<(), OperateError> {
    match make_read_only_at(connector, target, ordinal, endpoint).await {
        Err(OperateError::Sql {
            source: MySqlError::Timeout { .. },
            ..
        }) => {
            // Its replicas now follow another primary; the waiting commit's client was
            // disconnected, and a restart is the one way out that acknowledges nothing.
            tracing::warn!(
                ordinal,
                %endpoint,
                "could not make a stray writable instance read-only; shutting it down"
            );
            sql_at(
                connector,
                target,
                endpoint,
                ordinal,
                "shut down an instance that cannot be made read-only",
                |a| async move { a.shutdown().await },
            )
            .await
        }
        other => other.map(|_executed| ()),
    }
}

/// Disconnects the clients and sets `super_read_only`; returns what the instance had executed
/// by then (nothing more can come).
async fn make_read_only<C: MySqlConnector, P: PodWrites>(
    connector: &C,
    target: &OperateTarget<'_, P>,
    observation: &Observation,
    ordinal: u8,
) -> Result<GtidSet, OperateError> {
    let endpoint = pod_endpoint(observation, ordinal, "make read-only")?;
    make_read_only_at(connector, target, ordinal, &endpoint).await
}

async fn make_read_only_at<C: MySqlConnector, P: PodWrites>(
    connector: &C,
    target: &OperateTarget<'_, P>,
    ordinal: u8,
    endpoint: &Endpoint,
) -> Result<GtidSet, OperateError> {
    sql_at(
        connector,
        target,
        endpoint,
        ordinal,
        "make read-only",
        |a| async move {
            // Clients first: they reconnect through the Services to the new primary, and their
            // commits cannot be acknowledged here once they are gone.
            a.kill_client_sessions(OWN_USERS).await?;
            a.set_read_only(true).await?;
            // At once: a primary whose pod is being deleted shuts down right after this.
            let executed = a.status().await?.gtid_executed;
            // And the clients that connected meanwhile; best effort, as the server may be
            // going down already.
            if let Err(e) = a.kill_client_sessions(OWN_USERS).await {
                tracing::debug!(error = %e, "clients of a demoted instance not disconnected");
            }
            Ok(executed)
        },
    )
    .await
}

/// The address of an instance's pod.
fn pod_endpoint(
    observation: &Observation,
    ordinal: u8,
    action: &'static str,
) -> Result<Endpoint, OperateError> {
    let ip = observation
        .instances
        .iter()
        .find(|i| i.ordinal == ordinal)
        .and_then(|i| i.pod.as_ref())
        .and_then(|p| p.ip.clone())
        .ok_or(OperateError::NoAddress { action, ordinal })?;
    Ok(Endpoint::new(ip, naming::MYSQL_PORT as u16))
}

/// Connects to one instance by its pod IP and runs `work` on the session.
async fn sql<C, P, F, Fut, T>(
    connector: &C,
    target: &OperateTarget<'_, P>,
    observation: &Observation,
    ordinal: u8,
    action: &'static str,
    work: F,
) -> Result<T, OperateError>
where
    C: MySqlConnector,
    P: PodWrites,
    F: FnOnce(C::Admin) -> Fut,
    Fut: Future<Output = Result<T, MySqlError>>,
{
    let endpoint = pod_endpoint(observation, ordinal, action)?;
    sql_at(connector, target, &endpoint, ordinal, action, work).await
}

/// Connects to an instance at `endpoint` and runs `work` on the session.
async fn sql_at<C, P, F, Fut, T>(
    connector: &C,
    target: &OperateTarget<'_, P>,
    endpoint: &Endpoint,
    ordinal: u8,
    action: &'static str,
    work: F,
) -> Result<T, OperateError>
where
    C: MySqlConnector,
    P: PodWrites,
    F: FnOnce(C::Admin) -> Fut,
    Fut: Future<Output = Result<T, MySqlError>>,
{
    let wrap = |source| OperateError::Sql {
        action,
        ordinal,
        source,
    };
    let admin = connector
        .connect(endpoint, target.operator)
        .await
        .map_err(wrap)?;
    work(admin).await.map_err(wrap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_answer_from_the_server_is_a_refusal() {
        let sql = |source| OperateError::Sql {
            action: "apply settings online",
            ordinal: 1,
            source,
        };
        let refused = sql(MySqlError::Query {
            action: "run SET GLOBAL max_connections = 'lots'".into(),
            endpoint: "10.0.0.1:3306".into(),
            code: 1232,
            source: "Incorrect argument type".into(),
        });
        let down = sql(MySqlError::ConnectTimeout {
            endpoint: "10.0.0.1:3306".into(),
            after: Duration::from_secs(3),
        });
        let no_ip = OperateError::NoAddress {
            action: "apply settings online",
            ordinal: 1,
        };
        assert!(refused.is_refusal());
        assert!(!down.is_refusal());
        assert!(!no_ip.is_refusal());
    }

    #[test]
    fn only_values_an_instance_took_count_as_taken_and_refusals_are_named() {
        let change = SettingsChange {
            ordinal: 1,
            pod: "db-1".into(),
            set: vec![
                ("max_connections".into(), "lots".into()),
                ("wait_timeout".into(), "30".into()),
            ],
            reset: vec!["long_query_time".into()],
            applied: Default::default(),
            first: false,
        };
        let refusal = OperateError::Sql {
            action: "apply settings online",
            ordinal: 1,
            source: MySqlError::InvalidInput {
                action: "x".into(),
                detail: "y".into(),
            },
        };
        let outcome = SettingsOutcome {
            change,
            taken: vec!["wait_timeout".into(), "long_query_time".into()],
            refused: vec![("max_connections".into(), refusal)],
            error: None,
        };
        let results = settings_results(&[outcome]);
        assert_eq!(results.taken, [("wait_timeout".into(), "30".into())]);
        assert_eq!(results.refused, ["max_connections"]);
    }
}
