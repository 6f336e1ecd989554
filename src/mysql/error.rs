//! The error every SQL verb returns.

use std::time::Duration;

use super::gtid::GtidParseError;

/// A boxed driver error, so that only `client.rs` names `mysql_async`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why talking to one MySQL instance failed.
#[derive(Debug, thiserror::Error)]
pub enum MySqlError {
    /// The server could not be reached or refused the login.
    #[error("failed to connect to {endpoint}")]
    Connect {
        /// `host:port`.
        endpoint: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The server is up but rejected the credentials (error 1045).
    #[error("failed to log in to {endpoint} as {user:?}: access denied")]
    AccessDenied {
        /// `host:port`.
        endpoint: String,
        /// The account name used.
        user: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The connection was not established in time.
    #[error("failed to connect to {endpoint} within {after:?}")]
    ConnectTimeout {
        /// `host:port`.
        endpoint: String,
        /// The connect timeout.
        after: Duration,
    },
    /// The connection broke (or was abandoned after a timeout) during a statement.
    #[error("failed to {action}: connection to {endpoint} lost")]
    ConnectionLost {
        /// What was being done, e.g. "read replica status".
        action: String,
        /// `host:port`.
        endpoint: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// A statement did not finish in time; the connection is abandoned.
    #[error("failed to {action} on {endpoint} within {after:?}")]
    Timeout {
        /// What was being done.
        action: String,
        /// `host:port`.
        endpoint: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The server is read-only (`super_read_only`), so it rejected a write.
    #[error("failed to {action} on {endpoint}: the server is read-only")]
    ReadOnly {
        /// What was being done.
        action: String,
        /// `host:port`.
        endpoint: String,
    },
    /// The server answered with an error.
    #[error("failed to {action} on {endpoint}: server error {code}")]
    Query {
        /// What was being done.
        action: String,
        /// `host:port`.
        endpoint: String,
        /// MySQL's error number (e.g. 1045, 3707).
        code: u16,
        /// The driver's error, carrying the server's message.
        #[source]
        source: BoxError,
    },
    /// The server answered with something the operator cannot interpret.
    #[error("failed to parse {what} from {endpoint}: {detail}")]
    Parse {
        /// Which value, e.g. "@@server_id".
        what: String,
        /// `host:port`.
        endpoint: String,
        /// What was wrong.
        detail: String,
    },
    /// A GTID set from the server could not be parsed.
    #[error("failed to parse a GTID set from {endpoint}")]
    Gtid {
        /// `host:port`.
        endpoint: String,
        /// The parse error.
        #[source]
        source: GtidParseError,
    },
    /// A caller-supplied value that can never be valid SQL input.
    #[error("failed to {action}: {detail}")]
    InvalidInput {
        /// What was being done.
        action: String,
        /// What was wrong.
        detail: String,
    },
}

impl MySqlError {
    /// A short, bounded label for event reasons and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            MySqlError::Connect { .. } => "connect",
            MySqlError::ConnectTimeout { .. } => "connect",
            MySqlError::AccessDenied { .. } => "access_denied",
            MySqlError::ConnectionLost { .. } => "connection_lost",
            MySqlError::Timeout { .. } => "timeout",
            MySqlError::ReadOnly { .. } => "read_only",
            MySqlError::Query { .. } => "query",
            MySqlError::Parse { .. } | MySqlError::Gtid { .. } => "parse",
            MySqlError::InvalidInput { .. } => "invalid_input",
        }
    }

    /// True when the instance could not be talked to at all, as opposed to a
    /// live server that rejected a statement or the login.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            MySqlError::Connect { .. }
                | MySqlError::ConnectTimeout { .. }
                | MySqlError::ConnectionLost { .. }
        )
    }

    /// MySQL's error number when the server answered with an error.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            MySqlError::Query { code, .. } => Some(*code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_error() -> BoxError {
        Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    }

    #[test]
    fn unreachable_errors_are_told_apart_from_failed_queries() {
        let connect = MySqlError::Connect {
            endpoint: "db-0:3306".into(),
            source: io_error(),
        };
        let lost = MySqlError::ConnectionLost {
            action: "read status".into(),
            endpoint: "db-0:3306".into(),
            source: io_error(),
        };
        let query = MySqlError::Query {
            action: "set read_only".into(),
            endpoint: "db-0:3306".into(),
            code: 1227,
            source: io_error(),
        };
        assert!(connect.is_unreachable());
        assert!(lost.is_unreachable());
        assert!(!query.is_unreachable());
        let denied = MySqlError::AccessDenied {
            endpoint: "db-0:3306".into(),
            user: "repl".into(),
            source: io_error(),
        };
        assert!(
            !denied.is_unreachable(),
            "a live server that refused the login"
        );
        assert_eq!(denied.category(), "access_denied");
        assert_eq!(connect.category(), "connect");
        assert_eq!(query.category(), "query");
        assert_eq!(query.server_code(), Some(1227));
    }

    #[test]
    fn messages_read_failed_to() {
        let timeout = MySqlError::Timeout {
            action: "wait for GTID set".into(),
            endpoint: "db-1:3306".into(),
            after: Duration::from_secs(3),
        };
        assert_eq!(
            timeout.to_string(),
            "failed to wait for GTID set on db-1:3306 within 3s"
        );
        assert_eq!(timeout.category(), "timeout");
        let gtid = MySqlError::Gtid {
            endpoint: "db-1:3306".into(),
            source: crate::mysql::gtid::GtidSet::parse("x").unwrap_err(),
        };
        assert!(gtid.to_string().starts_with("failed to parse"));
        assert_eq!(gtid.category(), "parse");
    }
}
