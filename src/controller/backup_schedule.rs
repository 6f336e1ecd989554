//! The schedule step of a cluster's round: when `spec.backup.schedule` is due, create the
//! `MySQLBackup` for it (the backup controller takes it); when `spec.backup.verify.schedule` is
//! due, ask for a verification restore of the newest completed backup (the backup controller
//! runs it); report both schedules in the `BackupScheduled` condition. A round at rest computes
//! the next fire times and calls nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::context::Context;
use super::report::Notice;
use crate::api::conditions::{ConditionType, set_condition};
use crate::api::{BackupPhase, MySQLBackup, MySQLCluster, MySQLClusterStatus, VerificationPhase};
use crate::backup::schedule::{ScheduleStep, schedule_step, scheduled_backup_name};
use crate::backup::verify::request;

/// Labels a scheduled backup with the cluster whose schedule made it.
pub const SCHEDULED_BY_LABEL: &str = "mysql.sakila.dev/scheduled-by";

/// Takes a due backup and records the schedule in `status`; returns the events to publish.
pub async fn schedule_backups(
    ctx: &Context,
    cluster: &MySQLCluster,
    status: &mut MySQLClusterStatus,
    now: Time,
) -> Vec<Notice> {
    let backup_spec = cluster.spec.backup.as_ref();
    let expression = backup_spec.and_then(|b| b.schedule.as_deref());
    let last = status.last_scheduled_backup.as_ref().map(|t| t.0);
    let step = schedule_step("spec.backup.schedule", expression, last, now.0);
    let verify_expression = backup_spec
        .and_then(|b| b.verify.as_ref())
        .map(|v| v.schedule.as_str());
    let verify_last = status.last_scheduled_verification.as_ref().map(|t| t.0);
    let verify_step = schedule_step(
        "spec.backup.verify.schedule",
        verify_expression,
        verify_last,
        now.0,
    );
    let mut notices = Vec::new();
    let mut failed = None;
    if let ScheduleStep::Take { due, .. } = &step {
        let name = scheduled_backup_name(&cluster.name_any(), *due);
        match create_backup(ctx, cluster, &name).await {
            Ok(()) => notices.push(Notice {
                type_: EventType::Normal,
                reason: "BackupScheduled".into(),
                note: format!("created MySQLBackup {name} for the schedule"),
                pod: None,
            }),
            Err(e) => {
                tracing::warn!(backup = %name, error = %e, "could not create a scheduled backup");
                failed = Some(format!(
                    "could not create the scheduled MySQLBackup {name}: {e}"
                ));
            }
        }
    }
    if failed.is_none()
        && let ScheduleStep::Take { due, .. } = &verify_step
    {
        match request_verification(ctx, cluster, Time(*due)).await {
            Ok(Some(backup)) => notices.push(Notice {
                type_: EventType::Normal,
                reason: "VerificationRequested".into(),
                note: format!("asked for a verification restore of MySQLBackup {backup}"),
                pod: None,
            }),
            Ok(None) => notices.push(Notice {
                type_: EventType::Normal,
                reason: "NothingToVerify".into(),
                note: "no completed MySQLBackup of this cluster to verify".into(),
                pod: None,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "could not ask for a verification");
                failed = Some(format!("could not ask for a verification restore: {e}"));
            }
        }
    }
    let previous = status.clone();
    if let Some(message) = failed {
        // Not recorded as taken: the next round tries again.
        set_condition(
            &mut status.conditions,
            ConditionType::BackupScheduled,
            false,
            "BackupNotCreated",
            message,
            cluster.metadata.generation,
            now,
        );
    } else {
        record_schedule(
            status,
            &step,
            &verify_step,
            cluster.metadata.generation,
            now,
        );
    }
    notices.extend(Notice::if_newly_false(
        &previous,
        status,
        ConditionType::BackupScheduled,
    ));
    notices
}

/// Marks the newest completed backup of `cluster` for verification (unless one of it runs);
/// its name, or None when the cluster has no completed backup.
async fn request_verification(
    ctx: &Context,
    cluster: &MySQLCluster,
    due: Time,
) -> Result<Option<String>, kube::Error> {
    let namespace = cluster.namespace().unwrap_or_default();
    let api: Api<MySQLBackup> = Api::namespaced(ctx.client.clone(), &namespace);
    let backups = api.list(&ListParams::default()).await?.items;
    let Some(newest) = newest_completed(&backups, &cluster.name_any()) else {
        return Ok(None);
    };
    let name = newest.name_any();
    let running = newest
        .status
        .as_ref()
        .and_then(|s| s.verification.as_ref())
        .and_then(|v| v.phase)
        .is_some_and(|p| matches!(p, VerificationPhase::Requested | VerificationPhase::Running));
    if !running {
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"verification": request(due)}})),
        )
        .await?;
    }
    Ok(Some(name))
}

/// The cluster's completed backup that completed last.
pub fn newest_completed<'a>(backups: &'a [MySQLBackup], cluster: &str) -> Option<&'a MySQLBackup> {
    backups
        .iter()
        .filter(|b| b.spec.cluster == cluster)
        .filter(|b| b.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Completed))
        .max_by_key(|b| {
            (
                b.status
                    .as_ref()
                    .and_then(|s| s.completed_at.as_ref())
                    .map(|t| t.0),
                b.name_any(),
            )
        })
}

async fn create_backup(
    ctx: &Context,
    cluster: &MySQLCluster,
    name: &str,
) -> Result<(), kube::Error> {
    let namespace = cluster.namespace().unwrap_or_default();
    let backup: MySQLBackup = serde_json::from_value(json!({
        "apiVersion": "mysql.sakila.dev/v1alpha1",
        "kind": "MySQLBackup",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {SCHEDULED_BY_LABEL: cluster.name_any()},
        },
        "spec": {"cluster": cluster.name_any()},
    }))
    .expect("a backup object is well-formed");
    let api: Api<MySQLBackup> = Api::namespaced(ctx.client.clone(), &namespace);
    match api.create(&PostParams::default(), &backup).await {
        Ok(_) => Ok(()),
        // Made by an earlier round whose status write was lost.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The schedules in the status: their last fire times and the `BackupScheduled` condition
/// (absent without either schedule).
pub fn record_schedule(
    status: &mut MySQLClusterStatus,
    backups: &ScheduleStep,
    verifications: &ScheduleStep,
    generation: Option<i64>,
    now: Time,
) {
    status.last_scheduled_backup = last_fire(backups, status.last_scheduled_backup.take());
    status.last_scheduled_verification =
        last_fire(verifications, status.last_scheduled_verification.take());
    let invalid = [backups, verifications]
        .into_iter()
        .find_map(|step| match step {
            ScheduleStep::Invalid(why) => Some(why.clone()),
            _ => None,
        });
    let (ok, reason, message) = match (invalid, backups, verifications) {
        (Some(why), _, _) => (false, "InvalidSchedule", why),
        (None, ScheduleStep::Off, ScheduleStep::Off) => {
            status
                .conditions
                .retain(|c| c.type_ != ConditionType::BackupScheduled);
            return;
        }
        (None, _, _) => {
            let parts: Vec<String> = [(backups, "backup"), (verifications, "verification")]
                .into_iter()
                .filter_map(|(step, what)| next_message(step, what))
                .collect();
            (true, "Scheduled", parts.join("; "))
        }
    };
    set_condition(
        &mut status.conditions,
        ConditionType::BackupScheduled,
        ok,
        reason,
        message,
        generation,
        now,
    );
}

/// The fire time to record: none without a schedule, the last one kept while it is invalid
/// (fixing it does not fire at once).
fn last_fire(step: &ScheduleStep, kept: Option<Time>) -> Option<Time> {
    match step {
        ScheduleStep::Off => None,
        ScheduleStep::Invalid(_) => kept,
        ScheduleStep::Wait { last, .. } => Some(Time(*last)),
        ScheduleStep::Take { due, .. } => Some(Time(*due)),
    }
}

fn next_message(step: &ScheduleStep, what: &str) -> Option<String> {
    let next = match step {
        ScheduleStep::Wait { next, .. } | ScheduleStep::Take { next, .. } => next,
        ScheduleStep::Off | ScheduleStep::Invalid(_) => return None,
    };
    Some(match next {
        Some(next) => format!("the next {what} is due at {next}"),
        None => format!("the {what} schedule never fires again"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::root_password::newly_false;

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    fn condition(status: &MySQLClusterStatus) -> Option<(String, String, String)> {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == ConditionType::BackupScheduled)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    }

    #[test]
    fn the_status_says_when_the_next_backup_is_due_or_why_the_schedule_is_unusable() {
        let now = Time(at("2026-11-29T04:00:00Z"));
        let mut status = MySQLClusterStatus::default();
        record_schedule(
            &mut status,
            &ScheduleStep::Take {
                due: at("2026-11-29T03:00:00Z"),
                next: Some(at("2026-11-30T03:00:00Z")),
            },
            &ScheduleStep::Off,
            Some(1),
            now.clone(),
        );
        assert_eq!(
            status.last_scheduled_backup,
            Some(Time(at("2026-11-29T03:00:00Z")))
        );
        assert_eq!(
            condition(&status),
            Some((
                "True".into(),
                "Scheduled".into(),
                "the next backup is due at 2026-11-30T03:00:00Z".into()
            ))
        );

        let previous = status.clone();
        record_schedule(
            &mut status,
            &ScheduleStep::Invalid("spec.backup.schedule: bad".into()),
            &ScheduleStep::Off,
            Some(2),
            now.clone(),
        );
        assert_eq!(
            newly_false(Some(&previous), &status, ConditionType::BackupScheduled),
            Some(("InvalidSchedule".into(), "spec.backup.schedule: bad".into()))
        );
        // The last fire time stays: fixing the schedule does not take a backup at once.
        assert_eq!(status.last_scheduled_backup, previous.last_scheduled_backup);

        record_schedule(
            &mut status,
            &ScheduleStep::Off,
            &ScheduleStep::Off,
            Some(3),
            now,
        );
        assert_eq!(
            (condition(&status), status.last_scheduled_backup),
            (None, None)
        );
    }

    #[test]
    fn the_verification_schedule_is_reported_beside_the_backups_and_alone() {
        let now = Time(at("2026-11-29T05:00:00Z"));
        let mut status = MySQLClusterStatus::default();
        let verify_due = ScheduleStep::Take {
            due: at("2026-11-29T05:00:00Z"),
            next: Some(at("2026-11-30T05:00:00Z")),
        };
        record_schedule(
            &mut status,
            &ScheduleStep::Wait {
                last: at("2026-11-29T03:00:00Z"),
                next: Some(at("2026-11-30T03:00:00Z")),
            },
            &verify_due,
            Some(1),
            now.clone(),
        );
        assert_eq!(
            status.last_scheduled_verification,
            Some(Time(at("2026-11-29T05:00:00Z")))
        );
        assert_eq!(
            condition(&status).map(|c| c.2),
            Some(
                "the next backup is due at 2026-11-30T03:00:00Z; the next verification is due \
                 at 2026-11-30T05:00:00Z"
                    .into()
            )
        );

        // Verification without a backup schedule (backups taken on demand).
        record_schedule(
            &mut status,
            &ScheduleStep::Off,
            &verify_due,
            Some(2),
            now.clone(),
        );
        assert_eq!(
            condition(&status),
            Some((
                "True".into(),
                "Scheduled".into(),
                "the next verification is due at 2026-11-30T05:00:00Z".into()
            ))
        );
        assert_eq!(status.last_scheduled_backup, None);

        // An unusable verification schedule turns the condition false and keeps its last fire.
        let previous = status.clone();
        record_schedule(
            &mut status,
            &ScheduleStep::Off,
            &ScheduleStep::Invalid("spec.backup.verify.schedule: minute 61".into()),
            Some(3),
            now,
        );
        assert_eq!(
            newly_false(Some(&previous), &status, ConditionType::BackupScheduled),
            Some((
                "InvalidSchedule".into(),
                "spec.backup.verify.schedule: minute 61".into()
            ))
        );
        assert_eq!(
            status.last_scheduled_verification,
            previous.last_scheduled_verification
        );
    }

    fn backup(
        name: &str,
        cluster: &str,
        phase: BackupPhase,
        completed: Option<&str>,
    ) -> MySQLBackup {
        let mut backup = MySQLBackup::new(
            name,
            crate::api::MySQLBackupSpec {
                cluster: cluster.into(),
            },
        );
        backup.status = Some(crate::api::MySQLBackupStatus {
            phase: Some(phase),
            completed_at: completed.map(|t| Time(at(t))),
            ..Default::default()
        });
        backup
    }

    #[test]
    fn the_newest_completed_backup_of_the_cluster_is_the_one_verified() {
        let backups = [
            backup(
                "old",
                "shop",
                BackupPhase::Completed,
                Some("2026-11-27T03:00:00Z"),
            ),
            backup(
                "new",
                "shop",
                BackupPhase::Completed,
                Some("2026-11-28T03:00:00Z"),
            ),
            backup(
                "failed",
                "shop",
                BackupPhase::Failed,
                Some("2026-11-29T03:00:00Z"),
            ),
            backup("running", "shop", BackupPhase::Running, None),
            backup(
                "other",
                "blog",
                BackupPhase::Completed,
                Some("2026-11-29T03:00:00Z"),
            ),
        ];
        assert_eq!(
            newest_completed(&backups, "shop").map(|b| b.name_any()),
            Some("new".into())
        );
        assert!(newest_completed(&backups[2..4], "shop").is_none());
    }
}
