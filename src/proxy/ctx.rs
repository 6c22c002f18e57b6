//! Per-request state shared between the proxy phases.

use crate::config::Backend;
use crate::observe::Operation;
use crate::policy::schema1::Direction;
use crate::rewrite::response::View;
use crate::route::RepoTarget;
use crate::state::{InFlight, Snapshot};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

#[derive(Default)]
pub struct Ctx {
    pub inflight: Option<InFlight>,
    /// The config snapshot this request runs under, start to end.
    pub rt: Option<Arc<Snapshot>>,
    pub client_host: String,
    pub target: Option<RepoTarget>,
    pub backend: Option<Arc<Backend>>,
    /// Backend path and query.
    pub upstream_uri: String,
    /// How backend URLs/names map back to the client's.
    pub view: Option<View>,
    /// A backend answer replaced by this body (a refused schema1 pull).
    pub replace_body: Option<Bytes>,
    pub refused: Option<Direction>,
    pub backend_status: Option<u16>,
    pub bytes_in: u64,
    /// Metric/log labels, decided in request_filter.
    pub operation: Option<Operation>,
    pub repo_label: String,
    /// The authenticated user, if any (never a credential).
    pub user: Option<String>,
    /// A bounded kind name for a backend failure.
    pub upstream_error: Option<&'static str>,
    pub started: Option<Instant>,
    /// Also the `X-Request-Id` sent back and passed to the backend.
    pub request_id: String,
    /// The `[auth.workload]` whose token this request spent.
    pub workload: Option<String>,
    /// The user name of refused credentials, for the access log.
    pub attempted_user: Option<String>,
    /// The status a failed request was answered (or would have been).
    pub failure_status: Option<u16>,
}
