//! The fetch step's part for TLS: the operator's `<name>-tls` Secret (kept, renewed or issued)
//! or the user's `spec.tls.secretName`, checked at run time since the API server cannot read a
//! Secret when it admits the cluster.
//!
//! A bad user Secret does not stop the cluster: it is reported in the condition
//! `CertificateValid` and once in a Warning event, and the operator keeps reaching the
//! instances (encrypted, unverified) while it lasts.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;

use super::error::Error;
use super::root_password::newly_false;
use crate::api::MySQLClusterStatus;
use crate::api::conditions::{ConditionType, set_condition};
use crate::clustering::{MySqlObservation, Observation};
use crate::resources::naming;
use crate::resources::tls::{IssuedTls, read_certificate};

/// A user's certificate with less than this left is reported: long enough to renew it by hand,
/// short enough that an issuer renewing at a third of a 90-day life (cert-manager's default)
/// never gets there.
const USER_CERTIFICATE_WARNING: std::time::Duration =
    std::time::Duration::from_secs(14 * 24 * 3600);
use crate::validate::ValidatedCluster;

/// What the round knows of the cluster's TLS.
pub struct ClusterTls {
    /// What the operator issued, for the apply step; `None` with the user's Secret.
    pub issued: Option<IssuedTls>,
    /// The operator's Secret's metadata as read, for the apply step.
    pub secret_meta: Option<ObjectMeta>,
    /// The CA the instances' certificates come from, to verify them with.
    pub ca: Option<Arc<[u8]>>,
    pub check: TlsCheck,
    /// When the Secret's server certificate runs out: an instance serving one that runs out at
    /// another time serves an older certificate.
    pub not_after: Option<Timestamp>,
}

/// The instances to reload TLS on: their pod mounts the Secret, yet mysqld serves a
/// certificate other than the Secret's (renewed or replaced since mysqld loaded it). The
/// kubelet brings a Secret's change to the pods within its sync period, so a reload can come
/// before the files change; it is harmless and the next round reloads again.
pub fn instances_to_reload(observation: &Observation, not_after: Option<Timestamp>) -> Vec<u8> {
    let Some(not_after) = not_after else {
        return Vec::new();
    };
    observation
        .instances
        .iter()
        .filter(|i| i.pod.as_ref().is_some_and(|p| p.serves_cluster_certificate))
        .filter(|i| match &i.mysql {
            MySqlObservation::Observed(status) => {
                status.served_certificate_not_after != Some(not_after)
            }
            _ => false,
        })
        .map(|i| i.ordinal)
        .collect()
}

/// What the operator found of the certificate the instances serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsCheck {
    /// The operator's own, in `secret`, valid until `not_after`.
    Issued {
        secret: String,
        not_after: Timestamp,
    },
    /// The user's, valid until `not_after` and not close to it.
    Valid {
        not_after: Timestamp,
    },
    SecretNotFound {
        secret: String,
    },
    KeyNotFound {
        secret: String,
        key: &'static str,
    },
    Invalid {
        secret: String,
        why: String,
    },
    /// The user's certificate runs out within `USER_CERTIFICATE_WARNING` (or did already).
    Expiring {
        secret: String,
        not_after: Timestamp,
    },
}

impl TlsCheck {
    /// The condition's status, reason and message.
    pub fn condition(&self) -> (bool, &'static str, String) {
        match self {
            Self::Issued { secret, not_after } => (
                true,
                "Issued",
                format!("the operator's certificate in Secret {secret} is valid until {not_after}"),
            ),
            Self::Valid { not_after } => (
                true,
                "Valid",
                format!("the certificate in spec.tls.secretName is valid until {not_after}"),
            ),
            Self::SecretNotFound { secret } => (
                false,
                "SecretNotFound",
                format!(
                    "spec.tls.secretName: Secret {secret} does not exist; pods that start now cannot mount their certificate"
                ),
            ),
            Self::KeyNotFound { secret, key } => (
                false,
                "KeyNotFound",
                format!(
                    "spec.tls.secretName: Secret {secret} has no key {key} (tls.crt, tls.key and ca.crt are needed); pods that start now cannot mount their certificate"
                ),
            ),
            Self::Invalid { secret, why } => (
                false,
                "Invalid",
                format!("spec.tls.secretName: Secret {secret}: {why}"),
            ),
            Self::Expiring { secret, not_after } => (
                false,
                "Expiring",
                format!(
                    "spec.tls.secretName: the certificate in Secret {secret} runs out at {not_after}; renew it (the pods pick a new one up without a restart)"
                ),
            ),
        }
    }
}

/// Checks the user's Secret (`secret` as read, `None`: there is none).
pub fn check_users_secret(name: &str, secret: Option<&Secret>, now: Timestamp) -> TlsCheck {
    let secret_name = name.to_string();
    let Some(data) = secret.map(|s| s.data.clone().unwrap_or_default()) else {
        return TlsCheck::SecretNotFound {
            secret: secret_name,
        };
    };
    for key in [
        naming::TLS_CERT_KEY,
        naming::TLS_KEY_KEY,
        naming::CA_CERT_KEY,
    ] {
        if data.get(key).is_none_or(|v| v.0.is_empty()) {
            return TlsCheck::KeyNotFound {
                secret: secret_name,
                key,
            };
        }
    }
    let read = |key| read_certificate(key, &data[key].0);
    let facts = match read(naming::CA_CERT_KEY).and(read(naming::TLS_CERT_KEY)) {
        Ok(facts) => facts,
        Err(e) => {
            return TlsCheck::Invalid {
                secret: secret_name,
                why: e.to_string(),
            };
        }
    };
    if facts.not_after.duration_since(now).as_secs() <= USER_CERTIFICATE_WARNING.as_secs() as i64 {
        return TlsCheck::Expiring {
            secret: secret_name,
            not_after: facts.not_after,
        };
    }
    TlsCheck::Valid {
        not_after: facts.not_after,
    }
}

/// fetch: the TLS Secret, and what the operator issues or keeps of it.
pub async fn fetch_tls(
    client: &kube::Client,
    cluster: &ValidatedCluster,
    now: Timestamp,
) -> Result<ClusterTls, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &cluster.namespace);
    let name = &cluster.tls.secret_name;
    let existing = secrets.get_opt(name).await.map_err(|source| Error::Fetch {
        what: format!("Secret {name}"),
        source,
    })?;
    if !cluster.tls.operator_issued {
        let check = check_users_secret(name, existing.as_ref(), now);
        let ca = existing
            .as_ref()
            .and_then(|s| s.data.as_ref()?.get(naming::CA_CERT_KEY))
            .filter(|ca| read_certificate(naming::CA_CERT_KEY, &ca.0).is_ok())
            .map(|ca| Arc::from(ca.0.as_slice()));
        let not_after = existing
            .as_ref()
            .and_then(|s| s.data.as_ref()?.get(naming::TLS_CERT_KEY))
            .and_then(|cert| read_certificate(naming::TLS_CERT_KEY, &cert.0).ok())
            .map(|facts| facts.not_after);
        return Ok(ClusterTls {
            issued: None,
            secret_meta: None,
            ca,
            check,
            not_after,
        });
    }
    let issued = IssuedTls::complete(cluster, existing.as_ref(), now).map_err(Error::Tls)?;
    let not_after = read_certificate(naming::TLS_CERT_KEY, issued.cert.as_bytes())
        .map_err(Error::Tls)?
        .not_after;
    Ok(ClusterTls {
        ca: Some(Arc::from(issued.ca_cert.as_bytes())),
        issued: Some(issued),
        secret_meta: existing.map(|s| s.metadata),
        check: TlsCheck::Issued {
            secret: name.clone(),
            not_after,
        },
        not_after: Some(not_after),
    })
}

/// Records the check in the status' `CertificateValid` condition.
pub fn record_tls(
    status: &mut MySQLClusterStatus,
    check: &TlsCheck,
    generation: Option<i64>,
    now: Time,
) {
    let (ok, reason, message) = check.condition();
    set_condition(
        &mut status.conditions,
        ConditionType::CertificateValid,
        ok,
        reason,
        message,
        generation,
        now,
    );
}

/// The Warning to publish about the certificate, if it is news.
pub fn tls_warning(
    previous: Option<&MySQLClusterStatus>,
    status: &MySQLClusterStatus,
) -> Option<(String, String)> {
    newly_false(previous, status, ConditionType::CertificateValid)
        .map(|(reason, message)| (format!("Certificate{reason}"), message))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;
    use crate::resources::tests::validated;

    fn now() -> Timestamp {
        "2026-11-29T00:00:00Z".parse().unwrap()
    }

    fn secret_with(pairs: &[(&str, &[u8])]) -> Secret {
        Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        }
    }

    /// A Secret in cert-manager's layout, as the operator would issue it at `at`.
    fn users_secret(at: Timestamp) -> Secret {
        let issued = IssuedTls::complete(&validated("db", 3), None, at).unwrap();
        let ours = crate::resources::tls::build_tls_secret(&validated("db", 3), &issued);
        let data = ours.data.unwrap();
        secret_with(&[
            ("tls.crt", &data["tls.crt"].0),
            ("tls.key", &data["tls.key"].0),
            ("ca.crt", &data["ca.crt"].0),
        ])
    }

    #[test]
    fn a_users_secret_needs_the_three_keys_a_certificate_and_time_left() {
        let good = users_secret(now());
        let mut no_ca = good.clone();
        no_ca.data.as_mut().unwrap().remove("ca.crt");
        let mut garbage = good.clone();
        garbage
            .data
            .as_mut()
            .unwrap()
            .insert("tls.crt".into(), ByteString(b"garbage".to_vec()));
        let day = jiff::SignedDuration::from_hours(24);
        let cases: [(Option<&Secret>, Timestamp, &str); 6] = [
            (None, now(), "SecretNotFound"),
            (Some(&no_ca), now(), "KeyNotFound"),
            (Some(&garbage), now(), "Invalid"),
            (Some(&good), now() + day * 77, "Expiring"),
            (Some(&good), now() + day * 100, "Expiring"),
            (Some(&good), now() + day * 75, "Valid"),
        ];
        for (secret, at, want) in cases {
            let (ok, reason, message) = check_users_secret("mine", secret, at).condition();
            assert_eq!(reason, want, "{message}");
            assert_eq!(ok, want == "Valid", "{want}");
            if !ok {
                assert!(message.starts_with("spec.tls.secretName: "), "{message}");
                assert!(message.contains("mine"), "{message}");
            }
        }
    }

    #[test]
    fn instances_serving_another_certificate_than_the_secrets_are_reloaded() {
        use crate::clustering::observe::tests::{instance, observation, status_mut};
        let secrets = now();
        let serving = |ordinal: u8, served: Option<Timestamp>, mounted: bool| {
            let mut i = instance(ordinal, Some(true), Some("replica"));
            status_mut(&mut i).served_certificate_not_after = served;
            i.pod.as_mut().unwrap().serves_cluster_certificate = mounted;
            i
        };
        let earlier = secrets - jiff::SignedDuration::from_hours(24 * 60);
        let obs = observation(
            5,
            Some(0),
            vec![
                serving(0, Some(secrets), true),
                serving(1, Some(earlier), true),
                serving(2, None, true),
                // A pod made before TLS: its own certificate, nothing to reload.
                serving(3, Some(earlier), false),
                instance(4, None, Some("replica")),
            ],
        );
        assert_eq!(instances_to_reload(&obs, Some(secrets)), [1, 2]);
        assert_eq!(instances_to_reload(&obs, None), Vec::<u8>::new());
    }

    #[test]
    fn a_bad_certificate_is_announced_once() {
        let check = TlsCheck::SecretNotFound {
            secret: "mine".into(),
        };
        let mut first = MySQLClusterStatus::default();
        record_tls(&mut first, &check, Some(1), Time(now()));
        let warning = tls_warning(None, &first).expect("announced");
        assert_eq!(warning.0, "CertificateSecretNotFound");
        let mut again = first.clone();
        record_tls(&mut again, &check, Some(1), Time(now()));
        assert_eq!(tls_warning(Some(&first), &again), None);
    }
}
