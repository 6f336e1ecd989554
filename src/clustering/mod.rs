//! Clustering: observe every instance (IO), decide what to do (pure), operate (IO).
//! The states and invariants are written down in `docs/clustering.md`.

pub mod clones;
pub mod decide;
pub mod intent;
pub mod observe;
pub mod operate;
pub mod settings;

pub use decide::{Action, Plan, Role, decide};
pub use intent::{FailoverGate, FailoverPolicy, Intent};
pub use observe::{InstanceObservation, MySqlObservation, Observation, PodFacts};
