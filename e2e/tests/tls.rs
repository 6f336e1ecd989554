//! Encryption on a real cluster: clients must use TLS and can verify the cluster's certificate
//! by every Service name, replication and clones run over verified TLS, and a user's Secret
//! (cert-manager's layout) works and is checked.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use rand::distr::{Alphanumeric, SampleString};
use sakila::api::MySQLCluster;
use sakila::api::conditions::ConditionType;
use sakila::resources::tls::{IssuedTls, build_tls_secret, read_certificate};
use sakila::validate::{OperatorSettings, validate};
use sakila_e2e::chaos::{self, UnderWrites};
use sakila_e2e::{
    TestNamespace, cluster_condition, cluster_manifest, event_count, mysql_client_image,
    patch_spec, pods_and_restarts, replica_cloned_notes, wait_ready, wait_until,
};
use serde_json::json;

/// Runs `mysql` in the client pod against `host` with extra options; stdout or the error.
async fn mysql_at(
    ns: &TestNamespace,
    password: &str,
    host: &str,
    options: &[&str],
    sql: &str,
) -> Result<String, String> {
    let host = format!("--host={host}");
    let password = format!("--password={password}");
    let mut command = vec!["mysql", &host, "-uroot", &password, "-N", "-B"];
    command.extend_from_slice(options);
    command.extend_from_slice(&["-e", sql]);
    ns.try_exec("client", "client", &command).await
}

/// Writes `pem` to `/tmp/<name>` in the client pod.
async fn put_file(ns: &TestNamespace, name: &str, pem: &[u8]) {
    let pem = String::from_utf8(pem.to_vec()).unwrap();
    let path = format!("/tmp/{name}");
    ns.exec(
        "client",
        "client",
        &["sh", "-c", "printf '%s' \"$1\" > \"$2\"", "sh", &pem, &path],
    )
    .await;
}

/// Runs `sql` at `host` as a client that verifies the certificate's CA (`/tmp/ca.crt`) and
/// name; panics if the connection fails.
async fn mysql_verified(ns: &TestNamespace, password: &str, host: &str, sql: &str) -> String {
    let verify = ["--ssl-mode=VERIFY_IDENTITY", "--ssl-ca=/tmp/ca.crt"];
    mysql_at(ns, password, host, &verify, sql)
        .await
        .unwrap_or_else(|e| panic!("{host} with VERIFY_IDENTITY: {e}"))
        .trim()
        .to_string()
}

/// The expiry of the certificate a client sees at `host`, verifying it with `/tmp/ca.crt`.
async fn certificate_seen(ns: &TestNamespace, password: &str, host: &str) -> String {
    let sql = "SHOW SESSION STATUS LIKE 'Ssl_server_not_after'";
    mysql_verified(ns, password, host, sql).await
}

#[tokio::test]
async fn clients_replication_and_clones_are_encrypted_and_verified() {
    let ns = TestNamespace::new("tls").await;
    ns.create::<MySQLCluster>(cluster_manifest("sec", 2)).await;
    let cluster = wait_ready(&ns, "sec").await;
    let condition = cluster
        .status
        .as_ref()
        .and_then(|s| {
            sakila::api::conditions::find_condition(&s.conditions, ConditionType::CertificateValid)
        })
        .cloned()
        .expect("a CertificateValid condition");
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("True", "Issued"),
        "{condition:?}"
    );
    println!("{}", condition.message);

    let secrets: Api<Secret> = ns.api();
    let secret = secrets.get("sec-tls").await.expect("the operator's Secret");
    let ca = secret.data.as_ref().unwrap()["ca.crt"].0.clone();
    ns.client_pod("client", &mysql_client_image()).await;
    put_file(&ns, "ca.crt", &ca).await;
    let password = ns.root_password("sec").await;

    for service in ["sec-primary", "sec-replicas"] {
        let host = format!("{service}.{}.svc", ns.name);
        // With the server's RSA key the client could log in without TLS: the server refuses.
        let plain = ["--ssl-mode=DISABLED", "--get-server-public-key"];
        let refused = mysql_at(&ns, &password, &host, &plain, "SELECT 1").await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("insecure transport are prohibited")),
            "{service} without TLS: {refused:?}"
        );
        let sql = "SHOW SESSION STATUS LIKE 'Ssl_version'";
        let verified = mysql_verified(&ns, &password, &host, sql).await;
        println!("{service}: {verified}");
        assert!(verified.contains("TLSv1."), "{verified}");
    }
    // Another CA does not vouch for the cluster: a client trusting only it is refused.
    let mut other = cluster.clone();
    other.metadata.name = Some("other".into());
    let other = validate(&other, &OperatorSettings::default()).unwrap();
    let other = IssuedTls::complete(&other, None, jiff::Timestamp::now()).unwrap();
    put_file(&ns, "other-ca.crt", other.ca_cert.as_bytes()).await;
    let untrusted = mysql_at(
        &ns,
        &password,
        &format!("sec-primary.{}.svc", ns.name),
        &["--ssl-mode=VERIFY_CA", "--ssl-ca=/tmp/other-ca.crt"],
        "SELECT 1",
    )
    .await;
    assert!(untrusted.is_err(), "verified by another CA: {untrusted:?}");

    // The replica's channel checks the primary's certificate against the mounted CA.
    let channel = ns
        .sql(
            "sec",
            "sec-1",
            "SELECT SSL_ALLOWED, SSL_VERIFY_SERVER_CERTIFICATE, SSL_CA_FILE \
             FROM performance_schema.replication_connection_configuration",
        )
        .await
        .unwrap();
    assert_eq!(channel.trim(), "YES\tYES\t/etc/mysql-tls/ca.crt");
    // sec-1 was seeded by a clone (which the operator announces when it is done), from a
    // donor that refuses unencrypted connections: the clone ran over TLS.
    let cloned = replica_cloned_notes(&ns).await;
    println!("{cloned:?}");
    assert!(
        cloned.iter().any(|note| note.starts_with("seeded sec-1 ")),
        "{cloned:?}"
    );
    let donor_requires = ns
        .sql("sec", "sec-0", "SELECT @@require_secure_transport")
        .await
        .unwrap();
    assert_eq!(donor_requires.trim(), "1");

    // Each system account has only its own privileges: replication, the clone donor and the
    // operator (no ALL, no GRANT OPTION), in the instances' data directories as made.
    for (account, only) in [
        (
            "'sakila-repl'@'%'",
            "GRANT REPLICATION SLAVE ON *.* TO `sakila-repl`@`%`",
        ),
        (
            "'sakila-clone'@'%'",
            "GRANT BACKUP_ADMIN ON *.* TO `sakila-clone`@`%`",
        ),
    ] {
        let grants = ns
            .sql("sec", "sec-1", &format!("SHOW GRANTS FOR {account}"))
            .await
            .unwrap();
        let granted: Vec<&str> = grants
            .lines()
            .filter(|l| !l.starts_with("GRANT USAGE ON *.*"))
            .collect();
        assert_eq!(granted, [only], "{account}: {grants}");
    }
    let operator = ns
        .sql("sec", "sec-0", "SHOW GRANTS FOR 'sakila-operator'@'%'")
        .await
        .unwrap();
    println!("{operator}");
    assert!(
        !operator.contains("ALL PRIVILEGES") && !operator.contains("GRANT OPTION"),
        "{operator}"
    );
    assert!(operator.contains("SYSTEM_VARIABLES_ADMIN"), "{operator}");

    // A new name: the operator re-issues the certificate (same CA) and every mysqld serves the
    // new one without a restart.
    let served = |pod: &'static str| {
        let ns = &ns;
        async move {
            ns.sql("sec", pod, "SHOW GLOBAL STATUS LIKE 'Ssl_server_not_after'")
                .await
                .unwrap()
                .trim()
                .to_string()
        }
    };
    let before = (served("sec-0").await, served("sec-1").await);
    // A replica's mysqld restarted once after its clone: counted from here.
    let before_change = pods_and_restarts(&ns, "sec").await;
    patch_spec(
        &ns,
        "sec",
        json!({"tls": {"extraNames": ["mysql.example.test"]}}),
    )
    .await;
    let reissued = wait_until(
        "a certificate for the new name",
        Duration::from_secs(60),
        || async {
            let secret = secrets.get("sec-tls").await.ok()?;
            let data = secret.data?;
            let facts = read_certificate("tls.crt", &data["tls.crt"].0).ok()?;
            (facts.names.contains("mysql.example.test") && data["ca.crt"].0 == ca).then_some(facts)
        },
    )
    .await;
    println!("re-issued, valid until {}", reissued.not_after);
    let started = std::time::Instant::now();
    let after = wait_until(
        "both instances serving the new certificate",
        Duration::from_secs(120),
        || async {
            let now = (served("sec-0").await, served("sec-1").await);
            (now.0 != before.0 && now.1 != before.1).then_some(now)
        },
    )
    .await;
    println!(
        "served {:?} -> {:?}, {:.1} s after the Secret changed",
        before,
        after,
        started.elapsed().as_secs_f64()
    );
    let after_change = pods_and_restarts(&ns, "sec").await;
    assert_eq!(
        before_change, after_change,
        "the pods were replaced or a container restarted"
    );
    // The new certificate, verified by the same CA.
    let replicas = format!("sec-replicas.{}.svc", ns.name);
    assert_eq!(
        mysql_verified(&ns, &password, &replicas, "SELECT 1").await,
        "1"
    );
}

#[tokio::test]
async fn a_users_certificate_secret_is_checked_and_used_once_it_exists() {
    let ns = TestNamespace::new("tls-user").await;
    let mut manifest = cluster_manifest("own", 1);
    manifest["spec"]["tls"] = json!({"secretName": "own-cert"});
    ns.create::<MySQLCluster>(manifest).await;

    let missing = wait_until(
        "CertificateValid False (SecretNotFound)",
        Duration::from_secs(120),
        || async {
            cluster_condition(&ns, "own", ConditionType::CertificateValid)
                .await
                .filter(|c| c.status == "False" && c.reason == "SecretNotFound")
        },
    )
    .await;
    println!("{}", missing.message);
    assert!(missing.message.contains("own-cert"), "{}", missing.message);
    assert!(event_count(&ns, "CertificateSecretNotFound").await >= 1);

    // The user's Secret, in cert-manager's layout (no CA key), for this cluster's names.
    let clusters: Api<MySQLCluster> = ns.api();
    let cluster = clusters.get("own").await.unwrap();
    let valid = validate(&cluster, &OperatorSettings::default()).unwrap();
    let issued = IssuedTls::complete(&valid, None, jiff::Timestamp::now()).unwrap();
    let mut secret = build_tls_secret(&valid, &issued);
    secret.metadata = kube::api::ObjectMeta {
        name: Some("own-cert".into()),
        ..Default::default()
    };
    secret.data.as_mut().unwrap().remove("ca.key");
    let secrets: Api<Secret> = ns.api();
    secrets
        .create(&Default::default(), &secret)
        .await
        .expect("create the user's Secret");

    wait_ready(&ns, "own").await;
    let valid = cluster_condition(&ns, "own", ConditionType::CertificateValid)
        .await
        .expect("the condition");
    assert_eq!(
        (valid.status.as_str(), valid.reason.as_str()),
        ("True", "Valid")
    );
    assert!(
        secrets.get_opt("own-tls").await.unwrap().is_none(),
        "the operator issued a certificate of its own beside the user's"
    );
    ns.client_pod("client", &mysql_client_image()).await;
    put_file(&ns, "ca.crt", &secret.data.as_ref().unwrap()["ca.crt"].0).await;
    let password = ns.root_password("own").await;
    // The user's certificate, verified.
    let primary = format!("own-primary.{}.svc", ns.name);
    assert_eq!(
        mysql_verified(&ns, &password, &primary, "SELECT 1").await,
        "1"
    );
}

#[tokio::test]
async fn certificates_renewed_every_two_minutes_under_writes_restart_nothing_and_lose_nothing() {
    const WRITER_SECONDS: u64 = 200;
    let mut manifest = cluster_manifest("rot", 2);
    manifest["spec"]["tls"] = json!({"certificateLifetimeMinutes": 3});
    let UnderWrites { ns, started } =
        chaos::cluster_under_writes("tls-rotate", manifest, WRITER_SECONDS).await;
    let secrets: Api<Secret> = ns.api();
    let secret = secrets.get("rot-tls").await.expect("the operator's Secret");
    put_file(&ns, "ca.crt", &secret.data.as_ref().unwrap()["ca.crt"].0).await;
    let password = ns.root_password("rot").await;
    let host = format!("rot-primary.{}.svc", ns.name);
    let before_renewal = pods_and_restarts(&ns, "rot").await;

    // Renewed with a minute left of three; the client, still verifying, sees the new one.
    let first = certificate_seen(&ns, &password, &host).await;
    let renewed = wait_until(
        "a client to see a renewed certificate",
        Duration::from_secs(170),
        || async {
            let now = certificate_seen(&ns, &password, &host).await;
            (now != first).then_some(now)
        },
    )
    .await;
    println!(
        "{:.0} s into the writes the client saw {renewed:?} instead of {first:?}",
        started.elapsed().as_secs_f64()
    );

    let outcome = chaos::finish_writing(&ns, started, WRITER_SECONDS, "rot", 2).await;
    println!("{outcome:?}");
    assert_eq!(
        before_renewal,
        pods_and_restarts(&ns, "rot").await,
        "the pods were replaced or a container restarted"
    );
}

/// The ids the writer tried between its first and last acknowledged one that were not
/// acknowledged: the writes that failed while it ran (ids are consecutive, one per attempt).
fn failed_writes(record: &chaos::ChaosRecord) -> u64 {
    let ids = record.acknowledged.iter().map(|(id, _)| *id);
    match (ids.clone().min(), ids.max()) {
        (Some(first), Some(last)) => (last - first + 1) - record.acknowledged.len() as u64,
        _ => 0,
    }
}

/// The applied passwords' Secret as strings.
async fn applied_passwords(ns: &TestNamespace, cluster: &str) -> BTreeMap<String, String> {
    let secrets: Api<Secret> = ns.api();
    let secret = secrets
        .get(&format!("{cluster}-applied-passwords"))
        .await
        .expect("the operator records the passwords the servers have");
    secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect()
}

#[tokio::test]
async fn every_password_rotates_under_writes_with_no_failed_login_and_no_restart() {
    const KEEP_OLD_SECONDS: u64 = 45;
    let mut manifest = cluster_manifest("pw", 2);
    manifest["spec"]["passwordRotation"] = json!({"keepOldPasswordSeconds": KEEP_OLD_SECONDS});
    let UnderWrites { ns, started } = chaos::cluster_under_writes("passwords", manifest, 600).await;
    let old_root = ns.root_password("pw").await;
    let before = pods_and_restarts(&ns, "pw").await;

    // A password a server would refuse is reported and not rotated to.
    let secrets: Api<Secret> = ns.api();
    let too_long = "x".repeat(40);
    secrets
        .patch(
            "pw-credentials",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": {"replication-password": too_long} })),
        )
        .await
        .expect("the credentials Secret takes the change");
    let refused = wait_until(
        "the operator to refuse a 40-character replication password",
        Duration::from_secs(60),
        || async {
            let condition = cluster_condition(&ns, "pw", ConditionType::PasswordsRotated).await?;
            (condition.reason == "PasswordUnusable").then_some(condition.message)
        },
    )
    .await;
    println!("refused: {refused}");
    assert_eq!(event_count(&ns, "PasswordUnusable").await, 1);

    // The user changes every password in the credentials Secret at once.
    let keys = [
        "root-password",
        "operator-password",
        "replication-password",
        "clone-password",
        "probe-password",
    ];
    let suffix = Alphanumeric.sample_string(&mut rand::rng(), 12);
    let new: BTreeMap<&str, String> = keys
        .iter()
        // At most 32 characters: a replication channel takes no more.
        .map(|key| (*key, format!("R{}{suffix}", &key[..4])))
        .collect();
    secrets
        .patch(
            "pw-credentials",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": new })),
        )
        .await
        .expect("the credentials Secret takes new passwords");
    let changed_at = std::time::Instant::now();

    // Every user of every password switched; the old ones are still accepted.
    wait_until(
        "every account switched to its new password",
        Duration::from_secs(120),
        || async {
            let applied = applied_passwords(&ns, "pw").await;
            let switched = keys.iter().all(|key| {
                applied.get(*key) == new.get(key) && !applied.contains_key(&format!("{key}.next"))
            });
            switched.then_some(())
        },
    )
    .await;
    let switched_after = changed_at.elapsed();
    let old_still_works = mysql_at(&ns, &old_root, "pw-primary", &[], "SELECT 1").await;
    chaos::stop(&ns, "client").await;
    let record = chaos::collect(&ns, "client", 0).await;
    let outcome = chaos::verify(&ns, "pw", 2, &record).await;
    let failed = failed_writes(&record);
    println!(
        "every account switched {:.1} s after the Secret changed; {} writes acknowledged, \
         {failed} failed, {} lost, longest gap {:.2} s ({:.0} s of writes)",
        switched_after.as_secs_f64(),
        outcome.acknowledged,
        outcome.lost,
        outcome.longest_write_gap.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    assert_eq!(outcome.lost, 0, "acknowledged writes were lost");
    assert_eq!(
        failed, 0,
        "a writer logging in with the old root password failed before the old one was discarded"
    );
    assert_eq!(
        old_still_works.as_deref().map(str::trim),
        Ok("1"),
        "the old root password works until it is discarded"
    );

    // Then the old passwords are discarded.
    wait_until(
        "the old passwords discarded",
        Duration::from_secs(KEEP_OLD_SECONDS + 90),
        || async {
            let condition = cluster_condition(&ns, "pw", ConditionType::PasswordsRotated).await?;
            (condition.status == "True").then_some(())
        },
    )
    .await;
    println!(
        "the old passwords were discarded {:.1} s after the Secret changed",
        changed_at.elapsed().as_secs_f64()
    );
    assert_eq!(event_count(&ns, "PasswordRotated").await, keys.len());
    let refused = mysql_at(&ns, &old_root, "pw-primary", &[], "SELECT 1").await;
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("Access denied")),
        "the old root password is refused: {refused:?}"
    );
    let accepted = mysql_at(&ns, &new["root-password"], "pw-primary", &[], "SELECT 1").await;
    assert_eq!(accepted.as_deref().map(str::trim), Ok("1"));

    // The probes read the new probe password (the agent's fence rewrote probe.cnf, which the
    // mysqld container mounts too); the replica's channel reconnects with the new
    // replication password; nothing restarted.
    for pod in ["pw-0", "pw-1"] {
        let cnf = ns
            .exec(pod, "mysqld", &["cat", "/var/run/sakila/probe.cnf"])
            .await;
        assert!(
            cnf.contains(&new["probe-password"]),
            "{pod}'s probe.cnf follows the rotation"
        );
    }
    let replica = chaos::current_primary(&ns, "pw")
        .await
        .map(|primary| if primary == "pw-0" { "pw-1" } else { "pw-0" })
        .expect("a primary");
    ns.sql(
        "pw",
        replica,
        "STOP REPLICA IO_THREAD; START REPLICA IO_THREAD",
    )
    .await
    .expect("the receiver restarts");
    wait_until(
        "the receiver to connect with the new replication password",
        Duration::from_secs(30),
        || async {
            let state = ns
                .sql(
                    "pw",
                    replica,
                    "SELECT SERVICE_STATE FROM performance_schema.replication_connection_status",
                )
                .await
                .ok()?;
            (state.trim() == "ON").then_some(())
        },
    )
    .await;
    assert_eq!(
        before,
        pods_and_restarts(&ns, "pw").await,
        "a pod was replaced or a container restarted"
    );

    // Root restricted to the pods: refused through the Service, still served inside a pod.
    let root = &new["root-password"];
    patch_spec(&ns, "pw", json!({"rootAccess": "LocalOnly"})).await;
    wait_for_root_access(&ns, "LocalOnly").await;
    let refused = mysql_at(&ns, root, "pw-primary", &[], "SELECT 1").await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("Account is locked")),
        "root from outside the pods is refused: {refused:?}"
    );
    assert_eq!(
        ns.sql("pw", "pw-0", "SELECT 1")
            .await
            .as_deref()
            .map(str::trim),
        Ok("1")
    );
    assert_eq!(
        before,
        pods_and_restarts(&ns, "pw").await,
        "locking root restarts nothing"
    );

    // A new instance is cloned with the new donor password by an operator logging in with its
    // new one, and has root locked like its donor.
    patch_spec(&ns, "pw", json!({"instances": 3})).await;
    wait_ready(&ns, "pw").await;
    assert!(
        !replica_cloned_notes(&ns).await.is_empty(),
        "the third instance was cloned"
    );
    for pod in ["pw-0", "pw-1", "pw-2"] {
        let locked = ns.sql("pw", pod, REMOTE_ROOT_LOCKED).await;
        assert_eq!(
            locked.as_deref().map(str::trim),
            Ok("Y"),
            "root@'%' on {pod}"
        );
    }

    // Opened again: root logs in through the Service with its password, kept while locked.
    patch_spec(&ns, "pw", json!({"rootAccess": "Remote"})).await;
    wait_for_root_access(&ns, "Remote").await;
    let accepted = mysql_at(&ns, root, "pw-replicas", &[], "SELECT 1").await;
    assert_eq!(accepted.as_deref().map(str::trim), Ok("1"));
    assert_eq!(event_count(&ns, "RootAccessChanged").await, 2);
}

const REMOTE_ROOT_LOCKED: &str =
    "SELECT account_locked FROM mysql.user WHERE User = 'root' AND Host = '%'";

/// Waits until `RootAccessApplied` says every instance has `access`.
async fn wait_for_root_access(ns: &TestNamespace, access: &str) {
    let asked = std::time::Instant::now();
    let seen = wait_until(
        &format!("spec.rootAccess {access} on every instance"),
        Duration::from_secs(60),
        || async {
            let condition = cluster_condition(ns, "pw", ConditionType::RootAccessApplied).await?;
            (condition.status == "True" && condition.reason == access).then_some(condition.message)
        },
    )
    .await;
    println!(
        "root access {access} on every instance {:.1} s after the edit: {seen}",
        asked.elapsed().as_secs_f64()
    );
}
