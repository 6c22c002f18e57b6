//! The status page on the metrics listener: `GET /` for a person and
//! `GET /status.json` for scripts, from the same [`Status`]. Only what the
//! metrics audience may see: no credentials, no user or group lists.
//!
//! [`collect`] reads the live config, metrics and certificates into a
//! [`Status`]; [`html::render`] is a pure function of it.

pub mod collect;
pub mod history;
pub mod html;

pub use collect::{Board, Sampler};

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    pub version: String,
    /// Unix time of this snapshot.
    pub generated_at: i64,
    pub uptime_seconds: u64,
    /// `passthrough`, or the `[auth]` challenge (`bearer`, `basic`).
    pub auth: String,
    pub listeners: Vec<ListenerView>,
    pub backends: Vec<BackendView>,
    pub repositories: Vec<RepositoryView>,
    /// Seconds the rates below cover (0 until two samples exist).
    pub window_seconds: i64,
    pub totals: Rates,
    /// All repositories, per sample interval: the sparkline.
    pub recent: Vec<Point>,
    pub certificates: Vec<CertificateView>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ListenerView {
    pub address: String,
    /// `path`, `subdomain` or `port`.
    pub method: String,
    /// `*.<base_domain>` or the port's repository.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BackendView {
    pub name: String,
    /// `scheme://host:port<v2_prefix>`: never credentials.
    pub url: String,
    pub kind: String,
    /// None until the first health check.
    pub up: Option<bool>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RepositoryView {
    pub key: String,
    /// `local` or `remote`.
    pub kind: String,
    pub backend: String,
    pub backend_up: Option<bool>,
    pub name_prefix: String,
    pub block_schema1_push: bool,
    pub block_schema1_pull: bool,
    pub anonymous_read: bool,
    /// How many entries each role has (never who).
    pub readers: usize,
    pub writers: usize,
    pub admins: usize,
    pub rates: Rates,
}

/// Per minute over the status window, and the window's schema 1 refusals.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Rates {
    pub requests_per_minute: f64,
    pub errors_per_minute: f64,
    pub denied_per_minute: f64,
    pub schema1_refused: u64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Point {
    pub at: i64,
    pub requests_per_minute: f64,
    pub errors_per_minute: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CertificateView {
    pub name: String,
    /// SNI names it is chosen for; empty: the default certificate.
    pub server_names: Vec<String>,
    pub subject: String,
    pub dns_sans: Vec<String>,
    pub ip_sans: Vec<String>,
    pub not_after: i64,
    pub days_left: i64,
}
