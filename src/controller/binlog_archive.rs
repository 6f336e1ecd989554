//! The archive step of a cluster's round: hand the binary log archiver (`backup/archiver.rs`)
//! the primary the round ends with, and show how archiving stands in the `BinlogArchived`
//! condition, with a Warning event when it turns false or changes its reason.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::context::Context;
use super::report::Notice;
use crate::api::conditions::{ConditionType, set_condition};
use crate::api::{MySQLCluster, MySQLClusterStatus};
use crate::backup::archiver::{ArchiveHealth, ArchiveTarget};
use crate::clustering::observe::instance_endpoint;
use crate::clustering::{MySqlObservation, Observation};
use crate::mysql::{Credentials, GtidSet};
use crate::resources::naming;

/// Runs (or stops) the cluster's archiver and records how it stands; returns the events.
pub fn archive_binlogs(
    ctx: &Context,
    cluster: &MySQLCluster,
    observation: &Observation,
    credentials: &Credentials,
    ca: Option<&std::sync::Arc<[u8]>>,
    status: &mut MySQLClusterStatus,
    now: Time,
) -> Vec<Notice> {
    let target = archive_target(cluster, observation, credentials, ca, status);
    let uid = cluster.uid().unwrap_or_default();
    let health = ctx.archivers.ensure(
        &uid,
        &ctx.client,
        &ctx.connector,
        &ctx.metrics,
        target.clone(),
    );
    let previous = status.clone();
    record_archive(
        status,
        target.as_ref(),
        health.as_ref(),
        cluster.metadata.generation,
        now,
    );
    Notice::if_newly_false(&previous, status, ConditionType::BinlogArchived)
        .into_iter()
        .collect()
}

/// What the archiver should follow: `None` without `spec.backup` or with archiving disabled.
pub fn archive_target(
    cluster: &MySQLCluster,
    observation: &Observation,
    credentials: &Credentials,
    ca: Option<&std::sync::Arc<[u8]>>,
    status: &MySQLClusterStatus,
) -> Option<ArchiveTarget> {
    let backup = cluster.spec.backup.as_ref()?;
    let archive = backup.binlog_archive()?;
    let uid = cluster.metadata.uid.clone()?;
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    // The primary the round ends with, once it is writable: a failover's new primary is read
    // from only after its promotion.
    let primary = status.current_primary.as_deref().and_then(|pod| {
        let ordinal = naming::ordinal_of(&name, pod)?;
        let instance = observation
            .instances
            .iter()
            .find(|i| i.ordinal == ordinal)?;
        let MySqlObservation::Observed(mysql) = &instance.mysql else {
            return None;
        };
        if mysql.read_only {
            return None;
        }
        let endpoint = instance_endpoint(&name, &namespace, ordinal, instance.pod.as_ref()?, ca)?;
        Some((pod.to_string(), endpoint, mysql.gtid_purged.clone()))
    });
    let (primary, purged) = match primary {
        Some((pod, endpoint, purged)) => (Some((pod, endpoint)), purged),
        None => (None, GtidSet::new()),
    };
    Some(ArchiveTarget {
        namespace,
        cluster: name,
        uid,
        store: backup.store.clone(),
        delay: std::time::Duration::from_secs(archive.delay_seconds.max(1) as u64),
        primary,
        credentials: credentials.clone(),
        purged,
    })
}

/// The `BinlogArchived` condition (absent while nothing is archived).
pub fn record_archive(
    status: &mut MySQLClusterStatus,
    target: Option<&ArchiveTarget>,
    health: Option<&ArchiveHealth>,
    generation: Option<i64>,
    now: Time,
) {
    let (Some(target), Some(health)) = (target, health) else {
        status
            .conditions
            .retain(|c| c.type_ != ConditionType::BinlogArchived);
        return;
    };
    let (ok, reason, message) = match health {
        ArchiveHealth::Starting => return,
        ArchiveHealth::Archiving(pod) => (
            true,
            "Archiving",
            format!(
                "the binary log of {pod} is archived within {} s of each commit",
                target.delay.as_secs()
            ),
        ),
        ArchiveHealth::Failing(why) => (false, "ArchiveFailing", why.clone()),
    };
    set_condition(
        &mut status.conditions,
        ConditionType::BinlogArchived,
        ok,
        reason,
        message,
        generation,
        now,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::BackupSpec;
    use crate::controller::root_password::newly_false;

    fn target() -> ArchiveTarget {
        ArchiveTarget {
            namespace: "shop".into(),
            cluster: "orders".into(),
            uid: "u1".into(),
            store: serde_json::from_value(serde_json::json!({
                "endpoint": "http://minio:9000", "bucket": "b", "credentialsSecret": "s"
            }))
            .unwrap(),
            delay: std::time::Duration::from_secs(10),
            primary: None,
            credentials: Credentials::new("sakila-replication", "x"),
            purged: GtidSet::new(),
        }
    }

    fn condition(status: &MySQLClusterStatus) -> Option<(String, String, String)> {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == ConditionType::BinlogArchived)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    }

    #[test]
    fn the_condition_says_where_the_archive_streams_from_or_why_it_does_not() {
        let now = Time(jiff::Timestamp::UNIX_EPOCH);
        let mut status = MySQLClusterStatus::default();
        let archiving = ArchiveHealth::Archiving("orders-1".into());
        record_archive(
            &mut status,
            Some(&target()),
            Some(&archiving),
            Some(1),
            now.clone(),
        );
        assert_eq!(
            condition(&status),
            Some((
                "True".into(),
                "Archiving".into(),
                "the binary log of orders-1 is archived within 10 s of each commit".into()
            ))
        );

        // Starting: what was said stands until the archiver knows more.
        record_archive(
            &mut status,
            Some(&target()),
            Some(&ArchiveHealth::Starting),
            Some(1),
            now.clone(),
        );
        assert_eq!(condition(&status).unwrap().1, "Archiving");

        let previous = status.clone();
        let failing = ArchiveHealth::Failing("the object store: access denied".into());
        record_archive(
            &mut status,
            Some(&target()),
            Some(&failing),
            Some(1),
            now.clone(),
        );
        assert_eq!(
            newly_false(Some(&previous), &status, ConditionType::BinlogArchived),
            Some((
                "ArchiveFailing".into(),
                "the object store: access denied".into()
            ))
        );

        record_archive(&mut status, None, None, Some(2), now);
        assert_eq!(condition(&status), None, "no archive, no condition");
    }

    #[test]
    fn archiving_is_on_with_a_store_unless_disabled() {
        let spec = |binlogs: serde_json::Value| -> BackupSpec {
            let mut value = serde_json::json!({"store": {
                "endpoint": "http://minio:9000", "bucket": "b", "credentialsSecret": "s"
            }});
            if !binlogs.is_null() {
                value["binlogs"] = binlogs;
            }
            serde_json::from_value(value).unwrap()
        };
        let delay = |spec: BackupSpec| spec.binlog_archive().map(|a| a.delay_seconds);
        assert_eq!(delay(spec(serde_json::Value::Null)), Some(10));
        assert_eq!(delay(spec(serde_json::json!({}))), Some(10));
        assert_eq!(delay(spec(serde_json::json!({"delaySeconds": 2}))), Some(2));
        assert_eq!(delay(spec(serde_json::json!({"enabled": false}))), None);
    }
}
