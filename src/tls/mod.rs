//! TLS for the listener: PEM loading, an SNI certificate store with hot
//! reload, a local CA that issues SAN-correct server certificates, and a
//! certificate inspector that predicts what Go-based registry clients
//! (docker, containerd, podman, skopeo) will say about a certificate.
//!
//! - [`pem`]: read a cert chain + key, check they belong together.
//! - [`store`]: [`CertStore`], a `rustls` `ResolvesServerCert` for
//!   pingora's `TlsSettings::set_cert_resolver`; picks a cert by SNI and
//!   swaps in replaced files without dropping connections.
//! - [`generate`]: `dockgate cert generate`; [`ensure`]: the serve-time
//!   [`ensure_server_cert`] for `[tls] generate = true`.
//! - [`inspect`] + [`verdict`]: `dockgate cert inspect`.
//!
//! Everything here uses the `ring` provider only.
//!
//! Wiring the store into pingora (keep your own `Arc` for `watch` and the
//! expiry gauge; `TlsSettings` consumes what it is given, and ignores the
//! cert/key paths once a resolver is set):
//!
//! ```text
//! let store = Arc::new(CertStore::new(specs)?);
//! let mut tls = TlsSettings::intermediate("", "")?;
//! tls.set_cert_resolver(store.clone());
//! // background service: tls::watch(store.clone(), Duration::from_secs(2)).await
//! ```

pub mod clients;
pub mod detect;
pub mod ensure;
pub mod generate;
pub mod inspect;
pub mod pem;
pub mod store;
pub mod verdict;

mod fsutil;
mod issue;
#[cfg(test)]
mod testutil;

use std::path::PathBuf;

pub use clients::{write_trust_dir, TrustDir};
pub use ensure::{ensure_server_cert, EnsureOutcome, ReissueReason};
pub use generate::{generate, GenerateOptions, GenerateReport, KeyType, SanSet};
pub use inspect::{inspect, InspectReport};
pub use pem::{leaf_not_after, load_cert_chain, load_certified_key, load_private_key};
pub use store::{watch, CertSpec, CertStore, ReloadEvent};
pub use verdict::{go_verdict, CertFacts, DialTarget, Problem, Verdict};

/// Result alias for this module.
pub type Result<T, E = TlsError> = std::result::Result<T, E>;

/// Every failure of the TLS module. Messages start with the file (or the
/// config key) they are about, so an operator knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Wraps another error with the config key it came from,
    /// e.g. `tls.certificates.internal: ...`.
    #[error("{key}: {source}")]
    Config {
        key: String,
        #[source]
        source: Box<TlsError>,
    },

    #[error("{}: {what} file not found", path.display())]
    NotFound { path: PathBuf, what: &'static str },

    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: {detail}", path.display())]
    BadPem { path: PathBuf, detail: String },

    #[error("{}: no CERTIFICATE block found (empty file, or not a PEM certificate)", path.display())]
    NoCertificate { path: PathBuf },

    #[error(
        "{}: no private key found (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)",
        path.display()
    )]
    NoPrivateKey { path: PathBuf },

    #[error("{}: not a valid X.509 certificate: {detail}", path.display())]
    BadCertificate { path: PathBuf, detail: String },

    #[error("{}: unusable private key: {detail}", path.display())]
    BadKey { path: PathBuf, detail: String },

    #[error(
        "{}: private key does not match the certificate in {} (a replacement may be half written)",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },

    #[error(
        "{}: existing CA is incomplete: {reason}. Refusing to create a new CA, \
         because clients that trust the old one would stop working",
        dir.display()
    )]
    CaIncomplete { dir: PathBuf, reason: String },

    #[error(
        "{}: the server certificate must be re-issued ({why}), but ca.crt and ca.key are \
         not there. Put the CA back, or remove server.crt and server.key to start over \
         with a new CA that every client must then trust",
        dir.display()
    )]
    CaMissing { dir: PathBuf, why: String },

    #[error("{}: cannot use this CA: {reason}", path.display())]
    CaUnusable { path: PathBuf, reason: String },

    #[error("cannot generate a {key_type} key: {detail}")]
    KeyGeneration { key_type: KeyType, detail: String },

    #[error("{0}")]
    InvalidOptions(String),

    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),

    #[error("--detect: {0}")]
    Detect(String),

    #[error("{0}")]
    InvalidConfig(String),

    #[error("invalid host {host:?}: {reason}")]
    InvalidHost { host: String, reason: String },
}

impl TlsError {
    /// Prefix the error with the config key it belongs to.
    pub fn with_key(self, key: impl Into<String>) -> Self {
        TlsError::Config {
            key: key.into(),
            source: Box::new(self),
        }
    }
}
