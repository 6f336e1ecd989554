//! The CRD types, their defaults and validation rules. No IO.

mod cluster;
pub mod conditions;
pub mod names;
pub mod owned_settings;

pub use cluster::*;
