//! What the user asked for and what the operator remembers, as `decide` needs it: the wanted
//! primary and whether an automatic failover may happen now.

use std::time::Duration;

use jiff::Timestamp;

use crate::resources::config_map::{
    FENCE_LOOP_SECONDS, FENCE_PING_SECONDS, FENCE_READ_ONLY_SECONDS,
};

// The timing of a failover, from one formula (docs/failure-scenarios.md, "Failover timing"). A
// primary cut off from everything is replaced once both hold:
//   detected: it failed `failureThreshold` (N) probes in a row, at most
//             P + N·T + (N−1)·R after the cut (the first probe comes within the probe interval P,
//             each failed one waits PROBE_TIMEOUT T, the next comes RETRY_AFTER_FAILED_PROBE R
//             later);
//   fenced:   PRIMARY_LEASE L + SELF_FENCE_MARGIN M have passed since its last renewal, which
//             was at most P before the cut; M covers fence.sh at its slowest (one loop, the
//             pings, the wait for super_read_only) plus FENCE_SLACK.
// Clocks: the lease's expiry is written and checked on the primary's own clock (NOW(6) both
// times), and the operator counts L + M on its monotonic clock from when the renewal returned
// (never earlier than the primary took it): the two clocks' offsets do not matter, but a step of
// the primary's wall clock (not its rate, 100 ppm at worst) during a lease eats the slack.

/// How long a probe waits for an instance: the connection (when none is kept) and the one round
/// trip of its reads. An instance that answers no sooner counts as not answering.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How soon a primary that failed a probe is probed again, until it is declared lost.
pub const RETRY_AFTER_FAILED_PROBE: Duration = Duration::from_millis(500);
/// How long a primary's lease lasts from each renewal (every probe it answers): a renewal may
/// come up to a second late before the lease lapses. A lapsed lease alone changes nothing: the
/// fence acts only when no replica answers either.
pub const PRIMARY_LEASE: Duration = Duration::from_secs(3);
/// What the margin leaves on top of the fence's own bounds: its SQL, and the scheduling of its
/// loop.
pub const FENCE_SLACK: Duration = Duration::from_millis(500);
/// How long after its lease expired a cut-off primary has surely fenced itself: `fence.sh` looks
/// every FENCE_LOOP_SECONDS, tries the replicas for FENCE_PING_SECONDS, disconnects clients and
/// waits at most FENCE_READ_ONLY_SECONDS for super_read_only before it shuts mysqld down.
pub const SELF_FENCE_MARGIN: Duration = Duration::from_millis(
    (FENCE_LOOP_SECONDS + FENCE_PING_SECONDS + FENCE_READ_ONLY_SECONDS) * 1000
        + FENCE_SLACK.as_millis() as u64,
);

/// The latest a primary cut off from everything is replaced after the cut, by the formula above,
/// for a probe interval and a failure threshold (before the promotion itself).
pub fn cut_off_primary_replaced_within(
    probe_interval: Duration,
    failure_threshold: u32,
) -> Duration {
    let detected = probe_interval
        + PROBE_TIMEOUT * failure_threshold
        + RETRY_AFTER_FAILED_PROBE * failure_threshold.saturating_sub(1);
    let fenced = probe_interval + PRIMARY_LEASE + SELF_FENCE_MARGIN;
    detected.max(fenced)
}

/// How long after `now` a cut-off primary last renewed at `last_renewal` has surely fenced
/// itself; zero once it has. Only then may a replica be promoted in its place while it may
/// still run.
pub fn until_self_fenced(last_renewal: std::time::Instant, now: std::time::Instant) -> Duration {
    (PRIMARY_LEASE + SELF_FENCE_MARGIN).saturating_sub(now.saturating_duration_since(last_renewal))
}

/// When a failover that waits for the lost primary's fence looks again, `until_fenced` before
/// the fence is sure: a round judges the lease after its observation, which waits up to
/// PROBE_TIMEOUT for the primary that does not answer, so the round starts that much early and
/// decides about when the fence is sure, not up to a round later. Never later than `soon`, and
/// never sooner than FENCE_LOOK_FLOOR: a primary refusing connections fails its probe at once,
/// and rounds without a pause would then spin until the fence is sure.
pub fn next_look_at_fence(until_fenced: Duration, soon: Duration) -> Duration {
    until_fenced
        .saturating_sub(PROBE_TIMEOUT)
        .clamp(FENCE_LOOK_FLOOR, soon.max(FENCE_LOOK_FLOOR))
}

/// The shortest wait between two rounds that wait for a lost primary's fence.
pub const FENCE_LOOK_FLOOR: Duration = Duration::from_millis(100);

/// `spec.failover`, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailoverPolicy {
    /// Automatic failover is on.
    pub enabled: bool,
    /// How often a cluster is probed.
    pub probe_interval: Duration,
    /// Consecutive failed probes before a primary whose pod still runs is declared lost.
    pub failure_threshold: u32,
    /// At most one automatic failover within this period.
    pub min_interval: Duration,
}

impl Default for FailoverPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            probe_interval: Duration::from_secs(2),
            failure_threshold: 3,
            min_interval: Duration::from_secs(300),
        }
    }
}

/// Whether an automatic failover may happen now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailoverGate {
    Open,
    /// Closed, with the reason for the status.
    Closed(String),
}

impl FailoverPolicy {
    /// The gate for a failover decided at `now`, given when the last one was decided.
    pub fn gate(&self, last_failover: Option<Timestamp>, now: Timestamp) -> FailoverGate {
        if !self.enabled {
            return FailoverGate::Closed(
                "automatic failover is off (spec.failover.enabled is false)".into(),
            );
        }
        let Some(last) = last_failover else {
            return FailoverGate::Open;
        };
        let Ok(period) = jiff::SignedDuration::try_from(self.min_interval) else {
            return FailoverGate::Open;
        };
        match last.checked_add(period) {
            Ok(next) if next > now => FailoverGate::Closed(format!(
                "the last automatic failover was at {last}; spec.failover.minIntervalSeconds allows the next one from {next}",
                last = last.round(jiff::Unit::Second).unwrap_or(last),
                next = next.round(jiff::Unit::Second).unwrap_or(next),
            )),
            _ => FailoverGate::Open,
        }
    }
}

/// Everything besides the observation that `decide` takes into account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    /// `spec.primaryInstance`: a change is a planned switchover.
    pub desired_primary: Option<u8>,
    /// Whether an automatic failover may happen now.
    pub failover: FailoverGate,
    /// How many observations in a row could not reach the recorded primary, this one included.
    pub primary_failures: u32,
    /// Failed observations after which a primary whose pod still runs is declared lost.
    pub failure_threshold: u32,
    /// Where the recorded primary's server was last seen, when its pod is no longer there (a
    /// force-deleted pod's server can live on for a while at its old address).
    pub stale_primary_address: Option<String>,
    /// The recorded primary's lease expired long enough ago that, if it runs cut off from
    /// everything, it has made itself read-only (`until_self_fenced` is zero).
    pub primary_self_fenced: bool,
    /// The recorded primary whose replicas an earlier round fenced for a failover that has not
    /// finished yet (`Plan::failover_underway` of the last round).
    pub failover_underway: Option<u8>,
    /// The cluster exists longer than `decide::BOOTSTRAP_WAIT`: with no primary recorded, the
    /// choice no longer waits for instances whose retained volumes have not answered.
    pub bootstrap_wait_over: bool,
}

impl Default for Intent {
    fn default() -> Self {
        Self {
            desired_primary: None,
            failover: FailoverGate::Open,
            primary_failures: 0,
            failure_threshold: 1,
            stale_primary_address: None,
            primary_self_fenced: true,
            failover_underway: None,
            bootstrap_wait_over: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_replace_a_cut_off_primary_within_ten_seconds_of_the_cut() {
        let defaults = FailoverPolicy::default();
        let bound =
            cut_off_primary_replaced_within(defaults.probe_interval, defaults.failure_threshold);
        // 2 s interval + 3 s lease + 3.5 s margin; detection (2 + 3·1 + 2·0.5 = 6 s) is sooner.
        assert_eq!(bound, Duration::from_millis(8500));
        // A renewal may come a second late without the lease lapsing.
        assert!(PRIMARY_LEASE >= defaults.probe_interval + Duration::from_secs(1));
        // One loop, the pings, the wait for super_read_only, and the slack.
        assert_eq!(SELF_FENCE_MARGIN, Duration::from_millis(3500));
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn failover_is_allowed_when_none_happened_yet() {
        let gate = FailoverPolicy::default().gate(None, at("2026-11-26T10:00:00Z"));
        assert_eq!(gate, FailoverGate::Open);
    }

    #[test]
    fn a_second_failover_within_the_minimum_interval_is_refused_with_the_time_it_is_allowed() {
        let gate = FailoverPolicy::default()
            .gate(Some(at("2026-11-26T10:00:00Z")), at("2026-11-26T10:04:59Z"));
        let FailoverGate::Closed(reason) = gate else {
            panic!("expected closed, got {gate:?}");
        };
        assert!(reason.contains("2026-11-26T10:05:00Z"), "{reason}");
    }

    #[test]
    fn failover_is_allowed_again_after_the_minimum_interval() {
        let gate = FailoverPolicy::default()
            .gate(Some(at("2026-11-26T10:00:00Z")), at("2026-11-26T10:05:00Z"));
        assert_eq!(gate, FailoverGate::Open);
    }

    #[test]
    fn disabled_failover_is_always_refused() {
        let policy = FailoverPolicy {
            enabled: false,
            ..Default::default()
        };
        let gate = policy.gate(None, at("2026-11-26T10:00:00Z"));
        assert!(matches!(gate, FailoverGate::Closed(r) if r.contains("spec.failover.enabled")));
    }

    #[test]
    fn a_cut_off_primary_counts_as_fenced_only_after_its_lease_and_the_margin() {
        let renewed = std::time::Instant::now();
        let after = |millis: u64| renewed + Duration::from_millis(millis);
        assert!(!until_self_fenced(renewed, renewed).is_zero());
        // Lease 3 s + margin 3.5 s.
        assert!(!until_self_fenced(renewed, after(6499)).is_zero());
        assert!(until_self_fenced(renewed, after(6500)).is_zero());
        assert!(until_self_fenced(renewed, after(60_000)).is_zero());
        // A renewal seen later than now (clock order across tasks) is no expiry.
        assert!(!until_self_fenced(after(5000), renewed).is_zero());
        assert_eq!(
            until_self_fenced(renewed, after(6000)),
            Duration::from_millis(500)
        );
        assert_eq!(until_self_fenced(renewed, after(7000)), Duration::ZERO);
    }

    #[test]
    fn a_failover_waiting_for_the_fence_looks_again_a_probe_timeout_before_it_is_sure() {
        let soon = Duration::from_millis(500);
        let cases = [
            // (until fenced, next look)
            (Duration::from_secs(4), soon),
            (Duration::from_millis(1400), Duration::from_millis(400)),
            (Duration::from_millis(1150), Duration::from_millis(150)),
            (Duration::from_millis(1000), FENCE_LOOK_FLOOR),
            (Duration::from_millis(300), FENCE_LOOK_FLOOR),
            (Duration::ZERO, FENCE_LOOK_FLOOR),
        ];
        for (until_fenced, expected) in cases {
            assert_eq!(
                next_look_at_fence(until_fenced, soon),
                expected,
                "{until_fenced:?}"
            );
        }
    }
}
