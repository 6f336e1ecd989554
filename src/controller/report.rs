//! The report step: the status a round writes and the events it publishes, from what the
//! round's steps found and did. Pure, so what a round says is decided in one place and tested
//! without an API server; the reconcile writes the status once and publishes the notices.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;

use super::durability::{durability_warning, record_durability};
use super::oom::{OOM_KILLED, new_oom_kills, oom_kills, record_oom};
use super::restore_status::{record_restore, restore_warning};
use super::root_password::{
    RootPasswordCheck, newly_false, record_root_password, root_password_warning,
};
use super::status::{
    APPLIED_ONLINE, OBJECT_NOT_OWNED, RefusedSetting, SETTING_REFUSED, compute_status,
    newly_not_owned, record_discarded, record_ownership, record_settings,
};
use super::tls::{TlsCheck, record_tls, tls_warning};
use crate::api::MySQLClusterStatus;
use crate::api::conditions::ConditionType;
use crate::clustering::settings::SettingsPlan;
use crate::clustering::{Action, Observation, Plan};
use crate::lost_nodes::{LostNodePlan, record_lost_nodes};
use crate::resources::mysql_settings;
use crate::storage::VolumePlan;
use crate::storage::status::{newly_refused, record_volumes};
use crate::validate::ValidatedCluster;

/// What one round of an unpaused cluster found and did, as the report needs it.
pub struct Round<'a> {
    pub cluster: &'a ValidatedCluster,
    pub observation: &'a Observation,
    pub plan: &'a Plan,
    /// The clustering actions carried out.
    pub done: &'a [Action],
    /// The cluster's pods as listed this round (their containers' last terminations).
    pub pods: &'a [Pod],
    pub settings: &'a SettingsPlan,
    /// Online settings mysqld refused this round.
    pub refused: &'a [RefusedSetting],
    /// What the next build puts into my.cnf (see `accepted_settings`).
    pub accepted_settings: BTreeMap<String, String>,
    pub volumes: &'a VolumePlan,
    /// Instances on lost nodes: waiting, or one being replaced.
    pub lost_nodes: &'a LostNodePlan,
    /// Children another manager owns; `None` when nothing was applied (a paused cluster).
    pub not_owned: Option<&'a [String]>,
    /// The root password's check, when the operator could read it.
    pub root_password: Option<&'a RootPasswordCheck>,
    /// The certificate's check; `None` in tests that are not about it.
    pub tls: Option<&'a TlsCheck>,
}

/// An event the round publishes about the cluster, and the pod it concerns, if one.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub type_: EventType,
    pub reason: String,
    pub note: String,
    pub pod: Option<String>,
}

impl Notice {
    fn warning(reason: &str, note: String) -> Self {
        Self {
            type_: EventType::Warning,
            reason: reason.into(),
            note,
            pod: None,
        }
    }

    /// A Warning when condition `type_` turned false since `previous`, or changed its reason
    /// or message while false (see [`newly_false`]).
    pub fn if_newly_false(
        previous: &MySQLClusterStatus,
        status: &MySQLClusterStatus,
        type_: ConditionType,
    ) -> Option<Self> {
        newly_false(Some(previous), status, type_)
            .map(|(reason, message)| Self::warning(&reason, message))
    }

    /// As [`Notice::if_newly_false`], with the event's reason under `prefix` (unless the
    /// condition's reason begins with it already) and none for the reason `quiet`, a false that
    /// is no problem (waiting, under way).
    pub fn if_newly_false_under(
        previous: &MySQLClusterStatus,
        status: &MySQLClusterStatus,
        type_: ConditionType,
        prefix: &str,
        quiet: &str,
    ) -> Option<Self> {
        newly_false(Some(previous), status, type_)
            .filter(|(reason, _)| reason != quiet)
            .map(|(reason, message)| {
                let named = reason.strip_prefix(prefix).unwrap_or(&reason);
                Self::warning(&format!("{prefix}{named}"), message)
            })
    }
}

/// The status the round writes and the notices it publishes, in the order they happened.
/// Each notice is of a change since `previous`: a condition that stays as it is is told once.
pub fn report(
    previous: Option<&MySQLClusterStatus>,
    round: Round<'_>,
    now: Time,
) -> (MySQLClusterStatus, Vec<Notice>) {
    let cluster = round.cluster;
    let generation = cluster.generation;
    let mut notices = Vec::new();
    let mut status = compute_status(
        cluster,
        round.observation,
        round.plan,
        previous,
        now.clone(),
    );
    record_volumes(&mut status, round.volumes, generation, now.clone());
    record_lost_nodes(&mut status, round.lost_nodes, generation, now.clone());

    let kills = oom_kills(&cluster.name, round.pods, &now);
    for kill in new_oom_kills(previous, &kills) {
        let note = format!(
            "mysqld of {} was OOM-killed (spec.resources.limits.memory {})",
            kill.describe(),
            memory_limit(cluster).unwrap_or("unset")
        );
        notices.push(Notice {
            pod: Some(kill.pod.clone()),
            ..Notice::warning(OOM_KILLED, note)
        });
    }
    record_oom(&mut status, &kills, memory_limit(cluster));
    if newly_refused(previous, &status) {
        let (_, reason, message) = round.volumes.condition();
        notices.push(Notice::warning(reason, message));
    }

    record_settings(
        &mut status,
        round.settings,
        round.refused,
        generation,
        now.clone(),
    );
    status.accepted_settings = Some(round.accepted_settings);
    record_discarded(&mut status, &cluster.name, round.done, now.clone());
    if let Some(not_owned) = round.not_owned {
        record_ownership(&mut status, not_owned, generation, now.clone());
        if let Some(message) = newly_not_owned(previous, &status) {
            notices.push(Notice::warning(OBJECT_NOT_OWNED, message));
        }
    }
    notices.extend(settings_notice(previous, &status));

    let weakened = mysql_settings::weakened_durability(&cluster.mysql_config);
    record_durability(&mut status, &weakened, generation, now.clone());
    if let Some((reason, message)) = durability_warning(previous, &status) {
        notices.push(Notice::warning(&reason, message));
    }
    if let Some(check) = round.tls {
        record_tls(&mut status, check, generation, now.clone());
        if let Some((reason, message)) = tls_warning(previous, &status) {
            notices.push(Notice::warning(&reason, message));
        }
    }
    record_restore(
        &mut status,
        &cluster.name,
        cluster.restore.as_ref(),
        round.pods,
        generation,
        now.clone(),
    );
    if let Some((reason, message)) = restore_warning(previous, &status) {
        notices.push(Notice::warning(&reason, message));
    }
    if let Some(check) = round.root_password {
        record_root_password(&mut status, check, generation, now);
        if let Some((reason, message)) = root_password_warning(previous, &status) {
            notices.push(Notice::warning(&reason, message));
        }
    }
    (status, notices)
}

/// `spec.resources.limits.memory` as written, if set.
fn memory_limit(valid: &ValidatedCluster) -> Option<&str> {
    valid
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .get("memory")
        .map(|q| q.0.as_str())
}

/// The event for a change of `ConfigApplied`: a Warning for a refused setting, a Normal event
/// for settings applied online. A restart's progress is told by the rollout's own events.
fn settings_notice(
    previous: Option<&MySQLClusterStatus>,
    status: &MySQLClusterStatus,
) -> Option<Notice> {
    let config = |s: &MySQLClusterStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == ConditionType::ConfigApplied)
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    let (reason, message) = config(status)?;
    if previous.and_then(config) == Some((reason.clone(), message.clone())) {
        return None;
    }
    let type_ = match reason.as_str() {
        SETTING_REFUSED => EventType::Warning,
        APPLIED_ONLINE => EventType::Normal,
        _ => return None,
    };
    Some(Notice {
        type_,
        reason,
        note: message,
        pod: None,
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;
    use crate::clustering::decide::tests::decided;
    use crate::clustering::observe::tests::{observation, primary_with, replica_following};
    use crate::resources::tests::validated;
    use crate::storage::decide::VolumeState;

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).unwrap())
    }

    /// What a round found: a settled primary and replica, volumes at size, and `refused` and
    /// `not_owned` as given. Reported over `previous` at `now`.
    fn report_round(
        previous: Option<&MySQLClusterStatus>,
        refused: &[RefusedSetting],
        not_owned: &[String],
        now: i64,
    ) -> (MySQLClusterStatus, Vec<Notice>) {
        let cluster = validated("db", 2);
        let history = "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5";
        let observed = observation(
            2,
            Some(0),
            vec![
                primary_with(0, 2, history),
                replica_following(1, 0, history),
            ],
        );
        let plan = decided(&observed);
        let volumes = VolumePlan {
            expand: Vec::new(),
            state: VolumeState::AtSize,
            desired: Quantity("256Mi".into()),
            largest: Some(Quantity("256Mi".into())),
        };
        let round = Round {
            cluster: &cluster,
            observation: &observed,
            plan: &plan,
            done: &[],
            pods: &[],
            settings: &SettingsPlan::default(),
            refused,
            accepted_settings: BTreeMap::new(),
            volumes: &volumes,
            lost_nodes: &LostNodePlan::default(),
            not_owned: Some(not_owned),
            root_password: Some(&RootPasswordCheck::Generated),
            tls: None,
        };
        report(previous, round, at(now))
    }

    fn reasons(notices: &[Notice]) -> Vec<(&str, bool)> {
        notices
            .iter()
            .map(|n| (n.reason.as_str(), n.type_ == EventType::Warning))
            .collect()
    }

    #[test]
    fn a_round_that_changes_nothing_reports_the_same_status_and_no_event() {
        let (first, notices) = report_round(None, &[], &[], 100);
        assert_eq!(
            notices,
            Vec::new(),
            "a healthy first round has nothing to warn of"
        );
        let (second, notices) = report_round(Some(&first), &[], &[], 200);
        assert_eq!(
            second, first,
            "no condition moved, so no time changed either"
        );
        assert_eq!(notices, Vec::new());
    }

    #[test]
    fn a_refused_setting_is_warned_of_once_and_again_after_it_was_mended() {
        let refused = [RefusedSetting {
            pod: "db-1".into(),
            error: "server error 1232: Incorrect argument type".into(),
        }];
        let (healthy, _) = report_round(None, &[], &[], 100);
        let (refusing, notices) = report_round(Some(&healthy), &refused, &[], 200);
        assert_eq!(reasons(&notices), vec![(SETTING_REFUSED, true)]);
        assert!(notices[0].note.contains("db-1"), "{:?}", notices[0].note);

        let (still, notices) = report_round(Some(&refusing), &refused, &[], 300);
        assert_eq!(notices, Vec::new(), "the same refusal is told once");
        let (mended, _) = report_round(Some(&still), &[], &[], 400);
        let (_, notices) = report_round(Some(&mended), &refused, &[], 500);
        assert_eq!(reasons(&notices), vec![(SETTING_REFUSED, true)]);
    }

    #[test]
    fn a_child_owned_by_another_manager_is_warned_of_once() {
        let not_owned = ["Service db-primary".to_string()];
        let (healthy, _) = report_round(None, &[], &[], 100);
        let (taken, notices) = report_round(Some(&healthy), &[], &not_owned, 200);
        assert_eq!(reasons(&notices), vec![(OBJECT_NOT_OWNED, true)]);
        assert!(
            notices[0].note.contains("db-primary"),
            "{:?}",
            notices[0].note
        );
        let (_, notices) = report_round(Some(&taken), &[], &not_owned, 300);
        assert_eq!(notices, Vec::new());
    }
}
