//! `sakila-operator verify`, in a verification's Job: restores a completed backup into the
//! pod's scratch volume exactly as a restore would (download, SHA-256 against the manifest and
//! the `MySQLBackup`, unpack), starts a server on it (InnoDB recovery of the clone), checks it
//! holds exactly the backup's GTID set, runs `CHECK TABLE` on every table, and checks the
//! binary log archive its manifest names continues the backup without a gap (a point-in-time
//! restore from it can start). What it found, or why it failed, is the container's termination message,
//! which the operator records on the `MySQLBackup`.

use std::path::Path;
use std::time::{Duration, Instant};

use super::archive::{ArchiveLayout, ReplayTarget, replay_chain};
use super::job::SCRATCH_DIR;
use super::replay::read_chain_indexes;
use super::restore::{
    RESTORE_SETTINGS_ENV, RestoreError, RestoreSettings, check_holds, fetch_backup,
};
use super::runner::{LocalServer, leave_termination_message};
use crate::api::human_size;
use crate::mysql::{GtidSet, MySqlAdmin};
use crate::objectstore::ObjectStore;

/// The longest one `CHECK TABLE` may take.
const CHECK_TABLE_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

pub async fn run() -> Result<(), RestoreError> {
    let result = verify().await;
    match &result {
        Ok(summary) => {
            tracing::info!(%summary, "verified");
            leave_termination_message(summary);
        }
        Err(e) => leave_termination_message(&e.to_string()),
    }
    result.map(|_| ())
}

async fn verify() -> Result<String, RestoreError> {
    let started = Instant::now();
    let settings = std::env::var(RESTORE_SETTINGS_ENV)
        .map_err(|_| RestoreError::Settings(format!("{RESTORE_SETTINGS_ENV} is not set")))?;
    let settings: RestoreSettings = serde_json::from_str(&settings)
        .map_err(|e| RestoreError::Settings(format!("{RESTORE_SETTINGS_ENV}: {e}")))?;
    let scratch = Path::new(SCRATCH_DIR);
    let datadir = scratch.join("data");
    let (store, fetched) = fetch_backup(&settings, &datadir).await?;
    let checked = check_server(scratch, &datadir, &fetched.gtid_set).await;
    let _ = std::fs::remove_dir_all(&datadir);
    let tables = checked?;
    let archive = match &fetched.archive {
        Some(directory) => format!(
            "; {}",
            check_archive(&store, directory, &fetched.gtid_set).await?
        ),
        None => String::new(),
    };
    Ok(format!(
        "restored {} (SHA-256 checked), the server started on it holding exactly the GTID set \
         {}, CHECK TABLE passed on {tables} tables{archive}; in {:.1} s",
        human_size(fetched.size_bytes),
        fetched.gtid_set,
        started.elapsed().as_secs_f64()
    ))
}

/// Starts a server on the restored data and checks it; the number of tables checked.
async fn check_server(
    scratch: &Path,
    datadir: &Path,
    expected: &GtidSet,
) -> Result<u64, RestoreError> {
    let server_error = |e: super::runner::RunnerError| RestoreError::Server(e.to_string());
    let server = LocalServer::on_data(&scratch.join("server"), datadir)
        .await
        .map_err(server_error)?;
    let checked = async {
        let session = server
            .long_session(CHECK_TABLE_TIMEOUT)
            .await
            .map_err(server_error)?;
        check_holds(&session, expected, "the backup").await?;
        let check = session
            .check_tables()
            .await
            .map_err(|e| RestoreError::Server(format!("checking the tables: {e}")))?;
        if !check.failures.is_empty() {
            return Err(RestoreError::Server(format!(
                "CHECK TABLE found {} of {} tables damaged: {}",
                check.failures.len(),
                check.tables,
                check.failures.join("; ")
            )));
        }
        Ok((session, check.tables))
    }
    .await;
    match checked {
        Ok((session, tables)) => {
            server
                .shut_down_through(session)
                .await
                .map_err(server_error)?;
            Ok(tables)
        }
        Err(e) => {
            server.kill().await;
            Err(e)
        }
    }
}

/// Checks the archive holds a gapless chain of segments from the backup to its end, each
/// segment's index readable; says how far it reaches.
async fn check_archive(
    store: &ObjectStore,
    directory: &str,
    backup: &GtidSet,
) -> Result<String, RestoreError> {
    let layout = ArchiveLayout::at(directory);
    let indexes = read_chain_indexes(store, &layout, backup, &ReplayTarget::latest()).await?;
    if indexes.is_empty() {
        // Nothing written since archiving began: a point-in-time restore is the backup's own.
        return Ok("the binary log archive holds no segment yet".into());
    }
    let chain = replay_chain(&indexes, backup)
        .map_err(|e| RestoreError::Mismatch(format!("no point-in-time restore from it: {e}")))?;
    let last = chain.last().map(|i| i.seq).unwrap_or_default();
    let segments = match chain.len() {
        1 => "1 segment".to_string(),
        n => format!("{n} segments"),
    };
    Ok(format!(
        "the binary log archive continues it without a gap ({segments}, through segment {last})"
    ))
}
