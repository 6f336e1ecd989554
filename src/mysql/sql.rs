//! Statement text for the statements MySQL will not prepare: quoting and builders.
//!
//! `CHANGE REPLICATION SOURCE`, `CREATE USER`, `GRANT` and `CLONE INSTANCE`
//! take no placeholders, so values are quoted here. String quoting assumes
//! backslash escapes are on; the client removes `NO_BACKSLASH_ESCAPES` from
//! its session `sql_mode` so that this holds.

use super::admin::{Credentials, Endpoint, PeerTls, ReplicationSource, UserSpec};
use super::error::MySqlError;

/// Quotes an identifier (or an account's user or host part) with backticks.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Quotes a string literal, escaping every character MySQL's lexer treats specially.
pub fn quote_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `` `user`@`host` ``.
pub fn account(user: &str, host: &str) -> String {
    format!("{}@{}", quote_ident(user), quote_ident(host))
}

/// Rejects names MySQL would misread or that cannot name an operator account.
pub fn validate_account(action: &str, user: &str, host: &str) -> Result<(), MySqlError> {
    let invalid = |detail: String| MySqlError::InvalidInput {
        action: action.to_owned(),
        detail,
    };
    if user.is_empty() || user.chars().count() > 32 {
        return Err(invalid(format!(
            "user name {user:?} must be 1 to 32 characters"
        )));
    }
    if host.is_empty() || host.chars().count() > 255 {
        return Err(invalid(format!(
            "host {host:?} must be 1 to 255 characters"
        )));
    }
    if user.contains('\0') || host.contains('\0') {
        return Err(invalid("account names cannot contain NUL".to_owned()));
    }
    Ok(())
}

/// Privileges are keywords and cannot be quoted, so only `WORD[ WORD]*` of
/// uppercase letters and underscores passes (e.g. `REPLICATION SLAVE`, `CLONE_ADMIN`).
pub fn validate_privilege(action: &str, privilege: &str) -> Result<String, MySqlError> {
    let normalised = privilege
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    let valid = !normalised.is_empty()
        && normalised.split(' ').all(|w| {
            w.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                && !matches!(w, "ON" | "TO" | "WITH" | "AS" | "IDENTIFIED")
        });
    if valid {
        Ok(normalised)
    } else {
        Err(MySqlError::InvalidInput {
            action: action.to_owned(),
            detail: format!("{privilege:?} is not a privilege name"),
        })
    }
}

/// `CREATE USER IF NOT EXISTS ... IDENTIFIED BY ... PASSWORD EXPIRE NEVER`: the operator's
/// accounts must outlive a user's `default_password_lifetime`.
pub fn create_user(user: &UserSpec) -> String {
    format!(
        "CREATE USER IF NOT EXISTS {} IDENTIFIED BY {} PASSWORD EXPIRE NEVER",
        account(&user.name, &user.host),
        quote_string(&user.password)
    )
}

/// `ALTER USER ... IDENTIFIED BY ... PASSWORD EXPIRE NEVER`.
pub fn alter_user_password(user: &UserSpec) -> String {
    format!(
        "ALTER USER {} IDENTIFIED BY {} PASSWORD EXPIRE NEVER",
        account(&user.name, &user.host),
        quote_string(&user.password)
    )
}

/// What the operator's account may do on every instance, and why; nothing else (no `ALL`, no
/// `GRANT OPTION`, no access to user data). `docs/security.md` lists them.
pub const OPERATOR_PRIVILEGES: &[(&str, &str, &str)] = &[
    // (privilege, on, what for)
    (
        "SYSTEM_VARIABLES_ADMIN",
        "*.*",
        "read_only and super_read_only, semi-sync, clone and online settings (SET GLOBAL), sql_log_bin for the lease",
    ),
    (
        "PERSIST_RO_VARIABLES_ADMIN",
        "*.*",
        "the fence's SET PERSIST_ONLY skip_replica_start",
    ),
    (
        "CONNECTION_ADMIN",
        "*.*",
        "disconnecting clients of a demoted primary, ALTER INSTANCE RELOAD TLS, a connection when max_connections is reached",
    ),
    ("PROCESS", "*.*", "seeing every session to disconnect"),
    (
        "SYSTEM_USER",
        "*.*",
        "disconnecting sessions of accounts that have it, such as root",
    ),
    ("RELOAD", "*.*", "RESET REPLICA ALL on a new primary"),
    (
        "CREATE USER",
        "*.*",
        "rotating root's and the system accounts' passwords (ALTER USER ... RETAIN CURRENT PASSWORD, DISCARD OLD PASSWORD)",
    ),
    (
        "SELECT",
        "mysql.user",
        "seeing which accounts still accept a retained old password during a rotation",
    ),
    (
        "REPLICATION_SLAVE_ADMIN",
        "*.*",
        "CHANGE REPLICATION SOURCE, START/STOP/RESET REPLICA",
    ),
    (
        "REPLICATION CLIENT",
        "*.*",
        "SHOW REPLICA STATUS, SHOW BINARY LOGS",
    ),
    ("CLONE_ADMIN", "*.*", "CLONE INSTANCE into a recipient"),
    (
        "SHUTDOWN",
        "*.*",
        "stopping a primary that cannot be made read-only",
    ),
    (
        "SELECT",
        "performance_schema.*",
        "clone_status, replication and TLS state",
    ),
    (
        "INSERT",
        "mysql.plugin",
        "INSTALL PLUGIN when a plugin was not loaded at start",
    ),
    (
        "SELECT, INSERT, UPDATE, DELETE, CREATE",
        "sakila.*",
        "the primary's lease and the cluster's identity",
    ),
];

/// The `GRANT` statements that give `account` (quoted, e.g. `'sakila-operator'@'%'`) the
/// operator's privileges: init.sh runs them, and the integration tests log in with them.
pub fn operator_grants(account: &str) -> String {
    OPERATOR_PRIVILEGES
        .iter()
        .map(|(privileges, on, _)| format!("GRANT {privileges} ON {on} TO {account};"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `GRANT a, b ON *.* TO ...`; `privileges` must have passed [`validate_privilege`].
pub fn grant_global(user: &UserSpec, privileges: &[String]) -> String {
    format!(
        "GRANT {} ON *.* TO {}",
        privileges.join(", "),
        account(&user.name, &user.host)
    )
}

/// `CHANGE REPLICATION SOURCE TO ...` with GTID auto-positioning, always over TLS. Every TLS
/// option is written, so a channel configured before (without TLS, or unverified) is
/// overwritten whole.
pub fn change_replication_source(source: &ReplicationSource) -> String {
    let (ca, verify) = match &source.tls {
        PeerTls::Unverified => ("", 0),
        PeerTls::Verified { ca_path } => (ca_path.as_str(), 1),
    };
    format!(
        "CHANGE REPLICATION SOURCE TO SOURCE_HOST = {}, SOURCE_PORT = {}, \
         SOURCE_USER = {}, SOURCE_PASSWORD = {}, SOURCE_AUTO_POSITION = 1, \
         GET_SOURCE_PUBLIC_KEY = 0, SOURCE_SSL = 1, SOURCE_SSL_CA = {}, \
         SOURCE_SSL_VERIFY_SERVER_CERT = {verify}, SOURCE_CONNECT_RETRY = {}, \
         SOURCE_RETRY_COUNT = {}",
        quote_string(&source.endpoint.host),
        source.endpoint.port,
        quote_string(&source.credentials.user),
        quote_string(&source.credentials.password),
        quote_string(ca),
        source.connect_retry.as_secs().max(1),
        source.retry_count,
    )
}

/// `CLONE INSTANCE FROM 'user'@'host':port IDENTIFIED BY '...' REQUIRE SSL`: always encrypted;
/// whether the donor's certificate is checked is `clone_ssl_ca`'s ([`clone_ssl_ca`]).
pub fn clone_instance(donor: &Endpoint, credentials: &Credentials) -> String {
    format!(
        "CLONE INSTANCE FROM {}@{}:{} IDENTIFIED BY {} REQUIRE SSL",
        quote_string(&credentials.user),
        quote_string(&donor.host),
        donor.port,
        quote_string(&credentials.password),
    )
}

/// [`clone_instance`] into `directory` on the recipient's host instead of over its own data.
pub fn clone_instance_into(donor: &Endpoint, credentials: &Credentials, directory: &str) -> String {
    format!(
        "CLONE INSTANCE FROM {}@{}:{} IDENTIFIED BY {} DATA DIRECTORY = {} REQUIRE SSL",
        quote_string(&credentials.user),
        quote_string(&donor.host),
        donor.port,
        quote_string(&credentials.password),
        quote_string(directory),
    )
}

/// `ALTER USER IF EXISTS 'user'@'host' IDENTIFIED BY '...'`: the password only, whatever the
/// account's other attributes (root keeps the user's expiry policy).
pub fn set_existing_password(user: &str, host: &str, password: &str) -> String {
    format!(
        "ALTER USER IF EXISTS {} IDENTIFIED BY {}",
        account(user, host),
        quote_string(password)
    )
}

/// `ALTER USER IF EXISTS u@h1 IDENTIFIED BY '...' RETAIN CURRENT PASSWORD, u@h2 ...`: the new
/// password becomes the accounts' own and the one they had stays accepted as a second, until
/// [`discard_old_password`]. Binlogged (as a hash), so the replicas take it from the primary.
pub fn retain_current_password(user: &str, hosts: &[&str], password: &str) -> String {
    let accounts = hosts
        .iter()
        .map(|host| {
            format!(
                "{} IDENTIFIED BY {} RETAIN CURRENT PASSWORD",
                account(user, host),
                quote_string(password)
            )
        })
        .collect::<Vec<_>>();
    format!("ALTER USER IF EXISTS {}", accounts.join(", "))
}

/// `ALTER USER IF EXISTS u@h1 DISCARD OLD PASSWORD, ...`: the retained password stops working.
pub fn discard_old_password(user: &str, hosts: &[&str]) -> String {
    let accounts = hosts
        .iter()
        .map(|host| format!("{} DISCARD OLD PASSWORD", account(user, host)))
        .collect::<Vec<_>>();
    format!("ALTER USER IF EXISTS {}", accounts.join(", "))
}

/// The users one of whose accounts still accepts a retained (secondary) password.
pub const USERS_WITH_SECONDARY_PASSWORD: &str = "SELECT DISTINCT CAST(user AS CHAR) FROM mysql.user \
     WHERE JSON_CONTAINS_PATH(User_attributes, 'one', '$.additional_password')";

/// Whether `root@'%'` is locked (`Y`/`N`); no row when it does not exist.
pub const REMOTE_ROOT_LOCKED: &str =
    "SELECT CAST(account_locked AS CHAR) FROM mysql.user WHERE User = 'root' AND Host = '%'";

/// `ALTER USER IF EXISTS root@'%' ACCOUNT LOCK` (or `UNLOCK`): refuses (or allows again) new
/// logins as root from outside the pod; its password and privileges stay.
pub fn lock_remote_root(locked: bool) -> String {
    let lock = if locked { "LOCK" } else { "UNLOCK" };
    format!(
        "ALTER USER IF EXISTS {} ACCOUNT {lock}",
        account("root", "%")
    )
}

/// `CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD = ...`: the channel's other settings stay.
pub fn change_source_password(password: &str) -> String {
    format!(
        "CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD = {}",
        quote_string(password)
    )
}

/// The recipient's record of its last clone, and its version.
pub const CLONE_POINT: &str = "SELECT STATE, ERROR_NO, ERROR_MESSAGE, BINLOG_FILE, \
     BINLOG_POSITION, GTID_EXECUTED, @@version FROM performance_schema.clone_status";

/// The value of `clone_ssl_ca` for a clone: the CA file that checks the donor's certificate, or
/// empty for an encrypted clone that takes whatever certificate the donor serves.
/// The base tables `check_tables` checks, `schema`, `name`.
pub const CHECKED_TABLES: &str = "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
     WHERE TABLE_TYPE = 'BASE TABLE' \
     AND TABLE_SCHEMA NOT IN ('information_schema', 'performance_schema') \
     ORDER BY TABLE_SCHEMA, TABLE_NAME";

pub fn check_table(schema: &str, table: &str) -> String {
    format!("CHECK TABLE {}.{}", quote_ident(schema), quote_ident(table))
}

pub fn clone_ssl_ca(tls: &PeerTls) -> &str {
    match tls {
        PeerTls::Unverified => "",
        PeerTls::Verified { ca_path } => ca_path,
    }
}

/// The `host:port` value for `clone_valid_donor_list`.
pub fn donor_list_entry(donor: &Endpoint) -> String {
    format!("{}:{}", donor.host, donor.port)
}

/// A system variable's name as `SET GLOBAL` takes it: only lowercase letters, digits and `_`,
/// so it needs no quoting and cannot carry anything else.
fn validate_variable(action: &str, name: &str) -> Result<(), MySqlError> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        Ok(())
    } else {
        Err(MySqlError::InvalidInput {
            action: action.to_owned(),
            detail: format!("{name:?} is not a system variable name"),
        })
    }
}

/// An option-file value as a literal `SET GLOBAL` accepts for the same setting. Option files
/// take `1G` and unquoted words; `SET` takes neither a size suffix nor a number in quotes
/// (error 1232), so whole numbers (with a suffix multiplied out) and decimals go unquoted,
/// ON/OFF/TRUE/FALSE go as keywords, and anything else as a string.
pub fn setting_literal(value: &str) -> String {
    let value = value.trim();
    let unquoted = ['\'', '"']
        .iter()
        .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
        .unwrap_or(value);
    if let Some(number) = whole_number_with_suffix(unquoted) {
        return number.to_string();
    }
    let decimal = unquoted.split_once('.').is_some_and(|(whole, fraction)| {
        !whole.is_empty()
            && whole.chars().all(|c| c.is_ascii_digit())
            && fraction.chars().all(|c| c.is_ascii_digit())
    });
    if decimal {
        return unquoted.to_string();
    }
    let keyword = unquoted.to_ascii_uppercase();
    if matches!(keyword.as_str(), "ON" | "OFF" | "TRUE" | "FALSE") {
        return keyword;
    }
    quote_string(unquoted)
}

/// `123`, or `4K`, `16M`, `1G`, `2T`, `1P`, `1E` (any case) multiplied out as option files do;
/// `None` for anything else or a value that overflows.
fn whole_number_with_suffix(value: &str) -> Option<u64> {
    let (digits, shift) = match value.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                'P' => 50,
                'E' => 60,
                _ => return None,
            };
            (&value[..i], shift)
        }
        _ => (value, 0),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let number: u64 = digits.parse().ok()?;
    number
        .checked_mul(1u64.checked_shl(shift)?)
        .filter(|n| n >> shift == number)
}

/// `SET GLOBAL name = literal`, the value given as in an option file.
pub fn set_global(name: &str, value: &str) -> Result<String, MySqlError> {
    validate_variable("set a system variable", name)?;
    Ok(format!("SET GLOBAL {name} = {}", setting_literal(value)))
}

/// `SET GLOBAL name = DEFAULT`: a setting removed from the configuration returns to the value
/// a restart would give it.
pub fn reset_global(name: &str) -> Result<String, MySqlError> {
    validate_variable("reset a system variable", name)?;
    Ok(format!("SET GLOBAL {name} = DEFAULT"))
}

/// Prepares a session for a binary log dump: the heartbeat it sends while idle (nanoseconds),
/// and that it reads checksummed events, under the names servers read over the versions
/// (mysql_async sets only the older checksum one).
pub fn binlog_dump_session(heartbeat: std::time::Duration) -> String {
    let nanos = heartbeat.as_nanos();
    format!(
        "SET @master_heartbeat_period = {nanos}, @source_heartbeat_period = {nanos}, \
         @source_binlog_checksum = @@GLOBAL.binlog_checksum"
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn identifiers_double_embedded_backticks() {
        assert_eq!(quote_ident("repl"), "`repl`");
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_ident("`; DROP USER x; --"), "```; DROP USER x; --`");
        assert_eq!(quote_ident(""), "``");
    }

    #[test]
    fn strings_escape_quotes_backslashes_and_control_characters() {
        assert_eq!(quote_string("plain"), "'plain'");
        assert_eq!(quote_string("it's"), r"'it\'s'");
        assert_eq!(quote_string(r"back\slash"), r"'back\\slash'");
        assert_eq!(quote_string(r"\'"), r"'\\\''");
        assert_eq!(quote_string("a\0b\nc\rd\u{1a}"), r"'a\0b\nc\rd\Z'");
        assert_eq!(quote_string("ünï€de"), "'ünï€de'");
        assert_eq!(quote_string(""), "''");
    }

    #[test]
    fn a_quoted_string_never_ends_early() {
        // Whatever the input, the only unescaped quote is the closing one.
        for input in ["'", "\\", "\\'", "'\\", "x' OR '1'='1", "\\\\'", "''"] {
            let quoted = quote_string(input);
            let inner = &quoted[1..quoted.len() - 1];
            let mut escaped = false;
            for c in inner.chars() {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else {
                    assert_ne!(c, '\'', "{input:?} -> {quoted}");
                }
            }
            assert!(!escaped, "{input:?} -> {quoted} ends inside an escape");
        }
    }

    #[test]
    fn privileges_must_be_keywords() {
        assert_eq!(
            validate_privilege("grant", "replication  slave").unwrap(),
            "REPLICATION SLAVE"
        );
        assert_eq!(
            validate_privilege("grant", "CLONE_ADMIN").unwrap(),
            "CLONE_ADMIN"
        );
        for bad in ["", "ALL; DROP", "SELECT ON x", "a-b", "`x`"] {
            assert!(validate_privilege("grant", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn accounts_reject_empty_and_overlong_names() {
        assert!(validate_account("create user", "repl", "%").is_ok());
        assert!(validate_account("create user", "", "%").is_err());
        assert!(validate_account("create user", &"u".repeat(33), "%").is_err());
        assert!(validate_account("create user", "u", "").is_err());
        assert!(validate_account("create user", "u\0", "%").is_err());
    }

    #[test]
    fn change_replication_source_quotes_every_value() {
        let source = ReplicationSource {
            endpoint: Endpoint::new("db-0.db'x", 3306),
            credentials: Credentials::new("repl", "p'w\\d"),
            tls: PeerTls::Verified {
                ca_path: "/etc/tls/ca'.crt".into(),
            },
            connect_retry: Duration::from_secs(5),
            retry_count: 100,
        };
        assert_eq!(
            change_replication_source(&source),
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST = 'db-0.db\\'x', SOURCE_PORT = 3306, \
             SOURCE_USER = 'repl', SOURCE_PASSWORD = 'p\\'w\\\\d', SOURCE_AUTO_POSITION = 1, \
             GET_SOURCE_PUBLIC_KEY = 0, SOURCE_SSL = 1, SOURCE_SSL_CA = '/etc/tls/ca\\'.crt', \
             SOURCE_SSL_VERIFY_SERVER_CERT = 1, SOURCE_CONNECT_RETRY = 5, \
             SOURCE_RETRY_COUNT = 100"
        );
    }

    #[test]
    fn an_unverified_source_clears_the_ca_a_verified_one_left() {
        let source = ReplicationSource {
            endpoint: Endpoint::new("db-0", 3306),
            credentials: Credentials::new("repl", "pw"),
            tls: PeerTls::Unverified,
            connect_retry: Duration::from_secs(5),
            retry_count: 100,
        };
        let sql = change_replication_source(&source);
        assert!(
            sql.contains("SOURCE_SSL = 1, SOURCE_SSL_CA = '', SOURCE_SSL_VERIFY_SERVER_CERT = 0"),
            "{sql}"
        );
    }

    #[test]
    fn user_statements_quote_account_and_password() {
        let user = UserSpec {
            name: "op`x".into(),
            host: "%".into(),
            password: "a'b".into(),
            privileges: vec!["REPLICATION SLAVE".into()],
        };
        assert_eq!(
            create_user(&user),
            "CREATE USER IF NOT EXISTS `op``x`@`%` IDENTIFIED BY 'a\\'b' PASSWORD EXPIRE NEVER"
        );
        assert_eq!(
            alter_user_password(&user),
            "ALTER USER `op``x`@`%` IDENTIFIED BY 'a\\'b' PASSWORD EXPIRE NEVER"
        );
        assert_eq!(
            grant_global(&user, &["BACKUP_ADMIN".into(), "REPLICATION SLAVE".into()]),
            "GRANT BACKUP_ADMIN, REPLICATION SLAVE ON *.* TO `op``x`@`%`"
        );
    }

    #[test]
    fn clone_instance_quotes_donor_and_password() {
        let sql = clone_instance(
            &Endpoint::new("db-0", 3306),
            &Credentials::new("clone", "s3'cret"),
        );
        assert_eq!(
            sql,
            "CLONE INSTANCE FROM 'clone'@'db-0':3306 IDENTIFIED BY 's3\\'cret' REQUIRE SSL"
        );
        assert_eq!(clone_ssl_ca(&PeerTls::Unverified), "");
        assert_eq!(
            set_existing_password("root", "%", "p'w"),
            "ALTER USER IF EXISTS `root`@`%` IDENTIFIED BY 'p\\'w'"
        );
        assert_eq!(
            retain_current_password("root", &["%", "localhost"], "n'w"),
            "ALTER USER IF EXISTS `root`@`%` IDENTIFIED BY 'n\\'w' RETAIN CURRENT PASSWORD, \
             `root`@`localhost` IDENTIFIED BY 'n\\'w' RETAIN CURRENT PASSWORD"
        );
        assert_eq!(
            discard_old_password("sakila-repl", &["%"]),
            "ALTER USER IF EXISTS `sakila-repl`@`%` DISCARD OLD PASSWORD"
        );
        assert_eq!(
            change_source_password("a'b"),
            "CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD = 'a\\'b'"
        );
        assert_eq!(
            clone_instance_into(
                &Endpoint::new("db-1", 3306),
                &Credentials::new("clone", "pw"),
                "/scratch/it's"
            ),
            "CLONE INSTANCE FROM 'clone'@'db-1':3306 IDENTIFIED BY 'pw' \
             DATA DIRECTORY = '/scratch/it\\'s' REQUIRE SSL"
        );
        let verified = PeerTls::Verified {
            ca_path: "/tls/ca.crt".into(),
        };
        assert_eq!(clone_ssl_ca(&verified), "/tls/ca.crt");
    }

    #[test]
    fn setting_literals_are_what_set_global_accepts() {
        for (value, literal) in [
            ("500", "500"),
            (" 500 ", "500"),
            ("'500'", "500"),
            ("1K", "1024"),
            ("16m", "16777216"),
            ("1G", "1073741824"),
            ("2T", "2199023255552"),
            ("0.5", "0.5"),
            ("10.", "10."),
            ("on", "ON"),
            ("Off", "OFF"),
            ("true", "TRUE"),
            ("\"FALSE\"", "FALSE"),
            ("ROW", "'ROW'"),
            (
                "STRICT_TRANS_TABLES,NO_ZERO_DATE",
                "'STRICT_TRANS_TABLES,NO_ZERO_DATE'",
            ),
            ("+00:00", "'+00:00'"),
            ("1X", "'1X'"),
            ("K", "'K'"),
            ("-1", "'-1'"),
            ("99999999999999999999", "'99999999999999999999'"),
            ("16E", "'16E'"),
            ("it's", "'it\\'s'"),
        ] {
            assert_eq!(setting_literal(value), literal, "{value:?}");
        }
    }

    #[test]
    fn set_global_takes_only_plain_variable_names() {
        assert_eq!(
            set_global("max_connections", "1K").unwrap(),
            "SET GLOBAL max_connections = 1024"
        );
        assert_eq!(
            reset_global("max_connections").unwrap(),
            "SET GLOBAL max_connections = DEFAULT"
        );
        for name in ["", "max-connections", "a;DROP", "x = 1, y", "Max"] {
            assert!(set_global(name, "1").is_err(), "{name:?}");
            assert!(reset_global(name).is_err(), "{name:?}");
        }
    }
}
