//! The `[mysqld]` settings that the operator owns, and the CEL rule that keeps users off them.
//!
//! One list serves both the CRD rule and the operator's own checks, so they cannot disagree.

use kube::core::{Message, Rule};

/// Settings the operator sets itself; a user value would break identity, replication or safety.
pub const OWNED_MYSQL_SETTINGS: &[&str] = &[
    "basedir",
    "bind_address",
    "clone_ssl_ca",
    "clone_ssl_cert",
    "clone_ssl_key",
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
    "ssl_ca",
    "ssl_capath",
    "ssl_cert",
    "ssl_key",
    "super_read_only",
    "user",
];

/// Settings a user may not set because they would lock the operator out of its own servers,
/// grouped by the reason the API server gives. The operator does not set them either.
pub const REFUSED_MYSQL_SETTINGS: &[(&[&str], &str)] = &[
    (
        &["require_secure_transport"],
        "TLS is required or not through spec.tls.requireSecureTransport",
    ),
    (
        &[
            "caching_sha2_password_auto_generate_rsa_keys",
            "caching_sha2_password_private_key_path",
            "caching_sha2_password_public_key_path",
        ],
        "without TLS the operator and the replicas log in to caching_sha2_password accounts with the RSA key pair mysqld generates",
    ),
    (
        &["skip_grant_tables"],
        "mysqld would stop checking accounts and turn networking off",
    ),
    (
        &["offline_mode"],
        "it disconnects the replication account, and a primary waiting for a semi-sync acknowledgement stops committing",
    ),
];

/// A regular expression matching a normalised key that names one of `names`.
///
/// mysqld treats `-` and `_` alike and accepts the `loose-`, `skip-`, `disable-` and `enable-`
/// prefixes, so `loose-skip-log-bin` must be caught as well as `log_bin`.
fn key_pattern(names: &[&str]) -> String {
    format!("^(loose_)?((skip|disable|enable)_)?({})$", names.join("|"))
}

fn owned_key_pattern() -> String {
    key_pattern(OWNED_MYSQL_SETTINGS)
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

/// The CEL rule on `spec.mysqlConfig` that refuses group `group` of `REFUSED_MYSQL_SETTINGS`,
/// with a message expression naming the key and the reason. (The derive takes one expression per
/// rule; a test checks that the CRD has a rule for every group.)
pub fn refused_settings_rule(group: usize) -> Rule {
    let (names, why) = REFUSED_MYSQL_SETTINGS[group];
    let pattern = key_pattern(names);
    Rule::new(format!("self.all(k, !{NORMALISED_KEY}.matches('{pattern}'))")).message(
        Message::Expression(format!(
            "'mysqlConfig key \"' + self.filter(k, {NORMALISED_KEY}.matches('{pattern}'))[0] + '\" cannot be set: {why}'"
        )),
    )
}

/// Whether `key`, in any spelling mysqld accepts, names one of `names`.
fn names_one_of(key: &str, names: &[&str]) -> bool {
    let normalised = key.to_ascii_lowercase().replace('-', "_");
    let without_loose = normalised.strip_prefix("loose_").unwrap_or(&normalised);
    // Like the regular expression, try the name both as written and without a boolean prefix.
    let unprefixed = ["skip_", "disable_", "enable_"]
        .iter()
        .find_map(|prefix| without_loose.strip_prefix(prefix));
    std::iter::once(without_loose)
        .chain(unprefixed)
        .any(|name| names.contains(&name))
}

/// The same check in Rust, for keys that reach the operator without passing the API server.
pub fn is_owned_setting(key: &str) -> bool {
    names_one_of(key, OWNED_MYSQL_SETTINGS)
}

/// Why `key` may not be set, if it is one of `REFUSED_MYSQL_SETTINGS`.
pub fn refused_setting(key: &str) -> Option<&'static str> {
    REFUSED_MYSQL_SETTINGS
        .iter()
        .find(|(names, _)| names_one_of(key, names))
        .map(|(_, why)| *why)
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
        let refused = REFUSED_MYSQL_SETTINGS
            .iter()
            .flat_map(|(names, _)| names.iter());
        for key in OWNED_MYSQL_SETTINGS.iter().chain(refused) {
            assert_eq!(*key, key.to_ascii_lowercase().replace('-', "_"));
        }
    }

    #[test]
    fn settings_that_lock_the_operator_out_are_refused_with_the_reason() {
        for (key, reason_mentions) in [
            ("require_secure_transport", "TLS"),
            ("require-secure-transport", "TLS"),
            ("loose_require_secure_transport", "TLS"),
            ("caching_sha2_password_auto_generate_rsa_keys", "RSA"),
            ("skip-grant-tables", "accounts"),
            ("offline_mode", "replication"),
        ] {
            let why = refused_setting(key).unwrap_or_else(|| panic!("{key} should be refused"));
            assert!(why.contains(reason_mentions), "{key}: {why}");
            assert!(!is_owned_setting(key), "{key} is refused, not owned");
        }
        for key in [
            "default_password_lifetime",
            "sync_binlog",
            "max_connections",
        ] {
            assert_eq!(refused_setting(key), None, "{key}");
        }
    }

    #[test]
    fn the_crd_has_a_rule_for_every_group_of_refused_settings() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_string(&crate::api::MySQLCluster::crd()).unwrap();
        for group in 0..REFUSED_MYSQL_SETTINGS.len() {
            let rule = serde_json::to_string(&refused_settings_rule(group).rule).unwrap();
            assert!(crd.contains(&rule), "no CRD rule for group {group}");
        }
    }

    #[test]
    fn refusal_reasons_fit_in_a_cel_string() {
        for (_, why) in REFUSED_MYSQL_SETTINGS {
            assert!(!why.contains(['\'', '\\', '\n']), "{why}");
        }
    }
}
