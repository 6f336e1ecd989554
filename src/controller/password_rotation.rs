//! Password rotation with MySQL's dual passwords: a password changed in the credentials Secret
//! (or in `spec.rootPasswordSecret`) reaches every instance without a restart and without a
//! moment in which a client holding either password is refused.
//!
//! The operator remembers, per key, the password the servers have in the Secret
//! `<name>-applied-passwords` (its own logins need it: it cannot log in with a new password
//! before it has set it). One key goes through these stages, one per round at most, each
//! recorded before the next begins so that an operator that dies anywhere resumes without
//! repeating a step that would lose a password:
//!
//! 1. the Secret's password differs from the applied one: it is recorded as `<key>.next`;
//! 2. `ALTER USER ... RETAIN CURRENT PASSWORD` on every instance that does not already show the
//!    account with a retained password (the statement ran there before the operator stopped).
//!    Not through the binary log: see `alter_account_here` in `mysql/client.rs`;
//! 3. once every instance accepts both, the users of the password switch: the replicas'
//!    channels (replication account), the operator's logins and clones; the pods' probes switch
//!    by themselves (`fence.sh` reads the Secret as the kubelet refreshes it and switches once
//!    the new password works). Recorded: the applied password is the new one, and the old one is
//!    discarded after `spec.passwordRotation.keepOldPasswordSeconds`;
//! 4. `ALTER USER ... DISCARD OLD PASSWORD` on every instance.
//!
//! Rotation moves only in rounds that change nothing else (no failover, switchover or clone,
//! every instance answering): a replica that did not answer could keep a channel with a
//! password about to be discarded.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;

use super::accounts::AccountRound;
use super::context::Context;
use super::report::Notice;
use crate::api::MySQLClusterStatus;
use crate::api::conditions::{ConditionType, set_condition};
use crate::clustering::observe::error_chain;
use crate::mysql::{MySqlAdmin, MySqlError};
use crate::resources::naming;
use crate::resources::secret::passwords_secret;
use crate::validate::ValidatedCluster;

/// An account whose password the credentials Secret holds under `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotatedAccount {
    pub key: &'static str,
    pub user: &'static str,
    pub hosts: &'static [&'static str],
}

/// Every account whose password rotates, in the order rotations run.
pub const ROTATED_ACCOUNTS: [RotatedAccount; 5] = [
    RotatedAccount {
        key: naming::ROOT_PASSWORD_KEY,
        user: "root",
        hosts: &["%", "localhost"],
    },
    RotatedAccount {
        key: naming::OPERATOR_PASSWORD_KEY,
        user: naming::OPERATOR_USER,
        hosts: &["%"],
    },
    RotatedAccount {
        key: naming::REPLICATION_PASSWORD_KEY,
        user: naming::REPLICATION_USER,
        hosts: &["%"],
    },
    RotatedAccount {
        key: naming::CLONE_PASSWORD_KEY,
        user: naming::CLONE_USER,
        hosts: &["%"],
    },
    RotatedAccount {
        key: naming::PROBE_PASSWORD_KEY,
        user: naming::PROBE_USER,
        hosts: &["localhost"],
    },
];

/// The suffix of the key that holds the password a rotation moves to.
const NEXT_SUFFIX: &str = ".next";
/// The suffix of the key that holds when the old password is discarded (RFC 3339).
const DISCARD_SUFFIX: &str = ".discard-after";

/// What `<name>-applied-passwords` holds; `Debug` never shows a password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AppliedPasswords {
    entries: BTreeMap<String, String>,
}

impl fmt::Debug for AppliedPasswords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppliedPasswords")
            .field("keys", &self.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One key's place in a rotation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRecord {
    /// The password every user of the account logs in with now.
    pub password: Option<String>,
    /// The password a rotation under way moves to.
    pub next: Option<String>,
    /// When the old password is discarded: set once every user has switched.
    pub discard_after: Option<Timestamp>,
}

impl AppliedPasswords {
    /// The Secret's data; nothing when it does not exist yet.
    pub fn from_secret(secret: Option<&Secret>) -> Self {
        let entries = secret
            .and_then(|s| s.data.as_ref())
            .map(|data| {
                data.iter()
                    .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        Self { entries }
    }

    /// The password the servers have for `key`, if recorded.
    pub fn password(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    pub fn record(&self, key: &str) -> KeyRecord {
        let get = |suffix: &str| self.entries.get(&format!("{key}{suffix}")).cloned();
        KeyRecord {
            password: self.entries.get(key).cloned(),
            next: get(NEXT_SUFFIX),
            discard_after: get(DISCARD_SUFFIX).and_then(|t| t.parse().ok()),
        }
    }

    pub fn set(&mut self, key: &str, record: KeyRecord) {
        let mut put = |k: String, v: Option<String>| match v {
            Some(v) => self.entries.insert(k, v),
            None => self.entries.remove(&k),
        };
        put(key.to_string(), record.password);
        put(format!("{key}{NEXT_SUFFIX}"), record.next);
        put(
            format!("{key}{DISCARD_SUFFIX}"),
            record.discard_after.map(|t| t.to_string()),
        );
    }

    /// Takes the Secret's password for every key it has not recorded: on first sight of a
    /// cluster (made before rotation existed, or new) the servers have the Secret's passwords.
    pub fn adopt(&mut self, desired: &BTreeMap<&'static str, String>) {
        for (key, password) in desired {
            self.entries
                .entry(key.to_string())
                .or_insert_with(|| password.clone());
        }
    }
}

/// Whether every instance accepts a retained old password for the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retained {
    pub on_every_instance: bool,
}

/// What to do next for one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotationStep {
    /// The servers have the Secret's password and no other.
    Steady,
    /// Record `next` as the password to move to.
    Begin { next: String },
    /// `ALTER USER ... RETAIN CURRENT PASSWORD` with `next` where it is not yet.
    Retain { next: String },
    /// Every instance accepts both: the users switch to `password`.
    Switch { password: String },
    /// The old password is still accepted until `at`.
    AwaitDiscard { at: Timestamp },
    /// `ALTER USER ... DISCARD OLD PASSWORD` on every instance.
    Discard,
    /// A rotation is under way and the servers were not asked which passwords they accept.
    NeedsObservation,
}

/// The next step for one key: `desired` is the Secret's password (`None` when it is not to be
/// rotated to, e.g. a root password that fails its check), `retained` what the servers said,
/// asked only while a rotation is under way ([`needs_observation`]).
pub fn next_step(
    desired: Option<&str>,
    record: &KeyRecord,
    retained: Option<Retained>,
    now: Timestamp,
) -> RotationStep {
    if let Some(at) = record.discard_after {
        return if now >= at {
            RotationStep::Discard
        } else {
            RotationStep::AwaitDiscard { at }
        };
    }
    if let Some(next) = &record.next {
        return match retained {
            None => RotationStep::NeedsObservation,
            Some(r) if !r.on_every_instance => RotationStep::Retain { next: next.clone() },
            Some(_) => RotationStep::Switch {
                password: next.clone(),
            },
        };
    }
    match (desired, record.password.as_deref()) {
        (Some(desired), Some(applied)) if desired != applied && !desired.is_empty() => {
            RotationStep::Begin {
                next: desired.to_string(),
            }
        }
        _ => RotationStep::Steady,
    }
}

/// The longest password a replication channel takes (`CHANGE REPLICATION SOURCE` refuses a
/// longer one with error 3056).
pub const MAX_REPLICATION_PASSWORD: usize = 32;

/// Why the Secret's password for `key` cannot be rotated to, if it cannot: checked before a
/// rotation begins, so that none stops half-way on a password a server refuses.
pub fn unusable(key: &str, password: &str) -> Option<String> {
    let length = password.chars().count();
    if key == naming::REPLICATION_PASSWORD_KEY && length > MAX_REPLICATION_PASSWORD {
        return Some(format!(
            "{key} holds {length} characters; a replication channel takes at most {MAX_REPLICATION_PASSWORD}"
        ));
    }
    if key == naming::ROOT_PASSWORD_KEY {
        return None; // checked by RootPasswordValid
    }
    (length < crate::controller::root_password::MIN_ROOT_PASSWORD_LENGTH).then(|| {
        format!(
            "{key} holds {length} characters; use at least {}",
            crate::controller::root_password::MIN_ROOT_PASSWORD_LENGTH
        )
    })
}

/// Whether the servers must be asked about retained passwords for this key.
pub fn needs_observation(record: &KeyRecord) -> bool {
    record.next.is_some() && record.discard_after.is_none()
}

/// The record after `step` was carried out.
pub fn after(step: &RotationStep, record: &KeyRecord, now: Timestamp, keep: Duration) -> KeyRecord {
    match step {
        RotationStep::Begin { next } => KeyRecord {
            next: Some(next.clone()),
            ..record.clone()
        },
        RotationStep::Switch { password } => KeyRecord {
            password: Some(password.clone()),
            next: None,
            discard_after: Some(
                now.checked_add(jiff::SignedDuration::try_from(keep).unwrap_or_default())
                    .unwrap_or(now),
            ),
        },
        RotationStep::Discard => KeyRecord {
            discard_after: None,
            ..record.clone()
        },
        _ => record.clone(),
    }
}

/// The passwords the credentials Secret (and the root password's Secret) hold now.
pub fn desired_passwords(
    passwords: &crate::resources::secret::ClusterPasswords,
    root: Option<&str>,
) -> BTreeMap<&'static str, String> {
    ROTATED_ACCOUNTS
        .iter()
        .filter_map(|account| {
            let password = if account.key == naming::ROOT_PASSWORD_KEY {
                root
            } else {
                passwords.get(account.key)
            }?;
            Some((account.key, password.to_string()))
        })
        .collect()
}

/// What the rotation step needs from the round.
pub struct RotationRound<'a> {
    pub servers: AccountRound<'a>,
    pub desired: &'a BTreeMap<&'static str, String>,
    pub applied: &'a AppliedPasswords,
    /// The applied Secret exists (else it is created from the Secret's passwords).
    pub applied_exists: bool,
}

/// rotate: moves every key one stage, writes what changed to `<name>-applied-passwords`, and
/// records where rotations stand in the condition `PasswordsRotated`.
pub async fn rotate_passwords(
    ctx: &Context,
    round: RotationRound<'_>,
    status: &mut MySQLClusterStatus,
    now: Time,
) -> Vec<Notice> {
    let previous = status.clone();
    let mut applied = round.applied.clone();
    applied.adopt(round.desired);
    let mut notices = Vec::new();
    let mut under_way = Vec::new();
    let mut failure = None;
    let mut refused = Vec::new();
    let mut blocked = round.servers.unsettled();
    for account in ROTATED_ACCOUNTS {
        let record = applied.record(account.key);
        let desired = round.desired.get(account.key).map(String::as_str);
        let step = next_step(desired, &record, None, now.0);
        let mut missing_here = Vec::new();
        if let RotationStep::Begin { next } = &step
            && let Some(why) = unusable(account.key, next)
        {
            refused.push(why);
            continue;
        }
        let step = match (step, &blocked) {
            (RotationStep::Steady, _) => continue,
            // Only a record: it needs no settled cluster.
            (RotationStep::Begin { next }, _) => RotationStep::Begin { next },
            (_, Some(why)) => {
                under_way.push(format!("{}: {why}", account.key));
                continue;
            }
            (RotationStep::NeedsObservation, None) => {
                match not_retained(ctx, &round, account).await {
                    Ok(missing) => {
                        let retained = Retained {
                            on_every_instance: missing.is_empty(),
                        };
                        missing_here = missing;
                        next_step(desired, &record, Some(retained), now.0)
                    }
                    Err(e) => {
                        failure = Some(format!("{}: {}", account.key, error_chain(&e)));
                        continue;
                    }
                }
            }
            (step, None) => step,
        };
        match carry_out(ctx, &round, account, &step, &missing_here).await {
            // One statement on the servers per round: the next looks at the cluster afresh
            // (a replica's receiver restarted by a switch is connected again first).
            Ok(true) => blocked = Some("another account's rotation goes first".into()),
            Ok(false) => {}
            Err(e) => {
                failure = Some(format!("{}: {}", account.key, error_chain(&e)));
                continue;
            }
        }
        if let Some(notice) = announcement(account, &step) {
            notices.push(notice);
        }
        match &step {
            RotationStep::AwaitDiscard { at } => under_way.push(format!(
                "{}: the old password is accepted until {at}",
                account.key
            )),
            RotationStep::Begin { .. } | RotationStep::Retain { .. } => {
                under_way.push(format!("{}: rotating", account.key))
            }
            RotationStep::Switch { .. } => under_way.push(format!(
                "{}: switched; the old password is accepted for another {} s",
                account.key,
                round.servers.cluster.keep_old_password.as_secs()
            )),
            _ => {}
        }
        applied.set(
            account.key,
            after(
                &step,
                &record,
                now.0,
                round.servers.cluster.keep_old_password,
            ),
        );
    }
    let changed = !round.applied_exists || &applied != round.applied;
    if changed && let Err(e) = write_applied(ctx, round.servers.cluster, &applied).await {
        failure = Some(format!("writing the applied passwords: {e}"));
    }
    let (ok, reason, message) = match (failure, under_way.is_empty()) {
        (Some(error), _) => (false, "RotationFailed", error),
        (None, _) if !refused.is_empty() => (false, "PasswordUnusable", refused.join("; ")),
        (None, false) => (false, "Rotating", under_way.join("; ")),
        (None, true) => (
            true,
            "Current",
            "every account has the password its Secret holds".to_string(),
        ),
    };
    set_condition(
        &mut status.conditions,
        ConditionType::PasswordsRotated,
        ok,
        reason,
        message,
        round.servers.cluster.generation,
        now,
    );
    notices.extend(Notice::if_newly_false_under(
        &previous,
        status,
        ConditionType::PasswordsRotated,
        "Password",
        "Rotating",
    ));
    notices
}

/// The event a step is announced with.
fn announcement(account: RotatedAccount, step: &RotationStep) -> Option<Notice> {
    let note = match step {
        RotationStep::Begin { .. } => format!(
            "{} of {} changed in its Secret: rotating with dual passwords",
            account.key, account.user
        ),
        RotationStep::Discard => format!(
            "{}: the old password of {} is discarded; only the new one works",
            account.key, account.user
        ),
        _ => return None,
    };
    let reason = match step {
        RotationStep::Begin { .. } => "PasswordRotationStarted",
        _ => "PasswordRotated",
    };
    Some(Notice {
        type_: EventType::Normal,
        reason: reason.into(),
        note,
        pod: None,
    })
}

/// Asks every instance whether the account accepts a retained password; returns the instances
/// where it does not.
async fn not_retained(
    ctx: &Context,
    round: &RotationRound<'_>,
    account: RotatedAccount,
) -> Result<Vec<u8>, MySqlError> {
    let mut missing = Vec::new();
    for instance in &round.servers.observation.instances {
        let admin = round.servers.connect(ctx, instance.ordinal).await?;
        let users = admin.users_with_secondary_password().await?;
        if !users.contains(account.user) {
            missing.push(instance.ordinal);
        }
    }
    Ok(missing)
}

/// Does what `step` says on the servers; recording is the caller's. `not_retained`: the
/// instances this round found without the retained password. Returns whether it ran a
/// statement there.
async fn carry_out(
    ctx: &Context,
    round: &RotationRound<'_>,
    account: RotatedAccount,
    step: &RotationStep,
    not_retained: &[u8],
) -> Result<bool, MySqlError> {
    let primary = round.servers.plan.primary.unwrap_or_default();
    match step {
        RotationStep::Retain { next } => {
            // Only where it has not run: a second RETAIN would make the new password the
            // retained one too, and the old one would be lost to clients still using it.
            for &ordinal in not_retained {
                let admin = round.servers.connect(ctx, ordinal).await?;
                admin
                    .retain_current_password(account.user, account.hosts, next)
                    .await?;
            }
        }
        RotationStep::Switch { password } if account.key == naming::REPLICATION_PASSWORD_KEY => {
            for instance in &round.servers.observation.instances {
                if instance.ordinal != primary {
                    let admin = round.servers.connect(ctx, instance.ordinal).await?;
                    admin.change_source_password(password).await?;
                }
            }
        }
        RotationStep::Discard => {
            for instance in &round.servers.observation.instances {
                let admin = round.servers.connect(ctx, instance.ordinal).await?;
                admin
                    .discard_old_password(account.user, account.hosts)
                    .await?;
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The applied passwords' Secret, owned as the credentials Secret is (see `build_secret`).
pub fn build_applied_secret(cluster: &ValidatedCluster, applied: &AppliedPasswords) -> Secret {
    passwords_secret(
        cluster,
        naming::applied_passwords_secret(&cluster.name),
        applied
            .entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

async fn write_applied(
    ctx: &Context,
    cluster: &ValidatedCluster,
    applied: &AppliedPasswords,
) -> Result<(), kube::Error> {
    let secret = build_applied_secret(cluster, applied);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &cluster.namespace);
    let name = naming::applied_passwords_secret(&cluster.name);
    let params = PatchParams::apply(naming::FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(&secret)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn record(password: &str, next: Option<&str>, discard_after: Option<Timestamp>) -> KeyRecord {
        KeyRecord {
            password: Some(password.into()),
            next: next.map(Into::into),
            discard_after,
        }
    }

    const NOT_EVERYWHERE: Retained = Retained {
        on_every_instance: false,
    };
    const EVERYWHERE: Retained = Retained {
        on_every_instance: true,
    };

    /// What, the Secret's password, the record, what the servers said, the time, the step.
    type Case = (
        &'static str,
        Option<&'static str>,
        KeyRecord,
        Option<Retained>,
        i64,
        RotationStep,
    );

    #[test]
    fn a_rotation_goes_through_its_stages_in_order() {
        use RotationStep::*;
        let cases: Vec<Case> = vec![
            (
                "same password",
                Some("old"),
                record("old", None, None),
                None,
                0,
                Steady,
            ),
            (
                "a new password in the Secret",
                Some("new"),
                record("old", None, None),
                None,
                0,
                Begin { next: "new".into() },
            ),
            (
                "an empty password is never rotated to",
                Some(""),
                record("old", None, None),
                None,
                0,
                Steady,
            ),
            (
                "nothing to rotate to (e.g. a root password failing its check)",
                None,
                record("old", None, None),
                None,
                0,
                Steady,
            ),
            (
                "under way, servers not asked",
                Some("new"),
                record("old", Some("new"), None),
                None,
                0,
                NeedsObservation,
            ),
            (
                "under way, not retained everywhere yet",
                Some("new"),
                record("old", Some("new"), None),
                Some(NOT_EVERYWHERE),
                0,
                Retain { next: "new".into() },
            ),
            (
                "retained everywhere",
                Some("new"),
                record("old", Some("new"), None),
                Some(EVERYWHERE),
                0,
                Switch {
                    password: "new".into(),
                },
            ),
            (
                "the Secret changed again mid-way: the rotation under way finishes first",
                Some("newer"),
                record("old", Some("new"), None),
                Some(NOT_EVERYWHERE),
                0,
                Retain { next: "new".into() },
            ),
            (
                "switched, old still accepted",
                Some("new"),
                record("new", None, Some(at(60))),
                None,
                59,
                AwaitDiscard { at: at(60) },
            ),
            (
                "switched, time is up",
                Some("new"),
                record("new", None, Some(at(60))),
                None,
                60,
                Discard,
            ),
            (
                "a change while the old password waits to be discarded waits for the discard",
                Some("newer"),
                record("new", None, Some(at(60))),
                None,
                0,
                AwaitDiscard { at: at(60) },
            ),
        ];
        for (what, desired, record, retained, now, expected) in cases {
            assert_eq!(
                next_step(desired, &record, retained, at(now)),
                expected,
                "{what}"
            );
        }
    }

    #[test]
    fn a_password_a_server_would_refuse_is_never_rotated_to() {
        let long = "x".repeat(33);
        assert!(unusable(naming::REPLICATION_PASSWORD_KEY, &long).is_some());
        assert_eq!(
            unusable(naming::REPLICATION_PASSWORD_KEY, &"x".repeat(32)),
            None
        );
        assert_eq!(unusable(naming::OPERATOR_PASSWORD_KEY, &long), None);
        assert!(unusable(naming::PROBE_PASSWORD_KEY, "short").is_some());
        // Root's own check (RootPasswordValid) decides for root.
        assert_eq!(unusable(naming::ROOT_PASSWORD_KEY, "short"), None);
    }

    #[test]
    fn each_step_is_recorded_so_that_a_restarted_operator_resumes_it() {
        let keep = Duration::from_secs(120);
        let steady = record("old", None, None);
        let begun = after(
            &RotationStep::Begin { next: "new".into() },
            &steady,
            at(0),
            keep,
        );
        assert_eq!(begun, record("old", Some("new"), None));
        // Retaining writes nothing: the server's retained password says it happened.
        assert_eq!(
            after(
                &RotationStep::Retain { next: "new".into() },
                &begun,
                at(1),
                keep
            ),
            begun
        );
        let switched = after(
            &RotationStep::Switch {
                password: "new".into(),
            },
            &begun,
            at(2),
            keep,
        );
        assert_eq!(switched, record("new", None, Some(at(122))));
        assert_eq!(
            after(&RotationStep::Discard, &switched, at(122), keep),
            record("new", None, None)
        );
    }

    #[test]
    fn the_applied_secret_round_trips_and_adopts_what_it_lacks() {
        let mut applied = AppliedPasswords::default();
        let desired = BTreeMap::from([
            (naming::OPERATOR_PASSWORD_KEY, "op".to_string()),
            (naming::PROBE_PASSWORD_KEY, "probe".to_string()),
        ]);
        applied.adopt(&desired);
        applied.set(
            naming::OPERATOR_PASSWORD_KEY,
            record("op", Some("op2"), Some(at(5))),
        );
        let again = AppliedPasswords::from_secret(Some(&Secret {
            data: Some(
                applied
                    .entries
                    .iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                    .collect(),
            ),
            ..Default::default()
        }));
        assert_eq!(again, applied);
        assert_eq!(
            again.record(naming::OPERATOR_PASSWORD_KEY),
            record("op", Some("op2"), Some(at(5)))
        );
        assert_eq!(again.password(naming::PROBE_PASSWORD_KEY), Some("probe"));
        // A recorded password is kept even when the Secret says another: that is a rotation.
        let mut kept = again.clone();
        kept.adopt(&BTreeMap::from([(
            naming::PROBE_PASSWORD_KEY,
            "other".to_string(),
        )]));
        assert_eq!(kept.password(naming::PROBE_PASSWORD_KEY), Some("probe"));
        assert!(!format!("{again:?}").contains("op2"));
    }
}
