//! The apply step: server-side apply of every child, skipped when nothing changed.
//!
//! Each child carries a hash of what the operator last applied; when the hash of the desired
//! object matches, no write is made, so a no-op reconcile makes zero write calls.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::Error;
use crate::resources::{Applied, Built, Resources, content_hash, naming};

/// How many children were written and how many were already up to date.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ApplyStats {
    pub written: usize,
    pub unchanged: usize,
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
