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
use crate::{TestNamespace, cluster_manifest, mysql_client_image, testbed, wait_ready, wait_until};

/// The testbed's control-plane node: it runs the operator and the client, and is never stopped.
pub const CONTROL_PLANE_NODE: &str = "sakila-node";
/// The label `e2e/testbed` gives its worker nodes.
pub const WORKER_LABEL: &str = "testbed.sakila.dev/worker";
/// The cluster every scenario runs on.
pub const CLUSTER: &str = "trio";

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
    /// The volumes provisioned on the workers are deleted by a helper pod on their node: wait
    /// for them (the test's namespace is being deleted) before the nodes go, so no provisioner
    /// keeps retrying for nodes that no longer exist; what is still left after that is removed.
    fn drop(&mut self) {
        // The tests' pods go at once: a primary's preStop hook would wait for a switchover that
        // a namespace being deleted never makes.
        for worker in 1..=3 {
            let listed = Command::new("kubectl")
                .args(["get", "pods", "-A", "--field-selector"])
                .arg(format!("spec.nodeName=sakila-worker-{worker}"))
                .args(["-o", "jsonpath={range .items[*]}{.metadata.namespace} {.metadata.name}{\"\\n\"}{end}"])
                .output();
            let Ok(listed) = listed else { continue };
            for line in String::from_utf8_lossy(&listed.stdout).lines() {
                if let Some((namespace, pod)) = line.split_once(' ')
                    && namespace.starts_with("e2e-")
                {
                    let _ = Command::new("kubectl")
                        .args([
                            "-n",
                            namespace,
                            "delete",
                            "pod",
                            pod,
                            "--force",
                            "--grace-period=0",
                        ])
                        .output();
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(180);
        while !volumes_on_workers().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(2));
        }
        let _ = Command::new(crate::TESTBED).args(["workers", "0"]).output();
        for volume in volumes_on_workers() {
            let _ = Command::new("kubectl")
                .args(["patch", "pv", &volume, "--type=merge"])
                .args(["-p", r#"{"metadata":{"finalizers":null}}"#])
                .output();
            let _ = Command::new("kubectl")
                .args(["delete", "pv", &volume, "--wait=false"])
                .output();
        }
    }
}

/// The PersistentVolumes bound to a worker node.
fn volumes_on_workers() -> Vec<String> {
    let template = r#"{range .items[*]}{.metadata.name} {.spec.nodeAffinity.required.nodeSelectorTerms[*].matchExpressions[*].values[*]}{"\n"}{end}"#;
    let out = Command::new("kubectl")
        .args(["get", "pv", "-o", &format!("jsonpath={template}")])
        .output();
    let Ok(out) = out else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("sakila-worker-"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
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

/// Creates the cluster of `manifest` in `ns`, waits for it, and starts the client pod on the
/// control plane.
pub async fn create(ns: &TestNamespace, manifest: serde_json::Value) {
    ns.create::<MySQLCluster>(manifest).await;
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
    /// While it waited, `Progressing` said why (reason `InstanceOnLostNode`): seen in a poll.
    pub lost_node_reported: bool,
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
    let clusters: Api<MySQLCluster> = ns.api();
    let reported = std::sync::atomic::AtomicBool::new(false);
    let new_node = wait_until(
        &format!("{pod} Ready on a node other than {node}"),
        Duration::from_secs(600),
        || async {
            if progressing_reason(&clusters).await.as_deref() == Some("InstanceOnLostNode") {
                reported.store(true, std::sync::atomic::Ordering::Relaxed);
            }
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
        lost_node_reported: reported.into_inner(),
    }
}

/// The reason of the cluster's `Progressing` condition now.
async fn progressing_reason(clusters: &Api<MySQLCluster>) -> Option<String> {
    let cluster = clusters.get(CLUSTER).await.ok()?;
    cluster
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .map(|c| c.reason)
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

/// What a partition of the primary's node saw.
#[derive(Debug)]
pub struct Partitioned {
    pub node: String,
    pub old_primary: String,
    pub record: ChaosRecord,
    pub outcome: chaos::Outcome,
    /// When the old primary's agent logged that it had made it read-only (its kubelet's time).
    pub fenced_at: Option<jiff::Timestamp>,
    /// When the operator logged that it was lifting `super_read_only` on the new primary.
    pub promoted_at: Option<jiff::Timestamp>,
    /// From the heal until the cluster was whole with every write everywhere.
    pub whole_after_heal: Duration,
}

/// The primary's node is cut off the network for `cut_for` (its processes keep running), then
/// healed, under the writer.
pub async fn partition_primary(ns: &TestNamespace, cut_for: Duration) -> Partitioned {
    let old_primary = chaos::current_primary(ns, CLUSTER)
        .await
        .expect("the cluster has a primary");
    let node = node_of(ns, &old_primary).await;
    let writer_seconds = (FAILURE_AFTER + cut_for).as_secs() + 15;
    chaos::start(ns, "client", CLUSTER, 3, writer_seconds).await;
    let started = Instant::now();
    tokio::time::sleep(FAILURE_AFTER).await;
    let cut_at = jiff::Timestamp::now();
    testbed(&["node", "partition", &node]);
    tokio::time::sleep(cut_for).await;
    testbed(&["node", "heal", &node]);
    let healed = Instant::now();
    let left = Duration::from_secs(writer_seconds).saturating_sub(started.elapsed());
    let record = chaos::collect(ns, "client", left.as_secs()).await;
    let outcome = chaos::measure(ns, CLUSTER, 3, &record).await;
    let whole_after_heal = healed.elapsed();
    let new_primary = outcome.primary.clone().unwrap_or_default();
    let ordinal = new_primary.trim_start_matches(&format!("{CLUSTER}-"));
    let fenced_at = first_log_line_after(
        &["-n", &ns.name, "logs", &old_primary, "-c", "agent"],
        cut_at,
        &["fenced: super_read_only is on"],
    );
    let operator_ns = std::env::var("SAKILA_NAMESPACE").unwrap_or_else(|_| "sakila-system".into());
    let promoted_at = first_log_line_after(
        &[
            "-n",
            &operator_ns,
            "logs",
            "-l",
            "app.kubernetes.io/name=sakila-operator",
            "--tail=-1",
        ],
        cut_at,
        &[
            "lifting super_read_only",
            &ns.name,
            &format!("ordinal={ordinal}"),
        ],
    );
    Partitioned {
        node,
        old_primary,
        record,
        outcome,
        fenced_at,
        promoted_at,
        whole_after_heal,
    }
}

/// The kubelet's time of the first line of `kubectl ARGS --timestamps` after `after` that
/// contains every one of `needles`.
fn first_log_line_after(
    args: &[&str],
    after: jiff::Timestamp,
    needles: &[&str],
) -> Option<jiff::Timestamp> {
    let out = Command::new("kubectl")
        .args(args)
        .arg("--timestamps")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .filter_map(|l| l.split_whitespace().next()?.parse::<jiff::Timestamp>().ok())
        .find(|t| *t > after)
}

/// What draining every worker in turn saw.
#[derive(Debug)]
pub struct Drained {
    pub record: ChaosRecord,
    pub outcome: chaos::Outcome,
    /// The drained nodes that held the primary when their drain began.
    pub primaries_drained: usize,
    pub switchovers: usize,
    pub failovers: usize,
    pub took: Duration,
}

/// `kubectl drain` of each worker, one after the other, under the writer: each node is
/// uncordoned and the cluster whole again before the next is drained (an instance on a local
/// volume can only come back on its own node).
pub async fn drain_each_worker(ns: &TestNamespace) -> Drained {
    let writer_seconds = 900;
    chaos::start(ns, "client", CLUSTER, 3, writer_seconds).await;
    tokio::time::sleep(FAILURE_AFTER).await;
    let start = Instant::now();
    let mut primaries_drained = 0;
    for worker in 1..=3 {
        let node = format!("sakila-worker-{worker}");
        let primary = chaos::current_primary(ns, CLUSTER)
            .await
            .expect("a primary");
        if node_of(ns, &primary).await == node {
            primaries_drained += 1;
        }
        kubectl(&[
            "drain",
            &node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=300s",
        ]);
        kubectl(&["uncordon", &node]);
        all_pods_ready(ns).await;
        wait_ready(ns, CLUSTER).await;
    }
    let took = start.elapsed();
    chaos::stop(ns, "client").await;
    let record = chaos::collect(ns, "client", 0).await;
    let outcome = chaos::measure(ns, CLUSTER, 3, &record).await;
    Drained {
        record,
        outcome,
        primaries_drained,
        switchovers: crate::event_count_on(ns, "MySQLCluster", "SwitchedOver").await,
        failovers: crate::event_count_on(ns, "MySQLCluster", "FailedOver").await,
        took,
    }
}

fn kubectl(args: &[&str]) {
    let out = Command::new("kubectl")
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until the cluster's three pods exist and are Ready.
async fn all_pods_ready(ns: &TestNamespace) {
    let pods: Api<Pod> = ns.api();
    wait_until("the three pods Ready", Duration::from_secs(600), || async {
        for ordinal in 0..3 {
            let pod = pods.get(&format!("{CLUSTER}-{ordinal}")).await.ok()?;
            let ready = pod
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if !ready {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// After a replacement two instances can share a node (the lost one was down when the scheduler
/// placed the new instance; the operator does not move instances back). Before a benchmark's next
/// run, a replica that shares a node is moved as a person would: its claim and pod deleted, so
/// that it is recreated on the free node and cloned. Returns how many were moved.
pub async fn spread_out(ns: &TestNamespace) -> usize {
    let mut moved = 0;
    // Preferred spreading, not required: the scheduler may double up again; a few tries.
    while moved < 3 {
        let primary = chaos::current_primary(ns, CLUSTER)
            .await
            .expect("a primary");
        let mut seen: Vec<(String, String)> = Vec::new();
        let mut doubled = None;
        for ordinal in 0..3 {
            let pod = format!("{CLUSTER}-{ordinal}");
            let node = node_of(ns, &pod).await;
            if let Some((other, _)) = seen.iter().find(|(_, n)| *n == node) {
                doubled = Some(if *other == primary {
                    pod.clone()
                } else {
                    other.clone()
                });
            }
            seen.push((pod, node));
        }
        let Some(pod) = doubled else { return moved };
        let claim = format!("data-{pod}");
        kubectl(&["-n", &ns.name, "delete", "pvc", &claim, "--wait=false"]);
        kubectl(&[
            "-n",
            &ns.name,
            "delete",
            "pod",
            &pod,
            "--force",
            "--grace-period=0",
        ]);
        moved += 1;
        all_pods_ready(ns).await;
        wait_ready(ns, CLUSTER).await;
    }
    moved
}

/// Local disks an administrator prepared: `per_node` PersistentVolumes on each worker, each a
/// directory of that node (`local`, bound to its hostname), labelled `pool=<namespace>`, in a
/// StorageClass of the namespace's name that provisions nothing. Returns the class; the spec's
/// `storage.selector` picks the pool. `remove_local_disks` deletes them.
pub async fn prepare_local_disks(ns: &TestNamespace, per_node: usize) -> String {
    use k8s_openapi::api::core::v1::PersistentVolume;
    use k8s_openapi::api::storage::v1::StorageClass;
    use kube::api::PostParams;
    let class = format!("{}-disks", ns.name);
    let classes: Api<StorageClass> = Api::all(ns.client.clone());
    classes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": class},
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "WaitForFirstConsumer"
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let volumes: Api<PersistentVolume> = Api::all(ns.client.clone());
    for worker in 1..=3 {
        let node = format!("sakila-worker-{worker}");
        for disk in 0..per_node {
            // Under the worker's own files, which `e2e/testbed workers 0` removes.
            let dir = format!(
                "/var/lib/sakila-testbed/nodes/{node}/disks/{}-{disk}",
                ns.name
            );
            std::fs::create_dir_all(&dir).unwrap();
            // mysqld runs as uid 999; a local volume keeps its directory's ownership.
            std::process::Command::new("chmod")
                .args(["0777", &dir])
                .status()
                .unwrap();
            let volume = json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": format!("{}-{worker}-{disk}", ns.name), "labels": {"pool": ns.name}},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": class,
                    "local": {"path": dir},
                    "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                    ]}]}}
                }
            });
            volumes
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(volume).unwrap(),
                )
                .await
                .unwrap();
        }
    }
    class
}

/// The manifest of `manifest`, on the local disks of `class` through `spec.storage.selector`.
pub fn on_local_disks(
    mut manifest: serde_json::Value,
    ns: &TestNamespace,
    class: &str,
) -> serde_json::Value {
    manifest["spec"]["storage"] = json!({
        "size": "256Mi", "storageClassName": class,
        "selector": {"matchLabels": {"pool": ns.name}}
    });
    manifest
}

/// The volume each instance's claim is bound to, by ordinal.
pub async fn bound_volumes(ns: &TestNamespace) -> Vec<String> {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let claims: Api<PersistentVolumeClaim> = ns.api();
    let mut bound = Vec::new();
    for ordinal in 0..3 {
        let claim = claims
            .get(&format!("data-{CLUSTER}-{ordinal}"))
            .await
            .unwrap_or_else(|e| panic!("data-{CLUSTER}-{ordinal}: {e}"));
        bound.push(claim.spec.and_then(|s| s.volume_name).unwrap_or_default());
    }
    bound
}

/// Deletes the prepared volumes and their class (each volume goes once its claim does).
pub fn remove_local_disks(ns: &TestNamespace, class: &str) {
    let _ = Command::new("kubectl")
        .args([
            "delete",
            "pv",
            "-l",
            &format!("pool={}", ns.name),
            "--wait=false",
        ])
        .output();
    let _ = Command::new("kubectl")
        .args(["delete", "storageclass", class, "--wait=false"])
        .output();
}
