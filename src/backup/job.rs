//! The Job that takes one backup (pure builder): the cluster's mysqld image runs the operator's
//! binary (`sakila-operator backup`, copied in by an init container from the operator's image),
//! which clones a donor instance into the pod's scratch volume and streams it to the store.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, KeyToPath, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sha2::{Digest, Sha256};

use super::settings::{
    CLONE_PASSWORD_ENV, RunnerSettings, SETTINGS_ENV, STORE_ACCESS_KEY_ID_ENV,
    STORE_SECRET_ACCESS_KEY_ENV, StoreSettings,
};
use crate::api::{ACCESS_KEY_ID_KEY, ObjectStoreSpec, SECRET_ACCESS_KEY_KEY};
use crate::resources::naming;
use crate::resources::statefulset::{
    empty_dir, mount, optional_secret_env, restricted_security_context, secret_env,
    sidecar_resources,
};

/// Labels of a backup's pod. Deliberately not the cluster's selector labels: the Services and
/// the operator's pod lists must never take it for an instance.
pub const BACKUP_POD_NAME_LABEL: (&str, &str) = ("app.kubernetes.io/name", "sakila-backup");
/// The cluster a backup pod copies, which the cluster's NetworkPolicy lets in.
pub const BACKUP_CLUSTER_LABEL: &str = "mysql.sakila.dev/backup-of";
/// The MySQLBackup a Job belongs to.
pub const BACKUP_LABEL: &str = "mysql.sakila.dev/backup";
/// The runner's container.
pub const RUNNER_CONTAINER: &str = "backup";

const TOOLS_VOLUME: &str = "tools";
const TOOLS_DIR: &str = "/sakila";
pub const SCRATCH_VOLUME: &str = "scratch";
/// Where a runner's scratch volume is mounted.
pub const SCRATCH_DIR: &str = "/scratch";
const STORE_CA_VOLUME: &str = "store-ca";
const STORE_CA_DIR: &str = "/etc/sakila-store-ca";
const STORE_CA_FILE: &str = "ca.crt";
const MYSQL_UID: i64 = 999;
/// A backup that has not finished in a day is stuck.
const ACTIVE_DEADLINE_SECONDS: i64 = 24 * 3600;
/// The finished Job (and its pod's log) is kept a day for a look, then removed; the
/// MySQLBackup keeps the outcome.
const TTL_AFTER_FINISHED_SECONDS: i32 = 24 * 3600;

/// Everything the Job depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupJobInput {
    pub backup: String,
    pub namespace: String,
    /// The MySQLBackup, as the controlling owner.
    pub owner: OwnerReference,
    pub cluster: String,
    /// The cluster's mysqld image: a clone needs the donor's version.
    pub mysql_image: String,
    /// The operator's image, whose binary runs the backup.
    pub operator_image: String,
    /// The instance cloned from.
    pub donor_pod: String,
    /// The donor account and the credentials-Secret key of its password.
    pub donor_user: String,
    pub donor_password_key: String,
    /// The Secret with the cluster's CA (`ca.crt`).
    pub tls_secret: String,
    pub store: ObjectStoreSpec,
    /// `spec.backup.resources`, if set.
    pub resources: Option<ResourceRequirements>,
    /// The cluster's binary log archive, when it archives.
    pub archive: Option<String>,
}

/// The Job's name: `<backup>-backup`, shortened with a hash when that would not fit a label.
pub fn job_name(backup: &str) -> String {
    short_name(backup, "backup")
}

/// `<backup>-<suffix>`, the backup's part shortened with a hash of it when the whole would not
/// fit a label.
pub fn short_name(backup: &str, suffix: &str) -> String {
    const MAX: usize = 63;
    let name = format!("{backup}-{suffix}");
    if name.len() <= MAX {
        return name;
    }
    let hash = hex8(backup);
    let keep = MAX.saturating_sub(suffix.len() + hash.len() + 2);
    format!("{}-{hash}-{suffix}", backup[..keep].trim_end_matches('-'))
}

fn hex8(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn build_backup_job(input: &BackupJobInput) -> Job {
    let donor_host = format!(
        "{}.{}.{}.svc",
        input.donor_pod,
        naming::headless_service(&input.cluster),
        input.namespace
    );
    let settings = RunnerSettings {
        namespace: input.namespace.clone(),
        cluster: input.cluster.clone(),
        backup: input.backup.clone(),
        donor_pod: input.donor_pod.clone(),
        donor_host,
        donor_port: naming::MYSQL_PORT as u16,
        clone_user: input.donor_user.clone(),
        donor_ca_path: Some(format!("{}/{}", naming::TLS_DIR, naming::CA_CERT_KEY)),
        store: store_settings(&input.store),
        scratch: SCRATCH_DIR.into(),
        archive: input.archive.clone(),
    };
    // The password the donor has now, not the credentials Secret's, which a rotation may not
    // have set yet.
    let credentials = naming::applied_passwords_secret(&input.cluster);
    let mut env = vec![
        EnvVar {
            name: SETTINGS_ENV.into(),
            value: Some(settings.to_env_value()),
            ..Default::default()
        },
        secret_env(CLONE_PASSWORD_ENV, &credentials, &input.donor_password_key),
    ];
    env.extend(store_credentials_env(&input.store, false));
    let mut mounts = vec![
        mount(SCRATCH_VOLUME, SCRATCH_DIR),
        mount(naming::TLS_VOLUME, naming::TLS_DIR),
    ];
    let mut volumes = vec![
        // The copy of the data lives here until it is uploaded: on the node's disk, never on a
        // volume of the cluster.
        empty_dir(SCRATCH_VOLUME, None),
        secret_volume(
            naming::TLS_VOLUME,
            &input.tls_secret,
            naming::CA_CERT_KEY,
            naming::CA_CERT_KEY,
        ),
    ];
    if let Some((volume, mount)) = store_ca(&input.store) {
        mounts.push(mount);
        volumes.push(volume);
    }
    runner_job(RunnerJob {
        name: job_name(&input.backup),
        namespace: &input.namespace,
        owner: &input.owner,
        pod_labels: BTreeMap::from([
            (
                BACKUP_POD_NAME_LABEL.0.to_string(),
                BACKUP_POD_NAME_LABEL.1.to_string(),
            ),
            (BACKUP_CLUSTER_LABEL.to_string(), input.cluster.clone()),
            (BACKUP_LABEL.to_string(), label_value(&input.backup)),
        ]),
        mysql_image: &input.mysql_image,
        operator_image: &input.operator_image,
        subcommand: "backup",
        env,
        mounts,
        volumes,
        resources: input.resources.clone(),
    })
}

/// What differs between the Jobs that run the operator's binary in the cluster's mysqld image.
pub struct RunnerJob<'a> {
    pub name: String,
    pub namespace: &'a str,
    /// The controlling owner (the `MySQLBackup`).
    pub owner: &'a OwnerReference,
    pub pod_labels: BTreeMap<String, String>,
    pub mysql_image: &'a str,
    pub operator_image: &'a str,
    /// `sakila-operator <subcommand>` runs in the runner container.
    pub subcommand: &'a str,
    pub env: Vec<EnvVar>,
    /// Besides the tools volume, which every runner has.
    pub mounts: Vec<VolumeMount>,
    pub volumes: Vec<Volume>,
    /// `spec.backup.resources`, if set.
    pub resources: Option<ResourceRequirements>,
}

/// A Job whose one pod copies the operator's binary into the tools volume, then runs it in the
/// cluster's mysqld image as the mysql user, restricted, once (`backoffLimit` 0: a failure is
/// reported, not retried).
pub fn runner_job(spec: RunnerJob) -> Job {
    let mut mounts = vec![tools_mount()];
    mounts.extend(spec.mounts);
    let mut volumes = vec![tools_volume()];
    volumes.extend(spec.volumes);
    let runner = Container {
        name: RUNNER_CONTAINER.into(),
        image: Some(spec.mysql_image.to_string()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec![tools_binary(), spec.subcommand.into()]),
        env: Some(spec.env),
        volume_mounts: Some(mounts),
        // A throwaway mysqld (128 MiB buffer pool) and the compressor's buffers.
        resources: Some(
            spec.resources
                .unwrap_or_else(|| sidecar_resources("100m", "512Mi", "1Gi")),
        ),
        security_context: Some(restricted_security_context()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    let mut job_labels = spec.pod_labels.clone();
    job_labels.insert(
        naming::MANAGED_BY_LABEL.to_string(),
        naming::MANAGED_BY.to_string(),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(spec.name),
            namespace: Some(spec.namespace.to_string()),
            labels: Some(job_labels),
            owner_references: Some(vec![spec.owner.clone()]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            // A failed run is reported, not retried: a new MySQLBackup (or the next scheduled
            // one) tries again.
            backoff_limit: Some(0),
            active_deadline_seconds: Some(ACTIVE_DEADLINE_SECONDS),
            ttl_seconds_after_finished: Some(TTL_AFTER_FINISHED_SECONDS),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(spec.pod_labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    init_containers: Some(vec![tools_container(spec.operator_image)]),
                    containers: vec![runner],
                    volumes: Some(volumes),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_user: Some(MYSQL_UID),
                        run_as_group: Some(MYSQL_UID),
                        fs_group: Some(MYSQL_UID),
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The object store as the runner and the restore take it: the spec's, with the CA bundle as
/// the file [`store_ca`] mounts.
pub fn store_settings(store: &ObjectStoreSpec) -> StoreSettings {
    StoreSettings {
        endpoint: store.endpoint.trim_end_matches('/').to_string(),
        bucket: store.bucket.clone(),
        path: store.path.trim_matches('/').to_string(),
        region: store.region.clone(),
        path_style: store.path_style,
        ca_bundle_path: store
            .ca_bundle
            .as_ref()
            .map(|_| format!("{STORE_CA_DIR}/{STORE_CA_FILE}")),
    }
}

/// The store's credentials from their Secret; `optional` when a missing Secret must not keep
/// the container from starting.
pub fn store_credentials_env(store: &ObjectStoreSpec, optional: bool) -> Vec<EnvVar> {
    vec![
        optional_secret_env(
            STORE_ACCESS_KEY_ID_ENV,
            &store.credentials_secret,
            ACCESS_KEY_ID_KEY,
            optional,
        ),
        optional_secret_env(
            STORE_SECRET_ACCESS_KEY_ENV,
            &store.credentials_secret,
            SECRET_ACCESS_KEY_KEY,
            optional,
        ),
    ]
}

/// The store's CA bundle, when it has one: the volume and where it is mounted.
pub fn store_ca(store: &ObjectStoreSpec) -> Option<(Volume, VolumeMount)> {
    let ca = store.ca_bundle.as_ref()?;
    Some((
        secret_volume(STORE_CA_VOLUME, &ca.name, &ca.key, STORE_CA_FILE),
        mount(STORE_CA_VOLUME, STORE_CA_DIR),
    ))
}

/// Copies the operator's binary into the tools volume, for a container of the mysqld image to
/// run: a clone or a restore needs the server's own binaries beside it.
pub fn tools_container(operator_image: &str) -> Container {
    Container {
        name: TOOLS_CONTAINER.into(),
        image: Some(operator_image.to_string()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec![
            "/usr/local/bin/sakila-operator".into(),
            "copy-binary".into(),
            tools_binary(),
        ]),
        volume_mounts: Some(vec![tools_mount()]),
        resources: Some(sidecar_resources("10m", "32Mi", "64Mi")),
        security_context: Some(restricted_security_context()),
        ..Default::default()
    }
}

/// The container copying the operator's binary.
pub const TOOLS_CONTAINER: &str = "tools";

pub fn tools_volume() -> Volume {
    empty_dir(TOOLS_VOLUME, None)
}

pub fn tools_mount() -> VolumeMount {
    mount(TOOLS_VOLUME, TOOLS_DIR)
}

/// Where the operator's binary is, in a container with the tools volume.
pub fn tools_binary() -> String {
    format!("{TOOLS_DIR}/sakila-operator")
}

/// A backup's name as a label value (at most 63 characters).
pub fn label_value(backup: &str) -> String {
    if backup.len() <= 63 {
        backup.to_string()
    } else {
        format!("{}-{}", &backup[..54].trim_end_matches('-'), hex8(backup))
    }
}

fn secret_volume(name: &str, secret: &str, key: &str, path: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            items: Some(vec![KeyToPath {
                key: key.into(),
                path: path.into(),
                ..Default::default()
            }]),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SecretKeySelector as StoreCa;

    fn input() -> BackupJobInput {
        BackupJobInput {
            backup: "orders-nightly".into(),
            namespace: "shop".into(),
            owner: OwnerReference {
                api_version: "mysql.sakila.dev/v1alpha1".into(),
                kind: "MySQLBackup".into(),
                name: "orders-nightly".into(),
                uid: "uid-1".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
            cluster: "orders".into(),
            mysql_image: "mysql:9.7.4".into(),
            operator_image: "sakila:1".into(),
            donor_pod: "orders-2".into(),
            donor_user: "sakila-clone".into(),
            donor_password_key: "clone-password".into(),
            tls_secret: "orders-tls".into(),
            store: ObjectStoreSpec {
                endpoint: "http://minio.store:9000/".into(),
                bucket: "backups".into(),
                path: "/prod/".into(),
                region: "us-east-1".into(),
                path_style: true,
                credentials_secret: "store-keys".into(),
                ca_bundle: None,
            },
            resources: None,
            archive: Some("shop/orders/binlogs/u1".into()),
        }
    }

    #[test]
    fn the_runner_gets_spec_backup_resources_or_the_defaults() {
        let quantity =
            |r: &Option<
                BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
            >,
             key: &str| { r.as_ref().and_then(|m| m.get(key)).map(|q| q.0.clone()) };
        let defaults = runner(&build_backup_job(&input()))
            .resources
            .clone()
            .unwrap();
        assert_eq!(
            quantity(&defaults.requests, "memory").as_deref(),
            Some("512Mi")
        );
        assert_eq!(quantity(&defaults.limits, "memory").as_deref(), Some("1Gi"));
        let asked = ResourceRequirements {
            requests: Some(BTreeMap::from([(
                "cpu".to_string(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("2".into()),
            )])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("4Gi".into()),
            )])),
            ..Default::default()
        };
        let job = build_backup_job(&BackupJobInput {
            resources: Some(asked.clone()),
            ..input()
        });
        assert_eq!(runner(&job).resources.as_ref(), Some(&asked));
    }

    fn runner(job: &Job) -> &Container {
        &job.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
    }

    fn settings(job: &Job) -> RunnerSettings {
        let env = runner(job).env.clone().unwrap();
        RunnerSettings::from_env(|name| {
            env.iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value.clone())
        })
        .unwrap()
    }

    #[test]
    fn the_runner_clones_the_donor_by_its_stable_name_and_checks_it_with_the_clusters_ca() {
        let job = build_backup_job(&input());
        let settings = settings(&job);
        assert_eq!(settings.donor_host, "orders-2.orders.shop.svc");
        assert_eq!(settings.donor_port, 3306);
        assert_eq!(settings.clone_user, "sakila-clone");
        assert_eq!(
            settings.donor_ca_path.as_deref(),
            Some("/etc/mysql-tls/ca.crt")
        );
        assert_eq!(settings.store.endpoint, "http://minio.store:9000");
        assert_eq!(settings.store.path, "prod");
        assert_eq!(settings.store.ca_bundle_path, None);
        assert_eq!(runner(&job).image.as_deref(), Some("mysql:9.7.4"));
    }

    #[test]
    fn secrets_come_from_secret_keys_never_from_the_spec() {
        let job = build_backup_job(&input());
        let env = runner(&job).env.clone().unwrap();
        let from_secret = |name: &str| {
            let var = env.iter().find(|e| e.name == name).unwrap();
            assert_eq!(var.value, None, "{name} must not be in the Job's spec");
            let key = var.value_from.clone().unwrap().secret_key_ref.unwrap();
            (key.name, key.key)
        };
        assert_eq!(
            from_secret(CLONE_PASSWORD_ENV),
            ("orders-applied-passwords".into(), "clone-password".into())
        );
        assert_eq!(
            from_secret(STORE_ACCESS_KEY_ID_ENV),
            ("store-keys".into(), "access-key-id".into())
        );
        assert_eq!(
            from_secret(STORE_SECRET_ACCESS_KEY_ENV),
            ("store-keys".into(), "secret-access-key".into())
        );
    }

    #[test]
    fn the_backup_pod_is_never_taken_for_an_instance_and_runs_once() {
        let job = build_backup_job(&input());
        let spec = job.spec.as_ref().unwrap();
        let labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .clone()
            .unwrap();
        for (key, value) in naming::selector_labels("orders") {
            assert_ne!(labels.get(&key), Some(&value), "{key} would select the pod");
        }
        assert_eq!(
            labels.get(BACKUP_CLUSTER_LABEL).map(String::as_str),
            Some("orders")
        );
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(
            job.metadata.owner_references.as_ref().unwrap()[0].kind,
            "MySQLBackup"
        );
    }

    #[test]
    fn a_store_ca_bundle_is_mounted_and_named_to_the_runner() {
        let mut input = input();
        input.store.ca_bundle = Some(StoreCa {
            name: "store-ca".into(),
            key: "bundle.pem".into(),
        });
        let job = build_backup_job(&input);
        assert_eq!(
            settings(&job).store.ca_bundle_path.as_deref(),
            Some("/etc/sakila-store-ca/ca.crt")
        );
        let pod = job.spec.unwrap().template.spec.unwrap();
        let volume = pod
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == STORE_CA_VOLUME)
            .unwrap();
        let item = &volume.secret.unwrap().items.unwrap()[0];
        assert_eq!(
            (item.key.as_str(), item.path.as_str()),
            ("bundle.pem", "ca.crt")
        );
    }

    #[test]
    fn long_backup_names_still_make_valid_job_names_and_labels() {
        assert_eq!(job_name("nightly"), "nightly-backup");
        let long = "a".repeat(200);
        let name = job_name(&long);
        assert!(name.len() <= 63, "{name}");
        assert_ne!(job_name(&long), job_name(&"a".repeat(199)));
        assert!(label_value(&long).len() <= 63);
        assert_eq!(label_value("nightly"), "nightly");
    }
}
