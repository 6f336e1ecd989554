//! The testbed survives restarts of its kubelet and its API server: running pods keep running,
//! and new work is scheduled afterwards. Runs only on the testbed (`SAKILA_TESTBED` set by
//! `e2e/prepare`), since it restarts the cluster's own processes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use sakila_e2e::{TestNamespace, helper_image, testbed, wait_until};

#[tokio::test]
async fn pods_keep_running_and_new_pods_start_after_kubelet_and_apiserver_restarts() {
    if std::env::var_os("SAKILA_TESTBED").is_none() {
        println!("SKIPPED: not on the testbed (SAKILA_TESTBED unset)");
        return;
    }
    let ns = TestNamespace::new("restart").await;
    ns.client_pod("before", &helper_image()).await;
    let pods: Api<Pod> = ns.api();
    let before = pods.get("before").await.unwrap();

    testbed(&["restart", "kubelet"]);
    testbed(&["restart", "kube-apiserver"]);

    // The API answers again, the old pod is the same pod and still running, and a new pod starts.
    let after = wait_until(
        "the API server to answer after its restart",
        Duration::from_secs(120),
        || async { pods.get("before").await.ok() },
    )
    .await;
    assert_eq!(after.metadata.uid, before.metadata.uid);
    let status = after.status.expect("the pod has a status");
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let restarts: i32 = status
        .container_statuses
        .unwrap_or_default()
        .iter()
        .map(|c| c.restart_count)
        .sum();
    assert_eq!(restarts, 0, "the container was not restarted");
    ns.client_pod("after", &helper_image()).await;
    let out = ns.exec("before", "client", &["echo", "still here"]).await;
    assert_eq!(out.trim(), "still here");
}
