//! Status conditions as the Kubernetes API conventions want them: one per type, with a
//! `lastTransitionTime` that moves only when the condition's status does. Pure; every layer
//! that reports a condition (controller, storage) uses this one function.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Upserts a condition, keeping `lastTransitionTime` unless the status flips.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: ConditionType,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Time,
) {
    let status = if ok { "True" } else { "False" };
    let transition = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(now);
    let condition = Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: transition,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => *existing = condition,
        None => conditions.push(condition),
    }
}

/// Every condition type a MySQLCluster's status carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConditionType {
    /// Every instance ready and the primary writable.
    Ready,
    /// The cluster is being created, changed or recovered.
    Progressing,
    /// It was ready and is not now.
    Degraded,
    /// The last reconcile ran to its end.
    ReconcileSuccess,
    /// An instance takes writes.
    Writable,
    /// Every replica replicates from the primary with semi-sync.
    Replicating,
    /// `spec.paused` holds the operator back.
    Paused,
    /// Every instance runs `spec.mysqlConfig`, and how the last change got there.
    ConfigApplied,
    /// Every child the operator would create is its own.
    ResourcesOwned,
    /// `spec.mysqlConfig` keeps every commit crash-safe.
    CrashSafe,
    /// The root password is long enough.
    RootPasswordValid,
    /// The volumes have `spec.storage.size`.
    StorageResized,
    /// The certificate the instances serve is there, readable and not about to run out.
    CertificateValid,
    /// `spec.backup.schedule` is understood, and when the next backup is due.
    BackupScheduled,
    /// Instance 0 holds the backup `spec.bootstrap.recovery` names, or why not yet.
    Restored,
    /// The binary log reaches the store within `spec.backup.binlogs.delaySeconds`, or why not.
    BinlogArchived,
    /// Every account has the password its Secret holds, or where the rotation to it stands.
    PasswordsRotated,
    /// Every instance has the root logins `spec.rootAccess` allows, or why not yet.
    RootAccessApplied,
}

impl ConditionType {
    /// The type as written in the status.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Progressing => "Progressing",
            ConditionType::Degraded => "Degraded",
            ConditionType::ReconcileSuccess => "ReconcileSuccess",
            ConditionType::Writable => "Writable",
            ConditionType::Replicating => "Replicating",
            ConditionType::Paused => "Paused",
            ConditionType::ConfigApplied => "ConfigApplied",
            ConditionType::ResourcesOwned => "ResourcesOwned",
            ConditionType::CrashSafe => "CrashSafe",
            ConditionType::RootPasswordValid => "RootPasswordValid",
            ConditionType::StorageResized => "StorageResized",
            ConditionType::CertificateValid => "CertificateValid",
            ConditionType::BackupScheduled => "BackupScheduled",
            ConditionType::Restored => "Restored",
            ConditionType::BinlogArchived => "BinlogArchived",
            ConditionType::PasswordsRotated => "PasswordsRotated",
            ConditionType::RootAccessApplied => "RootAccessApplied",
        }
    }
}

impl std::fmt::Display for ConditionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ConditionType> for String {
    fn from(type_: ConditionType) -> Self {
        type_.as_str().into()
    }
}

/// So that a condition read from the API compares with a type: `condition.type_ == Ready`.
impl PartialEq<ConditionType> for String {
    fn eq(&self, other: &ConditionType) -> bool {
        self == other.as_str()
    }
}

/// The condition of type `type_`, if the list has one.
pub fn find_condition(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}
