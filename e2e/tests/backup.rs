//! Backups on a real cluster into a real S3-compatible store (versitygw, deployed by `e2e/prepare`):
//! a backup copies a replica while the primary serves, holds every transaction committed before
//! it, and its data in the store is what its status says; a new cluster restored from it holds
//! exactly that data, with its own passwords; a backup that cannot be taken, or restored, says
//! why, and nothing half-made serves; the archived binary log, followed through a switchover and
//! a failover, brings a restore to exactly a point in time, or to the last acknowledged write.

use std::collections::BTreeSet;
use std::io::Read;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use sakila::api::conditions::ConditionType;
use sakila::api::{MySQLBackup, MySQLCluster};
use sakila::backup::archive::{ArchiveLayout, SegmentIndex, replay_chain};
use sakila::mysql::GtidSet;
use sakila_e2e::backup::{
    archive_directory, backup_spec, create_backup, store_from_here, store_secret, store_spec,
    test_store, wait_completed, wait_phase,
};
use sakila_e2e::chaos;
use sakila_e2e::{
    TestNamespace, cluster_condition, cluster_manifest, delete_cluster_and_wait, event_count_on,
    leader_metrics, patch_spec, replace_volume, sample, wait_ready, wait_until,
};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Waits until the backup is Pending with a message containing `part`, and returns the message.
async fn wait_message(ns: &TestNamespace, name: &str, part: &str) -> String {
    let backups: Api<MySQLBackup> = ns.api();
    wait_until(
        &format!("MySQLBackup {name} waiting with {part:?}"),
        Duration::from_secs(90),
        || async {
            let status = backups.get(name).await.ok()?.status?;
            let message = status.message?;
            (status.phase.map(|p| p.as_str()) == Some("Pending") && message.contains(part))
                .then_some(message)
        },
    )
    .await
}

/// Waits until the cluster's BinlogArchived condition has `status`, and returns it.
async fn wait_archive(
    ns: &TestNamespace,
    cluster: &str,
    status: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    wait_until(
        &format!("{cluster}'s BinlogArchived condition {status}"),
        Duration::from_secs(90),
        || async {
            cluster_condition(ns, cluster, ConditionType::BinlogArchived)
                .await
                .filter(|c| c.status == status)
        },
    )
    .await
}

#[tokio::test]
async fn a_backup_of_a_serving_cluster_restores_into_a_new_cluster_with_exactly_its_data() {
    let ns = TestNamespace::new("backup").await;
    let store = test_store(&ns).await;
    store_secret(&ns, &store, "store", false).await;
    let mut manifest = cluster_manifest("shop", 2);
    manifest["spec"]["backup"] = backup_spec(&store, "store");
    ns.create::<MySQLCluster>(manifest).await;
    wait_ready(&ns, "shop").await;

    ns.sql(
        "shop",
        "shop-0",
        "CREATE DATABASE sales; CREATE TABLE sales.orders (id INT PRIMARY KEY); \
         INSERT INTO sales.orders WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) SELECT i FROM n",
    )
    .await
    .unwrap();
    let committed = gtid_executed(&ns, "shop", "shop-0").await;

    // Under the chaos writer: the backup must not stall the primary's writes.
    chaos::start_writing(&ns, "shop", 2, 600).await;
    create_backup(&ns, "first", "shop").await;
    let status = wait_completed(&ns, "first", Duration::from_secs(300)).await;
    let writes = chaos::stop_and_verify(&ns, "client", "shop", 2, 50).await;
    eprintln!(
        "figure: the writer's longest write gap while the backup ran: {:.2} s ({} acknowledged, {} lost)",
        writes.longest_write_gap.as_secs_f64(),
        writes.acknowledged,
        writes.lost
    );
    assert_eq!(
        status.source_instance.as_deref(),
        Some("shop-1"),
        "a replica, not the primary"
    );
    let held = GtidSet::parse(status.gtid_set.as_deref().unwrap()).unwrap();
    assert!(
        committed.is_subset_of(&held),
        "the backup holds {held}, the primary had committed {committed}"
    );
    assert_eq!(
        status.location.as_deref(),
        Some(format!("s3://{}/e2e/{}/shop/backups/first", store.bucket, ns.name).as_str())
    );
    assert!(status.mysql_version.as_deref().unwrap().starts_with("9."));
    let took = status.completed_at.as_ref().unwrap().0 - status.started_at.as_ref().unwrap().0;
    eprintln!(
        "figure: backup of {} took {:.1} s from its start to complete in the store",
        status.size.as_deref().unwrap_or("?"),
        took.total(jiff::Unit::Second).unwrap()
    );

    // The store holds what the status says, and the data is the cloned data directory.
    let here = store_from_here(&ns, &store).await;
    let data = here
        .get(&here.key(&format!("{}/shop/backups/first/data.tar.zst", ns.name)))
        .await
        .unwrap();
    assert_eq!(Some(data.len() as i64), status.size_bytes);
    let digest: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(Some(digest), status.sha256);
    let mut archive = tar::Archive::new(zstd::Decoder::new(&data[..]).unwrap());
    let mut names = Vec::new();
    let mut table_bytes = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        if path.ends_with("sales/orders.ibd") {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            table_bytes = bytes.len();
        }
        names.push(path);
    }
    assert!(names.iter().any(|n| n.ends_with("mysql.ibd")), "{names:?}");
    assert!(
        table_bytes > 0,
        "the table's tablespace is in the backup: {names:?}"
    );
    assert!(event_count_on(&ns, "MySQLBackup", "BackupCompleted").await >= 1);

    // The cluster served on: the primary still takes writes, which the backup does not hold.
    ns.sql("shop", "shop-0", "INSERT INTO sales.orders VALUES (501)")
        .await
        .unwrap();

    // A new cluster from the backup: instance 0 restored, instance 1 cloned from it.
    let mut restored = cluster_manifest("copy", 2);
    restored["spec"]["bootstrap"] = json!({"recovery": {"backup": "first"}});
    let asked = std::time::Instant::now();
    ns.create::<MySQLCluster>(restored).await;
    let cluster = wait_ready(&ns, "copy").await;
    eprintln!(
        "figure: restored 2-instance cluster Ready {:.1} s after it was created",
        asked.elapsed().as_secs_f64()
    );
    let restored_from = cluster.status.unwrap().restored_from.unwrap();
    assert_eq!(restored_from.backup.as_deref(), Some("first"));
    // Its own root password works: the restore gave root this cluster's.
    for pod in ["copy-0", "copy-1"] {
        let rows = ns
            .sql("copy", pod, "SELECT COUNT(*), MAX(id) FROM sales.orders")
            .await
            .unwrap_or_else(|e| panic!("{pod}: {e}"));
        assert_eq!(
            rows.trim(),
            "500\t500",
            "{pod} holds the backup's rows, not the later one"
        );
    }
    let copy_gtids = gtid_executed(&ns, "copy", "copy-0").await;
    assert!(
        held.is_subset_of(&copy_gtids),
        "{copy_gtids} lacks some of {held}"
    );
    // And it is a cluster of its own: writable, replicating to its replica.
    ns.sql("copy", "copy-0", "INSERT INTO sales.orders VALUES (1000)")
        .await
        .unwrap();
    wait_until(
        "the write reaches copy-1",
        Duration::from_secs(30),
        || async {
            let rows = ns
                .sql(
                    "copy",
                    "copy-1",
                    "SELECT COUNT(*) FROM sales.orders WHERE id = 1000",
                )
                .await
                .ok()?;
            (rows.trim() == "1").then_some(())
        },
    )
    .await;
    // The original is untouched by its copy.
    let original = ns
        .sql(
            "shop",
            "shop-1",
            "SELECT COUNT(*) FROM sales.orders WHERE id = 1000",
        )
        .await
        .unwrap();
    assert_eq!(original.trim(), "0");

    // The restore is over: the condition says so and its settings are gone, so an instance 0
    // that loses its volume now is cloned from the primary with what the copy acknowledged
    // since (row 1000), never given the old backup again.
    let restored = cluster_condition(&ns, "copy", ConditionType::Restored)
        .await
        .expect("a Restored condition");
    assert_eq!(
        (restored.status.as_str(), restored.reason.as_str()),
        ("True", "Restored"),
        "{}",
        restored.message
    );
    let config_maps: Api<ConfigMap> = ns.api();
    wait_until(
        "the restore's ConfigMap deleted",
        Duration::from_secs(60),
        || async {
            config_maps
                .get_opt("copy-restore")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
    replace_volume(&ns, "copy-0").await;
    wait_ready(&ns, "copy").await;
    let rows = ns
        .sql(
            "copy",
            "copy-0",
            "SELECT COUNT(*), MAX(id) FROM sales.orders",
        )
        .await
        .unwrap();
    assert_eq!(
        rows.trim(),
        "501\t1000",
        "copy-0 was cloned, not restored again"
    );

    // A backup whose data is gone from the store: the restore fails in instance 0, the
    // cluster says why in its Restored condition and a Warning event, and nothing serves.
    here.delete(&here.key(&format!("{}/shop/backups/first/data.tar.zst", ns.name)))
        .await
        .unwrap();
    let mut gone = cluster_manifest("gone", 1);
    gone["spec"]["bootstrap"] = json!({"recovery": {"backup": "first"}});
    ns.create::<MySQLCluster>(gone).await;
    let failed = wait_until(
        "gone's Restored condition to say the restore failed",
        Duration::from_secs(180),
        || async {
            cluster_condition(&ns, "gone", ConditionType::Restored)
                .await
                .filter(|c| c.status == "False" && c.reason == "RestoreFailed")
        },
    )
    .await;
    eprintln!("RestoreFailed: {}", failed.message);
    assert!(
        failed.message.contains("data.tar.zst") && failed.message.contains("MySQLBackup first"),
        "{}",
        failed.message
    );
    assert!(event_count_on(&ns, "MySQLCluster", "RestoreFailed").await >= 1);
    let clusters: Api<MySQLCluster> = ns.api();
    let status = clusters.get("gone").await.unwrap().status.unwrap();
    assert_eq!(status.current_primary, None, "nothing was made writable");
}

/// Waits until the cluster's archive is failing with a message that contains `part`.
async fn wait_archive_saying(ns: &TestNamespace, cluster: &str, part: &str) {
    wait_until(
        &format!("{cluster}'s BinlogArchived condition False saying {part:?}"),
        Duration::from_secs(90),
        || async {
            let condition = cluster_condition(ns, cluster, ConditionType::BinlogArchived).await?;
            (condition.status == "False"
                && condition.reason == "ArchiveFailing"
                && condition.message.contains(part))
            .then_some(())
        },
    )
    .await
}

#[tokio::test]
async fn a_backup_that_cannot_be_taken_waits_saying_why_and_a_fix_lets_it_complete() {
    let ns = TestNamespace::new("backup-refused").await;
    let store = test_store(&ns).await;
    store_secret(&ns, &store, "wrong", true).await;
    ns.create::<MySQLCluster>(cluster_manifest("solo", 1)).await;
    wait_ready(&ns, "solo").await;

    // No store configured: the backup waits and says what to set.
    create_backup(&ns, "early", "solo").await;
    let backup = wait_phase(&ns, "early", &["Pending"], Duration::from_secs(60)).await;
    let message = backup.status.unwrap().message.unwrap_or_default();
    assert!(message.contains("spec.backup"), "{message}");

    // A Secret that does not exist, then one with a wrong secret key: the backup waits, saying
    // why, and starts nothing that could not work.
    patch_spec(
        &ns,
        "solo",
        json!({"backup": backup_spec(&store, "missing")}),
    )
    .await;
    let message = wait_message(&ns, "early", "missing").await;
    assert!(
        message.contains("the Secret missing does not exist"),
        "{message}"
    );
    patch_spec(&ns, "solo", json!({"backup": backup_spec(&store, "wrong")})).await;
    let message = wait_message(&ns, "early", "object store")
        .await
        .to_lowercase();
    assert!(
        message.contains("denied") || message.contains("signature"),
        "the message names the store's refusal: {message}"
    );
    assert!(event_count_on(&ns, "MySQLBackup", "BackupWaiting").await >= 3);
    // The binary log archive says the same on the cluster, which serves on.
    let archived = wait_archive(&ns, "solo", "False").await;
    let message = archived.message.to_lowercase();
    assert!(
        archived.reason == "ArchiveFailing"
            && (message.contains("denied") || message.contains("signature")),
        "{}: {}",
        archived.reason,
        archived.message
    );
    assert!(event_count_on(&ns, "MySQLCluster", "ArchiveFailing").await >= 1);

    // A bucket that does not exist, then an endpoint nothing answers at (with good
    // credentials): the backup and the archive each name the problem.
    store_secret(&ns, &store, "right", false).await;
    let mut no_bucket = backup_spec(&store, "right");
    no_bucket["store"]["bucket"] = json!("no-such-bucket");
    patch_spec(&ns, "solo", json!({"backup": no_bucket})).await;
    let message = wait_message(&ns, "early", "no-such-bucket").await;
    assert!(message.contains("does not exist"), "{message}");
    wait_archive_saying(&ns, "solo", "\"no-such-bucket\" does not exist").await;
    let mut nowhere = backup_spec(&store, "right");
    let endpoint = format!("http://nowhere.{}.svc:7070", ns.name);
    nowhere["store"]["endpoint"] = json!(endpoint);
    patch_spec(&ns, "solo", json!({"backup": nowhere})).await;
    let message = wait_message(&ns, "early", &endpoint).await;
    assert!(message.contains("unreachable"), "{message}");
    wait_archive_saying(&ns, "solo", &format!("{endpoint} is unreachable")).await;
    patch_spec(&ns, "solo", json!({"backup": backup_spec(&store, "wrong")})).await;
    let jobs: Api<Job> = ns.api();
    assert!(
        jobs.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // The Secret fixed, but resources the API server refuses for the Job (a request over its
    // limit): the backup waits with the server's reason.
    patch_spec(
        &ns,
        "solo",
        json!({"backup": {"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}}),
    )
    .await;
    let secrets: Api<Secret> = ns.api();
    secrets
        .patch(
            "wrong",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"secret-access-key": store.secret_access_key}})),
        )
        .await
        .unwrap();
    let message = wait_message(&ns, "early", "spec.backup.resources").await;
    assert!(message.contains("limit"), "the server's reason: {message}");
    // With the Secret fixed, the archive recovers on its own.
    wait_archive(&ns, "solo", "True").await;

    // Fixing the resources is all it takes now.
    patch_spec(&ns, "solo", json!({"backup": {"resources": {"requests": {"memory": "256Mi"}, "limits": {"memory": "1Gi"}}}})).await;
    let status = wait_completed(&ns, "early", Duration::from_secs(240)).await;
    assert_eq!(
        status.source_instance.as_deref(),
        Some("solo-0"),
        "the only instance"
    );
    ns.sql("solo", "solo-0", "CREATE DATABASE still_serving")
        .await
        .unwrap();

    // A restore from a backup that is not in the store: instance 0 never starts, with the
    // store's reason, and nothing of the cluster serves.
    let mut ghost = cluster_manifest("ghost", 1);
    ghost["spec"]["bootstrap"] = json!({"recovery": {"source": {
        "store": store_spec(&store, "right"), "namespace": ns.name, "cluster": "solo", "backup": "never-taken"
    }}});
    ns.create::<MySQLCluster>(ghost).await;
    let pods: Api<Pod> = ns.api();
    let message = wait_until(
        "ghost-0's restore to fail",
        Duration::from_secs(180),
        || async {
            let pod = pods.get("ghost-0").await.ok()?;
            pod.status?
                .init_container_statuses?
                .into_iter()
                .find(|c| c.name == "restore")?
                .last_state?
                .terminated?
                .message
        },
    )
    .await;
    assert!(
        message.contains("never-taken") && message.contains("does not exist"),
        "{message}"
    );
    let clusters: Api<MySQLCluster> = ns.api();
    let status = clusters
        .get("ghost")
        .await
        .unwrap()
        .status
        .unwrap_or_default();
    assert_eq!(status.current_primary, None, "nothing was made primary");
}

#[tokio::test]
async fn a_schedule_takes_backups_and_keep_deletes_the_older_ones_with_their_objects() {
    let ns = TestNamespace::new("backup-schedule").await;
    let store = test_store(&ns).await;
    store_secret(&ns, &store, "store", false).await;
    let mut manifest = cluster_manifest("tick", 1);
    manifest["spec"]["backup"] = json!({
        "store": store_spec(&store, "store"), "schedule": "* * * * *", "keep": 1
    });
    ns.create::<MySQLCluster>(manifest).await;
    wait_ready(&ns, "tick").await;
    // Two archived segments before the backups, so retention has archive to delete.
    let here = store_from_here(&ns, &store).await;
    let archive = here.key(&format!("{}/", archive_directory(&ns, "tick").await));
    for (database, seq) in [("early", 0), ("later", 1)] {
        ns.sql("tick", "tick-0", &format!("CREATE DATABASE {database}"))
            .await
            .unwrap();
        let index = format!("{archive}{seq:012}.json");
        wait_until(
            &format!("segment {seq} archived"),
            Duration::from_secs(60),
            || async { here.get(&index).await.ok().map(|_| ()) },
        )
        .await;
    }
    let scheduled = wait_until(
        "the BackupScheduled condition",
        Duration::from_secs(60),
        || cluster_condition(&ns, "tick", ConditionType::BackupScheduled),
    )
    .await;
    assert_eq!(scheduled.status, "True");
    assert!(
        scheduled.message.contains("next backup is due"),
        "{}",
        scheduled.message
    );

    let backups: Api<MySQLBackup> = ns.api();
    let completed = |list: &[MySQLBackup]| -> Vec<String> {
        list.iter()
            .filter(|b| {
                b.status.as_ref().and_then(|s| s.phase).map(|p| p.as_str()) == Some("Completed")
            })
            .map(|b| b.metadata.name.clone().unwrap())
            .collect()
    };
    let first = wait_until(
        "a scheduled backup to complete",
        Duration::from_secs(300),
        || async {
            let list = backups.list(&Default::default()).await.ok()?.items;
            completed(&list).into_iter().next()
        },
    )
    .await;
    assert!(
        first.starts_with("tick-2"),
        "named after the cluster and fire time: {first}"
    );
    let newer = wait_until(
        "a newer scheduled backup to complete and the first to be deleted",
        Duration::from_secs(300),
        || async {
            let list = backups.list(&Default::default()).await.ok()?.items;
            let names = completed(&list);
            let first_gone = list
                .iter()
                .all(|b| b.metadata.name.as_deref() != Some(first.as_str()));
            (first_gone && names.len() == 1).then(|| names[0].clone())
        },
    )
    .await;
    assert_ne!(newer, first);

    // The archive keeps what the kept backup needs to be brought forward, and nothing before.
    let newer_set = backups
        .get(&newer)
        .await
        .unwrap()
        .status
        .and_then(|s| s.gtid_set)
        .map(|s| GtidSet::parse(&s).unwrap())
        .unwrap();
    let indexes = wait_until(
        "the archive before the kept backup deleted",
        Duration::from_secs(60),
        || async {
            let listed = here.list(&archive).await.ok()?;
            let mut indexes: Vec<SegmentIndex> = Vec::new();
            for object in &listed {
                if ArchiveLayout::seq_of_index(&object.key).is_some() {
                    indexes.push(serde_json::from_slice(&here.get(&object.key).await.ok()?).ok()?);
                }
            }
            let segment_0 = listed
                .iter()
                .any(|o| o.key.ends_with("000000000000.binlog"));
            (!segment_0 && indexes.iter().all(|i| i.seq != 0)).then_some(indexes)
        },
    )
    .await;
    let chain = replay_chain(&indexes, &newer_set)
        .unwrap_or_else(|e| panic!("the kept backup's archive: {e}"));
    assert_eq!(
        chain.len(),
        indexes.len(),
        "every segment left is one the kept backup needs"
    );
    let gone = here
        .get(&here.key(&format!("{}/tick/backups/{first}/manifest.json", ns.name)))
        .await;
    assert!(
        gone.is_err(),
        "the expired backup's manifest is deleted from the store"
    );
    assert!(
        here.get(&here.key(&format!("{}/tick/backups/{newer}/manifest.json", ns.name)))
            .await
            .is_ok(),
        "the kept backup's manifest is there"
    );
    assert!(event_count_on(&ns, "MySQLBackup", "BackupExpired").await >= 1);
}

/// The client pod's clock, ns since the epoch: the clock the writer stamps its record with.
async fn client_clock(ns: &TestNamespace) -> u128 {
    ns.exec("client", "client", &["date", "+%s%N"])
        .await
        .trim()
        .parse()
        .expect("the client pod prints its clock")
}

/// The GTID set a pod's server holds.
async fn gtid_executed(ns: &TestNamespace, cluster: &str, pod: &str) -> GtidSet {
    let text = ns
        .sql(cluster, pod, "SELECT @@GLOBAL.gtid_executed")
        .await
        .unwrap_or_else(|e| panic!("{pod}: {e}"));
    // `mysql -B` writes the newlines MySQL puts after commas as `\n`.
    GtidSet::parse(&text.replace("\\n", "")).unwrap_or_else(|e| panic!("{pod}: {e}"))
}

/// The ids in `chaos.log` on the cluster's instance 0.
async fn logged_ids(ns: &TestNamespace, cluster: &str) -> BTreeSet<u64> {
    ns.sql(cluster, &format!("{cluster}-0"), "SELECT id FROM chaos.log")
        .await
        .unwrap_or_else(|e| panic!("{cluster}: {e}"))
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[tokio::test]
async fn a_cluster_restores_to_a_point_in_time_and_to_the_latest_archived_commit() {
    let ns = TestNamespace::new("pitr").await;
    let store = test_store(&ns).await;
    store_secret(&ns, &store, "store", false).await;
    let mut manifest = cluster_manifest("orders", 2);
    manifest["spec"]["backup"] = backup_spec(&store, "store");
    manifest["spec"]["backup"]["binlogs"] = json!({"delaySeconds": 2});
    ns.create::<MySQLCluster>(manifest).await;
    wait_ready(&ns, "orders").await;

    // Before T: writes, a backup while they run, more writes. The writer stops before T, so no
    // write is in flight at T and each acknowledged id is on one side of it.
    chaos::start_writing(&ns, "orders", 2, 600).await;
    create_backup(&ns, "base", "orders").await;
    wait_completed(&ns, "base", Duration::from_secs(300)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    chaos::stop(&ns, "client").await;
    let before = chaos::collect(&ns, "client", 0).await;
    let target = client_clock(&ns).await;
    // The same point as a GTID set: nothing writes between the writer's stop and the next one.
    let primary_at_t = chaos::current_primary(&ns, "orders")
        .await
        .expect("a primary");
    let gtids_at_t = gtid_executed(&ns, "orders", &primary_at_t).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // After T: a writer of its own (its ids are larger than any before), through a switchover
    // and a failover, which the archive must follow without a gap.
    chaos::start(&ns, "client", "orders", 2, 600).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    patch_spec(&ns, "orders", json!({"primaryInstance": 1})).await;
    chaos::wait_for_new_primary(&ns, "orders", "orders-0").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    chaos::crash_mysqld(&ns, "orders-1").await;
    chaos::wait_for_new_primary(&ns, "orders", "orders-1").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    chaos::stop(&ns, "client").await;
    let after = chaos::collect(&ns, "client", 0).await;
    assert!(
        before.acknowledged.len() > 20 && after.acknowledged.len() > 20,
        "the writers made progress: {} before T, {} after",
        before.acknowledged.len(),
        after.acknowledged.len()
    );
    assert!(event_count_on(&ns, "MySQLCluster", "SwitchedOver").await >= 1);
    assert!(event_count_on(&ns, "MySQLCluster", "FailedOver").await >= 1);
    wait_archive(&ns, "orders", "True").await;

    // The archive catches up with the last acknowledged write within its delay.
    let last_ack = after.acknowledged.iter().map(|(_, t)| *t).max().unwrap();
    let here = store_from_here(&ns, &store).await;
    let archive = archive_directory(&ns, "orders").await;
    let position_key = here.key(&format!("{archive}/position.json"));
    let caught_up = std::time::Instant::now();
    wait_until(
        "the archive to reach the last write",
        Duration::from_secs(60),
        || async {
            let body = here.get(&position_key).await.ok()?;
            let position: serde_json::Value = serde_json::from_slice(&body).ok()?;
            let through_ns = position["throughUs"].as_u64()? as u128 * 1000;
            (through_ns >= last_ack).then_some(())
        },
    )
    .await;
    eprintln!(
        "figure: archive caught up with the last acknowledged write {:.1} s after the writer stopped",
        caught_up.elapsed().as_secs_f64() + 3.0
    );

    // The cluster and its volumes go; the backup and the archive stay in the store.
    delete_cluster_and_wait(&ns, "orders").await;
    let claims: Api<PersistentVolumeClaim> = ns.api();
    claims
        .delete_collection(
            &Default::default(),
            &ListParams::default().labels("app.kubernetes.io/instance=orders"),
        )
        .await
        .unwrap();

    let time = jiff::Timestamp::from_nanosecond(target as i128)
        .unwrap()
        .to_string();
    for (name, recovery_target) in [
        ("at-t", json!({"time": time})),
        ("at-gtids", json!({"gtidSet": gtids_at_t.to_string()})),
        // The deleted cluster's name: a cluster of its own, which archives anew.
        ("orders", json!({"latest": true})),
    ] {
        let mut restored = cluster_manifest(name, 1);
        restored["spec"]["bootstrap"] =
            json!({"recovery": {"backup": "base", "target": recovery_target}});
        if name == "orders" {
            restored["spec"]["backup"] = backup_spec(&store, "store");
        }
        ns.create::<MySQLCluster>(restored).await;
    }
    let asked = std::time::Instant::now();
    wait_ready(&ns, "at-t").await;
    eprintln!(
        "figure: restored to a point in time, Ready {:.1} s after it was created",
        asked.elapsed().as_secs_f64()
    );
    wait_ready(&ns, "orders").await;

    // At T: every write acknowledged before T, none written after.
    let at_t = logged_ids(&ns, "at-t").await;
    let missing: Vec<u64> = before
        .acknowledged
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !at_t.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged before T, not restored: {missing:?}"
    );
    let first_after = after.acknowledged.iter().map(|(id, _)| *id).min().unwrap();
    let later: Vec<&u64> = at_t.iter().filter(|id| **id >= first_after).collect();
    assert!(later.is_empty(), "written after T, restored: {later:?}");
    eprintln!(
        "figure: restore to T holds {} rows: the {} acknowledged before T and none of the {} after",
        at_t.len(),
        before.acknowledged.len(),
        after.acknowledged.len()
    );

    // At the GTID set of T: exactly that set, so the same rows as at T.
    wait_ready(&ns, "at-gtids").await;
    // Of the old cluster's history exactly that set; the restored cluster's own writes since
    // are under its own server UUID.
    let restored_gtids = gtid_executed(&ns, "at-gtids", "at-gtids-0").await;
    let beyond = restored_gtids.difference(&gtids_at_t);
    assert!(
        gtids_at_t.is_subset_of(&restored_gtids)
            && !beyond
                .sources()
                .any(|s| gtids_at_t.sources().any(|t| t == s)),
        "restored to {gtids_at_t}, the cluster holds {restored_gtids}"
    );
    assert_eq!(
        logged_ids(&ns, "at-gtids").await,
        at_t,
        "restored to the GTID set of T: the rows restored to T"
    );

    // Latest: every acknowledged write.
    let newest = logged_ids(&ns, "orders").await;
    let missing: Vec<u64> = before
        .acknowledged
        .iter()
        .chain(&after.acknowledged)
        .map(|(id, _)| *id)
        .filter(|id| !newest.contains(id))
        .collect();
    eprintln!(
        "figure: restore to the latest point misses {} of {} acknowledged writes",
        missing.len(),
        before.acknowledged.len() + after.acknowledged.len()
    );
    assert!(
        missing.is_empty(),
        "acknowledged, not restored: {missing:?}"
    );
    // The new "orders" has a history of its own, which the old archive does not continue (it
    // holds transactions the restore did not take): it archives anew, to a directory of its own.
    wait_archive(&ns, "orders", "True").await;
    assert_ne!(archive_directory(&ns, "orders").await, archive);

    for name in ["at-t", "at-gtids", "orders"] {
        let restored = cluster_condition(&ns, name, ConditionType::Restored)
            .await
            .expect("a Restored condition");
        assert_eq!(restored.status, "True", "{name}: {}", restored.message);
    }
}

/// The backup's `status.verification`, once its phase is `phase`.
async fn wait_verification(
    ns: &TestNamespace,
    name: &str,
    phase: &str,
    after: Option<&str>,
) -> serde_json::Value {
    let backups: Api<MySQLBackup> = ns.api();
    wait_until(
        &format!("MySQLBackup {name} verification {phase}"),
        Duration::from_secs(240),
        || async {
            let backup = backups.get(name).await.ok()?;
            let verification = serde_json::to_value(backup.status?.verification?).ok()?;
            let requested = verification["requestedAt"].as_str();
            let newer = after.is_none_or(|after| requested.is_some_and(|r| r > after));
            (verification["phase"] == phase && newer).then_some(verification)
        },
    )
    .await
}

/// The leading operator's metrics once the series `name` of the "ledger" cluster (for
/// `sakila_backups`, its Completed phase) has `value`.
async fn wait_for_metric(ns: &TestNamespace, name: &str, value: f64) -> String {
    let series = match name {
        "sakila_backups" => format!(
            r#"{name}{{namespace="{}",cluster="ledger",phase="Completed"}}"#,
            ns.name
        ),
        _ => format!(r#"{name}{{namespace="{}",cluster="ledger"}}"#, ns.name),
    };
    wait_until(
        &format!("the operator to report {series} {value}"),
        Duration::from_secs(60),
        || async {
            let text = leader_metrics().await?;
            (sample(&text, &series) == Some(value)).then_some(text)
        },
    )
    .await
}

#[tokio::test]
async fn a_verification_restore_proves_the_newest_backup_and_finds_a_damaged_one() {
    let ns = TestNamespace::new("verify").await;
    let store = test_store(&ns).await;
    store_secret(&ns, &store, "store", false).await;
    let mut manifest = cluster_manifest("ledger", 1);
    manifest["spec"]["backup"] = backup_spec(&store, "store");
    manifest["spec"]["backup"]["verify"] = json!({"schedule": "* * * * *"});
    ns.create::<MySQLCluster>(manifest).await;
    wait_ready(&ns, "ledger").await;
    ns.sql(
        "ledger",
        "ledger-0",
        "CREATE DATABASE books; CREATE TABLE books.entries (id INT PRIMARY KEY, note TEXT); \
         INSERT INTO books.entries WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) SELECT i, REPEAT('x', 100) FROM n",
    )
    .await
    .unwrap();
    create_backup(&ns, "daily", "ledger").await;
    let completed = wait_completed(&ns, "daily", Duration::from_secs(300)).await;
    let gtid_set = completed.gtid_set.clone().unwrap();

    // The next fire of the schedule verifies the newest completed backup.
    let passed = wait_verification(&ns, "daily", "Passed", None).await;
    let message = passed["message"].as_str().unwrap_or_default().to_string();
    eprintln!("verification passed: {message}");
    for part in [
        "SHA-256 checked",
        &format!("holding exactly the GTID set {gtid_set}"),
        "CHECK TABLE passed on",
        "the binary log archive continues it without a gap",
    ] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
    assert!(event_count_on(&ns, "MySQLBackup", "VerificationPassed").await >= 1);
    wait_for_metric(&ns, "sakila_backup_last_verification_passed", 1.0).await;
    let text = wait_for_metric(&ns, "sakila_backups", 1.0).await;
    let labels = format!(r#"{{namespace="{}",cluster="ledger"}}"#, ns.name);
    assert_eq!(
        sample(&text, &format!("sakila_backup_last_size_bytes{labels}")),
        completed.size_bytes.map(|b| b as f64),
        "{text}"
    );
    assert!(
        sample(
            &text,
            &format!("sakila_backup_last_completed_timestamp_seconds{labels}")
        )
        .is_some_and(|t| t > 0.0),
        "{text}"
    );
    let scheduled = cluster_condition(&ns, "ledger", ConditionType::BackupScheduled)
        .await
        .expect("a BackupScheduled condition");
    assert!(
        scheduled.status == "True" && scheduled.message.contains("the next verification is due"),
        "{scheduled:?}"
    );

    // The stored data damaged: the next verification fails, saying why, with a Warning.
    let here = store_from_here(&ns, &store).await;
    let data = here.key(&format!("{}/ledger/backups/daily/data.tar.zst", ns.name));
    let mut damaged = here.get(&data).await.unwrap().to_vec();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    here.put(&data, damaged.into()).await.unwrap();
    let failed = wait_verification(&ns, "daily", "Failed", passed["requestedAt"].as_str()).await;
    let message = failed["message"].as_str().unwrap_or_default();
    eprintln!("verification failed: {message}");
    assert!(message.contains("SHA-256"), "{message}");
    assert!(event_count_on(&ns, "MySQLBackup", "VerificationFailed").await >= 1);
    wait_for_metric(&ns, "sakila_backup_last_verification_passed", 0.0).await;
    // The cluster serves on.
    wait_ready(&ns, "ledger").await;
}
