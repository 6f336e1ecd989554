//! Point-in-time recovery's second half, in the restore container: on a restored backup, replay
//! the archived binary log of the cluster that took it, up to the target. The segments to replay
//! are chosen by GTID (`archive::replay_chain`), each checked against its index's SHA-256, and
//! cut to the transactions the backup lacks up to the target (a time or a GTID set); what is
//! left runs through `mysqlbinlog | mysql` on the restore's local server, which records each
//! transaction under its original GTID. The caller then checks the data holds exactly the
//! backup's transactions and these.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use mysql_common::binlog::BinlogFile;
use mysql_common::binlog::consts::BinlogVersion;
use sha2::{Digest, Sha256};
use tokio::process::Command;

use super::archive::{
    Admit, ArchiveLayout, ArchivePosition, BINLOG_MAGIC, Piece, ReplayTarget, SegmentIndex, admit,
    covers, format_us, piece_of, replay_chain,
};
use super::restore::RestoreError;
use crate::api::ReplaySource;
use crate::mysql::{GnoInterval, GtidSet};
use crate::objectstore::{ObjectStore, StoreError, hex};

/// What a replay applied.
#[derive(Debug, Default)]
pub struct Replayed {
    pub gtid_set: GtidSet,
    pub transactions: u64,
    pub last_commit_us: Option<u64>,
}

/// Replays the archive in `directory`, to the target `source` names, on a server holding
/// `backup`, reached through `socket` as root with `password`; the cut segments are written to
/// `scratch` and removed after.
pub async fn replay(
    store: &ObjectStore,
    directory: &str,
    source: &ReplaySource,
    backup: &GtidSet,
    socket: &str,
    password: &str,
    scratch: &Path,
) -> Result<Replayed, RestoreError> {
    let mismatch = RestoreError::Mismatch;
    let layout = ArchiveLayout::at(directory);
    let target = replay_target(source, backup)?;
    let indexes = read_chain_indexes(store, &layout, backup, &target).await?;
    let chain = replay_chain(&indexes, backup).map_err(mismatch)?;
    if let Some(until_us) = target.until_us() {
        let position = read_position(store, &layout).await?;
        covers(&chain, position.as_ref(), until_us).map_err(mismatch)?;
    }
    std::fs::create_dir_all(scratch).map_err(|e| RestoreError::Unpack(e.to_string()))?;
    let mut replayed = Replayed::default();
    let mut files = Vec::new();
    for index in &chain {
        if target
            .until_us()
            .is_some_and(|until| index.first_commit_us > until)
        {
            break;
        }
        let bytes = download_segment(store, &layout, index).await?;
        let (cut, stop) = cut_segment(&bytes, backup, &target, &mut replayed)
            .map_err(|e| mismatch(format!("segment {}: {e}", index.seq)))?;
        if let Some(cut) = cut {
            let path = scratch.join(format!("replay-{:012}.binlog", index.seq));
            std::fs::write(&path, cut).map_err(|e| RestoreError::Unpack(e.to_string()))?;
            files.push(path);
        }
        if stop {
            break;
        }
    }
    target.reached(&replayed.gtid_set).map_err(mismatch)?;
    tracing::info!(
        segments = files.len(),
        transactions = replayed.transactions,
        gtid_set = %replayed.gtid_set,
        last_commit = %replayed.last_commit_us.map(format_us).unwrap_or_default(),
        "replaying the archived binary log"
    );
    let result = if files.is_empty() {
        Ok(())
    } else {
        apply(&files, socket, password).await
    };
    for file in &files {
        let _ = std::fs::remove_file(file);
    }
    result.map(|()| replayed)
}

/// Where the replay of `source` stops, on a backup holding `backup`.
fn replay_target(source: &ReplaySource, backup: &GtidSet) -> Result<ReplayTarget, RestoreError> {
    let settings = |what: String| RestoreError::Settings(what);
    if let Some(until) = &source.until {
        let time = until
            .parse::<jiff::Timestamp>()
            .map_err(|e| settings(format!("the target time {until}: {e}")))?;
        return Ok(ReplayTarget::time(time.as_microsecond().max(0) as u64));
    }
    if let Some(gtids) = &source.until_gtid_set {
        let target = GtidSet::parse(gtids)
            .map_err(|e| settings(format!("the target GTID set {gtids}: {e}")))?;
        return ReplayTarget::gtid_set(&target, backup).map_err(RestoreError::Mismatch);
    }
    Ok(ReplayTarget::latest())
}

/// The indexes a restore from `backup` to `target` needs: from the segment where the replay
/// starts (the last one whose preceding transactions the backup holds) to the one after which
/// the target needs nothing. The start is found by bisection, since the set archived before
/// each segment only grows along the archive: a restore reads about log2(n) indexes of an
/// archive of n segments before its chain, not all n. `replay_chain` then checks what was read.
pub async fn read_chain_indexes(
    store: &ObjectStore,
    layout: &ArchiveLayout,
    backup: &GtidSet,
    target: &ReplayTarget,
) -> Result<Vec<SegmentIndex>, RestoreError> {
    let seqs = list_index_seqs(store, layout).await?;
    search_chain(&seqs, backup, target, |seq| read_index(store, layout, seq)).await
}

/// [`read_chain_indexes`] over the sequence numbers `seqs` (ascending), reading each index
/// with `read` at most once.
async fn search_chain<F, Fut>(
    seqs: &[u64],
    backup: &GtidSet,
    target: &ReplayTarget,
    mut read: F,
) -> Result<Vec<SegmentIndex>, RestoreError>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Result<SegmentIndex, RestoreError>>,
{
    let mismatch = RestoreError::Mismatch;
    let mut read_already = std::collections::BTreeMap::new();
    // The first position whose segment follows transactions the backup lacks.
    let (mut low, mut high) = (0, seqs.len());
    while low < high {
        let middle = (low + high) / 2;
        let index = read(seqs[middle]).await?;
        let held = index.before().map_err(mismatch)?.is_subset_of(backup);
        read_already.insert(middle, index);
        if held {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    // None held: the chain from the first segment, which `replay_chain` refuses saying why.
    let start = low.saturating_sub(1);
    let mut chain = Vec::new();
    for (position, seq) in seqs.iter().enumerate().skip(start) {
        let index = match read_already.remove(&position) {
            Some(index) => index,
            None => read(*seq).await?,
        };
        let last = target.is_last_needed(&index).map_err(mismatch)?;
        chain.push(index);
        if last {
            break;
        }
    }
    Ok(chain)
}

async fn list_index_seqs(
    store: &ObjectStore,
    layout: &ArchiveLayout,
) -> Result<Vec<u64>, RestoreError> {
    let listed = store
        .list(&store.key(&format!("{}/", layout.directory())))
        .await?;
    let mut seqs: Vec<u64> = listed
        .iter()
        .filter_map(|o| ArchiveLayout::seq_of_index(&o.key))
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

async fn read_index(
    store: &ObjectStore,
    layout: &ArchiveLayout,
    seq: u64,
) -> Result<SegmentIndex, RestoreError> {
    let body = store.get(&store.key(&layout.index(seq))).await?;
    serde_json::from_slice(&body).map_err(|e| {
        RestoreError::Mismatch(format!("the index of segment {seq} is malformed: {e}"))
    })
}

/// Every segment's index in the archive.
pub async fn read_indexes(
    store: &ObjectStore,
    layout: &ArchiveLayout,
) -> Result<Vec<SegmentIndex>, RestoreError> {
    let mut indexes = Vec::new();
    for seq in list_index_seqs(store, layout).await? {
        indexes.push(read_index(store, layout, seq).await?);
    }
    Ok(indexes)
}

async fn read_position(
    store: &ObjectStore,
    layout: &ArchiveLayout,
) -> Result<Option<ArchivePosition>, RestoreError> {
    match store.get(&store.key(&layout.position())).await {
        Ok(body) => Ok(serde_json::from_slice(&body).ok()),
        Err(StoreError::NoSuchKey { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn download_segment(
    store: &ObjectStore,
    layout: &ArchiveLayout,
    index: &SegmentIndex,
) -> Result<Vec<u8>, RestoreError> {
    let bytes = store.get(&store.key(&layout.segment(index.seq))).await?;
    let sha256 = hex(&Sha256::digest(&bytes));
    if bytes.len() as u64 != index.size_bytes || sha256 != index.sha256 {
        return Err(RestoreError::Mismatch(format!(
            "segment {} has {} bytes with SHA-256 {sha256}; its index says {} bytes, {}",
            index.seq,
            bytes.len(),
            index.size_bytes,
            index.sha256
        )));
    }
    Ok(bytes.to_vec())
}

/// The segment cut to the transactions to apply (none: nothing to apply), and whether the
/// target was passed.
fn cut_segment(
    bytes: &[u8],
    backup: &GtidSet,
    target: &ReplayTarget,
    replayed: &mut Replayed,
) -> Result<(Option<Vec<u8>>, bool), String> {
    let events = BinlogFile::new(BinlogVersion::Version4, bytes).map_err(|e| e.to_string())?;
    let mut out = BINLOG_MAGIC.to_vec();
    let mut any = false;
    // Whether the events of the current transaction are kept.
    let mut keeping = false;
    for event in events {
        let event = event.map_err(|e| format!("reading an event: {e}"))?;
        let mut encoded = Vec::new();
        event
            .write(BinlogVersion::Version4, &mut encoded)
            .map_err(|e| e.to_string())?;
        match piece_of(&event) {
            Piece::Format => out.extend_from_slice(&encoded),
            Piece::Gtid {
                source,
                gno,
                committed_us,
            } => match admit(
                backup,
                &replayed.gtid_set,
                &source,
                gno,
                committed_us,
                target,
            ) {
                Admit::Stop => return Ok((any.then_some(out), true)),
                Admit::AlreadyHeld => keeping = false,
                Admit::Apply => {
                    keeping = true;
                    any = true;
                    out.extend_from_slice(&encoded);
                    replayed.gtid_set.insert(
                        source,
                        GnoInterval {
                            start: gno,
                            end: gno,
                        },
                    );
                    replayed.transactions += 1;
                    replayed.last_commit_us = Some(committed_us);
                }
            },
            Piece::Body | Piece::End => {
                if keeping {
                    out.extend_from_slice(&encoded);
                }
            }
            Piece::Skip => {}
        }
    }
    Ok((any.then_some(out), false))
}

/// `mysqlbinlog <files> | mysql`: each transaction runs under its original GTID.
async fn apply(files: &[PathBuf], socket: &str, password: &str) -> Result<(), RestoreError> {
    let failed = |what: &str, e: std::io::Error| RestoreError::Server(format!("{what}: {e}"));
    let mut decoder = Command::new("mysqlbinlog")
        .args(files)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed("running mysqlbinlog", e))?;
    let decoded: Stdio = decoder
        .stdout
        .take()
        .expect("stdout is piped")
        .try_into()
        .map_err(|e| failed("piping mysqlbinlog", e))?;
    let applier = Command::new("mysql")
        .args([
            &format!("--socket={socket}"),
            "--user=root",
            "--binary-mode",
            "--batch",
            // mysqlbinlog writes all the row events of a statement as one BINLOG statement:
            // a bulk INSERT of 64 MiB is one of about 86 MiB. 1 GiB is the most MySQL takes.
            "--max-allowed-packet=1073741824",
        ])
        .env("MYSQL_PWD", password)
        .stdin(decoded)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed("running mysql", e))?;
    let applied = applier
        .wait_with_output()
        .await
        .map_err(|e| failed("waiting for mysql", e))?;
    let decoded = decoder
        .wait_with_output()
        .await
        .map_err(|e| failed("waiting for mysqlbinlog", e))?;
    // The applier first: when it stops, the decoder dies of the closed pipe, which says
    // nothing of why.
    if !applied.status.success() {
        return Err(RestoreError::Server(format!(
            "replaying the binary log failed ({}): {}",
            applied.status,
            String::from_utf8_lossy(&applied.stderr).trim()
        )));
    }
    if !decoded.status.success() {
        return Err(RestoreError::Server(format!(
            "mysqlbinlog exited with {}: {}",
            decoded.status,
            String::from_utf8_lossy(&decoded.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive of `n` segments of one transaction each of source A, the first after A:1;
    /// the chain a restore from a backup holding A:1-`held` to `target` reads, and how many
    /// indexes it read.
    async fn searched(n: u64, held: u64, target: ReplayTarget) -> (Vec<u64>, usize) {
        use crate::backup::archive::tests::{A, index, set};
        let archive: Vec<SegmentIndex> = (1..=n)
            .map(|seq| index(seq, &format!("{A}:{}", seq + 1), &format!("{A}:1-{seq}")))
            .collect();
        let seqs: Vec<u64> = archive.iter().map(|i| i.seq).collect();
        let reads = std::cell::Cell::new(0);
        let backup = match held {
            0 => GtidSet::new(),
            held => set(&format!("{A}:1-{held}")),
        };
        let chain = search_chain(&seqs, &backup, &target, |seq| {
            reads.set(reads.get() + 1);
            let found = archive.iter().find(|i| i.seq == seq).cloned().unwrap();
            async move { Ok(found) }
        })
        .await
        .unwrap();
        (chain.iter().map(|i| i.seq).collect(), reads.get())
    }

    #[tokio::test]
    async fn a_restore_finds_its_chain_by_bisection_and_reads_only_as_far_as_its_target() {
        // Latest from a backup holding A:1-900: from segment 900 (A:901 after A:1-900) on.
        let (chain, reads) = searched(1000, 900, ReplayTarget::latest()).await;
        assert_eq!(chain, (900..=1000).collect::<Vec<_>>());
        assert!(reads <= 101 + 10, "{reads} reads");
        // To a time: segment 950 commits at 950.0-950.5 ms, the last one needed.
        let (chain, reads) = searched(1000, 900, ReplayTarget::time(950_200)).await;
        assert_eq!(chain, (900..=950).collect::<Vec<_>>());
        assert!(reads <= 51 + 10, "{reads} reads");
        // A backup older than the archive: the chain from its first segment.
        let (chain, _) = searched(10, 0, ReplayTarget::latest()).await;
        assert_eq!(chain.first(), Some(&1));
    }

    #[test]
    fn a_segment_that_is_not_a_binary_log_is_refused() {
        let mut replayed = Replayed::default();
        let error = cut_segment(
            b"not a binlog",
            &GtidSet::new(),
            &ReplayTarget::latest(),
            &mut replayed,
        )
        .unwrap_err();
        assert_eq!(error, "invalid binlog file header");
    }
}
