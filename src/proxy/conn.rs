//! Per-connection limits pingora lacks: a cap on open connections per
//! client address, and a deadline for a whole request head. pingora's read
//! timer restarts on every byte, so a head trickled a byte at a time would
//! hold a connection for as long as the client likes.
//!
//! `Guarded` wraps the proxy app: it admits or closes each accepted
//! connection and races it against its head deadline. The proxy phases tell
//! it when a head arrived (`busy`) and when the connection waits for the next
//! one (`idle`); an h2 connection is `settled` by its first stream, after
//! which pingora's h2 idle timeout takes over.

use super::fast::Lane;
use crate::state::Shared;
use async_trait::async_trait;
use pingora::apps::{serve_h1, serve_h2, HttpServerApp, ServerApp};
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A connection's phase, shared by its proxy phases and its guard: the
/// head deadline in milliseconds since `Connections::epoch`, or `BUSY` (a
/// request is being served) or `SETTLED` (an h2 connection with a first
/// stream: no head deadline any more). An atomic and a `Notify` instead of a
/// `watch` channel: ~0.35 KiB less per idle connection (bench/README.md).
struct Phase {
    at: AtomicU64,
    changed: Notify,
}

const BUSY: u64 = u64::MAX - 1;
const SETTLED: u64 = u64::MAX;

/// (client, local listener address): one TCP connection.
pub type ConnKey = (SocketAddr, SocketAddr);

pub struct Connections {
    per_client: Mutex<HashMap<IpAddr, usize>>,
    phases: Mutex<HashMap<ConnKey, Arc<Phase>>>,
    /// Head deadlines count milliseconds from here.
    epoch: Instant,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            per_client: Mutex::default(),
            phases: Mutex::default(),
            epoch: Instant::now(),
        }
    }
}

/// Holds one of a client's connection slots until dropped.
struct Slot {
    conns: Arc<Connections>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.conns.per_client.lock() {
            if let Some(n) = m.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&self.ip);
                }
            }
        }
    }
}

/// Keeps a connection's phase known for as long as it lives.
struct Tracked {
    conns: Arc<Connections>,
    key: ConnKey,
    phase: Arc<Phase>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Ok(mut m) = self.conns.phases.lock() {
            m.remove(&self.key);
        }
    }
}

impl Connections {
    /// A slot for one more connection from `ip`, or None at the cap.
    fn admit(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Slot> {
        let mut m = self.per_client.lock().ok()?;
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            conns: self.clone(),
            ip,
        })
    }

    /// Open connections from `ip` (for tests and diagnostics).
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.per_client
            .lock()
            .map(|m| m.get(&ip).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// A head deadline `within` from now, as `Phase::at` stores it.
    fn head_by(&self, within: Duration) -> u64 {
        // Rounded up: a deadline never fires early.
        let us = (Instant::now() + within)
            .duration_since(self.epoch)
            .as_micros();
        u64::try_from(us.div_ceil(1000)).map_or(BUSY - 1, |ms| ms.min(BUSY - 1))
    }

    fn track(self: &Arc<Self>, key: ConnKey, head_within: Duration) -> Tracked {
        let phase = Arc::new(Phase {
            at: AtomicU64::new(self.head_by(head_within)),
            changed: Notify::new(),
        });
        if let Ok(mut m) = self.phases.lock() {
            m.insert(key, phase.clone());
        }
        Tracked {
            conns: self.clone(),
            key,
            phase,
        }
    }

    fn set(&self, key: ConnKey, at: u64) {
        if let Ok(m) = self.phases.lock() {
            if let Some(p) = m.get(&key) {
                p.at.store(at, Ordering::Release);
                p.changed.notify_waiters();
            }
        }
    }

    /// A request head arrived on this connection.
    pub fn busy(&self, key: ConnKey) {
        self.set(key, BUSY);
    }

    /// The answer is done; the next head must be complete `within` from now.
    pub fn idle(&self, key: ConnKey, within: Duration) {
        self.set(key, self.head_by(within));
    }

    /// The next head must be complete by `at`.
    pub fn head_until(&self, key: ConnKey, at: Instant) {
        let within = at.saturating_duration_since(Instant::now());
        self.set(key, self.head_by(within));
    }

    /// No head deadline for the rest of this connection.
    pub fn settled(&self, key: ConnKey) {
        self.set(key, SETTLED);
    }

    /// Resolves when a connection has waited past its head deadline.
    async fn overdue(&self, phase: &Phase) {
        loop {
            // Registered before the load, so a change after it wakes us.
            let changed = phase.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match phase.at.load(Ordering::Acquire) {
                SETTLED => return std::future::pending().await,
                BUSY => changed.await,
                ms => tokio::select! {
                    _ = tokio::time::sleep_until(self.epoch + Duration::from_millis(ms)) => return,
                    _ = changed => {}
                },
            }
        }
    }
}

/// The proxy app behind per-connection admission and head deadlines; with
/// `[server] fast_lane`, connections are served through `proxy::fast`.
pub struct Guarded<A> {
    pub inner: Arc<A>,
    pub gateway: Arc<super::Gateway>,
    pub shared: Arc<Shared>,
    /// Shared by every listener: the per-client cap counts them all.
    pub connections: Arc<Connections>,
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let limits = self.shared.snapshot().cfg.server.limits;
        let key = stream.get_socket_digest().and_then(|d| {
            let peer = d.peer_addr()?.as_inet().copied()?;
            let local = d.local_addr()?.as_inet().copied()?;
            Some((peer, local))
        });
        let Some(key) = key else {
            return self.inner.process_new(stream, shutdown).await;
        };
        let conns = &self.connections;
        let Some(_slot) = conns.admit(key.0.ip(), limits.max_connections_per_client) else {
            tracing::warn!(
                client = %key.0.ip(),
                limit = limits.max_connections_per_client,
                "too many connections from one client; closing the new one"
            );
            return None;
        };
        let tracked = conns.track(key, limits.header_timeout);
        let alpn = stream.selected_alpn_proto();
        let fast = self.shared.snapshot().cfg.server.fast_lane;
        let serve = async {
            match alpn {
                _ if !fast => self.inner.process_new(stream, shutdown).await,
                None | Some(ALPN::H1) => {
                    // Boxed, and gone before pingora takes over: a connection
                    // handed on holds none of the lane's state.
                    let lane = super::fast::serve(&self.gateway, stream, key, conns, shutdown);
                    match Box::pin(lane).await {
                        Lane::Closed => None,
                        Lane::Pass {
                            stream,
                            read,
                            deadline,
                        } => {
                            if let Some(d) = deadline {
                                conns.head_until(key, d);
                            }
                            Box::pin(serve_h1(&self.inner, stream, Some(read), shutdown)).await
                        }
                    }
                }
                Some(ALPN::H2) => {
                    let lane = super::fast::H2Lane {
                        gw: self.gateway.clone(),
                        key,
                        conns: conns.clone(),
                        client: crate::observe::addr::socket(key.0).into(),
                    };
                    Box::pin(serve_h2(
                        &self.inner,
                        stream,
                        shutdown,
                        Some(Arc::new(lane)),
                    ))
                    .await;
                    None
                }
                _ => self.inner.process_new(stream, shutdown).await,
            }
        };
        tokio::select! {
            r = serve => r,
            () = conns.overdue(&tracked.phase) => {
                tracing::info!(client = %key.0, "no complete request head in time; closing");
                None
            }
        }
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> ConnKey {
        (
            SocketAddr::from(([127, 0, 0, 1], port)),
            SocketAddr::from(([127, 0, 0, 1], 443)),
        )
    }

    #[test]
    fn admission_counts_per_address_and_frees_on_drop() {
        let c = Arc::new(Connections::default());
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let s1 = c.admit(a, 2);
        let s2 = c.admit(a, 2);
        assert!(s1.is_some() && s2.is_some());
        assert!(c.admit(a, 2).is_none());
        assert!(c.admit(b, 2).is_some(), "another address has its own count");
        drop(s1);
        assert_eq!(c.open_from(a), 1);
        assert!(c.admit(a, 2).is_some());
        drop(s2);
        assert_eq!(c.open_from(a), 0);
        assert!(c.per_client.lock().map(|m| m.is_empty()).unwrap_or(false));
    }

    #[tokio::test]
    async fn head_deadline_fires_only_while_waiting() {
        let ms = Duration::from_millis;
        let c = Arc::new(Connections::default());
        let t = c.track(key(1), ms(100));
        c.busy(key(1));
        let waited = tokio::time::timeout(ms(300), c.overdue(&t.phase)).await;
        assert!(waited.is_err(), "a busy connection is never overdue");
        c.idle(key(1), ms(50));
        let start = Instant::now();
        c.overdue(&t.phase).await;
        assert!(start.elapsed() >= ms(50));
        c.settled(key(1));
        let waited = tokio::time::timeout(ms(300), c.overdue(&t.phase)).await;
        assert!(waited.is_err(), "a settled connection is never overdue");
        drop(t);
        assert!(c.phases.lock().map(|m| m.is_empty()).unwrap_or(false));
    }

    #[tokio::test]
    async fn a_change_reaches_a_waiting_guard() {
        let ms = Duration::from_millis;
        let c = Arc::new(Connections::default());
        let t = c.track(key(2), ms(60_000));
        c.busy(key(2));
        let start = Instant::now();
        tokio::join!(c.overdue(&t.phase), async {
            tokio::time::sleep(ms(30)).await;
            c.idle(key(2), ms(40));
        });
        assert!(
            start.elapsed() >= ms(70),
            "waited for busy, then the new deadline"
        );
        assert!(start.elapsed() < ms(5_000), "not the first deadline");
        drop(t);
        assert!(c.phases.lock().map(|m| m.is_empty()).unwrap_or(false));
    }
}
