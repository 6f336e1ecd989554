//! The status step (pure): conditions and per-instance state from what was applied and observed.
//!
//! Conditions follow the Kubernetes API conventions: `lastTransitionTime` changes only when the
//! condition's status changes, and every condition carries the generation it describes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::validate::ValidatedCluster;
use crate::api::{InstanceStatus, MySQLClusterStatus};
use crate::clustering::{MySqlObservation, Observation, Plan};
use crate::resources::naming;

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const RECONCILE_SUCCESS: &str = "ReconcileSuccess";

/// The status after a successful reconcile.
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
        .map(|i| InstanceStatus {
            name: naming::pod(&cluster.name, i.ordinal),
            role: match (&i.mysql, i.ordinal == plan.primary) {
                (MySqlObservation::Observed(_), true) => naming::ROLE_PRIMARY.into(),
                (MySqlObservation::Observed(_), false) => naming::ROLE_REPLICA.into(),
                _ => "unknown".into(),
            },
            ready: i.pod.as_ref().is_some_and(|p| p.ready),
        })
        .collect();
    let ready_instances = instances.iter().filter(|i| i.ready).count() as i32;
    let primary = observation
        .instances
        .iter()
        .find(|i| i.ordinal == plan.primary);
    // The plan ran to completion before the status is computed, so a reachable primary is writable.
    let primary_reachable =
        primary.is_some_and(|p| matches!(p.mysql, MySqlObservation::Observed(_)));
    let primary_ready = primary
        .and_then(|p| p.pod.as_ref())
        .is_some_and(|p| p.ready);
    let desired = i32::from(cluster.instances);
    let all_ready = ready_instances == desired && primary_ready;
    let was_ready = previous
        .map(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == READY && c.status == "True")
        })
        .unwrap_or(false)
        || previous
            .map(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == DEGRADED && c.status == "True")
            })
            .unwrap_or(false);

    let not_ready: Vec<&str> = instances
        .iter()
        .filter(|i| !i.ready)
        .map(|i| i.name.as_str())
        .collect();
    let generation = cluster.generation;
    let mut conditions = previous.map(|s| s.conditions.clone()).unwrap_or_default();
    let mut set = |type_: &str, ok: bool, reason: &str, message: String| {
        set_condition(
            &mut conditions,
            type_,
            ok,
            reason,
            message,
            generation,
            now.clone(),
        );
    };

    if all_ready {
        set(
            READY,
            true,
            "AllInstancesReady",
            format!(
                "{ready_instances}/{desired} instances ready, primary {} writable",
                naming::pod(&cluster.name, plan.primary)
            ),
        );
        set(
            PROGRESSING,
            false,
            "Stable",
            "the cluster matches its spec".into(),
        );
        set(
            DEGRADED,
            false,
            "AllInstancesReady",
            "every instance is ready".into(),
        );
    } else {
        let (reason, message) = if !primary_reachable {
            (
                "PrimaryUnavailable",
                format!(
                    "primary {} is not reachable yet",
                    naming::pod(&cluster.name, plan.primary)
                ),
            )
        } else {
            (
                "InstancesNotReady",
                format!(
                    "{ready_instances}/{desired} instances ready; waiting for {}",
                    not_ready.join(", ")
                ),
            )
        };
        set(READY, false, reason, message.clone());
        if was_ready {
            set(DEGRADED, true, reason, message.clone());
            set(
                PROGRESSING,
                false,
                "Recovering",
                "the operator is waiting for instances to recover".into(),
            );
        } else {
            set(PROGRESSING, true, "Creating", message);
            set(
                DEGRADED,
                false,
                "Creating",
                "the cluster has not been ready yet".into(),
            );
        }
    }
    set(
        RECONCILE_SUCCESS,
        true,
        "ReconcileSucceeded",
        "the last reconcile succeeded".into(),
    );

    MySQLClusterStatus {
        observed_generation: generation,
        conditions,
        current_primary: primary_reachable.then(|| naming::pod(&cluster.name, plan.primary)),
        ready_instances,
        instances_summary: Some(format!("{ready_instances}/{desired}")),
        instances,
        version: primary.and_then(|p| match &p.mysql {
            MySqlObservation::Observed(s) => Some(s.version.clone()),
            _ => None,
        }),
    }
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
        RECONCILE_SUCCESS,
        false,
        reason,
        message,
        generation,
        now,
    );
    status
}

/// Upserts a condition, keeping `lastTransitionTime` unless the status flips.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Time,
) {
    let status = if ok { "True" } else { "False" };
    let transition = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(now);
    let condition = Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: transition,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => *existing = condition,
        None => conditions.push(condition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clustering::decide;
    use crate::clustering::observe::tests::{instance, observation};
    use crate::resources::tests::validated;

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).unwrap())
    }

    fn condition<'a>(status: &'a MySQLClusterStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
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
    fn all_instances_ready_means_ready_with_the_primary_named() {
        let obs = ready_observation();
        let status = compute_status(&validated("db", 3), &obs, &decide(&obs), None, at(100));
        assert_eq!(condition(&status, READY).status, "True");
        assert_eq!(condition(&status, PROGRESSING).status, "False");
        assert_eq!(status.current_primary.as_deref(), Some("db-0"));
        assert_eq!(status.ready_instances, 3);
        assert_eq!(status.instances_summary.as_deref(), Some("3/3"));
        assert_eq!(status.instances[1].role, "replica");
        assert_eq!(status.observed_generation, Some(1));
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
        let status = compute_status(&validated("db", 3), &obs, &decide(&obs), None, at(100));
        assert_eq!(condition(&status, READY).status, "False");
        assert_eq!(condition(&status, READY).reason, "PrimaryUnavailable");
        assert_eq!(condition(&status, PROGRESSING).status, "True");
        assert_eq!(condition(&status, DEGRADED).status, "False");
        assert_eq!(status.current_primary, None);
    }

    #[test]
    fn losing_an_instance_after_ready_is_degraded() {
        let cluster = validated("db", 3);
        let obs = ready_observation();
        let ready = compute_status(&cluster, &obs, &decide(&obs), None, at(100));
        let broken = observation(
            3,
            Some(0),
            vec![
                instance(0, Some(false), Some("primary")),
                instance(1, None, Some("replica")),
                instance(2, Some(true), Some("replica")),
            ],
        );
        let status = compute_status(&cluster, &broken, &decide(&broken), Some(&ready), at(200));
        assert_eq!(condition(&status, DEGRADED).status, "True");
        assert!(condition(&status, DEGRADED).message.contains("db-1"));
        assert_eq!(condition(&status, READY).last_transition_time, at(200));
    }

    #[test]
    fn transition_time_is_kept_when_the_status_does_not_change() {
        let cluster = validated("db", 3);
        let obs = ready_observation();
        let first = compute_status(&cluster, &obs, &decide(&obs), None, at(100));
        let second = compute_status(&cluster, &obs, &decide(&obs), Some(&first), at(200));
        assert_eq!(
            first, second,
            "a steady cluster yields an identical status, so no write is made"
        );
    }

    #[test]
    fn a_failed_reconcile_only_flips_reconcile_success() {
        let cluster = validated("db", 3);
        let obs = ready_observation();
        let ready = compute_status(&cluster, &obs, &decide(&obs), None, at(100));
        let failed = failed_status(
            Some(&ready),
            Some(2),
            "ApplyFailed",
            "failed to apply".into(),
            at(300),
        );
        assert_eq!(condition(&failed, RECONCILE_SUCCESS).status, "False");
        assert_eq!(condition(&failed, RECONCILE_SUCCESS).reason, "ApplyFailed");
        assert_eq!(
            condition(&failed, RECONCILE_SUCCESS).last_transition_time,
            at(300)
        );
        assert_eq!(condition(&failed, READY), condition(&ready, READY));
    }
}
