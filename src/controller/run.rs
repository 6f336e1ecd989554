//! Builds the controller: watches the clusters, the StatefulSets they own and their pods, in the
//! whole cluster or in a list of namespaces (one controller per namespace).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, CustomResourceExt, ResourceExt};
use tokio::sync::watch;
use tracing::Instrument;

use super::children::watch_children;
use super::context::Context;
use super::error::Error;
use super::reconcile::{error_policy, reconcile};
use crate::api::MySQLCluster;
use crate::http::Health;
use crate::metrics::Metrics;
use crate::resources::naming;

/// Where the controller looks for MySQLClusters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (needs ClusterRoles).
    Cluster,
    /// Only these namespaces (Roles in each suffice).
    Namespaces(Vec<String>),
}

/// Runs the controller until `shutdown` turns true and the reconciles in flight have finished.
pub async fn run(
    client: Client,
    context: Arc<Context>,
    scope: Scope,
    shutdown: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) {
    tracing::info!(crd = %MySQLCluster::crd_name(), ?scope, "starting controller");
    let namespaces = match scope.clone() {
        Scope::Cluster => vec![None],
        Scope::Namespaces(list) => list.into_iter().map(Some).collect(),
    };
    let mut stores = Vec::new();
    let mut controllers = Vec::new();
    let mut child_watches = Vec::new();
    for namespace in namespaces {
        let (children, watches) = watch_children(&client, namespace.as_deref());
        context.children.register(namespace.clone(), children);
        child_watches.push(watches);
        let controller = controller(client.clone(), namespace.as_deref());
        let store = controller.store();
        metrics.watch_clusters(store.clone());
        stores.push(store);
        let mut stop = shutdown.clone();
        let metrics = metrics.clone();
        let context = context.clone();
        controllers.push(
            controller
                .graceful_shutdown_on(async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                })
                .run(
                    move |object, ctx| measured(object, ctx, metrics.clone()),
                    error_policy,
                    context,
                )
                .for_each(|result| async move {
                    match result {
                        Ok((object, _)) => tracing::debug!(cluster = %object, "reconciled"),
                        Err(e) => tracing::debug!(error = %e, "reconcile did not complete"),
                    }
                }),
        );
    }
    let forget = forget_deleted_clusters(stores.clone(), context.clone(), shutdown.clone());
    let backups = crate::backup::controller::run(context.clone(), scope, shutdown.clone());
    let synced = async move {
        for store in stores {
            if store.wait_until_ready().await.is_err() {
                return;
            }
        }
        tracing::info!("caches synced");
        health.set_synced();
    };
    // The watches of children end with the controllers: they serve no one after.
    let mut stop_watching = shutdown.clone();
    let child_watches = async move {
        tokio::select! {
            _ = futures::future::join_all(child_watches) => {}
            _ = stop_watching.wait_for(|stop| *stop) => {}
        }
    };
    tokio::join!(
        futures::future::join_all(controllers),
        synced,
        forget,
        child_watches,
        backups
    );
}

/// How often the memory of clusters that were deleted is dropped.
const FORGET_INTERVAL: Duration = Duration::from_secs(60);

/// Drops, every `FORGET_INTERVAL` until shutdown, what the context remembers of clusters no
/// longer in the watched stores: the controller is never called for a deleted cluster.
async fn forget_deleted_clusters(
    stores: Vec<Store<DynamicObject>>,
    context: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Before its first sync a store is empty and would make every cluster look deleted.
    let synced = async {
        for store in &stores {
            if store.wait_until_ready().await.is_err() {
                return false;
            }
        }
        true
    };
    tokio::select! {
        _ = shutdown.wait_for(|stop| *stop) => return,
        synced = synced => if !synced { return },
    }
    let mut ticks = tokio::time::interval(FORGET_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = ticks.tick() => {}
        }
        let live: HashSet<String> = stores
            .iter()
            .flat_map(|store| store.state())
            .filter_map(|cluster| cluster.uid())
            .collect();
        context.memory.forget_all_but(&live);
        context.archivers.forget_all_but(&live);
    }
}

fn controller(client: Client, namespace: Option<&str>) -> Controller<DynamicObject> {
    // Watched as dynamic objects so one malformed cluster is reported as its own error.
    let resource = ApiResource::erase::<MySQLCluster>(&());
    let (clusters, pods, statefulsets): (Api<DynamicObject>, Api<Pod>, Api<StatefulSet>) =
        match namespace {
            None => (
                Api::all_with(client.clone(), &resource),
                Api::all(client.clone()),
                Api::all(client),
            ),
            Some(ns) => (
                Api::namespaced_with(client.clone(), ns, &resource),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client, ns),
            ),
        };
    let managed = watcher::Config::default().labels(&naming::managed_selector());
    Controller::new_with(clusters, watcher::Config::default(), resource.clone())
        .owns(statefulsets, managed.clone())
        // Pods belong to the StatefulSet, not the cluster: map them back by label, so a deleted
        // or failing pod wakes its cluster's reconcile at once.
        .watches(pods, managed, move |pod| {
            let instance = pod.labels().get(naming::INSTANCE_LABEL).cloned();
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
}

/// One reconcile, timed and counted; the span names the cluster for every log line inside.
async fn measured(
    object: Arc<DynamicObject>,
    ctx: Arc<Context>,
    metrics: Arc<Metrics>,
) -> Result<Action, Error> {
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    // `cluster`, not `name`: JSON logs already use `name` for the span's own name.
    let span = tracing::info_span!("reconcile", namespace = %namespace, cluster = %name);
    let start = Instant::now();
    let result = reconcile(object, ctx).instrument(span).await;
    let category = result.as_ref().err().map(Error::category);
    metrics.reconciled(&namespace, &name, category, start.elapsed());
    result
}
