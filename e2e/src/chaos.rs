//! The chaos tools: a writer that records every acknowledged commit and a sampler that counts
//! writable instances, both running inside a client pod so they see the cluster as a client does.

use std::time::Duration;

use crate::TestNamespace;

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
        let gap = self
            .acknowledged
            .windows(2)
            .map(|w| w[1].1.saturating_sub(w[0].1))
            .max()
            .unwrap_or(0);
        Duration::from_nanos(gap as u64)
    }

    /// The most instances ever seen writable at once.
    pub fn most_writable_at_once(&self) -> usize {
        self.writable_samples.iter().map(|s| s.1).max().unwrap_or(0)
    }
}

/// Starts, in the client pod, a writer through `<cluster>-primary` and a sampler of every
/// instance's `super_read_only` every 200 ms, both for `seconds`; `collect` reads their records.
pub async fn start(ns: &TestNamespace, client: &str, cluster: &str, instances: u8, seconds: u64) {
    let password = ns.root_password(cluster).await;
    let login = format!("-uroot -p'{password}' --connect-timeout=2");
    ns.sql(cluster, &format!("{cluster}-0"), "CREATE DATABASE IF NOT EXISTS chaos; CREATE TABLE IF NOT EXISTS chaos.log (id BIGINT PRIMARY KEY)")
        .await
        .expect("the chaos table is created on the primary");
    let primary = format!("{cluster}-primary.{}.svc", ns.name);
    let hosts: Vec<String> = (0..instances)
        .map(|o| format!("{cluster}-{o}.{cluster}.{}.svc", ns.name))
        .collect();
    // Every id is tried once; only an acknowledged INSERT is recorded. A failed or timed-out
    // attempt is not retried, so a recorded id is exactly an acknowledged commit.
    let writer = format!(
        "end=$(( $(date +%s) + {seconds} )); i=0; while [ $(date +%s) -lt $end ]; do i=$((i+1)); \
         if mysql -h {primary} {login} -e \"INSERT INTO chaos.log VALUES ($i)\" 2>/dev/null; \
         then echo \"$i $(date +%s%N)\"; fi; done > /tmp/acked 2>&1"
    );
    let sampler = format!(
        "end=$(( $(date +%s) + {seconds} )); while [ $(date +%s) -lt $end ]; do n=0; \
         for h in {hosts}; do v=$(mysql -h $h {login} -N -B -e 'SELECT @@global.super_read_only' 2>/dev/null); \
         [ \"$v\" = 0 ] && n=$((n+1)); done; echo \"$(date +%s%N) $n\"; sleep 0.2; done > /tmp/writable 2>&1",
        hosts = hosts.join(" ")
    );
    for script in [writer, sampler] {
        let detached = format!(
            "nohup sh -c '{}' >/dev/null 2>&1 &",
            script.replace('\'', "'\\''")
        );
        ns.exec(client, "client", &["sh", "-c", &detached]).await;
    }
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
        acknowledged: pairs(&acked)
            .into_iter()
            .map(|(id, t)| (id as u64, t))
            .collect(),
        writable_samples: pairs(&writable)
            .into_iter()
            .map(|(t, n)| (t, n as usize))
            .collect(),
    }
}

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
