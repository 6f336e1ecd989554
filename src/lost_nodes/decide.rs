//! Which instances of lost nodes to replace (pure): from what was read of the nodes under the
//! cluster's pods that are not Ready, their volumes, and `spec.failover`.
//!
//! A node that stops answering leaves its pods as the API server last knew them: Running, or
//! Terminating forever once evicted. The StatefulSet controller never replaces them, so without
//! this step the instance stays missing and rollouts wait for it. Rules (docs/failure-scenarios.md):
//! - Only an instance whose node has not been Ready for `after` (or whose Node object is gone)
//!   is replaced, one per round.
//! - Never the recorded primary: the failover moves the primary first (it does not wait for
//!   this step, which only restores the instance count), and a cluster with no primary, or one
//!   on a lost node too, is left alone: its data may be the only copy of acknowledged writes.
//! - An instance the StatefulSet is removing (a scale-down) only has its pod deleted: what
//!   becomes of its claim is the scale-down's business.
//! - A node-bound volume (a local disk, bound to the lost node) cannot follow the pod: its
//!   claim is deleted with the pod, and the instance comes back empty elsewhere and is cloned
//!   from the primary. A volume that can move stays: only the pod is deleted, and its successor
//!   mounts the same data on another node.

use std::time::Duration;

use jiff::Timestamp;

/// `spec.failover`'s rules for lost nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LostNodePolicy {
    /// Replace instances of lost nodes (`replaceLostInstances`); off, they are only reported.
    pub replace: bool,
    /// How long a node is not Ready before its instance is replaced (`lostNodeSeconds`).
    pub after: Duration,
}

impl Default for LostNodePolicy {
    fn default() -> Self {
        Self {
            replace: true,
            after: Duration::from_secs(120),
        }
    }
}

/// What the API server says of the node a pod was scheduled to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeState {
    Ready,
    /// Its Ready condition is False or Unknown, since then.
    NotReady {
        since: Timestamp,
    },
    /// The Node object was deleted (a machine removed from the cluster).
    Gone,
}

/// Where an instance's data volume can be mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeReach {
    /// Only on the node it was made on (its PersistentVolume requires that hostname).
    NodeBound,
    /// Anywhere its PersistentVolume allows besides that one node (network storage).
    Movable,
}

/// One instance whose pod is not Ready, with its node and volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceOnNode {
    pub ordinal: u8,
    pub pod: String,
    /// The pod is deleted only if it is still this one (not a successor of the same name).
    pub pod_uid: String,
    pub node: String,
    pub node_state: NodeState,
    /// `None` when the node is Ready (its volume was not looked at) or the claim is not bound.
    pub volume: Option<VolumeReach>,
    pub claim: String,
    /// Its ordinal is at or above `spec.instances`: a scale-down removes it.
    pub leaving: bool,
}

/// Remove what keeps the instance on its lost node, so that the StatefulSet recreates it on
/// another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replacement {
    /// Delete the pod at once (its kubelet cannot confirm a graceful deletion).
    Pod {
        ordinal: u8,
        pod: String,
        pod_uid: String,
        node: String,
    },
    /// Delete the node-bound claim, then the pod: the instance starts empty and is cloned.
    ClaimAndPod {
        ordinal: u8,
        pod: String,
        pod_uid: String,
        claim: String,
        node: String,
    },
}

/// An instance on a lost node that is not replaced (yet), and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostInstance {
    pub pod: String,
    pub node: String,
    pub why: Waiting,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// The node may still come back: replaced at this time if it does not.
    Grace(Timestamp),
    /// `replaceLostInstances` is false.
    ReplacementOff,
    /// It is the primary: the failover moves the primary first.
    IsPrimary,
    /// There is no primary on a live node to clone from or to keep the data safe.
    NoPrimary,
    /// Another instance is replaced this round.
    OneAtATime,
}

/// What to do about instances on lost nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LostNodePlan {
    pub replace: Option<Replacement>,
    pub waiting: Vec<LostInstance>,
}

/// Decides from the instances whose pods are not Ready (`instances`, by ordinal) which one to
/// replace now.
pub fn decide_lost_nodes(
    instances: &[InstanceOnNode],
    primary: Option<u8>,
    policy: LostNodePolicy,
    now: Timestamp,
) -> LostNodePlan {
    let lost_for = |state: &NodeState| match state {
        NodeState::Ready => None,
        NodeState::Gone => Some(Duration::MAX),
        NodeState::NotReady { since } => Some(
            now.duration_since(*since)
                .try_into()
                .unwrap_or(Duration::ZERO),
        ),
    };
    let lost: Vec<(&InstanceOnNode, Duration)> = instances
        .iter()
        .filter_map(|i| lost_for(&i.node_state).map(|d| (i, d)))
        .collect();
    let primary_lost = primary.is_some_and(|p| lost.iter().any(|(i, _)| i.ordinal == p));
    let mut plan = LostNodePlan::default();
    for (instance, lost_for) in lost {
        let why = if Some(instance.ordinal) == primary {
            Some(Waiting::IsPrimary)
        } else if !policy.replace {
            Some(Waiting::ReplacementOff)
        } else if primary.is_none() || primary_lost {
            Some(Waiting::NoPrimary)
        } else if lost_for < policy.after {
            Some(Waiting::Grace(
                now + (policy.after - lost_for).min(Duration::from_secs(86_400 * 365)),
            ))
        } else if plan.replace.is_some() {
            Some(Waiting::OneAtATime)
        } else {
            None
        };
        match why {
            Some(why) => plan.waiting.push(LostInstance {
                pod: instance.pod.clone(),
                node: instance.node.clone(),
                why,
            }),
            None => plan.replace = Some(replacement(instance)),
        }
    }
    plan
}

fn replacement(instance: &InstanceOnNode) -> Replacement {
    let (ordinal, pod, pod_uid, node) = (
        instance.ordinal,
        instance.pod.clone(),
        instance.pod_uid.clone(),
        instance.node.clone(),
    );
    match instance.volume {
        Some(VolumeReach::NodeBound) if !instance.leaving => Replacement::ClaimAndPod {
            ordinal,
            pod,
            pod_uid,
            claim: instance.claim.clone(),
            node,
        },
        // A claim that is not bound holds no data to keep or lose; a leaving instance's claim
        // is left to the scale-down.
        Some(_) | None => Replacement::Pod {
            ordinal,
            pod,
            pod_uid,
            node,
        },
    }
}

impl Waiting {
    /// For the status and events: why the instance is not replaced yet.
    pub fn describe(&self) -> String {
        match self {
            // A time rather than a countdown: the status says the same thing every round.
            Waiting::Grace(at) => format!("replaced at {at:.0} unless its node comes back"),
            Waiting::ReplacementOff => {
                "not replaced: spec.failover.replaceLostInstances is false".into()
            }
            Waiting::IsPrimary => "the primary: a failover moves it first".into(),
            Waiting::NoPrimary => "not replaced while no primary runs on a live node".into(),
            Waiting::OneAtATime => "waits for another instance's replacement".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-30T10:00:00Z";

    fn at(seconds_ago: i64) -> Timestamp {
        NOW.parse::<Timestamp>().unwrap() - jiff::SignedDuration::from_secs(seconds_ago)
    }

    fn instance(ordinal: u8, state: NodeState, volume: Option<VolumeReach>) -> InstanceOnNode {
        InstanceOnNode {
            ordinal,
            pod: format!("db-{ordinal}"),
            pod_uid: format!("uid-{ordinal}"),
            node: format!("node-{ordinal}"),
            node_state: state,
            volume,
            claim: format!("data-db-{ordinal}"),
            leaving: false,
        }
    }

    fn policy() -> LostNodePolicy {
        LostNodePolicy {
            replace: true,
            after: Duration::from_secs(60),
        }
    }

    fn decide(
        instances: &[InstanceOnNode],
        primary: Option<u8>,
        policy: LostNodePolicy,
    ) -> LostNodePlan {
        decide_lost_nodes(instances, primary, policy, NOW.parse().unwrap())
    }

    fn lost(seconds_ago: i64) -> NodeState {
        NodeState::NotReady {
            since: at(seconds_ago),
        }
    }

    #[test]
    fn a_replica_lost_longer_than_the_grace_is_replaced_with_its_node_bound_claim() {
        let plan = decide(
            &[instance(1, lost(61), Some(VolumeReach::NodeBound))],
            Some(0),
            policy(),
        );
        assert_eq!(
            plan.replace,
            Some(Replacement::ClaimAndPod {
                ordinal: 1,
                pod: "db-1".into(),
                pod_uid: "uid-1".into(),
                claim: "data-db-1".into(),
                node: "node-1".into()
            })
        );
        assert!(plan.waiting.is_empty());
    }

    #[test]
    fn a_movable_volume_stays_and_only_the_pod_is_deleted() {
        for volume in [Some(VolumeReach::Movable), None] {
            let plan = decide(&[instance(2, lost(600), volume)], Some(0), policy());
            assert_eq!(
                plan.replace,
                Some(Replacement::Pod {
                    ordinal: 2,
                    pod: "db-2".into(),
                    pod_uid: "uid-2".into(),
                    node: "node-2".into()
                }),
                "{volume:?}"
            );
        }
    }

    #[test]
    fn an_instance_a_scale_down_removes_has_only_its_pod_deleted() {
        let leaving = InstanceOnNode {
            leaving: true,
            ..instance(3, lost(600), Some(VolumeReach::NodeBound))
        };
        let plan = decide(&[leaving], Some(0), policy());
        assert!(
            matches!(plan.replace, Some(Replacement::Pod { ordinal: 3, .. })),
            "{plan:?}"
        );
    }

    #[test]
    fn a_deleted_node_counts_as_lost_at_once() {
        let plan = decide(
            &[instance(1, NodeState::Gone, Some(VolumeReach::NodeBound))],
            Some(0),
            policy(),
        );
        assert!(matches!(
            plan.replace,
            Some(Replacement::ClaimAndPod { ordinal: 1, .. })
        ));
    }

    #[test]
    fn what_is_not_replaced_says_why() {
        /// Name, instances not Ready, the primary, the policy, and why each is not replaced.
        type Case = (
            &'static str,
            Vec<InstanceOnNode>,
            Option<u8>,
            LostNodePolicy,
            Vec<Waiting>,
        );
        let cases: Vec<Case> = vec![
            (
                "a node Ready is not lost (a pod restarting)",
                vec![instance(1, NodeState::Ready, None)],
                Some(0),
                policy(),
                vec![],
            ),
            (
                "within the grace",
                vec![instance(1, lost(20), Some(VolumeReach::NodeBound))],
                Some(0),
                policy(),
                vec![Waiting::Grace(at(-40))],
            ),
            (
                "the primary is never replaced here",
                vec![instance(0, lost(600), Some(VolumeReach::NodeBound))],
                Some(0),
                policy(),
                vec![Waiting::IsPrimary],
            ),
            (
                "replacement off",
                vec![instance(1, lost(600), Some(VolumeReach::NodeBound))],
                Some(0),
                LostNodePolicy {
                    replace: false,
                    ..policy()
                },
                vec![Waiting::ReplacementOff],
            ),
            (
                "no primary: the replica may hold the only copy",
                vec![instance(1, lost(600), Some(VolumeReach::NodeBound))],
                None,
                policy(),
                vec![Waiting::NoPrimary],
            ),
            (
                "the primary lost too",
                vec![
                    instance(0, lost(600), None),
                    instance(1, lost(600), Some(VolumeReach::NodeBound)),
                ],
                Some(0),
                policy(),
                vec![Waiting::IsPrimary, Waiting::NoPrimary],
            ),
        ];
        for (name, instances, primary, policy, waiting) in cases {
            let plan = decide(&instances, primary, policy);
            assert_eq!(plan.replace, None, "{name}");
            let why: Vec<Waiting> = plan.waiting.into_iter().map(|w| w.why).collect();
            assert_eq!(why, waiting, "{name}");
        }
    }

    #[test]
    fn one_instance_is_replaced_per_round() {
        let plan = decide(
            &[
                instance(1, lost(600), Some(VolumeReach::NodeBound)),
                instance(2, lost(600), Some(VolumeReach::NodeBound)),
            ],
            Some(0),
            policy(),
        );
        assert!(matches!(
            plan.replace,
            Some(Replacement::ClaimAndPod { ordinal: 1, .. })
        ));
        assert_eq!(plan.waiting.len(), 1);
        assert_eq!(plan.waiting[0].why, Waiting::OneAtATime);
    }

    #[test]
    fn a_node_lost_just_now_waits_the_whole_grace() {
        let plan = decide(
            &[instance(1, lost(0), Some(VolumeReach::NodeBound))],
            Some(0),
            policy(),
        );
        assert_eq!(plan.waiting[0].why, Waiting::Grace(at(-60)));
        // A clock behind the node's transition: not lost for a negative time.
        let plan = decide(
            &[instance(1, lost(-5), Some(VolumeReach::NodeBound))],
            Some(0),
            policy(),
        );
        assert_eq!(plan.waiting[0].why, Waiting::Grace(at(-60)));
        assert_eq!(
            plan.waiting[0].why.describe(),
            "replaced at 2026-11-30T10:01:00Z unless its node comes back"
        );
    }
}
