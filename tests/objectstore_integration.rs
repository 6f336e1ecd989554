//! The S3 client (src/objectstore) against a real versitygw server (POSIX
//! backend) on a loopback port, the same versitygw build the e2e testbed
//! deploys.
//!
//! The server binary comes from `e2e/images/build versitygw-binary` (a Go
//! build from the module proxy, cached under /var/cache/sakila), or from
//! `SAKILA_VERSITYGW_BINARY`. When it cannot be built (no Go toolchain, no
//! network to the module proxy) the tests say SKIPPED and pass.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use sakila::objectstore::{Credentials, ObjectStore, StoreConfig, StoreError};
use sha2::{Digest, Sha256};

const ACCESS_KEY: &str = "sakila-test";
const SECRET_KEY: &str = "sakila-test-secret";
const BUCKET: &str = "sakila-backups";
const MIB: usize = 1024 * 1024;

/// The versitygw binary, built once per test process; None (after saying
/// why) when it cannot be built here.
fn versitygw_binary(test: &str) -> Option<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("SAKILA_VERSITYGW_BINARY") {
            return Ok(PathBuf::from(path));
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/images/build");
        let out = Command::new(&script)
            .arg("versitygw-binary")
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && Path::new(&path).is_file() {
            Ok(PathBuf::from(path))
        } else {
            Err(format!(
                "`e2e/images/build versitygw-binary` failed ({}); it needs Go and the module proxy",
                out.status
            ))
        }
    });
    match found {
        Ok(path) => Some(path.clone()),
        Err(why) => {
            // Straight to the file descriptor: libtest captures eprintln! of passing tests.
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free loopback port")
        .port()
}

/// One versitygw server with its own data directory; both go away on drop.
struct Versitygw {
    child: Child,
    dir: PathBuf,
    endpoint: String,
    ca_bundle_pem: Option<Vec<u8>>,
}

/// A private CA and a server certificate for 127.0.0.1 that it signed.
struct TestTls {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl TestTls {
    fn new() -> TestTls {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        TestTls {
            ca_pem,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Versitygw {
    async fn start(binary: &Path) -> Versitygw {
        Versitygw::start_with(binary, None).await
    }

    /// With `tls`, versitygw serves https with that certificate and key
    /// (PEM), and `ca_bundle_pem` is what its clients must trust.
    async fn start_with(binary: &Path, tls: Option<TestTls>) -> Versitygw {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sakila-versitygw-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("no temporary directory");
        let log = std::fs::File::create(dir.join("versitygw.log")).expect("cannot create the log");
        let port = free_port();
        let mut command = Command::new(binary);
        // Global options go before the backend's name; the credentials through
        // the environment, as the testbed's manifest passes them.
        command
            .arg("--port")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--quiet")
            .env("ROOT_ACCESS_KEY_ID", ACCESS_KEY)
            .env("ROOT_SECRET_ACCESS_KEY", SECRET_KEY);
        let (scheme, ca_bundle_pem) = match tls {
            Some(tls) => {
                let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
                std::fs::write(&cert, &tls.cert_pem).unwrap();
                std::fs::write(&key, &tls.key_pem).unwrap();
                command.arg("--cert").arg(cert).arg("--key").arg(key);
                ("https", Some(tls.ca_pem.into_bytes()))
            }
            None => ("http", None),
        };
        let child = command
            .arg("posix")
            .arg(dir.join("data"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start versitygw");
        let server = Versitygw {
            child,
            dir,
            endpoint: format!("{scheme}://127.0.0.1:{port}"),
            ca_bundle_pem,
        };
        // Ready when it accepts our credentials (HeadBucket of a missing
        // bucket answers 404 only once the server has initialised).
        let store = server.store(BUCKET, SECRET_KEY);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match store.head_bucket().await {
                Ok(()) | Err(StoreError::NoSuchBucket { .. }) => break,
                Err(e) if Instant::now() > deadline => {
                    panic!("versitygw did not come up: {e}\n{}", server.log())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        server
    }

    fn store(&self, bucket: &str, secret: &str) -> ObjectStore {
        ObjectStore::new(StoreConfig {
            endpoint: self.endpoint.clone(),
            bucket: bucket.into(),
            prefix: "it".into(),
            region: String::new(),
            path_style: true,
            credentials: Credentials {
                access_key_id: ACCESS_KEY.into(),
                secret_access_key: secret.into(),
            },
            ca_bundle_pem: self.ca_bundle_pem.clone(),
        })
        .expect("valid config")
    }

    /// A store on the test bucket, created.
    async fn bucket(&self) -> ObjectStore {
        let store = self.store(BUCKET, SECRET_KEY);
        store.create_bucket().await.expect("create bucket");
        store
    }

    /// Parts of open multipart uploads in `bucket`. versitygw's POSIX
    /// backend keeps each part as a file named by its part number, in
    /// `<bucket>/.sgwtmp/multipart/<sha256 of the key>/<upload id>/`, until
    /// the upload is completed or aborted (found by experiment with this
    /// version: two parts of an upload left open were the files `1` and `2`
    /// there, and an abort removed the upload's directory).
    fn multipart_part_files(&self, bucket: &str) -> usize {
        let subdirs = |dir: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_dir())
                        .collect()
                })
                .unwrap_or_default()
        };
        let root = self.dir.join("data").join(bucket).join(".sgwtmp/multipart");
        subdirs(&root)
            .iter()
            .flat_map(|key| subdirs(key))
            .flat_map(|upload| std::fs::read_dir(upload).into_iter().flatten().flatten())
            .filter(|part| {
                let name = part.file_name();
                let name = name.to_string_lossy();
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
            })
            .count()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("versitygw.log")).unwrap_or_default()
    }
}

impl Drop for Versitygw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Deterministic, non-repeating bytes: a part swapped or duplicated would
/// change the hash.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

macro_rules! versitygw_or_skip {
    ($test:literal) => {
        match versitygw_binary($test) {
            Some(binary) => Versitygw::start(&binary).await,
            None => return,
        }
    };
}

#[tokio::test]
async fn put_then_get_returns_the_same_bytes_and_a_missing_key_is_no_such_key() {
    let server = versitygw_or_skip!("put_then_get");
    let store = server.bucket().await;
    // Characters that need encoding in the path (and so in the signature).
    let key = store.key("c1/2026-11-29T04:00:00Z/manifest + ü.json");
    let body = Bytes::from_static(b"{\"gtid\":\"uuid:1-42\"}");
    store.put(&key, body.clone()).await.expect("put");
    assert_eq!(store.get(&key).await.expect("get"), body);

    // An empty object is an object, too.
    let empty = store.key("empty");
    store.put(&empty, Bytes::new()).await.expect("put empty");
    assert_eq!(store.get(&empty).await.expect("get empty"), Bytes::new());

    let missing = store.get(&store.key("absent")).await;
    assert!(
        matches!(missing, Err(StoreError::NoSuchKey { .. })),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_streamed_upload_of_40_mib_goes_up_in_three_parts_and_comes_back_identical() {
    let server = versitygw_or_skip!("multipart_upload");
    let store = server.bucket().await.with_part_size(16 * MIB).unwrap();
    let data = Bytes::from(pattern(40 * MIB + 12345, 7));
    // Small chunks, as a pipe delivers them; an odd size, so that chunks
    // straddle the part boundaries.
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(64 * 1024 + 3)
        .map(|c| Ok(data.slice_ref(c)))
        .collect();
    let key = store.key("c1/base.xbstream");
    let uploaded = store
        .upload(&key, futures::stream::iter(chunks))
        .await
        .expect("upload");
    assert_eq!(uploaded.parts, 3);
    assert_eq!(uploaded.size_bytes, data.len() as u64);
    assert_eq!(uploaded.sha256_hex, sha256_hex(&data));

    let mut stream = store.get_stream(&key).await.expect("get_stream");
    let mut hasher = Sha256::new();
    let mut size = 0usize;
    let mut downloaded = Vec::with_capacity(data.len());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        hasher.update(&chunk);
        size += chunk.len();
        downloaded.extend_from_slice(&chunk);
    }
    assert_eq!(size, data.len());
    let downloaded_sha: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(downloaded_sha, uploaded.sha256_hex);
    assert!(downloaded == data, "downloaded bytes differ");

    let listed = store.list(&key).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size_bytes, data.len() as u64);
}

#[tokio::test]
async fn an_upload_smaller_than_one_part_is_a_single_put() {
    let server = versitygw_or_skip!("small_upload");
    let store = server.bucket().await;
    let data = Bytes::from(pattern(100_000, 3));
    let chunks: Vec<std::io::Result<Bytes>> =
        data.chunks(4096).map(|c| Ok(data.slice_ref(c))).collect();
    let key = store.key("small");
    let uploaded = store
        .upload(&key, futures::stream::iter(chunks))
        .await
        .expect("upload");
    assert_eq!(uploaded.parts, 1);
    assert_eq!(uploaded.sha256_hex, sha256_hex(&data));
    assert_eq!(store.get(&key).await.expect("get"), data);
}

#[tokio::test]
async fn a_failing_source_aborts_the_upload_and_leaves_no_object() {
    let server = versitygw_or_skip!("failing_source");
    let store = server.bucket().await.with_part_size(5 * MIB).unwrap();
    let part = Bytes::from(pattern(6 * MIB, 5));
    let chunks: Vec<std::io::Result<Bytes>> = vec![
        Ok(part.clone()),
        Ok(part),
        Err(std::io::Error::other("mysqldump exited with status 2")),
    ];
    let key = store.key("broken");
    let result = store.upload(&key, futures::stream::iter(chunks)).await;
    assert!(
        matches!(&result, Err(StoreError::Source(e)) if e.to_string().contains("mysqldump")),
        "{result:?}"
    );
    assert!(matches!(
        store.get(&key).await,
        Err(StoreError::NoSuchKey { .. })
    ));
    // The uploaded parts are gone (an upload left open keeps them, and on
    // AWS bills for them, until a lifecycle rule removes it).
    assert_eq!(server.multipart_part_files(BUCKET), 0, "{:?}", server.dir);
}

#[tokio::test]
async fn list_follows_continuation_tokens_and_keeps_to_the_prefix() {
    let server = versitygw_or_skip!("list_pages");
    // Two objects per page: seven objects need four pages.
    let store = server.bucket().await.with_list_page_size(2);
    for i in 0..7 {
        let key = store.key(&format!("c1/backup-{i}"));
        store.put(&key, Bytes::from(vec![b'x'; i])).await.unwrap();
    }
    store
        .put(&store.key("c10/other"), Bytes::from_static(b"no"))
        .await
        .unwrap();
    store
        .put(&store.key("c2/other"), Bytes::from_static(b"no"))
        .await
        .unwrap();

    let listed = store.list(&store.key("c1/")).await.expect("list");
    let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    let expected: Vec<String> = (0..7).map(|i| format!("it/c1/backup-{i}")).collect();
    assert_eq!(keys, expected);
    assert!(
        listed
            .iter()
            .enumerate()
            .all(|(i, o)| o.size_bytes == i as u64 && !o.last_modified.is_empty())
    );
    assert!(store.list(&store.key("nothing/")).await.unwrap().is_empty());
}

#[tokio::test]
async fn delete_removes_the_object_and_deleting_an_absent_key_succeeds() {
    let server = versitygw_or_skip!("delete");
    let store = server.bucket().await;
    let key = store.key("c1/old");
    store.put(&key, Bytes::from_static(b"old")).await.unwrap();
    store.delete(&key).await.expect("delete");
    assert!(matches!(
        store.get(&key).await,
        Err(StoreError::NoSuchKey { .. })
    ));
    store.delete(&key).await.expect("delete again");
    assert!(store.list(&key).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_wrong_secret_key_is_access_denied() {
    let server = versitygw_or_skip!("wrong_secret");
    server.bucket().await;
    let store = server.store(BUCKET, "not-the-secret");
    let head = store.head_bucket().await;
    assert!(
        matches!(head, Err(StoreError::AccessDenied { .. })),
        "{head:?}"
    );
    let put = store.put("x", Bytes::from_static(b"x")).await;
    assert!(
        matches!(put, Err(StoreError::AccessDenied { .. })),
        "{put:?}"
    );
    assert!(
        put.unwrap_err().to_string().contains("secret key"),
        "the message says what to check"
    );
}

#[tokio::test]
async fn a_missing_bucket_is_no_such_bucket_and_create_bucket_is_idempotent() {
    let server = versitygw_or_skip!("missing_bucket");
    let store = server.store("no-such-bucket", SECRET_KEY);
    let head = store.head_bucket().await;
    assert!(
        matches!(head, Err(StoreError::NoSuchBucket { .. })),
        "{head:?}"
    );
    let get = store.get("k").await;
    assert!(
        matches!(get, Err(StoreError::NoSuchBucket { .. })),
        "{get:?}"
    );
    let list = store.list("").await;
    assert!(
        matches!(list, Err(StoreError::NoSuchBucket { .. })),
        "{list:?}"
    );

    store.create_bucket().await.expect("create");
    store.create_bucket().await.expect("create again");
    store.head_bucket().await.expect("head after create");
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    // No server needed, but the test belongs with the others.
    let store = ObjectStore::new(StoreConfig {
        endpoint: format!("http://127.0.0.1:{}", free_port()),
        bucket: BUCKET.into(),
        prefix: String::new(),
        region: String::new(),
        path_style: true,
        credentials: Credentials {
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
        },
        ca_bundle_pem: None,
    })
    .unwrap();
    let head = store.head_bucket().await;
    assert!(
        matches!(&head, Err(StoreError::Unreachable { reason, .. }) if reason.contains("refused")),
        "{head:?}"
    );
}

#[tokio::test]
async fn an_https_endpoint_is_trusted_through_the_configured_ca_bundle_only() {
    let Some(binary) = versitygw_binary("https_ca_bundle") else {
        return;
    };
    let server = Versitygw::start_with(&binary, Some(TestTls::new())).await;
    let store = server.bucket().await;
    let key = store.key("over-tls");
    store
        .put(&key, Bytes::from_static(b"secret"))
        .await
        .expect("put over TLS");
    assert_eq!(
        store.get(&key).await.unwrap(),
        Bytes::from_static(b"secret")
    );

    // Without the private CA (the system's and Mozilla's roots only) the
    // server's certificate is not trusted, and the message says why.
    let untrusted = ObjectStore::new(StoreConfig {
        ca_bundle_pem: None,
        ..store.config().clone()
    })
    .unwrap();
    let head = untrusted.head_bucket().await;
    assert!(
        matches!(&head, Err(StoreError::Unreachable { reason, .. }) if reason.contains("certificate")),
        "{head:?}"
    );
}
