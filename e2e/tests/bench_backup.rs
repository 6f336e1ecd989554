//! Benchmark (prints figures, asserts only that the data came back): a backup of a cluster
//! holding `BACKUP_BENCH_GB` GiB (default 2) of table data into the testbed's MinIO, and a
//! restore of it into a new cluster, timed from the resources' own timestamps. Ignored by the
//! suite; run it with `e2e/bench/backup [GIB]`.
//!
//! The data is rows of 1 KiB of hexadecimal SHA-2 digests: random, so the compressor gets about
//! what it would from real text-heavy tables (hex packs to about half), not a best case.

use std::time::{Duration, Instant};

use sakila::api::MySQLCluster;
use sakila_e2e::backup::{backup_spec, create_backup, store_secret, test_store, wait_completed};
use sakila_e2e::{TestNamespace, cluster_manifest, wait_ready};
use serde_json::json;

/// Rows per INSERT: 64 MiB of payload, committed one statement at a time.
const CHUNK_ROWS: u64 = 65_536;
const ROW_BYTES: u64 = 1024;

fn target_gib() -> f64 {
    std::env::var("BACKUP_BENCH_GB")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(2.0)
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

async fn scalar(ns: &TestNamespace, cluster: &str, pod: &str, sql: &str) -> String {
    ns.sql(cluster, pod, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .trim()
        .to_string()
}

#[tokio::test]
#[ignore = "a benchmark: e2e/bench/backup"]
async fn backup_and_restore_throughput() {
    let ns = TestNamespace::new("bench-backup").await;
    let store = test_store(&ns).await;
    store_secret(&ns, &store, "store", false).await;
    let big = |name: &str| {
        let mut manifest = cluster_manifest(name, 1);
        manifest["spec"]["storage"] = json!({"size": "16Gi"});
        manifest["spec"]["mysqlConfig"]["innodb_buffer_pool_size"] = json!("256M");
        manifest
    };
    let mut source = big("source");
    source["spec"]["backup"] = backup_spec(&store, "store");
    ns.create::<MySQLCluster>(source).await;
    wait_ready(&ns, "source").await;

    // The data: a 64 Ki-row seed, then chunks of it with fresh digests until the target.
    let digest = (0..ROW_BYTES / 128)
        .map(|_| "SHA2(RAND(), 512)")
        .collect::<Vec<_>>()
        .join(", ");
    scalar(
        &ns,
        "source",
        "source-0",
        &format!(
            "SET SESSION cte_max_recursion_depth = {CHUNK_ROWS}; \
             CREATE DATABASE bench; \
             CREATE TABLE bench.seq (n INT PRIMARY KEY); \
             INSERT INTO bench.seq WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {CHUNK_ROWS}) SELECT n FROM s; \
             CREATE TABLE bench.data (id BIGINT AUTO_INCREMENT PRIMARY KEY, payload VARCHAR(1024) NOT NULL)"
        ),
    )
    .await;
    let chunks =
        (target_gib() * 1024.0 * 1024.0 * 1024.0 / (CHUNK_ROWS * ROW_BYTES) as f64).ceil() as u64;
    let loading = Instant::now();
    for chunk in 0..chunks {
        scalar(
            &ns,
            "source",
            "source-0",
            &format!("INSERT INTO bench.data (payload) SELECT CONCAT({digest}) FROM bench.seq"),
        )
        .await;
        if chunk % 8 == 7 {
            eprintln!("loaded {} of {chunks} chunks", chunk + 1);
        }
    }
    let load_seconds = loading.elapsed().as_secs_f64();
    let rows = scalar(&ns, "source", "source-0", "SELECT COUNT(*) FROM bench.data").await;
    let data_bytes: f64 = scalar(
        &ns,
        "source",
        "source-0",
        "ANALYZE TABLE bench.data; SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = 'bench'",
    )
    .await
    .lines()
    .last()
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    println!(
        "BENCH load: {rows} rows, {:.0} MiB of table data in {load_seconds:.1} s",
        mib(data_bytes)
    );

    create_backup(&ns, "bench", "source").await;
    let status = wait_completed(&ns, "bench", Duration::from_secs(3600)).await;
    let took = (status.completed_at.unwrap().0 - status.started_at.unwrap().0)
        .total(jiff::Unit::Second)
        .unwrap();
    let stored = status.size_bytes.unwrap() as f64;
    println!(
        "BENCH backup: {:.0} MiB of table data stored as {:.0} MiB (zstd) in {took:.1} s: \
         {:.1} MiB/s of table data (clone, pack, upload; startedAt to completedAt)",
        mib(data_bytes),
        mib(stored),
        mib(data_bytes) / took
    );

    let mut restored = big("restored");
    restored["spec"]["bootstrap"] = json!({"recovery": {"backup": "bench"}});
    let asked = Instant::now();
    ns.create::<MySQLCluster>(restored).await;
    wait_ready(&ns, "restored").await;
    let ready = asked.elapsed().as_secs_f64();
    println!(
        "BENCH restore: a 1-instance cluster from the {:.0} MiB backup Ready {ready:.1} s after \
         it was created: {:.1} MiB/s of table data (download, check, unpack, start)",
        mib(stored),
        mib(data_bytes) / ready
    );
    let copied = scalar(
        &ns,
        "restored",
        "restored-0",
        "SELECT COUNT(*) FROM bench.data",
    )
    .await;
    assert_eq!(copied, rows, "the restored cluster holds every row");
}
