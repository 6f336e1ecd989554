//! Physical backups to an S3-compatible object store: the pure decisions and builders, the
//! runner inside a backup's Job, and the controller of `MySQLBackup`s.

pub mod archive;
pub mod archiver;
pub mod controller;
pub mod decide;
pub mod job;
pub mod manifest;
pub mod replay;
pub mod restore;
pub mod runner;
pub mod schedule;
pub mod settings;
pub mod verifier;
pub mod verify;
