//! What dockgate tells operators: Prometheus metrics, the access log, and
//! the metrics listener.

pub mod access_log;
pub mod http;
pub mod metrics;
pub mod operation;

pub use metrics::Metrics;
pub use operation::Operation;
