//! What the pipeline returns: forward to a backend, or answer locally.

use crate::config::Backend;
use crate::oci::RegistryError;
use crate::rewrite::response::ViewOf;
use crate::route::RepoTarget;
use bytes::Bytes;
use http::StatusCode;
use std::sync::Arc;

/// The pipeline's result for one request head.
#[derive(Debug)]
pub enum Step {
    Forward(Box<Forward>),
    Respond(Local),
}

impl Step {
    pub fn error(e: RegistryError) -> Self {
        Step::Respond(Local::error(e))
    }
}

/// A request that goes to a backend.
#[derive(Debug)]
pub struct Forward {
    pub backend: Arc<Backend>,
    /// Backend path and query.
    pub upstream_uri: String,
    /// How backend URLs and names map back to the client's.
    pub view: Option<ViewOf>,
    pub target: Option<RepoTarget>,
    pub body: Body,
    /// Request headers replaced before forwarding.
    pub set_headers: Vec<(&'static str, String)>,
    /// Pull bytes paced to a rate (`rate_limit.pull_bytes_per_second`).
    pub pace: Option<Pace>,
    /// The client as limits and drains know it: user, or address.
    pub who: String,
}

/// A pulled body's pace: the limiter key and its bytes per second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pace {
    pub key: String,
    pub bytes_per_second: u64,
}

impl Forward {
    pub fn new(backend: Arc<Backend>, upstream_uri: String) -> Self {
        Self {
            backend,
            upstream_uri,
            view: None,
            target: None,
            body: Body::Stream,
            set_headers: Vec::new(),
            pace: None,
            who: String::new(),
        }
    }
}

/// How the request body travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Streamed through unbuffered (blobs, everything else).
    Stream,
    /// Replaced by this body, sent by dockgate itself (a rebuilt token form).
    Held(Bytes),
    /// A manifest PUT: read whole (≤ 4 MiB), decided on, then sent.
    Manifest,
}

/// An answer dockgate gives itself: status, headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Local {
    pub fn json(status: StatusCode, headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Self {
        let mut h = vec![("Content-Type", "application/json".to_string())];
        h.extend(headers);
        Self {
            status,
            headers: h,
            body: Bytes::from(body),
        }
    }

    pub fn ok_json(body: &serde_json::Value) -> Self {
        Self::json(
            StatusCode::OK,
            Vec::new(),
            serde_json::to_vec_pretty(body).unwrap_or_default(),
        )
    }

    /// The registry error envelope (rendered by `oci::error`).
    pub fn error(e: RegistryError) -> Self {
        Self::error_with(e, Vec::new())
    }

    pub fn error_with(e: RegistryError, headers: Vec<(&'static str, String)>) -> Self {
        Self::json(e.status, headers, e.body())
    }
}
