//! The self-fence, in the agent beside mysqld. A primary that the operator can no longer reach
//! cannot be demoted by it; the operator fails over once the primary's lease (renewed on every
//! probe it answers) has expired plus a margin (`clustering::intent::SELF_FENCE_MARGIN`). Before
//! that, this loop makes the old primary read-only itself if it finds itself writable, its lease
//! expired, and no replica answering: cut off from both the operator and its replicas, it is the
//! side of a partition that must stop writing. With a replica answering it stays as it is (the
//! operator alone is down: nothing to fence). A commit waiting for acknowledgements blocks
//! super_read_only, so clients are disconnected first, and mysqld is shut down (it restarts
//! read-only) if that is not enough.
//!
//! It was `fence.sh`, which started a `mysql` client every second in a container of its own; here
//! the look at the lease is one round trip on a kept connection. Its timings are the ones the
//! failover's margin counts on (`resources::config_map`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exporter::{self, ClientLogin};
use crate::mysql::{Credentials, Endpoint, LeaseView, MySqlAdmin, MySqlClient, MySqlConnector};
use crate::resources::config_map::{
    FENCE_LOOP_SECONDS, FENCE_PING_SECONDS, FENCE_READ_ONLY_SECONDS,
};
use crate::resources::naming;

/// The sessions a fence leaves: the operator's and the replication and clone accounts' (the
/// operator's own demotion may be under way), and the probe's.
const KEEP_USERS: [&str; 4] = [
    naming::OPERATOR_USER,
    naming::REPLICATION_USER,
    naming::CLONE_USER,
    naming::PROBE_USER,
];

/// The account the fence asks a replica for: none has it, and a refusal proves the server up.
const PING_USER: &str = "sakila-fence-ping";

/// Where the fence finds its login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceFiles {
    /// The probe account's option file (probe.cnf), which the fence rewrites when the probe's
    /// password changes.
    pub defaults_file: PathBuf,
    /// The probe account's password as the operator recorded it, once every instance accepts
    /// it (`controller/password_rotation.rs`); the kubelet brings the record here.
    pub recorded_password: PathBuf,
}

/// Whether what the lease shows calls for a look at the peers: this instance is a writable
/// primary (semi-sync source enabled) whose lease has run out.
pub fn must_look_at_peers(view: &LeaseView) -> bool {
    !view.super_read_only && view.semi_sync_source_enabled && view.expired
}

/// The option file that logs the probe account in with `password`; quotes and backslashes are
/// escaped as MySQL reads them.
pub fn probe_cnf(login: &ClientLogin, password: &str) -> String {
    let escaped = password.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "[client]\nuser = {}\npassword = \"{escaped}\"\nsocket = {}\n",
        login.credentials.user, login.socket
    )
}

/// Runs the fence loop until the process ends.
pub async fn run(files: FenceFiles) {
    // The connect timeout bounds a look at the lease, and the peers' answer: the failover's
    // margin counts on FENCE_PING_SECONDS.
    let local = MySqlClient::new(Duration::from_secs(2), Duration::from_secs(5))
        .with_probe_timeout(Duration::from_secs(2));
    // Plain TCP: the servers refuse it (`require_secure_transport`), and that refusal is an
    // answer as good as any; no TLS handshake to fail for a reason of its own.
    let peers = MySqlClient::new(
        Duration::from_secs(FENCE_PING_SECONDS),
        Duration::from_secs(FENCE_PING_SECONDS),
    );
    let mut password_in_use = None;
    let mut every = tokio::time::interval(Duration::from_secs(FENCE_LOOP_SECONDS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        follow_probe_password(&local, &files, &mut password_in_use).await;
        let Ok(login) = exporter::read_login(&files.defaults_file) else {
            continue;
        };
        let view = match local
            .connect_kept(&Endpoint::socket(login.socket.clone()), &login.credentials)
            .await
        {
            Ok(session) => session.lease_view().await,
            Err(e) => Err(e),
        };
        // No lease (not a primary yet), no semi-sync plugin, or mysqld not answering: nothing
        // this loop can do.
        let Ok(Some(view)) = view else { continue };
        if !must_look_at_peers(&view) {
            continue;
        }
        if any_peer_answers(&peers, &view.peers).await {
            continue;
        }
        tracing::warn!(
            peers = %view.peers.join(" "),
            "writable primary with an expired lease and no replica answering: fencing"
        );
        fence(&local, &login).await;
    }
}

/// All peers at once, each given FENCE_PING_SECONDS: a name needs a DNS lookup, which a
/// partition stalls, and the failover's margin counts on this bound. Any answer counts: the
/// login is an account no server has, so no secret leaves the pod.
async fn any_peer_answers(client: &MySqlClient, peers: &[String]) -> bool {
    let credentials = &Credentials::new(PING_USER, "");
    let bound = Duration::from_secs(FENCE_PING_SECONDS);
    let port = u16::try_from(naming::MYSQL_PORT).unwrap_or(3306);
    let pings = peers.iter().map(|peer| {
        let endpoint = Endpoint::new(peer.clone(), port);
        async move {
            tokio::time::timeout(bound, client.answers(&endpoint, credentials))
                .await
                .unwrap_or(false)
        }
    });
    futures::future::join_all(pings)
        .await
        .into_iter()
        .any(|answered| answered)
}

/// Disconnects the clients and sets super_read_only, both within FENCE_READ_ONLY_SECONDS, or
/// shuts mysqld down (it restarts read-only).
async fn fence(client: &MySqlClient, login: &ClientLogin) {
    let endpoint = Endpoint::socket(login.socket.clone());
    let session = match client.connect(&endpoint, &login.credentials).await {
        Ok(session) => session,
        Err(e) => {
            tracing::warn!(error = %e, "could not connect to fence; trying again next round");
            return;
        }
    };
    // Both steps within the bound the failover's margin counts on.
    let demote = async {
        match session.kill_client_sessions(&KEEP_USERS).await {
            Ok(killed) => tracing::warn!(killed, "client sessions disconnected"),
            Err(e) => tracing::warn!(error = %e, "could not disconnect the clients"),
        }
        session.set_read_only(true).await
    };
    let bound = Duration::from_secs(FENCE_READ_ONLY_SECONDS);
    match tokio::time::timeout(bound, demote).await {
        Ok(Ok(())) => tracing::warn!("fenced: super_read_only is on"),
        outcome => {
            let why = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => format!("not within {bound:?}"),
            };
            tracing::warn!(reason = %why, "super_read_only did not take: shutting mysqld down (it restarts read-only)");
            let shut = async {
                client
                    .connect(&endpoint, &login.credentials)
                    .await?
                    .shutdown()
                    .await
            };
            if let Err(e) = shut.await {
                tracing::error!(error = %e, "could not shut mysqld down");
            }
        }
    }
}

/// A password rotation (`controller/password_rotation.rs`) records the probe account's new
/// password once every instance accepts it. probe.cnf, which the probes read, switches to it
/// once it works, before the old one is discarded.
async fn follow_probe_password(
    client: &MySqlClient,
    files: &FenceFiles,
    in_use: &mut Option<String>,
) {
    let Some(recorded) = read_recorded(&files.recorded_password) else {
        return;
    };
    if in_use.as_deref() == Some(recorded.as_str()) {
        return;
    }
    let Ok(login) = exporter::read_login(&files.defaults_file) else {
        return;
    };
    if login.credentials.password == recorded {
        *in_use = Some(recorded);
        return;
    }
    let candidate = Credentials::new(login.credentials.user.clone(), recorded.clone());
    let endpoint = Endpoint::socket(login.socket.clone());
    if client.connect(&endpoint, &candidate).await.is_err() {
        return;
    }
    match replace_file(&files.defaults_file, &probe_cnf(&login, &recorded)) {
        Ok(()) => {
            tracing::info!("the probe account's password changed: probe.cnf follows");
            *in_use = Some(recorded);
        }
        Err(e) => tracing::warn!(error = %e, "could not rewrite probe.cnf"),
    }
}

/// The recorded password, without the line end a person's edit may have left; `None` when
/// there is none yet.
fn read_recorded(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let password = text.trim_end_matches(['\n', '\r']);
    (!password.is_empty()).then(|| password.to_string())
}

/// Writes `path` whole or not at all (a probe reading it meanwhile sees the old or the new
/// file), readable by its owner only: it holds a password.
fn replace_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let partial = path.with_extension("cnf.new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(super_read_only: bool, semi_sync_source_enabled: bool, expired: bool) -> LeaseView {
        LeaseView {
            super_read_only,
            semi_sync_source_enabled,
            expired,
            peers: vec!["10.0.0.2".into(), "db-1.db-headless".into()],
        }
    }

    #[test]
    fn only_a_writable_primary_with_an_expired_lease_looks_at_its_peers() {
        let cases = [
            (
                "a writable primary whose lease ran out",
                view(false, true, true),
                true,
            ),
            (
                "a writable primary with a valid lease",
                view(false, true, false),
                false,
            ),
            (
                "a read-only instance with an old lease",
                view(true, true, true),
                false,
            ),
            (
                "writable without semi-sync (not a primary of ours)",
                view(false, false, true),
                false,
            ),
            ("a replica", view(true, false, false), false),
        ];
        for (name, lease, expected) in cases {
            assert_eq!(must_look_at_peers(&lease), expected, "{name}");
        }
    }

    #[test]
    fn the_option_file_written_reads_back_the_same_login() {
        let login = ClientLogin {
            credentials: Credentials::new("sakila-probe", "old"),
            socket: "/var/run/mysqld/mysqld.sock".into(),
        };
        for password in ["plain", "with \"quotes\" and \\ backslash", "a=b#c"] {
            let text = probe_cnf(&login, password);
            let read = exporter::parse_client_options(Path::new("probe.cnf"), &text).unwrap();
            assert_eq!(read.credentials, Credentials::new("sakila-probe", password));
            assert_eq!(read.socket, login.socket);
        }
    }

    #[test]
    fn the_recorded_password_is_read_without_its_line_end_and_an_empty_one_is_none() {
        let dir = std::env::temp_dir().join(format!("sakila-fence-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("probe-password");
        assert_eq!(read_recorded(&path), None, "no record yet");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(read_recorded(&path).as_deref(), Some("s3cret"));
        std::fs::write(&path, "").unwrap();
        assert_eq!(read_recorded(&path), None);

        let cnf = dir.join("probe.cnf");
        replace_file(&cnf, "[client]\n").unwrap();
        replace_file(&cnf, "[client]\nuser = u\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&cnf).unwrap(),
            "[client]\nuser = u\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cnf).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
