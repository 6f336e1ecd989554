//! Generated files must match what the code generates; regenerate with `make generate`.

use kube::CustomResourceExt;
use sakila::api::{MySQLBackup, MySQLCluster};

fn committed(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()))
}

#[test]
fn committed_crd_matches_the_rust_types() {
    let generated = serde_yaml::to_string(&MySQLCluster::crd()).unwrap();
    assert!(
        committed("crds/mysqlcluster.yaml") == generated,
        "crds/mysqlcluster.yaml is stale: run `make generate` and commit the result"
    );
}

#[test]
fn committed_backup_crd_matches_the_rust_types() {
    let generated = serde_yaml::to_string(&MySQLBackup::crd()).unwrap();
    assert!(
        committed("crds/mysqlbackup.yaml") == generated,
        "crds/mysqlbackup.yaml is stale: run `make generate` and commit the result"
    );
    assert!(
        committed("charts/sakila/crds/mysqlbackup.yaml") == generated,
        "charts/sakila/crds/mysqlbackup.yaml is stale: run `make generate` and commit the result"
    );
}
