//! Prints the CustomResourceDefinition YAML generated from the Rust types (committed under `crds/`).

use kube::CustomResourceExt;
use sakila::api::MySQLCluster;

fn main() -> Result<(), serde_yaml::Error> {
    print!("{}", serde_yaml::to_string(&MySQLCluster::crd())?);
    Ok(())
}
