//! What can never work is refused when it is submitted, with the field named; what the API
//! server cannot see (the root password in a Secret) is reported at run time.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use sakila::api::MySQLCluster;
use sakila::api::conditions::ConditionType;
use sakila_e2e::{TestNamespace, cluster_manifest, event_count, wait_ready, wait_until};
use serde_json::json;

/// Submits the manifest as a server-side dry run: the API server validates it fully and stores
/// nothing.
async fn dry_run(clusters: &Api<MySQLCluster>, manifest: serde_json::Value) -> Result<(), String> {
    let typed: MySQLCluster = serde_json::from_value(manifest).unwrap();
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match clusters.create(&params, &typed).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "refused as invalid: {status:?}");
            Err(status.message)
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn manifests_that_can_never_work_are_refused_at_admission_with_the_field_named() {
    let ns = TestNamespace::new("admission").await;
    let clusters: Api<MySQLCluster> = ns.api();
    let longest = "a".repeat(52);
    let too_long = "a".repeat(53);

    struct Case {
        what: &'static str,
        manifest: serde_json::Value,
        /// Every one of these is in the API server's message.
        says: &'static [&'static str],
    }
    let with = |name: &str, patch: serde_json::Value| {
        let mut manifest = cluster_manifest(name, 1);
        for (key, value) in patch.as_object().unwrap() {
            manifest["spec"][key] = value.clone();
        }
        manifest
    };
    let cases = [
        Case {
            what: "a name starting with a digit (no Service can carry it)",
            manifest: cluster_manifest("9lives", 1),
            says: &["metadata.name must be a DNS-1035 label"],
        },
        Case {
            what: "a name with a dot",
            manifest: cluster_manifest("orders.eu", 1),
            says: &["metadata.name must be a DNS-1035 label"],
        },
        Case {
            what: "a name of 53 characters",
            manifest: cluster_manifest(&too_long, 1),
            says: &["metadata.name must be at most 52 characters"],
        },
        Case {
            what: "a name that is another cluster's read-write Service",
            manifest: cluster_manifest("orders-primary", 1),
            says: &["metadata.name must not end in -primary or -replicas"],
        },
        Case {
            what: "a name that is another cluster's read-only Service",
            manifest: cluster_manifest("orders-replicas", 1),
            says: &["metadata.name must not end in -primary or -replicas"],
        },
        Case {
            what: "an operator annotation in the pod template",
            manifest: with(
                "anno",
                json!({"podTemplate": {"annotations": {"mysql.sakila.dev/reclone": "true"}}}),
            ),
            says: &[
                "spec.podTemplate.annotations",
                "\"mysql.sakila.dev/reclone\" is reserved",
            ],
        },
        Case {
            what: "an operator label in the pod template",
            manifest: with(
                "label",
                json!({"podTemplate": {"labels": {"mysql.sakila.dev/role": "primary"}}}),
            ),
            says: &[
                "spec.podTemplate.labels",
                "\"mysql.sakila.dev/role\" is reserved",
            ],
        },
        Case {
            what: "a TLS setting that spec.tls owns",
            manifest: with(
                "tls",
                json!({"mysqlConfig": {"require-secure-transport": "OFF"}}),
            ),
            says: &[
                "spec.mysqlConfig",
                "\"require-secure-transport\" cannot be set",
                "spec.tls.requireSecureTransport",
            ],
        },
        Case {
            what: "a certificate name that is no DNS name",
            manifest: with(
                "names",
                json!({"tls": {"extraNames": ["db.example.com", "Not A Name"]}}),
            ),
            says: &["spec.tls.extraNames[1]", "should match"],
        },
        Case {
            what: "a recovery target with both a time and a GTID set",
            manifest: with(
                "two-targets",
                json!({"bootstrap": {"recovery": {"backup": "base", "target": {
                    "time": "2026-11-29T12:00:00Z",
                    "gtidSet": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5",
                }}}}),
            ),
            says: &[
                "spec.bootstrap.recovery.target",
                "exactly one of time, gtidSet and latest: true",
            ],
        },
        Case {
            what: "a recovery target GTID set that is not one",
            manifest: with(
                "bad-gtids",
                json!({"bootstrap": {"recovery": {"backup": "base", "target": {
                    "gtidSet": "3e11fa47-71ca-11e1-9e33:1-5",
                }}}}),
            ),
            says: &["spec.bootstrap.recovery.target.gtidSet", "should match"],
        },
        Case {
            what: "a volume too small for MySQL to initialise",
            manifest: with("tiny", json!({"storage": {"size": "128Mi"}})),
            says: &["spec.storage.size", "at least 256Mi"],
        },
    ];
    for case in cases {
        let message = match dry_run(&clusters, case.manifest).await {
            Ok(()) => panic!("the API server accepted {}", case.what),
            Err(message) => message,
        };
        for expected in case.says {
            assert!(
                message.contains(expected),
                "{}: {expected:?} not in {message}",
                case.what
            );
        }
        println!("refused {}: {message}", case.what);
    }

    // At the limits: accepted.
    for (what, manifest) in [
        ("a name of 52 characters", cluster_manifest(&longest, 1)),
        ("primary-orders", cluster_manifest("primary-orders", 1)),
        (
            "a recovery target of a tagged GTID set over two sources",
            with(
                "tagged",
                json!({"bootstrap": {"recovery": {"backup": "base", "target": {"gtidSet":
                    "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7,\n 4E11FA47-71CA-11E1-9E33-C80AA9429562:orders:1-3"
                }}}}),
            ),
        ),
        (
            "256Mi and a label of the user's",
            with(
                "edge",
                json!({"storage": {"size": "256Mi"}, "podTemplate": {"labels": {"sakila.dev/team": "shop"}}}),
            ),
        ),
    ] {
        if let Err(message) = dry_run(&clusters, manifest).await {
            panic!("{what} was refused: {message}");
        }
    }
}

/// Runs SQL as root in the pod with the given root password; tab-separated rows.
async fn sql_as_root(ns: &TestNamespace, pod: &str, password: &str, sql: &str) -> String {
    let password = format!("--password={password}");
    ns.exec(
        pod,
        "mysqld",
        &["mysql", "-uroot", &password, "-N", "-B", "-e", sql],
    )
    .await
}

/// What the API server cannot refuse (a password in a Secret) or should not (settings that trade
/// durability for speed, a password lifetime) is warned about once, and the cluster serves; its
/// buffer pool is sized from its memory limit.
#[tokio::test]
async fn what_admission_cannot_refuse_is_warned_once_and_the_cluster_keeps_serving() {
    let ns = TestNamespace::new("rootpw").await;
    ns.create::<Secret>(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "root"},
        "stringData": {"password": "abc"}
    }))
    .await;
    let mut manifest = cluster_manifest("pw", 1);
    manifest["spec"]["rootPasswordSecret"] = json!({"name": "root", "key": "password"});
    // A lifetime of one day: the operator's own accounts must not be subject to it.
    manifest["spec"]["mysqlConfig"]["default_password_lifetime"] = json!("1");
    manifest["spec"]["mysqlConfig"]["sync_binlog"] = json!("0");
    // A memory limit and no buffer pool size: the pool is sized from the limit.
    manifest["spec"]["mysqlConfig"]
        .as_object_mut()
        .unwrap()
        .remove("innodb_buffer_pool_size");
    manifest["spec"]["resources"] = json!({"limits": {"memory": "1Gi"}});
    ns.create::<MySQLCluster>(manifest).await;
    let cluster = wait_ready(&ns, "pw").await;
    let condition = |cluster: &MySQLCluster| {
        cluster
            .status
            .as_ref()
            .and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == ConditionType::RootPasswordValid)
            })
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let (status, reason, message) = condition(&cluster).expect("RootPasswordValid is reported");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "TooShort"));
    assert!(
        message.contains("spec.rootPasswordSecret") && message.contains("3 characters"),
        "{message}"
    );

    let crash_safe = cluster
        .status
        .as_ref()
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == ConditionType::CrashSafe)
        })
        .expect("CrashSafe is reported");
    assert_eq!(
        (crash_safe.status.as_str(), crash_safe.reason.as_str()),
        ("False", "DurabilityWeakened")
    );
    assert!(
        crash_safe.message.contains("sync_binlog=0"),
        "{}",
        crash_safe.message
    );

    // Every account the operator made never expires; root follows the user's policy.
    let lifetimes = sql_as_root(
        &ns,
        "pw-0",
        "abc",
        "SELECT user, IFNULL(password_lifetime, 'default') FROM mysql.user WHERE user LIKE 'sakila-%' ORDER BY user",
    )
    .await;
    assert_eq!(
        lifetimes.trim(),
        "sakila-clone\t0\nsakila-operator\t0\nsakila-probe\t0\nsakila-repl\t0",
        "PASSWORD EXPIRE NEVER"
    );

    // 60 % of (1 GiB - 512 MiB) in whole 128 MiB chunks.
    let pool = sql_as_root(&ns, "pw-0", "abc", "SELECT @@innodb_buffer_pool_size").await;
    assert_eq!(
        pool.trim(),
        (256u64 << 20).to_string(),
        "buffer pool from the limit"
    );

    // Many reconciles later (one every 2 s), still one Warning of each.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(event_count(&ns, "RootPasswordTooShort").await, 1);
    assert_eq!(event_count(&ns, "DurabilityWeakened").await, 1);

    // Fixed in the Secret: the condition clears without an edit of the cluster.
    let secrets: Api<Secret> = ns.api();
    secrets
        .patch(
            "root",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "long enough now"}})),
        )
        .await
        .expect("Secret patched");
    let clusters: Api<MySQLCluster> = ns.api();
    wait_until(
        "RootPasswordValid True",
        Duration::from_secs(60),
        || async {
            let cluster = clusters.get("pw").await.ok()?;
            (condition(&cluster)?.0 == "True").then_some(())
        },
    )
    .await;
}

/// A mysqld that needs more memory than its limit is named as OOM-killed, not only as a pod in
/// CrashLoopBackOff: performance_schema alone takes about 250 MiB, so 320Mi cannot hold it.
#[tokio::test]
async fn an_oom_killed_mysqld_is_named_in_the_status() {
    let ns = TestNamespace::new("oom").await;
    let mut manifest = cluster_manifest("oom", 1);
    manifest["spec"]["mysqlConfig"] = json!({"performance_schema": "ON"});
    manifest["spec"]["resources"] = json!({"limits": {"memory": "320Mi"}});
    ns.create::<MySQLCluster>(manifest).await;
    let clusters: Api<MySQLCluster> = ns.api();
    let (ready, instance) = wait_until(
        "the status names the OOM kill",
        Duration::from_secs(300),
        || async {
            let status = clusters.get("oom").await.ok()?.status?;
            let ready = status
                .conditions
                .iter()
                .find(|c| c.type_ == ConditionType::Ready)?;
            let instance = status.instances.first()?.unreachable.clone()?;
            (ready.message.contains("OOM-killed") && instance.contains("OOM-killed"))
                .then(|| (ready.message.clone(), instance))
        },
    )
    .await;
    println!("Ready: {ready}\noom-0: {instance}");
    assert!(ready.contains("memory limit 320Mi"), "{ready}");
    assert!(ready.contains("oom-0"), "{ready}");
    assert!(event_count(&ns, "OOMKilled").await >= 1);
}
