//! Monitoring end to end against a real Prometheus (deployed by e2e/prepare with the chart's
//! alert rules, scraping the operator and the exporters): what a person would see in it when a
//! replica falls behind and when a primary is lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use sakila::api::MySQLCluster;
use sakila_e2e::{TestNamespace, client, cluster_manifest, wait_ready, wait_until};
use serde_json::Value;

/// Percent-encodes a query parameter (RFC 3986 unreserved characters stay).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The instant vector of a PromQL query, through the API server's service proxy; `None` when
/// Prometheus did not answer.
async fn query(promql: &str) -> Option<Vec<Value>> {
    let prometheus = std::env::var("SAKILA_PROMETHEUS")
        .expect("SAKILA_PROMETHEUS names the Prometheus service (run through `make e2e`)");
    let (namespace, service) = prometheus.split_once('/').expect("namespace/service:port");
    let request = http::Request::get(format!(
        "/api/v1/namespaces/{namespace}/services/{service}/proxy/api/v1/query?query={}",
        encode(promql)
    ))
    .body(Vec::new())
    .unwrap();
    let text = client().await.request_text(request).await.ok()?;
    let answer: Value = serde_json::from_str(&text).ok()?;
    assert_eq!(answer["status"], "success", "{promql}: {answer}");
    answer["data"]["result"].as_array().cloned()
}

/// Waits until `promql` returns at least one series, and returns them.
async fn until_some(what: &str, timeout: Duration, promql: &str) -> Vec<Value> {
    wait_until(what, timeout, || async {
        query(promql).await.filter(|r| !r.is_empty())
    })
    .await
}

#[tokio::test]
async fn lag_raises_and_clears_its_alert_and_a_failover_is_counted_and_announced() {
    let ns = Arc::new(TestNamespace::new("prom").await);
    let mut manifest = cluster_manifest("metered", 3);
    manifest["spec"]["monitoring"] = serde_json::json!({"enabled": true});
    manifest["spec"]["replication"] = serde_json::json!({"maxLagSeconds": 5});
    ns.create::<MySQLCluster>(manifest).await;
    wait_ready(&ns, "metered").await;
    let n = &ns.name;

    // Prometheus finds the three exporters and reads the operator's view.
    until_some(
        "Prometheus scrapes three exporters",
        Duration::from_secs(120),
        &format!(r#"count(mysql_up{{namespace="{n}",cluster="metered"}} == 1) == 3"#),
    )
    .await;
    let primary = until_some(
        "the operator's view of the primary in Prometheus",
        Duration::from_secs(60),
        &format!(
            r#"sakila_instance_role{{namespace="{n}",cluster="metered",role="primary"}} == 1"#
        ),
    )
    .await;
    assert_eq!(primary[0]["metric"]["instance"], "metered-0", "{primary:?}");

    // Lag: a read lock on metered-2 holds its applier back while the primary writes. (Stopping
    // the SQL thread would not do: the operator starts it again within a probe interval.)
    ns.sql(
        "metered",
        "metered-0",
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)",
    )
    .await
    .expect("create a table on the primary");
    wait_until("app.t on metered-2", Duration::from_secs(60), || async {
        ns.sql("metered", "metered-2", "SELECT COUNT(*) FROM app.t")
            .await
            .ok()
    })
    .await;
    let lock = {
        let ns = ns.clone();
        tokio::spawn(async move {
            // Ends when the session is killed below.
            let _ = ns
                .sql(
                    "metered",
                    "metered-2",
                    "LOCK TABLES app.t READ; SELECT SLEEP(600)",
                )
                .await;
        })
    };
    wait_until("the lock is held", Duration::from_secs(30), || async {
        let out = ns
            .sql(
                "metered",
                "metered-2",
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP%'",
            )
            .await
            .ok()?;
        (out.trim() == "1").then_some(())
    })
    .await;
    ns.sql("metered", "metered-0", "INSERT INTO app.t VALUES (1)")
        .await
        .expect("a write on the primary");
    until_some(
        "the exporter reports metered-2 more than 5 s behind",
        Duration::from_secs(60),
        &format!(
            r#"mysql_replica_seconds_behind_source{{namespace="{n}",instance="metered-2"}} > 5"#
        ),
    )
    .await;
    let lagging = Instant::now();
    let firing = format!(
        r#"ALERTS{{alertname="SakilaReplicationLagHigh",alertstate="firing",namespace="{n}",instance="metered-2"}}"#
    );
    until_some(
        "SakilaReplicationLagHigh firing for metered-2",
        Duration::from_secs(300),
        &firing,
    )
    .await;
    eprintln!(
        "SakilaReplicationLagHigh fired {:.0} s after the exporter first showed the lag",
        lagging.elapsed().as_secs_f64()
    );
    let sleeper = ns
        .sql(
            "metered",
            "metered-2",
            "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP%'",
        )
        .await
        .expect("find the locking session");
    ns.sql("metered", "metered-2", &format!("KILL {}", sleeper.trim()))
        .await
        .expect("end the locking session");
    lock.await.unwrap();
    wait_until(
        "SakilaReplicationLagHigh resolved",
        Duration::from_secs(120),
        || async { query(&firing).await.filter(Vec::is_empty) },
    )
    .await;

    // A failover: the counter and the alert.
    let pods: Api<Pod> = ns.api();
    pods.delete("metered-0", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let counted = until_some(
        "sakila_failovers_total counts the failover",
        Duration::from_secs(120),
        &format!(r#"sakila_failovers_total{{namespace="{n}",cluster="metered"}} == 1"#),
    )
    .await;
    assert_eq!(counted.len(), 1, "one leader counts it: {counted:?}");
    until_some(
        "SakilaFailoverHappened firing",
        Duration::from_secs(60),
        &format!(
            r#"ALERTS{{alertname="SakilaFailoverHappened",alertstate="firing",namespace="{n}",cluster="metered"}}"#
        ),
    )
    .await;

    // Every query of the dashboard runs and returns series for this cluster (some need the new
    // primary's first scrapes after the failover).
    let dashboard: Value = serde_json::from_str(include_str!(
        "../../charts/sakila/files/grafana-dashboard.json"
    ))
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$namespace", n)
                .replace("$cluster", "metered");
            let what = format!("panel {:?} query {expr}", panel["title"]);
            until_some(&what, Duration::from_secs(90), &expr).await;
        }
    }
}
