//! What every reconcile shares.

use kube::Client;
use kube::runtime::events::Recorder;

use super::validate::OperatorSettings;
use crate::mysql::MySqlClient;

/// Shared state of the controller.
pub struct Context {
    pub client: Client,
    pub settings: OperatorSettings,
    pub connector: MySqlClient,
    pub recorder: Recorder,
}
