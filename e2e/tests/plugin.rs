//! `kubectl sakila` against a real cluster: each command through the plugin's own entry point
//! (the binary only parses its arguments and builds the client before calling it).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use kube::{Client, Config};
use sakila::api::MySQLCluster;
use sakila::plugin::PluginError;
use sakila::plugin::args::parse;
use sakila_e2e::{TestNamespace, client, cluster_manifest, wait_ready, wait_until};

/// Runs `kubectl sakila <line>` in `namespace`; the output, or the error as the user sees it.
async fn sakila(client: &Client, namespace: &str, line: &str) -> Result<String, PluginError> {
    let invocation =
        parse(line.split_whitespace().map(String::from)).expect("a valid command line");
    let mut out = Vec::new();
    sakila::plugin::run(&invocation, client.clone(), namespace, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

/// The primary `status -o json` reports.
async fn reported_primary(client: &Client, namespace: &str) -> Option<String> {
    let out = sakila(client, namespace, "status tools -o json")
        .await
        .ok()?;
    let report: serde_json::Value = serde_json::from_str(&out).ok()?;
    report["primary"].as_str().map(String::from)
}

#[tokio::test]
async fn status_switchover_reclone_and_version_work_and_errors_say_what_is_wrong() {
    let ns = TestNamespace::new("plugin").await;
    let client = client().await;
    ns.create::<MySQLCluster>(cluster_manifest("tools", 3))
        .await;
    wait_ready(&ns, "tools").await;

    let screen = sakila(&client, &ns.name, "status tools").await.unwrap();
    assert!(
        screen.starts_with(&format!(
            "MySQLCluster {}/tools  Ready: True  Primary: tools-0  Instances: 3/3",
            ns.name
        )),
        "{screen}"
    );
    assert!(
        screen.contains("tools-1   replica  true   Running/Running"),
        "{screen}"
    );
    assert!(screen.contains("Writable "), "{screen}");

    // A planned switchover, waited for by the command itself.
    let out = sakila(&client, &ns.name, "switchover tools tools-1 --timeout=120")
        .await
        .unwrap();
    assert!(out.contains("tools-1 is the primary"), "{out}");
    assert_eq!(
        reported_primary(&client, &ns.name).await.as_deref(),
        Some("tools-1")
    );

    // A failover: status shows the new primary soon after the old one's pod is gone.
    let pods: Api<Pod> = ns.api();
    pods.delete("tools-1", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let lost = Instant::now();
    let new_primary = wait_until(
        "status reports a primary other than tools-1",
        Duration::from_secs(60),
        || async {
            let primary = reported_primary(&client, &ns.name).await?;
            (primary != "tools-1").then_some(primary)
        },
    )
    .await;
    eprintln!(
        "status showed the failover to {new_primary} {:.1} s after the primary's pod was force-deleted",
        lost.elapsed().as_secs_f64()
    );
    wait_ready(&ns, "tools").await;

    // reclone: the annotation goes on, the operator clones and takes it off.
    let replica = if new_primary == "tools-0" {
        "tools-2"
    } else {
        "tools-0"
    };
    let out = sakila(&client, &ns.name, &format!("reclone {replica}"))
        .await
        .unwrap();
    assert!(out.contains("mysql.sakila.dev/reclone=true"), "{out}");
    wait_until(
        "the operator re-cloned the replica and removed the annotation",
        Duration::from_secs(180),
        || async {
            let pod = pods.get(replica).await.ok()?;
            let annotated = pod
                .metadata
                .annotations
                .is_some_and(|a| a.contains_key("mysql.sakila.dev/reclone"));
            (!annotated).then_some(())
        },
    )
    .await;
    wait_ready(&ns, "tools").await;

    let out = sakila(&client, &ns.name, "version").await.unwrap();
    assert!(out.starts_with("kubectl-sakila "), "{out}");
    assert!(out.contains("operator "), "{out}");

    // Errors a user can act on.
    let missing = sakila(&client, &ns.name, "status nothing")
        .await
        .unwrap_err();
    assert_eq!(
        missing.to_string(),
        format!("MySQLCluster {}/nothing not found", ns.name)
    );
    let not_ours = sakila(&client, &ns.name, "switchover tools web-1")
        .await
        .unwrap_err();
    assert!(
        not_ours
            .to_string()
            .contains("web-1 is not an instance of tools"),
        "{not_ours}"
    );
    let mut config = Config::infer().await.unwrap();
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{}:nobody", ns.name));
    let nobody = Client::try_from(config).unwrap();
    let forbidden = sakila(&nobody, &ns.name, "status tools").await.unwrap_err();
    assert!(
        forbidden.to_string().starts_with(&format!(
            "not allowed to get mysqlclusters in namespace {}",
            ns.name
        )),
        "{forbidden}"
    );
}
