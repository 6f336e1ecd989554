//! `kubectl sakila`: the operator's view of a cluster, and the operations a person asks for,
//! from the command line. Parsing (`args`) and the status screen (`status`) are pure; `run` does
//! the API calls.

pub mod args;
pub mod status;

use std::io::Write;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::api::MySQLCluster;
use crate::api::conditions::ConditionType;
use crate::resources::naming;
use args::{Command, Invocation, USAGE, ordinal_of};

/// Why a command failed; each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("MySQLCluster {namespace}/{name} not found")]
    ClusterNotFound { namespace: String, name: String },
    #[error("pod {namespace}/{name} not found")]
    PodNotFound { namespace: String, name: String },
    #[error("not allowed to {verb} in namespace {namespace}: {message}")]
    Forbidden {
        verb: &'static str,
        namespace: String,
        message: String,
    },
    #[error("{0}")]
    Refused(String),
    #[error(
        "{what} did not happen within {after:?}; `kubectl sakila status {cluster}` shows where it stands"
    )]
    Timeout {
        what: String,
        cluster: String,
        after: Duration,
    },
    #[error("the API server: {0}")]
    Api(#[source] kube::Error),
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Maps an API error to what the user can act on.
fn api_error(
    error: kube::Error,
    verb: &'static str,
    namespace: &str,
    not_found: impl FnOnce() -> PluginError,
) -> PluginError {
    match &error {
        kube::Error::Api(status) if status.code == 404 => not_found(),
        kube::Error::Api(status) if status.code == 403 => PluginError::Forbidden {
            verb,
            namespace: namespace.to_string(),
            message: status.message.clone(),
        },
        _ => PluginError::Api(error),
    }
}

/// An API error about the MySQLCluster `namespace/name`.
fn cluster_error(
    error: kube::Error,
    verb: &'static str,
    namespace: &str,
    name: &str,
) -> PluginError {
    api_error(error, verb, namespace, || PluginError::ClusterNotFound {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// Carries out `invocation` in `namespace`, writing what the user sees to `out`.
pub async fn run(
    invocation: &Invocation,
    client: Client,
    namespace: &str,
    out: &mut (impl Write + Send),
) -> Result<(), PluginError> {
    match &invocation.command {
        Command::Help => writeln!(out, "{USAGE}")?,
        Command::Version => version(client, out).await?,
        Command::Status { cluster, json } => {
            let report = status_report(&client, namespace, cluster).await?;
            if *json {
                serde_json::to_writer_pretty(&mut *out, &report).map_err(std::io::Error::from)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", status::render(&report))?;
            }
        }
        Command::Switchover {
            cluster,
            instance,
            timeout,
        } => switchover(&client, namespace, cluster, instance, *timeout, out).await?,
        Command::Reclone { pod } => reclone(&client, namespace, pod, out).await?,
    }
    Ok(())
}

async fn get_cluster(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<MySQLCluster, PluginError> {
    Api::<MySQLCluster>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|e| cluster_error(e, "get mysqlclusters", namespace, name))
}

/// The cluster and its recent events (the cluster's own and its pods').
pub async fn status_report(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<status::StatusReport, PluginError> {
    let cluster = get_cluster(client, namespace, name).await?;
    let events = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| {
            api_error(e, "list events", namespace, || {
                PluginError::Refused(format!("namespace {namespace} not found"))
            })
        })?;
    let pod_prefix = format!("{name}-");
    let lines = events
        .items
        .into_iter()
        .filter(|e| {
            let object = &e.involved_object;
            let named = object.name.as_deref().unwrap_or_default();
            match object.kind.as_deref() {
                Some("MySQLCluster") => named == name,
                Some("Pod") => named
                    .strip_prefix(&pod_prefix)
                    .is_some_and(|rest| rest.parse::<u8>().is_ok()),
                _ => false,
            }
        })
        .map(|e| status::EventLine {
            time: e
                .last_timestamp
                .map(|t| t.0.to_string())
                .or_else(|| e.event_time.map(|t| t.0.to_string())),
            type_: e.type_.unwrap_or_default(),
            reason: e.reason.unwrap_or_default(),
            message: e.message.unwrap_or_default(),
        })
        .collect();
    Ok(status::report(&cluster, lines))
}

async fn switchover(
    client: &Client,
    namespace: &str,
    name: &str,
    instance: &str,
    timeout: Duration,
    out: &mut impl Write,
) -> Result<(), PluginError> {
    let cluster = get_cluster(client, namespace, name).await?;
    let ordinal = ordinal_of(name, instance)
        .filter(|o| i32::from(*o) < cluster.spec.instances)
        .ok_or_else(|| {
            PluginError::Refused(format!(
                "{instance} is not an instance of {name}: give a pod name {name}-N or an ordinal N below {}",
                cluster.spec.instances
            ))
        })?;
    let target = naming::pod(name, ordinal);
    let clusters = Api::<MySQLCluster>::namespaced(client.clone(), namespace);
    clusters
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"primaryInstance": ordinal}})),
        )
        .await
        .map_err(|e| cluster_error(e, "patch mysqlclusters", namespace, name))?;
    writeln!(
        out,
        "spec.primaryInstance of {namespace}/{name} set to {ordinal}; waiting for {target} to be the writable primary"
    )?;
    let start = Instant::now();
    loop {
        let cluster = get_cluster(client, namespace, name).await?;
        let status = cluster.status.unwrap_or_default();
        let writable = status
            .conditions
            .iter()
            .any(|c| c.type_ == ConditionType::Writable.as_str() && c.status == "True");
        if status.current_primary.as_deref() == Some(target.as_str()) && writable {
            writeln!(
                out,
                "{target} is the primary ({:.1} s)",
                start.elapsed().as_secs_f64()
            )?;
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(PluginError::Timeout {
                what: format!("switchover to {target}"),
                cluster: name.to_string(),
                after: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn reclone(
    client: &Client,
    namespace: &str,
    pod: &str,
    out: &mut impl Write,
) -> Result<(), PluginError> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let not_found = || PluginError::PodNotFound {
        namespace: namespace.to_string(),
        name: pod.to_string(),
    };
    let found = pods
        .get(pod)
        .await
        .map_err(|e| api_error(e, "get pods", namespace, not_found))?;
    let labels = found.labels();
    if labels.get(naming::MANAGED_BY_LABEL).map(String::as_str) != Some(naming::MANAGED_BY) {
        return Err(PluginError::Refused(format!(
            "{pod} is not a pod of a MySQLCluster (no {}={} label)",
            naming::MANAGED_BY_LABEL,
            naming::MANAGED_BY
        )));
    }
    pods.patch(
        pod,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {naming::RECLONE_ANNOTATION: "true"}}})),
    )
    .await
    .map_err(|e| api_error(e, "patch pods", namespace, not_found))?;
    writeln!(
        out,
        "{pod} annotated {}=true: the operator replaces its data with a clone of the primary's \
         (a primary is refused: switch over first); `kubectl sakila status` follows it",
        naming::RECLONE_ANNOTATION
    )?;
    Ok(())
}

async fn version(client: Client, out: &mut impl Write) -> Result<(), PluginError> {
    writeln!(out, "kubectl-sakila {}", env!("CARGO_PKG_VERSION"))?;
    let server = client.apiserver_version().await.map_err(PluginError::Api)?;
    writeln!(out, "Kubernetes {}", server.git_version)?;
    let operators = Api::<Pod>::all(client)
        .list(&ListParams::default().labels("app.kubernetes.io/name=sakila-operator"))
        .await;
    match operators {
        Ok(list) if !list.items.is_empty() => {
            for pod in list.items {
                let image = pod
                    .spec
                    .and_then(|s| s.containers.into_iter().next())
                    .and_then(|c| c.image)
                    .unwrap_or_default();
                writeln!(
                    out,
                    "operator {}/{}: {image}",
                    pod.metadata.namespace.unwrap_or_default(),
                    pod.metadata.name.unwrap_or_default()
                )?;
            }
        }
        Ok(_) => writeln!(
            out,
            "operator: no pod labelled app.kubernetes.io/name=sakila-operator"
        )?,
        Err(e) => writeln!(out, "operator: cannot list pods in all namespaces ({e})")?,
    }
    Ok(())
}
