//! The platform itself: storage, DNS and Service routing work the way a MySQL cluster needs.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::Api;
use sakila_e2e::{TestNamespace, force_delete_pod, helper_image, wait_until};
use serde_json::json;

/// A one-pod StatefulSet `store` with a PVC from the default StorageClass, behind headless `store`.
async fn storage_statefulset(ns: &TestNamespace) {
    ns.create::<Service>(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "store"},
        "spec": {"clusterIP": "None", "selector": {"app": "store"}, "ports": [{"port": 80}]}
    }))
    .await;
    ns.create::<StatefulSet>(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "store"},
        "spec": {
            "serviceName": "store", "replicas": 1,
            "selector": {"matchLabels": {"app": "store"}},
            "template": {
                "metadata": {"labels": {"app": "store"}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{
                        "name": "main", "image": helper_image(), "imagePullPolicy": "IfNotPresent",
                        "command": ["sleep", "3600"],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]
                    }]
                }
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}}
            }]
        }
    }))
    .await;
}

async fn wait_running(ns: &TestNamespace, pod: &str) -> Pod {
    let pods: Api<Pod> = ns.api();
    wait_until(
        &format!("pod {pod} running"),
        Duration::from_secs(180),
        || async {
            let p = pods.get(pod).await.ok()?;
            let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
            (running && p.metadata.deletion_timestamp.is_none()).then_some(p)
        },
    )
    .await
}

#[tokio::test]
async fn statefulset_pvc_binds_and_keeps_its_data_across_a_pod_restart() {
    let ns = TestNamespace::new("storage").await;
    storage_statefulset(&ns).await;
    let first = wait_running(&ns, "store-0").await;

    let claims: Api<PersistentVolumeClaim> = ns.api();
    let claim = claims.get("data-store-0").await.expect("the PVC exists");
    assert_eq!(claim.status.and_then(|s| s.phase).as_deref(), Some("Bound"));
    assert!(
        claim.spec.and_then(|s| s.storage_class_name).is_some(),
        "the default StorageClass was applied to the claim"
    );

    ns.exec("store-0", "main", &["sh", "-c", "echo kept > /data/marker"])
        .await;
    force_delete_pod(&ns.api(), "store-0").await;
    let pods: Api<Pod> = ns.api();
    let second = wait_until(
        "store-0 replaced by a new pod",
        Duration::from_secs(180),
        || async {
            let p = pods.get("store-0").await.ok()?;
            let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
            (running && p.metadata.uid != first.metadata.uid).then_some(p)
        },
    )
    .await;
    assert_ne!(first.metadata.uid, second.metadata.uid);
    let marker = ns.exec("store-0", "main", &["cat", "/data/marker"]).await;
    assert_eq!(marker.trim(), "kept");
}

#[tokio::test]
async fn pod_name_under_a_headless_service_resolves_from_another_pod() {
    let ns = TestNamespace::new("dns").await;
    storage_statefulset(&ns).await;
    let store = wait_running(&ns, "store-0").await;
    let ip = store.status.and_then(|s| s.pod_ip).expect("pod has an IP");
    ns.client_pod("asker", &helper_image()).await;

    let name = format!("store-0.store.{}.svc", ns.name);
    let answer = wait_until(
        &format!("{name} to resolve"),
        Duration::from_secs(60),
        || async {
            ns.try_exec("asker", "client", &["getent", "hosts", &name])
                .await
                .ok()
        },
    )
    .await;
    assert!(
        answer.starts_with(&ip),
        "{name} resolved to {answer:?}, expected {ip}"
    );
}

#[tokio::test]
async fn cluster_ip_service_routes_to_its_pod() {
    let ns = TestNamespace::new("routing").await;
    // A one-line TCP server in perl (part of every Debian image) answers with a greeting.
    let server = r#"use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1) or die; while (my $c = $s->accept) { print $c "hello from the server\n"; close $c }"#;
    ns.create::<Pod>(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "server", "labels": {"app": "server"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "main", "image": helper_image(), "imagePullPolicy": "IfNotPresent",
                            "command": ["perl", "-e", server], "ports": [{"containerPort": 8080}]}]
        }
    }))
    .await;
    ns.create::<Service>(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "greeter"},
        "spec": {"selector": {"app": "server"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .await;
    wait_running(&ns, "server").await;
    ns.client_pod("caller", &helper_image()).await;

    let client = r#"use IO::Socket::INET; my $c = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => 80, Timeout => 3) or die "connect: $!"; print scalar <$c>"#;
    let target = format!("greeter.{}.svc", ns.name);
    let reply = wait_until(
        "the Service to route a connection",
        Duration::from_secs(60),
        || async {
            ns.try_exec("caller", "client", &["perl", "-e", client, &target])
                .await
                .ok()
        },
    )
    .await;
    assert_eq!(reply.trim(), "hello from the server");
}
