//! Backups in the suite: the store `e2e/prepare` deployed (versitygw), its credentials copied into
//! a test's namespace, and `MySQLBackup`s created and waited for.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, Service};
use kube::Api;
use sakila::api::{MySQLBackup, MySQLBackupStatus};
use sakila::objectstore::{Credentials, ObjectStore, StoreConfig};
use serde_json::json;

use crate::{TestNamespace, wait_until};

/// The binary log archive of the cluster object `cluster` is now (its UID keys it), relative to
/// the store's path: `<namespace>/<cluster>/binlogs/<uid>`.
pub async fn archive_directory(ns: &TestNamespace, cluster: &str) -> String {
    let clusters: Api<sakila::api::MySQLCluster> = ns.api();
    let uid = clusters
        .get(cluster)
        .await
        .unwrap_or_else(|e| panic!("{cluster}: {e}"))
        .metadata
        .uid
        .expect("a created object has a UID");
    format!("{}/{cluster}/binlogs/{uid}", ns.name)
}

/// The store e2e/prepare deployed: its in-cluster URL, bucket and credentials.
pub struct TestStore {
    pub endpoint: String,
    pub bucket: String,
    pub namespace: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

pub async fn test_store(ns: &TestNamespace) -> TestStore {
    let var =
        |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by e2e/prepare"));
    let endpoint = var("SAKILA_OBJECTSTORE");
    let secret = var("SAKILA_OBJECTSTORE_SECRET");
    let (namespace, name) = secret.split_once('/').expect("namespace/name");
    let secret: Secret = Api::namespaced(ns.client.clone(), namespace)
        .get(name)
        .await
        .expect("e2e/prepare made the store's credentials Secret");
    let data = secret.data.expect("credentials");
    let text = |key: &str| String::from_utf8(data[key].0.clone()).unwrap();
    TestStore {
        endpoint,
        bucket: var("SAKILA_OBJECTSTORE_BUCKET"),
        namespace: namespace.to_string(),
        access_key_id: text("AWS_ACCESS_KEY_ID"),
        secret_access_key: text("AWS_SECRET_ACCESS_KEY"),
    }
}

/// Copies the store's credentials into the test's namespace as the Secret `name`, with a wrong
/// secret key when `wrong` is set.
pub async fn store_secret(ns: &TestNamespace, store: &TestStore, name: &str, wrong: bool) {
    let secret = if wrong {
        "not-the-secret-key".to_string()
    } else {
        store.secret_access_key.clone()
    };
    ns.create::<Secret>(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"access-key-id": store.access_key_id, "secret-access-key": secret}
    }))
    .await;
}

pub fn store_spec(store: &TestStore, secret: &str) -> serde_json::Value {
    json!({
        "endpoint": store.endpoint, "bucket": store.bucket, "path": "e2e",
        "credentialsSecret": secret
    })
}

pub fn backup_spec(store: &TestStore, secret: &str) -> serde_json::Value {
    json!({"store": store_spec(store, secret)})
}

/// The store as the test (outside the cluster) reaches it: through the ClusterIP of the Service
/// that its in-cluster endpoint names (`http://SERVICE.NAMESPACE.svc:PORT`).
pub async fn store_from_here(ns: &TestNamespace, store: &TestStore) -> ObjectStore {
    let authority = store
        .endpoint
        .split_once("://")
        .map_or(store.endpoint.as_str(), |(_, rest)| rest)
        .trim_end_matches('/');
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{} names its port", store.endpoint));
    let service_name = host.split('.').next().unwrap();
    let service: Service = Api::namespaced(ns.client.clone(), &store.namespace)
        .get(service_name)
        .await
        .unwrap_or_else(|e| panic!("Service {}/{service_name}: {e}", store.namespace));
    let ip = service.spec.unwrap().cluster_ip.unwrap();
    ObjectStore::new(StoreConfig {
        endpoint: format!("http://{ip}:{port}"),
        bucket: store.bucket.clone(),
        prefix: "e2e".into(),
        region: "us-east-1".into(),
        path_style: true,
        credentials: Credentials {
            access_key_id: store.access_key_id.clone(),
            secret_access_key: store.secret_access_key.clone(),
        },
        ca_bundle_pem: None,
    })
    .unwrap()
}

pub async fn create_backup(ns: &TestNamespace, name: &str, cluster: &str) {
    ns.create::<MySQLBackup>(json!({
        "apiVersion": "mysql.sakila.dev/v1alpha1", "kind": "MySQLBackup",
        "metadata": {"name": name},
        "spec": {"cluster": cluster}
    }))
    .await;
}

/// Waits until the backup's phase is one of `phases` and returns it.
pub async fn wait_phase(
    ns: &TestNamespace,
    name: &str,
    phases: &[&str],
    timeout: Duration,
) -> MySQLBackup {
    let backups: Api<MySQLBackup> = ns.api();
    wait_until(
        &format!("MySQLBackup {name} in {phases:?}"),
        timeout,
        || async {
            let backup = backups.get(name).await.ok()?;
            let phase = backup.status.as_ref()?.phase?;
            phases.contains(&phase.as_str()).then_some(backup)
        },
    )
    .await
}

/// Waits until the backup has ended and returns its status; it must have completed.
pub async fn wait_completed(
    ns: &TestNamespace,
    name: &str,
    timeout: Duration,
) -> MySQLBackupStatus {
    let backup = wait_phase(ns, name, &["Completed", "Failed"], timeout).await;
    let status = backup.status.expect("an ended backup has a status");
    assert_eq!(
        status.phase.map(|p| p.as_str()),
        Some("Completed"),
        "{:?}",
        status.message
    );
    status
}
