//! The IO around `decide_lost_nodes`: read the nodes under the cluster's pods that are not
//! Ready (a cluster whose pods are all Ready costs no request), the volumes of those on lost
//! nodes, and delete what keeps an instance on a lost node.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, Preconditions};
use kube::{Api, Client, ResourceExt};

use super::decide::{InstanceOnNode, NodeState, Replacement, VolumeReach};
use crate::resources::naming;

/// Why the nodes or volumes could not be read, or an instance not replaced.
#[derive(Debug, thiserror::Error)]
pub enum LostNodeError {
    #[error("failed to read node {name}")]
    ReadNode {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to read the volume of {claim}")]
    ReadVolume {
        claim: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to delete {what} of an instance on lost node {node}")]
    Delete {
        what: String,
        node: String,
        #[source]
        source: kube::Error,
    },
}

impl LostNodeError {
    /// A static category: the event reason and the metric label.
    pub fn category(&self) -> &'static str {
        match self {
            LostNodeError::ReadNode { .. } | LostNodeError::ReadVolume { .. } => "NodeReadFailed",
            LostNodeError::Delete { .. } => "InstanceReplacementFailed",
        }
    }
}

/// The cluster's instances whose pods are scheduled but not Ready (those at or above
/// `instances` too, which a scale-down removes), each with its node's state and, on a node that
/// is not Ready, its volume's reach.
pub async fn observe_lost_nodes(
    client: &Client,
    namespace: &str,
    cluster: &str,
    instances: u8,
    pods: &[Pod],
) -> Result<Vec<InstanceOnNode>, LostNodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut observed = Vec::new();
    for pod in pods {
        let Some(ordinal) = naming::ordinal_of(cluster, &pod.name_any()) else {
            continue;
        };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        if pod_ready(pod) {
            continue;
        }
        let read = nodes
            .get_opt(&node)
            .await
            .map_err(|source| LostNodeError::ReadNode {
                name: node.clone(),
                source,
            })?;
        let node_state = read.as_ref().map_or(NodeState::Gone, node_state);
        let claim = naming::data_claim(cluster, ordinal);
        let volume = match node_state {
            NodeState::Ready => None,
            _ => volume_reach(client, namespace, &claim).await?,
        };
        observed.push(InstanceOnNode {
            ordinal,
            pod: pod.name_any(),
            pod_uid: pod.uid().unwrap_or_default(),
            node,
            node_state,
            volume,
            claim,
            leaving: ordinal >= instances,
        });
    }
    Ok(observed)
}

fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Ready, or not since its Ready condition last changed. A node that reports no Ready condition
/// yet (just registered) is taken as Ready: nothing is known against it.
pub fn node_state(node: &Node) -> NodeState {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    match ready {
        Some(c) if c.status != "True" => NodeState::NotReady {
            since: c
                .last_transition_time
                .as_ref()
                .map_or_else(Timestamp::now, |t| t.0),
        },
        _ => NodeState::Ready,
    }
}

/// Where the claim's volume can be mounted; `None` for a claim that is missing or not bound.
async fn volume_reach(
    client: &Client,
    namespace: &str,
    claim: &str,
) -> Result<Option<VolumeReach>, LostNodeError> {
    let read_error = |source| LostNodeError::ReadVolume {
        claim: claim.to_string(),
        source,
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let Some(volume_name) = claims
        .get_opt(claim)
        .await
        .map_err(read_error)?
        .and_then(|c| c.spec?.volume_name)
    else {
        return Ok(None);
    };
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    Ok(volumes
        .get_opt(&volume_name)
        .await
        .map_err(read_error)?
        .map(|v| reach(&v)))
}

/// A local volume, or one whose node affinity names hosts in every term, stays on its node;
/// any other (no affinity, or one of zones) can be mounted elsewhere.
pub fn reach(volume: &PersistentVolume) -> VolumeReach {
    let Some(spec) = volume.spec.as_ref() else {
        return VolumeReach::Movable;
    };
    if spec.local.is_some() || spec.host_path.is_some() {
        return VolumeReach::NodeBound;
    }
    let terms = spec
        .node_affinity
        .as_ref()
        .and_then(|a| a.required.as_ref())
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or_default();
    let names_a_host = |term: &k8s_openapi::api::core::v1::NodeSelectorTerm| {
        let by_label = term.match_expressions.iter().flatten();
        let by_field = term.match_fields.iter().flatten();
        by_label.chain(by_field).any(|e| {
            (e.key == "kubernetes.io/hostname" || e.key == "metadata.name") && e.operator == "In"
        })
    };
    if !terms.is_empty() && terms.iter().all(names_a_host) {
        VolumeReach::NodeBound
    } else {
        VolumeReach::Movable
    }
}

/// Carries out a replacement: the claim first (it is kept until its pod is gone, and the
/// StatefulSet does not recreate the pod on a claim being deleted), then the pod, at once and
/// only if it is still the one on the lost node.
pub async fn replace_instance(
    client: &Client,
    namespace: &str,
    replacement: &Replacement,
) -> Result<(), LostNodeError> {
    let (pod, pod_uid, node) = match replacement {
        Replacement::Pod {
            pod, pod_uid, node, ..
        }
        | Replacement::ClaimAndPod {
            pod, pod_uid, node, ..
        } => (pod, pod_uid, node),
    };
    let delete_error = |what: String| {
        let node = node.clone();
        move |source| LostNodeError::Delete { what, node, source }
    };
    if let Replacement::ClaimAndPod { claim, .. } = replacement {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        claims
            .delete(claim, &DeleteParams::default())
            .await
            .map(|_| ())
            .or_else(ignore_not_found)
            .map_err(delete_error(format!("claim {claim}")))?;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(pod_uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    pods.delete(pod, &params)
        .await
        .map(|_| ())
        .or_else(ignore_not_found)
        .map_err(delete_error(format!("pod {pod}")))?;
    Ok(())
}

fn ignore_not_found(error: kube::Error) -> Result<(), kube::Error> {
    match &error {
        kube::Error::Api(response) if response.code == 404 => Ok(()),
        _ => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn volume(spec: serde_json::Value) -> PersistentVolume {
        serde_json::from_value(json!({"metadata": {"name": "pv"}, "spec": spec})).unwrap()
    }

    fn affinity(terms: serde_json::Value) -> serde_json::Value {
        json!({"nodeAffinity": {"required": {"nodeSelectorTerms": terms}}})
    }

    #[test]
    fn a_volume_is_node_bound_when_it_can_be_mounted_on_one_host_only() {
        let host = |name: &str| json!({"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [name]}]});
        let zone = json!({"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}]});
        let cases = [
            (
                "local-path (hostPath and hostname)",
                json!({"hostPath": {"path": "/x"}}),
                VolumeReach::NodeBound,
            ),
            (
                "local volume",
                json!({"local": {"path": "/x"}}),
                VolumeReach::NodeBound,
            ),
            (
                "hostname affinity",
                affinity(json!([host("n1")])),
                VolumeReach::NodeBound,
            ),
            (
                "hostname in every term",
                affinity(json!([host("n1"), host("n2")])),
                VolumeReach::NodeBound,
            ),
            (
                "zonal network disk",
                affinity(json!([zone])),
                VolumeReach::Movable,
            ),
            (
                "a term without a host",
                affinity(json!([host("n1"), zone])),
                VolumeReach::Movable,
            ),
            (
                "no affinity",
                json!({"csi": {"driver": "d", "volumeHandle": "h"}}),
                VolumeReach::Movable,
            ),
        ];
        for (name, spec, expected) in cases {
            assert_eq!(reach(&volume(spec)), expected, "{name}");
        }
    }

    #[test]
    fn a_node_is_not_ready_since_its_ready_condition_changed() {
        let node = |conditions: serde_json::Value| -> Node {
            serde_json::from_value(
                json!({"metadata": {"name": "n"}, "status": {"conditions": conditions}}),
            )
            .unwrap()
        };
        let since: Timestamp = "2026-11-30T09:00:00Z".parse().unwrap();
        for status in ["Unknown", "False"] {
            assert_eq!(
                node_state(&node(
                    json!([{"type": "Ready", "status": status, "lastTransitionTime": "2026-11-30T09:00:00Z"}])
                )),
                NodeState::NotReady { since },
                "{status}"
            );
        }
        assert_eq!(
            node_state(&node(json!([{"type": "Ready", "status": "True"}]))),
            NodeState::Ready
        );
        assert_eq!(node_state(&node(json!([]))), NodeState::Ready);
    }
}
