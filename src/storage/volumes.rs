//! The IO around `decide_volumes`: read the cluster's PVCs and their StorageClasses, raise requests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::decide::{ClaimObservation, Expansion, VolumeObservation};
use super::quantity;
use crate::resources::naming;

/// Why the volumes could not be read or grown.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("failed to list the PersistentVolumeClaims")]
    ListClaims(#[source] kube::Error),
    #[error("failed to read StorageClass {name}")]
    ReadStorageClass {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to expand PersistentVolumeClaim {name}")]
    Expand {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl StorageError {
    /// A static category: the event reason and the metric label.
    pub fn category(&self) -> &'static str {
        match self {
            StorageError::ListClaims(_) | StorageError::ReadStorageClass { .. } => {
                "StorageReadFailed"
            }
            StorageError::Expand { .. } => "VolumeExpansionFailed",
        }
    }
}

/// Reads the cluster's data volumes, and the StorageClass of each volume smaller than `desired`
/// (only those: a cluster at its size costs one list call).
pub async fn observe_volumes(
    client: &Client,
    namespace: &str,
    cluster: &str,
    desired: &Quantity,
) -> Result<VolumeObservation, StorageError> {
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let listed = claims_api
        .list(&ListParams::default().labels(&selector(cluster)))
        .await
        .map_err(StorageError::ListClaims)?;
    let claims: Vec<ClaimObservation> = listed
        .items
        .iter()
        .filter_map(|c| claim(cluster, c))
        .collect();
    let versions = listed
        .items
        .iter()
        .map(|c| (c.name_any(), c.resource_version().unwrap_or_default()))
        .collect();

    let want = quantity::parse(desired);
    let smaller = |c: &&ClaimObservation| {
        let requested = c.requested.as_ref().and_then(quantity::parse);
        matches!((requested, want), (Some(r), Some(w)) if r < w)
    };
    let mut allows_expansion = BTreeMap::new();
    let classes_api: Api<StorageClass> = Api::all(client.clone());
    for name in claims
        .iter()
        .filter(smaller)
        .filter_map(|c| c.storage_class.clone())
    {
        if allows_expansion.contains_key(&name) {
            continue;
        }
        let class =
            classes_api
                .get_opt(&name)
                .await
                .map_err(|source| StorageError::ReadStorageClass {
                    name: name.clone(),
                    source,
                })?;
        if let Some(class) = class {
            allows_expansion.insert(name, class.allow_volume_expansion == Some(true));
        }
    }
    Ok(VolumeObservation {
        claims,
        allows_expansion,
        versions,
    })
}

/// The facts `decide_volumes` needs about one PVC, if it is one of the cluster's data volumes.
/// The ordinals whose data volume was created before the cluster: kept from an earlier cluster of
/// the same name, they may hold its history.
pub async fn volumes_older_than(
    client: &Client,
    namespace: &str,
    cluster: &str,
    created: &Time,
) -> Result<Vec<u8>, StorageError> {
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let listed = claims_api
        .list(&ListParams::default().labels(&selector(cluster)))
        .await
        .map_err(StorageError::ListClaims)?;
    Ok(older_than(cluster, &listed.items, created))
}

/// The ordinals of this cluster's data volumes created strictly before `created` (the API
/// server's timestamps, both of them, so no clock of the operator's is involved).
fn older_than(cluster: &str, claims: &[PersistentVolumeClaim], created: &Time) -> Vec<u8> {
    let mut ordinals: Vec<u8> = claims
        .iter()
        .filter(|c| {
            c.metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|t| t.0 < created.0)
        })
        .filter_map(|c| naming::data_claim_ordinal(cluster, &c.name_any()))
        .collect();
    ordinals.sort_unstable();
    ordinals
}

fn selector(cluster: &str) -> String {
    naming::selector_labels(cluster)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn claim(cluster: &str, pvc: &PersistentVolumeClaim) -> Option<ClaimObservation> {
    let name = pvc.name_any();
    let ordinal = naming::data_claim_ordinal(cluster, &name)?;
    let spec = pvc.spec.as_ref();
    let status = pvc.status.as_ref();
    Some(ClaimObservation {
        ordinal,
        requested: spec
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .cloned(),
        capacity: status
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage"))
            .cloned(),
        bound: status.and_then(|s| s.phase.as_deref()) == Some("Bound"),
        storage_class: spec.and_then(|s| s.storage_class_name.clone()),
        file_system_resize_pending: status.and_then(|s| s.conditions.as_ref()).is_some_and(
            |conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "FileSystemResizePending" && c.status == "True")
            },
        ),
        name,
    })
}

/// Raises each claim's storage request. A merge patch of the one field: the StatefulSet
/// controller created the claim and owns the rest of it.
pub async fn expand_volumes(
    client: &Client,
    namespace: &str,
    expansions: &[Expansion],
) -> Result<(), StorageError> {
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    for expansion in expansions {
        let patch = json!({"spec": {"resources": {"requests": {"storage": expansion.size}}}});
        claims_api
            .patch(
                &expansion.claim,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|source| StorageError::Expand {
                name: expansion.claim.clone(),
                source,
            })?;
        tracing::info!(claim = %expansion.claim, size = %expansion.size.0, "volume expansion requested");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pvc(value: serde_json::Value) -> PersistentVolumeClaim {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_bound_claim_is_read_with_its_request_capacity_class_and_resize_state() {
        let bound = pvc(json!({
            "metadata": {"name": "data-db-1"},
            "spec": {"storageClassName": "standard", "resources": {"requests": {"storage": "2Gi"}}},
            "status": {
                "phase": "Bound",
                "capacity": {"storage": "1Gi"},
                "conditions": [{"type": "FileSystemResizePending", "status": "True"}]
            }
        }));
        assert_eq!(
            claim("db", &bound),
            Some(ClaimObservation {
                name: "data-db-1".into(),
                ordinal: 1,
                requested: Some(Quantity("2Gi".into())),
                capacity: Some(Quantity("1Gi".into())),
                bound: true,
                storage_class: Some("standard".into()),
                file_system_resize_pending: true,
            })
        );
    }

    #[test]
    fn only_volumes_created_before_the_cluster_count_as_retained() {
        let created: Time = serde_json::from_value(json!("2026-11-28T10:00:00Z")).unwrap();
        let at =
            |name: &str, t: &str| pvc(json!({"metadata": {"name": name, "creationTimestamp": t}}));
        let claims = vec![
            at("data-db-2", "2026-11-27T09:00:00Z"),
            at("data-db-0", "2026-11-28T10:00:00Z"),
            at("data-db-1", "2026-11-28T09:59:59Z"),
            at("data-dbx-1", "2026-11-20T00:00:00Z"),
            pvc(json!({"metadata": {"name": "data-db-3"}})),
        ];
        assert_eq!(older_than("db", &claims, &created), vec![1, 2]);
    }

    #[test]
    fn claims_that_are_not_this_clusters_data_volumes_are_ignored() {
        for name in ["data-dbx-0", "other-db-0", "data-db-primary"] {
            let other = pvc(json!({"metadata": {"name": name}}));
            assert_eq!(claim("db", &other), None, "{name}");
        }
        let pending = claim("db", &pvc(json!({"metadata": {"name": "data-db-0"}}))).unwrap();
        assert!(!pending.bound);
    }
}
