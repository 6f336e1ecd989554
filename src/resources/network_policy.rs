//! The NetworkPolicy of a cluster with `spec.networkPolicy.enabled`: MySQL's port only from the
//! cluster's own pods, the operator, the cluster's backup Jobs and the clients the user names.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{meta, naming};
use crate::validate::ValidatedCluster;

/// The policy, or `None` when the cluster has none (an existing one is then deleted).
pub fn build_network_policy(cluster: &ValidatedCluster) -> Option<NetworkPolicy> {
    let plan = cluster.network_policy.as_ref()?;
    let own_pods = NetworkPolicyPeer {
        pod_selector: Some(labels(naming::selector_labels(&cluster.name))),
        ..Default::default()
    };
    let (operator_key, operator_value) = naming::OPERATOR_POD_LABEL;
    let operator = NetworkPolicyPeer {
        namespace_selector: Some(labels(BTreeMap::from([(
            "kubernetes.io/metadata.name".to_string(),
            plan.operator_namespace.clone(),
        )]))),
        pod_selector: Some(labels(BTreeMap::from([(
            operator_key.to_string(),
            operator_value.to_string(),
        )]))),
        ..Default::default()
    };
    let (backup_key, backup_value) = crate::backup::job::BACKUP_POD_NAME_LABEL;
    // A backup's throwaway server clones an instance over 3306.
    let backups = NetworkPolicyPeer {
        pod_selector: Some(labels(BTreeMap::from([
            (backup_key.to_string(), backup_value.to_string()),
            (
                crate::backup::job::BACKUP_CLUSTER_LABEL.to_string(),
                cluster.name.clone(),
            ),
        ]))),
        ..Default::default()
    };
    let mut ingress = vec![NetworkPolicyIngressRule {
        from: Some(
            [own_pods, operator, backups]
                .into_iter()
                .chain(plan.allowed_clients.iter().cloned())
                .collect(),
        ),
        ports: Some(vec![tcp(naming::MYSQL_PORT)]),
    }];
    if cluster.exporter_image.is_some() {
        // No `from`: any scraper. Metrics say how busy the server is, not what it holds.
        ingress.push(NetworkPolicyIngressRule {
            from: None,
            ports: Some(vec![tcp(i32::from(crate::exporter::EXPORTER_PORT))]),
        });
    }
    Some(NetworkPolicy {
        metadata: meta(cluster, naming::network_policy(&cluster.name)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(labels(naming::selector_labels(&cluster.name))),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            egress: None,
        }),
    })
}

fn labels(match_labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(match_labels),
        ..Default::default()
    }
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::validated;
    use crate::validate::NetworkPolicyPlan;

    fn peers(rule: &NetworkPolicyIngressRule) -> Vec<serde_json::Value> {
        rule.from
            .iter()
            .flatten()
            .map(|p| serde_json::to_value(p).unwrap())
            .collect()
    }

    #[test]
    fn no_policy_unless_enabled() {
        assert_eq!(build_network_policy(&validated("db", 3)), None);
    }

    #[test]
    fn mysql_is_open_to_the_clusters_pods_the_operator_its_backups_and_the_named_clients_only() {
        let mut cluster = validated("db", 3);
        let app = NetworkPolicyPeer {
            pod_selector: Some(labels(BTreeMap::from([("app".into(), "shop".into())]))),
            ..Default::default()
        };
        cluster.network_policy = Some(NetworkPolicyPlan {
            operator_namespace: "sakila-system".into(),
            allowed_clients: vec![app],
        });
        let policy = build_network_policy(&cluster).unwrap();
        assert_eq!(policy.metadata.name.as_deref(), Some("db"));
        let spec = policy.spec.unwrap();
        assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
        assert_eq!(
            spec.pod_selector.unwrap().match_labels,
            Some(naming::selector_labels("db"))
        );
        let rules = spec.ingress.unwrap();
        assert_eq!(rules.len(), 1, "no exporter port without monitoring");
        assert_eq!(
            serde_json::to_value(&rules[0].ports).unwrap(),
            serde_json::json!([{"port": 3306, "protocol": "TCP"}])
        );
        assert_eq!(
            peers(&rules[0]),
            [
                serde_json::json!({"podSelector": {"matchLabels": {
                    "app.kubernetes.io/instance": "db", "app.kubernetes.io/name": "mysql"}}}),
                serde_json::json!({
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "sakila-system"}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "sakila-operator"}}
                }),
                serde_json::json!({"podSelector": {"matchLabels": {
                    "app.kubernetes.io/name": "sakila-backup", "mysql.sakila.dev/backup-of": "db"}}}),
                serde_json::json!({"podSelector": {"matchLabels": {"app": "shop"}}}),
            ]
        );
    }

    #[test]
    fn with_monitoring_the_exporter_port_is_open_to_scrapers() {
        let mut cluster = validated("db", 1);
        cluster.exporter_image = Some("registry.example/sakila:1.0".into());
        cluster.network_policy = Some(NetworkPolicyPlan {
            operator_namespace: "ops".into(),
            allowed_clients: vec![],
        });
        let rules = build_network_policy(&cluster)
            .unwrap()
            .spec
            .unwrap()
            .ingress
            .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].from, None);
        assert_eq!(
            serde_json::to_value(&rules[1].ports).unwrap(),
            serde_json::json!([{"port": 9104, "protocol": "TCP"}])
        );
    }
}
