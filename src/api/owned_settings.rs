//! The `[mysqld]` settings that the operator owns, and the CEL rule that keeps users off them.
//!
//! One list serves both the CRD rule and the operator's own checks, so they cannot disagree.

/// Settings the operator sets itself; a user value would break identity, replication or safety.
pub const OWNED_MYSQL_SETTINGS: &[&str] = &[
    "basedir",
    "bind_address",
    "datadir",
    "default_authentication_plugin",
    "enforce_gtid_consistency",
    "gtid_mode",
    "init_file",
    "log_bin",
    "log_bin_basename",
    "log_bin_index",
    "log_error",
    "log_replica_updates",
    "log_slave_updates",
    "mysqlx",
    "mysqlx_port",
    "mysqlx_socket",
    "pid_file",
    "plugin_dir",
    "plugin_load",
    "plugin_load_add",
    "port",
    "read_only",
    "relay_log",
    "relay_log_index",
    "report_host",
    "report_port",
    "rpl_semi_sync_replica_enabled",
    "rpl_semi_sync_source_enabled",
    "rpl_semi_sync_source_timeout",
    "rpl_semi_sync_source_wait_for_replica_count",
    "rpl_semi_sync_source_wait_point",
    "secure_file_priv",
    "server_id",
    "server_uuid",
    "skip_networking",
    "skip_replica_start",
    "skip_slave_start",
    "socket",
    "super_read_only",
    "user",
];

/// A regular expression matching a normalised key that names an owned setting.
///
/// mysqld treats `-` and `_` alike and accepts the `loose-`, `skip-`, `disable-` and `enable-`
/// prefixes, so `loose-skip-log-bin` must be caught as well as `log_bin`.
fn owned_key_pattern() -> String {
    format!(
        "^(loose_)?((skip|disable|enable)_)?({})$",
        OWNED_MYSQL_SETTINGS.join("|")
    )
}

/// CEL: the key, lower-cased with `-` folded to `_`, as mysqld reads it.
const NORMALISED_KEY: &str = "k.lowerAscii().replace('-', '_')";

/// The CEL rule on `spec.mysqlConfig` that refuses every owned setting.
pub fn owned_settings_rule() -> String {
    format!(
        "self.all(k, !{NORMALISED_KEY}.matches('{}'))",
        owned_key_pattern()
    )
}

/// The CEL message expression that names the first offending key.
pub fn owned_settings_message_expression() -> String {
    format!(
        "'mysqlConfig key \"' + self.filter(k, {NORMALISED_KEY}.matches('{}'))[0] + '\" is managed by the operator and cannot be set'",
        owned_key_pattern()
    )
}

/// The same check in Rust, for keys that reach the operator without passing the API server.
pub fn is_owned_setting(key: &str) -> bool {
    let normalised = key.to_ascii_lowercase().replace('-', "_");
    let without_loose = normalised.strip_prefix("loose_").unwrap_or(&normalised);
    // Like the regular expression, try the name both as written and without a boolean prefix.
    let unprefixed = ["skip_", "disable_", "enable_"]
        .iter()
        .find_map(|prefix| without_loose.strip_prefix(prefix));
    std::iter::once(without_loose)
        .chain(unprefixed)
        .any(|name| OWNED_MYSQL_SETTINGS.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_settings_are_recognised_in_every_spelling_mysqld_accepts() {
        for key in [
            "server_id",
            "server-id",
            "SERVER_ID",
            "loose-server-id",
            "skip-log-bin",
            "disable_log_bin",
            "loose_skip_replica_start",
        ] {
            assert!(is_owned_setting(key), "{key} should be owned");
        }
    }

    #[test]
    fn ordinary_settings_are_not_owned() {
        for key in [
            "innodb_buffer_pool_size",
            "max_connections",
            "log_bin_trust_function_creators",
            "server",
        ] {
            assert!(!is_owned_setting(key), "{key} should be allowed");
        }
    }

    #[test]
    fn owned_list_is_normalised_so_the_cel_pattern_can_match_it() {
        for key in OWNED_MYSQL_SETTINGS {
            assert_eq!(*key, key.to_ascii_lowercase().replace('-', "_"));
        }
    }
}
