//! Benchmark (prints figures, asserts nothing about them): node failures on the testbed's three
//! workers under the chaos writer. The primary's node powered off RUNS times (write gap, lost
//! writes, two writers, time until the instance is replaced and the cluster whole), a replica's
//! node powered off, the primary's node partitioned for a minute and healed (with when the old
//! primary fenced itself against when the new one was made writable), and every worker drained
//! in turn. Ignored by the suite; run it with `e2e/bench/node-loss [RUNS]`.

use std::time::Duration;

use sakila_e2e::figures;
use sakila_e2e::node_loss::{self, Whose, Workers};
use sakila_e2e::{TestNamespace, wait_ready};

fn runs() -> usize {
    std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
}

/// The suite's manifest, with repeated failovers allowed (each run fails over again).
fn manifest(lost_node_seconds: u32) -> serde_json::Value {
    let mut manifest = node_loss::manifest(lost_node_seconds);
    manifest["spec"]["failover"]["minIntervalSeconds"] = serde_json::json!(0);
    manifest
}

/// `lostNodeSeconds` for the power cuts: the smallest allowed, so that a run's figures show the
/// replacement itself rather than the wait (the default, 120 s, adds to them one for one).
const LOST_NODE_SECONDS: u32 = 10;

fn p50(values: &[f64]) -> String {
    let list: Vec<String> = values.iter().map(|v| format!("{v:.2}")).collect();
    let summary = figures::summary(values).expect("at least one run");
    format!(
        "p50 {:.2} s, max {:.2} s (n={}: {} s)",
        summary.median,
        summary.max,
        values.len(),
        list.join(", ")
    )
}

async fn power_offs(whose: Whose, runs: usize) {
    let _workers = Workers::three();
    let ns = TestNamespace::new("bench-node-loss").await;
    node_loss::create(&ns, manifest(LOST_NODE_SECONDS)).await;
    let mut losses = Vec::new();
    for run in 1..=runs {
        wait_ready(&ns, node_loss::CLUSTER).await;
        let moved = node_loss::spread_out(&ns).await;
        if moved > 0 {
            println!(
                "{whose:?} node powered off, before run {run}: moved {moved} replica(s) off a shared node"
            );
        }
        let loss = node_loss::power_off(&ns, whose).await;
        println!(
            "{whose:?} node powered off, run {run}: {} on {}, write gap {:.2} s, {} acknowledged, {} lost, most writable at once {}; Ready on {} after {:.1} s, whole after {:.1} s",
            loss.pod,
            loss.node,
            loss.outcome.longest_write_gap.as_secs_f64(),
            loss.outcome.acknowledged,
            loss.outcome.lost,
            loss.outcome.most_writable_at_once,
            loss.new_node,
            loss.replaced_after.as_secs_f64(),
            loss.ready_after.as_secs_f64()
        );
        losses.push(loss);
    }
    let gaps: Vec<f64> = losses
        .iter()
        .map(|l| l.outcome.longest_write_gap.as_secs_f64())
        .collect();
    let replaced: Vec<f64> = losses
        .iter()
        .map(|l| l.replaced_after.as_secs_f64())
        .collect();
    println!(
        "BENCH {whose:?} node powered off: write gap {}; lost acknowledged writes {}; runs with two writers {}; instance Ready on another node after {} (lostNodeSeconds {LOST_NODE_SECONDS})",
        p50(&gaps),
        losses.iter().map(|l| l.outcome.lost).sum::<usize>(),
        losses
            .iter()
            .filter(|l| l.outcome.most_writable_at_once > 1)
            .count(),
        p50(&replaced)
    );
}

#[tokio::test]
#[ignore = "benchmark: e2e/bench/node-loss"]
async fn bench_primary_node_powered_off() {
    power_offs(Whose::Primary, runs()).await;
}

#[tokio::test]
#[ignore = "benchmark: e2e/bench/node-loss"]
async fn bench_replica_node_powered_off() {
    power_offs(Whose::Replica, 1).await;
}

#[tokio::test]
#[ignore = "benchmark: e2e/bench/node-loss"]
async fn bench_primary_node_partitioned_for_a_minute() {
    let _workers = Workers::three();
    let ns = TestNamespace::new("bench-partition").await;
    // The default lostNodeSeconds (120): a minute's partition heals before any replacement.
    let mut manifest = node_loss::manifest(120);
    manifest["spec"]["failover"]["minIntervalSeconds"] = serde_json::json!(0);
    node_loss::create(&ns, manifest).await;
    let cut = node_loss::partition_primary(&ns, Duration::from_secs(60)).await;
    let order = match (cut.fenced_at, cut.promoted_at) {
        (Some(f), Some(p)) => format!(
            "old primary read-only {:.3} s before the new one was made writable",
            p.duration_since(f).as_secs_f64()
        ),
        (f, p) => format!("fence logged at {f:?}, promotion logged at {p:?}"),
    };
    println!(
        "BENCH primary node partitioned 60 s: {} on {}, write gap {:.2} s, {} acknowledged, {} lost, most writable at once {}; {order}; whole {:.1} s after the heal, primary {:?}",
        cut.old_primary,
        cut.node,
        cut.outcome.longest_write_gap.as_secs_f64(),
        cut.outcome.acknowledged,
        cut.outcome.lost,
        cut.outcome.most_writable_at_once,
        cut.whole_after_heal.as_secs_f64(),
        cut.outcome.primary
    );
}

#[tokio::test]
#[ignore = "benchmark: e2e/bench/node-loss"]
async fn bench_every_worker_drained_in_turn() {
    let _workers = Workers::three();
    let ns = TestNamespace::new("bench-drain").await;
    node_loss::create(&ns, manifest(120)).await;
    let drained = node_loss::drain_each_worker(&ns).await;
    println!(
        "BENCH every worker drained and uncordoned in turn: {:.1} s in all, write gap {:.2} s, {} acknowledged, {} lost, most writable at once {}; {} drained nodes held the primary, {} switchovers, {} failovers",
        drained.took.as_secs_f64(),
        drained.outcome.longest_write_gap.as_secs_f64(),
        drained.outcome.acknowledged,
        drained.outcome.lost,
        drained.outcome.most_writable_at_once,
        drained.primaries_drained,
        drained.switchovers,
        drained.failovers
    );
}
