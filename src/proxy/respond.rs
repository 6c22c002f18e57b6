//! Writing responses dockgate answers itself (ping, catalog, errors).

use crate::observe::request_id;
use crate::oci::{RegistryError, API_VERSION, API_VERSION_HEADER};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

pub async fn send(
    s: &mut Session,
    status: u16,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<()> {
    send_raw(s, status, &with_api_version(headers), body).await
}

/// Exactly these headers (plus Content-Length) and body.
pub async fn send_raw(
    s: &mut Session,
    status: u16,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<()> {
    let id = s.req_header().headers.get(request_id::HEADER);
    let resp = head(status, headers, body.len(), id)?;
    // A request body we did not read must not be mistaken for the next
    // request on this connection.
    if !s.is_body_done() {
        s.set_keepalive(None);
    }
    // h2: read the rest first so the stream ends cleanly on both sides (an
    // answer ahead of the body ends in a reset some clients report instead);
    // HTTP/1.1: answer first, then read, so the close does not reset it.
    let h2 = s.as_downstream().is_http2();
    if h2 {
        super::transport::drain_unread(s).await;
    }
    let head_only = s.req_header().method == http::Method::HEAD || body.is_empty();
    s.write_response_header(Box::new(resp), head_only).await?;
    if !head_only {
        s.write_response_body(Some(body), true).await?;
    }
    if !h2 {
        super::transport::drain_unread(s).await;
    }
    Ok(())
}

/// The head of an answer dockgate gives itself: exactly `headers`, plus
/// Content-Length and the request's id.
pub fn head(
    status: u16,
    headers: &[(&str, String)],
    len: usize,
    request_id: Option<&http::HeaderValue>,
) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(status, Some(2 + headers.len()))?;
    resp.insert_header("Content-Length", len.to_string())?;
    for (k, v) in headers {
        resp.append_header(k.to_string(), v.as_str())?;
    }
    if let Some(id) = request_id {
        resp.insert_header(request_id::HEADER, id.clone())?;
    }
    Ok(resp)
}

/// The headers `send` adds to every answer, then `headers`.
pub fn with_api_version<'a>(headers: &[(&'a str, String)]) -> Vec<(&'a str, String)> {
    let mut h = vec![(API_VERSION_HEADER, API_VERSION.to_string())];
    h.extend(headers.iter().cloned());
    h
}

pub async fn json(
    s: &mut Session,
    status: u16,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<()> {
    let mut h = vec![("Content-Type", "application/json".to_string())];
    h.extend(headers.iter().cloned());
    send(s, status, &h, Bytes::from(body)).await
}

pub async fn error(s: &mut Session, e: &RegistryError) -> Result<()> {
    error_with(s, e, &[]).await
}

pub async fn error_with(
    s: &mut Session,
    e: &RegistryError,
    headers: &[(&str, String)],
) -> Result<()> {
    json(s, e.status.as_u16(), headers, e.body()).await
}

/// An answer the pipeline decided on.
pub async fn local(s: &mut Session, l: &crate::pipeline::Local) -> Result<()> {
    send(s, l.status.as_u16(), &l.headers, l.body.clone()).await
}
