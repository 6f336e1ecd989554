//! One reconcile: the pipeline of named steps from DESIGN.md. Only the ends touch the network.
//!
//!     fetch -> validate -> build -> apply -> observe -> decide -> operate -> status

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::core::DynamicObject;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::accounts::AccountRound;
use super::apply::{Fetched, apply_all};
use super::backup_schedule::schedule_backups;
use super::binlog_archive::archive_binlogs;
use super::context::Context;
use super::error::Error;
use super::password_rotation::{
    AppliedPasswords, RotationRound, desired_passwords, rotate_passwords,
};
use super::report::{Notice, Round, report};
use super::root_access::apply_root_access;
use super::root_password::observe_root_password;
use super::snapshot::{RoundEnd, Snapshot, Versions, at_rest, plan_is_quiet, reusable};
use super::status::{RefusedSetting, compute_status, failed_status, record_discarded};
use super::tls::{ClusterTls, fetch_tls, instances_to_reload};
use crate::api::{MySQLCluster, MySQLClusterStatus};
use crate::clustering::MySqlObservation;
use crate::clustering::decide::BOOTSTRAP_WAIT;
use crate::clustering::intent::{
    PRIMARY_LEASE, RETRY_AFTER_FAILED_PROBE, next_look_at_fence, until_self_fenced,
};
use crate::clustering::observe::error_chain;
use crate::clustering::observe::{instance_endpoint, observe};
use crate::clustering::operate::{OperateTarget, apply_settings, operate, settings_results};
use crate::clustering::settings::{SettingsPlan, accepted_settings, plan_settings};
use crate::clustering::{Action as ClusterAction, Intent, Observation, Plan, decide};
use crate::lost_nodes::{
    LostNodeError, LostNodePlan, Replacement, decide_lost_nodes, observe_lost_nodes,
    replace_instance,
};
use crate::metrics;
use crate::mysql::{Credentials, MySqlAdmin, MySqlConnector};
use crate::resources::secret::ClusterPasswords;
use crate::resources::statefulset::Carried;
use crate::resources::{Resources, config_map, mysql_settings, naming};
use crate::storage::{
    VolumeObservation, VolumePlan, decide_volumes, expand_volumes, observe_volumes,
    volumes_older_than,
};
use crate::validate::{ValidatedCluster, validate};

/// How soon a multi-step operation (a failover's fence) is looked at again.
pub const FOLLOW_UP: Duration = Duration::from_millis(500);
/// How long one reconcile may run before it is abandoned (and retried after the back-off).
/// Above the longest wait a reconcile makes on purpose: a promotion's relay-log apply (at most
/// 300 s, `operate::RELAY_LOG_TIMEOUT`). Every other SQL statement has the client's 10 s query
/// timeout or a shorter bound of its own, and clones run in the background (`clones.rs`).
pub const RECONCILE_DEADLINE: Duration = Duration::from_secs(360);
/// Back-off after a transient failure.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Parses the watched object. A malformed object is that object's error, not the watch's.
pub fn parse_cluster(object: &DynamicObject) -> Result<MySQLCluster, Error> {
    serde_json::to_value(object)
        .and_then(serde_json::from_value)
        .map_err(Error::Malformed)
}

/// Reconciles one MySQLCluster.
pub async fn reconcile(object: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    // The span naming the cluster is opened around this future in run.rs (an entered span
    // held across awaits would leak into the other reconciles polled on the same thread).
    let watched = parse_cluster(&object)?;
    let cluster = match freshest(&ctx, watched).await {
        Ok(cluster) => cluster,
        Err((watched, error)) => {
            record_failure(&watched, &ctx, &error).await;
            return Err(error);
        }
    };
    let result = tokio::time::timeout(RECONCILE_DEADLINE, run_pipeline(&cluster, &ctx))
        .await
        .unwrap_or(Err(Error::Deadline(RECONCILE_DEADLINE)));
    match result {
        Ok(next) => Ok(Action::requeue(next)),
        Err(error) => {
            record_failure(&cluster, &ctx, &error).await;
            Err(error)
        }
    }
}

/// The watched copy of the cluster, or a fresh read of it when the watch has not yet delivered
/// what this operator last wrote (see `watched_copy_is_stale`). Gone meanwhile: the watched
/// copy, whose deletion arrives as the next event.
async fn freshest(
    ctx: &Context,
    watched: MySQLCluster,
) -> Result<MySQLCluster, (MySQLCluster, Error)> {
    if !ctx.is_stale(&watched) {
        return Ok(watched);
    }
    let api: Api<MySQLCluster> =
        Api::namespaced(ctx.client.clone(), &watched.namespace().unwrap_or_default());
    match api.get_opt(&watched.name_any()).await {
        Ok(Some(fresh)) => {
            ctx.record_version(&fresh);
            Ok(fresh)
        }
        Ok(None) => Ok(watched),
        Err(source) => {
            let error = Error::Fetch {
                what: format!("MySQLCluster {}", watched.name_any()),
                source,
            };
            Err((watched, error))
        }
    }
}

/// Runs the pipeline; returns when to look at the cluster again. A round on reads kept from
/// the round before (`snapshot.rs`) that finds something to do runs again on fresh reads
/// before it does anything.
async fn run_pipeline(cluster: &MySQLCluster, ctx: &Context) -> Result<Duration, Error> {
    match run_round(cluster, ctx, Reuse::Allowed).await? {
        RoundEnded::LookAgainIn(next) => Ok(next),
        RoundEnded::ReadAfresh => match run_round(cluster, ctx, Reuse::Never).await? {
            RoundEnded::LookAgainIn(next) => Ok(next),
            // Never asked for a round that read afresh.
            RoundEnded::ReadAfresh => Ok(FOLLOW_UP),
        },
    }
}

/// Whether a round may reuse the reads of the round before it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reuse {
    Allowed,
    Never,
}

/// How a round ended.
enum RoundEnded {
    LookAgainIn(Duration),
    /// It ran on reused reads and found something to do: it did nothing.
    ReadAfresh,
}

/// One round. One line per step, in the order of docs/architecture.md; each step's function
/// says what it reads and writes.
async fn run_round(
    cluster: &MySQLCluster,
    ctx: &Context,
    reuse: Reuse,
) -> Result<RoundEnded, Error> {
    let mut valid = validate(cluster, &ctx.settings)?;
    valid.restore = resolve_restore(ctx, cluster, &valid).await?;
    let recorded = Recorded::read(&valid.name, cluster.status.as_ref());
    let read_at = Instant::now();
    let (reads, kept_volumes) = read_cluster(ctx, cluster, &valid, reuse).await?;
    let reused = kept_volumes.is_some();
    let inputs = &reads.inputs;
    let pods = &reads.pods;
    let applied = build_and_apply(ctx, &valid, inputs, &recorded).await?;
    // Not on reused reads: a pod they do not show yet could be using a ConfigMap.
    if !valid.paused && !reused {
        prune_config_maps(ctx, &valid, pods, inputs.statefulset.as_ref()).await;
    }
    let observation = observe_cluster(ctx, cluster, &valid, inputs, &recorded, pods).await?;
    // Read once the instances answered (or the probe of one that does not gave up): the lease of
    // a primary that does not answer is judged at the moment the round decides, not a probe
    // timeout before it.
    let now = RoundClock::now();
    let primary_failures = ctx.count_primary_failures(cluster, &observation);
    if valid.paused {
        ctx.forget_snapshot(cluster);
        let plan = Plan::observed_only(&observation);
        let status = compute_status(
            &valid,
            &observation,
            &plan,
            cluster.status.as_ref(),
            now.time(),
        );
        write_status(ctx, cluster, &status).await?;
        return Ok(RoundEnded::LookAgainIn(next_probe(
            valid.failover.probe_interval,
        )));
    }
    // Read only for a cluster that is not paused: a first look at the lease counts it as renewed
    // now, and a paused round must not start that count.
    let remembered = Remembered::read(ctx, cluster, primary_failures, &now);
    let intent = intent(cluster, &valid, &recorded, &observation, &remembered, &now);
    let plan = decide(&observation, &intent);
    // Its failed primary probe, if any, stays counted: the round on fresh reads probes again,
    // and the two are observations in a row like any others.
    if reused && !plan_is_quiet(&plan) {
        ctx.forget_snapshot(cluster);
        return Ok(RoundEnded::ReadAfresh);
    }
    begin_failover(ctx, cluster, &valid, &plan, &now).await?;
    let done = operate_plan(ctx, cluster, &valid, inputs, &observation, &plan, &now).await?;
    let settings = settle_settings(ctx, &valid, inputs, &recorded, &observation).await;
    reload_certificates(ctx, &valid, inputs, &observation).await;
    let (volumes, volume_observation) =
        reconcile_volumes(ctx, cluster, &valid, kept_volumes).await?;
    let lost_nodes =
        replace_lost_instances(ctx, cluster, &valid, pods, plan.primary, now.wall).await;
    let generated_root = inputs.passwords.get(naming::ROOT_PASSWORD_KEY);
    let root_password = observe_root_password(&ctx.client, &valid, generated_root).await;
    let round = Round {
        cluster: &valid,
        observation: &observation,
        plan: &plan,
        done: &done,
        pods,
        settings: &settings.plan,
        refused: &settings.refused,
        accepted_settings: settings.accepted,
        volumes: &volumes,
        lost_nodes: &lost_nodes,
        not_owned: applied.not_owned.as_deref(),
        root_password: root_password.as_ref().map(|r| &r.check),
        tls: Some(&inputs.tls.check),
    };
    let (mut status, mut notices) = report(cluster.status.as_ref(), round, now.time());
    notices.extend(schedule_backups(ctx, cluster, &mut status, now.time()).await);
    notices.extend(archive_binlogs(
        ctx,
        cluster,
        &observation,
        &inputs.replication,
        inputs.tls.ca.as_ref(),
        &mut status,
        now.time(),
    ));
    let desired = desired_passwords(
        &inputs.passwords,
        root_password.as_ref().and_then(|r| r.password.as_deref()),
    );
    let servers = AccountRound {
        cluster: &valid,
        observation: &observation,
        plan: &plan,
        operator: &inputs.operator,
        ca: inputs.tls.ca.as_ref(),
    };
    notices.extend(apply_root_access(ctx, cluster, &servers, &mut status, now.time()).await);
    let rotation = RotationRound {
        servers,
        desired: &desired,
        applied: &inputs.applied,
        applied_exists: inputs.applied_exists,
    };
    notices.extend(rotate_passwords(ctx, rotation, &mut status, now.time()).await);
    // A primary that failed a probe is probed again soon, until it is declared lost, and a
    // failover that waits for the lost primary's lease looks again soon after it runs out: the
    // failover's timing counts on both (intent.rs).
    let failures = remembered.primary_failures;
    let detecting = failures > 0 && failures < valid.failover.failure_threshold;
    let end = RoundEnd {
        plan: &plan,
        primary_probe_failed: failures > 0,
        children_written: applied.written,
        volumes_expanding: !volumes.expand.is_empty(),
        settings_changing: !settings.plan.online.is_empty()
            || !settings.plan.awaiting_restart.is_empty(),
        notices: notices.len(),
        previous: cluster.status.as_ref(),
        status: &status,
    };
    keep_reads(
        ctx,
        cluster,
        &reads,
        reused,
        read_at,
        at_rest(&end),
        volume_observation,
    );
    publish_all(ctx, cluster, notices).await;
    write_status(ctx, cluster, &status).await?;
    let awaiting_fence = plan.failover_underway.is_some() && !intent.primary_self_fenced;
    Ok(RoundEnded::LookAgainIn(if awaiting_fence {
        next_look_at_fence(remembered.until_fenced, FOLLOW_UP)
    } else if plan.follow_up_soon {
        FOLLOW_UP
    } else if detecting {
        RETRY_AFTER_FAILED_PROBE
    } else {
        next_probe(valid.failover.probe_interval)
    }))
}

/// The backup instance 0 is restored from: resolved once, before the cluster's first primary,
/// and then read from `status.restoredFrom` (the `MySQLBackup` may be deleted afterwards).
/// Until the backup can be restored (not complete yet, missing), the round stops here and says
/// why; nothing is created that could start without it.
async fn resolve_restore(
    ctx: &Context,
    cluster: &MySQLCluster,
    valid: &ValidatedCluster,
) -> Result<Option<crate::api::RestoreSource>, Error> {
    if valid.restore.is_some() {
        return Ok(valid.restore.clone());
    }
    let Some(recovery) = cluster
        .spec
        .bootstrap
        .as_ref()
        .and_then(|b| b.recovery.as_ref())
    else {
        return Ok(None);
    };
    if crate::validate::bootstrapped(cluster.status.as_ref()) {
        return Ok(None);
    }
    if valid.operator_image.is_none() {
        return Err(Error::Restore(
            "this operator was started without --exporter-image (Helm value exporter.image), \
             the image whose binary restores"
                .into(),
        ));
    }
    let backup = match &recovery.backup {
        Some(name) => {
            Api::<crate::api::MySQLBackup>::namespaced(ctx.client.clone(), &valid.namespace)
                .get_opt(name)
                .await
                .map_err(|source| Error::Fetch {
                    what: format!("MySQLBackup {name}"),
                    source,
                })?
        }
        None => None,
    };
    crate::backup::restore::restore_source(&valid.namespace, recovery, backup.as_ref())
        .map(Some)
        .map_err(Error::Restore)
}

/// When to probe a cluster again: up to `PROBE_JITTER` earlier than its interval, at random,
/// so that clusters created together do not probe in lockstep. Never later, so a failure is
/// detected no later than the interval and threshold say.
fn next_probe(interval: Duration) -> Duration {
    jittered(interval, rand::random::<f64>())
}

/// The share of the probe interval by which a probe may come early.
const PROBE_JITTER: f64 = 0.1;

/// `interval` shortened by `draw` (in [0, 1)) times `PROBE_JITTER` of it.
fn jittered(interval: Duration, draw: f64) -> Duration {
    interval.mul_f64(1.0 - PROBE_JITTER * draw.clamp(0.0, 1.0))
}

/// The round's one reading of the clocks: every decision and every time written in the round
/// use the same moment.
struct RoundClock {
    wall: Timestamp,
    monotonic: Instant,
}

impl RoundClock {
    fn now() -> Self {
        Self {
            wall: Timestamp::now(),
            monotonic: Instant::now(),
        }
    }

    fn time(&self) -> Time {
        Time(self.wall)
    }
}

/// What the status recorded of earlier rounds, read once, in ordinals.
struct Recorded<'a> {
    current_primary: Option<u8>,
    members: Vec<u8>,
    last_failover: Option<Timestamp>,
    failed_over_from: Option<u8>,
    /// The address the recorded primary had when the status was last written.
    primary_address: Option<String>,
    accepted_settings: Option<&'a BTreeMap<String, String>>,
}

impl<'a> Recorded<'a> {
    fn read(name: &str, status: Option<&'a MySQLClusterStatus>) -> Self {
        let ordinal = |pod: &str| naming::ordinal_of(name, pod);
        let Some(status) = status else {
            return Self {
                current_primary: None,
                members: Vec::new(),
                last_failover: None,
                failed_over_from: None,
                primary_address: None,
                accepted_settings: None,
            };
        };
        let primary = status.current_primary.as_deref();
        Self {
            current_primary: primary.and_then(ordinal),
            members: status.members.iter().filter_map(|m| ordinal(m)).collect(),
            last_failover: status.last_failover_time.as_ref().map(|t| t.0),
            failed_over_from: status.last_failover_from.as_deref().and_then(ordinal),
            primary_address: status
                .instances
                .iter()
                .find(|i| Some(i.name.as_str()) == primary)
                .and_then(|i| i.pod_ip.clone()),
            accepted_settings: status.accepted_settings.as_ref(),
        }
    }
}

/// What the round reads besides the cluster, and what it derives from that for the steps.
struct Inputs {
    /// Passwords generated earlier must be kept: read from the credentials Secret.
    passwords: ClusterPasswords,
    /// The StatefulSet as it is: its volume claim template cannot change any more, and its
    /// update revision is the pod template every pod should run (one read for both; a template
    /// applied this round shows in the next, which its change triggers).
    statefulset: Option<StatefulSet>,
    /// The credentials Secret's metadata as read, for the apply step.
    secret: Option<ObjectMeta>,
    /// The passwords the servers have (`<name>-applied-passwords`): the operator logs in, sets
    /// up channels and clones with these, which differ from the Secret's while a rotation runs.
    applied: AppliedPasswords,
    applied_exists: bool,
    operator: Credentials,
    replication: Credentials,
    clone_donor: Credentials,
    pods: Api<Pod>,
    /// The TLS Secret, what the operator issues into it, and the CA to verify instances with.
    tls: ClusterTls,
}

/// What a round reads from the API server before it observes.
pub struct Reads {
    inputs: Inputs,
    pods: Vec<Pod>,
}

/// What a round at rest keeps for the rounds after it (`snapshot.rs`): its reads, and the data
/// volumes it observed later in the round.
pub struct KeptReads {
    reads: Arc<Reads>,
    volumes: VolumeObservation,
}

/// fetch: the reads the round before kept, when `snapshot::reusable` allows, else the
/// credentials Secret, the passwords the servers have, the StatefulSet and the pods. With
/// reused reads, also the volumes observed with them.
async fn read_cluster(
    ctx: &Context,
    cluster: &MySQLCluster,
    valid: &ValidatedCluster,
    reuse: Reuse,
) -> Result<(Arc<Reads>, Option<VolumeObservation>), Error> {
    // The watches are only looked at when there is something to compare them with.
    if let (Reuse::Allowed, Some(kept)) = (reuse, ctx.snapshot(cluster)) {
        let watched = watched_versions(ctx, cluster, valid);
        match reusable(Some(&kept), Instant::now(), watched.as_ref()) {
            Ok(()) => {
                let kept = &kept.reads;
                return Ok((kept.reads.clone(), Some(kept.volumes.clone())));
            }
            Err(why) => tracing::trace!(?why, "reading the cluster's objects afresh"),
        }
    }
    let inputs = fetch_inputs(ctx, valid).await?;
    let pods = list_pods(ctx, valid).await?;
    Ok((Arc::new(Reads { inputs, pods }), None))
}

/// What the watches show now of the cluster's pods, claims and StatefulSet, with the version
/// of the cluster's copy this round works on; `None` while they cannot say.
fn watched_versions(
    ctx: &Context,
    cluster: &MySQLCluster,
    valid: &ValidatedCluster,
) -> Option<Versions> {
    let stores = ctx.children.stores(&valid.namespace)?;
    let labels = naming::selector_labels(&valid.name);
    let statefulset =
        stores.get::<StatefulSet>(&valid.namespace, &naming::statefulset(&valid.name))?;
    Some(Versions {
        cluster: cluster.resource_version(),
        statefulset: statefulset.and_then(|m| m.resource_version),
        pods: stores.versions::<Pod>(&valid.namespace, &labels)?,
        claims: stores.versions::<PersistentVolumeClaim>(&valid.namespace, &labels)?,
    })
}

/// Keeps this round's reads for the next rounds if it ended at rest, and forgets them if not.
/// Reused reads keep the time they were read at: they are not fresher for being reused.
fn keep_reads(
    ctx: &Context,
    cluster: &MySQLCluster,
    reads: &Arc<Reads>,
    reused: bool,
    read_at: Instant,
    at_rest: bool,
    volumes: VolumeObservation,
) {
    if !at_rest {
        ctx.forget_snapshot(cluster);
        return;
    }
    if reused {
        return;
    }
    let versions = Versions {
        cluster: cluster.resource_version(),
        statefulset: reads
            .inputs
            .statefulset
            .as_ref()
            .and_then(|s| s.resource_version()),
        pods: reads
            .pods
            .iter()
            .map(|p| (p.name_any(), p.resource_version().unwrap_or_default()))
            .collect(),
        claims: volumes.versions.clone(),
    };
    let kept = KeptReads {
        reads: reads.clone(),
        volumes,
    };
    ctx.keep_snapshot(
        cluster,
        Snapshot {
            taken_at: read_at,
            versions,
            reads: Arc::new(kept),
        },
    );
}

/// fetch: the credentials Secret, the passwords the servers have, and the StatefulSet.
async fn fetch_inputs(ctx: &Context, valid: &ValidatedCluster) -> Result<Inputs, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &valid.namespace);
    let get = |name: String| {
        let secrets = secrets.clone();
        async move {
            secrets.get_opt(&name).await.map_err(|source| Error::Fetch {
                what: format!("Secret {name}"),
                source,
            })
        }
    };
    let existing_secret = get(naming::credentials_secret(&valid.name)).await?;
    let applied_secret = get(naming::applied_passwords_secret(&valid.name)).await?;
    let passwords = ClusterPasswords::complete(valid, existing_secret.as_ref());
    let applied = AppliedPasswords::from_secret(applied_secret.as_ref());
    // What the servers have: the applied password, or the Secret's before anything was applied.
    let password = |key| {
        applied
            .password(key)
            .or_else(|| passwords.get(key))
            .unwrap_or_default()
    };
    let operator = Credentials::new(
        naming::OPERATOR_USER,
        password(naming::OPERATOR_PASSWORD_KEY),
    );
    let replication = Credentials::new(
        naming::REPLICATION_USER,
        password(naming::REPLICATION_PASSWORD_KEY),
    );
    let (donor_user, donor_key) = passwords.clone_donor_key();
    let clone_donor = Credentials::new(donor_user, password(donor_key));
    Ok(Inputs {
        clone_donor,
        tls: fetch_tls(&ctx.client, valid, Timestamp::now()).await?,
        statefulset: fetch_statefulset(ctx, valid).await?,
        secret: existing_secret.map(|s| s.metadata),
        applied_exists: applied_secret.is_some(),
        applied,
        operator,
        replication,
        pods: Api::namespaced(ctx.client.clone(), &valid.namespace),
        passwords,
    })
}

/// What the apply step did.
struct Applied {
    /// The children another manager owns; `None` for a paused cluster, whose resources are
    /// left as they are.
    not_owned: Option<Vec<String>>,
    /// How many children it wrote.
    written: usize,
}

/// build and apply: the children from the spec, applied where they changed.
async fn build_and_apply(
    ctx: &Context,
    valid: &ValidatedCluster,
    inputs: &Inputs,
    recorded: &Recorded<'_>,
) -> Result<Applied, Error> {
    if valid.paused {
        return Ok(Applied {
            not_owned: None,
            written: 0,
        });
    }
    let carried = Carried::from_existing(valid, inputs.statefulset.as_ref());
    // my.cnf holds only online settings mysqld took (see `accepted_settings`).
    let built = Resources::build(
        valid,
        &inputs.passwords,
        &carried,
        recorded.accepted_settings,
        inputs.tls.issued.as_ref(),
    );
    let fetched = Fetched {
        secret: inputs.secret.as_ref(),
        tls_secret: inputs.tls.secret_meta.as_ref(),
        statefulset: inputs.statefulset.as_ref().map(|s| &s.metadata),
    };
    let watched = ctx.children.stores(&valid.namespace);
    let (_applied, stats) = apply_all(
        &ctx.client,
        &valid.namespace,
        built,
        fetched,
        watched.as_ref(),
    )
    .await?;
    tracing::debug!(
        written = stats.written,
        unchanged = stats.unchanged,
        "children applied"
    );
    Ok(Applied {
        not_owned: Some(stats.not_owned),
        written: stats.written,
    })
}

/// The cluster's pods, by its selector labels.
async fn list_pods(ctx: &Context, valid: &ValidatedCluster) -> Result<Vec<Pod>, Error> {
    let selector = naming::selector(&valid.name);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &valid.namespace);
    Ok(pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::Fetch {
            what: "Pods".into(),
            source,
        })?
        .items)
}

/// observe: every instance's MySQL, with what the status and this operator know of it.
async fn observe_cluster(
    ctx: &Context,
    cluster: &MySQLCluster,
    valid: &ValidatedCluster,
    inputs: &Inputs,
    recorded: &Recorded<'_>,
    pods: &[Pod],
) -> Result<Observation, Error> {
    let update_revision = inputs
        .statefulset
        .as_ref()
        .and_then(|s| s.status.as_ref()?.update_revision.clone());
    let mut observation = observe(
        &ctx.connector,
        &inputs.operator,
        &valid.name,
        &valid.namespace,
        valid.instances,
        recorded.current_primary,
        recorded.members.clone(),
        update_revision,
        pods,
        inputs.tls.ca.as_ref(),
    )
    .await;
    observation.note_clones(&ctx.clones.in_flight(&valid.owner.uid));
    observation.failed_over_from = recorded.failed_over_from;
    // Only a cluster with no recorded primary chooses one from the volumes' histories; one list
    // call until then, none after.
    if recorded.current_primary.is_none()
        && let Some(created) = cluster.metadata.creation_timestamp.as_ref()
    {
        observation.retained_volumes =
            volumes_older_than(&ctx.client, &valid.namespace, &valid.name, created)
                .await
                .map_err(Error::Storage)?;
    }
    Ok(observation)
}

/// What this operator remembers of the cluster's earlier rounds, as of this one.
struct Remembered {
    /// Observations in a row, this one included, that could not reach the recorded primary.
    primary_failures: u32,
    /// How long until the primary, if it is cut off, has surely fenced itself: for the decision
    /// and for when to look again.
    until_fenced: Duration,
    /// The primary whose failover an earlier round began.
    failover_underway: Option<u8>,
}

impl Remembered {
    fn read(
        ctx: &Context,
        cluster: &MySQLCluster,
        primary_failures: u32,
        now: &RoundClock,
    ) -> Self {
        Self {
            primary_failures,
            until_fenced: until_self_fenced(
                ctx.last_lease_renewal(cluster, now.monotonic),
                now.monotonic,
            ),
            failover_underway: ctx.failover_underway(cluster),
        }
    }
}

/// What the user and the earlier rounds want of `decide`, besides the observation.
fn intent(
    cluster: &MySQLCluster,
    valid: &ValidatedCluster,
    recorded: &Recorded<'_>,
    observation: &Observation,
    remembered: &Remembered,
    now: &RoundClock,
) -> Intent {
    let bootstrap_deadline = cluster
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| t.0.checked_add(BOOTSTRAP_WAIT).ok());
    Intent {
        desired_primary: valid.primary_instance,
        failover: valid.failover.gate(recorded.last_failover, now.wall),
        primary_failures: remembered.primary_failures,
        failure_threshold: valid.failover.failure_threshold,
        stale_primary_address: stale_primary_address(recorded, observation),
        primary_self_fenced: remembered.until_fenced.is_zero(),
        failover_underway: remembered.failover_underway,
        bootstrap_wait_over: bootstrap_deadline.is_some_and(|deadline| deadline <= now.wall),
    }
}

/// A failover's first writes, before anything is carried out: remembered as under way (a fence
/// that fails halfway is begun all the same, and the next round finishes or repeats it), and a
/// new primary recorded and announced before it is promoted (an operator that dies halfway
/// leaves its successor a promotion to finish, never a second candidate to promote; if the
/// promotion fails, the next round finishes it as the recorded primary's preparation, which
/// is no new failover).
async fn begin_failover(
    ctx: &Context,
    cluster: &MySQLCluster,
    valid: &ValidatedCluster,
    plan: &Plan,
    now: &RoundClock,
) -> Result<(), Error> {
    ctx.record_failover_underway(cluster, plan.failover_underway);
    let (Some(old), Some(new)) = (plan.failover_from, plan.primary) else {
        return Ok(());
    };
    let (primary, replaced) = (naming::pod(&valid.name, new), naming::pod(&valid.name, old));
    record_failover(ctx, cluster, &primary, &replaced, now).await?;
    ctx.metrics.primary_moved(
        &valid.namespace,
        &valid.name,
        metrics::PrimaryMove::Failover,
    );
    let primary_move = PrimaryMove {
        type_: EventType::Warning,
        reason: "FailedOver",
        how: "failing over from unreachable",
    };
    announce(ctx, cluster, &valid.name, primary_move, old, new).await;
    Ok(())
}

/// Who and what operate acts on.
fn operate_target<'a>(
    ctx: &'a Context,
    valid: &'a ValidatedCluster,
    inputs: &'a Inputs,
) -> OperateTarget<'a, Api<Pod>> {
    OperateTarget {
        cluster_name: &valid.name,
        cluster_uid: &valid.owner.uid,
        namespace: &valid.namespace,
        operator: &inputs.operator,
        replication: &inputs.replication,
        clone_donor: &inputs.clone_donor,
        pods: &inputs.pods,
        clones: &ctx.clones,
        cluster_ca: inputs.tls.ca.as_ref(),
    }
}

/// operate: carries the plan out, renews the primary's lease, announces what was done. Returns
/// the actions done, or the failure that stopped the plan.
async fn operate_plan(
    ctx: &Context,
    cluster: &MySQLCluster,
    valid: &ValidatedCluster,
    inputs: &Inputs,
    observation: &Observation,
    plan: &Plan,
    now: &RoundClock,
) -> Result<Vec<ClusterAction>, Error> {
    let target = operate_target(ctx, valid, inputs);
    let operated = operate(&ctx.connector, &target, observation, plan).await;
    // lease: the primary, answering, is good for another PRIMARY_LEASE; renewed even when an
    // action failed, which is no reason for a primary to fence itself
    let ca = inputs.tls.ca.as_ref();
    renew_primary_lease(ctx, cluster, observation, plan, &inputs.operator, ca).await;
    // What was done is announced even when a later action failed: it happened.
    for action in &operated.done {
        if let Some((reason, note, ordinal)) = notable(&valid.name, action) {
            let pod = pod_reference(&valid.namespace, naming::pod(&valid.name, ordinal));
            publish(ctx, cluster, EventType::Normal, reason, note, Some(pod)).await;
        }
    }
    if let Some(error) = operated.failed {
        // The report is not reached: keep what a clone discarded on record now.
        record_discarded_now(ctx, cluster, &valid.name, &operated.done, now).await;
        return Err(error.into());
    }
    if let (Some(old), Some(new)) = (plan.switchover_from, plan.primary) {
        ctx.metrics.primary_moved(
            &valid.namespace,
            &valid.name,
            metrics::PrimaryMove::Switchover,
        );
        let primary_move = PrimaryMove {
            type_: EventType::Normal,
            reason: "SwitchedOver",
            how: "switched over from",
        };
        announce(ctx, cluster, &valid.name, primary_move, old, new).await;
    }
    Ok(operated.done)
}

/// Where the settings stand after a round.
struct SettledSettings {
    plan: SettingsPlan,
    /// Online settings mysqld refused.
    refused: Vec<RefusedSetting>,
    /// What the next build puts into my.cnf.
    accepted: BTreeMap<String, String>,
}

/// settings: spec.mysqlConfig changes MySQL takes at run time, applied without a restart.
async fn settle_settings(
    ctx: &Context,
    valid: &ValidatedCluster,
    inputs: &Inputs,
    recorded: &Recorded<'_>,
    observation: &Observation,
) -> SettledSettings {
    let wanted = mysql_settings::split(&valid.mysql_config);
    let plan = plan_settings(observation, &wanted);
    let target = operate_target(ctx, valid, inputs);
    let outcomes = apply_settings(&ctx.connector, &target, observation, &plan.online).await;
    // Only the server's own refusal is the user's to fix; a server that does not answer (it is
    // restarting) gets the settings when it answers again, as its annotation does not have them.
    let refused = outcomes
        .iter()
        .flat_map(|o| {
            o.refused.iter().map(|(_, e)| RefusedSetting {
                pod: o.change.pod.clone(),
                error: error_chain(e),
            })
        })
        .collect();
    let accepted = accepted_settings(
        recorded.accepted_settings,
        &wanted.online,
        observation,
        &settings_results(&outcomes),
    );
    SettledSettings {
        plan,
        refused,
        accepted,
    }
}

/// Publishes the report's notices, each related to its pod if it names one.
async fn publish_all(ctx: &Context, cluster: &MySQLCluster, notices: Vec<Notice>) {
    let namespace = cluster.namespace().unwrap_or_default();
    for notice in notices {
        let pod = notice.pod.map(|pod| pod_reference(&namespace, pod));
        publish(ctx, cluster, notice.type_, &notice.reason, notice.note, pod).await;
    }
}

/// Writes the status if it differs from the one the cluster has.
async fn write_status(
    ctx: &Context,
    cluster: &MySQLCluster,
    status: &MySQLClusterStatus,
) -> Result<(), Error> {
    if cluster.status.as_ref() != Some(status) {
        patch_status(ctx, cluster, status).await?;
    }
    Ok(())
}

/// Has every instance serving an older certificate than the Secret's load the current one, with
/// no restart. A failure is logged and retried by the next round: the old certificate serves on.
async fn reload_certificates(
    ctx: &Context,
    valid: &ValidatedCluster,
    inputs: &Inputs,
    observation: &Observation,
) {
    for ordinal in instances_to_reload(observation, inputs.tls.not_after) {
        let endpoint = observation.pod(ordinal).and_then(|pod| {
            instance_endpoint(
                &valid.name,
                &valid.namespace,
                ordinal,
                pod,
                inputs.tls.ca.as_ref(),
            )
        });
        let Some(endpoint) = endpoint else {
            continue;
        };
        let reloaded = match ctx.connector.connect(&endpoint, &inputs.operator).await {
            Ok(admin) => admin.reload_tls().await,
            Err(e) => Err(e),
        };
        match reloaded {
            Ok(()) => tracing::info!(
                ordinal,
                "TLS reloaded: the Secret holds another certificate"
            ),
            Err(e) => tracing::warn!(ordinal, error = %error_chain(&e), "TLS not reloaded"),
        }
    }
}

/// Renews the lease of the plan's primary if it answered this round (a renewal attempt on a
/// server that does not answer would only hold the reconcile up for the connect timeout).
/// A failure is logged, not returned: the lease only matters to a primary cut off from everyone.
async fn renew_primary_lease(
    ctx: &Context,
    cluster: &MySQLCluster,
    observation: &Observation,
    plan: &Plan,
    credentials: &Credentials,
    cluster_ca: Option<&Arc<[u8]>>,
) {
    let Some(primary) = observation.instances.iter().find(|i| {
        Some(i.ordinal) == plan.primary && matches!(i.mysql, MySqlObservation::Observed(_))
    }) else {
        return;
    };
    let (name, namespace) = (cluster.name_any(), cluster.namespace().unwrap_or_default());
    // The probe's endpoint exactly, so the renewal runs on the connection the probe kept.
    let Some(endpoint) = primary
        .pod
        .as_ref()
        .and_then(|pod| instance_endpoint(&name, &namespace, primary.ordinal, pod, cluster_ca))
    else {
        return;
    };
    // Addresses, and the stable names too: a replica pod re-created while the operator is away
    // has a new address, and the primary must not take its own replicas for gone (fence.sh).
    let others = || {
        observation
            .instances
            .iter()
            .filter(|i| Some(i.ordinal) != plan.primary)
    };
    let peers: Vec<String> = others()
        .filter_map(|i| i.pod.as_ref()?.ip.clone())
        .chain(others().map(|i| naming::pod_host(&name, &namespace, i.ordinal)))
        .collect();
    let renewed = match ctx.connector.connect_kept(&endpoint, credentials).await {
        Ok(admin) => admin.renew_primary_lease(PRIMARY_LEASE, &peers).await,
        Err(e) => Err(e),
    };
    match renewed {
        // Counted from when the renewal returned, the latest moment the primary can have taken
        // it: the lease runs out on the primary no later than PRIMARY_LEASE after this.
        Ok(()) => ctx.record_lease_renewal(cluster, std::time::Instant::now()),
        Err(e) => tracing::warn!(error = %error_chain(&e), "primary lease not renewed"),
    }
}

/// The address the recorded primary had when the status was written, if its pod now has
/// another (or none): a primary pod replaced while the operator was away.
fn stale_primary_address(recorded: &Recorded<'_>, observation: &Observation) -> Option<String> {
    let last_seen = recorded.primary_address.as_deref()?;
    let now = observation
        .instances
        .iter()
        .find(|i| observation.current_primary == Some(i.ordinal))
        .and_then(|i| i.pod.as_ref())
        .and_then(|p| p.ip.clone());
    (now.as_deref() != Some(last_seen)).then(|| last_seen.to_string())
}

/// Records a failover's new primary, the one it replaces and its time in the status, before the
/// promotion.
async fn record_failover(
    ctx: &Context,
    cluster: &MySQLCluster,
    primary: &str,
    replaced: &str,
    now: &RoundClock,
) -> Result<(), Error> {
    let api: Api<MySQLCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    // A merge patch of two fields: the full status follows with server-side apply after the
    // promotion, which takes them over.
    let patch = json!({"status": {
        "currentPrimary": primary,
        "lastFailoverTime": now.time(),
        "lastFailoverFrom": replaced,
    }});
    let written = api
        .patch_status(
            &cluster.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(Error::Status)?;
    ctx.record_version(&written);
    Ok(())
}

/// Writes `status.discardedTransactions` at once with what the clones in `done` discarded, for
/// a reconcile that stops before its status step. Nothing to write: no request.
async fn record_discarded_now(
    ctx: &Context,
    cluster: &MySQLCluster,
    name: &str,
    done: &[ClusterAction],
    now: &RoundClock,
) {
    let discarded_some = done.iter().any(|a| {
        matches!(
            a,
            ClusterAction::CloneFrom {
                discarded: Some(_),
                ..
            }
        )
    });
    if !discarded_some {
        return;
    }
    let mut status = cluster.status.clone().unwrap_or_default();
    record_discarded(&mut status, name, done, now.time());
    let api: Api<MySQLCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let patch = json!({"status": {"discardedTransactions": status.discarded_transactions}});
    match api
        .patch_status(
            &cluster.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(written) => ctx.record_version(&written),
        Err(e) => tracing::warn!(error = %e, "discarded transactions not recorded"),
    }
}

/// The existing StatefulSet, whose volume claim template cannot change any more.
async fn fetch_statefulset(
    ctx: &Context,
    valid: &ValidatedCluster,
) -> Result<Option<StatefulSet>, Error> {
    let name = naming::statefulset(&valid.name);
    Api::<StatefulSet>::namespaced(ctx.client.clone(), &valid.namespace)
        .get_opt(&name)
        .await
        .map_err(|source| Error::Fetch {
            what: format!("StatefulSet {name}"),
            source,
        })
}

/// Deletes the cluster's configuration ConfigMaps that nothing uses any more: not the pod
/// template just applied, not the one the StatefulSet had before (its controller may not have
/// seen the new one yet, and would create a pod from it), not any pod, even one being deleted.
/// A failure is only logged: an unused ConfigMap harms nobody, and the next round tries again.
async fn prune_config_maps(
    ctx: &Context,
    valid: &ValidatedCluster,
    pods: &[Pod],
    previous: Option<&StatefulSet>,
) {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &valid.namespace);
    let mut in_use: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p.spec.as_ref())
        .chain(
            previous
                .and_then(|s| s.spec.as_ref())
                .and_then(|s| s.template.spec.as_ref()),
        )
        .flat_map(config_map::config_maps_in)
        .map(String::from)
        .collect();
    in_use.insert(naming::config_map(
        &valid.name,
        &config_map::restart_hash(valid),
    ));
    // By the cluster's labels: another cluster's names may begin with this one's prefix. From
    // the watch when it has listed: one lagging behind at worst leaves a ConfigMap for the next
    // round, or tries to delete one already gone.
    let Some(existing) = config_map_names(ctx, valid, &api).await else {
        return;
    };
    for name in config_map::unused_config_maps(&valid.name, &existing, &in_use) {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => tracing::info!(name, "deleted a ConfigMap no pod or template uses"),
            Err(e) => tracing::warn!(name, error = %e, "could not delete an unused ConfigMap"),
        }
    }
}

/// The names of the cluster's ConfigMaps, from the watch once it has listed, else from a list
/// call; `None` when neither can say.
async fn config_map_names(
    ctx: &Context,
    valid: &ValidatedCluster,
    api: &Api<ConfigMap>,
) -> Option<Vec<String>> {
    let labels = naming::selector_labels(&valid.name);
    if let Some(names) = ctx
        .children
        .stores(&valid.namespace)
        .and_then(|stores| stores.names::<ConfigMap>(&valid.namespace, &labels))
    {
        return Some(names);
    }
    let selector = naming::selector(&valid.name);
    match api
        .list_metadata(&ListParams::default().labels(&selector))
        .await
    {
        Ok(list) => Some(
            list.items
                .into_iter()
                .filter_map(|m| m.metadata.name)
                .collect(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not list the ConfigMaps to prune");
            None
        }
    }
}

/// Observes the data volumes (unless the reads kept from an earlier round have them), grows
/// those smaller than the spec (announced with an event), and returns the plan for the status
/// with the observation.
async fn reconcile_volumes(
    ctx: &Context,
    cluster: &MySQLCluster,
    valid: &ValidatedCluster,
    kept: Option<VolumeObservation>,
) -> Result<(VolumePlan, VolumeObservation), Error> {
    let ns = valid.namespace.as_str();
    let observation = match kept {
        Some(kept) => kept,
        None => observe_volumes(&ctx.client, ns, &valid.name, &valid.storage_size).await?,
    };
    let plan = decide_volumes(&valid.storage_size, valid.instances, &observation);
    if !plan.expand.is_empty() {
        expand_volumes(&ctx.client, ns, &plan.expand).await?;
        let claims: Vec<&str> = plan.expand.iter().map(|e| e.claim.as_str()).collect();
        let note = format!(
            "expanding {} to {}",
            claims.join(", "),
            valid.storage_size.0
        );
        publish(
            ctx,
            cluster,
            EventType::Normal,
            "VolumeExpansion",
            note,
            None,
        )
        .await;
    }
    Ok((plan, observation))
}

/// Instances on lost nodes (`lost_nodes`): the nodes under pods that are not Ready are read,
/// and one instance lost for longer than `spec.failover.lostNodeSeconds` is replaced. What
/// fails here (a node that cannot be read, a deletion refused) is reported and tried again next
/// round; the rest of the round, and the cluster, go on. Returns the plan, for the status.
async fn replace_lost_instances(
    ctx: &Context,
    cluster: &MySQLCluster,
    valid: &ValidatedCluster,
    pods: &[Pod],
    primary: Option<u8>,
    now: Timestamp,
) -> LostNodePlan {
    let ns = valid.namespace.as_str();
    let mut decided = LostNodePlan::default();
    let replaced = async {
        let instances =
            observe_lost_nodes(&ctx.client, ns, &valid.name, valid.instances, pods).await?;
        decided = decide_lost_nodes(&instances, primary, valid.lost_nodes, now);
        match &decided.replace {
            Some(replacement) => {
                replace_instance(&ctx.client, ns, replacement).await?;
                Ok(Some(replacement.clone()))
            }
            None => Ok::<_, LostNodeError>(None),
        }
    }
    .await;
    let (type_, reason, note) = match replaced {
        Ok(None) => return decided,
        Ok(Some(replacement)) => (
            EventType::Warning,
            "InstanceReplaced",
            describe_replacement(&replacement, valid.lost_nodes.after),
        ),
        Err(error) => (
            EventType::Warning,
            error.category(),
            error_chain(&error as &dyn std::error::Error),
        ),
    };
    tracing::warn!(reason, "{note}");
    publish(ctx, cluster, type_, reason, note, None).await;
    decided
}

fn describe_replacement(replacement: &Replacement, after: Duration) -> String {
    match replacement {
        Replacement::ClaimAndPod {
            pod, claim, node, ..
        } => format!(
            "{pod} was on node {node}, lost for over {} s: deleted its pod and its volume \
             {claim}, which cannot leave that node; it starts empty on another node and is \
             cloned from the primary",
            after.as_secs()
        ),
        Replacement::Pod { pod, node, .. } => format!(
            "{pod} was on node {node}, lost for over {} s: deleted its pod; it starts on another \
             node with the same volume",
            after.as_secs()
        ),
    }
}

/// How the primary moved, for its event.
struct PrimaryMove {
    type_: EventType,
    reason: &'static str,
    /// The note's opening words, followed by "<old pod> to <new pod>".
    how: &'static str,
}

/// Publishes the event of a primary move, related to the new primary's pod.
async fn announce(
    ctx: &Context,
    cluster: &MySQLCluster,
    name: &str,
    primary_move: PrimaryMove,
    old: u8,
    new: u8,
) {
    let note = format!(
        "{} {} to {}",
        primary_move.how,
        naming::pod(name, old),
        naming::pod(name, new)
    );
    let pod = pod_reference(
        &cluster.namespace().unwrap_or_default(),
        naming::pod(name, new),
    );
    publish(
        ctx,
        cluster,
        primary_move.type_,
        primary_move.reason,
        note,
        Some(pod),
    )
    .await;
}

/// The actions a user wants to see as events, with the instance they concern; the rest are routine.
fn notable(cluster: &str, action: &ClusterAction) -> Option<(&'static str, String, u8)> {
    let pod = |o: &u8| naming::pod(cluster, *o);
    match action {
        ClusterAction::MakeWritable { ordinal } => Some((
            "PrimaryWritable",
            format!("made {} writable as the primary", pod(ordinal)),
            *ordinal,
        )),
        ClusterAction::CloneFrom {
            ordinal,
            donor,
            discarded,
        } => Some((
            "ReplicaCloned",
            match discarded {
                None => format!("seeded {} with a clone of {}", pod(ordinal), pod(donor)),
                Some(gtids) => format!(
                    "seeded {} with a clone of {}, discarding its unacknowledged transactions {gtids}",
                    pod(ordinal),
                    pod(donor)
                ),
            },
            *ordinal,
        )),
        ClusterAction::RestartPod { ordinal } => Some((
            "RollingRestart",
            format!(
                "restarting {} to run the current pod template",
                pod(ordinal)
            ),
            *ordinal,
        )),
        ClusterAction::ReplicateFrom { ordinal, source } => Some((
            "ReplicationStarted",
            format!("{} replicates from {}", pod(ordinal), pod(source)),
            *ordinal,
        )),
        _ => None,
    }
}

/// A reference to one of the cluster's pods, the related object of an event about it.
fn pod_reference(namespace: &str, name: String) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(name),
        namespace: Some(namespace.into()),
        ..Default::default()
    }
}

async fn patch_status(
    ctx: &Context,
    cluster: &MySQLCluster,
    status: &MySQLClusterStatus,
) -> Result<(), Error> {
    let api: Api<MySQLCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": MySQLCluster::api_version(&()),
        "kind": MySQLCluster::kind(&()),
        "status": status,
    });
    let written = api
        .patch_status(
            &cluster.name_any(),
            &PatchParams::apply(naming::FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::Status)?;
    ctx.record_version(&written);
    Ok(())
}

/// The one place a failure is reported: a log line, a Warning event with the whole error chain,
/// and `ReconcileSuccess=False` in the status.
async fn record_failure(cluster: &MySQLCluster, ctx: &Context, error: &Error) {
    let chain = error_chain(error);
    tracing::warn!(
        namespace = %cluster.namespace().unwrap_or_default(),
        name = %cluster.name_any(),
        category = error.category(),
        error = %chain,
        "reconcile failed"
    );
    publish(
        ctx,
        cluster,
        EventType::Warning,
        error.category(),
        chain.clone(),
        None,
    )
    .await;
    // The round may have written the status after `cluster` was read (a failover is recorded
    // before its promotion, which can then fail): a failed status built from the older copy
    // would take that back, and the next round would see the replaced primary as current
    // again, with no failover on record. So it is built on the freshest copy, or not written.
    let fresh = match freshest(ctx, cluster.clone()).await {
        Ok(fresh) => fresh,
        Err((_, e)) => {
            tracing::warn!(error = %error_chain(&e), "could not record the failure in the status");
            return;
        }
    };
    let status = failed_status(
        fresh.status.as_ref(),
        fresh.metadata.generation,
        error.category(),
        chain,
        Time(Timestamp::now()),
    );
    if fresh.status.as_ref() != Some(&status)
        && let Err(e) = patch_status(ctx, &fresh, &status).await
    {
        tracing::warn!(error = %error_chain(&e), "could not record the failure in the status");
    }
}

/// Publishes an event about the cluster; `related` names the pod it concerns, which also keeps
/// events about different pods apart (the recorder folds events with the same key into a series).
async fn publish(
    ctx: &Context,
    cluster: &MySQLCluster,
    type_: EventType,
    reason: &str,
    note: String,
    related: Option<ObjectReference>,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(truncate_note(note)),
        action: "Reconcile".into(),
        secondary: related,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish an event");
    }
}

/// The events API refuses notes over 1 KiB; a long error chain keeps its head.
pub(crate) fn truncate_note(mut note: String) -> String {
    const LIMIT: usize = 1000;
    if note.len() > LIMIT {
        let mut end = LIMIT;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str(" ...");
    }
    note
}

/// What to do after a failed reconcile: wait for an edit when the spec is invalid, else back off.
pub fn error_policy(_object: Arc<DynamicObject>, error: &Error, _ctx: Arc<Context>) -> Action {
    if error.waits_for_change() {
        Action::await_change()
    } else {
        Action::requeue(RETRY_AFTER_FAILURE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_comes_at_most_a_tenth_early_and_never_late() {
        let interval = Duration::from_secs(2);
        let cases = [
            (0.0, Duration::from_secs(2)),
            (0.5, Duration::from_millis(1900)),
            (0.999_999, Duration::from_millis(1800)),
            // Out of range draws are clamped: never later than the interval.
            (-3.0, Duration::from_secs(2)),
            (7.0, Duration::from_millis(1800)),
        ];
        for (draw, want) in cases {
            let got = jittered(interval, draw);
            assert!(
                got.abs_diff(want) < Duration::from_millis(1),
                "{draw}: {got:?}"
            );
        }
    }

    #[test]
    fn event_notes_fit_the_events_api_limit() {
        let long = "é".repeat(2000);
        let note = truncate_note(long);
        assert!(note.len() <= 1024, "{} bytes", note.len());
        assert!(note.ends_with(" ..."));
        assert_eq!(truncate_note("short".into()), "short");
    }
}
