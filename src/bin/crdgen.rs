//! Prints the CustomResourceDefinition YAML generated from the Rust types (committed under
//! `crds/`): `crdgen` the MySQLCluster's, `crdgen mysqlbackup` the MySQLBackup's.

use kube::CustomResourceExt;
use sakila::api::{MySQLBackup, MySQLCluster};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let crd = match std::env::args().nth(1).as_deref() {
        None | Some("mysqlcluster") => MySQLCluster::crd(),
        Some("mysqlbackup") => MySQLBackup::crd(),
        Some(other) => {
            return Err(format!("unknown CRD {other:?}: mysqlcluster or mysqlbackup").into());
        }
    };
    print!("{}", serde_yaml::to_string(&crd)?);
    Ok(())
}
