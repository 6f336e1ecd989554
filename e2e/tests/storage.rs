//! Day-2 storage: growing spec.storage.size on a StorageClass that cannot expand volumes, the
//! shrink refusal, and what deleting a cluster does to its volumes under each deletion policy.
//!
//! The testbed's StorageClass (local-path) does not allow volume expansion, so a real expansion
//! is not exercised here: which PVCs get patched for a class that allows it is decided by a pure
//! function, table-tested in `src/storage/decide.rs`.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams, Patch, PatchParams};
use sakila::api::MySQLCluster;
use sakila::api::conditions::ConditionType;
use sakila_e2e::chaos;
use sakila_e2e::{
    TestNamespace, cluster_manifest, delete_cluster_and_wait, wait_ready, wait_until,
};
use serde_json::json;

/// The writer's limit; each test stops it as soon as its change is done.
const WRITER_SECONDS: u64 = 600;
/// How long the operator may take to notice a spec change or the garbage collector to act.
const REACT_TIMEOUT: Duration = Duration::from_secs(120);

fn storage_condition(cluster: &MySQLCluster) -> Option<Condition> {
    cluster
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::StorageResized)
        .cloned()
}

fn is_ready(cluster: &MySQLCluster) -> bool {
    cluster.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == ConditionType::Ready && c.status == "True")
    })
}

async fn set_size(
    clusters: &Api<MySQLCluster>,
    name: &str,
    size: &str,
) -> kube::Result<MySQLCluster> {
    let patch = json!({"spec": {"storage": {"size": size}}});
    clusters
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}

/// Waits until the StorageResized condition describes generation `generation` with `reason`.
async fn wait_storage_reason(
    clusters: &Api<MySQLCluster>,
    name: &str,
    generation: i64,
    reason: &str,
) -> (MySQLCluster, Condition) {
    wait_until(
        &format!("StorageResized reason {reason} for generation {generation}"),
        REACT_TIMEOUT,
        || async {
            let cluster = clusters.get(name).await.ok()?;
            let condition = storage_condition(&cluster)?;
            (condition.reason == reason && condition.observed_generation == Some(generation))
                .then_some((cluster, condition))
        },
    )
    .await
}

fn claim_request(claim: &PersistentVolumeClaim) -> String {
    claim
        .spec
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap()["storage"]
        .0
        .clone()
}

#[tokio::test]
async fn growth_the_storage_class_refuses_is_reported_the_cluster_keeps_serving_and_undoing_it_clears_the_condition()
 {
    let manifest = cluster_manifest("grow", 1);
    let ns = chaos::cluster_under_writes("resize", manifest, WRITER_SECONDS)
        .await
        .ns;
    let clusters: Api<MySQLCluster> = ns.api();
    let (cluster, _) = wait_storage_reason(&clusters, "grow", 1, "VolumesAtSize").await;
    let volume_size = cluster.status.as_ref().unwrap().volume_size.clone();
    assert_eq!(volume_size.map(|q| q.0).as_deref(), Some("256Mi"));
    ns.sql(
        "grow",
        "grow-0",
        "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY)",
    )
    .await
    .expect("the primary takes writes");
    let statefulsets: Api<StatefulSet> = ns.api();
    let before = statefulsets.get("grow").await.unwrap();

    // Grow: local-path does not allow expansion.
    let grown = set_size(&clusters, "grow", "512Mi")
        .await
        .expect("growth is accepted");
    let generation = grown.metadata.generation.unwrap();
    let (cluster, condition) =
        wait_storage_reason(&clusters, "grow", generation, "VolumeExpansionNotSupported").await;
    println!("refused growth: {}", condition.message);
    assert_eq!(condition.status, "False");
    assert!(
        condition
            .message
            .contains("StorageClass standard does not allow volume expansion")
            && condition.message.contains("data-grow-0")
            && condition
                .message
                .contains("set spec.storage.size back to 256Mi"),
        "{}",
        condition.message
    );
    assert!(is_ready(&cluster), "the cluster stays Ready");

    let events: Api<Event> = ns.api();
    let warned = wait_until(
        "a VolumeExpansionNotSupported event",
        REACT_TIMEOUT,
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.reason.as_deref() == Some("VolumeExpansionNotSupported")
                    && e.type_.as_deref() == Some("Warning")
            })
        },
    )
    .await;
    assert!(warned.note.unwrap_or_default().contains("512Mi"));

    // Nothing else changed: the volume, the StatefulSet, and the cluster still takes writes.
    let claims: Api<PersistentVolumeClaim> = ns.api();
    assert_eq!(
        claim_request(&claims.get("data-grow-0").await.unwrap()),
        "256Mi"
    );
    let after = statefulsets.get("grow").await.unwrap();
    assert_eq!(
        after.metadata.generation, before.metadata.generation,
        "the StatefulSet was not rewritten"
    );
    ns.sql("grow", "grow-0", "INSERT INTO shop.orders VALUES (1)")
        .await
        .expect("the primary still takes writes");

    // Below the volumes' size: refused by the API server, naming the field.
    match set_size(&clusters, "grow", "128Mi").await {
        Ok(_) => panic!("the API server accepted spec.storage.size below the volumes' size"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status.message.contains("spec.storage.size")
                    && status.message.contains("cannot shrink"),
                "{}",
                status.message
            );
        }
        Err(other) => panic!("unexpected error: {other}"),
    }

    // Back to the size the volumes have: allowed (nothing ever shrinks), and the condition clears.
    let reverted = set_size(&clusters, "grow", "256Mi")
        .await
        .expect("going back to the volumes' size is accepted");
    let generation = reverted.metadata.generation.unwrap();
    let (cluster, condition) =
        wait_storage_reason(&clusters, "grow", generation, "VolumesAtSize").await;
    assert_eq!(condition.status, "True");
    assert!(is_ready(&cluster));
    let rows = ns
        .sql("grow", "grow-0", "SELECT COUNT(*) FROM shop.orders")
        .await
        .unwrap();
    assert_eq!(rows.trim(), "1");
    let outcome = chaos::stop_and_verify(&ns, "client", "grow", 1, 20).await;
    println!("writer during the refused growth: {outcome:?}");
}

#[tokio::test]
async fn a_deleted_cluster_keeps_its_volume_and_credentials_and_a_new_one_of_the_same_name_starts_on_the_data()
 {
    // The writer runs through the deletion and the new cluster: every write acknowledged before
    // the deletion must be served by the new cluster.
    let manifest = cluster_manifest("keep", 1);
    let ns = chaos::cluster_under_writes("retain", manifest, WRITER_SECONDS)
        .await
        .ns;
    // Some writes are acknowledged by the first cluster before it is deleted.
    tokio::time::sleep(Duration::from_secs(5)).await;
    ns.sql(
        "keep",
        "keep-0",
        "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, item TEXT); \
         INSERT INTO shop.orders VALUES (1, 'kept across clusters')",
    )
    .await
    .expect("the primary takes writes");
    let password = ns.root_password("keep").await;

    delete_cluster_and_wait(&ns, "keep").await;
    let claims: Api<PersistentVolumeClaim> = ns.api();
    let secrets: Api<Secret> = ns.api();
    // The garbage collector had its chance: the StatefulSet and the pods are gone.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        claims.get_opt("data-keep-0").await.unwrap().is_some(),
        "the volume is kept by default"
    );
    assert!(
        secrets.get_opt("keep-credentials").await.unwrap().is_some(),
        "the credentials are kept with the volume"
    );

    ns.create::<MySQLCluster>(cluster_manifest("keep", 1)).await;
    let cluster = wait_ready(&ns, "keep").await;
    assert_eq!(
        cluster.status.unwrap().current_primary.as_deref(),
        Some("keep-0")
    );
    assert_eq!(
        ns.root_password("keep").await,
        password,
        "the same passwords"
    );
    let row = ns
        .sql(
            "keep",
            "keep-0",
            "SELECT item FROM shop.orders WHERE id = 1",
        )
        .await
        .expect("the new cluster serves the old data");
    assert_eq!(row.trim(), "kept across clusters");
    ns.sql(
        "keep",
        "keep-0",
        "INSERT INTO shop.orders VALUES (2, 'new writes too')",
    )
    .await
    .expect("and takes writes");
    let outcome = chaos::stop_and_verify(&ns, "client", "keep", 1, 20).await;
    println!("writer across deletion and re-creation: {outcome:?}");
}

#[tokio::test]
async fn with_the_delete_policy_volumes_and_credentials_go_with_the_cluster() {
    let ns = TestNamespace::new("delete").await;
    let mut manifest = cluster_manifest("gone", 1);
    manifest["spec"]["storage"]["deletionPolicy"] = json!("Delete");
    ns.create::<MySQLCluster>(manifest).await;
    wait_ready(&ns, "gone").await;
    let claims: Api<PersistentVolumeClaim> = ns.api();
    assert!(claims.get_opt("data-gone-0").await.unwrap().is_some());

    delete_cluster_and_wait(&ns, "gone").await;
    let secrets: Api<Secret> = ns.api();
    wait_until(
        "the volume and the credentials deleted",
        REACT_TIMEOUT,
        || async {
            let claim_gone = claims.get_opt("data-gone-0").await.ok()?.is_none();
            let secret_gone = secrets.get_opt("gone-credentials").await.ok()?.is_none();
            (claim_gone && secret_gone).then_some(())
        },
    )
    .await;
}

/// A PersistentVolume of `class` on `node`'s directory `path`, with `labels`.
fn local_volume(
    name: &str,
    class: &str,
    node: &str,
    path: &str,
    labels: serde_json::Value,
) -> k8s_openapi::api::core::v1::PersistentVolume {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": class,
            "local": {"path": path},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
            ]}]}}
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn a_storage_selector_binds_each_instance_to_a_volume_an_administrator_prepared() {
    // The volumes' directories are made on the node, which only the testbed lets a test do.
    if std::env::var_os("SAKILA_TESTBED").is_none() {
        println!("SKIPPED: not on the testbed (SAKILA_TESTBED unset)");
        return;
    }
    use k8s_openapi::api::core::v1::{Node, PersistentVolume};
    use k8s_openapi::api::storage::v1::StorageClass;
    use kube::api::{DeleteParams, PostParams};

    let ns = TestNamespace::new("static-pv").await;
    let client = ns.client.clone();
    let node = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    // A class that provisions nothing: only volumes made by hand can bind.
    let class = format!("{}-manual", ns.name);
    let classes: Api<StorageClass> = Api::all(client.clone());
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
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let root = std::env::temp_dir().join(format!("sakila-{}", ns.name));
    let mut prepared = Vec::new();
    // Three volumes of the pool, and a decoy of the same class without its label.
    for (i, labels) in [
        json!({"pool": ns.name}),
        json!({"pool": ns.name}),
        json!({"pool": ns.name}),
        json!({}),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = root.join(i.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        // mysqld runs as uid 999; local volumes keep the directory's own ownership.
        std::process::Command::new("chmod")
            .args(["0777", dir.to_str().unwrap()])
            .status()
            .unwrap();
        let name = format!("{}-{i}", ns.name);
        let volume = local_volume(&name, &class, &node, dir.to_str().unwrap(), labels);
        volumes
            .create(&PostParams::default(), &volume)
            .await
            .unwrap();
        prepared.push(name);
    }

    let mut manifest = cluster_manifest("pinned", 3);
    manifest["spec"]["storage"] = json!({
        "size": "256Mi", "storageClassName": class, "deletionPolicy": "Delete",
        "selector": {"matchLabels": {"pool": ns.name}}
    });
    ns.create::<MySQLCluster>(manifest).await;
    wait_ready(&ns, "pinned").await;

    let claims: Api<PersistentVolumeClaim> = ns.api();
    let mut bound = Vec::new();
    for ordinal in 0..3 {
        let claim = claims.get(&format!("data-pinned-{ordinal}")).await.unwrap();
        let volume = claim.spec.unwrap().volume_name.unwrap();
        bound.push(volume);
    }
    bound.sort();
    assert_eq!(
        bound,
        prepared[..3],
        "each PVC bound to a volume of the pool"
    );
    let decoy = volumes.get(&prepared[3]).await.unwrap();
    assert_eq!(
        decoy.status.and_then(|s| s.phase).as_deref(),
        Some("Available"),
        "the unlabelled volume was left alone"
    );
    // The selector cannot change under the StatefulSet's claim template.
    let clusters: Api<MySQLCluster> = ns.api();
    let refused = clusters
        .patch(
            "pinned",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"spec": {"storage": {"selector": {"matchLabels": {"pool": "other"}}}}}),
            ),
        )
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("selector is immutable"),
        "{refused}"
    );

    delete_cluster_and_wait(&ns, "pinned").await;
    wait_until("the PVCs deleted", REACT_TIMEOUT, || async {
        claims
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    for name in &prepared {
        let _ = volumes.delete(name, &DeleteParams::default()).await;
    }
    let _ = classes.delete(&class, &DeleteParams::default()).await;
    let _ = std::fs::remove_dir_all(&root);
}
