//! Continuous archiving of a cluster's binary log, the pure part: where the archive lives, how
//! the primary's binlog stream is cut into segments of whole transactions, and which segments a
//! point-in-time restore replays on top of a backup.
//!
//! The archive is `<path>/<namespace>/<cluster>/binlogs/<uid>/`, one per life of the cluster
//! object (a cluster deleted and created again with the same name, for example restored to an
//! earlier point, has a history of its own, which must not continue the old one's archive; each
//! backup's manifest names the archive it belongs to): numbered segments (`<seq>.binlog`, a
//! binary log file of whole transactions: the magic, the source's format description, then the
//! transactions' events as the source wrote them) each with an index (`<seq>.json`, written
//! after its segment: the segment's GTID set, what was archived before it, its commit times and
//! checksum), and `position.json`, rewritten while the archiver is caught up, saying up to when
//! everything committed is archived. Continuity is by GTID, not by file name: each segment
//! records the set archived before it, and a restore refuses a chain where one segment does not
//! start where the one before ended.

use std::time::{Duration, Instant};

use mysql_common::binlog::consts::EventType;
use mysql_common::binlog::events::{Event, EventData};
use serde::{Deserialize, Serialize};

use crate::mysql::{GnoInterval, GtidSet, GtidSource};
use crate::objectstore::hex;

/// Every binary log file starts with these four bytes.
pub const BINLOG_MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
/// The index format; a restore refuses formats it does not know.
pub const INDEX_FORMAT: u32 = 1;
/// A segment is uploaded once it holds this much, whatever the delay.
pub const MAX_SEGMENT_BYTES: usize = 16 * 1024 * 1024;

/// Keys of one cluster's archive, relative to the store's configured path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveLayout {
    directory: String,
}

impl ArchiveLayout {
    /// The archive of the cluster object with this UID.
    pub fn new(namespace: &str, cluster: &str, uid: &str) -> Self {
        Self {
            directory: format!("{namespace}/{cluster}/binlogs/{uid}"),
        }
    }

    /// The layout of an archive whose directory was recorded.
    pub fn at(directory: &str) -> Self {
        Self {
            directory: directory.trim_end_matches('/').to_string(),
        }
    }

    pub fn directory(&self) -> &str {
        &self.directory
    }

    pub fn segment(&self, seq: u64) -> String {
        format!("{}/{seq:012}.binlog", self.directory)
    }

    pub fn index(&self, seq: u64) -> String {
        format!("{}/{seq:012}.json", self.directory)
    }

    pub fn position(&self) -> String {
        format!("{}/position.json", self.directory)
    }

    /// The sequence number of an index's key (full or relative), if it is one.
    pub fn seq_of_index(key: &str) -> Option<u64> {
        let name = key.rsplit('/').next()?;
        let digits = name.strip_suffix(".json")?;
        (digits.len() == 12 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
    }
}

/// `<seq>.json`: what one segment holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SegmentIndex {
    pub format: u32,
    pub seq: u64,
    /// The segment's transactions.
    pub gtid_set: String,
    /// Every transaction archived before this segment.
    pub archived_before: String,
    /// Commit times on the original source, microseconds since the epoch.
    pub first_commit_us: u64,
    pub last_commit_us: u64,
    pub transactions: u64,
    pub size_bytes: u64,
    pub sha256: String,
    /// The instance whose binary log it came from.
    pub source_instance: String,
}

impl SegmentIndex {
    pub fn gtids(&self) -> Result<GtidSet, String> {
        parse_set(&self.gtid_set, self.seq, "gtidSet")
    }

    pub fn before(&self) -> Result<GtidSet, String> {
        parse_set(&self.archived_before, self.seq, "archivedBefore")
    }

    /// Every transaction archived up to and including this segment.
    pub fn after(&self) -> Result<GtidSet, String> {
        Ok(self.before()?.union(&self.gtids()?))
    }
}

fn parse_set(text: &str, seq: u64, field: &str) -> Result<GtidSet, String> {
    GtidSet::parse(text).map_err(|e| format!("segment {seq}'s {field}: {e}"))
}

/// `position.json`: while the archiver is caught up, everything committed up to `throughUs` is in
/// the segments up to `lastSeq`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ArchivePosition {
    pub through_us: u64,
    pub last_seq: Option<u64>,
    pub archived: String,
}

/// What one event of the stream is to the segmenter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A format description: the start of a source binary log file.
    Format,
    /// The first event of a transaction.
    Gtid {
        source: GtidSource,
        gno: u64,
        committed_us: u64,
    },
    /// An event inside a transaction.
    Body,
    /// The event that commits a transaction (an XID, a `COMMIT`, a DDL statement).
    End,
    /// Not part of any transaction (rotations, heartbeats, the previous-GTIDs list).
    Skip,
}

/// What a sealed segment holds: its transactions and their commit times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMeta {
    pub gtid_set: GtidSet,
    pub first_commit_us: u64,
    pub last_commit_us: u64,
    pub transactions: u64,
}

impl SegmentMeta {
    /// Its index, given its number, the set archived before it, where it came from, and the
    /// size and SHA-256 of what was uploaded.
    pub fn index(
        &self,
        seq: u64,
        archived_before: &GtidSet,
        source_instance: &str,
        size_bytes: u64,
        sha256: String,
    ) -> SegmentIndex {
        SegmentIndex {
            format: INDEX_FORMAT,
            seq,
            gtid_set: self.gtid_set.to_string(),
            archived_before: archived_before.to_string(),
            first_commit_us: self.first_commit_us,
            last_commit_us: self.last_commit_us,
            transactions: self.transactions,
            size_bytes,
            sha256,
            source_instance: source_instance.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("a transaction came before any format description event")]
    NoFormat,
    #[error("a new binary log file began inside a transaction")]
    FormatInsideTransaction,
}

/// What the archiver does with the stream, as the segmenter decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Start a segment with these bytes (the magic and the format description).
    Open(Vec<u8>),
    /// Append these bytes to the open segment.
    Write(Vec<u8>),
    /// The open segment is complete: upload what was written, and index it with this.
    Seal(SegmentMeta),
}

/// The transaction whose commit is not seen yet.
#[derive(Debug)]
struct Open {
    source: GtidSource,
    gno: u64,
    committed_us: u64,
}

/// Cuts a binlog stream into segments of whole transactions, without holding them: each event
/// is written to the open segment as it comes, and a segment is sealed only between
/// transactions, so it never holds half of one, and a transaction of any size costs no memory.
#[derive(Debug, Default)]
pub struct Segmenter {
    format: Option<Vec<u8>>,
    open_transaction: Option<Open>,
    /// The open segment's transactions so far (`None`: no segment is open).
    segment: Option<SegmentMeta>,
    written: usize,
    since: Option<Instant>,
}

impl Segmenter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one event (its bytes as in a binary log file) of the stream; the bytes move into
    /// the step that writes them, never copied.
    pub fn push(
        &mut self,
        piece: Piece,
        event: Vec<u8>,
        now: Instant,
    ) -> Result<Vec<Step>, SegmentError> {
        let mut steps = Vec::new();
        match piece {
            Piece::Format => {
                if self.open_transaction.is_some() {
                    return Err(SegmentError::FormatInsideTransaction);
                }
                // A new source file: what came before was written under the old format.
                steps.extend(self.seal().map(Step::Seal));
                self.format = Some(event);
            }
            Piece::Gtid {
                source,
                gno,
                committed_us,
            } => {
                let Some(format) = &self.format else {
                    return Err(SegmentError::NoFormat);
                };
                if self.segment.is_none() {
                    let header = [&BINLOG_MAGIC[..], format].concat();
                    self.written = header.len();
                    steps.push(Step::Open(header));
                    self.segment = Some(SegmentMeta {
                        gtid_set: GtidSet::new(),
                        first_commit_us: committed_us,
                        last_commit_us: committed_us,
                        transactions: 0,
                    });
                }
                // A transaction whose commit never came (its server stopped) was never
                // committed; the stream ends with an error before another one starts.
                self.open_transaction = Some(Open {
                    source,
                    gno,
                    committed_us,
                });
                steps.push(self.write(event));
            }
            Piece::Body => {
                if self.open_transaction.is_some() {
                    steps.push(self.write(event));
                }
            }
            Piece::End => {
                if let Some(open) = self.open_transaction.take() {
                    steps.push(self.write(event));
                    let segment = self
                        .segment
                        .as_mut()
                        .expect("a transaction opens a segment");
                    if segment.transactions == 0 {
                        segment.first_commit_us = open.committed_us;
                        self.since = Some(now);
                    }
                    segment.gtid_set.insert(
                        open.source,
                        GnoInterval {
                            start: open.gno,
                            end: open.gno,
                        },
                    );
                    segment.last_commit_us = open.committed_us;
                    segment.transactions += 1;
                }
            }
            Piece::Skip => {}
        }
        Ok(steps)
    }

    fn write(&mut self, event: Vec<u8>) -> Step {
        self.written += event.len();
        Step::Write(event)
    }

    /// Whether a transaction is open (its commit not seen yet).
    pub fn in_transaction(&self) -> bool {
        self.open_transaction.is_some()
    }

    /// Whether committed transactions wait in an open segment.
    pub fn holds_committed(&self) -> bool {
        self.segment.as_ref().is_some_and(|s| s.transactions > 0)
    }

    /// Seals the open segment once its oldest transaction waited `delay` or it reached
    /// `max_bytes`, between transactions only.
    pub fn seal_if_due(
        &mut self,
        now: Instant,
        delay: Duration,
        max_bytes: usize,
    ) -> Option<SegmentMeta> {
        if self.in_transaction() || !self.holds_committed() {
            return None;
        }
        let waited = self
            .since
            .is_some_and(|since| now.saturating_duration_since(since) >= delay);
        if waited || self.written >= max_bytes {
            self.seal()
        } else {
            None
        }
    }

    fn seal(&mut self) -> Option<SegmentMeta> {
        self.since = None;
        self.written = 0;
        self.segment.take().filter(|s| s.transactions > 0)
    }
}

/// The archive a cluster writes now: none without `spec.backup`, with archiving off, or before
/// the cluster object has a UID.
pub fn archive_of(cluster: &crate::api::MySQLCluster) -> Option<ArchiveLayout> {
    cluster.spec.backup.as_ref()?.binlog_archive()?;
    Some(ArchiveLayout::new(
        cluster.metadata.namespace.as_deref().unwrap_or_default(),
        cluster.metadata.name.as_deref().unwrap_or_default(),
        cluster.metadata.uid.as_deref()?,
    ))
}

/// The segments a restore replays on a backup holding `backup`, in order: from the last one
/// whose predecessors the backup holds entirely, each starting where the one before ended.
/// An error says why the archive cannot bring the backup forward.
pub fn replay_chain(
    indexes: &[SegmentIndex],
    backup: &GtidSet,
) -> Result<Vec<SegmentIndex>, String> {
    let mut sorted = indexes.to_vec();
    sorted.sort_by_key(|i| i.seq);
    if let Some(unknown) = sorted.iter().find(|i| i.format != INDEX_FORMAT) {
        return Err(format!(
            "segment {} has index format {}, this operator reads {INDEX_FORMAT}",
            unknown.seq, unknown.format
        ));
    }
    let mut start = None;
    for (position, index) in sorted.iter().enumerate() {
        if index.before()?.is_subset_of(backup) {
            start = Some(position);
        }
    }
    let Some(start) = start else {
        return Err(match sorted.first() {
            None => "the binary log archive is empty".into(),
            Some(first) => format!(
                "the binary log archive starts after the backup: its first segment follows \
                 transactions the backup lacks ({})",
                first.before()?.difference(backup)
            ),
        });
    };
    let chain = sorted.split_off(start);
    for pair in chain.windows(2) {
        let (previous, next) = (&pair[0], &pair[1]);
        let (ended, starts) = (previous.after()?, next.before()?);
        if ended != starts {
            return Err(format!(
                "the binary log archive has a gap: segment {} follows {} but segment {} ended \
                 at {}",
                next.seq, starts, previous.seq, ended
            ));
        }
    }
    Ok(chain)
}

/// The segments no remaining backup needs, oldest first: those before the segment where the
/// replay of every backup (by the GTID sets they hold) would start. A backup the archive starts
/// after needs none of it; without backups nothing is unneeded.
pub fn unneeded_segments(indexes: &[SegmentIndex], backups: &[GtidSet]) -> Vec<u64> {
    let mut sorted = indexes.to_vec();
    sorted.sort_by_key(|i| i.seq);
    let start_of = |backup: &GtidSet| {
        sorted
            .iter()
            .rposition(|i| i.before().is_ok_and(|before| before.is_subset_of(backup)))
    };
    let Some(first) = backups.iter().filter_map(start_of).min() else {
        return Vec::new();
    };
    sorted[..first].iter().map(|i| i.seq).collect()
}

/// Checks the archive covers the target time: some transaction committed after it is archived,
/// or the archiver was caught up past it.
pub fn covers(
    chain: &[SegmentIndex],
    position: Option<&ArchivePosition>,
    until_us: u64,
) -> Result<(), String> {
    let newest_commit = chain.iter().map(|i| i.last_commit_us).max().unwrap_or(0);
    let through = position.map_or(0, |p| p.through_us);
    if newest_commit.max(through) >= until_us {
        Ok(())
    } else {
        Err(format!(
            "the binary log archive reaches only {}: it cannot show that nothing committed \
             between then and the target {} is missing",
            format_us(newest_commit.max(through)),
            format_us(until_us)
        ))
    }
}

/// Microseconds since the epoch as RFC 3339.
pub fn format_us(us: u64) -> String {
    jiff::Timestamp::from_microsecond(us as i64)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{us} µs"))
}

/// Where a replay stops: after the last transaction committed at or before a time, or once a
/// GTID set is held entirely (every transaction of the archive up to the last of the set, the
/// shortest stretch of history that holds it). Neither: everything archived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayTarget {
    until_us: Option<u64>,
    /// The target set's transactions the backup lacks, which the replay must apply.
    lacking: Option<GtidSet>,
}

impl ReplayTarget {
    /// Everything archived.
    pub fn latest() -> Self {
        Self::default()
    }

    /// Every transaction committed at or before `until_us` (µs since the epoch).
    pub fn time(until_us: u64) -> Self {
        Self {
            until_us: Some(until_us),
            lacking: None,
        }
    }

    /// Up to the transaction that completes `target` on a backup holding `backup`. A backup
    /// holding more than the target already has history past it, which no replay takes back.
    pub fn gtid_set(target: &GtidSet, backup: &GtidSet) -> Result<Self, String> {
        let lacking = target.difference(backup);
        if lacking.is_empty() && !backup.is_subset_of(target) {
            return Err(format!(
                "the backup holds the target GTID set {target} and more ({}): restore a backup \
                 taken before the target",
                backup.difference(target)
            ));
        }
        Ok(Self {
            until_us: None,
            lacking: Some(lacking),
        })
    }

    pub fn until_us(&self) -> Option<u64> {
        self.until_us
    }

    /// Whether a restore to this target needs no segment after `index`: the replay stops inside
    /// it (or before it), and for a time it shows the archive reaches the target (a commit
    /// after it). Latest needs every segment.
    pub fn is_last_needed(&self, index: &SegmentIndex) -> Result<bool, String> {
        if self
            .until_us
            .is_some_and(|until| index.last_commit_us > until)
        {
            return Ok(true);
        }
        match &self.lacking {
            Some(lacking) => Ok(lacking.is_subset_of(&index.after()?)),
            None => Ok(false),
        }
    }

    /// Checks a replay that applied `applied` reached a GTID-set target.
    pub fn reached(&self, applied: &GtidSet) -> Result<(), String> {
        match &self.lacking {
            Some(lacking) if !lacking.is_subset_of(applied) => Err(format!(
                "the binary log archive ends before the target GTID set: it lacks {}",
                lacking.difference(applied)
            )),
            _ => Ok(()),
        }
    }
}

/// Which transactions of the archive a restore applies: those the backup lacks, until the
/// target; the first one past it ends the replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    Apply,
    AlreadyHeld,
    Stop,
}

/// Whether to apply the transaction `source:gno` committed at `committed_us`, on a backup
/// holding `backup` after the replay `applied` those before it.
pub fn admit(
    backup: &GtidSet,
    applied: &GtidSet,
    source: &GtidSource,
    gno: u64,
    committed_us: u64,
    target: &ReplayTarget,
) -> Admit {
    let past_time = target.until_us.is_some_and(|until| committed_us > until);
    let set_complete = target
        .lacking
        .as_ref()
        .is_some_and(|lacking| lacking.is_subset_of(applied));
    if past_time || set_complete {
        Admit::Stop
    } else if backup.contains(source, gno) {
        Admit::AlreadyHeld
    } else {
        Admit::Apply
    }
}

fn is_type(event: &Event, type_: EventType) -> bool {
    event.header().event_type_raw() == type_ as u8
}

/// A compressed transaction (mysql_async hands out its events after it, decompressed).
pub fn is_payload(event: &Event) -> bool {
    is_type(event, EventType::TRANSACTION_PAYLOAD_EVENT)
}

/// `HEARTBEAT_LOG_EVENT_V2`, which mysql_common does not name.
const HEARTBEAT_EVENT_V2: u8 = 0x29;

/// Tells a stream that is caught up from one that is not: the server sends heartbeats both when
/// it has nothing more to send and while it skips, at the start of a stream, transactions the
/// request already has. Only a heartbeat at the same binary log position as the one before it,
/// with no other event in between, means the end of the binary log was reached.
#[derive(Debug, Default)]
pub struct CatchUp {
    last_heartbeat: Option<(u32, Vec<u8>)>,
}

impl CatchUp {
    /// Takes the next event of the stream; true when it shows the stream caught up.
    pub fn caught_up(&mut self, event: &Event) -> bool {
        if !is_heartbeat(event) {
            self.last_heartbeat = None;
            return false;
        }
        let at = (event.header().log_pos(), event.data().to_vec());
        let same = self.last_heartbeat.as_ref() == Some(&at);
        self.last_heartbeat = Some(at);
        same
    }
}

/// A heartbeat: the server had nothing to send for a heartbeat period.
pub fn is_heartbeat(event: &Event) -> bool {
    is_type(event, EventType::HEARTBEAT_EVENT)
        || event.header().event_type_raw() == HEARTBEAT_EVENT_V2
}

/// What an event is to the segmenter.
pub fn piece_of(event: &Event) -> Piece {
    let type_ = event.header().event_type_raw();
    let is = |t: EventType| type_ == t as u8;
    if is(EventType::FORMAT_DESCRIPTION_EVENT) {
        return Piece::Format;
    }
    if is(EventType::GTID_EVENT) || is(EventType::GTID_TAGGED_LOG_EVENT) {
        if let Ok(Some(EventData::GtidEvent(gtid))) = event.read_data() {
            let committed_us = match gtid.original_commit_timestamp() {
                0 => gtid.immediate_commit_timestamp(),
                original => original,
            };
            return Piece::Gtid {
                source: GtidSource {
                    uuid: format_uuid(gtid.sid()),
                    tag: gtid.tag().map(|t| t.to_string()),
                },
                gno: gtid.gno(),
                committed_us,
            };
        }
        return Piece::Body;
    }
    if is(EventType::XID_EVENT) || is(EventType::TRANSACTION_PAYLOAD_EVENT) {
        return Piece::End;
    }
    if is(EventType::QUERY_EVENT) {
        return match event.read_data() {
            Ok(Some(EventData::QueryEvent(query))) if query.query().trim() == "BEGIN" => {
                Piece::Body
            }
            _ => Piece::End,
        };
    }
    if is(EventType::ROTATE_EVENT)
        || is(EventType::HEARTBEAT_EVENT)
        || type_ == HEARTBEAT_EVENT_V2
        || is(EventType::PREVIOUS_GTIDS_EVENT)
        || is(EventType::STOP_EVENT)
    {
        return Piece::Skip;
    }
    Piece::Body
}

fn format_uuid(bytes: [u8; 16]) -> String {
    let hex = hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    pub(crate) const B: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";

    fn source(uuid: &str) -> GtidSource {
        GtidSource {
            uuid: uuid.into(),
            tag: None,
        }
    }

    fn gtid(uuid: &str, gno: u64, committed_us: u64) -> Piece {
        Piece::Gtid {
            source: source(uuid),
            gno,
            committed_us,
        }
    }

    /// Pushes each piece with its bytes at `at`, gathering the steps.
    fn push_all(segmenter: &mut Segmenter, pieces: Vec<(Piece, &[u8])>, at: Instant) -> Vec<Step> {
        let mut steps = Vec::new();
        for (piece, bytes) in pieces {
            steps.extend(segmenter.push(piece, bytes.to_vec(), at).unwrap());
        }
        steps
    }

    pub(crate) fn set(text: &str) -> GtidSet {
        GtidSet::parse(text).unwrap()
    }

    /// A segment of one transaction committed at `seq` ms (its last 0.5 ms later).
    pub(crate) fn index(seq: u64, gtids: &str, before: &str) -> SegmentIndex {
        SegmentIndex {
            format: INDEX_FORMAT,
            seq,
            gtid_set: gtids.into(),
            archived_before: before.into(),
            first_commit_us: seq * 1000,
            last_commit_us: seq * 1000 + 500,
            transactions: 1,
            size_bytes: 10,
            sha256: "00".into(),
            source_instance: "db-0".into(),
        }
    }

    #[test]
    fn layout_numbers_segments_so_they_list_in_order() {
        let mut cluster: crate::api::MySQLCluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "mysql.sakila.dev/v1alpha1", "kind": "MySQLCluster",
            "metadata": {"name": "orders", "namespace": "shop", "uid": "u1"},
            "spec": {"storage": {"size": "1Gi"}, "backup": {"store": {
                "endpoint": "http://store:9000", "bucket": "b", "credentialsSecret": "s"
            }}},
        }))
        .unwrap();
        let layout = archive_of(&cluster).expect("archiving is on by default");
        assert_eq!(layout, ArchiveLayout::new("shop", "orders", "u1"));
        assert_eq!(
            layout.segment(7),
            "shop/orders/binlogs/u1/000000000007.binlog"
        );
        assert_eq!(layout.index(7), "shop/orders/binlogs/u1/000000000007.json");
        cluster.spec.backup.as_mut().unwrap().binlogs =
            serde_json::from_value(serde_json::json!({"enabled": false})).unwrap();
        assert_eq!(archive_of(&cluster), None);
        assert_eq!(
            ArchiveLayout::seq_of_index("prod/shop/orders/binlogs/000000000007.json"),
            Some(7)
        );
        for other in [
            "binlogs/position.json",
            "binlogs/000000000007.binlog",
            "binlogs/7.json",
        ] {
            assert_eq!(ArchiveLayout::seq_of_index(other), None, "{other}");
        }
    }

    /// Runs the pieces through a segmenter, gathering the segments as uploaded: their bytes
    /// and what their seal said.
    fn segments(steps: Vec<Step>) -> Vec<(Vec<u8>, SegmentMeta)> {
        let mut out = Vec::new();
        let mut bytes = Vec::new();
        for step in steps {
            match step {
                Step::Open(header) => bytes = header,
                Step::Write(event) => bytes.extend_from_slice(&event),
                Step::Seal(meta) => out.push((std::mem::take(&mut bytes), meta)),
            }
        }
        out
    }

    #[test]
    fn a_segment_holds_only_whole_transactions_behind_the_format_description() {
        let t0 = Instant::now();
        let delay = Duration::from_secs(10);
        let mut segmenter = Segmenter::new();
        assert_eq!(
            segmenter.push(gtid(A, 1, 10), b"G1".to_vec(), t0),
            Err(SegmentError::NoFormat)
        );
        let mut steps = push_all(
            &mut segmenter,
            vec![
                (Piece::Format, b"FD"),
                (Piece::Skip, b"PG"),
                (gtid(A, 1, 10), b"G1"),
                (Piece::Body, b"B1"),
                (Piece::End, b"X1"),
                (gtid(A, 2, 20), b"G2"),
                (Piece::Body, b"B2"),
            ],
            t0,
        );
        assert!(segmenter.holds_committed());
        // Due, but a transaction is open: the segment waits for its commit.
        assert_eq!(segmenter.seal_if_due(t0 + delay, delay, 1000), None);
        steps.extend(push_all(
            &mut segmenter,
            vec![(Piece::End, b"X2")],
            t0 + delay,
        ));
        assert_eq!(
            segmenter.seal_if_due(t0 + delay - Duration::from_secs(1), delay, 1000),
            None
        );
        steps.extend(
            segmenter
                .seal_if_due(t0 + delay, delay, 1000)
                .map(Step::Seal),
        );
        let sealed = segments(steps);
        assert_eq!(sealed.len(), 1);
        let (bytes, meta) = &sealed[0];
        assert_eq!(bytes, &[&BINLOG_MAGIC[..], b"FDG1B1X1G2B2X2"].concat());
        assert_eq!(meta.gtid_set, set(&format!("{A}:1-2")));
        assert_eq!(
            (meta.first_commit_us, meta.last_commit_us, meta.transactions),
            (10, 20, 2)
        );
        assert!(!segmenter.holds_committed());
    }

    #[test]
    fn a_new_source_file_or_the_size_seals_the_segment() {
        let t0 = Instant::now();
        let long = Duration::from_secs(3600);
        let mut segmenter = Segmenter::new();
        let mut steps = push_all(
            &mut segmenter,
            vec![
                (Piece::Format, b"F1"),
                (gtid(A, 1, 10), b"G1"),
                (Piece::End, b"X1"),
                (Piece::Format, b"F2"),
                (gtid(B, 1, 30), b"H1"),
                (Piece::End, b"Y1"),
            ],
            t0,
        );
        assert_eq!(segmenter.seal_if_due(t0, long, 1000), None);
        steps.extend(segmenter.seal_if_due(t0, long, 8).map(Step::Seal));
        let sealed = segments(steps);
        assert_eq!(sealed[0].0, [&BINLOG_MAGIC[..], b"F1G1X1"].concat());
        assert_eq!(sealed[1].0, [&BINLOG_MAGIC[..], b"F2H1Y1"].concat());
        assert_eq!(sealed[1].1.gtid_set, set(&format!("{B}:1")));

        // A file cannot begin inside a transaction: the stream is read again from the archive.
        push_all(&mut segmenter, vec![(gtid(B, 2, 40), b"H2")], t0);
        assert_eq!(
            segmenter.push(Piece::Format, b"F3".to_vec(), t0),
            Err(SegmentError::FormatInsideTransaction)
        );
    }

    #[test]
    fn the_replay_chain_starts_after_what_the_backup_holds_and_refuses_gaps() {
        let segments = vec![
            index(1, &format!("{A}:1-5"), ""),
            index(2, &format!("{A}:6-9"), &format!("{A}:1-5")),
            index(3, &format!("{B}:1-2"), &format!("{A}:1-9")),
        ];
        let seqs = |chain: Vec<SegmentIndex>| chain.iter().map(|i| i.seq).collect::<Vec<_>>();
        assert_eq!(seqs(replay_chain(&segments, &set("")).unwrap()), [1, 2, 3]);
        assert_eq!(
            seqs(replay_chain(&segments, &set(&format!("{A}:1-7"))).unwrap()),
            [2, 3]
        );
        assert_eq!(
            seqs(replay_chain(&segments, &set(&format!("{A}:1-9"))).unwrap()),
            [3]
        );

        let gap = replay_chain(&[segments[0].clone(), segments[2].clone()], &set("")).unwrap_err();
        assert!(gap.contains("has a gap: segment 3"), "{gap}");
        let late = replay_chain(&segments[1..], &set(&format!("{A}:1-3"))).unwrap_err();
        assert!(late.contains(&format!("lacks ({A}:4-5)")), "{late}");
        assert_eq!(
            replay_chain(&[], &set("")).unwrap_err(),
            "the binary log archive is empty"
        );
    }

    #[test]
    fn retention_deletes_the_segments_before_what_the_oldest_backup_needs() {
        let segments = vec![
            index(1, &format!("{A}:1-5"), ""),
            index(2, &format!("{A}:6-9"), &format!("{A}:1-5")),
            index(3, &format!("{B}:1-2"), &format!("{A}:1-9")),
        ];
        let unneeded = |backups: &[&str]| {
            let sets: Vec<GtidSet> = backups.iter().map(|b| set(b)).collect();
            unneeded_segments(&segments, &sets)
        };
        assert_eq!(
            unneeded(&[]),
            Vec::<u64>::new(),
            "no backup: keep everything"
        );
        assert_eq!(unneeded(&[&format!("{A}:1-9,{B}:1")]), [1, 2]);
        // The oldest backup still needs segment 2 (and 1 holds nothing it lacks).
        assert_eq!(
            unneeded(&[&format!("{A}:1-9,{B}:1"), &format!("{A}:1-7")]),
            [1]
        );
        assert_eq!(unneeded(&[&format!("{A}:1-3")]), Vec::<u64>::new());
    }

    #[test]
    fn a_target_past_what_is_archived_is_refused() {
        let chain = [index(1, &format!("{A}:1"), "")];
        assert_eq!(covers(&chain, None, 1500), Ok(()));
        let error = covers(&chain, None, 2_000_000).unwrap_err();
        assert!(
            error.starts_with("the binary log archive reaches only 1970-01-01T00:00:00.0015Z"),
            "{error}"
        );
        let position = ArchivePosition {
            through_us: 3_000_000,
            last_seq: Some(1),
            archived: format!("{A}:1"),
        };
        assert_eq!(covers(&chain, Some(&position), 2_000_000), Ok(()));
    }

    #[test]
    fn replay_applies_what_the_backup_lacks_up_to_the_target_time() {
        let backup = set(&format!("{A}:1-5"));
        let none = GtidSet::new();
        let admit_until = |uuid: &str, gno, committed, target: &ReplayTarget| {
            admit(&backup, &none, &source(uuid), gno, committed, target)
        };
        let latest = ReplayTarget::latest();
        assert_eq!(admit_until(A, 5, 10, &latest), Admit::AlreadyHeld);
        assert_eq!(admit_until(A, 6, 10, &latest), Admit::Apply);
        let at_10 = ReplayTarget::time(10);
        assert_eq!(admit_until(B, 1, 10, &at_10), Admit::Apply);
        assert_eq!(admit_until(B, 1, 11, &at_10), Admit::Stop);
        assert_eq!(at_10.reached(&none), Ok(()));
    }

    #[test]
    fn replay_to_a_gtid_set_stops_after_the_transaction_that_completes_it() {
        let backup = set(&format!("{A}:1-5"));
        let target = ReplayTarget::gtid_set(&set(&format!("{A}:1-7,{B}:1")), &backup).unwrap();
        let step = |applied: &str, uuid: &str, gno| {
            admit(&backup, &set(applied), &source(uuid), gno, 0, &target)
        };
        assert_eq!(step("", A, 5), Admit::AlreadyHeld);
        assert_eq!(step("", A, 6), Admit::Apply);
        // Transactions outside the set but before its last one are history it depends on.
        assert_eq!(step(&format!("{A}:6"), B, 9), Admit::Apply);
        assert_eq!(step(&format!("{A}:6,{B}:9"), A, 7), Admit::Apply);
        assert_eq!(step(&format!("{A}:6-7,{B}:9"), B, 1), Admit::Apply);
        assert_eq!(step(&format!("{A}:6-7,{B}:1,{B}:9"), A, 8), Admit::Stop);
        assert_eq!(target.reached(&set(&format!("{A}:6-7,{B}:1"))), Ok(()));
        assert_eq!(
            target.reached(&set(&format!("{A}:6-7"))),
            Err(format!(
                "the binary log archive ends before the target GTID set: it lacks {B}:1"
            ))
        );
    }

    #[test]
    fn a_restore_reads_the_chain_only_as_far_as_its_target() {
        let backup = set(&format!("{A}:1"));
        let second = index(2, &format!("{A}:2"), &format!("{A}:1"));
        let time = |us| ReplayTarget::time(us).is_last_needed(&second);
        assert_eq!(time(2000), Ok(true), "the replay stops inside it");
        assert_eq!(
            time(2500),
            Ok(false),
            "a later commit must show the archive reaches it"
        );
        let gtids = |target: &str| {
            ReplayTarget::gtid_set(&set(target), &backup)
                .unwrap()
                .is_last_needed(&second)
        };
        assert_eq!(gtids(&format!("{A}:1-2")), Ok(true));
        assert_eq!(gtids(&format!("{A}:1-3")), Ok(false));
        assert_eq!(ReplayTarget::latest().is_last_needed(&second), Ok(false));
    }

    #[test]
    fn a_gtid_target_the_backup_is_already_past_is_refused() {
        let backup = set(&format!("{A}:1-5"));
        assert_eq!(
            ReplayTarget::gtid_set(&set(&format!("{A}:1-5")), &backup)
                .unwrap()
                .reached(&GtidSet::new()),
            Ok(()),
            "the backup's own set: nothing to replay"
        );
        let error = ReplayTarget::gtid_set(&set(&format!("{A}:1-3")), &backup).unwrap_err();
        assert_eq!(
            error,
            format!(
                "the backup holds the target GTID set {A}:1-3 and more ({A}:4-5): restore a \
                 backup taken before the target"
            )
        );
    }
}
