//! The `MySQLBackup` controller: observe the backup, its cluster and its Job, decide (pure, in
//! [`super::decide`]), then create the Job, collect the manifest from the store, and write the
//! status. Once completed, a backup's verifications asked for by its cluster's schedule run the
//! same way (decided in [`super::verify`]). It shares the operator's client, settings and event recorder with the cluster
//! controller and runs beside it under the same leader.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

use super::archive::{ArchiveLayout, archive_of, unneeded_segments};
use super::decide::{BackupObservation, BackupStep, ClusterState, JobState, decide};
use super::job::{BackupJobInput, RUNNER_CONTAINER, build_backup_job, job_name};
use super::manifest::{BackupLayout, Manifest};
use super::verify::{
    VerifyJobInput, VerifyStep, build_verify_job, decide_verification, verify_job_name,
};
use crate::api::{
    ACCESS_KEY_ID_KEY, BackupPhase, MySQLBackup, MySQLCluster, ObjectStoreSpec,
    SECRET_ACCESS_KEY_KEY, VerificationPhase, human_size,
};
use crate::controller::context::Context;
use crate::controller::reconcile::truncate_note;
use crate::controller::run::Scope;
use crate::mysql::GtidSet;
use crate::objectstore::{self, ObjectStore, StoreConfig, StoreError};
use crate::resources::naming;
use crate::validate::validate;

/// How often a waiting or running backup is looked at without a watch event.
const RECHECK: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the Kubernetes API refused a request: {0}")]
    Kube(#[from] kube::Error),
    #[error("the MySQLBackup has no {0}")]
    Metadata(&'static str),
    #[error("the store's credentials: {0}")]
    Credentials(String),
    #[error("the object store: {0}")]
    Store(Box<StoreError>),
}

// Boxed: the store's errors carry its whole answer, and would make every result large.
impl From<StoreError> for BackupError {
    fn from(error: StoreError) -> Self {
        Self::Store(Box::new(error))
    }
}

/// Runs the controller until `shutdown` turns true.
pub async fn run(context: Arc<Context>, scope: Scope, shutdown: watch::Receiver<bool>) {
    let namespaces = match scope {
        Scope::Cluster => vec![None],
        Scope::Namespaces(list) => list.into_iter().map(Some).collect(),
    };
    let controllers = namespaces.into_iter().map(|namespace| {
        let client = context.client.clone();
        let (backups, jobs): (Api<MySQLBackup>, Api<Job>) = match &namespace {
            None => (Api::all(client.clone()), Api::all(client)),
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client, ns),
            ),
        };
        let mut stop = shutdown.clone();
        let controller = Controller::new(backups, watcher::Config::default());
        context.metrics.watch_backups(controller.store());
        controller
            .owns(
                jobs,
                watcher::Config::default().labels(&naming::managed_selector()),
            )
            .graceful_shutdown_on(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            })
            .run(reconcile, error_policy, context.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "backup reconcile did not complete");
                }
            })
    });
    futures::future::join_all(controllers).await;
}

fn error_policy(_backup: Arc<MySQLBackup>, error: &BackupError, _ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %error, "backup round failed");
    Action::requeue(RECHECK)
}

async fn reconcile(backup: Arc<MySQLBackup>, ctx: Arc<Context>) -> Result<Action, BackupError> {
    let namespace = backup
        .namespace()
        .ok_or(BackupError::Metadata("namespace"))?;
    let name = backup.name_any();
    let client = &ctx.client;
    let clusters: Api<MySQLCluster> = Api::namespaced(client.clone(), &namespace);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let phase = backup.status.as_ref().and_then(|s| s.phase);
    if phase == Some(BackupPhase::Completed) {
        return verify(&ctx, &backup, &namespace).await;
    }
    if phase.is_some_and(BackupPhase::is_final) {
        return Ok(Action::await_change());
    }

    // Observe.
    let cluster = clusters.get_opt(&backup.spec.cluster).await?;
    let cluster_state = match &cluster {
        None => ClusterState::NotFound,
        Some(c) if c.spec.backup.is_none() => ClusterState::NoBackupSpec,
        Some(c) => ClusterState::Ready {
            instances: c
                .status
                .as_ref()
                .map(|s| s.instances.clone())
                .unwrap_or_default(),
        },
    };
    let job = match jobs.get_opt(&job_name(&name)).await? {
        None => None,
        Some(job) => Some(job_state(client, &namespace, &job).await?),
    };
    let step = decide(&BackupObservation {
        phase,
        cluster: cluster_state,
        job,
    });
    tracing::debug!(backup = %name, ?step, "backup step");

    // Act.
    let backups: Api<MySQLBackup> = Api::namespaced(client.clone(), &namespace);
    match step {
        BackupStep::Done => Ok(Action::await_change()),
        BackupStep::Watch => Ok(Action::requeue(RECHECK)),
        BackupStep::Wait { message } => wait(&ctx, &backups, &backup, message).await,
        BackupStep::Start { donor } => {
            let cluster = cluster.expect("a donor comes from an existing cluster");
            let spec = cluster
                .spec
                .backup
                .as_ref()
                .expect("a donor comes from a cluster with spec.backup");
            let (store, resources) = (spec.store.clone(), spec.resources.clone());
            // What would only fail inside the Job (or keep its pod from starting) is found here,
            // and the backup waits, saying why, until it is fixed.
            let (validated, operator_image) =
                match preflight(&ctx, &namespace, &cluster, &store).await {
                    Ok(ready) => ready,
                    Err(message) => return wait(&ctx, &backups, &backup, message).await,
                };
            let (donor_user, donor_password_key) =
                donor_account(client, &namespace, &cluster).await?;
            let owner = backup
                .controller_owner_ref(&())
                .ok_or(BackupError::Metadata("uid"))?;
            let store_spec = store.clone();
            let job = build_backup_job(&BackupJobInput {
                backup: name.clone(),
                namespace: namespace.clone(),
                owner,
                cluster: cluster.name_any(),
                mysql_image: validated.image.clone(),
                operator_image,
                donor_pod: donor.clone(),
                donor_user,
                donor_password_key,
                tls_secret: validated.tls.secret_name.clone(),
                store,
                resources,
                archive: archive_of(&cluster).map(|a| a.directory().to_string()),
            });
            match jobs.create(&PostParams::default(), &job).await {
                Ok(_) => {}
                // Created by an earlier round whose status write was lost.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                // Refused as invalid: what the user set (spec.backup.resources) is wrong; the
                // backup waits, saying so, until it is fixed.
                Err(kube::Error::Api(e)) if e.code == 422 => {
                    let message = format!(
                        "the API server refused the backup Job (check spec.backup.resources of \
                         MySQLCluster {}): {}",
                        cluster.name_any(),
                        e.message
                    );
                    return wait(&ctx, &backups, &backup, message).await;
                }
                Err(e) => return Err(e.into()),
            }
            patch_status(
                &backups,
                &name,
                json!({
                    "phase": BackupPhase::Running,
                    "message": null,
                    "startedAt": Time(jiff::Timestamp::now()),
                    "sourceInstance": donor,
                    "store": store_spec,
                }),
            )
            .await?;
            publish(
                &ctx,
                &backup,
                EventType::Normal,
                "BackupStarted",
                format!("copying {donor} to the object store"),
            )
            .await;
            Ok(Action::requeue(RECHECK))
        }
        BackupStep::Collect => {
            // The store the Job was given, recorded when it started: the cluster or its
            // spec.backup may have gone since.
            let spec = backup
                .status
                .as_ref()
                .and_then(|s| s.store.clone())
                .or_else(|| cluster.and_then(|c| c.spec.backup).map(|b| b.store))
                .ok_or(BackupError::Metadata("store (status.store)"))?;
            let store = open_store(client, &namespace, &spec).await?;
            let layout = BackupLayout::new(&namespace, &backup.spec.cluster, &name);
            let manifest = store.get(&store.key(&layout.manifest())).await?;
            let status = match Manifest::from_json(&manifest) {
                Ok(manifest) => completed_status(&manifest, &spec, &store, &layout).await?,
                Err(e) => json!({"phase": BackupPhase::Failed, "message": e.to_string()}),
            };
            let failed = status["phase"] == json!(BackupPhase::Failed);
            patch_status(&backups, &name, status.clone()).await?;
            if failed {
                publish(
                    &ctx,
                    &backup,
                    EventType::Warning,
                    "BackupFailed",
                    status["message"].as_str().unwrap_or_default().to_string(),
                )
                .await;
            } else {
                publish(
                    &ctx,
                    &backup,
                    EventType::Normal,
                    "BackupCompleted",
                    format!(
                        "{} in {}",
                        status["size"].as_str().unwrap_or_default(),
                        status["location"].as_str().unwrap_or_default()
                    ),
                )
                .await;
                let cluster = clusters.get_opt(&backup.spec.cluster).await?;
                let retention = cluster
                    .as_ref()
                    .and_then(|c| c.spec.backup.as_ref())
                    .map(super::decide::Retention::of)
                    .unwrap_or_default();
                if retention != super::decide::Retention::default() {
                    apply_retention(
                        &ctx,
                        &backups,
                        &store,
                        &namespace,
                        &backup.spec.cluster,
                        cluster.as_ref().and_then(archive_of).as_ref(),
                        retention,
                    )
                    .await;
                }
            }
            Ok(Action::await_change())
        }
        BackupStep::Fail { message } => {
            patch_status(
                &backups,
                &name,
                json!({
                    "phase": BackupPhase::Failed,
                    "message": message,
                    "completedAt": Time(jiff::Timestamp::now()),
                }),
            )
            .await?;
            publish(&ctx, &backup, EventType::Warning, "BackupFailed", message).await;
            Ok(Action::await_change())
        }
    }
}

/// A completed backup's verification: start the Job asked for, watch it, record how it ended.
async fn verify(
    ctx: &Context,
    backup: &MySQLBackup,
    namespace: &str,
) -> Result<Action, BackupError> {
    let name = backup.name_any();
    let status = backup.status.clone().unwrap_or_default();
    let verification = status.verification.clone().unwrap_or_default();
    let in_flight = matches!(
        verification.phase,
        Some(VerificationPhase::Requested | VerificationPhase::Running)
    );
    if !in_flight {
        return Ok(Action::await_change());
    }
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    let backups: Api<MySQLBackup> = Api::namespaced(ctx.client.clone(), namespace);
    let job_name = verify_job_name(&name, verification.requested_at.as_ref());
    let job = match jobs.get_opt(&job_name).await? {
        None => None,
        Some(job) => Some(job_state(&ctx.client, namespace, &job).await?),
    };
    match decide_verification(Some(&verification), job.as_ref()) {
        VerifyStep::Idle => Ok(Action::await_change()),
        VerifyStep::Watch => Ok(Action::requeue(RECHECK)),
        VerifyStep::Record { passed, message } => {
            record_verification(ctx, &backups, backup, passed, message).await
        }
        VerifyStep::Start => {
            let clusters: Api<MySQLCluster> = Api::namespaced(ctx.client.clone(), namespace);
            let input = match clusters.get_opt(&backup.spec.cluster).await? {
                None => Err(format!(
                    "the MySQLCluster {} does not exist: its image and settings verify its backups",
                    backup.spec.cluster
                )),
                Some(cluster) => verify_job_input(ctx, backup, &cluster),
            };
            let input = match input {
                Ok(input) => input,
                Err(message) => {
                    return record_verification(ctx, &backups, backup, false, message).await;
                }
            };
            match jobs
                .create(&PostParams::default(), &build_verify_job(&input))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(kube::Error::Api(e)) if e.code == 422 => {
                    let message = format!(
                        "the API server refused the verification Job (check spec.backup.resources \
                         of MySQLCluster {}): {}",
                        backup.spec.cluster, e.message
                    );
                    return record_verification(ctx, &backups, backup, false, message).await;
                }
                Err(e) => return Err(e.into()),
            }
            patch_status(
                &backups,
                &name,
                json!({"verification": {
                    "phase": VerificationPhase::Running,
                    "startedAt": Time(jiff::Timestamp::now()),
                }}),
            )
            .await?;
            publish(
                ctx,
                backup,
                EventType::Normal,
                "VerificationStarted",
                format!("restoring the backup into scratch space to check it (Job {job_name})"),
            )
            .await;
            Ok(Action::requeue(RECHECK))
        }
    }
}

async fn record_verification(
    ctx: &Context,
    backups: &Api<MySQLBackup>,
    backup: &MySQLBackup,
    passed: bool,
    message: String,
) -> Result<Action, BackupError> {
    let (phase, type_, reason) = if passed {
        (
            VerificationPhase::Passed,
            EventType::Normal,
            "VerificationPassed",
        )
    } else {
        (
            VerificationPhase::Failed,
            EventType::Warning,
            "VerificationFailed",
        )
    };
    patch_status(
        backups,
        &backup.name_any(),
        json!({"verification": {
            "phase": phase,
            "completedAt": Time(jiff::Timestamp::now()),
            "message": message,
        }}),
    )
    .await?;
    publish(ctx, backup, type_, reason, message).await;
    Ok(Action::await_change())
}

/// The verification Job's input: the backup where its status says it is, verified with its
/// cluster's image; an error says why it cannot be verified.
fn verify_job_input(
    ctx: &Context,
    backup: &MySQLBackup,
    cluster: &MySQLCluster,
) -> Result<VerifyJobInput, String> {
    let status = backup.status.clone().unwrap_or_default();
    let (validated, operator_image) = runnable(ctx, cluster, "verifications")?;
    let store = status
        .store
        .clone()
        .ok_or("the MySQLBackup does not record its store")?;
    let namespace = cluster.namespace().unwrap_or_default();
    let spec = cluster.spec.backup.as_ref();
    Ok(VerifyJobInput {
        backup: backup.name_any(),
        namespace: namespace.clone(),
        owner: backup
            .controller_owner_ref(&())
            .ok_or("the MySQLBackup has no uid")?,
        requested_at: status.verification.and_then(|v| v.requested_at),
        store,
        directory: BackupLayout::new(&namespace, &backup.spec.cluster, &backup.name_any())
            .directory()
            .to_string(),
        sha256: status.sha256,
        gtid_set: status.gtid_set,
        mysql_image: validated.image.clone(),
        operator_image,
        resources: spec.and_then(|b| b.resources.clone()),
    })
}

/// Pending, with the reason in the message and a Warning event when the reason is new.
async fn wait(
    ctx: &Context,
    backups: &Api<MySQLBackup>,
    backup: &MySQLBackup,
    message: String,
) -> Result<Action, BackupError> {
    let status = backup.status.as_ref();
    if status.and_then(|s| s.message.as_deref()) != Some(&message)
        || status.and_then(|s| s.phase) != Some(BackupPhase::Pending)
    {
        patch_status(
            backups,
            &backup.name_any(),
            json!({"phase": BackupPhase::Pending, "message": message}),
        )
        .await?;
        publish(ctx, backup, EventType::Warning, "BackupWaiting", message).await;
    }
    Ok(Action::requeue(RECHECK))
}

/// The cluster's validated spec and the operator's image, whose binary runs `what` in the
/// cluster's mysqld image; an error says which is missing.
fn runnable(
    ctx: &Context,
    cluster: &MySQLCluster,
    what: &str,
) -> Result<(crate::validate::ValidatedCluster, String), String> {
    let validated = validate(cluster, &ctx.settings)
        .map_err(|e| format!("the MySQLCluster's spec cannot be used: {e}"))?;
    let operator_image = validated.operator_image.clone().ok_or_else(|| {
        format!(
            "this operator was started without --exporter-image (Helm value exporter.image), \
             the image whose binary runs {what}"
        )
    })?;
    Ok((validated, operator_image))
}

/// Whether a backup of `cluster` can start: its spec usable, the operator's image known, the
/// store's Secret complete, and the store answering with the bucket and taking the credentials.
async fn preflight(
    ctx: &Context,
    namespace: &str,
    cluster: &MySQLCluster,
    store: &ObjectStoreSpec,
) -> Result<(crate::validate::ValidatedCluster, String), String> {
    let (validated, operator_image) = runnable(ctx, cluster, "backups")?;
    let opened = open_store(&ctx.client, namespace, store)
        .await
        .map_err(|e| e.to_string())?;
    opened
        .head_bucket()
        .await
        .map_err(|e| format!("the object store: {e}"))?;
    Ok((validated, operator_image))
}

/// Deletes the completed backups of `cluster` that `retention` no longer keeps: their objects
/// in the store, then the `MySQLBackup`. Best effort: what fails is logged and tried again after
/// the next backup completes.
async fn apply_retention(
    ctx: &Context,
    backups: &Api<MySQLBackup>,
    store: &ObjectStore,
    namespace: &str,
    cluster: &str,
    archive: Option<&ArchiveLayout>,
    retention: super::decide::Retention,
) {
    let listed = match backups.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => {
            tracing::warn!(error = %e, "could not list backups for retention");
            return;
        }
    };
    let now = jiff::Timestamp::now();
    let mut expired_names = Vec::new();
    for (name, why) in super::decide::expired_backups(&listed, cluster, retention, now) {
        let Some(expired) = listed.iter().find(|b| b.name_any() == name) else {
            continue;
        };
        let layout = BackupLayout::new(namespace, cluster, &name);
        // The manifest first: without it the backup is incomplete, never half-trusted.
        let deleted = async {
            store.delete(&store.key(&layout.manifest())).await?;
            store.delete(&store.key(&layout.data())).await
        };
        if let Err(e) = deleted.await {
            tracing::warn!(backup = %name, error = %e, "could not delete an expired backup's objects");
            continue;
        }
        publish(
            ctx,
            expired,
            EventType::Normal,
            "BackupExpired",
            format!("deleted: {why}"),
        )
        .await;
        if let Err(e) = backups.delete(&name, &Default::default()).await {
            tracing::warn!(backup = %name, error = %e, "could not delete an expired MySQLBackup");
        }
        expired_names.push(name);
    }
    let remaining: Vec<GtidSet> = listed
        .iter()
        .filter(|b| b.spec.cluster == cluster && !expired_names.contains(&b.name_any()))
        .filter_map(|b| {
            let status = b.status.as_ref()?;
            (status.phase == Some(BackupPhase::Completed))
                .then(|| GtidSet::parse(status.gtid_set.as_deref()?).ok())
                .flatten()
        })
        .collect();
    if let Some(archive) = archive {
        prune_archive(store, archive, &remaining).await;
    }
}

/// Deletes the archived binary log no remaining backup needs: each segment's index first (a
/// segment without one is not part of the archive), then the segment. Best effort, like the
/// backups' own retention.
async fn prune_archive(store: &ObjectStore, layout: &ArchiveLayout, backups: &[GtidSet]) {
    let indexes = match super::replay::read_indexes(store, layout).await {
        Ok(indexes) => indexes,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the binary log archive for retention");
            return;
        }
    };
    let unneeded = unneeded_segments(&indexes, backups);
    for seq in &unneeded {
        let deleted = async {
            store.delete(&store.key(&layout.index(*seq))).await?;
            store.delete(&store.key(&layout.segment(*seq))).await
        };
        if let Err(e) = deleted.await {
            tracing::warn!(seq, error = %e, "could not delete an archived binary log segment");
            return;
        }
    }
    if !unneeded.is_empty() {
        tracing::info!(
            segments = unneeded.len(),
            "deleted archived binary log that no remaining backup needs"
        );
    }
}

/// The status of a backup whose manifest was read: complete only if the data object in the
/// store has the size the manifest says.
async fn completed_status(
    manifest: &Manifest,
    spec: &ObjectStoreSpec,
    store: &ObjectStore,
    layout: &BackupLayout,
) -> Result<serde_json::Value, BackupError> {
    let data_key = store.key(&layout.data());
    let stored = store
        .list(&data_key)
        .await?
        .into_iter()
        .find(|object| object.key == data_key);
    let problem = match stored {
        None => Some(format!(
            "the data object {data_key} is missing from the store"
        )),
        Some(object) if object.size_bytes != manifest.size_bytes => Some(format!(
            "the data object {data_key} has {} bytes, the manifest says {}",
            object.size_bytes, manifest.size_bytes
        )),
        Some(_) => None,
    };
    if let Some(message) = problem {
        return Ok(json!({"phase": BackupPhase::Failed, "message": message}));
    }
    let completed_at = manifest
        .completed_at
        .parse::<jiff::Timestamp>()
        .unwrap_or_else(|_| jiff::Timestamp::now());
    Ok(json!({
        "phase": BackupPhase::Completed,
        "message": null,
        "completedAt": Time(completed_at),
        "sourceInstance": manifest.source_instance,
        "mysqlVersion": manifest.mysql_version,
        "gtidSet": manifest.gtid_set,
        "binlogFile": manifest.binlog_file,
        "binlogPosition": manifest.binlog_position,
        "location": format!("s3://{}/{}", spec.bucket, store.key(layout.directory())),
        "sizeBytes": manifest.size_bytes,
        "size": human_size(manifest.size_bytes),
        "sha256": manifest.sha256,
        "store": spec,
    }))
}

/// The Job's outcome; a failed one with its runner's termination message.
async fn job_state(client: &Client, namespace: &str, job: &Job) -> Result<JobState, BackupError> {
    let status = job.status.clone().unwrap_or_default();
    let failed_condition = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True");
    let succeeded = status.succeeded.unwrap_or(0) > 0;
    if !succeeded && status.failed.unwrap_or(0) == 0 && failed_condition.is_none() {
        return Ok(JobState::Running);
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("job-name={}", job.name_any());
    let message = pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .iter()
        .flat_map(|pod| {
            pod.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .filter(|c| c.name == RUNNER_CONTAINER)
        .find_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone());
    Ok(if succeeded {
        JobState::Succeeded {
            message: message.unwrap_or_default(),
        }
    } else {
        JobState::Failed {
            message: message
                .or_else(|| failed_condition.and_then(|c| c.message.clone()))
                .unwrap_or_default(),
        }
    })
}

/// The clone donor account, or for a cluster whose Secret predates it, the replication account
/// that had `BACKUP_ADMIN` then (init.sh made the accounts so).
async fn donor_account(
    client: &Client,
    namespace: &str,
    cluster: &MySQLCluster,
) -> Result<(String, String), BackupError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(&naming::credentials_secret(&cluster.name_any()))
        .await?;
    let has_clone = secret
        .and_then(|s| s.data)
        .is_some_and(|data| data.contains_key(naming::CLONE_PASSWORD_KEY));
    Ok(if has_clone {
        (naming::CLONE_USER.into(), naming::CLONE_PASSWORD_KEY.into())
    } else {
        (
            naming::REPLICATION_USER.into(),
            naming::REPLICATION_PASSWORD_KEY.into(),
        )
    })
}

/// The store `spec` names, with its credentials (and CA bundle) from their Secrets.
pub async fn open_store(
    client: &Client,
    namespace: &str,
    spec: &ObjectStoreSpec,
) -> Result<ObjectStore, BackupError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let key_of = |secret: &Option<Secret>, name: &str, key: &str| -> Result<Vec<u8>, BackupError> {
        secret
            .as_ref()
            .ok_or_else(|| BackupError::Credentials(format!("the Secret {name} does not exist")))?
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| v.0.clone())
            .ok_or_else(|| BackupError::Credentials(format!("the Secret {name} has no key {key}")))
    };
    let credentials = secrets.get_opt(&spec.credentials_secret).await?;
    let text = |bytes: Vec<u8>, key: &str| {
        String::from_utf8(bytes).map_err(|_| {
            BackupError::Credentials(format!(
                "the key {key} of the Secret {} is not text",
                spec.credentials_secret
            ))
        })
    };
    let access_key_id = text(
        key_of(&credentials, &spec.credentials_secret, ACCESS_KEY_ID_KEY)?,
        ACCESS_KEY_ID_KEY,
    )?;
    let secret_access_key = text(
        key_of(
            &credentials,
            &spec.credentials_secret,
            SECRET_ACCESS_KEY_KEY,
        )?,
        SECRET_ACCESS_KEY_KEY,
    )?;
    let ca_bundle_pem = match &spec.ca_bundle {
        None => None,
        Some(selector) => {
            let secret = secrets.get_opt(&selector.name).await?;
            Some(key_of(&secret, &selector.name, &selector.key)?)
        }
    };
    Ok(ObjectStore::new(StoreConfig {
        endpoint: spec.endpoint.trim_end_matches('/').to_string(),
        bucket: spec.bucket.clone(),
        prefix: spec.path.trim_matches('/').to_string(),
        region: spec.region.clone(),
        path_style: spec.path_style,
        credentials: objectstore::Credentials {
            access_key_id,
            secret_access_key,
        },
        ca_bundle_pem,
    })?)
}

async fn patch_status(
    api: &Api<MySQLBackup>,
    name: &str,
    status: serde_json::Value,
) -> Result<(), BackupError> {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(())
}

async fn publish(
    ctx: &Context,
    backup: &MySQLBackup,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(truncate_note(note)),
        action: "Backup".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &backup.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish an event");
    }
}
