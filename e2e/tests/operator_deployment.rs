//! The operator as deployed by Helm: leader election hands over when the leader dies or freezes
//! (also in the middle of a failover, which its successor finishes rather than begins again), a
//! `helm upgrade` to a new operator image restarts no mysqld, and `helm test` passes.
//!
//! These tests change the shared operator release (`sakila` in `SAKILA_NAMESPACE`), so they take
//! one lock and run one at a time, and each puts the release back the way `e2e/prepare` left it.
//! A leader killed while tests of other binaries ran would hold up their failovers: cargo runs
//! the test binaries one after the other.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use sakila::api::MySQLCluster;
use sakila_e2e::{
    TestNamespace, chaos, client, cluster_manifest, force_delete_pod, wait_ready, wait_until,
};
use tokio::sync::Mutex;

/// The tests of this file change the one operator release; one at a time.
static RELEASE: Mutex<()> = Mutex::const_new(());

const RELEASE_NAME: &str = "sakila";
/// The chart's fullname for the release `sakila`, which names the Lease too.
const LEASE_NAME: &str = "sakila";
const OPERATOR_SELECTOR: &str = "app.kubernetes.io/name=sakila-operator";

fn operator_namespace() -> String {
    std::env::var("SAKILA_NAMESPACE").unwrap_or_else(|_| "sakila-system".into())
}

fn operator_image() -> String {
    std::env::var("SAKILA_OPERATOR_IMAGE").expect(
        "SAKILA_OPERATOR_IMAGE names the operator image under test (run through `make e2e`)",
    )
}

fn chart_dir() -> String {
    format!("{}/../charts/sakila", env!("CARGO_MANIFEST_DIR"))
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("failed to run {program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `helm upgrade` of the shared release to `image`, keeping every other value, and wait.
fn helm_upgrade_to(image: &str) {
    install_release(&chart_dir(), image);
}

/// `helm upgrade` of the shared release to the chart in `chart` and `image`, keeping every
/// other value, and wait.
fn install_release(chart: &str, image: &str) {
    let (repository, tag) = image.rsplit_once(':').expect("image has a tag");
    let namespace = operator_namespace();
    run(
        "helm",
        &[
            "upgrade",
            RELEASE_NAME,
            chart,
            "--namespace",
            &namespace,
            "--reuse-values",
            "--set",
            &format!("image.repository={repository}"),
            "--set",
            &format!("image.tag={tag}"),
            "--wait",
            "--timeout",
            "5m",
        ],
    );
}

/// Puts the release back on the image under test, even when the test fails.
struct RestoreRelease;

impl Drop for RestoreRelease {
    fn drop(&mut self) {
        helm_upgrade_to(&operator_image());
    }
}

/// Applies the CRDs in `dir` as `e2e/prepare` does (Helm never upgrades a chart's CRDs).
fn apply_crds(dir: &str) {
    run(
        "kubectl",
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=sakila-prepare",
            "-f",
            dir,
        ],
    );
}

/// Puts the CRDs under test back, even when the test fails.
struct RestoreCrds;

impl Drop for RestoreCrds {
    fn drop(&mut self) {
        apply_crds(&format!("{}/../crds", env!("CARGO_MANIFEST_DIR")));
    }
}

async fn leases() -> Api<Lease> {
    Api::namespaced(client().await, &operator_namespace())
}

/// The holder of the operator's Lease and when it acquired it, if anyone holds it.
async fn lease_holder(leases: &Api<Lease>) -> Option<(String, Option<i64>)> {
    let spec = leases.get(LEASE_NAME).await.ok()?.spec?;
    let holder = spec.holder_identity.filter(|h| !h.is_empty())?;
    Some((holder, spec.acquire_time.map(|t| t.0.as_millisecond())))
}

/// Waits until the operator Deployment has all its replicas updated and ready, and one leads.
async fn wait_operator_settled() -> String {
    let client = client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &operator_namespace());
    let pods: Api<Pod> = Api::namespaced(client.clone(), &operator_namespace());
    let leases = leases().await;
    wait_until(
        "the operator's replicas ready and one of them leading",
        Duration::from_secs(180),
        || async {
            let deployment = deployments.get(RELEASE_NAME).await.ok()?;
            let generation = deployment.metadata.generation;
            let want = deployment.spec?.replicas.unwrap_or(1);
            let status = deployment.status?;
            // Right after `helm upgrade` the status still describes the previous template until
            // the Deployment controller has seen the new one.
            let settled = status.observed_generation == generation
                && status.ready_replicas == Some(want)
                && status.updated_replicas == Some(want)
                && status.replicas == Some(want);
            if !settled {
                return None;
            }
            let (holder, _) = lease_holder(&leases).await?;
            let running = pods
                .list(&ListParams::default().labels(OPERATOR_SELECTOR))
                .await
                .ok()?;
            // A pod on its way out may hold the lease until it releases it.
            running
                .items
                .iter()
                .any(|p| {
                    p.metadata.name.as_deref() == Some(holder.as_str())
                        && p.metadata.deletion_timestamp.is_none()
                })
                .then_some(holder)
        },
    )
    .await
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn the_standby_takes_over_when_the_leader_dies_mid_creation_and_the_cluster_becomes_ready() {
    let _one = RELEASE.lock().await;
    let leader = wait_operator_settled().await;
    let operator_pods: Api<Pod> = Api::namespaced(client().await, &operator_namespace());
    let leases = leases().await;

    let ns = TestNamespace::new("takeover").await;
    ns.create::<MySQLCluster>(cluster_manifest("handover", 3))
        .await;
    // The leader has started acting on the cluster: its StatefulSet exists.
    let statefulsets: Api<k8s_openapi::api::apps::v1::StatefulSet> = ns.api();
    wait_until(
        "the leader to create the StatefulSet",
        Duration::from_secs(60),
        || async { statefulsets.get_opt("handover").await.ok()? },
    )
    .await;

    let killed_at = now_millis();
    let started = Instant::now();
    force_delete_pod(&operator_pods, &leader).await;
    let (new_leader, acquired_at) = wait_until(
        "another operator pod to take the lease",
        Duration::from_secs(120),
        || async {
            let (holder, acquired) = lease_holder(&leases).await?;
            (holder != leader).then_some((holder, acquired))
        },
    )
    .await;
    let observed = started.elapsed();
    let from_lease = acquired_at.map(|at| at - killed_at);
    println!(
        "takeover: deleted leader pod {leader} (grace 0: SIGTERM, lease released); {new_leader} \
         acquired the lease {} ms after the kill \
         (lease acquireTime), seen by polling after {} ms",
        from_lease.map_or("?".into(), |ms| ms.to_string()),
        observed.as_millis()
    );

    wait_ready(&ns, "handover").await;
    // Leave the release as found: two replicas, one leading.
    wait_operator_settled().await;
}

/// The leader dies right after it recorded a failover's new primary, before or while it promotes
/// it: its successor finishes that promotion, never picks another replica (two promotions could
/// each take writes the other lacks), and no acknowledged write is lost.
#[tokio::test]
async fn operator_leader_killed_during_a_failover_never_promotes_twice() {
    let _one = RELEASE.lock().await;
    let leader = wait_operator_settled().await;
    let chaos::UnderWrites { ns, started } =
        chaos::cluster_under_writes("leader-killed", cluster_manifest("trio", 3), 60).await;
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(started.elapsed())).await;
    let pods: Api<Pod> = ns.api();
    force_delete_pod(&pods, "trio-0").await;
    let recorded = chaos::wait_for_new_primary(&ns, "trio", "trio-0").await;
    let operator_pods: Api<Pod> = Api::namespaced(client().await, &operator_namespace());
    force_delete_pod(&operator_pods, &leader).await;
    let outcome = chaos::finish_writing(&ns, started, 60, "trio", 3).await;
    assert_eq!(
        outcome.primary.as_deref(),
        Some(recorded.as_str()),
        "the successor finished the recorded failover"
    );
    // The first leader announces the failover right after recording it; killed in between, it
    // leaves the move unannounced (its successor finishes it and reports nothing more).
    let moves = sakila_e2e::event_count(&ns, "FailedOver").await
        + sakila_e2e::event_count(&ns, "SwitchedOver").await;
    assert!(moves <= 1, "the primary moved {moves} times");
    wait_operator_settled().await;
}

#[tokio::test]
async fn helm_upgrade_to_a_new_operator_image_restarts_no_mysqld_pod() {
    let _one = RELEASE.lock().await;
    wait_operator_settled().await;
    let ns = TestNamespace::new("upgrade").await;
    ns.create::<MySQLCluster>(cluster_manifest("steady", 1))
        .await;
    wait_ready(&ns, "steady").await;
    let pods: Api<Pod> = ns.api();
    let snapshot = || async {
        let list = pods
            .list(&ListParams::default().labels("app.kubernetes.io/instance=steady"))
            .await
            .unwrap();
        let mut seen: Vec<(String, String, i32)> = list
            .items
            .iter()
            .map(|p| {
                let restarts = p
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .map(|cs| cs.iter().map(|c| c.restart_count).sum())
                    .unwrap_or(0);
                (
                    p.metadata.name.clone().unwrap(),
                    p.metadata.uid.clone().unwrap(),
                    restarts,
                )
            })
            .collect();
        seen.sort();
        seen
    };
    let before = snapshot().await;
    assert!(!before.is_empty(), "the cluster has pods");

    // The same binary under a new tag: to Kubernetes, a new operator version.
    let image = operator_image();
    let retagged = format!("{image}-upgrade");
    run(
        "ctr",
        &[
            "-n",
            "k8s.io",
            "--address",
            "/run/sakila-testbed/containerd/containerd.sock",
            "images",
            "tag",
            "--force",
            &image,
            &retagged,
        ],
    );
    let _restore = RestoreRelease;
    helm_upgrade_to(&retagged);
    let leader = wait_operator_settled().await;
    let operator_pods: Api<Pod> = Api::namespaced(client().await, &operator_namespace());
    let leader_image = operator_pods
        .get(&leader)
        .await
        .unwrap()
        .spec
        .unwrap()
        .containers[0]
        .image
        .clone();
    assert_eq!(leader_image.as_deref(), Some(retagged.as_str()));
    // Let the new leader reconcile the cluster a few times (it requeues every 10 s).
    tokio::time::sleep(Duration::from_secs(30)).await;
    wait_ready(&ns, "steady").await;

    let after = snapshot().await;
    assert_eq!(
        before, after,
        "mysqld pods (name, UID, restarts) are unchanged by the operator upgrade"
    );
    println!("upgrade: operator now {retagged}, led by {leader}; mysqld pods unchanged: {after:?}");
}

#[tokio::test]
async fn helm_test_checks_the_operator_answers_its_health_check() {
    let _one = RELEASE.lock().await;
    wait_operator_settled().await;
    let out = run(
        "helm",
        &[
            "test",
            RELEASE_NAME,
            "--namespace",
            &operator_namespace(),
            "--logs",
            "--timeout",
            "2m",
        ],
    );
    println!("{out}");
    assert!(out.contains("Succeeded"), "{out}");
}

/// The host pid of a pod's first container (the testbed's node is this machine).
async fn host_pid(pods: &Api<Pod>, pod: &str) -> String {
    let status = pods.get(pod).await.unwrap().status.unwrap();
    let id = status.container_statuses.unwrap()[0]
        .container_id
        .clone()
        .expect("the container runs");
    let id = id.trim_start_matches("containerd://");
    let inspect: serde_json::Value =
        serde_json::from_str(&run("crictl", &["inspect", id])).unwrap();
    inspect["info"]["pid"].to_string()
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs[0].restart_count)
}

#[tokio::test]
async fn a_frozen_leader_is_replaced_and_exits_as_soon_as_it_wakes() {
    let _one = RELEASE.lock().await;
    let leader = wait_operator_settled().await;
    let pods: Api<Pod> = Api::namespaced(client().await, &operator_namespace());
    let leases = leases().await;
    let restarts_before = restarts(&pods.get(&leader).await.unwrap());
    let pid = host_pid(&pods, &leader).await;

    // Frozen, the leader neither renews nor knows it should stop: like a partitioned node.
    run("kill", &["-STOP", &pid]);
    let started = Instant::now();
    let new_leader = wait_until(
        "a standby to take the lease of the frozen leader",
        Duration::from_secs(60),
        || async {
            let (holder, _) = lease_holder(&leases).await?;
            (holder != leader).then_some(holder)
        },
    )
    .await;
    let takeover = started.elapsed();
    run("kill", &["-CONT", &pid]);
    let woke = Instant::now();
    // Awake, it finds its renew deadline long past and exits; the kubelet restarts it.
    let exited = wait_until(
        "the old leader to exit after waking",
        Duration::from_secs(60),
        || async {
            let pod = pods.get(&leader).await.ok()?;
            let status = pod.status.as_ref()?.container_statuses.as_ref()?[0].clone();
            let code = status.last_state?.terminated?.exit_code;
            (restarts(&pod) > restarts_before).then_some(code)
        },
    )
    .await;
    println!(
        "frozen leader {leader}: {new_leader} took over {} ms after the freeze; the old leader \
         exited with code {exited} within {} ms of waking (restart seen by polling)",
        takeover.as_millis(),
        woke.elapsed().as_millis()
    );
    assert_eq!(
        exited, 1,
        "a leader that lost its lease exits with an error"
    );
    let (holder, _) = lease_holder(&leases).await.unwrap();
    assert_eq!(
        holder, new_leader,
        "the old leader did not take the lease back"
    );
    wait_operator_settled().await;
}

/// One field of `SHOW REPLICA STATUS` on `pod` (printed vertically), e.g. `Source_SSL_Allowed`;
/// empty when the pod does not answer or replicates from nothing.
async fn replica_status_field(ns: &TestNamespace, cluster: &str, pod: &str, field: &str) -> String {
    let status = ns
        .mysql(cluster, pod, &["-E"], "SHOW REPLICA STATUS")
        .await
        .unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            let (name, value) = line.trim().split_once(": ")?;
            (name == field).then(|| value.to_string())
        })
        .unwrap_or_default()
}

/// The channel of every replica of `cluster`: (`Source_SSL_Allowed`,
/// `Source_SSL_Verify_Server_Cert`) per replica.
async fn channels(ns: &TestNamespace, cluster: &str, instances: u8) -> Vec<(String, String)> {
    let primary = chaos::current_primary(ns, cluster)
        .await
        .unwrap_or_default();
    let mut seen = Vec::new();
    for ordinal in 0..instances {
        let pod = format!("{cluster}-{ordinal}");
        if pod != primary {
            seen.push((
                replica_status_field(ns, cluster, &pod, "Source_SSL_Allowed").await,
                replica_status_field(ns, cluster, &pod, "Source_SSL_Verify_Server_Cert").await,
            ));
        }
    }
    seen
}

/// The upgrade path: a cluster made by an earlier operator (its image and chart named by
/// `SAKILA_EARLIER_OPERATOR_IMAGE`, `SAKILA_EARLIER_CHART` and `SAKILA_EARLIER_CRDS`; by default
/// `e2e/upgrade-from` builds the last one before TLS) is taken over by the operator under test
/// while the writer runs: it ends with verified TLS on every replication channel and refuses
/// plain-text clients, loses no acknowledged write and never has two writers.
#[tokio::test]
#[ignore = "run by e2e/upgrade-from, which builds the earlier operator"]
async fn a_cluster_made_by_an_earlier_operator_is_upgraded_under_writes_losing_nothing() {
    const INSTANCES: u8 = 3;
    let earlier = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by e2e/upgrade-from"))
    };
    let (earlier_image, earlier_chart, earlier_crds) = (
        earlier("SAKILA_EARLIER_OPERATOR_IMAGE"),
        earlier("SAKILA_EARLIER_CHART"),
        earlier("SAKILA_EARLIER_CRDS"),
    );
    let _one = RELEASE.lock().await;
    wait_operator_settled().await;
    let _restore_release = RestoreRelease;
    let _restore_crds = RestoreCrds;
    apply_crds(&earlier_crds);
    install_release(&earlier_chart, &earlier_image);
    wait_operator_settled().await;

    let chaos::UnderWrites { ns, started } = chaos::cluster_under_writes(
        "upgrade-from",
        cluster_manifest("earlier", i32::from(INSTANCES)),
        1800,
    )
    .await;
    let before = channels(&ns, "earlier", INSTANCES).await;
    println!("replication channels under the earlier operator (SSL allowed, verified): {before:?}");

    apply_crds(&format!("{}/../crds", env!("CARGO_MANIFEST_DIR")));
    let upgraded_at = Instant::now();
    helm_upgrade_to(&operator_image());
    wait_operator_settled().await;
    let verified = vec![("Yes".to_string(), "Yes".to_string()); usize::from(INSTANCES) - 1];
    wait_until(
        "every replication channel on verified TLS",
        Duration::from_secs(900),
        || async { (channels(&ns, "earlier", INSTANCES).await == verified).then_some(()) },
    )
    .await;
    wait_ready(&ns, "earlier").await;
    let took = upgraded_at.elapsed();

    // Plain text is refused now, and a client verifying the cluster's CA and name connects.
    let password = ns.root_password("earlier").await;
    let password = format!("--password={password}");
    let host = "--host=earlier-primary";
    let plain = ns
        .try_exec(
            "client",
            "client",
            &[
                "mysql",
                host,
                "-uroot",
                &password,
                "--ssl-mode=DISABLED",
                "-e",
                "SELECT 1",
            ],
        )
        .await;
    assert!(
        plain
            .as_ref()
            .is_err_and(|e| e.contains("secure transport")),
        "a plain-text client is refused: {plain:?}"
    );
    let outcome = chaos::stop_and_verify(&ns, "client", "earlier", INSTANCES, 50).await;
    let moves = sakila_e2e::event_count(&ns, "SwitchedOver").await
        + sakila_e2e::event_count(&ns, "FailedOver").await;
    println!(
        "upgraded from {earlier_image}: every channel verified and Ready {:.1} s after helm \
         upgrade; {} writes acknowledged, {} lost, longest gap {:.2} s, most writable at once \
         {}, primary moved {moves} times ({:.0} s of writes)",
        took.as_secs_f64(),
        outcome.acknowledged,
        outcome.lost,
        outcome.longest_write_gap.as_secs_f64(),
        outcome.most_writable_at_once,
        started.elapsed().as_secs_f64(),
    );
    assert!(outcome.converged, "every instance holds the same rows");
    assert_eq!(outcome.most_writable_at_once, 1, "never two writers");
}
