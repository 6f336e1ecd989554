//! The operator never takes over an object it did not create: server-side apply with force would
//! adopt a user's Service or Secret of a child's name, and with deletionPolicy Delete the garbage
//! collector would remove it with the cluster.

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use sakila::api::MySQLCluster;
use sakila::api::conditions::ConditionType;
use sakila_e2e::{
    TestNamespace, cluster_condition, cluster_manifest, delete_cluster_and_wait, wait_until,
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
