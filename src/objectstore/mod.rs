//! A small S3 client for backups: put, get (whole or streamed), list, delete
//! and multipart upload against any S3-compatible store (AWS S3, versitygw,
//! Ceph RGW, MinIO, ...), over the hyper and rustls that kube already brings.
//! The tests run it against versitygw (tests/objectstore_integration.rs and
//! the backup e2e).
//!
//! Not the AWS SDK on purpose: it is a large dependency tree, and its default
//! integrity checksums (CRC headers on every PUT) are rejected by several
//! S3-compatible stores (MOCO issue #783). Every request here is signed with
//! SigV4 over the sha256 of its exact payload, which all of them accept.
//!
//! Requests are not retried here: the callers (backup runner, controller)
//! decide whether and when to try again.

mod sigv4;
mod xml;

pub use sigv4::{EMPTY_SHA256, SignedHeaders, SigningRequest, encode_path, hex, sign, uri_encode};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};

/// Where the objects live and how to sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `http(s)://host[:port]`, no path.
    pub endpoint: String,
    pub bucket: String,
    /// Prepended to every relative key with a '/'; may be empty.
    pub prefix: String,
    /// The SigV4 signing region; empty means "us-east-1".
    pub region: String,
    /// `endpoint/bucket/key` when true (versitygw, MinIO, most self-hosted stores),
    /// `bucket.host/key` (virtual-hosted, AWS's default) when false.
    pub path_style: bool,
    pub credentials: Credentials,
    /// PEM certificates to trust for an https endpoint instead of the
    /// system's roots (a private CA).
    pub ca_bundle_pem: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// The secret stays out of logs and error messages.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The full key, prefix included (as `list` was given it).
    pub key: String,
    pub size_bytes: u64,
    /// As the store wrote it (RFC 3339, e.g. 2026-11-29T04:00:00.000Z).
    pub last_modified: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub size_bytes: u64,
    /// sha256 of the whole object, lowercase hex.
    pub sha256_hex: String,
    /// Number of multipart parts; 1 when it went up as one PUT.
    pub parts: usize,
}

/// Messages say what to check, since they end up in Kubernetes conditions.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid object store configuration: {0}")]
    InvalidConfig(String),
    #[error(
        "object store {endpoint} is unreachable: {reason}; check the endpoint, DNS and network policies"
    )]
    Unreachable { endpoint: String, reason: String },
    #[error("object store {endpoint} did not answer within {after:?}")]
    Timeout { endpoint: String, after: Duration },
    #[error(
        "object store {endpoint} denied access ({code}: {message}); check the access key, the secret key and the bucket policy"
    )]
    AccessDenied {
        endpoint: String,
        code: String,
        message: String,
    },
    #[error("bucket {bucket:?} does not exist at {endpoint}; create it or fix the bucket name")]
    NoSuchBucket { endpoint: String, bucket: String },
    #[error("object {key:?} does not exist in bucket {bucket:?}")]
    NoSuchKey { bucket: String, key: String },
    #[error(
        "object store {endpoint} answered {method} of {} with HTTP {status} {code}: {message}",
        what(.key)
    )]
    Protocol {
        endpoint: String,
        method: String,
        key: String,
        status: u16,
        code: String,
        message: String,
    },
    /// The stream given to `upload` failed; nothing of it stays in the store.
    #[error("reading the data to upload failed: {0}")]
    Source(#[source] std::io::Error),
}

/// The target of a request in a message: bucket-level requests have no key.
fn what(key: &str) -> String {
    if key.is_empty() {
        "the bucket".to_string()
    } else {
        format!("{key:?}")
    }
}

impl StoreError {
    /// Worth trying again later (network, timeouts, the store's 5xx and throttling),
    /// as opposed to configuration the user must fix.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unreachable { .. } | StoreError::Timeout { .. } => true,
            StoreError::Protocol { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// S3's smallest part size (all parts but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
pub const DEFAULT_PART_SIZE: usize = 16 * 1024 * 1024;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per request, and between two chunks of a streamed download; a 16 MiB part
/// at 1 MB/s still fits.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// S3's maximum page size for ListObjectsV2.
const DEFAULT_LIST_PAGE: usize = 1000;
/// S3 allows at most 10000 parts per upload.
const MAX_PARTS: usize = 10_000;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A handle on one bucket (and prefix); clones share the connection pool.
#[derive(Clone)]
pub struct ObjectStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: StoreConfig,
    endpoint: Endpoint,
    client: HttpClient,
    request_timeout: Duration,
    part_size: usize,
    list_page: usize,
}

impl fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStore")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The endpoint, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    scheme: String,
    /// host[:port] as written in the endpoint.
    authority: String,
}

/// Where one request goes: the Host header and the (encoded) path, which is
/// also what SigV4 signs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host: String,
    path: String,
}

fn parse_endpoint(endpoint: &str) -> Result<Endpoint, StoreError> {
    let invalid = |why: &str| {
        StoreError::InvalidConfig(format!(
            "endpoint {endpoint:?} {why}; expected http(s)://host[:port]"
        ))
    };
    let uri: Uri = endpoint.parse().map_err(|_| invalid("is not a URL"))?;
    let scheme = match uri.scheme_str() {
        Some(s @ ("http" | "https")) => s.to_string(),
        _ => return Err(invalid("has no http:// or https:// scheme")),
    };
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| invalid("has no host"))?;
    if authority.contains('@') {
        return Err(invalid(
            "carries user information; put credentials in the Secret",
        ));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid("has a path or query"));
    }
    Ok(Endpoint { scheme, authority })
}

/// S3's bucket naming rules, so a typo fails here with a clear message and
/// not as a signature mismatch.
fn validate_bucket(bucket: &str) -> Result<(), StoreError> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && bucket
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidConfig(format!(
            "bucket name {bucket:?} is not valid: 3 to 63 lowercase letters, digits, '.' or '-', \
             starting and ending with a letter or digit"
        )))
    }
}

/// Host and path of a request for `key` (None: the bucket itself).
fn target(endpoint: &Endpoint, bucket: &str, path_style: bool, key: Option<&str>) -> Target {
    let key_path = key.map(|k| encode_path(&format!("/{k}")));
    if path_style {
        Target {
            host: endpoint.authority.clone(),
            path: format!("/{bucket}{}", key_path.unwrap_or_default()),
        }
    } else {
        Target {
            host: format!("{bucket}.{}", endpoint.authority),
            path: key_path.unwrap_or_else(|| "/".to_string()),
        }
    }
}

/// `prefix/relative`, with exactly one '/' between them.
fn join_key(prefix: &str, relative: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let relative = relative.trim_start_matches('/');
    if prefix.is_empty() {
        relative.to_string()
    } else {
        format!("{prefix}/{relative}")
    }
}

fn tls_config(ca_bundle_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, StoreError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::InvalidConfig(format!("TLS setup failed: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    match ca_bundle_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| {
                    StoreError::InvalidConfig(format!("the CA bundle is not valid PEM: {e}"))
                })?;
                roots.add(cert).map_err(|e| {
                    StoreError::InvalidConfig(format!(
                        "the CA bundle holds an unusable certificate: {e}"
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(StoreError::InvalidConfig(
                    "the CA bundle holds no PEM certificate".into(),
                ));
            }
        }
        None => {
            // The system's roots where the image has them, plus Mozilla's
            // compiled-in set, so a scratch or minimal image still reaches
            // AWS and other public endpoints. Unreadable system certificates
            // are skipped: a server they would have verified then fails
            // with a TLS error that says so.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

impl ObjectStore {
    pub fn new(config: StoreConfig) -> Result<Self, StoreError> {
        let mut config = config;
        if config.region.is_empty() {
            config.region = "us-east-1".into();
        }
        let endpoint = parse_endpoint(&config.endpoint)?;
        validate_bucket(&config.bucket)?;
        if config.credentials.access_key_id.is_empty()
            || config.credentials.secret_access_key.is_empty()
        {
            return Err(StoreError::InvalidConfig(
                "the access key id and the secret access key must not be empty".into(),
            ));
        }
        if config.ca_bundle_pem.is_some() && endpoint.scheme != "https" {
            return Err(StoreError::InvalidConfig(format!(
                "a CA bundle is set but endpoint {} is not https",
                config.endpoint
            )));
        }
        let tls = tls_config(config.ca_bundle_pem.as_deref())?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(DEFAULT_CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(ObjectStore {
            inner: Arc::new(Inner {
                config,
                endpoint,
                client,
                request_timeout: DEFAULT_REQUEST_TIMEOUT,
                part_size: DEFAULT_PART_SIZE,
                list_page: DEFAULT_LIST_PAGE,
            }),
        })
    }

    /// The same store with another part size for `upload` (at least 5 MiB).
    pub fn with_part_size(&self, part_size: usize) -> Result<Self, StoreError> {
        if part_size < MIN_PART_SIZE {
            return Err(StoreError::InvalidConfig(format!(
                "part size {part_size} is below S3's minimum of {MIN_PART_SIZE} bytes"
            )));
        }
        Ok(self.with_inner(|i| i.part_size = part_size))
    }

    /// The same store with another timeout per request (and per chunk of a
    /// streamed download).
    pub fn with_request_timeout(&self, timeout: Duration) -> Self {
        self.with_inner(|i| i.request_timeout = timeout)
    }

    /// The same store asking for at most `max_keys` objects per list page
    /// (1 to 1000), so tests can cross pages with few objects.
    pub fn with_list_page_size(&self, max_keys: usize) -> Self {
        self.with_inner(|i| i.list_page = max_keys.clamp(1, DEFAULT_LIST_PAGE))
    }

    fn with_inner(&self, change: impl FnOnce(&mut Inner)) -> Self {
        let i = &self.inner;
        let mut inner = Inner {
            config: i.config.clone(),
            endpoint: i.endpoint.clone(),
            client: i.client.clone(),
            request_timeout: i.request_timeout,
            part_size: i.part_size,
            list_page: i.list_page,
        };
        change(&mut inner);
        ObjectStore {
            inner: Arc::new(inner),
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// The full key of `relative`: the configured prefix, '/', `relative`.
    pub fn key(&self, relative: &str) -> String {
        join_key(&self.inner.config.prefix, relative)
    }

    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        let resp = self.send(Method::PUT, Some(key), &[], body).await?;
        self.expect_success(Method::PUT, key, resp).await.map(drop)
    }

    /// The whole object in memory; for small objects (manifests, metadata).
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let resp = self.send(Method::GET, Some(key), &[], Bytes::new()).await?;
        let resp = self.check_status(Method::GET, key, resp).await?;
        self.read_body(resp).await
    }

    /// The object as a stream of chunks, for objects too large for memory.
    /// Each chunk must arrive within the request timeout.
    pub async fn get_stream(
        &self,
        key: &str,
    ) -> Result<impl Stream<Item = Result<Bytes, StoreError>> + Send + Unpin + use<>, StoreError>
    {
        let resp = self.send(Method::GET, Some(key), &[], Bytes::new()).await?;
        let resp = self.check_status(Method::GET, key, resp).await?;
        let store = self.clone();
        let stream = futures::stream::unfold(Some(resp.into_body()), move |body| {
            let store = store.clone();
            async move {
                let mut body = body?;
                loop {
                    match tokio::time::timeout(store.inner.request_timeout, body.frame()).await {
                        Err(_) => return Some((Err(store.timeout()), None)),
                        Ok(None) => return None,
                        Ok(Some(Err(e))) => return Some((Err(store.unreachable(&e)), None)),
                        Ok(Some(Ok(frame))) => {
                            if let Ok(data) = frame.into_data() {
                                return Some((Ok(data), Some(body)));
                            }
                            // Trailers carry nothing we use.
                        }
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }

    /// Every object whose key starts with `prefix` (a full key, see `key`),
    /// following continuation tokens through all pages.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("list-type".to_string(), "2".to_string()),
                ("prefix".to_string(), prefix.to_string()),
                ("max-keys".to_string(), self.inner.list_page.to_string()),
            ];
            if let Some(t) = &token {
                query.push(("continuation-token".to_string(), t.clone()));
            }
            let resp = self.send(Method::GET, None, &query, Bytes::new()).await?;
            let body = self.expect_success(Method::GET, "", resp).await?;
            let page = xml::parse_list_page(&String::from_utf8_lossy(&body))
                .map_err(|why| self.protocol(Method::GET, "", 200, "InvalidListing", why))?;
            objects.extend(page.objects);
            match page.next_token {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                Some(_) => {
                    return Err(self.protocol(
                        Method::GET,
                        "",
                        200,
                        "InvalidListing",
                        "the store returned the same continuation token twice".into(),
                    ));
                }
                None => return Ok(objects),
            }
        }
    }

    /// Deletes `key`; an absent key is success.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let resp = self
            .send(Method::DELETE, Some(key), &[], Bytes::new())
            .await?;
        match self.expect_success(Method::DELETE, key, resp).await {
            Ok(_) | Err(StoreError::NoSuchKey { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Checks that the endpoint answers, the credentials are accepted and the
    /// bucket exists.
    pub async fn head_bucket(&self) -> Result<(), StoreError> {
        let resp = self.send(Method::HEAD, None, &[], Bytes::new()).await?;
        self.expect_success(Method::HEAD, "", resp).await.map(drop)
    }

    /// Creates the bucket; one that this account already owns is success.
    pub async fn create_bucket(&self) -> Result<(), StoreError> {
        // us-east-1 is the default location, and S3 rejects it spelled out.
        let body = if self.inner.config.region == "us-east-1" {
            Bytes::new()
        } else {
            Bytes::from(format!(
                "<CreateBucketConfiguration><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.inner.config.region
            ))
        };
        let resp = self.send(Method::PUT, None, &[], body).await?;
        match self.expect_success(Method::PUT, "", resp).await {
            Ok(_) => Ok(()),
            Err(StoreError::Protocol { code, .. }) if code == "BucketAlreadyOwnedByYou" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Uploads a stream of unknown length as one object, holding about one
    /// part in memory: chunks are gathered into parts of the part size and
    /// each is sent (signed with its own sha256) before the next is read. A
    /// stream shorter than one part goes up as a single PUT. On any error the
    /// multipart upload is aborted, so no parts are left behind to pay for.
    pub async fn upload(
        &self,
        key: &str,
        mut parts: impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
    ) -> Result<Uploaded, StoreError> {
        let part_size = self.inner.part_size;
        let mut buffer = BytesMut::new();
        let mut hasher = Sha256::new();
        let mut size_bytes: u64 = 0;
        let mut multipart: Option<Multipart> = None;

        let result: Result<(), StoreError> = async {
            while let Some(chunk) = parts.next().await {
                let mut chunk = chunk.map_err(StoreError::Source)?;
                hasher.update(&chunk);
                size_bytes += chunk.len() as u64;
                // Fill the part only up to its size and hand the whole
                // buffer over when full: a fresh buffer starts empty, so no
                // more than one part (and one chunk) is ever held.
                while !chunk.is_empty() {
                    let take = (part_size - buffer.len()).min(chunk.len());
                    buffer.extend_from_slice(&chunk.split_to(take));
                    if buffer.len() < part_size {
                        continue;
                    }
                    let part = std::mem::take(&mut buffer).freeze();
                    if multipart.is_none() {
                        multipart = Some(Multipart {
                            upload_id: self.create_multipart(key).await?,
                            etags: Vec::new(),
                        });
                    }
                    let m = multipart.as_mut().expect("just created");
                    let etag = self
                        .upload_part(key, &m.upload_id, m.etags.len() + 1, part)
                        .await?;
                    m.etags.push(etag);
                }
            }
            Ok(())
        }
        .await;

        let sha256_hex = sigv4::hex(&hasher.finalize());
        let Some(mut m) = multipart else {
            result?;
            self.put(key, buffer.freeze()).await?;
            return Ok(Uploaded {
                size_bytes,
                sha256_hex,
                parts: 1,
            });
        };
        let finished: Result<(), StoreError> = async {
            result?;
            if !buffer.is_empty() {
                let etag = self
                    .upload_part(key, &m.upload_id, m.etags.len() + 1, buffer.freeze())
                    .await?;
                m.etags.push(etag);
            }
            self.complete_multipart(key, &m.upload_id, &m.etags).await
        }
        .await;
        match finished {
            Ok(()) => Ok(Uploaded {
                size_bytes,
                sha256_hex,
                parts: m.etags.len(),
            }),
            Err(e) => {
                if let Err(abort) = self.abort_multipart(key, &m.upload_id).await {
                    tracing::warn!(key, upload_id = %m.upload_id, error = %abort,
                        "aborting a failed multipart upload failed; the bucket's lifecycle rules must clean it up");
                }
                Err(e)
            }
        }
    }

    async fn create_multipart(&self, key: &str) -> Result<String, StoreError> {
        let query = [("uploads".to_string(), String::new())];
        let resp = self
            .send(Method::POST, Some(key), &query, Bytes::new())
            .await?;
        let body = self.expect_success(Method::POST, key, resp).await?;
        xml::element(&String::from_utf8_lossy(&body), "UploadId")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                self.protocol(
                    Method::POST,
                    key,
                    200,
                    "InvalidResponse",
                    "CreateMultipartUpload returned no UploadId".into(),
                )
            })
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: usize,
        part: Bytes,
    ) -> Result<String, StoreError> {
        if number > MAX_PARTS {
            return Err(StoreError::InvalidConfig(format!(
                "the upload needs more than {MAX_PARTS} parts of {} bytes; raise the part size",
                self.inner.part_size
            )));
        }
        let query = [
            ("partNumber".to_string(), number.to_string()),
            ("uploadId".to_string(), upload_id.to_string()),
        ];
        let resp = self.send(Method::PUT, Some(key), &query, part).await?;
        let resp = self.check_status(Method::PUT, key, resp).await?;
        let etag = resp
            .headers()
            .get(hyper::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                self.protocol(
                    Method::PUT,
                    key,
                    resp.status().as_u16(),
                    "InvalidResponse",
                    format!("part {number} was accepted without an ETag"),
                )
            })?;
        // Drain the (empty) body so the connection goes back to the pool.
        self.read_body(resp).await?;
        Ok(etag)
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), StoreError> {
        let query = [("uploadId".to_string(), upload_id.to_string())];
        let body = Bytes::from(xml::complete_multipart_body(etags));
        let resp = self.send(Method::POST, Some(key), &query, body).await?;
        let body = self.expect_success(Method::POST, key, resp).await?;
        // S3 may answer 200 and still report a failure in the body.
        match xml::parse_error(&String::from_utf8_lossy(&body)) {
            Some((code, message)) => Err(self.protocol(Method::POST, key, 200, &code, message)),
            None => Ok(()),
        }
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        let query = [("uploadId".to_string(), upload_id.to_string())];
        let resp = self
            .send(Method::DELETE, Some(key), &query, Bytes::new())
            .await?;
        self.expect_success(Method::DELETE, key, resp)
            .await
            .map(drop)
    }

    /// Signs and sends one request; the answer's headers must come within
    /// the request timeout.
    async fn send(
        &self,
        method: Method,
        key: Option<&str>,
        query: &[(String, String)],
        body: Bytes,
    ) -> Result<Response<Incoming>, StoreError> {
        let i = &self.inner;
        let target = target(&i.endpoint, &i.config.bucket, i.config.path_style, key);
        let payload_sha256 = sigv4::sha256_hex(&body);
        let signed = sign(
            &SigningRequest {
                method: method.as_str(),
                host: &target.host,
                path: &target.path,
                query,
                // Nothing beyond host, x-amz-date and x-amz-content-sha256.
                headers: &[],
                payload_sha256: &payload_sha256,
            },
            &i.config.credentials,
            &i.config.region,
            jiff::Timestamp::now(),
        );
        let query_string = sigv4::canonical_query(query);
        let uri = if query_string.is_empty() {
            format!("{}://{}{}", i.endpoint.scheme, target.host, target.path)
        } else {
            format!(
                "{}://{}{}?{query_string}",
                i.endpoint.scheme, target.host, target.path
            )
        };
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header(hyper::header::HOST, &target.host)
            .header("x-amz-date", &signed.amz_date)
            .header("x-amz-content-sha256", &signed.content_sha256)
            .header(hyper::header::AUTHORIZATION, &signed.authorization);
        if matches!(method, Method::PUT | Method::POST) {
            builder = builder.header(hyper::header::CONTENT_LENGTH, body.len());
        }
        let request = builder.body(Full::new(body)).map_err(|e| {
            StoreError::InvalidConfig(format!("cannot build a request for {uri}: {e}"))
        })?;
        match tokio::time::timeout(i.request_timeout, i.client.request(request)).await {
            Err(_) => Err(self.timeout()),
            Ok(Err(e)) => Err(self.unreachable(&e)),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// The response if it succeeded, else its error typed.
    async fn check_status(
        &self,
        method: Method,
        key: &str,
        resp: Response<Incoming>,
    ) -> Result<Response<Incoming>, StoreError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        // An error body is small; a broken one still leaves the status.
        let body = self.read_body(resp).await.unwrap_or_default();
        let (code, message) = xml::parse_error(&String::from_utf8_lossy(&body))
            .unwrap_or_else(|| (String::new(), String::new()));
        Err(self.classify(method, key, status, code, message))
    }

    /// The body of a successful response, else the error.
    async fn expect_success(
        &self,
        method: Method,
        key: &str,
        resp: Response<Incoming>,
    ) -> Result<Bytes, StoreError> {
        let resp = self.check_status(method, key, resp).await?;
        self.read_body(resp).await
    }

    async fn read_body(&self, resp: Response<Incoming>) -> Result<Bytes, StoreError> {
        match tokio::time::timeout(self.inner.request_timeout, resp.into_body().collect()).await {
            Err(_) => Err(self.timeout()),
            Ok(Err(e)) => Err(self.unreachable(&e)),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
        }
    }

    fn classify(
        &self,
        method: Method,
        key: &str,
        status: StatusCode,
        code: String,
        message: String,
    ) -> StoreError {
        let endpoint = self.inner.config.endpoint.clone();
        let bucket = self.inner.config.bucket.clone();
        classify(
            &endpoint,
            &bucket,
            method.as_str(),
            key,
            status.as_u16(),
            code,
            message,
        )
    }

    fn protocol(
        &self,
        method: Method,
        key: &str,
        status: u16,
        code: &str,
        message: String,
    ) -> StoreError {
        StoreError::Protocol {
            endpoint: self.inner.config.endpoint.clone(),
            method: method.to_string(),
            key: key.to_string(),
            status,
            code: code.to_string(),
            message,
        }
    }

    fn timeout(&self) -> StoreError {
        StoreError::Timeout {
            endpoint: self.inner.config.endpoint.clone(),
            after: self.inner.request_timeout,
        }
    }

    fn unreachable(&self, e: &(dyn std::error::Error + 'static)) -> StoreError {
        StoreError::Unreachable {
            endpoint: self.inner.config.endpoint.clone(),
            reason: error_chain(e),
        }
    }
}

struct Multipart {
    upload_id: String,
    etags: Vec<String>,
}

/// The typed error for a failed response. HEAD answers have no body, so the
/// status alone must tell a missing bucket from bad credentials there.
fn classify(
    endpoint: &str,
    bucket: &str,
    method: &str,
    key: &str,
    status: u16,
    code: String,
    message: String,
) -> StoreError {
    match (status, code.as_str()) {
        (_, "NoSuchBucket") => StoreError::NoSuchBucket {
            endpoint: endpoint.into(),
            bucket: bucket.into(),
        },
        (_, "NoSuchKey") => StoreError::NoSuchKey {
            bucket: bucket.into(),
            key: key.into(),
        },
        (404, "") if key.is_empty() => StoreError::NoSuchBucket {
            endpoint: endpoint.into(),
            bucket: bucket.into(),
        },
        (404, "") => StoreError::NoSuchKey {
            bucket: bucket.into(),
            key: key.into(),
        },
        (403, _) | (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied") => {
            StoreError::AccessDenied {
                endpoint: endpoint.into(),
                code: if code.is_empty() {
                    "AccessDenied".into()
                } else {
                    code
                },
                message: if message.is_empty() {
                    "HTTP 403".into()
                } else {
                    message
                },
            }
        }
        _ => StoreError::Protocol {
            endpoint: endpoint.into(),
            method: method.into(),
            key: key.into(),
            status,
            code,
            message,
        },
    }
}

/// "a: b: c" from an error and its sources: hyper's top-level messages
/// ("client error (Connect)") say little without them.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests;
