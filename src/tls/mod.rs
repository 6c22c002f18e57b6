//! TLS: certificate loading and the SNI resolver. (Minimal version; the
//! full store with hot reload, generation and inspection replaces it.)

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

fn ferr(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Clone)]
pub struct CertSpec {
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server_names: Vec<String>,
}

pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| ferr(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| ferr(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(ferr(cert, "no certificate in file"));
    }
    let k = PrivateKeyDer::from_pem_file(key).map_err(|e| ferr(key, e.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    let ck = CertifiedKey::from_der(certs, k, &provider)
        .map_err(|e| ferr(key, format!("does not match {}: {e}", cert.display())))?;
    Ok(Arc::new(ck))
}

#[derive(Debug)]
pub struct CertStore {
    default: Arc<CertifiedKey>,
}

impl CertStore {
    pub fn load(specs: &[CertSpec]) -> Result<Arc<Self>, TlsError> {
        let Some(d) = specs.iter().find(|s| s.server_names.is_empty()) else {
            return Err(TlsError::File {
                path: "(none)".into(),
                message: "no default certificate".into(),
            });
        };
        Ok(Arc::new(Self {
            default: load_certified_key(&d.cert, &d.key)?,
        }))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.default.clone())
    }
}

/// The leaf's notAfter as Unix seconds.
pub fn not_after(cert: &Path) -> Result<i64, TlsError> {
    let first = CertificateDer::pem_file_iter(cert)
        .map_err(|e| ferr(cert, e.to_string()))?
        .next()
        .ok_or_else(|| ferr(cert, "no certificate in file"))?
        .map_err(|e| ferr(cert, e.to_string()))?;
    let (_, x) = x509_parser::parse_x509_certificate(first.as_ref())
        .map_err(|e| ferr(cert, e.to_string()))?;
    Ok(x.validity().not_after.timestamp())
}
