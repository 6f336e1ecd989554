//! The command line of `kubectl sakila`, parsed without IO.

use std::time::Duration;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// One screen about a cluster.
    Status { cluster: String, json: bool },
    /// Make `instance` (a pod name or an ordinal) the primary and wait until it is.
    Switchover {
        cluster: String,
        instance: String,
        timeout: Duration,
    },
    /// Replace a replica's data with a clone of the primary's.
    Reclone { pod: String },
    /// The plugin's version and the operator's.
    Version,
    /// Usage.
    Help,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    /// `-n`/`--namespace`; the kubeconfig context's namespace when left out.
    pub namespace: Option<String>,
}

pub const USAGE: &str = "\
kubectl sakila: Sakila's MySQLClusters from the command line

usage:
  kubectl sakila status CLUSTER [-o json]      instances, roles, lag, GTIDs, conditions, events
  kubectl sakila switchover CLUSTER INSTANCE   make INSTANCE (pod name or ordinal) the primary
                 [--timeout=SECONDS]           and wait until it is (default 120)
  kubectl sakila reclone POD                   replace a replica's data with a clone
  kubectl sakila version                       this plugin's and the operator's versions

flags: -n, --namespace NAMESPACE (default: the kubeconfig context's)";

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}\n\n{USAGE}")]
pub struct UsageError(String);

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Invocation, UsageError> {
    let mut namespace = None;
    let mut json = false;
    let mut timeout = Duration::from_secs(120);
    let mut words = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value_of = |flag: &str| {
            args.next()
                .ok_or_else(|| usage(format!("{flag} needs a value")))
        };
        match arg.as_str() {
            "-n" | "--namespace" => namespace = Some(value_of(&arg)?),
            "-o" | "--output" => json = output_is_json(&value_of(&arg)?)?,
            "-h" | "--help" => words.push("help".to_string()),
            _ => {
                if let Some(value) = arg.strip_prefix("--namespace=") {
                    namespace = Some(value.to_string());
                } else if let Some(value) = arg.strip_prefix("--output=") {
                    json = output_is_json(value)?;
                } else if let Some(value) = arg.strip_prefix("-o").filter(|v| !v.is_empty()) {
                    json = output_is_json(value)?;
                } else if let Some(value) = arg.strip_prefix("--timeout=") {
                    let seconds: u64 = value
                        .trim_end_matches('s')
                        .parse()
                        .map_err(|_| usage(format!("--timeout wants seconds, got {value:?}")))?;
                    timeout = Duration::from_secs(seconds);
                } else if arg.starts_with('-') {
                    return Err(usage(format!("unknown flag {arg}")));
                } else {
                    words.push(arg);
                }
            }
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let command = match words.as_slice() {
        [] | ["help", ..] => Command::Help,
        ["status", cluster] => Command::Status {
            cluster: cluster.to_string(),
            json,
        },
        ["switchover", cluster, instance] => Command::Switchover {
            cluster: cluster.to_string(),
            instance: instance.to_string(),
            timeout,
        },
        ["reclone", pod] => Command::Reclone {
            pod: pod.to_string(),
        },
        ["version"] => Command::Version,
        ["status", ..] => return Err(usage("status takes one CLUSTER")),
        ["switchover", ..] => return Err(usage("switchover takes CLUSTER and INSTANCE")),
        ["reclone", ..] => return Err(usage("reclone takes one POD")),
        [other, ..] => return Err(usage(format!("unknown command {other:?}"))),
    };
    Ok(Invocation { command, namespace })
}

fn output_is_json(value: &str) -> Result<bool, UsageError> {
    match value {
        "json" => Ok(true),
        "text" | "wide" => Ok(false),
        other => Err(usage(format!("-o takes json or text, got {other:?}"))),
    }
}

/// The ordinal `instance` names in `cluster`: `2` or `db-2`.
pub fn ordinal_of(cluster: &str, instance: &str) -> Option<u8> {
    let digits = instance
        .strip_prefix(cluster)
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or(instance);
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn commands_and_flags_in_any_order() {
        let cases = [
            (
                "status db",
                Command::Status {
                    cluster: "db".into(),
                    json: false,
                },
                None,
            ),
            (
                "-n shop status db -o json",
                Command::Status {
                    cluster: "db".into(),
                    json: true,
                },
                Some("shop"),
            ),
            (
                "status --namespace=shop db -ojson",
                Command::Status {
                    cluster: "db".into(),
                    json: true,
                },
                Some("shop"),
            ),
            (
                "switchover db db-2 --timeout=30",
                Command::Switchover {
                    cluster: "db".into(),
                    instance: "db-2".into(),
                    timeout: Duration::from_secs(30),
                },
                None,
            ),
            (
                "reclone db-1 --namespace shop",
                Command::Reclone { pod: "db-1".into() },
                Some("shop"),
            ),
            ("version", Command::Version, None),
            ("", Command::Help, None),
            ("--help", Command::Help, None),
        ];
        for (line, command, namespace) in cases {
            let parsed = parse(words(line)).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(parsed.command, command, "{line}");
            assert_eq!(parsed.namespace.as_deref(), namespace, "{line}");
        }
    }

    #[test]
    fn a_wrong_command_line_says_what_is_wrong_and_shows_the_usage() {
        for (line, says) in [
            ("status", "status takes one CLUSTER"),
            ("switchover db", "switchover takes CLUSTER and INSTANCE"),
            ("promote db", "unknown command \"promote\""),
            ("status db -o yaml", "-o takes json or text"),
            ("status db --force", "unknown flag --force"),
            ("status db -n", "-n needs a value"),
            ("switchover db 1 --timeout=soon", "--timeout wants seconds"),
        ] {
            let error = parse(words(line)).unwrap_err().to_string();
            assert!(error.starts_with(says), "{line}: {error}");
            assert!(error.contains("usage:"), "{line}: {error}");
        }
    }

    #[test]
    fn an_instance_is_a_pod_name_or_an_ordinal() {
        assert_eq!(ordinal_of("db", "db-2"), Some(2));
        assert_eq!(ordinal_of("db", "2"), Some(2));
        assert_eq!(ordinal_of("db-a", "db-a-1"), Some(1));
        assert_eq!(ordinal_of("db", "web-1"), None);
        assert_eq!(ordinal_of("db", "db-x"), None);
    }
}
