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
    let indexes = read_indexes(store, &layout).await?;
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

/// Every segment's index in the archive.
pub async fn read_indexes(
    store: &ObjectStore,
    layout: &ArchiveLayout,
) -> Result<Vec<SegmentIndex>, RestoreError> {
    let listed = store
        .list(&store.key(&format!("{}/", layout.directory())))
        .await?;
    let mut indexes = Vec::new();
    for seq in listed
        .iter()
        .filter_map(|o| ArchiveLayout::seq_of_index(&o.key))
    {
        let body = store.get(&store.key(&layout.index(seq))).await?;
        indexes.push(serde_json::from_slice(&body).map_err(|e| {
            RestoreError::Mismatch(format!("the index of segment {seq} is malformed: {e}"))
        })?);
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
