//! The metrics listener: `/metrics` in the Prometheus text format, on its
//! own (loopback by default) address, apart from the registry traffic.

use super::metrics::{count_established, Metrics};
use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

pub struct MetricsApp {
    pub metrics: Arc<Metrics>,
    /// Listener ports whose established connections are counted.
    pub ports: Vec<u16>,
}

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, s: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = s.req_header().uri.path();
        let (status, ct, body) = if path == "/metrics" {
            self.metrics
                .open_connections
                .set(count_established(&self.ports));
            (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.render(),
            )
        } else {
            (404, "text/plain", b"not found: try /metrics\n".to_vec())
        };
        http::Response::builder()
            .status(status)
            .header("Content-Type", ct)
            .header("Content-Length", body.len())
            .body(body)
            .unwrap_or_default()
    }
}
