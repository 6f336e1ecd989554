//! Settings in `spec.mysqlConfig` that weaken crash safety: allowed, but named.
//!
//! The condition `CrashSafe` says whether every commit reaches the disk before it is
//! acknowledged; a Warning event names the settings once, when they change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::root_password::newly_false;
use crate::api::MySQLClusterStatus;
use crate::api::conditions::{ConditionType, set_condition};
use crate::resources::mysql_settings::WeakenedDurability;

/// The reason of `CrashSafe=False`, also the Warning event's.
pub const DURABILITY_WEAKENED: &str = "DurabilityWeakened";

/// The `CrashSafe` condition's status, reason and message for these settings.
pub fn durability_condition(weakened: &[WeakenedDurability]) -> (bool, &'static str, String) {
    if weakened.is_empty() {
        return (
            true,
            "SyncedOnCommit",
            "every commit is on disk before it is acknowledged (sync_binlog=1, innodb_flush_log_at_trx_commit=1, doublewrite on)".into(),
        );
    }
    let named: Vec<String> = weakened
        .iter()
        .map(|w| format!("{}={}", w.name, w.value))
        .collect();
    (
        false,
        DURABILITY_WEAKENED,
        format!(
            "spec.mysqlConfig sets {}: an acknowledged commit may not be on disk yet. The semi-sync replicas hold it, so one failure with a failover loses nothing, but a crash of a single instance, of a primary that is not failed over, or of several hosts at once can lose acknowledged transactions (docs/configuration.md)",
            named.join(", ")
        ),
    )
}

/// Records the `CrashSafe` condition in the status.
pub fn record_durability(
    status: &mut MySQLClusterStatus,
    weakened: &[WeakenedDurability],
    generation: Option<i64>,
    now: Time,
) {
    let (ok, reason, message) = durability_condition(weakened);
    set_condition(
        &mut status.conditions,
        ConditionType::CrashSafe,
        ok,
        reason,
        message,
        generation,
        now,
    );
}

/// The Warning to publish, once per change of the weakening settings.
pub fn durability_warning(
    previous: Option<&MySQLClusterStatus>,
    status: &MySQLClusterStatus,
) -> Option<(String, String)> {
    newly_false(previous, status, ConditionType::CrashSafe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::mysql_settings::tests::map;
    use crate::resources::mysql_settings::weakened_durability;

    fn at(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).unwrap())
    }

    fn recorded(
        previous: &MySQLClusterStatus,
        config: &[(&str, &str)],
        t: i64,
    ) -> MySQLClusterStatus {
        let mut status = previous.clone();
        record_durability(
            &mut status,
            &weakened_durability(&map(config)),
            Some(1),
            at(t),
        );
        status
    }

    #[test]
    fn weakened_durability_is_warned_once_per_change_and_cleared_when_undone() {
        let start = MySQLClusterStatus::default();
        let safe = recorded(&start, &[("max_connections", "500")], 1);
        assert_eq!(
            durability_warning(None, &safe),
            None,
            "nothing to warn about"
        );

        let weak = recorded(&safe, &[("sync_binlog", "0")], 2);
        let (reason, message) = durability_warning(Some(&safe), &weak).expect("warned");
        assert_eq!(reason, DURABILITY_WEAKENED);
        assert!(
            message.starts_with("spec.mysqlConfig sets sync_binlog=0:"),
            "{message}"
        );

        let same = recorded(&weak, &[("sync_binlog", "0")], 3);
        assert_eq!(
            durability_warning(Some(&weak), &same),
            None,
            "not every reconcile"
        );

        let more = recorded(
            &same,
            &[
                ("sync_binlog", "0"),
                ("innodb-flush-log-at-trx-commit", "2"),
            ],
            4,
        );
        let (_, message) = durability_warning(Some(&same), &more).expect("a change is news");
        assert!(
            message.contains("innodb_flush_log_at_trx_commit=2, sync_binlog=0"),
            "{message}"
        );

        let undone = recorded(&more, &[], 5);
        assert_eq!(durability_warning(Some(&more), &undone), None);
        let condition = undone
            .conditions
            .iter()
            .find(|c| c.type_ == ConditionType::CrashSafe)
            .unwrap();
        assert_eq!(condition.status, "True");
    }
}
