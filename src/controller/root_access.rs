//! `spec.rootAccess`: whether root may log in from outside the instance's pod.
//!
//! `LocalOnly` locks `root@'%'` (`ALTER USER ... ACCOUNT LOCK`) on every instance, and `Remote`
//! unlocks it, on each server alone, not through the binary log (as password rotation's
//! statements: see `alter_account_here` in `mysql/client.rs`). Locked rather than dropped: the
//! operator holds no `GRANT OPTION`, so it could not give a dropped `root@'%'` its privileges
//! back. Locked, the account keeps its password (rotations go on) and its privileges, and
//! unlocking gives back exactly what was there.
//!
//! The servers are asked while the value is `LocalOnly`: when it changes to it, at a new
//! leader's first round at rest, and every [`RECHECK`], so that an instance initialised afresh
//! (the first of a cluster), a restored backup or an account unlocked by hand is locked again
//! within that. `Remote` asks them only to undo `LocalOnly` (`status.rootAccess` records what
//! was put in place last): a cluster never restricted costs nothing, and needs none of the
//! privileges the step uses (data directories made before them lack `SELECT` on `mysql.user`).

use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;

use super::accounts::AccountRound;
use super::context::Context;
use super::report::Notice;
use crate::api::conditions::{ConditionType, set_condition};
use crate::api::{MySQLCluster, MySQLClusterStatus, RootAccess};
use crate::clustering::observe::error_chain;
use crate::mysql::{MySqlAdmin, MySqlError, RemoteRoot};
use crate::resources::naming;
use crate::validate::ValidatedCluster;

/// How often the servers are asked again while root is to be `LocalOnly`, or is not yet as
/// `spec.rootAccess` says on every instance.
pub const RECHECK: Duration = Duration::from_secs(30);

/// Whether this round asks the servers: `recorded` is what was put in place last
/// (`status.rootAccess`), `since_check` the time since they were last asked against `wanted`
/// (`None`: never, by this operator, against this value).
pub fn due(
    wanted: RootAccess,
    recorded: Option<RootAccess>,
    since_check: Option<Duration>,
) -> bool {
    let stale = since_check.is_none_or(|elapsed| elapsed >= RECHECK);
    match wanted {
        RootAccess::LocalOnly => stale,
        RootAccess::Remote => recorded == Some(RootAccess::LocalOnly) && stale,
    }
}

/// Whether `wanted` holds with nothing asked: `LocalOnly` once put in place, `Remote` unless
/// `LocalOnly` was put in place and not undone yet.
fn in_place_already(wanted: RootAccess, recorded: Option<RootAccess>) -> bool {
    recorded.unwrap_or(RootAccess::Remote) == wanted
}

/// What the servers need for `spec.rootAccess` to hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootAccessChanges {
    /// The instances whose `root@'%'` is locked (for `LocalOnly`) or unlocked (for `Remote`).
    pub change: Vec<u8>,
    /// The instances without `root@'%'` when it is to be open: dropped by hand, and the
    /// operator cannot create it again.
    pub missing: Vec<u8>,
}

/// Pure: from what each instance said of `root@'%'`, what must change for `wanted` to hold.
pub fn changes(wanted: RootAccess, seen: &[(u8, RemoteRoot)]) -> RootAccessChanges {
    let mut changes = RootAccessChanges::default();
    for &(ordinal, state) in seen {
        match (wanted, state) {
            (RootAccess::LocalOnly, RemoteRoot::Open)
            | (RootAccess::Remote, RemoteRoot::Locked) => changes.change.push(ordinal),
            (RootAccess::Remote, RemoteRoot::Missing) => changes.missing.push(ordinal),
            _ => {}
        }
    }
    changes
}

/// What the check of this round came to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// Every instance has what `spec.rootAccess` says; `changed` were changed for it now.
    InPlace {
        changed: Vec<u8>,
    },
    /// `root@'%'` is missing where it should be open.
    Missing {
        missing: Vec<u8>,
    },
    /// The round is not at rest: nothing was asked.
    Pending {
        why: String,
    },
    Failed {
        error: String,
    },
}

/// root access: asks the servers when [`due`], locks or unlocks `root@'%'` where it differs
/// from `spec.rootAccess`, records the value in `status.rootAccess` once every instance has it,
/// and reports in the condition `RootAccessApplied`.
pub async fn apply_root_access(
    ctx: &Context,
    cluster: &MySQLCluster,
    round: &AccountRound<'_>,
    status: &mut MySQLClusterStatus,
    now: Time,
) -> Vec<Notice> {
    let wanted = round.cluster.root_access;
    let since_check = ctx
        .root_access_checked(cluster, wanted)
        .map(|at| at.elapsed());
    let outcome = if !due(wanted, status.root_access, since_check) {
        None
    } else if let Some(why) = round.unsettled() {
        // A recheck of a value in place waits quietly; a change waits and says so.
        (!in_place_already(wanted, status.root_access)).then_some(Outcome::Pending { why })
    } else {
        ctx.record_root_access_check(cluster, wanted, Instant::now());
        Some(match enforce(ctx, round, wanted).await {
            Ok(changes) if changes.missing.is_empty() => Outcome::InPlace {
                changed: changes.change,
            },
            Ok(changes) => Outcome::Missing {
                missing: changes.missing,
            },
            Err(e) => Outcome::Failed {
                error: error_chain(&e),
            },
        })
    };
    report(round.cluster, outcome, status, now)
}

/// Asks every instance about `root@'%'` and changes it where it differs from `wanted`, on the
/// session it asked on.
async fn enforce(
    ctx: &Context,
    round: &AccountRound<'_>,
    wanted: RootAccess,
) -> Result<RootAccessChanges, MySqlError> {
    let mut seen = Vec::new();
    let mut sessions = std::collections::BTreeMap::new();
    for instance in &round.observation.instances {
        let admin = round.connect(ctx, instance.ordinal).await?;
        seen.push((instance.ordinal, admin.remote_root().await?));
        sessions.insert(instance.ordinal, admin);
    }
    let changes = changes(wanted, &seen);
    for ordinal in &changes.change {
        if let Some(admin) = sessions.get(ordinal) {
            admin
                .lock_remote_root(wanted == RootAccess::LocalOnly)
                .await?;
        }
    }
    Ok(changes)
}

/// Pure: the status, condition and events for this round's outcome (`None`: not asked).
fn report(
    cluster: &ValidatedCluster,
    outcome: Option<Outcome>,
    status: &mut MySQLClusterStatus,
    now: Time,
) -> Vec<Notice> {
    let previous = status.clone();
    let wanted = cluster.root_access;
    let generation = cluster.generation;
    let cluster = &cluster.name;
    let pods = |ordinals: &[u8]| {
        ordinals
            .iter()
            .map(|o| naming::pod(cluster, *o))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut notices = Vec::new();
    let in_place = || {
        let message = match wanted {
            RootAccess::Remote => {
                "root@'%' is not locked by the operator: root logs in from anywhere that \
                 reaches port 3306"
            }
            RootAccess::LocalOnly => {
                "root@'%' is locked on every instance: root logs in only inside the pods \
                 (root@'localhost')"
            }
        };
        (true, wanted.as_str(), message.to_string())
    };
    let (ok, reason, message) = match outcome {
        // Not asked: a value in place stays so, with this generation.
        None if in_place_already(wanted, status.root_access) => in_place(),
        None => return notices,
        Some(Outcome::InPlace { changed }) => {
            status.root_access = Some(wanted);
            if !changed.is_empty() {
                let (done, meaning) = match wanted {
                    RootAccess::LocalOnly => ("locked", "root logs in only inside the pods"),
                    RootAccess::Remote => ("unlocked", "root logs in from outside the pods again"),
                };
                notices.push(Notice {
                    type_: EventType::Normal,
                    reason: "RootAccessChanged".into(),
                    note: format!(
                        "spec.rootAccess {}: root@'%' {done} on {}; {meaning}",
                        wanted.as_str(),
                        pods(&changed)
                    ),
                    pod: None,
                });
            }
            in_place()
        }
        // `status.rootAccess` stays `LocalOnly`: asked again after RECHECK.
        Some(Outcome::Missing { missing }) => (
            false,
            "RemoteRootMissing",
            format!(
                "spec.rootAccess Remote, but {} has no root@'%' (dropped by hand): root logs \
                     in there only inside the pod. The operator cannot create it again (it \
                     holds no GRANT OPTION); as root: CREATE USER 'root'@'%' IDENTIFIED BY ...; \
                     GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION",
                pods(&missing)
            ),
        ),
        Some(Outcome::Pending { why }) => (
            false,
            "Pending",
            format!(
                "root's logins change to spec.rootAccess {} once the cluster is at rest: {why}",
                wanted.as_str()
            ),
        ),
        Some(Outcome::Failed { error }) => (false, "Failed", error),
    };
    set_condition(
        &mut status.conditions,
        ConditionType::RootAccessApplied,
        ok,
        reason,
        message,
        generation,
        now,
    );
    notices.extend(Notice::if_newly_false_under(
        &previous,
        status,
        ConditionType::RootAccessApplied,
        "RootAccess",
        "Pending",
    ));
    notices
}

#[cfg(test)]
mod tests {
    use super::*;
    use RemoteRoot::{Locked, Missing, Open};
    use RootAccess::{LocalOnly, Remote};

    #[test]
    fn the_servers_are_asked_while_local_only_and_to_undo_it() {
        let soon = Some(RECHECK / 2);
        let later = Some(RECHECK);
        let cases = [
            // (wanted, recorded, since the last check against wanted, asked)
            (LocalOnly, None, None, true),
            (LocalOnly, Some(Remote), None, true),
            (LocalOnly, Some(LocalOnly), None, true),
            (LocalOnly, Some(LocalOnly), soon, false),
            (LocalOnly, Some(LocalOnly), later, true),
            (LocalOnly, None, later, true),
            // Remote asks only to undo LocalOnly.
            (Remote, None, None, false),
            (Remote, Some(Remote), None, false),
            (Remote, Some(LocalOnly), None, true),
            (Remote, Some(LocalOnly), soon, false),
            (Remote, Some(LocalOnly), later, true),
        ];
        for (wanted, recorded, since, asked) in cases {
            assert_eq!(
                due(wanted, recorded, since),
                asked,
                "wanted {wanted:?}, recorded {recorded:?}, since {since:?}"
            );
        }
    }

    fn wanting(access: RootAccess) -> ValidatedCluster {
        let mut cluster = crate::resources::tests::validated("db", 2);
        cluster.root_access = access;
        cluster
    }

    fn reported(
        wanted: RootAccess,
        recorded: Option<RootAccess>,
        outcome: Option<Outcome>,
    ) -> (MySQLClusterStatus, Vec<Notice>) {
        let cluster = wanting(wanted);
        let mut status = MySQLClusterStatus {
            root_access: recorded,
            ..Default::default()
        };
        let notices = report(
            &cluster,
            outcome,
            &mut status,
            Time(jiff::Timestamp::UNIX_EPOCH),
        );
        (status, notices)
    }

    fn condition(status: &MySQLClusterStatus) -> Option<(String, String)> {
        crate::api::conditions::find_condition(&status.conditions, ConditionType::RootAccessApplied)
            .map(|c| (c.status.clone(), c.reason.clone()))
    }

    fn reasons(notices: &[Notice]) -> Vec<&str> {
        notices.iter().map(|n| n.reason.as_str()).collect()
    }

    #[test]
    fn each_outcome_is_recorded_and_announced_once() {
        let changed = Some(Outcome::InPlace { changed: vec![1] });
        let (status, notices) = reported(LocalOnly, Some(Remote), changed);
        assert_eq!(status.root_access, Some(LocalOnly));
        assert_eq!(
            condition(&status),
            Some(("True".into(), "LocalOnly".into()))
        );
        assert_eq!(reasons(&notices), ["RootAccessChanged"]);
        assert!(
            notices[0].note.contains("locked on db-1"),
            "{}",
            notices[0].note
        );

        let done = Some(Outcome::InPlace { changed: vec![] });
        let (status, notices) = reported(Remote, Some(LocalOnly), done);
        assert_eq!(status.root_access, Some(Remote));
        assert_eq!(condition(&status), Some(("True".into(), "Remote".into())));
        assert!(notices.is_empty(), "nothing changed, nothing announced");

        let missing = Some(Outcome::Missing { missing: vec![0] });
        let (status, notices) = reported(Remote, Some(LocalOnly), missing.clone());
        assert_eq!(
            status.root_access,
            Some(LocalOnly),
            "asked again after RECHECK"
        );
        assert_eq!(
            condition(&status),
            Some(("False".into(), "RemoteRootMissing".into()))
        );
        assert_eq!(reasons(&notices), ["RootAccessRemoteRootMissing"]);
        let mut again = status.clone();
        let notices = report(
            &wanting(Remote),
            missing,
            &mut again,
            Time(jiff::Timestamp::UNIX_EPOCH),
        );
        assert!(notices.is_empty(), "the same problem is announced once");

        let pending = Some(Outcome::Pending {
            why: "the cluster is changing".into(),
        });
        let (status, notices) = reported(LocalOnly, Some(Remote), pending);
        assert_eq!(status.root_access, Some(Remote), "not in place yet");
        assert_eq!(condition(&status), Some(("False".into(), "Pending".into())));
        assert!(notices.is_empty(), "waiting for rest is no problem");

        let failed = Some(Outcome::Failed {
            error: "Access denied".into(),
        });
        let (status, notices) = reported(LocalOnly, Some(LocalOnly), failed);
        assert_eq!(condition(&status), Some(("False".into(), "Failed".into())));
        assert_eq!(reasons(&notices), ["RootAccessFailed"]);

        let (status, notices) = reported(LocalOnly, Some(LocalOnly), None);
        assert_eq!(
            condition(&status),
            Some(("True".into(), "LocalOnly".into()))
        );
        assert!(notices.is_empty());
        let (status, _) = reported(Remote, None, None);
        assert_eq!(
            condition(&status),
            Some(("True".into(), "Remote".into())),
            "never restricted: nothing to ask"
        );
        let (status, _) = reported(LocalOnly, Some(Remote), None);
        assert_eq!(
            condition(&status),
            None,
            "not asked and not in place: nothing to say"
        );
    }

    #[test]
    fn only_instances_that_differ_are_changed_and_a_missing_account_is_reported_when_wanted() {
        let seen = [(0, Open), (1, Locked), (2, Missing)];
        let cases = [
            (
                LocalOnly,
                RootAccessChanges {
                    change: vec![0],
                    missing: vec![],
                },
            ),
            (
                Remote,
                RootAccessChanges {
                    change: vec![1],
                    missing: vec![2],
                },
            ),
        ];
        for (wanted, expected) in cases {
            assert_eq!(changes(wanted, &seen), expected, "wanted {wanted:?}");
        }
        assert_eq!(
            changes(LocalOnly, &[(0, Locked), (1, Missing)]),
            RootAccessChanges::default(),
            "locked or absent, root@'%' lets no one in"
        );
    }
}
