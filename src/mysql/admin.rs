//! The one trait all SQL goes through, and the plain data it speaks.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::error::MySqlError;
use super::gtid::GtidSet;

/// Where a mysqld listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// DNS name or IP address; or, with port 0, the absolute path of a Unix socket.
    pub host: String,
    /// TCP port; 0 for a Unix socket.
    pub port: u16,
    /// The certificate the server must present; `None`: whatever it presents is taken (a
    /// server that does not serve the cluster's certificate yet).
    pub identity: Option<ServerIdentity>,
}

/// Who a server must prove to be over TLS: a certificate for `name` from the CA `ca_pem`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ServerIdentity {
    /// The CA's certificate, PEM.
    pub ca_pem: Arc<[u8]>,
    /// The name the certificate must cover; the endpoint's host may be an IP address.
    pub name: String,
}

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Builds an endpoint.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            identity: None,
        }
    }

    /// The same endpoint, whose server must prove `identity`.
    pub fn verified(mut self, identity: Option<ServerIdentity>) -> Self {
        self.identity = identity;
        self
    }

    /// mysqld's Unix socket at `path` (an absolute path), as a container beside it reaches it.
    pub fn socket(path: impl Into<String>) -> Self {
        Self::new(path, 0)
    }

    /// The socket path, when this endpoint is a Unix socket.
    pub fn socket_path(&self) -> Option<&str> {
        (self.port == 0 && self.host.starts_with('/')).then_some(self.host.as_str())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = self.socket_path() {
            write!(f, "{path}")
        } else if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A MySQL account's login; `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Account user name.
    pub user: String,
    /// Clear-text password.
    pub password: String,
}

impl Credentials {
    /// Builds credentials.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// An account the operator keeps in place, with global (`ON *.*`) privileges.
#[derive(Clone, PartialEq, Eq)]
pub struct UserSpec {
    /// User part of the account.
    pub name: String,
    /// Host part of the account, e.g. `%`.
    pub host: String,
    /// Clear-text password.
    pub password: String,
    /// Global privilege names, e.g. `REPLICATION SLAVE`, `BACKUP_ADMIN`.
    pub privileges: Vec<String>,
}

impl fmt::Debug for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSpec")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("password", &"<redacted>")
            .field("privileges", &self.privileges)
            .finish()
    }
}

/// What [`MySqlAdmin::ensure_user`] had to change; all false/empty means nothing
/// was written (and no GTID was generated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    /// The account did not exist and was created.
    pub created: bool,
    /// The password did not work and was reset.
    pub password_changed: bool,
    /// Privileges that were missing and were granted.
    pub granted: Vec<String>,
}

impl UserChange {
    /// True when nothing had to be written.
    pub fn is_noop(&self) -> bool {
        !self.created && !self.password_changed && self.granted.is_empty()
    }
}

/// The state of `root@'%'` on one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteRoot {
    Open,
    Locked,
    /// Dropped by hand: root logs in only inside the pod, and the operator cannot create the
    /// account again (it holds no `GRANT OPTION`).
    Missing,
}

/// The source a replica should follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationSource {
    /// The source's address as the replica's mysqld resolves it.
    pub endpoint: Endpoint,
    /// The replication account on the source.
    pub credentials: Credentials,
    /// How the replica checks the source's certificate.
    pub tls: PeerTls,
    /// Seconds between reconnection attempts of the I/O thread.
    pub connect_retry: Duration,
    /// Reconnection attempts before the I/O thread gives up.
    pub retry_count: u32,
}

/// How one instance checks another's certificate when it replicates or clones from it. Always
/// encrypted: every mysqld serves a certificate (its own self-signed one at least).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerTls {
    /// Encrypted, certificate not checked: the peer does not serve the cluster's certificate
    /// yet (a pod made before TLS), or the instance has no CA file to check it with.
    Unverified,
    /// The peer's certificate must come from the CA in the file `ca_path` (on the instance
    /// that connects) and cover the peer's host name.
    Verified { ca_path: String },
}

impl fmt::Display for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unverified => write!(f, "unverified"),
            Self::Verified { ca_path } => write!(f, "verified by {ca_path}"),
        }
    }
}

/// Lossless semi-synchronous settings for a primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemiSyncSourceConfig {
    /// Acknowledgements a commit waits for.
    pub wait_for_replica_count: u32,
    /// How long a commit waits before falling back to asynchronous replication;
    /// the operator uses a very long value so that this never happens silently.
    pub timeout: Duration,
}

/// Server plugins the operator relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plugin {
    /// `rpl_semi_sync_source` from `semisync_source.so`.
    SemiSyncSource,
    /// `rpl_semi_sync_replica` from `semisync_replica.so`.
    SemiSyncReplica,
    /// `clone` from `mysql_clone.so`.
    Clone,
}

impl Plugin {
    /// Every plugin, in install order.
    pub const ALL: [Plugin; 3] = [
        Plugin::SemiSyncSource,
        Plugin::SemiSyncReplica,
        Plugin::Clone,
    ];

    /// Name in `information_schema.PLUGINS`.
    pub fn name(self) -> &'static str {
        match self {
            Plugin::SemiSyncSource => "rpl_semi_sync_source",
            Plugin::SemiSyncReplica => "rpl_semi_sync_replica",
            Plugin::Clone => "clone",
        }
    }

    /// Shared library in the plugin directory.
    pub fn library(self) -> &'static str {
        match self {
            Plugin::SemiSyncSource => "semisync_source.so",
            Plugin::SemiSyncReplica => "semisync_replica.so",
            Plugin::Clone => "mysql_clone.so",
        }
    }
}

/// How a successful `CLONE INSTANCE` ended on the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneOutcome {
    /// The statement returned: mysqld had a supervisor and restarts itself.
    Restarting,
    /// mysqld has no supervisor (error 3707) and shut down; whatever runs it
    /// (in Kubernetes, the kubelet restarting the container) must start it again.
    ShutDown,
    /// The connection dropped as mysqld went down at the end of the clone;
    /// confirm with [`InstanceStatus::clone`] once it is back.
    ConnectionClosed,
}

/// One observation of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    /// `@@server_uuid`, lowercase.
    pub server_uuid: String,
    /// `@@server_id`.
    pub server_id: u32,
    /// `@@version`, e.g. `9.7.0`.
    pub version: String,
    /// `@@read_only`.
    pub read_only: bool,
    /// `@@super_read_only`.
    pub super_read_only: bool,
    /// `@@gtid_executed`.
    pub gtid_executed: GtidSet,
    /// `@@gtid_purged`.
    pub gtid_purged: GtidSet,
    /// The default replication channel, if one is configured.
    pub replica: Option<ReplicaStatus>,
    /// Semi-synchronous replication on both sides.
    pub semi_sync: SemiSyncStatus,
    /// The last clone operation, if the clone plugin is loaded and one ran.
    pub clone: Option<CloneStatus>,
    /// The UID of the cluster whose history this data directory holds (`sakila.cluster`, written
    /// as the first transaction of a cluster's history); `None` on an instance with no history.
    pub cluster_identity: Option<String>,
    /// When the certificate mysqld serves runs out (`Ssl_server_not_after`): which certificate
    /// it loaded, since a new one reaches it only with `ALTER INSTANCE RELOAD TLS`.
    pub served_certificate_not_after: Option<jiff::Timestamp>,
}

impl InstanceStatus {
    /// True when clients may write (both read-only flags off).
    pub fn is_writable(&self) -> bool {
        !self.read_only && !self.super_read_only
    }
}

/// State of a replication thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadState {
    /// Running (I/O thread: connected to the source).
    Running,
    /// I/O thread trying to connect.
    Connecting,
    /// Stopped.
    Stopped,
}

impl ThreadState {
    /// The state as the status reports it.
    pub const fn as_str(self) -> &'static str {
        match self {
            ThreadState::Running => "Running",
            ThreadState::Connecting => "Connecting",
            ThreadState::Stopped => "Stopped",
        }
    }
}

/// A replication thread's last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationError {
    /// MySQL error number.
    pub code: u32,
    /// MySQL's message.
    pub message: String,
}

/// The default replication channel (`SHOW REPLICA STATUS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// `Source_Host`.
    pub source_host: String,
    /// `Source_Port`.
    pub source_port: u16,
    /// `Replica_IO_Running`.
    pub io_thread: ThreadState,
    /// `Replica_SQL_Running`.
    pub sql_thread: ThreadState,
    /// `Last_IO_Errno` / `Last_IO_Error`.
    pub last_io_error: Option<ReplicationError>,
    /// `Last_SQL_Errno` / `Last_SQL_Error`.
    pub last_sql_error: Option<ReplicationError>,
    /// `Seconds_Behind_Source`; `None` when the SQL thread does not run.
    pub seconds_behind_source: Option<u64>,
    /// `Retrieved_Gtid_Set`: received into the relay log, maybe not applied yet.
    pub retrieved_gtid_set: GtidSet,
    /// `Auto_Position`.
    pub auto_position: bool,
    /// How the channel protects its connection to the source.
    pub channel_tls: ChannelTls,
}

/// A replication channel's TLS, from `Source_SSL_Allowed` and `Source_SSL_Verify_Server_Cert`;
/// ordered from least to most protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChannelTls {
    /// `SOURCE_SSL=0`: plain TCP (a channel configured before TLS).
    #[default]
    Plain,
    /// Encrypted, the source's certificate not checked.
    Unverified,
    /// Encrypted, the source's certificate checked against a CA and its name.
    Verified,
}

impl From<&PeerTls> for ChannelTls {
    fn from(tls: &PeerTls) -> Self {
        match tls {
            PeerTls::Unverified => Self::Unverified,
            PeerTls::Verified { .. } => Self::Verified,
        }
    }
}

impl ReplicaStatus {
    /// Both replication threads run.
    pub fn threads_running(&self) -> bool {
        self.io_thread == ThreadState::Running && self.sql_thread == ThreadState::Running
    }
}

/// Semi-synchronous replication as seen on one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SemiSyncStatus {
    /// `rpl_semi_sync_source` is loaded.
    pub source_plugin_loaded: bool,
    /// `rpl_semi_sync_replica` is loaded.
    pub replica_plugin_loaded: bool,
    /// `@@rpl_semi_sync_source_enabled`.
    pub source_enabled: bool,
    /// `Rpl_semi_sync_source_status`: commits currently wait for acknowledgements.
    pub source_active: bool,
    /// `Rpl_semi_sync_source_clients`: connected semi-sync replicas.
    pub source_clients: u32,
    /// `@@rpl_semi_sync_source_wait_for_replica_count`.
    pub wait_for_replica_count: Option<u32>,
    /// `@@rpl_semi_sync_source_timeout`.
    pub source_timeout: Option<Duration>,
    /// `@@rpl_semi_sync_source_wait_point`, e.g. `AFTER_SYNC`.
    pub wait_point: Option<String>,
    /// `@@rpl_semi_sync_replica_enabled`.
    pub replica_enabled: bool,
    /// `Rpl_semi_sync_replica_status`: the I/O thread acknowledges.
    pub replica_active: bool,
}

/// `performance_schema.clone_status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneStatus {
    /// `Not Started`, `In Progress`, `Completed` or `Failed`.
    pub state: String,
    /// `ERROR_NO`, 0 when none.
    pub error_code: i64,
    /// `ERROR_MESSAGE`.
    pub error_message: String,
    /// `SOURCE`, the donor's `host:port`.
    pub source: String,
}

/// An existing account by user and host, with the password it is to have; `Debug` never shows
/// the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub credentials: Credentials,
    pub host: String,
}

/// Whether one row of `CHECK TABLE`'s result says the table is damaged: an error, or a final
/// status other than OK (MyISAM-style tables say they are up to date).
pub fn check_row_fails(msg_type: &str, msg_text: &str) -> bool {
    match msg_type.to_ascii_lowercase().as_str() {
        "error" => true,
        "status" => !matches!(msg_text, "OK" | "Table is already up to date"),
        _ => false,
    }
}

/// What cloned data holds, as `clone_status` records it once a server has started on it: the
/// consistent point a backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClonePoint {
    /// `GTID_EXECUTED`: every transaction the copy contains.
    pub gtid_executed: GtidSet,
    /// `BINLOG_FILE`: the donor's binary log at the clone point (empty without binary logs).
    pub binlog_file: String,
    /// `BINLOG_POSITION` in that file.
    pub binlog_position: u64,
    /// The recipient's `@@version`, which is the donor's: a clone needs the same version.
    pub server_version: String,
}

/// What a pod's readiness is decided on (`agent::readiness`): read in one round trip per probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingState {
    /// `@@super_read_only`.
    pub super_read_only: bool,
    /// The default replication channel, if one is configured.
    pub replica: Option<ReplicaStatus>,
}

/// The primary's lease as the pod's self-fence reads it (`agent::fence`), with the instance's own
/// state, in one round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// `@@super_read_only`.
    pub super_read_only: bool,
    /// `@@rpl_semi_sync_source_enabled`: commits wait for replicas' acknowledgements.
    pub semi_sync_source_enabled: bool,
    /// The lease has run out (by the server's clock).
    pub expired: bool,
    /// The replicas' addresses and stable names the lease was renewed with.
    pub peers: Vec<String>,
}

/// What the exporter beside each mysqld reports: read in one round trip per scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerMetrics {
    /// `SHOW GLOBAL STATUS`, by variable name as MySQL spells it.
    pub global_status: Vec<(String, String)>,
    /// `@@read_only`.
    pub read_only: bool,
    /// `@@super_read_only`.
    pub super_read_only: bool,
    /// `@@max_connections`.
    pub max_connections: u64,
    /// `@@innodb_buffer_pool_size`, bytes.
    pub innodb_buffer_pool_size: u64,
    /// The default replication channel, if one is configured.
    pub replica: Option<ReplicaStatus>,
    /// `SHOW BINARY LOGS`: how many files the server keeps, and their total size in bytes.
    pub binlog_files: u64,
    /// Total size of the binary logs, bytes.
    pub binlog_bytes: u64,
}

/// Opens an administrative session on one instance.
pub trait MySqlConnector: Send + Sync {
    /// The session type; owned, so a long statement (a clone) can run in a background task.
    type Admin: MySqlAdmin + 'static;

    /// Connects and logs in; fails with an unreachable error or `AccessDenied`.
    fn connect(
        &self,
        endpoint: &Endpoint,
        credentials: &Credentials,
    ) -> impl Future<Output = Result<Self::Admin, MySqlError>> + Send;

    /// A session for what runs every round (the probe, the lease): on the connection the last
    /// such session with the same login left open, if any, else a new one; it is kept again
    /// when the session ends between statements. A kept connection the server closed
    /// meanwhile is replaced at its first use, so a kept session sees what a new one would.
    fn connect_kept(
        &self,
        endpoint: &Endpoint,
        credentials: &Credentials,
    ) -> impl Future<Output = Result<Self::Admin, MySqlError>> + Send;
}

/// Verbs the operator applies to one instance. One session, one statement at
/// a time; after a timeout or a lost connection every call fails and the
/// caller connects again.
pub trait MySqlAdmin: Send + Sync {
    /// One round of observation: identity, read-only flags, GTID sets,
    /// replication, semi-sync and clone state.
    fn status(&self) -> impl Future<Output = Result<InstanceStatus, MySqlError>> + Send;

    /// Reads the counters and states the exporter publishes; needs only `REPLICATION CLIENT`
    /// (the probe account's privileges).
    fn server_metrics(&self) -> impl Future<Output = Result<ServerMetrics, MySqlError>> + Send;

    /// Reads what the pod's readiness depends on (the read-only flag and the replication
    /// channel) in one round trip; needs only `REPLICATION CLIENT`.
    fn serving_state(&self) -> impl Future<Output = Result<ServingState, MySqlError>> + Send;

    /// Reads the primary's lease with the read-only flag and whether semi-sync is enabled as a
    /// source; `None` when no lease was ever written here. Fails where the semi-sync source
    /// plugin is not loaded.
    fn lease_view(&self) -> impl Future<Output = Result<Option<LeaseView>, MySqlError>> + Send;

    /// `false`: lift `super_read_only` and `read_only` (the primary).
    /// `true`: set `super_read_only` (which implies `read_only`). Not persisted:
    /// a restarted mysqld comes back read-only from its configuration.
    fn set_read_only(&self, read_only: bool)
    -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// Disconnects every client session except those of `keep_users` and the server's own
    /// threads; returns how many were killed. Run on a demoted primary, so that clients reconnect
    /// through the Services to the new one and no commit waits there for an acknowledgement. A
    /// session this account may not kill (an account with `SYSTEM_USER`) is left, not an error.
    fn kill_client_sessions(
        &self,
        keep_users: &[&str],
    ) -> impl Future<Output = Result<u32, MySqlError>> + Send;

    /// `SET GLOBAL` each `(variable, option-file value)` of `set`, then `SET GLOBAL v = DEFAULT`
    /// for each of `reset`, in order, stopping at the first the server refuses. Not persisted: a
    /// restarted mysqld reads the same values from its configuration.
    fn set_global_variables(
        &self,
        set: &[(String, String)],
        reset: &[String],
    ) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// Writes the primary's lease: it is valid for `valid_for` from now, and `peers` are the
    /// addresses of its replicas. The pod's self-fence (`fence.sh`) makes a writable primary whose
    /// lease expired read-only when none of the peers answers. Not binlogged: the lease is this
    /// instance's alone, never a transaction of the cluster's history.
    fn renew_primary_lease(
        &self,
        valid_for: std::time::Duration,
        peers: &[String],
    ) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// `SHUTDOWN`: mysqld stops, and its container restarts it (read-only, from its
    /// configuration). Client connections are closed before anything waiting is released.
    fn shutdown(&self) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// Creates the account, resets its password if it no longer logs in, and
    /// grants missing privileges; writes nothing when all is in place. Writes
    /// are replicated, so this runs on the writable primary only: on a
    /// read-only instance it fails with [`MySqlError::ReadOnly`].
    fn ensure_user(
        &self,
        user: &UserSpec,
    ) -> impl Future<Output = Result<UserChange, MySqlError>> + Send;

    /// Loads the plugin unless it is already active.
    fn ensure_plugin(&self, plugin: Plugin) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// Points the default channel at `source` with GTID auto-positioning and
    /// starts replication (`STOP REPLICA; CHANGE REPLICATION SOURCE ...; START REPLICA`).
    /// It also clears what [`MySqlAdmin::fence_replica`] recorded, once the channel no longer
    /// names the source it was fenced from: a restarted mysqld then resumes replication from
    /// `source` by itself (my.cnf has `skip_replica_start = OFF`).
    fn configure_replica(
        &self,
        source: &ReplicationSource,
    ) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// `START REPLICA`.
    fn start_replica(&self) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// The fence: `STOP REPLICA IO_THREAD`, so this replica acknowledges nothing more.
    fn stop_replica_io(&self) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// The failover fence, kept across restarts: records in the server's persisted
    /// configuration that replication must not start by itself (`SET PERSIST_ONLY
    /// skip_replica_start = ON`, read after my.cnf at the next start; a write to a table would
    /// be refused by `super_read_only`), then `STOP REPLICA IO_THREAD`, so this replica
    /// acknowledges nothing more to its source, now or after a restart.
    fn fence_replica(&self) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// `ALTER INSTANCE RELOAD TLS`: serve the certificate files as they are now, without a
    /// restart. A set of files mysqld cannot use is refused and the old one kept.
    fn reload_tls(&self) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// `STOP REPLICA IO_THREAD`, the channel's password changed to `password`, `START REPLICA
    /// IO_THREAD`: the replication account's new password, for the next connection to the source.
    /// Only the receiver restarts; the applier goes on.
    fn change_source_password(
        &self,
        password: &str,
    ) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// `ALTER USER ... IDENTIFIED BY password RETAIN CURRENT PASSWORD` for `user` at each of
    /// `hosts` that exists: the new password is the accounts' own, the old one still accepted.
    /// On this server only, not binlogged (a replica's `super_read_only` is lifted for it and
    /// set again): the caller runs it on every instance.
    fn retain_current_password(
        &self,
        user: &str,
        hosts: &[&str],
        password: &str,
    ) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// `ALTER USER ... DISCARD OLD PASSWORD` for `user` at each of `hosts` that exists, on this
    /// server only, as [`MySqlAdmin::retain_current_password`].
    fn discard_old_password(
        &self,
        user: &str,
        hosts: &[&str],
    ) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// The users one of whose accounts still accepts a retained old password.
    fn users_with_secondary_password(
        &self,
    ) -> impl Future<Output = Result<BTreeSet<String>, MySqlError>> + Send;

    /// Whether `root@'%'`, root's login from outside the pod, is open, locked or absent.
    fn remote_root(&self) -> impl Future<Output = Result<RemoteRoot, MySqlError>> + Send;

    /// Locks (or unlocks) `root@'%'` on this server only, as
    /// [`MySqlAdmin::retain_current_password`]: new logins as root from outside the pod are
    /// refused (or allowed again); sessions already open are not ended.
    fn lock_remote_root(&self, locked: bool)
    -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// `STOP REPLICA; RESET REPLICA ALL`: forget the source (on a new primary).
    fn reset_replica_all(&self) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// Loads the plugin if needed and turns on lossless semi-sync as a source
    /// (`AFTER_SYNC`, `wait_no_replica=ON`).
    fn enable_semi_sync_source(
        &self,
        config: SemiSyncSourceConfig,
    ) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// `rpl_semi_sync_source_enabled=OFF`.
    fn disable_semi_sync_source(&self) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// Loads the plugin if needed, turns on semi-sync as a replica and, if the
    /// I/O thread runs without acknowledging, restarts it so that it does.
    fn enable_semi_sync_replica(&self) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// `WAIT_FOR_EXECUTED_GTID_SET`: true once `gtids` are applied, false when
    /// `timeout` passes first.
    fn wait_for_gtid(
        &self,
        gtids: &GtidSet,
        timeout: Duration,
    ) -> impl Future<Output = Result<bool, MySqlError>> + Send;

    /// Records which cluster this data belongs to, in `sakila.cluster` (idempotent). Run once on
    /// a fresh primary: it is the first transaction of a cluster's history, so every later
    /// instance is seeded from data that names its cluster.
    fn record_cluster_identity(
        &self,
        cluster_uid: &str,
        cluster_name: &str,
    ) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// Replaces this instance's data with a copy of `donor`'s (the clone
    /// plugin must be loaded on both). On success mysqld goes down: see
    /// [`CloneOutcome`]. `credentials` need `BACKUP_ADMIN` on the donor; this
    /// session needs `CLONE_ADMIN`.
    fn clone_from(
        &self,
        donor: &Endpoint,
        credentials: &Credentials,
        tls: &PeerTls,
        timeout: Duration,
    ) -> impl Future<Output = Result<CloneOutcome, MySqlError>> + Send;

    /// Copies `donor`'s data into `directory`, a path on this server's host that must not exist,
    /// and leaves this server's own data alone (`CLONE INSTANCE ... DATA DIRECTORY`): how a
    /// backup is taken by a throwaway recipient. What the copy holds is known only once a server
    /// has started on it ([`MySqlAdmin::clone_point`]). `credentials` need `BACKUP_ADMIN` on the
    /// donor; this session needs `CLONE_ADMIN` and `BACKUP_ADMIN`.
    fn clone_to_directory(
        &self,
        donor: &Endpoint,
        credentials: &Credentials,
        tls: &PeerTls,
        directory: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// On a server started on cloned data: the clone point its recovery recorded in
    /// `clone_status` (the GTID set and the donor's binary log position the data holds).
    fn clone_point(&self) -> impl Future<Output = Result<ClonePoint, MySqlError>> + Send;

    /// On a server started without grant tables (`--skip-grant-tables`, as a restore starts the
    /// restored data): loads them, then gives each of `accounts` that exists its password,
    /// without binlogging, so the data's GTID set stays the backup's.
    fn set_passwords(
        &self,
        accounts: &[Account],
    ) -> impl Future<Output = Result<(), MySqlError>> + Send;

    /// `CHECK TABLE` on every base table outside the schemas MySQL generates
    /// (`information_schema`, `performance_schema`): a verification restore reads all the data.
    fn check_tables(&self) -> impl Future<Output = Result<TableCheck, MySqlError>> + Send;
}

/// What `CHECK TABLE` said of every table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableCheck {
    /// The tables checked.
    pub tables: u64,
    /// `schema.table: message` of each table that is not OK.
    pub failures: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_table_rows_fail_on_errors_and_on_a_final_status_that_is_not_ok() {
        let cases = [
            ("status", "OK", false),
            ("status", "Table is already up to date", false),
            ("info", "Found 2 rows", false),
            (
                "warning",
                "1 client is using or hasn't closed the table properly",
                false,
            ),
            ("Error", "Table 'shop.t' doesn't exist", true),
            ("status", "Corrupt", true),
            ("status", "Operation failed", true),
        ];
        for (msg_type, msg_text, fails) in cases {
            assert_eq!(
                check_row_fails(msg_type, msg_text),
                fails,
                "{msg_type}: {msg_text}"
            );
        }
    }

    #[test]
    fn debug_output_never_shows_passwords() {
        let credentials = Credentials::new("repl", "hunter2");
        let user = UserSpec {
            name: "repl".into(),
            host: "%".into(),
            password: "hunter2".into(),
            privileges: vec!["REPLICATION SLAVE".into()],
        };
        let source = ReplicationSource {
            endpoint: Endpoint::new("db-0", 3306),
            credentials: credentials.clone(),
            tls: PeerTls::Unverified,
            connect_retry: Duration::from_secs(1),
            retry_count: 1,
        };
        for text in [
            format!("{credentials:?}"),
            format!("{user:?}"),
            format!("{source:?}"),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("repl"), "{text}");
        }
    }

    #[test]
    fn endpoints_print_as_host_port_with_ipv6_in_brackets() {
        assert_eq!(Endpoint::new("db-0.db", 3306).to_string(), "db-0.db:3306");
        assert_eq!(Endpoint::new("::1", 3306).to_string(), "[::1]:3306");
    }

    #[test]
    fn a_user_change_with_nothing_done_is_a_noop() {
        assert!(UserChange::default().is_noop());
        let granted = UserChange {
            granted: vec!["CLONE_ADMIN".into()],
            ..UserChange::default()
        };
        assert!(!granted.is_noop());
    }
}
