//! The `Restored` condition of a cluster created from a backup (`spec.bootstrap.recovery`).
//!
//! The restore runs in the `restore` init container of instance 0, where Kubernetes shows a
//! failure as `Init:CrashLoopBackOff` and nothing more. The container leaves why it failed as its
//! termination message (a missing object, a checksum that does not match, data that is not the
//! backup's); the condition carries that message and a Warning event says it once. No instance
//! is writable meanwhile: instance 0 has no data directory, and the others are cloned from it.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::{ConditionType, set_condition};
use crate::api::{MySQLClusterStatus, RestoreSource};
use crate::resources::naming;
use crate::resources::statefulset::RESTORE_CONTAINER;

/// The condition's reason, and the Warning event's, when the restore failed.
pub const RESTORE_FAILED: &str = "RestoreFailed";

/// Where the restore into instance 0 stands, as its pod shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreProgress {
    /// Instance 0 holds the restored data and the cluster had its first primary.
    Done,
    /// Not started, or under way.
    Running,
    /// The last attempt failed, saying why.
    Failed(String),
}

/// Where the restore stands: done once the cluster has a primary or members (`status` as this
/// round reports it), else as instance 0's restore container shows it.
pub fn restore_progress(
    cluster: &str,
    status: &MySQLClusterStatus,
    pods: &[Pod],
) -> RestoreProgress {
    if crate::validate::bootstrapped(Some(status)) {
        return RestoreProgress::Done;
    }
    let first = naming::pod(cluster, 0);
    let container = pods
        .iter()
        .filter(|p| p.metadata.name.as_deref() == Some(first.as_str()))
        .filter_map(|p| p.status.as_ref()?.init_container_statuses.as_ref())
        .flatten()
        .find(|c| c.name == RESTORE_CONTAINER);
    match container.and_then(failure) {
        Some(why) => RestoreProgress::Failed(why),
        None => RestoreProgress::Running,
    }
}

/// Why the container's latest attempt failed, if it did. An attempt under way after a failure
/// still reports that failure: the condition does not flip with every retry of the back-off.
fn failure(container: &ContainerStatus) -> Option<String> {
    let terminated = container
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .or_else(|| container.last_state.as_ref()?.terminated.as_ref())
        .filter(|t| t.exit_code != 0)?;
    let message = terminated
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty());
    Some(match message {
        Some(message) => message.to_string(),
        None => format!(
            "the restore container exited with code {}{}",
            terminated.exit_code,
            terminated
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    })
}

/// Records the `Restored` condition; absent for a cluster not created from a backup.
pub fn record_restore(
    status: &mut MySQLClusterStatus,
    cluster: &str,
    restore: Option<&RestoreSource>,
    pods: &[Pod],
    generation: Option<i64>,
    now: Time,
) {
    let Some(source) = restore else {
        status
            .conditions
            .retain(|c| c.type_ != ConditionType::Restored);
        return;
    };
    let what = match &source.backup {
        Some(backup) => format!("the MySQLBackup {backup}"),
        None => format!("the backup at {}", source.directory),
    };
    let first = naming::pod(cluster, 0);
    let (ok, reason, message) = match restore_progress(cluster, status, pods) {
        RestoreProgress::Done => (
            true,
            "Restored",
            format!("{first} was restored from {what}"),
        ),
        RestoreProgress::Running => (false, "Restoring", format!("restoring {what} into {first}")),
        RestoreProgress::Failed(why) => (
            false,
            RESTORE_FAILED,
            format!(
                "restoring {what} into {first} failed, and is tried again: {why}; no instance \
                 takes writes until it succeeds (to restore another backup, delete the \
                 MySQLCluster and create it again)"
            ),
        ),
    };
    set_condition(
        &mut status.conditions,
        ConditionType::Restored,
        ok,
        reason,
        message,
        generation,
        now,
    );
}

/// The Warning for a restore that failed, once per reason and message.
pub fn restore_warning(
    previous: Option<&MySQLClusterStatus>,
    status: &MySQLClusterStatus,
) -> Option<(String, String)> {
    super::root_password::newly_false(previous, status, ConditionType::Restored)
        .filter(|(reason, _)| reason == RESTORE_FAILED)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, PodStatus};

    use super::*;
    use crate::controller::oom::tests::{back_off, running};

    fn source() -> RestoreSource {
        RestoreSource {
            store: serde_json::from_value(serde_json::json!({
                "endpoint": "http://minio:9000", "bucket": "backups", "credentialsSecret": "keys"
            }))
            .unwrap(),
            directory: "shop/orders/backups/nightly".into(),
            backup: Some("nightly".into()),
            sha256: None,
            gtid_set: None,
            replay: None,
        }
    }

    fn terminated(exit_code: i32, message: Option<&str>) -> ContainerStateTerminated {
        ContainerStateTerminated {
            exit_code,
            message: message.map(Into::into),
            reason: Some(if exit_code == 0 { "Completed" } else { "Error" }.into()),
            ..Default::default()
        }
    }

    /// Pod `name` whose restore container is in `state`, after `last`.
    fn pod(name: &str, state: ContainerState, last: Option<ContainerStateTerminated>) -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            status: Some(PodStatus {
                init_container_statuses: Some(vec![ContainerStatus {
                    name: RESTORE_CONTAINER.into(),
                    state: Some(state),
                    last_state: last.map(|t| ContainerState {
                        terminated: Some(t),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const MISSING: &str =
        "the object store: GET e2e/ns/shop/backups/nightly/data.tar.zst: 404 NoSuchKey";

    #[test]
    fn the_restore_is_judged_by_instance_0s_restore_container_until_a_primary_is_recorded() {
        let empty = MySQLClusterStatus::default();
        let cases = [
            ("no pod yet", vec![], RestoreProgress::Running),
            (
                "downloading",
                vec![pod("copy-0", running(), None)],
                RestoreProgress::Running,
            ),
            (
                "failed, backing off: the message it left",
                vec![pod(
                    "copy-0",
                    back_off(),
                    Some(terminated(1, Some(MISSING))),
                )],
                RestoreProgress::Failed(MISSING.into()),
            ),
            (
                "just failed",
                vec![pod(
                    "copy-0",
                    ContainerState {
                        terminated: Some(terminated(1, Some(MISSING))),
                        ..Default::default()
                    },
                    None,
                )],
                RestoreProgress::Failed(MISSING.into()),
            ),
            (
                "failed without a message: the exit code",
                vec![pod("copy-0", back_off(), Some(terminated(137, None)))],
                RestoreProgress::Failed(
                    "the restore container exited with code 137 (Error)".into(),
                ),
            ),
            (
                "trying again after a failure: still that failure",
                vec![pod("copy-0", running(), Some(terminated(1, Some(MISSING))))],
                RestoreProgress::Failed(MISSING.into()),
            ),
            (
                "succeeded",
                vec![pod(
                    "copy-0",
                    ContainerState {
                        terminated: Some(terminated(0, None)),
                        ..Default::default()
                    },
                    Some(terminated(1, Some(MISSING))),
                )],
                RestoreProgress::Running,
            ),
            (
                "another instance's container is not instance 0's restore",
                vec![pod(
                    "copy-1",
                    back_off(),
                    Some(terminated(1, Some(MISSING))),
                )],
                RestoreProgress::Running,
            ),
        ];
        for (name, pods, expected) in cases {
            assert_eq!(restore_progress("copy", &empty, &pods), expected, "{name}");
        }
        let bootstrapped = MySQLClusterStatus {
            current_primary: Some("copy-0".into()),
            ..Default::default()
        };
        let failed_before = [pod(
            "copy-0",
            back_off(),
            Some(terminated(1, Some(MISSING))),
        )];
        assert_eq!(
            restore_progress("copy", &bootstrapped, &failed_before),
            RestoreProgress::Done
        );
    }

    fn condition(status: &MySQLClusterStatus) -> Option<(String, String, String)> {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == ConditionType::Restored)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    }

    #[test]
    fn a_failed_restore_is_a_false_condition_with_the_containers_message_and_one_warning() {
        let now = Time(jiff::Timestamp::from_second(1_800_000_000).unwrap());
        let failed = [pod(
            "copy-0",
            back_off(),
            Some(terminated(1, Some(MISSING))),
        )];
        let record = |status: &mut MySQLClusterStatus, pods: &[Pod]| {
            record_restore(status, "copy", Some(&source()), pods, Some(1), now.clone())
        };
        let mut status = MySQLClusterStatus::default();
        record(&mut status, &failed);
        let (state, reason, message) = condition(&status).unwrap();
        assert_eq!((state.as_str(), reason.as_str()), ("False", RESTORE_FAILED));
        assert!(
            message.contains("the MySQLBackup nightly") && message.contains(MISSING),
            "{message}"
        );
        let (event_reason, note) = restore_warning(None, &status).expect("a warning");
        assert_eq!(event_reason, RESTORE_FAILED);
        assert_eq!(note, message);
        // The same failure again: no second warning.
        let previous = status.clone();
        record(&mut status, &failed);
        assert_eq!(restore_warning(Some(&previous), &status), None);

        // Tried again: still failed, no new warning; a new reason is told once.
        let retrying = [pod("copy-0", running(), Some(terminated(1, Some(MISSING))))];
        record(&mut status, &retrying);
        assert_eq!(condition(&status).unwrap().1, RESTORE_FAILED);
        assert_eq!(restore_warning(Some(&previous), &status), None);
        let previous = status.clone();
        let other = [pod(
            "copy-0",
            back_off(),
            Some(terminated(1, Some("checksum"))),
        )];
        record(&mut status, &other);
        assert!(
            restore_warning(Some(&previous), &status).is_some_and(|(_, n)| n.contains("checksum"))
        );
        // Done: True once a primary is on record.
        status.current_primary = Some("copy-0".into());
        record(&mut status, &retrying);
        assert_eq!(
            condition(&status).unwrap(),
            (
                "True".into(),
                "Restored".into(),
                "copy-0 was restored from the MySQLBackup nightly".into()
            )
        );

        // A cluster not made from a backup has no such condition.
        record_restore(&mut status, "copy", None, &failed, Some(1), now);
        assert_eq!(condition(&status), None);
    }
}
