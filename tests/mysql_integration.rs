//! Tier 2: the SQL trait against real mysqld servers on loopback ports.
//!
//! Servers come from `tests/support/mysqld-chroot` (override with
//! `SAKILA_MYSQLD_CHROOT`), which needs root and the MySQL rootfs. Without
//! them these tests fail; `SAKILA_SKIP_MYSQL_TESTS=1` skips them on purpose.
//! `mysql_async` is used here directly only to write test data and to check
//! what the trait did from the outside.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sakila::api::MySQLCluster;
use sakila::mysql::{
    Account, ChannelTls, CloneOutcome, Credentials, Endpoint, GtidSet, InstanceStatus, MySqlAdmin,
    MySqlClient, MySqlConnector, MySqlError, MySqlSession, PeerTls, Plugin, RemoteRoot,
    ReplicationSource, SemiSyncSourceConfig, ServerIdentity, ThreadState, UserSpec,
};
use sakila::resources::tls::{IssuedTls, build_tls_secret};
use sakila::validate::{OperatorSettings, validate};

const STARTUP_TIMEOUT_SECS: u32 = 180;
const REPL_USER: &str = "sakila_repl";
const REPL_PASSWORD: &str = "r3pl'pa\\ss";

/// Returns false (after saying so) when the tests are skipped on purpose.
fn mysql_tests_enabled(test: &str) -> bool {
    if std::env::var("SAKILA_SKIP_MYSQL_TESTS").as_deref() == Ok("1") {
        // Straight to the file descriptor: libtest captures eprintln! of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: SAKILA_SKIP_MYSQL_TESTS=1"
        );
        return false;
    }
    true
}

fn chroot_script() -> PathBuf {
    let script = std::env::var_os("SAKILA_MYSQLD_CHROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/mysqld-chroot")
        });
    assert!(
        script.is_file(),
        "MySQL integration tests need {} (set SAKILA_MYSQLD_CHROOT to the \
         mysqld-chroot script, run as root with the MySQL rootfs built by \
         `e2e/images/build mysql-rootfs`, or set SAKILA_SKIP_MYSQL_TESTS=1 to skip them)",
        script.display()
    );
    script
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free loopback port")
        .port()
}

fn root() -> Credentials {
    Credentials::new("root", "")
}

const OPERATOR_PASSWORD: &str = "operator-pw";

fn operator() -> Credentials {
    Credentials::new("sakila-operator", OPERATOR_PASSWORD)
}

fn client() -> MySqlClient {
    MySqlClient::new(Duration::from_secs(5), Duration::from_secs(30))
}

/// One mysqld started for a test; stopped (and its datadir removed) on drop.
struct Server {
    endpoint: Endpoint,
    server_id: u32,
    pid: Option<u32>,
    load_plugins: bool,
    dir: TempDir,
}

/// A directory removed on drop (mysqld's datadir, owned by uid 999: needs root).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "sakila-mysqld-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("no temporary directory");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Server {
    /// Starts a fresh, read-only server configured as the operator would,
    /// with an empty GTID history.
    async fn start(server_id: u32) -> Server {
        Self::start_with(server_id, true).await
    }

    /// Like [`Server::start`]; `load_plugins` adds the semi-sync and clone
    /// plugins to the command line as the operator's configuration does.
    async fn start_with(server_id: u32, load_plugins: bool) -> Server {
        let dir = TempDir::new();
        let mut server = Server {
            endpoint: Endpoint::new("127.0.0.1", free_port()),
            server_id,
            pid: None,
            load_plugins,
            dir,
        };
        server.launch().await;
        // The operator's account with exactly the privileges init.sh grants it: every test
        // of the trait runs as the operator does.
        server
            .sql(&format!(
                "SET GLOBAL super_read_only = OFF; SET SESSION sql_log_bin = 0; \
                 CREATE USER 'sakila-operator'@'%' IDENTIFIED BY '{OPERATOR_PASSWORD}'; {} \
                 SET GLOBAL super_read_only = ON",
                sakila::mysql::sql::operator_grants("'sakila-operator'@'%'")
            ))
            .await;
        // --initialize and the harness's init file leave GTIDs of their own;
        // a real instance starts without history.
        server.sql("RESET BINARY LOGS AND GTIDS").await;
        server
    }

    fn datadir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs mysqld-chroot off the runtime thread: the other server of a
    /// `join!` may be mid-handshake, and the server drops handshakes that
    /// stall for `connect_timeout` (10 s).
    async fn launch(&mut self) {
        let mut command = Command::new(chroot_script());
        command
            .arg("--port")
            .arg(self.endpoint.port.to_string())
            .arg("--datadir")
            .arg(self.datadir())
            .arg("--log")
            .arg(self.dir.path().join("mysqld.log"))
            .arg("--timeout")
            .arg(STARTUP_TIMEOUT_SECS.to_string())
            .arg("--")
            .arg(format!("--server-id={}", self.server_id))
            .args([
                "--gtid-mode=ON",
                "--enforce-gtid-consistency=ON",
                "--super-read-only=ON",
                "--log-bin=binlog",
                "--innodb-buffer-pool-size=32M",
                "--innodb-redo-log-capacity=16M",
            ])
            .args(if self.load_plugins {
                &[
                    "--plugin-load-add=semisync_source.so",
                    "--plugin-load-add=semisync_replica.so",
                    "--plugin-load-add=mysql_clone.so",
                ][..]
            } else {
                &[][..]
            });
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("mysqld-chroot task panicked")
            .expect("failed to run mysqld-chroot");
        assert!(
            output.status.success(),
            "mysqld-chroot failed to start server {}: {}",
            self.server_id,
            String::from_utf8_lossy(&output.stderr)
        );
        let pid = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse::<u32>()
            .expect("mysqld-chroot printed no PID");
        self.pid = Some(pid);
    }

    /// Waits for mysqld to exit on its own (as after a clone), then starts it again.
    async fn wait_for_exit_and_restart(&mut self) {
        let pid = self.pid.take().expect("server not running");
        let deadline = Instant::now() + Duration::from_secs(120);
        while PathBuf::from(format!("/proc/{pid}")).exists() && !is_zombie(pid) {
            assert!(
                Instant::now() < deadline,
                "mysqld {pid} did not exit after clone"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.launch().await;
    }

    /// A session of the operator's account, with its privileges only.
    async fn admin(&self) -> MySqlSession {
        client()
            .connect(&self.endpoint, &operator())
            .await
            .unwrap_or_else(|e| panic!("{}", chain(&e)))
    }

    /// A session of root, for what the operator's account may not do (creating accounts).
    async fn root_admin(&self) -> MySqlSession {
        client()
            .connect(&self.endpoint, &root())
            .await
            .unwrap_or_else(|e| panic!("{}", chain(&e)))
    }

    async fn conn(&self) -> mysql_async::Conn {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.endpoint.host.clone())
            .tcp_port(self.endpoint.port)
            .user(Some("root"))
            .prefer_socket(false);
        mysql_async::Conn::new(opts)
            .await
            .expect("test connection failed")
    }

    /// Runs statements as root outside the trait (test data, checks).
    async fn sql(&self, statements: &str) {
        let mut conn = self.conn().await;
        conn.query_drop(statements)
            .await
            .unwrap_or_else(|e| panic!("{statements}: {e}"));
        let _ = conn.disconnect().await;
    }

    async fn query_strings(&self, query: &str) -> Vec<String> {
        let mut conn = self.conn().await;
        let rows: Vec<Option<String>> = conn
            .query(query)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        let _ = conn.disconnect().await;
        rows.into_iter().map(Option::unwrap_or_default).collect()
    }

    async fn status(&self) -> InstanceStatus {
        let admin = self.admin().await;
        let status = admin
            .status()
            .await
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        admin.close().await;
        status
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("mysqld.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- mysqld {} log tail ---\n{}",
                self.server_id,
                self.log_tail()
            );
        }
        if let Some(pid) = self.pid.take() {
            let _ = Command::new(chroot_script())
                .args(["--stop", &pid.to_string(), "--timeout", "60"])
                .status();
        }
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Polls `check` until it returns true or `timeout` passes.
async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn repl_user() -> UserSpec {
    UserSpec {
        name: REPL_USER.into(),
        host: "%".into(),
        password: REPL_PASSWORD.into(),
        privileges: vec!["REPLICATION SLAVE".into(), "BACKUP_ADMIN".into()],
    }
}

fn source_of(server: &Server) -> ReplicationSource {
    ReplicationSource {
        endpoint: server.endpoint.clone(),
        credentials: Credentials::new(REPL_USER, REPL_PASSWORD),
        tls: PeerTls::Unverified,
        connect_retry: Duration::from_secs(1),
        retry_count: 86_400,
    }
}

/// Starts a writable primary with the replication account and a replica
/// following it; `semi_sync` turns on lossless semi-sync on both.
async fn primary_and_replica(first_id: u32, semi_sync: bool) -> (Server, Server) {
    let (primary, replica) = tokio::join!(Server::start(first_id), Server::start(first_id + 1));
    let admin = primary.admin().await;
    admin.set_read_only(false).await.expect("set writable");
    primary
        .root_admin()
        .await
        .ensure_user(&repl_user())
        .await
        .expect("ensure repl user");
    if semi_sync {
        admin
            .enable_semi_sync_source(SemiSyncSourceConfig {
                wait_for_replica_count: 1,
                timeout: Duration::from_secs(3600),
            })
            .await
            .expect("enable semi-sync source");
    }
    let replica_admin = replica.admin().await;
    if semi_sync {
        replica_admin
            .enable_semi_sync_replica()
            .await
            .expect("enable semi-sync replica");
    }
    replica_admin
        .configure_replica(&source_of(&primary))
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    wait_until(
        "replica threads running",
        Duration::from_secs(60),
        || async {
            let status = replica.status().await;
            let r = status.replica.expect("replica status");
            if let Some(e) = &r.last_io_error {
                eprintln!("replica I/O error so far: {} {}", e.code, e.message);
            }
            r.io_thread == ThreadState::Running && r.sql_thread == ThreadState::Running
        },
    )
    .await;
    (primary, replica)
}

#[tokio::test]
async fn status_reads_gtid_executed_and_read_only_flags() {
    if !mysql_tests_enabled("status_reads_gtid_executed_and_read_only_flags") {
        return;
    }
    let server = Server::start(11).await;
    let before = server.status().await;
    assert!(before.read_only && before.super_read_only, "{before:?}");
    assert!(!before.is_writable());
    assert_eq!(before.server_id, 11);
    assert!(before.version.starts_with("9.7"), "{}", before.version);
    assert!(before.gtid_executed.is_empty(), "{}", before.gtid_executed);
    assert!(before.replica.is_none());
    assert!(before.semi_sync.source_plugin_loaded && before.semi_sync.replica_plugin_loaded);
    assert!(!before.semi_sync.source_enabled);
    assert!(before.clone.is_none(), "{:?}", before.clone);

    let admin = server.admin().await;
    admin.set_read_only(false).await.unwrap();
    server
        .sql("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
        .await;
    let after = admin.status().await.unwrap();
    let expected = GtidSet::parse(&format!("{}:1-2", before.server_uuid)).unwrap();
    assert_eq!(after.gtid_executed, expected);
    assert_eq!(after.server_uuid, before.server_uuid);
    let over_tls = client()
        .with_tls(true)
        .connect(&server.endpoint, &root())
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(over_tls.status().await.unwrap().gtid_executed, expected);
    over_tls.close().await;
    let mysql_text = server.query_strings("SELECT @@gtid_executed").await;
    assert_eq!(
        GtidSet::parse(&mysql_text[0]).unwrap(),
        after.gtid_executed,
        "parsed set differs from MySQL's own text"
    );
}

#[tokio::test]
async fn set_read_only_toggles_both_flags() {
    if !mysql_tests_enabled("set_read_only_toggles_both_flags") {
        return;
    }
    let server = Server::start(21).await;
    let admin = server.admin().await;
    admin.set_read_only(false).await.unwrap();
    let writable = admin.status().await.unwrap();
    assert!(!writable.read_only && !writable.super_read_only);
    server.sql("CREATE DATABASE app").await;

    admin.set_read_only(true).await.unwrap();
    let read_only = admin.status().await.unwrap();
    assert!(read_only.read_only && read_only.super_read_only);
    let mut conn = server.conn().await;
    let err = conn
        .query_drop("CREATE DATABASE refused")
        .await
        .expect_err("root wrote to a super_read_only server");
    assert!(err.to_string().contains("super-read-only"), "{err}");
    // Idempotent in both directions.
    admin.set_read_only(true).await.unwrap();
    admin.set_read_only(false).await.unwrap();
    admin.set_read_only(false).await.unwrap();
    assert!(admin.status().await.unwrap().is_writable());
}

#[tokio::test]
async fn ensure_user_is_idempotent_and_the_user_can_log_in() {
    if !mysql_tests_enabled("ensure_user_is_idempotent_and_the_user_can_log_in") {
        return;
    }
    let server = Server::start(31).await;
    // Accounts are root's to create: the operator's account may not.
    let admin = server.root_admin().await;
    admin.set_read_only(false).await.unwrap();
    let user = repl_user();

    let first = admin.ensure_user(&user).await.unwrap();
    assert!(first.created, "{first:?}");
    assert_eq!(first.granted, vec!["REPLICATION SLAVE", "BACKUP_ADMIN"]);
    let gtids_after_create = admin.status().await.unwrap().gtid_executed;

    // The operator's accounts outlive a user's default_password_lifetime.
    let lifetime = format!(
        "SELECT CAST(password_lifetime AS CHAR) FROM mysql.user WHERE user = '{REPL_USER}'"
    );
    assert_eq!(
        server.query_strings(&lifetime).await,
        ["0"],
        "PASSWORD EXPIRE NEVER"
    );

    let second = admin.ensure_user(&user).await.unwrap();
    assert!(second.is_noop(), "second ensure_user changed {second:?}");
    assert_eq!(
        admin.status().await.unwrap().gtid_executed,
        gtids_after_create,
        "a no-op ensure_user wrote a transaction"
    );

    let login = client()
        .connect(
            &server.endpoint,
            &Credentials::new(REPL_USER, REPL_PASSWORD),
        )
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    login.close().await;

    let rotated = UserSpec {
        password: "new\"pa'ss`word".into(),
        privileges: vec!["REPLICATION SLAVE".into(), "CLONE_ADMIN".into()],
        ..user.clone()
    };
    let third = admin.ensure_user(&rotated).await.unwrap();
    assert!(!third.created && third.password_changed, "{third:?}");
    assert_eq!(
        server.query_strings(&lifetime).await,
        ["0"],
        "still never expires"
    );
    assert_eq!(third.granted, vec!["CLONE_ADMIN"]);
    let old = client()
        .connect(
            &server.endpoint,
            &Credentials::new(REPL_USER, REPL_PASSWORD),
        )
        .await
        .expect_err("old password still works");
    assert!(matches!(old, MySqlError::AccessDenied { .. }), "{old:?}");
    assert!(!old.is_unreachable());
    client()
        .connect(
            &server.endpoint,
            &Credentials::new(REPL_USER, &rotated.password),
        )
        .await
        .expect("new password refused")
        .close()
        .await;

    admin.set_read_only(true).await.unwrap();
    let refused = admin
        .ensure_user(&UserSpec {
            name: "late".into(),
            ..user
        })
        .await
        .expect_err("created a user on a read-only server");
    assert!(
        matches!(refused, MySqlError::ReadOnly { .. }),
        "{refused:?}"
    );
    assert_eq!(refused.category(), "read_only");
}

#[tokio::test]
async fn semi_sync_write_on_the_source_is_acknowledged_and_applied_on_the_replica() {
    if !mysql_tests_enabled(
        "semi_sync_write_on_the_source_is_acknowledged_and_applied_on_the_replica",
    ) {
        return;
    }
    let (primary, replica) = primary_and_replica(41, true).await;
    wait_until("one semi-sync client", Duration::from_secs(30), || async {
        let s = primary.status().await.semi_sync;
        s.source_active && s.source_clients == 1
    })
    .await;
    let source_status = primary.status().await;
    assert!(source_status.semi_sync.source_enabled);
    assert_eq!(
        source_status.semi_sync.wait_point.as_deref(),
        Some("AFTER_SYNC")
    );
    assert_eq!(source_status.semi_sync.wait_for_replica_count, Some(1));
    assert_eq!(
        source_status.semi_sync.source_timeout,
        Some(Duration::from_secs(3600))
    );

    primary
        .sql("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); INSERT INTO app.t VALUES (1), (2)")
        .await;
    let acked = primary.query_strings(
        "SELECT VARIABLE_VALUE FROM performance_schema.global_status WHERE VARIABLE_NAME = 'Rpl_semi_sync_source_yes_tx'",
    )
    .await;
    assert!(
        acked[0].parse::<u64>().unwrap() >= 3,
        "acknowledged: {acked:?}"
    );
    let after = primary.status().await;
    assert!(
        after.semi_sync.source_active,
        "fell back to async: {:?}",
        after.semi_sync
    );

    let replica_admin = replica.admin().await;
    assert!(
        replica_admin
            .wait_for_gtid(&after.gtid_executed, Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert_eq!(
        replica
            .query_strings("SELECT GROUP_CONCAT(id ORDER BY id) FROM app.t")
            .await,
        vec!["1,2"]
    );
    let replica_status = replica_admin.status().await.unwrap();
    assert!(replica_status.semi_sync.replica_enabled && replica_status.semi_sync.replica_active);
    let r = replica_status.replica.expect("replica status");
    assert_eq!(
        (r.source_host.as_str(), r.source_port),
        ("127.0.0.1", primary.endpoint.port)
    );
    assert!(r.auto_position);
    assert!(
        r.last_io_error.is_none() && r.last_sql_error.is_none(),
        "{r:?}"
    );
    assert!(after.gtid_executed.is_subset_of(&r.retrieved_gtid_set));
    assert!(
        replica_status.super_read_only,
        "replica must stay read-only"
    );
}

#[tokio::test]
async fn wait_for_gtid_returns_true_when_caught_up_and_false_on_timeout() {
    if !mysql_tests_enabled("wait_for_gtid_returns_true_when_caught_up_and_false_on_timeout") {
        return;
    }
    let (primary, replica) = primary_and_replica(51, false).await;
    primary.sql("CREATE DATABASE app").await;
    let wanted = primary.status().await.gtid_executed;
    let replica_admin = replica.admin().await;
    assert!(
        replica_admin
            .wait_for_gtid(&wanted, Duration::from_secs(30))
            .await
            .unwrap()
    );

    let encrypted_dumps = primary
        .query_strings(
            "SELECT COUNT(*) FROM performance_schema.status_by_thread s \
             JOIN performance_schema.threads t USING (THREAD_ID) \
             WHERE t.PROCESSLIST_COMMAND LIKE 'Binlog Dump%' \
             AND s.VARIABLE_NAME = 'Ssl_cipher' AND s.VARIABLE_VALUE <> ''",
        )
        .await;
    assert_eq!(encrypted_dumps, vec!["1"], "replication is not over TLS");

    // The fence: with the I/O thread stopped nothing new arrives.
    replica_admin.stop_replica_io().await.unwrap();
    let fenced = replica_admin.status().await.unwrap().replica.unwrap();
    assert_eq!(fenced.io_thread, ThreadState::Stopped);
    assert_eq!(fenced.sql_thread, ThreadState::Running);
    primary.sql("CREATE DATABASE app2").await;
    let newer = primary.status().await.gtid_executed;
    let started = Instant::now();
    assert!(
        !replica_admin
            .wait_for_gtid(&newer, Duration::from_millis(1500))
            .await
            .unwrap()
    );
    assert!(started.elapsed() >= Duration::from_millis(1400));

    replica_admin.start_replica().await.unwrap();
    assert!(
        replica_admin
            .wait_for_gtid(&newer, Duration::from_secs(30))
            .await
            .unwrap()
    );

    replica_admin.reset_replica_all().await.unwrap();
    assert!(replica_admin.status().await.unwrap().replica.is_none());
}

#[tokio::test]
async fn clone_from_seeds_an_empty_replica() {
    if !mysql_tests_enabled("clone_from_seeds_an_empty_replica") {
        return;
    }
    let (donor, mut recipient) = tokio::join!(Server::start(61), Server::start(62));
    let donor_admin = donor.admin().await;
    donor_admin.set_read_only(false).await.unwrap();
    donor
        .root_admin()
        .await
        .ensure_user(&repl_user())
        .await
        .unwrap();
    donor
        .sql("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); INSERT INTO app.t VALUES (7), (8), (9)")
        .await;
    let donor_gtids = donor_admin.status().await.unwrap().gtid_executed;
    let recipient_uuid = recipient.status().await.server_uuid;
    // User data on the recipient, which the clone drops first: refused under super_read_only
    // unless clone_from lifts it.
    recipient
        .sql("SET GLOBAL super_read_only = OFF; CREATE DATABASE stale; SET GLOBAL super_read_only = ON")
        .await;

    let recipient_admin = recipient.admin().await;
    let outcome = recipient_admin
        .clone_from(
            &donor.endpoint,
            &Credentials::new(REPL_USER, REPL_PASSWORD),
            &PeerTls::Unverified,
            Duration::from_secs(300),
        )
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    // mysqld runs without a supervisor here, as in a container.
    assert_eq!(outcome, CloneOutcome::ShutDown);
    let after_clone = recipient_admin
        .status()
        .await
        .expect_err("session survived the clone");
    assert!(after_clone.is_unreachable(), "{after_clone:?}");

    recipient.wait_for_exit_and_restart().await;
    let cloned = recipient.status().await;
    assert_eq!(cloned.gtid_executed, donor_gtids);
    assert_eq!(
        cloned.server_uuid, recipient_uuid,
        "clone must not copy auto.cnf"
    );
    assert!(cloned.super_read_only);
    assert!(
        recipient
            .query_strings(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'stale'"
            )
            .await
            .is_empty(),
        "the recipient's own data is gone"
    );
    let clone = cloned.clone.expect("clone status");
    assert_eq!(clone.state, "Completed", "{clone:?}");
    assert_eq!(clone.source, donor.endpoint.to_string());
    assert_eq!(
        recipient
            .query_strings("SELECT GROUP_CONCAT(id ORDER BY id) FROM app.t")
            .await,
        vec!["7,8,9"]
    );

    // A clone is a replica that only needs to be pointed at its source.
    let recipient_admin = recipient.admin().await;
    recipient_admin
        .configure_replica(&source_of(&donor))
        .await
        .unwrap();
    donor.sql("INSERT INTO app.t VALUES (10)").await;
    let newer = donor.status().await.gtid_executed;
    assert!(
        recipient_admin
            .wait_for_gtid(&newer, Duration::from_secs(30))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn clone_to_directory_copies_a_serving_donor_and_reports_what_the_copy_holds() {
    if !mysql_tests_enabled(
        "clone_to_directory_copies_a_serving_donor_and_reports_what_the_copy_holds",
    ) {
        return;
    }
    let (donor, recipient) = tokio::join!(Server::start(65), Server::start(66));
    let donor_admin = donor.admin().await;
    donor_admin.set_read_only(false).await.unwrap();
    donor
        .root_admin()
        .await
        .ensure_user(&repl_user())
        .await
        .unwrap();
    donor
        .sql("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); INSERT INTO app.t VALUES (1), (2)")
        .await;
    let donor_gtids = donor_admin.status().await.unwrap().gtid_executed;
    let recipient_before = recipient.status().await;

    // The backup's throwaway server: the copy goes into a directory beside its own data
    // (its /tmp, seen from here through /proc), which stays as it was. As root, as in the
    // backup Job: a clone into a directory also needs BACKUP_ADMIN on the recipient.
    recipient
        .root_admin()
        .await
        .clone_to_directory(
            &donor.endpoint,
            &Credentials::new(REPL_USER, REPL_PASSWORD),
            &PeerTls::Unverified,
            "/tmp/copy",
            Duration::from_secs(300),
        )
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let copy = PathBuf::from(format!("/proc/{}/root/tmp/copy", recipient.pid.unwrap()));
    assert!(
        copy.join("app/t.ibd").is_file(),
        "the table's tablespace was copied"
    );
    let recipient_after = recipient.status().await;
    assert_eq!(
        recipient_after.gtid_executed,
        recipient_before.gtid_executed
    );
    assert!(
        recipient
            .query_strings(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'app'"
            )
            .await
            .is_empty(),
        "the recipient's own data is untouched"
    );
    // clone_status of a directory clone records no clone point until a server starts on it.
    assert!(recipient.root_admin().await.clone_point().await.is_err());

    // A server started on the copy (as the Job starts one) knows what it holds.
    let dir = TempDir::new();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&copy)
        .arg(dir.path().join("data"))
        .status()
        .unwrap();
    assert!(copied.success());
    let mut restored = Server {
        endpoint: Endpoint::new("127.0.0.1", free_port()),
        server_id: 67,
        pid: None,
        load_plugins: true,
        dir,
    };
    restored.launch().await;
    let point = restored
        .root_admin()
        .await
        .clone_point()
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(point.gtid_executed, donor_gtids);
    assert!(point.binlog_file.starts_with("binlog."), "{point:?}");
    assert!(point.binlog_position > 0, "{point:?}");
    assert!(point.server_version.starts_with("9."), "{point:?}");
    assert_eq!(restored.status().await.gtid_executed, donor_gtids);
    assert_eq!(
        restored
            .query_strings("SELECT GROUP_CONCAT(id ORDER BY id) FROM app.t")
            .await,
        vec!["1,2"]
    );
    // The donor served throughout and still takes writes.
    donor.sql("INSERT INTO app.t VALUES (3)").await;
}

#[tokio::test]
async fn check_tables_checks_every_table_including_awkwardly_named_ones() {
    if !mysql_tests_enabled("check_tables_checks_every_table_including_awkwardly_named_ones") {
        return;
    }
    let server = Server::start(161).await;
    let admin = server.root_admin().await;
    let before = admin
        .check_tables()
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert!(before.tables > 0, "MySQL's own tables are checked too");
    server
        .sql(
            "SET GLOBAL super_read_only = OFF; CREATE DATABASE `shop floor`; \
             CREATE TABLE `shop floor`.`order``s` (id INT PRIMARY KEY, note TEXT); \
             INSERT INTO `shop floor`.`order``s` VALUES (1, 'a'), (2, 'b'); \
             CREATE TABLE `shop floor`.plain (id INT PRIMARY KEY) ENGINE=MyISAM",
        )
        .await;
    let after = admin
        .check_tables()
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(after.tables, before.tables + 2);
    assert_eq!(after.failures, Vec::<String>::new());
}

#[tokio::test]
async fn set_passwords_changes_existing_accounts_only_and_adds_no_transaction() {
    if !mysql_tests_enabled("set_passwords_changes_existing_accounts_only_and_adds_no_transaction")
    {
        return;
    }
    let server = Server::start(68).await;
    server
        .sql("SET GLOBAL super_read_only = OFF; CREATE USER 'app'@'%' IDENTIFIED BY 'old-app-pw'")
        .await;
    let before = server.status().await.gtid_executed;
    assert!(
        !before.is_empty(),
        "the account's creation is a transaction"
    );
    let account = |user: &str, password: &str| Account {
        credentials: Credentials::new(user, password),
        host: "%".into(),
    };
    server
        .root_admin()
        .await
        .set_passwords(&[account("app", "new-app-pw"), account("nobody", "pw")])
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(
        server.status().await.gtid_executed,
        before,
        "a restored copy must hold exactly the backup's transactions"
    );
    let client = client();
    let login = |password: &'static str| {
        let (client, endpoint) = (client.clone(), server.endpoint.clone());
        async move {
            client
                .connect(&endpoint, &Credentials::new("app", password))
                .await
        }
    };
    assert!(login("new-app-pw").await.is_ok());
    assert!(matches!(
        login("old-app-pw").await,
        Err(MySqlError::AccessDenied { .. })
    ));
    assert!(
        server
            .query_strings("SELECT user FROM mysql.user WHERE user = 'nobody'")
            .await
            .is_empty(),
        "an account that does not exist is not created"
    );
}

#[tokio::test]
async fn errant_transaction_on_a_replica_shows_as_gtids_missing_from_the_source() {
    if !mysql_tests_enabled(
        "errant_transaction_on_a_replica_shows_as_gtids_missing_from_the_source",
    ) {
        return;
    }
    let (primary, replica) = primary_and_replica(71, false).await;
    primary.sql("CREATE DATABASE app").await;
    let primary_gtids = primary.status().await.gtid_executed;
    let replica_admin = replica.admin().await;
    assert!(
        replica_admin
            .wait_for_gtid(&primary_gtids, Duration::from_secs(30))
            .await
            .unwrap()
    );
    let clean = replica_admin.status().await.unwrap();
    assert!(clean.gtid_executed.difference(&primary_gtids).is_empty());

    // Someone writes on the replica behind the operator's back.
    replica_admin.set_read_only(false).await.unwrap();
    replica.sql("CREATE DATABASE errant").await;
    replica_admin.set_read_only(true).await.unwrap();

    let replica_status = replica_admin.status().await.unwrap();
    let primary_status = primary.status().await;
    let errant = replica_status
        .gtid_executed
        .difference(&primary_status.gtid_executed);
    assert_eq!(errant.count(), 1, "errant: {errant}");
    assert_eq!(
        errant.to_string(),
        format!("{}:1", replica_status.server_uuid)
    );
    assert!(
        !replica_status
            .gtid_executed
            .is_subset_of(&primary_status.gtid_executed)
    );
    assert!(
        primary_status
            .gtid_executed
            .is_subset_of(&replica_status.gtid_executed)
    );
}

#[tokio::test]
async fn ensure_plugin_needs_a_writable_server_and_is_not_binlogged() {
    if !mysql_tests_enabled("ensure_plugin_needs_a_writable_server_and_is_not_binlogged") {
        return;
    }
    let server = Server::start_with(81, false).await;
    let admin = server.admin().await;
    assert!(!admin.status().await.unwrap().semi_sync.source_plugin_loaded);
    let refused = admin
        .ensure_plugin(Plugin::SemiSyncSource)
        .await
        .expect_err("installed a plugin while read-only");
    assert!(
        matches!(refused, MySqlError::ReadOnly { .. }),
        "{refused:?}"
    );

    admin.set_read_only(false).await.unwrap();
    for plugin in Plugin::ALL {
        admin.ensure_plugin(plugin).await.unwrap();
        admin.ensure_plugin(plugin).await.unwrap();
    }
    admin.set_read_only(true).await.unwrap();
    let status = admin.status().await.unwrap();
    assert!(status.semi_sync.source_plugin_loaded && status.semi_sync.replica_plugin_loaded);
    assert!(
        status.gtid_executed.is_empty(),
        "INSTALL PLUGIN was binlogged: {}",
        status.gtid_executed
    );
    // Loaded plugins make the check a no-op, so read-only no longer matters.
    admin.ensure_plugin(Plugin::Clone).await.unwrap();
}

#[tokio::test]
async fn a_statement_that_times_out_is_killed_and_abandons_the_session() {
    if !mysql_tests_enabled("a_statement_that_times_out_is_killed_and_abandons_the_session") {
        return;
    }
    let server = Server::start(91).await;
    let admin = server.admin().await;
    admin.set_read_only(false).await.unwrap();
    server
        .sql("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
        .await;
    // Enabling read-only waits for other sessions' table locks.
    let mut locker = server.conn().await;
    locker.query_drop("LOCK TABLES app.t WRITE").await.unwrap();

    let impatient = MySqlClient::new(Duration::from_secs(5), Duration::from_secs(1))
        .connect(&server.endpoint, &root())
        .await
        .unwrap();
    let err = impatient
        .set_read_only(true)
        .await
        .expect_err("not blocked");
    assert!(matches!(err, MySqlError::Timeout { .. }), "{err:?}");
    assert_eq!(err.category(), "timeout");
    let next = impatient
        .status()
        .await
        .expect_err("session reused after a timeout");
    assert!(
        matches!(next, MySqlError::ConnectionLost { .. }),
        "{next:?}"
    );

    locker.query_drop("UNLOCK TABLES").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = admin.status().await.unwrap();
    assert!(
        status.is_writable(),
        "the timed-out SET GLOBAL super_read_only still ran after the lock was released"
    );
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_unreachable() {
    if !mysql_tests_enabled("connecting_to_a_closed_port_is_unreachable") {
        return;
    }
    let err = client()
        .connect(&Endpoint::new("127.0.0.1", free_port()), &root())
        .await
        .expect_err("connected to a closed port");
    assert!(err.is_unreachable(), "{err:?}");
    assert_eq!(err.category(), "connect");
}

#[tokio::test]
async fn record_cluster_identity_is_a_binlogged_idempotent_write_refused_when_read_only() {
    if !mysql_tests_enabled(
        "record_cluster_identity_is_a_binlogged_idempotent_write_refused_when_read_only",
    ) {
        return;
    }
    let server = Server::start(71).await;
    let admin = server.admin().await;
    admin.set_read_only(false).await.unwrap();
    let before = admin.status().await.unwrap().gtid_executed;
    admin
        .record_cluster_identity("6b1c3e0e-uid", "db")
        .await
        .unwrap();
    let after_first = admin.status().await.unwrap().gtid_executed;
    assert!(
        !after_first.difference(&before).is_empty(),
        "the identity is a binlogged transaction"
    );
    // A second call changes nothing the table holds (INSERT IGNORE), whatever it logs.
    admin
        .record_cluster_identity("6b1c3e0e-uid", "db")
        .await
        .unwrap();
    let rows = server
        .query_strings("SELECT CONCAT(uid, ' ', name) FROM sakila.cluster")
        .await;
    assert_eq!(rows, vec!["6b1c3e0e-uid db".to_string()]);
    // On a read-only server it is refused, never silently skipped.
    admin.set_read_only(true).await.unwrap();
    let err = admin
        .record_cluster_identity("other", "db")
        .await
        .unwrap_err();
    assert_eq!(err.category(), "read_only", "{err}");
}

#[tokio::test]
async fn status_reads_the_cluster_identity_of_the_history_an_instance_holds() {
    if !mysql_tests_enabled("status_reads_the_cluster_identity_of_the_history_an_instance_holds") {
        return;
    }
    let server = Server::start(72).await;
    let admin = server.admin().await;
    admin.set_read_only(false).await.unwrap();
    assert_eq!(admin.status().await.unwrap().cluster_identity, None);
    // History without an identity (no sakila.cluster): none, and no error.
    server.sql("CREATE DATABASE shop").await;
    let without = admin.status().await.unwrap();
    assert!(!without.gtid_executed.is_empty());
    assert_eq!(without.cluster_identity, None);
    admin
        .record_cluster_identity("uid-first", "db")
        .await
        .unwrap();
    admin
        .record_cluster_identity("uid-later", "db")
        .await
        .unwrap();
    assert_eq!(
        admin.status().await.unwrap().cluster_identity.as_deref(),
        Some("uid-first"),
        "the identity the history started with"
    );
}

#[tokio::test]
async fn a_primary_whose_commit_waits_for_an_acknowledgement_that_never_comes_can_be_demoted() {
    if !mysql_tests_enabled(
        "a_primary_whose_commit_waits_for_an_acknowledgement_that_never_comes_can_be_demoted",
    ) {
        return;
    }
    let (primary, replica) = primary_and_replica(61, true).await;
    wait_until("one semi-sync client", Duration::from_secs(30), || async {
        primary.status().await.semi_sync.source_clients == 1
    })
    .await;
    primary
        .sql("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
        .await;
    // The fence: the only replica stops acknowledging, as when the primary is cut off.
    replica.admin().await.stop_replica_io().await.unwrap();
    let mut conn = primary.conn().await;
    let waiting_commit =
        tokio::spawn(async move { conn.query_drop("INSERT INTO app.t VALUES (1)").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting_commit.is_finished(),
        "the commit should wait for an acknowledgement"
    );

    let admin = primary.admin().await;
    let killed = admin.kill_client_sessions(&["sakila-repl"]).await.unwrap();
    assert!(killed >= 1, "killed {killed} sessions");
    // The client is disconnected at once: it never sees its commit succeed.
    let outcome = tokio::time::timeout(Duration::from_secs(5), waiting_commit)
        .await
        .expect("a killed session's client is disconnected at once")
        .unwrap();
    assert!(
        outcome.is_err(),
        "the unacknowledged commit was reported done"
    );
    // But the server thread goes on waiting and holds super_read_only back...
    let blocked = admin.set_read_only(true).await.unwrap_err();
    assert!(matches!(blocked, MySqlError::Timeout { .. }), "{blocked}");
    // ...until mysqld is shut down.
    let admin = primary.admin().await;
    admin.shutdown().await.unwrap();
    let mut primary = primary;
    let started = Instant::now();
    primary.wait_for_exit_and_restart().await;
    eprintln!(
        "mysqld with a waiting commit shut down and restarted in {:?}",
        started.elapsed()
    );
    assert_eq!(
        primary
            .query_strings("SELECT @@global.super_read_only")
            .await,
        vec!["1".to_string()],
        "a restarted instance is read-only"
    );
}

/// The list of settings applied online is checked against this very mysqld: each one takes
/// `SET GLOBAL` (a static one would fail with 1238), option-file spellings of values become
/// literals it accepts, removed settings return to their defaults, and it all works on a
/// read-only server (a replica).
#[tokio::test]
async fn online_settings_are_dynamic_in_this_mysql() {
    if !mysql_tests_enabled("online_settings_are_dynamic_in_this_mysql") {
        return;
    }
    use sakila::resources::mysql_settings::ONLINE;
    let server = Server::start(101).await;
    let admin = server.admin().await;
    admin.set_read_only(true).await.unwrap();
    let mut conn = server.conn().await;
    let global = |name: &str| format!("SELECT CAST(@@GLOBAL.{name} AS CHAR)");

    for name in ONLINE {
        let current: Option<String> = conn.query_first(global(name)).await.unwrap();
        let current = current.unwrap_or_else(|| panic!("{name} is not a variable"));
        admin
            .set_global_variables(&[(name.to_string(), current.clone())], &[])
            .await
            .unwrap_or_else(|e| panic!("{name} = {current:?}: {}", chain(&e)));
    }

    let changes: Vec<(String, String)> = [
        ("max_connections", "1K"),
        ("slow_query_log", "on"),
        ("long_query_time", "0.5"),
        ("sql_mode", "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION"),
        ("binlog_row_image", "MINIMAL"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    admin.set_global_variables(&changes, &[]).await.unwrap();
    for (name, expected) in [
        ("max_connections", "1024"),
        ("slow_query_log", "1"),
        ("long_query_time", "0.500000"),
        ("sql_mode", "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION"),
        ("binlog_row_image", "MINIMAL"),
    ] {
        let value: Option<String> = conn.query_first(global(name)).await.unwrap();
        assert_eq!(value.as_deref(), Some(expected), "{name}");
    }

    admin
        .set_global_variables(&[], &["max_connections".into()])
        .await
        .unwrap();
    let value: Option<String> = conn.query_first(global("max_connections")).await.unwrap();
    assert_eq!(
        value.as_deref(),
        Some("151"),
        "back to the compiled default"
    );

    // A setting left off the list needs a restart, and the server says so.
    let err = admin
        .set_global_variables(&[("back_log".into(), "100".into())], &[])
        .await
        .expect_err("back_log is read-only at run time");
    assert!(
        matches!(err, MySqlError::Query { code: 1238, .. }),
        "{}",
        chain(&err)
    );
    // A value the server refuses is reported, with the statement.
    let err = admin
        .set_global_variables(&[("max_connections".into(), "lots".into())], &[])
        .await
        .expect_err("max_connections takes a number");
    assert!(
        chain(&err).contains("SET GLOBAL max_connections = 'lots'"),
        "{}",
        chain(&err)
    );
}

/// The primary lease is written in one round trip without a GTID of its own (it must never be
/// an errant transaction), and the session's binlogging is on again afterwards.
#[tokio::test]
async fn the_primary_lease_is_renewed_without_binlogging() {
    if !mysql_tests_enabled("the_primary_lease_is_renewed_without_binlogging") {
        return;
    }
    let server = Server::start(111).await;
    let admin = server.admin().await;
    admin.set_read_only(false).await.unwrap();
    admin.record_cluster_identity("uid-1", "db").await.unwrap();
    let before = admin.status().await.unwrap().gtid_executed;
    let peers = vec!["10.244.0.11".to_string(), "10.244.0.12".to_string()];
    admin
        .renew_primary_lease(Duration::from_secs(6), &peers)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    admin
        .renew_primary_lease(Duration::from_secs(6), &peers)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(admin.status().await.unwrap().gtid_executed, before);
    let mut conn = server.conn().await;
    let row: Option<(u8, String)> = conn
        .query_first(
            "SELECT expires > NOW(6) AND expires <= NOW(6) + INTERVAL 6 SECOND, peers \
             FROM sakila.primary_lease WHERE id = 1",
        )
        .await
        .unwrap();
    assert_eq!(row, Some((1, "10.244.0.11 10.244.0.12".to_string())));
    // Still binlogging: a write on the same session gets a GTID.
    admin.record_cluster_identity("uid-2", "db").await.unwrap();
    assert_ne!(admin.status().await.unwrap().gtid_executed, before);
}

/// A closed port refuses the connection, and the error says so through its chain of sources:
/// the failover tells "nothing listens there" (no server to fence) from "no answer" by it.
#[tokio::test]
async fn a_refused_connection_is_recognised_as_such() {
    let port = free_port();
    let err = client()
        .connect(&Endpoint::new("127.0.0.1", port), &root())
        .await
        .expect_err("nothing listens on a free port");
    assert!(
        sakila::clustering::observe::connection_refused(&err),
        "{}",
        chain(&err)
    );
    let other = MySqlError::InvalidInput {
        action: "x".into(),
        detail: "y".into(),
    };
    assert!(!sakila::clustering::observe::connection_refused(&other));
}

/// The number of rows in `f.t`, or nothing while the table has not replicated yet.
async fn rows(server: &Server) -> Vec<String> {
    let mut conn = server.conn().await;
    let rows: Vec<String> = conn
        .query("SELECT COUNT(*) FROM f.t")
        .await
        .unwrap_or_default();
    let _ = conn.disconnect().await;
    rows
}

async fn restart(server: &mut Server) {
    server.admin().await.shutdown().await.expect("shutdown");
    server.wait_for_exit_and_restart().await;
}

/// Bug 8 of issue 11: a replica resumes replicating by itself when its mysqld restarts
/// (`skip_replica_start = OFF`, here mysqld's default, as in the operator's my.cnf), unless the
/// failover fenced it. The fence is recorded with `SET PERSIST_ONLY` on a `super_read_only`
/// server, survives the restart, and pointing the replica at a source clears it.
#[tokio::test]
async fn a_fenced_replica_stays_fenced_across_a_restart_until_pointed_at_a_source() {
    if !mysql_tests_enabled(
        "a_fenced_replica_stays_fenced_across_a_restart_until_pointed_at_a_source",
    ) {
        return;
    }
    let (primary, mut replica) = primary_and_replica(95, false).await;
    primary
        .sql("CREATE DATABASE f; CREATE TABLE f.t (id INT PRIMARY KEY); INSERT INTO f.t VALUES (1)")
        .await;
    wait_until(
        "the first row replicates",
        Duration::from_secs(30),
        || async { rows(&replica).await == ["1"] },
    )
    .await;
    let threads = |status: InstanceStatus| {
        let r = status.replica.expect("a replica has replica status");
        (r.io_thread, r.sql_thread)
    };

    assert!(
        replica.status().await.super_read_only,
        "fenced while read-only"
    );
    replica
        .admin()
        .await
        .fence_replica()
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(threads(replica.status().await).0, ThreadState::Stopped);

    restart(&mut replica).await;
    primary.sql("INSERT INTO f.t VALUES (2)").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        threads(replica.status().await),
        (ThreadState::Stopped, ThreadState::Stopped),
        "a fenced replica does not start replicating when its mysqld restarts"
    );
    assert_eq!(rows(&replica).await, ["1"]);

    // Pointed at a source again (after a failover, the new primary): the fence is cleared, and
    // from now on a restart resumes replication with nobody's help.
    replica
        .admin()
        .await
        .configure_replica(&source_of(&primary))
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    wait_until(
        "the second row replicates",
        Duration::from_secs(30),
        || async { rows(&replica).await == ["2"] },
    )
    .await;
    restart(&mut replica).await;
    primary.sql("INSERT INTO f.t VALUES (3)").await;
    wait_until(
        "a restarted replica resumes by itself",
        Duration::from_secs(30),
        || async { rows(&replica).await == ["3"] },
    )
    .await;
    assert_eq!(
        threads(replica.status().await),
        (ThreadState::Running, ThreadState::Running)
    );
}

/// The server's count of connection attempts, read on a connection the caller holds.
async fn connections_opened(watcher: &mut mysql_async::Conn) -> u64 {
    let count: Option<(String, u64)> = watcher
        .query_first("SHOW GLOBAL STATUS LIKE 'Connections'")
        .await
        .expect("Connections status");
    count.expect("the Connections counter").1
}

/// Issue 17: the probe runs every 2 s on every instance. A kept session logs in once and then
/// reads everything in one round trip, the tables it learnt of included; its answers are those
/// of a new session; a server restarted under it is probed on a new connection, not reported
/// unreachable.
#[tokio::test]
async fn a_kept_connection_serves_the_next_probes_and_is_replaced_after_a_restart() {
    if !mysql_tests_enabled(
        "a_kept_connection_serves_the_next_probes_and_is_replaced_after_a_restart",
    ) {
        return;
    }
    let mut server = Server::start(95).await;
    let admin = server.admin().await;
    admin.set_read_only(false).await.unwrap();
    admin
        .record_cluster_identity("uid-kept", "db")
        .await
        .unwrap();
    admin.close().await;
    let fresh = server.status().await;
    assert_eq!(fresh.cluster_identity.as_deref(), Some("uid-kept"));

    let kept = client();
    let mut watcher = server.conn().await;
    let before = connections_opened(&mut watcher).await;
    let mut probes = Vec::new();
    for _ in 0..5 {
        let session = kept.connect_kept(&server.endpoint, &root()).await.unwrap();
        probes.push(session.status().await.unwrap());
        drop(session);
        assert_eq!(
            kept.kept_connections(),
            1,
            "the session's connection is kept"
        );
    }
    assert_eq!(
        connections_opened(&mut watcher).await - before,
        1,
        "five probes through kept sessions log in once"
    );
    for probe in &probes {
        // The second probe on reads the identity (and clone status) in the batch.
        assert_eq!(probe.cluster_identity, fresh.cluster_identity);
        assert_eq!(probe.clone, fresh.clone);
        assert_eq!(probe.semi_sync, fresh.semi_sync);
        assert_eq!(probe.gtid_executed, fresh.gtid_executed);
        assert_eq!(probe.is_writable(), fresh.is_writable());
    }
    let _ = watcher.disconnect().await;

    restart(&mut server).await;
    let session = kept.connect_kept(&server.endpoint, &root()).await.unwrap();
    let after_restart = session
        .status()
        .await
        .unwrap_or_else(|e| panic!("the probe after a restart: {}", chain(&e)));
    assert!(
        !after_restart.is_writable(),
        "my.cnf starts mysqld read-only"
    );
    assert_eq!(after_restart.cluster_identity.as_deref(), Some("uid-kept"));
}

/// The probe account as the init container creates it (`resources/scripts/init.sh`): local only,
/// the privileges the exporter must make do with.
const PROBE_ACCOUNT: &str = "SET SESSION sql_log_bin = 0; \
    CREATE USER 'sakila-probe'@'localhost' IDENTIFIED BY 'pr\"obe' PASSWORD EXPIRE NEVER; \
    GRANT REPLICATION CLIENT, PROCESS, CONNECTION_ADMIN, SYSTEM_VARIABLES_ADMIN, SHUTDOWN \
    ON *.* TO 'sakila-probe'@'localhost'";

/// Writes the probe account's option file for `server` (through its Unix socket) and a labels
/// file with `role`, as the init container and the downward API do; returns their paths.
fn agent_files(server: &Server, role: Option<&str>) -> (PathBuf, PathBuf) {
    let pid = server.pid.expect("server running");
    let cnf = server.dir.path().join("probe.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[client]\nuser = sakila-probe\npassword = \"pr\\\"obe\"\n\
             socket = /proc/{pid}/root/run/mysqld/mysqld.sock\n"
        ),
    )
    .unwrap();
    let labels = server.dir.path().join("labels");
    let mut text = "app.kubernetes.io/name=\"mysql\"\n".to_string();
    if let Some(role) = role {
        text.push_str(&format!("mysql.sakila.dev/role=\"{role}\"\n"));
    }
    std::fs::write(&labels, text).unwrap();
    (cnf, labels)
}

/// Starts the agent on a free port for `server`, labelled `role`, with `extra` arguments.
fn start_agent(
    server: &Server,
    role: Option<&str>,
    extra: &[&str],
) -> (
    u16,
    tokio::task::JoinHandle<Result<(), sakila::agent::AgentError>>,
) {
    let (cnf, labels) = agent_files(server, role);
    let port = free_port();
    let options = sakila::agent::parse_arguments(
        [
            format!("--defaults-file={}", cnf.display()),
            format!("--labels-file={}", labels.display()),
            format!("--listen=127.0.0.1:{port}"),
        ]
        .into_iter()
        .chain(extra.iter().map(|a| a.to_string())),
    )
    .unwrap();
    (port, tokio::spawn(sakila::agent::run(options)))
}

/// One GET of `path` from the agent at `port`: the status code and the body.
async fn agent_get(port: u16, path: &str) -> (u16, String) {
    for _ in 0..50 {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            let code = response
                .get(9..12)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("an HTTP status line: {response}"));
            let body = response
                .split_once("\r\n\r\n")
                .map(|(_, body)| body.to_string())
                .unwrap_or_default();
            return (code, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the agent never listened on {port}");
}

/// Starts the agent with `--metrics` for `server` and returns one scrape of `/metrics`.
async fn scrape_exporter(server: &Server) -> String {
    let (port, agent) = start_agent(server, None, &["--metrics"]);
    let (code, body) = agent_get(port, "/metrics").await;
    agent.abort();
    assert_eq!(code, 200, "{body}");
    body
}

fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn the_exporter_reads_a_primary_and_a_replica_with_the_probe_account_over_the_socket() {
    if !mysql_tests_enabled(
        "the_exporter_reads_a_primary_and_a_replica_with_the_probe_account_over_the_socket",
    ) {
        return;
    }
    let (primary, replica) = primary_and_replica(131, true).await;
    primary.sql(PROBE_ACCOUNT).await;
    // On a read-only replica, as the init container does before the server is read-only.
    replica
        .sql(&format!(
            "SET GLOBAL super_read_only = OFF; {PROBE_ACCOUNT}; SET GLOBAL super_read_only = ON"
        ))
        .await;
    primary
        .sql("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); INSERT INTO app.t VALUES (1)")
        .await;

    let on_primary = scrape_exporter(&primary).await;
    assert_eq!(sample(&on_primary, "mysql_up"), Some(1.0), "{on_primary}");
    assert_eq!(
        sample(&on_primary, "mysql_global_variables_super_read_only"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &on_primary,
            "mysql_global_status_rpl_semi_sync_source_status"
        ),
        Some(1.0),
        "{on_primary}"
    );
    assert_eq!(
        sample(
            &on_primary,
            "mysql_global_status_rpl_semi_sync_source_clients"
        ),
        Some(1.0)
    );
    // The insert waited for the replica's acknowledgement.
    assert!(
        sample(
            &on_primary,
            "mysql_global_status_rpl_semi_sync_source_yes_tx"
        ) >= Some(1.0),
        "{on_primary}"
    );
    assert!(sample(&on_primary, "mysql_binlog_size_bytes") > Some(0.0));
    assert!(sample(&on_primary, "mysql_global_status_queries") > Some(0.0));
    assert!(
        !on_primary.contains("mysql_replica_io_running"),
        "{on_primary}"
    );

    let on_replica = scrape_exporter(&replica).await;
    assert_eq!(sample(&on_replica, "mysql_up"), Some(1.0), "{on_replica}");
    assert_eq!(sample(&on_replica, "mysql_replica_io_running"), Some(1.0));
    assert_eq!(sample(&on_replica, "mysql_replica_sql_running"), Some(1.0));
    // Present while the applier runs (its value is whatever the lag is at that moment).
    assert!(
        sample(&on_replica, "mysql_replica_seconds_behind_source").is_some(),
        "{on_replica}"
    );
    assert_eq!(
        sample(
            &on_replica,
            "mysql_global_status_rpl_semi_sync_replica_status"
        ),
        Some(1.0)
    );

    // A wrong password is mysql_up 0, not a failed scrape.
    replica
        .sql(
            "SET GLOBAL super_read_only = OFF; SET SESSION sql_log_bin = 0; \
              ALTER USER 'sakila-probe'@'localhost' IDENTIFIED BY 'other'; \
              SET GLOBAL super_read_only = ON",
        )
        .await;
    let denied = scrape_exporter(&replica).await;
    assert_eq!(sample(&denied, "mysql_up"), Some(0.0), "{denied}");
}

/// The cluster's TLS material as the operator issues it, for a cluster `name` in `shop` whose
/// certificate also covers 127.0.0.1, where these servers listen.
#[tokio::test]
async fn the_agent_answers_readiness_by_role_and_liveness_on_a_kept_connection() {
    if !mysql_tests_enabled("the_agent_answers_readiness_by_role_and_liveness_on_a_kept_connection")
    {
        return;
    }
    let (primary, replica) = primary_and_replica(135, true).await;
    primary.sql(PROBE_ACCOUNT).await;
    replica
        .sql(&format!(
            "SET GLOBAL super_read_only = OFF; {PROBE_ACCOUNT}; SET GLOBAL super_read_only = ON"
        ))
        .await;
    let ok = |what: &str| (200, format!("{what}\n"));
    let refused = |why: &str| (503, format!("not ready: {why}\n"));

    let (port, agent) = start_agent(&primary, Some("primary"), &[]);
    assert_eq!(agent_get(port, "/ready").await, ok("ready"));
    assert_eq!(agent_get(port, "/alive").await, ok("alive"));
    assert_eq!(
        agent_get(port, "/metrics").await.0,
        404,
        "no metrics without --metrics"
    );
    agent.abort();
    let (port, agent) = start_agent(&primary, Some("replica"), &[]);
    assert_eq!(
        agent_get(port, "/ready").await,
        refused("labelled replica, but writable")
    );
    agent.abort();

    let (port, agent) = start_agent(&replica, Some("replica"), &[]);
    assert_eq!(agent_get(port, "/ready").await, ok("ready"));
    replica.sql("STOP REPLICA SQL_THREAD").await;
    assert_eq!(
        agent_get(port, "/ready").await,
        refused("the replication SQL thread is Stopped")
    );
    replica.sql("START REPLICA SQL_THREAD").await;
    assert_eq!(agent_get(port, "/ready").await, ok("ready"));

    // The option file is read at every probe. A password the server refuses: mysqld answered,
    // so it is alive (the probe account's password may be changing), but not ready.
    let cnf = replica.dir.path().join("probe.cnf");
    let text = std::fs::read_to_string(&cnf).unwrap();
    std::fs::write(&cnf, text.replace("pr\\\"obe", "wrong")).unwrap();
    assert_eq!(agent_get(port, "/alive").await, ok("alive"));
    let (code, body) = agent_get(port, "/ready").await;
    assert_eq!(code, 503);
    assert!(body.contains("access denied"), "{body}");
    agent.abort();
}

#[tokio::test]
async fn the_agents_fence_makes_a_writable_primary_read_only_once_its_lease_ran_out_alone() {
    if !mysql_tests_enabled(
        "the_agents_fence_makes_a_writable_primary_read_only_once_its_lease_ran_out_alone",
    ) {
        return;
    }
    let (primary, replica) = primary_and_replica(137, true).await;
    primary
        .sql(&format!(
            "{PROBE_ACCOUNT}; GRANT SELECT ON sakila.* TO 'sakila-probe'@'localhost'; \
             CREATE USER 'app'@'%' IDENTIFIED BY 'app'"
        ))
        .await;
    // A peer answers when its server does, even to refuse an account it does not have; a closed
    // port does not. What counts as an answer is under test here, not the fence's 1 s bound: a
    // loaded test machine may take longer than that to answer.
    let pinger = MySqlClient::new(Duration::from_secs(10), Duration::from_secs(10));
    let nobody = Credentials::new("sakila-fence-ping", "");
    assert!(pinger.answers(&replica.endpoint, &nobody).await);
    assert!(
        !pinger
            .answers(&Endpoint::new("127.0.0.1", free_port()), &nobody)
            .await
    );

    let admin = primary.admin().await;
    admin
        .record_cluster_identity("uid-fence", "db")
        .await
        .unwrap();
    // The only peer is an address nothing answers at (TEST-NET-1).
    let peers = vec!["192.0.2.1".to_string()];
    admin
        .renew_primary_lease(Duration::from_secs(30), &peers)
        .await
        .unwrap();
    let (cnf, _) = agent_files(&primary, Some("primary"));
    let local = MySqlClient::new(Duration::from_secs(2), Duration::from_secs(5));
    let login = sakila::exporter::read_login(&cnf).unwrap();
    let view = local
        .connect(&Endpoint::socket(login.socket.clone()), &login.credentials)
        .await
        .unwrap()
        .lease_view()
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(
        view,
        Some(sakila::mysql::LeaseView {
            super_read_only: false,
            semi_sync_source_enabled: true,
            expired: false,
            peers: peers.clone(),
        })
    );

    // A client's session, and root's, which the probe account may not kill (SYSTEM_USER).
    let mut app = mysql_async::Conn::new(
        mysql_async::OptsBuilder::default()
            .ip_or_hostname(primary.endpoint.host.clone())
            .tcp_port(primary.endpoint.port)
            .user(Some("app"))
            .pass(Some("app"))
            .prefer_socket(false),
    )
    .await
    .unwrap();
    let mut root_session = primary.conn().await;
    let fence = tokio::spawn(sakila::agent::fence::run(
        sakila::agent::fence::FenceFiles {
            defaults_file: cnf,
            recorded_password: primary.dir.path().join("no-record-yet"),
        },
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        primary.status().await.is_writable(),
        "a primary whose lease is valid is left alone"
    );
    admin
        .renew_primary_lease(Duration::from_millis(1), &peers)
        .await
        .unwrap();
    let ran_out = Instant::now();
    wait_until(
        "the primary fenced itself",
        Duration::from_secs(10),
        || async { !primary.status().await.is_writable() },
    )
    .await;
    println!(
        "fenced {:.1} s after the lease ran out",
        ran_out.elapsed().as_secs_f64()
    );
    fence.abort();
    assert!(
        app.query_drop("SELECT 1").await.is_err(),
        "the client was disconnected"
    );
    root_session
        .query_drop("SELECT 1")
        .await
        .expect("a session the probe account may not kill is left, and the fence goes on");
}

fn issued_tls(name: &str, at: jiff::Timestamp) -> BTreeMap<String, Vec<u8>> {
    let cluster: MySQLCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "mysql.sakila.dev/v1alpha1",
        "kind": "MySQLCluster",
        "metadata": {"name": name, "namespace": "shop", "uid": "u-1"},
        "spec": {"storage": {"size": "1Gi"}, "tls": {"extraNames": ["127.0.0.1"]}},
    }))
    .expect("a valid MySQLCluster");
    let valid = validate(&cluster, &OperatorSettings::default()).expect("valid");
    let issued = IssuedTls::complete(&valid, None, at).expect("issued");
    build_tls_secret(&valid, &issued)
        .data
        .expect("data")
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

/// Puts the certificate, its key and the CA into the datadir (`/var/lib/mysql` in the server's
/// view), as the kubelet puts a Secret's into a pod's TLS mount.
fn write_certificate(server: &Server, tls: &BTreeMap<String, Vec<u8>>) {
    for key in ["ca.crt", "tls.crt", "tls.key"] {
        let path = server.dir.path().join("data").join(key);
        std::fs::write(&path, &tls[key]).expect("write the TLS file");
    }
}

/// Has mysqld serve the certificate files, as a pod's my.cnf does.
async fn serve_certificate(server: &Server, tls: &BTreeMap<String, Vec<u8>>) {
    write_certificate(server, tls);
    server
        .sql(
            "SET GLOBAL ssl_ca = '/var/lib/mysql/ca.crt', \
             ssl_cert = '/var/lib/mysql/tls.crt', ssl_key = '/var/lib/mysql/tls.key'; \
             ALTER INSTANCE RELOAD TLS",
        )
        .await;
}

#[tokio::test]
async fn the_operator_and_replication_verify_the_clusters_certificate() {
    if !mysql_tests_enabled("the_operator_and_replication_verify_the_clusters_certificate") {
        return;
    }
    let (primary, replica) = primary_and_replica(141, false).await;
    let channel_tls = |status: InstanceStatus| status.replica.expect("a replica").channel_tls;
    assert_eq!(channel_tls(replica.status().await), ChannelTls::Unverified);
    let issued_at = jiff::Timestamp::now();
    let ours = issued_tls("db", issued_at);
    serve_certificate(&primary, &ours).await;
    serve_certificate(&replica, &ours).await;
    let identity = |tls: &BTreeMap<String, Vec<u8>>, name: &str| ServerIdentity {
        ca_pem: Arc::from(tls["ca.crt"].as_slice()),
        name: name.into(),
    };

    // The operator's session: the cluster's CA and the pod's stable name, at the IP address.
    let verified = primary
        .endpoint
        .clone()
        .verified(Some(identity(&ours, "db-0.db.shop.svc")));
    let session = client()
        .connect(&verified, &root())
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert!(session.status().await.is_ok());
    session.close().await;
    // Another cluster's CA, or a name the certificate does not cover, is refused.
    let theirs = issued_tls("other", issued_at);
    for (why, wrong) in [
        ("another CA", identity(&theirs, "db-0.db.shop.svc")),
        ("another name", identity(&ours, "db-0.other.shop.svc")),
    ] {
        let endpoint = primary.endpoint.clone().verified(Some(wrong));
        let refused = client().connect(&endpoint, &root()).await;
        assert!(refused.is_err(), "{why} was accepted");
    }

    // A renewed certificate in the files reaches mysqld with a reload, and the probe sees it.
    let not_after = |tls: &BTreeMap<String, Vec<u8>>| {
        sakila::resources::tls::read_certificate("tls.crt", &tls["tls.crt"])
            .unwrap()
            .not_after
    };
    assert_eq!(
        primary.status().await.served_certificate_not_after,
        Some(not_after(&ours))
    );
    // Issued an hour earlier, so that it runs out at another time (and is valid already).
    let renewed = issued_tls("db", issued_at - jiff::SignedDuration::from_hours(1));
    write_certificate(&primary, &renewed);
    assert_eq!(
        primary.status().await.served_certificate_not_after,
        Some(not_after(&ours)),
        "mysqld serves what it loaded until it reloads"
    );
    primary
        .admin()
        .await
        .reload_tls()
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(
        primary.status().await.served_certificate_not_after,
        Some(not_after(&renewed))
    );
    // The renewed certificate has its own CA here (a new cluster's material): serve ours again.
    write_certificate(&primary, &ours);
    primary.admin().await.reload_tls().await.unwrap();

    // Replication checks the source's certificate against the CA file on the replica.
    let mut source = source_of(&primary);
    source.tls = PeerTls::Verified {
        ca_path: "/var/lib/mysql/ca.crt".into(),
    };
    replica
        .admin()
        .await
        .configure_replica(&source)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let channel = replica
        .query_strings(
            "SELECT CONCAT(SSL_ALLOWED, ' ', SSL_VERIFY_SERVER_CERTIFICATE, ' ', SSL_CA_FILE) \
             FROM performance_schema.replication_connection_configuration",
        )
        .await;
    assert_eq!(channel, ["YES YES /var/lib/mysql/ca.crt"]);
    assert_eq!(channel_tls(replica.status().await), ChannelTls::Verified);
    primary
        .sql("CREATE DATABASE over_tls; CREATE TABLE over_tls.t (id INT PRIMARY KEY)")
        .await;
    let wanted = primary.status().await.gtid_executed;
    wait_until(
        "the replica applies over verified TLS",
        Duration::from_secs(60),
        || async {
            let status = replica.status().await;
            if let Some(e) = status
                .replica
                .as_ref()
                .and_then(|r| r.last_io_error.as_ref())
            {
                eprintln!("replica I/O error so far: {} {}", e.code, e.message);
            }
            status.gtid_executed == wanted
        },
    )
    .await;
    // The source's side of the replica's connection, its binlog dump session.
    let cipher = primary
        .query_strings(
            "SELECT VARIABLE_VALUE FROM performance_schema.status_by_thread s \
             JOIN performance_schema.threads t USING (THREAD_ID) \
             WHERE t.PROCESSLIST_COMMAND LIKE 'Binlog Dump%' AND s.VARIABLE_NAME = 'Ssl_cipher'",
        )
        .await;
    assert!(
        cipher.first().is_some_and(|c| !c.is_empty()),
        "the replication I/O thread's session is not encrypted: {cipher:?}"
    );
}

#[tokio::test]
async fn the_operators_account_has_exactly_the_documented_privileges() {
    if !mysql_tests_enabled("the_operators_account_has_exactly_the_documented_privileges") {
        return;
    }
    let server = Server::start(151).await;
    let mut grants = server
        .query_strings("SHOW GRANTS FOR 'sakila-operator'@'%'")
        .await;
    grants.sort();
    for grant in &grants {
        println!("{grant}");
    }
    let mut expected: Vec<String> = vec![
        "GRANT RELOAD, SHUTDOWN, PROCESS, REPLICATION CLIENT, CREATE USER ON *.* TO \
         `sakila-operator`@`%`"
            .into(),
        "GRANT SELECT ON `mysql`.`user` TO `sakila-operator`@`%`".into(),
        "GRANT CLONE_ADMIN,CONNECTION_ADMIN,PERSIST_RO_VARIABLES_ADMIN,REPLICATION_SLAVE_ADMIN,\
         SYSTEM_USER,SYSTEM_VARIABLES_ADMIN ON *.* TO `sakila-operator`@`%`"
            .into(),
        "GRANT SELECT ON `performance_schema`.* TO `sakila-operator`@`%`".into(),
        "GRANT INSERT ON `mysql`.`plugin` TO `sakila-operator`@`%`".into(),
        "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `sakila`.* TO `sakila-operator`@`%`"
            .into(),
    ];
    expected.sort();
    assert_eq!(grants, expected);
    assert!(
        grants
            .iter()
            .all(|g| !g.contains("ALL") && !g.contains("GRANT OPTION")),
        "{grants:?}"
    );
}

/// Reads the binary log stream into a segmenter until it is caught up; returns the segment of
/// everything committed: its bytes as uploaded, and what its seal said.
async fn archive_until_idle(
    server: &Server,
    after: &GtidSet,
) -> Option<(Vec<u8>, sakila::backup::archive::SegmentMeta)> {
    use futures::StreamExt;
    use sakila::backup::archive::{CatchUp, Segmenter, Step, is_heartbeat, piece_of};
    let mut stream = client()
        .binlog_stream(
            &server.endpoint,
            &root(),
            4_000_000_001,
            after,
            Duration::from_millis(200),
        )
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let mut segmenter = Segmenter::new();
    let mut catch_up = CatchUp::default();
    let mut bytes = Vec::new();
    let mut take = |steps: Vec<Step>| {
        for step in steps {
            match step {
                Step::Open(header) => bytes = header,
                Step::Write(event) => bytes.extend_from_slice(&event),
                Step::Seal(_) => panic!("sealed before the end"),
            }
        }
    };
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event or a heartbeat within 10 s")
            .expect("the stream goes on")
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        if catch_up.caught_up(&event) {
            break;
        }
        if is_heartbeat(&event) {
            continue;
        }
        let mut encoded = Vec::new();
        event
            .write(
                mysql_common::binlog::consts::BinlogVersion::Version4,
                &mut encoded,
            )
            .unwrap();
        take(
            segmenter
                .push(piece_of(&event), encoded, Instant::now())
                .unwrap(),
        );
    }
    assert!(!segmenter.in_transaction());
    segmenter
        .seal_if_due(Instant::now(), Duration::ZERO, 0)
        .map(|meta| (bytes, meta))
}

#[tokio::test]
async fn the_binlog_stream_archives_whole_transactions_and_resumes_after_a_gtid_set() {
    if !mysql_tests_enabled(
        "the_binlog_stream_archives_whole_transactions_and_resumes_after_a_gtid_set",
    ) {
        return;
    }
    let server = Server::start(31).await;
    server.admin().await.set_read_only(false).await.unwrap();
    server
        .sql(
            "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO app.t VALUES (1, 'a'), (2, 'b'); \
             BEGIN; INSERT INTO app.t VALUES (3, 'c'); UPDATE app.t SET v = 'z' WHERE id = 1; COMMIT",
        )
        .await;
    let first = server.status().await.gtid_executed;
    let (bytes, segment) = archive_until_idle(&server, &GtidSet::new())
        .await
        .expect("a segment of what was committed");
    assert_eq!(segment.gtid_set, first, "every transaction, each once");
    assert_eq!(segment.transactions, 4);
    assert!(segment.first_commit_us > 0 && segment.first_commit_us <= segment.last_commit_us);
    // A binary log file as mysqlbinlog and mysql_common read it: every event parses back.
    let events = mysql_common::binlog::BinlogFile::new(
        mysql_common::binlog::consts::BinlogVersion::Version4,
        &bytes[..],
    )
    .unwrap()
    .collect::<Result<Vec<_>, _>>()
    .unwrap();
    assert!(events.len() > 4 * 2, "{} events", events.len());

    // From the set archived so far, the stream sends only what came after.
    server.sql("INSERT INTO app.t VALUES (4, 'd')").await;
    let all = server.status().await.gtid_executed;
    let (_, next) = archive_until_idle(&server, &first)
        .await
        .expect("a segment of the new transaction");
    assert_eq!(next.gtid_set, all.difference(&first));
    assert_eq!(next.transactions, 1);
    assert!(
        archive_until_idle(&server, &all).await.is_none(),
        "nothing more"
    );
}

/// Whether `user` logs in to `server` with `password`.
async fn logs_in(server: &Server, user: &str, password: &str) -> bool {
    match client()
        .connect(&server.endpoint, &Credentials::new(user, password))
        .await
    {
        Ok(_) => true,
        Err(MySqlError::AccessDenied { .. }) => false,
        Err(e) => panic!("login of {user}: {}", chain(&e)),
    }
}

/// Sessions on both servers as the operator's account, once the replica has caught up, and the
/// history they then share.
async fn caught_up_as_operator(
    primary: &Server,
    replica: &Server,
) -> (MySqlSession, MySqlSession, GtidSet) {
    let (on_primary, on_replica) = (primary.admin().await, replica.admin().await);
    wait_until("the replica caught up", Duration::from_secs(30), || async {
        on_replica.status().await.unwrap().gtid_executed
            == on_primary.status().await.unwrap().gtid_executed
    })
    .await;
    let history = on_primary.status().await.unwrap().gtid_executed;
    (on_primary, on_replica, history)
}

#[tokio::test]
async fn dual_passwords_are_set_on_each_server_without_a_transaction_and_both_work_until_discarded()
{
    if !mysql_tests_enabled(
        "dual_passwords_are_set_on_each_server_without_a_transaction_and_both_work_until_discarded",
    ) {
        return;
    }
    let (primary, replica) = primary_and_replica(91, true).await;
    primary
        .sql("CREATE USER 'app'@'%' IDENTIFIED BY 'one'; CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY)")
        .await;
    // Everything below runs as the operator's narrowed account, as the rotation step does.
    let (on_primary, on_replica, history) = caught_up_as_operator(&primary, &replica).await;
    let both = [&on_primary, &on_replica];
    for admin in both {
        admin
            .retain_current_password("app", &["%", "localhost"], "two")
            .await
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        assert!(
            admin
                .users_with_secondary_password()
                .await
                .unwrap()
                .contains("app")
        );
    }
    for server in [&primary, &replica] {
        assert!(
            logs_in(server, "app", "one").await,
            "the old password still works"
        );
        assert!(
            logs_in(server, "app", "two").await,
            "the new password works"
        );
    }

    // The replication account: the channel switches before the old password goes.
    for admin in both {
        admin
            .retain_current_password(REPL_USER, &["%"], "repl-two")
            .await
            .unwrap();
    }
    on_replica
        .change_source_password("repl-two")
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    // The operator's own account, as the operator rotates it.
    for admin in both {
        admin
            .retain_current_password("sakila-operator", &["%"], "operator-two")
            .await
            .unwrap();
    }
    for user in ["app", REPL_USER, "sakila-operator"] {
        for admin in both {
            admin
                .discard_old_password(user, &["%", "localhost"])
                .await
                .unwrap_or_else(|e| panic!("{}", chain(&e)));
        }
    }
    for (server, admin) in [(&primary, &on_primary), (&replica, &on_replica)] {
        assert!(
            admin
                .users_with_secondary_password()
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            !logs_in(server, "app", "one").await,
            "the old password is gone"
        );
        assert!(logs_in(server, "app", "two").await);
        assert!(!logs_in(server, "sakila-operator", OPERATOR_PASSWORD).await);
        assert!(logs_in(server, "sakila-operator", "operator-two").await);
        assert_eq!(
            admin.status().await.unwrap().gtid_executed,
            history,
            "account statements on one server add no transaction"
        );
    }
    let replica_status = on_replica.status().await.unwrap();
    assert!(
        replica_status.super_read_only,
        "the replica is read-only again"
    );
    // The channel reconnects with the new password only: restart its receiver and replicate.
    on_replica.stop_replica_io().await.unwrap();
    on_replica.start_replica().await.unwrap();
    primary.sql("INSERT INTO shop.t VALUES (1)").await;
    wait_until("the row replicated", Duration::from_secs(30), || async {
        replica.query_strings("SELECT COUNT(*) FROM shop.t").await == vec!["1"]
    })
    .await;
    let status = on_replica
        .status()
        .await
        .unwrap()
        .replica
        .expect("replica status");
    assert!(status.last_io_error.is_none(), "{status:?}");
}

#[tokio::test]
async fn root_at_any_host_is_locked_and_unlocked_on_each_server_without_a_transaction() {
    if !mysql_tests_enabled(
        "root_at_any_host_is_locked_and_unlocked_on_each_server_without_a_transaction",
    ) {
        return;
    }
    let (primary, replica) = primary_and_replica(93, true).await;
    primary
        .sql("CREATE USER 'root'@'%' IDENTIFIED BY 'root-secret'; GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION")
        .await;
    // As the operator's narrowed account, as the root access step runs.
    let (on_primary, on_replica, history) = caught_up_as_operator(&primary, &replica).await;
    for admin in [&on_primary, &on_replica] {
        assert_eq!(admin.remote_root().await.unwrap(), RemoteRoot::Open);
        admin
            .lock_remote_root(true)
            .await
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        assert_eq!(admin.remote_root().await.unwrap(), RemoteRoot::Locked);
    }
    let locked = primary
        .query_strings("SELECT CONCAT(account_locked, ':', authentication_string <> '') FROM mysql.user WHERE User = 'root' AND Host = '%'")
        .await;
    assert_eq!(locked, vec!["Y:1"], "locked, with its password kept");
    for admin in [&on_primary, &on_replica] {
        admin.lock_remote_root(false).await.unwrap();
        assert_eq!(admin.remote_root().await.unwrap(), RemoteRoot::Open);
        assert_eq!(
            admin.status().await.unwrap().gtid_executed,
            history,
            "locking on one server adds no transaction"
        );
    }
    assert!(
        on_replica.status().await.unwrap().super_read_only,
        "the replica is read-only again"
    );
    let grants = primary
        .query_strings("SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = '''root''@''%''' AND IS_GRANTABLE = 'YES'")
        .await;
    assert_ne!(grants, vec!["0"], "its privileges are kept");

    // Dropped by hand on one server: seen as missing there, and locking it is a no-op.
    replica
        .sql("SET SESSION sql_log_bin = 0; SET GLOBAL super_read_only = OFF; DROP USER 'root'@'%'; SET GLOBAL super_read_only = ON")
        .await;
    assert_eq!(on_replica.remote_root().await.unwrap(), RemoteRoot::Missing);
    on_replica.lock_remote_root(true).await.unwrap();
    assert_eq!(on_replica.remote_root().await.unwrap(), RemoteRoot::Missing);
}
