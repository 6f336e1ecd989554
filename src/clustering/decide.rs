//! The pure decision: from what was observed, which instance is primary and what must change.

use super::observe::{MySqlObservation, Observation};

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
    /// Set `super_read_only` on an instance that must not take writes.
    MakeReadOnly { ordinal: u8 },
    /// Lift `super_read_only` on the primary.
    MakeWritable { ordinal: u8 },
    /// Move the pod's role label, which the client Services select on.
    SetRoleLabel { ordinal: u8, role: Role },
}

/// What `decide` concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The instance that is, or is about to be, the primary.
    pub primary: u8,
    /// Changes in the order they must be made: every demotion before any promotion, so two
    /// instances are never writable at once.
    pub actions: Vec<Action>,
}

/// Decides the primary and the changes that bring every instance in line with its role.
///
/// Until replication exists (see `docs/clustering.md`) the primary is the one the status
/// recorded, or instance 0 for a new cluster.
pub fn decide(observation: &Observation) -> Plan {
    let primary = observation
        .current_primary
        .filter(|p| *p < observation.desired_instances)
        .unwrap_or(0);
    let mut demotions = Vec::new();
    let mut promotions = Vec::new();
    let mut labels = Vec::new();

    for instance in &observation.instances {
        let role = if instance.ordinal == primary {
            Role::Primary
        } else {
            Role::Replica
        };
        if let MySqlObservation::Observed(status) = &instance.mysql {
            match role {
                Role::Replica if status.is_writable() || !status.super_read_only => {
                    demotions.push(Action::MakeReadOnly {
                        ordinal: instance.ordinal,
                    })
                }
                Role::Primary if !status.is_writable() => promotions.push(Action::MakeWritable {
                    ordinal: instance.ordinal,
                }),
                _ => {}
            }
        }
        if let Some(pod) = &instance.pod
            && pod.role_label.as_deref() != Some(role.label())
            && !pod.terminating
        {
            labels.push(Action::SetRoleLabel {
                ordinal: instance.ordinal,
                role,
            });
        }
    }

    let mut actions = demotions;
    actions.extend(promotions);
    actions.extend(labels);
    Plan { primary, actions }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clustering::observe::tests::{instance, observation};

    struct Scenario {
        name: &'static str,
        observation: Observation,
        expected: Plan,
    }

    fn scenarios() -> Vec<Scenario> {
        vec![
            Scenario {
                name: "new single instance: make it writable and label it primary",
                observation: observation(1, None, vec![instance(0, Some(true), None)]),
                expected: Plan {
                    primary: 0,
                    actions: vec![
                        Action::MakeWritable { ordinal: 0 },
                        Action::SetRoleLabel {
                            ordinal: 0,
                            role: Role::Primary,
                        },
                    ],
                },
            },
            Scenario {
                name: "settled cluster: nothing to do",
                observation: observation(
                    3,
                    Some(0),
                    vec![
                        instance(0, Some(false), Some("primary")),
                        instance(1, Some(true), Some("replica")),
                        instance(2, Some(true), Some("replica")),
                    ],
                ),
                expected: Plan {
                    primary: 0,
                    actions: vec![],
                },
            },
            Scenario {
                name: "a writable non-primary is demoted before the primary is promoted",
                observation: observation(
                    2,
                    Some(0),
                    vec![
                        instance(0, Some(true), Some("primary")),
                        instance(1, Some(false), Some("replica")),
                    ],
                ),
                expected: Plan {
                    primary: 0,
                    actions: vec![
                        Action::MakeReadOnly { ordinal: 1 },
                        Action::MakeWritable { ordinal: 0 },
                    ],
                },
            },
            Scenario {
                name: "unreachable instances are labelled but not touched over SQL",
                observation: observation(
                    2,
                    None,
                    vec![instance(0, None, None), instance(1, None, None)],
                ),
                expected: Plan {
                    primary: 0,
                    actions: vec![
                        Action::SetRoleLabel {
                            ordinal: 0,
                            role: Role::Primary,
                        },
                        Action::SetRoleLabel {
                            ordinal: 1,
                            role: Role::Replica,
                        },
                    ],
                },
            },
            Scenario {
                name: "the recorded primary is kept",
                observation: observation(
                    2,
                    Some(1),
                    vec![
                        instance(0, Some(true), Some("replica")),
                        instance(1, Some(false), Some("primary")),
                    ],
                ),
                expected: Plan {
                    primary: 1,
                    actions: vec![],
                },
            },
            Scenario {
                name: "a recorded primary beyond the instance count falls back to instance 0",
                observation: observation(
                    1,
                    Some(4),
                    vec![instance(0, Some(false), Some("primary"))],
                ),
                expected: Plan {
                    primary: 0,
                    actions: vec![],
                },
            },
        ]
    }

    #[test]
    fn decide_scenarios() {
        for scenario in scenarios() {
            assert_eq!(
                decide(&scenario.observation),
                scenario.expected,
                "scenario: {}",
                scenario.name
            );
        }
    }

    #[test]
    fn never_more_than_one_writable_after_the_plan() {
        for scenario in scenarios() {
            let plan = decide(&scenario.observation);
            let mut writable: Vec<u8> = scenario
                .observation
                .instances
                .iter()
                .filter(|i| matches!(&i.mysql, MySqlObservation::Observed(s) if s.is_writable()))
                .map(|i| i.ordinal)
                .collect();
            for action in &plan.actions {
                match action {
                    Action::MakeReadOnly { ordinal } => writable.retain(|o| o != ordinal),
                    Action::MakeWritable { ordinal } => writable.push(*ordinal),
                    Action::SetRoleLabel { .. } => {}
                }
                assert!(
                    writable.len() <= 1,
                    "scenario {}: two writers after {action:?}",
                    scenario.name
                );
            }
        }
    }
}
