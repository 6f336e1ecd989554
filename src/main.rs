//! The operator process: wiring only.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use sakila::controller::context::Context;
use sakila::controller::validate::OperatorSettings;
use sakila::mysql::MySqlClient;
use sakila::telemetry::{self, LogFormat};

/// Options from the command line and the environment.
struct Options {
    log_format: LogFormat,
    settings: OperatorSettings,
}

fn options() -> Result<Options, String> {
    let mut log_format = LogFormat::Text;
    let mut settings = OperatorSettings::default();
    if let Ok(repository) = std::env::var("SAKILA_MYSQL_IMAGE_REPOSITORY") {
        settings.mysql_image_repository = repository;
    }
    for arg in std::env::args().skip(1) {
        match arg.split_once('=') {
            Some(("--log-format", "json")) => log_format = LogFormat::Json,
            Some(("--log-format", "text")) => log_format = LogFormat::Text,
            Some(("--mysql-image-repository", repository)) => {
                settings.mysql_image_repository = repository.to_string()
            }
            _ => {
                return Err(format!(
                    "unknown argument {arg:?}; expected --log-format=text|json or --mysql-image-repository=REPO"
                ));
            }
        }
    }
    Ok(Options {
        log_format,
        settings,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = options()?;
    telemetry::init(options.log_format);
    let client = Client::try_default().await?;
    let reporter = Reporter {
        controller: "sakila-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let context = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        settings: options.settings,
        connector: MySqlClient::new(Duration::from_secs(3), Duration::from_secs(10)),
    });
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        tracing::info!("shutting down");
    };
    sakila::controller::run::run(client, context, shutdown).await;
    Ok(())
}
