//! The metadata of the objects the operator owns, as watches keep it.
//!
//! - The children it applies and prunes (ConfigMaps, Services, the PodDisruptionBudget, the
//!   NetworkPolicy): a round at rest compares each child's applied hash here instead of reading
//!   it from the API server (issue 17: a probe round used to read every child).
//! - Its pods, volume claims and StatefulSet: a round at rest reuses what the round before it
//!   read of them while their resourceVersions here are the ones it read (`snapshot.rs`).
//!
//! Only ever trusted to say "unchanged"; anything else is read afresh (`apply::Known`). Secrets
//! are not watched: that would mean the right to list every Secret in the cluster.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{NamespaceResourceScope, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::resources::naming;

/// The watched children of one watch scope (every namespace, or one).
#[derive(Clone)]
pub struct ChildStores {
    config_maps: Store<PartialObjectMeta<ConfigMap>>,
    services: Store<PartialObjectMeta<Service>>,
    budgets: Store<PartialObjectMeta<PodDisruptionBudget>>,
    policies: Store<PartialObjectMeta<NetworkPolicy>>,
    pods: Store<PartialObjectMeta<Pod>>,
    claims: Store<PartialObjectMeta<PersistentVolumeClaim>>,
    statefulsets: Store<PartialObjectMeta<StatefulSet>>,
}

/// A kind of child kept in `ChildStores`.
pub trait WatchedChild:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    fn store(stores: &ChildStores) -> &Store<PartialObjectMeta<Self>>;
}

/// Each kind's store in `ChildStores`.
macro_rules! watched_child {
    ($($kind:ty => $field:ident),* $(,)?) => {
        $(impl WatchedChild for $kind {
            fn store(stores: &ChildStores) -> &Store<PartialObjectMeta<Self>> {
                &stores.$field
            }
        })*
    };
}

watched_child!(
    ConfigMap => config_maps,
    Service => services,
    PodDisruptionBudget => budgets,
    NetworkPolicy => policies,
    Pod => pods,
    PersistentVolumeClaim => claims,
    StatefulSet => statefulsets,
);

impl ChildStores {
    /// The child's metadata as last watched: `None` when the watch has not listed yet (nothing
    /// can be said), `Some(None)` when it saw no such object.
    pub fn get<K: WatchedChild>(&self, namespace: &str, name: &str) -> Option<Option<ObjectMeta>> {
        let store = K::store(self);
        if !synced(store) {
            return None;
        }
        let reference = ObjectRef::<PartialObjectMeta<K>>::new(name).within(namespace);
        Some(store.get(&reference).map(|o| o.metadata.clone()))
    }

    /// The names of the children of `K` in `namespace` whose labels include all of `labels`;
    /// `None` until the watch has listed.
    pub fn names<K: WatchedChild>(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Option<Vec<String>> {
        Some(self.versions::<K>(namespace, labels)?.into_keys().collect())
    }

    /// Those children's resourceVersions by name; `None` until the watch has listed.
    pub fn versions<K: WatchedChild>(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Option<BTreeMap<String, String>> {
        let store = K::store(self);
        if !synced(store) {
            return None;
        }
        Some(
            store
                .state()
                .iter()
                .filter(|o| o.metadata.namespace.as_deref() == Some(namespace))
                .filter(|o| {
                    let own = o.metadata.labels.as_ref();
                    labels
                        .iter()
                        .all(|(k, v)| own.and_then(|l| l.get(k)) == Some(v))
                })
                .filter_map(|o| {
                    let name = o.metadata.name.clone()?;
                    Some((
                        name,
                        o.metadata.resource_version.clone().unwrap_or_default(),
                    ))
                })
                .collect(),
        )
    }
}

/// Whether the store's first list arrived.
fn synced<K: Resource + Clone>(store: &Store<K>) -> bool
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

/// The stores of every watch scope, filled in as the controller starts.
#[derive(Default)]
pub struct ChildCache {
    /// By namespace; `None` for the scope of every namespace.
    scopes: Mutex<HashMap<Option<String>, ChildStores>>,
}

impl ChildCache {
    /// Registers the stores of a watch scope.
    pub fn register(&self, namespace: Option<String>, stores: ChildStores) {
        self.lock().insert(namespace, stores);
    }

    /// The stores that cover `namespace`, if the controller watches it.
    pub fn stores(&self, namespace: &str) -> Option<ChildStores> {
        let scopes = self.lock();
        scopes
            .get(&None)
            .or_else(|| scopes.get(&Some(namespace.to_string())))
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<String>, ChildStores>> {
        self.scopes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The stores of one scope and the watches that keep them, to be run until shutdown.
pub fn watch_children(
    client: &Client,
    namespace: Option<&str>,
) -> (ChildStores, BoxFuture<'static, ()>) {
    let (config_maps, config_maps_watch) = watch_kind::<ConfigMap>(client, namespace);
    let (services, services_watch) = watch_kind::<Service>(client, namespace);
    let (budgets, budgets_watch) = watch_kind::<PodDisruptionBudget>(client, namespace);
    let (policies, policies_watch) = watch_kind::<NetworkPolicy>(client, namespace);
    let (pods, pods_watch) = watch_kind::<Pod>(client, namespace);
    let (claims, claims_watch) = watch_kind::<PersistentVolumeClaim>(client, namespace);
    let (statefulsets, statefulsets_watch) = watch_kind::<StatefulSet>(client, namespace);
    let watches = async move {
        tokio::join!(
            config_maps_watch,
            services_watch,
            budgets_watch,
            policies_watch,
            pods_watch,
            claims_watch,
            statefulsets_watch
        );
    }
    .boxed();
    (
        ChildStores {
            config_maps,
            services,
            budgets,
            policies,
            pods,
            claims,
            statefulsets,
        },
        watches,
    )
}

fn watch_kind<K: WatchedChild>(
    client: &Client,
    namespace: Option<&str>,
) -> (Store<PartialObjectMeta<K>>, BoxFuture<'static, ()>) {
    // Metadata-only requests: `Api` of `PartialObjectMeta`.
    let api: Api<PartialObjectMeta<K>> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (store, writer) = reflector::store();
    let config = watcher::Config::default().labels(&naming::managed_selector());
    let watch = reflector(writer, watcher(api, config).default_backoff())
        .for_each(|event| async move {
            if let Err(e) = event {
                tracing::debug!(kind = %K::kind(&()), error = %e, "watch of children interrupted");
            }
        })
        .boxed();
    (store, watch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn config_map(namespace: &str, name: &str, cluster: &str) -> PartialObjectMeta<ConfigMap> {
        PartialObjectMeta {
            types: None,
            metadata: serde_json::from_value(json!({
                "name": name,
                "namespace": namespace,
                "resourceVersion": format!("{}", name.len()),
                "labels": naming::selector_labels(cluster),
            }))
            .unwrap(),
            _phantom: Default::default(),
        }
    }

    #[test]
    fn a_store_answers_only_once_its_watch_has_listed() {
        let (config_maps, mut writer) = reflector::store();
        let (services, _) = reflector::store();
        let (budgets, _) = reflector::store();
        let (policies, _) = reflector::store();
        let (pods, _) = reflector::store();
        let (claims, _) = reflector::store();
        let (statefulsets, _) = reflector::store();
        let stores = ChildStores {
            config_maps,
            services,
            budgets,
            policies,
            pods,
            claims,
            statefulsets,
        };
        assert_eq!(stores.get::<ConfigMap>("shop", "orders-online"), None);
        assert_eq!(
            stores.names::<ConfigMap>("shop", &naming::selector_labels("orders")),
            None
        );

        writer.apply_watcher_event(&Event::Init);
        for (ns, name, cluster) in [
            ("shop", "orders-online", "orders"),
            ("shop", "orders-config-abc", "orders"),
            ("shop", "orders-eu-config-def", "orders-eu"),
            ("other", "orders-config-ghi", "orders"),
        ] {
            writer.apply_watcher_event(&Event::InitApply(config_map(ns, name, cluster)));
        }
        writer.apply_watcher_event(&Event::InitDone);

        let seen = stores.get::<ConfigMap>("shop", "orders-online");
        assert_eq!(
            seen.flatten().and_then(|m| m.name).as_deref(),
            Some("orders-online")
        );
        assert_eq!(stores.get::<ConfigMap>("shop", "orders-gone"), Some(None));
        let mut names = stores
            .names::<ConfigMap>("shop", &naming::selector_labels("orders"))
            .unwrap();
        names.sort();
        assert_eq!(names, ["orders-config-abc", "orders-online"]);
        let versions = stores
            .versions::<ConfigMap>("shop", &naming::selector_labels("orders"))
            .unwrap();
        let expected: BTreeMap<String, String> = [
            ("orders-config-abc".to_string(), "17".to_string()),
            ("orders-online".to_string(), "13".to_string()),
        ]
        .into();
        assert_eq!(versions, expected, "each with its resourceVersion");
    }
}
