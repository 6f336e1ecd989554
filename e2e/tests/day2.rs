//! Day-2 changes under the chaos writer: an image upgrade rolled out by the operator (replicas
//! first, one switchover, then the old primary), a bad image that stops the rollout at the first
//! replica until the spec is fixed, scaling 1 -> 3 -> 5 -> 3 -> 1, and a `mysqlConfig` value
//! mysqld refuses that never reaches a restarting mysqld.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use sakila::api::MySQLCluster;
use sakila::api::conditions::ConditionType;
use sakila_e2e::chaos::{self, UnderWrites};
use sakila_e2e::{TestNamespace, cluster_manifest, mysql_client_image, wait_ready, wait_until};
use serde_json::json;

/// The mysqld image each pod runs, by pod name.
async fn pod_images(ns: &TestNamespace, cluster: &str) -> Vec<(String, String)> {
    let pods: Api<Pod> = ns.api();
    let mut images: Vec<(String, String)> = pods
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={cluster}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| {
            let name = p.metadata.name?;
            let image = p
                .spec?
                .containers
                .into_iter()
                .find(|c| c.name == "mysqld")?
                .image?;
            Some((name, image))
        })
        .collect();
    images.sort();
    images
}

/// Waits until every pod of the cluster runs `image` and the cluster is Ready.
async fn wait_rolled_out(ns: &TestNamespace, cluster: &str, instances: usize, image: &str) {
    wait_until(
        &format!("every pod of {cluster} on {image}"),
        Duration::from_secs(900),
        || async {
            let images = pod_images(ns, cluster).await;
            (images.len() == instances && images.iter().all(|(_, i)| i == image)).then_some(())
        },
    )
    .await;
    wait_ready(ns, cluster).await;
}

#[tokio::test]
async fn an_image_upgrade_rolls_replicas_first_then_switches_over_once() {
    let Ok(new_image) = std::env::var("SAKILA_MYSQL_UPGRADE_IMAGE") else {
        println!("SKIPPED: SAKILA_MYSQL_UPGRADE_IMAGE names no second build of the MySQL image");
        return;
    };
    let writer_seconds = 240;
    let manifest = cluster_manifest("trio", 3);
    let UnderWrites { ns, started } =
        chaos::cluster_under_writes("upgrade", manifest, writer_seconds).await;

    let upgrade_started = Instant::now();
    sakila_e2e::patch_spec(&ns, "trio", json!({"image": new_image})).await;
    wait_rolled_out(&ns, "trio", 3, &new_image).await;
    println!(
        "upgrade: 3 instances rolled out to {new_image} and Ready in {:.1} s",
        upgrade_started.elapsed().as_secs_f64()
    );
    chaos::finish_writing(&ns, started, writer_seconds, "trio", 3).await;
    assert_eq!(sakila_e2e::event_count(&ns, "SwitchedOver").await, 1);
    assert_eq!(sakila_e2e::event_count(&ns, "FailedOver").await, 0);
    assert_eq!(sakila_e2e::event_count(&ns, "RollingRestart").await, 3);
}

#[tokio::test]
async fn a_bad_image_stops_the_rollout_at_the_first_replica_until_the_spec_is_fixed() {
    let writer_seconds = 150;
    let manifest = cluster_manifest("trio", 3);
    let UnderWrites { ns, started } =
        chaos::cluster_under_writes("bad-image", manifest, writer_seconds).await;
    let good_image = pod_images(&ns, "trio").await[0].1.clone();

    let bad_image = "localhost/sakila/mysql:no-such-build";
    sakila_e2e::patch_spec(&ns, "trio", json!({"image": bad_image})).await;
    let clusters: Api<MySQLCluster> = ns.api();
    let message = wait_until(
        "the rollout to report it waits for trio-2",
        Duration::from_secs(180),
        || async {
            let status = clusters.get("trio").await.ok()?.status?;
            let progressing = status
                .conditions
                .iter()
                .find(|c| c.type_ == ConditionType::Progressing)?;
            // It names the pod and the container's reason (an image that cannot be pulled).
            (progressing.reason == "RollingOut"
                && progressing
                    .message
                    .contains("waiting for trio-2 to be ready")
                && progressing.message.contains("Image"))
            .then(|| progressing.message.clone())
        },
    )
    .await;
    println!("bad image: {message}");
    // It stays stopped there: the other pods keep the good image, trio-0 stays primary.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let images = pod_images(&ns, "trio").await;
    assert_eq!(images[0], ("trio-0".to_string(), good_image.clone()));
    assert_eq!(images[1], ("trio-1".to_string(), good_image.clone()));
    assert_eq!(images[2], ("trio-2".to_string(), bad_image.to_string()));
    assert_eq!(
        chaos::current_primary(&ns, "trio").await.as_deref(),
        Some("trio-0")
    );

    // The fix resumes: trio-2, which never started, is replaced at once.
    sakila_e2e::patch_spec(&ns, "trio", json!({"image": good_image})).await;
    wait_rolled_out(&ns, "trio", 3, &good_image).await;
    chaos::finish_writing(&ns, started, writer_seconds, "trio", 3).await;
    assert_eq!(sakila_e2e::event_count(&ns, "SwitchedOver").await, 0);
}

#[tokio::test]
async fn scaling_one_three_five_three_one_under_writes() {
    let ns = TestNamespace::new("scale").await;
    // Named trio for the chaos tools; it starts with one instance.
    ns.create::<MySQLCluster>(cluster_manifest("trio", 1)).await;
    wait_ready(&ns, "trio").await;
    ns.client_pod("client", &mysql_client_image()).await;
    let mut writes = Vec::new();
    for (from, to) in [(1u8, 3u8), (3, 5), (5, 3), (3, 1)] {
        // Sampled over the larger of the two sizes, so a leaving instance is still counted.
        let writer_seconds = 300;
        chaos::start(&ns, "client", "trio", from.max(to), writer_seconds).await;
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        sakila_e2e::patch_spec(&ns, "trio", json!({"instances": to})).await;
        wait_until(
            &format!("trio to have {to} pods"),
            Duration::from_secs(600),
            || async {
                let pods = pod_images(&ns, "trio").await;
                (pods.len() == usize::from(to)).then_some(())
            },
        )
        .await;
        wait_ready(&ns, "trio").await;
        println!(
            "scale {from} -> {to}: Ready after {:.1} s",
            started.elapsed().as_secs_f64() - 5.0
        );
        chaos::stop(&ns, "client").await;
        let record = chaos::collect(&ns, "client", 0).await;
        let outcome = chaos::verify(&ns, "trio", to, &record).await;
        assert_eq!(outcome.lost, 0, "scale {from} -> {to}");
        writes.push(record.acknowledged.len());
    }
    assert!(writes.iter().all(|w| *w > 10), "writes went on: {writes:?}");
}

/// The uid of each pod of the cluster, by name: a restarted pod gets a new one.
async fn pod_uids(ns: &TestNamespace, cluster: &str) -> Vec<(String, String)> {
    let pods: Api<Pod> = ns.api();
    let mut uids: Vec<(String, String)> = pods
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={cluster}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| Some((p.metadata.name?, p.metadata.uid?)))
        .collect();
    uids.sort();
    uids
}

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
                .find(|c| c.type_ == ConditionType::ConfigApplied)?;
            (condition.reason == reason).then(|| condition.message.clone())
        },
    )
    .await
}

#[tokio::test]
async fn a_config_change_is_applied_online_or_by_one_rolling_restart() {
    let writer_seconds = 600;
    let manifest = cluster_manifest("trio", 3);
    let ns = chaos::cluster_under_writes("config", manifest, writer_seconds)
        .await
        .ns;

    // A setting MySQL takes at run time: applied on every instance, nothing restarts.
    let before = pod_uids(&ns, "trio").await;
    let online_started = Instant::now();
    sakila_e2e::patch_spec(
        &ns,
        "trio",
        json!({"mysqlConfig": {"max_connections": "321"}}),
    )
    .await;
    let message = wait_config_applied(&ns, "AppliedOnline", Duration::from_secs(120)).await;
    println!(
        "online config change: {message} ({:.1} s)",
        online_started.elapsed().as_secs_f64()
    );
    assert!(message.starts_with("max_connections:"), "{message}");
    assert_eq!(global_on_each(&ns, "max_connections").await, ["321"; 3]);
    assert_eq!(pod_uids(&ns, "trio").await, before, "no pod was restarted");
    assert_eq!(sakila_e2e::event_count(&ns, "SwitchedOver").await, 0);
    assert_eq!(sakila_e2e::event_count(&ns, "RollingRestart").await, 0);
    assert_eq!(sakila_e2e::event_count(&ns, "AppliedOnline").await, 1);

    // A setting read only at start: one rolling restart, replicas first, one switchover.
    let restart_started = Instant::now();
    sakila_e2e::patch_spec(&ns, "trio", json!({"mysqlConfig": {"back_log": "123"}})).await;
    wait_config_applied(&ns, "RollingRestart", Duration::from_secs(60)).await;
    let message = wait_config_applied(&ns, "AppliedByRestart", Duration::from_secs(900)).await;
    wait_ready(&ns, "trio").await;
    println!(
        "restart config change: {message} ({:.1} s)",
        restart_started.elapsed().as_secs_f64()
    );
    assert!(message.starts_with("back_log:"), "{message}");
    assert_eq!(global_on_each(&ns, "back_log").await, ["123"; 3]);
    assert_eq!(
        global_on_each(&ns, "max_connections").await,
        ["321"; 3],
        "the online setting survives the restart (it is in my.cnf too)"
    );
    let after = pod_uids(&ns, "trio").await;
    assert!(
        before
            .iter()
            .zip(&after)
            .all(|(b, a)| b.0 == a.0 && b.1 != a.1),
        "every pod was replaced once: {before:?} -> {after:?}"
    );
    let outcome = chaos::stop_and_verify(&ns, "client", "trio", 3, 50).await;
    println!("writer during both changes: {outcome:?}");
    assert_eq!(sakila_e2e::event_count(&ns, "SwitchedOver").await, 1);
    assert_eq!(sakila_e2e::event_count(&ns, "FailedOver").await, 0);
    assert_eq!(sakila_e2e::event_count(&ns, "RollingRestart").await, 3);
}

#[tokio::test]
async fn a_downgrade_is_refused_at_admission_with_the_reason() {
    let ns = TestNamespace::new("downgrade").await;
    ns.create::<MySQLCluster>(cluster_manifest("solo", 1)).await;
    let clusters: Api<MySQLCluster> = ns.api();
    let version = sakila_e2e::mysql_version();
    for lower in ["9.6.0", "8.4.3", "9.7.0"] {
        if lower == version {
            continue;
        }
        let err = clusters
            .patch(
                "solo",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"spec": {"version": lower}})),
            )
            .await
            .expect_err(&format!("{version} -> {lower} was accepted"));
        let text = err.to_string();
        assert!(
            text.contains("spec.version") && text.contains("cannot be lowered"),
            "{version} -> {lower}: {text}"
        );
    }
    let spec_version = clusters.get("solo").await.unwrap().spec.version;
    assert_eq!(spec_version, version, "the spec was left as it was");
    // Same or higher is accepted (an upgrade is allowed through admission).
    sakila_e2e::patch_spec(&ns, "solo", json!({"version": version})).await;
}

/// Every file of every ConfigMap of the trio (my.cnf and what it includes, whatever the
/// ConfigMaps are named), joined.
async fn every_my_cnf(ns: &TestNamespace) -> String {
    let maps: Api<ConfigMap> = ns.api();
    maps.list(&ListParams::default().labels("app.kubernetes.io/instance=trio"))
        .await
        .unwrap()
        .items
        .into_iter()
        .flat_map(|m| m.data.unwrap_or_default().into_values())
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
                .any(|c| c.type_ == ConditionType::Ready && c.status == "True");
            (p.metadata.uid != old_uid && ready).then_some(())
        },
    )
    .await;
    wait_ready(ns, "trio").await;
}

#[tokio::test]
async fn a_refused_online_value_never_reaches_a_restarting_mysqld() {
    let manifest = cluster_manifest("trio", 3);
    let ns = chaos::cluster_under_writes("refused", manifest, 1200)
        .await
        .ns;

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

/// The restart count of a pod's mysqld container.
async fn mysqld_restarts(ns: &TestNamespace, pod: &str) -> i32 {
    let pods: Api<Pod> = ns.api();
    pods.get(pod)
        .await
        .ok()
        .and_then(|p| p.status?.container_statuses)
        .and_then(|s| s.into_iter().find(|c| c.name == "mysqld"))
        .map_or(0, |c| c.restart_count)
}

#[tokio::test]
async fn a_restart_only_value_mysqld_refuses_stops_the_rollout_and_restarts_keep_the_old_config() {
    let manifest = cluster_manifest("trio", 3);
    let ns = chaos::cluster_under_writes("bad-cnf", manifest, 1200)
        .await
        .ns;

    // Read only at start, and a value mysqld refuses to start with.
    sakila_e2e::patch_spec(&ns, "trio", json!({"mysqlConfig": {"back_log": "lots"}})).await;
    let message = wait_until(
        "the rollout to stop at trio-2",
        Duration::from_secs(240),
        || async {
            let progressing =
                sakila_e2e::cluster_condition(&ns, "trio", ConditionType::Progressing).await?;
            (progressing.reason == "RollingOut"
                && progressing
                    .message
                    .contains("waiting for trio-2 to be ready")
                && mysqld_restarts(&ns, "trio-2").await >= 2)
                .then(|| progressing.message.clone())
        },
    )
    .await;
    println!("bad restart-only value: {message}");

    // Meanwhile the primary's mysqld crashes: it restarts with the configuration its pod was
    // made with, not the refused value, and serves again.
    let primary = chaos::current_primary(&ns, "trio").await.unwrap();
    let before = mysqld_restarts(&ns, &primary).await;
    chaos::crash_mysqld(&ns, &primary).await;
    wait_until(
        &format!("{primary}'s mysqld restarted and writable"),
        Duration::from_secs(180),
        || async {
            if mysqld_restarts(&ns, &primary).await <= before {
                return None;
            }
            let writable = ns
                .sql("trio", &primary, "SELECT @@GLOBAL.read_only")
                .await
                .ok()?;
            (writable.trim() == "0").then_some(())
        },
    )
    .await;
    let back_log = ns
        .sql("trio", &primary, "SELECT @@GLOBAL.back_log")
        .await
        .unwrap();
    println!("{primary} restarted with back_log {}", back_log.trim());
    assert_eq!(
        chaos::current_primary(&ns, "trio").await.as_deref(),
        Some(primary.as_str()),
        "restarted in place (no failover with trio-2 down)"
    );

    // The fix resumes the rollout: trio-2, which never started, is replaced at once.
    sakila_e2e::patch_spec(&ns, "trio", json!({"mysqlConfig": {"back_log": "123"}})).await;
    wait_config_applied(&ns, "AppliedByRestart", Duration::from_secs(900)).await;
    wait_ready(&ns, "trio").await;
    assert_eq!(global_on_each(&ns, "back_log").await, ["123"; 3]);
    let outcome = chaos::stop_and_verify(&ns, "client", "trio", 3, 50).await;
    println!("writer during the refused restart-only value: {outcome:?}");
    // Only the configurations in use are left: the current one and the online one.
    let maps: Api<ConfigMap> = ns.api();
    wait_until(
        "unused configurations deleted",
        Duration::from_secs(60),
        || async {
            let mut names: Vec<String> = maps
                .list(&ListParams::default().labels("app.kubernetes.io/instance=trio"))
                .await
                .ok()?
                .items
                .into_iter()
                .filter_map(|m| m.metadata.name)
                .collect();
            names.sort();
            (names.len() == 2).then_some(names)
        },
    )
    .await;
}
