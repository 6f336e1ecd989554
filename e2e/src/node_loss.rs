//! Node failures on the testbed's worker nodes (`e2e/testbed workers`, `e2e/testbed node`):
//! a 3-instance cluster on three workers, under the chaos writer run from the control-plane
//! node, loses the node of its primary or of a replica. Shared by the suite's test
//! (`tests/node_loss.rs`) and the benchmark (`tests/bench_node_loss.rs`).

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use sakila::api::MySQLCluster;
use serde_json::json;

use crate::chaos::{self, ChaosRecord};
use crate::{TestNamespace, cluster_manifest, mysql_client_image, wait_ready, wait_until};

/// The testbed's control-plane node: it runs the operator and the client, and is never stopped.
pub const CONTROL_PLANE_NODE: &str = "sakila-node";
/// The label `e2e/testbed` gives its worker nodes.
pub const WORKER_LABEL: &str = "testbed.sakila.dev/worker";
/// The cluster every scenario runs on.
pub const CLUSTER: &str = "trio";

/// Runs `e2e/testbed ARGS` and panics with its output if it fails.
pub fn testbed(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/testbed");
    let out = Command::new(script)
        .args(args)
        .output()
        .expect("e2e/testbed runs");
    assert!(
        out.status.success(),
        "e2e/testbed {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Three worker nodes for as long as it lives; removed when it is dropped, so that the tests
/// after it run on the one node the rest of the suite expects.
pub struct Workers;

impl Workers {
    pub fn three() -> Workers {
        testbed(&["workers", "3"]);
        Workers
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/testbed");
        let _ = Command::new(script).args(["workers", "0"]).output();
    }
}

/// A 3-instance cluster that runs on the workers only (the control-plane node keeps what must
/// survive: the operator, the client), replacing instances of a node lost for `lost_node_seconds`.
pub fn manifest(lost_node_seconds: u32) -> serde_json::Value {
    let mut manifest = cluster_manifest(CLUSTER, 3);
    manifest["spec"]["failover"] = json!({"lostNodeSeconds": lost_node_seconds});
    manifest["spec"]["podTemplate"] = json!({"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": WORKER_LABEL, "operator": "In", "values": ["true"]}]}
        ]}
    }}});
    manifest
}

/// Creates the cluster in `ns`, waits for it, and starts the client pod on the control plane.
pub async fn create(ns: &TestNamespace, lost_node_seconds: u32) {
    ns.create::<MySQLCluster>(manifest(lost_node_seconds)).await;
    wait_ready(ns, CLUSTER).await;
    ns.client_pod_on("client", &mysql_client_image(), Some(CONTROL_PLANE_NODE))
        .await;
}

/// Which instance's node fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whose {
    Primary,
    Replica,
}

/// What one scenario saw.
#[derive(Debug)]
pub struct NodeLoss {
    pub node: String,
    pub pod: String,
    pub old_primary: String,
    pub record: ChaosRecord,
    pub outcome: chaos::Outcome,
    /// From the power cut until the lost instance ran Ready on another node.
    pub replaced_after: Duration,
    /// From the power cut until the cluster was Ready with all its instances.
    pub ready_after: Duration,
    pub new_node: String,
}

/// How long the writer runs, and when the node fails in it.
pub const WRITER_SECONDS: u64 = 30;
pub const FAILURE_AFTER: Duration = Duration::from_secs(8);

/// The node of `whose` instance loses power under the writer; the scenario waits for the
/// instance to be replaced on another node and the cluster to be whole, measures, and powers
/// the node back on.
pub async fn power_off(ns: &TestNamespace, whose: Whose) -> NodeLoss {
    let old_primary = chaos::current_primary(ns, CLUSTER)
        .await
        .expect("the cluster has a primary");
    let pod = match whose {
        Whose::Primary => old_primary.clone(),
        Whose::Replica => (0..3)
            .map(|o| format!("{CLUSTER}-{o}"))
            .find(|p| *p != old_primary)
            .expect("a replica"),
    };
    let node = node_of(ns, &pod).await;
    chaos::start(ns, "client", CLUSTER, 3, WRITER_SECONDS).await;
    let started = Instant::now();
    tokio::time::sleep(FAILURE_AFTER).await;
    let cut = Instant::now();
    testbed(&["node", "stop", &node]);
    let left = Duration::from_secs(WRITER_SECONDS).saturating_sub(started.elapsed());
    let record = chaos::collect(ns, "client", left.as_secs()).await;
    let pods: Api<Pod> = ns.api();
    let new_node = wait_until(
        &format!("{pod} Ready on a node other than {node}"),
        Duration::from_secs(600),
        || async {
            let p = pods.get(&pod).await.ok()?;
            let on = p.spec.as_ref()?.node_name.clone()?;
            let ready = p
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            (on != node && ready).then_some(on)
        },
    )
    .await;
    let replaced_after = cut.elapsed();
    let outcome = chaos::measure(ns, CLUSTER, 3, &record).await;
    let ready_after = cut.elapsed();
    testbed(&["node", "start", &node]);
    NodeLoss {
        node,
        pod,
        old_primary,
        record,
        outcome,
        replaced_after,
        ready_after,
        new_node,
    }
}

/// The node the pod runs on.
pub async fn node_of(ns: &TestNamespace, pod: &str) -> String {
    let pods: Api<Pod> = ns.api();
    pods.get(pod)
        .await
        .ok()
        .and_then(|p| p.spec?.node_name)
        .unwrap_or_else(|| panic!("{pod} is not scheduled"))
}
