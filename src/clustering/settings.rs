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
    /// What the pod's annotation says the instance holds now (operator-managed names only).
    pub applied: BTreeMap<String, String>,
    /// The pod had no record yet (it is new): this sets what its my.cnf most likely already
    /// gave it, and is no change the user made.
    pub first: bool,
}

impl SettingsChange {
    /// The annotation to record on the pod once the instance took the variables in `taken`
    /// (set or reset) of this change: what it then holds. A variable it refused keeps what the
    /// instance held before, so the next round tries it again and nothing claims it was taken.
    pub fn record(&self, taken: &[String]) -> String {
        let mut held = self.applied.clone();
        for (name, value) in &self.set {
            if taken.contains(name) {
                held.insert(name.clone(), value.clone());
            }
        }
        for name in &self.reset {
            if taken.contains(name) {
                held.remove(name);
            }
        }
        mysql_settings::encode(&held)
    }
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
        let mut applied: BTreeMap<String, String> = pod
            .online_settings
            .as_deref()
            .map(mysql_settings::decode)
            .unwrap_or_default();
        // Only what the operator may touch: the annotation could have been edited by hand.
        applied.retain(|name, _| mysql_settings::is_online(name));
        let set: Vec<(String, String)> = wanted
            .online
            .iter()
            .filter(|(name, value)| applied.get(*name) != Some(*value))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let reset: Vec<String> = applied
            .keys()
            .filter(|name| !wanted.online.contains_key(*name))
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
            applied,
            first: pod.online_settings.is_none(),
        });
    }
    plan.awaiting_restart.sort();
    plan.awaiting_restart.dedup();
    plan
}

/// What mysqld did with the online settings this round, across every instance it was asked on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsResults {
    /// `(variable, value)` that an instance took with `SET GLOBAL`.
    pub taken: Vec<(String, String)>,
    /// Variables an instance refused.
    pub refused: Vec<String>,
}

/// The online settings my.cnf may hold from now on (the next `status.acceptedSettings`), so that
/// a restarting mysqld never reads a value mysqld refused. `previous` is what my.cnf was built
/// with (`None`: the spec as written, before the operator first recorded anything).
///
/// For each online setting of the spec, its value enters once mysqld took it: an instance took
/// it this round and none refused it, or a pod's annotation says its instance holds it (taken
/// in an earlier round, perhaps by an earlier operator). Otherwise my.cnf keeps the value it
/// had: the last one taken, or nothing (the default) when that was the refused value itself. A
/// setting gone from the spec leaves my.cnf at once: its default is always one mysqld starts
/// with.
pub fn accepted_settings(
    previous: Option<&BTreeMap<String, String>>,
    wanted: &BTreeMap<String, String>,
    observation: &Observation,
    results: &SettingsResults,
) -> BTreeMap<String, String> {
    let held: Vec<BTreeMap<String, String>> = observation
        .instances
        .iter()
        .filter_map(|i| i.pod.as_ref()?.online_settings.as_deref())
        .map(mysql_settings::decode)
        .collect();
    let mut accepted = BTreeMap::new();
    for (name, value) in wanted {
        let refused = results.refused.contains(name);
        let taken_now = results.taken.iter().any(|(n, v)| n == name && v == value);
        let taken_before = held.iter().any(|h| h.get(name) == Some(value));
        let chosen = match previous {
            // A refusal this round outweighs any earlier word: the value stays out.
            // (my.cnf may hold it unverified, from the spec as written: not any more.)
            Some(previous) if refused => previous.get(name).filter(|v| *v != value),
            _ if refused => None,
            _ if taken_now || taken_before => Some(value),
            Some(previous) => previous.get(name),
            // my.cnf held the spec as written, and nothing said otherwise.
            None => Some(value),
        };
        if let Some(chosen) = chosen {
            accepted.insert(name.clone(), chosen.clone());
        }
    }
    accepted
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
            assert_eq!(
                change.record(&["max_connections".into()]),
                "max_connections=800\nwait_timeout=60"
            );
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
        assert_eq!(
            plan.online[0].record(&["max_connections".into()]),
            "wait_timeout=60"
        );
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

    #[test]
    fn a_refused_variable_keeps_what_the_instance_held_in_its_record() {
        let obs = trio(Some("max_connections=500\nwait_timeout=60"), None);
        let plan = plan_settings(
            &obs,
            &wanted(&[("max_connections", "lots"), ("wait_timeout", "30")], &[]),
        );
        let change = &plan.online[0];
        assert_eq!(
            change.record(&["wait_timeout".into()]),
            "max_connections=500\nwait_timeout=30",
            "only what the instance took is recorded, so the refused one is tried again"
        );
        assert_eq!(change.record(&[]), "max_connections=500\nwait_timeout=60");
    }

    fn taken(pairs: &[(&str, &str)]) -> SettingsResults {
        SettingsResults {
            taken: pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            refused: vec![],
        }
    }

    fn refused(names: &[&str]) -> SettingsResults {
        SettingsResults {
            taken: vec![],
            refused: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn a_value_enters_my_cnf_once_mysqld_took_it() {
        let obs = trio(Some("max_connections=500"), None);
        let previous = map(&[("max_connections", "500")]);
        let spec = map(&[("max_connections", "800")]);
        assert_eq!(
            accepted_settings(
                Some(&previous),
                &spec,
                &obs,
                &taken(&[("max_connections", "800")])
            ),
            spec
        );
        // Not tried yet (no instance answered): my.cnf keeps the last value taken.
        assert_eq!(
            accepted_settings(Some(&previous), &spec, &obs, &SettingsResults::default()),
            previous
        );
    }

    #[test]
    fn a_refused_value_never_enters_my_cnf_and_the_last_good_one_stays() {
        let obs = trio(Some("max_connections=500"), None);
        let previous = map(&[("max_connections", "500")]);
        let spec = map(&[("max_connections", "lots")]);
        assert_eq!(
            accepted_settings(Some(&previous), &spec, &obs, &refused(&["max_connections"])),
            previous
        );
        // Refused while another instance took it: a refusal anywhere keeps it out.
        let mixed = SettingsResults {
            taken: vec![("max_connections".into(), "lots".into())],
            refused: vec!["max_connections".into()],
        };
        assert_eq!(
            accepted_settings(Some(&previous), &spec, &obs, &mixed),
            previous
        );
        // Refused with no earlier value taken: the setting leaves my.cnf (its default).
        assert!(
            accepted_settings(Some(&map(&[])), &spec, &obs, &refused(&["max_connections"]))
                .is_empty()
        );
    }

    #[test]
    fn before_anything_was_recorded_the_spec_stands_unless_refused() {
        // An existing cluster from before the record: its pods' annotations say what they took.
        let obs = trio(Some("max_connections=500"), None);
        let spec = map(&[("max_connections", "500"), ("wait_timeout", "60")]);
        assert_eq!(
            accepted_settings(None, &spec, &obs, &SettingsResults::default()),
            spec,
            "my.cnf already holds the spec; nothing says it is bad"
        );
        assert_eq!(
            accepted_settings(None, &spec, &obs, &refused(&["wait_timeout"])),
            map(&[("max_connections", "500")])
        );
        // A value my.cnf held unverified that is now refused does not stay either.
        let unverified = map(&[("wait_timeout", "60")]);
        assert!(
            accepted_settings(
                Some(&unverified),
                &map(&[("wait_timeout", "60")]),
                &obs,
                &refused(&["wait_timeout"])
            )
            .is_empty()
        );
    }

    #[test]
    fn a_value_an_instance_holds_by_its_annotation_was_taken() {
        let obs = trio(Some("max_connections=800"), None);
        let spec = map(&[("max_connections", "800")]);
        assert_eq!(
            accepted_settings(Some(&map(&[])), &spec, &obs, &SettingsResults::default()),
            spec
        );
    }

    #[test]
    fn a_setting_gone_from_the_spec_leaves_my_cnf_at_once() {
        let obs = trio(Some("max_connections=500"), None);
        assert!(
            accepted_settings(
                Some(&map(&[("max_connections", "500")])),
                &map(&[]),
                &obs,
                &SettingsResults::default()
            )
            .is_empty()
        );
    }
}
