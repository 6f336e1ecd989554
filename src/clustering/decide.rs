//! The pure decision: from what was observed, which instance is primary and what must change.
//! Every rule here is stated in `docs/clustering.md`.

use std::time::Duration;

use super::intent::{FailoverGate, Intent};
use super::observe::{InstanceObservation, MySqlObservation, Observation};
use crate::mysql::{ChannelTls, GtidSet, InstanceStatus, PeerTls, ReplicaStatus, ThreadState};
use crate::resources::naming;

/// The semi-sync source timeout: as long as MySQL allows (about 49 days), so that a primary
/// never silently falls back to asynchronous replication; losing the replicas blocks commits
/// instead, which the operator sees and reports.
pub const SEMI_SYNC_TIMEOUT: Duration = Duration::from_millis(u32::MAX as u64);

/// The role an instance has in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

impl Role {
    /// The value of the role label.
    pub fn label(self) -> &'static str {
        match self {
            Role::Primary => crate::resources::naming::ROLE_PRIMARY,
            Role::Replica => crate::resources::naming::ROLE_REPLICA,
        }
    }
}

/// One change to make, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Set `super_read_only` on the primary handing over in a switchover; if that cannot be done
    /// in time the switchover stops there, the primary still writable.
    MakeReadOnly { ordinal: u8 },
    /// Set `super_read_only` on a writable instance that must not be (an old primary back after
    /// a failover). A commit there may wait for acknowledgements that cannot come and block
    /// that; its client is disconnected first, then mysqld is shut down (it restarts read-only)
    /// so that the commit is never acknowledged.
    ForceReadOnly { ordinal: u8 },
    /// Forget a replication source on the primary (`RESET REPLICA ALL`).
    StopReplicating { ordinal: u8 },
    /// Lossless semi-sync as a source, waiting for `wait_for_replica_count` acknowledgements.
    EnableSemiSyncSource {
        ordinal: u8,
        wait_for_replica_count: u32,
    },
    /// A single-instance cluster has nobody to wait for.
    DisableSemiSyncSource { ordinal: u8 },
    /// Lift `super_read_only` on the primary.
    MakeWritable { ordinal: u8 },
    /// Write the cluster's identity on a fresh primary: the first transaction of its history.
    RecordClusterIdentity { ordinal: u8 },
    /// Replace an empty or hopelessly behind replica's data with a copy of the donor's;
    /// `discarded` names transactions the copy throws away (a former primary's unacknowledged ones).
    CloneFrom {
        ordinal: u8,
        donor: u8,
        discarded: Option<GtidSet>,
    },
    /// Point a replica at the primary with GTID auto-positioning and semi-sync, and start it.
    ReplicateFrom { ordinal: u8, source: u8 },
    /// The fence: stop a replica's I/O thread so that an old primary that may still be alive can
    /// collect no acknowledgement from it.
    StopReplicaIo { ordinal: u8 },
    /// Wait until the instance has applied these transactions (its relay log, before promotion).
    WaitForTransactions { ordinal: u8, gtids: GtidSet },
    /// A switchover's catch-up: read what the demoted `source` executed (after it became
    /// read-only, so nothing more can come) and wait until the instance has applied all of it.
    CatchUpWith { ordinal: u8, source: u8 },
    /// Before a failover: if the old primary's server still answers at the address where it was
    /// last seen (its pod was force-deleted, its process not yet gone), make it read-only there
    /// as `ForceReadOnly` does; if it does not answer, there is nothing to do.
    DemoteAtAddress { ordinal: u8, address: String },
    /// Forget a user's request to re-clone an instance, once it was carried out.
    ClearRecloneRequest { ordinal: u8 },
    /// Delete the pod (gracefully) so that the StatefulSet recreates it from the current
    /// template: one step of a rollout.
    RestartPod { ordinal: u8 },
    /// Move the pod's role label, which the client Services select on.
    SetRoleLabel { ordinal: u8, role: Role },
}

/// What `decide` found wrong that needs a person, for the status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A replica has transactions the primary lacks; it is left alone (never cloned over
    /// automatically) and kept out of promotion.
    ErrantTransactions { ordinal: u8, gtids: String },
    /// The primary is gone, and the operator cannot safely choose a new one.
    FailoverBlocked { reason: String },
    /// The primary did not answer, but not often enough yet to be declared lost.
    PrimaryUnresponsive { failures: u32, threshold: u32 },
    /// A switchover is wanted but cannot happen yet.
    SwitchoverWaiting { reason: String },
    /// Pods run an older template than the StatefulSet's: where the rollout stands.
    RollingOut { message: String },
    /// No instance may be made writable now: the reason (a condition reason) and why.
    PrimaryWithheld {
        reason: WithheldReason,
        message: String,
    },
    /// An instance holds the history of another cluster (`sakila.cluster`): it is left alone,
    /// never merged, cloned over or promoted.
    ForeignData { ordinal: u8, identity: String },
}

/// Why no instance may be made writable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WithheldReason {
    /// Instances whose volumes predate the cluster have not answered yet.
    WaitingForInstances,
    /// No instance's history contains every other's.
    HistoriesDiverge,
    /// The instances hold the histories of different clusters.
    ForeignHistories,
    /// Instances hold data, but none answered with it.
    NoInstanceWithData,
}

impl WithheldReason {
    /// The `Writable` condition's reason.
    pub fn as_str(self) -> &'static str {
        match self {
            WithheldReason::WaitingForInstances => "WaitingForInstances",
            WithheldReason::HistoriesDiverge => "HistoriesDiverge",
            WithheldReason::ForeignHistories => "ForeignHistories",
            WithheldReason::NoInstanceWithData => "NoInstanceWithData",
        }
    }
}

/// How long a cluster with no recorded primary waits for instances whose volumes predate it
/// (retained from an earlier cluster of the same name) before it chooses among those that
/// answered: they may hold transactions the others lack.
pub const BOOTSTRAP_WAIT: Duration = Duration::from_secs(300);

/// What `decide` concluded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The instance that is, or is about to be, the primary; `None` while no instance may be
    /// writable (a choice withheld, a primary that lost its data and cannot be replaced yet).
    pub primary: Option<u8>,
    /// Changes in the order they must be made: every demotion before any promotion, so two
    /// instances are never writable at once.
    pub actions: Vec<Action>,
    /// Problems that no action fixes.
    pub findings: Vec<Finding>,
    /// The primary this plan replaces, when it is a failover.
    pub failover_from: Option<u8>,
    /// The primary this plan hands over from, when it is a planned switchover.
    pub switchover_from: Option<u8>,
    /// The plan is one step of several (the fence): look again at once rather than at the
    /// next health check.
    pub follow_up_soon: bool,
    /// The instances that have joined the cluster, to record in the status.
    pub members: Vec<u8>,
    /// The primary whose failover this round began or still waits on (its replicas are fenced),
    /// for the next round's `Intent::failover_underway`.
    pub failover_underway: Option<u8>,
}

impl Plan {
    /// A plan that changes nothing, naming the primary as observed (for a paused cluster).
    pub fn observed_only(observation: &Observation) -> Plan {
        Plan {
            primary: choose_primary(observation, &Intent::default()).ok(),
            actions: Vec::new(),
            findings: Vec::new(),
            failover_from: None,
            switchover_from: None,
            follow_up_soon: false,
            members: joined(observation),
            failover_underway: None,
        }
    }
}

/// The members: those recorded before (still within `spec.instances`) and every instance that
/// holds the cluster's data now. An instance still to be seeded is not one yet.
fn joined(observation: &Observation) -> Vec<u8> {
    let mut joined: Vec<u8> = observation
        .members
        .iter()
        .copied()
        .filter(|o| *o < observation.desired_instances)
        .collect();
    for instance in members(observation) {
        if matches!(&instance.mysql, MySqlObservation::Observed(s) if !s.gtid_executed.is_empty())
            && !joined.contains(&instance.ordinal)
        {
            joined.push(instance.ordinal);
        }
    }
    joined.sort_unstable();
    joined
}

/// How many instances a commit's majority is counted among: the members and the primary. An
/// instance still being seeded (a scale-up) holds nothing yet and would only block commits; a
/// member that is down still counts, so losing replicas never lowers the bar.
fn voters(observation: &Observation, primary: u8, members: &[u8]) -> u8 {
    let mut voters: Vec<u8> = members.to_vec();
    if !voters.contains(&primary) {
        voters.push(primary);
    }
    u8::try_from(voters.len())
        .unwrap_or(u8::MAX)
        .min(observation.desired_instances.max(1))
}

/// Acknowledgements a commit waits for: with the primary, a majority of the instances holds
/// every acknowledged transaction, so any single failure loses none of them.
pub fn semi_sync_wait_count(instances: u8) -> u32 {
    u32::from(instances / 2)
}

/// Decides the primary and the changes that bring every instance in line with its role.
pub fn decide(observation: &Observation, intent: &Intent) -> Plan {
    let mut plan = Plan {
        primary: None,
        actions: Vec::new(),
        findings: Vec::new(),
        failover_from: None,
        switchover_from: None,
        follow_up_soon: false,
        members: joined(observation),
        failover_underway: None,
    };
    let primary = match choose_primary(observation, intent) {
        Ok(primary) => primary,
        Err((reason, message)) => {
            withhold_primary(observation, &mut plan, reason, message);
            return plan;
        }
    };
    plan.primary = Some(primary);
    let primary_status = match move_primary(observation, intent, primary, &mut plan) {
        PrimaryRound::FenceOnly => return plan,
        PrimaryRound::Continue(status) => status.map(|s| *s),
    };
    demote_all_but(observation, &mut plan);
    let Some(primary) = plan.primary else {
        return plan;
    };
    if let Some(old) = plan.switchover_from {
        plan.actions.push(Action::CatchUpWith {
            ordinal: primary,
            source: old,
        });
    }
    if let Some(status) = &primary_status {
        primary_actions(observation, primary, status, &mut plan);
    }
    // Clients are sent to the primary as soon as it can take writes: the Service's path to it
    // (EndpointSlice, then kube-proxy) is the slowest step of a move, so it starts before the
    // replicas are pointed at it, which takes them a moment, while a first commit waits for
    // their acknowledgement.
    label_actions(observation, primary, &mut plan);
    if let Some(status) = &primary_status
        // A fresh primary gets its first transaction in this plan; replicas are seeded from it
        // in the next round, so that every replica starts from a clone.
        && !status.gtid_executed.is_empty()
    {
        replica_actions(observation, primary, status, &mut plan);
    }
    rollout(observation, &mut plan);
    plan
}

/// How the round goes on after the primary's move.
enum PrimaryRound {
    /// This round only fences the replicas of a lost primary; the next one promotes.
    FenceOnly,
    /// The plan goes on with the primary's status as it will be once the plan's waits are
    /// done (a promoted replica judged as holding everything it was sent), or `None` when the
    /// primary does not answer.
    Continue(Option<Box<InstanceStatus>>),
}

/// Moves the primary if it must move: a failover from a lost recorded primary, or a
/// switchover to the one the user asked for.
fn move_primary(
    observation: &Observation,
    intent: &Intent,
    primary: u8,
    plan: &mut Plan,
) -> PrimaryRound {
    let primary_status = observed(observation, primary).cloned();
    // A primary that answers again, read-only, after its replicas were fenced for its failover
    // has restarted (my.cnf starts every mysqld read-only) or fenced itself: the failover
    // finishes rather than race it back to writable, and it returns as a replica.
    let returned_read_only = intent.failover_underway == Some(primary)
        && primary_status.as_ref().is_some_and(|s| !s.is_writable());
    // A recorded primary that answers with no history while the cluster has one lost its data
    // (a new volume, a wiped data directory): it is as lost as a crashed one, and it never
    // becomes writable, or the cluster would serve an empty database.
    let lost_its_data = primary_status
        .as_ref()
        .is_some_and(|s| s.gtid_executed.is_empty())
        && has_history_beyond(observation, primary);
    if primary_status.is_none() {
        plan.failover_underway = intent.failover_underway.filter(|p| *p == primary);
    }
    let lost = primary_status.is_none() || returned_read_only || lost_its_data;
    if lost && observation.current_primary == Some(primary) {
        let lost_anyway = returned_read_only || lost_its_data;
        let step = failover_step(observation, intent, primary, lost_anyway);
        return fail_over(
            observation,
            intent,
            primary,
            primary_status,
            step,
            lost_its_data,
            plan,
        );
    }
    if let Some(status) = &primary_status
        && let Some(target_status) = switch_over(observation, intent, primary, status, plan)
    {
        return PrimaryRound::Continue(Some(Box::new(target_status)));
    }
    PrimaryRound::Continue(primary_status.map(Box::new))
}

/// Carries the failover of the lost `primary` one step further (see `failover_step`).
fn fail_over(
    observation: &Observation,
    intent: &Intent,
    primary: u8,
    mut primary_status: Option<InstanceStatus>,
    step: FailoverStep,
    lost_its_data: bool,
    plan: &mut Plan,
) -> PrimaryRound {
    if lost_its_data && !matches!(step, FailoverStep::Promote { .. }) {
        // Nothing may be written to it; it is demoted below like any other non-primary.
        plan.primary = None;
        primary_status = None;
        if !matches!(step, FailoverStep::Fence(_)) {
            let why = match &step {
                FailoverStep::Blocked(reason) => reason.clone(),
                _ => "no replica that holds the cluster's data followed it".into(),
            };
            plan.findings.push(Finding::FailoverBlocked {
                reason: format!(
                    "instance {primary}, the primary, answers with no data while the cluster has data; it is not made writable; {why}"
                ),
            });
        }
    }
    match step {
        FailoverStep::NotNeeded => {}
        FailoverStep::NotYet {
            failures,
            threshold,
        } => plan.findings.push(Finding::PrimaryUnresponsive {
            failures,
            threshold,
        }),
        FailoverStep::Blocked(reason) => {
            if !lost_its_data {
                plan.findings.push(Finding::FailoverBlocked { reason })
            }
        }
        FailoverStep::Fence(ordinals) => {
            plan.actions.extend(demote_stale(intent, primary));
            plan.actions.extend(
                ordinals
                    .into_iter()
                    .map(|ordinal| Action::StopReplicaIo { ordinal }),
            );
            plan.follow_up_soon = true;
            plan.failover_underway = Some(primary);
            return PrimaryRound::FenceOnly;
        }
        FailoverStep::Promote {
            candidate,
            everything,
        } => {
            plan.failover_from = Some(primary);
            plan.failover_underway = None;
            plan.primary = Some(candidate);
            plan.actions.extend(demote_stale(intent, primary));
            plan.actions.push(Action::WaitForTransactions {
                ordinal: candidate,
                gtids: everything.clone(),
            });
            // From here on the candidate is treated as holding everything it was sent.
            let mut status = observed(observation, candidate)
                .cloned()
                .expect("candidate was observed");
            status.gtid_executed = everything;
            primary_status = Some(status);
        }
    }
    PrimaryRound::Continue(primary_status.map(Box::new))
}

/// Switches over to the instance the user asked for, if it may take over now; returns the
/// status the target is judged by once it caught up.
fn switch_over(
    observation: &Observation,
    intent: &Intent,
    primary: u8,
    status: &InstanceStatus,
    plan: &mut Plan,
) -> Option<InstanceStatus> {
    let target = match switchover_target(observation, intent, primary, status) {
        Ok(target) => target?,
        Err(reason) => {
            plan.findings.push(Finding::SwitchoverWaiting { reason });
            return None;
        }
    };
    plan.switchover_from = Some(primary);
    plan.primary = Some(target);
    // After the catch-up the target holds everything the old primary and its replicas have;
    // judge the others against that, not a snapshot of the target.
    let everything = observation
        .instances
        .iter()
        .filter(|i| i.ordinal == primary || is_healthy_replica(primary, status, i))
        .filter_map(|i| match &i.mysql {
            MySqlObservation::Observed(s) => Some(s.gtid_executed.clone()),
            _ => None,
        })
        .fold(GtidSet::default(), |all, s| all.union(&s));
    let mut target_status = observed(observation, target)
        .cloned()
        .expect("a switchover target was observed");
    target_status.gtid_executed = everything;
    Some(target_status)
}

/// Each pod's role label, where it differs from its role in the plan; the primary's first. The
/// old primary is read-only by now, so for the moment both carry the primary label, a client
/// sent to the old one is refused and tries again; taking the old one's label first would leave
/// the Service with no endpoint, and kube-proxy, which applies changes at most once a second,
/// could then take a second longer to route to the new one.
fn label_actions(observation: &Observation, primary: u8, plan: &mut Plan) {
    for instance in ordered(observation, |i| i.ordinal != primary) {
        let role = if instance.ordinal == primary {
            Role::Primary
        } else {
            Role::Replica
        };
        if let Some(pod) = &instance.pod
            && pod.role_label.as_deref() != Some(role.label())
            && !pod.terminating
        {
            plan.actions.push(Action::SetRoleLabel {
                ordinal: instance.ordinal,
                role,
            });
        }
    }
}

/// The instances, those for which `later` holds after the others, each group in ordinal order.
fn ordered(
    observation: &Observation,
    later: impl Fn(&InstanceObservation) -> bool,
) -> Vec<&InstanceObservation> {
    let mut instances: Vec<&InstanceObservation> = observation.instances.iter().collect();
    instances.sort_by_key(|i| later(i));
    instances
}

/// No instance may be writable now: every writable one is demoted, and nothing else is done.
fn withhold_primary(
    observation: &Observation,
    plan: &mut Plan,
    reason: WithheldReason,
    message: String,
) {
    plan.findings
        .push(Finding::PrimaryWithheld { reason, message });
    demote_all_but(observation, plan);
}

/// A clone lifts `super_read_only` on its recipient (dropping the old data needs it) and keeps
/// `read_only`, so no client can write there; demoting it would end the clone.
fn clone_recipient_kept_read_only(
    observation: &Observation,
    ordinal: u8,
    status: &InstanceStatus,
) -> bool {
    observation.cloning.contains(&ordinal) && status.read_only
}

/// Whether any instance but `ordinal` holds the cluster's data, or the status recorded members
/// (instances that held it): then an instance without data must not serve as the primary.
fn has_history_beyond(observation: &Observation, ordinal: u8) -> bool {
    !observation.members.is_empty()
        || observation.instances.iter().any(|i| {
            i.ordinal != ordinal
                && matches!(&i.mysql, MySqlObservation::Observed(s) if !s.gtid_executed.is_empty())
        })
}

/// The demotions that come before anything else in a plan: nothing but the plan's primary may
/// be writable when the primary is made so. Then semi-sync off as a source on non-primaries.
fn demote_all_but(observation: &Observation, plan: &mut Plan) {
    let primary = plan.primary;
    for instance in &observation.instances {
        if Some(instance.ordinal) != primary
            && let MySqlObservation::Observed(status) = &instance.mysql
            && !status.super_read_only
            && !clone_recipient_kept_read_only(observation, instance.ordinal, status)
        {
            let ordinal = instance.ordinal;
            plan.actions.push(if plan.switchover_from == Some(ordinal) {
                Action::MakeReadOnly { ordinal }
            } else {
                Action::ForceReadOnly { ordinal }
            });
        }
    }
    // A replica never waits for acknowledgements: a former primary that still had semi-sync on
    // as a source would block its own applier (its relay log's transactions, binlogged again,
    // wait for acknowledgements from replicas it does not have). After the demotions, so this
    // never releases a commit on a writable instance.
    for instance in &observation.instances {
        if Some(instance.ordinal) != primary
            && let MySqlObservation::Observed(status) = &instance.mysql
            && status.semi_sync.source_enabled
            && !instance.pod.as_ref().is_some_and(|p| p.terminating)
            // The primary a switchover leaves, read-only and never written again, turns it off
            // just before it follows the new one (`replica_actions`): turning it off takes mysqld
            // up to a second (its acknowledgement receiver stops at its next one-second poll),
            // which would otherwise come before the promotion.
            && plan.switchover_from != Some(instance.ordinal)
        {
            plan.actions.push(Action::DisableSemiSyncSource {
                ordinal: instance.ordinal,
            });
        }
    }
}

/// The instances the cluster is made of (beyond them: a scale-down in progress).
fn members(observation: &Observation) -> impl Iterator<Item = &InstanceObservation> {
    observation
        .instances
        .iter()
        .filter(|i| i.ordinal < observation.desired_instances)
}

/// Whether the pod runs an older template than the StatefulSet's current one.
fn outdated(observation: &Observation, instance: &InstanceObservation) -> bool {
    match (&observation.update_revision, &instance.pod) {
        (Some(update), Some(pod)) => pod.revision.as_ref().is_some_and(|r| r != update),
        _ => false,
    }
}

/// Ready in its role and answering.
fn serving(instance: &InstanceObservation) -> bool {
    instance
        .pod
        .as_ref()
        .is_some_and(|p| p.ready && !p.terminating)
        && matches!(instance.mysql, MySqlObservation::Observed(_))
}

/// Every other instance runs the current template and is ready: the primary's turn, which
/// starts with a switchover.
fn rollout_reached_the_primary(observation: &Observation, primary: u8) -> bool {
    let Some(primary) = members(observation).find(|i| i.ordinal == primary) else {
        return false;
    };
    outdated(observation, primary)
        && members(observation).count() > 1
        && members(observation)
            .filter(|i| i.ordinal != primary.ordinal)
            .all(|i| !outdated(observation, i) && serving(i))
}

/// The operator's rollout of a new pod template (a new version, image or restart-requiring
/// setting): replicas one at a time, highest ordinal first, each ready before the next; then the
/// switchover (see `switchover_target`); then the old primary. A replica of an older template
/// that is not ready serves nobody and is restarted at once: that is how a fixed spec replaces a
/// pod that never started, while a new pod that does not start stops the rollout there.
fn rollout(observation: &Observation, plan: &mut Plan) {
    let all: Vec<&InstanceObservation> = members(observation).collect();
    let behind: Vec<u8> = all
        .iter()
        .filter(|i| outdated(observation, i))
        .map(|i| i.ordinal)
        .collect();
    if behind.is_empty() {
        return;
    }
    let pod = |ordinal: u8| {
        all.iter()
            .find(|i| i.ordinal == ordinal)
            .and_then(|i| i.pod.as_ref())
            .map(|p| p.name.clone())
            .unwrap_or_default()
    };
    let progress = format!(
        "{} of {} instances run the current pod template",
        all.len() - behind.len(),
        all.len()
    );
    let busy = plan.switchover_from.is_some()
        || plan.failover_from.is_some()
        || !observation.cloning.is_empty()
        || plan
            .actions
            .iter()
            .any(|a| !matches!(a, Action::SetRoleLabel { .. }));
    let Some(primary) = plan.primary else {
        return;
    };
    let (message, restart) = if busy {
        ("waiting for the cluster's other changes".to_string(), None)
    } else if let Some(leaving) = all
        .iter()
        .find(|i| i.pod.as_ref().is_some_and(|p| p.terminating))
    {
        (
            format!("waiting for {} to restart", pod(leaving.ordinal)),
            None,
        )
    } else if let Some(broken) = all
        .iter()
        .find(|i| i.ordinal != primary && behind.contains(&i.ordinal) && !serving(i))
    {
        (
            format!("restarting {}, which is not ready", pod(broken.ordinal)),
            Some(broken.ordinal),
        )
    } else if let Some(unready) = all.iter().find(|i| !serving(i)) {
        let why = unready
            .pod
            .as_ref()
            .and_then(|p| p.waiting_reason.clone())
            .unwrap_or_else(|| "not ready".into());
        (
            format!(
                "waiting for {} to be ready before going on ({why})",
                pod(unready.ordinal)
            ),
            None,
        )
    } else if let Some(next) = behind.iter().rev().find(|o| **o != primary) {
        (format!("restarting {}", pod(*next)), Some(*next))
    } else if all.len() == 1 {
        // Nobody to switch over to: a single instance restarts in place.
        (format!("restarting {}", pod(primary)), Some(primary))
    } else {
        (
            format!(
                "the primary {} restarts after a switchover to a replica that runs it",
                pod(primary)
            ),
            None,
        )
    };
    plan.findings.push(Finding::RollingOut {
        message: format!("{progress}; {message}"),
    });
    if let Some(ordinal) = restart {
        plan.actions.push(Action::RestartPod { ordinal });
    }
}

/// The primary: the recorded one while it is writable; otherwise the single writable instance
/// (a promotion whose status was never recorded, say because the operator died in between);
/// otherwise the recorded one. With none recorded (a new cluster, or one re-created over
/// retained volumes), see `bootstrap_primary`.
fn choose_primary(
    observation: &Observation,
    intent: &Intent,
) -> Result<u8, (WithheldReason, String)> {
    let writable: Vec<u8> = observation
        .instances
        .iter()
        .filter(|i| matches!(&i.mysql, MySqlObservation::Observed(s) if s.is_writable()))
        .map(|i| i.ordinal)
        .collect();
    match observation.current_primary {
        Some(recorded) if writable.contains(&recorded) => Ok(recorded),
        Some(_) if writable.len() == 1 => Ok(writable[0]),
        Some(recorded) => Ok(recorded),
        None => bootstrap_primary(observation, intent),
    }
}

/// The primary of a cluster whose status records none. A new cluster (no instance holds data,
/// no volume predates the cluster) starts with `spec.primaryInstance` or instance 0. Otherwise
/// the volumes hold a history, and only an instance whose GTID set contains every other's may
/// serve it; the instances whose volumes predate the cluster are waited for (at most
/// `BOOTSTRAP_WAIT`), since any of them may hold transactions the others lack. Ties go to
/// `spec.primaryInstance`, then the lowest ordinal. When histories diverge, or belong to
/// different clusters, nobody is made writable until `spec.primaryInstance` names the instance
/// whose data to keep.
fn bootstrap_primary(
    observation: &Observation,
    intent: &Intent,
) -> Result<u8, (WithheldReason, String)> {
    let desired = intent
        .desired_primary
        .filter(|p| *p < observation.desired_instances);
    let histories: Vec<(u8, &InstanceStatus)> = members(observation)
        .filter_map(|i| match &i.mysql {
            MySqlObservation::Observed(s) if !s.gtid_executed.is_empty() => {
                Some((i.ordinal, s.as_ref()))
            }
            _ => None,
        })
        .collect();
    let unheard: Vec<u8> = members(observation)
        .filter(|i| {
            observation.retained_volumes.contains(&i.ordinal)
                && !matches!(i.mysql, MySqlObservation::Observed(_))
        })
        .map(|i| i.ordinal)
        .collect();
    if histories.is_empty() && unheard.is_empty() && observation.members.is_empty() {
        return Ok(desired.unwrap_or(0));
    }
    let names = |ordinals: &[u8]| {
        ordinals
            .iter()
            .map(|o| format!("instance {o}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !unheard.is_empty() && !intent.bootstrap_wait_over {
        return Err((
            WithheldReason::WaitingForInstances,
            format!(
                "no primary is recorded and the volumes of {} predate this cluster: they may hold transactions the others lack, so the primary is chosen once they answer (at most {} s after the cluster was created)",
                names(&unheard),
                BOOTSTRAP_WAIT.as_secs()
            ),
        ));
    }
    if histories.is_empty() {
        return Err((
            WithheldReason::NoInstanceWithData,
            format!(
                "no instance that answers holds data, yet the cluster had data ({}); an empty instance is never made the primary",
                if unheard.is_empty() {
                    "members are recorded".to_string()
                } else {
                    format!("waiting for {}", names(&unheard))
                }
            ),
        ));
    }
    let identities: std::collections::BTreeSet<&str> = histories
        .iter()
        .filter_map(|(_, s)| s.cluster_identity.as_deref())
        .collect();
    if identities.len() > 1 {
        let held = histories
            .iter()
            .map(|(o, s)| {
                format!(
                    "instance {o}: cluster {}",
                    s.cluster_identity.as_deref().unwrap_or("unknown")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        return match desired.filter(|d| histories.iter().any(|(o, _)| o == d)) {
            Some(chosen) => Ok(chosen),
            None => Err((
                WithheldReason::ForeignHistories,
                format!(
                    "the volumes hold the histories of different clusters ({held}); none is merged into another: set spec.primaryInstance to the instance whose data to keep"
                ),
            )),
        };
    }
    let contains_all = |(_, mine): &(u8, &InstanceStatus)| {
        histories
            .iter()
            .all(|(_, other)| other.gtid_executed.is_subset_of(&mine.gtid_executed))
    };
    let candidates: Vec<u8> = histories
        .iter()
        .filter(|h| contains_all(h))
        .map(|(o, _)| *o)
        .collect();
    if let Some(chosen) = desired
        .filter(|d| candidates.contains(d))
        .or_else(|| candidates.first().copied())
    {
        return Ok(chosen);
    }
    if let Some(chosen) = desired.filter(|d| histories.iter().any(|(o, _)| o == d)) {
        return Ok(chosen);
    }
    let (first, first_status) = histories[0];
    let differences = histories
        .iter()
        .skip(1)
        .map(|(o, s)| {
            let only_first = first_status.gtid_executed.difference(&s.gtid_executed);
            let only_other = s.gtid_executed.difference(&first_status.gtid_executed);
            format!(
                "instance {first} has [{only_first}] that instance {o} lacks, instance {o} has [{only_other}] that instance {first} lacks"
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err((
        WithheldReason::HistoriesDiverge,
        format!(
            "no instance holds every other's transactions ({differences}); nobody is made writable until spec.primaryInstance names the instance whose data to keep"
        ),
    ))
}

/// The demotion of a lost primary's server at its last address, if it had one.
fn demote_stale(intent: &Intent, primary: u8) -> Option<Action> {
    intent
        .stale_primary_address
        .clone()
        .map(|address| Action::DemoteAtAddress {
            ordinal: primary,
            address,
        })
}

/// Whether the instance's server is certainly not serving, from what Kubernetes says: no pod,
/// a pod being deleted, or a mysqld container that is not running or restarted and not up yet.
fn certainly_down(instance: &InstanceObservation) -> bool {
    match &instance.pod {
        None => true,
        Some(pod) => pod.terminating || !pod.mysqld_started || pod.ip.is_none(),
    }
}

/// Nothing listens at the instance's address (the connection was refused): its mysqld is not
/// running, whatever the pod says yet.
fn not_listening(instance: &InstanceObservation) -> bool {
    matches!(instance.mysql, MySqlObservation::NotListening(_))
}

/// The failover step, once the recorded primary could not be observed, or answered read-only
/// again while its failover was under way (`returned_read_only`).
fn failover_step(
    observation: &Observation,
    intent: &Intent,
    primary: u8,
    returned_read_only: bool,
) -> FailoverStep {
    let step = plan_failover(
        observation,
        primary,
        intent.failover_underway == Some(primary),
    );
    if !matches!(step, FailoverStep::Fence(_) | FailoverStep::Promote { .. }) {
        return step;
    }
    let instance = observation.instances.iter().find(|i| i.ordinal == primary);
    // No threshold for what is no network blip: the pod or its mysqld is gone, or the address
    // refuses connections (a dropped packet is what a blip looks like).
    let lost = returned_read_only
        || instance.is_none_or(|i| certainly_down(i) || not_listening(i))
        || intent.primary_failures >= intent.failure_threshold;
    if !lost {
        return FailoverStep::NotYet {
            failures: intent.primary_failures,
            threshold: intent.failure_threshold,
        };
    }
    if let FailoverGate::Closed(reason) = &intent.failover {
        return FailoverStep::Blocked(reason.clone());
    }
    // A primary that may still run (no answer, but its pod and mysqld are there) is promoted
    // over only once it has fenced itself if it is cut off: never two writable instances. The
    // fence of the replicas goes ahead meanwhile.
    let cannot_write = |i: &InstanceObservation| certainly_down(i) || not_listening(i);
    if matches!(step, FailoverStep::Promote { .. })
        && !returned_read_only
        && !instance.is_none_or(cannot_write)
        && !intent.primary_self_fenced
    {
        return FailoverStep::Blocked(
            "waiting for the unresponsive primary's lease to expire: cut off, it makes itself read-only, then a replica is promoted".into(),
        );
    }
    step
}

/// The instance to hand the primary role to, if a switchover is due: the primary's pod is being
/// deleted (a drain, an eviction), the primary is beyond `spec.instances` (a scale-down), or
/// `spec.primaryInstance` names another instance. `Err` says why a wanted switchover waits.
fn switchover_target(
    observation: &Observation,
    intent: &Intent,
    primary: u8,
    primary_status: &InstanceStatus,
) -> Result<Option<u8>, String> {
    let primary_pod = observation
        .instances
        .iter()
        .find(|i| i.ordinal == primary)
        .and_then(|i| i.pod.as_ref());
    let leaving = primary_pod.is_some_and(|p| p.terminating)
        || primary >= observation.desired_instances
        || rollout_reached_the_primary(observation, primary);
    let wanted = intent.desired_primary.filter(|d| *d != primary);
    if !leaving && wanted.is_none() {
        return Ok(None);
    }
    let candidates: Vec<&InstanceObservation> = observation
        .instances
        .iter()
        .filter(|i| {
            i.ordinal != primary
                && i.ordinal < observation.desired_instances
                && i.pod.as_ref().is_some_and(|p| !p.terminating)
                && is_healthy_replica(primary, primary_status, i)
                && matches!(&i.mysql, MySqlObservation::Observed(s) if s.semi_sync.replica_enabled)
        })
        .collect();
    if let Some(wanted) = wanted {
        if candidates.iter().any(|i| i.ordinal == wanted) {
            return Ok(Some(wanted));
        }
        if !leaving {
            return Err(format!(
                "the primary moves to instance {wanted} once it is a healthy replica that follows the primary"
            ));
        }
    }
    // The replica that received the most, so the catch-up (the write gap) is shortest.
    let received = |i: &InstanceObservation| match &i.mysql {
        MySqlObservation::Observed(s) => s
            .replica
            .as_ref()
            .map(|r| s.gtid_executed.union(&r.retrieved_gtid_set).count())
            .unwrap_or(0),
        _ => 0,
    };
    candidates
        .iter()
        .max_by_key(|i| (received(i), std::cmp::Reverse(i.ordinal)))
        .map(|i| Some(i.ordinal))
        .ok_or_else(|| {
            "the primary is leaving but no healthy replica can take over; it stays primary until it goes"
                .to_string()
        })
}

/// Where a failover stands, judged from one observation.
enum FailoverStep {
    /// No replica followed the primary: nothing to fail over to (a new cluster, say).
    NotNeeded,
    /// The primary's pod runs but its server did not answer; too few times yet to act.
    NotYet { failures: u32, threshold: u32 },
    /// Acting could lose acknowledged writes or split the cluster; the reason, for the status.
    Blocked(String),
    /// Stop replication I/O on these replicas first.
    Fence(Vec<u8>),
    /// Every observable replica is fenced: promote the one that holds everything.
    Promote { candidate: u8, everything: GtidSet },
}

/// Decides the failover step when the recorded primary cannot be observed.
///
/// Safe only when enough replicas are observed that at least one of them holds every
/// acknowledged transaction: with `w` acknowledgements per commit among `n - 1` replicas, any
/// `n - w` replicas include one that acknowledged it.
///
/// The first round of a failover (`fenced_earlier` false) fences every follower, even one
/// whose I/O thread is stopped already: the fence is also recorded for its next mysqld start,
/// which would otherwise resume replicating from the old primary by itself.
fn plan_failover(observation: &Observation, primary: u8, fenced_earlier: bool) -> FailoverStep {
    let replicas: Vec<(&InstanceObservation, &InstanceStatus)> = observation
        .instances
        .iter()
        .filter(|i| i.ordinal != primary && i.replication_source == Some(primary))
        .filter_map(|i| match &i.mysql {
            MySqlObservation::Observed(s) => Some((i, s.as_ref())),
            _ => None,
        })
        .collect();
    if replicas.is_empty() {
        return FailoverStep::NotNeeded;
    }
    // A replica whose data a clone is replacing acknowledged nothing since the clone began
    // (replication stops first) and keeps nothing from before: it is known to hold nothing the
    // others lack, so it counts as observed, answering or not, but it is neither fenced nor a
    // candidate.
    let replicas: Vec<(&InstanceObservation, &InstanceStatus)> = replicas
        .into_iter()
        .filter(|(i, _)| !observation.cloning.contains(&i.ordinal))
        .collect();
    let being_cloned = observation
        .cloning
        .iter()
        .filter(|o| **o != primary)
        .count();
    let needed = usize::from(observation.desired_instances)
        - semi_sync_wait_count(observation.desired_instances) as usize;
    if replicas.len() + being_cloned < needed {
        return FailoverStep::Blocked(format!(
            "the primary is unreachable and only {} of the {needed} replicas needed to be sure no acknowledged write is lost can be observed",
            replicas.len() + being_cloned
        ));
    }
    if replicas.is_empty() {
        return FailoverStep::Blocked(
            "every replica that followed the primary is being cloned: none holds its data yet"
                .into(),
        );
    }
    let unfenced: Vec<u8> = replicas
        .iter()
        .filter(|(_, s)| {
            !fenced_earlier
                || s.replica
                    .as_ref()
                    .is_some_and(|r| r.io_thread != ThreadState::Stopped)
        })
        .map(|(i, _)| i.ordinal)
        .collect();
    if !unfenced.is_empty() {
        return FailoverStep::Fence(unfenced);
    }
    let received = |s: &InstanceStatus| {
        let retrieved = s
            .replica
            .as_ref()
            .map(|r| r.retrieved_gtid_set.clone())
            .unwrap_or_default();
        s.gtid_executed.union(&retrieved)
    };
    let candidate = replicas.iter().find(|(_, s)| {
        let mine = received(s);
        replicas
            .iter()
            .all(|(_, other)| received(other).is_subset_of(&mine))
    });
    match candidate {
        Some((instance, status)) => FailoverStep::Promote {
            candidate: instance.ordinal,
            everything: received(status),
        },
        None => FailoverStep::Blocked(
            "the replicas' GTID sets diverge: no replica holds every other's transactions".into(),
        ),
    }
}

fn observed(observation: &Observation, ordinal: u8) -> Option<&InstanceStatus> {
    observation
        .instances
        .iter()
        .find(|i| i.ordinal == ordinal)
        .and_then(|i| match &i.mysql {
            MySqlObservation::Observed(status) => Some(status.as_ref()),
            _ => None,
        })
}

fn primary_actions(
    observation: &Observation,
    ordinal: u8,
    status: &InstanceStatus,
    plan: &mut Plan,
) {
    if let Some(replica) = &status.replica {
        // Forgetting the source drops the relay log: apply what was received first.
        if !replica
            .retrieved_gtid_set
            .is_subset_of(&status.gtid_executed)
            && plan.switchover_from.is_none()
        {
            plan.actions.push(Action::WaitForTransactions {
                ordinal,
                gtids: status.gtid_executed.union(&replica.retrieved_gtid_set),
            });
        }
        plan.actions.push(Action::StopReplicating { ordinal });
    }
    let wanted = semi_sync_wait_count(voters(observation, ordinal, &plan.members));
    let semi_sync = if wanted == 0 {
        status
            .semi_sync
            .source_enabled
            .then_some(Action::DisableSemiSyncSource { ordinal })
    } else {
        let configured = status.semi_sync.source_enabled
            && status.semi_sync.wait_for_replica_count == Some(wanted)
            && status.semi_sync.source_timeout == Some(SEMI_SYNC_TIMEOUT)
            && status.semi_sync.wait_point.as_deref() == Some("AFTER_SYNC");
        (!configured).then_some(Action::EnableSemiSyncSource {
            ordinal,
            wait_for_replica_count: wanted,
        })
    };
    let fresh = status.gtid_executed.is_empty();
    if fresh {
        // Nobody can acknowledge yet and nothing can be lost: record the identity first, then
        // turn semi-sync on before any client can reach the primary (its label comes last).
        if !status.is_writable() {
            plan.actions.push(Action::MakeWritable { ordinal });
        }
        plan.actions.push(Action::RecordClusterIdentity { ordinal });
        plan.actions.extend(semi_sync);
    } else {
        plan.actions.extend(semi_sync);
        if !status.is_writable() {
            plan.actions.push(Action::MakeWritable { ordinal });
        }
    }
}

/// The GTIDs a replica would need that the primary has already purged from its binary logs.
fn unreachable_gtids(primary: &InstanceStatus, replica: &InstanceStatus) -> GtidSet {
    primary
        .gtid_executed
        .difference(&replica.gtid_executed)
        .intersection(&primary.gtid_purged)
}

/// A replica that follows the primary, as a clone donor: replicating, nothing errant.
fn is_healthy_replica(
    primary: u8,
    primary_status: &InstanceStatus,
    instance: &InstanceObservation,
) -> bool {
    let MySqlObservation::Observed(status) = &instance.mysql else {
        return false;
    };
    instance.replication_source == Some(primary)
        && status
            .replica
            .as_ref()
            .is_some_and(ReplicaStatus::threads_running)
        && status
            .gtid_executed
            .is_subset_of(&primary_status.gtid_executed)
        && !status.gtid_executed.is_empty()
}

fn replica_actions(
    observation: &Observation,
    primary: u8,
    primary_status: &InstanceStatus,
    plan: &mut Plan,
) {
    // Clones wait while a seeded replica is about to follow the primary: it will be a better
    // donor than the primary within seconds.
    let donor_on_its_way = choose_donor(observation, primary, primary_status) == primary
        && observation.instances.iter().any(|i| {
            i.ordinal != primary
                && matches!(&i.mysql, MySqlObservation::Observed(s)
                    if !s.gtid_executed.is_empty()
                        && s.gtid_executed.is_subset_of(&primary_status.gtid_executed)
                        && unreachable_gtids(primary_status, s).is_empty())
                && !is_healthy_replica(primary, primary_status, i)
        });
    // One clone at a time: a clone in flight counts as this round's.
    let mut cloning = donor_on_its_way || !observation.cloning.is_empty();
    // The primary a switchover leaves comes last: it first turns semi-sync off (up to a
    // second), and the new primary's first commits wait for another replica's acknowledgement.
    let left_behind = plan.switchover_from;
    for instance in ordered(observation, |i| Some(i.ordinal) == left_behind) {
        let MySqlObservation::Observed(status) = &instance.mysql else {
            continue;
        };
        let ordinal = instance.ordinal;
        let pod = instance.pod.as_ref();
        // A pod on its way out is left alone; it comes back as a new pod. So is an instance
        // whose data a clone is replacing: it comes back with the donor's, and is then seen to.
        if ordinal == primary
            || pod.is_some_and(|p| p.terminating)
            || observation.cloning.contains(&ordinal)
        {
            continue;
        }
        let errant = status
            .gtid_executed
            .difference(&primary_status.gtid_executed);
        // Another cluster's history is never merged or written over without a person's word
        // (the re-clone annotation, below).
        let foreign = match (&status.cluster_identity, &primary_status.cluster_identity) {
            (Some(mine), Some(primary)) if mine != primary => Some(mine.clone()),
            _ => None,
        };
        // A person asked for this replica's data to be replaced (the re-clone annotation).
        if pod.is_some_and(|p| p.reclone_requested) {
            if !cloning {
                plan.actions.push(Action::CloneFrom {
                    ordinal,
                    donor: choose_donor(observation, primary, primary_status),
                    discarded: (!errant.is_empty()).then_some(errant),
                });
                plan.actions.push(Action::ClearRecloneRequest { ordinal });
                cloning = true;
            }
            continue;
        }
        if let Some(identity) = foreign {
            plan.findings
                .push(Finding::ForeignData { ordinal, identity });
            continue;
        }
        // No replication source and transactions of its own: the primary the last failover
        // replaced, back. Semi-sync guarantees nobody acknowledged those transactions to a
        // client (the new primary was chosen as holding every fenced replica's), so the
        // instance is re-seeded from the new primary's history and they are reported. Any other
        // instance's extra transactions may have been acknowledged: reported, never discarded
        // automatically.
        if !errant.is_empty()
            && status.replica.is_none()
            && observation.failed_over_from == Some(ordinal)
            && !cloning
        {
            plan.actions.push(Action::CloneFrom {
                ordinal,
                donor: choose_donor(observation, primary, primary_status),
                discarded: Some(errant),
            });
            cloning = true;
            continue;
        }
        if !errant.is_empty() {
            plan.findings.push(Finding::ErrantTransactions {
                ordinal,
                gtids: errant.to_string(),
            });
            continue;
        }
        let needs_clone = status.gtid_executed.is_empty()
            || !unreachable_gtids(primary_status, status).is_empty();
        if needs_clone {
            // One clone at a time, so that each later one can use a replica as its donor.
            if !cloning {
                plan.actions.push(Action::CloneFrom {
                    ordinal,
                    donor: choose_donor(observation, primary, primary_status),
                    discarded: None,
                });
                cloning = true;
            }
            continue;
        }
        // A channel less protected than both pods allow (configured before TLS, or before one
        // of them had the cluster's certificate) is configured again.
        let wanted_tls = ChannelTls::from(&peer_tls(observation, ordinal, primary));
        let following = instance.replication_source == Some(primary)
            && status.replica.as_ref().is_some_and(|r| {
                r.auto_position
                    && r.io_thread != ThreadState::Stopped
                    && r.sql_thread == ThreadState::Running
                    && r.channel_tls >= wanted_tls
            })
            && status.semi_sync.replica_enabled;
        if !following {
            if left_behind == Some(ordinal) && status.semi_sync.source_enabled {
                plan.actions.push(Action::DisableSemiSyncSource { ordinal });
            }
            plan.actions.push(Action::ReplicateFrom {
                ordinal,
                source: primary,
            });
        }
    }
}

/// How `ordinal` checks `peer`'s certificate when it replicates or clones from it: against the
/// cluster's CA once both pods have it (the one to read the CA file, the other to serve the
/// certificate); encrypted but unchecked while either pod predates TLS, so that a rolling
/// upgrade to TLS never cuts replication.
pub fn peer_tls(observation: &Observation, ordinal: u8, peer: u8) -> PeerTls {
    let has_certificate = |o| {
        observation
            .pod(o)
            .is_some_and(|pod| pod.serves_cluster_certificate)
    };
    if has_certificate(ordinal) && has_certificate(peer) {
        PeerTls::Verified {
            ca_path: format!("{}/{}", naming::TLS_DIR, naming::CA_CERT_KEY),
        }
    } else {
        PeerTls::Unverified
    }
}

/// A healthy replica if there is one (cloning loads the donor; spare the primary), else the primary.
fn choose_donor(observation: &Observation, primary: u8, primary_status: &InstanceStatus) -> u8 {
    observation
        .instances
        .iter()
        .filter(|i| i.ordinal != primary)
        .find(|i| is_healthy_replica(primary, primary_status, i))
        .map(|i| i.ordinal)
        .unwrap_or(primary)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::clustering::intent::FailoverGate;
    use crate::clustering::observe::tests::{
        gtids, instance, observation, primary_with, replica_following, status_mut,
    };

    /// Decides with the recorded primary, if unreachable, failed often enough to be lost.
    pub(crate) fn decided(observation: &Observation) -> Plan {
        decide(
            observation,
            &Intent {
                primary_failures: 3,
                failure_threshold: 3,
                ..Intent::default()
            },
        )
    }

    /// `decided`, in the round after this failover's fence (kept in the operator's memory).
    fn decided_after_fence(observation: &Observation) -> Plan {
        decide(
            observation,
            &Intent {
                primary_failures: 3,
                failure_threshold: 3,
                failover_underway: Some(0),
                ..Intent::default()
            },
        )
    }

    struct Scenario {
        name: &'static str,
        observation: Observation,
        expected: Vec<Action>,
    }

    fn label(ordinal: u8, role: Role) -> Action {
        Action::SetRoleLabel { ordinal, role }
    }

    fn scenarios() -> Vec<Scenario> {
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        vec![
            Scenario {
                name: "new single instance: writable, identity recorded, no semi-sync, labelled",
                observation: observation(1, None, vec![instance(0, Some(true), None)]),
                expected: vec![
                    Action::MakeWritable { ordinal: 0 },
                    Action::RecordClusterIdentity { ordinal: 0 },
                    label(0, Role::Primary),
                ],
            },
            Scenario {
                name: "new three-instance cluster: the fresh primary is prepared, replicas wait for its history",
                observation: observation(
                    3,
                    None,
                    vec![
                        instance(0, Some(true), None),
                        instance(1, Some(true), None),
                        instance(2, Some(true), None),
                    ],
                ),
                // Semi-sync comes once a replica has joined: nobody could acknowledge before.
                expected: vec![
                    Action::MakeWritable { ordinal: 0 },
                    Action::RecordClusterIdentity { ordinal: 0 },
                    label(0, Role::Primary),
                    label(1, Role::Replica),
                    label(2, Role::Replica),
                ],
            },
            Scenario {
                name: "empty replicas are cloned one at a time, the first from the primary",
                observation: Observation {
                    // They had joined before and lost their data: they still count.
                    members: vec![0, 1, 2],
                    ..observation(
                        3,
                        Some(0),
                        vec![
                            primary_with(0, 3, history),
                            instance(1, Some(true), Some("replica")),
                            instance(2, Some(true), Some("replica")),
                        ],
                    )
                },
                expected: vec![Action::CloneFrom {
                    ordinal: 1,
                    donor: 0,
                    discarded: None,
                }],
            },
            Scenario {
                name: "scale-up from one: the primary commits alone while the new replicas are seeded",
                observation: Observation {
                    members: vec![0],
                    ..observation(
                        3,
                        Some(0),
                        vec![
                            primary_with(0, 1, history),
                            instance(1, Some(true), None),
                            instance(2, Some(true), None),
                        ],
                    )
                },
                expected: vec![
                    label(1, Role::Replica),
                    label(2, Role::Replica),
                    Action::CloneFrom {
                        ordinal: 1,
                        donor: 0,
                        discarded: None,
                    },
                ],
            },
            Scenario {
                name: "a later clone prefers a healthy replica as donor",
                observation: observation(
                    3,
                    Some(0),
                    vec![
                        primary_with(0, 3, history),
                        replica_following(1, 0, history),
                        instance(2, Some(true), Some("replica")),
                    ],
                ),
                expected: vec![Action::CloneFrom {
                    ordinal: 2,
                    donor: 1,
                    discarded: None,
                }],
            },
            Scenario {
                name: "clones wait while a seeded replica is about to become a donor",
                observation: observation(
                    3,
                    Some(0),
                    vec![
                        primary_with(0, 3, history),
                        gtids(instance(1, Some(true), Some("replica")), history, ""),
                        instance(2, Some(true), Some("replica")),
                    ],
                ),
                expected: vec![Action::ReplicateFrom {
                    ordinal: 1,
                    source: 0,
                }],
            },
            Scenario {
                name: "a seeded replica that does not replicate yet is pointed at the primary",
                observation: observation(
                    3,
                    Some(0),
                    vec![
                        primary_with(0, 3, history),
                        replica_following(1, 0, history),
                        gtids(
                            instance(2, Some(true), Some("replica")),
                            "aaaaaaaa-0000-0000-0000-000000000000:1-4",
                            "",
                        ),
                    ],
                ),
                expected: vec![Action::ReplicateFrom {
                    ordinal: 2,
                    source: 0,
                }],
            },
            Scenario {
                name: "a replica whose missing transactions were purged is cloned again",
                observation: observation(
                    2,
                    Some(0),
                    vec![
                        gtids(
                            primary_with(0, 2, history),
                            history,
                            "aaaaaaaa-0000-0000-0000-000000000000:1-8",
                        ),
                        gtids(
                            instance(1, Some(true), Some("replica")),
                            "aaaaaaaa-0000-0000-0000-000000000000:1-4",
                            "",
                        ),
                    ],
                ),
                expected: vec![Action::CloneFrom {
                    ordinal: 1,
                    donor: 0,
                    discarded: None,
                }],
            },
            Scenario {
                name: "settled replicated cluster: nothing to do",
                observation: observation(
                    3,
                    Some(0),
                    vec![
                        primary_with(0, 3, history),
                        replica_following(1, 0, history),
                        replica_following(2, 0, history),
                    ],
                ),
                expected: vec![],
            },
            Scenario {
                name: "semi-sync lost on a restarted primary is restored before it becomes writable",
                observation: observation(
                    3,
                    Some(0),
                    vec![
                        gtids(instance(0, Some(true), Some("primary")), history, ""),
                        replica_following(1, 0, history),
                        replica_following(2, 0, history),
                    ],
                ),
                expected: vec![
                    Action::EnableSemiSyncSource {
                        ordinal: 0,
                        wait_for_replica_count: 1,
                    },
                    Action::MakeWritable { ordinal: 0 },
                ],
            },
            Scenario {
                name: "a writable non-primary is demoted before anything else",
                observation: observation(
                    3,
                    Some(0),
                    vec![
                        primary_with(0, 3, history),
                        gtids(instance(1, Some(false), Some("replica")), history, ""),
                        replica_following(2, 0, history),
                    ],
                ),
                expected: vec![
                    Action::ForceReadOnly { ordinal: 1 },
                    Action::ReplicateFrom {
                        ordinal: 1,
                        source: 0,
                    },
                ],
            },
            Scenario {
                name: "a replica with errant transactions is reported and left alone",
                observation: observation(
                    2,
                    Some(0),
                    vec![
                        primary_with(0, 2, history),
                        gtids(
                            replica_following(1, 0, history),
                            "aaaaaaaa-0000-0000-0000-000000000000:1-10,bbbbbbbb-0000-0000-0000-000000000000:1",
                            "",
                        ),
                    ],
                ),
                expected: vec![],
            },
            Scenario {
                name: "an unreachable primary: replicas are not touched",
                observation: observation(
                    2,
                    Some(0),
                    vec![
                        instance(0, None, Some("primary")),
                        gtids(instance(1, Some(true), Some("replica")), "", ""),
                    ],
                ),
                expected: vec![],
            },
            Scenario {
                name: "five members wait for two acknowledgements",
                observation: Observation {
                    members: vec![0, 1, 2, 3, 4],
                    ..observation(
                        5,
                        Some(0),
                        vec![gtids(instance(0, Some(true), Some("primary")), history, "")],
                    )
                },
                expected: vec![
                    Action::EnableSemiSyncSource {
                        ordinal: 0,
                        wait_for_replica_count: 2,
                    },
                    Action::MakeWritable { ordinal: 0 },
                ],
            },
            Scenario {
                name: "a primary that still has a replication source forgets it",
                observation: observation(1, Some(0), vec![replica_following(0, 1, history)]),
                expected: vec![
                    Action::StopReplicating { ordinal: 0 },
                    Action::MakeWritable { ordinal: 0 },
                    label(0, Role::Primary),
                ],
            },
        ]
    }

    /// A replica of `source` whose I/O thread was stopped by the fence, having received `retrieved`.
    fn fenced(ordinal: u8, source: u8, executed: &str, retrieved: &str) -> InstanceObservation {
        let mut replica = gtids(replica_following(ordinal, source, executed), executed, "");
        if let MySqlObservation::Observed(s) = &mut replica.mysql {
            let r = s.replica.as_mut().unwrap();
            r.io_thread = ThreadState::Stopped;
            r.retrieved_gtid_set = GtidSet::parse(retrieved).unwrap();
        }
        replica
    }

    #[test]
    fn failover_fences_first_and_looks_again() {
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        let obs = observation(
            3,
            Some(0),
            vec![
                instance(0, None, Some("primary")),
                replica_following(1, 0, history),
                replica_following(2, 0, history),
            ],
        );
        let plan = decided(&obs);
        assert_eq!(
            plan.actions,
            vec![
                Action::StopReplicaIo { ordinal: 1 },
                Action::StopReplicaIo { ordinal: 2 }
            ]
        );
        assert!(plan.follow_up_soon);
        assert_eq!(
            plan.primary,
            Some(0),
            "nothing is promoted before the fence holds"
        );
    }

    #[test]
    fn the_first_round_of_a_failover_fences_every_follower_even_one_already_stopped() {
        // Replica 2's I/O thread is stopped already (an error, a person): the fence is still
        // recorded on it, or its next mysqld start would resume replicating from instance 0.
        let obs = observation(
            3,
            Some(0),
            vec![
                instance(0, None, Some("primary")),
                replica_following(1, 0, "aaaaaaaa-0000-0000-0000-000000000000:1-10"),
                fenced(2, 0, "aaaaaaaa-0000-0000-0000-000000000000:1-10", ""),
            ],
        );
        let plan = decided(&obs);
        assert_eq!(
            plan.actions,
            vec![
                Action::StopReplicaIo { ordinal: 1 },
                Action::StopReplicaIo { ordinal: 2 }
            ]
        );
        assert_eq!(plan.failover_underway, Some(0));
        // Every follower stopped at the first look: fenced all the same before any promotion.
        let mut all_stopped = obs.clone();
        all_stopped.instances[1] = fenced(1, 0, "aaaaaaaa-0000-0000-0000-000000000000:1-10", "");
        let plan = decided(&all_stopped);
        assert_eq!(plan.failover_from, None);
        assert_eq!(plan.actions.len(), 2, "{:?}", plan.actions);
        // The next round promotes.
        assert_eq!(decided_after_fence(&all_stopped).failover_from, Some(0));
    }

    #[test]
    fn failover_promotes_the_replica_that_received_everything() {
        let obs = observation(
            3,
            Some(0),
            vec![
                instance(0, None, Some("primary")),
                fenced(
                    1,
                    0,
                    "aaaaaaaa-0000-0000-0000-000000000000:1-8",
                    "aaaaaaaa-0000-0000-0000-000000000000:1-10",
                ),
                fenced(
                    2,
                    0,
                    "aaaaaaaa-0000-0000-0000-000000000000:1-9",
                    "aaaaaaaa-0000-0000-0000-000000000000:1-9",
                ),
            ],
        );
        let plan = decided_after_fence(&obs);
        assert_eq!(plan.primary, Some(1));
        assert_eq!(plan.failover_from, Some(0));
        assert_eq!(
            plan.actions,
            vec![
                Action::WaitForTransactions {
                    ordinal: 1,
                    gtids: GtidSet::parse("aaaaaaaa-0000-0000-0000-000000000000:1-10").unwrap()
                },
                Action::StopReplicating { ordinal: 1 },
                Action::EnableSemiSyncSource {
                    ordinal: 1,
                    wait_for_replica_count: 1
                },
                Action::MakeWritable { ordinal: 1 },
                Action::SetRoleLabel {
                    ordinal: 1,
                    role: Role::Primary
                },
                Action::SetRoleLabel {
                    ordinal: 0,
                    role: Role::Replica
                },
                Action::ReplicateFrom {
                    ordinal: 2,
                    source: 1
                },
            ]
        );
    }

    #[test]
    fn a_primary_that_may_still_run_is_promoted_over_only_after_it_fenced_itself() {
        let fenced_pair = || {
            vec![
                fenced(1, 0, "aaaaaaaa-0000-0000-0000-000000000000:1-10", ""),
                fenced(2, 0, "aaaaaaaa-0000-0000-0000-000000000000:1-9", ""),
            ]
        };
        let lease_running = Intent {
            primary_failures: 3,
            failure_threshold: 3,
            primary_self_fenced: false,
            failover_underway: Some(0),
            ..Intent::default()
        };
        // Unanswering, but its pod and mysqld run: maybe cut off and still writable.
        let mut instances = vec![instance(0, None, Some("primary"))];
        instances.extend(fenced_pair());
        let obs = observation(3, Some(0), instances);
        let plan = decide(&obs, &lease_running);
        assert_eq!(plan.primary, Some(0));
        assert_eq!(plan.failover_from, None);
        assert!(
            !plan.actions.iter().any(|a| matches!(
                a,
                Action::MakeWritable { .. } | Action::StopReplicating { .. }
            )),
            "{:?}",
            plan.actions
        );
        assert!(
            plan.findings.iter().any(
                |f| matches!(f, Finding::FailoverBlocked { reason } if reason.contains("lease"))
            ),
            "{:?}",
            plan.findings
        );
        // Nothing listens at its address (connection refused): no server there to fence.
        let mut refusing = instance(0, None, Some("primary"));
        refusing.mysql = MySqlObservation::NotListening("Connection refused".into());
        let mut instances = vec![refusing];
        instances.extend(fenced_pair());
        let plan = decide(&observation(3, Some(0), instances), &lease_running);
        assert_eq!(plan.failover_from, Some(0));
        // Its mysqld is known not to run (crashed, restarting): nothing to wait for.
        let mut crashed = instance(0, None, Some("primary"));
        crashed.pod.as_mut().unwrap().mysqld_started = false;
        let mut instances = vec![crashed];
        instances.extend(fenced_pair());
        let plan = decide(&observation(3, Some(0), instances), &lease_running);
        assert_eq!(plan.failover_from, Some(0));
        assert_eq!(plan.primary, Some(1));
    }

    #[test]
    fn a_failover_under_way_finishes_when_the_old_primary_returns_read_only() {
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        let fenced_pair = || {
            vec![
                fenced(1, 0, history, history),
                fenced(2, 0, "aaaaaaaa-0000-0000-0000-000000000000:1-9", history),
            ]
        };
        let underway = Intent {
            failover_underway: Some(0),
            failure_threshold: 3,
            ..Intent::default()
        };
        // Its mysqld restarted (read-only, from my.cnf) before the promotion.
        let mut instances = vec![gtids(instance(0, Some(true), Some("primary")), history, "")];
        instances.extend(fenced_pair());
        let plan = decide(&observation(3, Some(0), instances), &underway);
        assert_eq!(plan.failover_from, Some(0));
        assert_eq!(plan.primary, Some(1));
        assert_eq!(plan.failover_underway, None, "finished");
        let writable: Vec<u8> = plan
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::MakeWritable { ordinal } => Some(*ordinal),
                _ => None,
            })
            .collect();
        assert_eq!(writable, [1], "{:?}", plan.actions);
        assert!(
            plan.actions.contains(&Action::ReplicateFrom {
                ordinal: 0,
                source: 1
            }),
            "the old primary returns as a replica: {:?}",
            plan.actions
        );

        // Still writable: it never went down (a blip), so it stays primary and the fence is undone.
        let mut instances = vec![gtids(
            instance(0, Some(false), Some("primary")),
            history,
            "",
        )];
        instances.extend(fenced_pair());
        let plan = decide(&observation(3, Some(0), instances), &underway);
        assert_eq!(plan.failover_from, None);
        assert_eq!(plan.primary, Some(0));
        assert_eq!(plan.failover_underway, None);

        // Not answering yet and promotion blocked (its lease): the failover stays under way.
        let waiting = Intent {
            primary_self_fenced: false,
            primary_failures: 3,
            ..underway.clone()
        };
        let mut instances = vec![instance(0, None, Some("primary"))];
        instances.extend(fenced_pair());
        let plan = decide(&observation(3, Some(0), instances), &waiting);
        assert_eq!(plan.failover_from, None);
        assert_eq!(plan.failover_underway, Some(0));

        // Without a failover under way, a primary that answers read-only is made writable again.
        let mut instances = vec![gtids(instance(0, Some(true), Some("primary")), history, "")];
        instances.extend(fenced_pair());
        let plan = decide(&observation(3, Some(0), instances), &Intent::default());
        assert_eq!(plan.failover_from, None);
        assert!(plan.actions.contains(&Action::MakeWritable { ordinal: 0 }));
    }

    #[test]
    fn failover_is_blocked_when_too_few_replicas_are_observed() {
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        let obs = observation(
            3,
            Some(0),
            vec![
                instance(0, None, Some("primary")),
                fenced(1, 0, history, history),
                instance(2, None, Some("replica")),
            ],
        );
        let plan = decided(&obs);
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert!(matches!(
            &plan.findings[..],
            [Finding::FailoverBlocked { .. }]
        ));
    }

    #[test]
    fn failover_is_blocked_when_replicas_diverge() {
        let obs = observation(
            3,
            Some(0),
            vec![
                instance(0, None, Some("primary")),
                fenced(1, 0, "aaaaaaaa-0000-0000-0000-000000000000:1-9", ""),
                fenced(
                    2,
                    0,
                    "aaaaaaaa-0000-0000-0000-000000000000:1-8,bbbbbbbb-0000-0000-0000-000000000000:1",
                    "",
                ),
            ],
        );
        let plan = decided_after_fence(&obs);
        assert_eq!(plan.primary, Some(0));
        assert!(
            matches!(&plan.findings[..], [Finding::FailoverBlocked { reason }] if reason.contains("diverge"))
        );
    }

    #[test]
    fn a_former_primary_with_unacknowledged_transactions_is_recloned() {
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        let lost = "aaaaaaaa-0000-0000-0000-000000000000:11";
        let obs = Observation {
            failed_over_from: Some(0),
            ..former_primary_back(history)
        };
        let plan = decided(&obs);
        assert_eq!(
            plan.actions,
            vec![Action::CloneFrom {
                ordinal: 0,
                donor: 2,
                discarded: Some(GtidSet::parse(lost).unwrap())
            }]
        );
    }

    /// Instance 0 holds one transaction more than the primary 1, and no replication source.
    fn former_primary_back(history: &str) -> Observation {
        observation(
            3,
            Some(1),
            vec![
                gtids(
                    instance(0, Some(true), Some("replica")),
                    "aaaaaaaa-0000-0000-0000-000000000000:1-11",
                    "",
                ),
                primary_with(1, 3, history),
                replica_following(2, 1, history),
            ],
        )
    }

    #[test]
    fn extra_transactions_of_an_instance_no_failover_replaced_are_reported_not_discarded() {
        // Without the record that a failover replaced it, nothing says no client was told those
        // transactions committed (a cluster re-created over its volumes, a user's choice).
        let plan = decided(&former_primary_back(
            "aaaaaaaa-0000-0000-0000-000000000000:1-10",
        ));
        assert_eq!(plan.actions, vec![]);
        assert_eq!(
            plan.findings,
            vec![Finding::ErrantTransactions {
                ordinal: 0,
                gtids: "aaaaaaaa-0000-0000-0000-000000000000:11".into()
            }]
        );
    }

    /// One bootstrap row: name, instances, retained volumes, spec.primaryInstance, wait over,
    /// expected outcome.
    type BootstrapRow = (
        &'static str,
        Vec<InstanceObservation>,
        Vec<u8>,
        Option<u8>,
        bool,
        Bootstrap,
    );

    /// What a bootstrap (no primary recorded) must decide.
    enum Bootstrap {
        Primary(u8),
        Withheld(WithheldReason, &'static [&'static str]),
    }

    #[test]
    fn with_no_recorded_primary_only_an_instance_holding_every_history_is_chosen() {
        const A: &str = "aaaaaaaa-0000-0000-0000-000000000000";
        let held =
            |ordinal: u8, gtid_set: &str| gtids(instance(ordinal, Some(true), None), gtid_set, "");
        let owned_by = |mut i: InstanceObservation, uid: &str| {
            if let MySqlObservation::Observed(s) = &mut i.mysql {
                s.cluster_identity = Some(uid.into());
            }
            i
        };
        let a20 = format!("{A}:1-20");
        let a50 = format!("{A}:1-50");
        let b = "bbbbbbbb-0000-0000-0000-000000000000:1-5";
        // Instance 0 lags 30 transactions behind 1 and 2 (the bug report's volumes).
        let zero_lags = || vec![held(0, &a20), held(1, &a50), held(2, &a50)];
        let diverged = || {
            vec![
                held(0, &format!("{A}:1-20,{b}")),
                held(1, &a50),
                held(2, &a20),
            ]
        };
        let all = || vec![0, 1, 2];
        let rows: Vec<BootstrapRow> = vec![
            (
                "re-created over volumes: a lagging instance 0 is passed over for the complete one",
                zero_lags(),
                all(),
                None,
                false,
                Bootstrap::Primary(1),
            ),
            (
                "spec.primaryInstance breaks a tie between complete instances",
                zero_lags(),
                all(),
                Some(2),
                false,
                Bootstrap::Primary(2),
            ),
            (
                "spec.primaryInstance never picks an instance that lacks others' transactions",
                zero_lags(),
                all(),
                Some(0),
                false,
                Bootstrap::Primary(1),
            ),
            (
                "an instance whose retained volume has not answered is waited for",
                vec![held(0, &a20), held(1, &a50), instance(2, None, None)],
                all(),
                None,
                false,
                Bootstrap::Withheld(WithheldReason::WaitingForInstances, &["instance 2"]),
            ),
            (
                "after the wait, the choice is made among those that answered",
                vec![held(0, &a20), held(1, &a50), instance(2, None, None)],
                all(),
                None,
                true,
                Bootstrap::Primary(1),
            ),
            (
                "an unanswering instance with a volume of this cluster's own is not waited for",
                vec![held(0, &a50), held(1, &a50), instance(2, None, None)],
                vec![0, 1],
                None,
                false,
                Bootstrap::Primary(0),
            ),
            (
                "an empty instance among instances with history is never chosen",
                vec![held(0, ""), held(1, &a20), held(2, &a50)],
                vec![0, 1, 2],
                None,
                false,
                Bootstrap::Primary(2),
            ),
            (
                "divergent histories: nobody is writable, the differences are named",
                diverged(),
                vec![0, 1, 2],
                None,
                false,
                Bootstrap::Withheld(
                    WithheldReason::HistoriesDiverge,
                    &[
                        "bbbbbbbb-0000-0000-0000-000000000000:1-5",
                        ":21-50",
                        "spec.primaryInstance",
                    ],
                ),
            ),
            (
                "divergent histories: spec.primaryInstance is the person's choice",
                diverged(),
                vec![0, 1, 2],
                Some(0),
                false,
                Bootstrap::Primary(0),
            ),
            (
                "volumes of different clusters are never merged",
                vec![
                    owned_by(held(0, &a50), "uid-1"),
                    owned_by(held(1, &a50), "uid-2"),
                    held(2, ""),
                ],
                vec![0, 1, 2],
                None,
                false,
                Bootstrap::Withheld(WithheldReason::ForeignHistories, &["uid-1", "uid-2"]),
            ),
            (
                "retained volumes that answer empty while no one has data: a new cluster",
                vec![held(0, ""), held(1, ""), held(2, "")],
                vec![0, 1, 2],
                None,
                false,
                Bootstrap::Primary(0),
            ),
        ];
        for (name, instances, retained, desired, wait_over, expected) in rows {
            let obs = Observation {
                retained_volumes: retained,
                ..observation(3, None, instances)
            };
            let intent = Intent {
                desired_primary: desired,
                bootstrap_wait_over: wait_over,
                ..Intent::default()
            };
            let plan = decide(&obs, &intent);
            assert_never_two_writers(name, &obs, &plan);
            match expected {
                Bootstrap::Primary(p) => {
                    assert_eq!(plan.primary, Some(p), "{name}");
                    assert!(
                        plan.actions.contains(&Action::MakeWritable { ordinal: p }),
                        "{name}: {:?}",
                        plan.actions
                    );
                }
                Bootstrap::Withheld(reason, words) => {
                    assert_eq!(plan.primary, None, "{name}");
                    assert!(
                        !plan
                            .actions
                            .iter()
                            .any(|a| matches!(a, Action::MakeWritable { .. })),
                        "{name}: {:?}",
                        plan.actions
                    );
                    let Some(Finding::PrimaryWithheld { reason: r, message }) =
                        plan.findings.first()
                    else {
                        panic!("{name}: {:?}", plan.findings);
                    };
                    assert_eq!(*r, reason, "{name}");
                    for word in words {
                        assert!(message.contains(word), "{name}: {message:?} lacks {word:?}");
                    }
                }
            }
        }
    }

    /// Primary 0 crashed; 1 follows it; 2's data is being replaced by a clone (its replication
    /// stopped, its source still 0).
    fn primary_lost_during_a_clone(io_of_1: ThreadState) -> Observation {
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        let mut obs = Observation {
            members: vec![0, 1, 2],
            cloning: vec![2],
            ..observation(
                3,
                Some(0),
                vec![
                    instance(0, None, Some("primary")),
                    replica_following(1, 0, history),
                    fenced(2, 0, "aaaaaaaa-0000-0000-0000-000000000000:1-3", ""),
                ],
            )
        };
        obs.instances[0].pod.as_mut().unwrap().mysqld_started = false;
        if let MySqlObservation::Observed(s) = &mut obs.instances[1].mysql {
            s.replica.as_mut().unwrap().io_thread = io_of_1;
        }
        obs
    }

    #[test]
    fn a_primary_lost_during_a_clone_is_failed_over_without_waiting_for_the_clone() {
        let fence = decided(&primary_lost_during_a_clone(ThreadState::Running));
        assert_eq!(fence.actions, vec![Action::StopReplicaIo { ordinal: 1 }]);
        let promote = decided_after_fence(&primary_lost_during_a_clone(ThreadState::Stopped));
        assert_eq!(promote.failover_from, Some(0));
        assert_eq!(promote.primary, Some(1));
        assert!(
            !promote.actions.iter().any(|a| matches!(
                a,
                Action::CloneFrom { .. } | Action::ReplicateFrom { ordinal: 2, .. }
            )),
            "the instance being cloned is left to its clone: {:?}",
            promote.actions
        );
        // A clone recipient that does not answer meanwhile still holds nothing the others lack.
        let mut unanswering = primary_lost_during_a_clone(ThreadState::Stopped);
        unanswering.instances[2].mysql = MySqlObservation::Unreachable("cloning".into());
        assert_eq!(decided_after_fence(&unanswering).primary, Some(1));
    }

    #[test]
    fn a_clone_recipient_without_super_read_only_is_not_demoted_while_read_only_holds() {
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        let mut obs = Observation {
            cloning: vec![2],
            ..settled_trio()
        };
        fn recipient(obs: &mut Observation) -> &mut InstanceStatus {
            match &mut obs.instances[2].mysql {
                MySqlObservation::Observed(s) => s,
                _ => unreachable!(),
            }
        }
        recipient(&mut obs).super_read_only = false;
        recipient(&mut obs).gtid_executed = GtidSet::parse(history).unwrap();
        assert_eq!(decided(&obs).actions, vec![], "the clone goes on");
        // Writable for clients: demoted whatever it is doing.
        recipient(&mut obs).read_only = false;
        assert_eq!(
            decided(&obs).actions,
            vec![Action::ForceReadOnly { ordinal: 2 }]
        );
    }

    #[test]
    fn an_instance_being_cloned_is_left_alone_and_no_second_clone_starts() {
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        let obs = Observation {
            members: vec![0, 1, 2],
            cloning: vec![1],
            ..observation(
                3,
                Some(0),
                vec![
                    primary_with(0, 3, history),
                    instance(1, Some(true), Some("replica")),
                    instance(2, Some(true), Some("replica")),
                ],
            )
        };
        assert_eq!(decided(&obs).actions, vec![]);
    }

    #[test]
    fn a_withheld_choice_demotes_every_writable_instance() {
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        let obs = observation(
            2,
            None,
            vec![
                gtids(instance(0, Some(false), None), history, ""),
                gtids(
                    instance(1, Some(false), None),
                    "bbbbbbbb-0000-0000-0000-000000000000:1",
                    "",
                ),
            ],
        );
        let plan = decide(&obs, &Intent::default());
        assert_eq!(plan.primary, None);
        assert_eq!(
            plan.actions,
            vec![
                Action::ForceReadOnly { ordinal: 0 },
                Action::ForceReadOnly { ordinal: 1 }
            ]
        );
    }

    /// The recorded primary 0 answers with an empty data directory; 1 and 2 hold the history and
    /// replicate from 0 (their I/O threads as given).
    fn primary_lost_its_data(io: ThreadState) -> Observation {
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        let mut obs = Observation {
            members: vec![0, 1, 2],
            ..observation(
                3,
                Some(0),
                vec![
                    instance(0, Some(true), Some("primary")),
                    replica_following(1, 0, history),
                    replica_following(2, 0, history),
                ],
            )
        };
        for i in &mut obs.instances[1..] {
            if let MySqlObservation::Observed(s) = &mut i.mysql {
                s.replica.as_mut().unwrap().io_thread = io;
            }
        }
        obs
    }

    #[test]
    fn a_primary_that_lost_its_data_is_failed_over_at_once_and_never_made_writable() {
        let fence = decide(
            &primary_lost_its_data(ThreadState::Running),
            &Intent::default(),
        );
        assert_eq!(
            fence.actions,
            vec![
                Action::StopReplicaIo { ordinal: 1 },
                Action::StopReplicaIo { ordinal: 2 }
            ]
        );
        let promote = decide(
            &primary_lost_its_data(ThreadState::Stopped),
            &Intent {
                failover_underway: Some(0),
                ..Intent::default()
            },
        );
        assert_eq!(promote.failover_from, Some(0));
        assert_eq!(promote.primary, Some(1));
        assert!(
            !promote
                .actions
                .contains(&Action::MakeWritable { ordinal: 0 }),
            "{:?}",
            promote.actions
        );
    }

    #[test]
    fn a_primary_that_lost_its_data_stays_read_only_when_failover_is_off() {
        let obs = primary_lost_its_data(ThreadState::Stopped);
        let intent = Intent {
            failover: FailoverGate::Closed("automatic failover is off".into()),
            ..Intent::default()
        };
        let plan = decide(&obs, &intent);
        assert_eq!(plan.primary, None);
        assert!(
            !plan.actions.iter().any(|a| matches!(
                a,
                Action::MakeWritable { .. } | Action::RecordClusterIdentity { .. }
            )),
            "{:?}",
            plan.actions
        );
        assert!(
            matches!(&plan.findings[..], [Finding::FailoverBlocked { reason }]
                if reason.contains("no data") && reason.contains("automatic failover is off")),
            "{:?}",
            plan.findings
        );
    }

    #[test]
    fn a_single_instance_that_lost_its_data_is_not_made_writable() {
        let obs = Observation {
            members: vec![0],
            ..observation(1, Some(0), vec![instance(0, Some(true), Some("primary"))])
        };
        let plan = decided(&obs);
        assert_eq!(plan.primary, None);
        assert_eq!(plan.actions, vec![]);
    }

    #[test]
    fn an_instance_holding_another_clusters_history_is_left_alone() {
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        let mut obs = observation(
            3,
            Some(0),
            vec![
                primary_with(0, 3, history),
                replica_following(1, 0, history),
                gtids(
                    instance(2, Some(true), Some("replica")),
                    "cccccccc-0000-0000-0000-000000000000:1-3",
                    "",
                ),
            ],
        );
        for (i, uid) in obs
            .instances
            .iter_mut()
            .zip(["uid-a", "uid-a", "uid-other"])
        {
            if let MySqlObservation::Observed(s) = &mut i.mysql {
                s.cluster_identity = Some(uid.into());
            }
        }
        let plan = decided(&obs);
        assert_eq!(plan.actions, vec![]);
        assert_eq!(
            plan.findings,
            vec![Finding::ForeignData {
                ordinal: 2,
                identity: "uid-other".into()
            }]
        );
    }

    #[test]
    fn a_new_cluster_whose_first_pod_is_not_up_is_not_failed_over() {
        let obs = observation(
            3,
            Some(0),
            vec![
                instance(0, None, Some("primary")),
                instance(1, Some(true), Some("replica")),
                instance(2, Some(true), Some("replica")),
            ],
        );
        let plan = decided(&obs);
        assert!(plan.actions.is_empty());
        assert!(plan.findings.is_empty());
    }

    #[test]
    fn a_channel_less_protected_than_both_pods_allow_is_configured_again() {
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        let with_channel = |tls: ChannelTls, replica_has_certificate: bool| {
            let mut replica = replica_following(1, 0, history);
            status_mut(&mut replica)
                .replica
                .as_mut()
                .unwrap()
                .channel_tls = tls;
            replica.pod.as_mut().unwrap().serves_cluster_certificate = replica_has_certificate;
            observation(2, Some(0), vec![primary_with(0, 2, history), replica])
        };
        let repoint = Action::ReplicateFrom {
            ordinal: 1,
            source: 0,
        };
        for (channel, replica_has_certificate, repointed) in [
            (ChannelTls::Plain, true, true),
            (ChannelTls::Unverified, true, true),
            (ChannelTls::Verified, true, false),
            // A pod made before TLS has no CA file to check with: encrypted is all it can do.
            (ChannelTls::Plain, false, true),
            (ChannelTls::Unverified, false, false),
        ] {
            let plan = decided(&with_channel(channel, replica_has_certificate));
            assert_eq!(
                plan.actions.contains(&repoint),
                repointed,
                "{channel:?}, replica with the certificate: {replica_has_certificate}: {:?}",
                plan.actions
            );
        }
    }

    #[test]
    fn decide_scenarios() {
        for scenario in scenarios() {
            assert_eq!(
                decided(&scenario.observation).actions,
                scenario.expected,
                "scenario: {}",
                scenario.name
            );
        }
    }

    #[test]
    fn errant_transactions_are_reported() {
        let history = "aaaaaaaa-0000-0000-0000-000000000000:1-10";
        let obs = observation(
            2,
            Some(0),
            vec![
                primary_with(0, 2, history),
                gtids(
                    replica_following(1, 0, history),
                    &format!("{history},bbbbbbbb-0000-0000-0000-000000000000:1-2"),
                    "",
                ),
            ],
        );
        assert_eq!(
            decided(&obs).findings,
            vec![Finding::ErrantTransactions {
                ordinal: 1,
                gtids: "bbbbbbbb-0000-0000-0000-000000000000:1-2".into()
            }]
        );
    }

    #[test]
    fn semi_sync_waits_for_a_majority_including_the_primary() {
        let expected = [(1, 0), (2, 1), (3, 1), (4, 2), (5, 2), (9, 4)];
        for (instances, acks) in expected {
            assert_eq!(
                semi_sync_wait_count(instances),
                acks,
                "{instances} instances"
            );
            assert!(
                u32::from(instances) < 2 * (acks + 1),
                "primary + acks is a majority of {instances}"
            );
        }
    }

    /// Walks the plan's actions and fails if two instances are ever writable at once.
    fn assert_never_two_writers(name: &str, observation: &Observation, plan: &Plan) {
        let mut writable: Vec<u8> = observation
            .instances
            .iter()
            .filter(|i| matches!(&i.mysql, MySqlObservation::Observed(s) if s.is_writable()))
            .map(|i| i.ordinal)
            .collect();
        for action in &plan.actions {
            match action {
                Action::MakeReadOnly { ordinal } | Action::ForceReadOnly { ordinal } => {
                    writable.retain(|o| o != ordinal)
                }
                Action::MakeWritable { ordinal } => writable.push(*ordinal),
                _ => {}
            }
            assert!(
                writable.len() <= 1,
                "scenario {name}: two writers after {action:?}"
            );
        }
    }

    #[test]
    fn never_more_than_one_writable_after_any_action() {
        for scenario in scenarios() {
            let plan = decided(&scenario.observation);
            assert_never_two_writers(scenario.name, &scenario.observation, &plan);
        }
    }

    const HISTORY: &str = "aaaaaaaa-0000-0000-0000-000000000000:1-10";

    fn settled_trio() -> Observation {
        observation(
            3,
            Some(0),
            vec![
                primary_with(0, 3, HISTORY),
                replica_following(1, 0, HISTORY),
                replica_following(2, 0, HISTORY),
            ],
        )
    }

    fn wanting(primary: u8) -> Intent {
        Intent {
            desired_primary: Some(primary),
            ..Intent::default()
        }
    }

    #[test]
    fn switchover_demotes_first_then_catches_up_then_promotes_and_repoints() {
        let obs = settled_trio();
        let plan = decide(&obs, &wanting(1));
        assert_eq!(plan.primary, Some(1));
        assert_eq!(plan.switchover_from, Some(0));
        assert_eq!(
            plan.actions,
            vec![
                Action::MakeReadOnly { ordinal: 0 },
                Action::CatchUpWith {
                    ordinal: 1,
                    source: 0
                },
                Action::StopReplicating { ordinal: 1 },
                Action::EnableSemiSyncSource {
                    ordinal: 1,
                    wait_for_replica_count: 1
                },
                Action::MakeWritable { ordinal: 1 },
                label(1, Role::Primary),
                label(0, Role::Replica),
                Action::ReplicateFrom {
                    ordinal: 2,
                    source: 1
                },
                // Semi-sync off (up to a second) only now, after the promotion, and the old
                // primary re-pointed last.
                Action::DisableSemiSyncSource { ordinal: 0 },
                Action::ReplicateFrom {
                    ordinal: 0,
                    source: 1
                },
            ]
        );
        assert_never_two_writers("switchover", &obs, &plan);
    }

    #[test]
    fn a_scale_down_below_the_primary_switches_over_first() {
        let mut obs = settled_trio();
        obs.desired_instances = 2;
        obs.current_primary = Some(2);
        obs.instances = vec![
            replica_following(0, 2, HISTORY),
            replica_following(1, 2, HISTORY),
            primary_with(2, 3, HISTORY),
        ];
        let plan = decided(&obs);
        assert_eq!(plan.switchover_from, Some(2));
        assert_eq!(plan.primary, Some(0));
        assert_never_two_writers("scale-down", &obs, &plan);
    }

    /// The settled trio with each pod's template revision.
    fn trio_at_revisions(revisions: [&str; 3]) -> Observation {
        let mut obs = settled_trio();
        obs.update_revision = Some("r2".into());
        for (instance, revision) in obs.instances.iter_mut().zip(revisions) {
            instance.pod.as_mut().unwrap().revision = Some(revision.into());
        }
        obs
    }

    #[test]
    fn a_rollout_restarts_the_highest_replica_first() {
        let plan = decided(&trio_at_revisions(["r1", "r1", "r1"]));
        assert_eq!(plan.actions, vec![Action::RestartPod { ordinal: 2 }]);
    }

    #[test]
    fn a_rollout_goes_on_only_once_the_restarted_replica_is_ready() {
        let mut obs = trio_at_revisions(["r1", "r1", "r2"]);
        let pod = obs.instances[2].pod.as_mut().unwrap();
        pod.ready = false;
        pod.waiting_reason = Some("ImagePullBackOff: no such image".into());
        obs.instances[2].mysql = MySqlObservation::NotRunning;
        let plan = decided(&obs);
        assert_eq!(plan.actions, vec![]);
        assert!(matches!(
            &plan.findings[..],
            [Finding::RollingOut { message }] if message.contains("db-2") && message.contains("ImagePullBackOff")
        ));
        // Ready now: the next replica.
        let plan = decided(&trio_at_revisions(["r1", "r1", "r2"]));
        assert_eq!(plan.actions, vec![Action::RestartPod { ordinal: 1 }]);
    }

    #[test]
    fn a_replica_of_an_older_template_that_never_started_is_restarted_at_once() {
        // The spec was fixed after a bad image: db-2 runs revision r2 (broken), r3 is current.
        let mut obs = trio_at_revisions(["r1", "r1", "r2"]);
        obs.update_revision = Some("r3".into());
        obs.instances[2].pod.as_mut().unwrap().ready = false;
        obs.instances[2].mysql = MySqlObservation::NotRunning;
        let plan = decided(&obs);
        assert_eq!(plan.actions, vec![Action::RestartPod { ordinal: 2 }]);
    }

    #[test]
    fn a_rollout_reaching_the_primary_switches_over_once_then_restarts_the_old_primary() {
        let obs = trio_at_revisions(["r1", "r2", "r2"]);
        let plan = decided(&obs);
        assert_eq!(plan.switchover_from, Some(0));
        assert!(
            !plan
                .actions
                .iter()
                .any(|a| matches!(a, Action::RestartPod { .. }))
        );
        assert_never_two_writers("rollout switchover", &obs, &plan);
        // After the switchover db-0 is a ready replica of the older template: restarted.
        let new_primary = plan.primary.expect("a switchover names the new primary");
        let mut after = observation(
            3,
            Some(new_primary),
            vec![
                replica_following(0, new_primary, HISTORY),
                replica_following(1, new_primary, HISTORY),
                replica_following(2, new_primary, HISTORY),
            ],
        );
        after.instances[usize::from(new_primary)] = primary_with(new_primary, 3, HISTORY);
        after.update_revision = Some("r2".into());
        for (instance, revision) in after.instances.iter_mut().zip(["r1", "r2", "r2"]) {
            instance.pod.as_mut().unwrap().revision = Some(revision.into());
        }
        let plan = decided(&after);
        assert_eq!(plan.actions, vec![Action::RestartPod { ordinal: 0 }]);
    }

    #[test]
    fn a_single_instance_restarts_in_place() {
        let mut obs = observation(1, Some(0), vec![primary_with(0, 1, HISTORY)]);
        obs.update_revision = Some("r2".into());
        let plan = decided(&obs);
        assert_eq!(plan.actions, vec![Action::RestartPod { ordinal: 0 }]);
    }

    #[test]
    fn switchover_to_the_current_primary_changes_nothing() {
        let plan = decide(&settled_trio(), &wanting(0));
        assert_eq!(plan.actions, vec![]);
        assert_eq!(plan.switchover_from, None);
    }

    #[test]
    fn switchover_waits_until_the_target_is_a_healthy_replica() {
        let obs = observation(
            3,
            Some(0),
            vec![
                primary_with(0, 3, HISTORY),
                replica_following(1, 0, HISTORY),
                fenced(2, 0, HISTORY, HISTORY),
            ],
        );
        let plan = decide(&obs, &wanting(2));
        assert_eq!(plan.primary, Some(0));
        assert!(
            !plan
                .actions
                .iter()
                .any(|a| matches!(a, Action::MakeReadOnly { .. })),
            "{:?}",
            plan.actions
        );
        assert!(matches!(
            &plan.findings[..],
            [Finding::SwitchoverWaiting { reason }] if reason.contains("instance 2")
        ));
    }

    #[test]
    fn a_primary_pod_being_deleted_hands_over_to_the_replica_that_received_most() {
        let mut obs = observation(
            3,
            Some(0),
            vec![
                primary_with(0, 3, HISTORY),
                replica_following(1, 0, "aaaaaaaa-0000-0000-0000-000000000000:1-9"),
                replica_following(2, 0, HISTORY),
            ],
        );
        obs.instances[0].pod.as_mut().unwrap().terminating = true;
        let plan = decided(&obs);
        assert_eq!(plan.switchover_from, Some(0));
        assert_eq!(plan.primary, Some(2));
        assert_eq!(plan.actions[0], Action::MakeReadOnly { ordinal: 0 });
        // The leaving pod is neither re-pointed nor relabelled: it comes back as a new pod.
        assert!(!plan.actions.iter().any(|a| matches!(
            a,
            Action::ReplicateFrom { ordinal: 0, .. } | Action::SetRoleLabel { ordinal: 0, .. }
        )));
        assert!(plan.actions.contains(&Action::ReplicateFrom {
            ordinal: 1,
            source: 2
        }));
        assert_never_two_writers("drain", &obs, &plan);
    }

    fn primary_lost_trio() -> Observation {
        observation(
            3,
            Some(0),
            vec![
                instance(0, None, Some("primary")),
                replica_following(1, 0, HISTORY),
                replica_following(2, 0, HISTORY),
            ],
        )
    }

    #[test]
    fn an_unanswering_primary_whose_pod_runs_is_not_failed_over_before_the_threshold() {
        let intent = Intent {
            primary_failures: 2,
            failure_threshold: 3,
            ..Intent::default()
        };
        let plan = decide(&primary_lost_trio(), &intent);
        assert_eq!(plan.actions, vec![]);
        assert_eq!(
            plan.findings,
            vec![Finding::PrimaryUnresponsive {
                failures: 2,
                threshold: 3
            }]
        );
    }

    #[test]
    fn a_primary_known_not_to_run_is_lost_at_once() {
        let first_failure = Intent {
            primary_failures: 1,
            failure_threshold: 3,
            ..Intent::default()
        };
        let not_running = |obs: &mut Observation| {
            obs.instances[0].pod.as_mut().unwrap().mysqld_started = false;
        };
        let refusing = |obs: &mut Observation| {
            obs.instances[0].mysql = MySqlObservation::NotListening("Connection refused".into());
        };
        /// Makes the lost-primary trio say that its primary cannot be running.
        type Evidence = fn(&mut Observation);
        let evidence: [(&str, Evidence); 2] = [
            ("its mysqld container is not running", not_running),
            ("its address refuses connections", refusing),
        ];
        for (name, make) in evidence {
            let mut obs = primary_lost_trio();
            make(&mut obs);
            let plan = decide(&obs, &first_failure);
            assert_eq!(
                plan.actions,
                vec![
                    Action::StopReplicaIo { ordinal: 1 },
                    Action::StopReplicaIo { ordinal: 2 }
                ],
                "{name}"
            );
            assert_eq!(
                plan.failover_underway,
                Some(0),
                "{name}: the fence begins a failover"
            );
        }
        // A timeout is what a network blip looks like: it waits for the threshold.
        let mut silent = primary_lost_trio();
        silent.instances[0].mysql = MySqlObservation::Unreachable("timed out".into());
        let plan = decide(&silent, &first_failure);
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(plan.failover_underway, None);
    }

    #[test]
    fn a_force_deleted_primary_is_demoted_at_its_old_address_before_the_fence() {
        let mut obs = primary_lost_trio();
        obs.instances[0].pod = None;
        let intent = Intent {
            stale_primary_address: Some("10.244.0.9".into()),
            ..Intent::default()
        };
        let plan = decide(&obs, &intent);
        assert_eq!(
            plan.actions,
            vec![
                Action::DemoteAtAddress {
                    ordinal: 0,
                    address: "10.244.0.9".into()
                },
                Action::StopReplicaIo { ordinal: 1 },
                Action::StopReplicaIo { ordinal: 2 }
            ]
        );
    }

    #[test]
    fn a_closed_failover_gate_blocks_even_the_fence() {
        let mut obs = primary_lost_trio();
        obs.instances[0].pod = None;
        let intent = Intent {
            failover: FailoverGate::Closed("automatic failover is off".into()),
            ..Intent::default()
        };
        let plan = decide(&obs, &intent);
        assert_eq!(plan.actions, vec![]);
        assert_eq!(
            plan.findings,
            vec![Finding::FailoverBlocked {
                reason: "automatic failover is off".into()
            }]
        );
    }

    #[test]
    fn a_promotion_whose_status_was_never_recorded_is_adopted() {
        // The operator died after making instance 1 writable, before recording it.
        let obs = observation(
            3,
            Some(0),
            vec![
                instance(0, None, Some("primary")),
                primary_with(1, 3, HISTORY),
                fenced(2, 0, HISTORY, HISTORY),
            ],
        );
        let plan = decided(&obs);
        assert_eq!(plan.primary, Some(1));
        assert_eq!(plan.failover_from, None);
        assert!(plan.actions.contains(&Action::ReplicateFrom {
            ordinal: 2,
            source: 1
        }));
    }

    #[test]
    fn a_recorded_primary_that_is_still_a_replica_applies_its_relay_log_before_forgetting_it() {
        // The operator recorded instance 1 as the new primary and died before promoting it.
        let obs = observation(
            3,
            Some(1),
            vec![
                instance(0, None, Some("primary")),
                fenced(1, 0, "aaaaaaaa-0000-0000-0000-000000000000:1-8", HISTORY),
                fenced(2, 0, HISTORY, HISTORY),
            ],
        );
        let plan = decided(&obs);
        assert_eq!(plan.primary, Some(1));
        assert_eq!(
            &plan.actions[..3],
            &[
                Action::WaitForTransactions {
                    ordinal: 1,
                    gtids: GtidSet::parse(HISTORY).unwrap()
                },
                Action::StopReplicating { ordinal: 1 },
                Action::EnableSemiSyncSource {
                    ordinal: 1,
                    wait_for_replica_count: 1
                },
            ]
        );
    }

    #[test]
    fn a_replica_with_errant_transactions_is_recloned_when_a_person_asks() {
        let errant = "bbbbbbbb-0000-0000-0000-000000000000:1";
        let mut obs = observation(
            2,
            Some(0),
            vec![
                primary_with(0, 2, HISTORY),
                gtids(
                    replica_following(1, 0, HISTORY),
                    &format!("{HISTORY},{errant}"),
                    "",
                ),
            ],
        );
        obs.instances[1].pod.as_mut().unwrap().reclone_requested = true;
        let plan = decided(&obs);
        assert_eq!(
            plan.actions,
            vec![
                Action::CloneFrom {
                    ordinal: 1,
                    donor: 0,
                    discarded: Some(GtidSet::parse(errant).unwrap())
                },
                Action::ClearRecloneRequest { ordinal: 1 },
            ]
        );
    }

    #[test]
    fn semi_sync_is_on_before_a_primary_with_history_becomes_writable() {
        for scenario in scenarios() {
            let plan = decided(&scenario.observation);
            let writable_at = plan
                .actions
                .iter()
                .position(|a| matches!(a, Action::MakeWritable { .. }));
            let semi_sync_at = plan
                .actions
                .iter()
                .position(|a| matches!(a, Action::EnableSemiSyncSource { .. }));
            let has_history = plan.primary.is_some_and(|p| {
                matches!(
                    &scenario.observation.instances[usize::from(p)].mysql,
                    MySqlObservation::Observed(s) if !s.gtid_executed.is_empty()
                )
            });
            if let (Some(w), Some(s), true) = (writable_at, semi_sync_at, has_history) {
                assert!(
                    s < w,
                    "scenario {}: writable before semi-sync",
                    scenario.name
                );
            }
        }
    }
}
