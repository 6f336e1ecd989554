//! Helpers of the end-to-end suite: a namespace per test, waiting with deadlines, running
//! commands and SQL inside pods, and a dump of pods, logs and events when a test fails.
//!
//! The suite runs against the cluster in `KUBECONFIG` (set by `e2e/prepare`), with the operator
//! already installed. Images come from the environment:
//! - `SAKILA_MYSQL_VERSION`: the `spec.version` the clusters use (its image must exist),
//! - `SAKILA_HELPER_IMAGE`: a small image with a shell and perl (default `debian:sid-slim`),
//! - `SAKILA_MYSQL_IMAGE`: an image with the `mysql` client, for client pods.

pub mod backup;
pub mod chaos;
pub mod figures;
pub mod node_loss;

use std::future::Future;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, Secret};
use kube::api::{AttachParams, DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use rand::distr::{Alphanumeric, SampleString};
use sakila::api::MySQLCluster;
use sakila::api::conditions::ConditionType;
use serde_json::json;
use tokio::io::AsyncReadExt;

/// The MySQL version the clusters under test run.
pub fn mysql_version() -> String {
    std::env::var("SAKILA_MYSQL_VERSION").unwrap_or_else(|_| "9.7.4".into())
}

/// A small image with a shell, coreutils, getent and perl.
pub fn helper_image() -> String {
    std::env::var("SAKILA_HELPER_IMAGE").unwrap_or_else(|_| "debian:sid-slim".into())
}

/// An image with the `mysql` command-line client.
pub fn mysql_client_image() -> String {
    std::env::var("SAKILA_MYSQL_IMAGE").unwrap_or_else(|_| format!("mysql:{}", mysql_version()))
}

/// A client for the cluster in `KUBECONFIG`.
pub async fn client() -> Client {
    Client::try_default()
        .await
        .expect("a Kubernetes cluster in KUBECONFIG (run the suite through `make e2e`)")
}

/// A namespace that exists for one test. On drop it is deleted; if the test is failing, the
/// pods, their logs and the namespace's events are printed first.
pub struct TestNamespace {
    pub name: String,
    pub client: Client,
}

impl TestNamespace {
    /// Creates `e2e-<prefix>-<random>`.
    pub async fn new(prefix: &str) -> Self {
        let client = client().await;
        let suffix = Alphanumeric
            .sample_string(&mut rand::rng(), 5)
            .to_lowercase();
        let name = format!("e2e-{prefix}-{suffix}");
        let namespace: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"sakila.dev/e2e": "true"}}
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("failed to create namespace {name}: {e}"));
        Self { name, client }
    }

    /// An API of kind `K` in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Creates an object from JSON in this namespace (kind taken from the JSON).
    pub async fn create<K>(&self, object: serde_json::Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
        <K as kube::Resource>::DynamicType: Default,
    {
        let typed: K = serde_json::from_value(object).expect("test object has the right shape");
        self.api::<K>()
            .create(&PostParams::default(), &typed)
            .await
            .unwrap_or_else(|e| panic!("failed to create {typed:?}: {e}"))
    }

    /// Runs a command in a pod's container and returns its stdout; panics with stderr on failure.
    pub async fn exec(&self, pod: &str, container: &str, command: &[&str]) -> String {
        match self.try_exec(pod, container, command).await {
            Ok(out) => out,
            Err(e) => panic!("command {command:?} in {pod}/{container} failed: {e}"),
        }
    }

    /// Runs a command in a pod's container; `Err` carries stderr and the exit status.
    pub async fn try_exec(
        &self,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> Result<String, String> {
        let pods: Api<Pod> = self.api();
        let params = AttachParams::default()
            .container(container)
            .stdout(true)
            .stderr(true);
        let mut process = pods
            .exec(pod, command.iter().copied(), &params)
            .await
            .map_err(|e| format!("exec failed: {e}"))?;
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut out) = process.stdout() {
            out.read_to_string(&mut stdout).await.ok();
        }
        if let Some(mut err) = process.stderr() {
            err.read_to_string(&mut stderr).await.ok();
        }
        let status = match process.take_status() {
            Some(status) => status.await,
            None => None,
        };
        process.join().await.ok();
        match status.and_then(|s| s.status) {
            Some(s) if s == "Success" => Ok(stdout),
            other => Err(format!("status {other:?}, stderr: {stderr}")),
        }
    }

    /// The root password of a MySQLCluster, from its credentials Secret.
    pub async fn root_password(&self, cluster: &str) -> String {
        let secret = self
            .api::<Secret>()
            .get(&format!("{cluster}-credentials"))
            .await
            .expect("the credentials Secret exists");
        let bytes = &secret.data.unwrap()["root-password"].0;
        String::from_utf8(bytes.clone()).unwrap()
    }

    /// Runs SQL as root in a pod of a cluster over the local socket; returns tab-separated rows.
    pub async fn sql(&self, cluster: &str, pod: &str, sql: &str) -> Result<String, String> {
        self.mysql(cluster, pod, &["-N", "-B"], sql).await
    }

    /// Runs `sql` as root over the socket in `pod`'s mysqld container with the client's
    /// `options` (e.g. `-E` for one field per line); stdout or the error.
    pub async fn mysql(
        &self,
        cluster: &str,
        pod: &str,
        options: &[&str],
        sql: &str,
    ) -> Result<String, String> {
        let password = self.root_password(cluster).await;
        let password_arg = format!("--password={password}");
        let mut command = vec!["mysql", "-uroot", &password_arg];
        command.extend_from_slice(options);
        command.extend_from_slice(&["-e", sql]);
        self.try_exec(pod, "mysqld", &command).await
    }

    /// Starts a long-running client pod with the given image and waits until it runs.
    pub async fn client_pod(&self, name: &str, image: &str) {
        self.client_pod_on(name, image, None).await;
    }

    /// `client_pod`, on the named node when there is one (a client that must outlive the
    /// nodes a test stops).
    pub async fn client_pod_on(&self, name: &str, image: &str, node: Option<&str>) {
        let node_selector = node.map(|n| json!({"kubernetes.io/hostname": n}));
        self.create::<Pod>(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "containers": [{
                    "name": "client", "image": image, "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                    "securityContext": {"runAsUser": 999, "allowPrivilegeEscalation": false}
                }],
                "nodeSelector": node_selector,
                "terminationGracePeriodSeconds": 0
            }
        }))
        .await;
        let pods: Api<Pod> = self.api();
        wait_until(
            &format!("client pod {name} running"),
            Duration::from_secs(120),
            || async {
                let pod = pods.get(name).await.ok()?;
                let phase = pod.status?.phase?;
                (phase == "Running").then_some(())
            },
        )
        .await;
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            dump_diagnostics(&self.name);
        }
        if std::env::var_os("SAKILA_E2E_KEEP_NAMESPACES").is_none() {
            let _ = Command::new("kubectl")
                .args(["delete", "namespace", &self.name, "--wait=false"])
                .output();
        }
    }
}

/// Prints what a person debugging a failed test looks at first.
fn dump_diagnostics(namespace: &str) {
    eprintln!("===== diagnostics of namespace {namespace} =====");
    let kubectl = |args: &[&str]| {
        if let Ok(out) = Command::new("kubectl").args(args).output() {
            eprintln!("$ kubectl {}", args.join(" "));
            eprintln!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    kubectl(&[
        "-n",
        namespace,
        "get",
        "mysqlclusters,statefulsets,pods,pvc,services",
        "-o",
        "wide",
    ]);
    kubectl(&["-n", namespace, "get", "mysqlclusters", "-o", "yaml"]);
    kubectl(&["-n", namespace, "get", "events", "--sort-by=.lastTimestamp"]);
    kubectl(&["-n", namespace, "describe", "pods"]);
    kubectl(&[
        "-n",
        namespace,
        "logs",
        "--all-containers",
        "--prefix",
        "--tail=80",
        "-l",
        "app.kubernetes.io/managed-by=sakila",
    ]);
    let operator_ns = std::env::var("SAKILA_NAMESPACE").unwrap_or_else(|_| "sakila-system".into());
    kubectl(&[
        "-n",
        &operator_ns,
        "logs",
        "--tail=80",
        "-l",
        "app.kubernetes.io/name=sakila-operator",
    ]);
}

/// The testbed's script (`e2e/testbed`).
pub const TESTBED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testbed");

/// Runs `e2e/testbed ARGS` and panics with its output if it fails.
pub fn testbed(args: &[&str]) {
    let out = Command::new(TESTBED)
        .args(args)
        .output()
        .expect("e2e/testbed runs");
    assert!(
        out.status.success(),
        "e2e/testbed {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `check` every 500 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How long a new MySQLCluster may take to become Ready in the suite (clones included).
pub const READY_TIMEOUT: Duration = Duration::from_secs(600);

/// A small MySQLCluster manifest for tests: tiny volumes and buffer pool.
pub fn cluster_manifest(name: &str, instances: i32) -> serde_json::Value {
    json!({
        "apiVersion": "mysql.sakila.dev/v1alpha1", "kind": "MySQLCluster",
        "metadata": {"name": name},
        "spec": {
            "instances": instances,
            "version": mysql_version(),
            "storage": {"size": "256Mi"},
            "mysqlConfig": {"innodb_buffer_pool_size": "32M", "performance_schema": "OFF"}
        }
    })
}

/// Waits until the MySQLCluster is Ready and no longer progressing, both for its current
/// generation, and returns it.
pub async fn wait_ready(ns: &TestNamespace, name: &str) -> MySQLCluster {
    let clusters: Api<MySQLCluster> = ns.api();
    wait_until(
        &format!("MySQLCluster {name} Ready"),
        READY_TIMEOUT,
        || async {
            let cluster = clusters.get(name).await.ok()?;
            // For the spec as it is now: a condition from before the last edit says nothing
            // about the change. Ready while still rolling a change out is not at rest yet.
            let generation = cluster.metadata.generation;
            let conditions = &cluster.status.as_ref()?.conditions;
            let holds = |type_: ConditionType, status: &str| {
                conditions.iter().any(|c| {
                    c.type_ == type_ && c.status == status && c.observed_generation == generation
                })
            };
            (holds(ConditionType::Ready, "True") && holds(ConditionType::Progressing, "False"))
                .then_some(cluster)
        },
    )
    .await
}

/// Deletes the pod and, if the StatefulSet made a new pod before the old volume was gone (it
/// then waits for a claim that no longer exists), that pod too, until the pod runs on a new
/// volume.
pub async fn replace_volume(ns: &TestNamespace, pod: &str) {
    let claims: Api<PersistentVolumeClaim> = ns.api();
    let pods: Api<Pod> = ns.api();
    let claim = format!("data-{pod}");
    let old_uid = claims
        .get(&claim)
        .await
        .expect("the pod has a data volume")
        .metadata
        .uid;
    // Held by its protection finalizer until no pod uses it.
    claims
        .delete(&claim, &DeleteParams::default())
        .await
        .expect("the claim is marked for deletion");
    force_delete_pod(&pods, pod).await;
    wait_until(
        &format!("{pod} running on a new volume"),
        Duration::from_secs(180),
        || async {
            let current = claims.get_opt(&claim).await.ok()?;
            let running = pods
                .get_opt(pod)
                .await
                .ok()?
                .and_then(|p| p.status?.phase)
                .is_some_and(|phase| phase == "Running");
            let renewed = current.as_ref().is_some_and(|c| {
                c.metadata.uid != old_uid && c.metadata.deletion_timestamp.is_none()
            });
            if renewed && running {
                return Some(());
            }
            if !renewed
                && let Ok(Some(stuck)) = pods.get_opt(pod).await
                && stuck.metadata.deletion_timestamp.is_none()
                && stuck.status.and_then(|s| s.phase).as_deref() == Some("Pending")
            {
                force_delete_pod(&pods, pod).await;
            }
            None
        },
    )
    .await;
}

/// Deletes a pod now (grace period 0), as a crash or eviction would.
pub async fn force_delete_pod(pods: &Api<Pod>, name: &str) {
    pods.delete(name, &DeleteParams::default().grace_period(0))
        .await
        .unwrap_or_else(|e| panic!("failed to delete pod {name}: {e}"));
}

/// How many times the MySQLClusters in the namespace reported this event reason (an event
/// series counts each time).
pub async fn event_count(ns: &TestNamespace, reason: &str) -> usize {
    event_count_on(ns, "MySQLCluster", reason).await
}

/// Like [`event_count`], for events about objects of another kind (e.g. `MySQLBackup`).
pub async fn event_count_on(ns: &TestNamespace, kind: &str, reason: &str) -> usize {
    let events: Api<k8s_openapi::api::core::v1::Event> = ns.api();
    events
        .list(&kube::api::ListParams::default().fields(&format!("involvedObject.kind={kind}")))
        .await
        .unwrap_or_else(|e| panic!("failed to list events: {e}"))
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| {
            let series = e.series.as_ref().and_then(|s| s.count).unwrap_or(0);
            e.count.unwrap_or(1).max(series).max(1) as usize
        })
        .sum()
}

/// The notes of the `ReplicaCloned` events in the namespace ("seeded <recipient> with a clone
/// of <donor>"), which the operator publishes when a clone is done.
pub async fn replica_cloned_notes(ns: &TestNamespace) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> = ns.api();
    events
        .list(&kube::api::ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("failed to list events: {e}"))
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("ReplicaCloned"))
        .filter_map(|e| e.note)
        .collect()
}

/// Merges `spec` into the MySQLCluster's spec.
pub async fn patch_spec(ns: &TestNamespace, cluster: &str, spec: serde_json::Value) {
    let clusters: Api<MySQLCluster> = ns.api();
    clusters
        .patch(
            cluster,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .unwrap_or_else(|e| panic!("failed to patch {cluster}: {e}"));
}

/// Pauses or unpauses the cluster, and waits until the operator says it took the change (its
/// `Paused` condition).
pub async fn set_paused(ns: &TestNamespace, cluster: &str, paused: bool) {
    patch_spec(ns, cluster, json!({ "paused": paused })).await;
    let wanted = if paused { "True" } else { "False" };
    wait_until(
        &format!("the Paused condition {wanted}"),
        Duration::from_secs(180),
        || async {
            cluster_condition(ns, cluster, ConditionType::Paused)
                .await
                .filter(|c| c.status == wanted)
        },
    )
    .await;
}

/// Deletes the MySQLCluster and waits until it, its StatefulSet and its pods are gone.
pub async fn delete_cluster_and_wait(ns: &TestNamespace, name: &str) {
    let clusters: Api<MySQLCluster> = ns.api();
    clusters
        .delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("failed to delete MySQLCluster {name}: {e}"));
    let statefulsets: Api<k8s_openapi::api::apps::v1::StatefulSet> = ns.api();
    let pods: Api<Pod> = ns.api();
    wait_until(
        &format!("the StatefulSet and pods of {name} gone"),
        Duration::from_secs(120),
        || async {
            let cluster_gone = clusters.get_opt(name).await.ok()?.is_none();
            let statefulset_gone = statefulsets.get_opt(name).await.ok()?.is_none();
            let selector = format!("app.kubernetes.io/instance={name}");
            let pods_gone = pods
                .list(&kube::api::ListParams::default().labels(&selector))
                .await
                .ok()?
                .items
                .is_empty();
            (cluster_gone && statefulset_gone && pods_gone).then_some(())
        },
    )
    .await;
}

/// The status ("True", "False") of the cluster's condition of this type, if it has one.
pub fn condition_status(cluster: &MySQLCluster, type_: ConditionType) -> Option<String> {
    let conditions = &cluster.status.as_ref()?.conditions;
    sakila::api::conditions::find_condition(conditions, type_).map(|c| c.status.clone())
}

/// The UIDs of the cluster's pods and the restarts of all their containers.
pub async fn pods_and_restarts(ns: &TestNamespace, cluster: &str) -> (Vec<Option<String>>, i32) {
    let pods: Api<Pod> = ns.api();
    let selector = ListParams::default().labels(&format!("app.kubernetes.io/instance={cluster}"));
    let pods = pods.list(&selector).await.unwrap().items;
    let restarts = pods
        .iter()
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    (pods.into_iter().map(|p| p.metadata.uid).collect(), restarts)
}

/// The MySQLCluster's condition of this type, if it has one.
pub async fn cluster_condition(
    ns: &TestNamespace,
    cluster: &str,
    type_: ConditionType,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let clusters: Api<MySQLCluster> = ns.api();
    clusters
        .get(cluster)
        .await
        .ok()?
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)
}

/// `path` of a pod's `port`, through the API server's proxy (so it works wherever the API
/// server can reach pods, whatever runs the test).
pub async fn proxied(namespace: &str, pod: &str, port: u16, path: &str) -> Option<String> {
    let request = http::Request::get(format!(
        "/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{path}"
    ))
    .body(Vec::new())
    .unwrap();
    client().await.request_text(request).await.ok()
}

/// The value of the series written exactly as `series` (name and labels).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The leading operator's `/metrics`.
pub async fn leader_metrics() -> Option<String> {
    let namespace = std::env::var("SAKILA_NAMESPACE").unwrap_or_else(|_| "sakila-system".into());
    let pods: Api<Pod> = Api::namespaced(client().await, &namespace);
    let listed = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=sakila-operator"))
        .await
        .ok()?;
    for pod in listed {
        let name = pod.metadata.name.unwrap_or_default();
        if let Some(text) = proxied(&namespace, &name, 8080, "/metrics").await
            && sample(&text, "sakila_leader") == Some(1.0)
        {
            return Some(text);
        }
    }
    None
}
