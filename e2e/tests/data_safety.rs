//! Never serve less than was acknowledged: the paths where an instance holding less than the
//! cluster acknowledged could become the primary, each under the chaos writer.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use sakila::api::MySQLCluster;
use sakila::api::conditions::ConditionType;
use sakila_e2e::chaos;
use sakila_e2e::{
    TestNamespace, cluster_condition, cluster_manifest, delete_cluster_and_wait, patch_spec,
    replace_volume, set_paused, wait_ready, wait_until,
};
use serde_json::json;

/// The writer's limit; each test stops it once its scenario is over.
const WRITER_SECONDS: u64 = 900;
/// How long the operator may take to act on a change it observes.
const REACT_TIMEOUT: Duration = Duration::from_secs(180);

async fn row_count(ns: &TestNamespace, cluster: &str, pod: &str) -> Result<u32, String> {
    let out = ns
        .sql(cluster, pod, "SELECT COUNT(*) FROM shop.orders")
        .await?;
    out.trim()
        .parse()
        .map_err(|e| format!("not a count: {out:?}: {e}"))
}

/// `count` INSERTs of one row each, from `first` on: one transaction, acknowledged, per row.
fn inserts(first: u32, count: u32) -> String {
    (first..first + count)
        .map(|id| format!("INSERT INTO shop.orders VALUES ({id});"))
        .collect()
}

/// The sequence from the bug report: instance 0 stops replicating while instance 1 is the
/// primary of a paused cluster, 30 more rows are acknowledged (by instance 2), the cluster is
/// deleted with its volumes kept and the original manifest applied again. Instance 0, holding
/// 20 of the 50 rows, used to be made the primary and the others re-cloned from it.
///
/// Which instance becomes the primary is not the point: a replica that only stopped resumes
/// replicating when its server starts again (`skip_replica_start` is off), so if instance 1 is
/// up first, instance 0 catches up before the choice and may rightly be chosen. The promise is
/// that the primary serves all 50 rows the moment the cluster is Ready.
#[tokio::test]
async fn a_cluster_recreated_over_its_volumes_serves_every_acknowledged_write() {
    let manifest = cluster_manifest("trio", 3);
    let ns = chaos::cluster_under_writes("recreate", manifest, WRITER_SECONDS)
        .await
        .ns;
    ns.sql(
        "trio",
        "trio-0",
        &format!(
            "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY); {}",
            inserts(1, 20)
        ),
    )
    .await
    .expect("the primary takes the first 20 rows");

    patch_spec(&ns, "trio", json!({"primaryInstance": 1})).await;
    wait_until("trio-1 to be the primary", REACT_TIMEOUT, || async {
        (chaos::current_primary(&ns, "trio").await.as_deref() == Some("trio-1")).then_some(())
    })
    .await;
    wait_ready(&ns, "trio").await;
    set_paused(&ns, "trio", true).await;
    ns.sql("trio", "trio-0", "STOP REPLICA")
        .await
        .expect("replication stops on trio-0");
    ns.sql("trio", "trio-1", &inserts(21, 30))
        .await
        .expect("trio-1 commits 30 more rows, acknowledged by trio-2");
    assert_eq!(row_count(&ns, "trio", "trio-0").await, Ok(20));
    assert_eq!(row_count(&ns, "trio", "trio-2").await, Ok(50));

    delete_cluster_and_wait(&ns, "trio").await;
    ns.create::<MySQLCluster>(cluster_manifest("trio", 3)).await;
    let cluster = wait_ready(&ns, "trio").await;

    let status = cluster.status.expect("a Ready cluster has a status");
    let primary = status
        .current_primary
        .expect("a Ready cluster has a primary");
    // A primary chosen without every acknowledged row never gets them: its replication is
    // stopped when it is promoted, and the others are cloned from it or left errant.
    assert_eq!(
        row_count(&ns, "trio", &primary).await,
        Ok(50),
        "the primary {primary} serves every acknowledged row as soon as the cluster is Ready"
    );
    if primary == "trio-0" {
        println!("trio-0 resumed replicating when it started and caught up before the choice");
    }
    for pod in ["trio-0", "trio-1", "trio-2"] {
        let rows = wait_until(
            &format!("{pod} to hold all 50 rows"),
            REACT_TIMEOUT,
            || async { row_count(&ns, "trio", pod).await.ok().filter(|n| *n == 50) },
        )
        .await;
        assert_eq!(rows, 50, "{pod}");
    }
    assert!(
        status.discarded_transactions.is_empty(),
        "nothing may be discarded: {:?}",
        status.discarded_transactions
    );
    assert!(
        status.instances.iter().all(|i| i.errant_gtids.is_none()),
        "no instance has errant transactions: {:?}",
        status.instances
    );
    let outcome = chaos::stop_and_verify(&ns, "client", "trio", 3, 20).await;
    println!("writer across the re-creation: {outcome:?}");
}

/// A primary whose volume is lost comes back empty. With failover off, it used to be made
/// writable: the cluster served an empty database. It must stay read-only and say why; once
/// failover is allowed, a replica holding the data takes over and the empty instance is seeded.
#[tokio::test]
async fn a_primary_that_lost_its_volume_is_never_made_writable() {
    let mut manifest = cluster_manifest("lose", 3);
    manifest["spec"]["failover"] = json!({"enabled": false});
    let ns = chaos::cluster_under_writes("emptied", manifest, WRITER_SECONDS)
        .await
        .ns;
    assert_eq!(
        chaos::current_primary(&ns, "lose").await.as_deref(),
        Some("lose-0")
    );

    // Paused meanwhile: a pod deletion the operator sees before the pod is gone (a force
    // deletion marks the pod first) makes it switch over, and the primary would no longer be
    // the instance that lost its volume. Unpaused, it finds the recorded primary empty.
    set_paused(&ns, "lose", true).await;
    replace_volume(&ns, "lose-0").await;
    set_paused(&ns, "lose", false).await;
    let blocked = wait_until(
        "Writable False saying the primary has no data",
        REACT_TIMEOUT,
        || async {
            cluster_condition(&ns, "lose", ConditionType::Writable)
                .await
                .filter(|c| c.status == "False" && c.message.contains("no data"))
        },
    )
    .await;
    println!("while failover is off: {blocked:?}");
    assert_eq!(blocked.reason, "FailoverBlocked");
    // The empty instance answers, and stays read-only, round after round.
    for _ in 0..10 {
        let read_only = ns
            .sql("lose", "lose-0", "SELECT @@global.read_only")
            .await
            .expect("the new lose-0 answers");
        assert_eq!(read_only.trim(), "1", "the empty lose-0 was made writable");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    patch_spec(&ns, "lose", json!({"failover": {"enabled": true}})).await;
    let primary = chaos::wait_for_new_primary(&ns, "lose", "lose-0").await;
    println!("failed over to {primary} once allowed");
    // Long enough for the writer to show the writes going on after the failover.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let outcome = chaos::stop_and_verify(&ns, "client", "lose", 3, 5).await;
    println!("writer across the lost volume: {outcome:?}");
}

/// Megabytes of data the clone test copies (`SAKILA_E2E_CLONE_MB`, default 100) and the clone's
/// bandwidth limit in MiB/s (`SAKILA_E2E_CLONE_BANDWIDTH`, default 2; 0 for none), so that in
/// `make test` the clone lasts long enough (about 50 s) for the primary to die during it. The
/// issue's 2 GB run: `SAKILA_E2E_CLONE_MB=2048 SAKILA_E2E_CLONE_BANDWIDTH=0`.
fn clone_test_size() -> (u32, u32) {
    let read = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    (
        read("SAKILA_E2E_CLONE_MB", 100),
        read("SAKILA_E2E_CLONE_BANDWIDTH", 2),
    )
}

async fn clone_state(ns: &TestNamespace, cluster: &str, pod: &str) -> Option<String> {
    ns.sql(
        cluster,
        pod,
        "SELECT STATE FROM performance_schema.clone_status",
    )
    .await
    .ok()
    .map(|s| s.trim().to_string())
}

/// A clone used to run inside the reconcile, which waited for it (up to 30 minutes): meanwhile
/// nothing probed the cluster, so a primary dying during a clone was not failed over. Now the
/// clone runs in the background, and the failover happens as it would without one.
#[tokio::test]
async fn a_primary_that_dies_during_a_clone_is_failed_over_and_the_clone_completes() {
    let (megabytes, bandwidth) = clone_test_size();
    let ns = TestNamespace::new("clone").await;
    let mut manifest = cluster_manifest("copy", 3);
    // clone_status lives in performance_schema, which the suite's small manifest turns off.
    manifest["spec"]["mysqlConfig"]["performance_schema"] = json!("ON");
    manifest["spec"]["storage"]["size"] = json!(format!("{}Mi", 3 * megabytes + 512));
    ns.create::<MySQLCluster>(manifest).await;
    wait_ready(&ns, "copy").await;
    ns.sql(
        "copy",
        "copy-0",
        "CREATE DATABASE bulk; CREATE TABLE bulk.pages (id INT PRIMARY KEY, body LONGBLOB)",
    )
    .await
    .expect("the primary takes writes");
    for first in (0..megabytes).step_by(16) {
        let rows = (first..(first + 16).min(megabytes))
            .map(|id| format!("({id}, REPEAT(SHA2({id}, 256), 16384))"))
            .collect::<Vec<_>>()
            .join(",");
        ns.sql(
            "copy",
            "copy-0",
            &format!("INSERT INTO bulk.pages VALUES {rows}"),
        )
        .await
        .expect("the bulk data is written");
    }
    wait_ready(&ns, "copy").await;
    chaos::start_writing(&ns, "copy", 3, WRITER_SECONDS).await;

    // On the recipient only, and online: the limit is the recipient's.
    ns.sql(
        "copy",
        "copy-2",
        &format!("SET GLOBAL clone_max_data_bandwidth = {bandwidth}"),
    )
    .await
    .expect("the clone's bandwidth is limited on copy-2");
    let pods: Api<Pod> = ns.api();
    pods.patch(
        "copy-2",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(
            json!({"metadata": {"annotations": {"mysql.sakila.dev/reclone": "true"}}}),
        ),
    )
    .await
    .expect("the re-clone is requested");
    wait_until("the clone of copy-2 in progress", REACT_TIMEOUT, || async {
        (clone_state(&ns, "copy", "copy-2").await.as_deref() == Some("In Progress")).then_some(())
    })
    .await;
    // The status says so too (what `sakila_instance_cloning` and `kubectl sakila status` show).
    let clusters: Api<MySQLCluster> = ns.api();
    wait_until(
        "status.instances[copy-2].cloning",
        REACT_TIMEOUT,
        || async {
            let status = clusters.get("copy").await.ok()?.status?;
            status
                .instances
                .iter()
                .any(|i| i.name == "copy-2" && i.cloning)
                .then_some(())
        },
    )
    .await;
    chaos::crash_mysqld(&ns, "copy-0").await;
    let crashed_at = std::time::Instant::now();
    let primary = chaos::wait_for_new_primary(&ns, "copy", "copy-0").await;
    let failover_after = crashed_at.elapsed();
    let still_cloning = clone_state(&ns, "copy", "copy-2").await;
    println!(
        "{megabytes} MB clone at {bandwidth} MiB/s: failed over to {primary} {failover_after:?} after the crash; copy-2's clone then: {still_cloning:?}"
    );
    assert_eq!(
        still_cloning.as_deref(),
        Some("In Progress"),
        "the failover must not have waited for the clone"
    );

    // Long enough for the writer to show the writes going on after the failover.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let outcome = chaos::stop_and_verify(&ns, "client", "copy", 3, 20).await;
    println!("writer across the failover during the clone: {outcome:?}");
    let state = wait_until("the clone of copy-2 completed", READY_WAIT, || async {
        clone_state(&ns, "copy", "copy-2")
            .await
            .filter(|s| s == "Completed")
    })
    .await;
    assert_eq!(state, "Completed");
    let pages = ns
        .sql("copy", "copy-2", "SELECT COUNT(*) FROM bulk.pages")
        .await
        .expect("copy-2 serves the cloned data");
    assert_eq!(pages.trim(), megabytes.to_string());
}

/// How long the clone may take to complete after the failover.
const READY_WAIT: Duration = Duration::from_secs(600);
