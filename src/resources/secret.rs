//! The credentials Secret: the root password (unless the user brings one) and the operator's accounts.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rand::TryRngCore;
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::OsRng;

use super::{meta, naming};
use crate::api::DeletionPolicy;
use crate::validate::ValidatedCluster;

/// Length of generated passwords; alphanumeric, so about 190 bits of entropy.
const PASSWORD_LENGTH: usize = 32;

/// The passwords of one cluster. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterPasswords {
    passwords: BTreeMap<&'static str, String>,
}

impl fmt::Debug for ClusterPasswords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterPasswords")
            .field("keys", &self.passwords.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ClusterPasswords {
    /// The keys this cluster's Secret must hold; the root password only when the operator
    /// generates it. The clone donor's only in a new Secret or one that has it: a Secret made
    /// before goes with data directories whose accounts were made before, where the
    /// replication account is the donor (`clone_donor`).
    pub fn required_keys(
        cluster: &ValidatedCluster,
        existing: Option<&Secret>,
    ) -> Vec<&'static str> {
        let mut keys = vec![
            naming::OPERATOR_PASSWORD_KEY,
            naming::REPLICATION_PASSWORD_KEY,
            naming::PROBE_PASSWORD_KEY,
        ];
        let has_clone_key = existing
            .and_then(|s| s.data.as_ref())
            .is_some_and(|d| d.contains_key(naming::CLONE_PASSWORD_KEY));
        if existing.is_none() || has_clone_key {
            keys.push(naming::CLONE_PASSWORD_KEY);
        }
        if cluster.root_password.name == naming::credentials_secret(&cluster.name) {
            keys.push(naming::ROOT_PASSWORD_KEY);
        }
        keys
    }

    /// The account recipients clone from: its own where the data directories have it, the
    /// replication account where they were made before it existed.
    pub fn clone_donor(&self) -> (&'static str, &str) {
        let (user, key) = self.clone_donor_key();
        (user, self.get(key).unwrap_or_default())
    }

    /// The clone donor's user and the key of its password (see [`Self::clone_donor`]).
    pub fn clone_donor_key(&self) -> (&'static str, &'static str) {
        if self.get(naming::CLONE_PASSWORD_KEY).is_some() {
            (naming::CLONE_USER, naming::CLONE_PASSWORD_KEY)
        } else {
            (naming::REPLICATION_USER, naming::REPLICATION_PASSWORD_KEY)
        }
    }

    /// Keeps every password the existing Secret has, and generates the missing ones from the OS CSPRNG.
    pub fn complete(cluster: &ValidatedCluster, existing: Option<&Secret>) -> Self {
        let existing_data = existing.and_then(|s| s.data.as_ref());
        let passwords = Self::required_keys(cluster, existing)
            .into_iter()
            .map(|key| {
                let kept = existing_data
                    .and_then(|d| d.get(key))
                    .and_then(|v| String::from_utf8(v.0.clone()).ok())
                    .filter(|v| !v.is_empty());
                (key, kept.unwrap_or_else(generate_password))
            })
            .collect();
        Self { passwords }
    }

    /// The password stored under `key`, if this cluster has one.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.passwords.get(key).map(String::as_str)
    }
}

/// 32 alphanumeric characters from the operating system's CSPRNG.
fn generate_password() -> String {
    Alphanumeric.sample_string(&mut OsRng.unwrap_err(), PASSWORD_LENGTH)
}

/// Builds the Secret from the cluster's credentials.
///
/// The passwords are part of the data: the accounts in a data directory were created with them.
/// So the Secret lives as long as the volumes. With `deletionPolicy: Retain` it has no owner
/// reference and outlives the cluster with the PVCs, and a new cluster of the same name finds
/// both and starts with the accounts it can log in to; with `Delete` it goes with the cluster.
pub fn build_secret(cluster: &ValidatedCluster, credentials: &ClusterPasswords) -> Secret {
    passwords_secret(
        cluster,
        naming::credentials_secret(&cluster.name),
        credentials.passwords.iter().map(|(k, v)| (*k, v.as_str())),
    )
}

/// A Secret of passwords named `name`, living as long as the cluster's volumes (see
/// [`build_secret`]).
pub fn passwords_secret<'a>(
    cluster: &ValidatedCluster,
    name: String,
    entries: impl Iterator<Item = (&'a str, &'a str)>,
) -> Secret {
    let mut metadata = meta(cluster, name);
    if cluster.deletion_policy == DeletionPolicy::Retain {
        metadata.owner_references = None;
    }
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(
            entries
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SecretKeySelector;
    use crate::resources::tests::validated;

    #[test]
    fn generated_passwords_are_long_distinct_and_alphanumeric() {
        let credentials = ClusterPasswords::complete(&validated("db", 3), None);
        let values: Vec<&String> = credentials.passwords.values().collect();
        assert_eq!(values.len(), 5);
        for v in &values {
            assert_eq!(v.len(), PASSWORD_LENGTH);
            assert!(v.chars().all(|c| c.is_ascii_alphanumeric()));
        }
        let mut unique = values.clone();
        unique.dedup();
        assert_eq!(unique.len(), values.len());
    }

    #[test]
    fn existing_passwords_are_kept() {
        let cluster = validated("db", 3);
        let first = ClusterPasswords::complete(&cluster, None);
        let secret = build_secret(&cluster, &first);
        assert_eq!(ClusterPasswords::complete(&cluster, Some(&secret)), first);
    }

    #[test]
    fn a_new_cluster_clones_from_its_own_account_and_one_from_before_from_replications() {
        let cluster = validated("db", 3);
        let new = ClusterPasswords::complete(&cluster, None);
        let (user, password) = new.clone_donor();
        assert_eq!(user, naming::CLONE_USER);
        assert_eq!(Some(password), new.get(naming::CLONE_PASSWORD_KEY));

        let mut before = build_secret(&cluster, &new);
        before
            .data
            .as_mut()
            .unwrap()
            .remove(naming::CLONE_PASSWORD_KEY);
        let kept = ClusterPasswords::complete(&cluster, Some(&before));
        assert_eq!(
            kept.get(naming::CLONE_PASSWORD_KEY),
            None,
            "no password for no account"
        );
        let (user, password) = kept.clone_donor();
        assert_eq!(user, naming::REPLICATION_USER);
        assert_eq!(Some(password), kept.get(naming::REPLICATION_PASSWORD_KEY));
    }

    #[test]
    fn root_password_is_not_generated_when_the_user_brings_one() {
        let mut cluster = validated("db", 3);
        cluster.root_password = SecretKeySelector {
            name: "mine".into(),
            key: "pw".into(),
        };
        let credentials = ClusterPasswords::complete(&cluster, None);
        assert_eq!(credentials.get(naming::ROOT_PASSWORD_KEY), None);
        assert!(credentials.get(naming::OPERATOR_PASSWORD_KEY).is_some());
    }

    #[test]
    fn credentials_are_owned_by_the_cluster_only_when_its_volumes_go_with_it() {
        let mut cluster = validated("db", 3);
        let credentials = ClusterPasswords::complete(&cluster, None);
        assert_eq!(cluster.deletion_policy, DeletionPolicy::Retain);
        let kept = build_secret(&cluster, &credentials);
        assert_eq!(
            kept.metadata.owner_references, None,
            "kept volumes need their passwords"
        );

        cluster.deletion_policy = DeletionPolicy::Delete;
        let owned = build_secret(&cluster, &credentials);
        let owners = owned.metadata.owner_references.unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].controller, Some(true));
    }

    #[test]
    fn debug_output_never_shows_a_password() {
        let credentials = ClusterPasswords::complete(&validated("db", 3), None);
        let shown = format!("{credentials:?}");
        for v in credentials.passwords.values() {
            assert!(!shown.contains(v.as_str()));
        }
    }
}
