//! Benchmark (prints figures, asserts nothing about them): each failure scenario repeated on
//! 3-instance clusters under the chaos writer (one, or four taking turns for mysqld crashes:
//! `clusters_for`), printing per scenario the write gap (the longest time between two
//! acknowledged writes, which spans the failure) as p50, p95 and max, the lost acknowledged
//! writes, and how often two instances were seen writable. Ignored by the suite; run it with
//! `e2e/bench/failover [RUNS]`.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use sakila::api::MySQLCluster;
use sakila_e2e::chaos::{self, Outcome};
use sakila_e2e::figures;
use sakila_e2e::{
    TestNamespace, cluster_manifest, force_delete_pod, mysql_client_image, wait_ready,
};
use serde_json::json;

const WRITER_SECONDS: u64 = 30;
const FAILURE_AFTER: Duration = Duration::from_secs(8);

fn runs() -> usize {
    std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
}

/// The failure to inject, given the namespace and the current primary's pod.
#[derive(Clone, Copy, Debug)]
enum Failure {
    MysqldCrash,
    PodForceDeleted,
    Switchover,
    PodDeleted,
}

async fn inject(ns: &TestNamespace, failure: Failure, primary: &str) {
    let pods: Api<Pod> = ns.api();
    match failure {
        Failure::MysqldCrash => chaos::crash_mysqld(ns, primary).await,
        Failure::PodForceDeleted => force_delete_pod(&pods, primary).await,
        Failure::PodDeleted => {
            pods.delete(primary, &DeleteParams::default())
                .await
                .unwrap();
        }
        Failure::Switchover => {
            let ordinal: u8 = primary.trim_start_matches("trio-").parse().unwrap();
            let clusters: Api<MySQLCluster> = ns.api();
            clusters
                .patch(
                    "trio",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"primaryInstance": (ordinal + 1) % 3}})),
                )
                .await
                .unwrap();
        }
    }
}

/// How many clusters a scenario's runs go round. A crashed mysqld restarts in its container,
/// and the kubelet's back-off between restarts of one container (10 s after the first, which the
/// clone at bootstrap already was, doubling up to 5 min, forgotten after 10 min of running)
/// would grow with every run on one cluster until each run waited minutes for the old primary to
/// rejoin. Over four clusters each container crashes at most every twelfth run, and a cluster's
/// next turn comes after its restarted container's back-off is over.
fn clusters_for(failure: Failure) -> usize {
    match failure {
        Failure::MysqldCrash => 4,
        _ => 1,
    }
}

async fn bench(failure: Failure) {
    let mut beds = Vec::new();
    for _ in 0..clusters_for(failure) {
        let ns = TestNamespace::new("bench-failover").await;
        let mut manifest = cluster_manifest("trio", 3);
        // Repeated failovers on one cluster: no minimum interval between them.
        manifest["spec"]["failover"] = json!({"minIntervalSeconds": 0});
        ns.create::<MySQLCluster>(manifest).await;
        beds.push(ns);
    }
    for ns in &beds {
        wait_ready(ns, "trio").await;
        ns.client_pod("client", &mysql_client_image()).await;
    }
    let mut outcomes: Vec<Outcome> = Vec::new();
    for run in 1..=runs() {
        let ns = &beds[(run - 1) % beds.len()];
        // The instance replaced in this cluster's last run has rejoined.
        wait_ready(ns, "trio").await;
        let primary = chaos::current_primary(ns, "trio").await.unwrap();
        chaos::start(ns, "client", "trio", 3, WRITER_SECONDS).await;
        let started = Instant::now();
        tokio::time::sleep(FAILURE_AFTER).await;
        inject(ns, failure, &primary).await;
        let left = Duration::from_secs(WRITER_SECONDS).saturating_sub(started.elapsed());
        let record = chaos::collect(ns, "client", left.as_secs()).await;
        let outcome = chaos::measure(ns, "trio", 3, &record).await;
        println!(
            "{failure:?} run {run} in {}: from {primary} to {:?}, write gap {:.2} s (from {}), {} acknowledged, {} lost, most writable at once {}",
            ns.name,
            outcome.primary,
            outcome.longest_write_gap.as_secs_f64(),
            outcome.longest_write_gap_since,
            outcome.acknowledged,
            outcome.lost,
            outcome.most_writable_at_once
        );
        outcomes.push(outcome);
    }
    let gaps: Vec<f64> = outcomes
        .iter()
        .map(|o| o.longest_write_gap.as_secs_f64())
        .collect();
    let runs: Vec<String> = gaps.iter().map(|g| format!("{g:.2}")).collect();
    let figures = figures::summary(&gaps).expect("at least one run");
    println!(
        "BENCH {failure:?}: write gap p50 {:.2} s, p95 {:.2} s, max {:.2} s (n={}: {} s); lost acknowledged writes {}; runs with two writers {}",
        figures.median,
        figures.p95,
        figures.max,
        gaps.len(),
        runs.join(", "),
        outcomes.iter().map(|o| o.lost).sum::<usize>(),
        outcomes
            .iter()
            .filter(|o| o.most_writable_at_once > 1)
            .count()
    );
}

#[tokio::test]
#[ignore = "benchmark: e2e/bench/failover"]
async fn bench_mysqld_crash() {
    bench(Failure::MysqldCrash).await;
}

#[tokio::test]
#[ignore = "benchmark: e2e/bench/failover"]
async fn bench_primary_pod_force_deleted() {
    bench(Failure::PodForceDeleted).await;
}

#[tokio::test]
#[ignore = "benchmark: e2e/bench/failover"]
async fn bench_switchover() {
    bench(Failure::Switchover).await;
}

#[tokio::test]
#[ignore = "benchmark: e2e/bench/failover"]
async fn bench_primary_pod_deleted_gracefully() {
    bench(Failure::PodDeleted).await;
}
