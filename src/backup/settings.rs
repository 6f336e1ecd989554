//! The contract between a backup's Job (built by the operator) and the runner inside it: one
//! environment variable carries the settings as JSON, the secrets come as their own variables
//! from Secret keys, so they never appear in the Job's spec.

use serde::{Deserialize, Serialize};

/// The runner's settings, JSON.
pub const SETTINGS_ENV: &str = "SAKILA_BACKUP_SETTINGS";
/// The clone donor account's password.
pub const CLONE_PASSWORD_ENV: &str = "SAKILA_CLONE_PASSWORD";
/// The object store's credentials.
pub const STORE_ACCESS_KEY_ID_ENV: &str = "SAKILA_STORE_ACCESS_KEY_ID";
pub const STORE_SECRET_ACCESS_KEY_ENV: &str = "SAKILA_STORE_SECRET_ACCESS_KEY";

/// What the runner needs besides secrets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunnerSettings {
    pub namespace: String,
    pub cluster: String,
    pub backup: String,
    /// The pod cloned from, and its stable DNS name and port.
    pub donor_pod: String,
    pub donor_host: String,
    pub donor_port: u16,
    /// The account the donor lets clone (`BACKUP_ADMIN`).
    pub clone_user: String,
    /// The cluster's CA, which checks the donor's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub donor_ca_path: Option<String>,
    pub store: StoreSettings,
    /// The pod's scratch volume: the throwaway server and the copy.
    pub scratch: String,
    /// The cluster's binary log archive, recorded in the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
}

/// The object store, as `spec.backup.store` gives it, with the CA bundle as a mounted file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StoreSettings {
    pub endpoint: String,
    pub bucket: String,
    pub path: String,
    pub region: String,
    pub path_style: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_path: Option<String>,
}

impl StoreSettings {
    /// Opens the store with the credentials from the Job's or the restore's environment.
    pub fn open_from_env(&self) -> Result<crate::objectstore::ObjectStore, String> {
        let env = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{name} is not set"))
        };
        let ca_bundle_pem = match &self.ca_bundle_path {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("cannot read the store's CA bundle {path}: {e}"))?,
            ),
            None => None,
        };
        crate::objectstore::ObjectStore::new(crate::objectstore::StoreConfig {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            prefix: self.path.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
            credentials: crate::objectstore::Credentials {
                access_key_id: env(STORE_ACCESS_KEY_ID_ENV)?,
                secret_access_key: env(STORE_SECRET_ACCESS_KEY_ENV)?,
            },
            ca_bundle_pem,
        })
        .map_err(|e| e.to_string())
    }
}

impl RunnerSettings {
    pub fn to_env_value(&self) -> String {
        serde_json::to_string(self).expect("settings always serialise")
    }

    /// Reads the settings through `lookup` (the process environment, in the Job).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let value = lookup(SETTINGS_ENV).ok_or_else(|| format!("{SETTINGS_ENV} is not set"))?;
        serde_json::from_str(&value).map_err(|e| format!("{SETTINGS_ENV}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_back_from_the_environment_as_the_job_wrote_them() {
        let settings = RunnerSettings {
            namespace: "shop".into(),
            cluster: "orders".into(),
            backup: "orders-nightly".into(),
            donor_pod: "orders-1".into(),
            donor_host: "orders-1.orders.shop.svc".into(),
            donor_port: 3306,
            clone_user: "sakila-clone".into(),
            donor_ca_path: Some("/etc/mysql-tls/ca.crt".into()),
            store: StoreSettings {
                endpoint: "http://minio:9000".into(),
                bucket: "backups".into(),
                path: "prod".into(),
                region: "us-east-1".into(),
                path_style: true,
                ca_bundle_path: None,
            },
            scratch: "/scratch".into(),
            archive: Some("shop/orders/binlogs/u1".into()),
        };
        let value = settings.to_env_value();
        let read = RunnerSettings::from_env(|name| (name == SETTINGS_ENV).then(|| value.clone()));
        assert_eq!(read, Ok(settings));
    }

    #[test]
    fn missing_or_malformed_settings_name_the_variable() {
        assert_eq!(
            RunnerSettings::from_env(|_| None),
            Err("SAKILA_BACKUP_SETTINGS is not set".to_string())
        );
        let error = RunnerSettings::from_env(|_| Some("{}".into())).unwrap_err();
        assert!(
            error.starts_with("SAKILA_BACKUP_SETTINGS: missing field"),
            "{error}"
        );
    }
}
