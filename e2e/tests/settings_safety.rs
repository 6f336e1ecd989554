//! A value mysqld refuses never reaches a restarting mysqld (issue 11, bug 4): under the chaos
//! writer, an online setting set to a value `SET GLOBAL` refuses is reported, my.cnf keeps the
//! last value mysqld took, a replica and then the primary deleted meanwhile come back and serve
//! with that value, and fixing the spec recovers. Zero acknowledged writes lost.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use sakila::api::MySQLCluster;
use sakila_e2e::chaos;
use sakila_e2e::{TestNamespace, cluster_manifest, mysql_client_image, wait_ready, wait_until};
use serde_json::json;

/// `SELECT @@GLOBAL.<variable>` on every pod of the trio, in ordinal order.
async fn global_on_each(ns: &TestNamespace, variable: &str) -> Vec<String> {
    let mut values = Vec::new();
    for pod in ["trio-0", "trio-1", "trio-2"] {
        let value = ns
            .sql("trio", pod, &format!("SELECT @@GLOBAL.{variable}"))
            .await
            .unwrap_or_else(|e| format!("error: {e}"));
        values.push(value.trim().to_string());
    }
    values
}

/// Waits until the ConfigApplied condition has this reason; returns its message.
async fn wait_config_applied(ns: &TestNamespace, reason: &str, timeout: Duration) -> String {
    let clusters: Api<MySQLCluster> = ns.api();
    wait_until(
        &format!("ConfigApplied reason {reason}"),
        timeout,
        || async {
            let status = clusters.get("trio").await.ok()?.status?;
            let condition = status
                .conditions
                .iter()
                .find(|c| c.type_ == "ConfigApplied")?;
            (condition.reason == reason).then(|| condition.message.clone())
        },
    )
    .await
}

/// The my.cnf of every ConfigMap of the trio (whatever they are named), joined.
async fn every_my_cnf(ns: &TestNamespace) -> String {
    let maps: Api<ConfigMap> = ns.api();
    maps.list(&ListParams::default().labels("app.kubernetes.io/instance=trio"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|m| m.data?.get("my.cnf").cloned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Deletes a pod gracefully (as a drain does) and waits until its replacement runs and the
/// cluster is Ready again.
async fn delete_and_wait(ns: &TestNamespace, pod: &str) {
    let pods: Api<Pod> = ns.api();
    let old_uid = pods.get(pod).await.unwrap().metadata.uid;
    pods.delete(pod, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("failed to delete {pod}: {e}"));
    wait_until(
        &format!("a new {pod} ready"),
        Duration::from_secs(300),
        || async {
            let p = pods.get(pod).await.ok()?;
            let ready = p
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            (p.metadata.uid != old_uid && ready).then_some(())
        },
    )
    .await;
    wait_ready(ns, "trio").await;
}

#[tokio::test]
async fn a_refused_online_value_never_reaches_a_restarting_mysqld() {
    let ns = TestNamespace::new("refused").await;
    ns.create::<MySQLCluster>(cluster_manifest("trio", 3)).await;
    wait_ready(&ns, "trio").await;
    ns.client_pod("client", &mysql_client_image()).await;
    chaos::start(&ns, "client", "trio", 3, 1200).await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    // The last good value: taken online.
    sakila_e2e::patch_spec(
        &ns,
        "trio",
        json!({"mysqlConfig": {"max_connections": "321"}}),
    )
    .await;
    wait_config_applied(&ns, "AppliedOnline", Duration::from_secs(120)).await;
    assert_eq!(global_on_each(&ns, "max_connections").await, ["321"; 3]);

    // A value SET GLOBAL refuses (and mysqld would refuse at start too).
    let started = Instant::now();
    sakila_e2e::patch_spec(
        &ns,
        "trio",
        json!({"mysqlConfig": {"max_connections": "lots"}}),
    )
    .await;
    let message = wait_config_applied(&ns, "SettingRefused", Duration::from_secs(120)).await;
    println!(
        "refused after {:.1} s: {message}",
        started.elapsed().as_secs_f64()
    );
    assert!(message.contains("max_connections"), "{message}");
    let cnf = every_my_cnf(&ns).await;
    assert!(
        cnf.contains("max_connections = 321") && !cnf.contains("lots"),
        "my.cnf keeps the last value mysqld took:\n{cnf}"
    );
    assert_eq!(global_on_each(&ns, "max_connections").await, ["321"; 3]);

    // Restarts while the bad value is in the spec: a replica, then the primary (a switchover).
    let primary = chaos::current_primary(&ns, "trio").await.unwrap();
    let replica = ["trio-2", "trio-1", "trio-0"]
        .into_iter()
        .find(|p| *p != primary)
        .unwrap();
    for pod in [replica, primary.as_str()] {
        let restarted = Instant::now();
        delete_and_wait(&ns, pod).await;
        println!(
            "{pod} deleted and back in {:.1} s",
            restarted.elapsed().as_secs_f64()
        );
        let value = ns
            .sql("trio", pod, "SELECT @@GLOBAL.max_connections")
            .await
            .unwrap();
        assert_eq!(value.trim(), "321", "{pod} starts with the last good value");
        wait_config_applied(&ns, "SettingRefused", Duration::from_secs(60)).await;
    }

    // Fixing the spec recovers.
    sakila_e2e::patch_spec(
        &ns,
        "trio",
        json!({"mysqlConfig": {"max_connections": "400"}}),
    )
    .await;
    wait_config_applied(&ns, "AppliedOnline", Duration::from_secs(120)).await;
    assert_eq!(global_on_each(&ns, "max_connections").await, ["400"; 3]);
    wait_until(
        "my.cnf holds the fixed value",
        Duration::from_secs(60),
        || async {
            let cnf = every_my_cnf(&ns).await;
            cnf.contains("max_connections = 400").then_some(())
        },
    )
    .await;

    let outcome = chaos::stop_and_verify(&ns, "client", "trio", 3, 50).await;
    println!("writer during the refused setting and the restarts: {outcome:?}");
    assert_eq!(sakila_e2e::event_count(&ns, "FailedOver").await, 0);
}
