//! Builds the controller: watches the clusters, the StatefulSets they own and their pods.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, CustomResourceExt, ResourceExt};

use super::context::Context;
use super::reconcile::{error_policy, reconcile};
use crate::api::MySQLCluster;

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    context: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    // Watched as dynamic objects so one malformed cluster is reported as its own error.
    let resource = ApiResource::erase::<MySQLCluster>(&());
    let clusters: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let pods: Api<Pod> = Api::all(client.clone());
    let statefulsets: Api<StatefulSet> = Api::all(client.clone());
    let managed = watcher::Config::default().labels("app.kubernetes.io/managed-by=sakila");

    tracing::info!(crd = %MySQLCluster::crd_name(), "starting controller");
    Controller::new_with(clusters, watcher::Config::default(), resource.clone())
        .owns(statefulsets, managed.clone())
        // Pods belong to the StatefulSet, not the cluster: map them back by label, so a deleted
        // or failing pod wakes its cluster's reconcile at once.
        .watches(pods, managed, move |pod| {
            let instance = pod.labels().get("app.kubernetes.io/instance").cloned();
            let namespace = pod.namespace();
            let resource = resource.clone();
            instance.into_iter().map(move |name| {
                let mut reference = ObjectRef::new_with(&name, resource.clone());
                if let Some(ns) = &namespace {
                    reference = reference.within(ns);
                }
                reference
            })
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(cluster = %object, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile did not complete"),
            }
        })
        .await;
}
