//! Header edits shared by the proxied path and dockgate's own forwarding
//! (manifest PUTs): what goes to the backend, and what comes back.

use super::Ctx;
use crate::config::Backend;
use crate::observe::request_id;
use crate::oci::{ErrorCode, RegistryError};
use crate::rewrite::request;
use http::header::{LINK, LOCATION, WWW_AUTHENTICATE};
use http::StatusCode;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::borrow::Cow;
use std::net::IpAddr;

/// What the backend's request head gets instead of the client's: one
/// list for pingora's path (`upstream_request`) and the fast lane's own
/// writer (`fast::wire::backend_request`).
pub struct UpstreamHeaders<'a> {
    /// Set, replacing any header of the same name the client sent.
    pub set: Vec<(&'static str, Cow<'a, str>)>,
    /// The client's `Authorization` is dropped: with gateway auth its
    /// credentials are for dockgate, never the backend's (those come from
    /// config and are in `set`).
    pub drop_authorization: bool,
}

/// The backend's Host, the request id, dockgate's credentials toward the
/// backend and the forwarding headers.
pub fn upstream_headers<'a>(
    ctx: &'a Ctx,
    b: &'a Backend,
    listen_port: u16,
    client_ip: Option<IpAddr>,
    prior_xff: Option<&str>,
) -> UpstreamHeaders<'a> {
    let mut set: Vec<(&'static str, Cow<'a, str>)> = Vec::with_capacity(8);
    set.push(("Host", Cow::Borrowed(b.authority.as_str())));
    if !ctx.request_id.is_empty() {
        set.push((request_id::HEADER, Cow::Borrowed(ctx.request_id.as_str())));
    }
    if let Some((k, v)) = crate::upstream::credentials_header(b) {
        set.push((k, Cow::Owned(v)));
    }
    let forwarded =
        request::forwarded_headers(&ctx.client_host, listen_port, client_ip, prior_xff, b);
    set.extend(forwarded.into_iter().map(|(k, v)| (k, Cow::Owned(v))));
    UpstreamHeaders {
        set,
        drop_authorization: ctx.rt.auth.is_some(),
    }
}

/// Backend path, Host and forwarding headers, on pingora's request head.
pub fn upstream_request(
    up: &mut RequestHeader,
    ctx: &Ctx,
    listen_port: u16,
    client_ip: Option<IpAddr>,
) -> Result<()> {
    let Some(b) = ctx.backend.as_deref() else {
        return Error::e_explain(ErrorType::InternalError, "no backend chosen");
    };
    let uri: http::Uri = ctx
        .upstream_uri
        .parse()
        .map_err(|e| Error::because(ErrorType::InternalError, "building upstream uri", e))?;
    up.set_uri(uri);
    let prior = up
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let h = upstream_headers(ctx, b, listen_port, client_ip, prior.as_deref());
    if h.drop_authorization {
        up.remove_header("authorization");
    }
    for (k, v) in h.set {
        up.insert_header(k, v.into_owned())?;
    }
    Ok(())
}

/// Location, Link and WWW-Authenticate back into the client's terms.
pub fn downstream_response(resp: &mut ResponseHeader, ctx: &Ctx) -> Result<()> {
    let id = (!ctx.request_id.is_empty()).then(|| request_id::value(&ctx.request_id));
    if let Some(Some(id)) = id {
        resp.insert_header(request_id::HEADER, id)?;
    }
    let Some(of) = &ctx.view else { return Ok(()) };
    let names = [LOCATION, LINK, WWW_AUTHENTICATE];
    if !names.iter().any(|n| resp.headers.contains_key(n)) {
        return Ok(());
    }
    let view = of.view();
    for name in names {
        let values: Vec<String> = resp
            .headers
            .get_all(&name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        if values.is_empty() {
            continue;
        }
        let new: Vec<String> = values
            .iter()
            .map(|v| {
                let r = if name == LOCATION {
                    view.location(v)
                } else if name == LINK {
                    view.link(v)
                } else {
                    view.www_authenticate(v)
                };
                r.unwrap_or_else(|| v.clone())
            })
            .collect();
        if new != values {
            resp.remove_header(&name);
            for v in new {
                resp.append_header(name.clone(), v)?;
            }
        }
    }
    Ok(())
}

/// A proxying failure, recorded on `ctx` for the metrics and the log: the
/// answer for the client, or None when the client is gone.
pub fn failed(e: &Error, ctx: &mut Ctx) -> Option<RegistryError> {
    if e.esource() == &ErrorSource::Upstream {
        ctx.upstream_error = Some(error_kind(e));
    }
    let err = failure(e, ctx)?;
    tracing::warn!(error = %e, status = err.status.as_u16(), "proxy failure");
    ctx.failure_status = Some(err.status.as_u16());
    Some(err)
}

/// A proxying failure as the client should see it; None when the client
/// is gone and nothing can be said.
pub fn failure(e: &Error, ctx: &Ctx) -> Option<RegistryError> {
    let repo = ctx
        .target
        .as_ref()
        .map(|t| t.repo.key.clone())
        .unwrap_or_else(|| "-".into());
    let backend = ctx
        .backend
        .as_ref()
        .map(|b| format!("{} ({})", b.name, b.authority))
        .unwrap_or_default();
    let (status, what) = match (e.esource(), e.etype()) {
        (
            ErrorSource::Upstream,
            ErrorType::ConnectRefused
            | ErrorType::ConnectTimedout
            | ErrorType::ConnectError
            | ErrorType::ConnectNoRoute
            | ErrorType::TLSHandshakeFailure,
        ) => (StatusCode::SERVICE_UNAVAILABLE, "is unavailable"),
        (ErrorSource::Upstream, ErrorType::ReadTimedout | ErrorType::WriteTimedout) => {
            (StatusCode::GATEWAY_TIMEOUT, "timed out")
        }
        (ErrorSource::Upstream, _) => (StatusCode::BAD_GATEWAY, "failed"),
        (
            ErrorSource::Downstream,
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed,
        ) => return None,
        (ErrorSource::Downstream, ErrorType::ReadTimedout) => {
            (StatusCode::REQUEST_TIMEOUT, "client timed out")
        }
        (ErrorSource::Downstream, _) => (StatusCode::BAD_REQUEST, "bad request"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "failed inside dockgate"),
    };
    let msg = match e.esource() {
        ErrorSource::Upstream => format!(
            "repository {repo}: backend {backend} {what}: {}",
            e.etype().as_str()
        ),
        _ => format!("repository {repo}: {what}: {}", e.etype().as_str()),
    };
    let code = if status == StatusCode::BAD_REQUEST {
        ErrorCode::Unsupported
    } else {
        ErrorCode::Unavailable
    };
    Some(RegistryError::new(status, code, msg))
}

/// A bounded label for an upstream failure.
pub fn error_kind(e: &Error) -> &'static str {
    match e.etype() {
        ErrorType::ConnectRefused => "connect_refused",
        ErrorType::ConnectTimedout => "connect_timeout",
        ErrorType::ConnectError | ErrorType::ConnectNoRoute => "connect_error",
        ErrorType::TLSHandshakeFailure
        | ErrorType::InvalidCert
        | ErrorType::TLSHandshakeTimedout => "tls",
        ErrorType::ReadTimedout => "read_timeout",
        ErrorType::WriteTimedout => "write_timeout",
        ErrorType::ReadError | ErrorType::ConnectionClosed => "read_error",
        ErrorType::WriteError => "write_error",
        ErrorType::InvalidHTTPHeader | ErrorType::H1Error | ErrorType::H2Error => "protocol",
        _ => "other",
    }
}
