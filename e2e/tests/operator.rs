//! The operator on a real cluster: MySQLClusters become Ready and serve, bad manifests are refused.

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams, PostParams};
use sakila::api::MySQLCluster;
use sakila_e2e::{TestNamespace, cluster_manifest, mysql_client_image, wait_ready, wait_until};
use serde_json::json;

#[tokio::test]
async fn single_instance_cluster_becomes_ready_and_serves_writes_through_the_primary_service() {
    let ns = TestNamespace::new("single").await;
    ns.create::<MySQLCluster>(cluster_manifest("solo", 1)).await;
    let cluster = wait_ready(&ns, "solo").await;
    let status = cluster.status.unwrap();
    assert_eq!(status.current_primary.as_deref(), Some("solo-0"));
    assert_eq!(status.ready_instances, 1);
    assert_eq!(status.instances_summary.as_deref(), Some("1/1"));
    assert_eq!(status.instances[0].role, "primary");

    ns.client_pod("client", &mysql_client_image()).await;
    let password = format!("--password={}", ns.root_password("solo").await);
    let host = format!("--host=solo-primary.{}.svc", ns.name);
    let sql = "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, item TEXT); \
               INSERT INTO shop.orders VALUES (1, 'mysql operator'); SELECT item FROM shop.orders WHERE id = 1";
    let out = wait_until(
        "a write and a read through solo-primary",
        Duration::from_secs(60),
        || async {
            ns.try_exec(
                "client",
                "client",
                &["mysql", &host, "-uroot", &password, "-N", "-B", "-e", sql],
            )
            .await
            .ok()
        },
    )
    .await;
    assert_eq!(out.trim(), "mysql operator");
}

#[tokio::test]
async fn three_instance_cluster_runs_three_servers_and_only_instance_zero_is_writable() {
    let ns = TestNamespace::new("trio").await;
    ns.create::<MySQLCluster>(cluster_manifest("trio", 3)).await;
    let cluster = wait_ready(&ns, "trio").await;
    let status = cluster.status.unwrap();
    assert_eq!(status.ready_instances, 3);
    assert_eq!(status.current_primary.as_deref(), Some("trio-0"));

    for (ordinal, expected) in [(0, "0"), (1, "1"), (2, "1")] {
        let pod = format!("trio-{ordinal}");
        let out = ns
            .sql(
                "trio",
                &pod,
                "SELECT @@global.super_read_only, @@global.server_id",
            )
            .await
            .unwrap();
        let fields: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(fields[0], expected, "{pod} super_read_only");
        assert_eq!(
            fields[1],
            (ordinal + 1).to_string(),
            "{pod} server_id is derived from its ordinal"
        );
    }
    let refused = ns.sql("trio", "trio-1", "CREATE DATABASE must_fail").await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("super-read-only")),
        "a replica refuses writes, got {refused:?}"
    );
}

fn refusal(result: Result<MySQLCluster, kube::Error>) -> String {
    match result {
        Ok(_) => panic!("the API server accepted an invalid MySQLCluster"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "refused as invalid: {status:?}");
            status.message
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn invalid_manifests_are_refused_by_the_api_server_with_the_field_named() {
    let ns = TestNamespace::new("invalid").await;
    let clusters: Api<MySQLCluster> = ns.api();
    let create = |manifest: serde_json::Value| {
        let clusters = clusters.clone();
        async move {
            let typed: MySQLCluster = serde_json::from_value(manifest).unwrap();
            clusters.create(&PostParams::default(), &typed).await
        }
    };

    let mut zero = cluster_manifest("zero", 1);
    zero["spec"]["instances"] = json!(0);
    let message = refusal(create(zero).await);
    assert!(message.contains("spec.instances"), "{message}");

    let mut owned = cluster_manifest("owned", 1);
    owned["spec"]["mysqlConfig"] = json!({"server-id": "7"});
    let message = refusal(create(owned).await);
    assert!(message.contains("spec.mysqlConfig"), "{message}");
    assert!(
        message.contains("server-id") && message.contains("managed by the operator"),
        "{message}"
    );

    let mut pinned = cluster_manifest("pinned", 1);
    pinned["spec"]["storage"]["storageClassName"] = json!("standard");
    // Paused by an impossible node selector: only the API object matters here.
    pinned["spec"]["podTemplate"] = json!({"nodeSelector": {"sakila.dev/e2e": "nowhere"}});
    create(pinned).await.expect("a valid cluster is accepted");
    let change = json!({"spec": {"storage": {"storageClassName": "other"}}});
    let result = clusters
        .patch("pinned", &PatchParams::default(), &Patch::Merge(&change))
        .await;
    let message = refusal(result);
    assert!(
        message.contains("spec.storage.storageClassName"),
        "{message}"
    );
    assert!(message.contains("immutable"), "{message}");
}
