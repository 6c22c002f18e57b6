//! Backends as pingora peers: the only place that builds an `HttpPeer`.
//! Addresses were resolved at config load (pingora panics on DNS failure);
//! timeouts are per read/write, never per request, so big layers live.

pub mod h1;
pub mod health;

use crate::config::{Backend, Config};
use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::tls::CaType;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::WrappedX509;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct UpstreamError {
    pub key: String,
    pub message: String,
}

/// Per-backend peer templates, built once per (re)load.
#[derive(Clone, Default)]
pub struct Peers {
    cas: HashMap<String, Arc<CaType>>,
}

impl Peers {
    /// Loads each backend's CA file; errors name the config key.
    pub fn load(cfg: &Config) -> Result<Self, UpstreamError> {
        let mut cas = HashMap::new();
        for (name, b) in &cfg.backends {
            if let Some(path) = &b.ca {
                let err = |m: String| UpstreamError {
                    key: format!("backends.{name}.ca"),
                    message: format!("{}: {m}", path.display()),
                };
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .map_err(|e| err(e.to_string()))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| err(e.to_string()))?;
                if certs.is_empty() {
                    return Err(err("no certificate in file".into()));
                }
                let mut wrapped = Vec::new();
                for c in certs {
                    // pingora's parser panics on bad DER: check first.
                    if x509_parser::parse_x509_certificate(c.as_ref()).is_err() {
                        return Err(err("a certificate in the file does not parse".into()));
                    }
                    wrapped.push(WrappedX509::new(
                        c.as_ref().to_vec(),
                        pingora::utils::tls::parse_x509,
                    ));
                }
                cas.insert(name.clone(), Arc::from(wrapped.into_boxed_slice()));
            }
        }
        Ok(Self { cas })
    }

    pub fn peer(&self, b: &Backend) -> HttpPeer {
        let mut p = HttpPeer::new(b.addr, b.tls, b.host.clone());
        let o = &mut p.options;
        o.connection_timeout = Some(b.connect_timeout);
        o.total_connection_timeout = Some(b.connect_timeout + Duration::from_secs(5));
        o.read_timeout = Some(b.read_timeout);
        o.write_timeout = Some(b.write_timeout);
        o.idle_timeout = Some(b.idle_timeout);
        if let Some(ca) = self.cas.get(&b.name) {
            o.ca = Some(ca.clone());
        }
        // The CA is not part of pool matching: keep pools apart per backend.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        b.name.hash(&mut h);
        p.group_key = h.finish();
        p
    }
}

/// Hop-by-hop headers: never relayed by dockgate's own requests and answers.
pub const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "transfer-encoding",
];

/// `Authorization` for the credentials dockgate uses toward `b`, if any.
pub fn credentials_header(b: &Backend) -> Option<(&'static str, String)> {
    use base64::Engine;
    let (user, pass) = b.credentials.as_ref()?;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    Some(("Authorization", format!("Basic {basic}")))
}

/// A small buffered GET for dockgate's own calls (catalog, health checks).
pub async fn get(
    connector: &Connector,
    peer: &HttpPeer,
    backend: &Backend,
    path_and_query: &str,
    limit: usize,
) -> pingora::Result<(ResponseHeader, Bytes)> {
    let mut req = RequestHeader::build("GET", path_and_query.as_bytes(), None)?;
    req.insert_header("Host", backend.authority.as_str())?;
    req.insert_header("Accept", "application/json")?;
    request(connector, peer, backend, req, None, limit).await
}

/// Sends one request with a body held in memory (a manifest) and reads
/// the whole, small, answer. Used where the body had to be inspected
/// before anything reached the backend.
pub async fn request(
    connector: &Connector,
    peer: &HttpPeer,
    backend: &Backend,
    mut req: RequestHeader,
    body: Option<Bytes>,
    limit: usize,
) -> pingora::Result<(ResponseHeader, Bytes)> {
    use pingora::{Error, ErrorType};
    let (mut s, _reused) = connector.get_http_session(peer).await?;
    s.set_read_timeout(Some(backend.read_timeout));
    s.set_write_timeout(Some(backend.write_timeout));
    req.set_version(http::Version::HTTP_11);
    for h in HOP_BY_HOP {
        req.remove_header(h);
    }
    if let Some(b) = &body {
        req.insert_header("Content-Length", b.len().to_string())?;
    }
    s.write_request_header(Box::new(req)).await?;
    if let Some(b) = body {
        s.write_request_body(b, true).await?;
    }
    s.finish_request_body().await?;
    s.read_response_header().await?;
    let head = s
        .response_header()
        .cloned()
        .ok_or_else(|| Error::explain(ErrorType::InvalidHTTPHeader, "no response header"))?;
    let mut out = BytesMut::new();
    while let Some(chunk) = s.read_response_body().await? {
        if out.len() + chunk.len() > limit {
            return Error::e_explain(
                ErrorType::InvalidHTTPHeader,
                format!("response larger than {limit} bytes"),
            );
        }
        out.extend_from_slice(&chunk);
    }
    connector
        .release_http_session(s, peer, Some(backend.idle_timeout))
        .await;
    Ok((head, out.freeze()))
}

/// Names the peers per backend for logs.
pub fn describe(backends: &BTreeMap<String, Arc<Backend>>) -> Vec<String> {
    backends
        .values()
        .map(|b| {
            format!(
                "{} → {}{}",
                b.name,
                if b.tls { "https://" } else { "http://" },
                b.authority
            )
        })
        .collect()
}
