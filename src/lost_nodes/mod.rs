//! Instances on lost nodes: read the nodes under pods that are not Ready (IO), decide which
//! instance to replace (pure), replace it (IO). See `docs/failure-scenarios.md`.

pub mod decide;
pub mod nodes;
pub mod status;

pub use decide::{LostNodePlan, LostNodePolicy, Replacement, decide_lost_nodes};
pub use nodes::{LostNodeError, observe_lost_nodes, replace_instance};
pub use status::record_lost_nodes;
