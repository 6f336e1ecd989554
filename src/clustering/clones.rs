//! Clones run as background tasks, never inside a reconcile: a clone takes as long as its data
//! takes to copy, and a reconcile that waited for it would leave its cluster unprobed (a primary
//! dying meanwhile would not be failed over). The reconcile starts the clone and returns; later
//! rounds see it in flight here (and in the recipient's `performance_schema.clone_status`,
//! which is what a new leader sees) and leave that instance alone until it is back.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use tokio::task::JoinHandle;

/// The clones this operator started and that have not ended, by cluster UID and ordinal.
#[derive(Default)]
pub struct CloneTasks {
    running: Mutex<HashMap<(String, u8), JoinHandle<()>>>,
}

impl CloneTasks {
    /// Runs `clone` in the background for instance `ordinal` of the cluster.
    pub fn start(
        &self,
        cluster_uid: &str,
        ordinal: u8,
        clone: impl Future<Output = ()> + Send + 'static,
    ) {
        let handle = tokio::spawn(clone);
        self.lock()
            .insert((cluster_uid.to_string(), ordinal), handle);
    }

    /// The ordinals of the cluster whose clone is still running; ended ones are forgotten.
    pub fn in_flight(&self, cluster_uid: &str) -> Vec<u8> {
        let mut running = self.lock();
        running.retain(|_, handle| !handle.is_finished());
        let mut ordinals: Vec<u8> = running
            .keys()
            .filter(|(uid, _)| uid == cluster_uid)
            .map(|(_, ordinal)| *ordinal)
            .collect();
        ordinals.sort_unstable();
        ordinals
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u8), JoinHandle<()>>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_clone_is_in_flight_until_its_task_ends_and_only_for_its_cluster() {
        let clones = CloneTasks::default();
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        clones.start("uid-a", 2, async move {
            let _ = finished.await;
        });
        clones.start("uid-b", 1, std::future::pending());
        assert_eq!(clones.in_flight("uid-a"), vec![2]);
        assert_eq!(clones.in_flight("uid-b"), vec![1]);
        finish.send(()).unwrap();
        for _ in 0..100 {
            if clones.in_flight("uid-a").is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(clones.in_flight("uid-a"), Vec::<u8>::new());
        assert_eq!(clones.in_flight("uid-b"), vec![1]);
    }
}
