//! Loading a PEM certificate chain and private key for the listener.
//!
//! Each file is read once into memory and parsed from that buffer, so the
//! bytes we validate are the bytes we serve even if the file is replaced
//! meanwhile, and I/O errors keep the file name.

use std::path::Path;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::tls::{fsutil, Result, TlsError};

/// Read every CERTIFICATE block of `path`, leaf first. Each block must be
/// a parseable X.509 certificate, so a truncated chain is refused.
pub fn load_cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = fsutil::read(path, "certificate")?;
    parse_cert_chain(path, &bytes)
}

/// Read the first private key (PKCS#8, PKCS#1 or SEC1) of `path`.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = fsutil::read(path, "private key")?;
    parse_private_key(path, &bytes)
}

/// Load a cert chain and its key, and check the key belongs to the leaf.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>> {
    let chain = load_cert_chain(cert)?;
    let key_der = load_private_key(key)?;
    certified_key(cert, key, chain, key_der).map(Arc::new)
}

/// The leaf certificate's notAfter as unix seconds (for an expiry gauge).
pub fn leaf_not_after(cert: &Path) -> Result<i64> {
    let chain = load_cert_chain(cert)?;
    match chain.first() {
        Some(leaf) => not_after(cert, leaf),
        None => Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        }),
    }
}

/// notAfter of one DER certificate; `path` only names it in errors.
pub fn not_after(path: &Path, der: &CertificateDer<'_>) -> Result<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| bad_cert(path, e))?;
    Ok(cert.validity().not_after.timestamp())
}

pub(crate) fn parse_cert_chain(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    for der in &chain {
        x509_parser::parse_x509_certificate(der).map_err(|e| bad_cert(path, e))?;
    }
    Ok(chain)
}

pub(crate) fn parse_private_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        e => pem_error(path, e),
    })
}

/// Build the rustls key with the ring provider and insist the private key
/// matches the leaf's public key (rustls would otherwise fail each
/// handshake instead of failing here).
pub(crate) fn certified_key(
    cert_path: &Path,
    key_path: &Path,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey> {
    let provider = rustls::crypto::ring::default_provider();
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::BadKey {
                path: key_path.to_path_buf(),
                detail: e.to_string(),
            })?;
    let ck = CertifiedKey::new(chain, signing_key);
    match ck.keys_match() {
        Ok(()) => Ok(ck),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        }),
        Err(e) => Err(TlsError::BadCertificate {
            path: cert_path.to_path_buf(),
            detail: e.to_string(),
        }),
    }
}

fn bad_cert(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::BadCertificate {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

fn pem_error(path: &Path, e: pem::Error) -> TlsError {
    let detail = match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "PEM block has no {:?} line: the file is truncated or still being written",
            String::from_utf8_lossy(&end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "malformed PEM BEGIN line {:?}",
            String::from_utf8_lossy(&line)
        ),
        pem::Error::Base64Decode(d) => format!("PEM body is not valid base64 ({d})"),
        e => format!("invalid PEM: {e}"),
    };
    TlsError::BadPem {
        path: path.to_path_buf(),
        detail,
    }
}

#[cfg(test)]
mod tests;
