//! Benchmark (prints figures, asserts only that the data came back): a backup of a cluster
//! holding `BACKUP_BENCH_GB` GiB (default 2) of table data into the testbed's versitygw, and a
//! restore of it into a new cluster, timed from the resources' own timestamps; the binary log
//! archive's delay while the data was loaded, and a point-in-time restore that replays the whole
//! load on a backup taken before it. Ignored by the suite; run it with `e2e/bench/backup [GIB]`.
//!
//! The data is rows of 1 KiB of hexadecimal SHA-2 digests: random, so the compressor gets about
//! what it would from real text-heavy tables (hex packs to about half), not a best case.

use std::time::{Duration, Instant};

use sakila::api::MySQLCluster;
use sakila::backup::archive::{ArchiveLayout, SegmentIndex};
use sakila_e2e::backup::{
    TestStore, archive_directory, backup_spec, create_backup, store_from_here, store_secret,
    test_store, wait_completed,
};
use sakila_e2e::{TestNamespace, cluster_manifest, wait_ready, wait_until};
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
    // A backup before the load, for the point-in-time restore that replays all of it.
    create_backup(&ns, "early", "source").await;
    wait_completed(&ns, "early", Duration::from_secs(600)).await;
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

    let archive = archive_figures(&ns, &store).await;
    println!(
        "BENCH archive: {} segments, {:.0} MiB of binary log; delay from the oldest commit of a \
         segment to its index in the store: p50 {:.1} s, p99 {:.1} s, max {:.1} s \
         (delaySeconds 10)",
        archive.segments,
        mib(archive.bytes as f64),
        archive.delay_p50,
        archive.delay_p99,
        archive.delay_max
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

    // To a point in time after the load, from the backup before it: the whole load replayed.
    let mut replayed = big("replayed");
    replayed["spec"]["bootstrap"] = json!({"recovery": {
        "backup": "early",
        "target": {"time": archive.caught_up_at.to_string()},
    }});
    let asked = Instant::now();
    ns.create::<MySQLCluster>(replayed).await;
    wait_ready(&ns, "replayed").await;
    let ready = asked.elapsed().as_secs_f64();
    println!(
        "BENCH point-in-time restore: from the backup before the load, {:.0} MiB of binary log \
         replayed, Ready {ready:.1} s after it was created: {:.1} MiB/s of binary log",
        mib(archive.bytes as f64),
        mib(archive.bytes as f64) / ready
    );
    let copied = scalar(
        &ns,
        "replayed",
        "replayed-0",
        "SELECT COUNT(*) FROM bench.data",
    )
    .await;
    assert_eq!(copied, rows, "the replayed cluster holds every row");
}

/// What the archive of the load shows.
struct ArchiveFigures {
    segments: usize,
    bytes: u64,
    delay_p50: f64,
    delay_p99: f64,
    delay_max: f64,
    /// When the archive was seen to hold everything committed.
    caught_up_at: jiff::Timestamp,
}

/// Waits until the archive holds everything committed so far, then reads each segment's index
/// and when the store wrote it.
async fn archive_figures(ns: &TestNamespace, store: &TestStore) -> ArchiveFigures {
    let here = store_from_here(ns, store).await;
    let directory = here.key(&format!("{}/", archive_directory(ns, "source").await));
    let loaded = jiff::Timestamp::now();
    let caught_up_at = wait_until(
        "the archive to hold the load",
        Duration::from_secs(600),
        || async {
            let body = here.get(&format!("{directory}position.json")).await.ok()?;
            let position: serde_json::Value = serde_json::from_slice(&body).ok()?;
            let through =
                jiff::Timestamp::from_microsecond(position["throughUs"].as_i64()?).ok()?;
            (through > loaded).then_some(through)
        },
    )
    .await;
    let listed = here.list(&directory).await.unwrap();
    let mut delays = Vec::new();
    let mut bytes = 0;
    for object in &listed {
        if object.key.ends_with(".binlog") {
            bytes += object.size_bytes;
            continue;
        }
        if ArchiveLayout::seq_of_index(&object.key).is_none() {
            continue;
        }
        let index: SegmentIndex =
            serde_json::from_slice(&here.get(&object.key).await.unwrap()).unwrap();
        let written: jiff::Timestamp = object.last_modified.parse().unwrap();
        let delay = written.as_microsecond() - index.first_commit_us as i64;
        delays.push(delay as f64 / 1e6);
    }
    delays.sort_by(f64::total_cmp);
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
    ArchiveFigures {
        segments: delays.len(),
        bytes,
        delay_p50: at(0.5),
        delay_p99: at(0.99),
        delay_max: at(1.0),
        caught_up_at,
    }
}
