//! The errors of one reconcile, one variant per step.

use crate::clustering::operate::OperateError;
use crate::storage::StorageError;
use crate::validate::InvalidSpec;

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read the MySQLCluster")]
    Malformed(#[source] serde_json::Error),
    #[error("the spec is invalid")]
    Invalid(#[from] InvalidSpec),
    #[error("failed to read {what}")]
    Fetch {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to apply {kind} {name}")]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to issue the cluster's certificate")]
    Tls(#[source] crate::resources::tls::TlsError),
    #[error("failed to carry out the clustering plan")]
    Operate(#[from] OperateError),
    #[error("failed to grow the data volumes")]
    Storage(#[from] StorageError),
    #[error("failed to patch the status")]
    Status(#[source] kube::Error),
    #[error("cannot restore the backup: {0}")]
    Restore(String),
    #[error("failed to finish the reconcile within its deadline of {0:?}")]
    Deadline(std::time::Duration),
}

impl Error {
    /// A static category: the event reason and the metric label.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Malformed(_) | Error::Invalid(_) => "InvalidSpec",
            Error::Fetch { .. } => "FetchFailed",
            Error::Apply { .. } => "ApplyFailed",
            Error::Tls(_) => "CertificateFailed",
            Error::Operate(e) => e.category(),
            Error::Storage(e) => e.category(),
            Error::Status(_) => "StatusPatchFailed",
            Error::Restore(_) => "RestoreSourceUnavailable",
            Error::Deadline(_) => "ReconcileDeadlineExceeded",
        }
    }

    /// An invalid spec stays invalid until the user edits it: no point in retrying.
    pub fn waits_for_change(&self) -> bool {
        matches!(self, Error::Malformed(_) | Error::Invalid(_))
    }
}
