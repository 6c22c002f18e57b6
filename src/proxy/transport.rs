//! Per-request transport handling: the downstream deadlines from `[server]`,
//! HTTP/1.1 pipelining, cancelled h2 streams, request bodies read with a
//! deadline, and what is left of a body after an early answer.

use super::conn::Connections;
use crate::config::ClientLimits;
use bytes::Bytes;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How much of an unread request body is read and dropped after an early
/// answer, and for how long: enough for the client to see the answer
/// instead of a reset, never an unbounded upload into nowhere.
const DRAIN_BYTES: usize = 16 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);

fn conn_key(s: &Session) -> Option<(SocketAddr, SocketAddr)> {
    let peer = s.client_addr()?.as_inet().copied()?;
    let local = s.server_addr()?.as_inet().copied()?;
    Some((peer, local))
}

/// A request head arrived: arm the deadlines for this request.
pub fn on_request(conns: &Connections, s: &mut Session, limits: &ClientLimits) {
    let h2 = s.as_downstream().is_http2();
    if let Some(key) = conn_key(s) {
        if h2 {
            conns.settled(key);
        } else {
            conns.busy(key);
        }
    }
    if !h2 {
        // pingora keeps an HTTP/1.1 connection open forever between requests
        // by default; pipelined requests are answered in order.
        if s.get_keepalive().is_some() {
            s.set_keepalive(Some(limits.keepalive_timeout.as_secs()));
        }
        s.set_pipelining_enabled(true);
    }
    // h2 needs the vendored pingora-core (vendor/README.md).
    s.set_read_timeout(Some(limits.body_timeout));
    s.set_write_timeout(Some(limits.send_timeout));
}

/// The answer is done: an HTTP/1.1 connection now waits for the next head.
pub fn on_done(conns: &Connections, s: &Session, limits: &ClientLimits) {
    if s.as_downstream().is_http2() {
        return;
    }
    if let Some(key) = conn_key(s) {
        conns.idle(key, limits.keepalive_timeout);
    }
}

/// Whether the client already reset this h2 stream: then nobody waits for
/// the answer and the backend need not be asked (rapid reset).
pub fn stream_gone(s: &mut Session) -> bool {
    s.as_downstream_mut()
        .watch_h2_stream_close()
        .is_some_and(closed_now)
}

/// Whether an h2 stream's close watch has already fired.
pub fn closed_now(mut idle: pingora::protocols::http::v2::server::Idle<'_>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    matches!(Pin::new(&mut idle).poll(&mut cx), Poll::Ready(_))
}

/// The error for a stream the client cancelled.
pub fn gone() -> Box<Error> {
    Error::explain(ErrorType::ConnectionClosed, "client reset the stream").into_down()
}

/// The next piece of the request body, or a downstream `ReadTimedout` when
/// the client sends nothing for `within`.
pub async fn read_body(s: &mut Session, within: Duration) -> Result<Option<Bytes>> {
    match tokio::time::timeout(within, s.read_request_body()).await {
        Ok(r) => r.map_err(|e| e.into_down()),
        Err(_) => Err(Error::explain(
            ErrorType::ReadTimedout,
            format!("no request body data for {} s", within.as_secs()),
        )
        .into_down()),
    }
}

/// For an answer given before the request body was read: read and drop a
/// bounded amount so the client gets the answer, not a reset (h2 resets an
/// unfinished stream; an HTTP/1.1 close with unread data sends a TCP RST).
/// The connection is not reused.
pub async fn drain_unread(s: &mut Session) {
    if s.is_body_done() {
        return;
    }
    s.set_keepalive(None);
    // An HTTP/1.1 client waiting for `100 Continue` sends nothing more.
    let expects = s.req_header().headers.contains_key(http::header::EXPECT);
    if !s.as_downstream().is_http2() && expects && s.body_bytes_read() == 0 {
        return;
    }
    let until = Instant::now() + DRAIN_TIME;
    let mut seen = 0usize;
    while seen <= DRAIN_BYTES {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read_request_body()).await {
            Ok(Ok(Some(chunk))) => seen += chunk.len(),
            _ => return,
        }
    }
}
