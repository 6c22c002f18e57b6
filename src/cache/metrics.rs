//! The cache's Prometheus series (registered with the rest in `observe`).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct CacheMetrics {
    pub hits: IntCounterVec,
    pub misses: IntCounterVec,
    pub lock_waits: IntCounterVec,
    pub bytes: IntCounterVec,
    pub confirmations: IntCounterVec,
    pub evictions: IntCounter,
    pub failed_fills: IntCounter,
    pub size: IntGauge,
    pub objects: IntGauge,
}

impl CacheMetrics {
    pub fn new(r: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), &["repository"])?;
            r.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let plain = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            r.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            r.register(Box::new(g.clone()))?;
            Ok(g)
        };
        Ok(Self {
            hits: counter(
                "dockgate_cache_hits_total",
                "Requests answered from a stored cache object.",
            )?,
            misses: counter(
                "dockgate_cache_misses_total",
                "Requests that started a backend fetch into the cache.",
            )?,
            lock_waits: counter(
                "dockgate_cache_lock_waits_total",
                "Requests that joined a fetch already in flight instead of asking the backend.",
            )?,
            bytes: counter(
                "dockgate_cache_sent_bytes_total",
                "Body bytes sent to clients from the cache (stored or being filled).",
            )?,
            confirmations: counter(
                "dockgate_cache_confirmations_total",
                "HEADs asking the backend whether a repository holds a cached digest.",
            )?,
            evictions: plain(
                "dockgate_cache_evictions_total",
                "Objects removed to keep the cache within max_size.",
            )?,
            failed_fills: plain(
                "dockgate_cache_failed_fills_total",
                "Fetches not stored: digest mismatch, short body or backend error mid-body.",
            )?,
            size: gauge(
                "dockgate_cache_size_bytes",
                "Bytes the cache holds or has reserved for fetches in flight.",
            )?,
            objects: gauge("dockgate_cache_objects", "Objects stored in the cache.")?,
        })
    }
}
