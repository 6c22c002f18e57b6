//! What dockgate tells operators: Prometheus metrics, the access log, and
//! the metrics listener with its status page.

pub mod access_log;
pub mod addr;
pub mod audit;
pub mod http;
pub mod metrics;
pub mod operation;
pub mod request_id;
pub mod status;

pub use metrics::Metrics;
pub use operation::Operation;
