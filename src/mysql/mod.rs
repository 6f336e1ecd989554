//! Everything that talks SQL: the admin trait, its `mysql_async` implementation and GTID sets.

pub mod admin;
pub mod client;
pub mod error;
#[cfg(test)]
pub mod fake;
pub mod gtid;
pub mod sql;

pub use admin::{
    Account, ChannelTls, CloneOutcome, ClonePoint, CloneStatus, Credentials, Endpoint,
    InstanceStatus, LeaseView, MySqlAdmin, MySqlConnector, PeerTls, Plugin, RemoteRoot,
    ReplicaStatus, ReplicationError, ReplicationSource, SemiSyncSourceConfig, SemiSyncStatus,
    ServerIdentity, ServerMetrics, ServingState, TableCheck, ThreadState, UserChange, UserSpec,
};
pub use client::{MySqlClient, MySqlSession};
pub use error::MySqlError;
pub use gtid::{GnoInterval, GtidParseError, GtidSet, GtidSource};
