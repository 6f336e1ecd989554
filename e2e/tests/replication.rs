//! Replication on a real cluster: writes reach every replica, replicas refuse writes and rejoin
//! after losing their pod, and every replica is seeded by a clone.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use sakila::api::MySQLCluster;
use sakila::api::conditions::ConditionType;
use sakila_e2e::{
    TestNamespace, cluster_manifest, condition_status, force_delete_pod, mysql_client_image,
    replica_cloned_notes, wait_ready, wait_until,
};

/// Every instance's `@@gtid_executed` and the checksum of `shop.orders`.
async fn gtid_and_checksum(
    ns: &TestNamespace,
    cluster: &str,
    instances: u8,
) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for ordinal in 0..instances {
        let pod = format!("{cluster}-{ordinal}");
        let out = ns
            .sql(
                cluster,
                &pod,
                "SELECT REPLACE(@@global.gtid_executed, '\\n', ''); CHECKSUM TABLE shop.orders",
            )
            .await
            .unwrap_or_else(|e| panic!("{pod}: {e}"));
        let mut lines = out.lines();
        let gtids = lines.next().unwrap_or_default().to_string();
        let checksum = lines
            .next()
            .unwrap_or_default()
            .split('\t')
            .nth(1)
            .unwrap_or_default()
            .to_string();
        rows.push((gtids, checksum));
    }
    rows
}

#[tokio::test]
async fn three_instances_replicate_every_write_refuse_writes_on_replicas_and_rejoin_after_pod_loss()
{
    let ns = TestNamespace::new("repl").await;
    ns.create::<MySQLCluster>(cluster_manifest("trio", 3)).await;
    let cluster = wait_ready(&ns, "trio").await;
    assert_eq!(
        condition_status(&cluster, ConditionType::Replicating).as_deref(),
        Some("True")
    );
    assert_eq!(
        condition_status(&cluster, ConditionType::Writable).as_deref(),
        Some("True")
    );

    // 1,000 rows through the read-write Service, from a client pod.
    ns.client_pod("client", &mysql_client_image()).await;
    let password = format!("--password={}", ns.root_password("trio").await);
    let primary = format!("--host=trio-primary.{}.svc", ns.name);
    let mut sql = String::from(
        "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(64));",
    );
    for batch in 0..10 {
        let values: Vec<String> = (0..100)
            .map(|i| format!("({}, 'item-{}')", batch * 100 + i, batch * 100 + i))
            .collect();
        sql.push_str(&format!(
            "INSERT INTO shop.orders VALUES {};",
            values.join(",")
        ));
    }
    ns.exec(
        "client",
        "client",
        &["mysql", &primary, "-uroot", &password, "-e", &sql],
    )
    .await;

    // Every replica catches up: same GTID set, same table checksum, 1,000 rows.
    let converged = wait_until(
        "every instance to hold the same GTID set and checksum",
        Duration::from_secs(60),
        || async {
            let rows = gtid_and_checksum(&ns, "trio", 3).await;
            rows.iter()
                .all(|r| r == &rows[0] && !r.1.is_empty())
                .then_some(rows)
        },
    )
    .await;
    println!("converged: {converged:?}");
    let count = ns
        .sql("trio", "trio-2", "SELECT COUNT(*) FROM shop.orders")
        .await
        .unwrap();
    assert_eq!(count.trim(), "1000");

    // The read-only Service refuses writes.
    let replicas = format!("--host=trio-replicas.{}.svc", ns.name);
    let refused = ns
        .try_exec(
            "client",
            "client",
            &[
                "mysql",
                &replicas,
                "-uroot",
                &password,
                "-e",
                "INSERT INTO shop.orders VALUES (5000, 'nope')",
            ],
        )
        .await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("super-read-only")),
        "write through trio-replicas: {refused:?}"
    );

    // A deleted replica pod comes back, rejoins and catches up with writes made while it was gone.
    let pods: Api<Pod> = ns.api();
    let before = pods.get("trio-1").await.unwrap().metadata.uid;
    force_delete_pod(&pods, "trio-1").await;
    ns.exec(
        "client",
        "client",
        &[
            "mysql",
            &primary,
            "-uroot",
            &password,
            "-e",
            "INSERT INTO shop.orders VALUES (1000, 'while trio-1 was away')",
        ],
    )
    .await;
    wait_until(
        "trio-1 to be replaced",
        Duration::from_secs(120),
        || async {
            let p = pods.get("trio-1").await.ok()?;
            (p.metadata.uid != before).then_some(())
        },
    )
    .await;
    let cluster = wait_ready(&ns, "trio").await;
    let rejoined = wait_until("trio-1 to catch up", Duration::from_secs(120), || async {
        let out = ns
            .sql(
                "trio",
                "trio-1",
                "SELECT item FROM shop.orders WHERE id = 1000",
            )
            .await
            .ok()?;
        (out.trim() == "while trio-1 was away").then_some(())
    });
    rejoined.await;
    let status = cluster.status.unwrap();
    let replica = status
        .instances
        .iter()
        .find(|i| i.name == "trio-1")
        .unwrap();
    let replication = replica
        .replication
        .as_ref()
        .expect("status shows trio-1's replication");
    assert_eq!(replication.io_thread, "Running");
    assert_eq!(replication.sql_thread, "Running");
    assert!(replica.gtid_executed.is_some());
    assert_eq!(status.current_primary.as_deref(), Some("trio-0"));
}

#[tokio::test]
async fn five_instances_become_ready_with_every_replica_cloned_from_a_donor() {
    let ns = TestNamespace::new("five").await;
    ns.create::<MySQLCluster>(cluster_manifest("quint", 5))
        .await;
    let cluster = wait_ready(&ns, "quint").await;
    assert_eq!(
        condition_status(&cluster, ConditionType::Replicating).as_deref(),
        Some("True")
    );

    let clones: BTreeMap<String, String> = replica_cloned_notes(&ns)
        .await
        .into_iter()
        .filter_map(|note| {
            // "seeded quint-N with a clone of quint-M"
            let words: Vec<&str> = note.split_whitespace().collect();
            Some((words.get(1)?.to_string(), words.last()?.to_string()))
        })
        .collect();
    for (recipient, donor) in &clones {
        println!("{recipient} was cloned from {donor}");
    }
    let recipients: Vec<&String> = clones.keys().collect();
    assert_eq!(
        recipients,
        ["quint-1", "quint-2", "quint-3", "quint-4"],
        "every replica was cloned"
    );
    let pods: Vec<String> = (0..5).map(|o| format!("quint-{o}")).collect();
    assert!(
        clones.values().all(|donor| pods.contains(donor)),
        "donors are instances of the cluster: {clones:?}"
    );
}
