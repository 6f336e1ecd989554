//! kube-runtime glue: the reconcile pipeline, its context, error policy and events.

pub mod accounts;
pub mod apply;
pub mod backup_schedule;
pub mod binlog_archive;
pub mod children;
pub mod context;
pub mod durability;
pub mod error;
pub mod oom;
pub mod password_rotation;
pub mod reconcile;
pub mod report;
pub mod restore_status;
pub mod root_access;
pub mod root_password;
pub mod run;
pub mod snapshot;
pub mod status;
pub mod tls;
