//! The operator process: wiring only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use sakila::controller::context::Context;
use sakila::controller::run::Scope;
use sakila::http::Health;
use sakila::leader_election::{Config, Ending, LeaderElector};
use sakila::metrics::Metrics;
use sakila::mysql::MySqlClient;
use sakila::telemetry::{self, LogFormat};
use sakila::validate::OperatorSettings;
use tokio::sync::watch;

/// How long reconciles in flight may run on after SIGTERM before the lease is released anyway;
/// within the pod's 30 s termination grace period.
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(20);

/// Options from the command line and the environment.
struct Options {
    log_format: LogFormat,
    settings: OperatorSettings,
    http_address: SocketAddr,
    scope: Scope,
    leader_election: bool,
    lease_name: String,
}

const USAGE: &str = "expected --log-format=text|json, --mysql-image-repository=REPO, \
    --exporter-image=IMAGE, \
    --http-address=ADDR:PORT, --watch-namespaces=a,b (empty: all), --leader-election=true|false, --leader-election-lease=NAME";

fn options() -> Result<Options, String> {
    let mut options = Options {
        log_format: LogFormat::Text,
        settings: OperatorSettings::default(),
        http_address: SocketAddr::from(([0, 0, 0, 0], 8080)),
        scope: Scope::Cluster,
        leader_election: true,
        lease_name: "sakila-operator".into(),
    };
    // The downward API's, set by the chart; a NetworkPolicy of a cluster lets this namespace in.
    options.settings.operator_namespace = std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty());
    if let Ok(repository) = std::env::var("SAKILA_MYSQL_IMAGE_REPOSITORY") {
        options.settings.mysql_image_repository = repository;
    }
    for arg in std::env::args().skip(1) {
        match arg.split_once('=') {
            Some(("--log-format", "json")) => options.log_format = LogFormat::Json,
            Some(("--log-format", "text")) => options.log_format = LogFormat::Text,
            Some(("--mysql-image-repository", repository)) => {
                options.settings.mysql_image_repository = repository.to_string()
            }
            Some(("--exporter-image", image)) => {
                options.settings.exporter_image = (!image.is_empty()).then(|| image.to_string())
            }
            Some(("--http-address", address)) => {
                options.http_address = address
                    .parse()
                    .map_err(|e| format!("bad --http-address {address:?}: {e}"))?
            }
            Some(("--watch-namespaces", list)) => {
                let namespaces: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|ns| !ns.is_empty())
                    .map(String::from)
                    .collect();
                options.scope = if namespaces.is_empty() {
                    Scope::Cluster
                } else {
                    Scope::Namespaces(namespaces)
                };
            }
            Some(("--leader-election", "true")) => options.leader_election = true,
            Some(("--leader-election", "false")) => options.leader_election = false,
            Some(("--leader-election-lease", name)) if !name.is_empty() => {
                options.lease_name = name.to_string()
            }
            _ => return Err(format!("unknown argument {arg:?}; {USAGE}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `sakila-operator agent ...`: beside each mysqld, its probes and metrics, from the same image.
    if std::env::args().nth(1).as_deref() == Some("agent") {
        let options = sakila::agent::parse_arguments(std::env::args().skip(2))?;
        telemetry::init(LogFormat::Text);
        sakila::agent::run(options).await?;
        return Ok(());
    }
    // `sakila-operator backup`: takes one backup, inside a backup's Job.
    if std::env::args().nth(1).as_deref() == Some("backup") {
        telemetry::init(LogFormat::Text);
        sakila::backup::runner::run().await?;
        return Ok(());
    }
    // `sakila-operator restore`: restores instance 0 of a cluster created from a backup.
    if std::env::args().nth(1).as_deref() == Some("restore") {
        telemetry::init(LogFormat::Text);
        sakila::backup::restore::run().await?;
        return Ok(());
    }
    // `sakila-operator verify`: restores a backup into scratch space and checks it, inside a
    // verification's Job.
    if std::env::args().nth(1).as_deref() == Some("verify") {
        telemetry::init(LogFormat::Text);
        sakila::backup::verifier::run().await?;
        return Ok(());
    }
    // `sakila-operator copy-binary DEST`: how a backup's Job gets this binary into the
    // cluster's mysqld image, which runs it.
    if std::env::args().nth(1).as_deref() == Some("copy-binary") {
        let destination = std::env::args()
            .nth(2)
            .ok_or("copy-binary needs a destination")?;
        std::fs::copy(std::env::current_exe()?, &destination)?;
        return Ok(());
    }
    let options = options()?;
    telemetry::init(options.log_format);
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    tokio::spawn({
        let (metrics, health) = (metrics.clone(), health.clone());
        async move {
            if let Err(e) = sakila::http::serve(options.http_address, metrics, health).await {
                tracing::error!(error = %e, "the HTTP server failed");
                std::process::exit(1);
            }
        }
    });

    let client = Client::try_from(sakila::kube_config::infer("sakila-operator").await?)?;
    let pod_name = std::env::var("POD_NAME").ok();
    let reporter = Reporter {
        controller: "sakila-operator".into(),
        instance: pod_name.clone(),
    };
    let context = Arc::new(Context::new(
        client.clone(),
        options.settings,
        // Always encrypted: verified against the cluster's CA where a pod serves its
        // certificate, unverified where a pod made before TLS serves mysqld's own.
        MySqlClient::new(Duration::from_secs(3), Duration::from_secs(10))
            .with_probe_timeout(sakila::clustering::intent::PROBE_TIMEOUT)
            .with_tls(true),
        Recorder::new(client.clone(), reporter),
        metrics.clone(),
    ));

    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        tracing::info!("shutting down: no new reconciles");
        let _ = stop.send(true);
    });
    let controller = {
        let (client, shutdown, metrics, health) = (
            client.clone(),
            shutdown.clone(),
            metrics.clone(),
            health.clone(),
        );
        move || {
            sakila::controller::run::run(client, context, options.scope, shutdown, metrics, health)
        }
    };

    if !options.leader_election {
        client.apiserver_version().await?;
        health.set_connected();
        health.set_leader(true);
        metrics.set_leader(true);
        controller().await;
        return Ok(());
    }
    let namespace =
        std::env::var("POD_NAMESPACE").unwrap_or_else(|_| client.default_namespace().to_string());
    let identity = pod_name.ok_or("POD_NAME must name this pod for leader election")?;
    let config = Config {
        lease_name: options.lease_name,
        ..Config::new(namespace, identity)
    };
    let elector = LeaderElector::new(client, config, health, metrics);
    match elector.lead(shutdown, SHUTDOWN_BUDGET, controller).await {
        Ending::LostLease => {
            // Another replica may lead soon: stop acting now, and let Kubernetes restart us.
            tracing::error!("lost the leader lease; exiting");
            std::process::exit(1);
        }
        ending => tracing::info!(?ending, "stopped"),
    }
    Ok(())
}
