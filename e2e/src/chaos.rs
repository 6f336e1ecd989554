//! The chaos tools: a writer that records every acknowledged commit and a sampler that counts
//! writable instances, both running inside a client pod so they see the cluster as a client does.

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use sakila::api::MySQLCluster;

use crate::{TestNamespace, wait_ready, wait_until};

/// What the writer and the sampler saw during a scenario.
#[derive(Debug)]
pub struct ChaosRecord {
    /// Ids whose INSERT was acknowledged, with the acknowledgement time (ns since the epoch).
    pub acknowledged: Vec<(u64, u128)>,
    /// Each sample: time (ns) and how many instances were writable.
    pub writable_samples: Vec<(u128, usize)>,
}

impl ChaosRecord {
    /// The longest time between two consecutive acknowledged writes.
    pub fn longest_write_gap(&self) -> Duration {
        self.longest_write_gap_at().0
    }

    /// The longest time between two consecutive acknowledged writes, and when the first of the
    /// two was acknowledged (ns since the epoch; 0 without two writes): where to look in the
    /// operator's log.
    pub fn longest_write_gap_at(&self) -> (Duration, u128) {
        let (gap, since) = self
            .acknowledged
            .windows(2)
            .map(|w| (w[1].1.saturating_sub(w[0].1), w[0].1))
            .max()
            .unwrap_or((0, 0));
        (Duration::from_nanos(gap as u64), since)
    }

    /// The most instances ever seen writable at once.
    pub fn most_writable_at_once(&self) -> usize {
        self.writable_samples.iter().map(|s| s.1).max().unwrap_or(0)
    }
}

/// A scenario under writes: its namespace, and when the writer started.
pub struct UnderWrites {
    pub ns: TestNamespace,
    pub started: Instant,
}

/// The start of every scenario under writes: the cluster of `manifest` created in a new
/// namespace and Ready, then `start_writing` for `writer_seconds`.
pub async fn cluster_under_writes(
    prefix: &str,
    manifest: serde_json::Value,
    writer_seconds: u64,
) -> UnderWrites {
    let ns = TestNamespace::new(prefix).await;
    let name = manifest["metadata"]["name"]
        .as_str()
        .expect("the manifest names the cluster")
        .to_string();
    let instances = manifest["spec"]["instances"]
        .as_u64()
        .expect("the manifest sets spec.instances") as u8;
    ns.create::<MySQLCluster>(manifest).await;
    wait_ready(&ns, &name).await;
    let started = start_writing(&ns, &name, instances, writer_seconds).await;
    UnderWrites { ns, started }
}

/// How long the writer runs before a scenario's change, so that its record shows the cluster
/// taking writes before the change.
pub const WRITER_WARMUP: Duration = Duration::from_secs(5);

/// Starts a client pod `client` and in it the writer and sampler of `cluster` for
/// `writer_seconds`, and gives them `WRITER_WARMUP`; returns when the writer started.
pub async fn start_writing(
    ns: &TestNamespace,
    cluster: &str,
    instances: u8,
    writer_seconds: u64,
) -> Instant {
    ns.client_pod("client", &crate::mysql_client_image()).await;
    start(ns, "client", cluster, instances, writer_seconds).await;
    let started = Instant::now();
    tokio::time::sleep(WRITER_WARMUP).await;
    started
}

/// Starts, in the client pod, a writer through `<cluster>-primary` and a sampler of every
/// instance's `read_only` every 200 ms, both for `seconds` (or until `stop`); `collect`
/// reads their records. Ids start from the clock, so later writers never reuse one.
pub async fn start(ns: &TestNamespace, client: &str, cluster: &str, instances: u8, seconds: u64) {
    let password = ns.root_password(cluster).await;
    let primary_pod = current_primary(ns, cluster)
        .await
        .unwrap_or_else(|| format!("{cluster}-0"));
    ns.sql(cluster, &primary_pod, "CREATE DATABASE IF NOT EXISTS chaos; CREATE TABLE IF NOT EXISTS chaos.log (id BIGINT PRIMARY KEY)")
        .await
        .expect("the chaos table is created on the primary");
    let seconds = seconds.to_string();
    let primary = format!("{cluster}-primary.{}.svc", ns.name);
    let hosts: Vec<String> = (0..instances)
        .map(|o| format!("{cluster}-{o}.{cluster}.{}.svc", ns.name))
        .collect();
    let writer_args = [seconds.as_str(), primary.as_str(), password.as_str()];
    let sampler_args: Vec<&str> = [seconds.as_str(), password.as_str()]
        .into_iter()
        .chain(hosts.iter().map(String::as_str))
        .collect();
    ns.exec(client, "client", &["rm", "-f", "/tmp/stop"]).await;
    run_detached(ns, client, "writer", WRITER, &writer_args).await;
    run_detached(ns, client, "sampler", SAMPLER, &sampler_args).await;
}

/// The writer and the sampler, run in the client pod (each file says what it records).
const WRITER: &str = include_str!("../scripts/writer.sh");
const SAMPLER: &str = include_str!("../scripts/sampler.sh");

/// Copies `script` into the client pod as `/tmp/<name>.sh` and starts it in the background with
/// `args`. Script and arguments travel as separate arguments of the exec, never quoted into a
/// command line.
async fn run_detached(ns: &TestNamespace, client: &str, name: &str, script: &str, args: &[&str]) {
    let path = format!("/tmp/{name}.sh");
    let copy = [
        "sh",
        "-c",
        r#"printf '%s' "$1" > "$2""#,
        "sh",
        script,
        &path,
    ];
    ns.exec(client, "client", &copy).await;
    let start = [
        &[
            "sh",
            "-c",
            r#"nohup sh "$@" >/dev/null 2>&1 &"#,
            "sh",
            &path,
        ][..],
        args,
    ]
    .concat();
    ns.exec(client, "client", &start).await;
}

/// Tells the writer and the sampler to stop after their current round.
pub async fn stop(ns: &TestNamespace, client: &str) {
    ns.exec(client, "client", &["touch", "/tmp/stop"]).await;
}

/// Waits for the writer and sampler to finish and reads what they recorded.
pub async fn collect(ns: &TestNamespace, client: &str, seconds_left: u64) -> ChaosRecord {
    tokio::time::sleep(Duration::from_secs(seconds_left + 3)).await;
    let acked = ns.exec(client, "client", &["cat", "/tmp/acked"]).await;
    let writable = ns.exec(client, "client", &["cat", "/tmp/writable"]).await;
    let pairs = |text: &str| -> Vec<(u128, u128)> {
        text.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
            })
            .collect()
    };
    ChaosRecord {
        acknowledged: by_time(
            pairs(&acked)
                .into_iter()
                .map(|(id, t)| (id as u64, t))
                .collect(),
        ),
        writable_samples: pairs(&writable)
            .into_iter()
            .map(|(t, n)| (t, n as usize))
            .collect(),
    }
}

/// The writer's attempts overlap while writes hang, so its record is put in the order of the
/// acknowledgements.
fn by_time(mut acknowledged: Vec<(u64, u128)>) -> Vec<(u64, u128)> {
    acknowledged.sort_by_key(|(_, t)| *t);
    acknowledged
}

/// Lets the writer run to its end (`writer_seconds` from `started`), then runs `verify`. The
/// writer must have made progress (more than 50 commits) and lost nothing.
pub async fn finish_writing(
    ns: &TestNamespace,
    started: Instant,
    writer_seconds: u64,
    cluster: &str,
    instances: u8,
) -> Outcome {
    let left = Duration::from_secs(writer_seconds).saturating_sub(started.elapsed());
    let record = collect(ns, "client", left.as_secs()).await;
    assert!(
        record.acknowledged.len() > 50,
        "the writer made progress: {} writes",
        record.acknowledged.len()
    );
    let outcome = verify(ns, cluster, instances, &record).await;
    assert_eq!(outcome.lost, 0, "acknowledged writes were lost");
    outcome
}

/// Stops the writer and sampler and runs `verify`; for a change whose duration is not known in
/// advance. Before stopping, waits (up to `PROGRESS_TIMEOUT`) until the writer has made
/// progress: `min_acknowledged` commits in all, one of them acknowledged after this call, so the
/// cluster is shown to take writes through its primary Service now, not just before the change.
pub async fn stop_and_verify(
    ns: &TestNamespace,
    client: &str,
    cluster: &str,
    instances: u8,
    min_acknowledged: usize,
) -> Outcome {
    let called_at: u128 = ns
        .exec(client, "client", &["date", "+%s%N"])
        .await
        .trim()
        .parse()
        .expect("the client pod prints its clock");
    wait_until("the writer to make progress", PROGRESS_TIMEOUT, || async {
        let acked = ns.exec(client, "client", &["cat", "/tmp/acked"]).await;
        let times: Vec<u128> = acked
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .collect();
        let latest = times.iter().max().copied().unwrap_or(0);
        (times.len() >= min_acknowledged && latest > called_at).then_some(())
    })
    .await;
    stop(ns, client).await;
    let record = collect(ns, client, 0).await;
    let outcome = verify(ns, cluster, instances, &record).await;
    assert_eq!(outcome.lost, 0, "acknowledged writes were lost");
    outcome
}

/// How long `stop_and_verify` waits for the writer's progress: a re-created primary Service
/// gets a new address, which clients see once DNS answers for the new Service.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(120);

/// The acknowledged ids missing from `pod`'s `chaos.log`.
pub async fn missing_on(
    ns: &TestNamespace,
    cluster: &str,
    pod: &str,
    record: &ChaosRecord,
) -> Result<Vec<u64>, String> {
    let present = ns.sql(cluster, pod, "SELECT id FROM chaos.log").await?;
    let present: std::collections::BTreeSet<u64> = present
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    Ok(record
        .acknowledged
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !present.contains(id))
        .collect())
}

/// Crashes mysqld in a pod: SIGSEGV to the container's PID 1 (a pid namespace's init ignores
/// SIGKILL from inside; mysqld handles SIGSEGV by dying, as in a real crash).
pub async fn crash_mysqld(ns: &TestNamespace, pod: &str) {
    // The shell's builtin kill: the image has no kill binary.
    ns.try_exec(pod, "mysqld", &["sh", "-c", "kill -SEGV 1"])
        .await
        .unwrap_or_else(|e| panic!("failed to crash mysqld in {pod}: {e}"));
}

/// The cluster's recorded primary.
pub async fn current_primary(ns: &TestNamespace, cluster: &str) -> Option<String> {
    let clusters: Api<MySQLCluster> = ns.api();
    clusters.get(cluster).await.ok()?.status?.current_primary
}

/// Waits until the recorded primary differs from `old`, and returns it.
pub async fn wait_for_new_primary(ns: &TestNamespace, cluster: &str, old: &str) -> String {
    wait_until(
        &format!("a primary other than {old}"),
        Duration::from_secs(180),
        || async { current_primary(ns, cluster).await.filter(|p| p != old) },
    )
    .await
}

/// What a scenario ended with, for the log and the benchmark.
#[derive(Debug)]
pub struct Outcome {
    pub acknowledged: usize,
    pub longest_write_gap: Duration,
    /// When the longest write gap began (the last acknowledgement before it), UTC.
    pub longest_write_gap_since: String,
    pub most_writable_at_once: usize,
    pub lost: usize,
    /// Every instance ended with the same GTID set.
    pub converged: bool,
    pub primary: Option<String>,
}

/// The checks every scenario ends with: at most one writable instance was ever seen, the
/// cluster is Ready again, every acknowledged write is on every instance, and the GTID sets of
/// all instances converge.
pub async fn verify(
    ns: &TestNamespace,
    cluster: &str,
    instances: u8,
    record: &ChaosRecord,
) -> Outcome {
    assert!(
        record.most_writable_at_once() <= 1,
        "two instances were writable at once"
    );
    // Every scenario starts on a Ready cluster: a sampler that never saw its primary writable
    // did not sample, and the check above would pass for nothing.
    assert!(
        record.most_writable_at_once() == 1,
        "the sampler never saw a writable instance in {} samples",
        record.writable_samples.len()
    );
    let outcome = measure(ns, cluster, instances, record).await;
    assert!(outcome.converged, "the GTID sets did not converge");
    outcome
}

/// Waits for the cluster to be Ready and every instance to hold every acknowledged write (or
/// for the wait to run out), and reports; asserts nothing, for the benchmark.
pub async fn measure(
    ns: &TestNamespace,
    cluster: &str,
    instances: u8,
    record: &ChaosRecord,
) -> Outcome {
    wait_ready(ns, cluster).await;
    let mut lost = 0;
    for ordinal in 0..instances {
        let pod = format!("{cluster}-{ordinal}");
        let deadline = Instant::now() + Duration::from_secs(240);
        let missing = loop {
            let missing = missing_on(ns, cluster, &pod, record).await;
            match missing {
                Ok(m) if m.is_empty() => break 0,
                Ok(m) if Instant::now() > deadline => break m.len(),
                Err(e) if Instant::now() > deadline => panic!("cannot read {pod}: {e}"),
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        lost += missing;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let converged = loop {
        let mut sets = Vec::new();
        for ordinal in 0..instances {
            let pod = format!("{cluster}-{ordinal}");
            let set = ns
                .sql(
                    cluster,
                    &pod,
                    "SELECT REPLACE(@@global.gtid_executed, '\\n', '')",
                )
                .await
                .unwrap_or_default();
            sets.push(set.trim().to_string());
        }
        if !sets[0].is_empty() && sets.windows(2).all(|w| w[0] == w[1]) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let outcome = Outcome {
        acknowledged: record.acknowledged.len(),
        longest_write_gap: record.longest_write_gap(),
        longest_write_gap_since: utc(record.longest_write_gap_at().1),
        most_writable_at_once: record.most_writable_at_once(),
        lost,
        converged,
        primary: current_primary(ns, cluster).await,
    };
    println!("chaos outcome in {}: {outcome:?}", ns.name);
    outcome
}

/// The pod's IP.
pub async fn pod_ip(ns: &TestNamespace, pod: &str) -> String {
    let pods: Api<Pod> = ns.api();
    pods.get(pod)
        .await
        .ok()
        .and_then(|p| p.status?.pod_ip)
        .unwrap_or_else(|| panic!("{pod} has no IP"))
}

/// A network partition of one pod from everything else, made with iptables on the testbed's
/// node (pod traffic crosses the node's bridge, which iptables sees). Healed on drop.
pub struct Partition {
    ip: String,
    healed: bool,
}

impl Partition {
    /// Cuts the pod with this IP off; only on the testbed (the suite runs on its node as root).
    pub fn cut(ip: &str) -> Partition {
        for args in Self::rules(ip, "-I") {
            run_iptables(&args);
        }
        Partition {
            ip: ip.to_string(),
            healed: false,
        }
    }

    /// Removes the rules.
    pub fn heal(mut self) {
        self.remove();
    }

    fn remove(&mut self) {
        if !self.healed {
            for args in Self::rules(&self.ip, "-D") {
                run_iptables(&args);
            }
            self.healed = true;
        }
    }

    fn rules(ip: &str, op: &str) -> Vec<Vec<String>> {
        ["-s", "-d"]
            .iter()
            .flat_map(|dir| {
                ["FORWARD", "INPUT", "OUTPUT"].map(|chain| {
                    [
                        op,
                        chain,
                        dir,
                        ip,
                        "-j",
                        "DROP",
                        "-m",
                        "comment",
                        "--comment",
                        "sakila-e2e-partition",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
                })
            })
            .collect()
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.remove();
    }
}

fn run_iptables(args: &[String]) {
    let out = Command::new("iptables")
        .args(args)
        .output()
        .expect("iptables runs");
    assert!(
        out.status.success(),
        "iptables {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A time in ns since the epoch, as UTC text.
fn utc(nanos: u128) -> String {
    i128::try_from(nanos)
        .ok()
        .and_then(|n| k8s_openapi::jiff::Timestamp::from_nanosecond(n).ok())
        .map_or_else(|| format!("{nanos} ns"), |t| t.to_string())
}
