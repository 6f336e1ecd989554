//! `spec.mysqlConfig` on running instances: which instances need settings applied online, and
//! which settings still wait for the rolling restart that applies them.
//!
//! A setting MySQL changes at run time (see `resources::mysql_settings`) is applied with
//! `SET GLOBAL` on every running instance, which is then annotated with what it holds; nothing
//! restarts. Any other setting is in the pod template's hash, so changing it starts the rollout
//! `decide` drives (replicas first, one switchover); this module only names those settings for
//! the status. Pure: the IO is in `operate::apply_settings`.

use std::collections::BTreeMap;

use super::observe::{MySqlObservation, Observation};
use crate::resources::mysql_settings::{self, SplitSettings};

/// Settings to apply online to one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsChange {
    pub ordinal: u8,
    pub pod: String,
    /// `(variable, value as in my.cnf)` to set, in name order.
    pub set: Vec<(String, String)>,
    /// Variables applied before and now gone from the spec: back to their defaults.
    pub reset: Vec<String>,
    /// The annotation to record on the pod once done: the settings it then holds.
    pub record: String,
    /// The pod had no record yet (it is new): this sets what its my.cnf most likely already
    /// gave it, and is no change the user made.
    pub first: bool,
}

/// Where the cluster stands with its settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsPlan {
    /// Instances whose online settings differ from the spec.
    pub online: Vec<SettingsChange>,
    /// Restart-requiring settings that some pod still runs with another value (sorted).
    pub awaiting_restart: Vec<String>,
}

impl SettingsPlan {
    /// The names of the settings a user changed that are being applied online (sorted, once
    /// each); a new pod's first settings are no change.
    pub fn online_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .online
            .iter()
            .filter(|c| !c.first)
            .flat_map(|c| c.set.iter().map(|(n, _)| n).chain(c.reset.iter()))
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Compares every instance with the wanted settings.
pub fn plan_settings(observation: &Observation, wanted: &SplitSettings) -> SettingsPlan {
    let record = mysql_settings::encode(&wanted.online);
    let mut plan = SettingsPlan::default();
    for instance in &observation.instances {
        let Some(pod) = &instance.pod else { continue };
        if let Some(text) = &pod.restart_settings
            && instance.ordinal < observation.desired_instances
        {
            plan.awaiting_restart.extend(mysql_settings::changed_names(
                &mysql_settings::decode(text),
                &wanted.restart,
            ));
        }
        // Only a server that answers and is staying: a pod on its way out is replaced by one
        // that reads the current my.cnf.
        if pod.terminating || !matches!(instance.mysql, MySqlObservation::Observed(_)) {
            continue;
        }
        // A pod without the annotation started from my.cnf; what it may hold beyond the spec is
        // unknown, so only the wanted values are set (again).
        let applied: BTreeMap<String, String> = pod
            .online_settings
            .as_deref()
            .map(mysql_settings::decode)
            .unwrap_or_default();
        let set: Vec<(String, String)> = wanted
            .online
            .iter()
            .filter(|(name, value)| applied.get(*name) != Some(*value))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let reset: Vec<String> = applied
            .keys()
            .filter(|name| !wanted.online.contains_key(*name))
            // Only what the operator may touch: the annotation could have been edited by hand.
            .filter(|name| mysql_settings::is_online(name))
            .cloned()
            .collect();
        if set.is_empty() && reset.is_empty() {
            continue;
        }
        plan.online.push(SettingsChange {
            ordinal: instance.ordinal,
            pod: pod.name.clone(),
            set,
            reset,
            record: record.clone(),
            first: pod.online_settings.is_none(),
        });
    }
    plan.awaiting_restart.sort();
    plan.awaiting_restart.dedup();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clustering::observe::tests::{instance, observation};
    use crate::resources::mysql_settings::tests::map;

    fn wanted(online: &[(&str, &str)], restart: &[(&str, &str)]) -> SplitSettings {
        SplitSettings {
            online: map(online),
            restart: map(restart),
        }
    }

    /// Three answering instances whose pods carry these annotations.
    fn trio(online: Option<&str>, restart: Option<&str>) -> Observation {
        let mut obs = observation(
            3,
            Some(0),
            vec![
                instance(0, Some(false), Some("primary")),
                instance(1, Some(true), Some("replica")),
                instance(2, Some(true), Some("replica")),
            ],
        );
        for i in &mut obs.instances {
            let pod = i.pod.as_mut().unwrap();
            pod.online_settings = online.map(Into::into);
            pod.restart_settings = restart.map(Into::into);
        }
        obs
    }

    #[test]
    fn nothing_to_do_when_every_pod_holds_the_wanted_settings() {
        let obs = trio(Some("max_connections=500"), Some("back_log=100"));
        let plan = plan_settings(
            &obs,
            &wanted(&[("max_connections", "500")], &[("back_log", "100")]),
        );
        assert_eq!(plan, SettingsPlan::default());
    }

    #[test]
    fn a_changed_online_setting_is_set_on_every_answering_instance_and_recorded() {
        let mut obs = trio(Some("max_connections=500\nwait_timeout=60"), None);
        obs.instances[2].mysql = MySqlObservation::Unreachable("down".into());
        let plan = plan_settings(
            &obs,
            &wanted(&[("max_connections", "800"), ("wait_timeout", "60")], &[]),
        );
        let ordinals: Vec<u8> = plan.online.iter().map(|c| c.ordinal).collect();
        assert_eq!(
            ordinals,
            [0, 1],
            "the unreachable instance gets it when it answers"
        );
        for change in &plan.online {
            assert_eq!(change.set, [("max_connections".into(), "800".into())]);
            assert!(change.reset.is_empty());
            assert_eq!(change.record, "max_connections=800\nwait_timeout=60");
        }
        assert_eq!(plan.online_names(), ["max_connections"]);
        assert!(plan.online.iter().all(|c| !c.first));
        assert!(plan.awaiting_restart.is_empty());
    }

    #[test]
    fn a_removed_online_setting_returns_to_its_default() {
        let obs = trio(Some("max_connections=500\nwait_timeout=60"), None);
        let plan = plan_settings(&obs, &wanted(&[("wait_timeout", "60")], &[]));
        assert_eq!(plan.online.len(), 3);
        assert!(plan.online[0].set.is_empty());
        assert_eq!(plan.online[0].reset, ["max_connections"]);
        assert_eq!(plan.online[0].record, "wait_timeout=60");
    }

    #[test]
    fn a_pod_without_the_annotation_gets_every_wanted_setting_and_nothing_reset() {
        let obs = trio(None, None);
        let plan = plan_settings(&obs, &wanted(&[("max_connections", "500")], &[]));
        assert_eq!(plan.online.len(), 3);
        assert_eq!(
            plan.online[1].set,
            [("max_connections".into(), "500".into())]
        );
        assert!(plan.online[1].reset.is_empty());
        assert!(plan.online.iter().all(|c| c.first));
        assert!(plan.online_names().is_empty(), "no change a user made");
        // Nothing wanted and nothing recorded: nothing to do.
        assert!(plan_settings(&obs, &wanted(&[], &[])).online.is_empty());
    }

    #[test]
    fn only_operator_managed_names_are_reset_from_an_annotation() {
        let obs = trio(Some("max_connections=500\nread_only=OFF"), None);
        let plan = plan_settings(&obs, &wanted(&[], &[]));
        assert_eq!(plan.online[0].reset, ["max_connections"]);
    }

    #[test]
    fn terminating_pods_are_left_to_their_replacement() {
        let mut obs = trio(None, None);
        obs.instances[1].pod.as_mut().unwrap().terminating = true;
        let plan = plan_settings(&obs, &wanted(&[("max_connections", "500")], &[]));
        let ordinals: Vec<u8> = plan.online.iter().map(|c| c.ordinal).collect();
        assert_eq!(ordinals, [0, 2]);
    }

    #[test]
    fn restart_settings_that_pods_still_run_differently_are_named() {
        let mut obs = trio(None, Some("back_log=100"));
        obs.instances[2].pod.as_mut().unwrap().restart_settings =
            Some("back_log=200\ninnodb_read_io_threads=8".into());
        let plan = plan_settings(&obs, &wanted(&[], &[("back_log", "200"), ("x", "1")]));
        assert_eq!(
            plan.awaiting_restart,
            ["back_log", "innodb_read_io_threads", "x"]
        );
        assert!(plan.online.is_empty());
        // A pod made before the annotation existed says nothing.
        let plan = plan_settings(&trio(None, None), &wanted(&[], &[("back_log", "200")]));
        assert!(plan.awaiting_restart.is_empty());
    }
}
