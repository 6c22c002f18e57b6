//! The pingora glue: one `ProxyHttp` impl whose phases call the pure
//! modules (route, rewrite, policy) and apply what they return.

mod catalog;
mod ctx;
pub mod respond;
pub mod state;

pub use ctx::Ctx;
pub use state::{Runtime, Shared};

use crate::config::ListenMethod;
use crate::oci::{ErrorCode, RegistryError};
use crate::rewrite::{request, response::View, REALM_PREFIX};
use crate::route::{self, Routed};
use async_trait::async_trait;
use bytes::Bytes;
use http::StatusCode;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::net::SocketAddr;
use std::sync::Arc;

/// One per listener: the listener's address and method, plus shared state.
pub struct Gateway {
    pub addr: SocketAddr,
    pub method: ListenMethod,
    pub shared: Arc<Shared>,
}

impl Gateway {
    fn client_host(&self, s: &Session) -> String {
        let req = s.req_header();
        req.uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                req.headers
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| self.addr.to_string())
    }

    /// A repository request: remember where it goes and how to map back.
    fn prepare(&self, s: &Session, ctx: &mut Ctx, t: route::RepoTarget, method: &ListenMethod) {
        let (Some(rt), host) = (ctx.rt.clone(), ctx.client_host.clone()) else {
            return;
        };
        let names = |n: &str| {
            route::backend_name_of(&rt.cfg, method, Some(&host), n).map(|(r, b)| (r.key.clone(), b))
        };
        let query = request::upstream_query(
            s.req_header().uri.query(),
            t.endpoint.as_ref(),
            &t.repo.key,
            &names,
        );
        ctx.upstream_uri = match query {
            Some(q) => format!("{}?{q}", t.backend_path),
            None => t.backend_path.clone(),
        };
        let b = &t.repo.backend;
        ctx.view = Some(View {
            client_origin: format!("https://{host}"),
            backend_authorities: vec![b.authority.clone(), host.clone()],
            backend_name: b.name.clone(),
            v2_prefix: b.v2_prefix_for(&t.repo.key),
            name_prefix: t.repo.name_prefix.clone(),
            client_prefix: match method {
                ListenMethod::Path => format!("{}/", t.repo.key),
                _ => String::new(),
            },
        });
        ctx.backend = Some(b.clone());
        ctx.target = Some(t);
    }

    /// `/_dockgate/realm/<backend>/<path>`: a backend's token endpoint,
    /// reached through dockgate with scopes mapped to backend names.
    fn prepare_realm(
        &self,
        s: &Session,
        ctx: &mut Ctx,
        rest: &str,
        method: &ListenMethod,
    ) -> Result<(), RegistryError> {
        let Some(rt) = ctx.rt.clone() else {
            return Err(RegistryError::unsupported("no runtime"));
        };
        let (name, path) = rest.split_once('/').unwrap_or((rest, ""));
        let backend = rt
            .cfg
            .backends
            .get(name)
            .cloned()
            .ok_or_else(|| RegistryError::name_unknown(format!("no backend {name:?}")))?;
        let host = ctx.client_host.clone();
        let names = |n: &str| {
            route::backend_name_of(&rt.cfg, method, Some(&host), n).map(|(r, b)| (r.key.clone(), b))
        };
        let query = s
            .req_header()
            .uri
            .query()
            .map(|q| request::token_query(q, &names));
        ctx.upstream_uri = match query {
            Some(q) if !q.is_empty() => format!("/{path}?{q}"),
            _ => format!("/{path}"),
        };
        ctx.backend = Some(backend);
        Ok(())
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            inflight: Some(state::InFlight::new(&self.shared.inflight)),
            ..Ctx::default()
        }
    }

    async fn request_filter(&self, s: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let rt = self.shared.snapshot();
        ctx.rt = Some(rt.clone());
        ctx.client_host = self.client_host(s);
        let method = rt.method_of(self.addr, &self.method);
        let path = s.req_header().uri.path().to_string();
        if let Some(rest) = path.strip_prefix(REALM_PREFIX) {
            return match self.prepare_realm(s, ctx, rest, &method) {
                Ok(()) => Ok(false),
                Err(e) => respond::error(s, &e).await.map(|_| true),
            };
        }
        let routed = route::route(&rt.cfg, &method, Some(&ctx.client_host), &path);
        match routed {
            Err(e) => respond::error(s, &e).await.map(|_| true),
            Ok(None) => {
                let e = RegistryError::unsupported(format!(
                    "{path}: dockgate serves the registry API under /v2/"
                ));
                respond::error(s, &e).await.map(|_| true)
            }
            Ok(Some(Routed::Ping)) => respond::json(s, 200, &[], b"{}".to_vec())
                .await
                .map(|_| true),
            Ok(Some(Routed::Catalog { repos, with_key })) => {
                let query = s.req_header().uri.query().map(str::to_string);
                match catalog::serve(&self.shared, &rt, &repos, with_key, query.as_deref()).await {
                    Ok(a) => respond::json(s, 200, &a.headers, a.body).await?,
                    Err(e) => respond::error(s, &e).await?,
                }
                Ok(true)
            }
            Ok(Some(Routed::Repo(t))) => {
                self.prepare(s, ctx, t, &method);
                Ok(false)
            }
        }
    }

    async fn upstream_peer(&self, _s: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        match (&ctx.rt, &ctx.backend) {
            (Some(rt), Some(b)) => Ok(Box::new(rt.peers.peer(b))),
            _ => Error::e_explain(ErrorType::InternalError, "no backend chosen"),
        }
    }

    async fn upstream_request_filter(
        &self,
        s: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(b) = ctx.backend.clone() else {
            return Error::e_explain(ErrorType::InternalError, "no backend chosen");
        };
        let uri: http::Uri = ctx
            .upstream_uri
            .parse()
            .map_err(|e| Error::because(ErrorType::InternalError, "building upstream uri", e))?;
        up.set_uri(uri);
        up.insert_header("Host", b.authority.as_str())?;
        let client_ip = s.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        let prior = up
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        for (k, v) in request::forwarded_headers(
            &ctx.client_host,
            self.addr.port(),
            client_ip,
            prior.as_deref(),
            &b,
        ) {
            up.insert_header(k, v)?;
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _s: &mut Session,
        body: &mut Option<Bytes>,
        eos: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // A manifest read whole for inspection replaces pingora's 64 KiB
        // replay buffer, which would otherwise truncate it.
        if let Some(held) = &ctx.held_body {
            if !ctx.held_sent {
                ctx.held_sent = true;
                *body = Some(held.clone());
            } else {
                *body = None;
            }
            return Ok(());
        }
        // pingora #935: an h2 client's empty final chunk would otherwise be
        // written as a second chunk terminator upstream.
        if eos && body.as_ref().is_some_and(|b| b.is_empty()) {
            *body = None;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _s: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.backend_status = Some(resp.status.as_u16());
        let Some(view) = &ctx.view else { return Ok(()) };
        for name in [
            http::header::LOCATION,
            http::header::LINK,
            http::header::WWW_AUTHENTICATE,
        ] {
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
                    let r = match name {
                        http::header::LOCATION => view.location(v),
                        http::header::LINK => view.link(v),
                        _ => view.www_authenticate(v),
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

    async fn fail_to_proxy(&self, s: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
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
        let (status, code, what) = match (e.esource(), e.etype()) {
            (
                ErrorSource::Upstream,
                ErrorType::ConnectRefused
                | ErrorType::ConnectTimedout
                | ErrorType::ConnectError
                | ErrorType::ConnectNoRoute,
            ) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "is unavailable",
            ),
            (ErrorSource::Upstream, _) => {
                (StatusCode::BAD_GATEWAY, ErrorCode::Unavailable, "failed")
            }
            (
                ErrorSource::Downstream,
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed,
            ) => {
                return FailToProxy {
                    error_code: 0,
                    can_reuse_downstream: false,
                };
            }
            (ErrorSource::Downstream, _) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::Unknown,
                "rejected the request",
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Unknown,
                "failed internally",
            ),
        };
        let msg = match e.esource() {
            ErrorSource::Upstream => format!(
                "repository {repo}: backend {backend} {what}: {}",
                e.etype().as_str()
            ),
            _ => format!("repository {repo}: {what}: {}", e.etype().as_str()),
        };
        tracing::warn!(repository = %repo, error = %e, "proxy failure");
        if s.response_written().is_none() {
            let err = RegistryError::new(status, code, msg);
            if let Err(we) = respond::error(s, &err).await {
                tracing::debug!(error = %we, "could not send error response");
            }
        }
        FailToProxy {
            error_code: status.as_u16(),
            can_reuse_downstream: false,
        }
    }
}
