//! The PodDisruptionBudget: voluntary disruptions (drains) take one instance at a time.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{meta, naming};
use crate::validate::ValidatedCluster;

/// Builds the PodDisruptionBudget. One at a time keeps a quorum of semi-sync acknowledgers, and a
/// single-instance cluster can still be drained (its data stays on the PVC).
pub fn build_pod_disruption_budget(cluster: &ValidatedCluster) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(cluster, naming::pod_disruption_budget(&cluster.name)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(naming::selector_labels(&cluster.name)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
