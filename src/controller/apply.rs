//! The apply step: server-side apply of every child, skipped when nothing changed.
//!
//! Each child carries a hash of what the operator last applied; when the hash of the desired
//! object matches, no write is made, so a no-op reconcile makes zero write calls.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

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

/// Applies every child; the secret and configuration first, so the pods find them.
pub async fn apply_all(
    client: &Client,
    namespace: &str,
    resources: Resources<Built>,
) -> Result<(Resources<Applied>, ApplyStats), Error> {
    let mut stats = ApplyStats::default();
    let ns = namespace;
    apply_one(
        &Api::namespaced(client.clone(), ns),
        &resources.secret,
        &mut stats,
    )
    .await?;
    let config_maps = Api::namespaced(client.clone(), ns);
    for config_map in [&resources.online_config_map, &resources.config_map] {
        apply_one(&config_maps, config_map, &mut stats).await?;
    }
    let services = Api::namespaced(client.clone(), ns);
    for service in [
        &resources.headless_service,
        &resources.primary_service,
        &resources.replicas_service,
    ] {
        apply_one(&services, service, &mut stats).await?;
    }
    apply_one(
        &Api::namespaced(client.clone(), ns),
        &resources.statefulset,
        &mut stats,
    )
    .await?;
    apply_one(
        &Api::namespaced(client.clone(), ns),
        &resources.pod_disruption_budget,
        &mut stats,
    )
    .await?;
    Ok((resources.into_applied(), stats))
}

async fn apply_one<K>(api: &Api<K>, desired: &K, stats: &mut ApplyStats) -> Result<(), Error>
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
    let existing = api
        .get_metadata_opt(&name)
        .await
        .map_err(|source| Error::Fetch {
            what: format!("{kind} {name}"),
            source,
        })?;
    if let Some(existing) = &existing
        && !may_take_over(&existing.metadata, desired.meta())
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
        .and_then(|e| e.annotations().get(naming::APPLIED_HASH_ANNOTATION))
        == Some(&hash)
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
