//! The `mysql_async` implementation of the SQL trait; the only module that imports it.
//!
//! One `Conn` per session behind a mutex rather than a `Pool`: session state
//! (the `sql_mode` set at connect) must stay on the connection that set it,
//! and a pool would silently reconnect where the operator wants to see the
//! failure (after a timeout, or after a clone took mysqld down). The probe and
//! the lease alone reuse connections (`kept`), and see a failure all the same.

mod kept;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row, SslOpts, Value};
use tokio::sync::Mutex;

use super::admin::{
    self, Account, ChannelTls, CloneOutcome, ClonePoint, CloneStatus, Credentials, Endpoint,
    InstanceStatus, LeaseView, MySqlAdmin, MySqlConnector, PeerTls, Plugin, RemoteRoot,
    ReplicaStatus, ReplicationError, ReplicationSource, SemiSyncSourceConfig, SemiSyncStatus,
    ServerMetrics, ServingState, TableCheck, ThreadState, UserChange, UserSpec,
};
use super::error::MySqlError;
use super::gtid::GtidSet;
use super::sql;
use crate::resources::naming::LEASE_TABLE;
use kept::{KeepKey, Kept, KeptConnections, KnownTables};

/// `ER_ACCESS_DENIED_ERROR`.
const ER_ACCESS_DENIED: u16 = 1045;
/// `ER_OPTION_PREVENTS_STATEMENT`, e.g. "running with the --super-read-only option".
const ER_OPTION_PREVENTS_STATEMENT: u16 = 1290;
/// `ER_NO_SUCH_THREAD`: the statement ended by itself before the kill.
const ER_NO_SUCH_THREAD: u16 = 1094;
/// `ER_KILL_DENIED_ERROR`: the session belongs to an account this one may not kill (one with
/// `SYSTEM_USER`, which the probe account of the self-fence lacks).
const ER_KILL_DENIED: u16 = 1095;
/// "Restart server failed (mysqld is not managed by supervisor process)", after a clone.
const ER_RESTART_SERVER_FAILED: u16 = 3707;
/// `ER_NO_SUCH_TABLE` and `ER_BAD_DB_ERROR`: no `sakila.cluster`, so no recorded identity.
const ER_NO_SUCH_TABLE: u16 = 1146;
const ER_BAD_DB_ERROR: u16 = 1049;

/// Connects to MySQL over TCP with `mysql_async`.
#[derive(Debug, Clone)]
pub struct MySqlClient {
    settings: Settings,
    kept: KeptConnections,
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    connect_timeout: Duration,
    query_timeout: Duration,
    /// The connect timeout of kept sessions, and the bound of the probe's reads.
    probe_timeout: Duration,
    tls: bool,
}

impl MySqlClient {
    /// A client whose connects and statements each give up after the given time.
    pub fn new(connect_timeout: Duration, query_timeout: Duration) -> Self {
        Self {
            settings: Settings {
                connect_timeout,
                query_timeout,
                probe_timeout: connect_timeout,
                tls: false,
            },
            kept: KeptConnections::default(),
        }
    }

    /// Encrypts sessions to endpoints without a known identity too, without verifying the
    /// certificate they serve; an endpoint with an identity is always verified.
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.settings.tls = tls;
        self
    }

    /// Kept sessions (the probe, the lease) connect, and the probe reads, within `timeout`
    /// rather than the connect timeout: an instance that answers no sooner counts as down.
    pub fn with_probe_timeout(mut self, timeout: Duration) -> Self {
        self.settings.probe_timeout = timeout;
        self
    }

    /// How many connections are kept for the next probe or lease.
    pub fn kept_connections(&self) -> usize {
        self.kept.len()
    }
}

impl MySqlConnector for MySqlClient {
    type Admin = MySqlSession;

    async fn connect(
        &self,
        endpoint: &Endpoint,
        credentials: &Credentials,
    ) -> Result<MySqlSession, MySqlError> {
        let conn = open_prepared(self.settings, endpoint, credentials).await?;
        Ok(MySqlSession::new(
            self.settings,
            endpoint,
            credentials,
            Kept {
                conn,
                known: KnownTables::default(),
            },
            None,
        ))
    }

    async fn connect_kept(
        &self,
        endpoint: &Endpoint,
        credentials: &Credentials,
    ) -> Result<MySqlSession, MySqlError> {
        let key = KeepKey::new(endpoint, credentials);
        let settings = Settings {
            connect_timeout: self.settings.probe_timeout,
            ..self.settings
        };
        let (kept, reused) = match self.kept.take(&key) {
            Some(kept) => (kept, true),
            None => {
                let conn = open_prepared(settings, endpoint, credentials).await?;
                let known = KnownTables::default();
                (Kept { conn, known }, false)
            }
        };
        let session = MySqlSession::new(
            settings,
            endpoint,
            credentials,
            kept,
            Some((self.kept.clone(), key)),
        );
        session.reused.store(reused, Ordering::Relaxed);
        Ok(session)
    }
}

impl MySqlClient {
    /// Whether a server answers at `endpoint` within the connect timeout, as `mysqladmin ping`
    /// counts it: logged in, or refused by the server itself (access denied, or any error it
    /// sent); not when nothing answered, or no connection could be made.
    pub async fn answers(&self, endpoint: &Endpoint, credentials: &Credentials) -> bool {
        match open(self.settings, endpoint, credentials).await {
            Ok(_) | Err(MySqlError::AccessDenied { .. }) => true,
            Err(MySqlError::Connect { source, .. }) => source
                .downcast_ref::<mysql_async::Error>()
                .is_some_and(server_answered),
            Err(_) => false,
        }
    }
}

/// Whether the error came from a server that answered: an error it sent, or an authentication
/// method it asked for that this client does not speak. For an account it does not have, MySQL
/// 9.7 answers now with an error, now by switching to a plugin such as `sha256_password`
/// (seen in the integration test, one run in two): both are a live server.
fn server_answered(error: &mysql_async::Error) -> bool {
    matches!(
        error,
        mysql_async::Error::Server(_)
            | mysql_async::Error::Driver(
                mysql_async::DriverError::UnknownAuthPlugin { .. }
                    | mysql_async::DriverError::CleartextPluginDisabled
            )
    )
}

/// A binary log stream, as a replica reads it (`COM_BINLOG_DUMP_GTID`).
pub type BinlogStream = mysql_async::BinlogStream;

impl MySqlClient {
    /// The binary log of `endpoint` from the first transaction not in `after`, with a heartbeat
    /// event every `heartbeat` while there is nothing to send (so a quiet stream is told from a
    /// dead one). `server_id` must differ from every instance's.
    pub async fn binlog_stream(
        &self,
        endpoint: &Endpoint,
        credentials: &Credentials,
        server_id: u32,
        after: &GtidSet,
        heartbeat: Duration,
    ) -> Result<BinlogStream, MySqlError> {
        let mut conn = open(self.settings, endpoint, credentials).await?;
        conn.query_drop(sql::binlog_dump_session(heartbeat))
            .await
            .map_err(|e| driver_error(endpoint, "prepare the binary log dump", e))?;
        let request = mysql_async::BinlogStreamRequest::new(server_id)
            .with_gtid()
            .with_gtid_set(dump_sids(after));
        match tokio::time::timeout(self.settings.query_timeout, conn.get_binlog_stream(request))
            .await
        {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(driver_error(endpoint, "request the binary log", e)),
            Err(_) => Err(MySqlError::Timeout {
                action: "request the binary log".to_owned(),
                endpoint: endpoint.to_string(),
                after: self.settings.query_timeout,
            }),
        }
    }
}

/// A GTID set as the dump request carries it (intervals end-exclusive there).
fn dump_sids(set: &GtidSet) -> Vec<mysql_async::Sid<'static>> {
    set.sources()
        .filter_map(|source| {
            let uuid = parse_uuid_bytes(&source.uuid)?;
            let intervals = set
                .intervals(source)
                .iter()
                .map(|i| mysql_async::GnoInterval::new(i.start, i.end + 1))
                .collect();
            let sid = mysql_async::Sid::new(uuid).with_intervals(intervals);
            Some(match &source.tag {
                Some(tag) => sid.with_tag(mysql_common::packets::Tag::try_from(tag.clone()).ok()?),
                None => sid,
            })
        })
        .collect()
}

/// The 16 bytes of a UUID in its text form.
fn parse_uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    let mut bytes = [0u8; 16];
    if digits.len() != 32 {
        return None;
    }
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(bytes)
}

/// Opens a connection and makes it match what `sql.rs` assumes: backslash escapes on.
async fn open_prepared(
    settings: Settings,
    endpoint: &Endpoint,
    credentials: &Credentials,
) -> Result<Conn, MySqlError> {
    const ACTION: &str = "prepare the session";
    let mut conn = open(settings, endpoint, credentials).await?;
    let prepare = async {
        let mode: Option<String> = conn.query_first("SELECT @@SESSION.sql_mode").await?;
        let mode = mode.unwrap_or_default();
        if mode
            .split(',')
            .any(|m| m.eq_ignore_ascii_case("NO_BACKSLASH_ESCAPES"))
        {
            let kept: Vec<&str> = mode
                .split(',')
                .filter(|m| !m.eq_ignore_ascii_case("NO_BACKSLASH_ESCAPES"))
                .collect();
            conn.exec_drop("SET SESSION sql_mode = ?", (kept.join(","),))
                .await?;
        }
        Ok(())
    };
    match tokio::time::timeout(settings.query_timeout, prepare).await {
        Ok(Ok(())) => Ok(conn),
        Ok(Err(e)) => Err(driver_error(endpoint, ACTION, e)),
        Err(_) => Err(MySqlError::Timeout {
            action: ACTION.to_owned(),
            endpoint: endpoint.to_string(),
            after: settings.query_timeout,
        }),
    }
}

async fn open(
    settings: Settings,
    endpoint: &Endpoint,
    credentials: &Credentials,
) -> Result<Conn, MySqlError> {
    let mut opts = OptsBuilder::default()
        .user(Some(credentials.user.clone()))
        .pass(Some(credentials.password.clone()))
        .stmt_cache_size(0);
    opts = match endpoint.socket_path() {
        Some(path) => opts.socket(Some(path)),
        None => opts
            .ip_or_hostname(endpoint.host.clone())
            .tcp_port(endpoint.port)
            // mysql_async would otherwise switch to the server's unix socket when
            // the host is local, which is not ours to reach from another container.
            .prefer_socket(false)
            .tcp_nodelay(true),
    };
    if let Some(identity) = &endpoint.identity {
        // Only the cluster's CA, and the pod's stable name rather than the IP connected to.
        opts = opts.ssl_opts(
            SslOpts::default()
                .with_root_certs(vec![identity.ca_pem.to_vec().into()])
                .with_disable_built_in_roots(true)
                .with_danger_tls_hostname_override(Some(identity.name.clone())),
        );
    } else if settings.tls {
        opts = opts.ssl_opts(
            SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        );
    }
    match tokio::time::timeout(settings.connect_timeout, Conn::new(opts)).await {
        Err(_) => Err(MySqlError::ConnectTimeout {
            endpoint: endpoint.to_string(),
            after: settings.connect_timeout,
        }),
        Ok(Err(mysql_async::Error::Server(e))) if e.code == ER_ACCESS_DENIED => {
            Err(MySqlError::AccessDenied {
                endpoint: endpoint.to_string(),
                user: credentials.user.clone(),
                source: Box::new(e),
            })
        }
        Ok(Err(e)) => Err(MySqlError::Connect {
            endpoint: endpoint.to_string(),
            source: Box::new(e),
        }),
        Ok(Ok(conn)) => Ok(conn),
    }
}

/// An administrative session on one instance.
pub struct MySqlSession {
    endpoint: Endpoint,
    /// Kept to kill a timed-out statement from a second connection.
    credentials: Credentials,
    settings: Settings,
    /// `None` once the connection broke or was abandoned after a timeout.
    conn: Mutex<Option<Conn>>,
    /// What the connection knows of its server's tables, kept with it.
    known: std::sync::Mutex<KnownTables>,
    /// Set while a statement runs: a session dropped meanwhile (its caller stopped waiting)
    /// leaves its connection in the middle of the protocol, never to be kept.
    in_flight: AtomicBool,
    /// The connection was kept from an earlier session and no statement has run on it yet.
    reused: AtomicBool,
    /// Where the connection goes back when the session ends in good order: a session of
    /// `connect_kept`.
    keep: Option<(KeptConnections, KeepKey)>,
}

impl std::fmt::Debug for MySqlSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlSession")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

type DriverFuture<'c, T> = Pin<Box<dyn Future<Output = mysql_async::Result<T>> + Send + 'c>>;

/// What a statement that outlived its time leaves behind.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnTimeout {
    /// The statement may change the server later (a blocked `SET GLOBAL super_read_only` would
    /// apply minutes later): kill it from a second connection.
    Kill,
    /// A read: let it end by itself, and spare the second connection (which a partition would
    /// only stall).
    LetFinish,
}

impl MySqlSession {
    fn new(
        settings: Settings,
        endpoint: &Endpoint,
        credentials: &Credentials,
        kept: Kept,
        keep: Option<(KeptConnections, KeepKey)>,
    ) -> Self {
        Self {
            endpoint: endpoint.clone(),
            credentials: credentials.clone(),
            settings,
            conn: Mutex::new(Some(kept.conn)),
            known: std::sync::Mutex::new(kept.known),
            in_flight: AtomicBool::new(false),
            reused: AtomicBool::new(false),
            keep,
        }
    }

    /// The instance this session talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Closes the connection politely (otherwise it is closed in the background on drop, or
    /// kept for the next session of `connect_kept`).
    pub async fn close(mut self) {
        if let Some(conn) = self.conn.get_mut().take() {
            let _ = tokio::time::timeout(self.settings.query_timeout, conn.disconnect()).await;
        }
    }

    fn known(&self) -> KnownTables {
        *self
            .known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set_known(&self, known: KnownTables) {
        *self
            .known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = known;
    }

    /// Runs `attempt`, and once more on a new connection if it found the kept connection this
    /// session began with closed by the server (a restart, an idle timeout): a connection kept
    /// from an earlier round says nothing about the server now. A new connection refused, or
    /// one that does not answer in time, is the answer.
    async fn on_live_connection<T, Fut>(&self, attempt: impl Fn() -> Fut) -> Result<T, MySqlError>
    where
        Fut: Future<Output = Result<T, MySqlError>>,
    {
        let reused = self.reused.swap(false, Ordering::Relaxed);
        match attempt().await {
            Err(MySqlError::ConnectionLost { .. }) if reused => {
                let conn = open_prepared(self.settings, &self.endpoint, &self.credentials).await?;
                *self.conn.lock().await = Some(conn);
                self.set_known(KnownTables::default());
                attempt().await
            }
            result => result,
        }
    }

    /// Drops the connection: what it was left with cannot be trusted (a failed statement of
    /// several that change session state).
    async fn abandon(&self) {
        *self.conn.lock().await = None;
    }

    /// Runs one driver operation under `after`, mapping its errors and
    /// abandoning the connection when it can no longer be trusted.
    async fn run<T, F>(&self, action: &str, after: Duration, op: F) -> Result<T, MySqlError>
    where
        T: Send,
        F: for<'c> FnOnce(&'c mut Conn) -> DriverFuture<'c, T> + Send,
    {
        self.run_with(action, after, OnTimeout::Kill, op).await
    }

    async fn run_with<T, F>(
        &self,
        action: &str,
        after: Duration,
        on_timeout: OnTimeout,
        op: F,
    ) -> Result<T, MySqlError>
    where
        T: Send,
        F: for<'c> FnOnce(&'c mut Conn) -> DriverFuture<'c, T> + Send,
    {
        let mut slot = self.conn.lock().await;
        let Some(conn) = slot.as_mut() else {
            return Err(MySqlError::ConnectionLost {
                action: action.to_owned(),
                endpoint: self.endpoint.to_string(),
                source: "the session was abandoned after an earlier failure".into(),
            });
        };
        self.in_flight.store(true, Ordering::Relaxed);
        let outcome = tokio::time::timeout(after, op(conn)).await;
        self.in_flight.store(false, Ordering::Relaxed);
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(mysql_async::Error::Server(e))) => Err(server_error(&self.endpoint, action, e)),
            Ok(Err(e)) => {
                // I/O or protocol trouble: the connection is gone or unusable.
                *slot = None;
                Err(MySqlError::ConnectionLost {
                    action: action.to_owned(),
                    endpoint: self.endpoint.to_string(),
                    source: Box::new(e),
                })
            }
            Err(_) => {
                // The protocol state is unknown mid-result: never reuse this connection.
                let id = slot.as_ref().map(Conn::id);
                *slot = None;
                if let (Some(id), OnTimeout::Kill) = (id, on_timeout) {
                    self.kill_connection(id).await;
                }
                Err(MySqlError::Timeout {
                    action: action.to_owned(),
                    endpoint: self.endpoint.to_string(),
                    after,
                })
            }
        }
    }

    /// Best effort: a failure is logged, the caller reports the timeout anyway.
    async fn kill_connection(&self, id: u32) {
        let killed = async {
            let mut conn = open(self.settings, &self.endpoint, &self.credentials).await?;
            let result = tokio::time::timeout(
                self.settings.query_timeout,
                conn.query_drop(format!("KILL CONNECTION {id}")),
            )
            .await;
            let _ = conn.disconnect().await;
            match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(mysql_async::Error::Server(e))) if e.code == ER_NO_SUCH_THREAD => Ok(()),
                Ok(Err(e)) => Err(driver_error(
                    &self.endpoint,
                    "kill a timed-out statement",
                    e,
                )),
                Err(_) => Err(MySqlError::Timeout {
                    action: "kill a timed-out statement".to_owned(),
                    endpoint: self.endpoint.to_string(),
                    after: self.settings.query_timeout,
                }),
            }
        };
        if let Err(e) = killed.await {
            tracing::warn!(endpoint = %self.endpoint, connection_id = id, error = %e,
                "failed to kill a timed-out statement; it may still run on the server");
        }
    }

    /// Runs an account statement on this server only: not binlogged, and on a replica with
    /// `super_read_only` lifted for it (`read_only` stays on, which holds clients off; the
    /// operator's `CONNECTION_ADMIN` passes it) and set again, whatever the statement did.
    ///
    /// Not replicated on purpose: a binlogged account statement holds mysqld's account lock
    /// while its commit waits for a replica's acknowledgement, and a replica reconnecting must
    /// log in under that lock, so a replica connection lost at that moment stalls every login
    /// until the statement is killed, which needs a login too. Seen against real mysqld: the
    /// integration test stalled for its whole statement timeout.
    async fn alter_account_here(&self, action: &str, statement: String) -> Result<(), MySqlError> {
        self.query_drop(action, "SET SESSION sql_log_bin = 0".into())
            .await?;
        let lifted = self
            .query_rows(action, "SELECT @@global.super_read_only")
            .await?
            .into_iter()
            .next()
            .and_then(|row| mysql_async::from_row_opt::<(i64,)>(row).ok())
            .is_some_and(|(on,)| on == 1);
        if lifted {
            self.query_drop(action, "SET GLOBAL super_read_only = OFF".into())
                .await?;
        }
        let altered = self.query_drop(action, statement).await;
        let restored = if lifted {
            self.query_drop(action, "SET GLOBAL super_read_only = ON".into())
                .await
        } else {
            Ok(())
        };
        let logged = self
            .query_drop(action, "SET SESSION sql_log_bin = 1".into())
            .await;
        altered.and(restored).and(logged)
    }

    async fn query_drop(&self, action: &str, statement: String) -> Result<(), MySqlError> {
        self.run(action, self.settings.query_timeout, move |c| {
            Box::pin(c.query_drop(statement))
        })
        .await
    }

    async fn exec_drop(
        &self,
        action: &str,
        statement: &'static str,
        params: Vec<Value>,
    ) -> Result<(), MySqlError> {
        self.run(action, self.settings.query_timeout, move |c| {
            Box::pin(c.exec_drop(statement, params))
        })
        .await
    }

    async fn query_rows(
        &self,
        action: &str,
        statement: &'static str,
    ) -> Result<Vec<Row>, MySqlError> {
        self.run(action, self.settings.query_timeout, move |c| {
            Box::pin(c.query(statement))
        })
        .await
    }

    async fn exec_rows(
        &self,
        action: &str,
        statement: &'static str,
        params: Vec<Value>,
    ) -> Result<Vec<Row>, MySqlError> {
        self.run(action, self.settings.query_timeout, move |c| {
            Box::pin(c.exec(statement, params))
        })
        .await
    }

    /// Runs several statements in one round trip and returns each one's rows; a read, given
    /// the session's connect timeout (a kept session's is the probe timeout): an instance that
    /// does not answer as soon is as unreachable as one that cannot be connected to.
    async fn query_sets(
        &self,
        action: &str,
        statements: String,
    ) -> Result<Vec<Vec<Row>>, MySqlError> {
        let after = self.settings.connect_timeout;
        self.run_with(action, after, OnTimeout::LetFinish, move |c| {
            Box::pin(async move {
                let mut result = c.query_iter(statements).await?;
                let mut sets = Vec::new();
                while !result.is_empty() {
                    sets.push(result.collect::<Row>().await?);
                }
                Ok(sets)
            })
        })
        .await
    }

    fn parse_error(&self, what: &str, detail: impl Into<String>) -> MySqlError {
        MySqlError::Parse {
            what: what.to_owned(),
            endpoint: self.endpoint.to_string(),
            detail: detail.into(),
        }
    }

    fn gtid_set(&self, text: Option<String>) -> Result<GtidSet, MySqlError> {
        GtidSet::parse(text.as_deref().unwrap_or_default()).map_err(|source| MySqlError::Gtid {
            endpoint: self.endpoint.to_string(),
            source,
        })
    }

    /// The probe: every observation of `status` in one round trip. Reads whose tables may
    /// be missing join it only once this connection has seen the table (an error would cut the
    /// round trip short); until then they follow it, one each.
    async fn probe(&self) -> Result<InstanceStatus, MySqlError> {
        const ACTION: &str = "observe the instance";
        let mut known = self.known();
        let sets = match self.query_sets(ACTION, probe_statements(known)).await {
            // A table seen before is gone (dropped by hand): start learning again.
            Err(MySqlError::Query { code, .. })
                if missing_table(code) && known != KnownTables::default() =>
            {
                known = KnownTables::default();
                self.query_sets(ACTION, probe_statements(known)).await?
            }
            sets => sets?,
        };
        let mut sets = sets.into_iter();
        let mut next = || sets.next().unwrap_or_default();
        let mut status = self.parse_server_variables(&next())?;
        status.replica = self.parse_replica_status(&next())?;
        let plugins = parse_plugins(&next());
        status.semi_sync = self.parse_semi_sync(&plugins, &next())?;
        let clone_rows = known.clone_status.then(&mut next);
        let identity_rows = known.cluster_identity.then(&mut next);
        if plugins.contains(&Plugin::Clone) {
            let rows = match clone_rows {
                Some(rows) => rows,
                None => self.query_rows("read clone status", CLONE_STATUS).await?,
            };
            known.clone_status = true;
            status.clone = parse_clone_status(&rows);
        }
        // An empty instance holds no history, so no identity: spare the read.
        if !status.gtid_executed.is_empty() {
            status.cluster_identity = match identity_rows {
                Some(rows) => first_text(&rows),
                None => {
                    let identity = self.cluster_identity().await?;
                    known.cluster_identity = identity.is_some();
                    identity
                }
            };
        }
        self.set_known(known);
        Ok(status)
    }

    async fn active_plugins(&self) -> Result<Vec<Plugin>, MySqlError> {
        let rows = self.query_rows("list plugins", ACTIVE_PLUGINS).await?;
        Ok(parse_plugins(&rows))
    }

    async fn semi_sync_status(&self, plugins: &[Plugin]) -> Result<SemiSyncStatus, MySqlError> {
        let rows = self
            .query_rows("read semi-sync state", SEMI_SYNC_STATE)
            .await?;
        self.parse_semi_sync(plugins, &rows)
    }

    fn parse_server_variables(&self, rows: &[Row]) -> Result<InstanceStatus, MySqlError> {
        let row = rows
            .first()
            .ok_or_else(|| self.parse_error("server variables", "no row returned"))?;
        let field = |i: usize| row.as_ref(i).and_then(text);
        let flag = |i: usize, name: &str| -> Result<bool, MySqlError> {
            match field(i).as_deref() {
                Some("1") => Ok(true),
                Some("0") => Ok(false),
                other => Err(self.parse_error(name, format!("unexpected value {other:?}"))),
            }
        };
        let server_id = field(1)
            .ok_or_else(|| self.parse_error("@@server_id", "NULL"))?
            .parse::<u32>()
            .map_err(|e| self.parse_error("@@server_id", e.to_string()))?;
        Ok(InstanceStatus {
            server_uuid: field(0)
                .ok_or_else(|| self.parse_error("@@server_uuid", "NULL"))?
                .to_ascii_lowercase(),
            server_id,
            version: field(2).unwrap_or_default(),
            read_only: flag(3, "@@read_only")?,
            super_read_only: flag(4, "@@super_read_only")?,
            gtid_executed: self.gtid_set(field(5))?,
            gtid_purged: self.gtid_set(field(6))?,
            replica: None,
            semi_sync: SemiSyncStatus::default(),
            clone: None,
            cluster_identity: None,
            served_certificate_not_after: field(7).as_deref().and_then(parse_openssl_time),
        })
    }

    fn parse_replica_status(&self, rows: &[Row]) -> Result<Option<ReplicaStatus>, MySqlError> {
        let Some(row) = rows
            .iter()
            .find(|r| column_text(r, "Channel_Name").is_none_or(|c| c.is_empty()))
        else {
            return Ok(None);
        };
        let thread = |name: &str| -> Result<ThreadState, MySqlError> {
            match column_text(row, name).as_deref() {
                Some("Yes") => Ok(ThreadState::Running),
                Some("Connecting") => Ok(ThreadState::Connecting),
                Some("No") | None => Ok(ThreadState::Stopped),
                Some(other) => Err(self.parse_error(name, format!("unexpected value {other:?}"))),
            }
        };
        let error = |code: &str, message: &str| -> Option<ReplicationError> {
            let code = column_text(row, code)?.parse::<u32>().ok()?;
            (code != 0).then(|| ReplicationError {
                code,
                message: column_text(row, message).unwrap_or_default(),
            })
        };
        let number = |name: &str| -> Result<Option<u64>, MySqlError> {
            column_text(row, name)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|e| self.parse_error(name, e.to_string()))
                })
                .transpose()
        };
        let source_port = number("Source_Port")?.unwrap_or_default();
        Ok(Some(ReplicaStatus {
            source_host: column_text(row, "Source_Host").unwrap_or_default(),
            source_port: u16::try_from(source_port)
                .map_err(|e| self.parse_error("Source_Port", e.to_string()))?,
            io_thread: thread("Replica_IO_Running")?,
            sql_thread: thread("Replica_SQL_Running")?,
            last_io_error: error("Last_IO_Errno", "Last_IO_Error"),
            last_sql_error: error("Last_SQL_Errno", "Last_SQL_Error"),
            seconds_behind_source: number("Seconds_Behind_Source")?,
            retrieved_gtid_set: self.gtid_set(column_text(row, "Retrieved_Gtid_Set"))?,
            auto_position: column_text(row, "Auto_Position").as_deref() == Some("1"),
            channel_tls: match (
                column_text(row, "Source_SSL_Allowed").as_deref(),
                column_text(row, "Source_SSL_Verify_Server_Cert").as_deref(),
            ) {
                (Some("Yes"), Some("Yes")) => ChannelTls::Verified,
                (Some("Yes"), _) => ChannelTls::Unverified,
                _ => ChannelTls::Plain,
            },
        }))
    }

    fn parse_semi_sync(
        &self,
        plugins: &[Plugin],
        rows: &[Row],
    ) -> Result<SemiSyncStatus, MySqlError> {
        let mut status = SemiSyncStatus {
            source_plugin_loaded: plugins.contains(&Plugin::SemiSyncSource),
            replica_plugin_loaded: plugins.contains(&Plugin::SemiSyncReplica),
            ..SemiSyncStatus::default()
        };
        for row in rows {
            let (Some(name), Some(value)) =
                (row.as_ref(0).and_then(text), row.as_ref(1).and_then(text))
            else {
                continue;
            };
            let on = value.eq_ignore_ascii_case("ON");
            match name.as_str() {
                "rpl_semi_sync_source_enabled" => status.source_enabled = on,
                "rpl_semi_sync_source_status" => status.source_active = on,
                "rpl_semi_sync_source_clients" => {
                    status.source_clients = value
                        .parse()
                        .map_err(|_| self.parse_error(&name, format!("not a number: {value:?}")))?;
                }
                "rpl_semi_sync_source_wait_for_replica_count" => {
                    status.wait_for_replica_count = value.parse().ok();
                }
                "rpl_semi_sync_source_timeout" => {
                    status.source_timeout = value.parse().ok().map(Duration::from_millis);
                }
                "rpl_semi_sync_source_wait_point" => status.wait_point = Some(value),
                "rpl_semi_sync_replica_enabled" => status.replica_enabled = on,
                "rpl_semi_sync_replica_status" => status.replica_active = on,
                _ => {}
            }
        }
        Ok(status)
    }

    /// The first identity recorded in `sakila.cluster`; none when the table was never written.
    async fn cluster_identity(&self) -> Result<Option<String>, MySqlError> {
        match self
            .query_rows("read the cluster identity", CLUSTER_IDENTITY)
            .await
        {
            Ok(rows) => Ok(first_text(&rows)),
            Err(MySqlError::Query { code, .. }) if missing_table(code) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Tries the account's password with a fresh login: MySQL offers no SQL
    /// to check a password against its stored hash.
    async fn password_works(&self, user: &UserSpec) -> Result<bool, MySqlError> {
        let credentials = Credentials::new(user.name.clone(), user.password.clone());
        match open(self.settings, &self.endpoint, &credentials).await {
            Ok(conn) => {
                let _ = tokio::time::timeout(self.settings.query_timeout, conn.disconnect()).await;
                Ok(true)
            }
            Err(MySqlError::AccessDenied { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn read_server_metrics(&self) -> Result<ServerMetrics, MySqlError> {
        const ACTION: &str = "read server metrics";
        let statements = [
            SERVER_METRICS_VARIABLES,
            SHOW_REPLICA_STATUS,
            "SHOW GLOBAL STATUS",
            "SHOW BINARY LOGS",
        ];
        let sets = self.query_sets(ACTION, statements.join("; ")).await?;
        let [variables, replica, status, binlogs] = <[Vec<Row>; 4]>::try_from(sets)
            .map_err(|sets| self.parse_error(ACTION, format!("{} result sets", sets.len())))?;
        let row = variables
            .first()
            .ok_or_else(|| self.parse_error("server variables", "no row returned"))?;
        let number = |i: usize| -> u64 {
            row.as_ref(i)
                .and_then(text)
                .and_then(|v| v.parse().ok())
                .unwrap_or_default()
        };
        let pairs = |rows: &[Row], value: usize| -> Vec<(String, String)> {
            rows.iter()
                .filter_map(|r| {
                    Some((r.as_ref(0).and_then(text)?, r.as_ref(value).and_then(text)?))
                })
                .collect()
        };
        let binlog_sizes = pairs(&binlogs, 1);
        Ok(ServerMetrics {
            global_status: pairs(&status, 1),
            read_only: number(0) == 1,
            super_read_only: number(1) == 1,
            max_connections: number(2),
            innodb_buffer_pool_size: number(3),
            replica: self.parse_replica_status(&replica)?,
            binlog_files: binlog_sizes.len() as u64,
            binlog_bytes: binlog_sizes
                .iter()
                .filter_map(|(_, size)| size.parse::<u64>().ok())
                .sum(),
        })
    }

    async fn read_serving_state(&self) -> Result<ServingState, MySqlError> {
        const ACTION: &str = "read the serving state";
        let statements = ["SELECT @@super_read_only", SHOW_REPLICA_STATUS];
        let sets = self.query_sets(ACTION, statements.join("; ")).await?;
        let [variables, replica] = <[Vec<Row>; 2]>::try_from(sets)
            .map_err(|sets| self.parse_error(ACTION, format!("{} result sets", sets.len())))?;
        let super_read_only = variables
            .first()
            .and_then(|row| row.as_ref(0))
            .and_then(text)
            .ok_or_else(|| self.parse_error("@@super_read_only", "no row returned"))?;
        Ok(ServingState {
            super_read_only: super_read_only == "1",
            replica: self.parse_replica_status(&replica)?,
        })
    }

    async fn read_lease_view(&self) -> Result<Option<LeaseView>, MySqlError> {
        const ACTION: &str = "read the primary lease";
        let statement = format!(
            "SELECT @@global.super_read_only, @@global.rpl_semi_sync_source_enabled, \
             expires < NOW(6), peers FROM {LEASE_TABLE} WHERE id = 1"
        );
        let sets = self.query_sets(ACTION, statement).await?;
        let Some(row) = sets.first().and_then(|rows| rows.first()) else {
            return Ok(None);
        };
        let field = |i: usize| row.as_ref(i).and_then(text).unwrap_or_default();
        Ok(Some(LeaseView {
            super_read_only: field(0) == "1",
            semi_sync_source_enabled: field(1) == "1",
            expired: field(2) == "1",
            peers: field(3).split_whitespace().map(String::from).collect(),
        }))
    }

    async fn io_thread_running(&self) -> Result<bool, MySqlError> {
        let rows = self
            .query_rows("read replica status", SHOW_REPLICA_STATUS)
            .await?;
        Ok(self
            .parse_replica_status(&rows)?
            .is_some_and(|r| r.io_thread != ThreadState::Stopped))
    }
}

const SERVER_VARIABLES: &str = "SELECT @@server_uuid, @@server_id, @@version, @@read_only, \
    @@super_read_only, @@gtid_executed, @@gtid_purged, \
    (SELECT VARIABLE_VALUE FROM performance_schema.global_status \
     WHERE VARIABLE_NAME = 'Ssl_server_not_after')";
const SHOW_REPLICA_STATUS: &str = "SHOW REPLICA STATUS";
const SERVER_METRICS_VARIABLES: &str = "SELECT @@read_only, @@super_read_only, \
    @@max_connections, @@innodb_buffer_pool_size";
const ACTIVE_PLUGINS: &str = "SELECT PLUGIN_NAME FROM information_schema.PLUGINS \
    WHERE PLUGIN_STATUS = 'ACTIVE' \
    AND PLUGIN_NAME IN ('rpl_semi_sync_source', 'rpl_semi_sync_replica', 'clone')";
/// Rows only for the variables of loaded plugins, so it never fails.
const SEMI_SYNC_STATE: &str = "SELECT LOWER(VARIABLE_NAME), VARIABLE_VALUE \
    FROM performance_schema.global_variables WHERE VARIABLE_NAME LIKE 'rpl\\_semi\\_sync\\_%' \
    UNION ALL \
    SELECT LOWER(VARIABLE_NAME), VARIABLE_VALUE FROM performance_schema.global_status \
    WHERE VARIABLE_NAME LIKE 'rpl\\_semi\\_sync\\_%'";
/// Fails unless the clone plugin is loaded.
const CLONE_STATUS: &str =
    "SELECT STATE, ERROR_NO, ERROR_MESSAGE, SOURCE FROM performance_schema.clone_status";
/// Fails until the cluster's identity was first recorded.
const CLUSTER_IDENTITY: &str = "SELECT uid FROM sakila.cluster ORDER BY created_at, uid LIMIT 1";

/// The probe's statements in the order `probe` reads their results.
fn probe_statements(known: KnownTables) -> String {
    let mut statements = vec![
        SERVER_VARIABLES,
        SHOW_REPLICA_STATUS,
        ACTIVE_PLUGINS,
        SEMI_SYNC_STATE,
    ];
    if known.clone_status {
        statements.push(CLONE_STATUS);
    }
    if known.cluster_identity {
        statements.push(CLUSTER_IDENTITY);
    }
    statements.join("; ")
}

/// A time as OpenSSL prints it (`Ssl_server_not_after`), e.g. `Feb  7 01:12:28 2027 GMT`;
/// `None` for anything else (mysqld serves no certificate: an empty value).
fn parse_openssl_time(text: &str) -> Option<jiff::Timestamp> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [month, day, time, year, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = MONTHS.iter().position(|m| m == month)? + 1;
    let day: u8 = day.parse().ok()?;
    format!("{year}-{month:02}-{day:02}T{time}Z").parse().ok()
}

/// `ER_NO_SUCH_TABLE` or `ER_BAD_DB_ERROR`.
fn missing_table(code: u16) -> bool {
    code == ER_NO_SUCH_TABLE || code == ER_BAD_DB_ERROR
}

fn parse_plugins(rows: &[Row]) -> Vec<Plugin> {
    let names: Vec<String> = rows
        .iter()
        .filter_map(|r| r.as_ref(0).and_then(text))
        .collect();
    Plugin::ALL
        .into_iter()
        .filter(|p| names.iter().any(|n| n.eq_ignore_ascii_case(p.name())))
        .collect()
}

fn parse_clone_status(rows: &[Row]) -> Option<CloneStatus> {
    rows.first().map(|r| CloneStatus {
        state: r.as_ref(0).and_then(text).unwrap_or_default(),
        error_code: r
            .as_ref(1)
            .and_then(text)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default(),
        error_message: r.as_ref(2).and_then(text).unwrap_or_default(),
        source: r.as_ref(3).and_then(text).unwrap_or_default(),
    })
}

/// The first column of the first row, as text.
fn first_text(rows: &[Row]) -> Option<String> {
    rows.first().and_then(|r| r.as_ref(0)).and_then(text)
}

impl MySqlAdmin for MySqlSession {
    async fn status(&self) -> Result<InstanceStatus, MySqlError> {
        self.on_live_connection(|| self.probe()).await
    }

    async fn server_metrics(&self) -> Result<ServerMetrics, MySqlError> {
        self.on_live_connection(|| self.read_server_metrics()).await
    }

    async fn serving_state(&self) -> Result<ServingState, MySqlError> {
        self.on_live_connection(|| self.read_serving_state()).await
    }

    async fn lease_view(&self) -> Result<Option<LeaseView>, MySqlError> {
        self.on_live_connection(|| self.read_lease_view()).await
    }

    async fn set_read_only(&self, read_only: bool) -> Result<(), MySqlError> {
        if read_only {
            // One statement sets both flags, so no moment has read_only
            // without super_read_only.
            self.query_drop(
                "set super_read_only",
                "SET GLOBAL super_read_only = ON".into(),
            )
            .await
        } else {
            self.query_drop(
                "clear super_read_only",
                "SET GLOBAL super_read_only = OFF".into(),
            )
            .await?;
            self.query_drop("clear read_only", "SET GLOBAL read_only = OFF".into())
                .await
        }
    }

    async fn kill_client_sessions(&self, keep_users: &[&str]) -> Result<u32, MySqlError> {
        const ACTION: &str = "kill client sessions";
        let rows = self.query_rows(ACTION, "SHOW PROCESSLIST").await?;
        let own_id = self
            .run(ACTION, self.settings.query_timeout, |c| {
                let id = c.id();
                Box::pin(async move { Ok(id) })
            })
            .await?;
        let mut killed = 0;
        for row in rows {
            let (Some(id), Some(user), Some(command)) = (
                row.get_opt::<u32, usize>(0).and_then(Result::ok),
                row.get_opt::<String, usize>(1).and_then(Result::ok),
                row.get_opt::<String, usize>(4).and_then(Result::ok),
            ) else {
                continue;
            };
            let servers_own = matches!(
                command.as_str(),
                "Daemon" | "Binlog Dump" | "Binlog Dump GTID" | "Killed"
            ) || matches!(user.as_str(), "system user" | "event_scheduler");
            if id == own_id || servers_own || keep_users.contains(&user.as_str()) {
                continue;
            }
            match self
                .query_drop(ACTION, format!("KILL CONNECTION {id}"))
                .await
            {
                Ok(()) => killed += 1,
                // One session it may not kill does not keep it from the others.
                Err(MySqlError::Query { code, .. })
                    if code == ER_NO_SUCH_THREAD || code == ER_KILL_DENIED => {}
                Err(e) => return Err(e),
            }
        }
        Ok(killed)
    }

    async fn set_global_variables(
        &self,
        set: &[(String, String)],
        reset: &[String],
    ) -> Result<(), MySqlError> {
        for (name, value) in set {
            let statement = sql::set_global(name, value)?;
            self.query_drop(&format!("run {statement}"), statement.clone())
                .await?;
        }
        for name in reset {
            let statement = sql::reset_global(name)?;
            self.query_drop(&format!("run {statement}"), statement.clone())
                .await?;
        }
        Ok(())
    }

    async fn renew_primary_lease(
        &self,
        valid_for: Duration,
        peers: &[String],
    ) -> Result<(), MySqlError> {
        const ACTION: &str = "renew the primary lease";
        // One round trip, and sql_log_bin is back on before the statement returns, whatever
        // this session is used for next.
        let micros = u64::try_from(valid_for.as_micros()).unwrap_or(u64::MAX);
        let statement = format!(
            "SET SESSION sql_log_bin = 0; \
             CREATE TABLE IF NOT EXISTS {LEASE_TABLE} (id TINYINT PRIMARY KEY, \
             expires TIMESTAMP(6) NOT NULL, peers VARCHAR(2048) NOT NULL); \
             REPLACE INTO {LEASE_TABLE} VALUES (1, NOW(6) + INTERVAL {micros} MICROSECOND, {}); \
             SET SESSION sql_log_bin = 1",
            sql::quote_string(&peers.join(" "))
        );
        let renewed = self
            .on_live_connection(|| self.query_drop(ACTION, statement.clone()))
            .await;
        if renewed.is_err() {
            // It may have stopped with sql_log_bin off: the connection is not kept like that.
            self.abandon().await;
        }
        renewed
    }

    async fn shutdown(&self) -> Result<(), MySqlError> {
        match self.query_drop("shut down", "SHUTDOWN".into()).await {
            // The server may close this very connection as it goes down.
            Ok(()) | Err(MySqlError::ConnectionLost { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn ensure_user(&self, user: &UserSpec) -> Result<UserChange, MySqlError> {
        const ACTION: &str = "ensure user";
        sql::validate_account(ACTION, &user.name, &user.host)?;
        let wanted = user
            .privileges
            .iter()
            .map(|p| sql::validate_privilege(ACTION, p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut change = UserChange::default();
        let exists = self
            .exec_rows(
                "look up user",
                "SELECT 1 FROM mysql.user WHERE User = ? AND Host = ?",
                vec![Value::from(&user.name), Value::from(&user.host)],
            )
            .await?;
        if exists.is_empty() {
            self.query_drop("create user", sql::create_user(user))
                .await?;
            change.created = true;
        } else if !self.password_works(user).await? {
            self.query_drop("reset user password", sql::alter_user_password(user))
                .await?;
            change.password_changed = true;
        }
        let grantee = format!("'{}'@'{}'", user.name, user.host);
        let held: Vec<String> = self
            .exec_rows(
                "read user privileges",
                "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?",
                vec![Value::from(grantee)],
            )
            .await?
            .iter()
            .filter_map(|r| r.as_ref(0).and_then(text))
            .map(|p| p.to_ascii_uppercase())
            .collect();
        let missing: Vec<String> =
            wanted
                .into_iter()
                .filter(|p| !held.contains(p))
                .fold(Vec::new(), |mut acc, p| {
                    if !acc.contains(&p) {
                        acc.push(p);
                    }
                    acc
                });
        if !missing.is_empty() {
            self.query_drop("grant privileges", sql::grant_global(user, &missing))
                .await?;
            change.granted = missing;
        }
        Ok(change)
    }

    async fn ensure_plugin(&self, plugin: Plugin) -> Result<(), MySqlError> {
        if self.active_plugins().await?.contains(&plugin) {
            return Ok(());
        }
        self.query_drop(
            "install plugin",
            format!(
                "INSTALL PLUGIN {} SONAME {}",
                sql::quote_ident(plugin.name()),
                sql::quote_string(plugin.library())
            ),
        )
        .await
    }

    async fn configure_replica(&self, source: &ReplicationSource) -> Result<(), MySqlError> {
        self.query_drop("stop replica", "STOP REPLICA".into())
            .await?;
        self.query_drop(
            "change replication source",
            sql::change_replication_source(source),
        )
        .await?;
        // The channel names the new source now: a fence from the old one no longer applies.
        self.query_drop(
            "clear the replica fence",
            "RESET PERSIST IF EXISTS skip_replica_start".into(),
        )
        .await?;
        self.query_drop("start replica", "START REPLICA".into())
            .await
    }

    async fn fence_replica(&self) -> Result<(), MySqlError> {
        // Recorded before the I/O thread stops: a fence that is in effect is also remembered.
        self.query_drop(
            "record the replica fence",
            "SET PERSIST_ONLY skip_replica_start = ON".into(),
        )
        .await?;
        self.stop_replica_io().await
    }

    async fn start_replica(&self) -> Result<(), MySqlError> {
        self.query_drop("start replica", "START REPLICA".into())
            .await
    }

    async fn stop_replica_io(&self) -> Result<(), MySqlError> {
        self.query_drop("stop replica I/O thread", "STOP REPLICA IO_THREAD".into())
            .await
    }

    async fn reload_tls(&self) -> Result<(), MySqlError> {
        self.query_drop("reload TLS", "ALTER INSTANCE RELOAD TLS".into())
            .await
    }

    async fn change_source_password(&self, password: &str) -> Result<(), MySqlError> {
        const ACTION: &str = "change the replication password";
        self.query_drop(ACTION, "STOP REPLICA IO_THREAD".into())
            .await?;
        let changed = self
            .query_drop(ACTION, sql::change_source_password(password))
            .await;
        // Started again whatever the change did: a refused password must not leave the
        // replica disconnected (the primary's commits would wait for its acknowledgement).
        let started = self
            .query_drop(ACTION, "START REPLICA IO_THREAD".into())
            .await;
        changed.and(started)
    }

    async fn retain_current_password(
        &self,
        user: &str,
        hosts: &[&str],
        password: &str,
    ) -> Result<(), MySqlError> {
        let statement = sql::retain_current_password(user, hosts, password);
        self.alter_account_here("retain the current password", statement)
            .await
    }

    async fn discard_old_password(&self, user: &str, hosts: &[&str]) -> Result<(), MySqlError> {
        let statement = sql::discard_old_password(user, hosts);
        self.alter_account_here("discard the old password", statement)
            .await
    }

    async fn users_with_secondary_password(&self) -> Result<BTreeSet<String>, MySqlError> {
        const ACTION: &str = "read retained passwords";
        self.query_rows(ACTION, sql::USERS_WITH_SECONDARY_PASSWORD)
            .await?
            .into_iter()
            .map(|row| {
                mysql_async::from_row_opt::<(String,)>(row)
                    .map(|(user,)| user)
                    .map_err(|e| self.parse_error("mysql.user", e.to_string()))
            })
            .collect()
    }

    async fn remote_root(&self) -> Result<RemoteRoot, MySqlError> {
        let rows = self
            .query_rows("read root's remote account", sql::REMOTE_ROOT_LOCKED)
            .await?;
        Ok(match first_text(&rows).as_deref() {
            None => RemoteRoot::Missing,
            Some("Y") => RemoteRoot::Locked,
            Some(_) => RemoteRoot::Open,
        })
    }

    async fn lock_remote_root(&self, locked: bool) -> Result<(), MySqlError> {
        let action = if locked {
            "lock root's remote account"
        } else {
            "unlock root's remote account"
        };
        self.alter_account_here(action, sql::lock_remote_root(locked))
            .await
    }

    async fn reset_replica_all(&self) -> Result<(), MySqlError> {
        self.query_drop("stop replica", "STOP REPLICA".into())
            .await?;
        self.query_drop("reset replica", "RESET REPLICA ALL".into())
            .await
    }

    async fn enable_semi_sync_source(
        &self,
        config: SemiSyncSourceConfig,
    ) -> Result<(), MySqlError> {
        const ACTION: &str = "configure semi-sync source";
        self.ensure_plugin(Plugin::SemiSyncSource).await?;
        let timeout_ms = u64::try_from(config.timeout.as_millis()).unwrap_or(u64::MAX);
        self.query_drop(
            ACTION,
            "SET GLOBAL rpl_semi_sync_source_wait_point = AFTER_SYNC".into(),
        )
        .await?;
        self.query_drop(
            ACTION,
            "SET GLOBAL rpl_semi_sync_source_wait_no_replica = ON".into(),
        )
        .await?;
        self.exec_drop(
            ACTION,
            "SET GLOBAL rpl_semi_sync_source_wait_for_replica_count = ?",
            vec![Value::from(config.wait_for_replica_count)],
        )
        .await?;
        self.exec_drop(
            ACTION,
            "SET GLOBAL rpl_semi_sync_source_timeout = ?",
            vec![Value::from(timeout_ms)],
        )
        .await?;
        self.query_drop(
            "enable semi-sync source",
            "SET GLOBAL rpl_semi_sync_source_enabled = ON".into(),
        )
        .await
    }

    async fn disable_semi_sync_source(&self) -> Result<(), MySqlError> {
        if !self
            .active_plugins()
            .await?
            .contains(&Plugin::SemiSyncSource)
        {
            return Ok(());
        }
        self.query_drop(
            "disable semi-sync source",
            "SET GLOBAL rpl_semi_sync_source_enabled = OFF".into(),
        )
        .await
    }

    async fn enable_semi_sync_replica(&self) -> Result<(), MySqlError> {
        self.ensure_plugin(Plugin::SemiSyncReplica).await?;
        self.query_drop(
            "enable semi-sync replica",
            "SET GLOBAL rpl_semi_sync_replica_enabled = ON".into(),
        )
        .await?;
        let plugins = self.active_plugins().await?;
        let acknowledging = self.semi_sync_status(&plugins).await?.replica_active;
        if !acknowledging && self.io_thread_running().await? {
            // The I/O thread decides whether to acknowledge when it connects.
            self.stop_replica_io().await?;
            self.query_drop("start replica I/O thread", "START REPLICA IO_THREAD".into())
                .await?;
        }
        Ok(())
    }

    async fn wait_for_gtid(&self, gtids: &GtidSet, timeout: Duration) -> Result<bool, MySqlError> {
        let set = gtids.to_string();
        let seconds = timeout.as_secs_f64();
        let rows = self
            .run(
                "wait for GTID set",
                timeout + self.settings.query_timeout,
                move |c| {
                    Box::pin(c.exec::<Row, _, _>(
                        "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)",
                        (set, seconds),
                    ))
                },
            )
            .await?;
        match rows
            .first()
            .and_then(|r| r.as_ref(0))
            .and_then(text)
            .as_deref()
        {
            Some("0") => Ok(true),
            Some("1") => Ok(false),
            other => Err(self.parse_error(
                "WAIT_FOR_EXECUTED_GTID_SET result",
                format!("unexpected value {other:?}"),
            )),
        }
    }

    async fn record_cluster_identity(
        &self,
        cluster_uid: &str,
        cluster_name: &str,
    ) -> Result<(), MySqlError> {
        const ACTION: &str = "record cluster identity";
        self.query_drop(ACTION, "CREATE DATABASE IF NOT EXISTS sakila".into())
            .await?;
        self.query_drop(
            ACTION,
            "CREATE TABLE IF NOT EXISTS sakila.cluster (uid VARCHAR(64) PRIMARY KEY, \
             name VARCHAR(253) NOT NULL, \
             created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))"
                .into(),
        )
        .await?;
        self.exec_drop(
            ACTION,
            "INSERT IGNORE INTO sakila.cluster (uid, name) VALUES (?, ?)",
            vec![Value::from(cluster_uid), Value::from(cluster_name)],
        )
        .await
    }

    async fn clone_from(
        &self,
        donor: &Endpoint,
        credentials: &Credentials,
        tls: &PeerTls,
        timeout: Duration,
    ) -> Result<CloneOutcome, MySqlError> {
        const ACTION: &str = "clone instance";
        self.ensure_plugin(Plugin::Clone).await?;
        // The data is about to be replaced: nothing may apply to it meanwhile. A no-op without
        // a source.
        self.query_drop("stop replication before a clone", "STOP REPLICA".into())
            .await?;
        // The clone first drops the recipient's user data, which super_read_only refuses
        // (error 1290) once the instance holds any: lift it, keeping read_only, so ordinary
        // clients still cannot write. mysqld restarts read-only from its configuration after the
        // clone; if the clone fails, super_read_only is set again below.
        self.query_drop(
            "lift super_read_only for a clone",
            "SET GLOBAL super_read_only = OFF".into(),
        )
        .await?;
        self.allow_clone_donor(donor, tls).await?;
        let statement = sql::clone_instance(donor, credentials);
        let result = self
            .run(ACTION, timeout, move |c| Box::pin(c.query_drop(statement)))
            .await;
        // mysqld goes down after a clone either way; this session is over.
        *self.conn.lock().await = None;
        match result {
            Ok(()) => Ok(CloneOutcome::Restarting),
            Err(MySqlError::Query { code, .. }) if code == ER_RESTART_SERVER_FAILED => {
                Ok(CloneOutcome::ShutDown)
            }
            Err(MySqlError::ConnectionLost { .. }) => Ok(CloneOutcome::ConnectionClosed),
            Err(e) => {
                self.restore_super_read_only_after_failed_clone().await;
                Err(e)
            }
        }
    }

    async fn clone_to_directory(
        &self,
        donor: &Endpoint,
        credentials: &Credentials,
        tls: &PeerTls,
        directory: &str,
        timeout: Duration,
    ) -> Result<(), MySqlError> {
        const ACTION: &str = "clone into a directory";
        self.ensure_plugin(Plugin::Clone).await?;
        self.allow_clone_donor(donor, tls).await?;
        let statement = sql::clone_instance_into(donor, credentials, directory);
        self.run(ACTION, timeout, move |c| Box::pin(c.query_drop(statement)))
            .await
    }

    async fn set_passwords(&self, accounts: &[Account]) -> Result<(), MySqlError> {
        const ACTION: &str = "set account passwords";
        // First: FLUSH PRIVILEGES is binlogged, and would give the data a transaction of its own.
        self.query_drop(ACTION, "SET SESSION sql_log_bin = 0".into())
            .await?;
        self.query_drop(ACTION, "FLUSH LOCAL PRIVILEGES".into())
            .await?;
        for account in accounts {
            let statement = sql::set_existing_password(
                &account.credentials.user,
                &account.host,
                &account.credentials.password,
            );
            self.query_drop(ACTION, statement).await?;
        }
        Ok(())
    }

    async fn check_tables(&self) -> Result<TableCheck, MySqlError> {
        const ACTION: &str = "check tables";
        let tables: Vec<(String, String)> = self
            .query_rows(ACTION, sql::CHECKED_TABLES)
            .await?
            .into_iter()
            .map(mysql_async::from_row_opt)
            .collect::<Result<_, _>>()
            .map_err(|e| self.parse_error("information_schema.TABLES", e.to_string()))?;
        let mut check = TableCheck::default();
        for (schema, table) in tables {
            let statement = sql::check_table(&schema, &table);
            let rows = self
                .run(ACTION, self.settings.query_timeout, move |c| {
                    Box::pin(c.query::<Row, _>(statement))
                })
                .await?;
            check.tables += 1;
            for row in rows {
                // Table, Op, Msg_type, Msg_text.
                let (_, _, msg_type, msg_text): (String, String, String, String) =
                    mysql_async::from_row_opt(row)
                        .map_err(|e| self.parse_error("CHECK TABLE", e.to_string()))?;
                if admin::check_row_fails(&msg_type, &msg_text) {
                    check
                        .failures
                        .push(format!("{schema}.{table}: {msg_type}: {msg_text}"));
                }
            }
        }
        Ok(check)
    }

    async fn clone_point(&self) -> Result<ClonePoint, MySqlError> {
        let rows = self
            .query_rows("read the clone point", sql::CLONE_POINT)
            .await?;
        let row = rows
            .into_iter()
            .next()
            .ok_or_else(|| self.parse_error("clone_status", "no row after a clone"))?;
        type Point = (
            String,
            i64,
            Option<String>,
            Option<String>,
            Option<u64>,
            Option<String>,
            String,
        );
        let (state, error_code, error_message, binlog_file, binlog_position, gtids, version): Point =
            mysql_async::from_row_opt(row)
                .map_err(|e| self.parse_error("clone_status", e.to_string()))?;
        if state != "Completed" || gtids.as_deref().is_none_or(str::is_empty) {
            return Err(self.parse_error(
                "clone_status",
                format!(
                    "the clone is {state:?} with no recorded clone point (error {error_code}: {})",
                    error_message.unwrap_or_default()
                ),
            ));
        }
        Ok(ClonePoint {
            // clone_status prints the set over several lines.
            gtid_executed: self.gtid_set(gtids.map(|g| g.replace(['\n', ' '], "")))?,
            binlog_file: binlog_file.unwrap_or_default(),
            binlog_position: binlog_position.unwrap_or_default(),
            server_version: version,
        })
    }
}

impl MySqlSession {
    /// Lets this server clone from `donor` only, checking its certificate as `tls` says.
    async fn allow_clone_donor(&self, donor: &Endpoint, tls: &PeerTls) -> Result<(), MySqlError> {
        self.exec_drop(
            "set clone donor list",
            "SET GLOBAL clone_valid_donor_list = ?",
            vec![Value::from(sql::donor_list_entry(donor))],
        )
        .await?;
        self.exec_drop(
            "set the CA that checks the clone donor",
            "SET GLOBAL clone_ssl_ca = ?",
            vec![Value::from(sql::clone_ssl_ca(tls))],
        )
        .await
    }

    /// Best effort, on a new connection (the clone's session is gone): the instance was not
    /// replaced, so it must be super_read_only again.
    async fn restore_super_read_only_after_failed_clone(&self) {
        let restored = async {
            let mut conn = open(self.settings, &self.endpoint, &self.credentials).await?;
            let result = conn.query_drop("SET GLOBAL super_read_only = ON").await;
            let _ = conn.disconnect().await;
            result.map_err(|e| driver_error(&self.endpoint, "restore super_read_only", e))
        };
        if let Err(e) = restored.await {
            tracing::warn!(endpoint = %self.endpoint, error = %e,
                "could not restore super_read_only after a failed clone; it returns on restart");
        }
    }
}

impl Drop for MySqlSession {
    /// A session of `connect_kept` that ends between statements leaves its connection for the
    /// next one.
    fn drop(&mut self) {
        let Some((kept, key)) = self.keep.take() else {
            return;
        };
        if self.in_flight.load(Ordering::Relaxed) {
            return;
        }
        if let Some(conn) = self.conn.get_mut().take() {
            let known = self.known();
            kept.put(key, Kept { conn, known });
        }
    }
}

fn driver_error(endpoint: &Endpoint, action: &str, e: mysql_async::Error) -> MySqlError {
    match e {
        mysql_async::Error::Server(e) => server_error(endpoint, action, e),
        e => MySqlError::ConnectionLost {
            action: action.to_owned(),
            endpoint: endpoint.to_string(),
            source: Box::new(e),
        },
    }
}

fn server_error(endpoint: &Endpoint, action: &str, e: mysql_async::ServerError) -> MySqlError {
    if e.code == ER_OPTION_PREVENTS_STATEMENT && e.message.contains("read-only") {
        return MySqlError::ReadOnly {
            action: action.to_owned(),
            endpoint: endpoint.to_string(),
        };
    }
    MySqlError::Query {
        action: action.to_owned(),
        endpoint: endpoint.to_string(),
        code: e.code,
        source: Box::new(e),
    }
}

/// A column's value as text, `None` for NULL or a missing column.
fn column_text(row: &Row, name: &str) -> Option<String> {
    let index = row
        .columns_ref()
        .iter()
        .position(|c| c.name_str().eq_ignore_ascii_case(name))?;
    row.as_ref(index).and_then(text)
}

/// Text-protocol values arrive as bytes; binary-protocol ones may be numbers.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(d) => Some(d.to_string()),
        other => Some(other.as_sql(true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_asks_for_an_unknown_authentication_method_answered() {
        use mysql_async::{DriverError, Error};
        let asked = |name: &str| {
            Error::Driver(DriverError::UnknownAuthPlugin {
                name: name.to_string(),
            })
        };
        assert!(server_answered(&asked("sha256_password")));
        assert!(server_answered(&Error::Driver(
            DriverError::CleartextPluginDisabled
        )));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!server_answered(&Error::Io(refused.into())));
        assert!(!server_answered(&Error::Driver(
            DriverError::ConnectionClosed
        )));
    }

    #[test]
    fn openssl_times_are_read_and_anything_else_is_none() {
        for (text, expected) in [
            ("Feb 27 01:12:28 2027 GMT", Some("2027-02-27T01:12:28Z")),
            ("Feb  7 01:12:28 2027 GMT", Some("2027-02-07T01:12:28Z")),
            ("Dec 31 23:59:59 2099 GMT", Some("2099-12-31T23:59:59Z")),
            ("", None),
            ("Feb 30 01:12:28 2027 GMT", None),
            ("2027-02-27 01:12:28", None),
        ] {
            let expected = expected.map(|t| t.parse::<jiff::Timestamp>().unwrap());
            assert_eq!(parse_openssl_time(text), expected, "{text:?}");
        }
    }
}
