//! Operate: carries out a plan's actions in order, stopping at the first failure.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use super::clones::CloneTasks;
use super::decide::{Action, Plan, Role, SEMI_SYNC_TIMEOUT, peer_tls};
use super::observe::{Observation, instance_endpoint};
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
    naming::CLONE_USER,
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
    /// The replication account.
    pub replication: &'a Credentials,
    /// The account recipients clone from.
    pub clone_donor: &'a Credentials,
    /// The cluster's pods (the `Api<Pod>` of its namespace, but for tests).
    pub pods: &'a P,
    /// Where a clone runs once started.
    pub clones: &'a CloneTasks,
    /// The CA the instances' certificates come from, when the operator knows it.
    pub cluster_ca: Option<&'a Arc<[u8]>>,
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
    let operator = Operator {
        connector,
        target,
        observation,
    };
    let mut done = Vec::new();
    let mut demoted = Demoted::new();
    for action in &plan.actions {
        if let Err(error) = operator.carry_out(action, &mut demoted).await {
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

/// One plan's means of acting on its cluster: SQL sessions with the instances, writes to the
/// pods. Each action's body is one method, so `carry_out` reads as the list of actions.
struct Operator<'a, C, P> {
    connector: &'a C,
    target: &'a OperateTarget<'a, P>,
    observation: &'a Observation,
}

impl<C: MySqlConnector, P: PodWrites> Operator<'_, C, P> {
    /// Carries out one action; a demotion keeps what the instance executed in `demoted`, for a
    /// later `CatchUpWith` of the same plan.
    async fn carry_out(&self, action: &Action, demoted: &mut Demoted) -> Result<(), OperateError> {
        match action {
            Action::SetRoleLabel { ordinal, role } => self.set_role_label(*ordinal, *role).await,
            Action::MakeReadOnly { ordinal } => {
                let executed = self.make_read_only(*ordinal).await?;
                demoted.insert(*ordinal, executed);
                Ok(())
            }
            Action::ForceReadOnly { ordinal } => {
                let endpoint =
                    pod_endpoint(self.target, self.observation, *ordinal, "make read-only")?;
                self.force_read_only(*ordinal, &endpoint).await
            }
            Action::DemoteAtAddress { ordinal, address } => {
                self.demote_at_address(*ordinal, address).await
            }
            Action::CatchUpWith { ordinal, source } => {
                self.catch_up_with(*ordinal, *source, demoted).await
            }
            Action::RestartPod { ordinal } => self.restart_pod(*ordinal).await,
            Action::ClearRecloneRequest { ordinal } => self.clear_reclone_request(*ordinal).await,
            Action::MakeWritable { ordinal } => self.make_writable(*ordinal).await,
            Action::StopReplicating { ordinal } => self.stop_replicating(*ordinal).await,
            Action::EnableSemiSyncSource {
                ordinal,
                wait_for_replica_count,
            } => {
                self.enable_semi_sync_source(*ordinal, *wait_for_replica_count)
                    .await
            }
            Action::DisableSemiSyncSource { ordinal } => {
                self.disable_semi_sync_source(*ordinal).await
            }
            Action::RecordClusterIdentity { ordinal } => {
                self.record_cluster_identity(*ordinal).await
            }
            Action::ReplicateFrom { ordinal, source } => {
                self.replicate_from(*ordinal, *source).await
            }
            Action::StopReplicaIo { ordinal } => self.fence(*ordinal).await,
            Action::WaitForTransactions { ordinal, gtids } => {
                self.wait_for_transactions(*ordinal, gtids).await
            }
            Action::CloneFrom { ordinal, donor, .. } => self.start_clone(*ordinal, *donor).await,
        }
    }

    async fn set_role_label(&self, ordinal: u8, role: Role) -> Result<(), OperateError> {
        let pod = naming::pod(self.target.cluster_name, ordinal);
        self.target
            .pods
            .set_role(&pod, role)
            .await
            .map_err(|source| OperateError::Label {
                pod,
                role: role.label(),
                source,
            })
    }

    async fn demote_at_address(&self, ordinal: u8, address: &str) -> Result<(), OperateError> {
        let endpoint = Endpoint::new(address, naming::MYSQL_PORT as u16);
        match self.force_read_only(ordinal, &endpoint).await {
            // Gone (or not answering): nothing is left there to demote.
            Err(OperateError::Sql { source, .. }) if source.is_unreachable() => Ok(()),
            other => other,
        }
    }

    /// Waits until `ordinal` has applied what `source` executed: as read when this plan made it
    /// read-only, or now if an earlier round did.
    async fn catch_up_with(
        &self,
        ordinal: u8,
        source: u8,
        demoted: &Demoted,
    ) -> Result<(), OperateError> {
        let gtids = match demoted.get(&source) {
            Some(executed) => executed.clone(),
            None => {
                self.sql(
                    source,
                    "read what the old primary executed",
                    |a| async move { Ok(a.status().await?.gtid_executed) },
                )
                .await?
            }
        };
        let action = "catch up with the old primary";
        self.wait_until_applied(ordinal, action, gtids, CATCH_UP_TIMEOUT)
            .await
    }

    /// Waits until instance `ordinal` has applied `gtids`, at most `timeout`; not in time is a
    /// timeout failure of `action`.
    async fn wait_until_applied(
        &self,
        ordinal: u8,
        action: &'static str,
        gtids: GtidSet,
        timeout: Duration,
    ) -> Result<(), OperateError> {
        self.sql(ordinal, action, |a| async move {
            if a.wait_for_gtid(&gtids, timeout).await? {
                Ok(())
            } else {
                Err(MySqlError::Timeout {
                    action: action.into(),
                    endpoint: format!("instance {ordinal}"),
                    after: timeout,
                })
            }
        })
        .await
    }

    async fn restart_pod(&self, ordinal: u8) -> Result<(), OperateError> {
        let pod = naming::pod(self.target.cluster_name, ordinal);
        self.target
            .pods
            .restart(&pod)
            .await
            .map_err(|source| OperateError::Restart { pod, source })
    }

    async fn clear_reclone_request(&self, ordinal: u8) -> Result<(), OperateError> {
        let pod = naming::pod(self.target.cluster_name, ordinal);
        self.target
            .pods
            .clear_reclone_request(&pod)
            .await
            .map_err(|source| OperateError::Annotate { pod, source })
    }

    async fn make_writable(&self, ordinal: u8) -> Result<(), OperateError> {
        // Before, not after: the moment from which two writers would be possible, for whoever
        // checks a fence against it (e2e/bench/node-loss does).
        tracing::info!(
            ordinal,
            "lifting super_read_only: the instance becomes writable"
        );
        self.sql(ordinal, "make writable", |a| async move {
            a.set_read_only(false).await
        })
        .await
    }

    async fn stop_replicating(&self, ordinal: u8) -> Result<(), OperateError> {
        self.sql(ordinal, "stop replicating", |a| async move {
            a.reset_replica_all().await
        })
        .await
    }

    async fn enable_semi_sync_source(
        &self,
        ordinal: u8,
        wait_for_replica_count: u32,
    ) -> Result<(), OperateError> {
        let config = SemiSyncSourceConfig {
            wait_for_replica_count,
            timeout: SEMI_SYNC_TIMEOUT,
        };
        self.sql(ordinal, "enable semi-sync source", |a| async move {
            a.enable_semi_sync_source(config).await
        })
        .await
    }

    async fn disable_semi_sync_source(&self, ordinal: u8) -> Result<(), OperateError> {
        self.sql(ordinal, "disable semi-sync source", |a| async move {
            a.disable_semi_sync_source().await
        })
        .await
    }

    async fn record_cluster_identity(&self, ordinal: u8) -> Result<(), OperateError> {
        let (uid, name) = (self.target.cluster_uid, self.target.cluster_name);
        self.sql(ordinal, "record the cluster identity", |a| async move {
            a.record_cluster_identity(uid, name).await
        })
        .await
    }

    async fn replicate_from(&self, ordinal: u8, source: u8) -> Result<(), OperateError> {
        let source = ReplicationSource {
            endpoint: self.stable_endpoint(source),
            credentials: self.target.replication.clone(),
            tls: peer_tls(self.observation, ordinal, source),
            connect_retry: SOURCE_CONNECT_RETRY,
            retry_count: SOURCE_RETRY_COUNT,
        };
        self.sql(ordinal, "start replicating", |a| async move {
            // Semi-sync first, so the I/O thread acknowledges from its first event.
            a.enable_semi_sync_replica().await?;
            a.configure_replica(&source).await
        })
        .await
    }

    /// The fence: this replica acknowledges nothing more to its source, also after a restart.
    async fn fence(&self, ordinal: u8) -> Result<(), OperateError> {
        const ACTION: &str = "fence (stop replication I/O, also after a restart)";
        self.sql(ordinal, ACTION, |a| async move { a.fence_replica().await })
            .await
    }

    /// Waits until the instance has applied its relay log (`gtids`), before its promotion.
    async fn wait_for_transactions(
        &self,
        ordinal: u8,
        gtids: &GtidSet,
    ) -> Result<(), OperateError> {
        let action = "apply the relay log";
        self.wait_until_applied(ordinal, action, gtids.clone(), RELAY_LOG_TIMEOUT)
            .await
    }

    /// Opens the recipient's session here, so that an instance that does not answer fails the
    /// plan, and leaves the clone itself to a background task (see `clones.rs`).
    async fn start_clone(&self, ordinal: u8, donor: u8) -> Result<(), OperateError> {
        const ACTION: &str = "start a clone from a donor";
        let donor_endpoint = self.stable_endpoint(donor);
        let credentials = self.target.clone_donor.clone();
        let tls = peer_tls(self.observation, ordinal, donor);
        let endpoint = pod_endpoint(self.target, self.observation, ordinal, ACTION)?;
        let admin = self
            .connector
            .connect(&endpoint, self.target.operator)
            .await
            .map_err(|source| OperateError::Sql {
                action: ACTION,
                ordinal,
                source,
            })?;
        self.target
            .clones
            .start(self.target.cluster_uid, ordinal, async move {
                match admin
                    .clone_from(&donor_endpoint, &credentials, &tls, CLONE_TIMEOUT)
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

    /// Makes a writable instance that must not be read-only; if a commit waiting for
    /// acknowledgements that cannot come holds that back, shuts mysqld down (see
    /// `ForceReadOnly`).
    async fn force_read_only(&self, ordinal: u8, endpoint: &Endpoint) -> Result<(), OperateError> {
        match self.make_read_only_at(ordinal, endpoint).await {
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
                const ACTION: &str = "shut down an instance that cannot be made read-only";
                sql_at(
                    self.connector,
                    self.target,
                    endpoint,
                    ordinal,
                    ACTION,
                    |a| async move { a.shutdown().await },
                )
                .await
            }
            other => other.map(|_executed| ()),
        }
    }

    /// Disconnects the clients and sets `super_read_only`; returns what the instance had
    /// executed by then (nothing more can come).
    async fn make_read_only(&self, ordinal: u8) -> Result<GtidSet, OperateError> {
        let endpoint = pod_endpoint(self.target, self.observation, ordinal, "make read-only")?;
        self.make_read_only_at(ordinal, &endpoint).await
    }

    async fn make_read_only_at(
        &self,
        ordinal: u8,
        endpoint: &Endpoint,
    ) -> Result<GtidSet, OperateError> {
        sql_at(
            self.connector,
            self.target,
            endpoint,
            ordinal,
            "make read-only",
            |a| async move {
                // Clients first: they reconnect through the Services to the new primary, and
                // their commits cannot be acknowledged here once they are gone.
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

    /// The name other instances reach `ordinal` by, stable across its pod's restarts.
    fn stable_endpoint(&self, ordinal: u8) -> Endpoint {
        Endpoint::new(
            naming::pod_host(self.target.cluster_name, self.target.namespace, ordinal),
            naming::MYSQL_PORT as u16,
        )
    }

    /// Connects to one instance by its pod IP and runs `work` on the session.
    async fn sql<F, Fut, T>(
        &self,
        ordinal: u8,
        action: &'static str,
        work: F,
    ) -> Result<T, OperateError>
    where
        F: FnOnce(C::Admin) -> Fut,
        Fut: Future<Output = Result<T, MySqlError>>,
    {
        sql(
            self.connector,
            self.target,
            self.observation,
            ordinal,
            action,
            work,
        )
        .await
    }
}

/// The address of an instance's pod, and the certificate it must prove (`instance_endpoint`).
fn pod_endpoint<P>(
    target: &OperateTarget<'_, P>,
    observation: &Observation,
    ordinal: u8,
    action: &'static str,
) -> Result<Endpoint, OperateError> {
    observation
        .pod(ordinal)
        .and_then(|pod| {
            instance_endpoint(
                target.cluster_name,
                target.namespace,
                ordinal,
                pod,
                target.cluster_ca,
            )
        })
        .ok_or(OperateError::NoAddress { action, ordinal })
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
    let endpoint = pod_endpoint(target, observation, ordinal, action)?;
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
    use std::sync::Mutex;

    use super::*;
    use crate::clustering::observe::{InstanceObservation, MySqlObservation, PodFacts};
    use crate::mysql::fake::{Call, CallLog, Failure, FakeMySql};

    /// Pod writes recorded into the SQL fake's log (at the pod's name), so that one log shows
    /// the order of everything a plan did; a write can be made to fail.
    #[derive(Default)]
    struct FakePods {
        log: CallLog,
        failing: Mutex<Vec<(String, &'static str)>>,
    }

    impl FakePods {
        fn fail(&self, pod: &str, verb: &'static str) {
            self.failing.lock().unwrap().push((pod.to_string(), verb));
        }

        fn call(&self, pod: &str, verb: &'static str, args: &str) -> Result<(), kube::Error> {
            self.log.record(pod, verb, args);
            if self
                .failing
                .lock()
                .unwrap()
                .contains(&(pod.to_string(), verb))
            {
                let status = kube::core::Status::failure("scripted", "Forbidden").with_code(403);
                return Err(kube::Error::Api(status.boxed()));
            }
            Ok(())
        }
    }

    impl PodWrites for FakePods {
        async fn set_role(&self, pod: &str, role: Role) -> Result<(), kube::Error> {
            self.call(pod, "set_role", role.label())
        }

        async fn restart(&self, pod: &str) -> Result<(), kube::Error> {
            self.call(pod, "restart", "")
        }

        async fn clear_reclone_request(&self, pod: &str) -> Result<(), kube::Error> {
            self.call(pod, "clear_reclone_request", "")
        }

        async fn record_online_settings(&self, pod: &str, record: &str) -> Result<(), kube::Error> {
            self.call(pod, "record_online_settings", record)
        }
    }

    const CLUSTER: &str = "db";
    const UID: &str = "uid-1";
    const NAMESPACE: &str = "ns";

    /// A cluster of three instances whose pods have addresses, and fakes for all its IO.
    struct Bench {
        mysql: FakeMySql,
        pods: FakePods,
        clones: CloneTasks,
        observation: Observation,
        operator: Credentials,
        replication: Credentials,
    }

    impl Bench {
        fn new() -> Self {
            let log = CallLog::default();
            let instance = |ordinal: u8| InstanceObservation {
                ordinal,
                pod: Some(PodFacts {
                    name: naming::pod(CLUSTER, ordinal),
                    ip: Some(Bench::ip(ordinal)),
                    ready: true,
                    role_label: None,
                    terminating: false,
                    mysqld_started: true,
                    reclone_requested: false,
                    revision: None,
                    waiting_reason: None,
                    online_settings: None,
                    restart_settings: None,
                    serves_cluster_certificate: true,
                }),
                mysql: MySqlObservation::NotRunning,
                replication_source: None,
            };
            Bench {
                mysql: FakeMySql::recording_into(log.clone()),
                pods: FakePods {
                    log,
                    failing: Mutex::default(),
                },
                clones: CloneTasks::default(),
                observation: Observation {
                    desired_instances: 3,
                    current_primary: Some(0),
                    update_revision: None,
                    members: vec![0, 1, 2],
                    instances: (0..3).map(instance).collect(),
                    retained_volumes: Vec::new(),
                    failed_over_from: None,
                    cloning: Vec::new(),
                },
                operator: Credentials::new(naming::OPERATOR_USER, "op-secret"),
                replication: Credentials::new(naming::REPLICATION_USER, "repl-secret"),
            }
        }

        fn ip(ordinal: u8) -> String {
            format!("10.0.0.{}", ordinal + 10)
        }

        /// Where the operator reaches instance `ordinal`: its pod's address.
        fn at(ordinal: u8) -> Endpoint {
            Endpoint::new(Bench::ip(ordinal), 3306)
        }

        /// The name other instances reach instance `ordinal` by: stable across pod restarts.
        fn stable(ordinal: u8) -> Endpoint {
            Endpoint::new(naming::pod_host(CLUSTER, NAMESPACE, ordinal), 3306)
        }

        fn pod(ordinal: u8) -> String {
            naming::pod(CLUSTER, ordinal)
        }

        async fn operate(&self, actions: &[Action]) -> Operated {
            let target = OperateTarget {
                cluster_name: CLUSTER,
                cluster_uid: UID,
                namespace: NAMESPACE,
                operator: &self.operator,
                replication: &self.replication,
                clone_donor: &self.replication,
                pods: &self.pods,
                clones: &self.clones,
                cluster_ca: None,
            };
            let plan = Plan {
                primary: Some(0),
                actions: actions.to_vec(),
                findings: Vec::new(),
                failover_from: None,
                switchover_from: None,
                follow_up_soon: false,
                members: vec![0, 1, 2],
                failover_underway: None,
            };
            operate(&self.mysql, &target, &self.observation, &plan).await
        }

        fn calls(&self) -> Vec<Call> {
            self.mysql.log().calls()
        }

        /// Waits until the clones started in the background have ended.
        async fn clones_ended(&self) {
            for _ in 0..1000 {
                if self.clones.in_flight(UID).is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            panic!("the clone task did not end");
        }
    }

    fn login(ordinal: u8) -> Call {
        Call::new(
            Bench::at(ordinal),
            "connect",
            format!("user={}", naming::OPERATOR_USER),
        )
    }

    fn sql(ordinal: u8, verb: &'static str, args: impl Into<String>) -> Call {
        Call::new(Bench::at(ordinal), verb, args)
    }

    fn kill_clients(ordinal: u8) -> Call {
        let own = [
            naming::OPERATOR_USER,
            naming::REPLICATION_USER,
            naming::CLONE_USER,
            naming::PROBE_USER,
        ];
        sql(ordinal, "kill_client_sessions", format!("keep {own:?}"))
    }

    fn gtids(text: &str) -> GtidSet {
        GtidSet::parse(text).unwrap()
    }

    const OLD_PRIMARY_UUID: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

    fn assert_all_done(operated: &Operated, actions: &[Action]) {
        assert!(operated.failed.is_none(), "{:?}", operated.failed);
        assert_eq!(operated.done, actions);
    }

    /// Each action alone: done, with exactly these calls to MySQL and the pods, in order.
    #[tokio::test]
    async fn each_action_issues_exactly_its_calls_in_order() {
        let cases = [
            (
                "set role label writes the role on the pod and no sql",
                vec![Action::SetRoleLabel {
                    ordinal: 1,
                    role: Role::Primary,
                }],
                vec![Call::new(Bench::pod(1), "set_role", naming::ROLE_PRIMARY)],
            ),
            (
                "clear reclone request removes the annotation and no sql",
                vec![Action::ClearRecloneRequest { ordinal: 2 }],
                vec![Call::new(Bench::pod(2), "clear_reclone_request", "")],
            ),
            (
                "make read only disconnects clients before and after and reads the executed set",
                vec![Action::MakeReadOnly { ordinal: 0 }],
                vec![
                    login(0),
                    kill_clients(0),
                    sql(0, "set_read_only", "true"),
                    sql(0, "status", ""),
                    kill_clients(0),
                ],
            ),
            (
                "force read only of an instance that answers does not shut it down",
                vec![Action::ForceReadOnly { ordinal: 2 }],
                vec![
                    login(2),
                    kill_clients(2),
                    sql(2, "set_read_only", "true"),
                    sql(2, "status", ""),
                    kill_clients(2),
                ],
            ),
            (
                "semi sync source is enabled with a timeout that never falls back",
                vec![Action::EnableSemiSyncSource {
                    ordinal: 0,
                    wait_for_replica_count: 2,
                }],
                vec![
                    login(0),
                    sql(
                        0,
                        "enable_semi_sync_source",
                        format!("wait for 2 within {SEMI_SYNC_TIMEOUT:?}"),
                    ),
                ],
            ),
            (
                "disable semi sync source turns it off",
                vec![Action::DisableSemiSyncSource { ordinal: 0 }],
                vec![login(0), sql(0, "disable_semi_sync_source", "")],
            ),
            (
                "record cluster identity writes the clusters uid and name",
                vec![Action::RecordClusterIdentity { ordinal: 0 }],
                vec![
                    login(0),
                    sql(0, "record_cluster_identity", "uid=uid-1 name=db"),
                ],
            ),
            (
                "replicate from enables semi sync first and follows the sources stable name",
                vec![Action::ReplicateFrom {
                    ordinal: 2,
                    source: 0,
                }],
                vec![
                    login(2),
                    sql(2, "enable_semi_sync_replica", ""),
                    sql(
                        2,
                        "configure_replica",
                        format!(
                            "source={} user={} tls verified by /etc/mysql-tls/ca.crt retry every 2s x86400",
                            Bench::stable(0),
                            naming::REPLICATION_USER
                        ),
                    ),
                ],
            ),
            (
                "restart pod deletes the pod and no sql",
                vec![Action::RestartPod { ordinal: 2 }],
                vec![Call::new(Bench::pod(2), "restart", "")],
            ),
            (
                "make writable lifts read only",
                vec![Action::MakeWritable { ordinal: 1 }],
                vec![login(1), sql(1, "set_read_only", "false")],
            ),
            (
                "stop replicating forgets the source",
                vec![Action::StopReplicating { ordinal: 1 }],
                vec![login(1), sql(1, "reset_replica_all", "")],
            ),
            (
                "stop replica io fences the replica across restarts",
                vec![Action::StopReplicaIo { ordinal: 2 }],
                vec![login(2), sql(2, "fence_replica", "")],
            ),
        ];
        for (name, actions, calls) in cases {
            let bench = Bench::new();
            assert_all_done(&bench.operate(&actions).await, &actions);
            assert_eq!(bench.calls(), calls, "{name}");
        }
    }

    #[tokio::test]
    async fn make_read_only_that_times_out_stops_the_plan_with_the_primary_still_writable() {
        let bench = Bench::new();
        bench
            .mysql
            .fail(&Bench::at(0), "set_read_only", Failure::Timeout);
        let actions = [
            Action::MakeReadOnly { ordinal: 0 },
            Action::MakeWritable { ordinal: 1 },
        ];
        let operated = bench.operate(&actions).await;
        assert!(operated.done.is_empty());
        assert!(
            matches!(
                operated.failed,
                Some(OperateError::Sql {
                    action: "make read-only",
                    ordinal: 0,
                    source: MySqlError::Timeout { .. },
                })
            ),
            "{:?}",
            operated.failed
        );
        // No shutdown (that is ForceReadOnly's way out), and nothing more.
        assert_eq!(
            bench.calls(),
            [login(0), kill_clients(0), sql(0, "set_read_only", "true")]
        );
    }

    #[tokio::test]
    async fn force_read_only_shuts_mysqld_down_when_a_waiting_commit_holds_read_only_back() {
        let bench = Bench::new();
        bench
            .mysql
            .fail(&Bench::at(2), "set_read_only", Failure::Timeout);
        let actions = [Action::ForceReadOnly { ordinal: 2 }];
        assert_all_done(&bench.operate(&actions).await, &actions);
        assert_eq!(
            bench.calls(),
            [
                login(2),
                kill_clients(2),
                sql(2, "set_read_only", "true"),
                login(2),
                sql(2, "shutdown", ""),
            ]
        );
    }

    #[tokio::test]
    async fn force_read_only_refused_by_the_server_is_a_failure_not_a_shutdown() {
        let bench = Bench::new();
        bench
            .mysql
            .fail(&Bench::at(2), "set_read_only", Failure::Refused);
        let operated = bench.operate(&[Action::ForceReadOnly { ordinal: 2 }]).await;
        assert!(operated.done.is_empty());
        assert!(operated.failed.as_ref().is_some_and(|e| e.is_refusal()));
        assert!(!bench.calls().iter().any(|c| c.verb == "shutdown"));
    }

    #[tokio::test]
    async fn demote_at_address_demotes_the_server_at_its_last_seen_address() {
        let bench = Bench::new();
        let actions = [Action::DemoteAtAddress {
            ordinal: 0,
            address: "10.0.9.9".into(),
        }];
        assert_all_done(&bench.operate(&actions).await, &actions);
        let old = Endpoint::new("10.0.9.9", 3306);
        let keep = format!(
            "keep {:?}",
            [
                naming::OPERATOR_USER,
                naming::REPLICATION_USER,
                naming::CLONE_USER,
                naming::PROBE_USER
            ]
        );
        assert_eq!(
            bench.calls(),
            [
                Call::new(&old, "connect", format!("user={}", naming::OPERATOR_USER)),
                Call::new(&old, "kill_client_sessions", keep.clone()),
                Call::new(&old, "set_read_only", "true"),
                Call::new(&old, "status", ""),
                Call::new(&old, "kill_client_sessions", keep),
            ]
        );
    }

    #[tokio::test]
    async fn demote_at_address_where_nothing_answers_is_done_and_the_plan_goes_on() {
        let bench = Bench::new();
        let old = Endpoint::new("10.0.9.9", 3306);
        bench.mysql.fail(&old, "connect", Failure::Unreachable);
        let actions = [
            Action::DemoteAtAddress {
                ordinal: 0,
                address: "10.0.9.9".into(),
            },
            Action::MakeWritable { ordinal: 1 },
        ];
        assert_all_done(&bench.operate(&actions).await, &actions);
        assert_eq!(
            bench.calls(),
            [
                Call::new(&old, "connect", format!("user={}", naming::OPERATOR_USER)),
                login(1),
                sql(1, "set_read_only", "false"),
            ]
        );
    }

    #[tokio::test]
    async fn demote_at_address_refused_by_a_live_server_stops_the_plan() {
        let bench = Bench::new();
        let old = Endpoint::new("10.0.9.9", 3306);
        bench
            .mysql
            .fail(&old, "kill_client_sessions", Failure::Refused);
        let actions = [
            Action::DemoteAtAddress {
                ordinal: 0,
                address: "10.0.9.9".into(),
            },
            Action::MakeWritable { ordinal: 1 },
        ];
        let operated = bench.operate(&actions).await;
        assert!(operated.done.is_empty());
        assert!(operated.failed.is_some());
        assert!(!bench.calls().contains(&login(1)));
    }

    #[tokio::test]
    async fn catch_up_waits_for_what_the_old_primary_executed_read_at_the_time_when_not_demoted_here()
     {
        let bench = Bench::new();
        let executed = gtids(&format!("{OLD_PRIMARY_UUID}:1-42"));
        bench.mysql.set_executed(&Bench::at(0), executed.clone());
        let actions = [Action::CatchUpWith {
            ordinal: 1,
            source: 0,
        }];
        assert_all_done(&bench.operate(&actions).await, &actions);
        assert_eq!(
            bench.calls(),
            [
                login(0),
                sql(0, "status", ""),
                login(1),
                sql(
                    1,
                    "wait_for_gtid",
                    format!("{executed} within {CATCH_UP_TIMEOUT:?}")
                ),
            ]
        );
    }

    #[tokio::test]
    async fn a_switchover_promotes_only_after_the_new_primary_applied_what_the_demoted_one_executed()
     {
        let bench = Bench::new();
        let executed = gtids(&format!("{OLD_PRIMARY_UUID}:1-42"));
        bench.mysql.set_executed(&Bench::at(0), executed.clone());
        let actions = [
            Action::MakeReadOnly { ordinal: 0 },
            Action::CatchUpWith {
                ordinal: 1,
                source: 0,
            },
            Action::StopReplicating { ordinal: 1 },
            Action::MakeWritable { ordinal: 1 },
        ];
        assert_all_done(&bench.operate(&actions).await, &actions);
        assert_eq!(
            bench.calls(),
            [
                login(0),
                kill_clients(0),
                sql(0, "set_read_only", "true"),
                sql(0, "status", ""),
                kill_clients(0),
                // The set read at demotion: no second session to the old primary, which may
                // already be shutting down.
                login(1),
                sql(
                    1,
                    "wait_for_gtid",
                    format!("{executed} within {CATCH_UP_TIMEOUT:?}")
                ),
                login(1),
                sql(1, "reset_replica_all", ""),
                login(1),
                sql(1, "set_read_only", "false"),
            ]
        );
    }

    #[tokio::test]
    async fn a_switchover_whose_catch_up_is_not_in_time_stops_before_the_promotion() {
        let bench = Bench::new();
        bench.mysql.never_apply(&Bench::at(1));
        let actions = [
            Action::MakeReadOnly { ordinal: 0 },
            Action::CatchUpWith {
                ordinal: 1,
                source: 0,
            },
            Action::MakeWritable { ordinal: 1 },
        ];
        let operated = bench.operate(&actions).await;
        assert_eq!(operated.done, [Action::MakeReadOnly { ordinal: 0 }]);
        assert!(
            matches!(
                operated.failed,
                Some(OperateError::Sql {
                    action: "catch up with the old primary",
                    ordinal: 1,
                    source: MySqlError::Timeout { .. },
                })
            ),
            "{:?}",
            operated.failed
        );
        assert_eq!(
            bench.calls().last().map(|c| c.verb),
            Some("wait_for_gtid"),
            "nothing after the catch-up"
        );
    }

    #[tokio::test]
    async fn wait_for_transactions_waits_for_the_relay_log_with_its_own_timeout() {
        let bench = Bench::new();
        let relay_log = gtids(&format!("{OLD_PRIMARY_UUID}:1-7"));
        let actions = [Action::WaitForTransactions {
            ordinal: 1,
            gtids: relay_log.clone(),
        }];
        assert_all_done(&bench.operate(&actions).await, &actions);
        assert_eq!(
            bench.calls(),
            [
                login(1),
                sql(
                    1,
                    "wait_for_gtid",
                    format!("{relay_log} within {RELAY_LOG_TIMEOUT:?}")
                ),
            ]
        );
    }

    #[tokio::test]
    async fn a_relay_log_not_applied_in_time_is_a_timeout_failure() {
        let bench = Bench::new();
        bench.mysql.never_apply(&Bench::at(1));
        let actions = [Action::WaitForTransactions {
            ordinal: 1,
            gtids: gtids(&format!("{OLD_PRIMARY_UUID}:1-7")),
        }];
        let operated = bench.operate(&actions).await;
        assert!(operated.done.is_empty());
        assert!(
            matches!(
                operated.failed,
                Some(OperateError::Sql {
                    action: "apply the relay log",
                    ordinal: 1,
                    source: MySqlError::Timeout { .. },
                })
            ),
            "{:?}",
            operated.failed
        );
    }

    #[tokio::test]
    async fn a_clone_is_started_in_the_background_from_the_donors_stable_name() {
        let bench = Bench::new();
        let actions = [Action::CloneFrom {
            ordinal: 2,
            donor: 0,
            discarded: None,
        }];
        assert_all_done(&bench.operate(&actions).await, &actions);
        bench.clones_ended().await;
        assert_eq!(
            bench.calls(),
            [
                login(2),
                sql(
                    2,
                    "clone_from",
                    format!(
                        "donor={} user={} tls verified by /etc/mysql-tls/ca.crt within {CLONE_TIMEOUT:?}",
                        Bench::stable(0),
                        naming::REPLICATION_USER
                    )
                ),
            ]
        );
    }

    #[tokio::test]
    async fn a_clone_does_not_hold_up_the_plan_and_its_failure_does_not_fail_it() {
        let bench = Bench::new();
        bench
            .mysql
            .fail(&Bench::at(2), "clone_from", Failure::Refused);
        let actions = [
            Action::CloneFrom {
                ordinal: 2,
                donor: 0,
                discarded: None,
            },
            Action::SetRoleLabel {
                ordinal: 2,
                role: Role::Replica,
            },
        ];
        assert_all_done(&bench.operate(&actions).await, &actions);
        bench.clones_ended().await;
        let calls = bench.calls();
        // The label was written right after the session opened, whenever the clone ran.
        assert_eq!(calls[0], login(2));
        assert!(calls.contains(&Call::new(Bench::pod(2), "set_role", naming::ROLE_REPLICA)));
        assert!(calls.iter().any(|c| c.verb == "clone_from"));
    }

    #[tokio::test]
    async fn a_clone_whose_recipient_does_not_answer_is_never_started() {
        let bench = Bench::new();
        bench
            .mysql
            .fail(&Bench::at(2), "connect", Failure::Unreachable);
        let actions = [Action::CloneFrom {
            ordinal: 2,
            donor: 0,
            discarded: None,
        }];
        let operated = bench.operate(&actions).await;
        assert!(operated.done.is_empty());
        assert!(
            matches!(
                operated.failed,
                Some(OperateError::Sql {
                    action: "start a clone from a donor",
                    ordinal: 2,
                    ..
                })
            ),
            "{:?}",
            operated.failed
        );
        assert!(bench.clones.in_flight(UID).is_empty());
        assert_eq!(bench.calls(), [login(2)]);
    }

    #[tokio::test]
    async fn a_failed_action_stops_the_plan_and_what_was_done_before_it_is_reported() {
        let bench = Bench::new();
        bench
            .mysql
            .fail(&Bench::at(2), "fence_replica", Failure::Unreachable);
        let actions = [
            Action::StopReplicaIo { ordinal: 1 },
            Action::StopReplicaIo { ordinal: 2 },
            Action::MakeWritable { ordinal: 1 },
            Action::SetRoleLabel {
                ordinal: 1,
                role: Role::Primary,
            },
        ];
        let operated = bench.operate(&actions).await;
        assert_eq!(operated.done, [Action::StopReplicaIo { ordinal: 1 }]);
        let failed = operated.failed.expect("the fence of instance 2 failed");
        assert!(
            matches!(
                &failed,
                OperateError::Sql {
                    ordinal: 2,
                    source,
                    ..
                } if source.is_unreachable()
            ),
            "{failed:?}"
        );
        assert_eq!(
            failed.to_string(),
            "failed to fence (stop replication I/O, also after a restart) on instance 2"
        );
        assert_eq!(
            bench.calls(),
            [
                login(1),
                sql(1, "fence_replica", ""),
                login(2),
                sql(2, "fence_replica", ""),
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_label_write_stops_the_plan() {
        let bench = Bench::new();
        bench.pods.fail(&Bench::pod(1), "set_role");
        let actions = [
            Action::SetRoleLabel {
                ordinal: 1,
                role: Role::Primary,
            },
            Action::MakeWritable { ordinal: 1 },
        ];
        let operated = bench.operate(&actions).await;
        assert!(operated.done.is_empty());
        assert!(
            matches!(
                &operated.failed,
                Some(OperateError::Label { pod, role, .. })
                    if pod == "db-1" && *role == naming::ROLE_PRIMARY
            ),
            "{:?}",
            operated.failed
        );
        assert_eq!(
            bench.calls(),
            [Call::new(Bench::pod(1), "set_role", naming::ROLE_PRIMARY)]
        );
    }

    #[tokio::test]
    async fn an_instance_whose_pod_has_no_address_fails_before_any_sql() {
        let mut bench = Bench::new();
        bench.observation.instances[1].pod.as_mut().unwrap().ip = None;
        let operated = bench.operate(&[Action::MakeWritable { ordinal: 1 }]).await;
        assert!(
            matches!(
                operated.failed,
                Some(OperateError::NoAddress {
                    action: "make writable",
                    ordinal: 1
                })
            ),
            "{:?}",
            operated.failed
        );
        assert!(bench.calls().is_empty());
    }

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
