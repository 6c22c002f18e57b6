//! The fast lane: an HTTP/1.1 connection's manifest GETs and HEADs served
//! in one loop, without pingora-proxy's per-request machinery. A minimal
//! tokio + rustls proxy spends ~15 µs of CPU on such a request on the bench
//! VM, pingora's phases ~70 µs (bench/README.md, 2026-12-01). The decisions
//! are the proxy phases' own calls (`pipeline::run`, `edits`,
//! `check_answer`, `log`); a head the lane does not take goes to pingora
//! with the bytes already read, and so does the rest of that connection.

pub mod wire;

use super::conn::{ConnKey, Connections};
use super::log::{self, Done};
use super::{edits, respond, transport, Ctx, Gateway};
use crate::cache::rules::Digest;
use crate::config::ClientLimits;
use crate::endpoint::{Own, Request};
use crate::observe::request_id;
use crate::oci::Endpoint;
use crate::pipeline::{self, Body, Forward, Local, Step};
use crate::route::{self, RepoTarget, Routed};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::request::Parts;
use http::Method;
use pingora::apps::H2Streams;
use pingora::http::ResponseHeader;
use pingora::protocols::http::date;
use pingora::protocols::http::v2::server::HttpSession as H2Session;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use pingora::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use wire::Head;

/// How an HTTP/1.1 connection left the lane.
pub enum Lane {
    Closed,
    /// To pingora's HTTP/1.1 service from `read` (the bytes the lane had
    /// read of the next request), under the head deadline the lane was
    /// keeping (None: the guard's first-head deadline still runs).
    Pass {
        stream: Stream,
        read: BytesMut,
        deadline: Option<Instant>,
    },
}

/// Serves an HTTP/1.1 connection from its first request on, until it
/// closes or a head the lane does not take arrives. The caller hands such a
/// connection on after this future is gone: its state is not held for the
/// rest of the connection.
pub async fn serve(
    gw: &Gateway,
    mut stream: Stream,
    key: ConnKey,
    conns: &Connections,
    shutdown: &ShutdownWatch,
) -> Lane {
    // Empty (unallocated) while the connection waits between requests.
    let mut buf = BytesMut::new();
    // For the log: printed once per connection.
    let client = crate::observe::addr::socket(key.0);
    let mut stop = shutdown.clone();
    // The next head's deadline. The first head's is the guard's
    // (`conn::Guarded`); after that the lane keeps its own, so a request
    // costs no guard update (two wake-ups of this task each).
    let mut deadline: Option<Instant> = None;
    loop {
        let next = match deadline {
            None => next_head(&mut stream, &mut buf, None).await,
            Some(d) => {
                let read = next_head(&mut stream, &mut buf, Some(&mut stop));
                match tokio::time::timeout_at(d, read).await {
                    Ok(n) => n,
                    Err(_) => {
                        tracing::info!(client = %key.0, "no complete request head in time; closing");
                        return Lane::Closed;
                    }
                }
            }
        };
        let pass = |stream, read| Lane::Pass {
            stream,
            read,
            deadline,
        };
        let (len, parts) = match next {
            Next::Take(len, parts) => (len, parts),
            Next::Pass => return pass(stream, buf),
            Next::Closed => return Lane::Closed,
        };
        let ctx = Ctx::new(&gw.shared);
        let Some(target) = takes(gw, &ctx, &parts) else {
            return pass(stream, buf);
        };
        buf.advance(len);
        if deadline.is_none() {
            conns.busy(key);
        }
        let limits = ctx.rt.cfg.server.limits;
        let mut down = Down::H1 {
            stream: &mut stream,
            close: *shutdown.borrow(),
        };
        // Boxed: a waiting connection holds only this loop's small state.
        let keep = Box::pin(answer(gw, &mut down, parts, target, ctx, key.0, &client)).await;
        if !keep {
            return Lane::Closed;
        }
        deadline = Some(Instant::now() + limits.keepalive_timeout);
        if buf.is_empty() {
            buf = BytesMut::new();
        }
    }
}

#[allow(clippy::large_enum_variant)] // as `wire::Head`
enum Next {
    Take(usize, Parts),
    Pass,
    Closed,
}

/// Reads until `buf` holds a whole head (or one the lane passes on).
/// `stop`: between requests, a graceful stop ends the wait.
async fn next_head(
    stream: &mut Stream,
    buf: &mut BytesMut,
    stop: Option<&mut ShutdownWatch>,
) -> Next {
    if buf.is_empty() && !first_byte(stream, buf, stop).await {
        return Next::Closed;
    }
    loop {
        match wire::request(buf) {
            Head::Take { len, parts } => return Next::Take(len, parts),
            Head::Pass => return Next::Pass,
            Head::Partial => {
                buf.reserve(2048);
                if !matches!(stream.read_buf(buf).await, Ok(n) if n > 0) {
                    return Next::Closed;
                }
            }
        }
    }
}

/// Waits for a request's first byte (a 1-byte read: nothing is allocated
/// while idle).
async fn first_byte(
    stream: &mut Stream,
    buf: &mut BytesMut,
    stop: Option<&mut ShutdownWatch>,
) -> bool {
    let mut byte = [0u8; 1];
    let n = match stop {
        None => stream.read(&mut byte).await.ok(),
        Some(stop) => {
            if *stop.borrow() {
                return false;
            }
            let stopped = async {
                loop {
                    if stop.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    if *stop.borrow() {
                        return;
                    }
                }
            };
            tokio::select! {
                biased;
                r = stream.read(&mut byte) => r.ok(),
                () = stopped => None,
            }
        }
    };
    if n != Some(1) {
        return false;
    }
    buf.reserve(2048);
    buf.put_u8(byte[0]);
    true
}

/// The repository the lane answers this head for: a manifest on a
/// plain-HTTP backend, not one the edge cache may answer, and routed as
/// `pipeline::run` would route it. Route errors and everything else go to
/// pingora's path, where the same pipeline renders them.
fn takes(gw: &Gateway, ctx: &Ctx, parts: &Parts) -> Option<RepoTarget> {
    let rt = &ctx.rt;
    let path = parts.uri.path();
    if !rt.cfg.server.fast_lane || Own::classify(path, rt.auth.is_some()).is_some() {
        return None;
    }
    let listen = rt.method_of(gw.addr, &gw.method);
    let host = gw.client_host(parts);
    let Ok(Some(Routed::Repo(t))) = route::route(&rt.cfg, &listen, Some(&host), path) else {
        return None;
    };
    let Some(Endpoint::Manifest(reference)) = &t.endpoint else {
        return None;
    };
    let cached = t.repo.cache && gw.shared.cache.get().is_some();
    let cache_may_answer = cached && Digest::parse(reference).is_some();
    (!t.repo.backend.tls && !cache_may_answer).then_some(t)
}

/// The lane's h2 streams: on a connection that negotiated h2, each stream
/// that is a bodiless manifest GET or HEAD `takes` accepts is answered
/// here; the others go to pingora's `process_new_http`.
pub struct H2Lane {
    pub gw: Arc<Gateway>,
    pub key: ConnKey,
    pub conns: Arc<Connections>,
    /// The client's address for the log, printed once per connection.
    pub client: Arc<str>,
}

impl H2Streams for H2Lane {
    fn take(&self, s: H2Session) -> Result<Pin<Box<dyn Future<Output = ()> + Send>>, H2Session> {
        let head = s.req_header();
        if !matches!(head.method, Method::GET | Method::HEAD) || !s.is_body_done() {
            return Err(s);
        }
        let ctx = Ctx::new(&self.gw.shared);
        let Some(target) = takes(&self.gw, &ctx, head) else {
            return Err(s);
        };
        // As `transport::on_request`: an h2 connection with a stream has no head deadline.
        self.conns.settled(self.key);
        let (gw, client, text) = (self.gw.clone(), self.key.0, self.client.clone());
        Ok(Box::pin(async move {
            let mut s = s;
            s.set_write_timeout(Some(ctx.rt.cfg.server.limits.send_timeout));
            let parts = s.req_header().as_owned_parts();
            let mut down = Down::H2(&mut s);
            answer(&gw, &mut down, parts, target, ctx, client, &text).await;
        }))
    }
}

/// Where the lane writes an answer.
enum Down<'a> {
    /// `close`: the last answer on this connection (a graceful stop began,
    /// or the request failed).
    H1 {
        stream: &'a mut Stream,
        close: bool,
    },
    H2(&'a mut H2Session),
}

impl Down<'_> {
    /// Head and body within the send deadline; false: the client is gone.
    async fn send(&mut self, head: ResponseHeader, body: Bytes, limits: &ClientLimits) -> bool {
        match self {
            Down::H1 { stream, close } => write_h1(stream, &head, &body, *close, limits).await,
            // The session's write timeout is the send deadline; it adds `Date`.
            Down::H2(s) => {
                let end = body.is_empty();
                if s.write_response_header(Box::new(head), end).is_err() {
                    return false;
                }
                end || s.write_body(body, true).await.is_ok()
            }
        }
    }

    /// A failed request ends an HTTP/1.1 connection, as `fail_to_proxy` does.
    fn close(&mut self) {
        if let Down::H1 { close, .. } = self {
            *close = true;
        }
    }

    /// Whether the client already reset this h2 stream: then nobody waits
    /// for the answer and the backend is not asked (`transport::stream_gone`).
    fn gone(&mut self) -> bool {
        match self {
            Down::H2(s) => transport::closed_now(s.idle()),
            Down::H1 { .. } => false,
        }
    }
}

/// One request, as the proxy phases would answer it; false: close.
async fn answer(
    gw: &Gateway,
    down: &mut Down<'_>,
    mut parts: Parts,
    target: RepoTarget,
    mut ctx: Ctx,
    client: SocketAddr,
    client_text: &str,
) -> bool {
    ctx.request_id = request_id::next();
    if let Some(v) = request_id::value(&ctx.request_id) {
        parts.headers.insert(request_id::HEADER, v);
    }
    ctx.client_host = gw.client_host(&parts);
    let mut notes = std::mem::take(&mut ctx.notes);
    let step = {
        let env = gw.env(&ctx);
        let req = Request {
            head: &parts,
            client_host: ctx.client_host.clone(),
            client_ip: pipeline::client_ip(&env, Some(client.ip()), &parts),
            listen: ctx.rt.method_of(gw.addr, &gw.method),
            body: None,
        };
        pipeline::run_repo(&env, &req, &mut notes, target).await
    };
    ctx.notes = notes;
    let (status, sent, keep) = match step {
        Step::Respond(l) => local(down, &parts, &l, &ctx.rt.cfg.server.limits).await,
        Step::Forward(f) => forward(gw, down, &mut parts, *f, &mut ctx, client).await,
    };
    let done = Done {
        status,
        bytes_out: sent,
        client: client_text,
    };
    log::record_done(&gw.shared, &parts, &done, &ctx);
    keep && !matches!(down, Down::H1 { close: true, .. })
}

/// (status, body bytes sent, connection still usable)
type Sent = (u16, u64, bool);

async fn forward(
    gw: &Gateway,
    down: &mut Down<'_>,
    parts: &mut Parts,
    f: Forward,
    ctx: &mut Ctx,
    client: SocketAddr,
) -> Sent {
    if f.body != Body::Stream {
        let e = Error::explain(pingora::ErrorType::InternalError, "a body in the fast lane");
        return fail(down, parts, &e, ctx).await;
    }
    ctx.forward_to(&f);
    for (k, v) in &f.set_headers {
        if let Ok(v) = http::HeaderValue::from_str(v) {
            parts.headers.insert(*k, v);
        }
    }
    let Some(b) = ctx.backend.clone() else {
        let e = Error::explain(pingora::ErrorType::InternalError, "no backend chosen");
        return fail(down, parts, &e, ctx).await;
    };
    let request = match upstream_head(parts, ctx, &b, gw.addr.port(), client) {
        Ok(r) => r,
        Err(e) => return fail(down, parts, &e, ctx).await,
    };
    if down.gone() {
        let e = Error::explain(
            pingora::ErrorType::ConnectionClosed,
            "client reset the stream",
        );
        return fail(down, parts, &e.into_down(), ctx).await;
    }
    let head_request = parts.method == Method::HEAD;
    let reply = match gw.pool.exchange(&b, &request, head_request).await {
        Ok(r) => r,
        Err(e) => return fail(down, parts, &e, ctx).await,
    };
    let mut head = reply.head;
    let status = head.status.as_u16();
    if let Err(e) = gw.answer_head(&parts.method, &mut head, ctx) {
        return fail(down, parts, &e, ctx).await;
    }
    let body = ctx.replace_body.clone().unwrap_or(reply.body);
    let unsized_body = !head.headers.contains_key(http::header::CONTENT_LENGTH);
    if reply.framed && ctx.replace_body.is_none() && unsized_body {
        if let Err(e) = head.insert_header("Content-Length", body.len().to_string()) {
            return fail(down, parts, &e, ctx).await;
        }
    }
    let body = if head_request || matches!(status, 204 | 304) {
        Bytes::new()
    } else {
        body
    };
    if let (Some(p), false) = (&ctx.pace, body.is_empty()) {
        let l = &gw.shared.edge.limiter;
        let now = std::time::Instant::now();
        if let Some(d) = l.pulled(&p.key, body.len(), p.bytes_per_second, now) {
            tokio::time::sleep(d).await;
        }
    }
    let limits = ctx.rt.cfg.server.limits;
    let (status, len) = (head.status.as_u16(), body.len() as u64);
    let ok = down.send(head, body, &limits).await;
    (status, len, ok)
}

/// The request head for the backend, on the wire.
fn upstream_head(
    parts: &Parts,
    ctx: &Ctx,
    b: &crate::config::Backend,
    port: u16,
    client: SocketAddr,
) -> pingora::Result<Vec<u8>> {
    let prior = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let h = edits::upstream_headers(ctx, b, port, Some(client.ip()), prior);
    wire::backend_request(&parts.method, &ctx.upstream_uri, &parts.headers, &h)
        .map_err(|e| Error::because(pingora::ErrorType::InternalError, "the backend head", e))
}

/// A proxying failure, answered as `fail_to_proxy` does; an HTTP/1.1
/// connection is then closed.
async fn fail(down: &mut Down<'_>, parts: &Parts, e: &Error, ctx: &mut Ctx) -> Sent {
    down.close();
    let Some(err) = edits::failed(e, ctx) else {
        return (0, 0, false);
    };
    let limits = ctx.rt.cfg.server.limits;
    let (status, sent, _) = local(down, parts, &Local::error(err), &limits).await;
    (status, sent, false)
}

/// An answer dockgate gives itself, as `respond::send` writes it.
async fn local(down: &mut Down<'_>, parts: &Parts, l: &Local, limits: &ClientLimits) -> Sent {
    let status = l.status.as_u16();
    let headers = respond::with_api_version(&l.headers);
    let id = parts.headers.get(request_id::HEADER);
    let Ok(head) = respond::head(status, &headers, l.body.len(), id) else {
        return (status, 0, false);
    };
    let body = if parts.method == Method::HEAD {
        Bytes::new()
    } else {
        l.body.clone()
    };
    let len = body.len() as u64;
    let ok = down.send(head, body, limits).await;
    (status, len, ok)
}

/// Head and body in one write, within the send deadline.
async fn write_h1(
    stream: &mut Stream,
    head: &ResponseHeader,
    body: &[u8],
    close: bool,
    limits: &ClientLimits,
) -> bool {
    let out = wire::answer_bytes(head, date::get_cached_date().as_bytes(), close, body);
    let send = async {
        stream.write_all(&out).await?;
        stream.flush().await
    };
    matches!(
        tokio::time::timeout(limits.send_timeout, send).await,
        Ok(Ok(()))
    )
}
