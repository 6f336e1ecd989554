//! Monitoring on a real cluster: the exporter beside each mysqld reports what that mysqld is,
//! the operator reports each instance's role, and both follow a switchover.

use std::time::Duration;

use sakila::api::MySQLCluster;
use sakila_e2e::{
    TestNamespace, cluster_manifest, leader_metrics, patch_spec, proxied, sample, wait_ready,
    wait_until,
};

#[tokio::test]
async fn the_exporter_and_the_operator_report_each_instance_and_follow_a_switchover() {
    let ns = TestNamespace::new("watched").await;
    let mut manifest = cluster_manifest("watched", 3);
    manifest["spec"]["monitoring"] = serde_json::json!({"enabled": true});
    ns.create::<MySQLCluster>(manifest).await;
    wait_ready(&ns, "watched").await;

    let exporter = |pod: &'static str| {
        let namespace = ns.name.clone();
        async move { proxied(&namespace, pod, 9104, "/metrics").await }
    };
    // The primary's exporter: writable, both replicas acknowledging.
    let primary = wait_until(
        "watched-0's exporter shows a writable primary with two semi-sync replicas",
        Duration::from_secs(60),
        || async {
            let text = exporter("watched-0").await?;
            (sample(&text, "mysql_global_status_rpl_semi_sync_source_clients") == Some(2.0))
                .then_some(text)
        },
    )
    .await;
    assert_eq!(sample(&primary, "mysql_up"), Some(1.0), "{primary}");
    assert_eq!(
        sample(&primary, "mysql_global_variables_super_read_only"),
        Some(0.0),
        "{primary}"
    );
    assert!(!primary.contains("mysql_replica_io_running"), "{primary}");
    for replica in ["watched-1", "watched-2"] {
        let text = exporter(replica)
            .await
            .expect("the replica's exporter answers");
        assert_eq!(sample(&text, "mysql_up"), Some(1.0), "{text}");
        assert_eq!(
            sample(&text, "mysql_global_variables_super_read_only"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "mysql_replica_io_running"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "mysql_replica_sql_running"),
            Some(1.0),
            "{text}"
        );
    }

    let role = |instance: &str, role: &str| {
        format!(
            r#"sakila_instance_role{{namespace="{}",cluster="watched",instance="{instance}",role="{role}"}}"#,
            ns.name
        )
    };
    let operator = wait_until(
        "the leading operator reports watched-0 as primary",
        Duration::from_secs(30),
        || async {
            let text = leader_metrics().await?;
            (sample(&text, &role("watched-0", "primary")) == Some(1.0)).then_some(text)
        },
    )
    .await;
    assert_eq!(sample(&operator, &role("watched-1", "replica")), Some(1.0));
    let ready = format!(
        r#"sakila_cluster_ready{{namespace="{}",cluster="watched",ready="true"}}"#,
        ns.name
    );
    assert_eq!(sample(&operator, &ready), Some(1.0), "{operator}");

    // A switchover: the exporters and the operator say so.
    patch_spec(&ns, "watched", serde_json::json!({"primaryInstance": 1})).await;
    wait_until(
        "watched-1's exporter shows it writable, watched-0's shows it replicating",
        Duration::from_secs(120),
        || async {
            let new = exporter("watched-1").await?;
            let old = exporter("watched-0").await?;
            (sample(&new, "mysql_global_variables_super_read_only") == Some(0.0)
                && sample(&old, "mysql_replica_io_running") == Some(1.0))
            .then_some(())
        },
    )
    .await;
    let switchovers = format!(
        r#"sakila_switchovers_total{{namespace="{}",cluster="watched"}}"#,
        ns.name
    );
    wait_until(
        "the operator counts the switchover and reports watched-1 as primary",
        Duration::from_secs(60),
        || async {
            let text = leader_metrics().await?;
            (sample(&text, &switchovers) == Some(1.0)
                && sample(&text, &role("watched-1", "primary")) == Some(1.0)
                && sample(&text, &role("watched-0", "replica")) == Some(1.0))
            .then_some(())
        },
    )
    .await;
}
