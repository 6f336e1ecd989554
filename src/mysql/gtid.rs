//! Pure GTID-set arithmetic over MySQL's text form (`uuid:1-5:7,uuid2:tag:1-3`).

use std::collections::BTreeMap;
use std::fmt;

/// Largest GNO MySQL hands out (`GNO_END - 1`, i.e. 2^63 - 2).
const MAX_GNO: u64 = i64::MAX as u64 - 1;
/// Longest tag MySQL accepts.
const MAX_TAG_LEN: usize = 32;
/// Longest piece of the input quoted back in an error message.
const MAX_QUOTED_INPUT: usize = 120;

/// Why a GTID set could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to parse GTID set {input:?}: {reason}")]
pub struct GtidParseError {
    input: String,
    /// What was wrong with the input.
    pub reason: GtidParseErrorReason,
}

/// The specific defect found while parsing a GTID set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GtidParseErrorReason {
    /// A comma-separated element had no content.
    #[error("empty element between commas")]
    EmptyElement,
    /// Not a 36-character hyphenated hexadecimal UUID.
    #[error("invalid server uuid {0:?}")]
    InvalidUuid(String),
    /// Not `[a-z_][a-z0-9_]{0,31}`.
    #[error("invalid tag {0:?}")]
    InvalidTag(String),
    /// Not `N` or `N-M` with `1 <= N <= M <= 2^63-2`.
    #[error("invalid interval {0:?}")]
    InvalidInterval(String),
    /// A uuid or a tag that no interval follows.
    #[error("{0:?} is not followed by any interval")]
    MissingInterval(String),
}

impl GtidParseError {
    fn new(input: &str, reason: GtidParseErrorReason) -> Self {
        let input = if input.chars().count() > MAX_QUOTED_INPUT {
            let cut: String = input.chars().take(MAX_QUOTED_INPUT).collect();
            format!("{cut}...")
        } else {
            input.to_owned()
        };
        Self { input, reason }
    }
}

/// Who issued a group of transactions: a server uuid plus an optional tag
/// (MySQL 8.3+). Untagged sorts before tagged, as in MySQL's own output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GtidSource {
    /// Lowercase hyphenated server uuid.
    pub uuid: String,
    /// Lowercase tag, `None` for untagged transactions.
    pub tag: Option<String>,
}

/// A closed interval of transaction numbers, `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GnoInterval {
    /// First transaction number, at least 1.
    pub start: u64,
    /// Last transaction number, inclusive.
    pub end: u64,
}

impl GnoInterval {
    fn len(self) -> u64 {
        self.end - self.start + 1
    }
}

/// A normalised set of GTIDs: sorted sources, each with sorted, disjoint,
/// non-adjacent intervals and never an empty interval list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct GtidSet {
    sets: BTreeMap<GtidSource, Vec<GnoInterval>>,
}

impl GtidSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses MySQL's text form; whitespace (including the newlines MySQL puts
    /// after commas) is ignored and the empty string is the empty set.
    pub fn parse(input: &str) -> Result<Self, GtidParseError> {
        let compact: String = input.chars().filter(|c| !c.is_whitespace()).collect();
        let err = |reason| GtidParseError::new(input, reason);
        let mut set = GtidSet::new();
        if compact.is_empty() {
            return Ok(set);
        }
        for element in compact.split(',') {
            if element.is_empty() {
                return Err(err(GtidParseErrorReason::EmptyElement));
            }
            let mut parts = element.split(':');
            let uuid = parse_uuid(parts.next().unwrap_or_default()).map_err(err)?;
            let mut source = GtidSource { uuid, tag: None };
            // A tag applies to the intervals after it and must have at least one.
            let mut pending_tag: Option<String> = None;
            let mut any_interval = false;
            for part in parts {
                if part.starts_with(|c: char| c.is_ascii_digit()) {
                    let interval = parse_interval(part).map_err(err)?;
                    set.insert(source.clone(), interval);
                    pending_tag = None;
                    any_interval = true;
                } else {
                    if let Some(tag) = pending_tag {
                        return Err(err(GtidParseErrorReason::MissingInterval(tag)));
                    }
                    source.tag = Some(parse_tag(part).map_err(err)?);
                    pending_tag = source.tag.clone();
                }
            }
            if let Some(name) = pending_tag.or((!any_interval).then(|| source.uuid.clone())) {
                return Err(err(GtidParseErrorReason::MissingInterval(name)));
            }
        }
        Ok(set)
    }

    /// Adds the GTIDs `start..=end` of `source`; panics if `start` is 0 or above `end`.
    pub fn insert(&mut self, source: GtidSource, interval: GnoInterval) {
        assert!(
            interval.start >= 1 && interval.start <= interval.end,
            "invalid GNO interval {interval:?}"
        );
        let intervals = self.sets.entry(source).or_default();
        intervals.push(interval);
        normalise(intervals);
    }

    /// True when the set holds no transaction.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Number of transactions in the set (saturates at `u64::MAX`).
    pub fn count(&self) -> u64 {
        self.sets
            .values()
            .flatten()
            .fold(0u64, |acc, i| acc.saturating_add(i.len()))
    }

    /// True when the transaction `gno` of `source` is in the set.
    pub fn contains(&self, source: &GtidSource, gno: u64) -> bool {
        self.sets
            .get(source)
            .is_some_and(|v| v.iter().any(|i| i.start <= gno && gno <= i.end))
    }

    /// The sources with at least one transaction, in canonical order.
    pub fn sources(&self) -> impl Iterator<Item = &GtidSource> {
        self.sets.keys()
    }

    /// The intervals of one source, empty if it has none.
    pub fn intervals(&self, source: &GtidSource) -> &[GnoInterval] {
        self.sets.get(source).map(Vec::as_slice).unwrap_or_default()
    }

    /// All transactions in either set.
    pub fn union(&self, other: &GtidSet) -> GtidSet {
        let mut out = self.clone();
        for (source, intervals) in &other.sets {
            let mine = out.sets.entry(source.clone()).or_default();
            mine.extend_from_slice(intervals);
            normalise(mine);
        }
        out
    }

    /// Transactions in both sets.
    pub fn intersection(&self, other: &GtidSet) -> GtidSet {
        let mut out = GtidSet::new();
        for (source, mine) in &self.sets {
            let Some(theirs) = other.sets.get(source) else {
                continue;
            };
            let mut both = Vec::new();
            let (mut a, mut b) = (0, 0);
            while a < mine.len() && b < theirs.len() {
                let start = mine[a].start.max(theirs[b].start);
                let end = mine[a].end.min(theirs[b].end);
                if start <= end {
                    both.push(GnoInterval { start, end });
                }
                if mine[a].end < theirs[b].end {
                    a += 1;
                } else {
                    b += 1;
                }
            }
            if !both.is_empty() {
                out.sets.insert(source.clone(), both);
            }
        }
        out
    }

    /// `self - other`: transactions in `self` that `other` lacks (e.g. errant
    /// transactions of a replica relative to its source).
    pub fn difference(&self, other: &GtidSet) -> GtidSet {
        let mut out = GtidSet::new();
        for (source, mine) in &self.sets {
            let theirs = other.intervals(source);
            let mut rest = Vec::new();
            for interval in mine {
                let mut start = interval.start;
                let end = interval.end;
                for cut in theirs {
                    if cut.end < start {
                        continue;
                    }
                    if cut.start > end {
                        break;
                    }
                    if cut.start > start {
                        rest.push(GnoInterval {
                            start,
                            end: cut.start - 1,
                        });
                    }
                    start = cut.end.saturating_add(1);
                    if start > end {
                        break;
                    }
                }
                if start <= end {
                    rest.push(GnoInterval { start, end });
                }
            }
            if !rest.is_empty() {
                out.sets.insert(source.clone(), rest);
            }
        }
        out
    }

    /// True when every transaction of `self` is also in `other`.
    pub fn is_subset_of(&self, other: &GtidSet) -> bool {
        self.difference(other).is_empty()
    }
}

impl std::str::FromStr for GtidSet {
    type Err = GtidParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GtidSet::parse(s)
    }
}

/// Canonical form: sources sorted, untagged intervals before tags, elements
/// separated by `,`. The alternate form (`{:#}`) separates them by `,\n`
/// exactly as `@@gtid_executed` does.
impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let separator = if f.alternate() { ",\n" } else { "," };
        let mut current_uuid: Option<&str> = None;
        for (source, intervals) in &self.sets {
            if current_uuid != Some(source.uuid.as_str()) {
                if current_uuid.is_some() {
                    f.write_str(separator)?;
                }
                f.write_str(&source.uuid)?;
                current_uuid = Some(&source.uuid);
            }
            if let Some(tag) = &source.tag {
                write!(f, ":{tag}")?;
            }
            for i in intervals {
                if i.start == i.end {
                    write!(f, ":{}", i.start)?;
                } else {
                    write!(f, ":{}-{}", i.start, i.end)?;
                }
            }
        }
        Ok(())
    }
}

fn normalise(intervals: &mut Vec<GnoInterval>) {
    intervals.sort_unstable();
    let mut merged: Vec<GnoInterval> = Vec::with_capacity(intervals.len());
    for i in intervals.drain(..) {
        match merged.last_mut() {
            Some(last) if i.start <= last.end.saturating_add(1) => last.end = last.end.max(i.end),
            _ => merged.push(i),
        }
    }
    *intervals = merged;
}

fn parse_uuid(text: &str) -> Result<String, GtidParseErrorReason> {
    let bytes = text.as_bytes();
    let valid = bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if valid {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(GtidParseErrorReason::InvalidUuid(text.to_owned()))
    }
}

fn parse_tag(text: &str) -> Result<String, GtidParseErrorReason> {
    let valid = !text.is_empty()
        && text.len() <= MAX_TAG_LEN
        && text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(GtidParseErrorReason::InvalidTag(text.to_owned()))
    }
}

fn parse_interval(text: &str) -> Result<GnoInterval, GtidParseErrorReason> {
    let invalid = || GtidParseErrorReason::InvalidInterval(text.to_owned());
    let number = |s: &str| -> Result<u64, GtidParseErrorReason> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        s.parse::<u64>().map_err(|_| invalid())
    };
    let (start, end) = match text.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let n = number(text)?;
            (n, n)
        }
    };
    if start == 0 || start > end || end > MAX_GNO {
        return Err(invalid());
    }
    Ok(GnoInterval { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "8a94f357-aab4-11df-86ab-c80aa9429562";

    fn set(s: &str) -> GtidSet {
        GtidSet::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn untagged(uuid: &str) -> GtidSource {
        GtidSource {
            uuid: uuid.to_owned(),
            tag: None,
        }
    }

    #[test]
    fn empty_and_whitespace_strings_are_the_empty_set() {
        for input in ["", " ", "\n", " \n\t "] {
            let s = set(input);
            assert!(s.is_empty(), "{input:?}");
            assert_eq!(s.count(), 0);
            assert_eq!(s.to_string(), "");
        }
    }

    #[test]
    fn mysql_multi_line_output_parses_and_round_trips() {
        let input = format!("{A}:1-5:11-18,\n{B}:1-3");
        let s = set(&input);
        assert_eq!(s.count(), 5 + 8 + 3);
        assert_eq!(format!("{s:#}"), input);
        assert_eq!(s.to_string(), format!("{A}:1-5:11-18,{B}:1-3"));
        assert_eq!(set(&s.to_string()), s);
    }

    #[test]
    fn uuids_are_lowercased_and_sorted() {
        let s = set(&format!(
            "{},{}:7",
            B.to_uppercase() + ":1",
            A.to_uppercase()
        ));
        assert_eq!(s.to_string(), format!("{A}:7,{B}:1"));
    }

    #[test]
    fn overlapping_and_adjacent_intervals_are_merged() {
        let s = set(&format!("{A}:5-9:1-3:4:8-12:20,{A}:21-22"));
        assert_eq!(s.to_string(), format!("{A}:1-12:20-22"));
        assert_eq!(s.count(), 15);
    }

    #[test]
    fn a_single_transaction_prints_without_a_range() {
        let s = set(&format!("{A}:7-7"));
        assert_eq!(s.to_string(), format!("{A}:7"));
        assert_eq!(s.count(), 1);
        assert!(s.contains(&untagged(A), 7));
        assert!(!s.contains(&untagged(A), 8));
    }

    #[test]
    fn tagged_gtids_parse_and_print_after_untagged_in_tag_order() {
        let s = set(&format!("{A}:1-3:Zeta:4:alpha:1-2:10,{A}:zeta:5"));
        assert_eq!(s.to_string(), format!("{A}:1-3:alpha:1-2:10:zeta:4-5"));
        assert_eq!(s.count(), 3 + 3 + 2);
        let tagged = GtidSource {
            uuid: A.to_owned(),
            tag: Some("alpha".to_owned()),
        };
        assert!(s.contains(&tagged, 10));
        assert!(!s.contains(&untagged(A), 10));
    }

    #[test]
    fn tag_only_set_round_trips() {
        let input = format!("{A}:_t1:1-5,\n{B}:1");
        assert_eq!(format!("{:#}", set(&input)), input);
    }

    #[test]
    fn malformed_input_is_rejected_with_the_reason() {
        let cases = [
            (A.to_string(), "not followed by any interval"),
            (format!("{A}:tag"), "not followed by any interval"),
            (format!("{A}:t1:t2:5"), "not followed by any interval"),
            (format!("{A}:1,,{B}:1"), "empty element"),
            (format!("{A}:1,"), "empty element"),
            (format!("{A}:0"), "invalid interval"),
            (format!("{A}:5-3"), "invalid interval"),
            (format!("{A}:1-"), "invalid interval"),
            (format!("{A}:-1"), "invalid tag"),
            (format!("{A}:1-2-3"), "invalid interval"),
            (format!("{A}:9223372036854775807"), "invalid interval"),
            (format!("{A}:99999999999999999999"), "invalid interval"),
            ("not-a-uuid:1".to_owned(), "invalid server uuid"),
            (format!("{}:1", &A[..35]), "invalid server uuid"),
            (format!("{A}:1tag:1"), "invalid interval"),
            (format!("{A}:{}:1", "t".repeat(33)), "invalid tag"),
            (format!("{A}:bad-tag:1"), "invalid tag"),
        ];
        for (input, expected) in cases {
            let e = GtidSet::parse(&input).expect_err(&input);
            let message = e.to_string();
            assert!(
                message.starts_with("failed to parse GTID set "),
                "{message}"
            );
            assert!(message.contains(expected), "{input:?}: {message}");
        }
    }

    #[test]
    fn long_input_is_truncated_in_error_messages() {
        let input = format!("{A}:1,").repeat(100) + "x";
        let message = GtidSet::parse(&input).unwrap_err().to_string();
        assert!(message.len() < 300, "{message}");
    }

    #[test]
    fn largest_gno_is_accepted() {
        let s = set(&format!("{A}:1-9223372036854775806"));
        assert_eq!(s.count(), 9_223_372_036_854_775_806);
    }

    #[test]
    fn union_merges_sources_and_intervals() {
        let a = set(&format!("{A}:1-5,{B}:1"));
        let b = set(&format!("{A}:6-7:9,{A}:t:1"));
        assert_eq!(a.union(&b).to_string(), format!("{A}:1-7:9:t:1,{B}:1"));
        assert_eq!(a.union(&GtidSet::new()), a);
    }

    #[test]
    fn intersection_keeps_common_transactions_only() {
        let a = set(&format!("{A}:1-10:20-30,{B}:1-5"));
        let b = set(&format!("{A}:5-25,{A}:t:1"));
        assert_eq!(a.intersection(&b).to_string(), format!("{A}:5-10:20-25"));
        assert!(a.intersection(&GtidSet::new()).is_empty());
    }

    #[test]
    fn difference_splits_an_interval_around_a_hole() {
        let a = set(&format!("{A}:1-10"));
        let b = set(&format!("{A}:4-6"));
        assert_eq!(a.difference(&b).to_string(), format!("{A}:1-3:7-10"));
    }

    #[test]
    fn difference_with_several_cuts_and_sources() {
        let a = set(&format!("{A}:1-20,{B}:1-3,{B}:x:1-2"));
        let b = set(&format!("{A}:1-2:5:7-8:19-40,{B}:1-3,{B}:x:2"));
        assert_eq!(
            a.difference(&b).to_string(),
            format!("{A}:3-4:6:9-18,{B}:x:1")
        );
        assert!(b.difference(&b).is_empty());
        assert_eq!(a.difference(&GtidSet::new()), a);
        assert!(GtidSet::new().difference(&a).is_empty());
    }

    #[test]
    fn subset_holds_only_when_nothing_is_missing() {
        let primary = set(&format!("{A}:1-100"));
        let lagging = set(&format!("{A}:1-90"));
        let errant = set(&format!("{A}:1-90,{B}:1"));
        assert!(lagging.is_subset_of(&primary));
        assert!(!primary.is_subset_of(&lagging));
        assert!(!errant.is_subset_of(&primary));
        assert_eq!(errant.difference(&primary).to_string(), format!("{B}:1"));
        assert!(GtidSet::new().is_subset_of(&GtidSet::new()));
        assert!(primary.is_subset_of(&primary));
    }

    #[test]
    fn tags_are_distinct_from_untagged_transactions_of_the_same_uuid() {
        let tagged = set(&format!("{A}:t:1-5"));
        let plain = set(&format!("{A}:1-5"));
        assert!(!tagged.is_subset_of(&plain));
        assert!(tagged.intersection(&plain).is_empty());
    }
}
