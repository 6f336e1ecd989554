//! The lost nodes' part of the status (pure): `Progressing` says which instance waits on a lost
//! node and until when, or which one is being replaced; a rollout that waits says so after its
//! own message.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::decide::{LostNodePlan, Replacement};
use crate::api::MySQLClusterStatus;
use crate::api::conditions::{ConditionType, set_condition};

/// The reason `Progressing` has while an instance is on a lost node.
pub const INSTANCE_ON_LOST_NODE: &str = "InstanceOnLostNode";

/// Writes the plan into a status computed by the clustering step; a plan with no lost instance
/// leaves the status as it is.
pub fn record_lost_nodes(
    status: &mut MySQLClusterStatus,
    plan: &LostNodePlan,
    generation: Option<i64>,
    now: Time,
) {
    let mut notes: Vec<String> = Vec::new();
    if let Some(replacement) = &plan.replace {
        let (pod, node) = match replacement {
            Replacement::Pod { pod, node, .. } | Replacement::ClaimAndPod { pod, node, .. } => {
                (pod, node)
            }
        };
        notes.push(format!("{pod} on lost node {node}: being replaced"));
    }
    notes.extend(
        plan.waiting
            .iter()
            .map(|l| format!("{} on lost node {}: {}", l.pod, l.node, l.why.describe())),
    );
    if notes.is_empty() {
        return;
    }
    let lost = notes.join("; ");
    let rolling_out = status
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Progressing.as_str() && c.reason == "RollingOut")
        .map(|c| c.message.clone());
    let (reason, message) = match rolling_out {
        Some(rollout) => ("RollingOut", format!("{rollout}; {lost}")),
        None => (INSTANCE_ON_LOST_NODE, lost),
    };
    set_condition(
        &mut status.conditions,
        ConditionType::Progressing,
        true,
        reason,
        message,
        generation,
        now,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lost_nodes::decide::{LostInstance, Waiting};

    fn now() -> Time {
        Time("2026-11-30T10:00:00Z".parse().unwrap())
    }

    fn progressing(status: &MySQLClusterStatus) -> (String, String, String) {
        let c = status
            .conditions
            .iter()
            .find(|c| c.type_ == ConditionType::Progressing.as_str())
            .expect("Progressing is set");
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }

    fn waiting() -> LostNodePlan {
        LostNodePlan {
            replace: None,
            waiting: vec![LostInstance {
                pod: "db-2".into(),
                node: "n2".into(),
                why: Waiting::Grace("2026-11-30T10:02:00Z".parse().unwrap()),
            }],
        }
    }

    #[test]
    fn an_instance_on_a_lost_node_makes_the_cluster_progressing_with_when_it_is_replaced() {
        let mut status = MySQLClusterStatus::default();
        set_condition(
            &mut status.conditions,
            ConditionType::Progressing,
            false,
            "Stable",
            "the cluster matches its spec".into(),
            Some(1),
            now(),
        );
        record_lost_nodes(&mut status, &waiting(), Some(1), now());
        assert_eq!(
            progressing(&status),
            (
                "True".into(),
                INSTANCE_ON_LOST_NODE.into(),
                "db-2 on lost node n2: replaced at 2026-11-30T10:02:00Z unless its node comes back"
                    .into()
            )
        );
    }

    #[test]
    fn a_rollout_that_waits_keeps_its_reason_and_says_for_what() {
        let mut status = MySQLClusterStatus::default();
        set_condition(
            &mut status.conditions,
            ConditionType::Progressing,
            true,
            "RollingOut",
            "1/3 pods updated".into(),
            Some(1),
            now(),
        );
        record_lost_nodes(&mut status, &waiting(), Some(1), now());
        let (state, reason, message) = progressing(&status);
        assert_eq!((state.as_str(), reason.as_str()), ("True", "RollingOut"));
        assert!(
            message.starts_with("1/3 pods updated; db-2 on lost node n2: replaced at"),
            "{message}"
        );
    }

    #[test]
    fn no_lost_instance_leaves_the_status_alone() {
        let mut status = MySQLClusterStatus::default();
        record_lost_nodes(&mut status, &LostNodePlan::default(), Some(1), now());
        assert!(status.conditions.is_empty());
    }
}
