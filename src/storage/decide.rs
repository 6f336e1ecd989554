//! Which data volumes to grow (pure): from the volumes observed and `spec.storage.size`.
//!
//! A StatefulSet's volume claim template cannot change, so a larger `spec.storage.size` reaches
//! the volumes only through this step: each bound PVC of the cluster that is smaller than the spec
//! gets its request raised, when its StorageClass allows expansion. When it does not, nothing is
//! changed and the status says why; the cluster keeps running on the volumes it has. A PVC is
//! never shrunk (Kubernetes refuses it, and the CRD refuses a spec that would need it).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::quantity::{self, Amount};

/// One data volume (`data-<cluster>-<ordinal>`) as the API server reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimObservation {
    pub name: String,
    pub ordinal: u8,
    /// `spec.resources.requests.storage`.
    pub requested: Option<Quantity>,
    /// `status.capacity.storage`: what the volume has, once bound.
    pub capacity: Option<Quantity>,
    /// `status.phase == Bound`; only a bound claim can be expanded.
    pub bound: bool,
    pub storage_class: Option<String>,
    /// The volume grew but its file system waits for the pod to restart (offline expansion).
    pub file_system_resize_pending: bool,
}

/// The cluster's data volumes, and the StorageClasses of those that are smaller than the spec.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VolumeObservation {
    pub claims: Vec<ClaimObservation>,
    /// `allowVolumeExpansion` of each StorageClass read; a class that does not exist is absent.
    pub allows_expansion: BTreeMap<String, bool>,
    /// The resourceVersion of every claim listed with the cluster's labels, by name: what the
    /// claims' watch is compared with before this observation is reused (`snapshot.rs`).
    pub versions: BTreeMap<String, String>,
}

/// Raise the request of `claim` to `size`.
#[derive(Clone, Debug, PartialEq)]
pub struct Expansion {
    pub claim: String,
    pub size: Quantity,
}

/// Why a volume smaller than the spec cannot be grown.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// The StorageClass exists and does not set `allowVolumeExpansion: true`.
    ClassForbids(String),
    /// The StorageClass named by the claim does not exist (any more).
    ClassMissing(String),
    /// The claim has no StorageClass (a statically provisioned volume).
    NoClass,
}

/// Where the volumes stand against `spec.storage.size`.
#[derive(Clone, Debug, PartialEq)]
pub enum VolumeState {
    /// Every volume has at least the size the spec asks for.
    AtSize,
    /// Some volumes are growing: requested, waiting for the file system, or waiting to be bound.
    Growing(Vec<String>),
    /// Some volumes cannot grow; grouped by why. Nothing was changed for them.
    NotExpandable(BTreeMap<Refusal, Vec<String>>),
}

/// What to do about the volumes, and what to report.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumePlan {
    pub expand: Vec<Expansion>,
    pub state: VolumeState,
    /// The spec's size, as written, for messages.
    pub desired: Quantity,
    /// The largest size any volume has or was asked to grow to: `spec.storage.size` may go back
    /// down to this (undoing an edit that could not be carried out) but not below.
    pub largest: Option<Quantity>,
}

/// Decides which of the first `instances` data volumes to grow to `desired`.
pub fn decide_volumes(
    desired: &Quantity,
    instances: u8,
    observation: &VolumeObservation,
) -> VolumePlan {
    let want = quantity::parse(desired);
    let size = |q: &Option<Quantity>| q.as_ref().and_then(quantity::parse);
    let mut expand = Vec::new();
    let mut growing = Vec::new();
    let mut refused: BTreeMap<Refusal, Vec<String>> = BTreeMap::new();
    let mut largest: Option<(Amount, Quantity)> = None;
    let mut consider = |q: &Quantity| {
        if let Some(amount) = quantity::parse(q)
            && largest.as_ref().is_none_or(|(l, _)| amount > *l)
        {
            largest = Some((amount, q.clone()));
        }
    };

    for claim in observation.claims.iter().filter(|c| c.ordinal < instances) {
        let requested = size(&claim.requested);
        let capacity = size(&claim.capacity);
        for q in [&claim.requested, &claim.capacity].into_iter().flatten() {
            consider(q);
        }
        let Some(want) = want else { continue };
        if requested.is_some_and(|r| r >= want) {
            // Asked for enough already; it is still growing until the capacity follows.
            if claim.bound && capacity.is_none_or(|c| c < want) || claim.file_system_resize_pending
            {
                growing.push(claim.name.clone());
            }
            continue;
        }
        if !claim.bound {
            // Kubernetes resizes only bound claims; a claim that waits for its pod is grown next time.
            growing.push(claim.name.clone());
            continue;
        }
        let refusal = match &claim.storage_class {
            None => Some(Refusal::NoClass),
            Some(class) => match observation.allows_expansion.get(class) {
                Some(true) => None,
                Some(false) => Some(Refusal::ClassForbids(class.clone())),
                None => Some(Refusal::ClassMissing(class.clone())),
            },
        };
        match refusal {
            Some(refusal) => refused.entry(refusal).or_default().push(claim.name.clone()),
            None => {
                expand.push(Expansion {
                    claim: claim.name.clone(),
                    size: desired.clone(),
                });
                growing.push(claim.name.clone());
                consider(desired);
            }
        }
    }

    let state = if !refused.is_empty() {
        VolumeState::NotExpandable(refused)
    } else if !growing.is_empty() {
        VolumeState::Growing(growing)
    } else {
        VolumeState::AtSize
    };
    VolumePlan {
        expand,
        state,
        desired: desired.clone(),
        largest: largest.map(|(_, q)| q),
    }
}

/// The reason when a StorageClass (or its absence) prevents growing a volume.
pub const EXPANSION_NOT_SUPPORTED: &str = "VolumeExpansionNotSupported";

impl VolumePlan {
    /// The `StorageResized` condition: whether it holds, its reason and a message for people.
    pub fn condition(&self) -> (bool, &'static str, String) {
        let desired = &self.desired.0;
        match &self.state {
            VolumeState::AtSize => (
                true,
                "VolumesAtSize",
                format!("every data volume has spec.storage.size ({desired}) or more"),
            ),
            VolumeState::Growing(claims) => (
                false,
                "Expanding",
                format!(
                    "growing {} to spec.storage.size ({desired})",
                    claims.join(", ")
                ),
            ),
            VolumeState::NotExpandable(refused) => {
                let why: Vec<String> = refused
                    .iter()
                    .map(|(refusal, claims)| {
                        let claims = claims.join(", ");
                        match refusal {
                            Refusal::ClassForbids(class) => format!(
                                "StorageClass {class} does not allow volume expansion \
                                 (allowVolumeExpansion is not true), so {claims} cannot grow"
                            ),
                            Refusal::ClassMissing(class) => format!(
                                "StorageClass {class} of {claims} does not exist, so they cannot grow"
                            ),
                            Refusal::NoClass => format!(
                                "{claims} have no StorageClass, so they cannot grow"
                            ),
                        }
                    })
                    .collect();
                let undo = match &self.largest {
                    Some(size) => format!("set spec.storage.size back to {} to clear this", size.0),
                    None => "set spec.storage.size back to clear this".into(),
                };
                (
                    false,
                    EXPANSION_NOT_SUPPORTED,
                    format!(
                        "spec.storage.size asks for {desired}, but {}. Nothing was changed and the \
                         cluster keeps running on its current volumes; {undo}",
                        why.join("; ")
                    ),
                )
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity(text.into())
    }

    fn claim(ordinal: u8, requested: &str, capacity: Option<&str>) -> ClaimObservation {
        ClaimObservation {
            name: format!("data-db-{ordinal}"),
            ordinal,
            requested: Some(q(requested)),
            capacity: capacity.map(q),
            bound: capacity.is_some(),
            storage_class: Some("standard".into()),
            file_system_resize_pending: false,
        }
    }

    fn classes(allows: bool) -> BTreeMap<String, bool> {
        BTreeMap::from([("standard".to_string(), allows)])
    }

    fn three_claims(requested: &str, capacity: &str, allows: bool) -> VolumeObservation {
        VolumeObservation {
            claims: (0..3)
                .map(|o| claim(o, requested, Some(capacity)))
                .collect(),
            allows_expansion: classes(allows),
            ..Default::default()
        }
    }

    /// `count` bound claims of cluster `db` at `size`, of a class that `allows` expansion or not.
    pub(crate) fn claims(count: u8, size: &str, allows: bool) -> VolumeObservation {
        VolumeObservation {
            claims: (0..count).map(|o| claim(o, size, Some(size))).collect(),
            allows_expansion: classes(allows),
            ..Default::default()
        }
    }

    struct Scenario {
        name: &'static str,
        desired: &'static str,
        instances: u8,
        observation: VolumeObservation,
        expand: &'static [&'static str],
        reason: &'static str,
        largest: Option<&'static str>,
    }

    fn scenarios() -> Vec<Scenario> {
        vec![
            Scenario {
                name: "volumes at the spec's size: nothing to do",
                desired: "1Gi",
                instances: 3,
                observation: three_claims("1Gi", "1Gi", false),
                expand: &[],
                reason: "VolumesAtSize",
                largest: Some("1Gi"),
            },
            Scenario {
                name: "the same size spelt differently is not a change",
                desired: "1024Mi",
                instances: 3,
                observation: three_claims("1Gi", "1Gi", false),
                expand: &[],
                reason: "VolumesAtSize",
                largest: Some("1Gi"),
            },
            Scenario {
                name: "growth with an expandable class: every bound claim is raised",
                desired: "2Gi",
                instances: 3,
                observation: three_claims("1Gi", "1Gi", true),
                expand: &["data-db-0", "data-db-1", "data-db-2"],
                reason: "Expanding",
                largest: Some("2Gi"),
            },
            Scenario {
                name: "growth with a class that forbids it: nothing is patched",
                desired: "2Gi",
                instances: 3,
                observation: three_claims("1Gi", "1Gi", false),
                expand: &[],
                reason: EXPANSION_NOT_SUPPORTED,
                largest: Some("1Gi"),
            },
            Scenario {
                name: "requested but the capacity has not followed yet: still growing",
                desired: "2Gi",
                instances: 3,
                observation: three_claims("2Gi", "1Gi", true),
                expand: &[],
                reason: "Expanding",
                largest: Some("2Gi"),
            },
            Scenario {
                name: "volumes larger than the spec (kept from an earlier cluster) are left alone",
                desired: "1Gi",
                instances: 3,
                observation: three_claims("4Gi", "4Gi", true),
                expand: &[],
                reason: "VolumesAtSize",
                largest: Some("4Gi"),
            },
            Scenario {
                name: "a claim beyond spec.instances (kept after a scale-down) is not grown",
                desired: "2Gi",
                instances: 2,
                observation: three_claims("1Gi", "1Gi", true),
                expand: &["data-db-0", "data-db-1"],
                reason: "Expanding",
                largest: Some("2Gi"),
            },
            Scenario {
                name: "an unbound claim waits: Kubernetes resizes only bound claims",
                desired: "2Gi",
                instances: 2,
                observation: VolumeObservation {
                    claims: vec![claim(0, "2Gi", Some("2Gi")), claim(1, "1Gi", None)],
                    allows_expansion: classes(true),
                    ..Default::default()
                },
                expand: &[],
                reason: "Expanding",
                largest: Some("2Gi"),
            },
            Scenario {
                name: "a scale-up after a resize: the new claim from the template is grown",
                desired: "2Gi",
                instances: 2,
                observation: VolumeObservation {
                    claims: vec![claim(0, "2Gi", Some("2Gi")), claim(1, "1Gi", Some("1Gi"))],
                    allows_expansion: classes(true),
                    ..Default::default()
                },
                expand: &["data-db-1"],
                reason: "Expanding",
                largest: Some("2Gi"),
            },
            Scenario {
                name: "a class that no longer exists cannot expand",
                desired: "2Gi",
                instances: 1,
                observation: VolumeObservation {
                    claims: vec![claim(0, "1Gi", Some("1Gi"))],
                    allows_expansion: BTreeMap::new(),
                    ..Default::default()
                },
                expand: &[],
                reason: EXPANSION_NOT_SUPPORTED,
                largest: Some("1Gi"),
            },
            Scenario {
                name: "a statically provisioned claim without a class cannot expand",
                desired: "2Gi",
                instances: 1,
                observation: VolumeObservation {
                    claims: vec![ClaimObservation {
                        storage_class: None,
                        ..claim(0, "1Gi", Some("1Gi"))
                    }],
                    allows_expansion: classes(true),
                    ..Default::default()
                },
                expand: &[],
                reason: EXPANSION_NOT_SUPPORTED,
                largest: Some("1Gi"),
            },
            Scenario {
                name: "grown but the file system waits for a pod restart: still growing",
                desired: "2Gi",
                instances: 1,
                observation: VolumeObservation {
                    claims: vec![ClaimObservation {
                        file_system_resize_pending: true,
                        ..claim(0, "2Gi", Some("2Gi"))
                    }],
                    allows_expansion: classes(true),
                    ..Default::default()
                },
                expand: &[],
                reason: "Expanding",
                largest: Some("2Gi"),
            },
            Scenario {
                name: "no claims yet (a new cluster): at size",
                desired: "1Gi",
                instances: 3,
                observation: VolumeObservation::default(),
                expand: &[],
                reason: "VolumesAtSize",
                largest: None,
            },
        ]
    }

    #[test]
    fn decide_volume_scenarios() {
        for s in scenarios() {
            let plan = decide_volumes(&q(s.desired), s.instances, &s.observation);
            let expanded: Vec<&str> = plan.expand.iter().map(|e| e.claim.as_str()).collect();
            assert_eq!(expanded, s.expand, "{}: claims patched", s.name);
            for e in &plan.expand {
                assert_eq!(e.size, q(s.desired), "{}: grown to the spec's size", s.name);
            }
            assert_eq!(plan.condition().1, s.reason, "{}: reason", s.name);
            assert_eq!(
                plan.largest.as_ref().map(|l| l.0.as_str()),
                s.largest,
                "{}: largest",
                s.name
            );
        }
    }

    #[test]
    fn a_refused_expansion_says_why_in_plain_words_and_how_to_undo_it() {
        let plan = decide_volumes(&q("512Mi"), 2, &three_claims("256Mi", "256Mi", false));
        let (ok, reason, message) = plan.condition();
        assert!(!ok);
        assert_eq!(reason, EXPANSION_NOT_SUPPORTED);
        assert_eq!(
            message,
            "spec.storage.size asks for 512Mi, but StorageClass standard does not allow volume \
             expansion (allowVolumeExpansion is not true), so data-db-0, data-db-1 cannot grow. \
             Nothing was changed and the cluster keeps running on its current volumes; set \
             spec.storage.size back to 256Mi to clear this"
        );
    }

    #[test]
    fn a_refusal_wins_over_growth_in_the_condition() {
        let mut observation = three_claims("1Gi", "1Gi", true);
        observation.claims[2].storage_class = Some("fixed".into());
        observation.allows_expansion.insert("fixed".into(), false);
        let plan = decide_volumes(&q("2Gi"), 3, &observation);
        assert_eq!(plan.expand.len(), 2, "the expandable ones still grow");
        let (_, reason, message) = plan.condition();
        assert_eq!(reason, EXPANSION_NOT_SUPPORTED);
        assert!(message.contains("StorageClass fixed"), "{message}");
    }
}
