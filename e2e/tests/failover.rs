//! Self-healing under a writer: the primary's pod is force-deleted; a replica is promoted, no
//! acknowledged write is lost, and never are two instances writable.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use sakila::api::MySQLCluster;
use sakila_e2e::{
    TestNamespace, chaos, cluster_manifest, force_delete_pod, mysql_client_image, wait_ready,
    wait_until,
};

const WRITER_SECONDS: u64 = 45;

#[tokio::test]
async fn primary_pod_force_deleted_under_writes_fails_over_without_losing_acknowledged_writes() {
    let ns = TestNamespace::new("failover").await;
    ns.create::<MySQLCluster>(cluster_manifest("trio", 3)).await;
    wait_ready(&ns, "trio").await;
    ns.client_pod("client", &mysql_client_image()).await;

    chaos::start(&ns, "client", "trio", 3, WRITER_SECONDS).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pods: Api<Pod> = ns.api();
    force_delete_pod(&pods, "trio-0").await;

    let record = chaos::collect(&ns, "client", WRITER_SECONDS - 10).await;
    assert!(
        record.acknowledged.len() > 50,
        "the writer made progress: {} writes",
        record.acknowledged.len()
    );

    // A replica took over.
    let clusters: Api<MySQLCluster> = ns.api();
    let cluster = clusters.get("trio").await.unwrap();
    let new_primary = cluster
        .status
        .as_ref()
        .and_then(|s| s.current_primary.clone());
    println!(
        "failover: new primary {new_primary:?}; {} acknowledged writes; longest write gap {:?}; most writable at once {}",
        record.acknowledged.len(),
        record.longest_write_gap(),
        record.most_writable_at_once()
    );
    assert_ne!(
        new_primary.as_deref(),
        Some("trio-0"),
        "a replica was promoted"
    );
    assert!(
        record.most_writable_at_once() <= 1,
        "two instances were writable at once"
    );

    // Back to Ready, with every acknowledged write on every instance (the old primary rejoined).
    wait_ready(&ns, "trio").await;
    for ordinal in 0..3 {
        let pod = format!("trio-{ordinal}");
        let missing = wait_until(
            &format!("{pod} to hold every acknowledged write"),
            Duration::from_secs(180),
            || async {
                let missing = chaos::missing_on(&ns, "trio", &pod, &record).await.ok()?;
                missing.is_empty().then_some(missing)
            },
        )
        .await;
        assert!(missing.is_empty());
    }
}
