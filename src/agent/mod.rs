//! `sakila-operator agent`: the container beside each mysqld that answers the kubelet's probes
//! of mysqld (`/ready`, `/alive`), runs the self-fence (`fence`) and, with
//! `spec.monitoring.enabled`, answers Prometheus' scrapes (`/metrics`), from the operator's image.
//!
//! Why not exec probes: each exec probe is a container exec (runc, a shell, a mysql client and a
//! new login), and a readiness probe every 2 s per pod made those execs the largest cost of a
//! node full of small clusters (docs/operations.md, "Many clusters"). Here a probe is one HTTP
//! request and one round trip on a connection kept open over the local socket, with the probe
//! account that already exists.

pub mod fence;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::StatusCode;

use crate::exporter;
use crate::http::{self, Handler};
use crate::mysql::{
    Endpoint, MySqlAdmin, MySqlClient, MySqlConnector, MySqlError, ServingState, ThreadState,
};
use crate::resources::naming;

/// The agent's revision, recorded on the pod template: raise it when running agents must be
/// replaced (what they answer, or how they fence, changed), and the next round rolls every cluster's pods to the
/// operator's image. Otherwise pods keep the agent they run until they roll for another reason
/// (`resources::statefulset::agent_image`), so that a new operator image restarts no mysqld.
pub const REVISION: u32 = 1;

/// The port the agent listens on: the exporter's, which it replaces, so that scrape
/// configurations and NetworkPolicies made for the exporter still apply.
pub const AGENT_PORT: u16 = exporter::EXPORTER_PORT;

/// What the agent reads and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentOptions {
    /// The `[client]` option file with `user`, `password` and `socket` (the pod's probe.cnf).
    pub defaults_file: PathBuf,
    /// The pod's labels as the downward API writes them; the role label says what mysqld must be.
    pub labels_file: PathBuf,
    /// The address the endpoints are served on.
    pub listen: SocketAddr,
    /// Serve `/metrics` too.
    pub metrics: bool,
    /// How far behind its source a replica may be and still be ready.
    pub max_replica_lag_seconds: u64,
    /// Run the self-fence loop.
    pub fence: bool,
    /// Where the operator's record of the probe account's password is (the fence follows it).
    pub recorded_password_file: PathBuf,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            defaults_file: PathBuf::from("/var/run/sakila/probe.cnf"),
            labels_file: PathBuf::from("/etc/podinfo/labels"),
            listen: SocketAddr::from(([0, 0, 0, 0], AGENT_PORT)),
            metrics: false,
            max_replica_lag_seconds: 30,
            fence: false,
            recorded_password_file: PathBuf::from("/etc/sakila-passwords/probe-password"),
        }
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// An argument it does not know, or a value it cannot read.
    #[error(
        "bad argument {0:?}; expected --defaults-file=PATH, --labels-file=PATH, --listen=ADDR:PORT, \
         --metrics, --max-replica-lag-seconds=N, --fence, --recorded-password-file=PATH"
    )]
    Argument(String),
    /// The SIGTERM handler could not be installed.
    #[error("cannot handle SIGTERM: {0}")]
    Signal(#[source] std::io::Error),
    /// The listening socket could not be opened.
    #[error("cannot serve on {address}: {source}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Parses `agent`'s arguments (those after the subcommand).
pub fn parse_arguments(args: impl IntoIterator<Item = String>) -> Result<AgentOptions, AgentError> {
    let mut options = AgentOptions::default();
    for arg in args {
        match arg.split_once('=') {
            Some(("--defaults-file", path)) if !path.is_empty() => {
                options.defaults_file = PathBuf::from(path)
            }
            Some(("--labels-file", path)) if !path.is_empty() => {
                options.labels_file = PathBuf::from(path)
            }
            Some(("--listen", address)) => {
                options.listen = address
                    .parse()
                    .map_err(|_| AgentError::Argument(arg.clone()))?
            }
            Some(("--max-replica-lag-seconds", seconds)) => {
                options.max_replica_lag_seconds = seconds
                    .parse()
                    .map_err(|_| AgentError::Argument(arg.clone()))?
            }
            Some(("--recorded-password-file", path)) if !path.is_empty() => {
                options.recorded_password_file = PathBuf::from(path)
            }
            None if arg == "--metrics" => options.metrics = true,
            None if arg == "--fence" => options.fence = true,
            _ => return Err(AgentError::Argument(arg)),
        }
    }
    Ok(options)
}

/// The value of the role label in a downward API labels file (`key="value"` per line); `None`
/// when the pod has none (the operator has not given it a role yet).
pub fn role_label(labels: &str) -> Option<String> {
    labels.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key == naming::ROLE_LABEL).then(|| value.trim_matches('"').to_string())
    })
}

/// Whether mysqld is in the state its role label promises, and so may receive client traffic:
/// a primary writable; a replica read-only, replicating from its source with both threads
/// running, at most `max_lag_seconds` behind. A pod with no role yet is ready once mysqld
/// answers. `Err` says why not.
pub fn readiness(
    role: Option<&str>,
    state: &ServingState,
    max_lag_seconds: u64,
) -> Result<(), String> {
    match role {
        Some(naming::ROLE_PRIMARY) if state.super_read_only => {
            Err("labelled primary, but super_read_only is on".into())
        }
        Some(naming::ROLE_REPLICA) => {
            if !state.super_read_only {
                return Err("labelled replica, but writable".into());
            }
            let Some(replica) = &state.replica else {
                return Err("labelled replica, but no replication channel is configured".into());
            };
            let threads = [("I/O", replica.io_thread), ("SQL", replica.sql_thread)];
            if let Some((name, state)) = threads
                .into_iter()
                .find(|(_, state)| *state != ThreadState::Running)
            {
                return Err(format!(
                    "the replication {name} thread is {}",
                    state.as_str()
                ));
            }
            match replica.seconds_behind_source {
                None => Err("the replication lag is unknown".into()),
                Some(lag) if lag > max_lag_seconds => Err(format!(
                    "{lag} s behind the source, more than {max_lag_seconds} s"
                )),
                Some(_) => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// Liveness from what a probe of mysqld gave: any answer proves the server alive, "access
/// denied" too (the probe account's password may be changing); no answer in time does not.
pub fn alive(probe: &Result<ServingState, MySqlError>) -> Result<(), String> {
    match probe {
        Ok(_) | Err(MySqlError::AccessDenied { .. }) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Serves the endpoints until the process ends. The option file is read at every request: a
/// rotated password is picked up.
pub async fn run(options: AgentOptions) -> Result<(), AgentError> {
    // Short timeouts: an answer well within the kubelet's probe timeout (5 s) and Prometheus'
    // scrape timeout (10 s by default), a failing one if mysqld does not answer in time.
    let client = MySqlClient::new(Duration::from_secs(2), Duration::from_secs(5))
        .with_probe_timeout(Duration::from_secs(2));
    let agent = Arc::new(Agent {
        client,
        options: options.clone(),
        last_readiness: Mutex::new(None),
    });
    let handler: Handler = Arc::new({
        let agent = agent.clone();
        move |path| {
            let agent = agent.clone();
            Box::pin(async move { agent.answer(&path).await })
        }
    });
    // PID 1 of its container: without a handler SIGTERM would be ignored, and every pod deletion
    // would wait out the whole grace period.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(AgentError::Signal)?;
    if options.fence {
        tokio::spawn(fence::run(fence::FenceFiles {
            defaults_file: options.defaults_file.clone(),
            recorded_password: options.recorded_password_file.clone(),
        }));
    }
    tracing::info!(
        address = %options.listen,
        metrics = options.metrics,
        fence = options.fence,
        "serving /ready and /alive{}",
        if options.metrics { " and /metrics" } else { "" }
    );
    let mut server = tokio::spawn(http::listen(options.listen, handler));
    tokio::select! {
        served = &mut server => {
            let served = served.unwrap_or_else(|e| Err(std::io::Error::other(e)));
            return served.map_err(|source| AgentError::Listen {
                address: options.listen,
                source,
            });
        }
        _ = terminate.recv() => {}
    }
    // The pod is going away. A primary's mysqld may run on for a while (its pre-stop hook waits
    // for the switchover): the fence must watch it as long as it can write, so the agent ends
    // only once mysqld no longer answers.
    tracing::info!("SIGTERM: the fence and the probes go on until mysqld has stopped");
    while alive(&agent.probe().await).is_ok() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tracing::info!("mysqld has stopped: stopping");
    Ok(())
}

struct Agent {
    client: MySqlClient,
    options: AgentOptions,
    /// The last readiness verdict, so that only changes are logged.
    last_readiness: Mutex<Option<Result<(), String>>>,
}

impl Agent {
    async fn answer(&self, path: &str) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
        match path {
            "/ready" => {
                let verdict = self.ready().await;
                self.log_change(&verdict);
                verdict_response(verdict, "ready")
            }
            "/alive" => verdict_response(alive(&self.probe().await), "alive"),
            "/metrics" if self.options.metrics => http::with_content_type(
                http::text(
                    StatusCode::OK,
                    exporter::scrape(&self.client, &self.options.defaults_file).await,
                ),
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            "/healthz" => http::text(StatusCode::OK, "ok\n".into()),
            _ => http::not_found(),
        }
    }

    async fn ready(&self) -> Result<(), String> {
        let labels = std::fs::read_to_string(&self.options.labels_file)
            .map_err(|e| format!("cannot read {}: {e}", self.options.labels_file.display()))?;
        let state = self.probe().await.map_err(|e| e.to_string())?;
        readiness(
            role_label(&labels).as_deref(),
            &state,
            self.options.max_replica_lag_seconds,
        )
    }

    /// One round trip on the kept connection, logged in with the option file's account.
    async fn probe(&self) -> Result<ServingState, MySqlError> {
        let login = exporter::read_login(&self.options.defaults_file).map_err(|detail| {
            MySqlError::Parse {
                what: "the probe account's login".into(),
                endpoint: self.options.defaults_file.display().to_string(),
                detail,
            }
        })?;
        let session = self
            .client
            .connect_kept(&Endpoint::socket(login.socket), &login.credentials)
            .await?;
        session.serving_state().await
    }

    fn log_change(&self, verdict: &Result<(), String>) {
        let mut last = self
            .last_readiness
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.as_ref() == Some(verdict) {
            return;
        }
        match verdict {
            Ok(()) => tracing::info!("ready"),
            Err(why) => tracing::info!(reason = %why, "not ready"),
        }
        *last = Some(verdict.clone());
    }
}

fn verdict_response(
    verdict: Result<(), String>,
    what: &str,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    match verdict {
        Ok(()) => http::text(StatusCode::OK, format!("{what}\n")),
        Err(why) => http::text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not {what}: {why}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::{ChannelTls, GtidSet, ReplicaStatus};

    fn replica(io: ThreadState, sql: ThreadState, lag: Option<u64>) -> Option<ReplicaStatus> {
        Some(ReplicaStatus {
            source_host: "db-0.db-headless".into(),
            source_port: 3306,
            io_thread: io,
            sql_thread: sql,
            last_io_error: None,
            last_sql_error: None,
            seconds_behind_source: lag,
            retrieved_gtid_set: GtidSet::default(),
            auto_position: true,
            channel_tls: ChannelTls::Verified,
        })
    }

    fn state(super_read_only: bool, replica: Option<ReplicaStatus>) -> ServingState {
        ServingState {
            super_read_only,
            replica,
        }
    }

    #[test]
    fn readiness_follows_the_role_label() {
        use ThreadState::{Connecting, Running, Stopped};
        let streaming = || replica(Running, Running, Some(0));
        /// A scenario: its name, the role label, what mysqld shows, the verdict.
        type Case = (
            &'static str,
            Option<&'static str>,
            ServingState,
            Result<(), &'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "a writable primary",
                Some("primary"),
                state(false, None),
                Ok(()),
            ),
            (
                "a read-only primary",
                Some("primary"),
                state(true, None),
                Err("labelled primary, but super_read_only is on"),
            ),
            (
                "a streaming replica",
                Some("replica"),
                state(true, streaming()),
                Ok(()),
            ),
            (
                "a replica at the lag limit",
                Some("replica"),
                state(true, replica(Running, Running, Some(30))),
                Ok(()),
            ),
            (
                "a replica past the lag limit",
                Some("replica"),
                state(true, replica(Running, Running, Some(31))),
                Err("31 s behind the source, more than 30 s"),
            ),
            (
                "a writable replica",
                Some("replica"),
                state(false, streaming()),
                Err("labelled replica, but writable"),
            ),
            (
                "a replica without a channel",
                Some("replica"),
                state(true, None),
                Err("labelled replica, but no replication channel is configured"),
            ),
            (
                "a replica still connecting to its source",
                Some("replica"),
                state(true, replica(Connecting, Running, Some(0))),
                Err("the replication I/O thread is Connecting"),
            ),
            (
                "a replica whose applier stopped",
                Some("replica"),
                state(true, replica(Running, Stopped, None)),
                Err("the replication SQL thread is Stopped"),
            ),
            (
                "a replica of unknown lag",
                Some("replica"),
                state(true, replica(Running, Running, None)),
                Err("the replication lag is unknown"),
            ),
            ("no role yet", None, state(true, None), Ok(())),
            (
                "a role of a later version",
                Some("witness"),
                state(true, None),
                Ok(()),
            ),
        ];
        for (name, role, serving, expected) in cases {
            assert_eq!(
                readiness(role, &serving, 30),
                expected.map_err(String::from),
                "{name}"
            );
        }
    }

    #[test]
    fn any_answer_is_alive_and_no_answer_is_not() {
        assert_eq!(alive(&Ok(state(true, None))), Ok(()));
        let denied = MySqlError::AccessDenied {
            endpoint: "/var/run/mysqld/mysqld.sock".into(),
            user: "sakila-probe".into(),
            source: "Access denied".into(),
        };
        assert_eq!(alive(&Err(denied)), Ok(()));
        let timeout = MySqlError::Timeout {
            action: "read the serving state".into(),
            endpoint: "/var/run/mysqld/mysqld.sock".into(),
            after: Duration::from_secs(2),
        };
        let verdict = alive(&Err(timeout)).unwrap_err();
        assert!(verdict.contains("read the serving state"), "{verdict}");
    }

    #[test]
    fn the_role_comes_from_the_downward_api_labels() {
        let labels = "app.kubernetes.io/name=\"mysql\"\nmysql.sakila.dev/role=\"replica\"\n\
                      statefulset.kubernetes.io/pod-name=\"db-1\"\n";
        assert_eq!(role_label(labels).as_deref(), Some("replica"));
        assert_eq!(role_label("app.kubernetes.io/name=\"mysql\"\n"), None);
        assert_eq!(role_label(""), None);
    }

    #[test]
    fn arguments_set_each_option_and_anything_else_is_refused() {
        let options = parse_arguments(
            [
                "--defaults-file=/etc/p.cnf",
                "--labels-file=/etc/l",
                "--listen=127.0.0.1:9200",
                "--metrics",
                "--max-replica-lag-seconds=5",
                "--fence",
                "--recorded-password-file=/etc/r",
            ]
            .map(String::from),
        )
        .unwrap();
        assert_eq!(
            options,
            AgentOptions {
                defaults_file: PathBuf::from("/etc/p.cnf"),
                labels_file: PathBuf::from("/etc/l"),
                listen: SocketAddr::from(([127, 0, 0, 1], 9200)),
                metrics: true,
                max_replica_lag_seconds: 5,
                fence: true,
                recorded_password_file: PathBuf::from("/etc/r"),
            }
        );
        assert_eq!(parse_arguments([]).unwrap(), AgentOptions::default());
        for bad in [
            "--port=1",
            "--listen=nowhere",
            "--max-replica-lag-seconds=-1",
            "--metrics=yes",
            "--fence=no",
        ] {
            assert!(parse_arguments([bad.to_string()]).is_err(), "{bad}");
        }
    }
}
