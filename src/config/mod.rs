//! Configuration: `file.rs` mirrors the TOML, `validate.rs` turns it into the
//! domain types below. Errors name the file and the key.

mod advice;
pub mod cluster;
mod file;
pub mod overlap;
pub mod policy;
mod sso;
mod validate;

pub use advice::warnings;
pub use cluster::Cluster;
pub use sso::{ClaimRule, JwksSource, ProviderKind, SsoProvider, Workload};
pub use validate::{load, parse};

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A config problem, always tied to the file and the key that caused it.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from (persisted edits go back here).
    pub path: PathBuf,
    pub server: Server,
    pub tls: Tls,
    pub listeners: Vec<Listener>,
    pub backends: BTreeMap<String, Arc<Backend>>,
    pub repositories: BTreeMap<String, Arc<Repository>>,
    pub metrics: Metrics,
    pub log: Log,
    /// None: passthrough mode (backends authenticate clients themselves).
    pub auth: Option<Auth>,
    /// None: runtime state in files (one instance).
    pub cluster: Option<Cluster>,
    /// `[policy]`: read-only, networks, trusted proxies, rate limit.
    pub policy: policy::GlobalPolicy,
    /// `[cache]`: where content-addressed objects are kept on disk.
    pub cache: Option<CacheSettings>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    pub dir: PathBuf,
    pub max_size: u64,
}

/// Also the config value (`file.rs`): serde refuses any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Challenge {
    Bearer,
    Basic,
}

#[derive(Debug, Clone)]
pub struct Auth {
    pub htpasswd: PathBuf,
    pub challenge: Challenge,
    pub service: String,
    pub token_ttl: Duration,
    pub refresh_ttl: Duration,
    pub state_dir: PathBuf,
    pub admins: Vec<String>,
    pub groups: BTreeMap<String, Vec<String>>,
    pub emails: BTreeMap<String, String>,
    pub max_failures: u32,
    pub lockout: Duration,
    /// Distinct failing users from one address before it is locked.
    pub max_users_per_address: u32,
    /// `[auth.sso.<name>]` sign-in providers.
    pub sso: Vec<SsoProvider>,
    /// `[auth.workload.<name>]` CI identity token issuers.
    pub workloads: Vec<Workload>,
    /// Groups users have from outside the config (single sign-on); shared
    /// by every reload's copy, filled at runtime.
    pub memberships: crate::policy::auth::memberships::Memberships,
}

/// Who may do what in one repository. Entries are user or group names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    pub anonymous_read: bool,
    pub read: Vec<String>,
    pub write: Vec<String>,
    pub admin: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub threads: usize,
    pub grace_period: Duration,
    pub graceful_shutdown_timeout: Duration,
    /// SIGTERM → health 503 for this long, listeners still open → close.
    pub drain_delay: Duration,
    pub runtime_dir: PathBuf,
    /// Extra `Host` names clients may use (`[server] public_hosts`).
    pub public_hosts: Vec<String>,
    pub limits: ClientLimits,
    /// `[server] fast_lane`: HTTP/1.1 manifest reads in `proxy/fast`.
    pub fast_lane: bool,
}

/// Downstream deadlines and caps (`[server]`): what a slow or idle client
/// may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// From accept to the whole head of the first request.
    pub header_timeout: Duration,
    /// From the end of one answer to the whole head of the next request on
    /// a kept-alive HTTP/1.1 connection; an idle h2 connection's lifetime.
    pub keepalive_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub body_timeout: Duration,
    /// Longest wait for a client to take the next piece of an answer.
    pub send_timeout: Duration,
    /// Open connections allowed from one client address.
    pub max_connections_per_client: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_connections_per_client: 256,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tls {
    /// The default certificate, served when SNI matches nothing or is absent.
    pub cert: PathBuf,
    pub key: PathBuf,
    pub generate: Option<Generate>,
    pub extra: Vec<NamedCert>,
    pub reload_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generate {
    pub ips: Vec<IpAddr>,
    pub dns: Vec<String>,
    pub detect: bool,
    pub key_type: crate::tls::KeyType,
    pub days: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct NamedCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenMethod {
    Path,
    Subdomain { base_domain: String },
    Port { repository: String },
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub address: SocketAddr,
    pub method: ListenMethod,
}

/// Also the config value (`file.rs`): serde refuses any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Distribution,
    Artifactory,
}

#[derive(Debug, Clone)]
pub struct Backend {
    pub name: String,
    pub tls: bool,
    /// Resolved once at load: pingora panics on DNS failure inside a request.
    pub addr: SocketAddr,
    /// `host[:port]` as written in the url: Host header and TLS SNI.
    pub authority: String,
    pub host: String,
    pub ca: Option<PathBuf>,
    /// May contain `{repo}`, replaced by the repository key.
    pub v2_prefix: String,
    pub kind: BackendKind,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    /// `(username, password)` dockgate sends as Basic to this backend.
    pub credentials: Option<(String, String)>,
}

impl Backend {
    /// The backend's `/v2` root for one repository, without a trailing slash.
    pub fn v2_prefix_for(&self, repo_key: &str) -> std::borrow::Cow<'_, str> {
        // Borrowed in the common case: this is on every request's path.
        if self.v2_prefix.contains("{repo}") {
            self.v2_prefix.replace("{repo}", repo_key).into()
        } else {
            self.v2_prefix.as_str().into()
        }
    }
}

/// Also the config value (`file.rs`): serde refuses any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoType {
    Local,
    Remote,
}

impl RepoType {
    pub fn as_str(self) -> &'static str {
        match self {
            RepoType::Local => "local",
            RepoType::Remote => "remote",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Repository {
    pub key: String,
    pub backend: Arc<Backend>,
    pub kind: RepoType,
    /// Empty, or a valid name ending in `/`.
    pub name_prefix: String,
    pub block_schema1_push: bool,
    pub block_schema1_pull: bool,
    pub acl: Acl,
    /// Blobs and manifests by digest go through `[cache]`.
    pub cache: bool,
    /// Read-only, immutable tags, networks, rate limit.
    pub policy: policy::RepoPolicy,
}

impl Repository {
    /// Backend-side repository name for a client-side image name.
    pub fn backend_name(&self, image: &str) -> String {
        format!("{}{}", self.name_prefix, image)
    }

    /// Client-side image name for a backend name, if it lies under the prefix.
    pub fn image_of<'a>(&self, backend_name: &'a str) -> Option<&'a str> {
        backend_name
            .strip_prefix(self.name_prefix.as_str())
            .filter(|s| !s.is_empty())
    }
}

#[derive(Debug, Clone)]
pub struct Metrics {
    pub address: Option<SocketAddr>,
    pub health_check_interval: Duration,
}

/// Also the config value (`file.rs`): serde refuses any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Logfmt,
}

#[derive(Debug, Clone)]
pub struct Log {
    pub format: LogFormat,
    /// None: stdout (journald).
    pub access_log: Option<PathBuf>,
}
