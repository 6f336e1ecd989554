//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several operator replicas
//! exactly one reconciles and a standby takes over when the leader dies or is cut off.
//!
//! The rules (client-go's, written out):
//! - A candidate takes the lease when it is free (no holder, e.g. released on SIGTERM), when it
//!   already holds it, or when the record has not changed for a whole lease duration as measured
//!   on the candidate's own monotonic clock. Wall clocks of other nodes are never compared.
//! - Every write is a replace guarded by the resourceVersion that was read, so two candidates
//!   can never both win the same round.
//! - The leader renews every `renew_interval`. If it has not renewed successfully within
//!   `renew_deadline` (shorter than the lease duration), it stops acting at once: a standby may
//!   take the lease `lease_duration` after the last renewal, and by then the old leader is gone.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::http::Health;
use crate::metrics::Metrics;

/// Timings and names of one election.
#[derive(Clone, Debug)]
pub struct Config {
    /// Name of the Lease object.
    pub lease_name: String,
    /// Namespace of the Lease object (the operator's own).
    pub namespace: String,
    /// Who this replica is; the pod name, unique among the candidates.
    pub identity: String,
    /// How long a record may stay unchanged before a standby takes the lease.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long stops acting; shorter than `lease_duration`.
    pub renew_deadline: Duration,
    /// How often the leader renews.
    pub renew_interval: Duration,
    /// How often a standby looks at the lease, and how soon a failed renewal is retried.
    pub retry_period: Duration,
}

impl Config {
    /// The defaults: lease 15 s, deadline 10 s, renew every 5 s, retry every 2 s.
    pub fn new(namespace: String, identity: String) -> Self {
        Self {
            lease_name: "sakila-operator".into(),
            namespace,
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            renew_interval: Duration::from_secs(5),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What a candidate may do with a lease it has just read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// It holds the lease already: renew it.
    Renew,
    /// Nobody holds it (never held, or released): take it now.
    TakeFree,
    /// Its holder stopped renewing a lease duration ago: take it over.
    TakeExpired,
    /// Someone else holds a live lease: wait.
    Wait,
}

/// Decides what `me` may do with a lease held by `holder`, whose record has not changed for
/// `unchanged_for` (on this candidate's clock).
pub fn claim(
    holder: Option<&str>,
    me: &str,
    unchanged_for: Duration,
    lease_duration: Duration,
) -> Claim {
    match holder {
        None | Some("") => Claim::TakeFree,
        Some(h) if h == me => Claim::Renew,
        Some(_) if unchanged_for >= lease_duration => Claim::TakeExpired,
        Some(_) => Claim::Wait,
    }
}

/// Whether a leader whose last successful renewal was `since_renewal` ago must stop acting.
pub fn must_step_down(since_renewal: Duration, renew_deadline: Duration) -> bool {
    since_renewal >= renew_deadline
}

/// How an election ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// Shutdown was asked for while waiting as a standby.
    ShutdownAsStandby,
    /// Shutdown was asked for while leading: the work stopped and the lease was released.
    ShutdownAsLeader,
    /// The leader could not renew in time (or the lease was taken): it must exit now.
    LostLease,
    /// The work ended on its own while leading (the lease was released).
    WorkEnded,
}

/// A failed lease read or write.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error("failed to read or write Lease {0}")]
    Api(String, #[source] kube::Error),
    #[error("timed out talking to the API server about Lease {0}")]
    Timeout(String),
}

/// One candidate in the election.
pub struct LeaderElector {
    api: Api<Lease>,
    config: Config,
    /// The resourceVersion of the record last seen, and when (on this clock) it was first seen.
    seen: Option<(String, Instant)>,
    /// When this candidate last wrote the lease successfully as its holder.
    last_renewal: Option<Instant>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

impl LeaderElector {
    /// A candidate that has not looked at the lease yet.
    pub fn new(client: Client, config: Config, health: Arc<Health>, metrics: Arc<Metrics>) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            seen: None,
            last_renewal: None,
            health,
            metrics,
        }
    }

    /// Waits to become the leader, runs `work` while leading, and releases the lease when
    /// `shutdown` turns true. `work` must stop soon after `shutdown` turns true; if it is not
    /// done within `shutdown_budget`, the lease is released anyway and the caller should exit.
    pub async fn lead<F, Fut>(
        mut self,
        mut shutdown: watch::Receiver<bool>,
        shutdown_budget: Duration,
        work: F,
    ) -> Ending
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ()>,
    {
        tracing::info!(lease = %self.config.lease_name, identity = %self.config.identity, "waiting to lead");
        // Standby: try every retry period until the lease is ours.
        loop {
            if *shutdown.borrow() {
                return Ending::ShutdownAsStandby;
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "lease round failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.retry_period) => {}
                _ = shutdown.wait_for(|stop| *stop) => return Ending::ShutdownAsStandby,
            }
        }
        tracing::info!(identity = %self.config.identity, "acquired the lease; leading");
        self.metrics.set_leader(true);
        self.health.set_leader(true);

        let work = work();
        tokio::pin!(work);
        let mut shutdown_for_budget = shutdown.clone();
        let budget = async move {
            let _ = shutdown_for_budget.wait_for(|stop| *stop).await;
            tokio::time::sleep(shutdown_budget).await;
        };
        tokio::pin!(budget);
        let ending = tokio::select! {
            _ = &mut work => if *shutdown.borrow() { Ending::ShutdownAsLeader } else { Ending::WorkEnded },
            _ = self.keep_leading() => Ending::LostLease,
            _ = &mut budget => {
                tracing::warn!(?shutdown_budget, "the controller did not stop in time; releasing anyway");
                Ending::ShutdownAsLeader
            }
        };
        self.metrics.set_leader(false);
        if ending != Ending::LostLease {
            // The work has stopped (or is abandoned, and the caller exits): hand over at once.
            match self.release().await {
                Ok(()) => tracing::info!("released the lease"),
                Err(e) => {
                    tracing::warn!(error = %e, "could not release the lease; the standby takes over when it expires")
                }
            }
        }
        ending
    }

    /// Renews until a renewal deadline is missed or someone else holds the lease; then returns.
    async fn keep_leading(&mut self) {
        loop {
            // A round that is still running at the deadline is as good as a failed one.
            let left = self.config.renew_deadline.saturating_sub(
                self.last_renewal
                    .map(|t| t.elapsed())
                    .unwrap_or(Duration::MAX),
            );
            let renewed = match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => true,
                Ok(Ok(false)) => {
                    tracing::error!("the lease is held by another replica");
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "lease renewal failed");
                    false
                }
                Err(_) => false,
            };
            let since = self
                .last_renewal
                .map(|t| t.elapsed())
                .unwrap_or(Duration::MAX);
            if must_step_down(since, self.config.renew_deadline) {
                tracing::error!(?since, deadline = ?self.config.renew_deadline, "could not renew the lease in time");
                return;
            }
            let pause = if renewed {
                self.config.renew_interval
            } else {
                self.config.retry_period
            };
            // Never sleep past the deadline: wake in time to notice it.
            let left = self.config.renew_deadline.saturating_sub(since);
            tokio::time::sleep(pause.min(left)).await;
        }
    }

    /// One round: read the lease, and write it if this candidate may hold it. `Ok(true)` means
    /// this candidate holds the lease now.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, ElectionError> {
        let name = self.config.lease_name.clone();
        let limit = self.config.retry_period;
        let current = self.call(limit, self.api.get_opt(&name)).await?;
        self.health.set_connected();
        let now = Instant::now();
        let Some(mut lease) = current else {
            let lease = self.new_record(None);
            return match self
                .call(limit, self.api.create(&PostParams::default(), &lease))
                .await
            {
                Ok(created) => {
                    self.remember(&created, now);
                    self.last_renewal = Some(now);
                    Ok(true)
                }
                // Another candidate created it first: we find out who next round.
                Err(ElectionError::Api(_, kube::Error::Api(s))) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let unchanged_for = match &self.seen {
            Some((seen, since)) if *seen == version => now.duration_since(*since),
            _ => {
                self.seen = Some((version, now));
                Duration::ZERO
            }
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let decision = claim(
            spec.holder_identity.as_deref(),
            &self.config.identity,
            unchanged_for,
            self.config.lease_duration,
        );
        if decision == Claim::Wait {
            return Ok(false);
        }
        if decision == Claim::TakeExpired {
            tracing::info!(previous = ?spec.holder_identity, ?unchanged_for, "taking over an expired lease");
        }
        let renewed = self.new_record(Some(&spec));
        lease.spec = renewed.spec;
        // resourceVersion stays as read: the replace fails with 409 if anyone wrote in between.
        match self
            .call(
                limit,
                self.api.replace(&name, &PostParams::default(), &lease),
            )
            .await
        {
            Ok(written) => {
                self.remember(&written, now);
                self.last_renewal = Some(now);
                Ok(true)
            }
            Err(ElectionError::Api(_, kube::Error::Api(s))) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up so a standby takes it on its next round instead of waiting it out.
    async fn release(&mut self) -> Result<(), ElectionError> {
        let name = self.config.lease_name.clone();
        let limit = self.config.retry_period;
        let Some(mut lease) = self.call(limit, self.api.get_opt(&name)).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        lease.spec = Some(spec);
        self.call(
            limit,
            self.api.replace(&name, &PostParams::default(), &lease),
        )
        .await
        .map(|_| ())
    }

    /// The record this candidate writes as holder; keeps acquireTime and counts transitions.
    fn new_record(&self, previous: Option<&LeaseSpec>) -> Lease {
        let now = MicroTime(Timestamp::now());
        let me = &self.config.identity;
        let was_mine = previous.and_then(|p| p.holder_identity.as_deref()) == Some(me.as_str());
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        let spec = LeaseSpec {
            holder_identity: Some(me.clone()),
            lease_duration_seconds: Some(self.config.lease_duration.as_secs() as i32),
            acquire_time: if was_mine {
                previous.and_then(|p| p.acquire_time.clone())
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(if was_mine || previous.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..LeaseSpec::default()
        };
        Lease {
            metadata: ObjectMeta {
                name: Some(self.config.lease_name.clone()),
                namespace: Some(self.config.namespace.clone()),
                labels: Some(
                    [(
                        crate::resources::naming::NAME_LABEL.to_string(),
                        "sakila-operator".to_string(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        }
    }

    fn remember(&mut self, lease: &Lease, at: Instant) {
        if let Some(version) = &lease.metadata.resource_version {
            self.seen = Some((version.clone(), at));
        }
    }

    /// Bounds an API call, so a hung connection cannot hold the leader past its deadline.
    async fn call<T>(
        &self,
        limit: Duration,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ElectionError> {
        match tokio::time::timeout(limit, request).await {
            Ok(result) => result.map_err(|e| ElectionError::Api(self.config.lease_name.clone(), e)),
            Err(_) => Err(ElectionError::Timeout(self.config.lease_name.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    #[test]
    fn a_candidate_takes_a_free_lease_renews_its_own_and_waits_out_a_live_one() {
        let s = Duration::from_secs;
        let cases: &[(&str, Option<&str>, Duration, Claim)] = &[
            ("never held", None, s(0), Claim::TakeFree),
            ("released (empty holder)", Some(""), s(0), Claim::TakeFree),
            ("mine, just seen", Some("me"), s(0), Claim::Renew),
            ("mine, long unchanged", Some("me"), s(60), Claim::Renew),
            ("other, just renewed", Some("other"), s(0), Claim::Wait),
            (
                "other, unchanged just under a lease",
                Some("other"),
                s(14),
                Claim::Wait,
            ),
            (
                "other, unchanged a whole lease",
                Some("other"),
                s(15),
                Claim::TakeExpired,
            ),
            (
                "other, unchanged long",
                Some("other"),
                s(300),
                Claim::TakeExpired,
            ),
        ];
        for (name, holder, unchanged, expected) in cases {
            assert_eq!(
                claim(*holder, "me", *unchanged, LEASE),
                *expected,
                "case {name:?}"
            );
        }
    }

    #[test]
    fn a_leader_steps_down_once_its_renew_deadline_has_passed() {
        let deadline = Duration::from_secs(10);
        let cases = [(0, false), (5, false), (9, false), (10, true), (30, true)];
        for (since, expected) in cases {
            assert_eq!(
                must_step_down(Duration::from_secs(since), deadline),
                expected,
                "{since}s since the last renewal"
            );
        }
    }

    #[test]
    fn the_leader_stops_before_a_standby_may_take_over() {
        let config = Config::new("ns".into(), "me".into());
        assert!(config.renew_deadline + config.retry_period < config.lease_duration);
        assert!(config.renew_interval < config.renew_deadline);
    }
}
