//! The pure parts of the client: addressing, keys, configuration checks and
//! error classification. The IO is tested against versitygw in
//! tests/objectstore_integration.rs.

use super::*;

fn config() -> StoreConfig {
    StoreConfig {
        endpoint: "http://minio.example:9000".into(),
        bucket: "sakila-backups".into(),
        prefix: String::new(),
        region: String::new(),
        path_style: true,
        credentials: Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "very-secret".into(),
        },
        ca_bundle_pem: None,
    }
}

fn endpoint(authority: &str) -> Endpoint {
    Endpoint {
        scheme: "http".into(),
        authority: authority.into(),
    }
}

#[test]
fn path_style_puts_the_bucket_in_the_path_and_virtual_hosted_in_the_host() {
    let ep = endpoint("minio:9000");
    let cases = [
        (true, Some("c1/base.xb"), "minio:9000", "/b-1/c1/base.xb"),
        (true, None, "minio:9000", "/b-1"),
        (false, Some("c1/base.xb"), "b-1.minio:9000", "/c1/base.xb"),
        (false, None, "b-1.minio:9000", "/"),
        (
            true,
            Some("a b/ü+$"),
            "minio:9000",
            "/b-1/a%20b/%C3%BC%2B%24",
        ),
    ];
    for (path_style, key, host, path) in cases {
        assert_eq!(
            target(&ep, "b-1", path_style, key),
            Target {
                host: host.into(),
                path: path.into()
            },
            "path_style={path_style} key={key:?}"
        );
    }
}

#[test]
fn keys_join_prefix_and_relative_with_exactly_one_slash() {
    let cases = [
        ("", "a/b", "a/b"),
        ("backups", "a", "backups/a"),
        ("backups/", "a", "backups/a"),
        ("backups//", "/a", "backups/a"),
        ("x/y", "", "x/y/"),
    ];
    for (prefix, relative, expected) in cases {
        assert_eq!(
            join_key(prefix, relative),
            expected,
            "{prefix:?} + {relative:?}"
        );
    }
}

#[test]
fn key_uses_the_configured_prefix() {
    let store = ObjectStore::new(StoreConfig {
        prefix: "team-a/".into(),
        ..config()
    })
    .unwrap();
    assert_eq!(store.key("c1/manifest.json"), "team-a/c1/manifest.json");
}

#[test]
fn endpoints_must_be_http_or_https_urls_without_path() {
    let cases = [
        ("http://minio:9000", Some(("http", "minio:9000"))),
        (
            "https://s3.eu-west-1.amazonaws.com",
            Some(("https", "s3.eu-west-1.amazonaws.com")),
        ),
        ("https://s3.example/", Some(("https", "s3.example"))),
        ("http://[::1]:9000", Some(("http", "[::1]:9000"))),
        ("minio:9000", None),
        ("ftp://minio", None),
        ("http://minio:9000/bucket", None),
        ("http://user:pw@minio:9000", None),
        ("", None),
    ];
    for (input, expected) in cases {
        let expected = expected.map(|(scheme, authority)| Endpoint {
            scheme: scheme.into(),
            authority: authority.into(),
        });
        assert_eq!(parse_endpoint(input).ok(), expected, "{input:?}");
    }
}

#[test]
fn bucket_names_follow_s3_rules() {
    for ok in ["abc", "sakila-backups", "a.b-c.123", &"a".repeat(63)] {
        assert!(validate_bucket(ok).is_ok(), "{ok:?} should be valid");
    }
    for bad in [
        "ab",
        "Sakila",
        "-abc",
        "abc-",
        "a_b",
        "",
        &"a".repeat(64),
        "a/b",
    ] {
        assert!(validate_bucket(bad).is_err(), "{bad:?} should be invalid");
    }
}

#[test]
fn new_rejects_configurations_that_cannot_work() {
    let cases = [
        (
            "empty secret",
            StoreConfig {
                credentials: Credentials {
                    access_key_id: "a".into(),
                    secret_access_key: String::new(),
                },
                ..config()
            },
        ),
        (
            "CA bundle on http",
            StoreConfig {
                ca_bundle_pem: Some(b"-----BEGIN CERTIFICATE-----".to_vec()),
                ..config()
            },
        ),
        (
            "CA bundle without certificates",
            StoreConfig {
                endpoint: "https://minio:9000".into(),
                ca_bundle_pem: Some(b"not pem".to_vec()),
                ..config()
            },
        ),
        (
            "bad bucket",
            StoreConfig {
                bucket: "No_Such".into(),
                ..config()
            },
        ),
    ];
    for (name, config) in cases {
        assert!(
            matches!(ObjectStore::new(config), Err(StoreError::InvalidConfig(_))),
            "{name}"
        );
    }
}

#[test]
fn an_empty_region_means_us_east_1() {
    let store = ObjectStore::new(config()).unwrap();
    assert_eq!(store.config().region, "us-east-1");
}

#[test]
fn part_sizes_below_the_s3_minimum_are_refused() {
    let store = ObjectStore::new(config()).unwrap();
    assert!(store.with_part_size(MIN_PART_SIZE - 1).is_err());
    assert!(store.with_part_size(MIN_PART_SIZE).is_ok());
}

#[test]
fn debug_output_never_shows_the_secret_key() {
    let store = ObjectStore::new(config()).unwrap();
    let shown = format!("{store:?} {:?}", config());
    assert!(!shown.contains("very-secret"), "{shown}");
    assert!(shown.contains("AKID"));
}

#[test]
fn failed_responses_become_typed_errors() {
    let c = |status, code: &str, key: &str| {
        classify(
            "http://m",
            "b",
            "GET",
            key,
            status,
            code.into(),
            "msg".into(),
        )
    };
    assert!(matches!(
        c(404, "NoSuchBucket", "k"),
        StoreError::NoSuchBucket { .. }
    ));
    assert!(matches!(
        c(404, "NoSuchKey", "k"),
        StoreError::NoSuchKey { .. }
    ));
    // HEAD answers have no body: the status and the target decide.
    assert!(matches!(c(404, "", ""), StoreError::NoSuchBucket { .. }));
    assert!(matches!(c(404, "", "k"), StoreError::NoSuchKey { .. }));
    assert!(matches!(c(403, "", ""), StoreError::AccessDenied { .. }));
    assert!(matches!(
        c(403, "SignatureDoesNotMatch", "k"),
        StoreError::AccessDenied { .. }
    ));
    assert!(matches!(
        c(403, "InvalidAccessKeyId", "k"),
        StoreError::AccessDenied { .. }
    ));
    assert!(matches!(
        c(500, "InternalError", "k"),
        StoreError::Protocol { status: 500, .. }
    ));
    assert!(matches!(
        c(409, "BucketAlreadyOwnedByYou", ""),
        StoreError::Protocol { status: 409, .. }
    ));
}

#[test]
fn only_network_and_server_side_failures_are_transient() {
    let c = |status, code: &str| {
        classify(
            "http://m",
            "b",
            "GET",
            "k",
            status,
            code.into(),
            String::new(),
        )
    };
    assert!(c(503, "SlowDown").is_transient());
    assert!(c(429, "").is_transient());
    assert!(!c(403, "AccessDenied").is_transient());
    assert!(!c(404, "NoSuchBucket").is_transient());
    assert!(
        StoreError::Timeout {
            endpoint: "e".into(),
            after: Duration::from_secs(1)
        }
        .is_transient()
    );
}

#[test]
fn access_denied_tells_the_user_what_to_check() {
    let msg = classify(
        "http://m:9000",
        "b",
        "HEAD",
        "",
        403,
        String::new(),
        String::new(),
    )
    .to_string();
    assert!(
        msg.contains("http://m:9000") && msg.contains("secret key"),
        "{msg}"
    );
}

#[test]
fn protocol_errors_name_the_object_or_the_bucket() {
    let on_key = classify(
        "http://m",
        "b",
        "PUT",
        "c1/x",
        500,
        "InternalError".into(),
        "boom".into(),
    );
    assert_eq!(
        on_key.to_string(),
        "object store http://m answered PUT of \"c1/x\" with HTTP 500 InternalError: boom"
    );
    let on_bucket = classify(
        "http://m",
        "b",
        "GET",
        "",
        503,
        "SlowDown".into(),
        "later".into(),
    );
    assert_eq!(
        on_bucket.to_string(),
        "object store http://m answered GET of the bucket with HTTP 503 SlowDown: later"
    );
}

/// The backup runner spawns these on tokio's multi-threaded runtime: a
/// future or stream that is not Send would not compile there. Constructing
/// the futures does no IO (they are lazy).
#[test]
fn every_operation_can_run_on_a_spawned_task() {
    fn assert_send<T: Send>(_: &T) {}
    let store = ObjectStore::new(config()).unwrap();
    assert_send(&store.put("k", Bytes::new()));
    assert_send(&store.get("k"));
    assert_send(&store.get_stream("k"));
    assert_send(&store.list("p"));
    assert_send(&store.delete("k"));
    assert_send(&store.head_bucket());
    assert_send(&store.create_bucket());
    assert_send(&store.upload("k", futures::stream::empty::<std::io::Result<Bytes>>()));
}
