//! The CRD types, their defaults and validation rules. No IO.

mod cluster;
pub mod owned_settings;

pub use cluster::*;
