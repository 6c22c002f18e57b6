//! Per-request state shared between the proxy phases.

use crate::config::Backend;
use crate::endpoint::Notes;
use crate::observe::metrics::UNKNOWN_REPO;
use crate::pipeline::{Forward, Pace};
use crate::rewrite::response::ViewOf;
use crate::route::RepoTarget;
use crate::state::{InFlight, Shared, Snapshot};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

pub struct Ctx {
    pub inflight: InFlight,
    /// The config snapshot this request runs under, start to end.
    pub rt: Arc<Snapshot>,
    pub client_host: String,
    pub target: Option<RepoTarget>,
    pub backend: Option<Arc<Backend>>,
    /// Backend path and query.
    pub upstream_uri: String,
    /// How backend URLs/names map back to the client's.
    pub view: Option<ViewOf>,
    /// A backend answer replaced by this body (a refused schema1 pull).
    pub replace_body: Option<Bytes>,
    pub backend_status: Option<u16>,
    pub bytes_in: u64,
    /// Metric and log labels, written by the pipeline.
    pub notes: Notes,
    /// A bounded kind name for a backend failure.
    pub upstream_error: Option<&'static str>,
    pub started: Instant,
    /// Also the `X-Request-Id` sent back and passed to the backend.
    pub request_id: String,
    /// The status a failed request was answered (or would have been).
    pub failure_status: Option<u16>,
    /// Pull bytes paced to a rate.
    pub pace: Option<Pace>,
    /// The client as limits and drains know it.
    pub who: String,
    /// A `tags/list` body held to rename its image (see `tags_hold`).
    pub tags_body: Option<bytes::BytesMut>,
}

impl Ctx {
    pub fn new(shared: &Shared) -> Self {
        Self {
            inflight: InFlight::new(&shared.inflight),
            rt: shared.snapshot(),
            client_host: String::new(),
            target: None,
            backend: None,
            upstream_uri: String::new(),
            view: None,
            replace_body: None,
            backend_status: None,
            bytes_in: 0,
            notes: Notes {
                repo_label: UNKNOWN_REPO.to_string(),
                ..Notes::default()
            },
            upstream_error: None,
            started: Instant::now(),
            request_id: String::new(),
            failure_status: None,
            pace: None,
            who: String::new(),
            tags_body: None,
        }
    }

    /// Remembers where a forwarded request goes.
    pub fn forward_to(&mut self, f: &Forward) {
        self.upstream_uri = f.upstream_uri.clone();
        self.view = f.view.clone();
        self.backend = Some(f.backend.clone());
        self.target = f.target.clone();
        self.pace = f.pace.clone();
        self.who = f.who.clone();
    }
}
