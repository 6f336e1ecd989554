//! MySQL's own metrics for Prometheus, served by the agent beside each mysqld (`crate::agent`)
//! of a cluster with `spec.monitoring.enabled`.
//!
//! Sakila's own code rather than mysqld_exporter: the series are named for MySQL 9 (upstream's
//! replication series are not produced by 9.x), it reads everything in one round trip on a
//! connection kept between scrapes, over the local socket with the probe account that already
//! exists (no new account, no password of its own), and it costs a few MiB. It runs from the
//! operator's image, so nothing else is built or pulled.

pub mod render;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::mysql::{Credentials, Endpoint, MySqlAdmin, MySqlClient, MySqlConnector};

/// The port the exporter listened on (mysqld_exporter's), which the agent serves `/metrics` on.
pub const EXPORTER_PORT: u16 = 9104;

/// Why the probe account's option file gave no login.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    /// The option file lacks a setting.
    #[error("{path} has no `{key}` in its [client] section")]
    MissingOption { path: PathBuf, key: &'static str },
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

/// The login of the option file at `path`, read now: the file is written by the init container
/// and rewritten when the probe account's password is rotated.
pub fn read_login(path: &Path) -> Result<ClientLogin, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_client_options(path, &text).map_err(|e| e.to_string())
}

/// One scrape: a kept session reads the server; any failure is `mysql_up 0` and a log line.
pub(crate) async fn scrape(client: &MySqlClient, defaults_file: &Path) -> String {
    let start = Instant::now();
    let read = async {
        let login = read_login(defaults_file)?;
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
}
