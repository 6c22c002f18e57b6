//! Per-request state shared between the proxy phases.

use super::state::Runtime;
use crate::config::Backend;
use crate::rewrite::response::View;
use crate::route::RepoTarget;
use bytes::Bytes;
use std::sync::Arc;

#[derive(Default)]
pub struct Ctx {
    pub inflight: Option<super::state::InFlight>,
    /// The config snapshot this request runs under, start to end.
    pub rt: Option<Arc<Runtime>>,
    pub client_host: String,
    pub target: Option<RepoTarget>,
    pub backend: Option<Arc<Backend>>,
    /// Backend path and query.
    pub upstream_uri: String,
    /// How backend URLs/names map back to the client's.
    pub view: Option<View>,
    /// A manifest body read whole for inspection, sent upstream in one piece.
    pub held_body: Option<Bytes>,
    pub held_sent: bool,
    pub backend_status: Option<u16>,
}
