//! What a request sees: one immutable snapshot of config and peers, swapped
//! whole on reload so a request never mixes two configs.

use crate::config::{Config, ListenMethod};
use crate::observe::access_log::AccessLog;
use crate::observe::Metrics;
use crate::policy::auth::Authenticator;
use crate::upstream::Peers;
use arc_swap::ArcSwap;
use pingora::connectors::http::Connector;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;

pub struct Runtime {
    pub cfg: Arc<Config>,
    pub peers: Peers,
    /// None: passthrough mode.
    pub auth: Option<Arc<Authenticator>>,
    /// The `Host` names requests may carry.
    pub hosts: Arc<crate::route::host::HostNames>,
}

impl From<crate::runtime::Prepared> for Runtime {
    fn from(p: crate::runtime::Prepared) -> Self {
        Self {
            cfg: p.cfg,
            peers: p.peers,
            auth: p.auth,
            hosts: p.hosts,
        }
    }
}

pub struct Shared {
    pub current: ArcSwap<Runtime>,
    /// For dockgate's own backend calls (catalog, health checks).
    pub connector: Connector,
    /// Requests in flight, for draining on SIGTERM.
    pub inflight: Arc<AtomicUsize>,
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
    /// Serialises config rewrites (admin API) and reloads.
    pub reload_lock: Mutex<()>,
    /// Backends whose health check was answered 401: in passthrough mode a
    /// ping must reach them so clients learn to send credentials.
    pub auth_required: Mutex<HashSet<String>>,
    /// Token realm paths each backend advertised (the realm route's targets).
    pub realms: crate::rewrite::realm::Realms,
    /// Open downstream connections, per client and per head deadline.
    pub connections: Arc<super::conn::Connections>,
    /// `[cache]`, opened at start (a reload does not move it).
    pub cache: std::sync::OnceLock<Arc<crate::cache::Cache>>,
}

/// Counts a request as in flight for as long as it lives.
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    pub fn new(rt: Runtime, metrics: Arc<Metrics>, access_log: AccessLog) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::from_pointee(rt),
            connector: Connector::new(None),
            inflight: Arc::new(AtomicUsize::new(0)),
            metrics,
            access_log,
            reload_lock: Mutex::new(()),
            auth_required: Mutex::new(HashSet::new()),
            realms: Default::default(),
            connections: Arc::default(),
            cache: std::sync::OnceLock::new(),
        })
    }

    /// Re-reads the config file and swaps it in whole; on error the
    /// current config keeps serving.
    pub fn reload(&self) -> Result<(), String> {
        let path = self.snapshot().cfg.path.clone();
        let p = crate::runtime::prepare(&path, crate::runtime::Mode::Serve)?;
        self.current.store(Arc::new(Runtime::from(p)));
        Ok(())
    }

    pub fn snapshot(&self) -> Arc<Runtime> {
        self.current.load_full()
    }
}

impl Runtime {
    /// A listener's method in this config. Listeners are bound at start, so
    /// a reload can change how one routes but not where it listens.
    pub fn method_of(&self, addr: SocketAddr, fallback: &ListenMethod) -> ListenMethod {
        self.cfg
            .listeners
            .iter()
            .find(|l| l.address == addr)
            .map(|l| l.method.clone())
            .unwrap_or_else(|| fallback.clone())
    }
}
