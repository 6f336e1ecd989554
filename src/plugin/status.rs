//! `kubectl sakila status`: one screen about a cluster, built from its status and events
//! without IO.

use std::fmt::Write as _;

use serde::Serialize;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::conditions::ConditionType;
use crate::api::{InstanceStatus, MySQLCluster};
use crate::mysql::GtidSet;

/// An event about the cluster, as the screen shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLine {
    /// When it last happened (RFC 3339), if known.
    pub time: Option<String>,
    /// `Normal` or `Warning`.
    pub type_: String,
    pub reason: String,
    pub message: String,
}

/// Everything `status` shows; `-o json` prints it as is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub namespace: String,
    pub cluster: String,
    pub ready: Option<String>,
    pub primary: Option<String>,
    pub instances_summary: Option<String>,
    pub version: Option<String>,
    pub last_failover_time: Option<String>,
    pub last_failover_from: Option<String>,
    pub instances: Vec<InstanceLine>,
    /// As the status has them.
    pub conditions: Vec<Condition>,
    pub events: Vec<EventLine>,
}

/// One instance's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceLine {
    pub name: String,
    pub role: String,
    pub ready: bool,
    /// `io/sql` thread states, for a replica.
    pub replication: Option<String>,
    pub lag_seconds: Option<i64>,
    /// Transactions executed, per source UUID (a short summary of `gtid_executed`).
    pub gtid_summary: Option<String>,
    pub errant_gtids: Option<String>,
    pub unreachable: Option<String>,
    pub last_error: Option<String>,
    pub cloning: bool,
}

/// How many events the screen keeps (the most recent).
pub const EVENTS_SHOWN: usize = 8;

/// The report of `cluster`, with its events oldest first (the last [`EVENTS_SHOWN`] are kept).
pub fn report(cluster: &MySQLCluster, mut events: Vec<EventLine>) -> StatusReport {
    let status = cluster.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Ready.as_str())
        .map(|c| c.status.clone());
    events.sort_by(|a, b| a.time.cmp(&b.time));
    let keep_from = events.len().saturating_sub(EVENTS_SHOWN);
    StatusReport {
        namespace: cluster.metadata.namespace.clone().unwrap_or_default(),
        cluster: cluster.metadata.name.clone().unwrap_or_default(),
        ready,
        primary: status.current_primary.clone(),
        instances_summary: status.instances_summary.clone(),
        version: status.version.clone(),
        last_failover_time: status.last_failover_time.as_ref().map(|t| t.0.to_string()),
        last_failover_from: status.last_failover_from.clone(),
        instances: status.instances.iter().map(instance_line).collect(),
        conditions: status.conditions,
        events: events.split_off(keep_from),
    }
}

fn instance_line(instance: &InstanceStatus) -> InstanceLine {
    let replication = instance.replication.as_ref();
    InstanceLine {
        name: instance.name.clone(),
        role: instance.role.clone(),
        ready: instance.ready,
        replication: replication.map(|r| format!("{}/{}", r.io_thread, r.sql_thread)),
        lag_seconds: replication.and_then(|r| r.lag_seconds),
        gtid_summary: instance.gtid_executed.as_deref().map(gtid_summary),
        errant_gtids: instance.errant_gtids.clone(),
        unreachable: instance.unreachable.clone(),
        last_error: replication.and_then(|r| r.last_error.clone()),
        cloning: instance.cloning,
    }
}

/// `3e11fa47:120, 5c2d…` style: each source's first UUID group and its transaction count.
fn gtid_summary(text: &str) -> String {
    let Ok(set) = GtidSet::parse(text) else {
        return text.to_string();
    };
    if set.is_empty() {
        return "none".into();
    }
    // Tagged and untagged transactions of one server count together.
    let mut counts: std::collections::BTreeMap<&str, u64> = Default::default();
    for source in set.sources() {
        let count: u64 = set
            .intervals(source)
            .iter()
            .map(|i| i.end - i.start + 1)
            .sum();
        *counts.entry(source.uuid.as_str()).or_default() += count;
    }
    counts
        .into_iter()
        .map(|(uuid, count)| {
            let short = uuid.split('-').next().unwrap_or(uuid);
            format!("{short}:{count}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The screen.
pub fn render(report: &StatusReport) -> String {
    let mut out = String::new();
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let _ = writeln!(
        out,
        "MySQLCluster {}/{}  Ready: {}  Primary: {}  Instances: {}  Version: {}",
        report.namespace,
        report.cluster,
        or_dash(&report.ready),
        or_dash(&report.primary),
        or_dash(&report.instances_summary),
        or_dash(&report.version),
    );
    if let Some(time) = &report.last_failover_time {
        let _ = writeln!(
            out,
            "Last failover: {time} (from {})",
            or_dash(&report.last_failover_from)
        );
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = report
        .instances
        .iter()
        .map(|i| {
            let mut note = Vec::new();
            if i.cloning {
                note.push("cloning".to_string());
            }
            if let Some(errant) = &i.errant_gtids {
                note.push(format!("errant: {errant}"));
            }
            if let Some(why) = &i.unreachable {
                note.push(format!("unreachable: {why}"));
            }
            if let Some(error) = &i.last_error {
                note.push(error.clone());
            }
            vec![
                i.name.clone(),
                i.role.clone(),
                i.ready.to_string(),
                or_dash(&i.replication),
                i.lag_seconds.map_or("-".into(), |l| l.to_string()),
                or_dash(&i.gtid_summary),
                note.join("; "),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "INSTANCE", "ROLE", "READY", "IO/SQL", "LAG", "GTIDS", "NOTES",
        ],
        &rows,
    );
    out.push('\n');
    let rows: Vec<Vec<String>> = report
        .conditions
        .iter()
        .map(|c| {
            vec![
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                c.message.clone(),
            ]
        })
        .collect();
    table(
        &mut out,
        &["CONDITION", "STATUS", "REASON", "MESSAGE"],
        &rows,
    );
    out.push('\n');
    if report.events.is_empty() {
        out.push_str("No recent events.\n");
    } else {
        let rows: Vec<Vec<String>> = report
            .events
            .iter()
            .map(|e| {
                vec![
                    or_dash(&e.time),
                    e.type_.clone(),
                    e.reason.clone(),
                    e.message.clone(),
                ]
            })
            .collect();
        table(&mut out, &["LAST SEEN", "TYPE", "REASON", "MESSAGE"], &rows);
    }
    out
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        let mut text = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster() -> MySQLCluster {
        serde_json::from_value(json!({
            "apiVersion": "mysql.sakila.dev/v1alpha1", "kind": "MySQLCluster",
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"instances": 3, "storage": {"size": "1Gi"}},
            "status": {
                "currentPrimary": "db-1",
                "readyInstances": 2,
                "instancesSummary": "2/3",
                "version": "9.7.4",
                "lastFailoverTime": "2026-11-28T10:00:00Z",
                "lastFailoverFrom": "db-0",
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "InstancesNotReady",
                     "message": "db-2 is not ready", "lastTransitionTime": "2026-11-28T10:00:00Z"},
                    {"type": "Writable", "status": "True", "reason": "PrimaryWritable",
                     "message": "db-1 accepts writes", "lastTransitionTime": "2026-11-28T10:00:00Z"}
                ],
                "instances": [
                    {"name": "db-0", "role": "replica", "ready": true,
                     "gtidExecuted": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-120",
                     "replication": {"source": "db-1", "ioThread": "Running", "sqlThread": "Running",
                                     "lagSeconds": 0, "semiSync": true}},
                    {"name": "db-1", "role": "primary", "ready": true,
                     "gtidExecuted": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-120"},
                    {"name": "db-2", "role": "replica", "ready": false,
                     "gtidExecuted": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-100,aaaaaaaa-0000-0000-0000-000000000000:1-2",
                     "errantGtids": "aaaaaaaa-0000-0000-0000-000000000000:1-2",
                     "cloning": true,
                     "replication": {"source": "db-1", "ioThread": "Connecting", "sqlThread": "Running",
                                     "lagSeconds": 12, "semiSync": false,
                                     "lastError": "error 2003: can't connect"}}
                ]
            }
        }))
        .unwrap()
    }

    fn event(time: &str, reason: &str) -> EventLine {
        EventLine {
            time: Some(time.into()),
            type_: "Normal".into(),
            reason: reason.into(),
            message: format!("{reason} happened"),
        }
    }

    #[test]
    fn the_screen_shows_roles_replication_gtids_errant_transactions_conditions_and_events() {
        let report = report(
            &cluster(),
            vec![
                event("2026-11-28T10:00:05Z", "SwitchedOver"),
                event("2026-11-28T10:00:01Z", "FailedOver"),
            ],
        );
        let text = render(&report);
        let expected = "\
MySQLCluster shop/db  Ready: False  Primary: db-1  Instances: 2/3  Version: 9.7.4
Last failover: 2026-11-28T10:00:00Z (from db-0)

INSTANCE  ROLE     READY  IO/SQL              LAG  GTIDS                     NOTES
db-0      replica  true   Running/Running     0    3e11fa47:120
db-1      primary  true   -                   -    3e11fa47:120
db-2      replica  false  Connecting/Running  12   3e11fa47:100, aaaaaaaa:2  cloning; errant: aaaaaaaa-0000-0000-0000-000000000000:1-2; error 2003: can't connect

CONDITION  STATUS  REASON             MESSAGE
Ready      False   InstancesNotReady  db-2 is not ready
Writable   True    PrimaryWritable    db-1 accepts writes

LAST SEEN             TYPE    REASON        MESSAGE
2026-11-28T10:00:01Z  Normal  FailedOver    FailedOver happened
2026-11-28T10:00:05Z  Normal  SwitchedOver  SwitchedOver happened
";
        pretty_assertions::assert_eq!(text, expected);
    }

    #[test]
    fn only_the_most_recent_events_are_kept_and_json_has_every_field() {
        let events = (0..12)
            .map(|i| event(&format!("2026-11-28T10:00:{i:02}Z"), &format!("R{i}")))
            .collect();
        let report = report(&cluster(), events);
        assert_eq!(report.events.len(), EVENTS_SHOWN);
        assert_eq!(report.events[0].reason, "R4");
        assert_eq!(report.events[EVENTS_SHOWN - 1].reason, "R11");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["primary"], "db-1");
        assert_eq!(json["instances"][2]["lagSeconds"], 12);
        assert_eq!(
            json["instances"][2]["errantGtids"],
            "aaaaaaaa-0000-0000-0000-000000000000:1-2"
        );
        assert_eq!(json["conditions"][0]["type"], "Ready");
    }

    #[test]
    fn a_cluster_without_status_yet_shows_dashes() {
        let mut bare = cluster();
        bare.status = None;
        let text = render(&report(&bare, Vec::new()));
        assert!(
            text.starts_with(
                "MySQLCluster shop/db  Ready: -  Primary: -  Instances: -  Version: -\n"
            ),
            "{text}"
        );
        assert!(text.contains("No recent events."), "{text}");
    }
}
