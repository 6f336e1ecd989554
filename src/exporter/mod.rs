//! `sakila-operator exporter`: MySQL's own metrics for Prometheus, in a container beside each
//! mysqld of a cluster with `spec.monitoring.enabled`.
//!
//! Sakila's own code rather than mysqld_exporter: the series are named for MySQL 9 (upstream's
//! replication series are not produced by 9.x), it reads everything in one round trip on a
//! connection kept between scrapes, over the local socket with the probe account that already
//! exists (no new account, no password of its own), and it costs a few MiB. It runs from the
//! operator's image, so nothing else is built or pulled.

pub mod render;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::{self, Handler};
use crate::mysql::{Credentials, Endpoint, MySqlAdmin, MySqlClient, MySqlConnector};

/// The port the exporter listens on (mysqld_exporter's).
pub const EXPORTER_PORT: u16 = 9104;

/// What the exporter reads and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExporterOptions {
    /// The `[client]` option file with `user`, `password` and `socket` (the pod's probe.cnf).
    pub defaults_file: PathBuf,
    /// The address `/metrics` is served on.
    pub listen: SocketAddr,
}

impl Default for ExporterOptions {
    fn default() -> Self {
        Self {
            defaults_file: PathBuf::from("/var/run/sakila/probe.cnf"),
            listen: SocketAddr::from(([0, 0, 0, 0], EXPORTER_PORT)),
        }
    }
}

/// Why the exporter could not start or read its login.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    /// An argument it does not know.
    #[error("unknown argument {0:?}; expected --defaults-file=PATH, --listen=ADDR:PORT")]
    Argument(String),
    /// The option file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadOptions {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The option file lacks a setting.
    #[error("{path} has no `{key}` in its [client] section")]
    MissingOption { path: PathBuf, key: &'static str },
    /// The listening socket could not be opened.
    #[error("cannot serve on {address}: {source}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Parses `exporter`'s arguments (those after the subcommand).
pub fn parse_arguments(
    args: impl IntoIterator<Item = String>,
) -> Result<ExporterOptions, ExporterError> {
    let mut options = ExporterOptions::default();
    for arg in args {
        match arg.split_once('=') {
            Some(("--defaults-file", path)) if !path.is_empty() => {
                options.defaults_file = PathBuf::from(path)
            }
            Some(("--listen", address)) => {
                options.listen = address
                    .parse()
                    .map_err(|_| ExporterError::Argument(arg.clone()))?
            }
            _ => return Err(ExporterError::Argument(arg)),
        }
    }
    Ok(options)
}

/// The login of a `[client]` option file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLogin {
    pub credentials: Credentials,
    pub socket: String,
}

/// Reads `user`, `password` and `socket` from the `[client]` section of a MySQL option file.
/// Values may be quoted; inside quotes a backslash escapes the next character, as MySQL reads
/// them.
pub fn parse_client_options(path: &Path, text: &str) -> Result<ClientLogin, ExporterError> {
    let mut in_client = false;
    let (mut user, mut password, mut socket) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_client = line == "[client]";
            continue;
        }
        if !in_client || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        match key.trim() {
            "user" => user = Some(value),
            "password" => password = Some(value),
            "socket" => socket = Some(value),
            _ => {}
        }
    }
    let missing = |key| ExporterError::MissingOption {
        path: path.to_path_buf(),
        key,
    };
    Ok(ClientLogin {
        credentials: Credentials::new(
            user.ok_or_else(|| missing("user"))?,
            password.ok_or_else(|| missing("password"))?,
        ),
        socket: socket.ok_or_else(|| missing("socket"))?,
    })
}

fn unquote(value: &str) -> String {
    let quoted = value.len() >= 2
        && (value.starts_with('"') && value.ends_with('"')
            || value.starts_with('\'') && value.ends_with('\''));
    if !quoted {
        return value.to_string();
    }
    let mut out = String::new();
    let mut chars = value[1..value.len() - 1].chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next)) => {
                chars.next();
                out.push(match next {
                    'n' => '\n',
                    't' => '\t',
                    other => other,
                });
            }
            _ => out.push(c),
        }
    }
    out
}

/// Serves `/metrics` (and `/healthz`) until the process ends. The option file is read at every
/// scrape: it is written by the init container, and a rotated password is picked up.
pub async fn run(options: ExporterOptions) -> Result<(), ExporterError> {
    // Short timeouts: a scrape must answer well within Prometheus' scrape timeout (10 s by
    // default), with mysql_up 0 if mysqld does not.
    let client = MySqlClient::new(Duration::from_secs(2), Duration::from_secs(5))
        .with_probe_timeout(Duration::from_secs(2));
    let defaults_file = Arc::new(options.defaults_file);
    let handler: Handler = Arc::new(move |path| {
        let (client, defaults_file) = (client.clone(), defaults_file.clone());
        Box::pin(async move {
            match path.as_str() {
                "/metrics" => http::with_content_type(
                    http::text(hyper::StatusCode::OK, scrape(&client, &defaults_file).await),
                    "text/plain; version=0.0.4; charset=utf-8",
                ),
                "/healthz" => http::text(hyper::StatusCode::OK, "ok\n".into()),
                _ => http::not_found(),
            }
        })
    });
    tracing::info!(address = %options.listen, "serving MySQL metrics on /metrics");
    http::listen(options.listen, handler)
        .await
        .map_err(|source| ExporterError::Listen {
            address: options.listen,
            source,
        })
}

/// One scrape: a kept session reads the server; any failure is `mysql_up 0` and a log line.
async fn scrape(client: &MySqlClient, defaults_file: &Path) -> String {
    let start = Instant::now();
    let read = async {
        let text = std::fs::read_to_string(defaults_file).map_err(|source| {
            ExporterError::ReadOptions {
                path: defaults_file.to_path_buf(),
                source,
            }
            .to_string()
        })?;
        let login = parse_client_options(defaults_file, &text).map_err(|e| e.to_string())?;
        let session = client
            .connect_kept(&Endpoint::socket(login.socket), &login.credentials)
            .await
            .map_err(|e| e.to_string())?;
        session.server_metrics().await.map_err(|e| e.to_string())
    };
    let metrics = match read.await {
        Ok(metrics) => Some(metrics),
        Err(why) => {
            tracing::warn!(error = %why, "could not read mysqld");
            None
        }
    };
    render::render(metrics.as_ref(), start.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_section_of_an_option_file_gives_the_login() {
        let text = "[mysqld]\nuser = mysql\n\n[client]\nuser = sakila-probe\n\
                    password = \"se\\\"cr=et\"\nsocket = /var/run/mysqld/mysqld.sock\n";
        let login = parse_client_options(Path::new("probe.cnf"), text).unwrap();
        assert_eq!(
            login.credentials,
            Credentials::new("sakila-probe", "se\"cr=et")
        );
        assert_eq!(login.socket, "/var/run/mysqld/mysqld.sock");
    }

    #[test]
    fn a_missing_setting_is_named() {
        let error = parse_client_options(Path::new("p.cnf"), "[client]\nuser = u\nsocket = /s\n")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "p.cnf has no `password` in its [client] section"
        );
        // Outside [client] does not count.
        let error = parse_client_options(
            Path::new("p.cnf"),
            "[mysqld]\nuser = u\npassword = p\nsocket = /s\n",
        )
        .unwrap_err();
        assert!(error.to_string().contains("`user`"), "{error}");
    }

    #[test]
    fn arguments_set_the_file_and_the_address_and_anything_else_is_refused() {
        let options = parse_arguments([
            "--defaults-file=/etc/p.cnf".to_string(),
            "--listen=127.0.0.1:9200".to_string(),
        ])
        .unwrap();
        assert_eq!(options.defaults_file, PathBuf::from("/etc/p.cnf"));
        assert_eq!(options.listen, SocketAddr::from(([127, 0, 0, 1], 9200)));
        assert_eq!(parse_arguments([]).unwrap(), ExporterOptions::default());
        assert!(parse_arguments(["--port=1".to_string()]).is_err());
        assert!(parse_arguments(["--listen=nowhere".to_string()]).is_err());
    }
}
