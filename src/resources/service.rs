//! The three Services: headless (stable pod names), `-primary` (read-write), `-replicas` (read-only).

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{meta, naming};
use crate::api::ClientServiceSpec;
use crate::validate::ValidatedCluster;

fn mysql_port() -> Vec<ServicePort> {
    vec![ServicePort {
        name: Some("mysql".into()),
        port: naming::MYSQL_PORT,
        target_port: Some(IntOrString::String("mysql".into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }]
}

/// The headless Service: every pod, ready or not, gets `<pod>.<cluster>.<namespace>.svc`, which
/// replication and cloning need before a pod is ready.
pub fn build_headless_service(cluster: &ValidatedCluster) -> Service {
    Service {
        metadata: meta(cluster, naming::headless_service(&cluster.name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(naming::selector_labels(&cluster.name)),
            ports: Some(mysql_port()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn build_role_service(
    cluster: &ValidatedCluster,
    name: String,
    role: &str,
    client: &ClientServiceSpec,
) -> Service {
    let mut metadata = meta(cluster, name);
    if !client.annotations.is_empty() {
        metadata.annotations = Some(client.annotations.clone());
    }
    let mut selector = naming::selector_labels(&cluster.name);
    selector.insert(naming::ROLE_LABEL.into(), role.into());
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(client.type_.as_str().into()),
            selector: Some(selector),
            ports: Some(mysql_port()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `<name>-primary`: the one writable instance.
pub fn build_primary_service(cluster: &ValidatedCluster) -> Service {
    build_role_service(
        cluster,
        naming::primary_service(&cluster.name),
        naming::ROLE_PRIMARY,
        &cluster.primary_service,
    )
}

/// `<name>-replicas`: read-only instances.
pub fn build_replicas_service(cluster: &ValidatedCluster) -> Service {
    build_role_service(
        cluster,
        naming::replicas_service(&cluster.name),
        naming::ROLE_REPLICA,
        &cluster.replicas_service,
    )
}
