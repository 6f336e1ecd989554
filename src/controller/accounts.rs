//! What the steps that change accounts on every server share (password rotation, root
//! access): they act only in rounds that change nothing else, and reach each instance as the
//! operator.

use std::sync::Arc;

use super::context::Context;
use crate::clustering::observe::instance_endpoint;
use crate::clustering::{MySqlObservation, Observation, Plan};
use crate::mysql::{Credentials, MySqlAdmin, MySqlConnector, MySqlError, ThreadState};
use crate::resources::naming;
use crate::validate::ValidatedCluster;

/// What a step that changes accounts on the servers needs from the round.
pub struct AccountRound<'a> {
    pub cluster: &'a ValidatedCluster,
    pub observation: &'a Observation,
    pub plan: &'a Plan,
    pub operator: &'a Credentials,
    pub ca: Option<&'a Arc<[u8]>>,
}

impl AccountRound<'_> {
    /// Why this round must not change accounts, if it must not (see [`unsettled`]).
    pub fn unsettled(&self) -> Option<String> {
        unsettled(self.plan, self.observation, &self.cluster.name)
    }

    /// A session on instance `ordinal` as the operator.
    pub async fn connect(&self, ctx: &Context, ordinal: u8) -> Result<impl MySqlAdmin, MySqlError> {
        let cluster = self.cluster;
        let endpoint = self
            .observation
            .pod(ordinal)
            .and_then(|pod| {
                instance_endpoint(&cluster.name, &cluster.namespace, ordinal, pod, self.ca)
            })
            .ok_or_else(|| MySqlError::InvalidInput {
                action: "change an account".into(),
                detail: format!("{} has no address", naming::pod(&cluster.name, ordinal)),
            })?;
        ctx.connector.connect(&endpoint, self.operator).await
    }
}

/// Why a round is not at rest, if it is not: account statements wait for a round that changes
/// nothing else.
pub fn unsettled(plan: &Plan, observation: &Observation, cluster: &str) -> Option<String> {
    if plan.primary.is_none() || plan.failover_underway.is_some() {
        return Some("no primary takes writes".into());
    }
    if !plan.actions.is_empty() {
        return Some("the cluster is changing".into());
    }
    if !observation.cloning.is_empty() {
        return Some("an instance is being cloned".into());
    }
    let silent: Vec<String> = observation
        .instances
        .iter()
        .filter(|i| !matches!(i.mysql, MySqlObservation::Observed(_)))
        .map(|i| naming::pod(cluster, i.ordinal))
        .collect();
    if !silent.is_empty() {
        return Some(format!("waiting for {} to answer", silent.join(", ")));
    }
    // A replica whose receiver is not connected could miss a switch of the replication
    // password (its channel is re-pointed only while it answers), and the first commit after a
    // receiver's restart waits for its acknowledgement: one change to the channels at a time.
    let connecting: Vec<String> = observation
        .instances
        .iter()
        .filter(|i| Some(i.ordinal) != plan.primary)
        .filter(|i| match &i.mysql {
            MySqlObservation::Observed(status) => status
                .replica
                .as_ref()
                .is_none_or(|r| r.io_thread != ThreadState::Running),
            _ => true,
        })
        .map(|i| naming::pod(cluster, i.ordinal))
        .collect();
    (!connecting.is_empty()).then(|| {
        format!(
            "waiting for {} to be connected to the primary",
            connecting.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clustering::decide::Action;
    use crate::clustering::observe::tests::{
        instance, observation, primary_with, replica_following, status_mut,
    };

    fn at_rest() -> (Plan, Observation) {
        let observation = observation(
            3,
            Some(0),
            vec![
                primary_with(0, 3, ""),
                replica_following(1, 0, ""),
                replica_following(2, 0, ""),
            ],
        );
        let plan = Plan {
            primary: Some(0),
            ..Plan::observed_only(&observation)
        };
        (plan, observation)
    }

    #[test]
    fn accounts_change_only_in_a_round_that_changes_nothing_else() {
        type Change = fn(&mut Plan, &mut Observation);
        let cases: [(&str, Change, Option<&str>); 7] = [
            ("at rest", |_, _| {}, None),
            (
                "no primary",
                |plan, _| plan.primary = None,
                Some("no primary takes writes"),
            ),
            (
                "failover under way",
                |plan, _| plan.failover_underway = Some(0),
                Some("no primary takes writes"),
            ),
            (
                "actions planned",
                |plan, _| plan.actions.push(Action::MakeReadOnly { ordinal: 0 }),
                Some("the cluster is changing"),
            ),
            (
                "a clone",
                |_, o| o.cloning.push(2),
                Some("an instance is being cloned"),
            ),
            (
                "an instance silent",
                |_, o| o.instances[1] = instance(1, None, Some("replica")),
                Some("waiting for db-1 to answer"),
            ),
            (
                "a receiver reconnecting",
                |_, o| {
                    let replica = status_mut(&mut o.instances[2]).replica.as_mut().unwrap();
                    replica.io_thread = ThreadState::Connecting;
                },
                Some("waiting for db-2 to be connected to the primary"),
            ),
        ];
        for (case, change, why) in cases {
            let (mut plan, mut observation) = at_rest();
            change(&mut plan, &mut observation);
            assert_eq!(
                unsettled(&plan, &observation, "db").as_deref(),
                why,
                "{case}"
            );
        }
    }
}
