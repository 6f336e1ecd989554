//! A mysqld killed for using more memory than its limit, named as such in the status.
//!
//! Kubernetes shows such a pod as `CrashLoopBackOff`, which says nothing about why. The kubelet
//! records `OOMKilled` as the reason of the mysqld container's last termination; the status
//! names the instance, the time and the limit, and a Warning event says it once per kill.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::MySQLClusterStatus;
use crate::api::conditions::ConditionType;
use crate::resources::naming;

/// How long a kill is still reported after its instance is ready again.
pub const REPORTED_FOR_SECONDS: i64 = 600;
/// The event reason, also the kubelet's termination reason.
pub const OOM_KILLED: &str = "OOMKilled";

/// One OOM kill of an instance's mysqld.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OomKill {
    pub pod: String,
    /// The init container (`mysqld --initialize` runs there) or mysqld's.
    pub container: &'static str,
    /// When the container ended, as the kubelet recorded it.
    pub finished_at: Option<Time>,
}

impl OomKill {
    /// How the kill is named in messages; the time keeps two kills apart.
    pub fn describe(&self) -> String {
        let container = if self.container == naming::MYSQLD_CONTAINER {
            String::new()
        } else {
            format!(" ({} container)", self.container)
        };
        match &self.finished_at {
            Some(t) => format!("{}{container} at {}", self.pod, t.0),
            None => format!("{}{container}", self.pod),
        }
    }
}

/// The mysqld (or init) containers of this cluster's pods whose latest end was an OOM kill,
/// while it matters: the container is not ready, or the kill was less than
/// `REPORTED_FOR_SECONDS` ago.
pub fn oom_kills(cluster: &str, pods: &[Pod], now: &Time) -> Vec<OomKill> {
    let mut kills = Vec::new();
    for pod in pods {
        let (Some(name), Some(status)) = (pod.metadata.name.as_ref(), pod.status.as_ref()) else {
            continue;
        };
        if naming::ordinal_of(cluster, name).is_none() {
            continue;
        }
        let containers = [
            (
                naming::INIT_CONTAINER,
                status.init_container_statuses.as_ref(),
            ),
            (naming::MYSQLD_CONTAINER, status.container_statuses.as_ref()),
        ];
        for (container_name, statuses) in containers {
            let Some(container) = statuses
                .into_iter()
                .flatten()
                .find(|c| c.name == container_name)
            else {
                continue;
            };
            let terminated = container
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .or_else(|| container.last_state.as_ref()?.terminated.as_ref());
            let Some(terminated) = terminated.filter(|t| t.reason.as_deref() == Some(OOM_KILLED))
            else {
                continue;
            };
            let recent = terminated
                .finished_at
                .as_ref()
                .is_some_and(|t| now.0.as_second() - t.0.as_second() < REPORTED_FOR_SECONDS);
            // A finished init container is not "ready"; it matters until mysqld is.
            let serving = status
                .container_statuses
                .iter()
                .flatten()
                .any(|c| c.name == naming::MYSQLD_CONTAINER && c.ready);
            if !serving || recent {
                kills.push(OomKill {
                    pod: name.clone(),
                    container: container_name,
                    finished_at: terminated.finished_at.clone(),
                });
            }
        }
    }
    kills
}

/// Names the kills in the status: in each killed instance that is not ready (its
/// `unreachable`), and in the messages of `Ready` and of `Degraded` or `Progressing` when True.
pub fn record_oom(status: &mut MySQLClusterStatus, kills: &[OomKill], memory_limit: Option<&str>) {
    if kills.is_empty() {
        return;
    }
    let limit = match memory_limit {
        Some(l) => format!("memory limit {l}"),
        None => "no memory limit: the node ran out".into(),
    };
    let named: Vec<String> = kills.iter().map(OomKill::describe).collect();
    let note = format!(
        "mysqld OOM-killed ({limit}): {}; raise spec.resources.limits.memory or lower innodb_buffer_pool_size (docs/configuration.md, Memory)",
        named.join(", ")
    );
    for kill in kills {
        if let Some(instance) = status
            .instances
            .iter_mut()
            .find(|i| i.name == kill.pod && !i.ready)
        {
            let why = format!("mysqld was OOM-killed ({limit})");
            instance.unreachable = Some(match instance.unreachable.take() {
                Some(before) => format!("{before}; {why}"),
                None => why,
            });
        }
    }
    for condition in status.conditions.iter_mut() {
        let named_here = condition.type_ == ConditionType::Ready
            || ((condition.type_ == ConditionType::Degraded
                || condition.type_ == ConditionType::Progressing)
                && condition.status == "True");
        if named_here {
            condition.message = format!("{}; {note}", condition.message);
        }
    }
}

/// The kills the previous status did not name yet, to be announced once each.
pub fn new_oom_kills<'a>(
    previous: Option<&MySQLClusterStatus>,
    kills: &'a [OomKill],
) -> Vec<&'a OomKill> {
    let ready_message = previous
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == ConditionType::Ready)
        })
        .map(|c| c.message.as_str())
        .unwrap_or_default();
    kills
        .iter()
        .filter(|k| !ready_message.contains(&k.describe()))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    use super::*;
    use crate::api::InstanceStatus;

    fn at(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).unwrap())
    }

    fn terminated(reason: &str, finished: i64) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                reason: Some(reason.into()),
                exit_code: 137,
                finished_at: Some(at(finished)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(name: &str, ready: bool, state: ContainerState, last: Option<ContainerState>) -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: naming::MYSQLD_CONTAINER.into(),
                    ready,
                    state: Some(state),
                    last_state: last,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A container waiting out the kubelet's crash back-off.
    pub(crate) fn back_off() -> ContainerState {
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("CrashLoopBackOff".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub(crate) fn running() -> ContainerState {
        ContainerState {
            running: Some(Default::default()),
            ..Default::default()
        }
    }

    #[test]
    fn an_oom_kill_is_found_while_it_matters() {
        let now = at(10_000);
        let cases = [
            (
                "crash loop after an OOM kill",
                pod(
                    "db-1",
                    false,
                    back_off(),
                    Some(terminated("OOMKilled", 100)),
                ),
                true,
            ),
            (
                "being killed right now",
                pod("db-1", false, terminated("OOMKilled", 9_999), None),
                true,
            ),
            (
                "ready again, killed a minute ago",
                pod(
                    "db-1",
                    true,
                    running(),
                    Some(terminated("OOMKilled", 9_940)),
                ),
                true,
            ),
            (
                "ready again, killed long ago",
                pod("db-1", true, running(), Some(terminated("OOMKilled", 100))),
                false,
            ),
            (
                "crashed for another reason",
                pod("db-1", false, back_off(), Some(terminated("Error", 9_990))),
                false,
            ),
            (
                "another cluster's pod",
                pod(
                    "dbx-1",
                    false,
                    back_off(),
                    Some(terminated("OOMKilled", 9_990)),
                ),
                false,
            ),
        ];
        let mut init_killed = pod("db-2", false, ContainerState::default(), None);
        init_killed.status.as_mut().unwrap().init_container_statuses =
            Some(vec![ContainerStatus {
                name: naming::INIT_CONTAINER.into(),
                state: Some(back_off()),
                last_state: Some(terminated("OOMKilled", 100)),
                ..Default::default()
            }]);
        let kills = oom_kills("db", &[init_killed], &now);
        assert_eq!(
            kills.len(),
            1,
            "mysqld --initialize killed in the init container"
        );
        assert_eq!(
            kills[0].describe(),
            "db-2 (init container) at 1970-01-01T00:01:40Z"
        );
        for (what, pod, found) in cases {
            let kills = oom_kills("db", &[pod], &now);
            assert_eq!(!kills.is_empty(), found, "{what}");
        }
    }

    fn status_with_db_1_down() -> MySQLClusterStatus {
        let condition = |type_: ConditionType, status: &str, message: &str| Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "x".into(),
            message: message.into(),
            observed_generation: None,
            last_transition_time: at(0),
        };
        let instance = |name: &str, ready: bool| InstanceStatus {
            name: name.into(),
            pod_ip: None,
            role: "unknown".into(),
            ready,
            gtid_executed: None,
            replication: None,
            errant_gtids: None,
            unreachable: (!ready).then(|| "connection refused".into()),
            cloning: false,
        };
        MySQLClusterStatus {
            conditions: vec![
                condition(
                    ConditionType::Ready,
                    "False",
                    "2/3 instances ready; waiting for db-1",
                ),
                condition(
                    ConditionType::Degraded,
                    "True",
                    "2/3 instances ready; waiting for db-1",
                ),
                condition(ConditionType::Progressing, "False", "Recovering"),
            ],
            instances: vec![instance("db-0", true), instance("db-1", false)],
            ..Default::default()
        }
    }

    #[test]
    fn an_oom_kill_is_named_with_the_limit_in_the_instance_and_the_conditions() {
        let kills = [OomKill {
            pod: "db-1".into(),
            container: naming::MYSQLD_CONTAINER,
            finished_at: Some(at(100)),
        }];
        let mut status = status_with_db_1_down();
        record_oom(&mut status, &kills, Some("1Gi"));
        assert_eq!(
            status.instances[1].unreachable.as_deref(),
            Some("connection refused; mysqld was OOM-killed (memory limit 1Gi)")
        );
        assert_eq!(status.instances[0].unreachable, None);
        let message = |type_: ConditionType| {
            status
                .conditions
                .iter()
                .find(|c| c.type_ == type_)
                .unwrap()
                .message
                .clone()
        };
        for type_ in [ConditionType::Ready, ConditionType::Degraded] {
            assert!(
                message(type_)
                    .contains("mysqld OOM-killed (memory limit 1Gi): db-1 at 1970-01-01T00:01:40Z"),
                "{type_}: {}",
                message(type_)
            );
        }
        assert_eq!(
            message(ConditionType::Progressing),
            "Recovering",
            "False conditions are left alone"
        );
    }

    #[test]
    fn each_kill_is_announced_once() {
        let first = [OomKill {
            pod: "db-1".into(),
            container: naming::MYSQLD_CONTAINER,
            finished_at: Some(at(100)),
        }];
        assert_eq!(new_oom_kills(None, &first).len(), 1);
        let mut status = status_with_db_1_down();
        record_oom(&mut status, &first, None);
        assert!(new_oom_kills(Some(&status), &first).is_empty());
        let second = [OomKill {
            pod: "db-1".into(),
            container: naming::INIT_CONTAINER,
            finished_at: Some(at(200)),
        }];
        assert_eq!(
            new_oom_kills(Some(&status), &second).len(),
            1,
            "a later kill is news"
        );
    }
}
