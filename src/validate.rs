//! The validate step: the raw CR in, a `ValidatedCluster` out. Builders never read the raw CR.
//!
//! The API server already enforces the CRD's rules; this step re-checks what the builders rely on
//! (an object could predate a rule, or come from a cluster with validation switched off) and
//! resolves defaults that depend on the operator's settings, such as the image.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::api::names::{NameProblem, check_name, reserved_key};
use crate::api::owned_settings::{is_owned_setting, refused_setting};
use crate::api::{
    ClientServiceSpec, DeletionPolicy, MySQLCluster, MySQLClusterSpec, PodTemplateOverrides,
    SecretKeySelector,
};
use crate::clustering::FailoverPolicy;
use crate::lost_nodes::LostNodePolicy;
use crate::resources::naming;
use crate::storage::quantity;

/// Operator-wide settings that shape what the builders produce.
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorSettings {
    /// Repository of the mysqld image; the tag is `spec.version`.
    pub mysql_image_repository: String,
    /// The image whose entrypoint runs `sakila-operator exporter` (the operator's own, by the
    /// chart's default); without one, no cluster can enable monitoring.
    pub exporter_image: Option<String>,
    /// The namespace the operator's pods run in (`POD_NAMESPACE`), which a cluster's
    /// NetworkPolicy lets in; unknown when the operator runs outside the cluster.
    pub operator_namespace: Option<String>,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        Self {
            mysql_image_repository: "mysql".to_string(),
            exporter_image: None,
            operator_namespace: None,
        }
    }
}

/// A spec that the builders can trust: bounded, defaulted and resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedCluster {
    pub name: String,
    pub namespace: String,
    pub generation: Option<i64>,
    pub owner: OwnerReference,
    pub instances: u8,
    /// Pods the StatefulSet keeps: `instances`, or more while the recorded primary is beyond
    /// them (a scale-down waits for the switchover away from it).
    pub serving_instances: u8,
    pub version: String,
    pub image: String,
    pub storage_size: Quantity,
    pub storage_class_name: Option<String>,
    pub storage_selector: Option<LabelSelector>,
    pub deletion_policy: DeletionPolicy,
    pub resources: Option<ResourceRequirements>,
    pub mysql_config: BTreeMap<String, String>,
    pub max_replica_lag_seconds: i32,
    pub root_password: SecretKeySelector,
    pub pod_template: PodTemplateOverrides,
    pub primary_service: ClientServiceSpec,
    pub replicas_service: ClientServiceSpec,
    /// `spec.primaryInstance`, checked to be one of the instances.
    pub primary_instance: Option<u8>,
    pub failover: FailoverPolicy,
    /// `spec.failover`'s rules for instances on lost nodes.
    pub lost_nodes: LostNodePolicy,
    pub paused: bool,
    /// The exporter's image when `spec.monitoring.enabled`; `None` runs no exporter.
    pub exporter_image: Option<String>,
    /// What the NetworkPolicy lets in, when `spec.networkPolicy.enabled`.
    pub network_policy: Option<NetworkPolicyPlan>,
    pub tls: TlsPlan,
    /// How long an old password is still accepted once every instance has the new one.
    pub keep_old_password: std::time::Duration,
    /// `spec.rootAccess`: whether `root@'%'` is to be locked.
    pub root_access: crate::api::RootAccess,
    /// The backup instance 0 is restored from (`spec.bootstrap.recovery`, resolved by the
    /// reconcile, which must read the `MySQLBackup`; `status.restoredFrom` once resolved).
    pub restore: Option<crate::api::RestoreSource>,
    /// The operator's own image (the chart's `--exporter-image`), whose binary a restore runs.
    pub operator_image: Option<String>,
    /// The restore has not happened yet: no primary and no member on record. Only then do the
    /// pods find the restore's settings (the ConfigMap `<name>-restore`); an instance 0 that
    /// loses its volume later is cloned like any other, never given the old backup again.
    pub restore_pending: bool,
}

/// The certificate the instances serve and what TLS is required for.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsPlan {
    /// The Secret the pods mount: `<name>-tls`, or the user's `spec.tls.secretName`.
    pub secret_name: String,
    /// The operator issues the certificate into `secret_name` (no `spec.tls.secretName`).
    pub operator_issued: bool,
    /// `spec.tls.extraNames`, for the operator's certificate.
    pub extra_names: Vec<String>,
    /// `spec.tls.certificateLifetimeMinutes`, for the operator's certificate.
    pub certificate_lifetime: Duration,
    pub require_secure_transport: bool,
}

/// The clients a cluster's NetworkPolicy admits besides the cluster's own pods.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkPolicyPlan {
    /// Where the operator's pods run.
    pub operator_namespace: String,
    /// `spec.networkPolicy.allowedClients`.
    pub allowed_clients: Vec<NetworkPolicyPeer>,
}

/// Why a spec cannot be acted on until the user edits it.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvalidSpec {
    #[error("spec.instances must be between 1 and 9, got {0}")]
    Instances(i32),
    #[error("spec.version must look like 9.7.4, got {0:?}")]
    Version(String),
    #[error("spec.mysqlConfig key {0:?} is managed by the operator and cannot be set")]
    OwnedSetting(String),
    #[error("spec.mysqlConfig key {key:?} cannot be set: {why}")]
    RefusedSetting { key: String, why: &'static str },
    #[error("spec.mysqlConfig key {0:?} is not a valid option name")]
    SettingName(String),
    #[error("spec.mysqlConfig value of {0:?} must be a single line")]
    SettingValue(String),
    #[error(
        "spec.primaryInstance must be the ordinal of one of the {instances} instances, got {got}"
    )]
    PrimaryInstance { got: i32, instances: u8 },
    #[error("spec.storage.size must be a quantity such as 10Gi, got {0:?}")]
    StorageSize(String),
    #[error("the MySQLCluster has no {0}")]
    Metadata(&'static str),
    #[error(transparent)]
    Name(NameProblem),
    #[error(
        "spec.podTemplate.{field} key {key:?} is reserved: the operator sets and reads mysql.sakila.dev/* on its pods"
    )]
    ReservedPodKey { field: &'static str, key: String },
    #[error(
        "spec.monitoring.enabled needs an exporter image, and this operator was started without \
         --exporter-image (Helm value exporter.image)"
    )]
    NoExporterImage,
    #[error(
        "spec.networkPolicy.enabled needs the operator's namespace, to let the operator in, and \
         this operator does not know it (POD_NAMESPACE is unset: it runs outside the cluster)"
    )]
    NoOperatorNamespace,
}

/// Checks the raw resource and resolves everything the builders need.
pub fn validate(
    cluster: &MySQLCluster,
    settings: &OperatorSettings,
) -> Result<ValidatedCluster, InvalidSpec> {
    let spec = &cluster.spec;
    let name = cluster.name_any();
    let namespace = cluster
        .namespace()
        .ok_or(InvalidSpec::Metadata("namespace"))?;
    let owner = cluster
        .controller_owner_ref(&())
        .ok_or(InvalidSpec::Metadata("uid"))?;

    // A name no child can carry never works. A name ending in another cluster's Service suffix
    // is refused only at creation by the API server: such a cluster, made before that rule,
    // works as long as it is alone, and the operator keeps managing it.
    match check_name(&name) {
        Err(NameProblem::ReservedSuffix) | Ok(()) => {}
        Err(problem) => return Err(InvalidSpec::Name(problem)),
    }
    check_pod_template_keys(spec)?;

    let instances = u8::try_from(spec.instances)
        .ok()
        .filter(|n| (1..=9).contains(n))
        .ok_or(InvalidSpec::Instances(spec.instances))?;
    if !is_version(&spec.version) {
        return Err(InvalidSpec::Version(spec.version.clone()));
    }
    if quantity::parse(&spec.storage.size).is_none() {
        return Err(InvalidSpec::StorageSize(spec.storage.size.0.clone()));
    }
    check_mysql_config(&spec.mysql_config)?;

    let primary_instance = match spec.primary_instance {
        None => None,
        Some(got) => Some(
            u8::try_from(got)
                .ok()
                .filter(|p| *p < instances)
                .ok_or(InvalidSpec::PrimaryInstance { got, instances })?,
        ),
    };
    let recorded_primary = cluster
        .status
        .as_ref()
        .and_then(|s| s.current_primary.as_deref())
        .and_then(|p| naming::ordinal_of(&name, p));
    let serving_instances = recorded_primary.map_or(instances, |p| instances.max(p + 1));

    let image = spec
        .image
        .clone()
        .unwrap_or_else(|| format!("{}:{}", settings.mysql_image_repository, spec.version));
    let exporter_image = match (spec.monitoring.enabled, &settings.exporter_image) {
        (false, _) => None,
        (true, Some(image)) => Some(image.clone()),
        (true, None) => return Err(InvalidSpec::NoExporterImage),
    };
    let network_policy = match (spec.network_policy.enabled, &settings.operator_namespace) {
        (false, _) => None,
        (true, Some(namespace)) => Some(NetworkPolicyPlan {
            operator_namespace: namespace.clone(),
            allowed_clients: spec.network_policy.allowed_clients.clone(),
        }),
        (true, None) => return Err(InvalidSpec::NoOperatorNamespace),
    };
    let tls = TlsPlan {
        secret_name: spec
            .tls
            .secret_name
            .clone()
            .unwrap_or_else(|| naming::tls_secret(&name)),
        operator_issued: spec.tls.secret_name.is_none(),
        extra_names: spec.tls.extra_names.clone(),
        // The CRD bounds it; an object from before the rule gets at least the minimum.
        certificate_lifetime: Duration::from_secs(
            60 * u64::try_from(spec.tls.certificate_lifetime_minutes.max(3)).unwrap_or(3),
        ),
        require_secure_transport: spec.tls.require_secure_transport,
    };
    let root_password = spec
        .root_password_secret
        .clone()
        .unwrap_or_else(|| SecretKeySelector {
            name: naming::credentials_secret(&name),
            key: naming::ROOT_PASSWORD_KEY.to_string(),
        });

    Ok(ValidatedCluster {
        generation: cluster.metadata.generation,
        owner,
        instances,
        serving_instances,
        version: spec.version.clone(),
        image,
        storage_size: spec.storage.size.clone(),
        storage_class_name: spec.storage.storage_class_name.clone(),
        storage_selector: spec.storage.selector.clone(),
        deletion_policy: spec.storage.deletion_policy,
        resources: spec.resources.clone(),
        mysql_config: spec.mysql_config.clone(),
        max_replica_lag_seconds: spec.replication.max_lag_seconds,
        root_password,
        pod_template: spec.pod_template.clone(),
        primary_service: spec.primary_service.clone(),
        replicas_service: spec.replicas_service.clone(),
        primary_instance,
        failover: failover_policy(spec),
        lost_nodes: lost_node_policy(spec),
        paused: spec.paused,
        exporter_image,
        network_policy,
        tls,
        keep_old_password: std::time::Duration::from_secs(
            spec.password_rotation.keep_old_password_seconds.max(0) as u64,
        ),
        root_access: spec.root_access,
        restore: cluster
            .status
            .as_ref()
            .and_then(|s| s.restored_from.clone()),
        operator_image: settings.exporter_image.clone(),
        restore_pending: !bootstrapped(cluster.status.as_ref()),
        name,
        namespace,
    })
}

/// Whether the cluster has had its first primary: one is on record, or members are.
pub fn bootstrapped(status: Option<&crate::api::MySQLClusterStatus>) -> bool {
    status.is_some_and(|s| s.current_primary.is_some() || !s.members.is_empty())
}

/// Pod template labels and annotations may not use the operator's own keys.
fn check_pod_template_keys(spec: &MySQLClusterSpec) -> Result<(), InvalidSpec> {
    for (field, keys) in [
        ("labels", &spec.pod_template.labels),
        ("annotations", &spec.pod_template.annotations),
    ] {
        if let Some(key) = reserved_key(keys.keys()) {
            return Err(InvalidSpec::ReservedPodKey {
                field,
                key: key.clone(),
            });
        }
    }
    Ok(())
}

/// Each `spec.mysqlConfig` setting is a plain name the operator leaves to the user, with a
/// one-line value.
fn check_mysql_config(config: &BTreeMap<String, String>) -> Result<(), InvalidSpec> {
    for (key, value) in config {
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(InvalidSpec::SettingName(key.clone()));
        }
        if is_owned_setting(key) {
            return Err(InvalidSpec::OwnedSetting(key.clone()));
        }
        if let Some(why) = refused_setting(key) {
            return Err(InvalidSpec::RefusedSetting {
                key: key.clone(),
                why,
            });
        }
        if value.contains(['\n', '\r']) {
            return Err(InvalidSpec::SettingValue(key.clone()));
        }
    }
    Ok(())
}

/// `spec.failover`, with its bounds applied.
fn failover_policy(spec: &MySQLClusterSpec) -> FailoverPolicy {
    let seconds = |s: i32| Duration::from_secs(u64::try_from(s).unwrap_or(0));
    FailoverPolicy {
        enabled: spec.failover.enabled,
        probe_interval: seconds(spec.failover.probe_interval_seconds.max(1)),
        failure_threshold: u32::try_from(spec.failover.failure_threshold.max(1)).unwrap_or(1),
        min_interval: seconds(spec.failover.min_interval_seconds),
    }
}

/// `spec.failover`'s rules for lost nodes, with their bounds applied.
fn lost_node_policy(spec: &MySQLClusterSpec) -> LostNodePolicy {
    LostNodePolicy {
        replace: spec.failover.replace_lost_instances,
        after: Duration::from_secs(
            u64::try_from(spec.failover.lost_node_seconds.max(10)).unwrap_or(10),
        ),
    }
}

fn is_version(version: &str) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::{MySQLClusterSpec, StorageSpec};

    /// A cluster as the API server would hand it over, with defaults applied.
    pub(crate) fn sample_cluster(name: &str, instances: i32) -> MySQLCluster {
        let mut cluster = MySQLCluster::new(
            name,
            MySQLClusterSpec {
                instances,
                version: "9.7.4".into(),
                image: None,
                storage: StorageSpec {
                    size: Quantity("1Gi".into()),
                    storage_class_name: None,
                    selector: None,
                    deletion_policy: Default::default(),
                },
                resources: None,
                mysql_config: BTreeMap::new(),
                replication: Default::default(),
                root_password_secret: None,
                root_access: Default::default(),
                pod_template: Default::default(),
                primary_service: Default::default(),
                replicas_service: Default::default(),
                primary_instance: None,
                failover: Default::default(),
                paused: false,
                monitoring: Default::default(),
                network_policy: Default::default(),
                tls: Default::default(),
                password_rotation: Default::default(),
                backup: None,
                bootstrap: None,
            },
        );
        cluster.metadata.namespace = Some("shop".into());
        cluster.metadata.uid = Some("6b1c3e0e-0000-4000-8000-000000000001".into());
        cluster.metadata.generation = Some(1);
        cluster
    }

    fn with_config(key: &str, value: &str) -> MySQLCluster {
        let mut cluster = sample_cluster("db", 3);
        cluster.spec.mysql_config.insert(key.into(), value.into());
        cluster
    }

    #[test]
    fn instances_outside_one_to_nine_are_invalid() {
        for n in [0, -1, 10] {
            let err = validate(&sample_cluster("db", n), &OperatorSettings::default()).unwrap_err();
            assert_eq!(err, InvalidSpec::Instances(n));
            assert!(
                err.to_string()
                    .starts_with("spec.instances must be between 1 and 9")
            );
        }
    }

    #[test]
    fn version_must_have_three_numeric_parts() {
        for bad in ["9.7", "9.7.x", "latest", "9..4"] {
            let mut cluster = sample_cluster("db", 1);
            cluster.spec.version = bad.into();
            let err = validate(&cluster, &OperatorSettings::default()).unwrap_err();
            assert_eq!(err, InvalidSpec::Version(bad.into()));
        }
    }

    #[test]
    fn owned_mysql_settings_are_refused_with_the_key_named() {
        let err =
            validate(&with_config("server-id", "7"), &OperatorSettings::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.mysqlConfig key \"server-id\" is managed by the operator and cannot be set"
        );
    }

    #[test]
    fn settings_that_lock_the_operator_out_are_refused_with_the_reason() {
        let err = validate(
            &with_config("require_secure_transport", "ON"),
            &OperatorSettings::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "spec.mysqlConfig key \"require_secure_transport\" cannot be set: TLS is required or not through spec.tls.requireSecureTransport"
            ),
            "{err}"
        );
    }

    #[test]
    fn multi_line_setting_values_are_refused() {
        let err = validate(
            &with_config("max_connections", "10\nserver_id=3"),
            &OperatorSettings::default(),
        )
        .unwrap_err();
        assert_eq!(err, InvalidSpec::SettingValue("max_connections".into()));
    }

    #[test]
    fn setting_names_with_cnf_syntax_are_refused() {
        let err =
            validate(&with_config("[client]", "x"), &OperatorSettings::default()).unwrap_err();
        assert_eq!(err, InvalidSpec::SettingName("[client]".into()));
    }

    #[test]
    fn primary_instance_must_be_one_of_the_instances() {
        let mut cluster = sample_cluster("db", 3);
        cluster.spec.primary_instance = Some(3);
        let err = validate(&cluster, &OperatorSettings::default()).unwrap_err();
        assert_eq!(
            err,
            InvalidSpec::PrimaryInstance {
                got: 3,
                instances: 3
            }
        );
        cluster.spec.primary_instance = Some(2);
        let valid = validate(&cluster, &OperatorSettings::default()).unwrap();
        assert_eq!(valid.primary_instance, Some(2));
    }

    #[test]
    fn a_scale_down_keeps_the_primary_until_it_moved() {
        let mut cluster = sample_cluster("db", 3);
        cluster.status = Some(crate::api::MySQLClusterStatus {
            current_primary: Some("db-4".into()),
            ..Default::default()
        });
        let valid = validate(&cluster, &OperatorSettings::default()).unwrap();
        assert_eq!((valid.instances, valid.serving_instances), (3, 5));
        cluster.status.as_mut().unwrap().current_primary = Some("db-1".into());
        let valid = validate(&cluster, &OperatorSettings::default()).unwrap();
        assert_eq!((valid.instances, valid.serving_instances), (3, 3));
    }

    #[test]
    fn failover_defaults_probe_every_two_seconds_and_allow_one_failover_in_five_minutes() {
        let valid = validate(&sample_cluster("db", 3), &OperatorSettings::default()).unwrap();
        assert_eq!(
            valid.failover,
            FailoverPolicy {
                enabled: true,
                probe_interval: Duration::from_secs(2),
                failure_threshold: 3,
                min_interval: Duration::from_secs(300),
            }
        );
    }

    #[test]
    fn a_storage_size_that_is_not_a_quantity_is_invalid() {
        let mut cluster = sample_cluster("db", 1);
        cluster.spec.storage.size = Quantity("ten gigs".into());
        let err = validate(&cluster, &OperatorSettings::default()).unwrap_err();
        assert_eq!(err, InvalidSpec::StorageSize("ten gigs".into()));
    }

    #[test]
    fn image_defaults_to_the_configured_repository_and_version() {
        let settings = OperatorSettings {
            mysql_image_repository: "localhost/sakila/mysql".into(),
            ..OperatorSettings::default()
        };
        let valid = validate(&sample_cluster("db", 1), &settings).unwrap();
        assert_eq!(valid.image, "localhost/sakila/mysql:9.7.4");
    }

    #[test]
    fn explicit_image_wins_over_the_version() {
        let mut cluster = sample_cluster("db", 1);
        cluster.spec.image = Some("registry.example/mysql:custom".into());
        let valid = validate(&cluster, &OperatorSettings::default()).unwrap();
        assert_eq!(valid.image, "registry.example/mysql:custom");
    }

    #[test]
    fn a_network_policy_lets_the_operators_namespace_in_and_needs_to_know_it() {
        let mut cluster = sample_cluster("db", 1);
        cluster.spec.network_policy.enabled = true;
        let known = OperatorSettings {
            operator_namespace: Some("sakila-system".into()),
            ..OperatorSettings::default()
        };
        let plan = validate(&cluster, &known).unwrap().network_policy.unwrap();
        assert_eq!(plan.operator_namespace, "sakila-system");
        assert_eq!(
            validate(&cluster, &OperatorSettings::default()).unwrap_err(),
            InvalidSpec::NoOperatorNamespace
        );
        cluster.spec.network_policy.enabled = false;
        assert_eq!(validate(&cluster, &known).unwrap().network_policy, None);
    }

    #[test]
    fn monitoring_runs_the_operators_exporter_image_and_needs_one() {
        let mut cluster = sample_cluster("db", 1);
        let with_image = OperatorSettings {
            exporter_image: Some("registry.example/sakila:1.0".into()),
            ..OperatorSettings::default()
        };
        assert_eq!(
            validate(&cluster, &with_image).unwrap().exporter_image,
            None
        );
        cluster.spec.monitoring.enabled = true;
        assert_eq!(
            validate(&cluster, &with_image)
                .unwrap()
                .exporter_image
                .as_deref(),
            Some("registry.example/sakila:1.0")
        );
        assert_eq!(
            validate(&cluster, &OperatorSettings::default()).unwrap_err(),
            InvalidSpec::NoExporterImage
        );
    }

    #[test]
    fn names_no_child_can_carry_are_invalid() {
        let long = "a".repeat(53);
        for (name, problem) in [
            ("Orders", NameProblem::NotDnsLabel("Orders".into())),
            ("9lives", NameProblem::NotDnsLabel("9lives".into())),
            ("orders.eu", NameProblem::NotDnsLabel("orders.eu".into())),
            (long.as_str(), NameProblem::TooLong(53)),
        ] {
            let err = validate(&sample_cluster(name, 1), &OperatorSettings::default()).unwrap_err();
            assert_eq!(err, InvalidSpec::Name(problem), "{name}");
            assert!(err.to_string().starts_with("metadata.name must"), "{err}");
        }
    }

    #[test]
    fn a_name_with_a_service_suffix_made_before_the_rule_is_still_managed() {
        let valid = validate(
            &sample_cluster("orders-primary", 1),
            &OperatorSettings::default(),
        );
        assert!(valid.is_ok(), "{valid:?}");
    }

    #[test]
    fn operator_keys_in_the_pod_template_are_refused_with_the_key_named() {
        let mut cluster = sample_cluster("db", 1);
        cluster
            .spec
            .pod_template
            .annotations
            .insert("mysql.sakila.dev/reclone".into(), "true".into());
        let err = validate(&cluster, &OperatorSettings::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.podTemplate.annotations key \"mysql.sakila.dev/reclone\" is reserved: the operator sets and reads mysql.sakila.dev/* on its pods"
        );

        let mut cluster = sample_cluster("db", 1);
        cluster
            .spec
            .pod_template
            .labels
            .insert("mysql.sakila.dev/role".into(), "primary".into());
        let err = validate(&cluster, &OperatorSettings::default()).unwrap_err();
        assert_eq!(
            err,
            InvalidSpec::ReservedPodKey {
                field: "labels",
                key: "mysql.sakila.dev/role".into()
            }
        );

        let mut cluster = sample_cluster("db", 1);
        cluster
            .spec
            .pod_template
            .labels
            .insert("sakila.dev/team".into(), "shop".into());
        assert!(validate(&cluster, &OperatorSettings::default()).is_ok());
    }

    #[test]
    fn root_password_defaults_to_the_generated_credentials_secret() {
        let valid = validate(&sample_cluster("db", 1), &OperatorSettings::default()).unwrap();
        assert_eq!(valid.root_password.name, "db-credentials");
        assert_eq!(valid.root_password.key, "root-password");
    }
}
