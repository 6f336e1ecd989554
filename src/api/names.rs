//! Which `metadata.name`s can work, and which pod-template keys are the operator's own.
//!
//! The names of a cluster's children are derived from its own (`src/resources/naming.rs`), so a
//! name that makes one of them invalid, or equal to another cluster's child, can never work.
//! The API server refuses such names with the CEL rules below; `validate` checks the same in
//! Rust for objects that reached the operator without them.

/// The suffix of the read-write Service, `<name>-primary`.
pub const PRIMARY_SERVICE_SUFFIX: &str = "-primary";
/// The suffix of the read-only Service, `<name>-replicas`.
pub const REPLICAS_SERVICE_SUFFIX: &str = "-replicas";

/// Suffixes a cluster's name may not end in: a cluster named `orders-primary` would make the
/// headless Service `orders-primary`, which is cluster `orders`' read-write Service. Only the
/// Services need this: every other kind of child has one name per cluster (`<name>`,
/// `<name>-config`, `<name>-credentials`) or ends in the ordinal (`<name>-<n>`, `data-<name>-<n>`),
/// which two distinct cluster names never share.
pub const RESERVED_NAME_SUFFIXES: &[&str] = &[PRIMARY_SERVICE_SUFFIX, REPLICAS_SERVICE_SUFFIX];

/// The longest cluster name whose children all have valid names and labels.
///
/// The tightest bound is the StatefulSet controller's: every pod carries the label
/// `controller-revision-hash: <statefulset>-<hash>`, where the hash is up to 10 characters and a
/// label value is at most 63, so 63 - 1 - 10 = 52. The others are looser: Services
/// `<name>-replicas` must be DNS-1035 labels of at most 63 (54), pod names `<name>-<n>` are
/// host names and label values of at most 63 (61).
pub const MAX_NAME_LENGTH: usize = 52;

/// The prefix of the labels and annotations the operator sets and reads on its pods.
pub const RESERVED_KEY_PREFIX: &str = "mysql.sakila.dev/";

/// CEL on the root: `metadata.name` is a DNS-1035 label (the headless Service takes the name as
/// it is, and a Service name must start with a letter and hold no dots).
pub fn dns_label_rule() -> String {
    "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')".to_string()
}

/// CEL on the root: `metadata.name` is short enough for every child.
pub fn length_rule() -> String {
    format!("size(self.metadata.name) <= {MAX_NAME_LENGTH}")
}

/// CEL on the root: `metadata.name` does not end in a reserved suffix.
pub fn suffix_rule() -> String {
    RESERVED_NAME_SUFFIXES
        .iter()
        .map(|s| format!("!self.metadata.name.endsWith('{s}')"))
        .collect::<Vec<_>>()
        .join(" && ")
}

/// The message of [`suffix_rule`].
pub fn suffix_message() -> String {
    format!(
        "metadata.name must not end in {}: the Services of a cluster named <name> are <name>, <name>-primary and <name>-replicas, so such a name would take another cluster's Service",
        RESERVED_NAME_SUFFIXES.join(" or ")
    )
}

/// CEL on a map of pod labels or annotations: no key is the operator's. Case-sensitive, as a
/// key's prefix must be a lower-case DNS subdomain for the pod to be valid at all; and a
/// `lowerAscii()` per key of an unbounded map would risk the API server's CEL cost budget.
pub fn reserved_keys_rule() -> String {
    format!("self.all(k, !k.startsWith('{RESERVED_KEY_PREFIX}'))")
}

/// CEL message expression for [`reserved_keys_rule`], naming the first offending key.
pub fn reserved_keys_message_expression(field: &str) -> String {
    format!(
        "'{field} key \"' + self.filter(k, k.startsWith('{RESERVED_KEY_PREFIX}'))[0] + '\" is reserved: the operator sets and reads {RESERVED_KEY_PREFIX}* on its pods'"
    )
}

/// Why a cluster name cannot work, in the words the API server's rules use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    #[error(
        "metadata.name must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter and ending with a letter or digit), got {0:?}"
    )]
    NotDnsLabel(String),
    #[error(
        "metadata.name must be at most {MAX_NAME_LENGTH} characters (the StatefulSet's pods carry the label controller-revision-hash: <name>-<hash of 10>, at most 63), got {0} characters"
    )]
    TooLong(usize),
    #[error("{}", suffix_message())]
    ReservedSuffix,
}

/// Checks a cluster name against the rules above.
pub fn check_name(name: &str) -> Result<(), NameProblem> {
    let mut chars = name.chars();
    let dns_label = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !dns_label {
        return Err(NameProblem::NotDnsLabel(name.to_string()));
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(NameProblem::TooLong(name.len()));
    }
    if RESERVED_NAME_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return Err(NameProblem::ReservedSuffix);
    }
    Ok(())
}

/// The first key of pod labels or annotations that the operator reserves, if any.
pub fn reserved_key<'a>(keys: impl IntoIterator<Item = &'a String>) -> Option<&'a String> {
    keys.into_iter()
        .find(|k| k.starts_with(RESERVED_KEY_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_dns_labels_are_refused() {
        for bad in [
            "",
            "Orders",
            "1orders",
            "orders.shop",
            "orders-",
            "-orders",
            "or_ders",
        ] {
            assert_eq!(
                check_name(bad),
                Err(NameProblem::NotDnsLabel(bad.into())),
                "{bad:?}"
            );
        }
        for good in ["a", "orders", "orders-2", "db-1x"] {
            assert_eq!(check_name(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn names_longer_than_fifty_two_are_refused_because_of_the_revision_hash_label() {
        let longest = "a".repeat(MAX_NAME_LENGTH);
        assert_eq!(check_name(&longest), Ok(()));
        // The label the StatefulSet controller puts on each pod still fits at the limit.
        let revision_label = format!("{longest}-{}", "9".repeat(10));
        assert!(revision_label.len() <= 63);
        let too_long = "a".repeat(MAX_NAME_LENGTH + 1);
        assert_eq!(
            check_name(&too_long),
            Err(NameProblem::TooLong(MAX_NAME_LENGTH + 1))
        );
        let message = NameProblem::TooLong(53).to_string();
        assert!(
            message.starts_with("metadata.name must be at most 52"),
            "{message}"
        );
    }

    #[test]
    fn names_ending_in_another_clusters_service_suffix_are_refused() {
        for bad in ["orders-primary", "orders-replicas", "x-primary"] {
            assert_eq!(check_name(bad), Err(NameProblem::ReservedSuffix), "{bad}");
        }
        for good in ["primary", "replicas", "orders-primary2", "orders-primaryx"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn the_reserved_suffixes_are_those_of_the_services_naming_builds() {
        use crate::resources::naming;
        // Every Service of a cluster named `n` is `n` or `n` plus a reserved suffix, so no two
        // admissible names share a Service.
        let n = "orders";
        for service in [
            naming::primary_service(n),
            naming::replicas_service(n),
            naming::headless_service(n),
        ] {
            let suffix = &service[n.len()..];
            assert!(
                suffix.is_empty() || RESERVED_NAME_SUFFIXES.contains(&suffix),
                "{service}"
            );
        }
    }

    #[test]
    fn operator_keys_in_the_pod_template_are_found() {
        let keys: Vec<String> = vec!["team".into(), "mysql.sakila.dev/reclone".into()];
        assert_eq!(
            reserved_key(&keys).map(String::as_str),
            Some("mysql.sakila.dev/reclone")
        );
        let fine: Vec<String> = vec!["sakila.dev/team".into(), "mysql.sakila.dev".into()];
        assert_eq!(reserved_key(&fine), None);
    }

    #[test]
    fn the_reserved_prefix_is_the_operators_group() {
        assert_eq!(
            RESERVED_KEY_PREFIX,
            format!("{}/", crate::resources::naming::GROUP)
        );
    }
}
