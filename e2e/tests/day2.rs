//! Day-2 changes under the chaos writer: an image upgrade rolled out by the operator (replicas
//! first, one switchover, then the old primary), a bad image that stops the rollout at the first
//! replica until the spec is fixed, and scaling 1 -> 3 -> 5 -> 3 -> 1.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use sakila::api::MySQLCluster;
use sakila_e2e::chaos::{self, ChaosRecord};
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

async fn finish(ns: &TestNamespace, started: Instant, writer_seconds: u64, instances: u8) {
    let left = Duration::from_secs(writer_seconds).saturating_sub(started.elapsed());
    let record: ChaosRecord = chaos::collect(ns, "client", left.as_secs()).await;
    assert!(record.acknowledged.len() > 50, "the writer made progress");
    let outcome = chaos::verify(ns, "trio", instances, &record).await;
    assert_eq!(outcome.lost, 0);
}

#[tokio::test]
async fn an_image_upgrade_rolls_replicas_first_then_switches_over_once() {
    let Ok(new_image) = std::env::var("SAKILA_MYSQL_UPGRADE_IMAGE") else {
        println!("SKIPPED: SAKILA_MYSQL_UPGRADE_IMAGE names no second build of the MySQL image");
        return;
    };
    let ns = TestNamespace::new("upgrade").await;
    ns.create::<MySQLCluster>(cluster_manifest("trio", 3)).await;
    wait_ready(&ns, "trio").await;
    ns.client_pod("client", &mysql_client_image()).await;
    let writer_seconds = 240;
    chaos::start(&ns, "client", "trio", 3, writer_seconds).await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;

    let upgrade_started = Instant::now();
    sakila_e2e::patch_spec(&ns, "trio", json!({"image": new_image})).await;
    wait_rolled_out(&ns, "trio", 3, &new_image).await;
    println!(
        "upgrade: 3 instances rolled out to {new_image} and Ready in {:.1} s",
        upgrade_started.elapsed().as_secs_f64()
    );
    finish(&ns, started, writer_seconds, 3).await;
    assert_eq!(sakila_e2e::event_count(&ns, "SwitchedOver").await, 1);
    assert_eq!(sakila_e2e::event_count(&ns, "FailedOver").await, 0);
    assert_eq!(sakila_e2e::event_count(&ns, "RollingRestart").await, 3);
}

#[tokio::test]
async fn a_bad_image_stops_the_rollout_at_the_first_replica_until_the_spec_is_fixed() {
    let ns = TestNamespace::new("bad-image").await;
    ns.create::<MySQLCluster>(cluster_manifest("trio", 3)).await;
    wait_ready(&ns, "trio").await;
    let good_image = pod_images(&ns, "trio").await[0].1.clone();
    ns.client_pod("client", &mysql_client_image()).await;
    let writer_seconds = 150;
    chaos::start(&ns, "client", "trio", 3, writer_seconds).await;
    let started = Instant::now();

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
                .find(|c| c.type_ == "Progressing")?;
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
    finish(&ns, started, writer_seconds, 3).await;
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
