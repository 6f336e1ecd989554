//! Pure builders, one per child kind. Each returns plain `k8s_openapi` objects with deterministic names.

pub mod config_map;
pub mod mysql_settings;
pub mod naming;
pub mod network_policy;
pub mod pod_disruption_budget;
pub mod secret;
pub mod service;
pub mod statefulset;
pub mod tls;

use std::collections::BTreeMap;
use std::marker::PhantomData;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::validate::ValidatedCluster;
use secret::ClusterPasswords;

/// Children that were built but not yet applied.
#[derive(Debug)]
pub struct Built;
/// Children that the API server has accepted; only now may status be written.
#[derive(Debug)]
pub struct Applied;

/// Every child object of one cluster, in the state the type parameter names.
#[derive(Debug)]
pub struct Resources<State> {
    pub secret: Secret,
    /// `<name>-tls` with the certificate the operator issued; `None` when the user brings one.
    pub tls_secret: Option<Secret>,
    pub config_map: ConfigMap,
    pub online_config_map: ConfigMap,
    pub headless_service: Service,
    pub primary_service: Service,
    pub replicas_service: Service,
    pub statefulset: StatefulSet,
    pub pod_disruption_budget: PodDisruptionBudget,
    /// `None`: the cluster has no NetworkPolicy, and one left from before is deleted.
    pub network_policy: Option<NetworkPolicy>,
    /// The restore's settings while it is pending; `None` deletes one left from before.
    pub restore_config_map: Option<ConfigMap>,
    state: PhantomData<State>,
}

impl Resources<Built> {
    /// Builds every child of the cluster; `carried` from `statefulset::Carried::from_existing`.
    /// `accepted` is `status.acceptedSettings`: the online settings my.cnf may hold.
    pub fn build(
        cluster: &ValidatedCluster,
        credentials: &ClusterPasswords,
        carried: &statefulset::Carried,
        accepted: Option<&BTreeMap<String, String>>,
        tls: Option<&tls::IssuedTls>,
    ) -> Self {
        let online = config_map::my_cnf_online_settings(cluster, accepted);
        let config_map = config_map::build_config_map(cluster);
        let online_config_map = config_map::build_online_config_map(cluster, &online);
        let config_hash = config_map::restart_hash(cluster);
        Self {
            secret: secret::build_secret(cluster, credentials),
            tls_secret: tls.map(|tls| tls::build_tls_secret(cluster, tls)),
            headless_service: service::build_headless_service(cluster),
            primary_service: service::build_primary_service(cluster),
            replicas_service: service::build_replicas_service(cluster),
            statefulset: statefulset::build_statefulset(cluster, &config_hash, carried),
            pod_disruption_budget: pod_disruption_budget::build_pod_disruption_budget(cluster),
            network_policy: network_policy::build_network_policy(cluster),
            restore_config_map: statefulset::build_restore_config_map(cluster),
            config_map,
            online_config_map,
            state: PhantomData,
        }
    }

    /// Marks the children as applied; only the apply step calls this.
    pub(crate) fn into_applied(self) -> Resources<Applied> {
        Resources {
            secret: self.secret,
            tls_secret: self.tls_secret,
            config_map: self.config_map,
            online_config_map: self.online_config_map,
            headless_service: self.headless_service,
            primary_service: self.primary_service,
            replicas_service: self.replicas_service,
            statefulset: self.statefulset,
            pod_disruption_budget: self.pod_disruption_budget,
            network_policy: self.network_policy,
            restore_config_map: self.restore_config_map,
            state: PhantomData,
        }
    }
}

/// Metadata every child shares: name, namespace, labels and the controller owner reference.
pub(crate) fn meta(cluster: &ValidatedCluster, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(cluster.namespace.clone()),
        labels: Some(naming::common_labels(&cluster.name)),
        owner_references: Some(vec![cluster.owner.clone()]),
        ..Default::default()
    }
}

/// A short, stable hash of anything serialisable (serde_json keeps map keys sorted for BTreeMaps).
pub fn content_hash<T: Serialize>(value: &T) -> String {
    let bytes = serde_json::to_vec(value).expect("k8s objects always serialise");
    let digest = Sha256::digest(&bytes);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::api::DeletionPolicy;
    use crate::validate::{OperatorSettings, validate};
    use k8s_openapi::api::core::v1::{Container, TopologySpreadConstraint};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    /// A validated cluster with the image the testbed uses.
    pub(crate) fn validated(name: &str, instances: i32) -> ValidatedCluster {
        let cluster = crate::validate::tests::sample_cluster(name, instances);
        validate(&cluster, &OperatorSettings::default()).expect("sample cluster is valid")
    }

    fn fixed_credentials(cluster: &ValidatedCluster) -> ClusterPasswords {
        let secret = Secret {
            data: Some(
                ClusterPasswords::required_keys(cluster, None)
                    .into_iter()
                    .map(|k| {
                        (
                            k.to_string(),
                            k8s_openapi::ByteString(format!("fixture-{k}").into_bytes()),
                        )
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        ClusterPasswords::complete(cluster, Some(&secret))
    }

    /// Compares `value` with the committed YAML fixture; `UPDATE_FIXTURES=1` rewrites it instead.
    fn assert_matches_fixture<T: Serialize>(name: &str, value: &T) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/resources")
            .join(format!("{name}.yaml"));
        let rendered = serde_yaml::to_string(value).unwrap();
        if std::env::var_os("UPDATE_FIXTURES").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &rendered).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "fixture {} is missing ({e}); run UPDATE_FIXTURES=1 cargo test",
                path.display()
            )
        });
        pretty_assertions::assert_eq!(committed, rendered, "{name} differs from its fixture");
    }

    fn build(cluster: &ValidatedCluster, credentials: &ClusterPasswords) -> Resources<Built> {
        let carried = statefulset::Carried::from_existing(cluster, None);
        Resources::build(cluster, credentials, &carried, None, None)
    }

    fn three_instance_resources() -> Resources<Built> {
        let cluster = validated("db", 3);
        let credentials = fixed_credentials(&cluster);
        build(&cluster, &credentials)
    }

    #[test]
    fn statefulset_matches_fixture() {
        // As the chart runs the operator: it knows its image, and the pods get the agent.
        let mut cluster = validated("db", 3);
        cluster.operator_image = Some("registry.example/sakila:1.0".into());
        let statefulset = build(&cluster, &fixed_credentials(&cluster)).statefulset;
        assert_matches_fixture("statefulset", &statefulset);
    }

    #[test]
    fn a_restored_cluster_restores_before_init_and_keeps_starting_once_the_store_is_gone() {
        let mut cluster = validated("db", 3);
        let init_names = |cluster: &ValidatedCluster| {
            let credentials = fixed_credentials(cluster);
            let set = build(cluster, &credentials).statefulset;
            let pod = set.spec.unwrap().template.spec.unwrap();
            pod.init_containers
                .unwrap()
                .into_iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            init_names(&cluster),
            ["init"],
            "no restore without one asked for"
        );
        cluster.restore = Some(crate::api::RestoreSource {
            store: crate::api::ObjectStoreSpec {
                endpoint: "http://minio:9000".into(),
                bucket: "backups".into(),
                path: String::new(),
                region: "us-east-1".into(),
                path_style: true,
                credentials_secret: "keys".into(),
                ca_bundle: None,
            },
            directory: "shop/orders/backups/nightly".into(),
            backup: Some("nightly".into()),
            sha256: Some("ab".repeat(32)),
            gtid_set: None,
            replay: None,
        });
        assert_eq!(
            init_names(&cluster),
            ["init"],
            "an operator without its own image cannot restore; the reconcile says so"
        );
        cluster.operator_image = Some("sakila:1".into());
        assert_eq!(init_names(&cluster), ["tools", "restore", "init"]);

        let credentials = fixed_credentials(&cluster);
        let built = build(&cluster, &credentials);
        let pod = built.statefulset.spec.unwrap().template.spec.unwrap();
        let restore = &pod.init_containers.as_ref().unwrap()[1];
        assert_eq!(restore.image.as_deref(), Some(cluster.image.as_str()));
        let env = restore.env.clone().unwrap();
        // The settings come from the restore's ConfigMap, optional: gone once restored.
        let from = env
            .iter()
            .find(|e| e.name == crate::backup::restore::RESTORE_SETTINGS_ENV)
            .and_then(|e| e.value_from.clone())
            .and_then(|v| v.config_map_key_ref)
            .unwrap();
        assert_eq!(
            (from.name.as_str(), from.optional),
            ("db-restore", Some(true))
        );
        let config_map = built.restore_config_map.expect("pending: the ConfigMap");
        assert_eq!(config_map.metadata.name.as_deref(), Some("db-restore"));
        let settings: crate::backup::restore::RestoreSettings =
            serde_json::from_str(&config_map.data.unwrap()[&from.key]).unwrap();
        assert_eq!(settings.directory, "shop/orders/backups/nightly");
        assert_eq!(settings.sha256, Some("ab".repeat(32)));
        for name in [
            "SAKILA_STORE_ACCESS_KEY_ID",
            "SAKILA_STORE_SECRET_ACCESS_KEY",
        ] {
            let key = env
                .iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value_from.clone())
                .and_then(|v| v.secret_key_ref)
                .unwrap();
            assert_eq!(
                (key.name.as_str(), key.optional),
                ("keys", Some(true)),
                "{name}"
            );
        }
        for name in ["ROOT_PASSWORD", "OPERATOR_PASSWORD", "PROBE_PASSWORD"] {
            assert!(env.iter().any(|e| e.name == name), "{name}");
        }
        assert!(pod.volumes.unwrap().iter().any(|v| v.name == "tools"));

        // Once the cluster had its first primary the ConfigMap goes, the pod template stays:
        // an instance 0 that loses its volume later is cloned, not given the old backup.
        let mut bootstrapped = cluster.clone();
        bootstrapped.restore_pending = false;
        let after = build(&bootstrapped, &credentials);
        assert_eq!(after.restore_config_map, None);
        assert_eq!(
            after.statefulset,
            build(&cluster, &credentials).statefulset,
            "no rollout when the restore is over"
        );
    }

    #[test]
    fn services_match_fixtures() {
        let r = three_instance_resources();
        assert_matches_fixture("service-headless", &r.headless_service);
        assert_matches_fixture("service-primary", &r.primary_service);
        assert_matches_fixture("service-replicas", &r.replicas_service);
    }

    #[test]
    fn config_map_matches_fixture() {
        assert_matches_fixture("configmap", &three_instance_resources().config_map);
    }

    #[test]
    fn pods_prefer_distinct_nodes_and_zones_unless_the_user_says_how_to_spread() {
        let spread_of = |cluster: &ValidatedCluster| {
            build(cluster, &fixed_credentials(cluster))
                .statefulset
                .spec
                .unwrap()
                .template
                .spec
                .unwrap()
                .topology_spread_constraints
                .unwrap()
        };
        let cluster = validated("db", 3);
        let default = spread_of(&cluster);
        let keys: Vec<(&str, &str, i32)> = default
            .iter()
            .map(|c| {
                (
                    c.topology_key.as_str(),
                    c.when_unsatisfiable.as_str(),
                    c.max_skew,
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("kubernetes.io/hostname", "ScheduleAnyway", 1),
                ("topology.kubernetes.io/zone", "ScheduleAnyway", 1)
            ]
        );
        for constraint in &default {
            let selector = constraint.label_selector.as_ref().unwrap();
            assert_eq!(
                selector.match_labels.as_ref(),
                Some(&naming::selector_labels("db"))
            );
        }

        let mut required = validated("db", 3);
        required.pod_template.topology_spread_constraints = vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "kubernetes.io/hostname".into(),
            when_unsatisfiable: "DoNotSchedule".into(),
            ..Default::default()
        }];
        assert_eq!(
            spread_of(&required),
            required.pod_template.topology_spread_constraints
        );
    }

    #[test]
    fn a_storage_selector_goes_into_the_claim_template() {
        let mut cluster = validated("db", 3);
        let selector = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some(BTreeMap::from([("pool".to_string(), "fast".to_string())])),
            ..Default::default()
        };
        cluster.storage_selector = Some(selector.clone());
        let built = build(&cluster, &fixed_credentials(&cluster)).statefulset;
        let template = &built.spec.unwrap().volume_claim_templates.unwrap()[0];
        assert_eq!(template.spec.as_ref().unwrap().selector, Some(selector));
    }

    #[test]
    fn pods_carry_no_api_token_and_the_operators_containers_have_memory_limits() {
        let mut cluster = validated("db", 3);
        cluster.exporter_image = Some("registry.example/sakila:1.0".into());
        let built = build(&cluster, &fixed_credentials(&cluster)).statefulset;
        let spec = built.spec.unwrap().template.spec.unwrap();
        assert_eq!(spec.automount_service_account_token, Some(false));
        for container in &spec.containers {
            // mysqld's own resources are the user's (spec.resources, none in this sample).
            if container.name == naming::MYSQLD_CONTAINER {
                continue;
            }
            let limits = container
                .resources
                .as_ref()
                .and_then(|r| r.limits.as_ref())
                .unwrap_or_else(|| panic!("{} has no limits", container.name));
            assert!(
                limits.contains_key("memory"),
                "{}: {limits:?}",
                container.name
            );
        }
    }

    /// The containers of a built pod by name, and mysqld's (startup, liveness, readiness) probes
    /// as "http PATH" or "exec SCRIPT" with their period.
    fn containers_and_probes(cluster: &ValidatedCluster) -> (Vec<Container>, [String; 3]) {
        let spec = build(cluster, &fixed_credentials(cluster))
            .statefulset
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let mysqld = &spec.containers[0];
        assert_eq!(mysqld.name, naming::MYSQLD_CONTAINER);
        let show = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
            let probe = probe.as_ref().expect("a probe");
            let what = match (&probe.http_get, &probe.exec) {
                (Some(get), None) => format!("http {}", get.path.as_deref().unwrap_or_default()),
                (None, Some(exec)) => format!("exec {}", exec.command.as_ref().unwrap().join(" ")),
                other => panic!("an HTTP or an exec probe: {other:?}"),
            };
            format!("{what} every {}s", probe.period_seconds.unwrap())
        };
        let probes = [
            show(&mysqld.startup_probe),
            show(&mysqld.liveness_probe),
            show(&mysqld.readiness_probe),
        ];
        (spec.containers, probes)
    }

    #[test]
    fn the_agent_answers_the_frequent_probes_and_fences_when_the_operator_knows_its_image() {
        let mut cluster = validated("db", 3);
        let (containers, probes) = containers_and_probes(&cluster);
        let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, [naming::MYSQLD_CONTAINER, naming::FENCE_CONTAINER]);
        assert_eq!(
            probes,
            [
                "exec sh /etc/sakila/alive.sh every 2s",
                "exec sh /etc/sakila/alive.sh every 10s",
                "exec sh /etc/sakila/ready.sh every 2s",
            ],
            "without the operator's image, the scripts"
        );

        cluster.operator_image = Some("registry.example/sakila:1.0".into());
        cluster.max_replica_lag_seconds = 12;
        let (containers, probes) = containers_and_probes(&cluster);
        let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [naming::MYSQLD_CONTAINER, naming::AGENT_CONTAINER],
            "the agent runs the self-fence: no fence.sh container"
        );
        assert_eq!(
            probes,
            [
                "http /alive every 2s",
                "exec sh /etc/sakila/alive.sh every 20s",
                "http /ready every 2s",
            ],
            "liveness, which restarts mysqld, never depends on the agent"
        );
        let agent = &containers[1];
        assert_eq!(agent.image.as_deref(), Some("registry.example/sakila:1.0"));
        assert_eq!(
            agent.args.clone().unwrap(),
            ["agent", "--fence", "--max-replica-lag-seconds=12"]
        );
        assert_eq!(agent.ports, None, "nothing to scrape without monitoring");
        let mounts: Vec<&str> = agent
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.as_str())
            .collect();
        // Not the data directory, not the configuration: the login, the socket, the role label,
        // the record of the probe's password.
        assert_eq!(
            mounts,
            [
                "/var/run/sakila",
                "/var/run/mysqld",
                "/etc/podinfo",
                "/etc/sakila-passwords"
            ]
        );
    }

    #[test]
    fn the_pods_keep_the_agent_they_run_until_they_roll_for_another_reason() {
        let mut cluster = validated("db", 3);
        cluster.operator_image = Some("sakila:1".into());
        let credentials = fixed_credentials(&cluster);
        let created = build(&cluster, &credentials).statefulset;
        let agent_of = |c: &ValidatedCluster, existing: &StatefulSet| {
            statefulset::agent_image(c, Some(existing))
        };

        let mut upgraded = cluster.clone();
        upgraded.operator_image = Some("sakila:2".into());
        assert_eq!(agent_of(&upgraded, &created).as_deref(), Some("sakila:1"));
        let carried = statefulset::Carried::from_existing(&upgraded, Some(&created));
        let after = Resources::build(&upgraded, &credentials, &carried, None, None).statefulset;
        assert_eq!(
            content_hash(&after),
            content_hash(&created),
            "a new operator image alone leaves the StatefulSet as it is: no mysqld restarts"
        );

        let mut new_version = upgraded.clone();
        new_version.image = "mysql:9.7.9".into();
        let mut restart_setting = upgraded.clone();
        restart_setting
            .mysql_config
            .insert("performance_schema".into(), "OFF".into());
        assert_ne!(
            config_map::restart_hash(&restart_setting),
            config_map::restart_hash(&upgraded),
            "a setting only a restart applies"
        );
        let mut older_agent = created.clone();
        let template = &mut older_agent.spec.as_mut().unwrap().template;
        let annotations = template.metadata.as_mut().unwrap().annotations.as_mut();
        annotations
            .unwrap()
            .remove(naming::AGENT_REVISION_ANNOTATION)
            .expect("the revision is recorded");
        let no_agent = build(&validated("db", 3), &credentials).statefulset;
        for (why, cluster, existing) in [
            ("a new mysqld image rolls the pods", &new_version, &created),
            ("so does a restart-only setting", &restart_setting, &created),
            ("an agent of an older revision", &upgraded, &older_agent),
            ("pods without an agent", &upgraded, &no_agent),
        ] {
            assert_eq!(
                agent_of(cluster, existing).as_deref(),
                Some("sakila:2"),
                "{why}: the operator's image"
            );
        }
        assert_eq!(
            statefulset::agent_image(&upgraded, None).as_deref(),
            Some("sakila:2"),
            "a new StatefulSet"
        );
        assert_eq!(
            agent_of(&validated("db", 3), &created),
            None,
            "an operator that does not know its image runs no agent"
        );
    }

    #[test]
    fn monitoring_has_the_agent_serve_metrics_and_announces_them() {
        let plain = three_instance_resources().statefulset;
        let annotations = plain.spec.unwrap().template.metadata.unwrap().annotations;
        assert!(
            !annotations.unwrap().contains_key("prometheus.io/scrape"),
            "no scrape annotation without monitoring"
        );

        let mut cluster = validated("db", 3);
        cluster.exporter_image = Some("registry.example/sakila:1.0".into());
        cluster.operator_image = cluster.exporter_image.clone();
        let built = build(&cluster, &fixed_credentials(&cluster)).statefulset;
        let template = built.spec.unwrap().template;
        let annotations = template.metadata.unwrap().annotations.unwrap();
        assert_eq!(annotations["prometheus.io/scrape"], "true");
        assert_eq!(annotations["prometheus.io/port"], "9104");
        let (containers, _) = containers_and_probes(&cluster);
        let agent = containers
            .iter()
            .find(|c| c.name == naming::AGENT_CONTAINER)
            .expect("the agent");
        assert_eq!(
            agent.args.clone().unwrap(),
            [
                "agent",
                "--fence",
                "--max-replica-lag-seconds=30",
                "--metrics"
            ]
        );
        let port = &agent.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.container_port),
            (Some("metrics"), 9104)
        );
    }

    #[test]
    fn the_pod_template_mounts_the_config_map_built_with_it_and_the_online_one() {
        let r = three_instance_resources();
        let spec = r.statefulset.spec.unwrap().template.spec.unwrap();
        let mounted: Vec<&str> = config_map::config_maps_in(&spec).collect();
        assert_eq!(
            mounted,
            [
                r.config_map.metadata.name.as_deref().unwrap(),
                r.online_config_map.metadata.name.as_deref().unwrap()
            ]
        );
    }

    #[test]
    fn online_config_map_matches_fixture() {
        let mut cluster = validated("db", 3);
        cluster
            .mysql_config
            .insert("max_connections".into(), "500".into());
        let accepted = BTreeMap::from([("max_connections".to_string(), "400".to_string())]);
        let r = Resources::build(
            &cluster,
            &fixed_credentials(&cluster),
            &statefulset::Carried::from_existing(&cluster, None),
            Some(&accepted),
            None,
        );
        assert_matches_fixture("configmap-online", &r.online_config_map);
    }

    #[test]
    fn my_cnf_with_a_memory_limit_matches_fixture() {
        let mut cluster = validated("db", 3);
        cluster.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
            limits: Some(
                [(
                    "memory".to_string(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Gi".into()),
                )]
                .into(),
            ),
            ..Default::default()
        });
        assert_matches_fixture("my-cnf-memory-limit", &config_map::render_my_cnf(&cluster));
    }

    #[test]
    fn secret_matches_fixture() {
        assert_matches_fixture("secret", &three_instance_resources().secret);
    }

    #[test]
    fn pod_disruption_budget_matches_fixture() {
        assert_matches_fixture(
            "poddisruptionbudget",
            &three_instance_resources().pod_disruption_budget,
        );
    }

    #[test]
    fn every_child_is_owned_by_the_cluster_as_controller() {
        // The credentials Secret too, when the volumes go with the cluster (see build_secret).
        let mut cluster = validated("db", 3);
        cluster.deletion_policy = DeletionPolicy::Delete;
        let r = build(&cluster, &fixed_credentials(&cluster));
        let metas = [
            &r.secret.metadata,
            &r.config_map.metadata,
            &r.online_config_map.metadata,
            &r.headless_service.metadata,
            &r.primary_service.metadata,
            &r.replicas_service.metadata,
            &r.statefulset.metadata,
            &r.pod_disruption_budget.metadata,
        ];
        for m in metas {
            let owners = m.owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].kind, "MySQLCluster");
            assert_eq!(owners[0].controller, Some(true));
        }
    }

    #[test]
    fn pod_template_changes_only_when_the_configuration_changes() {
        let cluster = validated("db", 3);
        let credentials = fixed_credentials(&cluster);
        let before = build(&cluster, &credentials).statefulset;
        // New passwords must not roll pods: they are read at init time from the Secret.
        let other_credentials = ClusterPasswords::complete(&cluster, None);
        let same = build(&cluster, &other_credentials).statefulset;
        assert_eq!(
            before.spec.as_ref().unwrap().template,
            same.spec.as_ref().unwrap().template
        );

        // A setting MySQL takes at run time is applied online: no new template, no restart.
        let mut online = cluster.clone();
        online
            .mysql_config
            .insert("max_connections".into(), "500".into());
        let same = build(&online, &credentials).statefulset;
        assert_eq!(
            before.spec.as_ref().unwrap().template,
            same.spec.as_ref().unwrap().template
        );

        let mut changed = cluster.clone();
        changed.mysql_config.insert("back_log".into(), "100".into());
        let after = build(&changed, &credentials).statefulset;
        let annotations = after
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .clone()
            .unwrap();
        assert_eq!(
            annotations[naming::RESTART_SETTINGS_ANNOTATION],
            "back_log=100"
        );
        assert_ne!(before.spec.unwrap().template, after.spec.unwrap().template);
    }

    fn template_size(statefulset: &StatefulSet) -> &Quantity {
        let template = &statefulset
            .spec
            .as_ref()
            .unwrap()
            .volume_claim_templates
            .as_ref()
            .unwrap()[0];
        let resources = template.spec.as_ref().unwrap().resources.as_ref().unwrap();
        &resources.requests.as_ref().unwrap()["storage"]
    }

    #[test]
    fn a_larger_storage_size_leaves_the_statefulset_unchanged_once_it_exists() {
        let cluster = validated("db", 3);
        let credentials = fixed_credentials(&cluster);
        let created = build(&cluster, &credentials).statefulset;
        assert_eq!(
            statefulset::claim_template_size(&cluster, None),
            cluster.storage_size,
            "a new StatefulSet takes the spec's size"
        );

        let mut grown = cluster.clone();
        grown.storage_size = Quantity("5Gi".into());
        let carried = statefulset::Carried::from_existing(&grown, Some(&created));
        assert_eq!(carried.claim_size, Quantity("1Gi".into()));
        let after = Resources::build(&grown, &credentials, &carried, None, None).statefulset;
        assert_eq!(template_size(&after), &Quantity("1Gi".into()));
        assert_eq!(
            content_hash(&after),
            content_hash(&created),
            "the apply step sees no change, so the immutable template is never sent changed"
        );
    }

    #[test]
    fn the_deletion_policy_decides_when_deleted_and_a_scale_down_always_keeps_volumes() {
        for (policy, when_deleted) in [
            (DeletionPolicy::Retain, "Retain"),
            (DeletionPolicy::Delete, "Delete"),
        ] {
            let mut cluster = validated("db", 3);
            cluster.deletion_policy = policy;
            let statefulset = build(&cluster, &fixed_credentials(&cluster)).statefulset;
            let retention = statefulset
                .spec
                .unwrap()
                .persistent_volume_claim_retention_policy
                .unwrap();
            assert_eq!(retention.when_deleted.as_deref(), Some(when_deleted));
            assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));
        }
    }

    #[test]
    fn role_services_select_their_role_and_headless_selects_every_pod() {
        let r = three_instance_resources();
        let selector = |s: &Service| s.spec.as_ref().unwrap().selector.clone().unwrap();
        assert_eq!(
            selector(&r.primary_service)
                .get(naming::ROLE_LABEL)
                .unwrap(),
            "primary"
        );
        assert_eq!(
            selector(&r.replicas_service)
                .get(naming::ROLE_LABEL)
                .unwrap(),
            "replica"
        );
        assert!(!selector(&r.headless_service).contains_key(naming::ROLE_LABEL));
    }
}
