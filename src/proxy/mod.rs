//! The pingora glue: one `ProxyHttp` impl whose phases call the pure
//! modules (route, rewrite, policy) and apply what they return.

mod aql;
mod auth;
mod catalog;
pub mod conn;
mod ctx;
mod edits;
mod log;
mod manifest;
mod realm;
pub mod respond;
mod sso;
mod transport;

pub use crate::state::{Shared, Snapshot};
pub use ctx::Ctx;

use crate::config::ListenMethod;
use crate::observe::metrics::{NO_REPO, UNKNOWN_REPO};
use crate::observe::{request_id, Operation};
use crate::oci::{Endpoint, RegistryError};
use crate::policy::auth::{acl::Action, Decision};
use crate::rewrite::{request, response::View, REALM_PREFIX};
use crate::route::{self, host::HostNames, Routed};
use async_trait::async_trait;
use bytes::Bytes;
use http::StatusCode;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// One per listener: the listener's address and method, plus shared state.
pub struct Gateway {
    pub addr: SocketAddr,
    pub method: ListenMethod,
    pub shared: Arc<Shared>,
    /// Open downstream connections, per client and per head deadline.
    pub connections: Arc<conn::Connections>,
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
        ctx.view = Some(View::new(&host, &t.repo, method));
        ctx.backend = Some(b.clone());
        ctx.target = Some(t);
    }

    /// Passthrough mode: when the backend behind this listener (on a path
    /// listener: any backend) wants credentials, `GET /v2/` goes there, so
    /// clients see its challenge and send credentials. Otherwise dockgate
    /// answers it, and stays up when a backend is down.
    fn prepare_ping(&self, ctx: &mut Ctx, method: &ListenMethod) -> bool {
        let Some(rt) = ctx.rt.clone() else {
            return false;
        };
        let wants = self
            .shared
            .auth_required
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        let repo = match route::listener_repo(&rt.cfg, method, Some(&ctx.client_host)) {
            Ok(Some(r)) if wants.contains(&r.backend.name) => r,
            Ok(None) => match rt
                .cfg
                .repositories
                .values()
                .find(|r| wants.contains(&r.backend.name))
            {
                Some(r) => r.clone(),
                None => return false,
            },
            _ => return false,
        };
        let b = repo.backend.clone();
        ctx.upstream_uri = format!("{}/", b.v2_prefix_for(&repo.key));
        ctx.view = Some(View::new(&ctx.client_host, &repo, method));
        ctx.backend = Some(b);
        true
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            inflight: Some(crate::state::InFlight::new(&self.shared.inflight)),
            started: Some(std::time::Instant::now()),
            repo_label: UNKNOWN_REPO.to_string(),
            ..Ctx::default()
        }
    }

    async fn early_request_filter(&self, s: &mut Session, _ctx: &mut Ctx) -> Result<()> {
        let limits = self.shared.snapshot().cfg.server.limits;
        transport::on_request(&self.connections, s, &limits);
        Ok(())
    }

    async fn request_filter(&self, s: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if transport::stream_gone(s) {
            return Err(transport::gone());
        }
        let rt = self.shared.snapshot();
        ctx.rt = Some(rt.clone());
        // In the request head, so proxied requests carry it to the backend
        // and dockgate's own answers (respond.rs) echo it.
        ctx.request_id = request_id::next();
        s.req_header_mut()
            .insert_header(request_id::HEADER, ctx.request_id.as_str())?;
        ctx.client_host = self.client_host(s);
        let method = rt.method_of(self.addr, &self.method);
        let path = s.req_header().uri.path().to_string();
        if let Some(e) = oversized(s.req_header()) {
            return respond::error(s, &e).await.map(|_| true);
        }
        if let Some(e) = misdirected(s.req_header(), &rt.hosts) {
            return respond::error(s, &e).await.map(|_| true);
        }
        if let Some(rest) = path.strip_prefix(REALM_PREFIX) {
            ctx.operation = Some(Operation::Token);
            ctx.repo_label = NO_REPO.to_string();
            let rest = rest.to_string();
            return self.realm(s, ctx, &rest, &method).await;
        }
        if let Some(done) = self.own_endpoint(s, ctx, &path, &method).await? {
            return Ok(done);
        }
        let routed = match route::route(&rt.cfg, &method, Some(&ctx.client_host), &path) {
            Ok(Some(r)) => r,
            Err(e) => return respond::error(s, &e).await.map(|_| true),
            Ok(None) => {
                let e = RegistryError::unsupported(format!(
                    "{path}: dockgate serves the registry API under /v2/"
                ));
                return respond::error(s, &e).await.map(|_| true);
            }
        };
        if let Routed::Repo(t) = &routed {
            ctx.repo_label = t.repo.key.clone();
        }
        let principal = match self.principal(s, ctx).await {
            Ok(p) => p,
            Err(f) => return self.refuse_credentials(s, ctx, f).await,
        };
        ctx.user = principal.user().map(str::to_string);
        let auth = rt.auth.clone();
        match routed {
            Routed::Ping => {
                ctx.operation = Some(Operation::Ping);
                ctx.repo_label = NO_REPO.to_string();
                if auth.is_some() && principal.user().is_none() {
                    return self.challenge_ping(s, ctx).await;
                }
                if auth.is_none() && self.prepare_ping(ctx, &method) {
                    return Ok(false);
                }
                respond::json(s, 200, &[], b"{}".to_vec())
                    .await
                    .map(|_| true)
            }
            Routed::Catalog {
                mut repos,
                with_key,
            } => {
                ctx.operation = Some(Operation::Catalog);
                ctx.repo_label = NO_REPO.to_string();
                if let Some(a) = &auth {
                    repos.retain(|r| {
                        crate::policy::auth::acl::may(
                            &a.cfg,
                            &r.acl,
                            principal.user(),
                            Action::Pull,
                        )
                    });
                    if repos.is_empty() && principal.user().is_none() {
                        return self.challenge_ping(s, ctx).await;
                    }
                }
                let query = s.req_header().uri.query().map(str::to_string);
                // Names inside a narrower repository's namespace need its roles too.
                let user = principal.user().map(str::to_string);
                let auth_cfg = auth.as_ref().map(|a| a.cfg.clone());
                let cfg = rt.cfg.clone();
                let visible = move |r: &Arc<crate::config::Repository>, image: &str| {
                    auth_cfg.as_ref().is_none_or(|c| {
                        let t = route::auth_target(&cfg, r.clone(), image);
                        crate::policy::auth::may_on(c, &t, user.as_deref(), Action::Pull)
                    })
                };
                let answer = catalog::serve(
                    &self.shared,
                    &rt,
                    &repos,
                    with_key,
                    query.as_deref(),
                    &visible,
                )
                .await;
                match answer {
                    Ok(a) => respond::json(s, 200, &a.headers, a.body).await?,
                    Err(e) => respond::error(s, &e).await?,
                }
                Ok(true)
            }
            Routed::Repo(t) => {
                let req_method = s.req_header().method.clone();
                ctx.operation = Some(Operation::of(
                    &req_method,
                    t.endpoint.as_ref(),
                    s.req_header().uri.query(),
                ));
                if let Some(a) = &auth {
                    let action = Action::for_method(&req_method);
                    let target = route::auth_target(&rt.cfg, t.repo.clone(), &t.image);
                    let decision = a.decide(&principal, &target, action);
                    if decision != Decision::Allow {
                        let name = if t.image.is_empty() {
                            t.repo.key.clone()
                        } else {
                            route::client_name(&method, &t.repo, &t.image)
                        };
                        return self
                            .refuse_access(s, ctx, &principal, &name, action, decision)
                            .await;
                    }
                }
                let manifest_put = matches!(t.endpoint, Some(Endpoint::Manifest(_)))
                    && req_method == http::Method::PUT;
                self.prepare(s, ctx, t, &method);
                if manifest_put {
                    return self.manifest_put(s, ctx).await;
                }
                Ok(false)
            }
        }
    }

    async fn upstream_peer(&self, s: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        // A cancelled h2 stream costs no backend request.
        if transport::stream_gone(s) {
            return Err(transport::gone());
        }
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
        let client_ip = s.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        edits::upstream_request(up, ctx, self.addr.port(), client_ip)
    }

    async fn request_body_filter(
        &self,
        _s: &mut Session,
        body: &mut Option<Bytes>,
        eos: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.bytes_in += body.as_ref().map_or(0, |b| b.len() as u64);
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
        self.learn_realms(resp, ctx);
        edits::downstream_response(resp, ctx)?;
        self.check_pull(resp, ctx)
    }

    fn response_body_filter(
        &self,
        _s: &mut Session,
        body: &mut Option<Bytes>,
        eos: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        if let Some(replacement) = &ctx.replace_body {
            *body = if eos { Some(replacement.clone()) } else { None };
        }
        Ok(None)
    }

    async fn logging(&self, s: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        log::record(&self.shared, s, ctx);
        if let Some(rt) = &ctx.rt {
            transport::on_done(&self.connections, s, &rt.cfg.server.limits);
        }
    }

    async fn fail_to_proxy(&self, s: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        if e.esource() == &pingora::ErrorSource::Upstream {
            ctx.upstream_error = Some(edits::error_kind(e));
        }
        let Some(err) = edits::failure(e, ctx) else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        tracing::warn!(error = %e, status = err.status.as_u16(), "proxy failure");
        ctx.failure_status = Some(err.status.as_u16());
        // After a relayed `100 Continue` a final answer can still be sent.
        if s.response_written()
            .is_none_or(|r| r.status.is_informational())
        {
            if let Err(we) = respond::error(s, &err).await {
                tracing::debug!(error = %we, "could not send error response");
            }
        }
        FailToProxy {
            error_code: err.status.as_u16(),
            can_reuse_downstream: false,
        }
    }
}

/// Registry requests carry small headers; refuse big ones in the registry
/// format (pingora itself answers a bare 400 only above 1 MiB).
const MAX_REQUEST_HEAD: usize = 64 << 10;

fn oversized(req: &RequestHeader) -> Option<RegistryError> {
    let size: usize = req.uri.path_and_query().map_or(0, |p| p.as_str().len())
        + req
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    (size > MAX_REQUEST_HEAD).then(|| {
        RegistryError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            crate::oci::ErrorCode::Unsupported,
            format!(
                "request line and headers of {size} bytes exceed the {MAX_REQUEST_HEAD} byte limit"
            ),
        )
    })
}

/// 421 for a `Host` or `:authority` that is not one of dockgate's names:
/// absolute URLs are built from it, so it must never be the client's
/// choice. 421 (not 400) says "not this server", which clients and h2
/// connection reuse understand.
fn misdirected(req: &RequestHeader, hosts: &HostNames) -> Option<RegistryError> {
    let authority = req.uri.authority().map(|a| a.as_str().to_string());
    let header = req
        .headers
        .get_all("host")
        .iter()
        .map(|h| h.to_str().unwrap_or("\u{0}").to_string());
    let bad = authority
        .into_iter()
        .chain(header)
        .find(|h| !hosts.allows(h))?;
    let shown: String = bad.chars().take(100).collect();
    Some(RegistryError::new(
        StatusCode::MISDIRECTED_REQUEST,
        crate::oci::ErrorCode::Denied,
        format!("host {shown:?} is not served here; use a name of this gateway's certificate or [server] public_hosts"),
    ))
}

impl Gateway {
    /// A schema1 manifest answered from a `block_schema1_pull` repository
    /// becomes a refusal; the backend body is swallowed.
    fn check_pull(&self, resp: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()> {
        let Some(t) = &ctx.target else { return Ok(()) };
        if !matches!(t.endpoint, Some(Endpoint::Manifest(_))) || resp.status != StatusCode::OK {
            return Ok(());
        }
        let ct = resp
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        let Err(e) = crate::policy::schema1::check_pull(&t.repo, ct) else {
            return Ok(());
        };
        tracing::info!(repository = %t.repo.key, "schema1 pull refused");
        let body = Bytes::from(e.body());
        resp.set_status(e.status)?;
        for h in [
            "content-type",
            "content-length",
            "docker-content-digest",
            "etag",
            "transfer-encoding",
        ] {
            resp.remove_header(h);
        }
        resp.insert_header("Content-Type", "application/json")?;
        resp.insert_header("Content-Length", body.len().to_string())?;
        ctx.replace_body = Some(body);
        ctx.refused = Some(crate::policy::schema1::Direction::Pull);
        Ok(())
    }
}
