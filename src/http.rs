//! The operator's HTTP endpoints: `/metrics`, `/healthz` (the process answers) and `/readyz`
//! (connected to the API server, and, when leading, the controller's caches are synced).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// What `/readyz` reports on, set by the election and the controller.
#[derive(Debug, Default)]
pub struct Health {
    connected: AtomicBool,
    leader: AtomicBool,
    synced: AtomicBool,
}

impl Health {
    /// The API server has answered at least once.
    pub fn set_connected(&self) {
        self.connected.store(true, Ordering::Relaxed);
    }

    /// This replica leads (and so must have synced caches to be ready).
    pub fn set_leader(&self, leading: bool) {
        self.leader.store(leading, Ordering::Relaxed);
    }

    /// The controller's caches have been filled from the API server.
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }

    /// Ready: connected, and either a standby (waiting is its job) or a leader with synced caches.
    pub fn ready(&self) -> Result<(), &'static str> {
        if !self.connected.load(Ordering::Relaxed) {
            return Err("not connected to the API server yet");
        }
        if self.leader.load(Ordering::Relaxed) && !self.synced.load(Ordering::Relaxed) {
            return Err("leading, caches not synced yet");
        }
        Ok(())
    }
}

/// Answers a GET (or HEAD) of a path.
pub type Handler = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>> + Send + Sync,
>;

/// Serves the operator's endpoints on `address` until the process exits.
pub async fn serve(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> std::io::Result<()> {
    tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    let handler: Handler = Arc::new(move |path| {
        let response = respond(&path, &metrics, &health);
        Box::pin(async move { response })
    });
    listen(address, handler).await
}

/// Answers GET and HEAD requests on `address` with `handler`, one task per connection, until
/// the process exits.
pub async fn listen(address: SocketAddr, handler: Handler) -> std::io::Result<()> {
    let listener = TcpListener::bind(address).await?;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "failed to accept an HTTP connection");
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let handler = handler.clone();
                async move {
                    let response =
                        if request.method() == Method::GET || request.method() == Method::HEAD {
                            handler(request.uri().path().to_string()).await
                        } else {
                            text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into())
                        };
                    Ok::<_, Infallible>(response)
                }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
}

fn respond(path: &str, metrics: &Metrics, health: &Health) -> Response<Full<Bytes>> {
    match path {
        "/metrics" => with_content_type(
            text(StatusCode::OK, metrics.render()),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match health.ready() {
            Ok(()) => text(StatusCode::OK, "ok\n".into()),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        _ => not_found(),
    }
}

/// 404 for a path nobody serves.
pub fn not_found() -> Response<Full<Bytes>> {
    text(StatusCode::NOT_FOUND, "not found\n".into())
}

/// Replaces the response's content type.
pub fn with_content_type(
    mut response: Response<Full<Bytes>>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// A plain-text response.
pub fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readyz_needs_the_api_server_and_a_leader_needs_synced_caches_too() {
        let health = Health::default();
        assert!(health.ready().is_err(), "not connected yet");
        health.set_connected();
        assert!(health.ready().is_ok(), "a connected standby is ready");
        health.set_leader(true);
        assert!(health.ready().is_err(), "a leader before its caches synced");
        health.set_synced();
        assert!(health.ready().is_ok(), "a leader with synced caches");
    }
}
