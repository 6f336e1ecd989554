//! The schedule step of a cluster's round: when `spec.backup.schedule` is due, create the
//! `MySQLBackup` for it (the backup controller takes it), and report the schedule in the
//! `BackupScheduled` condition. A round at rest computes the next fire time and calls nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::PostParams;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::context::Context;
use super::report::Notice;
use crate::api::conditions::{ConditionType, set_condition};
use crate::api::{MySQLBackup, MySQLCluster, MySQLClusterStatus};
use crate::backup::schedule::{ScheduleStep, schedule_step, scheduled_backup_name};

/// Labels a scheduled backup with the cluster whose schedule made it.
pub const SCHEDULED_BY_LABEL: &str = "mysql.sakila.dev/scheduled-by";

/// Takes a due backup and records the schedule in `status`; returns the events to publish.
pub async fn schedule_backups(
    ctx: &Context,
    cluster: &MySQLCluster,
    status: &mut MySQLClusterStatus,
    now: Time,
) -> Vec<Notice> {
    let expression = cluster
        .spec
        .backup
        .as_ref()
        .and_then(|b| b.schedule.as_deref());
    let last = status.last_scheduled_backup.as_ref().map(|t| t.0);
    let step = schedule_step(expression, last, now.0);
    let mut notices = Vec::new();
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
                // Not recorded as taken: the next round tries again.
                tracing::warn!(backup = %name, error = %e, "could not create a scheduled backup");
                let previous = status.clone();
                set_condition(
                    &mut status.conditions,
                    ConditionType::BackupScheduled,
                    false,
                    "BackupNotCreated",
                    format!("could not create the scheduled MySQLBackup {name}: {e}"),
                    cluster.metadata.generation,
                    now,
                );
                notices.extend(Notice::if_newly_false(
                    &previous,
                    status,
                    ConditionType::BackupScheduled,
                ));
                return notices;
            }
        }
    }
    let previous = status.clone();
    record_schedule(status, &step, cluster.metadata.generation, now);
    notices.extend(Notice::if_newly_false(
        &previous,
        status,
        ConditionType::BackupScheduled,
    ));
    notices
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

/// The schedule in the status: the last fire time and the `BackupScheduled` condition (absent
/// without a schedule).
pub fn record_schedule(
    status: &mut MySQLClusterStatus,
    step: &ScheduleStep,
    generation: Option<i64>,
    now: Time,
) {
    let (ok, reason, message) = match step {
        ScheduleStep::Off => {
            status.last_scheduled_backup = None;
            status
                .conditions
                .retain(|c| c.type_ != ConditionType::BackupScheduled);
            return;
        }
        ScheduleStep::Invalid(why) => (false, "InvalidSchedule", why.clone()),
        ScheduleStep::Wait { last, next } => {
            status.last_scheduled_backup = Some(Time(*last));
            (true, "Scheduled", next_message(*next))
        }
        ScheduleStep::Take { due, next } => {
            status.last_scheduled_backup = Some(Time(*due));
            (true, "Scheduled", next_message(*next))
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

fn next_message(next: Option<jiff::Timestamp>) -> String {
    match next {
        Some(next) => format!("the next backup is due at {next}"),
        None => "the schedule never fires again".into(),
    }
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
            Some(2),
            now.clone(),
        );
        assert_eq!(
            newly_false(Some(&previous), &status, ConditionType::BackupScheduled),
            Some(("InvalidSchedule".into(), "spec.backup.schedule: bad".into()))
        );
        // The last fire time stays: fixing the schedule does not take a backup at once.
        assert_eq!(status.last_scheduled_backup, previous.last_scheduled_backup);

        record_schedule(&mut status, &ScheduleStep::Off, Some(3), now);
        assert_eq!(
            (condition(&status), status.last_scheduled_backup),
            (None, None)
        );
    }
}
