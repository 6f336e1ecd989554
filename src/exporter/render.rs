//! What one scrape of the exporter shows: the Prometheus text format of a [`ServerMetrics`].
//! Pure, so every series and its type is table-tested.
//!
//! Names follow mysqld_exporter's `mysql_global_status_*` and `mysql_global_variables_*` so its
//! dashboards mostly work, but replication is reported under MySQL 9's names
//! (`mysql_replica_*`): upstream's `mysql_slave_status_*` series are never produced by 9.x, which
//! is why alert rules written for them never fire.

use std::fmt::Write as _;

use crate::mysql::{ServerMetrics, ThreadState};

/// Prometheus metric type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// The `SHOW GLOBAL STATUS` variables exported, with their type: a fixed list, so the number
/// of series per instance is bounded and known (a variable a plugin adds is absent, not
/// an error, while the plugin is not loaded).
const GLOBAL_STATUS: &[(&str, Kind)] = &[
    ("Uptime", Kind::Gauge),
    // Connections and load.
    ("Threads_connected", Kind::Gauge),
    ("Threads_running", Kind::Gauge),
    ("Max_used_connections", Kind::Gauge),
    ("Connections", Kind::Counter),
    ("Aborted_connects", Kind::Counter),
    ("Aborted_clients", Kind::Counter),
    ("Connection_errors_max_connections", Kind::Counter),
    // Queries.
    ("Queries", Kind::Counter),
    ("Questions", Kind::Counter),
    ("Slow_queries", Kind::Counter),
    ("Com_select", Kind::Counter),
    ("Com_insert", Kind::Counter),
    ("Com_update", Kind::Counter),
    ("Com_delete", Kind::Counter),
    ("Com_commit", Kind::Counter),
    ("Com_rollback", Kind::Counter),
    ("Bytes_received", Kind::Counter),
    ("Bytes_sent", Kind::Counter),
    ("Created_tmp_disk_tables", Kind::Counter),
    ("Open_tables", Kind::Gauge),
    // InnoDB.
    ("Innodb_buffer_pool_pages_total", Kind::Gauge),
    ("Innodb_buffer_pool_pages_free", Kind::Gauge),
    ("Innodb_buffer_pool_pages_dirty", Kind::Gauge),
    ("Innodb_buffer_pool_bytes_data", Kind::Gauge),
    ("Innodb_buffer_pool_read_requests", Kind::Counter),
    ("Innodb_buffer_pool_reads", Kind::Counter),
    ("Innodb_buffer_pool_wait_free", Kind::Counter),
    ("Innodb_rows_read", Kind::Counter),
    ("Innodb_rows_inserted", Kind::Counter),
    ("Innodb_rows_updated", Kind::Counter),
    ("Innodb_rows_deleted", Kind::Counter),
    ("Innodb_data_read", Kind::Counter),
    ("Innodb_data_written", Kind::Counter),
    ("Innodb_data_fsyncs", Kind::Counter),
    ("Innodb_os_log_written", Kind::Counter),
    ("Innodb_log_waits", Kind::Counter),
    ("Innodb_row_lock_waits", Kind::Counter),
    ("Innodb_row_lock_time", Kind::Counter),
    ("Innodb_row_lock_current_waits", Kind::Gauge),
    // Binary log.
    ("Binlog_cache_use", Kind::Counter),
    ("Binlog_cache_disk_use", Kind::Counter),
    // Semi-synchronous replication, source side (rpl_semi_sync_source loaded).
    ("Rpl_semi_sync_source_status", Kind::Gauge),
    ("Rpl_semi_sync_source_clients", Kind::Gauge),
    ("Rpl_semi_sync_source_wait_sessions", Kind::Gauge),
    ("Rpl_semi_sync_source_yes_tx", Kind::Counter),
    ("Rpl_semi_sync_source_no_tx", Kind::Counter),
    ("Rpl_semi_sync_source_no_times", Kind::Counter),
    ("Rpl_semi_sync_source_tx_waits", Kind::Counter),
    ("Rpl_semi_sync_source_tx_wait_time", Kind::Counter),
    // Replica side (rpl_semi_sync_replica loaded).
    ("Rpl_semi_sync_replica_status", Kind::Gauge),
];

/// The exporter's answer to one scrape: `metrics` is `None` when mysqld could not be read
/// (then only `mysql_up 0` and the scrape's own figures).
pub fn render(metrics: Option<&ServerMetrics>, scrape_seconds: f64) -> String {
    let mut out = String::new();
    let mut series = |name: &str, kind: Kind, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
        let _ = writeln!(out, "{name} {value}");
    };
    series(
        "mysql_up",
        Kind::Gauge,
        "1 when this scrape read mysqld, 0 when it could not connect or query",
        f64::from(u8::from(metrics.is_some())),
    );
    series(
        "mysql_exporter_scrape_duration_seconds",
        Kind::Gauge,
        "How long reading mysqld took for this scrape",
        scrape_seconds,
    );
    let Some(metrics) = metrics else {
        return out;
    };
    for (variable, kind) in GLOBAL_STATUS {
        let value = metrics
            .global_status
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(variable))
            .and_then(|(_, value)| status_value(value));
        if let Some(value) = value {
            let name = format!("mysql_global_status_{}", variable.to_ascii_lowercase());
            series(
                &name,
                *kind,
                &format!("SHOW GLOBAL STATUS {variable}"),
                value,
            );
        }
    }
    let flag = |on: bool| f64::from(u8::from(on));
    series(
        "mysql_global_variables_read_only",
        Kind::Gauge,
        "@@read_only",
        flag(metrics.read_only),
    );
    series(
        "mysql_global_variables_super_read_only",
        Kind::Gauge,
        "@@super_read_only",
        flag(metrics.super_read_only),
    );
    series(
        "mysql_global_variables_max_connections",
        Kind::Gauge,
        "@@max_connections",
        metrics.max_connections as f64,
    );
    series(
        "mysql_global_variables_innodb_buffer_pool_size",
        Kind::Gauge,
        "@@innodb_buffer_pool_size in bytes",
        metrics.innodb_buffer_pool_size as f64,
    );
    series(
        "mysql_binlog_files",
        Kind::Gauge,
        "Binary log files the server keeps (SHOW BINARY LOGS)",
        metrics.binlog_files as f64,
    );
    series(
        "mysql_binlog_size_bytes",
        Kind::Gauge,
        "Total size of the binary log files the server keeps",
        metrics.binlog_bytes as f64,
    );
    // Only on an instance with a replication channel: the primary has none, so its absence is
    // no alert.
    if let Some(replica) = &metrics.replica {
        series(
            "mysql_replica_io_running",
            Kind::Gauge,
            "1 while the replication I/O thread is connected to its source (Replica_IO_Running Yes)",
            flag(replica.io_thread == ThreadState::Running),
        );
        series(
            "mysql_replica_sql_running",
            Kind::Gauge,
            "1 while the replication SQL (applier) thread runs (Replica_SQL_Running Yes)",
            flag(replica.sql_thread == ThreadState::Running),
        );
        if let Some(lag) = replica.seconds_behind_source {
            series(
                "mysql_replica_seconds_behind_source",
                Kind::Gauge,
                "Seconds_Behind_Source; absent while the SQL thread does not run",
                lag as f64,
            );
        }
        let errno = |error: &Option<crate::mysql::ReplicationError>| {
            error.as_ref().map_or(0.0, |e| f64::from(e.code))
        };
        series(
            "mysql_replica_last_io_errno",
            Kind::Gauge,
            "Last_IO_Errno, 0 when none",
            errno(&replica.last_io_error),
        );
        series(
            "mysql_replica_last_sql_errno",
            Kind::Gauge,
            "Last_SQL_Errno, 0 when none",
            errno(&replica.last_sql_error),
        );
    }
    out
}

/// A status value as a number: `ON`/`OFF` (the semi-sync states) as 1/0.
fn status_value(value: &str) -> Option<f64> {
    match value {
        "ON" => Some(1.0),
        "OFF" => Some(0.0),
        number => number.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::{GtidSet, ReplicaStatus, ReplicationError};

    fn lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn an_unreadable_server_is_down_and_has_no_other_series() {
        let text = render(None, 0.25);
        assert_eq!(
            lines(&text),
            ["mysql_up 0", "mysql_exporter_scrape_duration_seconds 0.25"]
        );
    }

    #[test]
    fn listed_status_variables_are_typed_and_the_rest_are_left_out() {
        let metrics = ServerMetrics {
            global_status: vec![
                ("Threads_running".into(), "3".into()),
                ("Queries".into(), "1234".into()),
                ("Rpl_semi_sync_source_status".into(), "ON".into()),
                ("Rpl_semi_sync_replica_status".into(), "OFF".into()),
                ("Ssl_cipher".into(), "".into()),
                ("Innodb_buffer_pool_dump_status".into(), "Dumping".into()),
            ],
            max_connections: 151,
            ..ServerMetrics::default()
        };
        let text = render(Some(&metrics), 0.01);
        for expected in [
            "# TYPE mysql_global_status_threads_running gauge",
            "mysql_global_status_threads_running 3",
            "# TYPE mysql_global_status_queries counter",
            "mysql_global_status_queries 1234",
            "mysql_global_status_rpl_semi_sync_source_status 1",
            "mysql_global_status_rpl_semi_sync_replica_status 0",
            "mysql_global_variables_max_connections 151",
            "mysql_up 1",
        ] {
            assert!(
                text.lines().any(|l| l == expected),
                "missing {expected}:\n{text}"
            );
        }
        assert!(!text.contains("ssl_cipher"), "{text}");
        assert!(!text.contains("dump_status"), "{text}");
        // Absent from this server: no series rather than a zero that would lie.
        assert!(!text.contains("mysql_global_status_slow_queries"), "{text}");
    }

    #[test]
    fn replication_series_exist_only_with_a_channel_and_lag_only_while_applying() {
        let primary = ServerMetrics::default();
        assert!(!render(Some(&primary), 0.0).contains("mysql_replica_"));

        let mut replica = ReplicaStatus {
            source_host: "db-0.db".into(),
            source_port: 3306,
            io_thread: ThreadState::Connecting,
            sql_thread: ThreadState::Running,
            last_io_error: Some(ReplicationError {
                code: 2003,
                message: "can't connect".into(),
            }),
            last_sql_error: None,
            seconds_behind_source: Some(7),
            retrieved_gtid_set: GtidSet::default(),
            auto_position: true,
            channel_tls: crate::mysql::ChannelTls::Verified,
        };
        let metrics = ServerMetrics {
            replica: Some(replica.clone()),
            ..ServerMetrics::default()
        };
        let text = render(Some(&metrics), 0.0);
        for expected in [
            "mysql_replica_io_running 0",
            "mysql_replica_sql_running 1",
            "mysql_replica_seconds_behind_source 7",
            "mysql_replica_last_io_errno 2003",
            "mysql_replica_last_sql_errno 0",
        ] {
            assert!(
                text.lines().any(|l| l == expected),
                "missing {expected}:\n{text}"
            );
        }
        replica.sql_thread = ThreadState::Stopped;
        replica.seconds_behind_source = None;
        let metrics = ServerMetrics {
            replica: Some(replica),
            ..ServerMetrics::default()
        };
        let text = render(Some(&metrics), 0.0);
        assert!(
            text.lines().any(|l| l == "mysql_replica_sql_running 0"),
            "{text}"
        );
        assert!(
            !text.contains("mysql_replica_seconds_behind_source"),
            "{text}"
        );
    }
}
