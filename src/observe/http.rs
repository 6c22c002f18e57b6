//! The metrics listener: `/metrics` in the Prometheus text format, the
//! status page at `/` and `/status.json`, on its own (loopback by default)
//! address, apart from the registry traffic.

use super::metrics::{count_established, Metrics};
use super::status::{html, Board};
use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

pub struct MetricsApp {
    pub metrics: Arc<Metrics>,
    /// Listener ports whose established connections are counted.
    pub ports: Vec<u16>,
    pub status: Arc<Board>,
}

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, s: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = s.req_header().uri.path();
        let (status, ct, body) = match path {
            "/metrics" => {
                self.metrics
                    .open_connections
                    .set(count_established(&self.ports));
                (
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    self.metrics.render(),
                )
            }
            "/" | "/status.json" => {
                // Parses certificates: off the worker threads.
                let board = self.status.clone();
                match tokio::task::spawn_blocking(move || board.status()).await {
                    Ok(st) if path == "/" => (
                        200,
                        "text/html; charset=utf-8",
                        html::render(&st).into_bytes(),
                    ),
                    Ok(st) => (
                        200,
                        "application/json",
                        serde_json::to_vec_pretty(&st).unwrap_or_default(),
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "status page task failed");
                        (500, "text/plain", b"status unavailable\n".to_vec())
                    }
                }
            }
            _ => (
                404,
                "text/plain",
                b"not found: try /, /status.json or /metrics\n".to_vec(),
            ),
        };
        http::Response::builder()
            .status(status)
            .header("Content-Type", ct)
            .header("Content-Length", body.len())
            .header("Cache-Control", "no-store")
            .body(body)
            .unwrap_or_default()
    }
}
