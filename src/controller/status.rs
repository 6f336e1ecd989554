//! The status step (pure): conditions and per-instance state from what was applied and observed.
//!
//! Conditions follow the Kubernetes API conventions: `lastTransitionTime` changes only when the
//! condition's status changes, and every condition carries the generation it describes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::conditions::{ConditionType, set_condition};
use crate::api::{DiscardedTransactions, InstanceStatus, MySQLClusterStatus, ReplicationStatus};
use crate::clustering::decide::{Finding, WithheldReason};
use crate::clustering::settings::SettingsPlan;
use crate::clustering::{Action, InstanceObservation, MySqlObservation, Observation, Plan};
use crate::resources::naming;
use crate::validate::ValidatedCluster;

/// `ConfigApplied` reasons: the path the last `spec.mysqlConfig` change took.
pub const APPLIED_ONLINE: &str = "AppliedOnline";
pub const ROLLING_RESTART: &str = "RollingRestart";
pub const APPLIED_BY_RESTART: &str = "AppliedByRestart";
pub const SETTING_REFUSED: &str = "SettingRefused";
/// `ResourcesOwned` reason (and Warning event reason) when an object the operator does not own
/// has a child's name.
pub const OBJECT_NOT_OWNED: &str = "ObjectNotOwned";

/// One instance's entry in the status.
fn instance_status(
    cluster: &str,
    plan: &Plan,
    cloning: &[u8],
    i: &InstanceObservation,
) -> InstanceStatus {
    let observed = match &i.mysql {
        MySqlObservation::Observed(s) => Some(s.as_ref()),
        _ => None,
    };
    let errant_gtids = plan.findings.iter().find_map(|f| match f {
        Finding::ErrantTransactions { ordinal, gtids } if *ordinal == i.ordinal => {
            Some(gtids.clone())
        }
        _ => None,
    });
    InstanceStatus {
        name: naming::pod(cluster, i.ordinal),
        pod_ip: i.pod.as_ref().and_then(|p| p.ip.clone()),
        role: match (observed, Some(i.ordinal) == plan.primary) {
            (Some(_), true) => naming::ROLE_PRIMARY.into(),
            (Some(_), false) => naming::ROLE_REPLICA.into(),
            (None, _) => "unknown".into(),
        },
        ready: i.pod.as_ref().is_some_and(|p| p.ready),
        gtid_executed: observed.map(|s| s.gtid_executed.to_string()),
        replication: observed.and_then(|s| {
            let r = s.replica.as_ref()?;
            let error = r.last_io_error.as_ref().or(r.last_sql_error.as_ref());
            Some(ReplicationStatus {
                source: r.source_host.clone(),
                io_thread: r.io_thread.as_str().into(),
                sql_thread: r.sql_thread.as_str().into(),
                lag_seconds: r.seconds_behind_source.map(|l| l as i64),
                semi_sync: s.semi_sync.replica_active,
                last_error: error.map(|e| format!("error {}: {}", e.code, e.message)),
            })
        }),
        errant_gtids,
        unreachable: match &i.mysql {
            MySqlObservation::Unreachable(reason) | MySqlObservation::NotListening(reason) => {
                Some(reason.clone())
            }
            MySqlObservation::NotRunning => Some("no running pod".into()),
            MySqlObservation::Observed(_) => None,
        },
        cloning: cloning.contains(&i.ordinal),
    }
}

/// Both replication threads of the instance run, as observed.
fn threads_running(instance: &InstanceObservation) -> bool {
    match &instance.mysql {
        MySqlObservation::Observed(s) => s.replica.as_ref().is_some_and(|r| r.threads_running()),
        _ => false,
    }
}

/// Why replication is not complete, or `None` when every replica follows the primary.
fn replication_problems(
    observation: &Observation,
    plan: &Plan,
    instances: &[InstanceStatus],
) -> Option<String> {
    let problems: Vec<String> = observation
        .instances
        .iter()
        .zip(instances)
        .filter(|(i, _)| Some(i.ordinal) != plan.primary)
        .filter_map(|(observed, status)| {
            let foreign = plan.findings.iter().find_map(|f| match f {
                Finding::ForeignData { ordinal, identity } if *ordinal == observed.ordinal => {
                    Some(identity)
                }
                _ => None,
            });
            if let Some(identity) = foreign {
                return Some(format!(
                    "{} holds the data of another cluster (uid {identity}) and is left alone: re-clone it (annotation {}) or delete its volume",
                    status.name,
                    naming::RECLONE_ANNOTATION
                ));
            }
            if let Some(errant) = &status.errant_gtids {
                return Some(format!("{} has errant transactions {errant}", status.name));
            }
            match &status.replication {
                None => Some(format!("{} does not replicate", status.name)),
                // The source as observe parsed it into an ordinal of this cluster.
                Some(r) if observed.replication_source != plan.primary => Some(format!(
                    "{} replicates from {} instead of the primary",
                    status.name, r.source
                )),
                Some(r) if !threads_running(observed) => Some(format!(
                    "{}: I/O thread {}, SQL thread {}{}",
                    status.name,
                    r.io_thread,
                    r.sql_thread,
                    r.last_error
                        .as_ref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                )),
                Some(r) if !r.semi_sync => Some(format!(
                    "{} does not acknowledge (semi-sync off)",
                    status.name
                )),
                Some(_) => None,
            }
        })
        .collect();
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// What the conditions are judged from: the plan's primary and the instances' readiness.
struct Overview<'a> {
    /// Whether the plan has a primary at all.
    has_primary: bool,
    /// The plan's primary, as observed.
    primary: Option<&'a InstanceObservation>,
    /// For messages: the primary's pod, or "no primary".
    primary_name: String,
    /// The plan ran to completion before the status is computed, so a reachable primary is
    /// writable.
    primary_reachable: bool,
    ready_instances: i32,
    desired: i32,
    all_ready: bool,
    /// The cluster was Ready (or Degraded) before this round: a cluster not ready now is
    /// recovering, not being created.
    was_ready: bool,
    /// Why no primary may be made writable, when `decide` withheld it.
    withheld: Option<(WithheldReason, String)>,
    /// The pods not ready.
    not_ready: Vec<&'a str>,
}

impl<'a> Overview<'a> {
    fn new(
        cluster: &ValidatedCluster,
        observation: &'a Observation,
        plan: &Plan,
        instances: &'a [InstanceStatus],
        previous: Option<&MySQLClusterStatus>,
    ) -> Self {
        let ready_instances = instances.iter().filter(|i| i.ready).count() as i32;
        let primary = plan
            .primary
            .and_then(|p| observation.instances.iter().find(|i| i.ordinal == p));
        let primary_ready = primary
            .and_then(|p| p.pod.as_ref())
            .is_some_and(|p| p.ready);
        let desired = i32::from(cluster.instances);
        // Paused, no plan ran: the primary counts only if it is writable as observed (a replaced
        // pod has no role label yet, so its readiness alone does not say it serves writes).
        let primary_serves = !cluster.paused || primary.is_some_and(observed_writable);
        let was = |type_: ConditionType| {
            previous.is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == type_ && c.status == "True")
            })
        };
        Self {
            has_primary: plan.primary.is_some(),
            primary,
            primary_name: match plan.primary {
                Some(p) => naming::pod(&cluster.name, p),
                None => "no primary".into(),
            },
            primary_reachable: primary
                .is_some_and(|p| matches!(p.mysql, MySqlObservation::Observed(_))),
            ready_instances,
            desired,
            all_ready: ready_instances == desired && primary_ready && primary_serves,
            was_ready: was(ConditionType::Ready) || was(ConditionType::Degraded),
            withheld: plan.findings.iter().find_map(|f| match f {
                Finding::PrimaryWithheld { reason, message } => Some((*reason, message.clone())),
                _ => None,
            }),
            not_ready: instances
                .iter()
                .filter(|i| !i.ready)
                .map(|i| i.name.as_str())
                .collect(),
        }
    }

    /// Why the cluster is not ready: the reason and message of `Ready`, and of `Degraded` or
    /// `Progressing` with it.
    fn not_ready_because(&self) -> (String, String) {
        if let Some((reason, message)) = &self.withheld {
            (reason.as_str().into(), message.clone())
        } else if !self.has_primary {
            (
                "PrimaryUnavailable".into(),
                "no instance may be made the primary now (see Writable)".into(),
            )
        } else if !self.primary_reachable {
            (
                "PrimaryUnavailable".into(),
                format!("primary {} is not reachable yet", self.primary_name),
            )
        } else {
            (
                "InstancesNotReady".into(),
                format!(
                    "{}/{} instances ready; waiting for {}",
                    self.ready_instances,
                    self.desired,
                    self.not_ready.join(", ")
                ),
            )
        }
    }
}

fn observed_writable(instance: &InstanceObservation) -> bool {
    matches!(&instance.mysql, MySqlObservation::Observed(s) if s.is_writable())
}

/// A condition's value this round; `set_condition` gives it its times.
struct Verdict {
    type_: ConditionType,
    ok: bool,
    reason: String,
    message: String,
}

fn verdict(type_: ConditionType, ok: bool, reason: &str, message: impl Into<String>) -> Verdict {
    Verdict {
        type_,
        ok,
        reason: reason.into(),
        message: message.into(),
    }
}

fn ready_condition(o: &Overview) -> Verdict {
    if o.all_ready {
        let message = format!(
            "{}/{} instances ready, primary {} writable",
            o.ready_instances, o.desired, o.primary_name
        );
        return verdict(ConditionType::Ready, true, "AllInstancesReady", message);
    }
    let (reason, message) = o.not_ready_because();
    verdict(ConditionType::Ready, false, &reason, message)
}

fn degraded_condition(o: &Overview) -> Verdict {
    if o.all_ready {
        verdict(
            ConditionType::Degraded,
            false,
            "AllInstancesReady",
            "every instance is ready",
        )
    } else if o.was_ready {
        let (reason, message) = o.not_ready_because();
        verdict(ConditionType::Degraded, true, &reason, message)
    } else {
        verdict(
            ConditionType::Degraded,
            false,
            "Creating",
            "the cluster has not been ready yet",
        )
    }
}

/// `Progressing`: a pause, a switchover or a rollout says so first; otherwise whether the
/// cluster is stable, recovering or still being created.
fn progressing_condition(cluster: &ValidatedCluster, plan: &Plan, o: &Overview) -> Verdict {
    let finding = |pick: fn(&Finding) -> Option<&String>| plan.findings.iter().find_map(pick);
    if cluster.paused {
        return verdict(
            ConditionType::Progressing,
            false,
            "Paused",
            "the operator is paused",
        );
    }
    if let Some(old) = plan.switchover_from {
        let message = format!(
            "switched the primary over from {} to {}",
            naming::pod(&cluster.name, old),
            o.primary_name
        );
        return verdict(ConditionType::Progressing, true, "SwitchedOver", message);
    }
    if let Some(reason) = finding(|f| match f {
        Finding::SwitchoverWaiting { reason } => Some(reason),
        _ => None,
    }) {
        return verdict(
            ConditionType::Progressing,
            true,
            "SwitchoverPending",
            reason.clone(),
        );
    }
    if let Some(message) = finding(|f| match f {
        Finding::RollingOut { message } => Some(message),
        _ => None,
    }) {
        return verdict(
            ConditionType::Progressing,
            true,
            "RollingOut",
            message.clone(),
        );
    }
    if o.all_ready {
        verdict(
            ConditionType::Progressing,
            false,
            "Stable",
            "the cluster matches its spec",
        )
    } else if o.was_ready {
        let message = "the operator is waiting for instances to recover";
        verdict(ConditionType::Progressing, false, "Recovering", message)
    } else {
        verdict(
            ConditionType::Progressing,
            true,
            "Creating",
            o.not_ready_because().1,
        )
    }
}

fn writable_condition(cluster: &ValidatedCluster, plan: &Plan, o: &Overview) -> Verdict {
    let name = &o.primary_name;
    if o.primary_reachable && cluster.paused {
        let writable = o.primary.is_some_and(observed_writable);
        let message = format!("{name} as observed; the operator is paused");
        return verdict(ConditionType::Writable, writable, "Paused", message);
    }
    if o.primary_reachable {
        return verdict(
            ConditionType::Writable,
            true,
            "PrimaryWritable",
            format!("{name} accepts writes"),
        );
    }
    if let Some((reason, message)) = &o.withheld {
        return verdict(
            ConditionType::Writable,
            false,
            reason.as_str(),
            message.clone(),
        );
    }
    // A blocked failover says more than the probes that led to it.
    if let Some(reason) = plan.findings.iter().find_map(|f| match f {
        Finding::FailoverBlocked { reason } => Some(reason),
        _ => None,
    }) {
        return verdict(
            ConditionType::Writable,
            false,
            "FailoverBlocked",
            reason.clone(),
        );
    }
    if let Some((failures, threshold)) = plan.findings.iter().find_map(|f| match f {
        Finding::PrimaryUnresponsive {
            failures,
            threshold,
        } => Some((failures, threshold)),
        _ => None,
    }) {
        let message = format!(
            "{name} did not answer {failures} probe(s) in a row; it is declared lost after {threshold}"
        );
        return verdict(
            ConditionType::Writable,
            false,
            "PrimaryUnresponsive",
            message,
        );
    }
    let message = format!("{name} is not reachable");
    verdict(
        ConditionType::Writable,
        false,
        "PrimaryUnavailable",
        message,
    )
}

fn replicating_condition(
    cluster: &ValidatedCluster,
    observation: &Observation,
    plan: &Plan,
    instances: &[InstanceStatus],
    o: &Overview,
) -> Verdict {
    let name = &o.primary_name;
    if cluster.instances == 1 {
        let message = "a single instance has no replicas";
        return verdict(ConditionType::Replicating, true, "SingleInstance", message);
    }
    if !o.primary_reachable {
        let message = format!("{name} is not reachable");
        return verdict(
            ConditionType::Replicating,
            false,
            "PrimaryUnavailable",
            message,
        );
    }
    match replication_problems(observation, plan, instances) {
        None => {
            let message = format!("every replica replicates from {name} with semi-sync");
            verdict(
                ConditionType::Replicating,
                true,
                "AllReplicasFollow",
                message,
            )
        }
        Some(problems) => verdict(
            ConditionType::Replicating,
            false,
            "ReplicasNotFollowing",
            problems,
        ),
    }
}

fn paused_condition(cluster: &ValidatedCluster) -> Verdict {
    if cluster.paused {
        let message = "spec.paused is true: no failover, switchover or change to the cluster's resources until it is false";
        verdict(ConditionType::Paused, true, "PausedBySpec", message)
    } else {
        verdict(
            ConditionType::Paused,
            false,
            "NotPaused",
            "the operator manages the cluster",
        )
    }
}

/// Every condition the clustering rounds own, in the order they are listed.
fn verdicts(
    cluster: &ValidatedCluster,
    observation: &Observation,
    plan: &Plan,
    instances: &[InstanceStatus],
    o: &Overview,
) -> [Verdict; 7] {
    let succeeded = "the last reconcile succeeded";
    [
        ready_condition(o),
        progressing_condition(cluster, plan, o),
        degraded_condition(o),
        writable_condition(cluster, plan, o),
        replicating_condition(cluster, observation, plan, instances, o),
        paused_condition(cluster),
        verdict(
            ConditionType::ReconcileSuccess,
            true,
            "ReconcileSucceeded",
            succeeded,
        ),
    ]
}

/// The status after a successful reconcile: one function per condition, each set once.
pub fn compute_status(
    cluster: &ValidatedCluster,
    observation: &Observation,
    plan: &Plan,
    previous: Option<&MySQLClusterStatus>,
    now: Time,
) -> MySQLClusterStatus {
    let instances: Vec<InstanceStatus> = observation
        .instances
        .iter()
        .map(|i| instance_status(&cluster.name, plan, &observation.cloning, i))
        .collect();
    let o = Overview::new(cluster, observation, plan, &instances, previous);
    let verdicts = verdicts(cluster, observation, plan, &instances, &o);
    let mut conditions = previous.map(|s| s.conditions.clone()).unwrap_or_default();
    for v in verdicts {
        let (generation, now) = (cluster.generation, now.clone());
        set_condition(
            &mut conditions,
            v.type_,
            v.ok,
            &v.reason,
            v.message,
            generation,
            now,
        );
    }
    let (ready_instances, desired) = (o.ready_instances, o.desired);
    let version = o.primary.and_then(|p| match &p.mysql {
        MySqlObservation::Observed(s) => Some(s.version.clone()),
        _ => None,
    });
    // The status is the operator's memory of who the primary is: an unreachable primary stays
    // recorded, or the next round could not tell a failover from a cluster never bootstrapped.
    let current_primary = match plan.primary {
        Some(p) if o.primary_reachable => Some(naming::pod(&cluster.name, p)),
        _ => previous.and_then(|s| s.current_primary.clone()),
    };
    MySQLClusterStatus {
        observed_generation: cluster.generation,
        conditions,
        current_primary,
        ready_instances,
        instances_summary: Some(format!("{ready_instances}/{desired}")),
        instances,
        version,
        members: plan
            .members
            .iter()
            .map(|o| naming::pod(&cluster.name, *o))
            .collect(),
        last_failover_time: if plan.failover_from.is_some() {
            Some(now)
        } else {
            previous.and_then(|s| s.last_failover_time.clone())
        },
        last_failover_from: match plan.failover_from {
            Some(old) => Some(naming::pod(&cluster.name, old)),
            None => previous.and_then(|s| s.last_failover_from.clone()),
        },
        // Written by the volumes step (crate::storage::status); kept until then.
        volume_size: previous.and_then(|s| s.volume_size.clone()),
        // Added to by `record_discarded` after the operate step; a history, so it is kept.
        discarded_transactions: previous
            .map(|s| s.discarded_transactions.clone())
            .unwrap_or_default(),
        // Written by `record_settings` after the settings step; kept until then.
        accepted_settings: previous.and_then(|s| s.accepted_settings.clone()),
        last_restart_settings: previous
            .map(|s| s.last_restart_settings.clone())
            .unwrap_or_default(),
        restored_from: cluster
            .restore
            .clone()
            .or_else(|| previous.and_then(|s| s.restored_from.clone())),
        // Written by the backup schedule step after the report; kept until then.
        last_scheduled_backup: previous.and_then(|s| s.last_scheduled_backup.clone()),
        last_scheduled_verification: previous.and_then(|s| s.last_scheduled_verification.clone()),
        // Written by the root access step after the report; kept until then.
        root_access: previous.and_then(|s| s.root_access),
    }
}

/// How many re-clones that discarded transactions the status remembers.
pub const DISCARDED_KEPT: usize = 10;

/// Appends the transactions each clone in `done` discarded to the status' history.
pub fn record_discarded(
    status: &mut MySQLClusterStatus,
    cluster_name: &str,
    done: &[Action],
    now: Time,
) {
    for action in done {
        if let Action::CloneFrom {
            ordinal,
            discarded: Some(gtids),
            ..
        } = action
        {
            status.discarded_transactions.push(DiscardedTransactions {
                instance: naming::pod(cluster_name, *ordinal),
                gtids: gtids.to_string(),
                time: now.clone(),
            });
        }
    }
    let excess = status
        .discarded_transactions
        .len()
        .saturating_sub(DISCARDED_KEPT);
    status.discarded_transactions.drain(..excess);
}

/// The previous status with `ReconcileSuccess` set to False, for a reconcile that failed.
pub fn failed_status(
    previous: Option<&MySQLClusterStatus>,
    generation: Option<i64>,
    reason: &str,
    message: String,
    now: Time,
) -> MySQLClusterStatus {
    let mut status = previous.cloned().unwrap_or_default();
    set_condition(
        &mut status.conditions,
        ConditionType::ReconcileSuccess,
        false,
        reason,
        message,
        generation,
        now,
    );
    status
}

/// A setting an instance's mysqld refused to take online.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedSetting {
    pub pod: String,
    /// The error with its causes (the server's message included).
    pub error: String,
}

/// The `ConfigApplied` condition: whether every instance runs `spec.mysqlConfig`, and which path
/// the last change took: online (`SET GLOBAL`, nothing restarted) or a rolling restart, naming
/// the settings (`last_restart`: those the last rolling restart applied).
pub fn config_condition(
    previous: Option<&Condition>,
    last_restart: &[String],
    plan: &SettingsPlan,
    refused: &[RefusedSetting],
) -> (bool, String, String) {
    let (ok, reason, message) = config_path(previous, last_restart, plan, refused);
    (ok, reason.to_string(), message)
}

fn config_path<'a>(
    previous: Option<&'a Condition>,
    last_restart: &[String],
    plan: &SettingsPlan,
    refused: &[RefusedSetting],
) -> (bool, &'a str, String) {
    if let Some(first) = refused.first() {
        return (
            false,
            SETTING_REFUSED,
            format!(
                "{}: mysqld refused a setting of spec.mysqlConfig online: {}; my.cnf keeps the last value mysqld took, so a restart is safe; fix spec.mysqlConfig",
                first.pod, first.error
            ),
        );
    }
    let online = plan.online_names();
    if !plan.awaiting_restart.is_empty() {
        let mut message = format!(
            "{}: a change only a restart applies; rolling restart in progress (replicas one at a time, then one switchover, then the old primary)",
            plan.awaiting_restart.join(", ")
        );
        if !online.is_empty() {
            message.push_str(&format!("; {} applied online", online.join(", ")));
        }
        return (false, ROLLING_RESTART, message);
    }
    if !online.is_empty() {
        return (
            true,
            APPLIED_ONLINE,
            format!(
                "{}: applied online with SET GLOBAL on every running instance; nothing restarted",
                online.join(", ")
            ),
        );
    }
    match previous {
        // No names: the restart began under an operator that did not record them.
        Some(c) if c.reason == ROLLING_RESTART && last_restart.is_empty() => (
            true,
            APPLIED_BY_RESTART,
            "applied by a rolling restart".into(),
        ),
        Some(c) if c.reason == ROLLING_RESTART => (
            true,
            APPLIED_BY_RESTART,
            format!("{}: applied by a rolling restart", last_restart.join(", ")),
        ),
        // A refusal that is no longer reported: the spec was fixed.
        Some(c) if c.reason == SETTING_REFUSED => (
            true,
            "Applied",
            "every instance runs spec.mysqlConfig".into(),
        ),
        Some(c) => (c.status == "True", c.reason.as_str(), c.message.clone()),
        None => (
            true,
            "Applied",
            "every instance runs spec.mysqlConfig".into(),
        ),
    }
}

/// Records `config_condition` in the status.
pub fn record_settings(
    status: &mut MySQLClusterStatus,
    plan: &SettingsPlan,
    refused: &[RefusedSetting],
    generation: Option<i64>,
    now: Time,
) {
    let previous = status
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::ConfigApplied)
        .cloned();
    let last_restart = &status.last_restart_settings;
    let (ok, reason, message) = config_condition(previous.as_ref(), last_restart, plan, refused);
    if !plan.awaiting_restart.is_empty() {
        status.last_restart_settings = plan.awaiting_restart.clone();
    }
    set_condition(
        &mut status.conditions,
        ConditionType::ConfigApplied,
        ok,
        &reason,
        message,
        generation,
        now,
    );
}

/// `ResourcesOwned`: whether every child object is the operator's; objects of someone else's
/// under a child's name (`Kind name`) are named, and left alone.
pub fn record_ownership(
    status: &mut MySQLClusterStatus,
    not_owned: &[String],
    generation: Option<i64>,
    now: Time,
) {
    let (ok, reason, message) = if not_owned.is_empty() {
        (
            true,
            "AllOwned",
            "every object the cluster needs is the operator's".to_string(),
        )
    } else {
        (
            false,
            OBJECT_NOT_OWNED,
            format!(
                "{} already exist(s) and belong(s) to someone else: the operator leaves them alone; delete or rename them, or rename the cluster",
                not_owned.join(", ")
            ),
        )
    };
    set_condition(
        &mut status.conditions,
        ConditionType::ResourcesOwned,
        ok,
        reason,
        message,
        generation,
        now,
    );
}

/// The message of a `ResourcesOwned` problem the previous status did not report yet, for a
/// Warning event once per change.
pub fn newly_not_owned(
    previous: Option<&MySQLClusterStatus>,
    current: &MySQLClusterStatus,
) -> Option<String> {
    let problem = |s: &MySQLClusterStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == ConditionType::ResourcesOwned && c.reason == OBJECT_NOT_OWNED)
            .map(|c| c.message.clone())
    };
    let now = problem(current)?;
    (previous.and_then(problem).as_ref() != Some(&now)).then_some(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clustering::decide::tests::decided;
    use crate::clustering::observe::tests::{
        instance, observation, primary_with, replica_following,
    };
    use crate::resources::tests::validated;

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).unwrap())
    }

    fn condition(status: &MySQLClusterStatus, type_: ConditionType) -> &Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    /// A primary and two replicas following it, all sharing `history`.
    fn settled_trio(history: &str) -> Observation {
        observation(
            3,
            Some(0),
            vec![
                primary_with(0, 3, history),
                replica_following(1, 0, history),
                replica_following(2, 0, history),
            ],
        )
    }

    fn ready_observation() -> Observation {
        observation(
            3,
            Some(0),
            vec![
                instance(0, Some(false), Some("primary")),
                instance(1, Some(true), Some("replica")),
                instance(2, Some(true), Some("replica")),
            ],
        )
    }

    #[test]
    fn a_paused_cluster_whose_primary_is_read_only_is_not_ready() {
        let mut cluster = validated("db", 1);
        cluster.paused = true;
        // A replaced pod: ready (no role label yet), its mysqld read-only.
        let obs = observation(1, Some(0), vec![instance(0, Some(true), None)]);
        let plan = Plan::observed_only(&obs);
        let status = compute_status(&cluster, &obs, &plan, None, at(100));
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == ConditionType::Ready)
            .unwrap();
        assert_eq!(ready.status, "False");
    }

    #[test]
    fn all_instances_ready_means_ready_with_the_primary_named() {
        let obs = ready_observation();
        let status = compute_status(&validated("db", 3), &obs, &decided(&obs), None, at(100));
        assert_eq!(condition(&status, ConditionType::Ready).status, "True");
        assert_eq!(
            condition(&status, ConditionType::Progressing).status,
            "False"
        );
        assert_eq!(status.current_primary.as_deref(), Some("db-0"));
        assert_eq!(status.ready_instances, 3);
        assert_eq!(status.instances_summary.as_deref(), Some("3/3"));
        assert_eq!(status.instances[1].role, "replica");
        assert_eq!(status.observed_generation, Some(1));
    }

    #[test]
    fn an_instance_being_cloned_says_so_and_the_others_do_not() {
        let mut obs = ready_observation();
        obs.note_clones(&[2]);
        let status = compute_status(&validated("db", 3), &obs, &decided(&obs), None, at(100));
        let cloning: Vec<bool> = status.instances.iter().map(|i| i.cloning).collect();
        assert_eq!(cloning, [false, false, true]);
    }

    #[test]
    fn an_unreachable_primary_stays_recorded_so_the_failover_can_continue() {
        let cluster = validated("db", 3);
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        let settled = settled_trio(history);
        let ready = compute_status(&cluster, &settled, &decided(&settled), None, at(100));
        let lost = observation(
            3,
            Some(0),
            vec![
                instance(0, None, Some("primary")),
                replica_following(1, 0, history),
                replica_following(2, 0, history),
            ],
        );
        let status = compute_status(&cluster, &lost, &decided(&lost), Some(&ready), at(200));
        assert_eq!(status.current_primary.as_deref(), Some("db-0"));
        assert_eq!(condition(&status, ConditionType::Writable).status, "False");
    }

    #[test]
    fn a_rollout_that_goes_on_keeps_progressing_since_it_began() {
        // Each condition is set once per round: a Progressing that stays True across rounds of a
        // ready cluster keeps its transition time (it was first set False as Stable, then True,
        // which moved the time every round and wrote the status every round).
        let cluster = validated("db", 3);
        let obs = ready_observation();
        let rolling = |mut plan: Plan| {
            plan.findings.push(Finding::RollingOut {
                message: "restarting db-2".into(),
            });
            plan
        };
        let first = compute_status(&cluster, &obs, &rolling(decided(&obs)), None, at(100));
        assert_eq!(condition(&first, ConditionType::Progressing).status, "True");
        assert_eq!(
            condition(&first, ConditionType::Progressing).reason,
            "RollingOut"
        );
        let later = compute_status(
            &cluster,
            &obs,
            &rolling(decided(&obs)),
            Some(&first),
            at(200),
        );
        assert_eq!(
            condition(&later, ConditionType::Progressing).last_transition_time,
            at(100)
        );
        assert_eq!(later, first, "nothing changed, so nothing is written");
        let done = compute_status(&cluster, &obs, &decided(&obs), Some(&later), at(300));
        assert_eq!(
            condition(&done, ConditionType::Progressing).reason,
            "Stable"
        );
        assert_eq!(
            condition(&done, ConditionType::Progressing).last_transition_time,
            at(300)
        );
    }

    #[test]
    fn a_new_cluster_is_progressing_not_degraded() {
        let obs = observation(
            3,
            None,
            vec![
                instance(0, None, None),
                instance(1, None, None),
                instance(2, None, None),
            ],
        );
        let status = compute_status(&validated("db", 3), &obs, &decided(&obs), None, at(100));
        assert_eq!(condition(&status, ConditionType::Ready).status, "False");
        assert_eq!(
            condition(&status, ConditionType::Ready).reason,
            "PrimaryUnavailable"
        );
        assert_eq!(
            condition(&status, ConditionType::Progressing).status,
            "True"
        );
        assert_eq!(condition(&status, ConditionType::Degraded).status, "False");
        assert_eq!(status.current_primary, None);
    }

    #[test]
    fn losing_an_instance_after_ready_is_degraded() {
        let cluster = validated("db", 3);
        let obs = ready_observation();
        let ready = compute_status(&cluster, &obs, &decided(&obs), None, at(100));
        let broken = observation(
            3,
            Some(0),
            vec![
                instance(0, Some(false), Some("primary")),
                instance(1, None, Some("replica")),
                instance(2, Some(true), Some("replica")),
            ],
        );
        let status = compute_status(&cluster, &broken, &decided(&broken), Some(&ready), at(200));
        assert_eq!(condition(&status, ConditionType::Degraded).status, "True");
        assert!(
            condition(&status, ConditionType::Degraded)
                .message
                .contains("db-1")
        );
        assert_eq!(
            condition(&status, ConditionType::Ready).last_transition_time,
            at(200)
        );
    }

    #[test]
    fn transition_time_is_kept_when_the_status_does_not_change() {
        let cluster = validated("db", 3);
        let obs = ready_observation();
        let first = compute_status(&cluster, &obs, &decided(&obs), None, at(100));
        let second = compute_status(&cluster, &obs, &decided(&obs), Some(&first), at(200));
        assert_eq!(
            first, second,
            "a steady cluster yields an identical status, so no write is made"
        );
    }

    #[test]
    fn a_failed_reconcile_only_flips_reconcile_success() {
        let cluster = validated("db", 3);
        let obs = ready_observation();
        let ready = compute_status(&cluster, &obs, &decided(&obs), None, at(100));
        let failed = failed_status(
            Some(&ready),
            Some(2),
            "ApplyFailed",
            "failed to apply".into(),
            at(300),
        );
        assert_eq!(
            condition(&failed, ConditionType::ReconcileSuccess).status,
            "False"
        );
        assert_eq!(
            condition(&failed, ConditionType::ReconcileSuccess).reason,
            "ApplyFailed"
        );
        assert_eq!(
            condition(&failed, ConditionType::ReconcileSuccess).last_transition_time,
            at(300)
        );
        assert_eq!(
            condition(&failed, ConditionType::Ready),
            condition(&ready, ConditionType::Ready)
        );
    }

    #[test]
    fn replicas_following_the_primary_make_the_cluster_replicating() {
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        let obs = settled_trio(history);
        let status = compute_status(&validated("db", 3), &obs, &decided(&obs), None, at(100));
        assert_eq!(
            condition(&status, ConditionType::Replicating).status,
            "True"
        );
        assert_eq!(condition(&status, ConditionType::Writable).status, "True");
        let replica = &status.instances[1];
        assert_eq!(replica.gtid_executed.as_deref(), Some(history));
        let replication = replica.replication.as_ref().unwrap();
        assert_eq!(replication.io_thread, "Running");
        assert!(replication.semi_sync);
    }

    #[test]
    fn a_replica_that_does_not_replicate_is_named_in_the_replicating_condition() {
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        let obs = observation(
            3,
            Some(0),
            vec![
                primary_with(0, 3, history),
                replica_following(1, 0, history),
                instance(2, Some(true), Some("replica")),
            ],
        );
        let status = compute_status(&validated("db", 3), &obs, &decided(&obs), None, at(100));
        let replicating = condition(&status, ConditionType::Replicating);
        assert_eq!(replicating.status, "False");
        assert_eq!(replicating.message, "db-2 does not replicate");
    }

    #[test]
    fn errant_transactions_appear_in_the_instance_status_and_the_condition() {
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        let errant = "bbbbbbbb-0000-0000-0000-000000000000:1";
        let replica = crate::clustering::observe::tests::gtids(
            replica_following(1, 0, history),
            &format!("{history},{errant}"),
            "",
        );
        let obs = observation(2, Some(0), vec![primary_with(0, 2, history), replica]);
        let status = compute_status(&validated("db", 2), &obs, &decided(&obs), None, at(100));
        assert_eq!(status.instances[1].errant_gtids.as_deref(), Some(errant));
        assert!(
            condition(&status, ConditionType::Replicating)
                .message
                .contains("errant")
        );
    }

    mod config_condition {
        use super::super::*;
        use crate::clustering::settings::{SettingsChange, SettingsPlan};

        fn change(first: bool) -> SettingsChange {
            SettingsChange {
                ordinal: 0,
                pod: "db-0".into(),
                set: vec![("max_connections".into(), "500".into())],
                reset: Vec::new(),
                applied: Default::default(),
                first,
            }
        }

        fn previous(status: &str, reason: &str, message: &str) -> Condition {
            Condition {
                type_: ConditionType::ConfigApplied.into(),
                status: status.into(),
                reason: reason.into(),
                message: message.into(),
                observed_generation: None,
                last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
            }
        }

        #[test]
        fn each_path_is_named_with_its_settings() {
            let online = SettingsPlan {
                online: vec![change(false)],
                awaiting_restart: Vec::new(),
            };
            let restart = SettingsPlan {
                online: Vec::new(),
                awaiting_restart: vec!["back_log".into()],
            };
            let settled = SettingsPlan::default();
            let refused = [RefusedSetting {
                pod: "db-1".into(),
                error: "server error 1232: Incorrect argument type".into(),
            }];
            let rolling = previous("False", ROLLING_RESTART, "back_log: a change ...");
            let back_log = ["back_log".to_string()];
            struct Case<'a> {
                name: &'a str,
                previous: Option<&'a Condition>,
                plan: &'a SettingsPlan,
                refused: &'a [RefusedSetting],
                want: (bool, &'a str),
                message_starts: &'a str,
            }
            let cases = [
                Case {
                    name: "first look",
                    previous: None,
                    plan: &settled,
                    refused: &[],
                    want: (true, "Applied"),
                    message_starts: "every instance",
                },
                Case {
                    name: "online",
                    previous: None,
                    plan: &online,
                    refused: &[],
                    want: (true, APPLIED_ONLINE),
                    message_starts: "max_connections: applied online",
                },
                Case {
                    name: "restart",
                    previous: None,
                    plan: &restart,
                    refused: &[],
                    want: (false, ROLLING_RESTART),
                    message_starts: "back_log: a change only a restart applies",
                },
                Case {
                    name: "restart over",
                    previous: Some(&rolling),
                    plan: &settled,
                    refused: &[],
                    want: (true, APPLIED_BY_RESTART),
                    message_starts: "back_log: applied by a rolling restart",
                },
                Case {
                    name: "refused",
                    previous: None,
                    plan: &online,
                    refused: &refused,
                    want: (false, SETTING_REFUSED),
                    message_starts: "db-1: mysqld refused",
                },
            ];
            for case in cases {
                let (ok, reason, message) =
                    config_condition(case.previous, &back_log, case.plan, case.refused);
                assert_eq!((ok, reason.as_str()), case.want, "{}", case.name);
                assert!(
                    message.starts_with(case.message_starts),
                    "{}: {message}",
                    case.name
                );
            }
        }

        #[test]
        fn a_settled_cluster_keeps_saying_which_path_the_last_change_took() {
            let last = previous(
                "True",
                APPLIED_ONLINE,
                "max_connections: applied online ...",
            );
            let (ok, reason, message) =
                config_condition(Some(&last), &[], &SettingsPlan::default(), &[]);
            assert_eq!(
                (ok, reason.as_str(), message.as_str()),
                (true, APPLIED_ONLINE, last.message.as_str())
            );
        }

        #[test]
        fn a_new_pods_first_settings_are_no_online_change() {
            let plan = SettingsPlan {
                online: vec![change(true)],
                awaiting_restart: Vec::new(),
            };
            let last = previous(
                "True",
                APPLIED_BY_RESTART,
                "back_log: applied by a rolling restart",
            );
            let (_, reason, _) = config_condition(Some(&last), &[], &plan, &[]);
            assert_eq!(reason, APPLIED_BY_RESTART);
        }

        #[test]
        fn the_settings_a_rolling_restart_applied_are_named_once_it_is_over() {
            let restart = SettingsPlan {
                online: Vec::new(),
                awaiting_restart: vec!["back_log".into(), "innodb_log_file_size".into()],
            };
            let mut status = MySQLClusterStatus::default();
            record_settings(&mut status, &restart, &[], Some(1), super::at(1));
            assert_eq!(status.last_restart_settings, restart.awaiting_restart);
            let settled = SettingsPlan::default();
            record_settings(&mut status, &settled, &[], Some(1), super::at(2));
            let condition = super::condition(&status, ConditionType::ConfigApplied);
            assert_eq!(condition.reason, APPLIED_BY_RESTART);
            assert_eq!(
                condition.message,
                "back_log, innodb_log_file_size: applied by a rolling restart"
            );
        }

        #[test]
        fn a_fixed_refusal_clears() {
            let last = previous("False", SETTING_REFUSED, "db-1: mysqld refused ...");
            let (ok, reason, _) = config_condition(Some(&last), &[], &SettingsPlan::default(), &[]);
            assert_eq!((ok, reason.as_str()), (true, "Applied"));
        }
    }

    #[test]
    fn an_object_the_operator_does_not_own_is_named_once_in_a_warning_and_in_the_condition() {
        let mut previous = MySQLClusterStatus::default();
        record_ownership(&mut previous, &[], Some(1), at(1));
        assert_eq!(newly_not_owned(None, &previous), None);
        let mut current = previous.clone();
        let not_owned = vec!["Service orders-primary".to_string()];
        record_ownership(&mut current, &not_owned, Some(1), at(2));
        let condition = current
            .conditions
            .iter()
            .find(|c| c.type_ == ConditionType::ResourcesOwned)
            .unwrap();
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("False", OBJECT_NOT_OWNED)
        );
        let message = newly_not_owned(Some(&previous), &current).expect("a new problem");
        assert!(message.contains("Service orders-primary"), "{message}");
        let mut again = current.clone();
        record_ownership(&mut again, &not_owned, Some(1), at(3));
        assert_eq!(
            newly_not_owned(Some(&current), &again),
            None,
            "announced once"
        );
    }

    #[test]
    fn discarded_transactions_are_kept_most_recent_last_up_to_a_limit() {
        let mut status = MySQLClusterStatus::default();
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let clone = |ordinal: u8, gno: u64| Action::CloneFrom {
            ordinal,
            donor: 0,
            discarded: Some(format!("{uuid}:{gno}").parse().unwrap()),
        };
        let at = |s: i64| Time(jiff::Timestamp::from_second(s).unwrap());
        let seeded = Action::CloneFrom {
            ordinal: 2,
            donor: 0,
            discarded: None,
        };
        record_discarded(&mut status, "db", &[seeded, clone(1, 7)], at(1));
        assert_eq!(
            status.discarded_transactions,
            [DiscardedTransactions {
                instance: "db-1".into(),
                gtids: format!("{uuid}:7"),
                time: at(1),
            }],
            "a clone that discarded nothing is not listed"
        );
        for gno in 8..20 {
            record_discarded(&mut status, "db", &[clone(2, gno)], at(gno as i64));
        }
        assert_eq!(status.discarded_transactions.len(), DISCARDED_KEPT);
        assert_eq!(
            status.discarded_transactions.last().unwrap().gtids,
            format!("{uuid}:19")
        );
        assert_eq!(status.discarded_transactions[0].gtids, format!("{uuid}:10"));
    }
}
