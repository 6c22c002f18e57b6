//! The serde mirror of the TOML file. Unknown keys are errors so a typo never
//! silently falls back to a default; `validate.rs` turns this into domain types.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerFile,
    pub tls: TlsFile,
    #[serde(default)]
    pub listen: Vec<ListenFile>,
    #[serde(default)]
    pub backends: BTreeMap<String, BackendFile>,
    #[serde(default)]
    pub repositories: BTreeMap<String, RepositoryFile>,
    #[serde(default)]
    pub metrics: Option<MetricsFile>,
    #[serde(default)]
    pub log: Option<LogFile>,
    #[serde(default)]
    pub auth: Option<AuthFile>,
    #[serde(default)]
    pub cluster: Option<super::cluster::ClusterFile>,
    #[serde(default)]
    pub policy: super::policy::PolicyFile,
    #[serde(default)]
    pub cache: Option<CacheFile>,
}

/// The edge cache for content-addressed objects (`src/cache/`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    pub dir: String,
    /// Bytes, or a string with a unit: "512MiB", "10GiB", "1TB".
    pub max_size: Option<SizeFile>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SizeFile {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// htpasswd file (bcrypt or argon2 hashes).
    pub htpasswd: String,
    /// "bearer" (Docker token service, default) or "basic".
    pub challenge: Option<super::Challenge>,
    /// Token `service`/`aud`.
    pub service: Option<String>,
    pub token_ttl_seconds: Option<u64>,
    pub refresh_ttl_seconds: Option<u64>,
    /// Where the signing key, the API-key secret and key generations live.
    pub state_dir: Option<String>,
    #[serde(default)]
    pub admins: Vec<String>,
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub emails: BTreeMap<String, String>,
    pub max_failures: Option<u32>,
    pub lockout_seconds: Option<u64>,
    pub max_users_per_address: Option<u32>,
    #[serde(default)]
    pub sso: BTreeMap<String, super::sso::SsoFile>,
    #[serde(default)]
    pub workload: BTreeMap<String, super::sso::WorkloadFile>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub threads: Option<usize>,
    pub grace_period_seconds: Option<u64>,
    pub graceful_shutdown_timeout_seconds: Option<u64>,
    /// On SIGTERM: seconds of answering 503 at `/_dockgate/health` while
    /// still accepting, before the listeners close.
    pub drain_delay_seconds: Option<u64>,
    pub runtime_dir: Option<String>,
    /// Extra names (or IPs) clients may use in `Host`, beyond the
    /// certificates' names, listener addresses and subdomains.
    #[serde(default)]
    pub public_hosts: Vec<String>,
    pub header_timeout_seconds: Option<u64>,
    pub keepalive_timeout_seconds: Option<u64>,
    pub body_timeout_seconds: Option<u64>,
    pub send_timeout_seconds: Option<u64>,
    pub max_connections_per_client: Option<usize>,
    /// HTTP/1.1 manifest GETs and HEADs served by dockgate's own loop
    /// (`proxy/fast`) instead of pingora's proxy phases. Default true.
    pub fast_lane: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert: Option<String>,
    pub key: Option<String>,
    /// Generate a CA and server cert next to `cert` when missing or stale.
    #[serde(default)]
    pub generate: bool,
    #[serde(default)]
    pub ips: Vec<String>,
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub detect: bool,
    pub key_type: Option<crate::tls::KeyType>,
    pub days: Option<u32>,
    /// Extra certificates chosen by SNI.
    #[serde(default)]
    pub certificates: Vec<CertFile>,
    /// How often replaced PEM files are looked for.
    pub reload_interval_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertFile {
    pub cert: String,
    pub key: String,
    #[serde(default)]
    pub server_names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenFile {
    pub address: String,
    pub method: MethodFile,
    pub base_domain: Option<String>,
    pub repository: Option<String>,
}

/// `[[listen]] method`; the domain `ListenMethod` carries the key that
/// goes with it.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MethodFile {
    Path,
    Subdomain,
    Port,
}

impl MethodFile {
    pub fn as_str(self) -> &'static str {
        match self {
            MethodFile::Path => "path",
            MethodFile::Subdomain => "subdomain",
            MethodFile::Port => "port",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendFile {
    pub url: String,
    pub ca: Option<String>,
    pub v2_prefix: Option<String>,
    pub kind: Option<super::BackendKind>,
    pub connect_timeout_seconds: Option<u64>,
    pub read_timeout_seconds: Option<u64>,
    pub write_timeout_seconds: Option<u64>,
    pub idle_timeout_seconds: Option<u64>,
    /// Credentials dockgate uses toward this backend (Basic).
    pub username: Option<String>,
    pub password_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryFile {
    pub backend: String,
    #[serde(rename = "type")]
    pub kind: Option<super::RepoType>,
    pub name_prefix: Option<String>,
    pub block_schema1_push: Option<bool>,
    pub block_schema1_pull: Option<bool>,
    #[serde(default)]
    pub anonymous_read: bool,
    #[serde(default)]
    pub read: Vec<String>,
    #[serde(default)]
    pub write: Vec<String>,
    #[serde(default)]
    pub admin: Vec<String>,
    /// Accept that this repository's backend namespace holds another's.
    #[serde(default)]
    pub allow_overlap: bool,
    /// Serve blobs and manifests by digest from `[cache]`.
    #[serde(default)]
    pub cache: bool,
    /// Edge policies (`config/policy.rs`).
    #[serde(default)]
    pub read_only: bool,
    pub read_only_reason: Option<String>,
    #[serde(default)]
    pub immutable_tags: Vec<String>,
    #[serde(default)]
    pub allow_networks: Vec<String>,
    #[serde(default)]
    pub push_networks: Vec<String>,
    pub rate_limit: Option<super::policy::RateFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    pub address: Option<String>,
    pub health_check_interval_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    pub format: Option<super::LogFormat>,
    pub access_log: Option<String>,
}
