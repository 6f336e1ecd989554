//! Which `spec.mysqlConfig` settings MySQL changes at run time, and which need a restart.
//!
//! A change to a setting listed in `ONLINE` is applied with `SET GLOBAL` on every running
//! instance and restarts nothing; a change to any other setting rolls the pods (replicas first,
//! one switchover). A setting not listed is treated as needing a restart: that is always
//! correct, only slower. Every name here is checked against a real mysqld by the integration
//! test `online_settings_are_dynamic_in_this_mysql`.

use std::collections::BTreeMap;

/// Global system variables that are dynamic in MySQL 9.7 and take effect for the server as a
/// whole when set (not only at the next `START REPLICA` or for new tables), sorted.
pub const ONLINE: &[&str] = &[
    "binlog_cache_size",
    "binlog_expire_logs_seconds",
    "binlog_row_image",
    "binlog_transaction_compression",
    "character_set_server",
    "collation_server",
    "connect_timeout",
    "cte_max_recursion_depth",
    "default_password_lifetime",
    "div_precision_increment",
    "event_scheduler",
    "general_log",
    "group_concat_max_len",
    "host_cache_size",
    "innodb_adaptive_flushing",
    "innodb_adaptive_hash_index",
    "innodb_buffer_pool_size",
    "innodb_deadlock_detect",
    "innodb_flush_log_at_trx_commit",
    "innodb_io_capacity",
    "innodb_io_capacity_max",
    "innodb_lock_wait_timeout",
    "innodb_log_buffer_size",
    "innodb_max_dirty_pages_pct",
    "innodb_old_blocks_time",
    "innodb_online_alter_log_max_size",
    "innodb_print_all_deadlocks",
    "innodb_redo_log_capacity",
    "innodb_stats_persistent_sample_pages",
    "innodb_strict_mode",
    "innodb_thread_concurrency",
    "interactive_timeout",
    "join_buffer_size",
    "lock_wait_timeout",
    "log_error_verbosity",
    "log_queries_not_using_indexes",
    "log_slow_admin_statements",
    "long_query_time",
    "max_allowed_packet",
    "max_binlog_size",
    "max_connect_errors",
    "max_connections",
    "max_execution_time",
    "max_heap_table_size",
    "max_user_connections",
    "min_examined_row_limit",
    "net_read_timeout",
    "net_retry_count",
    "net_write_timeout",
    "read_buffer_size",
    "read_rnd_buffer_size",
    "slow_launch_time",
    "slow_query_log",
    "sort_buffer_size",
    "sql_mode",
    "sync_binlog",
    "table_definition_cache",
    "table_open_cache",
    "thread_cache_size",
    "tmp_table_size",
    "transaction_isolation",
    "wait_timeout",
];

/// The system variable an option-file key sets: option files accept `-` for `_`, variables
/// do not.
pub fn variable_name(key: &str) -> String {
    key.trim().replace('-', "_").to_ascii_lowercase()
}

/// Whether a change to this option-file key can be applied without a restart.
pub fn is_online(key: &str) -> bool {
    ONLINE.binary_search(&variable_name(key).as_str()).is_ok()
}

/// A setting whose value lets a commit be acknowledged before it is safely on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeakenedDurability {
    /// The variable name.
    pub name: String,
    /// The value as the user wrote it.
    pub value: String,
}

/// The settings of `config` that weaken crash safety, sorted by name: `sync_binlog` other than 1
/// (the binary log is not flushed at every commit), `innodb_flush_log_at_trx_commit` other than
/// 1 (nor the redo log), `innodb_doublewrite` off or detect-only (a page torn by a crash cannot
/// be repaired).
pub fn weakened_durability(config: &BTreeMap<String, String>) -> Vec<WeakenedDurability> {
    let mut weakened: Vec<WeakenedDurability> = config
        .iter()
        .filter_map(|(key, value)| {
            let name = variable_name(key);
            let name = name.strip_prefix("loose_").unwrap_or(&name).to_string();
            let v = value.trim().to_ascii_uppercase();
            let safe = match name.as_str() {
                "sync_binlog" | "innodb_flush_log_at_trx_commit" => v == "1",
                "innodb_doublewrite" => {
                    matches!(v.as_str(), "ON" | "1" | "TRUE" | "DETECT_AND_RECOVER")
                }
                _ => true,
            };
            (!safe).then(|| WeakenedDurability {
                name,
                value: value.trim().to_string(),
            })
        })
        .collect();
    weakened.sort_by(|a, b| a.name.cmp(&b.name));
    weakened
}

/// `spec.mysqlConfig` split by how a change to each setting is carried out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SplitSettings {
    /// Applied with `SET GLOBAL`, keyed by variable name.
    pub online: BTreeMap<String, String>,
    /// Read by mysqld at start only, keyed as the user wrote them (that is what my.cnf says).
    pub restart: BTreeMap<String, String>,
}

/// Splits the user's settings by how a change to each is carried out.
pub fn split(config: &BTreeMap<String, String>) -> SplitSettings {
    let mut split = SplitSettings::default();
    for (key, value) in config {
        if is_online(key) {
            split.online.insert(variable_name(key), value.clone());
        } else {
            split.restart.insert(key.clone(), value.clone());
        }
    }
    split
}

/// The canonical text of a set of settings, one `name=value` per line, for a pod annotation:
/// what the operator applied to that instance, or what its pod template was made with.
pub fn encode(settings: &BTreeMap<String, String>) -> String {
    settings
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads `encode`'s text back; lines without `=` are skipped (the text is the operator's own).
pub fn decode(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The names whose values differ between two sets of settings (added, changed or removed).
pub fn changed_names(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut names: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Settings from `(name, value)` pairs.
    pub(crate) fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_online_list_is_sorted_and_unique_so_binary_search_works() {
        assert!(ONLINE.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn option_file_spellings_map_to_variable_names() {
        for (key, online) in [
            ("max_connections", true),
            ("max-connections", true),
            ("MAX_CONNECTIONS", true),
            (" long_query_time ", true),
            ("innodb_buffer_pool_instances", false),
            ("back_log", false),
            ("loose_max_connections", false),
            ("validate_password.length", false),
            ("", false),
        ] {
            assert_eq!(is_online(key), online, "{key:?}");
        }
    }

    #[test]
    fn split_keys_online_settings_by_variable_and_keeps_restart_keys_as_written() {
        let config = map(&[
            ("max-connections", "500"),
            ("back_log", "100"),
            ("innodb-read-io-threads", "8"),
            ("slow_query_log", "ON"),
        ]);
        let split = split(&config);
        assert_eq!(
            split.online,
            map(&[("max_connections", "500"), ("slow_query_log", "ON")])
        );
        assert_eq!(
            split.restart,
            map(&[("back_log", "100"), ("innodb-read-io-threads", "8")])
        );
    }

    #[test]
    fn only_values_that_skip_a_flush_at_commit_weaken_durability() {
        let names = |pairs: &[(&str, &str)]| -> Vec<String> {
            weakened_durability(&map(pairs))
                .into_iter()
                .map(|w| format!("{}={}", w.name, w.value))
                .collect()
        };
        assert!(
            names(&[
                ("sync_binlog", "1"),
                ("innodb_flush_log_at_trx_commit", " 1 ")
            ])
            .is_empty()
        );
        assert!(
            names(&[
                ("innodb_doublewrite", "detect_and_recover"),
                ("max_connections", "0")
            ])
            .is_empty()
        );
        assert_eq!(
            names(&[
                ("sync-binlog", "100"),
                ("innodb_flush_log_at_trx_commit", "2"),
                ("loose_innodb_doublewrite", "OFF"),
            ]),
            [
                "innodb_doublewrite=OFF",
                "innodb_flush_log_at_trx_commit=2",
                "sync_binlog=100"
            ]
        );
        assert_eq!(
            names(&[("innodb_doublewrite", "DETECT_ONLY")]),
            ["innodb_doublewrite=DETECT_ONLY"]
        );
    }

    #[test]
    fn encode_and_decode_round_trip() {
        for settings in [
            map(&[]),
            map(&[("max_connections", "500")]),
            map(&[
                ("sql_mode", "STRICT_TRANS_TABLES,NO_ZERO_DATE"),
                ("a", "x=y"),
            ]),
        ] {
            assert_eq!(decode(&encode(&settings)), settings);
        }
        assert_eq!(
            encode(&map(&[("b", "2"), ("a", "1")])),
            "a=1\nb=2",
            "sorted, so equal settings give equal text"
        );
    }

    #[test]
    fn changed_names_lists_added_changed_and_removed_settings_once() {
        let before = map(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let after = map(&[("a", "1"), ("b", "20"), ("d", "4")]);
        assert_eq!(changed_names(&before, &after), ["b", "c", "d"]);
        assert!(changed_names(&before, &before).is_empty());
    }
}
