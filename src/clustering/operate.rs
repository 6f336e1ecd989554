//! Operate: carries out a plan's actions in order, stopping at the first failure.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::decide::{Action, Plan};
use super::observe::{InstanceObservation, Observation};
use crate::mysql::{Credentials, Endpoint, MySqlAdmin, MySqlConnector, MySqlError};
use crate::resources::naming;

/// Why an action could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum OperateError {
    #[error("failed to {action} on instance {ordinal}")]
    Sql {
        action: &'static str,
        ordinal: u8,
        #[source]
        source: MySqlError,
    },
    #[error("failed to {action} on instance {ordinal}: the pod has no IP")]
    NoAddress { action: &'static str, ordinal: u8 },
    #[error("failed to label pod {pod} as {role}")]
    Label {
        pod: String,
        role: &'static str,
        #[source]
        source: kube::Error,
    },
}

impl OperateError {
    /// A static category for event reasons and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            OperateError::Sql { .. } | OperateError::NoAddress { .. } => "MySQLOperationFailed",
            OperateError::Label { .. } => "PodLabelFailed",
        }
    }
}

/// Carries out the plan; returns the actions that were done.
pub async fn operate<C: MySqlConnector>(
    connector: &C,
    credentials: &Credentials,
    pods: &Api<Pod>,
    observation: &Observation,
    plan: &Plan,
) -> Result<Vec<Action>, OperateError> {
    let mut done = Vec::new();
    for action in &plan.actions {
        match action {
            Action::MakeReadOnly { ordinal } => {
                set_read_only(connector, credentials, observation, *ordinal, true).await?
            }
            Action::MakeWritable { ordinal } => {
                set_read_only(connector, credentials, observation, *ordinal, false).await?
            }
            Action::SetRoleLabel { ordinal, role } => {
                let pod = instance(observation, *ordinal)
                    .and_then(|i| i.pod.as_ref())
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
                let patch = json!({"metadata": {"labels": {naming::ROLE_LABEL: role.label()}}});
                pods.patch(&pod, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|source| OperateError::Label {
                        pod,
                        role: role.label(),
                        source,
                    })?;
            }
        }
        done.push(action.clone());
    }
    Ok(done)
}

fn instance(observation: &Observation, ordinal: u8) -> Option<&InstanceObservation> {
    observation.instances.iter().find(|i| i.ordinal == ordinal)
}

async fn set_read_only<C: MySqlConnector>(
    connector: &C,
    credentials: &Credentials,
    observation: &Observation,
    ordinal: u8,
    read_only: bool,
) -> Result<(), OperateError> {
    let action = if read_only {
        "make read-only"
    } else {
        "make writable"
    };
    let ip = instance(observation, ordinal)
        .and_then(|i| i.pod.as_ref())
        .and_then(|p| p.ip.clone())
        .ok_or(OperateError::NoAddress { action, ordinal })?;
    let endpoint = Endpoint::new(ip, naming::MYSQL_PORT as u16);
    let sql = |source| OperateError::Sql {
        action,
        ordinal,
        source,
    };
    let admin = connector
        .connect(&endpoint, credentials)
        .await
        .map_err(sql)?;
    admin.set_read_only(read_only).await.map_err(sql)?;
    tracing::info!(ordinal, read_only, "changed read-only state");
    Ok(())
}
