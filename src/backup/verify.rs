//! Verification restores (pure): what to do next for a completed backup whose verification was
//! asked for, and the Job that restores it into a scratch server and checks it
//! (`sakila-operator verify`, see `verifier`). The cluster's round asks for one on
//! `spec.backup.verify.schedule`, for its newest completed backup; the result is the backup's
//! `status.verification`.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

use super::decide::JobState;
use super::job::{
    BACKUP_LABEL, RunnerJob, SCRATCH_DIR, SCRATCH_VOLUME, label_value, runner_job, short_name,
    store_ca, store_credentials_env, store_settings,
};
use super::restore::{RESTORE_SETTINGS_ENV, RestoreSettings};
use crate::api::{BackupVerification, ObjectStoreSpec, VerificationPhase};
use crate::resources::statefulset::{empty_dir, mount};

/// Labels a verification's pod (never the cluster's selector labels).
pub const VERIFY_POD_NAME_LABEL: (&str, &str) = ("app.kubernetes.io/name", "sakila-verify");

/// The one step of this round for a completed backup's verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyStep {
    /// Nothing asked for, or the last one is over.
    Idle,
    /// Asked for: create its Job.
    Start,
    /// Its Job runs.
    Watch,
    /// Its Job finished: record the result.
    Record { passed: bool, message: String },
}

/// `job` is the Job of the verification `verification` asked for, if it exists.
pub fn decide_verification(
    verification: Option<&BackupVerification>,
    job: Option<&JobState>,
) -> VerifyStep {
    let Some(phase) = verification.and_then(|v| v.phase) else {
        return VerifyStep::Idle;
    };
    match (phase, job) {
        (VerificationPhase::Passed | VerificationPhase::Failed, _) => VerifyStep::Idle,
        (_, Some(JobState::Succeeded { message })) => VerifyStep::Record {
            passed: true,
            message: message.trim().to_string(),
        },
        (_, Some(JobState::Failed { message })) => VerifyStep::Record {
            passed: false,
            message: if message.trim().is_empty() {
                "the verification Job failed without a message; see its pod's log".into()
            } else {
                message.trim().to_string()
            },
        },
        // Requested with its Job there: created by a round whose status write was lost.
        (_, Some(JobState::Running)) => VerifyStep::Watch,
        (VerificationPhase::Requested, None) => VerifyStep::Start,
        (VerificationPhase::Running, None) => VerifyStep::Record {
            passed: false,
            message: "the verification Job disappeared before it finished".into(),
        },
    }
}

/// The Job of the verification asked for at `requested_at`: one per request, so a new request
/// never finds the last one's finished Job.
pub fn verify_job_name(backup: &str, requested_at: Option<&Time>) -> String {
    let request = requested_at.map(|t| t.0.as_second()).unwrap_or_default();
    short_name(backup, &format!("verify-{request}"))
}

/// The merge patch of `status.verification` that asks for a verification: it replaces the
/// whole of the last one, whose result must not stay beside the new request.
pub fn request(at: Time) -> serde_json::Value {
    serde_json::json!({
        "phase": VerificationPhase::Requested,
        "requestedAt": at,
        "startedAt": null,
        "completedAt": null,
        "message": null,
    })
}

/// Everything the verification's Job depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyJobInput {
    pub backup: String,
    pub namespace: String,
    /// The MySQLBackup, as the controlling owner.
    pub owner: OwnerReference,
    pub requested_at: Option<Time>,
    /// The backup's directory in the store, and what the store and the backup's status say
    /// it holds.
    pub store: ObjectStoreSpec,
    pub directory: String,
    pub sha256: Option<String>,
    pub gtid_set: Option<String>,
    /// The version the backup was taken with, whose mysqld must start on it.
    pub mysql_image: String,
    pub operator_image: String,
    pub resources: Option<ResourceRequirements>,
}

pub fn build_verify_job(input: &VerifyJobInput) -> Job {
    let settings = RestoreSettings {
        store: store_settings(&input.store),
        directory: input.directory.clone(),
        sha256: input.sha256.clone(),
        gtid_set: input.gtid_set.clone(),
        replay: None,
    };
    let mut env = vec![EnvVar {
        name: RESTORE_SETTINGS_ENV.into(),
        value: Some(serde_json::to_string(&settings).expect("settings serialise")),
        ..Default::default()
    }];
    env.extend(store_credentials_env(&input.store, false));
    // The restored data and the scratch server live here: on the node's disk, gone with the pod.
    let mut mounts = vec![mount(SCRATCH_VOLUME, SCRATCH_DIR)];
    let mut volumes = vec![empty_dir(SCRATCH_VOLUME, None)];
    if let Some((volume, mount)) = store_ca(&input.store) {
        mounts.push(mount);
        volumes.push(volume);
    }
    runner_job(RunnerJob {
        name: verify_job_name(&input.backup, input.requested_at.as_ref()),
        namespace: &input.namespace,
        owner: &input.owner,
        pod_labels: BTreeMap::from([
            (
                VERIFY_POD_NAME_LABEL.0.to_string(),
                VERIFY_POD_NAME_LABEL.1.to_string(),
            ),
            (BACKUP_LABEL.to_string(), label_value(&input.backup)),
        ]),
        mysql_image: &input.mysql_image,
        operator_image: &input.operator_image,
        subcommand: "verify",
        env,
        mounts,
        volumes,
        resources: input.resources.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(phase: VerificationPhase) -> BackupVerification {
        BackupVerification {
            phase: Some(phase),
            ..Default::default()
        }
    }

    #[test]
    fn a_verification_starts_when_asked_for_and_records_how_its_job_ended() {
        use VerificationPhase::*;
        let ok = JobState::Succeeded {
            message: "restored\n".into(),
        };
        let failed = |message: &str| JobState::Failed {
            message: message.into(),
        };
        let cases = [
            (None, None, VerifyStep::Idle),
            (Some(at(Passed)), None, VerifyStep::Idle),
            (Some(at(Failed)), Some(&ok), VerifyStep::Idle),
            (Some(at(Requested)), None, VerifyStep::Start),
            (
                Some(at(Requested)),
                Some(&JobState::Running),
                VerifyStep::Watch,
            ),
            (
                Some(at(Running)),
                Some(&JobState::Running),
                VerifyStep::Watch,
            ),
            (
                Some(at(Running)),
                Some(&ok),
                VerifyStep::Record {
                    passed: true,
                    message: "restored".into(),
                },
            ),
            (
                Some(at(Running)),
                Some(&failed("the backup is not the one expected")),
                VerifyStep::Record {
                    passed: false,
                    message: "the backup is not the one expected".into(),
                },
            ),
            (
                Some(at(Running)),
                Some(&failed(" ")),
                VerifyStep::Record {
                    passed: false,
                    message: "the verification Job failed without a message; see its pod's log"
                        .into(),
                },
            ),
            (
                Some(at(Running)),
                None,
                VerifyStep::Record {
                    passed: false,
                    message: "the verification Job disappeared before it finished".into(),
                },
            ),
        ];
        for (verification, job, expected) in cases {
            assert_eq!(
                decide_verification(verification.as_ref(), job),
                expected,
                "{verification:?} with {job:?}"
            );
        }
    }

    /// A JSON merge patch (RFC 7386), as the API server applies it.
    fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
        let Some(fields) = patch.as_object() else {
            *target = patch.clone();
            return;
        };
        if !target.is_object() {
            *target = serde_json::json!({});
        }
        let object = target.as_object_mut().unwrap();
        for (key, value) in fields {
            if value.is_null() {
                object.remove(key);
            } else {
                merge(
                    object.entry(key.clone()).or_insert(serde_json::Value::Null),
                    value,
                );
            }
        }
    }

    #[test]
    fn a_request_clears_the_last_result() {
        let at = Time("2026-11-29T05:00:00Z".parse().unwrap());
        let mut status = serde_json::json!({"verification": {
            "phase": "Failed", "requestedAt": "2026-11-28T05:00:00Z",
            "startedAt": "2026-11-28T05:00:01Z", "completedAt": "2026-11-28T05:01:00Z",
            "message": "damaged",
        }});
        merge(
            &mut status,
            &serde_json::json!({"verification": request(at.clone())}),
        );
        let verification: BackupVerification =
            serde_json::from_value(status["verification"].clone()).unwrap();
        assert_eq!(
            verification,
            BackupVerification {
                phase: Some(VerificationPhase::Requested),
                requested_at: Some(at),
                ..Default::default()
            }
        );
    }

    #[test]
    fn each_request_has_its_own_job_whose_name_fits_a_label() {
        let t = |s: &str| Time(s.parse().unwrap());
        let first = verify_job_name("shop-202611290300", Some(&t("2026-11-29T05:00:00Z")));
        let second = verify_job_name("shop-202611290300", Some(&t("2026-11-30T05:00:00Z")));
        assert_eq!(first, "shop-202611290300-verify-1795928400");
        assert_ne!(first, second);
        let long = verify_job_name(&"b".repeat(253), Some(&t("2026-11-29T05:00:00Z")));
        assert!(long.len() <= 63, "{long}");
        assert!(long.ends_with("-verify-1795928400"), "{long}");
    }

    #[test]
    fn the_job_restores_the_backup_it_names_into_scratch() {
        let store: ObjectStoreSpec = serde_json::from_value(serde_json::json!({
            "endpoint": "http://store:9000", "bucket": "b", "credentialsSecret": "store"
        }))
        .unwrap();
        let job = build_verify_job(&VerifyJobInput {
            backup: "base".into(),
            namespace: "ns".into(),
            owner: OwnerReference::default(),
            requested_at: None,
            store,
            directory: "ns/shop/backups/base".into(),
            sha256: Some("ab".into()),
            gtid_set: Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5".into()),
            mysql_image: "mysql:9.7.4".into(),
            operator_image: "sakila:1".into(),
            resources: None,
        });
        let pod = job.spec.unwrap().template.spec.unwrap();
        let runner = &pod.containers[0];
        assert_eq!(runner.image.as_deref(), Some("mysql:9.7.4"));
        assert_eq!(runner.command.as_ref().unwrap()[1], "verify");
        let settings = runner.env.as_ref().unwrap()[0].value.clone().unwrap();
        let settings: RestoreSettings = serde_json::from_str(&settings).unwrap();
        assert_eq!(settings.directory, "ns/shop/backups/base");
        assert_eq!(settings.sha256.as_deref(), Some("ab"));
        assert_eq!(settings.replay, None, "a verification replays nothing");
        let mounts: Vec<&str> = runner
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert!(mounts.contains(&SCRATCH_DIR), "{mounts:?}");
        assert_eq!(
            pod.automount_service_account_token,
            Some(false),
            "the Job needs no API access"
        );
    }
}
