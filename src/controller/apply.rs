//! The apply step: server-side apply of every child, skipped when nothing changed.
//!
//! Each child carries a hash of what the operator last applied; when the hash of the desired
//! object matches, no write is made, so a no-op reconcile makes zero write calls. The hash is
//! read from what the round fetched anyway (the Secret, the StatefulSet) or from the watches of
//! the other children (`children`), so a round at rest makes no request for them either.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::children::{ChildStores, WatchedChild};
use super::error::Error;
use crate::resources::{Applied, Built, Resources, content_hash, naming};

/// How many children were written and how many were already up to date.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    pub written: usize,
    pub unchanged: usize,
    /// Objects that already exist under a child's name and that the operator does not own
    /// (`Kind name`): left alone, and reported.
    pub not_owned: Vec<String>,
}

/// Whether an existing object under a child's name is the operator's to overwrite: it is
/// controlled by this cluster (its UID in the owner references), or it carries the labels of
/// a Sakila cluster of this name (the credentials kept from an earlier cluster of the same name,
/// which has no owner while it waits for its successor). Anything else belongs to someone else:
/// server-side apply with force would take it over, and the garbage collector would delete it
/// with the cluster.
pub fn may_take_over(existing: &ObjectMeta, desired: &ObjectMeta) -> bool {
    let owned_by_this_cluster = existing.owner_references.iter().flatten().any(|theirs| {
        desired
            .owner_references
            .iter()
            .flatten()
            .any(|ours| ours.uid == theirs.uid)
    });
    let label =
        |meta: &ObjectMeta, key: &str| meta.labels.as_ref().and_then(|l| l.get(key)).cloned();
    let made_by_sakila_for_this_name = label(existing, naming::MANAGED_BY_LABEL).as_deref()
        == Some(naming::MANAGED_BY)
        && label(existing, naming::INSTANCE_LABEL).is_some()
        && label(existing, naming::INSTANCE_LABEL) == label(desired, naming::INSTANCE_LABEL);
    owned_by_this_cluster || made_by_sakila_for_this_name
}

/// What the round knows of a child before applying it.
#[derive(Clone, Debug)]
pub enum Known {
    /// Read this round: as it is (`None`: there is none).
    Fetched(Option<ObjectMeta>),
    /// As a watch last saw it (`None`: the watch has not listed yet): trusted only to say the
    /// child is up to date; anything else is read afresh, as the watch may lag behind.
    Watched(Option<Option<ObjectMeta>>),
}

/// What the round fetched of the children it reads anyway.
pub struct Fetched<'a> {
    pub secret: Option<&'a ObjectMeta>,
    pub tls_secret: Option<&'a ObjectMeta>,
    pub statefulset: Option<&'a ObjectMeta>,
}

/// Applies every child; the secret and configuration first, so the pods find them.
pub async fn apply_all(
    client: &Client,
    namespace: &str,
    resources: Resources<Built>,
    fetched: Fetched<'_>,
    watched: Option<&ChildStores>,
) -> Result<(Resources<Applied>, ApplyStats), Error> {
    let mut stats = ApplyStats::default();
    let ns = namespace;
    apply_one(
        &Api::namespaced(client.clone(), ns),
        &resources.secret,
        Known::Fetched(fetched.secret.cloned()),
        &mut stats,
    )
    .await?;
    if let Some(tls_secret) = &resources.tls_secret {
        apply_one(
            &Api::namespaced(client.clone(), ns),
            tls_secret,
            Known::Fetched(fetched.tls_secret.cloned()),
            &mut stats,
        )
        .await?;
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for config_map in [&resources.online_config_map, &resources.config_map] {
        let known = watched_child(watched, namespace, config_map);
        apply_one(&config_maps, config_map, known, &mut stats).await?;
    }
    match &resources.restore_config_map {
        Some(config_map) => {
            let known = watched_child(watched, namespace, config_map);
            apply_one(&config_maps, config_map, known, &mut stats).await?;
        }
        None => {
            let name = naming::restore_config_map(&resources.statefulset.name_any());
            remove_unwanted(&config_maps, &name, resources.statefulset.meta(), watched).await;
        }
    }
    let services = Api::namespaced(client.clone(), ns);
    for service in [
        &resources.headless_service,
        &resources.primary_service,
        &resources.replicas_service,
    ] {
        let known = watched_child(watched, namespace, service);
        apply_one(&services, service, known, &mut stats).await?;
    }
    apply_one(
        &Api::namespaced(client.clone(), ns),
        &resources.statefulset,
        Known::Fetched(fetched.statefulset.cloned()),
        &mut stats,
    )
    .await?;
    let budget = &resources.pod_disruption_budget;
    apply_one(
        &Api::namespaced(client.clone(), ns),
        budget,
        watched_child(watched, namespace, budget),
        &mut stats,
    )
    .await?;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    match &resources.network_policy {
        Some(policy) => {
            let known = watched_child(watched, namespace, policy);
            apply_one(&policies, policy, known, &mut stats).await?;
        }
        None => {
            let name = naming::network_policy(&resources.statefulset.name_any());
            remove_unwanted(&policies, &name, resources.statefulset.meta(), watched).await;
        }
    }
    Ok((resources.into_applied(), stats))
}

/// Deletes the child `name` of kind `K` that the cluster no longer wants, if the watch shows
/// one the operator may take over (never a user's object of that name). Nothing is read: until
/// the watch has listed, the next round looks again; a failed delete is logged and retried by
/// the next round, as for unused ConfigMaps.
async fn remove_unwanted<K>(
    api: &Api<K>,
    name: &str,
    ours: &ObjectMeta,
    watched: Option<&ChildStores>,
) where
    K: WatchedChild + k8s_openapi::Resource,
{
    let namespace = ours.namespace.as_deref().unwrap_or_default();
    let Some(Some(existing)) = watched.and_then(|s| s.get::<K>(namespace, name)) else {
        return;
    };
    if !may_take_over(&existing, ours) {
        return;
    }
    let kind = K::KIND;
    match api.delete(name, &Default::default()).await {
        Ok(_) => tracing::info!(kind, name, "deleted a child the cluster no longer wants"),
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => tracing::warn!(kind, name, error = %e, "could not delete an unwanted child"),
    }
}

fn watched_child<K: WatchedChild>(
    watched: Option<&ChildStores>,
    namespace: &str,
    desired: &K,
) -> Known {
    Known::Watched(watched.and_then(|stores| stores.get::<K>(namespace, &desired.name_any())))
}

/// Whether the watch says the child is up to date, so that it need not be read.
fn up_to_date_as_watched(known: &Known, desired: &ObjectMeta, hash: &str) -> bool {
    matches!(known, Known::Watched(Some(Some(seen))) if up_to_date(seen, desired, hash))
}

/// Whether `existing` is the operator's child as `hash` describes it: nothing to write.
fn up_to_date(existing: &ObjectMeta, desired: &ObjectMeta, hash: &str) -> bool {
    may_take_over(existing, desired)
        && existing
            .annotations
            .as_ref()
            .and_then(|a| a.get(naming::APPLIED_HASH_ANNOTATION))
            .map(String::as_str)
            == Some(hash)
}

async fn apply_one<K>(
    api: &Api<K>,
    desired: &K,
    known: Known,
    stats: &mut ApplyStats,
) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + k8s_openapi::Resource,
{
    let name = desired.name_any();
    let kind = K::KIND;
    let hash = content_hash(desired);
    if up_to_date_as_watched(&known, desired.meta(), &hash) {
        stats.unchanged += 1;
        return Ok(());
    }
    let existing = match known {
        Known::Fetched(meta) => meta,
        Known::Watched(_) => api
            .get_metadata_opt(&name)
            .await
            .map_err(|source| Error::Fetch {
                what: format!("{kind} {name}"),
                source,
            })?
            .map(|m| m.metadata),
    };
    if let Some(existing) = &existing
        && !may_take_over(existing, desired.meta())
    {
        tracing::warn!(
            kind,
            name,
            "an object the operator does not own has a child's name; left alone"
        );
        stats.not_owned.push(format!("{kind} {name}"));
        return Ok(());
    }
    if existing
        .as_ref()
        .is_some_and(|e| up_to_date(e, desired.meta(), &hash))
    {
        stats.unchanged += 1;
        return Ok(());
    }
    let mut stamped = desired.clone();
    stamped
        .annotations_mut()
        .insert(naming::APPLIED_HASH_ANNOTATION.into(), hash);
    let params = PatchParams::apply(naming::FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(&stamped))
        .await
        .map_err(|source| Error::Apply {
            kind,
            name: name.clone(),
            source,
        })?;
    tracing::info!(kind, name, "applied");
    stats.written += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(value: serde_json::Value) -> ObjectMeta {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn only_a_watched_child_of_this_cluster_with_the_same_hash_spares_the_read() {
        let desired = meta(json!({
            "name": "orders-primary",
            "ownerReferences": [{"apiVersion": "mysql.sakila.dev/v1alpha1", "kind": "MySQLCluster",
                "name": "orders", "uid": "uid-now", "controller": true}]
        }));
        let child = |hash: &str, owner: &str| {
            Some(meta(json!({
                "name": "orders-primary",
                "annotations": {naming::APPLIED_HASH_ANNOTATION: hash},
                "ownerReferences": [{"apiVersion": "v1", "kind": "MySQLCluster", "name": "orders", "uid": owner}]
            })))
        };
        let rows = [
            (
                "watched, same hash",
                Known::Watched(Some(child("h1", "uid-now"))),
                true,
            ),
            (
                "watched, another hash",
                Known::Watched(Some(child("h0", "uid-now"))),
                false,
            ),
            (
                "watched, someone else's",
                Known::Watched(Some(child("h1", "uid-other"))),
                false,
            ),
            (
                "watched, absent (it may be new)",
                Known::Watched(Some(None)),
                false,
            ),
            ("the watch has not listed yet", Known::Watched(None), false),
            // Fetched children are judged after the fetch, like read ones.
            (
                "fetched, same hash",
                Known::Fetched(child("h1", "uid-now")),
                false,
            ),
        ];
        for (name, known, expected) in rows {
            assert_eq!(
                up_to_date_as_watched(&known, &desired, "h1"),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn only_objects_of_this_cluster_or_made_by_sakila_for_its_name_are_taken_over() {
        let desired = meta(json!({
            "name": "orders-primary",
            "labels": {"app.kubernetes.io/managed-by": "sakila", "app.kubernetes.io/instance": "orders"},
            "ownerReferences": [{"apiVersion": "mysql.sakila.dev/v1alpha1", "kind": "MySQLCluster",
                "name": "orders", "uid": "uid-now", "controller": true}]
        }));
        let rows = [
            (
                "owned by this cluster",
                json!({"ownerReferences": [{"apiVersion": "v1", "kind": "MySQLCluster", "name": "orders", "uid": "uid-now"}]}),
                true,
            ),
            (
                "kept credentials of an earlier cluster of the name",
                json!({"labels": {"app.kubernetes.io/managed-by": "sakila", "app.kubernetes.io/instance": "orders"}}),
                true,
            ),
            (
                "a user's object",
                json!({"labels": {"app": "orders"}}),
                false,
            ),
            (
                "another cluster's child",
                json!({"labels": {"app.kubernetes.io/managed-by": "sakila", "app.kubernetes.io/instance": "orders-primary"}}),
                false,
            ),
            (
                "owned by something else",
                json!({"ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "uid-web"}]}),
                false,
            ),
            (
                "made by another tool",
                json!({"labels": {"app.kubernetes.io/managed-by": "helm", "app.kubernetes.io/instance": "orders"}}),
                false,
            ),
        ];
        for (name, existing, expected) in rows {
            assert_eq!(may_take_over(&meta(existing), &desired), expected, "{name}");
        }
    }
}
