//! `sakila-operator backup`: what runs inside a backup's Job, in a container of the cluster's
//! own mysqld image (the operator's binary is copied in by an init container).
//!
//! It starts a throwaway mysqld with an empty data directory in the pod's scratch volume, clones
//! the donor instance into a second directory there (`CLONE INSTANCE ... DATA DIRECTORY`, so the
//! donor keeps serving and nothing is written to any volume of the cluster), then starts a server
//! on the copy: that finishes the clone's recovery, proves the copy starts, and is the only way to
//! learn its clone point (`clone_status` of a directory clone records the GTID set and binary log
//! position only at the copy's first start). After a clean shutdown the copy is streamed as a
//! zstd-compressed tar to the object store in parts while it is read. The manifest goes last: a backup without one is
//! incomplete. Whatever fails is written to the container's termination message, which the
//! operator reports on the `MySQLBackup`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::manifest::{BackupLayout, DATA_OBJECT, MANIFEST_FORMAT, Manifest};
use super::settings::{CLONE_PASSWORD_ENV, RunnerSettings};
use crate::mysql::{
    Credentials, Endpoint, MySqlAdmin, MySqlClient, MySqlConnector, MySqlError, PeerTls,
};
use crate::objectstore::{self, ObjectStore, StoreError};

/// How long the clone may take: a large data set over a slow network.
const CLONE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// How long the throwaway mysqld may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// The size of each chunk handed from the compressor to the upload.
const CHUNK_BYTES: usize = 1 << 20;
/// Where Kubernetes reads a failed container's message from.
const TERMINATION_LOG: &str = "/dev/termination-log";
/// A termination message is cut at 4096 bytes.
const TERMINATION_MESSAGE_LIMIT: usize = 4000;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("the backup Job's settings are missing or malformed: {0}")]
    Settings(String),
    #[error("the throwaway mysqld {step} failed: {detail}")]
    Recipient { step: &'static str, detail: String },
    #[error("cloning {donor} failed: {source}")]
    Clone { donor: String, source: MySqlError },
    #[error("the object store refused the backup: {0}")]
    Store(Box<StoreError>),
    #[error("packing the cloned data failed: {0}")]
    Pack(String),
}

// Boxed: the store's errors carry its whole answer, and would make every result large.
impl From<StoreError> for RunnerError {
    fn from(error: StoreError) -> Self {
        Self::Store(Box::new(error))
    }
}

/// Runs the whole backup; on failure also leaves the message for the operator.
pub async fn run() -> Result<(), RunnerError> {
    let result = run_backup().await;
    if let Err(e) = &result {
        leave_termination_message(&e.to_string());
    }
    result
}

/// Writes why the container failed where Kubernetes shows it (the pod's status), cut to what
/// fits. Best effort: outside a pod there is no termination log.
pub(super) fn leave_termination_message(message: &str) {
    let mut end = message.len().min(TERMINATION_MESSAGE_LIMIT);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let _ = std::fs::write(TERMINATION_LOG, &message[..end]);
}

async fn run_backup() -> Result<(), RunnerError> {
    let settings =
        RunnerSettings::from_env(|name| std::env::var(name).ok()).map_err(RunnerError::Settings)?;
    let clone_password = secret_env(CLONE_PASSWORD_ENV)?;
    let store = settings
        .store
        .open_from_env()
        .map_err(RunnerError::Settings)?;
    // Fail before the copy when the store cannot take it.
    store.head_bucket().await?;

    let started_at = jiff::Timestamp::now();
    let scratch = PathBuf::from(&settings.scratch);
    let copy = scratch.join("copy");
    let recipient = LocalServer::fresh(&scratch, &scratch.join("recipient")).await?;
    tracing::info!(donor = %settings.donor_host, "cloning");
    let cloned = clone_into(&recipient, &settings, &clone_password, &copy).await;
    recipient.kill().await;
    cloned?;
    tracing::info!("cloned; starting a server on the copy to read its clone point");
    let check = LocalServer::on_data(&scratch, &copy).await?;
    let point = check.clone_point().await;
    check.shut_down().await?;
    let point = point?;
    tracing::info!(gtid_set = %point.gtid_executed, binlog_file = %point.binlog_file,
        binlog_position = point.binlog_position, "the copy is consistent; uploading");

    let layout = BackupLayout::new(&settings.namespace, &settings.cluster, &settings.backup);
    let uploaded = upload_directory(&store, &store.key(&layout.data()), &copy).await?;
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        namespace: settings.namespace.clone(),
        cluster: settings.cluster.clone(),
        backup: settings.backup.clone(),
        source_instance: settings.donor_pod.clone(),
        mysql_version: point.server_version,
        gtid_set: point.gtid_executed.to_string(),
        binlog_file: point.binlog_file,
        binlog_position: point.binlog_position,
        started_at: started_at.to_string(),
        completed_at: jiff::Timestamp::now().to_string(),
        data_object: DATA_OBJECT.into(),
        size_bytes: uploaded.size_bytes,
        sha256: uploaded.sha256_hex,
        archive: settings.archive.clone(),
    };
    store
        .put(
            &store.key(&layout.manifest()),
            Bytes::from(manifest.to_json()),
        )
        .await?;
    tracing::info!(
        size_bytes = manifest.size_bytes,
        parts = uploaded.parts,
        "backup complete"
    );
    Ok(())
}

fn secret_env(name: &str) -> Result<String, RunnerError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| RunnerError::Settings(format!("{name} is not set")))
}

/// A mysqld of the Job's own, reachable only through its Unix socket in the scratch volume.
pub(super) struct LocalServer {
    process: Child,
    socket: String,
    step: &'static str,
}

impl LocalServer {
    /// The clone's recipient: a server on a new, empty data directory (root without password).
    async fn fresh(scratch: &Path, datadir: &Path) -> Result<Self, RunnerError> {
        const STEP: &str = "recipient";
        let common = common_arguments(scratch, datadir, STEP)?;
        let status = Command::new("mysqld")
            .args(&common)
            .arg("--initialize-insecure")
            .stdin(Stdio::null())
            .status()
            .await
            .map_err(|e| recipient_error(STEP, format!("cannot run mysqld: {e}")))?;
        if !status.success() {
            return Err(recipient_error(
                STEP,
                format!("mysqld --initialize-insecure exited with {status}"),
            ));
        }
        Self::start(scratch, common, &["--skip-log-bin"], STEP).await
    }

    /// A server on a copy of a cluster's data (a backup's, or a restore's): its first start
    /// completes the clone. Without grant tables, since the copy's accounts are the cluster's,
    /// whose passwords are not known here; that also keeps it off the network.
    pub(super) async fn on_data(scratch: &Path, datadir: &Path) -> Result<Self, RunnerError> {
        const STEP: &str = "server on the copy";
        let common = common_arguments(scratch, datadir, STEP)?;
        let extra = [
            "--skip-grant-tables",
            "--gtid-mode=ON",
            "--enforce-gtid-consistency=ON",
            // The cluster's binary log name, so a restored instance continues the same series.
            "--log-bin=binlog",
            "--server-id=1",
            // A copy of a replica holds its replication channel: it must not fetch (and apply)
            // anything past the clone point from the cluster.
            "--skip-replica-start",
            // A point-in-time restore replays bulk statements as single BINLOG statements.
            "--max-allowed-packet=1073741824",
        ];
        Self::start(scratch, common, &extra, STEP).await
    }

    async fn start(
        scratch: &Path,
        common: Vec<String>,
        extra: &[&str],
        step: &'static str,
    ) -> Result<Self, RunnerError> {
        let socket = scratch.join("mysqld.sock").display().to_string();
        // A server of an earlier attempt killed in this scratch directory (a restore tried again
        // after a failure) leaves its socket's lock file, naming a pid that the new server may
        // well have (the container starts the same processes in the same order), which it then
        // takes for another server and refuses to start: every later attempt would fail so.
        for stale in ["mysqld.sock", "mysqld.sock.lock", "mysqld.pid"] {
            let _ = std::fs::remove_file(scratch.join(stale));
        }
        let mut process = Command::new("mysqld")
            .args(&common)
            .args([
                format!("--socket={socket}"),
                format!("--pid-file={}", scratch.join("mysqld.pid").display()),
                "--skip-networking".into(),
                "--mysqlx=OFF".into(),
                "--secure-file-priv=NULL".into(),
                "--plugin-load-add=mysql_clone.so".into(),
            ])
            .args(extra)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| recipient_error(step, format!("cannot run mysqld: {e}")))?;
        let client = client();
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        let endpoint = Endpoint::socket(socket.clone());
        loop {
            match client.connect(&endpoint, &root()).await {
                Ok(_) => break,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(recipient_error(
                        step,
                        format!("no connection within {STARTUP_TIMEOUT:?}: {e}"),
                    ));
                }
                Err(_) => {
                    if let Ok(Some(status)) = process.try_wait() {
                        return Err(recipient_error(
                            step,
                            format!("mysqld exited with {status}; see its log above"),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        Ok(Self {
            process,
            socket,
            step,
        })
    }

    /// Its unix socket.
    pub(super) fn socket(&self) -> &str {
        &self.socket
    }

    /// A server on restored data, its scratch files in the pod's `/tmp`.
    pub(super) async fn on_restored_data(datadir: &Path) -> Result<Self, RunnerError> {
        Self::on_data(Path::new("/tmp"), datadir).await
    }

    pub(super) async fn session(&self) -> Result<crate::mysql::MySqlSession, RunnerError> {
        client()
            .connect(&Endpoint::socket(self.socket.clone()), &root())
            .await
            .map_err(|e| recipient_error(self.step, e.to_string()))
    }

    /// A session whose statements may each run up to `query_timeout` (checking a large table).
    pub(super) async fn long_session(
        &self,
        query_timeout: Duration,
    ) -> Result<crate::mysql::MySqlSession, RunnerError> {
        MySqlClient::new(Duration::from_secs(5), query_timeout)
            .connect(&Endpoint::socket(self.socket.clone()), &root())
            .await
            .map_err(|e| recipient_error(self.step, e.to_string()))
    }

    async fn clone_point(&self) -> Result<crate::mysql::ClonePoint, RunnerError> {
        self.session()
            .await?
            .clone_point()
            .await
            .map_err(|e| recipient_error(self.step, format!("reading the clone point: {e}")))
    }

    /// A clean shutdown, so the files packed next are consistent without recovery.
    pub(super) async fn shut_down(self) -> Result<(), RunnerError> {
        let session = self.session().await?;
        self.shut_down_through(session).await
    }

    /// A clean shutdown through a session already open: once the grant tables are loaded (a
    /// restore set passwords), a new session could not log in.
    pub(super) async fn shut_down_through(
        mut self,
        session: crate::mysql::MySqlSession,
    ) -> Result<(), RunnerError> {
        // The server closes the connection as it goes down; its exit status is what counts.
        let _ = session.shutdown().await;
        match tokio::time::timeout(STARTUP_TIMEOUT, self.process.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(recipient_error(
                self.step,
                format!("mysqld exited with {status} at shutdown"),
            )),
            Ok(Err(e)) => Err(recipient_error(self.step, e.to_string())),
            Err(_) => Err(recipient_error(
                self.step,
                format!("mysqld did not stop within {STARTUP_TIMEOUT:?}"),
            )),
        }
    }

    /// Its data is thrown away: no clean shutdown needed.
    pub(super) async fn kill(mut self) {
        let _ = self.process.kill().await;
    }
}

fn client() -> MySqlClient {
    MySqlClient::new(Duration::from_secs(5), Duration::from_secs(60))
}

fn root() -> Credentials {
    Credentials::new("root", "")
}

fn recipient_error(step: &'static str, detail: String) -> RunnerError {
    RunnerError::Recipient { step, detail }
}

/// Options every local server takes: no option files, its data and temporary directories, the
/// smallest redo log (these servers do almost nothing).
fn common_arguments(
    scratch: &Path,
    datadir: &Path,
    step: &'static str,
) -> Result<Vec<String>, RunnerError> {
    let tmp = scratch.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| recipient_error(step, e.to_string()))?;
    Ok(vec![
        "--no-defaults".to_string(),
        format!("--datadir={}", datadir.display()),
        format!("--tmpdir={}", tmp.display()),
        "--innodb-redo-log-capacity=8M".into(),
        "--log-error-verbosity=2".into(),
    ])
}

/// Clones the donor into `copy` through the recipient.
async fn clone_into(
    recipient: &LocalServer,
    settings: &RunnerSettings,
    clone_password: &str,
    copy: &Path,
) -> Result<(), RunnerError> {
    let donor = Endpoint::new(settings.donor_host.clone(), settings.donor_port);
    let tls = match &settings.donor_ca_path {
        Some(ca_path) => PeerTls::Verified {
            ca_path: ca_path.clone(),
        },
        None => PeerTls::Unverified,
    };
    recipient
        .session()
        .await?
        .clone_to_directory(
            &donor,
            &Credentials::new(settings.clone_user.clone(), clone_password),
            &tls,
            &copy.display().to_string(),
            CLONE_TIMEOUT,
        )
        .await
        .map_err(|source| RunnerError::Clone {
            donor: settings.donor_pod.clone(),
            source,
        })
}

/// Streams `directory` as a zstd-compressed tar to `key`, compressing on a blocking thread
/// while the parts upload, so memory stays at about one part and nothing is written to disk.
async fn upload_directory(
    store: &ObjectStore,
    key: &str,
    directory: &Path,
) -> Result<objectstore::Uploaded, RunnerError> {
    let (sender, mut receiver) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let directory = directory.to_path_buf();
    let packer = tokio::task::spawn_blocking(move || pack(&directory, sender));
    let chunks = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let uploaded = store.upload(key, chunks).await;
    let packed = packer
        .await
        .map_err(|e| RunnerError::Pack(format!("the packing task failed: {e}")))?;
    // A packing error is the cause of an upload that ended early; report it first.
    packed.map_err(|e| RunnerError::Pack(e.to_string()))?;
    Ok(uploaded?)
}

/// Writes the tar of `directory` through zstd into `sender`, one chunk at a time.
fn pack(directory: &Path, sender: mpsc::Sender<std::io::Result<Bytes>>) -> std::io::Result<()> {
    let chunks = ChunkSender {
        buffer: Vec::with_capacity(CHUNK_BYTES),
        sender,
    };
    let mut encoder = zstd::Encoder::new(chunks, 3)?;
    {
        let mut archive = tar::Builder::new(&mut encoder);
        archive.follow_symlinks(false);
        archive.append_dir_all(".", directory)?;
        archive.finish()?;
    }
    let mut chunks = encoder.finish()?;
    chunks.flush()?;
    Ok(())
}

/// Hands the compressed bytes to the upload in chunks of [`CHUNK_BYTES`].
struct ChunkSender {
    buffer: Vec<u8>,
    sender: mpsc::Sender<std::io::Result<Bytes>>,
}

impl ChunkSender {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.sender.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the upload stopped taking data",
            )
        })
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[tokio::test]
    async fn a_packed_directory_unpacks_to_the_same_files() {
        let root = std::env::temp_dir().join(format!("sakila-pack-{}", std::process::id()));
        let source = root.join("source");
        std::fs::create_dir_all(source.join("db")).unwrap();
        std::fs::write(source.join("ibdata1"), vec![7u8; 3 * CHUNK_BYTES + 5]).unwrap();
        std::fs::write(source.join("db/t.ibd"), b"rows").unwrap();

        let (sender, mut receiver) = mpsc::channel(4);
        let packer = {
            let source = source.clone();
            tokio::task::spawn_blocking(move || pack(&source, sender))
        };
        let mut compressed = Vec::new();
        let mut chunks = 0;
        while let Some(chunk) = receiver.recv().await {
            compressed.extend_from_slice(&chunk.unwrap());
            chunks += 1;
        }
        packer.await.unwrap().unwrap();
        assert!(chunks >= 1);
        // Repetitive data compresses: the stream really is zstd.
        assert!(compressed.len() < CHUNK_BYTES);

        let unpacked = root.join("unpacked");
        tar::Archive::new(zstd::Decoder::new(&compressed[..]).unwrap())
            .unpack(&unpacked)
            .unwrap();
        let mut rows = String::new();
        std::fs::File::open(unpacked.join("db/t.ibd"))
            .unwrap()
            .read_to_string(&mut rows)
            .unwrap();
        assert_eq!(rows, "rows");
        assert_eq!(
            std::fs::read(unpacked.join("ibdata1")).unwrap(),
            vec![7u8; 3 * CHUNK_BYTES + 5]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn packing_stops_when_the_upload_stops_taking_data() {
        let root = std::env::temp_dir().join(format!("sakila-pack-stop-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        // Random bytes do not compress, so more than one chunk must be sent.
        let noise: Vec<u8> = (0..4 * CHUNK_BYTES).map(|_| rand::random::<u8>()).collect();
        std::fs::write(root.join("noise"), noise).unwrap();
        let (sender, receiver) = mpsc::channel(1);
        drop(receiver);
        let error = tokio::task::spawn_blocking({
            let root = root.clone();
            move || pack(&root, sender)
        })
        .await
        .unwrap()
        .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
