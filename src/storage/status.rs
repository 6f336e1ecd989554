//! The volumes' part of the status (pure): the `StorageResized` condition and `volumeSize`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::decide::{EXPANSION_NOT_SUPPORTED, VolumePlan};
use crate::api::MySQLClusterStatus;
use crate::api::conditions::{ConditionType, set_condition};

/// Writes the plan's outcome into a status computed by the clustering step.
pub fn record_volumes(
    status: &mut MySQLClusterStatus,
    plan: &VolumePlan,
    generation: Option<i64>,
    now: Time,
) {
    let (ok, reason, message) = plan.condition();
    set_condition(
        &mut status.conditions,
        ConditionType::StorageResized,
        ok,
        reason,
        message,
        generation,
        now,
    );
    // What the CRD's shrink rule compares a smaller spec.storage.size with.
    status.volume_size = plan.largest.clone();
}

/// Whether this status newly reports a refused expansion (the moment for a Warning event), as
/// opposed to repeating what `previous` already said.
pub fn newly_refused(previous: Option<&MySQLClusterStatus>, current: &MySQLClusterStatus) -> bool {
    let refusal = |s: &MySQLClusterStatus| {
        s.conditions
            .iter()
            .find(|c| {
                c.type_ == ConditionType::StorageResized && c.reason == EXPANSION_NOT_SUPPORTED
            })
            .map(|c| c.message.clone())
    };
    let now = refusal(current);
    now.is_some() && previous.and_then(refusal) != now
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;
    use crate::storage::decide::tests::claims;
    use crate::storage::decide::{VolumeObservation, decide_volumes};

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).unwrap())
    }

    fn plan(desired: &str, allows: bool) -> VolumePlan {
        let observation: VolumeObservation = claims(1, "256Mi", allows);
        decide_volumes(&Quantity(desired.into()), 1, &observation)
    }

    #[test]
    fn a_refused_expansion_is_a_false_condition_and_warned_about_once() {
        let mut before = MySQLClusterStatus::default();
        record_volumes(&mut before, &plan("256Mi", false), Some(1), at(100));
        let condition = &before.conditions[0];
        assert_eq!(
            (condition.type_.as_str(), condition.status.as_str()),
            ("StorageResized", "True")
        );
        assert_eq!(before.volume_size, Some(Quantity("256Mi".into())));

        let mut refused = before.clone();
        record_volumes(&mut refused, &plan("512Mi", false), Some(2), at(200));
        let condition = &refused.conditions[0];
        assert_eq!(condition.status, "False");
        assert_eq!(condition.reason, "VolumeExpansionNotSupported");
        assert_eq!(condition.last_transition_time, at(200));
        assert_eq!(
            refused.volume_size,
            Some(Quantity("256Mi".into())),
            "the volumes did not grow, so going back to 256Mi stays allowed"
        );
        assert!(newly_refused(Some(&before), &refused));

        let mut again = refused.clone();
        record_volumes(&mut again, &plan("512Mi", false), Some(2), at(300));
        assert_eq!(again, refused, "a steady refusal writes nothing new");
        assert!(!newly_refused(Some(&refused), &again));

        let mut reverted = again.clone();
        record_volumes(&mut reverted, &plan("256Mi", false), Some(3), at(400));
        assert_eq!(reverted.conditions[0].status, "True");
        assert!(!newly_refused(Some(&again), &reverted));
    }
}
