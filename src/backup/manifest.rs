//! What a backup leaves in the object store, and where: the layout of a cluster's keys and the
//! manifest written beside each backup's data, which is all a restore needs to find and check it
//! (also when the cluster and its `MySQLBackup`s are gone).

use serde::{Deserialize, Serialize};

/// The manifest's format; a restore refuses formats it does not know.
pub const MANIFEST_FORMAT: u32 = 1;
/// The data of a backup: a tar of the cloned data directory, compressed with zstd.
pub const DATA_OBJECT: &str = "data.tar.zst";
/// Written last, so a backup without one is incomplete.
pub const MANIFEST_OBJECT: &str = "manifest.json";

/// Keys of one cluster's backups, relative to the store's configured path:
/// `<namespace>/<cluster>/backups/<backup>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupLayout {
    directory: String,
}

impl BackupLayout {
    pub fn new(namespace: &str, cluster: &str, backup: &str) -> Self {
        Self {
            directory: format!("{namespace}/{cluster}/backups/{backup}"),
        }
    }

    /// The backup's directory (no trailing `/`).
    pub fn directory(&self) -> &str {
        &self.directory
    }

    pub fn data(&self) -> String {
        format!("{}/{DATA_OBJECT}", self.directory)
    }

    pub fn manifest(&self) -> String {
        format!("{}/{MANIFEST_OBJECT}", self.directory)
    }
}

/// What one backup holds, written as `manifest.json` once its data is complete in the store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: u32,
    pub namespace: String,
    pub cluster: String,
    pub backup: String,
    /// The pod the data was cloned from.
    pub source_instance: String,
    /// `@@version` of the data; a restore runs this version.
    pub mysql_version: String,
    /// Every transaction in the backup.
    pub gtid_set: String,
    /// The source's binary log file and position at the clone point.
    pub binlog_file: String,
    pub binlog_position: u64,
    /// RFC 3339.
    pub started_at: String,
    pub completed_at: String,
    /// The data object's name in the backup's directory, its size and SHA-256 (hex).
    pub data_object: String,
    pub size_bytes: u64,
    pub sha256: String,
    /// The binary log archive that continues this backup (its directory below the store's
    /// path), when the cluster archived; a point-in-time restore replays from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
}

impl Manifest {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest always serialises")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(ManifestError::UnknownFormat(manifest.format));
        }
        Ok(manifest)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("the backup's manifest.json is not a manifest: {0}")]
    Malformed(String),
    #[error(
        "the backup's manifest.json has format {0}, which this operator does not know (it knows 1)"
    )]
    UnknownFormat(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            namespace: "shop".into(),
            cluster: "orders".into(),
            backup: "orders-202611290300".into(),
            source_instance: "orders-1".into(),
            mysql_version: "9.7.4".into(),
            gtid_set: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5".into(),
            binlog_file: "binlog.000002".into(),
            binlog_position: 1234,
            started_at: "2026-11-29T03:00:00Z".into(),
            completed_at: "2026-11-29T03:00:40Z".into(),
            data_object: DATA_OBJECT.into(),
            size_bytes: 4096,
            sha256: "ab".repeat(32),
            archive: Some("shop/orders/binlogs/u1".into()),
        }
    }

    #[test]
    fn a_backup_lives_under_its_namespace_cluster_and_name() {
        let layout = BackupLayout::new("shop", "orders", "nightly");
        assert_eq!(layout.directory(), "shop/orders/backups/nightly");
        assert_eq!(layout.data(), "shop/orders/backups/nightly/data.tar.zst");
        assert_eq!(
            layout.manifest(),
            "shop/orders/backups/nightly/manifest.json"
        );
    }

    #[test]
    fn a_manifest_reads_back_as_written() {
        let written = manifest();
        assert_eq!(Manifest::from_json(&written.to_json()), Ok(written));
    }

    #[test]
    fn an_unknown_format_or_garbage_is_refused_by_name() {
        let mut future = manifest();
        future.format = 2;
        assert_eq!(
            Manifest::from_json(&future.to_json()),
            Err(ManifestError::UnknownFormat(2))
        );
        assert!(matches!(
            Manifest::from_json(b"{\"format\": 1}"),
            Err(ManifestError::Malformed(_))
        ));
    }
}
