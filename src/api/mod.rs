//! The CRD types, their defaults and validation rules. No IO.

mod backup;
mod cluster;
pub mod conditions;
pub mod names;
pub mod owned_settings;

pub use backup::*;
pub use cluster::*;
