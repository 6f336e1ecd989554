//! A recording fake of the SQL trait, for unit tests of the code that drives it: every call is
//! logged in order with where it went and its arguments, and any verb can be made to fail at
//! any endpoint. It keeps no state of a server beyond what a test scripts; tests assert on the
//! log, which is what the code under test decided to do.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::admin::{
    Account, CloneOutcome, ClonePoint, Credentials, Endpoint, InstanceStatus, LeaseView,
    MySqlAdmin, MySqlConnector, PeerTls, Plugin, RemoteRoot, ReplicationSource,
    SemiSyncSourceConfig, SemiSyncStatus, ServerMetrics, ServingState, TableCheck, UserChange,
    UserSpec,
};
use super::error::MySqlError;
use super::gtid::GtidSet;

/// One call made through a fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Where it went: an endpoint's `host:port`, or a pod's name for a fake of pod writes that
    /// shares the log.
    pub at: String,
    /// The method called, e.g. `set_read_only`.
    pub verb: &'static str,
    /// Its arguments, rendered; empty when it takes none.
    pub args: String,
}

impl Call {
    /// Builds a call, to compare with what was recorded.
    pub fn new(at: impl ToString, verb: &'static str, args: impl Into<String>) -> Self {
        Self {
            at: at.to_string(),
            verb,
            args: args.into(),
        }
    }
}

/// The calls made, in order. Clones share one log, so that the order between the SQL fake and
/// other fakes (pod writes) can be asserted too.
#[derive(Debug, Clone, Default)]
pub struct CallLog(Arc<Mutex<Vec<Call>>>);

impl CallLog {
    /// Appends a call.
    pub fn record(&self, at: impl ToString, verb: &'static str, args: impl Into<String>) {
        self.lock().push(Call::new(at, verb, args));
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Call>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How a scripted call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing answers at the address (`MySqlError::Connect`, which is unreachable).
    Unreachable,
    /// The statement did not finish in time (`MySqlError::Timeout`).
    Timeout,
    /// The server answered with an error (`MySqlError::Query`, a refusal).
    Refused,
}

impl Failure {
    fn error(self, verb: &str, at: &str) -> MySqlError {
        match self {
            Failure::Unreachable => MySqlError::Connect {
                endpoint: at.to_string(),
                source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            },
            Failure::Timeout => MySqlError::Timeout {
                action: verb.to_string(),
                endpoint: at.to_string(),
                after: Duration::from_secs(10),
            },
            Failure::Refused => MySqlError::Query {
                action: verb.to_string(),
                endpoint: at.to_string(),
                code: 1227,
                source: "scripted refusal".into(),
            },
        }
    }
}

/// Every verb of [`MySqlConnector`] and [`MySqlAdmin`], so that a misspelt verb in a script is
/// caught instead of silently never failing.
const VERBS: &[&str] = &[
    "connect",
    "status",
    "serving_state",
    "lease_view",
    "set_read_only",
    "kill_client_sessions",
    "set_global_variables",
    "renew_primary_lease",
    "shutdown",
    "ensure_user",
    "ensure_plugin",
    "configure_replica",
    "start_replica",
    "stop_replica_io",
    "fence_replica",
    "reset_replica_all",
    "enable_semi_sync_source",
    "disable_semi_sync_source",
    "enable_semi_sync_replica",
    "wait_for_gtid",
    "record_cluster_identity",
    "clone_from",
    "clone_to_directory",
    "clone_point",
    "set_passwords",
    "change_source_password",
    "retain_current_password",
    "discard_old_password",
    "users_with_secondary_password",
];

#[derive(Debug, Default)]
struct Script {
    failures: Vec<(String, &'static str, Failure)>,
    executed: HashMap<String, GtidSet>,
    never_applying: Vec<String>,
}

/// The fake connector; its sessions record into the same log and follow the same script.
#[derive(Debug, Clone, Default)]
pub struct FakeMySql {
    log: CallLog,
    script: Arc<Mutex<Script>>,
}

impl FakeMySql {
    /// A fake whose every call succeeds, recording into `log`.
    pub fn recording_into(log: CallLog) -> Self {
        Self {
            log,
            script: Arc::default(),
        }
    }

    /// The calls made so far.
    pub fn log(&self) -> &CallLog {
        &self.log
    }

    /// Makes every later call of `verb` at `at` fail (after recording it: it was attempted).
    pub fn fail(&self, at: &Endpoint, verb: &'static str, failure: Failure) {
        assert!(VERBS.contains(&verb), "the SQL trait has no verb {verb:?}");
        self.script().failures.push((at.to_string(), verb, failure));
    }

    /// What `status` at `at` reports as `gtid_executed` (empty unless scripted).
    pub fn set_executed(&self, at: &Endpoint, gtids: GtidSet) {
        self.script().executed.insert(at.to_string(), gtids);
    }

    /// Makes `wait_for_gtid` at `at` answer that the set was not applied in time.
    pub fn never_apply(&self, at: &Endpoint) {
        self.script().never_applying.push(at.to_string());
    }

    /// Records the call and fails it if the script says so.
    fn call(&self, at: &str, verb: &'static str, args: String) -> Result<(), MySqlError> {
        self.log.record(at, verb, args);
        let failure = self
            .script()
            .failures
            .iter()
            .find(|(where_, which, _)| where_ == at && *which == verb)
            .map(|(_, _, failure)| *failure);
        match failure {
            Some(failure) => Err(failure.error(verb, at)),
            None => Ok(()),
        }
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        self.script
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl MySqlConnector for FakeMySql {
    type Admin = FakeSession;

    async fn connect(
        &self,
        endpoint: &Endpoint,
        credentials: &Credentials,
    ) -> Result<FakeSession, MySqlError> {
        let at = endpoint.to_string();
        self.call(&at, "connect", format!("user={}", credentials.user))?;
        Ok(FakeSession {
            at,
            fake: self.clone(),
        })
    }

    /// Nothing is kept between fake sessions: the same as `connect`.
    async fn connect_kept(
        &self,
        endpoint: &Endpoint,
        credentials: &Credentials,
    ) -> Result<FakeSession, MySqlError> {
        self.connect(endpoint, credentials).await
    }
}

/// A session of [`FakeMySql`] with one endpoint.
#[derive(Debug)]
pub struct FakeSession {
    at: String,
    fake: FakeMySql,
}

impl FakeSession {
    fn call(&self, verb: &'static str, args: String) -> Result<(), MySqlError> {
        self.fake.call(&self.at, verb, args)
    }
}

impl MySqlAdmin for FakeSession {
    async fn status(&self) -> Result<InstanceStatus, MySqlError> {
        self.call("status", String::new())?;
        let executed = self.fake.script().executed.get(&self.at).cloned();
        Ok(InstanceStatus {
            server_uuid: "00000000-0000-0000-0000-000000000000".into(),
            server_id: 1,
            version: "9.7.0".into(),
            read_only: true,
            super_read_only: true,
            gtid_executed: executed.unwrap_or_default(),
            gtid_purged: GtidSet::default(),
            replica: None,
            semi_sync: SemiSyncStatus::default(),
            clone: None,
            cluster_identity: None,
            served_certificate_not_after: None,
        })
    }

    async fn server_metrics(&self) -> Result<ServerMetrics, MySqlError> {
        self.call("server_metrics", String::new())?;
        Ok(ServerMetrics::default())
    }

    async fn serving_state(&self) -> Result<ServingState, MySqlError> {
        self.call("serving_state", String::new())?;
        Ok(ServingState {
            super_read_only: true,
            replica: None,
        })
    }

    async fn lease_view(&self) -> Result<Option<LeaseView>, MySqlError> {
        self.call("lease_view", String::new())?;
        Ok(None)
    }

    async fn set_read_only(&self, read_only: bool) -> Result<(), MySqlError> {
        self.call("set_read_only", read_only.to_string())
    }

    async fn kill_client_sessions(&self, keep_users: &[&str]) -> Result<u32, MySqlError> {
        self.call("kill_client_sessions", format!("keep {keep_users:?}"))?;
        Ok(0)
    }

    async fn set_global_variables(
        &self,
        set: &[(String, String)],
        reset: &[String],
    ) -> Result<(), MySqlError> {
        self.call(
            "set_global_variables",
            format!("set {set:?} reset {reset:?}"),
        )
    }

    async fn renew_primary_lease(
        &self,
        valid_for: Duration,
        peers: &[String],
    ) -> Result<(), MySqlError> {
        self.call(
            "renew_primary_lease",
            format!("for {valid_for:?} peers {peers:?}"),
        )
    }

    async fn shutdown(&self) -> Result<(), MySqlError> {
        self.call("shutdown", String::new())
    }

    async fn ensure_user(&self, user: &UserSpec) -> Result<UserChange, MySqlError> {
        self.call(
            "ensure_user",
            format!("{}@{} {:?}", user.name, user.host, user.privileges),
        )?;
        Ok(UserChange::default())
    }

    async fn ensure_plugin(&self, plugin: Plugin) -> Result<(), MySqlError> {
        self.call("ensure_plugin", plugin.name().to_string())
    }

    async fn configure_replica(&self, source: &ReplicationSource) -> Result<(), MySqlError> {
        self.call(
            "configure_replica",
            format!(
                "source={} user={} tls {} retry every {:?} x{}",
                source.endpoint,
                source.credentials.user,
                source.tls,
                source.connect_retry,
                source.retry_count
            ),
        )
    }

    async fn start_replica(&self) -> Result<(), MySqlError> {
        self.call("start_replica", String::new())
    }

    async fn stop_replica_io(&self) -> Result<(), MySqlError> {
        self.call("stop_replica_io", String::new())
    }

    async fn fence_replica(&self) -> Result<(), MySqlError> {
        self.call("fence_replica", String::new())
    }

    async fn reload_tls(&self) -> Result<(), MySqlError> {
        self.call("reload_tls", String::new())
    }

    async fn change_source_password(&self, _password: &str) -> Result<(), MySqlError> {
        self.call("change_source_password", String::new())
    }

    async fn retain_current_password(
        &self,
        user: &str,
        hosts: &[&str],
        _password: &str,
    ) -> Result<(), MySqlError> {
        self.call(
            "retain_current_password",
            format!("{user}@{}", hosts.join(",")),
        )
    }

    async fn discard_old_password(&self, user: &str, hosts: &[&str]) -> Result<(), MySqlError> {
        self.call(
            "discard_old_password",
            format!("{user}@{}", hosts.join(",")),
        )
    }

    async fn users_with_secondary_password(&self) -> Result<BTreeSet<String>, MySqlError> {
        self.call("users_with_secondary_password", String::new())?;
        Ok(BTreeSet::new())
    }

    async fn remote_root(&self) -> Result<RemoteRoot, MySqlError> {
        self.call("remote_root", String::new())?;
        Ok(RemoteRoot::Open)
    }

    async fn lock_remote_root(&self, locked: bool) -> Result<(), MySqlError> {
        self.call("lock_remote_root", locked.to_string())
    }

    async fn reset_replica_all(&self) -> Result<(), MySqlError> {
        self.call("reset_replica_all", String::new())
    }

    async fn enable_semi_sync_source(
        &self,
        config: SemiSyncSourceConfig,
    ) -> Result<(), MySqlError> {
        self.call(
            "enable_semi_sync_source",
            format!(
                "wait for {} within {:?}",
                config.wait_for_replica_count, config.timeout
            ),
        )
    }

    async fn disable_semi_sync_source(&self) -> Result<(), MySqlError> {
        self.call("disable_semi_sync_source", String::new())
    }

    async fn enable_semi_sync_replica(&self) -> Result<(), MySqlError> {
        self.call("enable_semi_sync_replica", String::new())
    }

    async fn wait_for_gtid(&self, gtids: &GtidSet, timeout: Duration) -> Result<bool, MySqlError> {
        self.call("wait_for_gtid", format!("{gtids} within {timeout:?}"))?;
        Ok(!self.fake.script().never_applying.contains(&self.at))
    }

    async fn record_cluster_identity(
        &self,
        cluster_uid: &str,
        cluster_name: &str,
    ) -> Result<(), MySqlError> {
        self.call(
            "record_cluster_identity",
            format!("uid={cluster_uid} name={cluster_name}"),
        )
    }

    async fn clone_from(
        &self,
        donor: &Endpoint,
        credentials: &Credentials,
        tls: &PeerTls,
        timeout: Duration,
    ) -> Result<CloneOutcome, MySqlError> {
        self.call(
            "clone_from",
            format!(
                "donor={donor} user={} tls {tls} within {timeout:?}",
                credentials.user
            ),
        )?;
        Ok(CloneOutcome::Restarting)
    }

    async fn clone_to_directory(
        &self,
        donor: &Endpoint,
        credentials: &Credentials,
        tls: &PeerTls,
        directory: &str,
        timeout: Duration,
    ) -> Result<(), MySqlError> {
        self.call(
            "clone_to_directory",
            format!(
                "donor={donor} user={} tls {tls} into {directory} within {timeout:?}",
                credentials.user
            ),
        )
    }

    async fn set_passwords(&self, accounts: &[Account]) -> Result<(), MySqlError> {
        let names: Vec<String> = accounts
            .iter()
            .map(|a| format!("{}@{}", a.credentials.user, a.host))
            .collect();
        self.call("set_passwords", names.join(" "))
    }

    async fn check_tables(&self) -> Result<TableCheck, MySqlError> {
        self.call("check_tables", String::new())?;
        Ok(TableCheck::default())
    }

    async fn clone_point(&self) -> Result<ClonePoint, MySqlError> {
        self.call("clone_point", String::new())?;
        Ok(ClonePoint {
            gtid_executed: GtidSet::default(),
            binlog_file: "binlog.000001".into(),
            binlog_position: 4,
            server_version: "9.7.4".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_are_recorded_in_order_and_only_the_scripted_one_fails() {
        let fake = FakeMySql::default();
        let (one, two) = (
            Endpoint::new("10.0.0.1", 3306),
            Endpoint::new("10.0.0.2", 3306),
        );
        fake.fail(&two, "set_read_only", Failure::Timeout);
        let login = Credentials::new("op", "secret");
        let first = fake.connect(&one, &login).await.unwrap();
        let second = fake.connect(&two, &login).await.unwrap();
        first.set_read_only(true).await.unwrap();
        let refused = second.set_read_only(true).await.unwrap_err();
        assert!(matches!(refused, MySqlError::Timeout { .. }), "{refused:?}");
        assert_eq!(
            fake.log().calls(),
            [
                Call::new(&one, "connect", "user=op"),
                Call::new(&two, "connect", "user=op"),
                Call::new(&one, "set_read_only", "true"),
                Call::new(&two, "set_read_only", "true"),
            ]
        );
    }

    #[tokio::test]
    async fn status_reports_the_scripted_gtid_set_of_its_endpoint() {
        let fake = FakeMySql::default();
        let (one, two) = (
            Endpoint::new("10.0.0.1", 3306),
            Endpoint::new("10.0.0.2", 3306),
        );
        let gtids = GtidSet::parse("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5").unwrap();
        fake.set_executed(&one, gtids.clone());
        let login = Credentials::new("op", "secret");
        let first = fake.connect(&one, &login).await.unwrap();
        let second = fake.connect(&two, &login).await.unwrap();
        assert_eq!(first.status().await.unwrap().gtid_executed, gtids);
        assert!(second.status().await.unwrap().gtid_executed.is_empty());
    }

    #[test]
    #[should_panic(expected = "no verb")]
    fn a_misspelt_verb_in_a_script_is_caught() {
        FakeMySql::default().fail(&Endpoint::new("h", 1), "set_readonly", Failure::Refused);
    }
}
