//! The cluster's data volumes: observe the PVCs (IO), decide which to grow (pure), grow them (IO),
//! and report the outcome in the status. See `docs/storage.md`.

pub mod decide;
pub mod quantity;
pub mod status;
pub mod volumes;

pub use decide::{VolumeObservation, VolumePlan, decide_volumes};
pub use volumes::{StorageError, expand_volumes, observe_volumes, volumes_older_than};
