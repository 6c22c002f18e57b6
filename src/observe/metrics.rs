//! Prometheus metrics. Every label value comes from a bounded set:
//! configured repository keys (or `_unknown`/`_none`), configured backend
//! names, fixed operation/method/kind lists and numeric status codes.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Label for requests that named no configured repository.
pub const UNKNOWN_REPO: &str = "_unknown";
/// Label for requests that address no repository (ping, catalog, token).
pub const NO_REPO: &str = "_none";

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub pulls: IntCounterVec,
    pub pushes: IntCounterVec,
    pub received: IntCounterVec,
    pub sent: IntCounterVec,
    pub upstream_errors: IntCounterVec,
    pub backend_up: IntGaugeVec,
    pub schema1_refused: IntCounterVec,
    pub auth_failures: IntCounterVec,
    /// Requests refused by an edge policy (network, read-only, immutable tag, rate limit).
    pub policy_refused: IntCounterVec,
    pub cert_expiry: GaugeVec,
    pub open_connections: IntGauge,
    /// `[cluster]`: 1 while etcd answers.
    pub cluster_connected: IntGauge,
    /// `[cluster]`: seconds since etcd last answered (0 while connected).
    pub cluster_state_age: prometheus::Gauge,
    /// `[cluster]`: rate-limit keys exchanged (published, received, left_out).
    pub rate_shared_keys: IntCounterVec,
    pub cache: crate::cache::CacheMetrics,
}

impl Metrics {
    /// Builds the collectors. Names and labels are constants, so failures
    /// here are programming errors caught by the unit test below.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let requests = counter(
            "dockgate_requests_total",
            "Requests answered, by repository, operation, method and status code.",
            &["repository", "operation", "method", "code"],
        )?;
        let pulls = counter(
            "dockgate_image_pulls_total",
            "Successful manifest GETs (image pulls) per repository.",
            &["repository"],
        )?;
        let pushes = counter(
            "dockgate_image_pushes_total",
            "Successful manifest PUTs (image pushes) per repository.",
            &["repository"],
        )?;
        let received = counter(
            "dockgate_received_bytes_total",
            "Request body bytes received from clients per repository.",
            &["repository"],
        )?;
        let sent = counter(
            "dockgate_sent_bytes_total",
            "Response body bytes sent to clients per repository.",
            &["repository"],
        )?;
        let upstream_errors = counter(
            "dockgate_upstream_errors_total",
            "Failures talking to a backend, by kind.",
            &["backend", "kind"],
        )?;
        let schema1_refused = counter(
            "dockgate_schema1_refused_total",
            "Schema 1 manifests refused, by repository and direction (push or pull).",
            &["repository", "direction"],
        )?;
        let auth_failures = counter(
            "dockgate_auth_failures_total",
            "Failed authentications per repository.",
            &["repository"],
        )?;
        let policy_refused = counter(
            "dockgate_policy_refused_total",
            "Requests refused by a policy, by repository and rule (network, rate_limit, read_only, immutable_tag, roles, schema1_push, schema1_pull, bad_manifest).",
            &["repository", "rule"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "dockgate_request_duration_seconds",
                "Time from request start to the end of the response.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                900.0,
            ]),
            &["repository", "operation"],
        )?;
        registry.register(Box::new(duration.clone()))?;
        let backend_up = IntGaugeVec::new(
            Opts::new(
                "dockgate_backend_up",
                "1 when the backend's last health check (GET <v2_prefix>/) answered.",
            ),
            &["backend"],
        )?;
        registry.register(Box::new(backend_up.clone()))?;
        let cert_expiry = GaugeVec::new(
            Opts::new(
                "dockgate_tls_certificate_expiry_timestamp_seconds",
                "notAfter of each served certificate, as a Unix time.",
            ),
            &["certificate"],
        )?;
        registry.register(Box::new(cert_expiry.clone()))?;
        let open_connections = IntGauge::new(
            "dockgate_open_connections",
            "Established client connections on dockgate's listeners.",
        )?;
        registry.register(Box::new(open_connections.clone()))?;
        let cluster_connected = IntGauge::new(
            "dockgate_cluster_connected",
            "1 while the cluster store (etcd) answers; 0 while serving the last state seen.",
        )?;
        let cluster_state_age = prometheus::Gauge::new(
            "dockgate_cluster_state_age_seconds",
            "Seconds since the cluster store last answered (0 while connected).",
        )?;
        let rate_shared_keys = IntCounterVec::new(
            Opts::new(
                "dockgate_rate_limit_shared_keys_total",
                "Rate-limit keys exchanged with the other instances: published, received (charged here), left_out (beyond a batch's cap).",
            ),
            &["direction"],
        )?;
        let build = IntGaugeVec::new(
            Opts::new("dockgate_build_info", "dockgate's version; always 1."),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(build))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let cache = crate::cache::CacheMetrics::new(&registry)?;
        Ok(Self {
            cache,
            registry,
            requests,
            duration,
            pulls,
            pushes,
            received,
            sent,
            upstream_errors,
            backend_up,
            schema1_refused,
            auth_failures,
            policy_refused,
            cert_expiry,
            open_connections,
            cluster_connected,
            cluster_state_age,
            rate_shared_keys,
        })
    }

    /// Exports the `[cluster]` gauges (only then: a single instance has no
    /// cluster to be disconnected from).
    pub fn register_cluster(&self) -> Result<(), prometheus::Error> {
        self.registry
            .register(Box::new(self.cluster_connected.clone()))?;
        self.registry
            .register(Box::new(self.rate_shared_keys.clone()))?;
        self.registry
            .register(Box::new(self.cluster_state_age.clone()))
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        out
    }
}

/// Established TCP connections whose local port is one of `ports`, read
/// from /proc (pingora has no connection-close hook to count with).
pub fn count_established(ports: &[u16]) -> i64 {
    let mut n = 0;
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let mut cols = line.split_whitespace();
            let local = cols.nth(1).unwrap_or("");
            let state = cols.nth(1).unwrap_or("");
            let port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if state == "01" && port.is_some_and(|p| ports.contains(&p)) {
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_renders() {
        let m = Metrics::new().unwrap();
        m.requests
            .with_label_values(&["docker-local", "manifest_get", "GET", "200"])
            .inc();
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains("dockgate_requests_total{code=\"200\",method=\"GET\",operation=\"manifest_get\",repository=\"docker-local\"} 1"));
        assert!(text.contains("dockgate_build_info"));
        assert!(count_established(&[1]) >= 0);
    }
}
