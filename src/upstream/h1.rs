//! A small HTTP/1.1 client for the fast lane (`proxy/fast`): plain-TCP
//! keep-alive connections per backend address, one exchange at a time,
//! the whole answer held (manifests, ≤ 4 MiB). Failures are pingora errors
//! marked upstream, so `proxy::edits` names them as for proxied requests.

use crate::config::Backend;
use crate::proxy::fast::wire::{self, Answer, Dechunk, Framing, WireError};
use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::{Error, ErrorType, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest answer body held: a manifest's limit.
pub const MAX_BODY: usize = 4 << 20;
/// Idle connections kept per backend address.
const MAX_IDLE: usize = 128;

/// A backend's whole answer.
#[derive(Debug)]
pub struct Reply {
    pub head: ResponseHeader,
    pub body: Bytes,
    /// The body was framed (Content-Length, chunked) rather than absent.
    pub framed: bool,
}

#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<(TcpStream, Instant)>>>,
}

enum Fail {
    /// A reused connection the backend had closed: nothing was answered,
    /// so a GET or HEAD may go again on a new one.
    Stale,
    Error(Box<Error>),
}

fn up(t: ErrorType, why: impl Into<String>) -> Box<Error> {
    Error::explain(t, why.into()).into_up()
}

impl Pool {
    /// Sends `request` (a bodiless GET or HEAD head) and reads the answer.
    pub async fn exchange(&self, b: &Backend, request: &[u8], head: bool) -> Result<Reply> {
        if let Some(s) = self.take(b) {
            match exchange_on(s, b, request, head).await {
                Ok((reply, s)) => return Ok(self.keep(b, reply, s)),
                Err(Fail::Error(e)) => return Err(e),
                Err(Fail::Stale) => {}
            }
        }
        let s = connect(b).await?;
        match exchange_on(s, b, request, head).await {
            Ok((reply, s)) => Ok(self.keep(b, reply, s)),
            Err(Fail::Error(e)) => Err(e),
            Err(Fail::Stale) => Err(up(
                ErrorType::ConnectionClosed,
                "backend closed the connection without an answer",
            )),
        }
    }

    fn keep(&self, b: &Backend, reply: Reply, s: Option<TcpStream>) -> Reply {
        if let (Some(s), Ok(mut m)) = (s, self.idle.lock()) {
            let v = m.entry(b.addr).or_default();
            if v.len() < MAX_IDLE {
                v.push((s, Instant::now()));
            }
        }
        reply
    }

    /// The most recently used idle connection still within the backend's
    /// idle timeout (older ones are older still: dropped).
    fn take(&self, b: &Backend) -> Option<TcpStream> {
        let mut m = self.idle.lock().ok()?;
        let v = m.get_mut(&b.addr)?;
        match v.pop() {
            Some((s, at)) if at.elapsed() < b.idle_timeout => Some(s),
            _ => {
                v.clear();
                None
            }
        }
    }
}

async fn connect(b: &Backend) -> Result<TcpStream> {
    let s = match tokio::time::timeout(b.connect_timeout, TcpStream::connect(b.addr)).await {
        Err(_) => return Err(up(ErrorType::ConnectTimedout, b.addr.to_string())),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(up(ErrorType::ConnectRefused, b.addr.to_string()))
        }
        Ok(Err(e)) => return Err(up(ErrorType::ConnectError, e.to_string())),
        Ok(Ok(s)) => s,
    };
    // Small answers go out whole; no waiting on Nagle.
    let _ = s.set_nodelay(true);
    Ok(s)
}

async fn within<T>(
    d: Duration,
    t: ErrorType,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::result::Result<std::io::Result<T>, Box<Error>> {
    tokio::time::timeout(d, f)
        .await
        .map_err(|_| up(t, format!("no progress for {} s", d.as_secs())))
}

/// One exchange; the connection back when it may be reused.
async fn exchange_on(
    mut s: TcpStream,
    b: &Backend,
    request: &[u8],
    head: bool,
) -> std::result::Result<(Reply, Option<TcpStream>), Fail> {
    match within(
        b.write_timeout,
        ErrorType::WriteTimedout,
        s.write_all(request),
    )
    .await
    {
        Err(e) => return Err(Fail::Error(e)),
        Ok(Err(_)) => return Err(Fail::Stale),
        Ok(Ok(())) => {}
    }
    let mut buf = BytesMut::with_capacity(4096);
    let (len, head_out, framing) = loop {
        let n = match read(&mut s, &mut buf, b).await {
            Ok(n) => n,
            Err(e) if buf.is_empty() && e.etype() == &ErrorType::ReadError => {
                return Err(Fail::Stale)
            }
            Err(e) => return Err(Fail::Error(e)),
        };
        match wire::answer(&buf, head) {
            Ok(Answer::Final { len, head, framing }) => break (len, head, framing),
            Ok(Answer::Interim(n)) => {
                let _ = buf.split_to(n);
                continue;
            }
            Ok(Answer::Partial) if n > 0 => continue,
            Ok(Answer::Partial) if buf.is_empty() => return Err(Fail::Stale),
            Ok(Answer::Partial) => return Err(Fail::Error(protocol(WireError::BadHead))),
            Err(e) => return Err(Fail::Error(protocol(e))),
        }
    };
    let _ = buf.split_to(len);
    let mut reusable = true;
    let body = match framing {
        Framing::Empty => Bytes::new(),
        Framing::Length(n) if n > MAX_BODY => return Err(Fail::Error(too_large())),
        Framing::Length(n) => {
            while buf.len() < n {
                if read(&mut s, &mut buf, b).await.map_err(Fail::Error)? == 0 {
                    return Err(Fail::Error(cut_short()));
                }
            }
            reusable = buf.len() == n;
            buf.split_to(n).freeze()
        }
        Framing::Chunked => {
            let (mut d, mut out) = (Dechunk::default(), BytesMut::new());
            loop {
                if d.feed(&mut buf, &mut out)
                    .map_err(|e| Fail::Error(protocol(e)))?
                {
                    break;
                }
                if out.len() + buf.len() > MAX_BODY {
                    return Err(Fail::Error(too_large()));
                }
                if read(&mut s, &mut buf, b).await.map_err(Fail::Error)? == 0 {
                    return Err(Fail::Error(cut_short()));
                }
            }
            reusable = buf.is_empty();
            out.freeze()
        }
        Framing::Close => {
            reusable = false;
            while read(&mut s, &mut buf, b).await.map_err(Fail::Error)? > 0 {
                if buf.len() > MAX_BODY {
                    return Err(Fail::Error(too_large()));
                }
            }
            buf.freeze()
        }
    };
    // A Content-Length left in the head is the held body's (a HEAD's and a
    // 304's stay as they are); chunked and close-delimited answers have
    // none (`wire::answer`), and the caller sets it.
    let reply = Reply {
        framed: framing != Framing::Empty,
        head: head_out,
        body,
    };
    Ok((reply, reusable.then_some(s)))
}

async fn read(s: &mut TcpStream, buf: &mut BytesMut, b: &Backend) -> Result<usize> {
    buf.reserve(4096);
    match within(b.read_timeout, ErrorType::ReadTimedout, s.read_buf(buf)).await? {
        Ok(n) => Ok(n),
        Err(e) => Err(up(ErrorType::ReadError, e.to_string())),
    }
}

fn protocol(e: WireError) -> Box<Error> {
    up(ErrorType::InvalidHTTPHeader, e.to_string())
}

fn too_large() -> Box<Error> {
    up(
        ErrorType::InvalidHTTPHeader,
        format!("answer body larger than {MAX_BODY} bytes"),
    )
}

fn cut_short() -> Box<Error> {
    up(ErrorType::ConnectionClosed, "answer body cut short")
}
