//! `spec.paused`: the operator takes no action on a paused cluster and says so; unpausing
//! resumes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use sakila::api::MySQLCluster;
use sakila::api::conditions::ConditionType;
use sakila_e2e::chaos;
use sakila_e2e::{
    cluster_manifest, condition_status, force_delete_pod, patch_spec, set_paused, wait_ready,
    wait_until,
};
use serde_json::json;

#[tokio::test]
async fn a_paused_cluster_is_not_healed_until_it_is_unpaused() {
    // Writes fail while the paused cluster has no writable primary; none acknowledged may be lost.
    let manifest = cluster_manifest("solo", 1);
    let ns = chaos::cluster_under_writes("paused", manifest, 600)
        .await
        .ns;
    let clusters: Api<MySQLCluster> = ns.api();
    set_paused(&ns, "solo", true).await;

    // The primary's pod is replaced: its mysqld starts read-only, and only the operator would
    // make it writable again.
    let pods: Api<Pod> = ns.api();
    force_delete_pod(&pods, "solo-0").await;
    wait_until(
        "solo-0's mysqld to answer",
        Duration::from_secs(180),
        || async { ns.sql("solo", "solo-0", "SELECT 1").await.ok() },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let read_only = ns
        .sql("solo", "solo-0", "SELECT @@global.super_read_only")
        .await
        .unwrap();
    assert_eq!(
        read_only.trim(),
        "1",
        "the paused operator made solo-0 writable"
    );
    let cluster = clusters.get("solo").await.unwrap();
    assert_eq!(
        condition_status(&cluster, ConditionType::Ready).as_deref(),
        Some("False")
    );
    assert_eq!(
        condition_status(&cluster, ConditionType::Paused).as_deref(),
        Some("True")
    );

    patch_spec(&ns, "solo", json!({"paused": false})).await;
    let cluster = wait_ready(&ns, "solo").await;
    assert_eq!(
        condition_status(&cluster, ConditionType::Paused).as_deref(),
        Some("False")
    );
    let read_only = ns
        .sql("solo", "solo-0", "SELECT @@global.super_read_only")
        .await
        .unwrap();
    assert_eq!(read_only.trim(), "0");
    let outcome = chaos::stop_and_verify(&ns, "client", "solo", 1, 20).await;
    println!("writer through pause and unpause: {outcome:?}");
}
