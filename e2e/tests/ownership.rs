//! The operator never takes over an object it did not create: server-side apply with force would
//! adopt a user's Service or Secret of a child's name, and with deletionPolicy Delete the garbage
//! collector would remove it with the cluster.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use sakila::api::MySQLCluster;
use sakila::api::conditions::ConditionType;
use sakila::resources::naming;
use sakila_e2e::{
    TestNamespace, cluster_condition, cluster_manifest, delete_cluster_and_wait, patch_spec,
    wait_ready, wait_until,
};
use serde_json::json;

#[tokio::test]
async fn a_users_service_with_a_childs_name_is_reported_left_alone_and_outlives_the_cluster() {
    let ns = TestNamespace::new("owned").await;
    let theirs: Service = ns
        .create(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "shop-primary", "labels": {"app": "legacy"}},
            "spec": {"selector": {"app": "legacy"}, "ports": [{"port": 3306}]}
        }))
        .await;
    let mut manifest = cluster_manifest("shop", 1);
    manifest["spec"]["storage"]["deletionPolicy"] = json!("Delete");
    ns.create::<MySQLCluster>(manifest).await;
    let condition = wait_until(
        "ResourcesOwned False naming the user's Service",
        Duration::from_secs(120),
        || async {
            cluster_condition(&ns, "shop", ConditionType::ResourcesOwned)
                .await
                .filter(|c| c.status == "False" && c.message.contains("Service shop-primary"))
        },
    )
    .await;
    assert_eq!(condition.reason, "ObjectNotOwned");
    let events = sakila_e2e::event_count(&ns, "ObjectNotOwned").await;
    assert!(events >= 1, "a Warning event names it");

    let services: Api<Service> = ns.api();
    let after = services.get("shop-primary").await.unwrap();
    assert_eq!(
        after.spec.as_ref().unwrap().selector,
        theirs.spec.as_ref().unwrap().selector,
        "the operator rewrote the user's Service"
    );
    assert!(after.metadata.owner_references.is_none());

    delete_cluster_and_wait(&ns, "shop").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        services.get_opt("shop-primary").await.unwrap().is_some(),
        "the user's Service went with the cluster"
    );
    wait_until(
        "the operator's own Service gone with the cluster",
        Duration::from_secs(60),
        || async {
            services
                .get_opt("shop-replicas")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
}

/// A round at rest sees the children through watches rather than reading each one (issue 17);
/// a child deleted by hand must still come back, with the cluster's own labels and owner.
#[tokio::test]
async fn children_deleted_by_hand_are_recreated() {
    let ns = TestNamespace::new("regrow").await;
    ns.create::<MySQLCluster>(cluster_manifest("grow", 1)).await;
    sakila_e2e::wait_ready(&ns, "grow").await;
    let services: Api<Service> = ns.api();
    let config_maps: Api<ConfigMap> = ns.api();
    let budgets: Api<PodDisruptionBudget> = ns.api();
    let primary = naming::primary_service("grow");
    let online = naming::online_config_map("grow");
    let budget = naming::pod_disruption_budget("grow");
    let old_uids = (
        uid(services.get(&primary).await),
        uid(config_maps.get(&online).await),
        uid(budgets.get(&budget).await),
    );
    services
        .delete(&primary, &Default::default())
        .await
        .unwrap();
    config_maps
        .delete(&online, &Default::default())
        .await
        .unwrap();
    budgets.delete(&budget, &Default::default()).await.unwrap();
    wait_until(
        "the Service, ConfigMap and PodDisruptionBudget back",
        Duration::from_secs(60),
        || async {
            let now = (
                uid(services.get(&primary).await),
                uid(config_maps.get(&online).await),
                uid(budgets.get(&budget).await),
            );
            let renewed = now.0.is_some()
                && now.1.is_some()
                && now.2.is_some()
                && now.0 != old_uids.0
                && now.1 != old_uids.1
                && now.2 != old_uids.2;
            renewed.then_some(())
        },
    )
    .await;
    let service = services.get(&primary).await.unwrap();
    assert_eq!(
        service
            .metadata
            .labels
            .unwrap()
            .get(naming::MANAGED_BY_LABEL)
            .map(String::as_str),
        Some(naming::MANAGED_BY)
    );
    assert!(
        service
            .metadata
            .owner_references
            .unwrap_or_default()
            .iter()
            .any(|o| o.kind == "MySQLCluster" && o.name == "grow"),
        "the re-created Service is owned by its cluster"
    );
}

fn uid<K: kube::Resource>(object: Result<K, kube::Error>) -> Option<String> {
    object.ok().and_then(|o| o.meta().uid.clone())
}

#[tokio::test]
async fn a_network_policy_admits_the_cluster_the_operator_its_backups_and_named_clients_and_goes_when_turned_off()
 {
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    let ns = TestNamespace::new("netpol").await;
    let mut manifest = cluster_manifest("fenced", 1);
    manifest["spec"]["networkPolicy"] = json!({
        "enabled": true,
        "allowedClients": [{"podSelector": {"matchLabels": {"app": "shop"}}}]
    });
    ns.create::<MySQLCluster>(manifest).await;
    wait_ready(&ns, "fenced").await;

    // Accepted by the API server as the operator built it. (The testbed's network does not
    // enforce NetworkPolicies; what is enforced is up to the cluster's network plugin.)
    let policies: Api<NetworkPolicy> = ns.api();
    let policy = policies
        .get("fenced")
        .await
        .expect("the NetworkPolicy exists");
    let spec = serde_json::to_value(policy.spec.unwrap()).unwrap();
    let operator_namespace =
        std::env::var("SAKILA_NAMESPACE").unwrap_or_else(|_| "sakila-system".into());
    assert_eq!(spec["policyTypes"], json!(["Ingress"]), "{spec}");
    assert_eq!(
        spec["ingress"][0]["ports"],
        json!([{"port": 3306, "protocol": "TCP"}])
    );
    let from = &spec["ingress"][0]["from"];
    assert_eq!(
        from[1]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        json!(operator_namespace),
        "{spec}"
    );
    assert_eq!(
        from[2],
        json!({"podSelector": {"matchLabels": {
            "app.kubernetes.io/name": "sakila-backup", "mysql.sakila.dev/backup-of": "fenced"
        }}}),
        "the cluster's backup Jobs clone an instance"
    );
    assert_eq!(
        from[3],
        json!({"podSelector": {"matchLabels": {"app": "shop"}}})
    );

    patch_spec(&ns, "fenced", json!({"networkPolicy": {"enabled": false}})).await;
    wait_until(
        "the NetworkPolicy deleted",
        Duration::from_secs(120),
        || async {
            policies
                .get_opt("fenced")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
}
