//! The Prometheus registry, served as text on `/metrics`.
//!
//! Labels are bounded: namespace, cluster name and small enums; an error's free-form message
//! never becomes a label, only its static `category()`.

use std::sync::Mutex;
use std::time::Duration;

use kube::ResourceExt;
use kube::core::DynamicObject;
use kube::runtime::reflector::Store;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::conditions::ConditionType;

/// How a reconcile ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Error,
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let value = match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
        };
        EncodeLabelValue::encode(&value, encoder)
    }
}

/// The `Ready` condition of a cluster as a label value.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReadyState {
    True,
    False,
    Unknown,
}

impl EncodeLabelValue for ReadyState {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let value = match self {
            ReadyState::True => "true",
            ReadyState::False => "false",
            ReadyState::Unknown => "unknown",
        };
        EncodeLabelValue::encode(&value, encoder)
    }
}

const READY_STATES: [ReadyState; 3] = [ReadyState::True, ReadyState::False, ReadyState::Unknown];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    namespace: String,
    cluster: String,
    result: Outcome,
    /// The error's static category; empty on success.
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    result: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    namespace: String,
    cluster: String,
    ready: ReadyState,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    durations: Family<DurationLabels, Histogram>,
    clusters: Family<ReadyLabels, Gauge>,
    leader: Gauge,
    /// The controllers' caches of MySQLClusters, read at scrape time for the Ready gauge.
    stores: Mutex<Vec<Store<DynamicObject>>>,
    /// One scrape at a time: the Ready gauge is rebuilt on each.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn duration_histogram() -> Histogram {
    // 5 ms .. ~41 s: a no-op reconcile takes milliseconds, one that waits on MySQL seconds.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Metrics {
    /// A registry with every metric registered and zero samples.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sakila");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles of MySQLClusters by result and error category",
            reconciles.clone(),
        );
        let durations = Family::<DurationLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile of a MySQLCluster took, by result",
            durations.clone(),
        );
        let clusters = Family::<ReadyLabels, Gauge>::default();
        registry.register(
            "cluster_ready",
            "1 for the state of each MySQLCluster's Ready condition, 0 for the other states",
            clusters.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this operator replica holds the leader lease and reconciles",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            durations,
            clusters,
            leader,
            stores: Mutex::new(Vec::new()),
            scrape: Mutex::new(()),
        }
    }

    /// Counts one reconcile of `namespace/cluster`; `error_category` is `None` on success.
    pub fn reconciled(
        &self,
        namespace: &str,
        cluster: &str,
        error_category: Option<&'static str>,
        took: Duration,
    ) {
        let result = match error_category {
            None => Outcome::Success,
            Some(_) => Outcome::Error,
        };
        self.reconciles
            .get_or_create(&ReconcileLabels {
                namespace: namespace.to_string(),
                cluster: cluster.to_string(),
                result,
                category: error_category.unwrap_or(""),
            })
            .inc();
        self.durations
            .get_or_create(&DurationLabels { result })
            .observe(took.as_secs_f64());
    }

    /// Sets `sakila_leader`.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Adds a controller's cache of clusters to the ones the Ready gauge is computed from.
    pub fn watch_clusters(&self, store: Store<DynamicObject>) {
        self.stores.lock().unwrap().push(store);
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap();
        // Rebuilt from the caches, so a deleted cluster's series disappear with it.
        self.clusters.clear();
        for store in self.stores.lock().unwrap().iter() {
            for cluster in store.state() {
                let namespace = cluster.namespace().unwrap_or_default();
                let state = ready_state(&cluster);
                for candidate in READY_STATES {
                    self.clusters
                        .get_or_create(&ReadyLabels {
                            namespace: namespace.clone(),
                            cluster: cluster.name_any(),
                            ready: candidate,
                        })
                        .set(i64::from(candidate == state));
                }
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The status of the `Ready` condition of a cluster read as an untyped object.
pub fn ready_state(cluster: &DynamicObject) -> ReadyState {
    let conditions = cluster.data["status"]["conditions"].as_array();
    let ready = conditions.and_then(|cs| {
        cs.iter()
            .find(|c| c["type"] == ConditionType::Ready.as_str())
    });
    match ready.and_then(|c| c["status"].as_str()) {
        Some("True") => ReadyState::True,
        Some("False") => ReadyState::False,
        _ => ReadyState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::{ApiResource, ObjectMeta};
    use serde_json::json;

    fn cluster(status: serde_json::Value) -> DynamicObject {
        let resource = ApiResource::erase::<crate::api::MySQLCluster>(&());
        let mut object = DynamicObject::new("db", &resource).within("shop");
        object.metadata = ObjectMeta {
            name: Some("db".into()),
            namespace: Some("shop".into()),
            ..ObjectMeta::default()
        };
        object.data = json!({ "status": status });
        object
    }

    #[test]
    fn the_ready_state_follows_the_ready_condition_and_is_unknown_without_one() {
        let cases = [
            (
                json!({"conditions": [{"type": "Ready", "status": "True"}]}),
                ReadyState::True,
            ),
            (
                json!({"conditions": [{"type": "Ready", "status": "False"}]}),
                ReadyState::False,
            ),
            (
                json!({"conditions": [{"type": "Progressing", "status": "True"}]}),
                ReadyState::Unknown,
            ),
            (json!(null), ReadyState::Unknown),
        ];
        for (status, expected) in cases {
            assert_eq!(ready_state(&cluster(status.clone())), expected, "{status}");
        }
    }

    #[test]
    fn reconciles_are_labelled_by_cluster_result_and_category_only() {
        let metrics = Metrics::new();
        metrics.reconciled("shop", "db", None, Duration::from_millis(20));
        metrics.reconciled("shop", "db", Some("ApplyFailed"), Duration::from_millis(20));
        metrics.set_leader(true);
        let text = metrics.render();
        assert!(text.contains(
            r#"sakila_reconciles_total{namespace="shop",cluster="db",result="success",category=""} 1"#
        ), "{text}");
        assert!(text.contains(
            r#"sakila_reconciles_total{namespace="shop",cluster="db",result="error",category="ApplyFailed"} 1"#
        ), "{text}");
        assert!(
            text.contains(r#"sakila_reconcile_duration_seconds_count{result="error"} 1"#),
            "{text}"
        );
        assert!(text.contains("sakila_leader 1"), "{text}");
    }
}
