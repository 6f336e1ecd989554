//! The ConfigMaps: my.cnf and the scripts the pod runs (named by their content), and the online
//! settings my.cnf includes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, PodSpec};

use super::{meta, mysql_settings, naming};
use crate::validate::ValidatedCluster;

/// The option file every mysqld reads.
pub const MY_CNF: &str = "my.cnf";
/// The init container's script.
pub const INIT_SCRIPT: &str = "init.sh";
/// The readiness probe's script.
pub const READY_SCRIPT: &str = "ready.sh";
/// The liveness probe's script.
pub const ALIVE_SCRIPT: &str = "alive.sh";
/// The mysqld container's preStop hook: a primary waits to be switched over.
pub const PRE_STOP_SCRIPT: &str = "pre-stop.sh";
/// The fence container's loop: a primary cut off from the operator and its replicas makes
/// itself read-only.
pub const FENCE_SCRIPT: &str = "fence.sh";
/// The online settings' option file, in the online ConfigMap, included by my.cnf.
pub const ONLINE_CNF: &str = "online.cnf";
/// Where the pod mounts the online ConfigMap.
pub const ONLINE_CONFIG_DIR: &str = "/etc/sakila-online";

/// How often `fence.sh` looks at the lease, in seconds.
pub const FENCE_LOOP_SECONDS: u64 = 1;
/// How long `fence.sh` tries the replicas (all at once) before it takes itself for cut off.
pub const FENCE_PING_SECONDS: u64 = 1;
/// How long `fence.sh` waits for `super_read_only` before it shuts mysqld down.
pub const FENCE_READ_ONLY_SECONDS: u64 = 1;

/// Settings a user may override through `spec.mysqlConfig`.
const OVERRIDABLE_DEFAULTS: &[(&str, &str)] = &[
    // Accounts are matched by '%'; a DNS lookup per connection only adds latency and failure modes.
    ("skip_name_resolve", "ON"),
];

/// Settings the operator owns; they come last so that nothing can override them.
const OWNED: &[(&str, &str)] = &[
    ("datadir", "/var/lib/mysql/data"),
    ("socket", "/var/run/mysqld/mysqld.sock"),
    ("pid_file", "/var/run/mysqld/mysqld.pid"),
    ("port", "3306"),
    ("bind_address", "*"),
    ("mysqlx", "OFF"),
    ("secure_file_priv", "NULL"),
    ("log_bin", "binlog"),
    ("relay_log", "relay-bin"),
    ("log_replica_updates", "ON"),
    ("gtid_mode", "ON"),
    ("enforce_gtid_consistency", "ON"),
    // Every mysqld starts read-only: only the operator makes the chosen primary writable.
    ("read_only", "ON"),
    ("super_read_only", "ON"),
    // A restarted replica resumes replicating by itself, so it rejoins while the operator is
    // away; the failover fence overrides this in the server's persisted configuration
    // (`MySqlAdmin::fence_replica`), so a fenced replica never starts towards the source it was
    // fenced from (docs/clustering.md, Replicas without the operator).
    ("skip_replica_start", "OFF"),
    // Loaded at start because INSTALL PLUGIN is refused on a read-only server.
    ("plugin_load_add", "semisync_source.so"),
    ("plugin_load_add", "semisync_replica.so"),
    ("plugin_load_add", "mysql_clone.so"),
    // A replica acknowledges from its first event after a restart, operator or not; without it
    // enough restarts would leave the primary's commits waiting. A server with no source
    // (the primary) acknowledges nothing, so this is harmless there. `loose_`: the data
    // directory's initialisation loads no plugin and would refuse the name.
    ("loose_rpl_semi_sync_replica_enabled", "ON"),
];

/// The online settings my.cnf holds: those mysqld took (`status.acceptedSettings`, see
/// `clustering::settings::accepted_settings`), or the spec's as written before anything was
/// recorded (`None`).
pub fn my_cnf_online_settings(
    cluster: &ValidatedCluster,
    accepted: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    match accepted {
        Some(accepted) => accepted.clone(),
        None => mysql_settings::split(&cluster.mysql_config).online,
    }
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// What mysqld 9.7 takes besides the buffer pool, with the operator's settings and
/// performance_schema on (its default): measured idle at 522 MiB resident with a 5 MiB buffer
/// pool (performance_schema about 250 MiB, the redo log buffer 64, ...); 294 MiB with
/// performance_schema off. Each connection adds its buffers and thread stack on top.
pub const MYSQLD_OVERHEAD: u64 = 512 * MIB;
/// The share of the memory limit above `MYSQLD_OVERHEAD` given to the buffer pool, in percent;
/// the rest is left to connections, temporary tables and sorts.
pub const BUFFER_POOL_PERCENT: u64 = 60;
/// MySQL's default `innodb_buffer_pool_chunk_size`: a buffer pool is rounded *up* to a multiple
/// of chunk size times instances, so a derived size is rounded down to one first.
const BUFFER_POOL_CHUNK: u64 = 128 * MIB;
/// The smallest buffer pool MySQL accepts.
const MIN_BUFFER_POOL: u64 = 5 * MIB;

/// The buffer pool for a mysqld container limited to `limit` bytes, and the number of buffer
/// pool instances it is split into: 60 % of what the limit leaves above mysqld's own overhead,
/// rounded down to whole chunks (whole MiB below one chunk, where MySQL shrinks the chunk to
/// the pool), at least MySQL's minimum of 5 MiB. One instance per GiB, at most 8, set
/// explicitly: MySQL's own default depends on the node's CPUs, and the pool is rounded up to a
/// multiple of chunk times instances.
/// `user_instances`: the user's `innodb_buffer_pool_instances`, which the rounding must follow.
pub fn buffer_pool_for_limit(limit: u64, user_instances: Option<u64>) -> (u64, u64) {
    let share = limit.saturating_sub(MYSQLD_OVERHEAD) * BUFFER_POOL_PERCENT / 100;
    let instances = user_instances.unwrap_or((share / GIB).clamp(1, 8)).max(1);
    let unit = if share >= BUFFER_POOL_CHUNK {
        BUFFER_POOL_CHUNK * instances
    } else {
        MIB
    };
    ((share / unit * unit).max(MIN_BUFFER_POOL), instances)
}

/// The buffer pool settings derived from `spec.resources.limits.memory`, when the user set a
/// limit and no buffer pool size: without them mysqld takes 128 MiB whatever the limit, too
/// much for a small limit with performance_schema's overhead, too little for a large one.
pub fn derived_buffer_pool(cluster: &ValidatedCluster) -> Vec<(&'static str, String)> {
    let user_sets = |name: &str| {
        cluster.mysql_config.keys().any(|k| {
            let v = mysql_settings::variable_name(k);
            v.strip_prefix("loose_").unwrap_or(&v) == name
        })
    };
    if user_sets("innodb_buffer_pool_size") {
        return Vec::new();
    }
    let limit = cluster
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .and_then(crate::storage::quantity::parse)
        .and_then(|a| u64::try_from(a.units()).ok());
    let Some(limit) = limit else {
        return Vec::new();
    };
    let user_instances = user_sets("innodb_buffer_pool_instances").then(|| {
        cluster
            .mysql_config
            .iter()
            .find(|(k, _)| {
                mysql_settings::variable_name(k).ends_with("innodb_buffer_pool_instances")
            })
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            // A value that is no number: mysqld refuses it anyway; round for the largest.
            .unwrap_or(64)
    });
    let (size, instances) = buffer_pool_for_limit(limit, user_instances);
    let mut settings = vec![("innodb_buffer_pool_size", format!("{}M", size / MIB))];
    if user_instances.is_none() {
        settings.push(("innodb_buffer_pool_instances", instances.to_string()));
    }
    settings
}

/// Renders my.cnf: operator defaults, then the user's settings that mysqld reads only at start
/// (as written), then the owned ones, then the online settings (`online.cnf`, from the online
/// ConfigMap: they change without a restart, and no online setting is an owned one) and the
/// per-instance file the init container writes.
pub fn render_my_cnf(cluster: &ValidatedCluster) -> String {
    let mut cnf = String::from(
        "# Generated by Sakila. Edit spec.mysqlConfig of the MySQLCluster instead.\n[mysqld]\n",
    );
    let mut section = |title: &str, pairs: &mut dyn Iterator<Item = (&str, &str)>| {
        cnf.push_str(&format!("# {title}\n"));
        for (key, value) in pairs {
            cnf.push_str(&format!("{key} = {value}\n"));
        }
    };
    section("defaults", &mut OVERRIDABLE_DEFAULTS.iter().copied());
    let derived = derived_buffer_pool(cluster);
    if !derived.is_empty() {
        section(
            "sized from spec.resources.limits.memory",
            &mut derived.iter().map(|(k, v)| (*k, v.as_str())),
        );
    }
    let restart = mysql_settings::split(&cluster.mysql_config).restart;
    section(
        "spec.mysqlConfig, read at start",
        &mut restart.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    section("owned by the operator", &mut OWNED.iter().copied());
    let tls = tls_settings(cluster);
    section(
        "TLS, from spec.tls",
        &mut tls.iter().map(|(k, v)| (*k, v.as_str())),
    );
    cnf.push_str(&format!("!include {ONLINE_CONFIG_DIR}/{ONLINE_CNF}\n"));
    cnf.push_str("!include /var/run/sakila/instance.cnf\n");
    cnf
}

/// The certificate mysqld serves (mounted from the TLS Secret) and whether it refuses
/// unencrypted TCP connections. The socket counts as secure, so the probes, the fence and the
/// exporter are unaffected.
fn tls_settings(cluster: &ValidatedCluster) -> Vec<(&'static str, String)> {
    let file = |key: &str| format!("{}/{key}", naming::TLS_DIR);
    let on_off = |on: bool| if on { "ON" } else { "OFF" }.to_string();
    vec![
        ("ssl_ca", file(naming::CA_CERT_KEY)),
        ("ssl_cert", file(naming::TLS_CERT_KEY)),
        ("ssl_key", file(naming::TLS_KEY_KEY)),
        (
            "require_secure_transport",
            on_off(cluster.tls.require_secure_transport),
        ),
    ]
}

/// Renders `online.cnf`: the online settings of `spec.mysqlConfig` at the values mysqld took.
pub fn render_online_cnf(online: &BTreeMap<String, String>) -> String {
    let mut cnf = String::from(
        "# Generated by Sakila: spec.mysqlConfig settings changed online, at the values mysqld took.\n[mysqld]\n",
    );
    for (key, value) in online {
        cnf.push_str(&format!("{key} = {value}\n"));
    }
    cnf
}

/// A pod script with the names it shares with the operator filled in (`@OPERATOR_USER@` and
/// the like), so that each name is written once, in `naming`.
fn with_names(script: &str) -> String {
    let operator_grants =
        crate::mysql::sql::operator_grants(&format!("'{}'@'%'", naming::OPERATOR_USER));
    [
        ("@OPERATOR_GRANTS@", operator_grants.as_str()),
        ("@OPERATOR_USER@", naming::OPERATOR_USER),
        ("@REPLICATION_USER@", naming::REPLICATION_USER),
        ("@CLONE_USER@", naming::CLONE_USER),
        ("@PROBE_USER@", naming::PROBE_USER),
        ("@LEASE_TABLE@", naming::LEASE_TABLE),
        ("@FENCE_LOOP_SECONDS@", &FENCE_LOOP_SECONDS.to_string()),
        ("@FENCE_PING_SECONDS@", &FENCE_PING_SECONDS.to_string()),
        (
            "@FENCE_READ_ONLY_SECONDS@",
            &FENCE_READ_ONLY_SECONDS.to_string(),
        ),
    ]
    .iter()
    .fold(script.to_string(), |script, (placeholder, name)| {
        script.replace(placeholder, name)
    })
}

/// What a mysqld reads only when it starts: my.cnf and the pod's scripts.
fn config_data(cluster: &ValidatedCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MY_CNF.to_string(), render_my_cnf(cluster)),
        (
            INIT_SCRIPT.to_string(),
            with_names(include_str!("scripts/init.sh")),
        ),
        (
            READY_SCRIPT.to_string(),
            with_names(include_str!("scripts/ready.sh")),
        ),
        (
            ALIVE_SCRIPT.to_string(),
            with_names(include_str!("scripts/alive.sh")),
        ),
        (
            PRE_STOP_SCRIPT.to_string(),
            with_names(include_str!("scripts/pre-stop.sh")),
        ),
        (
            FENCE_SCRIPT.to_string(),
            with_names(include_str!("scripts/fence.sh")),
        ),
    ])
}

/// The hash of what a running mysqld reads only when it starts (the settings applied online
/// aside). It names the ConfigMap and goes into the pod template, so that a change to it (and
/// to nothing else) rolls the pods.
pub fn restart_hash(cluster: &ValidatedCluster) -> String {
    super::content_hash(&config_data(cluster))
}

/// Builds the ConfigMap the pod template refers to, named by `restart_hash`. A pod of an
/// earlier template keeps reading the ConfigMap it was made with, so a container restart never
/// brings a configuration the rollout has not reached yet (a bad value stops the rollout at its
/// first pod, as a bad image does). Immutable: its name is its content.
pub fn build_config_map(cluster: &ValidatedCluster) -> ConfigMap {
    ConfigMap {
        metadata: meta(
            cluster,
            naming::config_map(&cluster.name, &restart_hash(cluster)),
        ),
        data: Some(config_data(cluster)),
        immutable: Some(true),
        ..Default::default()
    }
}

/// Builds the ConfigMap with `online.cnf`, shared by every pod template: `online` holds only
/// values mysqld took (`my_cnf_online_settings`), so any pod may read it at any restart.
pub fn build_online_config_map(
    cluster: &ValidatedCluster,
    online: &BTreeMap<String, String>,
) -> ConfigMap {
    ConfigMap {
        metadata: meta(cluster, naming::online_config_map(&cluster.name)),
        data: Some(BTreeMap::from([(
            ONLINE_CNF.to_string(),
            render_online_cnf(online),
        )])),
        ..Default::default()
    }
}

/// The ConfigMaps a pod (or a pod template) mounts.
pub fn config_maps_in(spec: &PodSpec) -> impl Iterator<Item = &str> {
    spec.volumes
        .iter()
        .flatten()
        .filter_map(|v| v.config_map.as_ref().map(|c| c.name.as_str()))
}

/// The cluster's configuration ConfigMaps among `existing` that nothing uses any more: neither
/// the pod template nor any pod. Only names of this cluster's configurations are considered
/// (`<name>-config-<hash>` and the earlier `<name>-config`); the online one is always kept.
pub fn unused_config_maps(
    cluster: &str,
    existing: &[String],
    in_use: &BTreeSet<String>,
) -> Vec<String> {
    let prefix = naming::config_map_prefix(cluster);
    existing
        .iter()
        .filter(|n| n.starts_with(&prefix) || **n == naming::legacy_config_map(cluster))
        .filter(|n| **n != naming::online_config_map(cluster))
        .filter(|n| !in_use.contains(*n))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::validated;

    fn with(pairs: &[(&str, &str)]) -> ValidatedCluster {
        let mut cluster = validated("db", 3);
        for (k, v) in pairs {
            cluster.mysql_config.insert(k.to_string(), v.to_string());
        }
        cluster
    }

    #[test]
    fn owned_settings_come_after_user_settings_so_they_win() {
        let cnf = render_my_cnf(&with(&[("back_log", "100")]));
        let user = cnf.find("back_log = 100").unwrap();
        let owned = cnf.find("super_read_only = ON").unwrap();
        assert!(user < owned);
        assert!(
            cnf.trim_end()
                .ends_with("!include /var/run/sakila/instance.cnf")
        );
        // The online settings come after the owned ones: none of them is owned.
        assert!(cnf.find("!include /etc/sakila-online/online.cnf").unwrap() > owned);
        for name in mysql_settings::ONLINE {
            assert!(
                !crate::api::owned_settings::is_owned_setting(name),
                "{name} is online and owned"
            );
        }
    }

    #[test]
    fn user_can_override_defaults() {
        let cnf = render_my_cnf(&with(&[("skip_name_resolve", "OFF")]));
        assert!(
            cnf.find("skip_name_resolve = ON").unwrap()
                < cnf.find("skip_name_resolve = OFF").unwrap()
        );
    }

    #[test]
    fn the_buffer_pool_takes_sixty_percent_of_the_limit_above_the_overhead_in_whole_chunks() {
        let mib = |n: u64| n * MIB;
        for (limit, want) in [
            // (1024 - 512) * 0.6 = 307 MiB: two chunks.
            (mib(1024), (mib(256), 1)),
            (mib(2048), (mib(896), 1)),
            (mib(768), (mib(128), 1)),
            // Below one chunk MySQL shrinks the chunk to the pool: whole MiB.
            (mib(700), (mib(112), 1)),
            (mib(600), (mib(52), 1)),
            // Nothing left above the overhead: MySQL's minimum.
            (mib(512), (mib(5), 1)),
            (mib(256), (mib(5), 1)),
            // One instance per GiB; the pool a multiple of chunk times instances.
            (mib(4096), (mib(2048), 2)),
            (mib(8192), (mib(4608), 4)),
            (64 * 1024 * MIB, (mib(38912), 8)),
        ] {
            let (size, instances) = buffer_pool_for_limit(limit, None);
            assert_eq!((size, instances), want, "limit {} MiB", limit / MIB);
            assert_eq!(
                size % (BUFFER_POOL_CHUNK * instances) == 0,
                size >= BUFFER_POOL_CHUNK
            );
            assert!(size + MYSQLD_OVERHEAD <= limit.max(MYSQLD_OVERHEAD + MIN_BUFFER_POOL));
        }
    }

    fn with_memory_limit(limit: &str) -> ValidatedCluster {
        let mut cluster = validated("db", 3);
        cluster.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
            limits: Some(
                [(
                    "memory".to_string(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity(limit.into()),
                )]
                .into(),
            ),
            ..Default::default()
        });
        cluster
    }

    #[test]
    fn the_buffer_pool_is_sized_from_the_memory_limit_only_when_the_user_did_not_size_it() {
        let cnf = render_my_cnf(&with_memory_limit("2Gi"));
        assert!(
            cnf.contains("innodb_buffer_pool_size = 896M\ninnodb_buffer_pool_instances = 1\n"),
            "{cnf}"
        );

        let mut own = with_memory_limit("2Gi");
        own.mysql_config
            .insert("innodb-buffer-pool-size".into(), "1G".into());
        let cnf = render_my_cnf(&own);
        assert!(!cnf.contains("innodb_buffer_pool_size"), "{cnf}");
        assert!(!cnf.contains("innodb_buffer_pool_instances"), "{cnf}");

        let mut instances = with_memory_limit("8Gi");
        instances
            .mysql_config
            .insert("innodb_buffer_pool_instances".into(), "2".into());
        let cnf = render_my_cnf(&instances);
        assert!(cnf.contains("innodb_buffer_pool_size = 4608M\n"), "{cnf}");
        assert_eq!(
            buffer_pool_for_limit(8 * GIB, Some(5)),
            (4480 * MIB, 5),
            "a multiple of 5 chunks"
        );
        assert_eq!(
            cnf.matches("innodb_buffer_pool_instances").count(),
            1,
            "{cnf}"
        );

        let cnf = render_my_cnf(&validated("db", 3));
        assert!(
            !cnf.contains("innodb_buffer_pool"),
            "no limit, MySQL's default: {cnf}"
        );
    }

    #[test]
    fn only_settings_that_need_a_restart_change_the_restart_hash_and_the_name() {
        let base = validated("db", 3);
        let before = restart_hash(&base);
        assert_eq!(restart_hash(&with(&[("max_connections", "500")])), before);
        assert_eq!(restart_hash(&with(&[("long-query-time", "0.5")])), before);
        let changed = with(&[("back_log", "100")]);
        assert_ne!(restart_hash(&changed), before);
        assert_eq!(
            build_config_map(&changed).metadata.name.unwrap(),
            format!("db-config-{}", restart_hash(&changed)),
            "named by its content: a pod of the earlier template keeps its own"
        );
        assert_eq!(build_config_map(&changed).immutable, Some(true));
        // The online ones are in the online ConfigMap, which keeps its name.
        let online = with(&[("max_connections", "500")]);
        let map = build_online_config_map(&online, &my_cnf_online_settings(&online, None));
        assert_eq!(map.metadata.name.as_deref(), Some("db-online-config"));
        assert!(map.data.unwrap()[ONLINE_CNF].contains("max_connections = 500"));
        assert!(!render_my_cnf(&online).contains("max_connections"));
    }

    #[test]
    fn online_cnf_holds_the_values_mysqld_took_not_the_spec() {
        let cluster = with(&[("max-connections", "lots"), ("back_log", "100")]);
        // Nothing recorded yet: the spec as written (online keys by variable name).
        let cnf = render_online_cnf(&my_cnf_online_settings(&cluster, None));
        assert!(cnf.contains("max_connections = lots"), "{cnf}");
        // mysqld took 500 and refused "lots": online.cnf keeps 500.
        let accepted = BTreeMap::from([("max_connections".to_string(), "500".to_string())]);
        let cnf = render_online_cnf(&my_cnf_online_settings(&cluster, Some(&accepted)));
        assert!(cnf.contains("max_connections = 500"), "{cnf}");
        assert!(!cnf.contains("lots"), "{cnf}");
        // Refused with nothing taken before: the default.
        let cnf = render_online_cnf(&my_cnf_online_settings(&cluster, Some(&BTreeMap::new())));
        assert!(!cnf.contains("max_connections"), "{cnf}");
        // Settings read at start are as the spec says: the rollout guards them.
        assert!(render_my_cnf(&cluster).contains("back_log = 100"));
    }

    #[test]
    fn configurations_nothing_uses_are_the_ones_to_delete() {
        let existing: Vec<String> = [
            "db-config",
            "db-config-aaaa",
            "db-config-bbbb",
            "db-config-cccc",
            "db-online-config",
            "db2-config-aaaa",
            "someone-elses",
        ]
        .map(String::from)
        .to_vec();
        // The template uses cccc, a pod of the earlier template still bbbb.
        let in_use: BTreeSet<String> = ["db-config-bbbb", "db-config-cccc", "db-online-config"]
            .map(String::from)
            .into();
        assert_eq!(
            unused_config_maps("db", &existing, &in_use),
            ["db-config", "db-config-aaaa"]
        );
        // The online one is kept even if nothing mounts it yet.
        assert!(
            !unused_config_maps("db", &existing, &BTreeSet::new())
                .contains(&"db-online-config".to_string())
        );
    }
}
