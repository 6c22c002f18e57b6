//! The pingora glue: one `ProxyHttp` impl. Each phase takes facts from
//! the session, asks the pure pipeline (`crate::pipeline`) for a step, and
//! applies it: forward, or answer locally. No decisions are made here.
//! `fast/` applies the same steps to manifest reads outside pingora-proxy.

mod cache;
pub mod conn;
mod ctx;
mod edits;
pub mod fast;
mod log;
mod manifest;
pub mod proxy_v2;
pub mod respond;
mod tags;
mod transport;

pub use crate::state::{Shared, Snapshot};
pub use ctx::Ctx;

use crate::config::ListenMethod;
use crate::endpoint::{Env, Request};
use crate::observe::request_id;
use crate::pipeline::{self, Body, Step};
use async_trait::async_trait;
use bytes::Bytes;
use http::header::WWW_AUTHENTICATE;
use http::StatusCode;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// One per listener: the listener's address and method, plus shared state.
#[derive(Clone)]
pub struct Gateway {
    pub addr: SocketAddr,
    pub method: ListenMethod,
    pub shared: Arc<Shared>,
    /// Open downstream connections, per client and per head deadline.
    pub connections: Arc<conn::Connections>,
    /// The fast lane's backend connections (shared by every listener).
    pub pool: Arc<crate::upstream::h1::Pool>,
}

impl Gateway {
    fn env<'a>(&'a self, ctx: &'a Ctx) -> Env<'a> {
        Env {
            rt: &ctx.rt,
            shared: &self.shared,
        }
    }

    /// The host the client dialed: the URI's authority, `Host`, or the
    /// listener's address.
    fn client_host(&self, req: &http::request::Parts) -> String {
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

    /// The pipeline's step for this request.
    async fn step(&self, s: &mut Session, ctx: &mut Ctx) -> Result<Option<Step>> {
        let body = if pipeline::wants_body(&self.env(ctx), s.req_header()) {
            match self.read_small_body(s).await? {
                Some(b) => Some(b),
                None => return Ok(None),
            }
        } else {
            None
        };
        let peer = s.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        let req = Request {
            head: s.req_header(),
            client_host: ctx.client_host.clone(),
            client_ip: pipeline::client_ip(&self.env(ctx), peer, s.req_header()),
            listen: ctx.rt.method_of(self.addr, &self.method),
            body,
        };
        let mut notes = std::mem::take(&mut ctx.notes);
        let step = pipeline::run(&self.env(ctx), &req, &mut notes).await;
        ctx.notes = notes;
        Ok(Some(step))
    }

    /// Applies a step: Ok(true) when answered here.
    async fn apply(&self, s: &mut Session, ctx: &mut Ctx, step: Step) -> Result<bool> {
        let f = match step {
            Step::Respond(l) => return respond::local(s, &l).await.map(|_| true),
            Step::Forward(f) => f,
        };
        ctx.forward_to(&f);
        for (k, v) in &f.set_headers {
            s.req_header_mut().insert_header(*k, v.as_str())?;
        }
        match f.body {
            Body::Stream => cache::serve(self, s, ctx).await,
            Body::Held(b) => self.forward_held(s, ctx, b).await,
            Body::Manifest => self.manifest_put(s, ctx).await,
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new(&self.shared)
    }

    async fn early_request_filter(&self, s: &mut Session, ctx: &mut Ctx) -> Result<()> {
        transport::on_request(&self.connections, s, &ctx.rt.cfg.server.limits);
        Ok(())
    }

    async fn request_filter(&self, s: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if transport::stream_gone(s) {
            return Err(transport::gone());
        }
        // In the request head, so proxied requests carry it to the backend
        // and dockgate's own answers (respond.rs) echo it.
        ctx.request_id = request_id::next();
        if let Some(v) = request_id::value(&ctx.request_id) {
            s.req_header_mut().insert_header(request_id::HEADER, v)?;
        }
        ctx.client_host = self.client_host(s.req_header());
        match self.step(s, ctx).await? {
            Some(step) => self.apply(s, ctx, step).await,
            None => Ok(true),
        }
    }

    async fn upstream_peer(&self, s: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        // A cancelled h2 stream costs no backend request.
        if transport::stream_gone(s) {
            return Err(transport::gone());
        }
        match &ctx.backend {
            Some(b) => Ok(Box::new(ctx.rt.peers.peer(b))),
            None => Error::e_explain(ErrorType::InternalError, "no backend chosen"),
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
        s: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        self.answer_head(&s.req_header().method, resp, ctx)?;
        tags::hold(s, resp, ctx)
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
            return Ok(None);
        }
        if ctx.tags_body.is_some() {
            tags::rename(body, eos, ctx);
        }
        // Returning a delay is pingora's way to pace a response body.
        let (Some(p), Some(b)) = (&ctx.pace, body.as_ref()) else {
            return Ok(None);
        };
        let l = &self.shared.edge.limiter;
        Ok(l.pulled(
            &p.key,
            b.len(),
            p.bytes_per_second,
            std::time::Instant::now(),
        ))
    }

    async fn logging(&self, s: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        log::record(&self.shared, s, ctx);
        transport::on_done(&self.connections, s, &ctx.rt.cfg.server.limits);
    }

    async fn fail_to_proxy(&self, s: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let Some(err) = edits::failed(e, ctx) else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
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

impl Gateway {
    /// A backend answer's head, on its way to the client (here and in the
    /// fast lane): remembered, rewritten, and checked by the pipeline.
    fn answer_head(
        &self,
        method: &http::Method,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.backend_status = Some(resp.status.as_u16());
        self.learn_realms(resp, ctx);
        if let Some(t) = &ctx.target {
            let loc = resp.headers.get("location").and_then(|v| v.to_str().ok());
            pipeline::learn(&self.env(ctx), t, &ctx.who, resp.status.as_u16(), loc);
        }
        edits::downstream_response(resp, ctx)?;
        self.check_answer(method, resp, ctx)
    }

    /// Remembers the realm paths a backend's 401 advertised.
    fn learn_realms(&self, resp: &ResponseHeader, ctx: &Ctx) {
        let (Some(of), Some(b)) = (&ctx.view, &ctx.backend) else {
            return;
        };
        if resp.status != StatusCode::UNAUTHORIZED {
            return;
        }
        let view = of.view();
        for v in resp.headers.get_all(WWW_AUTHENTICATE) {
            if let Some(p) = v.to_str().ok().and_then(|v| view.backend_realm(v)) {
                self.shared.realms.learn(&b.name, p);
            }
        }
    }

    /// Asks the pipeline about the backend's answer; a refusal replaces
    /// it (the backend body is swallowed).
    fn check_answer(
        &self,
        method: &http::Method,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(t) = &ctx.target else { return Ok(()) };
        let ct = resp
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        let env = self.env(ctx);
        let Some(r) = pipeline::on_answer(&env, method, t, resp.status.as_u16(), ct) else {
            return Ok(());
        };
        tracing::info!(repository = %t.repo.key, rule = r.rule.as_str(), "answer refused");
        let body = Bytes::from(r.error.body());
        resp.set_status(r.error.status)?;
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
        ctx.notes.refused = Some(r.rule);
        Ok(())
    }
}
