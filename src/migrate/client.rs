//! A registry client on pingora's connector: the same peers, CAs, timeouts
//! and Basic credentials the proxy uses, so the scan sees what clients see.
//! pingora rather than a second HTTP stack: the AQL endpoint runs inside
//! the gateway and shares this code; blobs are read chunk by chunk.

use crate::config::Backend;
use crate::upstream::{Peers, HOP_BY_HOP};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use std::sync::Arc;

/// Manifest bodies are capped like the proxy's (4 MiB).
pub const MANIFEST_LIMIT: usize = 4 << 20;
/// Catalog and tag-list pages.
pub const LIST_LIMIT: usize = 16 << 20;

/// Every manifest type, in one header: without it distribution 2.8
/// down-converts schema2 to a made-up schema1 and 404s OCI manifests.
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.v1+prettyjws, \
application/vnd.docker.distribution.manifest.v1+json";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{backend}: {method} {path}: {message}")]
    Transport {
        backend: String,
        method: String,
        path: String,
        message: String,
    },
    #[error("{backend}: {method} {path}: answer larger than {limit} bytes")]
    TooLarge {
        backend: String,
        method: String,
        path: String,
        limit: usize,
    },
    /// The sink refused a chunk (a layer that does not decompress or hash).
    #[error("{0}")]
    Sink(#[from] super::layer::LayerError),
}

/// A whole (small) answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone)]
pub struct Client {
    connector: Arc<Connector>,
    peers: Peers,
}

impl Client {
    pub fn new(connector: Arc<Connector>, peers: Peers) -> Self {
        Self { connector, peers }
    }

    /// One request with an optional in-memory body; reads at most `limit`.
    pub async fn send(
        &self,
        b: &Backend,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
        limit: usize,
    ) -> Result<Reply, ClientError> {
        let mut out = BytesMut::new();
        let (status, h, err) = self
            .exchange(b, &method, path, headers, body, |chunk| {
                if out.len() + chunk.len() > limit {
                    return Err(Stop::TooLarge);
                }
                out.extend_from_slice(chunk);
                Ok(())
            })
            .await
            .map_err(|e| e.into_error(b, &method, path, limit))?;
        Ok(Reply {
            status,
            headers: h,
            body: if status.is_success() {
                out.freeze()
            } else {
                err
            },
        })
    }

    /// A GET whose body goes to `sink` chunk by chunk (blobs); the answer's
    /// status and headers are returned, and non-200 bodies are not streamed.
    pub async fn stream_get(
        &self,
        b: &Backend,
        path: &str,
        mut sink: impl FnMut(&[u8]) -> Result<(), super::layer::LayerError>,
    ) -> Result<Reply, ClientError> {
        let (status, headers, body) = self
            .exchange(b, &Method::GET, path, &[], None, |c| {
                sink(c).map_err(Stop::Sink)
            })
            .await
            .map_err(|e| e.into_error(b, &Method::GET, path, 0))?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    async fn exchange(
        &self,
        b: &Backend,
        method: &Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
        mut sink: impl FnMut(&[u8]) -> Result<(), Stop>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Stop> {
        let t = |e: Box<pingora::Error>| Stop::Transport(e.to_string());
        let peer = self.peers.peer(b);
        let mut req = RequestHeader::build(method.clone(), path.as_bytes(), None).map_err(t)?;
        req.set_version(http::Version::HTTP_11);
        req.insert_header("Host", b.authority.as_str()).map_err(t)?;
        req.insert_header("User-Agent", "dockgate-schema1")
            .map_err(t)?;
        if let Some((user, pass)) = &b.credentials {
            use base64::Engine;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            req.insert_header("Authorization", format!("Basic {basic}"))
                .map_err(t)?;
        }
        for (k, v) in headers {
            req.insert_header(k.to_string(), *v).map_err(t)?;
        }
        for h in HOP_BY_HOP {
            req.remove_header(h);
        }
        let len = body.as_ref().map_or(0, |b| b.len());
        if body.is_some() || matches!(*method, Method::PUT | Method::POST) {
            req.insert_header("Content-Length", len.to_string())
                .map_err(t)?;
        }
        let (mut s, _) = self.connector.get_http_session(&peer).await.map_err(t)?;
        s.set_read_timeout(Some(b.read_timeout));
        s.set_write_timeout(Some(b.write_timeout));
        s.write_request_header(Box::new(req)).await.map_err(t)?;
        if let Some(body) = body {
            s.write_request_body(body, true).await.map_err(t)?;
        }
        s.finish_request_body().await.map_err(t)?;
        s.read_response_header().await.map_err(t)?;
        let head = s
            .response_header()
            .cloned()
            .ok_or_else(|| Stop::Transport("no response header".into()))?;
        let status = head.status;
        // Success bodies go to the sink; error bodies (small) are returned.
        let mut err_body = BytesMut::new();
        while let Some(chunk) = s.read_response_body().await.map_err(t)? {
            if status.is_success() {
                sink(&chunk)?;
            } else if err_body.len() < 64 << 10 {
                err_body.extend_from_slice(&chunk);
            }
        }
        self.connector
            .release_http_session(s, &peer, Some(b.idle_timeout))
            .await;
        Ok((status, head.headers.clone(), err_body.freeze()))
    }
}

enum Stop {
    TooLarge,
    Sink(super::layer::LayerError),
    Transport(String),
}

impl Stop {
    fn into_error(self, b: &Backend, method: &Method, path: &str, limit: usize) -> ClientError {
        match self {
            Stop::TooLarge => ClientError::TooLarge {
                backend: b.name.clone(),
                method: method.to_string(),
                path: path.to_string(),
                limit,
            },
            Stop::Sink(m) => ClientError::Sink(m),
            Stop::Transport(message) => ClientError::Transport {
                backend: b.name.clone(),
                method: method.to_string(),
                path: path.to_string(),
                message,
            },
        }
    }
}

/// The next page from a `Link: <…>; rel="next"` header, as a path.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("link")?.to_str().ok()?;
    for part in v.split(',') {
        let part = part.trim();
        if !part.contains("rel=\"next\"") && !part.contains("rel=next") {
            continue;
        }
        let start = part.find('<')? + 1;
        let end = part[start..].find('>')? + start;
        let url = &part[start..end];
        // Absolute links keep only the path: the backend is already chosen.
        let path = match url.find("://") {
            Some(i) => {
                let rest = &url[i + 3..];
                rest.find('/').map_or("/", |j| &rest[j..])
            }
            None => url,
        };
        return Some(path.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links() {
        let cases = [
            (
                "</v2/_catalog?last=a&n=2>; rel=\"next\"",
                Some("/v2/_catalog?last=a&n=2"),
            ),
            (
                "<https://r.example/v2/x/tags/list?last=b>; rel=\"next\"",
                Some("/v2/x/tags/list?last=b"),
            ),
            ("</v2/_catalog?last=a>; rel=\"prev\"", None),
        ];
        for (v, want) in cases {
            let mut h = HeaderMap::new();
            h.insert("link", v.parse().unwrap());
            assert_eq!(next_link(&h).as_deref(), want, "{v}");
        }
    }
}
