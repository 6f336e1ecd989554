//! Restoring a backup into a new cluster (`spec.bootstrap.recovery`).
//!
//! The operator resolves the backup once, before the cluster's first primary (pure:
//! [`restore_source`]), and keeps it in `status.restoredFrom`. Every pod of the cluster then gets
//! an init container running `sakila-operator restore` before `init.sh`; in instance 0, while
//! its data directory is empty, it downloads the backup, checks its SHA-256 while unpacking it
//! beside the data directory, starts a server on it without grant tables, checks that it holds
//! exactly the backup's GTID set, forgets the replication channel the copy came with, gives root
//! and the operator's accounts this cluster's passwords, shuts it down cleanly and only then
//! moves it into place. Anything short of that fails the container with the reason, and leaves
//! no data directory: never a half-restored, writable instance. The other instances are cloned
//! from instance 0 as in any cluster.

use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::manifest::{BackupLayout, MANIFEST_OBJECT, Manifest};
use super::settings::StoreSettings;
use crate::api::{BackupPhase, MySQLBackup, RecoverySpec, ReplaySource, RestoreSource};
use crate::mysql::{Account, Credentials, GtidSet, MySqlAdmin};
use crate::objectstore::{self, ObjectStore};
use crate::resources::naming;

/// The restore's settings, JSON, from the ConfigMap `<cluster>-restore`.
pub const RESTORE_SETTINGS_ENV: &str = "SAKILA_RESTORE_SETTINGS";
/// The key of the settings in that ConfigMap.
pub const RESTORE_SETTINGS_KEY: &str = "settings";
/// Where the data directory is, in the pod (the data volume's mount).
const DATA_MOUNT: &str = "/var/lib/mysql";

/// What the restore container needs besides secrets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSettings {
    pub store: StoreSettings,
    /// The backup's directory below the store's path.
    pub directory: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_set: Option<String>,
    /// The binary log archive to replay on the backup, and to when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplaySource>,
}

/// The backup `recovery` names, resolved; `backup` is the `MySQLBackup` it names, if it names
/// one and it exists. An error says why it cannot be restored (yet).
pub fn restore_source(
    namespace: &str,
    recovery: &RecoverySpec,
    backup: Option<&MySQLBackup>,
) -> Result<RestoreSource, String> {
    if let Some(source) = &recovery.source {
        return Ok(RestoreSource {
            store: source.store.clone(),
            directory: BackupLayout::new(&source.namespace, &source.cluster, &source.backup)
                .directory()
                .to_string(),
            backup: None,
            sha256: None,
            gtid_set: None,
            replay: replay_source(recovery)?,
        });
    }
    let name = recovery
        .backup
        .as_deref()
        .ok_or("spec.bootstrap.recovery names no backup")?;
    let backup = backup.ok_or_else(|| {
        format!(
            "spec.bootstrap.recovery.backup: the MySQLBackup {name} does not exist in {namespace}"
        )
    })?;
    let status = backup.status.clone().unwrap_or_default();
    if status.phase != Some(BackupPhase::Completed) {
        return Err(format!(
            "spec.bootstrap.recovery.backup: the MySQLBackup {name} is {}, not Completed{}",
            status.phase.map_or("new", BackupPhase::as_str),
            status
                .message
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ));
    }
    let store = status.store.ok_or_else(|| {
        format!(
            "spec.bootstrap.recovery.backup: the MySQLBackup {name} does not record its store; \
             name the backup with spec.bootstrap.recovery.source instead"
        )
    })?;
    Ok(RestoreSource {
        store,
        directory: BackupLayout::new(namespace, &backup.spec.cluster, name)
            .directory()
            .to_string(),
        backup: Some(name.to_string()),
        sha256: status.sha256,
        gtid_set: status.gtid_set,
        replay: replay_source(recovery)?,
    })
}

/// How far to replay the archive that continues the backup (the one its manifest names).
fn replay_source(recovery: &RecoverySpec) -> Result<Option<ReplaySource>, String> {
    let Some(target) = &recovery.target else {
        return Ok(None);
    };
    let until = match &target.time {
        Some(time) => Some(
            time.parse::<jiff::Timestamp>()
                .map_err(|e| format!("spec.bootstrap.recovery.target.time {time:?}: {e}"))?
                .to_string(),
        ),
        None => None,
    };
    let until_gtid_set = match &target.gtid_set {
        Some(gtids) => Some(
            GtidSet::parse(gtids)
                .map_err(|e| format!("spec.bootstrap.recovery.target.gtidSet: {e}"))?
                .to_string(),
        ),
        None => None,
    };
    Ok(Some(ReplaySource {
        until,
        until_gtid_set,
    }))
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("the restore's settings are missing or malformed: {0}")]
    Settings(String),
    #[error("the object store: {0}")]
    Store(Box<objectstore::StoreError>),
    #[error(transparent)]
    Manifest(#[from] super::manifest::ManifestError),
    #[error("the backup is not the one expected: {0}")]
    Mismatch(String),
    #[error("unpacking the backup failed: {0}")]
    Unpack(String),
    #[error("the restored data: {0}")]
    Server(String),
}

// Boxed: the store's errors carry its whole answer, and would make every result large.
impl From<objectstore::StoreError> for RestoreError {
    fn from(error: objectstore::StoreError) -> Self {
        Self::Store(Box::new(error))
    }
}

/// `sakila-operator restore`, in the restore init container of every pod of a restored cluster.
pub async fn run() -> Result<(), RestoreError> {
    let result = restore_if_needed().await;
    if let Err(e) = &result {
        super::runner::leave_termination_message(&e.to_string());
    }
    result
}

async fn restore_if_needed() -> Result<(), RestoreError> {
    let pod = std::env::var("POD_NAME").unwrap_or_default();
    if !pod.ends_with("-0") {
        tracing::info!(%pod, "only instance 0 is restored; the others are cloned from it");
        return Ok(());
    }
    let datadir = Path::new(DATA_MOUNT).join("data");
    if datadir.join("mysql").is_dir() {
        tracing::info!("the data directory exists; nothing to restore");
        return Ok(());
    }
    // The operator removes the settings once the cluster had its first primary: an empty data
    // directory after that is a lost volume, which is cloned from the primary like any replica;
    // the old backup would bring back less than the cluster acknowledged since.
    let Ok(settings) = std::env::var(RESTORE_SETTINGS_ENV) else {
        tracing::info!("the cluster was restored already; an empty instance 0 is cloned");
        return Ok(());
    };
    let settings: RestoreSettings = serde_json::from_str(&settings)
        .map_err(|e| RestoreError::Settings(format!("{RESTORE_SETTINGS_ENV}: {e}")))?;
    let staging = Path::new(DATA_MOUNT).join("data.restoring");
    let result = restore_into(&settings, &staging).await;
    if result.is_err() {
        // Never leave a partial copy that a later start could take for data.
        let _ = std::fs::remove_dir_all(&staging);
        return result;
    }
    std::fs::rename(&staging, &datadir)
        .map_err(|e| RestoreError::Unpack(format!("moving the restored data into place: {e}")))?;
    tracing::info!("restored");
    Ok(())
}

/// A backup downloaded, checked and unpacked.
pub(super) struct FetchedBackup {
    /// The GTID set its data must hold: the `MySQLBackup`'s, else its manifest's.
    pub gtid_set: GtidSet,
    /// Its compressed size.
    pub size_bytes: u64,
    /// The binary log archive that continues it, as its manifest names it.
    pub archive: Option<String>,
}

/// Downloads the backup `settings` names into `staging` (emptied first), checking its SHA-256
/// against its manifest's and the `MySQLBackup`'s.
pub(super) async fn fetch_backup(
    settings: &RestoreSettings,
    staging: &Path,
) -> Result<(ObjectStore, FetchedBackup), RestoreError> {
    let store = settings
        .store
        .open_from_env()
        .map_err(RestoreError::Settings)?;
    let manifest_key = store.key(&format!("{}/{MANIFEST_OBJECT}", settings.directory));
    let manifest = Manifest::from_json(&store.get(&manifest_key).await?)?;
    if let Some(expected) = &settings.sha256
        && expected != &manifest.sha256
    {
        return Err(RestoreError::Mismatch(format!(
            "the MySQLBackup says SHA-256 {expected}, the store's manifest {}",
            manifest.sha256
        )));
    }
    let _ = std::fs::remove_dir_all(staging);
    std::fs::create_dir_all(staging).map_err(|e| RestoreError::Unpack(e.to_string()))?;
    let data_key = store.key(&format!("{}/{}", settings.directory, manifest.data_object));
    tracing::info!(key = %data_key, size_bytes = manifest.size_bytes, "downloading and unpacking");
    let (size, sha256, unpacked) = download_and_unpack(&store, &data_key, staging).await?;
    // Damaged data fails both checks; the checksum's mismatch says what happened.
    if size != manifest.size_bytes || sha256 != manifest.sha256 {
        return Err(RestoreError::Mismatch(format!(
            "downloaded {size} bytes with SHA-256 {sha256}; the manifest says {} bytes, {}",
            manifest.size_bytes, manifest.sha256
        )));
    }
    unpacked.map_err(|e| RestoreError::Unpack(e.to_string()))?;
    let gtid_set = GtidSet::parse(settings.gtid_set.as_deref().unwrap_or(&manifest.gtid_set))
        .map_err(|e| RestoreError::Mismatch(format!("the backup's GTID set: {e}")))?;
    Ok((
        store,
        FetchedBackup {
            gtid_set,
            size_bytes: size,
            archive: manifest.archive,
        },
    ))
}

async fn restore_into(settings: &RestoreSettings, staging: &Path) -> Result<(), RestoreError> {
    let (store, fetched) = fetch_backup(settings, staging).await?;
    let expected = fetched.gtid_set;
    let server = super::runner::LocalServer::on_restored_data(staging)
        .await
        .map_err(|e| RestoreError::Server(e.to_string()))?;
    let session = match server.session().await {
        Ok(session) => session,
        Err(e) => {
            server.kill().await;
            return Err(RestoreError::Server(e.to_string()));
        }
    };
    let socket = server.socket().to_string();
    let archive = fetched.archive;
    match adopt_and_replay(&session, &store, settings, archive, &socket, &expected).await {
        Ok(()) => server
            .shut_down_through(session)
            .await
            .map_err(|e| RestoreError::Server(e.to_string())),
        // The data is thrown away: no clean shutdown needed.
        Err(e) => {
            server.kill().await;
            Err(e)
        }
    }
}

/// Makes the data this cluster's (no replication channel of the cluster it came from, this
/// cluster's passwords), replays the archived binary log when the restore has a target, and
/// checks the data then holds exactly the backup's transactions and those replayed.
async fn adopt_and_replay(
    session: &crate::mysql::MySqlSession,
    store: &ObjectStore,
    settings: &RestoreSettings,
    archive: Option<String>,
    socket: &str,
    backup: &GtidSet,
) -> Result<(), RestoreError> {
    let failed =
        |what: &str, e: crate::mysql::MySqlError| RestoreError::Server(format!("{what}: {e}"));
    session
        .reset_replica_all()
        .await
        .map_err(|e| failed("forgetting the replication channel", e))?;
    let accounts = accounts_of_this_cluster()?;
    session
        .set_passwords(&accounts)
        .await
        .map_err(|e| failed("setting this cluster's passwords", e))?;
    check_holds(session, backup, "the backup").await?;
    let Some(replay) = &settings.replay else {
        return Ok(());
    };
    let directory = archive.ok_or_else(|| {
        RestoreError::Settings(
            "the backup's manifest names no binary log archive (its cluster did not archive \
             when it was taken): it restores only to its own point; leave out \
             spec.bootstrap.recovery.target"
                .into(),
        )
    })?;
    // The grant tables are loaded now: the replay logs in as root with this cluster's password.
    let root = std::env::var("ROOT_PASSWORD").unwrap_or_default();
    let scratch = Path::new(DATA_MOUNT).join("replay.tmp");
    let replayed =
        super::replay::replay(store, &directory, replay, backup, socket, &root, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let replayed = replayed?;
    // The replayed history may have changed these accounts' passwords in the old cluster.
    session
        .set_passwords(&accounts)
        .await
        .map_err(|e| failed("setting this cluster's passwords after the replay", e))?;
    check_holds(
        session,
        &backup.union(&replayed.gtid_set),
        "the backup and the replayed binary log",
    )
    .await
}

/// Checks the data holds exactly `expected`, no more and no less.
pub(super) async fn check_holds(
    session: &crate::mysql::MySqlSession,
    expected: &GtidSet,
    what: &str,
) -> Result<(), RestoreError> {
    let held = session
        .status()
        .await
        .map_err(|e| RestoreError::Server(format!("reading the GTID set: {e}")))?
        .gtid_executed;
    if &held != expected {
        return Err(RestoreError::Mismatch(format!(
            "the restored data holds the GTID set {held}, {what} {expected}"
        )));
    }
    tracing::info!(gtid_set = %held, "the restored data holds exactly {what}'s transactions");
    Ok(())
}

/// Root and the operator's accounts with this cluster's passwords, from the same variables
/// init.sh reads; the clone donor's only when the Secret has one.
fn accounts_of_this_cluster() -> Result<Vec<Account>, RestoreError> {
    let password = |name: &str| {
        std::env::var(name).map_err(|_| RestoreError::Settings(format!("{name} is not set")))
    };
    let account = |user: &str, host: &str, password: String| Account {
        credentials: Credentials::new(user, password),
        host: host.into(),
    };
    let root = password("ROOT_PASSWORD")?;
    let mut accounts = vec![
        account("root", "localhost", root.clone()),
        account("root", "%", root),
        account(naming::OPERATOR_USER, "%", password("OPERATOR_PASSWORD")?),
        account(
            naming::REPLICATION_USER,
            "%",
            password("REPLICATION_PASSWORD")?,
        ),
        account(naming::PROBE_USER, "localhost", password("PROBE_PASSWORD")?),
    ];
    if let Ok(clone) = password("CLONE_PASSWORD")
        && !clone.is_empty()
    {
        accounts.push(account(naming::CLONE_USER, "%", clone));
    }
    Ok(accounts)
}

/// Streams the object through SHA-256 and zstd into tar's unpacker on a blocking thread;
/// returns the bytes read, their SHA-256 and how the unpacking went.
async fn download_and_unpack(
    store: &ObjectStore,
    key: &str,
    into: &Path,
) -> Result<(u64, String, std::io::Result<()>), RestoreError> {
    let mut body = store.get_stream(key).await?;
    let (sender, receiver) = mpsc::channel::<Bytes>(4);
    let target = into.to_path_buf();
    let unpacker = tokio::task::spawn_blocking(move || unpack(receiver, &target));
    let mut download_error = None;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => {
                if sender.send(bytes).await.is_err() {
                    break; // the unpacker's thread ended; its result says why
                }
            }
            Err(e) => {
                download_error = Some(e);
                break;
            }
        }
    }
    drop(sender);
    let unpacked = unpacker
        .await
        .map_err(|e| RestoreError::Unpack(format!("the unpacking task failed: {e}")))?;
    if let Some(e) = download_error {
        return Err(e.into());
    }
    Ok(unpacked)
}

/// The bytes read, their SHA-256, and the unpacking's result: the whole object is read either
/// way, so a damaged one is told by its checksum.
fn unpack(receiver: mpsc::Receiver<Bytes>, into: &PathBuf) -> (u64, String, std::io::Result<()>) {
    let mut reader = HashingReader {
        receiver,
        current: Bytes::new(),
        hasher: Sha256::new(),
        size: 0,
    };
    let unpacked = (|| {
        let decoder = zstd::Decoder::new(&mut reader)?;
        let mut archive = tar::Archive::new(decoder);
        archive.set_preserve_permissions(true);
        archive.unpack(into)
    })();
    // Read what tar and zstd left (padding, or all after damage), so the checksum covers the
    // whole object. Reading from the channel cannot fail.
    let _ = std::io::copy(&mut reader, &mut std::io::sink());
    let sha256 = reader
        .hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (reader.size, sha256, unpacked)
}

/// Reads the downloaded chunks in order, hashing them as they pass.
struct HashingReader {
    receiver: mpsc::Receiver<Bytes>,
    current: Bytes,
    hasher: Sha256,
    size: u64,
}

impl Read for HashingReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                Some(chunk) => {
                    self.hasher.update(&chunk);
                    self.size += chunk.len() as u64;
                    self.current = chunk;
                }
                None => return Ok(0),
            }
        }
        let n = buffer.len().min(self.current.len());
        buffer[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{MySQLBackupSpec, MySQLBackupStatus, ObjectStoreSpec, RecoverySourceSpec};

    fn store() -> ObjectStoreSpec {
        ObjectStoreSpec {
            endpoint: "http://minio:9000".into(),
            bucket: "backups".into(),
            path: "prod".into(),
            region: "us-east-1".into(),
            path_style: true,
            credentials_secret: "keys".into(),
            ca_bundle: None,
        }
    }

    fn backup(status: Option<MySQLBackupStatus>) -> MySQLBackup {
        let mut backup = MySQLBackup::new(
            "nightly",
            MySQLBackupSpec {
                cluster: "orders".into(),
            },
        );
        backup.status = status;
        backup
    }

    fn completed() -> MySQLBackupStatus {
        MySQLBackupStatus {
            phase: Some(BackupPhase::Completed),
            sha256: Some("ab".repeat(32)),
            gtid_set: Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5".into()),
            store: Some(store()),
            ..Default::default()
        }
    }

    fn by_name() -> RecoverySpec {
        RecoverySpec {
            backup: Some("nightly".into()),
            source: None,
            target: None,
        }
    }

    #[test]
    fn a_completed_backup_resolves_to_its_directory_checksum_and_gtid_set() {
        let source = restore_source("shop", &by_name(), Some(&backup(Some(completed())))).unwrap();
        assert_eq!(source.directory, "shop/orders/backups/nightly");
        assert_eq!(source.store, store());
        assert_eq!(source.backup.as_deref(), Some("nightly"));
        assert_eq!(source.sha256, completed().sha256);
        assert_eq!(source.gtid_set, completed().gtid_set);
    }

    #[test]
    fn a_backup_that_cannot_be_restored_says_why() {
        let cases: Vec<(&str, Option<MySQLBackup>, &str)> = vec![
            (
                "missing",
                None,
                "the MySQLBackup nightly does not exist in shop",
            ),
            (
                "new",
                Some(backup(None)),
                "the MySQLBackup nightly is new, not Completed",
            ),
            (
                "failed",
                Some(backup(Some(MySQLBackupStatus {
                    phase: Some(BackupPhase::Failed),
                    message: Some("access denied".into()),
                    ..Default::default()
                }))),
                "is Failed, not Completed (access denied)",
            ),
            (
                "no store recorded",
                Some(backup(Some(MySQLBackupStatus {
                    store: None,
                    ..completed()
                }))),
                "does not record its store",
            ),
        ];
        for (name, backup, expected) in cases {
            let error = restore_source("shop", &by_name(), backup.as_ref()).unwrap_err();
            assert!(error.contains(expected), "{name}: {error}");
            assert!(
                error.starts_with("spec.bootstrap.recovery.backup"),
                "{name}: {error}"
            );
        }
    }

    #[test]
    fn a_backup_named_in_a_store_needs_no_mysqlbackup_and_is_checked_by_its_manifest() {
        let recovery = RecoverySpec {
            backup: None,
            target: None,
            source: Some(RecoverySourceSpec {
                store: store(),
                namespace: "old".into(),
                cluster: "orders".into(),
                backup: "last".into(),
            }),
        };
        let source = restore_source("shop", &recovery, None).unwrap();
        assert_eq!(source.directory, "old/orders/backups/last");
        assert_eq!((source.sha256, source.gtid_set), (None, None));
    }

    #[tokio::test]
    async fn unpacking_hashes_every_byte_it_reads() {
        let root = std::env::temp_dir().join(format!("sakila-unpack-{}", std::process::id()));
        let source = root.join("source");
        std::fs::create_dir_all(source.join("db")).unwrap();
        std::fs::write(source.join("db/t.ibd"), vec![3u8; 100_000]).unwrap();
        let mut archive = Vec::new();
        {
            let mut encoder = zstd::Encoder::new(&mut archive, 3).unwrap();
            {
                let mut tar = tar::Builder::new(&mut encoder);
                tar.append_dir_all(".", &source).unwrap();
                tar.finish().unwrap();
            }
            encoder.finish().unwrap();
        }
        let expected: String = Sha256::digest(&archive)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let run = |object: Vec<u8>, into: &str| {
            let target = root.join(into);
            async move {
                let (sender, receiver) = mpsc::channel(2);
                let unpacker = tokio::task::spawn_blocking(move || unpack(receiver, &target));
                for chunk in object.chunks(1000) {
                    // The unpacker reads everything, also after it failed.
                    sender.send(Bytes::copy_from_slice(chunk)).await.unwrap();
                }
                drop(sender);
                unpacker.await.unwrap()
            }
        };
        let (size, sha256, unpacked) = run(archive.clone(), "restored").await;
        unpacked.unwrap();
        assert_eq!((size, sha256), (archive.len() as u64, expected.clone()));
        assert_eq!(
            std::fs::read(root.join("restored/db/t.ibd")).unwrap(),
            vec![3u8; 100_000]
        );

        // Damaged: the unpacking fails, and the checksum over the whole object tells why.
        let mut damaged = archive.clone();
        damaged[archive.len() / 2] ^= 0xff;
        let (size, sha256, unpacked) = run(damaged, "damaged").await;
        assert_eq!(size, archive.len() as u64);
        assert_ne!(sha256, expected);
        assert!(unpacked.is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
