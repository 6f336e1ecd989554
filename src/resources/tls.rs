//! The cluster's TLS material: a CA of its own and the server certificate every instance
//! serves, issued by the operator into `<name>-tls` unless the user brings a Secret
//! (`spec.tls.secretName`, e.g. cert-manager's).
//!
//! One certificate for the whole cluster: wildcard names under the headless Service cover every
//! pod at any ordinal, so scaling never waits for a certificate. Issuing is pure but for the key
//! generation and the clock, which the caller passes in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use super::{meta, naming};
use crate::api::DeletionPolicy;
use crate::validate::ValidatedCluster;

/// How long the operator's CA is valid. Clients that trust it need it replaced only this rarely.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// A CA with less than this left is replaced (with a new certificate).
const CA_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// A server certificate is renewed when less than this share of its lifetime
/// (`spec.tls.certificateLifetimeMinutes`) is left: with the default 90 days, 30, so a renewal
/// that fails for days still has weeks to succeed.
const RENEW_AT_SHARE_LEFT: u32 = 3;
/// Certificates are valid from a little before they are issued: nodes' clocks differ.
const BACKDATE: Duration = Duration::from_secs(3600);

/// Why TLS material could not be issued or read.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("issuing a certificate failed: {0}")]
    Issue(#[from] rcgen::Error),
    #[error("{key} is not a PEM certificate: {why}")]
    Certificate { key: &'static str, why: String },
}

/// What a certificate says, as far as the operator cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFacts {
    pub not_after: Timestamp,
    /// DNS names and IP addresses (as text) in its subjectAltName.
    pub names: BTreeSet<String>,
}

/// Reads the first certificate of a PEM text.
pub fn read_certificate(key: &'static str, pem: &[u8]) -> Result<CertificateFacts, TlsError> {
    let invalid = |why: String| TlsError::Certificate { key, why };
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| invalid(e.to_string()))?;
    let certificate = pem.parse_x509().map_err(|e| invalid(e.to_string()))?;
    let not_after = Timestamp::from_second(certificate.validity().not_after.timestamp())
        .map_err(|e| invalid(e.to_string()))?;
    let mut names = BTreeSet::new();
    if let Ok(Some(san)) = certificate.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => {
                    names.insert(dns.to_string());
                }
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    names.extend(ip.map(|ip| ip.to_string()));
                }
                _ => {}
            }
        }
    }
    Ok(CertificateFacts { not_after, names })
}

/// Every name a client or a peer reaches an instance by: each pod under the headless Service
/// (by wildcard), the three Services in every short and long form, and `spec.tls.extraNames`.
pub fn certificate_names(cluster: &ValidatedCluster) -> BTreeSet<String> {
    let ns = &cluster.namespace;
    let domain = naming::CLUSTER_DOMAIN;
    let headless = naming::headless_service(&cluster.name);
    let mut names = BTreeSet::from([
        format!("*.{headless}.{ns}.svc"),
        format!("*.{headless}.{ns}.svc.{domain}"),
        format!("*.{headless}.{ns}"),
        "localhost".to_string(),
    ]);
    for service in [
        headless.clone(),
        naming::primary_service(&cluster.name),
        naming::replicas_service(&cluster.name),
    ] {
        names.extend([
            format!("{service}.{ns}.svc.{domain}"),
            format!("{service}.{ns}.svc"),
            format!("{service}.{ns}"),
            service,
        ]);
    }
    names.extend(cluster.tls.extra_names.iter().cloned());
    names
}

/// The operator's CA and the server certificate it issued, as PEM. `Debug` never shows the keys.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedTls {
    pub ca_cert: String,
    ca_key: String,
    pub cert: String,
    key: String,
}

impl fmt::Debug for IssuedTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedTls").finish_non_exhaustive()
    }
}

impl IssuedTls {
    /// Keeps what the existing Secret holds while it is sound, and issues what is missing, about
    /// to expire or no longer covering the cluster's names. A new CA always brings a new
    /// certificate; a kept CA signs a renewed one, so clients keep trusting the cluster.
    pub fn complete(
        cluster: &ValidatedCluster,
        existing: Option<&Secret>,
        now: Timestamp,
    ) -> Result<Self, TlsError> {
        let data = existing.and_then(|s| s.data.as_ref());
        let text = |key: &str| {
            data.and_then(|d| d.get(key))
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .filter(|v| !v.is_empty())
        };
        let left = |facts: &CertificateFacts| facts.not_after.duration_since(now).as_secs();
        let lifetime = cluster.tls.certificate_lifetime;
        let ca_fresh = |facts: &CertificateFacts| left(facts) > CA_RENEW_BEFORE.as_secs() as i64;
        // Renewed with a third of its life left, and at once when it would outlive a lifetime
        // the user shortened.
        let fresh = |facts: &CertificateFacts| {
            let left = left(facts);
            left > (lifetime / RENEW_AT_SHARE_LEFT).as_secs() as i64
                && left <= lifetime.as_secs() as i64
        };
        let ca = match (text(naming::CA_CERT_KEY), text(naming::CA_KEY_KEY)) {
            (Some(cert), Some(key))
                if read_certificate(naming::CA_CERT_KEY, cert.as_bytes())
                    .is_ok_and(|f| ca_fresh(&f))
                    && KeyPair::from_pem(&key).is_ok() =>
            {
                Some((cert, key))
            }
            _ => None,
        };
        let (ca_cert, ca_key, ca_kept) = match ca {
            Some((cert, key)) => (cert, key, true),
            None => {
                let (cert, key) = issue_ca(cluster, now)?;
                (cert, key, false)
            }
        };
        let wanted = certificate_names(cluster);
        let kept = match (text(naming::TLS_CERT_KEY), text(naming::TLS_KEY_KEY)) {
            (Some(cert), Some(key))
                if ca_kept
                    && read_certificate(naming::TLS_CERT_KEY, cert.as_bytes())
                        .is_ok_and(|f| fresh(&f) && f.names == wanted)
                    && KeyPair::from_pem(&key).is_ok() =>
            {
                Some((cert, key))
            }
            _ => None,
        };
        let (cert, key) = match kept {
            Some(pair) => pair,
            None => issue_server_certificate(cluster, &wanted, &ca_cert, &ca_key, now)?,
        };
        Ok(Self {
            ca_cert,
            ca_key,
            cert,
            key,
        })
    }
}

fn offset_time(at: Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(at.as_second())
        .expect("a jiff timestamp is within time's range")
}

fn validity(params: &mut CertificateParams, now: Timestamp, lifetime: Duration) {
    let now = offset_time(now);
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
}

/// A new CA for the cluster: its own, so that trusting it trusts this cluster only.
fn issue_ca(cluster: &ValidatedCluster, now: Timestamp) -> Result<(String, String), TlsError> {
    let key = KeyPair::generate()?;
    let params = ca_params(cluster, now);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn ca_params(cluster: &ValidatedCluster, now: Timestamp) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::OrganizationName, "Sakila");
    subject.push(
        DnType::CommonName,
        format!("{}/{} CA", cluster.namespace, cluster.name),
    );
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, now, CA_LIFETIME);
    params
}

fn issue_server_certificate(
    cluster: &ValidatedCluster,
    names: &BTreeSet<String>,
    ca_cert: &str,
    ca_key: &str,
    now: Timestamp,
) -> Result<(String, String), TlsError> {
    let ca_key = KeyPair::from_pem(ca_key)?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert, ca_key)?;
    let mut params = CertificateParams::new(names.iter().cloned().collect::<Vec<_>>())?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::OrganizationName, "Sakila");
    subject.push(
        DnType::CommonName,
        format!(
            "{}.{}",
            naming::primary_service(&cluster.name),
            cluster.namespace
        ),
    );
    params.distinguished_name = subject;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // Client auth too: mysqld presents it when it clones or replicates from a peer.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    validity(&mut params, now, cluster.tls.certificate_lifetime);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The Secret `<name>-tls`. Like the credentials Secret it has no owner with
/// `deletionPolicy: Retain`: a cluster re-created over its volumes keeps the CA its clients trust.
pub fn build_tls_secret(cluster: &ValidatedCluster, tls: &IssuedTls) -> Secret {
    let mut metadata = meta(cluster, naming::tls_secret(&cluster.name));
    if cluster.deletion_policy == DeletionPolicy::Retain {
        metadata.owner_references = None;
    }
    let data = [
        (naming::CA_CERT_KEY, &tls.ca_cert),
        (naming::CA_KEY_KEY, &tls.ca_key),
        (naming::TLS_CERT_KEY, &tls.cert),
        (naming::TLS_KEY_KEY, &tls.key),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.clone().into_bytes())))
    .collect::<BTreeMap<_, _>>();
    Secret {
        metadata,
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::validated;

    fn now() -> Timestamp {
        "2026-11-29T00:00:00Z".parse().unwrap()
    }

    fn days(n: i64) -> jiff::SignedDuration {
        jiff::SignedDuration::from_hours(24 * n)
    }

    fn secret_of(tls: &IssuedTls) -> Secret {
        build_tls_secret(&validated("db", 3), tls)
    }

    #[test]
    fn the_certificate_covers_every_pod_and_service_name_and_nothing_else() {
        let mut cluster = validated("db", 3);
        cluster.tls.extra_names = vec!["db.example.com".into(), "10.0.0.7".into()];
        let tls = IssuedTls::complete(&cluster, None, now()).unwrap();
        let facts = read_certificate("tls.crt", tls.cert.as_bytes()).unwrap();
        let expected: BTreeSet<String> = [
            "*.db.shop.svc",
            "*.db.shop.svc.cluster.local",
            "*.db.shop",
            "localhost",
            "db",
            "db.shop",
            "db.shop.svc",
            "db.shop.svc.cluster.local",
            "db-primary",
            "db-primary.shop",
            "db-primary.shop.svc",
            "db-primary.shop.svc.cluster.local",
            "db-replicas",
            "db-replicas.shop",
            "db-replicas.shop.svc",
            "db-replicas.shop.svc.cluster.local",
            "db.example.com",
            "10.0.0.7",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(facts.names, expected);
        assert_eq!(facts.not_after, now() + days(90));
    }

    #[test]
    fn a_sound_secret_is_kept_as_it_is() {
        let cluster = validated("db", 3);
        let first = IssuedTls::complete(&cluster, None, now()).unwrap();
        let again =
            IssuedTls::complete(&cluster, Some(&secret_of(&first)), now() + days(59)).unwrap();
        assert_eq!(again, first);
    }

    #[test]
    fn a_certificate_near_its_end_is_renewed_by_the_same_ca() {
        let cluster = validated("db", 3);
        let first = IssuedTls::complete(&cluster, None, now()).unwrap();
        let later = now() + days(61);
        let renewed = IssuedTls::complete(&cluster, Some(&secret_of(&first)), later).unwrap();
        assert_eq!(renewed.ca_cert, first.ca_cert);
        assert_eq!(renewed.ca_key, first.ca_key);
        assert_ne!(renewed.cert, first.cert);
        assert_ne!(renewed.key, first.key);
        let facts = read_certificate("tls.crt", renewed.cert.as_bytes()).unwrap();
        assert_eq!(facts.not_after, later + days(90));
        assert_eq!(renewed.cert_issuer_der(), first.ca_subject_der());
    }

    #[test]
    fn new_names_get_a_new_certificate_from_the_same_ca() {
        let mut cluster = validated("db", 3);
        let first = IssuedTls::complete(&cluster, None, now()).unwrap();
        cluster.tls.extra_names = vec!["mysql.example.com".into()];
        let reissued = IssuedTls::complete(&cluster, Some(&secret_of(&first)), now()).unwrap();
        assert_eq!(reissued.ca_cert, first.ca_cert);
        let facts = read_certificate("tls.crt", reissued.cert.as_bytes()).unwrap();
        assert!(facts.names.contains("mysql.example.com"));
    }

    #[test]
    fn a_short_lifetime_is_renewed_with_a_third_left_and_a_shortened_one_at_once() {
        let mut cluster = validated("db", 3);
        cluster.tls.certificate_lifetime = Duration::from_secs(180);
        let first = IssuedTls::complete(&cluster, None, now()).unwrap();
        let facts = read_certificate("tls.crt", first.cert.as_bytes()).unwrap();
        assert_eq!(
            facts.not_after,
            now() + jiff::SignedDuration::from_secs(180)
        );
        let at = |secs| now() + jiff::SignedDuration::from_secs(secs);
        let kept = IssuedTls::complete(&cluster, Some(&secret_of(&first)), at(119)).unwrap();
        assert_eq!(kept, first);
        let renewed = IssuedTls::complete(&cluster, Some(&secret_of(&first)), at(120)).unwrap();
        assert_ne!(renewed.cert, first.cert);
        assert_eq!(renewed.ca_cert, first.ca_cert);

        let long = IssuedTls::complete(&validated("db", 3), None, now()).unwrap();
        let shortened = IssuedTls::complete(&cluster, Some(&secret_of(&long)), now()).unwrap();
        assert_ne!(shortened.cert, long.cert);
    }

    #[test]
    fn damaged_or_missing_material_is_issued_again_whole() {
        let cluster = validated("db", 3);
        let first = IssuedTls::complete(&cluster, None, now()).unwrap();
        let mut damaged = secret_of(&first);
        damaged
            .data
            .as_mut()
            .unwrap()
            .insert(naming::CA_KEY_KEY.into(), ByteString(b"not a key".to_vec()));
        let reissued = IssuedTls::complete(&cluster, Some(&damaged), now()).unwrap();
        assert_ne!(reissued.ca_cert, first.ca_cert);
        assert_ne!(reissued.cert, first.cert);
    }

    #[test]
    fn the_secret_holds_the_cert_manager_layout_and_the_ca_key() {
        let cluster = validated("db", 3);
        let tls = IssuedTls::complete(&cluster, None, now()).unwrap();
        let secret = build_tls_secret(&cluster, &tls);
        assert_eq!(secret.metadata.name.as_deref(), Some("db-tls"));
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        let keys: Vec<&String> = secret.data.as_ref().unwrap().keys().collect();
        assert_eq!(keys, ["ca.crt", "ca.key", "tls.crt", "tls.key"]);
        assert!(format!("{tls:?}").find("PRIVATE").is_none());
    }

    #[test]
    fn a_text_that_is_no_certificate_is_refused_by_name() {
        let error = read_certificate("ca.crt", b"hello").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("ca.crt is not a PEM certificate")
        );
    }

    impl IssuedTls {
        fn cert_issuer_der(&self) -> Vec<u8> {
            let (_, pem) = x509_parser::pem::parse_x509_pem(self.cert.as_bytes()).unwrap();
            pem.parse_x509().unwrap().issuer().as_raw().to_vec()
        }

        fn ca_subject_der(&self) -> Vec<u8> {
            let (_, pem) = x509_parser::pem::parse_x509_pem(self.ca_cert.as_bytes()).unwrap();
            pem.parse_x509().unwrap().subject().as_raw().to_vec()
        }
    }
}
