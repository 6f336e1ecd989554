//! A round at rest reuses what the round before it read from the API server.
//!
//! Every round used to read the cluster's three Secrets and its StatefulSet, and list its pods
//! and volume claims: six requests per cluster every probe interval, with nothing happening
//! (issue 17: 180 requests a second for 60 clusters). What must run every interval is the MySQL
//! probe, which detects failures; the objects rarely change, and when they do a watch says so.
//! So a round that ended at rest (`at_rest`) keeps what it read, and the rounds after it reuse
//! that (`reusable`) while
//! - it is younger than `LIFETIME`: Secrets are not watched (that would need the right to list
//!   every Secret), so a change a person makes to one is seen within that time;
//! - the cluster is the copy it was read with (same resourceVersion: no edit, no status write);
//! - the watches show the same pods, claims and StatefulSet, at the resourceVersions read.
//!
//! A round on reused reads whose plan has any action (a failover, a clone, a fence) carries none
//! out: it runs again on fresh reads first (`reconcile.rs`). What such a round may still do is
//! what does not depend on them: re-apply a child the watches show missing, report what the
//! probe found. Any round that is not at rest drops the kept reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::MySQLClusterStatus;
use crate::api::conditions::{ConditionType, find_condition};
use crate::clustering::Plan;

/// How long reads are reused at most.
pub const LIFETIME: Duration = Duration::from_secs(30);

/// The resourceVersions of what a round read, or of what the watches show now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Versions {
    pub cluster: Option<String>,
    pub statefulset: Option<String>,
    /// The cluster's pods by name.
    pub pods: BTreeMap<String, String>,
    /// The cluster's volume claims by name.
    pub claims: BTreeMap<String, String>,
}

/// What one round read, kept for the next.
pub struct Snapshot<R> {
    pub taken_at: Instant,
    pub versions: Versions,
    pub reads: Arc<R>,
}

impl<R> Clone for Snapshot<R> {
    fn clone(&self) -> Self {
        Snapshot {
            taken_at: self.taken_at,
            versions: self.versions.clone(),
            reads: self.reads.clone(),
        }
    }
}

impl<R> std::fmt::Debug for Snapshot<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("taken_at", &self.taken_at)
            .field("versions", &self.versions)
            .finish_non_exhaustive()
    }
}

/// Why a round reads afresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadAfresh {
    /// The last round was not at rest, or this operator has not looked at the cluster yet.
    NoSnapshot,
    Expired,
    /// The cluster was edited or its status written since.
    ClusterChanged,
    /// The watches have not listed yet, or do not cover the namespace.
    NotWatched,
    /// A pod, claim or the StatefulSet was created, changed or deleted since.
    ObjectsChanged,
}

/// Whether a round may reuse `snapshot` (`Ok`) or must read afresh, and why. `watched` is what
/// the watches show now, with the cluster's version from the copy this round works on.
pub fn reusable<R>(
    snapshot: Option<&Snapshot<R>>,
    now: Instant,
    watched: Option<&Versions>,
) -> Result<(), ReadAfresh> {
    let snapshot = snapshot.ok_or(ReadAfresh::NoSnapshot)?;
    if now.saturating_duration_since(snapshot.taken_at) >= LIFETIME {
        return Err(ReadAfresh::Expired);
    }
    let watched = watched.ok_or(ReadAfresh::NotWatched)?;
    if watched.cluster.is_none() || watched.cluster != snapshot.versions.cluster {
        return Err(ReadAfresh::ClusterChanged);
    }
    if watched != &snapshot.versions {
        return Err(ReadAfresh::ObjectsChanged);
    }
    Ok(())
}

/// A plan that does nothing and has nothing under way.
pub fn plan_is_quiet(plan: &Plan) -> bool {
    plan.actions.is_empty() && plan.failover_underway.is_none() && !plan.follow_up_soon
}

/// What a round did, as far as keeping its reads goes.
pub struct RoundEnd<'a> {
    pub plan: &'a Plan,
    /// A probe of the primary failed this round (a failure being confirmed).
    pub primary_probe_failed: bool,
    /// Children the apply step wrote.
    pub children_written: usize,
    pub volumes_expanding: bool,
    pub settings_changing: bool,
    /// Events this round published.
    pub notices: usize,
    pub previous: Option<&'a MySQLClusterStatus>,
    pub status: &'a MySQLClusterStatus,
}

/// Whether the round changed nothing and has nothing under way, so the next may reuse its
/// reads: it wrote no child and no status, published no event, planned no action, and the
/// cluster is Ready with no password rotation in progress (a rotation writes a Secret the next
/// round must read).
pub fn at_rest(end: &RoundEnd<'_>) -> bool {
    let condition_true =
        |type_| find_condition(&end.status.conditions, type_).map(|c| c.status == "True");
    plan_is_quiet(end.plan)
        && !end.primary_probe_failed
        && end.children_written == 0
        && !end.volumes_expanding
        && !end.settings_changing
        && end.notices == 0
        && end.previous == Some(end.status)
        && condition_true(ConditionType::Ready) == Some(true)
        && condition_true(ConditionType::PasswordsRotated) != Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::set_condition;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn versions(cluster: &str, statefulset: &str, pods: &[(&str, &str)]) -> Versions {
        Versions {
            cluster: Some(cluster.into()),
            statefulset: Some(statefulset.into()),
            pods: pods
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            claims: [("data-shop-0".to_string(), "30".to_string())].into(),
        }
    }

    #[test]
    fn reads_are_reused_only_young_and_while_the_watches_show_what_was_read() {
        let t0 = Instant::now();
        let read = versions("7", "12", &[("shop-0", "20")]);
        let snapshot = Snapshot {
            taken_at: t0,
            versions: read.clone(),
            reads: Arc::new(()),
        };
        let later = |s: u64| t0 + Duration::from_secs(s);
        let mut extra_pod = read.clone();
        extra_pod.pods.insert("shop-1".into(), "21".into());
        let mut claim_changed = read.clone();
        claim_changed
            .claims
            .insert("data-shop-0".into(), "31".into());
        let mut no_cluster_version = read.clone();
        no_cluster_version.cluster = None;
        let mut statefulset_changed = read.clone();
        statefulset_changed.statefulset = Some("13".into());
        // (case, seconds after the read, what the watches show, expected)
        let cases = [
            ("the same, soon after", 2, Some(read.clone()), Ok(())),
            (
                "at the lifetime",
                30,
                Some(read.clone()),
                Err(ReadAfresh::Expired),
            ),
            (
                "the watches not listed",
                2,
                None,
                Err(ReadAfresh::NotWatched),
            ),
            (
                "cluster edited",
                2,
                Some(versions("8", "12", &[("shop-0", "20")])),
                Err(ReadAfresh::ClusterChanged),
            ),
            (
                "cluster version unknown",
                2,
                Some(no_cluster_version),
                Err(ReadAfresh::ClusterChanged),
            ),
            (
                "pod changed",
                2,
                Some(versions("7", "12", &[("shop-0", "25")])),
                Err(ReadAfresh::ObjectsChanged),
            ),
            (
                "pod created",
                2,
                Some(extra_pod),
                Err(ReadAfresh::ObjectsChanged),
            ),
            (
                "pod deleted",
                2,
                Some(versions("7", "12", &[])),
                Err(ReadAfresh::ObjectsChanged),
            ),
            (
                "claim changed",
                2,
                Some(claim_changed),
                Err(ReadAfresh::ObjectsChanged),
            ),
            (
                "StatefulSet changed",
                2,
                Some(statefulset_changed),
                Err(ReadAfresh::ObjectsChanged),
            ),
        ];
        for (name, seconds, watched, expected) in cases {
            let result = reusable(Some(&snapshot), later(seconds), watched.as_ref());
            assert_eq!(result, expected, "{name}");
        }
        assert_eq!(
            reusable::<()>(None, later(2), Some(&read)),
            Err(ReadAfresh::NoSnapshot)
        );
    }

    fn status(conditions: &[(ConditionType, bool)]) -> MySQLClusterStatus {
        let mut status = MySQLClusterStatus::default();
        let now = Time(jiff::Timestamp::UNIX_EPOCH);
        for (type_, ok) in conditions {
            set_condition(
                &mut status.conditions,
                *type_,
                *ok,
                "Test",
                "test".into(),
                None,
                now.clone(),
            );
        }
        status
    }

    #[test]
    fn only_a_round_that_changed_nothing_and_has_nothing_under_way_is_at_rest() {
        let ready = status(&[
            (ConditionType::Ready, true),
            (ConditionType::PasswordsRotated, true),
        ]);
        let not_ready = status(&[(ConditionType::Ready, false)]);
        let rotating = status(&[
            (ConditionType::Ready, true),
            (ConditionType::PasswordsRotated, false),
        ]);
        let no_rotation_condition = status(&[(ConditionType::Ready, true)]);
        let quiet = Plan::default();
        let with_action = Plan {
            actions: vec![crate::clustering::Action::MakeReadOnly { ordinal: 1 }],
            ..Plan::default()
        };
        let failing_over = Plan {
            failover_underway: Some(0),
            ..Plan::default()
        };
        let following_up = Plan {
            follow_up_soon: true,
            ..Plan::default()
        };
        let end = |plan, status| RoundEnd {
            plan,
            primary_probe_failed: false,
            children_written: 0,
            volumes_expanding: false,
            settings_changing: false,
            notices: 0,
            previous: Some(status),
            status,
        };
        assert!(at_rest(&end(&quiet, &ready)), "ready and quiet");
        assert!(
            at_rest(&end(&quiet, &no_rotation_condition)),
            "no rotation ever"
        );
        assert!(!at_rest(&end(&quiet, &not_ready)), "not ready");
        assert!(!at_rest(&end(&quiet, &rotating)), "a rotation under way");
        assert!(!at_rest(&end(&with_action, &ready)), "an action planned");
        assert!(
            !at_rest(&end(&failing_over, &ready)),
            "a failover under way"
        );
        assert!(!at_rest(&end(&following_up, &ready)), "a follow-up due");
        type Change = fn(&mut RoundEnd<'_>);
        let changed: [(&str, Change); 6] = [
            ("a primary probe failed", |e| e.primary_probe_failed = true),
            ("a child written", |e| e.children_written = 1),
            ("a volume expanding", |e| e.volumes_expanding = true),
            ("settings changing", |e| e.settings_changing = true),
            ("an event", |e| e.notices = 1),
            ("a first status", |e| e.previous = None),
        ];
        for (name, change) in changed {
            let mut round = end(&quiet, &ready);
            change(&mut round);
            assert!(!at_rest(&round), "{name}");
        }
        let mut status_changed = end(&quiet, &ready);
        status_changed.previous = Some(&not_ready);
        assert!(!at_rest(&status_changed), "the status written");
    }
}
