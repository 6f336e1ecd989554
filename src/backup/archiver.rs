//! The binary log archiver: one task per cluster with `spec.backup` (binlogs not disabled), in
//! the leading operator. It reads the primary's binary log as a replica would, from the first
//! transaction the archive lacks (by GTID, so a failover or switchover to another instance
//! continues where the archive ended), cuts it into segments of whole transactions
//! (`archive.rs`) and uploads each once its oldest transaction waited the configured delay.
//! Each round of the cluster hands it the current primary; a change of primary, store or delay
//! restarts the stream. What goes wrong is reported back to the round, which shows it in the
//! `BinlogArchived` condition; the database is never touched beyond the read.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use kube::Client;
use mysql_common::binlog::consts::BinlogVersion;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::archive::{
    ArchiveLayout, ArchivePosition, CatchUp, MAX_SEGMENT_BYTES, Piece, SegmentIndex, SegmentMeta,
    Segmenter, Step, is_payload, piece_of,
};
use super::controller::open_store;
use crate::api::ObjectStoreSpec;
use crate::metrics::Metrics;
use crate::mysql::{Credentials, Endpoint, GtidSet, MySqlClient};
use crate::objectstore::{ObjectStore, StoreError, Uploaded};

/// The server id the archiver's dump connection registers with: no instance has it (theirs are
/// small), and a second archiver with the same id replaces the first on the server, so two
/// operators never both read one primary's binary log.
const ARCHIVER_SERVER_ID: u32 = 4_000_000_001;
/// How often an idle stream sends a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A stream that sends nothing for this long, heartbeats included, is taken for dead.
const SILENCE: Duration = Duration::from_secs(15);
/// How long a failed archiver waits before it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// What a cluster's round hands its archiver.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveTarget {
    pub namespace: String,
    pub cluster: String,
    /// The cluster object's UID, which keys its archive.
    pub uid: String,
    pub store: ObjectStoreSpec,
    pub delay: Duration,
    /// The primary's pod name and endpoint, when there is a writable primary.
    pub primary: Option<(String, Endpoint)>,
    pub credentials: Credentials,
    /// The primary's `gtid_purged`: where an empty archive starts.
    pub purged: GtidSet,
}

impl ArchiveTarget {
    /// Whether a stream started for `self` still serves `other`.
    fn same_stream(&self, other: &ArchiveTarget) -> bool {
        self.store == other.store
            && self.uid == other.uid
            && self.delay == other.delay
            && self.primary == other.primary
            && self.credentials == other.credentials
    }
}

/// How the archive stands, for the cluster's condition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ArchiveHealth {
    #[default]
    Starting,
    /// Streaming from this instance.
    Archiving(String),
    /// Not archiving, and why.
    Failing(String),
}

struct Handle {
    target: watch::Sender<ArchiveTarget>,
    health: Arc<Mutex<ArchiveHealth>>,
    task: JoinHandle<()>,
}

/// The archivers this operator runs, by cluster UID.
#[derive(Default)]
pub struct Archivers {
    running: Mutex<HashMap<String, Handle>>,
}

impl Archivers {
    /// Runs the cluster's archiver for `target`, or stops it for `None`; returns how it stands.
    pub fn ensure(
        &self,
        cluster_uid: &str,
        client: &Client,
        connector: &MySqlClient,
        metrics: &Arc<Metrics>,
        target: Option<ArchiveTarget>,
    ) -> Option<ArchiveHealth> {
        let mut running = self.lock();
        let Some(target) = target else {
            if let Some(handle) = running.remove(cluster_uid) {
                handle.task.abort();
            }
            return None;
        };
        if let Some(handle) = running.get(cluster_uid)
            && !handle.task.is_finished()
        {
            handle.target.send_if_modified(|current| {
                let changed = current != &target;
                *current = target.clone();
                changed
            });
            return Some(lock(&handle.health).clone());
        }
        let (sender, receiver) = watch::channel(target);
        let health = Arc::new(Mutex::new(ArchiveHealth::Starting));
        let task = tokio::spawn(archive(
            client.clone(),
            connector.clone(),
            metrics.clone(),
            receiver,
            health.clone(),
        ));
        running.insert(
            cluster_uid.to_string(),
            Handle {
                target: sender,
                health,
                task,
            },
        );
        Some(ArchiveHealth::Starting)
    }

    /// Stops the archivers of clusters whose UID is not in `live`.
    pub fn forget_all_but(&self, live: &HashSet<String>) {
        self.lock().retain(|uid, handle| {
            let keep = live.contains(uid);
            if !keep {
                handle.task.abort();
            }
            keep
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Handle>> {
        lock(&self.running)
    }
}

impl Drop for Archivers {
    /// An operator that stops leading stops archiving: its successor takes over.
    fn drop(&mut self) {
        for handle in self.lock().values() {
            handle.task.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The archiver's life: stream while there is a primary, report and retry what fails.
async fn archive(
    client: Client,
    connector: MySqlClient,
    metrics: Arc<Metrics>,
    mut targets: watch::Receiver<ArchiveTarget>,
    health: Arc<Mutex<ArchiveHealth>>,
) {
    loop {
        let target = targets.borrow_and_update().clone();
        let result = match &target.primary {
            // Between primaries (a failover, a switchover) the condition keeps what it said:
            // the stream resumes from the new primary where the archive ended.
            None => Ok(()),
            Some((pod, endpoint)) => {
                let mut run = Stream {
                    client: &client,
                    connector: &connector,
                    metrics: &metrics,
                    target: &target,
                    health: &health,
                };
                run.stream(pod, endpoint, &mut targets).await
            }
        };
        match result {
            Ok(()) => {
                // The target changed (or there is no primary): wait for a change worth a stream.
                if target.primary.is_none() && targets.changed().await.is_err() {
                    return;
                }
            }
            Err(message) => {
                tracing::warn!(
                    namespace = %target.namespace,
                    cluster = %target.cluster,
                    error = %message,
                    "binary log archiving failed; trying again"
                );
                metrics.binlog_archive_failed(&target.namespace, &target.cluster);
                *lock(&health) = ArchiveHealth::Failing(message);
                let _ = tokio::time::timeout(RETRY_AFTER, targets.changed()).await;
            }
        }
    }
}

/// Where the archive ends: the next segment's number and every transaction archived.
async fn resume(
    store: &ObjectStore,
    layout: &ArchiveLayout,
) -> Result<Option<(u64, GtidSet)>, String> {
    let listed = store
        .list(&store.key(&format!("{}/", layout.directory())))
        .await
        .map_err(|e| format!("listing the archive: {e}"))?;
    let Some(last) = listed
        .iter()
        .filter_map(|o| ArchiveLayout::seq_of_index(&o.key))
        .max()
    else {
        return Ok(None);
    };
    let index: SegmentIndex = read_json(store, &store.key(&layout.index(last))).await?;
    Ok(Some((last + 1, index.after()?)))
}

async fn read_json<T: serde::de::DeserializeOwned>(
    store: &ObjectStore,
    key: &str,
) -> Result<T, String> {
    let body = store
        .get(key)
        .await
        .map_err(|e| format!("reading {key}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("{key} is malformed: {e}"))
}

/// One archiver's view of its cluster for one stream.
struct Stream<'a> {
    client: &'a Client,
    connector: &'a MySqlClient,
    metrics: &'a Metrics,
    target: &'a ArchiveTarget,
    health: &'a Mutex<ArchiveHealth>,
}

impl Stream<'_> {
    /// One stream from `pod`, until the target changes (Ok) or something fails (Err).
    async fn stream(
        &mut self,
        pod: &str,
        endpoint: &Endpoint,
        targets: &mut watch::Receiver<ArchiveTarget>,
    ) -> Result<(), String> {
        let (client, connector, target, health) =
            (self.client, self.connector, self.target, self.health);
        let store = open_store(client, &target.namespace, &target.store)
            .await
            .map_err(|e| e.to_string())?;
        let layout = ArchiveLayout::new(&target.namespace, &target.cluster, &target.uid);
        let (mut next_seq, mut archived) = resume(&store, &layout)
            .await?
            // An empty archive starts where the primary's binary log does.
            .unwrap_or((0, target.purged.clone()));
        let mut events = connector
            .binlog_stream(
                endpoint,
                &target.credentials,
                ARCHIVER_SERVER_ID,
                &archived,
                HEARTBEAT,
            )
            .await
            .map_err(|e| format!("reading the binary log of {pod}: {e}"))?;
        tracing::info!(
            namespace = %target.namespace, cluster = %target.cluster, %pod, seq = next_seq,
            after = %archived, "archiving the binary log"
        );
        let mut segmenter = Segmenter::new();
        let mut writing: Option<SegmentUpload> = None;
        // The server answers the request with its first event, or with why it refuses.
        let mut accepted = false;
        let mut last_event = Instant::now();
        let mut catch_up = CatchUp::default();
        let mut inside_payload = false;
        let mut position_written = Instant::now();
        let mut ticks = tokio::time::interval(HEARTBEAT);
        loop {
            let mut idle = false;
            let mut steps = Vec::new();
            tokio::select! {
                changed = targets.changed() => {
                    let next = targets.borrow_and_update().clone();
                    if changed.is_err() || !target.same_stream(&next) {
                        // What was committed goes up before the stream ends; an open transaction is
                        // read again by the next stream, from the archive's end.
                        if let Some(meta) = segmenter.seal_if_due(Instant::now(), Duration::ZERO, 0)
                            && let Some(upload) = writing.take()
                        {
                            self.seal(&store, &layout, upload, &meta, next_seq, &archived, pod).await?;
                        }
                        return Ok(());
                    }
                }
                event = events.next() => {
                    let event = match event {
                        None => return Err(format!("{pod} ended the binary log stream")),
                        Some(Err(e)) => return Err(format!("reading the binary log of {pod}: {e}")),
                        Some(Ok(event)) => event,
                    };
                    last_event = Instant::now();
                    if !accepted {
                        accepted = true;
                        *lock(health) = ArchiveHealth::Archiving(pod.to_string());
                    }
                    let piece = piece_of(&event);
                    // mysql_async hands out a compressed transaction's events after the payload
                    // event that holds them; the payload is what is archived.
                    if inside_payload && !matches!(piece, Piece::Gtid { .. } | Piece::Format) {
                        continue;
                    }
                    inside_payload = is_payload(&event);
                    idle = catch_up.caught_up(&event);
                    let mut bytes = Vec::with_capacity(event.data().len() + 32);
                    event
                        .write(BinlogVersion::Version4, &mut bytes)
                        .map_err(|e| format!("re-encoding an event: {e}"))?;
                    steps = segmenter
                        .push(piece, bytes, Instant::now())
                        .map_err(|e| format!("the binary log of {pod}: {e}"))?;
                }
                _ = ticks.tick() => {
                    if last_event.elapsed() > SILENCE {
                        return Err(format!(
                            "{pod} sent nothing, not even a heartbeat, for {SILENCE:?}"
                        ));
                    }
                }
            }
            steps.extend(
                segmenter
                    .seal_if_due(Instant::now(), target.delay, MAX_SEGMENT_BYTES)
                    .map(Step::Seal),
            );
            for step in steps {
                match step {
                    Step::Open(header) => {
                        let upload =
                            SegmentUpload::start(&store, store.key(&layout.segment(next_seq)));
                        upload.write(header).await?;
                        writing = Some(upload);
                    }
                    Step::Write(bytes) => {
                        writing
                            .as_ref()
                            .ok_or("an event outside any segment")?
                            .write(bytes)
                            .await?;
                    }
                    Step::Seal(meta) => {
                        let upload = writing.take().ok_or("a seal outside any segment")?;
                        self.seal(&store, &layout, upload, &meta, next_seq, &archived, pod)
                            .await?;
                        archived = archived.union(&meta.gtid_set);
                        next_seq += 1;
                        position_written = Instant::now();
                    }
                }
            }
            // Caught up (the server is at the end of its binary log), and nothing read waits for
            // upload: everything committed until now is archived.
            if idle
                && !segmenter.in_transaction()
                && !segmenter.holds_committed()
                && position_written.elapsed() >= target.delay
            {
                // The heartbeat left the server before it arrived here: commits in between are
                // not known to be archived, so the position claims a heartbeat period less.
                let position = ArchivePosition {
                    through_us: now_us().saturating_sub(HEARTBEAT.as_micros() as u64),
                    last_seq: next_seq.checked_sub(1),
                    archived: archived.to_string(),
                };
                put_json(&store, &layout.position(), &position).await?;
                position_written = Instant::now();
            }
        }
    }

    /// Completes a segment's upload, then writes its index: a segment without one is not part of
    /// the archive.
    #[allow(clippy::too_many_arguments)]
    async fn seal(
        &self,
        store: &ObjectStore,
        layout: &ArchiveLayout,
        upload: SegmentUpload,
        meta: &SegmentMeta,
        seq: u64,
        archived: &GtidSet,
        pod: &str,
    ) -> Result<(), String> {
        let uploaded = upload.finish().await?;
        let index = meta.index(seq, archived, pod, uploaded.size_bytes, uploaded.sha256_hex);
        put_json(store, &layout.index(seq), &index).await?;
        let waited = now_us().saturating_sub(meta.first_commit_us);
        self.metrics.binlog_archived(
            &self.target.namespace,
            &self.target.cluster,
            Duration::from_micros(waited),
        );
        tracing::debug!(
            seq,
            transactions = meta.transactions,
            size_bytes = index.size_bytes,
            "archived a segment"
        );
        Ok(())
    }
}

/// A segment going up while it is written: its bytes pass through a short channel into a
/// multipart upload, which holds about one part, so a transaction of any size costs the operator
/// no more memory than that.
struct SegmentUpload {
    chunks: Option<mpsc::Sender<std::io::Result<Bytes>>>,
    upload: Option<JoinHandle<Result<Uploaded, StoreError>>>,
}

/// Chunks (events, mostly under 8 KiB) waiting for the upload.
const CHUNKS_IN_FLIGHT: usize = 256;
/// The part size of segment uploads: the least S3 takes for a part other than the last.
const SEGMENT_PART_BYTES: usize = 5 * 1024 * 1024;

impl SegmentUpload {
    fn start(store: &ObjectStore, key: String) -> Self {
        let (chunks, mut receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let store = store
            .with_part_size(SEGMENT_PART_BYTES)
            .unwrap_or_else(|_| store.clone());
        let upload = tokio::spawn(async move {
            let stream = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
            store.upload(&key, stream).await
        });
        Self {
            chunks: Some(chunks),
            upload: Some(upload),
        }
    }

    async fn write(&self, bytes: Vec<u8>) -> Result<(), String> {
        let sent = match &self.chunks {
            Some(chunks) => chunks.send(Ok(Bytes::from(bytes))).await.is_ok(),
            None => false,
        };
        // A closed channel means the upload ended early; `finish` would say why.
        if sent {
            Ok(())
        } else {
            Err("the upload of a binary log segment stopped".into())
        }
    }

    async fn finish(mut self) -> Result<Uploaded, String> {
        drop(self.chunks.take());
        let upload = self.upload.take().expect("finished once");
        match upload.await {
            Ok(Ok(uploaded)) => Ok(uploaded),
            Ok(Err(e)) => Err(format!("uploading a binary log segment: {e}")),
            Err(e) => Err(format!(
                "the upload task of a binary log segment failed: {e}"
            )),
        }
    }
}

impl Drop for SegmentUpload {
    /// A segment left unfinished (the stream failed) is not completed in the store.
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            upload.abort();
        }
    }
}

async fn put_json<T: serde::Serialize>(
    store: &ObjectStore,
    relative: &str,
    value: &T,
) -> Result<(), String> {
    let key = store.key(relative);
    let body = serde_json::to_vec(value).expect("archive records serialise");
    store
        .put(&key, Bytes::from(body))
        .await
        .map_err(|e| format!("uploading {key}: {e}"))
}

fn now_us() -> u64 {
    jiff::Timestamp::now().as_microsecond().max(0) as u64
}
