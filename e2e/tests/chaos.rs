//! The chaos suite: each scenario runs a writer through `<name>-primary` that records every
//! acknowledged commit, and a sampler that counts writable instances every 200 ms. After the
//! failure, every scenario checks the same things (`chaos::verify`): never two writers, the
//! cluster Ready again, every acknowledged write on every instance, and GTID sets converged.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use sakila::api::MySQLCluster;
use sakila_e2e::chaos::{self, Partition};
use sakila_e2e::{TestNamespace, cluster_manifest, force_delete_pod, wait_ready, wait_until};
use serde_json::json;

const WRITER_SECONDS: u64 = 60;
/// When the failure is injected, after the writer started.
const FAILURE_AFTER: Duration = Duration::from_secs(8);

/// A scenario's namespace, with when its writer started and for how long it writes.
struct Scenario {
    ns: TestNamespace,
    started: Instant,
    writer_seconds: u64,
}

/// A Ready 3-instance cluster `trio` with a client pod, and the writer and sampler running.
async fn scenario(prefix: &str, spec: serde_json::Value, writer_seconds: u64) -> Scenario {
    let mut manifest = cluster_manifest("trio", 3);
    merge(&mut manifest["spec"], spec);
    let chaos::UnderWrites { ns, started } =
        chaos::cluster_under_writes(prefix, manifest, writer_seconds).await;
    tokio::time::sleep(FAILURE_AFTER.saturating_sub(started.elapsed())).await;
    Scenario {
        ns,
        started,
        writer_seconds,
    }
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(into), serde_json::Value::Object(from)) = (into.as_object_mut(), from) {
        for (k, v) in from {
            into.insert(k, v);
        }
    }
}

/// Lets the writer finish and runs the common checks.
async fn finish(s: &Scenario) -> chaos::Outcome {
    chaos::finish_writing(&s.ns, s.started, s.writer_seconds, "trio", 3).await
}

#[tokio::test]
async fn mysqld_crashed_twice_in_a_row_is_recovered_without_losing_acknowledged_writes() {
    let s = scenario("crash", json!({}), WRITER_SECONDS + 30).await;
    let ns = &s.ns;
    chaos::crash_mysqld(ns, "trio-0").await;
    let second = chaos::wait_for_new_primary(ns, "trio", "trio-0").await;
    wait_ready(ns, "trio").await;
    // The new primary crashes too, within spec.failover.minIntervalSeconds (300 s by default):
    // no second failover; mysqld restarts in place and is made writable again.
    chaos::crash_mysqld(ns, &second).await;
    let outcome = finish(&s).await;
    assert_eq!(outcome.primary.as_deref(), Some(second.as_str()));
    assert_eq!(sakila_e2e::event_count(ns, "FailedOver").await, 1);
}

#[tokio::test]
async fn primary_pod_force_deleted_under_writes_fails_over_without_losing_acknowledged_writes() {
    let s = scenario("force-deleted", json!({}), WRITER_SECONDS).await;
    let pods: Api<Pod> = s.ns.api();
    force_delete_pod(&pods, "trio-0").await;
    let outcome = finish(&s).await;
    assert_ne!(
        outcome.primary.as_deref(),
        Some("trio-0"),
        "a replica was promoted"
    );
    // Once: a failover, or a switchover when the operator still found the deleted pod's mysqld
    // answering (the pod object is marked deleted before its kubelet has killed it).
    let failovers = sakila_e2e::event_count(&s.ns, "FailedOver").await;
    let switchovers = sakila_e2e::event_count(&s.ns, "SwitchedOver").await;
    assert_eq!(
        failovers + switchovers,
        1,
        "{failovers} failovers, {switchovers} switchovers"
    );
}

#[tokio::test]
async fn primary_cut_off_for_a_minute_is_replaced_and_rejoins_after_the_heal() {
    if std::env::var_os("SAKILA_TESTBED").is_none() {
        println!("SKIPPED: the partition is made with iptables on the testbed's node");
        return;
    }
    let s = scenario("partition", json!({}), 120).await;
    let ns = &s.ns;
    let ip = chaos::pod_ip(ns, "trio-0").await;
    let partition = Partition::cut(&ip);
    let cut_at = Instant::now();
    let new_primary = chaos::wait_for_new_primary(ns, "trio", "trio-0").await;
    println!(
        "partition: {new_primary} took over after {:.1} s",
        cut_at.elapsed().as_secs_f64()
    );
    // The old primary is out of reach of the network, not of `kubectl exec`: by the time a
    // replica was promoted it must have fenced itself (read-only, or mysqld down and restarting
    // read-only), so there were never two writable instances, seen from anywhere.
    let old_read_only = ns
        .sql("trio", "trio-0", "SELECT @@global.super_read_only")
        .await;
    let pods: Api<Pod> = ns.api();
    let fence_log = pods
        .logs(
            "trio-0",
            &kube::api::LogParams {
                // The agent runs the self-fence.
                container: Some("agent".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| format!("(no fence log: {e})"));
    println!(
        "partition: trio-0 after the promotion: super_read_only {old_read_only:?}; fence log:\n{fence_log}"
    );
    assert!(
        !matches!(old_read_only.as_deref().map(str::trim), Ok("0")),
        "the cut-off old primary was still writable when {new_primary} was promoted"
    );
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(cut_at.elapsed())).await;
    partition.heal();
    let left = Duration::from_secs(s.writer_seconds).saturating_sub(s.started.elapsed());
    let record = chaos::collect(ns, "client", left.as_secs()).await;
    let outcome = chaos::verify(ns, "trio", 3, &record).await;
    println!("partition: {outcome:?}");
    assert_eq!(outcome.lost, 0);
    assert_eq!(outcome.primary, Some(new_primary));
}

#[tokio::test]
async fn a_replica_deleted_under_writes_rejoins() {
    let s = scenario("replica-deleted", json!({}), WRITER_SECONDS).await;
    let pods: Api<Pod> = s.ns.api();
    pods.delete("trio-2", &DeleteParams::default())
        .await
        .unwrap();
    let outcome = finish(&s).await;
    assert_eq!(outcome.primary.as_deref(), Some("trio-0"));
}

#[tokio::test]
async fn all_pods_deleted_at_once_come_back_with_every_acknowledged_write() {
    let s = scenario("all-deleted", json!({}), WRITER_SECONDS).await;
    let pods: Api<Pod> = s.ns.api();
    for ordinal in 0..3 {
        force_delete_pod(&pods, &format!("trio-{ordinal}")).await;
    }
    finish(&s).await;
}

#[tokio::test]
async fn an_errant_transaction_on_a_replica_is_reported_and_recloned_on_request() {
    let s = scenario("errant", json!({}), WRITER_SECONDS).await;
    let ns = &s.ns;
    // An empty transaction with a GTID of its own: allowed under super_read_only, and exactly
    // what a write made directly on a replica leaves behind.
    let errant = "eeeeeeee-0000-0000-0000-000000000000:1";
    ns.sql(
        "trio",
        "trio-2",
        &format!("SET gtid_next='{errant}'; BEGIN; COMMIT; SET gtid_next=AUTOMATIC"),
    )
    .await
    .unwrap();
    let clusters: Api<MySQLCluster> = ns.api();
    let reported = wait_until(
        "the errant transaction in the status",
        Duration::from_secs(60),
        || async {
            let status = clusters.get("trio").await.ok()?.status?;
            let instance = status.instances.iter().find(|i| i.name == "trio-2")?;
            instance.errant_gtids.clone()
        },
    )
    .await;
    assert_eq!(reported, errant);
    let pods: Api<Pod> = ns.api();
    pods.patch(
        "trio-2",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"mysql.sakila.dev/reclone": "true"}}})),
    )
    .await
    .unwrap();
    finish(&s).await;
    let executed = ns
        .sql("trio", "trio-2", "SELECT @@global.gtid_executed")
        .await
        .unwrap();
    assert!(!executed.contains("eeeeeeee"), "{executed}");
    let annotations = pods.get("trio-2").await.unwrap().metadata.annotations;
    assert!(
        annotations.is_none_or(|a| !a.contains_key("mysql.sakila.dev/reclone")),
        "the request is removed once carried out"
    );
    // What the clone threw away stays on record in the status.
    let discarded = clusters
        .get("trio")
        .await
        .unwrap()
        .status
        .unwrap()
        .discarded_transactions;
    assert_eq!(discarded.len(), 1, "{discarded:?}");
    assert_eq!(
        (discarded[0].instance.as_str(), discarded[0].gtids.as_str()),
        ("trio-2", errant)
    );
}

#[tokio::test]
async fn switchover_through_primary_instance_under_writes_moves_the_primary_once() {
    let s = scenario("switchover", json!({}), WRITER_SECONDS).await;
    let ns = &s.ns;
    let clusters: Api<MySQLCluster> = ns.api();
    clusters
        .patch(
            "trio",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"primaryInstance": 1}})),
        )
        .await
        .unwrap();
    let outcome = finish(&s).await;
    assert_eq!(outcome.primary.as_deref(), Some("trio-1"));
    assert_eq!(sakila_e2e::event_count(ns, "SwitchedOver").await, 1);
    assert_eq!(sakila_e2e::event_count(ns, "FailedOver").await, 0);
}

#[tokio::test]
async fn deleting_the_primary_pod_gracefully_switches_over_instead_of_failing_over() {
    let s = scenario("drain", json!({}), WRITER_SECONDS).await;
    let ns = &s.ns;
    let pods: Api<Pod> = ns.api();
    pods.delete("trio-0", &DeleteParams::default())
        .await
        .unwrap();
    let outcome = finish(&s).await;
    assert_ne!(outcome.primary.as_deref(), Some("trio-0"));
    assert_eq!(sakila_e2e::event_count(ns, "SwitchedOver").await, 1);
    assert_eq!(sakila_e2e::event_count(ns, "FailedOver").await, 0);
}
