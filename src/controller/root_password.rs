//! The root password a user brings in `spec.rootPasswordSecret`: checked at run time, since the
//! API server cannot read a Secret when it admits the cluster.
//!
//! A bad password is the user's to fix and does not stop the cluster: it is reported in the
//! condition `RootPasswordValid` and once in a Warning event, and the operator keeps serving.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Api;

use crate::api::MySQLClusterStatus;
use crate::api::conditions::{ConditionType, set_condition};
use crate::resources::naming;
use crate::validate::ValidatedCluster;

/// The shortest root password accepted without a warning: MySQL's own password policy
/// (`validate_password.length`) defaults to 8.
pub const MIN_ROOT_PASSWORD_LENGTH: usize = 8;

/// What the operator found where `spec.rootPasswordSecret` points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootPasswordCheck {
    /// The operator generates the password into `<name>-credentials`.
    Generated,
    /// The user's password is long enough.
    Valid,
    SecretNotFound {
        secret: String,
    },
    KeyNotFound {
        secret: String,
        key: String,
    },
    Empty {
        secret: String,
        key: String,
    },
    TooShort {
        secret: String,
        key: String,
        length: usize,
    },
}

impl RootPasswordCheck {
    /// The condition's status, reason and message.
    pub fn condition(&self) -> (bool, &'static str, String) {
        match self {
            Self::Generated => (
                true,
                "Generated",
                "the root password is generated into the credentials Secret".into(),
            ),
            Self::Valid => (
                true,
                "Valid",
                "the root password in spec.rootPasswordSecret is set".into(),
            ),
            Self::SecretNotFound { secret } => (
                false,
                "SecretNotFound",
                format!(
                    "spec.rootPasswordSecret: Secret {secret} does not exist; pods that start now cannot get the root password"
                ),
            ),
            Self::KeyNotFound { secret, key } => (
                false,
                "KeyNotFound",
                format!(
                    "spec.rootPasswordSecret: Secret {secret} has no key {key}; pods that start now cannot get the root password"
                ),
            ),
            Self::Empty { secret, key } => (
                false,
                "Empty",
                format!(
                    "spec.rootPasswordSecret: key {key} of Secret {secret} is empty; a new data directory would get root accounts without a password"
                ),
            ),
            Self::TooShort {
                secret,
                key,
                length,
            } => (
                false,
                "TooShort",
                format!(
                    "spec.rootPasswordSecret: key {key} of Secret {secret} holds {length} characters; use at least {MIN_ROOT_PASSWORD_LENGTH}"
                ),
            ),
        }
    }
}

/// Checks the user's root password; `secret` is the Secret `spec.rootPasswordSecret` names.
pub fn check_root_password(
    cluster: &ValidatedCluster,
    secret: Option<&Secret>,
) -> RootPasswordCheck {
    let selector = &cluster.root_password;
    if is_generated(cluster) {
        return RootPasswordCheck::Generated;
    }
    let (name, key) = (selector.name.clone(), selector.key.clone());
    let Some(secret) = secret else {
        return RootPasswordCheck::SecretNotFound { secret: name };
    };
    // `stringData` is folded into `data` by the API server; a Secret read back has only `data`.
    let Some(value) = secret.data.as_ref().and_then(|d| d.get(&key)) else {
        return RootPasswordCheck::KeyNotFound { secret: name, key };
    };
    let length = String::from_utf8_lossy(&value.0).chars().count();
    match length {
        0 => RootPasswordCheck::Empty { secret: name, key },
        n if n < MIN_ROOT_PASSWORD_LENGTH => RootPasswordCheck::TooShort {
            secret: name,
            key,
            length: n,
        },
        _ => RootPasswordCheck::Valid,
    }
}

/// Whether the root password is the one the operator generates (nothing to read).
fn is_generated(cluster: &ValidatedCluster) -> bool {
    cluster.root_password.name == naming::credentials_secret(&cluster.name)
        && cluster.root_password.key == naming::ROOT_PASSWORD_KEY
}

/// The root password as the round reads it: its check, and the password itself when the check
/// passed (what a rotation may move root to).
pub struct ObservedRootPassword {
    pub check: RootPasswordCheck,
    pub password: Option<String>,
}

/// Reads the Secret and checks the password; `None` when the Secret could not be read (the
/// condition then stays as it was: a failed read says nothing about the password).
/// `generated` is the credentials Secret's root password, for a cluster that has no other.
pub async fn observe_root_password(
    client: &kube::Client,
    cluster: &ValidatedCluster,
    generated: Option<&str>,
) -> Option<ObservedRootPassword> {
    if is_generated(cluster) {
        return Some(ObservedRootPassword {
            check: RootPasswordCheck::Generated,
            password: generated.map(str::to_string),
        });
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &cluster.namespace);
    match secrets.get_opt(&cluster.root_password.name).await {
        Ok(secret) => {
            let check = check_root_password(cluster, secret.as_ref());
            let password = (check == RootPasswordCheck::Valid)
                .then(|| {
                    let data = secret.as_ref()?.data.as_ref()?;
                    let value = data.get(&cluster.root_password.key)?;
                    String::from_utf8(value.0.clone()).ok()
                })
                .flatten();
            Some(ObservedRootPassword { check, password })
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read the root password Secret");
            None
        }
    }
}

/// Records the check in the status' `RootPasswordValid` condition.
pub fn record_root_password(
    status: &mut MySQLClusterStatus,
    check: &RootPasswordCheck,
    generation: Option<i64>,
    now: Time,
) {
    let (ok, reason, message) = check.condition();
    set_condition(
        &mut status.conditions,
        ConditionType::RootPasswordValid,
        ok,
        reason,
        message,
        generation,
        now,
    );
}

/// The Warning to publish about the root password, if it is news (see [`newly_false`]).
pub fn root_password_warning(
    previous: Option<&MySQLClusterStatus>,
    status: &MySQLClusterStatus,
) -> Option<(String, String)> {
    newly_false(previous, status, ConditionType::RootPasswordValid)
        .map(|(reason, message)| (format!("RootPassword{reason}"), message))
}

/// The reason and message of condition `type_` if it is False now and said something else
/// before: a problem is announced once, and again only when it changes.
pub fn newly_false(
    previous: Option<&MySQLClusterStatus>,
    status: &MySQLClusterStatus,
    type_: ConditionType,
) -> Option<(String, String)> {
    let find = |s: &MySQLClusterStatus| -> Option<Condition> {
        s.conditions.iter().find(|c| c.type_ == type_).cloned()
    };
    let now = find(status).filter(|c| c.status == "False")?;
    let before = previous.and_then(find).map(|c| (c.reason, c.message));
    let news = (now.reason, now.message);
    (before.as_ref() != Some(&news)).then_some(news)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;
    use crate::api::SecretKeySelector;
    use crate::resources::tests::validated;

    fn users_cluster() -> ValidatedCluster {
        let mut cluster = validated("db", 1);
        cluster.root_password = SecretKeySelector {
            name: "mine".into(),
            key: "pw".into(),
        };
        cluster
    }

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn a_users_root_password_must_exist_and_have_eight_characters() {
        let cluster = users_cluster();
        let cases = [
            (None, "SecretNotFound"),
            (Some(secret(&[("other", "long enough")])), "KeyNotFound"),
            (Some(secret(&[("pw", "")])), "Empty"),
            (Some(secret(&[("pw", "1234567")])), "TooShort"),
            (Some(secret(&[("pw", "12345678")])), "Valid"),
        ];
        for (secret, want) in cases {
            let (ok, reason, message) = check_root_password(&cluster, secret.as_ref()).condition();
            assert_eq!(reason, want);
            assert_eq!(ok, want == "Valid", "{want}");
            if !ok {
                assert!(
                    message.starts_with("spec.rootPasswordSecret: "),
                    "{message}"
                );
                assert!(message.contains("mine"), "{message}");
            }
        }
    }

    #[test]
    fn the_generated_password_needs_no_check() {
        assert_eq!(
            check_root_password(&validated("db", 1), None),
            RootPasswordCheck::Generated
        );
    }

    #[test]
    fn a_bad_password_is_announced_once_and_again_only_when_it_changes() {
        let at = |s: i64| Time(jiff::Timestamp::from_second(s).unwrap());
        let record = |previous: &MySQLClusterStatus, check: RootPasswordCheck, t: i64| {
            let mut status = previous.clone();
            record_root_password(&mut status, &check, Some(1), at(t));
            status
        };
        let empty = RootPasswordCheck::Empty {
            secret: "mine".into(),
            key: "pw".into(),
        };
        let first = record(&MySQLClusterStatus::default(), empty.clone(), 1);
        let warning = root_password_warning(None, &first).expect("announced");
        assert_eq!(warning.0, "RootPasswordEmpty");
        let again = record(&first, empty, 2);
        assert_eq!(root_password_warning(Some(&first), &again), None);
        let short = RootPasswordCheck::TooShort {
            secret: "mine".into(),
            key: "pw".into(),
            length: 3,
        };
        let changed = record(&again, short, 3);
        assert!(root_password_warning(Some(&again), &changed).is_some());
        let fixed = record(&changed, RootPasswordCheck::Valid, 4);
        assert_eq!(root_password_warning(Some(&changed), &fixed), None);
    }
}
